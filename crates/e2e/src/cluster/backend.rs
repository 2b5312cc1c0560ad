//! [`ClusterBackend`]: the [`Backend`] contract over a Kubernetes API and the real helm.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use std::fmt::Write as _;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    Event, Namespace, Node, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount,
};
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client};
use render::{Helm, Rendered};

use super::cleanup::{Cleanup, RUN_LABEL};
use super::forward::{self, Forward};
use super::helm::{self as helm_cli, HelmTarget, Install};
use super::hooks::{self, TestHook};
use super::k3s::{self, K3sCluster};
use super::readiness::{PullWatch, pull_event};
use super::readiness::{Readiness, replaced_and_ready, statefulset_readiness};
use super::{ClusterKind, ClusterOptions, diagnostics, kubeconfig, naming};
use crate::backend::{Backend, BackendError, Deployed, HookRun, Release, Terminated};

/// Log lines per container in failure reports: enough for a Python traceback or a Rust panic
/// with its context, short enough to read.
const REPORT_TAIL: usize = 80;

/// Log lines per `helm test` hook container: the chart's test prints a handful.
const HOOK_LOG_TAIL: usize = 200;

/// How often pods are looked at for image pull failures while a deploy waits.
const PULL_POLL: Duration = Duration::from_secs(5);

/// One cluster for the whole run; releases get their own namespaces and may deploy in
/// parallel (every method takes `&self`).
pub struct ClusterBackend {
    kind: ClusterKind,
    client: Client,
    helm: Helm,
    target: HelmTarget,
    timeout: Duration,
    keep: bool,
    suffix: String,
    describe: String,
    slots: Mutex<HashMap<String, Slot>>,
    k3s: Option<K3sCluster>,
    cleanup: Cleanup,
    /// On the local cluster: the pods' gateway, an address of this host every pod reaches.
    pod_gateway: Option<std::net::IpAddr>,
}

/// What the backend remembers about a deployed release.
struct Slot {
    namespace: String,
    release: String,
    statefulset: String,
    service: String,
    /// The `helm test` hooks of what is installed now (updated on upgrade).
    test_hooks: Vec<TestHook>,
    /// The server's container in the pod (`Rendered::chroma_container`).
    container: String,
    /// What is installed now: a new forward's URL and TLS endpoint are made from it.
    rendered: render::Rendered,
    forward: Forward,
    /// The server pod's uid and the container restarts already reported (by a kill or an
    /// end seen before), so the next end is told from them.
    ends_seen: (String, i32),
    /// The address of each Deployment's pod (the chart's collector), reachable from this host
    /// on the local cluster, whose pod network is routed here.
    pod_ips: BTreeMap<String, std::net::IpAddr>,
}

/// The URL (and, with TLS, the endpoint clients resolve and trust) of a forward on `port`.
fn reach(
    rendered: &render::Rendered,
    namespace: &str,
    secrets: &BTreeMap<String, BTreeMap<String, String>>,
    port: u16,
) -> Result<(String, Option<crate::tls::TlsEndpoint>), BackendError> {
    // Through the forward the client still asks for the Service's name (resolved to the
    // forward), so the certificate is checked against the name cluster clients use.
    let tls = crate::tls::endpoint(rendered, namespace, secrets, ([127, 0, 0, 1], port).into())
        .map_err(BackendError::unrunnable)?;
    Ok(match tls {
        Some((url, t)) => (url, Some(t)),
        None => (format!("http://127.0.0.1:{port}"), None),
    })
}

/// Claims the chart's pods mount but the chart does not create (`existingClaim` values): the
/// user's own, which exist before install.
pub fn users_claims(rendered: &render::Rendered) -> Vec<String> {
    let made: Vec<String> = rendered
        .claims()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    let templates: Vec<String> = rendered
        .statefulsets()
        .flat_map(|s| {
            s.spec
                .iter()
                .flat_map(|s| s.volume_claim_templates.iter().flatten())
        })
        .filter_map(|t| t.metadata.name.clone())
        .collect();
    let pod_specs = rendered
        .statefulsets()
        .filter_map(|s| s.spec.as_ref()?.template.spec.clone())
        .chain(rendered.cronjobs().filter_map(|c| {
            c.spec
                .as_ref()?
                .job_template
                .spec
                .as_ref()?
                .template
                .spec
                .clone()
        }))
        .chain(
            rendered
                .jobs()
                .filter_map(|j| j.spec.as_ref()?.template.spec.clone()),
        );
    let mut out: Vec<String> = pod_specs
        .flat_map(|p| p.volumes.unwrap_or_default())
        .filter_map(|v| v.persistent_volume_claim.map(|c| c.claim_name))
        .filter(|n| !made.contains(n) && !templates.iter().any(|t| n.starts_with(&format!("{t}-"))))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A user's claim: 1 GiB, ReadWriteOnce, the cluster's default StorageClass.
fn users_claim(name: &str) -> PersistentVolumeClaim {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "chromadb-chart-e2e"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .expect("the claim is valid")
}

/// The PodSecurity admission's label for the level a namespace enforces.
pub const POD_SECURITY_ENFORCE: &str = "pod-security.kubernetes.io/enforce";

impl ClusterBackend {
    pub(super) async fn start(
        kind: ClusterKind,
        opts: ClusterOptions,
    ) -> Result<Self, BackendError> {
        let helm = Helm::new(&opts.helm).map_err(|e| BackendError::step("finding helm", e))?;
        // The suffix exists before anything is created, so everything created carries it.
        let suffix = naming::run_suffix();
        let cleanup = opts.cleanup.clone();
        cleanup.begin(&suffix, opts.keep);
        let (client, target, describe, k3s) = match kind {
            ClusterKind::K3s => {
                let image = opts
                    .k3s_image
                    .clone()
                    .unwrap_or_else(|| k3s::K3S_IMAGE.to_string());
                cleanup.expect_k3s();
                let cluster = match k3s::start(&image, &opts.k3s_preload, opts.timeout, &suffix)
                    .await
                {
                    Ok(c) => c,
                    Err(e) => {
                        // A container may exist even though start failed (timed out waiting).
                        if let Err(c) = cleanup.run().await {
                            tracing::warn!(error = %c, "could not remove the k3s container of a failed start");
                        }
                        return Err(BackendError::unreachable("k3s", e));
                    }
                };
                let client = kubeconfig::client_from_text(cluster.kubeconfig())
                    .await
                    .map_err(|e| BackendError::unreachable("k3s", e))?;
                let target = HelmTarget {
                    kubeconfig: Some(cluster.kubeconfig_path().to_path_buf()),
                    context: None,
                };
                let describe = format!(
                    "k3s {image} (container {})",
                    cluster.container_id().unwrap_or("?")
                );
                (client, target, describe, Some(cluster))
            }
            ClusterKind::Kubeconfig => {
                let c = kubeconfig::connect_existing().await?;
                (c.client, c.target, c.describe, None)
            }
            ClusterKind::Local => {
                let path = opts
                    .local_kubeconfig
                    .clone()
                    .ok_or_else(|| BackendError::Invalid {
                        reason: "the local cluster backend needs the cluster's kubeconfig".into(),
                    })?;
                let c = kubeconfig::connect_file(&path).await?;
                (
                    c.client,
                    c.target,
                    format!("local cluster: {}", c.describe),
                    None,
                )
            }
        };
        let backend = ClusterBackend {
            kind,
            client,
            helm,
            target,
            timeout: opts.timeout,
            keep: opts.keep,
            suffix,
            describe,
            slots: Mutex::new(HashMap::new()),
            k3s,
            cleanup,
            pod_gateway: None,
        };
        backend.cleanup.connected(backend.client.clone());
        if let Err(e) = backend.wait_for_node().await {
            // The container would go away on drop anyway; stop it properly so --keep is honoured.
            let _ = backend.shutdown().await;
            return Err(e);
        }
        let mut backend = backend;
        if kind == ClusterKind::Local {
            backend.pod_gateway = backend.local_pod_gateway().await;
        }
        tracing::info!(cluster = %backend.describe, run = %backend.suffix, "cluster ready");
        Ok(backend)
    }

    /// What this run talks to, for the first lines of output and the report.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// The namespace a release id gets in this run.
    pub fn namespace_of(&self, release_id: &str) -> String {
        naming::namespace_for(release_id, &self.suffix)
    }

    /// Ends the run: namespaces still deployed (or still being deployed) are deleted and the
    /// k3s container removed, unless `keep`.
    pub async fn shutdown(mut self) -> Result<(), BackendError> {
        let leftovers: Vec<Slot> = self.lock_slots().drain().map(|(_, s)| s).collect();
        drop(leftovers);
        let stopped = match self.k3s.take() {
            Some(cluster) => cluster.stop(self.keep).await,
            None => Ok(()),
        };
        let cleaned = self.cleanup.run().await;
        stopped.and(cleaned)
    }

    /// The handle that removes what this run created; [`ClusterOptions::cleanup`] hands out
    /// the same one before the backend exists.
    pub fn cleanup(&self) -> Cleanup {
        self.cleanup.clone()
    }

    fn lock_slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The podIP of a running pod of each Deployment in `namespace` (helm has waited for them).
    async fn deployment_pod_ips(
        &self,
        namespace: &str,
    ) -> Result<BTreeMap<String, std::net::IpAddr>, BackendError> {
        use k8s_openapi::api::apps::v1::Deployment;
        let lp = ListParams::default();
        let deployments = Api::<Deployment>::namespaced(self.client.clone(), namespace)
            .list(&lp)
            .await
            .map_err(|e| BackendError::Kube {
                what: format!("listing Deployments in {namespace}"),
                source: e,
            })?;
        let pods = Api::<Pod>::namespaced(self.client.clone(), namespace)
            .list(&lp)
            .await
            .map_err(|e| BackendError::Kube {
                what: format!("listing pods in {namespace}"),
                source: e,
            })?;
        let mut out = BTreeMap::new();
        for d in &deployments.items {
            let sel = d
                .spec
                .as_ref()
                .and_then(|s| s.selector.match_labels.clone())
                .unwrap_or_default();
            let ip = pods
                .items
                .iter()
                .filter(|p| selects(&sel, p.metadata.labels.as_ref()))
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .find_map(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.pod_ip.as_deref())
                        .and_then(|ip| ip.parse().ok())
                });
            if let (Some(name), Some(ip)) = (d.metadata.name.clone(), ip) {
                out.insert(name, ip);
            }
        }
        Ok(out)
    }

    /// Waits until `back` holds for the server's pod (its container restarted and ready
    /// again), then reads the pod and records the restarts accounted for.
    async fn container_back(
        &self,
        id: &str,
        pods: &Api<Pod>,
        pod_name: &str,
        container: &str,
        back: impl Fn(Option<&Pod>) -> bool,
        when: &str,
    ) -> Result<Pod, BackendError> {
        let waited =
            tokio::time::timeout(self.timeout, await_condition(pods.clone(), pod_name, back)).await;
        if !matches!(waited, Ok(Ok(_))) {
            let namespace = pods.namespace().unwrap_or_default().to_string();
            return Err(BackendError::NotReady {
                waited: self.timeout,
                detail: format!(
                    "container {container} of {pod_name} did not come back ready {when}\n{}",
                    self.report(&namespace).await
                ),
            });
        }
        let after = pods
            .get(pod_name)
            .await
            .map_err(|e| failed(format!("reading pod {pod_name}"), e))?;
        self.note_ends(id, &after, container);
        Ok(after)
    }

    /// Records the restarts of the server container that have been accounted for.
    fn note_ends(&self, id: &str, pod: &Pod, container: &str) {
        let count = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == container))
            .map_or(0, |c| c.restart_count);
        if let Some(slot) = self.lock_slots().get_mut(id) {
            slot.ends_seen = (pod.metadata.uid.clone().unwrap_or_default(), count);
        }
    }

    fn slot_names(&self, id: &str) -> Result<(String, String, String), BackendError> {
        self.lock_slots()
            .get(id)
            .map(|s| {
                (
                    s.namespace.clone(),
                    s.release.clone(),
                    s.statefulset.clone(),
                )
            })
            .ok_or_else(|| not_deployed(id))
    }

    /// The local cluster's pods reach this host at their gateway: the first address of the
    /// node's `podCIDR` (docs/local-cluster.md).
    async fn local_pod_gateway(&self) -> Option<std::net::IpAddr> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let list = nodes.list(&ListParams::default()).await.ok()?;
        let cidr = list
            .items
            .iter()
            .find_map(|n| n.spec.as_ref()?.pod_cidr.clone())?;
        let net = crate::node::net::Cidr::parse(&cidr).ok()?;
        Some(net.gateway().into())
    }

    async fn wait_for_node(&self) -> Result<(), BackendError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let started = tokio::time::Instant::now();
        let mut last = Ok(0);
        while started.elapsed() < self.timeout {
            match nodes.list(&ListParams::default()).await {
                Ok(list) if list.items.iter().any(node_ready) => return Ok(()),
                Ok(list) => last = Ok(list.items.len()),
                Err(e) => last = Err(e),
            }
            // Nodes have no single name to watch before one registers; poll gently.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(match last {
            Ok(0) => BackendError::NotReady {
                waited: self.timeout,
                detail: format!("no Ready node in {}: no nodes yet", self.describe),
            },
            Ok(n) => BackendError::NotReady {
                waited: self.timeout,
                detail: format!(
                    "no Ready node in {}: {n} node(s), none Ready",
                    self.describe
                ),
            },
            Err(e) => failed(
                format!(
                    "no Ready node in {} within {:?}; listing nodes",
                    self.describe, self.timeout
                ),
                e,
            ),
        })
    }

    async fn report(&self, namespace: &str) -> String {
        diagnostics::collect(&self.client, namespace, REPORT_TAIL).await
    }

    /// Deletes a namespace unless `--keep`; failures are logged, never raised, because this
    /// runs on error paths whose own error matters more. A namespace whose deletion could not
    /// be requested stays registered, so the final cleanup tries again.
    async fn discard_namespace(&self, namespace: &str) {
        if self.keep {
            tracing::warn!(%namespace, "--keep: leaving the namespace in place");
            self.cleanup.forget_namespace(namespace);
            return;
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api.delete(namespace, &DeleteParams::background()).await {
            Ok(_) => tracing::debug!(%namespace, "namespace deletion requested"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                tracing::warn!(%namespace, error = %e, "could not delete namespace");
                return;
            }
        }
        self.cleanup.forget_namespace(namespace);
    }

    async fn create_namespace(
        &self,
        namespace: &str,
        release: &Release,
    ) -> Result<(), BackendError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.to_string()),
                labels: Some(BTreeMap::from([
                    (RUN_LABEL.to_string(), self.suffix.clone()),
                    (
                        "app.kubernetes.io/managed-by".to_string(),
                        "chromadb-chart-e2e".to_string(),
                    ),
                    // Every pod of the chart is admitted by the real PodSecurity admission at
                    // the strictest level the chart promises.
                    (POD_SECURITY_ENFORCE.to_string(), "restricted".to_string()),
                ])),
                annotations: Some(BTreeMap::from([(
                    "chroma-e2e/release".to_string(),
                    release.id.clone(),
                )])),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        // Registered first: a Ctrl-C between the request and its answer must still find it.
        self.cleanup.register_namespace(namespace);
        api.create(&PostParams::default(), &ns)
            .await
            .map_err(|e| failed(format!("creating namespace {namespace}"), e))?;
        // Pods are refused until the namespace's default ServiceAccount exists (helm test
        // pods use it); the controller creates it moments after the namespace.
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        self.bounded(
            await_condition(sas, "default", |o: Option<&ServiceAccount>| o.is_some()),
            || format!("namespace {namespace} never got its default ServiceAccount"),
        )
        .await?;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        for (name, data) in &release.external_secrets {
            secrets
                .create(&PostParams::default(), &external_secret(name, data))
                .await
                .map_err(|e| {
                    failed(
                        format!("creating the pre-existing Secret {name} in {namespace}"),
                        e,
                    )
                })?;
        }
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), namespace);
        for name in users_claims(&release.rendered) {
            claims
                .create(&PostParams::default(), &users_claim(&name))
                .await
                .map_err(|e| {
                    failed(
                        format!("creating the user's own claim {name} in {namespace}"),
                        e,
                    )
                })?;
        }
        Ok(())
    }

    async fn helm(
        &self,
        req: &render::RenderRequest,
        namespace: &str,
        mode: Install,
    ) -> Result<(), BackendError> {
        let dir = tempfile::Builder::new()
            .prefix("chroma-e2e-values-")
            .tempdir()
            .map_err(|source| BackendError::Io {
                context: "creating a values directory for helm".into(),
                source,
            })?;
        let args =
            helm_cli::upgrade_args(req, namespace, mode, self.timeout, &self.target, dir.path())?;
        let verb = match mode {
            Install::Fresh => "helm upgrade --install",
            Install::Upgrade => "helm upgrade",
        };
        match helm_cli::run(&self.helm, &args).await {
            Ok(_) => Ok(()),
            Err(e) => Err(BackendError::diagnosed(
                format!("{verb} {} into {namespace}", req.release),
                e,
                self.report(namespace).await,
            )),
        }
    }

    /// Waits for a future under the run's timeout; `what` describes the timeout.
    async fn bounded<T>(
        &self,
        fut: impl Future<Output = Result<T, kube::runtime::wait::Error>>,
        what: impl FnOnce() -> String,
    ) -> Result<T, BackendError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(BackendError::step(what(), e)),
            Err(_) => Err(BackendError::NotReady {
                waited: self.timeout,
                detail: what(),
            }),
        }
    }

    async fn wait_statefulset(&self, namespace: &str, name: &str) -> Result<(), BackendError> {
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), namespace);
        let ready = |o: Option<&StatefulSet>| statefulset_readiness(o).is_ready();
        match tokio::time::timeout(self.timeout, await_condition(api.clone(), name, ready)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(BackendError::diagnosed(
                format!("watching StatefulSet {name} in {namespace}"),
                e,
                self.report(namespace).await,
            )),
            Err(_) => {
                let why = match api.get_opt(name).await {
                    Ok(o) => match statefulset_readiness(o.as_ref()) {
                        Readiness::Waiting(why) => why,
                        Readiness::Ready => "became ready just after the deadline".into(),
                    },
                    Err(e) => format!("could not read it: {}", crate::text::chain(&e)),
                };
                Err(BackendError::NotReady {
                    waited: self.timeout,
                    detail: format!(
                        "StatefulSet {name} in {namespace}: {why}\n{}",
                        self.report(namespace).await
                    ),
                })
            }
        }
    }

    /// Runs `work` (helm's own `--wait` included) unless a pod of the namespace cannot pull
    /// its image for [`super::readiness::PULL_GRACE`]: then the deploy fails in about half a
    /// minute, quoting the kubelet, instead of waiting out the whole timeout. Dropping `work`
    /// kills the helm child (`kill_on_drop`).
    async fn unless_images_fail<T>(
        &self,
        namespace: &str,
        work: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        tokio::select! {
            done = work => done,
            why = self.image_pull_failure(namespace) => Err(BackendError::Failed {
                what: format!("pulling images in {namespace}"),
                detail: format!("{why}\n{}", self.report(namespace).await),
            }),
        }
    }

    /// Resolves only when a pull failure persisted; list errors are retried (the deploy's own
    /// wait reports a dead API server).
    async fn image_pull_failure(&self, namespace: &str) -> String {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let events: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let mut watch = PullWatch::default();
        loop {
            if let Ok(list) = pods.list(&ListParams::default()).await
                && let Some(why) = watch.observe(std::time::Instant::now(), &list.items)
            {
                let event = match events.list(&ListParams::default()).await {
                    Ok(l) => pull_event(&l.items)
                        .map(|m| format!(" (event: {m})"))
                        .unwrap_or_default(),
                    Err(_) => String::new(),
                };
                return format!("{why}{event}");
            }
            tokio::time::sleep(PULL_POLL).await;
        }
    }

    async fn deploy_into(
        &self,
        namespace: &str,
        release: &Release,
    ) -> Result<Deployed, BackendError> {
        self.create_namespace(namespace, release).await?;
        self.install_into(namespace, release).await
    }

    /// `helm upgrade --install` of `release` into an existing namespace, then the port-forward.
    async fn install_into(
        &self,
        namespace: &str,
        release: &Release,
    ) -> Result<Deployed, BackendError> {
        let (statefulset, service) = release_objects(&release.rendered)?;
        self.unless_images_fail(namespace, async {
            self.helm(&release.request, namespace, Install::Fresh)
                .await?;
            self.wait_statefulset(namespace, &statefulset).await
        })
        .await?;
        let secrets = self.pod_secrets(namespace, &statefulset).await?;
        let forward = self.forward(namespace, &service).await?;
        let port = forward.port;
        let pod_ips = self.deployment_pod_ips(namespace).await?;
        self.lock_slots().insert(
            release.id.clone(),
            Slot {
                namespace: namespace.to_string(),
                release: release.request.release.clone(),
                statefulset,
                service: service.clone(),
                test_hooks: hooks::test_hooks(&release.rendered),
                container: release
                    .rendered
                    .chroma_container()
                    .map(|c| c.name.clone())
                    .unwrap_or_default(),
                rendered: release.rendered.clone(),
                forward,
                ends_seen: (String::new(), 0),
                pod_ips,
            },
        );
        let (base_url, tls) = reach(&release.rendered, namespace, &secrets, port)?;
        Ok(Deployed {
            id: release.id.clone(),
            base_url,
            tls,
            adjustments: vec![format!(
                "reached through a kube-rs port-forward from 127.0.0.1:{port} to Service {service} in namespace {namespace} on {}",
                self.describe
            )],
            secrets,
        })
    }

    async fn forward(&self, namespace: &str, service: &str) -> Result<Forward, BackendError> {
        let services: Api<Service> = Api::namespaced(self.client.clone(), namespace);
        let svc = services
            .get(service)
            .await
            .map_err(|e| failed(format!("reading Service {service} in {namespace}"), e))?;
        forward::selector_of(&svc).map_err(BackendError::unrunnable)?;
        let started = if self.kind == ClusterKind::Local {
            forward::start_cluster_ip(svc).await
        } else {
            forward::start(Api::namespaced(self.client.clone(), namespace), svc).await
        };
        started.map_err(|e| {
            BackendError::step(format!("forwarding to Service {service} in {namespace}"), e)
        })
    }

    /// Every Secret the server's pod template refers to, as installed (helm generates auth
    /// credentials at install, so the rendered ones are not the live ones).
    async fn pod_secrets(
        &self,
        namespace: &str,
        statefulset: &str,
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, BackendError> {
        let sts_api: Api<StatefulSet> = Api::namespaced(self.client.clone(), namespace);
        let sts = sts_api
            .get(statefulset)
            .await
            .map_err(|e| failed(format!("reading StatefulSet {statefulset}"), e))?;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let mut out = BTreeMap::new();
        for name in secret_names(&sts) {
            // An optional reference may name a Secret that does not exist; that is the pod's
            // view too.
            if let Some(s) = secrets
                .get_opt(&name)
                .await
                .map_err(|e| failed(format!("reading Secret {name}"), e))?
            {
                out.insert(name, render::objects::secret_data(&s));
            }
        }
        Ok(out)
    }

    async fn claim_uids(
        &self,
        namespace: &str,
        pod: &Pod,
    ) -> Result<BTreeMap<String, String>, BackendError> {
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), namespace);
        let mut out = BTreeMap::new();
        for claim in claims_of(pod) {
            let pvc = pvcs
                .get(&claim)
                .await
                .map_err(|e| failed(format!("reading PVC {claim} in {namespace}"), e))?;
            out.insert(claim, pvc.metadata.uid.unwrap_or_default());
        }
        Ok(out)
    }
}

impl ClusterBackend {
    /// For each test hook: why it did not succeed (none when it did), and every hook pod's
    /// container log, read by the Job's `job-name` label.
    async fn hook_results(
        &self,
        namespace: &str,
        test_hooks: &[TestHook],
    ) -> (Vec<String>, String) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), namespace);
        let mut reasons = Vec::new();
        let mut log = String::new();
        for hook in test_hooks {
            let (job, found) = match hook {
                TestHook::Job(name) => {
                    let job = match jobs.get_opt(name).await {
                        Ok(j) => j,
                        Err(e) => {
                            let _ = writeln!(
                                log,
                                "(could not read Job {name}: {})",
                                crate::text::chain(&e)
                            );
                            None
                        }
                    };
                    let listed = pods
                        .list(&ListParams::default().labels(&hooks::job_pod_selector(name)))
                        .await;
                    let found = listed.map(|l| l.items).unwrap_or_else(|e| {
                        let _ = writeln!(
                            log,
                            "(could not list the pods of Job {name}: {})",
                            crate::text::chain(&e)
                        );
                        Vec::new()
                    });
                    (job, found)
                }
                TestHook::Pod(name) => (
                    None,
                    pods.get_opt(name)
                        .await
                        .ok()
                        .flatten()
                        .into_iter()
                        .collect(),
                ),
            };
            let picked: Vec<&Pod> = match hook {
                TestHook::Job(name) => hooks::pods_of_job(
                    name,
                    job.as_ref().and_then(|j| j.metadata.uid.as_deref()),
                    &found,
                ),
                TestHook::Pod(_) => found.iter().collect(),
            };
            for pod in &picked {
                for l in diagnostics::pod_logs(&pods, pod, HOOK_LOG_TAIL).await {
                    let _ = writeln!(
                        log,
                        "--- {} log {}/{} ---\n{}",
                        hook.name(),
                        l.pod,
                        l.container,
                        l.text.trim_end()
                    );
                }
            }
            if !hooks::succeeded(job.as_ref(), &picked) {
                reasons.push(hooks::failure_reason(hook, job.as_ref(), &picked));
            }
        }
        (reasons, log)
    }
}

impl Backend for ClusterBackend {
    fn whereabouts(&self, deployed: &Deployed) -> Option<String> {
        Some(format!(
            "namespace {} (kubectl --namespace {0} get all)",
            self.namespace_of(&deployed.id)
        ))
    }

    fn name(&self) -> &'static str {
        self.kind.name()
    }

    async fn deploy(&self, release: &Release) -> Result<Deployed, BackendError> {
        let namespace = self.namespace_of(&release.id);
        tracing::info!(release = %release.id, %namespace, "deploying");
        match self.deploy_into(&namespace, release).await {
            Ok(d) => Ok(d),
            Err(e) => {
                // No Deployed means no teardown call: clean up here.
                self.discard_namespace(&namespace).await;
                Err(e)
            }
        }
    }

    fn namespace_for(&self, release_id: &str) -> Option<String> {
        Some(self.namespace_of(release_id))
    }

    fn harness_address(&self) -> std::net::IpAddr {
        self.pod_gateway
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into())
    }

    fn reaches_harness_loopback(&self, _deployed: &Deployed) -> Result<(), String> {
        match self.pod_gateway {
            Some(_) => Ok(()),
            None => Err("the server runs in a pod whose 127.0.0.1 is not the harness's, so the harness's OTLP receiver is out of its reach".into()),
        }
    }

    async fn kill_container(&self, deployed: &mut Deployed) -> Result<String, BackendError> {
        self.kills_containers()
            .map_err(|reason| BackendError::Unsupported {
                backend: self.name(),
                reason,
            })?;
        let (namespace, _, statefulset) = self.slot_names(&deployed.id)?;
        let container = self
            .lock_slots()
            .get(&deployed.id)
            .map(|s| s.container.clone())
            .ok_or_else(|| not_deployed(&deployed.id))?;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let pod_name = format!("{statefulset}-0");
        let before = pods
            .get(&pod_name)
            .await
            .map_err(|e| failed(format!("reading pod {pod_name}"), e))?;
        let restarts = |p: &Pod| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.name == container))
                .map(|c| c.restart_count)
        };
        let before_count = restarts(&before).unwrap_or(0);
        let node = before
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        // Through the API server's node proxy, as `kubectl get --raw /api/v1/nodes/<n>/proxy/…`.
        let path = format!(
            "/api/v1/nodes/{node}/proxy/process-node/kill/{namespace}/{pod_name}/{container}"
        );
        let req = hyper::Request::post(&path)
            .body(Vec::new())
            .map_err(|e| BackendError::step(format!("building the request POST {path}"), e))?;
        self.client.request_text(req).await.map_err(|e| {
            failed(
                format!("asking node {node} to SIGKILL container {container} of {pod_name}"),
                e,
            )
        })?;
        let c2 = container.clone();
        let back = move |p: Option<&Pod>| {
            p.is_some_and(|p| {
                let st = p
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .and_then(|cs| cs.iter().find(|c| c.name == c2));
                st.is_some_and(|c| c.restart_count > before_count && c.ready)
            })
        };
        let after = self
            .container_back(
                &deployed.id,
                &pods,
                &pod_name,
                &container,
                back,
                "after SIGKILL",
            )
            .await?;
        let ended = after
            .status
            .and_then(|s| s.container_statuses)
            .and_then(|cs| cs.into_iter().find(|c| c.name == container))
            .and_then(|c| c.last_state)
            .and_then(|l| l.terminated)
            .map(|t| match t.signal {
                Some(sig) => format!("exit code {} (signal {sig})", t.exit_code),
                None => format!(
                    "exit code {} ({})",
                    t.exit_code,
                    t.reason.unwrap_or_default()
                ),
            })
            .unwrap_or_else(|| "unknown (no lastState.terminated reported)".into());
        Ok(ended)
    }

    fn reaches_server_pod(&self) -> Result<(), String> {
        match self.kind {
            // The node routes the pod network through this host (docs/local-cluster.md).
            ClusterKind::Local => Ok(()),
            _ => Err("this host is not on the cluster's pod network: it reaches the server only through its Service (a port-forward lands on the pod's own loopback, where the server does listen)".into()),
        }
    }

    async fn server_pod_ip(&self, deployed: &Deployed) -> Result<std::net::IpAddr, BackendError> {
        self.reaches_server_pod()
            .map_err(|reason| BackendError::Unsupported {
                backend: self.name(),
                reason,
            })?;
        let (namespace, _, statefulset) = self.slot_names(&deployed.id)?;
        let name = format!("{statefulset}-0");
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let pod = pods.get(&name).await.map_err(|e| BackendError::Kube {
            what: format!("reading pod {name} in {namespace}"),
            source: e,
        })?;
        let ip = pod
            .status
            .and_then(|s| s.pod_ip)
            .ok_or_else(|| BackendError::NotReady {
                waited: Duration::ZERO,
                detail: format!("pod {name} in {namespace} has no address yet"),
            })?;
        ip.parse().map_err(|_| BackendError::Invalid {
            reason: format!("pod {name} reports the address {ip:?}, which is not an IP"),
        })
    }

    fn pod_ip(&self, deployed: &Deployed, deployment: &str) -> Result<std::net::IpAddr, String> {
        if self.kind != ClusterKind::Local {
            return Err("this host is not on the cluster's pod network, so a scraper here cannot reach a pod's address".into());
        }
        let slots = self.lock_slots();
        let slot = slots
            .get(&deployed.id)
            .ok_or_else(|| format!("deployment {} is not installed", deployed.id))?;
        slot.pod_ips.get(deployment).copied().ok_or_else(|| {
            format!(
                "Deployment {deployment} has no running pod in {}",
                slot.namespace
            )
        })
    }

    fn reports_selections(&self) -> Result<(), String> {
        Ok(())
    }

    async fn selections(
        &self,
        deployed: &Deployed,
    ) -> Result<crate::backend::Selections, BackendError> {
        use k8s_openapi::api::discovery::v1::EndpointSlice;
        use k8s_openapi::api::policy::v1::PodDisruptionBudget;
        let (namespace, _, _) = self.slot_names(&deployed.id)?;
        let kube_err = |what: &str| {
            let what = format!("listing {what} in {namespace}");
            move |e| BackendError::Kube { what, source: e }
        };
        let lp = ListParams::default();
        let pods = Api::<Pod>::namespaced(self.client.clone(), &namespace)
            .list(&lp)
            .await
            .map_err(kube_err("pods"))?;
        let services = Api::<Service>::namespaced(self.client.clone(), &namespace)
            .list(&lp)
            .await
            .map_err(kube_err("Services"))?;
        let slices = Api::<EndpointSlice>::namespaced(self.client.clone(), &namespace)
            .list(&lp)
            .await
            .map_err(kube_err("EndpointSlices"))?;
        let budgets = Api::<PodDisruptionBudget>::namespaced(self.client.clone(), &namespace)
            .list(&lp)
            .await
            .map_err(kube_err("PodDisruptionBudgets"))?;
        let mut out = crate::backend::Selections::default();
        for p in &pods.items {
            let owner = p
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map_or("none".to_string(), |o| format!("{}/{}", o.kind, o.name));
            out.pods
                .push((p.metadata.name.clone().unwrap_or_default(), owner));
        }
        for svc in &services.items {
            let name = svc.metadata.name.clone().unwrap_or_default();
            let picked: Vec<String> = slices
                .items
                .iter()
                .filter(|sl| {
                    sl.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("kubernetes.io/service-name"))
                        == Some(&name)
                })
                .flat_map(|sl| sl.endpoints.iter())
                .filter_map(|e| {
                    e.target_ref
                        .as_ref()
                        .filter(|r| r.kind.as_deref() == Some("Pod"))
                        .and_then(|r| r.name.clone())
                })
                .collect();
            out.services.push((name, picked));
        }
        for b in &budgets.items {
            let sel = b
                .spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .and_then(|s| s.match_labels.clone())
                .unwrap_or_default();
            let picked = pods
                .items
                .iter()
                .filter(|p| selects(&sel, p.metadata.labels.as_ref()))
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            out.budgets.push((
                b.metadata.name.clone().unwrap_or_default(),
                b.status.as_ref().map_or(-1, |s| s.expected_pods),
                picked,
            ));
        }
        Ok(out)
    }

    fn limits_memory(&self) -> Result<(), String> {
        match self.kind {
            // The process node runs each container in a memory cgroup of its limit.
            ClusterKind::Local => crate::process::cgroup::available().map_err(|e| crate::text::chain(&e)),
            _ => Err("whether the node enforces a container's memory limit, and how its end is told apart from a kill, is not known to this backend".into()),
        }
    }

    async fn await_container_end(
        &self,
        deployed: &mut Deployed,
        within: Duration,
    ) -> Result<Option<Terminated>, BackendError> {
        self.limits_memory()
            .map_err(|reason| BackendError::Unsupported {
                backend: self.name(),
                reason,
            })?;
        let (namespace, _, statefulset) = self.slot_names(&deployed.id)?;
        let (container, seen) = self
            .lock_slots()
            .get(&deployed.id)
            .map(|s| (s.container.clone(), s.ends_seen.clone()))
            .ok_or_else(|| not_deployed(&deployed.id))?;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let pod_name = format!("{statefulset}-0");
        let now = pods
            .get(&pod_name)
            .await
            .map_err(|e| failed(format!("reading pod {pod_name}"), e))?;
        let uid = now.metadata.uid.clone().unwrap_or_default();
        // A new pod (a restart by deletion) starts its count at zero.
        let base = if seen.0 == uid { seen.1 } else { 0 };
        let c2 = container.clone();
        let status = move |p: &Pod| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.name == c2))
                .cloned()
        };
        let s2 = status.clone();
        let uid2 = uid.clone();
        let ended = move |p: Option<&Pod>| {
            p.is_some_and(|p| {
                p.metadata.uid.as_deref() == Some(uid2.as_str())
                    && s2(p).is_some_and(|c| c.restart_count > base)
            })
        };
        match tokio::time::timeout(within, await_condition(pods.clone(), &pod_name, ended)).await {
            Err(_) => return Ok(None),
            Ok(Err(e)) => {
                return Err(BackendError::Failed {
                    what: format!("watching pod {pod_name} in {namespace}"),
                    detail: e.to_string(),
                });
            }
            Ok(Ok(_)) => {}
        }
        // The kubelet restarts it in the same pod; the caller goes on once it is ready again.
        let s3 = status.clone();
        let uid3 = uid.clone();
        let back = move |p: Option<&Pod>| {
            p.is_some_and(|p| {
                p.metadata.uid.as_deref() == Some(uid3.as_str()) && s3(p).is_some_and(|c| c.ready)
            })
        };
        let after = self
            .container_back(
                &deployed.id,
                &pods,
                &pod_name,
                &container,
                back,
                "after it ended",
            )
            .await?;
        let t = status(&after)
            .and_then(|c| c.last_state)
            .and_then(|l| l.terminated)
            .ok_or_else(|| BackendError::Failed {
                what: format!("pod {pod_name} in {namespace}"),
                detail: format!(
                    "container {container} restarted but the node reported no lastState.terminated"
                ),
            })?;
        Ok(Some(Terminated {
            reason: t.reason.clone().unwrap_or_default(),
            exit_code: t.exit_code,
            detail: match t.signal {
                Some(sig) => format!("as the pod's lastState.terminated says: signal {sig}"),
                None => "as the pod's lastState.terminated says".to_string(),
            },
        }))
    }

    fn kills_containers(&self) -> Result<(), String> {
        match self.kind {
            ClusterKind::Local => Ok(()),
            _ => Err("killing one container with SIGKILL from the node is not implemented on this backend (it needs the node's container runtime, e.g. `crictl`)".into()),
        }
    }

    fn limits_volume_size(&self) -> Result<(), String> {
        match self.kind {
            // The process node's provisioner backs each claim with a tmpfs of its request.
            ClusterKind::Local => Ok(()),
            _ => Err("whether a claim is limited to its requested size depends on the cluster's provisioner, which this backend does not know".into()),
        }
    }

    async fn restart(&self, deployed: &mut Deployed) -> Result<(), BackendError> {
        let (namespace, _, statefulset) = self.slot_names(&deployed.id)?;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        // A StatefulSet's pods are <name>-<ordinal>; the chart runs exactly one.
        let pod_name = format!("{statefulset}-0");
        let before = pods
            .get(&pod_name)
            .await
            .map_err(|e| failed(format!("reading pod {pod_name}"), e))?;
        let old_uid = before.metadata.uid.clone().unwrap_or_default();
        let claims_before = self.claim_uids(&namespace, &before).await?;
        pods.delete(&pod_name, &DeleteParams::default())
            .await
            .map_err(|e| failed(format!("deleting pod {pod_name}"), e))?;
        let back = move |p: Option<&Pod>| replaced_and_ready(p, &old_uid);
        let waited = self
            .unless_images_fail(&namespace, async {
                Ok(tokio::time::timeout(
                    self.timeout,
                    await_condition(pods.clone(), &pod_name, back),
                )
                .await)
            })
            .await?;
        if !matches!(waited, Ok(Ok(_))) {
            return Err(BackendError::NotReady {
                waited: self.timeout,
                detail: format!(
                    "pod {pod_name} in {namespace} did not come back ready after deletion\n{}",
                    self.report(&namespace).await
                ),
            });
        }
        self.wait_statefulset(&namespace, &statefulset).await?;
        let after = pods
            .get(&pod_name)
            .await
            .map_err(|e| failed(format!("reading pod {pod_name}"), e))?;
        let claims_after = self.claim_uids(&namespace, &after).await?;
        same_claims(&claims_before, &claims_after)
            .map_err(|e| BackendError::step(format!("restart of {pod_name} in {namespace}"), e))?;
        // A fresh forward on a new port: dropping the old one closes every connection it
        // tunnelled to the deleted pod, so no pooled client connection survives the restart.
        let service = self
            .lock_slots()
            .get(&deployed.id)
            .map(|s| s.service.clone())
            .ok_or_else(|| not_deployed(&deployed.id))?;
        let fresh = self.forward(&namespace, &service).await?;
        let rendered = self
            .lock_slots()
            .get(&deployed.id)
            .map(|s| s.rendered.clone())
            .ok_or_else(|| not_deployed(&deployed.id))?;
        (deployed.base_url, deployed.tls) =
            reach(&rendered, &namespace, &deployed.secrets, fresh.port)?;
        if let Some(slot) = self.lock_slots().get_mut(&deployed.id) {
            slot.forward = fresh;
        }
        Ok(())
    }

    async fn reinstall(&self, deployed: &mut Deployed, next: &Release) -> Result<(), BackendError> {
        let (namespace, release_name, statefulset) = self.slot_names(&deployed.id)?;
        let args = helm_cli::uninstall_args(&release_name, &namespace, self.timeout, &self.target);
        if let Err(e) = helm_cli::run(&self.helm, &args).await {
            return Err(BackendError::step(
                format!("helm uninstall {release_name} in {namespace}"),
                e,
            ));
        }
        if let Some(slot) = self.lock_slots().remove(&deployed.id) {
            drop(slot.forward);
        }
        // The StatefulSet controller deletes its claims after the pod (retention policy
        // Delete); B is a fresh release only once they are gone.
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &namespace);
        let data = pvcs
            .list(&ListParams::default())
            .await
            .map_err(|e| failed(format!("listing claims in {namespace}"), e))?;
        for pvc in data.items.iter().filter(|p| {
            p.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.ends_with(&format!("-{statefulset}-0")))
        }) {
            let name = pvc.metadata.name.clone().unwrap_or_default();
            self.bounded(await_condition(pvcs.clone(), &name, |o: Option<&PersistentVolumeClaim>| o.is_none()), || {
                format!("claim {name} of the uninstalled StatefulSet {statefulset} is still there, so the new release would not start empty")
            })
            .await?;
        }
        let mut req = next.request.clone();
        req.release = release_name;
        let next = Release {
            request: req,
            ..next.clone()
        };
        *deployed = self.install_into(&namespace, &next).await?;
        Ok(())
    }

    async fn upgrade(&self, deployed: &mut Deployed, next: &Release) -> Result<(), BackendError> {
        let (namespace, release_name, _) = self.slot_names(&deployed.id)?;
        let (statefulset, service) = release_objects(&next.rendered)?;
        for (name, data) in &next.external_secrets {
            let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
            if secrets
                .get_opt(name)
                .await
                .map_err(|e| failed(format!("reading Secret {name}"), e))?
                .is_none()
            {
                secrets
                    .create(&PostParams::default(), &external_secret(name, data))
                    .await
                    .map_err(|e| {
                        failed(
                            format!("creating the pre-existing Secret {name} in {namespace}"),
                            e,
                        )
                    })?;
            }
        }
        let mut req = next.request.clone();
        // The release being upgraded is the one installed, whatever the next render calls it.
        req.release = release_name;
        self.unless_images_fail(&namespace, async {
            self.helm(&req, &namespace, Install::Upgrade).await?;
            self.wait_statefulset(&namespace, &statefulset).await
        })
        .await?;
        // `lookup` should keep generated credentials across upgrades; whatever happened, the
        // checks must use what the pod has now.
        deployed.secrets = self.pod_secrets(&namespace, &statefulset).await?;
        let renamed = self
            .lock_slots()
            .get(&deployed.id)
            .is_some_and(|s| s.service != service);
        let new_forward = if renamed {
            Some(self.forward(&namespace, &service).await?)
        } else {
            None
        };
        let pod_ips = self.deployment_pod_ips(&namespace).await?;
        let mut slots = self.lock_slots();
        if let Some(slot) = slots.get_mut(&deployed.id) {
            slot.pod_ips = pod_ips;
            slot.statefulset = statefulset;
            slot.test_hooks = hooks::test_hooks(&next.rendered);
            slot.rendered = next.rendered.clone();
            if let Some(f) = new_forward {
                (deployed.base_url, deployed.tls) =
                    reach(&next.rendered, &namespace, &deployed.secrets, f.port)?;
                slot.service = service;
                slot.forward = f;
            }
        }
        Ok(())
    }

    async fn logs(&self, deployed: &Deployed, tail: usize) -> String {
        let (namespace, _, statefulset) = match self.slot_names(&deployed.id) {
            Ok(n) => n,
            Err(e) => return e.to_string(),
        };
        let tunnel = self
            .lock_slots()
            .get(&deployed.id)
            .and_then(|s| s.forward.last_error())
            .map(|e| format!("--- port-forward: last tunnel failure ---\n{e}\n"))
            .unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let pod_name = format!("{statefulset}-0");
        match pods.get(&pod_name).await {
            Ok(pod) => {
                let logs = diagnostics::pod_logs(&pods, &pod, tail)
                    .await
                    .iter()
                    .map(|l| {
                        let which = if l.previous { "previous" } else { "current" };
                        format!(
                            "--- {}/{} ({which}) ---\n{}",
                            l.pod,
                            l.container,
                            l.text.trim_end()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                format!("{tunnel}{logs}")
            }
            Err(e) => format!(
                "{tunnel}(no logs: pod {pod_name} in {namespace}: {})",
                crate::text::chain(&e)
            ),
        }
    }

    async fn teardown(&self, deployed: Deployed) -> Result<(), BackendError> {
        let slot = self.lock_slots().remove(&deployed.id);
        if let Some(slot) = slot {
            drop(slot.forward);
            self.discard_namespace(&slot.namespace).await;
        }
        Ok(())
    }

    async fn kill_job(&self, deployed: &Deployed, job: &Job) -> Result<(), BackendError> {
        let (namespace, _, _) = self.slot_names(&deployed.id)?;
        let name = job.metadata.name.clone().unwrap_or_default();
        // The Job goes first, orphaning its pods, so that its controller counts no failure
        // and starts no retry; then its pods are deleted with no grace, which the kubelet
        // (and the process node) carries out by killing their containers at once.
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &namespace);
        match jobs.delete(&name, &DeleteParams::orphan()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(failed(format!("deleting Job {name} in {namespace}"), e)),
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let listed = pods
            .list(&ListParams::default().labels(&hooks::job_pod_selector(&name)))
            .await
            .map_err(|e| failed(format!("listing the pods of Job {name} in {namespace}"), e))?;
        let now = DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        for p in listed.items {
            let (pod, uid) = (
                p.metadata.name.clone().unwrap_or_default(),
                p.metadata.uid.clone().unwrap_or_default(),
            );
            match pods.delete(&pod, &now).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => continue,
                Err(e) => return Err(failed(format!("deleting pod {pod} of Job {name}"), e)),
            }
            gone(&pods, &pod, &uid, self.timeout, || {
                format!("pod {pod} of Job {name} in {namespace} was not killed")
            })
            .await?;
        }
        Ok(())
    }

    async fn run_job(&self, deployed: &Deployed, job: &Job) -> Result<HookRun, BackendError> {
        let (namespace, _, _) = self.slot_names(&deployed.id)?;
        let name = job
            .metadata
            .name
            .clone()
            .ok_or_else(|| BackendError::Invalid {
                reason: "the Job to run has no name".into(),
            })?;
        let mut job = job.clone();
        job.metadata.namespace = Some(namespace.clone());
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &namespace);
        // A Job of that name from an earlier run goes first, with its pods, as helm's
        // `before-hook-creation` deletes the last run of a hook before creating it again.
        if let Some(old) = jobs.get_opt(&name).await.map_err(|e| BackendError::Kube {
            what: format!("reading Job {name} in {namespace}"),
            source: e,
        })? {
            let uid = old.metadata.uid.clone().unwrap_or_default();
            jobs.delete(&name, &DeleteParams::foreground())
                .await
                .map_err(|e| BackendError::Kube {
                    what: format!("deleting the earlier Job {name} in {namespace}"),
                    source: e,
                })?;
            gone(&jobs, &name, &uid, self.timeout, || {
                format!("the earlier Job {name} in {namespace} was not deleted")
            })
            .await?;
        }
        jobs.create(&PostParams::default(), &job)
            .await
            .map_err(|e| BackendError::Kube {
                what: format!("creating Job {name} in {namespace}"),
                source: e,
            })?;
        // Complete or Failed: the Job controller has decided, honouring backoffLimit and the deadline.
        let done = |j: Option<&Job>| {
            j.and_then(|j| j.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True"
                    })
                })
        };
        let (_, deadline) =
            crate::backend::jobs::budget(&job, self.timeout.max(Duration::from_secs(60)));
        let waited = tokio::time::timeout(
            deadline + Duration::from_secs(30),
            await_condition(jobs.clone(), &name, done),
        )
        .await;
        let (reasons, log) = self
            .hook_results(&namespace, &[TestHook::Job(name.clone())])
            .await;
        match waited {
            Ok(Ok(_)) if reasons.is_empty() => Ok(HookRun::Succeeded { log }),
            Ok(Ok(_)) => Ok(HookRun::Failed {
                reason: reasons.join("; "),
                log,
            }),
            Ok(Err(e)) => Err(BackendError::step(
                format!("watching Job {name} in {namespace}"),
                e,
            )),
            Err(_) => Ok(HookRun::Failed {
                reason: format!(
                    "Job {name} did not finish within {deadline:?}: {}",
                    reasons.join("; ")
                ),
                log,
            }),
        }
    }

    fn enforces_network_policy(&self) -> Result<(), String> {
        match self.kind {
            // `cluster up` runs kube-router's NetworkPolicy controller; k3s embeds the same one.
            ClusterKind::Local | ClusterKind::K3s => Ok(()),
            ClusterKind::Kubeconfig => Err("whether this cluster's network plugin enforces NetworkPolicy is not known to the harness (many do not), so a refused client getting through would not be the chart's fault".into()),
        }
    }

    async fn run_client(
        &self,
        deployed: &Deployed,
        name: &str,
        labels: &BTreeMap<String, String>,
        script: &str,
    ) -> Result<HookRun, BackendError> {
        let job = {
            let slots = self.lock_slots();
            let slot = slots
                .get(&deployed.id)
                .ok_or_else(|| not_deployed(&deployed.id))?;
            let port = slot
                .rendered
                .services()
                .find(|svc| svc.metadata.name.as_deref() == Some(slot.service.as_str()))
                .and_then(|svc| svc.spec.as_ref()?.ports.as_ref()?.first().map(|p| p.port))
                .ok_or_else(|| BackendError::Invalid {
                    reason: format!("the render has no port on Service {}", slot.service),
                })?;
            let scheme = if deployed.tls.is_some() {
                "https"
            } else {
                "http"
            };
            let api = format!("{scheme}://{}.{}.svc:{port}", slot.service, slot.namespace);
            hooks::client_job(&slot.rendered, name, labels, script, &api).ok_or_else(|| {
                BackendError::Invalid {
                    reason: "the render has no `helm test` pod to take a client pod's image and security context from".into(),
                }
            })?
        };
        self.run_job(deployed, &job).await
    }

    async fn chart_test(&self, deployed: &Deployed) -> Result<HookRun, BackendError> {
        let (namespace, release, test_hooks) = {
            let slots = self.lock_slots();
            let slot = slots
                .get(&deployed.id)
                .ok_or_else(|| not_deployed(&deployed.id))?;
            (
                slot.namespace.clone(),
                slot.release.clone(),
                slot.test_hooks.clone(),
            )
        };
        if test_hooks.is_empty() {
            return Ok(HookRun::Failed {
                reason: format!(
                    "release {release} renders no Job or Pod annotated `helm.sh/hook: test`, so `helm test` would prove nothing"
                ),
                log: String::new(),
            });
        }
        let args = helm_cli::test_args(&release, &namespace, self.timeout, &self.target);
        let verdict = helm_cli::run(&self.helm, &args).await;
        let (reasons, hook_logs) = self.hook_results(&namespace, &test_hooks).await;
        Ok(match verdict {
            Ok(out) => HookRun::Succeeded {
                log: format!("{out}\n{hook_logs}"),
            },
            Err(e) => {
                // A verdict on the release (the report's FAIL reason), not an error of the harness.
                let out = e.output();
                let why = if reasons.is_empty() {
                    out.lines()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("no output")
                        .to_string()
                } else {
                    reasons.join("; ")
                };
                HookRun::Failed {
                    reason: format!("helm test {release} in {namespace} failed: {why}"),
                    log: format!("{out}\n{hook_logs}\n{}", self.report(&namespace).await),
                }
            }
        })
    }

    fn runs_lookup(&self) -> Result<(), String> {
        Ok(())
    }

    fn updates_secrets(&self) -> Result<(), String> {
        Ok(())
    }

    /// The Secret's data replaced whole; the kubelet then rewrites the pod's volumes of it.
    async fn update_secret(
        &self,
        deployed: &Deployed,
        name: &str,
        data: &BTreeMap<String, String>,
    ) -> Result<(), BackendError> {
        let (namespace, _, _) = self.slot_names(&deployed.id)?;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
        secrets
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(replace_secret_data(data)),
            )
            .await
            .map_err(|e| {
                failed(
                    format!("replacing the data of Secret {name} in {namespace}"),
                    e,
                )
            })?;
        Ok(())
    }

    async fn orphan_statefulset(&self, deployed: &mut Deployed) -> Result<(), BackendError> {
        let (namespace, _, statefulset) = self.slot_names(&deployed.id)?;
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &namespace);
        let orphan = DeleteParams {
            propagation_policy: Some(kube::api::PropagationPolicy::Orphan),
            ..DeleteParams::default()
        };
        api.delete(&statefulset, &orphan).await.map_err(|e| failed(format!("deleting StatefulSet {statefulset} in {namespace} (orphaning its pod and claims)"), e))?;
        Ok(())
    }

    async fn restart_container(&self, _deployed: &mut Deployed) -> Result<(), BackendError> {
        // The 1.x image has no shell to kill its server from inside, and the API has no
        // "restart this container" call; deleting the pod is `restart`, a different promise.
        Err(BackendError::Unavailable { backend: self.name(), reason: "a cluster cannot restart one container without deleting its pod (the 1.x image has no shell to exit from inside)".into() })
    }

    fn kept_outlive_the_harness(&self) -> bool {
        true
    }
}

/// Compile-time guard: the runner may drive releases on several tokio tasks (`--jobs`), so the
/// backend must be shareable and its futures sendable. Never called.
#[allow(dead_code)]
fn futures_are_send(b: &'static ClusterBackend, r: &'static Release, d: &'static mut Deployed) {
    fn send<T: Send>(_: T) {}
    fn sync<T: Sync>(_: &T) {}
    sync(b);
    send(b.deploy(r));
    send(b.logs(d, 10));
    send(b.chart_test(d));
    send(b.restart(d));
}

fn not_deployed(id: &str) -> BackendError {
    BackendError::Failed {
        what: format!("release {id}"),
        detail: "is not deployed on this cluster backend".into(),
    }
}

/// Waits up to `within` until the object `name` of that `uid` is gone; `what` says what did
/// not happen when it is not.
async fn gone<K>(
    api: &Api<K>,
    name: &str,
    uid: &str,
    within: Duration,
    what: impl FnOnce() -> String,
) -> Result<(), BackendError>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let done = tokio::time::timeout(
        within,
        await_condition(
            api.clone(),
            name,
            kube::runtime::conditions::is_deleted(uid),
        ),
    )
    .await;
    match done {
        Ok(Ok(_)) => Ok(()),
        _ => Err(BackendError::NotReady {
            waited: within,
            detail: what(),
        }),
    }
}

fn failed(what: String, e: kube::Error) -> BackendError {
    BackendError::Kube { what, source: e }
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A JSON merge patch that leaves the Secret with exactly `data`: `data: null` drops every
/// key it had, and `stringData` is written into `data` by the API server.
fn replace_secret_data(data: &BTreeMap<String, String>) -> serde_json::Value {
    serde_json::json!({"data": null, "stringData": data})
}

fn external_secret(name: &str, data: &BTreeMap<String, String>) -> Secret {
    // A certificate and key make it the type a user's `kubectl create secret tls` makes.
    let tls = data.contains_key("tls.crt") && data.contains_key("tls.key");
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        type_: Some(if tls { "kubernetes.io/tls" } else { "Opaque" }.into()),
        string_data: Some(data.clone()),
        ..Secret::default()
    }
}

/// Whether `selector`'s `matchLabels` pick an object with `labels`, as a Service or a
/// PodDisruptionBudget would; an empty selector here picks nothing.
fn selects(selector: &BTreeMap<String, String>, labels: Option<&BTreeMap<String, String>>) -> bool {
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The StatefulSet to wait for and the Service to forward to, from what the release rendered.
/// A headless Service also selects the pod, but the regular one is what users reach.
pub(super) fn release_objects(rendered: &Rendered) -> Result<(String, String), BackendError> {
    let invalid = |reason: &str| BackendError::Invalid {
        reason: reason.to_string(),
    };
    let statefulset = rendered
        .statefulset()
        .ok_or_else(|| invalid("the chart rendered no StatefulSet"))?;
    let sts = statefulset
        .metadata
        .name
        .clone()
        .ok_or_else(|| invalid("the chart rendered no StatefulSet"))?;
    let pod_labels = statefulset
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let headless =
        |s: &&Service| s.spec.as_ref().and_then(|sp| sp.cluster_ip.as_deref()) == Some("None");
    // The server's Service selects the StatefulSet's pods; others (the collector's) do not.
    let selects_server = |s: &&Service| {
        s.spec
            .as_ref()
            .and_then(|sp| sp.selector.as_ref())
            .is_some_and(|sel| selects(sel, Some(&pod_labels)))
    };
    let services: Vec<&Service> = rendered.services().filter(selects_server).collect();
    let svc = services
        .iter()
        .find(|s| !headless(s))
        .or_else(|| services.first())
        .and_then(|s| s.metadata.name.clone())
        .ok_or_else(|| {
            invalid("the chart rendered no Service selecting the server's pods to reach it through")
        })?;
    Ok((sts, svc))
}

/// Secrets a StatefulSet's pods get: env `secretKeyRef`s, `envFrom` secret refs and secret
/// volumes, in all containers including init containers.
fn secret_names(sts: &StatefulSet) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let Some(spec) = sts.spec.as_ref().and_then(|s| s.template.spec.as_ref()) else {
        return out;
    };
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for e in c.env.iter().flatten() {
            if let Some(r) = e
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
            {
                out.insert(r.name.clone());
            }
        }
        for e in c.env_from.iter().flatten() {
            if let Some(r) = &e.secret_ref {
                out.insert(r.name.clone());
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(name) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            out.insert(name);
        }
    }
    out
}

/// PVC names a pod mounts.
fn claims_of(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| {
            v.persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.clone())
        })
        .collect()
}

/// How a restart came back on other volumes than it had.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsChanged {
    #[error("the pod mounted claims {before:?} before and {after:?} after")]
    Names {
        before: Vec<String>,
        after: Vec<String>,
    },
    #[error("PVC {name} was replaced (uid {before} → {after})")]
    Replaced {
        name: String,
        before: String,
        after: String,
    },
}

/// A restart must come back on the very same volumes: same claim names, same claim objects.
fn same_claims(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Result<(), ClaimsChanged> {
    if before.keys().ne(after.keys()) {
        return Err(ClaimsChanged::Names {
            before: before.keys().cloned().collect(),
            after: after.keys().cloned().collect(),
        });
    }
    for (name, uid) in before {
        if after.get(name) != Some(uid) {
            return Err(ClaimsChanged::Replaced {
                name: name.clone(),
                before: uid.clone(),
                after: after[name].clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(yaml: &str) -> Rendered {
        Rendered::parse(yaml).expect("rendered stream parses")
    }

    const STS: &str = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: chroma-chromadb}\nspec:\n  serviceName: chroma-chromadb-headless\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: chromadb, image: x}]}\n";

    #[test]
    fn kube_errors_stay_the_source() {
        let status =
            kube::core::Status::failure("namespaces \"x\" already exists", "AlreadyExists")
                .with_code(409);
        let err = failed(
            "creating namespace x".into(),
            kube::Error::Api(Box::new(status)),
        );
        let source = std::error::Error::source(&err).expect("the kube error is kept as the source");
        assert!(source.downcast_ref::<kube::Error>().is_some(), "{source:?}");
        assert!(
            err.to_string().starts_with("creating namespace x: "),
            "{err}"
        );
    }

    #[test]
    fn regular_service_preferred_over_headless() {
        let stream = format!(
            "{STS}---\napiVersion: v1\nkind: Service\nmetadata: {{name: chroma-chromadb-headless}}\nspec: {{clusterIP: None, selector: {{a: b}}, ports: [{{port: 8000}}]}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: chroma-chromadb}}\nspec: {{selector: {{a: b}}, ports: [{{port: 8000}}]}}\n"
        );
        let (sts, svc) = release_objects(&rendered(&stream)).expect("objects");
        assert_eq!(
            (sts.as_str(), svc.as_str()),
            ("chroma-chromadb", "chroma-chromadb")
        );
    }

    #[test]
    fn a_selector_picks_only_labels_that_hold_every_pair_and_an_empty_one_picks_nothing() {
        let m = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let sel = m(&[("a", "b"), ("c", "d")]);
        assert!(selects(
            &sel,
            Some(&m(&[("a", "b"), ("c", "d"), ("e", "f")]))
        ));
        assert!(!selects(&sel, Some(&m(&[("a", "b")]))));
        assert!(!selects(&sel, None));
        assert!(!selects(&m(&[]), Some(&m(&[("a", "b")]))));
    }

    #[test]
    fn the_collectors_service_is_not_the_servers_even_when_it_comes_first() {
        let stream = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: chroma-chromadb-otel-collector}}\nspec: {{selector: {{c: otel}}, ports: [{{port: 4317}}, {{port: 8889}}]}}\n---\n{STS}---\napiVersion: v1\nkind: Service\nmetadata: {{name: chroma-chromadb}}\nspec: {{selector: {{a: b}}, ports: [{{port: 8000}}]}}\n"
        );
        let (_, svc) = release_objects(&rendered(&stream)).expect("objects");
        assert_eq!(svc, "chroma-chromadb");
    }

    #[test]
    fn render_without_service_is_invalid() {
        let err = release_objects(&rendered(STS)).expect_err("no service");
        assert_eq!(
            err.to_string(),
            "the rendered release cannot run: the chart rendered no Service selecting the server's pods to reach it through"
        );
    }

    #[test]
    fn render_without_statefulset_is_invalid() {
        let err = release_objects(&rendered(
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n",
        ))
        .expect_err("no sts");
        assert!(
            err.to_string()
                .ends_with("the chart rendered no StatefulSet"),
            "{err}"
        );
    }

    fn claims(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn restart_on_the_same_pvc_passes() {
        let c = claims(&[("data-chroma-chromadb-0", "uid-a")]);
        assert_eq!(same_claims(&c, &c.clone()), Ok(()));
    }

    #[test]
    fn restart_on_a_recreated_pvc_fails_naming_it() {
        let err = same_claims(
            &claims(&[("data-0", "uid-a")]),
            &claims(&[("data-0", "uid-b")]),
        )
        .expect_err("replaced")
        .to_string();
        assert_eq!(err, "PVC data-0 was replaced (uid uid-a → uid-b)");
    }

    #[test]
    fn restart_mounting_other_claims_fails() {
        let err = same_claims(&claims(&[("data-0", "u")]), &claims(&[]))
            .expect_err("claims differ")
            .to_string();
        assert!(
            err.starts_with("the pod mounted claims [\"data-0\"] before and [] after"),
            "{err}"
        );
    }

    #[test]
    fn claims_are_read_from_pod_volumes() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "chroma-chromadb-0"},
            "spec": {"containers": [{"name": "chromadb"}], "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data-chroma-chromadb-0"}},
                {"name": "config", "configMap": {"name": "chroma-chromadb-config"}}
            ]}
        }))
        .expect("pod parses");
        assert_eq!(claims_of(&pod), ["data-chroma-chromadb-0"]);
    }

    #[test]
    fn external_secrets_are_created_from_plain_values() {
        let s = external_secret("my-auth", &claims(&[("token", "s3cr3t")]));
        assert_eq!(s.metadata.name.as_deref(), Some("my-auth"));
        assert_eq!(s.string_data, Some(claims(&[("token", "s3cr3t")])));
    }

    #[test]
    fn a_certificate_and_key_make_a_kubernetes_io_tls_secret() {
        let s = external_secret(
            "my-tls",
            &claims(&[("tls.crt", "C"), ("tls.key", "K"), ("ca.crt", "A")]),
        );
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(
            external_secret("my-auth", &claims(&[("token", "t")]))
                .type_
                .as_deref(),
            Some("Opaque")
        );
    }

    #[test]
    fn a_renewal_patch_drops_the_old_keys_and_writes_the_new_ones() {
        let patch = replace_secret_data(&claims(&[("tls.crt", "NEW"), ("tls.key", "KEY")]));
        assert_eq!(
            patch,
            serde_json::json!({"data": null, "stringData": {"tls.crt": "NEW", "tls.key": "KEY"}})
        );
    }

    #[test]
    fn secrets_referenced_anywhere_in_the_pod_template_are_found() {
        let sts: StatefulSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "chroma-chromadb"},
            "spec": {"serviceName": "s", "selector": {}, "template": {"spec": {
                "initContainers": [{"name": "htpasswd", "env": [
                    {"name": "CHROMA_BASIC_AUTH_USERNAME", "valueFrom": {"secretKeyRef": {"name": "chromadb-auth", "key": "username"}}}]}],
                "containers": [{"name": "chromadb",
                    "env": [{"name": "PLAIN", "value": "x"},
                            {"name": "CFG", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}],
                    "envFrom": [{"secretRef": {"name": "extra-env"}}]}],
                "volumes": [{"name": "certs", "secret": {"secretName": "tls-certs"}}, {"name": "d", "emptyDir": {}}]
            }}}
        }))
        .expect("sts parses");
        assert_eq!(
            secret_names(&sts).into_iter().collect::<Vec<_>>(),
            ["chromadb-auth", "extra-env", "tls-certs"]
        );
    }
}
