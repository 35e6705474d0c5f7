//! How a session's command is confined: the profile resolved, the layers
//! this machine can enforce checked against what the profile requires, the
//! network prepared, the launcher's spec and environment.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use crate::{Error, ErrorKind, Workspace};

/// How the command will be confined: decided, and refused if it cannot be
/// what the profile requires, before anything is snapshotted.
pub(crate) struct Sandbox {
    pub(crate) profile: ws_sandbox::Profile,
    pub(crate) spec: ws_sandbox::exec::LaunchSpec,
    env: Vec<(OsString, OsString)>,
    pub(crate) net: crate::network::SessionNetwork,
    /// The program re-executed as the launcher ([`crate::Options::helper`]).
    helper: Option<std::path::PathBuf>,
    /// Held for its `Drop`, which removes the session's cgroup.
    _cgroup: Option<ws_sandbox::cgroups::SessionCgroup>,
}

impl Sandbox {
    /// `learn`: reads, execution and the network open (and recorded),
    /// writes open in the home and temporary directories too.
    /// `base_env`: the environment the session's is made from (the profile
    /// keeps what its `env_allow` names).
    pub(crate) fn prepare(
        ws: &Workspace,
        profile: &str,
        allow_degraded: bool,
        learn: bool,
        base_env: &[(OsString, OsString)],
    ) -> Result<Sandbox, Error> {
        use ws_sandbox::profile::Layer;
        let options = &ws.options;
        let p = crate::profiles::resolve(profile, options.profile_dir.as_deref())?;
        let (home, tmp) = (options.home.clone(), options.tmpdir.clone());
        let mut fs = p.fs_policy(&crate::profiles::vars(&ws.root, &home, &tmp));
        if learn {
            fs = crate::learn::open_policy(fs, &home, &tmp);
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
                return Err(Error::new(
                    ErrorKind::SandboxUnavailable,
                    format!("profile `{}` requires {what}, which this machine cannot enforce", p.name),
                )
                .hint("`ws doctor` shows what is missing; pass --allow-degraded to run without it anyway"));
            }
            ws.warn(&format!(
                "running without {what} (--allow-degraded): the command is less confined than profile `{}` asks",
                p.name
            ));
        }
        if !namespaces_possible && !p.require.contains(&Layer::Namespaces) {
            ws.warn(
                "running without namespaces: this machine lets ws create none (in a container, its seccomp profile or missing CAP_SYS_ADMIN); \
                 the session sees other processes in /proc, .git's control files are protected only by the check at its end, and its network is confined by Landlock instead",
            );
        }
        let mode = match crate::network::Mode::choose(namespaces_possible, abi) {
            Some(m) => m,
            None if allow_degraded => {
                ws.warn(
                    "running with the network NOT confined (--allow-degraded): this machine can neither give the session a network namespace nor filter TCP with Landlock; the proxy is offered but can be bypassed",
                );
                crate::network::Mode::Filtered
            }
            None => {
                return Err(Error::new(
                    ErrorKind::SandboxUnavailable,
                    "this machine cannot confine the session's network: no user namespaces and Landlock below ABI 4 (Linux 6.7)",
                )
                .hint("`ws doctor` shows what is missing; pass --allow-degraded to run with the network not confined"));
            }
        };
        let vars = crate::profiles::vars(&ws.root, &home, &tmp);
        let mut ca = Vec::new();
        for f in p.ca_files(&vars) {
            ca.push(fs_err::read(&f).map_err(|e| {
                Error::new(ErrorKind::BadProfile, format!("profile `{}`: cannot read CA file: {e}", p.name))
                    .hint("fix or remove the path in [network] ca_files")
            })?);
        }
        let routes = crate::network::routes(&p, &ws.store, options)?;
        let rules = if learn { crate::learn::open_rules() } else { crate::network::rules(&p) };
        let net = crate::network::SessionNetwork::prepare(mode, rules, routes, ca, tmp.as_deref())?;
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
                let _root = crate::as_root("create the session's cgroup")?;
                ws_sandbox::cgroups::create(&format!("ws-session-{}", std::process::id()), p.limits)
            };
            match made {
                Ok(cg) => Some(cg),
                Err(e) if allow_degraded => {
                    ws.warn(&format!("running without resource limits (--allow-degraded): {}", crate::chain(&e)));
                    None
                }
                Err(e) => {
                    return Err(Error::new(
                        ErrorKind::SandboxUnavailable,
                        format!(
                            "profile `{}` sets resource limits, which cannot be applied here: {}",
                            p.name,
                            crate::chain(&e)
                        ),
                    )
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
            recorded_from_outside: false,
            net: net.spec.clone(),
            control_fd: None,
            run_as: options.run_as.as_ref().map(|u| ws_sandbox::exec::RunAs {
                uid: u.uid,
                gid: u.gid,
                groups: u.groups.clone(),
            }),
        };
        let mut env = ws_sandbox::env::scrub(base_env.iter().cloned(), &p.env_allow);
        env.extend(p.env_set.iter().map(|(k, v)| (k.into(), v.into())));
        // The session's proxy is the only way out; nothing bypasses it.
        env.retain(|(k, _)| !k.eq_ignore_ascii_case("NO_PROXY") && !net.env.iter().any(|(n, _)| n == k));
        env.extend(net.env.iter().cloned());
        Ok(Sandbox { profile: p, spec, env, net, helper: options.helper.clone(), _cgroup: cgroup })
    }

    /// `ws __sandbox-exec SPEC -- CMD…` with the scrubbed environment: the
    /// launcher confines itself, then becomes CMD.
    pub(crate) fn command(&self, cmd: &[OsString]) -> Command {
        let me = crate::helpers::program(&self.helper);
        let spec = serde_json::to_string(&self.spec).unwrap_or_default();
        let mut c = Command::new(me);
        c.arg(ws_sandbox::exec::LAUNCHER_ARG).arg(spec).arg("--").args(cmd);
        c.env_clear().envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }
}
