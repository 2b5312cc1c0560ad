//! `auth`: the auth the values ask for is enforced, with the credential from the pod's Secret.

use crate::backend::Backend;
use crate::checks::{About, Run, Runner, always, exercised_everywhere, probes};

pub const ABOUT: About = About { name: "auth", opt_in: false, applies: always, needs: &[] };

pub fn runner<B: Backend>() -> Runner<B> {
    Runner { exercised: exercised_everywhere, run: Run::Api(|ctx, _| Box::pin(probes::auth(ctx))) }
}
