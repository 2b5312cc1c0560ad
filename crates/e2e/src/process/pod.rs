//! What the API server and the kubelet do with the rendered StatefulSet before any process
//! runs: refuse an invalid pod spec, resolve env/envFrom against ConfigMaps and Secrets, and
//! lay out volumes as files. Everything here is pure (no processes) so it is unit-tested.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Container, PodSpec, Service, Volume};

use crate::backend::Release;
use crate::workload::PortError;

/// What the API server or the kubelet refuses in the rendered StatefulSet, its pod template and
/// what the pod refers to, each naming the object and field.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error(
        "Secret `{name}` is rendered by the chart but also exists before install; helm install would refuse to take it over"
    )]
    SecretTakenOver { name: String },
    #[error("StatefulSet {statefulset} has no spec")]
    NoSpec { statefulset: String },
    #[error("StatefulSet {statefulset}: spec.template.spec is missing")]
    NoPodSpec { statefulset: String },
    #[error(
        "StatefulSet {statefulset}: spec.selector.matchLabels {key}={value} does not match the template labels (the API server refuses: selector does not match template labels)"
    )]
    SelectorMismatch {
        statefulset: String,
        key: String,
        value: String,
    },
    #[error("StatefulSet {statefulset}: {source}")]
    Template {
        statefulset: String,
        #[source]
        source: TemplateError,
    },
    #[error(
        "StatefulSet {statefulset} cannot be updated in place: spec.{changed} changed, and the API server forbids updates to any field but {mutable}"
    )]
    Immutable {
        statefulset: String,
        /// The changed fields, `, spec.`-joined.
        changed: String,
        mutable: String,
    },
    #[error("{container}: an envFrom entry names neither a configMapRef nor a secretRef")]
    EnvFromWithoutSource { container: String },
    #[error("{container}: envFrom refers to {kind} `{name}`, which does not exist")]
    EnvFromMissing {
        container: String,
        kind: &'static str,
        name: String,
    },
    /// Boxed: a lookup's error is the largest here.
    #[error(transparent)]
    Env(Box<EnvError>),
    #[error("the chart rendered no StatefulSet")]
    NoStatefulSet,
    #[error("no rendered Service selects the StatefulSet's pod labels")]
    NoService,
    #[error(transparent)]
    Port(#[from] PortError),
    #[error(
        "volume `{volume}`: only configMap, secret, emptyDir and persistentVolumeClaim volumes are emulated by the process backend"
    )]
    VolumeKind { volume: String },
    #[error(
        "volume `{volume}` refers to {kind} `{name}`, which does not exist (the pod would never start)"
    )]
    VolumeSourceMissing {
        volume: String,
        kind: &'static str,
        name: String,
    },
    #[error("volume `{volume}`: item key `{key}` is not in {kind} `{name}`")]
    VolumeItemMissing {
        volume: String,
        key: String,
        kind: &'static str,
        name: String,
    },
    #[error("container `{container}` mounts `{volume}`, which the pod does not declare")]
    UndeclaredMount { container: String, volume: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// What the API server refuses in a pod template (`at` names the container).
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("duplicate container name `{0}`")]
    DuplicateContainer(String),
    #[error("spec.template.spec.volumes: duplicate volume name `{0}`")]
    DuplicateVolume(String),
    #[error("volume `{0}` has more than one source")]
    VolumeSources(String),
    #[error("{at}: an env entry has no name")]
    EnvWithoutName { at: String },
    #[error(
        "{at}: env `{var}` has both value and valueFrom (may not be specified when `value` is not empty)"
    )]
    EnvValueAndFrom { at: String, var: String },
    #[error("{at}: env `{var}`.valueFrom must name exactly one source")]
    EnvSources { at: String, var: String },
    #[error(
        "{at}: volumeMount `{volume}` at {path} refers to no volume or volumeClaimTemplate of that name"
    )]
    MountWithoutVolume {
        at: String,
        volume: String,
        path: String,
    },
    #[error("{at}: mountPath {path} is used by more than one volumeMount")]
    DuplicateMountPath { at: String, path: String },
    #[error(
        "{at}: volumeMount `{volume}` subPath {sub_path:?} must be a relative path without `..`"
    )]
    SubPath {
        at: String,
        volume: String,
        sub_path: String,
    },
    #[error("{at}: containerPort {port} is not a port number")]
    ContainerPort { at: String, port: i32 },
    #[error("{at}: duplicate port name `{name}`")]
    DuplicatePort { at: String, name: String },
}

/// An env var of a container whose `valueFrom` gives no value.
#[derive(Debug, thiserror::Error)]
#[error("{container}: env `{var}`: {source}")]
pub struct EnvError {
    pub container: String,
    pub var: String,
    #[source]
    pub source: LookupError,
}

/// Why an env var's `valueFrom` gives no value.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("refers to {kind} `{name}`, which does not exist")]
    NoObject { kind: &'static str, name: String },
    #[error("refers to key `{key}` of {kind} `{name}`, which has no such key (it has: {has})")]
    NoKey {
        kind: &'static str,
        name: String,
        key: String,
        has: String,
    },
    #[error("fieldRef {0} is not emulated by the process backend")]
    FieldRef(String),
    #[error("resourceFieldRef is not emulated by the process backend")]
    ResourceFieldRef,
}

/// ConfigMaps and Secrets the pod can reference, by name (key → content).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub configmaps: BTreeMap<String, BTreeMap<String, String>>,
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
}

impl Sources {
    /// The rendered objects plus the Secrets that exist before install. A Secret that is both
    /// rendered and pre-existing would make `helm install` refuse to take it over.
    pub fn from_release(release: &Release) -> Result<Sources, PodError> {
        let mut out = Sources::default();
        for cm in release.rendered.configmaps() {
            let name = cm.metadata.name.clone().unwrap_or_default();
            let mut data: BTreeMap<String, String> =
                cm.data.clone().unwrap_or_default().into_iter().collect();
            for (k, v) in cm.binary_data.iter().flatten() {
                data.insert(k.clone(), String::from_utf8_lossy(&v.0).into_owned());
            }
            out.configmaps.insert(name, data);
        }
        for s in release.rendered.secrets() {
            let name = s.metadata.name.clone().unwrap_or_default();
            out.secrets.insert(name, render::objects::secret_data(s));
        }
        for (name, data) in &release.external_secrets {
            if out.secrets.contains_key(name) {
                return Err(PodError::SecretTakenOver { name: name.clone() });
            }
            out.secrets.insert(name.clone(), data.clone());
        }
        Ok(out)
    }
}

/// The StatefulSet's pod spec, after the checks the API server makes when it is applied.
pub fn pod_spec(sts: &StatefulSet) -> Result<&PodSpec, PodError> {
    let name = sts.metadata.name.as_deref().unwrap_or("?");
    let statefulset = || name.to_string();
    let spec = sts.spec.as_ref().ok_or_else(|| PodError::NoSpec {
        statefulset: statefulset(),
    })?;
    let pod = spec
        .template
        .spec
        .as_ref()
        .ok_or_else(|| PodError::NoPodSpec {
            statefulset: statefulset(),
        })?;
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    for (k, v) in spec.selector.match_labels.iter().flatten() {
        if labels.get(k) != Some(v) {
            return Err(PodError::SelectorMismatch {
                statefulset: statefulset(),
                key: k.clone(),
                value: v.clone(),
            });
        }
    }
    validate_pod(pod, &claim_templates(sts)).map_err(|source| PodError::Template {
        statefulset: statefulset(),
        source,
    })?;
    Ok(pod)
}

/// Names of the StatefulSet's volumeClaimTemplates (usable as volume names in mounts).
pub fn claim_templates(sts: &StatefulSet) -> Vec<String> {
    sts.spec
        .iter()
        .flat_map(|s| s.volume_claim_templates.iter().flatten())
        .filter_map(|t| t.metadata.name.clone())
        .collect()
}

/// The storage a volumeClaimTemplate requests (`resources.requests.storage`), as written.
pub fn claim_request(sts: &StatefulSet, template: &str) -> Option<String> {
    sts.spec
        .iter()
        .flat_map(|s| s.volume_claim_templates.iter().flatten())
        .find(|t| t.metadata.name.as_deref() == Some(template))
        .and_then(|t| {
            t.spec
                .as_ref()?
                .resources
                .as_ref()?
                .requests
                .as_ref()?
                .get("storage")
                .map(|q| q.0.clone())
        })
}

/// The StatefulSet spec fields the API server lets an update change; any other difference
/// makes `helm upgrade` fail ("updates to statefulset spec for fields other than …").
const STS_MUTABLE: [&str; 6] = [
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// `Ok` when `new` may replace `old` in place. A renamed StatefulSet is a different object
/// (helm deletes the old one and creates the new), so only a same-named one is compared.
pub fn statefulset_update(old: &StatefulSet, new: &StatefulSet) -> Result<(), PodError> {
    if old.metadata.name != new.metadata.name {
        return Ok(());
    }
    let spec = |s: &StatefulSet| {
        serde_json::to_value(&s.spec)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
    };
    let (a, b) = (spec(old), spec(new));
    let keys: BTreeSet<&String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| !STS_MUTABLE.contains(&k.as_str()))
        .collect();
    let changed: Vec<&str> = keys
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(String::as_str)
        .collect();
    if changed.is_empty() {
        Ok(())
    } else {
        Err(PodError::Immutable {
            statefulset: new.metadata.name.as_deref().unwrap_or("?").to_string(),
            changed: changed.join(", spec."),
            mutable: STS_MUTABLE.join(", "),
        })
    }
}

fn validate_pod(pod: &PodSpec, claims: &[String]) -> Result<(), TemplateError> {
    let mut names = BTreeSet::new();
    let all = pod
        .init_containers
        .iter()
        .flatten()
        .chain(pod.containers.iter());
    for c in all.clone() {
        if !names.insert(c.name.as_str()) {
            return Err(TemplateError::DuplicateContainer(c.name.clone()));
        }
    }
    let mut volumes = BTreeSet::new();
    for v in pod.volumes.iter().flatten() {
        if !volumes.insert(v.name.as_str()) {
            return Err(TemplateError::DuplicateVolume(v.name.clone()));
        }
        let sources = [
            v.config_map.is_some(),
            v.secret.is_some(),
            v.empty_dir.is_some(),
            v.persistent_volume_claim.is_some(),
            v.host_path.is_some(),
            v.projected.is_some(),
            v.downward_api.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err(TemplateError::VolumeSources(v.name.clone()));
        }
    }
    for c in all {
        let at = format!("container `{}`", c.name);
        let mut env_names = BTreeSet::new();
        for e in c.env.iter().flatten() {
            if e.name.is_empty() {
                return Err(TemplateError::EnvWithoutName { at });
            }
            if e.value.as_deref().is_some_and(|v| !v.is_empty()) && e.value_from.is_some() {
                return Err(TemplateError::EnvValueAndFrom {
                    at,
                    var: e.name.clone(),
                });
            }
            if let Some(from) = &e.value_from {
                let n = [
                    from.config_map_key_ref.is_some(),
                    from.secret_key_ref.is_some(),
                    from.field_ref.is_some(),
                    from.resource_field_ref.is_some(),
                ];
                if n.iter().filter(|s| **s).count() != 1 {
                    return Err(TemplateError::EnvSources {
                        at,
                        var: e.name.clone(),
                    });
                }
            }
            env_names.insert(e.name.as_str());
        }
        let mut mount_paths = BTreeSet::new();
        for m in c.volume_mounts.iter().flatten() {
            if !volumes.contains(m.name.as_str()) && !claims.contains(&m.name) {
                return Err(TemplateError::MountWithoutVolume {
                    at,
                    volume: m.name.clone(),
                    path: m.mount_path.clone(),
                });
            }
            if !mount_paths.insert(m.mount_path.as_str()) {
                return Err(TemplateError::DuplicateMountPath {
                    at,
                    path: m.mount_path.clone(),
                });
            }
            if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                let p = Path::new(sub);
                if p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
                    return Err(TemplateError::SubPath {
                        at,
                        volume: m.name.clone(),
                        sub_path: sub.to_string(),
                    });
                }
            }
        }
        let mut ports = BTreeSet::new();
        for p in c.ports.iter().flatten() {
            if !(1..=65535).contains(&p.container_port) {
                return Err(TemplateError::ContainerPort {
                    at,
                    port: p.container_port,
                });
            }
            if let Some(n) = &p.name
                && !ports.insert(n.as_str())
            {
                return Err(TemplateError::DuplicatePort {
                    at,
                    name: n.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Kubernetes' `$(VAR)` expansion: defined names are replaced, unknown references are kept
/// verbatim, `$$` escapes a `$`.
pub fn expand_k8s(input: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if tail.starts_with("$(")
            && let Some(end) = tail.find(')')
        {
            let name = &tail[2..end];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&tail[..=end]),
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Facts about the pod the downward API exposes.
#[derive(Debug, Clone)]
pub struct PodIdentity {
    pub name: String,
    pub namespace: String,
    pub ip: String,
}

/// The container's environment as the kubelet builds it: service links (unless disabled),
/// envFrom in order, then env in order, each `value` `$(VAR)`-expanded against what came
/// before. A reference to a missing ConfigMap/Secret/key is an error naming it.
pub fn resolve_env(
    c: &Container,
    pod: &PodSpec,
    sources: &Sources,
    services: &[Service],
    me: &PodIdentity,
) -> Result<Vec<(String, String)>, PodError> {
    let at = format!("container `{}`", c.name);
    let mut env: Vec<(String, String)> = Vec::new();
    if pod.enable_service_links != Some(false) {
        env.extend(service_link_env(services));
    }
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (kind, name, optional, data) = if let Some(r) = &from.config_map_ref {
            (
                "ConfigMap",
                r.name.clone(),
                r.optional.unwrap_or(false),
                sources.configmaps.get(&r.name),
            )
        } else if let Some(r) = &from.secret_ref {
            (
                "Secret",
                r.name.clone(),
                r.optional.unwrap_or(false),
                sources.secrets.get(&r.name),
            )
        } else {
            return Err(PodError::EnvFromWithoutSource { container: at });
        };
        match data {
            Some(d) => env.extend(d.iter().map(|(k, v)| (format!("{prefix}{k}"), v.clone()))),
            None if optional => {}
            None => {
                return Err(PodError::EnvFromMissing {
                    container: at,
                    kind,
                    name,
                });
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(from) = &e.value_from {
            let looked_up = if let Some(r) = &from.secret_key_ref {
                lookup(
                    "Secret",
                    &r.name,
                    &r.key,
                    r.optional,
                    sources.secrets.get(&r.name),
                )
            } else if let Some(r) = &from.config_map_key_ref {
                lookup(
                    "ConfigMap",
                    &r.name,
                    &r.key,
                    r.optional,
                    sources.configmaps.get(&r.name),
                )
            } else if let Some(f) = &from.field_ref {
                match f.field_path.as_str() {
                    "metadata.name" => Ok(Some(me.name.clone())),
                    "metadata.namespace" => Ok(Some(me.namespace.clone())),
                    "status.podIP" | "status.hostIP" => Ok(Some(me.ip.clone())),
                    other => Err(LookupError::FieldRef(other.to_string())),
                }
            } else {
                Err(LookupError::ResourceFieldRef)
            };
            match looked_up.map_err(|source| {
                PodError::Env(Box::new(EnvError {
                    container: at.clone(),
                    var: e.name.clone(),
                    source,
                }))
            })? {
                Some(v) => v,
                None => continue,
            }
        } else {
            expand_k8s(e.value.as_deref().unwrap_or_default(), &env)
        };
        env.retain(|(k, _)| *k != e.name);
        env.push((e.name.clone(), value));
    }
    Ok(env)
}

fn lookup(
    kind: &'static str,
    name: &str,
    key: &str,
    optional: Option<bool>,
    data: Option<&BTreeMap<String, String>>,
) -> Result<Option<String>, LookupError> {
    let optional = optional.unwrap_or(false);
    match data {
        None if optional => Ok(None),
        None => Err(LookupError::NoObject {
            kind,
            name: name.to_string(),
        }),
        Some(d) => match d.get(key) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(LookupError::NoKey {
                kind,
                name: name.to_string(),
                key: key.to_string(),
                has: d.keys().cloned().collect::<Vec<_>>().join(", "),
            }),
        },
    }
}

/// The Docker-links style variables the kubelet injects for every Service in the namespace
/// unless `enableServiceLinks: false`. They matter: `CHROMA_*` names leak into a 1.x
/// server's config and a `<NAME>_PORT=tcp://…` value can clash with a setting.
fn service_link_env(services: &[Service]) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for s in services {
        let Some(name) = s.metadata.name.as_deref() else {
            continue;
        };
        let Some(spec) = &s.spec else { continue };
        if spec.cluster_ip.as_deref() == Some("None") {
            continue;
        }
        let ip = "10.96.0.10";
        let base = name.to_ascii_uppercase().replace('-', "_");
        let ports = spec.ports.clone().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        env.push((format!("{base}_SERVICE_HOST"), ip.to_string()));
        env.push((format!("{base}_SERVICE_PORT"), first.port.to_string()));
        env.push((format!("{base}_PORT"), format!("tcp://{ip}:{}", first.port)));
        for p in &ports {
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let stem = format!("{base}_PORT_{}_{}", p.port, proto);
            env.push((
                stem.clone(),
                format!("{}://{ip}:{}", proto.to_ascii_lowercase(), p.port),
            ));
            env.push((format!("{stem}_PROTO"), proto.to_ascii_lowercase()));
            env.push((format!("{stem}_PORT"), p.port.to_string()));
            env.push((format!("{stem}_ADDR"), ip.to_string()));
            if let Some(n) = &p.name {
                env.push((
                    format!(
                        "{base}_SERVICE_PORT_{}",
                        n.to_ascii_uppercase().replace('-', "_")
                    ),
                    p.port.to_string(),
                ));
            }
        }
    }
    env
}

/// The Service whose selector picks this pod, and where its API port lands: (Service name,
/// Service port, container port).
pub fn service_target(
    services: &[Service],
    pod_labels: &BTreeMap<String, String>,
    containers: &[Container],
) -> Result<(String, u16, u16), PodError> {
    let svc = services
        .iter()
        .filter(|s| {
            let sel = s
                .spec
                .as_ref()
                .and_then(|sp| sp.selector.clone())
                .unwrap_or_default();
            !sel.is_empty() && sel.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
        })
        .min_by_key(|s| {
            s.spec
                .as_ref()
                .and_then(|sp| sp.cluster_ip.clone())
                .as_deref()
                == Some("None")
        })
        .ok_or(PodError::NoService)?;
    let (port, target) = crate::workload::api_target(svc, containers)?;
    Ok((svc.metadata.name.clone().unwrap_or_default(), port, target))
}

/// Per-deployment directory layout. `fs/` is the container's own filesystem (image content
/// plus mount points), rebuilt on every start like a new container; `volumes/` holds the
/// pod's ConfigMap/Secret/emptyDir volumes, rebuilt on every pod start; `pvc/` holds the
/// claims, which outlive restarts and upgrades.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn fs(&self) -> PathBuf {
        self.root.join("fs")
    }
    pub fn volumes(&self) -> PathBuf {
        self.root.join("volumes")
    }
    pub fn pvc(&self) -> PathBuf {
        self.root.join("pvc")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    /// Where a container path lives on the host.
    /// Where a container path lives on this host, normalised the way a container runtime
    /// resolves a mount point inside the root filesystem: repeated and trailing slashes and
    /// `.` dropped, `..` never climbing above the root.
    pub fn host_path(&self, container_path: &str) -> PathBuf {
        let mut parts: Vec<&str> = Vec::new();
        for part in container_path.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
        parts.iter().fold(self.fs(), |path, p| path.join(p))
    }
}

/// An I/O error with what was being done.
pub fn io(context: String) -> impl FnOnce(std::io::Error) -> PodError {
    move |source| PodError::Io { context, source }
}

fn write_file(path: &Path, content: &str) -> Result<(), PodError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    std::fs::write(path, content).map_err(io(format!("writing {}", path.display())))
}

/// Materialises one pod volume under `volumes/<name>` (or `pvc/<claim>`), returning its dir.
pub fn materialise_volume(
    layout: &Layout,
    v: &Volume,
    sources: &Sources,
) -> Result<PathBuf, PodError> {
    if let Some(pvc) = &v.persistent_volume_claim {
        let dir = layout.pvc().join(&pvc.claim_name);
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        return Ok(dir);
    }
    let dir = layout.volumes().join(&v.name);
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    let (kind, name, items, optional, data) = if let Some(cm) = &v.config_map {
        (
            "ConfigMap",
            cm.name.clone(),
            cm.items.clone(),
            cm.optional.unwrap_or(false),
            sources.configmaps.get(&cm.name),
        )
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let data = sources.secrets.get(&name);
        (
            "Secret",
            name,
            s.items.clone(),
            s.optional.unwrap_or(false),
            data,
        )
    } else if v.empty_dir.is_some() {
        return Ok(dir);
    } else {
        return Err(PodError::VolumeKind {
            volume: v.name.clone(),
        });
    };
    let Some(data) = data else {
        if optional {
            return Ok(dir);
        }
        return Err(PodError::VolumeSourceMissing {
            volume: v.name.clone(),
            kind,
            name,
        });
    };
    match items {
        Some(items) => {
            for it in items {
                let Some(content) = data.get(&it.key) else {
                    if optional {
                        continue;
                    }
                    return Err(PodError::VolumeItemMissing {
                        volume: v.name.clone(),
                        key: it.key.clone(),
                        kind,
                        name,
                    });
                };
                write_file(&dir.join(&it.path), content)?;
            }
        }
        None => {
            for (k, content) in data {
                write_file(&dir.join(k), content)?;
            }
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod update_tests {
    use super::statefulset_update;
    use k8s_openapi::api::apps::v1::StatefulSet;
    use serde_json::json;

    fn sts(name: &str, service: &str, replicas: i32, claim: &str) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"serviceName": service, "replicas": replicas, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"spec": {"containers": [{"name": "c"}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": claim}}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_changed_service_name_is_refused_naming_the_field() {
        let err = statefulset_update(
            &sts("r", "r", 1, "data"),
            &sts("r", "r-headless", 1, "data"),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("spec.serviceName")
                && !err.to_string().contains("volumeClaimTemplates changed"),
            "{err}"
        );
    }

    #[test]
    fn changed_claim_templates_are_refused() {
        assert!(
            statefulset_update(&sts("r", "r", 1, "data"), &sts("r", "r", 1, "chroma-data"))
                .unwrap_err()
                .to_string()
                .contains("spec.volumeClaimTemplates")
        );
    }

    #[test]
    fn replicas_and_the_template_may_change() {
        let mut new = sts("r", "r", 2, "data");
        new.spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .name = "d".into();
        statefulset_update(&sts("r", "r", 1, "data"), &new).unwrap();
    }

    #[test]
    fn a_renamed_statefulset_is_a_new_object() {
        statefulset_update(
            &sts("old", "old", 1, "data"),
            &sts("new", "new-headless", 1, "x"),
        )
        .unwrap();
    }
}

#[cfg(test)]
mod layout_tests {
    use super::Layout;
    use rstest::rstest;

    #[rstest]
    #[case::trailing_slash_is_the_same_mount_point("/chroma/auth/", "fs/chroma/auth")]
    #[case::repeated_slashes_collapse("//chroma//auth", "fs/chroma/auth")]
    #[case::dot_dot_stays_inside_the_root("/../../etc/../chroma/./auth", "fs/chroma/auth")]
    fn container_paths_resolve_inside_the_container_root(#[case] path: &str, #[case] want: &str) {
        let l = Layout { root: "/r".into() };
        assert_eq!(l.host_path(path), std::path::Path::new("/r").join(want));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::defined_reference_is_replaced("a-$(X)-b", "a-1-b")]
    #[case::unknown_reference_is_kept("$(NOPE)", "$(NOPE)")]
    #[case::double_dollar_escapes("$$(X)", "$(X)")]
    #[case::lone_dollar_is_literal("$X", "$X")]
    fn k8s_expansion(#[case] input: &str, #[case] want: &str) {
        assert_eq!(expand_k8s(input, &[("X".into(), "1".into())]), want);
    }

    fn container(yaml: &str) -> Container {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn pod(yaml: &str) -> PodSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn me() -> PodIdentity {
        PodIdentity {
            name: "chroma-chromadb-0".into(),
            namespace: "default".into(),
            ip: "127.0.0.1".into(),
        }
    }

    #[test]
    fn missing_secret_key_is_named() {
        let c = container(
            "name: c\nenv: [{name: T, valueFrom: {secretKeyRef: {name: auth, key: token}}}]",
        );
        let mut s = Sources::default();
        s.secrets.insert(
            "auth".into(),
            BTreeMap::from([("username".into(), "u".into())]),
        );
        let err = resolve_env(
            &c,
            &pod("containers: []\nenableServiceLinks: false"),
            &s,
            &[],
            &me(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("key `token` of Secret `auth`"),
            "{err}"
        );
        // The variable is the context, the lookup the cause: a caller can tell which it was.
        let cause = std::error::Error::source(&err).and_then(|s| s.downcast_ref::<LookupError>());
        assert!(
            matches!(cause, Some(LookupError::NoKey { key, has, .. }) if key == "token" && has == "username"),
            "{err:?}"
        );
    }

    #[test]
    fn env_overrides_env_from() {
        let c = container(
            "name: c\nenvFrom: [{configMapRef: {name: cm}}]\nenv: [{name: A, value: from-env}]",
        );
        let mut s = Sources::default();
        s.configmaps.insert(
            "cm".into(),
            BTreeMap::from([("A".into(), "from-cm".into())]),
        );
        let env = resolve_env(
            &c,
            &pod("containers: []\nenableServiceLinks: false"),
            &s,
            &[],
            &me(),
        )
        .unwrap();
        assert_eq!(env, vec![("A".to_string(), "from-env".to_string())]);
    }

    #[test]
    fn service_links_are_injected_unless_disabled() {
        let c = container("name: c");
        let svc: Service = serde_yaml::from_str(
            "metadata: {name: chroma-chromadb}\nspec: {ports: [{port: 8000, name: http}]}",
        )
        .unwrap();
        let env = resolve_env(
            &c,
            &pod("containers: []"),
            &Sources::default(),
            &[svc],
            &me(),
        )
        .unwrap();
        assert!(
            env.iter()
                .any(|(k, v)| k == "CHROMA_CHROMADB_PORT" && v.starts_with("tcp://")),
            "{env:?}"
        );
    }

    #[rstest]
    #[case::value_and_value_from(
        "containers: [{name: c, env: [{name: A, value: x, valueFrom: {secretKeyRef: {name: s, key: k}}}]}]",
        "both value and valueFrom"
    )]
    #[case::mount_without_volume(
        "containers: [{name: c, volumeMounts: [{name: nope, mountPath: /x}]}]",
        "refers to no volume"
    )]
    #[case::duplicate_container_names(
        "containers: [{name: c}, {name: c}]",
        "duplicate container name"
    )]
    #[case::duplicate_volume_names(
        "containers: [{name: c}]\nvolumes: [{name: v, emptyDir: {}}, {name: v, emptyDir: {}}]",
        "duplicate volume name"
    )]
    #[case::duplicate_mount_paths(
        "containers: [{name: c, volumeMounts: [{name: v, mountPath: /x}, {name: v, mountPath: /x}]}]\nvolumes: [{name: v, emptyDir: {}}]",
        "more than one volumeMount"
    )]
    fn api_server_refusals(#[case] spec: &str, #[case] reason: &str) {
        let err = validate_pod(&pod(spec), &[]).unwrap_err();
        assert!(err.to_string().contains(reason), "{err}");
    }

    #[test]
    fn claim_template_counts_as_a_volume() {
        validate_pod(
            &pod("containers: [{name: c, volumeMounts: [{name: data, mountPath: /data}]}]"),
            &["data".into()],
        )
        .unwrap();
    }

    #[test]
    fn service_target_port_by_name_resolves_to_the_container_port() {
        let c = container("name: c\nports: [{name: http, containerPort: 8123}]");
        let svc: Service = serde_yaml::from_str("metadata: {name: s}\nspec: {selector: {app: x}, ports: [{port: 8000, name: http, targetPort: http}]}").unwrap();
        let labels = BTreeMap::from([("app".to_string(), "x".to_string())]);
        assert_eq!(
            service_target(&[svc], &labels, std::slice::from_ref(&c))
                .unwrap()
                .2,
            8123
        );
    }
}
