//! `tls`: the API answers HTTPS with the certificate of the user's Secret, and plain HTTP
//! does not get through.

use render::Expected;

use crate::backend::Backend;
use crate::checks::{About, Need, Run, Runner, exercised_everywhere, tls};

pub const ABOUT: About = About { name: "tls", opt_in: false, applies, needs: &[Need::TlsCertificate] };

/// Every TLS check needs TLS on.
pub(super) fn applies(e: &Expected) -> Result<(), String> {
    match e.tls {
        Some(_) => Ok(()),
        None => Err("tls.enabled is off: the API is plain HTTP by the values".into()),
    }
}

pub fn runner<B: Backend>() -> Runner<B> {
    Runner { exercised: exercised_everywhere, run: Run::Api(|ctx, _| Box::pin(tls::tls(ctx))) }
}
