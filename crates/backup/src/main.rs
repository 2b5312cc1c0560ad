//! The `chromadb-backup` command line. Exit codes: 0 ok, 1 runtime failure (including a
//! verify that found differences), 2 usage or bad input.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use backup::error::{Error, Result};
use backup::location::Location;
use backup::ops::{self, DumpOptions, Existing, RestoreOptions};
use backup::server::{Connect, Server, TokenHeader};
use clap::{Parser, Subcommand};

const AFTER_HELP: &str = "\
Credentials come only from the environment: CHROMA_BACKUP_TOKEN (sent as `Authorization: Bearer` \
or `X-Chroma-Token`, see --token-header), or CHROMA_BACKUP_BASIC_USER and CHROMA_BACKUP_BASIC_PASSWORD. \
S3 locations (s3://bucket/key or s3://bucket/prefix/) use AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, \
AWS_SECRET_ACCESS_KEY and AWS_ALLOW_HTTP=true for a plain-http endpoint.

Consistency: a dump reads the server collection by collection, page by page through the API: it is not a \
point-in-time snapshot. Records written while a collection is read may or may not be in the archive, and \
each collection is read at a different moment. Stop writes during the dump for an exact copy.

Exit codes: 0 ok; 1 runtime failure (server unreachable or refusing, verify found differences); 2 usage or bad input \
(bad location, bad archive, restore into a server that already has collections).";

#[derive(Debug, Parser)]
#[command(name = "chromadb-backup", version, about = "Back up, restore and verify a Chroma server of any version (0.4.3 to 1.x)", after_help = AFTER_HELP)]
struct Cli {
    /// The server, e.g. http://chromadb:8000.
    #[arg(
        long,
        env = "CHROMA_BACKUP_URL",
        global = true,
        default_value = "http://localhost:8000"
    )]
    url: String,
    /// Which header carries CHROMA_BACKUP_TOKEN.
    #[arg(
        long,
        env = "CHROMA_BACKUP_TOKEN_HEADER",
        global = true,
        value_enum,
        default_value = "authorization"
    )]
    token_header: TokenHeader,
    /// Tenant (ignored by servers that only serve /api/v1).
    #[arg(
        long,
        env = "CHROMA_BACKUP_TENANT",
        global = true,
        default_value = "default_tenant"
    )]
    tenant: String,
    /// Database (ignored by servers that only serve /api/v1).
    #[arg(
        long,
        env = "CHROMA_BACKUP_DATABASE",
        global = true,
        default_value = "default_database"
    )]
    database: String,
    /// Keep retrying the server's heartbeat for this many seconds before giving up.
    #[arg(
        long,
        env = "CHROMA_BACKUP_WAIT_READY",
        global = true,
        default_value_t = 0
    )]
    wait_ready: u64,
    /// PEM file of the CA that signed an https server's certificate, trusted instead of the
    /// system's roots (e.g. the ca.crt of the server's TLS Secret).
    #[arg(long, env = "CHROMA_BACKUP_CACERT", global = true, value_name = "FILE")]
    cacert: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write every collection of the server to one archive; prints the archive's location.
    Dump {
        /// A file, a directory (ends with / or exists), s3://bucket/key or s3://bucket/prefix/.
        #[arg(long)]
        to: String,
        /// After writing into a directory or prefix, delete all but the newest N archives there.
        #[arg(long)]
        keep: Option<usize>,
        /// Records read per request.
        #[arg(long, env = "CHROMA_BACKUP_PAGE_SIZE", default_value_t = 1000)]
        page_size: usize,
        /// Read requests in flight at once.
        #[arg(long, env = "CHROMA_BACKUP_INFLIGHT", default_value_t = 2)]
        inflight: usize,
    },
    /// Write an archive into the server (the newest archive when given a directory or prefix).
    Restore {
        #[arg(long)]
        from: String,
        /// Delete the server's collections first.
        #[arg(long, conflicts_with = "merge")]
        replace: bool,
        /// Add the archive's records into existing collections (upsert).
        #[arg(long)]
        merge: bool,
        /// Largest request body sent; halved whenever the server answers 413.
        #[arg(long, default_value_t = 16 << 20)]
        max_request_bytes: usize,
    },
    /// Diff the archive against the server record by record; exit 0 only if identical.
    Verify {
        #[arg(long)]
        from: String,
    },
    /// Print the archive's manifest (after checking every checksum).
    Inspect { location: String },
}

fn secret(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Cli {
    fn connect(&self) -> Result<Connect> {
        let basic = match (
            secret("CHROMA_BACKUP_BASIC_USER"),
            secret("CHROMA_BACKUP_BASIC_PASSWORD"),
        ) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            _ => return Err(Error::Usage(
                "basic auth needs both CHROMA_BACKUP_BASIC_USER and CHROMA_BACKUP_BASIC_PASSWORD"
                    .into(),
            )),
        };
        let token = secret("CHROMA_BACKUP_TOKEN");
        if token.is_some() && basic.is_some() {
            return Err(Error::Usage(
                "set either CHROMA_BACKUP_TOKEN or CHROMA_BACKUP_BASIC_USER/PASSWORD, not both"
                    .into(),
            ));
        }
        Ok(Connect {
            url: self.url.clone(),
            token,
            token_header: self.token_header,
            basic,
            tenant: self.tenant.clone(),
            database: self.database.clone(),
            wait_ready: Duration::from_secs(self.wait_ready),
            cacert: self.cacert.clone(),
        })
    }
}

fn scratch() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("chromadb-backup-")
        .tempdir()
        .map_err(backup::error::io(
            "creating a scratch directory in the temp dir",
        ))
}

async fn run(cli: Cli) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match &cli.command {
        Command::Dump {
            to,
            keep,
            page_size,
            inflight,
        } => {
            let to = Location::parse(to)?;
            let server = Server::connect(&cli.connect()?).await?;
            let r = ops::dump(
                &server,
                &to,
                &DumpOptions {
                    page: *page_size,
                    inflight: *inflight,
                    keep: *keep,
                },
            )
            .await?;
            tracing::info!(
                collections = r.collections,
                records = r.records,
                bytes = r.bytes,
                pruned = r.pruned.len(),
                "dump complete"
            );
            let _ = writeln!(out, "{}", r.location);
        }
        Command::Restore {
            from,
            replace,
            merge,
            max_request_bytes,
        } => {
            let from = Location::parse(from)?;
            let dir = scratch()?;
            // The whole archive is checked before the server is even contacted.
            let (archive, one) = ops::open_archive(&from, dir.path()).await?;
            let server = Server::connect(&cli.connect()?).await?;
            let existing = if *replace {
                Existing::Replace
            } else if *merge {
                Existing::Merge
            } else {
                Existing::Refuse
            };
            let r = ops::restore(
                &archive,
                &server,
                &RestoreOptions {
                    existing,
                    max_body_bytes: *max_request_bytes,
                },
            )
            .await?;
            tracing::info!(archive = %one, collections = r.collections, records = r.records, requests = r.requests, not_representable = r.lost.len(), "restore complete");
        }
        Command::Verify { from } => {
            let from = Location::parse(from)?;
            let dir = scratch()?;
            let (archive, one) = ops::open_archive(&from, dir.path()).await?;
            let server = Server::connect(&cli.connect()?).await?;
            let d = ops::verify(&archive, &server).await?;
            for l in &d.lines {
                let _ = writeln!(out, "{l}");
            }
            if d.count > 0 {
                return Err(Error::Differs(d.count));
            }
            tracing::info!(archive = %one, records = d.records_compared, "identical");
        }
        Command::Inspect { location } => {
            let from = Location::parse(location)?;
            let dir = scratch()?;
            let (archive, _) = ops::open_archive(&from, dir.path()).await?;
            let _ = writeln!(out, "{}", ops::inspect(&archive));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    chroma_api::ensure_crypto_provider();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CHROMA_BACKUP_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chromadb-backup: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chromadb-backup: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
