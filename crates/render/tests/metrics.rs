//! `metrics.enabled`: the chart's OpenTelemetry Collector (its own Deployment), the Chroma
//! server pointed at it, the ServiceMonitor and the Grafana dashboard — each against the
//! model (`Expected::metrics`, `spec::collector_endpoint`), never against another render.

mod support;

use render::spec::{self, lookup};
use render::{ExpectedMetrics, RenderRequest, Rendered, ServiceMonitorMode, Telemetry};
use rstest::rstest;
use serde_json::Value as Json;
use serde_yaml::Value;
use support::*;

const RELEASE: &str = "chroma";
const SERVICE_MONITOR_API: &str = "monitoring.coreos.com/v1/ServiceMonitor";

fn doc<'a>(r: &'a Rendered, kind: &str, name: &str) -> Option<&'a Json> {
    r.documents
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

fn kinds(r: &Rendered, kind: &str) -> usize {
    r.documents.iter().filter(|d| d["kind"] == kind).count()
}

fn render_with(version: &str, values: &Value, api_versions: &[&str]) -> Rendered {
    let mut req: RenderRequest = suite().request(Some(&v(version)), values);
    for a in api_versions {
        req = req.api_version(*a);
    }
    suite()
        .cache
        .render(&req)
        .unwrap_or_else(|e| panic!("{version}: {e}"))
        .as_ref()
        .clone()
}

fn metrics_of(values: &Value, version: &str) -> ExpectedMetrics {
    render::Expected::from_values(values, &v(version))
        .expect("accepted")
        .metrics
        .expect("metrics on")
}

/// The labels a selector picks, as a JSON map.
fn matches(selector: &Json, labels: &Json) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

#[rstest]
#[case::python_floor_0_4_15("0.4.15")]
#[case::python_0_6_3("0.6.3")]
#[case::rust_1_0_0("1.0.0")]
#[case::rust_1_5_0("1.5.0")]
fn collector_runs_apart_from_chroma_which_sends_to_it(#[case] version: &str) {
    let case = suite().case(version, "metrics");
    let (e, r) = case.accepted().expect("accepted");
    let m = e.metrics.as_ref().expect("the model has metrics on");
    let name = spec::collector_name(&case.values, RELEASE).unwrap();
    let endpoint = spec::collector_endpoint(&case.values, RELEASE).unwrap();

    // Chroma sends to the collector, with the configured service name.
    let Telemetry::Exported {
        endpoint: model_endpoint,
        service_name,
        ..
    } = &e.telemetry
    else {
        panic!("{case}: {:?}", e.telemetry)
    };
    assert_eq!(model_endpoint, spec::CHART_COLLECTOR, "{case}");
    match r.server_config_doc().ok() {
        Some(cfg) => {
            assert_eq!(
                lookup(&cfg, "open_telemetry.endpoint"),
                Some(&Value::from(endpoint.as_str())),
                "{case}"
            );
            assert_eq!(
                lookup(&cfg, "open_telemetry.service_name"),
                Some(&Value::from(service_name.as_str())),
                "{case}"
            );
        }
        None => {
            assert_eq!(
                env_value(r, "CHROMA_OTEL_COLLECTION_ENDPOINT"),
                Some(endpoint.clone()),
                "{case}"
            );
            assert_eq!(
                env_value(r, "CHROMA_OTEL_SERVICE_NAME").as_deref(),
                Some(service_name.as_str()),
                "{case}"
            );
        }
    }

    // The collector: Deployment + Service + config, its pods selected by nothing of Chroma's.
    let dep = doc(r, "Deployment", &name).unwrap_or_else(|| panic!("{case}: no Deployment {name}"));
    let svc = doc(r, "Service", &name).unwrap_or_else(|| panic!("{case}: no Service {name}"));
    assert!(
        doc(r, "ConfigMap", &name).is_some(),
        "{case}: no collector config"
    );
    let pod_labels = &dep["spec"]["template"]["metadata"]["labels"];
    assert!(
        matches(&dep["spec"]["selector"]["matchLabels"], pod_labels),
        "{case}: the Deployment does not select its pods"
    );
    assert!(
        matches(&svc["spec"]["selector"], pod_labels),
        "{case}: the collector Service misses its pods"
    );
    let chroma_svc = doc(
        r,
        "Service",
        &spec::fullname(&case.values, RELEASE).unwrap(),
    )
    .expect("Chroma Service");
    assert!(
        !matches(&chroma_svc["spec"]["selector"], pod_labels),
        "{case}: Chroma's Service would send API traffic to the collector"
    );
    let chroma_pod = serde_json::to_value(
        &r.statefulset()
            .expect("sts")
            .spec
            .as_ref()
            .expect("spec")
            .template
            .metadata,
    )
    .unwrap();
    assert!(
        !matches(&svc["spec"]["selector"], &chroma_pod["labels"]),
        "{case}: the collector Service selects Chroma's pod"
    );

    let ports: Vec<(String, i64)> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["port"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(
        ports.contains(&("otlp-grpc".into(), 4317))
            && ports.contains(&("metrics".into(), i64::from(m.port))),
        "{case}: {ports:?}"
    );
}

#[test]
fn collector_config_wires_spanmetrics_to_prometheus_and_forwards_upstream() {
    let case = suite().case("1.5.0", "metrics");
    let (e, r) = case.accepted().expect("accepted");
    let m = e.metrics.as_ref().expect("metrics");
    let name = spec::collector_name(&case.values, RELEASE).unwrap();
    let text = r
        .configmap(&name)
        .and_then(|c| c.data.as_ref())
        .and_then(|d| d.get("config.yaml"))
        .expect("config.yaml")
        .clone();
    let cfg: Value = serde_yaml::from_str(&text).expect("collector config is YAML");
    // Every component a pipeline names is defined in its section (connectors count on both ends).
    let defined = |section: &str, c: &str| {
        lookup(&cfg, section)
            .and_then(Value::as_mapping)
            .is_some_and(|m| m.contains_key(c))
    };
    let mut checked = 0;
    for (pipeline, roles) in lookup(&cfg, "service.pipelines")
        .and_then(Value::as_mapping)
        .expect("pipelines")
    {
        for (role, section) in [
            ("receivers", "receivers"),
            ("processors", "processors"),
            ("exporters", "exporters"),
        ] {
            for c in roles
                .get(role)
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                let c = c.as_str().expect("component name");
                assert!(
                    defined(section, c) || (role != "processors" && defined("connectors", c)),
                    "pipeline {pipeline:?} {role}: `{c}` is not defined"
                );
                checked += 1;
            }
        }
    }
    assert_ran(checked, "collector pipeline components");
    let names = |p: &str, role: &str| -> Vec<String> {
        lookup(&cfg, &format!("service.pipelines.{p}.{role}"))
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    assert!(
        names("traces", "exporters").contains(&"spanmetrics".into()),
        "spans feed the connector"
    );
    assert!(
        names("metrics", "receivers").contains(&"spanmetrics".into())
            && names("metrics", "exporters").contains(&"prometheus".into())
    );
    assert_eq!(
        lookup(&cfg, "exporters.prometheus.endpoint"),
        Some(&Value::from(format!("0.0.0.0:{}", m.port)))
    );
    let upstream = m
        .upstream
        .as_deref()
        .expect("the fixture names an upstream");
    assert_eq!(
        lookup(&cfg, "exporters.otlp/upstream.endpoint").or_else(|| cfg
            .get("exporters")
            .and_then(|x| x.get("otlp/upstream"))
            .and_then(|x| x.get("endpoint"))),
        Some(&Value::from(upstream))
    );
    assert!(
        names("traces", "exporters").contains(&"otlp/upstream".into()),
        "traces are forwarded to {upstream}"
    );
}

#[test]
fn no_upstream_means_no_forwarding() {
    let values = yaml("metrics: {enabled: true}");
    assert_eq!(metrics_of(&values, "1.5.0").upstream, None);
    let r = render_with("1.5.0", &values, &[]);
    let text = r
        .configmap(&spec::collector_name(&values, RELEASE).unwrap())
        .and_then(|c| c.data.clone())
        .expect("config")["config.yaml"]
        .clone();
    assert!(!text.contains("otlp/upstream"), "{text}");
}

#[rstest]
#[case::auto_without_the_crd("auto", false, false)]
#[case::auto_with_the_crd("auto", true, true)]
#[case::forced_without_the_crd("force", false, true)]
#[case::disabled_with_the_crd("disabled", true, false)]
fn service_monitor_follows_the_mode_and_the_cluster(
    #[case] mode: &str,
    #[case] crd: bool,
    #[case] want: bool,
) {
    let values = yaml(&format!(
        "metrics: {{enabled: true, serviceMonitor: {{mode: {mode}, interval: 15s, labels: {{release: prom}}}}}}"
    ));
    let m = metrics_of(&values, "1.5.0");
    let model_renders = match m.service_monitor {
        ServiceMonitorMode::Force => true,
        ServiceMonitorMode::Auto => crd,
        ServiceMonitorMode::Disabled => false,
    };
    assert_eq!(model_renders, want, "the model's rule");
    let r = render_with(
        "1.5.0",
        &values,
        if crd { &[SERVICE_MONITOR_API] } else { &[] },
    );
    assert_eq!(
        kinds(&r, "ServiceMonitor"),
        usize::from(want),
        "mode {mode}, CRD served: {crd}"
    );
    if let Some(sm) = r.documents.iter().find(|d| d["kind"] == "ServiceMonitor") {
        let schema_path = repo_root().join("fixtures/schemas/servicemonitor-v1-subset.json");
        let schema: Json =
            serde_json::from_str(&std::fs::read_to_string(&schema_path).unwrap()).unwrap();
        let validator = jsonschema::validator_for(&schema).expect("schema compiles");
        let errors: Vec<String> = validator
            .iter_errors(sm)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "ServiceMonitor against {}: {errors:?}",
            schema_path.display()
        );
        assert_eq!(sm["metadata"]["labels"]["release"], "prom");
        assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
        let name = spec::collector_name(&values, RELEASE).unwrap();
        let svc = doc(&r, "Service", &name).expect("collector Service");
        assert!(
            matches(
                &sm["spec"]["selector"]["matchLabels"],
                &svc["metadata"]["labels"]
            ),
            "the ServiceMonitor does not select the collector Service"
        );
    }
}

#[test]
fn the_subset_schema_refuses_what_the_crd_refuses() {
    // The schema must be able to fail: a misplaced field and a bad interval.
    let schema: Json = serde_json::from_str(
        &std::fs::read_to_string(
            repo_root().join("fixtures/schemas/servicemonitor-v1-subset.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let bad_interval = serde_json::json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "x"}, "spec": {"selector": {}, "endpoints": [{"port": "m", "interval": "30 seconds"}]}});
    let misplaced = serde_json::json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "x"}, "spec": {"selector": {}, "port": "metrics"}});
    assert!(!validator.is_valid(&bad_interval));
    assert!(!validator.is_valid(&misplaced));
}

#[test]
fn dashboard_is_labelled_for_the_sidecar_and_charts_rate_errors_and_latency() {
    let case = suite().case("0.6.3", "metrics");
    let (e, r) = case.accepted().expect("accepted");
    let want = e
        .metrics
        .as_ref()
        .and_then(|m| m.dashboard_labels.clone())
        .expect("dashboard on");
    let cm = r
        .configmaps()
        .find(|c| {
            c.data
                .as_ref()
                .is_some_and(|d| d.contains_key("chroma.json"))
        })
        .expect("dashboard ConfigMap");
    let labels = cm.metadata.labels.clone().unwrap_or_default();
    for (k, v) in &want {
        assert_eq!(labels.get(k), Some(v), "label {k}");
    }
    let json: Json = serde_json::from_str(&cm.data.as_ref().unwrap()["chroma.json"])
        .expect("dashboard JSON parses");
    let exprs: Vec<String> = json["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["expr"].as_str().unwrap().to_string())
        })
        .collect();
    assert!(
        exprs
            .iter()
            .any(|x| x.contains("rate(traces_span_metrics_calls_total")),
        "request rate"
    );
    assert!(
        exprs.iter().any(|x| x.contains("STATUS_CODE_ERROR")),
        "errors"
    );
    for q in ["0.50", "0.95", "0.99"] {
        assert!(
            exprs
                .iter()
                .any(|x| x.contains(&format!("histogram_quantile({q}, "))
                    && x.contains("duration_milliseconds_bucket")),
            "p{q}"
        );
    }
    let Telemetry::Exported { service_name, .. } = &e.telemetry else {
        panic!()
    };
    assert_eq!(
        json["templating"]["list"][1]["current"]["value"],
        service_name.as_str(),
        "the dashboard opens on this release's service"
    );
}

/// The request spans are SPAN_KIND_SERVER only on 0.x (FastAPI's instrumentation); the 1.x
/// server's (`HTTP request`, chroma_tracing) are SPAN_KIND_INTERNAL — measured by the `metrics`
/// check on 1.5.0, where a span_kind filter left every panel empty. What both eras' request
/// spans have, and no other span has, is `http.route`.
#[rstest]
#[case::python_server("0.6.3")]
#[case::rust_server("1.5.0")]
fn every_dashboard_query_selects_request_spans_by_route_not_span_kind(#[case] version: &str) {
    let case = suite().case(version, "metrics");
    let (_, r) = case.accepted().expect("accepted");
    let cm = r
        .configmaps()
        .find(|c| {
            c.data
                .as_ref()
                .is_some_and(|d| d.contains_key("chroma.json"))
        })
        .expect("dashboard ConfigMap");
    let json: Json = serde_json::from_str(&cm.data.as_ref().unwrap()["chroma.json"])
        .expect("dashboard JSON parses");
    let exprs: Vec<String> = json["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["expr"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(exprs.len(), 7, "{exprs:?}");
    for x in &exprs {
        assert!(x.contains(r#"http_route!="""#), "{x}");
        assert!(!x.contains("span_kind"), "{x}");
    }
}

#[rstest]
#[case::disabled_dashboard("metrics: {enabled: true, dashboard: {enabled: false}}", "0.6.3", 0)]
#[case::metrics_off("{}", "1.5.0", 0)]
fn nothing_rendered_that_is_not_asked_for(
    #[case] values: &str,
    #[case] version: &str,
    #[case] dashboards: usize,
) {
    let values = yaml(values);
    let e = render::Expected::from_values(&values, &v(version)).expect("accepted");
    let r = render_with(version, &values, &[SERVICE_MONITOR_API]);
    assert_eq!(
        e.metrics
            .as_ref()
            .and_then(|m| m.dashboard_labels.as_ref())
            .map_or(0, |_| 1),
        dashboards,
        "the model"
    );
    assert_eq!(
        r.configmaps()
            .filter(|c| c
                .data
                .as_ref()
                .is_some_and(|d| d.contains_key("chroma.json")))
            .count(),
        dashboards
    );
    if e.metrics.is_none() {
        assert_eq!(
            kinds(&r, "Deployment") + kinds(&r, "ServiceMonitor"),
            0,
            "collector objects without metrics.enabled"
        );
    }
}

#[rstest]
#[case::below_the_otel_floor("metrics: {enabled: true}", "0.4.14", "metrics.enabled")]
#[case::unknown_monitor_mode(
    "metrics: {serviceMonitor: {mode: always}}",
    "1.5.0",
    "metrics.serviceMonitor.mode"
)]
#[case::otlp_port_reused("metrics: {enabled: true, port: 4317}", "1.5.0", "metrics.port")]
#[case::monitor_mode_off_is_a_yaml_boolean(
    "metrics: {serviceMonitor: {mode: off}}",
    "1.5.0",
    "metrics.serviceMonitor.mode"
)]
fn bad_metrics_values_fail_naming_the_key(
    #[case] values: &str,
    #[case] version: &str,
    #[case] key: &str,
) {
    let case = suite().case_values(version, "bad metrics", yaml(values));
    assert_eq!(
        case.expected.as_ref().err().map(|e| e.key.as_str()),
        Some(key),
        "{case}: the model"
    );
    let err = case
        .render
        .as_ref()
        .err()
        .unwrap_or_else(|| panic!("{case}: helm rendered it"));
    assert_names_key(&err.to_string(), key, &case.to_string());
}
