//! The keyutils store against the real kernel keyring (the user's persistent
//! keyring), and `SecretSource::resolve` through it. CI runs these as root;
//! `tests/e2e/secrets.rs` covers other processes and an unprivileged user.

#![allow(clippy::unwrap_used)]

use std::ffi::OsString;
use std::process::Command;

use ws_proxy::secrets::{
    KeyutilsStore, Secret, SecretError, SecretName, SecretSource, SecretStore, StoreError, StoreKind,
};

/// A name no other test (or run) uses, removed again on drop.
struct Scratch<'a> {
    store: &'a KeyutilsStore,
    name: SecretName,
}

impl<'a> Scratch<'a> {
    fn new(store: &'a KeyutilsStore, tag: &str) -> Scratch<'a> {
        let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let name = SecretName::new(&format!("test-{tag}-{}-{nonce}", std::process::id())).unwrap();
        Scratch { store, name }
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        let _ = self.store.remove(&self.name);
    }
}

fn no_env(_: &str) -> Option<OsString> {
    None
}

fn open() -> KeyutilsStore {
    KeyutilsStore::open().expect("the kernel keyring (is CONFIG_PERSISTENT_KEYRINGS set? see KERNEL-NOTES.md)")
}

#[test]
fn set_get_list_update_remove() {
    let store = open();
    let s = Scratch::new(&store, "cycle");
    assert!(matches!(store.get(&s.name), Err(StoreError::NotFound { store: StoreKind::Keyutils, .. })));
    assert!(!store.list().unwrap().contains(&s.name));

    store.set(&s.name, &Secret::new(b"first\x00bytes\xff".to_vec())).unwrap();
    assert_eq!(store.get(&s.name).unwrap().expose(), b"first\x00bytes\xff", "binary values round-trip");
    assert!(store.list().unwrap().contains(&s.name));

    store.set(&s.name, &Secret::new(b"second".to_vec())).unwrap();
    assert_eq!(store.get(&s.name).unwrap().expose(), b"second", "set replaces");
    assert_eq!(store.list().unwrap().iter().filter(|n| **n == s.name).count(), 1);

    store.remove(&s.name).unwrap();
    assert!(matches!(store.get(&s.name), Err(StoreError::NotFound { .. })));
    assert!(matches!(store.remove(&s.name), Err(StoreError::NotFound { .. })));
    assert!(!store.list().unwrap().contains(&s.name));
}

#[test]
fn resolve_reads_a_stored_secret() {
    let store = open();
    let s = Scratch::new(&store, "resolve");
    let source = SecretSource::parse(s.name.as_str()).unwrap();
    let missing = source.resolve(Some(&store), &no_env).unwrap_err();
    assert!(matches!(missing, SecretError::Store { source: StoreError::NotFound { .. }, .. }), "{missing}");
    assert!(missing.to_string().contains(s.name.as_str()), "{missing}");

    store.set(&s.name, &Secret::new(b"sk-real-value".to_vec())).unwrap();
    assert_eq!(source.resolve(Some(&store), &no_env).unwrap().expose(), b"sk-real-value");
    // A second handle, as a later command would open it, finds it too.
    assert_eq!(source.resolve(Some(&open()), &no_env).unwrap().expose(), b"sk-real-value");
}

/// Only a process that possesses the persistent keyring reads our keys: a
/// child in a fresh session keyring cannot — until it links the persistent
/// keyring itself, which is why sessions' seccomp filter denies `keyctl`.
#[test]
fn other_processes_do_not_possess_the_keys() {
    let store = open();
    let s = Scratch::new(&store, "possession");
    store.set(&s.name, &Secret::new(b"possessed-only".to_vec())).unwrap();
    let keyctl = |script: &str| {
        let out = Command::new("keyctl")
            .args(["session", "-", "sh", "-c", script])
            .output()
            .expect("keyctl (Debian package keyutils; test.sh installs it)");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let desc = format!("%user:ws-secret:{}", s.name);
    let (linked_ok, linked) = keyctl(&format!("keyctl get_persistent @s >/dev/null && keyctl pipe {desc}"));
    assert!(linked_ok && linked == "possessed-only", "control: linking the persistent keyring reads it: {linked:?}");
    let (plain_ok, plain) = keyctl(&format!("keyctl pipe {desc}"));
    assert!(!plain_ok && !plain.contains("possessed-only"), "read without possession: {plain:?}");
}
