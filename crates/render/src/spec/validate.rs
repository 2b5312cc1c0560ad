//! The spec's validation rules: which values a render must refuse, and the key to blame.
//!
//! They hold on every version: a value outside its documented domain is refused even where
//! that version would ignore it, so a values file that renders for one version cannot fail
//! for another because of a typo.

use serde_yaml::Value;

use super::SpecError;
use super::values::{check_types, err, lookup, parse_bool, parse_header, parse_int, parse_str};
use crate::version::ChromaVersion;

/// The first wildcard-safe release of the Rust server: 1.0.0–1.0.10 panic at start on a
/// `"*"` origin (`AllowOrigin::list`); 1.0.11 special-cases it.
pub const CORS_WILDCARD_FIXED: ChromaVersion = ChromaVersion::new(1, 0, 11);

pub(crate) fn validate(values: &Value, version: &ChromaVersion) -> Result<(), SpecError> {
    check_types(values)?;

    if let Some(raw) = lookup(values, "chromadb.apiVersion").and_then(Value::as_str) {
        raw.parse::<ChromaVersion>()
            .map_err(|e| err("chromadb.apiVersion", format!("must be a Chroma release 0.4.3 or later: {e}")))?;
    }

    let dir = parse_str(values, "chromadb.persistDirectory", "/data")?;
    if !dir.starts_with('/') {
        return Err(err("chromadb.persistDirectory", format!("must be an absolute path, got {dir:?}")));
    }

    if let Some(p) = parse_int(values, "chromadb.serverHttpPort")?
        && !(1..=65535).contains(&p)
    {
        return Err(err("chromadb.serverHttpPort", format!("must be a port number 1-65535, got {p}")));
    }
    if let Some(n) = parse_int(values, "chromadb.maxPayloadSizeBytes")?
        && n < 1
    {
        return Err(err("chromadb.maxPayloadSizeBytes", format!("must be a positive number of bytes, got {n}")));
    }
    if let Some(n) = parse_int(values, "chromadb.circuitBreaker.requests")?
        && !(0..=i64::from(u32::MAX)).contains(&n)
    {
        return Err(err(
            "chromadb.circuitBreaker.requests",
            format!("must be 0 (disabled) or a positive integer, got {n}"),
        ));
    }

    let hash = parse_str(values, "chromadb.sqliteDb.hashType", "")?;
    if !matches!(hash, "" | "md5" | "sha256") {
        return Err(err(
            "chromadb.sqliteDb.hashType",
            format!("must be md5 or sha256 (or empty for the server default), got {hash:?}"),
        ));
    }
    let mode = parse_str(values, "chromadb.sqliteDb.migrationMode", "")?;
    if !matches!(mode, "" | "apply" | "validate") {
        return Err(err(
            "chromadb.sqliteDb.migrationMode",
            format!("must be apply or validate (or empty for the server default), got {mode:?}"),
        ));
    }

    if parse_bool(values, "chromadb.telemetry.enabled", false)?
        && parse_str(values, "chromadb.telemetry.endpoint", "")?.is_empty()
    {
        return Err(err("chromadb.telemetry.endpoint", "must be set when chromadb.telemetry.enabled is true"));
    }

    for (key, dedicated) in [("port", "chromadb.serverHttpPort"), ("listen_address", "chromadb.serverHost")] {
        if lookup(values, &format!("chromadb.extraConfig.{key}")).is_some() {
            return Err(err(&format!("chromadb.extraConfig.{key}"), format!("may not be overridden here; use {dedicated}")));
        }
    }

    let header = parse_str(values, "chromadb.auth.token.headerType", "Authorization")?;
    if parse_header(header).is_none() {
        return Err(err(
            "chromadb.auth.token.headerType",
            format!("must be Authorization, X-Chroma-Token or X_CHROMA_TOKEN (any case), got {header:?}"),
        ));
    }
    let auth_type = parse_str(values, "chromadb.auth.type", "token")?;
    if !matches!(auth_type, "token" | "basic") {
        return Err(err("chromadb.auth.type", format!("must be token or basic, got {auth_type:?}")));
    }

    let policy = parse_str(values, "chromadb.maintenance.collection_cache_policy", "")?;
    if !matches!(policy, "" | "LRU") {
        return Err(err(
            "chromadb.maintenance.collection_cache_policy",
            format!("must be null or LRU, got {policy:?}"),
        ));
    }

    if let Some(items) = lookup(values, "chromadb.corsAllowOrigins").and_then(Value::as_sequence) {
        if items.iter().any(|v| !v.is_string()) {
            return Err(err("chromadb.corsAllowOrigins", "every origin must be a string"));
        }
        let wildcard = items.iter().any(|v| v.as_str() == Some("*"));
        if wildcard && version.is_rust_server() && *version < CORS_WILDCARD_FIXED {
            return Err(err(
                "chromadb.corsAllowOrigins",
                format!("a \"*\" wildcard makes Chroma {version} panic at start; list the origins, or use 1.0.11 or later"),
            ));
        }
    }
    Ok(())
}
