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
    /// Failed as fixtures/versions.yaml expects of the release, with the recorded cause.
    XFail,
    Fail,
}

impl Cell {
    fn label(self) -> &'static str {
        match self {
            Cell::NotRun => "-",
            Cell::Skip => "SKIP",
            Cell::Pass => "PASS",
            Cell::XFail => "XFAIL",
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
                    Outcome::ExpectedFail { .. } => Cell::XFail,
                },
            );
        }
    }
    out
}

/// The matrix as a plain-text table.
pub fn matrix(report: &RunReport) -> String {
    let cells = cells(report);
    let cols: Vec<CheckName> = CheckName::all()
        .filter(|c| {
            cells
                .values()
                .any(|row| row.get(c).is_some_and(|x| *x != Cell::NotRun))
        })
        .collect();
    let timing: BTreeMap<_, _> = report
        .timings
        .iter()
        .map(|t| (t.version.clone(), t))
        .collect();
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
            let _ = write!(
                s,
                " {:<12}",
                row.get(c).copied().unwrap_or(Cell::NotRun).label()
            );
        }
        if let Some(t) = timing.get(v) {
            let _ = write!(s, " {:>8.1}s {:>8.1}s", t.prepare_seconds, t.deploy_seconds);
        }
        let _ = writeln!(s);
    }
    let t = Totals::of(report);
    let _ = writeln!(
        s,
        "\n{} deployments ({} proven), {} passed, {} failed as expected (XFAIL), {} failed, {} skipped — {:.1}s wall on the {} backend, helm {}",
        report.deployments.len(),
        t.proven,
        t.passed,
        t.expected,
        t.failed,
        t.skipped,
        report.wall_seconds,
        report.backend,
        report.helm_version
    );
    for r in skip_reasons(report) {
        let shown: Vec<&str> = r
            .cells
            .iter()
            .take(SHOWN_CELLS)
            .map(String::as_str)
            .collect();
        let more = if r.cells.len() > SHOWN_CELLS {
            ", …"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "SKIP ×{} ({}{more}): {}",
            r.count,
            shown.join(", "),
            r.reason
        );
    }
    if let Some(why) = nothing_proven(report) {
        let _ = writeln!(s, "NOTHING PROVEN: {why}");
    }
    s
}

/// How many cells a SKIP line names before it says "…".
const SHOWN_CELLS: usize = 6;

/// A run's counts: each check once, a deployment that failed as a whole once.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub passed: usize,
    /// Failures with the cause fixtures/versions.yaml records: each proves the release's own
    /// behaviour, and is no pass of the chart's.
    pub expected: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Deployments with at least one passed check: the others proved nothing.
    pub proven: usize,
}

impl Totals {
    pub fn of(report: &RunReport) -> Totals {
        let mut t = Totals::default();
        for d in &report.deployments {
            let (mut passed_here, mut expected_here) = (0, 0);
            for c in &d.checks {
                match c.outcome {
                    Outcome::Pass { .. } => passed_here += 1,
                    // An expected failure proves the recorded behaviour of the release.
                    Outcome::ExpectedFail { .. } => expected_here += 1,
                    Outcome::Fail { .. } => t.failed += 1,
                    Outcome::Skipped { .. } => t.skipped += 1,
                }
            }
            t.skipped += d.skipped.is_some() as usize;
            t.failed += d.error.is_some() as usize;
            t.passed += passed_here;
            t.expected += expected_here;
            t.proven += (passed_here + expected_here > 0) as usize;
        }
        t
    }
}

/// Why a run proved nothing, when no check passed: a run of SKIPs is not a green.
pub fn nothing_proven(report: &RunReport) -> Option<String> {
    let t = Totals::of(report);
    if t.passed + t.expected > 0 {
        return None;
    }
    Some(if report.deployments.is_empty() {
        "no deployment ran (the filters selected no check of any deployment)".to_string()
    } else {
        format!(
            "no check passed in {} deployments ({} skipped, {} failed){}",
            report.deployments.len(),
            t.skipped,
            t.failed,
            match (t.skipped, t.failed) {
                (0, _) => "; the FAIL lines say why",
                (_, 0) => "; the SKIP lines above say why",
                _ => "; the SKIP and FAIL lines say why",
            }
        )
    })
}

/// One distinct SKIP reason: how many results it covers and in which cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipReason {
    pub reason: String,
    /// Skipped results (checks, and deployments skipped whole) with this reason; the
    /// counts of all reasons add up to the summary's "skipped".
    pub count: usize,
    /// `<version> <check>`, or `<version> <deployment>` for a deployment skipped whole; each
    /// once, in run order.
    pub cells: Vec<String>,
}

/// Every distinct SKIP reason, most results first.
pub fn skip_reasons(report: &RunReport) -> Vec<SkipReason> {
    let mut by: BTreeMap<String, SkipReason> = BTreeMap::new();
    let mut add = |reason: &str, cell: String| {
        let r = by.entry(reason.to_string()).or_insert_with(|| SkipReason {
            reason: reason.to_string(),
            count: 0,
            cells: Vec::new(),
        });
        r.count += 1;
        if !r.cells.contains(&cell) {
            r.cells.push(cell);
        }
    };
    for d in &report.deployments {
        if let Some(why) = &d.skipped {
            add(why, format!("{} {}", d.version, d.deployment));
        }
        for c in &d.checks {
            if let Outcome::Skipped { reason } = &c.outcome {
                add(reason, format!("{} {}", d.version, c.check));
            }
        }
    }
    let mut out: Vec<SkipReason> = by.into_values().collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    out
}

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

/// Every failure with what was sent, what came back and the server log tail.
pub fn failures(report: &RunReport) -> String {
    let mut s = String::new();
    for d in &report.deployments {
        if let Some(e) = &d.error {
            let _ = writeln!(
                s,
                "FAIL {} {}: {}",
                d.version,
                d.deployment,
                indent(e, "    ").trim_start()
            );
        }
        for c in &d.checks {
            if let Outcome::Fail {
                reason,
                evidence,
                log_tail,
            } = &c.outcome
            {
                let _ = writeln!(
                    s,
                    "FAIL {} {} {}: {reason}",
                    d.version, d.deployment, c.check
                );
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
            if let Outcome::ExpectedFail { reason, why, .. } = &c.outcome {
                let _ = writeln!(
                    s,
                    "XFAIL {} {} {} (expected: {why}): {reason}",
                    d.version, d.deployment, c.check
                );
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
            s.add_property(quick_junit::Property::new(
                "backend",
                report.backend.clone(),
            ));
            s.add_property(quick_junit::Property::new(
                "helm",
                report.helm_version.clone(),
            ));
            s
        });
        if let Some(e) = &d.error {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
            st.set_message(e.lines().next().unwrap_or_default().to_string())
                .set_description(e.clone());
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
                Outcome::ExpectedFail { .. } => TestCaseStatus::success(),
                Outcome::Skipped { reason } => {
                    let mut st = TestCaseStatus::skipped();
                    st.set_message(reason.clone());
                    st
                }
                Outcome::Fail {
                    reason,
                    evidence,
                    log_tail,
                } => {
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
            tc.set_classname(format!("chromadb-{}", d.version))
                .set_time(Duration::from_secs_f64(c.seconds));
            if let Outcome::Pass { detail } = &c.outcome {
                tc.set_system_out(detail.clone());
            }
            if let Outcome::ExpectedFail { reason, why, .. } = &c.outcome {
                tc.set_system_out(format!("expected failure ({why}): {reason}"));
            }
            suite.add_test_case(tc);
        }
    }
    out.add_test_suites(suites.into_values());
    out.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{CheckResult, DeploymentResult};

    fn c(name: &str) -> CheckName {
        name.parse().unwrap()
    }

    fn check(check: CheckName, outcome: Outcome) -> CheckResult {
        CheckResult {
            check,
            outcome,
            seconds: 0.1,
        }
    }

    fn skip(reason: &str) -> Outcome {
        Outcome::Skipped {
            reason: reason.into(),
        }
    }

    fn deployment(version: &str, name: &str, checks: Vec<CheckResult>) -> DeploymentResult {
        DeploymentResult {
            version: version.parse().unwrap(),
            deployment: name.into(),
            values_files: Vec::new(),
            expected: None,
            adjustments: Vec::new(),
            error: None,
            skipped: None,
            planned: checks.iter().map(|c| c.check).collect(),
            checks,
            seconds: 1.0,
            kept_url: None,
            spans: Vec::new(),
        }
    }

    fn report(deployments: Vec<DeploymentResult>) -> RunReport {
        RunReport {
            backend: "process".into(),
            chart: "c".into(),
            helm_version: "v4".into(),
            wall_seconds: 1.0,
            timings: Vec::new(),
            deployments,
            kept: Vec::new(),
        }
    }

    const NO_BWRAP: &str = "readOnlyRootFilesystem needs bubblewrap";

    #[test]
    fn a_run_of_only_skips_proves_nothing_and_says_why() {
        let r = report(vec![
            deployment(
                "1.5.0",
                "default",
                vec![
                    check(c("persistence"), skip(NO_BWRAP)),
                    check(c("reset"), skip(NO_BWRAP)),
                ],
            ),
            deployment("1.5.0", "auth", vec![check(c("auth"), skip(NO_BWRAP))]),
        ]);
        assert_eq!(
            Totals::of(&r),
            Totals {
                passed: 0,
                expected: 0,
                failed: 0,
                skipped: 3,
                proven: 0
            }
        );
        let why = nothing_proven(&r).expect("no check passed");
        assert!(
            why.contains("no check passed in 2 deployments (3 skipped, 0 failed)"),
            "{why}"
        );
        let text = matrix(&r);
        assert!(
            text.contains(
                "2 deployments (0 proven), 0 passed, 0 failed as expected (XFAIL), 0 failed, 3 skipped"
            ),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "SKIP ×3 (1.5.0 persistence, 1.5.0 reset, 1.5.0 auth): {NO_BWRAP}"
            )),
            "{text}"
        );
        assert!(text.contains("NOTHING PROVEN: "), "{text}");
    }

    #[test]
    fn an_expected_failure_proves_its_deployment_but_is_not_counted_as_a_pass() {
        let xfail = Outcome::ExpectedFail {
            cause: "disk is full".into(),
            reason: "the server did not start: disk is full".into(),
            why: "cannot start on a full claim".into(),
        };
        let r = report(vec![deployment(
            "1.0.6",
            "faults-full",
            vec![check(c("faults-full-volume"), xfail)],
        )]);
        assert_eq!(
            Totals::of(&r),
            Totals {
                passed: 0,
                expected: 1,
                failed: 0,
                skipped: 0,
                proven: 1
            }
        );
        assert_eq!(nothing_proven(&r), None);
        assert!(
            matrix(&r).contains("0 passed, 1 failed as expected (XFAIL), 0 failed"),
            "{}",
            matrix(&r)
        );
    }

    #[test]
    fn one_pass_proves_its_deployment_and_reasons_are_grouped_most_first() {
        let pass = Outcome::Pass {
            detail: String::new(),
        };
        let r = report(vec![
            deployment(
                "0.6.3",
                "default",
                vec![
                    check(c("persistence"), pass),
                    check(c("payload"), skip("payload below 1.0")),
                ],
            ),
            deployment(
                "0.6.3",
                "tls",
                vec![
                    check(c("payload"), skip("payload below 1.0")),
                    check(c("telemetry"), skip("no receiver")),
                ],
            ),
        ]);
        assert_eq!(
            Totals::of(&r),
            Totals {
                passed: 1,
                expected: 0,
                failed: 0,
                skipped: 3,
                proven: 1
            }
        );
        assert_eq!(nothing_proven(&r), None);
        let reasons = skip_reasons(&r);
        assert_eq!(reasons.len(), 2);
        // Two results in one cell: counted twice, named once.
        assert_eq!(
            (
                reasons[0].reason.as_str(),
                reasons[0].count,
                reasons[0].cells.clone()
            ),
            ("payload below 1.0", 2, vec!["0.6.3 payload".to_string()])
        );
        assert_eq!(
            reasons.iter().map(|r| r.count).sum::<usize>(),
            Totals::of(&r).skipped
        );
        assert!(!matrix(&r).contains("NOTHING PROVEN"));
    }

    #[test]
    fn a_long_reason_line_names_six_cells_then_an_ellipsis() {
        let checks: Vec<CheckResult> = CheckName::all()
            .take(8)
            .map(|c| check(c, skip("why")))
            .collect();
        let text = matrix(&report(vec![deployment("1.5.0", "default", checks)]));
        let line = text
            .lines()
            .find(|l| l.starts_with("SKIP ×8 ("))
            .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(line.matches("1.5.0 ").count(), 6, "{line}");
        assert!(line.ends_with(", …): why"), "{line}");
    }

    #[test]
    fn an_empty_run_proves_nothing() {
        assert!(
            nothing_proven(&report(Vec::new()))
                .unwrap()
                .contains("no deployment ran")
        );
    }
}
