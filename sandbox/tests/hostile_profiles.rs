//! Hostile profile files: random bytes, TOML built from the profile's own
//! vocabulary, and every truncation and byte flip of the built-in profiles.
//! The checker must never panic, and every problem it reports must carry a
//! line inside the file and the key (or `(syntax)`) it concerns; `resolve`
//! must name the file the problem is in.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use ws_sandbox::profile::{BUILTIN, ProfileError, ProfileProblem, check, check_bytes, resolve};

/// The number of lines a problem may point at: every line, plus the one
/// after a final newline (where an unterminated construct is noticed).
fn lines_in(src: &[u8]) -> usize {
    src.iter().filter(|b| **b == b'\n').count() + 1
}

#[track_caller]
fn assert_located(src: &[u8], problems: &[ProfileProblem]) {
    let last = lines_in(src);
    for p in problems {
        assert!(
            (1..=last).contains(&p.line),
            "line {} outside 1..={last} for {:?}: {p:?}",
            p.line,
            String::from_utf8_lossy(src)
        );
        assert!(!p.key.is_empty() && !p.message.is_empty(), "{p:?}");
    }
}

/// Checks `src` as bytes and, when it is UTF-8, as text, and resolves it as a
/// profile named `hostile.toml`: both readers must agree and locate every problem.
fn exercise(src: &[u8]) {
    let problems = check_bytes(src);
    assert_located(src, &problems);
    if let Ok(text) = std::str::from_utf8(src) {
        assert_eq!(check(text), problems);
    } else {
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "(encoding)");
    }
    let owned = src.to_vec();
    let load = |n: &str| -> Option<(String, Vec<u8>)> {
        match n {
            "hostile" => Some(("hostile.toml".into(), owned.clone())),
            other => ws_sandbox::profile::builtin(other),
        }
    };
    match resolve("hostile", &load) {
        Err(ProfileError::Invalid { origin, problems: p }) if problems.is_empty() => {
            // Only the whole chain can tell that a credential route is
            // incomplete (an extending profile may give one key of it).
            assert_eq!(origin, "hostile.toml");
            assert!(p.iter().all(|x| x.key.starts_with("credentials.") && x.message.starts_with("needs ")), "{p:?}");
            assert_located(src, &p);
        }
        Err(ProfileError::Invalid { origin, problems: p }) => {
            // `extends` can lead into a built-in, whose problems would name it.
            assert_eq!(origin, "hostile.toml");
            assert_eq!(p, problems);
        }
        Err(ProfileError::NotFound { name }) => assert!(problems.is_empty(), "{name}: {problems:?}"),
        Err(ProfileError::Cycle { .. }) => assert!(problems.is_empty()),
        Ok(_) => assert!(problems.is_empty(), "resolved despite {problems:?}"),
    }
}

/// Keys, headers and values of the profile format, with some near misses.
fn fragment() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "extends",
        "description",
        "read",
        "write",
        "exec",
        "allow",
        "require",
        "memory_max",
        "pids_max",
        "hosts",
        "addresses",
        "ca_files",
        "host",
        "methods",
        "paths",
        "secret",
        "upstream",
        "header",
        "scheme",
        "env",
        "base_url_env",
        "intercept",
        "prefix",
        "optional",
        "create",
        "set",
        "\"quoted key\"",
        "a.b.c",
        "é",
    ]);
    let value = prop::sample::select(vec![
        "\"default\"",
        "\"$HOME/.cargo\"",
        "\"$WORKSPACE/../x\"",
        "\"/\"",
        "[\"/usr\", \"$TMPDIR\"]",
        "[\"10.0.0.0/99\", \"::1\", \"nope\"]",
        "[\"*.example.com\", \"https://x/\"]",
        "[\"GITHUB_TOKEN\", \"RUST_*\", \"\"]",
        "[\"landlock\", \"apparmor\"]",
        "\"4G\"",
        "\"12Q\"",
        "0",
        "-1",
        "99999999999999999999",
        "1e400",
        "true",
        "1979-05-27T07:32:00Z",
        "{ a = 1, b = [1, \"x\"] }",
        "[[[[[[[[]]]]]]]]",
        "\"\"\"multi\nline\"\"\"",
        "'literal'",
        "\"\\u00e9\\uD800\"",
        "\"unterminated",
        "[1, 2",
    ]);
    let header = prop::sample::select(vec![
        "[filesystem]",
        "[environment]",
        "[enforce]",
        "[resources]",
        "[network]",
        "[[network.http]]",
        "[credentials.anthropic]",
        "[credentials.\"bad name\"]",
        "[credentials]",
        "[[credentials]]",
        "[filesystem.read]",
        "[network.http]",
        "[",
        "]]",
    ]);
    prop_oneof![
        3 => (key, value).prop_map(|(k, v)| format!("{k} = {v}\n")),
        1 => header.prop_map(|h| format!("{h}\n")),
        1 => "[ -~é\t]{0,20}\n",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_are_located_problems_never_a_panic(src in prop::collection::vec(any::<u8>(), 0..400)) {
        exercise(&src);
    }

    #[test]
    fn profile_shaped_toml_is_located_problems_never_a_panic(parts in prop::collection::vec(fragment(), 0..24)) {
        exercise(parts.concat().as_bytes());
    }

    #[test]
    fn flipped_bytes_of_builtins_are_located_problems_never_a_panic(
        which in 0..BUILTIN.len(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut src = BUILTIN[which].1.as_bytes().to_vec();
        for (at, byte) in flips {
            let i = at.index(src.len());
            src[i] = byte;
        }
        exercise(&src);
    }
}

#[test]
fn every_truncation_of_every_builtin_is_handled() {
    for (name, text) in BUILTIN {
        let bytes = text.as_bytes();
        for n in 0..bytes.len() {
            // Cutting inside a multi-byte character leaves bytes that are not UTF-8.
            exercise(&bytes[..n]);
        }
        assert!(check(text).is_empty(), "{name}");
    }
}

#[test]
fn bytes_that_are_not_utf8_are_named_by_line_and_offset() {
    let src = b"[filesystem]\nread = [\"/usr\"]\nwrite = [\"/tmp/\xff\"]\n";
    let p = check_bytes(src);
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].line, p[0].key.as_str()), (3, "(encoding)"));
    assert!(p[0].message.contains("byte 44"), "{}", p[0].message);
}

#[test]
fn an_empty_key_is_named_as_one() {
    let p = check("= 1\n[network]\n= 1\n[enforce]\n\"\" = 2\n");
    let keys: Vec<(usize, &str)> = p.iter().filter(|p| p.key != "(syntax)").map(|p| (p.line, p.key.as_str())).collect();
    assert_eq!(keys, [(1, "\"\""), (3, "network.\"\""), (5, "enforce.\"\"")], "{p:?}");
}

#[test]
fn deep_nesting_is_a_problem_not_a_stack_overflow() {
    for depth in [1_000, 100_000] {
        let arrays = format!("x = {}{}\n", "[".repeat(depth), "]".repeat(depth));
        exercise(arrays.as_bytes());
        let tables = format!("x = {}{}\n", "{ a = ".repeat(depth), "}".repeat(depth));
        exercise(tables.as_bytes());
        let dotted = format!("{} = 1\n", vec!["a"; depth].join("."));
        exercise(dotted.as_bytes());
    }
}
