//! `tls.*`: what the spec promises when the API is served over HTTPS, and which values it
//! refuses. The 0.x server (uvicorn) terminates TLS itself; the 1.x server has none, so a
//! proxy sidecar terminates it and the server listens on loopback only.

use serde_yaml::Value;

use super::SpecError;
use super::values::{err, lookup, parse_bool, parse_int, parse_str};
use crate::version::ChromaVersion;

/// Where the certificate of a TLS deployment comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertSource {
    /// The user's `kubernetes.io/tls` Secret.
    ExistingSecret(String),
    /// A cert-manager `Certificate` the chart renders, signed by this issuer.
    CertManager {
        issuer: String,
        kind: String,
        group: String,
        extra_dns_names: Vec<String>,
        duration: Option<String>,
        renew_before: Option<String>,
    },
}

/// How a TLS deployment serves HTTPS.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tls {
    pub source: CertSource,
    /// `Some(port)` on 1.x: a TLS proxy in the pod takes the Service port and forwards to the
    /// server on 127.0.0.1:`port`. `None` on 0.x: uvicorn serves TLS itself.
    pub proxied_server_port: Option<u16>,
}

/// The proxy's default upstream port (`tls.proxy.serverPort`).
pub const DEFAULT_PROXY_SERVER_PORT: u16 = 8001;

fn enabled(values: &Value) -> Result<bool, SpecError> {
    parse_bool(values, "tls.enabled", false)
}

/// The 1.x server's port behind the proxy, when TLS is on (the caller knows it is 1.x).
pub fn proxied_server_port(values: &Value) -> Result<Option<u16>, SpecError> {
    if !enabled(values)? {
        return Ok(None);
    }
    let port =
        parse_int(values, "tls.proxy.serverPort")?.unwrap_or(i64::from(DEFAULT_PROXY_SERVER_PORT));
    u16::try_from(port)
        .ok()
        .filter(|p| *p > 0)
        .map(Some)
        .ok_or_else(|| {
            err(
                "tls.proxy.serverPort",
                format!("must be a port (1-65535), got {port}"),
            )
        })
}

/// The refusals: TLS needs exactly one certificate source, cert-manager needs an issuer,
/// and on 1.x the proxy's upstream port must not be the Service port it takes.
pub(crate) fn validate(values: &Value, version: &ChromaVersion) -> Result<(), SpecError> {
    let cert_manager = parse_bool(values, "tls.certManager.enabled", false)?;
    if !enabled(values)? {
        return Ok(());
    }
    let existing = parse_str(values, "tls.existingSecret", "")?;
    match (existing.is_empty(), cert_manager) {
        (true, false) => {
            return Err(err(
                "tls.existingSecret",
                "tls.enabled needs a certificate: a kubernetes.io/tls Secret in tls.existingSecret, or tls.certManager.enabled with an issuer",
            ));
        }
        (false, true) => {
            return Err(err(
                "tls.existingSecret",
                "set either tls.existingSecret or tls.certManager.enabled, not both",
            ));
        }
        _ => {}
    }
    if cert_manager && parse_str(values, "tls.certManager.issuerRef.name", "")?.is_empty() {
        return Err(err(
            "tls.certManager.issuerRef.name",
            "tls.certManager.enabled needs the issuer that signs the certificate",
        ));
    }
    let kind = parse_str(values, "tls.caBundle.kind", "ConfigMap")?;
    if !parse_str(values, "tls.caBundle.name", "")?.is_empty()
        && !["ConfigMap", "Secret"].contains(&kind)
    {
        return Err(err(
            "tls.caBundle.kind",
            format!("must be ConfigMap or Secret, got {kind:?}"),
        ));
    }
    if version.is_rust_server() {
        let port = proxied_server_port(values)?;
        let service = parse_int(values, "chromadb.serverHttpPort")?.unwrap_or(8000);
        if port.map(i64::from) == Some(service) {
            return Err(err(
                "tls.proxy.serverPort",
                format!(
                    "must differ from chromadb.serverHttpPort ({service}), which the TLS proxy takes"
                ),
            ));
        }
    }
    Ok(())
}

/// The CA a client of a TLS deployment trusts (the chart's own clients get it as the file `ca.crt`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum CaSource {
    /// `tls.caBundle`: a ConfigMap or Secret, and the key holding the PEM.
    Bundle {
        kind: String,
        name: String,
        key: String,
    },
    /// The key `ca.crt` of the certificate's own Secret (`tls.existingSecret`, or cert-manager's).
    CertificateSecret,
}

/// Where clients get the CA from, when TLS is on.
pub fn ca_source(values: &Value) -> Result<Option<CaSource>, SpecError> {
    if !enabled(values)? {
        return Ok(None);
    }
    Ok(Some(match parse_str(values, "tls.caBundle.name", "")? {
        "" => CaSource::CertificateSecret,
        name => CaSource::Bundle {
            kind: parse_str(values, "tls.caBundle.kind", "ConfigMap")?.to_string(),
            name: name.to_string(),
            key: parse_str(values, "tls.caBundle.key", "ca.crt")?.to_string(),
        },
    }))
}

/// What the values promise about TLS on `version` (after [`validate`]).
pub fn expected(values: &Value, version: &ChromaVersion) -> Result<Option<Tls>, SpecError> {
    if !enabled(values)? {
        return Ok(None);
    }
    let opt = |k: &str| -> Result<Option<String>, SpecError> {
        Ok(Some(parse_str(values, k, "")?.to_string()).filter(|s| !s.is_empty()))
    };
    let source = if parse_bool(values, "tls.certManager.enabled", false)? {
        let extra_dns_names = lookup(values, "tls.certManager.dnsNames")
            .and_then(Value::as_sequence)
            .map(|s| {
                s.iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        CertSource::CertManager {
            issuer: parse_str(values, "tls.certManager.issuerRef.name", "")?.to_string(),
            kind: parse_str(values, "tls.certManager.issuerRef.kind", "Issuer")?.to_string(),
            group: parse_str(values, "tls.certManager.issuerRef.group", "cert-manager.io")?
                .to_string(),
            extra_dns_names,
            duration: opt("tls.certManager.duration")?,
            renew_before: opt("tls.certManager.renewBefore")?,
        }
    } else {
        CertSource::ExistingSecret(parse_str(values, "tls.existingSecret", "")?.to_string())
    };
    let proxied_server_port = if version.is_rust_server() {
        proxied_server_port(values)?
    } else {
        None
    };
    Ok(Some(Tls {
        source,
        proxied_server_port,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn v(s: &str) -> Value {
        serde_yaml::from_str(s).expect("yaml")
    }

    #[rstest]
    #[case::no_certificate_source("tls: {enabled: true}", "1.5.0", "tls.existingSecret")]
    #[case::both_sources(
        "tls: {enabled: true, existingSecret: s, certManager: {enabled: true, issuerRef: {name: ca}}}",
        "0.6.3",
        "tls.existingSecret"
    )]
    #[case::cert_manager_without_issuer(
        "tls: {enabled: true, certManager: {enabled: true}}",
        "0.4.8",
        "tls.certManager.issuerRef.name"
    )]
    #[case::proxy_port_clashes_with_the_service_port(
        "tls: {enabled: true, existingSecret: s, proxy: {serverPort: 8123}}\nchromadb: {serverHttpPort: 8123}",
        "1.5.0",
        "tls.proxy.serverPort"
    )]
    #[case::ca_bundle_of_another_kind(
        "tls: {enabled: true, existingSecret: s, caBundle: {name: ca, kind: Pod}}",
        "1.5.0",
        "tls.caBundle.kind"
    )]
    fn refused_naming_the_key(#[case] values: &str, #[case] version: &str, #[case] key: &str) {
        let e = validate(&v(values), &version.parse().unwrap()).unwrap_err();
        assert_eq!(e.key, key, "{e}");
    }

    #[test]
    fn the_proxy_port_is_only_checked_where_there_is_a_proxy() {
        validate(
            &v("tls: {enabled: true, existingSecret: s, proxy: {serverPort: 8000}}"),
            &"0.6.3".parse().unwrap(),
        )
        .expect("0.x has no proxy");
    }

    #[test]
    fn rust_server_sits_behind_the_proxy_and_python_serves_tls_itself() {
        let values = v("tls: {enabled: true, existingSecret: s}");
        assert_eq!(
            expected(&values, &"1.5.0".parse().unwrap())
                .unwrap()
                .unwrap()
                .proxied_server_port,
            Some(DEFAULT_PROXY_SERVER_PORT)
        );
        assert_eq!(
            expected(&values, &"0.6.3".parse().unwrap())
                .unwrap()
                .unwrap()
                .proxied_server_port,
            None
        );
    }

    #[test]
    fn tls_off_promises_nothing() {
        assert_eq!(
            expected(&v("tls: {existingSecret: s}"), &"1.5.0".parse().unwrap()).unwrap(),
            None
        );
    }
}
