//! Every place a render puts labels: object metadata, pod templates and claim templates.

use std::collections::BTreeMap;

use crate::objects::Rendered;

/// One set of labels and where it sits, e.g. `StatefulSet chroma-chromadb (pod template)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSite {
    pub kind: String,
    pub name: String,
    /// `metadata`, `pod template` or `claim template <name>`.
    pub place: String,
    pub labels: BTreeMap<String, String>,
}

impl std::fmt::Display for LabelSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.kind, self.name, self.place)
    }
}

fn labels_at(v: &serde_json::Value) -> BTreeMap<String, String> {
    v["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Rendered {
    /// Labels on every object, every pod template (StatefulSet, Job) and every claim template.
    pub fn label_sites(&self) -> Vec<LabelSite> {
        let mut out = Vec::new();
        for doc in &self.documents {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let site = |place: String, meta: &serde_json::Value| LabelSite {
                kind: kind.clone(),
                name: name.clone(),
                place,
                labels: labels_at(meta),
            };
            out.push(site("metadata".into(), &doc["metadata"]));
            if doc["spec"]["template"]["metadata"].is_object()
                || doc["spec"]["template"].is_object()
            {
                out.push(site(
                    "pod template".into(),
                    &doc["spec"]["template"]["metadata"],
                ));
            }
            for claim in doc["spec"]["volumeClaimTemplates"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let claim_name = claim["metadata"]["name"].as_str().unwrap_or_default();
                out.push(site(
                    format!("claim template {claim_name}"),
                    &claim["metadata"],
                ));
            }
        }
        out
    }

    /// The StatefulSet's selector `matchLabels`.
    pub fn selector(&self) -> BTreeMap<String, String> {
        self.statefulset()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.selector.match_labels.clone())
            .unwrap_or_default()
    }

    /// The StatefulSet's pod template labels.
    pub fn pod_labels(&self) -> BTreeMap<String, String> {
        self.statefulset()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default()
    }
}
