//! Live servers for the backup tool's tests: a Chroma release from the harness's venv cache,
//! started the way its image starts it, on a free local port, killed (and its data removed)
//! when dropped. Runs under `cargo xtask test`, which exports UV.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use chroma_api::client::Api;
use chroma_api::{ApiPrefix, ChromaVersion};
use e2e::dataset::{self, Dataset, ReadCollection, Scope};
use e2e::venv::VenvCache;
use render::VersionMatrix;

const HINT: &str =
    "`cargo xtask test` exports UV; by hand: export UV=$(cargo xtask tools --print uv)";

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub struct LiveServer {
    child: Child,
    pub url: String,
    pub version: ChromaVersion,
    _data: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("a free local port")
        .local_addr()
        .unwrap()
        .port()
}

impl LiveServer {
    pub fn start(version: &str) -> LiveServer {
        Self::start_with_env(version, &[])
    }

    /// `env` is added to the server's environment (e.g. auth settings of the 0.x era).
    pub fn start_with_env(version: &str, env: &[(&str, &str)]) -> LiveServer {
        let v: ChromaVersion = version.parse().unwrap();
        let matrix = VersionMatrix::load(root().join("fixtures/versions.yaml"))
            .expect("fixtures/versions.yaml");
        let pins = matrix.get(&v).map(|e| e.pins.clone()).unwrap_or_default();
        let venvs = VenvCache::from_env()
            .unwrap_or_else(|e| panic!("the backup tests start real servers: {e}; {HINT}"));
        let (venv, _) = venvs.ensure(&v, &pins).unwrap_or_else(|e| panic!("{e}"));
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = if v.is_rust_server() {
            let mut c = Command::new(venv.bin_dir().join("chroma"));
            c.args([
                "run",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--path",
            ])
            .arg(data.path());
            c
        } else {
            let mut c = Command::new(venv.bin_dir().join("uvicorn"));
            c.args([
                "chromadb.app:app",
                "--workers",
                "1",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ]);
            c.env("IS_PERSISTENT", "1")
                .env("PERSIST_DIRECTORY", data.path())
                .env("ANONYMIZED_TELEMETRY", "False")
                .env("ALLOW_RESET", "TRUE");
            c
        };
        cmd.current_dir(data.path())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting chromadb {v}: {e}"));
        let s = LiveServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            version: v,
            _data: data,
        };
        s.wait_ready();
        s
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let hb = format!(
            "{}{}/heartbeat",
            self.url,
            ApiPrefix::for_version(&self.version).path()
        );
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(self.url.trim_start_matches("http://")).is_ok()
                && Command::new("curl")
                    .args(["-sf", "-o", "/dev/null", &hb])
                    .status()
                    .is_ok_and(|s| s.success())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("chromadb {} did not answer {hb} within 90 s", self.version);
    }

    pub fn api(&self) -> Api {
        Api::new(&self.url, ApiPrefix::for_version(&self.version), None)
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the tool; secrets and settings only through `env`.
pub fn tool(url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chromadb-backup"))
        .env_remove("CHROMA_BACKUP_TOKEN")
        .env("CHROMA_BACKUP_URL", url)
        .env("CHROMA_BACKUP_LOG", "info")
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("running chromadb-backup")
}

pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Writes `ds` through the harness's dataset module (not through the tool under test).
pub async fn write(s: &LiveServer, ds: &Dataset) {
    let mut ev = Vec::new();
    dataset::write(&s.api(), ds, &mut ev)
        .await
        .unwrap_or_else(|e| panic!("writing the dataset to {}: {e}", s.version));
}

/// Reads `ds` back through the harness's dataset module and diffs it record by record.
pub async fn assert_intact(s: &LiveServer, ds: &Dataset) {
    let mut ev = Vec::new();
    let mut snap = dataset::read(&s.api(), ds, &mut ev).await;
    // `hnsw:*` keys are index settings: a restore into 0.x spells out settings that differ
    // from that era's defaults there. The tests assert settings on their own.
    for c in snap.collections.values_mut() {
        if let ReadCollection::Found {
            metadata: Some(m), ..
        } = c
        {
            m.retain(|k, _| !k.starts_with("hnsw:"));
        }
    }
    // Shared: the tests add a settings collection beside the dataset.
    let d = dataset::diff(ds, &snap, Scope::Shared);
    assert!(
        d.intact(),
        "the dataset on {} is not intact:\n{d}",
        s.version
    );
    assert_eq!(d.survived_records(), ds.record_count());
    assert!(ds.record_count() > 0, "a dataset with records");
}

/// Collection names on the server (through the harness's client).
pub async fn collection_names(s: &LiveServer) -> Vec<String> {
    let a = s.api().list_collections().await;
    chroma_api::client::collection_names(&a).unwrap()
}
