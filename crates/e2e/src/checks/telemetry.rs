//! The `telemetry` check: after API calls, the harness's OTLP receiver must hold spans from
//! the configured `serviceName` (and only from it), metrics exactly where the spec model says
//! the version exports them, and on 1.x nothing from a crate its filters cut to `error`.
//!
//! What each era sends was measured (docs/chroma-eras.md#telemetry): 0.4.15–0.6.3 send spans
//! only (FastAPI request spans, `FastAPI.*`/`SegmentAPI.*` operation spans); 1.x sends
//! `chroma_frontend` spans (1.0.x: its request spans; later `collection_add` and kin, with
//! the request spans from `chroma_tracing::tower_tracing`, except 1.2.2) and, every
//! `OTEL_METRIC_EXPORT_INTERVAL`, metrics.

use std::collections::BTreeSet;
use std::time::Duration;

use render::{Expected, Telemetry};

use super::Ctx;
use crate::backend::Backend;
use crate::dataset::{self, Dataset};
use crate::otlp::{ReceivedMetric, ReceivedSpan, Receiver};

/// Both eras batch spans for up to 5 s before exporting (BatchSpanProcessor defaults).
const SPAN_WAIT: Duration = Duration::from_secs(20);
/// The live deployment sets `OTEL_METRIC_EXPORT_INTERVAL=2000`; the default is 60 s.
const METRIC_WAIT: Duration = Duration::from_secs(20);
/// How long a "nothing of this kind arrives" claim is watched after the spans came.
const QUIET_WAIT: Duration = Duration::from_secs(6);

/// Why a `metrics.enabled` deployment is not checked live (never a PASS): its spans go to the
/// chart's collector, which no backend here runs.
pub const METRICS_NOT_RUN: &str = "metrics.enabled sends the spans to the chart's OpenTelemetry Collector, not to the harness's receiver: \
the `metrics` check proves that path (collector, Prometheus, dashboard, and forwarding to chromadb.telemetry.endpoint)";

/// The crate whose spans a 1.x server sends for every collection write (measured).
pub const FRONTEND_CRATE: &str = "chroma_frontend";

/// `Err(reason)` when there is nothing to check: telemetry off, or a release without OTel.
pub fn applies(e: &Expected) -> Result<(), String> {
    if e.metrics.is_some() {
        return Err(METRICS_NOT_RUN.into());
    }
    match &e.telemetry {
        Telemetry::Off => Err(
            "chromadb.telemetry.enabled is not set for this deployment: nothing is exported".into(),
        ),
        Telemetry::Ignored { reason } => Err(reason.clone()),
        // What such a deployment exports is what the unfiltered one exports: not run twice.
        Telemetry::Exported {
            filters_ignored: true,
            ..
        } => Err(format!(
            "Chroma {} does not read chromadb.telemetry.filters (0.x has none; 1.x from 1.0.16): the deployment would export exactly what the unfiltered one does",
            e.version
        )),
        Telemetry::Exported { .. } => Ok(()),
    }
}

/// The Rust module a 1.x span came from (`code.namespace`, e.g. `chroma_frontend::server`).
fn crate_of(s: &ReceivedSpan) -> Option<&str> {
    s.attributes
        .get("code.namespace")
        .map(|ns| ns.split("::").next().unwrap_or(ns))
}

fn summary<T>(items: &[T], key: impl Fn(&T) -> String) -> String {
    let names: BTreeSet<String> = items.iter().map(key).collect();
    let shown: Vec<_> = names.iter().take(8).cloned().collect();
    format!(
        "{} distinct: {}{}",
        names.len(),
        shown.join(", "),
        if names.len() > 8 { ", …" } else { "" }
    )
}

/// The crates a 1.x deployment's filters cut to `error` (the model leaves filters empty where
/// the server ignores them).
fn cut_crates(expected: &Telemetry) -> Vec<String> {
    match expected {
        Telemetry::Exported { filters, .. } => filters
            .iter()
            .filter(|f| f.filter_level.eq_ignore_ascii_case("error"))
            .map(|f| f.crate_name.clone())
            .collect(),
        _ => Vec::new(),
    }
}

/// What arrived, judged against what the model says the deployment exports.
pub fn judge(
    expected: &Telemetry,
    spans: &[ReceivedSpan],
    metrics: &[ReceivedMetric],
) -> Result<String, String> {
    let Telemetry::Exported {
        service_name,
        metrics: exports_metrics,
        ..
    } = expected
    else {
        return Err(format!("nothing to judge: the model says {expected:?}"));
    };
    let cut = cut_crates(expected);
    for c in &cut {
        let leaked: Vec<_> = spans.iter().filter(|s| crate_of(s) == Some(c)).collect();
        if !leaked.is_empty() {
            return Err(format!(
                "{} spans from crate `{c}` arrived although its filter is `error` ({})",
                leaked.len(),
                summary(&leaked, |s| s.name.clone())
            ));
        }
    }
    // With a crate cut, every span may be gone (1.0.x serves requests from chroma_frontend);
    // then the metrics, below, are what proves the export works.
    if spans.is_empty() && cut.is_empty() {
        return Err(format!(
            "no span arrived at the OTLP receiver within {SPAN_WAIT:?} of the API calls (service.name `{service_name}` expected)"
        ));
    }
    let foreign: BTreeSet<String> = spans
        .iter()
        .filter(|s| s.service_name.as_deref() != Some(service_name))
        .map(|s| format!("{:?}", s.service_name))
        .collect();
    if !foreign.is_empty() {
        return Err(format!(
            "{} of {} spans carry service.name {} instead of the configured `{service_name}` (chromadb.telemetry.serviceName not passed through)",
            spans
                .iter()
                .filter(|s| s.service_name.as_deref() != Some(service_name))
                .count(),
            spans.len(),
            foreign.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if cut.is_empty() && !spans.iter().any(|s| s.name.contains("add")) {
        return Err(format!(
            "no span for the records added (a name containing `add`); got {}",
            summary(spans, |s| s.name.clone())
        ));
    }
    let mut detail = if spans.is_empty() {
        "no spans".to_string()
    } else {
        format!(
            "{} spans from `{service_name}` ({})",
            spans.len(),
            summary(spans, |s| s.name.clone())
        )
    };

    if *exports_metrics {
        let foreign = metrics
            .iter()
            .filter(|m| m.service_name.as_deref() != Some(service_name))
            .count();
        if foreign > 0 {
            return Err(format!(
                "{foreign} of {} metric points carry another service.name than the configured `{service_name}`",
                metrics.len()
            ));
        }
        if metrics.is_empty() {
            return Err(format!(
                "no metric from `{service_name}` arrived within {METRIC_WAIT:?}; the 1.x server exports metrics"
            ));
        }
        detail.push_str(&format!(
            "; {} metric points from `{service_name}` ({})",
            metrics.len(),
            summary(metrics, |m| m.name.clone())
        ));
    } else if !metrics.is_empty() {
        return Err(format!(
            "{} metrics arrived, but this release exports spans only ({})",
            metrics.len(),
            summary(metrics, |m| m.name.clone())
        ));
    } else {
        detail.push_str("; no metrics (spans only, as for every 0.x release)");
    }

    if !cut.is_empty() {
        detail.push_str(&format!(
            "; none from {} (filtered to error)",
            cut.join(", ")
        ));
    } else if *exports_metrics && !spans.iter().any(|s| crate_of(s) == Some(FRONTEND_CRATE)) {
        // The baseline a filter is measured against: unfiltered, the frontend's spans come.
        return Err(format!(
            "no span from crate `{FRONTEND_CRATE}` although no filter cuts it ({})",
            summary(spans, |s| s.name.clone())
        ));
    }
    Ok(detail)
}

pub async fn telemetry<B: Backend>(ctx: &mut Ctx<'_, B>, rx: &Receiver) -> Result<String, String> {
    let Telemetry::Exported { endpoint, .. } = &ctx.expected.telemetry else {
        return Err("the telemetry check ran on a deployment that exports nothing".into());
    };
    if *endpoint != rx.endpoint() {
        return Err(format!(
            "the deployment sends telemetry to {endpoint}, not to the harness's receiver at {}",
            rx.endpoint()
        ));
    }
    let ds = Dataset::small("otel", 1, 3);
    dataset::write(&ctx.api, &ds, &mut ctx.evidence)
        .await
        .map_err(|e| format!("writing the dataset: {e}"))?;
    let snap = dataset::read(&ctx.api, &ds, &mut ctx.evidence).await;
    let diff = dataset::diff(&ds, &snap, dataset::Scope::Shared);
    if !diff.intact() {
        return Err(format!(
            "the records written for the spans did not read back: {}",
            diff.problems().join("; ")
        ));
    }
    let expected = ctx.expected.telemetry.clone();
    let exports_metrics = matches!(expected, Telemetry::Exported { metrics: true, .. });
    if cut_crates(&expected).is_empty() {
        rx.wait_until(SPAN_WAIT, |s, _| s.iter().any(|s| s.name.contains("add")))
            .await;
    }
    if exports_metrics {
        rx.wait_until(METRIC_WAIT, |_, m| !m.is_empty()).await;
    }
    // Give what must not come (a filtered crate's spans, a 0.x metric) a batch window to show.
    if !exports_metrics || !cut_crates(&expected).is_empty() {
        tokio::time::sleep(QUIET_WAIT).await;
    }
    judge(&expected, &rx.spans(), &rx.metrics())
}

#[cfg(test)]
mod tests {
    use super::*;
    use render::OtelFilter;
    use std::collections::BTreeMap;

    fn span(name: &str, service: &str, ns: Option<&str>) -> ReceivedSpan {
        let attributes = ns
            .map(|n| BTreeMap::from([("code.namespace".to_string(), n.to_string())]))
            .unwrap_or_default();
        ReceivedSpan {
            name: name.into(),
            service_name: Some(service.into()),
            scope: String::new(),
            attributes,
            start_unix_nanos: 0,
            end_unix_nanos: 1,
        }
    }

    fn exported(metrics: bool, filters: &[(&str, &str)]) -> Telemetry {
        Telemetry::Exported {
            endpoint: "http://127.0.0.1:1".into(),
            service_name: "svc".into(),
            granularity: None,
            filters: filters
                .iter()
                .map(|(c, l)| OtelFilter {
                    crate_name: (*c).into(),
                    filter_level: (*l).into(),
                })
                .collect(),
            filters_ignored: false,
            metrics,
        }
    }

    fn metric(service: &str) -> ReceivedMetric {
        ReceivedMetric {
            name: "m".into(),
            service_name: Some(service.into()),
            scope: String::new(),
        }
    }

    #[test]
    fn metrics_deployments_are_skipped_with_the_reason() {
        let e = Expected::from_values(
            &serde_yaml::from_str("metrics: {enabled: true}").unwrap(),
            &"1.5.0".parse().unwrap(),
        )
        .unwrap();
        assert!(
            applies(&e)
                .unwrap_err()
                .contains("the `metrics` check proves")
        );
    }

    #[test]
    fn ignored_filters_skip_the_duplicate_deployment_with_the_reason() {
        let values = serde_yaml::from_str("chromadb: {telemetry: {enabled: true, endpoint: 'http://c:1', filters: [{crate_name: a, filter_level: error}]}}").unwrap();
        for v in ["0.6.3", "1.0.15"] {
            let e = Expected::from_values(&values, &v.parse().unwrap()).unwrap();
            assert!(
                applies(&e)
                    .unwrap_err()
                    .contains("does not read chromadb.telemetry.filters"),
                "{v}"
            );
        }
        assert!(
            applies(&Expected::from_values(&values, &"1.0.16".parse().unwrap()).unwrap()).is_ok()
        );
    }

    #[test]
    fn python_spans_with_the_service_name_and_no_metrics_pass() {
        let spans = [span("FastAPI.add", "svc", None)];
        assert!(
            judge(&exported(false, &[]), &spans, &[])
                .unwrap()
                .contains("1 spans from `svc`")
        );
    }

    #[test]
    fn a_default_service_name_fails_naming_both() {
        let spans = [span("FastAPI.add", "chromadb", None)];
        let err = judge(&exported(false, &[]), &spans, &[]).unwrap_err();
        assert!(
            err.contains("Some(\"chromadb\")") && err.contains("`svc`"),
            "{err}"
        );
    }

    #[test]
    fn no_spans_fails() {
        assert!(
            judge(&exported(false, &[]), &[], &[])
                .unwrap_err()
                .contains("no span arrived")
        );
    }

    #[test]
    fn metrics_from_a_spans_only_release_fail() {
        let spans = [span("FastAPI.add", "svc", None)];
        assert!(
            judge(&exported(false, &[]), &spans, &[metric("svc")])
                .unwrap_err()
                .contains("spans only")
        );
    }

    #[test]
    fn rust_server_without_metrics_fails() {
        let spans = [span(
            "collection_add",
            "svc",
            Some("chroma_frontend::server"),
        )];
        assert!(
            judge(&exported(true, &[]), &spans, &[])
                .unwrap_err()
                .contains("no metric")
        );
    }

    #[test]
    fn frontend_spans_through_an_error_filter_fail() {
        let spans = [
            span("POST /add", "svc", Some("chroma_tracing::tower_tracing")),
            span("collection_add", "svc", Some("chroma_frontend::server")),
        ];
        let err = judge(
            &exported(true, &[("chroma_frontend", "error")]),
            &spans,
            &[metric("svc")],
        )
        .unwrap_err();
        assert!(err.contains("crate `chroma_frontend`"), "{err}");
    }

    #[test]
    fn a_filter_that_cut_every_span_passes_only_with_metrics() {
        let t = exported(true, &[("chroma_frontend", "error")]);
        assert!(
            judge(&t, &[], &[metric("svc")])
                .unwrap()
                .contains("none from chroma_frontend")
        );
        assert!(judge(&t, &[], &[]).unwrap_err().contains("no metric"));
    }

    #[test]
    fn metrics_under_another_service_name_fail() {
        let spans = [span(
            "collection_add",
            "svc",
            Some("chroma_frontend::server"),
        )];
        assert!(
            judge(&exported(true, &[]), &spans, &[metric("chroma")])
                .unwrap_err()
                .contains("another service.name")
        );
    }

    #[test]
    fn error_filter_honoured_passes_and_unfiltered_needs_the_frontend_baseline() {
        let only_http = [span(
            "POST /add",
            "svc",
            Some("chroma_tracing::tower_tracing"),
        )];
        assert!(
            judge(
                &exported(true, &[("chroma_frontend", "error")]),
                &only_http,
                &[metric("svc")]
            )
            .is_ok()
        );
        assert!(
            judge(&exported(true, &[]), &only_http, &[metric("svc")])
                .unwrap_err()
                .contains("no span from crate `chroma_frontend`")
        );
    }
}
