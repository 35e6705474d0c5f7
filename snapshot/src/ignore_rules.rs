//! Git's ignore rules, evaluated the way git does: the deepest `.gitignore`
//! with a matching pattern decides (a `!pattern` re-includes), then
//! `.git/info/exclude`, then the user's global excludes file. Patterns are
//! parsed by the `ignore` crate (ripgrep's).

use std::path::Path;
use std::sync::Arc;

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// The `.gitignore` files in force for one directory, innermost first.
#[derive(Debug)]
pub(crate) struct IgnoreStack {
    matcher: Gitignore,
    parent: Option<Arc<IgnoreStack>>,
}

#[derive(Debug)]
pub(crate) struct IgnoreRules {
    global: Gitignore,
}

impl IgnoreRules {
    /// Rules rooted at `workspace` from `files` (`.git/info/exclude`, the
    /// global excludes file); missing files are skipped, bad patterns are
    /// skipped as git skips them.
    pub fn new(workspace: &Path, files: &[&Path]) -> IgnoreRules {
        let mut b = GitignoreBuilder::new(workspace);
        for f in files {
            if f.is_file() {
                let _ = b.add(f);
            }
        }
        IgnoreRules { global: b.build().unwrap_or_else(|_| Gitignore::empty()) }
    }

    /// The stack for a directory that holds a `.gitignore` at `file`.
    pub fn push(parent: Option<Arc<IgnoreStack>>, file: &Path) -> Option<Arc<IgnoreStack>> {
        let (matcher, _err) = Gitignore::new(file);
        if matcher.is_empty() {
            return parent;
        }
        Some(Arc::new(IgnoreStack { matcher, parent }))
    }

    pub fn is_ignored(&self, stack: Option<&Arc<IgnoreStack>>, path: &Path, is_dir: bool) -> bool {
        let mut cur = stack;
        while let Some(s) = cur {
            match s.matcher.matched(path, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => cur = s.parent.as_ref(),
            }
        }
        matches!(self.global.matched(path, is_dir), Match::Ignore(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deepest_rule_wins_and_negation_reincludes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs_err::write(root.join(".gitignore"), "*.log\nbuild/\n").unwrap();
        fs_err::create_dir(root.join("sub")).unwrap();
        fs_err::write(root.join("sub/.gitignore"), "!keep.log\n").unwrap();
        let exclude = root.join("exclude");
        fs_err::write(&exclude, "secret.txt\n").unwrap();
        let rules = IgnoreRules::new(root, &[exclude.as_path()]);
        let top = IgnoreRules::push(None, &root.join(".gitignore"));
        let sub = IgnoreRules::push(top.clone(), &root.join("sub/.gitignore"));
        assert!(rules.is_ignored(top.as_ref(), &root.join("a.log"), false));
        assert!(!rules.is_ignored(top.as_ref(), &root.join("a.txt"), false));
        assert!(rules.is_ignored(top.as_ref(), &root.join("build"), true));
        assert!(!rules.is_ignored(top.as_ref(), &root.join("build"), false));
        assert!(rules.is_ignored(sub.as_ref(), &root.join("sub/x.log"), false));
        assert!(!rules.is_ignored(sub.as_ref(), &root.join("sub/keep.log"), false));
        assert!(rules.is_ignored(top.as_ref(), &root.join("secret.txt"), false));
    }
}
