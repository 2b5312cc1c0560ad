//! `faults-scale`: every acknowledged write survives the pod going away and coming back.

use crate::backend::Backend;
use crate::checks::{About, Run, Runner, faults};

pub const ABOUT: About = About { name: "faults-scale", opt_in: true, applies: faults::applies_scale, needs: &[] };

pub fn runner<B: Backend>() -> Runner<B> {
    Runner {
        exercised: |backend, _, _| backend.kills_containers(),
        run: Run::Api(|ctx, _| Box::pin(async move { faults::scale(ctx, faults::seed(std::env::var(faults::SEED_ENV).ok())?).await })),
    }
}
