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
/// Records in the quiet collection.
const SEEDED: usize = 500;
/// Records in the busy collection before its writer starts: enough that the tool's read of it
/// spans several of the writer's batches (900 records read in 0.4 s on 1.5.0, between two
/// batches, proved nothing on the local cluster).
const BUSY_SEEDED: usize = 3_000;
/// Most batches the busy writer sends (it stops when the dump ends).
const WRITER_BATCHES: usize = 2_000;
/// Collections and records of the interrupted restore: enough that the restore takes seconds.
const RESTORE_COLLECTIONS: usize = 4;
const RESTORE_RECORDS: usize = 2_000;

type Checked = Result<Result<String, String>, String>;

/// When the tool read `collection`: from its log's `connected` line to its
/// `dumped collection=<collection>` line (each starts with an RFC 3339 UTC time).
fn read_window(
    log: &str,
    collection: &str,
) -> Option<(std::time::SystemTime, std::time::SystemTime)> {
    let at = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
            .map(std::time::SystemTime::from)
    };
    Some((
        at(" connected ")?,
        at(&format!("dumped collection={collection} "))?,
    ))
}

#[derive(Debug, PartialEq, Eq)]
enum DumpProof {
    /// The tool named the busy collection as changed under its read.
    Proven,
    /// A batch surely landed inside the read and the tool did not say so.
    Missed,
    /// No batch surely landed inside the read and the tool saw none: the run proved nothing.
    Unproven,
}

/// `in_read`: batches acknowledged between the tool's `connected` and `dumped` lines.
fn dump_proof(in_read: usize, named_busy: bool) -> DumpProof {
    match (in_read, named_busy) {
        (_, true) => DumpProof::Proven,
        (0, false) => DumpProof::Unproven,
        (_, false) => DumpProof::Missed,
    }
}

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
    chroma_api::client::collection_names(&a).map_err(|e| crate::text::chain(&e))
}

async fn id_of<B: Backend>(ctx: &mut Ctx<'_, B>, name: &str) -> Result<String, String> {
    let a = ctx.rec(ctx.api.get_collection(name).await);
    Ok(
        chroma_api::client::collection(&a, &format!("getting collection {name}"))
            .map_err(|e| crate::text::chain(&e))?
            .id,
    )
}

async fn delete_all<B: Backend>(ctx: &mut Ctx<'_, B>) -> Result<usize, String> {
    let all = names(ctx).await?;
    for n in &all {
        let a = ctx.rec(ctx.api.delete_collection(n).await);
        a.require_2xx(&format!("deleting collection {n}"))
            .map_err(|e| crate::text::chain(&e))?;
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
    let busy = fill(ctx, BUSY, &busy_w, BUSY_SEEDED).await?;
    // Busy records: the first BUSY_SEEDED, then batch b of the writer is records BUSY_SEEDED + b·BATCH ….
    let stop = AtomicBool::new(false);
    let acked_during = AtomicUsize::new(0);
    let acked_at = std::sync::Mutex::new(Vec::new());
    let api = ctx.api.clone();
    let url = faults::collections_url(&api, &busy, "add");
    let write = async {
        let mut acked = Vec::new();
        let mut refused = Vec::new();
        let mut b = 0;
        while !stop.load(Ordering::SeqCst) && b < WRITER_BATCHES {
            let range = BUSY_SEEDED + b * BATCH..BUSY_SEEDED + (b + 1) * BATCH;
            let a = api
                .call(Method::POST, &url, Some(busy_w.add_body(range.clone())))
                .await;
            if a.ex.ok() {
                acked.extend(range);
                acked_at
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(std::time::SystemTime::now());
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
    let log = match dumped.map_err(|e| {
        format!(
            "running the backup CronJob's job: {}",
            crate::text::chain(&e)
        )
    })? {
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
    let named = |c: &str| {
        log.lines()
            .any(|l| l.contains(&format!("collection {c} counted")))
    };
    let (named_busy, named_quiet) = (named(BUSY), named(QUIET));
    if named_quiet {
        return Err(format!(
            "seed {seed}: the dump's log names collection {QUIET} as changed, but nothing wrote to it:\n{}",
            crate::text::tail(&log, 12)
        ));
    }
    // A batch acknowledged while the tool read the busy collection (from its `connected` line
    // to its `dumped collection=<busy>` line) surely landed inside its two counts, so the tool
    // must name it. One still in flight at either edge may have landed inside too: the tool
    // naming the collection is then the proof (the writer's acknowledgements during the Job
    // say what changed it, and the quiet collection guards a warning with no cause); neither
    // is no proof at all.
    let acked_at = acked_at.into_inner().unwrap_or_else(|p| p.into_inner());
    let in_read = match read_window(&log, BUSY) {
        Some((from, to)) => acked_at.iter().filter(|t| **t >= from && **t <= to).count(),
        None => {
            return Err(format!(
                "seed {seed}: the dump's log has no `connected` and `dumped collection={BUSY}` lines to tell when it read {BUSY}:\n{}",
                crate::text::tail(&log, 12)
            ));
        }
    };
    match dump_proof(in_read, named_busy) {
        DumpProof::Proven => {}
        DumpProof::Unproven => {
            return Err(format!(
                "seed {seed}: {during} batches were acknowledged while the Job ran, none while the tool read {BUSY}, and the tool saw no change: nothing was proven about a dump under writes\n{}",
                crate::text::tail(&log, 12)
            ));
        }
        DumpProof::Missed => {
            return Err(format!(
                "seed {seed}: {in_read} batches were acknowledged while the dump read {BUSY}, but its log does not name it as changed while it was read:\n{}",
                crate::text::tail(&log, 12)
            ));
        }
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
        .map_err(|e| format!("running the restore Job: {}", crate::text::chain(&e)))?
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
        .map_err(|e| crate::text::chain(&e))?
        .get("ids")
        .and_then(serde_json::Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let acked: std::collections::HashMap<String, usize> = (0..BUSY_SEEDED)
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
    if held.len() < BUSY_SEEDED || !(0..BUSY_SEEDED).all(|i| held.binary_search(&i).is_ok()) {
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
        "seed {seed}: {SEEDED} records in {QUIET}, {BUSY_SEEDED} + a writer's {} acknowledged batches in {BUSY} ({during} of them while the CronJob's dump ran, {dump_s:.1} s; {in_read} while it read {BUSY}); the dump's log: \"{warning}\"; {deleted} collections deleted, restored by the restore Job: {QUIET} whole, {n} records of {BUSY} — every one acknowledged and identical, {} acknowledged later than the dump read them",
        acked_busy.len() / BATCH,
        BUSY_SEEDED + acked_busy.len() - n,
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
        .map_err(|e| {
            format!(
                "running the backup CronJob's job: {}",
                crate::text::chain(&e)
            )
        })? {
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
    // first one written, the second begun or not), with no grace (`Backend::kill_job`).
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
    if first.is_ok() {
        // On a cluster the Job's pod outlives the dropped run: it is killed here, now.
        ctx.backend
            .kill_job(ctx.deployed, restore)
            .await
            .map_err(|e| format!("killing the restore Job's pod: {}", crate::text::chain(&e)))?;
    }
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
    // Give a killed pod's last request, already sent, time to land; then look at what it left.
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
        .map_err(|e| format!("running the restore Job again: {}", crate::text::chain(&e)))?;
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
    super::faults::seed(std::env::var(super::faults::SEED_ENV).ok()).map_err(|e| Outcome::Fail {
        reason: crate::text::chain(&e),
        evidence: Vec::new(),
        log_tail: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // 1.0.21 in the all-releases run of 2026-12-05: two batches acknowledged during the Job,
    // neither inside the read window, and the tool warned the collection changed.
    #[rstest::rstest]
    #[case::the_tool_named_a_change_that_landed_at_the_windows_edge(0, true, DumpProof::Proven)]
    #[case::the_tool_named_a_change_inside_the_window(3, true, DumpProof::Proven)]
    #[case::a_batch_inside_the_window_the_tool_did_not_see(2, false, DumpProof::Missed)]
    #[case::no_batch_inside_and_no_warning_proves_nothing(0, false, DumpProof::Unproven)]
    fn a_dump_under_writes_is_proven_by_the_tools_own_warning(
        #[case] in_read: usize,
        #[case] named_busy: bool,
        #[case] expected: DumpProof,
    ) {
        assert_eq!(dump_proof(in_read, named_busy), expected);
    }

    #[test]
    fn the_read_window_runs_from_connected_to_the_collections_dumped_line() {
        let log = "2026-12-05T01:41:48.407302Z  INFO connected url=http://x:8000 version=1.0.0\n2026-12-05T01:41:48.808961Z  INFO dumped collection=busy records=900 bytes=1\n2026-12-05T01:41:49.143283Z  INFO dumped collection=busy-2 records=5 bytes=1\n";
        let (from, to) = read_window(log, "busy").expect("both lines");
        assert_eq!(to.duration_since(from).expect("ordered").as_millis(), 401);
        assert!(
            read_window(log, "quiet").is_none(),
            "no dumped line for quiet"
        );
    }
}
