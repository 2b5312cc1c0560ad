//! `faults-full-volume`: a full data claim refuses writes visibly and loses no acknowledged one.

use crate::backend::Backend;
use crate::checks::{About, Run, Runner, faults};

pub const ABOUT: About = About { name: "faults-full-volume", opt_in: true, applies: faults::applies_full_volume, needs: &[] };

pub fn runner<B: Backend>() -> Runner<B> {
    Runner {
        exercised: |backend, _, _| backend.limits_volume_size(),
        run: Run::Api(|ctx, _| Box::pin(async move { faults::full_volume(ctx, faults::seed(std::env::var(faults::SEED_ENV).ok())?).await })),
    }
}
