//! The fixtures themselves, and the whole matrix rendered in parallel with the render stats.

mod support;

use std::time::Instant;

use render::spec::CORS_WILDCARD_FIXED;
use render::version::{
    API_V2_FLOOR, AUTHN_SETTINGS_FLOOR, BASIC_AUTH_FLOOR, ENTRYPOINT_ENV_FLOOR, OLDEST_SUPPORTED,
    RUST_SERVER_FLOOR, SEGMENT_CACHE_FLOOR, TOKEN_AUTH_FLOOR, TOKEN_HEADER_NAME_FLOOR,
};
use render::{ChromaVersion, VersionMatrix};
use support::*;

fn matrix() -> VersionMatrix {
    VersionMatrix::load(repo_root().join("fixtures/versions.yaml"))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The quoted versions of `each_version!`'s `#[values(...)]` list, read from its source
/// (a macro cannot be asked for its expansion at run time).
fn each_version_list() -> Vec<String> {
    let path = repo_root().join("crates/render/tests/support/mod.rs");
    let src = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let body = src
        .split_once("macro_rules! each_version")
        .map(|(_, b)| b)
        .expect("support/mod.rs defines each_version!");
    let list = body
        .split_once("#[values(")
        .and_then(|(_, b)| b.split_once(")]"))
        .map(|(l, _)| l)
        .expect("each_version! has a #[values(...)] list");
    list.split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn literal_version_lists_match_the_fixture() {
    let fixture: Vec<String> = matrix().all().map(ToString::to_string).collect();
    assert_eq!(
        fixture, VERSIONS,
        "update support::VERSIONS with fixtures/versions.yaml"
    );
    assert_eq!(
        each_version_list(),
        fixture,
        "update each_version!'s #[values] with fixtures/versions.yaml"
    );
}

/// Every version floor the spec model gates on, from the model's own constants.
fn spec_floors() -> Vec<(&'static str, ChromaVersion)> {
    vec![
        ("oldest supported release", OLDEST_SUPPORTED),
        ("basic auth", BASIC_AUTH_FLOOR),
        ("token auth", TOKEN_AUTH_FLOOR),
        ("CHROMA_SERVER_AUTHN_* settings", AUTHN_SETTINGS_FLOOR),
        ("/api/v2", API_V2_FLOOR),
        ("Rust server", RUST_SERVER_FLOOR),
        ("CORS wildcard accepted", CORS_WILDCARD_FIXED),
    ]
}

/// Floors of Chroma behaviour the chart follows, below the spec's own gates: the matrix must
/// reach both sides of them.
fn image_floors() -> Vec<(&'static str, ChromaVersion)> {
    vec![
        ("entrypoint reads env", ENTRYPOINT_ENV_FLOOR),
        ("segment cache settings", SEGMENT_CACHE_FLOOR),
        ("token header given by name", TOKEN_HEADER_NAME_FLOOR),
    ]
}

#[test]
fn the_matrix_gates_every_floor_of_the_spec() {
    let m = matrix();
    let floors = spec_floors();
    assert_ran(floors.len(), "the spec's floors");
    for (what, floor) in floors {
        assert!(
            m.get(&floor).is_some(),
            "fixtures/versions.yaml lacks {floor}, the {what} floor"
        );
        if floor == OLDEST_SUPPORTED {
            continue;
        }
        // The release right before a patch-level floor is known (x.y.z-1); before an x.y.0
        // floor any earlier release stands for the other side.
        let below = if floor.0.patch > 0 {
            let prev = ChromaVersion::new(floor.0.major, floor.0.minor, floor.0.patch - 1);
            m.get(&prev).map(|e| e.version.clone())
        } else {
            m.all().filter(|v| **v < floor).max().cloned()
        };
        assert!(
            below.is_some(),
            "fixtures/versions.yaml has no release just below the {what} floor {floor}"
        );
    }
    for (what, floor) in image_floors() {
        assert!(
            m.all().any(|v| *v < floor),
            "fixtures/versions.yaml has no release below the {what} floor {floor}"
        );
        assert!(
            m.all().any(|v| *v >= floor && !v.is_rust_server()),
            "fixtures/versions.yaml has no Python release from the {what} floor {floor}"
        );
    }
}

#[test]
fn the_matrix_holds_the_chart_app_version() {
    let path = suite().chart.join("Chart.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let chart: serde_yaml::Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let app = v(chart
        .get("appVersion")
        .and_then(serde_yaml::Value::as_str)
        .expect("Chart.yaml has appVersion"));
    let m = matrix();
    assert!(
        m.get(&app).is_some_and(|e| e.smoke),
        "the chart's appVersion {app} must be a smoke version of fixtures/versions.yaml"
    );
}

/// The smoke subset reaches every way the chart configures a server: no auth, token auth
/// under each settings name, the /api/v2 Python server, the first Rust server.
#[test]
fn the_smoke_subset_covers_every_configuration_style() {
    let m = matrix();
    let smoke: Vec<&ChromaVersion> = m.smoke().collect();
    type Style = (&'static str, fn(&ChromaVersion) -> bool);
    let styles: [Style; 5] = [
        ("the oldest supported release", |v| *v == OLDEST_SUPPORTED),
        ("token auth with CHROMA_SERVER_AUTH_*", |v| {
            v.has_token_auth() && !v.has_authn_settings()
        }),
        ("token auth with CHROMA_SERVER_AUTHN_*", |v| {
            v.has_token_auth() && v.has_authn_settings()
        }),
        ("the Python server on /api/v2", |v| {
            *v >= API_V2_FLOOR && !v.is_rust_server()
        }),
        ("the first Rust server", |v| *v == RUST_SERVER_FLOOR),
    ];
    for (what, applies) in styles {
        assert!(
            smoke.iter().any(|v| applies(v)),
            "no smoke version in fixtures/versions.yaml covers {what} (smoke: {smoke:?})"
        );
    }
}

#[test]
fn every_scenario_file_says_what_it_exercises() {
    let dir = repo_root().join("fixtures/values");
    for entry in std::fs::read_dir(&dir).expect("fixtures/values") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("readable");
        assert!(
            text.starts_with("# "),
            "{} does not start with a comment saying what it exercises",
            path.display()
        );
    }
}

/// Renders every scenario on every version in parallel (most of them from the cache when
/// warm) and prints how many renders helm actually did and how long they took.
#[test]
fn full_matrix_renders_and_reports_stats() {
    let s = suite();
    let scenarios = s.all_scenarios();
    let pairs: Vec<(&str, &str)> = VERSIONS
        .iter()
        .flat_map(|v| scenarios.iter().map(move |s| (*v, *s)))
        .collect();
    let started = Instant::now();
    let cases = parallel(&pairs, |(v, sc)| s.case(v, sc));
    let wall = started.elapsed();
    let refused = cases.iter().filter(|c| c.render.is_err()).count();
    for c in &cases {
        c.accepted();
    }
    let log = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("render-cache/renders.log"),
    )
    .unwrap_or_default();
    let (n, ms) = log
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .fold((0, 0), |(n, t), ms| (n + 1, t + ms));
    eprintln!(
        "render stats: {} cases ({} versions x {} scenarios, {refused} refused as the spec says) in {wall:.2?}; this process: {}; disk cache holds {n} helm renders ({ms} ms of helm time in total)",
        cases.len(),
        VERSIONS.len(),
        scenarios.len(),
        s.cache.stats,
    );
    assert_eq!(cases.len(), VERSIONS.len() * scenarios.len());
    assert!(scenarios.len() >= 8, "at least 8 scenarios");
    assert_ran(
        cases.len() - refused,
        "the whole matrix (every render refused)",
    );
}
