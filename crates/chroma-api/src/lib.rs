//! Facts about Chroma's API that both the conformance harness and the backup tool need, in
//! one place: which release serves which API generation ([`ApiPrefix`]), the version model
//! ([`ChromaVersion`]) and a REST client for both generations ([`client`]).
//!
//! Kept free of Kubernetes types so the backup tool can link it into a small static binary.

pub mod client;
pub mod version;

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
        if *version >= version::API_V2_FLOOR { ApiPrefix::V2 } else { ApiPrefix::V1 }
    }
}
