//! Kube clients: from k3s' rewritten kubeconfig, or from the user's `$KUBECONFIG` with its
//! current context pinned (helm gets the same context, so both always talk to one cluster).

use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

use super::helm::HelmTarget;
use crate::backend::BackendError;

/// Why no client for a cluster could be had from a kubeconfig: which kubeconfig (`source_name`
/// names it: `$KUBECONFIG (…)`, a path), which context, and the kube error as the source.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// `advice` says where a usable kubeconfig comes from.
    #[error("could not read {source_name}: {source}; {advice}")]
    Read {
        source_name: String,
        advice: &'static str,
        #[source]
        source: KubeconfigError,
    },
    #[error("kubeconfig does not parse: {0}")]
    Parse(#[source] KubeconfigError),
    #[error("kubeconfig is not usable: {0}")]
    Unusable(#[source] KubeconfigError),
    #[error(
        "{source_name} has no current-context; select one with `kubectl config use-context NAME` (known: {known})"
    )]
    NoCurrentContext { source_name: String, known: String },
    #[error("{source_name} selects context {context:?}, which it does not define")]
    UndefinedContext {
        source_name: String,
        context: String,
    },
    #[error("context {context:?} from {source_name} is not usable: {source}")]
    Context {
        context: String,
        source_name: String,
        #[source]
        source: KubeconfigError,
    },
    #[error("could not build a kube client: {0}")]
    Client(#[source] kube::Error),
    #[error("the API server of context {context:?} ({server}) does not answer: {source}")]
    NoAnswer {
        context: String,
        server: String,
        #[source]
        source: kube::Error,
    },
}

/// A client plus the helm flags that reach the same cluster, and a human name for it.
pub struct Connection {
    pub client: kube::Client,
    pub target: HelmTarget,
    pub describe: String,
}

/// Client for a kubeconfig text (k3s' copy, already pointed at the mapped port).
pub async fn client_from_text(text: &str) -> Result<kube::Client, ConnectError> {
    let kc = Kubeconfig::from_yaml(text).map_err(ConnectError::Parse)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(ConnectError::Unusable)?;
    chroma_api::ensure_crypto_provider();
    kube::Client::try_from(config).map_err(ConnectError::Client)
}

/// The context a kubeconfig selects, or why none is usable.
pub fn current_context(kc: &Kubeconfig, source: &str) -> Result<String, ConnectError> {
    let Some(ctx) = kc.current_context.as_deref().filter(|c| !c.is_empty()) else {
        let known: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        let known = if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        };
        return Err(ConnectError::NoCurrentContext {
            source_name: source.to_string(),
            known,
        });
    };
    if !kc.contexts.iter().any(|c| c.name == ctx) {
        return Err(ConnectError::UndefinedContext {
            source_name: source.to_string(),
            context: ctx.to_string(),
        });
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
        unavailable(ConnectError::Read {
            source_name: source.clone(),
            advice: "set KUBECONFIG to the cluster's kubeconfig (kind, minikube, …)",
            source: e,
        })
    })?;
    connect(kc, &source).await
}

/// The local cluster's own kubeconfig file, whatever `$KUBECONFIG` says.
pub async fn connect_file(path: &std::path::Path) -> Result<Connection, BackendError> {
    let kc = Kubeconfig::read_from(path).map_err(|e| {
        let source_name = path.display().to_string();
        BackendError::unreachable(
            "local",
            ConnectError::Read {
                source_name,
                advice: "start the local cluster with `cargo xtask cluster up`",
                source: e,
            },
        )
    })?;
    let mut c = connect(kc, &path.display().to_string()).await?;
    c.target = HelmTarget {
        kubeconfig: Some(path.to_path_buf()),
        context: None,
    };
    Ok(c)
}

fn unavailable(e: ConnectError) -> BackendError {
    BackendError::unreachable("kubeconfig", e)
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
            unavailable(ConnectError::Context {
                context: context.clone(),
                source_name: source.to_string(),
                source: e,
            })
        })?;
    // A cluster that is down should be reported now, not after kube's default retries.
    config.connect_timeout = Some(Duration::from_secs(10));
    let server = config.cluster_url.to_string();
    chroma_api::ensure_crypto_provider();
    let client =
        kube::Client::try_from(config).map_err(|e| unavailable(ConnectError::Client(e)))?;
    let version = client.apiserver_version().await.map_err(|e| {
        unavailable(ConnectError::NoAnswer {
            context: context.clone(),
            server: server.clone(),
            source: e,
        })
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
            current_context(&kc(&text), "$KUBECONFIG").expect("pinned"),
            "kind-kind"
        );
    }

    #[test]
    fn missing_current_context_lists_the_known_ones() {
        let err =
            current_context(&kc(TWO_CONTEXTS), "$KUBECONFIG (/k)").expect_err("no current-context");
        assert_eq!(
            err.to_string(),
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
        // The whole chain stays walkable: the backend's error, the connection's, then kube's own.
        let connect = std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<ConnectError>())
            .expect("the connection error is the source");
        assert!(
            matches!(connect, ConnectError::NoAnswer { context, .. } if context == "kind-kind"),
            "{connect:?}"
        );
        let kube = std::error::Error::source(connect).and_then(|s| s.downcast_ref::<kube::Error>());
        assert!(
            kube.is_some(),
            "kube's error is the connection error's source: {connect:?}"
        );
    }

    #[test]
    fn dangling_current_context_is_refused() {
        let text = format!("{TWO_CONTEXTS}current-context: gone\n");
        let err = current_context(&kc(&text), "~/.kube/config")
            .expect_err("dangling")
            .to_string();
        assert!(err.contains("\"gone\", which it does not define"), "{err}");
    }
}
