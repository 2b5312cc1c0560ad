//! The generated auth Secret across an upgrade.
//!
//! On a cluster the chart's `lookup` finds the installed Secret and re-renders its data, so
//! the credentials stay. `helm template` (the process backend) has no cluster to look in and
//! renders fresh random values; [`carry_over`] does what the cluster would so B can start
//! with A's credentials. That is an adjustment, not a proof: where the backend cannot run
//! `lookup`, a carried-over Secret's fate is [`SecretFate::NotProven`], never `Kept`.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use render::Object;
use render::objects::b64;
use serde::Serialize;

use crate::backend::Release;

pub use crate::prepare::Secrets;

/// In `next`'s render, every chart-rendered Secret named like one installed keeps the
/// installed data (as `lookup` would give it). Returns the names it carried over.
pub fn carry_over(next: &mut Release, installed: &Secrets) -> Vec<String> {
    let mut kept = Vec::new();
    for obj in &mut next.rendered.objects {
        let Object::Secret(s) = obj else { continue };
        let Some(name) = s.metadata.name.clone() else {
            continue;
        };
        if next.external_secrets.contains_key(&name) {
            continue;
        }
        if let Some(data) = installed.get(&name) {
            s.data = Some(
                data.iter()
                    .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            );
            s.string_data = None;
            kept.push(name);
        }
    }
    for doc in &mut next.rendered.documents {
        let name = doc["metadata"]["name"].as_str().map(str::to_string);
        if doc["kind"] == "Secret"
            && let Some(data) = name
                .as_ref()
                .filter(|n| kept.contains(n))
                .and_then(|n| installed.get(n))
            && let Some(map) = doc.as_object_mut()
        {
            map.remove("stringData");
            map.insert(
                "data".into(),
                serde_json::json!(
                    data.iter()
                        .map(|(k, v)| (k.clone(), b64(v)))
                        .collect::<BTreeMap<_, _>>()
                ),
            );
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
    /// The harness copied A's values into B's render because the backend cannot run the
    /// chart's `lookup`: whether the chart keeps it is not proven here.
    NotProven { reason: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct SecretContinuity {
    pub name: String,
    pub fate: SecretFate,
}

/// Compares the Secrets before and after (values never leave this function). `emulated`:
/// the Secrets [`carry_over`] copied, and why the backend could not run `lookup`.
pub fn continuity(
    before: &Secrets,
    after: &Secrets,
    emulated: Option<(&[String], &str)>,
) -> Vec<SecretContinuity> {
    before
        .iter()
        .map(|(name, old)| {
            let fate = match after.get(name) {
                None => SecretFate::NotUsed,
                Some(new)
                    if new == old && emulated.is_some_and(|(names, _)| names.contains(name)) =>
                {
                    SecretFate::NotProven {
                        reason: emulated.map(|(_, why)| why.to_string()).unwrap_or_default(),
                    }
                }
                Some(new) if new == old => SecretFate::Kept,
                Some(new) => {
                    let mut keys: Vec<String> = old
                        .keys()
                        .chain(new.keys())
                        .filter(|k| old.get(*k) != new.get(*k))
                        .cloned()
                        .collect();
                    keys.dedup();
                    SecretFate::Changed { keys }
                }
            };
            SecretContinuity {
                name: name.clone(),
                fate,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(token: &str) -> Secrets {
        BTreeMap::from([(
            "chromadb-auth".to_string(),
            BTreeMap::from([("token".to_string(), token.to_string())]),
        )])
    }

    #[test]
    fn a_rotated_token_is_reported_by_key_not_value() {
        let c = continuity(&secrets("old"), &secrets("new"), None);
        assert_eq!(
            c[0].fate,
            SecretFate::Changed {
                keys: vec!["token".into()]
            }
        );
        assert!(!format!("{c:?}").contains("old"));
    }

    #[test]
    fn the_same_token_is_kept() {
        assert_eq!(
            continuity(&secrets("t"), &secrets("t"), None)[0].fate,
            SecretFate::Kept
        );
    }

    #[test]
    fn a_carried_over_secret_is_not_proven_kept() {
        let carried = ["chromadb-auth".to_string()];
        let c = continuity(
            &secrets("t"),
            &secrets("t"),
            Some((&carried, "no API server for lookup")),
        );
        assert_eq!(
            c[0].fate,
            SecretFate::NotProven {
                reason: "no API server for lookup".into()
            }
        );
    }

    #[test]
    fn a_secret_the_new_release_lacks_is_not_used() {
        assert_eq!(
            continuity(&secrets("t"), &BTreeMap::new(), None)[0].fate,
            SecretFate::NotUsed
        );
    }
}
