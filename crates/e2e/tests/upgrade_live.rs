//! Live upgrade runs on the process backend, part of `cargo xtask test` (which exports HELM
//! and UV): a clean upgrade survives, and data deleted or changed after the upgrade turns the
//! diff red, record by record. One small transition between two Rust servers keeps each run
//! to a few seconds of server time once the versions' environments are cached.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use e2e::dataset::CollectionDiff;
use e2e::process::{ProcessBackend, ProcessOptions};
use e2e::upgrade::{
    self, ChartCheckout, Fault, Transition, UpgradeOptions, UpgradeReport, Verdict,
};
use e2e::venv::VenvCache;
use render::Helm;

const HINT: &str = "`cargo xtask test` exports HELM and UV; by hand: export HELM=$(cargo xtask tools --print helm) UV=$(cargo xtask tools --print uv)";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One upgrade with `fault` applied after it. The conformance checks on B are left out: what is
/// under test is the diff (the upgrade matrix runs the checks), and each run stays well under a
/// minute on a loaded machine.
async fn run(fault: Option<Fault>) -> UpgradeReport {
    e2e::host::ensure().unwrap_or_else(|e| panic!("this test deploys on the process backend: {e}"));
    let helm = Helm::from_env()
        .unwrap_or_else(|e| panic!("the live upgrade tests start real servers: {e}; {HINT}"));
    let venvs = VenvCache::from_env()
        .unwrap_or_else(|e| panic!("the live upgrade tests start real servers: {e}; {HINT}"));
    let backend = ProcessBackend::new(venvs, BTreeMap::new(), ProcessOptions::default());
    let chart = root().join("charts/chromadb");
    let t = Transition {
        from: "1.0.0".parse().unwrap(),
        to: "1.5.0".parse().unwrap(),
        reason: "tamper proof".into(),
        values_files: Vec::new(),
        to_values_files: Vec::new(),
        from_chart: None,
        expect: Verdict::Survived,
        signature: None,
        orphan_statefulset: false,
        via: e2e::upgrade::plan::Via::InPlace,
    };
    let opts = UpgradeOptions {
        fault,
        progress: false,
        checks: false,
        ..UpgradeOptions::default()
    };
    let (report, kept) = upgrade::run_one(
        &backend,
        &helm,
        &t,
        &ChartCheckout::dir(&chart, "tree"),
        &ChartCheckout::dir(&chart, "tree"),
        &opts,
    )
    .await;
    assert!(kept.is_none());
    report
}

fn collection<'a>(r: &'a UpgradeReport, name: &str) -> &'a CollectionDiff {
    let diff = r
        .diff
        .as_ref()
        .unwrap_or_else(|| panic!("no diff in the report:\n{}", upgrade::report::text(r)));
    diff.collections
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no diff of {name}:\n{}", upgrade::report::text(r)))
}

#[tokio::test]
async fn an_untampered_upgrade_from_1_0_0_to_1_5_0_diffs_intact() {
    // The control for the tamper proofs below: the same run without a fault is intact.
    let r = run(None).await;
    assert_eq!(
        r.verdict,
        Verdict::Survived,
        "{}",
        upgrade::report::text(&r)
    );
    assert!(!r.failed());
    let diff = r.diff.as_ref().expect("a diff");
    assert!(diff.intact(), "{diff}");
    assert_eq!(diff.survived_records(), 48);
}

#[tokio::test]
async fn records_deleted_after_the_upgrade_are_reported_missing_by_id() {
    let r = run(Some(Fault::DeleteRecords)).await;
    assert_eq!(
        r.verdict,
        Verdict::DataLost,
        "{}",
        upgrade::report::text(&r)
    );
    assert!(
        r.failed(),
        "a single run expects survived: data loss must fail it"
    );
    let small = collection(&r, "upgrade-small");
    assert_eq!(small.missing, ["upgrade-small-000", "upgrade-small-001"]);
    assert!(
        small.changed.is_empty() && small.unexpected.is_empty(),
        "{small:?}"
    );
}

#[tokio::test]
async fn a_record_changed_after_the_upgrade_is_reported_field_by_field() {
    let r = run(Some(Fault::ChangeRecord)).await;
    assert_eq!(
        r.verdict,
        Verdict::DataLost,
        "{}",
        upgrade::report::text(&r)
    );
    let small = collection(&r, "upgrade-small");
    assert_eq!(small.changed.len(), 1, "{small:?}");
    assert_eq!(small.changed[0].id, "upgrade-small-000");
    let fields: Vec<&str> = small.changed[0]
        .fields
        .iter()
        .map(|f| f.field.as_str())
        .collect();
    // Chroma's update merges metadata: only the key it sent changed.
    assert_eq!(fields, ["metadata.index", "document"]);
    assert_eq!(
        small.changed[0].fields[0].found,
        Some(serde_json::json!(-1))
    );
}
