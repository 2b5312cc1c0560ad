//! The backend choice shared by `e2e` and `upgrade`: the flags, the `auto` decision, and
//! running one job on whichever backend was picked — with cleanup on success, failure and
//! Ctrl-C.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
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
}

#[derive(Debug, Clone, clap::Args)]
pub struct BackendFlags {
    /// Where the chart runs
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    pub backend: BackendKind,
    /// The k3s image for --backend k3s (default: the pinned one)
    #[arg(long, value_name = "IMAGE:TAG")]
    pub k3s_image: Option<String>,
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
            eprintln!("backend: {}", match k {
                BackendKind::Process => "process",
                BackendKind::K3s => "k3s",
                _ => "kubeconfig",
            });
            k
        }
    }
}

/// fixtures/versions.yaml: the known versions and the pins each needs.
pub fn version_matrix(root: &Path) -> Result<VersionMatrix> {
    let path = root.join("fixtures/versions.yaml");
    VersionMatrix::load(&path).with_context(|| format!("loading {}", path.display()))
}

/// Builds the chosen backend, runs `job` on it, and tears the backend down. `known` gives the
/// process backend each version's pins.
pub fn run<J: Job>(flags: &BackendFlags, keep: bool, tools: &Toolset, known: &VersionMatrix, job: J) -> Result<J::Output> {
    if flags.k3s_image.is_some() && flags.backend != BackendKind::K3s {
        anyhow::bail!("--k3s-image only applies to --backend k3s");
    }
    let kind = decide(flags.backend);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async {
        match kind {
            BackendKind::Process | BackendKind::Auto => {
                let venvs = VenvCache::new(&tools.uv.path, VenvCache::default_root().map_err(|e| anyhow!("{e}"))?)
                    .map_err(|e| anyhow!("the uv at {}: {e}", tools.uv.path.display()))?;
                let pins = known.versions.iter().map(|e| (e.version.clone(), e.pins.clone())).collect();
                // Installs the Ctrl-C handler that stops every server and removes its files.
                let backend = ProcessBackend::new(venvs, pins, ProcessOptions::default());
                job.run(&backend).await
            }
            BackendKind::K3s | BackendKind::Kubeconfig => {
                let ck = if kind == BackendKind::K3s { ClusterKind::K3s } else { ClusterKind::Kubeconfig };
                let mut copts = ClusterOptions::new(&tools.helm.path);
                copts.keep = keep;
                copts.k3s_image = flags.k3s_image.clone();
                let backend = e2e::cluster::start(ck, copts).await.map_err(|e| anyhow!("{e}"))?;
                let outcome = tokio::select! {
                    out = job.run(&backend) => Some(out),
                    _ = tokio::signal::ctrl_c() => None,
                };
                if outcome.is_none() {
                    eprintln!("\ninterrupted: removing namespaces and the cluster");
                }
                backend.shutdown().await.map_err(|e| anyhow!("{e}"))?;
                outcome.unwrap_or_else(|| std::process::exit(130))
            }
        }
    })
}
