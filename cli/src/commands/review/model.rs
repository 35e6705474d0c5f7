//! The review screen as a pure state machine: a [`Model`] and a [`Key`] give
//! the next model and an [`Action`]. No terminal, no store, no clock: what
//! the screen needs from the disk (how many hunks a path has) is handed in
//! by the caller, and marks change nothing until the caller applies the
//! [`Plan`] after the user confirmed it.

use std::collections::BTreeMap;

use crate::recording::Origin;

/// What a listed change is. Letters as `ws diff --name-status` prints them;
/// a rename (with both names in its row's `name`) joins here when the
/// change set detects them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Added,
    Modified,
    Deleted,
    TypeChanged,
    /// A move (the row names both paths); acted on as one.
    Renamed,
}

impl Status {
    pub(crate) fn letter(self) -> char {
        match self {
            Status::Added => 'A',
            Status::Modified => 'M',
            Status::Deleted => 'D',
            Status::TypeChanged => 'T',
            Status::Renamed => 'R',
        }
    }
}

/// One pending change as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Row {
    /// As `display::name` renders it: inert, one line.
    pub name: String,
    pub status: Status,
    pub by: Origin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mark {
    Approve,
    Rollback,
}

/// A key, as the screen understands it (the terminal's events map onto these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Home,
    End,
    Enter,
    Tab,
    Esc,
    Backspace,
    CtrlC,
    Char(char),
}

/// What the caller does after a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Draw again.
    Redraw,
    /// Leave; nothing on disk changes.
    Quit,
    /// Leave and apply [`Model::plan`] (the user said yes).
    Apply,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Focus {
    List,
    /// The cursor is on the hunks of the selected path (index into them).
    Hunks(usize),
}

/// The marks, as the calls that carry them out: row indices, hunk ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub approve_paths: Vec<usize>,
    pub rollback_paths: Vec<usize>,
    pub approve_hunks: Vec<(usize, Vec<usize>)>,
    pub rollback_hunks: Vec<(usize, Vec<usize>)>,
}

impl Plan {
    pub(crate) fn is_empty(&self) -> bool {
        self.approve_paths.is_empty()
            && self.rollback_paths.is_empty()
            && self.approve_hunks.is_empty()
            && self.rollback_hunks.is_empty()
    }

    /// "approve 2 paths, 1 hunk · roll back 1 path"
    pub(crate) fn summary(&self) -> String {
        let count = |paths: usize, hunks: usize| {
            let mut parts = Vec::new();
            if paths > 0 {
                parts.push(format!("{paths} path{}", if paths == 1 { "" } else { "s" }));
            }
            if hunks > 0 {
                parts.push(format!("{hunks} hunk{}", if hunks == 1 { "" } else { "s" }));
            }
            parts.join(", ")
        };
        let hunks = |v: &[(usize, Vec<usize>)]| v.iter().map(|(_, ids)| ids.len()).sum::<usize>();
        let mut out = Vec::new();
        let a = count(self.approve_paths.len(), hunks(&self.approve_hunks));
        if !a.is_empty() {
            out.push(format!("approve {a}"));
        }
        let r = count(self.rollback_paths.len(), hunks(&self.rollback_hunks));
        if !r.is_empty() {
            out.push(format!("roll back {r}"));
        }
        out.join(" · ")
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Model {
    pub rows: Vec<Row>,
    pub cursor: usize,
    pub focus: Focus,
    /// First row shown in the list (kept by [`Model::scroll_list`]).
    pub list_top: usize,
    /// Lines the diff pane is scrolled by, with the cursor on the list.
    pub diff_scroll: usize,
    path_marks: BTreeMap<usize, Mark>,
    hunk_marks: BTreeMap<(usize, usize), Mark>,
    /// Hunks of the rows whose patch the caller loaded: how many, 0 when
    /// the path cannot be reviewed hunk by hunk.
    hunk_counts: BTreeMap<usize, usize>,
    /// The last search, for `n`/`N`.
    pub query: String,
    /// The search being typed after `/`.
    pub typing: Option<String>,
    pub help: bool,
    pub confirm: bool,
    /// A line for the status bar, until the next key.
    pub message: Option<String>,
    /// Rows the list shows at once (set from the screen's size).
    pub page: usize,
}

impl Model {
    pub(crate) fn new(rows: Vec<Row>) -> Model {
        Model {
            rows,
            cursor: 0,
            focus: Focus::List,
            list_top: 0,
            diff_scroll: 0,
            path_marks: BTreeMap::new(),
            hunk_marks: BTreeMap::new(),
            hunk_counts: BTreeMap::new(),
            query: String::new(),
            typing: None,
            help: false,
            confirm: false,
            message: None,
            page: 10,
        }
    }

    /// The caller loaded the selected row's patch: it has `n` hunks that can
    /// be marked one by one (0: review it by path).
    pub(crate) fn set_hunk_count(&mut self, row: usize, n: usize) {
        self.hunk_counts.insert(row, n);
    }

    pub(crate) fn hunk_count(&self, row: usize) -> Option<usize> {
        self.hunk_counts.get(&row).copied()
    }

    pub(crate) fn path_mark(&self, row: usize) -> Option<Mark> {
        self.path_marks.get(&row).copied()
    }

    pub(crate) fn hunk_mark(&self, row: usize, id: usize) -> Option<Mark> {
        self.hunk_marks.get(&(row, id)).copied()
    }

    /// Whether some (not all, as a path) of a row's hunks are marked.
    pub(crate) fn has_hunk_marks(&self, row: usize) -> bool {
        self.hunk_marks.range((row, 0)..(row + 1, 0)).next().is_some()
    }

    /// Keeps the cursor's row within the `height` rows the list shows.
    pub(crate) fn scroll_list(&mut self, height: usize) {
        let height = height.max(1);
        self.page = height;
        if self.cursor < self.list_top {
            self.list_top = self.cursor;
        } else if self.cursor >= self.list_top + height {
            self.list_top = self.cursor + 1 - height;
        }
    }

    pub(crate) fn plan(&self) -> Plan {
        let mut plan = Plan::default();
        for (&row, &m) in &self.path_marks {
            match m {
                Mark::Approve => plan.approve_paths.push(row),
                Mark::Rollback => plan.rollback_paths.push(row),
            }
        }
        for (&(row, id), &m) in &self.hunk_marks {
            let list = match m {
                Mark::Approve => &mut plan.approve_hunks,
                Mark::Rollback => &mut plan.rollback_hunks,
            };
            match list.last_mut() {
                Some((r, ids)) if *r == row => ids.push(id),
                _ => list.push((row, vec![id])),
            }
        }
        plan
    }

    pub(crate) fn update(&mut self, key: Key) -> Action {
        self.message = None;
        if key == Key::CtrlC {
            return Action::Quit;
        }
        if self.help {
            self.help = false;
            return Action::Redraw;
        }
        if self.confirm {
            return match key {
                Key::Char('y' | 'Y') => Action::Apply,
                Key::Char('n' | 'N') => Action::Quit,
                Key::Esc => {
                    self.confirm = false;
                    Action::Redraw
                }
                _ => {
                    self.message = Some("y: apply the marks and quit · n: quit without applying · Esc: back".into());
                    Action::Redraw
                }
            };
        }
        if let Some(q) = self.typing.as_mut() {
            match key {
                Key::Char(c) => q.push(c),
                Key::Backspace => {
                    q.pop();
                }
                Key::Esc => self.typing = None,
                Key::Enter => {
                    self.query = self.typing.take().unwrap_or_default();
                    self.search(true, true);
                }
                _ => {}
            }
            return Action::Redraw;
        }
        match key {
            Key::Char('q') => return self.quit(),
            Key::Char('?') => self.help = true,
            Key::Char('/') => {
                self.focus = Focus::List;
                self.typing = Some(String::new());
            }
            Key::Char('n') => self.search(false, true),
            Key::Char('N') => self.search(false, false),
            _ => match self.focus {
                Focus::List => self.list_key(key),
                Focus::Hunks(h) => self.hunk_key(h, key),
            },
        }
        Action::Redraw
    }

    fn quit(&mut self) -> Action {
        if self.plan().is_empty() {
            return Action::Quit;
        }
        self.confirm = true;
        Action::Redraw
    }

    fn move_to(&mut self, row: usize) {
        let row = row.min(self.rows.len().saturating_sub(1));
        if row != self.cursor {
            self.cursor = row;
            self.diff_scroll = 0;
        }
    }

    fn list_key(&mut self, key: Key) {
        match key {
            Key::Up | Key::Char('k') => self.move_to(self.cursor.saturating_sub(1)),
            Key::Down | Key::Char('j') => self.move_to(self.cursor + 1),
            Key::Home | Key::Char('g') => self.move_to(0),
            Key::End | Key::Char('G') => self.move_to(self.rows.len().saturating_sub(1)),
            Key::PageDown | Key::Char(' ') => self.diff_scroll += self.page.max(1),
            Key::PageUp | Key::Char('b') => self.diff_scroll = self.diff_scroll.saturating_sub(self.page.max(1)),
            Key::Enter | Key::Tab | Key::Right | Key::Char('l') => self.open_hunks(),
            Key::Char('a') => self.mark_path(Some(Mark::Approve)),
            Key::Char('r') => self.mark_path(Some(Mark::Rollback)),
            Key::Char('u') => self.mark_path(None),
            Key::Esc => {}
            _ => self.message = Some("unknown key: ? shows the keys".into()),
        }
    }

    fn open_hunks(&mut self) {
        if self.rows.is_empty() {
            return;
        }
        match self.hunk_count(self.cursor) {
            Some(n) if n > 0 => self.focus = Focus::Hunks(0),
            _ => self.message = Some(
                "no hunks to review one by one (created, deleted, binary, symlink or too large): mark the whole path"
                    .into(),
            ),
        }
    }

    fn hunk_key(&mut self, h: usize, key: Key) {
        let n = self.hunk_count(self.cursor).unwrap_or(0);
        match key {
            Key::Up | Key::Char('k') => self.focus = Focus::Hunks(h.saturating_sub(1)),
            Key::Down | Key::Char('j') => self.focus = Focus::Hunks((h + 1).min(n.saturating_sub(1))),
            Key::Home | Key::Char('g') => self.focus = Focus::Hunks(0),
            Key::End | Key::Char('G') => self.focus = Focus::Hunks(n.saturating_sub(1)),
            Key::Enter | Key::Tab | Key::Esc | Key::Left | Key::Char('h') => self.focus = Focus::List,
            Key::Char('a') => self.mark_hunk(h, Some(Mark::Approve)),
            Key::Char('r') => self.mark_hunk(h, Some(Mark::Rollback)),
            Key::Char('u') => self.mark_hunk(h, None),
            _ => self.message = Some("unknown key: ? shows the keys".into()),
        }
    }

    /// A rollback of a path the session did not write is refused as `ws
    /// rollback` refuses it; the reason goes to the status bar.
    fn refused(&mut self, mark: Option<Mark>) -> bool {
        let row = &self.rows[self.cursor];
        if mark == Some(Mark::Rollback) && row.by == Origin::Outside {
            self.message =
                Some(format!("{} was changed outside the session, not by it: rollback leaves it alone", row.name));
            return true;
        }
        false
    }

    fn mark_path(&mut self, mark: Option<Mark>) {
        if self.rows.is_empty() || self.refused(mark) {
            return;
        }
        let row = self.cursor;
        self.hunk_marks.retain(|&(r, _), _| r != row);
        match mark {
            Some(m) => self.path_marks.insert(row, m),
            None => self.path_marks.remove(&row),
        };
        if mark == Some(Mark::Rollback) && self.rows[row].by == Origin::Both {
            self.message = Some(format!(
                "{} was also changed outside the session: rolling it back will be a conflict, as in `ws rollback`",
                self.rows[row].name
            ));
        }
        self.move_to(row + 1);
    }

    fn mark_hunk(&mut self, h: usize, mark: Option<Mark>) {
        if self.refused(mark) {
            return;
        }
        let row = self.cursor;
        let n = self.hunk_count(row).unwrap_or(0);
        // A mark on the whole path becomes a mark on each of its hunks,
        // of which this one then changes.
        if let Some(m) = self.path_marks.remove(&row) {
            for id in 1..=n {
                self.hunk_marks.insert((row, id), m);
            }
        }
        match mark {
            Some(m) => self.hunk_marks.insert((row, h + 1), m),
            None => self.hunk_marks.remove(&(row, h + 1)),
        };
        self.focus = Focus::Hunks((h + 1).min(n.saturating_sub(1)));
    }

    /// Moves to the next (or previous) row whose name holds the query, any
    /// case, from the cursor (`here`: the cursor's own row counts).
    fn search(&mut self, here: bool, forward: bool) {
        if self.query.is_empty() {
            self.message = Some("no search yet: / starts one".into());
            return;
        }
        let n = self.rows.len();
        let q = self.query.to_lowercase();
        let start = if here { 0 } else { 1 };
        let found = (start..n + start)
            .map(|k| if forward { (self.cursor + k) % n } else { (self.cursor + n - k) % n })
            .find(|&i| self.rows[i].name.to_lowercase().contains(&q));
        match found {
            Some(i) => {
                self.focus = Focus::List;
                self.move_to(i);
            }
            None => self.message = Some(format!("no path matches /{}", crate::display::text(self.query.as_bytes()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(names: &[&str]) -> Vec<Row> {
        names.iter().map(|n| Row { name: (*n).into(), status: Status::Modified, by: Origin::Session }).collect()
    }

    fn keys(m: &mut Model, ks: &[Key]) -> Action {
        ks.iter().fold(Action::Redraw, |_, k| m.update(*k))
    }

    fn chars(s: &str) -> Vec<Key> {
        s.chars().map(Key::Char).collect()
    }

    #[test]
    fn cursor_starts_on_the_first_path_and_stays_in_the_list() {
        let mut m = Model::new(rows(&["a", "b", "c"]));
        assert_eq!(m.cursor, 0);
        keys(&mut m, &[Key::Up, Key::Char('k')]);
        assert_eq!(m.cursor, 0);
        keys(&mut m, &[Key::Down, Key::Char('j'), Key::Down, Key::Down]);
        assert_eq!(m.cursor, 2);
        keys(&mut m, &[Key::Char('g')]);
        assert_eq!(m.cursor, 0);
        keys(&mut m, &[Key::End]);
        assert_eq!(m.cursor, 2);
    }

    #[test]
    fn quitting_without_marks_leaves_at_once() {
        let mut m = Model::new(rows(&["a"]));
        assert_eq!(m.update(Key::Char('q')), Action::Quit);
    }

    #[test]
    fn quitting_with_marks_asks_and_esc_goes_back() {
        let mut m = Model::new(rows(&["a", "b"]));
        keys(&mut m, &[Key::Char('a')]);
        assert_eq!(m.cursor, 1, "a mark moves on to the next path");
        assert_eq!(m.update(Key::Char('q')), Action::Redraw);
        assert!(m.confirm);
        assert_eq!(m.update(Key::Char('x')), Action::Redraw);
        assert!(m.confirm, "only y, n and Esc answer");
        assert_eq!(m.update(Key::Esc), Action::Redraw);
        assert!(!m.confirm);
        keys(&mut m, &[Key::Char('q')]);
        assert_eq!(m.update(Key::Char('n')), Action::Quit);
        keys(&mut m, &[Key::Esc]);
        let mut m2 = Model::new(rows(&["a"]));
        keys(&mut m2, &[Key::Char('r'), Key::Char('q')]);
        assert_eq!(m2.update(Key::Char('y')), Action::Apply);
    }

    #[test]
    fn ctrl_c_quits_without_applying_even_in_a_dialog() {
        let mut m = Model::new(rows(&["a"]));
        keys(&mut m, &[Key::Char('a'), Key::Char('q')]);
        assert_eq!(m.update(Key::CtrlC), Action::Quit);
    }

    #[test]
    fn marks_become_the_plan() {
        let mut m = Model::new(rows(&["a", "b", "c", "d"]));
        keys(&mut m, &[Key::Char('a'), Key::Char('r'), Key::Char('a'), Key::Char('k'), Key::Char('u')]);
        assert_eq!(m.plan(), Plan { approve_paths: vec![0], rollback_paths: vec![1], ..Plan::default() });
        assert_eq!(m.plan().summary(), "approve 1 path · roll back 1 path");
    }

    #[test]
    fn hunks_open_only_when_the_path_has_some() {
        let mut m = Model::new(rows(&["new", "mod"]));
        m.set_hunk_count(0, 0);
        keys(&mut m, &[Key::Enter]);
        assert_eq!(m.focus, Focus::List);
        assert!(m.message.as_deref().unwrap_or("").contains("mark the whole path"));
        keys(&mut m, &[Key::Down]);
        m.set_hunk_count(1, 3);
        keys(&mut m, &[Key::Tab]);
        assert_eq!(m.focus, Focus::Hunks(0));
        keys(&mut m, &[Key::Down, Key::Down, Key::Down]);
        assert_eq!(m.focus, Focus::Hunks(2));
        keys(&mut m, &[Key::Esc]);
        assert_eq!(m.focus, Focus::List);
        assert_eq!(m.cursor, 1);
    }

    #[test]
    fn hunk_marks_act_on_the_hunk_under_the_cursor() {
        let mut m = Model::new(rows(&["a", "b"]));
        m.set_hunk_count(0, 3);
        keys(&mut m, &[Key::Enter, Key::Char('r'), Key::Char('a'), Key::Char('r')]);
        assert_eq!(m.focus, Focus::Hunks(2));
        keys(&mut m, &[Key::Up, Key::Char('u')]);
        let plan = m.plan();
        assert_eq!(plan.rollback_hunks, vec![(0, vec![1, 3])]);
        assert!(plan.approve_hunks.is_empty());
        assert_eq!(plan.summary(), "roll back 2 hunks");
        assert!(m.has_hunk_marks(0) && !m.has_hunk_marks(1));
    }

    #[test]
    fn a_hunk_mark_splits_a_path_mark_and_a_path_mark_replaces_hunk_marks() {
        let mut m = Model::new(rows(&["a"]));
        m.set_hunk_count(0, 2);
        keys(&mut m, &[Key::Char('a')]);
        keys(&mut m, &[Key::Enter, Key::Char('r')]);
        let plan = m.plan();
        assert_eq!(plan.approve_hunks, vec![(0, vec![2])]);
        assert_eq!(plan.rollback_hunks, vec![(0, vec![1])]);
        assert!(plan.approve_paths.is_empty());
        keys(&mut m, &[Key::Esc, Key::Char('r')]);
        assert_eq!(m.plan(), Plan { rollback_paths: vec![0], ..Plan::default() });
    }

    #[test]
    fn rollback_of_a_path_changed_outside_is_refused_like_the_cli() {
        let mut r = rows(&["mine", "editor"]);
        r[1].by = Origin::Outside;
        let mut m = Model::new(r);
        keys(&mut m, &[Key::Down, Key::Char('r')]);
        assert!(m.plan().is_empty());
        assert!(m.message.as_deref().unwrap_or("").contains("outside the session"));
        keys(&mut m, &[Key::Char('a')]);
        assert_eq!(m.plan().approve_paths, vec![1]);
    }

    #[test]
    fn search_finds_the_next_match_and_wraps() {
        let mut m = Model::new(rows(&["src/a.rs", "README.md", "src/b.rs", "docs/x.md"]));
        keys(&mut m, &[Key::Char('/')]);
        keys(&mut m, &chars(".MD"));
        assert_eq!(m.typing.as_deref(), Some(".MD"));
        keys(&mut m, &[Key::Enter]);
        assert_eq!(m.cursor, 1);
        keys(&mut m, &[Key::Char('n')]);
        assert_eq!(m.cursor, 3);
        keys(&mut m, &[Key::Char('n')]);
        assert_eq!(m.cursor, 1, "wraps");
        keys(&mut m, &[Key::Char('N')]);
        assert_eq!(m.cursor, 3);
        keys(&mut m, &[Key::Char('/')]);
        keys(&mut m, &chars("zzz"));
        keys(&mut m, &[Key::Backspace, Key::Enter]);
        assert_eq!(m.cursor, 3);
        assert!(m.message.as_deref().unwrap_or("").contains("no path matches /zz"));
        keys(&mut m, &[Key::Char('/'), Key::Char('q'), Key::Esc]);
        assert!(m.typing.is_none() && !m.confirm, "q typed into a search is text, Esc drops it");
    }

    #[test]
    fn help_closes_on_any_key() {
        let mut m = Model::new(rows(&["a", "b"]));
        keys(&mut m, &[Key::Char('?')]);
        assert!(m.help);
        keys(&mut m, &[Key::Char('j')]);
        assert!(!m.help);
        assert_eq!(m.cursor, 0, "the key that closed help does nothing else");
    }

    #[test]
    fn the_list_scrolls_to_keep_the_cursor_visible() {
        let names: Vec<String> = (0..50).map(|i| format!("f{i}")).collect();
        let mut m = Model::new(rows(&names.iter().map(String::as_str).collect::<Vec<_>>()));
        m.scroll_list(10);
        keys(&mut m, &[Key::End]);
        m.scroll_list(10);
        assert_eq!((m.cursor, m.list_top), (49, 40));
        keys(&mut m, &[Key::Home]);
        m.scroll_list(10);
        assert_eq!(m.list_top, 0);
    }

    #[test]
    fn an_empty_list_takes_every_key() {
        let mut m = Model::new(Vec::new());
        for k in [Key::Down, Key::Up, Key::Enter, Key::Char('a'), Key::Char('r'), Key::Char('u'), Key::End] {
            m.update(k);
        }
        keys(&mut m, &[Key::Char('/'), Key::Char('x'), Key::Enter, Key::Char('n')]);
        assert_eq!(m.update(Key::Char('q')), Action::Quit);
    }
}
