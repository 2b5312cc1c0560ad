//! The fixtures themselves, and the whole matrix rendered in parallel with the render stats.

mod support;

use std::time::Instant;

use render::VersionMatrix;
use support::*;

#[test]
fn literal_version_lists_match_the_fixture() {
    let m = VersionMatrix::load(repo_root().join("fixtures/versions.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let fixture: Vec<String> = m.all().map(ToString::to_string).collect();
    assert_eq!(fixture, VERSIONS, "update support::VERSIONS and each_version! with fixtures/versions.yaml");
}

#[test]
fn the_matrix_gates_every_floor_of_the_spec() {
    let m = VersionMatrix::load(repo_root().join("fixtures/versions.yaml")).unwrap_or_else(|e| panic!("{e}"));
    for floor in ["0.4.3", "0.4.6", "0.4.7", "0.4.8", "0.4.24", "0.5.0", "0.5.15", "0.5.16", "0.5.23", "0.6.3", "1.0.0", "1.0.10", "1.0.11", "1.0.21", "1.1.1", "1.2.2", "1.3.7", "1.4.1", "1.5.0"] {
        assert!(m.get(&v(floor)).is_some(), "fixtures/versions.yaml lacks {floor}");
    }
    let smoke: Vec<String> = m.smoke().map(ToString::to_string).collect();
    assert_eq!(smoke, ["0.4.3", "0.4.8", "0.5.0", "0.6.3", "1.0.0", "1.5.0"]);
}

#[test]
fn every_scenario_file_says_what_it_exercises() {
    let dir = repo_root().join("fixtures/values");
    for entry in std::fs::read_dir(&dir).expect("fixtures/values") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("readable");
        assert!(text.starts_with("# "), "{} does not start with a comment saying what it exercises", path.display());
    }
}

/// Renders every scenario on every version in parallel (most of them from the cache when
/// warm) and prints how many renders helm actually did and how long they took.
#[test]
fn full_matrix_renders_and_reports_stats() {
    let s = suite();
    let scenarios = s.all_scenarios();
    let pairs: Vec<(&str, &str)> = VERSIONS.iter().flat_map(|v| scenarios.iter().map(move |s| (*v, *s))).collect();
    let started = Instant::now();
    let cases = parallel(&pairs, |(v, sc)| s.case(v, sc));
    let wall = started.elapsed();
    let refused = cases.iter().filter(|c| c.render.is_err()).count();
    for c in &cases {
        c.accepted();
    }
    let log = std::fs::read_to_string(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("render-cache/renders.log")).unwrap_or_default();
    let (n, ms) = log.lines().filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok()).fold((0, 0), |(n, t), ms| (n + 1, t + ms));
    eprintln!(
        "render stats: {} cases ({} versions x {} scenarios, {refused} refused as the spec says) in {wall:.2?}; this process: {}; disk cache holds {n} helm renders ({ms} ms of helm time in total)",
        cases.len(),
        VERSIONS.len(),
        scenarios.len(),
        s.cache.stats,
    );
    assert_eq!(cases.len(), VERSIONS.len() * scenarios.len());
    assert!(scenarios.len() >= 8, "at least 8 scenarios");
}
