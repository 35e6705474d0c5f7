//! The on-disk store of one workspace.
//!
//! ```text
//! STORE                 identity: format version and the workspace it serves
//! lock                  flock(2) taken by every command that changes state
//! objects/xx/ID         file contents (clones or copies), never modified
//! manifests/ID          snapshots, content-addressed
//! latest                id of the newest manifest: the stat cache
//! sessions/SID/…        session records, change sets, rollback journals
//! tmp/PID-N             work files of live processes; others are debris
//! work/TOKEN            the work token of each rollback under way
//! ```
//! Every state file is written to `tmp/` and renamed into place, so a crash at
//! any instant leaves the old or the new version, never a mix.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use crate::copy;
use crate::error::StoreError;
use crate::manifest::{Manifest, ManifestId};

const FORMAT: &str = "ws store 1";

/// Name of an object in the store: 16 bytes, unique per store (derived from a
/// random per-process seed and a counter), written as 32 hex digits. Kept as
/// bytes: a manifest holds one per file, and memory follows the workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId([u8; 16]);

impl ObjectId {
    pub fn parse(s: &str) -> Option<ObjectId> {
        if s.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, pair) in s.as_bytes().chunks(2).enumerate() {
            let digit = |c: u8| match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                _ => None,
            };
            out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
        }
        Some(ObjectId(out))
    }

    pub fn from_bytes(b: [u8; 16]) -> ObjectId {
        ObjectId(b)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Whether files move between workspace and store by `FICLONE`: learnt from
/// the first attempt, so a filesystem that cannot clone costs one failed ioctl.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloneSupport {
    Unknown,
    Clone,
    Copy,
}

#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    clone: AtomicU8,
    tmp_counter: AtomicU64,
    id_seed: [u8; 32],
    pid: u32,
}

/// Held while a command changes the store or the workspace; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl Store {
    /// Opens the store at `root`, creating it for `workspace` if it does not
    /// exist. Refuses a store that serves another workspace.
    pub fn open_or_create(root: &Path, workspace: &Path) -> Result<Store, StoreError> {
        let create = |p: &Path| -> Result<(), StoreError> {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(p)
                .map_err(|source| StoreError::Create { path: p.to_path_buf(), source })
        };
        create(root)?;
        for sub in ["objects", "manifests", "sessions", "tmp", "work"] {
            create(&root.join(sub))?;
        }
        let ident_path = root.join("STORE");
        let ident = format!("{FORMAT}\nworkspace {}\n", workspace.display());
        match fs_err::read_to_string(&ident_path) {
            Ok(existing) => {
                if existing != ident {
                    let other =
                        existing.lines().find_map(|l| l.strip_prefix("workspace ")).unwrap_or("(unknown)").to_owned();
                    return Err(StoreError::WrongWorkspace { path: root.to_path_buf(), other });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                write_atomic_in(root, &ident_path, ident.as_bytes())?;
            }
            Err(source) => {
                return Err(StoreError::Io { path: ident_path, source });
            }
        }
        let mut seed_src = Vec::new();
        seed_src.extend_from_slice(&std::process::id().to_le_bytes());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        seed_src.extend_from_slice(&now.to_le_bytes());
        let mut rnd = [0u8; 16];
        let _ = rustix::rand::getrandom(&mut rnd, rustix::rand::GetRandomFlags::empty());
        seed_src.extend_from_slice(&rnd);
        let store = Store {
            root: root.to_path_buf(),
            clone: AtomicU8::new(0),
            tmp_counter: AtomicU64::new(0),
            id_seed: *blake3::hash(&seed_src).as_bytes(),
            pid: std::process::id(),
        };
        store.sweep_tmp();
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether files can be cloned within the store's filesystem: tries
    /// `FICLONE` between two scratch files in `tmp/`.
    pub fn probe_clone(&self) -> io::Result<bool> {
        let (a, b) = (self.tmp_path(), self.tmp_path());
        let result = (|| {
            let mut src = File::options().read(true).write(true).create_new(true).mode(0o600).open(&a)?;
            src.write_all(&[7u8; 4096])?;
            let dst = File::options().write(true).create_new(true).mode(0o600).open(&b)?;
            match copy::try_clone(&dst, &src) {
                Ok(()) => Ok(true),
                Err(e) => match copy::clone_failure(&e) {
                    copy::CloneFailure::Real => Err(e),
                    _ => Ok(false),
                },
            }
        })();
        let _ = std::fs::remove_file(&a);
        let _ = std::fs::remove_file(&b);
        result
    }

    /// Blocks until this process holds the store's exclusive lock.
    pub fn lock(&self) -> Result<StoreLock, StoreError> {
        let path = self.root.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| StoreError::Lock { path: path.clone(), source })?;
        file.lock().map_err(|source| StoreError::Lock { path, source })?;
        Ok(StoreLock { _file: file })
    }

    pub fn clone_support(&self) -> CloneSupport {
        match self.clone.load(Ordering::Relaxed) {
            1 => CloneSupport::Clone,
            2 => CloneSupport::Copy,
            _ => CloneSupport::Unknown,
        }
    }

    pub(crate) fn set_clone_support(&self, c: CloneSupport) {
        let v = match c {
            CloneSupport::Unknown => 0,
            CloneSupport::Clone => 1,
            CloneSupport::Copy => 2,
        };
        self.clone.store(v, Ordering::Relaxed);
    }

    pub(crate) fn object_path(&self, id: &ObjectId) -> PathBuf {
        let s = id.to_hex();
        self.root.join("objects").join(&s[s.len() - 2..]).join(&s)
    }

    pub(crate) fn sessions_dir(&self) -> PathBuf {
        self.root.join("sessions")
    }

    /// A fresh path in `tmp/` that no other process will use.
    pub(crate) fn tmp_path(&self) -> PathBuf {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        self.root.join("tmp").join(format!("{}-{n}", self.pid))
    }

    fn fresh_object_id(&self) -> ObjectId {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let mut h = blake3::Hasher::new();
        h.update(&self.id_seed);
        h.update(&n.to_le_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&h.finalize().as_bytes()[..16]);
        ObjectId(id)
    }

    /// Removes work files left by processes that no longer exist.
    fn sweep_tmp(&self) {
        let Ok(dir) = std::fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        for entry in dir.flatten() {
            if !owner_alive(entry.file_name().as_encoded_bytes()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Puts the content of the open regular file `src` (of `size` bytes) into
    /// the store, under a fresh unique name: a clone where the filesystem
    /// allows it, else a sparse-aware copy.
    ///
    /// The object is created in place, not renamed into place: a rename costs
    /// more than a clone on btrfs, and a crash can only leave an object that
    /// no manifest names yet. Objects are not named by content: reading every
    /// byte to hash it would make the copy path slower than `cp`, and the stat
    /// cache already shares unchanged files across sessions. Hashes are
    /// computed when content must be compared, and kept in the manifest.
    pub(crate) fn put_object(&self, src: &File, size: u64) -> io::Result<ObjectId> {
        let id = self.fresh_object_id();
        let dest = self.object_path(&id);
        let dst = self.create_object_file(&dest)?;
        let filled = self.fill(&dst, src, size);
        if filled.is_err() {
            drop(dst);
            let _ = std::fs::remove_file(&dest);
        }
        filled.map(|()| id)
    }

    /// Puts `bytes` into the store as a new object, flushed to disk: content
    /// made by review (a file with some hunks taken back or kept), which no
    /// workspace file holds yet.
    pub(crate) fn put_bytes(&self, bytes: &[u8]) -> io::Result<ObjectId> {
        let id = self.fresh_object_id();
        let dest = self.object_path(&id);
        let mut dst = self.create_object_file(&dest)?;
        let written = dst.write_all(bytes).and_then(|()| dst.sync_all());
        if written.is_err() {
            drop(dst);
            let _ = std::fs::remove_file(&dest);
        }
        written.map(|()| id)
    }

    /// Writes `size` bytes of `src` into the empty `dst`: clone, else copy.
    pub(crate) fn fill(&self, dst: &File, src: &File, size: u64) -> io::Result<()> {
        if self.clone_support() != CloneSupport::Copy {
            match copy::try_clone(dst, src) {
                Ok(()) => {
                    self.set_clone_support(CloneSupport::Clone);
                    return Ok(());
                }
                Err(e) => match copy::clone_failure(&e) {
                    copy::CloneFailure::Filesystem => self.set_clone_support(CloneSupport::Copy),
                    copy::CloneFailure::ThisFile => {}
                    copy::CloneFailure::Real => return Err(e),
                },
            }
        }
        copy::copy_sparse(src, dst, size)
    }

    fn create_object_file(&self, dest: &Path) -> io::Result<File> {
        let open = || File::options().write(true).create_new(true).mode(0o600).open(dest);
        match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dest.parent().unwrap_or(&self.root))?;
                open()
            }
            r => r,
        }
    }

    /// Opens an object to read it; an error says which object (see
    /// [`ReviewError::restore`](crate::error::ReviewError)).
    pub(crate) fn open_object(&self, id: &ObjectId) -> io::Result<File> {
        let object = self.object_path(id);
        let opened = File::open(&object).and_then(|f| {
            // A directory opens too; reading it would fail later, unnamed.
            if f.metadata()?.is_file() {
                Ok(f)
            } else {
                Err(io::Error::new(io::ErrorKind::InvalidData, "not a regular file"))
            }
        });
        opened.map_err(|source| io::Error::new(source.kind(), crate::error::UnreadableObject { object, source }))
    }

    pub fn put_manifest(&self, m: &Manifest) -> Result<ManifestId, StoreError> {
        self.put_manifest_bytes(&m.encode())
    }

    /// Stores an encoded manifest or layer ([`crate::layer::Layer::encode`])
    /// under the id of its bytes.
    pub(crate) fn put_manifest_bytes(&self, bytes: &[u8]) -> Result<ManifestId, StoreError> {
        let id = ManifestId(hex(&blake3::hash(bytes).as_bytes()[..16]));
        let path = self.manifest_path(&id);
        if !path.exists() {
            self.write_atomic(&path, bytes)?;
        }
        Ok(id)
    }

    pub(crate) fn manifest_path(&self, id: &ManifestId) -> PathBuf {
        self.root.join("manifests").join(&id.0)
    }

    pub fn manifest(&self, id: &ManifestId) -> Result<Manifest, StoreError> {
        let path = self.manifest_path(id);
        let bytes =
            fs_err::read(&path).map_err(|source| crate::error::ManifestError::Read { path: path.clone(), source })?;
        if crate::layer::is_layer(&bytes) {
            return Ok(crate::manifest_file::Layered::decode(self, id, &bytes)?.read_all()?);
        }
        let mut m = Manifest::decode(&bytes, &path)?;
        m.id = Some(id.clone());
        Ok(m)
    }

    /// The layer stored as `id` ([`crate::layer`]), over its base; `None`
    /// for a whole manifest.
    pub(crate) fn layer(&self, id: &ManifestId) -> Result<Option<crate::manifest_file::Layered>, StoreError> {
        let path = self.manifest_path(id);
        let read = |source| crate::error::ManifestError::Read { path: path.clone(), source };
        let mut magic = [0u8; 8];
        let mut f = std::fs::File::open(&path).map_err(read)?;
        if std::io::Read::read_exact(&mut f, &mut magic).is_err() || !crate::layer::is_layer(&magic) {
            return Ok(None);
        }
        let bytes = fs_err::read(&path).map_err(read)?;
        Ok(Some(crate::manifest_file::Layered::decode(self, id, &bytes)?))
    }

    /// The files of snapshot `id` with several names (through its index:
    /// the listing is not read).
    pub fn linked(&self, id: &ManifestId) -> Result<Vec<crate::Entry>, StoreError> {
        Ok(crate::Stored::open(self, id)?.linked().into_iter().cloned().collect())
    }

    /// A stored manifest read through its index ([`ManifestFile`]);
    /// `Ok(None)` for one written before manifests had one.
    pub fn manifest_file(&self, id: &ManifestId) -> Result<Option<crate::ManifestFile>, StoreError> {
        Ok(crate::ManifestFile::open(&self.manifest_path(id), id.clone())?)
    }

    /// The newest snapshot of the workspace, used as the stat cache.
    pub fn latest(&self) -> Option<ManifestId> {
        let s = std::fs::read_to_string(self.root.join("latest")).ok()?;
        let id = s.trim();
        (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| ManifestId(id.to_owned()))
    }

    pub fn set_latest(&self, id: &ManifestId) -> Result<(), StoreError> {
        if self.latest().as_ref() == Some(id) {
            return Ok(()); // an unchanged workspace: nothing to write or sync
        }
        self.write_atomic(&self.root.join("latest"), format!("{}\n", id.0).as_bytes())
    }

    /// Writes `bytes` to `path` (inside the store) so that a crash leaves
    /// either the old or the new content.
    pub(crate) fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        write_atomic_in(&self.root, path, bytes)
    }

    /// Flushes everything written to the store's filesystem.
    pub fn sync(&self) -> Result<(), StoreError> {
        let f = File::open(&self.root).map_err(|source| StoreError::Io { path: self.root.clone(), source })?;
        rustix::fs::syncfs(&f).map_err(|e| StoreError::Io { path: self.root.clone(), source: e.into() })
    }
}

fn write_atomic_in(root: &Path, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = root.join("tmp").join(format!("{}-w{n}", std::process::id()));
    let io_err = |source| StoreError::Io { path: path.to_path_buf(), source };
    let write = || -> io::Result<()> {
        let mut f = File::options().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err(e)
    })
}

/// The secret in the names of a rollback's work files in the workspace
/// (`.ws-tmp-TOKEN-PID-…`): 128 random bits, kept in the store (which the
/// sandbox can neither read nor write) for as long as the rollback is under
/// way. Only such names are left out of snapshots: any other name, however
/// it begins, is the workspace's — an agent cannot hide a file from review
/// by calling it `.ws-tmp-…`.
pub(crate) type WorkToken = String;

impl Store {
    fn work_dir(&self) -> PathBuf {
        self.root.join("work")
    }

    /// A fresh work token, registered (durably) before any name carrying it
    /// is made in the workspace.
    pub(crate) fn begin_work(&self) -> Result<WorkToken, StoreError> {
        let mut rnd = [0u8; 16];
        rustix::rand::getrandom(&mut rnd, rustix::rand::GetRandomFlags::empty())
            .map_err(|e| StoreError::Io { path: self.work_dir(), source: e.into() })?;
        let token = hex(&rnd);
        self.register_work(&token)?;
        Ok(token)
    }

    /// Registers `token` again (a resumed rollback whose marker was lost).
    pub(crate) fn register_work(&self, token: &str) -> Result<(), StoreError> {
        let dir = self.work_dir();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| StoreError::Io { path: dir.clone(), source })?;
        self.write_atomic(&dir.join(token), b"")
    }

    /// Unregisters `token`: names carrying it are ordinary names again.
    pub(crate) fn end_work(&self, token: &str) -> Result<(), StoreError> {
        let path = self.work_dir().join(token);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// The name prefixes (`.ws-tmp-TOKEN-`) of the rollbacks under way:
    /// usually none.
    pub(crate) fn work_prefixes(&self) -> Vec<Vec<u8>> {
        let Ok(dir) = std::fs::read_dir(self.work_dir()) else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                is_work_token(&name).then(|| work_prefix(&name))
            })
            .collect()
    }
}

pub(crate) fn is_work_token(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The prefix of the work names carrying `token`.
pub(crate) fn work_prefix(token: &str) -> Vec<u8> {
    format!(".ws-tmp-{token}-").into_bytes()
}

impl Store {
    /// The content of an object, for showing diffs.
    pub fn read_object(&self, id: &ObjectId) -> Result<Vec<u8>, StoreError> {
        let path = self.object_path(id);
        fs_err::read(&path).map_err(|source| StoreError::Object { path, source })
    }
}

/// Whether the process whose id starts a work file's name (`PID-…`) still
/// runs. Such files of dead processes are debris, safe to remove.
pub(crate) fn owner_alive(name: &[u8]) -> bool {
    let pid = std::str::from_utf8(name).ok().and_then(|n| n.split('-').next()).and_then(|p| p.parse::<u32>().ok());
    pid.is_some_and(|p| p == std::process::id() || Path::new(&format!("/proc/{p}")).exists())
}

/// Locks a mutex, taking it over if a panicking thread poisoned it: the
/// data guarded here (maps of objects and links) stays valid either way.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How many threads walk or restore in parallel: the work mostly waits on the
/// filesystem, so twice the cores.
pub(crate) fn worker_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).saturating_mul(2).clamp(2, 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_round_trip_through_hex() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        for seed in 0..=255u8 {
            let id = ObjectId(std::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8 * 17)));
            assert_eq!(ObjectId::parse(&id.to_hex()), Some(id));
        }
    }
}
