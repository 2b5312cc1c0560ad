//! TLS for the harness: a throwaway CA and server certificate per deployment (the Secret a
//! user would bring), and the HTTPS client that reaches a TLS deployment by the Service's
//! DNS name, trusting that CA and nothing else.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// Placeholders in `fixtures/live.yaml` `secrets:` filled with the deployment's certificate.
pub const CERT_PLACEHOLDER: &str = "<tls-cert>";
pub const KEY_PLACEHOLDER: &str = "<tls-key>";
pub const CA_PLACEHOLDER: &str = "<tls-ca>";
/// A certificate signed by the same CA for a name no Service has (breakage drills).
pub const WRONG_NAME_CERT_PLACEHOLDER: &str = "<tls-cert-wrong-name>";
/// A private key that does not match the certificate (bad input drills).
pub const OTHER_KEY_PLACEHOLDER: &str = "<tls-key-other>";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating {what}: {source}")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("building the HTTPS client: {0}")]
    Client(#[from] reqwest::Error),
    #[error(
        "the release serves HTTPS but no Secret it was given has a `ca.crt` for clients to trust"
    )]
    NoClientCa,
}

fn rc(what: &'static str) -> impl FnOnce(rcgen::Error) -> TlsError {
    move |source| TlsError::Generate { what, source }
}

/// A CA and one server certificate it signed, all PEM.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// Signed by the same CA for `wrong.invalid` only.
    pub wrong_name_cert_pem: String,
    pub wrong_name_key_pem: String,
    /// A key of no certificate here.
    pub other_key_pem: String,
}

impl Pki {
    /// A fresh CA and a server certificate for `dns_names` plus loopback (127.0.0.1,
    /// `localhost`), with rcgen's default validity (the certificates live as long as one run).
    pub fn generate(dns_names: &[String]) -> Result<Pki, TlsError> {
        let ca_key = KeyPair::generate().map_err(rc("the CA key"))?;
        let mut ca =
            CertificateParams::new(Vec::<String>::new()).map_err(rc("the CA parameters"))?;
        ca.distinguished_name
            .push(DnType::CommonName, "chromadb-e2e throwaway CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).map_err(rc("the CA certificate"))?;
        let issuer = Issuer::new(ca, ca_key);

        let leaf = |names: Vec<String>, loopback: bool| -> Result<(String, String), TlsError> {
            let key = KeyPair::generate().map_err(rc("a server key"))?;
            let mut p = CertificateParams::new(names.clone())
                .map_err(rc("the server certificate parameters"))?;
            if loopback {
                p.subject_alt_names
                    .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
                p.subject_alt_names.push(SanType::DnsName(
                    "localhost".try_into().map_err(rc("the localhost name"))?,
                ));
            }
            p.distinguished_name.push(
                DnType::CommonName,
                names.first().cloned().unwrap_or_default(),
            );
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            let cert = p
                .signed_by(&key, &issuer)
                .map_err(rc("the server certificate"))?;
            Ok((cert.pem(), key.serialize_pem()))
        };
        let (cert_pem, key_pem) = leaf(dns_names.to_vec(), true)?;
        let (wrong_name_cert_pem, wrong_name_key_pem) = leaf(vec!["wrong.invalid".into()], false)?;
        let other_key_pem = KeyPair::generate()
            .map_err(rc("a spare key"))?
            .serialize_pem();
        Ok(Pki {
            ca_pem: ca_cert.pem(),
            cert_pem,
            key_pem,
            wrong_name_cert_pem,
            wrong_name_key_pem,
            other_key_pem,
        })
    }

    /// Fills the placeholders of pre-existing Secrets; `true` when any was there.
    pub fn fill(&self, secrets: &mut BTreeMap<String, BTreeMap<String, String>>) -> bool {
        let mut any = false;
        for data in secrets.values_mut() {
            for v in data.values_mut() {
                let new = match v.as_str() {
                    CERT_PLACEHOLDER => &self.cert_pem,
                    KEY_PLACEHOLDER => &self.key_pem,
                    CA_PLACEHOLDER => &self.ca_pem,
                    WRONG_NAME_CERT_PLACEHOLDER => &self.wrong_name_cert_pem,
                    OTHER_KEY_PLACEHOLDER => &self.other_key_pem,
                    _ => continue,
                };
                *v = new.clone();
                any = true;
            }
        }
        // A wrong-name certificate goes with its own key, or the drill would test the mismatch instead.
        for data in secrets.values_mut() {
            if data.values().any(|v| *v == self.wrong_name_cert_pem) {
                for v in data.values_mut() {
                    if *v == self.key_pem {
                        *v = self.wrong_name_key_pem.clone();
                    }
                }
            }
        }
        any
    }
}

/// Whether any pre-existing Secret asks for a harness-made certificate.
pub fn wants_pki(secrets: &BTreeMap<String, BTreeMap<String, String>>) -> bool {
    secrets
        .values()
        .flat_map(|d| d.values())
        .any(|v| v.starts_with("<tls-"))
}

/// How the harness reaches a TLS deployment: by `server_name` (a name of the Service), which
/// the client resolves to `addr` itself, trusting only `ca_pem`.
#[derive(Debug, Clone)]
pub struct TlsEndpoint {
    pub server_name: String,
    pub addr: SocketAddr,
    pub ca_pem: String,
    /// The pod's own address, where the backend knows it (a pod network): what a client
    /// elsewhere in the cluster could dial around the Service.
    pub pod_ip: Option<std::net::IpAddr>,
}

/// reqwest is built without a crypto provider of its own: the process's one is chosen once
/// for every client.
pub fn ensure_provider() {
    chroma_api::ensure_crypto_provider();
}

/// A client builder for `tls` (plain HTTP when `None`).
pub fn client_builder(tls: Option<&TlsEndpoint>) -> Result<reqwest::ClientBuilder, TlsError> {
    ensure_provider();
    let b = reqwest::Client::builder();
    Ok(match tls {
        None => b,
        Some(t) => b
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(t.ca_pem.as_bytes())?)
            .resolve(&t.server_name, t.addr),
    })
}

/// The API of a deployment that may serve HTTPS (`tls` from [`crate::backend::Deployed`]).
pub fn api(
    base: &str,
    prefix: render::ApiPrefix,
    credential: Option<chroma_api::client::Credential>,
    tls: Option<&TlsEndpoint>,
) -> chroma_api::client::Api {
    let http = client_builder(tls)
        .and_then(|b| Ok(b.timeout(std::time::Duration::from_secs(60)).build()?))
        .unwrap_or_else(|e| {
            // Only a CA that is not PEM gets here; every request then fails naming it.
            tracing::error!("{e}");
            reqwest::Client::builder()
                .https_only(true)
                .build()
                .unwrap_or_default()
        });
    chroma_api::client::Api::with_http(http, base, prefix, credential)
}

/// Every name cluster DNS answers for the release's Services, short to fully qualified.
pub fn service_dns_names(rendered: &render::Rendered, namespace: &str) -> Vec<String> {
    rendered
        .services()
        .filter_map(|s| s.metadata.name.clone())
        .flat_map(|n| {
            [
                n.clone(),
                format!("{n}.{namespace}"),
                format!("{n}.{namespace}.svc"),
                format!("{n}.{namespace}.svc.cluster.local"),
            ]
        })
        .collect()
}

/// The Service a client reaches and its fully qualified name, when the release serves HTTPS
/// (a Service port with `appProtocol: https`); `None` for plain HTTP.
pub fn https_service(rendered: &render::Rendered, namespace: &str) -> Option<(String, i32)> {
    rendered.services().find_map(|s| {
        let spec = s.spec.as_ref()?;
        if spec.cluster_ip.as_deref() == Some("None") {
            return None;
        }
        let port = spec
            .ports
            .iter()
            .flatten()
            .find(|p| p.app_protocol.as_deref() == Some("https"))?;
        Some((
            format!(
                "{}.{namespace}.svc.cluster.local",
                s.metadata.name.as_deref().unwrap_or_default()
            ),
            port.port,
        ))
    })
}

/// The CA a client of the release trusts: `ca.crt` of the Secret the user brought (a
/// `kubernetes.io/tls` Secret carries it next to the certificate, as cert-manager writes it).
pub fn client_ca(secrets: &BTreeMap<String, BTreeMap<String, String>>) -> Option<String> {
    secrets.values().find_map(|d| d.get("ca.crt").cloned())
}

/// The endpoint of an HTTPS release reached at `addr`, with `Err` naming what is missing.
pub fn endpoint(
    rendered: &render::Rendered,
    namespace: &str,
    secrets: &BTreeMap<String, BTreeMap<String, String>>,
    addr: SocketAddr,
) -> Result<Option<(String, TlsEndpoint)>, TlsError> {
    let Some((server_name, _)) = https_service(rendered, namespace) else {
        return Ok(None);
    };
    let ca_pem = client_ca(secrets).ok_or(TlsError::NoClientCa)?;
    let base_url = format!("https://{server_name}:{}", addr.port());
    Ok(Some((
        base_url,
        TlsEndpoint {
            server_name,
            addr,
            ca_pem,
            pod_ip: None,
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_pem_and_a_wrong_name_certificate_keeps_its_own_key() {
        let pki = Pki::generate(&["r.ns.svc".into()]).unwrap();
        let mut secrets = BTreeMap::from([
            (
                "good".to_string(),
                BTreeMap::from([
                    ("tls.crt".to_string(), CERT_PLACEHOLDER.to_string()),
                    ("tls.key".to_string(), KEY_PLACEHOLDER.to_string()),
                    ("ca.crt".to_string(), CA_PLACEHOLDER.to_string()),
                ]),
            ),
            (
                "wrong".to_string(),
                BTreeMap::from([
                    (
                        "tls.crt".to_string(),
                        WRONG_NAME_CERT_PLACEHOLDER.to_string(),
                    ),
                    ("tls.key".to_string(), KEY_PLACEHOLDER.to_string()),
                ]),
            ),
        ]);
        assert!(pki.fill(&mut secrets));
        assert!(secrets["good"]["tls.crt"].starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(secrets["good"]["tls.key"], pki.key_pem);
        assert_eq!(secrets["wrong"]["tls.key"], pki.wrong_name_key_pem);
        assert_ne!(pki.cert_pem, pki.wrong_name_cert_pem);
    }

    #[test]
    fn secrets_without_placeholders_need_no_pki() {
        let secrets = BTreeMap::from([(
            "s".to_string(),
            BTreeMap::from([("token".to_string(), "<random>".to_string())]),
        )]);
        assert!(!wants_pki(&secrets));
    }
}
