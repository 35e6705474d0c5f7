//! Session records: one directory per session in the store.
//!
//! `session.json` holds what a person reads (command, times, exit status,
//! state); `changes` holds the exact change set in the binary entry format
//! (paths need not be UTF-8); `rollback.journal` exists only while a rollback
//! is under way, so an interrupted one is finished by the next `ws rollback`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::changes::{Change, ChangeState, decode_changes, encode_changes};
use crate::error::{SessionError, StoreError};
use crate::store::{Store, hex};

pub type SessionId = String;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// The command is running (or its supervisor died: see [`Session::orphaned`]).
    Running,
    /// Finished; some changes await approval or rollback.
    Pending,
    /// Every change approved or rolled back (or there were none).
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub name: Option<String>,
    pub workspace: String,
    pub command: Vec<String>,
    /// Unix time in milliseconds.
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    pub supervisor_pid: u32,
    pub state: SessionState,
    pub exit: Option<ExitStatus>,
    pub before: String,
    pub after: Option<String>,
    /// How long the snapshot before the command took, in milliseconds.
    #[serde(default)]
    pub snapshot_ms: Option<u64>,
    /// How long the snapshot after it took.
    #[serde(default)]
    pub after_snapshot_ms: Option<u64>,
    /// Which recorders ran and what they missed (absent in old records).
    #[serde(default)]
    pub recording: Option<crate::audit::Recording>,
    /// How the after-snapshot was taken (absent in old records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_from: Option<AfterFrom>,
    /// How the before-snapshot was taken (absent in old records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_from: Option<BeforeFrom>,
}

/// How a session's after-snapshot was taken: from the record of its writes
/// (looking only at the paths it names), or by walking the whole workspace,
/// and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum AfterFrom {
    /// Only the paths the record names (and the directories above them).
    Record { paths: u64 },
    /// The whole workspace.
    Walk { reason: String },
}

/// How a session's before-snapshot was taken: from what the watch saw
/// change since the store's latest snapshot (looking only there), or by
/// walking the whole workspace, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum BeforeFrom {
    /// Only the paths the watch names (and the directories above them).
    Watch { paths: u64 },
    /// The whole workspace.
    Walk { reason: String },
}

/// The rollback under way: which changes (by index), whether forced, and
/// the work token its work names carry (see [`crate::store::WorkToken`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Journal {
    pub indices: Vec<usize>,
    pub force: bool,
    /// Empty in journals written before work tokens. It becomes a file name
    /// in the store and a prefix of names in the workspace: anything but 32
    /// hex digits makes the journal damaged.
    #[serde(default, deserialize_with = "work_token")]
    pub work: String,
}

fn work_token<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() || crate::store::is_work_token(&s) {
        Ok(s)
    } else {
        Err(serde::de::Error::custom("the work token is not 32 lowercase hex digits"))
    }
}

impl Session {
    pub fn new_id() -> SessionId {
        let mut rnd = [0u8; 4];
        if rustix::rand::getrandom(&mut rnd, rustix::rand::GetRandomFlags::empty()).is_err() {
            let t =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
            rnd.copy_from_slice(&blake3::hash(&t.to_le_bytes()).as_bytes()[..4]);
        }
        hex(&rnd)
    }

    /// A running session whose supervisor no longer exists (killed, crashed):
    /// its after-snapshot can be taken by whoever looks at it next.
    pub fn orphaned(&self) -> bool {
        self.state == SessionState::Running && !std::path::Path::new(&format!("/proc/{}", self.supervisor_pid)).exists()
    }
}

impl Store {
    fn session_dir(&self, id: &str) -> PathBuf {
        self.sessions_dir().join(id)
    }

    pub fn save_session(&self, s: &Session) -> Result<(), StoreError> {
        let dir = self.session_dir(&s.id);
        fs_err::create_dir_all(&dir).map_err(|source| StoreError::Io { path: dir.clone(), source })?;
        let json = serde_json::to_vec_pretty(s).map_err(|e| StoreError::Io { path: dir.clone(), source: e.into() })?;
        self.write_atomic(&dir.join("session.json"), &json)
    }

    pub fn load_session(&self, id: &str) -> Result<Session, SessionError> {
        let path = self.session_dir(id).join("session.json");
        let bytes = fs_err::read(&path).map_err(|source| StoreError::Io { path: path.clone(), source })?;
        serde_json::from_slice(&bytes).map_err(|e| SessionError::Corrupt { path, what: e.to_string() })
    }

    /// All sessions, oldest first. Damaged records are returned as errors in
    /// place so one bad file does not hide the others.
    pub fn sessions(&self) -> Result<Vec<Result<Session, SessionError>>, StoreError> {
        let dir = self.sessions_dir();
        let rd = fs_err::read_dir(&dir).map_err(|source| StoreError::Io { path: dir.clone(), source })?;
        let mut ids: Vec<String> = rd.flatten().filter_map(|e| e.file_name().into_string().ok()).collect();
        ids.sort();
        let mut out: Vec<Result<Session, SessionError>> = ids.iter().map(|id| self.load_session(id)).collect();
        out.sort_by_key(|r| r.as_ref().map(|s| s.started_ms).unwrap_or(0));
        Ok(out)
    }

    /// Finds a session by id prefix or exact name; without one, the newest
    /// session pending review.
    pub fn resolve_session(&self, query: Option<&str>) -> Result<Session, SessionError> {
        let all: Vec<Session> = self.sessions()?.into_iter().filter_map(Result::ok).collect();
        let Some(q) = query else {
            return all
                .into_iter()
                .rev()
                .find(|s| s.state == SessionState::Pending || s.orphaned())
                .ok_or(SessionError::NonePending);
        };
        let matches: Vec<&Session> =
            all.iter().filter(|s| s.id.starts_with(q) || s.name.as_deref() == Some(q)).collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(SessionError::Unknown { id: q.to_owned() }),
            many => Err(SessionError::Ambiguous {
                id: q.to_owned(),
                candidates: many.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    pub fn save_changes(&self, id: &str, changes: &[Change]) -> Result<(), StoreError> {
        self.write_atomic(&self.session_dir(id).join("changes"), &encode_changes(changes))
    }

    pub fn load_changes(&self, id: &str) -> Result<Vec<Change>, StoreError> {
        let path = self.session_dir(id).join("changes");
        let bytes = fs_err::read(&path).map_err(|source| StoreError::Io { path: path.clone(), source })?;
        Ok(decode_changes(&bytes, &path)?)
    }

    pub(crate) fn write_journal(&self, id: &str, j: &Journal) -> Result<(), StoreError> {
        let path = self.session_dir(id).join("rollback.journal");
        let json = serde_json::to_vec(j).map_err(|e| StoreError::Io { path: path.clone(), source: e.into() })?;
        self.write_atomic(&path, &json)
    }

    /// The journal of an interrupted rollback, if there is one. A damaged
    /// journal is an error, not "no rollback under way": taking it for
    /// none would leave the interrupted rollback half done.
    pub(crate) fn read_journal(&self, id: &str) -> Result<Option<Journal>, SessionError> {
        let path = self.session_dir(id).join("rollback.journal");
        let bytes = match fs_err::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path, source }.into()),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| SessionError::DamagedJournal { path, what: e.to_string() })
    }

    pub(crate) fn clear_journal(&self, id: &str) -> Result<(), StoreError> {
        let path = self.session_dir(id).join("rollback.journal");
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// Whether a rollback of this session was interrupted and awaits finishing.
    pub fn rollback_interrupted(&self, id: &str) -> bool {
        self.session_dir(id).join("rollback.journal").exists()
    }

    /// Marks the session closed once no change is pending.
    pub fn settle(&self, session: &mut Session, changes: &[Change]) -> Result<(), StoreError> {
        let pending = changes.iter().any(|c| c.state == ChangeState::Pending);
        let want = if pending { SessionState::Pending } else { SessionState::Closed };
        if session.state != want {
            session.state = want;
            self.save_session(session)?;
        }
        Ok(())
    }
}
