//! `backup-restore`: the chart's backup CronJob and restore Job, run by the backend the way
//! their controllers would, proven record by record.
//!
//! The dataset is written, the CronJob's job runs once (`kubectl create job --from=cronjob`),
//! the server is emptied through its API (every collection deleted: the same release and
//! volume, no data left), the restore Job runs, and every record is compared with the
//! dataset module's exact diff. The Jobs reach the server only through the Service, with the
//! credentials the chart wired into their env, so a wrong Secret key, port or claim fails it.

use k8s_openapi::api::batch::v1::Job;
use render::{Expected, RenderRequest, Rendered};

use super::{Outcome, Workloads, credential};
use crate::backend::{Backend, Deployed, HookRun};
use crate::dataset::{self, Dataset, Scope};
use crate::text::tail;
use chroma_api::client::{self, Api, Exchange};

/// The render that gives the restore Job a fresh release of `request`'s values would run:
/// `restore.enabled=true`, reading the same storage — for the chart's own backup claim that
/// means naming it as `existingClaim`, as a user restoring into a new release does.
/// `values` are the user's values the request layers (for the claim's name, from the spec).
pub fn restore_request(
    request: &RenderRequest,
    values: &serde_yaml::Value,
    expected: &Expected,
) -> Option<RenderRequest> {
    let backup = expected.backup.as_ref()?;
    let mut req = request.clone().set("restore.enabled", "true");
    if let render::spec::BackupStorage::Pvc {
        existing_claim: None,
    } = &backup.storage
    {
        let fullname = render::spec::fullname(values, &request.release).ok()?;
        req = req.set_string(
            "backup.storage.pvc.existingClaim",
            render::spec::own_claim(&fullname),
        );
    }
    Some(req)
}

/// The post-install hook Job of a render (the restore).
pub fn restore_job(rendered: &Rendered) -> Option<&Job> {
    rendered
        .jobs()
        .find(|j| render::hooks::runs_on(&j.metadata, "post-install"))
}

/// Where the dump says it wrote the archive (the tool prints the final location on stdout).
pub fn archive_line(log: &str) -> String {
    log.lines()
        .rev()
        .find(|l| l.contains("chroma-backup-") && !l.starts_with("---"))
        .map(|l| l.trim().to_string())
        .unwrap_or_else(|| "no archive location printed".into())
}

/// The dataset the check writes: small, so the smoke stays fast; two collections so a
/// restore that drops all but one is caught.
pub fn dataset() -> Dataset {
    Dataset::small("e2e-backup", 2, 6)
}

async fn names(api: &Api, ev: &mut Vec<Exchange>) -> Result<Vec<String>, String> {
    let a = api.list_collections().await;
    ev.push(a.ex.clone());
    client::collection_names(&a).map_err(|e| e.to_string())
}

fn job_failed(what: &str, reason: String, log: &str) -> String {
    format!(
        "{what} failed: {reason}\n--- its log ---\n{}",
        tail(log, 20)
    )
}

pub async fn backup_restore<B: Backend>(
    backend: &B,
    deployed: &mut Deployed,
    expected: &Expected,
    w: &Workloads,
) -> Outcome {
    let mut ev = Vec::new();
    let result = run(backend, deployed, expected, w, &mut ev).await;
    match result {
        Ok(Ok(detail)) => Outcome::Pass { detail },
        Ok(Err(reason)) => Outcome::Skipped {
            reason: format!("not run on the {} backend: {reason}", backend.name()),
        },
        Err(reason) => {
            let keep = ev.len().saturating_sub(6);
            Outcome::Fail {
                reason,
                evidence: ev.split_off(keep),
                log_tail: backend.logs(deployed, 30).await,
            }
        }
    }
}

/// `Ok(Ok(detail))` pass, `Ok(Err(why))` the backend cannot run a Job here, `Err(why)` fail.
async fn run<B: Backend>(
    backend: &B,
    deployed: &Deployed,
    expected: &Expected,
    w: &Workloads,
    ev: &mut Vec<Exchange>,
) -> Result<Result<String, String>, String> {
    let cronjob = w
        .backup
        .as_ref()
        .ok_or("the spec expects a backup CronJob (backup.enabled) but the chart rendered none")?;
    let restore = w
        .restore
        .as_ref()
        .ok_or("the chart rendered no post-install restore Job for restore.enabled=true")?;
    let cred = credential(expected, &deployed.secrets).map_err(|e| e.to_string())?;
    // Over HTTPS when the deployment serves TLS: the harness trusts the deployment's CA too.
    let api = crate::tls::api(
        &deployed.base_url,
        expected.api,
        cred,
        deployed.tls.as_ref(),
    );
    let ds = dataset();
    dataset::write(&api, &ds, ev)
        .await
        .map_err(|e| format!("writing the dataset: {e}"))?;
    let before = names(&api, ev).await?;

    let dumped = match backend
        .run_cronjob_once(deployed, cronjob)
        .await
        .map_err(|e| format!("running the backup CronJob's job: {e}"))?
    {
        HookRun::Succeeded { log } => log,
        HookRun::Failed { reason, log } => {
            return Err(job_failed("the backup CronJob's job", reason, &log));
        }
        HookRun::Unsupported { reason } => return Ok(Err(reason)),
    };
    let archive = archive_line(&dumped);

    for name in &before {
        let a = api.delete_collection(name).await;
        ev.push(a.ex.clone());
        a.require_2xx(&format!("deleting collection {name}"))
            .map_err(|e| e.to_string())?;
    }
    let left = names(&api, ev).await?;
    if !left.is_empty() {
        return Err(format!(
            "the server still lists {left:?} after every collection was deleted"
        ));
    }

    match backend
        .run_job(deployed, restore)
        .await
        .map_err(|e| format!("running the restore Job: {e}"))?
    {
        HookRun::Succeeded { .. } => {}
        HookRun::Failed { reason, log } => return Err(job_failed("the restore Job", reason, &log)),
        HookRun::Unsupported { reason } => return Ok(Err(reason)),
    }
    let mut after = names(&api, ev).await?;
    let mut want = before.clone();
    after.sort();
    want.sort();
    if after != want {
        return Err(format!(
            "collections before the backup {want:?}, after the restore {after:?}"
        ));
    }
    let diff = dataset::diff(&ds, &dataset::read(&api, &ds, ev).await, Scope::Shared);
    if !diff.intact() {
        return Err(format!(
            "the restored data differs from what was written: {}",
            diff.problems().join("; ")
        ));
    }
    Ok(Ok(format!(
        "{} records in {} collections dumped by the CronJob's job ({archive}), all {} collections deleted, restored by the restore Job: every record identical",
        ds.record_count(),
        ds.collections.len(),
        before.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(values: &serde_yaml::Value) -> Expected {
        Expected::from_values(values, &"1.5.0".parse().unwrap()).unwrap()
    }

    #[test]
    fn the_restore_render_names_the_releases_own_backup_claim() {
        let values: serde_yaml::Value =
            serde_yaml::from_str("backup: {enabled: true}\nfullnameOverride: vectors").unwrap();
        let req = restore_request(
            &RenderRequest::new("chart").values(values.clone()),
            &values,
            &expected(&values),
        )
        .unwrap();
        assert!(
            req.sets
                .iter()
                .any(|(k, v)| k == "restore.enabled" && v == "true"),
            "{:?}",
            req.sets
        );
        assert!(
            req.set_strings
                .iter()
                .any(|(k, v)| k == "backup.storage.pvc.existingClaim" && v == "vectors-backup"),
            "{:?}",
            req.set_strings
        );
    }

    #[test]
    fn without_backups_there_is_no_restore_render() {
        let values: serde_yaml::Value = serde_yaml::from_str("{}").unwrap();
        assert!(
            restore_request(&RenderRequest::new("chart"), &values, &expected(&values)).is_none()
        );
    }

    #[test]
    fn the_archive_location_is_the_dumps_stdout_line() {
        let log = "--- Job/x pod x-1 (attempt 1 of 3) ---\n/backups/chroma-backup-20260101T000000Z.tar\n2026-01-01T00:00:00Z INFO dumped 2 collections\n--- exit: exit status: 0 ---\n";
        assert_eq!(
            archive_line(log),
            "/backups/chroma-backup-20260101T000000Z.tar"
        );
    }
}
