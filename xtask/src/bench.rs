//! `cargo xtask bench backup`: dump and restore throughput and peak RSS of chromadb-backup
//! against `cdp export`/`cdp import` (chromadb-data-pipes) and a plain get/add loop in the
//! official Python client, on the same data, on live process servers of each version.
//!
//! The data: one collection of N records (default 100,000) with 384-dimensional embeddings, a
//! document and three metadata keys each, generated into an archive with the tool's own
//! library. Restores each go into a fresh server; the three exports all read the server the
//! tool restored into. Peak RSS is the client process's own (`wait4`'s `ru_maxrss`), never the
//! server's. MB/s counts the raw record data (4 bytes per embedding component + id, document
//! and metadata JSON), the same figure for every tool.

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use backup::archive::{self, CollectionEntry, CollectionWriter, Manifest, Source};
use backup::model::{Record, Settings};
use e2e::venv::VenvCache;
use render::ChromaVersion;

use crate::{project_root, tools};

#[derive(clap::Args)]
pub struct Flags {
    /// What to benchmark (only `backup` exists)
    #[arg(value_parser = ["backup"])]
    what: String,
    /// Records in the collection
    #[arg(long, default_value_t = 100_000)]
    records: usize,
    /// Embedding dimensions
    #[arg(long, default_value_t = 384)]
    dim: usize,
    /// Chroma versions to run on
    #[arg(long = "version", default_values_t = ["1.5.0".to_string(), "0.6.3".to_string()])]
    versions: Vec<String>,
    /// Measure this chromadb-backup binary instead of building the release one
    #[arg(long)]
    binary: Option<PathBuf>,
}

/// chromadb-data-pipes' last release pins chromadb<0.6 and leaves optional imports out of its
/// requirements; these overrides are what it takes to run it against each server's own client.
const CDP: &str = "chromadb-data-pipes==0.0.12";
const CDP_EXTRA: &[&str] = &["jinja2", "langchain-community"];

struct Server {
    child: Child,
    port: u16,
    _data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(venv: &Path, version: &ChromaVersion) -> Result<Server> {
    let data = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut c = if version.is_rust_server() {
        let mut c = Command::new(venv.join("bin/chroma"));
        c.args(["run", "--host", "127.0.0.1", "--port", &port.to_string(), "--path"]).arg(data.path());
        c
    } else {
        let mut c = Command::new(venv.join("bin/uvicorn"));
        c.args(["chromadb.app:app", "--host", "127.0.0.1", "--port", &port.to_string()]);
        c.env("IS_PERSISTENT", "1").env("PERSIST_DIRECTORY", data.path()).env("ANONYMIZED_TELEMETRY", "False");
        c
    };
    let child = c.current_dir(data.path()).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().context("starting chroma")?;
    let s = Server { child, port, _data: data };
    let prefix = chroma_prefix(version);
    let deadline = Instant::now() + Duration::from_secs(90);
    while !Command::new("curl").args(["-sf", "-o", "/dev/null", &format!("http://127.0.0.1:{port}{prefix}/heartbeat")]).status()?.success() {
        ensure!(Instant::now() < deadline, "chroma {version} did not answer within 90 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(s)
}

fn chroma_prefix(v: &ChromaVersion) -> &'static str {
    if *v >= render::version::API_V2_FLOOR { "/api/v2" } else { "/api/v1" }
}

/// Wall time and the process's own peak RSS.
struct Run {
    secs: f64,
    rss_kib: i64,
}

fn measure(cmd: &mut Command) -> Result<Run> {
    let started = Instant::now();
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().with_context(|| format!("starting {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter; the pid is our own unreaped child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = started.elapsed().as_secs_f64();
    let err = reader.join().unwrap_or_default();
    ensure!(r == pid, "waiting for {cmd:?} failed");
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("{cmd:?} failed (status {status}):\n{}", err.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    Ok(Run { secs, rss_kib: usage.ru_maxrss })
}

/// Deterministic records: a small LCG, so every run benchmarks the same bytes.
fn generate(dir: &Path, n: usize, dim: usize) -> Result<(PathBuf, u64)> {
    let entry = CollectionEntry::new("bench", None, Settings::default(), false);
    let mut w = CollectionWriter::create(dir, 0, entry)?;
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        // 24 bits → an exact f32 in [-1, 1).
        ((state >> 40) as f32) / 8_388_608.0 - 1.0
    };
    let mut raw = 0u64;
    for start in (0..n).step_by(1000) {
        let batch: Vec<Record> = (start..(start + 1000).min(n))
            .map(|i| {
                let metadata = serde_json::json!({"i": i, "group": format!("g{}", i % 17), "score": (i % 1000) as f64 / 8.0}).as_object().cloned();
                let document = format!("document {i}: the quick brown fox jumps over the lazy dog, record number {i}");
                let id = format!("rec-{i:07}");
                raw += (dim * 4 + document.len() + id.len()) as u64 + serde_json::to_string(&metadata).map_or(0, |s| s.len() as u64);
                Record { id, embedding: Some((0..dim).map(|_| next()).collect()), document: Some(document), metadata, uri: None }
            })
            .collect();
        w.push(&batch)?;
    }
    let (entry, member) = w.finish()?;
    let source = Source { url: "generated".into(), version: "1.0.0".into(), api: "/api/v2".into(), tenant: "default_tenant".into(), database: "default_database".into() };
    let manifest = Manifest::new("bench", "2026-01-01T00:00:00Z", source, "generated", vec![entry]);
    let out = dir.join("generated.tar");
    archive::assemble(&manifest, &[member], std::io::BufWriter::new(File::create(&out)?))?;
    Ok((out, raw))
}

/// A venv with cdp and the server version's own client (cached under target/bench).
fn cdp_venv(uv: &Path, version: &ChromaVersion) -> Result<PathBuf> {
    let dir = project_root().join("target/bench/venvs").join(format!("cdp-{version}"));
    let marker = dir.join(".complete");
    if marker.is_file() {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    crate::cmd::run_status(Command::new(uv).args(["venv", "--quiet", "--python", "/usr/bin/python3.11"]).arg(&dir))?.then_some(()).context("uv venv for cdp")?;
    let overrides = dir.join("overrides.txt");
    std::fs::write(&overrides, format!("chromadb=={version}\nnumpy>=2\nclick<8.2\n"))?;
    let mut c = Command::new(uv);
    c.args(["pip", "install", "--quiet", "--python"]).arg(dir.join("bin/python")).arg("--override").arg(&overrides).arg(format!("chromadb=={version}")).arg(CDP).args(CDP_EXTRA).arg("pyarrow");
    crate::cmd::run_status(&mut c)?.then_some(()).context("installing chromadb-data-pipes")?;
    std::fs::write(&marker, "")?;
    Ok(dir)
}

const PY_EXPORT: &str = r#"
import json, sys, chromadb
host, port, name, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
col = chromadb.HttpClient(host=host, port=port).get_collection(name)
n = col.count()
with open(out, "w") as f:
    for off in range(0, n, 1000):
        r = col.get(limit=1000, offset=off, include=["embeddings", "documents", "metadatas"])
        for i, id_ in enumerate(r["ids"]):
            f.write(json.dumps({"id": id_, "embedding": [float(x) for x in r["embeddings"][i]], "document": r["documents"][i], "metadata": r["metadatas"][i]}) + "\n")
"#;

const PY_IMPORT: &str = r#"
import json, sys, chromadb
host, port, name, src = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
col = chromadb.HttpClient(host=host, port=port).create_collection(name, embedding_function=None)
def flush(b):
    if b:
        col.add(ids=[r["id"] for r in b], embeddings=[r["embedding"] for r in b], documents=[r["document"] for r in b], metadatas=[r["metadata"] for r in b])
batch = []
with open(src) as f:
    for line in f:
        batch.append(json.loads(line))
        if len(batch) == 1000:
            flush(batch); batch = []
flush(batch)
"#;

const PY_ARROW: &str = r#"
import sys, tarfile, json, pyarrow as pa, pyarrow.ipc as ipc
t = tarfile.open(sys.argv[1])
m = json.load(t.extractfile("manifest.json"))
c = m["collections"][0]
table = ipc.open_file(pa.BufferReader(t.extractfile(c["member"]).read())).read_all()
assert table.num_rows == c["records"], (table.num_rows, c["records"])
assert table.column_names == ["id", "embedding", "document", "metadata", "uri"], table.column_names
print(table.num_rows)
"#;

fn count(port: u16, v: &ChromaVersion, name: &str) -> Result<u64> {
    let api = chroma_api::client::Api::new(&format!("http://127.0.0.1:{port}"), chroma_api::ApiPrefix::for_version(v), None);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let c = chroma_api::client::collection(&api.get_collection(name).await, "getting the bench collection")?;
        Ok(chroma_api::client::count(&api.count(&c.id).await, "counting")?)
    })
}

struct Row {
    version: String,
    tool: &'static str,
    op: &'static str,
    run: Run,
}

/// Each measurement as it is taken, so an interrupted run still says what it measured.
fn push(rows: &mut Vec<Row>, row: Row) {
    eprintln!("  {} {} {}: {:.1} s, peak RSS {:.0} MiB", row.version, row.tool, row.op, row.run.secs, row.run.rss_kib as f64 / 1024.0);
    rows.push(row);
}

pub fn run(flags: Flags) -> Result<std::process::ExitCode> {
    let tools = tools::ensure()?;
    let root = project_root();
    let bin = match &flags.binary {
        Some(b) => b.clone(),
        None => {
            eprintln!("building chromadb-backup (release)");
            ensure!(crate::cmd::run_status(crate::cmd::cargo().current_dir(&root).args(["build", "--release", "-p", "backup", "--bin", "chromadb-backup"]))?, "building chromadb-backup failed");
            root.join("target/release/chromadb-backup")
        }
    };
    eprintln!("measuring {}", bin.display());
    let work = tempfile::Builder::new().prefix("bench-").tempdir_in(std::env::temp_dir())?;
    eprintln!("generating {} records of {} dimensions", flags.records, flags.dim);
    let (generated, raw) = generate(work.path(), flags.records, flags.dim)?;
    let venvs = VenvCache::new(&tools.uv.path, VenvCache::default_root()?)?;
    let mut rows = Vec::new();
    for v in &flags.versions {
        let version: ChromaVersion = v.parse()?;
        let (venv, _) = venvs.ensure(&version, &[])?;
        let cdp = cdp_venv(&tools.uv.path, &version)?;
        let py = venv.dir.join("bin/python");
        let n = flags.records as u64;
        let url = |s: &Server| format!("http://127.0.0.1:{}", s.port);

        // Restores, each into a fresh server.
        let src = start(&venv.dir, &version)?;
        eprintln!("{v}: chromadb-backup restore");
        let r = measure(Command::new(&bin).args(["restore", "--from"]).arg(&generated).env("CHROMA_BACKUP_URL", url(&src)))?;
        ensure!(count(src.port, &version, "bench")? == n, "chromadb-backup restore did not load {n} records");
        push(&mut rows, Row { version: v.clone(), tool: "chromadb-backup", op: "restore", run: r });

        eprintln!("{v}: chromadb-backup dump");
        let dumped = work.path().join(format!("dump-{v}.tar"));
        let r = measure(Command::new(&bin).args(["dump", "--to"]).arg(&dumped).env("CHROMA_BACKUP_URL", url(&src)))?;
        push(&mut rows, Row { version: v.clone(), tool: "chromadb-backup", op: "dump", run: r });
        let out = Command::new(cdp.join("bin/python")).arg("-c").arg(PY_ARROW).arg(&dumped).output()?;
        ensure!(out.status.success(), "pyarrow could not read the archive: {}", String::from_utf8_lossy(&out.stderr));
        eprintln!("{v}: pyarrow read {} rows from the dump", String::from_utf8_lossy(&out.stdout).trim());
        let archive_bytes = std::fs::metadata(&dumped)?.len();

        eprintln!("{v}: cdp export");
        let cdp_file = work.path().join(format!("cdp-{v}.jsonl"));
        // cdp is a third-party tool pinned to an old chromadb: its failure is reported, not fatal.
        match measure(Command::new(cdp.join("bin/cdp")).args(["export", &url(&src), "--collection", "bench", "--batch-size", "1000", "--out"]).arg(&cdp_file)) {
            Ok(r) => push(&mut rows, Row { version: v.clone(), tool: "cdp", op: "dump", run: r }),
            Err(e) => eprintln!("  {v} cdp dump FAILED: {e:#}"),
        }
        let cdp_bytes = std::fs::metadata(&cdp_file).map(|m| m.len()).unwrap_or(0);

        eprintln!("{v}: python get loop");
        let py_file = work.path().join(format!("py-{v}.jsonl"));
        let r = measure(Command::new(&py).args(["-c", PY_EXPORT, "127.0.0.1", &src.port.to_string(), "bench"]).arg(&py_file))?;
        push(&mut rows, Row { version: v.clone(), tool: "python client", op: "dump", run: r });
        drop(src);

        let dst = start(&venv.dir, &version)?;
        eprintln!("{v}: cdp import");
        match measure(Command::new(cdp.join("bin/cdp")).args(["import", &url(&dst), "--collection", "bench", "--create", "--batch-size", "1000", "--in"]).arg(&cdp_file)) {
            Ok(r) if count(dst.port, &version, "bench").ok() == Some(n) => push(&mut rows, Row { version: v.clone(), tool: "cdp", op: "restore", run: r }),
            Ok(_) => eprintln!("  {v} cdp restore FAILED: it did not load {n} records"),
            Err(e) => eprintln!("  {v} cdp restore FAILED: {e:#}"),
        }
        drop(dst);

        let dst = start(&venv.dir, &version)?;
        eprintln!("{v}: python add loop");
        let r = measure(Command::new(&py).args(["-c", PY_IMPORT, "127.0.0.1", &dst.port.to_string(), "bench"]).arg(&py_file))?;
        ensure!(count(dst.port, &version, "bench")? == n, "the python add loop did not load {n} records");
        push(&mut rows, Row { version: v.clone(), tool: "python client", op: "restore", run: r });
        drop(dst);
        eprintln!("{v}: archive {:.1} MB, cdp jsonl {:.1} MB, python jsonl {:.1} MB", archive_bytes as f64 / 1e6, cdp_bytes as f64 / 1e6, std::fs::metadata(&py_file)?.len() as f64 / 1e6);
    }
    let mut t = String::new();
    let _ = writeln!(t, "{} records × {} dims, {:.1} MB of record data", flags.records, flags.dim, raw as f64 / 1e6);
    let _ = writeln!(t, "| version | tool | op | seconds | records/s | MB/s | peak RSS MiB |");
    let _ = writeln!(t, "|---|---|---|---:|---:|---:|---:|");
    for r in &rows {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.1} | {:.0} | {:.1} | {:.0} |",
            r.version,
            r.tool,
            r.op,
            r.run.secs,
            flags.records as f64 / r.run.secs,
            raw as f64 / 1e6 / r.run.secs,
            r.run.rss_kib as f64 / 1024.0
        );
    }
    println!("{t}");
    Ok(std::process::ExitCode::SUCCESS)
}
