//! When a session ends: what it did to git's control surface
//! (`ws_snapshot::git_guard`) is put back before `ws` returns, so the
//! reviewer's next `git status` runs nothing the session planted. Each path
//! goes into the audit log (`git_guard` records) and the summary says so.

use std::path::Path;

use ws_snapshot::audit::{AuditLog, Event};
use ws_snapshot::git_guard::{Identity, Undone};
use ws_snapshot::{Change, Session};

use crate::ui;
use crate::workspace::Workspace;

/// What the workspace's git directory was before the command started.
pub struct GitGuard {
    start: Option<Identity>,
}

impl GitGuard {
    /// Taken before the command starts.
    pub fn start(root: &Path) -> GitGuard {
        GitGuard { start: Identity::of(&root.join(".git")) }
    }

    /// After the after-snapshot, with no process of the session left to
    /// write again (with namespaces: its PID namespace is gone): undoes,
    /// records and reports. Never fails the session: what could not be
    /// undone is said loudly instead.
    pub fn finish(self, ws: &Workspace, session: &mut Session, changes: &mut [Change], log: &AuditLog) {
        let undone = ws.lock().map_err(|e| e.message).and_then(|_lock| {
            ws_snapshot::git_guard::undo(&ws.store, &ws.root, session, changes, self.start)
                .map_err(|e| crate::error::chain(&e))
        });
        apply(ws, undone, log);
    }
}

/// For a session whose supervisor died (`kill -9`, a crash): its end never
/// ran the guard, so the first command that takes its after-snapshot does,
/// before it returns (under that command's lock, as the after-snapshot).
/// What `.git` was before is not known then: a `.git` replaced wholesale
/// shows as changes to its control files, which are undone the same way.
pub fn after_orphan(ws: &Workspace, session: &mut Session, changes: &mut [Change]) {
    let undone =
        ws_snapshot::git_guard::undo(&ws.store, &ws.root, session, changes, None).map_err(|e| crate::error::chain(&e));
    match AuditLog::open(&ws.store.audit_log_path(&session.id), &session.id) {
        Ok(log) => {
            apply(ws, undone, &log);
            let _ = log.seal();
        }
        Err(e) => {
            ui::warn(&format!(
                "the audit log of session {} cannot take more records: {}",
                session.id,
                crate::error::chain(&e)
            ));
            if let Ok(u) = undone {
                report(&u);
            }
        }
    }
}

fn apply(ws: &Workspace, undone: Result<Vec<Undone>, String>, log: &AuditLog) {
    let undone = match undone {
        Ok(u) => u,
        Err(e) => {
            ui::warn(&format!(
                "could not check git's control surface (.git/config, hooks, commondir, …) after the session: {e}; \
                 do not run git in {} before `ws diff --git-internals` and `ws rollback`",
                ws.root.display()
            ));
            return;
        }
    };
    for u in &undone {
        let event = Event::GitGuard {
            path: u.finding.path.display(),
            change: u.finding.what.name().to_owned(),
            restored: u.restored,
        };
        let _ = log.append(crate::now_ms(), event);
    }
    report(&undone);
}

fn report(undone: &[Undone]) {
    if undone.is_empty() {
        return;
    }
    let list = |restored: bool| {
        let v: Vec<String> = undone
            .iter()
            .filter(|u| u.restored == restored)
            .map(|u| format!("{} ({})", u.finding.path, u.finding.what.name()))
            .collect();
        let more = if v.len() > 5 { format!(" and {} more", v.len() - 5) } else { String::new() };
        (v.len(), format!("{}{more}", v.into_iter().take(5).collect::<Vec<_>>().join(", ")))
    };
    let (n, done) = list(true);
    if n > 0 {
        ui::warn(&format!(
            "the session changed git's control surface, which could make git run its commands on your next `git status`; \
             restored as before the session: {done} (`ws log` lists each)"
        ));
    }
    let (n, left) = list(false);
    if n > 0 {
        ui::warn(&format!(
            "git's control surface could NOT be restored: {left}; do not run git in this workspace until you have \
             looked at these paths (`ws diff --git-internals`)"
        ));
    }
}
