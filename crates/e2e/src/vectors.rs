//! The faults checks' workload: many records of 384-dimensional embeddings, deterministic
//! from a seed, and the harness's own brute-force nearest-neighbour reference to judge the
//! server's `query` answers by.
//!
//! The embeddings lie near a low-dimensional subspace (each is a fixed 384 × 8 matrix times
//! a random 8-vector), as real text embeddings concentrate near one: uniform random
//! 384-dimensional vectors have almost equidistant neighbours, where an approximate index
//! answers near-ties in any order and recall would measure the data, not the server.
//!
//! Every component is a multiple of 2⁻¹⁰ below 16 in magnitude, so it is exact in the f32
//! every era stores. The 1.x server prints f32s in their shortest form ("0.12304688"), which
//! is not the f64 the harness sent, so embeddings are compared as f32 bit patterns: a value
//! read back is the same when it parses to the very f32 that was written.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use crate::dataset::Record;

/// The embedding width the faults checks use (a common sentence-embedding size).
pub const DIM: usize = 384;
/// Intrinsic dimension of the generated embeddings.
const LATENT: usize = 8;
/// Components are multiples of this.
const QUANTUM: f32 = 1.0 / 1024.0;
/// Neighbours compared per query (recall@K).
pub const K: usize = 10;

/// One record as the harness writes it, with its embedding in the f32 the server keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Vector {
    pub id: String,
    pub embedding: Vec<f32>,
    pub document: String,
    pub metadata: Map<String, Value>,
}

/// A seeded generator of records and queries.
pub struct Workload {
    pub seed: u64,
    /// The fixed 384 × 8 projection.
    basis: Vec<[f32; LATENT]>,
    /// Which check writes it (ids, documents and metadata say so).
    pub tag: String,
}

fn quantize(x: f32) -> f32 {
    ((x / QUANTUM).round() * QUANTUM).clamp(-15.0, 15.0)
}

impl Workload {
    pub fn new(tag: &str, seed: u64) -> Workload {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_ba51);
        let basis = (0..DIM)
            .map(|_| std::array::from_fn(|_| rng.random_range(-0.5f32..0.5)))
            .collect();
        Workload {
            seed,
            basis,
            tag: tag.to_string(),
        }
    }

    fn embed(&self, rng: &mut StdRng) -> Vec<f32> {
        let z: [f32; LATENT] = std::array::from_fn(|_| rng.random_range(-1.0f32..1.0));
        self.basis
            .iter()
            .map(|row| {
                quantize(
                    row.iter().zip(&z).map(|(a, b)| a * b).sum::<f32>() * 2.0
                        + rng.random_range(-0.01f32..0.01),
                )
            })
            .collect()
    }

    /// Record `i` (any `i`, in any order: each has its own stream).
    pub fn record(&self, i: usize) -> Vector {
        let mut rng = StdRng::seed_from_u64(
            self.seed
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .wrapping_add(i as u64),
        );
        Vector {
            id: format!("{}-{i:06}", self.tag),
            embedding: self.embed(&mut rng),
            document: format!("record {i} of {} — ünïcödé ✓", self.tag),
            metadata: match json!({"index": i, "bucket": format!("b{}", i % 7), "weight": i as f64 * 0.25, "writer": self.tag})
            {
                Value::Object(m) => m,
                _ => Map::new(),
            },
        }
    }

    /// Records `range` as one `add` body.
    pub fn add_body(&self, range: std::ops::Range<usize>) -> String {
        let recs: Vec<Vector> = range.map(|i| self.record(i)).collect();
        json!({
            "ids": recs.iter().map(|r| &r.id).collect::<Vec<_>>(),
            "embeddings": recs.iter().map(|r| r.embedding.iter().map(|&x| f64::from(x)).collect::<Vec<_>>()).collect::<Vec<_>>(),
            "metadatas": recs.iter().map(|r| &r.metadata).collect::<Vec<_>>(),
            "documents": recs.iter().map(|r| &r.document).collect::<Vec<_>>(),
        })
        .to_string()
    }

    /// `n` query vectors from the same distribution (not records themselves).
    pub fn queries(&self, n: usize) -> Vec<Vec<f32>> {
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0x0a11_ce5e_ed00);
        (0..n).map(|_| self.embed(&mut rng)).collect()
    }
}

fn distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) - f64::from(*y))
        .map(|d| d * d)
        .sum()
}

/// The exact `k` nearest records (squared L2, Chroma's default space) to `q`, nearest first.
pub fn nearest<'a>(records: &'a [Vector], q: &[f32], k: usize) -> Vec<&'a str> {
    let mut d: Vec<(f64, &str)> = records
        .iter()
        .map(|r| (distance(&r.embedding, q), r.id.as_str()))
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
    d.into_iter().take(k).map(|(_, id)| id).collect()
}

/// The share of `reference` found in `answered` (recall@k with k = reference's length).
pub fn recall(answered: &[String], reference: &[&str]) -> f64 {
    if reference.is_empty() {
        return 1.0;
    }
    reference
        .iter()
        .filter(|r| answered.iter().any(|a| a == *r))
        .count() as f64
        / reference.len() as f64
}

/// Whose embedding a record read back carries, by exact f32 bit pattern: tells an embedding
/// the server answered beside another id (it paired a page's ids and vectors out of order)
/// from one that changed.
pub struct Owners(std::collections::HashMap<Vec<u32>, String>);

impl Owners {
    pub fn of<'a>(written: impl IntoIterator<Item = &'a Vector>) -> Owners {
        Owners(
            written
                .into_iter()
                .map(|v| {
                    (
                        v.embedding.iter().map(|x| x.to_bits()).collect(),
                        v.id.clone(),
                    )
                })
                .collect(),
        )
    }

    /// The id of the other written record whose embedding `read` carries, if it is one.
    pub fn other_than_own(&self, read: &Record) -> Option<&str> {
        let bits: Vec<u32> = read
            .embedding
            .iter()
            .map(|&x| (x as f32).to_bits())
            .collect();
        self.0
            .get(&bits)
            .map(String::as_str)
            .filter(|id| *id != read.id)
    }
}

/// What differs between the record as written and as read back (empty when identical):
/// embeddings as f32 bit patterns, documents byte for byte, metadata as exact JSON values.
pub fn differences(written: &Vector, read: &Record) -> Vec<String> {
    let mut out = Vec::new();
    if read.embedding.len() != written.embedding.len() {
        out.push(format!(
            "embedding has {} components, {} were written",
            read.embedding.len(),
            written.embedding.len()
        ));
    } else if let Some((i, (w, r))) = written
        .embedding
        .iter()
        .zip(&read.embedding)
        .enumerate()
        .find(|(_, (w, r))| (**r as f32).to_bits() != w.to_bits())
    {
        out.push(format!("embedding component {i} is {r}, {w} was written"));
    }
    if read.document.as_deref() != Some(written.document.as_str()) {
        out.push(format!(
            "document is {:?}, {:?} was written",
            read.document, written.document
        ));
    }
    match &read.metadata {
        Some(m) if crate::dataset::same_metadata(m, &written.metadata) => {}
        other => out.push(format!(
            "metadata is {}, {} was written",
            other
                .as_ref()
                .map_or("null".into(), |m| Value::Object(m.clone()).to_string()),
            Value::Object(written.metadata.clone())
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_deterministic_and_exact_in_f32() {
        let (a, b) = (Workload::new("t", 7), Workload::new("t", 7));
        assert_eq!(a.record(123), b.record(123));
        assert_ne!(a.record(1).embedding, a.record(2).embedding);
        assert_ne!(
            Workload::new("t", 8).record(1).embedding,
            a.record(1).embedding
        );
        let e = a.record(5).embedding;
        assert_eq!(e.len(), DIM);
        for x in e {
            assert_eq!(
                x,
                (f64::from(x) * 1024.0).round() as f32 / 1024.0,
                "{x} is not a multiple of 2^-10"
            );
        }
    }

    #[test]
    fn an_add_body_round_trips_every_component() {
        let w = Workload::new("t", 1);
        let body: Value = serde_json::from_str(&w.add_body(3..5)).unwrap();
        let emb = body["embeddings"][1].as_array().unwrap();
        assert_eq!(body["ids"][1], "t-000004");
        for (v, x) in emb.iter().zip(w.record(4).embedding) {
            assert_eq!(v.as_f64().unwrap() as f32, x);
        }
    }

    fn read_back(v: &Vector) -> Record {
        Record {
            id: v.id.clone(),
            embedding: v.embedding.iter().map(|&x| f64::from(x)).collect(),
            metadata: Some(v.metadata.clone()),
            document: Some(v.document.clone()),
        }
    }

    #[test]
    fn a_record_read_back_as_written_has_no_difference_even_in_shortest_f32_form() {
        let v = Workload::new("t", 3).record(9);
        let mut r = read_back(&v);
        // What the Rust server prints: the shortest decimal that parses to the same f32.
        r.embedding = v
            .embedding
            .iter()
            .map(|x| x.to_string().parse::<f64>().unwrap())
            .collect();
        assert!(differences(&v, &r).is_empty(), "{:?}", differences(&v, &r));
    }

    #[rstest::rstest]
    #[case::one_ulp_off_in_one_component(|r: &mut Record| r.embedding[17] = f64::from(f32::from_bits((r.embedding[17] as f32).to_bits() + 1)), "embedding component 17")]
    #[case::a_changed_document(|r: &mut Record| r.document = Some("x".into()), "document is")]
    #[case::a_lost_document(|r: &mut Record| r.document = None, "document is None")]
    #[case::a_changed_metadata_value(|r: &mut Record| { r.metadata.as_mut().unwrap().insert("weight".into(), json!(0.5)); }, "metadata is")]
    #[case::a_truncated_embedding(|r: &mut Record| { r.embedding.pop(); }, "383 components")]
    fn every_difference_is_named(#[case] change: fn(&mut Record), #[case] want: &str) {
        let v = Workload::new("t", 3).record(9);
        let mut r = read_back(&v);
        change(&mut r);
        let d = differences(&v, &r);
        assert!(d.len() == 1 && d[0].contains(want), "{d:?}");
    }

    #[rstest::rstest]
    #[case::another_records_embedding_names_that_record(|w: &Workload, r: &mut Record| r.embedding = read_back(&w.record(4)).embedding, Some("t-000004"))]
    #[case::its_own_embedding_names_nobody(|_: &Workload, _: &mut Record| {}, None)]
    #[case::a_changed_embedding_names_nobody(|_: &Workload, r: &mut Record| r.embedding[0] += 1.0, None)]
    #[case::an_embedding_written_for_no_record_names_nobody(|w: &Workload, r: &mut Record| r.embedding = read_back(&w.record(99)).embedding, None)]
    fn a_swapped_embedding_names_its_owner(
        #[case] change: fn(&Workload, &mut Record),
        #[case] owner: Option<&str>,
    ) {
        let w = Workload::new("t", 3);
        let written: Vec<Vector> = (0..10).map(|i| w.record(i)).collect();
        let mut r = read_back(&written[7]);
        change(&w, &mut r);
        assert_eq!(Owners::of(&written).other_than_own(&r), owner);
    }

    #[test]
    fn nearest_is_exact_and_recall_counts_the_overlap() {
        let w = Workload::new("t", 11);
        let recs: Vec<Vector> = (0..200).map(|i| w.record(i)).collect();
        // A stored vector is its own nearest neighbour.
        assert_eq!(
            nearest(&recs, &recs[42].embedding, 1),
            vec![recs[42].id.as_str()]
        );
        let q = &w.queries(1)[0];
        let top = nearest(&recs, q, K);
        assert_eq!(top.len(), K);
        let worst_in = top
            .iter()
            .map(|id| distance(&recs.iter().find(|r| r.id == *id).unwrap().embedding, q))
            .fold(0.0, f64::max);
        assert!(
            recs.iter()
                .filter(|r| !top.contains(&r.id.as_str()))
                .all(|r| distance(&r.embedding, q) >= worst_in)
        );
        let answered: Vec<String> = top
            .iter()
            .take(7)
            .map(|s| s.to_string())
            .chain(["elsewhere".to_string()])
            .collect();
        assert_eq!(recall(&answered, &top), 0.7);
    }
}
