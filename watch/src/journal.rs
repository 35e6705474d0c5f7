//! What the watch saw, in order: the pure bookkeeping behind its answers.
//!
//! Every change gets the next sequence number. A token is the sequence
//! number at the moment an answer was made, with the watch's instance: the
//! changes "since a token" are those numbered after it. When the watch
//! cannot vouch for what it saw (its queue overflowed, it kept too much, a
//! directory could not be watched), every token given before is refused
//! from then on, and the caller walks the whole tree.

use std::collections::HashMap;

/// A point in a watch's history, as [`Journal::now`] gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    /// Which run of the watch: another run knows nothing of this one's history.
    pub instance: u64,
    pub seq: u64,
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}:{}", self.instance, self.seq)
    }
}

impl std::str::FromStr for Token {
    type Err = ();
    fn from_str(s: &str) -> Result<Token, ()> {
        let (i, q) = s.split_once(':').ok_or(())?;
        Ok(Token { instance: u64::from_str_radix(i, 16).map_err(|_| ())?, seq: q.parse().map_err(|_| ())? })
    }
}

/// One thing to look at again.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Change {
    /// A path (relative to the workspace) whose entry, or whose listing if it
    /// is a directory, may differ.
    Path(Vec<u8>),
    /// A path whose whole subtree may differ (a directory made, moved in,
    /// or moved away).
    Whole(Vec<u8>),
    /// A file, by (device, inode), whose metadata changed through a name the
    /// watch does not see (its link count, when a name outside the
    /// workspace was made for it).
    Inode(u64, u64),
    /// The same as the kernel's file handle reported it: turned into an
    /// [`Change::Inode`] only when a session asks (looking it up needs a
    /// descriptor on the workspace's filesystem, which the watch holds only
    /// then). Never sent.
    Handle(Vec<u8>),
}

/// Why a token cannot be answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Another run of the watch gave it.
    OtherInstance,
    /// The watch lost events after it was given; says why.
    Lost(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::OtherInstance => f.write_str("the watch was restarted since the last snapshot"),
            Refused::Lost(why) => write!(f, "the watch lost track since the last snapshot: {why}"),
        }
    }
}

#[derive(Debug)]
pub struct Journal {
    instance: u64,
    seq: u64,
    /// Tokens below this are refused (events were lost after them).
    floor: u64,
    lost: Option<String>,
    /// Part of the tree cannot be watched: every token is refused.
    blind: Option<String>,
    changes: HashMap<Change, u64>,
    limit: usize,
}

impl Journal {
    /// An empty history; at most `limit` distinct changes are kept, beyond
    /// which the journal forgets them all and refuses older tokens.
    pub fn new(instance: u64, limit: usize) -> Journal {
        Journal { instance, seq: 0, floor: 0, lost: None, blind: None, changes: HashMap::new(), limit }
    }

    pub fn note(&mut self, change: Change) {
        self.seq += 1;
        // A path that must be walked whole stays so.
        if let Change::Path(p) = &change
            && let Some(seq) = self.changes.get_mut(&Change::Whole(p.clone()))
        {
            *seq = self.seq;
            return;
        }
        if let Change::Whole(p) = &change {
            self.changes.remove(&Change::Path(p.clone()));
        }
        self.changes.insert(change, self.seq);
        if self.changes.len() > self.limit {
            self.lose(format!("more than {} paths changed", self.limit));
        }
    }

    /// Events were lost: every token given until now is refused.
    pub fn lose(&mut self, why: String) {
        self.seq += 1;
        self.floor = self.seq;
        self.changes.clear();
        self.lost = Some(why);
    }

    /// Part of the tree cannot be watched (for as long as this journal
    /// lives): every token, given before or after, is refused.
    pub fn blind(&mut self, why: String) {
        self.lose(why.clone());
        self.blind = Some(why);
    }

    /// The token for "everything noted until now".
    pub fn now(&self) -> Token {
        Token { instance: self.instance, seq: self.seq }
    }

    /// What changed after `token`, sorted.
    pub fn since(&self, token: Token) -> Result<Vec<Change>, Refused> {
        if token.instance != self.instance || token.seq > self.seq {
            return Err(Refused::OtherInstance);
        }
        if let Some(why) = &self.blind {
            return Err(Refused::Lost(why.clone()));
        }
        if token.seq < self.floor {
            return Err(Refused::Lost(self.lost.clone().unwrap_or_default()));
        }
        let mut v: Vec<Change> = self.changes.iter().filter(|(_, s)| **s > token.seq).map(|(c, _)| c.clone()).collect();
        v.sort();
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn p(s: &str) -> Change {
        Change::Path(s.as_bytes().to_vec())
    }
    fn w(s: &str) -> Change {
        Change::Whole(s.as_bytes().to_vec())
    }

    #[test]
    fn answers_what_came_after_a_token_and_only_that() {
        let mut j = Journal::new(7, 100);
        j.note(p("a"));
        let t = j.now();
        assert_eq!(j.since(t).unwrap(), vec![]);
        j.note(p("b"));
        j.note(Change::Inode(1, 2));
        assert_eq!(j.since(t).unwrap(), vec![p("b"), Change::Inode(1, 2)]);
        // Changed again after the token: reported again.
        j.note(p("a"));
        assert_eq!(j.since(t).unwrap(), vec![p("a"), p("b"), Change::Inode(1, 2)]);
        assert_eq!(j.since(Token { instance: 7, seq: 0 }).unwrap().len(), 3);
    }

    #[test]
    fn a_whole_subtree_absorbs_its_own_path() {
        let mut j = Journal::new(1, 100);
        let t = j.now();
        j.note(p("d"));
        j.note(w("d"));
        j.note(p("d"));
        assert_eq!(j.since(t).unwrap(), vec![w("d")]);
    }

    #[test]
    fn tokens_of_another_run_or_from_the_future_are_refused() {
        let j = Journal::new(1, 100);
        assert_eq!(j.since(Token { instance: 2, seq: 0 }), Err(Refused::OtherInstance));
        assert_eq!(j.since(Token { instance: 1, seq: 5 }), Err(Refused::OtherInstance));
    }

    #[test]
    fn losing_events_refuses_every_older_token_but_not_later_ones() {
        let mut j = Journal::new(1, 2);
        let t0 = j.now();
        j.note(p("a"));
        j.note(p("b"));
        j.note(p("c")); // over the limit
        assert!(matches!(j.since(t0), Err(Refused::Lost(_))));
        let t1 = j.now();
        j.note(p("d"));
        assert_eq!(j.since(t1).unwrap(), vec![p("d")]);
        j.lose("queue overflow".into());
        assert_eq!(j.since(t1), Err(Refused::Lost("queue overflow".into())));
    }

    #[test]
    fn a_blind_journal_refuses_every_token() {
        let mut j = Journal::new(1, 100);
        j.blind("cannot watch d".into());
        let t = j.now();
        assert_eq!(j.since(t), Err(Refused::Lost("cannot watch d".into())));
    }

    #[test]
    fn tokens_print_and_parse_back() {
        let t = Token { instance: 0xdead_beef, seq: 42 };
        assert_eq!(t.to_string().parse::<Token>(), Ok(t));
        assert!("zz:1".parse::<Token>().is_err());
        assert!("1".parse::<Token>().is_err());
    }
}
