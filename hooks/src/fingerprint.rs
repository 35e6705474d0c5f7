//! Secret fingerprints: enough to recognise a secret in staged content, not
//! enough to recover it.
//!
//! A [`Fingerprint`] keeps a secret's length, a salted BLAKE3 of it, and the
//! top 32 bits of a polynomial rolling hash. [`scan`] slides a window of each
//! distinct length over the content, compares the rolling value (one multiply
//! and add per byte and length), and confirms the rare prefilter hits with
//! the salted BLAKE3. The salt (random per fingerprint) keeps precomputed
//! tables of common secrets useless against the file; the 32-bit prefilter
//! is too short to identify a secret on its own.
//!
//! Secrets shorter than [`MIN_SCANNED_LEN`] bytes are never reported: they
//! would match ordinary text. [`Fingerprint::scannable`] tells the caller, so
//! it can warn when such a secret is stored.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The shortest secret the scanner looks for.
pub const MIN_SCANNED_LEN: usize = 8;

/// An odd 64-bit multiplier (the FNV prime): the rolling hash is
/// `Σ byte[i] · BASE^(len-1-i)` modulo 2^64.
const BASE: u64 = 0x0000_0100_0000_01b3;

const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// What the secret is called (`ws secret set NAME`, or the session whose
    /// phantom token it is): the only thing a refusal shows.
    pub name: String,
    pub len: usize,
    /// Top 32 bits of the rolling hash of the secret.
    pub prefilter: u32,
    #[serde(with = "hex32")]
    pub salt: [u8; 32],
    /// `blake3::keyed_hash(salt, secret)`.
    #[serde(with = "hex32")]
    pub blake3: [u8; 32],
}

impl Fingerprint {
    /// Fingerprints `secret` under `name`, with a fresh random salt.
    pub fn of(name: &str, secret: &[u8]) -> Fingerprint {
        let mut salt = [0u8; 32];
        if rustix::rand::getrandom(&mut salt, rustix::rand::GetRandomFlags::empty()).is_err() {
            // No getrandom(2): a salt unique to this moment still defeats tables.
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            salt = *blake3::hash(&now.as_nanos().to_le_bytes()).as_bytes();
        }
        Fingerprint::with_salt(name, secret, salt)
    }

    /// Fingerprints `secret` with a given salt (reproducible: for tests).
    pub fn with_salt(name: &str, secret: &[u8], salt: [u8; 32]) -> Fingerprint {
        Fingerprint {
            name: name.to_owned(),
            len: secret.len(),
            prefilter: prefilter(rolling(secret)),
            salt,
            blake3: *blake3::keyed_hash(&salt, secret).as_bytes(),
        }
    }

    /// Whether [`scan`] looks for this secret (it is long enough).
    pub fn scannable(&self) -> bool {
        self.len >= MIN_SCANNED_LEN
    }

    fn matches(&self, window: &[u8]) -> bool {
        window.len() == self.len && blake3::keyed_hash(&self.salt, window).as_bytes() == &self.blake3
    }
}

fn rolling(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |h, &b| h.wrapping_mul(BASE).wrapping_add(u64::from(b)))
}

fn prefilter(h: u64) -> u32 {
    (h >> 32) as u32
}

/// One secret found in content: the first place it occurs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found<'a> {
    pub fingerprint: &'a Fingerprint,
    /// Byte offset of its first occurrence.
    pub offset: usize,
}

/// The fingerprints whose secret occurs in `content`, each once, in the order
/// of `fps`.
pub fn scan<'a>(content: &[u8], fps: &'a [Fingerprint]) -> Vec<&'a Fingerprint> {
    find(content, fps).into_iter().map(|f| f.fingerprint).collect()
}

/// Like [`scan`], with where each secret first occurs (to name a line).
pub fn find<'a>(content: &[u8], fps: &'a [Fingerprint]) -> Vec<Found<'a>> {
    let mut by_len: BTreeMap<usize, Vec<(usize, &Fingerprint)>> = BTreeMap::new();
    for (i, fp) in fps.iter().enumerate() {
        if fp.scannable() && fp.len <= content.len() {
            by_len.entry(fp.len).or_default().push((i, fp));
        }
    }
    let mut found: Vec<(usize, Found<'a>)> = Vec::new();
    for (len, mut left) in by_len {
        left.sort_by_key(|(_, fp)| fp.prefilter);
        // BASE^(len-1): the weight of the byte leaving the window.
        let top = (1..len).fold(1u64, |p, _| p.wrapping_mul(BASE));
        let mut h = rolling(&content[..len]);
        let mut start = 0;
        loop {
            let p = prefilter(h);
            let first = left.partition_point(|(_, fp)| fp.prefilter < p);
            if left.get(first).is_some_and(|(_, fp)| fp.prefilter == p) {
                let window = &content[start..start + len];
                let mut k = first;
                while k < left.len() && left[k].1.prefilter == p {
                    if left[k].1.matches(window) {
                        let (i, fp) = left.remove(k);
                        found.push((i, Found { fingerprint: fp, offset: start }));
                    } else {
                        k += 1;
                    }
                }
                if left.is_empty() {
                    break;
                }
            }
            if start + len >= content.len() {
                break;
            }
            let out = u64::from(content[start]);
            let inc = u64::from(content[start + len]);
            h = h.wrapping_sub(out.wrapping_mul(top)).wrapping_mul(BASE).wrapping_add(inc);
            start += 1;
        }
    }
    found.sort_by_key(|(i, _)| *i);
    found.into_iter().map(|(_, f)| f).collect()
}

/// [`find`] over content that arrives in pieces: the same secrets, each
/// with the line it first occurs on, holding only a piece and the longest
/// secret's length of what came before.
pub(crate) struct Scanner<'a> {
    fps: &'a [Fingerprint],
    keep: usize,
    window: Vec<u8>,
    newlines_before: usize,
    found: Vec<(&'a Fingerprint, usize)>,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(fps: &'a [Fingerprint]) -> Scanner<'a> {
        let longest = fps.iter().filter(|f| f.scannable()).map(|f| f.len).max().unwrap_or(1);
        Scanner { fps, keep: longest - 1, window: Vec::new(), newlines_before: 0, found: Vec::new() }
    }

    pub(crate) fn feed(&mut self, piece: &[u8]) {
        if self.fps.is_empty() {
            return;
        }
        self.window.extend_from_slice(piece);
        for f in find(&self.window, self.fps) {
            if !self.found.iter().any(|(fp, _)| std::ptr::eq(*fp, f.fingerprint)) {
                let line = self.newlines_before + self.window[..f.offset].iter().filter(|&&b| b == b'\n').count() + 1;
                self.found.push((f.fingerprint, line));
            }
        }
        // Any occurrence not yet seen ends in what is kept.
        let drop = self.window.len().saturating_sub(self.keep);
        self.newlines_before += self.window[..drop].iter().filter(|&&b| b == b'\n').count();
        self.window.drain(..drop);
    }

    pub(crate) fn finish(self) -> Vec<(&'a Fingerprint, usize)> {
        self.found
    }
}

/// The fingerprints of stored secrets, as kept on disk (JSON, mode 0600).
/// The caller chooses the path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FingerprintFile {
    version: u32,
    pub fingerprints: Vec<Fingerprint>,
}

impl Default for FingerprintFile {
    fn default() -> Self {
        FingerprintFile { version: FORMAT_VERSION, fingerprints: Vec::new() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FingerprintFileError {
    #[error("cannot read the secret fingerprints in {path}")]
    Read { path: PathBuf, source: io::Error },
    #[error("the secret fingerprints in {path} are damaged: {what}")]
    Parse { path: PathBuf, what: String },
    #[error("cannot write the secret fingerprints to {path}")]
    Write { path: PathBuf, source: io::Error },
}

impl FingerprintFile {
    /// Reads the file at `path`; a file that does not exist holds no fingerprints.
    pub fn load(path: &Path) -> Result<FingerprintFile, FingerprintFileError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(FingerprintFile::default()),
            Err(source) => return Err(FingerprintFileError::Read { path: path.to_path_buf(), source }),
        };
        let file: FingerprintFile = serde_json::from_slice(&bytes)
            .map_err(|e| FingerprintFileError::Parse { path: path.to_path_buf(), what: e.to_string() })?;
        if file.version != FORMAT_VERSION {
            return Err(FingerprintFileError::Parse {
                path: path.to_path_buf(),
                what: format!("format version {} is not the supported {FORMAT_VERSION}", file.version),
            });
        }
        Ok(file)
    }

    /// Adds `fp`, replacing a fingerprint of the same name.
    pub fn add(&mut self, fp: Fingerprint) {
        self.remove(&fp.name);
        self.fingerprints.push(fp);
    }

    /// Removes the fingerprint named `name`; false if there was none.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.fingerprints.len();
        self.fingerprints.retain(|f| f.name != name);
        self.fingerprints.len() != before
    }

    /// Writes the file so that a crash leaves the old or the new version;
    /// creates its directory (mode 0700) if needed.
    pub fn save(&self, path: &Path) -> Result<(), FingerprintFileError> {
        let err = |source| FingerprintFileError::Write { path: path.to_path_buf(), source };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(err)?;
        let json = serde_json::to_vec_pretty(self).map_err(|e| err(e.into()))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let write = || -> io::Result<()> {
            let mut f = std::fs::File::options().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            f.write_all(&json)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e)
        })
    }
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&hex)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut out = [0u8; 32];
        if s.len() != 64 {
            return Err(serde::de::Error::custom("expected 64 hex digits"));
        }
        for (i, pair) in s.as_bytes().chunks(2).enumerate() {
            match (digit(pair[0]), digit(pair[1])) {
                (Some(h), Some(l)) => out[i] = h << 4 | l,
                _ => return Err(serde::de::Error::custom("expected 64 hex digits")),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(name: &str, secret: &[u8]) -> Fingerprint {
        Fingerprint::of(name, secret)
    }

    /// Deterministic pseudo-random bytes (xorshift64).
    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn names<'a>(found: &[&'a Fingerprint]) -> Vec<&'a str> {
        found.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn finds_a_secret_at_the_start_the_end_the_middle_and_as_the_whole_content() {
        let secret = b"sk-ant-0123456789abcdef";
        let fps = [fp("KEY", secret)];
        let pad = b"some ordinary text\n";
        let cases: Vec<(Vec<u8>, usize)> = vec![
            ([&secret[..], pad].concat(), 0),
            ([&pad[..], secret].concat(), pad.len()),
            ([&pad[..], secret, pad].concat(), pad.len()),
            (secret.to_vec(), 0),
        ];
        for (content, at) in cases {
            let found = find(&content, &fps);
            assert_eq!(found.len(), 1, "{content:?}");
            assert_eq!(found[0].offset, at);
        }
    }

    #[test]
    fn a_secret_cut_short_or_altered_is_not_found() {
        let secret = b"correct-horse-battery-staple";
        let fps = [fp("PW", secret)];
        assert_eq!(scan(secret, &fps).len(), 1, "positive control");
        assert!(scan(&secret[..secret.len() - 1], &fps).is_empty());
        assert!(scan(&secret[1..], &fps).is_empty());
        let mut altered = secret.to_vec();
        altered[10] ^= 1;
        assert!(scan(&altered, &fps).is_empty());
        assert!(scan(b"", &fps).is_empty());
    }

    #[test]
    fn straddling_every_position_of_a_large_buffer() {
        // The secret at each offset around the buffer's edges and in between,
        // so the rolling window is checked at every step where it can be.
        let secret = noise(40, 7);
        let fps = [fp("RANDOM", &secret)];
        let base = noise(300, 99);
        for at in 0..=base.len() - secret.len() {
            let mut content = base.clone();
            content[at..at + secret.len()].copy_from_slice(&secret);
            let found = find(&content, &fps);
            assert_eq!(found.len(), 1, "secret at {at} not found");
            assert_eq!(found[0].offset, at);
        }
        assert!(scan(&base, &fps).is_empty(), "the noise itself holds no secret");
    }

    #[test]
    fn several_lengths_and_binary_secrets_in_binary_content() {
        let secrets: Vec<Vec<u8>> = vec![
            b"abcdefgh".to_vec(), // the shortest scanned
            noise(16, 1),         // binary, may hold NUL and newlines
            noise(33, 2),         // odd length
            vec![0u8; 64],        // all zero bytes
            noise(4096, 3),       // a key file
            b"ghp_0123456789ABCDEFGHIJKLMNOPQRSTUVWXyz".to_vec(),
        ];
        let fps: Vec<Fingerprint> = secrets.iter().enumerate().map(|(i, s)| fp(&format!("S{i}"), s)).collect();
        let mut content = noise(10_000, 42);
        let mut at = 17;
        for s in &secrets {
            content.splice(at..at, s.iter().copied());
            at += s.len() + 523;
        }
        let found = scan(&content, &fps);
        assert_eq!(names(&found), ["S0", "S1", "S2", "S3", "S4", "S5"]);
        // Each alone, and none in the content without them.
        for (i, s) in secrets.iter().enumerate() {
            let one = scan(s, &fps);
            assert!(names(&one).contains(&format!("S{i}").as_str()), "S{i} alone");
        }
        assert!(scan(&noise(10_000, 42), &fps).is_empty());
    }

    #[test]
    fn agrees_with_a_naive_search_on_near_miss_content() {
        // A two-letter alphabet makes partial matches everywhere: every
        // window the rolling hash gets wrong would show up as a difference.
        let mut seed = 1u64;
        for round in 0..300 {
            seed += 1;
            let bits = noise(600, seed * 7919);
            let content: Vec<u8> = bits.iter().map(|b| b"ab"[usize::from(b & 1)]).collect();
            let secrets: Vec<Vec<u8>> = (0..4)
                .map(|k| {
                    let len = MIN_SCANNED_LEN + usize::from(bits[k] % 9);
                    let at = usize::from(bits[k + 4]) % (content.len() - len);
                    if k % 2 == 0 { content[at..at + len].to_vec() } else { noise(len, seed + k as u64) }
                })
                .collect();
            let fps: Vec<Fingerprint> = secrets.iter().enumerate().map(|(k, s)| fp(&format!("S{k}"), s)).collect();
            let got: Vec<(String, usize)> =
                find(&content, &fps).iter().map(|f| (f.fingerprint.name.clone(), f.offset)).collect();
            let want: Vec<(String, usize)> = secrets
                .iter()
                .enumerate()
                .filter_map(|(k, s)| content.windows(s.len()).position(|w| w == &s[..]).map(|at| (format!("S{k}"), at)))
                .collect();
            assert_eq!(got, want, "round {round}");
        }
    }

    #[test]
    fn same_length_secrets_and_repeats_are_each_reported_once() {
        let a = b"AAAAAAAAAAAAAAAA1";
        let b = b"BBBBBBBBBBBBBBBB2";
        let fps = [fp("A", a), fp("B", b), fp("A-again", a)];
        let content = [&b[..], b"..", a, b"..", a, b].concat();
        let found = find(&content, &fps);
        let got: Vec<(&str, usize)> = found.iter().map(|f| (f.fingerprint.name.as_str(), f.offset)).collect();
        assert_eq!(got, [("A", b.len() + 2), ("B", 0), ("A-again", b.len() + 2)]);
    }

    #[test]
    fn secrets_too_short_to_scan_are_skipped() {
        let fps = [fp("PIN", b"1234"), fp("EMPTY", b""), fp("LONG", b"12345678")];
        assert!(!fps[0].scannable() && !fps[1].scannable() && fps[2].scannable());
        assert_eq!(names(&scan(b"x 12345678 y", &fps)), ["LONG"]);
        assert!(scan(b"1234", &fps).is_empty());
    }

    #[test]
    fn a_prefilter_collision_is_confirmed_by_blake3() {
        // Same length and same prefilter, different bytes: must not match.
        let real = fp("REAL", b"0123456789abcdef");
        let mut forged = Fingerprint::with_salt("FORGED", b"fedcba9876543210", real.salt);
        forged.prefilter = real.prefilter;
        let fps = [forged];
        assert!(scan(b"0123456789abcdef", &fps).is_empty());
    }

    #[test]
    fn salts_differ_and_the_file_never_holds_the_secret() {
        let secret = b"hunter2-is-not-a-good-password";
        let (a, b) = (fp("X", secret), fp("X", secret));
        assert_ne!(a.salt, b.salt);
        assert_ne!(a.blake3, b.blake3);
        assert_eq!(scan(secret, std::slice::from_ref(&a)).len(), 1);
        let json = serde_json::to_string(&a).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
    }

    #[test]
    fn file_round_trip_add_replace_remove() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/ws/secret-fingerprints.json");
        let mut f = FingerprintFile::load(&path).unwrap();
        assert!(f.fingerprints.is_empty(), "a missing file holds nothing");
        f.add(fp("ONE", b"first-secret-value"));
        f.add(fp("TWO", b"second-secret-value"));
        f.add(fp("ONE", b"first-secret-rotated"));
        f.save(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let mut g = FingerprintFile::load(&path).unwrap();
        assert_eq!(g, f);
        assert_eq!(g.fingerprints.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["TWO", "ONE"]);
        assert_eq!(scan(b"..first-secret-rotated..", &g.fingerprints).len(), 1);
        assert!(scan(b"..first-secret-value..", &g.fingerprints).is_empty());
        assert!(g.remove("TWO"));
        assert!(!g.remove("TWO"));
        g.save(&path).unwrap();
        assert_eq!(FingerprintFile::load(&path).unwrap().fingerprints.len(), 1);
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left");
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fp.json");
        std::fs::write(&path, "{not json").unwrap();
        let e = FingerprintFile::load(&path).unwrap_err();
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    }

    #[test]
    fn large_content_scans_quickly() {
        let fps: Vec<Fingerprint> = (0..8).map(|i| fp(&format!("K{i}"), &noise(20 + i * 7, i as u64 + 100))).collect();
        let content = noise(4 << 20, 11);
        let t = std::time::Instant::now();
        assert!(scan(&content, &fps).is_empty());
        // 8 lengths × 4 MiB; generous for an unoptimised debug build.
        assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
    }
}
