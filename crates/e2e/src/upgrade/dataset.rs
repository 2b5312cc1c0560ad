//! The known dataset an upgrade carries across: a few collections of records with ids,
//! embeddings, metadata and documents, written through the REST API of version A and read
//! back through the API of version B, then compared record by record.
//!
//! Values are chosen so that every era stores them exactly: embeddings are multiples of
//! 1/8 (exact in the f32 the Rust server keeps), metadata has strings, ints and floats but no
//! booleans (0.4.3 stores those as 0/1), documents include non-ASCII text.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::checks::client::{Answer, Api, names};

/// One record as written (and as read back).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub id: String,
    pub embedding: Vec<f64>,
    pub metadata: Map<String, Value>,
    pub document: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionData {
    pub name: String,
    pub metadata: Map<String, Value>,
    pub records: Vec<Record>,
}

/// What is written before the upgrade and must be there, unchanged, after it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dataset {
    pub collections: Vec<CollectionData>,
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn collection(name: &str, kind: &str, dim: usize, count: usize, doc: impl Fn(usize) -> String) -> CollectionData {
    let records = (0..count)
        .map(|i| Record {
            id: format!("{name}-{i:03}"),
            // Distinct, exactly representable components; sign varies so no two vectors collide.
            embedding: (0..dim).map(|d| ((i * 7 + d * 3) % 41) as f64 / 8.0 - 2.5).collect(),
            metadata: obj(json!({
                "index": i,
                "bucket": format!("b{}", i % 3),
                "weight": (i as f64) * 0.25 - 1.0,
                "collection": name,
            })),
            document: doc(i),
        })
        .collect();
    CollectionData { name: name.to_string(), metadata: obj(json!({"purpose": "upgrade", "kind": kind, "dimensions": dim})), records }
}

impl Dataset {
    /// The dataset every upgrade writes.
    pub fn known() -> Dataset {
        Dataset {
            collections: vec![
                collection("upgrade-small", "small", 4, 12, |i| format!("small record number {i}")),
                collection("upgrade-wide", "wide", 64, 30, |i| format!("wide record {i}: {}", "lorem ipsum ".repeat(i % 5 + 1).trim_end())),
                collection("upgrade-unicode", "unicode", 3, 6, |i| format!("документ {i} — 文書 ✓ ünïcödé")),
                // An empty collection must survive as a collection.
                collection("upgrade-empty", "empty", 8, 0, |_| String::new()),
            ],
        }
    }

    pub fn record_count(&self) -> usize {
        self.collections.iter().map(|c| c.records.len()).sum()
    }

    pub fn names(&self) -> Vec<&str> {
        self.collections.iter().map(|c| c.name.as_str()).collect()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{what}: HTTP {status} from {method} {url}: {body}")]
pub struct WriteError {
    pub what: String,
    pub status: u16,
    pub method: String,
    pub url: String,
    pub body: String,
}

fn failed(what: String, a: &Answer) -> WriteError {
    WriteError { what, status: a.status(), method: a.ex.method.clone(), url: a.ex.url.clone(), body: a.ex.response_body.clone() }
}

fn add_body(c: &CollectionData) -> String {
    json!({
        "ids": c.records.iter().map(|r| &r.id).collect::<Vec<_>>(),
        "embeddings": c.records.iter().map(|r| &r.embedding).collect::<Vec<_>>(),
        "metadatas": c.records.iter().map(|r| &r.metadata).collect::<Vec<_>>(),
        "documents": c.records.iter().map(|r| &r.document).collect::<Vec<_>>(),
    })
    .to_string()
}

fn id_of(a: &Answer) -> Option<String> {
    a.json().and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
}

/// Creates every collection and adds its records.
pub async fn write(api: &Api, ds: &Dataset) -> Result<(), WriteError> {
    for c in &ds.collections {
        let created = api.create_collection(&c.name, Value::Object(c.metadata.clone())).await;
        if !created.ex.ok() {
            return Err(failed(format!("creating collection {}", c.name), &created));
        }
        let id = id_of(&created).ok_or_else(|| failed(format!("creating collection {}: the answer has no id", c.name), &created))?;
        if c.records.is_empty() {
            continue;
        }
        let added = api.add(&id, add_body(c)).await;
        if !added.ex.ok() {
            return Err(failed(format!("adding {} records to {}", c.records.len(), c.name), &added));
        }
    }
    Ok(())
}

/// One collection as the server returned it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ReadCollection {
    Found { metadata: Value, records: Vec<Record> },
    /// The server says there is no such collection.
    Absent { status: u16, body: String },
    /// The server answered something that is neither the collection nor "not found".
    Unreadable { reason: String },
}

/// What the server holds, for the dataset's collection names.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub collections: BTreeMap<String, ReadCollection>,
    /// Every collection name the listing returned (`Err` when listing failed).
    pub listed: Result<Vec<String>, String>,
}

fn parse_records(v: &Value) -> Result<Vec<Record>, String> {
    let arr = |k: &str| v.get(k).and_then(Value::as_array).cloned();
    let ids = arr("ids").ok_or("the get answer has no `ids` list")?;
    let n = ids.len();
    let col = |k: &str| arr(k).unwrap_or_else(|| vec![Value::Null; n]);
    let (embs, metas, docs) = (col("embeddings"), col("metadatas"), col("documents"));
    let mut out = Vec::with_capacity(n);
    for (i, id) in ids.iter().enumerate() {
        let id = id.as_str().ok_or_else(|| format!("id #{i} is not a string: {id}"))?.to_string();
        let embedding = embs.get(i).and_then(Value::as_array).map(|e| e.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect()).unwrap_or_default();
        let metadata = metas.get(i).and_then(Value::as_object).cloned().unwrap_or_default();
        let document = docs.get(i).and_then(Value::as_str).unwrap_or_default().to_string();
        out.push(Record { id, embedding, metadata, document });
    }
    Ok(out)
}

/// Reads the named collections (and the listing) back.
pub async fn read(api: &Api, wanted: &[&str]) -> Snapshot {
    let list = api.list_collections().await;
    let listed = if list.ex.ok() { Ok(names(&list)) } else { Err(format!("listing collections answered HTTP {}: {}", list.status(), list.ex.response_body)) };
    let mut collections = BTreeMap::new();
    for name in wanted {
        let got = api.get_collection(name).await;
        let state = if got.ex.ok() {
            match (got.json(), id_of(&got)) {
                (Some(meta), Some(id)) => {
                    let recs = api.get_records(&id).await;
                    if !recs.ex.ok() {
                        ReadCollection::Unreadable { reason: format!("reading its records answered HTTP {}: {}", recs.status(), recs.ex.response_body) }
                    } else {
                        match recs.json().ok_or_else(|| "the get answer is not JSON".to_string()).and_then(|v| parse_records(&v)) {
                            Ok(records) => ReadCollection::Found { metadata: meta.get("metadata").cloned().unwrap_or(Value::Null), records },
                            Err(reason) => ReadCollection::Unreadable { reason },
                        }
                    }
                }
                _ => ReadCollection::Unreadable { reason: format!("the collection answer has no id: {}", got.ex.response_body) },
            }
        } else if got.status() == 0 || got.status() >= 500 || got.status() == 401 || got.status() == 403 {
            ReadCollection::Unreadable { reason: format!("HTTP {}: {}", got.status(), got.ex.response_body) }
        } else {
            // 0.4/0.5 answer a missing collection with 500 ValueError on some releases and
            // 400/404 on others; a 4xx other than auth means "not there".
            ReadCollection::Absent { status: got.status(), body: got.ex.response_body.clone() }
        };
        collections.insert(name.to_string(), state);
    }
    Snapshot { collections, listed }
}

/// One field of one record that came back different.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub expected: Value,
    pub found: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordChange {
    pub id: String,
    pub fields: Vec<FieldChange>,
}

/// How one collection came through.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionDiff {
    pub name: String,
    pub expected_records: usize,
    /// Records read back (0 when the collection is gone or unreadable).
    pub found_records: usize,
    /// Why the collection could not be compared at all (gone, unreadable).
    pub lost: Option<String>,
    pub metadata: Option<FieldChange>,
    pub missing: Vec<String>,
    pub changed: Vec<RecordChange>,
    pub unexpected: Vec<String>,
}

impl CollectionDiff {
    pub fn intact(&self) -> bool {
        self.lost.is_none() && self.metadata.is_none() && self.missing.is_empty() && self.changed.is_empty() && self.unexpected.is_empty()
    }
    pub fn survived_records(&self) -> usize {
        self.expected_records.saturating_sub(self.missing.len() + self.changed.len()).min(self.found_records)
    }
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataDiff {
    pub collections: Vec<CollectionDiff>,
    /// Collections the server lists that the dataset never wrote.
    pub unexpected_collections: Vec<String>,
    /// Listing failed (the per-collection reads may still have worked).
    pub listing_error: Option<String>,
}

impl DataDiff {
    /// Nothing missing, nothing changed, nothing extra.
    pub fn intact(&self) -> bool {
        self.collections.iter().all(CollectionDiff::intact) && self.unexpected_collections.is_empty() && self.listing_error.is_none()
    }
    /// Something written before the upgrade is gone or different.
    pub fn lost_data(&self) -> bool {
        self.collections.iter().any(|c| c.lost.is_some() || c.metadata.is_some() || !c.missing.is_empty() || !c.changed.is_empty())
    }
    /// B runs but cannot read anything A left: every collection (and the listing) failed
    /// with a server error. Returns the first thing the server said.
    pub fn unreadable_everywhere(&self) -> Option<String> {
        let all = !self.collections.is_empty() && self.collections.iter().all(|c| c.lost.as_deref().is_some_and(|l| l.starts_with(UNREADABLE)));
        if all && self.listing_error.is_some() { self.collections[0].lost.clone() } else { None }
    }
    pub fn expected_records(&self) -> usize {
        self.collections.iter().map(|c| c.expected_records).sum()
    }
    pub fn survived_records(&self) -> usize {
        self.collections.iter().map(CollectionDiff::survived_records).sum()
    }
    pub fn survived_collections(&self) -> usize {
        self.collections.iter().filter(|c| c.lost.is_none()).count()
    }
}

const UNREADABLE: &str = "collection could not be read";

/// Numbers compare by value (an int may come back as 2.0), everything else exactly.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_json(p, q)),
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w))),
        _ => a == b,
    }
}

fn compare(want: &Record, got: &Record) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let emb = |e: &[f64]| json!(e);
    if want.embedding.len() != got.embedding.len() || want.embedding.iter().zip(&got.embedding).any(|(a, b)| a != b) {
        out.push(FieldChange { field: "embedding".into(), expected: emb(&want.embedding), found: emb(&got.embedding) });
    }
    let (wm, gm) = (Value::Object(want.metadata.clone()), Value::Object(got.metadata.clone()));
    if !same_json(&wm, &gm) {
        out.push(FieldChange { field: "metadata".into(), expected: wm, found: gm });
    }
    if want.document != got.document {
        out.push(FieldChange { field: "document".into(), expected: json!(want.document), found: json!(got.document) });
    }
    out
}

/// Compares what was written with what the server holds now.
pub fn diff(ds: &Dataset, snap: &Snapshot) -> DataDiff {
    let mut collections = Vec::new();
    for c in &ds.collections {
        let mut d = CollectionDiff {
            name: c.name.clone(),
            expected_records: c.records.len(),
            found_records: 0,
            lost: None,
            metadata: None,
            missing: Vec::new(),
            changed: Vec::new(),
            unexpected: Vec::new(),
        };
        match snap.collections.get(&c.name) {
            None => d.lost = Some("not read".into()),
            Some(ReadCollection::Absent { status, body }) => d.lost = Some(format!("collection is gone (HTTP {status}: {body})")),
            Some(ReadCollection::Unreadable { reason }) => d.lost = Some(format!("{UNREADABLE}: {reason}")),
            Some(ReadCollection::Found { metadata, records }) => {
                d.found_records = records.len();
                let want_meta = Value::Object(c.metadata.clone());
                if !same_json(&want_meta, metadata) {
                    d.metadata = Some(FieldChange { field: "collection metadata".into(), expected: want_meta, found: metadata.clone() });
                }
                let by_id: BTreeMap<&str, &Record> = records.iter().map(|r| (r.id.as_str(), r)).collect();
                for want in &c.records {
                    match by_id.get(want.id.as_str()) {
                        None => d.missing.push(want.id.clone()),
                        Some(got) => {
                            let fields = compare(want, got);
                            if !fields.is_empty() {
                                d.changed.push(RecordChange { id: want.id.clone(), fields });
                            }
                        }
                    }
                }
                let known: BTreeSet<&str> = c.records.iter().map(|r| r.id.as_str()).collect();
                d.unexpected = records.iter().filter(|r| !known.contains(r.id.as_str())).map(|r| r.id.clone()).collect();
            }
        }
        collections.push(d);
    }
    let names: BTreeSet<&str> = ds.names().into_iter().collect();
    let (unexpected_collections, listing_error) = match &snap.listed {
        Ok(listed) => (listed.iter().filter(|n| !names.contains(n.as_str())).cloned().collect(), None),
        Err(e) => (Vec::new(), Some(e.clone())),
    };
    DataDiff { collections, unexpected_collections, listing_error }
}

/// A fault injected after the upgrade, through the API, to prove the diff catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// Delete two records of one collection.
    DeleteRecords,
    /// Change one record's document and metadata.
    ChangeRecord,
    /// Drop a whole collection.
    DropCollection,
}

impl Fault {
    pub const ALL: [Fault; 3] = [Fault::DeleteRecords, Fault::ChangeRecord, Fault::DropCollection];
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::DeleteRecords => "delete-records",
            Fault::ChangeRecord => "change-record",
            Fault::DropCollection => "drop-collection",
        }
    }
}

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fault::ALL.into_iter().find(|f| f.as_str() == s).ok_or_else(|| format!("unknown fault `{s}` (valid: {})", Fault::ALL.map(Fault::as_str).join(", ")))
    }
}

/// Applies `fault` to the dataset on the server; returns what it did.
pub async fn inject(api: &Api, ds: &Dataset, fault: Fault) -> Result<String, String> {
    let target = ds.collections.iter().find(|c| c.records.len() >= 2).ok_or("the dataset has no collection with two records")?;
    let got = api.get_collection(&target.name).await;
    let id = id_of(&got).ok_or_else(|| format!("fault {}: cannot find {} (HTTP {})", fault.as_str(), target.name, got.status()))?;
    let base = format!("{}/{id}", api.collections());
    let (what, answer) = match fault {
        Fault::DeleteRecords => {
            let ids = [&target.records[0].id, &target.records[1].id];
            let body = json!({ "ids": ids }).to_string();
            (format!("deleted records {} and {} from {}", ids[0], ids[1], target.name), api.call(Method::POST, &format!("{base}/delete"), Some(body)).await)
        }
        Fault::ChangeRecord => {
            let r = &target.records[0];
            let body = json!({ "ids": [r.id], "documents": ["tampered after the upgrade"], "metadatas": [{"index": -1}] }).to_string();
            (format!("changed the document and metadata of {} in {}", r.id, target.name), api.call(Method::POST, &format!("{base}/update"), Some(body)).await)
        }
        Fault::DropCollection => {
            let url = format!("{}/{}", api.collections(), target.name);
            (format!("dropped collection {}", target.name), api.call(Method::DELETE, &url, None).await)
        }
    };
    if answer.ex.ok() { Ok(what) } else { Err(format!("fault {}: HTTP {} from {} {}: {}", fault.as_str(), answer.status(), answer.ex.method, answer.ex.url, answer.ex.response_body)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(ds: &Dataset) -> Snapshot {
        Snapshot {
            collections: ds
                .collections
                .iter()
                .map(|c| (c.name.clone(), ReadCollection::Found { metadata: Value::Object(c.metadata.clone()), records: c.records.clone() }))
                .collect(),
            listed: Ok(ds.names().into_iter().map(str::to_string).collect()),
        }
    }

    #[test]
    fn an_identical_read_back_is_intact() {
        let ds = Dataset::known();
        let d = diff(&ds, &found(&ds));
        assert!(d.intact() && !d.lost_data(), "{d:?}");
        assert_eq!(d.survived_records(), ds.record_count());
    }

    #[test]
    fn a_dropped_record_is_missing_by_id() {
        let ds = Dataset::known();
        let mut snap = found(&ds);
        if let Some(ReadCollection::Found { records, .. }) = snap.collections.get_mut("upgrade-wide") {
            records.remove(3);
        }
        let d = diff(&ds, &snap);
        let wide = d.collections.iter().find(|c| c.name == "upgrade-wide").unwrap();
        assert_eq!(wide.missing, vec!["upgrade-wide-003".to_string()]);
    }

    #[test]
    fn a_changed_embedding_component_names_the_field() {
        let ds = Dataset::known();
        let mut snap = found(&ds);
        if let Some(ReadCollection::Found { records, .. }) = snap.collections.get_mut("upgrade-small") {
            records[0].embedding[1] += 0.125;
        }
        let d = diff(&ds, &snap);
        let small = d.collections.iter().find(|c| c.name == "upgrade-small").unwrap();
        assert_eq!(small.changed.len(), 1);
        assert_eq!(small.changed[0].fields.iter().map(|f| f.field.as_str()).collect::<Vec<_>>(), ["embedding"]);
    }

    #[test]
    fn an_int_read_back_as_float_is_the_same_value() {
        let ds = Dataset::known();
        let mut snap = found(&ds);
        if let Some(ReadCollection::Found { records, .. }) = snap.collections.get_mut("upgrade-small") {
            records[2].metadata.insert("index".into(), json!(2.0));
        }
        assert!(diff(&ds, &snap).intact());
    }

    #[test]
    fn an_absent_collection_counts_as_lost() {
        let ds = Dataset::known();
        let mut snap = found(&ds);
        snap.collections.insert("upgrade-unicode".into(), ReadCollection::Absent { status: 404, body: "not found".into() });
        let d = diff(&ds, &snap);
        assert!(d.lost_data());
        assert_eq!(d.survived_collections(), ds.collections.len() - 1);
    }

    #[test]
    fn server_errors_on_every_read_are_told_apart_from_missing_data() {
        let ds = Dataset::known();
        let mut snap = found(&ds);
        for name in ds.names() {
            snap.collections.insert(name.into(), ReadCollection::Unreadable { reason: "HTTP 500: no such column".into() });
        }
        snap.listed = Err("HTTP 500".into());
        assert!(diff(&ds, &snap).unreadable_everywhere().is_some_and(|r| r.contains("no such column")));
    }

    #[test]
    fn an_absent_collection_is_not_unreadable() {
        let ds = Dataset::known();
        let mut snap = found(&ds);
        snap.collections.insert("upgrade-small".into(), ReadCollection::Absent { status: 404, body: String::new() });
        assert_eq!(diff(&ds, &snap).unreadable_everywhere(), None);
    }

    #[test]
    fn an_extra_collection_is_unexpected_but_not_lost() {
        let ds = Dataset::known();
        let mut snap = found(&ds);
        if let Ok(l) = &mut snap.listed {
            l.push("stranger".into());
        }
        let d = diff(&ds, &snap);
        assert_eq!((d.unexpected_collections.clone(), d.lost_data()), (vec!["stranger".to_string()], false));
    }

    #[test]
    fn embeddings_are_exact_in_f32() {
        for c in Dataset::known().collections {
            for r in c.records {
                assert!(r.embedding.iter().all(|x| (*x as f32) as f64 == *x), "{}", r.id);
            }
        }
    }
}
