//! A pod's volumes, from the API as the kubelet makes them: ConfigMap and Secret keys as
//! files, emptyDir as an empty world-writable directory, a PersistentVolumeClaim through its
//! bound PersistentVolume's path, projected volumes (ServiceAccount token from the
//! TokenRequest API, `kube-root-ca.crt`, the namespace through the downward API). `fsGroup`
//! hands every writable volume to the pod's group.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{
    ConfigMap, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, Secret, ServiceAccount,
    Volume,
};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// Not there yet (an unbound claim, a Secret a hook has yet to make): the kubelet retries.
    #[error("volume {volume}: {reason}")]
    NotReady { volume: String, reason: String },
    #[error("volume {volume}: {reason}")]
    Unsupported { volume: String, reason: String },
    #[error("volume {volume}: reading {what}: {source}")]
    Api {
        volume: String,
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("volume {volume}: {context}: {source}")]
    Io {
        volume: String,
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// Writes `data` under `dir` as the kubelet lays out ConfigMap/Secret keys: all keys, or only
/// `items` at their paths. A missing key is an error unless the source is optional.
pub fn write_keys(
    volume: &str,
    dir: &Path,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    optional: bool,
    source: &str,
) -> Result<(), VolumeError> {
    let io = |context: String| {
        move |e| VolumeError::Io {
            volume: volume.to_string(),
            context,
            source: e,
        }
    };
    let write = |rel: &str, bytes: &[u8], mode: Option<i32>| -> Result<(), VolumeError> {
        let path = dir.join(rel);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(io(format!("creating {}", p.display())))?;
        }
        // Whole files only, as the kubelet's atomic writer: a reader never sees half a key.
        let tmp = path.with_file_name(format!(
            ".{}.tmp",
            path.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        std::fs::write(&tmp, bytes).map_err(io(format!("writing {}", tmp.display())))?;
        std::fs::set_permissions(
            &tmp,
            std::fs::Permissions::from_mode(mode.unwrap_or(0o644) as u32 & 0o777),
        )
        .map_err(io(format!("chmod {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(io(format!("renaming into {}", path.display())))
    };
    match items {
        Some(items) => {
            for it in items {
                match data.get(&it.key) {
                    Some(b) => write(&it.path, b, it.mode)?,
                    None if optional => {}
                    None => {
                        return Err(VolumeError::NotReady {
                            volume: volume.into(),
                            reason: format!("key {} is not in {source}", it.key),
                        });
                    }
                }
            }
        }
        None => {
            for (k, b) in data {
                write(k, b, None)?;
            }
        }
    }
    Ok(())
}

/// A ConfigMap's or Secret's keys (`data`; `None` when the object does not exist) written as
/// [`write_keys`] does; a missing object is nothing when `optional`, else the volume waits.
fn write_object(
    volume: &str,
    dir: &Path,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&[KeyToPath]>,
    optional: bool,
    what: &str,
) -> Result<(), VolumeError> {
    match data {
        Some(data) => write_keys(volume, dir, &data, items, optional, what),
        None if optional => Ok(()),
        None => Err(VolumeError::NotReady {
            volume: volume.into(),
            reason: format!("{what} does not exist"),
        }),
    }
}

fn configmap_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        out.insert(k.clone(), v.0.clone());
    }
    out
}

fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in s.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone().into_bytes());
    }
    out
}

/// The API reads a pod's volumes need, with the node's identity.
pub struct Sources {
    pub client: kube::Client,
}

impl Sources {
    async fn configmap(
        &self,
        ns: &str,
        name: &str,
        volume: &str,
    ) -> Result<Option<ConfigMap>, VolumeError> {
        Api::<ConfigMap>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(|source| VolumeError::Api {
                volume: volume.into(),
                what: format!("ConfigMap {name}"),
                source,
            })
    }

    async fn secret(
        &self,
        ns: &str,
        name: &str,
        volume: &str,
    ) -> Result<Option<Secret>, VolumeError> {
        Api::<Secret>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(|source| VolumeError::Api {
                volume: volume.into(),
                what: format!("Secret {name}"),
                source,
            })
    }

    /// ConfigMap `cm`'s keys laid out in `dir` as a volume or a projection of it lays them out.
    async fn write_configmap(
        &self,
        ns: &str,
        cm: &str,
        items: Option<&[KeyToPath]>,
        optional: Option<bool>,
        volume: &str,
        dir: &Path,
    ) -> Result<(), VolumeError> {
        let data = self
            .configmap(ns, cm, volume)
            .await?
            .map(|c| configmap_data(&c));
        let what = format!("ConfigMap {cm}");
        write_object(volume, dir, data, items, optional.unwrap_or(false), &what)
    }

    /// Secret `secret`'s keys laid out in `dir`, as [`Self::write_configmap`] does.
    async fn write_secret(
        &self,
        ns: &str,
        secret: &str,
        items: Option<&[KeyToPath]>,
        optional: Option<bool>,
        volume: &str,
        dir: &Path,
    ) -> Result<(), VolumeError> {
        let data = self
            .secret(ns, secret, volume)
            .await?
            .map(|s| secret_data(&s));
        let what = format!("Secret {secret}");
        write_object(volume, dir, data, items, optional.unwrap_or(false), &what)
    }

    /// A token for the pod's ServiceAccount, bound to the pod (the kubelet's projected token).
    async fn token(
        &self,
        pod: &Pod,
        audience: Option<&str>,
        seconds: Option<i64>,
        volume: &str,
    ) -> Result<String, VolumeError> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let sa = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let req: TokenRequest = serde_json::from_value(json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {
                "audiences": audience.map(|a| vec![a.to_string()]).unwrap_or_default(),
                "expirationSeconds": seconds.unwrap_or(3607),
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name, "uid": pod.metadata.uid},
            }
        }))
        .expect("the TokenRequest is valid");
        let out = Api::<ServiceAccount>::namespaced(self.client.clone(), ns)
            .create_token_request(&sa, &PostParams::default(), &req)
            .await
            .map_err(|source| VolumeError::Api {
                volume: volume.into(),
                what: format!("a token for ServiceAccount {sa}"),
                source,
            })?;
        Ok(out.status.map(|s| s.token).unwrap_or_default())
    }

    /// The directory of a claim's volume: the hostPath of the PersistentVolume it is bound to.
    async fn claim_dir(&self, ns: &str, claim: &str, volume: &str) -> Result<PathBuf, VolumeError> {
        let not_ready = |reason: String| VolumeError::NotReady {
            volume: volume.into(),
            reason,
        };
        let pvc = Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), ns)
            .get_opt(claim)
            .await
            .map_err(|source| VolumeError::Api {
                volume: volume.into(),
                what: format!("PersistentVolumeClaim {claim}"),
                source,
            })?
            .ok_or_else(|| not_ready(format!("PersistentVolumeClaim {claim} does not exist")))?;
        let pv_name = pvc
            .spec
            .and_then(|s| s.volume_name)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| not_ready(format!("PersistentVolumeClaim {claim} is not bound yet")))?;
        let pv = Api::<PersistentVolume>::all(self.client.clone())
            .get(&pv_name)
            .await
            .map_err(|source| VolumeError::Api {
                volume: volume.into(),
                what: format!("PersistentVolume {pv_name}"),
                source,
            })?;
        let spec = pv.spec.unwrap_or_default();
        let path = spec.host_path.map(|h| h.path).or(spec.local.map(|l| l.path)).ok_or_else(|| VolumeError::Unsupported {
            volume: volume.into(),
            reason: format!("PersistentVolume {pv_name} is neither hostPath nor local, which is all this node can mount"),
        })?;
        Ok(PathBuf::from(path))
    }

    /// Materialises every volume of `pod` under `dir`; returns each volume's host directory.
    pub async fn materialise(
        &self,
        pod: &Pod,
        dir: &Path,
    ) -> Result<BTreeMap<String, PathBuf>, VolumeError> {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let spec = pod.spec.clone().unwrap_or_default();
        let fs_group = spec
            .security_context
            .as_ref()
            .and_then(|s| s.fs_group)
            .map(|g| g as u32);
        let mut out = BTreeMap::new();
        for v in spec.volumes.iter().flatten() {
            let path = self.one(pod, &ns, v, &dir.join(&v.name)).await?;
            if let Some(g) = fs_group {
                let writable = v.empty_dir.is_some() || v.persistent_volume_claim.is_some();
                let shared = v.persistent_volume_claim.is_some();
                // A claim is changed in place (its files keep the group across restarts);
                // ConfigMap/Secret/projected files become readable by the group.
                if writable || !shared {
                    crate::process::security::apply_fs_group(&path, g).map_err(|source| {
                        VolumeError::Io {
                            volume: v.name.clone(),
                            context: format!("applying fsGroup {g}"),
                            source,
                        }
                    })?;
                }
            }
            out.insert(v.name.clone(), path);
        }
        Ok(out)
    }

    /// Rewrites the files of ConfigMap, Secret and projected volumes from the API, as the
    /// kubelet's periodic sync does, so a renewed certificate reaches a running pod.
    pub async fn refresh(&self, pod: &Pod, dir: &Path) -> Result<(), VolumeError> {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let spec = pod.spec.clone().unwrap_or_default();
        let fs_group = spec
            .security_context
            .as_ref()
            .and_then(|s| s.fs_group)
            .map(|g| g as u32);
        for v in spec
            .volumes
            .iter()
            .flatten()
            .filter(|v| v.config_map.is_some() || v.secret.is_some() || v.projected.is_some())
        {
            let path = self.one(pod, &ns, v, &dir.join(&v.name)).await?;
            if let Some(g) = fs_group {
                crate::process::security::apply_fs_group(&path, g).map_err(|source| {
                    VolumeError::Io {
                        volume: v.name.clone(),
                        context: format!("applying fsGroup {g}"),
                        source,
                    }
                })?;
            }
        }
        Ok(())
    }

    async fn one(
        &self,
        pod: &Pod,
        ns: &str,
        v: &Volume,
        dir: &Path,
    ) -> Result<PathBuf, VolumeError> {
        let name = v.name.as_str();
        let io = |context: String| {
            move |source| VolumeError::Io {
                volume: name.to_string(),
                context,
                source,
            }
        };
        if let Some(c) = &v.persistent_volume_claim {
            return self.claim_dir(ns, &c.claim_name, name).await;
        }
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        if v.empty_dir.is_some() {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
                .map_err(io("chmod 0777".into()))?;
            return Ok(dir.to_path_buf());
        }
        if let Some(c) = &v.config_map {
            let items = c.items.as_deref();
            self.write_configmap(ns, &c.name, items, c.optional, name, dir)
                .await?;
            return Ok(dir.to_path_buf());
        }
        if let Some(s) = &v.secret {
            let secret_name = s.secret_name.clone().unwrap_or_default();
            let items = s.items.as_deref();
            self.write_secret(ns, &secret_name, items, s.optional, name, dir)
                .await?;
            return Ok(dir.to_path_buf());
        }
        if let Some(p) = &v.projected {
            for src in p.sources.iter().flatten() {
                if let Some(t) = &src.service_account_token {
                    let token = self
                        .token(pod, t.audience.as_deref(), t.expiration_seconds, name)
                        .await?;
                    write_keys(
                        name,
                        dir,
                        &BTreeMap::from([(t.path.clone(), token.into_bytes())]),
                        None,
                        false,
                        "the token",
                    )?;
                }
                if let Some(c) = &src.config_map {
                    let items = c.items.as_deref();
                    self.write_configmap(ns, &c.name, items, c.optional, name, dir)
                        .await?;
                }
                if let Some(s) = &src.secret {
                    let items = s.items.as_deref();
                    self.write_secret(ns, &s.name, items, s.optional, name, dir)
                        .await?;
                }
                if let Some(d) = &src.downward_api {
                    for it in d.items.iter().flatten() {
                        let value = it
                            .field_ref
                            .as_ref()
                            .map(|f| super::env::field(pod, &f.field_path))
                            .transpose()
                            .map_err(|reason| VolumeError::Unsupported {
                                volume: name.into(),
                                reason,
                            })?;
                        let Some(value) = value else {
                            return Err(VolumeError::Unsupported {
                                volume: name.into(),
                                reason: format!(
                                    "downwardAPI item {} has no fieldRef (resourceFieldRef is not served by this node)",
                                    it.path
                                ),
                            });
                        };
                        write_keys(
                            name,
                            dir,
                            &BTreeMap::from([(it.path.clone(), value.into_bytes())]),
                            None,
                            false,
                            "the downward API",
                        )?;
                    }
                }
            }
            return Ok(dir.to_path_buf());
        }
        Err(VolumeError::Unsupported { volume: name.into(), reason: "only configMap, secret, emptyDir, persistentVolumeClaim and projected volumes are served by this node".into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_keys_become_files_readable_by_all() {
        let d = tempfile::tempdir().unwrap();
        let data = BTreeMap::from([("config.yaml".to_string(), b"port: 8000\n".to_vec())]);
        write_keys("cfg", d.path(), &data, None, false, "ConfigMap c").unwrap();
        let meta = std::fs::metadata(d.path().join("config.yaml")).unwrap();
        assert_eq!(
            (
                std::fs::read_to_string(d.path().join("config.yaml"))
                    .unwrap()
                    .as_str(),
                meta.permissions().mode() & 0o777
            ),
            ("port: 8000\n", 0o644)
        );
    }

    #[test]
    fn items_pick_keys_to_paths_and_a_missing_key_waits_unless_optional() {
        let d = tempfile::tempdir().unwrap();
        let data = BTreeMap::from([("a".to_string(), b"1".to_vec())]);
        let items: Vec<KeyToPath> = serde_json::from_value(
            json!([{"key": "a", "path": "sub/x"}, {"key": "b", "path": "y"}]),
        )
        .unwrap();
        let e = write_keys("v", d.path(), &data, Some(&items), false, "Secret s").unwrap_err();
        assert!(
            matches!(&e, VolumeError::NotReady { reason, .. } if reason == "key b is not in Secret s"),
            "{e}"
        );
        write_keys("v", d.path(), &data, Some(&items), true, "Secret s").unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("sub/x")).unwrap(),
            "1"
        );
        assert!(!d.path().join("y").exists());
    }
}
