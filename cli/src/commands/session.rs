//! `ws session start | list | show`.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use clap::{Args, Subcommand};
use serde::Serialize;
use ws_snapshot::{
    Change, ChangeKind, ChangeState, EntryKind, ExitStatus, Manifest, ManifestId, Session, SessionState,
};

use crate::error::{CliError, exit};
use crate::workspace::Workspace;
use crate::{display, out, ui};

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    Start(StartArgs),
    List(ListArgs),
    Show(ShowArgs),
}

/// Snapshot the workspace, run a command, and leave its changes pending review.
///
/// The workspace is the git top-level above the current directory, else the
/// current directory. The command's exit status is passed through (128+N if
/// it died of signal N; 125 if ws could not start it). Ctrl-C goes to the
/// command; ws stays to record what it changed.
///
/// Example: ws session start --profile claude-code --name refactor -- claude --dangerously-skip-permissions
#[derive(Debug, Args)]
pub struct StartArgs {
    /// A label to find the session by later (`ws diff refactor`).
    #[arg(long)]
    name: Option<String>,
    /// The sandbox profile: a built-in (`ws profile list`), one of yours in
    /// ~/.config/ws/profiles/NAME.toml, or a path to a .toml file.
    #[arg(long, default_value = "default")]
    profile: String,
    /// Run even if a layer the profile requires is missing on this machine
    /// (the session record says what was not enforced). Never implied.
    #[arg(long)]
    allow_degraded: bool,
    /// Also send every audit record here as it is written (repeatable;
    /// WS_AUDIT_SINK=journald for every session). OTLP export is on when
    /// OTEL_EXPORTER_OTLP_ENDPOINT is set.
    #[arg(long, value_enum, value_name = "SINK")]
    audit_sink: Vec<crate::export::AuditSink>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// List the sessions of this workspace, oldest first.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Machine-readable output (stable; documented in the README).
    #[arg(long)]
    json: bool,
}

/// Show one session: command, times, exit status, change counts, exclusions.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Session id (a unique prefix is enough) or name; default: the newest pending one.
    #[arg(add = clap_complete::ArgValueCompleter::new(crate::commands::completions::session_ids))]
    id: Option<String>,
    #[arg(long)]
    json: bool,
}

pub fn run(c: SessionCommand) -> Result<i32, CliError> {
    match c {
        SessionCommand::Start(a) => cmd_start(a),
        SessionCommand::List(a) => cmd_list(a),
        SessionCommand::Show(a) => cmd_show(a),
    }
}

fn cmd_start(args: StartArgs) -> Result<i32, CliError> {
    let run = Run {
        name: args.name,
        profile: &args.profile,
        allow_degraded: args.allow_degraded,
        command: &args.command,
        learn: false,
        sinks: crate::export::sinks(&args.audit_sink).map_err(CliError::usage)?,
    };
    Ok(run_session(run)?.code)
}

/// A session to run: what `ws session start` and `ws learn` share.
pub struct Run<'a> {
    pub name: Option<String>,
    pub profile: &'a str,
    pub allow_degraded: bool,
    pub command: &'a [OsString],
    /// `ws learn`: filesystem reads and the network open but recorded.
    pub learn: bool,
    /// Where audit records also go (OTLP goes by its variables).
    pub sinks: Vec<crate::export::AuditSink>,
}

/// A session that ran.
pub struct Ran {
    /// The exit code to pass on.
    pub code: i32,
    pub ws: Workspace,
    pub session: Session,
    /// The profile the session was started with (for `ws learn`, the base).
    pub profile: ws_sandbox::Profile,
    pub requests: Vec<ws_proxy::RequestEvent>,
    pub learning: Option<crate::recording::Learning>,
}

/// Snapshots the workspace, runs the command in its sandbox with its
/// recorders, and leaves the session pending review.
pub fn run_session(run: Run) -> Result<Ran, CliError> {
    let program = &run.command[0];
    check_runnable(program)?;
    let ws = Workspace::discover()?;
    let mut sandbox = Sandbox::prepare(&ws, run.profile, run.allow_degraded, run.learn)?;
    // Ctrl-C and Ctrl-\ reach the command through the terminal's process
    // group; ws only has to survive them to record the session.
    let relay = ws_sandbox::exec::SignalRelay::install()
        .map_err(|e| CliError::failure(format!("cannot set up signal handling: {e}")))?;

    // The sandbox and its recorders start first and wait: the snapshot is
    // taken with the write recorder already watching, and the command
    // starts after it (ws_sandbox::exec::Control).
    let mut recorders = {
        let _root = crate::user::as_root("set up the session's recorders")?;
        crate::recording::Recorders::prepare(&ws.root, &mut sandbox.spec, run.learn)?
    };
    let (mut control, session_end) = ws_sandbox::exec::Control::pair()
        .map_err(|e| CliError::failure(format!("cannot create the session's control channel: {e}")))?;
    sandbox.spec.control_fd = Some(std::os::fd::AsRawFd::as_raw_fd(&session_end));
    let mut child = {
        // The launcher needs root for the namespaces and the recorder; it
        // runs the command as the user (`LaunchSpec::run_as`).
        let _root = crate::user::as_root("start the sandbox")?;
        recorders.spawn(&mut sandbox.command(run.command), Some(session_end))
    }
    .map_err(|e| CliError::failure(format!("cannot start the sandbox: {e}")).code(exit::NOT_STARTED))?;
    relay.forward_to(child.id());
    // Read while the sandbox starts: the before-snapshot's stat cache. Any
    // stored manifest serves (the walk checks every entry against the file's
    // stat data), so this one need not be read under the workspace's lock.
    let reading = std::time::Instant::now();
    let previous = ws.latest_manifest();
    let read_cache = reading.elapsed();
    if !control.wait_ready() {
        // The launcher could not set the sandbox up, and said why; nothing
        // was snapshotted, nothing ran.
        let code = child.wait().ok().and_then(|s| s.code()).unwrap_or(exit::NOT_STARTED);
        return Err(CliError::failure(
            "the session did not start: its sandbox could not be set up (the reason is above); nothing was snapshotted",
        )
        .code(code));
    }
    // Not root: the recorder service watches from here on, before the snapshot.
    recorders.attach_service(&ws.root, run.learn);

    let mut excludes_then = crate::after::Excludes::default();
    let excludes = &mut excludes_then;
    let mut watch_token = None;
    let token = &mut watch_token;
    let snapped = (|| {
        let _lock = ws.lock()?;
        let previous = previous; // moved in: freed once the snapshot is taken
        let started = std::time::Instant::now();
        // What the excludes files say now: should one change by the end, the
        // after-snapshot walks everything (those outside are not recorded).
        *excludes = crate::after::Excludes::read(ws.exclude_files());
        let watched = crate::watch::before(&ws, previous.as_ref());
        let snap = ws.before_snapshot(previous.as_ref(), &watched)?;
        crate::watch::remember(&ws, &snap.id, watched.token, excludes);
        *token = watched.token;
        // The stat cache's read counts as the snapshot's, though it ran
        // while the sandbox started.
        let snapshot_ms = (started.elapsed() + read_cache).as_millis() as u64;
        let session = Session {
            id: Session::new_id(),
            name: run.name.clone(),
            workspace: ws.root.display().to_string(),
            command: run.command.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
            started_ms: crate::now_ms(),
            ended_ms: None,
            supervisor_pid: std::process::id(),
            state: SessionState::Running,
            exit: None,
            before: snap.id.0.clone(),
            after: None,
            snapshot_ms: Some(snapshot_ms),
            after_snapshot_ms: None,
            recording: None,
            after_from: None,
            before_from: Some(watched.from()),
        };
        ws.store.save_session(&session)?;
        crate::network::record_phantoms(&ws.store, &session.id, &sandbox.net.phantoms)?;
        let excluded = report_excluded(&snap.manifest);
        Ok::<_, CliError>((session, excluded, snap.manifest))
    })();
    let (mut session, excluded, mut before) = match snapped {
        Ok((s, e, b)) => (s, e, Some(b)),
        Err(e) => {
            // No go: the command never starts.
            drop(control);
            let _ = child.wait();
            return Err(e);
        }
    };

    // The audit log and the recorders (recording.rs): recording before the command starts.
    let network = sandbox.net.mode.name();
    let profile_label = if run.learn { format!("{} (ws learn)", run.profile) } else { run.profile.to_owned() };
    let exports =
        crate::export::start(&crate::export::context(&session.id, &session.workspace, &profile_label), &run.sinks);
    let mut record =
        recorders.start(&ws.store, &session, &profile_label, &sandbox.spec, network, exports.observer())?;
    let git_guard = crate::git_guard::GitGuard::start(&ws.root);
    let started = control.go();
    if started {
        match sandbox.net.start(record.log()) {
            Ok(None) => {}
            Ok(Some(warning)) => ui::warn(&warning),
            // Nobody serves the session's proxy socket: its network is closed.
            Err(e) => ui::warn(&format!("{}; the session runs with its network closed", e.message)),
        }
    }
    // With init, it says when the command has exited and holds the rest of
    // the session frozen, the recorder watching, until the after-snapshot.
    let held = control.wait_exit();
    let after = if held.is_some() {
        let evidence = crate::after::gather(record.changed(std::time::Duration::from_secs(5)));
        let lock = ws.lock()?;
        let exit = held.map(|(code, signal)| ExitStatus { code, signal });
        let after = ws.finish_session(&mut session, before.take(), exit, evidence, Some(&excludes_then));
        crate::commands::gc::auto(&ws, &lock);
        Some(after)
    } else {
        None
    };
    record.end_service();
    control.end();
    let status = child.wait();
    drop(relay);
    let requests = sandbox.net.stop();
    let profile = std::mem::take(&mut sandbox.profile);
    {
        let _root = crate::user::as_root("remove the session's cgroup")?;
        drop(sandbox); // removes the session's cgroup, now that its processes are gone
    }

    let (exit_status, code) = match (held, &status) {
        (Some((code, signal)), _) => {
            (Some(ExitStatus { code, signal }), code.unwrap_or_else(|| 128 + signal.unwrap_or(0)))
        }
        (None, Ok(s)) => (
            Some(ExitStatus { code: s.code(), signal: s.signal() }),
            s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        ),
        (None, Err(e)) => {
            ui::error(&format!("cannot run {}: {e}", program.to_string_lossy()), None);
            (None, exit::NOT_STARTED)
        }
    };
    // Without init the after-snapshot comes now, the log still open: no
    // process of the session is left in its PID namespace (or, without one,
    // the command has exited) when git's control surface is put back.
    let mut after = after.unwrap_or_else(|| {
        ws.lock().and_then(|_lock| {
            let why = "the session did not hold itself for the after-snapshot (no PID namespace, or its init died)";
            let why = why.to_string();
            ws.finish_session(&mut session, before.take(), exit_status, Err(why), None)
        })
    });
    if let Ok(changes) = &mut after {
        git_guard.finish(&ws, &mut session, changes, &record.log());
        // The after-snapshot is the store's latest: good as of the token the
        // before-snapshot was taken with (what changed since, the session's
        // writes among it, is looked at again next time).
        if let Some(id) = session.after.clone().map(ws_snapshot::ManifestId)
            && ws.store.latest().as_ref() == Some(&id)
        {
            crate::watch::remember(&ws, &id, watch_token, &excludes_then);
        }
    }
    let (recording, learning) = record.finish(exit_status);
    crate::recording::report(&ws.store, &session, &recording);
    exports.finish(&session.id);
    session.recording = Some(recording);
    let changes = after?;
    ws.store.save_session(&session)?;
    summarize(&session, &changes, excluded);
    summarize_network(&requests);
    Ok(Ran { code, ws, session, profile, requests, learning })
}

fn summarize_network(requests: &[ws_proxy::RequestEvent]) {
    if requests.is_empty() {
        return;
    }
    let refused: Vec<&ws_proxy::RequestEvent> = requests.iter().filter(|r| !r.allowed).collect();
    // Host names are the session's words: rendered, never raw.
    let mut hosts: Vec<String> = refused.iter().map(|r| display::text(r.host.as_bytes())).collect();
    hosts.sort_unstable();
    hosts.dedup();
    let list = if hosts.is_empty() {
        String::new()
    } else {
        let more = if hosts.len() > 5 { format!(" and {} more", hosts.len() - 5) } else { String::new() };
        format!(
            ": {}{more} — `ws why --host HOST` explains",
            hosts.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        )
    };
    ui::note(&format!("network: {} request(s), {} refused{list}", requests.len(), refused.len()));
}

/// How the command will be confined: decided, and refused if it cannot be
/// what the profile requires, before anything is snapshotted.
struct Sandbox {
    profile: ws_sandbox::Profile,
    spec: ws_sandbox::exec::LaunchSpec,
    env: Vec<(OsString, OsString)>,
    net: crate::network::SessionNetwork,
    /// Held for its `Drop`, which removes the session's cgroup.
    _cgroup: Option<ws_sandbox::cgroups::SessionCgroup>,
}

impl Sandbox {
    /// `learn`: reads, execution and the network open (and recorded),
    /// writes open in the home and temporary directories too.
    fn prepare(ws: &Workspace, profile: &str, allow_degraded: bool, learn: bool) -> Result<Sandbox, CliError> {
        use ws_sandbox::profile::Layer;
        let p = crate::profiles::resolve(profile)?;
        let (home, tmp) = (crate::env::home(), crate::env::tmpdir());
        let mut fs = p.fs_policy(&crate::profiles::vars(&ws.root, &home, &tmp));
        if learn {
            fs = crate::commands::learn::open_policy(fs, &home, &tmp);
        }
        let abi = ws_sandbox::probe::landlock_abi();
        let landlock = abi > 0;
        let seccomp = ws_sandbox::probe::seccomp_available();
        let root = ws_sandbox::privilege::root_available();
        // Root may be denied namespaces too (a container's seccomp profile).
        let root_ns = root && ws_sandbox::probe::root_namespaces();
        let namespaces_possible = root_ns || ws_sandbox::probe::user_namespaces();
        let missing: Vec<&str> = p
            .require
            .iter()
            .filter(|l| match l {
                Layer::Landlock => !landlock,
                Layer::Seccomp => !seccomp,
                Layer::Namespaces => !namespaces_possible,
            })
            .map(|l| l.name())
            .collect();
        if !missing.is_empty() {
            let what = missing.join(" and ");
            if !allow_degraded {
                return Err(CliError::usage(format!(
                    "profile `{}` requires {what}, which this machine cannot enforce",
                    p.name
                ))
                .hint("`ws doctor` shows what is missing; pass --allow-degraded to run without it anyway"));
            }
            ui::warn(&format!(
                "running without {what} (--allow-degraded): the command is less confined than profile `{}` asks",
                p.name
            ));
        }
        if !namespaces_possible && !p.require.contains(&Layer::Namespaces) {
            ui::warn(
                "running without namespaces: this machine lets ws create none (in a container, its seccomp profile or missing CAP_SYS_ADMIN); \
                 the session sees other processes in /proc, .git's control files are protected only by the check at its end, and its network is confined by Landlock instead",
            );
        }
        let mode = match crate::network::Mode::choose(namespaces_possible, abi) {
            Some(m) => m,
            None if allow_degraded => {
                ui::warn(
                    "running with the network NOT confined (--allow-degraded): this machine can neither give the session a network namespace nor filter TCP with Landlock; the proxy is offered but can be bypassed",
                );
                crate::network::Mode::Filtered
            }
            None => {
                return Err(CliError::usage(
                    "this machine cannot confine the session's network: no user namespaces and Landlock below ABI 4 (Linux 6.7)",
                )
                .hint("`ws doctor` shows what is missing; pass --allow-degraded to run with the network not confined"));
            }
        };
        let vars = crate::profiles::vars(&ws.root, &home, &tmp);
        let mut ca = Vec::new();
        for f in p.ca_files(&vars) {
            ca.push(fs_err::read(&f).map_err(|e| {
                CliError::usage(format!("profile `{}`: cannot read CA file: {e}", p.name))
                    .hint("fix or remove the path in [network] ca_files")
            })?);
        }
        let routes = crate::network::routes(&p, &ws.store)?;
        let rules = if learn { crate::commands::learn::open_rules() } else { crate::network::rules(&p) };
        let net = crate::network::SessionNetwork::prepare(mode, rules, routes, ca)?;
        if let Some(i) = &net.intercept {
            // The session's CA, readable whatever the profile grants.
            fs.read.push(i.dir.path().to_path_buf());
        }
        let store = ws.store.root().to_path_buf();
        let namespaces = namespaces_possible.then(|| ws_sandbox::exec::NamespaceSpec {
            protect: ws_sandbox::namespaces::protected_paths(&ws.root),
            // The store, and the user's runtime directory: the D-Bus session
            // bus (Secret Service), keyring and agent sockets live there, and
            // Landlock cannot stop a connect to a socket by path.
            hide: [
                Some(store.clone()),
                store.parent().map(Path::to_path_buf),
                Some(std::path::PathBuf::from(format!("/run/user/{}", rustix::process::getuid().as_raw()))),
            ]
            .into_iter()
            .flatten()
            .collect(),
            user_ns: !root_ns,
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
        });
        let cgroup = if p.limits.is_empty() {
            None
        } else {
            let made = {
                let _root = crate::user::as_root("create the session's cgroup")?;
                ws_sandbox::cgroups::create(&format!("ws-session-{}", std::process::id()), p.limits)
            };
            match made {
                Ok(cg) => Some(cg),
                Err(e) if allow_degraded => {
                    ui::warn(&format!(
                        "running without resource limits (--allow-degraded): {}",
                        crate::error::chain(&e)
                    ));
                    None
                }
                Err(e) => {
                    return Err(CliError::usage(format!(
                        "profile `{}` sets resource limits, which cannot be applied here: {}",
                        p.name,
                        crate::error::chain(&e)
                    ))
                    .hint("`ws doctor` shows the cgroup support; pass --allow-degraded to run without the limits"));
                }
            }
        };
        let spec = ws_sandbox::exec::LaunchSpec {
            fs,
            landlock,
            seccomp,
            namespaces,
            cgroup_procs: cgroup.as_ref().map(|c| c.procs_files()).unwrap_or_default(),
            require: p.require.iter().map(|l| l.name().to_owned()).chain(["network".to_owned()]).collect(),
            allow_degraded,
            recorder: None,
            net: net.spec.clone(),
            control_fd: None,
            run_as: crate::user::acting_for().map(|u| ws_sandbox::exec::RunAs {
                uid: u.uid,
                gid: u.gid,
                groups: u.groups.clone(),
            }),
        };
        let mut env = ws_sandbox::env::scrub(std::env::vars_os(), &p.env_allow);
        env.extend(p.env_set.iter().map(|(k, v)| (k.into(), v.into())));
        // The session's proxy is the only way out; nothing bypasses it.
        env.retain(|(k, _)| !k.eq_ignore_ascii_case("NO_PROXY") && !net.env.iter().any(|(n, _)| n == k));
        env.extend(net.env.iter().cloned());
        Ok(Sandbox { profile: p, spec, env, net, _cgroup: cgroup })
    }

    /// `ws __sandbox-exec SPEC -- CMD…` with the scrubbed environment: the
    /// launcher confines itself, then becomes CMD.
    fn command(&self, cmd: &[OsString]) -> Command {
        let me = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
        let spec = serde_json::to_string(&self.spec).unwrap_or_default();
        let mut c = Command::new(me);
        c.arg(ws_sandbox::exec::LAUNCHER_ARG).arg(spec).arg("--").args(cmd);
        c.env_clear().envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }
}

/// Refuses before snapshotting when the command cannot be found at all.
fn check_runnable(program: &OsString) -> Result<(), CliError> {
    use std::os::unix::ffi::OsStrExt;
    let name = program.as_bytes();
    if name.contains(&b'/') {
        // A path: it must exist before anything is snapshotted. Whether it
        // may run is the sandbox's to say (Landlock), after.
        return match std::fs::metadata(program) {
            Ok(m) if m.is_dir() => Err(CliError::usage(format!("{} is a directory", program.to_string_lossy()))
                .hint("give the command to run, not its directory")
                .code(126)),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(CliError::usage(format!("command not found: {}", program.to_string_lossy()))
                    .hint("check the path (relative paths start from the current directory)")
                    .code(127))
            }
            Err(_) => Ok(()),
        };
    }
    let path = crate::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).any(|d| {
        let p = d.join(program);
        std::fs::metadata(&p).is_ok_and(|m| m.is_file())
    });
    if found {
        Ok(())
    } else {
        Err(CliError::usage(format!("command not found: {}", program.to_string_lossy()))
            .hint("check the name, or give its full path")
            .code(127))
    }
}

fn report_excluded(m: &Manifest) -> usize {
    let excluded: Vec<_> = m.excluded().collect();
    if excluded.is_empty() {
        return 0;
    }
    let mut parts = Vec::new();
    for e in excluded.iter().take(5) {
        if let EntryKind::Excluded { files, bytes, reason } = &e.kind {
            let name = ui::entry_name(e);
            parts.push(match reason {
                ws_snapshot::ExcludeReason::OverBudget if *files > 1 => {
                    format!("{name} ({}+ files, {}+)", ui::count(*files), ui::bytes(*bytes))
                }
                ws_snapshot::ExcludeReason::OverBudget => format!("{name} ({})", ui::bytes(*bytes)),
                ws_snapshot::ExcludeReason::Special => format!("{name} (special file)"),
                ws_snapshot::ExcludeReason::Unreadable => format!("{name} (unreadable)"),
                ws_snapshot::ExcludeReason::NoSpace => format!("{name} (not stored: the disk was full)"),
            });
        }
    }
    let more = if excluded.len() > 5 { format!(" and {} more", excluded.len() - 5) } else { String::new() };
    ui::note(&format!(
        "not in the snapshot (ignored by git and too large; rollback cannot restore them): {}{more}",
        parts.join(", ")
    ));
    excluded.len()
}

#[derive(Debug, Default, Serialize, Clone, Copy)]
pub struct Counts {
    pub created: usize,
    pub modified: usize,
    pub deleted: usize,
    /// Moves: a deleted and a created path paired, counted once here and
    /// in neither `created` nor `deleted`.
    pub renamed: usize,
    pub pending: usize,
    pub approved: usize,
    pub rolled_back: usize,
    /// Changes inside `.git/objects`, `.git/logs` and `.git/index` (what a
    /// commit writes), counted here only: `ws diff` does not list them.
    pub inside_git: usize,
}

/// The one count of a session's changes that every view gives (the summary
/// at its end, `ws session show`, `ws session list`, `--json`): paths as
/// `ws diff` lists them, git's internals apart.
pub fn counts(changes: &[Change]) -> Counts {
    let (internal, visible): (Vec<Change>, Vec<Change>) =
        changes.iter().cloned().partition(|c| crate::commands::diff::git_internal(&c.path));
    let changes = &visible[..];
    let mut c = Counts { inside_git: internal.len(), ..Counts::default() };
    for ch in changes {
        match ch.kind() {
            ChangeKind::Added => c.created += 1,
            ChangeKind::Modified => c.modified += 1,
            ChangeKind::Removed => c.deleted += 1,
        }
        match ch.state {
            ChangeState::Pending => c.pending += 1,
            ChangeState::Approved => c.approved += 1,
            ChangeState::RolledBack => c.rolled_back += 1,
        }
    }
    let all: Vec<usize> = (0..changes.len()).collect();
    for row in ws_snapshot::renames::rows(changes, &all, 0) {
        if let ws_snapshot::renames::Row::Renamed { .. } = row {
            c.renamed += 1;
            c.created -= 1;
            c.deleted -= 1;
        }
    }
    c
}

fn inside_git(c: &Counts) -> String {
    if c.inside_git == 0 { String::new() } else { format!(" (and {} inside .git)", c.inside_git) }
}

fn summarize(s: &Session, changes: &[Change], excluded: usize) {
    if changes.is_empty() {
        ui::note(&format!("session {} made no changes", s.id));
        return;
    }
    let c = counts(changes);
    let git = inside_git(&c);
    let renamed = if c.renamed == 0 { String::new() } else { format!(", {} renamed", c.renamed) };
    ui::note(&format!(
        "session {}: {} created, {} modified, {} deleted{renamed}{git}, {} excluded from the snapshot — review with `ws diff`, then `ws approve` or `ws rollback`",
        s.id, c.created, c.modified, c.deleted, excluded
    ));
}

#[derive(Serialize)]
struct SessionJson<'a> {
    id: &'a str,
    name: Option<&'a str>,
    state: &'static str,
    workspace: &'a str,
    command: &'a [String],
    started_ms: u64,
    ended_ms: Option<u64>,
    exit_code: Option<i32>,
    exit_signal: Option<i32>,
    snapshot_ms: Option<u64>,
    after_snapshot_ms: Option<u64>,
    /// How the before-snapshot was taken: `{"from": "watch", "paths": N}`
    /// or `{"from": "walk", "reason": …}` (null for old sessions).
    before_snapshot: Option<&'a ws_snapshot::BeforeFrom>,
    /// How the after-snapshot was taken: `{"from": "record", "paths": N}`
    /// or `{"from": "walk", "reason": …}` (null for old sessions).
    after_snapshot: Option<&'a ws_snapshot::AfterFrom>,
    rollback_interrupted: bool,
    changes: Option<Counts>,
    /// Which recorders ran, what they could not record, and events lost.
    recording: Option<&'a ws_snapshot::audit::Recording>,
    /// Whether the record is complete (no recorder lost events).
    record_complete: bool,
}

fn state_name(ws: &Workspace, s: &Session) -> &'static str {
    if s.orphaned() {
        "interrupted"
    } else if ws.store.rollback_interrupted(&s.id) {
        "rollback-interrupted"
    } else {
        match s.state {
            SessionState::Running => "running",
            SessionState::Pending => "pending",
            SessionState::Closed => "closed",
        }
    }
}

fn session_json<'a>(ws: &Workspace, s: &'a Session, changes: Option<&[Change]>) -> SessionJson<'a> {
    SessionJson {
        id: &s.id,
        name: s.name.as_deref(),
        state: state_name(ws, s),
        workspace: &s.workspace,
        command: &s.command,
        started_ms: s.started_ms,
        ended_ms: s.ended_ms,
        exit_code: s.exit.and_then(|e| e.code),
        exit_signal: s.exit.and_then(|e| e.signal),
        snapshot_ms: s.snapshot_ms,
        after_snapshot_ms: s.after_snapshot_ms,
        before_snapshot: s.before_from.as_ref(),
        after_snapshot: s.after_from.as_ref(),
        rollback_interrupted: ws.store.rollback_interrupted(&s.id),
        changes: changes.map(counts),
        recording: s.recording.as_ref(),
        record_complete: s.recording.as_ref().is_none_or(ws_snapshot::audit::Recording::complete),
    }
}

fn cmd_list(args: ListArgs) -> Result<i32, CliError> {
    let ws = Workspace::discover()?;
    let mut rows = Vec::new();
    for r in ws.store.sessions()? {
        match r {
            Ok(s) => {
                let changes = ws.store.load_changes(&s.id).ok();
                rows.push((s, changes));
            }
            Err(e) => ui::warn(&crate::error::chain(&e)),
        }
    }
    if args.json {
        let v: Vec<_> = rows.iter().map(|(s, c)| session_json(&ws, s, c.as_deref())).collect();
        out!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        ui::note(&format!("no sessions yet in {}; start one with `ws session start -- CMD`", ws.root.display()));
        return Ok(exit::OK);
    }
    out!("{:<9} {:<20} {:<17} {:>8}  {}", "ID", "STATE", "STARTED", "PENDING", "COMMAND");
    for (s, c) in &rows {
        let pending = c.as_deref().map(|c| counts(c).pending.to_string()).unwrap_or_else(|| "-".into());
        let label = match &s.name {
            Some(n) => format!("[{}] {}", display::text(n.as_bytes()), command_line(&s.command)),
            None => command_line(&s.command),
        };
        out!("{:<9} {:<20} {:<17} {:>8}  {}", s.id, state_name(&ws, s), time(s.started_ms), pending, label);
    }
    Ok(exit::OK)
}

fn cmd_show(args: ShowArgs) -> Result<i32, CliError> {
    let ws = Workspace::discover()?;
    let mut s = pending_or_newest(&ws, args.id.as_deref())?;
    let changes = if s.state == SessionState::Running && !s.orphaned() {
        None
    } else {
        let _lock = ws.lock()?;
        Some(ws.session_changes(&mut s)?)
    };
    let before = ws.store.manifest(&ManifestId(s.before.clone()))?;
    let denied = crate::commands::learn::denials(&ws.store, &s);
    let suggestions = crate::commands::learn::suggestions(&denied, &ws.root);
    if args.json {
        #[derive(Serialize)]
        struct Show<'a> {
            #[serde(flatten)]
            session: SessionJson<'a>,
            excluded: Vec<crate::commands::diff::ExcludedJson>,
            /// Each denial, with the profile line that would allow it.
            denials: Vec<crate::commands::learn::Suggestion>,
        }
        let show = Show {
            session: session_json(&ws, &s, changes.as_deref()),
            excluded: crate::commands::diff::excluded_json(&before),
            denials: suggestions,
        };
        out!("{}", serde_json::to_string_pretty(&show).unwrap_or_default());
        return Ok(exit::OK);
    }
    // Everything below that a session or its command chose goes through
    // `display`: names quoted, other text with its control bytes shown.
    let txt = |s: &str| display::text(s.as_bytes());
    out!("session    {}{}", s.id, s.name.as_ref().map(|n| format!(" [{}]", txt(n))).unwrap_or_default());
    out!("state      {}", state_name(&ws, &s));
    out!("workspace  {}", display::name(s.workspace.as_bytes()));
    out!("command    {}", command_line(&s.command));
    out!("started    {}", time(s.started_ms));
    if let Some(e) = s.ended_ms {
        out!("ended      {}", time(e));
    }
    if let Some(e) = s.exit {
        match (e.code, e.signal) {
            (Some(c), _) => out!("exit       {c}"),
            (_, Some(sig)) => out!("exit       killed by signal {sig}"),
            _ => {}
        }
    }
    if let Some(c) = &changes {
        let n = counts(c);
        out!(
            "changes    {} created, {} modified, {} deleted{}{} ({} pending, {} approved, {} rolled back)",
            n.created,
            n.modified,
            n.deleted,
            if n.renamed == 0 { String::new() } else { format!(", {} renamed", n.renamed) },
            inside_git(&n),
            n.pending,
            n.approved,
            n.rolled_back
        );
    }
    match &s.before_from {
        Some(ws_snapshot::BeforeFrom::Watch { paths }) => {
            out!("snapshot   from the watch ({} paths){}", paths, ms(s.snapshot_ms))
        }
        Some(ws_snapshot::BeforeFrom::Walk { reason }) => {
            out!("snapshot   full walk: {}{}", txt(reason), ms(s.snapshot_ms))
        }
        None => {}
    }
    match &s.after_from {
        Some(ws_snapshot::AfterFrom::Record { paths }) => {
            out!("after-snap from the record ({} paths){}", paths, ms(s.after_snapshot_ms))
        }
        Some(ws_snapshot::AfterFrom::Walk { reason }) => {
            out!("after-snap full walk: {}{}", txt(reason), ms(s.after_snapshot_ms))
        }
        None => {}
    }
    if let Some(r) = &s.recording {
        show_recording(&ws, &s, r, changes.as_deref());
    }
    for d in &suggestions {
        let times = if d.count > 1 { format!(" ({}×)", d.count) } else { String::new() };
        out!("denied     {}{times} → {}", txt(&d.denied), txt(&crate::commands::learn::line(d)));
    }
    if suggestions.iter().any(|d| d.key.is_some()) {
        out!("suggest    `ws profile suggest {}` prints these lines as a patch to the session's profile", s.id);
    }
    for e in before.excluded() {
        out!("excluded   {} (not in the snapshot; rollback cannot restore it)", ui::entry_name(e));
    }
    if ws.store.rollback_interrupted(&s.id) {
        out!("note       a rollback was interrupted; `ws rollback {}` finishes it", s.id);
    }
    Ok(exit::OK)
}

fn ms(v: Option<u64>) -> String {
    v.map(|v| format!(", {v} ms")).unwrap_or_default()
}

/// A command and its arguments for a line of text: each argument rendered
/// (`display::text`), joined by spaces.
fn command_line(command: &[String]) -> String {
    command.iter().map(|a| display::text(a.as_bytes())).collect::<Vec<_>>().join(" ")
}

/// The session `id` names; without one, the newest pending session, else the newest.
pub fn pending_or_newest(ws: &Workspace, id: Option<&str>) -> Result<Session, CliError> {
    Ok(match id {
        Some(id) => ws.store.resolve_session(Some(id))?,
        None => match ws.store.resolve_session(None) {
            Ok(s) => s,
            Err(_) => ws
                .store
                .sessions()?
                .into_iter()
                .filter_map(Result::ok)
                .next_back()
                .ok_or_else(|| CliError::usage("this workspace has no sessions yet"))?,
        },
    })
}

/// What was recorded, and whose the changes are.
fn show_recording(ws: &Workspace, s: &Session, r: &ws_snapshot::audit::Recording, changes: Option<&[Change]>) {
    use crate::recording::{Attribution, Origin};
    let txt = |s: &str| display::text(s.as_bytes());
    let via = r.via.as_deref().map(|v| format!(" (through the {})", txt(v))).unwrap_or_default();
    out!("recorded   writes by {}, denials by {}{via}", txt(&r.writes), txt(&r.denials));
    for g in &r.gaps {
        out!("gap        {}", txt(g));
    }
    if r.complete() {
        out!("record     complete");
    } else {
        out!("record     INCOMPLETE: {}", txt(&r.lost.join("; ")));
    }
    if let Some(changes) = changes {
        let who = Attribution::load(&ws.store, s);
        if who.recorded {
            let (mut own, mut outside, mut both) = (0, 0, 0);
            for c in changes {
                match who.origin_of(&c.path) {
                    Origin::Session => own += 1,
                    Origin::Outside => outside += 1,
                    Origin::Both => both += 1,
                }
            }
            out!("by         {own} by the session, {outside} outside it (another process), {both} by both");
        } else {
            out!("by         every change counts as the session's (no write recorder ran)");
        }
    }
}

/// Local-independent UTC time, `YYYY-MM-DD HH:MM`.
pub fn time(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", rem / 3600, (rem % 3600) / 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_time() {
        assert_eq!(super::time(0), "1970-01-01 00:00");
        assert_eq!(super::time(1_795_000_000_000), "2026-11-18 11:06"); // date -u -d @1795000000
    }
}
