//! Backends run a rendered release somewhere real and hand back an endpoint to probe.
//!
//! Every backend gets the same [`Release`]: the render request (so cluster backends can
//! `helm install` the very same chart and values), the objects that request rendered (so the
//! process backend can launch exactly them), and any Secrets the user is expected to have
//! created beforehand (`chromadb.auth.existingSecret`). Checks only ever see a [`Deployed`].

pub mod jobs;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};

use render::{ChromaVersion, RenderRequest, Rendered};

/// What to deploy: one chart render for one Chroma version.
#[derive(Debug, Clone)]
pub struct Release {
    /// Unique within a run: becomes the namespace (clusters) or temp-dir name (process).
    pub id: String,
    pub version: ChromaVersion,
    pub request: RenderRequest,
    pub rendered: Rendered,
    /// Secrets that exist before install, by name (key → plain value).
    pub external_secrets: BTreeMap<String, BTreeMap<String, String>>,
}

/// A running release.
#[derive(Debug)]
pub struct Deployed {
    pub id: String,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base_url: String,
    /// Things the backend changed from what was rendered (e.g. "listen on 127.0.0.1:43121
    /// instead of 0.0.0.0:8000"), reported next to the results.
    pub adjustments: Vec<String>,
    /// The Secrets the server's pod actually got, by name (key → plain value): the chart's
    /// generated auth Secret as installed (a cluster generates it at install, so it differs
    /// from what `helm template` printed) plus any external ones. Checks take credentials
    /// from here, never from the render.
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// Set when the deployment serves HTTPS: `base_url` is `https://<Service name>:PORT` and
    /// clients resolve that name and trust the CA from here ([`crate::tls::client_builder`]).
    pub tls: Option<crate::tls::TlsEndpoint>,
}

/// How the chart's test hook, or another of the release's Jobs, ended on a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookRun {
    /// Every hook pod succeeded; their container logs.
    Succeeded { log: String },
    /// A hook pod failed: why (exit code, Job condition) and the container logs.
    Failed { reason: String, log: String },
    /// The backend cannot run the hook faithfully here (e.g. no network namespaces without
    /// root); never counted as a pass.
    Unsupported { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The rendered objects could not be run as they are (an API server or kubelet would
    /// refuse them too); `reason` names the object and field.
    #[error("the rendered release cannot run: {reason}")]
    Invalid { reason: String },
    /// [`BackendError::Invalid`] found by a module with an error type of its own (a Service
    /// that selects no pods, an HTTPS release without a CA), kept as the source.
    #[error("the rendered release cannot run: {0}")]
    Unrunnable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the server did not become ready within {waited:?}: {detail}")]
    NotReady { waited: Duration, detail: String },
    #[error("{what}: {detail}")]
    Failed { what: String, detail: String },
    #[error("{backend} backend is unavailable: {reason}")]
    Unavailable {
        backend: &'static str,
        reason: String,
    },
    /// The release is valid but uses something this backend has no faithful stand-in for
    /// (a sidecar's image, another init container): its checks are SKIP with this reason.
    #[error("the {backend} backend cannot run this release faithfully: {reason}")]
    Unsupported {
        backend: &'static str,
        reason: String,
    },
    /// A Kubernetes API call failed (cluster backends); the client's error stays the source.
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A step failed with an error of its own (a venv build, a pod network), kept as the source.
    #[error("{what}: {source}")]
    Step {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A step failed with an error of its own, and what the backend saw at the time (events,
    /// pod states, log tails) explains it: `report` is that text, the error stays the source.
    #[error("{what}: {source}\n{report}")]
    Diagnosed {
        what: String,
        report: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The backend's cluster or daemon is missing or does not answer (no Docker daemon, a
    /// kubeconfig that does not parse, an API server that is down); the cause stays the source.
    #[error("{backend} backend is unavailable: {source}")]
    Unreachable {
        backend: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl BackendError {
    pub fn step(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> BackendError {
        BackendError::Step {
            what: what.into(),
            source: Box::new(source),
        }
    }

    pub fn unrunnable(source: impl std::error::Error + Send + Sync + 'static) -> BackendError {
        BackendError::Unrunnable(Box::new(source))
    }

    pub fn diagnosed(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
        report: String,
    ) -> BackendError {
        BackendError::Diagnosed {
            what: what.into(),
            report,
            source: Box::new(source),
        }
    }

    pub fn unreachable(
        backend: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> BackendError {
        BackendError::Unreachable {
            backend,
            source: Box::new(source),
        }
    }
}

/// How a container ended, in the words of a pod's `status.containerStatuses[].lastState.terminated`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Terminated {
    /// `OOMKilled`, `Error` or `Completed`.
    pub reason: String,
    pub exit_code: i32,
    /// What the node measured (the memory cgroup's peak and limit, a signal).
    pub detail: String,
}

impl std::fmt::Display for Terminated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (exit code {}; {})",
            self.reason, self.exit_code, self.detail
        )
    }
}

/// What the controllers of a release's namespace say its selectors pick (see
/// [`Backend::selections`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selections {
    /// Every pod in the namespace: name and its controller (`StatefulSet/x`, `Job/y`, or
    /// `none`).
    pub pods: Vec<(String, String)>,
    /// Each Service and the pods its EndpointSlices list (ready or not).
    pub services: Vec<(String, Vec<String>)>,
    /// Each PodDisruptionBudget: name, `status.expectedPods`, and the pods its selector picks.
    pub budgets: Vec<(String, i32, Vec<String>)>,
}

/// Where a release runs. Implementations: [`process`](crate::process) here, k3s and an
/// existing cluster in [`cluster`](crate::cluster).
#[allow(async_fn_in_trait)]
pub trait Backend: 'static {
    fn name(&self) -> &'static str;
    /// Gets ready to deploy `version` (e.g. builds its Python environment), so the runner can
    /// do that up front and time it apart from the deployments. Default: nothing to do.
    async fn prepare(&self, version: &ChromaVersion) -> Result<(), BackendError> {
        let _ = version;
        Ok(())
    }
    /// Brings the release up and waits until its API answers.
    async fn deploy(&self, release: &Release) -> Result<Deployed, BackendError>;
    /// Pod-restart semantics: the server process/pod goes away and comes back with the same
    /// configuration and the same volume (if it has one).
    async fn restart(&self, deployed: &mut Deployed) -> Result<(), BackendError>;
    /// Container-restart semantics: the server's container exits and the kubelet starts it
    /// again in the same pod — emptyDirs and claims kept, a fresh container filesystem.
    /// [`BackendError::Unavailable`] where the backend cannot restart one container alone.
    async fn restart_container(&self, deployed: &mut Deployed) -> Result<(), BackendError>;
    /// The node kills the server's container with SIGKILL (what an OOM kill, a node's
    /// eviction or `crictl stop --timeout 0` does: no chance to flush anything), then
    /// restarts it in the same pod as the kubelet does under `restartPolicy: Always` —
    /// emptyDirs and claims kept — and waits until it is ready again. Returns how the
    /// killed container ended, as the pod's `lastState.terminated` would say it.
    /// [`BackendError::Unsupported`] where [`Backend::kills_containers`] says no.
    async fn kill_container(&self, deployed: &mut Deployed) -> Result<String, BackendError> {
        let _ = deployed;
        Err(BackendError::Unsupported {
            backend: self.name(),
            reason: self.kills_containers().err().unwrap_or_default(),
        })
    }
    /// Which pods the release namespace's Services and PodDisruptionBudgets count, as their
    /// controllers report it (EndpointSlices, a budget's `status.expectedPods`).
    async fn selections(&self, deployed: &Deployed) -> Result<Selections, BackendError> {
        let _ = deployed;
        Err(BackendError::Unsupported {
            backend: self.name(),
            reason: self.reports_selections().err().unwrap_or_default(),
        })
    }
    /// `Ok(())` when [`Backend::selections`] answers from real controllers; `Err(why not)`.
    fn reports_selections(&self) -> Result<(), String> {
        Err("this backend runs no EndpointSlice or disruption controller: what a Service or a PodDisruptionBudget counts is only known to a real control plane".into())
    }
    /// `Ok(())` when [`Backend::kill_container`] works here; `Err(why not)` otherwise.
    fn kills_containers(&self) -> Result<(), String> {
        Err("killing one container with SIGKILL from the node is not implemented on this backend (it needs the node's container runtime, e.g. `crictl`)".into())
    }
    /// `Ok(())` when a claim here is a filesystem of the size it requests, so that a write
    /// past it fails (a block-storage provisioner); `Err(why not)` otherwise.
    fn limits_volume_size(&self) -> Result<(), String> {
        Err("whether a claim is limited to its requested size depends on the cluster's provisioner, which this backend does not know".into())
    }
    /// `Ok(())` when the node enforces the server container's `resources.limits.memory` (its
    /// processes are OOM-killed past it, as the kubelet has the runtime do); `Err(why not)`.
    fn limits_memory(&self) -> Result<(), String> {
        Err(
            "whether the node enforces a container's memory limit is not known to this backend"
                .into(),
        )
    }
    /// Waits up to `within` for the server's container to end on its own (an OOM kill, a
    /// crash). If it did: how it ended, as the pod's `lastState.terminated` says it, once the
    /// kubelet has restarted it in the same pod and it is ready again. `Ok(None)`: it is still
    /// running. [`BackendError::Unsupported`] where [`Backend::limits_memory`] says no.
    async fn await_container_end(
        &self,
        deployed: &mut Deployed,
        within: Duration,
    ) -> Result<Option<Terminated>, BackendError> {
        let _ = (deployed, within);
        Err(BackendError::Unsupported {
            backend: self.name(),
            reason: self.limits_memory().err().unwrap_or_default(),
        })
    }
    /// `kubectl delete statefulset --cascade=orphan`: the StatefulSet object goes, its pod and
    /// claims stay, so the next [`Backend::upgrade`] creates the StatefulSet anew (adopting
    /// them) instead of updating it — the migration step for a chart whose StatefulSet differs
    /// in fields Kubernetes will not update.
    async fn orphan_statefulset(&self, deployed: &mut Deployed) -> Result<(), BackendError>;
    /// `helm uninstall`, then `helm install` of `next` as a fresh release in the same
    /// namespace: the StatefulSet's claims go with it (retention policy `Delete`), claims the
    /// chart keeps (`helm.sh/resource-policy: keep`, e.g. the backup claim) stay, and
    /// `next`'s post-install hooks run — a failing one fails the install with its reason.
    async fn reinstall(&self, deployed: &mut Deployed, next: &Release) -> Result<(), BackendError>;
    /// In-place upgrade to `next` on the same data (`helm upgrade` semantics).
    async fn upgrade(&self, deployed: &mut Deployed, next: &Release) -> Result<(), BackendError>;
    /// The server's recent log lines, for failure reports.
    async fn logs(&self, deployed: &Deployed, tail: usize) -> String;
    /// Removes everything the deployment created. Must be safe to call after a failure.
    async fn teardown(&self, deployed: Deployed) -> Result<(), BackendError>;
    /// Where a kept deployment lives beyond its URL (a temp dir, a namespace), for `--keep`.
    fn whereabouts(&self, deployed: &Deployed) -> Option<String> {
        let _ = deployed;
        None
    }
    /// Whether kept deployments (`--keep`) stay up after the harness exits (a cluster's
    /// namespaces do); when not, the harness waits for Ctrl-C before tearing them down.
    fn kept_outlive_the_harness(&self) -> bool {
        false
    }
    /// Runs the chart's `helm test` hook against the deployment and says how it ended.
    /// Every backend answers: a backend that cannot run the hook faithfully here returns
    /// [`HookRun::Unsupported`] with the reason, which the `chart-test` check reports as SKIP.
    async fn chart_test(&self, deployed: &Deployed) -> Result<HookRun, BackendError>;
    /// Runs `job` (rendered for this deployment's release) to completion in the release's
    /// namespace, the way the Job controller runs its pods: the container's command, args and
    /// env unchanged, its volumes (a claim is the release's claim of that name, kept between
    /// Jobs), its retry budget and deadline. A backend without a faithful stand-in for the
    /// Job's image answers [`HookRun::Unsupported`].
    async fn run_job(&self, deployed: &Deployed, job: &Job) -> Result<HookRun, BackendError>;
    /// Ends a [`Backend::run_job`] run whose future was dropped part way, as a node losing
    /// the pod would: its containers are killed at once (no grace to finish), and the Job
    /// makes no further attempt of its own. Returns once nothing of that run is running.
    async fn kill_job(&self, deployed: &Deployed, job: &Job) -> Result<(), BackendError>;
    /// `Ok` when a controller turns NetworkPolicies into packet filters on this backend's
    /// cluster, so a pod the policy refuses is really refused; else why not.
    fn enforces_network_policy(&self) -> Result<(), String> {
        Err(format!(
            "the {} backend runs no NetworkPolicy controller: a policy there filters nothing",
            self.name()
        ))
    }
    /// Runs `script` (`sh -c`) once in a pod of the release's namespace that carries exactly
    /// `labels`, as a Job named `name` with the image and security context of the chart's
    /// `helm test` pod (sh and curl); its env `API` holds the URL at which pods of the
    /// namespace reach the server's Service.
    async fn run_client(
        &self,
        _deployed: &Deployed,
        _name: &str,
        _labels: &BTreeMap<String, String>,
        _script: &str,
    ) -> Result<HookRun, BackendError> {
        Err(BackendError::Unsupported {
            backend: self.name(),
            reason: "it places no client pod beside the release".into(),
        })
    }
    /// `kubectl create job --from=cronjob/<name>`: the CronJob's job, run once now.
    async fn run_cronjob_once(
        &self,
        deployed: &Deployed,
        cronjob: &CronJob,
    ) -> Result<HookRun, BackendError> {
        let name = jobs::manual_job_name(cronjob.metadata.name.as_deref().unwrap_or("cronjob"));
        let job = jobs::job_from_cronjob(cronjob, &name).map_err(BackendError::unrunnable)?;
        self.run_job(deployed, &job).await
    }
    /// Replaces a Secret's data the way a renewal does (cert-manager, or the user), leaving the
    /// pod running: the kubelet then updates the files of volumes that mount it.
    /// [`BackendError::Unsupported`] where the backend cannot.
    async fn update_secret(
        &self,
        deployed: &Deployed,
        name: &str,
        data: &BTreeMap<String, String>,
    ) -> Result<(), BackendError> {
        let _ = (deployed, name, data);
        Err(BackendError::Unsupported {
            backend: self.name(),
            reason: self.updates_secrets().err().unwrap_or_default(),
        })
    }
    /// `Ok(())` when [`Backend::update_secret`] works here; `Err(why not)` otherwise. A
    /// backend that implements one implements both.
    fn updates_secrets(&self) -> Result<(), String> {
        Err("updating a Secret in place is not implemented on this backend".into())
    }
    /// Longest wait for an updated Secret to reach the pod's volumes.
    fn secret_sync_time(&self) -> Duration {
        // The kubelet's sync period plus its Secret cache TTL, with margin.
        Duration::from_secs(150)
    }
    /// `Ok(())` when the chart's `lookup` calls see the live cluster (so a generated Secret
    /// kept across an upgrade is the chart's own doing); `Err(why not)` when this backend
    /// renders without an API server and can only emulate it.
    fn runs_lookup(&self) -> Result<(), String>;
    /// The address of the pod of the release's Deployment `deployment` (the chart's collector),
    /// where a scraper reaches its container ports. Default: this backend runs no Deployment.
    fn pod_ip(&self, _deployed: &Deployed, deployment: &str) -> Result<std::net::IpAddr, String> {
        Err(format!("this backend does not run Deployment {deployment}"))
    }

    /// `Ok` when this host reaches the server's pod at its own address (not only through its
    /// Service), so a port the pod does not expose can be tried from outside it.
    fn reaches_server_pod(&self) -> Result<(), String> {
        Err(format!(
            "the {} backend reaches the server only through its Service",
            self.name()
        ))
    }
    /// The server pod's address as it is now (a new pod may have a new one), where
    /// [`Backend::reaches_server_pod`] says this host reaches it.
    async fn server_pod_ip(&self, deployed: &Deployed) -> Result<std::net::IpAddr, BackendError> {
        let _ = deployed;
        Err(BackendError::Unsupported {
            backend: self.name(),
            reason: "it gives no pod address".into(),
        })
    }

    /// The namespace a release will be installed into, when known before install (clusters);
    /// the render then matches what `helm install -n` renders there.
    fn namespace_for(&self, release_id: &str) -> Option<String> {
        let _ = release_id;
        None
    }
    /// The address the servers reach the harness at (where its OTLP receiver listens): the
    /// harness's own loopback by default.
    fn harness_address(&self) -> std::net::IpAddr {
        std::net::Ipv4Addr::LOCALHOST.into()
    }
    /// `Ok(())` when the server can reach a listener on the harness's 127.0.0.1 (the OTLP
    /// receiver of the `telemetry` check); `Err(why not)` otherwise. Default: a cluster's pods
    /// have their own loopback.
    fn reaches_harness_loopback(&self, _deployed: &Deployed) -> Result<(), String> {
        Err("the server runs in a pod whose 127.0.0.1 is not the harness's, so the harness's OTLP receiver is out of its reach".into())
    }
}
