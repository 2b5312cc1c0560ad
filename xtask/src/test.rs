//! `cargo xtask test`: the one test command — the same steps locally and in CI.
//!
//! The steps are a table ([`STEPS`]): each says what it needs and what it ensures, and a unit
//! test checks that every need is ensured by an earlier step — so a fresh machine (no host
//! programs, no cargo-nextest) gets each one before the first step that uses it. Every step
//! runs even after an earlier one failed, so one run shows everything that is wrong; the
//! closing line counts tests and checks: `test: N passed, M failed`.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::tally::Tally;
use crate::{cmd, project_root, tools};

#[derive(clap::Args)]
pub struct Flags {
    /// Skip the live smoke matrix (the render suite and lints still run)
    #[arg(long)]
    no_live: bool,
}

/// What a step can need from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// helm, kubectl, uv, actionlint, hadolint and the schemas in target/tools.
    Tools,
    /// The process backend's host programs (`e2e::host`): anything that deploys.
    HostPrograms,
    /// The pinned cargo-nextest, which counts each workspace test.
    Nextest,
    /// ct built from its Go module, with its yamllint and yamale.
    ChartTesting,
    /// The local cluster's programs built from their Go modules (`cargo xtask tools --cluster`).
    ClusterPrograms,
}

/// What the steps share once the tools are there.
struct Ctx {
    root: PathBuf,
    tools: Option<tools::Toolset>,
    nextest: Option<PathBuf>,
    chart_testing: Option<crate::ct::ChartTesting>,
}

impl Ctx {
    fn tools(&self) -> Result<&tools::Toolset> {
        self.tools
            .as_ref()
            .context("the tools step did not provide the tools")
    }
}

pub struct Step {
    pub name: &'static str,
    pub needs: &'static [Need],
    pub ensures: &'static [Need],
    /// Left out with `--no-live`.
    pub live: bool,
    run: fn(&mut Ctx) -> Result<Tally>,
}

/// The test command, in order.
pub const STEPS: &[Step] = &[
    Step {
        name: "tools",
        needs: &[],
        ensures: &[Need::Tools],
        live: false,
        run: step_tools,
    },
    // First of the machine's own packages: the workspace tests deploy too (tls_bad_secret,
    // upgrade_live), not only the smoke.
    Step {
        name: "host programs",
        needs: &[],
        ensures: &[Need::HostPrograms],
        live: false,
        run: step_host,
    },
    Step {
        name: "cargo-nextest",
        needs: &[],
        ensures: &[Need::Nextest],
        live: false,
        run: step_nextest,
    },
    Step {
        name: "rustfmt",
        needs: &[],
        ensures: &[],
        live: false,
        run: rustfmt,
    },
    Step {
        name: "helm lint",
        needs: &[Need::Tools],
        ensures: &[],
        live: false,
        run: helm_lint,
    },
    // uv makes ct's Python venv, so the tools come first.
    Step {
        name: "chart-testing",
        needs: &[Need::Tools],
        ensures: &[Need::ChartTesting],
        live: false,
        run: step_chart_testing,
    },
    Step {
        name: "ct lint",
        needs: &[Need::Tools, Need::ChartTesting],
        ensures: &[],
        live: false,
        run: ct_lint,
    },
    Step {
        name: "workspace tests",
        needs: &[Need::Tools, Need::HostPrograms, Need::Nextest],
        ensures: &[],
        live: false,
        run: workspace_tests,
    },
    Step {
        name: "actionlint",
        needs: &[Need::Tools],
        ensures: &[],
        live: false,
        run: actionlint,
    },
    Step {
        name: "hadolint",
        needs: &[Need::Tools],
        ensures: &[],
        live: false,
        run: hadolint,
    },
    // Cold, these are the test command's longest build (docs/local-cluster.md); a step of
    // their own, so its time shows apart from the smoke's.
    Step {
        name: "cluster programs",
        needs: &[],
        ensures: &[Need::ClusterPrograms],
        live: true,
        run: step_cluster_programs,
    },
    Step {
        name: "live smoke",
        needs: &[Need::Tools, Need::HostPrograms, Need::ClusterPrograms],
        ensures: &[],
        live: true,
        run: live_smoke,
    },
    Step {
        name: "live smoke (process backend)",
        needs: &[Need::Tools, Need::HostPrograms],
        ensures: &[],
        live: true,
        run: live_smoke_process,
    },
];

/// The first step that needs something no earlier step ensured: (step, need).
pub fn unmet_need(steps: &[Step]) -> Option<(&'static str, Need)> {
    let mut have: Vec<Need> = Vec::new();
    for s in steps {
        if let Some(n) = s.needs.iter().find(|n| !have.contains(n)) {
            return Some((s.name, *n));
        }
        have.extend_from_slice(s.ensures);
    }
    None
}

pub fn run(flags: Flags) -> Result<ExitCode> {
    if let Some((step, need)) = unmet_need(STEPS) {
        anyhow::bail!(
            "the test command's step `{step}` needs {need:?}, which no earlier step ensures"
        );
    }
    let started = Instant::now();
    let mut ctx = Ctx {
        root: project_root(),
        tools: None,
        nextest: None,
        chart_testing: None,
    };
    let mut total = Tally::default();
    let mut failed_steps = Vec::new();
    let mut ensured: Vec<Need> = Vec::new();

    for s in STEPS {
        if s.live && flags.no_live {
            eprintln!("── {}: skipped (--no-live)", s.name);
            continue;
        }
        // A step whose needs failed to come would only fail for that reason: say so once.
        if let Some(n) = s.needs.iter().find(|n| !ensured.contains(n)) {
            eprintln!(
                "── {}: not run, {n:?} is not there (an earlier step failed)",
                s.name
            );
            failed_steps.push(s.name.to_string());
            total += Tally {
                passed: 0,
                failed: 1,
            };
            continue;
        }
        let step_started = Instant::now();
        let tally = (s.run)(&mut ctx).unwrap_or_else(|e| {
            eprintln!("step `{}` could not run: {e:#}", s.name);
            Tally {
                passed: 0,
                failed: 1,
            }
        });
        eprintln!(
            "── {}: {} passed, {} failed ({:.0}s)",
            s.name,
            tally.passed,
            tally.failed,
            step_started.elapsed().as_secs_f64()
        );
        if tally.failed > 0 {
            failed_steps.push(s.name.to_string());
        } else {
            ensured.extend_from_slice(s.ensures);
        }
        total += tally;
    }

    eprintln!("finished in {:.0}s", started.elapsed().as_secs_f64());
    if !failed_steps.is_empty() {
        eprintln!("failed steps: {}", failed_steps.join(", "));
    }
    println!("test: {} passed, {} failed", total.passed, total.failed);
    Ok(if total.failed == 0 && total.passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn step_tools(ctx: &mut Ctx) -> Result<Tally> {
    ctx.tools = Some(tools::ensure()?);
    Ok(Tally::one(true))
}

fn step_host(_: &mut Ctx) -> Result<Tally> {
    crate::host::ensure()?;
    Ok(Tally::one(true))
}

fn step_nextest(ctx: &mut Ctx) -> Result<Tally> {
    ctx.nextest = Some(crate::nextest::ensure()?);
    Ok(Tally::one(true))
}

fn step_cluster_programs(_: &mut Ctx) -> Result<Tally> {
    crate::gotools::ensure_all()?;
    Ok(Tally::one(true))
}

/// The smoke on the local cluster: a real control plane, the process node as its node.
fn live_smoke(ctx: &mut Ctx) -> Result<Tally> {
    crate::e2e::smoke(ctx.tools()?, crate::backends::BackendKind::Local)
}

/// The direct process backend, which the all-releases sweep runs on.
fn live_smoke_process(ctx: &mut Ctx) -> Result<Tally> {
    crate::e2e::smoke(ctx.tools()?, crate::backends::BackendKind::Process)
}

fn helm_lint(ctx: &mut Ctx) -> Result<Tally> {
    let mut c = Command::new(&ctx.tools()?.helm.path);
    c.args(["lint", "--strict"])
        .arg(ctx.root.join("charts/chromadb"));
    Ok(Tally::one(cmd::run_status(&mut c)?))
}

fn step_chart_testing(ctx: &mut Ctx) -> Result<Tally> {
    ctx.chart_testing = Some(crate::ct::ensure(&ctx.tools()?.uv.path)?);
    Ok(Tally::one(true))
}

fn ct_lint(ctx: &mut Ctx) -> Result<Tally> {
    let ct = ctx
        .chart_testing
        .as_ref()
        .context("the chart-testing step did not provide ct")?;
    let mut c = crate::ct::lint_command(&ctx.root, &ctx.tools()?.helm.path, ct);
    Ok(Tally::one(cmd::run_status(&mut c)?))
}

fn actionlint(ctx: &mut Ctx) -> Result<Tally> {
    let mut c = Command::new(&ctx.tools()?.actionlint);
    c.current_dir(&ctx.root);
    Ok(Tally::one(cmd::run_status(&mut c)?))
}

/// The workspace is formatted as rustfmt's defaults have it (rustfmt ships with the toolchain;
/// a toolchain without it says `rustup component add rustfmt`).
fn rustfmt(ctx: &mut Ctx) -> Result<Tally> {
    let mut c = cmd::cargo();
    c.current_dir(&ctx.root).args(["fmt", "--all", "--check"]);
    Ok(Tally::one(cmd::run_status(&mut c)?))
}

/// The backup tool's image. `--failure-threshold info`: every finding fails, not only errors.
fn hadolint(ctx: &mut Ctx) -> Result<Tally> {
    let mut c = Command::new(&ctx.tools()?.hadolint);
    c.current_dir(&ctx.root)
        .args(["--failure-threshold", "info", "image/Dockerfile"]);
    Ok(Tally::one(cmd::run_status(&mut c)?))
}

fn workspace_tests(ctx: &mut Ctx) -> Result<Tally> {
    let nextest = ctx
        .nextest
        .clone()
        .context("the cargo-nextest step did not provide cargo-nextest")?;
    let root = ctx.root.clone();
    // The pinned binary runs as cargo runs a subcommand: its first argument names it.
    let mut c = Command::new(&nextest);
    cmd::drop_cargo_run_vars(&mut c);
    c.current_dir(&root);
    ctx.tools()?.apply(&mut c);
    c.args([
        "nextest",
        "run",
        "--workspace",
        "--profile",
        "xtask",
        "--no-tests",
        "fail",
    ]);
    let junit = root.join("target/nextest/xtask/junit.xml");
    // A report left by an earlier run must not be counted as this one's.
    let _ = std::fs::remove_file(&junit);
    let ok = cmd::run_status(&mut c)?;
    let tally = junit_tally(
        &std::fs::read_to_string(&junit).with_context(|| format!("reading {}", junit.display()))?,
    )?;
    // A build failure leaves no JUnit file from this run: count it as a failure.
    Ok(if !ok && tally.failed == 0 {
        Tally { failed: 1, ..tally }
    } else {
        tally
    })
}

/// Counts from the `<testsuites tests=.. failures=.. errors=..>` element of a JUnit report.
pub fn junit_tally(xml: &str) -> Result<Tally> {
    let doc = roxmltree::Document::parse(xml).context("the JUnit report is not XML")?;
    let suites = doc.root_element();
    if suites.tag_name().name() != "testsuites" {
        anyhow::bail!(
            "the JUnit report's root is <{}>, not <testsuites>",
            suites.tag_name().name()
        );
    }
    let attr = |name: &str| -> usize {
        suites
            .attribute(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let failed = attr("failures") + attr("errors");
    Ok(Tally {
        passed: attr("tests").saturating_sub(failed),
        failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_tally_counts_failures_and_errors_as_failed() {
        let xml = r#"<?xml version="1.0"?><testsuites name="x" tests="10" failures="2" errors="1" uuid="u"><testsuite/></testsuites>"#;
        assert_eq!(
            junit_tally(xml).unwrap(),
            Tally {
                passed: 7,
                failed: 3
            }
        );
    }

    #[test]
    fn junit_without_testsuites_is_an_error() {
        assert!(junit_tally("<nothing/>").is_err());
    }

    #[test]
    fn every_step_of_the_test_command_finds_what_it_needs_ensured_by_an_earlier_step() {
        assert_eq!(unmet_need(STEPS), None);
    }

    fn noop(_: &mut Ctx) -> Result<Tally> {
        Ok(Tally::one(true))
    }

    #[test]
    fn a_step_that_needs_host_programs_before_they_are_ensured_is_found() {
        let steps = [
            Step {
                name: "tools",
                needs: &[],
                ensures: &[Need::Tools],
                live: false,
                run: noop,
            },
            Step {
                name: "workspace tests",
                needs: &[Need::Tools, Need::HostPrograms],
                ensures: &[],
                live: false,
                run: noop,
            },
            Step {
                name: "host programs",
                needs: &[],
                ensures: &[Need::HostPrograms],
                live: false,
                run: noop,
            },
        ];
        assert_eq!(
            unmet_need(&steps),
            Some(("workspace tests", Need::HostPrograms))
        );
    }

    /// The table is only as true as its `needs`: every workspace test that deploys on the
    /// process backend must get its host programs itself (for `cargo test` by hand) and be
    /// covered by the workspace step's declared need (for the test command).
    #[test]
    fn workspace_tests_that_deploy_ensure_host_programs_and_the_step_declares_it() {
        let mut deploying = Vec::new();
        for dir in std::fs::read_dir(project_root().join("crates")).unwrap() {
            let tests = dir.unwrap().path().join("tests");
            let Ok(files) = std::fs::read_dir(&tests) else {
                continue;
            };
            for f in files {
                let path = f.unwrap().path();
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                if text.contains("ProcessBackend::new") {
                    assert!(
                        text.contains("e2e::host::ensure()"),
                        "{} deploys on the process backend but does not call e2e::host::ensure()",
                        path.display()
                    );
                    deploying.push(path);
                }
            }
        }
        assert!(
            !deploying.is_empty(),
            "no workspace test deploys: the scan found nothing to check"
        );
        let step = STEPS.iter().find(|s| s.name == "workspace tests").unwrap();
        assert!(
            step.needs.contains(&Need::HostPrograms),
            "{deploying:?} deploy, so the workspace tests need the host programs"
        );
    }
}
