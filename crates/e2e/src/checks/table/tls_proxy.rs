//! `tls-proxy`: on 1.x the nginx sidecar terminates TLS and the server's own port is not
//! reachable around it from outside the pod.

use render::Expected;

use crate::backend::Backend;
use crate::checks::{About, Need, Run, Runner, tls};

pub const ABOUT: About = About { name: "tls-proxy", opt_in: false, applies, needs: &[Need::TlsCertificate] };

fn applies(e: &Expected) -> Result<(), String> {
    super::tls::applies(e)?;
    match e.tls.as_ref().and_then(|t| t.proxied_server_port) {
        Some(_) => Ok(()),
        None => Err(format!("Chroma {} serves TLS itself (uvicorn): there is no proxy to go around", e.version)),
    }
}

pub fn runner<B: Backend>() -> Runner<B> {
    Runner {
        exercised: |backend, deployed, _| tls::proxy_only_unexercised(backend, deployed).map_or(Ok(()), Err),
        run: Run::Api(|ctx, _| Box::pin(tls::proxy_only(ctx))),
    }
}
