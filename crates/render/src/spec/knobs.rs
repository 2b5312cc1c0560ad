//! What the production knobs promise: names, labels, probes, the Services, the optional
//! PodDisruptionBudget and NetworkPolicy, and where the data lives. Derived from the values
//! alone; the defaults are the documented ones, written out here independently of the chart.

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::SpecError;
use super::values::{err, lookup, parse_bool, parse_int, parse_str, show};

/// The chart's name, the default of `nameOverride`.
pub const CHART_NAME: &str = "chromadb";
/// Labels the StatefulSet selects its pod by; users may not set them.
pub const SELECTOR_LABELS: [&str; 2] = ["app.kubernetes.io/name", "app.kubernetes.io/instance"];

/// `app.kubernetes.io/name`: `nameOverride` or the chart name.
pub fn name(values: &Value) -> Result<String, SpecError> {
    Ok(match parse_str(values, "nameOverride", "")? {
        "" => CHART_NAME.to_string(),
        n => dns_cut(n),
    })
}

/// Every object's name: `fullnameOverride`, else `<release>-<name>`, within 63 characters.
pub fn fullname(values: &Value, release: &str) -> Result<String, SpecError> {
    Ok(match parse_str(values, "fullnameOverride", "")? {
        "" => dns_cut(&format!("{release}-{}", name(values)?)),
        n => dns_cut(n),
    })
}

fn dns_cut(s: &str) -> String {
    s.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// The headless Service a fresh install's StatefulSet names as its `serviceName`.
pub fn headless_service(values: &Value, release: &str) -> Result<String, SpecError> {
    let full: String = fullname(values, release)?.chars().take(54).collect();
    Ok(format!("{}-headless", full.trim_end_matches('-')))
}

fn label_map(values: &Value, key: &str) -> Result<BTreeMap<String, String>, SpecError> {
    let mut out = BTreeMap::new();
    if let Some(map) = lookup(values, key).and_then(Value::as_mapping) {
        for (k, v) in map {
            let k = k.as_str().map(str::to_string).unwrap_or_else(|| show(k));
            if SELECTOR_LABELS.contains(&k.as_str()) {
                return Err(err(
                    &format!("{key}.{k}"),
                    "is a selector label the chart sets itself; it cannot change on an existing StatefulSet",
                ));
            }
            let v = match v {
                Value::String(s) => s.clone(),
                other => show(other),
            };
            out.insert(k, v);
        }
    }
    Ok(out)
}

/// The component label: the chart's own wherever it sets one (backup, restore, test, metrics),
/// since its selectors and NetworkPolicy rules find those pods by it.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";

/// `base` with `commonLabels` merged over it: the user's value wins a shared key, except a
/// component label the chart sets.
pub fn object_labels(
    values: &Value,
    base: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, SpecError> {
    let mut out = base.clone();
    out.extend(label_map(values, "commonLabels")?);
    if let Some(c) = base.get(COMPONENT_LABEL) {
        out.insert(COMPONENT_LABEL.to_string(), c.clone());
    }
    Ok(out)
}

/// The labels a pod the chart runs besides Chroma (`backup`, `restore`, `test`) is selected
/// by: a name of its own, so that Chroma's Services, budget and NetworkPolicy never pick it.
pub fn component_selector(
    values: &Value,
    release: &str,
    component: &str,
) -> Result<BTreeMap<String, String>, SpecError> {
    Ok(BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            dns_cut(&format!("{}-{component}", name(values)?)),
        ),
        (
            "app.kubernetes.io/instance".to_string(),
            release.to_string(),
        ),
        (COMPONENT_LABEL.to_string(), component.to_string()),
    ]))
}

/// The labels of a claim template: the selector labels only (a claim template cannot change
/// on an installed StatefulSet, so nothing the user may edit later goes there).
pub fn claim_template_labels(
    values: &Value,
    release: &str,
) -> Result<BTreeMap<String, String>, SpecError> {
    Ok(BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), name(values)?),
        (
            "app.kubernetes.io/instance".to_string(),
            release.to_string(),
        ),
    ]))
}

/// The StatefulSet's name: the full name within 52 characters (its pods' `controller-revision-hash`
/// label is `<name>-<10-character hash>`, and a label value holds 63).
pub fn statefulset_name(values: &Value, release: &str) -> Result<String, SpecError> {
    Ok(fullname(values, release)?
        .chars()
        .take(52)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string())
}

/// `<fullname>-<suffix>` within 63 characters, the full name cut first.
pub fn suffixed_name(values: &Value, release: &str, suffix: &str) -> Result<String, SpecError> {
    let room = 62 - suffix.len();
    let base: String = fullname(values, release)?.chars().take(room).collect();
    Ok(format!("{}-{suffix}", base.trim_end_matches('-')))
}

/// The pod template's labels: object labels with `podLabels` merged over them.
pub fn pod_labels(
    values: &Value,
    base: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, SpecError> {
    component_pod_labels(values, base, "podLabels")
}

/// A pod template's labels: object labels with the pod's own labels (`podLabels`,
/// `backup.podLabels`, `tests.podLabels`, …) merged over them; a chart component stays.
pub fn component_pod_labels(
    values: &Value,
    base: &BTreeMap<String, String>,
    key: &str,
) -> Result<BTreeMap<String, String>, SpecError> {
    let mut out = object_labels(values, base)?;
    out.extend(label_map(values, key)?);
    if let Some(c) = base.get(COMPONENT_LABEL) {
        out.insert(COMPONENT_LABEL.to_string(), c.clone());
    }
    Ok(out)
}

/// One httpGet probe on the heartbeat, with its timing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExpectedProbe {
    /// `startupProbe`, `readinessProbe` or `livenessProbe`.
    pub kind: &'static str,
    pub initial_delay_seconds: i64,
    pub period_seconds: i64,
    pub timeout_seconds: i64,
    pub failure_threshold: i64,
}

/// The documented probe defaults: (kind, initial delay, period, timeout, failures).
pub const PROBE_DEFAULTS: [(&str, i64, i64, i64, i64); 3] = [
    ("startupProbe", 0, 2, 1, 60),
    ("readinessProbe", 0, 5, 1, 3),
    ("livenessProbe", 0, 15, 1, 4),
];

/// The probes the chromadb container has (disabled ones are absent).
pub fn probes(values: &Value) -> Result<Vec<ExpectedProbe>, SpecError> {
    let mut out = Vec::new();
    for (kind, delay, period, timeout, failures) in PROBE_DEFAULTS {
        if !parse_bool(values, &format!("{kind}.enabled"), true)? {
            continue;
        }
        let field =
            |f: &str, d: i64| parse_int(values, &format!("{kind}.{f}")).map(|v| v.unwrap_or(d));
        out.push(ExpectedProbe {
            kind,
            initial_delay_seconds: field("initialDelaySeconds", delay)?,
            period_seconds: field("periodSeconds", period)?,
            timeout_seconds: field("timeoutSeconds", timeout)?,
            failure_threshold: field("failureThreshold", failures)?,
        });
    }
    Ok(out)
}

/// The client-facing Service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExpectedService {
    pub type_: String,
    pub node_port: Option<i64>,
    pub load_balancer_ip: Option<String>,
    pub load_balancer_source_ranges: Vec<String>,
    pub external_traffic_policy: Option<String>,
}

pub fn service(values: &Value) -> Result<ExpectedService, SpecError> {
    let type_ = parse_str(values, "service.type", "ClusterIP")?.to_string();
    let external = matches!(type_.as_str(), "NodePort" | "LoadBalancer");
    let lb = type_ == "LoadBalancer";
    let ip = parse_str(values, "service.loadBalancerIP", "")?;
    let ranges = match lookup(values, "service.loadBalancerSourceRanges") {
        Some(Value::Sequence(items)) if lb => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let policy = parse_str(values, "service.externalTrafficPolicy", "")?;
    Ok(ExpectedService {
        node_port: if external {
            parse_int(values, "service.nodePort")?
        } else {
            None
        },
        load_balancer_ip: (lb && !ip.is_empty()).then(|| ip.to_string()),
        load_balancer_source_ranges: ranges,
        external_traffic_policy: (external && !policy.is_empty()).then(|| policy.to_string()),
        type_,
    })
}

/// The PodDisruptionBudget's limits, as given (a count or a percentage).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Budget {
    pub min_available: Option<Value>,
    pub max_unavailable: Option<Value>,
}

/// The PodDisruptionBudget, when enabled.
pub fn disruption_budget(values: &Value) -> Result<Option<Budget>, SpecError> {
    if !parse_bool(values, "podDisruptionBudget.enabled", false)? {
        return Ok(None);
    }
    let min = lookup(values, "podDisruptionBudget.minAvailable").cloned();
    // The documented default maxUnavailable is 1; an explicit null removes it.
    let max = match values
        .as_mapping()
        .and_then(|m| m.get("podDisruptionBudget"))
        .and_then(|p| p.get("maxUnavailable"))
    {
        Some(Value::Null) => None,
        Some(v) => Some(v.clone()),
        None => Some(Value::from(1)),
    };
    Ok(Some(Budget {
        min_available: min,
        max_unavailable: max,
    }))
}

/// The NetworkPolicy's user peers, when enabled (the chart's test pod is always added).
pub fn network_policy_peers(values: &Value) -> Result<Option<Vec<Value>>, SpecError> {
    if !parse_bool(values, "networkPolicy.enabled", false)? {
        return Ok(None);
    }
    Ok(Some(
        lookup(values, "networkPolicy.allowedFrom")
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default(),
    ))
}

/// The chart's own pods the NetworkPolicy admits besides the user's peers, each by its own
/// selector: `helm test` always, the backup pods with `backup.enabled`, the restore pods with
/// `backup.enabled` or `restore.enabled` (a release with backups may be emptied and restored
/// in place, by the restore Job of the same values with `restore.enabled=true`).
pub fn network_policy_chart_peers(
    values: &Value,
    release: &str,
) -> Result<Vec<BTreeMap<String, String>>, SpecError> {
    let mut out = vec![component_selector(values, release, "test")?];
    let backup = parse_bool(values, "backup.enabled", false)?;
    if backup {
        out.push(component_selector(values, release, "backup")?);
    }
    if backup || parse_bool(values, "restore.enabled", false)? {
        out.push(component_selector(values, release, "restore")?);
    }
    Ok(out)
}

/// Where the data volume comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataVolume {
    /// `isPersistent=false`: an emptyDir.
    EmptyDir,
    /// `chromadb.data.existingClaim`: the user's PVC.
    ExistingClaim { name: String },
    /// The chart's claim template.
    ClaimTemplate { storage_class: StorageClass },
}

/// `chromadb.data.storageClass` by the chart's convention.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum StorageClass {
    /// null or `""`: `storageClassName` is left out, the cluster default applies.
    ClusterDefault,
    /// `"-"`: `storageClassName: ""`, no class (static provisioning).
    None,
    Named(String),
}

impl StorageClass {
    /// The `storageClassName` field the claim must carry.
    pub fn field(&self) -> Option<&str> {
        match self {
            StorageClass::ClusterDefault => None,
            StorageClass::None => Some(""),
            StorageClass::Named(n) => Some(n),
        }
    }
}

pub fn data_volume(values: &Value) -> Result<DataVolume, SpecError> {
    if !parse_bool(values, "chromadb.isPersistent", true)? {
        return Ok(DataVolume::EmptyDir);
    }
    match parse_str(values, "chromadb.data.existingClaim", "")? {
        "" => {}
        claim => {
            return Ok(DataVolume::ExistingClaim {
                name: claim.to_string(),
            });
        }
    }
    let storage_class = match parse_str(values, "chromadb.data.storageClass", "")? {
        "" => StorageClass::ClusterDefault,
        "-" => StorageClass::None,
        n => StorageClass::Named(n.to_string()),
    };
    Ok(DataVolume::ClaimTemplate { storage_class })
}

/// Names of the Secrets and ConfigMaps the user's own pod additions (`extraEnv`,
/// `extraEnvFrom`, `extraVolumes`, `initContainers`, `sidecars`) refer to: they exist outside
/// the chart, like `existingSecret`.
pub fn user_object_refs(values: &Value) -> std::collections::BTreeSet<String> {
    fn walk(v: &Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            Value::Mapping(m) => {
                for (k, child) in m {
                    let name_key = match k.as_str() {
                        Some(
                            "secretKeyRef" | "configMapKeyRef" | "secretRef" | "configMapRef"
                            | "configMap",
                        ) => "name",
                        Some("secret") => "secretName",
                        _ => "",
                    };
                    if let Some(name) = (!name_key.is_empty())
                        .then(|| child.get(name_key).and_then(Value::as_str))
                        .flatten()
                    {
                        out.insert(name.to_string());
                    }
                    walk(child, out);
                }
            }
            Value::Sequence(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = std::collections::BTreeSet::new();
    for key in [
        "extraEnv",
        "extraEnvFrom",
        "extraVolumes",
        "initContainers",
        "sidecars",
    ] {
        if let Some(v) = lookup(values, key) {
            walk(v, &mut out);
        }
    }
    out
}
