//! The process node: the stand-in for the kubelet of a local cluster. So far it registers
//! its Node, reports it Ready and renews its Lease in `kube-node-lease` as a kubelet does, so
//! the node lifecycle controller keeps it Ready and the scheduler sees a node. Running the
//! pods bound to it comes next (see issue 21).

pub mod env;
pub mod firewall;
pub mod image;
pub mod kubelet_api;
pub mod net;
pub mod pods;
pub mod provision;
pub mod sandbox;
pub mod volumes;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::venv::VenvCache;

/// How long a Lease holds without renewal; the kubelet's default.
pub const LEASE_SECONDS: i32 = 40;
/// The kubelet renews at a quarter of the duration.
pub const RENEW_EVERY: Duration = Duration::from_secs(10);
/// The kubelet reports status at least this often even when nothing changed.
pub const STATUS_EVERY: Duration = Duration::from_secs(60);
const FIELD_MANAGER: &str = "process-node";
const LEASE_NAMESPACE: &str = "kube-node-lease";

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("the pod network: {0}")]
    Net(#[from] net::NetError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{action} for node {node}: {source}")]
    Api {
        action: &'static str,
        node: String,
        #[source]
        source: kube::Error,
    },
}

/// What the node reports about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFacts {
    pub name: String,
    pub address: String,
    pub cpus: usize,
    pub memory_bytes: u64,
    pub max_pods: u32,
    pub version: String,
    /// `uname -r`, the os-release name, the boot and machine ids, as a kubelet reports them.
    pub kernel: String,
    pub os_image: String,
    pub boot_id: String,
    pub machine_id: String,
}

impl NodeFacts {
    /// This machine's CPUs and memory.
    pub fn of_this_machine(name: &str, address: &str, version: &str) -> NodeFacts {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| mem_total(&m))
            .unwrap_or(0);
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let os_image = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|s| pretty_name(&s))
            .unwrap_or_default();
        NodeFacts {
            name: name.into(),
            address: address.into(),
            cpus,
            memory_bytes,
            max_pods: 110,
            version: version.into(),
            kernel: read("/proc/sys/kernel/osrelease"),
            os_image,
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            machine_id: read("/etc/machine-id"),
        }
    }
}

/// `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"` → the name.
pub fn pretty_name(os_release: &str) -> Option<String> {
    let v = os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))?;
    Some(v.trim().trim_matches('"').to_string())
}

/// `MemTotal:  24570012 kB` → bytes.
pub fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The Node object the node creates for itself (metadata and spec only: status is a
/// subresource).
pub fn node_object(f: &NodeFacts) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": f.name,
            "labels": {
                "kubernetes.io/hostname": f.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            },
        },
    })
}

/// The status a ready kubelet reports: Ready and no pressure, capacity, addresses, versions.
pub fn node_status(f: &NodeFacts, now: Timestamp) -> Value {
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now.to_string(), "lastTransitionTime": now.to_string(),
        })
    };
    let resources = json!({
        "cpu": f.cpus.to_string(),
        "memory": format!("{}Ki", f.memory_bytes / 1024),
        "pods": f.max_pods.to_string(),
    });
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": f.name},
        "status": {
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "process node has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "process node has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "process node has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "process node is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": f.address},
                {"type": "Hostname", "address": f.name},
            ],
            "capacity": resources,
            "allocatable": resources,
            "nodeInfo": {
                "machineID": f.machine_id, "systemUUID": "", "bootID": f.boot_id,
                "kernelVersion": f.kernel, "osImage": f.os_image, "containerRuntimeVersion": "process://",
                "kubeletVersion": f.version, "kubeProxyVersion": "",
                "operatingSystem": "linux", "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            },
            "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
        },
    })
}

/// The node's Lease: held by the node, for `LEASE_SECONDS`, renewed `now`, owned by the Node
/// (so it goes when the Node is deleted, as the kubelet sets it).
pub fn lease_object(node: &Node, now: Timestamp) -> Value {
    let name = node.metadata.name.clone().unwrap_or_default();
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "Node", "name": name,
                "uid": node.metadata.uid.clone().unwrap_or_default(),
            }],
        },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": MicroTime(now),
        },
    })
}

pub struct NodeAgent {
    nodes: Api<Node>,
    leases: Api<Lease>,
    facts: NodeFacts,
}

impl NodeAgent {
    pub fn new(client: kube::Client, facts: NodeFacts) -> NodeAgent {
        NodeAgent {
            nodes: Api::all(client.clone()),
            leases: Api::namespaced(client, LEASE_NAMESPACE),
            facts,
        }
    }

    fn err(&self, action: &'static str) -> impl FnOnce(kube::Error) -> NodeError + '_ {
        move |source| NodeError::Api {
            action,
            node: self.facts.name.clone(),
            source,
        }
    }

    /// Creates or updates the Node and reports its status.
    pub async fn register(&self) -> Result<Node, NodeError> {
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let name = &self.facts.name;
        self.nodes
            .patch(name, &pp, &Patch::Apply(node_object(&self.facts)))
            .await
            .map_err(self.err("registering"))?;
        self.report_status().await
    }

    pub async fn report_status(&self) -> Result<Node, NodeError> {
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let status = node_status(&self.facts, Timestamp::now());
        self.nodes
            .patch_status(&self.facts.name, &pp, &Patch::Apply(status))
            .await
            .map_err(self.err("reporting status"))
    }

    /// Creates the Lease, or renews it.
    pub async fn renew_lease(&self, node: &Node) -> Result<(), NodeError> {
        let lease: Lease = serde_json::from_value(lease_object(node, Timestamp::now()))
            .expect("the Lease object is valid");
        match self
            .leases
            .get_opt(&self.facts.name)
            .await
            .map_err(self.err("reading the lease"))?
        {
            None => {
                self.leases
                    .create(&PostParams::default(), &lease)
                    .await
                    .map_err(self.err("creating the lease"))?;
            }
            Some(mut current) => {
                current.spec = lease.spec;
                self.leases
                    .replace(&self.facts.name, &PostParams::default(), &current)
                    .await
                    .map_err(self.err("renewing the lease"))?;
            }
        }
        Ok(())
    }

    /// Renews the Lease and re-reports status until the process is stopped. A failed round is
    /// logged and retried at the next tick: an API server that restarts must not end the node.
    pub async fn keep_alive(&self, mut node: Node) -> Result<(), NodeError> {
        let mut last_status = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            if last_status.elapsed() >= STATUS_EVERY {
                match self.report_status().await {
                    Ok(n) => {
                        node = n;
                        last_status = tokio::time::Instant::now();
                    }
                    Err(e) => tracing::warn!("{e}"),
                }
            }
            if let Err(e) = self.renew_lease(&node).await {
                tracing::warn!("{e}");
            }
        }
    }
}

/// How the node is set up beyond what it reads from the API.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Per-pod folders.
    pub pods_root: PathBuf,
    /// The provisioned volumes' folders.
    pub volumes_root: PathBuf,
    /// The default StorageClass's provisioner name, which this node serves.
    pub provisioner_name: String,
    /// The node's pod network when the controller manager has not given it `podCIDR` in time.
    pub fallback_pod_cidr: String,
    pub cluster_domain: String,
    /// The nameserver pods get (the `kube-dns` Service's ClusterIP).
    pub cluster_dns: String,
    /// The `kubernetes` Service (ClusterIP, port), as every container's env names it.
    pub kubernetes_service: (String, u16),
    /// The kubelet API's serving certificate and key, and the CA its clients must present.
    pub kubelet_tls: (PathBuf, PathBuf, PathBuf),
    /// The collector built from Go modules (`cargo xtask tools --observability`), standing in
    /// for the contrib image; it may not be built yet (the pod then fails to pull, saying so).
    pub collector: PathBuf,
}

/// The kubelet's port, where the API server asks for logs.
pub const KUBELET_PORT: u16 = 10250;

/// Registers the node, then runs its pods, provisions its claims and renews its Lease until
/// SIGTERM or SIGINT. Everything the pods had (processes, namespaces, mounts) goes when this
/// returns and the runtime drops their tasks.
pub async fn serve(
    client: kube::Client,
    provisioner: kube::Client,
    facts: NodeFacts,
    settings: Settings,
    venvs: VenvCache,
    pins: BTreeMap<render::ChromaVersion, Vec<String>>,
) -> Result<(), NodeError> {
    let agent = NodeAgent::new(client.clone(), facts.clone());
    let mut node = agent.register().await?;
    agent.renew_lease(&node).await?;
    // The controller manager hands out the node's pod network shortly after registration.
    for _ in 0..20 {
        if node
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_ref())
            .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        node = agent
            .nodes
            .get(&facts.name)
            .await
            .map_err(agent.err("reading the node"))?;
    }
    let cidr = node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.clone())
        .unwrap_or(settings.fallback_pod_cidr.clone());
    let net = net::PodNetwork::setup(net::Cidr::parse(&cidr)?)?;
    tracing::info!(node = %facts.name, %cidr, gateway = %net.cidr.gateway(), "registered and ready");
    let ctx = Arc::new(pods::NodeContext {
        client,
        node_name: facts.name.clone(),
        host_ip: facts.address.clone(),
        cluster_dns: settings.cluster_dns.clone(),
        net,
        venvs,
        pins,
        root: settings.pods_root.clone(),
        cluster_domain: settings.cluster_domain.clone(),
        kubernetes_service: settings.kubernetes_service.clone(),
        collector: settings.collector.clone(),
    });
    let (cert, key, ca) = settings.kubelet_tls.clone();
    let logs_root = settings.pods_root.clone();
    let addr: std::net::SocketAddr = (
        facts
            .address
            .parse::<std::net::IpAddr>()
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
        KUBELET_PORT,
    )
        .into();
    let kubelet_api = tokio::spawn(async move {
        if let Err(e) = kubelet_api::serve(addr, &cert, &key, &ca, logs_root).await {
            tracing::error!("{e}");
        }
    });
    let pod_loop = tokio::spawn(pods::run(ctx.clone()));
    let provisioning = tokio::spawn(
        provision::Provisioner {
            client: provisioner,
            provisioner: settings.provisioner_name.clone(),
            node: facts.name.clone(),
            root: settings.volumes_root.clone(),
        }
        .run(),
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| NodeError::Io {
            context: "listening for SIGTERM".into(),
            source,
        })?;
    tokio::select! {
        r = agent.keep_alive(node) => r?,
        _ = term.recv() => tracing::info!("SIGTERM: stopping the node's pods"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping the node's pods"),
    }
    pod_loop.abort();
    provisioning.abort();
    kubelet_api.abort();
    Ok(())
}

/// Removes what a node of this kind leaves in the kernel when it was killed: pod namespaces,
/// veths and the gateway, mounts under `root` (claims' tmpfs), kube-proxy's nftables tables
/// and kube-router's iptables chains and ipsets. Returns what it removed.
pub fn sweep(root: &Path) -> Vec<String> {
    let mut removed = net::sweep_all();
    removed.extend(sandbox::sweep_cgroups());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut under: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| Path::new(m).starts_with(root))
        .collect();
    under.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in under {
        if std::process::Command::new("umount")
            .args(["--lazy", m])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            removed.push(format!("mount {m}"));
        }
    }
    for family in ["ip", "ip6"] {
        if std::process::Command::new("nft")
            .args(["delete", "table", family, "kube-proxy"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            removed.push(format!("nftables table {family} kube-proxy"));
        }
    }
    removed.extend(firewall::sweep());
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> NodeFacts {
        NodeFacts {
            name: "n1".into(),
            address: "127.0.0.1".into(),
            cpus: 2,
            memory_bytes: 4 << 30,
            max_pods: 110,
            version: "v1.37.2".into(),
            kernel: "6.18.0".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            boot_id: "b".into(),
            machine_id: "m".into(),
        }
    }

    #[test]
    fn pretty_name_is_read_unquoted() {
        assert_eq!(
            pretty_name("NAME=x\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n").as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(pretty_name("NAME=x\n"), None);
    }

    #[test]
    fn mem_total_reads_kib_as_bytes() {
        assert_eq!(
            mem_total("MemFree: 1 kB\nMemTotal:       24570012 kB\n"),
            Some(24570012 * 1024)
        );
        assert_eq!(mem_total("nothing"), None);
    }

    #[test]
    fn the_status_is_a_ready_node_without_pressure_with_capacity_and_address() {
        let now: Timestamp = "2026-12-04T18:00:00Z".parse().unwrap();
        let v = node_status(&facts(), now);
        let node: Node = serde_json::from_value(v).unwrap();
        let status = node.status.unwrap();
        let conds: Vec<(String, String)> = status
            .conditions
            .unwrap()
            .into_iter()
            .map(|c| (c.type_, c.status))
            .collect();
        assert!(
            conds.contains(&("Ready".into(), "True".into())),
            "{conds:?}"
        );
        for pressure in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
            assert!(
                conds.contains(&(pressure.into(), "False".into())),
                "{conds:?}"
            );
        }
        let cap = status.capacity.unwrap();
        assert_eq!(
            (
                cap["cpu"].0.as_str(),
                cap["memory"].0.as_str(),
                cap["pods"].0.as_str()
            ),
            ("2", "4194304Ki", "110")
        );
        assert_eq!(status.addresses.unwrap()[0].address, "127.0.0.1");
        let info = status.node_info.unwrap();
        assert_eq!(
            (info.kubelet_version.as_str(), info.kernel_version.as_str()),
            ("v1.37.2", "6.18.0")
        );
    }

    #[test]
    fn the_lease_is_held_by_the_node_and_owned_by_it() {
        let node: Node =
            serde_json::from_value(json!({"metadata": {"name": "n1", "uid": "u-1"}})).unwrap();
        let now: Timestamp = "2026-12-04T18:00:00Z".parse().unwrap();
        let lease: Lease = serde_json::from_value(lease_object(&node, now)).unwrap();
        assert_eq!(lease.metadata.namespace.as_deref(), Some("kube-node-lease"));
        let owner = &lease.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Node", "n1", "u-1")
        );
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("n1"));
        assert_eq!(spec.lease_duration_seconds, Some(LEASE_SECONDS));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
    }

    #[test]
    fn the_node_carries_the_well_known_labels() {
        let v = node_object(&facts());
        assert_eq!(v["metadata"]["labels"]["kubernetes.io/hostname"], "n1");
        assert_eq!(v["metadata"]["labels"]["kubernetes.io/os"], "linux");
    }
}
