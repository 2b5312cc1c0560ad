//! The one known dataset the live checks write and read back: the `persistence` and `reset`
//! checks and every upgrade use it. A dataset is a few collections of records with ids,
//! embeddings, metadata and documents; [`write`] creates it through the REST API, [`read`]
//! reads it back (strictly: a 2xx answer that is not the API's answer is an error naming the
//! endpoint), and [`diff`] compares the two record by record.
//!
//! Values are chosen so that every era stores them exactly: embeddings are multiples of 1/8
//! (exact in the f32 the Rust server keeps), metadata has strings, ints and floats but no
//! booleans (0.4.3 stores those as 0/1), documents include non-ASCII text. The comparison is
//! exact: ids, documents and metadata strings byte for byte, numbers as the JSON number values
//! they are (an int read back as `2.0` is the same value; `2.125` read back as `2.1` is not),
//! metadata maps without regard to key order (1.x answers keys in hash order).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Number, Value, json};

use chroma_api::client::{self, Answer, Api, BadAnswer, Exchange};

/// One record as written (and as read back).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub id: String,
    pub embedding: Vec<f64>,
    /// `None` when the server answered `null`.
    pub metadata: Option<Map<String, Value>>,
    /// `None` when the server answered `null`.
    pub document: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionData {
    pub name: String,
    pub metadata: Map<String, Value>,
    pub records: Vec<Record>,
}

/// What is written and must be read back unchanged.
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

fn collection(
    name: &str,
    kind: &str,
    dim: usize,
    count: usize,
    doc: impl Fn(usize) -> String,
) -> CollectionData {
    let records = (0..count)
        .map(|i| Record {
            id: format!("{name}-{i:03}"),
            // Distinct, exactly representable components; sign varies so no two vectors collide.
            embedding: (0..dim)
                .map(|d| ((i * 7 + d * 3) % 41) as f64 / 8.0 - 2.5)
                .collect(),
            metadata: Some(obj(json!({
                "index": i,
                "bucket": format!("b{}", i % 3),
                "weight": (i as f64) * 0.25 - 1.0,
                "collection": name,
            }))),
            document: Some(doc(i)),
        })
        .collect();
    CollectionData {
        name: name.to_string(),
        metadata: obj(json!({"purpose": kind, "dimensions": dim})),
        records,
    }
}

impl Dataset {
    /// What every upgrade writes on A: 4 collections, 48 records, one collection empty.
    pub fn upgrade() -> Dataset {
        Dataset {
            collections: vec![
                collection("upgrade-small", "upgrade-small", 4, 12, |i| {
                    format!("small record number {i}")
                }),
                collection("upgrade-wide", "upgrade-wide", 64, 30, |i| {
                    format!(
                        "wide record {i}: {}",
                        "lorem ipsum ".repeat(i % 5 + 1).trim_end()
                    )
                }),
                collection("upgrade-unicode", "upgrade-unicode", 3, 6, |i| {
                    format!("документ {i} — 文書 ✓ ünïcödé")
                }),
                // An empty collection must survive as a collection.
                collection("upgrade-empty", "upgrade-empty", 8, 0, |_| String::new()),
            ],
        }
    }

    /// `collections` collections named `{prefix}-{n}` of `records` records each, for a check.
    pub fn small(prefix: &str, collections: usize, records: usize) -> Dataset {
        Dataset {
            collections: (0..collections)
                .map(|n| {
                    collection(&format!("{prefix}-{n}"), prefix, 4, records, |i| {
                        format!("document {i} of {prefix}-{n} — ünïcödé ✓")
                    })
                })
                .collect(),
        }
    }

    pub fn record_count(&self) -> usize {
        self.collections.iter().map(|c| c.records.len()).sum()
    }

    pub fn names(&self) -> Vec<&str> {
        self.collections.iter().map(|c| c.name.as_str()).collect()
    }
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

fn keep(ev: &mut Vec<Exchange>, a: Answer) -> Answer {
    ev.push(a.ex.clone());
    a
}

/// Creates every collection and adds its records. Every exchange is appended to `ev`.
pub async fn write(api: &Api, ds: &Dataset, ev: &mut Vec<Exchange>) -> Result<(), BadAnswer> {
    for c in &ds.collections {
        let created = keep(
            ev,
            api.create_collection(&c.name, Value::Object(c.metadata.clone()))
                .await,
        );
        let id = client::collection(&created, &format!("creating collection {}", c.name))?.id;
        if c.records.is_empty() {
            continue;
        }
        let added = keep(ev, api.add(&id, add_body(c)).await);
        added.require_2xx(&format!("adding {} records to {}", c.records.len(), c.name))?;
    }
    Ok(())
}

/// One collection as the server returned it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ReadCollection {
    Found {
        id: String,
        metadata: Option<Map<String, Value>>,
        records: Vec<Record>,
    },
    /// The server says there is no such collection.
    Absent { status: u16, body: String },
    /// The server answered something that is neither the collection nor "not found".
    Unreadable { reason: String },
}

/// What the server holds, for the dataset's collection names.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub collections: BTreeMap<String, ReadCollection>,
    /// Every collection name the listing returned (`Err` when listing failed or its answer
    /// was not a listing).
    pub listed: Result<Vec<String>, String>,
}

impl Snapshot {
    /// The id of a collection that was found.
    pub fn id_of(&self, name: &str) -> Option<&str> {
        match self.collections.get(name) {
            Some(ReadCollection::Found { id, .. }) => Some(id),
            _ => None,
        }
    }
}

/// A `get` answer (asked to include embeddings, metadatas and documents) as records: every
/// column present and as long as `ids`, every value of the type the API documents.
pub fn parse_records(a: &Answer, endpoint: &str) -> Result<Vec<Record>, BadAnswer> {
    let v = a.json_2xx(endpoint)?;
    let bad = |p: String| a.bad(endpoint, p);
    let ids = v
        .get("ids")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("there is no `ids` list".into()))?;
    // 0.4.x answers `null` instead of `[]` for an included column when nothing matched.
    let empty = Vec::new();
    let column = |k: &str| match v.get(k) {
        Some(Value::Array(a)) => Ok(a),
        Some(Value::Null) if ids.is_empty() => Ok(&empty),
        _ => Err(bad(format!("there is no `{k}` list"))),
    };
    let (embs, metas, docs) = (
        column("embeddings")?,
        column("metadatas")?,
        column("documents")?,
    );
    for (k, col) in [
        ("embeddings", embs),
        ("metadatas", metas),
        ("documents", docs),
    ] {
        if col.len() != ids.len() {
            return Err(bad(format!(
                "`{k}` has {} entries for {} ids",
                col.len(),
                ids.len()
            )));
        }
    }
    let mut out = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let id = id
            .as_str()
            .ok_or_else(|| bad(format!("id #{i} is not a string: {id}")))?
            .to_string();
        let embedding = embs[i]
            .as_array()
            .and_then(|e| e.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
            .ok_or_else(|| {
                bad(format!(
                    "the embedding of {id} is not a list of numbers: {}",
                    embs[i]
                ))
            })?;
        let metadata = match &metas[i] {
            Value::Null => None,
            Value::Object(m) => Some(m.clone()),
            other => {
                return Err(bad(format!(
                    "the metadata of {id} is neither an object nor null: {other}"
                )));
            }
        };
        let document = match &docs[i] {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => {
                return Err(bad(format!(
                    "the document of {id} is neither a string nor null: {other}"
                )));
            }
        };
        out.push(Record {
            id,
            embedding,
            metadata,
            document,
        });
    }
    Ok(out)
}

/// Reads the dataset's collections (and the listing) back. Every exchange is appended to `ev`.
pub async fn read(api: &Api, ds: &Dataset, ev: &mut Vec<Exchange>) -> Snapshot {
    let list = keep(ev, api.list_collections().await);
    let listed = client::collection_names(&list).map_err(|e| e.to_string());
    let mut collections = BTreeMap::new();
    for name in ds.names() {
        let got = keep(ev, api.get_collection(name).await);
        let status = got.status();
        let state = if got.ex.ok() {
            match client::collection(&got, &format!("getting collection {name}")) {
                Err(e) => ReadCollection::Unreadable {
                    reason: e.to_string(),
                },
                Ok(info) => {
                    let recs = keep(ev, api.get_records(&info.id).await);
                    match parse_records(&recs, &format!("reading the records of {name}")) {
                        Ok(records) => ReadCollection::Found {
                            id: info.id,
                            metadata: info.metadata,
                            records,
                        },
                        Err(e) => ReadCollection::Unreadable {
                            reason: e.to_string(),
                        },
                    }
                }
            }
        } else if status == 0 || status >= 500 || status == 401 || status == 403 {
            ReadCollection::Unreadable {
                reason: format!(
                    "getting collection {name} answered HTTP {status}: {}",
                    got.ex.response_body
                ),
            }
        } else {
            // A 4xx other than auth: the server says the collection is not there.
            ReadCollection::Absent {
                status,
                body: got.ex.response_body.clone(),
            }
        };
        collections.insert(name.to_string(), state);
    }
    Snapshot {
        collections,
        listed,
    }
}

/// One field of one record (or of a collection) that came back different. `None` = absent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub expected: Option<Value>,
    pub found: Option<Value>,
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
    /// Collection metadata keys that differ.
    pub metadata: Vec<FieldChange>,
    pub missing: Vec<String>,
    pub changed: Vec<RecordChange>,
    pub unexpected: Vec<String>,
}

impl CollectionDiff {
    pub fn intact(&self) -> bool {
        self.lost.is_none()
            && self.metadata.is_empty()
            && self.missing.is_empty()
            && self.changed.is_empty()
            && self.unexpected.is_empty()
    }
    pub fn survived_records(&self) -> usize {
        self.expected_records
            .saturating_sub(self.missing.len() + self.changed.len())
            .min(self.found_records)
    }
}

/// Whether the server may hold collections the dataset did not write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The dataset is all there is (an upgrade): any other listed collection is unexpected.
    Exclusive,
    /// Other checks' collections may be there too; only the dataset's own are compared.
    Shared,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataDiff {
    pub collections: Vec<CollectionDiff>,
    /// Collections the server lists that the dataset never wrote ([`Scope::Exclusive`]).
    pub unexpected_collections: Vec<String>,
    /// Dataset collections readable by name that the listing leaves out.
    pub unlisted: Vec<String>,
    /// Listing failed or did not answer a listing (the per-collection reads may still work).
    pub listing_error: Option<String>,
}

impl DataDiff {
    /// Nothing missing, nothing changed, nothing extra.
    pub fn intact(&self) -> bool {
        self.collections.iter().all(CollectionDiff::intact)
            && self.unexpected_collections.is_empty()
            && self.unlisted.is_empty()
            && self.listing_error.is_none()
    }
    /// B runs but cannot read anything A left: every collection (and the listing) failed
    /// with a server error. Returns the first thing the server said.
    pub fn unreadable_everywhere(&self) -> Option<String> {
        let all = !self.collections.is_empty()
            && self
                .collections
                .iter()
                .all(|c| c.lost.as_deref().is_some_and(|l| l.starts_with(UNREADABLE)));
        if all && self.listing_error.is_some() {
            self.collections[0].lost.clone()
        } else {
            None
        }
    }
    pub fn expected_records(&self) -> usize {
        self.collections.iter().map(|c| c.expected_records).sum()
    }
    pub fn survived_records(&self) -> usize {
        self.collections
            .iter()
            .map(CollectionDiff::survived_records)
            .sum()
    }
    pub fn survived_collections(&self) -> usize {
        self.collections.iter().filter(|c| c.lost.is_none()).count()
    }
    /// Every reason this diff is not intact, one line each (empty when intact).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.collections {
            if let Some(l) = &c.lost {
                out.push(format!("{}: {l}", c.name));
            }
            for m in &c.metadata {
                out.push(format!(
                    "{}: {} expected {} found {}",
                    c.name,
                    m.field,
                    shown(&m.expected),
                    shown(&m.found)
                ));
            }
            if !c.missing.is_empty() {
                out.push(format!(
                    "{}: missing records {}",
                    c.name,
                    c.missing.join(", ")
                ));
            }
            for r in &c.changed {
                for f in &r.fields {
                    out.push(format!(
                        "{}: record {} {} expected {} found {}",
                        c.name,
                        r.id,
                        f.field,
                        shown(&f.expected),
                        shown(&f.found)
                    ));
                }
            }
            if !c.unexpected.is_empty() {
                out.push(format!(
                    "{}: unexpected records {}",
                    c.name,
                    c.unexpected.join(", ")
                ));
            }
        }
        if !self.unexpected_collections.is_empty() {
            out.push(format!(
                "unexpected collections: {}",
                self.unexpected_collections.join(", ")
            ));
        }
        if !self.unlisted.is_empty() {
            out.push(format!(
                "readable by name but missing from the listing: {}",
                self.unlisted.join(", ")
            ));
        }
        if let Some(e) = &self.listing_error {
            out.push(format!("listing collections failed: {e}"));
        }
        out
    }
}

fn shown(v: &Option<Value>) -> String {
    let s = v
        .as_ref()
        .map_or_else(|| "(absent)".to_string(), Value::to_string);
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}

/// The per-collection diff: counts, then every missing / changed / unexpected record.
impl fmt::Display for DataDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.collections {
            let state = if c.intact() {
                "intact".to_string()
            } else if let Some(l) = &c.lost {
                format!("LOST: {l}")
            } else {
                "DIFFERS".to_string()
            };
            writeln!(
                f,
                "  {:<18} {:>3}/{:<3} records  {state}",
                c.name,
                c.survived_records(),
                c.expected_records
            )?;
            for m in &c.metadata {
                writeln!(
                    f,
                    "    collection {} changed: expected {} found {}",
                    m.field,
                    shown(&m.expected),
                    shown(&m.found)
                )?;
            }
            if !c.missing.is_empty() {
                writeln!(
                    f,
                    "    missing ({}): {}",
                    c.missing.len(),
                    c.missing.join(", ")
                )?;
            }
            for r in &c.changed {
                for fc in &r.fields {
                    writeln!(
                        f,
                        "    changed {} {}: expected {} found {}",
                        r.id,
                        fc.field,
                        shown(&fc.expected),
                        shown(&fc.found)
                    )?;
                }
            }
            if !c.unexpected.is_empty() {
                writeln!(
                    f,
                    "    unexpected ({}): {}",
                    c.unexpected.len(),
                    c.unexpected.join(", ")
                )?;
            }
        }
        if !self.unexpected_collections.is_empty() {
            writeln!(
                f,
                "  unexpected collections: {}",
                self.unexpected_collections.join(", ")
            )?;
        }
        if !self.unlisted.is_empty() {
            writeln!(
                f,
                "  readable by name but not listed: {}",
                self.unlisted.join(", ")
            )?;
        }
        if let Some(e) = &self.listing_error {
            writeln!(f, "  listing collections failed: {e}")?;
        }
        Ok(())
    }
}

const UNREADABLE: &str = "collection could not be read";

/// Two JSON numbers are the same value: integers exactly, otherwise as the f64 both parse to
/// (so `2` and `2.0` are equal, `0.1` and `0.1000001` are not).
fn same_number(a: &Number, b: &Number) -> bool {
    match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
        (Some(x), Some(y), _, _) => x == y,
        (_, _, Some(x), Some(y)) => x == y,
        _ => a.as_f64().is_some_and(|x| b.as_f64() == Some(x)),
    }
}

/// Exact JSON equality, numbers by value, object keys in any order.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => same_number(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_json(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Two metadata maps hold the same values (numbers by value, keys in any order).
pub fn same_metadata(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    map_changes("metadata", Some(a), Some(b)).is_empty()
}

/// Key-by-key differences of two metadata maps, `prefix.key` named.
fn map_changes(
    prefix: &str,
    want: Option<&Map<String, Value>>,
    got: Option<&Map<String, Value>>,
) -> Vec<FieldChange> {
    match (want, got) {
        (None, None) => Vec::new(),
        (Some(_), None) | (None, Some(_)) => {
            vec![FieldChange {
                field: prefix.to_string(),
                expected: want.map(|m| Value::Object(m.clone())),
                found: got.map(|m| Value::Object(m.clone())),
            }]
        }
        (Some(w), Some(g)) => {
            let keys: BTreeSet<&String> = w.keys().chain(g.keys()).collect();
            keys.into_iter()
                .filter(
                    |k| !matches!((w.get(*k), g.get(*k)), (Some(x), Some(y)) if same_json(x, y)),
                )
                .map(|k| FieldChange {
                    field: format!("{prefix}.{k}"),
                    expected: w.get(k).cloned(),
                    found: g.get(k).cloned(),
                })
                .collect()
        }
    }
}

fn compare(want: &Record, got: &Record) -> Vec<FieldChange> {
    let mut out = Vec::new();
    if want.embedding.len() != got.embedding.len() {
        out.push(FieldChange {
            field: "embedding".into(),
            expected: Some(json!(want.embedding)),
            found: Some(json!(got.embedding)),
        });
    } else {
        for (i, (w, g)) in want.embedding.iter().zip(&got.embedding).enumerate() {
            // Exact: the values are chosen to be representable, so any difference is a change.
            if w != g {
                out.push(FieldChange {
                    field: format!("embedding[{i}]"),
                    expected: Some(json!(w)),
                    found: Some(json!(g)),
                });
            }
        }
    }
    out.extend(map_changes(
        "metadata",
        want.metadata.as_ref(),
        got.metadata.as_ref(),
    ));
    if want.document != got.document {
        out.push(FieldChange {
            field: "document".into(),
            expected: want.document.clone().map(Value::String),
            found: got.document.clone().map(Value::String),
        });
    }
    out
}

/// Compares what was written with what the server holds now.
pub fn diff(ds: &Dataset, snap: &Snapshot, scope: Scope) -> DataDiff {
    let mut collections = Vec::new();
    for c in &ds.collections {
        let mut d = CollectionDiff {
            name: c.name.clone(),
            expected_records: c.records.len(),
            found_records: 0,
            lost: None,
            metadata: Vec::new(),
            missing: Vec::new(),
            changed: Vec::new(),
            unexpected: Vec::new(),
        };
        match snap.collections.get(&c.name) {
            None => d.lost = Some("not read".into()),
            Some(ReadCollection::Absent { status, body }) => {
                d.lost = Some(format!("collection is gone (HTTP {status}: {body})"))
            }
            Some(ReadCollection::Unreadable { reason }) => {
                d.lost = Some(format!("{UNREADABLE}: {reason}"))
            }
            Some(ReadCollection::Found {
                metadata, records, ..
            }) => {
                d.found_records = records.len();
                d.metadata = map_changes("metadata", Some(&c.metadata), metadata.as_ref());
                let by_id: BTreeMap<&str, &Record> =
                    records.iter().map(|r| (r.id.as_str(), r)).collect();
                for want in &c.records {
                    match by_id.get(want.id.as_str()) {
                        None => d.missing.push(want.id.clone()),
                        Some(got) => {
                            let fields = compare(want, got);
                            if !fields.is_empty() {
                                d.changed.push(RecordChange {
                                    id: want.id.clone(),
                                    fields,
                                });
                            }
                        }
                    }
                }
                let known: BTreeSet<&str> = c.records.iter().map(|r| r.id.as_str()).collect();
                d.unexpected = records
                    .iter()
                    .filter(|r| !known.contains(r.id.as_str()))
                    .map(|r| r.id.clone())
                    .collect();
            }
        }
        collections.push(d);
    }
    let names: BTreeSet<&str> = ds.names().into_iter().collect();
    let (unexpected_collections, unlisted, listing_error) = match &snap.listed {
        Ok(listed) => {
            let unexpected = match scope {
                Scope::Exclusive => listed
                    .iter()
                    .filter(|n| !names.contains(n.as_str()))
                    .cloned()
                    .collect(),
                Scope::Shared => Vec::new(),
            };
            let found = snap
                .collections
                .iter()
                .filter(|(_, s)| matches!(s, ReadCollection::Found { .. }))
                .map(|(n, _)| n);
            let unlisted = found.filter(|n| !listed.contains(n)).cloned().collect();
            (unexpected, unlisted, None)
        }
        Err(e) => (Vec::new(), Vec::new(), Some(e.clone())),
    };
    DataDiff {
        collections,
        unexpected_collections,
        unlisted,
        listing_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chroma_api::client::fake::answer;

    /// What an honest server holds after [`write`]: exactly the dataset.
    fn found(ds: &Dataset) -> Snapshot {
        Snapshot {
            collections: ds
                .collections
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        ReadCollection::Found {
                            id: format!("id-{}", c.name),
                            metadata: Some(c.metadata.clone()),
                            records: c.records.clone(),
                        },
                    )
                })
                .collect(),
            listed: Ok(ds.names().into_iter().map(str::to_string).collect()),
        }
    }

    fn records_mut<'a>(snap: &'a mut Snapshot, name: &str) -> &'a mut Vec<Record> {
        match snap.collections.get_mut(name) {
            Some(ReadCollection::Found { records, .. }) => records,
            other => panic!("{name} is not a found collection: {other:?}"),
        }
    }

    fn coll<'a>(d: &'a DataDiff, name: &str) -> &'a CollectionDiff {
        d.collections
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no diff for {name}"))
    }

    #[test]
    fn an_identical_read_back_is_intact() {
        let ds = Dataset::upgrade();
        let d = diff(&ds, &found(&ds), Scope::Exclusive);
        assert!(d.intact(), "{d}");
        assert_eq!((d.survived_records(), d.expected_records()), (48, 48));
    }

    #[test]
    fn a_deleted_record_is_missing_by_id() {
        let ds = Dataset::upgrade();
        let mut snap = found(&ds);
        records_mut(&mut snap, "upgrade-wide").remove(3);
        let d = diff(&ds, &snap, Scope::Exclusive);
        assert_eq!(coll(&d, "upgrade-wide").missing, ["upgrade-wide-003"]);
        assert!(!d.intact());
    }

    #[test]
    fn a_tampered_record_names_every_changed_field() {
        let ds = Dataset::upgrade();
        let mut snap = found(&ds);
        let r = &mut records_mut(&mut snap, "upgrade-small")[0];
        r.document = Some("tampered".into());
        r.embedding[1] += 0.125;
        r.metadata
            .as_mut()
            .unwrap()
            .insert("index".into(), json!(-1));
        r.metadata.as_mut().unwrap().remove("bucket");
        let d = diff(&ds, &snap, Scope::Exclusive);
        let small = coll(&d, "upgrade-small");
        assert_eq!(small.changed.len(), 1);
        let fields: Vec<&str> = small.changed[0]
            .fields
            .iter()
            .map(|f| f.field.as_str())
            .collect();
        assert_eq!(
            fields,
            [
                "embedding[1]",
                "metadata.bucket",
                "metadata.index",
                "document"
            ]
        );
        assert_eq!(
            small.changed[0].fields[1].found, None,
            "an absent key is reported as absent"
        );
    }

    #[test]
    fn an_unexpected_record_is_reported_by_id() {
        let ds = Dataset::upgrade();
        let mut snap = found(&ds);
        let mut extra = ds.collections[0].records[0].clone();
        extra.id = "stranger".into();
        records_mut(&mut snap, "upgrade-small").push(extra);
        assert_eq!(
            coll(&diff(&ds, &snap, Scope::Exclusive), "upgrade-small").unexpected,
            ["stranger"]
        );
    }

    #[rstest::rstest]
    #[case::an_int_read_back_as_a_float_is_the_same_value(json!(2.0), true)]
    #[case::the_same_int_is_the_same_value(json!(2), true)]
    #[case::a_near_float_is_another_value(json!(2.000001), false)]
    #[case::a_numeric_string_is_not_a_number(json!("2"), false)]
    #[case::null_is_not_a_number(Value::Null, false)]
    fn numbers_compare_as_values(#[case] read_back: Value, #[case] same: bool) {
        let ds = Dataset::upgrade();
        let mut snap = found(&ds);
        records_mut(&mut snap, "upgrade-small")[2]
            .metadata
            .as_mut()
            .unwrap()
            .insert("index".into(), read_back);
        assert_eq!(diff(&ds, &snap, Scope::Exclusive).intact(), same);
    }

    #[test]
    fn metadata_key_order_is_not_significant() {
        let ds = Dataset::upgrade();
        let mut snap = found(&ds);
        let r = &mut records_mut(&mut snap, "upgrade-small")[0];
        let reversed: Map<String, Value> = r.metadata.take().unwrap().into_iter().rev().collect();
        r.metadata = Some(reversed);
        assert!(diff(&ds, &snap, Scope::Exclusive).intact());
    }

    #[test]
    fn a_null_document_is_a_change() {
        let ds = Dataset::upgrade();
        let mut snap = found(&ds);
        records_mut(&mut snap, "upgrade-unicode")[1].document = None;
        let d = diff(&ds, &snap, Scope::Exclusive);
        assert_eq!(
            coll(&d, "upgrade-unicode").changed[0].fields[0].field,
            "document"
        );
    }

    #[test]
    fn an_absent_collection_counts_as_lost() {
        let ds = Dataset::upgrade();
        let mut snap = found(&ds);
        snap.collections.insert(
            "upgrade-unicode".into(),
            ReadCollection::Absent {
                status: 404,
                body: "not found".into(),
            },
        );
        let d = diff(&ds, &snap, Scope::Exclusive);
        assert_eq!(d.survived_collections(), ds.collections.len() - 1);
        assert!(!d.intact() && d.unreadable_everywhere().is_none());
    }

    #[test]
    fn changed_collection_metadata_is_named_by_key() {
        let ds = Dataset::upgrade();
        let mut snap = found(&ds);
        if let Some(ReadCollection::Found {
            metadata: Some(m), ..
        }) = snap.collections.get_mut("upgrade-empty")
        {
            m.insert("dimensions".into(), json!(9));
        }
        let d = diff(&ds, &snap, Scope::Exclusive);
        assert_eq!(
            coll(&d, "upgrade-empty").metadata[0].field,
            "metadata.dimensions"
        );
    }

    #[test]
    fn server_errors_on_every_read_are_told_apart_from_missing_data() {
        let ds = Dataset::upgrade();
        let mut snap = found(&ds);
        for name in ds.names() {
            snap.collections.insert(
                name.into(),
                ReadCollection::Unreadable {
                    reason: "HTTP 500: no such column".into(),
                },
            );
        }
        snap.listed = Err("HTTP 500".into());
        assert!(
            diff(&ds, &snap, Scope::Exclusive)
                .unreadable_everywhere()
                .is_some_and(|r| r.contains("no such column"))
        );
    }

    #[test]
    fn another_collection_is_unexpected_only_when_the_dataset_is_exclusive() {
        let ds = Dataset::upgrade();
        let mut snap = found(&ds);
        if let Ok(l) = &mut snap.listed {
            l.push("stranger".into());
        }
        assert_eq!(
            diff(&ds, &snap, Scope::Exclusive).unexpected_collections,
            ["stranger"]
        );
        assert!(diff(&ds, &snap, Scope::Shared).intact());
    }

    #[test]
    fn a_collection_missing_from_the_listing_is_reported() {
        let ds = Dataset::small("p", 2, 3);
        let mut snap = found(&ds);
        snap.listed = Ok(vec!["p-0".into()]);
        let d = diff(&ds, &snap, Scope::Shared);
        assert_eq!(d.unlisted, ["p-1"]);
        assert!(!d.intact());
    }

    #[test]
    fn embeddings_are_exact_in_f32() {
        for ds in [Dataset::upgrade(), Dataset::small("p", 3, 4)] {
            for c in ds.collections {
                for r in c.records {
                    assert!(
                        r.embedding.iter().all(|x| (*x as f32) as f64 == *x),
                        "{}",
                        r.id
                    );
                }
            }
        }
    }

    const GET: &str =
        "http://h/api/v2/tenants/default_tenant/databases/default_database/collections/c1/get";

    #[test]
    fn a_get_answer_parses_into_records() {
        let body = r#"{"ids":["a","b"],"embeddings":[[0.5,1],[2.0,-1.5]],"metadatas":[{"k":1},null],"documents":["x",null]}"#;
        let r = parse_records(&answer("POST", GET, 200, body), "reading the records of c").unwrap();
        assert_eq!(
            r[0],
            Record {
                id: "a".into(),
                embedding: vec![0.5, 1.0],
                metadata: Some(obj(json!({"k": 1}))),
                document: Some("x".into())
            }
        );
        assert_eq!(
            (r[1].metadata.as_ref(), r[1].document.as_ref()),
            (None, None)
        );
    }

    #[test]
    fn an_empty_get_answer_may_have_null_columns() {
        let body = r#"{"ids":[],"embeddings":null,"metadatas":[],"documents":[]}"#;
        assert_eq!(
            parse_records(&answer("POST", GET, 200, body), "reading the records of c").unwrap(),
            Vec::new()
        );
    }

    #[rstest::rstest]
    #[case::a_null_column_with_ids_is_not_a_get_answer(
        r#"{"ids":["a"],"embeddings":null,"metadatas":[null],"documents":[null]}"#,
        "no `embeddings` list"
    )]
    #[case::garbage_is_not_a_get_answer("OK", "not JSON")]
    #[case::a_get_answer_needs_ids(
        r#"{"embeddings":[],"metadatas":[],"documents":[]}"#,
        "no `ids` list"
    )]
    #[case::a_get_answer_needs_the_included_embeddings(
        r#"{"ids":["a"],"metadatas":[null],"documents":[null]}"#,
        "no `embeddings` list"
    )]
    #[case::columns_must_match_the_ids(
        r#"{"ids":["a"],"embeddings":[],"metadatas":[null],"documents":[null]}"#,
        "`embeddings` has 0 entries for 1 ids"
    )]
    #[case::an_embedding_is_numbers(
        r#"{"ids":["a"],"embeddings":[["x"]],"metadatas":[null],"documents":[null]}"#,
        "not a list of numbers"
    )]
    #[case::a_metadata_is_an_object(
        r#"{"ids":["a"],"embeddings":[[1]],"metadatas":[[1]],"documents":[null]}"#,
        "neither an object nor null"
    )]
    fn a_garbage_get_answer_names_the_endpoint(#[case] body: &str, #[case] problem: &str) {
        let e = parse_records(&answer("POST", GET, 200, body), "reading the records of c")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "reading the records of c (POST {GET}) answered HTTP 200"
            )) && e.contains(problem),
            "{e}"
        );
    }
}
