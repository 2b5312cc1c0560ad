//! A pod network for hook pods on the process backend: a network namespace with an address
//! of its own, a hosts file answering the release's Service names the way cluster DNS would
//! (every search-domain spelling, from the short name to `…svc.cluster.local`), and each
//! Service's address served by a relay to the server, the way kube-proxy's userspace mode
//! stood in for a ClusterIP. A hook's `curl http://<svc>.<ns>.svc:<port>` therefore resolves
//! a real name and crosses a real network hop; nothing in its command is rewritten.
//!
//! Needs root and iproute2. `ip netns exec` bind-mounts `/etc/netns/<name>/hosts` over
//! `/etc/hosts` for the command it runs, which is what makes the names resolve.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

use rand::Rng;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Namespaces this backend creates start with this, so leftovers of a killed run are
/// recognisable (and swept: see [`sweep_orphans`]).
const PREFIX: &str = "ce2e-";
/// 10.213.0.0/16 in /30 slots: one slot per hook pod, picked at random so concurrent runs on
/// one machine rarely meet; a taken slot (its interface names exist) is skipped.
const SLOTS: u32 = 1 << 14;
const NET_BASE: u32 = u32::from_be_bytes([10, 213, 0, 0]);
/// Which process made each namespace, for the orphan sweep.
const OWNERS: &str = "/run/chromadb-e2e-netns";

fn owner_file(ns: &str) -> PathBuf {
    Path::new(OWNERS).join(ns)
}

#[derive(Debug, thiserror::Error)]
pub enum PodNetError {
    /// This machine cannot make pod networks (not root, no `ip`); the reason says which.
    #[error("{0}")]
    Unavailable(String),
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PodNetError {
    let context = context.into();
    move |source| PodNetError::Io { context, source }
}

/// `Ok(path to ip)` when pod networks can be made here; otherwise why not.
pub fn available() -> Result<PathBuf, PodNetError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(PodNetError::Unavailable("hook pods need network namespaces, which need root (run the harness as root, as CI does)".into()));
    }
    let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            PodNetError::Unavailable(
                "hook pods need iproute2's `ip` (apt-get install iproute2)".into(),
            )
        })?;
    Ok(ip)
}

fn run(ip: &Path, args: &[&str]) -> Result<(), PodNetError> {
    let command = format!("ip {}", args.join(" "));
    tracing::debug!("running {command}");
    let out = Command::new(ip)
        .args(args)
        .output()
        .map_err(io(format!("running {command}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(PodNetError::Command {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// A Service as a hook pod sees it: its DNS names and the ports it relays to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    pub name: String,
    /// (Service port, where the relay delivers: the server's host address).
    pub ports: Vec<(u16, SocketAddr)>,
}

/// The hosts file of a pod in `namespace`: cluster DNS's answers for each Service, under
/// every name the pod's search path would try.
pub fn hosts_file(
    pod_name: &str,
    pod_ip: Ipv4Addr,
    namespace: &str,
    services: &[ServiceView],
    service_ip: Ipv4Addr,
) -> String {
    let mut out = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{pod_ip}\t{pod_name}\n"
    );
    for s in services {
        let n = &s.name;
        out.push_str(&format!("{service_ip}\t{n} {n}.{namespace} {n}.{namespace}.svc {n}.{namespace}.svc.cluster.local\n"));
    }
    out
}

/// The resolv.conf a pod gets: the cluster search path (no nameserver is reachable; every
/// answer comes from the hosts file, and an unknown name fails as it would in a cluster).
pub fn resolv_conf(namespace: &str) -> String {
    format!(
        "search {namespace}.svc.cluster.local svc.cluster.local cluster.local\nnameserver 127.0.0.53\noptions ndots:5\n"
    )
}

/// One hook pod's network. Dropping it removes the namespace (and with it both veth ends),
/// its /etc/netns files and the relays.
pub struct PodNet {
    ip: PathBuf,
    pub name: String,
    host_if: String,
    pub host_ip: Ipv4Addr,
    pub pod_ip: Ipv4Addr,
    pod_name: String,
    namespace: String,
    relays: Vec<JoinHandle<()>>,
}

impl PodNet {
    /// Makes the namespace, wires it to this host through a veth pair, writes its hosts and
    /// resolv.conf, and starts one relay per Service port on the Service address.
    pub async fn create(
        pod_name: &str,
        namespace: &str,
        services: &[ServiceView],
    ) -> Result<PodNet, PodNetError> {
        let ip = available()?;
        sweep_orphans(&ip);
        let mut last = None;
        for _ in 0..16 {
            let slot = rand::rng().random_range(0..SLOTS);
            match Self::create_in_slot(&ip, slot, pod_name, namespace) {
                Ok(mut net) => {
                    net.start_relays(services).await?;
                    return Ok(net);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| PodNetError::Unavailable("no free pod network slot".into())))
    }

    fn create_in_slot(
        ip: &Path,
        slot: u32,
        pod_name: &str,
        namespace: &str,
    ) -> Result<PodNet, PodNetError> {
        let base = NET_BASE + slot * 4;
        let (host_ip, pod_ip) = (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));
        let name = format!("{PREFIX}{slot}-{}", std::process::id());
        let (host_if, pod_if) = (format!("ce2h{slot}"), format!("ce2p{slot}"));
        // Creating the host end claims the slot: if another run holds it, this fails and there
        // is nothing of ours to undo (the guard below would delete that run's link).
        run(
            ip,
            &[
                "link", "add", &host_if, "type", "veth", "peer", "name", &pod_if,
            ],
        )?;
        // From here the guard owns the link, so a failure half-way is undone.
        let net = PodNet {
            ip: ip.to_path_buf(),
            name: name.clone(),
            host_if: host_if.clone(),
            host_ip,
            pod_ip,
            pod_name: pod_name.to_string(),
            namespace: namespace.to_string(),
            relays: Vec::new(),
        };
        run(ip, &["netns", "add", &name])?;
        run(ip, &["link", "set", &pod_if, "netns", &name])?;
        run(
            ip,
            &["addr", "add", &format!("{host_ip}/30"), "dev", &host_if],
        )?;
        run(ip, &["link", "set", &host_if, "up"])?;
        run(
            ip,
            &[
                "-n",
                &name,
                "addr",
                "add",
                &format!("{pod_ip}/30"),
                "dev",
                &pod_if,
            ],
        )?;
        run(ip, &["-n", &name, "link", "set", &pod_if, "up"])?;
        run(ip, &["-n", &name, "link", "set", "lo", "up"])?;
        run(
            ip,
            &[
                "-n",
                &name,
                "route",
                "add",
                "default",
                "via",
                &host_ip.to_string(),
            ],
        )?;
        let dir = net.etc_dir();
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        // Not beside hosts: `ip netns exec` bind-mounts every file of that directory into /etc.
        std::fs::create_dir_all(OWNERS).map_err(io(format!("creating {OWNERS}")))?;
        std::fs::write(owner_file(&name), std::process::id().to_string())
            .map_err(io("writing the owner file"))?;
        std::fs::write(dir.join("resolv.conf"), resolv_conf(namespace))
            .map_err(io("writing resolv.conf"))?;
        Ok(net)
    }

    fn etc_dir(&self) -> PathBuf {
        Path::new("/etc/netns").join(&self.name)
    }

    async fn start_relays(&mut self, services: &[ServiceView]) -> Result<(), PodNetError> {
        let hosts = hosts_file(
            &self.pod_name,
            self.pod_ip,
            &self.namespace,
            services,
            self.host_ip,
        );
        std::fs::write(self.etc_dir().join("hosts"), hosts).map_err(io("writing hosts"))?;
        let mut bound = std::collections::BTreeSet::new();
        for (port, to) in services.iter().flat_map(|s| s.ports.iter().copied()) {
            if !bound.insert(port) {
                continue;
            }
            let listener = TcpListener::bind((self.host_ip, port))
                .await
                .map_err(io(format!(
                    "binding the Service relay on {}:{port}",
                    self.host_ip
                )))?;
            self.relays.push(tokio::spawn(relay(listener, to)));
        }
        Ok(())
    }

    /// `ip netns exec <ns> <program> <args…>`: the program sees this pod's network and files.
    pub fn exec(&self, program: &str, args: &[String]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.ip);
        c.args(["netns", "exec", &self.name, program]).args(args);
        c
    }
}

async fn relay(listener: TcpListener, to: SocketAddr) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

impl Drop for PodNet {
    fn drop(&mut self) {
        for r in &self.relays {
            r.abort();
        }
        let _ = run(&self.ip, &["netns", "del", &self.name]);
        // Normally gone with the namespace; a half-made net may have it on the host only.
        let _ = Command::new(&self.ip)
            .args(["link", "del", &self.host_if])
            .output();
        let _ = std::fs::remove_dir_all(self.etc_dir());
        let _ = std::fs::remove_file(owner_file(&self.name));
        release_netns_dir();
    }
}

/// `ip netns add` bind-mounts `/run/netns` onto itself the first time it runs and leaves that
/// mount behind for good; once the last namespace in it is gone it holds nothing, and the next
/// `ip netns add` makes it again. While any namespace (ours or anyone's) is still in it the
/// unmount fails with EBUSY and the mount stays. Returns the account line when it went.
pub fn release_netns_dir() -> Option<String> {
    const DIR: &str = "/run/netns";
    let empty = std::fs::read_dir(DIR).is_ok_and(|mut d| d.next().is_none());
    if !empty || !is_mount_point(&std::fs::read_to_string("/proc/mounts").ok()?, DIR) {
        return None;
    }
    Command::new("umount")
        .arg(DIR)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| format!("mount {DIR} (made by ip netns add)"))
}

fn is_mount_point(proc_mounts: &str, dir: &str) -> bool {
    proc_mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(dir))
}

/// Removes namespaces of ours whose owning process is gone (a run killed with SIGKILL).
fn sweep_orphans(ip: &Path) {
    let Ok(entries) = std::fs::read_dir("/etc/netns") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(PREFIX) {
            continue;
        }
        let owner = std::fs::read_to_string(owner_file(&name))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        let alive = owner.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = run(ip, &["netns", "del", &name]);
            if let Some(slot) = name.strip_prefix(PREFIX).and_then(|r| r.split('-').next()) {
                let _ = Command::new(ip)
                    .args(["link", "del", &format!("ce2h{slot}")])
                    .output();
            }
            let _ = std::fs::remove_dir_all(e.path());
            let _ = std::fs::remove_file(owner_file(&name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case::the_netns_dir_bind_mounted_onto_itself(
        "/dev/vda /run/netns ext4 rw,relatime 0 0\n",
        true
    )]
    #[case::a_namespace_inside_it_is_not_the_dir("nsfs /run/netns/cpod-0-5 nsfs rw 0 0\n", false)]
    #[case::no_mount_there("tmpfs /run tmpfs rw 0 0\n", false)]
    fn the_netns_dir_counts_as_mounted_only_by_its_own_entry(
        #[case] mounts: &str,
        #[case] expected: bool,
    ) {
        assert_eq!(is_mount_point(mounts, "/run/netns"), expected);
    }

    fn svc(name: &str) -> ServiceView {
        ServiceView {
            name: name.into(),
            ports: vec![(8000, "127.0.0.1:4000".parse().unwrap())],
        }
    }

    #[test]
    fn hosts_file_answers_every_search_domain_spelling_of_a_service() {
        let h = hosts_file(
            "t-0",
            Ipv4Addr::new(10, 213, 0, 2),
            "ns1",
            &[svc("r-chromadb")],
            Ipv4Addr::new(10, 213, 0, 1),
        );
        let line = h.lines().find(|l| l.contains("r-chromadb")).unwrap();
        assert_eq!(
            line,
            "10.213.0.1\tr-chromadb r-chromadb.ns1 r-chromadb.ns1.svc r-chromadb.ns1.svc.cluster.local"
        );
    }

    #[test]
    fn hosts_file_names_the_pod_at_its_own_address() {
        let h = hosts_file(
            "t-0",
            Ipv4Addr::new(10, 213, 0, 2),
            "ns1",
            &[],
            Ipv4Addr::new(10, 213, 0, 1),
        );
        assert!(h.lines().any(|l| l == "10.213.0.2\tt-0"), "{h}");
    }

    #[test]
    fn resolv_conf_searches_the_pods_namespace_first() {
        assert!(
            resolv_conf("ns1")
                .starts_with("search ns1.svc.cluster.local svc.cluster.local cluster.local\n")
        );
    }
}
