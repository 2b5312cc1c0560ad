//! `reset`: `allowReset` decides whether a reset wipes the data (runs last: it does).

use crate::backend::Backend;
use crate::checks::{About, Run, Runner, always, exercised_everywhere, probes};

pub const ABOUT: About = About { name: "reset", opt_in: false, applies: always, needs: &[] };

pub fn runner<B: Backend>() -> Runner<B> {
    Runner { exercised: exercised_everywhere, run: Run::Api(|ctx, _| Box::pin(probes::reset(ctx))) }
}
