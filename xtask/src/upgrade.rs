//! `cargo xtask upgrade`: reproduce an upgrade. Deploy A, write the known dataset, upgrade in
//! place to B on the same data, diff record by record, run the conformance checks on B.
//! The report goes to stdout (steps, per-collection diff, logs around the upgrade); the exit
//! code is non-zero unless everything survived (or, with --matrix, unless every transition
//! ended the way fixtures/upgrades.yaml says running it did).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use e2e::Backend;
use e2e::upgrade::plan::Via;
use e2e::upgrade::{
    self, ChartCheckout, Fault, Transition, UpgradeMatrix, UpgradeOptions, Verdict, chart, plan,
};
use render::{Expected, Helm, VersionMatrix};

use crate::backends::{self, BackendFlags};

#[derive(Debug, Clone, clap::Args)]
pub struct Flags {
    /// The Chroma version installed first (A), e.g. 0.6.3
    #[arg(long, value_name = "X.Y.Z", required_unless_present = "matrix")]
    pub from: Option<String>,
    /// The Chroma version upgraded to (B); defaults to --from with --from-chart
    #[arg(long, value_name = "X.Y.Z")]
    pub to: Option<String>,
    /// Run every transition of fixtures/upgrades.yaml instead of one
    #[arg(long, conflicts_with_all = ["from", "to", "from_chart", "values", "to_values"])]
    pub matrix: bool,
    /// With --matrix: run only the row FROM:TO (repeatable), with its expectation
    #[arg(long, value_name = "FROM:TO", requires = "matrix")]
    pub select: Vec<String>,
    #[command(flatten)]
    pub backend: BackendFlags,
    /// A values file layered on both sides (repeatable, in helm's order)
    #[arg(long = "values", value_name = "FILE")]
    pub values: Vec<PathBuf>,
    /// A values file layered on B only, after --values (a values change made with the upgrade)
    #[arg(long = "to-values", value_name = "FILE")]
    pub to_values: Vec<PathBuf>,
    /// Install A from this chart: a directory or a git ref of this repository (e.g. HEAD~3)
    #[arg(long, value_name = "PATH|GIT-REF")]
    pub from_chart: Option<String>,
    /// The chart upgraded to (default: charts/chromadb of the working tree)
    #[arg(long, value_name = "PATH")]
    pub chart: Option<PathBuf>,
    /// Allow --from newer than --to (a rollback)
    #[arg(long)]
    pub allow_downgrade: bool,
    /// How the data moves: `in-place` (helm upgrade on A's volume) or `backup` (A's backup
    /// CronJob dumps to its claim, A is uninstalled, a fresh release of B restores from that
    /// claim in its post-install hook); a downgrade needs no --allow-downgrade via backup
    #[arg(long, value_name = "in-place|backup", default_value = "in-place", value_parser = parse_via)]
    pub via: Via,
    /// Delete A's StatefulSet with --cascade=orphan before upgrading, keeping its pod and
    /// claims (the migration step from a chart whose StatefulSet differs in immutable fields)
    #[arg(long)]
    pub orphan_statefulset: bool,
    /// Write the report as JSON
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,
    /// Leave B running after the report (Ctrl-C removes it)
    #[arg(long)]
    pub keep: bool,
    /// Transitions run at once with --matrix (at least 1)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
    /// Test hook: tamper with the data after the upgrade (delete-records, change-record,
    /// drop-collection) to prove the diff and the exit code catch it, or make B's rendered
    /// pod invalid (invalid-pod-b) to prove an expected failure does not accept another cause
    #[arg(long, value_name = "FAULT", hide = true)]
    pub inject_fault: Option<Fault>,
}

/// What the command will do, validated before any tool or server is touched.
enum Job {
    One {
        transition: Box<Transition>,
        from_chart: ChartCheckout,
        to_chart: ChartCheckout,
    },
    Matrix {
        matrix: UpgradeMatrix,
        chart: PathBuf,
    },
}

fn parse_via(s: &str) -> Result<Via, String> {
    match s {
        "in-place" => Ok(Via::InPlace),
        "backup" => Ok(Via::Backup),
        other => Err(format!(
            "`{other}` is not a way to move the data; use in-place or backup"
        )),
    }
}

fn chart_dir(flag: Option<&Path>, root: &Path) -> anyhow::Result<PathBuf> {
    let chart = flag
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.join(chart::CHART_IN_REPO));
    if !chart.join("Chart.yaml").is_file() {
        bail!("--chart {}: no Chart.yaml there", chart.display());
    }
    Ok(chart)
}

fn plan_job(flags: &Flags, root: &Path, known: &VersionMatrix) -> anyhow::Result<Job> {
    let chart = chart_dir(flags.chart.as_deref(), root)?;
    if flags.matrix {
        let path = root.join("fixtures/upgrades.yaml");
        let matrix = UpgradeMatrix::load(&path, &root.join("fixtures/values"), known)?
            .select(&flags.select)?;
        return Ok(Job::Matrix { matrix, chart });
    }
    let raw_from = flags
        .from
        .as_deref()
        .context("--from X.Y.Z is required (or --matrix)")?;
    let from = plan::version("--from", raw_from, known)?;
    let to = match (&flags.to, &flags.from_chart) {
        (Some(raw), _) => plan::version("--to", raw, known)?,
        (None, Some(_)) => from.clone(),
        (None, None) => bail!(
            "--to X.Y.Z is required (it may only be left out with --from-chart, to upgrade the chart alone)"
        ),
    };
    let via_backup = flags.via == Via::Backup;
    if via_backup && (flags.from_chart.is_some() || flags.orphan_statefulset) {
        bail!(
            "--via backup installs B as a fresh release of this chart; --from-chart and --orphan-statefulset belong to in-place upgrades"
        );
    }
    // A fresh release restoring a backup is no rollback of A's data files.
    plan::direction(
        &from,
        &to,
        flags.allow_downgrade || via_backup,
        "--allow-downgrade",
    )?;
    if from == to && flags.from_chart.is_none() && flags.to_values.is_empty() && !via_backup {
        bail!(
            "--from {from} --to {to}: nothing changes; give another --to, a --from-chart or --to-values"
        );
    }
    let values_a = plan::merged_values(&flags.values, "--values")?;
    let values_b = plan::merged_values(
        &[flags.values.clone(), flags.to_values.clone()].concat(),
        "--to-values",
    )?;
    Expected::from_values(&values_a, &from)
        .with_context(|| format!("--values: the spec refuses them on {from}"))?;
    Expected::from_values(&values_b, &to)
        .with_context(|| format!("--values/--to-values: the spec refuses them on {to}"))?;
    let from_chart = match &flags.from_chart {
        Some(spec) => chart::resolve(spec, root, "--from-chart")?,
        None => ChartCheckout::dir(&chart, chart.display().to_string()),
    };
    let to_chart = ChartCheckout::dir(&chart, chart.display().to_string());
    let transition = Transition {
        from,
        to,
        reason: "command line".into(),
        values_files: flags.values.clone(),
        to_values_files: flags.to_values.clone(),
        from_chart: flags.from_chart.clone(),
        expect: Verdict::Survived,
        signature: None,
        orphan_statefulset: flags.orphan_statefulset,
        via: flags.via,
    };
    Ok(Job::One {
        transition: Box::new(transition),
        from_chart,
        to_chart,
    })
}

pub fn run(flags: Flags) -> anyhow::Result<ExitCode> {
    let root = crate::project_root();
    let known = backends::version_matrix(&root)?;
    let job = plan_job(&flags, &root, &known)?;
    let tools = crate::tools::ensure()?;
    let helm = Helm::new(&tools.helm.path).context("the provisioned helm")?;
    let opts = UpgradeOptions {
        keep: flags.keep,
        fault: flags.inject_fault,
        jobs: usize::from(flags.jobs),
        ..UpgradeOptions::default()
    };

    backends::run(
        &flags.backend,
        flags.keep,
        &tools,
        &known,
        UpgradeJob {
            helm,
            job,
            root: root.clone(),
            opts,
            flags: &flags,
        },
    )
}

struct UpgradeJob<'a> {
    helm: Helm,
    job: Job,
    root: PathBuf,
    opts: UpgradeOptions,
    flags: &'a Flags,
}

impl backends::Job for UpgradeJob<'_> {
    type Output = ExitCode;

    async fn run<B: Backend>(self, backend: &B) -> anyhow::Result<ExitCode> {
        execute(
            backend, &self.helm, self.job, &self.root, &self.opts, self.flags,
        )
        .await
    }
}

async fn execute<B: Backend>(
    backend: &B,
    helm: &Helm,
    job: Job,
    root: &Path,
    opts: &UpgradeOptions,
    flags: &Flags,
) -> anyhow::Result<ExitCode> {
    match job {
        Job::Matrix { matrix, chart } => {
            let report = upgrade::run_matrix(backend, helm, &matrix, &chart, root, opts).await;
            print!("{}", upgrade::report::matrix_text(&report));
            write_json(flags, &report)?;
            if let Some(why) = upgrade::report::nothing_proven(&report) {
                eprintln!("error: the upgrade matrix proved nothing: {why}");
                return Ok(ExitCode::FAILURE);
            }
            Ok(if report.failed() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Job::One {
            transition,
            from_chart,
            to_chart,
        } => {
            let (report, kept) =
                upgrade::run_one(backend, helm, &transition, &from_chart, &to_chart, opts).await;
            print!("{}", upgrade::report::text(&report));
            write_json(flags, &report)?;
            if let Some(d) = kept {
                eprintln!(
                    "B is kept running at {}; press Ctrl-C to stop it and remove its files",
                    d.base_url
                );
                let _ = tokio::signal::ctrl_c().await;
                let _ = backend.teardown(d).await;
            }
            drop(from_chart);
            Ok(if report.verdict == Verdict::Survived {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn write_json<T: serde::Serialize>(flags: &Flags, report: &T) -> anyhow::Result<()> {
    if let Some(p) = &flags.report {
        std::fs::write(p, upgrade::report::json(report)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
