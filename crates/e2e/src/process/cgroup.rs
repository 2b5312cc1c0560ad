//! A container's memory limit, enforced the way the kubelet has the runtime enforce
//! `resources.limits.memory`: a memory cgroup with that limit holds the container's processes,
//! and past it the kernel's OOM killer ends one of them (the kubelet then reports the
//! container `OOMKilled`, exit code 137).
//!
//! cgroup v1 (a `memory` hierarchy mounted at /sys/fs/cgroup/memory), which is what this
//! node has. Nothing here knows about pods or servers: a caller names the cgroup, puts
//! processes in it, asks whether the OOM killer fired, and removes it. The cgroup goes on every
//! exit path: [`MemoryCgroup::remove`], or its `Drop` (errors, panics, a future dropped on
//! Ctrl-C), which first kills whatever is still inside (a cgroup with tasks cannot be removed).

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Where the v1 memory hierarchy is mounted.
pub const V1_MEMORY: &str = "/sys/fs/cgroup/memory";

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "no cgroup v1 memory controller at {V1_MEMORY} (a memory limit needs one; this node has {found})"
    )]
    NoController { found: String },
    #[error(
        "`{name}` is not a cgroup name (letters, digits, `-`, `_`, `.`; not starting with `.`)"
    )]
    BadName { name: String },
    #[error("a memory limit of {bytes} bytes is below the 1 MiB a container can start in")]
    TooSmall { bytes: u64 },
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds an unexpected {file}: {text:?}", path.display())]
    Unreadable {
        path: PathBuf,
        file: &'static str,
        text: String,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError {
    let path = path.to_path_buf();
    move |source| CgroupError::Io { what, path, source }
}

/// `Ok(())` when this node can enforce a memory limit: a writable v1 memory hierarchy.
pub fn available() -> Result<(), CgroupError> {
    let root = Path::new(V1_MEMORY);
    if root.join("memory.limit_in_bytes").is_file()
        && nix::unistd::access(root, nix::unistd::AccessFlags::W_OK).is_ok()
    {
        return Ok(());
    }
    let found = if Path::new("/sys/fs/cgroup/cgroup.controllers").is_file() {
        "cgroup v2 only, which this module does not drive".to_string()
    } else if root.is_dir() {
        "one, but not writable (memory limits need root)".to_string()
    } else {
        "no memory controller mounted".to_string()
    };
    Err(CgroupError::NoController { found })
}

/// One memory cgroup with a limit, removed when dropped.
#[derive(Debug)]
pub struct MemoryCgroup {
    path: PathBuf,
    limit: u64,
    /// `cgroup.procs` as a C string, for [`MemoryCgroup::enter_before_exec`].
    procs: CString,
    removed: bool,
}

/// What the cgroup's counters say about memory pressure so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEvents {
    /// Processes the OOM killer ended inside the cgroup (`memory.oom_control`'s `oom_kill`).
    pub oom_kills: u64,
    /// Times the usage counter hit the limit (`memory.failcnt`; measured 0 on this node
    /// through an OOM kill, so `oom_kills` is what tells).
    pub limit_hits: u64,
    /// The most memory the cgroup held at once (`memory.max_usage_in_bytes`).
    pub peak_bytes: u64,
}

impl MemoryCgroup {
    /// Creates `<hierarchy>/<name>` with `limit` bytes of memory (swap included where the
    /// kernel accounts it, as the kubelet sets both). A leftover of the same name (a
    /// harness killed with SIGKILL) is emptied and reused.
    pub fn create(name: &str, limit: u64) -> Result<MemoryCgroup, CgroupError> {
        if name.is_empty()
            || name.starts_with('.')
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(CgroupError::BadName {
                name: name.to_string(),
            });
        }
        if limit < 1 << 20 {
            return Err(CgroupError::TooSmall { bytes: limit });
        }
        available()?;
        let path = Path::new(V1_MEMORY).join(name);
        match std::fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => kill_all(&path),
            Err(e) => return Err(io("creating cgroup", &path)(e)),
        }
        let procs = CString::new(
            path.join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .map_err(|_| CgroupError::BadName {
            name: name.to_string(),
        })?;
        let cg = MemoryCgroup {
            path,
            limit,
            procs,
            removed: false,
        };
        cg.write("memory.limit_in_bytes", &limit.to_string())?;
        // With swap accounted, the limit covers swap too (memsw must be >= the memory limit,
        // which is why it is written second); a node without swap accounting has no file.
        if cg.path.join("memory.memsw.limit_in_bytes").exists() {
            cg.write("memory.memsw.limit_in_bytes", &limit.to_string())?;
        }
        Ok(cg)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    fn write(&self, file: &'static str, value: &str) -> Result<(), CgroupError> {
        let p = self.path.join(file);
        std::fs::write(&p, value).map_err(io("writing", &p))
    }

    fn read(&self, file: &'static str) -> Result<String, CgroupError> {
        let p = self.path.join(file);
        std::fs::read_to_string(&p).map_err(io("reading", &p))
    }

    fn number(&self, file: &'static str) -> Result<u64, CgroupError> {
        let text = self.read(file)?;
        text.trim().parse().map_err(|_| CgroupError::Unreadable {
            path: self.path.clone(),
            file,
            text,
        })
    }

    /// Moves process `pid` (all its threads) into the cgroup; its later children are born there.
    pub fn add(&self, pid: u32) -> Result<(), CgroupError> {
        self.write("cgroup.procs", &pid.to_string())
    }

    /// A closure for `Command::pre_exec` that moves the child into the cgroup before it execs,
    /// so not one allocation of the program escapes the limit. Only async-signal-safe calls
    /// (open, write, close) run in the child.
    pub fn enter_before_exec(&self) -> impl Fn() -> std::io::Result<()> + Send + Sync + 'static {
        let procs = self.procs.clone();
        move || {
            let fd = nix::fcntl::open(
                procs.as_c_str(),
                nix::fcntl::OFlag::O_WRONLY,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(std::io::Error::from)?;
            // "0" is the writing process itself; the descriptor closes when `fd` drops.
            nix::unistd::write(&fd, b"0")
                .map(|_| ())
                .map_err(std::io::Error::from)
        }
    }

    /// The processes inside now.
    pub fn pids(&self) -> Result<Vec<u32>, CgroupError> {
        let text = self.read("cgroup.procs")?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// The OOM kills, limit hits and peak usage so far.
    pub fn events(&self) -> Result<MemoryEvents, CgroupError> {
        let oom = self.read("memory.oom_control")?;
        let oom_kills = oom
            .lines()
            .find_map(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse().ok())
            })
            .ok_or_else(|| CgroupError::Unreadable {
                path: self.path.clone(),
                file: "memory.oom_control",
                text: oom.clone(),
            })?;
        Ok(MemoryEvents {
            oom_kills,
            limit_hits: self.number("memory.failcnt")?,
            peak_bytes: self.number("memory.max_usage_in_bytes")?,
        })
    }

    /// Kills what is left inside and removes the cgroup.
    pub fn remove(mut self) -> Result<(), CgroupError> {
        self.remove_now()
    }

    fn remove_now(&mut self) -> Result<(), CgroupError> {
        if self.removed {
            return Ok(());
        }
        // A process that is dying leaves the cgroup only once it has exited: retry briefly.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            kill_all(&self.path);
            match std::fs::remove_dir(&self.path) {
                Ok(()) => {
                    self.removed = true;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.removed = true;
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => {
                    return Err(io("removing cgroup", &self.path)(e));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        if let Err(e) = self.remove_now() {
            tracing::warn!("{e}");
        }
    }
}

/// SIGKILL to every process in the cgroup at `path`.
fn kill_all(path: &Path) {
    let text = std::fs::read_to_string(path.join("cgroup.procs")).unwrap_or_default();
    for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case::a_path("a/b")]
    #[case::a_dot_name("..")]
    #[case::empty("")]
    fn a_name_that_is_no_cgroup_name_is_refused(#[case] name: &str) {
        let e = MemoryCgroup::create(name, 64 << 20).unwrap_err();
        assert!(matches!(e, CgroupError::BadName { .. }), "{e}");
    }

    #[test]
    fn a_limit_no_container_starts_in_is_refused() {
        let e = MemoryCgroup::create("chromadb-e2e-test-tiny", 4096).unwrap_err();
        assert!(e.to_string().contains("4096 bytes"), "{e}");
    }

    /// Needs root and a v1 memory hierarchy (skips, saying so, without them):
    /// `cargo test -p e2e --lib process::cgroup` as root.
    #[test]
    fn a_process_past_the_limit_is_oom_killed_and_the_cgroup_says_so() {
        if let Err(e) = available() {
            eprintln!("skipped: {e}");
            return;
        }
        let name = format!("chromadb-e2e-test-{}", std::process::id());
        let cg = MemoryCgroup::create(&name, 32 << 20).unwrap();
        let path = cg.path().to_path_buf();
        assert_eq!(cg.events().unwrap().oom_kills, 0);
        // 16 × 8 MiB touched: four times the limit.
        let mut cmd = std::process::Command::new("python3");
        cmd.args(["-c", "x=[bytearray(8<<20) for _ in range(16)]"]);
        // SAFETY: the closure only opens and writes a file (async-signal-safe).
        unsafe { std::os::unix::process::CommandExt::pre_exec(&mut cmd, cg.enter_before_exec()) };
        let status = cmd.status().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "{status}"
        );
        let ev = cg.events().unwrap();
        assert_eq!(ev.oom_kills, 1, "{ev:?}");
        assert!(
            ev.peak_bytes > 16 << 20 && ev.peak_bytes <= 32 << 20,
            "{ev:?}"
        );
        // Within the limit, nothing is killed.
        let ok = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        cg.add(ok.id()).unwrap();
        assert_eq!(cg.pids().unwrap(), vec![ok.id()]);
        // Dropping removes it, killing what is left inside.
        drop(cg);
        assert!(!path.exists(), "{} left behind", path.display());
        let mut ok = ok;
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&ok.wait().unwrap()),
            Some(9)
        );
    }
}
