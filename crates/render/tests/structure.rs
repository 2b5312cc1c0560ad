//! Would the API server accept every render? Checks on every scenario of every version that
//! the JSON schemas cannot express.

#[macro_use]
mod support;

use std::collections::BTreeSet;

use render::Rendered;
use render::spec::parse_str;
use serde_yaml::Value;
use support::*;

/// Every accepted render of `version`, with its scenario name and values.
fn renders(version: &str) -> Vec<(String, Value, std::sync::Arc<Rendered>)> {
    let s = suite();
    s.accepted(version, &s.all_scenarios())
        .into_iter()
        .map(|c| {
            let r = c.render.as_ref().expect("accepted").clone();
            (format!("{c}"), c.values, r)
        })
        .collect()
}

each_version! {
    /// No env entry has both `value` and `valueFrom`; names are unique per container.
    fn env_entries_are_well_formed(version) {
        for (case, _, r) in renders(version) {
            for c in r.all_containers().into_iter().chain(r.jobs().flat_map(|j| j.spec.iter().flat_map(|s| s.template.spec.iter().flat_map(|p| p.containers.iter())))) {
                let mut seen = BTreeSet::new();
                for e in c.env.iter().flatten() {
                    assert!(!(e.value.is_some() && e.value_from.is_some()), "{case}: {}/{} has value and valueFrom", c.name, e.name);
                    assert!(seen.insert(e.name.clone()), "{case}: {} sets {} twice", c.name, e.name);
                }
            }
        }
    }
}

each_version! {
    /// Every volumeMount names a pod volume or a claim template; mount paths are unique.
    fn every_mount_has_a_volume(version) {
        for (case, _, r) in renders(version) {
            for c in r.all_containers() {
                let mut paths = BTreeSet::new();
                for m in c.volume_mounts.iter().flatten() {
                    assert!(r.volume(&m.name).is_some() || r.is_claim(&m.name), "{case}: {} mounts unknown volume {}", c.name, m.name);
                    assert!(paths.insert(m.mount_path.clone()), "{case}: {} mounts {} twice", c.name, m.mount_path);
                }
            }
        }
    }
}

/// Objects the user brings (named in values): the auth existingSecret, the log ConfigMap,
/// pull secrets.
fn external(values: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for key in [
        "chromadb.auth.existingSecret",
        "chromadb.logConfigMap",
        "backup.storage.s3.existingSecret",
        "tls.existingSecret",
        "tls.caBundle.name",
    ] {
        if let Ok(s) = parse_str(values, key, "")
            && !s.is_empty()
        {
            out.insert(s.to_string());
        }
    }
    out.extend(render::spec::pull_secrets(values));
    out.extend(render::spec::user_object_refs(values));
    out
}

each_version! {
    /// Every Secret and ConfigMap a pod refers to is rendered or is the user's own.
    fn every_reference_resolves(version) {
        for (case, values, r) in renders(version) {
            let rendered: BTreeSet<String> = r.secrets().filter_map(|s| s.metadata.name.clone())
                .chain(r.configmaps().filter_map(|c| c.metadata.name.clone())).collect();
            let ext = external(&values);
            let mut refs = Vec::new();
            let pods = r.pod_spec().into_iter().chain(r.jobs().filter_map(|j| j.spec.as_ref()?.template.spec.as_ref()))
                .chain(r.cronjobs().filter_map(|c| c.spec.as_ref()?.job_template.spec.as_ref()?.template.spec.as_ref()));
            for pod in pods {
                for c in pod.init_containers.iter().flatten().chain(pod.containers.iter()) {
                    for e in c.env.iter().flatten() {
                        if let Some(f) = &e.value_from {
                            refs.extend(f.secret_key_ref.iter().map(|s| s.name.clone()));
                            refs.extend(f.config_map_key_ref.iter().map(|s| s.name.clone()));
                        }
                    }
                    for f in c.env_from.iter().flatten() {
                        refs.extend(f.secret_ref.iter().map(|s| s.name.clone()));
                        refs.extend(f.config_map_ref.iter().map(|s| s.name.clone()));
                    }
                }
                for v in pod.volumes.iter().flatten() {
                    refs.extend(v.config_map.iter().map(|c| c.name.clone()));
                    refs.extend(v.secret.iter().filter_map(|s| s.secret_name.clone()));
                }
                refs.extend(pod.image_pull_secrets.iter().flatten().map(|s| s.name.clone()));
            }
            for name in refs {
                assert!(rendered.contains(&name) || ext.contains(&name), "{case}: refers to {name}, which is neither rendered nor the user's");
            }
        }
    }
}

fn valid_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

each_version! {
    /// Object names fit in 63 characters (Service and StatefulSet names become DNS labels).
    fn names_fit_in_63_characters(version) {
        for (case, _, r) in renders(version) {
            for d in &r.documents {
                let name = d["metadata"]["name"].as_str().unwrap_or_default();
                assert!(name.len() <= 63, "{case}: {} {name} is longer than 63", d["kind"]);
                if matches!(d["kind"].as_str(), Some("Service" | "StatefulSet")) {
                    assert!(valid_dns_label(name), "{case}: {name} is not a DNS label");
                }
            }
        }
    }
}

fn valid_label_value(v: &str) -> bool {
    v.len() <= 63
        && (v.is_empty()
            || (v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                && v.as_bytes()[0].is_ascii_alphanumeric()
                && v.as_bytes()[v.len() - 1].is_ascii_alphanumeric()))
}

fn valid_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let prefix_ok = prefix.is_none_or(|p| p.len() <= 253 && p.split('.').all(valid_dns_label));
    prefix_ok && !name.is_empty() && valid_label_value(name)
}

each_version! {
    /// Label keys and values are valid everywhere they appear; selectors match pod labels.
    fn labels_are_valid_and_selectors_match(version) {
        for (case, _, r) in renders(version) {
            for site in r.label_sites() {
                for (k, v) in &site.labels {
                    assert!(valid_label_key(k), "{case}: {site}: invalid label key {k:?}");
                    assert!(valid_label_value(v), "{case}: {site}: invalid label value {v:?} for {k}");
                }
            }
            let pod = r.pod_labels();
            for (k, v) in r.selector() {
                assert_eq!(pod.get(&k), Some(&v), "{case}: selector {k}={v} does not match the pod template");
            }
            // Every pod template: Chroma's, and the metrics collector's Deployment when rendered.
            let mut templates = vec![("the Chroma pod".to_string(), pod.clone())];
            for d in r.documents.iter().filter(|d| d["kind"] == "Deployment") {
                let labels = d["spec"]["template"]["metadata"]["labels"].as_object().map(|m| {
                    m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect::<std::collections::BTreeMap<_, _>>()
                });
                templates.push((format!("Deployment {}", d["metadata"]["name"]), labels.unwrap_or_default()));
            }
            for svc in r.services() {
                let selector = svc.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
                let name = svc.metadata.name.clone().unwrap_or_default();
                let picked: Vec<&str> = templates
                    .iter()
                    .filter(|(_, labels)| selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
                    .map(|(what, _)| what.as_str())
                    .collect();
                assert_eq!(picked.len(), 1, "{case}: Service {name} selector {selector:?} must pick exactly one pod template, picks {picked:?}");
            }
        }
    }
}

each_version! {
    /// Secret values never land in ConfigMaps, env literals or annotations.
    fn secrets_stay_in_secrets(version) {
        for (case, _, r) in renders(version) {
            let secrets: Vec<String> = r.secrets().flat_map(|s| render::objects::secret_data(s).into_values()).filter(|v| v.len() >= 8).collect();
            for s in &secrets {
                for cm in r.configmaps() {
                    for v in cm.data.iter().flat_map(|d| d.values()) {
                        assert!(!v.contains(s.as_str()), "{case}: a Secret value is in ConfigMap {:?}", cm.metadata.name);
                    }
                }
                for c in r.all_containers() {
                    for e in c.env.iter().flatten() {
                        assert!(e.value.as_deref() != Some(s.as_str()), "{case}: a Secret value is the literal env {}", e.name);
                    }
                }
            }
        }
    }
}
