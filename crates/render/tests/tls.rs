//! `tls.*`: every object the switch touches, per era, against the spec model — the 0.x
//! server's uvicorn flags, the 1.x proxy sidecar and loopback-only server, the HTTPS Service,
//! probes, Ingress, NetworkPolicy and `helm test` — and the cert-manager `Certificate`
//! validated against this project's strict subset schema of cert-manager's Certificate
//! (fixtures/schemas/certificate-v1-subset.json).

#[macro_use]
mod support;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use render::Rendered;
use render::spec::tls::CertSource;
use rstest::rstest;
use serde_json::Value as Json;
use support::*;

const EXISTING: &str = "tls: {enabled: true, existingSecret: my-tls}";
const CERT_MANAGER: &str = "tls: {enabled: true, certManager: {enabled: true, issuerRef: {name: corp-ca, kind: ClusterIssuer}, dnsNames: [chroma.example.com], duration: 2160h, renewBefore: 360h}}";

fn render_ok(version: &str, values: &str) -> (render::Expected, std::sync::Arc<Rendered>) {
    let values = yaml(values);
    let expected = render::Expected::from_values(&values, &v(version))
        .unwrap_or_else(|e| panic!("{version}: the model refuses {values:?}: {e}"));
    let r = suite()
        .render(&v(version), &values)
        .unwrap_or_else(|e| panic!("{version}: helm refused {values:?}: {e}"));
    (expected, r)
}

fn pod(r: &Rendered) -> &PodSpec {
    r.statefulset()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec")
}

fn container<'a>(r: &'a Rendered, name: &str) -> Option<&'a Container> {
    pod(r).containers.iter().find(|c| c.name == name)
}

/// The path a container mounts the TLS Secret's volume at, and the Secret's name.
fn tls_mount(r: &Rendered, c: &Container) -> (String, String) {
    let vols = pod(r).volumes.as_ref().expect("volumes");
    for m in c.volume_mounts.iter().flatten() {
        if let Some(s) = vols
            .iter()
            .find(|v| v.name == m.name)
            .and_then(|v| v.secret.as_ref())
        {
            let keys: Vec<&str> = s.items.iter().flatten().map(|i| i.key.as_str()).collect();
            if keys.contains(&"tls.crt") && keys.contains(&"tls.key") {
                return (
                    m.mount_path.clone(),
                    s.secret_name.clone().unwrap_or_default(),
                );
            }
        }
    }
    panic!(
        "container {} mounts no Secret volume with tls.crt and tls.key",
        c.name
    )
}

fn secret_name(e: &render::Expected, fullname: &str) -> String {
    match &e.tls.as_ref().expect("tls expected").source {
        CertSource::ExistingSecret(s) => s.clone(),
        CertSource::CertManager { .. } => format!("{fullname}-tls"),
    }
}

each_version! {
    /// Every probe of the pod speaks HTTPS on the port the Service targets, whichever
    /// container serves it; and the Service port says https.
    fn probes_and_service_switch_to_https(version) {
        let (_, r) = render_ok(version, EXISTING);
        let svc = r.services().find(|s| s.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) != Some("None")).expect("service");
        let port = &svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
        assert_eq!((port.name.as_deref(), port.app_protocol.as_deref()), (Some("https"), Some("https")), "{version}");
        let mut probes = 0;
        for c in &pod(&r).containers {
            for p in [&c.startup_probe, &c.readiness_probe, &c.liveness_probe].into_iter().flatten() {
                let get = p.http_get.as_ref().expect("httpGet");
                assert_eq!(get.scheme.as_deref(), Some("HTTPS"), "{version}: {} probe", c.name);
                probes += 1;
            }
        }
        assert_ran(probes, "probes");
    }
}

#[rstest]
#[case::entrypoint_era_persistent("0.6.3", EXISTING)]
#[case::legacy_era("0.4.8", EXISTING)]
#[case::before_token_auth("0.4.3", EXISTING)]
#[case::cert_manager("0.5.0", CERT_MANAGER)]
fn python_server_serves_tls_itself_from_the_mounted_secret(
    #[case] version: &str,
    #[case] values: &str,
) {
    let (e, r) = render_ok(version, values);
    assert_eq!(e.tls.as_ref().unwrap().proxied_server_port, None);
    assert_eq!(pod(&r).containers.len(), 1, "no sidecar on 0.x");
    let c = r.chroma_container().unwrap();
    let (dir, secret) = tls_mount(&r, c);
    assert_eq!(secret, secret_name(&e, "chroma-chromadb"));
    assert_eq!(
        cli_flag(&r, "--ssl-certfile").as_deref(),
        Some(format!("{dir}/tls.crt").as_str()),
        "{version}"
    );
    assert_eq!(
        cli_flag(&r, "--ssl-keyfile").as_deref(),
        Some(format!("{dir}/tls.key").as_str()),
        "{version}"
    );
    assert!(
        dir.contains(&secret),
        "the mount path {dir} names the Secret {secret}, so file errors name it"
    );
}

/// 0.x with TLS starts through the chart's launcher, shipped whole in a ConfigMap the container
/// mounts, with uvicorn's own command line and the Secret's name; the script's text rolls the pod.
#[rstest]
#[case::entrypoint_era("0.6.3", EXISTING)]
#[case::legacy_era("0.4.3", EXISTING)]
#[case::cert_manager("0.5.0", CERT_MANAGER)]
fn python_server_starts_through_the_launcher_that_follows_the_secret(
    #[case] version: &str,
    #[case] values: &str,
) {
    let (e, r) = render_ok(version, values);
    let c = r.chroma_container().unwrap();
    let command = c.command.clone().unwrap_or_default();
    assert_eq!(
        command.get(2).map(String::as_str),
        Some("chromadb.app:app"),
        "{version}: {command:?}"
    );
    assert_eq!(command[0], "python", "{version}");
    let script = std::path::Path::new(&command[1]);
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| Some(std::path::Path::new(&m.mount_path)) == script.parent())
        .unwrap_or_else(|| panic!("{version}: nothing mounted at {}", script.display()));
    let cm_name = pod(&r)
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .and_then(|v| v.config_map.as_ref())
        .map(|cm| cm.name.clone())
        .expect("the launcher comes from a ConfigMap");
    let cm = r
        .documents
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == cm_name.as_str())
        .expect("the ConfigMap is rendered");
    let shipped = std::fs::read_to_string(suite().chart.join("files/uvicorn-tls.py"))
        .expect("files/uvicorn-tls.py");
    let key = script.file_name().unwrap().to_str().unwrap();
    assert_eq!(
        cm["data"][key].as_str().map(str::trim),
        Some(shipped.trim()),
        "{version}: the ConfigMap carries the script whole"
    );
    assert_eq!(
        cli_flag(&r, "--tls-secret"),
        Some(secret_name(&e, "chroma-chromadb")),
        "{version}"
    );
}

/// A new launcher in a chart upgrade rolls the pod, though no value changed.
#[test]
fn a_changed_launcher_changes_the_pods_config_checksum() {
    let copy = tempfile::tempdir().expect("temp dir");
    let chart = copy.path().join("chromadb");
    copy_tree(&suite().chart, &chart);
    let script = chart.join("files/uvicorn-tls.py");
    let text = std::fs::read_to_string(&script).unwrap();
    std::fs::write(&script, format!("{text}\n# changed\n")).unwrap();
    let sum = |chart: &std::path::Path| {
        let req = render::RenderRequest::new(chart)
            .version(v("0.6.3"))
            .values(yaml(EXISTING));
        let r = suite().cache.render(&req).expect("renders");
        let sts = r
            .statefulset()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.clone());
        sts.and_then(|a| a.get("checksum/config").cloned())
            .expect("checksum/config")
    };
    assert_ne!(sum(&suite().chart), sum(&chart));
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[rstest]
#[case::existing_secret("1.5.0", EXISTING)]
#[case::first_rust_release("1.0.0", EXISTING)]
#[case::cert_manager("1.5.0", CERT_MANAGER)]
#[case::custom_ports(
    "1.5.0",
    "tls: {enabled: true, existingSecret: s, proxy: {serverPort: 9001}}\nchromadb: {serverHttpPort: 8443}"
)]
fn rust_server_listens_on_loopback_behind_the_nginx_sidecar(
    #[case] version: &str,
    #[case] values: &str,
) {
    let (e, r) = render_ok(version, values);
    let upstream = e
        .tls
        .as_ref()
        .unwrap()
        .proxied_server_port
        .expect("1.x is proxied");
    let cfg = e.server_config.as_ref().expect("server config");
    assert_eq!(
        cfg["listen_address"],
        serde_yaml::Value::from("127.0.0.1"),
        "the model"
    );
    let rendered_cfg: serde_yaml::Value = serde_yaml::from_str(
        r.configmap("chroma-chromadb-config")
            .unwrap()
            .data
            .as_ref()
            .unwrap()["config.yaml"]
            .as_str(),
    )
    .unwrap();
    assert_eq!(
        rendered_cfg["listen_address"],
        serde_yaml::Value::from("127.0.0.1")
    );
    assert_eq!(rendered_cfg["port"].as_u64(), Some(u64::from(upstream)));
    assert_eq!(
        &rendered_cfg, cfg,
        "the rendered server config is the model's"
    );
    let server = r.chroma_container().unwrap();
    assert!(
        server.ports.as_ref().is_none_or(|p| p.is_empty()),
        "the server declares no port reachable from outside the pod"
    );

    let proxy = container(&r, "tls-proxy").expect("proxy sidecar");
    assert!(
        proxy.image.as_deref().unwrap().contains("nginx"),
        "{:?}",
        proxy.image
    );
    let https = proxy
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("https"))
        .expect("https port");
    assert_eq!(https.container_port, i32::from(e.port));
    let (dir, secret) = tls_mount(&r, proxy);
    assert_eq!(secret, secret_name(&e, "chroma-chromadb"));

    let conf = r
        .configmap("chroma-chromadb-tls-proxy")
        .expect("proxy config")
        .data
        .as_ref()
        .unwrap()["nginx.conf"]
        .clone();
    assert!(conf.contains(&format!("listen {} ssl;", e.port)), "{conf}");
    assert!(
        conf.contains(&format!("proxy_pass http://127.0.0.1:{upstream};")),
        "{conf}"
    );
    assert!(
        conf.contains(&format!("default {dir};"))
            && conf.contains("ssl_certificate $chroma_tls_dir/tls.crt;"),
        "certificate read per handshake from the mount: {conf}"
    );
    assert!(
        conf.contains(&format!("ssl_certificate_key {dir}/tls.key;")),
        "a fixed-path pair nginx loads at start, so a bad pair stops it: {conf}"
    );
    // The server's own answers pass unchanged: no body limit below the server's, no CORS here.
    assert!(conf.contains("client_max_body_size 0;"), "{conf}");
    assert!(
        !conf.contains("add_header") && !conf.contains("Access-Control"),
        "{conf}"
    );
    let sc = proxy
        .security_context
        .as_ref()
        .expect("proxy securityContext");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
}

#[rstest]
#[case::defaults_to_the_tls_secrets_ca(
    "tls: {enabled: true, existingSecret: my-tls}",
    "secret",
    "my-tls",
    "ca.crt"
)]
#[case::ca_bundle_config_map(
    "tls: {enabled: true, existingSecret: my-tls, caBundle: {name: corp-ca, key: root.pem}}",
    "configmap",
    "corp-ca",
    "root.pem"
)]
#[case::ca_bundle_secret(
    "tls: {enabled: true, existingSecret: my-tls, caBundle: {name: corp-ca, kind: Secret}}",
    "secret",
    "corp-ca",
    "ca.crt"
)]
fn helm_test_calls_https_trusting_the_ca(
    #[case] values: &str,
    #[case] kind: &str,
    #[case] name: &str,
    #[case] key: &str,
) {
    for version in ["0.6.3", "1.5.0"] {
        let (_, r) = render_ok(version, values);
        let job = r.jobs().next().expect("test job");
        let c = &job
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        let env = |n: &str| {
            c.env
                .iter()
                .flatten()
                .find(|e| e.name == n)
                .cloned()
                .unwrap_or_else(|| panic!("{version}: env {n}"))
        };
        assert!(
            env("BASE_URL")
                .value
                .unwrap()
                .starts_with("https://chroma-chromadb."),
            "{version}"
        );
        let from = env("CHROMA_CA")
            .value_from
            .expect("CHROMA_CA from a reference");
        let (got_name, got_key) = match kind {
            "secret" => from
                .secret_key_ref
                .map(|s| (s.name, s.key))
                .expect("secretKeyRef"),
            _ => from
                .config_map_key_ref
                .map(|s| (s.name, s.key))
                .expect("configMapKeyRef"),
        };
        assert_eq!(
            (got_name.as_str(), got_key.as_str()),
            (name, key),
            "{version}"
        );
        let script = c.command.as_ref().unwrap().join(" ");
        assert!(script.contains("--cacert"), "{version}: {script}");
    }
}

#[test]
fn ingress_and_network_policy_follow_the_https_port() {
    let (_, r) = render_ok(
        "1.5.0",
        "tls: {enabled: true, existingSecret: s}\ningress: {enabled: true}\nnetworkPolicy: {enabled: true, allowedFrom: [{podSelector: {}}]}",
    );
    let ing = r.ingresses().next().expect("ingress");
    assert_eq!(
        ing.metadata.annotations.as_ref().unwrap()["nginx.ingress.kubernetes.io/backend-protocol"],
        "HTTPS"
    );
    let backend = ing.spec.as_ref().unwrap().rules.as_ref().unwrap()[0]
        .http
        .as_ref()
        .unwrap()
        .paths[0]
        .backend
        .service
        .as_ref()
        .unwrap();
    assert_eq!(
        backend.port.as_ref().unwrap().name.as_deref(),
        Some("https")
    );
    let np = r
        .documents
        .iter()
        .find(|d| d["kind"] == "NetworkPolicy")
        .expect("network policy");
    assert_eq!(np["spec"]["ingress"][0]["ports"][0]["port"], "https");
}

#[test]
fn the_users_backend_protocol_annotation_wins() {
    let (_, r) = render_ok(
        "1.5.0",
        "tls: {enabled: true, existingSecret: s}\ningress: {enabled: true, annotations: {nginx.ingress.kubernetes.io/backend-protocol: GRPCS}}",
    );
    assert_eq!(
        r.ingresses()
            .next()
            .unwrap()
            .metadata
            .annotations
            .as_ref()
            .unwrap()["nginx.ingress.kubernetes.io/backend-protocol"],
        "GRPCS"
    );
}

/// The schema with `additionalProperties: false` wherever it lists properties (kubeconform's
/// strict mode), so a misspelt field is an error at every level, whatever the file says.
fn strict(mut s: Json) -> Json {
    fn walk(v: &mut Json) {
        if let Some(m) = v.as_object_mut() {
            if m.contains_key("properties") && !m.contains_key("additionalProperties") {
                m.insert("additionalProperties".into(), Json::Bool(false));
            }
            m.remove("x-kubernetes-preserve-unknown-fields");
            for (_, c) in m.iter_mut() {
                walk(c);
            }
        } else if let Some(a) = v.as_array_mut() {
            a.iter_mut().for_each(walk);
        }
    }
    walk(&mut s);
    s
}

#[test]
fn cert_manager_certificate_names_the_service_and_fits_the_certificate_schema() {
    let (e, r) = render_ok("1.5.0", CERT_MANAGER);
    let cert = r
        .documents
        .iter()
        .find(|d| d["kind"] == "Certificate")
        .expect("a Certificate");
    let schema: Json = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("fixtures/schemas/certificate-v1-subset.json"))
            .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&strict(schema)).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(cert)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let CertSource::CertManager {
        issuer,
        kind,
        extra_dns_names,
        duration,
        renew_before,
        ..
    } = &e.tls.as_ref().unwrap().source
    else {
        panic!("cert-manager source")
    };
    assert_eq!(cert["spec"]["issuerRef"]["name"], issuer.as_str());
    assert_eq!(cert["spec"]["issuerRef"]["kind"], kind.as_str());
    assert_eq!(cert["spec"]["duration"], duration.as_deref().unwrap());
    assert_eq!(
        cert["spec"]["renewBefore"],
        renew_before.as_deref().unwrap()
    );
    let names: Vec<&str> = cert["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    for want in [
        "chroma-chromadb",
        "chroma-chromadb.default.svc",
        "chroma-chromadb.default.svc.cluster.local",
        "chroma-chromadb-headless.default.svc",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for extra in extra_dns_names {
        assert!(
            names.contains(&extra.as_str()),
            "{extra} missing from {names:?}"
        );
    }
    // The Secret the pod mounts is the one cert-manager writes.
    let proxy = container(&r, "tls-proxy").unwrap();
    assert_eq!(
        tls_mount(&r, proxy).1,
        cert["spec"]["secretName"].as_str().unwrap()
    );
}

#[test]
fn the_strict_schema_catches_a_misspelt_field() {
    let schema: Json = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("fixtures/schemas/certificate-v1-subset.json"))
            .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&strict(schema)).unwrap();
    let bad = serde_json::json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "x"},
        "spec": {"secretName": "s", "dnsName": ["a"], "issuerRef": {"name": "ca"}}});
    assert!(!validator.is_valid(&bad));
}

#[rstest]
#[case::proxy_port_is_the_service_port(
    "tls: {enabled: true, existingSecret: s, proxy: {serverPort: 8000}}",
    "tls.proxy.serverPort"
)]
fn refused_on_the_rust_server_only(#[case] values: &str, #[case] key: &str) {
    let values = yaml(values);
    let err = suite()
        .render(&v("1.5.0"), &values)
        .expect_err("1.5.0 must refuse");
    assert_names_key(&err.to_string(), key, "1.5.0");
    assert_eq!(
        render::Expected::from_values(&values, &v("1.5.0"))
            .unwrap_err()
            .key,
        key
    );
    render_ok(
        "0.6.3",
        "tls: {enabled: true, existingSecret: s, proxy: {serverPort: 8000}}",
    );
}

#[test]
fn tls_off_renders_no_tls_objects() {
    let (e, r) = render_ok(
        "1.5.0",
        "tls: {existingSecret: s, certManager: {issuerRef: {name: ca}}}",
    );
    assert!(e.tls.is_none());
    assert!(container(&r, "tls-proxy").is_none());
    assert!(!r.documents.iter().any(|d| d["kind"] == "Certificate"));
}
