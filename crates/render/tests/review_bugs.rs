//! The review's bugs (issue 11), one test group each. Every group failed on the chart before
//! its fix; what must happen comes from the spec model or the values, never from a render.

#[macro_use]
mod support;

use render::spec::{self, StorageClass};
use render::{Expected, RenderRequest, Rendered};
use rstest::rstest;
use serde_yaml::Value;
use support::*;

/// The chart's appVersion, as the spec documents it (the version used when nothing else says).
const APP_VERSION: &str = "1.5.0";

fn render_req(req: &RenderRequest) -> Result<std::sync::Arc<Rendered>, render::RenderError> {
    suite().cache.render(req)
}

/// helm's schema names an unknown key by its parent pointer and its own name
/// (`at '/chromadb': additional properties 'foo' not allowed`); the chart's own checks name it dotted.
fn names_unknown_key(message: &str, dotted: &str) -> bool {
    if names_key(message, dotted) {
        return true;
    }
    let (parent, leaf) = dotted.rsplit_once('.').unwrap_or(("", dotted));
    let pointer = if parent.is_empty() {
        String::new()
    } else {
        format!("/{}", parent.replace('.', "/"))
    };
    message.contains(&format!("'{pointer}'")) && message.contains(&format!("'{leaf}'"))
}

// 1. Booleans given as strings ------------------------------------------------------------

#[rstest]
#[case::string_false_from_set_string(None)]
#[case::string_false_any_case(Some("serviceAccount: {create: \"FALSE\"}"))]
#[case::yaml_false(Some("serviceAccount: {create: false}"))]
fn service_account_create_false_string_renders_no_account_and_pod_uses_default(
    #[case] values: Option<&str>,
) {
    let s = suite();
    let req = match values {
        None => s
            .request(Some(&v(APP_VERSION)), &yaml("{}"))
            .set_string("serviceAccount.create", "false"),
        Some(text) => s.request(Some(&v(APP_VERSION)), &yaml(text)),
    };
    let r = render_req(&req).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.service_accounts().count(),
        0,
        "a ServiceAccount was rendered although create is false"
    );
    let pod = r.pod_spec().expect("pod spec");
    // The documented fallback of serviceAccount.name when the chart creates none.
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("default"),
        "the pod names a ServiceAccount nobody creates"
    );
}

#[test]
fn every_boolean_string_is_read_by_the_one_helper() {
    // A non-boolean string in a boolean key fails naming it, wherever the key is read.
    let s = suite();
    for key in [
        "serviceAccount.create",
        "podDisruptionBudget.enabled",
        "networkPolicy.enabled",
        "startupProbe.enabled",
    ] {
        let req = s
            .request(Some(&v(APP_VERSION)), &yaml("{}"))
            .set_string(key, "sometimes");
        let err = render_req(&req)
            .err()
            .unwrap_or_else(|| panic!("helm rendered {key}=sometimes"));
        assert_names_key(&err.to_string(), key, key);
    }
}

/// Values under which every boolean of the chart may be true or false and still render.
const BOOL_BASE: &str = r#"
networkPolicy: {allowedFrom: [{podSelector: {matchLabels: {role: client}}}]}
chromadb: {telemetry: {endpoint: "http://otel-collector:4317"}}
ingress: {hosts: [{host: chroma.example.com, paths: [{path: /, pathType: Prefix}]}]}
backup: {storage: {pvc: {existingClaim: backups}}}
tls: {existingSecret: chromadb-tls}
"#;

#[test]
fn boolean_strings_render_exactly_like_booleans_for_every_boolean_key() {
    let s = suite();
    let keys: Vec<&str> = spec::KEY_TYPES
        .iter()
        .filter(|(_, t)| *t == spec::KeyType::Bool)
        .map(|(k, _)| *k)
        .collect();
    assert!(
        keys.len() >= 10,
        "the model lists the chart's booleans: {keys:?}"
    );
    let mut jobs = Vec::new();
    for key in &keys {
        for version in ["0.6.3", APP_VERSION] {
            for (as_bool, as_string) in [("false", "FALSE"), ("true", "True")] {
                jobs.push((*key, version, as_bool, as_string));
            }
        }
    }
    let failures: Vec<String> = parallel(&jobs, |(key, version, as_bool, as_string)| {
        let base = s.request(Some(&v(version)), &yaml(BOOL_BASE));
        let typed = s.cache.render(&base.clone().set(*key, *as_bool));
        let stringly = s.cache.render(&base.set_string(*key, *as_string));
        match (typed, stringly) {
            (Ok(a), Ok(b)) if redacted(&a) == redacted(&b) => None,
            // Refused alike (e.g. tls.certManager.enabled without tls.enabled) is read alike too.
            (Err(a), Err(b)) if a.to_string() == b.to_string() => None,
            (Ok(_), Ok(_)) => Some(format!(
                "{key}={as_string:?} on {version} renders differently from {key}={as_bool}"
            )),
            (a, b) => Some(format!(
                "{key} on {version}: bool {:?} / string {:?}",
                a.err().map(|e| e.to_string()),
                b.err().map(|e| e.to_string())
            )),
        }
    })
    .into_iter()
    .flatten()
    .collect();
    assert!(
        failures.is_empty(),
        "{} of {} renders differ:\n{}",
        failures.len(),
        jobs.len(),
        failures.join("\n")
    );
}

// 2. isPersistent=false is the in-memory server below 1.0.0 -------------------------------

/// What the server's `IS_PERSISTENT` setting ends up as in the container. Without a `command`
/// the image's entrypoint runs and exports `IS_PERSISTENT=1` over the pod's env on every 0.x
/// image (docs/chroma-eras.md#images-and-entrypoints); a `command` bypasses it.
fn effective_is_persistent(r: &Rendered) -> bool {
    let c = r.chroma_container().expect("chromadb container");
    let bypassed = c.command.as_ref().is_some_and(|cmd| !cmd.is_empty());
    if !bypassed {
        return true;
    }
    let raw = env_value(r, "IS_PERSISTENT")
        .unwrap_or_default()
        .to_ascii_lowercase();
    matches!(raw.as_str(), "1" | "true" | "yes" | "on")
}

each_version! {
    /// Below 1.0.0 the model says `isPersistent=false` loses data on a container restart; the
    /// server must then really run in memory. From 1.0.0 there is no in-memory mode.
    fn in_memory_mode_follows_is_persistent_below_1_0(version) {
        for scenario in ["non-persistent", "defaults"] {
            let case = suite().case(version, scenario);
            let (e, r) = case.accepted().expect("accepted");
            if e.version.is_rust_server() {
                assert!(e.survives_container_restart, "{case}: the model says 1.x loses data on a container restart");
                continue;
            }
            assert_eq!(effective_is_persistent(r), e.survives_container_restart, "{case}: the server's persistence mode");
        }
    }
}

// 3. telemetry.filters is never dropped silently ------------------------------------------

/// The spec's "Rust v1 Config Options" example, verbatim in meaning.
const RUST_V1_EXAMPLE: &str = r#"
chromadb:
  sqliteFilename: "custom.db"
  sqliteDb: {hashType: "sha256", migrationMode: "validate"}
  circuitBreaker: {requests: 500}
  telemetry:
    filters:
      - {crate_name: "chroma_frontend", filter_level: "info"}
  segmentManager:
    hnswIndexPoolCacheConfig: {policy: "memory", capacity: 65536}
"#;

each_version! {
    /// Filters without enabled telemetry are refused naming the key, on every version.
    fn telemetry_filters_without_telemetry_refused_naming_the_key(version) {
        let case = suite().case_values(version, "spec example", yaml(RUST_V1_EXAMPLE));
        let spec_err = case.expected.as_ref().err().unwrap_or_else(|| panic!("{case}: the model accepts the example"));
        assert_eq!(spec_err.key, "chromadb.telemetry.filters", "{case}");
        case.accepted();
    }
}

#[test]
fn telemetry_filters_reach_the_config_when_telemetry_is_on() {
    let mut values = yaml(RUST_V1_EXAMPLE);
    let tel = values["chromadb"]["telemetry"]
        .as_mapping_mut()
        .expect("telemetry map");
    tel.insert("enabled".into(), true.into());
    tel.insert("endpoint".into(), "http://otel-collector:4317".into());
    let case = suite().case_values(APP_VERSION, "spec example with telemetry", values.clone());
    let (_, r) = case.accepted().expect("accepted");
    let doc = r.server_config_doc().expect("1.x config");
    assert_eq!(
        at(&doc, "open_telemetry.filters"),
        spec::lookup(&values, "chromadb.telemetry.filters"),
        "{case}"
    );
}

// 4. storageClass: null/"" = cluster default, "-" = none -----------------------------------

#[rstest]
#[case::unset_is_cluster_default("defaults")]
#[case::empty_string_is_cluster_default("storage-class-empty")]
#[case::dash_is_no_class("storage-class-none")]
#[case::named_class("storage")]
fn storage_class_follows_the_convention(#[case] scenario: &str) {
    let case = suite().case("0.6.3", scenario);
    let (e, r) = case.accepted().expect("accepted");
    let spec::DataVolume::ClaimTemplate { storage_class } = &e.data_volume else {
        panic!("{case}: the model has no claim template")
    };
    let pvc = r
        .pvc_templates()
        .first()
        .unwrap_or_else(|| panic!("{case}: no claim template"));
    let got = pvc
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref());
    assert_eq!(got, storage_class.field(), "{case}: storageClassName");
    if scenario == "storage-class-empty" {
        assert_eq!(
            *storage_class,
            StorageClass::ClusterDefault,
            "{case}: the model reads \"\" as the cluster default"
        );
    }
}

// 5. Unknown keys are refused; old-chart keys get a pointed message -----------------------

#[rstest]
#[case::typo_in_nested_key("chromadb: {data: {storageClas: fast}}", "chromadb.data.storageClas")]
#[case::unknown_top_level_key("imagePullSecret: [regcred]", "imagePullSecret")]
#[case::unknown_service_key("service: {port: 80}", "service.port")]
#[case::unknown_auth_key("chromadb: {auth: {provider: oidc}}", "chromadb.auth.provider")]
fn unknown_keys_refused_naming_them(#[case] values: &str, #[case] key: &str) {
    let values = yaml(values);
    for ver in ["0.4.3", "0.6.3", APP_VERSION] {
        let case = suite().case_values(ver, "unknown key", values.clone());
        let spec_err = case
            .expected
            .as_ref()
            .err()
            .unwrap_or_else(|| panic!("{case}: the model accepts {values:?}"));
        assert_eq!(spec_err.key, key, "{case}");
        let err = case
            .render
            .as_ref()
            .err()
            .unwrap_or_else(|| panic!("{case}: helm rendered {values:?}"));
        assert!(
            names_unknown_key(&err.to_string(), key),
            "{case}: helm's refusal does not name {key}:\n{err}"
        );
    }
}

#[rstest]
#[case::fixed_token(
    "chromadb: {auth: {token: {value: s3cret}}}",
    "chromadb.auth.token.value"
)]
#[case::fixed_basic_password(
    "chromadb: {auth: {type: basic, basic: {password: s3cret}}}",
    "chromadb.auth.basic.password"
)]
#[case::fixed_basic_username(
    "chromadb: {auth: {type: basic, basic: {username: admin}}}",
    "chromadb.auth.basic.username"
)]
fn old_chart_credentials_refused_pointing_to_existing_secret(
    #[case] values: &str,
    #[case] key: &str,
) {
    let case = suite().case_values("0.6.3", "old chart credentials", yaml(values));
    assert_eq!(
        case.expected.as_ref().err().map(|e| e.key.as_str()),
        Some(key),
        "{case}"
    );
    let err = case
        .render
        .as_ref()
        .err()
        .unwrap_or_else(|| panic!("{case}: helm rendered fixed credentials"));
    let msg = err.to_string();
    assert_names_key(&msg, key, &case.to_string());
    assert!(
        msg.contains("chromadb.auth.existingSecret"),
        "{case}: the refusal does not say what to use:\n{msg}"
    );
    assert!(
        !msg.contains("s3cret"),
        "{case}: the refusal echoes the credential"
    );
}

#[rstest]
#[case::global_stays_open_for_parent_charts("global: {postgresql: {auth: {x: 1}}}")]
#[case::parent_condition_key("enabled: true")]
#[case::empty_old_chart_token("chromadb: {auth: {token: {value: ''}}}")]
fn keys_a_parent_chart_or_old_default_brings_are_accepted(#[case] values: &str) {
    let case = suite().case_values(APP_VERSION, "open keys", yaml(values));
    case.accepted().expect("accepted");
}

// 6. A versioned image.tag decides the version when apiVersion is unset ---------------------

#[rstest]
#[case::python_tag_on_default_app_version("0.6.3")]
#[case::v_prefixed_tag("v0.5.0")]
#[case::old_entrypoint_tag("0.4.22")]
#[case::rust_tag("1.0.10")]
fn versioned_tag_sets_the_version_when_api_version_unset(#[case] tag: &str) {
    let s = suite();
    let values = yaml(&format!("image: {{tag: {tag:?}}}"));
    let version = spec::deployed_version(&values, &v(APP_VERSION)).expect("versioned tag");
    assert_eq!(
        version.to_string(),
        tag.trim_start_matches('v'),
        "the model derives the version from the tag"
    );
    let expected = Expected::from_values(&values, &version).expect("accepted");
    let r = s
        .cache
        .render(&s.request(None, &values))
        .unwrap_or_else(|e| panic!("tag {tag}: {e}"));
    assert_eq!(
        r.pod_labels()
            .get("app.kubernetes.io/version")
            .map(String::as_str),
        Some(version.to_string().as_str())
    );
    let c = r.chroma_container().expect("chromadb container");
    let runs_config_file = c.args.iter().flatten().any(|a| a == "run");
    assert_eq!(
        runs_config_file,
        expected.version.is_rust_server(),
        "tag {tag}: the container's args are of another era"
    );
    assert_eq!(
        r.server_config().is_ok(),
        expected.server_config.is_some(),
        "tag {tag}: config file presence"
    );
}

#[rstest]
#[case::python_tag_rust_api_version("0.6.3", "1.5.0", false)]
#[case::entrypoint_tag_authn_api_version("0.4.24", "0.5.0", false)]
#[case::v1_tag_v2_api_version("0.5.15", "0.5.16", false)]
#[case::same_era_patch_releases("1.5.9", "1.5.0", true)]
#[case::same_era_python_releases("0.5.16", "0.6.3", true)]
fn tag_and_api_version_must_share_an_era(#[case] tag: &str, #[case] api: &str, #[case] ok: bool) {
    let values = yaml(&format!("image: {{tag: {tag:?}}}"));
    let case = suite().case_values(api, &format!("image.tag {tag}"), values);
    assert_eq!(case.expected.is_ok(), ok, "{case}: the model");
    if let Err(e) = &case.expected {
        assert_eq!(e.key, "image.tag", "{case}");
    }
    case.accepted();
}

// 7. commonLabels / podLabels repeating chart labels ---------------------------------------

each_version! {
    /// A user label with a chart label's key appears once, with the user's value.
    fn repeated_chart_labels_merge_with_the_users_value_winning(version) {
        let case = suite().case(version, "labels-override");
        let (_, r) = case.accepted().expect("accepted (a duplicate key would not even parse)");
        let vals = &case.values;
        let no_chart_labels = Default::default();
        let common = spec::object_labels(vals, &no_chart_labels).expect("valid");
        let pod = spec::pod_labels(vals, &no_chart_labels).expect("valid");
        assert!(!common.is_empty() && !pod.is_empty(), "{case}: the scenario sets labels");
        for site in r.label_sites() {
            // A claim template cannot change on an installed StatefulSet: only selector labels go there.
            if site.place.starts_with("claim template") {
                assert_eq!(site.labels, spec::claim_template_labels(vals, "chroma").expect("valid"), "{case}: {site}");
                continue;
            }
            let pod_site = site.place == "pod template" && site.kind == "StatefulSet";
            let want = if pod_site { &pod } else { &common };
            for (k, v) in want {
                assert_eq!(site.labels.get(k), Some(v), "{case}: {site}: {k}");
            }
        }
    }
}

#[rstest]
#[case::common_name("commonLabels", "app.kubernetes.io/name")]
#[case::common_instance("commonLabels", "app.kubernetes.io/instance")]
#[case::pod_instance("podLabels", "app.kubernetes.io/instance")]
fn selector_labels_in_user_labels_refused_naming_the_key(#[case] map: &str, #[case] label: &str) {
    let mut values = serde_yaml::Mapping::new();
    let mut labels = serde_yaml::Mapping::new();
    labels.insert(label.into(), "mine".into());
    values.insert(map.into(), Value::Mapping(labels));
    let values = Value::Mapping(values);
    let case = suite().case_values("0.6.3", "selector label", values);
    let key = format!("{map}.{label}");
    assert_eq!(
        case.expected.as_ref().err().map(|e| e.key.clone()),
        Some(key.clone()),
        "{case}"
    );
    let err = case
        .render
        .as_ref()
        .err()
        .unwrap_or_else(|| panic!("{case}: helm rendered a selector label override"));
    assert!(
        err.to_string().contains(&key),
        "{case}: helm's refusal does not name {key}:\n{err}"
    );
}
