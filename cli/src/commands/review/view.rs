//! Drawing the review screen from a [`Model`]: the list of changes, the
//! selected path's diff beside it (wide terminals) or below it (narrow
//! ones), a header, a status line, and the help and confirm dialogs.
//!
//! Every string drawn is inert before it gets here: names and lines went
//! through `display` (the agent wrote them). Tabs are expanded here, as the
//! screen drops control characters. Without colour (`NO_COLOR`, or not
//! asked for), no style at all is set: the cursor is the `>` in the margin.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::model::{Focus, Mark, Model};
use crate::commands::diff::origin_word;
use ws_session::patch::{Kind, Patch};

/// Wider than this, the diff goes beside the list rather than below it.
pub(crate) const WIDE: u16 = 100;

/// What the screen shows besides the model.
#[derive(Debug)]
pub(crate) struct Screen {
    pub session: String,
    /// Excluded from the snapshot, as `ui::entry_name` shows them with their size.
    pub excluded: Vec<String>,
    /// Pending changes inside `.git/objects`, `.git/logs`, `.git/index` not listed.
    pub hidden: usize,
    pub color: bool,
}

struct Styles {
    color: bool,
}

impl Styles {
    fn of(&self, kind: Kind) -> Style {
        if !self.color {
            return Style::default();
        }
        match kind {
            Kind::File => Style::default().add_modifier(Modifier::BOLD),
            Kind::HunkHeader => Style::default().fg(Color::Cyan),
            Kind::Added => Style::default().fg(Color::Green),
            Kind::Removed => Style::default().fg(Color::Red),
            Kind::Meta | Kind::Context => Style::default(),
        }
    }

    fn selected(&self) -> Style {
        if self.color { Style::default().add_modifier(Modifier::REVERSED) } else { Style::default() }
    }

    fn bar(&self) -> Style {
        if self.color { Style::default().add_modifier(Modifier::REVERSED) } else { Style::default() }
    }
}

/// Tabs to spaces (stops every 8 columns), since the screen does not
/// show a tab.
fn expand_tabs(s: &str) -> String {
    if !s.contains('\t') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut col = 0;
    for c in s.chars() {
        if c == '\t' {
            let n = 8 - col % 8;
            out.extend(std::iter::repeat_n(' ', n));
            col += n;
        } else {
            out.push(c);
            col += 1;
        }
    }
    out
}

fn mark_char(m: Option<Mark>) -> char {
    match m {
        Some(Mark::Approve) => 'a',
        Some(Mark::Rollback) => 'r',
        None => ' ',
    }
}

pub(crate) fn draw(frame: &mut Frame<'_>, model: &mut Model, patch: Option<&Patch>, screen: &Screen) {
    let st = Styles { color: screen.color };
    let [head, body, foot] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(1)]).areas(frame.area());
    let (list, diff) = if body.width >= WIDE {
        let [l, d] = Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(body);
        (l, d)
    } else {
        let list_rows = (body.height * 2 / 5).max(3).min(body.height.saturating_sub(2));
        let [l, d] = Layout::vertical([Constraint::Length(list_rows), Constraint::Min(1)]).areas(body);
        (l, d)
    };
    frame.render_widget(Paragraph::new(header(model, screen)).style(st.bar()), head);
    draw_list(frame, model, list, &st, body.width >= WIDE);
    draw_diff(frame, model, patch, diff, &st, body.width >= WIDE);
    frame.render_widget(Paragraph::new(footer(model)).style(st.bar()), foot);
    if model.help {
        draw_help(frame, screen);
    } else if model.confirm {
        draw_confirm(frame, model);
    }
}

fn header(model: &Model, screen: &Screen) -> String {
    let mut s = format!("ws review · session {} · {} pending", screen.session, model.rows.len());
    let plan = model.plan();
    if !plan.is_empty() {
        s.push_str(&format!(" · to {}", plan.summary()));
    }
    if let Some(first) = screen.excluded.first() {
        s.push_str(&format!(" · excluded: {first}"));
        if screen.excluded.len() > 1 {
            s.push_str(&format!(" (+{} more, ?)", screen.excluded.len() - 1));
        }
    }
    s
}

fn footer(model: &Model) -> String {
    if let Some(q) = &model.typing {
        return format!("/{}", crate::display::text(q.as_bytes()));
    }
    if let Some(m) = &model.message {
        return m.clone();
    }
    match model.focus {
        Focus::List => "j/k move  Enter hunks  a approve  r rollback  u unmark  / search  ? help  q quit".into(),
        Focus::Hunks(_) => "j/k hunk  a approve  r rollback  u unmark  Esc back to paths  ? help  q quit".into(),
    }
}

fn draw_list(frame: &mut Frame<'_>, model: &mut Model, area: Rect, st: &Styles, wide: bool) {
    let block = if wide { Block::new().borders(Borders::RIGHT) } else { Block::new() };
    let inner = block.inner(area);
    frame.render_widget(block, area);
    model.scroll_list(inner.height as usize);
    if model.rows.is_empty() {
        frame.render_widget(Paragraph::new("nothing pending review"), inner);
        return;
    }
    let end = (model.list_top + inner.height as usize).min(model.rows.len());
    let lines: Vec<Line<'_>> = (model.list_top..end)
        .map(|i| {
            let row = &model.rows[i];
            let mark = match model.path_mark(i) {
                None if model.has_hunk_marks(i) => '~',
                m => mark_char(m),
            };
            let cursor = if i == model.cursor { '>' } else { ' ' };
            let text = format!("{cursor}{mark} {} {:<7} {}", row.status.letter(), origin_word(row.by), row.name);
            let style = if i == model.cursor && model.focus == Focus::List { st.selected() } else { Style::default() };
            Line::from(Span::styled(text, style))
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

fn draw_diff(frame: &mut Frame<'_>, model: &Model, patch: Option<&Patch>, area: Rect, st: &Styles, wide: bool) {
    let [title, content] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let row = model.rows.get(model.cursor);
    let title_text = match row {
        Some(r) => format!("── {} ({}) ", r.name, crate::commands::diff::origin_note(r.by)),
        None => String::new(),
    };
    let title_text = if wide { format!(" {title_text}") } else { title_text };
    frame.render_widget(Paragraph::new(title_text).style(st.of(Kind::File)), title);
    let Some(patch) = patch else { return };
    let selected_hunk = match model.focus {
        Focus::Hunks(h) => patch.hunks.get(h).map(|ph| ph.line),
        Focus::List => None,
    };
    let top = match (model.focus, selected_hunk) {
        (Focus::Hunks(_), Some(line)) => line.saturating_sub(1),
        _ => model.diff_scroll.min(patch.lines.len().saturating_sub(1)),
    };
    let path_mark = model.path_mark(model.cursor);
    let hunk_at: std::collections::HashMap<usize, usize> =
        patch.hunks.iter().enumerate().map(|(k, h)| (h.line, k + 1)).collect();
    let lines: Vec<Line<'_>> = patch
        .lines
        .iter()
        .enumerate()
        .skip(top)
        .take(content.height as usize)
        .map(|(i, l)| {
            let gutter = match hunk_at.get(&i) {
                Some(&id) => {
                    let cursor = if selected_hunk == Some(i) { '>' } else { ' ' };
                    let mark = if patch.hunkable { model.hunk_mark(model.cursor, id).or(path_mark) } else { path_mark };
                    format!("{cursor}{}", mark_char(mark))
                }
                None => "  ".into(),
            };
            let style = if selected_hunk == Some(i) { st.selected() } else { st.of(l.kind) };
            Line::from(vec![Span::raw(gutter), Span::styled(expand_tabs(&l.text), style)])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), content);
}

/// A box of `w`×`h` in the middle of `area`, clipped to it.
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let (w, h) = (w.min(area.width), h.min(area.height));
    Rect::new(area.x + (area.width - w) / 2, area.y + (area.height - h) / 2, w, h)
}

fn draw_help(frame: &mut Frame<'_>, screen: &Screen) {
    let mut lines = vec![
        "j k ↑ ↓      move (paths, or hunks once opened)".to_owned(),
        "g G          first, last".into(),
        "Enter Tab    open the path's hunks; Esc goes back".into(),
        "a            mark to approve (path or hunk under the cursor)".into(),
        "r            mark to roll back (path or hunk)".into(),
        "u            unmark".into(),
        "/ n N        search paths, next, previous".into(),
        "space b      scroll the diff".into(),
        "q            quit: asks to apply the marks (y/n, Esc back)".into(),
        "Nothing changes on disk before you answer y.".into(),
        String::new(),
        "marks: a approve · r roll back · ~ some hunks marked".into(),
        "who: session · outside (rollback leaves it) · both (a conflict)".into(),
    ];
    if screen.hidden > 0 {
        lines.push(format!("{} changes inside .git/objects, .git/logs, .git/index not listed", screen.hidden));
    }
    if !screen.excluded.is_empty() {
        lines.push("excluded from the snapshot (rollback cannot restore them):".into());
        lines.extend(screen.excluded.iter().map(|e| format!("  {e}")));
    }
    let area = centered(frame.area(), 78, lines.len() as u16 + 2);
    frame.render_widget(Clear, area);
    let text: Vec<Line<'_>> = lines.into_iter().map(Line::from).collect();
    frame
        .render_widget(Paragraph::new(text).block(Block::bordered().title(" ws review: keys (any key closes) ")), area);
}

fn draw_confirm(frame: &mut Frame<'_>, model: &Model) {
    let lines = vec![
        Line::from(format!("Apply: {}?", model.plan().summary())),
        Line::from(""),
        Line::from("y apply and quit · n quit without applying · Esc back"),
    ];
    let area = centered(frame.area(), 64, 5);
    frame.render_widget(Clear, area);
    frame.render_widget(Paragraph::new(lines).block(Block::bordered().title(" apply the marks? ")), area);
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::commands::review::model::{Key, Row, Status};
    use crate::recording::Origin;
    use ws_session::patch::PatchLine;

    fn screen_text(t: &Terminal<TestBackend>) -> Vec<String> {
        let b = t.backend().buffer();
        (0..b.area.height)
            .map(|y| (0..b.area.width).map(|x| b[(x, y)].symbol().to_owned()).collect::<String>())
            .collect()
    }

    fn render(model: &mut Model, patch: Option<&Patch>, w: u16, h: u16) -> Vec<String> {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        let screen = Screen {
            session: "3fa2c81e".into(),
            excluded: vec!["target/ (2,001+ files)".into()],
            hidden: 0,
            color: false,
        };
        t.draw(|f| draw(f, model, patch, &screen)).unwrap();
        screen_text(&t)
    }

    fn sample() -> (Model, Patch) {
        let rows = vec![
            Row { name: "a.txt".into(), status: Status::Modified, by: Origin::Session },
            Row { name: "\"evil\\033[2J\"".into(), status: Status::Added, by: Origin::Both },
        ];
        let patch = Patch {
            lines: vec![
                PatchLine { kind: Kind::File, text: "diff --ws a/a.txt b/a.txt".into() },
                PatchLine { kind: Kind::HunkHeader, text: "@@ -1 +1 @@".into() },
                PatchLine { kind: Kind::Removed, text: "-\told".into() },
                PatchLine { kind: Kind::Added, text: "+new".into() },
            ],
            hunks: vec![ws_session::patch::PatchHunk {
                hunk: ws_snapshot::hunks::Hunk { id: 1, old_start: 1, old_lines: 1, new_start: 1, new_lines: 1 },
                line: 1,
                removed: b"old\n".to_vec(),
                added: b"new\n".to_vec(),
            }],
            hunkable: true,
        };
        (Model::new(rows), patch)
    }

    #[test]
    fn narrow_screen_shows_the_list_above_the_diff() {
        let (mut m, p) = sample();
        m.set_hunk_count(0, 1);
        let s = render(&mut m, Some(&p), 80, 24);
        assert!(s[0].starts_with("ws review · session 3fa2c81e · 2 pending · excluded: target/"), "{s:#?}");
        assert!(s[1].starts_with(">  M session a.txt"), "{s:#?}");
        assert!(s[2].starts_with("   A both    \"evil\\033[2J\""), "{s:#?}");
        let diff_at = s.iter().position(|l| l.contains("diff --ws a/a.txt")).unwrap();
        assert!(diff_at > 2);
        assert!(s[diff_at - 1].starts_with("── a.txt (by the session)"), "{s:#?}");
        assert_eq!(s[diff_at + 2].trim_end(), "  -       old", "tabs expanded to the next stop");
        assert!(s[23].starts_with("j/k move"));
    }

    #[test]
    fn wide_screen_puts_the_diff_beside_the_list() {
        let (mut m, p) = sample();
        let s = render(&mut m, Some(&p), 120, 30);
        assert!(s[1].starts_with(">  M session a.txt"));
        assert!(s[2].contains("diff --ws a/a.txt"), "{s:#?}");
    }

    #[test]
    fn hunk_cursor_and_marks_show_in_the_gutter() {
        let (mut m, p) = sample();
        m.set_hunk_count(0, 1);
        m.update(Key::Enter);
        m.update(Key::Char('r'));
        let s = render(&mut m, Some(&p), 80, 24);
        assert!(s.iter().any(|l| l.starts_with(">r@@ -1 +1 @@")), "{s:#?}");
        assert!(s[1].starts_with(">~ M"), "{s:#?}");
        assert!(s[0].contains("to roll back 1 hunk"), "{s:#?}");
    }

    #[test]
    fn dialogs_draw_over_the_screen_and_fit_80x24() {
        let (mut m, p) = sample();
        m.update(Key::Char('a'));
        m.update(Key::Char('q'));
        let s = render(&mut m, Some(&p), 80, 24);
        assert!(s.iter().any(|l| l.contains("Apply: approve 1 path?")), "{s:#?}");
        m.update(Key::Esc);
        m.update(Key::Char('?'));
        let s = render(&mut m, Some(&p), 80, 24);
        assert!(s.iter().any(|l| l.contains("excluded from the snapshot")), "{s:#?}");
        assert!(s.iter().any(|l| l.contains("target/ (2,001+ files)")), "{s:#?}");
        // Tiny terminals do not panic.
        for (w, h) in [(1, 1), (10, 3), (20, 5)] {
            render(&mut m, Some(&p), w, h);
        }
    }
}
