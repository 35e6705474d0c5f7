//! `ws rollback -p` and `ws approve -p`: walk the hunks as `git add -p` does.
//!
//! Paths in order, hunks in file order, one prompt each with git's keys
//! (y n q a d s ?); answers are read a line at a time, so a script can pipe
//! them. Nothing changes until the walk ends; then the chosen pieces go to
//! the same library calls as `--hunk`. Every line shown is rendered by
//! `display`: the agent wrote it.

use std::io::BufRead;

use ws_snapshot::hunks::{self, MAX_TEXT};
use ws_snapshot::{Change, ChangeState, EntryKind, HunkPick, RelPath, Store};

use crate::commands::diff::{paint, print_hunk};
use crate::error::CliError;
use crate::{display, out, ui};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Rollback,
    Approve,
}

impl Verb {
    fn word(self) -> &'static str {
        match self {
            Verb::Rollback => "roll back",
            Verb::Approve => "approve",
        }
    }
}

/// The two contents of a pending change between regular text files.
/// Old and new content.
type Texts = (Vec<u8>, Vec<u8>);

fn texts(store: &Store, c: &Change) -> Result<Option<Texts>, CliError> {
    let (Some(b), Some(a)) = (&c.before, &c.after) else { return Ok(None) };
    let (EntryKind::File { object: ob, .. }, EntryKind::File { object: oa, .. }) = (&b.kind, &a.kind) else {
        return Ok(None);
    };
    if c.state != ChangeState::Pending || b.stat.size > MAX_TEXT || a.stat.size > MAX_TEXT {
        return Ok(None);
    }
    let (old, new) = (store.read_object(ob)?, store.read_object(oa)?);
    Ok((hunks::is_text(&old) && hunks::is_text(&new)).then_some((old, new)))
}

/// What one prompt is about: a whole hunk, or one change of a split hunk.
#[derive(Clone, Copy)]
enum Item {
    Hunk(usize),
    Change(usize),
}

/// Walks the hunks of the pending text changes under `paths` (all if
/// empty) and returns what was chosen. `input`: where answers come from.
pub(crate) fn walk(
    store: &Store,
    changes: &[Change],
    paths: &[RelPath],
    verb: Verb,
    input: &mut dyn BufRead,
) -> Result<Vec<HunkPick>, CliError> {
    let color = ui::stdout_color();
    let mut picks = Vec::new();
    let mut by_path = 0;
    for c in changes.iter().filter(|c| paths.is_empty() || paths.iter().any(|p| c.path.starts_with(p))) {
        if c.state != ChangeState::Pending {
            continue;
        }
        let Some((old, new)) = texts(store, c)? else {
            by_path += 1;
            continue;
        };
        let (a, b) = (display::prefixed("a/", c.path.as_bytes()), display::prefixed("b/", c.path.as_bytes()));
        out!("{}", paint(&format!("diff --ws {a} {b}"), "1", color));
        out!("{}", paint(&format!("--- {a}"), "1", color));
        out!("{}", paint(&format!("+++ {b}"), "1", color));
        let (whole, split, of) =
            (hunks::patch(&old, &new), hunks::split_patch(&old, &new), hunks::hunk_of_changes(&old, &new));
        let mut decided: Vec<Option<bool>> = vec![None; split.len()];
        let mut items: Vec<Item> = (1..=whole.len()).map(Item::Hunk).collect();
        let mut at = 0;
        let mut quit = false;
        let changes_of = |item: Item| -> Vec<usize> {
            match item {
                Item::Hunk(h) => (1..=of.len()).filter(|&k| of[k - 1] == h).collect(),
                Item::Change(k) => vec![k],
            }
        };
        while at < items.len() {
            let item = items[at];
            let splittable = matches!(item, Item::Hunk(_)) && changes_of(item).len() > 1;
            match item {
                Item::Hunk(h) => print_hunk(&whole[h - 1].0, &whole[h - 1].1, color),
                Item::Change(k) => print_hunk(&split[k - 1].0, &split[k - 1].1, color),
            }
            let keys = if splittable { "y,n,q,a,d,s,?" } else { "y,n,q,a,d,?" };
            ui::prompt(&format!("({}/{}) {} this hunk [{keys}]? ", at + 1, items.len(), capitalized(verb.word())));
            let mut line = String::new();
            let answer = match input.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    say("");
                    "q"
                }
                Ok(_) => line.trim(),
            };
            let mut set = |from: usize, to: usize, v: bool| {
                for it in &items[from..to] {
                    for k in changes_of(*it) {
                        decided[k - 1] = Some(v);
                    }
                }
            };
            match (answer, splittable) {
                ("y", _) => set(at, at + 1, true),
                ("n", _) => set(at, at + 1, false),
                ("a", _) => {
                    set(at, items.len(), true);
                    break;
                }
                ("d", _) => {
                    set(at, items.len(), false);
                    break;
                }
                ("q", _) => {
                    quit = true;
                    break;
                }
                ("s", true) => {
                    let parts: Vec<Item> = changes_of(item).into_iter().map(Item::Change).collect();
                    ui::note(&format!("split into {} hunks", parts.len()));
                    items.splice(at..at + 1, parts);
                    continue;
                }
                _ => {
                    help(verb, splittable);
                    continue;
                }
            }
            at += 1;
        }
        let ids: Vec<usize> = (1..=decided.len()).filter(|&k| decided[k - 1] == Some(true)).collect();
        if !ids.is_empty() {
            picks.push(HunkPick { path: c.path.clone(), ids, split: true });
        }
        if quit {
            return Ok(picks);
        }
    }
    if by_path > 0 {
        ui::note(&format!(
            "{by_path} other change{} (created, deleted, binary, symlink or too large) not shown: review {} by path",
            if by_path == 1 { "" } else { "s" },
            if by_path == 1 { "it" } else { "them" }
        ));
    }
    Ok(picks)
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

fn help(verb: Verb, splittable: bool) {
    let w = verb.word();
    let mut lines = vec![
        format!("y - {w} this hunk"),
        format!("n - do not {w} this hunk"),
        format!("q - quit; do not {w} this hunk or any of the remaining ones"),
        format!("a - {w} this hunk and all later hunks in the file"),
        format!("d - do not {w} this hunk or any of the later hunks in the file"),
    ];
    if splittable {
        lines.push("s - split the current hunk into smaller hunks".into());
    }
    lines.push("? - print help".into());
    for l in lines {
        say(&l);
    }
}

/// A line of the dialogue on stderr (stdout carries the hunks).
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
