//! A change as the lines of its patch: what `ws diff` prints and `ws review`
//! shows, built once for both (and for a program, [`text`]). Every name and
//! line of content passes through [`crate::display`] on its way in: the
//! agent wrote them, and they must not drive the reviewer's terminal.

use ws_snapshot::hunks::{Hunk, Line};
use ws_snapshot::renames::Row;
use ws_snapshot::{Change, ChangeState, Entry, EntryKind, RelPath, Store};

use crate::display;
use crate::error::Error;

/// Files larger than this are summarized, not diffed line by line.
const MAX_TEXT_DIFF: u64 = ws_snapshot::hunks::MAX_TEXT;

/// What a line of a patch is, which decides its colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `diff --ws`, `---`, `+++`.
    File,
    /// Modes, "new file", "Binary files … differ".
    Meta,
    HunkHeader,
    Added,
    Removed,
    Context,
}

impl Kind {
    /// The SGR code `ws diff` paints the line with ("" for none).
    pub fn sgr(self) -> &'static str {
        match self {
            Kind::File => "1",
            Kind::HunkHeader => "36",
            Kind::Added => "32",
            Kind::Removed => "31",
            Kind::Meta | Kind::Context => "",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchLine {
    pub kind: Kind,
    /// Inert: rendered by `display`.
    pub text: String,
}

/// One `@@` block of a patch: where its header is among the lines, and what
/// it takes out and puts in (to find it again after other hunks moved it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchHunk {
    pub hunk: Hunk,
    pub line: usize,
    pub removed: Vec<u8>,
    pub added: Vec<u8>,
}

#[derive(Clone, Debug, Default)]
pub struct Patch {
    pub lines: Vec<PatchLine>,
    pub hunks: Vec<PatchHunk>,
    /// Whether its hunks can be reviewed one by one: a text change between
    /// two regular files (what `--hunk` accepts).
    pub hunkable: bool,
}

/// The bytes a side shows in a diff: file content, or a symlink's target.
#[derive(Debug)]
pub enum Side {
    Absent,
    Text(Vec<u8>),
    Binary(u64),
    TooLarge(u64),
    Other,
}

pub fn side(store: &Store, e: Option<&Entry>) -> Result<Side, Error> {
    let Some(e) = e else { return Ok(Side::Absent) };
    Ok(match &e.kind {
        EntryKind::File { object, .. } => {
            if e.stat.size > MAX_TEXT_DIFF {
                Side::TooLarge(e.stat.size)
            } else {
                let bytes = store.read_object(object)?;
                if ws_snapshot::hunks::is_text(&bytes) { Side::Text(bytes) } else { Side::Binary(e.stat.size) }
            }
        }
        EntryKind::Symlink { target } => Side::Text(target.clone()),
        _ => Side::Other,
    })
}

pub fn text(s: &Side) -> Option<&[u8]> {
    match s {
        Side::Text(t) => Some(t),
        Side::Absent => Some(b""),
        _ => None,
    }
}

fn mode_of(e: &Entry) -> String {
    format!("{:o}", e.stat.mode)
}

fn line(kind: Kind, text: impl Into<String>) -> PatchLine {
    PatchLine { kind, text: text.into() }
}

/// What one row of the diff shows: a change, or a rename (the deleted
/// path's snapshot side against the created path's session side).
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub old: &'a RelPath,
    pub new: &'a RelPath,
    pub before: Option<&'a Entry>,
    pub after: Option<&'a Entry>,
    pub state: ChangeState,
    /// Set for a rename.
    pub similarity: Option<u8>,
}

impl<'a> View<'a> {
    /// One change on its own.
    pub fn one(c: &'a Change) -> Self {
        View {
            old: &c.path,
            new: &c.path,
            before: c.before.as_ref(),
            after: c.after.as_ref(),
            state: c.state,
            similarity: None,
        }
    }

    /// A row of [`ws_snapshot::renames::rows`]: a change, or a rename's two halves.
    pub fn of(changes: &'a [Change], row: Row) -> Self {
        match row {
            Row::One(i) => View::one(&changes[i]),
            Row::Renamed { from, to, similarity } => View {
                old: &changes[from].path,
                new: &changes[to].path,
                before: changes[from].before.as_ref(),
                after: changes[to].after.as_ref(),
                state: changes[to].state,
                similarity: Some(similarity),
            },
        }
    }
}

/// The patch of `v` as text, a line each, as `ws diff` prints it without colour.
pub fn text_of(store: &Store, v: &View) -> Result<String, Error> {
    let mut out = String::new();
    for l in patch_of(store, v)?.lines {
        out.push_str(&l.text);
        out.push('\n');
    }
    Ok(out)
}

/// The patch of one change, as `ws diff` prints it.
pub fn patch(store: &Store, c: &Change) -> Result<Patch, Error> {
    patch_of(store, &View::one(c))
}

/// The patch of one row of `ws diff` (a change, or a rename's two halves).
pub fn patch_of(store: &Store, v: &View) -> Result<Patch, Error> {
    let mut p = Patch::default();
    let (a, b) = (display::prefixed("a/", v.old.as_bytes()), display::prefixed("b/", v.new.as_bytes()));
    p.lines.push(line(Kind::File, format!("diff --ws {a} {b}")));
    let meta = |p: &mut Patch, s: String| p.lines.push(line(Kind::Meta, s));
    match (v.before, v.after) {
        (None, Some(e)) => match e.kind {
            EntryKind::Dir => {
                meta(&mut p, format!("new directory mode {}", mode_of(e)));
                return Ok(p);
            }
            EntryKind::Excluded { files, bytes, .. } => {
                meta(
                    &mut p,
                    format!(
                        "new excluded tree ({}+ files, {}+): too large to snapshot",
                        display::count(files),
                        display::bytes(bytes)
                    ),
                );
                return Ok(p);
            }
            _ => meta(&mut p, format!("new file mode {}", mode_of(e))),
        },
        (Some(e), None) => match e.kind {
            EntryKind::Dir => {
                meta(&mut p, format!("deleted directory mode {}", mode_of(e)));
                return Ok(p);
            }
            EntryKind::Excluded { .. } => {
                meta(&mut p, "deleted excluded tree: it was not in the snapshot, rollback cannot restore it".into());
                return Ok(p);
            }
            _ => meta(&mut p, format!("deleted file mode {}", mode_of(e))),
        },
        (Some(old), Some(new)) => {
            if old.stat.mode != new.stat.mode {
                meta(&mut p, format!("old mode {}", mode_of(old)));
                meta(&mut p, format!("new mode {}", mode_of(new)));
            }
            if let Some(n) = v.similarity {
                meta(&mut p, format!("similarity index {n}%"));
                meta(&mut p, format!("rename from {}", display::name(v.old.as_bytes())));
                meta(&mut p, format!("rename to {}", display::name(v.new.as_bytes())));
            }
            if old.is_dir() && new.is_dir() {
                return Ok(p);
            }
        }
        (None, None) => return Ok(p),
    }
    let old = side(store, v.before)?;
    let new = side(store, v.after)?;
    let (Some(o), Some(n)) = (text(&old), text(&new)) else {
        let size = |s: &Side| match s {
            Side::Binary(n) | Side::TooLarge(n) => *n,
            Side::Text(t) => t.len() as u64,
            _ => 0,
        };
        let large = matches!(old, Side::TooLarge(_)) || matches!(new, Side::TooLarge(_));
        let what = if large { "Large files" } else { "Binary files" };
        meta(
            &mut p,
            format!("{what} {a} and {b} differ ({} -> {})", display::bytes(size(&old)), display::bytes(size(&new))),
        );
        return Ok(p);
    };
    if o == n {
        return Ok(p);
    }
    let a_name = if v.before.is_some() { a.clone() } else { "/dev/null".into() };
    let b_name = if v.after.is_some() { b.clone() } else { "/dev/null".into() };
    p.lines.push(line(Kind::File, format!("--- {a_name}")));
    p.lines.push(line(Kind::File, format!("+++ {b_name}")));
    let file = |e: Option<&Entry>| e.is_some_and(|e| matches!(e.kind, EntryKind::File { .. }));
    // A rename's hunks are shown, not picked one by one.
    p.hunkable = file(v.before) && file(v.after) && v.similarity.is_none();
    for (h, lines) in ws_snapshot::hunks::patch(o, n) {
        let (mut removed, mut added) = (Vec::new(), Vec::new());
        for l in &lines {
            match l {
                Line::Removed(v) => removed.extend_from_slice(v),
                Line::Added(v) => added.extend_from_slice(v),
                Line::Context(_) => {}
            }
        }
        p.hunks.push(PatchHunk { hunk: h, line: p.lines.len(), removed, added });
        p.lines.extend(hunk_lines(&h, &lines));
    }
    Ok(p)
}

/// One `@@` block, every line rendered by `display`.
pub fn hunk_lines(h: &Hunk, lines: &[Line<'_>]) -> Vec<PatchLine> {
    let header = format!("@@ -{} +{} @@", range(h.old_start, h.old_lines), range(h.new_start, h.new_lines));
    let mut out = vec![line(Kind::HunkHeader, header)];
    for l in lines {
        let (sign, kind, value) = match *l {
            Line::Removed(v) => ('-', Kind::Removed, v),
            Line::Added(v) => ('+', Kind::Added, v),
            Line::Context(v) => (' ', Kind::Context, v),
        };
        out.push(line(kind, format!("{sign}{}", display::text(value.strip_suffix(b"\n").unwrap_or(value)))));
        if !value.ends_with(b"\n") {
            out.push(line(Kind::Meta, "\\ No newline at end of file"));
        }
    }
    out
}

/// Unified-diff range: `start,len`, `start` alone for one line (the
/// start already follows git's convention for empty ranges).
fn range(start: usize, len: usize) -> String {
    match len {
        1 => format!("{start}"),
        n => format!("{start},{n}"),
    }
}
