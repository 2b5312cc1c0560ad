//! Render results cached by what determines them — the chart's files, the helm binary and
//! the request — in memory and (optionally) on disk, so many test processes share one render.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::helm::{Helm, RenderError, RenderRequest};
use crate::objects::Rendered;

/// What a render produced: helm's documents (stored as JSON, which loads far faster than
/// re-parsing helm's YAML in every test process), or helm's refusal message.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum Outcome {
    Rendered(Vec<serde_json::Value>),
    Refused(String),
}

/// Bumped whenever what a cached entry holds changes meaning (v3: documents read with the
/// API server's YAML 1.1 rules), so entries of an older reader are never served.
const CACHE_FORMAT: &str = "v3";

type Slot = Arc<OnceLock<Result<Arc<Rendered>, CachedError>>>;

#[derive(Debug, Clone)]
enum CachedError {
    Refused(String),
    /// Not cached on disk: the next process should try again.
    Other(String),
}

/// Counters for one process.
#[derive(Debug, Default)]
pub struct Stats {
    pub helm_runs: AtomicU64,
    pub helm_nanos: AtomicU64,
    pub memory_hits: AtomicU64,
    pub disk_hits: AtomicU64,
}

impl Stats {
    pub fn helm_runs(&self) -> u64 {
        self.helm_runs.load(Ordering::Relaxed)
    }
    pub fn helm_time(&self) -> Duration {
        Duration::from_nanos(self.helm_nanos.load(Ordering::Relaxed))
    }
    pub fn memory_hits(&self) -> u64 {
        self.memory_hits.load(Ordering::Relaxed)
    }
    pub fn disk_hits(&self) -> u64 {
        self.disk_hits.load(Ordering::Relaxed)
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} helm renders in {:.2?} (helm time, summed), {} from the disk cache, {} from memory",
            self.helm_runs(),
            self.helm_time(),
            self.disk_hits(),
            self.memory_hits()
        )
    }
}

pub struct RenderCache {
    helm: Helm,
    dir: Option<PathBuf>,
    slots: Mutex<HashMap<String, Slot>>,
    chart_hashes: Mutex<HashMap<PathBuf, String>>,
    pub stats: Stats,
}

impl RenderCache {
    /// `dir`: where rendered outputs are kept across processes (`None` = memory only).
    pub fn new(helm: Helm, dir: Option<PathBuf>) -> Self {
        RenderCache {
            helm,
            dir,
            slots: Mutex::default(),
            chart_hashes: Mutex::default(),
            stats: Stats::default(),
        }
    }

    pub fn helm(&self) -> &Helm {
        &self.helm
    }

    /// Renders `req`, or returns the stored result of an identical earlier render.
    pub fn render(&self, req: &RenderRequest) -> Result<Arc<Rendered>, RenderError> {
        let key = self.key(req)?;
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(key.clone()).or_default().clone()
        };
        let mut computed = false;
        let result = slot.get_or_init(|| {
            computed = true;
            self.compute(&key, req)
        });
        if !computed {
            self.stats.memory_hits.fetch_add(1, Ordering::Relaxed);
        }
        match result {
            Ok(r) => Ok(r.clone()),
            Err(CachedError::Refused(message)) => Err(RenderError::Helm {
                message: message.clone(),
            }),
            Err(CachedError::Other(message)) => Err(RenderError::Cached {
                message: message.clone(),
            }),
        }
    }

    fn compute(&self, key: &str, req: &RenderRequest) -> Result<Arc<Rendered>, CachedError> {
        let outcome = match self.load(key) {
            Some(o) => {
                self.stats.disk_hits.fetch_add(1, Ordering::Relaxed);
                o
            }
            None => {
                let started = Instant::now();
                let outcome = match req.render_raw(&self.helm) {
                    Ok(stdout) => match Rendered::parse(&stdout) {
                        Ok(r) => Outcome::Rendered(r.documents),
                        Err(e) => {
                            return Err(CachedError::Other(format!(
                                "helm output does not parse: {e}"
                            )));
                        }
                    },
                    Err(RenderError::Helm { message }) => Outcome::Refused(message),
                    Err(other) => return Err(CachedError::Other(other.to_string())),
                };
                let took = started.elapsed();
                self.stats.helm_runs.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .helm_nanos
                    .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
                self.store(key, &outcome, took, req);
                outcome
            }
        };
        match outcome {
            Outcome::Rendered(docs) => Rendered::from_documents(docs)
                .map(Arc::new)
                .map_err(|e| CachedError::Other(format!("helm output does not parse: {e}"))),
            Outcome::Refused(message) => Err(CachedError::Refused(message)),
        }
    }

    fn load(&self, key: &str) -> Option<Outcome> {
        let path = self
            .dir
            .as_ref()?
            .join(format!("{key}.{CACHE_FORMAT}.json"));
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Atomic: a reader sees a whole entry or none (write to a unique temp file, then rename).
    fn store(&self, key: &str, outcome: &Outcome, took: Duration, req: &RenderRequest) {
        let Some(dir) = &self.dir else { return };
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            tmp.write_all(
                serde_json::to_string(outcome)
                    .map_err(std::io::Error::other)?
                    .as_bytes(),
            )?;
            tmp.persist(dir.join(format!("{key}.{CACHE_FORMAT}.json")))
                .map_err(|e| e.error)?;
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("renders.log"))?;
            let version = req
                .version
                .as_ref()
                .map_or_else(|| "-".to_string(), ToString::to_string);
            let ok = if matches!(outcome, Outcome::Rendered(_)) {
                "rendered"
            } else {
                "refused"
            };
            writeln!(log, "{} {} {ok} {key}", took.as_millis(), version)
        };
        if let Err(e) = write() {
            tracing::warn!(dir = %dir.display(), "could not store a render in the cache: {e}");
        }
    }

    /// The hash of everything that decides the output.
    fn key(&self, req: &RenderRequest) -> Result<String, RenderError> {
        let mut h = Sha256::new();
        h.update(self.chart_hash(&req.chart)?);
        h.update(self.helm.path().display().to_string());
        if let Ok(meta) = std::fs::metadata(self.helm.path()) {
            h.update(meta.len().to_le_bytes());
            if let Ok(m) = meta.modified() {
                h.update(format!("{m:?}"));
            }
        }
        h.update(req.identity().map_err(RenderError::Values)?);
        Ok(hex::encode(&h.finalize()[..16]))
    }

    fn chart_hash(&self, chart: &Path) -> Result<String, RenderError> {
        let mut hashes = self.chart_hashes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = hashes.get(chart) {
            return Ok(h.clone());
        }
        let h = hash_dir(chart).map_err(RenderError::Values)?;
        hashes.insert(chart.to_path_buf(), h.clone());
        Ok(h)
    }
}

/// A digest of every file under `dir` (relative path and contents, in sorted order).
pub fn hash_dir(dir: &Path) -> std::io::Result<String> {
    fn walk(base: &Path, dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(base, &path, files)?;
            } else {
                files.push(path.strip_prefix(base).unwrap_or(&path).to_path_buf());
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        h.update(f.display().to_string());
        h.update([0]);
        let body = std::fs::read(dir.join(&f))?;
        h.update((body.len() as u64).to_le_bytes());
        h.update(body);
    }
    Ok(hex::encode(h.finalize()))
}
