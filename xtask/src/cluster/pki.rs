//! The local cluster's throwaway PKI: one CA signs every serving and client certificate (and
//! the controller-manager's CSR signer uses it too), plus the ServiceAccount token key pair.
//! Everything lives as long as one `cluster up` … `cluster down`.

use std::net::IpAddr;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: String,
    pub key: String,
}

/// Who a client certificate says it is: the API server takes the CN as the user and each O
/// as a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

/// What a serving certificate must answer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

pub struct Ca {
    pub cert_pem: String,
    pub key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn generate() -> Result<Ca> {
        let key = KeyPair::generate().context("generating the cluster CA key")?;
        let mut p =
            CertificateParams::new(Vec::<String>::new()).context("the cluster CA parameters")?;
        p.distinguished_name
            .push(DnType::CommonName, "chromadb local cluster CA");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).context("signing the cluster CA")?;
        let key_pem = key.serialize_pem();
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem,
            issuer: Issuer::new(p, key),
        })
    }

    /// A serving certificate for `names` (also usable as a client, as etcd's peer and
    /// health probes present it).
    pub fn serving(&self, common_name: &str, names: &Names) -> Result<Pair> {
        let mut p = CertificateParams::new(names.dns.clone())
            .with_context(|| format!("the {common_name} names"))?;
        p.subject_alt_names
            .extend(names.ips.iter().copied().map(SanType::IpAddress));
        p.distinguished_name.push(DnType::CommonName, common_name);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.sign(p, common_name)
    }

    pub fn client(&self, who: &Identity) -> Result<Pair> {
        let mut p = CertificateParams::new(Vec::<String>::new())
            .context("client certificate parameters")?;
        p.distinguished_name
            .push(DnType::CommonName, who.user.as_str());
        for g in &who.groups {
            p.distinguished_name
                .push(DnType::OrganizationName, g.as_str());
        }
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(p, &who.user)
    }

    fn sign(&self, p: CertificateParams, what: &str) -> Result<Pair> {
        let key = KeyPair::generate().with_context(|| format!("generating the {what} key"))?;
        let cert = p
            .signed_by(&key, &self.issuer)
            .with_context(|| format!("signing the {what} certificate"))?;
        Ok(Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

/// The key pair the API server signs ServiceAccount tokens with (ECDSA P-256, ES256 tokens):
/// (private PKCS#8 PEM, public SPKI PEM).
pub fn service_account_keys() -> Result<(String, String)> {
    let key = KeyPair::generate().context("generating the ServiceAccount signing key")?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// The subject alternative names of a PEM certificate, as `DNS:x` / `IP:x`, read with
    /// openssl (an independent reader of what rcgen wrote).
    pub fn sans_of(cert_pem: &str) -> Vec<String> {
        let text = openssl_text(cert_pem);
        let line = text
            .lines()
            .skip_while(|l| !l.contains("Subject Alternative Name"))
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mut v: Vec<String> = line
            .split(',')
            .map(|s| s.trim().replace("IP Address:", "IP:"))
            .filter(|s| !s.is_empty())
            .collect();
        v.sort();
        v
    }

    pub fn openssl_text(cert_pem: &str) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-text"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("openssl runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(cert_pem.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }

    fn verify(ca: &Ca, cert: &str) -> bool {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("ca.pem"), &ca.cert_pem).unwrap();
        std::fs::write(d.path().join("c.pem"), cert).unwrap();
        std::process::Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(d.path().join("ca.pem"))
            .arg(d.path().join("c.pem"))
            .output()
            .unwrap()
            .status
            .success()
    }

    #[test]
    fn a_client_certificate_carries_the_user_as_cn_and_each_group_as_o_and_chains_to_the_ca() {
        let ca = Ca::generate().unwrap();
        let who = Identity {
            user: "system:node:n1".into(),
            groups: vec!["system:nodes".into()],
        };
        let pair = ca.client(&who).unwrap();
        let text = openssl_text(&pair.cert);
        let subject = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Subject:"))
            .unwrap_or_default()
            .replace(' ', "");
        assert_eq!(subject, "CN=system:node:n1,O=system:nodes", "{text}");
        assert!(text.contains("TLS Web Client Authentication"), "{text}");
        assert!(!text.contains("TLS Web Server Authentication"), "{text}");
        assert!(verify(&ca, &pair.cert));
        let other = Ca::generate().unwrap();
        assert!(
            !verify(&other, &pair.cert),
            "a certificate verifies only against its own CA"
        );
    }

    #[test]
    fn the_service_account_keys_are_a_pkcs8_private_key_and_its_spki_public_key() {
        let (private, public) = service_account_keys().unwrap();
        assert!(
            private.starts_with("-----BEGIN PRIVATE KEY-----"),
            "{private}"
        );
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{public}");
    }
}
