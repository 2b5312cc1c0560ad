//! `faults-backup-writes`: a dump taken while a writer adds records restores only records the
//! server acknowledged, and the tool names each collection whose count moved while it read.

use crate::backend::Backend;
use crate::checks::{About, Need, Run, Runner, exercised_everywhere, faults_backup};

pub const ABOUT: About = About { name: "faults-backup-writes", opt_in: true, applies: faults_backup::applies, needs: &[Need::RestoreRender] };

pub fn runner<B: Backend>() -> Runner<B> {
    Runner {
        exercised: exercised_everywhere,
        run: Run::Jobs(|backend, deployed, expected, prepared| {
            Box::pin(async move {
                match faults_backup::seed_or_fail() {
                    Ok(seed) => faults_backup::backup_writes(backend, deployed, expected, &prepared.workloads, seed).await,
                    Err(o) => o,
                }
            })
        }),
    }
}
