//! Rebuilding the directories a rollback brings back where nothing is.
//!
//! Rollback's ordinary step makes one path right at a time, atomically: a
//! check first, then an unnamed inode linked in, or a work file renamed in.
//! A directory that is missing altogether — the common case after `rm -rf` —
//! does not need that for what lies below it. Its top is made under a work
//! name beside its place (a `.ws-tmp-TOKEN-PID-…` name, see `store::WorkToken`: never snapshotted, swept as
//! debris by the next rollback once its process is gone), everything below is
//! made there directly under its own name, relative to its directory's
//! descriptor (`mkdirat`, `openat(O_CREAT|O_EXCL)`, `symlinkat`: the calls cp
//! makes), and the top is renamed into place only when the tree is complete.
//! Nothing below a top has a workspace path before that rename, so a crash
//! at any instant leaves either the complete tree in place or a work tree
//! that the next rollback ignores, sweeps and builds again — never a partial
//! entry under a workspace path. (Hard-linked files need their sibling's
//! final path: the ordinary step links them in after the rename, so a crash
//! in between leaves them missing, for the next rollback to restore.)

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use rustix::fs::{AtFlags, Mode, OFlags};

use crate::error::ReviewError;
use crate::longpath::Reachable;
use crate::manifest::{Entry, EntryKind};
use crate::path::RelPath;
use crate::restore::in_parallel;
use crate::stat::FileStat;
use crate::store::{ObjectId, Store};

/// The trees a rollback is building: their tops, and every directory below.
#[derive(Debug, Default)]
pub(crate) struct NewTrees {
    tops: Vec<Top>,
    /// Directories of new trees, tops included.
    dirs: HashSet<RelPath>,
}

#[derive(Debug)]
struct Top {
    path: RelPath,
    /// Where it is built.
    work: PathBuf,
    /// Where it goes.
    abs: PathBuf,
}

/// What building made of an entry below a top.
#[derive(Debug)]
pub(crate) enum Built {
    /// Made; with its stat where nothing changes it later (files and
    /// symlinks: directories still get their mode, see rollback's phase 3).
    Made(Option<FileStat>),
    /// Excluded from the snapshot: nothing to make.
    Excluded,
}

impl NewTrees {
    /// Adds the tree whose top `path` (at `abs`) is being built at `work`.
    pub(crate) fn add_top(&mut self, path: RelPath, work: PathBuf, abs: PathBuf) {
        self.dirs.insert(path.clone());
        self.tops.push(Top { path, work, abs });
    }

    /// Whether `path` is below a top (its parent is a directory of a new tree).
    pub(crate) fn holds(&self, path: &RelPath) -> bool {
        path.parent().is_some_and(|p| self.dirs.contains(&p))
    }

    /// Whether `path` is a directory of a new tree (top or below).
    pub(crate) fn has_dir(&self, path: &RelPath) -> bool {
        self.dirs.contains(path)
    }

    /// Marks the directory `path`, which [`Self::holds`], as one of a new tree.
    pub(crate) fn adopt(&mut self, path: RelPath) {
        self.dirs.insert(path);
    }

    /// Makes `entries`, all of which [`Self::holds`], a directory at a time:
    /// each directory's subdirectories, files and symlinks, then (in the next
    /// round) those subdirectories' own. Directories are made writable; files
    /// get their content (cloned where the store can), mode and mtime.
    pub(crate) fn build(&self, store: &Store, entries: &[(usize, &Entry)]) -> Result<Vec<(usize, Built)>, ReviewError> {
        let mut children: HashMap<RelPath, Vec<(usize, &Entry)>> = HashMap::new();
        for &(i, e) in entries {
            if let Some(parent) = e.path.parent() {
                children.entry(parent).or_default().push((i, e));
            }
        }
        let mut built = Vec::with_capacity(entries.len());
        let mut round: Vec<(PathBuf, &RelPath)> = self.tops.iter().map(|t| (t.work.clone(), &t.path)).collect();
        while !round.is_empty() {
            let filled = in_parallel(&round, 1, |(at, path)| {
                fill_dir(store, at, children.get(*path).map_or(&[][..], Vec::as_slice))
            })?;
            round = Vec::new();
            for f in filled {
                built.extend(f.built);
                round.extend(f.subdirs);
            }
        }
        Ok(built)
    }

    /// Renames every tree into place, never over something: if a path
    /// appeared there meanwhile, that is an error, and the next rollback
    /// (which finds the tree's path taken) decides about it path by path.
    pub(crate) fn put_in_place(&mut self) -> Result<(), ReviewError> {
        use rustix::fs::{CWD, RenameFlags};
        while let Some(top) = self.tops.pop() {
            let placed = Reachable::new(&top.work).and_then(|work| {
                let abs = Reachable::new(&top.abs)?;
                match rustix::fs::renameat_with(CWD, &*work, CWD, &*abs, RenameFlags::NOREPLACE) {
                    // A filesystem without RENAME_NOREPLACE.
                    Err(rustix::io::Errno::INVAL) => std::fs::rename(&*work, &*abs),
                    r => r.map_err(io::Error::from),
                }
            });
            if let Err(source) = placed {
                let path = top.abs.clone();
                self.tops.push(top);
                return Err(ReviewError::Restore { path, source });
            }
        }
        Ok(())
    }

    /// Removes the trees not put in place, after an error. Best effort: the
    /// next rollback sweeps what is left, as after a crash.
    pub(crate) fn discard(&mut self) {
        for top in self.tops.drain(..) {
            let _ = Reachable::new(&top.work).and_then(|work| std::fs::remove_dir_all(&*work));
        }
    }
}

/// What [`fill_dir`] did in one directory.
struct Filled<'e> {
    built: Vec<(usize, Built)>,
    /// The subdirectories it made (where they are, and their paths), to fill next.
    subdirs: Vec<(PathBuf, &'e RelPath)>,
}

/// Makes `children` in the new directory at `at`.
fn fill_dir<'e>(store: &Store, at: &Path, children: &[(usize, &'e Entry)]) -> Result<Filled<'e>, ReviewError> {
    let err = |name: &[u8]| {
        let path = at.join(OsStr::from_bytes(name));
        move |e: rustix::io::Errno| ReviewError::Restore { path, source: e.into() }
    };
    // The tree may be deeper than one system call reaches (`PATH_MAX`).
    let dir = crate::longpath::at(at, |base, p| {
        rustix::fs::openat(base, p, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
    })
    .map_err(err(b""))?;
    let mut built = Vec::with_capacity(children.len());
    let mut subdirs = Vec::new();
    for &(i, e) in children {
        let name = e.path.file_name();
        let outcome = match &e.kind {
            EntryKind::Dir => {
                rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o700)).map_err(err(name))?;
                subdirs.push((at.join(OsStr::from_bytes(name)), &e.path));
                Built::Made(None)
            }
            EntryKind::File { object, .. } => {
                let perm = e.stat.perm();
                let fd = rustix::fs::openat(
                    &dir,
                    name,
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                    Mode::from_raw_mode(perm & 0o777),
                )
                .map_err(err(name))?;
                let file = File::from(fd);
                fill_content(store, &file, e, object)
                    .map_err(|source| ReviewError::restore(at.join(OsStr::from_bytes(name)), source))?;
                let mut stat = FileStat::from_stat(&rustix::fs::fstat(&file).map_err(err(name))?);
                // Made with the snapshot's mode, which the umask (or a default
                // ACL) may have cut, and without setuid/setgid/sticky bits.
                if stat.perm() != perm {
                    rustix::fs::fchmod(&file, Mode::from_raw_mode(perm)).map_err(err(name))?;
                    stat = FileStat::from_stat(&rustix::fs::fstat(&file).map_err(err(name))?);
                }
                Built::Made(Some(stat))
            }
            EntryKind::Symlink { target } => {
                rustix::fs::symlinkat(target.as_slice(), &dir, name).map_err(err(name))?;
                let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(err(name))?;
                Built::Made(Some(FileStat::from_stat(&st)))
            }
            EntryKind::Excluded { .. } => Built::Excluded,
        };
        built.push((i, outcome));
    }
    Ok(Filled { built, subdirs })
}

/// Gives the new, empty file `dst` the content, mode and mtime of `e`.
pub(crate) fn fill_file(store: &Store, dst: &File, e: &Entry, object: &ObjectId) -> io::Result<()> {
    fill_content(store, dst, e, object)?;
    dst.set_permissions(std::fs::Permissions::from_mode(e.stat.perm()))
}

/// Gives the new, empty file `dst` the content and mtime of `e`.
fn fill_content(store: &Store, dst: &File, e: &Entry, object: &ObjectId) -> io::Result<()> {
    let src = store.open_object(object)?;
    store.fill(dst, &src, e.stat.size)?;
    dst.set_modified(UNIX_EPOCH + Duration::from_nanos(e.stat.mtime_ns.max(0) as u64))
}
