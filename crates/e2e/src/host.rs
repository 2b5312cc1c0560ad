//! The host programs the process backend runs in place of images and of kubelet's own parts,
//! and the one way every command and test gets them: [`ensure`].
//!
//! Each is a Debian package's program at a fixed path (the backend names them by absolute
//! path, so a copy elsewhere on PATH would not be the one that runs). As root, what is missing
//! is installed with apt-get in one step; as another user, [`ensure`] refuses with the
//! programs and the `apt-get install` line that would bring them, because a run without them
//! could only report SKIP.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// One program the process backend needs, and the Debian package that ships it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Program {
    pub name: &'static str,
    pub package: &'static str,
    /// What it stands in for, for messages.
    pub role: &'static str,
}

/// Every program the process backend runs, in the order they are reported.
pub const PROGRAMS: [Program; 10] = [
    Program {
        name: "curl",
        package: "curl",
        role: "the test image's program, and readiness polls",
    },
    Program {
        name: "ip",
        package: "iproute2",
        role: "a pod's network namespace",
    },
    Program {
        name: "setpriv",
        package: "util-linux",
        role: "running a container as its user",
    },
    Program {
        name: "bwrap",
        package: "bubblewrap",
        role: "a container's read-only root filesystem",
    },
    Program {
        name: "nginx",
        package: "nginx",
        role: "the TLS proxy image's program",
    },
    Program {
        name: "htpasswd",
        package: "apache2-utils",
        role: "the basic-auth init image's program",
    },
    Program {
        name: "mount",
        package: "mount",
        role: "a claim of its requested size (tmpfs)",
    },
    Program {
        name: "nft",
        package: "nftables",
        role: "kube-proxy's Service rules on the local cluster",
    },
    Program {
        name: "iptables",
        package: "iptables",
        role: "kube-router's NetworkPolicy rules on the local cluster",
    },
    Program {
        name: "ipset",
        package: "ipset",
        role: "the pod sets kube-router's NetworkPolicy rules match",
    },
];

const BIN_DIRS: [&str; 4] = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"];

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(
        "the process backend needs {} and is not running as root, so it cannot install them; as root run: apt-get install -y {}",
        names(.missing),
        packages(.missing)
    )]
    NotRoot { missing: Vec<Program> },
    #[error("`{command}` could not start")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}) while installing {}", packages(.missing))]
    Install {
        command: String,
        status: ExitStatus,
        missing: Vec<Program>,
    },
    #[error("apt-get installed {} but {} is still not in {}", packages(.missing), names(.missing), BIN_DIRS.join(", "))]
    StillMissing { missing: Vec<Program> },
    #[error("the install lock {}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn names(p: &[Program]) -> String {
    p.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}

fn packages(p: &[Program]) -> String {
    let mut pkgs: Vec<&str> = p.iter().map(|p| p.package).collect();
    pkgs.dedup();
    pkgs.join(" ")
}

/// Whether `name` is in one of the directories the backend runs programs from.
pub fn present(name: &str) -> bool {
    BIN_DIRS.iter().any(|d| Path::new(d).join(name).is_file())
}

/// The programs for which `is_present` says no, in [`PROGRAMS`] order.
pub fn missing_by(is_present: impl Fn(&str) -> bool) -> Vec<Program> {
    PROGRAMS
        .iter()
        .copied()
        .filter(|p| !is_present(p.name))
        .collect()
}

/// The programs missing on this host.
pub fn missing() -> Vec<Program> {
    missing_by(present)
}

/// What [`ensure`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ensured {
    /// The packages it installed (empty when everything was there).
    pub installed: Vec<&'static str>,
}

/// Makes every program of [`PROGRAMS`] present: nothing to do when they are; as root, one
/// `apt-get update` + `apt-get install` of the missing packages (its output goes to this
/// process's stderr, so the step is visible); otherwise [`HostError::NotRoot`].
///
/// Safe to call from many processes at once (parallel test binaries): installs are serialised
/// by a lock file, and each caller looks again once it holds the lock.
pub fn ensure() -> Result<Ensured, HostError> {
    if missing().is_empty() {
        return Ok(Ensured::default());
    }
    if !is_root() {
        return Err(HostError::NotRoot { missing: missing() });
    }
    let lock_path = lock_path();
    let _lock = lock(&lock_path)?;
    let todo = missing();
    if todo.is_empty() {
        return Ok(Ensured::default());
    }
    tracing::info!(packages = %packages(&todo), "installing the process backend's host programs");
    apt(Command::new("apt-get").args(["update", "-qq"]), &todo)?;
    apt(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(todo.iter().map(|p| p.package))
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &todo,
    )?;
    let still = missing();
    if !still.is_empty() {
        return Err(HostError::StillMissing { missing: still });
    }
    let mut installed: Vec<&'static str> = todo.iter().map(|p| p.package).collect();
    installed.dedup();
    Ok(Ensured { installed })
}

fn apt(cmd: &mut Command, missing: &[Program]) -> Result<(), HostError> {
    let command = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    // apt's progress belongs on stderr: stdout is for results.
    let status = cmd
        .stdout(std::process::Stdio::from(std::io::stderr()))
        .status()
        .map_err(|source| HostError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !status.success() {
        return Err(HostError::Install {
            command,
            status,
            missing: missing.to_vec(),
        });
    }
    Ok(())
}

/// Beside the harness's other root-owned cache (the Chroma environments).
fn lock_path() -> PathBuf {
    PathBuf::from("/var/cache/chromadb-chart-harness/host-install.lock")
}

fn lock(path: &Path) -> Result<File, HostError> {
    let err = |source| HostError::Lock {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err)?;
    }
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(err)?;
    // Released when the file is closed, also if the process dies.
    f.lock().map_err(err)?;
    Ok(f)
}

/// Whether this process runs as root (the effective uid).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_names_each_absent_program_in_order() {
        let m = missing_by(|p| p == "curl" || p == "ip");
        assert_eq!(
            m.iter().map(|p| p.name).collect::<Vec<_>>(),
            [
                "setpriv", "bwrap", "nginx", "htpasswd", "mount", "nft", "iptables", "ipset"
            ]
        );
    }

    #[test]
    fn nothing_is_missing_when_every_program_is_there() {
        assert!(missing_by(|_| true).is_empty());
    }

    #[test]
    fn refusal_as_another_user_names_the_programs_and_the_install_line() {
        let e = HostError::NotRoot {
            missing: missing_by(|p| p != "bwrap" && p != "nginx"),
        };
        // bwrap and nginx, in table order
        assert_eq!(
            e.to_string(),
            "the process backend needs bwrap, nginx and is not running as root, so it cannot install them; as root run: apt-get install -y bubblewrap nginx"
        );
    }

    #[test]
    fn every_program_names_a_package_and_a_role() {
        for p in PROGRAMS {
            assert!(!p.package.is_empty() && !p.role.is_empty(), "{p:?}");
        }
    }
}
