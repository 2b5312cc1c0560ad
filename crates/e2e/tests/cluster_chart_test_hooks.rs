//! The chart's own render, as the cluster backends install it: `helm test` must find a hook
//! to run, and it must be a Job whose pods are reached through the `job-name` label. Needs
//! `$HELM` (`cargo xtask test` sets it; by hand: `export HELM=$(cargo xtask tools --print helm)`).

use std::path::PathBuf;

use e2e::cluster::hooks::{self, TestHook};
use render::{ChromaVersion, Helm, RenderRequest};

/// `$CHART_DIR` (as in the render suite, for trying a broken copy) or the repository's chart.
fn chart() -> PathBuf {
    std::env::var_os("CHART_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../charts/chromadb"))
}

#[test]
fn every_era_renders_one_job_test_hook_named_after_the_release() {
    let helm = Helm::from_env().expect("$HELM names the helm to render with");
    let versions = ["0.4.3", "0.4.8", "0.6.3", "1.0.0", "1.5.0"];
    for v in versions {
        let version: ChromaVersion = v.parse().expect("version");
        let rendered = RenderRequest::new(chart())
            .release("smoke")
            .version(version)
            .render(&helm)
            .expect("chart renders");
        let found = hooks::test_hooks(&rendered);
        assert_eq!(found.len(), 1, "Chroma {v}: {found:?}");
        let TestHook::Job(name) = &found[0] else {
            panic!("Chroma {v}: the test hook is not a Job: {found:?}")
        };
        // The hook belongs to this release: a second release in the namespace gets its own.
        assert!(name.starts_with("smoke-"), "Chroma {v}: {name}");
        assert_eq!(hooks::job_pod_selector(name), format!("job-name={name}"));
    }
}
