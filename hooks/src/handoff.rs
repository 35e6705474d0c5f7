//! From pre-commit to prepare-commit-msg: the `Ws-Session` trailers of the
//! staged content, found while pre-commit examined it, saved beside the
//! index git commits from as `ws-trailers` (one trailer per line, or `none`)
//! when pre-commit lets the commit through; a refusing pre-commit removes it.
//! The prepare-commit-msg script exits at once, without starting ws, when the
//! file says `none` and is not older than the index, emptying it (a shell
//! builtin) so that it serves one commit only; ws takes (and removes) a file
//! with trailers instead of examining the index again. An empty file, or one
//! older than the index, is ignored: a commit that skipped pre-commit
//! (`--no-verify`) is examined in full.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The file's name, beside the index (the hook script spells it too).
pub const HANDOFF_NAME: &str = "ws-trailers";

/// Where the trailers for a commit from `index` go: `None` when the index
/// path names no directory (then nothing is handed off).
pub fn handoff_path(index: &Path) -> Option<PathBuf> {
    let dir = index.parent().filter(|d| !d.as_os_str().is_empty())?;
    Some(dir.join(HANDOFF_NAME))
}

/// What the file says when the commit carries no session's change.
const NONE: &str = "none";

/// Saves `trailers` for the commit from `index` (replacing what was there).
pub fn save_trailers(index: &Path, trailers: &[String]) -> io::Result<()> {
    let Some(path) = handoff_path(index) else { return Ok(()) };
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let write = || -> io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        if trailers.is_empty() {
            writeln!(f, "{NONE}")?;
        }
        for t in trailers {
            writeln!(f, "{t}")?;
        }
        std::fs::rename(&tmp, &path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Removes what a previous pre-commit saved for `index`.
pub fn discard_trailers(index: &Path) {
    if let Some(path) = handoff_path(index) {
        let _ = std::fs::remove_file(path);
    }
}

/// The trailers pre-commit saved for `index`, if it saved them after the
/// index was last written; the file is removed either way.
pub fn take_trailers(index: &Path) -> Option<Vec<String>> {
    let path = handoff_path(index)?;
    let saved = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    let written = std::fs::metadata(index).and_then(|m| m.modified()).ok();
    let text = std::fs::read_to_string(&path).ok();
    let _ = std::fs::remove_file(&path);
    let fresh = written.is_some_and(|w| saved >= w);
    let text = text.filter(|t| fresh && !t.trim().is_empty())?;
    Some(text.lines().filter(|l| !l.is_empty() && *l != NONE).map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_saved_after_the_index_are_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("index");
        std::fs::write(&index, b"index").unwrap();
        save_trailers(&index, &["Ws-Session: a".into(), "Ws-Session: b".into()]).unwrap();
        assert_eq!(take_trailers(&index).unwrap(), ["Ws-Session: a", "Ws-Session: b"]);
        assert_eq!(take_trailers(&index), None, "taken once");
        save_trailers(&index, &[]).unwrap();
        assert_eq!(std::fs::read(dir.path().join(HANDOFF_NAME)).unwrap(), b"none\n");
        assert_eq!(take_trailers(&index).unwrap(), Vec::<String>::new());
        // Emptied by the hook script after use: nothing to go by.
        std::fs::write(dir.path().join(HANDOFF_NAME), b"").unwrap();
        assert_eq!(take_trailers(&index), None);
        save_trailers(&index, &[]).unwrap();
        discard_trailers(&index);
        assert_eq!(take_trailers(&index), None);
    }

    #[test]
    fn trailers_older_than_the_index_are_stale() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("index");
        std::fs::write(&index, b"index").unwrap();
        save_trailers(&index, &["Ws-Session: a".into()]).unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options().write(true).open(&index).unwrap().set_modified(later).unwrap();
        assert_eq!(take_trailers(&index), None);
        assert!(!dir.path().join(HANDOFF_NAME).exists(), "a stale file is removed");
    }

    #[test]
    fn an_index_without_a_directory_hands_nothing_off() {
        assert_eq!(handoff_path(Path::new("index")), None);
        assert!(save_trailers(Path::new("index"), &["x".into()]).is_ok());
        assert_eq!(handoff_path(Path::new(".git/index")), Some(PathBuf::from(".git/ws-trailers")));
    }
}
