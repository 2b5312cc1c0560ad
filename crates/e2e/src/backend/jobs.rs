//! Jobs a release runs besides its server: a CronJob's job run once, the way
//! `kubectl create job --from=cronjob/<name>` makes it, and a Job's retry budget.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// The Job `kubectl create job --from=cronjob/<cronjob> <name>` creates: the jobTemplate's
/// spec, labels and annotations unchanged, the `cronjob.kubernetes.io/instantiate: manual`
/// annotation, and the CronJob as owner when it has a uid (it has one on a cluster only).
pub fn job_from_cronjob(cronjob: &CronJob, name: &str) -> Result<Job, String> {
    let cj_name = cronjob.metadata.name.clone().unwrap_or_default();
    let template = cronjob
        .spec
        .as_ref()
        .map(|s| &s.job_template)
        .ok_or_else(|| format!("CronJob {cj_name} has no spec"))?;
    let spec: JobSpec = template
        .spec
        .clone()
        .ok_or_else(|| format!("CronJob {cj_name}: spec.jobTemplate.spec is missing"))?;
    let meta = template.metadata.clone().unwrap_or_default();
    let mut annotations: BTreeMap<String, String> = meta.annotations.unwrap_or_default();
    annotations.insert("cronjob.kubernetes.io/instantiate".into(), "manual".into());
    let owner = cronjob.metadata.uid.clone().map(|uid| OwnerReference {
        api_version: "batch/v1".into(),
        kind: "CronJob".into(),
        name: cj_name.clone(),
        uid,
        controller: Some(true),
        block_owner_deletion: None,
    });
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: cronjob.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}

/// A name for a manual run of `cronjob`: `<cronjob>-manual-<5 random>`, within a DNS label.
pub fn manual_job_name(cronjob: &str) -> String {
    let base: String = cronjob.chars().take(63 - "-manual-".len() - 5).collect();
    format!(
        "{}-manual-{}",
        base.trim_end_matches('-'),
        crate::random::dns_suffix(5)
    )
}

/// Pod attempts a Job allows (`backoffLimit` + 1; Kubernetes' default limit is 6) and its
/// deadline (`activeDeadlineSeconds`, bounded by `cap`).
pub fn budget(job: &Job, cap: Duration) -> (u32, Duration) {
    let spec = job.spec.as_ref();
    let attempts = u32::try_from(spec.and_then(|s| s.backoff_limit).unwrap_or(6)).unwrap_or(0) + 1;
    let deadline = spec
        .and_then(|s| s.active_deadline_seconds)
        .map_or(cap, |s| Duration::from_secs(s.max(1) as u64).min(cap));
    (attempts, deadline)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cronjob(uid: Option<&str>) -> CronJob {
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "r-chromadb-backup", "namespace": "ns1", "uid": uid},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {
                "metadata": {"labels": {"app.kubernetes.io/component": "backup"}},
                "spec": {"backoffLimit": 2, "activeDeadlineSeconds": 60, "template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "backup", "image": "ghcr.io/x/chromadb-backup:1", "args": ["dump", "--to", "/backups/"]}]}}}
            }}
        }))
        .unwrap()
    }

    #[test]
    fn a_manual_run_keeps_the_templates_pod_labels_and_budget() {
        let job = job_from_cronjob(&cronjob(None), "r-chromadb-backup-manual-abcde").unwrap();
        let v = serde_json::to_value(&job).unwrap();
        assert_eq!(v["metadata"]["name"], "r-chromadb-backup-manual-abcde");
        assert_eq!(
            v["metadata"]["labels"]["app.kubernetes.io/component"],
            "backup"
        );
        assert_eq!(
            v["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
            "manual"
        );
        assert_eq!(
            v["spec"]["template"]["spec"]["containers"][0]["args"],
            json!(["dump", "--to", "/backups/"])
        );
        assert!(
            v["metadata"].get("ownerReferences").is_none(),
            "no uid, no owner: {v}"
        );
        assert_eq!(
            budget(&job, Duration::from_secs(600)),
            (3, Duration::from_secs(60))
        );
    }

    #[test]
    fn on_a_cluster_the_cronjob_owns_its_manual_run() {
        let job = job_from_cronjob(&cronjob(Some("u-1")), "x").unwrap();
        let owner = &job.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("CronJob", "r-chromadb-backup", "u-1")
        );
    }

    #[test]
    fn a_cronjob_without_a_job_template_spec_is_named() {
        let mut cj = cronjob(None);
        cj.spec.as_mut().unwrap().job_template.spec = None;
        assert!(
            job_from_cronjob(&cj, "x")
                .unwrap_err()
                .contains("r-chromadb-backup")
        );
    }

    #[test]
    fn a_manual_job_name_fits_a_dns_label_for_the_longest_cronjob_name() {
        let n = manual_job_name(&"c".repeat(52));
        assert!(n.len() <= 63 && n.contains("-manual-"), "{n}");
    }
}
