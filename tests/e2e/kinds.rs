//! Every file kind survives a snapshot and rollback, byte- and mode-exact, on
//! the copy path (ext4) and the clone path (btrfs, xfs loop images).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::harness::*;

/// A workspace with one of everything.
fn populate(ws: &Path, outside: &Path) {
    write(ws.join("plain.txt"), "plain\n");
    write(ws.join("bin/tool"), "#!/bin/sh\necho tool\n");
    std::fs::set_permissions(ws.join("bin/tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    write(ws.join("private"), "mine");
    std::fs::set_permissions(ws.join("private"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("plain.txt", ws.join("link-in")).unwrap();
    write(outside.join("target.txt"), "outside\n");
    std::os::unix::fs::symlink(outside.join("target.txt"), ws.join("link-out")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", ws.join("dangling")).unwrap();
    std::fs::create_dir_all(ws.join("empty/dir")).unwrap();
    std::fs::set_permissions(ws.join("empty"), std::fs::Permissions::from_mode(0o750)).unwrap();
    write(ws.join(OsStr::from_bytes(b"latin1-\xe9t\xe9")), "not utf-8 name");
    write(ws.join("new\nline"), "newline in name");
    write(ws.join("links/a"), "shared inode");
    std::fs::hard_link(ws.join("links/a"), ws.join("links/b")).unwrap();
    std::fs::hard_link(ws.join("links/a"), ws.join("hard-elsewhere")).unwrap();
    let sparse = std::fs::File::create(ws.join("sparse.img")).unwrap();
    sparse.set_len(1 << 30).unwrap();
    use std::os::unix::fs::FileExt;
    sparse.write_all_at(b"header", 0).unwrap();
    sparse.write_all_at(b"middle", 512 << 20).unwrap();
    sparse.write_all_at(b"trailer", (1 << 30) - 7).unwrap();
    for i in 0..3000 {
        write(ws.join(format!("tree/d{}/f{i}", i % 60)), format!("file {i}\n"));
    }
}

fn round_trip(env: &Env, ws: &Path, outside: &Path) {
    populate(ws, outside);
    let before = capture(ws, &no_skip);
    let outside_before = capture(outside, &no_skip);
    let destroy = "rm -rf ./* ./.[!.]* 2>/dev/null; \
                   echo junk > plain.txt.new; mkdir -p tree; echo x > tree/intruder; \
                   ln -s /etc link-in; printf 'changed' > bin.tool; true";
    env.session(ws, destroy).ok();
    assert!(!ws.join("plain.txt").exists() && !ws.join("sparse.img").exists());
    // The symlink pointing outside was removed, never followed.
    assert_same_tree(&outside_before, &capture(outside, &no_skip));

    env.ws(ws, &["rollback"]).ok();
    assert_same_tree(&before, &capture(ws, &no_skip));
    let m = std::fs::metadata(ws.join("sparse.img")).unwrap();
    assert_eq!(m.len(), 1 << 30);
    assert!(m.blocks() * 512 < 16 << 20, "the 1 GiB sparse file came back dense: {} blocks", m.blocks());
}

/// Changes within each kind, not just deletion: chmod, retarget, type swaps.
fn in_place_changes(env: &Env, ws: &Path) {
    let before = capture(ws, &no_skip);
    let script = "chmod -x bin/tool; chmod 700 empty; ln -sfn /etc/shadow link-in; \
                  rm -rf empty/dir && echo file > empty/dir; rm plain.txt && mkdir plain.txt && echo in > plain.txt/x; \
                  echo appended >> links/a; truncate -s 10 sparse.img; mv tree/d1 tree/moved";
    env.session(ws, script).ok();
    env.ws(ws, &["rollback"]).ok();
    assert_same_tree(&before, &capture(ws, &no_skip));
}

#[test]
fn every_kind_round_trips_on_ext4_copy_path() {
    let env = Env::new();
    let ws = env.dir("proj");
    let outside = env.dir("outside");
    round_trip(&env, &ws, &outside);
    in_place_changes(&env, &ws);
    assert!(!shares_extents(&env.home.join(".local/share/ws/stores")), "ext4 cannot share extents");
}

fn clone_path(kind: &str) {
    let fs = LoopFs::new(kind);
    let env = Env::new();
    let ws = fs.dir("proj");
    let outside = env.dir("outside");
    round_trip(&env, &ws, &outside);
    in_place_changes(&env, &ws);
    // The store went to the workspace's filesystem (`.ws-UID` at its top)
    // and its objects share extents with the workspace files: real clones.
    assert!(fs.mnt.join(".ws-0").is_dir(), "no store on the {kind} filesystem");
    assert!(shares_extents(&fs.mnt.join(".ws-0")), "{kind} objects are copies, not clones");
}

#[test]
fn every_kind_round_trips_on_btrfs_clone_path() {
    clone_path("btrfs");
}

#[test]
fn every_kind_round_trips_on_xfs_clone_path() {
    clone_path("xfs");
}

#[test]
fn store_on_another_filesystem_copies_and_says_so_once() {
    let fs = LoopFs::new("btrfs");
    let env = Env::new();
    // Occupy the `.ws-0` name so the store cannot live on the workspace's filesystem.
    write(fs.mnt.join(".ws-0"), "not a directory");
    let ws = fs.dir("proj");
    write(ws.join("a"), "a\n");
    let first = env.session(&ws, "echo b > b").ok();
    assert_eq!(first.stderr.matches("copied, not cloned").count(), 1, "{}", first.stderr);
    let second = env.session(&ws, "echo c > c").ok();
    assert!(!second.stderr.contains("copied, not cloned"), "{}", second.stderr);
    env.ws(&ws, &["rollback"]).ok();
    assert!(!ws.join("c").exists());
}

/// Whether the largest object of the store under `stores` has extents shared
/// with another file (`filefrag -v` flags them `shared`).
fn shares_extents(stores: &Path) -> bool {
    let mut objects = store_objects(stores);
    objects.sort_by_key(|(_, size)| std::cmp::Reverse(*size));
    let (largest, size) = objects.first().cloned().expect("the store holds no objects");
    assert!(size >= 4096, "no object large enough to have a data extent");
    let out = std::process::Command::new("filefrag").arg("-v").arg(&largest).output().expect("filefrag (e2fsprogs)");
    String::from_utf8_lossy(&out.stdout).contains("shared")
}
