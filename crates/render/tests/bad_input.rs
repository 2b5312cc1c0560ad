//! Every class of bad input: helm refuses the render naming the key, on every version
//! (validation is version-independent), and the spec model refuses it with the same key.

#[macro_use]
mod support;

use rstest::rstest;
use support::*;

#[rustfmt::skip]
#[rstest]
#[case::relative_persist_directory("chromadb: {persistDirectory: data}", "chromadb.persistDirectory")]
#[case::port_zero("chromadb: {serverHttpPort: 0}", "chromadb.serverHttpPort")]
#[case::port_above_65535("chromadb: {serverHttpPort: 70000}", "chromadb.serverHttpPort")]
#[case::port_as_word("chromadb: {serverHttpPort: http}", "chromadb.serverHttpPort")]
#[case::payload_zero("chromadb: {maxPayloadSizeBytes: 0}", "chromadb.maxPayloadSizeBytes")]
#[case::payload_negative("chromadb: {maxPayloadSizeBytes: -5}", "chromadb.maxPayloadSizeBytes")]
#[case::circuit_breaker_negative("chromadb: {circuitBreaker: {requests: -1}}", "chromadb.circuitBreaker.requests")]
#[case::hash_type_unknown("chromadb: {sqliteDb: {hashType: sha1}}", "chromadb.sqliteDb.hashType")]
#[case::migration_mode_unknown("chromadb: {sqliteDb: {migrationMode: skip}}", "chromadb.sqliteDb.migrationMode")]
#[case::telemetry_enabled_without_endpoint("chromadb: {telemetry: {enabled: true}}", "chromadb.telemetry.endpoint")]
#[case::telemetry_endpoint_not_a_url("chromadb: {telemetry: {enabled: true, endpoint: 'otel-collector:4317'}}", "chromadb.telemetry.endpoint")]
#[case::telemetry_endpoint_with_spaces("chromadb: {telemetry: {enabled: true, endpoint: 'http://otel collector'}}", "chromadb.telemetry.endpoint")]
#[case::telemetry_granularity_unknown("chromadb: {telemetry: {granularity: everything}}", "chromadb.telemetry.granularity")]
#[case::extra_config_port("chromadb: {extraConfig: {port: 9000}}", "chromadb.extraConfig.port")]
#[case::extra_config_listen_address("chromadb: {extraConfig: {listen_address: '127.0.0.1'}}", "chromadb.extraConfig.listen_address")]
#[case::header_type_unknown("chromadb: {auth: {token: {headerType: X-Api-Key}}}", "chromadb.auth.token.headerType")]
#[case::auth_type_unknown("chromadb: {auth: {type: oauth}}", "chromadb.auth.type")]
#[case::cache_policy_unknown("chromadb: {maintenance: {collection_cache_policy: FIFO}}", "chromadb.maintenance.collection_cache_policy")]
#[case::allow_reset_not_a_bool("chromadb: {allowReset: yes-please}", "chromadb.allowReset")]
#[case::is_persistent_not_a_bool("chromadb: {isPersistent: 1}", "chromadb.isPersistent")]
#[case::auth_enabled_not_a_bool("chromadb: {auth: {enabled: maybe}}", "chromadb.auth.enabled")]
#[case::cors_not_a_list("chromadb: {corsAllowOrigins: 'https://a.example'}", "chromadb.corsAllowOrigins")]
#[case::cors_origin_not_a_string("chromadb: {corsAllowOrigins: [1]}", "chromadb.corsAllowOrigins")]
#[case::common_labels_not_a_map("commonLabels: [team]", "commonLabels")]
#[case::pod_labels_not_a_map("podLabels: team", "podLabels")]
#[case::extra_config_not_a_map("chromadb: {extraConfig: [a]}", "chromadb.extraConfig")]
#[case::filters_not_a_list("chromadb: {telemetry: {filters: all}}", "chromadb.telemetry.filters")]
#[case::hnsw_cache_not_a_map("chromadb: {segmentManager: {hnswIndexPoolCacheConfig: big}}", "chromadb.segmentManager.hnswIndexPoolCacheConfig")]
#[case::pull_secrets_not_a_list("imagePullSecrets: regcred", "imagePullSecrets")]
#[case::cache_limit_not_an_int("chromadb: {maintenance: {collection_cache_limit_bytes: lots}}", "chromadb.maintenance.collection_cache_limit_bytes")]
#[case::service_account_create_not_a_bool("serviceAccount: {create: sometimes}", "serviceAccount.create")]
#[case::tls_without_a_certificate_source("tls: {enabled: true}", "tls.existingSecret")]
#[case::tls_with_two_certificate_sources("tls: {enabled: true, existingSecret: s, certManager: {enabled: true, issuerRef: {name: ca}}}", "tls.existingSecret")]
#[case::tls_cert_manager_without_issuer("tls: {enabled: true, certManager: {enabled: true}}", "tls.certManager.issuerRef.name")]
#[case::tls_ca_bundle_of_another_kind("tls: {enabled: true, existingSecret: s, caBundle: {name: ca, kind: Pod}}", "tls.caBundle.kind")]
#[case::tls_enabled_not_a_bool("tls: {enabled: maybe, existingSecret: s}", "tls.enabled")]
fn bad_values_fail_naming_the_key_on_every_version(#[case] values: &str, #[case] key: &str) {
    let values = yaml(values);
    let cases = parallel(&VERSIONS, |ver| suite().case_values(ver, "bad input", values.clone()));
    for case in cases {
        let spec_err = case.expected.as_ref().err().unwrap_or_else(|| panic!("{case}: the model accepts {values:?}"));
        assert_eq!(spec_err.key, key, "{case}: the model blames another key");
        let err = case.render.as_ref().err().unwrap_or_else(|| panic!("{case}: helm rendered {values:?}"));
        assert_names_key(&err.to_string(), key, &case.to_string());
    }
}

each_version! {
    /// The CORS wildcard is refused exactly where the Rust server panics on it.
    fn cors_wildcard_refused_only_on_1_0_0_to_1_0_10(version) {
        let case = suite().case(version, "cors-wildcard");
        let model_refuses = case.expected.is_err();
        assert_eq!(case.render.is_err(), model_refuses, "{case}: helm and the model disagree");
        case.accepted();
    }
}

#[rstest]
#[case::below_the_oldest_release("0.4.2")]
#[case::not_a_version("latest")]
fn unsupported_api_version_fails_naming_it(#[case] raw: &str) {
    let s = suite();
    let req = render::RenderRequest::new(&s.chart).set_string("chromadb.apiVersion", raw);
    let err = s
        .cache
        .render(&req)
        .err()
        .unwrap_or_else(|| panic!("helm rendered apiVersion {raw}"));
    assert_names_key(&err.to_string(), "chromadb.apiVersion", raw);
    assert!(
        raw.parse::<render::ChromaVersion>().is_err(),
        "the model accepts {raw}"
    );
}

each_version! {
    /// Every named scenario: helm renders it iff the model accepts it.
    fn render_outcome_matches_the_model(version) {
        let s = suite();
        for case in s.cases(version, &s.all_scenarios()) {
            case.accepted();
        }
    }
}
