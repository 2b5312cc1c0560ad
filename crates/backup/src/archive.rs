//! The archive: one uncompressed tar holding
//!
//! - `manifest.json`: format name and version, tool and source server, per-collection
//!   settings, record counts and the sha256 of every member;
//! - `SHA256SUMS`: the same digests (and the manifest's) in `sha256sum -c` form;
//! - `collections/NNNN.arrow`: one Arrow IPC file per collection (LZ4-frame compressed
//!   buffers), columns `id`, `embedding` (list<float32>), `document`, `metadata` (the
//!   server's JSON text), `uri`. pyarrow, polars and DuckDB read these directly.
//!
//! Collections are written batch by batch into temporary member files (memory is bounded by
//! one batch), then the tar is assembled with the manifest first.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Float32Builder, ListBuilder, StringBuilder};
use arrow_array::{Array, ArrayRef, ListArray, RecordBatch, StringArray};
use arrow_ipc::CompressionType;
use arrow_ipc::reader::FileReader;
use arrow_ipc::writer::{FileWriter, IpcWriteOptions};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, arrow, io};
use crate::model::{Record, Settings};

pub const FORMAT: &str = "chromadb-backup";
/// Bumped on any change an older reader would misread.
pub const FORMAT_VERSION: u64 = 1;
pub const MANIFEST: &str = "manifest.json";
pub const SUMS: &str = "SHA256SUMS";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u64,
    pub tool_version: String,
    /// UTC, RFC 3339.
    pub created: String,
    pub source: Source,
    /// What a backup of a server taking writes contains (see the README).
    pub consistency: String,
    pub collections: Vec<CollectionEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// Without credentials.
    pub url: String,
    /// As the server reports it (every 1.x reports "1.0.0").
    pub version: String,
    pub api: String,
    pub tenant: String,
    pub database: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionEntry {
    pub name: String,
    pub metadata: Option<serde_json::Map<String, Value>>,
    /// The index settings in force on the source, in one form for every era.
    pub settings: Settings,
    /// The source's `configuration_json` as it answered it (1.x: hnsw, spann, embedding function).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<Value>,
    /// 1.3+ index schema as the source answered it; kept for reference, not restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Whether the source era has record uris.
    pub uris: bool,
    pub records: u64,
    /// Records that carry a uri (a target without uris is told before anything is written).
    #[serde(default)]
    pub records_with_uri: u64,
    pub dimension: Option<usize>,
    pub member: String,
    pub bytes: u64,
    pub sha256: String,
}

impl Manifest {
    /// A manifest of this format and version over `collections`.
    pub fn new(
        tool_version: impl Into<String>,
        created: impl Into<String>,
        source: Source,
        consistency: impl Into<String>,
        collections: Vec<CollectionEntry>,
    ) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            tool_version: tool_version.into(),
            created: created.into(),
            source,
            consistency: consistency.into(),
            collections,
        }
    }
}

impl CollectionEntry {
    /// The entry of a collection before its records are written: [`CollectionWriter`] fills
    /// in the counts, dimension, member name and digest.
    pub fn new(
        name: impl Into<String>,
        metadata: Option<serde_json::Map<String, Value>>,
        settings: Settings,
        uris: bool,
    ) -> CollectionEntry {
        CollectionEntry {
            name: name.into(),
            metadata,
            settings,
            configuration: None,
            schema: None,
            uris,
            records: 0,
            records_with_uri: 0,
            dimension: None,
            member: String::new(),
            bytes: 0,
            sha256: String::new(),
        }
    }
}

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new(
            "embedding",
            DataType::List(Arc::new(Field::new("item", DataType::Float32, false))),
            true,
        ),
        Field::new("document", DataType::Utf8, true),
        Field::new("metadata", DataType::Utf8, true),
        Field::new("uri", DataType::Utf8, true),
    ]))
}

/// Digests what passes through.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// One collection being written.
pub struct CollectionWriter {
    writer: FileWriter<Hashing<BufWriter<File>>>,
    path: PathBuf,
    pub entry: CollectionEntry,
}

pub fn to_batch(records: &[Record]) -> Result<RecordBatch> {
    let mut ids = StringBuilder::new();
    let mut emb = ListBuilder::new(Float32Builder::new()).with_field(Arc::new(Field::new(
        "item",
        DataType::Float32,
        false,
    )));
    let mut docs = StringBuilder::new();
    let mut metas = StringBuilder::new();
    let mut uris = StringBuilder::new();
    for r in records {
        ids.append_value(&r.id);
        match &r.embedding {
            Some(e) => {
                emb.values().append_slice(e);
                emb.append(true);
            }
            None => emb.append(false),
        }
        docs.append_option(r.document.as_deref());
        metas.append_option(
            r.metadata
                .as_ref()
                .map(|m| Value::Object(m.clone()).to_string()),
        );
        uris.append_option(r.uri.as_deref());
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()),
        Arc::new(emb.finish()),
        Arc::new(docs.finish()),
        Arc::new(metas.finish()),
        Arc::new(uris.finish()),
    ];
    RecordBatch::try_new(schema(), cols).map_err(arrow("building a record batch"))
}

impl CollectionWriter {
    pub fn create(dir: &Path, index: usize, entry: CollectionEntry) -> Result<CollectionWriter> {
        let member = format!("collections/{index:04}.arrow");
        let path = dir.join(format!("{index:04}.arrow"));
        let f = File::create(&path).map_err(io(format!("creating {}", path.display())))?;
        let out = Hashing {
            inner: BufWriter::with_capacity(1 << 20, f),
            hash: Sha256::new(),
            bytes: 0,
        };
        let opts = IpcWriteOptions::default()
            .try_with_compression(Some(CompressionType::LZ4_FRAME))
            .map_err(arrow("choosing LZ4 compression"))?;
        let writer = FileWriter::try_new_with_options(out, &schema(), opts)
            .map_err(arrow(format!("starting {member}")))?;
        Ok(CollectionWriter {
            writer,
            path,
            entry: CollectionEntry { member, ..entry },
        })
    }

    pub fn push(&mut self, records: &[Record]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        for r in records {
            if let Some(e) = &r.embedding {
                match self.entry.dimension {
                    None => self.entry.dimension = Some(e.len()),
                    Some(d) if d != e.len() => {
                        tracing::warn!(collection = %self.entry.name, id = %r.id, "embedding has {} dimensions, others {d}", e.len())
                    }
                    _ => {}
                }
            }
        }
        self.entry.records_with_uri += records.iter().filter(|r| r.uri.is_some()).count() as u64;
        let batch = to_batch(records)?;
        self.writer
            .write(&batch)
            .map_err(arrow(format!("writing {}", self.entry.member)))?;
        self.entry.records += records.len() as u64;
        Ok(())
    }

    pub fn finish(mut self) -> Result<(CollectionEntry, PathBuf)> {
        self.writer
            .finish()
            .map_err(arrow(format!("finishing {}", self.entry.member)))?;
        let mut out = self
            .writer
            .into_inner()
            .map_err(arrow(format!("closing {}", self.entry.member)))?;
        out.flush()
            .map_err(io(format!("writing {}", self.path.display())))?;
        self.entry.sha256 = hex::encode(out.hash.finalize_reset());
        self.entry.bytes = out.bytes;
        Ok((self.entry, self.path))
    }
}

fn append(
    tar: &mut tar::Builder<impl Write>,
    name: &str,
    size: u64,
    data: impl Read,
) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, name, data)
        .map_err(io(format!("adding {name} to the archive")))
}

/// Assembles the tar: manifest, sums, then the members.
pub fn assemble(manifest: &Manifest, members: &[PathBuf], out: impl Write) -> Result<()> {
    let text = serde_json::to_vec_pretty(manifest).expect("a manifest serialises");
    let mut sums = format!("{}  {MANIFEST}\n", hex::encode(Sha256::digest(&text)));
    for c in &manifest.collections {
        sums.push_str(&format!("{}  {}\n", c.sha256, c.member));
    }
    let mut tar = tar::Builder::new(out);
    append(&mut tar, MANIFEST, text.len() as u64, &text[..])?;
    append(&mut tar, SUMS, sums.len() as u64, sums.as_bytes())?;
    for (c, path) in manifest.collections.iter().zip(members) {
        let f = File::open(path).map_err(io(format!("reading {}", path.display())))?;
        append(
            &mut tar,
            &c.member,
            c.bytes,
            BufReader::with_capacity(1 << 20, f),
        )?;
    }
    tar.into_inner()
        .map_err(io("finishing the archive"))?
        .flush()
        .map_err(io("finishing the archive"))
}

/// An archive on local disk, its manifest read and its members located (not yet verified).
pub struct Archive {
    path: PathBuf,
    pub manifest: Manifest,
    sums: Option<String>,
    /// member → (offset of its data in the file, size)
    members: HashMap<String, (u64, u64)>,
}

/// A window of a file, so an Arrow reader can seek inside one tar member.
struct Slice {
    file: File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for Slice {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let got = self.file.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for Slice {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let p = match to {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::End(d) => self.len as i128 + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if p < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of a member",
            ));
        }
        self.pos = p as u64;
        Ok(self.pos)
    }
}

impl Archive {
    /// Reads the tar's index and the manifest. Foreign files, truncation and future formats
    /// are told apart here; checksums are [`Archive::validate`]'s job.
    pub fn open(path: &Path) -> Result<Archive> {
        let shown = path.display().to_string();
        let file = File::open(path).map_err(io(format!("opening {shown}")))?;
        let size = file
            .metadata()
            .map_err(io(format!("reading {shown}")))?
            .len();
        if size < 512 {
            return Err(Error::Foreign {
                path: shown,
                reason: format!("{size} bytes is too short for a tar archive"),
            });
        }
        let mut header = [0u8; 512];
        (&file)
            .read_exact(&mut header)
            .map_err(io(format!("reading {shown}")))?;
        if &header[257..262] != b"ustar" {
            return Err(Error::Foreign { path: shown, reason: "not a tar archive (no ustar header); a chromadb-backup archive is a tar starting with manifest.json".into() });
        }
        if !header.starts_with(MANIFEST.as_bytes()) {
            let first = String::from_utf8_lossy(&header[..100])
                .trim_end_matches('\0')
                .to_string();
            return Err(Error::Foreign {
                path: shown,
                reason: format!("a tar whose first member is `{first}`, not {MANIFEST}"),
            });
        }
        let mut tar = tar::Archive::new(BufReader::new(
            File::open(path).map_err(io(format!("opening {shown}")))?,
        ));
        let mut members = HashMap::new();
        let mut manifest_text = None;
        let mut sums = None;
        let entries = tar.entries_with_seek().map_err(|e| Error::Truncated {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        for entry in entries {
            let mut entry = entry.map_err(|e| Error::Truncated {
                path: shown.clone(),
                reason: format!("reading the tar index: {e}"),
            })?;
            let name = entry
                .path()
                .map_err(|e| Error::Malformed {
                    path: shown.clone(),
                    reason: format!("a member name: {e}"),
                })?
                .display()
                .to_string();
            let (start, len) = (entry.raw_file_position(), entry.size());
            if start + len > size {
                return Err(Error::Truncated {
                    path: shown,
                    reason: format!(
                        "member {name} needs {} bytes, the file has {}",
                        start + len,
                        size
                    ),
                });
            }
            if name == MANIFEST || name == SUMS {
                let mut s = String::new();
                entry.read_to_string(&mut s).map_err(|e| Error::Truncated {
                    path: shown.clone(),
                    reason: format!("reading {name}: {e}"),
                })?;
                if name == MANIFEST {
                    manifest_text = Some(s)
                } else {
                    sums = Some(s)
                }
            }
            members.insert(name, (start, len));
        }
        let text = manifest_text.ok_or_else(|| Error::Foreign {
            path: shown.clone(),
            reason: format!("no {MANIFEST}"),
        })?;
        let raw: Value = serde_json::from_str(&text).map_err(|e| Error::Malformed {
            path: shown.clone(),
            reason: format!("{MANIFEST} is not JSON: {e}"),
        })?;
        if raw.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(Error::Foreign {
                path: shown,
                reason: format!("{MANIFEST} does not say format \"{FORMAT}\""),
            });
        }
        let fv = raw
            .get("format_version")
            .and_then(Value::as_u64)
            .ok_or_else(|| Error::Malformed {
                path: shown.clone(),
                reason: format!("{MANIFEST} has no numeric format_version"),
            })?;
        if fv > FORMAT_VERSION {
            return Err(Error::FutureFormat {
                path: shown,
                found: fv,
                supported: FORMAT_VERSION,
            });
        }
        let manifest: Manifest = serde_json::from_value(raw).map_err(|e| Error::Malformed {
            path: shown.clone(),
            reason: format!("{MANIFEST}: {e}"),
        })?;
        for c in &manifest.collections {
            match members.get(&c.member) {
                None => {
                    return Err(Error::Truncated {
                        path: shown,
                        reason: format!("member {} (collection {}) is missing", c.member, c.name),
                    });
                }
                Some((_, len)) if *len != c.bytes => {
                    return Err(Error::Malformed {
                        path: shown,
                        reason: format!(
                            "member {} is {len} bytes, the manifest says {}",
                            c.member, c.bytes
                        ),
                    });
                }
                _ => {}
            }
        }
        Ok(Archive {
            path: path.to_path_buf(),
            manifest,
            sums,
            members,
        })
    }

    fn slice(&self, member: &str) -> Result<Slice> {
        let (start, len) = self.members[member];
        let file =
            File::open(&self.path).map_err(io(format!("opening {}", self.path.display())))?;
        Ok(Slice {
            file,
            start,
            len,
            pos: 0,
        })
    }

    /// Checks every digest (manifest included) and that every member is an Arrow file of the
    /// expected columns with the manifest's record count. Nothing is trusted before this.
    pub fn validate(&self) -> Result<()> {
        let shown = self.path.display().to_string();
        let sums = self.sums.as_deref().ok_or_else(|| Error::Truncated {
            path: shown.clone(),
            reason: format!("no {SUMS} member"),
        })?;
        let mut listed: HashMap<&str, &str> = HashMap::new();
        for line in sums.lines() {
            let (digest, name) = line.split_once("  ").ok_or_else(|| Error::Malformed {
                path: shown.clone(),
                reason: format!("{SUMS} line `{line}`"),
            })?;
            listed.insert(name, digest);
        }
        let mut names: Vec<&str> = vec![MANIFEST];
        names.extend(self.manifest.collections.iter().map(|c| c.member.as_str()));
        for name in names {
            let expected = listed.get(name).copied().ok_or_else(|| Error::Malformed {
                path: shown.clone(),
                reason: format!("{SUMS} has no line for {name}"),
            })?;
            let mut h = Sha256::new();
            io::copy(
                &mut BufReader::with_capacity(1 << 20, self.slice(name)?),
                &mut HashWriter(&mut h),
            )
            .map_err(io(format!("reading {name} in {shown}")))?;
            let found = hex::encode(h.finalize());
            let in_manifest = self
                .manifest
                .collections
                .iter()
                .find(|c| c.member == name)
                .map(|c| c.sha256.as_str());
            if found != expected || in_manifest.is_some_and(|m| m != found) {
                return Err(Error::Checksum {
                    path: shown,
                    member: name.to_string(),
                    expected: expected.to_string(),
                    found,
                });
            }
        }
        for c in &self.manifest.collections {
            let reader = FileReader::try_new(self.slice(&c.member)?, None).map_err(|e| {
                Error::Malformed {
                    path: shown.clone(),
                    reason: format!("{} is not an Arrow file: {e}", c.member),
                }
            })?;
            if reader.schema() != schema() {
                return Err(Error::Malformed {
                    path: shown,
                    reason: format!(
                        "{} has columns {:?}, expected id, embedding, document, metadata, uri",
                        c.member,
                        reader.schema()
                    ),
                });
            }
            let rows: usize = reader
                .into_iter()
                .map(|b| b.map(|b| b.num_rows()))
                .sum::<std::result::Result<usize, _>>()
                .map_err(|e| Error::Malformed {
                    path: shown.clone(),
                    reason: format!("{}: {e}", c.member),
                })?;
            if rows as u64 != c.records {
                return Err(Error::Malformed {
                    path: shown,
                    reason: format!(
                        "{} holds {rows} records, the manifest says {}",
                        c.member, c.records
                    ),
                });
            }
        }
        Ok(())
    }

    /// The collection's records, one Arrow batch at a time.
    pub fn batches(
        &self,
        c: &CollectionEntry,
    ) -> Result<impl Iterator<Item = Result<Vec<Record>>> + use<>> {
        let shown = format!("{} in {}", c.member, self.path.display());
        let reader = FileReader::try_new(
            BufReader::with_capacity(1 << 20, self.slice(&c.member)?),
            None,
        )
        .map_err(arrow(format!("reading {shown}")))?;
        Ok(reader.map(move |b| {
            let b = b.map_err(arrow(format!("reading {shown}")))?;
            from_batch(&b).map_err(|reason| Error::Malformed {
                path: shown.clone(),
                reason,
            })
        }))
    }
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn strings<'a>(b: &'a RecordBatch, name: &str) -> std::result::Result<&'a StringArray, String> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| format!("column {name} is missing or not utf8"))
}

pub fn from_batch(b: &RecordBatch) -> std::result::Result<Vec<Record>, String> {
    let ids = strings(b, "id")?;
    let docs = strings(b, "document")?;
    let metas = strings(b, "metadata")?;
    let uris = strings(b, "uri")?;
    let emb = b
        .column_by_name("embedding")
        .and_then(|c| c.as_any().downcast_ref::<ListArray>())
        .ok_or("column embedding is missing or not a list")?;
    let values = emb
        .values()
        .as_any()
        .downcast_ref::<arrow_array::Float32Array>()
        .ok_or("embedding values are not float32")?;
    let offsets = emb.value_offsets();
    let opt = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
    (0..b.num_rows())
        .map(|i| {
            let metadata = match opt(metas, i) {
                None => None,
                Some(t) => match serde_json::from_str(&t) {
                    Ok(Value::Object(m)) => Some(m),
                    _ => {
                        return Err(format!(
                            "record {}: metadata is not a JSON object",
                            ids.value(i)
                        ));
                    }
                },
            };
            let embedding = (!emb.is_null(i))
                .then(|| values.values()[offsets[i] as usize..offsets[i + 1] as usize].to_vec());
            Ok(Record {
                id: ids.value(i).to_string(),
                embedding,
                document: opt(docs, i),
                metadata,
                uri: opt(uris, i),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn records() -> Vec<Record> {
        vec![
            Record {
                id: "a".into(),
                embedding: Some(vec![0.1, -2.5, 3.0]),
                document: Some("документ ✓".into()),
                metadata: json!({"i": 1, "f": 2.0, "s": "x"}).as_object().cloned(),
                uri: None,
            },
            Record {
                id: "b".into(),
                embedding: Some(vec![1.0, 2.0, 3.0]),
                document: None,
                metadata: None,
                uri: Some("s3://x/y".into()),
            },
        ]
    }

    fn manifest(entries: Vec<CollectionEntry>) -> Manifest {
        let source = Source {
            url: "http://h:8000".into(),
            version: "1.0.0".into(),
            api: "/api/v2".into(),
            tenant: "t".into(),
            database: "d".into(),
        };
        Manifest::new("test", "2026-01-01T00:00:00Z", source, "test", entries)
    }

    pub(crate) fn write_archive(dir: &Path, batches: &[Vec<Record>]) -> PathBuf {
        let entry = CollectionEntry::new("c1", None, Settings::default(), true);
        let mut w = CollectionWriter::create(dir, 0, entry).unwrap();
        for b in batches {
            w.push(b).unwrap();
        }
        let (entry, path) = w.finish().unwrap();
        let out = dir.join("a.tar");
        assemble(&manifest(vec![entry]), &[path], File::create(&out).unwrap()).unwrap();
        out
    }

    #[test]
    fn records_round_trip_through_an_archive_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let recs = records();
        let path = write_archive(dir.path(), &[recs.clone(), recs[..1].to_vec()]);
        let a = Archive::open(&path).unwrap();
        a.validate().unwrap();
        assert_eq!(a.manifest.collections[0].records, 3);
        assert_eq!(a.manifest.collections[0].dimension, Some(3));
        let back: Vec<Record> = a
            .batches(&a.manifest.collections[0])
            .unwrap()
            .flat_map(Result::unwrap)
            .collect();
        assert_eq!(back.len(), 3);
        assert_eq!(back[..2], recs[..]);
        // An int stays an int and a float a float: metadata is kept as the server's JSON.
        assert_eq!(back[0].metadata.as_ref().unwrap()["i"], json!(1));
        assert!(back[0].metadata.as_ref().unwrap()["f"].is_f64());
    }

    #[test]
    fn the_manifest_is_the_first_member_and_sums_match_sha256sum() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_archive(dir.path(), &[records()]);
        let mut tar = tar::Archive::new(File::open(&path).unwrap());
        let mut names = Vec::new();
        let mut sums = String::new();
        let mut member = Vec::new();
        for e in tar.entries().unwrap() {
            let mut e = e.unwrap();
            let n = e.path().unwrap().display().to_string();
            if n == SUMS {
                e.read_to_string(&mut sums).unwrap();
            } else if n.ends_with(".arrow") {
                e.read_to_end(&mut member).unwrap();
            }
            names.push(n);
        }
        assert_eq!(names, [MANIFEST, SUMS, "collections/0000.arrow"]);
        let line = sums
            .lines()
            .find(|l| l.ends_with("collections/0000.arrow"))
            .unwrap();
        assert_eq!(
            line,
            format!(
                "{}  collections/0000.arrow",
                hex::encode(Sha256::digest(&member))
            )
        );
        assert!(
            member.starts_with(b"ARROW1"),
            "an Arrow IPC file starts with its magic"
        );
    }

    #[test]
    fn an_empty_collection_is_an_archive_member_with_no_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_archive(dir.path(), &[]);
        let a = Archive::open(&path).unwrap();
        a.validate().unwrap();
        assert_eq!(a.manifest.collections[0].records, 0);
        assert_eq!(a.batches(&a.manifest.collections[0]).unwrap().count(), 0);
    }
}
