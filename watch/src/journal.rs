//! What the watch saw, in order: the pure bookkeeping behind its answers.
//!
//! The watch has one clock, a sequence number that every change it notes
//! moves on, whichever journal notes it. A token is the clock at the moment
//! an answer was made, with the journal's instance: the changes "since a
//! token" are those noted after it, in the workspace's own journal and in
//! the journal of file handles every workspace shares (the attribute events
//! of whole filesystems, kept once, not once per workspace). When the watch
//! cannot vouch for what it saw (its queue overflowed, a journal kept too
//! much, a directory could not be watched), every token given before is
//! refused from then on, and the caller walks the whole tree.

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

/// The watch's clock: every change noted, in any journal, moves it on.
#[derive(Debug, Default)]
pub struct Clock(u64);

impl Clock {
    /// The next sequence number.
    pub fn tick(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }

    /// The last sequence number given.
    pub fn now(&self) -> u64 {
        self.0
    }
}

#[derive(Debug)]
pub struct Journal {
    instance: u64,
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
        Journal { instance, floor: 0, lost: None, blind: None, changes: HashMap::new(), limit }
    }

    pub fn note(&mut self, change: Change, clock: &mut Clock) {
        let seq = clock.tick();
        // A path that must be walked whole stays so.
        if let Change::Path(p) = &change
            && let Some(at) = self.changes.get_mut(&Change::Whole(p.clone()))
        {
            *at = seq;
            return;
        }
        if let Change::Whole(p) = &change {
            self.changes.remove(&Change::Path(p.clone()));
        }
        self.changes.insert(change, seq);
        if self.changes.len() > self.limit {
            self.lose(format!("more than {} paths changed", self.limit), clock);
        }
    }

    /// Events were lost: every token given until now is refused.
    pub fn lose(&mut self, why: String, clock: &mut Clock) {
        self.floor = clock.tick();
        self.changes.clear();
        self.lost = Some(why);
    }

    /// Part of the tree cannot be watched (for as long as this journal
    /// lives): every token, given before or after, is refused.
    pub fn blind(&mut self, why: String, clock: &mut Clock) {
        self.lose(why.clone(), clock);
        self.blind = Some(why);
    }

    /// The token for "everything noted until now".
    pub fn now(&self, clock: &Clock) -> Token {
        Token { instance: self.instance, seq: clock.now() }
    }

    /// The same point in time as `token`, for this journal: how a
    /// workspace's token asks the shared journal.
    pub fn at(&self, token: Token) -> Token {
        Token { instance: self.instance, seq: token.seq }
    }

    /// What changed after `token`, sorted.
    pub fn since(&self, token: Token, clock: &Clock) -> Result<Vec<Change>, Refused> {
        if token.instance != self.instance || token.seq > clock.now() {
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

    /// Forgets the changes noted at or before `seq` when more than `keep`
    /// are kept: tokens before `seq` are refused from then on. The watch
    /// calls it with the oldest token it still expects to be asked about,
    /// so what it keeps follows the changes since then, not its age.
    pub fn forget(&mut self, seq: u64, keep: usize) {
        if self.changes.len() <= keep || seq <= self.floor {
            return;
        }
        self.changes.retain(|_, at| *at > seq);
        self.floor = seq;
        self.lost = Some("it forgot changes older than its last answer about this workspace".to_string());
    }

    /// Distinct changes kept.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
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
        let mut c = Clock::default();
        let mut j = Journal::new(7, 100);
        j.note(p("a"), &mut c);
        let t = j.now(&c);
        assert_eq!(j.since(t, &c).unwrap(), vec![]);
        j.note(p("b"), &mut c);
        j.note(Change::Inode(1, 2), &mut c);
        assert_eq!(j.since(t, &c).unwrap(), vec![p("b"), Change::Inode(1, 2)]);
        // Changed again after the token: reported again.
        j.note(p("a"), &mut c);
        assert_eq!(j.since(t, &c).unwrap(), vec![p("a"), p("b"), Change::Inode(1, 2)]);
        assert_eq!(j.since(Token { instance: 7, seq: 0 }, &c).unwrap().len(), 3);
    }

    #[test]
    fn journals_sharing_a_clock_answer_one_token_each_for_their_own_changes() {
        let mut c = Clock::default();
        let (mut a, mut b, mut shared) = (Journal::new(1, 100), Journal::new(2, 100), Journal::new(3, 100));
        a.note(p("x"), &mut c);
        let ta = a.now(&c);
        b.note(p("y"), &mut c);
        shared.note(Change::Handle(vec![1]), &mut c);
        let tb = b.now(&c);
        shared.note(Change::Handle(vec![2]), &mut c);
        a.note(p("z"), &mut c);
        assert_eq!(a.since(ta, &c).unwrap(), vec![p("z")]);
        assert_eq!(b.since(tb, &c).unwrap(), vec![]);
        assert_eq!(shared.since(shared.at(ta), &c).unwrap(), vec![Change::Handle(vec![1]), Change::Handle(vec![2])]);
        assert_eq!(shared.since(shared.at(tb), &c).unwrap(), vec![Change::Handle(vec![2])]);
        assert_eq!(a.since(tb, &c), Err(Refused::OtherInstance), "a token of another workspace");
    }

    #[test]
    fn a_whole_subtree_absorbs_its_own_path() {
        let mut c = Clock::default();
        let mut j = Journal::new(1, 100);
        let t = j.now(&c);
        j.note(p("d"), &mut c);
        j.note(w("d"), &mut c);
        j.note(p("d"), &mut c);
        assert_eq!(j.since(t, &c).unwrap(), vec![w("d")]);
    }

    #[test]
    fn tokens_of_another_run_or_from_the_future_are_refused() {
        let c = Clock::default();
        let j = Journal::new(1, 100);
        assert_eq!(j.since(Token { instance: 2, seq: 0 }, &c), Err(Refused::OtherInstance));
        assert_eq!(j.since(Token { instance: 1, seq: 5 }, &c), Err(Refused::OtherInstance));
    }

    #[test]
    fn losing_events_refuses_every_older_token_but_not_later_ones() {
        let mut c = Clock::default();
        let mut j = Journal::new(1, 2);
        let t0 = j.now(&c);
        j.note(p("a"), &mut c);
        j.note(p("b"), &mut c);
        j.note(p("c"), &mut c); // over the limit
        assert!(matches!(j.since(t0, &c), Err(Refused::Lost(_))));
        let t1 = j.now(&c);
        j.note(p("d"), &mut c);
        assert_eq!(j.since(t1, &c).unwrap(), vec![p("d")]);
        j.lose("queue overflow".into(), &mut c);
        assert_eq!(j.since(t1, &c), Err(Refused::Lost("queue overflow".into())));
    }

    #[test]
    fn forgetting_keeps_what_came_after_the_oldest_token_asked_about() {
        let mut c = Clock::default();
        let mut j = Journal::new(1, 100);
        let t0 = j.now(&c);
        j.note(p("a"), &mut c);
        j.note(p("b"), &mut c);
        let t1 = j.now(&c);
        j.note(p("c"), &mut c);
        j.forget(t1.seq, 10);
        assert_eq!(j.len(), 3, "few enough: nothing forgotten");
        assert_eq!(j.since(t0, &c).unwrap().len(), 3);
        j.forget(t1.seq, 1);
        assert_eq!(j.len(), 1);
        assert_eq!(j.since(t1, &c).unwrap(), vec![p("c")]);
        assert!(matches!(j.since(t0, &c), Err(Refused::Lost(_))));
    }

    #[test]
    fn a_blind_journal_refuses_every_token() {
        let mut c = Clock::default();
        let mut j = Journal::new(1, 100);
        j.blind("cannot watch d".into(), &mut c);
        let t = j.now(&c);
        assert_eq!(j.since(t, &c), Err(Refused::Lost("cannot watch d".into())));
    }

    #[test]
    fn tokens_print_and_parse_back() {
        let t = Token { instance: 0xdead_beef, seq: 42 };
        assert_eq!(t.to_string().parse::<Token>(), Ok(t));
        assert!("zz:1".parse::<Token>().is_err());
        assert!("1".parse::<Token>().is_err());
    }
}
