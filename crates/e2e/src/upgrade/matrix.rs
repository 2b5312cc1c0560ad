//! The whole matrix of fixtures/upgrades.yaml, transitions run `jobs` at a time.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use futures::StreamExt;
use indicatif::ProgressBar;
use render::{ChromaVersion, Helm};

use super::chart::{self, ChartCheckout};
use super::plan::{Transition, UpgradeMatrix};
use super::report::{MatrixReport, Step, StepStatus, UpgradeReport};
use super::run::{run_one, secs};
use super::{UpgradeOptions, signature};
use crate::backend::{Backend, BackendError};

/// Runs every transition of `matrix`: A from `from_chart` (resolved in `repo`) or `chart`,
/// B from `chart`. Versions are prepared first so transitions time only themselves.
pub async fn run_matrix<B: Backend>(
    backend: &B,
    helm: &Helm,
    matrix: &UpgradeMatrix,
    chart: &Path,
    repo: &Path,
    opts: &UpgradeOptions,
) -> MatrixReport {
    let started = Instant::now();
    let mut versions: Vec<ChromaVersion> = matrix
        .transitions
        .iter()
        .flat_map(|t| [t.from.clone(), t.to.clone()])
        .collect();
    versions.sort();
    versions.dedup();
    let tp = Instant::now();
    // A version that cannot be prepared fails each transition it is part of, with the error.
    let mut unprepared: BTreeMap<ChromaVersion, BackendError> = BTreeMap::new();
    for v in &versions {
        if let Err(e) = backend.prepare(v).await {
            unprepared.insert(v.clone(), e);
        }
    }
    let unprepared = &unprepared;
    let prepare_seconds = secs(tp.elapsed());
    let bar = if opts.progress {
        ProgressBar::new(matrix.transitions.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    let bar = &bar;
    let mut opts = opts.clone();
    opts.keep = false;
    let opts = &opts;
    let mut results: Vec<(usize, UpgradeReport)> =
        futures::stream::iter(matrix.transitions.iter().enumerate())
            .map(|(i, t)| async move {
                let to_chart = ChartCheckout::dir(chart, "working tree");
                let failed_prepare = [&t.from, &t.to]
                    .into_iter()
                    .find_map(|v| unprepared.get(v).map(|e| (v, e)));
                let r = match (failed_prepare, &t.from_chart) {
                    (Some((v, e)), _) => failed_report(
                        backend.name(),
                        t,
                        "prepare",
                        format!("preparing chromadb {v} failed: {}", crate::text::chain(e)),
                    ),
                    (None, None) => {
                        run_one(
                            backend,
                            helm,
                            t,
                            &ChartCheckout::dir(chart, "working tree"),
                            &to_chart,
                            opts,
                        )
                        .await
                        .0
                    }
                    (None, Some(spec)) => match chart::resolve(spec, repo, "from_chart") {
                        Ok(from) => run_one(backend, helm, t, &from, &to_chart, opts).await.0,
                        Err(e) => failed_report(
                            backend.name(),
                            t,
                            "resolve charts",
                            crate::text::chain(&e),
                        ),
                    },
                };
                let mark = if r.failed() { "✗" } else { "✓" };
                crate::progress::line(
                    bar,
                    opts.progress,
                    format!(
                        "{mark} {} → {}: {} (expected {}) {:.1}s",
                        r.from,
                        r.to,
                        r.verdict.as_str(),
                        r.expect.as_str(),
                        r.seconds
                    ),
                );
                bar.inc(1);
                (i, r)
            })
            .buffer_unordered(opts.jobs.max(1))
            .collect()
            .await;
    bar.finish_and_clear();
    results.sort_by_key(|(i, _)| *i);
    MatrixReport {
        backend: backend.name().to_string(),
        wall_seconds: secs(started.elapsed()),
        prepare_seconds,
        transitions: results.into_iter().map(|(_, r)| r).collect(),
    }
}

fn failed_report(backend: &str, t: &Transition, step: &str, why: String) -> UpgradeReport {
    let mut r = UpgradeReport {
        summary: why.clone(),
        steps: vec![Step {
            name: step.into(),
            status: StepStatus::Fail,
            detail: why,
            seconds: 0.0,
        }],
        ..UpgradeReport::not_run(
            backend,
            t,
            t.from_chart.clone().unwrap_or_default(),
            "working tree".into(),
        )
    };
    r.mismatch = signature::mismatch(
        r.expect,
        r.signature.as_ref(),
        r.verdict,
        &r.summary,
        &Default::default(),
        &[],
    );
    r
}
