//! Live round trips across eras: the dataset is written on A through the harness's dataset
//! module, dumped by the tool into a directory, restored into a fresh B, verified by the tool
//! and read back independently by the harness (record by record). Index settings are checked
//! in B's own era's spelling. Part of `cargo xtask test` (it exports UV).

mod common;

use common::{LiveServer, assert_intact, stdout, text, tool, write};
use e2e::dataset::Dataset;
use reqwest::Method;
use rstest::rstest;
use serde_json::{Value, json};

const SETTINGS: &str = "backup-settings";

/// A collection with non-default index settings, spelled the way A's era spells them.
async fn write_settings_collection(a: &LiveServer) {
    let api = a.api();
    let body = if a.version.is_rust_server() {
        json!({"name": SETTINGS, "metadata": {"kind": "settings"}, "configuration": {"hnsw": {"space": "ip", "ef_construction": 128}}})
    } else {
        json!({"name": SETTINGS, "metadata": {"kind": "settings", "hnsw:space": "ip", "hnsw:construction_ef": 128}})
    };
    let created = api
        .call(Method::POST, &api.collections(), Some(body.to_string()))
        .await;
    let id = chroma_api::client::collection(&created, "creating the settings collection")
        .unwrap()
        .id;
    let add = json!({"ids": ["s1", "s2"], "embeddings": [[0.5, 0.25], [-1.0, 2.0]], "documents": ["one", "two"], "metadatas": [{"n": 1}, {"n": 2.5}]});
    api.add(&id, add.to_string())
        .await
        .require_2xx("adding to the settings collection")
        .unwrap();
}

/// (space, ef_construction) as B's era holds them.
async fn settings_on(b: &LiveServer) -> (Value, Value) {
    let got = b
        .api()
        .get_collection(SETTINGS)
        .await
        .json_2xx("getting the settings collection")
        .unwrap();
    if b.version.is_rust_server() {
        let h = &got["configuration_json"]["hnsw"];
        (h["space"].clone(), h["ef_construction"].clone())
    } else {
        (
            got["metadata"]["hnsw:space"].clone(),
            got["metadata"]["hnsw:construction_ef"].clone(),
        )
    }
}

async fn round_trip(from: &str, to: &str) -> (LiveServer, tempfile::TempDir, Dataset) {
    let a = LiveServer::start(from);
    let ds = Dataset::upgrade();
    write(&a, &ds).await;
    write_settings_collection(&a).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = format!("{}/", dir.path().display());
    let out = tool(&a.url, &["dump", "--to", &dest], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let archive = stdout(&out);
    let name = archive.rsplit('/').next().unwrap();
    assert!(
        name.starts_with("chroma-backup-")
            && name.ends_with(".tar")
            && std::path::Path::new(&archive).is_file(),
        "dump printed {archive}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "only the finished archive is left in the directory: {leftovers:?}"
    );
    drop(a);

    let b = LiveServer::start(to);
    let out = tool(&b.url, &["restore", "--from", &dest], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let out = tool(&b.url, &["verify", "--from", &dest], &[]);
    assert!(
        out.status.success(),
        "verify of a fresh restore must be clean:\n{}",
        text(&out)
    );
    assert_eq!(stdout(&out), "", "no differences listed");
    assert_intact(&b, &ds).await;
    assert_eq!(
        settings_on(&b).await,
        (json!("ip"), json!(128)),
        "index settings mapped into {to}'s spelling"
    );
    (b, dir, ds)
}

#[rstest]
#[case::v1_python_0_4_3_to_rust_1_5_0("0.4.3", "1.5.0")]
#[case::python_0_6_3_to_rust_1_5_0("0.6.3", "1.5.0")]
#[case::rust_1_5_0_downgraded_to_python_0_6_3("1.5.0", "0.6.3")]
#[case::rust_1_5_0_to_v1_python_0_4_3("1.5.0", "0.4.3")]
#[tokio::test]
async fn dump_restore_verify_keeps_every_record_and_setting(#[case] from: &str, #[case] to: &str) {
    round_trip(from, to).await;
}

#[tokio::test]
async fn verify_names_changed_and_missing_records_and_extra_collections() {
    let (b, dir, _) = round_trip("0.6.3", "0.6.3").await;
    let api = b.api();
    let small = chroma_api::client::collection(&api.get_collection("upgrade-small").await, "get")
        .unwrap()
        .id;
    let upd = json!({"ids": ["upgrade-small-003"], "metadatas": [{"index": -1}]});
    api.call(
        Method::POST,
        &format!("{}/{small}/update", api.collections()),
        Some(upd.to_string()),
    )
    .await
    .require_2xx("update")
    .unwrap();
    let del = json!({"ids": ["upgrade-small-007"]});
    api.call(
        Method::POST,
        &format!("{}/{small}/delete", api.collections()),
        Some(del.to_string()),
    )
    .await
    .require_2xx("delete")
    .unwrap();
    api.create_collection("not-in-archive", json!({"k": 1}))
        .await
        .require_2xx("create")
        .unwrap();

    let out = tool(
        &b.url,
        &["verify", "--from", &format!("{}/", dir.path().display())],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        [
            "collection upgrade-small: record upgrade-small-003: metadata differs (archive {\"bucket\":\"b0\",\"collection\":\"upgrade-small\",\"index\":3,\"weight\":-0.25}, server {\"bucket\":\"b0\",\"collection\":\"upgrade-small\",\"index\":-1,\"weight\":-0.25})",
            "collection upgrade-small: record upgrade-small-007 missing on the server",
            "collection not-in-archive: on the server but not in the archive",
        ],
        "{}",
        text(&out)
    );
}
