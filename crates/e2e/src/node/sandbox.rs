//! One container, materialised: a root filesystem and a process, the way a runtime makes
//! them. The root is a tmpfs holding this host's top-level directories read-only (the
//! programs and libraries standing in for the image's), the image's own files, the pod's
//! /etc/hosts, /etc/resolv.conf and hostname, and every volume at its mount path; then it is
//! made read-only when the container asks for `readOnlyRootFilesystem`. The process runs in
//! the pod's network namespace as the container's user and groups (bubblewrap for the mounts,
//! setpriv for the identity, `ip netns exec` for the network).
//!
//! The argv is built by a pure function ([`bwrap_args`]) from the plan and a view of the
//! host's filesystem, so it is unit-tested without root.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::image::Exec;
use crate::process::cgroup::{self, MemoryCgroup};
use crate::process::security::{BWRAP, RunAs};

/// The prefix of every memory cgroup the node makes, so a sweep finds what a crash left.
pub const CGROUP_PREFIX: &str = "process-node-";

/// Removes the memory cgroups a node killed mid-run left (their processes first); the names
/// of those removed.
pub fn sweep_cgroups() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(cgroup::V1_MEMORY) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(CGROUP_PREFIX) && e.path().is_dir() {
            // Re-creating an existing cgroup empties it; dropping it removes it.
            match MemoryCgroup::create(&name, 1 << 30).and_then(MemoryCgroup::remove) {
                Ok(()) => removed.push(format!("memory cgroup {name}")),
                Err(err) => tracing::warn!("removing leftover memory cgroup {name}: {err}"),
            }
        }
    }
    removed
}

const SETPRIV: &str = "/usr/bin/setpriv";
/// Top-level host directories a container never sees: the kernel's views are mounted fresh,
/// and /tmp and /run belong to the container.
const HIDDEN: &[&str] = &["proc", "dev", "sys", "tmp", "run", "lost+found"];

/// Whether `path` lies under a top-level directory the container's root does not take from
/// the host (`/tmp`, `/run`, …): a program there must be bound in to be run.
pub fn hidden_from_the_root(path: &Path) -> bool {
    path.components()
        .find_map(|c| match c {
            std::path::Component::Normal(n) => n.to_str(),
            _ => None,
        })
        .is_some_and(|top| HIDDEN.contains(&top))
}

/// A bind into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub src: PathBuf,
    pub dst: String,
    pub writable: bool,
}

/// What the sandbox needs to know to start one container.
#[derive(Debug, Clone)]
pub struct ContainerPlan {
    pub name: String,
    pub hostname: String,
    pub netns: String,
    pub user: RunAs,
    /// Files laid read-only over the root: the image's own, then the pod's /etc files.
    pub files: Vec<Mount>,
    pub mounts: Vec<Mount>,
    pub exec: Exec,
    pub env: Vec<(String, String)>,
    pub cwd: String,
    /// `resources.limits.memory` in bytes: the container runs in a memory cgroup of that
    /// limit, as the runtime puts it, and the kernel's OOM killer ends it past the limit.
    pub memory_limit: Option<u64>,
}

/// A host directory entry, as the root is rebuilt from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir(String),
    File(String),
    Symlink(String, PathBuf),
}

/// The host's view the argv is built from (real: [`HostFs`]; tests: a table).
pub trait HostView {
    fn exists(&self, p: &Path) -> bool;
    fn entries(&self, dir: &Path) -> Vec<Entry>;
    /// `p` with every symlinked parent replaced by its target (`/var/run/x` → `/run/x`), as a
    /// runtime resolves a mount point inside the root.
    fn resolve_parents(&self, p: &Path) -> PathBuf {
        p.to_path_buf()
    }
}

pub struct HostFs;

impl HostView for HostFs {
    fn exists(&self, p: &Path) -> bool {
        p.symlink_metadata().is_ok()
    }
    fn resolve_parents(&self, p: &Path) -> PathBuf {
        let mut out = PathBuf::from("/");
        let parts: Vec<_> = p.components().skip(1).collect();
        for (i, c) in parts.iter().enumerate() {
            let next = out.join(c);
            let last = i + 1 == parts.len();
            match std::fs::read_link(&next) {
                Ok(t) if !last => {
                    out = if t.is_absolute() {
                        self.resolve_parents(&t)
                    } else {
                        self.resolve_parents(&out.join(t))
                    }
                }
                _ => out = next,
            }
        }
        out
    }
    fn entries(&self, dir: &Path) -> Vec<Entry> {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut out: Vec<Entry> = rd
            .flatten()
            .map(|e| {
                let p = e.path().display().to_string();
                match std::fs::read_link(e.path()) {
                    Ok(t) => Entry::Symlink(p, t),
                    Err(_) if e.path().is_dir() => Entry::Dir(p),
                    Err(_) => Entry::File(p),
                }
            })
            .collect();
        out.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        out
    }
}

fn bind_entry(out: &mut Vec<String>, e: &Entry) {
    match e {
        Entry::Dir(p) | Entry::File(p) => out.extend(["--ro-bind".into(), p.clone(), p.clone()]),
        Entry::Symlink(p, t) => {
            out.extend(["--symlink".into(), t.display().to_string(), p.clone()])
        }
    }
}

/// The bubblewrap arguments (everything after `bwrap`) for `plan`.
pub fn bwrap_args(plan: &ContainerPlan, host: &dyn HostView) -> Vec<String> {
    let mut a: Vec<String> = vec!["--tmpfs".into(), "/".into()];
    for e in host.entries(Path::new("/")) {
        let name = match &e {
            Entry::Dir(p) | Entry::File(p) | Entry::Symlink(p, _) => {
                p.trim_start_matches('/').to_string()
            }
        };
        if !HIDDEN.contains(&name.as_str()) {
            bind_entry(&mut a, &e);
        }
    }
    a.extend(
        [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--ro-bind",
            "/sys",
            "/sys",
        ]
        .map(String::from),
    );
    // An image's /tmp is an empty world-writable directory of its root: with a read-only root
    // it is not writable unless a volume is mounted there (htpasswd's temp dir depends on it).
    let tmp = if plan.user.read_only_root {
        "--dir"
    } else {
        "--tmpfs"
    };
    a.extend(["--perms", "1777", tmp, "/tmp", "--dir", "/run"].map(String::from));
    let binds: Vec<Mount> = plan
        .files
        .iter()
        .chain(plan.mounts.iter())
        .map(|m| Mount {
            dst: host
                .resolve_parents(Path::new(&m.dst))
                .display()
                .to_string(),
            ..m.clone()
        })
        .collect();
    // A mount point under a host directory that lacks it cannot be made on a read-only bind:
    // that directory is rebuilt as a tmpfs holding the host's entries again.
    let mut rebuilt: Vec<PathBuf> = Vec::new();
    // The working directory too: the image has it even when the host does not.
    let cwd = host.resolve_parents(Path::new(&plan.cwd));
    let needed: Vec<&Path> = binds
        .iter()
        .map(|m| Path::new(&m.dst))
        .chain(std::iter::once(cwd.as_path()))
        .collect();
    for at in needed.iter().copied() {
        if host.exists(at) {
            continue;
        }
        let mut base = at.to_path_buf();
        while !host.exists(&base) && base.pop() {}
        let top_level_new = base.parent().is_none() || base == Path::new("/");
        if top_level_new || HIDDEN.iter().any(|h| base.starts_with(format!("/{h}"))) {
            continue;
        }
        if !rebuilt.contains(&base) {
            rebuilt.push(base);
        }
    }
    rebuilt.sort_by_key(|b| b.components().count());
    for base in &rebuilt {
        a.extend(["--tmpfs".into(), base.display().to_string()]);
        for e in host.entries(base) {
            match &e {
                Entry::Dir(p) if rebuilt.iter().any(|r| r == Path::new(p)) => {
                    a.extend(["--dir".into(), p.clone()])
                }
                _ => bind_entry(&mut a, &e),
            }
        }
    }
    // Missing parents of mount points explicitly, as a runtime makes them (0755): bubblewrap
    // would make them 0700, unreadable to the container's user.
    let mut made: Vec<PathBuf> = Vec::new();
    for m in &binds {
        let missing: Vec<&Path> = Path::new(&m.dst)
            .ancestors()
            .skip(1)
            .filter(|a| *a != Path::new("/") && !host.exists(a))
            .collect();
        for d in missing.into_iter().rev() {
            if !made.iter().any(|x| x == d) {
                made.push(d.to_path_buf());
                a.extend(["--dir".into(), d.display().to_string()]);
            }
        }
    }
    // The working directory exists in an image even when nothing is mounted there.
    if !host.exists(&cwd) && !binds.iter().any(|m| Path::new(&m.dst) == cwd) {
        for d in cwd
            .ancestors()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .filter(|a| *a != Path::new("/") && !host.exists(a))
        {
            if !made.iter().any(|x| x == d) {
                made.push(d.to_path_buf());
                a.extend(["--dir".into(), d.display().to_string()]);
            }
        }
    }
    let mut sorted: Vec<&Mount> = binds.iter().collect();
    // Parents before children, so a volume inside another lands on top of it.
    sorted.sort_by_key(|m| Path::new(&m.dst).components().count());
    for m in sorted {
        a.extend([
            if m.writable { "--bind" } else { "--ro-bind" }.to_string(),
            m.src.display().to_string(),
            m.dst.clone(),
        ]);
    }
    if plan.user.read_only_root {
        a.extend(["--remount-ro".into(), "/".into()]);
    }
    a.extend([
        "--unshare-uts".into(),
        "--hostname".into(),
        plan.hostname.clone(),
        "--chdir".into(),
        plan.cwd.clone(),
        "--".into(),
    ]);
    if !plan.user.is_root() {
        let groups = if plan.user.groups.is_empty() {
            "--clear-groups".to_string()
        } else {
            format!(
                "--groups={}",
                plan.user
                    .groups
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        a.extend([
            SETPRIV.to_string(),
            format!("--reuid={}", plan.user.uid),
            format!("--regid={}", plan.user.gid),
            groups,
            "--".into(),
        ]);
    }
    a.push(plan.exec.program.display().to_string());
    a.extend(plan.exec.args.iter().cloned());
    a
}

/// A started container: `ip netns exec` execs bubblewrap in place, which forks the
/// container's process; the group holds both.
pub struct Running {
    child: tokio::process::Child,
    pgid: i32,
    /// Removed (with whatever is left inside) when the container is dropped.
    memory: Option<MemoryCgroup>,
    pub log: PathBuf,
    pub started: std::time::SystemTime,
}

impl Running {
    /// Starts the container. Its stdout and stderr are one pipe owned by the container's user
    /// (as containerd hands a container its stdio), so a program that reopens `/dev/stderr`
    /// as that user can; the node copies the pipe into the log file.
    pub fn spawn(ip: &Path, plan: &ContainerPlan, log: &Path) -> std::io::Result<Running> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut out =
            tokio::fs::File::from_std(OpenOptions::new().create(true).append(true).open(log)?);
        let (reader, writer) = std::io::pipe()?;
        std::os::unix::fs::fchown(&writer, Some(plan.user.uid), Some(plan.user.gid))?;
        let writer2 = writer.try_clone()?;
        let memory = match plan.memory_limit {
            Some(limit) => {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let name = format!(
                    "{CGROUP_PREFIX}{}-{}-{}-{n}",
                    std::process::id(),
                    plan.netns,
                    plan.name
                );
                Some(MemoryCgroup::create(&name, limit).map_err(std::io::Error::other)?)
            }
            None => None,
        };
        let mut cmd = tokio::process::Command::new(ip);
        cmd.args(["netns", "exec", plan.netns.as_str(), BWRAP])
            .args(bwrap_args(plan, &HostFs))
            .env_clear()
            .envs(plan.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(writer2)
            .process_group(0)
            .kill_on_drop(true);
        if let Some(cg) = &memory {
            // SAFETY: the closure makes only async-signal-safe calls (open, write, close).
            unsafe { cmd.pre_exec(cg.enter_before_exec()) };
        }
        let child = cmd.spawn()?;
        // The node's copies of the write end go with the command, so the copy below ends
        // when the container's last writer does.
        drop(cmd);
        let reader = std::os::fd::OwnedFd::from(reader);
        let mut reader = tokio::fs::File::from_std(std::fs::File::from(reader));
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut reader, &mut out).await;
        });
        let pgid = child
            .id()
            .map(|p| p as i32)
            .ok_or_else(|| std::io::Error::other("the container exited before it got a pid"))?;
        Ok(Running {
            child,
            pgid,
            memory,
            log: log.to_path_buf(),
            started: std::time::SystemTime::now(),
        })
    }

    /// The process group holding the container (bubblewrap and everything it runs).
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// The container's own process: bubblewrap's child.
    pub fn main_pid(&self) -> Option<i32> {
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.pgid)).ok()?;
        children.split_whitespace().next()?.parse().ok()
    }

    pub fn pids(&self) -> Vec<i32> {
        let mut v = vec![self.pgid];
        v.extend(self.main_pid());
        v
    }

    /// Whether the kernel's OOM killer ended a process of the container (the kubelet's
    /// `OOMKilled`); a cgroup that cannot be read says no, and the node logs why.
    pub fn oom_killed(&self) -> bool {
        match self.memory.as_ref().map(MemoryCgroup::events) {
            Some(Ok(e)) => e.oom_kills > 0,
            Some(Err(e)) => {
                tracing::warn!("reading the container's memory cgroup: {e}");
                false
            }
            None => false,
        }
    }

    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub async fn wait(&mut self) -> Option<ExitStatus> {
        self.child.wait().await.ok()
    }

    /// SIGTERM to the container's process (as a runtime signals the container's PID 1), up to
    /// `grace` for it to end, then SIGKILL to everything left in the group.
    pub async fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.try_exited().is_none() {
            match self.main_pid() {
                Some(pid) => {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
                }
                None => {
                    let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGTERM);
                }
            }
            if let Ok(Ok(s)) = tokio::time::timeout(grace, self.child.wait()).await {
                let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGKILL);
                return Some(s);
            }
        }
        let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGKILL);
        self.child.wait().await.ok()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Table(BTreeMap<&'static str, Vec<Entry>>);

    impl HostView for Table {
        fn exists(&self, p: &Path) -> bool {
            let s = p.display().to_string();
            s == "/" || self.0.values().flatten().any(|e| matches!(e, Entry::Dir(x) | Entry::File(x) | Entry::Symlink(x, _) if *x == s))
        }
        fn entries(&self, dir: &Path) -> Vec<Entry> {
            self.0
                .get(dir.display().to_string().as_str())
                .cloned()
                .unwrap_or_default()
        }
    }

    fn host() -> Table {
        Table(BTreeMap::from([
            (
                "/",
                vec![
                    Entry::Dir("/usr".into()),
                    Entry::Symlink("/bin".into(), "usr/bin".into()),
                    Entry::Dir("/etc".into()),
                    Entry::Dir("/proc".into()),
                    Entry::Dir("/tmp".into()),
                ],
            ),
            (
                "/etc",
                vec![
                    Entry::File("/etc/passwd".into()),
                    Entry::File("/etc/hosts".into()),
                ],
            ),
        ]))
    }

    #[test]
    fn programs_under_tmp_or_run_are_hidden_from_the_root_others_are_not() {
        assert!(hidden_from_the_root(Path::new(
            "/tmp/fresh/target/debug/chromadb-backup"
        )));
        assert!(hidden_from_the_root(Path::new("/run/x")));
        assert!(!hidden_from_the_root(Path::new(
            "/work/main/target/debug/chromadb-backup"
        )));
        assert!(!hidden_from_the_root(Path::new("/usr/bin/curl")));
    }

    fn plan(read_only: bool, uid: u32) -> ContainerPlan {
        ContainerPlan {
            memory_limit: None,
            name: "chromadb".into(),
            hostname: "r-chromadb-0".into(),
            netns: "cpod-0-2".into(),
            user: RunAs {
                uid,
                gid: 1000,
                groups: vec![1000],
                fs_group: Some(1000),
                read_only_root: read_only,
            },
            files: vec![Mount {
                src: "/pod/etc-hosts".into(),
                dst: "/etc/hosts".into(),
                writable: false,
            }],
            mounts: vec![
                Mount {
                    src: "/pod/v/config".into(),
                    dst: "/etc/chroma".into(),
                    writable: false,
                },
                Mount {
                    src: "/pod/v/data".into(),
                    dst: "/data".into(),
                    writable: true,
                },
            ],
            exec: Exec {
                program: "/venv/bin/chroma".into(),
                argv0: "chroma".into(),
                args: vec!["run".into(), "/etc/chroma/config.yaml".into()],
            },
            env: vec![],
            cwd: "/chroma".into(),
        }
    }

    #[test]
    fn the_root_holds_the_hosts_directories_read_only_but_not_its_tmp_or_proc() {
        let s = bwrap_args(&plan(true, 1000), &host()).join(" ");
        assert!(s.starts_with("--tmpfs / "), "{s}");
        assert!(
            s.contains("--ro-bind /usr /usr") && s.contains("--symlink usr/bin /bin"),
            "{s}"
        );
        assert!(
            !s.contains("--ro-bind /tmp /tmp") && !s.contains("--ro-bind /proc /proc"),
            "{s}"
        );
    }

    #[test]
    fn a_mount_point_the_host_lacks_under_etc_rebuilds_etc_with_the_hosts_entries() {
        let s = bwrap_args(&plan(true, 1000), &host()).join(" ");
        assert!(
            s.contains(
                "--tmpfs /etc --ro-bind /etc/passwd /etc/passwd --ro-bind /etc/hosts /etc/hosts"
            ),
            "{s}"
        );
        assert!(s.contains("--ro-bind /pod/v/config /etc/chroma"), "{s}");
    }

    #[test]
    fn a_working_directory_under_a_host_directory_that_lacks_it_is_made_in_a_rebuilt_parent() {
        let mut p = plan(true, 0);
        p.cwd = "/usr/local/apache2".into();
        let mut h = host();
        h.0.insert(
            "/usr",
            vec![
                Entry::Dir("/usr/local".into()),
                Entry::Dir("/usr/lib".into()),
            ],
        );
        h.0.insert("/usr/local", vec![Entry::Dir("/usr/local/bin".into())]);
        let s = bwrap_args(&p, &h).join(" ");
        assert!(
            s.contains("--tmpfs /usr/local --ro-bind /usr/local/bin /usr/local/bin"),
            "{s}"
        );
        let (dir, chdir) = (
            s.find("--dir /usr/local/apache2").unwrap(),
            s.find("--chdir /usr/local/apache2").unwrap(),
        );
        assert!(dir < chdir, "{s}");
    }

    #[test]
    fn missing_parents_of_a_mount_point_are_made_before_it_so_they_are_0755_not_bubblewraps_0700() {
        let mut p = plan(true, 101);
        p.mounts.push(Mount {
            src: "/pod/v/tls".into(),
            dst: "/etc/chroma-tls/chromadb-tls".into(),
            writable: false,
        });
        let s = bwrap_args(&p, &host()).join(" ");
        let (dir, bind) = (
            s.find("--dir /etc/chroma-tls ").unwrap(),
            s.find("--ro-bind /pod/v/tls /etc/chroma-tls/chromadb-tls")
                .unwrap(),
        );
        assert!(dir < bind, "{s}");
    }

    #[test]
    fn volumes_are_writable_only_when_the_plan_says_and_the_root_is_made_read_only_last() {
        let s = bwrap_args(&plan(true, 1000), &host()).join(" ");
        assert!(s.contains("--bind /pod/v/data /data"), "{s}");
        let (data, ro) = (
            s.find("--bind /pod/v/data /data").unwrap(),
            s.find("--remount-ro /").unwrap(),
        );
        assert!(data < ro, "{s}");
        assert!(
            !bwrap_args(&plan(false, 1000), &host())
                .join(" ")
                .contains("--remount-ro")
        );
    }

    #[test]
    fn the_process_runs_as_the_containers_user_and_groups_in_its_workdir_with_the_pod_hostname() {
        let s = bwrap_args(&plan(true, 1000), &host()).join(" ");
        assert!(s.ends_with("--hostname r-chromadb-0 --chdir /chroma -- /usr/bin/setpriv --reuid=1000 --regid=1000 --groups=1000 -- /venv/bin/chroma run /etc/chroma/config.yaml"), "{s}");
        let root = bwrap_args(&plan(true, 0), &host()).join(" ");
        assert!(
            root.ends_with("-- /venv/bin/chroma run /etc/chroma/config.yaml")
                && !root.contains("setpriv"),
            "{root}"
        );
    }
}
