//! `api-surface`: heartbeat and collections answer under the era's API path.

use crate::backend::Backend;
use crate::checks::{About, Run, Runner, always, exercised_everywhere, probes};

pub const ABOUT: About = About { name: "api-surface", opt_in: false, applies: always, needs: &[] };

pub fn runner<B: Backend>() -> Runner<B> {
    Runner { exercised: exercised_everywhere, run: Run::Api(|ctx, _| Box::pin(probes::api_surface(ctx))) }
}
