//! Paging against live servers of each era: a dump read in small pages with several requests
//! in flight holds every record exactly once, in the server's order, also while another
//! client deletes, updates and adds records in the same collection. Part of `cargo xtask
//! test` (it exports UV); by hand: `UV=$(cargo xtask tools --print uv) cargo test -p backup --test paging`.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use backup::archive::Archive;
use chroma_api::client::Api;
use common::{LiveServer, stderr, text, tool};
use reqwest::Method;
use rstest::rstest;
use serde_json::json;

const RECORDS: usize = 3000;

fn id(i: usize) -> String {
    format!("rec-{i:06}")
}

async fn add(api: &Api, cid: &str, range: std::ops::Range<usize>) {
    let ids: Vec<String> = range.clone().map(id).collect();
    let embeddings: Vec<Vec<f32>> = range
        .clone()
        .map(|i| vec![i as f32, 1.0, -0.5, 0.25])
        .collect();
    let metadatas: Vec<_> = range.map(|i| json!({"i": i})).collect();
    let body = json!({"ids": ids, "embeddings": embeddings, "metadatas": metadatas});
    api.add(cid, body.to_string())
        .await
        .require_2xx("adding records")
        .unwrap();
}

async fn post(api: &Api, cid: &str, verb: &str, body: serde_json::Value) {
    api.call(
        Method::POST,
        &format!("{}/{cid}/{verb}", api.collections()),
        Some(body.to_string()),
    )
    .await
    .require_2xx(verb)
    .unwrap();
}

/// Every id on the server, in the server's own order (one unpaged get).
async fn server_order(api: &Api, cid: &str) -> Vec<String> {
    let v = api
        .call(
            Method::POST,
            &format!("{}/{cid}/get", api.collections()),
            Some(json!({"include": []}).to_string()),
        )
        .await
        .json_2xx("getting every id")
        .unwrap();
    v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect()
}

fn archived_ids(path: &str) -> Vec<String> {
    let a = Archive::open(std::path::Path::new(path)).unwrap();
    a.validate().unwrap();
    assert_eq!(a.manifest.collections.len(), 1, "one collection dumped");
    let c = &a.manifest.collections[0];
    let mut out = Vec::new();
    for b in a.batches(c).unwrap() {
        out.extend(b.unwrap().into_iter().map(|r| r.id));
    }
    assert_eq!(
        out.len() as u64,
        c.records,
        "the manifest counts what the member holds"
    );
    out
}

/// Starts `version`, makes collection `paging` with RECORDS records, returns its id.
async fn seeded(version: &str) -> (LiveServer, String) {
    let s = LiveServer::start(version);
    let api = s.api();
    let cid = chroma_api::client::collection(
        &api.create_collection("paging", json!({"k": "v"})).await,
        "creating the collection",
    )
    .unwrap()
    .id;
    for start in (0..RECORDS).step_by(500) {
        add(&api, &cid, start..start + 500).await;
    }
    (s, cid)
}

fn dump(
    s: &LiveServer,
    page: usize,
    inflight: usize,
    dir: &tempfile::TempDir,
) -> std::process::Output {
    let to = dir.path().join("a.tar").display().to_string();
    tool(
        &s.url,
        &[
            "dump",
            "--to",
            &to,
            "--page-size",
            &page.to_string(),
            "--inflight",
            &inflight.to_string(),
        ],
        &[],
    )
}

#[rstest]
#[case::v1_python_0_4_24("0.4.24")]
#[case::python_0_6_3("0.6.3")]
#[case::rust_1_5_0("1.5.0")]
#[tokio::test]
async fn a_quiet_collection_is_dumped_whole_once_in_the_servers_order(#[case] version: &str) {
    let (s, cid) = seeded(version).await;
    let want = server_order(&s.api(), &cid).await;
    assert_eq!(want.len(), RECORDS);
    // Pages that do not divide the count, several in flight: the seams are where a record
    // would be lost or doubled.
    for (page, inflight) in [(37, 4), (1000, 2), (RECORDS, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let out = dump(&s, page, inflight, &dir);
        assert!(out.status.success(), "{}", text(&out));
        let got = archived_ids(&dir.path().join("a.tar").display().to_string());
        assert_eq!(
            got, want,
            "page {page}, {inflight} in flight on {version}: the archive must hold the server's records in its order, each once"
        );
    }
}

#[rstest]
#[case::v1_python_0_4_24("0.4.24")]
#[case::python_0_6_3("0.6.3")]
#[case::rust_1_5_0("1.5.0")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_nobody_touched_survive_a_dump_while_another_client_writes(#[case] version: &str) {
    let (s, cid) = seeded(version).await;
    let before = server_order(&s.api(), &cid).await;
    let api = s.api();
    let done = Arc::new(AtomicBool::new(false));
    let deleted_during = Arc::new(AtomicUsize::new(0));
    // The writer works from the front of the collection, behind the reader: every delete there
    // moves every later record one place down. It also updates records (they must keep their
    // place) and adds new ones (they go to the end).
    let writer = {
        let (api, cid, done, deleted_during) = (
            api.clone(),
            cid.clone(),
            done.clone(),
            deleted_during.clone(),
        );
        tokio::spawn(async move {
            let mut deleted = Vec::new();
            let mut updated = Vec::new();
            let mut added = Vec::new();
            let mut round = 0usize;
            while !done.load(Ordering::SeqCst) && round < RECORDS / 4 {
                let gone = id(round * 2);
                post(&api, &cid, "delete", json!({"ids": [gone]})).await;
                deleted.push(gone);
                deleted_during.fetch_add(1, Ordering::SeqCst);
                let changed = id(round * 2 + 1);
                post(
                    &api,
                    &cid,
                    "update",
                    json!({"ids": [changed], "metadatas": [{"i": -1, "round": round}]}),
                )
                .await;
                updated.push(changed);
                let new = RECORDS + round;
                add(&api, &cid, new..new + 1).await;
                added.push(id(new));
                round += 1;
            }
            (deleted, updated, added)
        })
    };
    // Let the writer get going, then dump slowly: small pages, a few in flight.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = deleted_during.load(Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let url = s.url.clone();
    let path = dir.path().join("a.tar").display().to_string();
    let out = tokio::task::spawn_blocking({
        let path = path.clone();
        move || {
            tool(
                &url,
                &[
                    "dump",
                    "--to",
                    &path,
                    "--page-size",
                    "25",
                    "--inflight",
                    "3",
                ],
                &[],
            )
        }
    })
    .await
    .unwrap();
    let ended = deleted_during.load(Ordering::SeqCst);
    done.store(true, Ordering::SeqCst);
    let (deleted, updated, added) = writer.await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        ended - started >= 5,
        "the writer must have deleted records while the dump ran (it deleted {} then); make the dump slower",
        ended - started
    );

    let after = server_order(&api, &cid).await;
    let deleted: HashSet<&String> = deleted.iter().collect();
    let added: HashSet<&String> = added.iter().collect();
    // The paging relies on the era's order: first-add order, updates keep their place.
    let kept: Vec<&String> = before.iter().filter(|i| !deleted.contains(i)).collect();
    let after_old: Vec<&String> = after.iter().filter(|i| !added.contains(i)).collect();
    assert_eq!(
        after_old,
        kept,
        "{version}: deletes and updates must leave the other records in their order ({} updated)",
        updated.len()
    );

    let got = archived_ids(&path);
    let mut seen = HashSet::new();
    for i in &got {
        assert!(seen.insert(i), "{i} is in the archive twice");
    }
    let lost: Vec<&&String> = kept.iter().filter(|i| !seen.contains(**i)).collect();
    assert!(
        lost.is_empty(),
        "{} record(s) nobody deleted are missing from the archive, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    for i in &got {
        assert!(
            before.contains(i) || added.contains(i),
            "{i} was never written"
        );
    }
    // Order: the archive follows the server's order (a deleted record keeps its old place).
    let pos: HashMap<&String, usize> = before
        .iter()
        .chain(after.iter().filter(|i| added.contains(i)))
        .enumerate()
        .map(|(p, i)| (i, p))
        .collect();
    let positions: Vec<usize> = got.iter().map(|i| pos[i]).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "{version}: the archive is not in the server's order"
    );
    // Last: the run really exercised what it guards.
    assert!(
        stderr(&out).contains("found its place again"),
        "the reader must have had to find its place again:\n{}",
        text(&out)
    );
}
