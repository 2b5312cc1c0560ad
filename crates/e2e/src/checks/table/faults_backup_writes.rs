//! `faults-backup-writes`: a dump taken while a writer adds records restores only records the
//! server acknowledged, and the tool names each collection whose count moved while it read.

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

pub const ABOUT: About = About { name: "faults-backup-writes", opt_in: true, applies, needs: &[] };

pub fn runner<B: Backend>() -> Runner<B> {
    Runner {
        exercised: exercised_everywhere,
        run: Run::Jobs(|backend, deployed, expected, prepared| {
            Box::pin(async move {
                match seed() {
                    Ok(seed) => faults_backup::backup_writes(backend, deployed, expected, &prepared.workloads, seed).await,
                    Err(o) => o,
                }
            })
        }),
    }
}
