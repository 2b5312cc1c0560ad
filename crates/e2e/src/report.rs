//! Results: the version × check matrix on stdout, failure evidence, JSON and JUnit for CI.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use render::ChromaVersion;

use crate::checks::{CheckName, Outcome};
use crate::runner::RunReport;

/// A matrix cell: the worst outcome of a check over a version's deployments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cell {
    NotRun,
    Skip,
    Pass,
    Fail,
}

impl Cell {
    fn label(self) -> &'static str {
        match self {
            Cell::NotRun => "-",
            Cell::Skip => "SKIP",
            Cell::Pass => "PASS",
            Cell::Fail => "FAIL",
        }
    }
}

/// version → check → cell.
pub fn cells(report: &RunReport) -> BTreeMap<ChromaVersion, BTreeMap<CheckName, Cell>> {
    let mut out: BTreeMap<ChromaVersion, BTreeMap<CheckName, Cell>> = BTreeMap::new();
    for d in &report.deployments {
        let row = out.entry(d.version.clone()).or_default();
        let mut bump = |c: CheckName, cell: Cell| {
            let slot = row.entry(c).or_insert(Cell::NotRun);
            // Fail beats Pass beats Skip: one failing deployment fails the cell.
            *slot = (*slot).max(cell);
        };
        if d.error.is_some() {
            for c in &d.planned {
                bump(*c, Cell::Fail);
            }
        }
        for c in &d.checks {
            bump(
                c.check,
                match c.outcome {
                    Outcome::Pass { .. } => Cell::Pass,
                    Outcome::Fail { .. } => Cell::Fail,
                    Outcome::Skipped { .. } => Cell::Skip,
                },
            );
        }
    }
    out
}

/// The matrix as a plain-text table.
pub fn matrix(report: &RunReport) -> String {
    let cells = cells(report);
    let cols: Vec<CheckName> = CheckName::ALL.into_iter().filter(|c| cells.values().any(|row| row.get(c).is_some_and(|x| *x != Cell::NotRun))).collect();
    let timing: BTreeMap<_, _> = report.timings.iter().map(|t| (t.version.clone(), t)).collect();
    let mut s = String::new();
    let _ = write!(s, "{:<9}", "version");
    for c in &cols {
        let _ = write!(s, " {:<12}", c.as_str());
        let _ = c;
    }
    let _ = writeln!(s, " {:>9} {:>9}", "prepare", "deploys");
    for (v, row) in &cells {
        let _ = write!(s, "{:<9}", v.to_string());
        for c in &cols {
            let _ = write!(s, " {:<12}", row.get(c).copied().unwrap_or(Cell::NotRun).label());
        }
        if let Some(t) = timing.get(v) {
            let _ = write!(s, " {:>8.1}s {:>8.1}s", t.prepare_seconds, t.deploy_seconds);
        }
        let _ = writeln!(s);
    }
    let (mut pass, mut fail, mut skip) = (0, 0, 0);
    for d in &report.deployments {
        for c in &d.checks {
            match c.outcome {
                Outcome::Pass { .. } => pass += 1,
                Outcome::Fail { .. } => fail += 1,
                Outcome::Skipped { .. } => skip += 1,
            }
        }
        if d.error.is_some() {
            fail += 1;
        }
    }
    let _ = writeln!(
        s,
        "\n{} deployments, {pass} passed, {fail} failed, {skip} skipped — {:.1}s wall on the {} backend, helm {}",
        report.deployments.len(),
        report.wall_seconds,
        report.backend,
        report.helm_version
    );
    s
}

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

/// Every failure with what was sent, what came back and the server log tail.
pub fn failures(report: &RunReport) -> String {
    let mut s = String::new();
    for d in &report.deployments {
        if let Some(e) = &d.error {
            let _ = writeln!(s, "FAIL {} {}: {}", d.version, d.deployment, indent(e, "    ").trim_start());
        }
        for c in &d.checks {
            if let Outcome::Fail { reason, evidence, log_tail } = &c.outcome {
                let _ = writeln!(s, "FAIL {} {} {}: {reason}", d.version, d.deployment, c.check);
                if !evidence.is_empty() {
                    let _ = writeln!(s, "  exchanges (last {}):", evidence.len());
                    for ex in evidence {
                        s.push_str(&indent(&ex.render(), "    "));
                    }
                }
                if !log_tail.is_empty() {
                    let _ = writeln!(s, "  server log tail:");
                    s.push_str(&indent(log_tail, "    | "));
                }
                if !d.adjustments.is_empty() {
                    let _ = writeln!(s, "  backend adjustments: {}", d.adjustments.join("; "));
                }
            }
        }
    }
    s
}

pub fn json(report: &RunReport) -> serde_json::Result<String> {
    serde_json::to_string_pretty(report)
}

pub fn junit(report: &RunReport) -> Result<String, quick_junit::SerializeError> {
    let mut out = Report::new("chromadb-chart-e2e");
    out.set_time(Duration::from_secs_f64(report.wall_seconds));
    let mut suites: BTreeMap<ChromaVersion, TestSuite> = BTreeMap::new();
    for d in &report.deployments {
        let suite = suites.entry(d.version.clone()).or_insert_with(|| {
            let mut s = TestSuite::new(format!("chromadb {}", d.version));
            s.add_property(quick_junit::Property::new("backend", report.backend.clone()));
            s.add_property(quick_junit::Property::new("helm", report.helm_version.clone()));
            s
        });
        if let Some(e) = &d.error {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
            st.set_message(e.lines().next().unwrap_or_default().to_string()).set_description(e.clone());
            let mut tc = TestCase::new(format!("{}/deploy", d.deployment), st);
            tc.set_classname(format!("chromadb-{}", d.version));
            suite.add_test_case(tc);
        }
        if let Some(why) = &d.skipped {
            let mut st = TestCaseStatus::skipped();
            st.set_message(why.clone());
            let mut tc = TestCase::new(format!("{}/deploy", d.deployment), st);
            tc.set_classname(format!("chromadb-{}", d.version));
            suite.add_test_case(tc);
        }
        for c in &d.checks {
            let st = match &c.outcome {
                Outcome::Pass { .. } => TestCaseStatus::success(),
                Outcome::Skipped { reason } => {
                    let mut st = TestCaseStatus::skipped();
                    st.set_message(reason.clone());
                    st
                }
                Outcome::Fail { reason, evidence, log_tail } => {
                    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    let mut desc = String::new();
                    for ex in evidence {
                        desc.push_str(&ex.render());
                    }
                    desc.push_str("--- server log tail ---\n");
                    desc.push_str(log_tail);
                    st.set_message(reason.clone()).set_description(desc);
                    st
                }
            };
            let mut tc = TestCase::new(format!("{}/{}", d.deployment, c.check), st);
            tc.set_classname(format!("chromadb-{}", d.version)).set_time(Duration::from_secs_f64(c.seconds));
            if let Outcome::Pass { detail } = &c.outcome {
                tc.set_system_out(detail.clone());
            }
            suite.add_test_case(tc);
        }
    }
    out.add_test_suites(suites.into_values());
    out.to_string()
}
