//! Moving bytes between the workspace and the store: `FICLONE` where the
//! filesystem shares extents, otherwise a sparse-aware copy (holes stay holes,
//! so a 1 GiB sparse file costs what its data costs) that can hash as it goes.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use rustix::fs::SeekFrom;

const CHUNK: usize = 256 * 1024;

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

/// The block of the content hash: a block that is all zeros (a hole, or
/// zeros written out) is what a sparse hash leaves out.
const BLOCK: u64 = 64 * 1024;

/// The content hash of a file: a function of its bytes alone, whose cost
/// follows the data, not the apparent size (a 1 TiB file of holes costs a
/// few seeks, not 1 TiB of hashing).
///
/// Content with no all-zero aligned 64 KiB block — nearly every file — hashes
/// to its plain BLAKE3, so hashes recorded by earlier versions stay valid.
/// Content with such a block hashes, under a key of its own, its size and
/// each block that is not all zeros with its index: holes are skipped
/// unread, and a hole and written zeros hash alike.
pub(crate) fn hash_file(file: &File, size: u64) -> io::Result<[u8; 32]> {
    let ranges = data_ranges(file, size);
    if !has_hole_block(&ranges, size)
        && let Some(h) = hash_plain(file, size)?
    {
        return Ok(h);
    }
    hash_sparse(file, size, &ranges)
}

/// Whether some aligned block lies wholly outside the data ranges.
fn has_hole_block(ranges: &[(u64, u64)], size: u64) -> bool {
    let mut covered_to = 0; // blocks below this index hold data
    for &(start, end) in ranges {
        let first = start / BLOCK;
        if first > covered_to {
            return true;
        }
        covered_to = covered_to.max(end.div_ceil(BLOCK));
    }
    covered_to < size.div_ceil(BLOCK)
}

/// Reads the block `i` into `buf`; bytes past the end of a file that
/// shrank meanwhile read as zeros.
fn read_block<'b>(file: &File, size: u64, i: u64, buf: &'b mut [u8]) -> io::Result<&'b [u8]> {
    let start = i * BLOCK;
    let len = (size - start).min(BLOCK) as usize;
    let buf = &mut buf[..len];
    let mut done = 0;
    while done < len {
        let n = file.read_at(&mut buf[done..], start + done as u64)?;
        if n == 0 {
            buf[done..].fill(0);
            break;
        }
        done += n;
    }
    Ok(buf)
}

fn all_zero(b: &[u8]) -> bool {
    !b.iter().any(|&x| x != 0)
}

/// BLAKE3 of the content, or `None` at the first all-zero block.
fn hash_plain(file: &File, size: u64) -> io::Result<Option<[u8; 32]>> {
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; BLOCK as usize];
    for i in 0..size.div_ceil(BLOCK) {
        let block = read_block(file, size, i, &mut buf)?;
        if all_zero(block) {
            return Ok(None);
        }
        h.update(block);
    }
    Ok(Some(*h.finalize().as_bytes()))
}

const SPARSE_KEY: &str = "ws 2026 content with zero blocks v1";

/// The keyed hash of the size and of each block that is not all zeros,
/// visiting only the blocks that meet a data range.
fn hash_sparse(file: &File, size: u64, ranges: &[(u64, u64)]) -> io::Result<[u8; 32]> {
    let mut h = blake3::Hasher::new_derive_key(SPARSE_KEY);
    h.update(&size.to_le_bytes());
    let mut buf = vec![0u8; BLOCK as usize];
    let mut next = 0; // the first block not yet visited
    for &(start, end) in ranges {
        for i in (start / BLOCK).max(next)..end.min(size).div_ceil(BLOCK) {
            let block = read_block(file, size, i, &mut buf)?;
            if !all_zero(block) {
                h.update(&i.to_le_bytes());
                h.update(block);
            }
            next = i + 1;
        }
    }
    Ok(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, Instant};

    use proptest::prelude::*;

    use super::*;

    /// The content hash's definition, from the bytes alone.
    fn reference_hash(content: &[u8]) -> [u8; 32] {
        let blocks: Vec<&[u8]> = content.chunks(BLOCK as usize).collect();
        if !blocks.iter().any(|b| all_zero(b)) {
            return *blake3::hash(content).as_bytes();
        }
        let mut h = blake3::Hasher::new_derive_key(SPARSE_KEY);
        h.update(&(content.len() as u64).to_le_bytes());
        for (i, b) in blocks.iter().enumerate() {
            if !all_zero(b) {
                h.update(&(i as u64).to_le_bytes());
                h.update(b);
            }
        }
        *h.finalize().as_bytes()
    }

    /// Rolling back or comparing a 1 TiB file of holes hashed 1 TiB of zeros
    /// (it did not finish in 120 s); its cost now follows its data.
    #[test]
    fn a_one_tib_sparse_file_hashes_at_the_cost_of_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let f = File::options().read(true).write(true).create_new(true).open(dir.path().join("huge")).unwrap();
        f.set_len(1 << 40).unwrap();
        f.write_all_at(b"data", 1 << 39).unwrap();
        let t = Instant::now();
        let h = hash_file(&f, 1 << 40).unwrap();
        assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
        // Another layout of the same content: the data block written out in
        // full (zeros and all) and a different hole: the same hash.
        let g = File::options().read(true).write(true).create_new(true).open(dir.path().join("same")).unwrap();
        g.set_len(1 << 40).unwrap();
        let mut block = vec![0u8; 2 * BLOCK as usize];
        block[BLOCK as usize..BLOCK as usize + 4].copy_from_slice(b"data");
        g.write_all_at(&block, (1 << 39) - BLOCK).unwrap();
        assert_eq!(hash_file(&g, 1 << 40).unwrap(), h);
        g.write_all_at(b"x", 5).unwrap();
        assert_ne!(hash_file(&g, 1 << 40).unwrap(), h);
    }

    /// A file made of pieces at offsets (written over a file of holes).
    fn layout() -> impl Strategy<Value = (u64, Vec<(u64, Vec<u8>)>)> {
        let piece = (
            0..5 * BLOCK,
            prop_oneof![
                prop::collection::vec(any::<u8>(), 1..300),
                (1..2 * BLOCK as usize).prop_map(|n| vec![0u8; n]),
                (1..BLOCK as usize, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
            ],
        );
        (0..6 * BLOCK, prop::collection::vec(piece, 0..5))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        /// Whatever the holes, the hash is the definition's over the bytes:
        /// plain BLAKE3 where no block is all zeros.
        #[test]
        fn hash_is_a_function_of_the_bytes_alone((len, pieces) in layout()) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            let f = File::options().read(true).write(true).create_new(true).open(&path).unwrap();
            f.set_len(len).unwrap();
            for (off, bytes) in &pieces {
                f.write_all_at(bytes, *off).unwrap();
            }
            let content = fs_err::read(&path).unwrap();
            prop_assert_eq!(hash_file(&f, content.len() as u64).unwrap(), reference_hash(&content));
            // And the sparse copy hashes alike.
            let copy = File::options().read(true).write(true).create_new(true).open(dir.path().join("c")).unwrap();
            copy_sparse(&f, &copy, content.len() as u64).unwrap();
            prop_assert_eq!(hash_file(&copy, content.len() as u64).unwrap(), reference_hash(&content));
        }
    }

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
        assert_eq!(hash_file(&dst, 64 << 20).unwrap(), reference_hash(&plain));
        assert_eq!(hash_file(&src, 64 << 20).unwrap(), reference_hash(&plain));
        use std::os::unix::fs::MetadataExt;
        let blocks = dst.metadata().unwrap().blocks();
        assert!(blocks * 512 < 4 << 20, "copy is not sparse: {blocks} blocks");
    }
}
