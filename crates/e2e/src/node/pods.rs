//! The pods bound to this node, run as the kubelet runs them: one task per pod that wires its
//! network, lays out its volumes, runs init containers in order, then its containers with
//! their probes and restart policy, and reports status to the API server after every change;
//! on deletion it stops the containers within the grace period and removes the pod object.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Probe, Secret};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::env::{self, Lookups};
use super::image::{self, NodeImage};
use super::net::PodNetwork;
use super::sandbox::{ContainerPlan, Mount, Running};
use super::volumes::{Sources, VolumeError};
use crate::process::security::{self, RunAs};
use crate::venv::VenvCache;
use render::quantity::parse_quantity;

/// What every pod task shares.
pub struct NodeContext {
    pub client: kube::Client,
    pub node_name: String,
    pub host_ip: String,
    pub net: PodNetwork,
    pub venvs: VenvCache,
    pub pins: BTreeMap<render::ChromaVersion, Vec<String>>,
    /// Per-pod folders (volumes, /etc files, logs).
    pub root: PathBuf,
    pub cluster_dns: String,
    pub cluster_domain: String,
    pub kubernetes_service: (String, u16),
    pub collector: PathBuf,
}

fn now() -> String {
    Timestamp::now().to_string()
}

fn ts(t: SystemTime) -> String {
    Timestamp::try_from(t)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now())
}

/// The state of one container as the kubelet reports it.
#[derive(Debug, Clone, Default)]
pub struct ContainerState {
    pub name: String,
    pub image: String,
    pub restarts: i32,
    pub ready: bool,
    pub started: bool,
    /// `running`, `waiting` or `terminated` with their fields.
    pub state: Value,
    pub last: Value,
}

impl ContainerState {
    fn waiting(name: &str, image: &str, reason: &str, message: Option<String>) -> ContainerState {
        let mut w = json!({"reason": reason});
        if let Some(m) = message {
            w["message"] = json!(m);
        }
        ContainerState {
            name: name.into(),
            image: image.into(),
            state: json!({"waiting": w}),
            ..Default::default()
        }
    }

    fn to_json(&self, pod_uid: &str) -> Value {
        let mut v = json!({
            "name": self.name, "image": self.image, "imageID": format!("process-node://{}", self.image),
            "containerID": format!("process://{pod_uid}/{}/{}", self.name, self.restarts),
            "ready": self.ready, "started": self.started, "restartCount": self.restarts, "state": self.state,
        });
        if !self.last.is_null() {
            v["lastState"] = self.last.clone();
        }
        v
    }
}

/// The `terminated` state of a container that exited with `code` (or a signal).
pub fn terminated(
    code: i32,
    signal: Option<i32>,
    started: SystemTime,
    message: Option<String>,
    oom: bool,
) -> Value {
    let exit = signal.map(|s| 128 + s).unwrap_or(code);
    let reason = if oom {
        "OOMKilled"
    } else if exit == 0 {
        "Completed"
    } else {
        "Error"
    };
    let mut t =
        json!({"exitCode": exit, "reason": reason, "startedAt": ts(started), "finishedAt": now()});
    if let Some(s) = signal {
        t["signal"] = json!(s);
    }
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        t["message"] = json!(m);
    }
    json!({"terminated": t})
}

/// The termination message as the kubelet reads it: the file at `terminationMessagePath`
/// (4096 bytes at most), else with `FallbackToLogsOnError` and a failure the log's last
/// 80 lines (2048 bytes at most).
pub fn termination_message(
    c: &Container,
    file: Option<&Path>,
    log: &Path,
    failed: bool,
) -> Option<String> {
    if let Some(f) = file
        && let Ok(b) = std::fs::read(f)
        && !b.is_empty()
    {
        let b = &b[..b.len().min(4096)];
        return Some(String::from_utf8_lossy(b).into_owned());
    }
    if failed && c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError") {
        let tail = crate::process::child::tail(log, 80);
        let start = tail.len().saturating_sub(2048);
        let start = (start..=tail.len())
            .find(|i| tail.is_char_boundary(*i))
            .unwrap_or(tail.len());
        return Some(tail[start..].to_string());
    }
    None
}

/// The pod's conditions from its containers' states.
pub fn conditions(initialized: bool, containers: &[ContainerState], scheduled: bool) -> Value {
    let ready = initialized && !containers.is_empty() && containers.iter().all(|c| c.ready);
    let cond = |t: &str, ok: bool, reason: Option<&str>| {
        let mut c = json!({"type": t, "status": if ok { "True" } else { "False" }, "lastTransitionTime": now()});
        if let (false, Some(r)) = (ok, reason) {
            c["reason"] = json!(r);
        }
        c
    };
    json!([
        cond("PodReadyToStartContainers", true, None),
        cond("Initialized", initialized, Some("ContainersNotInitialized")),
        cond("Ready", ready, Some("ContainersNotReady")),
        cond("ContainersReady", ready, Some("ContainersNotReady")),
        cond("PodScheduled", scheduled, None),
    ])
}

/// Where the probe is sent: the port by number or by the container's port name.
pub fn probe_port(c: &Container, port: &IntOrString) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => {
            u16::try_from(*n).map_err(|_| format!("probe port {n} is not a port"))
        }
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| {
                format!(
                    "probe port {name} is not a named port of container {}",
                    c.name
                )
            }),
    }
}

/// One probe attempt. `Ok(())` passes; `Err(why)` fails.
async fn probe_once(c: &Container, p: &Probe, pod_ip: &str) -> Result<(), String> {
    let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(h) = &p.http_get {
        let port = probe_port(c, &h.port)?;
        let scheme = h.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
        let host = h.host.clone().unwrap_or_else(|| pod_ip.to_string());
        let url = format!(
            "{scheme}://{host}:{port}{}",
            h.path.as_deref().unwrap_or("/")
        );
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .danger_accept_invalid_certs(true)
            .build()
            .map_err(|e| {
                format!(
                    "building the probe's HTTP client: {}",
                    crate::text::chain(&e)
                )
            })?;
        let mut req = client.get(&url);
        for hd in h.http_headers.iter().flatten() {
            req = req.header(&hd.name, &hd.value);
        }
        let resp = req.send().await.map_err(|e| format!("Get {url}: {e}"))?;
        let code = resp.status().as_u16();
        return if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        };
    }
    if let Some(t) = &p.tcp_socket {
        let port = probe_port(c, &t.port)?;
        let host = t.host.clone().unwrap_or_else(|| pod_ip.to_string());
        return match tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {host}:{port}: {e}")),
            Err(_) => Err(format!("dial tcp {host}:{port}: timeout")),
        };
    }
    Err("only httpGet and tcpSocket probes are run by this node".into())
}

/// A probe's rhythm and its current run of results.
struct Prober {
    probe: Probe,
    next: tokio::time::Instant,
    successes: i32,
    failures: i32,
    passing: bool,
}

impl Prober {
    fn new(p: &Probe, since: tokio::time::Instant, passing: bool) -> Prober {
        Prober {
            probe: p.clone(),
            next: since + Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64),
            successes: 0,
            failures: 0,
            passing,
        }
    }

    /// Runs the probe when due; returns the new passing state when it changed.
    async fn tick(&mut self, c: &Container, pod_ip: &str) -> Option<(bool, Option<String>)> {
        let now = tokio::time::Instant::now();
        if now < self.next {
            return None;
        }
        self.next =
            now + Duration::from_secs(self.probe.period_seconds.unwrap_or(10).max(1) as u64);
        match probe_once(c, &self.probe, pod_ip).await {
            Ok(()) => {
                self.failures = 0;
                self.successes += 1;
                if !self.passing && self.successes >= self.probe.success_threshold.unwrap_or(1) {
                    self.passing = true;
                    return Some((true, None));
                }
            }
            Err(why) => {
                self.successes = 0;
                self.failures += 1;
                if self.passing && self.failures >= self.probe.failure_threshold.unwrap_or(3) {
                    self.passing = false;
                    return Some((false, Some(why)));
                }
                if !self.passing && self.failures >= self.probe.failure_threshold.unwrap_or(3) {
                    return Some((false, Some(why)));
                }
            }
        }
        None
    }
}

/// The node's pod loop: a task per pod bound here, stopped when the pod is deleted.
pub async fn run(ctx: Arc<NodeContext>) -> Result<(), kube::Error> {
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let mut workers: BTreeMap<String, (watch::Sender<Option<i64>>, tokio::task::JoinHandle<()>)> =
        BTreeMap::new();
    let mut stream = watcher(pods, cfg).boxed();
    while let Some(ev) = stream.next().await {
        let ev = match ev {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("watching pods: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (applied, deleted): (Vec<Pod>, Vec<Pod>) = match ev {
            watcher::Event::Apply(p) | watcher::Event::InitApply(p) => (vec![p], vec![]),
            watcher::Event::Delete(p) => (vec![], vec![p]),
            watcher::Event::Init | watcher::Event::InitDone => (vec![], vec![]),
        };
        workers.retain(|_, (_, h)| !h.is_finished());
        for p in applied {
            let uid = p.metadata.uid.clone().unwrap_or_default();
            if p.metadata.deletion_timestamp.is_some() {
                let grace = p.metadata.deletion_grace_period_seconds.unwrap_or(30);
                if let Some((tx, _)) = workers.get(&uid) {
                    let _ = tx.send(Some(grace));
                } else {
                    // Nothing runs for it here (finished, or never started): remove it.
                    let _ = finalize(&ctx, &p).await;
                }
                continue;
            }
            let phase = p
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default();
            if workers.contains_key(&uid) || phase == "Succeeded" || phase == "Failed" {
                continue;
            }
            let (tx, rx) = watch::channel(None);
            let ctx2 = ctx.clone();
            let handle = tokio::spawn(async move {
                let name = format!(
                    "{}/{}",
                    p.metadata.namespace.clone().unwrap_or_default(),
                    p.metadata.name.clone().unwrap_or_default()
                );
                if let Err(e) = run_pod(ctx2, p, rx).await {
                    tracing::warn!(pod = %name, "{e}");
                }
            });
            workers.insert(uid, (tx, handle));
        }
        for p in deleted {
            let uid = p.metadata.uid.clone().unwrap_or_default();
            if let Some((tx, _)) = workers.get(&uid) {
                let _ = tx.send(Some(0));
            }
        }
    }
    Ok(())
}

/// The kubelet's last word on a deleted pod: remove the object now that nothing runs.
async fn finalize(ctx: &NodeContext, p: &Pod) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(
        ctx.client.clone(),
        p.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: p.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api
        .delete(p.metadata.name.as_deref().unwrap_or_default(), &dp)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("pod {pod}: {source}")]
    Net {
        pod: String,
        #[source]
        source: super::net::NetError,
    },
    #[error("pod {pod}: reporting status: {source}")]
    Status {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("pod {pod}: {context}: {source}")]
    Io {
        pod: String,
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// One pod's life on this node.
struct PodRun {
    ctx: Arc<NodeContext>,
    pod: Pod,
    api: Api<Pod>,
    dir: PathBuf,
    pod_ip: String,
    netns: String,
    volumes: BTreeMap<String, PathBuf>,
    init: Vec<ContainerState>,
    main: Vec<ContainerState>,
    initialized: bool,
    phase: &'static str,
    started: String,
}

impl PodRun {
    fn name(&self) -> String {
        format!(
            "{}/{}",
            self.pod.metadata.namespace.as_deref().unwrap_or_default(),
            self.pod.metadata.name.as_deref().unwrap_or_default()
        )
    }

    async fn report(&self) -> Result<(), PodError> {
        let uid = self.pod.metadata.uid.clone().unwrap_or_default();
        let mut status = json!({
            "phase": self.phase,
            "hostIP": self.ctx.host_ip, "hostIPs": [{"ip": self.ctx.host_ip}],
            "startTime": self.started,
            "conditions": conditions(self.initialized, &self.main, true),
            // qosClass is the API server's to set at creation (and immutable).
            "containerStatuses": self.main.iter().map(|c| c.to_json(&uid)).collect::<Vec<_>>(),
        });
        if !self.pod_ip.is_empty() {
            status["podIP"] = json!(self.pod_ip);
            status["podIPs"] = json!([{"ip": self.pod_ip}]);
        }
        if !self.init.is_empty() {
            status["initContainerStatuses"] = json!(
                self.init
                    .iter()
                    .map(|c| c.to_json(&uid))
                    .collect::<Vec<_>>()
            );
        }
        self.api
            .patch_status(
                self.pod.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .map_err(|source| PodError::Status {
                pod: self.name(),
                source,
            })?;
        Ok(())
    }

    async fn report_logged(&self) {
        if let Err(e) = self.report().await {
            tracing::warn!("{e}");
        }
    }
}

/// Why the node could not "pull" an image (the pod's `ErrImagePull` message is its chain).
#[derive(Debug, thiserror::Error)]
enum PullError {
    #[error(transparent)]
    Image(#[from] image::ImageError),
    #[error("building the Python environment of Chroma {version}")]
    Venv {
        version: render::ChromaVersion,
        #[source]
        source: crate::venv::VenvError,
    },
    #[error("the task building the Python environment of Chroma {version} ended")]
    Task {
        version: render::ChromaVersion,
        #[source]
        source: tokio::task::JoinError,
    },
}

/// The images of a pod's containers, from the node's catalog (a Chroma image through its
/// Python environment, built on first use).
async fn node_image(ctx: &NodeContext, reference: &str) -> Result<NodeImage, PullError> {
    match image::chroma_release(reference) {
        Some(v) => {
            let v = v?;
            let pins = ctx.pins.get(&v).cloned().unwrap_or_default();
            let cache = ctx.venvs.clone();
            let v2 = v.clone();
            let (venv, _) = tokio::task::spawn_blocking(move || cache.ensure(&v2, &pins))
                .await
                .map_err(|source| PullError::Task {
                    version: v.clone(),
                    source,
                })?
                .map_err(|source| PullError::Venv {
                    version: v.clone(),
                    source,
                })?;
            Ok(image::chroma(reference, &v, &venv)?)
        }
        None if crate::process::collector::is_collector_image(reference) => {
            Ok(image::collector(reference, &ctx.collector)?)
        }
        None => Ok(image::other(reference)?),
    }
}

async fn lookups(ctx: &NodeContext, ns: &str, containers: &[Container]) -> Lookups {
    let mut out = Lookups::default();
    for c in containers {
        let (cms, secrets) = env::references(c);
        for n in cms {
            if let Ok(Some(cm)) = Api::<ConfigMap>::namespaced(ctx.client.clone(), ns)
                .get_opt(&n)
                .await
            {
                out.configmaps.insert(n, cm.data.unwrap_or_default());
            }
        }
        for n in secrets {
            if let Ok(Some(s)) = Api::<Secret>::namespaced(ctx.client.clone(), ns)
                .get_opt(&n)
                .await
            {
                let data = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect();
                out.secrets.insert(n, data);
            }
        }
    }
    out
}

/// The pod's /etc/hosts, resolv.conf and hostname, as the kubelet writes them.
fn etc_files(
    ctx: &NodeContext,
    pod: &Pod,
    pod_ip: &str,
    dir: &Path,
) -> std::io::Result<Vec<Mount>> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let hostname = spec.hostname.clone().unwrap_or(name.clone());
    let fqdn = spec
        .subdomain
        .as_ref()
        .map(|s| format!("{hostname}.{s}.{ns}.svc.{}", ctx.cluster_domain));
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc)?;
    let mut hosts =
        format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{pod_ip}\t");
    hosts.push_str(&match &fqdn {
        Some(f) => format!("{f}\t{hostname}\n"),
        None => format!("{hostname}\n"),
    });
    let d = &ctx.cluster_domain;
    let resolv = format!(
        "search {ns}.svc.{d} svc.{d} {d}\nnameserver {}\noptions ndots:5\n",
        ctx.cluster_dns
    );
    std::fs::write(etc.join("hosts"), hosts)?;
    std::fs::write(etc.join("resolv.conf"), resolv)?;
    std::fs::write(etc.join("hostname"), format!("{hostname}\n"))?;
    Ok(["hosts", "resolv.conf", "hostname"]
        .iter()
        .map(|f| Mount {
            src: etc.join(f),
            dst: format!("/etc/{f}"),
            writable: false,
        })
        .collect())
}

/// Lays the image's own files out under the pod's folder; returns them as read-only binds.
fn image_files(img: &NodeImage, dir: &Path) -> std::io::Result<Vec<Mount>> {
    let mut out = Vec::new();
    for (i, (dst, f)) in img.files.iter().enumerate() {
        let src = match f {
            image::ImageFile::Host(p) => p.clone(),
            image::ImageFile::Content(text) => {
                let p = dir.join(format!("image-{i}"));
                std::fs::write(&p, text)?;
                p
            }
        };
        out.push(Mount {
            src,
            dst: dst.clone(),
            writable: false,
        });
    }
    Ok(out)
}

/// The plan of one container: its image, env, user, mounts and command.
async fn plan_container(
    run: &PodRun,
    c: &Container,
    look: &Lookups,
    etc: &[Mount],
) -> Result<(ContainerPlan, Option<PathBuf>), (String, String)> {
    let pod_spec = run.pod.spec.clone().unwrap_or_default();
    let reference = c.image.clone().unwrap_or_default();
    let img = node_image(&run.ctx, &reference)
        .await
        .map_err(|e| ("ErrImagePull".to_string(), crate::text::chain(&e)))?;
    let mut with_ip = run.pod.clone();
    with_ip.status.get_or_insert_with(Default::default).pod_ip = Some(run.pod_ip.clone());
    let (k_host, k_port) = &run.ctx.kubernetes_service;
    let mut env = env::resolve(&with_ip, c, &img.env, look, (k_host, *k_port))
        .map_err(|e| ("CreateContainerConfigError".to_string(), e.to_string()))?;
    let exec =
        image::exec(&img, c, &mut env).map_err(|e| ("StartError".to_string(), e.to_string()))?;
    let user: RunAs = security::run_as(c, &pod_spec, img.user).map_err(|e| {
        (
            "CreateContainerConfigError".to_string(),
            crate::text::chain(&e),
        )
    })?;
    let cdir = run.dir.join("containers").join(&c.name);
    std::fs::create_dir_all(&cdir)
        .map_err(|e| ("CreateContainerError".to_string(), e.to_string()))?;
    let mut files = image_files(&img, &cdir)
        .map_err(|e| ("CreateContainerError".to_string(), e.to_string()))?;
    files.extend(etc.iter().cloned());
    // A stand-in program under a directory the container's root does not show (the backup
    // tool of a checkout under /tmp) is laid over the root at the image's own path for it.
    let mut exec = exec;
    if super::sandbox::hidden_from_the_root(&exec.program) {
        let at = if exec.argv0.starts_with('/') {
            exec.argv0.clone()
        } else {
            exec.program.display().to_string()
        };
        files.push(Mount {
            src: exec.program.clone(),
            dst: at.clone(),
            writable: false,
        });
        exec.program = PathBuf::from(at);
    }
    let mut mounts = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let dir = run.volumes.get(&m.name).ok_or_else(|| {
            (
                "CreateContainerConfigError".to_string(),
                format!("volumeMount {} has no volume", m.name),
            )
        })?;
        let src = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => dir.join(sub),
            None => dir.clone(),
        };
        let volume = pod_spec.volumes.iter().flatten().find(|v| v.name == m.name);
        let writable_kind = volume.is_some_and(|v| {
            v.empty_dir.is_some() || v.persistent_volume_claim.is_some() || v.host_path.is_some()
        });
        mounts.push(Mount {
            src,
            dst: m.mount_path.clone(),
            writable: writable_kind && m.read_only != Some(true),
        });
    }
    // The termination message file: a writable file at its path, as the runtime mounts it.
    let msg_path = c
        .termination_message_path
        .clone()
        .unwrap_or_else(|| "/dev/termination-log".into());
    let msg_file = if msg_path.starts_with("/dev/") {
        None
    } else {
        let f = cdir.join("termination-log");
        std::fs::write(&f, "").map_err(|e| ("CreateContainerError".to_string(), e.to_string()))?;
        let _ = std::os::unix::fs::chown(&f, Some(user.uid), Some(user.gid));
        mounts.push(Mount {
            src: f.clone(),
            dst: msg_path,
            writable: true,
        });
        Some(f)
    };
    let cwd = c.working_dir.clone().unwrap_or(img.workdir.clone());
    let hostname = pod_spec
        .hostname
        .clone()
        .or(run.pod.metadata.name.clone())
        .unwrap_or_default();
    let memory_limit = match c
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("memory"))
    {
        Some(q) => Some(parse_quantity(&q.0).map_err(|e| {
            (
                "CreateContainerConfigError".to_string(),
                format!("resources.limits.memory {:?}: {e}", q.0),
            )
        })?),
        None => None,
    };
    Ok((
        ContainerPlan {
            name: c.name.clone(),
            hostname,
            netns: run.netns.clone(),
            user,
            files,
            mounts,
            exec,
            env,
            cwd,
            memory_limit,
        },
        msg_file,
    ))
}

fn exit_of(status: Option<std::process::ExitStatus>) -> (i32, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (_, Some(sig)) => (128 + sig, Some(sig)),
            (Some(c), None) => (c, None),
            _ => (1, None),
        },
        None => (1, None),
    }
}

/// How often ConfigMap, Secret and projected volumes are rewritten from the API (the
/// kubelet's sync period is a minute plus its cache TTL; shorter here, as nothing else waits).
const VOLUME_SYNC: Duration = Duration::from_secs(10);

/// The kubelet's crash-loop back-off: 10 s, doubling, at most 5 min.
fn backoff(restarts: i32) -> Duration {
    Duration::from_secs((10u64 << (restarts - 1).clamp(0, 5) as u32).min(300))
}

async fn run_pod(
    ctx: Arc<NodeContext>,
    pod: Pod,
    mut stop: watch::Receiver<Option<i64>>,
) -> Result<(), PodError> {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let dir = ctx.root.join(format!(
        "{ns}_{}_{uid}",
        pod.metadata.name.as_deref().unwrap_or_default()
    ));
    let pname = format!("{ns}/{}", pod.metadata.name.as_deref().unwrap_or_default());
    std::fs::create_dir_all(&dir).map_err(|source| PodError::Io {
        pod: pname.clone(),
        context: format!("creating {}", dir.display()),
        source,
    })?;
    let netns = ctx.net.attach().map_err(|source| PodError::Net {
        pod: pname.clone(),
        source,
    })?;
    let spec = pod.spec.clone().unwrap_or_default();
    let inits: Vec<Container> = spec.init_containers.clone().unwrap_or_default();
    let mains: Vec<Container> = spec.containers.clone();
    let image_of = |c: &Container| c.image.clone().unwrap_or_default();
    let mut run = PodRun {
        ctx: ctx.clone(),
        api,
        dir: dir.clone(),
        pod_ip: netns.addr.to_string(),
        netns: netns.netns.clone(),
        volumes: BTreeMap::new(),
        init: inits
            .iter()
            .map(|c| ContainerState::waiting(&c.name, &image_of(c), "PodInitializing", None))
            .collect(),
        main: mains
            .iter()
            .map(|c| {
                ContainerState::waiting(
                    &c.name,
                    &image_of(c),
                    if inits.is_empty() {
                        "ContainerCreating"
                    } else {
                        "PodInitializing"
                    },
                    None,
                )
            })
            .collect(),
        initialized: inits.is_empty(),
        phase: "Pending",
        started: now(),
        pod,
    };
    run.report_logged().await;
    let result = drive(&mut run, &inits, &mains, &mut stop).await;
    run.report_logged().await;
    let _ = finalize_if_deleting(&ctx, &run.pod, &stop).await;
    ctx.net.release(netns);
    // The pod's folder goes with it (claims live elsewhere); logs stay until the pod object goes.
    let _ = std::fs::remove_dir_all(dir.join("volumes"));
    result
}

async fn finalize_if_deleting(
    ctx: &NodeContext,
    pod: &Pod,
    stop: &watch::Receiver<Option<i64>>,
) -> Result<(), kube::Error> {
    if stop.borrow().is_some() {
        finalize(ctx, pod).await
    } else {
        Ok(())
    }
}

/// Volumes, init containers, containers; returns when the pod ends or is deleted.
async fn drive(
    run: &mut PodRun,
    inits: &[Container],
    mains: &[Container],
    stop: &mut watch::Receiver<Option<i64>>,
) -> Result<(), PodError> {
    let policy = run
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into());
    // Volumes, retried until they can be made (a claim not bound yet, a Secret to come).
    let sources = Sources {
        client: run.ctx.client.clone(),
    };
    let vdir = run.dir.join("volumes");
    loop {
        match sources.materialise(&run.pod, &vdir).await {
            Ok(v) => {
                run.volumes = v;
                break;
            }
            Err(e) => {
                let retry = matches!(e, VolumeError::NotReady { .. } | VolumeError::Api { .. });
                for c in run.main.iter_mut() {
                    c.state = json!({"waiting": {"reason": "ContainerCreating", "message": e.to_string()}});
                }
                run.report_logged().await;
                if !retry {
                    return Ok(());
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return Ok(()),
                }
            }
        }
    }
    let etc =
        etc_files(&run.ctx, &run.pod, &run.pod_ip, &run.dir).map_err(|source| PodError::Io {
            pod: run.name(),
            context: "writing /etc files".into(),
            source,
        })?;
    let ns = run.pod.metadata.namespace.clone().unwrap_or_default();
    let all: Vec<Container> = inits.iter().chain(mains).cloned().collect();
    let look = lookups(&run.ctx, &ns, &all).await;
    let grace_default = run
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);

    // Init containers, in order, each to success.
    for (i, c) in inits.iter().enumerate() {
        loop {
            let (plan, msg) = match plan_container(run, c, &look, &etc).await {
                Ok(p) => p,
                Err((reason, message)) => {
                    run.init[i].state = json!({"waiting": {"reason": reason, "message": message}});
                    run.report_logged().await;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                        _ = stop.changed() => return Ok(()),
                    }
                }
            };
            let log = run
                .dir
                .join("logs")
                .join(&c.name)
                .join(format!("{}.log", run.init[i].restarts));
            let mut proc =
                Running::spawn(run.ctx.net.ip_program(), &plan, &log).map_err(|source| {
                    PodError::Io {
                        pod: run.name(),
                        context: format!("starting init container {}", c.name),
                        source,
                    }
                })?;
            run.init[i].state = json!({"running": {"startedAt": ts(proc.started)}});
            run.phase = "Pending";
            run.report_logged().await;
            let status = tokio::select! {
                s = proc.wait() => s,
                _ = stop.changed() => {
                    let grace = stop.borrow().unwrap_or(grace_default);
                    proc.stop(Duration::from_secs(grace.max(0) as u64)).await;
                    return Ok(());
                }
            };
            let (code, signal) = exit_of(status);
            let failed = code != 0;
            let message = termination_message(c, msg.as_deref(), &log, failed);
            run.init[i].state = terminated(code, signal, proc.started, message, proc.oom_killed());
            if !failed {
                run.init[i].ready = true;
                break;
            }
            if policy == "Never" {
                run.phase = "Failed";
                return Ok(());
            }
            run.init[i].last = run.init[i].state.clone();
            run.init[i].restarts += 1;
            run.init[i].state = json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off restarting failed container {}", c.name)}});
            run.report_logged().await;
            tokio::select! {
                _ = tokio::time::sleep(backoff(run.init[i].restarts)) => {}
                _ = stop.changed() => return Ok(()),
            }
        }
    }
    run.initialized = true;

    // The containers, with their probes and restart policy.
    let mut procs: Vec<Option<(Running, Option<PathBuf>, PathBuf)>> =
        (0..mains.len()).map(|_| None).collect();
    let mut readiness: Vec<Option<Prober>> = (0..mains.len()).map(|_| None).collect();
    let mut liveness: Vec<Option<Prober>> = (0..mains.len()).map(|_| None).collect();
    let mut startup: Vec<Option<Prober>> = (0..mains.len()).map(|_| None).collect();
    let mut restart_at: Vec<Option<tokio::time::Instant>> =
        vec![Some(tokio::time::Instant::now()); mains.len()];
    let mut done = vec![false; mains.len()];
    run.phase = "Running";
    let mut next_refresh = tokio::time::Instant::now() + VOLUME_SYNC;
    loop {
        if tokio::time::Instant::now() >= next_refresh {
            next_refresh = tokio::time::Instant::now() + VOLUME_SYNC;
            if let Err(e) = sources.refresh(&run.pod, &vdir).await {
                tracing::warn!(pod = %run.name(), "refreshing volumes: {e}");
            }
        }
        let mut changed = false;
        for (i, c) in mains.iter().enumerate() {
            if let Some(at) = restart_at[i]
                && tokio::time::Instant::now() >= at
            {
                restart_at[i] = None;
                match plan_container(run, c, &look, &etc).await {
                    Ok((plan, msg)) => {
                        let log = run
                            .dir
                            .join("logs")
                            .join(&c.name)
                            .join(format!("{}.log", run.main[i].restarts));
                        match Running::spawn(run.ctx.net.ip_program(), &plan, &log) {
                            Ok(p) => {
                                // Where the node's API finds the container to kill it.
                                let _ = std::fs::write(
                                    run.dir.join("containers").join(&c.name).join("pgid"),
                                    p.pgid().to_string(),
                                );
                                let since = tokio::time::Instant::now();
                                run.main[i].state =
                                    json!({"running": {"startedAt": ts(p.started)}});
                                run.main[i].started = c.startup_probe.is_none();
                                run.main[i].ready =
                                    c.readiness_probe.is_none() && c.startup_probe.is_none();
                                startup[i] = c
                                    .startup_probe
                                    .as_ref()
                                    .map(|p| Prober::new(p, since, false));
                                readiness[i] = c
                                    .readiness_probe
                                    .as_ref()
                                    .map(|p| Prober::new(p, since, false));
                                liveness[i] = c
                                    .liveness_probe
                                    .as_ref()
                                    .map(|p| Prober::new(p, since, true));
                                procs[i] = Some((p, msg, log));
                            }
                            Err(e) => {
                                run.main[i].state = json!({"waiting": {"reason": "RunContainerError", "message": e.to_string()}});
                                restart_at[i] =
                                    Some(tokio::time::Instant::now() + Duration::from_secs(10));
                            }
                        }
                    }
                    Err((reason, message)) => {
                        run.main[i].state =
                            json!({"waiting": {"reason": reason, "message": message}});
                        restart_at[i] = Some(tokio::time::Instant::now() + Duration::from_secs(5));
                    }
                }
                changed = true;
            }
            // Exits.
            let exited = match procs[i].as_mut() {
                Some((p, _, _)) => p.try_exited(),
                None => None,
            };
            if let Some(status) = exited {
                let (p, msg, log) = procs[i].take().expect("checked above");
                let (code, signal) = exit_of(Some(status));
                let failed = code != 0;
                let message = termination_message(c, msg.as_deref(), &log, failed);
                run.main[i].state = terminated(code, signal, p.started, message, p.oom_killed());
                run.main[i].ready = false;
                let again = match policy.as_str() {
                    "Always" => true,
                    "OnFailure" => failed,
                    _ => false,
                };
                if again {
                    run.main[i].last = run.main[i].state.clone();
                    run.main[i].restarts += 1;
                    let wait = backoff(run.main[i].restarts);
                    run.main[i].state = json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off {}s restarting failed container={}", wait.as_secs(), c.name)}});
                    restart_at[i] = Some(tokio::time::Instant::now() + wait);
                } else {
                    done[i] = true;
                }
                changed = true;
            }
            // Probes.
            if procs[i].is_some() {
                if let Some(s) = startup[i].as_mut() {
                    if let Some((ok, _)) = s.tick(c, &run.pod_ip).await {
                        if ok {
                            run.main[i].started = true;
                            startup[i] = None;
                            changed = true;
                        } else if let Some((p, _, _)) = procs[i].as_mut() {
                            p.stop(Duration::from_secs(grace_default.max(0) as u64))
                                .await;
                        }
                    }
                    continue;
                }
                if let Some(r) = readiness[i].as_mut()
                    && let Some((ok, _)) = r.tick(c, &run.pod_ip).await
                {
                    run.main[i].ready = ok;
                    changed = true;
                }
                if let Some(l) = liveness[i].as_mut()
                    && let Some((false, why)) = l.tick(c, &run.pod_ip).await
                {
                    tracing::info!(pod = %run.name(), container = %c.name, "liveness probe failed ({}): restarting", why.unwrap_or_default());
                    if let Some((p, _, _)) = procs[i].as_mut() {
                        p.stop(Duration::from_secs(grace_default.max(0) as u64))
                            .await;
                    }
                }
            }
        }
        if done.iter().all(|d| *d) {
            let failed = run
                .main
                .iter()
                .any(|c| c.state["terminated"]["exitCode"].as_i64().unwrap_or(0) != 0);
            run.phase = if failed { "Failed" } else { "Succeeded" };
            return Ok(());
        }
        if changed {
            run.report_logged().await;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => {
                let grace = stop.borrow().unwrap_or(grace_default);
                for (i, slot) in procs.iter_mut().enumerate() {
                    if let Some((mut p, msg, log)) = slot.take() {
                        let status = p.stop(Duration::from_secs(grace.max(0) as u64)).await;
                        let (code, signal) = exit_of(status);
                        run.main[i].state = terminated(code, signal, p.started, termination_message(&mains[i], msg.as_deref(), &log, code != 0), false);
                        run.main[i].ready = false;
                    }
                }
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(v: Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_named_probe_port_is_the_containers_port_of_that_name() {
        let c = container(json!({"name": "c", "ports": [{"name": "http", "containerPort": 8123}]}));
        assert_eq!(
            probe_port(&c, &IntOrString::String("http".into())),
            Ok(8123)
        );
        assert_eq!(probe_port(&c, &IntOrString::Int(9000)), Ok(9000));
        assert!(
            probe_port(&c, &IntOrString::String("grpc".into()))
                .unwrap_err()
                .contains("grpc")
        );
    }

    #[test]
    fn the_pod_is_ready_only_when_initialised_and_every_container_is_ready() {
        let ready = ContainerState {
            ready: true,
            ..Default::default()
        };
        let unready = ContainerState::default();
        let status = |init, cs: &[ContainerState]| {
            conditions(init, cs, true)
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "Ready")
                .unwrap()["status"]
                .clone()
        };
        assert_eq!(status(true, &[ready.clone(), ready.clone()]), "True");
        assert_eq!(status(true, &[ready.clone(), unready]), "False");
        assert_eq!(status(false, &[ready]), "False");
    }

    #[test]
    fn an_exit_by_signal_is_reported_as_128_plus_the_signal_and_zero_is_completed() {
        let t = terminated(0, Some(9), SystemTime::now(), None, false);
        assert_eq!(
            (
                t["terminated"]["exitCode"].clone(),
                t["terminated"]["reason"].clone()
            ),
            (json!(137), json!("Error"))
        );
        let t = terminated(0, None, SystemTime::now(), None, false);
        assert_eq!(t["terminated"]["reason"], "Completed");
        assert_eq!(
            terminated(137, None, SystemTime::now(), None, true)["terminated"]["reason"],
            "OOMKilled"
        );
    }

    #[test]
    fn termination_message_prefers_the_file_and_falls_back_to_the_log_only_on_failure_when_asked() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("log");
        std::fs::write(&log, "line1\nhtpasswd: could not determine temp dir\n").unwrap();
        let c = container(
            json!({"name": "htpasswd", "terminationMessagePolicy": "FallbackToLogsOnError"}),
        );
        let m = termination_message(&c, None, &log, true).unwrap();
        assert!(m.ends_with("htpasswd: could not determine temp dir"), "{m}");
        assert_eq!(termination_message(&c, None, &log, false), None);
        let file = d.path().join("msg");
        std::fs::write(&file, "bye").unwrap();
        assert_eq!(
            termination_message(&c, Some(&file), &log, true).as_deref(),
            Some("bye")
        );
        let plain = container(json!({"name": "x"}));
        assert_eq!(termination_message(&plain, None, &log, true), None);
    }
}
