//! Test hooks (`--inject-fault`): tamper with the data after the upgrade to prove the diff
//! catches it, or make B's pod invalid to prove that an expected failure with another cause
//! is a mismatch, not the measured behaviour.

use k8s_openapi::api::core::v1::VolumeMount;
use render::Object;
use reqwest::Method;
use serde::Serialize;
use serde_json::json;

use crate::backend::Release;
use crate::dataset::Dataset;
use chroma_api::client::{self, Api};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// Delete two records of one collection after the upgrade.
    DeleteRecords,
    /// Change one record's document and metadata after the upgrade.
    ChangeRecord,
    /// Drop a whole collection after the upgrade.
    DropCollection,
    /// Mount a volume B's pod does not declare: an API server (and the process backend)
    /// refuses the pod, so B fails as "the rendered release cannot run". Applied to B's
    /// rendered objects, which the process backend runs; cluster backends install from the
    /// chart and values, where this edit does not reach.
    InvalidPodB,
}

impl Fault {
    pub const ALL: [Fault; 4] = [
        Fault::DeleteRecords,
        Fault::ChangeRecord,
        Fault::DropCollection,
        Fault::InvalidPodB,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::DeleteRecords => "delete-records",
            Fault::ChangeRecord => "change-record",
            Fault::DropCollection => "drop-collection",
            Fault::InvalidPodB => "invalid-pod-b",
        }
    }
}

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fault::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown fault `{s}` (valid: {})",
                    Fault::ALL.map(Fault::as_str).join(", ")
                )
            })
    }
}

/// The volume name B's `chromadb` container is made to mount.
pub const MISSING_VOLUME: &str = "injected-fault-missing-volume";

/// Makes B's pod invalid (see [`Fault::InvalidPodB`]); returns what it did.
pub fn invalidate_pod(release: &mut Release) -> Result<String, String> {
    let mount = VolumeMount {
        name: MISSING_VOLUME.into(),
        mount_path: "/injected-fault".into(),
        ..VolumeMount::default()
    };
    let Some(name) = release.rendered.chroma_container().map(|c| c.name.clone()) else {
        return Err("B's render has no StatefulSet with a Chroma container to make invalid".into());
    };
    let mut done = false;
    for obj in &mut release.rendered.objects {
        let Object::StatefulSet(s) = obj else {
            continue;
        };
        let containers = s
            .spec
            .as_mut()
            .and_then(|sp| sp.template.spec.as_mut())
            .map(|p| &mut p.containers);
        if let Some(c) = containers.into_iter().flatten().find(|c| c.name == name) {
            c.volume_mounts
                .get_or_insert_with(Vec::new)
                .push(mount.clone());
            done = true;
        }
    }
    for doc in &mut release.rendered.documents {
        if doc["kind"] != "StatefulSet" {
            continue;
        }
        if let Some(c) = doc["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .and_then(|cs| cs.iter_mut().find(|c| c["name"] == name.as_str()))
        {
            let mounts = &mut c["volumeMounts"];
            if !mounts.is_array() {
                *mounts = json!([]);
            }
            if let Some(m) = mounts.as_array_mut() {
                m.push(json!({"name": MISSING_VOLUME, "mountPath": "/injected-fault"}));
            }
        }
    }
    if done {
        Ok(format!(
            "container `{name}` of B's StatefulSet mounts volume `{MISSING_VOLUME}`, which the pod does not declare"
        ))
    } else {
        Err(format!(
            "B's render has no StatefulSet with a `{name}` container to make invalid"
        ))
    }
}

/// Applies a data fault to the dataset on the server; returns what it did.
pub async fn tamper(api: &Api, ds: &Dataset, fault: Fault) -> Result<String, String> {
    let target = ds
        .collections
        .iter()
        .find(|c| c.records.len() >= 2)
        .ok_or("the dataset has no collection with two records")?;
    let got = api.get_collection(&target.name).await;
    let id = client::collection(
        &got,
        &format!(
            "fault {}: getting collection {}",
            fault.as_str(),
            target.name
        ),
    )
    .map_err(|e| e.to_string())?
    .id;
    let base = format!("{}/{id}", api.collections());
    let (what, answer) = match fault {
        Fault::DeleteRecords => {
            let ids = [&target.records[0].id, &target.records[1].id];
            let body = json!({ "ids": ids }).to_string();
            (
                format!(
                    "deleted records {} and {} from {}",
                    ids[0], ids[1], target.name
                ),
                api.call(Method::POST, &format!("{base}/delete"), Some(body))
                    .await,
            )
        }
        Fault::ChangeRecord => {
            let r = &target.records[0];
            let body = json!({ "ids": [r.id], "documents": ["tampered after the upgrade"], "metadatas": [{"index": -1}] }).to_string();
            (
                format!(
                    "changed the document and metadata of {} in {}",
                    r.id, target.name
                ),
                api.call(Method::POST, &format!("{base}/update"), Some(body))
                    .await,
            )
        }
        Fault::DropCollection => (
            format!("dropped collection {}", target.name),
            api.delete_collection(&target.name).await,
        ),
        Fault::InvalidPodB => {
            return Err("invalid-pod-b is applied to B's render, not to the data".into());
        }
    };
    answer
        .require_2xx(&format!("fault {}", fault.as_str()))
        .map_err(|e| e.to_string())?;
    Ok(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_fault_lists_the_valid_ones() {
        let e = "invalid-pod".parse::<Fault>().unwrap_err();
        assert!(
            e.contains("`invalid-pod`")
                && e.contains("invalid-pod-b")
                && e.contains("delete-records"),
            "{e}"
        );
    }
}
