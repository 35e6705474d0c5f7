//! `ws secret set | list | rm`: the credentials that profiles' credential
//! routes inject, kept in the Secret Service or the kernel keyring.

use std::io::{BufRead as _, IsTerminal as _, Read as _};

use clap::{Args, Subcommand};
use serde::Serialize;
use ws_proxy::secrets::{Secret, SecretName, SecretStore, StoreError, StoreKind, StoreOptions, open_store};
use zeroize::Zeroizing;

use crate::error::{CliError, exit};
use crate::{env, out, ui};

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    Set(SetArgs),
    List(ListArgs),
    Rm(RmArgs),
}

/// Which store to use; shared by every `ws secret` command.
#[derive(Debug, Args)]
pub struct StoreArg {
    /// `keyutils` (the kernel's persistent keyring: headless machines; kept
    /// in RAM, lost on reboot) or `secret-service` (GNOME Keyring, KWallet,
    /// KeePassXC over D-Bus). Default: $WS_SECRET_STORE, else the Secret
    /// Service when one answers on the session bus, else keyutils.
    #[arg(long, value_name = "STORE")]
    store: Option<StoreKind>,
}

/// Store a secret, read from stdin (never from the command line or the
/// environment, which other processes can see).
///
/// On a terminal, ws asks for the value without echoing it. Otherwise it
/// reads all of stdin; one trailing newline is dropped. A profile's
/// credential route names the secret (`secret = "NAME"`); the sandboxed
/// command never sees the value.
///
/// Example: ws secret set anthropic < ~/anthropic-key.txt
#[derive(Debug, Args)]
pub struct SetArgs {
    /// 1 to 64 letters, digits, `.`, `_` or `-`; not starting with `.` or `-`.
    name: SecretName,
    #[command(flatten)]
    store: StoreArg,
}

/// List the names of the stored secrets (never their values).
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Machine-readable output: {"store": "keyutils", "secrets": ["NAME", …]}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArg,
}

/// Forget a stored secret.
#[derive(Debug, Args)]
pub struct RmArgs {
    name: SecretName,
    #[command(flatten)]
    store: StoreArg,
}

pub fn run(c: SecretCommand) -> Result<i32, CliError> {
    match c {
        SecretCommand::Set(a) => cmd_secret_set(a),
        SecretCommand::List(a) => cmd_secret_list(a),
        SecretCommand::Rm(a) => cmd_secret_rm(a),
    }
}

fn cmd_secret_set(args: SetArgs) -> Result<i32, CliError> {
    let store = open(args.store.store)?;
    let value = read_value(&args.name)?;
    store.set(&args.name, &value).map_err(|e| store_error(e, store.kind()))?;
    secrets_changed(store.as_ref(), &args.name, Some(&value));
    ui::note(&format!("stored secret {} in the {} store", args.name, store.kind()));
    Ok(exit::OK)
}

#[derive(Serialize)]
struct ListJson<'a> {
    store: &'static str,
    secrets: Vec<&'a str>,
}

fn cmd_secret_list(args: ListArgs) -> Result<i32, CliError> {
    let store = open(args.store.store)?;
    let names = store.list().map_err(|e| store_error(e, store.kind()))?;
    if args.json {
        let json = ListJson { store: store.kind().as_str(), secrets: names.iter().map(SecretName::as_str).collect() };
        out!("{}", serde_json::to_string_pretty(&json).map_err(|e| CliError::failure(e.to_string()))?);
    } else if names.is_empty() {
        ui::note(&format!("no secrets in the {} store; `ws secret set NAME` adds one", store.kind()));
    } else {
        for name in &names {
            out!("{name}");
        }
    }
    Ok(exit::OK)
}

fn cmd_secret_rm(args: RmArgs) -> Result<i32, CliError> {
    let store = open(args.store.store)?;
    store.remove(&args.name).map_err(|e| store_error(e, store.kind()))?;
    secrets_changed(store.as_ref(), &args.name, None);
    ui::note(&format!("removed secret {} from the {} store", args.name, store.kind()));
    Ok(exit::OK)
}

/// Called after every successful `set` (with the new value) and `rm`
/// (`None`): keeps the fingerprint file that `ws hooks run pre-commit` scans
/// staged content with (a salted hash, never the value) in step.
fn secrets_changed(store: &dyn SecretStore, name: &SecretName, value: Option<&Secret>) {
    let Some(path) = env::secret_fingerprints_file() else {
        ui::warn("no HOME or XDG_DATA_HOME: the pre-commit hook cannot learn this secret's fingerprint");
        return;
    };
    let result = ws_hooks::FingerprintFile::load(&path).and_then(|mut file| {
        match value {
            Some(v) => {
                let fp = ws_hooks::Fingerprint::of(name.as_str(), v.expose());
                if !fp.scannable() {
                    ui::warn(&format!(
                        "secret {name} is too short for the pre-commit hook to look for in staged files"
                    ));
                }
                file.add(fp);
            }
            None => {
                file.remove(name.as_str());
            }
        }
        file.save(&path)
    });
    if let Err(e) = result {
        ui::warn(&format!(
            "secret {name} is {} the {} store, but the pre-commit hook's list was not updated: {}",
            if value.is_some() { "in" } else { "gone from" },
            store.kind(),
            crate::error::chain(&e)
        ));
    }
}

/// The store flag, else $WS_SECRET_STORE, else automatic.
fn store_options(flag: Option<StoreKind>) -> Result<StoreOptions, CliError> {
    let kind = match flag {
        Some(k) => Some(k),
        None => match env::var_os(env::WS_SECRET_STORE) {
            None => None,
            Some(v) => Some(v.to_string_lossy().parse::<StoreKind>().map_err(|e| {
                CliError::usage(format!("{}: {e}", env::WS_SECRET_STORE))
                    .hint(format!("set {} to `keyutils` or `secret-service`, or unset it", env::WS_SECRET_STORE))
            })?),
        },
    };
    Ok(StoreOptions { kind, session_bus: env::session_bus() })
}

/// Opens the store `flag` names, else the one $WS_SECRET_STORE names, else
/// the one found here. For `ws secret`, and for resolving a profile's stored
/// secrets at session start (`open(None)`).
pub(crate) fn open(flag: Option<StoreKind>) -> Result<Box<dyn SecretStore>, CliError> {
    let options = store_options(flag)?;
    let kind = options.kind.unwrap_or(StoreKind::Keyutils);
    open_store(&options).map_err(|e| store_error(e, kind))
}

/// Where sessions' credential routes find their secrets: the store
/// `WS_SECRET_STORE` names, and this process's environment.
#[derive(Debug)]
pub(crate) struct CliSecrets;

impl ws_session::Secrets for CliSecrets {
    fn store(&self) -> Result<Box<dyn SecretStore>, ws_session::Error> {
        open(None).map_err(to_library)
    }
    fn store_error(&self, e: StoreError, kind: StoreKind) -> ws_session::Error {
        to_library(store_error(e, kind))
    }
    fn var(&self, name: &str) -> Option<std::ffi::OsString> {
        env::profile_var(name)
    }
}

/// A `CliError` said by the library: a usage error stays one.
fn to_library(e: CliError) -> ws_session::Error {
    let kind =
        if e.code == crate::error::exit::USAGE { ws_session::ErrorKind::Usage } else { ws_session::ErrorKind::Failure };
    ws_session::Error { kind, message: e.message, hint: e.hint, status: None }
}

/// A store's failure, with what to do about it.
pub(crate) fn store_error(e: StoreError, kind: StoreKind) -> CliError {
    use ws_proxy::secrets::StoreError as E;
    let other = match kind {
        StoreKind::Keyutils => "--store secret-service",
        StoreKind::SecretService => "--store keyutils",
    };
    let msg = crate::error::chain(&e);
    match &e {
        E::NotFound { store, .. } => {
            CliError::usage(msg).hint(format!("`ws secret list --store {store}` shows the names stored there"))
        }
        E::KeyQuota => CliError::failure(msg).hint(
            "this user's kernel key quota is full (/proc/sys/kernel/keys/maxbytes, maxkeys); \
             remove secrets you no longer need with `ws secret rm`, or use --store secret-service",
        ),
        E::Keyutils { .. } => CliError::failure(msg).hint(format!(
            "the kernel refused the keyring call (inside a container or a ws session, seccomp may deny it); \
             run ws secret on the host, or use {other}"
        )),
        E::NoSessionBus => CliError::usage(msg).hint(format!(
            "set {} to the session bus's address (a desktop session does), or use --store keyutils",
            env::DBUS_SESSION_BUS_ADDRESS
        )),
        E::Connect { .. } => CliError::failure(msg).hint(
            "start a Secret Service (gnome-keyring-daemon, KWallet, KeePassXC) on that bus, or use --store keyutils",
        ),
        E::Locked => CliError::failure(msg).hint(
            "unlock the default keyring (log in to the desktop, or `gnome-keyring-daemon --unlock`), \
             or use --store keyutils",
        ),
        E::SecretService { .. } => CliError::failure(msg).hint(format!("or use {other}")),
    }
}

/// The value to store: hidden input on a terminal, else all of stdin; one
/// trailing newline dropped; never empty.
fn read_value(name: &SecretName) -> Result<Secret, CliError> {
    let stdin = std::io::stdin();
    let mut bytes = Zeroizing::new(Vec::new());
    if stdin.is_terminal() {
        let line = prompt_hidden(&format!("value for secret {name} (input hidden): "))?;
        bytes.extend_from_slice(line.as_bytes());
    } else {
        stdin.lock().read_to_end(&mut bytes).map_err(|e| CliError::failure(format!("cannot read stdin: {e}")))?;
    }
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Err(CliError::usage(format!("refusing to store an empty secret {name}"))
            .hint(format!("pass the value on stdin: `ws secret set {name} < FILE`, or type it at the prompt")));
    }
    Ok(Secret::new(std::mem::take(&mut *bytes)))
}

/// Asks on stderr and reads one line from the terminal with echo off.
fn prompt_hidden(prompt: &str) -> Result<Zeroizing<String>, CliError> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let tty_err = |e: std::io::Error| CliError::failure(format!("cannot read the secret from the terminal: {e}"));
    let saved = tcgetattr(&stdin).map_err(|e| tty_err(e.into()))?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    // Echo goes off before the prompt shows, so nothing typed after it echoes.
    tcsetattr(&stdin, OptionalActions::Flush, &quiet).map_err(|e| tty_err(e.into()))?;
    ui::prompt(prompt);
    let mut line = Zeroizing::new(String::new());
    let read = stdin.lock().read_line(&mut line);
    let restored = tcsetattr(&stdin, OptionalActions::Now, &saved);
    read.map_err(tty_err)?;
    restored.map_err(|e| tty_err(e.into()))?;
    Ok(line)
}
