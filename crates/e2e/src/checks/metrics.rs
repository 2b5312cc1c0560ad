//! The `metrics` check (`metrics.enabled`, 0.4.15 and later): Chroma → the chart's
//! OpenTelemetry Collector → Prometheus, end to end.
//!
//! The backend runs the collector Deployment as rendered (process backend: the collector built
//! from Go modules in the contrib image's place, see process/collector.rs). The check starts
//! Prometheus (built from its Go module) with a scrape config translated from the rendered
//! ServiceMonitor the way prometheus-operator generates one ([`scrape_config`]: the endpoint's
//! port name resolved through the selected Service to the pod's container port, its path,
//! interval, timeout, the operator's target labels, then the user's relabelings and metric
//! relabelings), runs a known workload, and queries Prometheus' HTTP API:
//! - per endpoint: exactly N `add` requests (2xx) and M refused requests (4xx/5xx) in the
//!   spanmetrics counters, and N observations in the `add` latency histogram;
//! - every panel of the rendered Grafana dashboard: each query (Grafana's `$service` and
//!   `$__rate_interval` filled in) returns series carrying the labels its legend names;
//! - with `chromadb.telemetry.endpoint` set too, the harness's OTLP receiver gets the spans
//!   the collector forwards.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use render::{Expected, Rendered, Telemetry};
use serde_json::{Value, json};

use super::Ctx;
use crate::backend::Backend;
use crate::otlp::Receiver;

/// Where the built Prometheus is: set by `cargo xtask e2e` (xtask/src/obstools.rs).
pub const PROMETHEUS_ENV: &str = "CHROMADB_PROMETHEUS_BIN";
/// Draws the run's request rate and latency per endpoint into this SVG when set.
pub const PLOT_ENV: &str = "CHROMADB_METRICS_PLOT";

/// Adds in the workload, in two rounds (a counter's first sample has no rate: the second
/// round is what the dashboard's `rate()` panels see).
const ADDS: [usize; 2] = [3, 5];
/// Refused requests (a `get` of a collection that does not exist), per round.
const REFUSED: [usize; 2] = [1, 2];
/// Spans take up to 5 s to leave Chroma, the spanmetrics connector flushes every 15 s, then a
/// scrape interval: this is generous.
const SETTLE: Duration = Duration::from_secs(150);
/// What Grafana's `$__rate_interval` is with a datasource scrape interval of 15 s (its
/// default): max(4 × 15 s, interval + 15 s) = 1 m.
const RATE_INTERVAL: &str = "1m";

/// The rendered objects the check reads (kept as JSON where the render does not type them).
#[derive(Debug, Clone, Default)]
pub struct Objects {
    pub service_monitor: Option<Value>,
    pub dashboard: Option<(String, String)>,
    pub deployment: Option<Deployment>,
    pub services: Vec<Service>,
}

impl Objects {
    pub fn from_render(rendered: &Rendered) -> Objects {
        let doc = |kind: &str| {
            rendered
                .documents
                .iter()
                .find(|d| d["kind"] == kind)
                .cloned()
        };
        let dashboard = rendered.configmaps().find_map(|cm| {
            let data = cm.data.as_ref()?;
            let (_, json) = data.iter().find(|(k, _)| k.ends_with(".json"))?;
            Some((cm.metadata.name.clone().unwrap_or_default(), json.clone()))
        });
        Objects {
            service_monitor: doc("ServiceMonitor"),
            dashboard,
            deployment: doc("Deployment").and_then(|d| serde_json::from_value(d).ok()),
            services: rendered.services().cloned().collect(),
        }
    }
}

pub fn applies(e: &Expected) -> Result<(), String> {
    let Some(m) = &e.metrics else {
        return Err("metrics.enabled is off in this deployment's values: no collector, ServiceMonitor or dashboard".into());
    };
    if matches!(m.service_monitor, render::ServiceMonitorMode::Disabled) {
        return Err(
            "metrics.serviceMonitor.mode is disabled: there is no ServiceMonitor to scrape by"
                .into(),
        );
    }
    Ok(())
}

fn camel_to_snake(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A prometheus-operator `RelabelConfig` as Prometheus writes it (`sourceLabels` →
/// `source_labels`, …); an unknown field is refused, naming it.
pub fn relabel(rc: &Value, at: &str) -> Result<Value, String> {
    const FIELDS: [&str; 7] = [
        "sourceLabels",
        "separator",
        "targetLabel",
        "regex",
        "modulus",
        "replacement",
        "action",
    ];
    let obj = rc
        .as_object()
        .ok_or_else(|| format!("{at}: a relabeling is not a mapping"))?;
    let mut out = serde_json::Map::new();
    for (k, v) in obj {
        if !FIELDS.contains(&k.as_str()) {
            return Err(format!(
                "{at}: `{k}` is not a RelabelConfig field (valid: {})",
                FIELDS.join(", ")
            ));
        }
        let v = if k == "action" {
            Value::String(v.as_str().unwrap_or_default().to_ascii_lowercase())
        } else {
            v.clone()
        };
        out.insert(camel_to_snake(k), v);
    }
    Ok(Value::Object(out))
}

/// The scrape config prometheus-operator generates for the ServiceMonitor's first endpoint,
/// with the pod's address in place of its Kubernetes service discovery: the target's
/// `__meta_kubernetes_*` labels as the discovery would set them, the operator's relabelings
/// to `namespace`/`service`/`pod`/`container`/`endpoint`/`job`, then the user's.
pub fn scrape_config(
    sm: &Value,
    services: &[Service],
    d: &Deployment,
    pod_ip: IpAddr,
) -> Result<(Value, String), String> {
    let ns = sm["metadata"]["namespace"].as_str().unwrap_or("default");
    let name = sm["metadata"]["name"]
        .as_str()
        .ok_or("the ServiceMonitor has no name")?;
    let ep = sm["spec"]["endpoints"]
        .get(0)
        .ok_or_else(|| format!("ServiceMonitor {name} has no endpoints"))?;
    let port_name = ep["port"]
        .as_str()
        .ok_or_else(|| format!("ServiceMonitor {name}: endpoints[0] names no port"))?;
    let selector: BTreeMap<String, String> =
        serde_json::from_value(sm["spec"]["selector"]["matchLabels"].clone()).unwrap_or_default();
    let namespaces: Vec<String> =
        serde_json::from_value(sm["spec"]["namespaceSelector"]["matchNames"].clone())
            .unwrap_or_else(|_| vec![ns.to_string()]);
    let svc = services
        .iter()
        .find(|s| {
            let labels = s.metadata.labels.clone().unwrap_or_default();
            namespaces
                .iter()
                .any(|n| Some(n.as_str()) == s.metadata.namespace.as_deref().or(Some(ns)))
                && !selector.is_empty()
                && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .ok_or_else(|| {
            format!("ServiceMonitor {name}: no rendered Service matches its selector {selector:?}")
        })?;
    let svc_name = svc.metadata.name.clone().unwrap_or_default();
    let sp = svc
        .spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(port_name))
        .ok_or_else(|| {
            let have: Vec<String> = svc.spec.iter().flat_map(|s| s.ports.iter().flatten()).filter_map(|p| p.name.clone()).collect();
            format!("ServiceMonitor {name} scrapes port `{port_name}`, but Service {svc_name} has no port of that name (it has: {}): Prometheus would find no target", have.join(", "))
        })?;
    let pod = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .ok_or("the collector Deployment has no pod spec")?;
    let target = sp
        .target_port
        .clone()
        .unwrap_or(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(sp.port));
    let container_port = crate::workload::resolve_port(&pod.containers, &target).map_err(|e| {
        format!(
            "Service {svc_name} port `{port_name}`: {}",
            crate::text::chain(&e)
        )
    })?;
    let container = pod
        .containers
        .iter()
        .find(|c| {
            c.ports
                .iter()
                .flatten()
                .any(|p| p.container_port == i32::from(container_port))
        })
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let pod_name = format!("{}-0", d.metadata.name.clone().unwrap_or_default());
    let meta = json!({
        "__meta_kubernetes_namespace": ns,
        "__meta_kubernetes_service_name": svc_name,
        "__meta_kubernetes_pod_name": pod_name,
        "__meta_kubernetes_pod_container_name": container,
        "__meta_kubernetes_endpoint_port_name": port_name,
    });
    // The operator's own relabelings (its generated config for a ServiceMonitor endpoint).
    let mut relabels = vec![
        json!({"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"}),
        json!({"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"}),
        json!({"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"}),
        json!({"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"}),
        json!({"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job", "replacement": "${1}"}),
        json!({"target_label": "endpoint", "replacement": port_name}),
    ];
    for (i, r) in ep["relabelings"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        relabels.push(relabel(
            r,
            &format!("ServiceMonitor {name} endpoints[0].relabelings[{i}]"),
        )?);
    }
    let mut metric_relabels = Vec::new();
    for (i, r) in ep["metricRelabelings"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        metric_relabels.push(relabel(
            r,
            &format!("ServiceMonitor {name} endpoints[0].metricRelabelings[{i}]"),
        )?);
    }
    let mut job = json!({
        "job_name": format!("serviceMonitor/{ns}/{name}/0"),
        "honor_labels": ep["honorLabels"].as_bool().unwrap_or(false),
        "scrape_interval": ep["interval"].as_str().unwrap_or("30s"),
        "metrics_path": ep["path"].as_str().unwrap_or("/metrics"),
        "scheme": ep["scheme"].as_str().unwrap_or("http"),
        "static_configs": [{"targets": [std::net::SocketAddr::new(pod_ip, container_port).to_string()], "labels": meta}],
        "relabel_configs": relabels,
    });
    if let Some(t) = ep["scrapeTimeout"].as_str() {
        job["scrape_timeout"] = json!(t);
    }
    if !metric_relabels.is_empty() {
        job["metric_relabel_configs"] = json!(metric_relabels);
    }
    let summary = format!(
        "port `{port_name}` → Service {svc_name} → container port {container_port}, path {}, every {}",
        job["metrics_path"].as_str().unwrap_or(""),
        job["scrape_interval"].as_str().unwrap_or("")
    );
    Ok((
        json!({"global": {"evaluation_interval": "5s"}, "scrape_configs": [job]}),
        summary,
    ))
}

/// One dashboard query: the panel it belongs to, its PromQL and the labels its legend uses.
#[derive(Debug, Clone, PartialEq)]
pub struct PanelQuery {
    pub panel: String,
    pub expr: String,
    pub legend_labels: Vec<String>,
}

/// Every query of every panel (rows' nested panels too).
pub fn panel_queries(dashboard: &str) -> Result<Vec<PanelQuery>, String> {
    let d: Value = serde_json::from_str(dashboard)
        .map_err(|e| format!("the dashboard is not JSON: {}", crate::text::chain(&e)))?;
    let mut panels: Vec<&Value> = d["panels"].as_array().into_iter().flatten().collect();
    let nested: Vec<&Value> = panels
        .iter()
        .flat_map(|p| p["panels"].as_array().into_iter().flatten())
        .collect();
    panels.extend(nested);
    let mut out = Vec::new();
    for p in panels {
        let title = p["title"].as_str().unwrap_or("(untitled)").to_string();
        for t in p["targets"].as_array().into_iter().flatten() {
            let Some(expr) = t["expr"].as_str() else {
                continue;
            };
            let legend = t["legendFormat"].as_str().unwrap_or("");
            let labels = legend
                .split("{{")
                .skip(1)
                .filter_map(|s| s.split("}}").next())
                .map(|s| s.trim().to_string())
                .collect();
            out.push(PanelQuery {
                panel: title.clone(),
                expr: expr.to_string(),
                legend_labels: labels,
            });
        }
    }
    Ok(out)
}

/// Grafana's variables as Grafana would fill them for this release.
pub fn fill_variables(expr: &str, service: &str) -> String {
    expr.replace("$__rate_interval", RATE_INTERVAL)
        .replace("${service}", service)
        .replace("$service", service)
}

/// A running Prometheus; killed and its files removed when dropped.
/// Why the harness's own Prometheus could not be run or asked. Not a verdict on the chart: the
/// cause stays the source until the check's FAIL reason is written from it.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    /// `what` names the file or socket (`a temp dir for Prometheus`, `writing …/prometheus.yml`).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the Prometheus config: {0}")]
    Config(#[source] serde_yaml::Error),
    #[error("building the HTTP client for Prometheus: {0}")]
    Client(#[source] reqwest::Error),
    #[error("Prometheus exited ({status}) at start:\n{log}")]
    Exited {
        status: std::process::ExitStatus,
        log: String,
    },
    #[error("Prometheus not ready after 60 s:\n{log}")]
    NotReady { log: String },
    #[error("GET {path}: {source}")]
    Get {
        path: String,
        #[source]
        source: reqwest::Error,
    },
    /// The url crate's parse error, which reqwest does not re-export by name.
    #[error("GET {path}: {source}")]
    Url {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Prometheus answered, with `status` other than `success`: its own `error` text.
    #[error("GET {path} {params}: {error}")]
    Refused {
        path: String,
        params: String,
        error: String,
    },
    #[error("the plot's time range: {0}")]
    Clock(#[source] std::time::SystemTimeError),
    #[error("encoding the plot's data: {0}")]
    PlotData(#[source] serde_json::Error),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PrometheusError {
    let what = what.into();
    move |source| PrometheusError::Io { what, source }
}

/// The check's FAIL reason when its Prometheus fails: the error and its sources, as a report
/// shows an error ([`crate::text::chain`]).
impl From<PrometheusError> for String {
    fn from(e: PrometheusError) -> String {
        crate::text::chain(&e)
    }
}

struct Prometheus {
    child: tokio::process::Child,
    url: String,
    _dir: tempfile::TempDir,
    log: PathBuf,
    http: reqwest::Client,
}

impl Prometheus {
    async fn start(binary: &Path, config: &Value) -> Result<Prometheus, PrometheusError> {
        let dir = tempfile::Builder::new()
            .prefix("chromadb-e2e-prometheus-")
            .tempdir()
            .map_err(io("a temp dir for Prometheus"))?;
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(
            &cfg,
            serde_yaml::to_string(config).map_err(PrometheusError::Config)?,
        )
        .map_err(io(format!("writing {}", cfg.display())))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(io("a free port for Prometheus on 127.0.0.1"))?
            .port();
        let log = dir.path().join("prometheus.log");
        let out = std::fs::File::create(&log).map_err(io(format!("creating {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(io(format!("opening {} for stderr", log.display())))?;
        let child = tokio::process::Command::new(binary)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(io(format!("starting {}", binary.display())))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(PrometheusError::Client)?;
        let mut p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
            log,
            http,
        };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                return Err(PrometheusError::Exited {
                    status,
                    log: p.log_tail(),
                });
            }
            if p.http
                .get(format!("{}/-/ready", p.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(p);
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(PrometheusError::NotReady { log: p.log_tail() });
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    fn log_tail(&self) -> String {
        crate::process::child::tail(&self.log, 15)
    }

    async fn api(&self, path: &str, params: &[(&str, String)]) -> Result<Value, PrometheusError> {
        let get = |source| PrometheusError::Get {
            path: path.to_string(),
            source,
        };
        let url = reqwest::Url::parse_with_params(
            &format!("{}{path}", self.url),
            params.iter().map(|(k, v)| (*k, v.as_str())),
        )
        .map_err(|e| PrometheusError::Url {
            path: path.to_string(),
            source: Box::new(e),
        })?;
        let resp = self.http.get(url).send().await.map_err(get)?;
        let body: Value = resp.json().await.map_err(get)?;
        if body["status"] != "success" {
            return Err(PrometheusError::Refused {
                path: path.to_string(),
                params: format!("{params:?}"),
                error: body["error"].to_string(),
            });
        }
        Ok(body["data"].clone())
    }

    /// An instant query: (labels, value) per series.
    async fn query(
        &self,
        expr: &str,
    ) -> Result<Vec<(BTreeMap<String, String>, f64)>, PrometheusError> {
        let data = self
            .api("/api/v1/query", &[("query", expr.to_string())])
            .await?;
        Ok(data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let labels = serde_json::from_value(s["metric"].clone()).unwrap_or_default();
                let v = s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (labels, v)
            })
            .collect())
    }

    /// The health of the scrape targets (`up`, last error).
    async fn targets(&self) -> String {
        match self.api("/api/v1/targets", &[]).await {
            Ok(d) => d["activeTargets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    format!(
                        "{} {} {}",
                        t["scrapeUrl"].as_str().unwrap_or("?"),
                        t["health"].as_str().unwrap_or("?"),
                        t["lastError"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            Err(e) => crate::text::chain(&e),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Requests per (method, route, status) from the spanmetrics counters of the server spans.
type Calls = BTreeMap<(String, String, String), f64>;

async fn calls(p: &Prometheus, service: &str) -> Result<Calls, PrometheusError> {
    let q = format!(
        "sum by (http_method, http_route, http_status_code) (traces_span_metrics_calls_total{{service_name=\"{service}\", http_route!=\"\"}})"
    );
    Ok(p.query(&q)
        .await?
        .into_iter()
        .map(|(l, v)| {
            (
                (
                    l.get("http_method").cloned().unwrap_or_default(),
                    l.get("http_route").cloned().unwrap_or_default(),
                    l.get("http_status_code").cloned().unwrap_or_default(),
                ),
                v,
            )
        })
        .collect())
}

/// The add endpoint's requests and the refused ones, from what Prometheus holds.
fn tally(c: &Calls) -> (f64, f64) {
    let adds = c
        .iter()
        .filter(|((m, r, s), _)| m == "POST" && r.ends_with("/add") && s.starts_with('2'))
        .fold(0.0, |sum, (_, v)| sum + v);
    let refused = c
        .iter()
        .filter(|((_, r, s), _)| {
            r.contains("/collections/")
                && !r.ends_with("/add")
                && (s.starts_with('4') || s.starts_with('5'))
        })
        .fold(0.0, |sum, (_, v)| sum + v);
    (adds, refused)
}

/// What the server's spans lack when Prometheus holds none of the workload's requests, in the
/// words docs/chroma-eras.md#telemetry uses for the releases measured so.
fn lacking(c: &Calls) -> Option<&'static str> {
    if c.is_empty() {
        Some("no span of the server carries http.route: it exports no HTTP request spans")
    } else if c.keys().all(|(m, _, s)| m.is_empty() && s.is_empty()) {
        Some("the server's request spans carry no http.method and no http.status_code")
    } else {
        None
    }
}

fn show(c: &Calls) -> String {
    c.iter()
        .map(|((m, r, s), v)| format!("{m} {r} {s}: {v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

pub async fn metrics<B: Backend>(
    ctx: &mut Ctx<'_, B>,
    objects: &Objects,
    otlp: Option<&Receiver>,
) -> Result<String, String> {
    let binary = std::env::var_os(PROMETHEUS_ENV).filter(|p| !p.is_empty()).map(PathBuf::from).ok_or_else(|| {
        format!("no Prometheus to scrape with (${PROMETHEUS_ENV} is unset: `cargo xtask e2e` builds it with `cargo xtask tools --observability` when a deployment runs this check)")
    })?;
    let sm = objects
        .service_monitor
        .as_ref()
        .ok_or("metrics.serviceMonitor asks for a ServiceMonitor, but the chart rendered none")?;
    let d = objects
        .deployment
        .as_ref()
        .ok_or("metrics.enabled, but the chart rendered no collector Deployment")?;
    let d_name = d.metadata.name.clone().unwrap_or_default();
    let pod_ip = ctx.backend.pod_ip(ctx.deployed, &d_name)?;
    let (config, scrape) = scrape_config(sm, &objects.services, d, pod_ip)?;
    let service = match &ctx.expected.telemetry {
        Telemetry::Exported { service_name, .. } => service_name.clone(),
        other => {
            return Err(format!(
                "metrics.enabled, but the spec model says the server exports no spans ({other:?})"
            ));
        }
    };
    let prom = Prometheus::start(&binary, &config).await?;
    let started = std::time::SystemTime::now();

    // The workload: a collection, then rounds of adds and refused requests.
    let name = format!("metrics-{}", crate::random::dns_suffix(6));
    let created = ctx
        .api
        .create_collection(&name, json!({"writer": "metrics"}))
        .await;
    let created = ctx.rec(created);
    let id = chroma_api::client::collection(&created, "create_collection")
        .map_err(|e| crate::text::chain(&e))?
        .id;
    let w = crate::vectors::Workload::new("metrics", 25);
    let mut next = 0;
    let (mut want_adds, mut want_refused) = (0.0, 0.0);
    for round in 0..ADDS.len() {
        for _ in 0..ADDS[round] {
            let a = ctx.api.add(&id, w.add_body(next..next + 1)).await;
            ctx.rec(a)
                .require_2xx("add")
                .map_err(|e| crate::text::chain(&e))?;
            next += 1;
            want_adds += 1.0;
        }
        for i in 0..REFUSED[round] {
            let a = ctx
                .api
                .get_collection(&format!("no-such-collection-{round}-{i}"))
                .await;
            let a = ctx.rec(a);
            if a.status() < 400 {
                return Err(format!(
                    "getting a collection that does not exist answered {}: not a refused request",
                    a.status()
                ));
            }
            want_refused += 1.0;
        }
        // Wait until Prometheus has scraped everything so far.
        let deadline = Instant::now() + SETTLE;
        loop {
            let c = calls(&prom, &service).await?;
            let (adds, refused) = tally(&c);
            if adds == want_adds && refused == want_refused {
                break;
            }
            if adds > want_adds || refused > want_refused || Instant::now() > deadline {
                return Err(format!(
                    "after round {} Prometheus holds {adds} add requests and {refused} refused ones, not {want_adds} and {want_refused}{} (series: {}; targets: {}; collector log: {})",
                    round + 1,
                    lacking(&c).map(|w| format!(": {w}")).unwrap_or_default(),
                    show(&c),
                    prom.targets().await,
                    ctx.backend
                        .logs(ctx.deployed, 5)
                        .await
                        .lines()
                        .last()
                        .unwrap_or("")
                ));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    let c = calls(&prom, &service).await?;
    let hist = format!(
        "sum(traces_span_metrics_duration_milliseconds_count{{service_name=\"{service}\", http_route!=\"\", http_method=\"POST\", http_route=~\".*/add\"}})"
    );
    let observed: f64 = prom.query(&hist).await?.iter().map(|(_, v)| v).sum();
    if observed != want_adds {
        return Err(format!(
            "the add latency histogram counts {observed} observations, not the {want_adds} adds made"
        ));
    }
    let buckets = format!(
        "traces_span_metrics_duration_milliseconds_bucket{{service_name=\"{service}\", http_route!=\"\", http_route=~\".*/add\"}}"
    );
    let les: BTreeSet<String> = prom
        .query(&buckets)
        .await?
        .into_iter()
        .filter_map(|(l, _)| l.get("le").cloned())
        .collect();
    if les.len() < 2 {
        return Err(format!(
            "the add latency histogram has {} buckets ({les:?})",
            les.len()
        ));
    }

    // Every dashboard panel.
    let (dash_name, dash) = objects
        .dashboard
        .as_ref()
        .ok_or("metrics.dashboard.enabled, but the chart rendered no dashboard ConfigMap")?;
    let queries = panel_queries(dash)?;
    if queries.is_empty() {
        return Err(format!(
            "ConfigMap {dash_name}: the dashboard has no panel queries"
        ));
    }
    // A panel shows data when one of its queries returns series; a query of a shown panel
    // that returns nothing (e.g. span status error: no request span of this workload has
    // one) is named in the detail.
    let mut panels: BTreeMap<String, (usize, Vec<String>)> = BTreeMap::new();
    for q in &queries {
        let expr = fill_variables(&q.expr, &service);
        let series = prom
            .query(&expr)
            .await
            .map_err(|e| format!("panel \"{}\": {}", q.panel, crate::text::chain(&e)))?;
        // A value above zero: the second round's requests are inside the rate window.
        let good = series
            .iter()
            .filter(|(l, v)| {
                v.is_finite() && *v > 0.0 && q.legend_labels.iter().all(|k| l.contains_key(k))
            })
            .count();
        let entry = panels.entry(q.panel.clone()).or_default();
        entry.0 += good;
        if good == 0 {
            entry.1.push(format!("`{expr}` returned {} series, none with a value above zero and the legend's labels {:?}", series.len(), q.legend_labels));
        }
    }
    let blank: Vec<String> = panels
        .iter()
        .filter(|(_, (good, _))| *good == 0)
        .map(|(p, (_, why))| format!("panel \"{p}\" shows nothing: {}", why.join("; ")))
        .collect();
    if !blank.is_empty() {
        return Err(format!(
            "dashboard ConfigMap {dash_name}: {}",
            blank.join("; ")
        ));
    }
    let quiet: Vec<String> = panels
        .iter()
        .flat_map(|(p, (_, why))| why.iter().map(move |w| format!("panel \"{p}\": {w}")))
        .collect();
    let by_panel = panels;

    // Forwarding to the user's endpoint (the harness's receiver here).
    let mut forwarded = String::new();
    if let Some(rx) = otlp.filter(|_| {
        ctx.expected
            .metrics
            .as_ref()
            .is_some_and(|m| m.upstream.is_some())
    }) {
        rx.wait_until(Duration::from_secs(30), |s, _| {
            s.iter()
                .any(|s| s.service_name.as_deref() == Some(service.as_str()))
        })
        .await;
        let spans = rx.spans();
        let ours = spans
            .iter()
            .filter(|s| s.service_name.as_deref() == Some(service.as_str()))
            .count();
        if ours == 0 {
            return Err(format!(
                "chromadb.telemetry.endpoint is {}, but the collector forwarded no span from `{service}` there ({} spans arrived)",
                rx.endpoint(),
                spans.len()
            ));
        }
        forwarded = format!(
            "; the collector forwarded {ours} spans from `{service}` to the receiver at {}",
            rx.endpoint()
        );
    }
    if let Some(path) = std::env::var_os(PLOT_ENV) {
        // Two more scrapes, so the range the picture queries ends after the last requests.
        tokio::time::sleep(Duration::from_secs(20)).await;
        plot(
            &prom,
            &service,
            started,
            ctx.expected.version.to_string(),
            Path::new(&path),
        )
        .await?;
    }
    let quiet = if quiet.is_empty() {
        String::new()
    } else {
        format!(" (without data in this workload: {})", quiet.join("; "))
    };
    Ok(format!(
        "Prometheus scraped the collector as ServiceMonitor {} says ({scrape}): {want_adds} adds and {want_refused} refused requests counted exactly ({} series of request spans), {observed} observations in {} latency buckets; every one of the {} dashboard panels returned series with its legend's labels{quiet}{forwarded}",
        sm["metadata"]["name"].as_str().unwrap_or("?"),
        c.len(),
        les.len(),
        by_panel.len(),
    ))
}

/// Appends this run's request rate and p95 latency per endpoint to the plot's data file
/// (`<path>.json`) and redraws the SVG from every run in it.
async fn plot(
    p: &Prometheus,
    service: &str,
    since: std::time::SystemTime,
    version: String,
    path: &Path,
) -> Result<(), PrometheusError> {
    let start = since
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(PrometheusError::Clock)?
        .as_secs_f64();
    let end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(PrometheusError::Clock)?
        .as_secs_f64();
    let range = |q: String| {
        let params = vec![
            ("query", q),
            ("start", format!("{start:.0}")),
            ("end", format!("{end:.0}")),
            ("step", "2".to_string()),
        ];
        async move { p.api("/api/v1/query_range", &params).await }
    };
    let rate = range(format!("sum by (http_route) (rate(traces_span_metrics_calls_total{{service_name=\"{service}\", http_route!=\"\"}}[{RATE_INTERVAL}]))")).await?;
    let p95 = range(format!("histogram_quantile(0.95, sum by (le, http_route) (rate(traces_span_metrics_duration_milliseconds_bucket{{service_name=\"{service}\", http_route!=\"\"}}[{RATE_INTERVAL}])))")).await?;
    let data_path = path.with_extension("json");
    let mut runs: Vec<Value> = std::fs::read_to_string(&data_path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    runs.retain(|r| r["version"] != version.as_str());
    runs.push(
        json!({"version": version, "start": start, "rate": rate["result"], "p95": p95["result"]}),
    );
    std::fs::write(
        &data_path,
        serde_json::to_string_pretty(&runs).map_err(PrometheusError::PlotData)?,
    )
    .map_err(io(format!("writing {}", data_path.display())))?;
    std::fs::write(path, crate::metrics_plot::svg(&runs))
        .map_err(io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn series(rows: &[(&str, &str, &str)]) -> Calls {
        rows.iter()
            .map(|(m, r, s)| ((m.to_string(), r.to_string(), s.to_string()), 3.0))
            .collect()
    }

    // Measured (docs/chroma-eras.md#telemetry): 0.4.15 – 0.4.17 name the route only; 1.2.2 and
    // 1.3.0 export no request span at all.
    #[rstest]
    #[case::no_request_span_at_all(&[], Some("exports no HTTP request spans"))]
    #[case::routes_without_method_or_status(
        &[("", "/api/v1/collections/{collection_id}/add", "")],
        Some("carry no http.method and no http.status_code")
    )]
    #[case::full_request_spans_lack_nothing(
        &[("POST", "/api/v1/collections/{collection_id}/add", "201")],
        None
    )]
    fn a_missing_request_count_names_what_the_spans_lack(
        #[case] rows: &[(&str, &str, &str)],
        #[case] says: Option<&str>,
    ) {
        let got = lacking(&series(rows));
        assert_eq!(got.is_some(), says.is_some(), "{got:?}");
        if let (Some(g), Some(w)) = (got, says) {
            assert!(g.contains(w), "{g}");
        }
    }

    #[test]
    fn nothing_counted_is_zero_not_negative_zero() {
        let (adds, refused) = tally(&series(&[("", "/api/v1/heartbeat", "")]));
        assert_eq!(format!("{adds} {refused}"), "0 0");
    }

    #[rstest]
    #[case::camel_case_fields(json!({"sourceLabels": ["a"], "targetLabel": "b", "action": "Replace"}), json!({"source_labels": ["a"], "target_label": "b", "action": "replace"}))]
    #[case::regex_and_replacement_kept(json!({"regex": "(.*)", "replacement": "$1"}), json!({"regex": "(.*)", "replacement": "$1"}))]
    fn operator_relabelings_become_prometheus_ones(#[case] input: Value, #[case] want: Value) {
        assert_eq!(relabel(&input, "x").unwrap(), want);
    }

    #[test]
    fn an_unknown_relabeling_field_is_named() {
        let err = relabel(
            &json!({"sourcelabels": ["a"]}),
            "ServiceMonitor m endpoints[0].relabelings[0]",
        )
        .unwrap_err();
        assert!(
            err.contains("`sourcelabels`") && err.contains("relabelings[0]"),
            "{err}"
        );
    }

    #[test]
    fn legends_name_the_labels_a_panel_needs() {
        let d = json!({"panels": [{"title": "Rate", "targets": [{"expr": "sum by (a, b) (x)", "legendFormat": "{{a}} {{ b }}"}]}, {"title": "Row", "panels": [{"title": "P", "targets": [{"expr": "y", "legendFormat": "p50"}]}]}]});
        let q = panel_queries(&d.to_string()).unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q[0].legend_labels, ["a", "b"]);
        assert!(q[1].legend_labels.is_empty() && q[1].panel == "P");
    }

    #[test]
    fn grafana_variables_are_filled() {
        assert_eq!(
            fill_variables("rate(x{s=\"$service\"}[$__rate_interval])", "chroma"),
            "rate(x{s=\"chroma\"}[1m])"
        );
    }

    #[test]
    fn the_add_and_refused_tally_reads_routes_and_statuses() {
        let c: Calls = [
            (
                (
                    "POST".into(),
                    "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/add"
                        .into(),
                    "200".into(),
                ),
                3.0,
            ),
            (
                (
                    "POST".into(),
                    "/api/v1/collections/{collection_id}/add".into(),
                    "201".into(),
                ),
                2.0,
            ),
            (
                (
                    "GET".into(),
                    "/api/v1/collections/{collection_name}".into(),
                    "400".into(),
                ),
                1.0,
            ),
            (
                ("GET".into(), "/api/v1/heartbeat".into(), "200".into()),
                9.0,
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(tally(&c), (5.0, 1.0));
    }
}
