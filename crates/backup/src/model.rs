//! What a backup holds, independent of any era: records, and a collection's index settings in
//! one normal form that both eras' spellings map onto.
//!
//! The 0.x servers keep index settings as `hnsw:*` keys in the collection's metadata; 1.x keeps
//! them in its configuration (`configuration_json.hnsw`) and ignores `hnsw:*` metadata once a
//! configuration is given (measured on 1.5.0: docs/chroma-eras.md#backup-and-restore). 0.6.3
//! also answers a `configuration_json`, but its values are defaults that do not reflect the
//! `hnsw:*` metadata actually in force, so on 0.x the metadata is the truth.

use chroma_api::ChromaVersion;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One record as the archive holds it. Metadata is kept as the server's JSON text so its
/// number types (int vs float) survive exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: String,
    pub embedding: Option<Vec<f32>>,
    pub document: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub uri: Option<String>,
}

/// A collection's HNSW index settings, in 1.x names. `None` means "not set explicitly".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub space: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ef_construction: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ef_search: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_neighbors: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_threads: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resize_factor: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_threshold: Option<Value>,
}

/// (1.x configuration key, 0.x metadata key). One table both directions use.
pub const HNSW_KEYS: &[(&str, &str)] = &[
    ("space", "hnsw:space"),
    ("ef_construction", "hnsw:construction_ef"),
    ("ef_search", "hnsw:search_ef"),
    ("max_neighbors", "hnsw:M"),
    ("num_threads", "hnsw:num_threads"),
    ("resize_factor", "hnsw:resize_factor"),
    ("batch_size", "hnsw:batch_size"),
    ("sync_threshold", "hnsw:sync_threshold"),
];

/// The keys a 1.x configuration's `hnsw` object keeps (measured on 1.5.0: `num_threads` and
/// `batch_size` are accepted on create but not kept).
pub const RUST_HNSW_KEYS: &[&str] = &[
    "space",
    "ef_construction",
    "ef_search",
    "max_neighbors",
    "resize_factor",
    "sync_threshold",
];

impl Settings {
    pub fn get(&self, key: &str) -> Option<Value> {
        match key {
            "space" => self.space.clone().map(Value::String),
            "ef_construction" => self.ef_construction.clone(),
            "ef_search" => self.ef_search.clone(),
            "max_neighbors" => self.max_neighbors.clone(),
            "num_threads" => self.num_threads.clone(),
            "resize_factor" => self.resize_factor.clone(),
            "batch_size" => self.batch_size.clone(),
            "sync_threshold" => self.sync_threshold.clone(),
            _ => None,
        }
    }

    fn set(&mut self, key: &str, v: Value) {
        match key {
            "space" => self.space = v.as_str().map(str::to_string),
            "ef_construction" => self.ef_construction = Some(v),
            "ef_search" => self.ef_search = Some(v),
            "max_neighbors" => self.max_neighbors = Some(v),
            "num_threads" => self.num_threads = Some(v),
            "resize_factor" => self.resize_factor = Some(v),
            "batch_size" => self.batch_size = Some(v),
            "sync_threshold" => self.sync_threshold = Some(v),
            _ => {}
        }
    }

    /// The explicitly set settings, in table order.
    pub fn entries(&self) -> Vec<(&'static str, Value)> {
        HNSW_KEYS
            .iter()
            .filter_map(|(k, _)| self.get(k).map(|v| (*k, v)))
            .collect()
    }

    /// 0.x: the `hnsw:*` keys of the collection's metadata.
    pub fn from_metadata(metadata: Option<&Map<String, Value>>) -> Settings {
        let mut s = Settings::default();
        if let Some(m) = metadata {
            for (key, meta_key) in HNSW_KEYS {
                if let Some(v) = m.get(*meta_key) {
                    s.set(key, v.clone());
                }
            }
        }
        s
    }

    /// 1.x: the `hnsw` object of `configuration_json`.
    pub fn from_configuration(configuration: Option<&Value>) -> Settings {
        let mut s = Settings::default();
        if let Some(Value::Object(h)) = configuration.and_then(|c| c.get("hnsw")) {
            for (key, _) in HNSW_KEYS {
                if let Some(v) = h.get(*key).filter(|v| !v.is_null()) {
                    s.set(key, v.clone());
                }
            }
        }
        s
    }
}

/// The index settings a collection gets when none is given, per era (read from each release's
/// `hnsw_params.py` and measured on 1.5.0: docs/chroma-eras.md#backup-and-restore).
/// `num_threads` is left out: 0.x defaults it to the machine's CPU count.
pub fn era_defaults(version: &ChromaVersion) -> Settings {
    let n = |v: u64| Some(Value::from(v));
    Settings {
        space: Some("l2".into()),
        ef_construction: n(100),
        // 10 through 0.5.x (measured 0.4.3, 0.4.24, 0.5.0), 100 on 0.6.3 and every 1.x.
        ef_search: n(if *version < SEARCH_EF_100_FLOOR {
            10
        } else {
            100
        }),
        max_neighbors: n(16),
        num_threads: None,
        resize_factor: Some(Value::from(1.2)),
        batch_size: n(100),
        sync_threshold: n(1000),
    }
}

/// The first release whose default `hnsw:search_ef` is 100 (0.5.x measured 10, 0.6.3 100).
pub const SEARCH_EF_100_FLOOR: ChromaVersion = ChromaVersion::new(0, 6, 0);

impl Settings {
    /// These settings over `defaults`: what is in force.
    pub fn over(&self, defaults: &Settings) -> Settings {
        let mut s = defaults.clone();
        for (k, v) in self.entries() {
            s.set(k, v);
        }
        s
    }

    /// The settings that differ from `defaults` (what a create call must spell out).
    pub fn beyond(&self, defaults: &Settings) -> Settings {
        let mut s = Settings::default();
        for (k, v) in self.entries() {
            if !defaults.get(k).is_some_and(|d| same_value(&d, &v)) {
                s.set(k, v);
            }
        }
        s
    }
}

/// Whether a metadata key is an index setting (compared as a setting, not as user metadata).
pub fn is_setting_key(key: &str) -> bool {
    key.starts_with("hnsw:")
}

/// How a collection is created on a target era, and what the target cannot hold.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatePlan {
    pub metadata: Option<Map<String, Value>>,
    pub configuration: Option<Value>,
    /// Each names the collection and the thing the target cannot represent.
    pub lost: Vec<String>,
}

/// What a collection's settings become on a target era. Metadata is kept verbatim everywhere
/// (it is user data). Settings that differ from the target's defaults are spelled out: on a
/// 0.x target as `hnsw:*` metadata keys, on a 1.x target as the configuration. A stale
/// `hnsw:*` key that was not in force on the source is overridden and reported.
pub fn plan_create(
    name: &str,
    metadata: Option<&Map<String, Value>>,
    settings: &Settings,
    configuration: Option<&Value>,
    target: &ChromaVersion,
) -> CreatePlan {
    let label = if target.is_rust_server() {
        "Chroma 1.x".to_string()
    } else {
        format!("Chroma {target}")
    };
    let mut lost = Vec::new();
    let ef = configuration
        .and_then(|c| c.get("embedding_function"))
        .filter(|v| !v.is_null());
    let spann = configuration
        .and_then(|c| c.get("spann"))
        .filter(|v| !v.is_null());
    let defaults = era_defaults(target);
    let needed = settings.beyond(&defaults);
    if target.is_rust_server() {
        let mut hnsw = Map::new();
        for (k, v) in needed.entries() {
            if RUST_HNSW_KEYS.contains(&k) {
                hnsw.insert(k.to_string(), v);
            } else {
                lost.push(format!("collection {name}: index setting {k}={v} has no place in a {label} configuration (a {} metadata key stays, unused)", meta_key(k)));
            }
        }
        let mut conf = Map::new();
        if !hnsw.is_empty() {
            conf.insert("hnsw".into(), Value::Object(hnsw));
        }
        if let Some(ef) = ef {
            conf.insert("embedding_function".into(), ef.clone());
        }
        if let Some(spann) = spann {
            conf.insert("spann".into(), spann.clone());
        }
        let configuration = if conf.is_empty() {
            None
        } else {
            Some(Value::Object(conf))
        };
        return CreatePlan {
            metadata: metadata.cloned(),
            configuration,
            lost,
        };
    }
    let mut meta = metadata.cloned().unwrap_or_default();
    for (k, v) in settings.entries() {
        let mk = meta_key(k);
        match meta.get(mk) {
            Some(old) if !same_value(old, &v) => {
                lost.push(format!("collection {name}: metadata {mk}={old} was not in force on the source ({k}={v} was); restored as {v}"));
                meta.insert(mk.to_string(), v);
            }
            Some(_) => {}
            None if needed.get(k).is_some() => {
                meta.insert(mk.to_string(), v);
            }
            None => {}
        }
    }
    if let Some(ef) = ef {
        let ef_name = ef.get("name").and_then(Value::as_str).unwrap_or("unnamed");
        lost.push(format!("collection {name}: embedding function `{ef_name}` cannot be stored by {label} (clients must pass it themselves)"));
    }
    if spann.is_some() {
        lost.push(format!(
            "collection {name}: SPANN index configuration cannot be represented by {label}"
        ));
    }
    CreatePlan {
        metadata: if meta.is_empty() { None } else { Some(meta) },
        configuration: None,
        lost,
    }
}

/// The 0.x metadata key of a 1.x setting name.
pub fn meta_key(setting: &str) -> &'static str {
    HNSW_KEYS
        .iter()
        .find(|(c, _)| *c == setting)
        .map(|(_, m)| *m)
        .unwrap_or("hnsw:?")
}

/// The settings in force on a collection of `version`, from its metadata (0.x) or its
/// configuration (1.x), defaults filled in.
pub fn in_force(
    version: &ChromaVersion,
    metadata: Option<&Map<String, Value>>,
    configuration: Option<&Value>,
) -> Settings {
    let explicit = if version.is_rust_server() {
        Settings::from_configuration(configuration)
    } else {
        Settings::from_metadata(metadata)
    };
    explicit.over(&era_defaults(version))
}

/// Two JSON values as the same value: numbers by numeric value (an int read back as `2.0` is
/// the same number), maps without regard to key order.
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || x.as_f64().zip(y.as_f64()).is_some_and(|(x, y)| x == y)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}

/// User metadata without the index-setting keys.
pub fn user_metadata(m: Option<&Map<String, Value>>) -> Map<String, Value> {
    m.map(|m| {
        m.iter()
            .filter(|(k, _)| !is_setting_key(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn hnsw_metadata_of_a_python_server_becomes_settings() {
        let m = obj(
            json!({"hnsw:space": "cosine", "hnsw:M": 32, "hnsw:construction_ef": 200, "topic": "x"}),
        );
        let s = Settings::from_metadata(Some(&m));
        assert_eq!(s.space.as_deref(), Some("cosine"));
        assert_eq!(s.max_neighbors, Some(json!(32)));
        assert_eq!(s.ef_construction, Some(json!(200)));
        assert_eq!(s.entries().len(), 3);
    }

    #[test]
    fn a_rust_configuration_becomes_settings() {
        let c = json!({"hnsw": {"space": "ip", "ef_construction": 150, "ef_search": 100, "max_neighbors": 16, "resize_factor": 1.2, "sync_threshold": 1000}, "spann": null, "embedding_function": null});
        let s = Settings::from_configuration(Some(&c));
        assert_eq!(s.space.as_deref(), Some("ip"));
        assert_eq!(s.ef_construction, Some(json!(150)));
        assert_eq!(s.entries().len(), 6);
    }

    fn v(s: &str) -> ChromaVersion {
        s.parse().unwrap()
    }

    #[test]
    fn python_settings_restored_on_rust_become_the_configuration_and_metadata_stays_verbatim() {
        let m = obj(json!({"hnsw:space": "cosine", "hnsw:M": 32, "topic": "x"}));
        let s = in_force(&v("0.6.3"), Some(&m), None);
        let p = plan_create("c1", Some(&m), &s, None, &v("1.5.0"));
        assert_eq!(
            p.configuration,
            Some(json!({"hnsw": {"space": "cosine", "max_neighbors": 32}}))
        );
        assert_eq!(p.metadata, Some(m));
        assert!(p.lost.is_empty(), "{:?}", p.lost);
    }

    #[test]
    fn num_threads_on_a_rust_target_is_reported_by_name() {
        let m = obj(json!({"hnsw:num_threads": 4}));
        let p = plan_create(
            "c1",
            Some(&m),
            &in_force(&v("0.6.3"), Some(&m), None),
            None,
            &v("1.5.0"),
        );
        assert_eq!(p.lost.len(), 1);
        assert!(
            p.lost[0].contains("collection c1") && p.lost[0].contains("num_threads=4"),
            "{:?}",
            p.lost
        );
    }

    #[test]
    fn rust_settings_restored_on_python_become_hnsw_metadata() {
        let c = json!({"hnsw": {"space": "ip", "max_neighbors": 24}, "embedding_function": null});
        let s = in_force(&v("1.5.0"), None, Some(&c));
        let p = plan_create(
            "c2",
            Some(&obj(json!({"topic": "y"}))),
            &s,
            Some(&c),
            &v("0.6.3"),
        );
        assert_eq!(
            p.metadata,
            Some(obj(json!({"topic": "y", "hnsw:space": "ip", "hnsw:M": 24})))
        );
        assert_eq!(p.configuration, None);
        assert!(p.lost.is_empty(), "{:?}", p.lost);
    }

    #[test]
    fn an_embedding_function_on_a_python_target_is_reported_by_name() {
        let c = json!({"hnsw": {"space": "l2"}, "embedding_function": {"type": "known", "name": "default", "config": {}}});
        let p = plan_create(
            "docs",
            None,
            &in_force(&v("1.5.0"), None, Some(&c)),
            Some(&c),
            &v("0.6.3"),
        );
        assert_eq!(p.lost.len(), 1, "{:?}", p.lost);
        assert!(
            p.lost[0].contains("collection docs")
                && p.lost[0].contains("`default`")
                && p.lost[0].contains("0.6.3"),
            "{:?}",
            p.lost
        );
    }

    #[test]
    fn a_stale_hnsw_key_on_a_rust_source_is_overridden_and_reported() {
        // 1.x keeps `hnsw:M` metadata it ignores when a configuration says otherwise.
        let m = obj(json!({"hnsw:M": 20}));
        let c = json!({"hnsw": {"max_neighbors": 16}});
        let p = plan_create(
            "c3",
            Some(&m),
            &in_force(&v("1.5.0"), Some(&m), Some(&c)),
            Some(&c),
            &v("0.6.3"),
        );
        assert_eq!(p.metadata, Some(obj(json!({"hnsw:M": 16}))));
        assert!(
            p.lost[0].contains("hnsw:M=20 was not in force"),
            "{:?}",
            p.lost
        );
    }

    #[test]
    fn an_implicit_search_ef_of_0_4_is_spelled_out_on_1_x_and_1_x_defaults_add_nothing_on_0_6() {
        // 0.4.x searched with ef 10 unless told otherwise; 1.x defaults to 100.
        let p = plan_create(
            "c4",
            None,
            &in_force(&v("0.4.3"), None, None),
            None,
            &v("1.5.0"),
        );
        assert_eq!(p.configuration, Some(json!({"hnsw": {"ef_search": 10}})));
        let c = json!({"hnsw": {"space": "l2", "ef_construction": 100, "ef_search": 100, "max_neighbors": 16, "resize_factor": 1.2, "sync_threshold": 1000}});
        let p = plan_create(
            "c5",
            Some(&obj(json!({"k": 1}))),
            &in_force(&v("1.5.0"), None, Some(&c)),
            Some(&c),
            &v("0.6.3"),
        );
        assert_eq!(
            p.metadata,
            Some(obj(json!({"k": 1}))),
            "1.x defaults are 0.6.3's defaults"
        );
        let p = plan_create(
            "c5",
            None,
            &in_force(&v("1.5.0"), None, Some(&c)),
            Some(&c),
            &v("0.4.3"),
        );
        assert_eq!(
            p.metadata,
            Some(obj(json!({"hnsw:search_ef": 100}))),
            "0.4.3 would search with ef 10"
        );
        assert!(p.lost.is_empty(), "{:?}", p.lost);
    }

    #[test]
    fn numbers_compare_by_value_and_maps_without_order() {
        assert!(same_value(&json!(2), &json!(2.0)));
        assert!(!same_value(&json!(2.125), &json!(2.1)));
        assert!(same_value(
            &json!({"a": 1, "b": "x"}),
            &json!({"b": "x", "a": 1.0})
        ));
        assert!(!same_value(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!same_value(&json!("1"), &json!(1)));
    }
}
