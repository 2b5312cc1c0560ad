//! When is a release up? Decisions over the objects the API server returns, kept pure so they
//! can be checked against recorded objects; the waiting itself is kube-rs' `await_condition`.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, Pod};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not yet, and why (goes into the timeout message).
    Waiting(String),
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }
}

/// A StatefulSet is ready when the controller has seen its latest spec (observedGeneration),
/// every replica runs the latest revision, and all of them pass their readiness probe. Without
/// the generation check, a just-upgraded set still reports the old pods as ready.
pub fn statefulset_readiness(sts: Option<&StatefulSet>) -> Readiness {
    let Some(sts) = sts else {
        return Readiness::Waiting("the StatefulSet does not exist".into());
    };
    let want = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &sts.status else {
        return Readiness::Waiting("the StatefulSet has no status yet".into());
    };
    let generation = sts.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0);
    if observed < generation {
        return Readiness::Waiting(format!(
            "the controller has not observed generation {generation} yet (observed {observed})"
        ));
    }
    if let (Some(current), Some(update)) = (&status.current_revision, &status.update_revision)
        && current != update
        && status.updated_replicas.unwrap_or(0) < want
    {
        return Readiness::Waiting(format!(
            "rolling from revision {current} to {update}: {}/{want} updated",
            status.updated_replicas.unwrap_or(0)
        ));
    }
    let ready = status.ready_replicas.unwrap_or(0);
    if ready < want {
        return Readiness::Waiting(format!("{ready}/{want} replicas ready"));
    }
    Readiness::Ready
}

/// The pod passes its readiness probe (condition `Ready=True`) and is not being deleted.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A pod of this name that is a different pod than `old_uid` (the StatefulSet recreated it)
/// and is ready: the end of a restart.
pub fn replaced_and_ready(pod: Option<&Pod>, old_uid: &str) -> bool {
    pod.is_some_and(|p| p.metadata.uid.as_deref() != Some(old_uid) && pod_ready(p))
}

/// Container waiting reasons that mean the image cannot be pulled. `ErrImagePull` is the
/// failed attempt, `ImagePullBackOff` the kubelet waiting to retry it; the other two never
/// succeed however long one waits.
const PULL_FAILURES: [&str; 4] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
];

/// How long a pull failure must persist before the deploy gives up: long enough for the
/// kubelet's first retry (back-off starts at 10 s), so a registry hiccup is survived, and
/// short enough that a wrong image fails in about half a minute instead of the whole timeout.
pub const PULL_GRACE: Duration = Duration::from_secs(20);

/// The first container of `pods` that cannot pull its image: `pod P container C image I:
/// ErrImagePull: <kubelet's message>`.
pub fn image_pull_failure(pods: &[Pod]) -> Option<String> {
    for pod in pods {
        let Some(status) = &pod.status else { continue };
        let all = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for c in all {
            let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
                continue;
            };
            let reason = w.reason.as_deref().unwrap_or("");
            if PULL_FAILURES.contains(&reason) {
                let message = w
                    .message
                    .as_deref()
                    .map(|m| format!(": {}", m.trim()))
                    .unwrap_or_default();
                return Some(format!(
                    "pod {} container {} image {}: {reason}{message}",
                    pod.metadata.name.as_deref().unwrap_or("?"),
                    c.name,
                    c.image
                ));
            }
        }
    }
    None
}

/// The newest `Failed` event about pulling, quoted as the kubelet wrote it (it names the
/// registry's answer, which the container status sometimes shortens to `Back-off pulling`).
pub fn pull_event(events: &[Event]) -> Option<String> {
    events
        .iter()
        .filter(|e| {
            e.reason.as_deref() == Some("Failed")
                && e.message.as_deref().is_some_and(|m| m.contains("pull"))
        })
        .max_by_key(|e| {
            e.last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or_else(|| e.event_time.as_ref().map(|t| t.0))
        })
        .and_then(|e| e.message.clone())
}

/// Remembers since when a pull failure has been seen, so one transient failure does not fail
/// a deploy but a persistent one does after [`PULL_GRACE`].
#[derive(Debug, Default)]
pub struct PullWatch {
    since: Option<Instant>,
}

impl PullWatch {
    /// `Some(why)` once a pull failure has persisted for the grace period at `now`.
    pub fn observe(&mut self, now: Instant, pods: &[Pod]) -> Option<String> {
        match image_pull_failure(pods) {
            None => {
                self.since = None;
                None
            }
            Some(why) => {
                let since = *self.since.get_or_insert(now);
                (now.duration_since(since) >= PULL_GRACE).then_some(why)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use serde_json::{Value, json};

    use super::*;

    /// Shaped like `kubectl get sts chroma-chromadb -o json` on k3s, trimmed to what matters.
    fn sts(generation: i64, status: Value) -> StatefulSet {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "chroma-chromadb", "namespace": "chroma-e2e-x", "generation": generation},
            "spec": {
                "replicas": 1,
                "serviceName": "chroma-chromadb",
                "selector": {"matchLabels": {"app.kubernetes.io/name": "chromadb"}},
                "template": {"metadata": {"labels": {"app.kubernetes.io/name": "chromadb"}},
                             "spec": {"containers": [{"name": "chromadb", "image": "chromadb/chroma:1.5.0"}]}}
            },
            "status": status
        }))
        .expect("recorded StatefulSet parses")
    }

    #[rstest]
    #[case::settled_and_ready(1, json!({"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "currentReplicas": 1,
        "updatedReplicas": 1, "currentRevision": "chroma-chromadb-7c9f", "updateRevision": "chroma-chromadb-7c9f", "availableReplicas": 1}))]
    #[case::rollout_finished_revisions_equal_again(3, json!({"observedGeneration": 3, "replicas": 1, "readyReplicas": 1,
        "updatedReplicas": 1, "currentRevision": "chroma-chromadb-55d1", "updateRevision": "chroma-chromadb-55d1"}))]
    #[case::all_replicas_updated_before_revisions_swap(2, json!({"observedGeneration": 2, "replicas": 1, "readyReplicas": 1,
        "updatedReplicas": 1, "currentRevision": "chroma-chromadb-a", "updateRevision": "chroma-chromadb-b"}))]
    fn ready_statefulsets(#[case] generation: i64, #[case] status: Value) {
        assert_eq!(
            statefulset_readiness(Some(&sts(generation, status))),
            Readiness::Ready
        );
    }

    #[rstest]
    #[case::pod_not_passing_probe(1, json!({"observedGeneration": 1, "replicas": 1, "currentReplicas": 1, "updatedReplicas": 1,
        "currentRevision": "r1", "updateRevision": "r1"}), "0/1 replicas ready")]
    #[case::upgrade_not_yet_observed(2, json!({"observedGeneration": 1, "replicas": 1, "readyReplicas": 1,
        "updatedReplicas": 1, "currentRevision": "r1", "updateRevision": "r1"}), "has not observed generation 2 yet (observed 1)")]
    #[case::old_pod_ready_during_rollout(2, json!({"observedGeneration": 2, "replicas": 1, "readyReplicas": 1,
        "updatedReplicas": 0, "currentRevision": "r1", "updateRevision": "r2"}), "rolling from revision r1 to r2: 0/1 updated")]
    #[case::fresh_object_without_status_fields(1, json!({"replicas": 0}), "has not observed generation 1 yet (observed 0)")]
    fn waiting_statefulsets(#[case] generation: i64, #[case] status: Value, #[case] why: &str) {
        match statefulset_readiness(Some(&sts(generation, status))) {
            Readiness::Waiting(reason) => {
                assert!(reason.contains(why), "{reason:?} should mention {why:?}")
            }
            Readiness::Ready => panic!("reported ready, expected waiting because {why}"),
        }
    }

    #[test]
    fn missing_statefulset_is_waiting() {
        assert!(!statefulset_readiness(None).is_ready());
    }

    fn pod(uid: &str, ready: &str, deleting: bool) -> Pod {
        let mut meta = json!({"name": "chroma-chromadb-0", "uid": uid});
        if deleting {
            meta["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        }
        serde_json::from_value(json!({
            "metadata": meta,
            "status": {"phase": "Running", "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": ready},
                {"type": "Ready", "status": ready}
            ]}
        }))
        .expect("recorded Pod parses")
    }

    #[rstest]
    #[case::new_pod_ready("uid-2", "True", false, true)]
    #[case::new_pod_still_starting("uid-2", "False", false, false)]
    #[case::old_pod_still_there("uid-1", "True", false, false)]
    #[case::old_pod_terminating("uid-1", "True", true, false)]
    fn restart_completes_only_with_a_new_ready_pod(
        #[case] uid: &str,
        #[case] ready: &str,
        #[case] deleting: bool,
        #[case] done: bool,
    ) {
        assert_eq!(
            replaced_and_ready(Some(&pod(uid, ready, deleting)), "uid-1"),
            done
        );
    }

    #[test]
    fn restart_is_not_complete_while_the_pod_is_gone() {
        assert!(!replaced_and_ready(None, "uid-1"));
    }

    fn pulling_pod(reason: &str, init: bool) -> Pod {
        let status = json!([{"name": if init { "htpasswd" } else { "chromadb" }, "ready": false, "restartCount": 0,
            "image": "ghcr.io/chroma-core/chroma:9.9.9", "imageID": "",
            "state": {"waiting": {"reason": reason, "message": "rpc error: manifest unknown"}}}]);
        let key = if init {
            "initContainerStatuses"
        } else {
            "containerStatuses"
        };
        serde_json::from_value(json!({"metadata": {"name": "chroma-chromadb-0"}, "status": {"phase": "Pending", key: status}}))
            .expect("pod parses")
    }

    #[rstest]
    #[case::err_image_pull("ErrImagePull", false)]
    #[case::back_off("ImagePullBackOff", false)]
    #[case::invalid_name("InvalidImageName", false)]
    #[case::init_container_pull("ErrImagePull", true)]
    fn pull_failures_are_recognised_quoting_the_kubelet(#[case] reason: &str, #[case] init: bool) {
        let why = image_pull_failure(&[pulling_pod(reason, init)]).expect("a pull failure");
        let container = if init { "htpasswd" } else { "chromadb" };
        assert_eq!(
            why,
            format!(
                "pod chroma-chromadb-0 container {container} image ghcr.io/chroma-core/chroma:9.9.9: {reason}: rpc error: manifest unknown"
            )
        );
    }

    #[rstest]
    #[case::container_creating("ContainerCreating")]
    #[case::crash_loop("CrashLoopBackOff")]
    fn other_waiting_reasons_are_not_pull_failures(#[case] reason: &str) {
        assert_eq!(image_pull_failure(&[pulling_pod(reason, false)]), None);
    }

    #[test]
    fn pull_failure_fails_only_after_persisting_for_the_grace_period() {
        let t0 = Instant::now();
        let failing = [pulling_pod("ErrImagePull", false)];
        let mut watch = PullWatch::default();
        assert_eq!(watch.observe(t0, &failing), None, "first sight is forgiven");
        assert_eq!(
            watch.observe(t0 + PULL_GRACE - Duration::from_secs(1), &failing),
            None
        );
        assert!(
            watch
                .observe(t0 + PULL_GRACE, &failing)
                .is_some_and(|w| w.contains("ErrImagePull"))
        );
        assert!(
            PULL_GRACE <= Duration::from_secs(30),
            "the deploy must fail within about 30 s"
        );
    }

    #[test]
    fn pull_that_recovers_resets_the_clock() {
        let t0 = Instant::now();
        let mut watch = PullWatch::default();
        watch.observe(t0, &[pulling_pod("ErrImagePull", false)]);
        assert_eq!(
            watch.observe(
                t0 + Duration::from_secs(15),
                &[pulling_pod("ContainerCreating", false)]
            ),
            None
        );
        assert_eq!(
            watch.observe(
                t0 + Duration::from_secs(25),
                &[pulling_pod("ImagePullBackOff", false)]
            ),
            None,
            "clock restarted at 25 s"
        );
    }

    #[test]
    fn newest_pull_event_is_quoted() {
        let ev = |msg: &str, at: &str| -> Event {
            serde_json::from_value(json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod"}, "reason": "Failed",
                "message": msg, "lastTimestamp": at})).expect("event")
        };
        let events = [
            ev(
                "Failed to pull image \"x:1\": not found",
                "2025-05-01T10:00:05Z",
            ),
            ev("Error: ImagePullBackOff", "2025-05-01T10:00:30Z"),
            ev(
                "Failed to pull image \"x:1\": manifest unknown",
                "2025-05-01T10:00:20Z",
            ),
        ];
        assert_eq!(
            pull_event(&events).as_deref(),
            Some("Failed to pull image \"x:1\": manifest unknown")
        );
    }
}
