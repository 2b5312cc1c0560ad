//! The results of an all-releases run, kept one release at a time as each finishes
//! (`target/compat-run/<chart-version>/<release>.json`), so a run stopped part way (Ctrl-C, a
//! session's end, a lost machine) resumes where it stopped and the table is made from every
//! release measured so far.
//!
//! A saved result counts only under the key it was measured with: the chart's version and
//! content, the backend, and what the run deploys and checks. Results of two keys are never
//! one table: opening the saved results of another key is refused, naming what changed.

use std::path::{Path, PathBuf};

use render::ChromaVersion;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::releases::result::ReleaseResult;
use crate::scenario::LivePlan;

/// What a release's outcomes depend on besides the release itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunKey {
    pub chart_version: String,
    /// sha256 over the chart directory's files (each file's relative path and bytes, in path
    /// order): a template edited without a version bump changes it.
    pub chart_hash: String,
    pub backend: String,
    /// `deployment: check` for every check the run plans, sorted.
    pub checks: Vec<String>,
    /// sha256 over each deployment's name and layered values: the same checks on other values
    /// measure something else.
    pub values_hash: String,
}

impl RunKey {
    /// The checks `plan` runs (after `--scenario`/`--check` cuts) and a hash of its values.
    pub fn of_plan(
        plan: &LivePlan,
        filter: &Option<std::collections::BTreeSet<crate::checks::CheckName>>,
    ) -> (Vec<String>, String) {
        let mut checks = Vec::new();
        let mut h = Sha256::new();
        for d in &plan.deployments {
            let planned = crate::runner::selected(d, filter);
            if planned.is_empty() {
                continue;
            }
            checks.extend(planned.iter().map(|c| format!("{}: {c}", d.name)));
            h.update(d.name.as_bytes());
            h.update([0]);
            h.update(
                serde_yaml::to_string(&d.values)
                    .unwrap_or_default()
                    .as_bytes(),
            );
            h.update([0]);
        }
        checks.sort();
        (checks, hex::encode(h.finalize()))
    }

    /// What differs between results measured under `then` and a run under `self`, one phrase each.
    pub fn differences(&self, then: &RunKey) -> Vec<String> {
        let mut out = Vec::new();
        if self.chart_version != then.chart_version {
            out.push(format!(
                "chart version {} then, {} now",
                then.chart_version, self.chart_version
            ));
        }
        if self.chart_hash != then.chart_hash {
            out.push(format!(
                "chart content sha256 {} then, {} now",
                short(&then.chart_hash),
                short(&self.chart_hash)
            ));
        }
        if self.backend != then.backend {
            out.push(format!(
                "the {} backend then, the {} backend now",
                then.backend, self.backend
            ));
        }
        if self.checks != then.checks {
            let added: Vec<&String> = self
                .checks
                .iter()
                .filter(|c| !then.checks.contains(c))
                .collect();
            let gone: Vec<&String> = then
                .checks
                .iter()
                .filter(|c| !self.checks.contains(c))
                .collect();
            let mut parts = Vec::new();
            if !added.is_empty() {
                parts.push(format!(
                    "{} now run that were not ({})",
                    added.len(),
                    listing(&added)
                ));
            }
            if !gone.is_empty() {
                parts.push(format!(
                    "{} run then that are not now ({})",
                    gone.len(),
                    listing(&gone)
                ));
            }
            out.push(format!("the check list: {}", parts.join("; ")));
        }
        if self.values_hash != then.values_hash {
            out.push(format!(
                "the deployments' values sha256 {} then, {} now",
                short(&then.values_hash),
                short(&self.values_hash)
            ));
        }
        out
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

fn listing(items: &[&String]) -> String {
    const SHOWN: usize = 4;
    let mut s = items
        .iter()
        .take(SHOWN)
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    s
}

/// sha256 over every file under `dir` (relative path, NUL, length, bytes; in path order).
pub fn content_hash(dir: &Path) -> Result<String, SavedError> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    let mut h = Sha256::new();
    for rel in files {
        let path = dir.join(&rel);
        let bytes = std::fs::read(&path).map_err(|source| SavedError::Read {
            path: path.clone(),
            source,
        })?;
        h.update(rel.to_string_lossy().as_bytes());
        h.update([0]);
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Ok(hex::encode(h.finalize()))
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SavedError> {
    let entries = std::fs::read_dir(dir).map_err(|source| SavedError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for e in entries {
        let e = e.map_err(|source| SavedError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = e.path();
        if path.is_dir() {
            collect(root, &path, out)?;
        } else {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

/// One release's results as saved the moment it finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedRelease {
    pub key: RunKey,
    pub helm_version: String,
    pub jobs: usize,
    /// When the invocation that measured it started (RFC 3339): results of one invocation share it.
    pub invocation: String,
    /// Its outcomes, with the day it was measured.
    pub result: ReleaseResult,
}

#[derive(Debug, thiserror::Error)]
pub enum SavedError {
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a saved release result (delete it, or pass --fresh to start over)", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{} holds the results of release {inside}, not of {named}", path.display())]
    Misfiled {
        path: PathBuf,
        inside: ChromaVersion,
        named: String,
    },
    #[error(
        "the {count} saved release results under {} were measured with {}; one table cannot mix them: pass --fresh to discard them and measure again, or restore what changed",
        dir.display(),
        what.join(", and ")
    )]
    KeyChanged {
        dir: PathBuf,
        count: usize,
        what: Vec<String>,
    },
}

/// The saved results of one chart version.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    key: RunKey,
}

/// `<runs>/<chart-version>`: each chart version's results apart, so a version bump starts afresh.
pub fn dir_for(runs: &Path, chart_version: &str) -> PathBuf {
    runs.join(chart_version)
}

impl Store {
    /// The results saved under `key`'s chart version, oldest release first; refused when any
    /// was measured under another key.
    pub fn open(runs: &Path, key: RunKey) -> Result<(Store, Vec<SavedRelease>), SavedError> {
        let dir = dir_for(runs, &key.chart_version);
        let mut saved = Vec::new();
        if dir.exists() {
            let entries = std::fs::read_dir(&dir).map_err(|source| SavedError::Read {
                path: dir.clone(),
                source,
            })?;
            for e in entries {
                let path = e
                    .map_err(|source| SavedError::Read {
                        path: dir.clone(),
                        source,
                    })?
                    .path();
                let Some(name) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".json"))
                else {
                    continue;
                };
                // A write in progress (`.0.4.6.json.tmp`) or anything hidden is not a result.
                if name.starts_with('.') {
                    continue;
                }
                let text = std::fs::read_to_string(&path).map_err(|source| SavedError::Read {
                    path: path.clone(),
                    source,
                })?;
                let r: SavedRelease =
                    serde_json::from_str(&text).map_err(|source| SavedError::Parse {
                        path: path.clone(),
                        source,
                    })?;
                if r.result.version.to_string() != name {
                    let named = name.to_string();
                    return Err(SavedError::Misfiled {
                        path,
                        inside: r.result.version,
                        named,
                    });
                }
                saved.push(r);
            }
        }
        saved.sort_by(|a, b| a.result.version.cmp(&b.result.version));
        if let Some(other) = saved.iter().find(|r| r.key != key) {
            return Err(SavedError::KeyChanged {
                dir,
                count: saved.len(),
                what: key.differences(&other.key),
            });
        }
        Ok((Store { dir, key }, saved))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn key(&self) -> &RunKey {
        &self.key
    }

    /// Saves one release's results (written aside, then renamed: a kill mid-write leaves no
    /// half file that a resume would refuse).
    pub fn save(&self, r: &SavedRelease) -> Result<PathBuf, SavedError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| SavedError::Write {
            path: self.dir.clone(),
            source,
        })?;
        let path = self.dir.join(format!("{}.json", r.result.version));
        let tmp = self.dir.join(format!(".{}.json.tmp", r.result.version));
        let text = serde_json::to_string_pretty(r).map_err(|e| SavedError::Write {
            path: path.clone(),
            source: e.into(),
        })? + "\n";
        std::fs::write(&tmp, text).map_err(|source| SavedError::Write {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &path).map_err(|source| SavedError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }
}

/// Removes the saved results of `chart_version` (`--fresh`); how many there were.
pub fn discard(runs: &Path, chart_version: &str) -> Result<usize, SavedError> {
    let dir = dir_for(runs, chart_version);
    if !dir.exists() {
        return Ok(0);
    }
    let n = std::fs::read_dir(&dir)
        .map_err(|source| SavedError::Read {
            path: dir.clone(),
            source,
        })?
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .count();
    std::fs::remove_dir_all(&dir).map_err(|source| SavedError::Write {
        path: dir.clone(),
        source,
    })?;
    Ok(n)
}

/// The releases of `selection` not yet saved, in order.
pub fn still_to_run(selection: &[ChromaVersion], saved: &[SavedRelease]) -> Vec<ChromaVersion> {
    selection
        .iter()
        .filter(|v| !saved.iter().any(|s| s.result.version == **v))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::releases::result::{Cell, Status};
    use rstest::rstest;

    fn v(s: &str) -> ChromaVersion {
        s.parse().unwrap()
    }

    fn key() -> RunKey {
        RunKey {
            chart_version: "1.1.0".into(),
            chart_hash: "a".repeat(64),
            backend: "process".into(),
            checks: vec![
                "basic-custom-port: auth".into(),
                "telemetry: telemetry".into(),
            ],
            values_hash: "b".repeat(64),
        }
    }

    fn saved(k: &RunKey, ver: &str) -> SavedRelease {
        SavedRelease {
            key: k.clone(),
            helm_version: "v4.1.4".into(),
            jobs: 2,
            invocation: "2026-12-05T01:00:00Z".into(),
            result: ReleaseResult {
                version: v(ver),
                date: "2026-12-05".into(),
                seconds: 90.0,
                prepare_seconds: 3.0,
                cells: vec![Cell {
                    deployment: "telemetry".into(),
                    check: crate::releases::check::TELEMETRY,
                    status: Status::Pass,
                    reason: String::new(),
                }],
            },
        }
    }

    #[test]
    fn saved_releases_come_back_in_release_order_and_only_the_rest_of_a_selection_runs() {
        let runs = tempfile::tempdir().unwrap();
        let (store, none) = Store::open(runs.path(), key()).unwrap();
        assert!(none.is_empty());
        for ver in ["0.4.8", "0.4.15", "0.4.7"] {
            let path = store.save(&saved(&key(), ver)).unwrap();
            assert_eq!(path, runs.path().join("1.1.0").join(format!("{ver}.json")));
        }
        let (_, back) = Store::open(runs.path(), key()).unwrap();
        assert_eq!(
            back.iter()
                .map(|r| r.result.version.to_string())
                .collect::<Vec<_>>(),
            ["0.4.7", "0.4.8", "0.4.15"]
        );
        assert_eq!(
            back[0],
            saved(&key(), "0.4.7"),
            "a result reads back as saved"
        );
        let selection = ["0.4.6", "0.4.7", "0.4.8", "0.4.9"].map(v);
        assert_eq!(still_to_run(&selection, &back), [v("0.4.6"), v("0.4.9")]);
    }

    #[test]
    fn another_chart_version_is_a_directory_of_its_own_and_starts_empty() {
        let runs = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(runs.path(), key()).unwrap();
        store.save(&saved(&key(), "0.4.7")).unwrap();
        let bumped = RunKey {
            chart_version: "1.2.0".into(),
            ..key()
        };
        let (store, none) = Store::open(runs.path(), bumped).unwrap();
        assert!(
            none.is_empty(),
            "results of chart 1.1.0 must not count for 1.2.0"
        );
        assert_eq!(store.dir(), runs.path().join("1.2.0"));
    }

    #[rstest]
    #[case::chart_content_edited_without_a_version_bump(RunKey { chart_hash: "c".repeat(64), ..key() }, "chart content sha256 aaaaaaaaaaaa then, cccccccccccc now")]
    #[case::a_deployment_or_check_added(
        RunKey { checks: vec!["basic-custom-port: auth".into(), "faults: faults-sigkill".into(), "telemetry: telemetry".into()], ..key() },
        "the check list: 1 now run that were not (faults: faults-sigkill)"
    )]
    #[case::a_check_cut_by_a_filter(RunKey { checks: vec!["telemetry: telemetry".into()], ..key() }, "the check list: 1 run then that are not now (basic-custom-port: auth)")]
    #[case::another_backend(RunKey { backend: "k3s".into(), ..key() }, "the process backend then, the k3s backend now")]
    #[case::a_deployments_values_changed(RunKey { values_hash: "d".repeat(64), ..key() }, "the deployments' values sha256 bbbbbbbbbbbb then, dddddddddddd now")]
    fn results_of_another_key_are_refused_naming_what_changed(
        #[case] now: RunKey,
        #[case] says: &str,
    ) {
        let runs = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(runs.path(), key()).unwrap();
        store.save(&saved(&key(), "0.4.7")).unwrap();
        store.save(&saved(&key(), "0.4.8")).unwrap();
        let err = Store::open(runs.path(), now).unwrap_err().to_string();
        assert!(err.contains(says), "{err}");
        assert!(
            err.contains("the 2 saved release results under")
                && err.contains("pass --fresh to discard them"),
            "{err}"
        );
    }

    #[test]
    fn discarding_removes_the_chart_versions_results_so_a_changed_key_opens_empty() {
        let runs = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(runs.path(), key()).unwrap();
        store.save(&saved(&key(), "0.4.7")).unwrap();
        let changed = RunKey {
            chart_hash: "c".repeat(64),
            ..key()
        };
        assert!(Store::open(runs.path(), changed.clone()).is_err());
        assert_eq!(discard(runs.path(), "1.1.0").unwrap(), 1);
        assert!(Store::open(runs.path(), changed).unwrap().1.is_empty());
        assert_eq!(
            discard(runs.path(), "1.1.0").unwrap(),
            0,
            "nothing left to discard"
        );
    }

    #[rstest]
    #[case::not_json("{ half a file", "is not a saved release result")]
    #[case::another_release_inside(&serde_json::to_string(&saved(&key(), "0.4.9")).unwrap(), "holds the results of release 0.4.9, not of 0.4.7")]
    fn a_damaged_or_misfiled_result_is_refused_naming_the_file(
        #[case] text: &str,
        #[case] says: &str,
    ) {
        let runs = tempfile::tempdir().unwrap();
        let dir = dir_for(runs.path(), "1.1.0");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("0.4.7.json"), text).unwrap();
        // A write cut short by a kill is not read at all.
        std::fs::write(dir.join(".0.4.6.json.tmp"), "{").unwrap();
        let err = Store::open(runs.path(), key()).unwrap_err().to_string();
        assert!(err.contains("0.4.7.json") && err.contains(says), "{err}");
    }

    #[test]
    fn the_chart_hash_follows_every_files_path_and_bytes() {
        let a = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(a.path().join("templates")).unwrap();
        std::fs::write(a.path().join("Chart.yaml"), "version: 1.1.0\n").unwrap();
        std::fs::write(
            a.path().join("templates/_env.tpl"),
            "{{- define \"env\" }}{{ end }}\n",
        )
        .unwrap();
        let first = content_hash(a.path()).unwrap();
        assert_eq!(
            first,
            content_hash(a.path()).unwrap(),
            "the same files hash the same"
        );
        std::fs::write(
            a.path().join("templates/_env.tpl"),
            "{{- define \"env\" }} {{ end }}\n",
        )
        .unwrap();
        let edited = content_hash(a.path()).unwrap();
        assert_ne!(first, edited, "an edited template changes the hash");
        std::fs::rename(
            a.path().join("templates/_env.tpl"),
            a.path().join("templates/_env2.tpl"),
        )
        .unwrap();
        assert_ne!(
            edited,
            content_hash(a.path()).unwrap(),
            "a renamed file changes the hash"
        );
    }
}
