//! What the local cluster is: where its files live, which loopback ports it takes, and the
//! flags and kubeconfigs each upstream program is started with. Pure: nothing here starts
//! anything, so every flag is unit-tested without a cluster.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use anyhow::{Context, Result};
use base64::Engine;

use super::pki::{Identity, Names};

/// The name of the one node, the process node that later runs the pods.
pub const NODE_NAME: &str = "process-node";
/// ClusterIPs. The first address is the `kubernetes` Service's, so the API server's
/// certificate names it.
pub const SERVICE_CIDR: &str = "10.96.0.0/16";
/// Pod addresses; the controller-manager hands each node a /24 of it (its `spec.podCIDR`).
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// The provisioner of the default StorageClass, which the node will serve (hostPath volumes
/// under target/cluster).
pub const PROVISIONER: &str = "chromadb.dev/process-node-hostpath";
pub const STORAGE_CLASS: &str = "process-node-hostpath";
/// The one name the API server accepts request headers from.
pub const FRONT_PROXY_CLIENT: &str = "front-proxy-client";
pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The loopback ports, each owned by one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub apiserver: u16,
    pub etcd_client: u16,
    pub etcd_peer: u16,
    pub etcd_metrics: u16,
    pub controller_manager: u16,
    pub scheduler: u16,
}

impl Default for Ports {
    fn default() -> Self {
        // Kubernetes' own defaults, so logs and docs read as usual.
        Ports {
            apiserver: 6443,
            etcd_client: 2379,
            etcd_peer: 2380,
            etcd_metrics: 2381,
            controller_manager: 10257,
            scheduler: 10259,
        }
    }
}

impl Ports {
    /// (port, who listens there), in start order.
    pub fn owners(&self) -> Vec<(u16, &'static str)> {
        vec![
            (self.etcd_client, "etcd (clients)"),
            (self.etcd_peer, "etcd (peers)"),
            (self.etcd_metrics, "etcd (health)"),
            (self.apiserver, "kube-apiserver"),
            (self.controller_manager, "kube-controller-manager"),
            (self.scheduler, "kube-scheduler"),
        ]
    }
}

/// The programs the cluster runs, in start order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    Etcd,
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
    /// The node agent (this xtask, `cluster node`): registers the Node, renews its Lease,
    /// runs the pods bound to it and provisions their claims.
    Node,
    /// kube-proxy in nftables mode: Services' ClusterIPs to their endpoints, for pods and the host.
    KubeProxy,
    /// CoreDNS on the pods' gateway, behind the `kube-dns` Service: Service and pod names.
    CoreDns,
    /// kube-router's NetworkPolicy controller: iptables rules and ipsets per pod and policy.
    KubeRouter,
}

impl Component {
    pub const ALL: [Component; 8] = [
        Component::Etcd,
        Component::KubeApiserver,
        Component::KubeControllerManager,
        Component::KubeScheduler,
        Component::Node,
        Component::CoreDns,
        Component::KubeProxy,
        Component::KubeRouter,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::KubeApiserver => "kube-apiserver",
            Component::KubeControllerManager => "kube-controller-manager",
            Component::KubeScheduler => "kube-scheduler",
            Component::Node => "node",
            Component::KubeProxy => "kube-proxy",
            Component::CoreDns => "coredns",
            Component::KubeRouter => "kube-router",
        }
    }
}

/// Where everything of one cluster lives: `target/cluster/`. `down` removes it whole.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }
    pub fn pki(&self) -> PathBuf {
        self.root.join("pki")
    }
    pub fn cert(&self, name: &str) -> PathBuf {
        self.pki().join(format!("{name}.crt"))
    }
    pub fn key(&self, name: &str) -> PathBuf {
        self.pki().join(format!("{name}.key"))
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn log(&self, c: Component) -> PathBuf {
        self.logs().join(format!("{}.log", c.name()))
    }
    pub fn etcd_data(&self) -> PathBuf {
        self.root.join("etcd")
    }
    /// The cluster-admin kubeconfig `up` prints.
    pub fn kubeconfig(&self) -> PathBuf {
        self.root.join("kubeconfig")
    }
    /// Each component's own kubeconfig, with its own identity.
    pub fn provisioner_kubeconfig(&self) -> PathBuf {
        self.root.join("kubeconfigs").join("provisioner.kubeconfig")
    }
    pub fn component_kubeconfig(&self, c: Component) -> PathBuf {
        self.root
            .join("kubeconfigs")
            .join(format!("{}.kubeconfig", c.name()))
    }
    pub fn state(&self) -> PathBuf {
        self.root.join("state.json")
    }
}

/// The first host address of an IPv4 CIDR (`10.96.0.0/16` → `10.96.0.1`).
pub fn first_address(cidr: &str) -> Result<Ipv4Addr> {
    let (net, bits) = cidr
        .split_once('/')
        .with_context(|| format!("{cidr} is not a CIDR"))?;
    let net: Ipv4Addr = net
        .parse()
        .with_context(|| format!("{cidr}: {net} is not an IPv4 address"))?;
    let bits: u32 = bits
        .parse()
        .with_context(|| format!("{cidr}: /{bits} is not a prefix length"))?;
    anyhow::ensure!(bits <= 30, "{cidr} has no room for hosts");
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    Ok(Ipv4Addr::from((u32::from(net) & mask) + 1))
}

/// What the API server's serving certificate answers to: loopback, and every name a pod uses
/// for the `kubernetes` Service, and its ClusterIP.
pub fn apiserver_names() -> Result<Names> {
    let mut dns: Vec<String> = vec![
        "localhost".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
    ];
    dns.push(format!("kubernetes.default.svc.{CLUSTER_DOMAIN}"));
    Ok(Names {
        dns,
        ips: vec![LOOPBACK, IpAddr::V4(first_address(SERVICE_CIDR)?)],
    })
}

/// Loopback only: etcd, the controller-manager's and the scheduler's health ports.
pub fn loopback_names() -> Names {
    Names {
        dns: vec!["localhost".into()],
        ips: vec![LOOPBACK],
    }
}

/// The identity each component's client certificate carries. The names are the ones the API
/// server's bootstrap RBAC policy grants (system:kube-controller-manager, …); the admin is in
/// system:masters; the node is system:node:<name> in system:nodes, which the Node authorizer
/// and NodeRestriction admission limit to its own objects, as for a kubelet.
pub fn identity(c: Component) -> Identity {
    let (user, groups): (String, &[&str]) = match c {
        // The API server's identity towards etcd (etcd checks only that the CA signed it).
        Component::Etcd | Component::KubeApiserver => ("kube-apiserver-etcd-client".into(), &[]),
        Component::KubeControllerManager => ("system:kube-controller-manager".into(), &[]),
        Component::KubeScheduler => ("system:kube-scheduler".into(), &[]),
        Component::Node => (format!("system:node:{NODE_NAME}"), &["system:nodes"]),
        // Bound to system:node-proxier by the bootstrap RBAC.
        Component::KubeProxy => ("system:kube-proxy".into(), &[]),
        // Bound by `up` to the ClusterRole system:coredns it makes (as kubeadm's addon does).
        Component::CoreDns => ("system:coredns".into(), &[]),
        // Bound by `up` to the ClusterRole system:kube-router it makes (what the controller
        // watches: pods, namespaces, nodes, policies, and the Services its informers list).
        Component::KubeRouter => ("system:kube-router".into(), &[]),
    };
    Identity {
        user,
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

pub fn admin_identity() -> Identity {
    Identity {
        user: "chromadb-local-admin".into(),
        groups: vec!["system:masters".into()],
    }
}

fn flag(name: &str, value: impl AsRef<std::ffi::OsStr>) -> OsString {
    let mut s = OsString::from(format!("--{name}="));
    s.push(value.as_ref());
    s
}

/// etcd: one member, TLS with client certificates on the client port, a plain health port.
pub fn etcd_args(l: &Layout, p: &Ports) -> Vec<OsString> {
    let client = format!("https://127.0.0.1:{}", p.etcd_client);
    let peer = format!("http://127.0.0.1:{}", p.etcd_peer);
    vec![
        flag("name", NODE_NAME),
        flag("data-dir", l.etcd_data()),
        flag("listen-client-urls", &client),
        flag("advertise-client-urls", &client),
        flag("listen-peer-urls", &peer),
        flag("initial-advertise-peer-urls", &peer),
        flag("initial-cluster", format!("{NODE_NAME}={peer}")),
        flag("initial-cluster-state", "new"),
        flag(
            "listen-metrics-urls",
            format!("http://127.0.0.1:{}", p.etcd_metrics),
        ),
        flag("cert-file", l.cert("etcd")),
        flag("key-file", l.key("etcd")),
        flag("trusted-ca-file", l.cert("ca")),
        flag("client-cert-auth", "true"),
        // A throwaway store: losing it on power loss costs nothing, and fsync dominates
        // write latency on a shared VM disk.
        flag("unsafe-no-fsync", "true"),
        flag("log-level", "warn"),
    ]
}

pub fn apiserver_args(l: &Layout, p: &Ports) -> Vec<OsString> {
    vec![
        flag("bind-address", "127.0.0.1"),
        // The `kubernetes` Service's endpoint may not be a loopback address (the API server
        // refuses to start with one), and this machine has no address pods reach yet: that
        // is the pod network's gateway, which the node brings. Until then the Service has no
        // endpoint, and nothing in the cluster uses it.
        flag("endpoint-reconciler-type", "none"),
        flag("secure-port", p.apiserver.to_string()),
        flag(
            "etcd-servers",
            format!("https://127.0.0.1:{}", p.etcd_client),
        ),
        flag("etcd-cafile", l.cert("ca")),
        flag("etcd-certfile", l.cert("apiserver-etcd-client")),
        flag("etcd-keyfile", l.key("apiserver-etcd-client")),
        flag("client-ca-file", l.cert("ca")),
        flag("tls-cert-file", l.cert("apiserver")),
        flag("tls-private-key-file", l.key("apiserver")),
        flag(
            "kubelet-client-certificate",
            l.cert("apiserver-kubelet-client"),
        ),
        flag("kubelet-client-key", l.key("apiserver-kubelet-client")),
        // The node's InternalIP (loopback); its hostname resolves nowhere on this machine.
        flag("kubelet-preferred-address-types", "InternalIP,Hostname"),
        // The aggregation layer's front proxy: its own CA, so no other certificate of the
        // cluster can speak for a user through the request headers.
        flag("requestheader-client-ca-file", l.cert("front-proxy-ca")),
        flag("requestheader-allowed-names", FRONT_PROXY_CLIENT),
        flag("requestheader-username-headers", "X-Remote-User"),
        flag("requestheader-group-headers", "X-Remote-Group"),
        flag("requestheader-extra-headers-prefix", "X-Remote-Extra-"),
        flag("proxy-client-cert-file", l.cert("front-proxy-client")),
        flag("proxy-client-key-file", l.key("front-proxy-client")),
        flag("service-cluster-ip-range", SERVICE_CIDR),
        flag(
            "service-account-issuer",
            format!("https://kubernetes.default.svc.{CLUSTER_DOMAIN}"),
        ),
        flag("service-account-key-file", l.cert("sa-pub")),
        flag("service-account-signing-key-file", l.key("sa")),
        flag("authorization-mode", "Node,RBAC"),
        // PodSecurity is on by default; naming it keeps it on whatever a release's defaults do.
        flag("enable-admission-plugins", "NodeRestriction,PodSecurity"),
        flag("allow-privileged", "false"),
        flag("profiling", "false"),
    ]
}

/// The authentication/authorization kubeconfigs let the component check the bearer of a
/// request to its own health port through the API server, as in a kubeadm cluster.
pub fn controller_manager_args(l: &Layout, p: &Ports) -> Vec<OsString> {
    let kc = l.component_kubeconfig(Component::KubeControllerManager);
    vec![
        flag("kubeconfig", &kc),
        flag("authentication-kubeconfig", &kc),
        flag("authorization-kubeconfig", &kc),
        flag("bind-address", "127.0.0.1"),
        flag("secure-port", p.controller_manager.to_string()),
        flag("tls-cert-file", l.cert("kube-controller-manager-serving")),
        flag(
            "tls-private-key-file",
            l.key("kube-controller-manager-serving"),
        ),
        flag("client-ca-file", l.cert("ca")),
        flag("root-ca-file", l.cert("ca")),
        flag("service-account-private-key-file", l.key("sa")),
        flag("use-service-account-credentials", "true"),
        flag("cluster-signing-cert-file", l.cert("ca")),
        flag("cluster-signing-key-file", l.key("ca")),
        flag("service-cluster-ip-range", SERVICE_CIDR),
        flag("allocate-node-cidrs", "true"),
        flag("cluster-cidr", CLUSTER_CIDR),
        flag("node-cidr-mask-size", "24"),
        // One instance: no election round before the controllers start.
        flag("leader-elect", "false"),
        flag("profiling", "false"),
    ]
}

/// kube-proxy's health port (its default).
pub const KUBE_PROXY_HEALTH: u16 = 10256;
/// The node's slice of the pod network, when the controller manager has not set `podCIDR` yet.
pub const NODE_POD_CIDR: &str = "10.244.0.0/24";
/// The `kubernetes` Service's ClusterIP: the first address of the service range.
pub const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";
/// The identity the node's provisioner runs with (bound to system:persistent-volume-provisioner).
pub const PROVISIONER_USER: &str = "system:process-node-provisioner";

/// CoreDNS's readiness and health ports (loopback only).
pub const COREDNS_READY: u16 = 8181;
pub const COREDNS_HEALTH: u16 = 8054;
/// The `kube-dns` Service's ClusterIP: pods' resolv.conf names it.
pub const CLUSTER_DNS_IP: &str = "10.96.0.10";

/// The pods' gateway: the first address of the node's slice, where CoreDNS listens.
pub fn pod_gateway() -> String {
    let base: std::net::Ipv4Addr = NODE_POD_CIDR
        .split('/')
        .next()
        .unwrap_or_default()
        .parse()
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
    std::net::Ipv4Addr::from(u32::from(base) + 1).to_string()
}

/// CoreDNS's config: the cluster domain from the API, reverse zones, answers cached; names
/// outside the cluster are not forwarded (the machine has no resolver pods should use).
pub fn corefile(l: &Layout) -> String {
    format!(
        ".:53 {{\n    bind {gw}\n    errors\n    health 127.0.0.1:{COREDNS_HEALTH}\n    ready 127.0.0.1:{COREDNS_READY}\n    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n        kubeconfig {kc} chromadb-local\n        pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n    }}\n    cache 30\n    loadbalance\n}}\n",
        gw = pod_gateway(),
        kc = l.component_kubeconfig(Component::CoreDns).display(),
    )
}

pub fn coredns_args(l: &Layout) -> Vec<OsString> {
    vec![
        OsString::from("-conf"),
        l.root.join("Corefile").into_os_string(),
    ]
}

pub fn kube_proxy_args(l: &Layout) -> Vec<OsString> {
    vec![
        flag("kubeconfig", l.component_kubeconfig(Component::KubeProxy)),
        flag("proxy-mode", "nftables"),
        flag("cluster-cidr", CLUSTER_CIDR),
        flag("hostname-override", NODE_NAME),
        flag(
            "healthz-bind-address",
            format!("127.0.0.1:{KUBE_PROXY_HEALTH}"),
        ),
        flag("metrics-bind-address", "127.0.0.1:10249"),
        // Leave the host's conntrack table size alone.
        flag("conntrack-max-per-core", "0"),
    ]
}

/// kube-router with only its NetworkPolicy controller, as k3s runs it: no BGP router, no IPVS
/// service proxy (kube-proxy does Services), no health or metrics listener (they would bind
/// every interface; `up` reads the rules it writes instead).
pub fn kube_router_args(l: &Layout) -> Vec<OsString> {
    vec![
        flag("kubeconfig", l.component_kubeconfig(Component::KubeRouter)),
        flag("run-firewall", "true"),
        flag("run-router", "false"),
        flag("run-service-proxy", "false"),
        flag("hostname-override", NODE_NAME),
        flag("service-cluster-ip-range", SERVICE_CIDR),
        flag("health-port", "0"),
        flag("metrics-port", "0"),
    ]
}

pub fn scheduler_args(l: &Layout, p: &Ports) -> Vec<OsString> {
    let kc = l.component_kubeconfig(Component::KubeScheduler);
    vec![
        flag("kubeconfig", &kc),
        flag("authentication-kubeconfig", &kc),
        flag("authorization-kubeconfig", &kc),
        flag("bind-address", "127.0.0.1"),
        flag("secure-port", p.scheduler.to_string()),
        flag("tls-cert-file", l.cert("kube-scheduler-serving")),
        flag("tls-private-key-file", l.key("kube-scheduler-serving")),
        flag("client-ca-file", l.cert("ca")),
        flag("leader-elect", "false"),
        flag("profiling", "false"),
    ]
}

/// A kubeconfig for one identity, with every credential inline so the file stands alone.
pub fn kubeconfig(server: &str, ca_pem: &str, user: &str, cert_pem: &str, key_pem: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "chromadb-local", "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)}}],
        "contexts": [{"name": "chromadb-local", "context": {"cluster": "chromadb-local", "user": user}}],
        "current-context": "chromadb-local",
    });
    serde_yaml::to_string(&doc).expect("a JSON value serialises as YAML")
}

pub fn apiserver_url(p: &Ports) -> String {
    format!("https://127.0.0.1:{}", p.apiserver)
}

/// Where a component answers health probes: (URL, whether it is TLS with our CA).
pub fn health_url(c: Component, p: &Ports) -> Option<String> {
    match c {
        Component::Etcd => Some(format!("http://127.0.0.1:{}/health", p.etcd_metrics)),
        Component::KubeApiserver => Some(format!("https://127.0.0.1:{}/readyz", p.apiserver)),
        Component::KubeControllerManager => Some(format!(
            "https://127.0.0.1:{}/healthz",
            p.controller_manager
        )),
        Component::KubeScheduler => Some(format!("https://127.0.0.1:{}/readyz", p.scheduler)),
        Component::Node => None,
        Component::KubeProxy => Some(format!("http://127.0.0.1:{KUBE_PROXY_HEALTH}/healthz")),
        Component::CoreDns => Some(format!("http://127.0.0.1:{COREDNS_READY}/ready")),
        Component::KubeRouter => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn lossy(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// The value of `--name=` in a flag list.
    fn flag_value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
        let prefix = format!("--{name}=");
        args.iter().find_map(|a| a.strip_prefix(prefix.as_str()))
    }

    fn layout() -> Layout {
        Layout::new("/t/cluster")
    }

    #[rstest]
    #[case::service_range("10.96.0.0/16", "10.96.0.1")]
    #[case::host_bits_set("10.96.7.9/16", "10.96.0.1")]
    #[case::small_range("192.168.5.0/24", "192.168.5.1")]
    fn first_address_is_the_network_plus_one(#[case] cidr: &str, #[case] want: &str) {
        assert_eq!(first_address(cidr).unwrap().to_string(), want);
    }

    #[rstest]
    #[case::no_prefix("10.96.0.0")]
    #[case::not_an_address("ten/16")]
    #[case::no_room("10.0.0.0/31")]
    fn first_address_refuses_what_is_not_a_usable_cidr(#[case] cidr: &str) {
        let err = first_address(cidr).unwrap_err().to_string();
        assert!(err.contains(cidr), "{err}");
    }

    #[test]
    fn the_apiserver_certificate_names_loopback_the_service_ip_and_every_in_cluster_name() {
        let names = apiserver_names().unwrap();
        assert_eq!(
            names.ips,
            vec![LOOPBACK, "10.96.0.1".parse::<IpAddr>().unwrap()]
        );
        for n in [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ] {
            assert!(
                names.dns.iter().any(|d| d == n),
                "{n} missing from {:?}",
                names.dns
            );
        }
        // What rcgen wrote, read back by openssl.
        let ca = super::super::pki::Ca::generate().unwrap();
        let pair = ca.serving("kube-apiserver", &names).unwrap();
        assert_eq!(
            super::super::pki::tests::sans_of(&pair.cert),
            vec![
                "DNS:kubernetes",
                "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc",
                "DNS:kubernetes.default.svc.cluster.local",
                "DNS:localhost",
                "IP:10.96.0.1",
                "IP:127.0.0.1",
            ]
        );
    }

    #[rstest]
    #[case::pod_security_admission("enable-admission-plugins", "NodeRestriction,PodSecurity")]
    #[case::service_range("service-cluster-ip-range", "10.96.0.0/16")]
    #[case::node_and_rbac_authorization("authorization-mode", "Node,RBAC")]
    #[case::loopback_only("bind-address", "127.0.0.1")]
    #[case::etcd_over_tls("etcd-servers", "https://127.0.0.1:2379")]
    #[case::tokens_signed_with_the_sa_key(
        "service-account-signing-key-file",
        "/t/cluster/pki/sa.key"
    )]
    #[case::tokens_verified_with_its_public_half(
        "service-account-key-file",
        "/t/cluster/pki/sa-pub.crt"
    )]
    #[case::clients_verified_against_the_ca("client-ca-file", "/t/cluster/pki/ca.crt")]
    #[case::front_proxy_has_its_own_ca(
        "requestheader-client-ca-file",
        "/t/cluster/pki/front-proxy-ca.crt"
    )]
    #[case::issuer_is_the_in_cluster_name(
        "service-account-issuer",
        "https://kubernetes.default.svc.cluster.local"
    )]
    fn apiserver_flags(#[case] name: &str, #[case] want: &str) {
        let args = lossy(&apiserver_args(&layout(), &Ports::default()));
        assert_eq!(flag_value(&args, name), Some(want), "{args:?}");
    }

    #[rstest]
    #[case::signs_csrs_with_the_cluster_ca("cluster-signing-key-file", "/t/cluster/pki/ca.key")]
    #[case::signs_tokens_with_the_key_the_apiserver_verifies(
        "service-account-private-key-file",
        "/t/cluster/pki/sa.key"
    )]
    #[case::hands_out_pod_cidrs("cluster-cidr", "10.244.0.0/16")]
    #[case::one_token_per_controller("use-service-account-credentials", "true")]
    #[case::its_own_identity(
        "kubeconfig",
        "/t/cluster/kubeconfigs/kube-controller-manager.kubeconfig"
    )]
    fn controller_manager_flags(#[case] name: &str, #[case] want: &str) {
        let args = lossy(&controller_manager_args(&layout(), &Ports::default()));
        assert_eq!(flag_value(&args, name), Some(want), "{args:?}");
    }

    #[test]
    fn the_service_account_key_pair_is_the_same_on_both_sides() {
        let l = layout();
        let api = lossy(&apiserver_args(&l, &Ports::default()));
        let kcm = lossy(&controller_manager_args(&l, &Ports::default()));
        assert_eq!(
            flag_value(&api, "service-account-signing-key-file"),
            flag_value(&kcm, "service-account-private-key-file")
        );
    }

    #[test]
    fn every_port_flag_follows_the_ports_and_no_component_listens_beyond_loopback() {
        let p = Ports {
            apiserver: 1,
            etcd_client: 2,
            etcd_peer: 3,
            etcd_metrics: 4,
            controller_manager: 5,
            scheduler: 6,
        };
        let l = layout();
        let etcd = lossy(&etcd_args(&l, &p));
        assert_eq!(
            flag_value(&etcd, "listen-client-urls"),
            Some("https://127.0.0.1:2")
        );
        assert_eq!(
            flag_value(&etcd, "listen-peer-urls"),
            Some("http://127.0.0.1:3")
        );
        assert_eq!(
            flag_value(&etcd, "listen-metrics-urls"),
            Some("http://127.0.0.1:4")
        );
        assert_eq!(
            flag_value(&lossy(&apiserver_args(&l, &p)), "secure-port"),
            Some("1")
        );
        assert_eq!(
            flag_value(&lossy(&apiserver_args(&l, &p)), "etcd-servers"),
            Some("https://127.0.0.1:2")
        );
        assert_eq!(
            flag_value(&lossy(&controller_manager_args(&l, &p)), "secure-port"),
            Some("5")
        );
        assert_eq!(
            flag_value(&lossy(&scheduler_args(&l, &p)), "secure-port"),
            Some("6")
        );
        for args in [
            apiserver_args(&l, &p),
            controller_manager_args(&l, &p),
            scheduler_args(&l, &p),
        ] {
            assert_eq!(flag_value(&lossy(&args), "bind-address"), Some("127.0.0.1"));
        }
        let mut ports: Vec<u16> = p.owners().iter().map(|(p, _)| *p).collect();
        ports.dedup();
        assert_eq!(ports.len(), 6, "each port has one owner");
    }

    #[test]
    fn etcd_requires_client_certificates_from_the_cluster_ca() {
        let args = lossy(&etcd_args(&layout(), &Ports::default()));
        assert_eq!(flag_value(&args, "client-cert-auth"), Some("true"));
        assert_eq!(
            flag_value(&args, "trusted-ca-file"),
            Some("/t/cluster/pki/ca.crt")
        );
        assert_eq!(flag_value(&args, "data-dir"), Some("/t/cluster/etcd"));
    }

    #[test]
    fn every_file_a_flag_names_lives_in_the_cluster_folder() {
        let l = layout();
        let p = Ports::default();
        for args in [
            etcd_args(&l, &p),
            apiserver_args(&l, &p),
            controller_manager_args(&l, &p),
            scheduler_args(&l, &p),
        ] {
            let mut files = 0;
            for a in lossy(&args) {
                if let Some((_, v)) = a.split_once('=')
                    && v.starts_with('/')
                {
                    assert!(
                        std::path::Path::new(v).starts_with(&l.root),
                        "{a} points outside {}",
                        l.root.display()
                    );
                    files += 1;
                }
            }
            assert!(files > 0, "the case ran: {args:?}");
        }
    }

    #[rstest]
    #[case::node_is_a_kubelet_identity(Component::Node, "system:node:process-node", &["system:nodes"])]
    #[case::controller_manager_by_its_bootstrap_rbac_name(Component::KubeControllerManager, "system:kube-controller-manager", &[])]
    #[case::scheduler_by_its_bootstrap_rbac_name(Component::KubeScheduler, "system:kube-scheduler", &[])]
    fn component_identities(#[case] c: Component, #[case] user: &str, #[case] groups: &[&str]) {
        let id = identity(c);
        assert_eq!(
            (
                id.user.as_str(),
                id.groups.iter().map(String::as_str).collect::<Vec<_>>()
            ),
            (user, groups.to_vec())
        );
    }

    #[test]
    fn a_kubeconfig_holds_the_server_the_ca_and_the_identity_inline() {
        let text = kubeconfig(
            "https://127.0.0.1:6443",
            "CA-PEM",
            "alice",
            "CERT-PEM",
            "KEY-PEM",
        );
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(v["current-context"], "chromadb-local");
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority-data"],
            b64("CA-PEM").as_str()
        );
        assert_eq!(v["users"][0]["name"], "alice");
        assert_eq!(
            v["users"][0]["user"]["client-certificate-data"],
            b64("CERT-PEM").as_str()
        );
        assert_eq!(
            v["users"][0]["user"]["client-key-data"],
            b64("KEY-PEM").as_str()
        );
        assert_eq!(v["contexts"][0]["context"]["user"], "alice");
        // kube-rs reads it as a kubeconfig.
        let kc: kube::config::Kubeconfig = serde_yaml::from_str(&text).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("chromadb-local"));
    }
}
