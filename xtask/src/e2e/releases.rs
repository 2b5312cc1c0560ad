//! `cargo xtask e2e --all-releases`: every Chroma release on PyPI (0.4.3 up, resolved at run
//! time), every deployment of fixtures/live.yaml, every check. Releases run one after another
//! while a producer makes the next releases ready (their Python environments on the process
//! backend, shared across runs through the environment cache). The run's compatibility report
//! goes to docs/compat/releases.json, the README's compatibility table is made from it, and
//! the spec model's gates are held against it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use e2e::Backend;
use e2e::releases::compat::{self, CompatReport, ReleaseResult};
use e2e::releases::gates::{self, Verdict};
use e2e::releases::pypi::{self, Provenance, Selection};
use e2e::runner::RunReport;
use futures::StreamExt;
use render::{ChromaVersion, Helm, MatrixEntry, VersionMatrix};

use crate::backends;
use crate::e2e::Flags as E2eFlags;

/// Where the run's report lives; the README table is generated from it.
pub const COMPAT_REPORT: &str = "docs/compat/releases.json";

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ReleaseFlags {
    /// Every Chroma release on PyPI from 0.4.3 up (final releases, not yanked; the list is
    /// resolved from PyPI's JSON API at run time and cached), every deployment, every check;
    /// writes docs/compat/releases.json and the README's compatibility table, and holds the
    /// spec model's version gates against the results
    #[arg(long, conflicts_with_all = ["versions", "matrix", "smoke", "combinations", "keep"])]
    pub all_releases: bool,
    /// With --all-releases: start at this release (inclusive; must be one of the releases run)
    #[arg(long, value_name = "X.Y.Z", requires = "all_releases")]
    pub since: Option<ChromaVersion>,
    /// With --all-releases: stop at this release (inclusive; must be one of the releases run)
    #[arg(long, value_name = "X.Y.Z", requires = "all_releases")]
    pub until: Option<ChromaVersion>,
    /// With --all-releases: take the release list from the cache without asking PyPI
    #[arg(long, requires = "all_releases")]
    pub offline: bool,
    /// With --all-releases: write the compatibility report here instead of docs/compat/releases.json
    /// (and leave the README alone)
    #[arg(long, value_name = "FILE.json", requires = "all_releases")]
    pub compat_report: Option<PathBuf>,
    /// With --all-releases: releases made ready ahead of the one running (environments built at once)
    #[arg(long, value_name = "N", default_value_t = 2, requires = "all_releases", value_parser = clap::value_parser!(u16).range(1..))]
    pub ahead: u16,
}

/// The release list, cut and announced; what was left out and why goes to stderr.
fn selection(flags: &ReleaseFlags) -> anyhow::Result<Selection> {
    let cache = pypi::default_cache_path()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (list, how) = runtime.block_on(pypi::resolve(&cache, flags.offline))?;
    match how {
        Provenance::Fresh => eprintln!(
            "releases: {} versions from {} (cached at {})",
            list.releases.len(),
            pypi::PYPI_JSON,
            cache.display()
        ),
        Provenance::Cached { age, why } => {
            eprintln!(
                "releases: PyPI not asked or not answering ({why}); using the list cached at {} {} h ago",
                cache.display(),
                age.as_secs() / 3600
            )
        }
    }
    let sel = pypi::select(&list.releases, flags.since.as_ref(), flags.until.as_ref())?;
    for l in &sel.left_out {
        eprintln!("  left out {}: {}", l.version, l.why);
    }
    eprintln!(
        "releases: running {} of {} ({} – {})",
        sel.run.len(),
        sel.all.len(),
        sel.run.first().map(ToString::to_string).unwrap_or_default(),
        sel.run.last().map(ToString::to_string).unwrap_or_default()
    );
    Ok(sel)
}

/// fixtures/versions.yaml plus every other release, each with the pins its two listed
/// neighbours need (a release between two that need `numpy<2` needs it too; one above the
/// last that does, in a series that does not, does not).
pub fn with_neighbour_pins(known: &VersionMatrix, releases: &[ChromaVersion]) -> VersionMatrix {
    let mut out = known.clone();
    for v in releases {
        if known.get(v).is_some() {
            continue;
        }
        let below = known
            .versions
            .iter()
            .filter(|e| e.version < *v)
            .max_by(|a, b| a.version.cmp(&b.version));
        let above = known
            .versions
            .iter()
            .filter(|e| e.version > *v)
            .min_by(|a, b| a.version.cmp(&b.version));
        let mut pins: Vec<String> = below
            .into_iter()
            .chain(above)
            .flat_map(|e| e.pins.clone())
            .collect();
        // A pin of the Python server's releases does not carry over into the Rust server's.
        if v.is_rust_server() {
            pins.retain(|_| below.is_some_and(|b| b.version.is_rust_server()));
        }
        pins.sort();
        pins.dedup();
        out.versions.push(MatrixEntry {
            version: v.clone(),
            reason: "a PyPI release the matrix does not pin (--all-releases)".into(),
            smoke: false,
            pins,
            expected_failures: Vec::new(),
        });
    }
    out.versions.sort_by(|a, b| a.version.cmp(&b.version));
    out
}

pub fn run(flags: E2eFlags) -> anyhow::Result<ExitCode> {
    let sel = selection(&flags.releases)?;
    if sel.run.is_empty() {
        bail!("--all-releases: no release to run");
    }
    let mut plan_flags = flags.clone();
    plan_flags.versions = sel.run.clone();
    let plan = crate::e2e::Plan::from_flags(&plan_flags)?;
    let tools = crate::tools::ensure()?;
    let helm = Helm::new(&tools.helm.path).context("the provisioned helm")?;
    let mut opts = plan.opts.clone();
    opts.helm_version = tools.helm.version.clone();
    let known = with_neighbour_pins(&plan.matrix, &sel.run);
    let root = crate::project_root();
    let path = flags
        .releases
        .compat_report
        .clone()
        .unwrap_or_else(|| root.join(COMPAT_REPORT));
    let template = CompatReport {
        date: today(),
        chart_version: chart_version(&plan.opts.chart)?,
        backend: String::new(),
        helm_version: opts.helm_version.clone(),
        on_pypi: sel.all.clone(),
        left_out: sel.left_out.clone(),
        jobs: usize::from(flags.jobs),
        wall_seconds: 0.0,
        parts: 1,
        releases: Vec::new(),
    };
    let checkpoint = Checkpoint {
        path: path.clone(),
        template: template.clone(),
    };
    let job = ReleasesJob {
        live: &plan.live,
        opts,
        helm,
        releases: sel.run.clone(),
        ahead: usize::from(flags.releases.ahead),
        checkpoint,
    };
    let (report, per_release) = backends::run(&flags.backend, false, &tools, &known, job)?;

    let mut code = crate::e2e::finish(&report, &flags)?;
    let compat = CompatReport {
        date: today(),
        backend: report.backend.clone(),
        wall_seconds: report.wall_seconds,
        releases: per_release,
        ..template
    };
    write_report(&path, &compat)?;
    eprintln!("compatibility report: {}", path.display());
    if flags.releases.compat_report.is_none() {
        write_readme_table(&root, &compat)?;
        eprintln!("README.md's compatibility table regenerated from {COMPAT_REPORT}");
    }
    for r in &compat.releases {
        eprintln!(
            "  {}: {:.0}s ({:.0}s to prepare)",
            r.version, r.seconds, r.prepare_seconds
        );
    }
    if !hold_gates(&compat) {
        code = ExitCode::FAILURE;
    }
    Ok(code)
}

/// Prints each gate's verdict; false when one does not match the releases.
pub fn hold_gates(compat: &CompatReport) -> bool {
    let mut ok = true;
    println!("\nversion gates of the spec model against this run:");
    for g in gates::check(compat) {
        let sides = format!(
            "{} | {}",
            g.below
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_else(|| "-".into()),
            g.gate.floor
        );
        match &g.verdict {
            Verdict::Holds => println!("  ✓ {} ({sides}): holds on both sides", g.gate.name),
            Verdict::HoldsAbove { below_reason } => println!(
                "  ✓ {} ({sides}): holds from the floor; below it nothing to observe ({below_reason})",
                g.gate.name
            ),
            Verdict::NotCovered(why) => println!(
                "  - {} ({sides}): not covered by this run ({why})",
                g.gate.name
            ),
            Verdict::Mismatch(problems) => {
                ok = false;
                for p in problems {
                    println!("  ✗ {p}");
                }
            }
        }
    }
    for (f, why) in gates::UNOBSERVED_FLOORS {
        println!("  - era floor {f}: no gate ({why})");
    }
    ok
}

fn today() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()[..10].to_string()
}

fn write_report(path: &Path, compat: &CompatReport) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, serde_json::to_string_pretty(compat)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// The report as it stands, written after every release: a run stopped part way (Ctrl-C, a
/// lost machine) leaves the releases it finished, which the table then shows as a partial run.
struct Checkpoint {
    path: PathBuf,
    template: CompatReport,
}

impl Checkpoint {
    fn save(&self, backend: &str, releases: &[ReleaseResult], wall: std::time::Duration) {
        let report = CompatReport {
            backend: backend.to_string(),
            wall_seconds: (wall.as_secs_f64() * 10.0).round() / 10.0,
            releases: releases.to_vec(),
            ..self.template.clone()
        };
        if let Err(e) = write_report(&self.path, &report) {
            eprintln!("warning: could not save the report so far: {e:#}");
        }
    }
}

fn chart_version(chart: &Path) -> anyhow::Result<String> {
    let path = chart.join("Chart.yaml");
    let doc: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    )?;
    doc.get("version")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .with_context(|| format!("{} has no version", path.display()))
}

/// The README's compatibility section made from `compat`.
pub fn write_readme_table(root: &Path, compat: &CompatReport) -> anyhow::Result<()> {
    let path = root.join("README.md");
    let readme = std::fs::read_to_string(&path).context("reading README.md")?;
    let updated = compat::splice(&readme, &compat::table(compat)).map_err(anyhow::Error::msg)?;
    if updated != readme {
        std::fs::write(&path, updated).context("writing README.md")?;
    }
    Ok(())
}

/// The table as the committed report makes it (for `cargo xtask docs` and the sync test).
pub fn committed_table(root: &Path) -> anyhow::Result<String> {
    let path = root.join(COMPAT_REPORT);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let report = CompatReport::parse(&text)
        .with_context(|| format!("{} is not a compatibility report", path.display()))?;
    Ok(compat::table(&report))
}

struct ReleasesJob<'a> {
    live: &'a e2e::scenario::LivePlan,
    opts: e2e::runner::RunOptions,
    helm: Helm,
    releases: Vec<ChromaVersion>,
    ahead: usize,
    checkpoint: Checkpoint,
}

impl backends::Job for ReleasesJob<'_> {
    type Output = (RunReport, Vec<ReleaseResult>);

    async fn run<B: Backend>(self, backend: &B) -> anyhow::Result<Self::Output> {
        let ReleasesJob {
            live,
            opts,
            helm,
            releases,
            ahead,
            checkpoint,
        } = self;
        let started = Instant::now();
        let total = releases.len();
        // The producer makes releases ready in order, `ahead` at once, and hands each over;
        // the channel's bound keeps it from running further ahead than that.
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<(ChromaVersion, f64, Option<String>)>(ahead);
        let producer = async move {
            let mut ready = futures::stream::iter(releases)
                .map(|v| async move {
                    let t = Instant::now();
                    let r = backend.prepare(&v).await;
                    (v, t.elapsed().as_secs_f64(), r.err().map(|e| e.to_string()))
                })
                .buffered(ahead);
            while let Some(item) = ready.next().await {
                if tx.send(item).await.is_err() {
                    break;
                }
            }
        };
        let consumer = async {
            let mut report: Option<RunReport> = None;
            let mut results = Vec::new();
            let mut n = 0;
            while let Some((v, prepare, err)) = rx.recv().await {
                n += 1;
                match &err {
                    Some(e) => {
                        eprintln!("[{n}/{total}] {v}: preparing failed ({prepare:.0}s): {e}")
                    }
                    None => {
                        eprintln!("[{n}/{total}] {v}: ready ({prepare:.0}s to prepare); deploying")
                    }
                }
                let t = Instant::now();
                let r =
                    e2e::runner::run(backend, &helm, live, std::slice::from_ref(&v), &opts).await;
                let seconds = (t.elapsed().as_secs_f64() * 10.0).round() / 10.0;
                let cells = compat::cells_of(&r, &v);
                let failed = cells
                    .iter()
                    .filter(|c| c.status == compat::Status::Fail)
                    .count();
                eprintln!(
                    "[{n}/{total}] {} {v}: {} cells, {failed} failed ({seconds:.0}s; {:.0} min so far)",
                    if failed > 0 { "✗" } else { "✓" },
                    cells.len(),
                    started.elapsed().as_secs_f64() / 60.0
                );
                results.push(ReleaseResult {
                    version: v.clone(),
                    seconds,
                    prepare_seconds: (prepare * 10.0).round() / 10.0,
                    cells,
                });
                checkpoint.save(backend.name(), &results, started.elapsed());
                match report.as_mut() {
                    None => report = Some(r),
                    Some(all) => crate::e2e::absorb(all, r),
                }
            }
            (report, results)
        };
        let ((), (report, results)) = tokio::join!(producer, consumer);
        let mut report = report.context("no release ran")?;
        report.wall_seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        Ok((report, results))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn v(s: &str) -> ChromaVersion {
        s.parse().unwrap()
    }

    #[test]
    fn readme_compat_table_is_up_to_date() {
        let root = crate::project_root();
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        let table = committed_table(&root).unwrap();
        assert!(
            table.contains("| Releases |"),
            "the committed report made no table:\n{table}"
        );
        assert!(
            compat::splice(&readme, &table).unwrap() == readme,
            "README.md's compatibility table is not the one {COMPAT_REPORT} makes: run `cargo xtask docs`"
        );
    }

    #[test]
    fn unlisted_releases_take_their_listed_neighbours_pins_but_the_rust_server_takes_none_from_python()
     {
        let known = VersionMatrix::parse(
            "versions:\n  - {version: \"0.4.14\", reason: a}\n  - {version: \"0.4.24\", reason: b, pins: [\"numpy<2\"]}\n  - {version: \"0.5.0\", reason: c, pins: [\"numpy<2\"]}\n  - {version: \"0.5.15\", reason: d}\n  - {version: \"0.6.3\", reason: d}\n  - {version: \"1.0.0\", reason: e}\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        let m = with_neighbour_pins(&known, &[v("0.4.20"), v("0.5.3"), v("0.6.0"), v("1.0.2")]);
        let pins = |s: &str| m.get(&v(s)).unwrap().pins.clone();
        assert_eq!(pins("0.4.20"), ["numpy<2"]);
        assert_eq!(pins("0.5.3"), ["numpy<2"]);
        assert!(pins("0.6.0").is_empty() && pins("1.0.2").is_empty());
        assert_eq!(
            pins("0.4.24"),
            ["numpy<2"],
            "listed releases keep their own pins"
        );
    }

    #[rstest::rstest]
    #[case::since_without_all_releases(&["e2e", "--since", "0.5.0"], "--all-releases")]
    #[case::all_releases_with_named_versions(&["e2e", "--all-releases", "--version", "1.0.0"], "--version")]
    #[case::a_bound_that_is_no_version(&["e2e", "--all-releases", "--since", "latest"], "MAJOR.MINOR.PATCH, 0.4.3 or later")]
    #[case::a_bound_below_the_oldest_release(&["e2e", "--all-releases", "--until", "0.4.2"], "older than the oldest supported release 0.4.3")]
    fn bad_release_flags_are_refused_naming_what_is_accepted(
        #[case] args: &[&str],
        #[case] says: &str,
    ) {
        let err =
            crate::Cli::try_parse_from(std::iter::once("cargo xtask").chain(args.iter().copied()))
                .err()
                .expect("refused");
        assert!(err.to_string().contains(says), "{err}");
    }
}
