//! The spec model: what the chart's documentation promises a deployment does, for a set of
//! user values on a Chroma version.
//!
//! This is derived from the values and the version only — never from a render — so a chart
//! bug cannot confirm itself. Defaults here are the spec's documented defaults, written out
//! independently of `values.yaml`.

mod backup;
mod images;
mod keys;
mod knobs;
pub mod netpol;
mod server_config;
pub mod tls;
mod validate;
mod values;

use serde_yaml::Value;

use crate::version::{ChromaVersion, OTEL_FILTERS_FLOOR, OTEL_SETTINGS_FLOOR};

pub use backup::{
    BACKUP_CA_FILE, BACKUP_MOUNT, BackupAuth, BackupServiceAccount, BackupStorage,
    DEFAULT_BACKUP_REPOSITORY, ExpectedBackup, ExpectedRestore, cronjob_name, own_claim,
    restore_job_name,
};
pub use images::{
    DEFAULT_INIT_REPOSITORY, DEFAULT_INIT_TAG, DEFAULT_PULL_POLICY, DEFAULT_REPOSITORY,
    ExpectedImage, chroma_image, init_image, pull_secrets,
};
pub use keys::KNOWN_KEYS;
pub use knobs::{
    Budget, CHART_NAME, COMPONENT_LABEL, DataVolume, ExpectedProbe, ExpectedService,
    PROBE_DEFAULTS, SELECTOR_LABELS, StorageClass, claim_template_labels, component_pod_labels,
    component_selector, data_volume, disruption_budget, fullname, headless_service, name,
    network_policy_chart_peers, network_policy_peers, object_labels, pod_labels, probes, service,
    statefulset_name, suffixed_name, user_object_refs,
};
pub use server_config::{SERVER_DEFAULTS, deep_merge, expected_server_config};
pub use validate::{
    ACCESS_MODES, CORS_WILDCARD_FIXED, ERA_FLOORS, deployed_version, era_boundary, is_iana_zone,
    is_otlp_url, is_prometheus_duration, is_quantity, tag_release,
};
use values::err;
pub use values::{KEY_TYPES, KeyType, lookup, parse_bool, parse_header, parse_int, parse_str};

/// How the spec says the API is protected.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Auth {
    /// The API is open; `why` says which rule made it so.
    Open {
        why: OpenBecause,
    },
    Token {
        header: TokenHeader,
        existing_secret: Option<String>,
    },
    Basic {
        existing_secret: Option<String>,
    },
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

// The API generation lives with the era client, its one home; re-exported for the spec.
pub use chroma_api::ApiPrefix;

/// The Python server's `CHROMA_OTEL_GRANULARITY` the chart sets unless told otherwise: the
/// server's own default (`none`) sends nothing at all.
pub const DEFAULT_OTEL_GRANULARITY: &str = "operation";
/// The granularities the 0.x server knows (`none` is left out: `enabled: false` says that).
pub const OTEL_GRANULARITIES: [&str; 3] = ["operation", "operation_and_segment", "all"];

/// The endpoint the model gives a server that sends to the chart's own collector
/// (`metrics.enabled`); [`collector_endpoint`] says what it is for a release.
pub const CHART_COLLECTOR: &str = "<the chart's otel collector>";

/// The chart's collector Deployment/Service name for a release.
pub fn collector_name(values: &Value, release: &str) -> Result<String, SpecError> {
    knobs::suffixed_name(values, release, "otel-collector")
}

/// Where the server sends OTLP when `metrics.enabled`: the collector's Service, same namespace.
pub fn collector_endpoint(values: &Value, release: &str) -> Result<String, SpecError> {
    Ok(format!("http://{}:4317", collector_name(values, release)?))
}

/// How a ServiceMonitor comes about (`metrics.serviceMonitor.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceMonitorMode {
    /// When the cluster serves `monitoring.coreos.com/v1`.
    Auto,
    Force,
    Disabled,
}

/// `metrics.enabled`: the chart's collector turns spans into Prometheus metrics.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExpectedMetrics {
    /// The collector's Prometheus exporter port.
    pub port: u16,
    pub service_monitor: ServiceMonitorMode,
    /// `Some(labels)` when the Grafana dashboard ConfigMap is rendered.
    pub dashboard_labels: Option<std::collections::BTreeMap<String, String>>,
    /// The user's own endpoint, which the collector forwards traces and metrics to.
    pub upstream: Option<String>,
}

/// What the server exports over OpenTelemetry (docs/chroma-eras.md#telemetry).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Telemetry {
    /// Not enabled.
    Off,
    /// Enabled, but this release has no OpenTelemetry: the values are ignored.
    Ignored { reason: String },
    /// Spans go over OTLP/gRPC (the only transport any release uses) to `endpoint`, with
    /// `service.name` = `service_name`.
    Exported {
        endpoint: String,
        service_name: String,
        /// 0.x: `CHROMA_OTEL_GRANULARITY`. `None` on 1.x, which has no such setting.
        granularity: Option<String>,
        /// 1.x per-crate span filters (`open_telemetry.filters`), in order; empty where the
        /// server ignores them (0.x, and 1.x before 1.0.16).
        filters: Vec<OtelFilter>,
        /// Filters were given, but this release does not read them.
        filters_ignored: bool,
        /// The 1.x server also exports metrics over OTLP; the 0.x server only spans.
        metrics: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OtelFilter {
    pub crate_name: String,
    pub filter_level: String,
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
    /// `backup.enabled`: the CronJob's schedule, retention, storage and credentials.
    pub backup: Option<ExpectedBackup>,
    /// `restore.enabled`: what the post-install restore Job reads.
    pub restore: Option<ExpectedRestore>,
    pub telemetry: Telemetry,
    pub metrics: Option<ExpectedMetrics>,
    /// `tls.enabled`: the API answers HTTPS only.
    pub tls: Option<tls::Tls>,
    /// `resources.limits.memory` in bytes: the node OOM-kills the server's container past it
    /// (Kubernetes reports `OOMKilled`) and the kubelet restarts it in the same pod.
    pub memory_limit: Option<u64>,
    /// `podDisruptionBudget.enabled`: a budget over the server's pods, and only theirs.
    pub disruption_budget: bool,
    /// `networkPolicy.enabled`: which pods reach the API port.
    pub network_policy: Option<netpol::ExpectedNetworkPolicy>,
}

/// The server's pods: the chart runs Chroma as a StatefulSet of one replica.
pub const SERVER_PODS: u32 = 1;

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

        let server_config = if rust {
            Some(expected_server_config(values)?)
        } else {
            None
        };

        let (persist_directory, allow_reset, cors_origins, max_payload_bytes) = match &server_config
        {
            // On the Rust server `extraConfig` may override chart-managed keys: what the server
            // does is what the merged document says.
            Some(doc) => {
                let dir = lookup(doc, "persist_path")
                    .and_then(Value::as_str)
                    .unwrap_or(&mount_dir)
                    .to_string();
                let reset = match lookup(doc, "allow_reset") {
                    Some(Value::Bool(b)) => *b,
                    _ => false,
                };
                let origins = lookup(doc, "cors_allow_origins")
                    .and_then(Value::as_sequence)
                    .map(|s| {
                        s.iter()
                            .filter_map(|o| o.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let payload = lookup(doc, "max_payload_size_bytes")
                    .and_then(Value::as_u64)
                    .unwrap_or(DEFAULT_MAX_PAYLOAD);
                (dir, reset, origins, Some(payload))
            }
            None => {
                let origins = match lookup(values, "chromadb.corsAllowOrigins") {
                    Some(Value::Sequence(items)) => items
                        .iter()
                        .filter_map(|o| o.as_str().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                };
                (
                    mount_dir.clone(),
                    parse_bool(values, "chromadb.allowReset", false)?,
                    origins,
                    None,
                )
            }
        };
        // < 1.0.0: `isPersistent=false` is the in-memory server. >= 1.0.0 always writes to
        // disk; the data survives only when it lands on the PVC.
        let survives_restart = persistent && within(&persist_directory, &mount_dir);
        let survives_container_restart = rust || persistent;
        let data_volume = knobs::data_volume(values)?;

        let auth = if rust {
            Auth::Open {
                why: OpenBecause::RustServer,
            }
        } else if !parse_bool(values, "chromadb.auth.enabled", true)? {
            Auth::Open {
                why: OpenBecause::Disabled,
            }
        } else {
            let existing_secret = match parse_str(values, "chromadb.auth.existingSecret", "")? {
                "" => None,
                s => Some(s.to_string()),
            };
            match parse_str(values, "chromadb.auth.type", "token")? {
                "token" if version.has_token_auth() => {
                    let raw = parse_str(values, "chromadb.auth.token.headerType", "Authorization")?;
                    let header = parse_header(raw).ok_or_else(|| {
                        err(
                            "chromadb.auth.token.headerType",
                            format!("unknown header type {raw:?}"),
                        )
                    })?;
                    Auth::Token {
                        header,
                        existing_secret,
                    }
                }
                "basic" if version.has_basic_auth() => Auth::Basic { existing_secret },
                _ => Auth::Open {
                    why: OpenBecause::BelowFloor,
                },
            }
        };

        let (backup, restore) = backup::expected(values, &auth)?;

        let api = ApiPrefix::for_version(version);
        let telemetry = telemetry(values, version, server_config.as_ref())?;
        let metrics = expected_metrics(values)?;

        let tls = tls::expected(values, version)?;
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
            backup,
            restore,
            telemetry,
            metrics,
            network_policy: {
                let port_name = if tls.is_some() { "https" } else { "http" };
                netpol::expected(values, port, port_name)?
            },
            tls,
            memory_limit: memory_limit(values)?,
            disruption_budget: values::parse_bool(values, "podDisruptionBudget.enabled", false)?,
        })
    }

    pub fn cors_wildcard(&self) -> bool {
        self.cors_origins.iter().any(|o| o == "*")
    }
}

/// `resources.limits.memory`: a quantity string (`512Mi`) or a plain number of bytes.
fn memory_limit(values: &Value) -> Result<Option<u64>, SpecError> {
    const KEY: &str = "resources.limits.memory";
    match lookup(values, KEY) {
        None => Ok(None),
        Some(Value::String(s)) => crate::quantity::parse_quantity(s)
            .map(Some)
            .map_err(|e| err(KEY, e)),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|b| *b >= 1.0)
            .map(|b| Some(b.ceil() as u64))
            .ok_or_else(|| {
                err(
                    KEY,
                    format!("must be a positive quantity of bytes (e.g. 512Mi), got {n}"),
                )
            }),
        Some(other) => Err(err(
            KEY,
            format!(
                "must be a quantity of bytes (e.g. 512Mi), got {}",
                values::show(other)
            ),
        )),
    }
}

fn telemetry(
    values: &Value,
    version: &ChromaVersion,
    server_config: Option<&Value>,
) -> Result<Telemetry, SpecError> {
    if let Some(doc) = server_config {
        // The merged document is what the 1.x server reads (extraConfig may have written the
        // block itself).
        let Some(otel) = lookup(doc, "open_telemetry") else {
            return Ok(Telemetry::Off);
        };
        let text = |k: &str| {
            lookup(otel, k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let given = lookup(otel, "filters")
            .and_then(Value::as_sequence)
            .is_some_and(|f| !f.is_empty());
        // Before the floor the server reads no filters: it exports as if there were none.
        let filters = lookup(otel, "filters")
            .filter(|_| *version >= OTEL_FILTERS_FLOOR)
            .and_then(Value::as_sequence)
            .map(|fs| {
                fs.iter()
                    .map(|f| OtelFilter {
                        crate_name: lookup(f, "crate_name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        filter_level: lookup(f, "filter_level")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let filters_ignored = given && *version < OTEL_FILTERS_FLOOR;
        return Ok(Telemetry::Exported {
            endpoint: text("endpoint"),
            service_name: text("service_name"),
            granularity: None,
            filters,
            filters_ignored,
            metrics: true,
        });
    }
    let metrics = parse_bool(values, "metrics.enabled", false)?;
    if !metrics && !parse_bool(values, "chromadb.telemetry.enabled", false)? {
        return Ok(Telemetry::Off);
    }
    if *version < OTEL_SETTINGS_FLOOR {
        return Ok(Telemetry::Ignored {
            reason: format!(
                "Chroma {version} has no OpenTelemetry (CHROMA_OTEL_* settings exist from {OTEL_SETTINGS_FLOOR}); chromadb.telemetry.* is ignored"
            ),
        });
    }
    Ok(Telemetry::Exported {
        endpoint: if metrics {
            CHART_COLLECTOR.to_string()
        } else {
            parse_str(values, "chromadb.telemetry.endpoint", "")?.to_string()
        },
        service_name: parse_str(values, "chromadb.telemetry.serviceName", "chroma")?.to_string(),
        granularity: Some(
            parse_str(
                values,
                "chromadb.telemetry.granularity",
                DEFAULT_OTEL_GRANULARITY,
            )?
            .to_string(),
        ),
        // Per-crate filters are a 1.x setting; the Python server has none (ignored there).
        filters: Vec::new(),
        filters_ignored: lookup(values, "chromadb.telemetry.filters")
            .and_then(Value::as_sequence)
            .is_some_and(|f| !f.is_empty()),
        metrics: false,
    })
}

fn expected_metrics(values: &Value) -> Result<Option<ExpectedMetrics>, SpecError> {
    if !parse_bool(values, "metrics.enabled", false)? {
        return Ok(None);
    }
    let service_monitor = match parse_str(values, "metrics.serviceMonitor.mode", "auto")? {
        "force" => ServiceMonitorMode::Force,
        "disabled" => ServiceMonitorMode::Disabled,
        _ => ServiceMonitorMode::Auto,
    };
    let dashboard_labels = if parse_bool(values, "metrics.dashboard.enabled", true)? {
        let labels = match lookup(values, "metrics.dashboard.labels") {
            Some(Value::Mapping(m)) => m
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        k.as_str()?.to_string(),
                        v.as_str().map_or_else(|| values::show(v), str::to_string),
                    ))
                })
                .collect(),
            Some(_) => Default::default(),
            None => std::collections::BTreeMap::from([(
                "grafana_dashboard".to_string(),
                "1".to_string(),
            )]),
        };
        Some(labels)
    } else {
        None
    };
    let upstream = match parse_str(values, "chromadb.telemetry.endpoint", "")? {
        "" => None,
        u => Some(u.to_string()),
    };
    Ok(Some(ExpectedMetrics {
        port: parse_int(values, "metrics.port")?.unwrap_or(8889) as u16,
        service_monitor,
        dashboard_labels,
        upstream,
    }))
}

/// `path` is `dir` or lies below it.
fn within(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir
        || dir.is_empty()
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests;
