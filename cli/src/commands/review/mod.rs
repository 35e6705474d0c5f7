//! `ws review`: the session's changes on one full screen, to mark path by
//! path or hunk by hunk, applied only when the user says yes on leaving.
//!
//! `model` is the screen as a pure state machine (unit-tested key by key),
//! `view` draws it, `apply` carries out the marks through the same calls as
//! `ws approve` and `ws rollback`. This file loads the session, runs the
//! terminal and loads a path's patch only when the cursor reaches it, so
//! the first screen costs the change list and one diff, whatever the
//! number of changes.

mod apply;
mod model;
mod view;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ws_snapshot::{Change, ChangeState, EntryKind, Store};

use self::model::{Action, Key, Model, Row, Status};
use self::view::Screen;
use crate::commands::diff::git_internal;
use crate::error::{CliError, exit};
use crate::recording::Attribution;
use crate::workspace::Workspace;
use crate::{display, out, ui};
use ws_session::patch::{self, Kind, Patch, PatchLine};

/// Review a session's changes on a full screen: mark paths or hunks to
/// approve or roll back, then apply the marks on leaving.
///
/// The changes pending review are listed in path order with who made them
/// (the session, a process outside it, or both); the selected path's diff is
/// shown beside the list, or below it on a narrow terminal. Keys: j/k or the
/// arrows move, Enter or Tab opens a path's hunks, `a` marks to approve, `r`
/// to roll back, `u` unmarks, `/` searches (n, N), `?` helps, `q` quits and
/// asks whether to apply the marks (y/n, Esc goes back). Nothing changes on
/// disk before that answer; then the marks are applied as `ws approve` and
/// `ws rollback` (paths and `--hunk`) apply them, conflicts included: a path
/// changed after the session is left alone and reported (exit 3).
///
/// Needs a terminal; from a script use `ws diff`, and `ws approve -p` or
/// `ws rollback -p` to choose hunks.
///
/// Examples: ws review · ws review 3fa2 · ws review -- src/
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// Session id or name; default: the newest session pending review.
    id: Option<String>,
    /// Also list changes inside `.git/objects`, `.git/logs` and `.git/index`.
    #[arg(long)]
    git_internals: bool,
    /// Print the first screen (80×24, no colour) as text and exit, without a
    /// terminal: what the benchmark times.
    #[arg(long, hide = true)]
    first_frame: bool,
    /// Only changes at or under these paths.
    #[arg(last = true)]
    paths: Vec<PathBuf>,
}

pub fn cmd_review(args: ReviewArgs) -> Result<i32, CliError> {
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if !args.first_frame && !terminal {
        return Err(CliError::usage("ws review needs a terminal (its input and output are not one)").hint(
            "use `ws diff` to read the changes, and `ws approve`/`ws rollback` (with -p to choose hunks) to act on them",
        ));
    }
    let ws = Workspace::discover(crate::env::options())?;
    let mut session = ws.store.resolve_session(args.id.as_deref())?;
    let changes = {
        let _lock = ws.lock()?;
        let mut changes = ws.session_changes(&mut session)?;
        ws_snapshot::finish_hunk_rollback(&ws.store, &ws.root, &mut session, &mut changes)?;
        changes
    };
    let filter = ws.rel_paths(&args.paths)?;
    let who = Attribution::load(&ws.store, &session, &*ws.options.observer);
    let selected = |c: &&Change| {
        c.state == ChangeState::Pending && (filter.is_empty() || filter.iter().any(|p| c.path.starts_with(p)))
    };
    let hidden = changes.iter().filter(selected).filter(|c| git_internal(&c.path)).count();
    let shown: Vec<usize> = (0..changes.len())
        .filter(|&i| selected(&&changes[i]) && (args.git_internals || !git_internal(&changes[i].path)))
        .collect();
    // A rename is one row, named by both paths, acted on by its new one
    // (approve and rollback take both halves).
    let mut listed = Vec::new();
    let mut rows = Vec::new();
    for row in ws_snapshot::renames::rows(&changes, &shown, 0) {
        match row {
            ws_snapshot::renames::Row::One(i) => {
                let c = &changes[i];
                rows.push(Row {
                    name: display::name(c.path.as_bytes()),
                    status: status(c),
                    by: who.origin_of(&c.path),
                });
                listed.push(Listed { change: c.clone(), from: None });
            }
            ws_snapshot::renames::Row::Renamed { from, to, similarity } => {
                let (old, new) = (&changes[from], &changes[to]);
                let name = format!("{} => {}", display::name(old.path.as_bytes()), display::name(new.path.as_bytes()));
                rows.push(Row { name, status: Status::Renamed, by: who.origin_of(&new.path) });
                listed.push(Listed { change: new.clone(), from: Some((old.clone(), similarity)) });
            }
        }
    }
    let excluded = crate::commands::diff::excluded_of(&ws.store, &session.before)?
        .iter()
        .filter_map(|e| match e.kind {
            EntryKind::Excluded { files, bytes, .. } => {
                Some(format!("{} ({}+ files, {}+)", ui::entry_name(e), ui::count(files), ui::bytes(bytes)))
            }
            _ => None,
        })
        .collect();
    let screen = Screen {
        session: session.id.clone(),
        excluded,
        hidden: if args.git_internals { 0 } else { hidden },
        color: !args.first_frame && !crate::env::no_color(),
    };
    let mut review = Review { model: Model::new(rows), patches: HashMap::new(), listed };
    if args.first_frame {
        for line in review.first_frame(&ws.store, &screen)? {
            out!("{}", line.trim_end());
        }
        return Ok(exit::OK);
    }
    match review.run(&ws.store, &screen)? {
        Action::Apply => {
            let plan = review.model.plan();
            apply::apply(&ws, &session.id, &plan, &review.listed, &review.patches)
        }
        _ => {
            let plan = review.model.plan();
            if !plan.is_empty() {
                ui::note(&format!("nothing applied (you had marked to {})", plan.summary()));
            }
            Ok(exit::OK)
        }
    }
}

fn status(c: &Change) -> Status {
    match (&c.before, &c.after) {
        (None, _) => Status::Added,
        (_, None) => Status::Deleted,
        (Some(b), Some(a)) if b.kind_name() != a.kind_name() => Status::TypeChanged,
        _ => Status::Modified,
    }
}

/// Patches kept at most (those with marked hunks are always kept: applying
/// their marks needs the hunks the user saw).
const PATCH_CACHE: usize = 64;

struct Review {
    model: Model,
    /// By row: loaded when the cursor first reaches the row.
    patches: HashMap<usize, Patch>,
    listed: Vec<Listed>,
}

/// The change a row stands for, and for a rename the deleted half too.
pub(crate) struct Listed {
    pub change: Change,
    pub from: Option<(Change, u8)>,
}

impl Listed {
    /// The row's patch, as `ws diff` prints it.
    pub(crate) fn patch(&self, store: &Store) -> Result<Patch, CliError> {
        Ok(match &self.from {
            None => patch::patch(store, &self.change)?,
            Some((old, similarity)) => patch::patch_of(
                store,
                &ws_session::patch::View {
                    old: &old.path,
                    new: &self.change.path,
                    before: old.before.as_ref(),
                    after: self.change.after.as_ref(),
                    state: self.change.state,
                    similarity: Some(*similarity),
                },
            )?,
        })
    }
}

impl Review {
    /// Loads the patch under the cursor if it is not loaded yet.
    fn load_selected(&mut self, store: &Store) {
        let row = self.model.cursor;
        if row >= self.listed.len() || self.patches.contains_key(&row) {
            return;
        }
        if self.patches.len() >= PATCH_CACHE {
            let model = &self.model;
            self.patches.retain(|&r, _| model.has_hunk_marks(r));
        }
        let p = self.listed[row].patch(store).unwrap_or_else(|e| Patch {
            lines: vec![PatchLine { kind: Kind::Meta, text: format!("cannot show this change: {}", e.message) }],
            ..Patch::default()
        });
        self.model.set_hunk_count(row, if p.hunkable { p.hunks.len() } else { 0 });
        self.patches.insert(row, p);
    }

    fn first_frame(&mut self, store: &Store, screen: &Screen) -> Result<Vec<String>, CliError> {
        use ratatui::backend::TestBackend;
        self.load_selected(store);
        let mut t = ratatui::Terminal::new(TestBackend::new(80, 24)).map_err(|e| CliError::failure(e.to_string()))?;
        let (model, patches) = (&mut self.model, &self.patches);
        t.draw(|f| view::draw(f, model, patches.get(&model.cursor), screen))
            .map_err(|e| CliError::failure(e.to_string()))?;
        let b = t.backend().buffer();
        Ok((0..b.area.height)
            .map(|y| (0..b.area.width).map(|x| b[(x, y)].symbol().to_owned()).collect::<String>())
            .collect())
    }

    /// The terminal loop, until the user quits (with or without applying).
    fn run(&mut self, store: &Store, screen: &Screen) -> Result<Action, CliError> {
        let failed = |e: std::io::Error| CliError::failure(format!("the terminal failed: {e}"));
        let mut terminal = ratatui::try_init().map_err(failed)?;
        // Starts the terminal's event reader, which catches SIGWINCH, before
        // the first screen is drawn: it starts lazily, at the first read,
        // and a resize between the first draw and that read was lost (the
        // review kept its old size until a key came; seen under load).
        event::poll(std::time::Duration::ZERO).map_err(failed)?;
        let result = (|| loop {
            self.load_selected(store);
            let (model, patches) = (&mut self.model, &self.patches);
            terminal.draw(|f| view::draw(f, model, patches.get(&model.cursor), screen))?;
            // A resize needs only the redraw above.
            if let Event::Key(k) = event::read()? {
                for key in keys_of(k) {
                    match self.model.update(key) {
                        Action::Redraw => {}
                        done => return Ok(done),
                    }
                }
            }
        })();
        ratatui::restore();
        result.map_err(failed)
    }
}

/// The keys a terminal event stands for. An Esc that arrives together with
/// the next key reads as Alt+key (the same bytes): the review binds no Alt
/// key, so it is that Esc, then the key.
fn keys_of(k: KeyEvent) -> Vec<Key> {
    let Some(key) = key_of(k) else { return Vec::new() };
    if k.modifiers.contains(KeyModifiers::ALT) { vec![Key::Esc, key] } else { vec![key] }
}

fn key_of(k: KeyEvent) -> Option<Key> {
    if k.kind != KeyEventKind::Press {
        return None;
    }
    if k.modifiers.contains(KeyModifiers::CONTROL) {
        return matches!(k.code, KeyCode::Char('c')).then_some(Key::CtrlC);
    }
    Some(match k.code {
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Enter => Key::Enter,
        KeyCode::Tab => Key::Tab,
        KeyCode::Esc => Key::Esc,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Char(c) => Key::Char(c),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn terminal_keys_map_to_review_keys() {
        assert_eq!(keys_of(ev(KeyCode::Char('j'), KeyModifiers::NONE)), [Key::Char('j')]);
        assert_eq!(keys_of(ev(KeyCode::Char('c'), KeyModifiers::CONTROL)), [Key::CtrlC]);
        assert_eq!(keys_of(ev(KeyCode::Char('x'), KeyModifiers::CONTROL)), []);
        assert_eq!(keys_of(ev(KeyCode::Esc, KeyModifiers::NONE)), [Key::Esc]);
        // Esc then j, read in one go.
        assert_eq!(keys_of(ev(KeyCode::Char('j'), KeyModifiers::ALT)), [Key::Esc, Key::Char('j')]);
        assert_eq!(keys_of(ev(KeyCode::F(1), KeyModifiers::NONE)), []);
        let mut release = ev(KeyCode::Char('q'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        assert_eq!(keys_of(release), []);
    }
}
