//! `faults-restore-interrupted`: the restore Job's pod killed half-way; the next attempt
//! refuses or completes, never a silent half-restore.

use crate::backend::Backend;
use crate::checks::{About, Need, Run, Runner, exercised_everywhere, faults_backup};

pub const ABOUT: About = About { name: "faults-restore-interrupted", opt_in: true, applies: faults_backup::applies, needs: &[Need::RestoreRender] };

pub fn runner<B: Backend>() -> Runner<B> {
    Runner {
        exercised: exercised_everywhere,
        run: Run::Jobs(|backend, deployed, expected, prepared| {
            Box::pin(async move {
                match faults_backup::seed_or_fail() {
                    Ok(seed) => faults_backup::restore_interrupted(backend, deployed, expected, &prepared.workloads, seed).await,
                    Err(o) => o,
                }
            })
        }),
    }
}
