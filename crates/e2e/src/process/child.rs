//! Server processes and the per-deployment temp roots, tracked so that nothing outlives the
//! harness: each server runs in its own process group (a terminal's Ctrl-C does not reach it,
//! we decide how it stops), is stopped with SIGTERM then SIGKILL, is killed when its handle is
//! dropped (errors, panics), and a Ctrl-C/SIGTERM handler kills every group still registered
//! and removes every registered temp root before exiting.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::image::Launch;

static GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());
static ROOTS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn register_root(p: &Path) {
    lock(&ROOTS).insert(p.to_path_buf());
}

pub fn unregister_root(p: &Path) {
    lock(&ROOTS).remove(p);
}

/// Kills every registered server group and removes every registered temp root.
pub fn kill_everything() {
    let groups: Vec<i32> = std::mem::take(&mut *lock(&GROUPS)).into_iter().collect();
    for g in &groups {
        let _ = killpg(Pid::from_raw(*g), Signal::SIGTERM);
    }
    if !groups.is_empty() {
        std::thread::sleep(Duration::from_millis(500));
    }
    for g in &groups {
        let _ = killpg(Pid::from_raw(*g), Signal::SIGKILL);
    }
    for r in std::mem::take(&mut *lock(&ROOTS)) {
        let _ = std::fs::remove_dir_all(r);
    }
}

/// Installs (once per process) a Ctrl-C/SIGTERM handler that cleans up and exits with 130.
pub fn install_interrupt_handler() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let r = ctrlc::set_handler(|| {
            eprintln!("\ninterrupted: stopping servers and removing temp dirs");
            kill_everything();
            std::process::exit(130);
        });
        if let Err(e) = r {
            tracing::warn!("could not install the Ctrl-C handler: {e}");
        }
    });
}

/// One running server process (group).
pub struct Server {
    child: tokio::process::Child,
    pgid: i32,
    pub log: PathBuf,
    exited: Option<ExitStatus>,
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
        lock(&GROUPS).insert(pgid);
        Ok(Server { child, pgid, log: log.to_path_buf(), exited: None })
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
        lock(&GROUPS).remove(&self.pgid);
        self.exited
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if lock(&GROUPS).remove(&self.pgid) {
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
