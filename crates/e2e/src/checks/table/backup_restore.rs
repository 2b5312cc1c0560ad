//! `backup-restore`: the backup CronJob's Job dumps the data, and the restore Job a fresh
//! release of the same values would run brings it back.

use render::Expected;

use crate::backend::Backend;
use crate::checks::{About, Need, Run, Runner, backup, exercised_everywhere};

pub const ABOUT: About = About { name: "backup-restore", opt_in: false, applies, needs: &[Need::RestoreRender] };

fn applies(e: &Expected) -> Result<(), String> {
    match e.backup {
        Some(_) => Ok(()),
        None => Err("backup.enabled is off in this deployment's values: there is no backup CronJob to run".into()),
    }
}

pub fn runner<B: Backend>() -> Runner<B> {
    Runner {
        exercised: exercised_everywhere,
        run: Run::Jobs(|backend, deployed, expected, prepared| Box::pin(backup::backup_restore(backend, deployed, expected, &prepared.workloads))),
    }
}
