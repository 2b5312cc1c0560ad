//! `metrics` (opt-in: it builds and starts Prometheus and waits out the collector's flushes,
//! about a minute): Chroma's spans through the chart's collector into Prometheus, scraped as
//! the rendered ServiceMonitor says, and every dashboard panel showing data.

use crate::backend::Backend;
use crate::checks::{About, Run, Runner, metrics};

pub const ABOUT: About = About { name: "metrics", opt_in: true, applies: metrics::applies, needs: &[] };

pub fn runner<B: Backend>() -> Runner<B> {
    Runner {
        exercised: |backend, deployed, prepared| match prepared.workloads.metrics.deployment.as_ref().and_then(|d| d.metadata.name.clone()) {
            Some(name) => backend.pod_ip(deployed, &name).map(|_| ()),
            None => Ok(()),
        },
        run: Run::Api(|ctx, prepared| Box::pin(async move { metrics::metrics(ctx, &prepared.workloads.metrics, prepared.otlp.as_ref()).await })),
    }
}
