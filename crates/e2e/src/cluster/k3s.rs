//! One k3s per run, in a privileged Docker container started through testcontainers.
//!
//! This cannot run on a machine without a Docker engine (the one this was written on has
//! none): [`start`] probes the daemon first and fails in seconds with advice instead of
//! letting testcontainers retry. The container half follows testcontainers-modules' own k3s
//! tests (privileged, host user namespace); the kubeconfig half is pure and unit-tested.

use std::path::{Path, PathBuf};
use std::time::Duration;

use testcontainers::core::ExecCommand;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ImageExt};
use testcontainers_modules::k3s::{K3s, KUBE_SECURE_PORT};

use super::cleanup::RUN_LABEL;
use super::docker;
use crate::backend::BackendError;

/// The default image: the newest Kubernetes minor the chart is validated against. CI also runs
/// the oldest (see `.github/workflows/e2e.yml`); `--k3s-image` picks another.
pub const K3S_IMAGE: &str = "rancher/k3s:v1.35.5-k3s1";

/// Where k3s writes its admin kubeconfig inside the container.
const KUBECONFIG_IN_CONTAINER: &str = "/etc/rancher/k3s/k3s.yaml";

/// `name:tag` split at the last `:` after the last `/` (so `registry:5000/rancher/k3s:v1`
/// keeps its port). A reference without a tag or with a digest is refused: a run must say
/// exactly which Kubernetes it tested.
pub fn split_image(reference: &str) -> Result<(String, String), String> {
    let reference = reference.trim();
    if reference.contains('@') {
        return Err(format!(
            "k3s image {reference:?}: digests are not supported; give name:tag, e.g. {K3S_IMAGE}"
        ));
    }
    let slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[slash..].rfind(':') {
        Some(i) if i > 0 && slash + i + 1 < reference.len() => Ok((
            reference[..slash + i].to_string(),
            reference[slash + i + 1..].to_string(),
        )),
        _ => Err(format!(
            "k3s image {reference:?} has no tag; give name:tag, e.g. {K3S_IMAGE}"
        )),
    }
}

/// Points every cluster in a kubeconfig at `https://<host>:<port>` (the port Docker mapped
/// 6443 to), keeping certificates and credentials as they are. k3s writes
/// `https://127.0.0.1:6443`, which is only right inside the container.
pub fn rewrite_server(kubeconfig: &str, host: &str, port: u16) -> Result<String, String> {
    let mut doc: serde_yaml::Value =
        serde_yaml::from_str(kubeconfig).map_err(|e| format!("k3s kubeconfig is not YAML: {e}"))?;
    let clusters = doc
        .get_mut("clusters")
        .and_then(|c| c.as_sequence_mut())
        .filter(|c| !c.is_empty())
        .ok_or("k3s kubeconfig lists no clusters")?;
    let server = format!("https://{host}:{port}");
    for (i, entry) in clusters.iter_mut().enumerate() {
        let slot = entry
            .get_mut("cluster")
            .and_then(|c| c.as_mapping_mut())
            .ok_or_else(|| format!("k3s kubeconfig cluster #{i} has no `cluster` mapping"))?;
        slot.insert("server".into(), server.clone().into());
    }
    serde_yaml::to_string(&doc).map_err(|e| format!("could not write the kubeconfig back: {e}"))
}

/// The running container and the rewritten kubeconfig, in a directory private to this run.
pub struct K3sCluster {
    container: Option<ContainerAsync<K3s>>,
    dir: Option<tempfile::TempDir>,
    kubeconfig_path: PathBuf,
    kubeconfig: String,
}

impl K3sCluster {
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    pub fn kubeconfig(&self) -> &str {
        &self.kubeconfig
    }

    pub fn container_id(&self) -> Option<&str> {
        self.container.as_ref().map(|c| c.id())
    }

    /// Removes the container and the kubeconfig directory; with `keep`, leaves both and says
    /// where they are.
    pub async fn stop(mut self, keep: bool) -> Result<(), BackendError> {
        if keep {
            let id = self.container_id().unwrap_or("?").to_string();
            let dir = self.dir.take().map(|d| d.keep());
            tracing::warn!(container = %id, kubeconfig = %self.kubeconfig_path.display(), "--keep: leaving the k3s container running; remove it with `docker rm -f {id}`");
            // testcontainers removes a container when its handle drops; forgetting the
            // handle is the only way to keep it that needs no process-wide env var.
            if let Some(c) = self.container.take() {
                std::mem::forget(c);
            }
            drop(dir);
            return Ok(());
        }
        if let Some(c) = self.container.take() {
            c.rm().await.map_err(|e| BackendError::Failed {
                what: "removing the k3s container".into(),
                detail: e.to_string(),
            })?;
        }
        Ok(())
    }
}

/// The host a remote Docker daemon publishes container ports on, as testcontainers'
/// `get_host` derives it: the host of a `tcp://`, `http://` or `https://` `DOCKER_HOST`.
/// `None` for a local socket, whose ports are published on loopback, which k3s's certificate
/// already covers.
pub fn remote_docker_host(docker_host: Option<&str>) -> Option<String> {
    let url = docker_host?.trim();
    let rest = ["tcp://", "http://", "https://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))?;
    let authority = rest.split('/').next().unwrap_or("");
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host)
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// k3s's command line. `--disable=traefik`: nothing here needs an ingress controller, and it
/// is one less deployment competing for the runner's CPU. `--tls-san`: the API server's
/// certificate must also name the host the harness connects to when that is a remote Docker
/// host, or every TLS handshake fails.
pub fn server_args(tls_san: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "server".to_string(),
        "--snapshotter=native".into(),
        "--disable=traefik".into(),
    ];
    if let Some(host) = tls_san {
        args.push(format!("--tls-san={host}"));
    }
    args
}

/// The host to put into the kubeconfig for what testcontainers' `get_host` returned:
/// `localhost` becomes 127.0.0.1 because the port used is the IPv4 mapping (a `localhost`
/// resolving to ::1 first would reach nothing); an IPv6 address gets its brackets.
pub fn api_host(get_host: &str) -> String {
    match get_host {
        "localhost" => "127.0.0.1".to_string(),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        h => h.to_string(),
    }
}

/// Starts k3s labelled with the run (so [`super::cleanup::Cleanup`] finds it even if this
/// future is dropped halfway) and waits until its API answers.
pub async fn start(
    image: &str,
    preload: &[PathBuf],
    timeout: Duration,
    run: &str,
) -> Result<K3sCluster, BackendError> {
    let unavailable = |reason: String| BackendError::Unavailable {
        backend: "k3s",
        reason,
    };
    let targets = preload_targets(preload).map_err(|reason| BackendError::Invalid { reason })?;
    docker::docker_daemon().map_err(|e| unavailable(format!("{e}; use --backend process")))?;
    let (name, tag) = split_image(image).map_err(|reason| BackendError::Invalid { reason })?;
    let docker_host = std::env::var("DOCKER_HOST").ok();
    let san = remote_docker_host(docker_host.as_deref());

    tracing::info!(%image, tls_san = ?san, "starting k3s");
    let container = K3s::default()
        .with_name(name)
        .with_tag(tag)
        .with_cmd(server_args(san.as_deref()))
        .with_label(RUN_LABEL, run)
        .with_privileged(true)
        .with_userns_mode("host")
        .with_startup_timeout(timeout);
    // Copied in before k3s starts, which imports every archive in that directory at boot.
    let container = targets
        .into_iter()
        .fold(container, |c, (from, to)| c.with_copy_to(to, from));
    let container = container
        .start()
        .await
        .map_err(|e| unavailable(format!("could not start {image}: {e}")))?;

    let port = container
        .get_host_port_ipv4(KUBE_SECURE_PORT)
        .await
        .map_err(|e| unavailable(format!("k3s API port is not mapped: {e}")))?;
    let host = container.get_host().await.map_err(|e| {
        unavailable(format!(
            "could not tell which host publishes the k3s API port: {e}"
        ))
    })?;
    let host = api_host(&host.to_string());
    if san.as_deref().is_some_and(|s| api_host(s) != host) {
        tracing::warn!(%host, tls_san = ?san, "testcontainers reports another host than DOCKER_HOST names; the API certificate may not match");
    }
    let raw = read_kubeconfig(&container, timeout).await?;
    let kubeconfig = rewrite_server(&raw, &host, port).map_err(unavailable)?;

    let dir = tempfile::Builder::new()
        .prefix("chroma-e2e-k3s-")
        .tempdir()
        .map_err(|source| BackendError::Io {
            context: "creating the k3s kubeconfig directory".into(),
            source,
        })?;
    let kubeconfig_path = dir.path().join("kubeconfig");
    write_private(&kubeconfig_path, &kubeconfig)?;
    Ok(K3sCluster {
        container: Some(container),
        dir: Some(dir),
        kubeconfig_path,
        kubeconfig,
    })
}

/// Where k3s looks for image archives to import at boot.
const AIRGAP_IMAGES: &str = "/var/lib/rancher/k3s/agent/images";

/// Each archive and where it goes in the container; an archive that is not a readable `.tar`
/// file is refused, naming it.
fn preload_targets(preload: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, String> {
    let mut out = Vec::new();
    for (i, path) in preload.iter().enumerate() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !name.ends_with(".tar") || !path.is_file() {
            return Err(format!(
                "--k3s-preload {}: not a `docker save` archive (an existing file named *.tar)",
                path.display()
            ));
        }
        out.push((path.clone(), format!("{AIRGAP_IMAGES}/{i:02}-{name}")));
    }
    Ok(out)
}

/// k3s writes its kubeconfig shortly after the API comes up; copy it out (no bind mount, so
/// nothing is shared between runs and remote Docker hosts work too), retrying until it exists.
async fn read_kubeconfig(
    container: &ContainerAsync<K3s>,
    timeout: Duration,
) -> Result<String, BackendError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match container
            .copy_file_from(KUBECONFIG_IN_CONTAINER, Vec::<u8>::new())
            .await
        {
            Ok(bytes) if !bytes.is_empty() => {
                return String::from_utf8(bytes).map_err(|e| BackendError::Failed {
                    what: "reading the k3s kubeconfig".into(),
                    detail: e.to_string(),
                });
            }
            result => {
                if tokio::time::Instant::now() >= deadline {
                    let detail = match result {
                        Err(e) => e.to_string(),
                        Ok(_) => "the file is empty".into(),
                    };
                    // What k3s itself says is the best clue when its kubeconfig never appears.
                    let logs = container_logs_tail(container).await;
                    return Err(BackendError::Failed {
                        what: format!(
                            "k3s did not write {KUBECONFIG_IN_CONTAINER} within {timeout:?}"
                        ),
                        detail: format!("{detail}\n--- k3s log tail ---\n{logs}"),
                    });
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

async fn container_logs_tail(container: &ContainerAsync<K3s>) -> String {
    let cmd = ExecCommand::new(["sh", "-c", "ls -l /etc/rancher/k3s/ 2>&1"]);
    let mut out = match container.exec(cmd).await {
        Ok(mut r) => {
            String::from_utf8_lossy(&r.stdout_to_vec().await.unwrap_or_default()).into_owned()
        }
        Err(e) => format!("(exec failed: {e})"),
    };
    match container.stderr_to_vec().await {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&lines[lines.len().saturating_sub(40)..].join("\n"));
        }
        Err(e) => out.push_str(&format!("(no container logs: {e})")),
    }
    out
}

/// The kubeconfig holds the cluster-admin key: readable by this user only.
fn write_private(path: &Path, text: &str) -> Result<(), BackendError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| BackendError::Io {
        context: format!("write {}", path.display()),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    /// The shape k3s writes to /etc/rancher/k3s/k3s.yaml (key material shortened).
    const K3S_YAML: &str = "\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
";

    #[test]
    fn server_points_at_the_mapped_port() {
        let out = rewrite_server(K3S_YAML, "127.0.0.1", 32771).expect("rewrite");
        let kc = kube::config::Kubeconfig::from_yaml(&out).expect("still a kubeconfig");
        let server = kc.clusters[0]
            .cluster
            .as_ref()
            .and_then(|c| c.server.as_deref());
        assert_eq!(server, Some("https://127.0.0.1:32771"));
    }

    #[test]
    fn credentials_and_ca_survive_the_rewrite() {
        let out = rewrite_server(K3S_YAML, "127.0.0.1", 32771).expect("rewrite");
        let doc: serde_yaml::Value = serde_yaml::from_str(&out).expect("yaml");
        assert_eq!(
            doc["clusters"][0]["cluster"]["certificate-authority-data"],
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"
        );
        assert_eq!(doc["users"][0]["user"]["client-key-data"], "a2V5");
        assert_eq!(doc["current-context"], "default");
    }

    #[test]
    fn every_cluster_is_rewritten() {
        let two = K3S_YAML.replace(
            "  name: default\ncontexts:",
            "  name: default\n- cluster:\n    server: https://10.0.0.1:6443\n  name: other\ncontexts:",
        );
        let out = rewrite_server(&two, "127.0.0.1", 40000).expect("rewrite");
        let doc: serde_yaml::Value = serde_yaml::from_str(&out).expect("yaml");
        assert_eq!(
            doc["clusters"][1]["cluster"]["server"],
            "https://127.0.0.1:40000"
        );
    }

    #[rstest]
    #[case::not_yaml("clusters: [", "not YAML")]
    #[case::no_clusters("apiVersion: v1\nkind: Config\n", "lists no clusters")]
    #[case::cluster_entry_without_mapping(
        "clusters:\n- name: x\n",
        "cluster #0 has no `cluster` mapping"
    )]
    fn broken_kubeconfigs_are_reported(#[case] text: &str, #[case] why: &str) {
        let err = rewrite_server(text, "127.0.0.1", 1).expect_err("must refuse");
        assert!(err.contains(why), "{err}");
    }

    #[test]
    fn preloaded_archives_go_to_the_airgap_images_directory_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let tar = dir.path().join("chromadb-backup.tar");
        std::fs::write(&tar, b"x").unwrap();
        let t = preload_targets(std::slice::from_ref(&tar)).unwrap();
        assert_eq!(
            t,
            vec![(tar, format!("{AIRGAP_IMAGES}/00-chromadb-backup.tar"))]
        );
    }

    #[rstest]
    #[case::missing_file("nowhere/backup.tar")]
    #[case::not_a_tar("Cargo.toml")]
    fn a_preload_that_is_no_archive_is_refused_naming_it(#[case] path: &str) {
        let err = preload_targets(&[PathBuf::from(path)]).unwrap_err();
        assert!(
            err.contains(&format!("--k3s-preload {path}")) && err.contains("*.tar"),
            "{err}"
        );
    }

    #[rstest]
    #[case::docker_hub("rancher/k3s:v1.28.15-k3s1", "rancher/k3s", "v1.28.15-k3s1")]
    #[case::registry_with_port(
        "registry.local:5000/rancher/k3s:v1.35.0-k3s1",
        "registry.local:5000/rancher/k3s",
        "v1.35.0-k3s1"
    )]
    fn image_references_split_into_name_and_tag(
        #[case] r: &str,
        #[case] name: &str,
        #[case] tag: &str,
    ) {
        assert_eq!(split_image(r), Ok((name.to_string(), tag.to_string())));
    }

    #[rstest]
    #[case::no_tag("rancher/k3s", "has no tag")]
    #[case::registry_port_but_no_tag("registry.local:5000/rancher/k3s", "has no tag")]
    #[case::empty_tag("rancher/k3s:", "has no tag")]
    #[case::digest("rancher/k3s@sha256:abcd", "digests are not supported")]
    fn unusable_image_references_are_refused(#[case] r: &str, #[case] why: &str) {
        let err = split_image(r).expect_err("must refuse");
        assert!(err.contains(why) && err.contains(K3S_IMAGE), "{err}");
    }

    #[test]
    fn default_image_is_a_pinned_k3s_tag() {
        let (name, tag) = split_image(K3S_IMAGE).expect("default parses");
        assert_eq!(name, "rancher/k3s");
        assert!(tag.starts_with("v1.") && tag.contains("-k3s"), "{tag}");
    }

    #[rstest]
    #[case::tcp_with_port(Some("tcp://docker.example.com:2376"), Some("docker.example.com"))]
    #[case::tcp_ip(Some("tcp://10.1.2.3:2375"), Some("10.1.2.3"))]
    #[case::https(Some("https://builder.internal:2376/"), Some("builder.internal"))]
    #[case::ipv6(Some("tcp://[fd00::5]:2376"), Some("fd00::5"))]
    #[case::unix_socket(Some("unix:///var/run/docker.sock"), None)]
    #[case::unset(None, None)]
    fn remote_docker_host_is_the_daemons_host(
        #[case] docker_host: Option<&str>,
        #[case] host: Option<&str>,
    ) {
        assert_eq!(remote_docker_host(docker_host).as_deref(), host);
    }

    #[test]
    fn remote_host_is_added_to_the_api_certificate() {
        assert_eq!(
            server_args(remote_docker_host(Some("tcp://docker.example.com:2376")).as_deref()),
            [
                "server",
                "--snapshotter=native",
                "--disable=traefik",
                "--tls-san=docker.example.com"
            ]
        );
        assert_eq!(
            server_args(None),
            ["server", "--snapshotter=native", "--disable=traefik"]
        );
    }

    #[rstest]
    #[case::local_socket("localhost", "127.0.0.1")]
    #[case::remote_name("docker.example.com", "docker.example.com")]
    #[case::remote_ipv6("fd00::5", "[fd00::5]")]
    fn kubeconfig_points_at_the_host_testcontainers_reports(
        #[case] get_host: &str,
        #[case] server_host: &str,
    ) {
        let out = rewrite_server(K3S_YAML, &api_host(get_host), 32771).expect("rewrite");
        let kc = kube::config::Kubeconfig::from_yaml(&out).expect("still a kubeconfig");
        let server = kc.clusters[0]
            .cluster
            .as_ref()
            .and_then(|c| c.server.as_deref());
        assert_eq!(
            server,
            Some(format!("https://{server_host}:32771").as_str())
        );
    }
}
