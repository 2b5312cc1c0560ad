//! Passed/failed counts, shared by the test command's steps and the live smoke run (its own
//! module so `test` and `e2e` do not import each other).

use e2e::checks::Outcome;
use e2e::runner::RunReport;

/// Passed/failed units from one step (tests, checks, or the step itself as one unit).
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
}

impl Tally {
    pub fn one(ok: bool) -> Tally {
        Tally {
            passed: ok as usize,
            failed: (!ok) as usize,
        }
    }

    /// A live run: each passed check and each failed check or deployment counts once; a
    /// skipped check counts neither way.
    pub fn of_report(report: &RunReport) -> Tally {
        let mut t = Tally::default();
        for d in &report.deployments {
            t.failed += d.error.is_some() as usize;
            for c in &d.checks {
                match c.outcome {
                    Outcome::Pass { .. } | Outcome::ExpectedFail { .. } => t.passed += 1,
                    Outcome::Fail { .. } => t.failed += 1,
                    Outcome::Skipped { .. } => {}
                }
            }
        }
        t
    }
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Tally) {
        self.passed += o.passed;
        self.failed += o.failed;
    }
}
