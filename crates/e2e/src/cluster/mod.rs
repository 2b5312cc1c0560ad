//! Cluster backends: the chart installed with the real helm into a real Kubernetes API.
//!
//! - [`ClusterKind::K3s`]: one privileged k3s container per run (testcontainers), needs a
//!   Docker daemon. Not runnable on the machine this harness was written on (it has a docker
//!   CLI but no engine); there, `start` fails in seconds naming the socket it tried. The code
//!   follows testcontainers-modules' own k3s tests and kube-rs' examples; CI runs it
//!   (`.github/workflows/e2e.yml`).
//! - [`ClusterKind::Kubeconfig`]: whatever `$KUBECONFIG` points at (kind, minikube, a real
//!   cluster), the current context pinned at start.
//!
//! Both give a [`ClusterBackend`]: one throwaway namespace per release, `helm upgrade
//! --install --wait`, StatefulSet readiness through `await_condition` (an image that cannot
//! be pulled fails the deploy in about 30 s), the API reached through a kube-rs port-forward,
//! `helm test` with the hook Job's pod logs read by label ([`hooks`]), and events, pod status
//! and container logs attached to every failure. Everything a run creates is known to its
//! [`Cleanup`] before it exists, so an interrupted run leaves nothing behind.

mod backend;
pub mod cleanup;
pub mod diagnostics;
pub mod docker;
mod forward;
pub mod helm;
pub mod hooks;
pub mod k3s;
pub mod kubeconfig;
pub mod naming;
pub mod readiness;

use std::path::PathBuf;
use std::time::Duration;

pub use backend::ClusterBackend;
pub use cleanup::Cleanup;
pub use docker::docker_daemon;
pub use k3s::K3S_IMAGE;

use crate::backend::BackendError;

/// Which cluster to run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterKind {
    /// A fresh k3s in a Docker container, removed at the end of the run.
    K3s,
    /// The cluster `$KUBECONFIG` (or `~/.kube/config`) points at.
    Kubeconfig,
    /// The local cluster `cargo xtask cluster up` runs (upstream control plane, process
    /// node), through its own kubeconfig; Services are reached at their ClusterIPs through
    /// this host's kube-proxy rules.
    Local,
}

impl ClusterKind {
    pub fn name(self) -> &'static str {
        match self {
            ClusterKind::K3s => "k3s",
            ClusterKind::Kubeconfig => "kubeconfig",
            ClusterKind::Local => "local",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The helm binary to install with (xtask passes the one it provisioned; never PATH).
    pub helm: PathBuf,
    /// `rancher/k3s:<tag>` (or any registry/name:tag); `None` = [`K3S_IMAGE`].
    pub k3s_image: Option<String>,
    /// `docker save` archives k3s imports before it starts (its airgap images directory):
    /// images no registry has yet, such as this workspace's own backup tool.
    pub k3s_preload: Vec<PathBuf>,
    /// Leave namespaces (and the k3s container) behind for debugging.
    pub keep: bool,
    /// Bound for each wait: k3s start, `helm --wait --timeout`, readiness after restarts.
    pub timeout: Duration,
    /// The local cluster's kubeconfig ([`ClusterKind::Local`]).
    pub local_kubeconfig: Option<PathBuf>,
    /// Removes what the run created; clone it *before* [`start`] so a Ctrl-C while k3s is
    /// starting can still remove the container ([`Cleanup::run`]).
    pub cleanup: Cleanup,
}

impl ClusterOptions {
    pub fn new(helm: impl Into<PathBuf>) -> Self {
        ClusterOptions {
            helm: helm.into(),
            k3s_image: None,
            k3s_preload: Vec::new(),
            keep: false,
            timeout: Duration::from_secs(300),
            local_kubeconfig: None,
            cleanup: Cleanup::default(),
        }
    }
}

/// Connects to (or, for k3s, starts) the cluster. Call [`ClusterBackend::shutdown`] at the
/// end of the run; on Ctrl-C/SIGTERM, drop whatever future is running and call
/// [`Cleanup::run`] on `opts.cleanup` (taken before this call), which also covers a k3s
/// container still starting and namespaces of deploys still in progress.
pub async fn start(
    kind: ClusterKind,
    opts: ClusterOptions,
) -> Result<ClusterBackend, BackendError> {
    backend::ClusterBackend::start(kind, opts).await
}
