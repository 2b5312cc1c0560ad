//! `telemetry`: the server exports its spans (and 1.x its metrics) to the OTLP endpoint of
//! the values, filtered as they say.

use crate::backend::Backend;
use crate::checks::{About, Need, Run, Runner, telemetry};

pub const ABOUT: About = About { name: "telemetry", opt_in: false, applies: telemetry::applies, needs: &[Need::OtlpReceiver] };

const NO_RECEIVER: &str =
    "no OTLP receiver in this run: the deployment does not point chromadb.telemetry.endpoint at `<otlp-receiver>` (fixtures/live.yaml `runtime:`)";

pub fn runner<B: Backend>() -> Runner<B> {
    Runner {
        exercised: |backend, deployed, prepared| {
            backend.reaches_harness_loopback(deployed)?;
            prepared.otlp.as_ref().map(|_| ()).ok_or_else(|| NO_RECEIVER.to_string())
        },
        run: Run::Api(|ctx, prepared| {
            Box::pin(async move {
                let rx = prepared.otlp.as_ref().ok_or_else(|| NO_RECEIVER.to_string())?;
                telemetry::telemetry(ctx, rx).await
            })
        }),
    }
}
