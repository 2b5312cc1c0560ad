//! Reaching the server: a local listener on 127.0.0.1 whose every connection is tunnelled by
//! kube-rs' port-forward to a ready pod behind the release's Service — what `kubectl
//! port-forward svc/…` does, minus kubectl. The pod is looked up per connection, so a new
//! connection always reaches the current pod; a tunnel whose pod went away ends, and so does
//! the client's connection. The backend still replaces the whole forward after a restart,
//! so a pooled connection cannot outlive the pod it was tunnelled to.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::ListParams;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::readiness::pod_ready;

/// The container port the Service's API port lands on in `pod` (same rule as every backend:
/// [`crate::workload::api_target`]).
pub fn target_container_port(service: &Service, pod: &Pod) -> Result<u16, String> {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    crate::workload::api_target(service, containers)
        .map(|(_, to)| to)
        .map_err(|e| format!("{e} (pod {})", pod.metadata.name.as_deref().unwrap_or("?")))
}

/// A relay on 127.0.0.1 to the Service's ClusterIP and API port, for a cluster whose
/// Services this host reaches through its own kube-proxy rules (the local cluster): each
/// connection crosses kube-proxy's DNAT to a ready endpoint, as a client pod's would.
pub async fn start_cluster_ip(service: Service) -> std::io::Result<Forward> {
    let spec = service.spec.clone().unwrap_or_default();
    let ip = spec
        .cluster_ip
        .clone()
        .filter(|ip| !ip.is_empty() && ip != "None")
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "Service {} has no ClusterIP to reach",
                service.metadata.name.as_deref().unwrap_or("?")
            ))
        })?;
    let port = crate::workload::api_port(&service)
        .map_err(std::io::Error::other)?
        .port;
    let port = u16::try_from(port)
        .map_err(|_| std::io::Error::other(format!("Service port {port} is not a port number")))?;
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let local = listener.local_addr()?.port();
    let last_error: Arc<Mutex<Option<String>>> = Arc::default();
    let errors = last_error.clone();
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                continue;
            };
            let (ip, errors) = (ip.clone(), errors.clone());
            conns.spawn(async move {
                // kube-proxy programs a Service's rules about a second after its endpoints
                // change (a pod just became ready): a refused connection is tried again.
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
                loop {
                    match TcpStream::connect((ip.as_str(), port)).await {
                        Ok(mut out) => {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                            return;
                        }
                        Err(e) if tokio::time::Instant::now() >= deadline => {
                            *errors.lock().unwrap_or_else(|p| p.into_inner()) =
                                Some(format!("connecting to ClusterIP {ip}:{port}: {e}"));
                            return;
                        }
                        Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                    }
                }
            });
            while conns.try_join_next().is_some() {}
        }
    });
    Ok(Forward {
        port: local,
        task,
        last_error,
    })
}

/// `k=v,k=v` for listing the Service's pods.
pub fn selector_of(service: &Service) -> Result<String, String> {
    let sel: BTreeMap<String, String> = service
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    if sel.is_empty() {
        return Err(format!(
            "Service {} selects no pods",
            service.metadata.name.as_deref().unwrap_or("?")
        ));
    }
    Ok(sel
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(","))
}

/// The pod a Service would route to: a ready one, by name for a stable choice.
pub fn pick_pod(pods: &[Pod]) -> Option<&Pod> {
    pods.iter()
        .filter(|p| pod_ready(p))
        .min_by(|a, b| a.metadata.name.cmp(&b.metadata.name))
}

/// A running forward. Dropping it closes the listener *and* every connection it tunnels, so
/// a client holding a pooled connection to it sees that connection end at once instead of
/// talking to a pod that is gone.
pub struct Forward {
    pub port: u16,
    task: JoinHandle<()>,
    last_error: Arc<Mutex<Option<String>>>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Forward {
    /// Why the most recent tunnel failed (the port-forward's own error channel included), for
    /// failure reports: the client itself only sees a closed connection.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

pub async fn start(pods: Api<Pod>, service: Service) -> std::io::Result<Forward> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    let last_error = Arc::new(Mutex::new(None));
    let errors = last_error.clone();
    let task = tokio::spawn(async move {
        // Owned by this task: aborting it drops the set, which aborts every tunnel.
        let mut tunnels = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                // Reap finished tunnels so the set does not grow for the whole run.
                Some(_) = tunnels.join_next(), if !tunnels.is_empty() => continue,
            };
            let conn = match accepted {
                Ok((conn, _)) => conn,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "port-forward listener could not accept");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
            };
            let pods = pods.clone();
            let service = service.clone();
            let errors = errors.clone();
            tunnels.spawn(async move {
                if let Err(e) = tunnel(conn, &pods, &service).await {
                    tracing::warn!(error = %e, "port-forward connection failed");
                    *errors.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                }
            });
        }
    });
    Ok(Forward {
        port,
        task,
        last_error,
    })
}

/// How long to wait, after the data streams closed, for the pod side to report an error on
/// the port's error channel (kubelet sends it right after closing the data stream).
const ERROR_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

async fn tunnel(mut conn: TcpStream, pods: &Api<Pod>, service: &Service) -> Result<(), String> {
    let selector = selector_of(service)?;
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| format!("list pods: {e}"))?;
    let pod = pick_pod(&list.items).ok_or_else(|| format!("no ready pod matches {selector}"))?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let port = target_container_port(service, pod)?;
    let mut forwarder = pods
        .portforward(&pod_name, &[port])
        .await
        .map_err(|e| format!("port-forward to {pod_name}:{port}: {e}"))?;
    let mut upstream = forwarder
        .take_stream(port)
        .ok_or_else(|| format!("port-forward to {pod_name}:{port} gave no stream"))?;
    // Taken before anything else: `join` discards an error nobody took, and the kubelet's
    // reason ("connection refused" inside the pod, …) is only ever sent there.
    let mut pod_error = Box::pin(
        forwarder
            .take_error(port)
            .ok_or_else(|| format!("port-forward to {pod_name}:{port} gave no error channel"))?,
    );
    let (copied, reported) = {
        let copy = tokio::io::copy_bidirectional(&mut conn, &mut upstream);
        tokio::pin!(copy);
        tokio::select! {
            copied = &mut copy => {
                let late = tokio::time::timeout(ERROR_GRACE, &mut pod_error).await.ok().flatten();
                (Some(copied), late)
            }
            reported = &mut pod_error => (None, reported),
        }
    };
    drop(upstream);
    if let Some(message) = reported {
        forwarder.abort();
        return Err(tunnel_error(&pod_name, port, &message));
    }
    let joined = forwarder.join().await;
    if let Some(Err(e)) = copied {
        return Err(format!("forwarding to {pod_name}:{port}: {e}"));
    }
    joined.map_err(|e| format!("port-forward to {pod_name}:{port} ended with: {e}"))
}

/// The sentence for an error the pod side reported on the port's error channel.
pub fn tunnel_error(pod: &str, port: u16, message: &str) -> String {
    format!(
        "port-forward to {pod}:{port} failed on the pod side: {}",
        message.trim()
    )
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use serde_json::{Value, json};

    use super::*;

    fn service(target: Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "chroma-chromadb"},
            "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/instance": "chroma", "app.kubernetes.io/name": "chromadb"},
                     "ports": [{"name": "http", "port": 8000, "targetPort": target, "protocol": "TCP"}]}
        }))
        .expect("Service parses")
    }

    fn pod(name: &str, ready: bool, port_name: &str, port: i32) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "chromadb", "image": "chromadb/chroma:1.5.0",
                                     "ports": [{"name": port_name, "containerPort": port, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .expect("Pod parses")
    }

    #[rstest]
    #[case::named_port_resolved_in_the_pod(json!("http"), 8000)]
    #[case::numeric_target_taken_as_is(json!(9000), 9000)]
    fn target_port(#[case] target: Value, #[case] expected: u16) {
        assert_eq!(
            target_container_port(
                &service(target),
                &pod("chroma-chromadb-0", true, "http", 8000)
            ),
            Ok(expected)
        );
    }

    #[test]
    fn named_port_missing_in_pod_is_explained() {
        let err = target_container_port(&service(json!("http")), &pod("p-0", true, "web", 8000))
            .expect_err("no port");
        assert!(err.contains("`http`") && err.contains("pod p-0"), "{err}");
    }

    #[test]
    fn selector_is_comma_joined() {
        assert_eq!(
            selector_of(&service(json!("http"))),
            Ok("app.kubernetes.io/instance=chroma,app.kubernetes.io/name=chromadb".to_string())
        );
    }

    #[test]
    fn only_ready_pods_are_picked() {
        let pods = [
            pod("a-0", false, "http", 8000),
            pod("b-0", true, "http", 8000),
        ];
        assert_eq!(
            pick_pod(&pods).and_then(|p| p.metadata.name.as_deref()),
            Some("b-0")
        );
    }

    #[test]
    fn no_ready_pod_no_pick() {
        assert!(pick_pod(&[pod("a-0", false, "http", 8000)]).is_none());
    }

    #[test]
    fn pod_side_error_names_pod_port_and_kubelet_message() {
        assert_eq!(
            tunnel_error(
                "chroma-chromadb-0",
                8000,
                "error forwarding port 8000 to pod abc: dial tcp4 127.0.0.1:8000: connect: connection refused\n"
            ),
            "port-forward to chroma-chromadb-0:8000 failed on the pod side: error forwarding port 8000 to pod abc: dial tcp4 127.0.0.1:8000: connect: connection refused"
        );
    }

    /// A Service whose pods cannot be listed (no API server behind the client) fails the
    /// tunnel; the client sees its connection closed, and the reason is kept for reports.
    #[tokio::test]
    async fn failed_tunnel_closes_the_connection_and_keeps_the_reason() {
        use tokio::io::AsyncReadExt;
        let config = kube::Config::new("http://127.0.0.1:1".parse().expect("url"));
        chroma_api::ensure_crypto_provider();
        let client = kube::Client::try_from(config).expect("client");
        let fwd = start(Api::namespaced(client, "ns"), service(json!("http")))
            .await
            .expect("listener");
        let mut conn = TcpStream::connect(("127.0.0.1", fwd.port))
            .await
            .expect("connect");
        let mut buf = Vec::new();
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            conn.read_to_end(&mut buf),
        )
        .await
        .expect("closed in time");
        assert_eq!(n.expect("read"), 0, "nothing is forwarded");
        // The connection closes as the tunnel returns; the reason is stored just after.
        let mut why = None;
        for _ in 0..50 {
            why = fwd.last_error();
            if why.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let why = why.expect("the failure is kept");
        assert!(why.starts_with("list pods: "), "{why}");
    }

    #[tokio::test]
    async fn dropping_the_forward_closes_its_listener() {
        let config = kube::Config::new("http://127.0.0.1:1".parse().expect("url"));
        chroma_api::ensure_crypto_provider();
        let client = kube::Client::try_from(config).expect("client");
        let fwd = start(Api::namespaced(client, "ns"), service(json!("http")))
            .await
            .expect("listener");
        let port = fwd.port;
        drop(fwd);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(
            TcpStream::connect(("127.0.0.1", port)).await.is_err(),
            "port {port} still accepts"
        );
    }
}
