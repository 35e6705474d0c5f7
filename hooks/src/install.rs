//! Installing and uninstalling the hook scripts, chaining what was there.
//!
//! A hook that is already in place (the user's, a framework's) is renamed to
//! `NAME.ws-chained` — a rename keeps its bytes, mode and inode — and the
//! script put in its place runs it first, with the same arguments and stdin,
//! and stops with its exit status if it fails; then it runs
//! `WS hooks run NAME "$@"`, where WS is the absolute path of the `ws` that
//! installed it. Uninstalling renames the chained hook back. Both are
//! idempotent, and a crash between the two renames of an install leaves a
//! state the next install or uninstall completes.

use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The hooks `ws hooks install` manages.
pub const HOOKS: [&str; 2] = ["pre-commit", "prepare-commit-msg"];

/// Appended to the name of a hook that was in place before ws's.
pub const CHAINED_SUFFIX: &str = ".ws-chained";

/// Identifies a script as ws's; nothing else is ever removed or replaced.
const MARKER: &str = "# ws-hooks: managed by `ws hooks install`";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Installed {
    /// There was no hook: ws's is the only one.
    Fresh,
    /// The hook that was there now runs first, from `NAME.ws-chained`.
    Chained,
    /// ws's hook was there, for another `ws` binary; it now runs this one.
    Updated,
    AlreadyInstalled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uninstalled {
    /// The hook that was there before ws's is back in place.
    Restored,
    /// ws's hook is gone; there was none before it.
    Removed,
    /// The hook in place is not ws's, yet `NAME.ws-chained` is beside it:
    /// ws's hook was replaced after it was installed. Both are left alone.
    Replaced,
    /// No hook of ws's is there (another hook may be, and stays).
    NotInstalled,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookOutcome<T> {
    pub name: &'static str,
    pub path: PathBuf,
    pub outcome: T,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot install the {name} hook at {path}")]
    Io { name: &'static str, path: PathBuf, source: io::Error },
    #[error("both {path} and {chained} exist and neither is ws's hook")]
    ChainOccupied { path: PathBuf, chained: PathBuf },
}

#[derive(Debug, thiserror::Error)]
#[error("cannot uninstall the {name} hook at {path}")]
pub struct UninstallError {
    pub name: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
}

/// The script installed as hook `name`, running the `ws` at `ws_bin`.
pub fn hook_script(name: &str, ws_bin: &Path) -> String {
    let ws = shell_quote(&ws_bin.to_string_lossy());
    let fast = if name == "prepare-commit-msg" {
        PREPARE_FAST_PATH.replace("HANDOFF", crate::handoff::HANDOFF_NAME)
    } else {
        String::new()
    };
    format!(
        r#"#!/bin/sh
{MARKER}; `ws hooks uninstall` puts back what was here.
# A hook that was here before runs first, from {name}{CHAINED_SUFFIX} beside this file.
chained="${{0%/*}}/{name}{CHAINED_SUFFIX}"
if [ -x "$chained" ]; then
	"$chained" "$@" || exit $?
fi
{fast}ws={ws}
if [ ! -x "$ws" ]; then
	echo "ws: error: the git {name} hook runs $ws, which is not there any more" >&2
	echo "ws: hint: run \`ws hooks install\` with the ws you use now (or \`ws hooks uninstall\`); \`git commit --no-verify\` skips the hooks once" >&2
	exit 1
fi
exec "$ws" hooks run {name} "$@"
"#
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r#"'\''"#))
}

/// pre-commit left word beside the index that this commit carries no
/// session's change (see [`crate::handoff`]): ws need not start. The word is
/// used up here, so it serves one commit. Amending (`$2` = commit) always asks
/// ws, which looks at the amended commit's parent. Only a regular file is
/// read or emptied (`-f` and not `-L`): a session may have left a symlink or
/// a FIFO under that name, and then ws starts, which removes it unread.
const PREPARE_FAST_PATH: &str = r#"if [ "$2" != commit ] && [ -n "$GIT_INDEX_FILE" ]; then
	handoff="${GIT_INDEX_FILE%/*}/HANDOFF"
	if [ ! -L "$handoff" ] && [ -f "$handoff" ] && [ ! "$GIT_INDEX_FILE" -nt "$handoff" ] && read -r found < "$handoff" && [ "$found" = none ]; then
		: > "$handoff"
		exit 0
	fi
fi
"#;

/// Whether `path` is a hook script ws installed (a regular file with the marker).
pub fn is_ours(path: &Path) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return false };
    if !meta.is_file() {
        return false;
    }
    let mut head = [0u8; 512];
    let n = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
    String::from_utf8_lossy(&head[..n]).contains(MARKER)
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn chained_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}{CHAINED_SUFFIX}"))
}

/// Installs every hook of [`HOOKS`] into `hooks_dir` (created if missing).
pub fn install(hooks_dir: &Path, ws_bin: &Path) -> Result<Vec<HookOutcome<Installed>>, InstallError> {
    HOOKS.iter().map(|&name| install_one(hooks_dir, name, ws_bin)).collect()
}

fn install_one(dir: &Path, name: &'static str, ws_bin: &Path) -> Result<HookOutcome<Installed>, InstallError> {
    let path = dir.join(name);
    let chained = chained_path(dir, name);
    let io_err = |source| InstallError::Io { name, path: path.clone(), source };
    let script = hook_script(name, ws_bin);
    let outcome = if is_ours(&path) {
        let current = std::fs::read(&path).map_err(io_err)?;
        if current == script.as_bytes() {
            Installed::AlreadyInstalled
        } else {
            write_script(dir, &path, &script).map_err(io_err)?;
            Installed::Updated
        }
    } else if exists(&path) {
        if exists(&chained) {
            return Err(InstallError::ChainOccupied { path, chained });
        }
        std::fs::rename(&path, &chained).map_err(io_err)?;
        write_script(dir, &path, &script).map_err(io_err)?;
        Installed::Chained
    } else {
        std::fs::create_dir_all(dir).map_err(io_err)?;
        write_script(dir, &path, &script).map_err(io_err)?;
        // A chained hook without ws's beside it: an install was interrupted
        // between its renames, or ws's script was deleted; it runs again now.
        if exists(&chained) { Installed::Chained } else { Installed::Fresh }
    };
    Ok(HookOutcome { name, path, outcome })
}

/// Writes an executable script next to `path` and renames it into place.
fn write_script(dir: &Path, path: &Path, script: &str) -> io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.ws-tmp-{}", std::process::id()));
    let write = || -> io::Result<()> {
        let mut f = std::fs::File::options().write(true).create(true).truncate(true).mode(0o755).open(&tmp)?;
        f.write_all(script.as_bytes())?;
        // The umask may have taken bits away: hooks must be executable.
        f.set_permissions(std::fs::Permissions::from_mode(0o755))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Removes ws's hooks from `hooks_dir`, putting back what each replaced.
pub fn uninstall(hooks_dir: &Path) -> Result<Vec<HookOutcome<Uninstalled>>, UninstallError> {
    HOOKS.iter().map(|&name| uninstall_one(hooks_dir, name)).collect()
}

fn uninstall_one(dir: &Path, name: &'static str) -> Result<HookOutcome<Uninstalled>, UninstallError> {
    let path = dir.join(name);
    let chained = chained_path(dir, name);
    let err = |source| UninstallError { name, path: path.clone(), source };
    let outcome = if is_ours(&path) || !exists(&path) {
        if exists(&chained) {
            std::fs::rename(&chained, &path).map_err(err)?;
            Uninstalled::Restored
        } else if exists(&path) {
            std::fs::remove_file(&path).map_err(err)?;
            Uninstalled::Removed
        } else {
            Uninstalled::NotInstalled
        }
    } else if exists(&chained) {
        Uninstalled::Replaced
    } else {
        Uninstalled::NotInstalled
    };
    Ok(HookOutcome { name, path, outcome })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, u32)> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let m = std::fs::symlink_metadata(e.path()).unwrap();
                let content = if m.file_type().is_symlink() {
                    std::fs::read_link(e.path()).unwrap().to_string_lossy().into_owned().into_bytes()
                } else {
                    std::fs::read(e.path()).unwrap()
                };
                (e.file_name().to_string_lossy().into_owned(), content, m.mode())
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn install_chains_and_uninstall_restores_exactly_twice_over() {
        let dir = tempfile::tempdir().unwrap();
        let hooks = dir.path();
        std::fs::write(hooks.join("pre-commit"), b"#!/bin/sh\necho mine\n").unwrap();
        std::fs::set_permissions(hooks.join("pre-commit"), std::fs::Permissions::from_mode(0o750)).unwrap();
        std::os::unix::fs::symlink("pre-commit", hooks.join("prepare-commit-msg")).unwrap();
        std::fs::write(hooks.join("post-commit"), b"untouched").unwrap();
        let before = snapshot(hooks);
        let ws = Path::new("/opt/it's/ws");

        let out = install(hooks, ws).unwrap();
        assert!(out.iter().all(|o| o.outcome == Installed::Chained), "{out:?}");
        assert!(is_ours(&hooks.join("pre-commit")) && is_ours(&hooks.join("prepare-commit-msg")));
        assert_eq!(std::fs::read(hooks.join("pre-commit.ws-chained")).unwrap(), b"#!/bin/sh\necho mine\n");
        let again = install(hooks, ws).unwrap();
        assert!(again.iter().all(|o| o.outcome == Installed::AlreadyInstalled), "{again:?}");
        let other = install(hooks, Path::new("/usr/bin/ws")).unwrap();
        assert!(other.iter().all(|o| o.outcome == Installed::Updated), "{other:?}");

        let out = uninstall(hooks).unwrap();
        assert!(out.iter().all(|o| o.outcome == Uninstalled::Restored), "{out:?}");
        assert_eq!(snapshot(hooks), before);
        let again = uninstall(hooks).unwrap();
        assert!(again.iter().all(|o| o.outcome == Uninstalled::NotInstalled), "{again:?}");
        assert_eq!(snapshot(hooks), before);
    }

    #[test]
    fn install_into_an_empty_or_missing_directory_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let hooks = dir.path().join("custom/hooks");
        let out = install(&hooks, Path::new("/bin/ws")).unwrap();
        assert!(out.iter().all(|o| o.outcome == Installed::Fresh));
        let mode = std::fs::metadata(hooks.join("pre-commit")).unwrap().mode();
        assert_eq!(mode & 0o777, 0o755);
        let out = uninstall(&hooks).unwrap();
        assert!(out.iter().all(|o| o.outcome == Uninstalled::Removed));
        assert!(std::fs::read_dir(&hooks).unwrap().next().is_none());
        assert!(uninstall(&hooks).unwrap().iter().all(|o| o.outcome == Uninstalled::NotInstalled));
    }

    #[test]
    fn a_hook_replaced_after_install_is_never_removed() {
        let dir = tempfile::tempdir().unwrap();
        let hooks = dir.path();
        install(hooks, Path::new("/bin/ws")).unwrap();
        std::fs::write(hooks.join("pre-commit"), b"#!/bin/sh\necho someone else\n").unwrap();
        let out = uninstall(hooks).unwrap();
        assert_eq!(out[0].outcome, Uninstalled::NotInstalled);
        assert_eq!(out[1].outcome, Uninstalled::Removed);
        assert_eq!(std::fs::read(hooks.join("pre-commit")).unwrap(), b"#!/bin/sh\necho someone else\n");
        // Installing again chains the new one; a second foreign hook would
        // have nowhere to go and is refused, not clobbered.
        install(hooks, Path::new("/bin/ws")).unwrap();
        std::fs::write(hooks.join("pre-commit"), b"third").unwrap();
        assert_eq!(uninstall(hooks).unwrap()[0].outcome, Uninstalled::Replaced);
        let e = install(hooks, Path::new("/bin/ws")).unwrap_err();
        assert!(matches!(e, InstallError::ChainOccupied { .. }), "{e}");
        assert_eq!(std::fs::read(hooks.join("pre-commit")).unwrap(), b"third");
    }

    #[test]
    fn an_interrupted_install_is_completed_or_undone() {
        let dir = tempfile::tempdir().unwrap();
        let hooks = dir.path();
        // The user's hook was renamed, ws's script never written.
        std::fs::write(hooks.join("pre-commit.ws-chained"), b"user").unwrap();
        let out = uninstall(hooks).unwrap();
        assert_eq!(out[0].outcome, Uninstalled::Restored);
        assert_eq!(std::fs::read(hooks.join("pre-commit")).unwrap(), b"user");
        std::fs::rename(hooks.join("pre-commit"), hooks.join("pre-commit.ws-chained")).unwrap();
        let out = install(hooks, Path::new("/bin/ws")).unwrap();
        assert_eq!(out[0].outcome, Installed::Chained);
        assert!(is_ours(&hooks.join("pre-commit")));
    }

    #[test]
    fn the_script_quotes_the_binary_path() {
        let s = hook_script("pre-commit", Path::new("/a b/it's/ws"));
        assert!(s.contains(r#"ws='/a b/it'\''s/ws'"#), "{s}");
        assert!(s.starts_with("#!/bin/sh\n") && s.contains(MARKER));
        assert!(s.contains(r#"exec "$ws" hooks run pre-commit "$@""#));
    }
}
