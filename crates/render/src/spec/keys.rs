//! Which keys the chart reads. Anything else in the user's values is refused naming it — a
//! typo or an old chart's key must not be silently ignored.

use serde_yaml::Value;

use super::SpecError;
use super::values::err;

/// Every key of the spec's values table whose value the chart reads as a whole (scalars,
/// lists, and maps the chart passes through). Written out from the documentation, not read
/// from `values.yaml`.
pub const KNOWN_KEYS: &[&str] = &[
    // A parent chart's `condition: chromadb.enabled` puts `enabled` here.
    "enabled",
    "global",
    "nameOverride",
    "fullnameOverride",
    "image.registry",
    "image.repository",
    "image.tag",
    "image.digest",
    "image.pullPolicy",
    "initImage.registry",
    "initImage.repository",
    "initImage.tag",
    "initImage.digest",
    "initImage.pullPolicy",
    "imagePullSecrets",
    "serviceAccount.create",
    "serviceAccount.annotations",
    "serviceAccount.name",
    "serviceAccount.automountServiceAccountToken",
    "commonLabels",
    "podLabels",
    "podAnnotations",
    "service.type",
    "service.annotations",
    "service.nodePort",
    "service.loadBalancerIP",
    "service.loadBalancerSourceRanges",
    "service.externalTrafficPolicy",
    "ingress.enabled",
    "ingress.className",
    "ingress.annotations",
    "ingress.hosts",
    "ingress.tls",
    "resources",
    "nodeSelector",
    "tolerations",
    "affinity",
    "podSecurityContext",
    "securityContext",
    "terminationGracePeriodSeconds",
    "priorityClassName",
    "topologySpreadConstraints",
    "updateStrategy.type",
    "updateStrategy.rollingUpdate",
    "extraEnv",
    "extraEnvFrom",
    "extraVolumes",
    "extraVolumeMounts",
    "initContainers",
    "sidecars",
    "startupProbe.enabled",
    "startupProbe.initialDelaySeconds",
    "startupProbe.periodSeconds",
    "startupProbe.timeoutSeconds",
    "startupProbe.failureThreshold",
    "readinessProbe.enabled",
    "readinessProbe.initialDelaySeconds",
    "readinessProbe.periodSeconds",
    "readinessProbe.timeoutSeconds",
    "readinessProbe.failureThreshold",
    "livenessProbe.enabled",
    "livenessProbe.initialDelaySeconds",
    "livenessProbe.periodSeconds",
    "livenessProbe.timeoutSeconds",
    "livenessProbe.failureThreshold",
    "podDisruptionBudget.enabled",
    "podDisruptionBudget.minAvailable",
    "podDisruptionBudget.maxUnavailable",
    "networkPolicy.enabled",
    "networkPolicy.allowedFrom",
    "networkPolicy.extraIngress",
    "networkPolicy.extraEgress",
    "tests.image.registry",
    "tests.image.repository",
    "tests.image.tag",
    "tests.image.digest",
    "tests.image.pullPolicy",
    "tests.podSecurityContext",
    "tests.securityContext",
    "tests.resources",
    "tests.podAnnotations",
    "tests.podLabels",
    "tests.nodeSelector",
    "tests.tolerations",
    "tests.affinity",
    "tests.priorityClassName",
    "tls.enabled",
    "tls.existingSecret",
    "tls.certManager.enabled",
    "tls.certManager.issuerRef.name",
    "tls.certManager.issuerRef.kind",
    "tls.certManager.issuerRef.group",
    "tls.certManager.dnsNames",
    "tls.certManager.duration",
    "tls.certManager.renewBefore",
    "tls.caBundle.name",
    "tls.caBundle.kind",
    "tls.caBundle.key",
    "tls.proxy.image.registry",
    "tls.proxy.image.repository",
    "tls.proxy.image.tag",
    "tls.proxy.image.digest",
    "tls.proxy.image.pullPolicy",
    "tls.proxy.serverPort",
    "tls.proxy.resources",
    "chromadb.apiVersion",
    "chromadb.allowReset",
    "chromadb.isPersistent",
    "chromadb.persistDirectory",
    "chromadb.anonymizedTelemetry",
    "chromadb.corsAllowOrigins",
    "chromadb.apiImpl",
    "chromadb.serverHost",
    "chromadb.serverHttpPort",
    "chromadb.data.volumeSize",
    "chromadb.data.storageClass",
    "chromadb.data.existingClaim",
    "chromadb.data.accessModes",
    "chromadb.data.retentionPolicyOnDelete",
    "chromadb.data.annotations",
    "chromadb.auth.enabled",
    "chromadb.auth.type",
    "chromadb.auth.token.headerType",
    // Old charts' fixed credentials: known so that they get their own message (use
    // existingSecret) instead of "unknown key".
    "chromadb.auth.token.value",
    "chromadb.auth.basic.username",
    "chromadb.auth.basic.password",
    "chromadb.auth.existingSecret",
    "chromadb.logging.root",
    "chromadb.logging.chromadb",
    "chromadb.logging.uvicorn",
    "chromadb.logConfigFileLocation",
    "chromadb.logConfigMap",
    "chromadb.maintenance.collection_cache_policy",
    "chromadb.maintenance.collection_cache_limit_bytes",
    "chromadb.maxPayloadSizeBytes",
    "chromadb.telemetry.enabled",
    "chromadb.telemetry.endpoint",
    "chromadb.telemetry.serviceName",
    "chromadb.telemetry.filters",
    "chromadb.telemetry.granularity",
    "metrics.enabled",
    "metrics.port",
    "metrics.collector.image.registry",
    "metrics.collector.image.repository",
    "metrics.collector.image.tag",
    "metrics.collector.image.digest",
    "metrics.collector.image.pullPolicy",
    "metrics.collector.resources",
    "metrics.collector.podAnnotations",
    "metrics.collector.podLabels",
    "metrics.collector.nodeSelector",
    "metrics.collector.tolerations",
    "metrics.collector.affinity",
    "metrics.collector.priorityClassName",
    "metrics.serviceMonitor.mode",
    "metrics.serviceMonitor.interval",
    "metrics.serviceMonitor.labels",
    "metrics.serviceMonitor.scrapeTimeout",
    "metrics.serviceMonitor.relabelings",
    "metrics.serviceMonitor.metricRelabelings",
    "metrics.dashboard.enabled",
    "metrics.dashboard.labels",
    "chromadb.sqliteFilename",
    "chromadb.sqliteDb.hashType",
    "chromadb.sqliteDb.migrationMode",
    "chromadb.circuitBreaker.requests",
    "chromadb.segmentManager.hnswIndexPoolCacheConfig",
    "chromadb.extraConfig",
    "backup.enabled",
    "backup.schedule",
    "backup.timeZone",
    "backup.keep",
    "backup.waitReadySeconds",
    "backup.image.registry",
    "backup.image.repository",
    "backup.image.tag",
    "backup.image.digest",
    "backup.image.pullPolicy",
    "backup.storage.type",
    "backup.storage.pvc.existingClaim",
    "backup.storage.pvc.size",
    "backup.storage.pvc.storageClass",
    "backup.storage.pvc.accessModes",
    "backup.storage.pvc.annotations",
    "backup.storage.s3.endpoint",
    "backup.storage.s3.bucket",
    "backup.storage.s3.prefix",
    "backup.storage.s3.region",
    "backup.storage.s3.allowHttp",
    "backup.storage.s3.existingSecret",
    "backup.storage.s3.accessKeyIdKey",
    "backup.storage.s3.secretAccessKeyKey",
    "backup.concurrencyPolicy",
    "backup.startingDeadlineSeconds",
    "backup.successfulJobsHistoryLimit",
    "backup.failedJobsHistoryLimit",
    "backup.backoffLimit",
    "backup.activeDeadlineSeconds",
    "backup.resources",
    "backup.podSecurityContext",
    "backup.securityContext",
    "backup.suspend",
    "backup.podAnnotations",
    "backup.podLabels",
    "backup.nodeSelector",
    "backup.tolerations",
    "backup.affinity",
    "backup.priorityClassName",
    "backup.serviceAccount.create",
    "backup.serviceAccount.name",
    "backup.serviceAccount.annotations",
    "restore.enabled",
    "restore.from",
    "restore.waitReadySeconds",
    "restore.activeDeadlineSeconds",
];

/// Refuses the first key of `values` the chart does not read, naming its dotted path.
pub(crate) fn check_known(values: &Value) -> Result<(), SpecError> {
    walk(values, "")
}

fn walk(node: &Value, at: &str) -> Result<(), SpecError> {
    let Some(map) = node.as_mapping() else {
        return Ok(());
    };
    for (k, v) in map {
        let name = match k {
            Value::String(s) => s.clone(),
            other => super::values::show(other),
        };
        let path = if at.is_empty() {
            name
        } else {
            format!("{at}.{name}")
        };
        if KNOWN_KEYS.contains(&path.as_str()) {
            continue;
        }
        let prefix = format!("{path}.");
        if KNOWN_KEYS.iter().any(|known| known.starts_with(&prefix)) {
            walk(v, &path)?;
            continue;
        }
        return Err(err(
            &path,
            "unknown key: the chart does not read it (a typo, or a key of an older chart); see the values table in README.md",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Value {
        serde_yaml::from_str(s).expect("yaml")
    }

    #[test]
    fn unknown_nested_key_is_named_with_its_path() {
        let e = check_known(&v("chromadb: {data: {storageClas: fast}}")).unwrap_err();
        assert_eq!(e.key, "chromadb.data.storageClas");
    }

    #[test]
    fn free_form_maps_and_global_stay_open() {
        check_known(&v(
            "global: {anything: 1}\ncommonLabels: {a: b}\nchromadb: {extraConfig: {x: {y: 1}}}",
        ))
        .expect("open maps");
    }
}
