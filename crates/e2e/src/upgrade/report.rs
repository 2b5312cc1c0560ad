//! The upgrade report as text (stdout) and JSON (`--report`).

use std::fmt::Write;

use serde_json::Value;

use super::dataset::DataDiff;
use super::{MatrixReport, UpgradeReport};
use crate::checks::Outcome;

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 { format!("{}…", s.chars().take(120).collect::<String>()) } else { s }
}

fn indent(text: &str, by: &str) -> String {
    if text.trim().is_empty() {
        return format!("{by}(no log lines)\n");
    }
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

/// The per-collection diff: counts, then every missing / changed / unexpected record.
pub fn diff_text(d: &DataDiff) -> String {
    let mut s = String::new();
    for c in &d.collections {
        let state = if c.intact() { "intact".to_string() } else if let Some(l) = &c.lost { format!("LOST: {l}") } else { "DIFFERS".to_string() };
        let _ = writeln!(s, "  {:<18} {:>3}/{:<3} records  {state}", c.name, c.survived_records(), c.expected_records);
        if let Some(m) = &c.metadata {
            let _ = writeln!(s, "    collection metadata changed: expected {} found {}", short(&m.expected), short(&m.found));
        }
        if !c.missing.is_empty() {
            let _ = writeln!(s, "    missing ({}): {}", c.missing.len(), c.missing.join(", "));
        }
        for r in &c.changed {
            for f in &r.fields {
                let _ = writeln!(s, "    changed {} {}: expected {} found {}", r.id, f.field, short(&f.expected), short(&f.found));
            }
        }
        if !c.unexpected.is_empty() {
            let _ = writeln!(s, "    unexpected ({}): {}", c.unexpected.len(), c.unexpected.join(", "));
        }
    }
    if !d.unexpected_collections.is_empty() {
        let _ = writeln!(s, "  unexpected collections: {}", d.unexpected_collections.join(", "));
    }
    if let Some(e) = &d.listing_error {
        let _ = writeln!(s, "  listing collections failed: {e}");
    }
    s
}

/// Everything about one transition.
pub fn text(r: &UpgradeReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "upgrade {} → {} on the {} backend: {}", r.from, r.to, r.backend, r.verdict.as_str().to_uppercase());
    let _ = writeln!(s, "  {}", r.summary);
    let _ = writeln!(s, "  chart: {} → {}", r.from_chart, r.to_chart);
    if !r.values_files.is_empty() {
        let _ = writeln!(s, "  values: {}", r.values_files.join(", "));
    }
    if !r.to_values_files.is_empty() {
        let _ = writeln!(s, "  values for B only: {}", r.to_values_files.join(", "));
    }
    if r.expect != r.verdict || r.expect != super::Verdict::Survived {
        let _ = writeln!(s, "  expected: {}", r.expect.as_str());
    }
    let _ = writeln!(s, "\nsteps:");
    for st in &r.steps {
        let _ = writeln!(s, "  {} {:<42} {:>6.2}s  {}", if st.ok { "✓" } else { "✗" }, st.name, st.seconds, st.detail.lines().next().unwrap_or(""));
        for l in st.detail.lines().skip(1).take(40) {
            let _ = writeln!(s, "      {l}");
        }
    }
    if let Some(d) = &r.diff {
        let _ = writeln!(s, "\ndata diff ({} collections, {} records written on {}):", r.dataset_collections, r.dataset_records, r.from);
        s.push_str(&diff_text(d));
    }
    if !r.checks.is_empty() {
        let _ = writeln!(s, "\nchecks on {}:", r.to);
        for c in &r.checks {
            let detail = match &c.outcome {
                Outcome::Pass { detail } => detail.clone(),
                Outcome::Fail { reason, .. } => reason.clone(),
                Outcome::Skipped { reason } => reason.clone(),
            };
            let _ = writeln!(s, "  {:<4} {:<12} {}", c.outcome.label(), c.check.as_str(), detail);
        }
    }
    for n in &r.notes {
        let _ = writeln!(s, "\nnote: {n}");
    }
    for a in &r.adjustments {
        let _ = writeln!(s, "adjusted: {a}");
    }
    if !r.logs.a_tail.is_empty() || !r.logs.b_head.is_empty() {
        let _ = writeln!(s, "\nlog of A ({}) before it was stopped (tail):", r.from);
        s.push_str(&indent(&r.logs.a_tail, "  | "));
        let _ = writeln!(s, "log of B ({}) after it started on A's data (head):", r.to);
        s.push_str(&indent(&r.logs.b_head, "  | "));
    }
    if let Some(u) = &r.kept_url {
        let _ = writeln!(s, "\nB kept running at {u}");
    }
    let _ = writeln!(s, "\ntotal {:.1}s (in-place upgrade {}s)", r.seconds, r.upgrade_seconds.map_or("-".to_string(), |x| format!("{x:.2}")));
    s
}

/// The matrix table, then the details of every transition that disagrees with its fixture.
pub fn matrix_text(m: &MatrixReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{:<17} {:<14} {:<14} {:>11} {:>9} {:>9} {:>8}  chart", "transition", "verdict", "expected", "collections", "records", "upgrade", "total");
    for r in &m.transitions {
        let (cols, recs) = match &r.diff {
            Some(d) if r.verdict != super::Verdict::SetupFailed => (format!("{}/{}", d.survived_collections(), r.dataset_collections), format!("{}/{}", d.survived_records(), r.dataset_records)),
            _ => ("-".into(), "-".into()),
        };
        let up = r.upgrade_seconds.map_or("-".to_string(), |x| format!("{x:.1}s"));
        let mark = if r.failed() { "✗" } else { " " };
        let _ = writeln!(
            s,
            "{mark}{:<16} {:<14} {:<14} {:>11} {:>9} {:>9} {:>7.1}s  {}",
            format!("{} → {}", r.from, r.to),
            r.verdict.as_str(),
            r.expect.as_str(),
            cols,
            recs,
            up,
            r.seconds,
            if r.from_chart == r.to_chart { String::new() } else { format!("{} → {}", r.from_chart, r.to_chart) }
        );
    }
    let _ = writeln!(s, "\n{} transitions on the {} backend in {:.1}s (preparing versions {:.1}s)", m.transitions.len(), m.backend, m.wall_seconds, m.prepare_seconds);
    for r in m.transitions.iter().filter(|r| r.failed() || r.verdict != super::Verdict::Survived) {
        let _ = writeln!(s, "\n{}", "─".repeat(80));
        s.push_str(&text(r));
    }
    s
}

pub fn json<T: serde::Serialize>(r: &T) -> serde_json::Result<String> {
    serde_json::to_string_pretty(r)
}
