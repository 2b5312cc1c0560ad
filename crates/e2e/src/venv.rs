//! Per-version Chroma Python environments, made with uv and cached outside the repo.
//!
//! One environment per (version, pins): `<cache>/chromadb-chart-harness/venvs/<version>-<hash>`.
//! An environment is built in a scratch directory next to its final place and renamed into
//! place only once `uv pip install` succeeded, so a half-built one is never used. A file lock
//! per key serialises builders: two runs (or two jobs of one run) asking for the same version
//! build it once and share it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use render::ChromaVersion;
use sha2::{Digest, Sha256};

/// The interpreter every environment uses: every Chroma release in the matrix installs on it.
pub const PYTHON: &str = "python3.11";
/// Debian's build of it, preferred when present: it lives where any user can run it, so a
/// server started under the pod's `runAsUser` can (an interpreter under root's home cannot).
const SYSTEM_PYTHON: &str = "/usr/bin/python3.11";

/// The interpreter uv builds environments with: Debian's when it exists, else whatever
/// `python3.11` uv finds.
fn interpreter() -> &'static str {
    if Path::new(SYSTEM_PYTHON).is_file() {
        SYSTEM_PYTHON
    } else {
        PYTHON
    }
}
/// Written last into a finished environment; its presence means "complete".
const MARKER: &str = ".chromadb-harness-complete";

#[derive(Debug, thiserror::Error)]
pub enum VenvError {
    #[error("no uv binary: $UV is not set (run through `cargo xtask`, which provisions uv)")]
    UvNotConfigured,
    #[error("uv binary {0} does not exist")]
    UvMissing(PathBuf),
    #[error("no cache directory for Python environments (set $XDG_CACHE_HOME or $HOME)")]
    NoCacheDir,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("building the Python environment for chromadb {version} failed at `{step}`:\n{output}")]
    Build {
        version: ChromaVersion,
        step: String,
        output: String,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> VenvError {
    let context = context.into();
    move |source| VenvError::Io { context, source }
}

/// A ready environment with chromadb installed.
#[derive(Debug, Clone)]
pub struct Venv {
    pub version: ChromaVersion,
    pub dir: PathBuf,
}

impl Venv {
    pub fn bin_dir(&self) -> PathBuf {
        self.dir.join("bin")
    }

    /// The installed `chromadb` package directory (what the official image has under /chroma).
    pub fn chromadb_package(&self) -> Option<PathBuf> {
        let lib = self.dir.join("lib");
        std::fs::read_dir(&lib)
            .ok()?
            .flatten()
            .map(|e| e.path().join("site-packages/chromadb"))
            .find(|p| p.is_dir())
    }
}

/// Where environments live and how they are made.
#[derive(Debug, Clone)]
pub struct VenvCache {
    root: PathBuf,
    uv: PathBuf,
}

/// How an [`VenvCache::ensure`] call got its environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    Reused,
    Built(Duration),
}

impl VenvCache {
    /// `uv` from `$UV`, cache under the user's XDG cache directory.
    pub fn from_env() -> Result<Self, VenvError> {
        let uv = match std::env::var_os("UV") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => return Err(VenvError::UvNotConfigured),
        };
        Self::new(uv, Self::default_root()?)
    }

    /// `<XDG cache>/chromadb-chart-harness/venvs`; as root `/var/cache/…` instead, because
    /// root's home is closed to the non-root users servers run as (`runAsUser`).
    pub fn default_root() -> Result<PathBuf, VenvError> {
        if nix::unistd::geteuid().is_root() && std::env::var_os("XDG_CACHE_HOME").is_none() {
            return Ok(PathBuf::from("/var/cache/chromadb-chart-harness/venvs"));
        }
        Ok(dirs::cache_dir()
            .ok_or(VenvError::NoCacheDir)?
            .join("chromadb-chart-harness")
            .join("venvs"))
    }

    pub fn new(uv: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Result<Self, VenvError> {
        let uv = uv.into();
        if !uv.is_file() {
            return Err(VenvError::UvMissing(uv));
        }
        Ok(VenvCache {
            root: root.into(),
            uv,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cache key: version plus a hash of everything else that shapes the environment, so
    /// changing a pin makes a new environment instead of silently reusing the old one.
    pub fn key(version: &ChromaVersion, pins: &[String]) -> String {
        let mut h = Sha256::new();
        h.update(interpreter().as_bytes());
        for p in pins {
            h.update(b"\0");
            h.update(p.as_bytes());
        }
        format!("{version}-{}", &hex::encode(h.finalize())[..12])
    }

    /// The environment for `version` with `pins`, building it if no run has yet.
    pub fn ensure(
        &self,
        version: &ChromaVersion,
        pins: &[String],
    ) -> Result<(Venv, Provenance), VenvError> {
        let key = Self::key(version, pins);
        let dir = self.root.join(&key);
        let venv = Venv {
            version: version.clone(),
            dir: dir.clone(),
        };
        if dir.join(MARKER).is_file() {
            return Ok((venv, Provenance::Reused));
        }
        std::fs::create_dir_all(&self.root)
            .map_err(io(format!("creating {}", self.root.display())))?;
        let lock_path = self.root.join(format!("{key}.lock"));
        let lock =
            File::create(&lock_path).map_err(io(format!("creating {}", lock_path.display())))?;
        lock.lock()
            .map_err(io(format!("locking {}", lock_path.display())))?;
        // Someone else may have finished it while we waited for the lock.
        if dir.join(MARKER).is_file() {
            return Ok((venv, Provenance::Reused));
        }
        let started = Instant::now();
        self.remove_stale(&key);
        let scratch = self
            .root
            .join(format!(".building-{key}-{}", std::process::id()));
        let result = self.build(version, pins, &scratch).and_then(|()| {
            if dir.exists() {
                // An incomplete leftover (no marker) from an older harness: replace it.
                std::fs::remove_dir_all(&dir)
                    .map_err(io(format!("removing incomplete {}", dir.display())))?;
            }
            std::fs::rename(&scratch, &dir)
                .map_err(io(format!("moving {} into place", scratch.display())))
        });
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&scratch);
        }
        result?;
        drop(lock);
        Ok((venv, Provenance::Built(started.elapsed())))
    }

    /// Scratch directories of builds that died (the lock is ours, so nobody is using them).
    fn remove_stale(&self, key: &str) {
        let prefix = format!(".building-{key}-");
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }

    fn build(
        &self,
        version: &ChromaVersion,
        pins: &[String],
        scratch: &Path,
    ) -> Result<(), VenvError> {
        let _ = std::fs::remove_dir_all(scratch);
        // Relocatable: the environment is built under a scratch name and then renamed, so its
        // console scripts (uvicorn, chroma) must not hard-code the scratch path.
        self.uv(version, "uv venv", |c| {
            c.args([
                "venv",
                "--quiet",
                "--relocatable",
                "--python",
                interpreter(),
            ])
            .arg(scratch);
        })?;
        let python = scratch.join("bin/python");
        self.uv(version, "uv pip install", |c| {
            c.args(["pip", "install", "--quiet", "--python"])
                .arg(&python)
                .arg(format!("chromadb=={version}"))
                .args(pins);
        })?;
        let marker = scratch.join(MARKER);
        let text = format!("chromadb=={version}\n{}\n", pins.join("\n"));
        std::fs::write(&marker, text).map_err(io(format!("writing {}", marker.display())))
    }

    fn uv(
        &self,
        version: &ChromaVersion,
        step: &str,
        args: impl FnOnce(&mut Command),
    ) -> Result<(), VenvError> {
        let mut cmd = Command::new(&self.uv);
        args(&mut cmd);
        tracing::debug!(?cmd, "uv");
        let out = cmd
            .output()
            .map_err(io(format!("running {}", self.uv.display())))?;
        if out.status.success() {
            return Ok(());
        }
        let mut output = String::from_utf8_lossy(&out.stderr).into_owned();
        output.push_str(&String::from_utf8_lossy(&out.stdout));
        Err(VenvError::Build {
            version: version.clone(),
            step: format!("{step} ({})", out.status),
            output: output.trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_changes_when_pins_change() {
        let v = ChromaVersion::new(0, 5, 0);
        assert_ne!(
            VenvCache::key(&v, &[]),
            VenvCache::key(&v, &["numpy<2".into()])
        );
    }

    #[test]
    fn key_starts_with_the_version() {
        let v = ChromaVersion::new(1, 5, 0);
        assert!(VenvCache::key(&v, &[]).starts_with("1.5.0-"));
    }

    #[test]
    fn missing_uv_is_named() {
        let err = VenvCache::new("/nonexistent/uv", "/tmp/x").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/uv"), "{err}");
    }
}
