//! Kube clients: from k3s' rewritten kubeconfig, or from the user's `$KUBECONFIG` with its
//! current context pinned (helm gets the same context, so both always talk to one cluster).

use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::helm::HelmTarget;
use crate::backend::BackendError;

/// A client plus the helm flags that reach the same cluster, and a human name for it.
pub struct Connection {
    pub client: kube::Client,
    pub target: HelmTarget,
    pub describe: String,
}

/// Client for a kubeconfig text (k3s' copy, already pointed at the mapped port).
pub async fn client_from_text(text: &str) -> Result<kube::Client, String> {
    let kc = Kubeconfig::from_yaml(text).map_err(|e| format!("kubeconfig does not parse: {e}"))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("kubeconfig is not usable: {e}"))?;
    chroma_api::ensure_crypto_provider();
    kube::Client::try_from(config).map_err(|e| format!("could not build a kube client: {e}"))
}

/// The context a kubeconfig selects, or why none is usable.
pub fn current_context(kc: &Kubeconfig, source: &str) -> Result<String, String> {
    let Some(ctx) = kc.current_context.as_deref().filter(|c| !c.is_empty()) else {
        let known: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        return Err(format!(
            "{source} has no current-context; select one with `kubectl config use-context NAME` (known: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ));
    };
    if !kc.contexts.iter().any(|c| c.name == ctx) {
        return Err(format!(
            "{source} selects context {ctx:?}, which it does not define"
        ));
    }
    Ok(ctx.to_string())
}

/// `$KUBECONFIG` (or `~/.kube/config`), current context pinned, checked by asking the API
/// server for its version so a dead cluster is reported before any namespace is made.
pub async fn connect_existing() -> Result<Connection, BackendError> {
    let source = match std::env::var("KUBECONFIG") {
        Ok(v) if !v.is_empty() => format!("$KUBECONFIG ({v})"),
        _ => "~/.kube/config".to_string(),
    };
    let kc = Kubeconfig::read().map_err(|e| {
        unavailable(format!("could not read {source}: {e}; set KUBECONFIG to the cluster's kubeconfig (kind, minikube, …)"))
    })?;
    connect(kc, &source).await
}

/// The local cluster's own kubeconfig file, whatever `$KUBECONFIG` says.
pub async fn connect_file(path: &std::path::Path) -> Result<Connection, BackendError> {
    let kc = Kubeconfig::read_from(path).map_err(|e| BackendError::Unavailable {
        backend: "local",
        reason: format!(
            "could not read {}: {e}; start the local cluster with `cargo xtask cluster up`",
            path.display()
        ),
    })?;
    let mut c = connect(kc, &path.display().to_string()).await?;
    c.target = HelmTarget {
        kubeconfig: Some(path.to_path_buf()),
        context: None,
    };
    Ok(c)
}

fn unavailable(reason: String) -> BackendError {
    BackendError::Unavailable {
        backend: "kubeconfig",
        reason,
    }
}

/// [`connect_existing`] for an already-read kubeconfig; `source` names it in errors.
pub async fn connect(kc: Kubeconfig, source: &str) -> Result<Connection, BackendError> {
    let context = current_context(&kc, source).map_err(unavailable)?;
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..KubeConfigOptions::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| {
            unavailable(format!(
                "context {context:?} from {source} is not usable: {e}"
            ))
        })?;
    // A cluster that is down should be reported now, not after kube's default retries.
    config.connect_timeout = Some(Duration::from_secs(10));
    let server = config.cluster_url.to_string();
    chroma_api::ensure_crypto_provider();
    let client = kube::Client::try_from(config)
        .map_err(|e| unavailable(format!("could not build a kube client: {e}")))?;
    let version = client.apiserver_version().await.map_err(|e| {
        unavailable(format!(
            "the API server of context {context:?} ({server}) does not answer: {e}"
        ))
    })?;
    Ok(Connection {
        client,
        target: HelmTarget {
            kubeconfig: None,
            context: Some(context.clone()),
        },
        describe: format!(
            "context {context} at {server} (Kubernetes {})",
            version.git_version
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kc(yaml: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(yaml).expect("kubeconfig parses")
    }

    const TWO_CONTEXTS: &str = "\
apiVersion: v1
kind: Config
clusters:
- name: kind
  cluster: {server: 'https://127.0.0.1:40001'}
users:
- name: kind
  user: {token: abc}
contexts:
- name: kind-kind
  context: {cluster: kind, user: kind}
- name: prod
  context: {cluster: kind, user: kind}
";

    #[test]
    fn current_context_is_pinned() {
        let text = format!("{TWO_CONTEXTS}current-context: kind-kind\n");
        assert_eq!(
            current_context(&kc(&text), "$KUBECONFIG"),
            Ok("kind-kind".to_string())
        );
    }

    #[test]
    fn missing_current_context_lists_the_known_ones() {
        let err =
            current_context(&kc(TWO_CONTEXTS), "$KUBECONFIG (/k)").expect_err("no current-context");
        assert_eq!(
            err,
            "$KUBECONFIG (/k) has no current-context; select one with `kubectl config use-context NAME` (known: kind-kind, prod)"
        );
    }

    #[tokio::test]
    async fn cluster_that_does_not_answer_is_unavailable_naming_the_context() {
        // Port 1 on loopback: nothing listens there, so the connection is refused at once.
        let text = TWO_CONTEXTS.replace("https://127.0.0.1:40001", "https://127.0.0.1:1")
            + "current-context: kind-kind\n";
        let err = connect(kc(&text), "$KUBECONFIG (/k)")
            .await
            .err()
            .expect("nothing listens on port 1");
        let msg = err.to_string();
        assert!(
            msg.starts_with("kubeconfig backend is unavailable: the API server of context \"kind-kind\" (https://127.0.0.1:1/) does not answer"),
            "{msg}"
        );
    }

    #[test]
    fn dangling_current_context_is_refused() {
        let text = format!("{TWO_CONTEXTS}current-context: gone\n");
        let err = current_context(&kc(&text), "~/.kube/config").expect_err("dangling");
        assert!(err.contains("\"gone\", which it does not define"), "{err}");
    }
}
