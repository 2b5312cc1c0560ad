//! What went wrong in the namespace: events, pod status and container logs (current and
//! previous), gathered when a deploy, restart, upgrade or `helm test` fails. Assembly is pure
//! so its shape is tested; gathering is best effort (a failure to gather is itself reported).

use std::fmt::Write as _;

use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use kube::Api;
use kube::api::{ListParams, LogParams};

/// One container's log, as fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLog {
    pub pod: String,
    pub container: String,
    /// The log of the previous (crashed) instance rather than the current one.
    pub previous: bool,
    pub text: String,
}

/// The report attached to a failure: events oldest first, then each pod's phase, unmet
/// conditions and container states, then the logs.
pub fn failure_report(events: &[Event], pods: &[Pod], logs: &[ContainerLog]) -> String {
    let mut out = String::new();
    let mut events: Vec<&Event> = events.iter().collect();
    events.sort_by_key(|e| event_time(e));
    let _ = writeln!(out, "--- events ({}) ---", events.len());
    for e in events {
        let obj = &e.involved_object;
        let count = e
            .count
            .filter(|c| *c > 1)
            .map(|c| format!(" (x{c})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{} {}/{} {}: {}{count}",
            e.type_.as_deref().unwrap_or("?"),
            obj.kind.as_deref().unwrap_or("?"),
            obj.name.as_deref().unwrap_or("?"),
            e.reason.as_deref().unwrap_or("?"),
            e.message.as_deref().unwrap_or("").trim(),
        );
    }
    let _ = writeln!(out, "--- pods ({}) ---", pods.len());
    for p in pods {
        out.push_str(&pod_status(p));
    }
    for l in logs {
        let which = if l.previous { "previous" } else { "current" };
        let _ = writeln!(out, "--- log {}/{} ({which}) ---", l.pod, l.container);
        out.push_str(l.text.trim_end());
        out.push('\n');
    }
    out
}

fn event_time(e: &Event) -> Option<k8s_openapi::jiff::Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// `pod NAME: Phase` plus the conditions that are not True and every container's state.
pub fn pod_status(p: &Pod) -> String {
    let mut out = String::new();
    let name = p.metadata.name.as_deref().unwrap_or("?");
    let status = p.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Unknown");
    let _ = write!(out, "pod {name}: {phase}");
    if let Some(reason) = status.and_then(|s| s.reason.as_deref()) {
        let _ = write!(out, " ({reason})");
    }
    out.push('\n');
    for c in status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
    {
        if c.status != "True" {
            let why = [c.reason.as_deref(), c.message.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            let _ = writeln!(out, "  condition {}={} {why}", c.type_, c.status);
        }
    }
    let init = status
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| ("init ", c));
    let main = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| ("", c));
    for (kind, c) in init.chain(main) {
        let _ = writeln!(out, "  {kind}container {}: {}", c.name, container_state(c));
    }
    out
}

fn container_state(c: &ContainerStatus) -> String {
    let mut s = format!("ready={} restarts={}", c.ready, c.restart_count);
    let describe = |st: &k8s_openapi::api::core::v1::ContainerState| -> Option<String> {
        if let Some(w) = &st.waiting {
            Some(format!(
                "waiting {} {}",
                w.reason.as_deref().unwrap_or(""),
                w.message.as_deref().unwrap_or("")
            ))
        } else if let Some(t) = &st.terminated {
            Some(format!(
                "terminated {} exit {} {}",
                t.reason.as_deref().unwrap_or(""),
                t.exit_code,
                t.message.as_deref().unwrap_or("")
            ))
        } else {
            st.running.as_ref().map(|_| "running".to_string())
        }
    };
    if let Some(now) = c.state.as_ref().and_then(describe) {
        let _ = write!(s, " now: {}", now.trim_end());
    }
    if let Some(last) = c.last_state.as_ref().and_then(describe) {
        let _ = write!(s, " last: {}", last.trim_end());
    }
    s
}

/// The containers worth reading logs from, and whether a previous instance exists.
pub fn log_targets(p: &Pod) -> Vec<(String, bool)> {
    let status = p.status.as_ref();
    let all = status
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .chain(
            status
                .and_then(|s| s.container_statuses.as_ref())
                .into_iter()
                .flatten(),
        );
    all.filter(|c| {
        c.state
            .as_ref()
            .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
            || c.restart_count > 0
    })
    .map(|c| (c.name.clone(), c.restart_count > 0))
    .collect()
}

/// Container logs of one pod: current, and previous where the container restarted.
pub async fn pod_logs(pods: &Api<Pod>, pod: &Pod, tail: usize) -> Vec<ContainerLog> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut out = Vec::new();
    for (container, restarted) in log_targets(pod) {
        for previous in [false, true] {
            if previous && !restarted {
                continue;
            }
            let lp = LogParams {
                container: Some(container.clone()),
                previous,
                tail_lines: Some(i64::try_from(tail).unwrap_or(i64::MAX)),
                ..LogParams::default()
            };
            let text = match pods.logs(&name, &lp).await {
                Ok(t) => t,
                Err(e) => format!("(could not read the log: {e})"),
            };
            out.push(ContainerLog {
                pod: name.clone(),
                container: container.clone(),
                previous,
                text,
            });
        }
    }
    out
}

/// Gathers everything in `namespace` and assembles the report.
pub async fn collect(client: &kube::Client, namespace: &str, tail: usize) -> String {
    let events_api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut notes = String::new();
    let events = events_api
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_else(|e| {
            let _ = writeln!(notes, "(could not list events: {e})");
            Vec::new()
        });
    let pods = pods_api
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_else(|e| {
            let _ = writeln!(notes, "(could not list pods: {e})");
            Vec::new()
        });
    let mut logs = Vec::new();
    for p in &pods {
        logs.extend(pod_logs(&pods_api, p, tail).await);
    }
    format!(
        "namespace {namespace}\n{notes}{}",
        failure_report(&events, &pods, &logs)
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(reason: &str, message: &str, last: &str, count: i32) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": format!("chroma-chromadb-0.{reason}"), "namespace": "ns"},
            "involvedObject": {"kind": "Pod", "name": "chroma-chromadb-0"},
            "type": if reason == "BackOff" { "Warning" } else { "Normal" },
            "reason": reason, "message": message, "lastTimestamp": last, "count": count
        }))
        .expect("Event parses")
    }

    /// A pod whose server crashed once and is now waiting in CrashLoopBackOff.
    fn crashing_pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "chroma-chromadb-0"},
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "Initialized", "status": "True"},
                    {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "message": "containers with unready status: [chromadb]"}
                ],
                "initContainerStatuses": [{"name": "htpasswd", "ready": true, "restartCount": 0, "image": "httpd", "imageID": "",
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
                "containerStatuses": [{"name": "chromadb", "ready": false, "restartCount": 2, "image": "chromadb/chroma:0.5.20", "imageID": "",
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s restarting failed container"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]
            }
        }))
        .expect("Pod parses")
    }

    #[test]
    fn events_are_listed_oldest_first_with_repeat_counts() {
        let events = [
            event(
                "BackOff",
                "Back-off restarting failed container",
                "2025-05-01T10:00:30Z",
                3,
            ),
            event(
                "Pulled",
                "Container image pulled",
                "2025-05-01T10:00:05Z",
                1,
            ),
        ];
        let report = failure_report(&events, &[], &[]);
        let pulled = report
            .find("Normal Pod/chroma-chromadb-0 Pulled: Container image pulled\n")
            .expect("pulled line");
        let backoff = report
            .find("Warning Pod/chroma-chromadb-0 BackOff: Back-off restarting failed container (x3)\n")
            .expect("backoff line");
        assert!(pulled < backoff, "{report}");
    }

    #[test]
    fn pod_status_shows_unmet_conditions_and_container_states() {
        let report = pod_status(&crashing_pod());
        assert_eq!(
            report,
            "pod chroma-chromadb-0: Running\n\
             \x20 condition Ready=False ContainersNotReady: containers with unready status: [chromadb]\n\
             \x20 init container htpasswd: ready=true restarts=0 now: terminated Completed exit 0\n\
             \x20 container chromadb: ready=false restarts=2 now: waiting CrashLoopBackOff back-off 20s restarting failed container last: terminated Error exit 1\n"
        );
    }

    #[test]
    fn restarted_containers_get_their_previous_log_too() {
        assert_eq!(
            log_targets(&crashing_pod()),
            [
                ("htpasswd".to_string(), false),
                ("chromadb".to_string(), true)
            ]
        );
    }

    #[test]
    fn logs_follow_status_labelled_current_or_previous() {
        let logs = [
            ContainerLog {
                pod: "p-0".into(),
                container: "chromadb".into(),
                previous: false,
                text: "starting\n".into(),
            },
            ContainerLog {
                pod: "p-0".into(),
                container: "chromadb".into(),
                previous: true,
                text: "Traceback: boom\n".into(),
            },
        ];
        let report = failure_report(&[], &[crashing_pod()], &logs);
        let pods_at = report.find("--- pods (1) ---").expect("pods section");
        let current = report
            .find("--- log p-0/chromadb (current) ---\nstarting\n")
            .expect("current log");
        let previous = report
            .find("--- log p-0/chromadb (previous) ---\nTraceback: boom\n")
            .expect("previous log");
        assert!(pods_at < current && current < previous, "{report}");
    }

    #[test]
    fn empty_namespace_still_says_what_was_looked_at() {
        assert_eq!(
            failure_report(&[], &[], &[]),
            "--- events (0) ---\n--- pods (0) ---\n"
        );
    }
}
