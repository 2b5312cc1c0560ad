//! A TLS Secret whose pair cannot be used, live on the process backend, part of `cargo xtask
//! test` (which exports HELM and UV): the server's container stops at start with a message
//! naming the Secret, so the deploy fails for that reason and no other. On 0.x the chart's
//! uvicorn-tls.py says so; on 1.x nginx, which loads the pair of its never-serving check
//! server at start, names the Secret's mount path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use e2e::backend::{Backend, BackendError, Release};
use e2e::process::{ProcessBackend, ProcessOptions};
use e2e::venv::VenvCache;
use render::{ChromaVersion, Helm, RenderRequest, VersionMatrix};

const HINT: &str = "`cargo xtask test` exports HELM and UV; by hand: export HELM=$(cargo xtask tools --print helm) UV=$(cargo xtask tools --print uv)";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn deploy_with(version: &str, secret: BTreeMap<String, String>) -> Result<(), BackendError> {
    e2e::host::ensure().unwrap_or_else(|e| panic!("this test deploys on the process backend: {e}"));
    let helm =
        Helm::from_env().unwrap_or_else(|e| panic!("this test starts a real server: {e}; {HINT}"));
    let venvs = VenvCache::from_env()
        .unwrap_or_else(|e| panic!("this test starts a real server: {e}; {HINT}"));
    let version: ChromaVersion = version.parse().unwrap();
    let matrix = VersionMatrix::load(root().join("fixtures/versions.yaml"))
        .expect("fixtures/versions.yaml loads");
    let pins = matrix
        .get(&version)
        .map(|e| BTreeMap::from([(version.clone(), e.pins.clone())]))
        .unwrap_or_default();
    let backend = ProcessBackend::new(venvs, pins, ProcessOptions::default());
    let request = RenderRequest::new(root().join("charts/chromadb"))
        .release("tlsbad")
        .namespace("tls-bad")
        .version(version.clone())
        .set("tls.enabled", "true")
        .set_string("tls.existingSecret", "shop-tls");
    let rendered = request
        .render(&helm)
        .expect("helm renders TLS from an existing Secret");
    let release = Release {
        id: format!("tls-bad-{version}"),
        version,
        request,
        rendered,
        external_secrets: BTreeMap::from([("shop-tls".to_string(), secret)]),
    };
    let deployed = backend.deploy(&release).await?;
    backend.teardown(deployed).await.expect("teardown");
    Ok(())
}

fn pki() -> e2e::tls::Pki {
    e2e::tls::Pki::generate(&["tlsbad-chromadb.tls-bad.svc".to_string()]).expect("a throwaway CA")
}

fn secret(cert: &str, key: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("tls.crt".to_string(), cert.to_string()),
        ("tls.key".to_string(), key.to_string()),
    ])
}

#[tokio::test]
async fn a_key_that_does_not_match_stops_0_x_at_start_naming_the_secret() {
    let p = pki();
    let err = deploy_with("0.6.3", secret(&p.cert_pem, &p.other_key_pem))
        .await
        .expect_err("a mismatched key must not serve");
    let text = err.to_string();
    assert!(matches!(err, BackendError::NotReady { .. }), "{text}");
    // The process backend re-roots the container's paths under its temp dir; the tail is the pod's.
    assert!(
        text.contains("chromadb TLS: Secret shop-tls: tls.key (")
            && text.contains(
                "/etc/chroma-tls/shop-tls/tls.key) does not match the certificate in tls.crt"
            ),
        "{text}"
    );
}

#[tokio::test]
async fn a_certificate_that_is_not_pem_stops_0_x_at_start_naming_the_secret() {
    let p = pki();
    let err = deploy_with("0.4.8", secret("not a certificate", &p.key_pem))
        .await
        .expect_err("a broken certificate must not serve");
    let text = err.to_string();
    assert!(
        text.contains("chromadb TLS: Secret shop-tls: ")
            && text.contains("/etc/chroma-tls/shop-tls/tls.crt is not a PEM certificate"),
        "{text}"
    );
}

#[tokio::test]
async fn a_key_that_does_not_match_stops_the_1_x_proxy_at_start_naming_the_secret() {
    let p = pki();
    let err = deploy_with("1.5.0", secret(&p.cert_pem, &p.other_key_pem))
        .await
        .expect_err("a mismatched key must not serve");
    let text = err.to_string();
    assert!(text.contains("tls-proxy exited"), "{text}");
    assert!(
        text.contains(r#"SSL_CTX_use_PrivateKey("/etc/chroma-tls/shop-tls/tls.key") failed"#)
            && text.contains("key values mismatch"),
        "{text}"
    );
}
