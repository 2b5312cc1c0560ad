//! Facts about Chroma's API that both the conformance harness and the backup tool need, in
//! one place: which release serves which API generation ([`ApiPrefix`]), the version model
//! ([`ChromaVersion`]) and a REST client for both generations ([`client`]).
//!
//! Kept free of Kubernetes types so the backup tool can link it into a small static binary.

pub mod client;
pub mod version;

/// Installs ring as the process's rustls crypto provider (once; a provider already installed
/// wins). Every TLS client (reqwest here, kube in the harness, object_store in the backup tool)
/// needs one chosen explicitly: the workspace links both ring (kube, the harness's CA) and
/// aws-lc-rs (object_store's S3 client), and with two compiled in, rustls picks neither.
pub fn ensure_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub use version::ChromaVersion;

/// The API generation a release serves (the prefix clients must use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ApiPrefix {
    V1,
    V2,
}

impl ApiPrefix {
    pub fn path(self) -> &'static str {
        match self {
            ApiPrefix::V1 => "/api/v1",
            ApiPrefix::V2 => "/api/v2",
        }
    }

    /// `/api/v1` only through 0.5.15, `/api/v2` from 0.5.16 (both through 0.6.3, where v2 is
    /// the one that works: docs/chroma-eras.md#api-surface).
    pub fn for_version(version: &ChromaVersion) -> ApiPrefix {
        if *version >= version::API_V2_FLOOR {
            ApiPrefix::V2
        } else {
            ApiPrefix::V1
        }
    }
}
