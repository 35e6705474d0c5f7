//! The kernel keyutils store: `user` keys in the user's persistent keyring.
//!
//! A key is readable only by a process that *possesses* it: one that reaches
//! it from its own thread, process or session keyring. A plain root shell,
//! or a process started without `pam_keyinit`, has only the shared
//! user-session keyring, and the kernel refuses it (`EACCES`). So each `ws`
//! process links the persistent keyring into its own *process* keyring,
//! created on demand: that gives possession without joining a new session
//! keyring, and a process keyring is not inherited by children, so the
//! sandboxed command gets no path to the keys (seccomp also denies it
//! `keyctl`, `add_key` and `request_key`).
//!
//! The persistent keyring (`_persistent.UID`) outlives every process — a
//! later, separate `ws` finds what an earlier one stored — but lives in RAM:
//! it is gone after a reboot, and after `persistent_keyring_expiry` seconds
//! (`/proc/sys/kernel/keys/`, three days by default) without any access.

use linux_keyutils::{Key, KeyError, KeyRing, KeyRingIdentifier, KeyType};
use zeroize::Zeroizing;

use super::{Secret, SecretName, SecretStore, StoreError, StoreKind};

/// Every key of ours is described `ws-secret:NAME`.
const PREFIX: &str = "ws-secret:";
/// The largest payload of a `user` key.
const MAX_PAYLOAD: usize = 32767;
/// The listing buffer: `get_links` passes it to the kernel as a length in
/// bytes, so it holds up to 16,384 key ids (4 bytes each).
const MAX_LIST_BYTES: usize = 1 << 16;

#[derive(Debug)]
pub struct KeyutilsStore {
    persistent: KeyRing,
}

fn failed(op: &'static str) -> impl FnOnce(KeyError) -> StoreError {
    move |source| match source {
        KeyError::QuotaExceeded => StoreError::KeyQuota,
        source => StoreError::Keyutils { op, source },
    }
}

impl KeyutilsStore {
    /// Links this user's persistent keyring into this process's keyring.
    pub fn open() -> Result<KeyutilsStore, StoreError> {
        KeyRing::from_special_id(KeyRingIdentifier::Process, true).map_err(failed("creating a process keyring"))?;
        let persistent =
            KeyRing::get_persistent(KeyRingIdentifier::Process).map_err(failed("linking the persistent keyring"))?;
        Ok(KeyutilsStore { persistent })
    }

    fn find(&self, name: &SecretName) -> Result<Key, StoreError> {
        match self.persistent.search(&description(name)) {
            Ok(key) => Ok(key),
            Err(KeyError::KeyDoesNotExist | KeyError::KeyRevoked | KeyError::KeyExpired) => {
                Err(StoreError::NotFound { store: StoreKind::Keyutils, name: name.clone() })
            }
            Err(e) => Err(failed("searching the persistent keyring")(e)),
        }
    }
}

fn description(name: &SecretName) -> String {
    format!("{PREFIX}{name}")
}

impl SecretStore for KeyutilsStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Keyutils
    }

    fn get(&self, name: &SecretName) -> Result<Secret, StoreError> {
        let key = self.find(name)?;
        let mut buf = Zeroizing::new(vec![0u8; MAX_PAYLOAD + 1]);
        let len = key.read(&mut *buf).map_err(failed("reading a key"))?;
        if len > MAX_PAYLOAD {
            return Err(failed("reading a key")(KeyError::InvalidArguments));
        }
        buf.truncate(len);
        Ok(Secret(buf))
    }

    fn set(&self, name: &SecretName, value: &Secret) -> Result<(), StoreError> {
        // Adding a key whose type and description exist updates it in place.
        self.persistent.add_key(&description(name), value.expose()).map_err(failed("adding a key"))?;
        Ok(())
    }

    fn remove(&self, name: &SecretName) -> Result<(), StoreError> {
        self.find(name)?.invalidate().map_err(failed("invalidating a key"))
    }

    fn list(&self) -> Result<Vec<SecretName>, StoreError> {
        let links = self.persistent.get_links(MAX_LIST_BYTES).map_err(failed("listing the persistent keyring"))?;
        let mut names: Vec<SecretName> = links
            .iter()
            .filter_map(|node| node.as_key())
            .filter_map(|key| key.metadata().ok())
            .filter(|m| m.get_type() == KeyType::User)
            .filter_map(|m| m.get_description().strip_prefix(PREFIX).and_then(|n| SecretName::new(n).ok()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
}
