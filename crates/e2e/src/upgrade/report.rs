//! What one transition (and the matrix) established, as data (JSON with `--report`) and as
//! text (stdout).

use std::fmt::Write;

use render::ChromaVersion;
use serde::Serialize;

use super::plan::Transition;
use super::secrets::SecretContinuity;
use super::signature::Signature;
use super::verdict::Verdict;
use crate::checks::Outcome;
use crate::dataset::DataDiff;
use crate::runner::CheckResult;

/// How one step of the procedure ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pass,
    Fail,
    /// This backend cannot establish it; `detail` says why. Never counted as a pass.
    Skip,
}

/// One step of the procedure and how it went.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    pub status: StepStatus,
    pub detail: String,
    pub seconds: f64,
}

/// Server log lines around the upgrade.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpgradeLogs {
    /// A's last lines before it was stopped.
    pub a_tail: String,
    /// B's first lines after it was started on A's data (empty when B never started).
    pub b_head: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpgradeReport {
    pub from: ChromaVersion,
    pub to: ChromaVersion,
    pub from_chart: String,
    pub to_chart: String,
    pub backend: String,
    /// `in-place` or `backup` (dump A, restore into a fresh B).
    pub via: super::plan::Via,
    pub values_files: Vec<String>,
    pub to_values_files: Vec<String>,
    pub reason: String,
    pub verdict: Verdict,
    /// What the matrix says running established (single runs expect `survived`).
    pub expect: Verdict,
    /// How the expected failure shows itself, when one is expected.
    pub signature: Option<Signature>,
    /// Why the run disagrees with `expect` and `signature` (`None`: it agrees).
    pub mismatch: Option<String>,
    /// What of the signature was seen, when it matched.
    pub signature_seen: Option<String>,
    /// One sentence on why the verdict is what it is.
    pub summary: String,
    pub steps: Vec<Step>,
    pub dataset_collections: usize,
    pub dataset_records: usize,
    pub diff: Option<DataDiff>,
    pub secrets: Vec<SecretContinuity>,
    pub notes: Vec<String>,
    pub logs: UpgradeLogs,
    pub checks: Vec<CheckResult>,
    /// What the harness changed from the render to run it here (listen address, Secrets
    /// carried over for a backend without `lookup`, …): adjustments, not proofs.
    pub adjustments: Vec<String>,
    /// Seconds the in-place upgrade took (stop A → B ready), when it ran.
    pub upgrade_seconds: Option<f64>,
    pub seconds: f64,
    /// Where B still runs (`keep`).
    pub kept_url: Option<String>,
}

impl UpgradeReport {
    /// The run disagrees with what was expected (verdict or signature).
    pub fn failed(&self) -> bool {
        self.mismatch.is_some()
    }

    /// A report for `t` before anything ran: set-up failed until a step says otherwise.
    pub fn not_run(
        backend: &str,
        t: &Transition,
        from_chart: String,
        to_chart: String,
    ) -> UpgradeReport {
        UpgradeReport {
            from: t.from.clone(),
            to: t.to.clone(),
            from_chart,
            to_chart,
            backend: backend.to_string(),
            via: t.via,
            values_files: t
                .values_files
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            to_values_files: t
                .to_values_files
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            reason: t.reason.clone(),
            verdict: Verdict::SetupFailed,
            expect: t.expect,
            signature: t.signature.clone(),
            mismatch: None,
            signature_seen: None,
            summary: String::new(),
            steps: Vec::new(),
            dataset_collections: 0,
            dataset_records: 0,
            diff: None,
            secrets: Vec::new(),
            notes: Vec::new(),
            logs: UpgradeLogs::default(),
            checks: Vec::new(),
            adjustments: Vec::new(),
            upgrade_seconds: None,
            seconds: 0.0,
            kept_url: None,
        }
    }
}

/// The whole matrix run.
#[derive(Debug, Serialize)]
pub struct MatrixReport {
    pub backend: String,
    pub wall_seconds: f64,
    pub prepare_seconds: f64,
    pub transitions: Vec<UpgradeReport>,
}

impl MatrixReport {
    pub fn failed(&self) -> bool {
        self.transitions.iter().any(UpgradeReport::failed)
    }

    /// Transitions that ran and agree with the matrix: the ones that proved something.
    pub fn proven(&self) -> usize {
        self.transitions
            .iter()
            .filter(|r| !r.failed() && r.verdict != Verdict::SetupFailed)
            .count()
    }
}

/// Why a matrix run proved nothing, when no transition was exercised and agreed with the
/// matrix (every one failed to set up, or there were none).
pub fn nothing_proven(m: &MatrixReport) -> Option<String> {
    if m.proven() > 0 {
        return None;
    }
    Some(if m.transitions.is_empty() {
        "no transition ran".to_string()
    } else {
        let setup = m
            .transitions
            .iter()
            .filter(|r| r.verdict == Verdict::SetupFailed)
            .count();
        format!(
            "none of {} transitions was exercised and agreed with the matrix ({setup} could not be set up)",
            m.transitions.len()
        )
    })
}

fn indent(text: &str, by: &str) -> String {
    if text.trim().is_empty() {
        return format!("{by}(no log lines)\n");
    }
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

/// Everything about one transition.
pub fn text(r: &UpgradeReport) -> String {
    let mut s = String::new();
    let how = match r.via {
        super::plan::Via::InPlace => String::new(),
        super::plan::Via::Backup => " via backup".to_string(),
    };
    let _ = writeln!(
        s,
        "upgrade {} → {}{how} on the {} backend: {}",
        r.from,
        r.to,
        r.backend,
        r.verdict.as_str().to_uppercase()
    );
    let _ = writeln!(s, "  {}", r.summary);
    let _ = writeln!(s, "  chart: {} → {}", r.from_chart, r.to_chart);
    if !r.values_files.is_empty() {
        let _ = writeln!(s, "  values: {}", r.values_files.join(", "));
    }
    if !r.to_values_files.is_empty() {
        let _ = writeln!(s, "  values for B only: {}", r.to_values_files.join(", "));
    }
    if r.expect != r.verdict || r.expect != Verdict::Survived {
        match &r.signature {
            Some(sig) => {
                let _ = writeln!(s, "  expected: {} with {sig}", r.expect.as_str());
            }
            None => {
                let _ = writeln!(s, "  expected: {}", r.expect.as_str());
            }
        }
    }
    if let Some(seen) = &r.signature_seen {
        let _ = writeln!(s, "  signature seen: {seen}");
    }
    if let Some(m) = &r.mismatch {
        let _ = writeln!(s, "  MISMATCH: {m}");
    }
    let _ = writeln!(s, "\nsteps:");
    for st in &r.steps {
        let mark = match st.status {
            StepStatus::Pass => "✓",
            StepStatus::Fail => "✗",
            StepStatus::Skip => "SKIP",
        };
        let _ = writeln!(
            s,
            "  {mark:<4} {:<42} {:>6.2}s  {}",
            st.name,
            st.seconds,
            st.detail.lines().next().unwrap_or("")
        );
        for l in st.detail.lines().skip(1).take(40) {
            let _ = writeln!(s, "      {l}");
        }
    }
    if let Some(d) = &r.diff {
        let _ = writeln!(
            s,
            "\ndata diff ({} collections, {} records written on {}):",
            r.dataset_collections, r.dataset_records, r.from
        );
        let _ = write!(s, "{d}");
    }
    if !r.checks.is_empty() {
        let _ = writeln!(s, "\nchecks on {}:", r.to);
        for c in &r.checks {
            let detail = match &c.outcome {
                Outcome::Pass { detail } => detail.clone(),
                Outcome::Fail { reason, .. } => reason.clone(),
                Outcome::Skipped { reason } => reason.clone(),
                Outcome::ExpectedFail { reason, why, .. } => format!("(expected: {why}) {reason}"),
            };
            let _ = writeln!(
                s,
                "  {:<4} {:<12} {}",
                c.outcome.label(),
                c.check.as_str(),
                detail
            );
        }
    }
    for n in &r.notes {
        let _ = writeln!(s, "\nnote: {n}");
    }
    for a in &r.adjustments {
        let _ = writeln!(s, "adjusted: {a}");
    }
    if !r.logs.a_tail.is_empty() || !r.logs.b_head.is_empty() {
        let _ = writeln!(s, "\nlog of A ({}) before it was stopped (tail):", r.from);
        s.push_str(&indent(&r.logs.a_tail, "  | "));
        let _ = writeln!(
            s,
            "log of B ({}) after it started on A's data (head):",
            r.to
        );
        s.push_str(&indent(&r.logs.b_head, "  | "));
    }
    if let Some(u) = &r.kept_url {
        let _ = writeln!(s, "\nB kept running at {u}");
    }
    let _ = writeln!(
        s,
        "\ntotal {:.1}s (in-place upgrade {}s)",
        r.seconds,
        r.upgrade_seconds
            .map_or("-".to_string(), |x| format!("{x:.2}"))
    );
    s
}

/// The matrix table, then the details of every transition that disagrees with its fixture.
pub fn matrix_text(m: &MatrixReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<17} {:<14} {:<14} {:>11} {:>9} {:>9} {:>8}  chart",
        "transition", "verdict", "expected", "collections", "records", "upgrade", "total"
    );
    for r in &m.transitions {
        let (cols, recs) = match &r.diff {
            Some(d) if r.verdict != Verdict::SetupFailed => (
                format!("{}/{}", d.survived_collections(), r.dataset_collections),
                format!("{}/{}", d.survived_records(), r.dataset_records),
            ),
            _ => ("-".into(), "-".into()),
        };
        let up = r
            .upgrade_seconds
            .map_or("-".to_string(), |x| format!("{x:.1}s"));
        let mark = if r.failed() { "✗" } else { " " };
        let _ = writeln!(
            s,
            "{mark}{:<16} {:<14} {:<14} {:>11} {:>9} {:>9} {:>7.1}s  {}",
            format!(
                "{} → {}{}",
                r.from,
                r.to,
                if r.via == super::plan::Via::Backup {
                    " (via backup)"
                } else {
                    ""
                }
            ),
            r.verdict.as_str(),
            r.expect.as_str(),
            cols,
            recs,
            up,
            r.seconds,
            if r.from_chart == r.to_chart {
                String::new()
            } else {
                format!("{} → {}", r.from_chart, r.to_chart)
            }
        );
    }
    let _ = writeln!(
        s,
        "\n{} transitions ({} proven) on the {} backend in {:.1}s (preparing versions {:.1}s)",
        m.transitions.len(),
        m.proven(),
        m.backend,
        m.wall_seconds,
        m.prepare_seconds
    );
    let mismatches: Vec<&UpgradeReport> = m.transitions.iter().filter(|r| r.failed()).collect();
    for r in &mismatches {
        let _ = writeln!(
            s,
            "✗ {} → {}: {}",
            r.from,
            r.to,
            r.mismatch.as_deref().unwrap_or_default()
        );
    }
    for r in m
        .transitions
        .iter()
        .filter(|r| r.failed() || r.verdict != Verdict::Survived)
    {
        let _ = writeln!(s, "\n{}", "─".repeat(80));
        s.push_str(&text(r));
    }
    s
}

pub fn json<T: serde::Serialize>(r: &T) -> serde_json::Result<String> {
    serde_json::to_string_pretty(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upgrade::plan::{Transition, Via};

    fn transition() -> Transition {
        Transition {
            from: "1.0.0".parse().unwrap(),
            to: "1.5.0".parse().unwrap(),
            reason: "r".into(),
            values_files: Vec::new(),
            to_values_files: Vec::new(),
            from_chart: None,
            expect: Verdict::Survived,
            signature: None,
            orphan_statefulset: false,
            via: Via::InPlace,
        }
    }

    fn matrix(transitions: Vec<UpgradeReport>) -> MatrixReport {
        MatrixReport {
            backend: "process".into(),
            wall_seconds: 1.0,
            prepare_seconds: 0.5,
            transitions,
        }
    }

    #[test]
    fn a_matrix_whose_every_transition_failed_to_set_up_proves_nothing() {
        let m = matrix(vec![UpgradeReport::not_run(
            "process",
            &transition(),
            "tree".into(),
            "tree".into(),
        )]);
        let why = nothing_proven(&m).expect("nothing ran");
        assert!(
            why.contains("none of 1 transitions was exercised")
                && why.contains("1 could not be set up"),
            "{why}"
        );
        assert!(matrix_text(&m).contains("1 transitions (0 proven)"));
    }

    #[test]
    fn one_agreeing_transition_that_ran_is_proof() {
        let mut r = UpgradeReport::not_run("process", &transition(), "tree".into(), "tree".into());
        r.verdict = Verdict::Survived;
        let m = matrix(vec![r]);
        assert_eq!((m.proven(), nothing_proven(&m)), (1, None));
        assert!(
            nothing_proven(&matrix(Vec::new()))
                .unwrap()
                .contains("no transition ran")
        );
    }
}
