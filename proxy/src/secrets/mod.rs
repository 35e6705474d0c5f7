//! Where the real credentials come from: a store (the Secret Service over
//! D-Bus on desktops, the kernel keyutils store on headless machines) or an
//! explicit source a profile names (`env:VAR`, `file:PATH`, `cmd:COMMAND`).
//!
//! Everything here runs outside the sandbox, in the `ws` process that starts
//! the session; the sandboxed command never sees a value (it gets a phantom
//! token, and seccomp denies it the keyring syscalls).
//!
//! # Security
//! A [`Secret`] is zeroed when dropped and has no `Debug` or `Display` that
//! shows its bytes; [`Secret::expose`] is the one way to read them. Names
//! ([`SecretName`]) are validated, so a name can be printed, logged and used
//! in a key description safely. [`SecretStore::list`] returns names only.

mod keyutils;
mod secret_service;
mod source;

use std::fmt;
use std::path::PathBuf;

use zeroize::Zeroizing;

pub use keyutils::KeyutilsStore;
pub use secret_service::SecretServiceStore;
pub use source::SecretSource;

/// The bytes of a credential: zeroed on drop, never shown by `Debug`.
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(Zeroizing::new(bytes))
    }

    /// The value itself, for injecting into a request or writing to a store.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// A stored secret's name: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with
/// `.` or `-` (so it is never mistaken for a flag or a hidden file).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretName(String);

pub const MAX_NAME_LEN: usize = 64;

impl SecretName {
    pub fn new(name: &str) -> Result<SecretName, InvalidName> {
        let problem = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > MAX_NAME_LEN {
            Some("it is longer than 64 characters")
        } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
            Some("only letters, digits, `.`, `_` and `-` are allowed")
        } else if name.starts_with(['.', '-']) {
            Some("it may not start with `.` or `-`")
        } else {
            None
        };
        match problem {
            Some(reason) => Err(InvalidName { name: name.escape_debug().to_string(), reason }),
            None => Ok(SecretName(name.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for SecretName {
    type Err = InvalidName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SecretName::new(s)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid secret name `{name}`: {reason}")]
pub struct InvalidName {
    pub name: String,
    pub reason: &'static str,
}

/// The two stores `ws secret` writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// The kernel's keyutils: the user's persistent keyring (RAM only; gone
    /// after a reboot, or after `/proc/sys/kernel/keys/persistent_keyring_expiry`
    /// seconds, three days by default, without use).
    Keyutils,
    /// The freedesktop Secret Service (GNOME Keyring, KWallet, KeePassXC) over
    /// the session bus: the default collection, encrypted on disk.
    SecretService,
}

impl StoreKind {
    pub const ALL: [StoreKind; 2] = [StoreKind::Keyutils, StoreKind::SecretService];

    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Keyutils => "keyutils",
            StoreKind::SecretService => "secret-service",
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for StoreKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StoreKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown secret store `{s}` (expected `keyutils` or `secret-service`)"))
    }
}

/// A place that keeps named secrets across processes.
pub trait SecretStore: fmt::Debug {
    fn kind(&self) -> StoreKind;
    /// The secret called `name`; [`StoreError::NotFound`] if there is none.
    fn get(&self, name: &SecretName) -> Result<Secret, StoreError>;
    /// Stores `value` under `name`, replacing any value it had.
    fn set(&self, name: &SecretName, value: &Secret) -> Result<(), StoreError>;
    /// Forgets `name`; [`StoreError::NotFound`] if there is none.
    fn remove(&self, name: &SecretName) -> Result<(), StoreError>;
    /// The names stored, sorted; never the values.
    fn list(&self) -> Result<Vec<SecretName>, StoreError>;
}

/// Which store to open and how to reach the Secret Service.
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {
    /// `None` picks one: the Secret Service if `session_bus` is given and a
    /// service answers there, else keyutils.
    pub kind: Option<StoreKind>,
    /// The D-Bus session bus address (`unix:path=/run/user/1000/bus`), if
    /// this machine has one.
    pub session_bus: Option<String>,
}

/// Opens the store `options` names, or picks one (see [`StoreOptions::kind`]).
pub fn open_store(options: &StoreOptions) -> Result<Box<dyn SecretStore>, StoreError> {
    match options.kind {
        Some(StoreKind::Keyutils) => Ok(Box::new(KeyutilsStore::open()?)),
        Some(StoreKind::SecretService) => {
            let bus = options.session_bus.as_deref().ok_or(StoreError::NoSessionBus)?;
            Ok(Box::new(SecretServiceStore::connect(bus)?))
        }
        None => {
            if let Some(bus) = options.session_bus.as_deref()
                && let Ok(store) = SecretServiceStore::connect(bus)
            {
                return Ok(Box::new(store));
            }
            Ok(Box::new(KeyutilsStore::open()?))
        }
    }
}

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no secret `{name}` in the {store} store")]
    NotFound { store: StoreKind, name: SecretName },
    #[error("the kernel keyring cannot be used ({op})")]
    Keyutils {
        op: &'static str,
        #[source]
        source: linux_keyutils::KeyError,
    },
    #[error("this user's kernel key quota is full")]
    KeyQuota,
    #[error("no D-Bus session bus to reach the Secret Service on")]
    NoSessionBus,
    #[error("cannot reach the Secret Service on {bus}")]
    Connect {
        bus: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the Secret Service's default collection is locked")]
    Locked,
    #[error("the Secret Service failed ({op})")]
    SecretService {
        op: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Resolving a [`SecretSource`] to its bytes failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read stored secret `{name}`")]
    Store {
        name: SecretName,
        #[source]
        source: StoreError,
    },
    #[error("stored secret `{name}` needs a secret store, and none was given")]
    NoStore { name: SecretName },
    #[error("environment variable {var} is not set")]
    EnvUnset { var: String },
    #[error("cannot read secret file {}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run secret command `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("secret command `{command}` failed ({status})")]
    CommandFailed { command: String, status: std::process::ExitStatus },
    #[error("secret source `{source_text}` gave an empty value")]
    Empty { source_text: String },
}

/// Strips one trailing `\n` (or `\r\n`): what `echo` and most password
/// managers add.
pub(crate) fn strip_one_newline(mut bytes: Vec<u8>) -> Zeroizing<Vec<u8>> {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    Zeroizing::new(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for ok in ["anthropic", "GITHUB_TOKEN", "a", "openai.prod-2", &"x".repeat(64)] {
            assert_eq!(SecretName::new(ok).unwrap().as_str(), ok);
        }
        for bad in ["", &"x".repeat(65), "a b", "a/b", "-rf", ".hidden", "naïve", "a:b", "x\n", "a@b"] {
            assert!(SecretName::new(bad).is_err(), "{bad:?} accepted");
        }
        let e = SecretName::new("a\nb").unwrap_err().to_string();
        assert!(e.contains("a\\nb") && e.contains("only letters"), "{e}");
    }

    #[test]
    fn secrets_do_not_show_their_bytes() {
        let s = Secret::new(b"hunter2".to_vec());
        assert_eq!(format!("{s:?}"), "Secret(7 bytes)");
        assert_eq!(s.expose(), b"hunter2");
    }

    #[test]
    fn one_trailing_newline_is_stripped() {
        assert_eq!(&*strip_one_newline(b"tok\n".to_vec()), b"tok");
        assert_eq!(&*strip_one_newline(b"tok\r\n".to_vec()), b"tok");
        assert_eq!(&*strip_one_newline(b"tok\n\n".to_vec()), b"tok\n");
        assert_eq!(&*strip_one_newline(b"tok".to_vec()), b"tok");
        assert_eq!(&*strip_one_newline(b"\n".to_vec()), b"");
    }

    #[test]
    fn store_kinds_parse() {
        assert_eq!("keyutils".parse::<StoreKind>().unwrap(), StoreKind::Keyutils);
        assert_eq!("secret-service".parse::<StoreKind>().unwrap(), StoreKind::SecretService);
        assert!("gnome".parse::<StoreKind>().is_err());
    }
}
