//! The part of the kubelet's HTTPS API the API server calls for `kubectl logs`:
//! `GET /containerLogs/{namespace}/{pod}/{container}` (`tailLines`, `previous`), served from
//! the log files the node writes per container start, and `/healthz`. One endpoint of its
//! own stands in for the node's container runtime CLI (`crictl stop --timeout 0`):
//! `POST /process-node/kill/{namespace}/{pod}/{container}` SIGKILLs the container, reached
//! through the API server's `nodes/<node>/proxy` as any kubelet endpoint is. Clients must present a
//! certificate of the cluster's CA (the API server's kubelet-client certificate); a request
//! without one is refused at the handshake.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum KubeletApiError {
    #[error("reading {what} {path}: {source}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("the kubelet API's TLS setup: {0}")]
    Tls(String),
    #[error("binding the kubelet API on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The newest folder of a pod on this node (a StatefulSet reuses the name for a new pod).
fn pod_dir(pods_root: &Path, ns: &str, pod: &str) -> Option<PathBuf> {
    let prefix = format!("{ns}_{pod}_");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(pods_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    dirs.sort_by_key(|d| std::fs::metadata(d).and_then(|m| m.modified()).ok());
    dirs.pop()
}

/// SIGKILL to the running container's whole process group, as `crictl stop --timeout 0`.
pub fn kill_container(
    pods_root: &Path,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<i32, String> {
    let dir = pod_dir(pods_root, ns, pod)
        .ok_or_else(|| format!("pod {ns}/{pod} does not run on this node"))?;
    let file = dir.join("containers").join(container).join("pgid");
    let pgid: i32 = std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| {
            format!("container {container} of pod {ns}/{pod} has not started on this node")
        })?;
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .map_err(|e| format!("SIGKILL to container {container} (process group {pgid}): {e}"))?;
    Ok(pgid)
}

/// The log files of one container, oldest start first: `<pods_root>/<ns>_<pod>_<uid>/logs/<container>/<n>.log`.
pub fn container_logs(pods_root: &Path, ns: &str, pod: &str, container: &str) -> Vec<PathBuf> {
    let Some(dir) = pod_dir(pods_root, ns, pod) else {
        return Vec::new();
    };
    let mut logs: Vec<(u32, PathBuf)> = std::fs::read_dir(dir.join("logs").join(container))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.path().file_stem()?.to_str()?.parse().ok()?, e.path())))
        .collect();
    logs.sort();
    logs.into_iter().map(|(_, p)| p).collect()
}

/// `tailLines` of `text` (all of it without the parameter).
pub fn tail_lines(text: &str, n: Option<usize>) -> String {
    match n {
        None => text.to_string(),
        Some(n) => {
            let lines: Vec<&str> = text.lines().collect();
            let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
            if !out.is_empty() {
                out.push('\n');
            }
            out
        }
    }
}

fn query(uri: &hyper::Uri, key: &str) -> Option<String> {
    uri.query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

fn respond(pods_root: &Path, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let text = |code: StatusCode, body: String| {
        Response::builder()
            .status(code)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from(body)))
            .expect("a valid response")
    };
    let path = req.uri().path();
    if path == "/healthz" {
        return text(StatusCode::OK, "ok".into());
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let ["process-node", "kill", ns, pod, container] = parts.as_slice() {
        if req.method() != hyper::Method::POST {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "POST to kill a container".into(),
            );
        }
        return match kill_container(pods_root, ns, pod, container) {
            Ok(pgid) => text(
                StatusCode::OK,
                format!(
                    "killed container {container} of pod {ns}/{pod} (process group {pgid}) with SIGKILL"
                ),
            ),
            Err(e) => text(StatusCode::NOT_FOUND, e),
        };
    }
    let ["containerLogs", ns, pod, container] = parts.as_slice() else {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "{path}: this node serves only /containerLogs/<namespace>/<pod>/<container> and /healthz"
            ),
        );
    };
    let logs = container_logs(pods_root, ns, pod, container);
    let previous = query(req.uri(), "previous").as_deref() == Some("true");
    let pick = if previous {
        logs.len().checked_sub(2).and_then(|i| logs.get(i))
    } else {
        logs.last()
    };
    let Some(file) = pick else {
        let what = if previous {
            "a previous terminated"
        } else {
            "a"
        };
        return text(
            StatusCode::BAD_REQUEST,
            format!("container \"{container}\" in pod \"{pod}\" has no {what} log on this node"),
        );
    };
    let content = String::from_utf8_lossy(&std::fs::read(file).unwrap_or_default()).into_owned();
    let n = query(req.uri(), "tailLines").and_then(|v| v.parse().ok());
    text(StatusCode::OK, tail_lines(&content, n))
}

/// Serves until the task is dropped.
pub async fn serve(
    addr: SocketAddr,
    cert: &Path,
    key: &Path,
    client_ca: &Path,
    pods_root: PathBuf,
) -> Result<(), KubeletApiError> {
    fn pem(
        what: &'static str,
        path: &Path,
    ) -> impl FnOnce(rustls_pki_types::pem::Error) -> KubeletApiError + use<> {
        let path = path.to_path_buf();
        move |source| KubeletApiError::Pem { what, path, source }
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(pem("certificate", cert))?
        .collect::<Result<_, _>>()
        .map_err(pem("certificate", cert))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(pem("key", key))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(client_ca).map_err(pem("CA", client_ca))? {
        roots
            .add(ca.map_err(pem("CA", client_ca))?)
            .map_err(|e| KubeletApiError::Tls(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| KubeletApiError::Tls(e.to_string()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| KubeletApiError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| KubeletApiError::Tls(e.to_string()))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| KubeletApiError::Bind { addr, source })?;
    let root = Arc::new(pods_root);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, root) = (acceptor.clone(), root.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req| {
                let root = root.clone();
                async move { Ok::<_, Infallible>(respond(&root, &req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_and_previous_logs_are_the_last_two_starts_of_the_newest_pod_folder() {
        let d = tempfile::tempdir().unwrap();
        let logs = d.path().join("ns1_r-0_uid1/logs/chromadb");
        std::fs::create_dir_all(&logs).unwrap();
        for n in [0, 1, 10] {
            std::fs::write(logs.join(format!("{n}.log")), format!("start {n}\n")).unwrap();
        }
        let found = container_logs(d.path(), "ns1", "r-0", "chromadb");
        let names: Vec<String> = found
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["0.log", "1.log", "10.log"]);
        assert!(container_logs(d.path(), "ns1", "r-0", "other").is_empty());
        assert!(container_logs(d.path(), "ns2", "r-0", "chromadb").is_empty());
    }

    #[test]
    fn tail_lines_keeps_the_last_n() {
        assert_eq!(tail_lines("a\nb\nc\n", Some(2)), "b\nc\n");
        assert_eq!(tail_lines("a\nb\n", None), "a\nb\n");
        assert_eq!(tail_lines("", Some(3)), "");
    }
}
