//! Every way the tool fails, each naming the offending thing and what would be accepted.

use chroma_api::client::BadAnswer;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- usage / bad input (exit 2) ---
    #[error(
        "location `{input}` is not usable: {reason} (accepted: a file path, a directory path, s3://bucket/path/name or s3://bucket/prefix/)"
    )]
    BadLocation { input: String, reason: String },
    #[error("{0}")]
    Usage(String),
    #[error("{path}: not a chromadb-backup archive: {reason}")]
    Foreign { path: String, reason: String },
    #[error("{path}: archive is truncated: {reason}")]
    Truncated { path: String, reason: String },
    #[error(
        "{path}: archive is corrupted: {member} has sha256 {found}, the manifest says {expected}"
    )]
    Checksum {
        path: String,
        member: String,
        expected: String,
        found: String,
    },
    #[error(
        "{path}: archive format version {found} is newer than this tool reads (it reads format versions 1 to {supported}); use a newer chromadb-backup"
    )]
    FutureFormat {
        path: String,
        found: u64,
        supported: u64,
    },
    #[error("{path}: archive is malformed: {reason}")]
    Malformed { path: String, reason: String },
    #[error("{location}: no archive named chroma-backup-<UTC time>.tar there")]
    NoArchive { location: String },
    #[error(
        "refusing to restore into {url}: it already has {count} collection(s) ({names}); pass --replace to delete them first or --merge to add the archive's records into them"
    )]
    TargetNotEmpty {
        url: String,
        count: usize,
        names: String,
    },
    #[error("the archive cannot be restored into Chroma {target}: {reasons}")]
    Unrepresentable { target: String, reasons: String },

    // --- runtime (exit 1) ---
    #[error(
        "cannot reach a Chroma server at {url} ({detail}); check --url / CHROMA_BACKUP_URL, or wait longer with --wait-ready SECONDS"
    )]
    Unreachable { url: String, detail: String },
    #[error(
        "{url} refused the credentials (HTTP {status} at {request}); set CHROMA_BACKUP_TOKEN (with --token-header authorization|x-chroma-token) or CHROMA_BACKUP_BASIC_USER and CHROMA_BACKUP_BASIC_PASSWORD"
    )]
    Unauthorised {
        url: String,
        status: u16,
        request: String,
    },
    #[error("{url} does not answer like a Chroma server: {detail}")]
    NotChroma { url: String, detail: String },
    #[error(transparent)]
    Api(#[from] BadAnswer),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: arrow_schema::ArrowError,
    },
    #[error("{context}: {source}")]
    Store {
        context: String,
        #[source]
        source: object_store::Error,
    },
    #[error(
        "collection {collection} changed too much while it was read: none of the last {window} records taken still exists, so the reader cannot find its place; run the dump again, with fewer writes"
    )]
    Moved { collection: String, window: usize },
    #[error(
        "{url} holds an interrupted restore: collection `{marker}` says a restore of {archive} started at {started} and never finished, so the other collections there may be half-written; restore that same archive again (it starts over), or use --replace to discard them"
    )]
    InterruptedRestore {
        url: String,
        marker: String,
        archive: String,
        started: String,
    },
    #[error("verify found {0} difference(s) between the archive and the server (listed on stdout)")]
    Differs(usize),
}

impl Error {
    /// 2 for usage and bad input (the caller must change something), 1 for runtime failures.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::BadLocation { .. }
            | Error::Usage(_)
            | Error::Foreign { .. }
            | Error::Truncated { .. }
            | Error::Checksum { .. }
            | Error::FutureFormat { .. }
            | Error::Malformed { .. }
            | Error::NoArchive { .. }
            | Error::TargetNotEmpty { .. }
            | Error::Unrepresentable { .. }
            | Error::InterruptedRestore { .. } => 2,
            _ => 1,
        }
    }
}

pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

pub fn arrow(context: impl Into<String>) -> impl FnOnce(arrow_schema::ArrowError) -> Error {
    let context = context.into();
    move |source| Error::Arrow { context, source }
}

pub fn store(context: impl Into<String>) -> impl FnOnce(object_store::Error) -> Error {
    let context = context.into();
    move |source| Error::Store { context, source }
}

pub fn path_str(p: &std::path::Path) -> String {
    p.display().to_string()
}
