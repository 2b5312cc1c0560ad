//! Every rendered object against the strict Kubernetes JSON schemas of 1.28 and 1.35
//! (`$KUBE_SCHEMA_DIR/v1.xx.0-local-strict/<kind>-<group>-<version>.json`).

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::{Registry, Validator};
use rstest::rstest;
use serde_json::Value;
use support::*;

fn schema_root() -> PathBuf {
    match std::env::var_os("KUBE_SCHEMA_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => panic!(
            "KUBE_SCHEMA_DIR is not set: run through `cargo xtask test`, or export KUBE_SCHEMA_DIR=<dir with v1.28.0-local-strict/ and v1.35.0-local-strict/>"
        ),
    }
}

/// Compiled validators per (Kubernetes version, schema file), each compiled once per process.
struct Schemas {
    dir: PathBuf,
    /// `_definitions.json`, registered under the URI the kind schemas `$ref` (their `$id`
    /// is on kubernetes.io): served from disk, never the network.
    registry: Registry<'static>,
    compiled: Mutex<HashMap<String, Arc<Validator>>>,
}

fn schemas(kube: &str) -> &'static Schemas {
    static ALL: OnceLock<Mutex<HashMap<String, &'static Schemas>>> = OnceLock::new();
    let mut all = ALL
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    all.entry(kube.to_string()).or_insert_with(|| {
        let dir = schema_root().join(format!("v{kube}-local-strict"));
        let defs = dir.join("_definitions.json");
        let text =
            std::fs::read_to_string(&defs).unwrap_or_else(|e| panic!("{}: {e}", defs.display()));
        let definitions: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", defs.display()));
        let registry = Registry::new()
            .add("https://kubernetes.io/api/_definitions.json", definitions)
            .and_then(|b| b.prepare())
            .unwrap_or_else(|e| panic!("{}: {e}", defs.display()));
        Box::leak(Box::new(Schemas {
            dir,
            registry,
            compiled: Mutex::default(),
        }))
    })
}

impl Schemas {
    /// `statefulset-apps-v1.json` for apps/v1 StatefulSet, `service-v1.json` for v1 Service.
    fn file_for(doc: &Value) -> String {
        let kind = doc["kind"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let api = doc["apiVersion"].as_str().unwrap_or_default();
        match api.split_once('/') {
            Some((group, version)) => format!(
                "{kind}-{}-{version}.json",
                group.split('.').next().unwrap_or(group)
            ),
            None => format!("{kind}-{api}.json"),
        }
    }

    fn validator(&self, file: &str) -> Arc<Validator> {
        if let Some(v) = self
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(file)
        {
            return v.clone();
        }
        // Not a Kubernetes built-in: prometheus-operator's CRD, checked against the subset of
        // its schema the repository keeps (fixtures/schemas, also used by tests/metrics.rs).
        let path = match file {
            "servicemonitor-monitoring-v1.json" => {
                repo_root().join("fixtures/schemas/servicemonitor-v1-subset.json")
            }
            _ => self.dir.join(file),
        };
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("no schema {}: {e}", path.display()));
        let schema: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let validator = jsonschema::options()
            .with_registry(&self.registry)
            .build(&schema)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let v = Arc::new(validator);
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(file.to_string(), v.clone());
        v
    }
}

fn check(kube: &str, version: &str) {
    let s = suite();
    let sch = schemas(kube);
    let mut failures = Vec::new();
    let mut validated = 0;
    for case in s.accepted(version, &s.all_scenarios()) {
        let r = case.render.as_ref().expect("accepted");
        for doc in &r.documents {
            validated += 1;
            let file = Schemas::file_for(doc);
            let v = sch.validator(&file);
            for err in v.iter_errors(doc) {
                failures.push(format!(
                    "{case}: {} {}: {} at {}",
                    doc["kind"],
                    doc["metadata"]["name"],
                    err,
                    err.instance_path()
                ));
            }
        }
    }
    assert_ran(
        validated,
        &format!("the documents rendered for Chroma {version}"),
    );
    assert!(
        failures.is_empty(),
        "Kubernetes {kube} rejects:\n{}",
        failures.join("\n")
    );
}

/// The matrix in four eras, so each process compiles the schemas once for several versions.
fn era(name: &str) -> Vec<&'static str> {
    VERSIONS
        .iter()
        .copied()
        .filter(|v| match name {
            "python_0_4" => v.starts_with("0.4."),
            "python_0_5_and_0_6" => v.starts_with("0.5.") || v.starts_with("0.6."),
            "rust_1_0" => v.starts_with("1.0."),
            "rust_1_1_and_later" => v.starts_with('1') && !v.starts_with("1.0."),
            other => panic!("unknown era {other}"),
        })
        .collect()
}

#[rstest]
fn every_object_validates_against_strict_kubernetes_schemas(
    #[values("1.28.0", "1.35.0")] kube: &str,
    #[values("python_0_4", "python_0_5_and_0_6", "rust_1_0", "rust_1_1_and_later")] era_name: &str,
) {
    let versions = era(era_name);
    assert_ran(versions.len(), &format!("the versions of era {era_name}"));
    for version in versions {
        check(kube, version);
    }
}

#[test]
fn the_eras_cover_the_whole_matrix() {
    let n: usize = [
        "python_0_4",
        "python_0_5_and_0_6",
        "rust_1_0",
        "rust_1_1_and_later",
    ]
    .iter()
    .map(|e| era(e).len())
    .sum();
    assert_eq!(n, VERSIONS.len());
}

#[rstest]
#[case::unknown_field_in_container(r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"},"spec":{"ports":[{"port":80,"bogus":1}]}}"#)]
#[case::port_as_string_array(
    r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"},"spec":{"ports":"80"}}"#
)]
fn the_strict_schemas_reject_what_the_api_server_would(#[case] doc: &str) {
    let doc: Value = serde_json::from_str(doc).expect("test json");
    let v = schemas("1.28.0").validator(&Schemas::file_for(&doc));
    assert!(!v.is_valid(&doc), "the schema accepted {doc}");
}
