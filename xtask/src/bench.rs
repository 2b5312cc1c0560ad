//! `cargo xtask bench backup`: dump and restore throughput and peak RSS of chromadb-backup,
//! beside each server's own in-process ceiling measured in the same run, and (unless
//! `--no-compare`) `cdp export`/`cdp import` (chromadb-data-pipes) and a plain get/add loop in
//! the official Python client, on the same data, on live process servers of each version.
//!
//! The data: one collection of N records (`--records`, repeatable) with 384-dimensional
//! embeddings, a document and three metadata keys each, generated with the tool's own library.
//! The ceiling is the server's own Python package in-process (`chromadb.PersistentClient`, no
//! HTTP): `add` of the same records in the same batches, then `get` by the same pages. Every
//! tool's rate is printed as a fraction of it: dump against `get`, restore against `add`.
//! Restores each go into a fresh server; the exports all read the server the tool restored
//! into. Peak RSS is the client process's own (`wait4`'s `ru_maxrss`), never the server's.
//! MB/s counts the raw record data (4 bytes per embedding component + id, document and
//! metadata JSON), the same figure for every tool.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
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
    /// Records in the collection; repeat for several sizes in one run
    #[arg(long = "records", default_values_t = [10_000usize])]
    records: Vec<usize>,
    /// Embedding dimensions
    #[arg(long, default_value_t = 384)]
    dim: usize,
    /// Chroma versions to run on
    #[arg(long = "version", default_values_t = ["0.4.24".to_string(), "0.6.3".to_string(), "1.5.0".to_string()])]
    versions: Vec<String>,
    /// Measure this chromadb-backup binary instead of building the release one
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Records per page and per add batch, for the tool and the in-process ceiling alike
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Other clients measured beside chromadb-backup and the ceiling: `all` (cdp and a plain
    /// Python client loop), `python` (the loop only: no cdp environment to build), `none`
    #[arg(long, value_enum, default_value = "all")]
    compare: Compare,
    /// Append every measurement to this JSON-lines file (kept across runs, read by --plot)
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw seconds per 1,000 records against records (one line per era and op) into this SVG,
    /// from this run's measurements and those already in --json
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Measure nothing: print the table of --json's rows and draw --plot from them
    #[arg(long, requires = "json")]
    report_only: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Compare {
    All,
    Python,
    None,
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut c = if version.is_rust_server() {
        let mut c = Command::new(venv.join("bin/chroma"));
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
        let mut c = Command::new(venv.join("bin/uvicorn"));
        c.args([
            "chromadb.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ]);
        c.env("IS_PERSISTENT", "1")
            .env("PERSIST_DIRECTORY", data.path())
            .env("ANONYMIZED_TELEMETRY", "False");
        c
    };
    let child = c
        .current_dir(data.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting chroma")?;
    let s = Server {
        child,
        port,
        _data: data,
    };
    let prefix = chroma_prefix(version);
    let deadline = Instant::now() + Duration::from_secs(90);
    while !Command::new("curl")
        .args([
            "-sf",
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:{port}{prefix}/heartbeat"),
        ])
        .status()?
        .success()
    {
        ensure!(
            Instant::now() < deadline,
            "chroma {version} did not answer within 90 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(s)
}

fn chroma_prefix(v: &ChromaVersion) -> &'static str {
    if *v >= render::version::API_V2_FLOOR {
        "/api/v2"
    } else {
        "/api/v1"
    }
}

/// Wall time and the process's own peak RSS.
struct Run {
    secs: f64,
    rss_kib: i64,
    /// The client's own CPU seconds (user + system).
    cpu: f64,
}

/// CPU seconds (user + system, every thread) a live process has used so far.
fn cpu_of(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("a /proc stat line without a command name")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .context("utime")?
        + f.get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .context("stime")?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz)
}

/// `measure`, adding the server's CPU seconds over the same span to the client's.
fn measure_with(server: &Server, cmd: &mut Command) -> Result<Run> {
    let before = cpu_of(server.child.id())?;
    let mut r = measure(cmd)?;
    r.cpu += cpu_of(server.child.id())? - before;
    Ok(r)
}

fn measure(cmd: &mut Command) -> Result<Run> {
    let started = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
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
        bail!(
            "{cmd:?} failed (status {status}):\n{}",
            err.lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Run {
        secs,
        rss_kib: usage.ru_maxrss,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
    })
}

/// The generated data of one size: the archive the tool restores, and the same records as
/// raw little-endian f32 embeddings plus JSON lines for the in-process ceiling.
struct Data {
    archive: PathBuf,
    embeddings: PathBuf,
    rows: PathBuf,
    raw: u64,
}

/// Deterministic records: a small LCG, so every run benchmarks the same bytes.
fn generate(dir: &Path, n: usize, dim: usize) -> Result<Data> {
    let entry = CollectionEntry::new("bench", None, Settings::default(), false);
    let mut w = CollectionWriter::create(dir, 0, entry)?;
    let emb_path = dir.join("embeddings.f32");
    let rows_path = dir.join("rows.jsonl");
    let mut emb_out = std::io::BufWriter::new(File::create(&emb_path)?);
    let mut rows_out = std::io::BufWriter::new(File::create(&rows_path)?);
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
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
        for r in &batch {
            for x in r.embedding.as_deref().unwrap_or_default() {
                emb_out.write_all(&x.to_le_bytes())?;
            }
            serde_json::to_writer(
                &mut rows_out,
                &serde_json::json!({"id": r.id, "document": r.document, "metadata": r.metadata}),
            )?;
            rows_out.write_all(b"\n")?;
        }
        w.push(&batch)?;
    }
    emb_out.flush()?;
    rows_out.flush()?;
    let (entry, member) = w.finish()?;
    let source = Source {
        url: "generated".into(),
        version: "1.0.0".into(),
        api: "/api/v2".into(),
        tenant: "default_tenant".into(),
        database: "default_database".into(),
    };
    let manifest = Manifest::new(
        "bench",
        "2026-01-01T00:00:00Z",
        source,
        "generated",
        vec![entry],
    );
    let out = dir.join("generated.tar");
    archive::assemble(
        &manifest,
        std::slice::from_ref(&member),
        std::io::BufWriter::new(File::create(&out)?),
    )?;
    std::fs::remove_file(&member)?;
    Ok(Data {
        archive: out,
        embeddings: emb_path,
        rows: rows_path,
        raw,
    })
}

/// The server's own ceiling: its Python package in-process (no HTTP, no JSON), `add` of the
/// same records in the same batches into an empty persistent collection, then `get` of every
/// record by the same pages (limit/offset, embeddings, documents and metadatas). Inputs are
/// loaded and turned into Python lists before the clock starts. Prints wall and CPU seconds
/// (the whole process, every thread): `add_s get_s add_cpu get_cpu`.
const PY_CEILING: &str = r#"
import json, sys, tempfile, time, numpy as np, chromadb
from chromadb.config import Settings
emb_path, rows_path, dim, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rows = [json.loads(l) for l in open(rows_path)]
n = len(rows)
embs = np.fromfile(emb_path, dtype="<f4").reshape(n, dim).tolist()
ids = [r["id"] for r in rows]
docs = [r["document"] for r in rows]
metas = [r["metadata"] for r in rows]
with tempfile.TemporaryDirectory() as d:
    client = chromadb.PersistentClient(path=d, settings=Settings(anonymized_telemetry=False))
    col = client.create_collection("bench", embedding_function=None)
    t, c = time.perf_counter(), time.process_time()
    for i in range(0, n, batch):
        col.add(ids=ids[i:i + batch], embeddings=embs[i:i + batch], documents=docs[i:i + batch], metadatas=metas[i:i + batch])
    add_s, add_cpu = time.perf_counter() - t, time.process_time() - c
    assert col.count() == n, (col.count(), n)
    t, c = time.perf_counter(), time.process_time()
    got = 0
    for off in range(0, n, batch):
        r = col.get(limit=batch, offset=off, include=["embeddings", "documents", "metadatas"])
        got += len(r["ids"])
        assert len(r["embeddings"]) == len(r["ids"])
    get_s, get_cpu = time.perf_counter() - t, time.process_time() - c
    assert got == n, (got, n)
print(add_s, get_s, add_cpu, get_cpu)
"#;

/// The ceiling's seconds, wall and CPU.
struct Ceiling {
    add: f64,
    get: f64,
    add_cpu: f64,
    get_cpu: f64,
}

/// Runs the ceiling in the server's own venv.
fn ceiling(py: &Path, data: &Data, dim: usize, batch: usize) -> Result<Ceiling> {
    let out = Command::new(py)
        .arg("-c")
        .arg(PY_CEILING)
        .arg(&data.embeddings)
        .arg(&data.rows)
        .arg(dim.to_string())
        .arg(batch.to_string())
        .env("ANONYMIZED_TELEMETRY", "False")
        .output()?;
    ensure!(
        out.status.success(),
        "the in-process ceiling failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let n: Vec<f64> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match n[..] {
        [add, get, add_cpu, get_cpu] => Ok(Ceiling {
            add,
            get,
            add_cpu,
            get_cpu,
        }),
        _ => bail!(
            "the in-process ceiling printed `{}`, not four numbers of seconds",
            text.trim()
        ),
    }
}

/// A venv with cdp and the server version's own client (cached under target/bench).
fn cdp_venv(uv: &Path, version: &ChromaVersion) -> Result<PathBuf> {
    let dir = project_root()
        .join("target/bench/venvs")
        .join(format!("cdp-{version}"));
    let marker = dir.join(".complete");
    if marker.is_file() {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    crate::cmd::run_status(
        Command::new(uv)
            .args(["venv", "--quiet", "--python", "/usr/bin/python3.11"])
            .arg(&dir),
    )?
    .then_some(())
    .context("uv venv for cdp")?;
    let overrides = dir.join("overrides.txt");
    std::fs::write(
        &overrides,
        format!("chromadb=={version}\nnumpy>=2\nclick<8.2\n"),
    )?;
    let mut c = Command::new(uv);
    c.args(["pip", "install", "--quiet", "--python"])
        .arg(dir.join("bin/python"))
        .arg("--override")
        .arg(&overrides)
        .arg(format!("chromadb=={version}"))
        .arg(CDP)
        .args(CDP_EXTRA)
        .arg("pyarrow");
    crate::cmd::run_status(&mut c)?
        .then_some(())
        .context("installing chromadb-data-pipes")?;
    std::fs::write(&marker, "")?;
    Ok(dir)
}

const PY_EXPORT: &str = r#"
import json, sys, chromadb
host, port, name, batch, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
col = chromadb.HttpClient(host=host, port=port).get_collection(name)
n = col.count()
with open(out, "w") as f:
    for off in range(0, n, batch):
        r = col.get(limit=batch, offset=off, include=["embeddings", "documents", "metadatas"])
        for i, id_ in enumerate(r["ids"]):
            f.write(json.dumps({"id": id_, "embedding": [float(x) for x in r["embeddings"][i]], "document": r["documents"][i], "metadata": r["metadatas"][i]}) + "\n")
"#;

const PY_IMPORT: &str = r#"
import json, sys, chromadb
host, port, name, size, src = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
col = chromadb.HttpClient(host=host, port=port).create_collection(name, embedding_function=None)
def flush(b):
    if b:
        col.add(ids=[r["id"] for r in b], embeddings=[r["embedding"] for r in b], documents=[r["document"] for r in b], metadatas=[r["metadata"] for r in b])
batch = []
with open(src) as f:
    for line in f:
        batch.append(json.loads(line))
        if len(batch) == size:
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
    let api = chroma_api::client::Api::new(
        &format!("http://127.0.0.1:{port}"),
        chroma_api::ApiPrefix::for_version(v),
        None,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let c = chroma_api::client::collection(
            &api.get_collection(name).await,
            "getting the bench collection",
        )?;
        Ok(chroma_api::client::count(
            &api.count(&c.id).await,
            "counting",
        )?)
    })
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Row {
    version: String,
    records: usize,
    tool: String,
    op: String,
    secs: f64,
    /// The client's own peak RSS; none for the ceiling (it holds the whole data set).
    rss_kib: Option<i64>,
    /// Seconds the server's in-process ceiling took for the same op on the same data.
    ceiling_secs: f64,
    raw_bytes: u64,
    /// CPU seconds: the server's and the client's together (the ceiling: its one process).
    /// Unlike wall time it hardly moves when other work shares the cores.
    #[serde(default)]
    cpu_secs: Option<f64>,
    #[serde(default)]
    ceiling_cpu_secs: Option<f64>,
}

const CEILING: &str = "in-process ceiling";

impl Row {
    fn rate(&self) -> f64 {
        self.records as f64 / self.secs
    }
    fn fraction(&self) -> f64 {
        self.ceiling_secs / self.secs
    }
    fn per_1000(&self) -> f64 {
        self.secs / self.records as f64 * 1000.0
    }
    /// The ceiling's CPU seconds over this run's, where both were measured.
    fn cpu_fraction(&self) -> Option<f64> {
        Some(self.ceiling_cpu_secs? / self.cpu_secs?)
    }
}

/// Each measurement as it is taken, so an interrupted run still says what it measured.
fn push(rows: &mut Vec<Row>, json: Option<&Path>, row: Row) -> Result<()> {
    eprintln!(
        "  {} {} {} {}: {:.1} s, {:.0} rec/s, {:.0} % of the ceiling ({} by CPU), peak RSS {}",
        row.version,
        row.records,
        row.tool,
        row.op,
        row.secs,
        row.rate(),
        row.fraction() * 100.0,
        row.cpu_fraction()
            .map_or("-".into(), |f| format!("{:.0} %", f * 100.0)),
        row.rss_kib
            .map_or("-".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
    );
    if let Some(p) = json {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .with_context(|| format!("opening {}", p.display()))?;
        writeln!(f, "{}", serde_json::to_string(&row)?)?;
    }
    rows.push(row);
    Ok(())
}

/// Everything measured on one version at one size.
#[allow(clippy::too_many_arguments)]
fn run_one(
    flags: &Flags,
    bin: &Path,
    venv: &Path,
    cdp: Option<&Path>,
    version: &ChromaVersion,
    n: usize,
    data: &Data,
    work: &Path,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let v = version.to_string();
    let py = venv.join("bin/python");
    let url = |s: &Server| format!("http://127.0.0.1:{}", s.port);
    let json = flags.json.as_deref();
    eprintln!("{v} × {n}: in-process ceiling (add, then get)");
    let c = ceiling(&py, data, flags.dim, flags.batch)?;
    let (add_s, get_s) = ((c.add, c.add_cpu), (c.get, c.get_cpu));
    let row = |tool: &str, op: &str, run: &Run, (ceiling_secs, ceiling_cpu): (f64, f64)| Row {
        version: v.clone(),
        records: n,
        tool: tool.into(),
        op: op.into(),
        secs: run.secs,
        rss_kib: Some(run.rss_kib),
        ceiling_secs,
        raw_bytes: data.raw,
        cpu_secs: Some(run.cpu),
        ceiling_cpu_secs: Some(ceiling_cpu),
    };
    for (op, (secs, cpu)) in [("restore", add_s), ("dump", get_s)] {
        let r = Row {
            version: v.clone(),
            records: n,
            tool: CEILING.into(),
            op: op.into(),
            secs,
            rss_kib: None,
            ceiling_secs: secs,
            raw_bytes: data.raw,
            cpu_secs: Some(cpu),
            ceiling_cpu_secs: Some(cpu),
        };
        push(rows, json, r)?;
    }

    let src = start(venv, version)?;
    eprintln!("{v} × {n}: chromadb-backup restore");
    let r = measure_with(
        &src,
        Command::new(bin)
            .args(["restore", "--from"])
            .arg(&data.archive)
            .env("CHROMA_BACKUP_URL", url(&src)),
    )?;
    ensure!(
        count(src.port, version, "bench")? == n as u64,
        "chromadb-backup restore did not load {n} records"
    );
    push(rows, json, row("chromadb-backup", "restore", &r, add_s))?;

    eprintln!("{v} × {n}: chromadb-backup dump");
    let dumped = work.join(format!("dump-{v}-{n}.tar"));
    let r = measure_with(
        &src,
        Command::new(bin)
            .args(["dump", "--to"])
            .arg(&dumped)
            .args(["--page-size", &flags.batch.to_string()])
            .env("CHROMA_BACKUP_URL", url(&src)),
    )?;
    push(rows, json, row("chromadb-backup", "dump", &r, get_s))?;
    if let Some(cdp) = cdp {
        let out = Command::new(cdp.join("bin/python"))
            .arg("-c")
            .arg(PY_ARROW)
            .arg(&dumped)
            .output()?;
        ensure!(
            out.status.success(),
            "pyarrow could not read the archive: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "{v}: pyarrow read {} rows from the dump",
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    let archive_bytes = std::fs::metadata(&dumped)?.len();
    std::fs::remove_file(&dumped)?;
    if flags.compare == Compare::None {
        eprintln!("{v} × {n}: archive {:.1} MB", archive_bytes as f64 / 1e6);
        return Ok(());
    }

    let cdp_file = work.join(format!("cdp-{v}.jsonl"));
    if let Some(cdp) = cdp {
        eprintln!("{v} × {n}: cdp export");
        // cdp is a third-party tool pinned to an old chromadb: its failure is reported, not fatal.
        match measure_with(
            &src,
            Command::new(cdp.join("bin/cdp"))
                .args([
                    "export",
                    &url(&src),
                    "--collection",
                    "bench",
                    "--batch-size",
                    &flags.batch.to_string(),
                    "--out",
                ])
                .arg(&cdp_file),
        ) {
            Ok(r) => push(rows, json, row("cdp", "dump", &r, get_s))?,
            Err(e) => eprintln!("  {v} cdp dump FAILED: {e:#}"),
        }
    }
    let cdp_bytes = std::fs::metadata(&cdp_file).map(|m| m.len()).unwrap_or(0);

    eprintln!("{v} × {n}: python get loop");
    let py_file = work.join(format!("py-{v}.jsonl"));
    let r = measure_with(
        &src,
        Command::new(&py)
            .args([
                "-c",
                PY_EXPORT,
                "127.0.0.1",
                &src.port.to_string(),
                "bench",
                &flags.batch.to_string(),
            ])
            .arg(&py_file),
    )?;
    push(rows, json, row("python client", "dump", &r, get_s))?;
    drop(src);

    if let Some(cdp) = cdp {
        let dst = start(venv, version)?;
        eprintln!("{v} × {n}: cdp import");
        match measure_with(
            &dst,
            Command::new(cdp.join("bin/cdp"))
                .args([
                    "import",
                    &url(&dst),
                    "--collection",
                    "bench",
                    "--create",
                    "--batch-size",
                    &flags.batch.to_string(),
                    "--in",
                ])
                .arg(&cdp_file),
        ) {
            Ok(r) if count(dst.port, version, "bench").ok() == Some(n as u64) => {
                push(rows, json, row("cdp", "restore", &r, add_s))?
            }
            Ok(_) => eprintln!("  {v} cdp restore FAILED: it did not load {n} records"),
            Err(e) => eprintln!("  {v} cdp restore FAILED: {e:#}"),
        }
        drop(dst);
    }

    let dst = start(venv, version)?;
    eprintln!("{v} × {n}: python add loop");
    let r = measure_with(
        &dst,
        Command::new(&py)
            .args([
                "-c",
                PY_IMPORT,
                "127.0.0.1",
                &dst.port.to_string(),
                "bench",
                &flags.batch.to_string(),
            ])
            .arg(&py_file),
    )?;
    ensure!(
        count(dst.port, version, "bench")? == n as u64,
        "the python add loop did not load {n} records"
    );
    push(rows, json, row("python client", "restore", &r, add_s))?;
    drop(dst);
    eprintln!(
        "{v} × {n}: archive {:.1} MB, cdp jsonl {:.1} MB, python jsonl {:.1} MB",
        archive_bytes as f64 / 1e6,
        cdp_bytes as f64 / 1e6,
        std::fs::metadata(&py_file)?.len() as f64 / 1e6
    );
    let _ = std::fs::remove_file(&cdp_file);
    let _ = std::fs::remove_file(&py_file);
    Ok(())
}

pub fn run(flags: Flags) -> Result<std::process::ExitCode> {
    if flags.report_only {
        let json = flags.json.as_deref().expect("clap requires --json");
        let rows = read_rows(json)?;
        ensure!(
            !rows.is_empty(),
            "--json {} holds no measurements",
            json.display()
        );
        println!("{}", table(&rows, flags.dim));
        if let Some(svg) = &flags.plot {
            std::fs::write(svg, plot::svg(&rows, flags.dim))
                .with_context(|| format!("writing {}", svg.display()))?;
            eprintln!("wrote {}", svg.display());
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }
    ensure!(
        !flags.records.is_empty() && flags.records.iter().all(|&n| n > 0),
        "--records must be 1 or more (e.g. --records 10000 --records 100000)"
    );
    ensure!(
        flags.batch > 0,
        "--batch must be 1 or more (records per page and per add)"
    );
    let versions: Vec<ChromaVersion> = flags
        .versions
        .iter()
        .map(|v| {
            v.parse()
                .with_context(|| format!("--version {v}: not a Chroma version such as 0.6.3"))
        })
        .collect::<Result<_>>()?;
    let matrix = render::VersionMatrix::load(project_root().join("fixtures/versions.yaml"))
        .context("reading fixtures/versions.yaml for each version's pins")?;
    let tools = tools::ensure()?;
    // Readiness is polled with the host's curl, one of the process node's host programs.
    crate::host::ensure()?;
    let root = project_root();
    let bin = match &flags.binary {
        Some(b) => b.clone(),
        None => {
            eprintln!("building chromadb-backup (release)");
            ensure!(
                crate::cmd::run_status(crate::cmd::cargo().current_dir(&root).args([
                    "build",
                    "--release",
                    "-p",
                    "backup",
                    "--bin",
                    "chromadb-backup"
                ]))?,
                "building chromadb-backup failed"
            );
            root.join("target/release/chromadb-backup")
        }
    };
    eprintln!("measuring {}", bin.display());
    let work = tempfile::Builder::new()
        .prefix("bench-")
        .tempdir_in(std::env::temp_dir())?;
    let venvs = VenvCache::new(&tools.uv.path, VenvCache::default_root()?)?;
    let mut rows = Vec::new();
    for &n in &flags.records {
        let dir = work.path().join(n.to_string());
        std::fs::create_dir_all(&dir)?;
        eprintln!("generating {n} records of {} dimensions", flags.dim);
        let data = generate(&dir, n, flags.dim)?;
        for version in &versions {
            let pins = matrix
                .get(version)
                .map(|e| e.pins.clone())
                .unwrap_or_default();
            let (venv, _) = venvs.ensure(version, &pins)?;
            let cdp = if flags.compare == Compare::All {
                Some(cdp_venv(&tools.uv.path, version)?)
            } else {
                None
            };
            run_one(
                &flags,
                &bin,
                &venv.dir,
                cdp.as_deref(),
                version,
                n,
                &data,
                work.path(),
                &mut rows,
            )?;
        }
        std::fs::remove_dir_all(&dir)?;
    }
    println!("{}", table(&rows, flags.dim));
    if let Some(svg) = &flags.plot {
        let mut all = match &flags.json {
            Some(p) => read_rows(p)?,
            None => Vec::new(),
        };
        for r in &rows {
            if !all.iter().any(|a| {
                a.version == r.version && a.records == r.records && a.tool == r.tool && a.op == r.op
            }) {
                all.push(r.clone());
            }
        }
        std::fs::write(svg, plot::svg(&all, flags.dim))
            .with_context(|| format!("writing {}", svg.display()))?;
        eprintln!("wrote {}", svg.display());
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The rows of a --json file; a later measurement of the same version, size, tool and op wins.
fn read_rows(p: &Path) -> Result<Vec<Row>> {
    let text = match std::fs::read_to_string(p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
    };
    let mut rows: Vec<Row> = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let r: Row = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a benchmark row", p.display(), i + 1))?;
        rows.retain(|a| {
            !(a.version == r.version && a.records == r.records && a.tool == r.tool && a.op == r.op)
        });
        rows.push(r);
    }
    Ok(rows)
}

fn table(rows: &[Row], dim: usize) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{dim} dims; ceiling = the server's own package in-process (dump: `get`, restore: `add`), measured in the same run; CPU = server + client"
    );
    let _ = writeln!(
        t,
        "| version | records | tool | op | seconds | s / 1,000 rec | records/s | MB/s | ceiling rec/s | of ceiling | CPU s / 1,000 rec | of ceiling by CPU | peak RSS MiB |"
    );
    let _ = writeln!(
        t,
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {:.1} | {:.3} | {:.0} | {:.1} | {:.0} | {:.0} % | {} | {} | {} |",
            r.version,
            r.records,
            r.tool,
            r.op,
            r.secs,
            r.per_1000(),
            r.rate(),
            r.raw_bytes as f64 / 1e6 / r.secs,
            r.records as f64 / r.ceiling_secs,
            r.fraction() * 100.0,
            r.cpu_secs.map_or("-".into(), |c| format!(
                "{:.3}",
                c / r.records as f64 * 1000.0
            )),
            r.cpu_fraction()
                .map_or("-".into(), |f| format!("{:.0} %", f * 100.0)),
            r.rss_kib
                .map_or("-".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
        );
    }
    t
}

/// Seconds per 1,000 records against records, one line per era and op: the tool solid, the
/// ceiling dashed in the same colour. Plain SVG text, like the latency plot of e2e.
mod plot {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;

    use super::{CEILING, Row};

    const W: f64 = 760.0;
    const H: f64 = 440.0;
    const L: f64 = 70.0;
    const R: f64 = 230.0;
    const T: f64 = 40.0;
    const B: f64 = 50.0;
    /// The tool's points (false) and the ceiling's (true): (records, seconds per 1,000).
    type Series = BTreeMap<bool, Vec<(f64, f64)>>;

    const COLOURS: [&str; 8] = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    ];

    fn esc(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }

    pub fn svg(rows: &[Row], dim: usize) -> String {
        let rows: Vec<&Row> = rows
            .iter()
            .filter(|r| r.tool == "chromadb-backup" || r.tool == CEILING)
            .collect();
        // (version, op) → is the ceiling → points
        let mut lines: BTreeMap<(String, String), Series> = BTreeMap::new();
        for r in &rows {
            lines
                .entry((r.version.clone(), r.op.clone()))
                .or_default()
                .entry(r.tool == CEILING)
                .or_default()
                .push((r.records as f64, r.per_1000()));
        }
        let xs: Vec<f64> = rows.iter().map(|r| r.records as f64).collect();
        let ys: Vec<f64> = rows.iter().map(|r| r.per_1000()).collect();
        let (x0, x1) = (
            xs.iter()
                .cloned()
                .fold(f64::INFINITY, f64::min)
                .log10()
                .floor(),
            xs.iter().cloned().fold(0.0, f64::max).log10().ceil(),
        );
        let x1 = if x1 <= x0 { x0 + 1.0 } else { x1 };
        let (y0, y1) = (
            ys.iter()
                .cloned()
                .fold(f64::INFINITY, f64::min)
                .log10()
                .floor(),
            ys.iter().cloned().fold(0.0, f64::max).log10().ceil(),
        );
        let y1 = if y1 <= y0 { y0 + 1.0 } else { y1 };
        let px = |x: f64| L + (x.log10() - x0) / (x1 - x0) * (W - L - R);
        let py = |y: f64| H - B - (y.log10() - y0) / (y1 - y0) * (H - T - B);
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="22" font-size="14" text-anchor="middle">chromadb-backup: seconds per 1,000 records ({dim} dims); dashed: the server's in-process ceiling</text>"#,
            W / 2.0
        );
        let mut e = y0;
        while e <= y1 {
            let y = 10f64.powf(e);
            let (gx, gy, tx, ty, label) = (W - R, py(y), L - 6.0, py(y) + 4.0, trim(y));
            let _ = writeln!(
                s,
                r##"<line x1="{L}" x2="{gx}" y1="{gy:.1}" y2="{gy:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{label}</text>"##
            );
            e += 1.0;
        }
        let mut e = x0;
        while e <= x1 {
            let x = px(10f64.powf(e));
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{T}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
                H - B,
                H - B + 16.0,
                thousands(10f64.powf(e))
            );
            e += 1.0;
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">records in the collection (log scale)</text>"#,
            L + (W - L - R) / 2.0,
            H - 12.0
        );
        let _ = writeln!(
            s,
            r#"<text transform="translate(16 {}) rotate(-90)" text-anchor="middle">seconds per 1,000 records (log scale)</text>"#,
            T + (H - T - B) / 2.0
        );
        for (i, ((version, op), tools)) in lines.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            for (ceiling, pts) in tools {
                let mut pts = pts.clone();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                let path: Vec<String> = pts
                    .iter()
                    .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
                    .collect();
                let dash = if *ceiling {
                    r#" stroke-dasharray="5 4""#
                } else {
                    ""
                };
                let _ = writeln!(
                    s,
                    r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
                    path.join(" ")
                );
                for (x, y) in &pts {
                    let _ = writeln!(
                        s,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                        px(*x),
                        py(*y)
                    );
                }
            }
            let ly = T + 10.0 + i as f64 * 20.0;
            let _ = writeln!(
                s,
                r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{} {}</text>"#,
                W - R + 14.0,
                W - R + 40.0,
                W - R + 46.0,
                ly + 4.0,
                esc(version),
                esc(op)
            );
        }
        s.push_str("</svg>\n");
        s
    }

    fn trim(v: f64) -> String {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }

    fn thousands(v: f64) -> String {
        match v as u64 {
            n if n >= 1_000_000 => format!("{}M", n / 1_000_000),
            n if n >= 1_000 => format!("{}k", n / 1_000),
            n => n.to_string(),
        }
    }
}
