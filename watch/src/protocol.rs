//! The watch's wire format, on a Unix socket only root can reach: one
//! request line, one answer, then the connection closes. A workspace is
//! named by its root and its snapshot store (not watched), both in hex.
//!
//! - `now ROOT STORE\n` → `ok TOKEN\n`: a token for "everything seen
//!   until now" (the workspace is watched from then on).
//! - `since TOKEN ROOT STORE\n` → `ok TOKEN\n` and one record per change
//!   (`P` path NUL, `W` path NUL, `I` dev`:`ino NUL), or
//!   `refused TOKEN REASON\n` when the watch cannot vouch for that token.

use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Path, PathBuf};

use crate::journal::{Change, Token};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `None`: a token for now, nothing else.
    pub since: Option<Token>,
    pub root: PathBuf,
    pub store: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The changes after the token asked for (none without one), and the
    /// token for now.
    Changes {
        now: Token,
        changes: Vec<Change>,
    },
    Refused {
        now: Token,
        why: String,
    },
}

/// Requests are one line of two paths in hex; anything longer is not one.
pub const REQUEST_MAX: usize = 4 * 4096 + 128;

fn hex(p: &Path) -> String {
    p.as_os_str().as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<PathBuf> {
    if !s.len().is_multiple_of(2) || s.is_empty() {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect();
    Some(PathBuf::from(std::ffi::OsString::from_vec(bytes?)))
}

pub fn encode_request(r: &Request) -> Vec<u8> {
    match r.since {
        None => format!("now {} {}\n", hex(&r.root), hex(&r.store)).into_bytes(),
        Some(t) => format!("since {t} {} {}\n", hex(&r.root), hex(&r.store)).into_bytes(),
    }
}

pub fn decode_request(line: &[u8]) -> Option<Request> {
    let line = std::str::from_utf8(line).ok()?.strip_suffix('\n')?;
    let words: Vec<&str> = line.split(' ').collect();
    let (since, root, store) = match words.as_slice() {
        ["now", root, store] => (None, root, store),
        ["since", t, root, store] => (Some(t.parse().ok()?), root, store),
        _ => return None,
    };
    let (root, store) = (unhex(root)?, unhex(store)?);
    root.is_absolute().then_some(Request { since, root, store })
}

pub fn encode_answer(a: &Answer) -> Vec<u8> {
    match a {
        Answer::Refused { now, why } => format!("refused {now} {}\n", why.replace('\n', " ")).into_bytes(),
        Answer::Changes { now, changes } => {
            let mut out = format!("ok {now}\n").into_bytes();
            for c in changes {
                match c {
                    Change::Path(p) => {
                        out.push(b'P');
                        out.extend_from_slice(p);
                    }
                    Change::Whole(p) => {
                        out.push(b'W');
                        out.extend_from_slice(p);
                    }
                    Change::Inode(dev, ino) => out.extend_from_slice(format!("I{dev}:{ino}").as_bytes()),
                    // Looked up before an answer is made.
                    Change::Handle(_) => continue,
                }
                out.push(0);
            }
            out
        }
    }
}

pub fn decode_answer(bytes: &[u8]) -> Option<Answer> {
    let nl = bytes.iter().position(|b| *b == b'\n')?;
    let head = std::str::from_utf8(&bytes[..nl]).ok()?;
    let body = &bytes[nl + 1..];
    if let Some(rest) = head.strip_prefix("refused ") {
        let (now, why) = rest.split_once(' ').unwrap_or((rest, ""));
        return (body.is_empty()).then_some(Answer::Refused { now: now.parse().ok()?, why: why.to_string() });
    }
    let now = head.strip_prefix("ok ")?.parse().ok()?;
    let mut changes = Vec::new();
    if !body.is_empty() {
        // Every record ends with NUL, the last one too.
        let records = body.strip_suffix(&[0])?;
        for r in records.split(|b| *b == 0) {
            let (&kind, rest) = r.split_first()?;
            changes.push(match kind {
                b'P' => Change::Path(rest.to_vec()),
                b'W' => Change::Whole(rest.to_vec()),
                b'I' => {
                    let (d, i) = std::str::from_utf8(rest).ok()?.split_once(':')?;
                    Change::Inode(d.parse().ok()?, i.parse().ok()?)
                }
                _ => return None,
            });
        }
    }
    Some(Answer::Changes { now, changes })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn requests_and_answers_round_trip() {
        let t = Token { instance: 9, seq: 3 };
        let (root, store) = (PathBuf::from("/w s/\n\u{e9}"), PathBuf::from("/st"));
        for since in [None, Some(t)] {
            let r = Request { since, root: root.clone(), store: store.clone() };
            assert_eq!(decode_request(&encode_request(&r)), Some(r));
        }
        assert_eq!(decode_request(b"now 2f 2\n"), None);
        assert_eq!(decode_request(b"now 61 2f\n"), None, "a relative root");
        let a = Answer::Changes {
            now: t,
            changes: vec![
                Change::Path(b"a\nb".to_vec()),
                Change::Path(Vec::new()),
                Change::Whole(b"d/\xff".to_vec()),
                Change::Inode(2049, 77),
            ],
        };
        assert_eq!(decode_answer(&encode_answer(&a)), Some(a));
        let r = Answer::Refused { now: t, why: "queue\noverflow".into() };
        assert_eq!(decode_answer(&encode_answer(&r)), Some(Answer::Refused { now: t, why: "queue overflow".into() }));
        assert_eq!(decode_request(b"since nonsense 2f 2f\n"), None);
        assert_eq!(decode_request(b"now 2f 2f"), None);
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_answer(&bytes);
            let _ = decode_request(&bytes);
        }
    }
}
