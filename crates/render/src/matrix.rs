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
    /// The release fails this way in some runs only (a race inside the server): a pass is a
    /// pass, not a sign the record is stale. Without it a pass fails the run, so that a record
    /// a fixed release no longer needs is noticed.
    #[serde(default)]
    pub intermittent: bool,
}

/// A live check every release of a range fails by its own doing, measured on each of them
/// (the all-releases run): it applies to every release from `from` through `until`, pinned in
/// the matrix or not, so a range does not depend on which releases happen to be pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownFailure {
    pub from: ChromaVersion,
    /// Inclusive: a release after it is not covered until a run has measured it.
    pub until: ChromaVersion,
    pub failure: ExpectedFailure,
}

impl KnownFailure {
    pub fn covers(&self, v: &ChromaVersion) -> bool {
        &self.from <= v && v <= &self.until
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionMatrix {
    pub versions: Vec<MatrixEntry>,
    pub known_failures: Vec<KnownFailure>,
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
        "{path} is not a valid version matrix (expected `versions: [{{version, reason, smoke?, pins?, expected_failures?}}]` and optionally `known_failures: [{{check, from, until, causes, why, intermittent?}}]`): {source}"
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
    /// `range`: the record as written, `` `check` from – until ``.
    #[error("{path}: known failure {index} ({range}): {reason}")]
    Known {
        path: PathBuf,
        index: usize,
        range: String,
        reason: String,
    },
    #[error("{path}: lists no versions")]
    Empty { path: PathBuf },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatrix {
    versions: Vec<RawEntry>,
    #[serde(default)]
    known_failures: Vec<RawKnown>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKnown {
    check: String,
    from: String,
    until: String,
    causes: Vec<String>,
    why: String,
    #[serde(default)]
    intermittent: bool,
}

/// Why an expected failure is unusable, if it is.
fn incomplete(x: &ExpectedFailure) -> Option<String> {
    (x.check.trim().is_empty()
        || x.causes.is_empty()
        || x.causes.iter().any(|c| c.trim().is_empty())
        || x.why.trim().is_empty())
    .then(|| {
        format!(
            "expected failure {x:?} needs a `check`, the `causes` its message may say (none empty) and `why`"
        )
    })
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
            if let Some(why) = e.expected_failures.iter().find_map(incomplete) {
                return Err(entry_err(why));
            }
            versions.push(MatrixEntry {
                version,
                reason: e.reason,
                smoke: e.smoke,
                pins: e.pins,
                expected_failures: e.expected_failures,
            });
        }
        let known_failures = raw
            .known_failures
            .into_iter()
            .enumerate()
            .map(|(index, k)| {
                let known_err = |reason: String| MatrixError::Known {
                    path: path.to_path_buf(),
                    index,
                    range: format!("`{}` {} – {}", k.check, k.from, k.until),
                    reason,
                };
                let from: ChromaVersion = k
                    .from
                    .parse()
                    .map_err(|e| known_err(format!("`from`: {e}")))?;
                let until: ChromaVersion = k
                    .until
                    .parse()
                    .map_err(|e| known_err(format!("`until`: {e}")))?;
                if until < from {
                    return Err(known_err("`until` is before `from`".into()));
                }
                let failure = ExpectedFailure {
                    check: k.check.clone(),
                    causes: k.causes.clone(),
                    why: k.why.clone(),
                    intermittent: k.intermittent,
                };
                if let Some(why) = incomplete(&failure) {
                    return Err(known_err(why));
                }
                Ok(KnownFailure {
                    from,
                    until,
                    failure,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // One expectation per release and check: a range and a pinned entry's own record for
        // the same check would leave which one judges the run to the order of a list.
        for (i, a) in known_failures.iter().enumerate() {
            for b in &known_failures[i + 1..] {
                if a.failure.check == b.failure.check && a.from <= b.until && b.from <= a.until {
                    return Err(MatrixError::Known {
                        path: path.to_path_buf(),
                        index: i,
                        range: format!("`{}` {} – {}", a.failure.check, a.from, a.until),
                        reason: format!(
                            "overlaps the range {} – {} of the same check",
                            b.from, b.until
                        ),
                    });
                }
            }
        }
        for (index, entry) in versions.iter_mut().enumerate() {
            for k in known_failures.iter().filter(|k| k.covers(&entry.version)) {
                if entry
                    .expected_failures
                    .iter()
                    .any(|x| x.check == k.failure.check)
                {
                    return Err(MatrixError::Entry {
                        path: path.to_path_buf(),
                        index,
                        version: entry.version.to_string(),
                        reason: format!(
                            "expects `{}` to fail, and so does the known failure {} – {}: keep one of them",
                            k.failure.check, k.from, k.until
                        ),
                    });
                }
                entry.expected_failures.push(k.failure.clone());
            }
        }
        Ok(VersionMatrix {
            versions,
            known_failures,
        })
    }

    /// The known failures of a range that covers `v` (for a release the matrix does not pin).
    pub fn known_for(&self, v: &ChromaVersion) -> Vec<ExpectedFailure> {
        self.known_failures
            .iter()
            .filter(|k| k.covers(v))
            .map(|k| k.failure.clone())
            .collect()
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

    #[rstest::rstest]
    #[case::a_range_marked_intermittent_is_so("intermittent: true, ", true)]
    #[case::a_range_without_the_mark_is_not("", false)]
    fn a_range_says_whether_its_failure_is_intermittent(#[case] mark: &str, #[case] is: bool) {
        let m = parse(&format!(
            "versions:\n- {{version: 0.4.3, reason: r}}\nknown_failures:\n- {{check: c, from: 0.4.3, until: 0.4.3, {mark}causes: [x], why: w}}\n"
        ))
        .unwrap();
        let v: ChromaVersion = "0.4.3".parse().unwrap();
        let got: Vec<bool> = m.known_for(&v).iter().map(|x| x.intermittent).collect();
        assert_eq!(got, [is]);
    }

    const RANGE: &str = "known_failures:\n- {check: faults-full-volume, from: 1.0.0, until: 1.3.0, causes: [disk is full], why: cannot start}\n";

    #[rstest::rstest]
    #[case::a_pinned_release_inside_the_range_expects_it("1.0.10", true)]
    #[case::the_ranges_first_release_expects_it("1.0.0", true)]
    #[case::the_ranges_last_release_expects_it("1.3.0", true)]
    #[case::a_release_after_the_range_does_not("1.3.2", false)]
    #[case::a_release_before_the_range_does_not("0.6.3", false)]
    fn a_known_failure_covers_exactly_its_range(#[case] version: &str, #[case] expected: bool) {
        let m = parse(&format!(
            "versions:\n- {{version: 0.6.3, reason: r}}\n- {{version: 1.0.10, reason: r}}\n{RANGE}"
        ))
        .unwrap();
        let v: ChromaVersion = version.parse().unwrap();
        let from_range = m
            .known_for(&v)
            .iter()
            .any(|x| x.check == "faults-full-volume");
        assert_eq!(from_range, expected, "{version}");
        if let Some(e) = m.get(&v) {
            assert_eq!(
                e.expected_failures
                    .iter()
                    .any(|x| x.causes == ["disk is full"]),
                expected,
                "the pinned entry {version} carries the range's record"
            );
        }
    }

    #[rstest::rstest]
    #[case::until_before_from(
        "known_failures:\n- {check: c, from: 1.3.0, until: 1.0.0, causes: [x], why: w}\n",
        "`until` is before `from`"
    )]
    #[case::a_version_that_does_not_parse(
        "known_failures:\n- {check: c, from: one, until: 1.0.0, causes: [x], why: w}\n",
        "`from`"
    )]
    #[case::an_empty_cause(
        "known_failures:\n- {check: c, from: 1.0.0, until: 1.1.0, causes: [''], why: w}\n",
        "`causes`"
    )]
    #[case::two_ranges_of_one_check_overlapping(
        "known_failures:\n- {check: c, from: 1.0.0, until: 1.1.0, causes: [x], why: w}\n- {check: c, from: 1.1.0, until: 1.2.0, causes: [y], why: w}\n",
        "overlaps the range 1.1.0 – 1.2.0"
    )]
    #[case::a_pinned_record_for_the_same_check_inside_the_range(
        "known_failures:\n- {check: faults-full-volume, from: 1.0.0, until: 1.3.0, causes: [x], why: w}\n",
        "keep one of them"
    )]
    fn a_bad_known_failure_is_refused_naming_it(#[case] known: &str, #[case] says: &str) {
        let e = parse(&format!(
            "versions:\n- {{version: 1.0.10, reason: r, expected_failures: [{{check: faults-full-volume, causes: [own], why: w}}]}}\n{}",
            known
        ))
        .map(|_| ())
        .unwrap_err()
        .to_string();
        assert!(e.contains(says), "{e}");
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
