//! The backup family of the faults checks, with the chart's own backup CronJob and restore
//! Job run by the backend:
//! - `faults-backup-writes`: a dump taken while a writer runs restores to records the server
//!   acknowledged, each identical, and the dump's log names the collection that changed while
//!   it was read (and not the quiet one).
//! - `faults-restore-interrupted`: the restore Job's pod killed half-way leaves the
//!   restore's marker collection (`chromadb-backup-restore-in-progress`, docs/chroma-eras.md);
//!   the Job's next attempt starts over and completes — or refuses naming the marker — and
//!   is never a silent half-restore.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use render::Expected;
use reqwest::Method;

use super::faults::{self, BATCH};
use super::{Ctx, Outcome, Workloads, credential};
use crate::backend::{Backend, Deployed, HookRun};
use crate::vectors::Workload;

/// The marker the backup tool's restore keeps while it is not finished (`backup::ops::RESTORE_MARKER`).
pub const RESTORE_MARKER: &str = "chromadb-backup-restore-in-progress";
const QUIET: &str = "e2e-faults-backup-quiet";
const BUSY: &str = "e2e-faults-backup-busy";
/// Records in the quiet collection, and in the busy one before its writer starts.
const SEEDED: usize = 500;
/// Most batches the busy writer sends (it stops when the dump ends).
const WRITER_BATCHES: usize = 2_000;
/// Collections and records of the interrupted restore: enough that the restore takes seconds.
const RESTORE_COLLECTIONS: usize = 4;
const RESTORE_RECORDS: usize = 2_000;

type Checked = Result<Result<String, String>, String>;

fn outcome(r: Checked, backend_name: &str) -> Result<String, Result<String, String>> {
    match r {
        Ok(Ok(detail)) => Ok(detail),
        Ok(Err(skip)) => Err(Ok(format!("not run on the {backend_name} backend: {skip}"))),
        Err(fail) => Err(Err(fail)),
    }
}

/// Runs `f` with a check context and turns its result into an outcome.
async fn with_ctx<'a, B: Backend, F>(
    backend: &'a B,
    deployed: &'a mut Deployed,
    expected: &'a Expected,
    f: F,
) -> Outcome
where
    F: AsyncFnOnce(&mut Ctx<'a, B>) -> Checked,
{
    let api = match credential(expected, &deployed.secrets) {
        Ok(c) => crate::tls::api(&deployed.base_url, expected.api, c, deployed.tls.as_ref()),
        Err(e) => {
            return Outcome::Fail {
                reason: crate::text::chain(&e),
                evidence: Vec::new(),
                log_tail: String::new(),
            };
        }
    };
    let mut ctx = Ctx {
        backend,
        deployed,
        expected,
        api,
        evidence: Vec::new(),
    };
    let r = f(&mut ctx).await;
    match outcome(r, backend.name()) {
        Ok(detail) => Outcome::Pass { detail },
        Err(Ok(reason)) => Outcome::Skipped { reason },
        Err(Err(reason)) => {
            let log_tail = ctx.backend.logs(ctx.deployed, 30).await;
            let keep = ctx.evidence.len().saturating_sub(6);
            Outcome::Fail {
                reason,
                evidence: ctx.evidence.split_off(keep),
                log_tail,
            }
        }
    }
}

async fn names<B: Backend>(ctx: &mut Ctx<'_, B>) -> Result<Vec<String>, String> {
    let a = ctx.rec(ctx.api.list_collections().await);
    chroma_api::client::collection_names(&a).map_err(|e| e.to_string())
}

async fn id_of<B: Backend>(ctx: &mut Ctx<'_, B>, name: &str) -> Result<String, String> {
    let a = ctx.rec(ctx.api.get_collection(name).await);
    Ok(
        chroma_api::client::collection(&a, &format!("getting collection {name}"))
            .map_err(|e| e.to_string())?
            .id,
    )
}

async fn delete_all<B: Backend>(ctx: &mut Ctx<'_, B>) -> Result<usize, String> {
    let all = names(ctx).await?;
    for n in &all {
        let a = ctx.rec(ctx.api.delete_collection(n).await);
        a.require_2xx(&format!("deleting collection {n}"))
            .map_err(|e| e.to_string())?;
    }
    Ok(all.len())
}

async fn fill<B: Backend>(
    ctx: &mut Ctx<'_, B>,
    name: &str,
    w: &Workload,
    total: usize,
) -> Result<String, String> {
    let id = faults::create(ctx, name).await?;
    let mut ev = Vec::new();
    let (_, refused) = faults::stream(
        &ctx.api.clone(),
        &id,
        w,
        total,
        0..faults::batches_of(total),
        &AtomicUsize::new(0),
        &mut ev,
    )
    .await;
    ctx.evidence.append(&mut ev);
    match refused {
        Some(r) => Err(format!("writing {total} records to {name}: {}", r.what)),
        None => Ok(id),
    }
}

/// `faults-backup-writes`.
pub async fn backup_writes<B: Backend>(
    backend: &B,
    deployed: &mut Deployed,
    expected: &Expected,
    w: &Workloads,
    seed: u64,
) -> Outcome {
    with_ctx(backend, deployed, expected, async |ctx| {
        backup_writes_in(ctx, w, seed).await
    })
    .await
}

async fn backup_writes_in<B: Backend>(ctx: &mut Ctx<'_, B>, wl: &Workloads, seed: u64) -> Checked {
    let cronjob = wl
        .backup
        .as_ref()
        .ok_or("the spec expects a backup CronJob (backup.enabled) but the chart rendered none")?;
    let restore = wl
        .restore
        .as_ref()
        .ok_or("the chart rendered no post-install restore Job for restore.enabled=true")?;
    let quiet_w = Workload::new("quiet", seed);
    let busy_w = Workload::new("busy", seed);
    fill(ctx, QUIET, &quiet_w, SEEDED).await?;
    let busy = fill(ctx, BUSY, &busy_w, SEEDED).await?;
    // Busy records: the first SEEDED, then batch b of the writer is records SEEDED + b·BATCH ….
    let stop = AtomicBool::new(false);
    let acked_during = AtomicUsize::new(0);
    let api = ctx.api.clone();
    let url = faults::collections_url(&api, &busy, "add");
    let write = async {
        let mut acked = Vec::new();
        let mut refused = Vec::new();
        let mut b = 0;
        while !stop.load(Ordering::SeqCst) && b < WRITER_BATCHES {
            let range = SEEDED + b * BATCH..SEEDED + (b + 1) * BATCH;
            let a = api
                .call(Method::POST, &url, Some(busy_w.add_body(range.clone())))
                .await;
            if a.ex.ok() {
                acked.extend(range);
                acked_during.fetch_add(1, Ordering::SeqCst);
            } else {
                refused.push(format!(
                    "records {range:?}: {} {}",
                    a.status(),
                    a.ex.response_body.chars().take(120).collect::<String>()
                ));
            }
            b += 1;
        }
        (acked, refused)
    };
    let t = Instant::now();
    let dump = async {
        // Let the writer get going first.
        while acked_during.load(Ordering::SeqCst) < 3 && t.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let started = acked_during.load(Ordering::SeqCst);
        let r = ctx.backend.run_cronjob_once(ctx.deployed, cronjob).await;
        let during = acked_during.load(Ordering::SeqCst) - started;
        stop.store(true, Ordering::SeqCst);
        (r, during)
    };
    let ((acked_busy, refused), (dumped, during)) = futures::join!(write, dump);
    let dump_s = t.elapsed().as_secs_f64();
    let log = match dumped.map_err(|e| format!("running the backup CronJob's job: {e}"))? {
        HookRun::Succeeded { log } => log,
        HookRun::Failed { reason, log } => {
            return Err(format!(
                "the backup CronJob's job failed: {reason}\n--- its log ---\n{}",
                crate::text::tail(&log, 20)
            ));
        }
        HookRun::Unsupported { reason } => return Ok(Err(reason)),
    };
    if !refused.is_empty() {
        return Err(format!(
            "seed {seed}: the server refused {} of the writer's batches during the dump: {}",
            refused.len(),
            refused[..refused.len().min(3)].join("; ")
        ));
    }
    if during == 0 {
        return Err(format!(
            "seed {seed}: no batch was acknowledged while the dump ran ({dump_s:.1} s): nothing was proven about a dump under writes"
        ));
    }
    let named_busy = log
        .lines()
        .any(|l| l.contains(&format!("collection {BUSY} counted")));
    let named_quiet = log
        .lines()
        .any(|l| l.contains(&format!("collection {QUIET} counted")));
    if !named_busy {
        return Err(format!(
            "seed {seed}: {during} batches were acknowledged while the dump ran, but its log does not name collection {BUSY} as changed while it was read:\n{}",
            crate::text::tail(&log, 12)
        ));
    }
    if named_quiet {
        return Err(format!(
            "seed {seed}: the dump's log names collection {QUIET} as changed, but nothing wrote to it:\n{}",
            crate::text::tail(&log, 12)
        ));
    }
    let warning = log
        .lines()
        .find(|l| l.contains(&format!("collection {BUSY} counted")))
        .map(str::trim)
        .unwrap_or_default()
        .to_string();

    let deleted = delete_all(ctx).await?;
    match ctx
        .backend
        .run_job(ctx.deployed, restore)
        .await
        .map_err(|e| format!("running the restore Job: {e}"))?
    {
        HookRun::Succeeded { .. } => {}
        HookRun::Failed { reason, log } => {
            return Err(format!(
                "the restore Job failed: {reason}\n--- its log ---\n{}",
                crate::text::tail(&log, 20)
            ));
        }
        HookRun::Unsupported { reason } => return Ok(Err(reason)),
    }
    // Quiet: all of it. Busy: only records the server acknowledged, each identical; and at
    // least what was there before the writer began.
    let api = ctx.api.clone();
    let quiet = id_of(ctx, QUIET).await?;
    let mut ev = Vec::new();
    let q = faults::verify(
        &api,
        &quiet,
        &quiet_w,
        &(0..SEEDED).collect::<Vec<_>>(),
        "after the restore, the quiet collection",
        &mut ev,
    )
    .await;
    ctx.evidence.append(&mut ev);
    q?;
    let busy = id_of(ctx, BUSY).await?;
    let a = ctx.rec(
        api.call(
            Method::POST,
            &faults::collections_url(&api, &busy, "get"),
            Some(serde_json::json!({"include": []}).to_string()),
        )
        .await,
    );
    let restored_ids: Vec<String> = a
        .json_2xx("listing the restored busy collection's ids")
        .map_err(|e| e.to_string())?
        .get("ids")
        .and_then(serde_json::Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let acked: std::collections::HashMap<String, usize> = (0..SEEDED)
        .chain(acked_busy.iter().copied())
        .map(|i| (busy_w.record(i).id, i))
        .collect();
    let foreign: Vec<&String> = restored_ids
        .iter()
        .filter(|i| !acked.contains_key(*i))
        .collect();
    if !foreign.is_empty() {
        return Err(format!(
            "seed {seed}: the restore holds {} record(s) the server never acknowledged, e.g. {:?}",
            foreign.len(),
            &foreign[..foreign.len().min(4)]
        ));
    }
    let mut held: Vec<usize> = restored_ids.iter().map(|i| acked[i]).collect();
    held.sort_unstable();
    if held.len() < SEEDED || !(0..SEEDED).all(|i| held.binary_search(&i).is_ok()) {
        return Err(format!(
            "seed {seed}: the restored busy collection lacks records written before the dump began ({} restored)",
            held.len()
        ));
    }
    let mut ev = Vec::new();
    let n = faults::verify(
        &api,
        &busy,
        &busy_w,
        &held,
        "after the restore, the busy collection",
        &mut ev,
    )
    .await;
    ctx.evidence.append(&mut ev);
    let n = n?;
    Ok(Ok(format!(
        "seed {seed}: {SEEDED} records in {QUIET}, {SEEDED} + a writer's {} acknowledged batches in {BUSY} ({during} of them while the CronJob's dump ran, {dump_s:.1} s); the dump's log: \"{warning}\"; {deleted} collections deleted, restored by the restore Job: {QUIET} whole, {n} records of {BUSY} — every one acknowledged and identical, {} acknowledged later than the dump read them",
        acked_busy.len() / BATCH,
        SEEDED + acked_busy.len() - n,
    )))
}

/// `faults-restore-interrupted`.
pub async fn restore_interrupted<B: Backend>(
    backend: &B,
    deployed: &mut Deployed,
    expected: &Expected,
    w: &Workloads,
    seed: u64,
) -> Outcome {
    with_ctx(backend, deployed, expected, async |ctx| {
        restore_interrupted_in(ctx, w, seed).await
    })
    .await
}

async fn restore_interrupted_in<B: Backend>(
    ctx: &mut Ctx<'_, B>,
    wl: &Workloads,
    seed: u64,
) -> Checked {
    let cronjob = wl
        .backup
        .as_ref()
        .ok_or("the spec expects a backup CronJob (backup.enabled) but the chart rendered none")?;
    let restore = wl
        .restore
        .as_ref()
        .ok_or("the chart rendered no post-install restore Job for restore.enabled=true")?;
    let names_w: Vec<(String, Workload)> = (0..RESTORE_COLLECTIONS)
        .map(|k| {
            (
                format!("e2e-faults-restore-{k}"),
                Workload::new(&format!("restore{k}"), seed),
            )
        })
        .collect();
    for (name, w) in &names_w {
        fill(ctx, name, w, RESTORE_RECORDS).await?;
    }
    match ctx
        .backend
        .run_cronjob_once(ctx.deployed, cronjob)
        .await
        .map_err(|e| format!("running the backup CronJob's job: {e}"))?
    {
        HookRun::Succeeded { .. } => {}
        HookRun::Failed { reason, log } => {
            return Err(format!(
                "the backup CronJob's job failed: {reason}\n--- its log ---\n{}",
                crate::text::tail(&log, 20)
            ));
        }
        HookRun::Unsupported { reason } => return Ok(Err(reason)),
    }
    delete_all(ctx).await?;

    // The restore Job's pod, killed once its marker and a second collection are there (the
    // first one written, the second begun or not): the
    // node kills a pod by ending its processes (dropping the run ends them with SIGKILL).
    let api = ctx.api.clone();
    let t = Instant::now();
    let watch = async {
        loop {
            let a = api.list_collections().await;
            if let Ok(listed) = chroma_api::client::collection_names(&a)
                && listed.iter().any(|n| n == RESTORE_MARKER)
                && listed
                    .iter()
                    .filter(|n| n.starts_with("e2e-faults-restore-"))
                    .count()
                    >= 2
            {
                return listed;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    };
    let first = tokio::select! {
        r = ctx.backend.run_job(ctx.deployed, restore) => Err(r),
        listed = watch => Ok(listed),
    };
    let killed_at = t.elapsed().as_secs_f64();
    let seen = match first {
        Ok(listed) => listed,
        Err(Ok(HookRun::Succeeded { .. })) => {
            return Err(format!(
                "seed {seed}: the restore Job finished ({killed_at:.1} s) before its marker and a second collection were seen together: nothing was interrupted"
            ));
        }
        Err(Ok(HookRun::Failed { reason, log })) => {
            return Err(format!(
                "the restore Job failed before it was killed: {reason}\n--- its log ---\n{}",
                crate::text::tail(&log, 20)
            ));
        }
        Err(Ok(HookRun::Unsupported { reason })) => return Ok(Err(reason)),
        Err(Err(e)) => return Err(format!("running the restore Job: {e}")),
    };
    // Give a dying pod's last request time to land, then look at what it left.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let left = names(ctx).await?;
    let mut partial = Vec::new();
    for n in left.iter().filter(|n| n.starts_with("e2e-faults-restore-")) {
        let id = id_of(ctx, n).await?;
        let mut ev = Vec::new();
        let c = faults::count(&api, &id, &mut ev).await;
        ctx.evidence.append(&mut ev);
        partial.push(format!("{n}: {}", c?));
    }
    if !left.iter().any(|n| n == RESTORE_MARKER) {
        return Err(format!(
            "seed {seed}: the restore Job's pod was killed after {killed_at:.1} s and left {} without a trace that it is unfinished (no {RESTORE_MARKER} collection): a silent half-restore",
            partial.join(", ")
        ));
    }
    let _ = seen;

    // The Job's next attempt.
    let again = ctx
        .backend
        .run_job(ctx.deployed, restore)
        .await
        .map_err(|e| format!("running the restore Job again: {e}"))?;
    let how = match again {
        HookRun::Succeeded { log } if log.contains("starting over") => "started over and completed",
        HookRun::Succeeded { log } => {
            return Err(format!(
                "seed {seed}: the restore Job's second run succeeded without saying it found the interrupted one (it must start over):\n{}",
                crate::text::tail(&log, 12)
            ));
        }
        HookRun::Failed { reason, log } if log.contains("interrupted restore") => {
            return Ok(Ok(format!(
                "seed {seed}: killed after {killed_at:.1} s with {} restored; the Job's next run refused, naming the interrupted restore: {reason}",
                partial.join(", ")
            )));
        }
        HookRun::Failed { reason, log } => {
            return Err(format!(
                "the restore Job's second run failed: {reason}\n--- its log ---\n{}",
                crate::text::tail(&log, 20)
            ));
        }
        HookRun::Unsupported { reason } => return Ok(Err(reason)),
    };
    let after = names(ctx).await?;
    if after.iter().any(|n| n == RESTORE_MARKER) {
        return Err(format!(
            "seed {seed}: after the restore completed its marker {RESTORE_MARKER} is still there"
        ));
    }
    let mut total = 0;
    for (name, w) in &names_w {
        let id = id_of(ctx, name).await?;
        let mut ev = Vec::new();
        let n = faults::verify(
            &api,
            &id,
            w,
            &(0..RESTORE_RECORDS).collect::<Vec<_>>(),
            &format!("after the second restore, {name}"),
            &mut ev,
        )
        .await;
        ctx.evidence.append(&mut ev);
        total += n?;
    }
    Ok(Ok(format!(
        "seed {seed}: {RESTORE_COLLECTIONS} collections × {RESTORE_RECORDS} records × {} dims dumped by the CronJob's job and deleted; the restore Job's pod killed after {killed_at:.1} s with {} restored and {RESTORE_MARKER} there; its next run {how}: {total} records identical, the marker gone",
        crate::vectors::DIM,
        partial.join(", "),
    )))
}

/// Both backup faults checks need the chart's backup CronJob.
pub fn applies(e: &render::Expected) -> Result<(), String> {
    match e.backup {
        Some(_) => Ok(()),
        None => Err(
            "backup.enabled is off in this deployment's values: there is no backup CronJob to run"
                .into(),
        ),
    }
}

/// The run's seed (`E2E_FAULTS_SEED` replays one); a bad value fails the check, naming it.
pub fn seed_or_fail() -> Result<u64, Outcome> {
    super::faults::seed(std::env::var(super::faults::SEED_ENV).ok()).map_err(|reason| {
        Outcome::Fail {
            reason,
            evidence: Vec::new(),
            log_tail: String::new(),
        }
    })
}
