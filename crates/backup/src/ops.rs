//! The four commands: dump, restore, verify, inspect.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use serde_json::{Map, Value};

use crate::archive::{Archive, CollectionEntry, CollectionWriter, Manifest, Source, assemble};
use crate::error::{Error, Result, io};
use crate::location::Location;
use crate::model::{self, Record, Settings, plan_create, same_value, user_metadata};
use crate::paging;
use crate::server::{Collection, Page, Server};

/// Said in the manifest, the README and `--help`.
pub const CONSISTENCY: &str = "collection by collection, page by page through the API: not a point-in-time snapshot. \
Records written to a collection while it is being read may or may not be in the archive, and \
collections are read one after another, so the archive can hold a state of each collection from a different moment. \
For an exact copy, stop writes during the dump.";

#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// Records per `get` page (and per Arrow batch).
    pub page: usize,
    /// `get` requests in flight at once.
    pub inflight: usize,
    pub keep: Option<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct DumpReport {
    pub location: String,
    pub collections: usize,
    pub records: u64,
    pub bytes: u64,
    pub pruned: Vec<String>,
    /// Collections whose count moved while they were read (a writer was at work).
    pub changed: Vec<Changed>,
}

/// A collection whose record count was not the same before, during and after its read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub collection: String,
    pub before: u64,
    pub after: u64,
    pub dumped: u64,
}

impl std::fmt::Display for Changed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "collection {} counted {} records when its read began, {} when it ended, {} archived",
            self.collection, self.before, self.after, self.dumped
        )
    }
}

/// A collection's records as [`paging`] reads them.
struct ServerPages<'a> {
    server: &'a Server,
    collection: &'a Collection,
    uris: bool,
}

impl paging::PageSource for ServerPages<'_> {
    async fn page(&self, offset: usize, limit: usize) -> Result<Vec<Record>> {
        self.server
            .get(self.collection, Page::Range { offset, limit }, self.uris)
            .await
    }

    async fn ids(&self, offset: usize, limit: usize) -> Result<Vec<String>> {
        Ok(self
            .server
            .get(self.collection, Page::IdsOnly { offset, limit }, false)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect())
    }
}

fn settings_on(server: &Server, c: &Collection) -> Settings {
    model::in_force(
        &server.version,
        c.metadata.as_ref(),
        c.configuration.as_ref(),
    )
}

pub async fn dump(server: &Server, to: &Location, opts: &DumpOptions) -> Result<DumpReport> {
    if opts.page == 0 {
        return Err(Error::Usage(
            "--page-size 0: a page must hold at least 1 record".into(),
        ));
    }
    if opts.inflight == 0 {
        return Err(Error::Usage(
            "--inflight 0: at least 1 request must be in flight".into(),
        ));
    }
    if opts.keep == Some(0) {
        return Err(Error::Usage(
            "--keep 0 would delete the archive just written; give 1 or more".into(),
        ));
    }
    if opts.keep.is_some() && !matches!(to, Location::Dir(_) | Location::S3Prefix { .. }) {
        return Err(Error::Usage(format!(
            "--keep needs a directory or prefix to prune, and {to} is one archive (end it with `/`)"
        )));
    }
    let target = match to {
        Location::Dir(d) => {
            std::fs::create_dir_all(d).map_err(io(format!("creating {}", d.display())))?;
            to.target(chrono::Utc::now())
        }
        Location::S3Prefix { .. } => to.target(chrono::Utc::now()),
        other => other.clone(),
    };
    // Scratch next to a local target (same filesystem, and no second copy of the archive);
    // in the temp dir for S3.
    let scratch_parent = match &target {
        Location::File(p) => p
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| ".".into()),
        _ => std::env::temp_dir(),
    };
    let scratch = tempfile::Builder::new()
        .prefix(".chroma-backup-scratch-")
        .tempdir_in(&scratch_parent)
        .map_err(io(format!(
            "creating a scratch directory in {}",
            scratch_parent.display()
        )))?;

    let collections = server.list_collections().await?;
    if let Some(m) = collections.iter().find(|c| c.name == RESTORE_MARKER) {
        return Err(interrupted(server, m));
    }
    let uris = server.has_uris().await?;
    let mut changed = Vec::new();
    let mut entries = Vec::new();
    let mut members = Vec::new();
    let mut total = 0;
    for (i, c) in collections.iter().enumerate() {
        let before = server.count(c).await?;
        let entry = CollectionEntry {
            configuration: c.configuration.clone(),
            schema: c.schema.clone(),
            ..CollectionEntry::new(
                c.name.clone(),
                c.metadata.clone(),
                settings_on(server, c),
                uris,
            )
        };
        let mut w = CollectionWriter::create(scratch.path(), i, entry)?;
        let pages = ServerPages {
            server,
            collection: c,
            uris,
        };
        let stats = paging::read_all(&pages, &c.name, opts.page, opts.inflight, |batch| {
            w.push(&batch)
        })
        .await?;
        if stats.reanchors > 0 {
            tracing::info!(collection = %c.name, times = stats.reanchors, "records were deleted behind the reader; it found its place again each time");
        }
        let (entry, path) = w.finish()?;
        let after = server.count(c).await?;
        if before != after || after != entry.records {
            tracing::warn!(collection = %c.name, before, after, dumped = entry.records, "the collection changed while it was dumped (see the consistency note)");
            changed.push(Changed {
                collection: c.name.clone(),
                before,
                after,
                dumped: entry.records,
            });
        }
        tracing::info!(collection = %c.name, records = entry.records, bytes = entry.bytes, "dumped");
        total += entry.records;
        entries.push(entry);
        members.push(path);
    }
    let source = Source {
        url: server.url().to_string(),
        version: server.version.to_string(),
        api: server.api.prefix.path().to_string(),
        tenant: server.tenant.clone(),
        database: server.database.clone(),
    };
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let manifest = Manifest::new(
        env!("CARGO_PKG_VERSION"),
        created,
        source,
        CONSISTENCY,
        entries,
    );
    let built = target
        .partial_path()
        .unwrap_or_else(|| scratch.path().join("archive.tar"));
    let result = async {
        let f = File::create(&built).map_err(io(format!("creating {}", built.display())))?;
        assemble(&manifest, &members, BufWriter::with_capacity(1 << 20, f))?;
        target.commit(&built).await
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&built);
    }
    result?;
    let bytes = std::fs::metadata(match &target {
        Location::File(p) => p.as_path(),
        _ => built.as_path(),
    })
    .map(|m| m.len())
    .unwrap_or(0);
    let pruned = match opts.keep {
        Some(k) => to.prune(k).await?,
        None => Vec::new(),
    };
    if !changed.is_empty() {
        let list: Vec<String> = changed.iter().map(ToString::to_string).collect();
        tracing::warn!(
            "{} collection(s) changed while they were read, so the archive holds each as it was at no single moment: {}",
            changed.len(),
            list.join("; ")
        );
    }
    Ok(DumpReport {
        location: target.to_string(),
        collections: manifest.collections.len(),
        records: total,
        bytes,
        pruned,
        changed,
    })
}

/// What to do when the target already has collections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Refuse,
    Replace,
    Merge,
}

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub existing: Existing,
    /// Upper bound of one add request's body; halved on a 413.
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Default)]
pub struct RestoreReport {
    pub collections: usize,
    pub records: u64,
    pub requests: usize,
    /// Everything the target cannot represent, by name.
    pub lost: Vec<String>,
}

/// Fetches and fully validates the archive at `from` (checksums, format, every member).
pub async fn open_archive(from: &Location, scratch: &Path) -> Result<(Archive, Location)> {
    let one = from.resolve().await?;
    let local = one.fetch(scratch).await?;
    let a = Archive::open(&local)?;
    a.validate()?;
    Ok((a, one))
}

/// 0.x collection names: 3–63 characters (1.x allows up to 512); found before anything is written.
fn name_problem(name: &str, target_is_rust: bool) -> Option<String> {
    let n = name.chars().count();
    let max = if target_is_rust { 512 } else { 63 };
    (!(3..=max).contains(&n)).then(|| {
        format!("collection name `{name}` has {n} characters, the target accepts 3 to {max}")
    })
}

/// The collection a restore creates before anything else and deletes after everything else:
/// while it exists, the server holds a restore that has not finished. A collection is what
/// every era can store and list (0.4.3 to 1.x); its metadata names the archive.
pub const RESTORE_MARKER: &str = "chromadb-backup-restore-in-progress";

/// What the marker says about the archive being restored: enough to tell the same archive again.
fn archive_identity(archive: &Archive) -> String {
    let m = &archive.manifest;
    let records: u64 = m.collections.iter().map(|c| c.records).sum();
    format!(
        "the archive created {} from {} ({} collections, {records} records)",
        m.created,
        m.source.url,
        m.collections.len()
    )
}

fn marker_field(c: &Collection, key: &str) -> String {
    c.metadata
        .as_ref()
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or("an unknown archive")
        .to_string()
}

fn interrupted(server: &Server, marker: &Collection) -> Error {
    Error::InterruptedRestore {
        url: server.url().to_string(),
        marker: RESTORE_MARKER.into(),
        archive: marker_field(marker, "archive"),
        started: marker_field(marker, "started"),
    }
}

pub async fn restore(
    archive: &Archive,
    server: &Server,
    opts: &RestoreOptions,
) -> Result<RestoreReport> {
    let mut existing = server.list_collections().await?;
    let identity = archive_identity(archive);
    if let Some(m) = existing.iter().find(|c| c.name == RESTORE_MARKER) {
        // An interrupted restore into an empty server of this same archive: everything there is
        // its own writing, so it starts over. Anything else is the user's to decide.
        let same = marker_field(m, "archive") == identity && marker_field(m, "mode") == "refuse";
        match opts.existing {
            Existing::Refuse if same => {
                tracing::warn!(
                    collections = existing.len() - 1,
                    "an earlier restore of this archive was interrupted (collection {RESTORE_MARKER} is there): deleting what it wrote and starting over"
                );
                for c in &existing {
                    server.delete_collection(&c.name).await?;
                }
                existing.clear();
            }
            Existing::Refuse => return Err(interrupted(server, m)),
            Existing::Replace | Existing::Merge => {}
        }
    }
    if !existing.is_empty() && opts.existing == Existing::Refuse {
        let mut names: Vec<&str> = existing.iter().map(|c| c.name.as_str()).take(5).collect();
        if existing.len() > 5 {
            names.push("…");
        }
        return Err(Error::TargetNotEmpty {
            url: server.url().to_string(),
            count: existing.len(),
            names: names.join(", "),
        });
    }
    let target = server.era();
    let target_uris = server.has_uris().await?;
    let mut lost = Vec::new();
    let mut refused = Vec::new();
    let mut plans = Vec::new();
    for c in &archive.manifest.collections {
        if let Some(p) = name_problem(&c.name, server.is_rust()) {
            refused.push(p);
        }
        let plan = plan_create(
            &c.name,
            c.metadata.as_ref(),
            &c.settings,
            c.configuration.as_ref(),
            &server.version,
        );
        lost.extend(plan.lost.iter().cloned());
        if c.records_with_uri > 0 && !target_uris {
            lost.push(format!(
                "collection {}: {} record uri(s) cannot be stored by {target}, which has no uris",
                c.name, c.records_with_uri
            ));
        }
        if c.schema.is_some() && server.is_rust() {
            tracing::debug!(collection = %c.name, "the archived 1.x schema is derived anew by the target from the configuration");
        }
        plans.push(plan);
    }
    if !refused.is_empty() {
        return Err(Error::Unrepresentable {
            target,
            reasons: refused.join("; "),
        });
    }
    for l in &lost {
        tracing::warn!("{l}");
    }
    if opts.existing == Existing::Replace {
        for c in &existing {
            server.delete_collection(&c.name).await?;
            tracing::info!(collection = %c.name, "deleted (--replace)");
        }
    }
    let mode = match opts.existing {
        Existing::Refuse => "refuse",
        Existing::Replace => "replace",
        Existing::Merge => "merge",
    };
    let mut marker = Map::new();
    marker.insert("archive".into(), Value::String(identity));
    marker.insert(
        "started".into(),
        Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    marker.insert("mode".into(), Value::String(mode.into()));
    server
        .create_collection(RESTORE_MARKER, Some(&marker), None, true)
        .await?;
    let max_records = server.max_batch_size().await.unwrap_or(usize::MAX);
    let split_by_presence = server.api.prefix == chroma_api::ApiPrefix::V1;
    let mut report = RestoreReport {
        lost,
        ..Default::default()
    };
    for (c, plan) in archive.manifest.collections.iter().zip(&plans) {
        let created = server
            .create_collection(
                &c.name,
                plan.metadata.as_ref(),
                plan.configuration.as_ref(),
                opts.existing == Existing::Merge,
            )
            .await?;
        let mut up = Uploader {
            server,
            collection: &created,
            upsert: opts.existing == Existing::Merge,
            uris: target_uris,
            split_by_presence,
            max_records,
            max_bytes: opts.max_body_bytes,
            requests: 0,
        };
        for batch in archive.batches(c)? {
            let batch = batch?;
            up.send(&batch).await?;
            report.records += batch.len() as u64;
        }
        report.requests += up.requests;
        report.collections += 1;
        tracing::info!(collection = %c.name, records = c.records, "restored");
    }
    // Last: only now is the restore whole.
    server.delete_collection(RESTORE_MARKER).await?;
    Ok(report)
}

struct Uploader<'a> {
    server: &'a Server,
    collection: &'a Collection,
    upsert: bool,
    uris: bool,
    /// 0.4.3 refuses `null` in documents/metadatas: send records with and without them apart.
    split_by_presence: bool,
    max_records: usize,
    max_bytes: usize,
    requests: usize,
}

/// The JSON of an add body for `records`, leaving out a field no record has.
pub fn add_body(records: &[Record], uris: bool) -> String {
    fn put<T: serde::Serialize>(buf: &mut Vec<u8>, v: &T) {
        serde_json::to_writer(&mut *buf, v).expect("records serialise");
    }
    fn list(buf: &mut Vec<u8>, records: &[Record], name: &str, f: impl Fn(&mut Vec<u8>, &Record)) {
        buf.extend_from_slice(format!(",\"{name}\":[").as_bytes());
        for (i, r) in records.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            f(buf, r);
        }
        buf.push(b']');
    }
    let mut buf = Vec::with_capacity(records.len() * 64);
    buf.extend_from_slice(b"{\"ids\":");
    put(&mut buf, &records.iter().map(|r| &r.id).collect::<Vec<_>>());
    if records.iter().any(|r| r.embedding.is_some()) {
        list(&mut buf, records, "embeddings", |b, r| put(b, &r.embedding));
    }
    if records.iter().any(|r| r.document.is_some()) {
        list(&mut buf, records, "documents", |b, r| put(b, &r.document));
    }
    if records.iter().any(|r| r.metadata.is_some()) {
        list(&mut buf, records, "metadatas", |b, r| put(b, &r.metadata));
    }
    if uris && records.iter().any(|r| r.uri.is_some()) {
        list(&mut buf, records, "uris", |b, r| put(b, &r.uri));
    }
    buf.push(b'}');
    String::from_utf8(buf).expect("serde_json writes UTF-8")
}

impl Uploader<'_> {
    async fn send(&mut self, records: &[Record]) -> Result<()> {
        if self.split_by_presence {
            let key = |r: &Record| (r.document.is_some(), r.metadata.is_some());
            let mut start = 0;
            for i in 1..=records.len() {
                if i == records.len() || key(&records[i]) != key(&records[start]) {
                    self.chunked(&records[start..i]).await?;
                    start = i;
                }
            }
            return Ok(());
        }
        self.chunked(records).await
    }

    /// Cuts by record count and by an estimate of the body size, then sends each cut.
    async fn chunked(&mut self, records: &[Record]) -> Result<()> {
        let mut start = 0;
        while start < records.len() {
            let mut end = start;
            let mut bytes = 64;
            while end < records.len() && end - start < self.max_records {
                let r = &records[end];
                let est = r.id.len()
                    + r.embedding.as_ref().map_or(0, |e| e.len() * 14)
                    + r.document.as_ref().map_or(0, |d| d.len() * 2)
                    + r.metadata
                        .as_ref()
                        .map_or(0, |m| Value::Object(m.clone()).to_string().len())
                    + 32;
                if end > start && bytes + est > self.max_bytes {
                    break;
                }
                bytes += est;
                end += 1;
            }
            self.exact(&records[start..end]).await?;
            start = end;
        }
        Ok(())
    }

    /// Sends, halving on a 413 until one record is refused.
    async fn exact(&mut self, records: &[Record]) -> Result<()> {
        let mut stack = vec![records];
        while let Some(part) = stack.pop() {
            let body = add_body(part, self.uris);
            self.requests += 1;
            if self.server.add(self.collection, body, self.upsert).await? {
                continue;
            }
            if part.len() == 1 {
                return Err(Error::Unrepresentable {
                    target: self.server.era(),
                    reasons: format!(
                        "record {} of collection {} is larger than the server's payload limit (HTTP 413)",
                        part[0].id, self.collection.name
                    ),
                });
            }
            let (a, b) = part.split_at(part.len() / 2);
            tracing::debug!(records = part.len(), "payload too large, halving");
            self.max_bytes = (self.max_bytes / 2).max(1024);
            stack.push(b);
            stack.push(a);
        }
        Ok(())
    }
}

/// Differences between an archive and a server, one line each.
#[derive(Debug, Default)]
pub struct Diff {
    pub lines: Vec<String>,
    pub count: usize,
    pub records_compared: u64,
}

impl Diff {
    const SHOWN_PER_COLLECTION: usize = 50;

    fn add(&mut self, shown: &mut usize, line: String) {
        self.count += 1;
        *shown += 1;
        if *shown <= Self::SHOWN_PER_COLLECTION {
            self.lines.push(line);
        } else if *shown == Self::SHOWN_PER_COLLECTION + 1 {
            self.lines
                .push("  … (more differences in this collection not shown)".into());
        }
    }
}

fn show(v: &impl serde::Serialize) -> String {
    let s = serde_json::to_string(v).unwrap_or_default();
    if s.len() > 120 {
        format!(
            "{}…",
            &s[..s
                .char_indices()
                .take_while(|(i, _)| *i < 120)
                .last()
                .map_or(0, |(i, c)| i + c.len_utf8())]
        )
    } else {
        s
    }
}

fn compare(name: &str, want: &Record, got: &Record, uris: bool) -> Vec<String> {
    let mut out = Vec::new();
    if want.embedding != got.embedding {
        out.push(format!(
            "collection {name}: record {}: embedding differs (archive {}, server {})",
            want.id,
            show(&want.embedding),
            show(&got.embedding)
        ));
    }
    if want.document != got.document {
        out.push(format!(
            "collection {name}: record {}: document differs (archive {}, server {})",
            want.id,
            show(&want.document),
            show(&got.document)
        ));
    }
    let wm = want
        .metadata
        .clone()
        .map(Value::Object)
        .unwrap_or(Value::Null);
    let gm = got
        .metadata
        .clone()
        .map(Value::Object)
        .unwrap_or(Value::Null);
    if !same_value(&wm, &gm) {
        out.push(format!(
            "collection {name}: record {}: metadata differs (archive {}, server {})",
            want.id,
            show(&wm),
            show(&gm)
        ));
    }
    if (uris || want.uri.is_some()) && want.uri != got.uri {
        out.push(format!(
            "collection {name}: record {}: uri differs (archive {}, server {})",
            want.id,
            show(&want.uri),
            show(&got.uri)
        ));
    }
    out
}

pub async fn verify(archive: &Archive, server: &Server) -> Result<Diff> {
    let mut diff = Diff::default();
    let on_server: BTreeMap<String, Collection> = server
        .list_collections()
        .await?
        .into_iter()
        .map(|c| (c.name.clone(), c))
        .collect();
    let uris = server.has_uris().await?;
    let archived: HashSet<&str> = archive
        .manifest
        .collections
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    for c in &archive.manifest.collections {
        let mut shown = 0;
        let Some(sc) = on_server.get(&c.name) else {
            diff.add(
                &mut shown,
                format!(
                    "collection {}: missing on the server ({} records in the archive)",
                    c.name, c.records
                ),
            );
            continue;
        };
        let (wm, gm) = (
            user_metadata(c.metadata.as_ref()),
            user_metadata(sc.metadata.as_ref()),
        );
        if !same_value(&Value::Object(wm.clone()), &Value::Object(gm.clone())) {
            diff.add(
                &mut shown,
                format!(
                    "collection {}: metadata differs (archive {}, server {})",
                    c.name,
                    show(&wm),
                    show(&gm)
                ),
            );
        }
        let target_settings = settings_on(server, sc);
        for (k, v) in c.settings.entries() {
            if server.is_rust() && !model::RUST_HNSW_KEYS.contains(&k) {
                continue;
            }
            let got = target_settings.get(k);
            if !got.as_ref().is_some_and(|g| same_value(g, &v)) {
                diff.add(
                    &mut shown,
                    format!(
                        "collection {}: index setting {k} differs (archive {v}, server {})",
                        c.name,
                        got.map_or("unset".into(), |g| g.to_string())
                    ),
                );
            }
        }
        let mut ids: HashSet<String> = HashSet::with_capacity(c.records as usize);
        let mut found = 0u64;
        for batch in archive.batches(c)? {
            let batch = batch?;
            for chunk in batch.chunks(1000) {
                let want_ids: Vec<String> = chunk.iter().map(|r| r.id.clone()).collect();
                let got: HashMap<String, Record> = server
                    .get(sc, Page::Ids(&want_ids), uris)
                    .await?
                    .into_iter()
                    .map(|r| (r.id.clone(), r))
                    .collect();
                for w in chunk {
                    diff.records_compared += 1;
                    match got.get(&w.id) {
                        None => diff.add(
                            &mut shown,
                            format!(
                                "collection {}: record {} missing on the server",
                                c.name, w.id
                            ),
                        ),
                        Some(g) => {
                            found += 1;
                            for line in compare(&c.name, w, g, uris) {
                                diff.add(&mut shown, line);
                            }
                        }
                    }
                }
                ids.extend(want_ids);
            }
        }
        let count = server.count(sc).await?;
        if count > found {
            // Find the extra records by id, paging ids only.
            let mut offset = 0;
            loop {
                let page = server
                    .get(
                        sc,
                        Page::IdsOnly {
                            offset,
                            limit: 5000,
                        },
                        false,
                    )
                    .await?;
                for r in &page {
                    if !ids.contains(&r.id) {
                        diff.add(
                            &mut shown,
                            format!(
                                "collection {}: record {} is on the server but not in the archive",
                                c.name, r.id
                            ),
                        );
                    }
                }
                offset += page.len();
                if page.len() < 5000 {
                    break;
                }
            }
        }
    }
    for name in on_server.keys().filter(|n| !archived.contains(n.as_str())) {
        let mut shown = 0;
        diff.add(
            &mut shown,
            format!("collection {name}: on the server but not in the archive"),
        );
    }
    Ok(diff)
}

/// The manifest as pretty JSON, plus a line saying whether every checksum matched.
pub fn inspect(archive: &Archive) -> String {
    serde_json::to_string_pretty(&archive.manifest).expect("a manifest serialises")
}

/// For tests and callers that build manifests by hand.
pub fn metadata_of(v: Value) -> Option<Map<String, Value>> {
    v.as_object().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_add_body_leaves_out_fields_no_record_has() {
        let r = Record {
            id: "a".into(),
            embedding: Some(vec![0.5, -1.0]),
            document: None,
            metadata: None,
            uri: None,
        };
        let b: Value = serde_json::from_str(&add_body(&[r], true)).unwrap();
        assert_eq!(b, json!({"ids": ["a"], "embeddings": [[0.5, -1.0]]}));
    }

    #[test]
    fn an_add_body_keeps_nulls_where_some_records_have_the_field() {
        let a = Record {
            id: "a".into(),
            embedding: Some(vec![1.0]),
            document: Some("d".into()),
            metadata: metadata_of(json!({"k": 1})),
            uri: Some("u".into()),
        };
        let b = Record {
            id: "b".into(),
            embedding: Some(vec![2.0]),
            document: None,
            metadata: None,
            uri: None,
        };
        let v: Value = serde_json::from_str(&add_body(&[a.clone(), b.clone()], true)).unwrap();
        assert_eq!(
            v,
            json!({"ids": ["a", "b"], "embeddings": [[1.0], [2.0]], "documents": ["d", null], "metadatas": [{"k": 1}, null], "uris": ["u", null]})
        );
        let v: Value = serde_json::from_str(&add_body(&[a, b], false)).unwrap();
        assert!(
            v.get("uris").is_none(),
            "a target without uris gets none: {v}"
        );
    }

    #[test]
    fn f32_embeddings_survive_json_exactly() {
        let e = vec![0.1f32, 1.0 / 3.0, -2.5e-8, f32::MAX];
        let r = Record {
            id: "a".into(),
            embedding: Some(e.clone()),
            document: None,
            metadata: None,
            uri: None,
        };
        let v: Value = serde_json::from_str(&add_body(&[r], false)).unwrap();
        let back: Vec<f32> = serde_json::from_value(v["embeddings"][0].clone()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn python_names_longer_than_63_are_refused_before_writing() {
        let long = "c".repeat(64);
        assert!(name_problem(&long, false).unwrap().contains("3 to 63"));
        assert!(name_problem(&long, true).is_none());
    }

    #[test]
    fn compare_names_the_field_that_differs() {
        let a = Record {
            id: "r1".into(),
            embedding: Some(vec![1.0]),
            document: Some("x".into()),
            metadata: metadata_of(json!({"n": 1})),
            uri: None,
        };
        let mut b = a.clone();
        assert!(compare("c", &a, &b, true).is_empty());
        b.metadata = metadata_of(json!({"n": 1.0}));
        assert!(
            compare("c", &a, &b, true).is_empty(),
            "1 and 1.0 are the same number"
        );
        b.document = Some("y".into());
        b.embedding = Some(vec![1.5]);
        let d = compare("c", &a, &b, true);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            d[0].contains("record r1: embedding differs") && d[1].contains("document differs"),
            "{d:?}"
        );
    }
}
