//! Every Chroma server release on PyPI, resolved at run time from PyPI's JSON API and cached,
//! so a new release becomes a row of the compatibility table without anyone listing it.
//!
//! What counts as a release to run: a plain `MAJOR.MINOR.PATCH` version, 0.4.3 or later, with
//! at least one file that is not yanked. Pre-releases (`1.0.0b0`) are left out: no chart user
//! runs them and their images are not published under the chart's tag scheme. A release whose
//! every file is yanked (`1.5.3`) is left out too: pip and uv refuse to pick it for a range and
//! upstream withdrew it. Both are listed with their cause, never dropped silently.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use render::ChromaVersion;
use serde::{Deserialize, Serialize};

/// Where the release list comes from.
pub const PYPI_JSON: &str = "https://pypi.org/pypi/chromadb/json";

#[derive(Debug, thiserror::Error)]
pub enum ReleasesError {
    #[error(
        "cannot resolve the Chroma releases: {url} failed ({source}) and there is no cached list at {}; run once with network access",
        cache.display()
    )]
    NoList {
        url: String,
        #[source]
        source: FetchError,
        cache: PathBuf,
    },
    #[error("--offline: there is no cached release list at {0}; run once without --offline")]
    NoCache(PathBuf),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} is not a release list: {source}")]
    Parse {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{flag} {given}: {why}")]
    Bound {
        flag: &'static str,
        given: String,
        why: String,
    },
}

/// Why PyPI gave no release list.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("{0}")]
    Request(#[source] reqwest::Error),
    #[error("HTTP {0}")]
    Status(reqwest::StatusCode),
    #[error("reading the answer: {0}")]
    Body(#[source] reqwest::Error),
    #[error(transparent)]
    Parse(Box<ReleasesError>),
}

/// One version PyPI lists, 0.4.3 or later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PypiRelease {
    pub version: String,
    /// Every file of it is yanked: PEP 592's reason, or `no reason given`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yanked: Option<String>,
}

/// The list as cached: what PyPI said and when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseList {
    /// Seconds since the epoch of the fetch.
    pub fetched_at: u64,
    pub source: String,
    pub releases: Vec<PypiRelease>,
}

/// How the list was obtained, for the run's log and its report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provenance {
    Fresh,
    /// PyPI was not asked (`--offline`) or did not answer (`why`); the cache is `age` old.
    Cached {
        age: Duration,
        why: String,
    },
}

/// A release PyPI has that the run leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftOut {
    pub version: String,
    pub why: String,
}

/// The releases to run and those left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Every runnable release 0.4.3 or later, oldest first (before the cut).
    pub all: Vec<ChromaVersion>,
    /// What `--since`/`--until` kept of `all`.
    pub run: Vec<ChromaVersion>,
    pub left_out: Vec<LeftOut>,
}

/// `<cache>/chromadb-chart-harness/pypi-chromadb-releases.json`, beside the environments.
pub fn default_cache_path() -> Result<PathBuf, crate::venv::VenvError> {
    let venvs = crate::venv::VenvCache::default_root()?;
    Ok(venvs
        .parent()
        .unwrap_or(&venvs)
        .join("pypi-chromadb-releases.json"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The release list: PyPI first (unless `offline`), the cache when PyPI does not answer.
/// A fresh list replaces the cache.
pub async fn resolve(
    cache: &Path,
    offline: bool,
) -> Result<(ReleaseList, Provenance), ReleasesError> {
    let failed = if offline {
        None
    } else {
        match fetch().await {
            Ok(list) => {
                write_cache(cache, &list)?;
                return Ok((list, Provenance::Fresh));
            }
            Err(e) => Some(e),
        }
    };
    let text = match std::fs::read_to_string(cache) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(match failed {
                None => ReleasesError::NoCache(cache.to_path_buf()),
                Some(source) => ReleasesError::NoList {
                    url: PYPI_JSON.into(),
                    source,
                    cache: cache.to_path_buf(),
                },
            });
        }
        Err(source) => {
            return Err(ReleasesError::Io {
                context: format!("reading {}", cache.display()),
                source,
            });
        }
    };
    let list: ReleaseList = serde_json::from_str(&text).map_err(|source| ReleasesError::Parse {
        what: cache.display().to_string(),
        source,
    })?;
    let age = Duration::from_secs(now().saturating_sub(list.fetched_at));
    // What the run's log and report say of why the cache stands in: text from here on.
    let why = failed.map_or_else(|| "--offline".to_string(), |e| crate::text::chain(&e));
    Ok((list, Provenance::Cached { age, why }))
}

fn write_cache(cache: &Path, list: &ReleaseList) -> Result<(), ReleasesError> {
    let io = |context: String| move |source| ReleasesError::Io { context, source };
    if let Some(dir) = cache.parent() {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    let text = serde_json::to_string_pretty(list).map_err(|source| ReleasesError::Parse {
        what: "the release list".into(),
        source,
    })?;
    // Written aside and renamed: a run killed mid-write never leaves half a list.
    let tmp = cache.with_extension(format!("json.{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, cache).map_err(io(format!("moving {} into place", tmp.display())))
}

/// PyPI's JSON API, distilled.
async fn fetch() -> Result<ReleaseList, FetchError> {
    chroma_api::ensure_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(FetchError::Client)?;
    let resp = client
        .get(PYPI_JSON)
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(FetchError::Request)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(FetchError::Status(status));
    }
    let body = resp.text().await.map_err(FetchError::Body)?;
    let releases = parse_pypi(&body).map_err(|e| FetchError::Parse(Box::new(e)))?;
    Ok(ReleaseList {
        fetched_at: now(),
        source: PYPI_JSON.into(),
        releases,
    })
}

#[derive(Deserialize)]
struct PypiDoc {
    releases: std::collections::BTreeMap<String, Vec<PypiFile>>,
}

#[derive(Deserialize)]
struct PypiFile {
    #[serde(default)]
    yanked: bool,
    #[serde(default)]
    yanked_reason: Option<String>,
}

/// The versions of a PyPI JSON document (`{"releases": {"0.4.3": [files…]}}`) 0.4.3 or later,
/// pre-releases included (the selection says what to do with them); versions without files
/// (a name registered, nothing uploaded) are not releases.
pub fn parse_pypi(body: &str) -> Result<Vec<PypiRelease>, ReleasesError> {
    let doc: PypiDoc = serde_json::from_str(body).map_err(|source| ReleasesError::Parse {
        what: PYPI_JSON.into(),
        source,
    })?;
    let mut out: Vec<PypiRelease> = doc
        .releases
        .into_iter()
        .filter(|(_, files)| !files.is_empty())
        .filter(|(v, _)| at_least_oldest(v))
        .map(|(version, files)| {
            let yanked = files.iter().all(|f| f.yanked).then(|| {
                files
                    .iter()
                    .find_map(|f| f.yanked_reason.clone())
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| "no reason given".into())
            });
            PypiRelease { version, yanked }
        })
        .collect();
    out.sort_by_key(|a| sort_key(&a.version));
    Ok(out)
}

/// The leading `MAJOR.MINOR.PATCH` numbers of a PEP 440 version (`1.0.0b0` → 1,0,0).
fn sort_key(v: &str) -> (Vec<u64>, String) {
    let nums: Vec<u64> = v
        .split('.')
        .map(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .map(|d| d.parse().unwrap_or(0))
        .take(3)
        .collect();
    (nums, v.to_string())
}

fn at_least_oldest(v: &str) -> bool {
    let (nums, _) = sort_key(v);
    nums >= vec![0, 4, 3]
}

/// A plain final release, as the chart and the harness name Chroma versions.
fn final_release(v: &str) -> Option<ChromaVersion> {
    let parts: Vec<&str> = v.split('.').collect();
    (parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())))
    .then(|| v.parse().ok())
    .flatten()
}

/// Picks the releases to run: final releases not yanked, cut to `since..=until`. A bound must
/// itself be a release of the list (a typo would otherwise cut silently), and `since` may not
/// come after `until`.
pub fn select(
    list: &[PypiRelease],
    since: Option<&ChromaVersion>,
    until: Option<&ChromaVersion>,
) -> Result<Selection, ReleasesError> {
    let mut all = Vec::new();
    let mut left_out = Vec::new();
    for r in list {
        match (final_release(&r.version), &r.yanked) {
            (None, _) => left_out.push(LeftOut {
                version: r.version.clone(),
                why: "pre-release (not a final MAJOR.MINOR.PATCH release)".into(),
            }),
            (Some(_), Some(reason)) => left_out.push(LeftOut {
                version: r.version.clone(),
                why: format!("yanked on PyPI ({reason})"),
            }),
            (Some(v), None) => all.push(v),
        }
    }
    all.sort();
    for (flag, bound) in [("--since", since), ("--until", until)] {
        if let Some(b) = bound
            && !all.contains(b)
        {
            let why = match left_out.iter().find(|l| l.version == b.to_string()) {
                Some(l) => format!("is left out of the run: {}", l.why),
                None => "is not a Chroma release on PyPI".into(),
            };
            return Err(ReleasesError::Bound {
                flag,
                given: b.to_string(),
                why: format!(
                    "{why}; accepted: one of the releases to run, {}",
                    neighbours(&all, b)
                ),
            });
        }
    }
    if let (Some(s), Some(u)) = (since, until)
        && s > u
    {
        return Err(ReleasesError::Bound {
            flag: "--since",
            given: s.to_string(),
            why: format!("comes after --until {u}; accepted: a release at or before it"),
        });
    }
    let run = all
        .iter()
        .filter(|v| since.is_none_or(|s| *v >= s) && until.is_none_or(|u| *v <= u))
        .cloned()
        .collect();
    Ok(Selection { all, run, left_out })
}

/// "0.5.5 … 0.5.7 around it (the list runs 0.4.3 – 1.5.9)".
fn neighbours(all: &[ChromaVersion], b: &ChromaVersion) -> String {
    let (Some(first), Some(last)) = (all.first(), all.last()) else {
        return "none (the list is empty)".into();
    };
    let below = all.iter().rev().find(|v| *v < b);
    let above = all.iter().find(|v| *v > b);
    let near = match (below, above) {
        (Some(l), Some(h)) => format!("{l} and {h} around it; "),
        (Some(l), None) => format!("{l} below it; "),
        (None, Some(h)) => format!("{h} above it; "),
        (None, None) => String::new(),
    };
    format!("{near}the list runs {first} – {last}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const DOC: &str = r#"{"releases": {
        "0.3.29": [{"yanked": false}],
        "0.4.3": [{"yanked": false}], "0.4.4": [{"yanked": false}, {"yanked": false}],
        "0.4.10": [{"yanked": false}], "0.5.0": [],
        "1.0.0b0": [{"yanked": false}], "1.0.0": [{"yanked": false}],
        "1.5.3": [{"yanked": true, "yanked_reason": "broken wheel"}, {"yanked": true}],
        "1.5.4": [{"yanked": true}, {"yanked": false}]
    }}"#;

    fn list() -> Vec<PypiRelease> {
        parse_pypi(DOC).unwrap()
    }

    fn v(s: &str) -> ChromaVersion {
        s.parse().unwrap()
    }

    #[test]
    fn releases_sort_by_number_and_drop_old_and_empty_ones() {
        let names: Vec<String> = list().into_iter().map(|r| r.version).collect();
        assert_eq!(
            names,
            [
                "0.4.3", "0.4.4", "0.4.10", "1.0.0", "1.0.0b0", "1.5.3", "1.5.4"
            ]
        );
    }

    #[test]
    fn a_release_is_yanked_only_when_every_file_is_and_prereleases_are_left_out_with_their_cause() {
        let s = select(&list(), None, None).unwrap();
        assert_eq!(
            s.run,
            [v("0.4.3"), v("0.4.4"), v("0.4.10"), v("1.0.0"), v("1.5.4")]
        );
        assert_eq!(
            s.left_out,
            [
                LeftOut {
                    version: "1.0.0b0".into(),
                    why: "pre-release (not a final MAJOR.MINOR.PATCH release)".into()
                },
                LeftOut {
                    version: "1.5.3".into(),
                    why: "yanked on PyPI (broken wheel)".into()
                },
            ]
        );
    }

    #[test]
    fn since_and_until_cut_inclusively() {
        let s = select(&list(), Some(&v("0.4.4")), Some(&v("1.0.0"))).unwrap();
        assert_eq!(s.run, [v("0.4.4"), v("0.4.10"), v("1.0.0")]);
        assert_eq!(s.all.len(), 5);
    }

    #[rstest]
    #[case::a_version_pypi_does_not_have(
        "--since",
        Some("0.4.5"),
        None,
        "0.4.5: is not a Chroma release on PyPI; accepted: one of the releases to run, 0.4.4 and 0.4.10 around it; the list runs 0.4.3 – 1.5.4"
    )]
    #[case::a_yanked_release(
        "--until",
        None,
        Some("1.5.3"),
        "1.5.3: is left out of the run: yanked on PyPI (broken wheel)"
    )]
    #[case::since_after_until(
        "--since",
        Some("1.0.0"),
        Some("0.4.4"),
        "--since 1.0.0: comes after --until 0.4.4"
    )]
    fn bad_bounds_are_refused_naming_what_is_accepted(
        #[case] flag: &str,
        #[case] since: Option<&str>,
        #[case] until: Option<&str>,
        #[case] says: &str,
    ) {
        let err = select(&list(), since.map(v).as_ref(), until.map(v).as_ref())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(flag) && err.contains(says), "{err}");
    }

    #[tokio::test]
    async fn offline_without_a_cache_names_the_cache_and_with_one_uses_it_saying_why() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("list.json");
        let err = resolve(&cache, true).await.unwrap_err().to_string();
        assert!(
            err.contains(&cache.display().to_string()) && err.contains("--offline"),
            "{err}"
        );
        write_cache(
            &cache,
            &ReleaseList {
                fetched_at: now() - 7200,
                source: PYPI_JSON.into(),
                releases: list(),
            },
        )
        .unwrap();
        let (got, how) = resolve(&cache, true).await.unwrap();
        assert_eq!(got.releases, list());
        assert!(
            matches!(how, Provenance::Cached { age, ref why } if age.as_secs() >= 7200 && why == "--offline"),
            "{how:?}"
        );
    }
}
