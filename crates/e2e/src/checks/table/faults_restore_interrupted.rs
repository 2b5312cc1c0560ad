//! `faults-restore-interrupted`: the restore Job's pod killed half-way; the next attempt
//! refuses or completes, never a silent half-restore.

use render::Expected;

use crate::backend::Backend;
use crate::checks::{About, Outcome, Run, Runner, exercised_everywhere, faults, faults_backup};

fn applies(e: &Expected) -> Result<(), String> {
    match e.backup {
        Some(_) => Ok(()),
        None => Err("backup.enabled is off in this deployment's values: there is no backup CronJob to run".into()),
    }
}

fn seed() -> Result<u64, Outcome> {
    faults::seed(std::env::var(faults::SEED_ENV).ok()).map_err(|reason| Outcome::Fail { reason, evidence: Vec::new(), log_tail: String::new() })
}

pub const ABOUT: About = About { name: "faults-restore-interrupted", opt_in: true, applies, needs: &[] };

pub fn runner<B: Backend>() -> Runner<B> {
    Runner {
        exercised: exercised_everywhere,
        run: Run::Jobs(|backend, deployed, expected, prepared| {
            Box::pin(async move {
                match seed() {
                    Ok(seed) => faults_backup::restore_interrupted(backend, deployed, expected, &prepared.workloads, seed).await,
                    Err(o) => o,
                }
            })
        }),
    }
}
