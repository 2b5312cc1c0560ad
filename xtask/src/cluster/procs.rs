//! The cluster's processes: started as daemons (their own session, so they outlive `cluster
//! up` and no terminal signal reaches them), recorded in `target/cluster/state.json` the
//! moment each starts, and stopped by process group. A process is only ever signalled when
//! its executable is still the one recorded, so a reused pid is left alone.

use std::fs::{self, File, OpenOptions};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use super::config::{Component, Layout};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Recorded {
    pub component: Component,
    pub pid: i32,
    pub exe: PathBuf,
}

#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct State {
    pub processes: Vec<Recorded>,
}

impl State {
    pub fn load(l: &Layout) -> Result<State> {
        match fs::read_to_string(l.state()) {
            Ok(s) => serde_json::from_str(&s)
                .with_context(|| format!("{} is not a cluster state file", l.state().display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", l.state().display())),
        }
    }

    /// Written through a temporary file and a rename, so a crash never leaves half a record.
    pub fn save(&self, l: &Layout) -> Result<()> {
        let tmp = l.state().with_extension("json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        fs::rename(&tmp, l.state()).with_context(|| format!("writing {}", l.state().display()))
    }
}

/// Starts `program` as a daemon logging to the component's log file, and records it before
/// returning, so that even a crash right after leaves it findable.
pub fn spawn(
    l: &Layout,
    state: &mut State,
    c: Component,
    program: &Path,
    args: &[std::ffi::OsString],
) -> Result<Child> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(l.log(c))
        .with_context(|| format!("opening {}", l.log(c).display()))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .current_dir(&l.root);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    eprintln!("$ {} > {}", crate::cmd::display(&cmd), l.log(c).display());
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {} ({})", c.name(), program.display()))?;
    let exe = fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
    state.processes.push(Recorded {
        component: c,
        pid: child.id() as i32,
        exe,
    });
    state.save(l)?;
    Ok(child)
}

/// The executable a live process runs, or `None` when it is gone (or a zombie).
fn exe_of(pid: i32) -> Option<PathBuf> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state letter follows the parenthesised command name.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())?;
    if state == "Z" || state == "X" {
        return None;
    }
    let link = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let s = link.to_string_lossy();
    Some(PathBuf::from(s.strip_suffix(" (deleted)").unwrap_or(&s)))
}

fn cmdline_of(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Whether the recorded process still runs the recorded program.
pub fn alive(r: &Recorded) -> bool {
    exe_of(r.pid).is_some_and(|exe| exe == r.exe)
}

/// Processes that belong to a cluster rooted at `root` though no state file names them (a
/// harness killed between spawning and recording): their program is one of `programs` and
/// their command line names the cluster folder.
pub fn strays(root: &Path, programs: &[PathBuf]) -> Vec<Recorded> {
    let root_text = root.to_string_lossy().into_owned();
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    let me = std::process::id() as i32;
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Some(exe) = exe_of(pid) else { continue };
        if programs.contains(&exe) && cmdline_of(pid).contains(&root_text) {
            let component = Component::ALL
                .into_iter()
                .find(|c| exe.file_name().is_some_and(|n| n == c.name()))
                .unwrap_or(Component::Node);
            found.push(Recorded {
                component,
                pid,
                exe,
            });
        }
    }
    found
}

/// Stops `procs` one by one in reverse start order — the node and the controllers before the
/// API server, etcd last, so that none shuts down against a store already gone (an API
/// server whose etcd vanished first takes many seconds to stop) — each with SIGTERM to its
/// group, then SIGKILL after `grace`. Returns how many were running.
pub fn stop(procs: &[Recorded], grace: Duration) -> Result<usize> {
    let running: Vec<&Recorded> = procs.iter().filter(|r| alive(r)).collect();
    let mut survivors = Vec::new();
    for r in running.iter().rev() {
        signal_group(r.pid, Signal::SIGTERM);
        if !wait_gone(r, grace) {
            eprintln!(
                "{} (pid {}) did not stop within {}s of SIGTERM; killing it",
                r.component.name(),
                r.pid,
                grace.as_secs()
            );
            signal_group(r.pid, Signal::SIGKILL);
            if !wait_gone(r, Duration::from_secs(5)) {
                survivors.push(format!("{} (pid {})", r.component.name(), r.pid));
            }
        }
    }
    if !survivors.is_empty() {
        bail!(
            "{} survived SIGKILL; check `ps -o pid,stat,cmd -p <pid>`",
            survivors.join(", ")
        );
    }
    Ok(running.len())
}

fn wait_gone(r: &Recorded, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        // Reaps it when it is our own child (a failed `up`); harmless otherwise.
        let _ = waitpid(Pid::from_raw(r.pid), Some(WaitPidFlag::WNOHANG));
        if !alive(r) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Each component leads its own process group (setsid), so the group takes any helper it
/// started along; the pid itself is signalled too in case it left its group.
fn signal_group(pid: i32, sig: Signal) {
    let _ = killpg(Pid::from_raw(pid), sig);
    let _ = kill(Pid::from_raw(pid), sig);
}

/// The first port of `owners` that something already listens on, as one line naming the
/// port, who needs it and the fix.
pub fn check_ports(owners: &[(u16, &str)]) -> Result<()> {
    for (port, who) in owners {
        if let Err(e) = TcpListener::bind(("127.0.0.1", *port)) {
            let holder = listener_of(*port)
                .map(|(pid, cmd)| format!(" by pid {pid} ({cmd})"))
                .unwrap_or_default();
            bail!(
                "port {port} on 127.0.0.1 is in use{holder} ({e}), and {who} needs it: stop that process (see `ss -ltnp 'sport = :{port}'`), or `cargo xtask cluster down` if it is an earlier cluster"
            );
        }
    }
    Ok(())
}

/// Who listens on a loopback TCP port, read from /proc (best effort: needs root to see
/// other users' sockets).
fn listener_of(port: u16) -> Option<(i32, String)> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEX_IP:HEX_PORT; state 0A is LISTEN.
            if f.len() > 9
                && f[3] == "0A"
                && f[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                    == Some(port)
            {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for e in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if fs::read_link(fd.path())
                .is_ok_and(|t| inodes.iter().any(|i| t.as_os_str() == i.as_str()))
            {
                let cmd = cmdline_of(pid);
                let short: String = cmd.chars().take(80).collect();
                return Some((pid, short.trim().to_string()));
            }
        }
    }
    None
}

/// What a component's log says about why it stopped: its last error lines (klog's `E`/`F`
/// lines, etcd's `"level":"error"`/`"fatal"`), else its last lines.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let is_error = |l: &str| {
        l.starts_with('E')
            || l.starts_with('F')
            || l.contains("\"level\":\"error\"")
            || l.contains("\"level\":\"fatal\"")
            || l.starts_with("Error")
    };
    let errors: Vec<&str> = all.iter().copied().filter(|l| is_error(l)).collect();
    let chosen = if errors.is_empty() {
        &all[..]
    } else {
        &errors[..]
    };
    chosen[chosen.len().saturating_sub(lines)..].join("\n")
}

/// Creates the cluster folder's skeleton (owner-only: it holds keys).
pub fn create_layout(l: &Layout) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    for d in [
        l.root.clone(),
        l.pki(),
        l.logs(),
        l.root.join("kubeconfigs"),
    ] {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&d)
            .with_context(|| format!("creating {}", d.display()))?;
    }
    Ok(())
}

/// Writes a secret file readable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f: File = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_tail_prefers_the_error_lines() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("c.log");
        fs::write(
            &log,
            "I0 start\nE1 first failure\nW2 noise\nI3 more\nE4 command failed: bad flag\nI5 exit\n",
        )
        .unwrap();
        assert_eq!(log_tail(&log, 1), "E4 command failed: bad flag");
        assert_eq!(
            log_tail(&log, 5),
            "E1 first failure\nE4 command failed: bad flag"
        );
        fs::write(&log, "I0 a\nI1 b\nI2 c\n").unwrap();
        assert_eq!(
            log_tail(&log, 2),
            "I1 b\nI2 c",
            "without errors, the last lines"
        );
    }

    #[test]
    fn a_port_in_use_is_one_line_naming_the_port_its_user_and_the_fix() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let err = check_ports(&[(port, "kube-apiserver")])
            .unwrap_err()
            .to_string();
        assert!(!err.contains('\n'), "{err}");
        assert!(
            err.starts_with(&format!("port {port} on 127.0.0.1 is in use")),
            "{err}"
        );
        assert!(
            err.contains("kube-apiserver needs it") && err.contains("cargo xtask cluster down"),
            "{err}"
        );
        drop(held);
        // A free port passes. Another test's outgoing connection can take a just-freed port
        // as its source port, so the free case gets a few fresh ports to find one.
        let free = (0..5).any(|_| {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            check_ports(&[(port, "kube-apiserver")]).is_ok()
        });
        assert!(free, "no freed port passed check_ports in 5 tries");
    }

    #[test]
    fn a_recorded_process_is_stopped_with_its_group_and_a_reused_pid_is_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let l = Layout::new(d.path().join("cluster"));
        create_layout(&l).unwrap();
        let mut state = State::default();
        let sleep = PathBuf::from("/bin/sleep");
        // A shell that starts a helper in its group: stopping the group takes both.
        let sh = PathBuf::from("/bin/sh");
        let mut child = spawn(
            &l,
            &mut state,
            Component::Etcd,
            &sh,
            &["-c".into(), "sleep 300 & wait".into()],
        )
        .unwrap();
        assert_eq!(
            State::load(&l).unwrap().processes,
            state.processes,
            "recorded as soon as started"
        );
        let r = state.processes[0].clone();
        std::thread::sleep(Duration::from_millis(200));
        assert!(alive(&r));
        let helper: Vec<i32> = fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|p| *p != r.pid)
            .filter(|p| {
                fs::read_to_string(format!("/proc/{p}/stat"))
                    .is_ok_and(|s| s.split_whitespace().nth(4) == Some(&r.pid.to_string()))
            })
            .collect();
        assert_eq!(
            helper.len(),
            1,
            "the helper runs in the recorded process's group"
        );

        // A record whose pid now runs another program is not signalled.
        let impostor = Recorded {
            component: Component::Etcd,
            pid: r.pid,
            exe: sleep.clone(),
        };
        assert_eq!(stop(&[impostor], Duration::from_secs(1)).unwrap(), 0);
        assert!(alive(&r));

        assert_eq!(
            stop(std::slice::from_ref(&r), Duration::from_secs(5)).unwrap(),
            1
        );
        let _ = child.wait();
        assert!(!alive(&r));
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            exe_of(helper[0]).is_none(),
            "the helper went with its group"
        );
    }

    #[test]
    fn a_stray_is_found_by_program_and_cluster_folder() {
        let d = tempfile::tempdir().unwrap();
        let l = Layout::new(d.path().join("cluster"));
        create_layout(&l).unwrap();
        let sleep = fs::canonicalize("/bin/sleep").unwrap();
        let mut state = State::default();
        // `sleep` ignores the extra argument only as a duration, so the folder rides in argv[0].
        let mut c = Command::new(&sleep);
        c.arg0(l.root.join("marker")).arg("300");
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let found = strays(&l.root, std::slice::from_ref(&sleep));
        assert_eq!(
            found.iter().map(|r| r.pid).collect::<Vec<_>>(),
            vec![child.id() as i32]
        );
        assert!(
            strays(&d.path().join("other"), std::slice::from_ref(&sleep)).is_empty(),
            "another cluster's folder does not match"
        );
        stop(&found, Duration::from_secs(5)).unwrap();
        let _ = child.wait();
        state.processes.clear();
    }
}
