//! The spec's version gates, each at the releases on both sides of it. What must happen on a
//! release comes from the model; the case names say which gate is being pinned.

#[macro_use]
mod support;

use render::Auth;
use rstest::rstest;
use support::*;

fn has_auth_env(r: &render::Rendered) -> bool {
    r.env()
        .iter()
        .any(|e| e.name.starts_with("CHROMA_SERVER_AUTH") || e.name.starts_with("CHROMA_AUTH_"))
}

#[rustfmt::skip]
#[rstest]
#[case::token_auth_ignored_below_0_4_8("0.4.7", "token-authorization", false)]
#[case::token_auth_ignored_on_0_4_6("0.4.6", "token-x-chroma-token", false)]
#[case::token_auth_from_0_4_8("0.4.8", "token-authorization", true)]
#[case::token_auth_through_0_6_3("0.6.3", "token-x-chroma-token", true)]
#[case::token_auth_ignored_from_1_0_0("1.0.0", "token-authorization", false)]
#[case::basic_auth_ignored_below_0_4_7("0.4.6", "basic-auth", false)]
#[case::basic_auth_from_0_4_7("0.4.7", "basic-auth", true)]
#[case::basic_auth_through_0_6_3("0.6.3", "basic-auth", true)]
#[case::basic_auth_ignored_from_1_0_0("1.0.0", "basic-auth", false)]
#[case::default_token_auth_ignored_on_0_4_3("0.4.3", "defaults", false)]
#[case::default_token_auth_on_0_4_24("0.4.24", "defaults", true)]
fn auth_applies_only_between_its_floor_and_1_0(#[case] version: &str, #[case] scenario: &str, #[case] on: bool) {
    let case = suite().case(version, scenario);
    let (e, r) = case.accepted().expect("accepted");
    assert_eq!(!matches!(e.auth, Auth::Open { .. }), on, "{case}: the model's gate");
    assert_eq!(has_auth_env(r), on, "{case}: auth env");
    assert_eq!(r.secret("chromadb-auth").is_some(), on, "{case}: auth Secret");
}

#[rustfmt::skip]
#[rstest]
#[case::legacy_auth_names_on_0_4_24("0.4.24", "CHROMA_SERVER_AUTH_PROVIDER", "CHROMA_SERVER_AUTHN_PROVIDER")]
#[case::authn_names_from_0_5_0("0.5.0", "CHROMA_SERVER_AUTHN_PROVIDER", "CHROMA_SERVER_AUTH_PROVIDER")]
#[case::authn_names_on_0_6_3("0.6.3", "CHROMA_SERVER_AUTHN_PROVIDER", "CHROMA_SERVER_AUTH_PROVIDER")]
fn auth_env_names_switch_at_0_5_0(#[case] version: &str, #[case] present: &str, #[case] absent: &str) {
    let case = suite().case(version, "token-authorization");
    let (_, r) = case.accepted().expect("accepted");
    assert!(r.env_var(present).is_some(), "{case}: no {present}");
    assert!(r.env_var(absent).is_none(), "{case}: stray {absent}");
}

#[rstest]
#[case::authorization_on_0_5_0("token-authorization", "AUTHORIZATION")]
#[case::x_chroma_token_on_0_5_0("token-x-chroma-token", "X_CHROMA_TOKEN")]
#[case::x_chroma_token_alias_on_0_5_0("token-x-underscore", "X_CHROMA_TOKEN")]
fn token_header_given_as_enum_name_on_0_5_0(#[case] scenario: &str, #[case] want: &str) {
    // 0.5.0 raises KeyError at start on `Authorization` / `X-Chroma-Token` (docs/chroma-eras.md#auth).
    let case = suite().case("0.5.0", scenario);
    let (_, r) = case.accepted().expect("accepted");
    assert_eq!(
        env_value(r, "CHROMA_AUTH_TOKEN_TRANSPORT_HEADER").as_deref(),
        Some(want),
        "{case}"
    );
}

each_version! {
    /// Probes: httpGet on the heartbeat of the version's API generation (the model's prefix),
    /// on port `http`.
    fn probes_hit_the_heartbeat_of_the_era(version) {
        let case = suite().case(version, "defaults");
        let (e, r) = case.accepted().expect("accepted");
        let path = format!("{}/heartbeat", e.api.path());
        let c = r.chroma_container().expect("chromadb container");
        let probes = r.probes(c);
        assert!(!probes.is_empty(), "{case}: no probes");
        for (kind, p) in probes {
            assert!(p.exec.is_none(), "{case}: {kind:?} is an exec probe");
            let get = p.http_get.as_ref().unwrap_or_else(|| panic!("{case}: {kind:?} is not httpGet"));
            assert_eq!(get.path.as_deref(), Some(path.as_str()), "{case}: {kind:?}");
            use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
            assert_eq!(get.port, IntOrString::String("http".into()), "{case}: {kind:?} port");
        }
    }
}

each_version! {
    /// From 1.0.0 the server reads a config file and no legacy env; below, env and no file.
    fn config_file_from_1_0_0_env_below(version) {
        let case = suite().case(version, "defaults");
        let (e, r) = case.accepted().expect("accepted");
        let has_file = r.server_config_doc().is_ok();
        assert_eq!(has_file, e.server_config.is_some(), "{case}: config file");
        assert_eq!(r.env_var("IS_PERSISTENT").is_some(), e.server_config.is_none(), "{case}: legacy env");
    }
}

#[rstest]
#[case::hard_coded_port_image_0_4_3("0.4.3")]
#[case::hard_coded_port_image_0_4_8("0.4.8")]
#[case::entrypoint_env_image_0_4_24("0.4.24")]
#[case::entrypoint_env_image_0_6_3("0.6.3")]
fn custom_port_reaches_the_python_server(#[case] version: &str) {
    // 0.4.3-0.4.22 images hard-code `--port 8000`; only a command override moves it.
    let case = suite().case(version, "custom-port-dir");
    let (e, r) = case.accepted().expect("accepted");
    let got = python_setting(r, &case.version, "--port", "CHROMA_HOST_PORT", "8000");
    assert_eq!(got, e.port.to_string(), "{case}");
}

/// The pod template's annotations, where the chart's configuration checksum lives.
fn pod_annotations(r: &render::Rendered) -> std::collections::BTreeMap<String, String> {
    r.statefulset()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default()
}

#[rustfmt::skip]
#[rstest]
#[case::server_config_change_rolls_1_x_pods("1.5.0", "chromadb: {maxPayloadSizeBytes: 1048576}")]
#[case::extra_config_change_rolls_1_x_pods("1.0.0", "chromadb: {extraConfig: {compactor: {disabled_collections: []}}}")]
#[case::log_config_change_rolls_python_pods("0.6.3", "chromadb: {logging: {root: WARNING}}")]
#[case::header_change_rolls_python_pods("0.4.24", "chromadb: {auth: {token: {headerType: X-Chroma-Token}}}")]
fn pods_roll_when_rendered_configuration_changes(#[case] version: &str, #[case] change: &str) {
    // A ConfigMap change alone leaves the pod template untouched unless the chart folds the
    // configuration into it; without that, running pods keep the old configuration.
    let before = suite().render(&v(version), &yaml("{}")).expect("defaults render");
    let after = suite().render(&v(version), &yaml(change)).expect("changed values render");
    let (a, b) = (pod_annotations(&before), pod_annotations(&after));
    assert!(!a.is_empty(), "{version}: the pod template carries no annotations to roll on");
    assert_ne!(a, b, "{version}: `{change}` changed the configuration but not the pod template annotations");
}
