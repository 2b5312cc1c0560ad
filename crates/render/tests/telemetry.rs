//! OpenTelemetry per era: the model says what the server exports (crates/render/src/spec),
//! and the render must configure exactly that — `CHROMA_OTEL_*` env on the Python server from
//! 0.4.15, nothing before, the `open_telemetry` block on 1.x.

#[macro_use]
mod support;

use render::Telemetry;
use render::spec::lookup;
use rstest::rstest;
use serde_yaml::Value;
use support::*;

const OTEL_ENV: [&str; 3] = [
    "CHROMA_OTEL_COLLECTION_ENDPOINT",
    "CHROMA_OTEL_SERVICE_NAME",
    "CHROMA_OTEL_GRANULARITY",
];

each_version! {
    /// Whatever the model says is exported is what the pod is configured with, on every release.
    fn rendered_telemetry_matches_the_model(version) {
        let case = suite().case(version, "telemetry");
        let (e, r) = case.accepted().expect("accepted");
        let env: Vec<_> = OTEL_ENV.iter().map(|n| env_value(r, n)).collect();
        match (&e.telemetry, r.server_config_doc().ok()) {
            (Telemetry::Ignored { .. }, None) => assert_eq!(env, vec![None, None, None], "{case}: OTel env below the floor"),
            (Telemetry::Exported { endpoint, service_name, granularity: Some(g), .. }, None) => {
                assert_eq!(env, vec![Some(endpoint.clone()), Some(service_name.clone()), Some(g.clone())], "{case}: OTel env");
            }
            (Telemetry::Exported { endpoint, service_name, granularity: None, .. }, Some(doc)) => {
                assert_eq!(env, vec![None, None, None], "{case}: stray OTel env on the Rust server");
                assert_eq!(lookup(&doc, "open_telemetry.endpoint"), Some(&Value::from(endpoint.as_str())), "{case}");
                assert_eq!(lookup(&doc, "open_telemetry.service_name"), Some(&Value::from(service_name.as_str())), "{case}");
            }
            (t, doc) => panic!("{case}: the model says {t:?} but the render has config file {}", doc.is_some()),
        }
    }
}

#[rustfmt::skip]
#[rstest]
#[case::otel_ignored_on_0_4_14("0.4.14", false)]
#[case::otel_env_from_0_4_15("0.4.15", true)]
#[case::otel_env_on_0_6_3("0.6.3", true)]
fn otel_env_only_from_0_4_15(#[case] version: &str, #[case] on: bool) {
    let case = suite().case(version, "telemetry");
    let (e, r) = case.accepted().expect("accepted");
    assert_eq!(matches!(e.telemetry, Telemetry::Exported { .. }), on, "{case}: the model's gate");
    assert_eq!(env_value(r, "CHROMA_OTEL_SERVICE_NAME").as_deref(), on.then_some("chroma-e2e-telemetry"), "{case}");
}

#[test]
fn granularity_and_default_service_name_reach_the_python_server() {
    let values = yaml(
        "chromadb: {telemetry: {enabled: true, endpoint: 'https://otel.example.com:4317', granularity: all}}",
    );
    let case = suite().case_values("0.5.23", "telemetry-granularity", values);
    let (_, r) = case.accepted().expect("accepted");
    assert_eq!(
        env_value(r, "CHROMA_OTEL_GRANULARITY").as_deref(),
        Some("all"),
        "{case}"
    );
    assert_eq!(
        env_value(r, "CHROMA_OTEL_SERVICE_NAME").as_deref(),
        Some("chroma"),
        "{case}: the spec's default service name"
    );
    assert_eq!(
        env_value(r, "CHROMA_OTEL_COLLECTION_ENDPOINT").as_deref(),
        Some("https://otel.example.com:4317"),
        "{case}"
    );
}

#[test]
fn filters_reach_the_rust_config() {
    let mut values = suite().scenario("telemetry").clone();
    render::spec::deep_merge(&mut values, suite().scenario("telemetry-filtered"));
    let case = suite().case_values("1.5.0", "telemetry + telemetry-filtered", values);
    let (e, r) = case.accepted().expect("accepted");
    let doc = r.server_config_doc().expect("config file");
    let Telemetry::Exported { filters, .. } = &e.telemetry else {
        panic!("{case}: not exported")
    };
    assert_eq!(filters.len(), 1, "{case}");
    let rendered = lookup(&doc, "open_telemetry.filters")
        .and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("{case}: no filters in {doc:?}"));
    assert_eq!(rendered.len(), 1, "{case}");
    assert_eq!(
        lookup(&rendered[0], "crate_name"),
        Some(&Value::from(filters[0].crate_name.as_str())),
        "{case}"
    );
    assert_eq!(
        lookup(&rendered[0], "filter_level"),
        Some(&Value::from(filters[0].filter_level.as_str())),
        "{case}"
    );
}
