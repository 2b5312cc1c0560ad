//! Bad input (issue 12, item 5): every case is refused with a message naming the problem and
//! what would be accepted, with the documented exit code, and nothing is written on the target.
//! The archives are made with the library's writer, then damaged on disk.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use backup::archive::{self, CollectionEntry, CollectionWriter, Manifest, Source};
use backup::model::{Record, Settings};
use common::{LiveServer, collection_names, stderr, text, tool};
use rstest::rstest;
use serde_json::json;

fn good_archive(dir: &Path) -> PathBuf {
    let entry = CollectionEntry::new(
        "bad-input",
        json!({"k": "v"}).as_object().cloned(),
        Settings::default(),
        true,
    );
    let mut w = CollectionWriter::create(dir, 0, entry).unwrap();
    let records: Vec<Record> = (0..500)
        .map(|i| Record {
            id: format!("r{i:04}"),
            embedding: Some(vec![i as f32 / 8.0; 16]),
            document: Some(format!("document {i}")),
            metadata: json!({"i": i}).as_object().cloned(),
            uri: None,
        })
        .collect();
    w.push(&records).unwrap();
    let (entry, member) = w.finish().unwrap();
    let source = Source {
        url: "http://source:8000".into(),
        version: "1.0.0".into(),
        api: "/api/v2".into(),
        tenant: "default_tenant".into(),
        database: "default_database".into(),
    };
    let manifest = Manifest::new("test", "2026-11-28T00:00:00Z", source, "test", vec![entry]);
    let out = dir.join("good.tar");
    archive::assemble(&manifest, &[member], std::fs::File::create(&out).unwrap()).unwrap();
    out
}

/// The tar's members, in order.
fn members(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut t = tar::Archive::new(std::fs::File::open(path).unwrap());
    t.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut b = Vec::new();
            e.read_to_end(&mut b).unwrap();
            (e.path().unwrap().display().to_string(), b)
        })
        .collect()
}

fn write_tar(path: &Path, members: &[(String, Vec<u8>)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.into_inner().unwrap().flush().unwrap();
}

/// Damages a good archive the way `case` says; returns the damaged file.
fn damaged(dir: &Path, case: &str) -> PathBuf {
    let good = good_archive(dir);
    let bad = dir.join(format!("{case}.tar"));
    match case {
        "truncated" => {
            let bytes = std::fs::read(&good).unwrap();
            std::fs::write(&bad, &bytes[..bytes.len() * 2 / 3]).unwrap();
        }
        "corrupted" => {
            let mut bytes = std::fs::read(&good).unwrap();
            // A byte inside the Arrow member (after manifest and sums), not in a tar header.
            let at = bytes.len() - 4096;
            bytes[at] ^= 0x5a;
            std::fs::write(&bad, bytes).unwrap();
        }
        "foreign" => std::fs::write(&bad, "id,document\n1,hello\n".repeat(100)).unwrap(),
        "foreign_tar" => write_tar(&bad, &[("data.csv".into(), b"id\n1\n".to_vec())]),
        "future_format" => {
            let mut m = members(&good);
            let mut manifest: serde_json::Value = serde_json::from_slice(&m[0].1).unwrap();
            manifest["format_version"] = json!(99);
            m[0].1 = serde_json::to_vec(&manifest).unwrap();
            write_tar(&bad, &m);
        }
        other => panic!("no such damage {other}"),
    }
    bad
}

#[rstest]
#[case::truncated_archive("truncated", "archive is truncated")]
#[case::corrupted_member_fails_its_checksum(
    "corrupted",
    "archive is corrupted: collections/0000.arrow has sha256"
)]
#[case::foreign_file_is_not_an_archive(
    "foreign",
    "not a chromadb-backup archive: not a tar archive"
)]
#[case::foreign_tar_is_not_an_archive(
    "foreign_tar",
    "not a chromadb-backup archive: a tar whose first member is `data.csv`, not manifest.json"
)]
#[case::format_from_the_future(
    "future_format",
    "archive format version 99 is newer than this tool reads (it reads format versions 1 to 1)"
)]
#[tokio::test]
async fn a_bad_archive_is_refused_before_anything_is_written(
    #[case] case: &str,
    #[case] message: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let bad = damaged(dir.path(), case);
    let target = LiveServer::start("1.5.0");
    let out = tool(
        &target.url,
        &["restore", "--from", bad.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("chromadb-backup: {}: {message}", bad.display())),
        "{}",
        text(&out)
    );
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("chromadb-backup:"))
            .count(),
        1,
        "one error line: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        collection_names(&target).await,
        Vec::<String>::new(),
        "nothing written on the target"
    );
    // inspect says the same about the file.
    let out = tool(&target.url, &["inspect", bad.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains(message), "{}", text(&out));
}

#[tokio::test]
async fn a_target_with_collections_is_refused_unless_replace_or_merge() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_archive(dir.path());
    let target = LiveServer::start("1.5.0");
    let api = target.api();
    api.create_collection("already-here", json!({"keep": true}))
        .await
        .require_2xx("create")
        .unwrap();

    let out = tool(
        &target.url,
        &["restore", "--from", good.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains(&format!("refusing to restore into {}: it already has 1 collection(s) (already-here); pass --replace to delete them first or --merge", target.url)),
        "{}",
        text(&out)
    );
    assert_eq!(
        collection_names(&target).await,
        ["already-here"],
        "nothing written, nothing deleted"
    );

    let out = tool(
        &target.url,
        &["restore", "--merge", "--from", good.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let mut names = collection_names(&target).await;
    names.sort();
    assert_eq!(names, ["already-here", "bad-input"]);
    // Merging twice upserts: still the archive's records, verify is clean apart from the extra collection.
    let out = tool(
        &target.url,
        &["restore", "--merge", "--from", good.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = tool(
        &target.url,
        &["verify", "--from", good.to_str().unwrap()],
        &[],
    );
    assert_eq!(
        common::stdout(&out),
        "collection already-here: on the server but not in the archive",
        "{}",
        text(&out)
    );

    let out = tool(
        &target.url,
        &["restore", "--replace", "--from", good.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        collection_names(&target).await,
        ["bad-input"],
        "--replace deleted what was there"
    );
    let out = tool(
        &target.url,
        &["verify", "--from", good.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn an_unreachable_server_is_named_with_what_to_check() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_archive(dir.path());
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = tool(
        &url,
        &[
            "restore",
            "--from",
            good.to_str().unwrap(),
            "--wait-ready",
            "1",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains(&format!("cannot reach a Chroma server at {url}"))
            && stderr(&out).contains("--wait-ready"),
        "{}",
        text(&out)
    );
    let out = tool(
        &url,
        &["dump", "--to", dir.path().join("x/").to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        !dir.path()
            .join("x")
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(false),
        "no archive left behind"
    );
}

const TOKEN: &str = "s3cretT0ken";

#[tokio::test]
async fn an_unauthorised_restore_names_the_credentials_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_archive(dir.path());
    let target = LiveServer::start_with_env(
        "0.6.3",
        &[
            (
                "CHROMA_SERVER_AUTHN_PROVIDER",
                "chromadb.auth.token_authn.TokenAuthenticationServerProvider",
            ),
            ("CHROMA_SERVER_AUTHN_CREDENTIALS", TOKEN),
        ],
    );
    let out = tool(
        &target.url,
        &["restore", "--from", good.to_str().unwrap()],
        &[("CHROMA_BACKUP_TOKEN", "wrong")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains(&format!("{} refused the credentials (HTTP 403", target.url))
            && stderr(&out).contains("CHROMA_BACKUP_TOKEN"),
        "{}",
        text(&out)
    );
    assert!(
        !text(&out).contains("wrong") && !text(&out).contains(TOKEN),
        "no secret in the output: {}",
        text(&out)
    );

    let out = tool(
        &target.url,
        &["restore", "--from", good.to_str().unwrap()],
        &[("CHROMA_BACKUP_TOKEN", TOKEN)],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(TOKEN), "no secret in the output");
    let out = tool(
        &target.url,
        &[
            "verify",
            "--from",
            good.to_str().unwrap(),
            "--token-header",
            "authorization",
        ],
        &[("CHROMA_BACKUP_TOKEN", TOKEN)],
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn usage_errors_exit_2_naming_the_flag() {
    let out = tool(
        "http://127.0.0.1:9",
        &["restore", "--from", "/x.tar", "--replace", "--merge"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("--replace") && stderr(&out).contains("--merge"),
        "{}",
        text(&out)
    );
    let out = tool(
        "http://127.0.0.1:9",
        &["dump", "--to", "gs://bucket/x"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("location `gs://bucket/x` is not usable: the scheme `gs://` is not supported (accepted: a file path"), "{}", text(&out));
    let out = tool("chroma:8000", &["dump", "--to", "/tmp/"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("--url `chroma:8000` is not an http:// or https:// URL"),
        "{}",
        text(&out)
    );
}
