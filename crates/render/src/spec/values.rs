//! Reading the user's values the way the spec describes them: dotted keys, the documented
//! type of each key, and the spec's lenient booleans.

use serde_yaml::Value;

use super::{SpecError, TokenHeader};

pub(crate) fn err(key: &str, reason: impl Into<String>) -> SpecError {
    SpecError {
        key: key.to_string(),
        reason: reason.into(),
    }
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
        Some(other) => Err(err(
            key,
            format!(
                "must be true or false (a boolean or the string \"true\"/\"false\"), got {}",
                show(other)
            ),
        )),
    }
}

pub fn parse_str<'a>(values: &'a Value, key: &str, default: &'a str) -> Result<&'a str, SpecError> {
    match lookup(values, key) {
        None => Ok(default),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(err(key, format!("must be a string, got {}", show(other)))),
    }
}

pub fn parse_int(values: &Value, key: &str) -> Result<Option<i64>, SpecError> {
    match lookup(values, key) {
        None => Ok(None),
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
        Some(other) => Err(err(key, format!("must be an integer, got {}", show(other)))),
    }
}

pub(crate) fn show(v: &Value) -> String {
    serde_yaml::to_string(v)
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// `Authorization`, `X-Chroma-Token` or `X_CHROMA_TOKEN`, in any case.
pub fn parse_header(raw: &str) -> Option<TokenHeader> {
    let norm = raw.trim().to_ascii_uppercase();
    match norm.as_str() {
        "AUTHORIZATION" => Some(TokenHeader::Authorization),
        "X-CHROMA-TOKEN" | "X_CHROMA_TOKEN" => Some(TokenHeader::XChromaToken),
        _ => None,
    }
}

/// The type the spec's values table documents for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Bool,
    Str,
    Int,
    List,
    Object,
}

/// Every key of the spec's values table whose type a wrong value can violate, with that
/// type. (`chromadb.apiImpl` is not read by the chart and `chromadb.data.accessModes` is
/// documented loosely, so neither is type-checked.)
pub const KEY_TYPES: &[(&str, KeyType)] = &[
    ("chromadb.apiVersion", KeyType::Str),
    ("tls.enabled", KeyType::Bool),
    ("tls.existingSecret", KeyType::Str),
    ("tls.certManager.enabled", KeyType::Bool),
    ("tls.certManager.issuerRef.name", KeyType::Str),
    ("tls.certManager.dnsNames", KeyType::List),
    ("tls.caBundle.name", KeyType::Str),
    ("tls.proxy.serverPort", KeyType::Int),
    ("chromadb.allowReset", KeyType::Bool),
    ("chromadb.isPersistent", KeyType::Bool),
    ("chromadb.persistDirectory", KeyType::Str),
    ("chromadb.anonymizedTelemetry", KeyType::Bool),
    ("chromadb.corsAllowOrigins", KeyType::List),
    ("chromadb.serverHost", KeyType::Str),
    ("chromadb.serverHttpPort", KeyType::Int),
    ("chromadb.data.volumeSize", KeyType::Str),
    ("chromadb.data.storageClass", KeyType::Str),
    ("chromadb.data.retentionPolicyOnDelete", KeyType::Str),
    ("chromadb.auth.enabled", KeyType::Bool),
    ("chromadb.auth.type", KeyType::Str),
    ("chromadb.auth.token.headerType", KeyType::Str),
    ("chromadb.auth.existingSecret", KeyType::Str),
    ("global.imageRegistry", KeyType::Str),
    ("image.registry", KeyType::Str),
    ("image.repository", KeyType::Str),
    ("image.tag", KeyType::Str),
    ("image.digest", KeyType::Str),
    ("image.pullPolicy", KeyType::Str),
    ("initImage.registry", KeyType::Str),
    ("initImage.repository", KeyType::Str),
    ("initImage.tag", KeyType::Str),
    ("initImage.digest", KeyType::Str),
    ("initImage.pullPolicy", KeyType::Str),
    ("chromadb.logging.root", KeyType::Str),
    ("chromadb.logging.chromadb", KeyType::Str),
    ("chromadb.logging.uvicorn", KeyType::Str),
    ("chromadb.logConfigFileLocation", KeyType::Str),
    ("chromadb.logConfigMap", KeyType::Str),
    ("chromadb.maintenance.collection_cache_policy", KeyType::Str),
    (
        "chromadb.maintenance.collection_cache_limit_bytes",
        KeyType::Int,
    ),
    ("chromadb.maxPayloadSizeBytes", KeyType::Int),
    ("chromadb.telemetry.enabled", KeyType::Bool),
    ("chromadb.telemetry.endpoint", KeyType::Str),
    ("chromadb.telemetry.serviceName", KeyType::Str),
    ("chromadb.telemetry.filters", KeyType::List),
    ("chromadb.telemetry.granularity", KeyType::Str),
    ("metrics.enabled", KeyType::Bool),
    ("metrics.port", KeyType::Int),
    ("metrics.serviceMonitor.mode", KeyType::Str),
    ("metrics.serviceMonitor.interval", KeyType::Str),
    ("metrics.serviceMonitor.labels", KeyType::Object),
    ("metrics.dashboard.enabled", KeyType::Bool),
    ("metrics.dashboard.labels", KeyType::Object),
    ("chromadb.sqliteFilename", KeyType::Str),
    ("chromadb.sqliteDb.hashType", KeyType::Str),
    ("chromadb.sqliteDb.migrationMode", KeyType::Str),
    ("chromadb.circuitBreaker.requests", KeyType::Int),
    (
        "chromadb.segmentManager.hnswIndexPoolCacheConfig",
        KeyType::Object,
    ),
    ("imagePullSecrets", KeyType::List),
    ("global.imagePullSecrets", KeyType::List),
    ("serviceAccount.create", KeyType::Bool),
    ("serviceAccount.annotations", KeyType::Object),
    ("serviceAccount.name", KeyType::Str),
    ("serviceAccount.automountServiceAccountToken", KeyType::Bool),
    ("chromadb.extraConfig", KeyType::Object),
    ("commonLabels", KeyType::Object),
    ("podLabels", KeyType::Object),
    ("nameOverride", KeyType::Str),
    ("fullnameOverride", KeyType::Str),
    ("chromadb.data.existingClaim", KeyType::Str),
    ("service.nodePort", KeyType::Int),
    ("service.loadBalancerIP", KeyType::Str),
    ("service.loadBalancerSourceRanges", KeyType::List),
    ("service.externalTrafficPolicy", KeyType::Str),
    ("terminationGracePeriodSeconds", KeyType::Int),
    ("priorityClassName", KeyType::Str),
    ("topologySpreadConstraints", KeyType::List),
    ("updateStrategy", KeyType::Object),
    ("extraEnv", KeyType::List),
    ("extraEnvFrom", KeyType::List),
    ("extraVolumes", KeyType::List),
    ("extraVolumeMounts", KeyType::List),
    ("initContainers", KeyType::List),
    ("sidecars", KeyType::List),
    ("podDisruptionBudget.enabled", KeyType::Bool),
    ("networkPolicy.enabled", KeyType::Bool),
    ("networkPolicy.allowedFrom", KeyType::List),
    ("startupProbe.enabled", KeyType::Bool),
    ("readinessProbe.enabled", KeyType::Bool),
    ("livenessProbe.enabled", KeyType::Bool),
    ("ingress.enabled", KeyType::Bool),
    ("backup.enabled", KeyType::Bool),
    ("backup.timeZone", KeyType::Str),
    ("backup.image.registry", KeyType::Str),
    ("backup.image.repository", KeyType::Str),
    ("backup.image.digest", KeyType::Str),
    ("backup.image.pullPolicy", KeyType::Str),
    ("backup.storage.type", KeyType::Str),
    ("backup.storage.pvc.existingClaim", KeyType::Str),
    ("backup.storage.pvc.storageClass", KeyType::Str),
    ("backup.storage.s3.bucket", KeyType::Str),
    ("backup.storage.s3.endpoint", KeyType::Str),
    ("backup.storage.s3.prefix", KeyType::Str),
    ("backup.storage.s3.region", KeyType::Str),
    ("backup.storage.s3.allowHttp", KeyType::Bool),
    ("backup.storage.s3.existingSecret", KeyType::Str),
    ("backup.keep", KeyType::Int),
    ("backup.resources", KeyType::Object),
    ("restore.enabled", KeyType::Bool),
    ("restore.from", KeyType::Str),
    ("chromadb.data.annotations", KeyType::Object),
    ("backup.suspend", KeyType::Bool),
    ("backup.podAnnotations", KeyType::Object),
    ("backup.podLabels", KeyType::Object),
    ("backup.nodeSelector", KeyType::Object),
    ("backup.tolerations", KeyType::List),
    ("backup.affinity", KeyType::Object),
    ("backup.priorityClassName", KeyType::Str),
    ("backup.serviceAccount.create", KeyType::Bool),
    ("backup.serviceAccount.name", KeyType::Str),
    ("backup.serviceAccount.annotations", KeyType::Object),
    ("backup.storage.pvc.annotations", KeyType::Object),
    ("tests.resources", KeyType::Object),
    ("tests.podAnnotations", KeyType::Object),
    ("tests.podLabels", KeyType::Object),
    ("tests.nodeSelector", KeyType::Object),
    ("tests.tolerations", KeyType::List),
    ("tests.affinity", KeyType::Object),
    ("tests.priorityClassName", KeyType::Str),
    ("metrics.collector.podAnnotations", KeyType::Object),
    ("metrics.collector.podLabels", KeyType::Object),
    ("metrics.collector.nodeSelector", KeyType::Object),
    ("metrics.collector.tolerations", KeyType::List),
    ("metrics.collector.affinity", KeyType::Object),
    ("metrics.collector.priorityClassName", KeyType::Str),
    ("metrics.serviceMonitor.scrapeTimeout", KeyType::Str),
    ("metrics.serviceMonitor.relabelings", KeyType::List),
    ("metrics.serviceMonitor.metricRelabelings", KeyType::List),
    ("networkPolicy.extraIngress", KeyType::List),
    ("networkPolicy.extraEgress", KeyType::List),
];

/// Refuses a value whose type is not the one the spec documents for its key.
pub(crate) fn check_types(values: &Value) -> Result<(), SpecError> {
    for (key, ty) in KEY_TYPES {
        match ty {
            KeyType::Bool => parse_bool(values, key, false).map(drop)?,
            KeyType::Str => parse_str(values, key, "").map(drop)?,
            KeyType::Int => parse_int(values, key).map(drop)?,
            KeyType::List => match lookup(values, key) {
                None | Some(Value::Sequence(_)) => {}
                Some(other) => {
                    return Err(err(key, format!("must be a list, got {}", show(other))));
                }
            },
            KeyType::Object => match lookup(values, key) {
                None | Some(Value::Mapping(_)) => {}
                Some(other) => return Err(err(key, format!("must be a map, got {}", show(other)))),
            },
        }
    }
    Ok(())
}
