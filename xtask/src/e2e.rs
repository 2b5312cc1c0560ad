//! `cargo xtask e2e`: deploy the chart for Chroma versions on a backend and check the live
//! API against the spec model. Progress on stderr, the version × check matrix on stdout,
//! failures with their evidence, optional JSON/JUnit; non-zero exit when any check failed.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use e2e::Backend;
use e2e::checks::CheckName;
use e2e::cluster::{ClusterKind, ClusterOptions};
use e2e::process::{ProcessBackend, ProcessOptions};
use e2e::runner::{RunOptions, RunReport};
use e2e::scenario::LivePlan;
use e2e::venv::VenvCache;
use render::{ChromaVersion, Helm, VersionMatrix};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// k3s when a Docker daemon answers, else process
    Auto,
    /// Real Chroma servers as local processes (no Kubernetes)
    Process,
    /// A throwaway k3s cluster in Docker
    K3s,
    /// The cluster $KUBECONFIG points at
    Kubeconfig,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Flags {
    /// A Chroma version to test (repeatable), e.g. --version 0.4.3 --version 1.5.0
    #[arg(long = "version", value_name = "X.Y.Z")]
    pub versions: Vec<String>,
    /// Every version in fixtures/versions.yaml
    #[arg(long)]
    pub matrix: bool,
    /// The versions marked `smoke: true` in fixtures/versions.yaml
    #[arg(long)]
    pub smoke: bool,
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    pub backend: BackendKind,
    /// The chart to test (any checkout with the same values contract)
    #[arg(long, value_name = "PATH")]
    pub chart: Option<PathBuf>,
    /// Only this deployment of fixtures/live.yaml (repeatable)
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    /// Only this check (repeatable): api-surface, auth, cors, payload, persistence, reset
    #[arg(long = "check", value_name = "NAME")]
    pub checks: Vec<String>,
    /// Deployments run at once
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Leave the deployments running and print how to reach them (Ctrl-C removes them)
    #[arg(long)]
    pub keep: bool,
    /// Write the results as JSON
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,
    /// Write the results as JUnit XML
    #[arg(long, value_name = "FILE.xml")]
    pub junit: Option<PathBuf>,
    /// The deployments file
    #[arg(long, value_name = "PATH", hide = true)]
    pub plan: Option<PathBuf>,
}

impl Flags {
    /// What `cargo xtask test` runs: the smoke versions on the process backend.
    pub fn smoke() -> Flags {
        Flags {
            versions: Vec::new(),
            matrix: false,
            smoke: true,
            backend: BackendKind::Process,
            chart: None,
            scenarios: Vec::new(),
            checks: Vec::new(),
            jobs: 2,
            keep: false,
            report: None,
            junit: None,
            plan: None,
        }
    }
}

/// The smoke subset for `cargo xtask test`, with the provisioned tools.
pub fn smoke(tools: &crate::tools::Toolset) -> anyhow::Result<crate::test::Tally> {
    let (_, report) = execute(Flags::smoke(), tools.helm.path.clone(), tools.uv.path.clone())?;
    let mut tally = crate::test::Tally::default();
    for d in &report.deployments {
        tally.failed += d.error.is_some() as usize;
        for c in &d.checks {
            match c.outcome {
                e2e::checks::Outcome::Pass { .. } => tally.passed += 1,
                e2e::checks::Outcome::Fail { .. } => tally.failed += 1,
                e2e::checks::Outcome::Skipped { .. } => {}
            }
        }
    }
    Ok(tally)
}

fn tool(var: &str) -> anyhow::Result<PathBuf> {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => bail!("${var} is not set: point it at the {} binary (cargo xtask tools provisions one)", var.to_lowercase()),
    }
}

pub fn run(flags: Flags) -> anyhow::Result<ExitCode> {
    let helm = tool("HELM")?;
    let uv = tool("UV")?;
    Ok(execute(flags, helm, uv)?.0)
}

fn execute(flags: Flags, helm_path: PathBuf, uv_path: PathBuf) -> anyhow::Result<(ExitCode, ReportSummary)> {
    let root = crate::project_root();
    let matrix_path = root.join("fixtures/versions.yaml");
    let matrix = VersionMatrix::load(&matrix_path).with_context(|| format!("loading {}", matrix_path.display()))?;

    let mut versions: Vec<ChromaVersion> = Vec::new();
    for raw in &flags.versions {
        let v: ChromaVersion = raw.parse().map_err(|e| anyhow::anyhow!("--version {raw}: {e}"))?;
        if matrix.get(&v).is_none() {
            eprintln!("note: {v} is not in fixtures/versions.yaml; it runs without pins");
        }
        versions.push(v);
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
    if flags.jobs == 0 {
        bail!("--jobs 0: at least one deployment must run at a time");
    }

    let check_filter: Option<BTreeSet<CheckName>> = if flags.checks.is_empty() {
        None
    } else {
        Some(flags.checks.iter().map(|c| c.parse::<CheckName>().map_err(|e| anyhow::anyhow!("--check: {e}"))).collect::<anyhow::Result<_>>()?)
    };

    let plan_path = flags.plan.clone().unwrap_or_else(|| root.join("fixtures/live.yaml"));
    let mut plan = LivePlan::load(&plan_path, &root.join("fixtures/values"))?;
    if !flags.scenarios.is_empty() {
        let valid = plan.names().join(", ");
        for s in &flags.scenarios {
            if !plan.deployments.iter().any(|d| &d.name == s) {
                bail!("--scenario {s}: no such deployment in {} (valid: {valid})", plan_path.display());
            }
        }
        plan.deployments.retain(|d| flags.scenarios.contains(&d.name));
    }

    let chart = flags.chart.clone().unwrap_or_else(|| root.join("charts/chromadb"));
    if !chart.join("Chart.yaml").is_file() {
        bail!("--chart {}: no Chart.yaml there", chart.display());
    }
    let helm = Helm::new(&helm_path).context("the helm from $HELM")?;
    let opts = RunOptions { chart: chart.clone(), jobs: flags.jobs, checks: check_filter, keep: flags.keep, progress: true };

    let kind = match flags.backend {
        BackendKind::Auto => match e2e::cluster::docker_daemon() {
            Ok(_) => BackendKind::K3s,
            Err(why) => {
                eprintln!("backend auto: no Docker daemon ({why}); using the process backend");
                BackendKind::Process
            }
        },
        k => k,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async {
        match kind {
            BackendKind::Process | BackendKind::Auto => {
                let venvs = VenvCache::new(&uv_path, VenvCache::default_root().map_err(|e| anyhow::anyhow!("{e}"))?)
                    .map_err(|e| anyhow::anyhow!("the uv from $UV: {e}"))?;
                let pins = matrix.versions.iter().map(|e| (e.version.clone(), e.pins.clone())).collect();
                let backend = ProcessBackend::new(venvs, pins, ProcessOptions::default());
                let report = e2e::runner::run(&backend, &helm, &plan, &versions, &opts).await;
                let code = finish(&report, &flags)?;
                if flags.keep && !report.kept.is_empty() {
                    print_kept(&report, &backend);
                    eprintln!("deployments kept running; press Ctrl-C to stop them and remove their files");
                    loop {
                        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                    }
                }
                let summary = ReportSummary::of(&report);
                for d in report.kept {
                    let _ = backend.teardown(d).await;
                }
                Ok((code, summary))
            }
            BackendKind::K3s | BackendKind::Kubeconfig => {
                let ck = if kind == BackendKind::K3s { ClusterKind::K3s } else { ClusterKind::Kubeconfig };
                let mut copts = ClusterOptions::new(&helm_path);
                copts.keep = flags.keep;
                let backend = e2e::cluster::start(ck, copts).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                let report = e2e::runner::run(&backend, &helm, &plan, &versions, &opts).await;
                let code = finish(&report, &flags)?;
                let summary = ReportSummary::of(&report);
                if flags.keep {
                    for d in &report.kept {
                        println!("kept {} → {} (namespace {})", d.id, d.base_url, backend.namespace_of(&d.id));
                    }
                } else {
                    for d in report.kept {
                        let _ = backend.teardown(d).await;
                    }
                }
                backend.shutdown().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                Ok((code, summary))
            }
        }
    })
}

/// The counts `cargo xtask test` tallies.
pub struct ReportSummary {
    pub deployments: Vec<e2e::runner::DeploymentResult>,
}

impl ReportSummary {
    fn of(r: &RunReport) -> Self {
        ReportSummary { deployments: r.deployments.clone() }
    }
}

fn print_kept(report: &RunReport, backend: &ProcessBackend) {
    for d in &report.kept {
        let root = backend.root_of(&d.id).map(|p| p.display().to_string()).unwrap_or_default();
        println!("kept {}: {}  (files and server log under {root}; credentials in the Secrets of its render)", d.id, d.base_url);
        for (name, _) in &d.secrets {
            println!("  Secret {name} (keys only shown): {}", d.secrets[name].keys().cloned().collect::<Vec<_>>().join(", "));
        }
    }
}

/// Prints the matrix and failures, writes the files, and picks the exit code.
fn finish(report: &RunReport, flags: &Flags) -> anyhow::Result<ExitCode> {
    print!("{}", e2e::report::matrix(report));
    let failures = e2e::report::failures(report);
    if !failures.is_empty() {
        println!("\n{failures}");
    }
    if let Some(p) = &flags.report {
        std::fs::write(p, e2e::report::json(report)?).with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &flags.junit {
        std::fs::write(p, e2e::report::junit(report)?).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(if report.failed() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
