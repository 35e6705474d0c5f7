//! The benchmark tree: many small text files in many directories plus a few
//! large files of real (incompressible, fully written) data, committed to git.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::util::{Env, Result, check_interrupted, run};

#[derive(Debug, Clone, Copy)]
pub struct TreeSpec {
    /// Top-level directories; each holds `sub_dirs` directories of `files_per_dir` files.
    pub top_dirs: usize,
    pub sub_dirs: usize,
    pub files_per_dir: usize,
    pub big_files: usize,
    pub big_size: u64,
}

impl TreeSpec {
    pub fn full() -> TreeSpec {
        TreeSpec { top_dirs: 40, sub_dirs: 100, files_per_dir: 5, big_files: 3, big_size: 200 << 20 }
    }

    pub fn quick() -> TreeSpec {
        TreeSpec { top_dirs: 20, sub_dirs: 20, files_per_dir: 5, big_files: 3, big_size: 20 << 20 }
    }

    pub fn small_files(&self) -> usize {
        self.top_dirs * self.sub_dirs * self.files_per_dir
    }

    pub fn dirs(&self) -> usize {
        self.top_dirs * (self.sub_dirs + 1)
    }
}

#[derive(Debug)]
pub struct Tree {
    pub root: PathBuf,
    /// Small files, relative to `root`, in creation order.
    pub small_files: Vec<String>,
    pub bytes: u64,
}

impl Tree {
    /// `n` small files spread evenly over the tree.
    pub fn spread(&self, n: usize) -> Vec<String> {
        let step = (self.small_files.len() / n.max(1)).max(1);
        self.small_files.iter().step_by(step).take(n).cloned().collect()
    }
}

/// xorshift64: deterministic, fast, good enough for file content.
#[derive(Debug)]
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Source-like text: lowercase words, punctuation and newlines.
    fn fill_text(&mut self, buf: &mut [u8]) {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz    etaoin_(){};=.,";
        for chunk in buf.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            for (b, r) in chunk.iter_mut().zip(r) {
                *b = if r < 4 { b'\n' } else { ALPHABET[usize::from(r) % ALPHABET.len()] };
            }
        }
    }

    fn fill_bytes(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

pub fn build(root: &Path, spec: &TreeSpec) -> Result<Tree> {
    fs_err::create_dir(root)?;
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut small_files = Vec::with_capacity(spec.small_files());
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 8192];
    for t in 0..spec.top_dirs {
        check_interrupted()?;
        let top = format!("p{t:03}");
        fs_err::create_dir(root.join(&top))?;
        for s in 0..spec.sub_dirs {
            let sub = format!("{top}/d{s:03}");
            fs_err::create_dir(root.join(&sub))?;
            for f in 0..spec.files_per_dir {
                let rel = format!("{sub}/f{f}.txt");
                let len = usize::try_from(200 + rng.below(8192 - 200 + 1)).unwrap_or(8192);
                let content = &mut buf[..len];
                rng.fill_text(content);
                fs_err::write(root.join(&rel), &*content)?;
                bytes += len as u64;
                small_files.push(rel);
            }
        }
    }
    let mut chunk = vec![0u8; 1 << 20];
    for i in 0..spec.big_files {
        let path = root.join(format!("big-{i}.bin"));
        let mut file = fs_err::File::create(&path)?;
        let mut left = spec.big_size;
        while left > 0 {
            check_interrupted()?;
            let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
            rng.fill_bytes(&mut chunk[..n]);
            file.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        file.sync_all()?;
        bytes += spec.big_size;
    }
    Ok(Tree { root: root.to_path_buf(), small_files, bytes })
}

/// `git init`, commits everything, and packs the repository.
pub fn commit(tree: &Tree, env: &Env) -> Result<()> {
    let git = |args: &[&str]| {
        let mut c = env.command("git", &tree.root);
        c.args(["-c", "user.name=ws-bench", "-c", "user.email=ws-bench@example.invalid", "-c", "commit.gpgsign=false"]);
        c.args(args);
        run(&mut c).map(|_| ())
    };
    git(&["init", "-q", "-b", "main"])?;
    // No automatic gc or maintenance: after a commit of this many loose
    // objects git would start one in the background, which would compete
    // with the timings (and hold the mount busy).
    git(&["config", "gc.auto", "0"])?;
    git(&["config", "maintenance.auto", "false"])?;
    git(&["add", "-A"])?;
    git(&["commit", "-q", "-m", "ws-bench tree"])?;
    // Packed, as a real repository is.
    git(&["gc", "-q"])?;
    Ok(())
}
