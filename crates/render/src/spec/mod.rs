//! The spec model: what the chart's documentation promises a deployment does, for a set of
//! user values on a Chroma version.
//!
//! This is derived from the values and the version only — never from a render — so a chart
//! bug cannot confirm itself. Defaults here are the spec's documented defaults, written out
//! independently of `values.yaml`.

mod images;
mod keys;
mod knobs;
mod server_config;
pub mod tls;
mod validate;
mod values;

use serde_yaml::Value;

use crate::version::{API_V2_FLOOR, ChromaVersion};

pub use images::{
    DEFAULT_INIT_REPOSITORY, DEFAULT_INIT_TAG, DEFAULT_PULL_POLICY, DEFAULT_REPOSITORY, ExpectedImage, chroma_image,
    init_image, pull_secrets,
};
pub use server_config::{SERVER_DEFAULTS, deep_merge, expected_server_config};
pub use keys::KNOWN_KEYS;
pub use knobs::{
    Budget, CHART_NAME, DataVolume, ExpectedProbe, ExpectedService, PROBE_DEFAULTS, SELECTOR_LABELS, StorageClass, data_volume,
    disruption_budget, fullname, headless_service, name, network_policy_peers, object_labels, pod_labels, probes,
    service, user_object_refs,
};
pub use validate::{CORS_WILDCARD_FIXED, ERA_FLOORS, deployed_version, era_boundary, tag_release};
pub use values::{KEY_TYPES, KeyType, lookup, parse_bool, parse_header, parse_int, parse_str};
use values::err;

/// How the spec says the API is protected.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Auth {
    /// The API is open; `why` says which rule made it so.
    Open { why: OpenBecause },
    Token {
        header: TokenHeader,
        existing_secret: Option<String>,
    },
    Basic { existing_secret: Option<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenBecause {
    /// `chromadb.auth.enabled=false`.
    Disabled,
    /// The auth type's floor (basic 0.4.7, token 0.4.8) is above this version.
    BelowFloor,
    /// `>= 1.0.0`: the Rust server has no authentication; `chromadb.auth.*` is ignored.
    RustServer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum TokenHeader {
    /// `Authorization: Bearer <token>`.
    Authorization,
    /// `X-Chroma-Token: <token>`.
    XChromaToken,
}

impl TokenHeader {
    /// The HTTP header a client sends.
    pub fn header_name(self) -> &'static str {
        match self {
            TokenHeader::Authorization => "Authorization",
            TokenHeader::XChromaToken => "X-Chroma-Token",
        }
    }

    /// The header value a client sends for `token`.
    pub fn header_value(self, token: &str) -> String {
        match self {
            TokenHeader::Authorization => format!("Bearer {token}"),
            TokenHeader::XChromaToken => token.to_string(),
        }
    }

    pub fn other(self) -> TokenHeader {
        match self {
            TokenHeader::Authorization => TokenHeader::XChromaToken,
            TokenHeader::XChromaToken => TokenHeader::Authorization,
        }
    }
}

/// The API generation the version serves (the prefix clients must use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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
}

/// What the spec says a deployment of these values on this version must do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Expected {
    pub version: ChromaVersion,
    /// The port the Service targets and the server listens on (`chromadb.serverHttpPort`).
    pub port: u16,
    /// Where the server keeps its data: `chromadb.persistDirectory` (on >= 1.0.0 an
    /// `extraConfig.persist_path` overrides what the server uses, not where the PVC mounts).
    pub persist_directory: String,
    /// Where the data volume is mounted: `chromadb.persistDirectory`, `None` without a PVC.
    pub volume_mount: Option<String>,
    /// Data lives on a PVC and survives a pod restart.
    pub survives_restart: bool,
    /// Data survives a restart of the chromadb container inside the same pod. False exactly
    /// for the in-memory Python server (`isPersistent=false` below 1.0.0); the 1.x server
    /// always writes to disk, which an emptyDir keeps across container restarts.
    pub survives_container_restart: bool,
    /// Where the data volume comes from (emptyDir, the user's claim, or the claim template).
    pub data_volume: knobs::DataVolume,
    pub allow_reset: bool,
    /// Allowed CORS origins; empty means CORS is not configured.
    pub cors_origins: Vec<String>,
    /// `Some(n)` on the Rust server: bodies above `n` bytes are refused with 413.
    pub max_payload_bytes: Option<u64>,
    pub auth: Auth,
    pub api: ApiPrefix,
    /// `>= 1.0.0`: the whole server config document the values describe.
    pub server_config: Option<Value>,
    /// `tls.enabled`: the API answers HTTPS only.
    pub tls: Option<tls::Tls>,
}

/// Values the spec says must be refused, with the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct SpecError {
    pub key: String,
    pub reason: String,
}

/// The spec's documented default for `chromadb.maxPayloadSizeBytes` (40 MiB).
pub const DEFAULT_MAX_PAYLOAD: u64 = 41_943_040;

impl Expected {
    /// What the spec promises for `values` (the user's values, without the chart's defaults)
    /// on `version`. Values the spec says must be refused give the key at fault.
    pub fn from_values(values: &Value, version: &ChromaVersion) -> Result<Expected, SpecError> {
        validate::validate(values, version)?;
        let rust = version.is_rust_server();

        let port = parse_int(values, "chromadb.serverHttpPort")?.unwrap_or(8000) as u16;
        let mount_dir = parse_str(values, "chromadb.persistDirectory", "/data")?.to_string();
        let persistent = parse_bool(values, "chromadb.isPersistent", true)?;
        let volume_mount = persistent.then(|| mount_dir.clone());

        let server_config = if rust { Some(expected_server_config(values)?) } else { None };

        let (persist_directory, allow_reset, cors_origins, max_payload_bytes) = match &server_config {
            // On the Rust server `extraConfig` may override chart-managed keys: what the server
            // does is what the merged document says.
            Some(doc) => {
                let dir = lookup(doc, "persist_path").and_then(Value::as_str).unwrap_or(&mount_dir).to_string();
                let reset = match lookup(doc, "allow_reset") {
                    Some(Value::Bool(b)) => *b,
                    _ => false,
                };
                let origins = lookup(doc, "cors_allow_origins")
                    .and_then(Value::as_sequence)
                    .map(|s| s.iter().filter_map(|o| o.as_str().map(str::to_string)).collect())
                    .unwrap_or_default();
                let payload = lookup(doc, "max_payload_size_bytes").and_then(Value::as_u64).unwrap_or(DEFAULT_MAX_PAYLOAD);
                (dir, reset, origins, Some(payload))
            }
            None => {
                let origins = match lookup(values, "chromadb.corsAllowOrigins") {
                    Some(Value::Sequence(items)) => items.iter().filter_map(|o| o.as_str().map(str::to_string)).collect(),
                    _ => Vec::new(),
                };
                (mount_dir.clone(), parse_bool(values, "chromadb.allowReset", false)?, origins, None)
            }
        };
        // < 1.0.0: `isPersistent=false` is the in-memory server. >= 1.0.0 always writes to
        // disk; the data survives only when it lands on the PVC.
        let survives_restart = persistent && within(&persist_directory, &mount_dir);
        let survives_container_restart = rust || persistent;
        let data_volume = knobs::data_volume(values)?;

        let auth = if rust {
            Auth::Open { why: OpenBecause::RustServer }
        } else if !parse_bool(values, "chromadb.auth.enabled", true)? {
            Auth::Open { why: OpenBecause::Disabled }
        } else {
            let existing_secret = match parse_str(values, "chromadb.auth.existingSecret", "")? {
                "" => None,
                s => Some(s.to_string()),
            };
            match parse_str(values, "chromadb.auth.type", "token")? {
                "token" if version.has_token_auth() => {
                    let raw = parse_str(values, "chromadb.auth.token.headerType", "Authorization")?;
                    let header = parse_header(raw).ok_or_else(|| {
                        err("chromadb.auth.token.headerType", format!("unknown header type {raw:?}"))
                    })?;
                    Auth::Token { header, existing_secret }
                }
                "basic" if version.has_basic_auth() => Auth::Basic { existing_secret },
                _ => Auth::Open { why: OpenBecause::BelowFloor },
            }
        };

        let api = if *version >= API_V2_FLOOR { ApiPrefix::V2 } else { ApiPrefix::V1 };

        Ok(Expected {
            version: version.clone(),
            port,
            persist_directory,
            volume_mount,
            survives_restart,
            survives_container_restart,
            data_volume,
            allow_reset,
            cors_origins,
            max_payload_bytes,
            auth,
            api,
            server_config,
            tls: tls::expected(values, version)?,
        })
    }

    pub fn cors_wildcard(&self) -> bool {
        self.cors_origins.iter().any(|o| o == "*")
    }
}


/// `path` is `dir` or lies below it.
fn within(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir || dir.is_empty() || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests;
