//! Upgrade reproduction: deploy version A (or an older chart), write the known dataset,
//! upgrade in place to B on the same data with [`Backend::upgrade`](crate::Backend::upgrade),
//! diff record by record what is still there, then run the conformance checks on B.
//!
//! Each transition ends in one [`Verdict`]. Nothing here knows in advance which transitions
//! work: the verdict is whatever the run shows, and the matrix (fixtures/upgrades.yaml)
//! records what running established — for an expected failure, also its [`Signature`] — so
//! that a change in behaviour, or a failure for another cause, fails loudly.

pub mod chart;
pub mod fault;
pub mod log;
pub mod matrix;
pub mod plan;
pub mod report;
pub mod run;
pub mod secrets;
pub mod signature;
pub mod verdict;

pub use chart::ChartCheckout;
pub use fault::Fault;
pub use matrix::run_matrix;
pub use plan::{Transition, UpgradeMatrix};
pub use report::{MatrixReport, Step, StepStatus, UpgradeReport};
pub use run::run_one;
pub use signature::Signature;
pub use verdict::Verdict;

#[derive(Debug, Clone)]
pub struct UpgradeOptions {
    /// Leave B running after the report (the caller tears it down).
    pub keep: bool,
    /// Test hook: tamper with the data after the upgrade, or make B's pod invalid.
    pub fault: Option<Fault>,
    /// Log lines shown from each side of the upgrade.
    pub log_lines: usize,
    /// Transitions run at once by [`run_matrix`].
    pub jobs: usize,
    /// One line per finished transition on stderr.
    pub progress: bool,
    /// Run the conformance checks on B (off only where the diff alone is under test).
    pub checks: bool,
}

impl Default for UpgradeOptions {
    fn default() -> Self {
        UpgradeOptions {
            keep: false,
            fault: None,
            log_lines: 25,
            jobs: 1,
            progress: true,
            checks: true,
        }
    }
}
