//! `secret = "…"` in a profile: a stored name, or `env:`, `file:`, `cmd:`.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::{InvalidName, Secret, SecretError, SecretName, SecretStore, strip_one_newline};

/// Where a credential route's real secret comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// A name in the secret store (`ws secret set NAME`).
    Stored(SecretName),
    /// An environment variable of the `ws` process, as is.
    Env(String),
    /// A file's contents, less one trailing newline.
    File(PathBuf),
    /// The standard output of `sh -c COMMAND`, less one trailing newline;
    /// a nonzero exit is an error.
    Cmd(String),
}

/// A profile's `secret` value that is none of the forms.
#[derive(Debug, thiserror::Error)]
pub enum ParseSourceError {
    #[error("invalid secret source `{text}`: nothing after `{prefix}`")]
    EmptyArgument { text: String, prefix: &'static str },
    #[error("invalid secret source `{text}`: `{var}` is not a variable name")]
    BadVariable { text: String, var: String },
    #[error("invalid secret source `{text}`: the path must be absolute")]
    RelativePath { text: String },
    #[error(transparent)]
    Name(#[from] InvalidName),
}

impl SecretSource {
    /// `NAME` (stored), `env:VAR`, `file:/ABS/PATH` or `cmd:COMMAND`.
    pub fn parse(text: &str) -> Result<SecretSource, ParseSourceError> {
        let empty = |prefix| ParseSourceError::EmptyArgument { text: text.to_owned(), prefix };
        if let Some(var) = text.strip_prefix("env:") {
            if var.is_empty() {
                return Err(empty("env:"));
            }
            let valid = !var.starts_with(|c: char| c.is_ascii_digit())
                && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(ParseSourceError::BadVariable { text: text.to_owned(), var: var.to_owned() });
            }
            Ok(SecretSource::Env(var.to_owned()))
        } else if let Some(path) = text.strip_prefix("file:") {
            if path.is_empty() {
                return Err(empty("file:"));
            }
            // Resolved by whichever process starts the session: a relative
            // path would mean something different from each directory.
            if !path.starts_with('/') {
                return Err(ParseSourceError::RelativePath { text: text.to_owned() });
            }
            Ok(SecretSource::File(PathBuf::from(path)))
        } else if let Some(cmd) = text.strip_prefix("cmd:") {
            if cmd.trim().is_empty() {
                return Err(empty("cmd:"));
            }
            Ok(SecretSource::Cmd(cmd.to_owned()))
        } else {
            Ok(SecretSource::Stored(SecretName::new(text)?))
        }
    }

    /// Whether resolving needs a store: open one only then.
    pub fn needs_store(&self) -> bool {
        matches!(self, SecretSource::Stored(_))
    }

    /// Fetches the value, outside the sandbox. `store` is only asked for a
    /// [`SecretSource::Stored`] source (and must then be given, see
    /// [`SecretSource::needs_store`]); `lookup_env` for `env:`. A `cmd:`
    /// shares this process's stdin and stderr (so a password manager can
    /// prompt) and its stdout is captured.
    pub fn resolve(
        &self,
        store: Option<&dyn SecretStore>,
        lookup_env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Secret, SecretError> {
        let bytes = match self {
            SecretSource::Stored(name) => {
                let store = store.ok_or_else(|| SecretError::NoStore { name: name.clone() })?;
                return store.get(name).map_err(|source| SecretError::Store { name: name.clone(), source });
            }
            SecretSource::Env(var) => {
                let value = lookup_env(var).ok_or_else(|| SecretError::EnvUnset { var: var.clone() })?;
                zeroize::Zeroizing::new(value.into_vec())
            }
            SecretSource::File(path) => {
                let raw = std::fs::read(path).map_err(|source| SecretError::ReadFile { path: path.clone(), source })?;
                strip_one_newline(raw)
            }
            SecretSource::Cmd(command) => {
                let out = Command::new("sh")
                    .args(["-c", command])
                    .stdin(Stdio::inherit())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .output()
                    .map_err(|source| SecretError::Spawn { command: command.clone(), source })?;
                let mut stdout = zeroize::Zeroizing::new(out.stdout);
                if !out.status.success() {
                    return Err(SecretError::CommandFailed { command: command.clone(), status: out.status });
                }
                strip_one_newline(std::mem::take(&mut *stdout))
            }
        };
        if bytes.is_empty() {
            return Err(SecretError::Empty { source_text: self.to_string() });
        }
        Ok(Secret(bytes))
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Stored(name) => write!(f, "{name}"),
            SecretSource::Env(var) => write!(f, "env:{var}"),
            SecretSource::File(path) => write!(f, "file:{}", path.display()),
            SecretSource::Cmd(cmd) => write!(f, "cmd:{cmd}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{StoreError, StoreKind};

    /// The one place tests need a store without a keyring: sources other
    /// than `Stored` must never ask it.
    #[derive(Debug)]
    struct NoStore;
    impl SecretStore for NoStore {
        fn kind(&self) -> StoreKind {
            StoreKind::Keyutils
        }
        fn get(&self, name: &SecretName) -> Result<Secret, StoreError> {
            Err(StoreError::NotFound { store: StoreKind::Keyutils, name: name.clone() })
        }
        fn set(&self, _: &SecretName, _: &Secret) -> Result<(), StoreError> {
            unreachable!()
        }
        fn remove(&self, _: &SecretName) -> Result<(), StoreError> {
            unreachable!()
        }
        fn list(&self) -> Result<Vec<SecretName>, StoreError> {
            unreachable!()
        }
    }

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    #[test]
    fn parses_every_form() {
        let name = |s| SecretName::new(s).unwrap();
        assert_eq!(SecretSource::parse("anthropic").unwrap(), SecretSource::Stored(name("anthropic")));
        assert_eq!(SecretSource::parse("env:GH_TOKEN").unwrap(), SecretSource::Env("GH_TOKEN".into()));
        assert_eq!(SecretSource::parse("file:/run/secrets/k").unwrap(), SecretSource::File("/run/secrets/k".into()));
        assert_eq!(
            SecretSource::parse("cmd:pass show api/key").unwrap(),
            SecretSource::Cmd("pass show api/key".into())
        );
        for text in ["anthropic", "env:GH_TOKEN", "file:/run/secrets/k", "cmd:pass show x"] {
            assert_eq!(SecretSource::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn refuses_malformed_sources() {
        for bad in ["", "env:", "env:1X", "env:A-B", "file:", "file:relative/k", "cmd:", "cmd:  ", "vault:x", "a b"] {
            assert!(SecretSource::parse(bad).is_err(), "{bad:?} accepted");
        }
        let e = SecretSource::parse("file:k.txt").unwrap_err().to_string();
        assert!(e.contains("file:k.txt") && e.contains("absolute"), "{e}");
    }

    #[test]
    fn resolves_env_file_and_cmd() {
        let env = |v: &str| (v == "TOK").then(|| OsString::from("from-env\n"));
        let s = SecretSource::parse("env:TOK").unwrap().resolve(Some(&NoStore), &env).unwrap();
        assert_eq!(s.expose(), b"from-env\n", "env values are taken as they are");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k");
        std::fs::write(&file, "from-file\n").unwrap();
        let src = SecretSource::File(file.clone());
        assert_eq!(src.resolve(Some(&NoStore), &no_env).unwrap().expose(), b"from-file");

        let cmd = SecretSource::parse("cmd:printf 'from-cmd\\n\\n'; echo noise >&2").unwrap();
        assert_eq!(cmd.resolve(Some(&NoStore), &no_env).unwrap().expose(), b"from-cmd\n");
    }

    #[test]
    fn resolution_failures_name_what_failed() {
        let e = SecretSource::parse("env:MISSING").unwrap().resolve(Some(&NoStore), &no_env).unwrap_err();
        assert!(e.to_string().contains("MISSING"), "{e}");

        let e = SecretSource::File("/nonexistent/k".into()).resolve(Some(&NoStore), &no_env).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/k"), "{e}");

        let control = SecretSource::parse("cmd:echo ok").unwrap().resolve(Some(&NoStore), &no_env);
        assert!(control.is_ok(), "control: a succeeding command resolves");
        let e = SecretSource::parse("cmd:echo partial; exit 3").unwrap().resolve(Some(&NoStore), &no_env).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("echo partial; exit 3") && msg.contains("exit status: 3"), "{msg}");

        let e = SecretSource::parse("cmd:echo").unwrap().resolve(Some(&NoStore), &no_env).unwrap_err();
        assert!(matches!(e, SecretError::Empty { .. }), "{e}");

        let e = SecretSource::parse("missing-one").unwrap().resolve(Some(&NoStore), &no_env).unwrap_err();
        assert!(matches!(e, SecretError::Store { source: StoreError::NotFound { .. }, .. }), "{e}");
        let e = SecretSource::parse("missing-one").unwrap().resolve(None, &no_env).unwrap_err();
        assert!(matches!(e, SecretError::NoStore { .. }), "{e}");
        assert!(
            SecretSource::parse("x").unwrap().needs_store() && !SecretSource::parse("env:X").unwrap().needs_store()
        );
    }
}
