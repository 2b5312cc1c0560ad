//! The process backend: a stand-in for kubelet plus the official image, running real Chroma
//! servers from per-version Python environments.
//!
//! A deploy does what the cluster would: refuse a pod spec the API server refuses, resolve
//! env/envFrom, lay out volumes (ConfigMaps/Secrets as files, emptyDirs fresh, claims kept),
//! run the init container's effect, then start the container's command the way its image
//! does. The only changes from the render are the listen address (loopback), the port (a
//! free one) and absolute paths (re-rooted under a temp dir); each is listed in
//! [`Deployed::adjustments`].

pub mod cgroup;
pub mod child;
pub mod collector;
pub mod hook;
pub mod image;
pub mod pod;
pub mod podnet;
pub mod proxy;
pub mod security;
pub mod volume;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, PodSpec, VolumeMount};
use render::ChromaVersion;

use crate::backend::{Backend, BackendError, Deployed, HookRun, Release, Terminated};
use crate::venv::{Venv, VenvCache};
use child::Server;
use image::LaunchError;
use pod::{Layout, PodIdentity, Sources};

/// How a deployment's server is started and judged ready.
#[derive(Debug, Clone)]
pub struct ProcessOptions {
    /// Longest wait for the readiness probe to pass.
    pub ready_timeout: Duration,
    /// Grace between SIGTERM and SIGKILL (the pod's terminationGracePeriodSeconds is longer;
    /// every measured Chroma exits within a second).
    pub stop_grace: Duration,
    /// Where per-deployment temp roots are made.
    pub temp_base: PathBuf,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            ready_timeout: Duration::from_secs(90),
            stop_grace: Duration::from_secs(10),
            temp_base: std::env::temp_dir(),
        }
    }
}

/// What a start brings up: a new pod (fresh volumes, init containers run) or the same pod's
/// container again after it exited (volumes, emptyDirs included, kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    NewPod,
    SamePod,
}

struct Running {
    /// The claims the node gave a size (mounted under the temp root): declared first so they
    /// are unmounted before the root is removed.
    sized: Vec<volume::SizedVolume>,
    /// Owns the deployment's temp root: dropping it (teardown, a failed deploy, a job dropped
    /// on Ctrl-C) removes the files.
    _root: tempfile::TempDir,
    release: Release,
    venv: Venv,
    layout: Layout,
    server: Option<Server>,
    starts: usize,
    /// Where the Service's traffic lands (this host's loopback port, or the pod's address in
    /// its own network) and the container port it stands for.
    reach: Option<(std::net::SocketAddr, u16)>,
    /// Containers beside `chromadb` (the TLS proxy), which live as long as the pod.
    sidecars: Vec<Server>,
    /// The `chromadb` container's memory cgroup (`resources.limits.memory`), one per container
    /// start as the runtime makes one per container; after `server`, so it is dropped (and
    /// removed) once the server is gone.
    memory: Option<cgroup::MemoryCgroup>,
    /// The pod's own network namespace, when it has sidecars that share its localhost.
    net: Option<podnet::PodNet>,
    /// How clients reach it over HTTPS (see [`Deployed::tls`]).
    tls: Option<crate::tls::TlsEndpoint>,
    /// The StatefulSet was deleted with `--cascade=orphan`: the next upgrade creates it.
    orphaned: bool,
    /// The chart's collector Deployment's pod (`metrics.enabled`), which lives apart from the
    /// Chroma pod's restarts.
    collector: Option<collector::CollectorPod>,
}

pub struct ProcessBackend {
    venvs: VenvCache,
    pins: BTreeMap<ChromaVersion, Vec<String>>,
    opts: ProcessOptions,
    running: Mutex<HashMap<String, Running>>,
}

fn invalid(reason: impl Into<String>) -> BackendError {
    BackendError::Invalid {
        reason: reason.into(),
    }
}

/// What stops the server's container (or its sidecar) before it runs: a launch the container
/// would fail too, or a readiness probe that names no port.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("container `{container}`: {source}")]
    Launch {
        container: &'static str,
        #[source]
        source: LaunchError,
    },
    #[error("readinessProbe: {0}")]
    Probe(#[source] crate::workload::PortRefError),
}

/// Why the pod never became ready: a container exited, or the probe never passed.
#[derive(Debug, thiserror::Error)]
pub enum ReadyError {
    #[error("the readiness probe's HTTP client: {0}")]
    Client(#[source] crate::tls::TlsError),
    #[error("the readiness probe's HTTP client: {0}")]
    Build(#[source] reqwest::Error),
    #[error("{container} exited ({status}) before the pod became ready")]
    Exited {
        container: String,
        status: std::process::ExitStatus,
    },
    #[error("not ready after {timeout:?}: {last}")]
    Timeout {
        timeout: Duration,
        #[source]
        last: LastProbe,
    },
}

/// The readiness probe's last answer.
#[derive(Debug, thiserror::Error)]
pub enum LastProbe {
    #[error("no answer yet")]
    None,
    #[error("readinessProbe GET {path} answered {status}")]
    Status {
        path: String,
        status: reqwest::StatusCode,
    },
    #[error("readinessProbe GET {path}: {source}")]
    Failed {
        path: String,
        #[source]
        source: reqwest::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackendError {
    let context = context.into();
    move |source| BackendError::Io { context, source }
}

impl ProcessBackend {
    /// `pins`: extra requirements per version (from fixtures/versions.yaml).
    pub fn new(
        venvs: VenvCache,
        pins: BTreeMap<ChromaVersion, Vec<String>>,
        opts: ProcessOptions,
    ) -> Self {
        ProcessBackend {
            venvs,
            pins,
            opts,
            running: Mutex::new(HashMap::new()),
        }
    }

    fn pins_for(&self, v: &ChromaVersion) -> Vec<String> {
        self.pins.get(v).cloned().unwrap_or_default()
    }

    /// The environment for `v`, built if needed (blocking work off the async threads).
    pub async fn venv(&self, v: &ChromaVersion) -> Result<Venv, BackendError> {
        let cache = self.venvs.clone();
        let pins = self.pins_for(v);
        let version = v.clone();
        tokio::task::spawn_blocking(move || cache.ensure(&version, &pins))
            .await
            .map_err(|e| BackendError::step("building the Python environment", e))?
            .map(|(venv, _)| venv)
            .map_err(|e| BackendError::step(format!("Python environment for chromadb {v}"), e))
    }

    fn take(&self, id: &str) -> Result<Running, BackendError> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .ok_or_else(|| BackendError::Failed {
                what: format!("deployment {id}"),
                detail: "is not running on this backend".into(),
            })
    }

    fn put(&self, id: &str, r: Running) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), r);
    }

    /// Where a deployment's temp root is, for `--keep` and for leak tests.
    pub fn root_of(&self, id: &str) -> Option<PathBuf> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|r| r.layout.root.clone())
    }

    /// Stops a deployment's server (pod deletion).
    async fn stop(&self, r: &mut Running) {
        if let Some(s) = r.server.take() {
            let status = s.stop(self.opts.stop_grace).await;
            let line = format!(
                "--- harness: server stopped ({}) ---\n",
                status.map_or("unknown".into(), |s| s.to_string())
            );
            append(&server_log(&r.layout), &line);
        }
    }

    /// Deletes the pod: the server, its sidecars and its network.
    async fn stop_pod(&self, r: &mut Running) {
        self.stop(r).await;
        for s in r.sidecars.drain(..) {
            let log = s.log.clone();
            let status = s.stop(self.opts.stop_grace).await;
            append(
                &log,
                &format!(
                    "--- harness: sidecar stopped ({}) ---\n",
                    status.map_or("unknown".into(), |s| s.to_string())
                ),
            );
        }
        r.net = None;
    }

    /// Starts (or restarts) the pod from `r.release` on `r.layout`, keeping only the claims.
    async fn start(
        &self,
        r: &mut Running,
        life: Start,
    ) -> Result<(String, Vec<String>), BackendError> {
        r.starts += 1;
        let layout = r.layout.clone();
        // A new container gets a fresh filesystem; only a new pod gets fresh volumes.
        let fresh: &[PathBuf] = match life {
            Start::NewPod => &[layout.fs(), layout.volumes()],
            Start::SamePod => &[layout.fs()],
        };
        for dir in fresh {
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(io(format!("clearing {}", dir.display())))?;
            }
            std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        }
        std::fs::create_dir_all(layout.pvc()).map_err(io("creating the claims dir"))?;
        std::fs::create_dir_all(layout.logs()).map_err(io("creating the logs dir"))?;

        // The release's other Deployment (the collector) first: Chroma's pod reaches it by its
        // Service name.
        let views = self.ensure_collector(r).await?;
        let release = &r.release;
        let rendered = &release.rendered;
        let sts = rendered
            .statefulset()
            .ok_or_else(|| invalid("the chart rendered no StatefulSet"))?;
        let pod = pod::pod_spec(sts).map_err(BackendError::unrunnable)?;
        let claims = pod::claim_templates(sts);
        let sources = Sources::from_release(release).map_err(BackendError::unrunnable)?;
        let services: Vec<_> = rendered.services().cloned().collect();
        let sts_name = sts.metadata.name.clone().unwrap_or_default();
        let mut me = PodIdentity {
            name: format!("{sts_name}-0"),
            namespace: release.request.namespace.clone(),
            ip: "127.0.0.1".into(),
        };
        let labels: BTreeMap<String, String> = sts
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();

        let c = render::chroma_container_of(&pod.containers)
            .ok_or_else(|| invalid(format!("StatefulSet {sts_name} has no container")))?;
        // An nginx sidecar (the chart's TLS proxy) has a stand-in; any other container has none.
        let proxy_c = pod
            .containers
            .iter()
            .find(|o| o.name != c.name && o.image.as_deref().is_some_and(proxy::is_nginx_image));
        let others: Vec<&str> = pod
            .containers
            .iter()
            .filter(|o| {
                o.name != c.name && Some(o.name.as_str()) != proxy_c.map(|p| p.name.as_str())
            })
            .map(|o| o.name.as_str())
            .collect();
        if !others.is_empty() {
            return Err(BackendError::Unsupported {
                backend: "process",
                reason: format!(
                    "it runs only the `{}` container and an nginx sidecar; the pod also has {}",
                    c.name,
                    others.join(", ")
                ),
            });
        }
        // Containers that share the pod's localhost, or a pod that dials the release's other
        // Services by name, get a network namespace of their own, so every address and port is
        // exactly as rendered.
        if proxy_c.is_some() || !views.is_empty() {
            if let Err(e) = podnet::available() {
                return Err(BackendError::Unsupported {
                    backend: "process",
                    reason: format!(
                        "the pod has a sidecar sharing its localhost, which needs a pod network: {}",
                        crate::text::chain(&e)
                    ),
                });
            }
            if life == Start::NewPod || r.net.is_none() {
                r.net = None;
                let net = podnet::PodNet::create(&me.name, &me.namespace, &views)
                    .await
                    .map_err(|e| {
                        BackendError::step(format!("the pod network of {}", me.name), e)
                    })?;
                me.ip = net.pod_ip.to_string();
                r.net = Some(net);
            }
        }
        let pod_ip = r.net.as_ref().map(|n| n.pod_ip);
        if let Some(ip) = pod_ip {
            me.ip = ip.to_string();
        }

        let mut volume_dirs: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut claim_notes = Vec::new();
        for v in pod.volumes.iter().flatten() {
            volume_dirs.insert(
                v.name.clone(),
                pod::materialise_volume(&layout, v, &sources).map_err(BackendError::unrunnable)?,
            );
        }
        for t in &claims {
            // The claim a StatefulSet's pod 0 gets is `<template>-<statefulset>-0`: a renamed
            // StatefulSet gets new, empty claims, as on a cluster.
            let dir = layout.pvc().join(format!("{t}-{sts_name}-0"));
            std::fs::create_dir_all(&dir)
                .map_err(io(format!("creating claim dir {}", dir.display())))?;
            // The provisioner's filesystem is as big as the claim asks, once, for the claim's life.
            if let (Some(q), Ok(())) = (pod::claim_request(sts, t), volume::available())
                && !r.sized.iter().any(|v| v.at == dir)
            {
                let bytes = volume::parse_quantity(&q).map_err(|e| {
                    invalid(format!(
                        "volumeClaimTemplate {t}: resources.requests.storage: {e}"
                    ))
                })?;
                let v = volume::SizedVolume::mount(&dir, bytes)
                    .map_err(|e| BackendError::step(format!("sizing claim {t}"), e))?;
                r.sized.push(v);
            }
            volume_dirs.entry(t.clone()).or_insert(dir);
        }
        for v in &r.sized {
            claim_notes.push(format!(
                "claim {} is a filesystem of {} bytes (tmpfs), as its request asks",
                v.at.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                v.bytes
            ));
        }

        image::populate_image_fs(&layout, &release.version, &r.venv)
            .map_err(|e| BackendError::step("preparing the image filesystem", e))?;
        let mut adjustments = vec![format!(
            "container filesystem re-rooted at {}",
            layout.fs().display()
        )];
        adjustments.extend(claim_notes);
        for m in c.volume_mounts.iter().flatten() {
            mount(&layout, m, &volume_dirs)?;
        }
        // Init containers run once per pod, not per container restart.
        for init in pod
            .init_containers
            .iter()
            .flatten()
            .filter(|_| life == Start::NewPod)
        {
            let env = pod::resolve_env(init, pod, &sources, &services, &me)
                .map_err(BackendError::unrunnable)?;
            run_init(&layout, init, pod, &env, &volume_dirs, &mut adjustments)?;
        }

        // Every Chroma image runs its server as root unless the pod says otherwise
        // (docs/chroma-eras.md#images-and-entrypoints).
        let user = security::run_as(c, pod, (0, 0)).map_err(BackendError::unrunnable)?;
        if (!user.is_root() || user.read_only_root || user.fs_group.is_some())
            && !nix::unistd::geteuid().is_root()
        {
            return Err(BackendError::Unsupported {
                backend: "process",
                reason: format!(
                    "the pod runs as uid {} (fsGroup {:?}, read-only root: {}), which only a harness running as root can set up (run it as root, e.g. `sudo -E`, as CI does)",
                    user.uid, user.fs_group, user.read_only_root
                ),
            });
        }
        grant_volumes(&layout, pod, &volume_dirs, &user)?;
        if !user.is_root() {
            adjustments.push(format!(
                "server runs as uid {} gid {} groups {:?}",
                user.uid, user.gid, user.groups
            ));
        }
        if user.read_only_root {
            if !Path::new(security::BWRAP).is_file() {
                return Err(BackendError::Unsupported { backend: "process", reason: "readOnlyRootFilesystem needs bubblewrap to stand in for the runtime's read-only mount (apt-get install bubblewrap)".into() });
            }
            adjustments.push(
                "root filesystem read-only (bubblewrap): only the pod's volumes are writable"
                    .into(),
            );
        }

        let env =
            pod::resolve_env(c, pod, &sources, &services, &me).map_err(BackendError::unrunnable)?;
        let host_port = match pod_ip {
            Some(_) => None,
            None => Some(free_port().map_err(io("finding a free port"))?),
        };
        let launch_err = |e| match e {
            LaunchError::Unsupported(m) => BackendError::Unsupported {
                backend: "process",
                reason: m,
            },
            LaunchError::Io { .. } => BackendError::step("laying out the container", e),
            e => BackendError::unrunnable(ContainerError::Launch {
                container: "chromadb",
                source: e,
            }),
        };
        let mut launch = image::launch(&release.version, &r.venv, &layout, c, env, host_port)
            .map_err(launch_err)?;
        launch.netns = r.net.as_ref().map(|n| n.name.clone());
        // Where the Service delivers: the server itself, or in a pod network whichever
        // container the Service's targetPort names (the proxy).
        let (reach, target_port, probe) = match (pod_ip, proxy_c) {
            (Some(ip), Some(p)) => {
                let (_, _, target) = pod::service_target(&services, &labels, &pod.containers)
                    .map_err(BackendError::unrunnable)?;
                let probe = readiness(p, target)?;
                (std::net::SocketAddr::from((ip, target)), target, probe)
            }
            _ => {
                check_ports(c, &services, &labels, launch.container_port)?;
                let probe = readiness(c, launch.container_port)?;
                let at = match pod_ip {
                    Some(ip) => std::net::SocketAddr::from((ip, launch.container_port)),
                    None => std::net::SocketAddr::from((
                        [127, 0, 0, 1],
                        host_port.unwrap_or(launch.container_port),
                    )),
                };
                (at, launch.container_port, probe)
            }
        };
        if let Some(net) = &r.net {
            adjustments.push(format!("pod network {} at {}: containers listen as rendered, the Service's traffic lands on {reach}", net.name, net.pod_ip));
        }
        adjustments.extend(launch.adjustments.iter().cloned());

        let log = server_log(&layout);
        append(
            &log,
            &format!(
                "--- harness: start {} of chromadb {}: {} {} ---\n",
                r.starts,
                release.version,
                launch.program.display(),
                launch.args.join(" ")
            ),
        );
        // ConfigMap and Secret volumes are read-only mounts in a pod; emptyDirs and claims are not.
        let is_writable = |name: &String| {
            claims.contains(name)
                || pod.volumes.iter().flatten().any(|v| {
                    &v.name == name
                        && (v.empty_dir.is_some() || v.persistent_volume_claim.is_some())
                })
        };
        let writable: Vec<(&Path, &str)> = c
            .volume_mounts
            .iter()
            .flatten()
            .filter(|m| m.read_only != Some(true) && is_writable(&m.name))
            .filter_map(|m| {
                volume_dirs
                    .get(&m.name)
                    .map(|d| (d.as_path(), m.mount_path.as_str()))
            })
            .collect();
        // The container's limit, as the runtime sets it: a new cgroup for each container start.
        r.memory = None;
        if let Some(q) = c
            .resources
            .as_ref()
            .and_then(|res| res.limits.as_ref())
            .and_then(|l| l.get("memory"))
        {
            let bytes = volume::parse_quantity(&q.0).map_err(|e| {
                invalid(format!(
                    "container `chromadb`: resources.limits.memory: {e}"
                ))
            })?;
            cgroup::available().map_err(|e| BackendError::Unsupported {
                backend: "process",
                reason: format!(
                    "the container has a memory limit ({}), which this node cannot enforce: {e}",
                    q.0
                ),
            })?;
            let name = format!("chromadb-e2e-{}-chromadb-{}", release.id, r.starts);
            let cg = cgroup::MemoryCgroup::create(&name, bytes)
                .map_err(|e| BackendError::step("the container's memory cgroup", e))?;
            adjustments.push(format!("container `chromadb` runs in memory cgroup {} limited to {bytes} bytes (resources.limits.memory {})", cg.path().display(), q.0));
            r.memory = Some(cg);
        }
        let mut server = Server::spawn(
            &launch,
            &log,
            &user,
            &writable,
            &layout.root,
            r.memory.as_ref(),
        )
        .map_err(io(format!("starting {}", launch.program.display())))?;
        if let (Some(p), Some(net)) = (proxy_c, &r.net)
            && r.sidecars.is_empty()
        {
            let proxy_user =
                security::run_as(p, pod, proxy::IMAGE_USER).map_err(BackendError::unrunnable)?;
            let pl =
                proxy::launch(p, pod, &volume_dirs, &proxy_user, &net.name).map_err(launch_err)?;
            adjustments.extend(pl.adjustments.iter().cloned());
            let plog = layout.logs().join(format!("{}.log", p.name));
            append(
                &plog,
                &format!(
                    "--- harness: start of container {}: {} ---\n",
                    p.name,
                    pl.args.join(" ")
                ),
            );
            // nginx reopens /dev/stderr by path: in a pod that is a pipe anyone may open; here it
            // is this log file, which the container's user must then be able to open too.
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&plog, std::fs::Permissions::from_mode(0o666))
                    .map_err(io(format!("chmod {}", plog.display())))?;
            }
            // bubblewrap and setpriv are already in its argv: spawn it as given.
            let as_given = security::RunAs {
                uid: 0,
                gid: 0,
                groups: vec![],
                fs_group: None,
                read_only_root: false,
            };
            r.sidecars.push(
                Server::spawn(&pl, &plog, &as_given, &[], &layout.root, None)
                    .map_err(io(format!("starting container {}", p.name)))?,
            );
        }
        let probe_base = match &probe {
            Some((_, true)) => format!("https://{reach}"),
            _ => format!("http://{reach}"),
        };
        let waited = Instant::now();
        let result = {
            let mut watched: Vec<&mut Server> = vec![&mut server];
            watched.extend(r.sidecars.iter_mut());
            wait_ready(
                &mut watched,
                &probe_base,
                &probe.as_ref().map(|(p, _)| p.clone()),
                self.opts.ready_timeout,
            )
            .await
        };
        r.server = Some(server);
        r.reach = Some((reach, target_port));
        if let Err(e) = result {
            let mut tail = child::tail(&log, 40);
            for sc in &r.sidecars {
                tail.push_str(&format!(
                    "\n--- {} ---\n{}",
                    sc.log.display(),
                    child::tail(&sc.log, 20)
                ));
            }
            return Err(BackendError::NotReady {
                waited: waited.elapsed(),
                detail: format!(
                    "{}\n--- server log tail ---\n{tail}",
                    crate::text::chain(&e)
                ),
            });
        }
        let tls = crate::tls::endpoint(
            rendered,
            &release.request.namespace,
            &sources.secrets,
            reach,
        )
        .map_err(BackendError::unrunnable)?;
        let base_url = match &tls {
            Some((url, _)) => url.clone(),
            None => format!("http://{reach}"),
        };
        r.tls = tls.map(|(_, t)| crate::tls::TlsEndpoint {
            pod_ip: pod_ip.map(Into::into),
            ..t
        });
        Ok((base_url, adjustments))
    }

    /// Stops the server gracefully; dropping `r` then removes its files.
    async fn cleanup(&self, mut r: Running) {
        self.stop_pod(&mut r).await;
        if let Some(c) = r.collector.take() {
            c.stop(self.opts.stop_grace).await;
        }
    }

    /// Runs the release's collector Deployment (rolled out again when its pod template
    /// changed) and returns how the Chroma pod sees its Services.
    async fn ensure_collector(
        &self,
        r: &mut Running,
    ) -> Result<Vec<podnet::ServiceView>, BackendError> {
        let deployments = collector::deployments(&r.release).map_err(BackendError::unrunnable)?;
        if deployments.len() > 1 {
            return Err(BackendError::Unsupported {
                backend: "process",
                reason: format!(
                    "the release renders {} Deployments; only the chart's collector is modelled",
                    deployments.len()
                ),
            });
        }
        let Some(d) = deployments.first() else {
            if let Some(c) = r.collector.take() {
                c.stop(self.opts.stop_grace).await;
            }
            return Ok(Vec::new());
        };
        let template = d
            .spec
            .as_ref()
            .map(|s| serde_json::to_value(&s.template).unwrap_or_default())
            .unwrap_or_default();
        if r.collector.as_ref().is_some_and(|c| c.template != template)
            && let Some(c) = r.collector.take()
        {
            c.stop(self.opts.stop_grace).await;
        }
        if collector::binary().is_none() {
            // Not asked for (no deployment of this run checks metrics): the Chroma pod runs as
            // it always has, its spans to a collector that is not there.
            append(
                &server_log(&r.layout),
                &format!(
                    "--- harness: Deployment {} not run: {} ---\n",
                    d.metadata.name.as_deref().unwrap_or("?"),
                    collector::NOT_BUILT
                ),
            );
            return Ok(Vec::new());
        }
        if r.collector.is_none() {
            let mut notes = Vec::new();
            let pod = collector::start(
                d,
                &r.release,
                &r.layout.root,
                self.opts.ready_timeout,
                &mut notes,
            )
            .await?;
            for n in notes {
                append(&server_log(&r.layout), &format!("--- harness: {n} ---\n"));
            }
            r.collector = Some(pod);
        }
        let spec = d
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .ok_or_else(|| invalid("the collector Deployment has no pod spec"))?;
        collector::services_of(&r.release, d)
            .into_iter()
            .map(|s| collector::service_view(s, spec).map_err(BackendError::unrunnable))
            .collect()
    }
}

/// How a container ended, as the kubelet words it: `OOMKilled` when the OOM killer fired in its
/// memory cgroup (whatever the exit status says), else `Error` for a non-zero exit or a signal
/// (128 + signal), `Completed` for 0.
fn terminated(
    status: Option<std::process::ExitStatus>,
    memory: Option<cgroup::MemoryEvents>,
    limit: Option<u64>,
) -> Terminated {
    use std::os::unix::process::ExitStatusExt;
    let (exit_code, how) = match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => (c, format!("exited with {c}")),
            (None, Some(sig)) => (128 + sig, format!("killed by signal {sig}")),
            _ => (-1, s.to_string()),
        },
        None => (-1, "not running".into()),
    };
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    match memory {
        Some(m) if m.oom_kills > 0 => Terminated {
            reason: "OOMKilled".into(),
            exit_code: if exit_code < 0 { 137 } else { exit_code },
            detail: format!(
                "{how}; the OOM killer ended {} process(es) in its memory cgroup, which peaked at {:.1} MiB of its {:.1} MiB limit",
                m.oom_kills,
                mib(m.peak_bytes),
                mib(limit.unwrap_or_default())
            ),
        },
        _ => Terminated {
            reason: if exit_code == 0 { "Completed" } else { "Error" }.into(),
            exit_code,
            detail: match memory {
                Some(m) => format!(
                    "{how}; no OOM kill in its memory cgroup (peak {:.1} MiB)",
                    mib(m.peak_bytes)
                ),
                None => how,
            },
        },
    }
}

/// Volume permissions as the kubelet leaves them: emptyDirs world-writable, everything handed
/// to `fsGroup` when the pod sets one; and for a non-root server, the harness's directories
/// around the container filesystem made traversable.
fn grant_volumes(
    layout: &Layout,
    pod: &PodSpec,
    volume_dirs: &BTreeMap<String, PathBuf>,
    user: &security::RunAs,
) -> Result<(), BackendError> {
    use std::os::unix::fs::PermissionsExt;
    for v in pod
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.empty_dir.is_some())
    {
        if let Some(dir) = volume_dirs.get(&v.name) {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
                .map_err(io(format!("chmod emptyDir {}", dir.display())))?;
        }
    }
    if let Some(g) = user.fs_group {
        for dir in volume_dirs.values() {
            security::apply_fs_group(dir, g)
                .map_err(io(format!("applying fsGroup {g} to {}", dir.display())))?;
        }
    }
    if !user.is_root() {
        for dir in [
            layout.root.clone(),
            layout.fs(),
            layout.volumes(),
            layout.pvc(),
        ] {
            security::open_path(&dir).map_err(io(format!(
                "opening {} to the server's user",
                dir.display()
            )))?;
        }
    }
    Ok(())
}

fn server_log(layout: &Layout) -> PathBuf {
    layout.logs().join("server.log")
}

fn append(path: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A volumeMount as a symlink from the container path into the volume (or a file of it).
fn mount(
    layout: &Layout,
    m: &VolumeMount,
    volume_dirs: &BTreeMap<String, PathBuf>,
) -> Result<(), BackendError> {
    let dir = volume_dirs
        .get(&m.name)
        .ok_or_else(|| invalid(format!("volumeMount `{}` has no volume", m.name)))?;
    let mut src = dir.clone();
    if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
        src = dir.join(sub);
        if !src.exists() {
            // The kubelet creates a missing subPath as an empty directory.
            std::fs::create_dir_all(&src)
                .map_err(io(format!("creating subPath {}", src.display())))?;
        }
    }
    let at = layout.host_path(&m.mount_path);
    if let Some(parent) = at.parent() {
        std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    }
    if at.is_symlink() || at.is_file() {
        std::fs::remove_file(&at).map_err(io(format!("replacing {}", at.display())))?;
    } else if at.is_dir() {
        std::fs::remove_dir_all(&at).map_err(io(format!("replacing {}", at.display())))?;
    }
    std::os::unix::fs::symlink(&src, &at).map_err(io(format!(
        "mounting {} at {}",
        src.display(),
        at.display()
    )))
}

/// Where the httpd image starts its processes (its WORKDIR): root-owned and, under a read-only
/// root, not writable. htpasswd falls back to the working directory for its temp file, so a
/// writable one here would hide a pod without a writable temp dir.
const HTTPD_WORKDIR: &str = "usr/local/apache2";

/// The one init container the chart renders (basic auth, docs/chroma-eras.md#auth), run as the
/// kubelet would: its command, env, mounts and user, under its read-only root, with Debian's
/// `sh` and `htpasswd` (apache2-utils, the same Apache 2.4 tool as the httpd image's) standing
/// in for the image's. Its own failure (e.g. `htpasswd: could not determine temp dir`) fails
/// the pod's start, naming the container. Anything else cannot be stood in for.
fn run_init(
    layout: &Layout,
    init: &Container,
    pod: &PodSpec,
    env: &[(String, String)],
    volume_dirs: &BTreeMap<String, PathBuf>,
    adjustments: &mut Vec<String>,
) -> Result<(), BackendError> {
    const PROGRAMS: [&str; 2] = ["sh", "htpasswd"];
    if init.name != "htpasswd" {
        return Err(BackendError::Unsupported {
            backend: "process",
            reason: format!(
                "init container `{}` has no stand-in (only the chart's own `htpasswd` is modelled)",
                init.name
            ),
        });
    }
    let argv: Vec<String> = init
        .command
        .iter()
        .flatten()
        .chain(init.args.iter().flatten())
        .cloned()
        .collect();
    match argv.first().map(|p| {
        p.trim_start_matches("/bin/")
            .trim_start_matches("/usr/bin/")
    }) {
        Some(p) if PROGRAMS.contains(&p) => {}
        other => {
            return Err(invalid(format!(
                "init container `htpasswd` runs {other:?}; the httpd image's stand-in provides {PROGRAMS:?}"
            )));
        }
    }
    if let Some(missing) = PROGRAMS
        .iter()
        .find(|p| !Path::new("/usr/bin").join(p).is_file())
    {
        return Err(BackendError::Unsupported {
            backend: "process",
            reason: format!(
                "the httpd image's stand-in needs /usr/bin/{missing} (apt-get install apache2-utils)"
            ),
        });
    }
    if !Path::new(security::BWRAP).is_file() || !nix::unistd::geteuid().is_root() {
        return Err(BackendError::Unsupported { backend: "process", reason: "the htpasswd init container runs in a root of its own, which needs bubblewrap and a harness running as root".into() });
    }
    // The httpd image runs as root unless the pod says otherwise.
    let user = security::run_as(init, pod, (0, 0)).map_err(BackendError::unrunnable)?;
    grant_volumes(layout, pod, volume_dirs, &user)?;
    let mut mounts = Vec::new();
    for m in init.volume_mounts.iter().flatten() {
        let dir = volume_dirs.get(&m.name).ok_or_else(|| {
            invalid(format!(
                "init container `htpasswd`: mount `{}` has no volume",
                m.name
            ))
        })?;
        let host = m
            .sub_path
            .as_deref()
            .filter(|s| !s.is_empty())
            .map_or_else(|| dir.clone(), |sub| dir.join(sub));
        mounts.push(hook::Mount {
            host,
            at: m.mount_path.clone(),
            read_only: m.read_only == Some(true),
        });
    }
    let workdir = layout.root.join(HTTPD_WORKDIR);
    std::fs::create_dir_all(&workdir).map_err(io(format!("creating {}", workdir.display())))?;
    std::fs::set_permissions(
        &workdir,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .map_err(io(format!("chmod {}", workdir.display())))?;
    let mut args = hook::image_root_argv(&mounts, None, &workdir, &user, &argv);
    if user.read_only_root {
        // The working directory is part of the image's root: read-only like the rest of it.
        if let Some(i) = args.windows(3).position(|w| {
            w[0] == "--bind" && Path::new(&w[1]) == workdir && Path::new(&w[2]) == workdir
        }) {
            args[i] = "--ro-bind".into();
        }
    }
    let out = std::process::Command::new(security::BWRAP)
        .args(&args)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/apache2/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .map_err(io("running the htpasswd init container under bubblewrap"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(BackendError::Failed {
            what: "init container `htpasswd`".into(),
            detail: format!(
                "exited with {} (the pod would stay in Init, restarting it): {}",
                out.status,
                stderr.trim()
            ),
        });
    }
    adjustments.push(format!(
        "init container `htpasswd`: Debian's /usr/bin/htpasswd and /usr/bin/sh stand in for image {}, run as uid {} with its mounts{}",
        init.image.as_deref().unwrap_or("?"),
        user.uid,
        if user.read_only_root { " under a read-only root" } else { "" }
    ));
    Ok(())
}

/// The server's listen port, containerPort `http` and the Service's targetPort must agree, or
/// the Service would send traffic nowhere.
fn check_ports(
    c: &Container,
    services: &[k8s_openapi::api::core::v1::Service],
    labels: &BTreeMap<String, String>,
    listen: u16,
) -> Result<(), BackendError> {
    let http = c
        .ports
        .iter()
        .flatten()
        .find(|p| matches!(p.name.as_deref(), Some("http" | "https")))
        .ok_or_else(|| {
            invalid("container `chromadb` declares no port named `http` (or `https` with TLS)")
        })?
        .container_port as u16;
    if http != listen {
        return Err(invalid(format!(
            "the server listens on {listen} but its containerPort `http`/`https` is {http}"
        )));
    }
    let (svc, _, target) = pod::service_target(services, labels, std::slice::from_ref(c))
        .map_err(BackendError::unrunnable)?;
    if target != listen {
        return Err(invalid(format!(
            "the server listens on {listen} but the Service {svc} targets {target}"
        )));
    }
    Ok(())
}

/// The readiness probe's path and whether it speaks HTTPS; a probe on another port than the
/// one the traffic lands on never passes.
fn readiness(c: &Container, listen: u16) -> Result<Option<(String, bool)>, BackendError> {
    let Some(get) = c.readiness_probe.as_ref().and_then(|p| p.http_get.as_ref()) else {
        if c.readiness_probe.as_ref().is_some_and(|p| p.exec.is_some()) {
            return Err(invalid(format!(
                "container `{}` has an exec readinessProbe; the 1.x image has no shell or curl (docs/chroma-eras.md#images-and-entrypoints: httpGet only)",
                c.name
            )));
        }
        return Ok(None);
    };
    let port = crate::workload::resolve_port(std::slice::from_ref(c), &get.port)
        .map_err(|e| BackendError::unrunnable(ContainerError::Probe(e)))?;
    if port != listen {
        return Err(BackendError::NotReady {
            waited: Duration::ZERO,
            detail: format!(
                "the readinessProbe checks port {port} but the server listens on {listen}: the pod would never become ready"
            ),
        });
    }
    let https = get.scheme.as_deref() == Some("HTTPS");
    Ok(Some((
        get.path.clone().unwrap_or_else(|| "/".into()),
        https,
    )))
}

async fn wait_ready(
    servers: &mut [&mut Server],
    base_url: &str,
    probe: &Option<String>,
    timeout: Duration,
) -> Result<(), ReadyError> {
    // The kubelet's HTTPS probe does not verify the certificate.
    let client = crate::tls::client_builder(None)
        .map_err(ReadyError::Client)?
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(ReadyError::Build)?;
    let deadline = Instant::now() + timeout;
    let mut last = LastProbe::None;
    loop {
        for server in servers.iter_mut() {
            if let Some(status) = server.try_exited() {
                return Err(ReadyError::Exited {
                    container: server
                        .log
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    status,
                });
            }
        }
        match probe {
            Some(path) => match client.get(format!("{base_url}{path}")).send().await {
                Ok(resp) if (200..400).contains(&resp.status().as_u16()) => return Ok(()),
                Ok(resp) => {
                    last = LastProbe::Status {
                        path: path.clone(),
                        status: resp.status(),
                    }
                }
                Err(source) => {
                    last = LastProbe::Failed {
                        path: path.clone(),
                        source,
                    }
                }
            },
            None => {
                if tokio::net::TcpStream::connect(
                    base_url
                        .trim_start_matches("http://")
                        .trim_start_matches("https://"),
                )
                .await
                .is_ok()
                {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            return Err(ReadyError::Timeout { timeout, last });
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

impl Backend for ProcessBackend {
    fn name(&self) -> &'static str {
        "process"
    }

    fn whereabouts(&self, deployed: &Deployed) -> Option<String> {
        self.root_of(&deployed.id)
            .map(|r| format!("files and server log under {}", r.display()))
    }

    async fn prepare(&self, version: &ChromaVersion) -> Result<(), BackendError> {
        self.venv(version).await.map(|_| ())
    }

    async fn deploy(&self, release: &Release) -> Result<Deployed, BackendError> {
        let venv = self.venv(&release.version).await?;
        std::fs::create_dir_all(&self.opts.temp_base).map_err(io("creating the temp base"))?;
        let root = tempfile::Builder::new()
            .prefix(&format!("chromadb-e2e-{}-", release.id))
            .tempdir_in(&self.opts.temp_base)
            .map_err(io("creating the deployment's temp dir"))?;
        let layout = Layout {
            root: root.path().to_path_buf(),
        };
        let mut r = Running {
            sized: Vec::new(),
            _root: root,
            release: release.clone(),
            venv,
            layout,
            server: None,
            starts: 0,
            reach: None,
            sidecars: Vec::new(),
            memory: None,
            net: None,
            tls: None,
            orphaned: false,
            collector: None,
        };
        match self.start(&mut r, Start::NewPod).await {
            Ok((base_url, adjustments)) => {
                let secrets = Sources::from_release(release)
                    .map(|s| s.secrets)
                    .unwrap_or_default();
                let tls = r.tls.clone();
                self.put(&release.id, r);
                Ok(Deployed {
                    id: release.id.clone(),
                    base_url,
                    adjustments,
                    secrets,
                    tls,
                })
            }
            Err(e) => {
                self.cleanup(r).await;
                Err(e)
            }
        }
    }

    async fn restart(&self, deployed: &mut Deployed) -> Result<(), BackendError> {
        let mut r = self.take(&deployed.id)?;
        self.stop_pod(&mut r).await;
        let result = self.start(&mut r, Start::NewPod).await;
        deployed.tls = r.tls.clone();
        let out = result.map(|(url, _)| deployed.base_url = url);
        self.put(&deployed.id, r);
        out
    }

    async fn restart_container(&self, deployed: &mut Deployed) -> Result<(), BackendError> {
        let mut r = self.take(&deployed.id)?;
        self.stop(&mut r).await;
        let result = self.start(&mut r, Start::SamePod).await;
        deployed.tls = r.tls.clone();
        let out = result.map(|(url, _)| deployed.base_url = url);
        self.put(&deployed.id, r);
        out
    }

    async fn kill_container(&self, deployed: &mut Deployed) -> Result<String, BackendError> {
        let mut r = self.take(&deployed.id)?;
        let ended = match r.server.take() {
            Some(s) => {
                let status = s.kill().await;
                let ended = status.map_or("unknown".into(), |s| {
                    match std::os::unix::process::ExitStatusExt::signal(&s) {
                        // What the kubelet reports for a container killed by a signal: 128 + signal.
                        Some(sig) => format!("exit code {} (signal {sig})", 128 + sig),
                        None => s.to_string(),
                    }
                });
                append(
                    &server_log(&r.layout),
                    &format!(
                        "--- harness: container killed with SIGKILL ({ended}); the kubelet restarts it in the same pod ---\n"
                    ),
                );
                ended
            }
            None => "not running".into(),
        };
        let result = self.start(&mut r, Start::SamePod).await;
        deployed.tls = r.tls.clone();
        let out = result.map(|(url, _)| deployed.base_url = url);
        self.put(&deployed.id, r);
        out.map(|()| ended)
    }

    fn kills_containers(&self) -> Result<(), String> {
        Ok(())
    }

    fn limits_volume_size(&self) -> Result<(), String> {
        volume::available().map_err(|e| crate::text::chain(&e))
    }

    fn limits_memory(&self) -> Result<(), String> {
        cgroup::available().map_err(|e| crate::text::chain(&e))
    }

    async fn await_container_end(
        &self,
        deployed: &mut Deployed,
        within: Duration,
    ) -> Result<Option<Terminated>, BackendError> {
        let mut r = self.take(&deployed.id)?;
        let deadline = Instant::now() + within;
        let status = loop {
            match r.server.as_mut().map(Server::try_exited) {
                None => break None,
                Some(Some(s)) => break Some(s),
                Some(None) if Instant::now() > deadline => {
                    self.put(&deployed.id, r);
                    return Ok(None);
                }
                Some(None) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        // The rest of its process group goes with it, as the runtime ends a container.
        if let Some(s) = r.server.take() {
            s.kill().await;
        }
        let events = r
            .memory
            .as_ref()
            .map(cgroup::MemoryCgroup::events)
            .transpose();
        let ended = terminated(
            status,
            events.as_ref().ok().copied().flatten(),
            r.memory.as_ref().map(cgroup::MemoryCgroup::limit),
        );
        let ended = match events {
            Ok(_) => ended,
            Err(e) => Terminated {
                detail: format!("{}; the memory cgroup could not be read: {e}", ended.detail),
                ..ended
            },
        };
        append(
            &server_log(&r.layout),
            &format!(
                "--- harness: container ended: {ended}; the kubelet restarts it in the same pod ---\n"
            ),
        );
        let result = self.start(&mut r, Start::SamePod).await;
        deployed.tls = r.tls.clone();
        let out = result.map(|(url, _)| deployed.base_url = url);
        self.put(&deployed.id, r);
        out.map(|()| Some(ended))
    }

    async fn orphan_statefulset(&self, deployed: &mut Deployed) -> Result<(), BackendError> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let r = running
            .get_mut(&deployed.id)
            .ok_or_else(|| BackendError::Failed {
                what: format!("deployment {}", deployed.id),
                detail: "is not running on this backend".into(),
            })?;
        r.orphaned = true;
        Ok(())
    }

    async fn reinstall(&self, deployed: &mut Deployed, next: &Release) -> Result<(), BackendError> {
        let venv = self.venv(&next.version).await?;
        let mut r = self.take(&deployed.id)?;
        self.stop(&mut r).await;
        // helm uninstall: the StatefulSet's claims go when its retention policy says Delete;
        // the chart's other claims go unless they carry `helm.sh/resource-policy: keep`.
        let mut gone = Vec::new();
        if let Some(sts) = r.release.rendered.statefulset() {
            let sts_name = sts.metadata.name.clone().unwrap_or_default();
            let delete = sts
                .spec
                .as_ref()
                .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref())
                .and_then(|p| p.when_deleted.as_deref())
                == Some("Delete");
            if delete {
                gone.extend(
                    pod::claim_templates(sts)
                        .into_iter()
                        .map(|t| format!("{t}-{sts_name}-0")),
                );
            }
        }
        for pvc in r.release.rendered.claims() {
            let kept = pvc
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("helm.sh/resource-policy"))
                .is_some_and(|p| p == "keep");
            if !kept {
                gone.extend(pvc.metadata.name.clone());
            }
        }
        for claim in &gone {
            let dir = r.layout.pvc().join(claim);
            if let Some(i) = r.sized.iter().position(|v| v.at == dir) {
                let mut v = r.sized.remove(i);
                v.unmount()
                    .map_err(|e| BackendError::step(format!("deleting claim {claim}"), e))?;
            }
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(io(format!("deleting claim {claim}")))?;
            }
        }
        r.release = next.clone();
        r.venv = venv;
        r.orphaned = false;
        let started = self.start(&mut r, Start::NewPod).await;
        let reach = r.reach;
        let claims = r.layout.pvc();
        self.put(&deployed.id, r);
        let (url, adjustments) = started?;
        deployed.base_url = url;
        deployed.adjustments = adjustments;
        deployed.secrets = Sources::from_release(next)
            .map(|s| s.secrets)
            .unwrap_or_default();
        // helm install runs the post-install hooks once the objects exist; one that fails
        // fails the install.
        let mut hooks: Vec<&k8s_openapi::api::batch::v1::Job> = next
            .rendered
            .jobs()
            .filter(|j| hook_events(j).iter().any(|e| e == "post-install"))
            .collect();
        hooks.sort_by_key(|j| render::hooks::weight(&j.metadata));
        if hooks.is_empty() {
            return Ok(());
        }
        if let Err(e) = podnet::available() {
            return Err(BackendError::Unsupported {
                backend: "process",
                reason: format!(
                    "the release's post-install hooks: {}",
                    crate::text::chain(&e)
                ),
            });
        }
        let (server, container_port) = reach.ok_or_else(|| BackendError::Failed {
            what: format!("deployment {}", deployed.id),
            detail: "has no running server".into(),
        })?;
        let env = PodEnv::new(next, server, container_port, claims)?;
        for job in hooks {
            let h =
                hook::job_pod(job, Duration::from_secs(900)).map_err(BackendError::unrunnable)?;
            let mut log = String::new();
            match run_pod(&env, &h, &mut log, &self.opts.temp_base).await? {
                None => {}
                Some(HookRun::Unsupported { reason }) => {
                    return Err(BackendError::Unsupported {
                        backend: "process",
                        reason,
                    });
                }
                Some(HookRun::Failed { reason, log }) => {
                    return Err(BackendError::Failed {
                        what: format!("helm install: post-install hook {}", h.object),
                        detail: format!(
                            "{reason}\n--- hook log ---\n{}",
                            crate::text::tail(&log, 20)
                        ),
                    });
                }
                Some(HookRun::Succeeded { .. }) => {}
            }
        }
        Ok(())
    }

    async fn upgrade(&self, deployed: &mut Deployed, next: &Release) -> Result<(), BackendError> {
        let venv = self.venv(&next.version).await?;
        {
            let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            let r = running
                .get(&deployed.id)
                .ok_or_else(|| BackendError::Failed {
                    what: format!("deployment {}", deployed.id),
                    detail: "is not running on this backend".into(),
                })?;
            if let (Some(old), Some(new), false) = (
                r.release.rendered.statefulset(),
                next.rendered.statefulset(),
                r.orphaned,
            ) {
                // What the API server refuses `helm upgrade` for, before anything stops.
                pod::statefulset_update(old, new).map_err(BackendError::unrunnable)?;
            }
        }
        let mut r = self.take(&deployed.id)?;
        self.stop_pod(&mut r).await;
        r.release = next.clone();
        r.venv = venv;
        r.orphaned = false;
        let result = self.start(&mut r, Start::NewPod).await;
        let out = result.map(|(url, adjustments)| {
            deployed.base_url = url;
            deployed.adjustments = adjustments;
            deployed.tls = r.tls.clone();
            deployed.secrets = Sources::from_release(next)
                .map(|s| s.secrets)
                .unwrap_or_default();
        });
        self.put(&deployed.id, r);
        out
    }

    async fn logs(&self, deployed: &Deployed, tail: usize) -> String {
        match self.root_of(&deployed.id) {
            Some(root) => child::tail(&server_log(&Layout { root }), tail),
            None => String::new(),
        }
    }

    async fn teardown(&self, deployed: Deployed) -> Result<(), BackendError> {
        if let Ok(r) = self.take(&deployed.id) {
            self.cleanup(r).await;
        }
        Ok(())
    }

    async fn chart_test(&self, deployed: &Deployed) -> Result<HookRun, BackendError> {
        let (release, reach) = {
            let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            let r = running
                .get(&deployed.id)
                .ok_or_else(|| BackendError::Failed {
                    what: format!("deployment {}", deployed.id),
                    detail: "is not running on this backend".into(),
                })?;
            (r.release.clone(), r.reach)
        };
        let (server, container_port) = reach.ok_or_else(|| BackendError::Failed {
            what: format!("deployment {}", deployed.id),
            detail: "has no running server".into(),
        })?;
        let claims = self
            .root_of(&deployed.id)
            .map(|r| Layout { root: r }.pvc())
            .unwrap_or_default();
        run_test_hooks(
            &release,
            server,
            container_port,
            claims,
            &self.opts.temp_base,
        )
        .await
    }

    async fn run_job(
        &self,
        deployed: &Deployed,
        job: &k8s_openapi::api::batch::v1::Job,
    ) -> Result<HookRun, BackendError> {
        let (release, reach, claims) = {
            let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            let r = running
                .get(&deployed.id)
                .ok_or_else(|| BackendError::Failed {
                    what: format!("deployment {}", deployed.id),
                    detail: "is not running on this backend".into(),
                })?;
            (r.release.clone(), r.reach, r.layout.pvc())
        };
        let (server, container_port) = reach.ok_or_else(|| BackendError::Failed {
            what: format!("deployment {}", deployed.id),
            detail: "has no running server".into(),
        })?;
        if let Err(e) = podnet::available() {
            return Ok(HookRun::Unsupported {
                reason: crate::text::chain(&e),
            });
        }
        let h = hook::job_pod(job, Duration::from_secs(900)).map_err(BackendError::unrunnable)?;
        let env = PodEnv::new(&release, server, container_port, claims)?;
        let mut log = String::new();
        Ok(run_pod(&env, &h, &mut log, &self.opts.temp_base)
            .await?
            .unwrap_or(HookRun::Succeeded { log }))
    }

    /// The run held its pod's process: it is spawned `kill_on_drop`, so dropping the run's
    /// future SIGKILLed it, and there is no Job controller here to try again.
    async fn kill_job(
        &self,
        _deployed: &Deployed,
        _job: &k8s_openapi::api::batch::v1::Job,
    ) -> Result<(), BackendError> {
        Ok(())
    }

    /// The kubelet's update of a Secret volume: every volume of the pod that mounts the Secret
    /// gets the new files in place (each written aside and renamed over, so a reader sees the
    /// old file or the new one, never half of one).
    async fn update_secret(
        &self,
        deployed: &Deployed,
        name: &str,
        data: &BTreeMap<String, String>,
    ) -> Result<(), BackendError> {
        let (layout, pod) = {
            let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            let r = running
                .get(&deployed.id)
                .ok_or_else(|| BackendError::Failed {
                    what: format!("deployment {}", deployed.id),
                    detail: "is not running on this backend".into(),
                })?;
            let sts = r
                .release
                .rendered
                .statefulset()
                .ok_or_else(|| invalid("the chart rendered no StatefulSet"))?;
            (
                r.layout.clone(),
                pod::pod_spec(sts)
                    .map_err(BackendError::unrunnable)?
                    .clone(),
            )
        };
        let mut touched = 0;
        for v in pod.volumes.iter().flatten() {
            let Some(s) = v
                .secret
                .as_ref()
                .filter(|s| s.secret_name.as_deref() == Some(name))
            else {
                continue;
            };
            let dir = layout.volumes().join(&v.name);
            let files: Vec<(String, String)> = match &s.items {
                Some(items) => items
                    .iter()
                    .map(|i| (i.key.clone(), i.path.clone()))
                    .collect(),
                None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
            };
            for (key, path) in files {
                let content = data.get(&key).ok_or_else(|| {
                    invalid(format!(
                        "volume `{}`: item key `{key}` is not in Secret `{name}`",
                        v.name
                    ))
                })?;
                let target = dir.join(&path);
                let aside = dir.join(format!(".{path}.new"));
                std::fs::write(&aside, content)
                    .map_err(io(format!("writing {}", aside.display())))?;
                std::fs::rename(&aside, &target)
                    .map_err(io(format!("replacing {}", target.display())))?;
                touched += 1;
            }
        }
        if touched == 0 {
            return Err(invalid(format!(
                "no volume of the pod mounts Secret `{name}`"
            )));
        }
        Ok(())
    }

    fn updates_secrets(&self) -> Result<(), String> {
        Ok(())
    }

    fn secret_sync_time(&self) -> Duration {
        // The files change at once; the reader (nginx per handshake, uvicorn-tls.py every 2s)
        // needs a moment.
        Duration::from_secs(10)
    }

    fn runs_lookup(&self) -> Result<(), String> {
        Err("the process backend renders with `helm template`, which has no API server for `lookup`; a generated Secret can only be carried over by emulation".into())
    }

    fn pod_ip(&self, deployed: &Deployed, deployment: &str) -> Result<std::net::IpAddr, String> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let r = running
            .get(&deployed.id)
            .ok_or_else(|| format!("deployment {} is not running on this backend", deployed.id))?;
        match &r.collector {
            Some(c) if c.deployment == deployment => Ok(c.ip()),
            _ if collector::binary().is_none() => Err(format!(
                "Deployment {deployment} is not run: {}",
                collector::NOT_BUILT
            )),
            _ => Err(format!(
                "no pod of Deployment {deployment} runs for {}",
                deployed.id
            )),
        }
    }

    fn reaches_harness_loopback(&self, deployed: &Deployed) -> Result<(), String> {
        // The server process shares the harness's network namespace, unless its pod has a
        // sidecar (the 1.x TLS proxy) and so a network of its own (hook pods always do).
        let own_net = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&deployed.id)
            .is_some_and(|r| r.net.is_some());
        if own_net {
            return Err("the pod has a sidecar (the TLS proxy) sharing its localhost, so it runs in a network namespace of its own, whose 127.0.0.1 is not the harness's: the harness's OTLP receiver is out of its reach".into());
        }
        Ok(())
    }
}

/// The Services as a hook pod sees them: each one selecting the server pod, with the ports
/// that land on the server's container port relayed to where it really listens.
fn service_views(
    release: &Release,
    server: std::net::SocketAddr,
    container_port: u16,
) -> Result<Vec<podnet::ServiceView>, pod::PodError> {
    let sts = release
        .rendered
        .statefulset()
        .ok_or(pod::PodError::NoStatefulSet)?;
    let pod = pod::pod_spec(sts)?;
    let labels: BTreeMap<String, String> = sts
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut views = Vec::new();
    for s in release.rendered.services() {
        let spec = s.spec.clone().unwrap_or_default();
        let selector = spec.selector.clone().unwrap_or_default();
        if selector.is_empty() || !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            continue;
        }
        let name = s.metadata.name.clone().unwrap_or_default();
        let ports = if spec.cluster_ip.as_deref() == Some("None") {
            // Headless: DNS answers the pod itself, so clients dial the container port.
            vec![(container_port, server)]
        } else {
            let mut ports = Vec::new();
            for p in spec.ports.iter().flatten() {
                let target = p.target_port.clone().unwrap_or(
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p.port),
                );
                if crate::workload::resolve_port(&pod.containers, &target).ok()
                    == Some(container_port)
                {
                    ports.push((
                        u16::try_from(p.port).map_err(|_| {
                            crate::workload::PortError::ServicePort {
                                service: name.clone(),
                                port: p.port,
                            }
                        })?,
                        server,
                    ));
                }
            }
            ports
        };
        views.push(podnet::ServiceView { name, ports });
    }
    Ok(views)
}

/// What a Job's pod sees of the release: its Secrets and ConfigMaps, its Services (relayed to
/// the running server) and the release's claims.
struct PodEnv {
    sources: Sources,
    services: Vec<k8s_openapi::api::core::v1::Service>,
    views: Vec<podnet::ServiceView>,
    namespace: String,
    /// Where the release's claims live: a claim of the same name is the same directory for
    /// the server and every Job, so a backup written by one Job is there for the next.
    claims: PathBuf,
}

impl PodEnv {
    fn new(
        release: &Release,
        server: std::net::SocketAddr,
        container_port: u16,
        claims: PathBuf,
    ) -> Result<PodEnv, BackendError> {
        Ok(PodEnv {
            sources: Sources::from_release(release).map_err(BackendError::unrunnable)?,
            services: release.rendered.services().cloned().collect(),
            views: service_views(release, server, container_port)
                .map_err(BackendError::unrunnable)?,
            namespace: release.request.namespace.clone(),
            claims,
        })
    }
}

/// Runs every test hook of the release, as the kubelet would run the hook Jobs' pods.
async fn run_test_hooks(
    release: &Release,
    server: std::net::SocketAddr,
    container_port: u16,
    claims: PathBuf,
    temp_base: &Path,
) -> Result<HookRun, BackendError> {
    let hooks = hook::test_hooks(&release.rendered).map_err(BackendError::unrunnable)?;
    if hooks.is_empty() {
        return Ok(HookRun::Failed {
            reason: "the chart renders no `helm test` hook".into(),
            log: String::new(),
        });
    }
    if let Err(e) = podnet::available() {
        return Ok(HookRun::Unsupported {
            reason: crate::text::chain(&e),
        });
    }
    let env = PodEnv::new(release, server, container_port, claims)?;
    let mut log = String::new();
    for h in &hooks {
        if let Some(end) = run_pod(&env, h, &mut log, temp_base).await? {
            return Ok(end);
        }
    }
    Ok(HookRun::Succeeded { log })
}

/// Runs one Job's pod until it succeeds or its attempts or deadline run out. `None` when it
/// succeeded (its output appended to `log`); otherwise how the Job ended.
async fn run_pod(
    env: &PodEnv,
    h: &hook::TestHook,
    log: &mut String,
    temp_base: &Path,
) -> Result<Option<HookRun>, BackendError> {
    if h.spec.containers.len() != 1
        || h.spec
            .init_containers
            .as_ref()
            .is_some_and(|i| !i.is_empty())
    {
        return Ok(Some(HookRun::Unsupported {
            reason: format!(
                "{}: only single-container pods without init containers are modelled",
                h.object
            ),
        }));
    }
    let c = &h.spec.containers[0];
    let image = c.image.clone().unwrap_or_default();
    let model = match hook::image_model(&image) {
        Ok(m) => m,
        Err(e) => {
            return Ok(Some(HookRun::Unsupported {
                reason: format!("{}: {}", h.object, crate::text::chain(&e)),
            }));
        }
    };
    let failed = |reason: String, log: &mut String| {
        Ok(Some(HookRun::Failed {
            reason: format!("{}: {reason}", h.object),
            log: std::mem::take(log),
        }))
    };
    // A pod that never starts is reported with its error's whole text.
    let argv = match hook::argv(c, &model) {
        Ok(a) => a,
        Err(e) => return failed(crate::text::chain(&e), log),
    };
    // The same rules as the server's: container securityContext over the pod's over the image's.
    let user = match security::run_as(c, &h.spec, model.user) {
        Ok(u) => u,
        Err(e) => return failed(crate::text::chain(&e), log),
    };
    // An image that is one binary, or a pod with volumes, gets a root of its own; the curl
    // image's scripts run on the host's filesystem with only its programs on PATH.
    let own_root = model.tool.is_some() || h.spec.volumes.as_ref().is_some_and(|v| !v.is_empty());
    if own_root && !Path::new(security::BWRAP).is_file() {
        return Ok(Some(HookRun::Unsupported {
            reason: format!(
                "{}: its own root filesystem needs bubblewrap (apt-get install bubblewrap)",
                h.object
            ),
        }));
    }
    let groups = if user.groups.is_empty() {
        "--clear-groups".to_string()
    } else {
        format!(
            "--groups={}",
            user.groups
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    let mut last = String::new();
    for attempt in 1..=h.attempts {
        let pod_name = format!("{}-{}", h.name, crate::random::dns_suffix(5));
        log.push_str(&format!(
            "--- {} pod {pod_name} (attempt {attempt} of {}) ---\n",
            h.object, h.attempts
        ));
        let net = podnet::PodNet::create(&pod_name, &env.namespace, &env.views)
            .await
            .map_err(|e| BackendError::step(format!("the pod network of {pod_name}"), e))?;
        let me = PodIdentity {
            name: pod_name.clone(),
            namespace: env.namespace.clone(),
            ip: net.pod_ip.to_string(),
        };
        let vars = match pod::resolve_env(c, &h.spec, &env.sources, &env.services, &me) {
            Ok(e) => e,
            // The kubelet's CreateContainerConfigError: the pod never starts.
            Err(e) => return failed(crate::text::chain(&e), log),
        };
        // One scratch dir per pod: its home and its emptyDirs, fresh on every attempt.
        let scratch = tempfile::Builder::new()
            .prefix("chromadb-e2e-pod-")
            .tempdir_in(temp_base)
            .map_err(io("creating the pod's directory"))?;
        let home = scratch.path().join("home");
        std::fs::create_dir_all(&home).map_err(io("creating the pod's home"))?;
        let bin = hook::image_bin(&home, &model)
            .map_err(|e| BackendError::step("the image stand-in", e))?;
        prepare_home(&home, user.uid, user.gid)?;
        let mounts = match pod_mounts(env, h, c, scratch.path(), &user) {
            Ok(m) => m,
            Err(e) => return failed(crate::text::chain(&e), log),
        };
        let mut cmd = if own_root {
            let tool = model.tool.as_deref().map(|t| {
                (
                    t,
                    model
                        .entrypoint
                        .first()
                        .map(String::as_str)
                        .unwrap_or(hook::BACKUP_TOOL_PATH),
                )
            });
            net.exec(
                security::BWRAP,
                &hook::image_root_argv(&mounts, tool, &home, &user, &argv),
            )
        } else {
            let setpriv = [
                format!("--reuid={}", user.uid),
                format!("--regid={}", user.gid),
                groups.clone(),
                "--".into(),
            ];
            net.exec(
                "/usr/bin/setpriv",
                &setpriv
                    .into_iter()
                    .chain(argv.iter().cloned())
                    .collect::<Vec<_>>(),
            )
        };
        cmd.env_clear()
            .env("PATH", &bin)
            .env("HOME", &home)
            .env("HOSTNAME", &pod_name)
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .current_dir(&home)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = match tokio::time::timeout(h.deadline, cmd.output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => {
                return Err(BackendError::Io {
                    context: format!("running {}", h.object),
                    source: e,
                });
            }
            Err(_) => {
                last = format!("{} exceeded its deadline of {:?}", h.object, h.deadline);
                log.push_str(&format!("{last}\n"));
                break;
            }
        };
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        log.push_str(&String::from_utf8_lossy(&out.stdout));
        log.push_str(&stderr);
        log.push_str(&format!("--- exit: {} ---\n", out.status));
        if out.status.success() {
            return Ok(None);
        }
        // terminationMessagePolicy FallbackToLogsOnError: the log's last line is the pod's message.
        let message = if c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError") {
            stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| format!(": {}", l.trim()))
                .unwrap_or_default()
        } else {
            String::new()
        };
        last = format!(
            "{} pod {pod_name} exited with {}{message}",
            h.object, out.status
        );
    }
    Ok(Some(HookRun::Failed {
        reason: format!("{last} (after {} attempt(s))", h.attempts),
        log: std::mem::take(log),
    }))
}

/// The container's volume mounts on this host: a claim is the release's claim directory
/// (kept between pods), an emptyDir is fresh in the pod's scratch dir, a Secret or ConfigMap
/// is written out; `fsGroup` and emptyDir permissions applied as the kubelet would.
fn pod_mounts(
    env: &PodEnv,
    h: &hook::TestHook,
    c: &Container,
    scratch: &Path,
    user: &security::RunAs,
) -> Result<Vec<hook::Mount>, pod::PodError> {
    use std::os::unix::fs::PermissionsExt;
    let layout = Layout {
        root: scratch.to_path_buf(),
    };
    let mut dirs: BTreeMap<String, PathBuf> = BTreeMap::new();
    for v in h.spec.volumes.iter().flatten() {
        let dir = match &v.persistent_volume_claim {
            Some(pvc) => {
                let d = env.claims.join(&pvc.claim_name);
                std::fs::create_dir_all(&d)
                    .map_err(pod::io(format!("creating claim {}", pvc.claim_name)))?;
                d
            }
            None => pod::materialise_volume(&layout, v, &env.sources)?,
        };
        if v.empty_dir.is_some() {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
                .map_err(pod::io(format!("chmod emptyDir {}", dir.display())))?;
        }
        if let Some(g) = user.fs_group {
            security::apply_fs_group(&dir, g).map_err(pod::io(format!(
                "applying fsGroup {g} to volume {}",
                v.name
            )))?;
        }
        dirs.insert(v.name.clone(), dir);
    }
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let dir = dirs
            .get(&m.name)
            .ok_or_else(|| pod::PodError::UndeclaredMount {
                container: c.name.clone(),
                volume: m.name.clone(),
            })?;
        let host = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => dir.join(sub),
            None => dir.clone(),
        };
        out.push(hook::Mount {
            host,
            at: m.mount_path.clone(),
            read_only: m.read_only == Some(true),
        });
    }
    Ok(out)
}

/// The hook events a Job is annotated with (`helm.sh/hook`, comma-separated).
fn hook_events(job: &k8s_openapi::api::batch::v1::Job) -> Vec<String> {
    render::hooks::events(&job.metadata)
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// The hook container's home and working directory belong to the user it runs as.
fn prepare_home(dir: &Path, uid: u32, gid: u32) -> Result<(), BackendError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(io(format!("chmod {}", dir.display())))?;
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
        .map_err(io(format!("chown {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case::an_oom_kill_is_oomkilled_whatever_the_status(9, 1, "OOMKilled", 137)]
    #[case::a_sigkill_without_an_oom_kill_is_an_error(9, 0, "Error", 137)]
    #[case::a_signal_is_128_plus_it(15, 0, "Error", 143)]
    fn a_containers_end_in_the_kubelets_words(
        #[case] signal: i32,
        #[case] oom_kills: u64,
        #[case] reason: &str,
        #[case] code: i32,
    ) {
        use std::os::unix::process::ExitStatusExt;
        let m = cgroup::MemoryEvents {
            oom_kills,
            limit_hits: 0,
            peak_bytes: 300 << 20,
        };
        let t = terminated(
            Some(std::process::ExitStatus::from_raw(signal)),
            Some(m),
            Some(300 << 20),
        );
        assert_eq!((t.reason.as_str(), t.exit_code), (reason, code), "{t}");
        assert!(t.detail.contains("300.0 MiB"), "{t}");
    }

    #[test]
    fn an_exit_code_is_an_error_or_completed() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            terminated(Some(std::process::ExitStatus::from_raw(3 << 8)), None, None).reason,
            "Error"
        );
        assert_eq!(
            terminated(Some(std::process::ExitStatus::from_raw(0)), None, None).reason,
            "Completed"
        );
    }

    fn volume_mount(name: &str, path: &str) -> VolumeMount {
        serde_json::from_value(serde_json::json!({"name": name, "mountPath": path})).unwrap()
    }

    /// The older chart mounts its htpasswd volume at `/chroma/auth/`: a trailing slash under a
    /// directory the image does not have. A container runtime creates the mount point.
    #[test]
    fn a_mount_point_with_a_trailing_slash_under_missing_parents_is_created() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout {
            root: root.path().to_path_buf(),
        };
        let vol = root.path().join("volumes/htpasswd-volume");
        std::fs::create_dir_all(&vol).unwrap();
        std::fs::write(vol.join("htpasswd"), "u:x\n").unwrap();
        let dirs = BTreeMap::from([("htpasswd-volume".to_string(), vol)]);
        mount(
            &layout,
            &volume_mount("htpasswd-volume", "/chroma/auth/"),
            &dirs,
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(layout.fs().join("chroma/auth/htpasswd")).unwrap(),
            "u:x\n"
        );
    }

    /// A probe that finds nothing listening times out naming the refused connection, which
    /// only the HTTP client's sources say (its own message is the URL).
    #[tokio::test]
    async fn a_readiness_timeout_keeps_why_the_last_probe_failed() {
        let port = free_port().unwrap();
        let err = wait_ready(
            &mut [],
            &format!("http://127.0.0.1:{port}"),
            &Some("/healthz".into()),
            Duration::ZERO,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, ReadyError::Timeout { last: LastProbe::Failed { path, .. }, .. } if path == "/healthz"),
            "{err:?}"
        );
        let text = crate::text::chain(&err);
        assert!(
            text.contains("readinessProbe GET /healthz") && text.contains("refused"),
            "{text}"
        );
    }

    #[test]
    fn a_mount_of_an_undeclared_volume_is_invalid() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout {
            root: root.path().to_path_buf(),
        };
        let err = mount(&layout, &volume_mount("nowhere", "/data"), &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("`nowhere`"), "{err}");
    }
}
