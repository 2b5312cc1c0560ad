//! Upgrade reproduction: deploy version A (or an older chart), write a known dataset,
//! upgrade in place to B on the same data with [`Backend::upgrade`], diff record by record
//! what is still there, then run the conformance checks on B.
//!
//! Each transition ends in one [`Verdict`]. Nothing here knows in advance which transitions
//! work: the verdict is whatever the run shows, and the matrix (fixtures/upgrades.yaml)
//! records what running established so that a change in behaviour fails loudly.

pub mod chart;
pub mod dataset;
pub mod plan;
pub mod report;
pub mod secrets;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::Rng;
use render::{Auth, ChromaVersion, Expected, Helm, RenderRequest, Rendered};
use serde::Serialize;

use crate::backend::{Backend, Deployed, Release};
use crate::checks::{self, CheckName, client::Api};
use crate::runner::CheckResult;
pub use chart::ChartCheckout;
pub use dataset::{DataDiff, Dataset, Fault};
pub use plan::{Transition, UpgradeMatrix, Verdict};
use secrets::{SecretContinuity, SecretFate, Secrets};

#[derive(Debug, Clone)]
pub struct UpgradeOptions {
    /// Leave B running after the report (the caller tears it down).
    pub keep: bool,
    /// Tamper with the data after the upgrade (proves the diff catches it).
    pub fault: Option<Fault>,
    /// Log lines shown from each side of the upgrade.
    pub log_lines: usize,
    /// Transitions run at once by [`run_matrix`].
    pub jobs: usize,
    /// One line per finished transition on stderr.
    pub progress: bool,
}

impl Default for UpgradeOptions {
    fn default() -> Self {
        UpgradeOptions { keep: false, fault: None, log_lines: 25, jobs: 1, progress: true }
    }
}

/// One step of the procedure and how it went.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    pub seconds: f64,
}

/// Server log lines around the upgrade.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpgradeLogs {
    /// A's last lines before it was stopped.
    pub a_tail: String,
    /// B's first lines after it was started on A's data.
    pub b_head: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpgradeReport {
    pub from: ChromaVersion,
    pub to: ChromaVersion,
    pub from_chart: String,
    pub to_chart: String,
    pub backend: String,
    pub values_files: Vec<String>,
    pub to_values_files: Vec<String>,
    pub reason: String,
    pub verdict: Verdict,
    /// What the matrix says running established (single runs expect `survived`).
    pub expect: Verdict,
    /// One sentence on why the verdict is what it is.
    pub summary: String,
    pub steps: Vec<Step>,
    pub dataset_collections: usize,
    pub dataset_records: usize,
    pub diff: Option<DataDiff>,
    pub secrets: Vec<SecretContinuity>,
    pub notes: Vec<String>,
    pub logs: UpgradeLogs,
    pub checks: Vec<CheckResult>,
    pub adjustments: Vec<String>,
    /// Seconds the in-place upgrade took (stop A → B ready), when it ran.
    pub upgrade_seconds: Option<f64>,
    pub seconds: f64,
    /// Where B still runs (`keep`).
    pub kept_url: Option<String>,
}

impl UpgradeReport {
    /// The run disagrees with what was expected.
    pub fn failed(&self) -> bool {
        self.verdict != self.expect
    }
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}

/// The lines after the last harness start marker (the process backend appends one per
/// start), else the first lines of the log (a fresh pod's log starts with B).
/// Colour codes and the 1.x ASCII-art banner are dropped: they carry nothing.
pub fn head_of_last_start(log: &str, n: usize) -> String {
    let lines: Vec<String> = log.lines().map(strip_ansi).collect();
    let from = lines.iter().rposition(|l| l.starts_with("--- harness: start")).unwrap_or(0);
    lines[from..].iter().filter(|l| !is_banner(l)).take(n).cloned().collect::<Vec<_>>().join("\n")
}

fn is_banner(line: &str) -> bool {
    line.chars().all(|c| matches!(c, '(' | '#' | ' '))
}

/// A log excerpt without colour codes and banner lines, for reports.
pub fn clean_log(text: &str) -> String {
    text.lines().map(strip_ansi).filter(|l| !is_banner(l)).collect::<Vec<_>>().join("\n")
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            // CSI: parameters up to the final byte in @..~.
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) && d != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Secrets the user would have created for `chromadb.auth.existingSecret`.
fn external_secrets(e: &Expected) -> Secrets {
    let random = || rand::rng().sample_iter(rand::distr::Alphanumeric).take(32).map(char::from).collect::<String>();
    match &e.auth {
        Auth::Token { existing_secret: Some(n), .. } => BTreeMap::from([(n.clone(), BTreeMap::from([("token".to_string(), random())]))]),
        Auth::Basic { existing_secret: Some(n) } => {
            BTreeMap::from([(n.clone(), BTreeMap::from([("username".to_string(), "admin".to_string()), ("password".to_string(), random())]))])
        }
        _ => BTreeMap::new(),
    }
}

struct Run<'a, B: Backend> {
    backend: &'a B,
    report: UpgradeReport,
    started: Instant,
}

impl<B: Backend> Run<'_, B> {
    fn step(&mut self, name: impl Into<String>, t: Instant, result: Result<String, String>) -> bool {
        let ok = result.is_ok();
        let detail = result.unwrap_or_else(|e| e);
        self.report.steps.push(Step { name: name.into(), ok, detail, seconds: secs(t.elapsed()) });
        ok
    }

    fn end(mut self, verdict: Verdict, summary: impl Into<String>) -> UpgradeReport {
        self.report.verdict = verdict;
        self.report.summary = summary.into();
        self.report.seconds = secs(self.started.elapsed());
        self.report
    }

    async fn render(&self, helm: &Helm, chart: &Path, v: &ChromaVersion, files: &[std::path::PathBuf]) -> Result<(RenderRequest, Rendered), String> {
        let mut req = RenderRequest::new(chart).version(v.clone());
        for f in files {
            req = req.values_file(f);
        }
        let (h, r) = (helm.clone(), req.clone());
        let rendered = tokio::task::spawn_blocking(move || r.render(&h)).await.map_err(|e| format!("render task failed: {e}"))?;
        rendered.map(|r| (req, r)).map_err(|e| format!("helm template of {} for {v} failed: {e}", chart.display()))
    }
}

fn api_for(deployed: &Deployed, e: &Expected) -> Result<Api, String> {
    let cred = checks::credential(e, &deployed.secrets)?;
    Ok(Api::new(&deployed.base_url, e.api, cred))
}

/// Runs one transition. Returns B still running when `opts.keep` and it got that far.
pub async fn run_one<B: Backend>(
    backend: &B,
    helm: &Helm,
    t: &Transition,
    from_chart: &ChartCheckout,
    to_chart: &ChartCheckout,
    opts: &UpgradeOptions,
) -> (UpgradeReport, Option<Deployed>) {
    let ds = Dataset::known();
    let mut run = Run {
        backend,
        started: Instant::now(),
        report: UpgradeReport {
            values_files: t.values_files.iter().map(|p| p.display().to_string()).collect(),
            to_values_files: t.to_values_files.iter().map(|p| p.display().to_string()).collect(),
            dataset_collections: ds.collections.len(),
            dataset_records: ds.record_count(),
            ..UpgradeReport::not_run(backend.name(), t, from_chart.label.clone(), to_chart.label.clone())
        },
    };

    // Expectations and renders for both sides, before anything runs.
    let tt = Instant::now();
    let values_a = plan::merged_values(&t.values_files, "values");
    let values_b = plan::merged_values(&[t.values_files.clone(), t.to_values_files.clone()].concat(), "to_values");
    let (values_a, values_b) = match (values_a, values_b) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            run.step("read values", tt, Err(e.to_string()));
            return (run.end(Verdict::SetupFailed, "the values could not be read"), None);
        }
    };
    let expected_a = Expected::from_values(&values_a, &t.from).map_err(|e| format!("the spec refuses these values on {}: {e}", t.from));
    let expected_b = Expected::from_values(&values_b, &t.to).map_err(|e| format!("the spec refuses these values on {}: {e}", t.to));
    let (expected_a, expected_b) = match (expected_a, expected_b) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            run.step("spec model", tt, Err(e));
            return (run.end(Verdict::SetupFailed, "the values are not valid for one side"), None);
        }
    };
    let external = external_secrets(&expected_a);

    let tp = Instant::now();
    let mut prep = Ok(format!("chromadb {} and {} ready", t.from, t.to));
    for v in [&t.from, &t.to] {
        if let Err(e) = backend.prepare(v).await {
            prep = Err(format!("preparing chromadb {v}: {e}"));
            break;
        }
    }
    if !run.step("prepare", tp, prep) {
        return (run.end(Verdict::SetupFailed, "a version could not be prepared"), None);
    }

    let tr = Instant::now();
    let (req_a, rendered_a) = match run.render(helm, &from_chart.path, &t.from, &t.values_files).await {
        Ok(r) => r,
        Err(e) => {
            run.step(format!("render A ({})", t.from), tr, Err(e));
            return (run.end(Verdict::SetupFailed, "A could not be rendered"), None);
        }
    };
    run.step(format!("render A ({}, chart {})", t.from, from_chart.label), tr, Ok(format!("{} objects", rendered_a.objects.len())));
    let release_a = Release { id: t.id(), version: t.from.clone(), request: req_a, rendered: rendered_a, external_secrets: external.clone() };

    let td = Instant::now();
    let mut deployed = match backend.deploy(&release_a).await {
        Ok(d) => d,
        Err(e) => {
            run.step(format!("deploy A ({})", t.from), td, Err(e.to_string()));
            return (run.end(Verdict::SetupFailed, format!("A ({}) did not start", t.from)), None);
        }
    };
    run.step(format!("deploy A ({})", t.from), td, Ok(deployed.base_url.clone()));

    let worth_keeping = upgrade_deployed(&mut run, helm, t, to_chart, opts, &ds, &mut deployed, &expected_a, &expected_b, &external).await;
    if opts.keep && worth_keeping {
        run.report.kept_url = Some(deployed.base_url.clone());
        let r = run.end_keep();
        (r, Some(deployed))
    } else {
        if let Err(e) = backend.teardown(deployed).await {
            run.report.notes.push(format!("teardown failed: {e}"));
        }
        let r = run.end_keep();
        (r, None)
    }
}

impl<B: Backend> Run<'_, B> {
    /// The verdict was set already; just stamp the time.
    fn end_keep(mut self) -> UpgradeReport {
        self.report.seconds = secs(self.started.elapsed());
        self.report
    }

    fn set(&mut self, verdict: Verdict, summary: impl Into<String>) {
        self.report.verdict = verdict;
        self.report.summary = summary.into();
    }
}

/// Everything after A is up. Sets the verdict; returns whether B is worth keeping.
#[allow(clippy::too_many_arguments)]
async fn upgrade_deployed<B: Backend>(
    run: &mut Run<'_, B>,
    helm: &Helm,
    t: &Transition,
    to_chart: &ChartCheckout,
    opts: &UpgradeOptions,
    ds: &Dataset,
    deployed: &mut Deployed,
    expected_a: &Expected,
    expected_b: &Expected,
    external: &Secrets,
) -> bool {
    let backend = run.backend;
    let names = ds.names();

    let tw = Instant::now();
    let written = match api_for(deployed, expected_a) {
        Ok(api) => dataset::write(&api, ds).await.map(|_| format!("{} collections, {} records", ds.collections.len(), ds.record_count())).map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    if !run.step("write dataset on A", tw, written) {
        run.report.logs.a_tail = backend.logs(deployed, opts.log_lines).await;
        run.set(Verdict::SetupFailed, "the dataset could not be written on A");
        return false;
    }

    let tv = Instant::now();
    let api_a = api_for(deployed, expected_a).unwrap_or_else(|_| Api::new(&deployed.base_url, expected_a.api, None));
    let on_a = dataset::diff(ds, &dataset::read(&api_a, &names).await);
    let baseline = if on_a.intact() { Ok(format!("{} records read back exactly", on_a.survived_records())) } else { Err("A itself does not return the dataset as written".to_string()) };
    if !run.step("verify on A", tv, baseline) {
        run.report.diff = Some(on_a);
        run.set(Verdict::SetupFailed, "A did not store the dataset faithfully, so there is no baseline");
        return false;
    }

    // B's render: same release, the target chart and version, the values plus B's layers.
    let tr = Instant::now();
    let files_b = [t.values_files.clone(), t.to_values_files.clone()].concat();
    let (req_b, rendered_b) = match run.render(helm, &to_chart.path, &t.to, &files_b).await {
        Ok(r) => r,
        Err(e) => {
            run.step(format!("render B ({})", t.to), tr, Err(e));
            run.set(Verdict::SetupFailed, "B could not be rendered");
            return false;
        }
    };
    run.step(format!("render B ({}, chart {})", t.to, to_chart.label), tr, Ok(format!("{} objects", rendered_b.objects.len())));
    let mut release_b = Release { id: t.id(), version: t.to.clone(), request: req_b, rendered: rendered_b, external_secrets: external.clone() };
    let before: Secrets = deployed.secrets.iter().filter(|(n, _)| !external.contains_key(*n)).map(|(n, d)| (n.clone(), d.clone())).collect();
    if backend.runs_lookup().is_err() {
        let carried = secrets::carry_over(&mut release_b, &before);
        if !carried.is_empty() {
            run.report.notes.push(format!(
                "Secret(s) {} kept by emulating the chart's `lookup` (helm template cannot look up; a cluster would re-render the installed data). The process backend cannot prove `lookup` itself — run with --backend k3s for that.",
                carried.join(", ")
            ));
        }
    }

    run.report.logs.a_tail = clean_log(&backend.logs(deployed, opts.log_lines).await);
    let tu = Instant::now();
    let upgraded = backend.upgrade(deployed, &release_b).await;
    run.report.upgrade_seconds = Some(secs(tu.elapsed()));
    let all = backend.logs(deployed, 5000).await;
    run.report.logs.b_head = head_of_last_start(&all, opts.log_lines);
    run.report.adjustments = deployed.adjustments.clone();
    if let Err(e) = upgraded {
        run.step(format!("upgrade in place to B ({})", t.to), tu, Err(clean_log(&e.to_string())));
        let said = run.report.logs.b_head.lines().find(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("panic") || l.contains("error") || l.contains("exception")
        });
        let said = said.map_or_else(|| "see B's log".to_string(), |l| format!("it said: {}", l.trim()));
        run.set(Verdict::Incompatible, format!("{} did not start on the data {} left; {said}", t.to, t.from));
        return true;
    }
    run.step(format!("upgrade in place to B ({})", t.to), tu, Ok(format!("{} ready at {}", t.to, deployed.base_url)));

    run.report.secrets = secrets::continuity(&before, &deployed.secrets);
    let rotated: Vec<&SecretContinuity> = run.report.secrets.iter().filter(|s| matches!(s.fate, SecretFate::Changed { .. })).collect();
    let secrets_ok = rotated.is_empty();
    let ts = Instant::now();
    let secret_step = if secrets_ok {
        Ok(run.report.secrets.iter().map(|s| format!("{}: {}", s.name, if s.fate == SecretFate::Kept { "kept" } else { "not used by B" })).collect::<Vec<_>>().join("; "))
    } else {
        Err(format!("the upgrade changed generated credentials: {}", rotated.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")))
    };
    if !run.report.secrets.is_empty() {
        run.step("auth Secret kept", ts, secret_step);
    }

    let api_b = match api_for(deployed, expected_b) {
        Ok(a) => a,
        Err(e) => {
            run.step("verify on B", Instant::now(), Err(e));
            run.set(Verdict::DataLost, "B's credentials could not be derived, so nothing could be read");
            return true;
        }
    };
    if let Some(f) = opts.fault {
        let tf = Instant::now();
        let r = dataset::inject(&api_b, ds, f).await;
        run.step(format!("inject fault {}", f.as_str()), tf, r.map(|w| format!("{w} (test hook: the diff below must catch it)")));
    }
    let tb = Instant::now();
    let diff = dataset::diff(ds, &dataset::read(&api_b, &names).await);
    let intact = diff.intact();
    let line = format!(
        "{}/{} collections, {}/{} records intact",
        diff.survived_collections(),
        ds.collections.len(),
        diff.survived_records(),
        diff.expected_records()
    );
    run.step("verify dataset on B", tb, if intact { Ok(line.clone()) } else { Err(line.clone()) });
    run.report.diff = Some(diff);

    let mut failed_checks = Vec::new();
    for check in CheckName::ALL {
        let tc = Instant::now();
        let outcome = checks::run(check, backend, deployed, expected_b).await;
        if outcome.failed() {
            failed_checks.push(check.as_str());
        }
        run.report.checks.push(CheckResult { check, outcome, seconds: secs(tc.elapsed()) });
    }

    let unreadable = run.report.diff.as_ref().and_then(DataDiff::unreadable_everywhere);
    if let Some(said) = unreadable {
        run.set(Verdict::Incompatible, format!("{} started but cannot read the data {} left: {said}", t.to, t.from));
    } else if !intact {
        run.set(Verdict::DataLost, format!("{line} after {} → {}", t.from, t.to));
    } else if !failed_checks.is_empty() || !secrets_ok {
        let mut why = Vec::new();
        if !secrets_ok {
            why.push("generated credentials changed".to_string());
        }
        if !failed_checks.is_empty() {
            why.push(format!("check(s) failed on B: {}", failed_checks.join(", ")));
        }
        // What the server said the first time a check failed.
        if let Some(e) = run.report.checks.iter().find_map(|c| match &c.outcome {
            checks::Outcome::Fail { evidence, .. } => evidence.last().filter(|e| !e.ok()).cloned(),
            _ => None,
        }) {
            why.push(format!("the server answered {} {} → {} {}", e.method, e.url, e.status, e.response_body));
        }
        run.set(Verdict::ChecksFailed, format!("{line}, but {}", why.join("; ")));
    } else {
        run.set(Verdict::Survived, format!("{line}; B passes its checks"));
    }
    true
}

/// The whole matrix run.
#[derive(Debug, Serialize)]
pub struct MatrixReport {
    pub backend: String,
    pub wall_seconds: f64,
    pub prepare_seconds: f64,
    pub transitions: Vec<UpgradeReport>,
}

impl MatrixReport {
    pub fn failed(&self) -> bool {
        self.transitions.iter().any(UpgradeReport::failed)
    }
}

/// Runs every transition of `matrix`: A from `from_chart` (resolved in `repo`) or `chart`,
/// B from `chart`. Versions are prepared first so transitions time only themselves.
pub async fn run_matrix<B: Backend>(backend: &B, helm: &Helm, matrix: &UpgradeMatrix, chart: &Path, repo: &Path, opts: &UpgradeOptions) -> MatrixReport {
    let started = Instant::now();
    let mut versions: Vec<ChromaVersion> = matrix.transitions.iter().flat_map(|t| [t.from.clone(), t.to.clone()]).collect();
    versions.sort();
    versions.dedup();
    let tp = Instant::now();
    for v in &versions {
        if let Err(e) = backend.prepare(v).await {
            eprintln!("✗ preparing {v}: {e}");
        }
    }
    let prepare_seconds = secs(tp.elapsed());
    let mut opts = opts.clone();
    opts.keep = false;
    let opts = &opts;
    let results: Vec<(usize, UpgradeReport)> = futures::stream::iter(matrix.transitions.iter().enumerate())
        .map(|(i, t)| async move {
            let to_chart = ChartCheckout::dir(chart, "working tree");
            let r = match &t.from_chart {
                None => run_one(backend, helm, t, &ChartCheckout::dir(chart, "working tree"), &to_chart, opts).await.0,
                Some(spec) => match chart::resolve(spec, repo, "from_chart") {
                    Ok(from) => run_one(backend, helm, t, &from, &to_chart, opts).await.0,
                    Err(e) => failed_report(backend.name(), t, e.to_string()),
                },
            };
            if opts.progress {
                let mark = if r.failed() { "✗" } else { "✓" };
                eprintln!("{mark} {} → {}: {} (expected {}) {:.1}s", r.from, r.to, r.verdict.as_str(), r.expect.as_str(), r.seconds);
            }
            (i, r)
        })
        .buffer_unordered(opts.jobs.max(1))
        .collect()
        .await;
    let mut results = results;
    results.sort_by_key(|(i, _)| *i);
    MatrixReport { backend: backend.name().to_string(), wall_seconds: secs(started.elapsed()), prepare_seconds, transitions: results.into_iter().map(|(_, r)| r).collect() }
}

fn failed_report(backend: &str, t: &Transition, why: String) -> UpgradeReport {
    UpgradeReport {
        summary: why.clone(),
        steps: vec![Step { name: "resolve charts".into(), ok: false, detail: why, seconds: 0.0 }],
        ..UpgradeReport::not_run(backend, t, t.from_chart.clone().unwrap_or_default(), "working tree".into())
    }
}

impl UpgradeReport {
    /// A report for `t` before anything ran: set-up failed until a step says otherwise.
    fn not_run(backend: &str, t: &Transition, from_chart: String, to_chart: String) -> UpgradeReport {
        UpgradeReport {
            from: t.from.clone(),
            to: t.to.clone(),
            from_chart,
            to_chart,
            backend: backend.to_string(),
            values_files: Vec::new(),
            to_values_files: Vec::new(),
            reason: t.reason.clone(),
            verdict: Verdict::SetupFailed,
            expect: t.expect,
            summary: String::new(),
            steps: Vec::new(),
            dataset_collections: 0,
            dataset_records: 0,
            diff: None,
            secrets: Vec::new(),
            notes: Vec::new(),
            logs: UpgradeLogs::default(),
            checks: Vec::new(),
            adjustments: Vec::new(),
            upgrade_seconds: None,
            seconds: 0.0,
            kept_url: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b_head_starts_at_the_last_harness_start() {
        let log = "--- harness: start 1 of chromadb 0.6.3: x ---\nA says hi\n--- harness: start 2 of chromadb 1.0.0: y ---\nB line 1\nB line 2\nB line 3";
        assert_eq!(head_of_last_start(log, 3), "--- harness: start 2 of chromadb 1.0.0: y ---\nB line 1\nB line 2");
    }

    #[test]
    fn the_banner_and_colour_codes_are_dropped_from_the_head() {
        let log = "--- harness: start 2 ---\n\n   \u{1b}[38;5;069m((((\u{1b}[38;5;220m####\u{1b}[0m\nListening on 127.0.0.1:1";
        assert_eq!(head_of_last_start(log, 5), "--- harness: start 2 ---\nListening on 127.0.0.1:1");
    }

    #[test]
    fn without_a_marker_the_head_is_the_first_lines() {
        assert_eq!(head_of_last_start("one\ntwo\nthree", 2), "one\ntwo");
    }
}
