//! Every environment variable `ws` reads, in one place.

use std::ffi::OsString;
use std::path::PathBuf;

/// Parent directory for workspace stores; overrides the data directory.
pub const WS_STORE_DIR: &str = "WS_STORE_DIR";
/// Standard base directories.
pub const XDG_DATA_HOME: &str = "XDG_DATA_HOME";
pub const XDG_CONFIG_HOME: &str = "XDG_CONFIG_HOME";
pub const HOME: &str = "HOME";
/// Temporary directory the sandbox may write to (`$TMPDIR` in profiles).
pub const TMPDIR: &str = "TMPDIR";
/// The secret store `ws secret` uses: `keyutils` or `secret-service`.
pub const WS_SECRET_STORE: &str = "WS_SECRET_STORE";
/// Where the Secret Service is reached; else `$XDG_RUNTIME_DIR/bus`.
pub const DBUS_SESSION_BUS_ADDRESS: &str = "DBUS_SESSION_BUS_ADDRESS";
pub const XDG_RUNTIME_DIR: &str = "XDG_RUNTIME_DIR";
/// Set by `sudo`: the user `ws` then acts for (see `user.rs`).
pub const SUDO_UID: &str = "SUDO_UID";
/// The recorder service's socket (`ws recorder serve`); default `/run/ws/recorder.sock`.
pub const WS_RECORDER_SOCKET: &str = "WS_RECORDER_SOCKET";
/// Socket activation (`sd_listen_fds`): the listening socket is fd 3.
pub const LISTEN_PID: &str = "LISTEN_PID";
pub const LISTEN_FDS: &str = "LISTEN_FDS";
/// Audit sinks for every session besides the local log (`journald`), as
/// `--audit-sink` names them: the setting for a machine or an image.
pub const WS_AUDIT_SINK: &str = "WS_AUDIT_SINK";
/// Set by the shell code `ws completions SHELL` prints: this run answers a
/// completion request (clap_complete's protocol) instead of running a command.
pub const WS_COMPLETE: &str = "WS_COMPLETE";
/// How a session's after-snapshot is taken: unset (from the record when
/// it can be trusted), `walk` (always the whole workspace), `check` (both,
/// compared; for tests).
pub const WS_AFTER_SNAPSHOT: &str = "WS_AFTER_SNAPSHOT";
/// `json`: ws's own messages on stderr become one JSON object a line
/// (`{"message": …}`, `{"error": …}`), for programs that drive ws (the
/// Python SDK); see `ui::machine`.
pub const WS_MESSAGES: &str = "WS_MESSAGES";
/// How a session's before-snapshot is taken: unset (from the watch when it
/// can vouch), `off` (never start or ask the watch: always the whole
/// workspace), `check` (both, compared; for tests).
pub const WS_WATCH: &str = "WS_WATCH";
/// Where the watch listens (`watch.sock`, `watch.lock`); default `/run/ws`.
pub const WS_WATCH_DIR: &str = "WS_WATCH_DIR";
/// Disables colour when set to anything (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";
/// The index a commit is made from, set by git for its commit hooks.
pub const GIT_INDEX_FILE: &str = "GIT_INDEX_FILE";
/// The git directory, set by git for hooks in linked worktrees.
pub const GIT_DIR: &str = "GIT_DIR";
/// git's variables that move the work tree, object store or refs: a hook
/// that sees one leaves reading the index and objects to git.
pub const GIT_REDIRECTS: [&str; 6] = [
    "GIT_WORK_TREE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_REPLACE_REF_BASE",
];
/// Set by the pre-commit framework for a prepare-commit-msg hook, to which it
/// passes only the message file: git's other two arguments.
pub const PRE_COMMIT_COMMIT_MSG_SOURCE: &str = "PRE_COMMIT_COMMIT_MSG_SOURCE";
pub const PRE_COMMIT_COMMIT_OBJECT_NAME: &str = "PRE_COMMIT_COMMIT_OBJECT_NAME";

/// The OpenTelemetry variables audit export reads (`ws_otlp::VARS`: the
/// endpoint, protocol, headers, resource, timeouts and batching).
pub fn otel_var(name: &str) -> Option<String> {
    debug_assert!(ws_otlp::VARS.contains(&name), "{name} is not registered");
    var_os(name).map(|v| v.to_string_lossy().into_owned())
}

pub fn var_os(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

pub fn path(name: &str) -> Option<PathBuf> {
    var_os(name).map(PathBuf::from).filter(|p| p.is_absolute())
}

/// A per-user directory variable: acting for a user as root, the
/// environment is root's (or whatever sudo kept), so these come from the
/// user's home instead.
fn user_path(name: &str) -> Option<PathBuf> {
    if crate::user::acting_for().is_some() { None } else { path(name) }
}

/// The home directory: the password database's for a user `ws` acts for as
/// root, else `$HOME`.
pub fn home() -> Option<PathBuf> {
    match crate::user::acting_for() {
        Some(u) => Some(u.home.clone()),
        None => path(HOME),
    }
}

/// Where stores go unless the workspace's filesystem needs one of its own.
pub fn store_parent() -> Option<PathBuf> {
    path(WS_STORE_DIR)
        .or_else(|| user_path(XDG_DATA_HOME).map(|d| d.join("ws/stores")))
        .or_else(|| home().map(|h| h.join(".local/share/ws/stores")))
}

/// git's default global excludes file when `core.excludesFile` is unset.
pub fn default_global_excludes() -> Option<PathBuf> {
    user_path(XDG_CONFIG_HOME).map(|d| d.join("git/ignore")).or_else(|| home().map(|h| h.join(".config/git/ignore")))
}

/// Whether ws's messages are JSON lines (`WS_MESSAGES=json`).
pub fn json_messages() -> bool {
    var_os(WS_MESSAGES).is_some_and(|v| v == "json")
}

pub fn no_color() -> bool {
    var_os(NO_COLOR).is_some()
}

/// Where user profiles live: `$XDG_CONFIG_HOME/ws/profiles` or `~/.config/ws/profiles`.
pub fn profile_dir() -> Option<PathBuf> {
    user_path(XDG_CONFIG_HOME).map(|d| d.join("ws/profiles")).or_else(|| home().map(|h| h.join(".config/ws/profiles")))
}

pub fn tmpdir() -> Option<PathBuf> {
    path(TMPDIR)
}

/// A variable a profile names as a credential's source (`secret = "env:VAR"`).
pub fn profile_var(name: &str) -> Option<OsString> {
    var_os(name)
}

/// The D-Bus session bus's address, if this login has one.
pub fn session_bus() -> Option<String> {
    if let Some(addr) = var_os(DBUS_SESSION_BUS_ADDRESS) {
        return Some(addr.to_string_lossy().into_owned());
    }
    let runtime = match crate::user::acting_for() {
        Some(u) => PathBuf::from(format!("/run/user/{}", u.uid)),
        None => path(XDG_RUNTIME_DIR)?,
    };
    let socket = runtime.join("bus");
    socket.exists().then(|| format!("unix:path={}", socket.display()))
}

/// The fingerprints of stored secrets the pre-commit hook looks for:
/// `$XDG_DATA_HOME/ws/secret-fingerprints.json` or `~/.local/share/ws/secret-fingerprints.json`.
pub fn secret_fingerprints_file() -> Option<PathBuf> {
    user_path(XDG_DATA_HOME)
        .or_else(|| home().map(|h| h.join(".local/share")))
        .map(|d| d.join("ws/secret-fingerprints.json"))
}

/// What the session library is told of this environment, and the printer
/// for what it says.
pub fn options() -> ws_session::Options {
    let home = home();
    ws_session::Options {
        store_parent: store_parent(),
        tmpdir: tmpdir(),
        config_home: path(XDG_CONFIG_HOME).or_else(|| home.as_ref().map(|h| h.join(".config"))),
        default_global_excludes: default_global_excludes(),
        profile_dir: profile_dir(),
        after_snapshot: ws_session::after::Mode::from_setting(
            var_os(WS_AFTER_SNAPSHOT).as_deref().and_then(|v| v.to_str()),
        ),
        watch: ws_session::watch::Mode::from_setting(var_os(WS_WATCH).as_deref().and_then(|v| v.to_str())),
        watch_dir: path(WS_WATCH_DIR).unwrap_or_else(|| PathBuf::from(ws_session::watch::DEFAULT_DIR)),
        recorder_socket: crate::service::socket_path(),
        helper: None,
        run_as: crate::user::acting_for().cloned(),
        observer: std::sync::Arc::new(crate::observe::Printer::default()),
        secrets: Some(std::sync::Arc::new(crate::commands::secret::CliSecrets)),
        home,
    }
}
