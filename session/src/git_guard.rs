//! When a session ends: what it did to git's control surface
//! (`ws_snapshot::git_guard`) is put back before `ws` returns, so the
//! reviewer's next `git status` runs nothing the session planted. Each path
//! goes into the audit log (`git_guard` records) and the summary says so.

use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, Instant};

use ws_snapshot::audit::{AuditLog, Event};
use ws_snapshot::git_guard::{Identity, Undone};
use ws_snapshot::{Change, ChangeKind, ChangeState, ManifestId, RelPath, RollbackOptions, Session};

use crate::workspace::Workspace;

/// What the workspace's git directory was before the command started.
pub struct GitGuard {
    start: Option<Identity>,
}

impl std::fmt::Debug for GitGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitGuard").field("start", &self.start.is_some()).finish()
    }
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
                .map_err(|e| crate::chain(&e))
        });
        apply(ws, undone, log);
        let _lock = ws.lock();
        guard_packs(ws, session, changes, log);
    }
}

/// For a session whose supervisor died (`kill -9`, a crash): its end never
/// ran the guard, so the first command that takes its after-snapshot does,
/// before it returns (under that command's lock, as the after-snapshot).
/// What `.git` was before is not known then: a `.git` replaced wholesale
/// shows as changes to its control files, which are undone the same way.
pub fn after_orphan(ws: &Workspace, session: &mut Session, changes: &mut [Change]) {
    let undone =
        ws_snapshot::git_guard::undo(&ws.store, &ws.root, session, changes, None).map_err(|e| crate::chain(&e));
    match AuditLog::open(&ws.store.audit_log_path(&session.id), &session.id) {
        Ok(log) => {
            apply(ws, undone, &log);
            guard_packs(ws, session, changes, &log);
            let _ = log.seal();
        }
        Err(e) => {
            ws.warn(&format!("the audit log of session {} cannot take more records: {}", session.id, crate::chain(&e)));
            if let Ok(u) = undone {
                report(ws, &u);
            }
        }
    }
}

fn apply(ws: &Workspace, undone: Result<Vec<Undone>, String>, log: &AuditLog) {
    let undone = match undone {
        Ok(u) => u,
        Err(e) => {
            ws.warn(&format!(
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
    report(ws, &undone);
}

fn report(ws: &Workspace, undone: &[Undone]) {
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
        ws.warn(&format!(
            "the session changed git's control surface, which could make git run its commands on your next `git status`; \
             restored as before the session: {done} (`ws log` lists each)"
        ));
    }
    let (n, left) = list(false);
    if n > 0 {
        ws.warn(&format!(
            "git's control surface could NOT be restored: {left}; do not run git in this workspace until you have \
             looked at these paths (`ws diff --git-internals`)"
        ));
    }
}

/// New pack bytes verified at a session's end; beyond, packs are left
/// unverified, and that is said.
const VERIFY_BUDGET: u64 = 1 << 30;
/// How long one pack may take to verify.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(120);

/// The packs a session added or rewrote under `.git/objects/pack` (pure).
fn session_packs(changes: &[Change]) -> Vec<RelPath> {
    changes
        .iter()
        .filter(|c| c.state == ChangeState::Pending && c.kind() != ChangeKind::Removed)
        .filter(|c| {
            let p = c.path.as_bytes();
            p.starts_with(b".git/objects/pack/") && p.ends_with(b".pack") && !p[18..].contains(&b'/')
        })
        .map(|c| c.path.clone())
        .collect()
}

/// Why git could not read `pack`, if it could not: `git index-pack
/// --verify` (outside any repository, so no config of the workspace is
/// read) resolves every delta from its base, so a delta cycle — on which
/// `git show` and `git fsck` spin forever — is an error here, in bounded time.
fn unreadable(pack: &Path) -> Option<String> {
    match std::fs::symlink_metadata(pack) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Some("not a regular file".into()),
        Err(e) => return Some(e.to_string()),
    }
    if !pack.with_extension("idx").is_file() {
        return None; // git does not read a pack without its index
    }
    let mut child = std::process::Command::new("git")
        .args(["index-pack", "--verify"])
        .arg(pack)
        .current_dir("/")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return None,
            Ok(Some(_)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut (&mut e).take(4096), &mut err);
                }
                let why = err.lines().last().unwrap_or("git index-pack --verify failed").trim();
                return Some(why.trim_start_matches("fatal: ").to_owned());
            }
            Ok(None) if started.elapsed() > VERIFY_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Some(format!("verifying it took longer than {} s", VERIFY_TIMEOUT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => return None,
        }
    }
}

/// A pack git cannot read would make the reviewer's `git show`, `git log
/// -p` or `git fsck` hang (a delta cycle) or fail. The session's packs are
/// verified; if one fails, every change the session made under
/// `.git/objects/pack` is rolled back (the packs as they were are a set git
/// could read), recorded and reported. The rest of the session stays for
/// review.
fn guard_packs(ws: &Workspace, session: &mut Session, changes: &mut [Change], log: &AuditLog) {
    let mut spent = 0u64;
    let mut bad = Vec::new();
    let mut unverified = 0usize;
    for pack in session_packs(changes) {
        let path = pack.to_path(&ws.root);
        let size = std::fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
        if spent + size > VERIFY_BUDGET {
            unverified += 1;
            continue;
        }
        spent += size;
        if let Some(why) = unreadable(&path) {
            bad.push((pack, why));
        }
    }
    if unverified > 0 {
        ws.warn(&format!(
            "{unverified} pack(s) the session wrote under .git/objects/pack were not verified (more than {} GiB): \
             run `git index-pack --verify` on them, or `ws rollback .git/objects`, before reading them with git",
            VERIFY_BUDGET >> 30
        ));
    }
    if bad.is_empty() {
        return;
    }
    let dir = RelPath::from_bytes(b".git/objects/pack").unwrap_or_default();
    let paths: Vec<RelPath> = changes
        .iter()
        .filter(|c| c.state == ChangeState::Pending && c.path.starts_with(&dir))
        .map(|c| c.path.clone())
        .collect();
    let restored = ws
        .store
        .linked(&ManifestId(session.before.clone()))
        .map_err(|e| crate::chain(&e))
        .and_then(|linked| {
            let opts = RollbackOptions { force: true, drop_new_objects: true, ..RollbackOptions::default() };
            ws_snapshot::rollback(&ws.store, &ws.root, session, changes, &linked, &paths, &opts)
                .map_err(|e| crate::chain(&e))
        })
        .map(|out| out.conflicts.is_empty() && out.unrestorable.is_empty());
    let ok = matches!(restored, Ok(true));
    for (pack, why) in &bad {
        let event = Event::GitGuard { path: pack.display(), change: format!("unreadable pack: {why}"), restored: ok };
        let _ = log.append(crate::now_ms(), event);
    }
    let list: Vec<String> = bad.iter().map(|(p, why)| format!("{} ({why})", p.display())).collect();
    match restored {
        Ok(true) => ws.warn(&format!(
            "the session left a pack git cannot read, on which `git show` or `git fsck` could hang: {}; \
             the session's changes under .git/objects/pack were rolled back (`ws log` lists them)",
            list.join(", ")
        )),
        Ok(false) | Err(_) => ws.warn(&format!(
            "the session left a pack git cannot read: {}, and it could NOT be rolled back{}; \
             do not read objects with git here before `ws rollback .git/objects`",
            list.join(", "),
            restored.err().map(|e| format!(" ({e})")).unwrap_or_default()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_packs_the_session_left_are_verified() {
        let change = |path: &str, before: bool, after: bool| {
            let path = RelPath::from_bytes(path.as_bytes()).unwrap();
            let entry = ws_snapshot::Entry {
                path: path.clone(),
                kind: ws_snapshot::EntryKind::Dir,
                stat: ws_snapshot::FileStat::default(),
                racy: false,
            };
            Change {
                path,
                before: before.then(|| entry.clone()),
                after: after.then_some(entry),
                state: ChangeState::Pending,
                rename: None,
            }
        };
        let changes = [
            change(".git/objects/pack/pack-a.pack", false, true),
            change(".git/objects/pack/pack-a.idx", false, true),
            change(".git/objects/pack/pack-b.pack", true, false),
            change(".git/objects/pack/sub/pack-c.pack", false, true),
            change("src/pack-d.pack", false, true),
            change(".git/objects/pack/pack-e.pack", true, true),
        ];
        let found: Vec<String> = session_packs(&changes).iter().map(|p| p.display()).collect();
        assert_eq!(found, [".git/objects/pack/pack-a.pack", ".git/objects/pack/pack-e.pack"]);
    }
}
