//! `payload`: the payload limit of `maxPayloadSizeBytes` (1.x only).

use render::Expected;

use crate::backend::Backend;
use crate::checks::{About, Run, Runner, exercised_everywhere, probes};

pub const ABOUT: About = About { name: "payload", opt_in: false, applies, needs: &[] };

fn applies(e: &Expected) -> Result<(), String> {
    match e.max_payload_bytes {
        Some(_) => Ok(()),
        None => Err(format!("Chroma {} (< 1.0.0) has no payload limit; maxPayloadSizeBytes is ignored there", e.version)),
    }
}

pub fn runner<B: Backend>() -> Runner<B> {
    Runner { exercised: exercised_everywhere, run: Run::Api(|ctx, _| Box::pin(probes::payload(ctx))) }
}
