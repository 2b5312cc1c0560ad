//! The node's size limit on a claim. A provisioner of block storage hands a pod a filesystem
//! of the size its claim requests, and a write past it fails with ENOSPC; a plain directory
//! would let the server grow without end. The process backend, as root, mounts a tmpfs of the
//! requested size (with util-linux `mount`, as the kubelet mounts its own tmpfs volumes) on
//! each of the StatefulSet's claims, and unmounts it when the deployment goes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted, size-limited claim; unmounted (lazily, so a straggling reader cannot pin it)
/// when dropped.
#[derive(Debug)]
pub struct SizedVolume {
    pub at: PathBuf,
    pub bytes: u64,
    mounted: bool,
}

/// `Ok(())` when this host can give a claim a size: root and util-linux `mount`.
pub fn available() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("sizing a claim needs a mount, which only a harness running as root can make".into());
    }
    if !Path::new("/usr/bin/mount").is_file() && !Path::new("/bin/mount").is_file() {
        return Err("util-linux `mount` is not installed (apt-get install mount)".into());
    }
    Ok(())
}

impl SizedVolume {
    /// Mounts a tmpfs of `bytes` on `at` (an existing, empty directory).
    pub fn mount(at: &Path, bytes: u64) -> Result<SizedVolume, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0755,nosuid,nodev"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("running mount for {}: {e}", at.display()))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs -o size={bytes} on {} failed ({}): {}", at.display(), out.status, String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(SizedVolume { at: at.to_path_buf(), bytes, mounted: true })
    }

    /// Unmounts it now (its files go with it).
    pub fn unmount(&mut self) -> Result<(), String> {
        if !self.mounted {
            return Ok(());
        }
        let out = Command::new("umount").arg("--lazy").arg(&self.at).output().map_err(|e| format!("running umount {}: {e}", self.at.display()))?;
        if !out.status.success() {
            return Err(format!("umount {} failed ({}): {}", self.at.display(), out.status, String::from_utf8_lossy(&out.stderr).trim()));
        }
        self.mounted = false;
        Ok(())
    }
}

impl Drop for SizedVolume {
    fn drop(&mut self) {
        let _ = self.unmount();
    }
}

/// A Kubernetes quantity of bytes (`16Mi`, `1Gi`, `500M`, `1e6`, `2048`) as a number.
pub fn parse_quantity(q: &str) -> Result<u64, String> {
    let q = q.trim();
    const SUFFIXES: [(&str, u64); 12] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("Ei", 1 << 60),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("P", 1_000_000_000_000_000),
        ("E", 1_000_000_000_000_000_000),
    ];
    let bad = || format!("`{q}` is not a quantity of bytes (e.g. 16Mi, 1Gi, 500M, 2048)");
    let (number, unit) = SUFFIXES.iter().find_map(|(s, m)| q.strip_suffix(s).map(|n| (n, *m))).unwrap_or((q, 1));
    let value: f64 = number.parse().map_err(|_| bad())?;
    if !value.is_finite() || value <= 0.0 {
        return Err(bad());
    }
    Ok((value * unit as f64).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case::binary_mebibytes("16Mi", 16 << 20)]
    #[case::binary_gibibytes("1Gi", 1 << 30)]
    #[case::decimal_megabytes("500M", 500_000_000)]
    #[case::plain_bytes("2048", 2048)]
    #[case::exponent("1e6", 1_000_000)]
    #[case::fraction_rounds_up("1.5Ki", 1536)]
    fn quantities_in_bytes(#[case] q: &str, #[case] bytes: u64) {
        assert_eq!(parse_quantity(q).unwrap(), bytes);
    }

    #[rstest::rstest]
    #[case::a_word("lots")]
    #[case::zero("0Mi")]
    #[case::negative("-1Gi")]
    #[case::empty("")]
    fn a_bad_quantity_is_named(#[case] q: &str) {
        let e = parse_quantity(q).unwrap_err();
        assert!(e.contains(&format!("`{}`", q.trim())), "{e}");
    }
}
