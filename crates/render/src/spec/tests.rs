//! The model against the spec's text, with no chart involved.

use rstest::rstest;
use serde_yaml::Value;

use super::*;

fn v(s: &str) -> ChromaVersion {
    s.parse().expect("test version")
}

fn yaml(s: &str) -> Value {
    serde_yaml::from_str(s).expect("test yaml")
}

fn expect(values: &str, version: &str) -> Expected {
    Expected::from_values(&yaml(values), &v(version)).expect("values the spec accepts")
}

fn refused(values: &str, version: &str) -> SpecError {
    Expected::from_values(&yaml(values), &v(version)).expect_err("values the spec refuses")
}

#[rstest]
#[case::defaults_are_token_auth_on_0_4_8("{}", "0.4.8", Auth::Token { header: TokenHeader::Authorization, existing_secret: None })]
#[case::token_auth_ignored_below_0_4_8("{}", "0.4.7", Auth::Open { why: OpenBecause::BelowFloor })]
#[case::basic_auth_works_from_0_4_7("chromadb: {auth: {type: basic}}", "0.4.7", Auth::Basic { existing_secret: None })]
#[case::basic_auth_ignored_below_0_4_7("chromadb: {auth: {type: basic}}", "0.4.6", Auth::Open { why: OpenBecause::BelowFloor })]
#[case::auth_ignored_on_the_rust_server("chromadb: {auth: {type: basic}}", "1.0.0", Auth::Open { why: OpenBecause::RustServer })]
#[case::auth_disabled_is_open("chromadb: {auth: {enabled: false}}", "0.5.0", Auth::Open { why: OpenBecause::Disabled })]
#[case::auth_disabled_as_string_is_open("chromadb: {auth: {enabled: \"FALSE\"}}", "0.5.0", Auth::Open { why: OpenBecause::Disabled })]
#[case::x_chroma_token_alias_underscore("chromadb: {auth: {token: {headerType: x_chroma_token}}}", "0.6.3", Auth::Token { header: TokenHeader::XChromaToken, existing_secret: None })]
#[case::x_chroma_token_any_case("chromadb: {auth: {token: {headerType: X-CHROMA-TOKEN}}}", "0.4.24", Auth::Token { header: TokenHeader::XChromaToken, existing_secret: None })]
#[case::existing_secret_is_carried("chromadb: {auth: {type: basic, existingSecret: mine}}", "0.5.0", Auth::Basic { existing_secret: Some("mine".into()) })]
fn auth_follows_type_floor_and_era(
    #[case] values: &str,
    #[case] version: &str,
    #[case] auth: Auth,
) {
    assert_eq!(expect(values, version).auth, auth);
}

#[rstest]
#[case::v1_only_through_0_5_15("0.5.15", ApiPrefix::V1)]
#[case::v2_from_0_5_16("0.5.16", ApiPrefix::V2)]
#[case::v2_on_rust("1.5.0", ApiPrefix::V2)]
fn api_prefix_by_version(#[case] version: &str, #[case] api: ApiPrefix) {
    assert_eq!(expect("{}", version).api, api);
}

#[rstest]
#[case::string_true_any_case("chromadb: {allowReset: \"True\"}", true)]
#[case::bool_true("chromadb: {allowReset: true}", true)]
#[case::default_false("{}", false)]
fn allow_reset_accepts_bool_or_string(#[case] values: &str, #[case] reset: bool) {
    assert_eq!(expect(values, "0.5.0").allow_reset, reset);
    assert_eq!(expect(values, "1.5.0").allow_reset, reset);
}

#[test]
fn payload_limit_only_on_the_rust_server() {
    assert_eq!(expect("{}", "0.6.3").max_payload_bytes, None);
    assert_eq!(
        expect("{}", "1.0.0").max_payload_bytes,
        Some(DEFAULT_MAX_PAYLOAD)
    );
    assert_eq!(
        expect("chromadb: {maxPayloadSizeBytes: 1024}", "1.5.0").max_payload_bytes,
        Some(1024)
    );
}

#[test]
fn extra_config_overrides_chart_managed_keys() {
    let e = expect(
        "chromadb: {allowReset: false, extraConfig: {allow_reset: true, max_payload_size_bytes: 7}}",
        "1.2.2",
    );
    assert!(e.allow_reset);
    assert_eq!(e.max_payload_bytes, Some(7));
}

#[test]
fn extra_config_persist_path_outside_the_volume_loses_data() {
    let e = expect(
        "chromadb: {persistDirectory: /data, extraConfig: {persist_path: /tmp/x}}",
        "1.5.0",
    );
    assert_eq!(e.persist_directory, "/tmp/x");
    assert!(!e.survives_restart);
    assert_eq!(e.volume_mount.as_deref(), Some("/data"));
}

#[test]
fn non_persistent_does_not_survive_restart_on_any_era() {
    assert!(!expect("chromadb: {isPersistent: false}", "0.4.3").survives_restart);
    assert!(!expect("chromadb: {isPersistent: \"false\"}", "1.5.0").survives_restart);
    assert!(expect("{}", "1.5.0").survives_restart);
}

#[test]
fn server_config_absent_below_1_0() {
    assert!(expect("{}", "0.6.3").server_config.is_none());
}

#[test]
fn server_config_maps_dedicated_keys() {
    let e = expect(
        "chromadb: {sqliteFilename: x.db, sqliteDb: {hashType: sha256}, circuitBreaker: {requests: 0}, \
         telemetry: {enabled: true, endpoint: 'http://o:4317', filters: [{crate_name: a, filter_level: info}]}, \
         segmentManager: {hnswIndexPoolCacheConfig: {policy: memory}}}",
        "1.5.0",
    );
    let doc = e.server_config.expect("rust config");
    assert_eq!(lookup(&doc, "sqlite_filename"), Some(&Value::from("x.db")));
    assert_eq!(
        lookup(&doc, "sqlitedb.hash_type"),
        Some(&Value::from("sha256"))
    );
    assert_eq!(lookup(&doc, "sqlitedb.migration_mode"), None);
    assert_eq!(
        lookup(&doc, "circuit_breaker.requests"),
        Some(&Value::from(0))
    );
    assert_eq!(
        lookup(&doc, "open_telemetry.service_name"),
        Some(&Value::from("chroma"))
    );
    assert!(
        lookup(&doc, "segment_manager.hnsw_index_pool_cache_config.memory").is_some(),
        "policy becomes the tag: {doc:?}"
    );
}

#[rstest]
#[case::relative_persist_directory(
    "chromadb: {persistDirectory: data}",
    "chromadb.persistDirectory"
)]
#[case::port_zero("chromadb: {serverHttpPort: 0}", "chromadb.serverHttpPort")]
#[case::port_too_big("chromadb: {serverHttpPort: 70000}", "chromadb.serverHttpPort")]
#[case::port_not_a_number("chromadb: {serverHttpPort: eighty}", "chromadb.serverHttpPort")]
#[case::payload_zero("chromadb: {maxPayloadSizeBytes: 0}", "chromadb.maxPayloadSizeBytes")]
#[case::negative_circuit_breaker(
    "chromadb: {circuitBreaker: {requests: -1}}",
    "chromadb.circuitBreaker.requests"
)]
#[case::unknown_hash_type("chromadb: {sqliteDb: {hashType: sha1}}", "chromadb.sqliteDb.hashType")]
#[case::unknown_migration_mode(
    "chromadb: {sqliteDb: {migrationMode: skip}}",
    "chromadb.sqliteDb.migrationMode"
)]
#[case::telemetry_without_endpoint(
    "chromadb: {telemetry: {enabled: true}}",
    "chromadb.telemetry.endpoint"
)]
#[case::telemetry_endpoint_without_scheme(
    "chromadb: {telemetry: {enabled: true, endpoint: 'otel:4317'}}",
    "chromadb.telemetry.endpoint"
)]
#[case::telemetry_endpoint_other_scheme(
    "chromadb: {telemetry: {endpoint: 'grpc://otel:4317'}}",
    "chromadb.telemetry.endpoint"
)]
#[case::telemetry_endpoint_without_host(
    "chromadb: {telemetry: {enabled: true, endpoint: 'http://:4317'}}",
    "chromadb.telemetry.endpoint"
)]
#[case::telemetry_granularity_none(
    "chromadb: {telemetry: {granularity: none}}",
    "chromadb.telemetry.granularity"
)]
#[case::extra_config_port("chromadb: {extraConfig: {port: 1}}", "chromadb.extraConfig.port")]
#[case::extra_config_listen_address(
    "chromadb: {extraConfig: {listen_address: x}}",
    "chromadb.extraConfig.listen_address"
)]
#[case::unknown_header(
    "chromadb: {auth: {token: {headerType: X-Api-Key}}}",
    "chromadb.auth.token.headerType"
)]
#[case::unknown_auth_type("chromadb: {auth: {type: oauth}}", "chromadb.auth.type")]
#[case::unknown_cache_policy(
    "chromadb: {maintenance: {collection_cache_policy: FIFO}}",
    "chromadb.maintenance.collection_cache_policy"
)]
#[case::bool_as_word("chromadb: {allowReset: yes please}", "chromadb.allowReset")]
#[case::cors_as_string(
    "chromadb: {corsAllowOrigins: 'http://a'}",
    "chromadb.corsAllowOrigins"
)]
#[case::labels_as_list("podLabels: [a]", "podLabels")]
#[case::api_version_too_old("chromadb: {apiVersion: 0.4.2}", "chromadb.apiVersion")]
fn bad_values_are_refused_on_every_era(#[case] values: &str, #[case] key: &str) {
    for version in ["0.4.3", "0.5.0", "1.5.0"] {
        assert_eq!(refused(values, version).key, key, "on {version}");
    }
}

#[rstest]
#[case::rust_1_0_0("1.0.0", true)]
#[case::rust_1_0_10("1.0.10", true)]
#[case::rust_1_0_11("1.0.11", false)]
#[case::python_0_6_3("0.6.3", false)]
fn cors_wildcard_refused_only_where_the_server_panics(
    #[case] version: &str,
    #[case] is_refused: bool,
) {
    let r = Expected::from_values(&yaml("chromadb: {corsAllowOrigins: ['*']}"), &v(version));
    assert_eq!(r.is_err(), is_refused, "{r:?}");
}

#[rstest]
#[case::global_registry_applies("global: {imageRegistry: g.io}", "g.io/chroma-core/chroma:0.5.0")]
#[case::own_registry_beats_global(
    "global: {imageRegistry: g.io}\nimage: {registry: o.io}",
    "o.io/chroma-core/chroma:0.5.0"
)]
#[case::digest_beats_tag(
    "image: {tag: x, digest: 'sha256:ab'}",
    "ghcr.io/chroma-core/chroma@sha256:ab"
)]
#[case::tag_defaults_to_the_version("{}", "ghcr.io/chroma-core/chroma:0.5.0")]
fn chroma_image_resolution(#[case] values: &str, #[case] reference: &str) {
    assert_eq!(
        chroma_image(&yaml(values), &v("0.5.0"))
            .expect("image")
            .reference,
        reference
    );
}

#[test]
fn registry_override_keeps_a_hostless_repository_whole() {
    let img = chroma_image(
        &yaml("image: {registry: r.io, repository: team/chroma}"),
        &v("1.0.0"),
    )
    .expect("image");
    assert_eq!(img.reference, "r.io/team/chroma:1.0.0");
}

#[test]
fn init_image_defaults_to_httpd_2() {
    assert_eq!(
        init_image(&yaml("{}")).expect("image").reference,
        "docker.io/httpd:2"
    );
}

#[test]
fn pull_secrets_merge_chart_then_global() {
    let s = pull_secrets(&yaml(
        "imagePullSecrets: [{name: a}]\nglobal: {imagePullSecrets: [{name: b}]}",
    ));
    assert_eq!(s, ["a", "b"]);
}

mod review_fixes {
    use super::super::*;
    use serde_yaml::Value;

    fn y(s: &str) -> Value {
        serde_yaml::from_str(s).expect("yaml")
    }

    fn ver(s: &str) -> ChromaVersion {
        s.parse().expect("version")
    }

    #[test]
    fn tag_release_reads_only_versioned_tags() {
        assert_eq!(
            tag_release(&y("image: {tag: '0.6.3'}")).as_deref(),
            Some("0.6.3")
        );
        assert_eq!(
            tag_release(&y("image: {tag: v1.5.0}")).as_deref(),
            Some("1.5.0")
        );
        assert_eq!(
            tag_release(&y("image: {tag: 1.0.0-amd64}")).as_deref(),
            Some("1.0.0")
        );
        assert_eq!(tag_release(&y("image: {tag: latest}")), None);
        assert_eq!(tag_release(&y("image: {tag: '1.5'}")), None);
        assert_eq!(tag_release(&y("{}")), None);
    }

    #[test]
    fn era_boundary_names_the_floor_between() {
        assert_eq!(
            era_boundary(&ver("0.6.3"), &ver("1.5.0")),
            Some(ver("1.0.0"))
        );
        assert_eq!(
            era_boundary(&ver("0.4.24"), &ver("0.5.0")),
            Some(ver("0.5.0"))
        );
        assert_eq!(era_boundary(&ver("1.5.9"), &ver("1.0.11")), None);
        assert_eq!(era_boundary(&ver("0.4.3"), &ver("0.4.6")), None);
    }

    #[test]
    fn deployed_version_prefers_api_version_then_tag_then_app_version() {
        let app = ver("1.5.0");
        assert_eq!(deployed_version(&y("{}"), &app), Ok(ver("1.5.0")));
        assert_eq!(
            deployed_version(&y("image: {tag: '0.6.3'}"), &app),
            Ok(ver("0.6.3"))
        );
        assert_eq!(
            deployed_version(
                &y("image: {tag: '0.6.3'}\nchromadb: {apiVersion: 0.6.2}"),
                &app
            ),
            Ok(ver("0.6.2"))
        );
        assert_eq!(
            deployed_version(&y("image: {tag: '0.3.0'}"), &app).map_err(|e| e.key),
            Err("image.tag".to_string())
        );
    }

    #[test]
    fn in_memory_only_for_the_python_server_without_persistence() {
        let off = y("chromadb: {isPersistent: false}");
        assert!(
            !Expected::from_values(&off, &ver("0.5.0"))
                .expect("valid")
                .survives_container_restart
        );
        assert!(
            Expected::from_values(&off, &ver("1.0.0"))
                .expect("valid")
                .survives_container_restart
        );
        assert!(
            Expected::from_values(&y("{}"), &ver("0.5.0"))
                .expect("valid")
                .survives_container_restart
        );
    }

    #[test]
    fn user_labels_win_but_selector_labels_are_refused() {
        let base = [("helm.sh/chart".to_string(), "chromadb-1".to_string())]
            .into_iter()
            .collect();
        let got = object_labels(&y("commonLabels: {helm.sh/chart: mine}"), &base).expect("valid");
        assert_eq!(got.get("helm.sh/chart").map(String::as_str), Some("mine"));
        let e = pod_labels(&y("podLabels: {app.kubernetes.io/name: x}"), &base).unwrap_err();
        assert_eq!(e.key, "podLabels.app.kubernetes.io/name");
    }
}

const OTEL_ON: &str = "chromadb: {telemetry: {enabled: true, endpoint: 'http://otel:4317', serviceName: svc, filters: [{crate_name: chroma_frontend, filter_level: error}]}}";

#[rstest]
#[case::ignored_below_0_4_15("0.4.14")]
#[case::ignored_on_0_4_3("0.4.3")]
fn telemetry_ignored_below_the_otel_floor(#[case] version: &str) {
    let e = expect(OTEL_ON, version);
    assert!(
        matches!(&e.telemetry, Telemetry::Ignored { reason } if reason.contains("0.4.15")),
        "{:?}",
        e.telemetry
    );
}

#[rstest]
#[case::python_spans_from_0_4_15("0.4.15")]
#[case::python_spans_on_0_6_3("0.6.3")]
fn python_server_exports_spans_only_with_default_granularity_and_no_filters(#[case] version: &str) {
    let e = expect(OTEL_ON, version);
    assert_eq!(
        e.telemetry,
        Telemetry::Exported {
            endpoint: "http://otel:4317".into(),
            service_name: "svc".into(),
            granularity: Some("operation".into()),
            filters: vec![],
            filters_ignored: true,
            metrics: false
        }
    );
}

#[rstest]
#[case::filters_ignored_on_1_0_0("1.0.0", false)]
#[case::filters_ignored_on_1_0_15("1.0.15", false)]
#[case::filters_from_1_0_16("1.0.16", true)]
#[case::filters_on_1_5_0("1.5.0", true)]
fn rust_server_exports_spans_and_metrics_filters_from_1_0_16(
    #[case] version: &str,
    #[case] filtered: bool,
) {
    let Telemetry::Exported {
        service_name,
        granularity,
        filters,
        filters_ignored,
        metrics,
        ..
    } = expect(OTEL_ON, version).telemetry
    else {
        panic!("not exported on {version}")
    };
    assert_eq!(
        (service_name.as_str(), granularity, metrics),
        ("svc", None, true)
    );
    assert_eq!(filters.len(), usize::from(filtered), "{filters:?}");
    assert_eq!(filters_ignored, !filtered);
}

#[test]
fn telemetry_off_by_default_and_extra_config_block_counts_on_1_x() {
    assert_eq!(expect("{}", "0.6.3").telemetry, Telemetry::Off);
    assert_eq!(expect("{}", "1.5.0").telemetry, Telemetry::Off);
    let e = expect(
        "chromadb: {extraConfig: {open_telemetry: {service_name: x, endpoint: 'http://c:4317'}}}",
        "1.5.0",
    );
    assert!(
        matches!(e.telemetry, Telemetry::Exported { ref service_name, .. } if service_name == "x"),
        "{:?}",
        e.telemetry
    );
}

#[rstest]
#[case::plain("http://otel:4317", true)]
#[case::tls_with_path("https://otel.example.com/v1", true)]
#[case::ipv4("http://127.0.0.1:4317", true)]
#[case::no_scheme("otel:4317", false)]
#[case::non_numeric_port("http://otel:grpc", false)]
#[case::userinfo("http://user@otel:4317", false)]
#[case::space("http://otel 4317", false)]
fn otlp_url_shape(#[case] url: &str, #[case] ok: bool) {
    assert_eq!(is_otlp_url(url), ok, "{url}");
}

#[rstest]
#[case::no_limit_by_default("{}", None)]
#[case::a_binary_quantity("resources: {limits: {memory: 300Mi}}", Some(300 << 20))]
#[case::a_decimal_quantity("resources: {limits: {memory: 1G}}", Some(1_000_000_000))]
#[case::plain_bytes_as_a_number("resources: {limits: {memory: 268435456}}", Some(1 << 28))]
#[case::only_a_request_is_no_limit("resources: {requests: {memory: 1Gi}}", None)]
fn the_memory_limit_is_the_containers(#[case] values: &str, #[case] bytes: Option<u64>) {
    assert_eq!(expect(values, "1.5.0").memory_limit, bytes);
}

#[rstest]
#[case::a_word("resources: {limits: {memory: lots}}", "`lots`")]
#[case::a_list("resources: {limits: {memory: [1]}}", "quantity of bytes")]
#[case::zero("resources: {limits: {memory: 0}}", "positive")]
fn a_memory_limit_that_is_not_a_quantity_is_refused(#[case] values: &str, #[case] says: &str) {
    let e = refused(values, "0.6.3");
    assert_eq!(e.key, "resources.limits.memory");
    assert!(e.reason.contains(says), "{e}");
}
