//! The compatibility report of an all-releases run (kept as JSON under docs/compat/) and the
//! README table made from it: release ranges × features, equal neighbours collapsed, every
//! SKIP, expected failure and failure given with its cause.
//!
//! The table is a pure function of the report, so a test regenerates it without a server.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use render::ChromaVersion;
use serde::{Deserialize, Serialize};

use crate::checks::{CheckName, Outcome};
use crate::releases::pypi::LeftOut;
pub use crate::releases::result::{Cell, ReleaseResult, Status};
use crate::releases::saved::{RunKey, SavedRelease};
use crate::runner::RunReport;

/// Why reports cannot make one table, or the table cannot go into the README.
#[derive(Debug, thiserror::Error)]
pub enum CompatError {
    #[error("no compatibility report to merge")]
    NothingToMerge,
    #[error(
        "reports of chart {chart} on {backend} and chart {other_chart} on {other_backend} cannot make one table"
    )]
    OtherChart {
        chart: String,
        backend: String,
        other_chart: String,
        other_backend: String,
    },
    #[error("reports measured under different keys cannot make one table: {0}")]
    OtherKey(String),
    #[error(
        "a report that records what it was measured under and one that does not cannot make one table"
    )]
    KeyMissing,
    #[error("release {0} is in more than one report")]
    Duplicate(String),
    #[error("README.md lacks the compatibility-table markers:\n{start}\n{end}")]
    NoMarkers {
        start: &'static str,
        end: &'static str,
    },
    #[error("README.md's compatibility-table end marker comes before its start marker")]
    MarkersOutOfOrder,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompatReport {
    /// The day the run finished (UTC, YYYY-MM-DD).
    pub date: String,
    pub chart_version: String,
    /// What every release of the report was measured under (chart content, checks, values);
    /// absent in reports made before runs were keyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<RunKey>,
    pub backend: String,
    pub helm_version: String,
    /// Every runnable release PyPI had (0.4.3 or later, final, not yanked), oldest first.
    pub on_pypi: Vec<ChromaVersion>,
    /// Releases PyPI has that no run takes, with the cause.
    pub left_out: Vec<LeftOut>,
    pub jobs: usize,
    /// The longest part's wall time when `parts` runs were merged.
    pub wall_seconds: f64,
    /// How many runs (release ranges) this report merges.
    #[serde(default = "one")]
    pub parts: usize,
    pub releases: Vec<ReleaseResult>,
}

fn one() -> usize {
    1
}

impl CompatReport {
    /// Every release PyPI had was run.
    pub fn complete(&self) -> bool {
        self.on_pypi
            .iter()
            .all(|v| self.releases.iter().any(|r| r.version == *v))
    }

    /// Shard reports of one chart version (a workflow runs release ranges side by side) as one:
    /// releases in order, each once; the wall time is the longest shard's.
    pub fn merge(mut parts: Vec<CompatReport>) -> Result<CompatReport, CompatError> {
        let Some(mut out) = parts.pop() else {
            return Err(CompatError::NothingToMerge);
        };
        for p in parts {
            if (&p.chart_version, &p.backend) != (&out.chart_version, &out.backend) {
                return Err(CompatError::OtherChart {
                    chart: p.chart_version,
                    backend: p.backend,
                    other_chart: out.chart_version.clone(),
                    other_backend: out.backend.clone(),
                });
            }
            if let (Some(a), Some(b)) = (&p.key, &out.key)
                && a != b
            {
                return Err(CompatError::OtherKey(b.differences(a).join(", and ")));
            }
            if p.key.is_some() != out.key.is_some() {
                return Err(CompatError::KeyMissing);
            }
            for r in p.releases {
                if out.releases.iter().any(|x| x.version == r.version) {
                    return Err(CompatError::Duplicate(r.version.to_string()));
                }
                out.releases.push(r);
            }
            for v in p.on_pypi {
                if !out.on_pypi.contains(&v) {
                    out.on_pypi.push(v);
                }
            }
            out.date = out.date.max(p.date);
            out.parts += p.parts;
            out.wall_seconds = out.wall_seconds.max(p.wall_seconds);
        }
        out.releases.sort_by(|a, b| a.version.cmp(&b.version));
        out.on_pypi.sort();
        Ok(out)
    }

    /// The report of every release saved under one key, oldest release first: dated by the
    /// last release measured, with one part per invocation that measured some of them.
    pub fn from_saved(
        key: &RunKey,
        saved: &[SavedRelease],
        on_pypi: Vec<ChromaVersion>,
        left_out: Vec<LeftOut>,
    ) -> CompatReport {
        let mut releases: Vec<ReleaseResult> = saved.iter().map(|s| s.result.clone()).collect();
        releases.sort_by(|a, b| a.version.cmp(&b.version));
        let mut helm: Vec<&str> = saved.iter().map(|s| s.helm_version.as_str()).collect();
        helm.sort();
        helm.dedup();
        let mut invocations: Vec<&str> = saved.iter().map(|s| s.invocation.as_str()).collect();
        invocations.sort();
        invocations.dedup();
        CompatReport {
            date: releases
                .iter()
                .map(|r| r.date.clone())
                .max()
                .unwrap_or_default(),
            chart_version: key.chart_version.clone(),
            key: Some(key.clone()),
            backend: key.backend.clone(),
            helm_version: helm.join(", "),
            on_pypi,
            left_out,
            jobs: saved.iter().map(|s| s.jobs).max().unwrap_or(0),
            wall_seconds: (releases.iter().map(|r| r.seconds).sum::<f64>() * 10.0).round() / 10.0,
            parts: invocations.len().max(1),
            releases,
        }
    }

    /// Each day of measurement with the releases measured that day (as ranges of PyPI's list).
    pub fn days(&self) -> Vec<(String, String)> {
        let mut days: BTreeMap<String, Vec<&ChromaVersion>> = BTreeMap::new();
        for r in &self.releases {
            let day = if r.date.is_empty() {
                self.date.clone()
            } else {
                r.date.clone()
            };
            days.entry(day).or_default().push(&r.version);
        }
        days.into_iter()
            .map(|(d, vs)| (d, ranges_of(&self.on_pypi, &vs)))
            .collect()
    }

    pub fn parse(text: &str) -> Result<CompatReport, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn failed(&self) -> bool {
        self.releases
            .iter()
            .any(|r| r.cells.iter().any(|c| c.status == Status::Fail))
    }
}

/// The cells of one release from the live run's results: each planned check of each
/// deployment once (a deployment that failed as a whole fails every check it planned).
pub fn cells_of(report: &RunReport, version: &ChromaVersion) -> Vec<Cell> {
    let mut cells = Vec::new();
    for d in report.deployments.iter().filter(|d| &d.version == version) {
        let cell = |check, status, reason: &str| Cell {
            deployment: d.deployment.clone(),
            check,
            status,
            reason: reason.to_string(),
        };
        if let Some(e) = &d.error {
            cells.extend(d.planned.iter().map(|&c| cell(c, Status::Fail, e)));
            continue;
        }
        if d.checks.is_empty()
            && let Some(why) = &d.skipped
        {
            let status = if why.starts_with("the spec refuses") {
                Status::Refused
            } else {
                Status::Skip
            };
            cells.extend(d.planned.iter().map(|&c| cell(c, status, why)));
            continue;
        }
        for c in &d.checks {
            cells.push(match &c.outcome {
                Outcome::Pass { .. } => cell(c.check, Status::Pass, ""),
                Outcome::Fail { reason, .. } => cell(c.check, Status::Fail, reason),
                Outcome::Skipped { reason } => cell(c.check, Status::Skip, reason),
                Outcome::ExpectedFail { cause, why, .. } => {
                    cell(c.check, Status::Xfail, &format!("{why} (said: {cause})"))
                }
            });
        }
    }
    cells
}

pub const START: &str = "<!-- compat-table:start (generated from docs/compat/releases.json by `cargo xtask e2e --all-releases` or `cargo xtask docs`; do not edit) -->";
pub const END: &str = "<!-- compat-table:end -->";

/// `text` with the release's own number replaced, so behaviour that is the same on every
/// release of a range reads the same and collapses ("Chroma 0.4.9 has no …").
fn generic(text: &str, v: &ChromaVersion) -> String {
    let needle = v.to_string();
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(&needle) {
        let tail = &rest[i + needle.len()..];
        let starts = rest[..i]
            .chars()
            .last()
            .is_none_or(|c| !c.is_ascii_digit() && c != '.');
        let mut next = tail.chars();
        let ends = match next.next() {
            None => true,
            Some('.') => next.next().is_none_or(|c| !c.is_ascii_digit()),
            Some(c) => !c.is_ascii_digit(),
        };
        out.push_str(&rest[..i]);
        out.push_str(if starts && ends {
            "this release"
        } else {
            &needle
        });
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// `text` without what differs from one run to the next of the same behaviour: a check's
/// seed and measured times (`seed 1421…`, `0.5 s`, `6.07s`), so equal failures share a note.
fn steady(text: &str) -> String {
    // A response body quoted as evidence holds the run's own random data; the JSON keeps it.
    let text = match text.find("; body: ") {
        Some(i) => format!("{}; body: …", &text[..i]),
        None => text.to_string(),
    };
    let mut out: Vec<String> = Vec::new();
    let mut after_seed = false;
    for word in text.split(' ') {
        let core = word.trim_end_matches([':', ',', ';', ')']);
        let tail = &word[core.len()..];
        let number = core.trim_end_matches('s');
        let measured = number.matches('.').count() == 1
            && number
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
        if after_seed && !core.is_empty() && core.chars().all(|c| c.is_ascii_digit()) {
            out.push(format!("…{tail}"));
        } else if measured {
            out.push(format!("…{}{tail}", &core[number.len()..]));
        } else {
            out.push(scrub(word));
        }
        after_seed = word == "seed";
    }
    out.join(" ")
}

/// A word without the parts a run picks afresh: the loopback port a server got
/// (`127.0.0.1:34247`) and the ids a server made (`/collections/<uuid>/get`).
fn scrub(word: &str) -> String {
    const LOOPBACK: &str = "127.0.0.1:";
    let word = match word.find(LOOPBACK) {
        Some(i) => {
            let after = &word[i + LOOPBACK.len()..];
            let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits > 0 {
                format!("{}…{}", &word[..i + LOOPBACK.len()], &after[digits..])
            } else {
                word.to_string()
            }
        }
        None => word.to_string(),
    };
    let uuid = |s: &str| {
        s.len() == 36
            && s.char_indices().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            })
    };
    word.split('/')
        .map(|seg| if uuid(seg) { "…" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// One line of cause in the notes: a status, the check, the reason (release-generic).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct NoteKey {
    check: CheckName,
    status: Status,
    reason: String,
}

/// The README section: a header saying what was run, the table, the notes.
pub fn table(report: &CompatReport) -> String {
    let checks: Vec<CheckName> = CheckName::all()
        .filter(|c| {
            report
                .releases
                .iter()
                .any(|r| r.cells.iter().any(|x| x.check == *c))
        })
        .collect();
    // Notes are numbered in order of first appearance; each lists the deployments it covers.
    let mut notes: Vec<(NoteKey, Vec<String>)> = Vec::new();
    let mut rows: Vec<(ChromaVersion, Vec<String>)> = Vec::new();
    for r in &report.releases {
        let mut row = Vec::new();
        for &check in &checks {
            let mut statuses: BTreeMap<Status, Vec<usize>> = BTreeMap::new();
            for c in r.cells.iter().filter(|c| c.check == check) {
                let entry = statuses.entry(c.status).or_default();
                if c.status != Status::Pass {
                    let key = NoteKey {
                        check,
                        status: c.status,
                        reason: steady(&generic(&c.reason, &r.version)),
                    };
                    let n = match notes.iter().position(|(k, _)| *k == key) {
                        Some(n) => n,
                        None => {
                            notes.push((key, Vec::new()));
                            notes.len() - 1
                        }
                    };
                    if !notes[n].1.contains(&c.deployment) {
                        notes[n].1.push(c.deployment.clone());
                    }
                    if !entry.contains(&(n + 1)) {
                        entry.push(n + 1);
                    }
                }
            }
            let text = if statuses.is_empty() {
                "—".to_string()
            } else {
                statuses
                    .iter()
                    .rev()
                    .map(|(s, ns)| {
                        if ns.is_empty() {
                            s.label().to_string()
                        } else {
                            format!(
                                "{} {}",
                                s.label(),
                                ns.iter().map(|n| format!("[{n}]")).collect::<String>()
                            )
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            row.push(text);
        }
        rows.push((r.version.clone(), row));
    }

    let mut out = String::new();
    let ran = ranges(report);
    let span = match (report.on_pypi.first(), report.on_pypi.last()) {
        (Some(a), Some(b)) => format!("{a} – {b}"),
        _ => "none".into(),
    };
    let days: Vec<String> = match report.days().as_slice() {
        [(day, _)] => vec![format!("on {day}")],
        days => days
            .iter()
            .map(|(day, vs)| format!("{day} ({vs})"))
            .collect(),
    };
    let dates = match days.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("on {} and {last}", rest.join(", ")),
        None => "never".into(),
    };
    let measured_under = match &report.key {
        Some(k) => {
            let deployments: std::collections::BTreeSet<&str> = k
                .checks
                .iter()
                .filter_map(|c| c.split(':').next())
                .collect();
            format!(
                "content sha256 {}, {} checks of {} deployments",
                &k.chart_hash[..k.chart_hash.len().min(12)],
                k.checks.len(),
                deployments.len()
            )
        }
        None => "content and check list not recorded".into(),
    };
    let took = if report.key.is_some() {
        let sum: f64 = report.releases.iter().map(|r| r.seconds).sum();
        format!(
            "{} of release runs over {} invocation{}",
            minutes(sum),
            report.parts,
            if report.parts == 1 { "" } else { "s" }
        )
    } else if report.parts > 1 {
        format!(
            "{} (the longest of {} runs of release ranges)",
            minutes(report.wall_seconds),
            report.parts
        )
    } else {
        minutes(report.wall_seconds)
    };
    let _ = writeln!(
        out,
        "Measured {dates} with chart {} ({measured_under}; helm {}, {} backend, {} deployments at once): {} {} of the {} final Chroma releases on PyPI ({span}): {ran}, in {took}.",
        report.chart_version,
        report.helm_version,
        report.backend,
        report.jobs,
        if report.complete() {
            "every one,"
        } else {
            "a cut,"
        },
        report.releases.len(),
        report.on_pypi.len(),
    );
    if !report.complete() {
        let _ = writeln!(
            out,
            "\n**Partial run:** only the releases above were run; this table says nothing about the others."
        );
    }
    if !report.left_out.is_empty() {
        let list: Vec<String> = report
            .left_out
            .iter()
            .map(|l| format!("{} ({})", l.version, l.why))
            .collect();
        let _ = writeln!(out, "\nNot run: {}.", list.join("; "));
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "| Releases | {} |",
        checks
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(out, "|---|{}", "---|".repeat(checks.len()));
    let mut i = 0;
    while i < rows.len() {
        let mut j = i;
        while j + 1 < rows.len() && rows[j + 1].1 == rows[i].1 {
            j += 1;
        }
        let range = if i == j {
            rows[i].0.to_string()
        } else {
            format!("{} – {} ({})", rows[i].0, rows[j].0, j - i + 1)
        };
        let _ = writeln!(
            out,
            "| {range} | {} |",
            rows[i].1.join(" | ").replace('\n', " ")
        );
        i = j + 1;
    }
    if !notes.is_empty() {
        out.push('\n');
        for (n, (k, deployments)) in notes.iter().enumerate() {
            let reason = k.reason.replace('\n', " ").replace('|', "\\|");
            let _ = writeln!(
                out,
                "{}. {} {} on {}: {}",
                n + 1,
                k.status.label(),
                k.check,
                deployments.join(", "),
                reason
            );
        }
    }
    out
}

/// The README section: the current report's table, then each earlier report's (measured under
/// another key: another chart content or check list, so not one table with the current one),
/// kept rather than dropped, in the order given.
pub fn section(current: &CompatReport, earlier: &[CompatReport]) -> String {
    let mut out = table(current);
    for e in earlier {
        let _ = writeln!(
            out,
            "\n#### Earlier measurement: chart {} on {}\n\nMeasured under another chart content or check list than the table above, so kept apart from it; it says what that chart did then.\n",
            e.chart_version, e.date
        );
        out.push_str(&table(e));
    }
    out
}

/// The releases run as ranges of PyPI's list (`0.5.15 – 0.5.16, 0.6.3 – 1.0.16`): a gap in
/// a merged run shows.
fn ranges(report: &CompatReport) -> String {
    let ran: Vec<&ChromaVersion> = report.releases.iter().map(|r| &r.version).collect();
    ranges_of(&report.on_pypi, &ran)
}

fn ranges_of(all: &[ChromaVersion], ran: &[&ChromaVersion]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<(&ChromaVersion, &ChromaVersion)> = None;
    for v in all {
        match (ran.contains(&v), current) {
            (true, None) => current = Some((v, v)),
            (true, Some((a, _))) => current = Some((a, v)),
            (false, Some((a, b))) => {
                out.push(if a == b {
                    a.to_string()
                } else {
                    format!("{a} – {b}")
                });
                current = None;
            }
            (false, None) => {}
        }
    }
    if let Some((a, b)) = current {
        out.push(if a == b {
            a.to_string()
        } else {
            format!("{a} – {b}")
        });
    }
    // A release PyPI no longer lists (yanked since) still shows.
    for v in ran.iter().filter(|v| !all.contains(v)) {
        out.push(v.to_string());
    }
    out.join(", ")
}

fn minutes(s: f64) -> String {
    let m = (s / 60.0).round() as u64;
    if m >= 60 {
        format!("{} h {:02} min", m / 60, m % 60)
    } else {
        format!("{m} min")
    }
}

/// Replaces the text between the markers; they must each be there once, in order.
pub fn splice(readme: &str, table: &str) -> Result<String, CompatError> {
    let (Some(s), Some(e)) = (readme.find(START), readme.find(END)) else {
        return Err(CompatError::NoMarkers {
            start: START,
            end: END,
        });
    };
    if e < s {
        return Err(CompatError::MarkersOutOfOrder);
    }
    Ok(format!("{}{START}\n{table}{}", &readme[..s], &readme[e..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> ChromaVersion {
        s.parse().unwrap()
    }

    fn cell(d: &str, check: CheckName, status: Status, reason: &str) -> Cell {
        Cell {
            deployment: d.into(),
            check,
            status,
            reason: reason.into(),
        }
    }

    fn report(releases: Vec<ReleaseResult>, on_pypi: Vec<ChromaVersion>) -> CompatReport {
        CompatReport {
            date: "2026-12-04".into(),
            chart_version: "1.1.0".into(),
            key: None,
            backend: "process".into(),
            helm_version: "v4.1.4".into(),
            on_pypi,
            left_out: vec![LeftOut {
                version: "1.5.3".into(),
                why: "yanked on PyPI (yanked)".into(),
            }],
            jobs: 2,
            wall_seconds: 4000.0,
            parts: 1,
            releases,
        }
    }

    fn release(ver: &str, cells: Vec<Cell>) -> ReleaseResult {
        ReleaseResult {
            version: v(ver),
            date: String::new(),
            seconds: 1.0,
            prepare_seconds: 0.0,
            cells,
        }
    }

    #[test]
    fn equal_neighbours_collapse_and_release_numbers_in_causes_do_not_split_ranges() {
        let skip = |ver: &str| {
            cell(
                "telemetry",
                crate::releases::check::TELEMETRY,
                Status::Skip,
                &format!("Chroma {ver} has no OpenTelemetry (from 0.4.15)"),
            )
        };
        let r = report(
            vec![
                release(
                    "0.4.13",
                    vec![
                        cell("a", crate::releases::check::AUTH, Status::Pass, ""),
                        skip("0.4.13"),
                    ],
                ),
                release(
                    "0.4.14",
                    vec![
                        cell("a", crate::releases::check::AUTH, Status::Pass, ""),
                        skip("0.4.14"),
                    ],
                ),
                release(
                    "0.4.15",
                    vec![
                        cell("a", crate::releases::check::AUTH, Status::Pass, ""),
                        cell(
                            "telemetry",
                            crate::releases::check::TELEMETRY,
                            Status::Pass,
                            "",
                        ),
                    ],
                ),
            ],
            ["0.4.3", "0.4.13", "0.4.14", "0.4.15", "1.5.9"]
                .map(v)
                .to_vec(),
        );
        let t = table(&r);
        assert!(
            t.contains("| 0.4.13 – 0.4.14 (2) | PASS | SKIP [1] |\n| 0.4.15 | PASS | PASS |"),
            "{t}"
        );
        assert!(t.contains("1. SKIP telemetry on telemetry: Chroma this release has no OpenTelemetry (from 0.4.15)"), "{t}");
        assert!(t.contains("**Partial run:**") && t.contains("a cut, 3 of the 5 final Chroma releases on PyPI (0.4.3 – 1.5.9): 0.4.13 – 0.4.15, in 1 h 07 min."), "{t}");
        assert!(
            t.contains("Not run: 1.5.3 (yanked on PyPI (yanked))"),
            "{t}"
        );
    }

    fn key(hash: char) -> RunKey {
        RunKey {
            chart_version: "1.1.0".into(),
            chart_hash: hash.to_string().repeat(64),
            backend: "process".into(),
            checks: vec!["a: auth".into(), "telemetry: telemetry".into()],
            values_hash: "b".repeat(64),
        }
    }

    fn saved(k: &RunKey, ver: &str, date: &str, invocation: &str, seconds: f64) -> SavedRelease {
        let mut result = release(
            ver,
            vec![cell("a", crate::releases::check::AUTH, Status::Pass, "")],
        );
        result.date = date.into();
        result.seconds = seconds;
        SavedRelease {
            key: k.clone(),
            helm_version: "v4.1.4".into(),
            jobs: 2,
            invocation: invocation.into(),
            result,
        }
    }

    #[test]
    fn a_report_from_releases_saved_by_several_runs_says_which_were_measured_when() {
        let k = key('a');
        let all = [
            "0.4.6", "0.4.7", "0.4.8", "0.5.0", "0.5.15", "0.5.16", "1.5.9",
        ]
        .map(v)
        .to_vec();
        let r = CompatReport::from_saved(
            &k,
            &[
                saved(&k, "0.5.16", "2026-12-05", "t1", 600.0),
                saved(&k, "0.4.7", "2026-12-06", "t2", 1200.0),
                saved(&k, "0.5.15", "2026-12-05", "t1", 600.0),
                saved(&k, "0.4.8", "2026-12-06", "t2", 1200.0),
            ],
            all,
            vec![],
        );
        assert_eq!(
            r.releases
                .iter()
                .map(|r| r.version.to_string())
                .collect::<Vec<_>>(),
            ["0.4.7", "0.4.8", "0.5.15", "0.5.16"]
        );
        assert_eq!(
            (r.date.as_str(), r.parts, r.key.as_ref()),
            ("2026-12-06", 2, Some(&k))
        );
        let t = table(&r);
        assert!(
            t.starts_with("Measured on 2026-12-05 (0.5.15 – 0.5.16) and 2026-12-06 (0.4.7 – 0.4.8) with chart 1.1.0 (content sha256 aaaaaaaaaaaa, 2 checks of 2 deployments; helm v4.1.4, process backend, 2 deployments at once): a cut, 4 of the 7 final Chroma releases on PyPI (0.4.6 – 1.5.9): 0.4.7 – 0.4.8, 0.5.15 – 0.5.16, in 1 h 00 min of release runs over 2 invocations."),
            "{t}"
        );
    }

    #[test]
    fn an_earlier_report_under_another_key_is_shown_apart_not_merged_and_merging_it_is_refused() {
        let now = CompatReport::from_saved(
            &key('a'),
            &[saved(&key('a'), "0.4.7", "2026-12-05", "t", 60.0)],
            vec![v("0.4.7"), v("1.0.0")],
            vec![],
        );
        let mut then = report(
            vec![release(
                "1.0.0",
                vec![cell(
                    "a",
                    crate::releases::check::AUTH,
                    Status::Skip,
                    "no auth on 1.x",
                )],
            )],
            vec![v("0.4.7"), v("1.0.0")],
        );
        let s = section(&now, std::slice::from_ref(&then));
        let (current, earlier) = s
            .split_once("#### Earlier measurement: chart 1.1.0 on 2026-12-04")
            .expect(&s);
        assert!(
            current.contains("| 0.4.7 | PASS |") && !current.contains("1.0.0 |"),
            "{s}"
        );
        assert!(
            earlier.contains("content and check list not recorded")
                && earlier.contains("| 1.0.0 | SKIP [1] |"),
            "{s}"
        );
        let err = CompatReport::merge(vec![now.clone(), then.clone()]).unwrap_err();
        assert!(err.to_string().contains("one that does not"), "{err}");
        then.key = Some(key('c'));
        let err = CompatReport::merge(vec![now, then]).unwrap_err();
        assert!(
            err.to_string().contains("different keys")
                && err.to_string().contains("chart content sha256"),
            "{err}"
        );
    }

    #[test]
    fn a_mixed_cell_names_each_status_and_a_complete_run_says_so() {
        let r = report(
            vec![release(
                "1.0.0",
                vec![
                    cell(
                        "cors-wildcard",
                        crate::releases::check::CORS,
                        Status::Refused,
                        "the spec refuses these values on 1.0.0",
                    ),
                    cell(
                        "reset-cors-token",
                        crate::releases::check::CORS,
                        Status::Pass,
                        "",
                    ),
                    cell(
                        "faults",
                        crate::releases::check::FAULTS_FULL_VOLUME,
                        Status::Xfail,
                        "cannot start (said: disk is full)",
                    ),
                ],
            )],
            vec![v("1.0.0")],
        );
        let t = table(&r);
        assert!(
            t.contains("| 1.0.0 | REFUSED [1], PASS | XFAIL [2] |"),
            "{t}"
        );
        assert!(
            t.contains("every one, 1 of the 1") && !t.contains("Partial"),
            "{t}"
        );
    }

    #[test]
    fn shards_merge_into_one_report_and_a_release_twice_is_refused() {
        let a = report(vec![release("1.0.0", vec![])], vec![v("0.4.3"), v("1.0.0")]);
        let b = report(vec![release("0.4.3", vec![])], vec![v("0.4.3"), v("1.0.0")]);
        let m = CompatReport::merge(vec![a.clone(), b]).unwrap();
        assert_eq!(
            m.releases
                .iter()
                .map(|r| r.version.to_string())
                .collect::<Vec<_>>(),
            ["0.4.3", "1.0.0"]
        );
        assert!(m.complete());
        assert!(
            table(&m).contains("in 1 h 07 min (the longest of 2 runs of release ranges)"),
            "{}",
            table(&m)
        );
        let mut gap = m.clone();
        gap.on_pypi = ["0.4.3", "0.4.4", "0.4.5", "1.0.0"].map(v).to_vec();
        assert!(
            table(&gap).contains(": 0.4.3, 1.0.0, in"),
            "{}",
            table(&gap)
        );
        let err = CompatReport::merge(vec![a.clone(), a]).unwrap_err();
        assert!(
            err.to_string()
                .contains("release 1.0.0 is in more than one report"),
            "{err}"
        );
    }

    #[test]
    fn seeds_and_measured_times_do_not_split_equal_failures() {
        assert_eq!(
            steady(
                "seed 14213316905275034013: 100 records acknowledged in 0.5 s, then ready within 6.074529836s: exit (code: 13) on 1.0.2"
            ),
            "seed …: 100 records acknowledged in … s, then ready within …s: exit (code: 13) on 1.0.2"
        );
        assert_eq!(
            steady(
                "reading back (POST http://127.0.0.1:34247/api/v1/collections/e538e1f6-0494-4a38-9688-ff927f530162/get) answered HTTP 500 on 127.0.0.1:"
            ),
            "reading back (POST http://127.0.0.1:…/api/v1/collections/…/get) answered HTTP 500 on 127.0.0.1:",
            "a server's port and the ids it made differ on every run"
        );
        assert_eq!(
            steady(
                "answered HTTP 200, but `embeddings` has 2900 entries for 0 ids; body: {\"ids\":[],\"embeddings\":[[0.9160,-0.12]]}"
            ),
            "answered HTTP 200, but `embeddings` has 2900 entries for 0 ids; body: …"
        );
    }

    #[test]
    fn generic_replaces_only_the_whole_release_number() {
        assert_eq!(
            generic(
                "Chroma 1.0.1 differs from 1.0.10 and 11.0.1; 1.0.1.",
                &v("1.0.1")
            ),
            "Chroma this release differs from 1.0.10 and 11.0.1; this release."
        );
    }
}
