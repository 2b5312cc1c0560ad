//! Debian packages the process backend's stand-ins need on this host: `curl` (the test
//! image's program), `ip` (iproute2: the hook pod's network namespace), `setpriv`
//! (util-linux: running a container as its user), `bwrap` (bubblewrap: a read-only root
//! filesystem), `nginx` (the TLS proxy image's program) and `htpasswd` (apache2-utils: the
//! basic-auth init container's program). The test command installs what is
//! missing, as root, so a fresh machine needs no manual step; elsewhere the `chart-test`
//! check reports SKIP naming what is missing.

use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};

use crate::cmd;

/// (program, Debian package that provides it).
pub const NEEDED: [(&str, &str); 6] =
    [("curl", "curl"), ("ip", "iproute2"), ("setpriv", "util-linux"), ("bwrap", "bubblewrap"), ("nginx", "nginx"), ("htpasswd", "apache2-utils")];

fn present(program: &str) -> bool {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"].iter().any(|d| Path::new(d).join(program).is_file())
}

/// The packages whose program is missing, in [`NEEDED`] order.
pub fn missing(is_present: impl Fn(&str) -> bool) -> Vec<&'static str> {
    NEEDED.iter().filter(|(prog, _)| !is_present(prog)).map(|(_, pkg)| *pkg).collect()
}

/// Installs the missing packages with apt-get (root only).
pub fn ensure() -> Result<()> {
    let pkgs = missing(present);
    if pkgs.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!("the process backend's stand-ins need {} (apt-get install {}); run as root or install them", pkgs.join(", "), pkgs.join(" "));
    }
    cmd::run(Command::new("apt-get").arg("update").arg("-qq"))?;
    cmd::run(Command::new("apt-get").args(["install", "-y", "-qq", "--no-install-recommends"]).args(&pkgs).env("DEBIAN_FRONTEND", "noninteractive"))
}

fn is_root() -> bool {
    // The effective uid from /proc keeps xtask free of libc bindings.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn missing_names_the_package_of_each_missing_program() {
        assert_eq!(super::missing(|p| p == "curl"), ["iproute2", "util-linux", "bubblewrap", "nginx", "apache2-utils"]);
    }

    #[test]
    fn nothing_is_missing_when_every_program_is_there() {
        assert!(super::missing(|_| true).is_empty());
    }
}
