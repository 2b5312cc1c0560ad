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
        return Err(
            "sizing a claim needs a mount, which only a harness running as root can make".into(),
        );
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
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0755,nosuid,nodev"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .map_err(|e| format!("running mount for {}: {e}", at.display()))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs -o size={bytes} on {} failed ({}): {}",
                at.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SizedVolume {
            at: at.to_path_buf(),
            bytes,
            mounted: true,
        })
    }

    /// Unmounts it now (its files go with it).
    pub fn unmount(&mut self) -> Result<(), String> {
        if !self.mounted {
            return Ok(());
        }
        let out = Command::new("umount")
            .arg("--lazy")
            .arg(&self.at)
            .output()
            .map_err(|e| format!("running umount {}: {e}", self.at.display()))?;
        if !out.status.success() {
            return Err(format!(
                "umount {} failed ({}): {}",
                self.at.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
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

// One parser for the spec model and the node.
pub use render::quantity::parse_quantity;
