//! `ws diff`: what a session changed, as a git-style patch, a stat, names, or JSON.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use similar::{ChangeTag, TextDiff};
use ws_snapshot::hunks::{Hunk, Line};
use ws_snapshot::{Change, ChangeKind, ChangeState, Entry, EntryKind, Manifest, ManifestId, RelPath, Store};

use crate::commands::session::counts;
use crate::error::{CliError, exit};
use crate::recording::{Attribution, Origin};
use crate::workspace::Workspace;
use crate::{display, out, ui};

/// Files larger than this are summarized, not diffed line by line.
const MAX_TEXT_DIFF: u64 = ws_snapshot::hunks::MAX_TEXT;

/// Show what a session changed: snapshot version against the session's version.
///
/// Shows the pending changes of the newest session pending review, or of the
/// session given by id (a unique prefix is enough) or name. `--json` lists every
/// change with its state (pending, approved, rolled_back).
///
/// Examples: ws diff --stat · ws diff 3fa2 -- src/ · ws diff --json | jq
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Session id or name; default: the newest session pending review.
    #[arg(add = clap_complete::ArgValueCompleter::new(crate::commands::completions::session_ids))]
    id: Option<String>,
    /// Per-file summary with line counts, and what the snapshot excluded.
    #[arg(long, conflicts_with_all = ["name_status", "json"])]
    stat: bool,
    /// One line per change: A (created), M (modified), D (deleted), T (type changed).
    #[arg(long, conflicts_with = "json")]
    name_status: bool,
    /// Machine-readable output (stable; documented in the README).
    #[arg(long)]
    json: bool,
    /// Also show changes inside `.git/objects`, `.git/logs` and `.git/index`
    /// (hidden by default: they follow from refs and staging, which are shown).
    #[arg(long)]
    git_internals: bool,
    /// Only changes at or under these paths.
    #[arg(last = true)]
    paths: Vec<PathBuf>,
}

pub fn cmd_diff(args: DiffArgs) -> Result<i32, CliError> {
    let ws = Workspace::discover()?;
    let mut session = ws.store.resolve_session(args.id.as_deref())?;
    let changes = {
        let _lock = ws.lock()?;
        let mut changes = ws.session_changes(&mut session)?;
        ws_snapshot::finish_hunk_rollback(&ws.store, &ws.root, &mut session, &mut changes)?;
        changes
    };
    let filter = ws.rel_paths(&args.paths)?;
    let who = Attribution::load(&ws.store, &session);
    let selected: Vec<&Change> =
        changes.iter().filter(|c| filter.is_empty() || filter.iter().any(|p| c.path.starts_with(p))).collect();
    if args.json {
        let before = ws.store.manifest(&ManifestId(session.before.clone()))?;
        let list: Vec<ChangeJson> = selected
            .iter()
            .map(|c| ChangeJson { by: origin_word(who.origin_of(&c.path)), ..change_json(&ws.store, c) })
            .collect();
        #[derive(Serialize)]
        struct DiffJson<'a> {
            session: &'a str,
            changes: Vec<ChangeJson>,
            excluded: Vec<ExcludedJson>,
        }
        let doc = DiffJson { session: &session.id, changes: list, excluded: excluded_json(&before) };
        out!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(exit::OK);
    }
    let pending: Vec<&Change> = selected.iter().copied().filter(|c| c.state == ChangeState::Pending).collect();
    let hidden = pending.iter().filter(|c| git_internal(&c.path)).count();
    let pending: Vec<&Change> = pending.into_iter().filter(|c| args.git_internals || !git_internal(&c.path)).collect();
    let color = ui::stdout_color();
    if args.name_status {
        for c in &pending {
            match who.origin_of(&c.path) {
                Origin::Session => out!("{}\t{}", status_letter(c), display::name(c.path.as_bytes())),
                o => out!("{}\t{}\t({})", status_letter(c), display::name(c.path.as_bytes()), origin_note(o)),
            }
        }
    } else if args.stat {
        let before = ws.store.manifest(&ManifestId(session.before.clone()))?;
        print_stat(&ws.store, &pending, &before, color);
    } else {
        for c in &pending {
            print_patch(&ws.store, c, color)?;
        }
    }
    if !args.name_status {
        let others: Vec<String> = pending
            .iter()
            .filter(|c| who.origin_of(&c.path) != Origin::Session)
            .map(|c| format!("{} ({})", display::name(c.path.as_bytes()), origin_note(who.origin_of(&c.path))))
            .collect();
        if !others.is_empty() {
            ui::note(&format!(
                "{} of these change{} not the session's: {}; `ws rollback` leaves changes made outside the session alone",
                others.len(),
                if others.len() == 1 { " is" } else { "s are" },
                others.iter().take(10).cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    if !who.recorded && session.recording.is_some() {
        ui::note("no write recorder ran for this session (not root): every change counts as the session's");
    }
    if hidden > 0 && !args.git_internals {
        ui::note(&format!(
            "{hidden} change{} inside .git/objects, .git/logs and .git/index not shown (--git-internals shows them)",
            if hidden == 1 { "" } else { "s" }
        ));
    }
    let n = counts(&changes);
    if n.approved + n.rolled_back > 0 && !args.json {
        ui::note(&format!(
            "session {}: {} pending shown; {} approved and {} rolled back not shown",
            session.id, n.pending, n.approved, n.rolled_back
        ));
    }
    Ok(exit::OK)
}

/// Git's own bookkeeping: objects, reflogs and the index. Refs, HEAD, config
/// and hooks are not internal: they change what git does and are always shown.
pub fn git_internal(p: &RelPath) -> bool {
    !matches!(ws_snapshot::git_class(p), ws_snapshot::GitClass::Normal)
}

fn status_letter(c: &Change) -> char {
    match (c.kind(), &c.before, &c.after) {
        (ChangeKind::Added, ..) => 'A',
        (ChangeKind::Removed, ..) => 'D',
        (_, Some(b), Some(a)) if b.kind_name() != a.kind_name() => 'T',
        _ => 'M',
    }
}

fn status_word(c: &Change) -> &'static str {
    match status_letter(c) {
        'A' => "added",
        'D' => "deleted",
        'T' => "type_changed",
        _ => "modified",
    }
}

/// The bytes a side shows in a diff: file content, or a symlink's target.
enum Side {
    Absent,
    Text(Vec<u8>),
    Binary(u64),
    TooLarge(u64),
    Other,
}

fn side(store: &Store, e: Option<&Entry>) -> Result<Side, CliError> {
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

fn text(s: &Side) -> Option<&[u8]> {
    match s {
        Side::Text(t) => Some(t),
        Side::Absent => Some(b""),
        _ => None,
    }
}

fn mode_of(e: &Entry) -> String {
    format!("{:o}", e.stat.mode)
}

pub(crate) fn paint(s: &str, code: &str, color: bool) -> String {
    if color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_owned() }
}

/// Names, and every line of content, rendered by `display`: the agent wrote
/// them, and they must not drive the reviewer's terminal.
fn print_patch(store: &Store, c: &Change, color: bool) -> Result<(), CliError> {
    let (a, b) = (display::prefixed("a/", c.path.as_bytes()), display::prefixed("b/", c.path.as_bytes()));
    out!("{}", paint(&format!("diff --ws {a} {b}"), "1", color));
    match (&c.before, &c.after) {
        (None, Some(a)) => match a.kind {
            EntryKind::Dir => {
                out!("new directory mode {}", mode_of(a));
                return Ok(());
            }
            EntryKind::Excluded { files, bytes, .. } => {
                out!("new excluded tree ({}+ files, {}+): too large to snapshot", ui::count(files), ui::bytes(bytes));
                return Ok(());
            }
            _ => out!("new file mode {}", mode_of(a)),
        },
        (Some(b), None) => match b.kind {
            EntryKind::Dir => {
                out!("deleted directory mode {}", mode_of(b));
                return Ok(());
            }
            EntryKind::Excluded { .. } => {
                out!("deleted excluded tree: it was not in the snapshot, rollback cannot restore it");
                return Ok(());
            }
            _ => out!("deleted file mode {}", mode_of(b)),
        },
        (Some(b), Some(a)) => {
            if b.stat.mode != a.stat.mode {
                out!("old mode {}", mode_of(b));
                out!("new mode {}", mode_of(a));
            }
            if a.is_dir() && b.is_dir() {
                return Ok(());
            }
        }
        (None, None) => return Ok(()),
    }
    let old = side(store, c.before.as_ref())?;
    let new = side(store, c.after.as_ref())?;
    let (Some(o), Some(n)) = (text(&old), text(&new)) else {
        let size = |s: &Side| match s {
            Side::Binary(n) | Side::TooLarge(n) => *n,
            Side::Text(t) => t.len() as u64,
            _ => 0,
        };
        let large = matches!(old, Side::TooLarge(_)) || matches!(new, Side::TooLarge(_));
        let what = if large { "Large files" } else { "Binary files" };
        out!("{what} {a} and {b} differ ({} -> {})", ui::bytes(size(&old)), ui::bytes(size(&new)));
        return Ok(());
    };
    if o == n {
        return Ok(());
    }
    let a_name = if c.before.is_some() { a.clone() } else { "/dev/null".into() };
    let b_name = if c.after.is_some() { b.clone() } else { "/dev/null".into() };
    out!("{}", paint(&format!("--- {a_name}"), "1", color));
    out!("{}", paint(&format!("+++ {b_name}"), "1", color));
    for (h, lines) in ws_snapshot::hunks::patch(o, n) {
        print_hunk(&h, &lines, color);
    }
    Ok(())
}

/// One `@@` block, every line rendered by `display` (the agent wrote them).
pub(crate) fn print_hunk(h: &Hunk, lines: &[Line<'_>], color: bool) {
    let header = format!("@@ -{} +{} @@", range(h.old_start, h.old_lines), range(h.new_start, h.new_lines));
    out!("{}", paint(&header, "36", color));
    for line in lines {
        let (sign, code, value) = match *line {
            Line::Removed(v) => ('-', "31", v),
            Line::Added(v) => ('+', "32", v),
            Line::Context(v) => (' ', "", v),
        };
        let text = display::text(value.strip_suffix(b"\n").unwrap_or(value));
        let s = format!("{sign}{text}");
        if code.is_empty() {
            out!("{s}")
        } else {
            out!("{}", paint(&s, code, color))
        }
        if !value.ends_with(b"\n") {
            out!("\\ No newline at end of file");
        }
    }
}

/// Unified-diff range: `start,len`, `start` alone for one line (the
/// start already follows git's convention for empty ranges).
fn range(start: usize, len: usize) -> String {
    match len {
        1 => format!("{start}"),
        n => format!("{start},{n}"),
    }
}

/// Line counts of a change: (insertions, deletions), `None` for binary.
fn line_counts(store: &Store, c: &Change) -> Option<(usize, usize)> {
    let old = side(store, c.before.as_ref()).ok()?;
    let new = side(store, c.after.as_ref()).ok()?;
    let (o, n) = (text(&old)?, text(&new)?);
    let diff = TextDiff::from_lines(o, n);
    let (mut ins, mut del) = (0, 0);
    for ch in diff.iter_all_changes() {
        match ch.tag() {
            ChangeTag::Insert => ins += 1,
            ChangeTag::Delete => del += 1,
            ChangeTag::Equal => {}
        }
    }
    Some((ins, del))
}

fn print_stat(store: &Store, pending: &[&Change], before: &Manifest, color: bool) {
    let files: Vec<&&Change> =
        pending.iter().filter(|c| !c.before.as_ref().or(c.after.as_ref()).is_some_and(Entry::is_dir)).collect();
    let width = files.iter().map(|c| display::name(c.path.as_bytes()).chars().count()).max().unwrap_or(0).min(60);
    let (mut total_ins, mut total_del) = (0, 0);
    for c in &files {
        let name = display::name(c.path.as_bytes());
        let detail = match line_counts(store, c) {
            Some((ins, del)) => {
                total_ins += ins;
                total_del += del;
                let bar_len = (ins + del).min(40);
                let plus = (bar_len * ins).checked_div(ins + del).unwrap_or(0);
                let bar = format!(
                    "{}{}",
                    paint(&"+".repeat(plus), "32", color),
                    paint(&"-".repeat(bar_len - plus), "31", color)
                );
                format!("{:>5} {bar}", ins + del)
            }
            None => {
                let size = |e: Option<&Entry>| e.map_or(0, |e| e.stat.size);
                format!("  Bin {} -> {} bytes", size(c.before.as_ref()), size(c.after.as_ref()))
            }
        };
        out!(" {name:<width$} |{detail}");
    }
    out!(
        " {} file{} changed, {} insertion{}(+), {} deletion{}(-)",
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        total_ins,
        if total_ins == 1 { "" } else { "s" },
        total_del,
        if total_del == 1 { "" } else { "s" }
    );
    for e in before.excluded() {
        if let EntryKind::Excluded { files, bytes, .. } = e.kind {
            out!(
                " excluded: {} ({}+ files, {}+): not in the snapshot, rollback cannot restore it",
                ui::entry_name(e),
                ui::count(files),
                ui::bytes(bytes)
            );
        }
    }
}

#[derive(Serialize)]
struct ChangeJson {
    path: String,
    /// Hex of the raw path bytes, present only when the path is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    path_bytes: Option<String>,
    status: &'static str,
    state: &'static str,
    before: Option<&'static str>,
    after: Option<&'static str>,
    insertions: Option<usize>,
    deletions: Option<usize>,
    git_internal: bool,
    /// Who made the change: `session`, `outside` (another process during the
    /// session), or `both`. Always `session` when no write recorder ran.
    by: &'static str,
    /// The `@@` blocks of a text change between regular files (absent: added
    /// or deleted), ids from 1 in file order; `null` for anything else.
    hunks: Option<Vec<HunkJson>>,
}

#[derive(Serialize)]
struct HunkJson {
    id: usize,
    old_start: usize,
    old_lines: usize,
    new_start: usize,
    new_lines: usize,
}

impl From<Hunk> for HunkJson {
    fn from(h: Hunk) -> Self {
        HunkJson {
            id: h.id,
            old_start: h.old_start,
            old_lines: h.old_lines,
            new_start: h.new_start,
            new_lines: h.new_lines,
        }
    }
}

/// The hunks of a change between regular files (or a file and nothing).
fn hunks_json(store: &Store, c: &Change) -> Option<Vec<HunkJson>> {
    let file = |e: &Option<Entry>| e.as_ref().is_none_or(|e| matches!(e.kind, EntryKind::File { .. }));
    if !file(&c.before) || !file(&c.after) {
        return None;
    }
    let old = side(store, c.before.as_ref()).ok()?;
    let new = side(store, c.after.as_ref()).ok()?;
    let (o, n) = (text(&old)?, text(&new)?);
    Some(ws_snapshot::hunks::hunks(o, n).into_iter().map(HunkJson::from).collect())
}

pub fn origin_word(o: Origin) -> &'static str {
    match o {
        Origin::Session => "session",
        Origin::Outside => "outside",
        Origin::Both => "both",
    }
}

pub fn origin_note(o: Origin) -> &'static str {
    match o {
        Origin::Session => "by the session",
        Origin::Outside => "changed outside the session",
        Origin::Both => "changed by the session and outside it",
    }
}

fn path_fields(p: &RelPath) -> (String, Option<String>) {
    match p.to_str() {
        Some(s) => (s.to_owned(), None),
        None => (
            String::from_utf8_lossy(p.as_bytes()).into_owned(),
            Some(p.as_bytes().iter().map(|b| format!("{b:02x}")).collect()),
        ),
    }
}

fn change_json(store: &Store, c: &Change) -> ChangeJson {
    let (path, path_bytes) = path_fields(&c.path);
    let lines = line_counts(store, c);
    ChangeJson {
        path,
        path_bytes,
        status: status_word(c),
        state: match c.state {
            ChangeState::Pending => "pending",
            ChangeState::Approved => "approved",
            ChangeState::RolledBack => "rolled_back",
        },
        before: c.before.as_ref().map(Entry::kind_name),
        after: c.after.as_ref().map(Entry::kind_name),
        insertions: lines.map(|l| l.0),
        deletions: lines.map(|l| l.1),
        git_internal: git_internal(&c.path),
        by: "session",
        hunks: hunks_json(store, c),
    }
}

#[derive(Serialize)]
pub struct ExcludedJson {
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    path_bytes: Option<String>,
    reason: &'static str,
    files_at_least: u64,
    bytes_at_least: u64,
}

pub fn excluded_json(m: &Manifest) -> Vec<ExcludedJson> {
    m.excluded()
        .filter_map(|e| {
            let EntryKind::Excluded { reason, files, bytes } = e.kind else {
                return None;
            };
            let (path, path_bytes) = path_fields(&e.path);
            Some(ExcludedJson {
                path,
                path_bytes,
                reason: match reason {
                    ws_snapshot::ExcludeReason::OverBudget => "over_budget",
                    ws_snapshot::ExcludeReason::Special => "special_file",
                    ws_snapshot::ExcludeReason::Unreadable => "unreadable",
                    ws_snapshot::ExcludeReason::NoSpace => "no_space",
                },
                files_at_least: files,
                bytes_at_least: bytes,
            })
        })
        .collect()
}
