//! The default StorageClass's provisioner: for a claim the scheduler placed on this node
//! (`WaitForFirstConsumer`), a PersistentVolume on a folder of the node, sized by a tmpfs of
//! the requested capacity so a write past it fails with ENOSPC as on a real disk; a Released
//! volume of the class's `Delete` policy goes with its folder. It runs with an identity of
//! its own bound to `system:persistent-volume-provisioner`, as external provisioners do; the
//! PV controller in kube-controller-manager does the binding.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};

use crate::process::volume::{SizedVolume, parse_quantity};

const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
const STORAGE_PROVISIONER: [&str; 2] = [
    "volume.kubernetes.io/storage-provisioner",
    "volume.beta.kubernetes.io/storage-provisioner",
];

/// The PV for `pvc`, when this provisioner on `node` should make one: the claim asks for our
/// provisioner, was placed on this node, and is not bound.
pub fn volume_for(
    pvc: &PersistentVolumeClaim,
    provisioner: &str,
    node: &str,
    root: &Path,
) -> Option<Result<(Value, u64), String>> {
    let ann = pvc.metadata.annotations.clone().unwrap_or_default();
    let ours = STORAGE_PROVISIONER
        .iter()
        .any(|k| ann.get(*k).map(String::as_str) == Some(provisioner));
    let spec = pvc.spec.as_ref()?;
    if !ours
        || ann.get(SELECTED_NODE).map(String::as_str) != Some(node)
        || spec.volume_name.as_deref().is_some_and(|v| !v.is_empty())
        || pvc.metadata.deletion_timestamp.is_some()
    {
        return None;
    }
    let uid = pvc.metadata.uid.clone().unwrap_or_default();
    let name = format!("pvc-{uid}");
    let request = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone());
    let Some(request) = request else {
        return Some(Err(format!(
            "claim {} requests no storage",
            pvc.metadata.name.as_deref().unwrap_or_default()
        )));
    };
    let bytes = match parse_quantity(&request) {
        Ok(b) => b,
        Err(e) => return Some(Err(e)),
    };
    let path = root.join(&name);
    Some(Ok((
        json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {PROVISIONED_BY: provisioner}},
            "spec": {
                "capacity": {"storage": request},
                "accessModes": spec.access_modes.clone().unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": spec.storage_class_name,
                "volumeMode": spec.volume_mode.clone().unwrap_or_else(|| "Filesystem".into()),
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": pvc.metadata.namespace, "name": pvc.metadata.name, "uid": uid},
                "hostPath": {"path": path.display().to_string(), "type": "Directory"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}},
            }
        }),
        bytes,
    )))
}

pub struct Provisioner {
    pub client: kube::Client,
    pub provisioner: String,
    pub node: String,
    /// Where the volumes' folders are made.
    pub root: PathBuf,
}

impl Provisioner {
    /// Serves claims until the process stops. Each folder is a sized tmpfs held here; they
    /// are unmounted when the node stops (the cluster is throwaway).
    pub async fn run(self) {
        let _ = std::fs::create_dir_all(&self.root);
        let mut mounted: BTreeMap<String, SizedVolume> = BTreeMap::new();
        let pvcs: Api<PersistentVolumeClaim> = Api::all(self.client.clone());
        let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
        let mut claims = watcher(pvcs, watcher::Config::default()).boxed();
        let mut volumes = watcher(pvs.clone(), watcher::Config::default()).boxed();
        loop {
            tokio::select! {
                ev = claims.next() => {
                    let Some(ev) = ev else { break };
                    let pvc = match ev {
                        Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
                        Ok(_) => continue,
                        Err(e) => { tracing::warn!("watching claims: {e}"); tokio::time::sleep(Duration::from_secs(1)).await; continue }
                    };
                    match volume_for(&pvc, &self.provisioner, &self.node, &self.root) {
                        None => {}
                        Some(Err(e)) => tracing::warn!("provisioning: {e}"),
                        Some(Ok((pv, bytes))) => {
                            let name = pv["metadata"]["name"].as_str().unwrap_or_default().to_string();
                            if pvs.get_opt(&name).await.ok().flatten().is_some() {
                                continue;
                            }
                            let dir = self.root.join(&name);
                            if let Err(e) = std::fs::create_dir_all(&dir) {
                                tracing::warn!("provisioning {name}: creating {}: {e}", dir.display());
                                continue;
                            }
                            match SizedVolume::mount(&dir, bytes) {
                                Ok(v) => { mounted.insert(name.clone(), v); }
                                Err(e) => { tracing::warn!("provisioning {name}: {e}"); continue }
                            }
                            let pv: PersistentVolume = match serde_json::from_value(pv) { Ok(p) => p, Err(e) => { tracing::warn!("{e}"); continue } };
                            match pvs.create(&PostParams::default(), &pv).await {
                                Ok(_) => tracing::info!("provisioned {name} ({bytes} bytes) for {}/{}", pvc.metadata.namespace.as_deref().unwrap_or_default(), pvc.metadata.name.as_deref().unwrap_or_default()),
                                Err(e) => tracing::warn!("creating PersistentVolume {name}: {e}"),
                            }
                        }
                    }
                }
                ev = volumes.next() => {
                    let Some(ev) = ev else { break };
                    let pv = match ev {
                        Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
                        Ok(_) => continue,
                        Err(e) => { tracing::warn!("watching volumes: {e}"); tokio::time::sleep(Duration::from_secs(1)).await; continue }
                    };
                    let ours = pv.metadata.annotations.as_ref().and_then(|a| a.get(PROVISIONED_BY)).map(String::as_str) == Some(self.provisioner.as_str());
                    let released = pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
                    if ours && released {
                        let name = pv.metadata.name.clone().unwrap_or_default();
                        if let Some(mut v) = mounted.remove(&name) {
                            let _ = v.unmount();
                        }
                        let _ = std::fs::remove_dir_all(self.root.join(&name));
                        match pvs.delete(&name, &DeleteParams::default()).await {
                            Ok(_) => tracing::info!("deleted released volume {name}"),
                            Err(e) => tracing::warn!("deleting PersistentVolume {name}: {e}"),
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pvc(ann: Value, volume_name: Option<&str>) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "data-r-0", "namespace": "ns1", "uid": "u1", "annotations": ann},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "sc", "resources": {"requests": {"storage": "16Mi"}}, "volumeName": volume_name}
        }))
        .unwrap()
    }

    #[test]
    fn a_claim_placed_on_this_node_for_this_provisioner_gets_a_sized_hostpath_volume_bound_to_it() {
        let c = pvc(
            json!({"volume.kubernetes.io/storage-provisioner": "p", "volume.kubernetes.io/selected-node": "n"}),
            None,
        );
        let (pv, bytes) = volume_for(&c, "p", "n", Path::new("/vols"))
            .unwrap()
            .unwrap();
        assert_eq!(bytes, 16 << 20);
        assert_eq!(pv["metadata"]["name"], "pvc-u1");
        assert_eq!(pv["spec"]["claimRef"]["uid"], "u1");
        assert_eq!(pv["spec"]["hostPath"]["path"], "/vols/pvc-u1");
        assert_eq!(pv["spec"]["storageClassName"], "sc");
        let _: PersistentVolume = serde_json::from_value(pv).unwrap();
    }

    #[test]
    fn claims_of_another_provisioner_another_node_or_already_bound_are_left_alone() {
        let other = pvc(
            json!({"volume.kubernetes.io/storage-provisioner": "q", "volume.kubernetes.io/selected-node": "n"}),
            None,
        );
        let elsewhere = pvc(
            json!({"volume.kubernetes.io/storage-provisioner": "p", "volume.kubernetes.io/selected-node": "m"}),
            None,
        );
        let bound = pvc(
            json!({"volume.kubernetes.io/storage-provisioner": "p", "volume.kubernetes.io/selected-node": "n"}),
            Some("pv-1"),
        );
        let unplaced = pvc(
            json!({"volume.kubernetes.io/storage-provisioner": "p"}),
            None,
        );
        for c in [other, elsewhere, bound, unplaced] {
            assert!(volume_for(&c, "p", "n", Path::new("/v")).is_none());
        }
    }
}
