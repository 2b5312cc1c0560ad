//! Chart.yaml's Artifact Hub annotations: the images listed are exactly the images the chart
//! runs with its defaults (so the list cannot drift from values.yaml), and the other
//! annotations Artifact Hub reads are well formed.

#[macro_use]
mod support;

use std::collections::BTreeSet;

use render::Rendered;
use serde_yaml::Value;
use support::*;

fn chart_yaml() -> Value {
    let path = repo_root().join("charts/chromadb/Chart.yaml");
    serde_yaml::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .expect("Chart.yaml is YAML")
}

/// An annotation whose value is itself a YAML list (Artifact Hub's convention).
fn annotation_list(chart: &Value, key: &str) -> Vec<Value> {
    let text = chart["annotations"][key]
        .as_str()
        .unwrap_or_else(|| panic!("Chart.yaml has no annotation {key}"));
    serde_yaml::from_str(text)
        .unwrap_or_else(|e| panic!("annotation {key} is not a YAML list: {e}"))
}

/// Every container and init container image of every pod the render makes (hooks included).
fn images(r: &Rendered, init_only: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for d in &r.documents {
        let pod = match d["kind"].as_str() {
            Some("CronJob") => &d["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            Some("Job" | "StatefulSet" | "Deployment") => &d["spec"]["template"]["spec"],
            Some("Pod") => &d["spec"],
            _ => continue,
        };
        let lists: &[&str] = if init_only {
            &["initContainers"]
        } else {
            &["initContainers", "containers"]
        };
        for list in lists {
            for c in pod[*list].as_array().into_iter().flatten() {
                out.insert(
                    c["image"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| panic!("a container without an image: {c}")),
                );
            }
        }
    }
    out
}

#[test]
fn the_images_listed_are_the_images_the_defaults_run() {
    let s = suite();
    // Every optional pod on: TLS (the 1.x proxy), backups and restore, metrics (the collector),
    // the test pod. The chart's default version, so the chroma image carries appVersion.
    let everything = yaml(
        "{tls: {enabled: true, existingSecret: t}, backup: {enabled: true, storage: {pvc: {existingClaim: archives}}}, restore: {enabled: true}, metrics: {enabled: true}}",
    );
    let r = s
        .cache
        .render(&s.request(None, &everything))
        .expect("renders");
    let mut ran = images(&r, false);
    // The htpasswd init container exists only where basic auth does (0.4.7–0.6.x).
    let basic = s
        .render(&v("0.6.3"), &yaml("{chromadb: {auth: {type: basic}}}"))
        .expect("renders");
    ran.extend(images(&basic, true));

    let listed: BTreeSet<String> = annotation_list(&chart_yaml(), "artifacthub.io/images")
        .iter()
        .map(|i| {
            i["image"]
                .as_str()
                .unwrap_or_else(|| panic!("an artifacthub.io/images entry without image: {i:?}"))
                .to_string()
        })
        .collect();
    assert!(
        ran.len() >= 6,
        "expected the server, proxy, init, backup, collector and test images, rendered {ran:?}"
    );
    assert_eq!(
        listed, ran,
        "artifacthub.io/images (left) differs from the images the chart's defaults run (right)"
    );
}

#[test]
fn the_chroma_image_listed_is_app_version() {
    let chart = chart_yaml();
    let app = chart["appVersion"].as_str().expect("appVersion");
    let images = annotation_list(&chart, "artifacthub.io/images");
    let chroma = images
        .iter()
        .find(|i| i["name"].as_str() == Some("chroma"))
        .expect("a chroma entry");
    assert_eq!(
        chroma["image"].as_str(),
        Some(format!("ghcr.io/chroma-core/chroma:{app}").as_str())
    );
}

#[test]
fn changes_license_and_links_are_what_artifact_hub_reads() {
    let chart = chart_yaml();
    let changes = annotation_list(&chart, "artifacthub.io/changes");
    assert!(!changes.is_empty());
    for c in &changes {
        let kind = c["kind"].as_str().unwrap_or_default();
        assert!(
            [
                "added",
                "changed",
                "deprecated",
                "removed",
                "fixed",
                "security"
            ]
            .contains(&kind),
            "change kind {kind:?} in {c:?}"
        );
        assert!(
            c["description"].as_str().is_some_and(|d| !d.is_empty()),
            "a change without description: {c:?}"
        );
    }
    let license = chart["annotations"]["artifacthub.io/license"]
        .as_str()
        .expect("artifacthub.io/license");
    let cargo = std::fs::read_to_string(repo_root().join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        cargo.contains(&format!("license = \"{license}\"")),
        "the chart's license {license} is not the workspace's"
    );
    let links = annotation_list(&chart, "artifacthub.io/links");
    assert!(links.len() >= 2);
    for l in &links {
        assert!(
            l["name"].as_str().is_some_and(|n| !n.is_empty())
                && l["url"].as_str().is_some_and(|u| u.starts_with("https://")),
            "link {l:?}"
        );
    }
}
