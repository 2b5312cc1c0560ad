//! The node's pod network: every pod gets a network namespace with one address from the
//! node's `podCIDR`, wired to the host by a veth pair and routed, not bridged. The host holds
//! the gateway address on an interface of its own and a /32 route to each pod through its veth, so
//! every packet between pods, Services and the host crosses the host's IP layer, where
//! kube-proxy's nftables rules and the NetworkPolicy controller's iptables rules see it (a
//! bridge would need br_netfilter for that, which these kernels may not have).
//!
//! Needs root and iproute2. Every name made here starts with a prefix of its own, so a sweep
//! after a crash finds exactly what this node made.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The host's interface holding the gateway address: a bridge with no ports, used only as a
/// place for the address (these kernels have no `dummy` link type).
pub const GATEWAY_DEV: &str = "cni-chroma0";
/// Network namespaces of pods: `cpod-<last octets>`.
const NETNS_PREFIX: &str = "cpod-";
/// Host ends of the veth pairs: `cveth<n>`.
const VETH_PREFIX: &str = "cveth";
/// Routing between pods and the host needs forwarding on; the value found before is kept
/// here and put back by the sweep, so the machine ends as it was.
const FORWARD: &str = "net.ipv4.ip_forward";
const FORWARD_SAVED: &str = "/run/chromadb-process-node.ip_forward";

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("the pod network needs root (network namespaces, interfaces, routes); this is uid {0}")]
    NotRoot(u32),
    #[error("the pod network needs iproute2's `ip` (apt-get install iproute2)")]
    NoIp,
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("pod CIDR {0} is not an IPv4 /16../30 network")]
    Cidr(String),
    #[error("no free address left in pod CIDR {0}")]
    Full(String),
}

/// An IPv4 network, as `podCIDR` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, NetError> {
        let bad = || NetError::Cidr(s.to_string());
        let (ip, prefix) = s.split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(16..=30).contains(&prefix) {
            return Err(bad());
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Cidr {
            base: Ipv4Addr::from(u32::from(ip) & mask),
            prefix,
        })
    }

    /// The first host address: the pods' gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + 1)
    }

    /// Addresses pods may get: after the gateway, before the broadcast address.
    pub fn pod_addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.base) + 2;
        let last = u32::from(self.base) + (1u32 << (32 - self.prefix)) - 2;
        (first..=last).map(Ipv4Addr::from)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// The names of one pod's namespace and host interface, derived from its address so that a
/// sweep can map either back to the other.
pub fn names_for(ip: Ipv4Addr) -> (String, String) {
    let o = ip.octets();
    let n = u32::from(o[2]) * 256 + u32::from(o[3]);
    (
        format!("{NETNS_PREFIX}{}-{}", o[2], o[3]),
        format!("{VETH_PREFIX}{n}"),
    )
}

/// The `ip` commands (argv after `ip`) that wire a pod: namespace, veth with its pod end named
/// eth0 inside, the pod's /32, an on-link route to the gateway and the default route through
/// it, and the host's /32 route back.
pub fn attach_commands(ip: Ipv4Addr, gateway: Ipv4Addr) -> Vec<Vec<String>> {
    let (ns, veth) = names_for(ip);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let (ip, gw) = (ip.to_string(), gateway.to_string());
    vec![
        s(&["netns", "add", &ns]),
        s(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]),
        s(&["link", "set", &veth, "up"]),
        s(&["-n", &ns, "link", "set", "lo", "up"]),
        s(&["-n", &ns, "addr", "add", &format!("{ip}/32"), "dev", "eth0"]),
        s(&["-n", &ns, "link", "set", "eth0", "up"]),
        s(&[
            "-n", &ns, "route", "add", &gw, "dev", "eth0", "scope", "link",
        ]),
        s(&[
            "-n", &ns, "route", "add", "default", "via", &gw, "dev", "eth0",
        ]),
        s(&["route", "add", &format!("{ip}/32"), "dev", &veth]),
    ]
}

fn ip_path() -> Result<PathBuf, NetError> {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or(NetError::NoIp)
}

fn run(ip: &Path, args: &[String]) -> Result<(), NetError> {
    let command = format!("ip {}", args.join(" "));
    tracing::debug!("{command}");
    let out = Command::new(ip)
        .args(args)
        .output()
        .map_err(|source| NetError::Io {
            context: format!("running {command}"),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError::Command {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn sysctl_path(key: &str) -> PathBuf {
    Path::new("/proc/sys").join(key.replace('.', "/"))
}

/// The node's side of the pod network: the gateway and the address pool.
pub struct PodNetwork {
    ip: PathBuf,
    pub cidr: Cidr,
    used: std::sync::Mutex<std::collections::BTreeSet<Ipv4Addr>>,
}

impl PodNetwork {
    /// Sweeps what an earlier node left, then puts the gateway address on its own interface
    /// and turns on forwarding (pods' packets are routed through the host).
    pub fn setup(cidr: Cidr) -> Result<PodNetwork, NetError> {
        let uid = nix::unistd::geteuid();
        if !uid.is_root() {
            return Err(NetError::NotRoot(uid.as_raw()));
        }
        let ip = ip_path()?;
        sweep(&ip);
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        run(&ip, &s(&["link", "add", GATEWAY_DEV, "type", "bridge"]))?;
        run(
            &ip,
            &s(&[
                "addr",
                "add",
                &format!("{}/32", cidr.gateway()),
                "dev",
                GATEWAY_DEV,
            ]),
        )?;
        run(&ip, &s(&["link", "set", GATEWAY_DEV, "up"]))?;
        let forward = sysctl_path(FORWARD);
        let before = std::fs::read_to_string(&forward).map_err(|source| NetError::Io {
            context: format!("reading {FORWARD}"),
            source,
        })?;
        if !Path::new(FORWARD_SAVED).exists() {
            std::fs::write(FORWARD_SAVED, before.trim()).map_err(|source| NetError::Io {
                context: format!("writing {FORWARD_SAVED}"),
                source,
            })?;
        }
        std::fs::write(&forward, "1").map_err(|source| NetError::Io {
            context: format!("setting {FORWARD}=1"),
            source,
        })?;
        Ok(PodNetwork {
            ip,
            cidr,
            used: Default::default(),
        })
    }

    /// Wires a pod with the next free address.
    pub fn attach(&self) -> Result<PodNetns, NetError> {
        let addr = {
            let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
            let a = self.cidr.pod_addresses().find(|a| {
                !used.contains(a) && !Path::new("/run/netns").join(names_for(*a).0).exists()
            });
            let a = a.ok_or_else(|| NetError::Full(self.cidr.to_string()))?;
            used.insert(a);
            a
        };
        let (ns, veth) = names_for(addr);
        let guard = PodNetns {
            ip: self.ip.clone(),
            netns: ns,
            veth,
            addr,
        };
        for cmd in attach_commands(addr, self.cidr.gateway()) {
            run(&self.ip, &cmd)?;
        }
        Ok(guard)
    }

    pub fn release(&self, n: PodNetns) {
        let addr = n.addr;
        drop(n);
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&addr);
    }

    pub fn ip_program(&self) -> &Path {
        &self.ip
    }
}

impl Drop for PodNetwork {
    fn drop(&mut self) {
        sweep(&self.ip);
    }
}

/// One pod's namespace; dropping it deletes the namespace (and with it both veth ends and the
/// host route).
#[derive(Debug)]
pub struct PodNetns {
    ip: PathBuf,
    pub netns: String,
    veth: String,
    pub addr: Ipv4Addr,
}

impl Drop for PodNetns {
    fn drop(&mut self) {
        let _ = Command::new(&self.ip)
            .args(["netns", "del", &self.netns])
            .output();
        let _ = Command::new(&self.ip)
            .args(["link", "del", &self.veth])
            .output();
    }
}

/// Deletes every pod namespace, host veth and the gateway interface this node's kind makes.
/// Returns what it removed, for `cluster down`'s account.
pub fn sweep_all() -> Vec<String> {
    match ip_path() {
        Ok(ip) => sweep(&ip),
        Err(_) => Vec::new(),
    }
}

fn sweep(ip: &Path) -> Vec<String> {
    let mut removed = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/run/netns") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(NETNS_PREFIX)
                && Command::new(ip)
                    .args(["netns", "del", &name])
                    .output()
                    .is_ok_and(|o| o.status.success())
            {
                removed.push(format!("netns {name}"));
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/sys/class/net") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if (name.starts_with(VETH_PREFIX) || name == GATEWAY_DEV)
                && Command::new(ip)
                    .args(["link", "del", &name])
                    .output()
                    .is_ok_and(|o| o.status.success())
            {
                removed.push(format!("link {name}"));
            }
        }
    }
    removed.extend(crate::process::podnet::release_netns_dir());
    if let Ok(before) = std::fs::read_to_string(FORWARD_SAVED)
        && std::fs::write(sysctl_path(FORWARD), before.trim()).is_ok()
    {
        removed.push(format!("{FORWARD} back to {}", before.trim()));
        let _ = std::fs::remove_file(FORWARD_SAVED);
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::node_slice("10.244.0.0/24", "10.244.0.1", "10.244.0.2", "10.244.0.254", 253)]
    #[case::unaligned_base_is_masked(
        "10.244.1.7/24",
        "10.244.1.1",
        "10.244.1.2",
        "10.244.1.254",
        253
    )]
    #[case::small("192.168.5.0/29", "192.168.5.1", "192.168.5.2", "192.168.5.6", 5)]
    fn the_cidr_gives_a_gateway_and_a_pool_without_network_and_broadcast(
        #[case] cidr: &str,
        #[case] gw: &str,
        #[case] first: &str,
        #[case] last: &str,
        #[case] n: usize,
    ) {
        let c = Cidr::parse(cidr).unwrap();
        assert_eq!(c.gateway().to_string(), gw);
        let pool: Vec<Ipv4Addr> = c.pod_addresses().collect();
        assert_eq!(
            (
                pool[0].to_string(),
                pool.last().unwrap().to_string(),
                pool.len()
            ),
            (first.into(), last.into(), n)
        );
    }

    #[rstest]
    #[case::no_prefix("10.244.0.0")]
    #[case::ipv6("fd00::/64")]
    #[case::too_wide("10.0.0.0/8")]
    #[case::garbage("x/24")]
    fn a_bad_cidr_is_refused_naming_it(#[case] cidr: &str) {
        let e = Cidr::parse(cidr).unwrap_err();
        assert!(e.to_string().contains(cidr), "{e}");
    }

    #[test]
    fn names_map_an_address_to_its_namespace_and_veth_and_stay_within_ifnamsiz() {
        let (ns, veth) = names_for("10.244.0.17".parse().unwrap());
        assert_eq!((ns.as_str(), veth.as_str()), ("cpod-0-17", "cveth17"));
        let (_, veth) = names_for("10.244.255.254".parse().unwrap());
        assert!(veth.len() < 16, "{veth}");
    }

    #[test]
    fn a_pod_is_routed_through_the_gateway_and_the_host_routes_back_through_its_veth() {
        let cmds: Vec<String> =
            attach_commands("10.244.0.5".parse().unwrap(), "10.244.0.1".parse().unwrap())
                .iter()
                .map(|c| c.join(" "))
                .collect();
        assert!(
            cmds.contains(&"-n cpod-0-5 route add default via 10.244.0.1 dev eth0".to_string()),
            "{cmds:?}"
        );
        assert!(
            cmds.contains(&"-n cpod-0-5 addr add 10.244.0.5/32 dev eth0".to_string()),
            "{cmds:?}"
        );
        assert_eq!(cmds.last().unwrap(), "route add 10.244.0.5/32 dev cveth5");
        // The namespace exists before anything is put into it.
        assert_eq!(cmds[0], "netns add cpod-0-5");
    }
}
