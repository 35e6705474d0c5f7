//! The git hooks against what a session leaves in the repository: each
//! attack runs inside `ws session start` as an agent would, then the
//! reviewer commits (or runs the hook) on the host.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use ws_testkit::pack_entry_header;

use crate::harness::*;

#[track_caller]
fn git_ok(env: &Env, dir: &Path, args: &[&str]) -> String {
    env.git(dir, args).ok().stdout
}

fn repo(env: &Env, name: &str) -> PathBuf {
    let dir = env.dir(name);
    git_ok(env, &dir, &["init", "-q"]);
    write(dir.join("base.txt"), "base\n");
    write(dir.join("src/app.txt"), "good\n");
    git_ok(env, &dir, &["add", "-A"]);
    git_ok(env, &dir, &["commit", "-q", "-m", "base"]);
    env.ws(&dir, &["hooks", "install"]).ok();
    dir
}

fn session_id(out: &Out) -> String {
    let line = out.stderr.lines().find_map(|l| l.strip_prefix("ws: session ")).expect("session summary");
    line.split(':').next().unwrap().to_owned()
}

/// A shell command writing exactly `bytes` to `path` (every byte an octal
/// escape, so any byte survives the script).
fn printf_to(bytes: &[u8], path: &str) -> String {
    let escaped: String = bytes.iter().map(|b| format!("\\{b:03o}")).collect();
    format!("printf '{escaped}' > {path}")
}

/// `ws hooks run pre-commit`, as the pre-commit framework runs it, which
/// must answer within `limit`.
#[track_caller]
fn hook_within(env: &Env, ws: &Path, limit: Duration) -> Out {
    let started = Instant::now();
    let out = env.ws(ws, &["hooks", "run", "pre-commit"]);
    assert!(started.elapsed() < limit, "{:?}: {out:?}", started.elapsed());
    assert!(out.code != 0 && out.code != 134, "{out:?}");
    out
}

/// The positive control of an attack on the object store: without it, the
/// hook answers, and refuses the agent's unreviewed `agent.txt`.
#[track_caller]
fn hook_refuses_the_agents_file(env: &Env, ws: &Path) {
    let out = env.ws(ws, &["hooks", "run", "pre-commit"]);
    assert!(out.code == 1 && out.stderr.contains("agent.txt (session"), "{out:?}");
}

#[test]
fn planted_trailer_symlinks_beside_the_index_leave_the_outside_file_untouched() {
    // Outside /tmp, so the session itself cannot write the file.
    let env = Env::protected();
    let ws = repo(&env, "repo");
    let outside = env.dir("outside").join("precious.txt");
    write(&outside, "precious\n");
    // The PIDs the next processes on this machine will get: the hook is one.
    let last: u64 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid").unwrap().trim().parse().unwrap();
    let script = format!(
        "perl -e 'for my $p ({}..{}) {{ symlink($ARGV[0], \".git/ws-trailers.tmp-$p\") or die \"$p: $!\" }} \
         symlink($ARGV[0], \".git/ws-trailers\") or die' {}",
        last,
        last + 60_000,
        outside.display()
    );
    env.session(&ws, &script).ok();
    assert!(std::fs::symlink_metadata(ws.join(".git/ws-trailers")).unwrap().file_type().is_symlink(), "planted");

    write(ws.join("mine.txt"), "mine\n");
    git_ok(&env, &ws, &["add", "mine.txt"]);
    env.commit(&ws, "mine").ok();
    let msg = git_ok(&env, &ws, &["log", "-1", "--format=%B"]);
    assert_eq!(msg.trim(), "mine", "nothing read from the outside file");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious\n", "the outside file is untouched");
    assert!(!std::fs::symlink_metadata(ws.join(".git/ws-trailers")).is_ok_and(|m| m.file_type().is_symlink()));
    // A second commit, with the handoff symlinks still planted beside it.
    write(ws.join("mine.txt"), "mine again\n");
    git_ok(&env, &ws, &["add", "mine.txt"]);
    env.commit(&ws, "again").ok();
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious\n");
}

#[test]
fn a_path_rolled_back_while_the_agent_had_staged_it_is_refused_with_the_fix() {
    let env = Env::new();
    let ws = repo(&env, "repo");
    let out = env.session(&ws, "echo evil > base.txt && git add base.txt").ok();
    let id = session_id(&out);
    // Positive control: pending, the staged agent version is refused as unreviewed.
    write(ws.join("mine.txt"), "mine\n");
    git_ok(&env, &ws, &["add", "mine.txt"]);
    let refused = env.commit(&ws, "pending");
    assert!(refused.code != 0 && refused.stderr.contains("not reviewed yet"), "{refused:?}");

    env.ws(&ws, &["rollback", "base.txt"]).ok();
    assert_eq!(std::fs::read_to_string(ws.join("base.txt")).unwrap(), "base\n", "rolled back on disk");
    assert!(git_ok(&env, &ws, &["diff", "--cached", "--name-only"]).contains("base.txt"), "still staged");
    let before = git_ok(&env, &ws, &["rev-parse", "HEAD"]);
    let refused = env.commit(&ws, "after rollback");
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(refused.stderr.contains("rolled back"), "{}", refused.stderr);
    assert!(refused.stderr.contains(&format!("  base.txt (session {id})")), "{}", refused.stderr);
    assert!(refused.stderr.contains("git restore --staged base.txt"), "{}", refused.stderr);
    assert_eq!(git_ok(&env, &ws, &["rev-parse", "HEAD"]), before, "nothing committed");

    git_ok(&env, &ws, &["restore", "--staged", "base.txt"]);
    env.commit(&ws, "mine").ok();
    let committed = git_ok(&env, &ws, &["show", "HEAD:base.txt"]);
    assert_eq!(committed, "base\n");
}

/// The agent writes its own src/ tree to the store and makes the index's
/// cache tree name it, with the entries (what `git diff --cached` shows)
/// left as they were.
const FORGE_CACHE_TREE: &str = r#"set -e
echo evil > src/app.txt
git add src/app.txt
root=$(git write-tree)
evil=$(git rev-parse "$root:src")
git checkout -q HEAD -- src/app.txt
git read-tree HEAD
perl -MDigest::SHA=sha1 -e '
  open my $f, "<", ".git/index" or die; binmode $f; local $/; my $b = <$f>; close $f;
  $b = substr($b, 0, -20);
  my $at = rindex($b, "TREE");
  my $evil = pack("H*", $ARGV[0]);
  (substr($b, $at) =~ s/(src\0-?\d+ \d+\n).{20}/$1$evil/s) or die "no src node";
  open $f, ">", ".git/index" or die; binmode $f; print $f $b, sha1($b); close $f;
' "$evil"
"#;

#[test]
fn a_forged_cache_tree_committing_code_nobody_staged_is_refused() {
    let env = Env::new();
    let ws = repo(&env, "repo");
    env.session(&ws, FORGE_CACHE_TREE).ok();
    assert_eq!(std::fs::read_to_string(ws.join("src/app.txt")).unwrap(), "good\n");
    write(ws.join("mine.txt"), "mine\n");
    git_ok(&env, &ws, &["add", "mine.txt"]);
    // Positive control: git would commit the agent's src/app.txt, which
    // neither `git status` nor `git diff --cached` shows.
    assert!(!git_ok(&env, &ws, &["diff", "--cached", "--name-only"]).contains("src/app.txt"));
    let tree = git_ok(&env, &ws, &["write-tree"]);
    assert_eq!(git_ok(&env, &ws, &["cat-file", "-p", &format!("{}:src/app.txt", tree.trim())]), "evil\n");

    let before = git_ok(&env, &ws, &["rev-parse", "HEAD"]);
    let refused = env.commit(&ws, "mine");
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(refused.stderr.contains("cache tree would commit src/app.txt"), "{}", refused.stderr);
    assert!(refused.stderr.contains("git read-tree HEAD"), "{}", refused.stderr);
    assert_eq!(git_ok(&env, &ws, &["rev-parse", "HEAD"]), before);
    // The fix the hint gives.
    git_ok(&env, &ws, &["read-tree", "HEAD"]);
    git_ok(&env, &ws, &["add", "mine.txt"]);
    env.commit(&ws, "mine").ok();
    assert_eq!(git_ok(&env, &ws, &["show", "HEAD:src/app.txt"]), "good\n");
}

/// `data` as a zlib stream of one stored (uncompressed) block.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let len = data.len() as u16;
    let mut out = vec![0x78, 0x01, 0x01];
    out.extend(len.to_le_bytes());
    out.extend((!len).to_le_bytes());
    out.extend(data);
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    out.extend(((b << 16) | a).to_be_bytes());
    out
}

/// A pack (and its index) whose one entry, object `oid`, is a REF_DELTA on
/// itself.
fn self_delta_pack(oid: [u8; 20]) -> (Vec<u8>, Vec<u8>) {
    let delta = [5u8, 5, 5, b'h', b'e', b'l', b'l', b'o'];
    let zlib = zlib_stored(&delta);
    let mut pack = b"PACK\0\0\0\x02\0\0\0\x01".to_vec();
    pack.extend(pack_entry_header(7, delta.len() as u64));
    pack.extend(oid);
    pack.extend(zlib);
    pack.extend([0; 20]);
    let mut idx = vec![0xff, b't', b'O', b'c', 0, 0, 0, 2];
    for b in 0..=255u8 {
        idx.extend(u32::from(b >= oid[0]).to_be_bytes());
    }
    idx.extend(oid);
    idx.extend([0; 4]);
    idx.extend(12u32.to_be_bytes());
    idx.extend([0; 40]);
    (pack, idx)
}

#[test]
fn a_delta_cycle_pack_makes_the_hook_refuse_promptly_not_abort() {
    let env = Env::new();
    let ws = repo(&env, "repo");
    let head = git_ok(&env, &ws, &["rev-parse", "HEAD"]);
    let mut oid = [0u8; 20];
    for (o, pair) in oid.iter_mut().zip(head.trim().as_bytes().chunks(2)) {
        *o = u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap();
    }
    let (pack, idx) = self_delta_pack(oid);
    // Staged by the agent too, so that the hook has something to examine.
    let script = format!(
        "echo agent > agent.txt && git add agent.txt && {} && {}",
        printf_to(&pack, ".git/objects/pack/pack-evil.pack"),
        printf_to(&idx, ".git/objects/pack/pack-evil.idx")
    );
    let out = env.session(&ws, &script).ok();
    // The session's end verifies the packs it left: git cannot read this
    // one (`git show` of the object would spin forever), so the session's
    // changes under .git/objects/pack are rolled back, said and recorded.
    assert!(!ws.join(".git/objects/pack/pack-evil.pack").exists(), "{out:?}");
    assert!(out.stderr.contains("a pack git cannot read") && out.stderr.contains("pack-evil.pack"), "{out:?}");
    let log = env.ws(&ws, &["log"]).ok().stdout;
    assert!(log.contains("unreadable pack"), "{log}");
    let show = std::process::Command::new("timeout")
        .args(["10", "git", "cat-file", "-t", head.trim()])
        .current_dir(&ws)
        .output()
        .unwrap();
    assert_eq!(show.status.code(), Some(0), "git reads HEAD again: {show:?}");
    // Control: a pack git wrote itself in a session (`git gc`) is kept.
    let other = repo(&env, "repo2");
    let out = env.session(&other, "git gc -q && ls .git/objects/pack | grep -c '\\.pack$'").ok();
    assert!(!out.stderr.contains("cannot read"), "{out:?}");
    assert!(out.stdout.trim().parse::<u32>().unwrap() >= 1, "{out:?}");
    let packs = std::fs::read_dir(other.join(".git/objects/pack")).unwrap().flatten();
    assert!(packs.filter(|e| e.file_name().to_string_lossy().ends_with(".pack")).count() >= 1);

    // Were such a pack left anyway (more than the verification budget, a
    // pack planted outside a session), the hook must still answer: git
    // itself loops on it (`git commit` never reaches the hook), so the hook
    // is run as the pre-commit framework runs it.
    std::fs::write(ws.join(".git/objects/pack/pack-evil.pack"), &pack).unwrap();
    std::fs::write(ws.join(".git/objects/pack/pack-evil.idx"), &idx).unwrap();
    env.session(&ws, "echo agent > agent.txt && git add agent.txt").ok();
    let out = hook_within(&env, &ws, Duration::from_secs(20));
    assert!(out.stderr.contains("pack-evil.pack") && out.stderr.contains("cycle"), "{}", out.stderr);
    assert!(out.stderr.contains("remove what it names"), "{}", out.stderr);
    std::fs::remove_file(ws.join(".git/objects/pack/pack-evil.pack")).unwrap();
    std::fs::remove_file(ws.join(".git/objects/pack/pack-evil.idx")).unwrap();
    hook_refuses_the_agents_file(&env, &ws);
}

/// A pack index the agent leaves claiming 2^31 objects, all holes (60 GB
/// long, nothing on disk): `gix-odb` reads every offset of an index when it
/// opens it (7.7 s for this one), so the hook refuses it by name first. Its
/// pack is 2 GiB of holes too, more than the session's end verifies.
#[test]
fn a_sparse_pack_index_left_by_the_agent_is_refused_by_name_at_once() {
    let env = Env::new();
    let ws = repo(&env, "repo");
    let total: u64 = 1 << 31;
    let mut head = vec![0xff, b't', b'O', b'c', 0, 0, 0, 2];
    for b in 0..256u32 {
        head.extend_from_slice(&(if b == 255 { total as u32 } else { 0 }).to_be_bytes());
    }
    let len = 8 + 1024 + total * 28 + 40;
    let pack = [&b"PACK\0\0\0\x02"[..], &(total as u32).to_be_bytes()].concat();
    let script = format!(
        "echo agent > agent.txt && git add agent.txt && {} && truncate -s {len} .git/objects/pack/pack-holes.idx \
         && {} && truncate -s 2G .git/objects/pack/pack-holes.pack",
        printf_to(&head, ".git/objects/pack/pack-holes.idx"),
        printf_to(&pack, ".git/objects/pack/pack-holes.pack")
    );
    let out = env.session(&ws, &script).ok();
    assert!(out.stderr.contains("were not verified"), "{out:?}");
    let idx = ws.join(".git/objects/pack/pack-holes.idx");
    assert_eq!(std::fs::metadata(&idx).map(|m| m.len()).ok(), Some(len), "the agent's index is there: {out:?}");
    let out = hook_within(&env, &ws, Duration::from_secs(5));
    assert!(out.stderr.contains("pack-holes.") && out.stderr.contains("sparse"), "{}", out.stderr);
    std::fs::remove_file(&idx).unwrap();
    std::fs::remove_file(idx.with_extension("pack")).unwrap();
    hook_refuses_the_agents_file(&env, &ws);
}

/// HEAD's commit object swapped for a FIFO by the agent: git blocks on it,
/// and gix-odb would take it for a missing object (then the hook would ask
/// git, which blocks). The hook refuses it by name without opening it for
/// reading.
#[test]
fn a_fifo_in_place_of_heads_commit_is_refused_by_name_without_blocking() {
    let env = Env::new();
    let ws = repo(&env, "repo");
    let head = git_ok(&env, &ws, &["rev-parse", "HEAD"]);
    let loose = format!(".git/objects/{}/{}", &head[..2], &head.trim()[2..]);
    let script = format!("echo agent > agent.txt && git add agent.txt && rm -f {loose} && mkfifo {loose}");
    let out = env.session(&ws, &script).ok();
    let ft = std::fs::symlink_metadata(ws.join(&loose)).map(|m| m.file_type());
    assert!(ft.as_ref().is_ok_and(std::os::unix::fs::FileTypeExt::is_fifo), "{ft:?} {out:?}");
    let out = hook_within(&env, &ws, Duration::from_secs(10));
    assert!(out.stderr.contains(&loose) && out.stderr.contains("FIFO"), "{out:?}");
    env.ws(&ws, &["rollback", ".git/objects"]).ok();
    assert!(std::fs::symlink_metadata(ws.join(&loose)).is_ok_and(|m| m.is_file()), "HEAD's commit is back");
    hook_refuses_the_agents_file(&env, &ws);
}

/// `git commit` with the environment's git settings, killed (its whole
/// process group, hooks included) if it has not finished within `limit`.
fn commit_within(env: &Env, dir: &Path, msg: &str, limit: Duration) -> Option<Out> {
    use std::os::unix::process::CommandExt;
    let mut c = std::process::Command::new("git");
    c.args(["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"])
        .args(["commit", "-q", "-m", msg])
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", &env.home)
        .env("LANG", "C.UTF-8")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0);
    let mut child = c.spawn().unwrap();
    let started = Instant::now();
    while started.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            let o = child.wait_with_output().unwrap();
            return Some(Out::from(o));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::process::Command::new("kill").args(["-KILL", &format!("-{}", child.id())]).status();
    let _ = child.wait();
    None
}

/// The secret scan reads every staged file; a staged `lnk/kmsg` below a
/// work-tree symlink `lnk -> /proc` is not `/proc/kmsg` (git does not
/// follow `lnk` either), so the hook reads the staged blob instead of
/// blocking on the kernel's log.
#[test]
fn a_staged_path_below_a_symlink_to_proc_does_not_block_the_hook() {
    let env = Env::new();
    let ws = repo(&env, "repo");
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let name = format!("e2e-kmsg-{}-{nonce}", std::process::id());
    let value = "sk-e2e-KMSG-5d1e0c9a77";
    with_stdin(env.command(&ws, &["secret", "set", &name]), value.as_bytes()).ok();
    let script = "ln -s /proc lnk && blob=$(git hash-object -w --stdin < /dev/null) && \
                  git update-index --add --cacheinfo 100644,$blob,lnk/kmsg";
    env.session(&ws, script).ok();
    assert!(git_ok(&env, &ws, &["diff", "--cached", "--name-only"]).contains("lnk/kmsg"), "staged");
    // Positive control: the scan reads staged files (a leak is refused).
    write(ws.join("leak.txt"), format!("KEY={value}\n"));
    git_ok(&env, &ws, &["add", "leak.txt"]);
    let leak = commit_within(&env, &ws, "leak", Duration::from_secs(30)).expect("the hook answered");
    assert!(leak.code != 0 && leak.stderr.contains(&name), "{leak:?}");
    git_ok(&env, &ws, &["rm", "-q", "--cached", "leak.txt"]);

    let out = commit_within(&env, &ws, "kmsg", Duration::from_secs(30)).expect("the hook did not block");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(git_ok(&env, &ws, &["show", "HEAD:lnk/kmsg"]), "", "the staged blob, not the kernel's log");
    env.ws(&ws, &["secret", "rm", &name]).ok();
}
