//! `tls-rotation`: a renewed certificate in the Secret is served without a restart.

use crate::backend::Backend;
use crate::checks::{About, Need, Run, Runner, tls};

pub const ABOUT: About = About { name: "tls-rotation", opt_in: false, applies: super::tls::applies, needs: &[Need::TlsCertificate] };

pub fn runner<B: Backend>() -> Runner<B> {
    Runner {
        exercised: |backend, deployed, _| tls::rotation_unexercised(backend, deployed).map_or(Ok(()), Err),
        run: Run::Api(|ctx, _| Box::pin(tls::rotation(ctx))),
    }
}
