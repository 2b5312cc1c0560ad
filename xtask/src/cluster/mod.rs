//! `cargo xtask cluster up | down | status`: a real Kubernetes control plane on this
//! machine — etcd, kube-apiserver, kube-controller-manager and kube-scheduler built from their
//! Go modules (see gotools.rs) — with the process node registered as its one node.
//!
//! Everything lives in `target/cluster/` (certificates, kubeconfigs, etcd's data, logs and a
//! state file naming every process), listens on 127.0.0.1 only, and runs after `up` returns;
//! `down` stops it and removes the folder. `up` first cleans whatever an earlier cluster left,
//! and tears down what it started when it fails or is interrupted.

mod config;
mod pki;
mod procs;

use std::ffi::OsString;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::{Patch, PatchParams};
use tracing::instrument::WithSubscriber;
use tracing::subscriber::NoSubscriber;

use crate::gotools;
use config::{Component, Layout, Ports};
use procs::State;

#[derive(clap::Args)]
pub struct Flags {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Build what is missing, then start etcd, the control plane and the process node; print the kubeconfig
    Up,
    /// Stop every process of the cluster and remove target/cluster
    Down,
    /// Each component's pid and health
    Status,
    /// Run the process node (started by `up`, not by hand)
    #[command(hide = true)]
    Node {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        kubelet_version: String,
        #[arg(long)]
        uv: PathBuf,
    },
}

pub fn run(flags: Flags) -> Result<ExitCode> {
    // kube's TLS is rustls with ring (as everywhere in the workspace); named once per process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let target = crate::project_root().join("target");
    let layout = Layout::new(target.join("cluster"));
    match flags.action {
        Action::Up => {
            let _lock = exclusive(&target)?;
            up(&layout)
        }
        Action::Down => {
            let _lock = exclusive(&target)?;
            down(&layout)
        }
        Action::Status => status(&layout),
        Action::Node {
            root,
            kubelet_version,
            uv,
        } => node(&Layout::new(root), &kubelet_version, &uv),
    }
}

/// One `up` or `down` at a time per checkout. The lock is on the `target` folder itself, so
/// it leaves no file behind, and the daemons do not inherit it (Rust opens files close-on-exec).
fn exclusive(target: &std::path::Path) -> Result<fs::File> {
    fs::create_dir_all(target)?;
    let dir = fs::File::open(target).with_context(|| format!("opening {}", target.display()))?;
    match dir.try_lock() {
        Ok(()) => Ok(dir),
        Err(fs::TryLockError::WouldBlock) => bail!(
            "another `cargo xtask cluster up` or `down` is running on {}; wait for it to finish",
            target.display()
        ),
        Err(fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", target.display()))
        }
    }
}

/// The node runs pods in network namespaces of their own and kube-proxy writes nftables
/// rules (issue 21, next steps): both need root, so the cluster does not start half-able.
fn check_root() -> Result<()> {
    let uid = nix::unistd::geteuid();
    if !uid.is_root() {
        bail!(
            "cargo xtask cluster up must run as root (this is uid {uid}): the local cluster's node makes network namespaces and firewall rules for its pods; run it as root (e.g. `sudo -E cargo xtask cluster up`)"
        );
    }
    Ok(())
}

/// The programs a cluster runs, resolved (and built if missing) once.
struct Programs {
    etcd: PathBuf,
    kube: gotools::Built,
    node: PathBuf,
    /// Builds the Chroma images' Python environments on the node.
    uv: PathBuf,
    coredns: PathBuf,
    kube_router: PathBuf,
}

impl Programs {
    fn ensure() -> Result<Programs> {
        let kube = gotools::ensure(&gotools::KUBE)?;
        let etcd = gotools::ensure(&gotools::ETCD)?.path("etcd");
        let node = std::env::current_exe()
            .context("locating this xtask binary (it runs the process node)")?;
        let uv = crate::tools::ensure()?.uv.path;
        e2e::host::ensure().context("the process node's host programs")?;
        // The node's stand-in for the chart's backup image.
        crate::backup_tool::ensure(&crate::project_root())?;
        let coredns = gotools::ensure(&gotools::COREDNS)?.path("coredns");
        let kube_router = gotools::ensure(&gotools::KUBE_ROUTER)?.path("kube-router");
        Ok(Programs {
            etcd,
            kube,
            node,
            uv,
            coredns,
            kube_router,
        })
    }

    /// Every program a stray process of ours could run, as the kernel names them.
    fn all_known() -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = Vec::new();
        for b in gotools::ALL {
            let dir = crate::tools::tools_dir();
            if let Ok(entries) = fs::read_dir(&dir) {
                for e in entries.flatten() {
                    if e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("{}-", b.prefix))
                    {
                        for (name, _) in b.commands {
                            v.push(e.path().join("bin").join(name));
                        }
                    }
                }
            }
        }
        v.extend(std::env::current_exe().ok());
        v.into_iter()
            .map(|p| fs::canonicalize(&p).unwrap_or(p))
            .collect()
    }
}

fn up(layout: &Layout) -> Result<ExitCode> {
    let started = Instant::now();
    check_root()?;
    let programs = Programs::ensure()?;
    let cleaned = teardown(layout, Keep::Nothing)?;
    if cleaned > 0 {
        eprintln!("cleaned an earlier cluster first: stopped {cleaned} process(es)");
    }
    let ports = Ports::default();
    procs::check_ports(&ports.owners())?;
    // From here on, a failure, Ctrl-C, SIGTERM or a panic stops whatever started and removes
    // the folder but for the logs; only a finished `up` disarms it.
    let mut guard = TeardownGuard {
        layout,
        armed: true,
    };
    procs::create_layout(layout)?;
    write_pki(layout, &ports).context("writing the cluster's certificates and kubeconfigs")?;

    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        tokio::select! {
            r = start(layout, &ports, &programs) => r,
            why = crate::interrupt::interrupt() => Err(anyhow::Error::new(crate::interrupt::Interrupted(why))),
        }
    })?;
    guard.armed = false;
    println!(
        "cluster up in {:.0}s: Kubernetes {} with node {}",
        started.elapsed().as_secs_f64(),
        programs.kube.version,
        config::NODE_NAME
    );
    println!("kubeconfig: {}", layout.kubeconfig().display());
    println!("export KUBECONFIG={}", layout.kubeconfig().display());
    println!(
        "logs: {}/  stop: cargo xtask cluster down",
        layout.logs().display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The local cluster a run uses: the one already up, else one started for the run and taken
/// down when this is dropped (after success, failure or Ctrl-C alike).
pub struct LocalCluster {
    pub kubeconfig: PathBuf,
    layout: Layout,
    started_here: bool,
}

impl LocalCluster {
    pub fn ensure() -> Result<LocalCluster> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let layout = Layout::new(crate::project_root().join("target").join("cluster"));
        let kubeconfig = layout.kubeconfig();
        let answering = std::net::TcpStream::connect_timeout(
            &([127, 0, 0, 1], Ports::default().apiserver).into(),
            Duration::from_secs(1),
        )
        .is_ok();
        if kubeconfig.is_file()
            && answering
            && State::load(&layout).is_ok_and(|s| !s.processes.is_empty())
        {
            eprintln!(
                "backend: local cluster already up ({})",
                kubeconfig.display()
            );
            return Ok(LocalCluster {
                kubeconfig,
                layout,
                started_here: false,
            });
        }
        eprintln!("backend: local cluster (starting it for this run; it stops at the end)");
        let _lock = exclusive(&crate::project_root().join("target"))?;
        up(&layout)?;
        Ok(LocalCluster {
            kubeconfig,
            layout,
            started_here: true,
        })
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if self.started_here {
            match teardown(&self.layout, Keep::Nothing) {
                Ok(n) => eprintln!("local cluster down: stopped {n} process(es)"),
                Err(e) => eprintln!(
                    "stopping the local cluster failed: {e:#}; run `cargo xtask cluster down`"
                ),
            }
        }
    }
}

struct TeardownGuard<'a> {
    layout: &'a Layout,
    armed: bool,
}

impl Drop for TeardownGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            match teardown(self.layout, Keep::Logs) {
                Ok(n) => eprintln!(
                    "stopped the {n} process(es) this `cluster up` had started; kept only {} (`cargo xtask cluster down` removes it)",
                    self.layout.logs().display()
                ),
                Err(e) => eprintln!(
                    "tearing down the half-started cluster failed: {e:#}; run `cargo xtask cluster down`"
                ),
            }
        }
    }
}

/// Certificates, the ServiceAccount keys and one kubeconfig per identity.
fn write_pki(l: &Layout, p: &Ports) -> Result<()> {
    let ca = pki::Ca::generate()?;
    let write_pair = |name: &str, pair: &pki::Pair| -> Result<()> {
        procs::write_private(&l.cert(name), &pair.cert)?;
        procs::write_private(&l.key(name), &pair.key)
    };
    procs::write_private(&l.cert("ca"), &ca.cert_pem)?;
    procs::write_private(&l.key("ca"), &ca.key_pem)?;
    write_pair("etcd", &ca.serving("etcd", &config::loopback_names())?)?;
    write_pair(
        "apiserver",
        &ca.serving("kube-apiserver", &config::apiserver_names()?)?,
    )?;
    write_pair(
        "apiserver-etcd-client",
        &ca.client(&config::identity(Component::Etcd))?,
    )?;
    let kubelet_client = pki::Identity {
        user: "kube-apiserver-kubelet-client".into(),
        groups: vec!["system:masters".into()],
    };
    write_pair("apiserver-kubelet-client", &ca.client(&kubelet_client)?)?;
    write_pair(
        "kube-controller-manager-serving",
        &ca.serving("kube-controller-manager", &config::loopback_names())?,
    )?;
    write_pair(
        "kube-scheduler-serving",
        &ca.serving("kube-scheduler", &config::loopback_names())?,
    )?;
    let mut node_names = config::loopback_names();
    node_names.dns.push(config::NODE_NAME.into());
    node_names.ips.push(
        config::pod_gateway()
            .parse()
            .context("the pods' gateway address")?,
    );
    write_pair(
        "kubelet-serving",
        &ca.serving(config::NODE_NAME, &node_names)?,
    )?;
    let front_proxy = pki::Ca::generate()?;
    procs::write_private(&l.cert("front-proxy-ca"), &front_proxy.cert_pem)?;
    let proxy_client = pki::Identity {
        user: config::FRONT_PROXY_CLIENT.into(),
        groups: vec![],
    };
    write_pair("front-proxy-client", &front_proxy.client(&proxy_client)?)?;
    let (sa_private, sa_public) = pki::service_account_keys()?;
    procs::write_private(&l.key("sa"), &sa_private)?;
    procs::write_private(&l.cert("sa-pub"), &sa_public)?;

    let server = config::apiserver_url(p);
    let admin = ca.client(&config::admin_identity())?;
    procs::write_private(
        &l.kubeconfig(),
        &config::kubeconfig(
            &server,
            &ca.cert_pem,
            &config::admin_identity().user,
            &admin.cert,
            &admin.key,
        ),
    )?;
    for c in [
        Component::KubeControllerManager,
        Component::KubeScheduler,
        Component::Node,
        Component::KubeProxy,
        Component::CoreDns,
        Component::KubeRouter,
    ] {
        let who = config::identity(c);
        let pair = ca.client(&who)?;
        procs::write_private(
            &l.component_kubeconfig(c),
            &config::kubeconfig(&server, &ca.cert_pem, &who.user, &pair.cert, &pair.key),
        )?;
    }
    let who = pki::Identity {
        user: config::PROVISIONER_USER.into(),
        groups: vec![],
    };
    let pair = ca.client(&who)?;
    procs::write_private(
        &l.provisioner_kubeconfig(),
        &config::kubeconfig(&server, &ca.cert_pem, &who.user, &pair.cert, &pair.key),
    )?;
    Ok(())
}

/// Starts each component and waits for it to be healthy before the next.
async fn start(l: &Layout, p: &Ports, programs: &Programs) -> Result<()> {
    let mut state = State::default();
    state.save(l)?;
    let kube = |name: &str| programs.kube.path(name);
    let steps: [(Component, PathBuf, Vec<OsString>, Duration); 4] = [
        (
            Component::Etcd,
            programs.etcd.clone(),
            config::etcd_args(l, p),
            Duration::from_secs(30),
        ),
        (
            Component::KubeApiserver,
            kube("kube-apiserver"),
            config::apiserver_args(l, p),
            Duration::from_secs(180),
        ),
        (
            Component::KubeControllerManager,
            kube("kube-controller-manager"),
            config::controller_manager_args(l, p),
            Duration::from_secs(90),
        ),
        (
            Component::KubeScheduler,
            kube("kube-scheduler"),
            config::scheduler_args(l, p),
            Duration::from_secs(90),
        ),
    ];
    let mut children = Vec::new();
    for (c, program, args, timeout) in steps {
        let t = Instant::now();
        let child = procs::spawn(l, &mut state, c, &program, &args)?;
        children.push((c, child));
        wait_healthy(l, p, c, &mut children, timeout).await?;
        eprintln!(
            "{} healthy after {:.1}s",
            c.name(),
            t.elapsed().as_secs_f64()
        );
        if c == Component::KubeApiserver {
            default_storage_class(l).await?;
            service_monitor_crd(l).await?;
        }
    }
    let node_args: Vec<OsString> = vec![
        "cluster".into(),
        "node".into(),
        "--root".into(),
        l.root.clone().into(),
        "--kubelet-version".into(),
        programs.kube.version.clone().into(),
        "--uv".into(),
        programs.uv.clone().into(),
    ];
    let t = Instant::now();
    let child = procs::spawn(l, &mut state, Component::Node, &programs.node, &node_args)?;
    children.push((Component::Node, child));
    wait_healthy(
        l,
        p,
        Component::Node,
        &mut children,
        Duration::from_secs(90),
    )
    .await?;
    eprintln!(
        "node {} Ready after {:.1}s",
        config::NODE_NAME,
        t.elapsed().as_secs_f64()
    );
    // The add-ons' access and config first: CoreDNS is not ready until it has listed Services
    // and slices, kube-router not until its informers have synced.
    fs::write(l.root.join("Corefile"), config::corefile(l)).context("writing the Corefile")?;
    cluster_dns_service(l).await?;
    kube_router_access(l).await?;
    let addons: [(Component, PathBuf, Vec<OsString>); 3] = [
        (
            Component::CoreDns,
            programs.coredns.clone(),
            config::coredns_args(l),
        ),
        (
            Component::KubeProxy,
            programs.kube.path("kube-proxy"),
            config::kube_proxy_args(l),
        ),
        (
            Component::KubeRouter,
            programs.kube_router.clone(),
            config::kube_router_args(l),
        ),
    ];
    for (c, program, args) in addons {
        let t = Instant::now();
        let child = procs::spawn(l, &mut state, c, &program, &args)?;
        children.push((c, child));
        wait_healthy(l, p, c, &mut children, Duration::from_secs(60)).await?;
        eprintln!(
            "{} healthy after {:.1}s",
            c.name(),
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Polls the component's health until it answers, failing early (with its log's tail) when
/// any started process has exited.
async fn wait_healthy(
    l: &Layout,
    p: &Ports,
    c: Component,
    children: &mut [(Component, Child)],
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        for (which, child) in children.iter_mut() {
            if let Some(status) = child.try_wait()? {
                let log = l.log(*which);
                bail!(
                    "{} exited ({status}) while the cluster was starting; from {}:\n{}",
                    which.name(),
                    log.display(),
                    procs::log_tail(&log, 5)
                );
            }
        }
        // kube's client logs each refused connection; while a component starts those are
        // expected, and the last one is in the error below if it never comes up.
        let last = match probe(l, p, c)
            .with_subscriber(NoSubscriber::default())
            .await
        {
            Ok(()) => return Ok(()),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!(
                "{} was not healthy after {}s (last answer: {last}); its log is {}",
                c.name(),
                timeout.as_secs(),
                l.log(c).display()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One health probe: etcd's /health, the API server's /readyz, the controller-manager's and
/// the scheduler's own health ports (TLS with the cluster CA), the node's Ready condition.
async fn probe(l: &Layout, p: &Ports, c: Component) -> Result<()> {
    match c {
        Component::Etcd => {
            let body = plain_get("127.0.0.1", p.etcd_metrics, "/health").await?;
            anyhow::ensure!(body.contains("\"health\":\"true\""), "etcd /health: {body}");
            Ok(())
        }
        Component::CoreDns => {
            let body = plain_get("127.0.0.1", config::COREDNS_READY, "/ready").await?;
            anyhow::ensure!(
                body.starts_with("HTTP/1.0 200") && body.trim_end().ends_with("OK"),
                "coredns /ready: {body}"
            );
            Ok(())
        }
        Component::KubeProxy => {
            let body = plain_get("127.0.0.1", config::KUBE_PROXY_HEALTH, "/healthz").await?;
            anyhow::ensure!(body.contains("lastUpdated"), "kube-proxy /healthz: {body}");
            Ok(())
        }
        // It serves no health port (it would bind every interface): it is up once its entry
        // chain hangs off FORWARD, where pod-to-pod packets cross this host.
        Component::KubeRouter => {
            let out = std::process::Command::new("iptables-save")
                .args(["-t", "filter"])
                .output()
                .context("running iptables-save")?;
            let rules = String::from_utf8_lossy(&out.stdout);
            anyhow::ensure!(
                rules
                    .lines()
                    .any(|l| l.starts_with("-A FORWARD ") && l.ends_with("-j KUBE-ROUTER-FORWARD")),
                "no jump from FORWARD to KUBE-ROUTER-FORWARD in iptables' filter table yet"
            );
            Ok(())
        }
        Component::Node => {
            let nodes: Api<Node> = Api::all(admin_client(l, None).await?);
            let node = nodes
                .get_opt(config::NODE_NAME)
                .await?
                .context("no Node object yet")?;
            anyhow::ensure!(node_ready(&node), "Node {} is not Ready", config::NODE_NAME);
            // The node's pod network is up once the gateway address is this host's.
            let gw = config::pod_gateway();
            std::net::UdpSocket::bind((gw.as_str(), 0))
                .with_context(|| format!("the pods' gateway {gw} is not on this host yet"))?;
            Ok(())
        }
        _ => {
            let url =
                config::health_url(c, p).expect("every control-plane component has a health URL");
            let (base, path) = url.split_at(
                url.find("/healthz")
                    .or_else(|| url.find("/readyz"))
                    .expect("a health path"),
            );
            let client = admin_client(l, Some(base)).await?;
            let body = client
                .request_text(http::Request::get(path).body(Vec::new())?)
                .await?;
            anyhow::ensure!(body.trim() == "ok", "{url}: {body}");
            Ok(())
        }
    }
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A client with the admin identity, to the API server or (`server`) to another component's
/// TLS port signed by the same CA.
async fn admin_client(l: &Layout, server: Option<&str>) -> Result<kube::Client> {
    let mut kc = kube::config::Kubeconfig::read_from(l.kubeconfig())
        .context("reading the admin kubeconfig")?;
    if let Some(server) = server {
        for c in &mut kc.clusters {
            if let Some(cluster) = c.cluster.as_mut() {
                cluster.server = Some(server.to_string());
            }
        }
    }
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    cfg.connect_timeout = Some(Duration::from_secs(2));
    cfg.read_timeout = Some(Duration::from_secs(10));
    Ok(kube::Client::try_from(cfg)?)
}

/// An HTTP/1.0 GET on loopback without TLS (etcd's health port).
async fn plain_get(host: &str, port: u16, path: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect((host, port)),
    )
    .await??;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await??;
    Ok(out)
}

/// prometheus-operator's ServiceMonitor CRD, as released upstream (pinned in
/// xtask/go/prometheus-operator), so a chart with `metrics.serviceMonitor.enabled` installs
/// here as on a cluster that runs the operator.
async fn service_monitor_crd(l: &Layout) -> Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    const MODULE: &str = "github.com/prometheus-operator/prometheus-operator";
    const FILE: &str = "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml";
    let src = tokio::task::spawn_blocking(|| {
        crate::gotools::module_source("prometheus-operator", MODULE)
    })
    .await??;
    let path = src.join(FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let crd: CustomResourceDefinition = serde_yaml::from_str(&text)
        .with_context(|| format!("{} is not a CustomResourceDefinition", path.display()))?;
    let name = crd
        .metadata
        .name
        .clone()
        .context("the ServiceMonitor CRD has no name")?;
    let crds: Api<CustomResourceDefinition> = Api::all(admin_client(l, None).await?);
    crds.patch(
        &name,
        &PatchParams::apply("chromadb-cluster-up").force(),
        &Patch::Apply(&crd),
    )
    .await
    .with_context(|| format!("installing CRD {name} from {}", path.display()))?;
    Ok(())
}

/// The cluster's default StorageClass. Its provisioner is the process node's: it will make
/// each claim's volume a folder under target/cluster/volumes, bound when a pod needs it.
async fn default_storage_class(l: &Layout) -> Result<()> {
    let classes: Api<StorageClass> = Api::all(admin_client(l, None).await?);
    let sc = serde_json::json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": config::STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": config::PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    });
    classes
        .patch(
            config::STORAGE_CLASS,
            &PatchParams::apply("xtask-cluster").force(),
            &Patch::Apply(sc),
        )
        .await
        .context("creating the default StorageClass")?;
    let bindings: Api<ClusterRoleBinding> = Api::all(admin_client(l, None).await?);
    let binding = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "process-node-provisioner"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:persistent-volume-provisioner"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": config::PROVISIONER_USER}],
    });
    bindings
        .patch(
            "process-node-provisioner",
            &PatchParams::apply("xtask-cluster").force(),
            &Patch::Apply(binding),
        )
        .await
        .context("binding the provisioner's identity to system:persistent-volume-provisioner")?;
    Ok(())
}

/// CoreDNS's access (the rules kubeadm's addon gives it) and the `kube-dns` Service in front
/// of it: a ClusterIP whose one endpoint is CoreDNS on the pods' gateway.
async fn cluster_dns_service(l: &Layout) -> Result<()> {
    let client = admin_client(l, None).await?;
    let pp = PatchParams::apply("xtask-cluster").force();
    grant(
        &client,
        Component::CoreDns,
        serde_json::json!([
            {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        ]),
    )
    .await?;
    let ports = serde_json::json!([{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]);
    let svc = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
        "spec": {"clusterIP": config::CLUSTER_DNS_IP, "ports": ports},
    });
    Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), "kube-system")
        .patch("kube-dns", &pp, &Patch::Apply(svc))
        .await
        .context("creating Service kube-system/kube-dns")?;
    let slice = serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kube-dns-gateway", "namespace": "kube-system",
                     "labels": {"kubernetes.io/service-name": "kube-dns", "endpointslice.kubernetes.io/managed-by": "xtask-cluster"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [config::pod_gateway()], "conditions": {"ready": true}}],
        "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}],
    });
    Api::<k8s_openapi::api::discovery::v1::EndpointSlice>::namespaced(client, "kube-system")
        .patch("kube-dns-gateway", &pp, &Patch::Apply(slice))
        .await
        .context("pointing kube-dns at CoreDNS")?;
    Ok(())
}

/// kube-router's access: what its NetworkPolicy controller's informers list and watch
/// (upstream's ClusterRole for it, without the router's Lease and Service status rights).
async fn kube_router_access(l: &Layout) -> Result<()> {
    let read = serde_json::json!(["get", "list", "watch"]);
    grant(
        &admin_client(l, None).await?,
        Component::KubeRouter,
        serde_json::json!([
            {"apiGroups": [""], "resources": ["namespaces", "pods", "services", "nodes", "endpoints"], "verbs": read},
            {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": read},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
        ]),
    )
    .await
}

/// A ClusterRole of `rules` named for the component's identity, bound to that identity.
async fn grant(client: &kube::Client, c: Component, rules: serde_json::Value) -> Result<()> {
    let pp = PatchParams::apply("xtask-cluster").force();
    let user = config::identity(c).user;
    let role = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": user}, "rules": rules,
    });
    Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(client.clone())
        .patch(&user, &pp, &Patch::Apply(role))
        .await
        .with_context(|| format!("creating ClusterRole {user}"))?;
    let binding = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": user},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": user},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    });
    Api::<ClusterRoleBinding>::all(client.clone())
        .patch(&user, &pp, &Patch::Apply(binding))
        .await
        .with_context(|| format!("binding {}'s identity {user}", c.name()))?;
    Ok(())
}

/// What a teardown leaves of the cluster folder.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    Nothing,
    /// After a failed `up`: the logs its error points at.
    Logs,
}

/// Stops every process of a cluster in `layout` (recorded or stray) and removes the folder
/// (all of it, or all but the logs). Returns how many processes were running.
fn teardown(layout: &Layout, keep: Keep) -> Result<usize> {
    let mut procs = match State::load(layout) {
        Ok(s) => s.processes,
        Err(e) => {
            eprintln!(
                "ignoring an unreadable state file ({e:#}); looking for the cluster's processes instead"
            );
            Vec::new()
        }
    };
    for s in procs::strays(&layout.root, &Programs::all_known()) {
        if !procs.iter().any(|r| r.pid == s.pid) {
            procs.push(s);
        }
    }
    let stopped = procs::stop(&procs, Duration::from_secs(15))?;
    // What the node and kube-proxy leave in the kernel when they could not clean up
    // themselves (killed): pod namespaces and links, the claims' tmpfs mounts, kube-proxy's
    // nftables table.
    for what in e2e::node::sweep(&layout.root) {
        eprintln!("removed {what}");
    }
    if !layout.root.exists() {
        return Ok(stopped);
    }
    match keep {
        Keep::Nothing => fs::remove_dir_all(&layout.root)
            .with_context(|| format!("removing {}", layout.root.display()))?,
        Keep::Logs => {
            for e in fs::read_dir(&layout.root)?.flatten() {
                let path = e.path();
                if path == layout.logs() {
                    continue;
                }
                let removed = if path.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                removed.with_context(|| format!("removing {}", path.display()))?;
            }
        }
    }
    Ok(stopped)
}

fn down(layout: &Layout) -> Result<ExitCode> {
    let stopped = teardown(layout, Keep::Nothing)?;
    // Nothing of ours may hold a port any more.
    procs::check_ports(&Ports::default().owners()).context("after stopping the cluster")?;
    println!(
        "cluster down: stopped {stopped} process(es), removed {}",
        layout.root.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn status(layout: &Layout) -> Result<ExitCode> {
    let state = State::load(layout)?;
    if state.processes.is_empty() {
        println!(
            "no local cluster ({} does not exist); start one with `cargo xtask cluster up`",
            layout.state().display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let ports = Ports::default();
    let rt = tokio::runtime::Runtime::new()?;
    let mut all_ok = true;
    println!("{:<25} {:>8}  {:<8} health", "component", "pid", "process");
    for r in &state.processes {
        let alive = procs::alive(r);
        let (healthy, health) = if alive {
            let quiet = probe(layout, &ports, r.component).with_subscriber(NoSubscriber::default());
            match rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), quiet).await })
            {
                Ok(Ok(())) => match config::health_url(r.component, &ports) {
                    Some(u) => (true, format!("ok ({u})")),
                    None => (true, format!("Node {} Ready", config::NODE_NAME)),
                },
                Ok(Err(e)) => (false, format!("FAILING: {e:#}")),
                Err(_) => (false, "FAILING: no answer in 10s".into()),
            }
        } else {
            (
                false,
                format!("-  (see {})", layout.log(r.component).display()),
            )
        };
        all_ok &= healthy;
        println!(
            "{:<25} {:>8}  {:<8} {health}",
            r.component.name(),
            r.pid,
            if alive { "running" } else { "GONE" }
        );
    }
    println!("kubeconfig: {}", layout.kubeconfig().display());
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The process node, as a daemon of `up`: logs through tracing to its log file.
fn node(layout: &Layout, kubelet_version: &str, uv: &std::path::Path) -> Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let client_of = |path: PathBuf, who: &'static str| async move {
            let kc = kube::config::Kubeconfig::read_from(&path)
                .with_context(|| format!("reading the {who} kubeconfig {}", path.display()))?;
            let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
            anyhow::Ok(kube::Client::try_from(cfg)?)
        };
        let client = client_of(layout.component_kubeconfig(Component::Node), "node's").await?;
        let provisioner = client_of(layout.provisioner_kubeconfig(), "provisioner's").await?;
        let fixtures = crate::project_root().join("fixtures/versions.yaml");
        let known = render::VersionMatrix::load(&fixtures)
            .with_context(|| format!("loading {}", fixtures.display()))?;
        let pins = known
            .versions
            .iter()
            .map(|e| (e.version.clone(), e.pins.clone()))
            .collect();
        let venvs = e2e::venv::VenvCache::new(uv, e2e::venv::VenvCache::default_root()?)?;
        // The API server refuses to proxy to a loopback address (`nodes/<n>/proxy`: "address not
        // allowed"), so the node's InternalIP, where its kubelet API listens, is the pods' gateway.
        let facts = e2e::node::NodeFacts::of_this_machine(
            config::NODE_NAME,
            &config::pod_gateway(),
            kubelet_version,
        );
        let settings = e2e::node::Settings {
            pods_root: layout.root.join("pods"),
            volumes_root: layout.root.join("volumes"),
            provisioner_name: config::PROVISIONER.into(),
            fallback_pod_cidr: config::NODE_POD_CIDR.into(),
            cluster_domain: config::CLUSTER_DOMAIN.into(),
            cluster_dns: config::CLUSTER_DNS_IP.into(),
            kubernetes_service: (config::KUBERNETES_SERVICE_IP.into(), 443),
            kubelet_tls: (
                layout.cert("kubelet-serving"),
                layout.key("kubelet-serving"),
                layout.cert("ca"),
            ),
            collector: crate::obstools::collector_path()?,
        };
        e2e::node::serve(client, provisioner, facts, settings, venvs, pins).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
