//! Runs the matrix: for each version × deployment, derive the spec's expectations, render,
//! deploy, run the checks, tear down — with bounded parallelism and progress on stderr.
//! Generic over [`Backend`], so the cluster backends reuse all of it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use render::{ChromaVersion, Expected, Helm};
use serde::Serialize;

use crate::backend::{Backend, Deployed};
use crate::checks::{self, CheckName, Outcome};
use crate::prepare::{PrepareError, Ready, Source, prepare};
use crate::scenario::{Deployment, LivePlan};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub chart: PathBuf,
    /// The helm that rendered and installed, as it names itself (`v4.1.4`), for the reports.
    pub helm_version: String,
    pub jobs: usize,
    /// Only these checks (all when `None`).
    pub checks: Option<BTreeSet<CheckName>>,
    /// Leave deployments running after their checks.
    pub keep: bool,
    pub progress: bool,
    /// The failures fixtures/versions.yaml expects, by release and check.
    pub expected_failures: BTreeMap<(ChromaVersion, CheckName), render::ExpectedFailure>,
}

/// One check's result on one deployment.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub check: CheckName,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub seconds: f64,
}

/// One deployment of one version.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentResult {
    pub version: ChromaVersion,
    pub deployment: String,
    pub values_files: Vec<String>,
    pub expected: Option<Expected>,
    /// What the backend changed from the render.
    pub adjustments: Vec<String>,
    /// Why the deployment as a whole failed (render, deploy); every check it would have run
    /// counts as failed.
    pub error: Option<String>,
    /// Why the deployment was not run (e.g. the spec refuses these values here and helm did too).
    pub skipped: Option<String>,
    pub checks: Vec<CheckResult>,
    /// The checks this deployment was to run (all of them count as failed when `error` is set).
    pub planned: Vec<CheckName>,
    pub seconds: f64,
    /// Where to reach it when kept (`--keep`).
    pub kept_url: Option<String>,
    /// The spans its OTLP receiver got (deployments with `<otlp-receiver>`), for plots.
    #[serde(skip)]
    pub spans: Vec<crate::otlp::ReceivedSpan>,
}

impl DeploymentResult {
    pub fn failed(&self) -> bool {
        self.error.is_some() || self.checks.iter().any(|c| c.outcome.failed())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionTiming {
    pub version: ChromaVersion,
    pub prepare_seconds: f64,
    pub deploy_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    pub backend: String,
    pub chart: String,
    pub helm_version: String,
    pub wall_seconds: f64,
    pub timings: Vec<VersionTiming>,
    pub deployments: Vec<DeploymentResult>,
    /// Deployments left running (`--keep`).
    #[serde(skip)]
    pub kept: Vec<Deployed>,
}

impl RunReport {
    pub fn failed(&self) -> bool {
        self.deployments.iter().any(DeploymentResult::failed)
            || self.timings.iter().any(|t| t.prepare_seconds < 0.0)
    }
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

/// The checks a deployment runs under the filters.
pub fn selected(d: &Deployment, filter: &Option<BTreeSet<CheckName>>) -> Vec<CheckName> {
    d.checks
        .iter()
        .copied()
        .filter(|c| filter.as_ref().is_none_or(|f| f.contains(c)))
        .collect()
}

pub async fn run<B: Backend>(
    backend: &B,
    helm: &Helm,
    plan: &LivePlan,
    versions: &[ChromaVersion],
    opts: &RunOptions,
) -> RunReport {
    let started = Instant::now();
    let units: Vec<(ChromaVersion, &Deployment)> = versions
        .iter()
        .flat_map(|v| {
            plan.deployments
                .iter()
                .filter(|d| !selected(d, &opts.checks).is_empty())
                .map(move |d| (v.clone(), d))
        })
        .collect();
    let bar = if opts.progress {
        ProgressBar::new((versions.len() + units.len()) as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(250));

    // Versions first (environments, images), so deployments time only themselves.
    let mut timings: BTreeMap<ChromaVersion, VersionTiming> = BTreeMap::new();
    let mut prepare_errors: BTreeMap<ChromaVersion, String> = BTreeMap::new();
    let prepared: Vec<_> = futures::stream::iter(versions.iter().cloned())
        .map(|v| {
            let bar = bar.clone();
            async move {
                bar.set_message(format!("preparing {v}"));
                let t = Instant::now();
                let r = backend.prepare(&v).await;
                bar.inc(1);
                (v, t.elapsed(), r)
            }
        })
        .buffer_unordered(opts.jobs.max(1))
        .collect()
        .await;
    for (v, took, r) in prepared {
        if let Err(e) = r {
            crate::progress::line(&bar, opts.progress, format!("✗ {v}: preparing failed: {e}"));
            prepare_errors.insert(v.clone(), crate::text::chain(&e));
        }
        timings.insert(
            v.clone(),
            VersionTiming {
                version: v,
                prepare_seconds: secs(took),
                deploy_seconds: 0.0,
            },
        );
    }

    let results: Vec<(DeploymentResult, Option<Deployed>)> = futures::stream::iter(units)
        .map(|(v, d)| {
            let bar = bar.clone();
            let prep = prepare_errors.get(&v).cloned();
            async move {
                bar.set_message(format!("{v} {}", d.name));
                let (r, kept) = match prep {
                    Some(e) => (
                        failed_unit(
                            &v,
                            d,
                            None,
                            format!("preparing chromadb {v} failed: {e}"),
                            Instant::now(),
                        ),
                        None,
                    ),
                    None => run_unit(backend, helm, &v, d, opts).await,
                };
                let mark = if r.failed() {
                    "✗"
                } else if r.skipped.is_some() {
                    "-"
                } else {
                    "✓"
                };
                crate::progress::line(
                    &bar,
                    opts.progress,
                    format!("{mark} {v} {} ({:.1}s)", d.name, r.seconds),
                );
                bar.inc(1);
                (r, kept)
            }
        })
        .buffer_unordered(opts.jobs.max(1))
        .collect()
        .await;
    bar.finish_and_clear();

    let mut deployments = Vec::new();
    let mut kept = Vec::new();
    for (r, k) in results {
        if let Some(t) = timings.get_mut(&r.version) {
            t.deploy_seconds = secs(Duration::from_secs_f64(t.deploy_seconds + r.seconds));
        }
        deployments.push(r);
        kept.extend(k);
    }
    let order: Vec<&str> = plan.names();
    deployments.sort_by(|a, b| {
        (
            a.version.clone(),
            order.iter().position(|n| *n == a.deployment),
        )
            .cmp(&(
                b.version.clone(),
                order.iter().position(|n| *n == b.deployment),
            ))
    });
    RunReport {
        backend: backend.name().to_string(),
        chart: opts.chart.display().to_string(),
        helm_version: opts.helm_version.clone(),
        wall_seconds: secs(started.elapsed()),
        timings: timings.into_values().collect(),
        deployments,
        kept,
    }
}

fn failed_unit(
    v: &ChromaVersion,
    d: &Deployment,
    expected: Option<Expected>,
    error: String,
    t: Instant,
) -> DeploymentResult {
    let planned = d
        .checks
        .iter()
        .copied()
        .filter(|c| expected.as_ref().is_none_or(|e| c.applies(e).is_ok()))
        .collect();
    DeploymentResult {
        version: v.clone(),
        deployment: d.name.clone(),
        values_files: d
            .values_files
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        expected,
        adjustments: Vec::new(),
        error: Some(error),
        skipped: None,
        checks: Vec::new(),
        planned,
        seconds: secs(t.elapsed()),
        kept_url: None,
        spans: Vec::new(),
    }
}

fn release_id(v: &ChromaVersion, d: &Deployment) -> String {
    format!("{}-{}", v.to_string().replace(['.', '+'], "-"), d.name)
}

async fn run_unit<B: Backend>(
    backend: &B,
    helm: &Helm,
    v: &ChromaVersion,
    d: &Deployment,
    opts: &RunOptions,
) -> (DeploymentResult, Option<Deployed>) {
    let t = Instant::now();
    let planned = selected(d, &opts.checks);
    let src = Source {
        chart: &opts.chart,
        version: v,
        values_files: &d.values_files,
        values: d.values.clone(),
        extra: None,
        runtime: &d.runtime,
        secrets: d.secrets(),
        checks: &planned,
        id: release_id(v, d),
        harness_address: backend.harness_address(),
        namespace: backend.namespace_for(&release_id(v, d)),
    };
    let Ready {
        release,
        expected,
        prepared: mut checks_have,
        ..
    } = match prepare(helm, src).await {
        Ok(r) => r,
        // The spec refuses these values on this version: helm must refuse them too, naming
        // the key; then there is nothing to deploy.
        Err(e) if e.refused_alike() => {
            let mut r = failed_unit(v, d, None, String::new(), t);
            r.error = None;
            r.skipped = Some(format!("{e} and helm refused them too"));
            return (r, None);
        }
        Err(e @ PrepareError::SpecRefused { .. }) => {
            let how = match &e {
                PrepareError::SpecRefused {
                    spec,
                    helm: Some(h),
                    ..
                } => format!("; helm refused them but without naming `{}`: {h}", spec.key),
                _ => ", yet the chart rendered them".to_string(),
            };
            return (failed_unit(v, d, None, format!("{e}{how}"), t), None);
        }
        Err(e) => return (failed_unit(v, d, None, crate::text::chain(&e), t), None),
    };
    // A server none of whose checks applies would prove nothing: report each SKIP, deploy nothing.
    if !planned.is_empty() && planned.iter().all(|c| c.applies(&expected).is_err()) {
        let mut r = failed_unit(v, d, Some(expected.clone()), String::new(), t);
        r.error = None;
        r.planned = planned.clone();
        r.checks = planned
            .iter()
            .map(|&check| CheckResult {
                check,
                outcome: Outcome::Skipped {
                    reason: check.applies(&expected).err().unwrap_or_default(),
                },
                seconds: 0.0,
            })
            .collect();
        r.skipped = Some(format!(
            "no check of this deployment applies to Chroma {v}; not deployed"
        ));
        if let Some(rx) = checks_have.otlp.take() {
            rx.stop().await;
        }
        return (r, None);
    }
    let mut deployed = match backend.deploy(&release).await {
        Ok(dep) => dep,
        Err(e) => {
            if let Some(rx) = checks_have.otlp.take() {
                rx.stop().await;
            }
            if let crate::BackendError::Unsupported { reason, backend } = e {
                // Not proven is not passed: every check of the deployment is SKIP with the reason.
                let why = format!("not run on the {backend} backend: {reason}");
                let mut r = failed_unit(v, d, Some(expected), String::new(), t);
                r.error = None;
                r.checks = r
                    .planned
                    .iter()
                    .map(|&check| CheckResult {
                        check,
                        outcome: Outcome::Skipped {
                            reason: why.clone(),
                        },
                        seconds: 0.0,
                    })
                    .collect();
                r.skipped = Some(why);
                return (r, None);
            }
            return (
                failed_unit(v, d, Some(expected), format!("deploy failed: {e}"), t),
                None,
            );
        }
    };
    let mut results = Vec::new();
    for &check in &planned {
        let ct = Instant::now();
        let outcome = checks::run(check, backend, &mut deployed, &expected, &checks_have).await;
        let outcome =
            checks::against_expectation(outcome, opts.expected_failures.get(&(v.clone(), check)));
        results.push(CheckResult {
            check,
            outcome,
            seconds: secs(ct.elapsed()),
        });
    }
    let mut r = DeploymentResult {
        version: v.clone(),
        deployment: d.name.clone(),
        values_files: d
            .values_files
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        expected: Some(expected),
        adjustments: deployed.adjustments.clone(),
        error: None,
        skipped: None,
        checks: results,
        planned,
        seconds: 0.0,
        kept_url: None,
        spans: Vec::new(),
    };
    let kept = if opts.keep {
        r.kept_url = Some(deployed.base_url.clone());
        Some(deployed)
    } else {
        if let Err(e) = backend.teardown(deployed).await {
            r.error = Some(format!("teardown failed: {e}"));
        }
        None
    };
    if let Some(rx) = checks_have.otlp.take() {
        r.spans = rx.spans();
        rx.stop().await;
    }
    r.seconds = secs(t.elapsed());
    (r, kept)
}
