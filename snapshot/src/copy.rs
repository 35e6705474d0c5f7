//! Moving bytes between the workspace and the store: `FICLONE` where the
//! filesystem shares extents, otherwise a sparse-aware copy (holes stay holes,
//! so a 1 GiB sparse file costs what its data costs) that can hash as it goes.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use rustix::fs::SeekFrom;

const CHUNK: usize = 256 * 1024;
static ZEROS: [u8; CHUNK] = [0; CHUNK];

/// What a failed `FICLONE` means.
pub(crate) enum CloneFailure {
    /// This pair of filesystems cannot share extents: copy from now on.
    Filesystem,
    /// This file cannot be cloned (e.g. btrfs `nodatacow`, an immutable
    /// file): copy it, keep cloning others.
    ThisFile,
    /// A real error (no space, I/O): report it.
    Real,
}

pub(crate) fn clone_failure(e: &io::Error) -> CloneFailure {
    use rustix::io::Errno;
    match Errno::from_io_error(e) {
        Some(Errno::OPNOTSUPP | Errno::XDEV | Errno::NOTTY | Errno::NOSYS) => CloneFailure::Filesystem,
        Some(Errno::INVAL | Errno::PERM | Errno::ACCESS) => CloneFailure::ThisFile,
        _ => CloneFailure::Real,
    }
}

pub(crate) fn try_clone(dst: &File, src: &File) -> io::Result<()> {
    rustix::fs::ioctl_ficlone(dst, src).map_err(io::Error::from)
}

/// The byte ranges of `file` that hold data, found with `SEEK_DATA`/`SEEK_HOLE`.
/// Falls back to one range covering the file where the filesystem cannot say.
fn data_ranges(file: &File, size: u64) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    let mut pos = 0;
    while pos < size {
        let start = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(s) => s,
            Err(rustix::io::Errno::NXIO) => break,
            Err(_) => return vec![(0, size)],
        };
        let end = match rustix::fs::seek(file, SeekFrom::Hole(start)) {
            Ok(e) => e.min(size),
            Err(_) => return vec![(0, size)],
        };
        if end <= start {
            break;
        }
        ranges.push((start, end));
        pos = end;
    }
    ranges
}

/// Copies `size` bytes of `src` into the empty file `dst`, preserving holes:
/// data ranges go through `copy_file_range` (in the kernel, no userspace
/// buffer), holes are left unwritten.
pub(crate) fn copy_sparse(src: &File, dst: &File, size: u64) -> io::Result<()> {
    let mut written_to = 0;
    for (start, end) in data_ranges(src, size) {
        let (mut off_in, mut off_out) = (start, start);
        while off_in < end {
            let want = (end - off_in).min(1 << 30) as usize;
            let n = match rustix::fs::copy_file_range(src, Some(&mut off_in), dst, Some(&mut off_out), want) {
                Ok(n) => n,
                Err(
                    rustix::io::Errno::XDEV
                    | rustix::io::Errno::NOSYS
                    | rustix::io::Errno::OPNOTSUPP
                    | rustix::io::Errno::INVAL,
                ) => {
                    copy_range_userspace(src, dst, off_in, end)?;
                    off_out = end;
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                break; // the file shrank under us; what we have is what there was
            }
        }
        written_to = off_out;
    }
    // A trailing hole (or a source that shrank) still needs the full length.
    if written_to != size { dst.set_len(size) } else { Ok(()) }
}

fn copy_range_userspace(src: &File, dst: &File, mut off: u64, end: u64) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    while off < end {
        let want = ((end - off) as usize).min(CHUNK);
        let n = src.read_at(&mut buf[..want], off)?;
        if n == 0 {
            break;
        }
        dst.write_all_at(&buf[..n], off)?;
        off += n as u64;
    }
    Ok(())
}

fn feed_zeros(h: &mut blake3::Hasher, mut n: u64) {
    while n > 0 {
        let k = n.min(CHUNK as u64) as usize;
        h.update(&ZEROS[..k]);
        n -= k as u64;
    }
}

/// BLAKE3 of a file's content, reading only its data ranges.
pub(crate) fn hash_file(file: &File, size: u64) -> io::Result<[u8; 32]> {
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    for (start, end) in data_ranges(file, size) {
        feed_zeros(&mut h, start - done);
        let mut off = start;
        while off < end {
            let want = ((end - off) as usize).min(CHUNK);
            let n = file.read_at(&mut buf[..want], off)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            off += n as u64;
        }
        done = off;
    }
    feed_zeros(&mut h, size.saturating_sub(done));
    Ok(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_copy_keeps_holes_and_hash_sees_logical_content() {
        let dir = tempfile::tempdir().unwrap();
        let src_path = dir.path().join("sparse");
        let src = File::create(&src_path).unwrap();
        src.set_len(64 << 20).unwrap();
        src.write_all_at(b"middle", 32 << 20).unwrap();
        src.write_all_at(b"end", (64 << 20) - 3).unwrap();
        let src = File::open(&src_path).unwrap();
        let dst_path = dir.path().join("copy");
        let dst = File::options().read(true).write(true).create_new(true).open(&dst_path).unwrap();
        copy_sparse(&src, &dst, 64 << 20).unwrap();

        let plain = fs_err::read(&src_path).unwrap();
        assert_eq!(fs_err::read(&dst_path).unwrap(), plain);
        assert_eq!(hash_file(&dst, 64 << 20).unwrap(), *blake3::hash(&plain).as_bytes());
        use std::os::unix::fs::MetadataExt;
        let blocks = dst.metadata().unwrap().blocks();
        assert!(blocks * 512 < 4 << 20, "copy is not sparse: {blocks} blocks");
    }
}
