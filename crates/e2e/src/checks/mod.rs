//! Conformance checks: each probes the live API and compares with the spec model.
//!
//! A check says when it applies (from the version and [`Expected`] alone) and ends in one
//! [`Outcome`]. What a deployment must do always comes from `Expected` (values + version);
//! what Chroma answers when it refuses something comes from the [`era`] table.

pub mod backup;
// The era-aware REST client lives in `chroma-api`, shared with the backup tool.
pub use chroma_api::client;
pub mod era;
pub mod faults;
pub mod faults_backup;
mod probes;
pub mod telemetry;
mod tls;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use render::{Auth, Expected, Rendered};
use serde::Serialize;

use crate::backend::{Backend, Deployed, HookRun};
use crate::otlp::Receiver;
use client::{Answer, Api, Credential, Exchange};

/// The spec's default name for the chart's auth Secret.
pub const DEFAULT_AUTH_SECRET: &str = "chromadb-auth";

/// Every check, in the order they run on a deployment (reset last: it wipes data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckName {
    ApiSurface,
    Tls,
    TlsProxy,
    TlsRotation,
    Auth,
    Cors,
    Payload,
    Persistence,
    ChartTest,
    BackupRestore,
    Telemetry,
    FaultsSigkill,
    FaultsScale,
    FaultsFullVolume,
    FaultsMemory,
    FaultsBackupWrites,
    FaultsRestoreInterrupted,
    Reset,
}

impl CheckName {
    pub const ALL: [CheckName; 18] = [
        CheckName::ApiSurface,
        CheckName::Tls,
        CheckName::TlsProxy,
        CheckName::TlsRotation,
        CheckName::Auth,
        CheckName::Cors,
        CheckName::Payload,
        CheckName::Persistence,
        CheckName::ChartTest,
        CheckName::BackupRestore,
        CheckName::Telemetry,
        CheckName::FaultsSigkill,
        CheckName::FaultsScale,
        CheckName::FaultsFullVolume,
        CheckName::FaultsMemory,
        CheckName::FaultsBackupWrites,
        CheckName::FaultsRestoreInterrupted,
        CheckName::Reset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::ApiSurface => "api-surface",
            CheckName::Tls => "tls",
            CheckName::TlsProxy => "tls-proxy",
            CheckName::TlsRotation => "tls-rotation",
            CheckName::Auth => "auth",
            CheckName::Cors => "cors",
            CheckName::Payload => "payload",
            CheckName::Persistence => "persistence",
            CheckName::ChartTest => "chart-test",
            CheckName::BackupRestore => "backup-restore",
            CheckName::Telemetry => "telemetry",
            CheckName::FaultsSigkill => "faults-sigkill",
            CheckName::FaultsScale => "faults-scale",
            CheckName::FaultsFullVolume => "faults-full-volume",
            CheckName::FaultsMemory => "faults-memory",
            CheckName::FaultsBackupWrites => "faults-backup-writes",
            CheckName::FaultsRestoreInterrupted => "faults-restore-interrupted",
            CheckName::Reset => "reset",
        }
    }

    /// Run only by deployments that list them (`checks:` in fixtures/live.yaml): the faults
    /// family writes thousands of records and kills servers, too slow for every deployment.
    pub fn opt_in(self) -> bool {
        matches!(self, CheckName::FaultsSigkill | CheckName::FaultsScale | CheckName::FaultsFullVolume | CheckName::FaultsMemory | CheckName::FaultsBackupWrites | CheckName::FaultsRestoreInterrupted)
    }

    /// `Err(reason)` when the check has nothing to verify for this deployment.
    pub fn applies(self, e: &Expected) -> Result<(), String> {
        match self {
            CheckName::Payload if e.max_payload_bytes.is_none() => {
                Err(format!("Chroma {} (< 1.0.0) has no payload limit; maxPayloadSizeBytes is ignored there", e.version))
            }
            CheckName::BackupRestore | CheckName::FaultsBackupWrites | CheckName::FaultsRestoreInterrupted if e.backup.is_none() => {
                Err("backup.enabled is off in this deployment's values: there is no backup CronJob to run".into())
            }
            CheckName::Telemetry => telemetry::applies(e),
            CheckName::FaultsSigkill => faults::applies_sigkill(e),
            CheckName::FaultsScale => faults::applies_scale(e),
            CheckName::FaultsFullVolume => faults::applies_full_volume(e),
            CheckName::FaultsMemory => faults::applies_memory(e),
            CheckName::Tls | CheckName::TlsProxy | CheckName::TlsRotation if e.tls.is_none() => Err("tls.enabled is off: the API is plain HTTP by the values".into()),
            CheckName::TlsProxy if e.tls.as_ref().is_some_and(|t| t.proxied_server_port.is_none()) => {
                Err(format!("Chroma {} serves TLS itself (uvicorn): there is no proxy to go around", e.version))
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for CheckName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CheckName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CheckName::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| {
            format!("unknown check `{s}` (valid: {})", CheckName::ALL.map(|c| c.as_str()).join(", "))
        })
    }
}

/// How one check ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Pass { detail: String },
    Fail { reason: String, evidence: Vec<Exchange>, log_tail: String },
    Skipped { reason: String },
    /// A failure `fixtures/versions.yaml` records for this release, and its message says the
    /// recorded cause: the release's own fault, measured, not the chart's.
    ExpectedFail { reason: String, cause: String, why: String },
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Pass { .. } => "PASS",
            Outcome::Fail { .. } => "FAIL",
            Outcome::Skipped { .. } => "SKIP",
            Outcome::ExpectedFail { .. } => "XFAIL",
        }
    }
    pub fn failed(&self) -> bool {
        matches!(self, Outcome::Fail { .. })
    }
}

/// Holds `outcome` against the failure `fixtures/versions.yaml` expects of this check on this
/// release, if any: a failure that says one of the recorded causes is expected; a failure with another
/// cause, or a pass, is a failure of the run (the cause changed, or the release was fixed).
pub fn against_expectation(outcome: Outcome, expected: Option<&render::ExpectedFailure>) -> Outcome {
    let Some(x) = expected else { return outcome };
    match outcome {
        Outcome::Fail { reason, .. } if let Some(cause) = x.causes.iter().find(|c| reason.contains(c.as_str())) => {
            Outcome::ExpectedFail { cause: cause.clone(), reason, why: x.why.clone() }
        }
        Outcome::Fail { reason, evidence, log_tail } => Outcome::Fail {
            reason: format!("fixtures/versions.yaml expects this to fail with one of `{}` ({}), but it failed with another cause: {reason}", x.causes.join("` | `"), x.why),
            evidence,
            log_tail,
        },
        Outcome::Pass { detail } => Outcome::Fail {
            reason: format!("fixtures/versions.yaml expects this to fail with one of `{}` ({}), but it passed — remove that expected failure if the release is fixed: {detail}", x.causes.join("` | `"), x.why),
            evidence: Vec::new(),
            log_tail: String::new(),
        },
        other => other,
    }
}

/// What a running check has at hand.
pub struct Ctx<'a, B: Backend> {
    pub backend: &'a B,
    pub deployed: &'a mut Deployed,
    pub expected: &'a Expected,
    pub api: Api,
    /// Exchanges so far (the evidence if the check fails).
    pub evidence: Vec<Exchange>,
}

impl<B: Backend> Ctx<'_, B> {
    /// Keeps an answer's exchange as evidence and hands the answer back.
    pub fn rec(&mut self, a: Answer) -> Answer {
        self.evidence.push(a.ex.clone());
        a
    }
}

/// The credential the spec says a client uses, read from the Secret the pod got.
pub fn credential(expected: &Expected, secrets: &BTreeMap<String, BTreeMap<String, String>>) -> Result<Option<Credential>, String> {
    let secret = |name: &Option<String>| {
        let name = name.clone().unwrap_or_else(|| DEFAULT_AUTH_SECRET.to_string());
        secrets.get(&name).cloned().map(|d| (name.clone(), d)).ok_or_else(|| format!("the pod has no Secret `{name}` to take credentials from"))
    };
    let key = |name: &str, data: &BTreeMap<String, String>, key: &str| {
        data.get(key).cloned().ok_or_else(|| format!("Secret `{name}` has no key `{key}` (it has: {})", data.keys().cloned().collect::<Vec<_>>().join(", ")))
    };
    match &expected.auth {
        Auth::Open { .. } => Ok(None),
        Auth::Token { header, existing_secret } => {
            let (name, data) = secret(existing_secret)?;
            let token = key(&name, &data, "token")?;
            let label = format!("{}<token from Secret {name}>", if header.header_name() == "Authorization" { "Bearer " } else { "" });
            Ok(Some(Credential::new(header.header_name(), header.header_value(&token), label)))
        }
        Auth::Basic { existing_secret } => {
            let (name, data) = secret(existing_secret)?;
            let user = key(&name, &data, "username")?;
            let pass = key(&name, &data, "password")?;
            Ok(Some(basic(&user, &pass, format!("Basic <username:password from Secret {name}>"))))
        }
    }
}

pub fn basic(user: &str, pass: &str, label: String) -> Credential {
    let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    Credential::new("Authorization", format!("Basic {enc}"), label)
}

/// The release's Jobs besides its server, as the chart rendered them: the backup CronJob,
/// and the restore hook Job a fresh release of the same values would run
/// ([`backup::restore_request`]).
#[derive(Debug, Clone, Default)]
pub struct Workloads {
    pub backup: Option<CronJob>,
    pub restore: Option<Job>,
}

impl Workloads {
    /// The backup CronJob of `rendered` and the post-install restore Job of `restore`.
    pub fn from_renders(rendered: &Rendered, restore: Option<&Rendered>) -> Workloads {
        Workloads { backup: rendered.cronjobs().next().cloned(), restore: restore.and_then(backup::restore_job).cloned() }
    }
}

/// Runs one check (already known to apply) and turns its result into an outcome. `otlp` is
/// the receiver the deployment's telemetry was pointed at, when the run started one.
pub async fn run<B: Backend>(
    check: CheckName,
    backend: &B,
    deployed: &mut Deployed,
    expected: &Expected,
    workloads: &Workloads,
    otlp: Option<&Receiver>,
) -> Outcome {
    if let Err(reason) = check.applies(expected) {
        return Outcome::Skipped { reason };
    }
    if check == CheckName::Telemetry {
        if let Err(reason) = backend.reaches_harness_loopback(deployed) {
            return Outcome::Skipped { reason: format!("telemetry not checked on the {} backend: {reason}", backend.name()) };
        }
        if otlp.is_none() {
            return Outcome::Skipped {
                reason: "no OTLP receiver in this run: the deployment does not point chromadb.telemetry.endpoint at `<otlp-receiver>` (fixtures/live.yaml `runtime:`)".into(),
            };
        }
    }
    let unexercised = match check {
        CheckName::TlsProxy => tls::proxy_only_unexercised(deployed),
        CheckName::TlsRotation => tls::rotation_unexercised(backend, deployed),
        _ => None,
    };
    if let Some(reason) = unexercised {
        return Outcome::Skipped { reason: format!("{check} not exercised: {reason}") };
    }
    let needs = match check {
        CheckName::FaultsSigkill | CheckName::FaultsScale => backend.kills_containers(),
        CheckName::FaultsFullVolume => backend.limits_volume_size(),
        CheckName::FaultsMemory => backend.limits_memory(),
        _ => Ok(()),
    };
    if let Err(reason) = needs {
        return Outcome::Skipped { reason: format!("{check} not exercised on the {} backend: {reason}", backend.name()) };
    }
    let seed = match faults::seed(std::env::var(faults::SEED_ENV).ok()) {
        Ok(s) => s,
        Err(reason) => return Outcome::Fail { reason, evidence: Vec::new(), log_tail: String::new() },
    };
    if check == CheckName::ChartTest {
        return chart_test(backend, deployed).await;
    }
    if check == CheckName::BackupRestore {
        return backup::backup_restore(backend, deployed, expected, workloads).await;
    }
    if check == CheckName::FaultsBackupWrites {
        return faults_backup::backup_writes(backend, deployed, expected, workloads, seed).await;
    }
    if check == CheckName::FaultsRestoreInterrupted {
        return faults_backup::restore_interrupted(backend, deployed, expected, workloads, seed).await;
    }
    let cred = match credential(expected, &deployed.secrets) {
        Ok(c) => c,
        Err(reason) => return Outcome::Fail { reason, evidence: Vec::new(), log_tail: backend.logs(deployed, 30).await },
    };
    let api = crate::tls::api(&deployed.base_url, expected.api, cred, deployed.tls.as_ref());
    let mut ctx = Ctx { backend, deployed, expected, api, evidence: Vec::new() };
    let result = match check {
        CheckName::ApiSurface => probes::api_surface(&mut ctx).await,
        CheckName::Tls => tls::tls(&mut ctx).await,
        CheckName::TlsProxy => tls::proxy_only(&mut ctx).await,
        CheckName::TlsRotation => tls::rotation(&mut ctx).await,
        CheckName::Auth => probes::auth(&mut ctx).await,
        CheckName::Cors => probes::cors(&mut ctx).await,
        CheckName::Payload => probes::payload(&mut ctx).await,
        CheckName::Persistence => probes::persistence(&mut ctx).await,
        CheckName::Reset => probes::reset(&mut ctx).await,
        CheckName::FaultsSigkill => faults::sigkill(&mut ctx, seed).await,
        CheckName::FaultsScale => faults::scale(&mut ctx, seed).await,
        CheckName::FaultsFullVolume => faults::full_volume(&mut ctx, seed).await,
        CheckName::FaultsMemory => faults::memory(&mut ctx, seed).await,
        CheckName::Telemetry => match otlp {
            Some(rx) => telemetry::telemetry(&mut ctx, rx).await,
            None => unreachable!("skipped above without a receiver"),
        },
        CheckName::ChartTest | CheckName::BackupRestore | CheckName::FaultsBackupWrites | CheckName::FaultsRestoreInterrupted => unreachable!("handled above: their Jobs talk to the server, not this client"),
    };
    match result {
        Ok(detail) => Outcome::Pass { detail },
        Err(reason) => {
            let log_tail = ctx.backend.logs(ctx.deployed, 40).await;
            let keep = ctx.evidence.len().saturating_sub(6);
            Outcome::Fail { reason, evidence: ctx.evidence.split_off(keep), log_tail }
        }
    }
}

/// The chart's own `helm test` hook, run by the backend the way its cluster would run it.
async fn chart_test<B: Backend>(backend: &B, deployed: &Deployed) -> Outcome {
    match backend.chart_test(deployed).await {
        Ok(HookRun::Succeeded { log }) => {
            let last = log.lines().rev().find(|l| !l.trim().is_empty() && !l.starts_with("---")).unwrap_or("").to_string();
            Outcome::Pass { detail: format!("the `helm test` hook succeeded: {last}") }
        }
        Ok(HookRun::Failed { reason, log }) => {
            let server = backend.logs(deployed, 20).await;
            Outcome::Fail { reason: format!("`helm test` failed: {reason}"), evidence: Vec::new(), log_tail: format!("--- hook log ---\n{}\n--- server log ---\n{server}", tail(&log, 40)) }
        }
        Ok(HookRun::Unsupported { reason }) => Outcome::Skipped { reason: format!("`helm test` not run on the {} backend: {reason}", backend.name()) },
        Err(e) => Outcome::Fail { reason: format!("`helm test` could not be run: {e}"), evidence: Vec::new(), log_tail: backend.logs(deployed, 30).await },
    }
}

pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use render::ChromaVersion;

    fn expected(values: &str, v: &str) -> Expected {
        Expected::from_values(&serde_yaml::from_str(values).unwrap(), &v.parse::<ChromaVersion>().unwrap()).unwrap()
    }

    fn xfail(cause: &str) -> render::ExpectedFailure {
        render::ExpectedFailure { check: "faults-full-volume".into(), causes: vec!["pickle data was truncated".into(), cause.into()], why: "loses its last batch".into() }
    }

    fn fail(reason: &str) -> Outcome {
        Outcome::Fail { reason: reason.into(), evidence: Vec::new(), log_tail: String::new() }
    }

    #[rstest::rstest]
    #[case::a_failure_saying_a_recorded_cause_is_expected(fail("100 acknowledged record(s) missing"), "XFAIL", "")]
    #[case::a_failure_saying_the_other_recorded_cause_is_expected(fail("500 UnpicklingError('pickle data was truncated')"), "XFAIL", "")]
    #[case::a_failure_with_another_cause_fails_the_run(fail("the server did not become ready"), "FAIL", "failed with another cause")]
    #[case::a_pass_fails_the_run_until_the_record_goes(Outcome::Pass { detail: "all there".into() }, "FAIL", "but it passed")]
    #[case::a_skip_stays_a_skip(Outcome::Skipped { reason: "no node".into() }, "SKIP", "")]
    fn an_expected_failure_accepts_only_its_own_cause(#[case] got: Outcome, #[case] label: &str, #[case] says: &str) {
        let out = against_expectation(got, Some(&xfail("acknowledged record(s) missing")));
        assert_eq!(out.label(), label);
        if let Outcome::Fail { reason, .. } = &out {
            assert!(reason.contains(says) && reason.contains("acknowledged record(s) missing"), "{reason}");
        }
    }

    #[test]
    fn without_an_expectation_the_outcome_is_unchanged() {
        assert_eq!(against_expectation(fail("x"), None).label(), "FAIL");
    }

    #[test]
    fn payload_is_skipped_below_1_0_with_the_reason() {
        let e = expected("{}", "0.6.3");
        assert!(CheckName::Payload.applies(&e).unwrap_err().contains("no payload limit"));
    }

    #[test]
    fn tls_proxy_is_skipped_on_0_x_where_uvicorn_serves_tls_itself() {
        let e = expected("tls: {enabled: true, existingSecret: s}", "0.6.3");
        assert!(CheckName::TlsProxy.applies(&e).unwrap_err().contains("uvicorn"));
        assert!(CheckName::TlsRotation.applies(&e).is_ok());
        assert!(CheckName::TlsProxy.applies(&expected("tls: {enabled: true, existingSecret: s}", "1.5.0")).is_ok());
    }

    #[test]
    fn every_tls_check_is_skipped_without_tls() {
        let e = expected("{}", "1.5.0");
        for c in [CheckName::Tls, CheckName::TlsProxy, CheckName::TlsRotation] {
            assert!(c.applies(&e).unwrap_err().contains("tls.enabled is off"), "{c}");
        }
    }

    #[test]
    fn unknown_check_name_lists_the_valid_ones() {
        let err = "persist".parse::<CheckName>().unwrap_err();
        assert!(err.contains("persistence") && err.contains("`persist`"), "{err}");
    }

    #[test]
    fn token_credential_comes_from_the_existing_secret() {
        let e = expected("chromadb: {auth: {existingSecret: mine}}", "0.5.0");
        let secrets = BTreeMap::from([("mine".to_string(), BTreeMap::from([("token".to_string(), "t0k".to_string())]))]);
        let c = credential(&e, &secrets).unwrap().unwrap();
        assert_eq!((c.header.as_str(), c.value.as_str()), ("Authorization", "Bearer t0k"));
    }

    #[test]
    fn missing_secret_key_is_named() {
        let e = expected("chromadb: {auth: {type: basic}}", "0.5.0");
        let secrets = BTreeMap::from([(DEFAULT_AUTH_SECRET.to_string(), BTreeMap::from([("token".to_string(), "x".to_string())]))]);
        let err = credential(&e, &secrets).unwrap_err();
        assert!(err.contains("no key `username`"), "{err}");
    }
}
