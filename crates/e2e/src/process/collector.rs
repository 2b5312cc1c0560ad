//! The chart's OpenTelemetry Collector Deployment (`metrics.enabled`) on the process backend:
//! its pod runs with the collector built from Go modules (`cargo xtask tools --observability`,
//! exactly the components the chart's config uses, at the contrib image's release) standing in
//! for the contrib image — with the rendered args, user, mounts and env, the rendered ConfigMap
//! mounted at its rendered path (bubblewrap), so the config is read exactly as written. A config
//! the collector refuses ends the deploy with the collector's own message.
//!
//! The pod shares the host's network (its rendered listen addresses `0.0.0.0:4317/8889/13133`
//! unchanged), so one collector runs on this machine at a time ([`HOST_PORTS`]); its pod
//! address is 127.0.0.1. Chroma's pod reaches it through its Service name (a pod network whose
//! hosts file and relay stand in for cluster DNS and kube-proxy, see [`service_view`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec, Service};

use super::child::{self, Server};
use super::image::{Launch, LaunchError};
use super::pod::{self, Layout, Sources};
use super::podnet::ServiceView;
use super::security::{self, BWRAP, RunAs};
use crate::backend::{BackendError, Release};
use crate::workload::PortRefError;

/// Where the built collector is: set by `cargo xtask e2e` (xtask/src/obstools.rs).
pub const BIN_ENV: &str = "CHROMADB_OTELCOL_BIN";

/// Why the collector is not run when [`binary`] is `None`.
pub const NOT_BUILT: &str = "no collector build stands in for its image ($CHROMADB_OTELCOL_BIN is unset: `cargo xtask e2e` builds it with `cargo xtask tools --observability` when a deployment runs the metrics check)";

/// What in the rendered collector Deployment or its Services this backend cannot read.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("Deployment {name}: {source}")]
    Deployment {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("Service {service} port {port}: {source}")]
    Port {
        service: String,
        port: i32,
        #[source]
        source: PortRefError,
    },
    #[error("Service {service} port {port} is not a port number")]
    NotAPort { service: String, port: i32 },
    #[error("Deployment {name}: readinessProbe: {source}")]
    Probe {
        name: String,
        #[source]
        source: PortRefError,
    },
}

/// The built collector, when this run has one.
pub fn binary() -> Option<PathBuf> {
    std::env::var_os(BIN_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// The contrib image's ENTRYPOINT and user (its Dockerfile: `ENTRYPOINT ["/otelcol-contrib"]`,
/// `USER 10001`).
pub const IMAGE_ENTRYPOINT: &str = "/otelcol-contrib";
pub const IMAGE_USER: (u32, u32) = (10001, 10001);

/// Collectors listen on the rendered ports of the host's network: one at a time.
static HOST_PORTS: LazyLock<Arc<tokio::sync::Mutex<()>>> =
    LazyLock::new(|| Arc::new(tokio::sync::Mutex::new(())));

/// Whether `image` is the collector distribution this stand-in replaces.
pub fn is_collector_image(image: &str) -> bool {
    let repo = image.split('@').next().unwrap_or(image);
    let repo = match repo.rfind(':') {
        Some(i) if !repo[i..].contains('/') => &repo[..i],
        _ => repo,
    };
    repo.trim_start_matches("docker.io/")
        .trim_start_matches("index.docker.io/")
        .ends_with("otel/opentelemetry-collector-contrib")
}

/// The rendered Deployments (a kind the render keeps as JSON).
pub fn deployments(release: &Release) -> Result<Vec<Deployment>, CollectorError> {
    release
        .rendered
        .documents
        .iter()
        .filter(|d| d["kind"] == "Deployment")
        .map(|d| {
            serde_json::from_value(d.clone()).map_err(|source| CollectorError::Deployment {
                name: d["metadata"]["name"].to_string(),
                source,
            })
        })
        .collect()
}

/// The argv the container runs, by the Kubernetes rules over the image's ENTRYPOINT (its CMD
/// is replaced by the rendered args), with the built collector in the entrypoint's place.
pub fn argv(c: &Container, binary: &str) -> Result<Vec<String>, LaunchError> {
    let mut argv: Vec<String> = match c.command.clone().filter(|v| !v.is_empty()) {
        Some(cmd) => cmd
            .into_iter()
            .chain(c.args.clone().unwrap_or_default())
            .collect(),
        None => std::iter::once(IMAGE_ENTRYPOINT.to_string())
            .chain(c.args.clone().unwrap_or_default())
            .collect(),
    };
    match argv.first().map(String::as_str) {
        Some(IMAGE_ENTRYPOINT | "otelcol-contrib") => argv[0] = binary.to_string(),
        Some(p) => {
            return Err(LaunchError::Unsupported(format!(
                "container `{}` runs `{p}`; the collector stand-in runs only {IMAGE_ENTRYPOINT}",
                c.name
            )));
        }
        None => {
            return Err(LaunchError::Invalid(format!(
                "container `{}` has no command",
                c.name
            )));
        }
    }
    Ok(argv)
}

/// The Deployment's pod running on this host.
pub struct CollectorPod {
    pub deployment: String,
    /// The rendered pod template it runs (a changed one is a rollout).
    pub template: serde_json::Value,
    server: Option<Server>,
    pub log: PathBuf,
    _ports: tokio::sync::OwnedMutexGuard<()>,
}

impl CollectorPod {
    pub fn ip(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }

    pub async fn stop(mut self, grace: Duration) {
        if let Some(s) = self.server.take() {
            let status = s.stop(grace).await;
            super::append(
                &self.log,
                &format!(
                    "--- harness: collector stopped ({}) ---\n",
                    status.map_or("unknown".into(), |s| s.to_string())
                ),
            );
        }
    }
}

/// How the Chroma pod sees the collector's Services: its names answered with the host's end of
/// the pod's link, where the collector (in the host's network) serves its container ports
/// itself; a Service port that differs from its target is relayed there.
pub fn service_view(svc: &Service, pod: &PodSpec) -> Result<ServiceView, CollectorError> {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let mut ports = Vec::new();
    for p in svc.spec.iter().flat_map(|s| s.ports.iter().flatten()) {
        let target = p
            .target_port
            .clone()
            .unwrap_or(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p.port));
        let to = crate::workload::resolve_port(&pod.containers, &target).map_err(|source| {
            CollectorError::Port {
                service: name.clone(),
                port: p.port,
                source,
            }
        })?;
        let port = u16::try_from(p.port).map_err(|_| CollectorError::NotAPort {
            service: name.clone(),
            port: p.port,
        })?;
        // The collector listens on every address of the host's network, the Service address
        // in the Chroma pod's hosts file included: a port it already serves needs no relay.
        if port != to {
            ports.push((port, SocketAddr::from(([127, 0, 0, 1], to))));
        }
    }
    Ok(ServiceView { name, ports })
}

/// The Services that select the Deployment's pod.
pub fn services_of<'a>(release: &'a Release, d: &Deployment) -> Vec<&'a Service> {
    let labels: BTreeMap<String, String> = d
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    release
        .rendered
        .services()
        .filter(|s| {
            let sel = s
                .spec
                .as_ref()
                .and_then(|s| s.selector.clone())
                .unwrap_or_default();
            !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .collect()
}

/// Starts the Deployment's pod under `root` and waits for its readiness probe; the collector's
/// own log is the error when it exits first.
pub async fn start(
    d: &Deployment,
    release: &Release,
    root: &std::path::Path,
    ready_timeout: Duration,
    adjustments: &mut Vec<String>,
) -> Result<CollectorPod, BackendError> {
    let invalid = |reason: String| BackendError::Invalid { reason };
    let name = d.metadata.name.clone().unwrap_or_default();
    let template = d
        .spec
        .as_ref()
        .map(|s| &s.template)
        .ok_or_else(|| invalid(format!("Deployment {name} has no pod template")))?;
    let spec = template
        .spec
        .as_ref()
        .ok_or_else(|| invalid(format!("Deployment {name} has no pod spec")))?;
    let [c] = spec.containers.as_slice() else {
        return Err(BackendError::Unsupported {
            backend: "process",
            reason: format!("Deployment {name}: only a single-container collector pod is modelled"),
        });
    };
    if !c.image.as_deref().is_some_and(is_collector_image) {
        return Err(BackendError::Unsupported {
            backend: "process",
            reason: format!(
                "Deployment {name} runs image {:?}, which has no stand-in (only otel/opentelemetry-collector-contrib)",
                c.image
            ),
        });
    }
    let binary = binary().ok_or_else(|| BackendError::Unsupported {
        backend: "process",
        reason: NOT_BUILT.into(),
    })?;
    if !binary.is_file() {
        return Err(invalid(format!(
            "${BIN_ENV}={} is not a file",
            binary.display()
        )));
    }
    if !std::path::Path::new(BWRAP).is_file() || !nix::unistd::geteuid().is_root() {
        return Err(BackendError::Unsupported { backend: "process", reason: "the collector's pod mounts its ConfigMap at the rendered path, which needs bubblewrap and a harness running as root".into() });
    }
    let ports = HOST_PORTS.clone().lock_owned().await;
    let layout = Layout {
        root: root.join(format!("pod-{name}")),
    };
    for dir in [layout.volumes(), layout.logs()] {
        std::fs::create_dir_all(&dir).map_err(|source| BackendError::Io {
            context: format!("creating {}", dir.display()),
            source,
        })?;
    }
    let sources = Sources::from_release(release).map_err(BackendError::unrunnable)?;
    let mut volume_dirs = BTreeMap::new();
    for v in spec.volumes.iter().flatten() {
        volume_dirs.insert(
            v.name.clone(),
            pod::materialise_volume(&layout, v, &sources).map_err(BackendError::unrunnable)?,
        );
    }
    let user: RunAs = security::run_as(c, spec, IMAGE_USER).map_err(BackendError::unrunnable)?;
    let argv = argv(c, &binary.display().to_string()).map_err(|e| match e {
        LaunchError::Unsupported(m) => BackendError::Unsupported {
            backend: "process",
            reason: m,
        },
        e => BackendError::unrunnable(e),
    })?;
    let (bw, more) = super::proxy::container_root_argv(
        c,
        spec,
        &volume_dirs,
        &user,
        &argv[0],
        argv[1..].iter().cloned(),
    )
    .map_err(BackendError::unrunnable)?;
    // The files a ConfigMap volume holds are readable by any user, as the kubelet writes them.
    for dir in volume_dirs.values() {
        security::open_path(dir).map_err(|source| BackendError::Io {
            context: format!("opening {}", dir.display()),
            source,
        })?;
    }
    security::open_path(&layout.root).map_err(|source| BackendError::Io {
        context: "opening the pod dir".into(),
        source,
    })?;
    adjustments.push(format!("Deployment {name}: the collector built from Go modules ({}) stands in for image {}, run with the rendered args as uid {}", binary.display(), c.image.as_deref().unwrap_or("?"), user.uid));
    adjustments.extend(more);
    adjustments.push(format!("Deployment {name}: its pod shares the host's network (pod address 127.0.0.1, rendered listen addresses)"));
    let mut env: Vec<(String, String)> = vec![(
        "PATH".into(),
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
    )];
    if c.env_from.as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(BackendError::Unsupported {
            backend: "process",
            reason: format!("Deployment {name}: envFrom is not modelled for the collector"),
        });
    }
    for e in c.env.iter().flatten() {
        if e.value_from.is_some() {
            return Err(BackendError::Unsupported {
                backend: "process",
                reason: format!(
                    "Deployment {name}: env from Secrets/ConfigMaps/fields is not modelled for the collector (env `{}`)",
                    e.name
                ),
            });
        }
        env.push((e.name.clone(), e.value.clone().unwrap_or_default()));
    }
    let launch = Launch {
        program: PathBuf::from(BWRAP),
        args: bw,
        env,
        cwd: PathBuf::from("/"),
        container_port: 0,
        adjustments: Vec::new(),
        netns: None,
    };
    let log = layout.logs().join(format!("{}.log", c.name));
    super::append(
        &log,
        &format!(
            "--- harness: start of Deployment {name}'s container {}: {} ---\n",
            c.name,
            argv.join(" ")
        ),
    );
    let as_given = RunAs {
        uid: 0,
        gid: 0,
        groups: vec![],
        fs_group: None,
        read_only_root: false,
    };
    let mut server =
        Server::spawn(&launch, &log, &as_given, &[], &layout.root, None).map_err(|source| {
            BackendError::Io {
                context: format!("starting the collector of Deployment {name}"),
                source,
            }
        })?;

    let probe = c.readiness_probe.as_ref().and_then(|p| p.http_get.as_ref());
    let probe_url = match probe {
        Some(get) => {
            let port = crate::workload::resolve_port(std::slice::from_ref(c), &get.port).map_err(
                |source| {
                    BackendError::unrunnable(CollectorError::Probe {
                        name: name.clone(),
                        source,
                    })
                },
            )?;
            Some(format!(
                "http://127.0.0.1:{port}{}",
                get.path.as_deref().unwrap_or("/")
            ))
        }
        None => None,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| BackendError::step("an HTTP client", e))?;
    let started = Instant::now();
    loop {
        if let Some(status) = server.try_exited() {
            let tail = child::tail(&log, 15);
            return Err(BackendError::Failed {
                what: format!("Deployment {name} (the chart's OpenTelemetry Collector)"),
                detail: format!(
                    "the collector exited ({status}) before its pod became ready:\n{tail}"
                ),
            });
        }
        let ready = match &probe_url {
            Some(url) => client
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()),
            None => started.elapsed() > Duration::from_secs(2),
        };
        if ready {
            break;
        }
        if started.elapsed() > ready_timeout {
            let _ = server.kill().await;
            return Err(BackendError::NotReady {
                waited: started.elapsed(),
                detail: format!(
                    "Deployment {name}: the collector's readinessProbe {probe_url:?} never passed\n{}",
                    child::tail(&log, 15)
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let template = serde_json::to_value(template).unwrap_or_default();
    Ok(CollectorPod {
        deployment: name,
        template,
        server: Some(server),
        log,
        _ports: ports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    #[rstest]
    #[case::docker_hub("docker.io/otel/opentelemetry-collector-contrib:0.115.1", true)]
    #[case::digest_on_a_mirror("mirror.local/otel/opentelemetry-collector-contrib@sha256:00", true)]
    #[case::core_distribution("otel/opentelemetry-collector:0.115.1", false)]
    fn the_contrib_image_is_recognised(#[case] image: &str, #[case] want: bool) {
        assert_eq!(is_collector_image(image), want);
    }

    #[test]
    fn rendered_args_follow_the_built_binary_in_the_entrypoints_place() {
        let c: Container = serde_json::from_value(
            json!({"name": "otel-collector", "args": ["--config=/etc/otelcol/config.yaml"]}),
        )
        .unwrap();
        assert_eq!(
            argv(&c, "/b/otelcol").unwrap(),
            ["/b/otelcol", "--config=/etc/otelcol/config.yaml"]
        );
    }

    #[test]
    fn another_program_is_not_modelled() {
        let c: Container =
            serde_json::from_value(json!({"name": "o", "command": ["sh", "-c", "x"]})).unwrap();
        assert!(matches!(argv(&c, "/b"), Err(LaunchError::Unsupported(m)) if m.contains("`sh`")));
    }
}
