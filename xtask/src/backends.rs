//! The backend choice shared by `e2e` and `upgrade`: the flags, the `auto` decision, and
//! running one job on whichever backend was picked — with cleanup on success, failure and
//! Ctrl-C.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use e2e::Backend;
use e2e::cluster::{ClusterKind, ClusterOptions};
use e2e::process::{ProcessBackend, ProcessOptions};
use e2e::venv::VenvCache;
use render::VersionMatrix;

use crate::tools::Toolset;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// k3s when a Docker daemon answers, else process
    Auto,
    /// Real Chroma servers as local processes (no Kubernetes)
    Process,
    /// A throwaway k3s cluster in Docker
    K3s,
    /// The cluster $KUBECONFIG points at, in throwaway namespaces
    Kubeconfig,
    /// The local cluster (`cargo xtask cluster up`: upstream control plane, process node); started for the run when it is not up
    Local,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BackendFlags {
    /// Where the chart runs
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    pub backend: BackendKind,
    /// The k3s image for --backend k3s (default: the pinned one)
    #[arg(long, value_name = "IMAGE:TAG")]
    pub k3s_image: Option<String>,
    /// A `docker save` archive k3s imports before it starts, for images no registry has yet
    /// (the backup tool's, built from image/); repeatable
    #[arg(long, value_name = "FILE.tar")]
    pub k3s_preload: Vec<PathBuf>,
}

impl BackendFlags {
    /// Flags that only mean something on k3s are refused elsewhere, naming the flag.
    fn validate(&self) -> Result<()> {
        if self.backend != BackendKind::K3s {
            if self.k3s_image.is_some() {
                anyhow::bail!("--k3s-image only applies to --backend k3s");
            }
            if !self.k3s_preload.is_empty() {
                anyhow::bail!("--k3s-preload only applies to --backend k3s");
            }
        }
        Ok(())
    }
}

/// Work to do on a backend, whatever its type.
#[allow(async_fn_in_trait)]
pub trait Job {
    type Output;
    async fn run<B: Backend>(self, backend: &B) -> Result<Self::Output>;
}

/// `auto` → k3s or process, announced as the first line of output.
fn decide(kind: BackendKind) -> BackendKind {
    match kind {
        BackendKind::Auto => match e2e::cluster::docker_daemon() {
            Ok(endpoint) => {
                eprintln!("backend: k3s (auto: Docker daemon at {endpoint})");
                BackendKind::K3s
            }
            Err(why) => {
                eprintln!("backend: process (auto: {why})");
                BackendKind::Process
            }
        },
        k => {
            eprintln!(
                "backend: {}",
                match k {
                    BackendKind::Process => "process",
                    BackendKind::K3s => "k3s",
                    BackendKind::Local => "local",
                    _ => "kubeconfig",
                }
            );
            k
        }
    }
}

/// fixtures/versions.yaml: the known versions and the pins each needs.
pub fn version_matrix(root: &Path) -> Result<VersionMatrix> {
    let path = root.join("fixtures/versions.yaml");
    VersionMatrix::load(&path).with_context(|| format!("loading {}", path.display()))
}

pub use crate::interrupt::{Interrupted, interrupt};

/// Runs `job` on `backend` unless interrupted first. On interrupt the job's future is dropped,
/// which kills what it had in flight (server handles, temp dirs and pod networks clean up on
/// drop); the caller then shuts the backend down.
async fn race<B: Backend, J: Job>(backend: &B, job: J) -> Result<J::Output> {
    tokio::select! {
        // A job that itself waits for Ctrl-C (`--keep`) finishes normally on it.
        biased;
        out = job.run(backend) => out,
        why = interrupt() => {
            eprintln!("\ninterrupted ({why}): stopping servers, removing namespaces and temp dirs");
            Err(Interrupted(why).into())
        }
    }
}

/// Builds the chosen backend, runs `job` on it, and tears the backend down — after success,
/// failure, Ctrl-C or SIGTERM alike. `known` gives the process backend each version's pins.
pub fn run<J: Job>(
    flags: &BackendFlags,
    keep: bool,
    tools: &Toolset,
    known: &VersionMatrix,
    job: J,
) -> Result<J::Output> {
    flags.validate()?;
    let kind = decide(flags.backend);
    // Before the run's runtime: `cluster up` runs its own. Dropped after the run, it stops a
    // cluster started for it.
    let local = match kind {
        BackendKind::Local => {
            // The node runs the backup image's program from this workspace's build, also on a
            // cluster that was already up.
            crate::backup_tool::ensure(&crate::project_root())?;
            Some(crate::cluster::LocalCluster::ensure()?)
        }
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let out = runtime.block_on(async {
        match kind {
            BackendKind::Process | BackendKind::Auto => {
                // Without them every deployment could only report SKIP.
                crate::host::ensure()?;
                crate::backup_tool::ensure(&crate::project_root())?;
                let venvs = VenvCache::new(&tools.uv.path, VenvCache::default_root()?).with_context(|| format!("the uv at {}", tools.uv.path.display()))?;
                let pins = known.versions.iter().map(|e| (e.version.clone(), e.pins.clone())).collect();
                let backend = ProcessBackend::new(venvs, pins, ProcessOptions::default());
                // Dropping the backend stops every server it still runs and removes its files.
                race(&backend, job).await
            }
            BackendKind::K3s | BackendKind::Kubeconfig | BackendKind::Local => {
                let ck = match kind {
                    BackendKind::K3s => ClusterKind::K3s,
                    BackendKind::Local => ClusterKind::Local,
                    _ => ClusterKind::Kubeconfig,
                };
                let mut copts = ClusterOptions::new(&tools.helm.path);
                copts.local_kubeconfig = local.as_ref().map(|l| l.kubeconfig.clone());
                copts.keep = keep;
                copts.k3s_image = flags.k3s_image.clone();
                copts.k3s_preload = flags.k3s_preload.clone();
                // Ctrl-C while k3s is still starting: the container (labelled with this run
                // before Docker made it) and any namespace go through the cleanup handle.
                let cleanup = copts.cleanup.clone();
                let backend = tokio::select! {
                    biased;
                    started = e2e::cluster::start(ck, copts) => started?,
                    why = interrupt() => {
                        eprintln!("\ninterrupted ({why}) while the cluster was starting: removing it");
                        if let Err(e) = cleanup.run().await {
                            eprintln!("cleanup after the interrupt failed: {e}");
                        }
                        return Err(Interrupted(why).into());
                    }
                };
                let out = race(&backend, job).await;
                backend.shutdown().await?;
                out
            }
        }
    });
    // Blocking work still running (a venv build) must not hold the exit forever.
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(backend: BackendKind, image: bool, preload: bool) -> BackendFlags {
        BackendFlags {
            backend,
            k3s_image: image.then(|| "rancher/k3s:v1".into()),
            k3s_preload: if preload {
                vec!["b.tar".into()]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn k3s_flags_are_refused_on_other_backends_naming_the_flag() {
        let err = flags(BackendKind::Process, false, true)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("--k3s-preload"), "{err}");
        let err = flags(BackendKind::Kubeconfig, true, false)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("--k3s-image"), "{err}");
    }

    #[test]
    fn k3s_flags_are_taken_on_k3s() {
        flags(BackendKind::K3s, true, true)
            .validate()
            .expect("both apply to k3s");
    }
}
