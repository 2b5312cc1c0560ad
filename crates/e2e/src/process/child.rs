//! Server processes: each runs in its own process group (a terminal's Ctrl-C does not reach
//! it; the harness decides how it stops), is stopped with SIGTERM then SIGKILL, and is killed
//! with its whole group when its handle is dropped — on errors, panics, and when xtask's
//! runner drops the job on Ctrl-C/SIGTERM. No process-global state: the handle is the record.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::image::Launch;
use super::security::RunAs;

/// One running server process (group).
pub struct Server {
    child: tokio::process::Child,
    pgid: i32,
    pub log: PathBuf,
    exited: Option<ExitStatus>,
    /// The whole group has been killed and the child waited for.
    reaped: bool,
}

impl Server {
    /// Starts the server; `run_as` (when not root) sets its groups, group and user the way a
    /// container runtime does before exec.
    /// `writable`: with a read-only root, the only places the server may write (its volumes,
    /// with the container path each is mounted at). `memory`: the container's memory cgroup,
    /// entered before exec as a runtime does.
    pub fn spawn(
        launch: &Launch,
        log: &Path,
        run_as: &RunAs,
        writable: &[(&Path, &str)],
        harness_root: &Path,
        memory: Option<&super::cgroup::MemoryCgroup>,
    ) -> std::io::Result<Server> {
        let out = OpenOptions::new().create(true).append(true).open(log)?;
        let err = out.try_clone()?;
        let (program, args): (PathBuf, Vec<String>) = if run_as.read_only_root {
            (
                super::security::BWRAP.into(),
                super::security::read_only_argv(
                    run_as,
                    writable,
                    harness_root,
                    &launch.program,
                    &launch.args,
                ),
            )
        } else {
            (launch.program.clone(), launch.args.clone())
        };
        let mut cmd = match &launch.netns {
            // `ip netns exec` enters the pod's network and execs the program in place (same pid,
            // so the process group below is still the server's).
            Some(ns) => {
                let ip = super::podnet::available().map_err(std::io::Error::other)?;
                let mut c = tokio::process::Command::new(ip);
                c.args(["netns", "exec", ns.as_str()])
                    .arg(&program)
                    .args(&args);
                c
            }
            None => {
                let mut c = tokio::process::Command::new(&program);
                c.args(&args);
                c
            }
        };
        cmd.env_clear()
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&launch.cwd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        if let Some(cg) = memory {
            // SAFETY: the closure only opens and writes the cgroup's procs file (async-signal-safe).
            unsafe { cmd.pre_exec(cg.enter_before_exec()) };
        }
        // With a read-only root, setpriv inside the sandbox drops the user instead.
        if !run_as.is_root() && !run_as.read_only_root {
            let (uid, gid, groups) = (run_as.uid, run_as.gid, run_as.groups.clone());
            let gids: Vec<nix::unistd::Gid> =
                groups.into_iter().map(nix::unistd::Gid::from_raw).collect();
            // Groups before the user: once the uid is dropped, setgroups is no longer allowed.
            // SAFETY: only async-signal-safe calls (setgroups, setgid, setuid) run in the child.
            unsafe {
                cmd.pre_exec(move || {
                    nix::unistd::setgroups(&gids).map_err(std::io::Error::from)?;
                    nix::unistd::setgid(nix::unistd::Gid::from_raw(gid))
                        .map_err(std::io::Error::from)?;
                    nix::unistd::setuid(nix::unistd::Uid::from_raw(uid))
                        .map_err(std::io::Error::from)
                });
            }
        }
        let child = cmd.spawn()?;
        let pgid = child
            .id()
            .map(|p| p as i32)
            .ok_or_else(|| std::io::Error::other("the server exited before it got a pid"))?;
        Ok(Server {
            child,
            pgid,
            log: log.to_path_buf(),
            exited: None,
            reaped: false,
        })
    }

    /// `Some(status)` once the server process has exited.
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// SIGKILL to the whole group at once, as a runtime kills a container without grace.
    /// Returns how it exited.
    pub async fn kill(mut self) -> Option<ExitStatus> {
        let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGKILL);
        if self.try_exited().is_none() {
            self.exited = self.child.wait().await.ok();
        }
        self.reaped = true;
        self.exited
    }

    /// SIGTERM to the group, up to `grace` to exit, then SIGKILL. Returns how it exited.
    pub async fn stop(mut self, grace: Duration) -> Option<ExitStatus> {
        let pg = Pid::from_raw(self.pgid);
        if self.try_exited().is_none() {
            let _ = killpg(pg, Signal::SIGTERM);
            if let Ok(Ok(s)) = tokio::time::timeout(grace, self.child.wait()).await {
                self.exited = Some(s);
            }
        }
        // Workers or helpers left in the group go too.
        let _ = killpg(pg, Signal::SIGKILL);
        if self.exited.is_none() {
            self.exited = self.child.wait().await.ok();
        }
        self.reaped = true;
        self.exited
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGKILL);
            let _ = self.child.start_kill();
            let _ = self.child.try_wait();
        }
    }
}

/// The last `n` lines of a log file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    crate::text::tail(&text, n)
}
