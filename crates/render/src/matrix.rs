//! The version matrix (`fixtures/versions.yaml`): which Chroma releases the chart is gated
//! on, and why each one is there.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::version::ChromaVersion;

/// One release of the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixEntry {
    pub version: ChromaVersion,
    /// Which gate or behaviour this release pins down.
    pub reason: String,
    /// Part of the quick live subset (`cargo xtask test`).
    pub smoke: bool,
    /// Extra pip requirements needed to run this release (e.g. `numpy<2`).
    pub pins: Vec<String>,
    /// Live checks this release is known to fail, each with the words its failure must say.
    pub expected_failures: Vec<ExpectedFailure>,
}

/// A live check a release fails by its own doing (it loses data, it cannot start): the run
/// accepts that failure only when the failure message contains one of `causes` (a release
/// may fail in more than one way, e.g. depending on which file the full disk cut short).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedFailure {
    /// The check's name (`faults-full-volume`).
    pub check: String,
    /// Words the failure message must contain (one of them), e.g. the server's own error.
    pub causes: Vec<String>,
    /// What the release does wrong, and the upstream issue where there is one.
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionMatrix {
    pub versions: Vec<MatrixEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    #[error("cannot read the version matrix {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a valid version matrix (expected `versions: [{{version, reason, smoke?, pins?, expected_failures?}}]`): {source}"
    )]
    Yaml {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{path}: entry {index} (`{version}`): {reason}")]
    Entry {
        path: PathBuf,
        index: usize,
        version: String,
        reason: String,
    },
    #[error("{path}: lists no versions")]
    Empty { path: PathBuf },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatrix {
    versions: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    version: String,
    reason: String,
    #[serde(default)]
    smoke: bool,
    #[serde(default)]
    pins: Vec<String>,
    #[serde(default)]
    expected_failures: Vec<ExpectedFailure>,
}

impl VersionMatrix {
    pub fn load(path: impl AsRef<Path>) -> Result<Self, MatrixError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| MatrixError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses matrix text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, MatrixError> {
        let raw: RawMatrix = serde_yaml::from_str(text).map_err(|source| MatrixError::Yaml {
            path: path.to_path_buf(),
            source,
        })?;
        if raw.versions.is_empty() {
            return Err(MatrixError::Empty {
                path: path.to_path_buf(),
            });
        }
        let mut versions: Vec<MatrixEntry> = Vec::with_capacity(raw.versions.len());
        for (index, e) in raw.versions.into_iter().enumerate() {
            let entry_err = |reason: String| MatrixError::Entry {
                path: path.to_path_buf(),
                index,
                version: e.version.clone(),
                reason,
            };
            let version: ChromaVersion = e
                .version
                .parse()
                .map_err(|err| entry_err(format!("{err}")))?;
            if e.reason.trim().is_empty() {
                return Err(entry_err(
                    "has an empty `reason`; say which gate or behaviour it pins down".into(),
                ));
            }
            if versions.iter().any(|v| v.version == version) {
                return Err(entry_err("is listed twice".into()));
            }
            if let Some(p) = e.pins.iter().find(|p| p.trim().is_empty()) {
                return Err(entry_err(format!("has an empty pin {p:?}")));
            }
            if let Some(x) = e.expected_failures.iter().find(|x| {
                x.check.trim().is_empty()
                    || x.causes.is_empty()
                    || x.causes.iter().any(|c| c.trim().is_empty())
                    || x.why.trim().is_empty()
            }) {
                return Err(entry_err(format!(
                    "expected failure {x:?} needs a `check`, the `causes` its message may say (none empty) and `why`"
                )));
            }
            versions.push(MatrixEntry {
                version,
                reason: e.reason,
                smoke: e.smoke,
                pins: e.pins,
                expected_failures: e.expected_failures,
            });
        }
        Ok(VersionMatrix { versions })
    }

    pub fn all(&self) -> impl Iterator<Item = &ChromaVersion> {
        self.versions.iter().map(|e| &e.version)
    }

    /// The quick live subset.
    pub fn smoke(&self) -> impl Iterator<Item = &ChromaVersion> {
        self.versions.iter().filter(|e| e.smoke).map(|e| &e.version)
    }

    pub fn get(&self, v: &ChromaVersion) -> Option<&MatrixEntry> {
        self.versions.iter().find(|e| &e.version == v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<VersionMatrix, MatrixError> {
        VersionMatrix::parse(text, Path::new("versions.yaml"))
    }

    #[test]
    fn loads_entries_with_optional_fields() {
        let m = parse("versions:\n- {version: 0.4.3, reason: oldest, smoke: true}\n- {version: 0.5.0, reason: r, pins: ['numpy<2']}\n")
            .expect("valid matrix");
        assert_eq!(
            m.smoke().map(ToString::to_string).collect::<Vec<_>>(),
            ["0.4.3"]
        );
        assert_eq!(m.versions[1].pins, ["numpy<2"]);
    }

    #[test]
    fn expected_failures_load_and_an_empty_cause_is_refused() {
        let m = parse("versions:\n- {version: 0.6.3, reason: r, expected_failures: [{check: faults-full-volume, causes: [missing], why: loses its last batch}]}\n").unwrap();
        assert_eq!(m.versions[0].expected_failures[0].causes, ["missing"]);
        for bad in ["causes: ['']", "causes: []"] {
            let e = parse(&format!("versions:\n- {{version: 0.6.3, reason: r, expected_failures: [{{check: c, {bad}, why: w}}]}}\n")).unwrap_err().to_string();
            assert!(e.contains("`causes`") && e.contains("0.6.3"), "{bad}: {e}");
        }
    }

    #[test]
    fn unparsable_version_names_the_entry() {
        let e = parse("versions:\n- {version: 0.4.3, reason: a}\n- {version: one, reason: b}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("entry 1") && e.contains("`one`"), "{e}");
    }

    #[test]
    fn bad_yaml_names_the_file() {
        let e = parse("versions: [").unwrap_err().to_string();
        assert!(e.contains("versions.yaml"), "{e}");
    }

    #[test]
    fn unknown_field_is_refused() {
        let e = parse("versions:\n- {version: 0.4.3, reason: a, smok: true}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("smok"), "{e}");
    }

    #[test]
    fn duplicate_versions_are_refused() {
        let e = parse("versions:\n- {version: 0.4.3, reason: a}\n- {version: 0.4.3, reason: b}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn missing_reason_is_refused() {
        assert!(parse("versions:\n- {version: 0.4.3}\n").is_err());
        assert!(parse("versions:\n- {version: 0.4.3, reason: ' '}\n").is_err());
    }
}
