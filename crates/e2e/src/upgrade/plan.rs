//! What to upgrade: one transition (from the command line) or the matrix in
//! fixtures/upgrades.yaml, validated before anything is deployed.

use std::path::{Path, PathBuf};

use render::{ChromaVersion, VersionMatrix};
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use super::signature::Signature;
use super::verdict::Verdict;
use crate::scenario::merge;

/// The oldest release the chart supports.
pub const OLDEST: ChromaVersion = ChromaVersion::new(0, 4, 3);

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{field} {input}: {reason}")]
    Version {
        field: String,
        input: String,
        reason: String,
    },
    #[error("{field}: values file {path} cannot be read: {reason}")]
    Values {
        field: String,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Parses and gates one version. `known` is fixtures/versions.yaml: a version outside it
/// has no measured pins and no place in the chart's gates, so it is refused by name.
pub fn version(
    field: &str,
    input: &str,
    known: &VersionMatrix,
) -> Result<ChromaVersion, PlanError> {
    let bad = |reason: String| PlanError::Version {
        field: field.into(),
        input: input.into(),
        reason,
    };
    let v = input
        .trim()
        .parse::<ChromaVersion>()
        .map_err(|e| bad(e.to_string()))?;
    if v < OLDEST {
        return Err(bad(format!(
            "older than the oldest supported release {OLDEST}"
        )));
    }
    if known.get(&v).is_none() {
        let list: Vec<String> = known.all().map(|v| v.to_string()).collect();
        return Err(bad(format!(
            "unknown version: not in fixtures/versions.yaml (known: {}); add it there (with pins if it needs any) to use it",
            list.join(", ")
        )));
    }
    Ok(v)
}

/// `from` must not be newer than `to` unless a downgrade is asked for explicitly.
pub fn direction(
    from: &ChromaVersion,
    to: &ChromaVersion,
    downgrade: bool,
    flag: &str,
) -> Result<(), PlanError> {
    if from > to && !downgrade {
        return Err(PlanError::Version {
            field: "--from/--to".into(),
            input: format!("{from} → {to}"),
            reason: format!("this is a downgrade; pass {flag} to run it anyway"),
        });
    }
    Ok(())
}

/// helm's layering of `files`, each read and parsed; a missing file is named.
pub fn merged_values(files: &[PathBuf], field: &str) -> Result<Value, PlanError> {
    let mut out = Value::Mapping(Default::default());
    for f in files {
        let bad = |reason: String| PlanError::Values {
            field: field.into(),
            path: f.clone(),
            reason,
        };
        let text = std::fs::read_to_string(f).map_err(|e| bad(e.to_string()))?;
        let v: Value = serde_yaml::from_str(&text).map_err(|e| bad(format!("not YAML: {e}")))?;
        match v {
            Value::Null => {}
            Value::Mapping(_) => merge(&mut out, v),
            _ => return Err(bad("the top level is not a mapping".into())),
        }
    }
    Ok(out)
}

/// One transition to run.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    pub from: ChromaVersion,
    pub to: ChromaVersion,
    pub reason: String,
    /// Layered on both sides.
    pub values_files: Vec<PathBuf>,
    /// Layered after `values_files`, on B only (a values change made with the upgrade).
    pub to_values_files: Vec<PathBuf>,
    /// A chart directory or git ref for A; `None` = the same chart as B.
    pub from_chart: Option<String>,
    /// What running it established (the matrix fails when a run disagrees).
    pub expect: Verdict,
    /// How the expected failure shows itself (every expected failure has one).
    pub signature: Option<Signature>,
    /// Delete A's StatefulSet with `--cascade=orphan` before upgrading (the migration step
    /// when A's chart differs in StatefulSet fields Kubernetes will not update).
    pub orphan_statefulset: bool,
    /// How the data gets from A to B.
    pub via: Via,
}

/// How a transition moves the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// `helm upgrade` on the same volume.
    #[default]
    InPlace,
    /// A's backup CronJob dumps to a claim, A is uninstalled, and a fresh release of B
    /// restores from that claim with `restore.enabled` (its post-install hook).
    Backup,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::InPlace => "in-place",
            Via::Backup => "backup",
        }
    }
}

impl Transition {
    pub fn id(&self) -> String {
        let v = |v: &ChromaVersion| v.to_string().replace(['.', '+'], "-");
        let kind = match self.via {
            Via::InPlace => "up",
            Via::Backup => "bk",
        };
        format!("{kind}-{}-to-{}", v(&self.from), v(&self.to))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatrix {
    transitions: Vec<RawTransition>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransition {
    from: String,
    to: String,
    reason: String,
    #[serde(default)]
    values: Vec<String>,
    #[serde(default)]
    to_values: Vec<String>,
    #[serde(default)]
    from_chart: Option<String>,
    #[serde(default)]
    downgrade: bool,
    #[serde(default = "survived")]
    expect: Verdict,
    #[serde(default)]
    signature: Option<RawSignature>,
    #[serde(default)]
    orphan_statefulset: bool,
    #[serde(default)]
    via: Via,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignature {
    #[serde(default)]
    checks: Vec<String>,
    #[serde(default)]
    says: Option<String>,
}

fn survived() -> Verdict {
    Verdict::Survived
}

/// fixtures/upgrades.yaml.
#[derive(Debug, Clone)]
pub struct UpgradeMatrix {
    pub transitions: Vec<Transition>,
}

impl UpgradeMatrix {
    pub fn load(
        path: &Path,
        values_dir: &Path,
        known: &VersionMatrix,
    ) -> Result<UpgradeMatrix, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|e| PlanError::Read {
            path: path.into(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, path, values_dir, known)
    }

    pub fn parse(
        text: &str,
        path: &Path,
        values_dir: &Path,
        known: &VersionMatrix,
    ) -> Result<UpgradeMatrix, PlanError> {
        let raw: RawMatrix = serde_yaml::from_str(text).map_err(|e| PlanError::Invalid {
            path: path.into(),
            reason: format!("expected `transitions: [{{from, to, reason, values?, to_values?, from_chart?, downgrade?, orphan_statefulset?, via?: in-place|backup, expect?, signature?: {{checks?, says?}}}}]`: {e}"),
        })?;
        let mut transitions = Vec::new();
        for (i, t) in raw.transitions.into_iter().enumerate() {
            let at = |k: &str| format!("{}: transitions[{i}].{k}", path.display());
            let from = version(&at("from"), &t.from, known)?;
            let to = version(&at("to"), &t.to, known)?;
            if from > to && !t.downgrade && t.via != Via::Backup {
                return Err(PlanError::Invalid {
                    path: path.into(),
                    reason: format!(
                        "transitions[{i}] {from} → {to} is a downgrade; mark it `downgrade: true`"
                    ),
                });
            }
            if from == to && t.from_chart.is_none() && t.via != Via::Backup {
                return Err(PlanError::Invalid {
                    path: path.into(),
                    reason: format!(
                        "transitions[{i}] {from} → {to} changes nothing; give a from_chart or another version"
                    ),
                });
            }
            if t.reason.trim().is_empty() {
                return Err(PlanError::Invalid {
                    path: path.into(),
                    reason: format!("transitions[{i}] needs a reason"),
                });
            }
            let row = format!("transitions[{i}] ({} → {})", t.from, t.to);
            let signature = match (t.expect, t.signature) {
                (Verdict::Survived, None) => None,
                (expect, None) => {
                    return Err(PlanError::Invalid {
                        path: path.into(),
                        reason: format!(
                            "{row} expects {} but names no signature: add `signature: {{checks: [the checks that fail on B], says: \"a substring of B's log or answer\"}}` so that a failure for another cause is not taken for it",
                            expect.as_str()
                        ),
                    });
                }
                (expect, Some(raw)) => {
                    Some(Signature::new(expect, &raw.checks, raw.says).map_err(|e| {
                        PlanError::Invalid {
                            path: path.into(),
                            reason: format!("{row}.signature: {e}"),
                        }
                    })?)
                }
            };
            let resolve = |names: &[String], key: &str| -> Result<Vec<PathBuf>, PlanError> {
                let files: Vec<PathBuf> = names.iter().map(|n| values_dir.join(n)).collect();
                merged_values(&files, &at(key))?;
                Ok(files)
            };
            let tr = Transition {
                values_files: resolve(&t.values, "values")?,
                to_values_files: resolve(&t.to_values, "to_values")?,
                from,
                to,
                reason: t.reason,
                from_chart: t.from_chart,
                expect: t.expect,
                signature,
                orphan_statefulset: t.orphan_statefulset,
                via: t.via,
            };
            if transitions.iter().any(|x: &Transition| {
                x.id() == tr.id()
                    && x.values_files == tr.values_files
                    && x.from_chart == tr.from_chart
            }) {
                return Err(PlanError::Invalid {
                    path: path.into(),
                    reason: format!("transitions[{i}] {} → {} is listed twice", tr.from, tr.to),
                });
            }
            transitions.push(tr);
        }
        Ok(UpgradeMatrix { transitions })
    }

    /// Keeps only the rows named `FROM:TO` (each must name at least one row).
    pub fn select(mut self, picks: &[String]) -> Result<UpgradeMatrix, PlanError> {
        if picks.is_empty() {
            return Ok(self);
        }
        let key = |t: &Transition| format!("{}:{}", t.from, t.to);
        let all: Vec<String> = self.transitions.iter().map(key).collect();
        for p in picks {
            if !all.contains(p) {
                return Err(PlanError::Version {
                    field: "--select".into(),
                    input: p.clone(),
                    reason: format!("no such row in the matrix (rows: {})", all.join(", ")),
                });
            }
        }
        self.transitions.retain(|t| picks.contains(&key(t)));
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn known() -> VersionMatrix {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/versions.yaml");
        VersionMatrix::load(root).unwrap()
    }

    #[rstest]
    #[case::below_the_floor("0.4.2", "oldest supported release 0.4.3")]
    #[case::not_a_version("latest", "not a Chroma version")]
    #[case::unlisted_release("0.5.7", "unknown version")]
    fn a_bad_version_is_refused_naming_the_flag(#[case] input: &str, #[case] why: &str) {
        let e = version("--from", input, &known()).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("--from {input}:")) && e.contains(why),
            "{e}"
        );
    }

    #[test]
    fn a_downgrade_needs_the_flag() {
        let e = direction(
            &"1.0.0".parse().unwrap(),
            &"0.6.3".parse().unwrap(),
            false,
            "--allow-downgrade",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("--allow-downgrade") && e.contains("downgrade"),
            "{e}"
        );
    }

    #[test]
    fn a_downgrade_via_backup_is_a_fresh_release_and_needs_no_downgrade_flag() {
        let text = "transitions:\n  - {from: '1.5.0', to: '0.6.3', via: backup, reason: restore a 1.x backup into 0.6}\n  - {from: '1.5.0', to: '0.6.3', downgrade: true, reason: rollback in place, expect: incompatible, signature: {says: x}}\n";
        let m = UpgradeMatrix::parse(text, Path::new("u.yaml"), Path::new("."), &known()).unwrap();
        let ids: Vec<(String, Via)> = m.transitions.iter().map(|t| (t.id(), t.via)).collect();
        assert_eq!(
            ids,
            [
                ("bk-1-5-0-to-0-6-3".to_string(), Via::Backup),
                ("up-1-5-0-to-0-6-3".to_string(), Via::InPlace)
            ]
        );
    }

    #[test]
    fn an_unknown_way_to_move_the_data_is_refused() {
        let text = "transitions:\n  - {from: '0.6.3', to: '1.5.0', via: rsync, reason: x}\n";
        let e = UpgradeMatrix::parse(text, Path::new("u.yaml"), Path::new("."), &known())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("rsync") && e.contains("via?: in-place|backup"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_values_file_is_named() {
        let e = merged_values(&[PathBuf::from("/nowhere/x.yaml")], "--values")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/nowhere/x.yaml") && e.starts_with("--values"),
            "{e}"
        );
    }

    #[test]
    fn the_fixture_matrix_loads() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let m = UpgradeMatrix::load(
            &root.join("fixtures/upgrades.yaml"),
            &root.join("fixtures/values"),
            &known(),
        )
        .unwrap();
        assert!(
            m.transitions
                .iter()
                .any(|t| t.from.to_string() == "0.6.3" && t.to.to_string() == "1.0.0")
        );
    }

    #[test]
    fn every_expected_failure_in_the_fixture_has_a_signature() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let m = UpgradeMatrix::load(
            &root.join("fixtures/upgrades.yaml"),
            &root.join("fixtures/values"),
            &known(),
        )
        .unwrap();
        let failures: Vec<&Transition> = m
            .transitions
            .iter()
            .filter(|t| t.expect != Verdict::Survived)
            .collect();
        assert!(
            !failures.is_empty(),
            "the fixture has no expected failure to check"
        );
        for t in failures {
            assert!(
                t.signature.is_some(),
                "{} → {} has no signature",
                t.from,
                t.to
            );
        }
    }

    #[test]
    fn an_expected_failure_without_a_signature_is_a_load_error_naming_the_row() {
        let text = "transitions:\n  - {from: 1.5.9, to: 1.0.0, downgrade: true, reason: r, expect: incompatible}\n";
        let e = UpgradeMatrix::parse(text, Path::new("u.yaml"), Path::new("."), &known())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "transitions[0] (1.5.9 → 1.0.0) expects incompatible but names no signature"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_bad_signature_is_a_load_error_naming_the_row() {
        let text = "transitions:\n  - {from: 0.4.3, to: 1.0.0, reason: r, expect: checks-failed, signature: {checks: [persist]}}\n";
        let e = UpgradeMatrix::parse(text, Path::new("u.yaml"), Path::new("."), &known())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("transitions[0] (0.4.3 → 1.0.0).signature: unknown check `persist`"),
            "{e}"
        );
    }

    #[test]
    fn a_select_naming_no_row_lists_the_rows() {
        let text = "transitions:\n  - {from: 0.6.3, to: 1.0.0, reason: r}\n";
        let m = UpgradeMatrix::parse(text, Path::new("u.yaml"), Path::new("."), &known()).unwrap();
        let e = m.select(&["1.0.0:0.6.3".into()]).unwrap_err().to_string();
        assert!(
            e.contains("--select 1.0.0:0.6.3") && e.contains("rows: 0.6.3:1.0.0"),
            "{e}"
        );
    }

    #[test]
    fn an_unmarked_downgrade_row_is_refused() {
        let text = "transitions:\n  - {from: 1.0.0, to: 0.6.3, reason: r}\n";
        let e = UpgradeMatrix::parse(text, Path::new("u.yaml"), Path::new("."), &known())
            .unwrap_err()
            .to_string();
        assert!(e.contains("downgrade: true"), "{e}");
    }
}
