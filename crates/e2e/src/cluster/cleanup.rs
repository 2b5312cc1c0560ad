//! What a cluster run leaves behind if it is interrupted, and the one call that removes it.
//!
//! A [`Cleanup`] exists before anything is created ([`super::ClusterOptions::new`] makes one),
//! and every namespace is registered with it *before* it is created and every k3s container
//! carries the run's label *before* Docker creates it. So whenever the caller gives up (Ctrl-C
//! or SIGTERM while k3s starts, while a release deploys, at the end), [`Cleanup::run`] finds
//! everything, even what a dropped future was still creating.
//!
//! Signals are not handled here: a library must not install process-wide handlers
//! (testcontainers' `watchdog` feature would: it registers SIGINT/SIGTERM/SIGQUIT handlers
//! on first use, panics if a removal fails, and then re-raises the signal, ending the process
//! before the caller can clean its other backends or write its report). The caller (xtask's
//! runner) owns Ctrl-C and calls [`Cleanup::run`].

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::DeleteParams;
use testcontainers::bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};

use crate::backend::BackendError;

/// Label on every namespace and k3s container of a run, with the run suffix as value, so
/// leftovers can be found (`kubectl get ns -l chroma-e2e/run`, `docker ps -f label=chroma-e2e/run`).
pub const RUN_LABEL: &str = "chroma-e2e/run";

/// A cloneable handle on everything one cluster run created; cheap to clone into a signal task.
#[derive(Clone, Default)]
pub struct Cleanup {
    inner: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    run: String,
    keep: bool,
    client: Option<kube::Client>,
    /// Namespaces that exist or may be being created right now.
    namespaces: BTreeSet<String>,
    /// A k3s container labelled with the run may exist.
    k3s: bool,
}

impl std::fmt::Debug for Cleanup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("Cleanup")
            .field("run", &s.run)
            .field("namespaces", &s.namespaces)
            .field("k3s", &s.k3s)
            .finish()
    }
}

impl Cleanup {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain data: a panic elsewhere while holding the lock leaves it usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn begin(&self, run: &str, keep: bool) {
        let mut s = self.lock();
        s.run = run.to_string();
        s.keep = keep;
    }

    pub(super) fn connected(&self, client: kube::Client) {
        self.lock().client = Some(client);
    }

    /// Called before the k3s container is requested: from now on a container may exist.
    pub(super) fn expect_k3s(&self) {
        self.lock().k3s = true;
    }

    /// Called before the namespace is created.
    pub(super) fn register_namespace(&self, namespace: &str) {
        self.lock().namespaces.insert(namespace.to_string());
    }

    /// Called once the namespace's deletion was requested (or it was kept on purpose).
    pub(super) fn forget_namespace(&self, namespace: &str) {
        self.lock().namespaces.remove(namespace);
    }

    /// The namespaces a cleanup would delete now.
    pub fn pending_namespaces(&self) -> Vec<String> {
        self.lock().namespaces.iter().cloned().collect()
    }

    /// The label filter that finds this run's k3s containers.
    pub fn container_filter(&self) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_string(),
            vec![format!("{RUN_LABEL}={}", self.lock().run)],
        )])
    }

    /// Removes what the run created and has not removed yet: its namespaces (an existing
    /// cluster) or its k3s container (which takes its namespaces with it). Idempotent, safe to
    /// call concurrently with a deploy being dropped, honours `--keep`. Every failure is
    /// reported, none stops the rest.
    pub async fn run(&self) -> Result<(), BackendError> {
        let (keep, k3s, client, namespaces, run) = {
            let mut s = self.lock();
            let namespaces = std::mem::take(&mut s.namespaces);
            (s.keep, s.k3s, s.client.clone(), namespaces, s.run.clone())
        };
        if keep {
            tracing::warn!(run = %run, "--keep: leaving this run's namespaces and k3s container in place");
            return Ok(());
        }
        let mut problems = Vec::new();
        if k3s {
            if let Err(e) = self.remove_k3s_containers().await {
                problems.push(e);
            }
        } else if let Some(client) = client {
            let api: Api<Namespace> = Api::all(client);
            for ns in &namespaces {
                match api.delete(ns, &DeleteParams::background()).await {
                    Ok(_) => tracing::debug!(namespace = %ns, "namespace deletion requested"),
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => problems.push(format!("namespace {ns}: {e}")),
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(BackendError::Failed {
                what: format!("cleaning up run {run}"),
                detail: problems.join("; "),
            })
        }
    }

    async fn remove_k3s_containers(&self) -> Result<(), String> {
        let docker = testcontainers::core::client::docker_client_instance()
            .await
            .map_err(|e| format!("no Docker client to remove the k3s container with: {e}"))?;
        let filter = self.container_filter();
        let label = filter["label"][0].clone();
        let list = ListContainersOptions {
            all: true,
            filters: Some(filter),
            ..ListContainersOptions::default()
        };
        let found = docker
            .list_containers(Some(list))
            .await
            .map_err(|e| format!("listing containers labelled {label}: {e}"))?;
        let mut problems = Vec::new();
        for id in found.into_iter().filter_map(|c| c.id) {
            let rm = RemoveContainerOptions {
                force: true,
                v: true,
                ..RemoveContainerOptions::default()
            };
            match docker.remove_container(&id, Some(rm)).await {
                Ok(()) => tracing::info!(container = %id, "removed k3s container"),
                Err(e) => problems.push(format!("container {id}: {e}")),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_pending_from_registration_until_forgotten() {
        let c = Cleanup::default();
        c.begin("abc123", false);
        c.register_namespace("chroma-e2e-a-abc123");
        c.register_namespace("chroma-e2e-b-abc123");
        c.forget_namespace("chroma-e2e-a-abc123");
        assert_eq!(c.pending_namespaces(), ["chroma-e2e-b-abc123"]);
    }

    #[test]
    fn clones_share_one_record() {
        let c = Cleanup::default();
        let for_signal_task = c.clone();
        c.register_namespace("ns-1");
        assert_eq!(for_signal_task.pending_namespaces(), ["ns-1"]);
    }

    #[test]
    fn containers_are_found_by_the_run_label() {
        let c = Cleanup::default();
        c.begin("zz9zz9", false);
        assert_eq!(
            c.container_filter(),
            HashMap::from([(
                "label".to_string(),
                vec!["chroma-e2e/run=zz9zz9".to_string()]
            )])
        );
    }

    #[tokio::test]
    async fn keep_leaves_everything_and_succeeds_without_a_cluster() {
        let c = Cleanup::default();
        c.begin("abc123", true);
        c.expect_k3s();
        c.register_namespace("ns-1");
        c.run().await.expect("--keep touches nothing");
    }

    #[tokio::test]
    async fn cleanup_without_anything_created_is_a_no_op() {
        let c = Cleanup::default();
        c.begin("abc123", false);
        c.run().await.expect("nothing to remove");
        c.run().await.expect("and again");
    }

    /// A stand-in API server that records each request line and answers every request with
    /// the namespace object a DELETE returns.
    async fn fake_api_server() -> (String, Arc<Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = vec![0u8; 8192];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                record.lock().expect("lock").push(head);
                let body = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x"},"status":{"phase":"Terminating"}}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            }
        });
        (url, seen)
    }

    #[tokio::test]
    async fn namespaces_still_being_deployed_are_deleted_and_finished_ones_are_not_touched_again() {
        let (url, seen) = fake_api_server().await;
        chroma_api::ensure_crypto_provider();
        let client =
            kube::Client::try_from(kube::Config::new(url.parse().expect("url"))).expect("client");
        let c = Cleanup::default();
        c.begin("abc123", false);
        c.connected(client);
        // Registered before its create request: the deploy was interrupted right there.
        c.register_namespace("chroma-e2e-1-5-0-defaults-abc123");
        // Torn down normally: its deletion was already requested.
        c.register_namespace("chroma-e2e-0-6-3-token-abc123");
        c.forget_namespace("chroma-e2e-0-6-3-token-abc123");
        c.run().await.expect("cleanup succeeds");
        let requests: Vec<String> = seen
            .lock()
            .expect("lock")
            .iter()
            .map(|l| l.split(" HTTP/").next().unwrap_or("").to_string())
            .collect();
        assert_eq!(
            requests,
            ["DELETE /api/v1/namespaces/chroma-e2e-1-5-0-defaults-abc123?"]
        );
        assert!(c.pending_namespaces().is_empty());
    }
}
