//! `cargo xtask e2e`: deploy the chart for Chroma versions on a backend and check the live
//! API against the spec model. Progress on stderr, the version × check matrix on stdout,
//! failures with their evidence, optional JSON/JUnit; non-zero exit when any check failed.

pub(crate) mod releases;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use e2e::Backend;
use e2e::checks::CheckName;
use e2e::runner::{RunOptions, RunReport};
use e2e::scenario::LivePlan;
use e2e::upgrade::{self, UpgradeMatrix, UpgradeOptions};
use futures::StreamExt;
use render::{ChromaVersion, Helm, VersionMatrix};

use crate::backends::{self, BackendFlags, BackendKind};
use crate::tally::Tally;
use crate::tools::Toolset;

#[derive(Debug, Clone, clap::Args)]
pub struct Flags {
    /// A Chroma version to test (repeatable), e.g. --version 0.4.3 --version 1.5.0
    #[arg(long = "version", value_name = "X.Y.Z")]
    pub versions: Vec<ChromaVersion>,
    /// Every version in fixtures/versions.yaml, then the upgrade matrix of fixtures/upgrades.yaml
    #[arg(long)]
    pub matrix: bool,
    /// The versions marked `smoke: true` in fixtures/versions.yaml
    #[arg(long)]
    pub smoke: bool,
    #[command(flatten)]
    pub backend: BackendFlags,
    /// The chart to test (any checkout with the same values contract)
    #[arg(long, value_name = "PATH")]
    pub chart: Option<PathBuf>,
    /// Only this deployment of fixtures/live.yaml (repeatable)
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    /// Only this check (repeatable): api-surface, auth, cors, payload, persistence, chart-test, telemetry, metrics, faults-sigkill, faults-scale, reset (an unknown name lists them all)
    #[arg(long = "check", value_name = "NAME")]
    pub checks: Vec<CheckName>,
    /// Deployments run at once (at least 1)
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
    /// Leave the deployments running and print how to reach them (Ctrl-C removes them)
    #[arg(long)]
    pub keep: bool,
    /// Write the results as JSON (with --matrix, the upgrade matrix goes to FILE.upgrades.json)
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,
    /// Write the results as JUnit XML
    #[arg(long, value_name = "FILE.xml")]
    pub junit: Option<PathBuf>,
    /// Draw the request latency per endpoint from the spans the telemetry check received
    /// (unfiltered `telemetry` deployments, one series per version) as an SVG
    #[arg(long, value_name = "FILE.svg")]
    pub latency_plot: Option<PathBuf>,
    /// Draw request rate and p95 latency per endpoint, as Prometheus held them during the
    /// `metrics` check, as an SVG (one row per version)
    #[arg(long, value_name = "FILE.svg")]
    pub metrics_plot: Option<PathBuf>,
    /// The deployments file
    #[arg(long, value_name = "PATH", hide = true)]
    pub plan: Option<PathBuf>,
    /// Instead of fixtures/live.yaml, each version's pairwise combination array
    /// (crates/e2e/src/combinations.rs): every pair of feature settings deployed together
    #[arg(long)]
    pub combinations: bool,
    /// Besides fixtures/live.yaml, the first N rows of each version's combination array
    #[arg(long, value_name = "N", hide = true, conflicts_with = "combinations")]
    pub combination_rows: Option<usize>,
    #[command(flatten)]
    pub releases: crate::e2e::releases::ReleaseFlags,
}

impl Flags {
    /// What `cargo xtask test` runs: the smoke versions on the local cluster.
    pub fn smoke() -> Flags {
        Flags {
            versions: Vec::new(),
            matrix: false,
            smoke: true,
            backend: BackendFlags {
                backend: BackendKind::Local,
                k3s_image: None,
                k3s_preload: Vec::new(),
            },
            chart: None,
            scenarios: Vec::new(),
            checks: Vec::new(),
            jobs: 2,
            keep: false,
            report: None,
            junit: None,
            latency_plot: None,
            metrics_plot: None,
            plan: None,
            combinations: false,
            // One pairwise row per smoke version: the features meet in the test command too.
            combination_rows: Some(1),
            releases: crate::e2e::releases::ReleaseFlags::default(),
        }
    }
}

/// The smoke subset for `cargo xtask test` on `backend`: every smoke version on the local
/// cluster; on the process backend, which is kept for the all-releases sweep, the oldest and
/// newest smoke versions only (its own code paths, not the chart, are what it adds). Each
/// passed check and each failed check or deployment counts once.
pub fn smoke(tools: &Toolset, backend: BackendKind) -> anyhow::Result<Tally> {
    let mut flags = Flags::smoke();
    flags.backend.backend = backend;
    let mut plan = Plan::from_flags(&flags)?;
    if backend == BackendKind::Process {
        plan.keep_ends();
    }
    let (_, report) = run_plan(plan, &flags, tools)?;
    let mut tally = Tally::of_report(&report);
    // A smoke that proved nothing fails the test command even with no FAIL in it.
    tally.failed += e2e::report::nothing_proven(&report).is_some() as usize;
    Ok(tally)
}

pub fn run(flags: Flags) -> anyhow::Result<ExitCode> {
    flags.releases.refuse_without_all_releases()?;
    if flags.releases.all_releases {
        return crate::e2e::releases::run(flags);
    }
    // Flags are checked before anything is provisioned or started.
    let plan = Plan::from_flags(&flags)?;
    let tools = crate::tools::ensure()?;
    Ok(run_plan(plan, &flags, &tools)?.0)
}

/// Everything the flags asked for, validated.
pub(crate) struct Plan {
    root: PathBuf,
    pub(crate) matrix: VersionMatrix,
    versions: Vec<ChromaVersion>,
    pub(crate) live: LivePlan,
    pub(crate) opts: RunOptions,
    upgrades: Option<UpgradeMatrix>,
    /// Each version's combination deployments (`--combinations`, or the smoke's first rows).
    combinations: Vec<(ChromaVersion, LivePlan)>,
}

impl Plan {
    /// Only the oldest and the newest of the planned versions (and their combination rows).
    fn keep_ends(&mut self) {
        let ends: Vec<ChromaVersion> = [self.versions.first(), self.versions.last()]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        self.versions.retain(|v| ends.contains(v));
        self.combinations.retain(|(v, _)| ends.contains(v));
    }

    /// Whether some deployment of the plan runs `check` (the builds it needs are made first).
    fn runs(&self, check: CheckName) -> bool {
        let wanted = self.opts.checks.as_ref().is_none_or(|c| c.contains(&check));
        let listed = self
            .live
            .deployments
            .iter()
            .chain(
                self.combinations
                    .iter()
                    .flat_map(|(_, p)| p.deployments.iter()),
            )
            .any(|d| d.checks.contains(&check));
        wanted && listed
    }

    pub(crate) fn from_flags(flags: &Flags) -> anyhow::Result<Plan> {
        let root = crate::project_root();
        let matrix = backends::version_matrix(&root)?;

        let mut versions: Vec<ChromaVersion> = Vec::new();
        for v in &flags.versions {
            if matrix.get(v).is_none() && !flags.releases.all_releases {
                eprintln!(
                    "note: {v} is not in fixtures/versions.yaml; it runs without pins (and with the known failures of the ranges covering it)"
                );
            }
            versions.push(v.clone());
        }
        if flags.matrix {
            versions.extend(matrix.all().cloned());
        }
        if flags.smoke {
            versions.extend(matrix.smoke().cloned());
        }
        versions.sort();
        versions.dedup();
        if versions.is_empty() {
            bail!("nothing to test: give --version X.Y.Z (repeatable), --smoke or --matrix");
        }
        let checks: Option<BTreeSet<CheckName>> =
            (!flags.checks.is_empty()).then(|| flags.checks.iter().copied().collect());

        let plan_path = flags
            .plan
            .clone()
            .unwrap_or_else(|| root.join("fixtures/live.yaml"));
        let mut live = LivePlan::load(&plan_path, &root.join("fixtures/values"))?;
        let mut combinations = combination_plans(&root, &versions, flags)?;
        if flags.combinations {
            live.deployments.clear();
        }
        if !flags.scenarios.is_empty() {
            // Combination rows (`combo-01`, …) are deployments too.
            let mut valid: Vec<&str> = live.names();
            valid.extend(combinations.iter().flat_map(|(_, p)| p.names()));
            valid.sort();
            valid.dedup();
            for s in &flags.scenarios {
                if !valid.contains(&s.as_str()) {
                    bail!(
                        "--scenario {s}: no such deployment in {} or the combination arrays (valid: {})",
                        plan_path.display(),
                        valid.join(", ")
                    );
                }
            }
            live.deployments
                .retain(|d| flags.scenarios.contains(&d.name));
            for (_, p) in &mut combinations {
                p.deployments.retain(|d| flags.scenarios.contains(&d.name));
            }
        } else if flags.smoke && flags.versions.is_empty() && !flags.matrix {
            // The quick subset: deployments marked `smoke: false` (the slow faults family)
            // run when versions or the matrix are named.
            live.deployments.retain(|d| d.smoke);
        }

        let chart = flags
            .chart
            .clone()
            .unwrap_or_else(|| root.join("charts/chromadb"));
        if !chart.join("Chart.yaml").is_file() {
            bail!("--chart {}: no Chart.yaml there", chart.display());
        }
        // The upgrade matrix belongs to the full matrix run only: filters select live checks.
        let upgrades = (flags.matrix && flags.scenarios.is_empty() && flags.checks.is_empty())
            .then(|| {
                UpgradeMatrix::load(
                    &root.join("fixtures/upgrades.yaml"),
                    &root.join("fixtures/values"),
                    &matrix,
                )
            })
            .transpose()
            .context("loading fixtures/upgrades.yaml")?;
        // The helm version is filled in once the tools are provisioned (after the flags are checked).
        // Every record is checked for a known check name, also of versions this run leaves out;
        // a release the matrix does not pin takes the known failures of the ranges covering it.
        for k in &matrix.known_failures {
            k.failure.check.parse::<CheckName>().map_err(|err| {
                anyhow::anyhow!(
                    "fixtures/versions.yaml, known failure {} – {}: {err}",
                    k.from,
                    k.until
                )
            })?;
        }
        let mut expected_failures = std::collections::BTreeMap::new();
        let unpinned = versions.iter().filter(|v| matrix.get(v).is_none());
        let records = matrix
            .versions
            .iter()
            .map(|e| (e.version.clone(), e.expected_failures.clone()))
            .chain(unpinned.map(|v| (v.clone(), matrix.known_for(v))));
        for (version, failures) in records {
            for x in failures {
                let check: CheckName = x.check.parse().map_err(|err| {
                    anyhow::anyhow!("fixtures/versions.yaml, {version}: expected failure: {err}")
                })?;
                expected_failures.insert((version.clone(), check), x);
            }
        }
        let opts = RunOptions {
            chart,
            helm_version: String::new(),
            jobs: usize::from(flags.jobs),
            checks,
            keep: flags.keep,
            progress: true,
            expected_failures,
        };
        Ok(Plan {
            root,
            matrix,
            versions,
            live,
            opts,
            upgrades,
            combinations,
        })
    }
}

fn run_plan(
    mut plan: Plan,
    flags: &Flags,
    tools: &Toolset,
) -> anyhow::Result<(ExitCode, RunReport)> {
    let helm = Helm::new(&tools.helm.path).context("the provisioned helm")?;
    plan.opts.helm_version = tools.helm.version.clone();
    // A constant: a `metrics` check missing from the table fails the build here.
    const METRICS: CheckName = CheckName::named("metrics");
    if plan.runs(METRICS) {
        crate::obstools::ensure_and_export()?;
        if let Some(svg) = &flags.metrics_plot {
            // SAFETY: before the runtime and its threads start.
            unsafe { std::env::set_var(e2e::checks::metrics::PLOT_ENV, svg) };
        }
    }
    let matrix = plan.matrix.clone();
    let job = LiveJob { plan, helm, flags };
    backends::run(&flags.backend, flags.keep, tools, &matrix, job)
}

struct LiveJob<'a> {
    plan: Plan,
    helm: Helm,
    flags: &'a Flags,
}

impl backends::Job for LiveJob<'_> {
    type Output = (ExitCode, RunReport);

    async fn run<B: Backend>(self, backend: &B) -> anyhow::Result<Self::Output> {
        let LiveJob { plan, helm, flags } = self;
        let started = std::time::Instant::now();
        let mut report =
            e2e::runner::run(backend, &helm, &plan.live, &plan.versions, &plan.opts).await;
        // Each version has its own array: versions run side by side, `--jobs` deployments at
        // once in all, a line per version as it ends.
        let arrays: Vec<_> = plan
            .combinations
            .iter()
            .filter(|(_, p)| !p.deployments.is_empty())
            .collect();
        let side_by_side = usize::from(flags.jobs).min(arrays.len()).max(1);
        let one_each = RunOptions {
            jobs: (usize::from(flags.jobs) / side_by_side).max(1),
            progress: plan.opts.progress && side_by_side == 1,
            ..plan.opts.clone()
        };
        let runs: Vec<RunReport> = futures::stream::iter(arrays)
            .map(|(v, combos)| {
                let (helm, opts) = (&helm, &one_each);
                async move {
                    eprintln!(
                        "combinations on {v}: deploying {}",
                        combos.deployments.len()
                    );
                    let r = e2e::runner::run(backend, helm, combos, std::slice::from_ref(v), opts)
                        .await;
                    let failed = r.deployments.iter().filter(|d| d.failed()).count();
                    eprintln!(
                        "{} combinations on {v}: {} deployed, {failed} failed ({:.0}s)",
                        if failed > 0 { "✗" } else { "✓" },
                        r.deployments.len(),
                        r.wall_seconds
                    );
                    r
                }
            })
            .buffer_unordered(side_by_side)
            .collect()
            .await;
        for r in runs {
            absorb(&mut report, r);
        }
        report.wall_seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        let mut code = finish(&report, flags)?;
        if let Some(upgrades) = &plan.upgrades {
            let opts = UpgradeOptions {
                jobs: usize::from(flags.jobs),
                ..UpgradeOptions::default()
            };
            let up = upgrade::run_matrix(
                backend,
                &helm,
                upgrades,
                &plan.opts.chart,
                &plan.root,
                &opts,
            )
            .await;
            print!("\n{}", upgrade::report::matrix_text(&up));
            // Beside the live report: FILE.json → FILE.upgrades.json.
            let path = flags
                .report
                .as_deref()
                .map(|p| p.with_extension("upgrades.json"));
            write_file(path.as_deref(), || Ok(upgrade::report::json(&up)?))?;
            if up.failed() {
                code = ExitCode::FAILURE;
            }
            if let Some(why) = upgrade::report::nothing_proven(&up) {
                eprintln!("error: the upgrade matrix proved nothing: {why}");
                code = ExitCode::FAILURE;
            }
        }
        if flags.keep && !report.kept.is_empty() {
            print_kept(&report, backend);
            if !backend.kept_outlive_the_harness() {
                eprintln!(
                    "deployments kept running; press Ctrl-C to stop them and remove their files"
                );
                let _ = tokio::signal::ctrl_c().await;
            }
        } else {
            for d in std::mem::take(&mut report.kept) {
                let _ = backend.teardown(d).await;
            }
        }
        Ok((code, report))
    }
}

/// The combination array's deployments per version, when asked for; arrays are sized on stderr.
fn combination_plans(
    root: &Path,
    versions: &[ChromaVersion],
    flags: &Flags,
) -> anyhow::Result<Vec<(ChromaVersion, LivePlan)>> {
    let limit = match (flags.combinations, flags.combination_rows) {
        (true, _) => None,
        (false, Some(n)) => Some(n),
        (false, None) => return Ok(Vec::new()),
    };
    let fragments = e2e::combinations::Fragments::load(&root.join("fixtures/values"))?;
    let mut out = Vec::new();
    for v in versions {
        let array = fragments
            .array(v)
            .with_context(|| format!("the combination array for {v}"))?;
        let plan = fragments.plan(&array, limit);
        eprintln!(
            "combinations on {v}: {} of {} pairwise rows, {} pairs refused by the model",
            plan.deployments.len(),
            array.rows.len(),
            array.excluded.len()
        );
        for x in &array.excluded {
            eprintln!(
                "  excluded {} with {}: {}",
                e2e::combinations::setting_name(x.pair.0),
                e2e::combinations::setting_name(x.pair.1),
                x.reason
            );
        }
        out.push((v.clone(), plan));
    }
    Ok(out)
}

/// One run's results added to another's (the combination runs go one version at a time).
pub(crate) fn absorb(report: &mut RunReport, more: RunReport) {
    for t in more.timings {
        match report.timings.iter_mut().find(|x| x.version == t.version) {
            Some(x) => {
                x.prepare_seconds += t.prepare_seconds;
                x.deploy_seconds += t.deploy_seconds;
            }
            None => report.timings.push(t),
        }
    }
    report.deployments.extend(more.deployments);
    report.kept.extend(more.kept);
}

fn print_kept<B: Backend>(report: &RunReport, backend: &B) {
    for d in &report.kept {
        let place = backend.whereabouts(d).unwrap_or_default();
        println!("kept {}: {}  {place}", d.id, d.base_url);
        for (name, data) in &d.secrets {
            println!(
                "  Secret {name} (keys only): {}",
                data.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
}

/// Prints the matrix and failures, writes the files, and picks the exit code.
pub(crate) fn finish(report: &RunReport, flags: &Flags) -> anyhow::Result<ExitCode> {
    print!("{}", e2e::report::matrix(report));
    let failures = e2e::report::failures(report);
    if !failures.is_empty() {
        println!("\n{failures}");
    }
    write_file(flags.report.as_deref(), || Ok(e2e::report::json(report)?))?;
    write_file(flags.junit.as_deref(), || Ok(e2e::report::junit(report)?))?;
    write_file(flags.latency_plot.as_deref(), || {
        let series: Vec<(String, Vec<e2e::otlp::ReceivedSpan>)> = report
            .deployments
            .iter()
            .filter(|d| d.deployment == "telemetry" && !d.spans.is_empty())
            .map(|d| (d.version.to_string(), d.spans.clone()))
            .collect();
        e2e::latency_plot::svg("Chroma request latency per endpoint, from the spans of one `cargo xtask e2e --check telemetry` run", &series)
            .context("--latency-plot")
    })?;
    if let Some(why) = e2e::report::nothing_proven(report) {
        eprintln!("error: nothing was proven: {why}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn write_file(
    path: Option<&Path>,
    content: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    if let Some(p) = path {
        std::fs::write(p, content()?).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smoke_leaves_out_deployments_marked_smoke_false_and_named_versions_run_them() {
        let smoke = Plan::from_flags(&Flags::smoke()).unwrap();
        let names: Vec<&str> = smoke.live.names();
        assert!(
            !names.contains(&"faults") && names.contains(&"reset-cors-token"),
            "{names:?}"
        );
        let named = Plan::from_flags(&Flags {
            smoke: false,
            versions: vec!["1.5.0".parse().unwrap()],
            ..Flags::smoke()
        })
        .unwrap();
        assert!(
            named.live.names().contains(&"faults"),
            "{:?}",
            named.live.names()
        );
    }
}
