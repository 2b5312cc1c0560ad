//! `faults-memory`: a memory limit below what the workload needs — the container is
//! OOM-killed, reported `OOMKilled`, restarted, and what the server acknowledged reads back.

use crate::backend::Backend;
use crate::checks::{About, Run, Runner, faults};

pub const ABOUT: About = About { name: "faults-memory", opt_in: true, applies: faults::applies_memory, needs: &[] };

pub fn runner<B: Backend>() -> Runner<B> {
    Runner {
        exercised: |backend, _, _| backend.limits_memory(),
        run: Run::Api(|ctx, _| Box::pin(async move { faults::memory(ctx, faults::seed(std::env::var(faults::SEED_ENV).ok())?).await })),
    }
}
