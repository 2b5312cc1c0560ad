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
    pub fn spawn(launch: &Launch, log: &Path) -> std::io::Result<Server> {
        let out = OpenOptions::new().create(true).append(true).open(log)?;
        let err = out.try_clone()?;
        let mut cmd = tokio::process::Command::new(&launch.program);
        cmd.args(&launch.args)
            .env_clear()
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&launch.cwd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd.spawn()?;
        let pgid = child.id().map(|p| p as i32).ok_or_else(|| std::io::Error::other("the server exited before it got a pid"))?;
        Ok(Server { child, pgid, log: log.to_path_buf(), exited: None, reaped: false })
    }

    /// `Some(status)` once the server process has exited.
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
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
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
