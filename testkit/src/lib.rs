//! Test helpers shared by the ws crates' hostile-input tests: what an
//! attacker who can write a file does to it, as a proptest strategy, and
//! the pieces of git's formats attacks are built from.

use proptest::prelude::*;

/// What an attacker who can write a file does to it: replace bytes, cut
/// it, insert bytes, or splice a copy of a piece of it.
#[derive(Clone, Debug)]
pub enum Damage {
    Set(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Insert(prop::sample::Index, Vec<u8>),
    Duplicate(prop::sample::Index, prop::sample::Index),
}

pub fn damage() -> impl Strategy<Value = Vec<Damage>> {
    let one = prop_oneof![
        4 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Set(i, b)),
        1 => any::<prop::sample::Index>().prop_map(Damage::Truncate),
        1 => (any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..9)).prop_map(|(i, b)| Damage::Insert(i, b)),
        1 => (any::<prop::sample::Index>(), any::<prop::sample::Index>()).prop_map(|(a, b)| Damage::Duplicate(a, b)),
    ];
    prop::collection::vec(one, 1..4)
}

pub fn apply(bytes: &mut Vec<u8>, damage: &[Damage]) {
    for d in damage {
        if bytes.is_empty() {
            return;
        }
        match d {
            Damage::Set(i, b) => {
                let i = i.index(bytes.len());
                bytes[i] = *b;
            }
            Damage::Truncate(i) => bytes.truncate(i.index(bytes.len())),
            Damage::Insert(i, b) => {
                let i = i.index(bytes.len());
                bytes.splice(i..i, b.iter().copied());
            }
            Damage::Duplicate(a, b) => {
                let (x, y) = (a.index(bytes.len()), b.index(bytes.len()));
                let piece = bytes[x.min(y)..x.max(y)].to_vec();
                bytes.splice(x..x, piece);
            }
        }
    }
}

/// A git pack entry's type-and-size header.
pub fn pack_entry_header(kind: u8, size: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut c = (kind << 4) | (size & 0x0f) as u8;
    let mut rest = size >> 4;
    while rest > 0 {
        out.push(c | 0x80);
        c = (rest & 0x7f) as u8;
        rest >>= 7;
    }
    out.push(c);
    out
}
