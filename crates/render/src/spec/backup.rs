//! Backup and restore: what the spec says the backup CronJob and the restore Job do for a set
//! of values on a version — where archives go, how many are kept, and which credentials the
//! tool is handed. Written from the documentation, never read from a render.

use serde_yaml::Value;

use super::values::{err, lookup, parse_bool, parse_int, parse_str, show};
use super::{Auth, SpecError, TokenHeader};

/// Where the backup and restore pods mount a backup claim.
pub const BACKUP_MOUNT: &str = "/backups";
/// Where the backup and restore pods find the deployment's CA with TLS on (its directory is a
/// read-only mount of the CA's ConfigMap or Secret).
pub const BACKUP_CA_FILE: &str = "/var/run/chroma-ca/ca.crt";
/// The documented default repository of the tool's image.
pub const DEFAULT_BACKUP_REPOSITORY: &str = "ghcr.io/amikos-tech/chromadb-backup";
/// The documented default retention.
pub const DEFAULT_KEEP: i64 = 7;

/// Where archives are kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BackupStorage {
    /// A claim mounted at [`BACKUP_MOUNT`]: the user's (`existing`) or the chart's
    /// `<fullname>-backup`, which outlives the release.
    Pvc { existing_claim: Option<String> },
    S3 {
        bucket: String,
        /// Always empty or ending in `/`.
        prefix: String,
        endpoint: Option<String>,
        region: String,
        allow_http: bool,
        secret: String,
        access_key_id_key: String,
        secret_access_key_key: String,
    },
}

impl BackupStorage {
    /// The location the tool is given: a directory or an S3 prefix (its newest archive is
    /// what `restore --from` of that location reads).
    pub fn location(&self) -> String {
        match self {
            BackupStorage::Pvc { .. } => format!("{BACKUP_MOUNT}/"),
            BackupStorage::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// The claim archives live on for a release named `fullname`; `None` for S3.
    pub fn claim(&self, fullname: &str) -> Option<String> {
        match self {
            BackupStorage::Pvc {
                existing_claim: Some(c),
            } => Some(c.clone()),
            BackupStorage::Pvc {
                existing_claim: None,
            } => Some(own_claim(fullname)),
            BackupStorage::S3 { .. } => None,
        }
    }
}

/// The chart's own backup claim of a release named `fullname`.
pub fn own_claim(fullname: &str) -> String {
    let cut: String = fullname.chars().take(56).collect();
    format!("{}-backup", cut.trim_end_matches('-'))
}

/// The backup CronJob of a release named `fullname` (CronJob names are limited to 52
/// characters: the controller appends an 11-character suffix to its Jobs).
pub fn cronjob_name(fullname: &str) -> String {
    let cut: String = fullname.chars().take(45).collect();
    format!("{}-backup", cut.trim_end_matches('-'))
}

/// The restore hook Job of a release named `fullname`.
pub fn restore_job_name(fullname: &str) -> String {
    let cut: String = fullname.chars().take(55).collect();
    format!("{}-restore", cut.trim_end_matches('-'))
}

/// The credentials the tool gets, by env from the auth Secret: exactly the server's auth.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BackupAuth {
    /// The version has no auth, or it is off: no credential env at all.
    None,
    /// `CHROMA_BACKUP_TOKEN` from key `token`, `CHROMA_BACKUP_TOKEN_HEADER` as the tool spells it.
    Token {
        header: &'static str,
        secret: String,
    },
    /// `CHROMA_BACKUP_BASIC_USER`/`_PASSWORD` from keys `username`/`password`.
    Basic { secret: String },
}

const DEFAULT_AUTH_SECRET: &str = "chromadb-auth";

impl BackupAuth {
    pub fn of(auth: &Auth) -> BackupAuth {
        let secret =
            |s: &Option<String>| s.clone().unwrap_or_else(|| DEFAULT_AUTH_SECRET.to_string());
        match auth {
            Auth::Open { .. } => BackupAuth::None,
            Auth::Token {
                header,
                existing_secret,
            } => BackupAuth::Token {
                header: match header {
                    TokenHeader::Authorization => "authorization",
                    TokenHeader::XChromaToken => "x-chroma-token",
                },
                secret: secret(existing_secret),
            },
            Auth::Basic { existing_secret } => BackupAuth::Basic {
                secret: secret(existing_secret),
            },
        }
    }
}

/// What the backup CronJob must do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExpectedBackup {
    pub schedule: String,
    /// `dump --keep N`.
    pub keep: u32,
    pub storage: BackupStorage,
    pub auth: BackupAuth,
    /// `tls.enabled`: the tool calls the Service over HTTPS, trusting this CA (mounted as a file).
    pub ca: Option<super::tls::CaSource>,
    pub service_account: Option<BackupServiceAccount>,
}

/// What the restore Job must do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExpectedRestore {
    /// The `restore --from` argument: the storage location for `latest`, else the archive in it.
    pub from: String,
    pub storage: BackupStorage,
    pub auth: BackupAuth,
    pub ca: Option<super::tls::CaSource>,
    pub service_account: Option<BackupServiceAccount>,
}

fn storage(values: &Value) -> Result<BackupStorage, SpecError> {
    match parse_str(values, "backup.storage.type", "pvc")? {
        "pvc" => Ok(BackupStorage::Pvc {
            existing_claim: Some(
                parse_str(values, "backup.storage.pvc.existingClaim", "")?.to_string(),
            )
            .filter(|c| !c.is_empty()),
        }),
        "s3" => {
            let bucket = parse_str(values, "backup.storage.s3.bucket", "")?;
            if bucket.is_empty() {
                return Err(err(
                    "backup.storage.s3.bucket",
                    "must name the bucket when backup.storage.type is s3",
                ));
            }
            let secret = parse_str(values, "backup.storage.s3.existingSecret", "")?;
            // Without a Secret the pods' identity is the credential (IRSA through backup.serviceAccount).
            if secret.is_empty() && service_account(values)?.is_none() {
                return Err(err(
                    "backup.storage.s3.existingSecret",
                    "must name the Secret holding the access key when backup.storage.type is s3, unless backup.serviceAccount gives the pods an identity",
                ));
            }
            let endpoint = Some(parse_str(values, "backup.storage.s3.endpoint", "")?.to_string())
                .filter(|e| !e.is_empty());
            let allow_http = parse_bool(values, "backup.storage.s3.allowHttp", false)?;
            if let Some(e) = &endpoint {
                if !(e.starts_with("http://") || e.starts_with("https://"))
                    || e.split("://").nth(1).is_none_or(str::is_empty)
                {
                    return Err(err(
                        "backup.storage.s3.endpoint",
                        format!("must be an http:// or https:// URL, got {e:?}"),
                    ));
                }
                if e.starts_with("http://") && !allow_http {
                    return Err(err(
                        "backup.storage.s3.allowHttp",
                        format!("the endpoint {e} is plain http; allowHttp must be true"),
                    ));
                }
            }
            let mut prefix = parse_str(values, "backup.storage.s3.prefix", "chroma-backups/")?
                .trim_start_matches('/')
                .to_string();
            if !prefix.is_empty() && !prefix.ends_with('/') {
                prefix.push('/');
            }
            Ok(BackupStorage::S3 {
                bucket: bucket.to_string(),
                prefix,
                endpoint,
                region: parse_str(values, "backup.storage.s3.region", "us-east-1")?.to_string(),
                allow_http,
                secret: secret.to_string(),
                access_key_id_key: parse_str(
                    values,
                    "backup.storage.s3.accessKeyIdKey",
                    "AWS_ACCESS_KEY_ID",
                )?
                .to_string(),
                secret_access_key_key: parse_str(
                    values,
                    "backup.storage.s3.secretAccessKeyKey",
                    "AWS_SECRET_ACCESS_KEY",
                )?
                .to_string(),
            })
        }
        other => Err(err(
            "backup.storage.type",
            format!("must be pvc or s3, got {other:?}"),
        )),
    }
}

/// The ServiceAccount the backup and restore pods run as: the chart's `<fullname>-backup` (named
/// `Chart` here) when `backup.serviceAccount.create`, else the one named, else none (the
/// namespace's default).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum BackupServiceAccount {
    Chart { name: Option<String> },
    Existing(String),
}

pub fn service_account(values: &Value) -> Result<Option<BackupServiceAccount>, SpecError> {
    let create = parse_bool(values, "backup.serviceAccount.create", false)?;
    let name = parse_str(values, "backup.serviceAccount.name", "")?;
    let annotated = lookup(values, "backup.serviceAccount.annotations")
        .and_then(Value::as_mapping)
        .is_some_and(|m| !m.is_empty());
    if annotated && !create {
        return Err(err(
            "backup.serviceAccount.annotations",
            "they go on the ServiceAccount the chart creates, and backup.serviceAccount.create is false",
        ));
    }
    Ok(match (create, name) {
        (true, "") => Some(BackupServiceAccount::Chart { name: None }),
        (true, n) => Some(BackupServiceAccount::Chart {
            name: Some(n.to_string()),
        }),
        (false, "") => None,
        (false, n) => Some(BackupServiceAccount::Existing(n.to_string())),
    })
}

/// A cron schedule of five fields, or one of the `@` shorthands the CronJob controller reads.
fn is_cron(s: &str) -> bool {
    let s = s.trim();
    matches!(
        s,
        "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight" | "@hourly"
    ) || s.split_whitespace().count() == 5
}

/// The backup's and restore's expectations; the rules hold whether or not they are enabled,
/// so a values file cannot render with backups off and fail once they are turned on for a
/// reason other than the one the switch introduces.
pub(crate) fn expected(
    values: &Value,
    auth: &Auth,
) -> Result<(Option<ExpectedBackup>, Option<ExpectedRestore>), SpecError> {
    let backup_on = parse_bool(values, "backup.enabled", false)?;
    let restore_on = parse_bool(values, "restore.enabled", false)?;
    parse_bool(values, "backup.storage.s3.allowHttp", false)?;
    let keep = parse_int(values, "backup.keep")?.unwrap_or(DEFAULT_KEEP);
    if keep < 1 {
        return Err(err("backup.keep", format!("must be 1 or more, got {keep}")));
    }
    for (field, min) in [
        ("waitReadySeconds", 0),
        ("backoffLimit", 0),
        ("activeDeadlineSeconds", 1),
        ("successfulJobsHistoryLimit", 0),
        ("failedJobsHistoryLimit", 0),
    ] {
        let key = format!("backup.{field}");
        if let Some(n) = parse_int(values, &key)?
            && n < min
        {
            return Err(err(&key, format!("must be {min} or more, got {n}")));
        }
    }
    if let Some(n) = parse_int(values, "backup.startingDeadlineSeconds")?
        && n < 10
    {
        return Err(err(
            "backup.startingDeadlineSeconds",
            format!("must be 10 or more seconds, got {n}"),
        ));
    }
    let zone = parse_str(values, "backup.timeZone", "")?;
    if !zone.is_empty() && !super::validate::is_iana_zone(zone) {
        return Err(err(
            "backup.timeZone",
            format!("must be an IANA time zone such as Europe/Berlin or UTC, got {zone:?}"),
        ));
    }
    service_account(values)?;
    let policy = parse_str(values, "backup.concurrencyPolicy", "Forbid")?;
    if !matches!(policy, "Forbid" | "Replace" | "Allow") {
        return Err(err(
            "backup.concurrencyPolicy",
            format!("must be Forbid, Replace or Allow, got {policy:?}"),
        ));
    }
    for field in ["waitReadySeconds", "activeDeadlineSeconds"] {
        let key = format!("restore.{field}");
        if let Some(n) = parse_int(values, &key)?
            && n < 1
        {
            return Err(err(&key, format!("must be 1 or more seconds, got {n}")));
        }
    }
    let schedule = match lookup(values, "backup.schedule") {
        None => "0 3 * * *".to_string(),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(other) => {
            return Err(err(
                "backup.schedule",
                format!("must be a cron schedule string, got {}", show(other)),
            ));
        }
    };
    if !(backup_on || restore_on) {
        return Ok((None, None));
    }
    if backup_on && !is_cron(&schedule) {
        return Err(err(
            "backup.schedule",
            format!("must be a cron schedule of five fields or @daily/@hourly/…, got {schedule:?}"),
        ));
    }
    let storage = storage(values)?;
    let tool_auth = BackupAuth::of(auth);
    let ca = super::tls::ca_source(values)?;
    let sa = service_account(values)?;
    let backup = backup_on.then(|| ExpectedBackup {
        schedule,
        keep: keep as u32,
        storage: storage.clone(),
        auth: tool_auth.clone(),
        ca: ca.clone(),
        service_account: sa.clone(),
    });
    let restore = if restore_on {
        let from = parse_str(values, "restore.from", "latest")?;
        let file_name = !from.is_empty()
            && from
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && from
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if from != "latest" && !file_name {
            return Err(err(
                "restore.from",
                format!("must be latest or an archive's file name (no directories), got {from:?}"),
            ));
        }
        if storage
            == (BackupStorage::Pvc {
                existing_claim: None,
            })
        {
            return Err(err(
                "backup.storage.pvc.existingClaim",
                "restore.enabled needs the claim that holds the archives (a new release's own backup claim is empty), or S3 storage",
            ));
        }
        let loc = storage.location();
        let from = if from == "latest" {
            loc
        } else {
            format!("{loc}{from}")
        };
        Some(ExpectedRestore {
            from,
            storage,
            auth: tool_auth,
            ca,
            service_account: sa,
        })
    } else {
        None
    };
    Ok((backup, restore))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::OpenBecause;

    fn v(s: &str) -> Value {
        serde_yaml::from_str(s).expect("yaml")
    }

    #[test]
    fn s3_prefix_gains_its_trailing_slash_and_loses_a_leading_one() {
        let (b, _) = expected(&v("backup: {enabled: true, storage: {type: s3, s3: {bucket: bk, prefix: /team/chroma, existingSecret: s}}}"), &Auth::Open { why: OpenBecause::RustServer }).unwrap();
        assert_eq!(b.unwrap().storage.location(), "s3://bk/team/chroma/");
    }

    #[test]
    fn restore_of_a_named_archive_reads_it_from_the_existing_claim() {
        let (_, r) = expected(&v("restore: {enabled: true, from: chroma-backup-20260101T000000Z.tar}\nbackup: {storage: {pvc: {existingClaim: old-backup}}}"), &Auth::Open { why: OpenBecause::Disabled }).unwrap();
        let r = r.unwrap();
        assert_eq!(
            (r.from.as_str(), r.storage.claim("x")),
            (
                "/backups/chroma-backup-20260101T000000Z.tar",
                Some("old-backup".to_string())
            )
        );
    }

    #[test]
    fn the_own_claim_name_is_cut_to_fit_a_dns_label() {
        let long = "a".repeat(70);
        assert_eq!(own_claim(&long).len(), 63);
    }
}
