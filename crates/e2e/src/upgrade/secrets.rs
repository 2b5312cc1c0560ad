//! The generated auth Secret across an upgrade.
//!
//! On a cluster the chart's `lookup` finds the installed Secret and re-renders its data, so
//! the credentials stay. `helm template` (the process backend) has no cluster to look in and
//! renders fresh random values; [`carry_over`] does what the cluster would so the upgrade can
//! still be exercised — which is why only a cluster backend can prove `lookup` itself.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use render::Object;
use render::objects::b64;
use serde::Serialize;

use crate::backend::Release;

pub type Secrets = BTreeMap<String, BTreeMap<String, String>>;

/// In `next`'s render, every chart-rendered Secret named like one installed keeps the
/// installed data (as `lookup` would give it). Returns the names it carried over.
pub fn carry_over(next: &mut Release, installed: &Secrets) -> Vec<String> {
    let mut kept = Vec::new();
    for obj in &mut next.rendered.objects {
        let Object::Secret(s) = obj else { continue };
        let Some(name) = s.metadata.name.clone() else { continue };
        if next.external_secrets.contains_key(&name) {
            continue;
        }
        if let Some(data) = installed.get(&name) {
            s.data = Some(data.iter().map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec()))).collect());
            s.string_data = None;
            kept.push(name);
        }
    }
    for doc in &mut next.rendered.documents {
        let name = doc["metadata"]["name"].as_str().map(str::to_string);
        if doc["kind"] == "Secret"
            && let Some(data) = name.as_ref().filter(|n| kept.contains(n)).and_then(|n| installed.get(n))
            && let Some(map) = doc.as_object_mut()
        {
            map.remove("stringData");
            map.insert("data".into(), serde_json::json!(data.iter().map(|(k, v)| (k.clone(), b64(v))).collect::<BTreeMap<_, _>>()));
        }
    }
    kept
}

/// What happened to one Secret the old release's pod had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretFate {
    /// Same keys, same values.
    Kept,
    /// The new pod gets it with other values (credentials rotated by the upgrade).
    Changed { keys: Vec<String> },
    /// The new release has no such Secret (e.g. 1.x has no auth).
    NotUsed,
}

#[derive(Debug, Clone, Serialize)]
pub struct SecretContinuity {
    pub name: String,
    pub fate: SecretFate,
}

/// Compares the Secrets before and after (values never leave this function).
pub fn continuity(before: &Secrets, after: &Secrets) -> Vec<SecretContinuity> {
    before
        .iter()
        .map(|(name, old)| {
            let fate = match after.get(name) {
                None => SecretFate::NotUsed,
                Some(new) if new == old => SecretFate::Kept,
                Some(new) => {
                    let mut keys: Vec<String> = old.keys().chain(new.keys()).filter(|k| old.get(*k) != new.get(*k)).cloned().collect();
                    keys.dedup();
                    SecretFate::Changed { keys }
                }
            };
            SecretContinuity { name: name.clone(), fate }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(token: &str) -> Secrets {
        BTreeMap::from([("chromadb-auth".to_string(), BTreeMap::from([("token".to_string(), token.to_string())]))])
    }

    #[test]
    fn a_rotated_token_is_reported_by_key_not_value() {
        let c = continuity(&secrets("old"), &secrets("new"));
        assert_eq!(c[0].fate, SecretFate::Changed { keys: vec!["token".into()] });
        assert!(!format!("{c:?}").contains("old"));
    }

    #[test]
    fn the_same_token_is_kept() {
        assert_eq!(continuity(&secrets("t"), &secrets("t"))[0].fate, SecretFate::Kept);
    }

    #[test]
    fn a_secret_the_new_release_lacks_is_not_used() {
        assert_eq!(continuity(&secrets("t"), &BTreeMap::new())[0].fate, SecretFate::NotUsed);
    }
}
