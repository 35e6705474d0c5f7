//! The session library embedded by another program — this test binary,
//! which cannot answer the sandbox's helper entry points, so it names the
//! `ws` binary as its helper (`Options::helper`): a session runs in-process,
//! its audit records reach the program's observer as they are written, and
//! the review (the diff, the log, a rollback) goes through the library too.

use std::ffi::OsString;
use std::sync::{Arc, Mutex};

use ws_session::{Event, Observer, Options, Run, Workspace};

use crate::harness::*;

#[derive(Default)]
struct Seen {
    records: Mutex<Vec<String>>,
}

impl Observer for Seen {
    fn event(&self, e: &Event<'_>) {
        if let Event::Record { line, .. } = e {
            self.records.lock().unwrap().push(String::from_utf8_lossy(line).into_owned());
        }
    }
}

#[test]
fn a_program_runs_and_reviews_a_session_through_the_library_with_ws_as_its_helper() {
    assert!(is_root(), "the session's recorders need root");
    let env = Env::new();
    let dir = env.dir("ws");
    git_repo(&dir);
    write(dir.join("a.txt"), "alpha\n");
    commit_all(&dir, "base");
    let seen = Arc::new(Seen::default());
    let mut options = Options::from_home(env.home.clone());
    options.helper = Some(env!("CARGO_BIN_EXE_ws").into());
    options.observer = seen.clone();
    let ws = Workspace::open(&dir, options).unwrap();
    let command: Vec<OsString> = ["sh", "-c", "echo new > b.txt && echo more >> a.txt"].map(Into::into).to_vec();
    let ran = ws_session::run_session(ws, Run::new(&command)).unwrap();
    assert_eq!(ran.code, 0);
    assert_eq!(std::fs::read_to_string(dir.join("b.txt")).unwrap(), "new\n", "the command ran in the workspace");

    // The records the observer saw are the log's, in order.
    let records = seen.records.lock().unwrap().clone();
    assert!(records.iter().any(|r| r.contains("\"write\"") && r.contains("b.txt")), "{records:#?}");
    let mut logged = Vec::new();
    let ending = ws_session::log::read(&ran.ws, &ran.session, false, |l| {
        logged.push(String::from_utf8_lossy(l).into_owned());
        true
    })
    .unwrap();
    assert_eq!(ending, ws_session::log::Ending::Ended);
    assert_eq!(logged, records);

    let mut review = ws_session::review::Review::open(&ran.ws, Some(&ran.session.id)).unwrap();
    let diff = review.diff(&ran.ws, &[]).unwrap();
    assert!(diff.contains("diff --ws a/b.txt b/b.txt") && diff.contains("+new"), "{diff}");
    assert!(diff.contains("+more"), "{diff}");
    let rolled = review.rollback(&ran.ws, &[], false).unwrap();
    assert!(rolled.conflict_error().is_none());
    assert!(!dir.join("b.txt").exists());
    assert_eq!(std::fs::read_to_string(dir.join("a.txt")).unwrap(), "alpha\n");
    // A review holds the workspace's lock while it lives.
    drop(review);
    // The CLI agrees: the session is closed, every change reviewed.
    let show = env.ws(&dir, &["session", "show", &ran.session.id, "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(v["state"], "closed", "{}", show.stdout);
    assert_eq!(v["changes"]["rolled_back"], 2, "{}", show.stdout);
}
