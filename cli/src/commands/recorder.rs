//! `ws recorder serve | install | uninstall`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::error::CliError;
use crate::ui;

#[derive(Debug, Subcommand)]
pub enum RecorderCommand {
    Serve(ServeArgs),
    Install(InstallArgs),
    Uninstall(InstallArgs),
}

/// Run the recorder service (as root): record the sessions of users who are
/// not root — every write as it happens and every Landlock denial — and give
/// each user only the record of their own sessions.
///
/// An unprivileged `ws session start` finds the service at
/// `$WS_RECORDER_SOCKET`, else /run/ws/recorder.sock, and uses it with no
/// flag. Under socket activation (`LISTEN_FDS`: systemd, or
/// `systemd-socket-activate -l /run/ws/recorder.sock ws recorder serve`) it
/// serves the socket it is given; otherwise it makes one (mode 0666: any
/// user may ask, the service checks what they may have).
///
/// Example: sudo ws recorder serve --socket /run/ws/recorder.sock
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen when not socket-activated.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
}

/// Install (or remove) a systemd socket and service for `ws recorder serve`:
/// the socket /run/ws/recorder.sock, the service started on the first
/// connection, hardened (no new privileges, only the capabilities recording
/// needs, a read-only system, a memory limit).
///
/// Example: sudo ws recorder install
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Where the unit files go.
    #[arg(long, value_name = "DIR", default_value = "/etc/systemd/system")]
    unit_dir: PathBuf,
    /// Only write (or remove) the files: no `systemctl`.
    #[arg(long)]
    no_start: bool,
}

pub fn run(c: RecorderCommand) -> Result<i32, CliError> {
    match c {
        RecorderCommand::Serve(a) => cmd_serve(a),
        RecorderCommand::Install(a) => cmd_install(a),
        RecorderCommand::Uninstall(a) => cmd_uninstall(a),
    }
}

fn need_root(what: &str) -> Result<(), CliError> {
    if rustix::process::geteuid().is_root() {
        Ok(())
    } else {
        Err(CliError::usage(format!("{what} needs root")).hint(format!("run `sudo ws recorder {what}`")))
    }
}

struct StderrJournal;

impl crate::service::Journal for StderrJournal {
    fn note(&self, line: &str) {
        ui::note(&format!("recorder: {line}"));
    }
}

fn cmd_serve(args: ServeArgs) -> Result<i32, CliError> {
    need_root("serve")?;
    let number = |name: &str| crate::env::var_os(name).and_then(|v| v.to_str()?.parse::<u32>().ok());
    let listener =
        match ws_sandbox::service::activated_listener(number(crate::env::LISTEN_PID), number(crate::env::LISTEN_FDS)) {
            Some(l) => {
                ui::note("recorder: serving the socket it was given (socket activation)");
                l
            }
            None => {
                let path = args.socket.unwrap_or_else(crate::service::socket_path);
                let l = listen(&path)?;
                ui::note(&format!("recorder: serving {}", path.display()));
                l
            }
        };
    crate::service::serve(listener, &StderrJournal)
        .map_err(|e| CliError::failure(format!("the recorder service stopped: {e}")))?;
    Ok(0)
}

/// A listening socket at `path`, any user may connect to; a stale socket
/// (nothing listening) is replaced, anything else at `path` is refused.
fn listen(path: &Path) -> Result<std::os::unix::net::UnixListener, CliError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.exists()) {
        fs_err::create_dir_all(dir)?;
        fs_err::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return Err(CliError::usage(format!("{} exists and is not a socket", path.display()))
                .hint("remove it, or pass --socket PATH"));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(CliError::usage(format!("a recorder service already serves {}", path.display())).hint(
                "stop it first (`systemctl stop ws-recorder.socket ws-recorder.service`), or pass --socket PATH",
            ));
        }
        fs_err::remove_file(path)?;
    }
    let l = std::os::unix::net::UnixListener::bind(path)
        .map_err(|e| CliError::failure(format!("cannot listen on {}: {e}", path.display())))?;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(l)
}

const SOCKET_UNIT: &str = "ws-recorder.socket";
const SERVICE_UNIT: &str = "ws-recorder.service";

/// The unit files for `exe`. Pure.
pub fn units(exe: &Path) -> (String, String) {
    let socket = format!(
        "[Unit]\n\
         Description=ws recorder service socket (records sessions of users who are not root)\n\
         \n\
         [Socket]\n\
         ListenStream={}\n\
         # Any user may ask; the service gives each only the record of their own sessions.\n\
         SocketMode=0666\n\
         DirectoryMode=0755\n\
         \n\
         [Install]\n\
         WantedBy=sockets.target\n",
        crate::service::DEFAULT_SOCKET
    );
    let service = format!(
        "[Unit]\n\
         Description=ws recorder service (fanotify writes and Landlock denials of unprivileged sessions)\n\
         Requires={SOCKET_UNIT}\n\
         After={SOCKET_UNIT}\n\
         \n\
         [Service]\n\
         ExecStart={} recorder serve\n\
         # fanotify filesystem marks and open_by_handle_at; the audit multicast group;\n\
         # entering a session's namespaces; reading workspaces and /proc of any user.\n\
         CapabilityBoundingSet=CAP_SYS_ADMIN CAP_DAC_READ_SEARCH CAP_AUDIT_READ CAP_AUDIT_CONTROL CAP_SYS_PTRACE\n\
         NoNewPrivileges=yes\n\
         ProtectSystem=strict\n\
         ProtectHome=read-only\n\
         ProtectKernelTunables=yes\n\
         ProtectKernelModules=yes\n\
         ProtectControlGroups=yes\n\
         ProtectClock=yes\n\
         RestrictRealtime=yes\n\
         RestrictSUIDSGID=yes\n\
         LockPersonality=yes\n\
         MemoryDenyWriteExecute=yes\n\
         # Audit netlink lives in the host's network namespace: no PrivateNetwork.\n\
         RestrictAddressFamilies=AF_UNIX AF_NETLINK\n\
         SystemCallArchitectures=native\n\
         MemoryMax=256M\n\
         TasksMax=4096\n\
         # About five descriptors per session recorded.\n\
         LimitNOFILE=65536\n\
         Restart=on-failure\n",
        exe.display()
    );
    (socket, service)
}

fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn systemctl(args: &[&str]) -> Result<(), CliError> {
    let s = std::process::Command::new("systemctl")
        .args(args)
        .status()
        .map_err(|e| CliError::failure(format!("cannot run systemctl: {e}")))?;
    if s.success() { Ok(()) } else { Err(CliError::failure(format!("systemctl {} failed ({s})", args.join(" ")))) }
}

fn cmd_install(args: InstallArgs) -> Result<i32, CliError> {
    need_root("install")?;
    let exe = fs_err::canonicalize(std::env::current_exe()?)?;
    let (socket, service) = units(&exe);
    fs_err::create_dir_all(&args.unit_dir)?;
    for (name, text) in [(SOCKET_UNIT, socket), (SERVICE_UNIT, service)] {
        let path = args.unit_dir.join(name);
        let tmp = args.unit_dir.join(format!(".{name}.ws-new"));
        fs_err::write(&tmp, text)?;
        fs_err::rename(&tmp, &path)?;
        ui::note(&format!("wrote {}", path.display()));
    }
    if args.no_start {
        return Ok(0);
    }
    if !systemd_running() {
        ui::note(&format!(
            "systemd is not running here: start the service yourself (`ws recorder serve`, or under any supervisor that passes LISTEN_FDS for {})",
            crate::service::DEFAULT_SOCKET
        ));
        return Ok(0);
    }
    systemctl(&["daemon-reload"])?;
    systemctl(&["enable", "--now", SOCKET_UNIT])?;
    ui::note(&format!("the recorder service listens on {}", crate::service::DEFAULT_SOCKET));
    Ok(0)
}

fn cmd_uninstall(args: InstallArgs) -> Result<i32, CliError> {
    need_root("uninstall")?;
    if !args.no_start && systemd_running() {
        let _ = systemctl(&["disable", "--now", SOCKET_UNIT, SERVICE_UNIT]);
    }
    for name in [SOCKET_UNIT, SERVICE_UNIT] {
        let path = args.unit_dir.join(name);
        match fs_err::remove_file(&path) {
            Ok(()) => ui::note(&format!("removed {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !args.no_start && systemd_running() {
        systemctl(&["daemon-reload"])?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_units_name_the_binary_and_the_socket() {
        let (socket, service) = super::units(std::path::Path::new("/usr/local/bin/ws"));
        assert!(socket.contains("ListenStream=/run/ws/recorder.sock"));
        assert!(socket.contains("SocketMode=0666"));
        assert!(service.contains("ExecStart=/usr/local/bin/ws recorder serve"));
        assert!(service.contains("NoNewPrivileges=yes"));
        assert!(service.contains("MemoryMax="));
        assert!(!service.contains("CAP_SETUID"), "only what recording needs");
    }
}
