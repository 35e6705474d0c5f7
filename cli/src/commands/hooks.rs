//! `ws hooks install | uninstall | run HOOK`: nothing an agent wrote reaches a
//! commit unreviewed.
//!
//! The hooks look only at stores that already exist (for the repository's
//! top and the directories above it, so a session run on a superproject
//! counts in its submodules): in a repository that never used ws they create
//! nothing, and with no stored secret either they exit without running git.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use ws_hooks::policy::{self, Version};
use ws_hooks::{Fingerprint, FingerprintFile, Installed, Staged, StagedPath, Uninstalled};
use ws_snapshot::{ChangeState, Entry, EntryKind, SessionState, Store};

use crate::env;
use crate::error::{CliError, chain, exit};
use crate::{display, ui};

#[derive(Debug, Subcommand)]
pub enum HooksCommand {
    Install(InstallArgs),
    Uninstall(UninstallArgs),
    Run(RunArgs),
}

/// Install ws's pre-commit and prepare-commit-msg hooks in this repository.
///
/// They go where git looks for hooks: core.hooksPath if set, else the git
/// directory's hooks (shared by linked worktrees; a submodule has its own).
/// A hook already there keeps running first, with the same arguments, and a
/// failure of it still stops the commit; `ws hooks uninstall` puts it back
/// exactly. The hooks run this ws binary by its absolute path: install again
/// after moving it. Running it again changes nothing.
#[derive(Debug, Args)]
pub struct InstallArgs {}

/// Remove ws's hooks, putting back the hooks they replaced.
#[derive(Debug, Args)]
pub struct UninstallArgs {}

/// Run one hook's checks: what the installed hooks and the pre-commit framework call.
///
/// pre-commit refuses a commit whose staged content includes changes of a ws
/// session that are not approved yet (a staged path the session changed, staged
/// in any version but the one from before the session), or contains a stored
/// secret or a session's phantom token. prepare-commit-msg adds a
/// `Ws-Session: ID` trailer for each session whose approved changes the commit
/// stages as the session left them.
#[derive(Debug, Args)]
pub struct RunArgs {
    hook: Hook,
    /// What git passes the hook (prepare-commit-msg: the message file, its source, a commit).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
    args: Vec<OsString>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Hook {
    PreCommit,
    PrepareCommitMsg,
}

pub fn run(c: HooksCommand) -> Result<i32, CliError> {
    match c {
        HooksCommand::Install(a) => cmd_install(a),
        HooksCommand::Uninstall(a) => cmd_uninstall(a),
        HooksCommand::Run(a) => cmd_run(a),
    }
}

fn failed(e: &dyn std::error::Error) -> CliError {
    CliError::failure(chain(e))
}

/// A failure to tell what is staged; one that no reader should go past
/// names what to remove.
fn git_failed(e: &ws_hooks::GitError) -> CliError {
    match e {
        ws_hooks::GitError::Unsafe(_) => failed(e).hint(
            "a session may have left this in the repository: remove what it names (`git fsck` lists damaged \
             objects), then commit again",
        ),
        ws_hooks::GitError::ForgedCacheTree { .. } => failed(e).hint(
            "a session may have forged it to commit content you never staged: `git read-tree HEAD` rebuilds the \
             index and its cache tree from HEAD (your work tree is kept; `git reset` keeps the forged tree); `git \
             add` what you meant to commit, then commit again",
        ),
        _ => failed(e),
    }
}

fn locate() -> Result<ws_hooks::Repo, CliError> {
    let cwd = std::env::current_dir()?;
    ws_hooks::locate(&cwd).map_err(|e| {
        failed(&e).code(exit::USAGE).hint("run `ws hooks` inside the work tree of the git repository to protect")
    })
}

fn cmd_install(_: InstallArgs) -> Result<i32, CliError> {
    let repo = locate()?;
    let exe = std::env::current_exe()
        .and_then(fs_err::canonicalize)
        .map_err(|e| CliError::failure(format!("cannot tell where this ws binary is: {e}")))?;
    let done = ws_hooks::install(&repo.hooks_dir, &exe).map_err(|e| {
        let err = failed(&e);
        match e {
            ws_hooks::InstallError::ChainOccupied { .. } => {
                err.hint("move one of them away (ws chains one hook that was there before it), then install again")
            }
            _ => err,
        }
    })?;
    for h in &done {
        let what = match h.outcome {
            Installed::Fresh => "installed".to_owned(),
            Installed::Chained => {
                format!("installed; the hook that was there runs first, kept as {}{}", h.name, ws_hooks::CHAINED_SUFFIX)
            }
            Installed::Updated => "updated to run this ws".to_owned(),
            Installed::AlreadyInstalled => "already installed".to_owned(),
        };
        ui::note(&format!("{} hook {}: {what}", h.name, h.path.display()));
    }
    if done.iter().any(|h| h.outcome != Installed::AlreadyInstalled) {
        ui::note(&format!("the hooks run {}", exe.display()));
    }
    if repo.hooks_dir.starts_with(&repo.top) && !repo.hooks_dir.starts_with(repo.top.join(".git")) {
        ui::warn(&format!(
            "core.hooksPath puts the hooks in the work tree ({}), where a session may rewrite them: a session \
             protects only .git/hooks; `ws diff` shows any change to them",
            repo.hooks_dir.display()
        ));
    }
    Ok(exit::OK)
}

fn cmd_uninstall(_: UninstallArgs) -> Result<i32, CliError> {
    let repo = locate()?;
    let done = ws_hooks::uninstall(&repo.hooks_dir).map_err(|e| failed(&e))?;
    for h in &done {
        match h.outcome {
            Uninstalled::Restored => {
                ui::note(&format!("{} hook {}: the previous hook is back", h.name, h.path.display()))
            }
            Uninstalled::Removed => ui::note(&format!("{} hook {}: removed", h.name, h.path.display())),
            Uninstalled::NotInstalled => ui::note(&format!("{} hook: ws's was not installed", h.name)),
            Uninstalled::Replaced => ui::warn(&format!(
                "{} hook {} is no longer ws's, so it stays; the hook ws had chained is still at {}{}",
                h.name,
                h.path.display(),
                h.path.display(),
                ws_hooks::CHAINED_SUFFIX
            )),
        }
    }
    Ok(exit::OK)
}

fn cmd_run(args: RunArgs) -> Result<i32, CliError> {
    match args.hook {
        Hook::PreCommit => pre_commit(),
        Hook::PrepareCommitMsg => prepare_commit_msg(&args.args),
    }
}

/// The top of the work tree: git runs hooks there, and so does the
/// pre-commit framework; from a subdirectory, the nearest one with `.git`.
fn repo_top() -> Result<PathBuf, CliError> {
    let cwd = fs_err::canonicalize(std::env::current_dir()?)?;
    cwd.ancestors().find(|d| d.join(".git").exists()).map(Path::to_path_buf).ok_or_else(|| {
        CliError::usage(format!("{} is not inside a git work tree", cwd.display()))
            .hint("`ws hooks run` is called by git's hooks, in the repository being committed to")
    })
}

/// An existing store of a workspace at or above the repository's top.
#[derive(Debug)]
struct Served {
    store: Store,
    /// The repository's top relative to that workspace (empty when they are the same).
    prefix: Vec<u8>,
}

/// The stores of the repository's top and of every directory above it that
/// has one. Creates nothing.
fn stores_serving(top: &Path) -> Result<Vec<Served>, CliError> {
    use std::os::unix::ffi::OsStrExt;
    let Some(parent) = env::store_parent() else { return Ok(Vec::new()) };
    let uid = rustix::process::getuid().as_raw();
    let mut out = Vec::new();
    for workspace in top.ancestors().filter(|a| a.parent().is_some()) {
        let Some(dir) = ws_snapshot::existing_store_dir(workspace, &parent, uid) else { continue };
        let store = Store::open_or_create(&dir, workspace).map_err(|e| {
            failed(&e).hint("`git commit --no-verify` skips ws's checks once, if you are sure of what is staged")
        })?;
        let prefix = top.strip_prefix(workspace).unwrap_or(Path::new("")).as_os_str().as_bytes().to_vec();
        out.push(Served { store, prefix });
    }
    Ok(out)
}

/// The fingerprints of the secrets `ws secret set` stored.
fn stored_fingerprints() -> Result<Vec<Fingerprint>, CliError> {
    let Some(path) = env::secret_fingerprints_file() else { return Ok(Vec::new()) };
    let file = FingerprintFile::load(&path).map_err(|e| {
        failed(&e).hint(format!("ws cannot check staged content for secrets until {} is readable", path.display()))
    })?;
    Ok(file.fingerprints)
}

/// The fingerprints of the phantom tokens sessions of these stores handed to
/// their commands, which must never be committed either.
fn session_phantom_fingerprints(stores: &[Served]) -> Vec<Fingerprint> {
    let mut out = Vec::new();
    for s in stores {
        match FingerprintFile::load(&crate::network::phantom_file(&s.store)) {
            Ok(f) => out.extend(f.fingerprints),
            Err(e) => ui::warn(&chain(&e)),
        }
    }
    out
}

/// The index git is committing from (a temporary one for `git commit -a` and
/// partial commits), as git tells its hooks.
fn index_file() -> Option<PathBuf> {
    env::var_os(env::GIT_INDEX_FILE).map(PathBuf::from)
}

/// What git's environment says about the repository a hook commits to.
fn git_env() -> ws_hooks::GitEnv {
    ws_hooks::GitEnv {
        git_dir: env::var_os(env::GIT_DIR).map(PathBuf::from),
        index_file: index_file(),
        redirected: env::GIT_REDIRECTS.iter().any(|v| env::var_os(v).is_some()),
    }
}

fn pre_commit() -> Result<i32, CliError> {
    let top = repo_top()?;
    let stores = stores_serving(&top)?;
    let mut fingerprints = stored_fingerprints()?;
    fingerprints.extend(session_phantom_fingerprints(&stores));
    if stores.is_empty() && fingerprints.is_empty() {
        return Ok(exit::OK);
    }
    let staged = ws_hooks::staged_changes(&top, &git_env()).map_err(|e| git_failed(&e))?;
    let found = examine(&top, &stores, &staged, &fingerprints)?;
    let pass = found.unreviewed.is_empty()
        && found.rolled_back.is_empty()
        && found.blockers.is_empty()
        && found.secrets.is_empty();
    if let Some(index) = index_file().filter(|_| !stores.is_empty()) {
        // prepare-commit-msg runs next: what it would find is known now. A
        // refused commit leaves nothing behind (what it found may be stale
        // by the next attempt: `ws approve` does not touch the index).
        if pass {
            let _ = ws_hooks::save_trailers(&index, &trailers(&found.trailers));
        } else {
            ws_hooks::discard_trailers(&index);
        }
    }
    if pass {
        return Ok(exit::OK);
    }
    report(&found);
    Ok(exit::FAILURE)
}

fn report(found: &Findings) {
    for b in &found.blockers {
        match b {
            Blocker::Running(id) => ui::error(
                &format!("refusing the commit: ws session {id} is still running, so what it changed is not known yet"),
                Some("commit after it ends and you have reviewed it (`ws diff`)"),
            ),
            Blocker::Interrupted(id) => ui::error(
                &format!("refusing the commit: ws session {id} was interrupted before its changes were recorded"),
                Some(&format!("`ws diff {id}` records and shows them; then `ws approve` or `ws rollback`")),
            ),
        }
    }
    if !found.unreviewed.is_empty() {
        let lines: Vec<String> = found
            .unreviewed
            .iter()
            .map(|u| format!("  {} (session {})", display::name(u.path.as_bytes()), u.session))
            .collect();
        let mut ids: Vec<&str> = found.unreviewed.iter().map(|u| u.session.as_str()).collect();
        ids.dedup();
        let id = if ids.len() == 1 { ids[0] } else { "ID" };
        ui::error(
            &format!(
                "refusing the commit: staged content includes changes of a ws session that are not reviewed yet:\n{}",
                lines.join("\n")
            ),
            Some(&format!(
                "review them with `ws diff {id}`, keep them with `ws approve {id} [PATHS]` or undo them with \
                 `ws rollback {id} [PATHS]`, then commit again"
            )),
        );
    }
    if !found.rolled_back.is_empty() {
        let lines: Vec<String> =
            found.rolled_back.iter().map(|u| format!("  {} (session {})", u.path, u.session)).collect();
        let paths: Vec<String> = found.rolled_back.iter().map(|u| shell_word(&u.path)).collect();
        let paths = paths.join(" ");
        ui::error(
            &format!(
                "refusing the commit: staged content is a ws session's version of changes you rolled back:\n{}",
                lines.join("\n")
            ),
            Some(&format!(
                "the rollback restored the work tree, not the index: `git restore --staged {paths}` unstages the \
                 session's version, or `git add {paths}` stages the restored one; then commit again"
            )),
        );
    }
    if !found.secrets.is_empty() {
        let lines: Vec<String> = found
            .secrets
            .iter()
            .map(|s| format!("  {}, line {}: the secret `{}`", display::name(s.path.as_bytes()), s.line, s.name))
            .collect();
        ui::error(
            &format!("refusing the commit: staged content contains a secret:\n{}", lines.join("\n")),
            Some(
                "take it out of the file and `git add` it again; if it was ever committed or pushed elsewhere, \
                 rotate it",
            ),
        );
    }
}

#[derive(Debug)]
enum Blocker {
    Running(String),
    Interrupted(String),
}

/// A staged path carrying a pending change of a session.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Unreviewed {
    session: String,
    path: String,
}

/// A stored secret or phantom token in a staged file (never its value).
#[derive(Debug)]
struct SecretHit {
    path: String,
    line: usize,
    name: String,
}

/// What the staged content carries.
#[derive(Debug, Default)]
struct Findings {
    /// Staged paths carrying pending changes.
    unreviewed: Vec<Unreviewed>,
    /// Staged paths carrying the session's side of a rolled-back change.
    rolled_back: Vec<Unreviewed>,
    /// Sessions whose changes are not known yet.
    blockers: Vec<Blocker>,
    secrets: Vec<SecretHit>,
    /// Sessions whose approved changes the commit carries, oldest first.
    trailers: Vec<String>,
}

/// A staged path a session changed: which session, and the version that
/// decides (before the session for a pending change, after it for an
/// approved one).
#[derive(Debug)]
struct Touch {
    staged: usize,
    version: Version,
    session: String,
    state: ChangeState,
    /// For a rolled-back change, the version before the session (`version` is the agent's).
    before: Option<Version>,
}

/// Matches the staged paths against every session's changes and scans the
/// staged content for `fps`, reading each staged version at most once.
fn examine(top: &Path, stores: &[Served], staged: &[StagedPath], fps: &[Fingerprint]) -> Result<Findings, CliError> {
    let mut found = Findings::default();
    if staged.is_empty() {
        return Ok(found);
    }
    let by_path: HashMap<&[u8], usize> = staged.iter().enumerate().map(|(i, s)| (s.path.as_slice(), i)).collect();
    let mut touches: Vec<Touch> = Vec::new();
    for served in stores {
        for session in served.store.sessions()? {
            let session = session.map_err(|e| {
                CliError::from(e).hint("a damaged session record could hide changes; `ws session list` shows it")
            })?;
            if session.state == SessionState::Running {
                found.blockers.push(if session.orphaned() {
                    Blocker::Interrupted(session.id)
                } else {
                    Blocker::Running(session.id)
                });
                continue;
            }
            for c in served.store.load_changes(&session.id)? {
                let side = match c.state {
                    ChangeState::Pending => c.before.as_ref(),
                    ChangeState::Approved | ChangeState::RolledBack => c.after.as_ref(),
                };
                let Some(path) = policy::repo_path(c.path.as_bytes(), &served.prefix) else { continue };
                if let Some(&i) = by_path.get(path) {
                    let (version, before) = match c.state {
                        // The store may have freed what a rolled-back change
                        // no longer needs: then it is not compared.
                        ChangeState::RolledBack => (
                            version_of(&served.store, side).unwrap_or(Version::Other),
                            Some(version_of(&served.store, c.before.as_ref()).unwrap_or(Version::Other)),
                        ),
                        _ => (version_of(&served.store, side)?, None),
                    };
                    let session = session.id.clone();
                    touches.push(Touch { staged: i, version, session, state: c.state, before });
                }
            }
        }
    }

    // The staged versions that decide, and the secret scan, in one pass.
    let mut versions: HashMap<usize, Version> = HashMap::new();
    let mut wanted: Vec<usize> = Vec::new();
    for t in &touches {
        match &staged[t.staged].staged {
            Staged::Deleted => drop(versions.insert(t.staged, Version::Absent)),
            Staged::Submodule => drop(versions.insert(t.staged, Version::Other)),
            Staged::File { .. } | Staged::Symlink { .. } => wanted.push(t.staged),
        }
    }
    let read: Vec<usize> = if fps.is_empty() {
        wanted.sort_unstable();
        wanted.dedup();
        wanted.clone()
    } else {
        (0..staged.len()).filter(|&i| staged[i].staged.blob().is_some()).collect()
    };
    let entries: Vec<&StagedPath> = read.iter().map(|&i| &staged[i]).collect();
    // A large staged file is examined in pieces, never held whole.
    ws_hooks::examine_staged(top, &entries, fps, |k, examined| {
        let i = read[k];
        for (fp, line) in examined.secrets {
            let path = String::from_utf8_lossy(&staged[i].path).into_owned();
            found.secrets.push(SecretHit { path, line, name: fp.name.clone() });
        }
        if wanted.contains(&i) {
            let v = match staged[i].staged {
                Staged::File { executable, .. } => Version::File { executable, blake3: examined.blake3 },
                _ => Version::Symlink { blake3: examined.blake3 },
            };
            versions.insert(i, v);
        }
    })
    .map_err(|e| git_failed(&e))?;

    for t in touches {
        let Some(now) = versions.get(&t.staged) else { continue };
        let path = || String::from_utf8_lossy(&staged[t.staged].path).into_owned();
        match t.state {
            ChangeState::Pending if policy::carries_pending(now, &t.version) => {
                found.unreviewed.push(Unreviewed { session: t.session, path: path() });
            }
            ChangeState::RolledBack
                if t.before.as_ref().is_some_and(|b| policy::carries_rolled_back(now, b, &t.version)) =>
            {
                found.rolled_back.push(Unreviewed { session: t.session, path: path() });
            }
            ChangeState::Approved
                if policy::carries_approved(now, &t.version) && !found.trailers.contains(&t.session) =>
            {
                found.trailers.push(t.session);
            }
            _ => {}
        }
    }
    found.unreviewed.sort();
    found.unreviewed.dedup();
    found.rolled_back.sort();
    found.rolled_back.dedup();
    Ok(found)
}

/// What a snapshot recorded for a path, as a comparable version.
fn version_of(store: &Store, entry: Option<&Entry>) -> Result<Version, CliError> {
    let Some(e) = entry else { return Ok(Version::Absent) };
    Ok(match &e.kind {
        EntryKind::File { object, hash } => {
            let executable = e.stat.mode & 0o100 != 0;
            match hash {
                Some(h) => Version::File { executable, blake3: *h },
                None => Version::file(executable, &store.read_object(object)?),
            }
        }
        EntryKind::Symlink { target } => Version::symlink(target),
        _ => Version::Other,
    })
}

/// A path as a shell word, quoted unless it is plain.
fn shell_word(path: &str) -> String {
    let plain = !path.is_empty()
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'+' | b'@'));
    if plain { path.to_owned() } else { format!("'{}'", path.replace('\'', r"'\''")) }
}

fn trailers(sessions: &[String]) -> Vec<String> {
    sessions.iter().map(|id| format!("Ws-Session: {id}")).collect()
}

fn prepare_commit_msg(args: &[OsString]) -> Result<i32, CliError> {
    let Some(message) = args.first() else {
        return Err(CliError::usage("prepare-commit-msg needs the commit message file")
            .hint("git passes it: `ws hooks run prepare-commit-msg FILE [SOURCE [COMMIT]]`"));
    };
    let arg_or =
        |i: usize, var: &str| args.get(i).cloned().or_else(|| env::var_os(var)).and_then(|s| s.into_string().ok());
    let source = arg_or(1, env::PRE_COMMIT_COMMIT_MSG_SOURCE);
    let commit = arg_or(2, env::PRE_COMMIT_COMMIT_OBJECT_NAME);
    let top = repo_top()?;
    let git = |e: ws_hooks::GitError| failed(&e);
    let amending = source.as_deref() == Some("commit") && commit.is_some();
    // pre-commit examined this very index a moment ago.
    let saved = index_file().and_then(|i| ws_hooks::take_trailers(&i));
    if let Some(trailers) = saved.filter(|_| !amending) {
        ws_hooks::add_trailers(&top, Path::new(message), &trailers).map_err(git)?;
        return Ok(exit::OK);
    }
    let stores = stores_serving(&top)?;
    if stores.is_empty() {
        return Ok(exit::OK);
    }
    // Amending: the commit will record what HEAD's parent does not have.
    let mut base = None;
    if amending && ws_hooks::resolve(&top, "HEAD").map_err(git)? == commit {
        base = Some(match ws_hooks::resolve(&top, "HEAD^").map_err(git)? {
            Some(parent) => parent,
            None => ws_hooks::empty_tree(&top).map_err(git)?,
        });
    }
    let staged = match base {
        Some(base) => ws_hooks::staged_paths(&top, Some(&base)),
        None => ws_hooks::staged_changes(&top, &git_env()),
    }
    .map_err(|e| git_failed(&e))?;
    let found = examine(&top, &stores, &staged, &[])?;
    ws_hooks::add_trailers(&top, Path::new(message), &trailers(&found.trailers)).map_err(git)?;
    Ok(exit::OK)
}
