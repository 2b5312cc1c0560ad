//! Live upgrade runs on the process backend: a clean upgrade survives, and data tampered
//! with after the upgrade is caught record by record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use e2e::process::{ProcessBackend, ProcessOptions};
use e2e::upgrade::{self, ChartCheckout, Fault, Transition, UpgradeOptions, Verdict};
use e2e::venv::VenvCache;
use render::Helm;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn run(fault: Option<Fault>) -> upgrade::UpgradeReport {
    let helm = Helm::from_env().expect("$HELM");
    let backend = ProcessBackend::new(VenvCache::from_env().expect("$UV"), BTreeMap::new(), ProcessOptions::default());
    let chart = root().join("charts/chromadb");
    let t = Transition {
        from: "0.6.3".parse().unwrap(),
        to: "1.0.0".parse().unwrap(),
        reason: "test".into(),
        values_files: Vec::new(),
        to_values_files: Vec::new(),
        from_chart: None,
        expect: Verdict::Survived,
    };
    let opts = UpgradeOptions { fault, progress: false, ..UpgradeOptions::default() };
    let (report, kept) = upgrade::run_one(&backend, &helm, &t, &ChartCheckout::dir(&chart, "tree"), &ChartCheckout::dir(&chart, "tree"), &opts).await;
    assert!(kept.is_none());
    report
}

#[tokio::test]
#[ignore = "starts real Chroma 0.6.3 and 1.0.0 servers; run with HELM=… UV=… cargo test -p e2e --test upgrade_live -- --ignored"]
async fn a_clean_upgrade_from_0_6_3_to_1_0_0_survives() {
    let r = run(None).await;
    assert_eq!(r.verdict, Verdict::Survived, "{}", upgrade::report::text(&r));
}

#[tokio::test]
#[ignore = "starts real Chroma 0.6.3 and 1.0.0 servers; run with HELM=… UV=… cargo test -p e2e --test upgrade_live -- --ignored"]
async fn records_deleted_after_the_upgrade_are_reported_missing_by_id() {
    let r = run(Some(Fault::DeleteRecords)).await;
    assert_eq!(r.verdict, Verdict::DataLost);
    let small = r.diff.as_ref().unwrap().collections.iter().find(|c| c.name == "upgrade-small").unwrap();
    assert_eq!(small.missing, ["upgrade-small-000", "upgrade-small-001"]);
}
