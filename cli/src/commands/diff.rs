//! `ws diff`: what a session changed, as a git-style patch, a stat, names, or JSON.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use ws_snapshot::hunks::{Hunk, Line};
use ws_snapshot::renames::DEFAULT_MIN_SIMILARITY;
use ws_snapshot::{ChangeState, Entry, EntryKind, ManifestId, RelPath, Store};

use crate::commands::session::counts;
use crate::error::{CliError, exit};
use crate::recording::{Attribution, Origin};
use crate::workspace::Workspace;
use crate::{display, out, ui};
use ws_session::patch::{self, side, text};

/// Show what a session changed: snapshot version against the session's version.
///
/// Shows the pending changes of the newest session pending review, or of the
/// session given by id (a unique prefix is enough) or name. `--json` lists every
/// change with its state (pending, approved, rolled_back).
///
/// A file the session moved shows as a rename (`rename from`/`rename to`,
/// `old => new`, R and its similarity): identical content, or at least 50%
/// similar as git's `-M` counts it. Naming either path shows the rename.
///
/// Examples: ws diff --stat · ws diff 3fa2 -- src/ · ws diff --json | jq · ws diff -M90%
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Session id or name; default: the newest session pending review.
    #[arg(add = clap_complete::ArgValueCompleter::new(crate::commands::completions::session_ids))]
    id: Option<String>,
    /// Per-file summary with line counts, and what the snapshot excluded.
    #[arg(long, conflicts_with_all = ["name_status", "json"])]
    stat: bool,
    /// One line per change: A (created), M (modified), D (deleted), T (type
    /// changed), R and the similarity (renamed: `R100`, OLD and NEW, tab-separated).
    #[arg(long, conflicts_with = "json")]
    name_status: bool,
    /// Machine-readable output (stable; documented in the README).
    #[arg(long)]
    json: bool,
    /// Also show changes inside `.git/objects`, `.git/logs` and `.git/index`
    /// (hidden by default: they follow from refs and staging, which are shown).
    #[arg(long)]
    git_internals: bool,
    /// Show as renames only pairs at least N% similar (git's `-M`; default
    /// 50%). Below 50%, pairs are looked for again for this view only:
    /// approve and rollback pair paths as the session's end found them.
    /// The value is attached (`-M90`, `-M90%`, `--find-renames=90`).
    #[arg(short = 'M', long, value_name = "N", num_args = 0..=1,
          default_missing_value = "50", value_parser = parse_similarity)]
    find_renames: Option<u8>,
    /// Show every rename as a deletion and a creation.
    #[arg(long, conflicts_with = "find_renames")]
    no_renames: bool,
    /// Only changes at or under these paths.
    #[arg(last = true)]
    paths: Vec<PathBuf>,
}

/// `-M`'s value: a percentage, `90` or `90%` (git also takes `-M90%`).
fn parse_similarity(s: &str) -> Result<u8, String> {
    let n: u8 = s.strip_suffix('%').unwrap_or(s).parse().map_err(|_| format!("{s}: not a percentage"))?;
    if n > 100 {
        return Err(format!("{s}: more than 100%"));
    }
    Ok(n)
}

pub fn cmd_diff(args: DiffArgs) -> Result<i32, CliError> {
    let ws = Workspace::discover(crate::env::options())?;
    let mut session = ws.store.resolve_session(args.id.as_deref())?;
    let mut changes = {
        let _lock = ws.lock()?;
        let mut changes = ws.session_changes(&mut session)?;
        ws_snapshot::finish_hunk_rollback(&ws.store, &ws.root, &mut session, &mut changes)?;
        changes
    };
    // Renames as the session's end found them, at 50%; a stricter -M only
    // drops pairs (best first, so the rest are the same), a looser one
    // pairs again for this view.
    let min_similarity = match (args.no_renames, args.find_renames) {
        (true, _) => 101,
        (false, Some(n)) if n < DEFAULT_MIN_SIMILARITY => {
            let opts = ws_snapshot::RenameOptions { min_similarity: n.max(1), ..Default::default() };
            // Content `ws gc` freed cannot be compared: the recorded pairs stay.
            if let Err(e) = ws_snapshot::find_renames(&ws.store, &mut changes, &opts) {
                ui::note(&format!("renames as recorded: cannot compare contents ({})", crate::error::chain(&e)));
            }
            0
        }
        (false, n) => u16::from(n.unwrap_or(DEFAULT_MIN_SIMILARITY)),
    };
    let filter = ws.rel_paths(&args.paths)?;
    let who = Attribution::load(&ws.store, &session, &*ws.options.observer);
    let mut selected: Vec<usize> = (0..changes.len())
        .filter(|&i| filter.is_empty() || filter.iter().any(|p| changes[i].path.starts_with(p)))
        .collect();
    if min_similarity <= 100 {
        ws_snapshot::renames::with_partners(&changes, &mut selected);
    }
    let origin = |v: &View| match (who.origin_of(v.old), who.origin_of(v.new)) {
        (a, b) if a == b => a,
        _ => Origin::Both,
    };
    if args.json {
        let excluded = excluded_of(&ws.store, &session.before)?;
        let list: Vec<ChangeJson> = ws_snapshot::renames::rows(&changes, &selected, min_similarity)
            .into_iter()
            .map(|r| {
                let v = View::of(&changes, r);
                ChangeJson { by: origin_word(origin(&v)), ..change_json(&ws.store, &v) }
            })
            .collect();
        #[derive(Serialize)]
        struct DiffJson<'a> {
            session: &'a str,
            changes: Vec<ChangeJson>,
            excluded: Vec<ExcludedJson>,
        }
        let doc = DiffJson { session: &session.id, changes: list, excluded: excluded_json(&excluded) };
        out!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(exit::OK);
    }
    let pending: Vec<usize> = selected.into_iter().filter(|&i| changes[i].state == ChangeState::Pending).collect();
    let hidden = pending.iter().filter(|&&i| git_internal(&changes[i].path)).count();
    let pending: Vec<usize> =
        pending.into_iter().filter(|&i| args.git_internals || !git_internal(&changes[i].path)).collect();
    let pending: Vec<View> = ws_snapshot::renames::rows(&changes, &pending, min_similarity)
        .into_iter()
        .map(|r| View::of(&changes, r))
        .collect();
    let color = ui::stdout_color();
    if args.name_status {
        for v in &pending {
            let status = match v.similarity {
                Some(n) => format!("R{n:03}\t{}", display::name(v.old.as_bytes())),
                None => status_letter(v).to_string(),
            };
            match origin(v) {
                Origin::Session => out!("{status}\t{}", display::name(v.new.as_bytes())),
                o => out!("{status}\t{}\t({})", display::name(v.new.as_bytes()), origin_note(o)),
            }
        }
    } else if args.stat {
        print_stat(&ws.store, &pending, &excluded_of(&ws.store, &session.before)?, color);
    } else {
        for v in &pending {
            print_patch(&ws.store, v, color)?;
        }
    }
    if !args.name_status {
        let others: Vec<String> = pending
            .iter()
            .filter(|v| origin(v) != Origin::Session)
            .map(|v| format!("{} ({})", view_name(v), origin_note(origin(v))))
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

pub use ws_session::git_internal;

pub(crate) use ws_session::patch::View;

/// The row's name for a person: `old => new` for a rename.
fn view_name(v: &View) -> String {
    match v.similarity {
        Some(_) => rename_name(v.old.as_bytes(), v.new.as_bytes()),
        None => display::name(v.new.as_bytes()),
    }
}

/// `old => new`, shortened as git's `--stat` does to `dir/{old => new}`
/// when the two share a leading directory or a trailing part. Names that
/// must be quoted are shown whole, each quoted.
fn rename_name(old: &[u8], new: &[u8]) -> String {
    let (o, n) = (display::name(old), display::name(new));
    if o.as_bytes() != old || n.as_bytes() != new {
        return format!("{o} => {n}");
    }
    // The common part up to and including a `/`, before and after.
    let mut pfx = 0;
    for (i, (a, b)) in o.bytes().zip(n.bytes()).enumerate() {
        if a != b {
            break;
        }
        if a == b'/' {
            pfx = i + 1;
        }
    }
    // The common part from a `/` to the end; it may share the prefix's
    // closing `/` (`d/a` → `d/e/a` is `d/{ => e}/a`), as in git.
    let reach = pfx.saturating_sub(1);
    let mut sfx = 0;
    for (i, (a, b)) in o.bytes().rev().zip(n.bytes().rev()).enumerate() {
        if a != b || o.len() - 1 - i < reach || n.len() - 1 - i < reach {
            break;
        }
        if a == b'/' {
            sfx = i + 1;
        }
    }
    if pfx == 0 && sfx == 0 {
        return format!("{o} => {n}");
    }
    let mid = |s: &str| s.get(pfx..s.len() - sfx).unwrap_or("").to_owned();
    format!("{}{{{} => {}}}{}", &o[..pfx], mid(&o), mid(&n), &o[o.len() - sfx..])
}

fn status_letter(v: &View) -> char {
    match (v.before, v.after) {
        _ if v.similarity.is_some() => 'R',
        (None, _) => 'A',
        (_, None) => 'D',
        (Some(b), Some(a)) if b.kind_name() != a.kind_name() => 'T',
        _ => 'M',
    }
}

fn status_word(v: &View) -> &'static str {
    match status_letter(v) {
        'R' => "renamed",
        'A' => "added",
        'D' => "deleted",
        'T' => "type_changed",
        _ => "modified",
    }
}

pub(crate) fn paint(s: &str, code: &str, color: bool) -> String {
    if color && !code.is_empty() { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_owned() }
}

/// Names, and every line of content, rendered by `display` (in `patch`):
/// the agent wrote them, and they must not drive the reviewer's terminal.
fn print_patch(store: &Store, v: &View, color: bool) -> Result<(), CliError> {
    for l in patch::patch_of(store, v)?.lines {
        out!("{}", paint(&l.text, l.kind.sgr(), color));
    }
    Ok(())
}

/// One `@@` block, every line rendered by `display` (the agent wrote them).
pub(crate) fn print_hunk(h: &Hunk, lines: &[Line<'_>], color: bool) {
    for l in patch::hunk_lines(h, lines) {
        out!("{}", paint(&l.text, l.kind.sgr(), color));
    }
}

/// Line counts of a change: (insertions, deletions), `None` for binary.
fn line_counts(store: &Store, v: &View) -> Option<(usize, usize)> {
    let old = side(store, v.before).ok()?;
    let new = side(store, v.after).ok()?;
    let (o, n) = (text(&old)?, text(&new)?);
    Some(ws_snapshot::hunks::line_counts(o, n))
}

fn print_stat(store: &Store, pending: &[View], excluded: &[Entry], color: bool) {
    let files: Vec<&View> = pending.iter().filter(|v| !v.before.or(v.after).is_some_and(Entry::is_dir)).collect();
    let names: Vec<String> = files.iter().map(|v| view_name(v)).collect();
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0).min(60);
    let (mut total_ins, mut total_del) = (0, 0);
    for (c, name) in files.iter().zip(&names) {
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
                format!("  Bin {} -> {} bytes", size(c.before), size(c.after))
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
    for e in excluded {
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
    /// A rename's old path (`status`: `renamed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from_bytes: Option<String>,
    /// A rename's similarity in percent: 100 for identical content.
    #[serde(skip_serializing_if = "Option::is_none")]
    similarity: Option<u8>,
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
fn hunks_json(store: &Store, v: &View) -> Option<Vec<HunkJson>> {
    let file = |e: Option<&Entry>| e.is_none_or(|e| matches!(e.kind, EntryKind::File { .. }));
    if !file(v.before) || !file(v.after) {
        return None;
    }
    let old = side(store, v.before).ok()?;
    let new = side(store, v.after).ok()?;
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

fn change_json(store: &Store, v: &View) -> ChangeJson {
    let (path, path_bytes) = path_fields(v.new);
    let (from, from_bytes) = match v.similarity {
        Some(_) => {
            let (p, b) = path_fields(v.old);
            (Some(p), b)
        }
        None => (None, None),
    };
    let lines = line_counts(store, v);
    ChangeJson {
        path,
        path_bytes,
        from,
        from_bytes,
        similarity: v.similarity,
        status: status_word(v),
        state: match v.state {
            ChangeState::Pending => "pending",
            ChangeState::Approved => "approved",
            ChangeState::RolledBack => "rolled_back",
        },
        before: v.before.map(Entry::kind_name),
        after: v.after.map(Entry::kind_name),
        insertions: lines.map(|l| l.0),
        deletions: lines.map(|l| l.1),
        git_internal: git_internal(v.new),
        by: "session",
        hunks: hunks_json(store, v),
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

/// What the snapshot `id` left out (over budget, special files): from its
/// index, without reading its whole listing.
pub fn excluded_of(store: &Store, id: &str) -> Result<Vec<Entry>, CliError> {
    Ok(ws_snapshot::Stored::open(store, &ManifestId(id.to_owned()))?.excluded().into_iter().cloned().collect())
}

pub fn excluded_json(excluded: &[Entry]) -> Vec<ExcludedJson> {
    excluded
        .iter()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_names_share_their_common_directories_as_git_stat_does() {
        assert_eq!(rename_name(b"a", b"b"), "a => b");
        assert_eq!(rename_name(b"src/a.rs", b"src/b.rs"), "src/{a.rs => b.rs}");
        assert_eq!(rename_name(b"x/f", b"y/f"), "{x => y}/f");
        assert_eq!(rename_name(b"a", b"d/a"), "a => d/a");
        assert_eq!(rename_name(b"d/a", b"d/e/a"), "d/{ => e}/a");
        assert_eq!(rename_name(b"p/x/q", b"p/y/q"), "p/{x => y}/q");
        // A name that must be quoted is shown whole, quoted, never cut inside an escape.
        assert_eq!(rename_name(b"d/\x1b[2K", b"d/b"), "\"d/\\033[2K\" => d/b");
    }
}
