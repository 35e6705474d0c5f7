//! The change set of a session: what differs between the snapshot taken
//! before the command and the one taken after it.

use std::io;
use std::path::Path;

use crate::copy::hash_file;
use crate::error::{ManifestError, StoreError};
use crate::manifest::{
    DecodeResult, Entry, EntryKind, Manifest, Reader, Writer, decode_body, decode_entry, encode_body,
};
use crate::path::FrontDecoder;
use crate::path::RelPath;
use crate::renames::Rename;
use crate::store::Store;

/// Paths front-coded (see [`crate::manifest`]), each once per change.
const MAGIC: &[u8; 8] = b"WSCHANG4";
/// Change sets with a full path in each side's entry, written before front
/// coding: read, never written.
const MAGIC_V3: &[u8; 8] = b"WSCHANG3";
/// Change sets written before renames were recorded: read, never written.
const MAGIC_V2: &[u8; 8] = b"WSCHANG2";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Removed,
    Modified,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeState {
    Pending,
    Approved,
    RolledBack,
}

/// One path whose entry differs: `before` from the snapshot, `after` as the
/// session left it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub path: RelPath,
    pub before: Option<Entry>,
    pub after: Option<Entry>,
    pub state: ChangeState,
    /// The other half, when this deleted or created path is half of a
    /// rename (see `renames`).
    pub rename: Option<Rename>,
}

impl Change {
    /// Where a created path's content came from, if it is a rename.
    pub fn renamed_from(&self) -> Option<&Rename> {
        self.rename.as_ref().filter(|_| self.kind() == ChangeKind::Added)
    }

    /// Where a deleted path's content went, if it is a rename.
    pub fn renamed_to(&self) -> Option<&Rename> {
        self.rename.as_ref().filter(|_| self.kind() == ChangeKind::Removed)
    }

    pub fn kind(&self) -> ChangeKind {
        match (&self.before, &self.after) {
            (None, _) => ChangeKind::Added,
            (_, None) => ChangeKind::Removed,
            _ => ChangeKind::Modified,
        }
    }
}

/// Compares two manifests. A file whose object differs but whose content does
/// not (a `touch`) is not a change; hashes computed to find that out are kept
/// in the returned entries so nobody reads those bytes again.
pub fn compute_changes(store: &Store, before: &Manifest, after: &Manifest) -> Result<Vec<Change>, StoreError> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    let (b, a) = (&before.entries, &after.entries);
    while i < b.len() || j < a.len() {
        let order = match (b.get(i), a.get(j)) {
            (Some(x), Some(y)) => x.path.cmp(&y.path),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                out.push(change(b[i].clone(), None));
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(Change {
                    path: a[j].path.clone(),
                    before: None,
                    after: Some(a[j].clone()),
                    state: ChangeState::Pending,
                    rename: None,
                });
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                // Most entries are the same: compared in place, copied only when not.
                if !same_without_reading(&b[i], &a[j]) {
                    let (mut x, mut y) = (b[i].clone(), a[j].clone());
                    if differs(store, &mut x, &mut y)? {
                        out.push(change(x, Some(y)));
                    }
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(out)
}

fn change(before: Entry, after: Option<Entry>) -> Change {
    Change { path: before.path.clone(), before: Some(before), after, state: ChangeState::Pending, rename: None }
}

/// The same entry, as far as can be told without reading content: what
/// [`differs`] answers `false` for before it reads any.
fn same_without_reading(x: &Entry, y: &Entry) -> bool {
    x.same_shape(y)
        && match (&x.kind, &y.kind) {
            (EntryKind::File { object: ox, .. }, EntryKind::File { object: oy, .. }) => ox == oy,
            _ => true,
        }
}

fn differs(store: &Store, x: &mut Entry, y: &mut Entry) -> Result<bool, StoreError> {
    if !x.same_shape(y) {
        return Ok(true);
    }
    let (EntryKind::File { object: ox, .. }, EntryKind::File { object: oy, .. }) = (&x.kind, &y.kind) else {
        return Ok(false);
    };
    if ox == oy {
        return Ok(false);
    }
    Ok(object_hash(store, x)? != object_hash(store, y)?)
}

/// The content hash of a file entry's object, computed and cached if unknown.
pub(crate) fn object_hash(store: &Store, e: &mut Entry) -> Result<[u8; 32], StoreError> {
    let size = e.stat.size;
    let EntryKind::File { object, hash } = &mut e.kind else {
        return Ok([0; 32]);
    };
    if let Some(h) = hash {
        return Ok(*h);
    }
    let path = store.object_path(object);
    let h = std::fs::File::open(&path)
        .and_then(|f| hash_file(&f, size))
        .map_err(|source| StoreError::Object { path, source })?;
    *hash = Some(h);
    Ok(h)
}

pub(crate) fn encode_changes(changes: &[Change]) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.0.extend_from_slice(MAGIC);
    w.u64(changes.len() as u64);
    let mut prev = RelPath::root();
    for c in changes {
        w.u8(state_byte(c.state));
        w.front_coded(&prev, &c.path);
        prev = c.path.clone();
        for e in [&c.before, &c.after] {
            match e {
                Some(e) => {
                    w.u8(1);
                    encode_body(&mut w, e);
                }
                None => w.u8(0),
            }
        }
        encode_rename(&mut w, c.rename.as_ref());
    }
    w.sealed()
}

fn state_byte(state: ChangeState) -> u8 {
    match state {
        ChangeState::Pending => 0,
        ChangeState::Approved => 1,
        ChangeState::RolledBack => 2,
    }
}

fn encode_rename(w: &mut Writer, rename: Option<&Rename>) {
    match rename {
        Some(r) => {
            w.u8(1);
            w.bytes(r.other.as_bytes());
            w.u8(r.similarity);
        }
        None => w.u8(0),
    }
}

pub(crate) fn decode_changes(bytes: &[u8], origin: &Path) -> Result<Vec<Change>, ManifestError> {
    let corrupt = |offset, what| ManifestError::Corrupt { path: origin.to_path_buf(), offset, what };
    let version = [(MAGIC_V2, 2), (MAGIC_V3, 3), (MAGIC, 4)].into_iter().find(|(m, _)| bytes.starts_with(*m));
    let Some((_, version)) = version.filter(|_| bytes.len() >= MAGIC.len() + 32) else {
        return Err(corrupt(0, "not a ws change set"));
    };
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != sum {
        return Err(corrupt(body.len(), "checksum mismatch (truncated or edited)"));
    }
    let mut r = Reader { buf: body, pos: MAGIC.len() };
    let parse = |r: &mut Reader| -> DecodeResult<Vec<Change>> {
        let n = r.u64()?;
        // Bounded by the bytes there are (a change takes at least 4), not by the count claimed.
        let mut out = Vec::with_capacity(n.min(r.buf.len() as u64 / 4) as usize);
        let mut paths = FrontDecoder::default();
        for _ in 0..n {
            let at = r.pos;
            let state = match r.u8()? {
                0 => ChangeState::Pending,
                1 => ChangeState::Approved,
                2 => ChangeState::RolledBack,
                _ => return Err((at, "invalid change state")),
            };
            if version == 4 {
                r.front_coded(&mut paths)?;
            }
            let mut sides = [None, None];
            for side in &mut sides {
                let at = r.pos;
                *side = match r.u8()? {
                    0 => None,
                    1 if version == 4 => Some(decode_body(r, RelPath::root())?),
                    1 => Some(decode_entry(r)?),
                    _ => return Err((at, "invalid presence flag")),
                };
            }
            let [before, after] = sides;
            let path = match (&before, &after) {
                (Some(b), Some(a)) if b.path != a.path => {
                    return Err((at, "sides name different paths"));
                }
                (Some(e), _) | (_, Some(e)) => e.path.clone(),
                (None, None) => return Err((at, "change with neither side")),
            };
            let rename = if version >= 3 { decode_rename(r)? } else { None };
            out.push(Change { path, before, after, state, rename });
        }
        if r.pos != r.buf.len() {
            return Err((r.pos, "trailing bytes"));
        }
        if version == 4 {
            for (c, path) in out.iter_mut().zip(paths.finish()) {
                for side in [&mut c.before, &mut c.after].into_iter().flatten() {
                    side.path = path.clone();
                }
                c.path = path;
            }
        }
        check_renames(&out).map_err(|what| (r.pos, what))?;
        Ok(out)
    };
    parse(&mut r).map_err(|(o, w)| corrupt(o, w))
}

/// A change set in the format before front coding (with renames, or
/// without them as the oldest format), for tests of reading it.
#[cfg(test)]
pub(crate) fn encode_changes_v3(changes: &[Change], renames: bool) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.0.extend_from_slice(if renames { MAGIC_V3 } else { MAGIC_V2 });
    w.u64(changes.len() as u64);
    for c in changes {
        w.u8(state_byte(c.state));
        for e in [&c.before, &c.after] {
            match e {
                Some(e) => {
                    w.u8(1);
                    crate::manifest::encode_entry_full(&mut w, e);
                }
                None => w.u8(0),
            }
        }
        if renames {
            encode_rename(&mut w, c.rename.as_ref());
        }
    }
    w.sealed()
}

fn decode_rename(r: &mut Reader) -> DecodeResult<Option<Rename>> {
    let at = r.pos;
    match r.u8()? {
        0 => Ok(None),
        1 => {
            let other = RelPath::from_bytes(r.bytes()?).ok_or((at, "invalid rename path"))?;
            let similarity = r.u8()?;
            if !(1..=100).contains(&similarity) {
                return Err((at, "rename similarity out of range"));
            }
            Ok(Some(Rename { other, similarity }))
        }
        _ => Err((at, "invalid rename flag")),
    }
}

/// Every rename half names a change that is the other half (a deleted and a
/// created path, each naming the other with the same similarity).
fn check_renames(changes: &[Change]) -> Result<(), &'static str> {
    let index: std::collections::HashMap<&RelPath, &Change> = changes.iter().map(|c| (&c.path, c)).collect();
    for c in changes {
        let Some(r) = &c.rename else { continue };
        let Some(o) = index.get(&r.other) else { return Err("rename names a path that did not change") };
        let paired = o.rename.as_ref().is_some_and(|b| b.other == c.path && b.similarity == r.similarity);
        let kinds = matches!(
            (c.kind(), o.kind()),
            (ChangeKind::Removed, ChangeKind::Added) | (ChangeKind::Added, ChangeKind::Removed)
        );
        if !paired || !kinds {
            return Err("rename halves do not match");
        }
    }
    Ok(())
}

/// Reads the current state of a workspace path, `None` if it does not exist.
pub(crate) fn lstat(path: &Path) -> io::Result<Option<std::fs::Metadata>> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A changed file that had hard links outside the workspace: the session's
/// write in place changed the file under those names too, and a rollback
/// restores only the workspace's name — as a new inode, no longer linked to
/// them. Nothing in the workspace can restore the outside names; the user
/// must be told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutsideLink {
    pub path: RelPath,
    /// Names the inode had when the before-snapshot was taken.
    pub links: u64,
    /// How many of them are in the workspace.
    pub inside: u64,
}

impl std::fmt::Display for OutsideLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let outside = self.links - self.inside;
        write!(
            f,
            "{} is a hard link: its file had {} names, {outside} of them outside the workspace. The session's \
             write may have changed the file under {} too, which rollback cannot restore, and rollback gives \
             this name a new file no longer linked to {} (find them with `find / -xdev -samefile`)",
            self.path,
            self.links,
            if outside == 1 { "that name" } else { "those names" },
            if outside == 1 { "it" } else { "them" },
        )
    }
}

/// The changes (of `changes`, those `pick` selects) whose before-snapshot
/// file had more hard links than the snapshot holds names for it.
/// `before`: the before-snapshot's entries, or at least those with several
/// names ([`crate::Stored::linked`]).
pub fn outside_links<'e>(
    before: impl IntoIterator<Item = &'e Entry>,
    changes: &[Change],
    pick: impl Fn(&Change) -> bool,
) -> Vec<OutsideLink> {
    let linked: Vec<&Change> = changes
        .iter()
        .filter(|c| pick(c))
        .filter(|c| c.before.as_ref().is_some_and(|b| matches!(b.kind, EntryKind::File { .. }) && b.stat.nlink > 1))
        .collect();
    if linked.is_empty() {
        return Vec::new();
    }
    let mut inside: std::collections::HashMap<(u64, u64), u64> = std::collections::HashMap::new();
    for e in before {
        if e.stat.nlink > 1 && matches!(e.kind, EntryKind::File { .. }) {
            *inside.entry((e.stat.dev, e.stat.ino)).or_default() += 1;
        }
    }
    linked
        .into_iter()
        .filter_map(|c| {
            let b = c.before.as_ref()?;
            let n = inside.get(&(b.stat.dev, b.stat.ino)).copied().unwrap_or(0);
            (n < b.stat.nlink).then(|| OutsideLink { path: c.path.clone(), links: b.stat.nlink, inside: n })
        })
        .collect()
}

#[cfg(test)]
mod rename_record_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::stat::FileStat;

    fn file(path: &str) -> Entry {
        Entry {
            path: RelPath::from_bytes(path.as_bytes()).unwrap(),
            kind: EntryKind::Symlink { target: b"t".to_vec() },
            stat: FileStat::default(),
            racy: false,
        }
    }

    fn pair() -> Vec<Change> {
        let rename =
            |other: &str| Some(Rename { other: RelPath::from_bytes(other.as_bytes()).unwrap(), similarity: 87 });
        vec![
            Change { rename: rename("b"), ..change(file("a"), None) },
            Change {
                path: file("b").path,
                before: None,
                after: Some(file("b")),
                state: ChangeState::Pending,
                rename: rename("a"),
            },
        ]
    }

    #[test]
    fn renames_survive_the_change_set_file_and_old_files_still_read() {
        let cs = pair();
        assert_eq!(decode_changes(&encode_changes(&cs), Path::new("c")).unwrap(), cs);
        // Change sets from before front coding, with renames and from
        // before renames (read without them).
        assert_eq!(decode_changes(&encode_changes_v3(&cs, true), Path::new("c")).unwrap(), cs);
        let plain: Vec<Change> = cs.iter().map(|c| Change { rename: None, ..c.clone() }).collect();
        let old = encode_changes_v3(&cs, false);
        assert_eq!(decode_changes(&old, Path::new("c")).unwrap(), plain);
    }

    #[test]
    fn a_rename_naming_no_matching_half_is_corrupt() {
        for damage in 0..3 {
            let mut cs = pair();
            match damage {
                0 => cs[1].rename.as_mut().unwrap().similarity = 86,
                1 => cs[1].rename = None,
                _ => cs[0].rename.as_mut().unwrap().other = RelPath::from_bytes(b"zz").unwrap(),
            }
            let e = decode_changes(&encode_changes(&cs), Path::new("c")).unwrap_err();
            assert!(e.to_string().contains("rename"), "{e}");
        }
    }
}

#[cfg(test)]
mod outside_link_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::snapshot::{SnapshotOptions, take_snapshot};
    use crate::{Budget, Store};

    #[test]
    fn a_changed_file_linked_from_outside_is_named_with_its_link_count() {
        let dir = tempfile::tempdir().unwrap();
        let (root, store_dir, outside) = (dir.path().join("ws"), dir.path().join("store"), dir.path().join("out"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        for f in ["shared", "inner1", "plain"] {
            std::fs::write(root.join(f), f).unwrap();
        }
        std::fs::hard_link(root.join("shared"), outside.join("shared")).unwrap();
        std::fs::hard_link(root.join("shared"), outside.join("shared2")).unwrap();
        // Linked, but every name inside: nothing to report.
        std::fs::hard_link(root.join("inner1"), root.join("inner2")).unwrap();
        let store = Store::open_or_create(&store_dir, &root).unwrap();
        let snap = |previous| {
            let opts = SnapshotOptions {
                workspace: &root,
                budget: Budget::default(),
                exclude_files: vec![],
                previous,
                progress: None,
                scope: None,
            };
            take_snapshot(&store, &opts).unwrap().taken.into_whole().expect("no scope")
        };
        let before = snap(None);
        for f in ["shared", "inner1", "plain"] {
            std::fs::write(root.join(f), "changed").unwrap();
        }
        let after = snap(Some(&before));
        let changes = compute_changes(&store, &before, &after).unwrap();
        assert!(changes.len() >= 4, "{changes:?}");
        let found = outside_links(&before.entries, &changes, |_| true);
        assert_eq!(found, [OutsideLink { path: RelPath::from_bytes(b"shared").unwrap(), links: 3, inside: 1 }]);
        let msg = found[0].to_string();
        assert!(msg.contains("shared is a hard link") && msg.contains("3 names, 2 of them outside"), "{msg}");
        assert!(outside_links(&before.entries, &changes, |c| c.path.as_bytes() != b"shared").is_empty());
    }
}
