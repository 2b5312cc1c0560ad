//! The Rust server's (>= 1.0.0) config file as the spec says the values build it: the
//! chart-managed keys, the dedicated optional keys when set, then `chromadb.extraConfig`
//! deep-merged over them (extra wins).

use serde_yaml::{Mapping, Value};

use super::values::{lookup, parse_bool, parse_int, parse_str};
use super::{DEFAULT_MAX_PAYLOAD, SpecError};

/// Server defaults the spec names for optional keys; a chart may omit these keys or write
/// exactly these values.
/// (`cors_allow_origins` defaults to no CORS: absent or an empty list.)
pub const SERVER_DEFAULTS: &[(&str, &str)] = &[
    ("sqlite_filename", "chroma.sqlite3"),
    ("sqlitedb.hash_type", "md5"),
    ("sqlitedb.migration_mode", "apply"),
    ("circuit_breaker.requests", "0"),
];

fn key(s: &str) -> Value {
    Value::String(s.to_string())
}

/// Recursively merges `over` into `base`; maps merge key by key, anything else is replaced.
pub fn deep_merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// The config document the spec describes. Optional keys the user left unset are absent
/// (the server default applies; see [`SERVER_DEFAULTS`]).
pub fn expected_server_config(values: &Value) -> Result<Value, SpecError> {
    let mut m = Mapping::new();
    let port = parse_int(values, "chromadb.serverHttpPort")?.unwrap_or(8000);
    m.insert(key("port"), Value::from(port));
    m.insert(
        key("listen_address"),
        key(parse_str(values, "chromadb.serverHost", "0.0.0.0")?),
    );
    if let Some(port) = super::tls::proxied_server_port(values)? {
        // Behind the TLS proxy: loopback only, on the proxy's upstream port.
        m.insert(key("port"), Value::from(port));
        m.insert(key("listen_address"), key("127.0.0.1"));
    }
    let payload = parse_int(values, "chromadb.maxPayloadSizeBytes")?
        .map_or(DEFAULT_MAX_PAYLOAD as i64, |n| n);
    m.insert(key("max_payload_size_bytes"), Value::from(payload));
    m.insert(
        key("persist_path"),
        key(parse_str(values, "chromadb.persistDirectory", "/data")?),
    );
    m.insert(
        key("allow_reset"),
        Value::Bool(parse_bool(values, "chromadb.allowReset", false)?),
    );
    if let Some(Value::Sequence(origins)) = lookup(values, "chromadb.corsAllowOrigins")
        && !origins.is_empty()
    {
        m.insert(key("cors_allow_origins"), Value::Sequence(origins.clone()));
    }

    match parse_str(values, "chromadb.sqliteFilename", "")? {
        "" => {}
        f => {
            m.insert(key("sqlite_filename"), key(f));
        }
    }
    let mut sqlitedb = Mapping::new();
    for (value_key, config_key) in [
        ("hashType", "hash_type"),
        ("migrationMode", "migration_mode"),
    ] {
        match parse_str(values, &format!("chromadb.sqliteDb.{value_key}"), "")? {
            "" => {}
            v => {
                sqlitedb.insert(key(config_key), key(v));
            }
        }
    }
    if !sqlitedb.is_empty() {
        m.insert(key("sqlitedb"), Value::Mapping(sqlitedb));
    }
    if let Some(n) = parse_int(values, "chromadb.circuitBreaker.requests")? {
        let mut cb = Mapping::new();
        cb.insert(key("requests"), Value::from(n));
        m.insert(key("circuit_breaker"), Value::Mapping(cb));
    }
    let metrics = parse_bool(values, "metrics.enabled", false)?;
    if metrics || parse_bool(values, "chromadb.telemetry.enabled", false)? {
        let mut otel = Mapping::new();
        otel.insert(
            key("service_name"),
            key(parse_str(
                values,
                "chromadb.telemetry.serviceName",
                "chroma",
            )?),
        );
        // With metrics on, the server sends to the chart's collector, whose name depends on the
        // release: the model names it by a marker that `collector_endpoint` resolves.
        let endpoint = if metrics {
            super::CHART_COLLECTOR
        } else {
            parse_str(values, "chromadb.telemetry.endpoint", "")?
        };
        otel.insert(key("endpoint"), key(endpoint));
        if let Some(filters) =
            lookup(values, "chromadb.telemetry.filters").and_then(Value::as_sequence)
            && !filters.is_empty()
        {
            otel.insert(key("filters"), Value::Sequence(filters.clone()));
        }
        m.insert(key("open_telemetry"), Value::Mapping(otel));
    }
    if let Some(Value::Mapping(cache)) =
        lookup(values, "chromadb.segmentManager.hnswIndexPoolCacheConfig")
        && !cache.is_empty()
    {
        let mut sm = Mapping::new();
        sm.insert(
            key("hnsw_index_pool_cache_config"),
            server_cache_shape(cache),
        );
        m.insert(key("segment_manager"), Value::Mapping(sm));
    }

    let mut doc = Value::Mapping(m);
    if let Some(extra) = lookup(values, "chromadb.extraConfig") {
        deep_merge(&mut doc, extra);
    }
    Ok(doc)
}

/// The spec documents the cache as `{policy: memory, capacity: 65536}`, but the Rust server
/// reads an externally tagged enum and panics on that shape ("expected map with a single
/// key", measured on 1.5.9). The promise is a working cache, so the policy becomes the tag:
/// `{memory: {capacity: 65536}}`. Any other shape is the user's own and passes through.
fn server_cache_shape(cache: &Mapping) -> Value {
    match cache.get("policy").and_then(Value::as_str) {
        Some(policy) => {
            let mut rest = cache.clone();
            rest.remove("policy");
            let mut tagged = Mapping::new();
            tagged.insert(key(policy), Value::Mapping(rest));
            Value::Mapping(tagged)
        }
        None => Value::Mapping(cache.clone()),
    }
}
