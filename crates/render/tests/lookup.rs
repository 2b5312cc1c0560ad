//! The chart's `lookup` calls, which `helm template` never exercises (it has no API server):
//! rendered with `--dry-run=server` against a tiny in-process fake of the Kubernetes API that
//! serves discovery and exactly the objects a test puts there.

#[macro_use]
mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use render::{Helm, RenderRequest, Rendered};
use serde_json::json;
use support::*;

const RELEASE: &str = "chroma";
const NS: &str = "default";

/// Serves discovery plus `objects` (API path → JSON) until the process ends; 404 otherwise.
fn fake_api(objects: BTreeMap<String, serde_json::Value>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    let mut routes = objects;
    routes.insert(
        "/version".into(),
        json!({"major": "1", "minor": "30", "gitVersion": "v1.30.0"}),
    );
    routes.insert(
        "/api".into(),
        json!({"kind": "APIVersions", "versions": ["v1"]}),
    );
    // Discovery for every kind the chart renders, so helm can map its objects.
    let groups: [(&str, &[(&str, &str)]); 6] = [
        (
            "v1",
            &[
                ("secrets", "Secret"),
                ("configmaps", "ConfigMap"),
                ("services", "Service"),
                ("serviceaccounts", "ServiceAccount"),
                ("pods", "Pod"),
            ],
        ),
        ("apps/v1", &[("statefulsets", "StatefulSet")]),
        ("batch/v1", &[("jobs", "Job")]),
        (
            "networking.k8s.io/v1",
            &[
                ("ingresses", "Ingress"),
                ("networkpolicies", "NetworkPolicy"),
            ],
        ),
        (
            "policy/v1",
            &[("poddisruptionbudgets", "PodDisruptionBudget")],
        ),
        ("apiextensions.k8s.io/v1", &[]),
    ];
    let mut listed = Vec::new();
    for (gv, kinds) in groups {
        let resources: Vec<_> = kinds.iter().map(|(name, kind)| json!({"name": name, "singularName": kind.to_lowercase(), "namespaced": true, "kind": kind, "verbs": ["get", "list", "create"]})).collect();
        let path = if gv == "v1" {
            "/api/v1".to_string()
        } else {
            format!("/apis/{gv}")
        };
        routes.insert(
            path,
            json!({"kind": "APIResourceList", "groupVersion": gv, "resources": resources}),
        );
        if let Some((group, version)) = gv.split_once('/') {
            listed.push(json!({"name": group, "versions": [{"groupVersion": gv, "version": version}], "preferredVersion": {"groupVersion": gv, "version": version}}));
        }
    }
    routes.insert(
        "/apis".into(),
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": listed}),
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            // Drain the headers; GETs carry no body.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = first
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .split('?')
                .next()
                .unwrap_or("/")
                .to_string();
            let (status, body) = match routes.get(&path) {
                Some(b) => ("200 OK", b.to_string()),
                None => ("404 Not Found", json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}).to_string()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

/// `helm template --dry-run=server` of `values` on `version` against `server`.
fn render_against(server: &str, version: &str, values: &str) -> Result<Rendered, String> {
    let s = suite();
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\nclusters: [{{name: f, cluster: {{server: \"{server}\"}}}}]\nusers: [{{name: u, user: {{}}}}]\ncontexts: [{{name: c, context: {{cluster: f, user: u, namespace: {NS}}}}}]\ncurrent-context: c\n"),
    )
    .expect("write kubeconfig");
    let req = RenderRequest::new(&s.chart)
        .release(RELEASE)
        .namespace(NS)
        .version(v(version))
        .values(yaml(values));
    let helm = Helm::from_env().map_err(|e| e.to_string())?;
    let out = helm
        .command()
        .args(req.args(dir.path()).map_err(|e| e.to_string())?)
        .arg("--dry-run=server")
        // The fake serves no OpenAPI document; the strict schema tests cover the objects.
        .arg("--disable-openapi-validation")
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Rendered::parse(&String::from_utf8_lossy(&out.stdout)).map_err(|e| e.to_string())
}

fn auth_secret(owner: &str) -> (String, serde_json::Value) {
    (
        format!("/api/v1/namespaces/{NS}/secrets/chromadb-auth"),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "chromadb-auth", "namespace": NS, "labels": {"app.kubernetes.io/managed-by": "Helm"},
                            "annotations": {"meta.helm.sh/release-name": owner, "meta.helm.sh/release-namespace": NS}},
               "data": {"token": "a2VwdA=="}}),
    )
}

#[test]
fn auth_secret_of_another_release_fails_naming_that_release() {
    let server = fake_api([auth_secret("search-prod")].into_iter().collect());
    let err = render_against(&server, "0.6.3", "{}").expect_err("the install must fail");
    assert!(
        err.contains("search-prod"),
        "the refusal does not name the owning release:\n{err}"
    );
    assert!(
        err.contains("chromadb.auth.existingSecret"),
        "the refusal does not say what to do:\n{err}"
    );
}

#[test]
fn auth_secret_no_release_manages_fails_pointing_to_existing_secret() {
    let (path, mut secret) = auth_secret("unused");
    secret["metadata"] = json!({"name": "chromadb-auth", "namespace": NS});
    let server = fake_api([(path, secret)].into_iter().collect());
    let err = render_against(&server, "0.5.0", "{}").expect_err("the install must fail");
    assert!(
        err.contains("chromadb.auth.existingSecret=chromadb-auth"),
        "the refusal does not offer the user's Secret:\n{err}"
    );
}

#[test]
fn auth_secret_of_this_release_is_reused_on_upgrade() {
    let server = fake_api([auth_secret(RELEASE)].into_iter().collect());
    let r = render_against(&server, "0.6.3", "{}").unwrap_or_else(|e| panic!("{e}"));
    let data = r
        .secrets()
        .find(|s| s.metadata.name.as_deref() == Some("chromadb-auth"))
        .and_then(|s| s.data.clone())
        .expect("Secret data");
    assert_eq!(
        data.get("token").map(|b| b.0.as_slice()),
        Some(b"kept".as_slice()),
        "the upgrade generated a new token"
    );
}

#[test]
fn installed_statefulset_keeps_its_service_name_on_upgrade() {
    // A release installed by a chart without the headless Service: serviceName cannot change.
    let full = render::spec::fullname(&yaml("{}"), RELEASE).expect("valid");
    let path = format!("/apis/apps/v1/namespaces/{NS}/statefulsets/{full}");
    let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": full, "namespace": NS, "labels": {"app.kubernetes.io/managed-by": "Helm"},
                     "annotations": {"meta.helm.sh/release-name": RELEASE, "meta.helm.sh/release-namespace": NS}},
        "spec": {"serviceName": full}});
    let server = fake_api([(path, sts)].into_iter().collect());
    let r = render_against(&server, "1.5.0", "{}").unwrap_or_else(|e| panic!("{e}"));
    let got = r
        .statefulset()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.service_name.clone());
    assert_eq!(
        got.as_deref(),
        Some(full.as_str()),
        "an upgrade would try to change the immutable serviceName"
    );
    // And a fresh install (nothing in the API) uses the headless Service.
    let fresh =
        render_against(&fake_api(BTreeMap::new()), "1.5.0", "{}").unwrap_or_else(|e| panic!("{e}"));
    let want = render::spec::headless_service(&yaml("{}"), RELEASE).expect("valid");
    assert_eq!(
        fresh
            .statefulset()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.service_name.clone()),
        Some(want)
    );
}

/// A StatefulSet an older chart installed, with `commonLabels` in its claim template.
fn installed_with_claim_metadata(metadata: serde_json::Value) -> String {
    let name = render::spec::statefulset_name(&yaml("{}"), RELEASE).expect("valid");
    let path = format!("/apis/apps/v1/namespaces/{NS}/statefulsets/{name}");
    let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": NS, "labels": {"app.kubernetes.io/managed-by": "Helm"},
                     "annotations": {"meta.helm.sh/release-name": RELEASE, "meta.helm.sh/release-namespace": NS}},
        "spec": {"serviceName": format!("{name}-headless"), "volumeClaimTemplates": [{"metadata": metadata, "spec": {"accessModes": ["ReadWriteOnce"]}}]}});
    fake_api([(path, sts)].into_iter().collect())
}

#[test]
fn an_installed_claim_template_is_kept_as_it_is_on_upgrade() {
    // Installed with commonLabels {team: search}; the upgrade changes commonLabels.
    let installed = json!({"name": "data", "labels": {"app.kubernetes.io/name": "chromadb", "app.kubernetes.io/instance": RELEASE, "team": "search"}});
    let r = render_against(
        &installed_with_claim_metadata(installed.clone()),
        "1.5.0",
        "commonLabels: {team: vectors}",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tpl = r.pvc_templates().first().expect("claim template");
    let got = serde_json::to_value(&tpl.metadata).expect("json");
    assert_eq!(
        got["labels"], installed["labels"],
        "the upgrade would change the immutable claim template"
    );
    assert_eq!(
        r.statefulset()
            .and_then(|s| s.metadata.labels.clone())
            .and_then(|l| l.get("team").cloned())
            .as_deref(),
        Some("vectors"),
        "commonLabels still reach the StatefulSet"
    );
}

#[test]
fn changing_an_installed_claim_templates_annotations_is_refused_naming_the_key() {
    let installed = json!({"name": "data", "labels": {"app.kubernetes.io/name": "chromadb", "app.kubernetes.io/instance": RELEASE}});
    let err = render_against(
        &installed_with_claim_metadata(installed),
        "0.6.3",
        "chromadb: {data: {annotations: {snapshot.example.com/class: daily}}}",
    )
    .expect_err("Kubernetes refuses a changed claim template; helm must say so first");
    assert!(
        err.contains("chromadb.data.annotations") && err.contains("kubectl"),
        "the refusal names neither the key nor the way out:\n{err}"
    );
}
