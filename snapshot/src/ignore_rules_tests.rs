//! The ignore-file reader against hostile files: each must come back at once
//! with its problem named, and a good file must mean what it means to the
//! `ignore` crate's own reader.

#![allow(clippy::unwrap_used)]

use std::os::fd::AsFd;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

/// Rules with no exclude files, for pushing `.gitignore`s (with the whole
/// wildcard budget of a snapshot).
fn no_rules() -> IgnoreRules {
    IgnoreRules::new(Path::new("/"), &[]).0
}

fn dir_fd(p: &Path) -> std::fs::File {
    std::fs::File::open(p).unwrap()
}

/// Runs `f` on another thread and fails, rather than hangs, if it blocks.
fn within_5s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(5)).expect("reading the ignore file blocked")
}

fn mkfifo(p: &Path) {
    rustix::fs::mknodat(CWD, p, FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
}

#[test]
fn deepest_rule_wins_and_negation_reincludes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs_err::write(root.join(".gitignore"), "*.log\nbuild/\n").unwrap();
    fs_err::create_dir(root.join("sub")).unwrap();
    fs_err::write(root.join("sub/.gitignore"), "!keep.log\n").unwrap();
    let exclude = root.join("exclude");
    fs_err::write(&exclude, "secret.txt\n").unwrap();
    let (rules, bad) = IgnoreRules::new(root, &[exclude.as_path()]);
    assert!(bad.is_empty());
    let (top, bad) = no_rules().push(None, dir_fd(root).as_fd(), root);
    assert!(bad.is_none());
    let (sub, _) = no_rules().push(top.clone(), dir_fd(&root.join("sub")).as_fd(), &root.join("sub"));
    assert!(rules.is_ignored(top.as_ref(), &root.join("a.log"), false));
    assert!(!rules.is_ignored(top.as_ref(), &root.join("a.txt"), false));
    assert!(rules.is_ignored(top.as_ref(), &root.join("build"), true));
    assert!(!rules.is_ignored(top.as_ref(), &root.join("build"), false));
    assert!(rules.is_ignored(sub.as_ref(), &root.join("sub/x.log"), false));
    assert!(!rules.is_ignored(sub.as_ref(), &root.join("sub/keep.log"), false));
    assert!(rules.is_ignored(top.as_ref(), &root.join("secret.txt"), false));
}

#[test]
fn gitignore_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    mkfifo(&root.join(".gitignore"));
    let (stack, bad) = within_5s(move || no_rules().push(None, dir_fd(&root).as_fd(), &root));
    assert!(stack.is_none());
    let bad = bad.unwrap();
    assert_eq!(bad.problem, IgnoreFileProblem::NotRegular { kind: "FIFO" });
    assert!(bad.to_string().contains(".gitignore is a FIFO"), "{bad}");
}

#[test]
fn exclude_file_symlinked_to_dev_zero_or_a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    symlink("/dev/zero", root.join("zero")).unwrap();
    mkfifo(&root.join("fifo"));
    symlink(root.join("fifo"), root.join("to-fifo")).unwrap();
    let r = root.clone();
    let (_, bad) = within_5s(move || {
        IgnoreRules::new(&r, &[r.join("zero").as_path(), r.join("to-fifo").as_path(), r.join("missing").as_path()])
    });
    assert_eq!(
        bad.iter().map(|b| (b.path.clone(), b.problem)).collect::<Vec<_>>(),
        [
            (root.join("zero"), IgnoreFileProblem::NotRegular { kind: "character device" }),
            (root.join("to-fifo"), IgnoreFileProblem::NotRegular { kind: "FIFO" }),
        ]
    );
}

#[test]
fn gitignore_symlink_is_not_followed_like_git_but_an_exclude_symlink_is() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs_err::write(root.join("patterns"), "*.log\n").unwrap();
    symlink("patterns", root.join(".gitignore")).unwrap();
    let (stack, bad) = no_rules().push(None, dir_fd(root).as_fd(), root);
    assert!(stack.is_none());
    assert_eq!(bad.unwrap().problem, IgnoreFileProblem::Symlink);
    // The positive control: the same link as an exclude file applies.
    let (rules, bad) = IgnoreRules::new(root, &[root.join(".gitignore").as_path()]);
    assert!(bad.is_empty());
    assert!(rules.is_ignored(None, &root.join("a.log"), false));
}

#[test]
fn gitignore_longer_than_the_bound_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Sparse: a 1 TiB file costs nothing to make and would never end to read.
    let f = std::fs::File::create(root.join(".gitignore")).unwrap();
    f.set_len(1 << 40).unwrap();
    let t = Instant::now();
    let (_, bad) = no_rules().push(None, dir_fd(root).as_fd(), root);
    assert_eq!(bad.unwrap().problem, IgnoreFileProblem::TooLarge { size: 1 << 40 });
    assert!(t.elapsed() < Duration::from_secs(1));
    // Exactly at the bound is read.
    f.set_len(IGNORE_FILE_MAX).unwrap();
    let (_, bad) = no_rules().push(None, dir_fd(root).as_fd(), root);
    assert!(bad.is_none());
}

/// Lines of `dir{i}/**/*.x{i}`, three wildcards each, `lines` of them.
fn globs(lines: usize) -> String {
    (0..lines).map(|i| format!("dir{i}/**/*.x{i}\n")).collect()
}

/// What the wildcard bound lets through costs a moment; a file of the size
/// bound's worth of globs (180,000 wildcards) is refused without being
/// compiled, and the bound is one for the whole snapshot: a second file
/// gets only what the first left.
#[test]
fn ignore_files_past_the_wildcard_bound_are_refused_uncompiled() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let rules = no_rules();
    // Positive control: within the bound, compiled and applied.
    let within = IGNORE_WILDCARDS_MAX / 3 - 1;
    fs_err::create_dir(root.join("a")).unwrap();
    fs_err::write(root.join("a/.gitignore"), globs(within)).unwrap();
    let t = Instant::now();
    let (stack, bad) = rules.push(None, dir_fd(&root.join("a")).as_fd(), &root.join("a"));
    let took = t.elapsed();
    assert!(bad.is_none() && stack.is_some(), "{bad:?}");
    assert!(rules.is_ignored(stack.as_ref(), &root.join("a/dir7/q/z.x7"), false));
    assert!(took < Duration::from_secs(10), "{within} patterns took {took:?}");
    // What is left is too little for a second such file.
    let left = IGNORE_WILDCARDS_MAX - within * 3;
    fs_err::create_dir(root.join("b")).unwrap();
    fs_err::write(root.join("b/.gitignore"), globs(within)).unwrap();
    let (stack, bad) = rules.push(None, dir_fd(&root.join("b")).as_fd(), &root.join("b"));
    assert!(stack.is_none());
    let bad = bad.unwrap();
    assert_eq!(bad.problem, IgnoreFileProblem::TooComplex { wildcards: within * 3, left });
    assert!(bad.to_string().contains("its rules were not applied"), "{bad}");
    // A file as large as may be read, all globs: refused at once.
    let mut text = globs(0);
    while text.len() < IGNORE_FILE_MAX as usize - 40 {
        text.push_str(&globs(1000));
    }
    text.truncate(IGNORE_FILE_MAX as usize);
    fs_err::write(root.join(".gitignore"), &text).unwrap();
    let t = Instant::now();
    let (stack, bad) = no_rules().push(None, dir_fd(root).as_fd(), root);
    assert!(stack.is_none() && matches!(bad.unwrap().problem, IgnoreFileProblem::TooComplex { .. }));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

/// Patterns without a wildcard cost too (1 MiB of names takes a moment and
/// 150 MiB to compile): the snapshot compiles at most [`IGNORE_BYTES_MAX`]
/// of ignore files in all, and refuses the next one unread.
#[test]
fn ignore_files_past_the_byte_bound_are_refused_uncompiled() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let rules = no_rules();
    let mut names: String = (0..120_000).map(|i| format!("name_{i}\n")).collect();
    names.truncate(IGNORE_FILE_MAX as usize);
    let fits = IGNORE_BYTES_MAX / IGNORE_FILE_MAX;
    for i in 0..=fits {
        let d = root.join(format!("d{i}"));
        fs_err::create_dir(&d).unwrap();
        fs_err::write(d.join(".gitignore"), &names).unwrap();
        let t = Instant::now();
        let (stack, bad) = rules.push(None, dir_fd(&d).as_fd(), &d);
        if i < fits {
            // Positive control: compiled and applied.
            assert!(bad.is_none(), "{bad:?}");
            assert!(rules.is_ignored(stack.as_ref(), &d.join("name_7"), false));
            continue;
        }
        assert!(stack.is_none());
        let bad = bad.unwrap();
        assert_eq!(bad.problem, IgnoreFileProblem::TooMany { size: IGNORE_FILE_MAX, left: 0 });
        assert!(bad.to_string().contains("its rules were not applied"), "{bad}");
        assert!(t.elapsed() < Duration::from_millis(100), "{:?}", t.elapsed());
    }
}

#[test]
fn bom_crlf_and_a_line_that_is_not_utf8_are_read_as_the_ignore_crate_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs_err::write(root.join(".gitignore"), b"\xef\xbb\xbf*.a\r\n\xff\xfe.b\n*.c\r\n*.d\r").unwrap();
    let (stack, _) = no_rules().push(None, dir_fd(root).as_fd(), root);
    let (rules, _) = IgnoreRules::new(root, &[]);
    let ignored = |n: &str| rules.is_ignored(stack.as_ref(), &root.join(n), false);
    assert!(ignored("x.a") && ignored("x.c") && ignored("x.d\r"));
    assert!(!ignored("x.b") && !ignored("x.d"));
}

/// Lines from a small alphabet that makes globs, negations, escapes,
/// anchors, comments, CRs, BOMs and invalid UTF-8 likely.
fn ignore_text() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(&b"*"[..]),
        Just(&b"**/"[..]),
        Just(&b"!"[..]),
        Just(&b"/"[..]),
        Just(&b"\\"[..]),
        Just(&b"#"[..]),
        Just(&b" "[..]),
        Just(&b"\r"[..]),
        Just(&b"\n"[..]),
        Just(&b"["[..]),
        Just(&b"]"[..]),
        Just(&b"a"[..]),
        Just(&b"b"[..]),
        Just(&b".c"[..]),
        Just("\u{feff}".as_bytes()),
        Just(&b"\xff"[..]),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|ps| ps.concat())
}

const PROBES: &[&str] = &["a", "b", "a.c", "b/a", "a/b.c", "ab", "x/a/b", "\\", "a b", "[a]", "!a", "#a"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Differential: the same bytes read by `ignore`'s own reader (which
    /// this replaces) and by ours decide every probe path alike.
    #[test]
    fn reads_patterns_as_the_ignore_crate_does(text in ignore_text()) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs_err::write(root.join(".gitignore"), &text).unwrap();
        let (theirs, _) = Gitignore::new(root.join(".gitignore"));
        let (ours, bad) = no_rules().push(None, dir_fd(root).as_fd(), root);
        prop_assert!(bad.is_none());
        let (rules, _) = IgnoreRules::new(root, &[]);
        for p in PROBES {
            for is_dir in [false, true] {
                let path = root.join(p);
                let t = matches!(theirs.matched(&path, is_dir), Match::Ignore(_));
                prop_assert_eq!(rules.is_ignored(ours.as_ref(), &path, is_dir), t, "{:?} dir={}", p, is_dir);
            }
        }
    }

    /// Any bytes at all: no panic, and an exclude file is read, not refused.
    #[test]
    fn any_bytes_are_read_without_panic(text in prop::collection::vec(any::<u8>(), 0..600)) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs_err::write(root.join("exclude"), &text).unwrap();
        let (rules, bad) = IgnoreRules::new(root, &[root.join("exclude").as_path()]);
        prop_assert!(bad.is_empty());
        for p in PROBES {
            let _ = rules.is_ignored(None, &root.join(p), false);
        }
    }
}
