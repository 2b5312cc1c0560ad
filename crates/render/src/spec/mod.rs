//! The spec model: what the chart's documentation promises a deployment does, for a set of
//! user values on a Chroma version.
//!
//! This is derived from the values and the version only — never from a render — so a chart
//! bug cannot confirm itself. Defaults here are the spec's documented defaults, written out
//! independently of `values.yaml`.

use serde_yaml::Value;

use crate::version::{ChromaVersion, API_V2_FLOOR};

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
    /// `chromadb.persistDirectory`.
    pub persist_directory: String,
    /// Data lives on a PVC and survives a pod restart.
    pub survives_restart: bool,
    pub allow_reset: bool,
    /// Allowed CORS origins; empty means CORS is not configured.
    pub cors_origins: Vec<String>,
    /// `Some(n)` on the Rust server: bodies above `n` bytes are refused with 413.
    pub max_payload_bytes: Option<u64>,
    pub auth: Auth,
    pub api: ApiPrefix,
}

/// Values the spec says must be refused, with the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct SpecError {
    pub key: String,
    pub reason: String,
}

fn err(key: &str, reason: impl Into<String>) -> SpecError {
    SpecError { key: key.to_string(), reason: reason.into() }
}

/// The value at a dotted path (`chromadb.auth.type`), if the user set it (and not to null).
pub fn lookup<'a>(values: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = values;
    for part in path.split('.') {
        cur = cur.as_mapping()?.get(part)?;
    }
    (!cur.is_null()).then_some(cur)
}

/// The spec's boolean: a YAML bool, or the strings `true`/`false` in any case.
pub fn parse_bool(values: &Value, key: &str, default: bool) -> Result<bool, SpecError> {
    match lookup(values, key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(err(key, format!("must be true or false (a boolean or the string \"true\"/\"false\"), got {}", show(other)))),
    }
}

fn parse_str<'a>(values: &'a Value, key: &str, default: &'a str) -> Result<&'a str, SpecError> {
    match lookup(values, key) {
        None => Ok(default),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(err(key, format!("must be a string, got {}", show(other)))),
    }
}

fn parse_int(values: &Value, key: &str) -> Result<Option<i64>, SpecError> {
    match lookup(values, key) {
        None => Ok(None),
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
        Some(other) => Err(err(key, format!("must be an integer, got {}", show(other)))),
    }
}

fn show(v: &Value) -> String {
    serde_yaml::to_string(v).unwrap_or_default().trim().to_string()
}

/// `Authorization`, `X-Chroma-Token` or `X_CHROMA_TOKEN`, in any case.
pub fn parse_header(raw: &str) -> Option<TokenHeader> {
    let norm = raw.trim().to_ascii_uppercase().replace('-', "_");
    match norm.as_str() {
        "AUTHORIZATION" => Some(TokenHeader::Authorization),
        "X_CHROMA_TOKEN" => Some(TokenHeader::XChromaToken),
        _ => None,
    }
}

/// The spec's documented default for `chromadb.maxPayloadSizeBytes` (40 MiB).
pub const DEFAULT_MAX_PAYLOAD: u64 = 41_943_040;

impl Expected {
    /// What the spec promises for `values` (the user's values, without the chart's defaults)
    /// on `version`. Values the spec says must be refused give the key at fault.
    pub fn from_values(values: &Value, version: &ChromaVersion) -> Result<Expected, SpecError> {
        validate(values, version)?;
        let rust = version.is_rust_server();

        let port = parse_int(values, "chromadb.serverHttpPort")?.unwrap_or(8000) as u16;
        let persist_directory = parse_str(values, "chromadb.persistDirectory", "/data")?.to_string();
        let survives_restart = parse_bool(values, "chromadb.isPersistent", true)?;
        let allow_reset = parse_bool(values, "chromadb.allowReset", false)?;
        let cors_origins = match lookup(values, "chromadb.corsAllowOrigins") {
            None => Vec::new(),
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| err("chromadb.corsAllowOrigins", "every origin must be a string")))
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(err("chromadb.corsAllowOrigins", format!("must be a list of origins, got {}", show(other)))),
        };
        let max_payload_bytes = if rust {
            Some(parse_int(values, "chromadb.maxPayloadSizeBytes")?.map_or(DEFAULT_MAX_PAYLOAD, |n| n as u64))
        } else {
            None
        };

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
                    let header = parse_header(raw).expect("validated above");
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
            survives_restart,
            allow_reset,
            cors_origins,
            max_payload_bytes,
            auth,
            api,
        })
    }

    pub fn cors_wildcard(&self) -> bool {
        self.cors_origins.iter().any(|o| o == "*")
    }
}

/// The spec's validation rules. They hold on every version: a value outside its documented
/// domain is refused even where that version would ignore it, so a values file that renders
/// for one version cannot fail for another because of a typo.
fn validate(values: &Value, version: &ChromaVersion) -> Result<(), SpecError> {
    for key in ["chromadb.allowReset", "chromadb.isPersistent", "chromadb.anonymizedTelemetry", "chromadb.auth.enabled", "chromadb.telemetry.enabled"] {
        parse_bool(values, key, false)?;
    }

    let dir = parse_str(values, "chromadb.persistDirectory", "/data")?;
    if !dir.starts_with('/') {
        return Err(err("chromadb.persistDirectory", format!("must be an absolute path, got {dir:?}")));
    }

    match parse_int(values, "chromadb.serverHttpPort")? {
        Some(p) if !(1..=65535).contains(&p) => {
            return Err(err("chromadb.serverHttpPort", format!("must be a port number 1-65535, got {p}")));
        }
        _ => {}
    }
    match parse_int(values, "chromadb.maxPayloadSizeBytes")? {
        Some(n) if n < 1 => {
            return Err(err("chromadb.maxPayloadSizeBytes", format!("must be a positive number of bytes, got {n}")));
        }
        _ => {}
    }
    match parse_int(values, "chromadb.circuitBreaker.requests")? {
        Some(n) if !(0..=u32::MAX as i64).contains(&n) => {
            return Err(err("chromadb.circuitBreaker.requests", format!("must be 0 (disabled) or a positive integer, got {n}")));
        }
        _ => {}
    }

    let hash = parse_str(values, "chromadb.sqliteDb.hashType", "")?;
    if !matches!(hash, "" | "md5" | "sha256") {
        return Err(err("chromadb.sqliteDb.hashType", format!("must be md5 or sha256 (or empty for the server default), got {hash:?}")));
    }
    let mode = parse_str(values, "chromadb.sqliteDb.migrationMode", "")?;
    if !matches!(mode, "" | "apply" | "validate") {
        return Err(err("chromadb.sqliteDb.migrationMode", format!("must be apply or validate (or empty for the server default), got {mode:?}")));
    }

    if parse_bool(values, "chromadb.telemetry.enabled", false)? && parse_str(values, "chromadb.telemetry.endpoint", "")?.is_empty() {
        return Err(err("chromadb.telemetry.endpoint", "must be set when chromadb.telemetry.enabled is true"));
    }

    for key in ["port", "listen_address"] {
        if lookup(values, &format!("chromadb.extraConfig.{key}")).is_some() {
            let dedicated = if key == "port" { "chromadb.serverHttpPort" } else { "chromadb.serverHost" };
            return Err(err(&format!("chromadb.extraConfig.{key}"), format!("may not be overridden here; use {dedicated}")));
        }
    }

    let header = parse_str(values, "chromadb.auth.token.headerType", "Authorization")?;
    if parse_header(header).is_none() {
        return Err(err("chromadb.auth.token.headerType", format!("must be Authorization, X-Chroma-Token or X_CHROMA_TOKEN (any case), got {header:?}")));
    }
    let auth_type = parse_str(values, "chromadb.auth.type", "token")?;
    if !matches!(auth_type, "token" | "basic") {
        return Err(err("chromadb.auth.type", format!("must be token or basic, got {auth_type:?}")));
    }

    let policy = parse_str(values, "chromadb.maintenance.collection_cache_policy", "")?;
    if !matches!(policy, "" | "LRU") {
        return Err(err("chromadb.maintenance.collection_cache_policy", format!("must be null or LRU, got {policy:?}")));
    }

    // A wildcard origin makes Chroma 1.0.0–1.0.10 panic at start ("*" is special-cased from
    // 1.0.11); the chart refuses it there instead of rendering a crashing pod.
    let wildcard = lookup(values, "chromadb.corsAllowOrigins")
        .and_then(Value::as_sequence)
        .is_some_and(|s| s.iter().any(|v| v.as_str() == Some("*")));
    if wildcard && *version >= ChromaVersion::new(1, 0, 0) && *version < ChromaVersion::new(1, 0, 11) {
        return Err(err("chromadb.corsAllowOrigins", format!("a \"*\" wildcard makes Chroma {version} panic at start; list the origins, or use 1.0.11 or later")));
    }
    Ok(())
}
