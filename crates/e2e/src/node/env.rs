//! A container's environment as the kubelet builds it: the image's ENV, then `envFrom`
//! sources, then `env` entries in order (each `$(VAR)`-expanded against what came before),
//! values from ConfigMaps, Secrets and the pod's own fields, and the `kubernetes` Service's
//! address that every container gets.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::process::pod::expand_k8s;

/// ConfigMaps and Secrets a container's env refers to, fetched beforehand (name → key → value).
#[derive(Debug, Default, Clone)]
pub struct Lookups {
    pub configmaps: BTreeMap<String, BTreeMap<String, String>>,
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
}

/// The names of the ConfigMaps and Secrets `c`'s env refers to.
pub fn references(c: &Container) -> (Vec<String>, Vec<String>) {
    let (mut cms, mut secrets) = (Vec::new(), Vec::new());
    for f in c.env_from.iter().flatten() {
        cms.extend(f.config_map_ref.as_ref().map(|r| r.name.clone()));
        secrets.extend(f.secret_ref.as_ref().map(|r| r.name.clone()));
    }
    for e in c.env.iter().flatten() {
        if let Some(vf) = &e.value_from {
            cms.extend(vf.config_map_key_ref.as_ref().map(|r| r.name.clone()));
            secrets.extend(vf.secret_key_ref.as_ref().map(|r| r.name.clone()));
        }
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// A pod field by its `fieldPath`, as the downward API serves it.
pub fn field(pod: &Pod, path: &str) -> Result<String, String> {
    let m = &pod.metadata;
    let keyed = |prefix: &str, map: Option<&BTreeMap<String, String>>| -> Option<String> {
        let key = path
            .strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")?;
        Some(map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    if let Some(v) = keyed("metadata.labels", m.labels.as_ref())
        .or_else(|| keyed("metadata.annotations", m.annotations.as_ref()))
    {
        return Ok(v);
    }
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()).unwrap_or_default(),
        other => return Err(format!("fieldRef {other} is not served by this node")),
    })
}

/// Why a container cannot start: the kubelet's CreateContainerConfigError.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("container {container}: {reason}")]
pub struct EnvError {
    pub container: String,
    pub reason: String,
}

fn set(env: &mut Vec<(String, String)>, k: &str, v: String) {
    env.retain(|(n, _)| n != k);
    env.push((k.to_string(), v));
}

/// The container's environment. `kubernetes` is the default Service's (host, port).
pub fn resolve(
    pod: &Pod,
    c: &Container,
    image_env: &[(String, String)],
    look: &Lookups,
    kubernetes: (&str, u16),
) -> Result<Vec<(String, String)>, EnvError> {
    let err = |reason: String| EnvError {
        container: c.name.clone(),
        reason,
    };
    let mut env: Vec<(String, String)> = image_env.to_vec();
    for f in c.env_from.iter().flatten() {
        let prefix = f.prefix.clone().unwrap_or_default();
        let (source, optional, data) = if let Some(r) = &f.config_map_ref {
            (
                format!("ConfigMap {}", r.name),
                r.optional.unwrap_or(false),
                look.configmaps.get(&r.name),
            )
        } else if let Some(r) = &f.secret_ref {
            (
                format!("Secret {}", r.name),
                r.optional.unwrap_or(false),
                look.secrets.get(&r.name),
            )
        } else {
            continue;
        };
        match data {
            Some(d) => d
                .iter()
                .for_each(|(k, v)| set(&mut env, &format!("{prefix}{k}"), v.clone())),
            None if optional => {}
            None => return Err(err(format!("{source} not found"))),
        }
    }
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => expand_k8s(v, &env),
            (None, None) => String::new(),
            (None, Some(vf)) => {
                if let Some(r) = &vf.config_map_key_ref {
                    match look.configmaps.get(&r.name).and_then(|d| d.get(&r.key)) {
                        Some(v) => v.clone(),
                        None if r.optional == Some(true) => continue,
                        None => {
                            return Err(err(format!(
                                "key {} of ConfigMap {} not found",
                                r.key, r.name
                            )));
                        }
                    }
                } else if let Some(r) = &vf.secret_key_ref {
                    match look.secrets.get(&r.name).and_then(|d| d.get(&r.key)) {
                        Some(v) => v.clone(),
                        None if r.optional == Some(true) => continue,
                        None => {
                            return Err(err(format!(
                                "key {} of Secret {} not found",
                                r.key, r.name
                            )));
                        }
                    }
                } else if let Some(f) = &vf.field_ref {
                    field(pod, &f.field_path).map_err(err)?
                } else {
                    return Err(err(format!(
                        "env {}: resourceFieldRef is not served by this node",
                        e.name
                    )));
                }
            }
        };
        set(&mut env, &e.name, value);
    }
    let (host, port) = kubernetes;
    for (k, v) in [
        ("KUBERNETES_SERVICE_HOST", host.to_string()),
        ("KUBERNETES_SERVICE_PORT", port.to_string()),
        ("KUBERNETES_SERVICE_PORT_HTTPS", port.to_string()),
    ] {
        if !env.iter().any(|(n, _)| n == k) {
            env.push((k.to_string(), v));
        }
    }
    if !env.iter().any(|(n, _)| n == "HOSTNAME") {
        env.push((
            "HOSTNAME".into(),
            pod.metadata.name.clone().unwrap_or_default(),
        ));
    }
    if !env.iter().any(|(n, _)| n == "HOME") {
        env.push(("HOME".into(), "/".into()));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "r-0", "namespace": "ns1", "uid": "u1", "labels": {"app": "chroma"}},
            "spec": {"containers": [], "nodeName": "process-node"},
            "status": {"podIP": "10.244.0.7"}
        }))
        .unwrap()
    }

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    fn look() -> Lookups {
        Lookups {
            configmaps: BTreeMap::from([(
                "cm".to_string(),
                BTreeMap::from([("A".to_string(), "from-cm".to_string())]),
            )]),
            secrets: BTreeMap::from([(
                "s".to_string(),
                BTreeMap::from([("token".to_string(), "t0k".to_string())]),
            )]),
        }
    }

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn env_overrides_env_from_which_overrides_the_image_and_values_expand_earlier_ones() {
        let c = container(
            json!({"name": "c", "envFrom": [{"configMapRef": {"name": "cm"}}], "env": [
            {"name": "A", "value": "mine"}, {"name": "B", "value": "$(A)-x"},
            {"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}}]}),
        );
        let env = resolve(
            &pod(),
            &c,
            &[("A".into(), "image".into())],
            &look(),
            ("10.96.0.1", 443),
        )
        .unwrap();
        assert_eq!(
            (
                get(&env, "A"),
                get(&env, "B"),
                get(&env, "T"),
                get(&env, "IP"),
                get(&env, "APP"),
                get(&env, "KUBERNETES_SERVICE_HOST")
            ),
            (
                Some("mine"),
                Some("mine-x"),
                Some("t0k"),
                Some("10.244.0.7"),
                Some("chroma"),
                Some("10.96.0.1")
            )
        );
    }

    #[test]
    fn a_missing_secret_key_is_a_config_error_naming_it_unless_optional() {
        let c = container(
            json!({"name": "c", "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "nope"}}}]}),
        );
        let e = resolve(&pod(), &c, &[], &look(), ("h", 1)).unwrap_err();
        assert_eq!(e.to_string(), "container c: key nope of Secret s not found");
        let c = container(
            json!({"name": "c", "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "nope", "optional": true}}}]}),
        );
        assert!(get(&resolve(&pod(), &c, &[], &look(), ("h", 1)).unwrap(), "T").is_none());
    }

    #[test]
    fn references_list_each_source_once() {
        let c = container(
            json!({"name": "c", "envFrom": [{"secretRef": {"name": "s"}}], "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}, {"name": "U", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]}),
        );
        assert_eq!(
            references(&c),
            (vec!["cm".to_string()], vec!["s".to_string()])
        );
    }
}
