//! The node's size limit on a claim. A provisioner of block storage hands a pod a filesystem
//! of the size its claim requests, and a write past it fails with ENOSPC; a plain directory
//! would let the server grow without end. The process backend, as root, mounts a tmpfs of the
//! requested size (with util-linux `mount`, as the kubelet mounts its own tmpfs volumes) on
//! each of the StatefulSet's claims, and unmounts it when the deployment goes.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// Why a claim cannot be given (or freed of) its size here.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("sizing a claim needs a mount, which only a harness running as root can make")]
    NotRoot,
    #[error("util-linux `mount` is not installed (apt-get install mount)")]
    NoMount,
    #[error("running {command} {}: {source}", at.display())]
    Run {
        command: &'static str,
        at: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed ({status}): {stderr}")]
    Failed {
        what: String,
        status: ExitStatus,
        stderr: String,
    },
}

/// A mounted, size-limited claim; unmounted (lazily, so a straggling reader cannot pin it)
/// when dropped.
#[derive(Debug)]
pub struct SizedVolume {
    pub at: PathBuf,
    pub bytes: u64,
    mounted: bool,
}

/// `Ok(())` when this host can give a claim a size: root and util-linux `mount`.
pub fn available() -> Result<(), VolumeError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(VolumeError::NotRoot);
    }
    if !Path::new("/usr/bin/mount").is_file() && !Path::new("/bin/mount").is_file() {
        return Err(VolumeError::NoMount);
    }
    Ok(())
}

impl SizedVolume {
    /// Mounts a tmpfs of `bytes` on `at` (an existing, empty directory).
    pub fn mount(at: &Path, bytes: u64) -> Result<SizedVolume, VolumeError> {
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
            .map_err(|source| VolumeError::Run {
                command: "mount for",
                at: at.to_path_buf(),
                source,
            })?;
        if !out.status.success() {
            return Err(VolumeError::Failed {
                what: format!("mount -t tmpfs -o size={bytes} on {}", at.display()),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(SizedVolume {
            at: at.to_path_buf(),
            bytes,
            mounted: true,
        })
    }

    /// Unmounts it now (its files go with it).
    pub fn unmount(&mut self) -> Result<(), VolumeError> {
        if !self.mounted {
            return Ok(());
        }
        let out = Command::new("umount")
            .arg("--lazy")
            .arg(&self.at)
            .output()
            .map_err(|source| VolumeError::Run {
                command: "umount",
                at: self.at.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(VolumeError::Failed {
                what: format!("umount {}", self.at.display()),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
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
