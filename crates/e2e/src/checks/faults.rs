//! The `faults-*` checks: what the server acknowledged must survive the faults pods really
//! meet — a SIGKILL in the middle of a stream of writes, restarts at a size where each era
//! persists its index and not only its log (docs/chroma-eras.md#faults).
//!
//! The node's part (the kill, the kubelet's restart) is the backend's; everything judged
//! here is what the real server answers: every record it acknowledged read back identical,
//! and its `query` answers measured against the harness's own brute-force reference.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};

use super::{Ctx, era};
use crate::backend::{Backend, BackendError};
use crate::dataset;
use crate::vectors::{self, K, Vector, Workload};
use chroma_api::client::{self, Answer, Api, Exchange};

type Checked = Result<String, String>;

/// Records per `add` (well under every era's batch limit, docs/chroma-eras.md#backup-and-restore).
pub const BATCH: usize = 100;
/// Records the SIGKILL writer means to write.
pub const SIGKILL_RECORDS: usize = 3_000;
/// Records of the scale check: past 5,000 and past several multiples of every era's
/// `sync_threshold` (1,000), with a tail short of the next one, so that after a restart part
/// of the index comes from its persisted files and part from replaying the log.
pub const SCALE_RECORDS: usize = 6_050;
/// Query vectors per recall measurement.
const QUERIES: usize = 20;
/// How much less recall the same records may answer with after a restart than before it:
/// one query in twenty missing two of its ten neighbours (the replayed tail of the index is
/// rebuilt, which may order near-ties differently).
pub const RECALL_SPREAD: f64 = 0.01;
/// Records read per `get`.
const READ_CHUNK: usize = 500;

/// Replays a run's kill point and records: the seed its report names.
pub const SEED_ENV: &str = "E2E_FAULTS_SEED";

/// The seed of a run: `E2E_FAULTS_SEED` (its value given as `from_env`) to replay one, else
/// random (every report names it).
pub fn seed(from_env: Option<String>) -> Result<u64, SeedError> {
    match from_env {
        Some(s) => s
            .trim()
            .parse()
            .map_err(|source| SeedError { value: s, source }),
        None => Ok(rand::random()),
    }
}

/// `E2E_FAULTS_SEED` set to something that is no seed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{SEED_ENV}={value:?} is not an unsigned 64-bit integer")]
pub struct SeedError {
    pub value: String,
    #[source]
    pub source: std::num::ParseIntError,
}

/// The faults checks' FAIL reason when the seed asked for is no seed.
impl From<SeedError> for String {
    fn from(e: SeedError) -> String {
        crate::text::chain(&e)
    }
}

/// Whether the faults checks have anything to prove for this deployment.
pub fn applies_sigkill(e: &render::Expected) -> Result<(), String> {
    if e.survives_container_restart {
        Ok(())
    } else {
        Err(format!(
            "isPersistent=false on Chroma {} (< 1.0.0): the server keeps its data in memory, so nothing it acknowledged is promised to outlive its container",
            e.version
        ))
    }
}

pub fn applies_scale(e: &render::Expected) -> Result<(), String> {
    if e.survives_restart {
        Ok(())
    } else {
        Err("the data is not on a PersistentVolumeClaim here (isPersistent=false, or the server persists outside the claim): nothing is promised to survive a pod restart".into())
    }
}

pub(super) fn collections_url(api: &Api, id: &str, op: &str) -> String {
    format!("{}/{id}/{op}", api.collections())
}

pub(super) async fn create<B: Backend>(ctx: &mut Ctx<'_, B>, name: &str) -> Result<String, String> {
    let a = ctx.rec(
        ctx.api
            .create_collection(name, json!({"purpose": name}))
            .await,
    );
    Ok(
        client::collection(&a, &format!("creating collection {name}"))
            .map_err(|e| crate::text::chain(&e))?
            .id,
    )
}

/// How one batch of a stream ended.
#[derive(Debug, Clone)]
pub(super) struct Refused {
    pub(super) batch: usize,
    /// When the request ended (a transport error or a non-2xx answer).
    pub(super) at: Instant,
    pub(super) what: String,
}

/// Writes `batches` in order until one is not acknowledged. `acked` counts them as they come.
pub(super) async fn stream(
    api: &Api,
    coll: &str,
    w: &Workload,
    total: usize,
    batches: std::ops::Range<usize>,
    acked: &AtomicUsize,
    ev: &mut Vec<Exchange>,
) -> (Vec<usize>, Option<Refused>) {
    let mut done = Vec::new();
    for b in batches {
        let range = b * BATCH..((b + 1) * BATCH).min(total);
        let a = api
            .call(
                Method::POST,
                &collections_url(api, coll, "add"),
                Some(w.add_body(range.clone())),
            )
            .await;
        let ok = a.ex.ok();
        let what = format!(
            "adding records {}..{} answered {}: {}",
            range.start,
            range.end,
            if a.status() == 0 {
                "no HTTP response".into()
            } else {
                a.status().to_string()
            },
            a.ex.response_body
        );
        ev.push(a.ex);
        if !ok {
            return (
                done,
                Some(Refused {
                    batch: b,
                    at: Instant::now(),
                    what,
                }),
            );
        }
        done.push(b);
        acked.fetch_add(1, Ordering::SeqCst);
    }
    (done, None)
}

pub(super) fn batches_of(n: usize) -> usize {
    n.div_ceil(BATCH)
}

pub(super) fn batch_range(b: usize, total: usize) -> std::ops::Range<usize> {
    b * BATCH..((b + 1) * BATCH).min(total)
}

/// Reads records `ids` back (in chunks), keyed by id.
pub(super) async fn read(
    api: &Api,
    coll: &str,
    ids: &[String],
    ev: &mut Vec<Exchange>,
) -> Result<std::collections::HashMap<String, dataset::Record>, String> {
    let mut out = std::collections::HashMap::new();
    for chunk in ids.chunks(READ_CHUNK) {
        let body =
            json!({"ids": chunk, "include": ["embeddings", "metadatas", "documents"]}).to_string();
        let a = api
            .call(Method::POST, &collections_url(api, coll, "get"), Some(body))
            .await;
        ev.push(a.ex.clone());
        for r in dataset::parse_records(&a, &format!("reading back {} records by id", chunk.len()))
            .map_err(|e| crate::text::chain(&e))?
        {
            out.insert(r.id.clone(), r);
        }
    }
    Ok(out)
}

pub(super) async fn count(api: &Api, coll: &str, ev: &mut Vec<Exchange>) -> Result<u64, String> {
    let a = api.count(coll).await;
    ev.push(a.ex.clone());
    client::count(&a, "counting records").map_err(|e| crate::text::chain(&e))
}

/// The server's `query` answers for `queries`, one id list per query.
async fn query(
    api: &Api,
    coll: &str,
    queries: &[Vec<f32>],
    ev: &mut Vec<Exchange>,
) -> Result<Vec<Vec<String>>, String> {
    let body = json!({"query_embeddings": queries.iter().map(|q| q.iter().map(|&x| f64::from(x)).collect::<Vec<_>>()).collect::<Vec<_>>(), "n_results": K, "include": ["distances"]}).to_string();
    let a = api
        .call(
            Method::POST,
            &collections_url(api, coll, "query"),
            Some(body),
        )
        .await;
    ev.push(a.ex.clone());
    parse_query(&a, queries.len())
}

fn parse_query(a: &Answer, n: usize) -> Result<Vec<Vec<String>>, String> {
    const WHAT: &str = "querying the nearest records";
    let v = a.json_2xx(WHAT).map_err(|e| crate::text::chain(&e))?;
    let ids = v
        .get("ids")
        .and_then(Value::as_array)
        .ok_or_else(|| a.bad(WHAT, "there is no `ids` list").to_string())?;
    if ids.len() != n {
        return Err(a
            .bad(
                WHAT,
                format!("`ids` has {} lists for {n} queries", ids.len()),
            )
            .to_string());
    }
    ids.iter()
        .map(|l| {
            l.as_array()
                .and_then(|l| {
                    l.iter()
                        .map(|i| i.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| {
                    a.bad(WHAT, format!("an answer is not a list of ids: {l}"))
                        .to_string()
                })
        })
        .collect()
}

/// Queries per request when every record is looked up by its own embedding.
const FIND_CHUNK: usize = 500;

/// Every record of `held` is in the vector index: its own embedding, queried, answers it as
/// the nearest record (a stored vector is at distance 0 from itself). The `get` by id reads
/// the metadata store; this reads the index, which is what a restart has to reload.
pub(super) async fn findable(
    api: &Api,
    coll: &str,
    held: &[Vector],
    ev: &mut Vec<Exchange>,
) -> Result<(), String> {
    let mut lost = Vec::new();
    for chunk in held.chunks(FIND_CHUNK) {
        let body = json!({"query_embeddings": chunk.iter().map(|r| r.embedding.iter().map(|&x| f64::from(x)).collect::<Vec<_>>()).collect::<Vec<_>>(), "n_results": 1, "include": ["distances"]}).to_string();
        let a = api
            .call(
                Method::POST,
                &collections_url(api, coll, "query"),
                Some(body),
            )
            .await;
        ev.push(a.ex.clone());
        let answers = parse_query(&a, chunk.len())?;
        lost.extend(
            chunk
                .iter()
                .zip(&answers)
                .filter(|(r, got)| got.first() != Some(&r.id))
                .map(|(r, _)| r.id.clone()),
        );
    }
    if lost.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} records are not found by their own embedding (the index lost them, or answers another record at distance 0): {}",
            lost.len(),
            held.len(),
            shorten_list(&lost)
        ))
    }
}

/// Mean recall@K of the server's answers against the exact reference over `held`.
async fn recall(
    api: &Api,
    coll: &str,
    w: &Workload,
    held: &[Vector],
    ev: &mut Vec<Exchange>,
) -> Result<f64, String> {
    let queries = w.queries(QUERIES);
    let answers = query(api, coll, &queries, ev).await?;
    let sum: f64 = queries
        .iter()
        .zip(&answers)
        .map(|(q, got)| vectors::recall(got, &vectors::nearest(held, q, K)))
        .sum();
    Ok(sum / queries.len() as f64)
}

/// A batch the server never acknowledged: `Ok(true)` when all of it is there, `Ok(false)`
/// when none is; partly there is an error.
async fn whole_or_absent(
    api: &Api,
    coll: &str,
    w: &Workload,
    b: usize,
    total: usize,
    why: &str,
    ev: &mut Vec<Exchange>,
) -> Result<bool, String> {
    let ids: Vec<String> = batch_range(b, total).map(|i| w.record(i).id).collect();
    let got = read(api, coll, &ids, ev).await?;
    match got.len() {
        0 => Ok(false),
        n if n == ids.len() => Ok(true),
        n => Err(format!(
            "batch {b}, {why}, is partly there: {n} of {} records (a batch must be whole or absent)",
            ids.len()
        )),
    }
}

/// Every record of `expected` read back identical, and `count` agrees. Returns the records read.
/// What a fault must leave: every record of `ids` read back identical (`when` names the
/// moment), each found by its own embedding (`held`), and query's mean recall over them;
/// errors say `after` what. Returns (records read back, recall).
#[allow(clippy::too_many_arguments)]
async fn survived(
    api: &Api,
    coll: &str,
    w: &Workload,
    ids: &[usize],
    held: &[Vector],
    when: &str,
    after: &str,
    evidence: &mut Vec<Exchange>,
) -> Result<(usize, f64), String> {
    let mut ev = Vec::new();
    let n = verify(api, coll, w, ids, when, &mut ev).await;
    let found = match &n {
        Ok(_) => findable(api, coll, held, &mut ev).await,
        Err(_) => Ok(()),
    };
    let r = match (&n, &found) {
        (Ok(_), Ok(())) => recall(api, coll, w, held, &mut ev).await,
        _ => Ok(0.0),
    };
    evidence.append(&mut ev);
    let n = n?;
    found.map_err(|e| format!("{after}, {e}"))?;
    let r = r.map_err(|e| format!("{after}: {e}"))?;
    Ok((n, r))
}

pub(super) async fn verify(
    api: &Api,
    coll: &str,
    w: &Workload,
    expected: &[usize],
    when: &str,
    ev: &mut Vec<Exchange>,
) -> Result<usize, String> {
    let ids: Vec<String> = expected.iter().map(|&i| w.record(i).id).collect();
    let got = read(api, coll, &ids, ev)
        .await
        .map_err(|e| format!("{when}: {e}"))?;
    let n = count(api, coll, ev)
        .await
        .map_err(|e| format!("{when}: {e}"))?;
    let written: Vec<Vector> = expected.iter().map(|&i| w.record(i)).collect();
    judge(&written, &got, n, when)
}

/// Holds what was read back (`got`, and the collection's `count`) against what was written.
fn judge(
    written: &[Vector],
    got: &std::collections::HashMap<String, dataset::Record>,
    count: u64,
    when: &str,
) -> Result<usize, String> {
    let owners = vectors::Owners::of(written);
    let mut problems = Vec::new();
    let mut missing = Vec::new();
    let mut swapped = 0;
    for want in written {
        match got.get(&want.id) {
            None => missing.push(want.id.clone()),
            Some(r) => {
                let mut d = vectors::differences(want, r);
                if let Some(other) = owners.other_than_own(r) {
                    d.retain(|l| !l.starts_with("embedding "));
                    d.insert(0, format!("its embedding is the one written for {other}"));
                    swapped += 1;
                }
                problems.extend(d.into_iter().map(|d| format!("{}: {d}", want.id)));
            }
        }
    }
    if !missing.is_empty() {
        problems.insert(
            0,
            format!(
                "{} acknowledged record(s) missing: {}",
                missing.len(),
                shorten_list(&missing)
            ),
        );
    }
    if count != written.len() as u64 {
        problems.push(format!(
            "the collection counts {count} records; {} were expected",
            written.len()
        ));
    }
    let shown = || {
        problems
            .iter()
            .take(12)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    };
    if problems.is_empty() {
        Ok(got.len())
    } else if swapped == problems.len() {
        // Every record there and whole but for embeddings that belong to other records: the
        // server answered ids and vectors out of pairing (docs/chroma-eras.md#a-dump-under-writes).
        Err(format!(
            "{when}: every acknowledged record is there, but {swapped} came back with the embedding of another record of the collection (ids and embeddings paired wrongly):\n{}",
            shown()
        ))
    } else {
        Err(format!(
            "{when}, the acknowledged records differ ({} problem(s)):\n{}",
            problems.len(),
            shown()
        ))
    }
}

fn shorten_list(ids: &[String]) -> String {
    if ids.len() <= 8 {
        ids.join(", ")
    } else {
        format!(
            "{}, … {}",
            ids[..4].join(", "),
            ids[ids.len() - 2..].join(", ")
        )
    }
}

pub(super) fn reconnect<B: Backend>(ctx: &mut Ctx<'_, B>) {
    ctx.api = crate::tls::api(
        &ctx.deployed.base_url,
        ctx.api.prefix,
        ctx.api.credential.clone(),
        ctx.deployed.tls.as_ref(),
    );
}

fn unsupported(e: BackendError) -> String {
    e.to_string()
}

/// `faults-sigkill`: a writer streams batches; the node SIGKILLs the server mid-stream at a
/// seeded point; after the kubelet's restart every acknowledged record reads back identical,
/// the batch in flight is whole or absent, writes are taken again, and `query` holds its recall.
pub async fn sigkill<B: Backend>(ctx: &mut Ctx<'_, B>, seed: u64) -> Checked {
    let w = Workload::new("sigkill", seed);
    let floor = era::recall_floor(&ctx.expected.version);
    let total = SIGKILL_RECORDS;
    let batches = batches_of(total);
    let mut rng = StdRng::seed_from_u64(seed);
    // Somewhere in the first half, so a good share of the stream comes after the restart.
    let kill_after = rng.random_range(3..=batches / 2);
    let delay = Duration::from_millis(rng.random_range(0..150));
    let coll = create(ctx, "e2e-faults-sigkill").await?;

    let acked = AtomicUsize::new(0);
    let writer_done = AtomicBool::new(false);
    let mut ev = Vec::new();
    let api = ctx.api.clone();
    let (backend, deployed) = (ctx.backend, &mut *ctx.deployed);
    let write = async {
        let r = stream(&api, &coll, &w, total, 0..batches, &acked, &mut ev).await;
        writer_done.store(true, Ordering::SeqCst);
        r
    };
    let kill = async {
        while acked.load(Ordering::SeqCst) < kill_after && !writer_done.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if writer_done.load(Ordering::SeqCst) && acked.load(Ordering::SeqCst) < kill_after {
            return None;
        }
        tokio::time::sleep(delay).await;
        let at = Instant::now();
        let acked_then = acked.load(Ordering::SeqCst);
        let r = backend.kill_container(deployed).await;
        Some((at, acked_then, at.elapsed(), r))
    };
    let ((before, refused), killed) = futures::join!(write, kill);
    ctx.evidence.append(&mut ev);
    let Some((killed_at, acked_at_kill, restart_took, result)) = killed else {
        let r = refused.map(|r| r.what).unwrap_or_default();
        return Err(format!(
            "seed {seed}: before any fault, the server refused a write: {r}"
        ));
    };
    let ended = result.map_err(|e| {
        format!(
            "seed {seed}: the node's SIGKILL and restart of the server's container: {}",
            unsupported(e)
        )
    })?;
    if let Some(r) = refused.as_ref().filter(|r| r.at < killed_at) {
        return Err(format!(
            "seed {seed}: before the kill, the server refused batch {}: {}",
            r.batch, r.what
        ));
    }
    reconnect(ctx);
    // The stream resumes after the batch in flight (a client that never learnt its fate does
    // not count on it); every later batch must be taken.
    let in_flight = refused.as_ref().map(|r| r.batch);
    let resume = in_flight.map_or(batches, |b| b + 1);
    let mut ev = Vec::new();
    let api = ctx.api.clone();
    let (after, refused_after) = stream(
        &api,
        &coll,
        &w,
        total,
        resume..batches,
        &AtomicUsize::new(0),
        &mut ev,
    )
    .await;
    ctx.evidence.append(&mut ev);
    if let Some(r) = refused_after {
        return Err(format!(
            "seed {seed}: after the SIGKILL and restart the server refused batch {}: {}",
            r.batch, r.what
        ));
    }
    let acked_batches: Vec<usize> = before.iter().chain(&after).copied().collect();
    let mut acked_records: Vec<usize> = acked_batches
        .iter()
        .flat_map(|&b| batch_range(b, total))
        .collect();

    // The batch in flight: whole or absent, never partly there.
    let mut flight_note = "no batch was in flight".to_string();
    if let Some(b) = in_flight {
        let mut ev = Vec::new();
        let whole =
            whole_or_absent(&api, &coll, &w, b, total, "in flight at the kill", &mut ev).await;
        ctx.evidence.append(&mut ev);
        if whole.map_err(|e| format!("seed {seed}: after the restart: {e}"))? {
            flight_note = format!("batch {b} (in flight at the kill) is there whole");
            acked_records.extend(batch_range(b, total));
        } else {
            flight_note = format!("batch {b} (in flight at the kill) is absent");
        }
    }
    acked_records.sort_unstable();
    let mut ev = Vec::new();
    let read_back = verify(
        &api,
        &coll,
        &w,
        &acked_records,
        &format!("seed {seed}: after the SIGKILL and restart"),
        &mut ev,
    )
    .await;
    ctx.evidence.append(&mut ev);
    let read_back = read_back?;
    let held: Vec<Vector> = acked_records.iter().map(|&i| w.record(i)).collect();
    let mut ev = Vec::new();
    let found = findable(&api, &coll, &held, &mut ev).await;
    let r = match &found {
        Ok(()) => recall(&api, &coll, &w, &held, &mut ev).await,
        Err(_) => Ok(0.0),
    };
    ctx.evidence.append(&mut ev);
    found.map_err(|e| format!("seed {seed}: after the SIGKILL and restart, {e}"))?;
    let r = r.map_err(|e| format!("seed {seed}: after the restart: {e}"))?;
    if r < floor {
        return Err(format!(
            "seed {seed}: after the SIGKILL and restart, query's mean recall@{K} over {QUERIES} queries is {r:.3}, below the floor {floor} measured on undisturbed servers"
        ));
    }
    Ok(format!(
        "seed {seed}: {total} records × {} dims in {batches} batches; SIGKILL after {acked_at_kill} acknowledged batches (+{} ms), container ended with {ended}, back in {:.1} s; {flight_note}; {} more batches acknowledged after the restart; {} acknowledged batches, {read_back} records read back identical (ids, f32 embeddings bit for bit, documents, metadata), count agrees; each found by its own embedding; query recall@{K} {r:.3} (floor {floor})",
        vectors::DIM,
        delay.as_millis(),
        restart_took.as_secs_f64(),
        after.len(),
        acked_batches.len(),
    ))
}

/// `faults-scale`: past every era's index sync threshold, the records survive a graceful pod
/// restart and then a SIGKILL of the server's container, each time identical and with the
/// same `query` recall as before any restart.
pub async fn scale<B: Backend>(ctx: &mut Ctx<'_, B>, seed: u64) -> Checked {
    let w = Workload::new("scale", seed);
    let floor = era::recall_floor(&ctx.expected.version);
    let total = SCALE_RECORDS;
    let batches = batches_of(total);
    let coll = create(ctx, "e2e-faults-scale").await?;
    let api = ctx.api.clone();
    let mut ev = Vec::new();
    let t = Instant::now();
    let (done, refused) = stream(
        &api,
        &coll,
        &w,
        total,
        0..batches,
        &AtomicUsize::new(0),
        &mut ev,
    )
    .await;
    ctx.evidence.append(&mut ev);
    if let Some(r) = refused {
        return Err(format!(
            "seed {seed}: writing {total} records, batch {} of {batches} was refused: {}",
            r.batch, r.what
        ));
    }
    let write_s = t.elapsed().as_secs_f64();
    let all: Vec<usize> = (0..total).collect();
    let held: Vec<Vector> = all.iter().map(|&i| w.record(i)).collect();
    let mut ev = Vec::new();
    let undisturbed = recall(&api, &coll, &w, &held, &mut ev).await;
    ctx.evidence.append(&mut ev);
    let undisturbed = undisturbed.map_err(|e| format!("seed {seed}: before any restart: {e}"))?;
    if undisturbed < floor {
        return Err(format!(
            "seed {seed}: before any restart, query's mean recall@{K} over {QUERIES} queries is {undisturbed:.3}, below the floor {floor}"
        ));
    }

    let mut steps = Vec::new();
    for step in [
        "a graceful pod restart",
        "a SIGKILL of the server's container and the kubelet's restart",
    ] {
        let t = Instant::now();
        let how = if step.starts_with("a graceful") {
            ctx.backend
                .restart(ctx.deployed)
                .await
                .map(|()| "terminated gracefully".to_string())
        } else {
            ctx.backend.kill_container(ctx.deployed).await
        };
        let how = how.map_err(|e| format!("seed {seed}: {step}: {}", crate::text::chain(&e)))?;
        let took = t.elapsed().as_secs_f64();
        reconnect(ctx);
        let api = ctx.api.clone();
        let after = format!("seed {seed}: after {step}");
        let (n, r) = survived(
            &api,
            &coll,
            &w,
            &all,
            &held,
            &after,
            &after,
            &mut ctx.evidence,
        )
        .await?;
        // The same records, the same index: a restart may not cost recall.
        if r < floor || r + RECALL_SPREAD < undisturbed {
            return Err(format!(
                "seed {seed}: after {step}, query's mean recall@{K} over {QUERIES} queries is {r:.3}; it was {undisturbed:.3} on the same records before any restart (at most {RECALL_SPREAD} less is tolerated; floor {floor})"
            ));
        }
        steps.push(format!("after {step} ({how}, ready in {took:.1} s): {n} records identical and each found by its own embedding, recall@{K} {r:.3}"));
    }
    Ok(format!(
        "seed {seed}: {total} records × {} dims written in {} acknowledged batches ({write_s:.1} s); recall@{K} {undisturbed:.3} before any restart (floor {floor}); {}",
        vectors::DIM,
        done.len(),
        steps.join("; ")
    ))
}

/// The server log's last line that reports an error (a panic, an exception).
pub(super) fn last_error(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .map(str::trim)
        .find(|l| l.contains("panicked") || l.contains("Exception") || l.contains("Error"))
        .map(str::to_string)
}

pub(super) fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// Most records the full-volume writer sends before it concludes the claim has no limit.
pub const FULL_MAX_RECORDS: usize = 40_000;

pub fn applies_full_volume(e: &render::Expected) -> Result<(), String> {
    match &e.data_volume {
        render::spec::DataVolume::ClaimTemplate { .. } if e.survives_restart => Ok(()),
        render::spec::DataVolume::ClaimTemplate { .. } => Err("the server persists outside the data claim here: filling the claim would not fill what the server writes".into()),
        _ => Err("the data is not on the chart's claim template (an emptyDir, or the user's own claim): the chart requests no size a node would enforce".into()),
    }
}

/// `faults-full-volume`: a writer fills the data claim; the server must refuse the write that
/// does not fit with an answer the client sees (not a dropped connection), and after a pod
/// restart every record it acknowledged reads back identical and is found in the index.
pub async fn full_volume<B: Backend>(ctx: &mut Ctx<'_, B>, seed: u64) -> Checked {
    let w = Workload::new("full", seed);
    let total = FULL_MAX_RECORDS;
    let batches = batches_of(total);
    let coll = create(ctx, "e2e-faults-full-volume").await?;
    let api = ctx.api.clone();
    let mut ev = Vec::new();
    let t = Instant::now();
    let (done, refused) = stream(
        &api,
        &coll,
        &w,
        total,
        0..batches,
        &AtomicUsize::new(0),
        &mut ev,
    )
    .await;
    let keep = ev.len().saturating_sub(4);
    ctx.evidence.extend(ev.split_off(keep));
    let fill_s = t.elapsed().as_secs_f64();
    // A server that never refuses may still not have stored what it acknowledged (0.4.24 was
    // seen answering 201 while its segments failed with "database or disk is full"): the
    // restart and the read-back below decide; only an intact read-back of everything means
    // the claim never filled.
    let answer = ctx
        .evidence
        .last()
        .map(|e| (e.status, e.response_body.clone()))
        .unwrap_or_default();
    let filled = match &refused {
        None => format!(
            "seed {seed}: all {total} records ({} MiB of f32 embeddings alone) acknowledged in {fill_s:.1} s without a refusal",
            (total * vectors::DIM * 4) >> 20
        ),
        Some(r) if answer.0 == 0 => {
            return Err(format!(
                "seed {seed}: when the claim filled after {} acknowledged records, the server gave no HTTP answer to the next write (it crashed or hung): {}",
                done.len() * BATCH,
                r.what
            ));
        }
        Some(r) => {
            let said: String = answer.1.chars().take(160).collect();
            format!(
                "seed {seed}: {} records acknowledged in {fill_s:.1} s, then the claim filled and batch {} was refused with HTTP {} ({said})",
                done.len() * BATCH,
                r.batch,
                answer.0
            )
        }
    };
    if let Err(e) = ctx.backend.restart(ctx.deployed).await {
        let log = ctx.backend.logs(ctx.deployed, 80).await;
        let said = last_error(&log)
            .map(|l| format!("; its last error: {l}"))
            .unwrap_or_default();
        return Err(format!(
            "{filled}; then the pod restarted and {}{said}",
            first_line(&e.to_string())
        ));
    }
    reconnect(ctx);
    let api = ctx.api.clone();
    let mut acked: Vec<usize> = done.iter().flat_map(|&b| batch_range(b, total)).collect();
    let mut whole = false;
    if let Some(r) = &refused {
        let mut ev = Vec::new();
        let w_or_a = whole_or_absent(
            &api,
            &coll,
            &w,
            r.batch,
            total,
            "refused when the claim filled",
            &mut ev,
        )
        .await;
        ctx.evidence.append(&mut ev);
        whole = w_or_a.map_err(|e| format!("{filled}; after a pod restart {e}"))?;
        if whole {
            acked.extend(batch_range(r.batch, total));
        }
    }
    let mut ev = Vec::new();
    let n = verify(
        &api,
        &coll,
        &w,
        &acked,
        &format!("{filled}; after a pod restart"),
        &mut ev,
    )
    .await;
    let held: Vec<Vector> = acked.iter().map(|&i| w.record(i)).collect();
    let found = match &n {
        Ok(_) => findable(&api, &coll, &held, &mut ev).await,
        Err(_) => Ok(()),
    };
    ctx.evidence.append(&mut ev);
    let n = n?;
    found.map_err(|e| format!("{filled}; after a pod restart {e}"))?;
    let Some(refused) = refused else {
        return Err(format!(
            "{filled}, and all of them read back after a pod restart: the claim never filled, so its size is not enforced"
        ));
    };
    let said: String = answer.1.chars().take(160).collect();
    Ok(format!(
        "seed {seed}: {} batches ({} records × {} dims) acknowledged in {fill_s:.1} s until the claim filled; batch {} refused with HTTP {}: {said}; it is {} after a pod restart; {n} records read back identical and each found by its own embedding, count agrees",
        done.len(),
        done.len() * BATCH,
        vectors::DIM,
        refused.batch,
        answer.0,
        if whole { "there whole" } else { "absent" },
    ))
}

/// Records written (and acknowledged) before the memory spike: small enough to fit any limit
/// the server starts in.
pub const MEMORY_RECORDS: usize = 2_000;
/// Records per `add` of the spike (about 20 MB of JSON: under every era's batch limit,
/// docs/chroma-eras.md, and the 1.x default 40 MiB payload limit).
pub const SPIKE_BATCH: usize = 4_000;
/// Concurrent `add`s per round of the spike, doubling each round until the container ends.
const SPIKE_ROUNDS: [usize; 4] = [2, 4, 8, 16];
/// How long the node is given to notice the container has ended after a round.
const END_WAIT: Duration = Duration::from_secs(20);

pub fn applies_memory(e: &render::Expected) -> Result<(), String> {
    if e.memory_limit.is_none() {
        return Err(
            "resources.limits.memory is not set: the container has no memory limit to exceed"
                .into(),
        );
    }
    applies_sigkill(e)
}

/// `faults-memory`: records acknowledged within the container's memory limit, then writes the
/// server needs more than the limit for (concurrent large `add`s, as an ingest job sends):
/// the node OOM-kills the container, Kubernetes reports `OOMKilled`, the kubelet restarts it
/// in the same pod, and everything the server acknowledged reads back identical; an `add`
/// that never got an answer is whole or absent.
pub async fn memory<B: Backend>(ctx: &mut Ctx<'_, B>, seed: u64) -> Checked {
    let limit = ctx
        .expected
        .memory_limit
        .ok_or("resources.limits.memory is not set")?;
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    let w = Workload::new("memory", seed);
    let floor = era::recall_floor(&ctx.expected.version);
    let coll = create(ctx, "e2e-faults-memory").await?;
    let api = ctx.api.clone();
    let mut ev = Vec::new();
    let (small, refused) = stream(
        &api,
        &coll,
        &w,
        MEMORY_RECORDS,
        0..batches_of(MEMORY_RECORDS),
        &AtomicUsize::new(0),
        &mut ev,
    )
    .await;
    ctx.evidence.append(&mut ev);
    if let Some(r) = refused {
        let log = ctx.backend.logs(ctx.deployed, 40).await;
        let said = last_error(&log)
            .map(|l| format!("; its last error: {l}"))
            .unwrap_or_default();
        return Err(format!(
            "seed {seed}: writing the first {MEMORY_RECORDS} records under the {:.0} MiB limit, batch {} was refused: {}{said}",
            mib(limit),
            r.batch,
            r.what
        ));
    }
    let mut acked: Vec<usize> = small
        .iter()
        .flat_map(|&b| batch_range(b, MEMORY_RECORDS))
        .collect();
    // The spike: record i of spike request j is MEMORY_RECORDS + j * SPIKE_BATCH + i.
    let spike = |j: usize| MEMORY_RECORDS + j * SPIKE_BATCH..MEMORY_RECORDS + (j + 1) * SPIKE_BATCH;
    let mut unanswered = Vec::new();
    let mut sent = 0usize;
    let mut ended = None;
    let t = Instant::now();
    for (round, n) in SPIKE_ROUNDS.iter().enumerate() {
        let first = sent;
        let url = collections_url(&api, &coll, "add");
        let answers = futures::future::join_all((first..first + n).map(|j| {
            let (api, url, body) = (api.clone(), url.clone(), w.add_body(spike(j)));
            async move { (j, api.call(Method::POST, &url, Some(body)).await) }
        }))
        .await;
        sent += n;
        for (j, a) in answers {
            if a.ex.ok() {
                acked.extend(spike(j));
            } else {
                unanswered.push((j, a.status()));
            }
            if a.status() != 0 && !a.ex.ok() {
                ctx.evidence.push(a.ex);
            }
        }
        match ctx
            .backend
            .await_container_end(ctx.deployed, END_WAIT)
            .await
        {
            Ok(Some(term)) => {
                ended = Some((round + 1, term));
                break;
            }
            Ok(None) => {}
            Err(e) => {
                let log = ctx.backend.logs(ctx.deployed, 60).await;
                let said = last_error(&log)
                    .map(|l| format!("; its last error: {l}"))
                    .unwrap_or_default();
                return Err(format!(
                    "seed {seed}: after {sent} concurrent adds of {SPIKE_BATCH} records the container ended, and it did not come back: {}{said}",
                    first_line(&e.to_string())
                ));
            }
        }
    }
    let spike_s = t.elapsed().as_secs_f64();
    let Some((rounds, term)) = ended else {
        return Err(format!(
            "seed {seed}: the server took {sent} adds of {SPIKE_BATCH} records ({} of them at once, {} answered) under a memory limit of {:.0} MiB and its container never ended: the limit the values set is not enforced (the chart did not render it on the `chromadb` container, or the node does not enforce resources.limits.memory)",
            SPIKE_ROUNDS[SPIKE_ROUNDS.len() - 1],
            sent - unanswered.len(),
            mib(limit)
        ));
    };
    if term.reason != "OOMKilled" {
        return Err(format!(
            "seed {seed}: under the spike the container ended with {term}, not OOMKilled"
        ));
    }
    reconnect(ctx);
    let api = ctx.api.clone();
    let mut ev = Vec::new();
    let mut notes = Vec::new();
    for &(j, status) in &unanswered {
        let ids: Vec<String> = spike(j).map(|i| w.record(i).id).collect();
        let got = read(&api, &coll, &ids, &mut ev)
            .await
            .map_err(|e| format!("seed {seed}: after the OOM kill and restart: {e}"));
        let got = match got {
            Ok(g) => g.len(),
            Err(e) => {
                ctx.evidence.append(&mut ev);
                return Err(e);
            }
        };
        match got {
            0 => notes.push(format!(
                "add {j} ({}) absent",
                if status == 0 {
                    "no answer".to_string()
                } else {
                    format!("HTTP {status}")
                }
            )),
            n if n == ids.len() => {
                notes.push(format!(
                    "add {j} ({}) there whole",
                    if status == 0 {
                        "no answer".to_string()
                    } else {
                        format!("HTTP {status}")
                    }
                ));
                acked.extend(spike(j));
            }
            n => {
                ctx.evidence.append(&mut ev);
                return Err(format!(
                    "seed {seed}: after the OOM kill and restart, add {j} (records {:?}, unanswered) is partly there: {n} of {} records (a batch must be whole or absent)",
                    spike(j),
                    ids.len()
                ));
            }
        }
    }
    ctx.evidence.append(&mut ev);
    acked.sort_unstable();
    let held: Vec<Vector> = acked.iter().map(|&i| w.record(i)).collect();
    let when = format!("seed {seed}: after the OOM kill ({term}) and restart");
    let (n, r) = survived(
        &api,
        &coll,
        &w,
        &acked,
        &held,
        &when,
        &format!("seed {seed}: after the OOM kill and restart"),
        &mut ctx.evidence,
    )
    .await?;
    if r < floor {
        return Err(format!(
            "seed {seed}: after the OOM kill and restart, query's mean recall@{K} over {QUERIES} queries is {r:.3}, below the floor {floor}"
        ));
    }
    Ok(format!(
        "seed {seed}: {MEMORY_RECORDS} records × {} dims acknowledged in {} batches under a {:.0} MiB limit; then {sent} concurrent adds of {SPIKE_BATCH} records in {rounds} round(s) ({spike_s:.1} s): the container ended {term}, and the kubelet restarted it in the same pod; {} of the large adds acknowledged, {}; {n} acknowledged records read back identical and each found by its own embedding, count agrees; recall@{K} {r:.3} (floor {floor})",
        vectors::DIM,
        small.len(),
        mib(limit),
        sent - unanswered.len(),
        if notes.is_empty() {
            "none unanswered".to_string()
        } else {
            notes.join(", ")
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chroma_api::client::fake::answer;

    fn as_read(v: &Vector) -> dataset::Record {
        dataset::Record {
            id: v.id.clone(),
            embedding: v.embedding.iter().map(|&x| f64::from(x)).collect(),
            metadata: Some(v.metadata.clone()),
            document: Some(v.document.clone()),
        }
    }

    /// Reads back `written` after `change`, counts as the server would, and judges it.
    fn judged(change: fn(&mut Vec<dataset::Record>)) -> Result<usize, String> {
        let w = Workload::new("busy", 5);
        let written: Vec<Vector> = (0..6).map(|i| w.record(i)).collect();
        let mut read: Vec<dataset::Record> = written.iter().map(as_read).collect();
        change(&mut read);
        let n = read.len() as u64;
        let got = read.into_iter().map(|r| (r.id.clone(), r)).collect();
        judge(&written, &got, n, "after the restore")
    }

    #[rstest::rstest]
    #[case::all_read_back_as_written_passes(|_: &mut Vec<dataset::Record>| {}, "")]
    #[case::two_embeddings_swapped_name_the_pairing(
        |r: &mut Vec<dataset::Record>| { let e = r[1].embedding.clone(); r[1].embedding = r[4].embedding.clone(); r[4].embedding = e; },
        "every acknowledged record is there, but 2 came back with the embedding of another record"
    )]
    #[case::a_swap_beside_a_lost_record_is_not_only_a_pairing(
        |r: &mut Vec<dataset::Record>| { r[1].embedding = r[4].embedding.clone(); r.pop(); },
        "the acknowledged records differ (3 problem(s))"
    )]
    #[case::a_swap_beside_a_changed_document_is_not_only_a_pairing(
        |r: &mut Vec<dataset::Record>| { r[1].embedding = r[4].embedding.clone(); r[2].document = Some("x".into()); },
        "the acknowledged records differ (2 problem(s))"
    )]
    #[case::a_changed_embedding_is_no_pairing(
        |r: &mut Vec<dataset::Record>| r[3].embedding[0] += 1.0,
        "busy-000003: embedding component 0"
    )]
    fn a_read_back_is_judged_by_what_went_wrong(
        #[case] change: fn(&mut Vec<dataset::Record>),
        #[case] says: &str,
    ) {
        match judged(change) {
            Ok(n) => assert!(
                says.is_empty() && n == 6,
                "passed with {n} where {says:?} was due"
            ),
            Err(e) => assert!(!says.is_empty() && e.contains(says), "{e}"),
        }
    }

    #[test]
    fn a_pairing_line_names_both_records() {
        let e = judged(|r| r[1].embedding = r[4].embedding.clone()).unwrap_err();
        assert!(
            e.contains("busy-000001: its embedding is the one written for busy-000004")
                && !e.contains("embedding component"),
            "{e}"
        );
    }

    #[test]
    fn a_query_answer_is_one_id_list_per_query() {
        let a = answer(
            "POST",
            "q",
            200,
            r#"{"ids":[["a","b"],["c"]],"distances":[[0.1,0.2],[0.3]]}"#,
        );
        assert_eq!(
            parse_query(&a, 2).unwrap(),
            vec![vec!["a".to_string(), "b".into()], vec!["c".to_string()]]
        );
    }

    #[rstest::rstest]
    #[case::fewer_lists_than_queries(r#"{"ids":[["a"]]}"#, "1 lists for 2 queries")]
    #[case::no_ids(r#"{"distances":[]}"#, "no `ids` list")]
    #[case::ids_that_are_not_strings(r#"{"ids":[[1],[2]]}"#, "not a list of ids")]
    fn a_query_answer_that_is_not_one_is_named(#[case] body: &str, #[case] want: &str) {
        let e = parse_query(&answer("POST", "q", 200, body), 2).unwrap_err();
        assert!(
            e.contains(want) && e.contains("querying the nearest records"),
            "{e}"
        );
    }

    #[test]
    fn the_batches_cover_every_record_once() {
        let covered: Vec<usize> = (0..batches_of(SCALE_RECORDS))
            .flat_map(|b| batch_range(b, SCALE_RECORDS))
            .collect();
        assert_eq!(covered, (0..SCALE_RECORDS).collect::<Vec<_>>());
        assert_eq!(
            batch_range(batches_of(SCALE_RECORDS) - 1, SCALE_RECORDS).len(),
            50
        );
    }

    fn expected(values: &str, v: &str) -> render::Expected {
        render::Expected::from_values(&serde_yaml::from_str(values).unwrap(), &v.parse().unwrap())
            .unwrap()
    }

    #[rstest::rstest]
    #[case::the_charts_claim_applies("chromadb: {data: {volumeSize: 16Mi}}", None)]
    #[case::an_emptydir_has_no_size_the_chart_asks_for(
        "chromadb: {isPersistent: false}",
        Some("not on the chart's claim template")
    )]
    #[case::the_users_claim_is_not_the_charts(
        "chromadb: {data: {existingClaim: mine}}",
        Some("the user's own claim")
    )]
    fn full_volume_applies_to_the_charts_own_claim(
        #[case] values: &str,
        #[case] skip: Option<&str>,
    ) {
        match (applies_full_volume(&expected(values, "1.5.0")), skip) {
            (Ok(()), None) => {}
            (Err(e), Some(want)) => assert!(e.contains(want), "{e}"),
            (got, want) => panic!("{got:?} but expected {want:?}"),
        }
    }

    #[rstest::rstest]
    #[case::in_memory_0_x_is_skipped("chromadb: {isPersistent: false}", "0.6.3", false, false)]
    #[case::rust_keeps_an_emptydir_across_a_container_restart(
        "chromadb: {isPersistent: false}",
        "1.5.0",
        true,
        false
    )]
    #[case::the_default_claim_applies_everywhere("{}", "0.4.24", true, true)]
    fn sigkill_and_scale_apply_from_the_spec(
        #[case] values: &str,
        #[case] v: &str,
        #[case] sigkill: bool,
        #[case] scale: bool,
    ) {
        let e = expected(values, v);
        assert_eq!(
            (applies_sigkill(&e).is_ok(), applies_scale(&e).is_ok()),
            (sigkill, scale)
        );
    }

    #[test]
    fn the_last_error_of_a_log_is_its_last_exception() {
        let log = "Saving data to: /data\nthread panicked at lib.rs:89\npyo3_runtime.PanicException: Error creating Frontend Config: disk full\n\n";
        assert_eq!(
            last_error(log).unwrap(),
            "pyo3_runtime.PanicException: Error creating Frontend Config: disk full"
        );
        assert_eq!(last_error("all good\n"), None);
    }

    #[test]
    fn a_seed_is_replayed_and_a_bad_one_is_named() {
        assert_eq!(seed(Some(" 42 ".into())).unwrap(), 42);
        let e = seed(Some("x12".into())).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{SEED_ENV}=\"x12\" is not an unsigned 64-bit integer")
        );
        // The parse error stays the source, and the FAIL reason written from the chain quotes it.
        assert!(
            std::error::Error::source(&e).is_some_and(|s| s.is::<std::num::ParseIntError>()),
            "{e:?}"
        );
        assert_eq!(
            String::from(e),
            format!(
                "{SEED_ENV}=\"x12\" is not an unsigned 64-bit integer: invalid digit found in string"
            )
        );
    }
}
