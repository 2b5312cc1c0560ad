//! Where archives live: a local file or directory, or S3 (any S3-protocol server) through
//! `object_store`. A dump is never visible under its final name before it is complete: locally
//! it is written under a hidden `.partial` name and renamed; on S3 it is a multipart upload,
//! which only appears when completed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;

use crate::error::{Error, Result, io, store};

pub const PREFIX: &str = "chroma-backup-";
pub const EXT: &str = ".tar";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    Dir(PathBuf),
    S3Object { bucket: String, key: String },
    S3Prefix { bucket: String, prefix: String },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(p) | Location::Dir(p) => write!(f, "{}", p.display()),
            Location::S3Object { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            Location::S3Prefix { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// The archive name a dump at `time` gets in a directory or prefix.
pub fn archive_name(time: chrono::DateTime<chrono::Utc>) -> String {
    format!("{PREFIX}{}{EXT}", time.format("%Y%m%dT%H%M%SZ"))
}

/// Whether `name` is one this tool gives archives (so `--keep` never deletes anything else).
pub fn is_archive_name(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .and_then(|r| r.strip_suffix(EXT))
        .is_some_and(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%SZ").is_ok())
}

impl Location {
    pub fn parse(input: &str) -> Result<Location> {
        let bad = |reason: &str| Error::BadLocation {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(bad("it is empty"));
        }
        if let Some(rest) = input.strip_prefix("s3://") {
            let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket name after s3://"));
            }
            if path.is_empty() || path.ends_with('/') {
                return Ok(Location::S3Prefix {
                    bucket: bucket.into(),
                    prefix: path.into(),
                });
            }
            return Ok(Location::S3Object {
                bucket: bucket.into(),
                key: path.into(),
            });
        }
        if let Some((scheme, _)) = input.split_once("://") {
            return Err(bad(&format!("the scheme `{scheme}://` is not supported")));
        }
        let p = PathBuf::from(input);
        if input.ends_with('/') || p.is_dir() {
            return Ok(Location::Dir(p));
        }
        Ok(Location::File(p))
    }

    fn s3(bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        let s = AmazonS3Builder::from_env().with_bucket_name(bucket).build().map_err(store(format!("configuring S3 for bucket {bucket} (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP)")))?;
        Ok(Arc::new(s))
    }

    /// Lists archive names under a directory or prefix, oldest first.
    async fn archives(&self) -> Result<Vec<String>> {
        let mut names = match self {
            Location::Dir(d) => {
                let mut v = Vec::new();
                let rd = match std::fs::read_dir(d) {
                    Ok(rd) => rd,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
                    Err(e) => return Err(io(format!("listing {}", d.display()))(e)),
                };
                for e in rd {
                    let e = e.map_err(io(format!("listing {}", d.display())))?;
                    let n = e.file_name().to_string_lossy().into_owned();
                    if is_archive_name(&n) {
                        v.push(n);
                    }
                }
                v
            }
            Location::S3Prefix { bucket, prefix } => {
                let s = Self::s3(bucket)?;
                let p = ObjectPath::from(prefix.trim_end_matches('/'));
                let listed: Vec<_> = s
                    .list_with_delimiter(Some(&p))
                    .await
                    .map_err(store(format!("listing {self}")))?
                    .objects;
                listed
                    .into_iter()
                    .filter_map(|o| o.location.filename().map(str::to_string))
                    .filter(|n| is_archive_name(n))
                    .collect()
            }
            _ => {
                return Err(Error::Usage(format!(
                    "{self} is a single archive, not a directory or prefix"
                )));
            }
        };
        // The timestamp in the name sorts chronologically.
        names.sort();
        Ok(names)
    }

    fn child(&self, name: &str) -> Location {
        match self {
            Location::Dir(d) => Location::File(d.join(name)),
            Location::S3Prefix { bucket, prefix } => {
                let p = prefix.trim_end_matches('/');
                Location::S3Object {
                    bucket: bucket.clone(),
                    key: if p.is_empty() {
                        name.to_string()
                    } else {
                        format!("{p}/{name}")
                    },
                }
            }
            other => other.clone(),
        }
    }

    /// A single archive: the newest one when this is a directory or prefix.
    pub async fn resolve(&self) -> Result<Location> {
        match self {
            Location::Dir(_) | Location::S3Prefix { .. } => {
                let names = self.archives().await?;
                let newest = names.last().ok_or_else(|| Error::NoArchive {
                    location: self.to_string(),
                })?;
                Ok(self.child(newest))
            }
            other => Ok(other.clone()),
        }
    }

    /// Where a new dump goes.
    pub fn target(&self, now: chrono::DateTime<chrono::Utc>) -> Location {
        self.child(&archive_name(now))
    }

    /// A local path with the archive's bytes: the file itself, or an S3 object downloaded
    /// (streamed) into `scratch`.
    pub async fn fetch(&self, scratch: &Path) -> Result<PathBuf> {
        match self {
            Location::File(p) => {
                if !p.is_file() {
                    return Err(Error::BadLocation {
                        input: p.display().to_string(),
                        reason: "no such file".into(),
                    });
                }
                Ok(p.clone())
            }
            Location::S3Object { bucket, key } => {
                let s = Self::s3(bucket)?;
                let got = s
                    .get(&ObjectPath::from(key.as_str()))
                    .await
                    .map_err(|e| match e {
                        object_store::Error::NotFound { .. } => Error::BadLocation {
                            input: self.to_string(),
                            reason: "no such object".into(),
                        },
                        e => store(format!("reading {self}"))(e),
                    })?;
                let local = scratch.join("download.tar");
                let mut f = tokio::fs::File::create(&local)
                    .await
                    .map_err(io(format!("creating {}", local.display())))?;
                let mut stream = got.into_stream();
                while let Some(chunk) = stream
                    .try_next()
                    .await
                    .map_err(store(format!("reading {self}")))?
                {
                    tokio::io::AsyncWriteExt::write_all(&mut f, &chunk)
                        .await
                        .map_err(io(format!("writing {}", local.display())))?;
                }
                tokio::io::AsyncWriteExt::flush(&mut f)
                    .await
                    .map_err(io(format!("writing {}", local.display())))?;
                Ok(local)
            }
            _ => Err(Error::Usage(format!(
                "{self} must be resolved to one archive first"
            ))),
        }
    }

    /// For a local target: the hidden name the archive is written under until complete.
    pub fn partial_path(&self) -> Option<PathBuf> {
        match self {
            Location::File(p) => {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Some(p.with_file_name(format!(".{name}.partial")))
            }
            _ => None,
        }
    }

    /// Makes the finished archive visible under this (single-archive) location: a rename of
    /// the local partial file, or an S3 multipart upload of `built`.
    pub async fn commit(&self, built: &Path) -> Result<()> {
        match self {
            Location::File(p) => std::fs::rename(built, p).map_err(io(format!(
                "renaming {} to {}",
                built.display(),
                p.display()
            ))),
            Location::S3Object { bucket, key } => {
                let s = Self::s3(bucket)?;
                let up = s
                    .put_multipart(&ObjectPath::from(key.as_str()))
                    .await
                    .map_err(store(format!("starting the upload to {self}")))?;
                let mut w = WriteMultipart::new_with_chunk_size(up, 8 << 20);
                let mut f = tokio::fs::File::open(built)
                    .await
                    .map_err(io(format!("reading {}", built.display())))?;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = f
                        .read(&mut buf)
                        .await
                        .map_err(io(format!("reading {}", built.display())))?;
                    if n == 0 {
                        break;
                    }
                    w.wait_for_capacity(4)
                        .await
                        .map_err(store(format!("uploading to {self}")))?;
                    w.write(&buf[..n]);
                }
                w.finish()
                    .await
                    .map_err(store(format!("completing the upload to {self}")))?;
                Ok(())
            }
            _ => Err(Error::Usage(format!("{self} must be one archive"))),
        }
    }

    /// Deletes all but the newest `keep` archives under this directory or prefix; returns
    /// what it deleted.
    pub async fn prune(&self, keep: usize) -> Result<Vec<String>> {
        let names = self.archives().await?;
        let old = &names[..names.len().saturating_sub(keep)];
        for n in old {
            match self.child(n) {
                Location::File(p) => {
                    std::fs::remove_file(&p).map_err(io(format!("deleting {}", p.display())))?
                }
                Location::S3Object { bucket, key } => {
                    Self::s3(&bucket)?
                        .delete(&ObjectPath::from(key.as_str()))
                        .await
                        .map_err(store(format!("deleting s3://{bucket}/{key}")))?;
                }
                _ => {}
            }
            tracing::info!(archive = %n, "deleted by --keep {keep}");
        }
        Ok(old.to_vec())
    }

    /// Small objects (tests): put bytes at this single location.
    pub async fn put_bytes(&self, bytes: Vec<u8>) -> Result<()> {
        match self {
            Location::File(p) => {
                std::fs::write(p, bytes).map_err(io(format!("writing {}", p.display())))
            }
            Location::S3Object { bucket, key } => {
                Self::s3(bucket)?
                    .put(&ObjectPath::from(key.as_str()), PutPayload::from(bytes))
                    .await
                    .map_err(store(format!("writing {self}")))?;
                Ok(())
            }
            _ => Err(Error::Usage(format!("{self} must be one archive"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::s3_object("s3://b/x/y.tar", Location::S3Object { bucket: "b".into(), key: "x/y.tar".into() })]
    #[case::s3_prefix_with_slash("s3://b/x/", Location::S3Prefix { bucket: "b".into(), prefix: "x/".into() })]
    #[case::s3_bucket_root("s3://b", Location::S3Prefix { bucket: "b".into(), prefix: "".into() })]
    #[case::trailing_slash_is_a_directory("/nonexistent/backups/", Location::Dir("/nonexistent/backups/".into()))]
    #[case::a_missing_path_is_a_file("/nonexistent/a.tar", Location::File("/nonexistent/a.tar".into()))]
    fn locations_parse(#[case] input: &str, #[case] want: Location) {
        assert_eq!(Location::parse(input).unwrap(), want);
    }

    #[test]
    fn an_existing_directory_without_a_slash_is_a_directory() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            Location::parse(d.path().to_str().unwrap()).unwrap(),
            Location::Dir(d.path().into())
        );
    }

    #[rstest]
    #[case::other_scheme("gs://b/x", "`gs://` is not supported")]
    #[case::no_bucket("s3:///x", "no bucket")]
    #[case::empty("", "empty")]
    fn bad_locations_say_why_and_what_is_accepted(#[case] input: &str, #[case] why: &str) {
        let e = Location::parse(input).unwrap_err().to_string();
        assert!(
            e.contains(why) && e.contains("accepted: a file path"),
            "{e}"
        );
    }

    #[test]
    fn archive_names_carry_the_utc_time_and_are_recognised() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-28T09:05:07Z")
            .unwrap()
            .to_utc();
        assert_eq!(archive_name(t), "chroma-backup-20261128T090507Z.tar");
        assert!(is_archive_name(&archive_name(t)));
        assert!(!is_archive_name("chroma-backup-latest.tar"));
        assert!(!is_archive_name(
            ".chroma-backup-20261128T090507Z.tar.partial"
        ));
    }

    #[tokio::test]
    async fn keep_deletes_only_the_oldest_archives_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        for n in [
            "chroma-backup-20260101T000000Z.tar",
            "chroma-backup-20260102T000000Z.tar",
            "chroma-backup-20260103T000000Z.tar",
            "notes.txt",
        ] {
            std::fs::write(d.path().join(n), b"x").unwrap();
        }
        let loc = Location::Dir(d.path().into());
        let gone = loc.prune(2).await.unwrap();
        assert_eq!(gone, ["chroma-backup-20260101T000000Z.tar"]);
        let mut left: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "chroma-backup-20260102T000000Z.tar",
                "chroma-backup-20260103T000000Z.tar",
                "notes.txt"
            ]
        );
        assert_eq!(
            loc.resolve().await.unwrap(),
            Location::File(d.path().join("chroma-backup-20260103T000000Z.tar"))
        );
    }
}
