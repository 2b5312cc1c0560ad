//! The chart's `helm test` hooks on a live cluster: which rendered objects they are, which pods
//! ran them, and how they ended. helm decides pass or fail; this module says why, from the
//! hook Job's condition and its pods' container states, and gathers their logs (helm's own
//! `--logs` cannot find a Job's pods, see [`super::helm::test_args`]).

use std::fmt::Write as _;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerState, Pod};
use render::{Object, Rendered};

/// The label the Job controller puts on every pod it creates (also on Kubernetes 1.25, which
/// predates the `batch.kubernetes.io/job-name` spelling).
pub const JOB_NAME_LABEL: &str = "job-name";

/// One object the release runs on `helm test`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestHook {
    /// A Job: its pods are `<name>-xxxxx`, found by [`JOB_NAME_LABEL`].
    Job(String),
    /// A bare Pod, named exactly like the hook.
    Pod(String),
}

impl TestHook {
    pub fn name(&self) -> &str {
        match self {
            TestHook::Job(n) | TestHook::Pod(n) => n,
        }
    }
}

/// The Jobs and Pods of a rendered release that `helm test` runs, in helm's order.
pub fn test_hooks(rendered: &Rendered) -> Vec<TestHook> {
    rendered
        .objects
        .iter()
        .filter_map(|o| match o {
            Object::Job(j) if render::hooks::is_test(&j.metadata) => {
                j.metadata.name.clone().map(TestHook::Job)
            }
            Object::Pod(p) if render::hooks::is_test(&p.metadata) => {
                p.metadata.name.clone().map(TestHook::Pod)
            }
            _ => None,
        })
        .collect()
}

/// A client Job beside the release: the pod of the chart's first `helm test` hook (its image,
/// user and security context, so the namespace's admission treats it as the chart's own) with
/// only `labels`, running `script` under `sh -c` once, with `API` in its env. `None` when the
/// render has no test hook to take the pod from.
pub fn client_job(
    rendered: &Rendered,
    name: &str,
    labels: &std::collections::BTreeMap<String, String>,
    script: &str,
    api: &str,
) -> Option<Job> {
    let spec = rendered.objects.iter().find_map(|o| match o {
        Object::Job(j) if render::hooks::is_test(&j.metadata) => {
            j.spec.as_ref().and_then(|s| s.template.spec.clone())
        }
        Object::Pod(p) if render::hooks::is_test(&p.metadata) => p.spec.clone(),
        _ => None,
    })?;
    let mut container = spec.containers.first()?.clone();
    container.command = Some(vec!["sh".into(), "-c".into(), script.into()]);
    container.args = None;
    container.env = Some(vec![k8s_openapi::api::core::v1::EnvVar {
        name: "API".into(),
        value: Some(api.into()),
        value_from: None,
    }]);
    container.env_from = None;
    let pod = k8s_openapi::api::core::v1::PodSpec {
        containers: vec![container],
        init_containers: None,
        restart_policy: Some("Never".into()),
        ..spec
    };
    let doc = serde_json::json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": 180,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    });
    serde_json::from_value(doc).ok()
}

/// The label selector listing a Job's pods.
pub fn job_pod_selector(job: &str) -> String {
    format!("{JOB_NAME_LABEL}={job}")
}

/// The pods that belong to `job`, oldest first. The list comes from a label query already;
/// filtering again keeps a pod of another Job out even if the query was wider. With the
/// Job's uid, pods of an earlier Job of the same name (helm's `before-hook-creation` deletes
/// it in the background, so its pods may linger) are left out too.
pub fn pods_of_job<'a>(job: &str, job_uid: Option<&str>, pods: &'a [Pod]) -> Vec<&'a Pod> {
    let owned = |p: &Pod| {
        job_uid.is_none_or(|uid| {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "Job" && o.uid == uid)
        })
    };
    let mut out: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(JOB_NAME_LABEL))
                .map(String::as_str)
                == Some(job)
        })
        .filter(|p| owned(p))
        .collect();
    out.sort_by(|a, b| {
        let key = |p: &Pod| {
            (
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                p.metadata.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    out
}

/// Whether a hook ended well: a Job with its Complete condition, or a bare Pod that Succeeded.
pub fn succeeded(job: Option<&Job>, pods: &[&Pod]) -> bool {
    match job {
        Some(j) => j
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Complete" && c.status == "True")
            }),
        None => {
            !pods.is_empty()
                && pods.iter().all(|p| {
                    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")
                })
        }
    }
}

/// Why a hook failed, in one line: the Job's Failed condition (reason and message) and, per
/// pod, each container that did not exit 0 with its exit code or what it is waiting for.
pub fn failure_reason(hook: &TestHook, job: Option<&Job>, pods: &[&Pod]) -> String {
    let mut out = match hook {
        TestHook::Job(name) => format!("Job {name}"),
        TestHook::Pod(name) => format!("Pod {name}"),
    };
    if let Some(job) = job {
        let failed = job
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.type_ == "Failed" && c.status == "True")
            });
        match failed {
            Some(c) => {
                let why = [c.reason.as_deref(), c.message.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": ");
                let _ = write!(out, " failed ({why})");
            }
            None => {
                let status = job.status.as_ref();
                let _ = write!(
                    out,
                    " did not complete (active {}, succeeded {}, failed {})",
                    status.and_then(|s| s.active).unwrap_or(0),
                    status.and_then(|s| s.succeeded).unwrap_or(0),
                    status.and_then(|s| s.failed).unwrap_or(0)
                );
            }
        }
    }
    if pods.is_empty() {
        out.push_str("; no pod ran it (see the events)");
    }
    for pod in pods {
        let name = pod.metadata.name.as_deref().unwrap_or("?");
        let status = pod.status.as_ref();
        let containers = status
            .and_then(|s| s.init_container_statuses.as_ref())
            .into_iter()
            .flatten()
            .chain(
                status
                    .and_then(|s| s.container_statuses.as_ref())
                    .into_iter()
                    .flatten(),
            );
        let mut bad: Vec<String> = containers
            .filter_map(|c| {
                c.state
                    .as_ref()
                    .and_then(not_ok)
                    .map(|why| format!("container {} {why}", c.name))
            })
            .collect();
        if bad.is_empty() {
            let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Unknown");
            bad.push(format!("phase {phase}"));
        }
        let _ = write!(out, "; pod {name}: {}", bad.join(", "));
    }
    out
}

/// A container state that is not a clean exit: `exited 1 (Error)`, `waiting ErrImagePull: …`.
fn not_ok(state: &ContainerState) -> Option<String> {
    if let Some(t) = &state.terminated {
        if t.exit_code == 0 {
            return None;
        }
        let reason = t
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        let message = t
            .message
            .as_deref()
            .map(|m| format!(": {}", m.trim()))
            .unwrap_or_default();
        return Some(format!("exited {}{reason}{message}", t.exit_code));
    }
    if let Some(w) = &state.waiting {
        let message = w
            .message
            .as_deref()
            .map(|m| format!(": {}", m.trim()))
            .unwrap_or_default();
        return Some(format!(
            "waiting {}{message}",
            w.reason.as_deref().unwrap_or("")
        ));
    }
    state.running.as_ref().map(|_| "still running".to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn job_doc(name: &str, hook: Option<&str>) -> Value {
        let mut meta = json!({"name": name});
        if let Some(h) = hook {
            meta["annotations"] =
                json!({"helm.sh/hook": h, "helm.sh/hook-delete-policy": "before-hook-creation"});
        }
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
               "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "api-check", "image": "curl"}]}}}})
    }

    #[test]
    fn test_hook_jobs_and_pods_are_found_other_hooks_are_not() {
        let rendered = Rendered::from_documents(vec![
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "chroma-chromadb"}}),
            job_doc("chroma-chromadb-test-api", Some("test")),
            job_doc("chroma-chromadb-migrate", Some("pre-upgrade")),
            job_doc("chroma-chromadb-plain", None),
            job_doc("chroma-legacy", Some("pre-install, test-success")),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "chroma-test-pod", "annotations": {"helm.sh/hook": "test"}},
                   "spec": {"containers": [{"name": "c", "image": "x"}]}}),
        ])
        .expect("documents parse");
        assert_eq!(
            test_hooks(&rendered),
            [
                TestHook::Job("chroma-chromadb-test-api".into()),
                TestHook::Job("chroma-legacy".into()),
                TestHook::Pod("chroma-test-pod".into())
            ]
        );
    }

    #[test]
    fn a_client_job_takes_the_test_pod_with_only_its_own_labels_script_and_api() {
        let mut test = job_doc("chroma-chromadb-test-api", Some("test"));
        test["spec"]["template"]["metadata"] =
            json!({"labels": {"app.kubernetes.io/component": "test"}});
        test["spec"]["template"]["spec"]["securityContext"] =
            json!({"runAsNonRoot": true, "runAsUser": 100});
        test["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["-sf", "http://x"]);
        let rendered = Rendered::from_documents(vec![job_doc("plain", None), test]).unwrap();
        let labels = [("chromadb-client".to_string(), "true".to_string())].into();
        let job = client_job(
            &rendered,
            "np-admitted",
            &labels,
            "curl \"$API\"",
            "http://s.ns.svc:8000",
        )
        .expect("a test hook to copy");
        let got = serde_json::to_value(&job).unwrap();
        assert_eq!(got["metadata"]["name"], "np-admitted");
        assert_eq!(
            got["metadata"].get("annotations"),
            None,
            "no hook annotation"
        );
        assert_eq!(got["spec"]["backoffLimit"], 0);
        let tpl = &got["spec"]["template"];
        assert_eq!(
            tpl["metadata"]["labels"],
            json!({"chromadb-client": "true"})
        );
        assert_eq!(tpl["spec"]["securityContext"]["runAsUser"], 100);
        let c = &tpl["spec"]["containers"][0];
        assert_eq!(c["image"], "curl");
        assert_eq!(c["command"], json!(["sh", "-c", "curl \"$API\""]));
        assert_eq!(c.get("args"), None);
        assert_eq!(
            c["env"],
            json!([{"name": "API", "value": "http://s.ns.svc:8000"}])
        );
        let none = Rendered::from_documents(vec![job_doc("plain", None)]).unwrap();
        assert!(client_job(&none, "x", &labels, "true", "http://s").is_none());
    }

    #[test]
    fn release_without_test_hook_has_none() {
        let rendered =
            Rendered::from_documents(vec![job_doc("x", Some("post-install"))]).expect("parses");
        assert!(test_hooks(&rendered).is_empty());
    }

    #[test]
    fn job_pods_are_listed_by_the_job_name_label() {
        assert_eq!(
            job_pod_selector("chroma-chromadb-test-api"),
            "job-name=chroma-chromadb-test-api"
        );
    }

    fn pod(name: &str, job: &str, created: &str, container_state: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created,
                         "labels": {"job-name": job, "batch.kubernetes.io/job-name": job}},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "api-check", "ready": false, "restartCount": 0,
                       "image": "curl", "imageID": "", "state": container_state}]}
        }))
        .expect("pod parses")
    }

    fn exited(code: i32) -> Value {
        json!({"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }}})
    }

    #[test]
    fn only_the_jobs_own_pods_are_picked_oldest_first() {
        let pods = [
            pod("t-api-bbbbb", "t-api", "2025-05-01T10:00:40Z", exited(1)),
            pod("other-zzzzz", "other", "2025-05-01T10:00:00Z", exited(0)),
            pod("t-api-aaaaa", "t-api", "2025-05-01T10:00:10Z", exited(1)),
        ];
        let names: Vec<&str> = pods_of_job("t-api", None, &pods)
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        assert_eq!(names, ["t-api-aaaaa", "t-api-bbbbb"]);
    }

    #[test]
    fn pods_left_by_an_earlier_job_of_the_same_name_are_not_picked() {
        let owned_by = |name: &str, uid: &str| {
            let mut p = pod(name, "t-api", "2025-05-01T10:00:10Z", exited(1));
            p.metadata.owner_references = Some(vec![serde_json::from_value(json!(
                {"apiVersion": "batch/v1", "kind": "Job", "name": "t-api", "uid": uid, "controller": true}
            )).expect("owner reference")]);
            p
        };
        let pods = [
            owned_by("t-api-old11", "uid-first-run"),
            owned_by("t-api-new22", "uid-second-run"),
        ];
        let names: Vec<&str> = pods_of_job("t-api", Some("uid-second-run"), &pods)
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        assert_eq!(names, ["t-api-new22"]);
    }

    #[test]
    fn failure_names_the_job_condition_and_each_pods_exit_code() {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "t-api"},
            "status": {"failed": 2, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                        "message": "Job has reached the specified backoff limit"}]}
        }))
        .expect("job parses");
        let pods = [
            pod("t-api-aaaaa", "t-api", "2025-05-01T10:00:10Z", exited(1)),
            pod("t-api-bbbbb", "t-api", "2025-05-01T10:00:40Z", exited(7)),
        ];
        let picked = pods_of_job("t-api", None, &pods);
        assert_eq!(
            failure_reason(&TestHook::Job("t-api".into()), Some(&job), &picked),
            "Job t-api failed (BackoffLimitExceeded: Job has reached the specified backoff limit); \
             pod t-api-aaaaa: container api-check exited 1 (Error); pod t-api-bbbbb: container api-check exited 7 (Error)"
        );
    }

    #[test]
    fn failure_of_a_pod_that_never_started_quotes_the_waiting_reason() {
        let waiting = json!({"waiting": {"reason": "ErrImagePull", "message": "failed to pull image \"curl:nope\": not found"}});
        let pods = [pod("t-api-aaaaa", "t-api", "2025-05-01T10:00:10Z", waiting)];
        let picked = pods_of_job("t-api", None, &pods);
        let job: Job =
            serde_json::from_value(json!({"metadata": {"name": "t-api"}, "status": {"active": 1}}))
                .expect("job");
        assert_eq!(
            failure_reason(&TestHook::Job("t-api".into()), Some(&job), &picked),
            "Job t-api did not complete (active 1, succeeded 0, failed 0); \
             pod t-api-aaaaa: container api-check waiting ErrImagePull: failed to pull image \"curl:nope\": not found"
        );
    }

    #[test]
    fn job_succeeds_only_with_its_complete_condition() {
        let job = |conditions: Value| -> Job {
            serde_json::from_value(
                json!({"metadata": {"name": "t"}, "status": {"conditions": conditions}}),
            )
            .expect("job")
        };
        let done = job(json!([{"type": "Complete", "status": "True"}]));
        let failed = job(json!([{"type": "Failed", "status": "True"}]));
        let pods = [pod("t-a", "t", "2025-05-01T10:00:10Z", exited(0))];
        let picked = pods_of_job("t", None, &pods);
        assert!(succeeded(Some(&done), &picked));
        assert!(!succeeded(Some(&failed), &picked));
        assert!(!succeeded(Some(&job(json!([]))), &picked));
    }

    #[test]
    fn bare_pod_hook_succeeds_only_in_phase_succeeded() {
        let mut p = pod("t", "t", "2025-05-01T10:00:10Z", exited(0));
        assert!(!succeeded(None, &[&p]), "phase Failed");
        p.status.as_mut().expect("status").phase = Some("Succeeded".into());
        assert!(succeeded(None, &[&p]));
        assert!(!succeeded(None, &[]), "no pod at all");
    }

    #[test]
    fn failure_without_pods_says_so() {
        assert_eq!(
            failure_reason(&TestHook::Job("t".into()), None, &[]),
            "Job t; no pod ran it (see the events)"
        );
    }
}
