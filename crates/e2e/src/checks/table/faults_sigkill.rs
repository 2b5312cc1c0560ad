//! `faults-sigkill`: every acknowledged write survives a SIGKILL of the server's container.

use crate::backend::Backend;
use crate::checks::{About, Run, Runner, faults};

pub const ABOUT: About = About { name: "faults-sigkill", opt_in: true, applies: faults::applies_sigkill, needs: &[] };

pub fn runner<B: Backend>() -> Runner<B> {
    Runner {
        exercised: |backend, _, _| backend.kills_containers(),
        run: Run::Api(|ctx, _| Box::pin(async move { faults::sigkill(ctx, faults::seed(std::env::var(faults::SEED_ENV).ok())?).await })),
    }
}
