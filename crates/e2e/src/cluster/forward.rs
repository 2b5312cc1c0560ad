//! Reaching the server: a local listener on 127.0.0.1 whose every connection is tunnelled by
//! kube-rs' port-forward to a ready pod behind the release's Service — what `kubectl
//! port-forward svc/…` does, minus kubectl. The pod is looked up per connection, so a
//! restarted or upgraded pod is picked up without re-creating the listener.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::ListParams;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::readiness::pod_ready;

/// The container port the Service's API port lands on in `pod` (same rule as every backend:
/// [`crate::workload::api_target`]).
pub fn target_container_port(service: &Service, pod: &Pod) -> Result<u16, String> {
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    crate::workload::api_target(service, containers)
        .map(|(_, to)| to)
        .map_err(|e| format!("{e} (pod {})", pod.metadata.name.as_deref().unwrap_or("?")))
}

/// `k=v,k=v` for listing the Service's pods.
pub fn selector_of(service: &Service) -> Result<String, String> {
    let sel: BTreeMap<String, String> = service.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
    if sel.is_empty() {
        return Err(format!("Service {} selects no pods", service.metadata.name.as_deref().unwrap_or("?")));
    }
    Ok(sel.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","))
}

/// The pod a Service would route to: a ready one, by name for a stable choice.
pub fn pick_pod(pods: &[Pod]) -> Option<&Pod> {
    pods.iter().filter(|p| pod_ready(p)).min_by(|a, b| a.metadata.name.cmp(&b.metadata.name))
}

/// A running forward; aborted (listener closed) when dropped.
pub struct Forward {
    pub port: u16,
    task: JoinHandle<()>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start(pods: Api<Pod>, service: Service) -> std::io::Result<Forward> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        loop {
            let conn = match listener.accept().await {
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
            tokio::spawn(async move {
                if let Err(e) = tunnel(conn, &pods, &service).await {
                    // The client sees a closed connection; the reason is only useful in logs.
                    tracing::warn!(error = %e, "port-forward connection failed");
                }
            });
        }
    });
    Ok(Forward { port, task })
}

async fn tunnel(mut conn: TcpStream, pods: &Api<Pod>, service: &Service) -> Result<(), String> {
    let selector = selector_of(service)?;
    let list = pods.list(&ListParams::default().labels(&selector)).await.map_err(|e| format!("list pods: {e}"))?;
    let pod = pick_pod(&list.items).ok_or_else(|| format!("no ready pod matches {selector}"))?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let port = target_container_port(service, pod)?;
    let mut forwarder = pods.portforward(&pod_name, &[port]).await.map_err(|e| format!("port-forward to {pod_name}:{port}: {e}"))?;
    let mut upstream = forwarder.take_stream(port).ok_or_else(|| format!("port-forward to {pod_name}:{port} gave no stream"))?;
    let copied = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
    drop(upstream);
    let joined = forwarder.join().await;
    copied.map_err(|e| format!("forwarding to {pod_name}:{port}: {e}"))?;
    joined.map_err(|e| format!("port-forward to {pod_name}:{port} ended with: {e}"))
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
        assert_eq!(target_container_port(&service(target), &pod("chroma-chromadb-0", true, "http", 8000)), Ok(expected));
    }

    #[test]
    fn named_port_missing_in_pod_is_explained() {
        let err = target_container_port(&service(json!("http")), &pod("p-0", true, "web", 8000)).expect_err("no port");
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
        let pods = [pod("a-0", false, "http", 8000), pod("b-0", true, "http", 8000)];
        assert_eq!(pick_pod(&pods).and_then(|p| p.metadata.name.as_deref()), Some("b-0"));
    }

    #[test]
    fn no_ready_pod_no_pick() {
        assert!(pick_pod(&[pod("a-0", false, "http", 8000)]).is_none());
    }
}
