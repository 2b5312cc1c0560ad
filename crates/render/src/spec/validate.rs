//! The spec's validation rules: which values a render must refuse, and the key to blame.
//!
//! They hold on every version: a value outside its documented domain is refused even where
//! that version would ignore it, so a values file that renders for one version cannot fail
//! for another because of a typo.

use serde_yaml::Value;

use super::SpecError;
use super::keys::check_known;
use super::values::{
    check_types, err, lookup, parse_bool, parse_header, parse_int, parse_str, show,
};
use crate::version::ChromaVersion;

/// Where the chart's rendering changes with the Chroma version: auth kinds (0.4.7, 0.4.8),
/// OpenTelemetry settings (0.4.15), uvicorn flags (0.4.16), the image entrypoint (0.4.23), auth settings (0.5.0), the token
/// header form (0.5.1), the API generation (0.5.16), the Rust server (1.0.0) and the CORS
/// wildcard (1.0.11). Releases between the same two floors are one era to the chart.
pub const ERA_FLOORS: [ChromaVersion; 10] = [
    ChromaVersion::new(0, 4, 7),
    ChromaVersion::new(0, 4, 8),
    ChromaVersion::new(0, 4, 15),
    ChromaVersion::new(0, 4, 16),
    ChromaVersion::new(0, 4, 23),
    ChromaVersion::new(0, 5, 0),
    ChromaVersion::new(0, 5, 1),
    ChromaVersion::new(0, 5, 16),
    ChromaVersion::new(1, 0, 0),
    ChromaVersion::new(1, 0, 11),
];

/// The first floor that lies between `a` and `b`, if they are of different eras.
pub fn era_boundary(a: &ChromaVersion, b: &ChromaVersion) -> Option<ChromaVersion> {
    ERA_FLOORS.into_iter().find(|f| (a >= f) != (b >= f))
}

/// The release `MAJOR.MINOR.PATCH` a versioned image tag starts with (`0.6.3`, `v1.5.0`,
/// `1.0.0-amd64`); `None` for other tags (`latest`, a branch name) or an unset tag.
pub fn tag_release(values: &Value) -> Option<String> {
    let tag = match lookup(values, "image.tag")? {
        Value::String(s) => s.clone(),
        other => show(other),
    };
    let tag = tag.strip_prefix('v').unwrap_or(&tag);
    let mut parts = Vec::new();
    let mut rest = tag;
    for i in 0..3 {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return None;
        }
        parts.push(&rest[..digits]);
        rest = &rest[digits..];
        if i < 2 {
            rest = rest.strip_prefix('.')?;
        }
    }
    Some(parts.join("."))
}

/// The Chroma version the chart deploys: `chromadb.apiVersion`, else the release a versioned
/// `image.tag` names, else `app_version` (the chart's appVersion).
pub fn deployed_version(
    values: &Value,
    app_version: &ChromaVersion,
) -> Result<ChromaVersion, SpecError> {
    if let Some(raw) = lookup(values, "chromadb.apiVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        return raw.parse().map_err(|e| {
            err(
                "chromadb.apiVersion",
                format!("must be a Chroma release 0.4.3 or later: {e}"),
            )
        });
    }
    match tag_release(values) {
        Some(t) => t.parse().map_err(|e| {
            err(
                "image.tag",
                format!("names a release the chart cannot configure: {e}"),
            )
        }),
        None => Ok(app_version.clone()),
    }
}

/// The first wildcard-safe release of the Rust server: 1.0.0–1.0.10 panic at start on a
/// `"*"` origin (`AllowOrigin::list`); 1.0.11 special-cases it.
pub const CORS_WILDCARD_FIXED: ChromaVersion = ChromaVersion::new(1, 0, 11);

pub(crate) fn validate(values: &Value, version: &ChromaVersion) -> Result<(), SpecError> {
    check_known(values)?;
    check_types(values)?;

    if let Some(tag) = tag_release(values) {
        let tag: ChromaVersion = tag.parse().map_err(|e| {
            err(
                "image.tag",
                format!("names a release the chart cannot configure: {e}"),
            )
        })?;
        if let Some(floor) = era_boundary(&tag, version) {
            return Err(err(
                "image.tag",
                format!(
                    "is Chroma {tag} but chromadb.apiVersion is {version}, and the chart configures releases before and from {floor} differently"
                ),
            ));
        }
    }

    // The chart's own collector (metrics.enabled) turns the open_telemetry block on as well.
    if lookup(values, "chromadb.telemetry.filters")
        .and_then(Value::as_sequence)
        .is_some_and(|f| !f.is_empty())
        && !parse_bool(values, "chromadb.telemetry.enabled", false)?
        && !parse_bool(values, "metrics.enabled", false)?
    {
        return Err(err(
            "chromadb.telemetry.filters",
            "trace filters go only into an enabled open_telemetry block; set metrics.enabled, or chromadb.telemetry.enabled and chromadb.telemetry.endpoint",
        ));
    }
    super::tls::validate(values, version)?;
    if !parse_str(values, "chromadb.auth.token.value", "")?.is_empty() {
        return Err(err(
            "chromadb.auth.token.value",
            "fixed credentials in values are refused; use chromadb.auth.existingSecret",
        ));
    }
    for k in ["username", "password"] {
        let key = format!("chromadb.auth.basic.{k}");
        if !parse_str(values, &key, "")?.is_empty() {
            return Err(err(
                &key,
                "fixed credentials in values are refused; use chromadb.auth.existingSecret",
            ));
        }
    }
    // The knobs' own rules (labels are checked where they are merged, in `knobs`).
    super::knobs::object_labels(values, &Default::default())?;
    for key in [
        "podLabels",
        "backup.podLabels",
        "tests.podLabels",
        "metrics.collector.podLabels",
        "metrics.serviceMonitor.labels",
        "metrics.dashboard.labels",
    ] {
        super::knobs::component_pod_labels(values, &Default::default(), key)?;
    }
    if let Some(g) = parse_int(values, "terminationGracePeriodSeconds")?
        && g < 0
    {
        return Err(err(
            "terminationGracePeriodSeconds",
            format!("must be 0 or more seconds, got {g}"),
        ));
    }
    for kind in ["startupProbe", "readinessProbe", "livenessProbe"] {
        parse_bool(values, &format!("{kind}.enabled"), true)?;
        for field in [
            "initialDelaySeconds",
            "periodSeconds",
            "timeoutSeconds",
            "failureThreshold",
        ] {
            let key = format!("{kind}.{field}");
            let min = if field == "initialDelaySeconds" { 0 } else { 1 };
            if let Some(n) = parse_int(values, &key)?
                && n < min
            {
                return Err(err(&key, format!("must be {min} or more, got {n}")));
            }
        }
    }
    if parse_bool(values, "podDisruptionBudget.enabled", false)? {
        let budget = super::knobs::disruption_budget(values)?.unwrap_or_default();
        if budget.min_available.is_some() == budget.max_unavailable.is_some() {
            return Err(err(
                "podDisruptionBudget.minAvailable",
                "set exactly one of podDisruptionBudget.minAvailable and podDisruptionBudget.maxUnavailable",
            ));
        }
    }
    if super::knobs::network_policy_peers(values)?.is_some_and(|p| p.is_empty()) {
        return Err(err(
            "networkPolicy.allowedFrom",
            "must list at least one peer when networkPolicy.enabled is true",
        ));
    }
    let svc_type = parse_str(values, "service.type", "ClusterIP")?;
    if let Some(p) = parse_int(values, "service.nodePort")? {
        if !(1..=65535).contains(&p) {
            return Err(err(
                "service.nodePort",
                format!("must be a port number, got {p}"),
            ));
        }
        if !matches!(svc_type, "NodePort" | "LoadBalancer") {
            return Err(err(
                "service.nodePort",
                format!("only NodePort and LoadBalancer Services have node ports, not {svc_type}"),
            ));
        }
    }
    if svc_type != "LoadBalancer" {
        if !parse_str(values, "service.loadBalancerIP", "")?.is_empty() {
            return Err(err(
                "service.loadBalancerIP",
                format!("only a LoadBalancer Service takes it, not {svc_type}"),
            ));
        }
        if lookup(values, "service.loadBalancerSourceRanges")
            .and_then(Value::as_sequence)
            .is_some_and(|r| !r.is_empty())
        {
            return Err(err(
                "service.loadBalancerSourceRanges",
                format!("only a LoadBalancer Service takes them, not {svc_type}"),
            ));
        }
    }
    if non_empty_map(values, "serviceAccount.annotations")
        && !parse_bool(values, "serviceAccount.create", true)?
    {
        return Err(err(
            "serviceAccount.annotations",
            "they go on the ServiceAccount the chart creates, and serviceAccount.create is false",
        ));
    }
    if parse_bool(values, "tls.certManager.enabled", false)?
        && !parse_bool(values, "tls.enabled", false)?
    {
        return Err(err(
            "tls.certManager.enabled",
            "cert-manager would issue a certificate nothing serves: tls.enabled is false",
        ));
    }
    volume(values, "chromadb.data", "volumeSize", "1Gi")?;
    volume(values, "backup.storage.pvc", "size", "5Gi")?;
    for field in ["interval", "scrapeTimeout"] {
        let key = format!("metrics.serviceMonitor.{field}");
        let d = parse_str(values, &key, "")?;
        if !d.is_empty() && !is_prometheus_duration(d) {
            return Err(err(
                &key,
                format!("must be a Prometheus duration such as 30s, 1m or 1m30s, got {d:?}"),
            ));
        }
    }
    let policy = parse_str(values, "service.externalTrafficPolicy", "")?;
    if !matches!(policy, "" | "Cluster" | "Local") {
        return Err(err(
            "service.externalTrafficPolicy",
            format!("must be Cluster or Local, got {policy:?}"),
        ));
    }

    if let Some(raw) = lookup(values, "chromadb.apiVersion").and_then(Value::as_str) {
        raw.parse::<ChromaVersion>().map_err(|e| {
            err(
                "chromadb.apiVersion",
                format!("must be a Chroma release 0.4.3 or later: {e}"),
            )
        })?;
    }

    let dir = parse_str(values, "chromadb.persistDirectory", "/data")?;
    if !dir.starts_with('/') {
        return Err(err(
            "chromadb.persistDirectory",
            format!("must be an absolute path, got {dir:?}"),
        ));
    }

    if let Some(p) = parse_int(values, "chromadb.serverHttpPort")?
        && !(1..=65535).contains(&p)
    {
        return Err(err(
            "chromadb.serverHttpPort",
            format!("must be a port number 1-65535, got {p}"),
        ));
    }
    if let Some(n) = parse_int(values, "chromadb.maxPayloadSizeBytes")?
        && n < 1
    {
        return Err(err(
            "chromadb.maxPayloadSizeBytes",
            format!("must be a positive number of bytes, got {n}"),
        ));
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
        return Err(err(
            "chromadb.telemetry.endpoint",
            "must be set when chromadb.telemetry.enabled is true",
        ));
    }
    let endpoint = parse_str(values, "chromadb.telemetry.endpoint", "")?;
    if !endpoint.is_empty() && !is_otlp_url(endpoint) {
        return Err(err(
            "chromadb.telemetry.endpoint",
            format!(
                "must be an http:// or https:// URL of an OTLP/gRPC collector such as http://otel-collector:4317, got {endpoint:?}"
            ),
        ));
    }
    if parse_bool(values, "metrics.enabled", false)?
        && *version < crate::version::OTEL_SETTINGS_FLOOR
    {
        return Err(err(
            "metrics.enabled",
            format!(
                "Chroma {version} has no OpenTelemetry (0.4.15 and later do), so nothing would feed the collector; use 0.4.15 or later, or set metrics.enabled=false"
            ),
        ));
    }
    let mode = parse_str(values, "metrics.serviceMonitor.mode", "auto")?;
    if !matches!(mode, "auto" | "force" | "disabled") {
        return Err(err(
            "metrics.serviceMonitor.mode",
            format!("must be auto, force or disabled, got {mode:?}"),
        ));
    }
    if let Some(p) = parse_int(values, "metrics.port")?
        && (!(1..=65535).contains(&p) || p == 4317 || p == 13133)
    {
        return Err(err(
            "metrics.port",
            format!(
                "must be a port from 1 to 65535 other than 4317 (OTLP) and 13133 (health), got {p}"
            ),
        ));
    }
    let granularity = parse_str(
        values,
        "chromadb.telemetry.granularity",
        super::DEFAULT_OTEL_GRANULARITY,
    )?;
    if !super::OTEL_GRANULARITIES.contains(&granularity) {
        return Err(err(
            "chromadb.telemetry.granularity",
            format!(
                "must be one of {} (disable telemetry with chromadb.telemetry.enabled=false), got {granularity:?}",
                super::OTEL_GRANULARITIES.join(", ")
            ),
        ));
    }

    for (key, dedicated) in [
        ("port", "chromadb.serverHttpPort"),
        ("listen_address", "chromadb.serverHost"),
    ] {
        if lookup(values, &format!("chromadb.extraConfig.{key}")).is_some() {
            return Err(err(
                &format!("chromadb.extraConfig.{key}"),
                format!("may not be overridden here; use {dedicated}"),
            ));
        }
    }

    let header = parse_str(values, "chromadb.auth.token.headerType", "Authorization")?;
    if parse_header(header).is_none() {
        return Err(err(
            "chromadb.auth.token.headerType",
            format!(
                "must be Authorization, X-Chroma-Token or X_CHROMA_TOKEN (any case), got {header:?}"
            ),
        ));
    }
    let auth_type = parse_str(values, "chromadb.auth.type", "token")?;
    if !matches!(auth_type, "token" | "basic") {
        return Err(err(
            "chromadb.auth.type",
            format!("must be token or basic, got {auth_type:?}"),
        ));
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
            return Err(err(
                "chromadb.corsAllowOrigins",
                "every origin must be a string",
            ));
        }
        let wildcard = items.iter().any(|v| v.as_str() == Some("*"));
        if wildcard && version.is_rust_server() && *version < CORS_WILDCARD_FIXED {
            return Err(err(
                "chromadb.corsAllowOrigins",
                format!(
                    "a \"*\" wildcard makes Chroma {version} panic at start; list the origins, or use 1.0.11 or later"
                ),
            ));
        }
    }
    Ok(())
}

/// `http(s)://HOST[:PORT][/PATH]` with a non-empty host and no whitespace: what both eras'
/// gRPC exporters accept (the scheme picks plaintext or TLS; a bare `host:4317` is not a URI
/// to them).
pub fn is_otlp_url(s: &str) -> bool {
    let Some(rest) = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit_once(':').map_or(authority, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() {
            h
        } else {
            ""
        }
    });
    !host.is_empty() && !s.chars().any(char::is_whitespace) && !authority.contains('@')
}

fn non_empty_map(values: &Value, key: &str) -> bool {
    lookup(values, key)
        .and_then(Value::as_mapping)
        .is_some_and(|m| !m.is_empty())
}

/// The access modes Kubernetes knows for a claim.
pub const ACCESS_MODES: [&str; 4] = [
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
];

/// A claim's size (a Kubernetes quantity) and access modes (one, or a list), under `prefix`.
fn volume(
    values: &Value,
    prefix: &str,
    size_field: &str,
    default_size: &str,
) -> Result<(), SpecError> {
    let size_key = format!("{prefix}.{size_field}");
    let size = match lookup(values, &size_key) {
        None => default_size.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => show(other),
    };
    if !is_quantity(&size) {
        return Err(err(
            &size_key,
            format!("must be a Kubernetes quantity such as 512Mi, 10Gi or 1Ti, got {size:?}"),
        ));
    }
    let modes_key = format!("{prefix}.accessModes");
    let modes: Vec<String> = match lookup(values, &modes_key) {
        None => vec!["ReadWriteOnce".into()],
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| show(i), str::to_string))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(other) => vec![show(other)],
    };
    if modes.is_empty() {
        return Err(err(&modes_key, "must name at least one access mode"));
    }
    if let Some(bad) = modes.iter().find(|m| !ACCESS_MODES.contains(&m.as_str())) {
        return Err(err(
            &modes_key,
            format!(
                "{bad} is not an access mode; use one of {}",
                ACCESS_MODES.join(", ")
            ),
        ));
    }
    Ok(())
}

/// `<number><suffix>` as the API server parses a resource quantity: a decimal number, then a
/// binary (Ki…Ei) or decimal (k…E) suffix or an exponent.
pub fn is_quantity(s: &str) -> bool {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let number_ok = match num.split_once('.') {
        None => !num.is_empty(),
        Some((whole, frac)) => !frac.contains('.') && (!whole.is_empty() || !frac.is_empty()),
    };
    let suffix_ok = matches!(
        suffix,
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "k" | "M" | "G" | "T" | "P" | "E"
    ) || suffix
        .strip_prefix(['e', 'E'])
        .is_some_and(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_digit()));
    number_ok && suffix_ok
}

/// A Prometheus duration (what the ServiceMonitor CRD accepts): `0`, or units in the order
/// y w d h m s ms, each at most once.
pub fn is_prometheus_duration(s: &str) -> bool {
    if s == "0" {
        return true;
    }
    let units = ["y", "w", "d", "h", "m", "s", "ms"];
    let mut rest = s;
    let mut next = 0;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        // `ms` before `m`, so "5ms" is not read as minutes followed by "s".
        let Some(i) = (next..units.len())
            .rev()
            .find(|&i| rest.starts_with(units[i]) && !(units[i] == "m" && rest.starts_with("ms")))
        else {
            return false;
        };
        rest = &rest[units[i].len()..];
        next = i + 1;
    }
    !s.is_empty()
}

/// An IANA zone of the tz database's areas, or UTC/GMT (what `backup.timeZone` accepts; legacy
/// aliases such as `US/Eastern` are left out).
pub fn is_iana_zone(s: &str) -> bool {
    const AREAS: [&str; 10] = [
        "Africa",
        "America",
        "Antarctica",
        "Arctic",
        "Asia",
        "Atlantic",
        "Australia",
        "Europe",
        "Indian",
        "Pacific",
    ];
    if matches!(s, "UTC" | "GMT") {
        return true;
    }
    let part = |p: &str, first_alpha: bool| {
        !p.is_empty()
            && (!first_alpha || p.starts_with(|c: char| c.is_ascii_alphabetic()))
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-'))
    };
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        ["Etc", zone] => part(zone, false) && !zone.contains('_'),
        [area, rest @ ..] if AREAS.contains(area) && (1..=2).contains(&rest.len()) => {
            rest.iter().all(|p| part(p, true))
        }
        _ => false,
    }
}

#[cfg(test)]
mod format_tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::binary_suffix("10Gi", true)]
    #[case::decimal_suffix("500M", true)]
    #[case::fraction("1.5Gi", true)]
    #[case::plain_bytes("1073741824", true)]
    #[case::exponent("1e9", true)]
    #[case::word("abc", false)]
    #[case::lowercase_binary("10gi", false)]
    #[case::empty("", false)]
    #[case::unit_only("Gi", false)]
    fn quantities(#[case] s: &str, #[case] ok: bool) {
        assert_eq!(is_quantity(s), ok, "{s:?}");
    }

    #[rstest]
    #[case::seconds("30s", true)]
    #[case::minutes_and_seconds("1m30s", true)]
    #[case::milliseconds("500ms", true)]
    #[case::zero("0", true)]
    #[case::word("abc", false)]
    #[case::no_unit("30", false)]
    #[case::units_out_of_order("30s1m", false)]
    #[case::go_style_fraction("1.5s", false)]
    fn durations(#[case] s: &str, #[case] ok: bool) {
        assert_eq!(is_prometheus_duration(s), ok, "{s:?}");
    }

    #[rstest]
    #[case::city("Europe/Berlin", true)]
    #[case::three_parts("America/Argentina/Buenos_Aires", true)]
    #[case::etc_offset("Etc/GMT+2", true)]
    #[case::utc("UTC", true)]
    #[case::not_an_area("Mars/Base", false)]
    #[case::legacy_alias("US/Eastern", false)]
    #[case::offset_only("+02:00", false)]
    #[case::area_only("Europe", false)]
    fn zones(#[case] s: &str, #[case] ok: bool) {
        assert_eq!(is_iana_zone(s), ok, "{s:?}");
    }
}
