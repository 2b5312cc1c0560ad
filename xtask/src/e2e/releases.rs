//! `cargo xtask e2e --all-releases`: every Chroma release on PyPI (0.4.3 up, resolved at run
//! time), every deployment of fixtures/live.yaml, every check. Releases run one after another
//! while a producer makes the next releases ready (their Python environments on the process
//! backend, shared across runs through the environment cache). Each release's results are
//! saved the moment it finishes (target/compat-run/<chart-version>/<release>.json), and a
//! later run under the same key skips the releases saved: the compatibility report
//! (docs/compat/releases.json), the README's table and the gates are made from every release
//! saved, whichever run measured it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use e2e::Backend;
use e2e::releases::compat::{self, CompatReport, ReleaseResult};
use e2e::releases::gates::{self, Verdict};
use e2e::releases::pypi::{self, Provenance, Selection};
use e2e::releases::saved::{self, RunKey, SavedRelease, Store};
use e2e::runner::RunReport;
use futures::StreamExt;
use render::{ChromaVersion, Helm, MatrixEntry, VersionMatrix};

use crate::backends;
use crate::e2e::Flags as E2eFlags;

/// Where the run's report lives; the README table is generated from it.
pub const COMPAT_REPORT: &str = "docs/compat/releases.json";
/// Reports measured under an earlier key, kept (and shown) rather than overwritten.
pub const EARLIER_REPORTS: &str = "docs/compat/earlier";
/// Where each release's results are saved as it finishes, per chart version.
pub const SAVED_RUNS: &str = "target/compat-run";

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
    /// With --all-releases: discard the results saved for this chart version (target/compat-run/)
    /// and measure every selected release again. Without it a run resumes: releases already
    /// saved under the same chart content, backend, checks and values are not run again, and
    /// saved results under another of those are refused, naming what changed
    #[arg(long, requires = "all_releases")]
    pub fresh: bool,
}

impl ReleaseFlags {
    /// The flags that only mean something with --all-releases, refused without it. (clap's
    /// `requires` lets them through when an argument that conflicts with --all-releases is
    /// given, such as --smoke or --version.)
    pub fn refuse_without_all_releases(&self) -> anyhow::Result<()> {
        if self.all_releases {
            return Ok(());
        }
        let given: Vec<&str> = [
            (self.since.is_some(), "--since"),
            (self.until.is_some(), "--until"),
            (self.offline, "--offline"),
            (self.compat_report.is_some(), "--compat-report"),
            (self.fresh, "--fresh"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if !given.is_empty() {
            bail!(
                "{} only apply with --all-releases (a run over PyPI's releases); drop them or run `cargo xtask e2e --all-releases`",
                given.join(", ")
            );
        }
        Ok(())
    }
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
            expected_failures: known.known_for(v),
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
    let root = crate::project_root();
    let runs = root.join(SAVED_RUNS);
    let chart_version = chart_version(&plan.opts.chart)?;
    let chart_hash = saved::content_hash(&plan.opts.chart)
        .with_context(|| format!("hashing the chart at {}", plan.opts.chart.display()))?;
    let (checks, values_hash) = RunKey::of_plan(&plan.live, &plan.opts.checks);
    if flags.releases.fresh {
        let n = saved::discard(&runs, &chart_version)?;
        eprintln!("--fresh: {n} saved release results of chart {chart_version} discarded");
    }
    note_other_chart_versions(&runs, &chart_version);
    let into_committed = flags.releases.compat_report.is_none();
    let path = flags
        .releases
        .compat_report
        .clone()
        .unwrap_or_else(|| root.join(COMPAT_REPORT));
    // The committed report is results saved too (a fresh checkout resumes from it), when it
    // was measured under this run's key; shard reports (--compat-report) hold only their own.
    let committed = if into_committed && !flags.releases.fresh {
        read_report(&path).ok()
    } else {
        None
    };

    let tools = crate::tools::ensure()?;
    let helm = Helm::new(&tools.helm.path).context("the provisioned helm")?;
    let mut opts = plan.opts.clone();
    opts.helm_version = tools.helm.version.clone();
    let known = with_neighbour_pins(&plan.matrix, &sel.run);
    let job = ReleasesJob {
        live: &plan.live,
        opts,
        helm,
        selection: sel.run.clone(),
        ahead: usize::from(flags.releases.ahead),
        runs,
        key: PartialKey {
            chart_version,
            chart_hash,
            checks,
            values_hash,
        },
        committed,
        jobs: usize::from(flags.jobs),
    };
    let Done { report, key, saved } = backends::run(&flags.backend, false, &tools, &known, job)?;

    let mut code = match &report {
        Some(r) => crate::e2e::finish(r, &flags)?,
        None => ExitCode::SUCCESS,
    };
    let compat = CompatReport::from_saved(&key, &saved, sel.all.clone(), sel.left_out.clone());
    if into_committed && let Some(moved) = archive_if_other_key(&root, &compat)? {
        eprintln!("{moved}");
    }
    write_report(&path, &compat)?;
    eprintln!(
        "compatibility report: {} ({} releases measured under this key)",
        path.display(),
        compat.releases.len()
    );
    if into_committed {
        write_readme_table(&root)?;
        eprintln!("README.md's compatibility table regenerated from {COMPAT_REPORT}");
    }
    for r in &compat.releases {
        eprintln!(
            "  {} ({}): {:.0}s ({:.0}s to prepare)",
            r.version, r.date, r.seconds, r.prepare_seconds
        );
    }
    let left = saved::still_to_run(&sel.all, &saved);
    if !left.is_empty() {
        eprintln!(
            "{} of the {} releases on PyPI not measured under this key yet; `cargo xtask e2e --all-releases{}` runs them (saved ones are skipped)",
            left.len(),
            sel.all.len(),
            if flags.backend.backend == backends::BackendKind::Auto {
                String::new()
            } else {
                format!(" --backend {}", key.backend)
            }
        );
    }
    if !hold_gates(&compat) {
        code = ExitCode::FAILURE;
    }
    Ok(code)
}

/// Saved results of other chart versions are not this run's: say so, once, naming them.
fn note_other_chart_versions(runs: &Path, chart_version: &str) {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().to_string();
        if name != chart_version && e.path().is_dir() {
            eprintln!(
                "note: the results saved under {} are of chart {name}, not of this chart {chart_version}: not used",
                e.path().display()
            );
        }
    }
}

/// Before the committed report is replaced by one measured under another key, it moves to
/// docs/compat/earlier/ (shown under the current table): no measured row is dropped unseen.
/// Says what moved and why, when it did.
fn archive_if_other_key(root: &Path, compat: &CompatReport) -> anyhow::Result<Option<String>> {
    let path = root.join(COMPAT_REPORT);
    let Ok(old) = read_report(&path) else {
        return Ok(None);
    };
    if old.key == compat.key {
        return Ok(None);
    }
    let why = match (&old.key, &compat.key) {
        (Some(then), Some(now)) => now.differences(then).join(", and "),
        _ => "no key recorded in it (measured before runs were keyed)".to_string(),
    };
    let dir = root.join(EARLIER_REPORTS);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let to = dir.join(format!("{}-chart-{}.json", old.date, old.chart_version));
    if to.exists() {
        bail!(
            "{COMPAT_REPORT} was measured under another key ({why}) and {} exists already: move one of them aside",
            to.display()
        );
    }
    std::fs::rename(&path, &to)
        .with_context(|| format!("moving {} to {}", path.display(), to.display()))?;
    Ok(Some(format!(
        "{COMPAT_REPORT} ({} releases) was measured under another key ({why}): kept as {}",
        old.releases.len(),
        to.display()
    )))
}

fn read_report(path: &Path) -> anyhow::Result<CompatReport> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    CompatReport::parse(&text)
        .with_context(|| format!("{} is not a compatibility report", path.display()))
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
    now()[..10].to_string()
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn write_report(path: &Path, compat: &CompatReport) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, serde_json::to_string_pretty(compat)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
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

/// The README's compatibility section made from the committed reports.
pub fn write_readme_table(root: &Path) -> anyhow::Result<()> {
    let path = root.join("README.md");
    let readme = std::fs::read_to_string(&path).context("reading README.md")?;
    let updated = compat::splice(&readme, &committed_table(root)?).map_err(anyhow::Error::msg)?;
    if updated != readme {
        std::fs::write(&path, updated).context("writing README.md")?;
    }
    Ok(())
}

/// The section the committed reports make: the current one's table, then each earlier
/// report's, newest first (for `cargo xtask docs` and the sync test).
pub fn committed_table(root: &Path) -> anyhow::Result<String> {
    let current = read_report(&root.join(COMPAT_REPORT))?;
    let mut earlier = Vec::new();
    if let Ok(entries) = std::fs::read_dir(root.join(EARLIER_REPORTS)) {
        for e in entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        {
            earlier.push(read_report(&e.path())?);
        }
    }
    earlier.sort_by(|a, b| b.date.cmp(&a.date));
    Ok(compat::section(&current, &earlier))
}

/// The run's key but for the backend, which only the job knows (`auto` decides at start).
struct PartialKey {
    chart_version: String,
    chart_hash: String,
    checks: Vec<String>,
    values_hash: String,
}

/// What a run leaves: this invocation's live report (none when every release was saved
/// already), the key, and every release saved under it.
struct Done {
    report: Option<RunReport>,
    key: RunKey,
    saved: Vec<SavedRelease>,
}

struct ReleasesJob<'a> {
    live: &'a e2e::scenario::LivePlan,
    opts: e2e::runner::RunOptions,
    helm: Helm,
    selection: Vec<ChromaVersion>,
    ahead: usize,
    runs: PathBuf,
    key: PartialKey,
    committed: Option<CompatReport>,
    jobs: usize,
}

/// The committed report's releases as saved results, when it was measured under `key`.
fn adopt(committed: Option<CompatReport>, key: &RunKey) -> Vec<SavedRelease> {
    let Some(c) = committed.filter(|c| c.key.as_ref() == Some(key)) else {
        return Vec::new();
    };
    let invocation = format!("{COMPAT_REPORT} of {}", c.date);
    c.releases
        .into_iter()
        .map(|result| SavedRelease {
            key: key.clone(),
            helm_version: c.helm_version.clone(),
            jobs: c.jobs,
            invocation: invocation.clone(),
            result,
        })
        .collect()
}

impl backends::Job for ReleasesJob<'_> {
    type Output = Done;

    async fn run<B: Backend>(self, backend: &B) -> anyhow::Result<Self::Output> {
        let ReleasesJob {
            live,
            opts,
            helm,
            selection,
            ahead,
            runs,
            key,
            committed,
            jobs,
        } = self;
        let key = RunKey {
            chart_version: key.chart_version,
            chart_hash: key.chart_hash,
            backend: backend.name().to_string(),
            checks: key.checks,
            values_hash: key.values_hash,
        };
        let (store, mut saved) =
            Store::open(&runs, key.clone()).context("resuming the saved results")?;
        for r in adopt(committed, &key) {
            if !saved.iter().any(|s| s.result.version == r.result.version) {
                saved.push(r);
            }
        }
        let releases = saved::still_to_run(&selection, &saved);
        eprintln!(
            "resuming: {} of the {} selected releases already measured under this key (chart {} sha256 {}, {} checks), {} to run; saved under {}",
            selection.len() - releases.len(),
            selection.len(),
            key.chart_version,
            &key.chart_hash[..12],
            key.checks.len(),
            releases.len(),
            store.dir().display()
        );
        if releases.is_empty() {
            return Ok(Done {
                report: None,
                key,
                saved,
            });
        }
        let invocation = now();
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
                let result = ReleaseResult {
                    version: v.clone(),
                    date: today(),
                    seconds,
                    prepare_seconds: (prepare * 10.0).round() / 10.0,
                    cells,
                };
                let one = SavedRelease {
                    key: key.clone(),
                    helm_version: opts.helm_version.clone(),
                    jobs,
                    invocation: invocation.clone(),
                    result,
                };
                // Saved before the next release starts: a run stopped from here on keeps it.
                match store.save(&one) {
                    Ok(path) => eprintln!("[{n}/{total}] {v}: saved to {}", path.display()),
                    Err(e) => eprintln!(
                        "warning: {v}'s results could not be saved (a resumed run measures it again): {:#}",
                        anyhow::Error::from(e)
                    ),
                }
                saved.push(one);
                match report.as_mut() {
                    None => report = Some(r),
                    Some(all) => crate::e2e::absorb(all, r),
                }
            }
            report
        };
        let ((), report) = tokio::join!(producer, consumer);
        let mut report = report.context("no release ran")?;
        report.wall_seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        saved.sort_by(|a, b| a.result.version.cmp(&b.result.version));
        Ok(Done {
            report: Some(report),
            key,
            saved,
        })
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
    #[case::fresh_without_all_releases(&["e2e", "--smoke", "--fresh"], "--all-releases")]
    #[case::fresh_with_a_version(&["e2e", "--version", "1.0.0", "--fresh"], "--all-releases")]
    #[case::offline_and_a_bound_with_smoke(&["e2e", "--smoke", "--offline", "--since", "0.4.7"], "--since, --offline only apply with --all-releases")]
    fn bad_release_flags_are_refused_naming_what_is_accepted(
        #[case] args: &[&str],
        #[case] says: &str,
    ) {
        let err = match crate::Cli::try_parse_from(
            std::iter::once("cargo xtask").chain(args.iter().copied()),
        ) {
            Err(e) => e.to_string(),
            Ok(crate::Cli {
                command: crate::Command::E2e(f),
                ..
            }) => f
                .releases
                .refuse_without_all_releases()
                .expect_err("refused")
                .to_string(),
            Ok(_) => panic!("{args:?} parsed as another command"),
        };
        assert!(err.contains(says), "{err}");
    }

    fn key(hash: char) -> RunKey {
        RunKey {
            chart_version: "1.1.0".into(),
            chart_hash: hash.to_string().repeat(64),
            backend: "process".into(),
            checks: vec!["a: auth".into()],
            values_hash: "b".repeat(64),
        }
    }

    fn committed(k: Option<RunKey>, versions: &[&str]) -> CompatReport {
        CompatReport {
            date: "2026-12-04".into(),
            chart_version: "1.1.0".into(),
            key: k,
            backend: "process".into(),
            helm_version: "v4.1.4".into(),
            on_pypi: versions.iter().map(|s| v(s)).collect(),
            left_out: vec![],
            jobs: 2,
            wall_seconds: 1.0,
            parts: 1,
            releases: versions
                .iter()
                .map(|s| ReleaseResult {
                    version: v(s),
                    date: "2026-12-04".into(),
                    seconds: 1.0,
                    prepare_seconds: 0.0,
                    cells: vec![],
                })
                .collect(),
        }
    }

    #[rstest::rstest]
    #[case::measured_under_this_key(Some(key('a')), 2)]
    #[case::measured_under_another_chart_content(Some(key('c')), 0)]
    #[case::measured_before_runs_were_keyed(None, 0)]
    fn the_committed_reports_releases_count_as_saved_only_under_the_same_key(
        #[case] its_key: Option<RunKey>,
        #[case] adopted: usize,
    ) {
        let got = adopt(Some(committed(its_key, &["0.4.7", "0.4.8"])), &key('a'));
        assert_eq!(got.len(), adopted);
        assert!(got.iter().all(
            |s| s.key == key('a') && s.invocation == "docs/compat/releases.json of 2026-12-04"
        ));
        assert!(adopt(None, &key('a')).is_empty());
    }

    #[rstest::rstest]
    #[case::same_key_stays_in_place(Some(key('a')), None)]
    #[case::another_chart_content_moves_to_earlier(
        Some(key('c')),
        Some("chart content sha256 cccccccccccc then, aaaaaaaaaaaa now")
    )]
    #[case::an_unkeyed_report_moves_to_earlier(None, Some("no key recorded in it"))]
    fn a_committed_report_of_another_key_is_kept_as_an_earlier_one_not_overwritten(
        #[case] its_key: Option<RunKey>,
        #[case] moved: Option<&str>,
    ) {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("docs/compat")).unwrap();
        let old = committed(its_key, &["0.6.3"]);
        write_report(&root.path().join(COMPAT_REPORT), &old).unwrap();
        let now = committed(Some(key('a')), &["0.4.7"]);
        let said = archive_if_other_key(root.path(), &now).unwrap();
        assert_eq!(said.is_some(), moved.is_some());
        if let (Some(said), Some(why)) = (&said, moved) {
            assert!(
                said.contains(why)
                    && said.contains("docs/compat/earlier/2026-12-04-chart-1.1.0.json"),
                "{said}"
            );
        }
        let earlier = root
            .path()
            .join(EARLIER_REPORTS)
            .join("2026-12-04-chart-1.1.0.json");
        assert_eq!(earlier.exists(), moved.is_some());
        assert_eq!(root.path().join(COMPAT_REPORT).exists(), moved.is_none());
        if moved.is_some() {
            assert_eq!(read_report(&earlier).unwrap(), old, "kept as it was");
            // A second report of the same day and chart would overwrite it: refused instead.
            write_report(&root.path().join(COMPAT_REPORT), &old).unwrap();
            let err = archive_if_other_key(root.path(), &now)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("exists already: move one of them aside"),
                "{err}"
            );
        }
    }
}
