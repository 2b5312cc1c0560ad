//! One test per row topic of the spec's values table, on every version of the matrix. What
//! each render must contain comes from the spec model (`Expected`, `render::spec::*`).

#[macro_use]
mod support;

use render::spec::{self, SERVER_DEFAULTS, chroma_image, init_image, pull_secrets};
use render::{Auth, ChromaVersion, EnvValue, Rendered};
use serde_yaml::Value;
use support::*;

fn env_names(r: &Rendered) -> Vec<String> {
    r.env().into_iter().map(|e| e.name).collect()
}

each_version! {
    /// `chromadb.apiVersion`: the image tag and the version label follow the version.
    fn api_version_sets_image_tag_and_version_label(version) {
        for case in suite().accepted(version, &["defaults"]) {
            let (_, r) = case.accepted().expect("accepted");
            let want = chroma_image(&case.values, &case.version).expect("valid");
            let image = &r.chroma_container().expect("chromadb container").image;
            assert_eq!(image.as_deref(), Some(want.reference.as_str()), "{case}");
            assert_eq!(r.pod_labels().get("app.kubernetes.io/version").map(String::as_str), Some(version), "{case}");
        }
    }
}

/// The chart's `appVersion`, read from the chart under test: the spec makes it the version
/// an empty `chromadb.apiVersion` means.
fn chart_app_version() -> ChromaVersion {
    let path = suite().chart.join("Chart.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let chart: Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let raw = chart
        .get("appVersion")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{} has no string appVersion", path.display()));
    raw.parse()
        .unwrap_or_else(|e| panic!("{}: appVersion: {e}", path.display()))
}

#[test]
fn api_version_defaults_to_the_chart_app_version() {
    let s = suite();
    let app = chart_app_version();
    let r = s
        .cache
        .render(&s.request(None, &yaml("{}")))
        .unwrap_or_else(|e| panic!("{e}"));
    let image = r.chroma_container().and_then(|c| c.image.clone());
    assert_eq!(
        image,
        Some(chroma_image(&yaml("{}"), &app).expect("image").reference),
        "no apiVersion: image"
    );
    // Everything the version gates decide must match an explicit apiVersion=appVersion.
    let explicit = s
        .render(&app, &yaml("{}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        redacted(&r),
        redacted(&explicit),
        "no apiVersion renders differently from apiVersion={app}"
    );
}

each_version! {
    /// `chromadb.allowReset`: ALLOW_RESET below 1.0, `allow_reset` in the config from 1.0.
    fn allow_reset_follows_the_model(version) {
        for case in suite().accepted(version, &["defaults", "reset-on", "reset-string", "reset-off", "extra-config"]) {
            let (e, r) = case.accepted().expect("accepted");
            if case.version.is_rust_server() {
                let cfg = r.server_config().unwrap_or_else(|err| panic!("{case}: {err}"));
                assert_eq!(cfg.allow_reset.unwrap_or(false), e.allow_reset, "{case}");
                assert!(r.env_var("ALLOW_RESET").is_none(), "{case}: legacy ALLOW_RESET env on the Rust server");
            } else {
                assert_eq!(env_value(r, "ALLOW_RESET"), Some(e.allow_reset.to_string()), "{case}");
            }
        }
    }
}

each_version! {
    /// `chromadb.isPersistent`: a claim template mounted at persistDirectory iff persistent;
    /// below 1.0 also IS_PERSISTENT, normalized to lower case.
    fn persistence_follows_is_persistent(version) {
        for case in suite().accepted(version, &["defaults", "non-persistent", "reset-string", "custom-port-dir"]) {
            let (e, r) = case.accepted().expect("accepted");
            let c = r.chroma_container().expect("chromadb container");
            let data_mount = e.volume_mount.as_deref().and_then(|dir| r.mount_for(c, dir)).filter(|m| r.is_claim(&m.name));
            assert_eq!(data_mount.is_some(), e.volume_mount.is_some(), "{case}: PVC-backed mount at {:?}", e.volume_mount);
            assert_eq!(r.pvc_templates().is_empty(), e.volume_mount.is_none(), "{case}: claim templates");
            if !case.version.is_rust_server() {
                assert_eq!(env_value(r, "IS_PERSISTENT"), Some(e.volume_mount.is_some().to_string()), "{case}");
            }
        }
    }
}

each_version! {
    /// `chromadb.persistDirectory`: where the server writes and where the PVC is mounted.
    fn persist_directory_is_where_the_server_writes(version) {
        for case in suite().accepted(version, &["defaults", "custom-port-dir"]) {
            let (e, r) = case.accepted().expect("accepted");
            if case.version.is_rust_server() {
                let cfg = r.server_config().unwrap_or_else(|err| panic!("{case}: {err}"));
                assert_eq!(cfg.persist_path.as_deref(), Some(e.persist_directory.as_str()), "{case}");
            } else {
                assert_eq!(env_value(r, "PERSIST_DIRECTORY"), Some(e.persist_directory.clone()), "{case}");
            }
            let c = r.chroma_container().expect("chromadb container");
            let m = r.mount_for(c, &e.persist_directory).unwrap_or_else(|| panic!("{case}: nothing mounted at {}", e.persist_directory));
            assert!(r.is_claim(&m.name), "{case}: {} is not on the PVC", e.persist_directory);
        }
    }
}

each_version! {
    /// `chromadb.anonymizedTelemetry`: ANONYMIZED_TELEMETRY below 1.0 only.
    fn anonymized_telemetry_env_only_below_1_0(version) {
        for case in suite().accepted(version, &["defaults", "legacy-logging"]) {
            let (_, r) = case.accepted().expect("accepted");
            let want = spec::parse_bool(&case.values, "chromadb.anonymizedTelemetry", false).expect("valid");
            let got = env_value(r, "ANONYMIZED_TELEMETRY");
            if case.version.is_rust_server() {
                assert_eq!(got, None, "{case}");
            } else {
                assert_eq!(got, Some(want.to_string()), "{case}");
            }
        }
    }
}

each_version! {
    /// `chromadb.corsAllowOrigins`: a JSON list env below 1.0, `cors_allow_origins` from 1.0.
    fn cors_origins_follow_the_model(version) {
        for case in suite().accepted(version, &["defaults", "cors-list", "cors-wildcard"]) {
            let (e, r) = case.accepted().expect("accepted");
            if case.version.is_rust_server() {
                let cfg = r.server_config().unwrap_or_else(|err| panic!("{case}: {err}"));
                assert_eq!(cfg.cors_allow_origins.unwrap_or_default(), e.cors_origins, "{case}");
            } else {
                let raw = env_value(r, "CHROMA_SERVER_CORS_ALLOW_ORIGINS").unwrap_or_else(|| "[]".into());
                let got: Vec<String> = serde_json::from_str(&raw).unwrap_or_else(|err| panic!("{case}: not a JSON list {raw:?}: {err}"));
                assert_eq!(got, e.cors_origins, "{case}");
            }
        }
    }
}

each_version! {
    /// `chromadb.apiImpl`: not read; setting it changes nothing.
    fn api_impl_is_not_read(version) {
        let s = suite();
        let base = s.case(version, "defaults");
        let with = s.case_values(version, "apiImpl", yaml("chromadb: {apiImpl: chromadb.api.fastapi.FastAPI}"));
        let (_, a) = base.accepted().expect("accepted");
        let (_, b) = with.accepted().expect("accepted");
        assert_eq!(redacted(a), redacted(b), "{with}");
    }
}

each_version! {
    /// `chromadb.serverHost`: the address the server binds.
    fn server_host_is_the_listen_address(version) {
        let s = suite();
        let case = s.case_values(version, "serverHost", yaml("chromadb: {serverHost: '127.0.0.1'}"));
        let (_, r) = case.accepted().expect("accepted");
        let want = spec::parse_str(&case.values, "chromadb.serverHost", "").expect("valid");
        let got = if case.version.is_rust_server() {
            r.server_config().unwrap_or_else(|err| panic!("{case}: {err}")).listen_address.unwrap_or_default()
        } else {
            python_setting(r, &case.version, "--host", "CHROMA_HOST_ADDR", "0.0.0.0")
        };
        assert_eq!(got, want, "{case}");
    }
}

each_version! {
    /// `chromadb.serverHttpPort`: server, container port, Service and probes agree.
    fn server_port_is_consistent_everywhere(version) {
        for case in suite().accepted(version, &["defaults", "custom-port-dir"]) {
            let (e, r) = case.accepted().expect("accepted");
            let c = r.chroma_container().expect("chromadb container");
            let http = c.ports.iter().flatten().find(|p| p.name.as_deref() == Some("http"))
                .unwrap_or_else(|| panic!("{case}: no container port named http"));
            assert_eq!(http.container_port, i32::from(e.port), "{case}: containerPort");
            let listens = if case.version.is_rust_server() {
                r.server_config().unwrap_or_else(|err| panic!("{case}: {err}")).port.map(|p| p.to_string()).unwrap_or_default()
            } else {
                python_setting(r, &case.version, "--port", "CHROMA_HOST_PORT", "8000")
            };
            assert_eq!(listens, e.port.to_string(), "{case}: the server listens elsewhere");
            let svc = r.services().next().unwrap_or_else(|| panic!("{case}: no Service"));
            let port = &svc.spec.as_ref().expect("service spec").ports.as_ref().expect("ports")[0];
            assert_eq!(port.port, i32::from(e.port), "{case}: Service port");
            use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
            let target_ok = match &port.target_port {
                Some(IntOrString::String(n)) => n == "http",
                Some(IntOrString::Int(p)) => *p == i32::from(e.port),
                None => port.port == i32::from(e.port),
            };
            assert!(target_ok, "{case}: Service targets {:?}", port.target_port);
        }
    }
}

each_version! {
    /// CHROMA_SERVER_HTTP_PORT is the legacy port variable: set below 1.0, absent from 1.0.
    fn legacy_http_port_env_only_below_1_0(version) {
        for case in suite().accepted(version, &["defaults", "custom-port-dir"]) {
            let (e, r) = case.accepted().expect("accepted");
            let got = env_value(r, "CHROMA_SERVER_HTTP_PORT");
            if case.version.is_rust_server() {
                assert_eq!(got, None, "{case}");
            } else {
                assert_eq!(got, Some(e.port.to_string()), "{case}");
            }
        }
    }
}

each_version! {
    /// `chromadb.data.*`: the claim template's size, class, access mode and retention.
    fn claim_template_follows_data_values(version) {
        for case in suite().accepted(version, &["defaults", "storage"]) {
            let (_, r) = case.accepted().expect("accepted");
            let vals = &case.values;
            let pvc = r.pvc_templates().first().unwrap_or_else(|| panic!("{case}: no claim template"));
            let spec_ = pvc.spec.as_ref().expect("claim spec");
            let size = spec::parse_str(vals, "chromadb.data.volumeSize", "1Gi").expect("valid");
            let got = spec_.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get("storage")).map(|q| q.0.clone());
            assert_eq!(got.as_deref(), Some(size), "{case}: storage request");
            let class = spec::lookup(vals, "chromadb.data.storageClass").and_then(Value::as_str);
            assert_eq!(spec_.storage_class_name.as_deref(), class, "{case}: storageClassName");
            let mode = spec::parse_str(vals, "chromadb.data.accessModes", "ReadWriteOnce").expect("valid");
            assert_eq!(spec_.access_modes.clone().unwrap_or_default(), vec![mode.to_string()], "{case}: accessModes");
            let policy = spec::parse_str(vals, "chromadb.data.retentionPolicyOnDelete", "Delete").expect("valid");
            let sts = r.statefulset().and_then(|s| s.spec.as_ref()).expect("statefulset spec");
            let when_deleted = sts.persistent_volume_claim_retention_policy.as_ref().and_then(|p| p.when_deleted.clone());
            assert_eq!(when_deleted.as_deref().unwrap_or("Retain"), policy, "{case}: whenDeleted");
        }
    }
}

const AUTH_SCENARIOS: &[&str] = &[
    "defaults",
    "token-authorization",
    "token-x-chroma-token",
    "token-x-underscore",
    "basic-auth",
    "existing-secret-token",
    "existing-secret-basic",
    "auth-disabled",
];

fn auth_env_names(version: &ChromaVersion) -> (&'static str, &'static str, &'static str) {
    if version.has_authn_settings() {
        (
            "CHROMA_SERVER_AUTHN_PROVIDER",
            "CHROMA_SERVER_AUTHN_CREDENTIALS",
            "CHROMA_SERVER_AUTHN_CREDENTIALS_FILE",
        )
    } else {
        (
            "CHROMA_SERVER_AUTH_PROVIDER",
            "CHROMA_SERVER_AUTH_CREDENTIALS",
            "CHROMA_SERVER_AUTH_CREDENTIALS_FILE",
        )
    }
}

fn is_auth_env(name: &str) -> bool {
    name.starts_with("CHROMA_SERVER_AUTH") || name.starts_with("CHROMA_AUTH_")
}

each_version! {
    /// `chromadb.auth.enabled` / `type`: the provider the server loads is the model's auth.
    fn auth_provider_matches_the_model(version) {
        for case in suite().accepted(version, AUTH_SCENARIOS) {
            let (e, r) = case.accepted().expect("accepted");
            let (provider, _, _) = auth_env_names(&case.version);
            let got = env_value(r, provider).unwrap_or_default().to_ascii_lowercase();
            match &e.auth {
                Auth::Open { .. } => {
                    let stray: Vec<_> = env_names(r).into_iter().filter(|n| is_auth_env(n)).collect();
                    assert!(stray.is_empty(), "{case}: open API but auth env {stray:?}");
                }
                Auth::Token { .. } => assert!(got.contains("token"), "{case}: {provider}={got:?}"),
                Auth::Basic { .. } => assert!(got.contains("basic"), "{case}: {provider}={got:?}"),
            }
        }
    }
}

each_version! {
    /// `chromadb.auth.existingSecret`: credentials come from the chart's Secret or the user's.
    fn auth_credentials_come_from_the_right_secret(version) {
        for case in suite().accepted(version, AUTH_SCENARIOS) {
            let (e, r) = case.accepted().expect("accepted");
            let (_, creds, _) = auth_env_names(&case.version);
            let (existing, key) = match &e.auth {
                Auth::Open { .. } => {
                    assert!(r.secret("chromadb-auth").is_none(), "{case}: open API, yet the chart renders its auth Secret");
                    let (_, creds, file) = auth_env_names(&case.version);
                    assert!(r.env_var(creds).is_none() && r.env_var(file).is_none(), "{case}: open API, yet credentials are wired");
                    continue;
                }
                Auth::Token { existing_secret, .. } => (existing_secret, "token"),
                Auth::Basic { existing_secret } => (existing_secret, "username"),
            };
            let secret = existing.clone().unwrap_or_else(|| "chromadb-auth".into());
            if key == "token" {
                match r.env_var(creds) {
                    Some(EnvValue::FromSecret { name, key, .. }) => {
                        assert_eq!((name.as_str(), key.as_str()), (secret.as_str(), "token"), "{case}")
                    }
                    other => panic!("{case}: {creds} is {other:?}, want a secretKeyRef to {secret}/token"),
                }
            } else {
                let init = r.init_container("htpasswd").unwrap_or_else(|| panic!("{case}: no htpasswd init container"));
                for (var, k) in [("CHROMA_BASIC_AUTH_USERNAME", "username"), ("CHROMA_BASIC_AUTH_PASSWORD", "password")] {
                    match r.env_var_of(init, var) {
                        Some(EnvValue::FromSecret { name, key, .. }) => assert_eq!((name.as_str(), key.as_str()), (secret.as_str(), k), "{case}"),
                        other => panic!("{case}: {var} is {other:?}"),
                    }
                }
            }
            let rendered_secret = r.secret("chromadb-auth");
            assert_eq!(rendered_secret.is_some(), existing.is_none(), "{case}: chart Secret rendered iff no existingSecret");
            if let Some(data) = rendered_secret {
                let want: &[&str] = if key == "token" { &["token"] } else { &["username", "password"] };
                for k in want {
                    assert!(data.get(*k).is_some_and(|v| !v.is_empty()), "{case}: Secret lacks {k}");
                }
            }
        }
    }
}

each_version! {
    /// `chromadb.auth.token.headerType`: the header the server enforces, in every token version.
    fn token_header_env_matches_the_model(version) {
        for case in suite().accepted(version, AUTH_SCENARIOS) {
            let (e, r) = case.accepted().expect("accepted");
            let var = if case.version.has_authn_settings() { "CHROMA_AUTH_TOKEN_TRANSPORT_HEADER" } else { "CHROMA_SERVER_AUTH_TOKEN_TRANSPORT_HEADER" };
            let Auth::Token { header, .. } = &e.auth else {
                assert_eq!(env_value(r, var), None, "{case}: a token header without token auth");
                continue;
            };
            let got = env_value(r, var).unwrap_or_else(|| panic!("{case}: no {var}"));
            assert_eq!(got, token_header_setting(*header, &case.version), "{case}: {var}");
        }
    }
}

each_version! {
    /// The token-auth ConfigMap the spec's kubectl commands read names the HTTP header.
    fn token_header_configmap_names_the_header(version) {
        for case in suite().accepted(version, AUTH_SCENARIOS) {
            let (e, r) = case.accepted().expect("accepted");
            let cm = r.configmap("chroma-chromadb-token-auth-config");
            match &e.auth {
                Auth::Token { header, .. } => {
                    let cm = cm.unwrap_or_else(|| panic!("{case}: no token-auth ConfigMap"));
                    let got = cm.data.as_ref().and_then(|d| d.get("CHROMA_AUTH_TOKEN_TRANSPORT_HEADER")).cloned().unwrap_or_default();
                    assert!(got.eq_ignore_ascii_case(header.header_name()), "{case}: header {got:?}, want {}", header.header_name());
                }
                _ => assert!(cm.is_none(), "{case}: token ConfigMap without token auth"),
            }
        }
    }
}

each_version! {
    /// Basic auth: the htpasswd init container writes the file the server reads.
    fn basic_auth_init_container_follows_the_contract(version) {
        for case in suite().accepted(version, AUTH_SCENARIOS) {
            let (e, r) = case.accepted().expect("accepted");
            let init = r.init_container("htpasswd");
            if !matches!(e.auth, Auth::Basic { .. }) {
                assert!(init.is_none(), "{case}: htpasswd init container without basic auth");
                continue;
            }
            let init = init.expect("checked");
            let cmd = init.command.clone().unwrap_or_default();
            assert_eq!(cmd, ["sh", "-c", "htpasswd -Bbc \"$HTPASSWD_FILE\" \"$CHROMA_BASIC_AUTH_USERNAME\" \"$CHROMA_BASIC_AUTH_PASSWORD\""], "{case}");
            let file = env_value_of(r, init, "HTPASSWD_FILE").unwrap_or_else(|| panic!("{case}: no HTPASSWD_FILE"));
            assert!(file.starts_with('/'), "{case}: HTPASSWD_FILE {file:?} is relative");
            let init_mount = r.mount_for(init, &file).unwrap_or_else(|| panic!("{case}: init container does not mount {file}"));
            let vol = r.volume(&init_mount.name).unwrap_or_else(|| panic!("{case}: no volume {}", init_mount.name));
            assert!(vol.empty_dir.is_some(), "{case}: htpasswd volume is not an emptyDir");
            let c = r.chroma_container().expect("chromadb container");
            let server_mount = r.mount_for(c, &file).unwrap_or_else(|| panic!("{case}: chromadb does not mount {file}"));
            assert_eq!(server_mount.name, init_mount.name, "{case}");
            let (_, _, file_var) = auth_env_names(&case.version);
            assert_eq!(env_value(r, file_var), Some(file.clone()), "{case}: {file_var}");
        }
    }
}

fn env_value_of(
    r: &Rendered,
    c: &k8s_openapi::api::core::v1::Container,
    name: &str,
) -> Option<String> {
    r.env_var_of(c, name)
        .and_then(|e| e.resolved().map(str::to_string))
}

each_version! {
    /// `image.*` and `global.imageRegistry`: the server image reference and pull policy.
    fn chroma_image_follows_image_values(version) {
        for case in suite().accepted(version, &["defaults", "labels-images", "global-registry"]) {
            let (_, r) = case.accepted().expect("accepted");
            let want = chroma_image(&case.values, &case.version).expect("valid");
            let c = r.chroma_container().expect("chromadb container");
            assert_eq!(c.image.as_deref(), Some(want.reference.as_str()), "{case}");
            assert_eq!(c.image_pull_policy.as_deref(), Some(want.pull_policy.as_str()), "{case}");
        }
    }
}

each_version! {
    /// `initImage.*`: the htpasswd init container's image, where basic auth applies.
    fn init_image_follows_init_image_values(version) {
        for case in suite().accepted(version, &["basic-auth", "labels-images", "global-registry"]) {
            let (e, r) = case.accepted().expect("accepted");
            let init = r.init_container("htpasswd");
            if !matches!(e.auth, Auth::Basic { .. }) {
                assert!(init.is_none(), "{case}: an htpasswd init container without basic auth");
                continue;
            }
            let want = init_image(&case.values).expect("valid");
            let init = init.unwrap_or_else(|| panic!("{case}: no htpasswd init container"));
            assert_eq!(init.image.as_deref(), Some(want.reference.as_str()), "{case}");
            assert_eq!(init.image_pull_policy.as_deref(), Some(want.pull_policy.as_str()), "{case}");
        }
    }
}

/// The Python log config file the server is pointed at, parsed.
fn python_log_config(
    r: &Rendered,
    version: &ChromaVersion,
    location: &str,
) -> Result<Value, String> {
    let pointed = python_setting(
        r,
        version,
        "--log-config",
        "CHROMA_LOG_CONFIG",
        "<image default>",
    );
    if pointed != location {
        return Err(format!(
            "server reads its log config from {pointed:?}, not {location:?}"
        ));
    }
    let c = r.chroma_container().ok_or("no chromadb container")?;
    let m = r
        .mount_for(c, location)
        .ok_or_else(|| format!("nothing mounted at {location}"))?;
    let vol = r
        .volume(&m.name)
        .ok_or_else(|| format!("no volume {}", m.name))?;
    let cm_name = vol
        .config_map
        .as_ref()
        .map(|c| c.name.clone())
        .ok_or("log config volume is not a ConfigMap")?;
    let cm = r
        .configmap(&cm_name)
        .ok_or_else(|| format!("ConfigMap {cm_name} not rendered"))?;
    let key = m
        .sub_path
        .clone()
        .unwrap_or_else(|| location.rsplit('/').next().unwrap_or_default().to_string());
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(&key))
        .ok_or_else(|| format!("{cm_name} has no key {key}"))?;
    serde_yaml::from_str(text).map_err(|e| format!("log config is not YAML: {e}"))
}

each_version! {
    /// `chromadb.logging.*` and `logConfigFileLocation`: levels in the file the server reads.
    fn log_levels_reach_the_python_log_config(version) {
        for case in suite().accepted(version, &["defaults", "legacy-logging"]) {
            let (_, r) = case.accepted().expect("accepted");
            if case.version.is_rust_server() {
                assert!(r.env_var("CHROMA_LOG_CONFIG").is_none(), "{case}: Python log config on the Rust server");
                continue;
            }
            let vals = &case.values;
            let location = spec::parse_str(vals, "chromadb.logConfigFileLocation", "/chroma/log_config.yaml").expect("valid");
            let cfg = python_log_config(r, &case.version, location).unwrap_or_else(|err| panic!("{case}: {err}"));
            for (key, path, default) in [
                ("chromadb.logging.root", "root.level", "INFO"),
                ("chromadb.logging.chromadb", "loggers.chromadb.level", "DEBUG"),
                ("chromadb.logging.uvicorn", "loggers.uvicorn.level", "INFO"),
            ] {
                let want = spec::parse_str(vals, key, default).expect("valid");
                assert_eq!(at(&cfg, path).and_then(Value::as_str), Some(want), "{case}: {path} for {key}");
            }
        }
    }
}

each_version! {
    /// `chromadb.logConfigMap`: the user's ConfigMap is mounted instead of the chart's.
    fn log_config_map_is_the_users(version) {
        for case in suite().accepted(version, &["log-config-map"]) {
            let (_, r) = case.accepted().expect("accepted");
            let users = spec::lookup(&case.values, "chromadb.logConfigMap").and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{case}: the scenario names no chromadb.logConfigMap"));
            let names: Vec<String> = r.volumes().iter().filter_map(|v| v.config_map.as_ref().map(|c| c.name.clone())).collect();
            if case.version.is_rust_server() {
                assert!(!names.iter().any(|n| n == users), "{case}: logConfigMap mounted on the Rust server");
            } else {
                assert!(names.iter().any(|n| n == users), "{case}: {users} not among the volumes {names:?}");
                assert!(r.configmap("chroma-chromadb-log-config").is_none(), "{case}: chart log ConfigMap rendered too");
            }
        }
    }
}

/// `chroma_segment_cache_policy` / `chroma_memory_limit_bytes` exist in the Python server's
/// Settings from 0.4.23 (read from the 0.4.22 and 0.4.23 wheels' chromadb/config.py).
fn has_segment_cache_settings(v: &ChromaVersion) -> bool {
    *v >= render::version::SEGMENT_CACHE_FLOOR && !v.is_rust_server()
}

each_version! {
    /// `chromadb.maintenance.*`: the segment cache settings the Python server reads.
    fn maintenance_cache_env_only_below_1_0(version) {
        for case in suite().accepted(version, &["defaults", "legacy-logging"]) {
            let (_, r) = case.accepted().expect("accepted");
            let policy = env_value(r, "CHROMA_SEGMENT_CACHE_POLICY");
            let limit = env_value(r, "CHROMA_MEMORY_LIMIT_BYTES");
            let vals = &case.values;
            let want_policy = spec::lookup(vals, "chromadb.maintenance.collection_cache_policy").and_then(Value::as_str);
            if !has_segment_cache_settings(&case.version) || want_policy.is_none() {
                assert_eq!((policy, limit), (None, None), "{case}: no segment cache is configured");
            } else {
                // The limit only means something with a policy; the scenarios that set a
                // policy also set the limit, so no chart default is re-typed here.
                let want_limit = spec::parse_int(vals, "chromadb.maintenance.collection_cache_limit_bytes").expect("valid")
                    .unwrap_or_else(|| panic!("{case}: a cache policy without collection_cache_limit_bytes"));
                assert_eq!(policy.as_deref(), want_policy, "{case}");
                assert_eq!(limit, Some(want_limit.to_string()), "{case}");
            }
        }
    }
}

each_version! {
    /// `chromadb.maxPayloadSizeBytes`: `max_payload_size_bytes` from 1.0 only.
    fn payload_limit_follows_the_model(version) {
        for case in suite().accepted(version, &["defaults", "small-payload", "rust-config"]) {
            let (e, r) = case.accepted().expect("accepted");
            match e.max_payload_bytes {
                Some(n) => {
                    let cfg = r.server_config().unwrap_or_else(|err| panic!("{case}: {err}"));
                    assert_eq!(cfg.max_payload_size_bytes, Some(n), "{case}");
                }
                None => assert!(r.server_config_source().is_err(), "{case}: a 1.x config file below 1.0"),
            }
        }
    }
}

/// Every dotted path to a non-mapping value (or an empty mapping) in `doc`.
fn leaf_paths(doc: &Value) -> Vec<String> {
    fn walk(v: &Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            Value::Mapping(m) if !m.is_empty() => {
                for (k, child) in m {
                    let k = k
                        .as_str()
                        .unwrap_or_else(|| panic!("non-string config key {k:?}"));
                    let path = if prefix.is_empty() {
                        k.to_string()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(child, &path, out);
                }
            }
            _ if !prefix.is_empty() => out.push(prefix.to_string()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, "", &mut out);
    out
}

/// The rendered config value at `path` against the model's, where absence means the server
/// default (which the chart may also write out).
fn assert_config_key(case: &Case, rendered: &Value, expected: &Value, path: &str) {
    let got = at(rendered, path);
    match at(expected, path) {
        Some(want) => assert_eq!(got, Some(want), "{case}: config `{path}`"),
        None => {
            let default = SERVER_DEFAULTS
                .iter()
                .find(|(k, _)| *k == path)
                .map(|(_, d)| *d);
            let ok = match got {
                None => true,
                Some(Value::String(s)) => s.is_empty() || Some(s.as_str()) == default,
                Some(Value::Number(n)) => Some(n.to_string().as_str()) == default,
                Some(Value::Mapping(m)) => m.is_empty(),
                Some(Value::Sequence(s)) => s.is_empty(),
                Some(_) => false,
            };
            assert!(
                ok,
                "{case}: config `{path}` = {got:?}, but the values leave it to the server default {default:?}"
            );
        }
    }
}

const RUST_SCENARIOS: &[&str] = &[
    "defaults",
    "rust-config",
    "circuit-breaker-off",
    "extra-config",
    "custom-port-dir",
    "cors-list",
];

#[rustfmt::skip]
#[rstest::rstest]
fn dedicated_config_keys_follow_the_model(
    #[values("sqlite_filename", "sqlitedb.hash_type", "sqlitedb.migration_mode", "circuit_breaker.requests",
             "open_telemetry.endpoint", "open_telemetry.service_name", "open_telemetry.filters",
             "segment_manager.hnsw_index_pool_cache_config", "listen_address", "port", "persist_path")]
    path: &str,
) {
    let rust: Vec<&str> = VERSIONS.iter().copied().filter(|s| v(s).is_rust_server()).collect();
    assert_ran(rust.len(), "the Rust-server versions of the matrix");
    for version in rust {
        for case in suite().accepted(version, RUST_SCENARIOS) {
            let (e, r) = case.accepted().expect("accepted");
            let doc = r.server_config_doc().unwrap_or_else(|err| panic!("{case}: {err}"));
            assert_config_key(&case, &doc, e.server_config.as_ref().expect("rust"), path);
        }
    }
}

each_version! {
    /// Telemetry (`chromadb.telemetry.*`): `open_telemetry` present iff enabled.
    fn open_telemetry_present_iff_enabled(version) {
        for case in suite().accepted(version, &["defaults", "rust-config"]) {
            let (e, r) = case.accepted().expect("accepted");
            let Some(want) = &e.server_config else {
                assert!(r.server_config_source().is_err(), "{case}: config file below 1.0");
                continue;
            };
            let cfg = r.server_config().unwrap_or_else(|err| panic!("{case}: {err}"));
            assert_eq!(cfg.open_telemetry.is_some(), at(want, "open_telemetry").is_some(), "{case}");
        }
    }
}

each_version! {
    /// `chromadb.extraConfig`: deep-merged over the chart's keys; every key it sets wins.
    fn extra_config_is_merged_over_the_chart_config(version) {
        for case in suite().accepted(version, &["extra-config"]) {
            let (e, r) = case.accepted().expect("accepted");
            let Some(want) = &e.server_config else {
                assert!(r.server_config_source().is_err(), "{case}: extraConfig rendered a config file below 1.0");
                continue;
            };
            let doc = r.server_config_doc().unwrap_or_else(|err| panic!("{case}: {err}"));
            let extra = spec::lookup(&case.values, "chromadb.extraConfig").unwrap_or_else(|| panic!("{case}: the scenario sets no extraConfig"));
            let paths = leaf_paths(extra);
            assert!(!paths.is_empty(), "{case}: extraConfig has no keys to check");
            for path in paths {
                assert_eq!(at(&doc, &path), at(extra, &path), "{case}: `{path}` must be extraConfig's value");
                assert_eq!(at(&doc, &path), at(want, &path), "{case}: `{path}`");
            }
        }
    }
}

each_version! {
    /// The whole 1.x config document: every key the model writes has the model's value.
    fn server_config_document_matches_the_model(version) {
        for case in suite().accepted(version, RUST_SCENARIOS) {
            let (e, r) = case.accepted().expect("accepted");
            let Some(want) = &e.server_config else {
                assert!(r.server_config_source().is_err(), "{case}: a 1.x config file below 1.0");
                continue;
            };
            let doc = r.server_config_doc().unwrap_or_else(|err| panic!("{case}: {err}"));
            for (k, v) in want.as_mapping().expect("mapping") {
                let k = k.as_str().expect("string key");
                assert_eq!(doc.get(k), Some(v), "{case}: `{k}`");
            }
            // Whatever the render writes beyond the model must be a server default.
            for path in leaf_paths(&doc) {
                assert_config_key(&case, &doc, want, &path);
            }
        }
    }
}

each_version! {
    /// `imagePullSecrets` + `global.imagePullSecrets`: merged on the pod.
    fn pull_secrets_are_merged(version) {
        for case in suite().accepted(version, &["defaults", "labels-images"]) {
            let (_, r) = case.accepted().expect("accepted");
            let mut want = pull_secrets(&case.values);
            want.sort();
            want.dedup();
            let mut got: Vec<String> = r.pod_spec().and_then(|s| s.image_pull_secrets.clone()).unwrap_or_default()
                .into_iter().map(|s| s.name).collect();
            got.sort();
            got.dedup();
            assert_eq!(got, want, "{case}");
        }
    }
}

each_version! {
    /// `serviceAccount.*`: created or not, its name, annotations and token automount.
    fn service_account_follows_values(version) {
        for case in suite().accepted(version, &["defaults", "service-account", "service-account-annotated"]) {
            let (_, r) = case.accepted().expect("accepted");
            let vals = &case.values;
            let create = spec::parse_bool(vals, "serviceAccount.create", true).expect("valid");
            let name = match spec::parse_str(vals, "serviceAccount.name", "").expect("valid") {
                "" if create => "chroma-chromadb",
                "" => "default",
                n => n,
            };
            let sas: Vec<_> = r.service_accounts().collect();
            let pod_sa = r.pod_spec().and_then(|s| s.service_account_name.clone()).unwrap_or_else(|| "default".into());
            assert_eq!(pod_sa, name, "{case}: pod serviceAccountName");
            if !create {
                assert!(sas.is_empty(), "{case}: ServiceAccount rendered with create=false");
                continue;
            }
            let sa = sas.iter().find(|s| s.metadata.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("{case}: no ServiceAccount {name}"));
            let automount = spec::parse_bool(vals, "serviceAccount.automountServiceAccountToken", true).expect("valid");
            assert_eq!(sa.automount_service_account_token.unwrap_or(true), automount, "{case}");
            if let Some(Value::Mapping(want)) = spec::lookup(vals, "serviceAccount.annotations") {
                let got = sa.metadata.annotations.clone().unwrap_or_default();
                for (k, v) in want {
                    assert_eq!(got.get(k.as_str().expect("key")).map(String::as_str), v.as_str(), "{case}: annotation {k:?}");
                }
            }
        }
    }
}

each_version! {
    /// `commonLabels`: on every object and pod template. Not on the StatefulSet's claim
    /// template: Kubernetes cannot change it on an installed release (issue 22), so it carries
    /// the selector labels only.
    fn common_labels_on_every_object(version) {
        for case in suite().accepted(version, &["labels-images"]) {
            let (_, r) = case.accepted().expect("accepted");
            let Some(Value::Mapping(want)) = spec::lookup(&case.values, "commonLabels") else { panic!("{case}: the scenario sets no commonLabels") };
            assert!(!want.is_empty(), "{case}: commonLabels is empty");
            for site in r.label_sites() {
                if site.place.starts_with("claim template") {
                    assert_eq!(site.labels, spec::claim_template_labels(&case.values, "chroma").expect("valid"), "{case}: {site}");
                    continue;
                }
                for (k, v) in want {
                    let (k, v) = (k.as_str().expect("key"), v.as_str().expect("value"));
                    assert_eq!(site.labels.get(k).map(String::as_str), Some(v), "{case}: {site} lacks {k}");
                }
            }
        }
    }
}

each_version! {
    /// `podLabels`: on the pod template only, never in selectors or other objects.
    fn pod_labels_on_pods_only(version) {
        for case in suite().accepted(version, &["labels-images"]) {
            let (_, r) = case.accepted().expect("accepted");
            let Some(Value::Mapping(want)) = spec::lookup(&case.values, "podLabels") else { panic!("{case}: the scenario sets no podLabels") };
            assert!(!want.is_empty(), "{case}: podLabels is empty");
            for (key, value) in want {
                let (key, value) = (key.as_str().expect("key"), value.as_str().expect("value"));
                assert_eq!(r.pod_labels().get(key).map(String::as_str), Some(value), "{case}: pod template");
                assert!(!r.selector().contains_key(key), "{case}: podLabels in the StatefulSet selector");
                for svc in r.services() {
                    let sel = svc.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
                    assert!(!sel.contains_key(key), "{case}: podLabels in the Service selector");
                }
                for site in r.label_sites().iter().filter(|s| !(s.kind == "StatefulSet" && s.place == "pod template")) {
                    assert!(!site.labels.contains_key(key), "{case}: podLabels on {site}");
                }
            }
        }
    }
}
