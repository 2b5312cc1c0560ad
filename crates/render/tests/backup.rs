//! Backup CronJob and restore Job: schedule, retention, storage and the tool's credentials
//! follow the spec model (`render::spec::backup`) on every version, including where the
//! version has no auth and the tool must get none.

#[macro_use]
mod support;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};
use render::Rendered;
use render::spec::{self, BackupAuth, BackupStorage, ExpectedBackup};
use rstest::rstest;
use support::*;

const RELEASE: &str = "chroma";

fn cronjob(r: &Rendered) -> Option<&CronJob> {
    r.cronjobs().next()
}

fn cron_pod(c: &CronJob) -> &PodSpec {
    c.spec
        .as_ref()
        .and_then(|s| s.job_template.spec.as_ref())
        .and_then(|j| j.template.spec.as_ref())
        .expect("CronJob pod spec")
}

fn restore_job(r: &Rendered) -> Option<&Job> {
    r.jobs().find(|j| {
        j.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("helm.sh/hook"))
            .map(String::as_str)
            == Some("post-install")
    })
}

fn env<'a>(c: &'a Container, name: &str) -> Option<&'a EnvVar> {
    c.env.iter().flatten().find(|e| e.name == name)
}

fn secret_ref(c: &Container, name: &str) -> Option<(String, String)> {
    let r = env(c, name)?.value_from.as_ref()?.secret_key_ref.as_ref()?;
    Some((r.name.clone(), r.key.clone()))
}

fn plain(c: &Container, name: &str) -> Option<String> {
    env(c, name)?.value.clone()
}

/// The tool's credentials and the Service it calls, as the model says for this version
/// (`https` exactly when the model gives the tool a CA to trust).
fn assert_wiring(
    what: &str,
    c: &Container,
    auth: &BackupAuth,
    fullname: &str,
    port: u16,
    tls: bool,
) {
    let scheme = if tls { "https" } else { "http" };
    assert_eq!(
        plain(c, "CHROMA_BACKUP_URL").as_deref(),
        Some(format!("{scheme}://{fullname}.default.svc:{port}").as_str()),
        "{what}: URL"
    );
    assert_eq!(
        plain(c, "CHROMA_BACKUP_CACERT").is_some(),
        tls,
        "{what}: the CA file is named exactly with TLS"
    );
    let creds: Vec<&str> = [
        "CHROMA_BACKUP_TOKEN",
        "CHROMA_BACKUP_TOKEN_HEADER",
        "CHROMA_BACKUP_BASIC_USER",
        "CHROMA_BACKUP_BASIC_PASSWORD",
    ]
    .into_iter()
    .filter(|n| env(c, n).is_some())
    .collect();
    match auth {
        BackupAuth::None => assert!(
            creds.is_empty(),
            "{what}: the version has no auth but the tool gets {creds:?}"
        ),
        BackupAuth::Token { header, secret } => {
            assert_eq!(
                secret_ref(c, "CHROMA_BACKUP_TOKEN"),
                Some((secret.clone(), "token".into())),
                "{what}: token"
            );
            assert_eq!(
                plain(c, "CHROMA_BACKUP_TOKEN_HEADER").as_deref(),
                Some(*header),
                "{what}: header"
            );
            assert_eq!(creds.len(), 2, "{what}: {creds:?}");
        }
        BackupAuth::Basic { secret } => {
            assert_eq!(
                secret_ref(c, "CHROMA_BACKUP_BASIC_USER"),
                Some((secret.clone(), "username".into())),
                "{what}: user"
            );
            assert_eq!(
                secret_ref(c, "CHROMA_BACKUP_BASIC_PASSWORD"),
                Some((secret.clone(), "password".into())),
                "{what}: password"
            );
            assert_eq!(creds.len(), 2, "{what}: {creds:?}");
        }
    }
    // Credentials only ever arrive by secretKeyRef.
    assert!(c.env_from.is_none(), "{what}: envFrom");
    assert!(
        c.env
            .iter()
            .flatten()
            .filter(
                |e| e.name.contains("TOKEN") && e.name != "CHROMA_BACKUP_TOKEN_HEADER"
                    || e.name.contains("PASSWORD")
                    || e.name.contains("SECRET")
            )
            .all(|e| e.value.is_none()),
        "{what}: a secret as a plain value"
    );
}

/// Storage as the model says: the claim mounted at /backups, or S3 env from the Secret.
fn assert_storage(
    what: &str,
    pod: &PodSpec,
    c: &Container,
    storage: &BackupStorage,
    fullname: &str,
) {
    let claims: Vec<String> = pod
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|p| p.claim_name.clone())
        .collect();
    match storage {
        BackupStorage::Pvc { .. } => {
            assert_eq!(
                claims,
                [storage.claim(fullname).expect("pvc")],
                "{what}: claim"
            );
            let mount = c
                .volume_mounts
                .iter()
                .flatten()
                .find(|m| m.mount_path == spec::BACKUP_MOUNT)
                .unwrap_or_else(|| panic!("{what}: nothing at {}", spec::BACKUP_MOUNT));
            assert_ne!(
                mount.read_only,
                Some(true),
                "{what}: the backup volume must be writable"
            );
        }
        BackupStorage::S3 {
            endpoint,
            region,
            allow_http,
            secret,
            access_key_id_key,
            secret_access_key_key,
            ..
        } => {
            assert!(claims.is_empty(), "{what}: S3 storage mounts {claims:?}");
            assert_eq!(
                plain(c, "AWS_ENDPOINT_URL"),
                endpoint.clone(),
                "{what}: endpoint"
            );
            assert_eq!(
                plain(c, "AWS_REGION").as_deref(),
                Some(region.as_str()),
                "{what}: region"
            );
            assert_eq!(
                plain(c, "AWS_ALLOW_HTTP").as_deref(),
                Some(if *allow_http { "true" } else { "false" }),
                "{what}: allowHttp"
            );
            // No Secret: the pod's identity (IRSA) is the credential, and no key env is set.
            let want = |key: &String| (!secret.is_empty()).then(|| (secret.clone(), key.clone()));
            assert_eq!(
                secret_ref(c, "AWS_ACCESS_KEY_ID"),
                want(access_key_id_key),
                "{what}: key id"
            );
            assert_eq!(
                secret_ref(c, "AWS_SECRET_ACCESS_KEY"),
                want(secret_access_key_key),
                "{what}: secret key"
            );
        }
    }
    assert_eq!(
        c.termination_message_policy.as_deref(),
        Some("FallbackToLogsOnError"),
        "{what}: the tool's message must reach describe/helm"
    );
}

fn args(c: &Container) -> Vec<String> {
    c.args.clone().unwrap_or_default()
}

#[rustfmt::skip]
#[rstest]
#[case::token_in_authorization_on_0_6_3("0.6.3", "backup: {enabled: true}")]
#[case::token_in_x_chroma_token_from_the_users_secret_on_0_5_0("0.5.0", "backup: {enabled: true}\nchromadb: {auth: {token: {headerType: X-Chroma-Token}, existingSecret: mine}}")]
#[case::basic_on_0_4_7("0.4.7", "backup: {enabled: true, keep: 30}\nchromadb: {auth: {type: basic}}")]
#[case::token_ignored_below_0_4_8("0.4.7", "backup: {enabled: true}")]
#[case::no_auth_env_on_the_rust_server("1.5.0", "backup: {enabled: true, schedule: '@daily'}")]
#[case::auth_disabled_on_0_4_24("0.4.24", "backup: {enabled: true}\nchromadb: {auth: {enabled: false}}")]
#[case::existing_claim_and_custom_port_on_1_0_0("1.0.0", "backup: {enabled: true, storage: {pvc: {existingClaim: nightly}}}\nchromadb: {serverHttpPort: 8123}")]
#[case::s3_with_token_on_0_5_23("0.5.23", "backup: {enabled: true, storage: {type: s3, s3: {bucket: bk, existingSecret: s3c, region: eu-west-1}}}")]
#[case::renamed_release_on_1_5_9("1.5.9", "backup: {enabled: true}\nfullnameOverride: vectors")]
#[case::https_with_the_users_tls_secret_on_0_6_3("0.6.3", "backup: {enabled: true}\ntls: {enabled: true, existingSecret: chroma-tls}")]
#[case::s3_through_irsa_without_a_secret_on_1_5_0("1.5.0", "backup: {enabled: true, serviceAccount: {create: true, annotations: {eks.amazonaws.com/role-arn: 'arn:aws:iam::1:role/b'}}, storage: {type: s3, s3: {bucket: bk}}}")]
fn the_backup_cronjob_follows_the_model(#[case] version: &str, #[case] values: &str) {
    let case = suite().case_values(version, "backup", yaml(values));
    let (e, r) = case.accepted().expect("accepted");
    let want: &ExpectedBackup = e.backup.as_ref().expect("the model expects a backup");
    let fullname = spec::fullname(&case.values, RELEASE).expect("valid");
    let cj = cronjob(r).unwrap_or_else(|| panic!("{case}: no CronJob"));
    assert_eq!(cj.metadata.name.as_deref(), Some(spec::cronjob_name(&fullname).as_str()), "{case}: name");
    let s = cj.spec.as_ref().expect("spec");
    assert_eq!(s.schedule, want.schedule, "{case}: schedule");
    assert_eq!(s.concurrency_policy.as_deref(), Some("Forbid"), "{case}: a second dump must never overlap the first");
    assert!(s.starting_deadline_seconds.is_some_and(|d| d >= 10), "{case}: startingDeadlineSeconds");
    assert!(s.successful_jobs_history_limit.is_some() && s.failed_jobs_history_limit.is_some(), "{case}: history limits");
    let pod = cron_pod(cj);
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"), "{case}: restartPolicy");
    let c = &pod.containers[0];
    assert_eq!(args(c), ["dump", "--to", &want.storage.location(), "--keep", &want.keep.to_string()], "{case}: args");
    assert!(c.command.is_none(), "{case}: the image's ENTRYPOINT is the tool; a command would replace it");
    assert!(c.image.as_deref().is_some_and(|i| i.starts_with(spec::DEFAULT_BACKUP_REPOSITORY)), "{case}: image {:?}", c.image);
    assert_wiring(&case.to_string(), c, &want.auth, &fullname, e.port, want.ca.is_some());
    assert_storage(&case.to_string(), pod, c, &want.storage, &fullname);
    let own_claim = r.claims().find(|p| p.metadata.name.as_deref() == Some(spec::own_claim(&fullname).as_str()));
    match &want.storage {
        BackupStorage::Pvc { existing_claim: None } => {
            let pvc = own_claim.unwrap_or_else(|| panic!("{case}: no backup claim"));
            let keep = pvc.metadata.annotations.as_ref().and_then(|a| a.get("helm.sh/resource-policy"));
            assert_eq!(keep.map(String::as_str), Some("keep"), "{case}: backups must outlive `helm uninstall`");
        }
        _ => assert!(own_claim.is_none(), "{case}: a claim is made though storage is {:?}", want.storage),
    }
}

#[rustfmt::skip]
#[rstest]
#[case::latest_from_an_existing_claim_on_1_5_0("1.5.0", "restore: {enabled: true}\nbackup: {storage: {pvc: {existingClaim: old-chroma-backup}}}")]
#[case::named_archive_from_s3_with_token_on_0_6_3("0.6.3", "restore-s3")]
#[case::basic_on_0_4_24("0.4.24", "restore: {enabled: true}\nbackup: {storage: {pvc: {existingClaim: b}}}\nchromadb: {auth: {type: basic}}")]
#[case::no_auth_env_on_0_4_3("0.4.3", "restore: {enabled: true}\nbackup: {storage: {pvc: {existingClaim: b}}}")]
fn the_restore_job_is_a_post_install_hook_that_follows_the_model(#[case] version: &str, #[case] values: &str) {
    let case = if values.contains(':') { suite().case_values(version, "restore", yaml(values)) } else { suite().case(version, values) };
    let (e, r) = case.accepted().expect("accepted");
    let want = e.restore.as_ref().expect("the model expects a restore");
    let fullname = spec::fullname(&case.values, RELEASE).expect("valid");
    let job = restore_job(r).unwrap_or_else(|| panic!("{case}: no post-install Job"));
    assert_eq!(job.metadata.name.as_deref(), Some(spec::restore_job_name(&fullname).as_str()), "{case}: name");
    let hook = job.metadata.annotations.as_ref().expect("annotations");
    assert_eq!(hook.get("helm.sh/hook").map(String::as_str), Some("post-install"), "{case}: restoring runs once, on install, never on upgrade");
    let s = job.spec.as_ref().expect("spec");
    assert_eq!(s.backoff_limit, Some(0), "{case}: a bad archive fails the install on the first attempt");
    let pod = s.template.spec.as_ref().expect("pod");
    let c = &pod.containers[0];
    assert_eq!(args(c), ["restore", "--from", &want.from], "{case}: args (no --replace/--merge: a fresh release only)");
    assert!(plain(c, "CHROMA_BACKUP_WAIT_READY").is_some_and(|w| w.parse::<u32>().is_ok_and(|n| n > 0)), "{case}: the restore must wait for the new server");
    assert_wiring(&case.to_string(), c, &want.auth, &fullname, e.port, want.ca.is_some());
    assert_storage(&case.to_string(), pod, c, &want.storage, &fullname);
}

each_version! {
    /// Off by default: no CronJob, no backup claim, no restore hook.
    fn backup_and_restore_are_off_by_default(version) {
        let case = suite().case(version, "defaults");
        let (e, r) = case.accepted().expect("accepted");
        assert!(e.backup.is_none() && e.restore.is_none(), "{case}: the model expects backups by default");
        assert_eq!((r.cronjobs().count(), r.claims().count(), restore_job(r).is_some()), (0, 0, false), "{case}");
    }
}

#[rustfmt::skip]
#[rstest]
#[case::keep_zero("backup: {enabled: true, keep: 0}", "backup.keep")]
#[case::schedule_not_cron("backup: {enabled: true, schedule: 'every night'}", "backup.schedule")]
#[case::schedule_missing("backup: {enabled: true, schedule: ''}", "backup.schedule")]
#[case::s3_without_bucket("backup: {enabled: true, storage: {type: s3, s3: {existingSecret: s}}}", "backup.storage.s3.bucket")]
#[case::s3_without_secret("backup: {enabled: true, storage: {type: s3, s3: {bucket: b}}}", "backup.storage.s3.existingSecret")]
#[case::s3_plain_http_not_allowed("backup: {enabled: true, storage: {type: s3, s3: {bucket: b, existingSecret: s, endpoint: 'http://minio:9000'}}}", "backup.storage.s3.allowHttp")]
#[case::storage_type_unknown("backup: {enabled: true, storage: {type: nfs}}", "backup.storage.type")]
#[case::restore_without_storage_to_read("restore: {enabled: true}", "backup.storage.pvc.existingClaim")]
#[case::restore_from_a_path("restore: {enabled: true, from: ../etc/passwd}\nbackup: {storage: {pvc: {existingClaim: b}}}", "restore.from")]
#[case::concurrency_unknown("backup: {concurrencyPolicy: Sometimes}", "backup.concurrencyPolicy")]
#[case::enabled_not_a_bool("backup: {enabled: nightly}", "backup.enabled")]
fn bad_backup_values_fail_naming_the_key(#[case] values: &str, #[case] key: &str) {
    let values = yaml(values);
    let versions = ["0.4.3", "0.6.3", "1.5.0"];
    let cases = parallel(&versions, |ver| suite().case_values(ver, "bad backup input", values.clone()));
    assert_eq!(cases.len(), versions.len());
    for case in cases {
        let spec_err = case.expected.as_ref().err().unwrap_or_else(|| panic!("{case}: the model accepts {values:?}"));
        assert_eq!(spec_err.key, key, "{case}: the model blames another key ({spec_err})");
        let err = case.render.as_ref().err().unwrap_or_else(|| panic!("{case}: helm rendered {values:?}"));
        assert_names_key(&err.to_string(), key, &case.to_string());
    }
}
