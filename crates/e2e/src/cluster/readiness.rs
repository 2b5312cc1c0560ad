//! When is a release up? Decisions over the objects the API server returns, kept pure so they
//! can be checked against recorded objects; the waiting itself is kube-rs' `await_condition`.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;

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
        assert_eq!(statefulset_readiness(Some(&sts(generation, status))), Readiness::Ready);
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
            Readiness::Waiting(reason) => assert!(reason.contains(why), "{reason:?} should mention {why:?}"),
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
        assert_eq!(replaced_and_ready(Some(&pod(uid, ready, deleting)), "uid-1"), done);
    }

    #[test]
    fn restart_is_not_complete_while_the_pod_is_gone() {
        assert!(!replaced_and_ready(None, "uid-1"));
    }
}
