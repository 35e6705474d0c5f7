//! A session's audit log, read as it is written: the lines `ws log` prints,
//! for any program.

use std::io::{BufRead, Seek};
use std::time::Duration;

use ws_snapshot::audit::{Event, Record};
use ws_snapshot::{Session, SessionState};

use crate::Workspace;
use crate::error::{Error, ErrorKind};

/// The named session, else the newest one of any state.
pub fn session_or_newest(ws: &Workspace, id: Option<&str>) -> Result<Session, Error> {
    match id {
        Some(id) => Ok(ws.store.resolve_session(Some(id))?),
        None => ws.store.sessions()?.into_iter().filter_map(Result::ok).next_back().ok_or_else(|| {
            Error::new(ErrorKind::UnknownSession, "this workspace has no sessions yet")
                .hint("start one with `ws session start -- CMD`")
        }),
    }
}

/// How a reading of the log ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The session's end record was read.
    Ended,
    /// No end record, and nobody writes the log any more: the supervisor
    /// died, and the record is incomplete.
    Incomplete,
    /// No end record yet; the session still runs (without `follow`).
    Running,
}

/// Calls `line` with each line of the session's audit log (the stored JSON,
/// no newline), in order; with `follow`, waits for new ones while the
/// session runs. Stops early when `line` returns `false`.
pub fn read(
    ws: &Workspace,
    session: &Session,
    follow: bool,
    mut line: impl FnMut(&[u8]) -> bool,
) -> Result<Ending, Error> {
    let path = ws.store.audit_log_path(&session.id);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::usage(format!("session {} has no audit log", session.id)).hint(
                "sessions started before ws kept audit logs have none; `ws session show` still shows their changes",
            ));
        }
        Err(e) => return Err(Error::failure(format!("cannot read {}: {e}", path.display()))),
    };
    let mut reader = std::io::BufReader::new(file);
    let mut pending = Vec::new();
    let mut ended = false;
    loop {
        let mut chunk = Vec::new();
        let n = reader.read_until(b'\n', &mut chunk)?;
        if n > 0 {
            pending.extend_from_slice(&chunk);
            if pending.ends_with(b"\n") {
                let l = &pending[..pending.len() - 1];
                ended =
                    matches!(ws_snapshot::audit::parse_line(l), Some(Record { event: Event::SessionEnd { .. }, .. }));
                if !line(l) {
                    return Ok(if ended { Ending::Ended } else { Ending::Running });
                }
                pending.clear();
            }
            continue;
        }
        if ended || !follow || !still_writing(ws, &session.id) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        // Re-read from where we are: the writer appends.
        let pos = reader.stream_position()?;
        reader.seek(std::io::SeekFrom::Start(pos))?;
    }
    Ok(if ended {
        Ending::Ended
    } else if still_writing(ws, &session.id) {
        Ending::Running
    } else {
        Ending::Incomplete
    })
}

/// Whether the session's supervisor may still append to its log: while the
/// session runs, and for a moment after its changes are recorded (the end
/// record comes once the recorders have drained), if the supervisor lives.
fn still_writing(ws: &Workspace, id: &str) -> bool {
    let alive = |pid: u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
    ws.store.load_session(id).is_ok_and(|s| match s.state {
        SessionState::Running => !s.orphaned(),
        _ => alive(s.supervisor_pid) && s.ended_ms.is_some_and(|t| crate::now_ms().saturating_sub(t) < 60_000),
    })
}
