//! `cargo xtask test`: the one test command — the same steps locally and in CI.
//!
//! Steps: tools → `helm lint --strict` → workspace tests (nextest, else cargo test) →
//! actionlint over the workflows → hadolint over image/Dockerfile → the live smoke matrix on the process backend. Every step
//! runs even after an earlier one failed, so one run shows everything that is wrong; the
//! closing line counts tests and checks: `test: N passed, M failed`.

use std::path::Path;
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

pub fn run(flags: Flags) -> Result<ExitCode> {
    let root = project_root();
    let started = Instant::now();
    let tools = tools::ensure()?;
    let mut total = Tally::default();
    let mut failed_steps = Vec::new();

    let mut step = |name: &str, result: Result<Tally>| {
        let tally = result.unwrap_or_else(|e| {
            eprintln!("step `{name}` could not run: {e:#}");
            Tally { passed: 0, failed: 1 }
        });
        eprintln!("── {name}: {} passed, {} failed", tally.passed, tally.failed);
        if tally.failed > 0 {
            failed_steps.push(name.to_string());
        }
        total += tally;
    };

    step("helm lint", helm_lint(&root, &tools));
    step("workspace tests", workspace_tests(&root, &tools));
    step("actionlint", actionlint(&root, &tools));
    step("hadolint", hadolint(&root, &tools));
    if flags.no_live {
        eprintln!("── live smoke: skipped (--no-live)");
    } else {
        // The smoke runs `chart-test`; without its stand-ins it could only SKIP.
        step("host packages", crate::host::ensure().map(|()| Tally::one(true)));
        step("live smoke", crate::e2e::smoke(&tools));
    }

    eprintln!("finished in {:.0}s", started.elapsed().as_secs_f64());
    if !failed_steps.is_empty() {
        eprintln!("failed steps: {}", failed_steps.join(", "));
    }
    println!("test: {} passed, {} failed", total.passed, total.failed);
    Ok(if total.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn helm_lint(root: &Path, tools: &tools::Toolset) -> Result<Tally> {
    let mut c = Command::new(&tools.helm.path);
    c.args(["lint", "--strict"]).arg(root.join("charts/chromadb"));
    Ok(Tally::one(cmd::run_status(&mut c)?))
}

fn actionlint(root: &Path, tools: &tools::Toolset) -> Result<Tally> {
    let mut c = Command::new(&tools.actionlint);
    c.current_dir(root);
    Ok(Tally::one(cmd::run_status(&mut c)?))
}

/// The backup tool's image. `--failure-threshold info`: every finding fails, not only errors.
fn hadolint(root: &Path, tools: &tools::Toolset) -> Result<Tally> {
    let mut c = Command::new(&tools.hadolint);
    c.current_dir(root).args(["--failure-threshold", "info", "image/Dockerfile"]);
    Ok(Tally::one(cmd::run_status(&mut c)?))
}

fn workspace_tests(root: &Path, tools: &tools::Toolset) -> Result<Tally> {
    let nextest = cmd::probe(cmd::cargo().args(["nextest", "--version"])).is_some();
    let mut c = cmd::cargo();
    c.current_dir(root);
    tools.apply(&mut c);
    if nextest {
        c.args(["nextest", "run", "--workspace", "--profile", "xtask", "--no-tests", "fail"]);
        let ok = cmd::run_status(&mut c)?;
        let junit = root.join("target/nextest/xtask/junit.xml");
        let tally = junit_tally(&std::fs::read_to_string(&junit).with_context(|| format!("reading {}", junit.display()))?)?;
        // A build failure leaves no JUnit file from this run: count it as a failure.
        Ok(if !ok && tally.failed == 0 { Tally { failed: 1, ..tally } } else { tally })
    } else {
        eprintln!("cargo-nextest not found; using cargo test (install cargo-nextest for per-test counts)");
        c.args(["test", "--workspace"]);
        Ok(Tally::one(cmd::run_status(&mut c)?))
    }
}

/// Counts from the `<testsuites tests=.. failures=.. errors=..>` element of a JUnit report.
pub fn junit_tally(xml: &str) -> Result<Tally> {
    let doc = roxmltree::Document::parse(xml).context("the JUnit report is not XML")?;
    let suites = doc.root_element();
    if suites.tag_name().name() != "testsuites" {
        anyhow::bail!("the JUnit report's root is <{}>, not <testsuites>", suites.tag_name().name());
    }
    let attr = |name: &str| -> usize { suites.attribute(name).and_then(|v| v.parse().ok()).unwrap_or(0) };
    let failed = attr("failures") + attr("errors");
    Ok(Tally { passed: attr("tests").saturating_sub(failed), failed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_tally_counts_failures_and_errors_as_failed() {
        let xml = r#"<?xml version="1.0"?><testsuites name="x" tests="10" failures="2" errors="1" uuid="u"><testsuite/></testsuites>"#;
        assert_eq!(junit_tally(xml).unwrap(), Tally { passed: 7, failed: 3 });
    }

    #[test]
    fn junit_without_testsuites_is_an_error() {
        assert!(junit_tally("<nothing/>").is_err());
    }
}
