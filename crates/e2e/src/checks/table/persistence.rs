//! `persistence`: what was written survives a pod restart when the values promise it.

use crate::backend::Backend;
use crate::checks::{About, Run, Runner, always, exercised_everywhere, probes};

pub const ABOUT: About = About { name: "persistence", opt_in: false, applies: always, needs: &[] };

pub fn runner<B: Backend>() -> Runner<B> {
    Runner { exercised: exercised_everywhere, run: Run::Api(|ctx, _| Box::pin(probes::persistence(ctx))) }
}
