//! Conformance checks: each probes the live API and compares with the spec model.
//!
//! A check says when it applies (from the version and [`Expected`] alone) and ends in one
//! [`Outcome`]. What a deployment must do always comes from `Expected` (values + version);
//! what Chroma answers when it refuses something comes from the [`era`] table.

pub mod backup;
pub mod era;
pub mod faults;
pub mod faults_backup;
pub mod metrics;
mod probes;
pub mod table;
pub mod telemetry;
mod tls;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine;
use futures::future::LocalBoxFuture;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use render::{Auth, Expected, Rendered};
use serde::Serialize;

use crate::backend::{Backend, Deployed, HookRun};
use crate::otlp::Receiver;
use chroma_api::client::{Answer, Api, Credential, Exchange};

/// The spec's default name for the chart's auth Secret.
pub const DEFAULT_AUTH_SECRET: &str = "chromadb-auth";

/// A check, by its place in the [`table`] (the order they run on a deployment: reset last,
/// it wipes data). Its name is what fixtures, flags and reports say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CheckName(usize);

impl CheckName {
    /// Every check of the table, in order.
    pub fn all() -> impl Iterator<Item = CheckName> {
        (0..table::ABOUT.len()).map(CheckName)
    }

    /// The check of that name, resolved at compile time where used in a constant (a name the
    /// table lacks fails the build there).
    pub const fn named(name: &str) -> CheckName {
        const fn same(a: &[u8], b: &[u8]) -> bool {
            if a.len() != b.len() {
                return false;
            }
            let mut i = 0;
            while i < a.len() {
                if a[i] != b[i] {
                    return false;
                }
                i += 1;
            }
            true
        }
        let mut i = 0;
        while i < table::ABOUT.len() {
            if same(table::ABOUT[i].name.as_bytes(), name.as_bytes()) {
                return CheckName(i);
            }
            i += 1;
        }
        panic!("no check of that name in the table")
    }

    /// What the check's descriptor says about it.
    pub fn about(self) -> &'static About {
        &table::ABOUT[self.0]
    }

    pub fn as_str(self) -> &'static str {
        self.about().name
    }

    /// Run only by deployments that list them (`checks:` in fixtures/live.yaml).
    pub fn opt_in(self) -> bool {
        self.about().opt_in
    }

    /// `Err(reason)` when the check has nothing to verify for this deployment.
    pub fn applies(self, e: &Expected) -> Result<(), String> {
        (self.about().applies)(e)
    }

    pub fn needs(self) -> &'static [Need] {
        self.about().needs
    }
}

impl Serialize for CheckName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for CheckName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A check name the table does not have; the message lists the ones it has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown check `{name}` (valid: {})", CheckName::all().map(CheckName::as_str).collect::<Vec<_>>().join(", "))]
pub struct UnknownCheck {
    pub name: String,
}

impl FromStr for CheckName {
    type Err = UnknownCheck;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CheckName::all()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCheck {
                name: s.to_string(),
            })
    }
}

/// What a check needs prepared before its deployment starts; the run that deploys prepares
/// the union of the needs of the checks it will run ([`crate::prepare`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Need {
    /// The harness's OTLP receiver, whose address goes into the values (`<otlp-receiver>`).
    OtlpReceiver,
    /// A certificate for the Services the render names, in the user's TLS Secret (`<tls-…>`).
    TlsCertificate,
    /// The render of the same values with `restore.enabled=true`: the restore Job a fresh
    /// release would run.
    RestoreRender,
}

/// A check's descriptor, independent of the backend: its name, where it applies (from the
/// version and the values, through the spec model) and what it needs prepared.
pub struct About {
    pub name: &'static str,
    /// Run only by deployments that list it (slow, or destructive beyond one deployment).
    pub opt_in: bool,
    /// `Err(reason)` when the check has nothing to verify for this version and these values.
    pub applies: fn(&Expected) -> Result<(), String>,
    pub needs: &'static [Need],
}

/// For checks that apply everywhere.
pub fn always(_: &Expected) -> Result<(), String> {
    Ok(())
}

/// Checked: `Ok(what was verified)` or `Err(what went wrong)`.
pub type Checked = Result<String, String>;

/// A check that talks to the API as a client with the spec's credential.
pub type ApiRun<B> =
    for<'a, 'b> fn(&'a mut Ctx<'b, B>, &'a Prepared) -> LocalBoxFuture<'a, Checked>;
/// A check that runs the release's own Jobs (`helm test`, backup and restore): it ends in its
/// own outcome, with its own evidence.
pub type JobRun<B> =
    for<'a> fn(&'a B, &'a mut Deployed, &'a Expected, &'a Prepared) -> LocalBoxFuture<'a, Outcome>;

pub enum Run<B: Backend> {
    Api(ApiRun<B>),
    Jobs(JobRun<B>),
}

/// The backend half of a descriptor: whether this backend can exercise the check on this
/// deployment, and the check itself.
pub struct Runner<B: Backend> {
    /// `Err(reason)`: the check is SKIP with that reason (never PASS).
    pub exercised: fn(&B, &Deployed, &Prepared) -> Result<(), String>,
    pub run: Run<B>,
}

/// For checks every backend can exercise.
pub fn exercised_everywhere<B>(_: &B, _: &Deployed, _: &Prepared) -> Result<(), String> {
    Ok(())
}

/// What the run prepared for the checks of one deployment, from their [`Need`]s.
#[derive(Default)]
pub struct Prepared {
    /// The release's Jobs besides its server (the backup CronJob, the restore Job).
    pub workloads: Workloads,
    /// The receiver the deployment's telemetry points at.
    pub otlp: Option<Receiver>,
}

/// How one check ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Pass {
        detail: String,
    },
    Fail {
        reason: String,
        evidence: Vec<Exchange>,
        log_tail: String,
    },
    Skipped {
        reason: String,
    },
    /// A failure `fixtures/versions.yaml` records for this release, and its message says the
    /// recorded cause: the release's own fault, measured, not the chart's.
    ExpectedFail {
        reason: String,
        cause: String,
        why: String,
    },
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
/// cause is a failure of the run (the cause changed), and so is a pass (the release was fixed)
/// unless the record says the failure is intermittent: then the pass stands, and says so.
pub fn against_expectation(
    outcome: Outcome,
    expected: Option<&render::ExpectedFailure>,
) -> Outcome {
    let Some(x) = expected else { return outcome };
    match outcome {
        Outcome::Fail { reason, .. }
            if let Some(cause) = x.causes.iter().find(|c| reason.contains(c.as_str())) =>
        {
            Outcome::ExpectedFail {
                cause: cause.clone(),
                reason,
                why: x.why.clone(),
            }
        }
        Outcome::Fail {
            reason,
            evidence,
            log_tail,
        } => Outcome::Fail {
            reason: format!(
                "fixtures/versions.yaml expects this to fail with one of `{}` ({}), but it failed with another cause: {reason}",
                x.causes.join("` | `"),
                x.why
            ),
            evidence,
            log_tail,
        },
        Outcome::Pass { detail } if x.intermittent => Outcome::Pass {
            detail: format!(
                "{detail} (fixtures/versions.yaml records an intermittent failure here, one of `{}`, not seen in this run)",
                x.causes.join("` | `")
            ),
        },
        Outcome::Pass { detail } => Outcome::Fail {
            reason: format!(
                "fixtures/versions.yaml expects this to fail with one of `{}` ({}), but it passed — remove that expected failure if the release is fixed: {detail}",
                x.causes.join("` | `"),
                x.why
            ),
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

/// Why no credential could be read from the pod's Secrets.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("the pod has no Secret `{0}` to take credentials from")]
    NoSecret(String),
    #[error("Secret `{name}` has no key `{key}` (it has: {has})")]
    NoKey {
        name: String,
        key: &'static str,
        has: String,
    },
}

/// The credential the spec says a client uses, read from the Secret the pod got.
pub fn credential(
    expected: &Expected,
    secrets: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<Option<Credential>, CredentialError> {
    let secret = |name: &Option<String>| {
        let name = name
            .clone()
            .unwrap_or_else(|| DEFAULT_AUTH_SECRET.to_string());
        secrets
            .get(&name)
            .cloned()
            .map(|d| (name.clone(), d))
            .ok_or(CredentialError::NoSecret(name))
    };
    let key = |name: &str, data: &BTreeMap<String, String>, key: &'static str| {
        data.get(key)
            .cloned()
            .ok_or_else(|| CredentialError::NoKey {
                name: name.to_string(),
                key,
                has: data.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    };
    match &expected.auth {
        Auth::Open { .. } => Ok(None),
        Auth::Token {
            header,
            existing_secret,
        } => {
            let (name, data) = secret(existing_secret)?;
            let token = key(&name, &data, "token")?;
            let label = format!(
                "{}<token from Secret {name}>",
                if header.header_name() == "Authorization" {
                    "Bearer "
                } else {
                    ""
                }
            );
            Ok(Some(Credential::new(
                header.header_name(),
                header.header_value(&token),
                label,
            )))
        }
        Auth::Basic { existing_secret } => {
            let (name, data) = secret(existing_secret)?;
            let user = key(&name, &data, "username")?;
            let pass = key(&name, &data, "password")?;
            Ok(Some(basic(
                &user,
                &pass,
                format!("Basic <username:password from Secret {name}>"),
            )))
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
    /// The collector, ServiceMonitor and dashboard the `metrics` check reads.
    pub metrics: metrics::Objects,
}

impl Workloads {
    /// The backup CronJob of `rendered` and the post-install restore Job of `restore`.
    pub fn from_renders(rendered: &Rendered, restore: Option<&Rendered>) -> Workloads {
        Workloads {
            backup: rendered.cronjobs().next().cloned(),
            restore: restore.and_then(backup::restore_job).cloned(),
            metrics: metrics::Objects::from_render(rendered),
        }
    }
}

/// Runs one check and turns its result into an outcome: SKIP when it does not apply or this
/// backend cannot exercise it, else what its run says.
pub async fn run<B: Backend>(
    check: CheckName,
    backend: &B,
    deployed: &mut Deployed,
    expected: &Expected,
    prepared: &Prepared,
) -> Outcome {
    if let Err(reason) = check.applies(expected) {
        return Outcome::Skipped { reason };
    }
    let runner = table::runner::<B>(check);
    if let Err(reason) = (runner.exercised)(backend, deployed, prepared) {
        return Outcome::Skipped {
            reason: format!(
                "{check} not exercised on the {} backend: {reason}",
                backend.name()
            ),
        };
    }
    let run = match runner.run {
        Run::Jobs(run) => return run(backend, deployed, expected, prepared).await,
        Run::Api(run) => run,
    };
    let cred = match credential(expected, &deployed.secrets) {
        Ok(c) => c,
        Err(e) => {
            return Outcome::Fail {
                reason: crate::text::chain(&e),
                evidence: Vec::new(),
                log_tail: backend.logs(deployed, 30).await,
            };
        }
    };
    let api = crate::tls::api(
        &deployed.base_url,
        expected.api,
        cred,
        deployed.tls.as_ref(),
    );
    let mut ctx = Ctx {
        backend,
        deployed,
        expected,
        api,
        evidence: Vec::new(),
    };
    let result = run(&mut ctx, prepared).await;
    match result {
        Ok(detail) => Outcome::Pass { detail },
        Err(reason) => {
            let log_tail = ctx.backend.logs(ctx.deployed, 40).await;
            let keep = ctx.evidence.len().saturating_sub(6);
            Outcome::Fail {
                reason,
                evidence: ctx.evidence.split_off(keep),
                log_tail,
            }
        }
    }
}

/// The chart's own `helm test` hook, run by the backend the way its cluster would run it.
pub async fn chart_test<B: Backend>(backend: &B, deployed: &Deployed) -> Outcome {
    match backend.chart_test(deployed).await {
        Ok(HookRun::Succeeded { log }) => {
            let last = log
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty() && !l.starts_with("---"))
                .unwrap_or("")
                .to_string();
            Outcome::Pass {
                detail: format!("the `helm test` hook succeeded: {last}"),
            }
        }
        Ok(HookRun::Failed { reason, log }) => {
            let server = backend.logs(deployed, 20).await;
            Outcome::Fail {
                reason: format!("`helm test` failed: {reason}"),
                evidence: Vec::new(),
                log_tail: format!(
                    "--- hook log ---\n{}\n--- server log ---\n{server}",
                    crate::text::tail(&log, 40)
                ),
            }
        }
        Ok(HookRun::Unsupported { reason }) => Outcome::Skipped {
            reason: format!(
                "`helm test` not run on the {} backend: {reason}",
                backend.name()
            ),
        },
        Err(e) => Outcome::Fail {
            reason: format!("`helm test` could not be run: {}", crate::text::chain(&e)),
            evidence: Vec::new(),
            log_tail: backend.logs(deployed, 30).await,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use render::ChromaVersion;

    /// A record naming no check would never judge anything: every record of the committed
    /// matrix, a release's own or a range's, names one the runner knows.
    #[test]
    fn every_expected_failure_of_the_matrix_names_a_check() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/versions.yaml");
        let m = render::VersionMatrix::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let records: Vec<&render::ExpectedFailure> = m
            .versions
            .iter()
            .flat_map(|e| &e.expected_failures)
            .chain(m.known_failures.iter().map(|k| &k.failure))
            .collect();
        assert!(
            !records.is_empty(),
            "the matrix records no expected failure"
        );
        for x in records {
            x.check
                .parse::<CheckName>()
                .unwrap_or_else(|e| panic!("fixtures/versions.yaml: {e}"));
        }
    }

    fn c(name: &str) -> CheckName {
        name.parse().unwrap()
    }

    fn expected(values: &str, v: &str) -> Expected {
        Expected::from_values(
            &serde_yaml::from_str(values).unwrap(),
            &v.parse::<ChromaVersion>().unwrap(),
        )
        .unwrap()
    }

    fn xfail(cause: &str) -> render::ExpectedFailure {
        render::ExpectedFailure {
            check: "faults-full-volume".into(),
            causes: vec!["pickle data was truncated".into(), cause.into()],
            why: "loses its last batch".into(),
            intermittent: false,
        }
    }

    fn fail(reason: &str) -> Outcome {
        Outcome::Fail {
            reason: reason.into(),
            evidence: Vec::new(),
            log_tail: String::new(),
        }
    }

    #[rstest::rstest]
    #[case::a_failure_saying_a_recorded_cause_is_expected(
        fail("100 acknowledged record(s) missing"),
        "XFAIL",
        ""
    )]
    #[case::a_failure_saying_the_other_recorded_cause_is_expected(
        fail("500 UnpicklingError('pickle data was truncated')"),
        "XFAIL",
        ""
    )]
    #[case::a_failure_with_another_cause_fails_the_run(
        fail("the server did not become ready"),
        "FAIL",
        "failed with another cause"
    )]
    #[case::a_pass_fails_the_run_until_the_record_goes(Outcome::Pass { detail: "all there".into() }, "FAIL", "but it passed")]
    #[case::a_skip_stays_a_skip(Outcome::Skipped { reason: "no node".into() }, "SKIP", "")]
    fn an_expected_failure_accepts_only_its_own_cause(
        #[case] got: Outcome,
        #[case] label: &str,
        #[case] says: &str,
    ) {
        let out = against_expectation(got, Some(&xfail("acknowledged record(s) missing")));
        assert_eq!(out.label(), label);
        if let Outcome::Fail { reason, .. } = &out {
            assert!(
                reason.contains(says) && reason.contains("acknowledged record(s) missing"),
                "{reason}"
            );
        }
    }

    #[rstest::rstest]
    #[case::a_pass_stands_and_names_the_record(Outcome::Pass { detail: "all there".into() }, "PASS", "records an intermittent failure here")]
    #[case::a_failure_saying_the_cause_is_expected(
        fail("100 acknowledged record(s) missing"),
        "XFAIL",
        ""
    )]
    #[case::a_failure_with_another_cause_still_fails_the_run(
        fail("the server did not become ready"),
        "FAIL",
        "failed with another cause"
    )]
    fn an_intermittent_failure_lets_a_pass_stand(
        #[case] got: Outcome,
        #[case] label: &str,
        #[case] says: &str,
    ) {
        let x = render::ExpectedFailure {
            intermittent: true,
            ..xfail("acknowledged record(s) missing")
        };
        let out = against_expectation(got, Some(&x));
        assert_eq!(out.label(), label);
        match &out {
            Outcome::Pass { detail: s } | Outcome::Fail { reason: s, .. } => {
                assert!(s.contains(says), "{s}")
            }
            Outcome::ExpectedFail { cause, .. } => {
                assert_eq!(cause, "acknowledged record(s) missing")
            }
            Outcome::Skipped { .. } => panic!("a skip from a pass or a failure"),
        }
    }

    #[test]
    fn without_an_expectation_the_outcome_is_unchanged() {
        assert_eq!(against_expectation(fail("x"), None).label(), "FAIL");
    }

    #[test]
    fn payload_is_skipped_below_1_0_with_the_reason() {
        let e = expected("{}", "0.6.3");
        assert!(
            c("payload")
                .applies(&e)
                .unwrap_err()
                .contains("no payload limit")
        );
    }

    #[test]
    fn tls_proxy_is_skipped_on_0_x_where_uvicorn_serves_tls_itself() {
        let e = expected("tls: {enabled: true, existingSecret: s}", "0.6.3");
        assert!(c("tls-proxy").applies(&e).unwrap_err().contains("uvicorn"));
        assert!(c("tls-rotation").applies(&e).is_ok());
        assert!(
            c("tls-proxy")
                .applies(&expected(
                    "tls: {enabled: true, existingSecret: s}",
                    "1.5.0"
                ))
                .is_ok()
        );
    }

    #[test]
    fn every_tls_check_is_skipped_without_tls() {
        let e = expected("{}", "1.5.0");
        for c in [c("tls"), c("tls-proxy"), c("tls-rotation")] {
            assert!(
                c.applies(&e).unwrap_err().contains("tls.enabled is off"),
                "{c}"
            );
        }
    }

    #[test]
    fn unknown_check_name_lists_the_valid_ones() {
        let err = "persist".parse::<CheckName>().unwrap_err().to_string();
        assert!(
            err.contains("persistence") && err.contains("`persist`"),
            "{err}"
        );
    }

    #[test]
    fn token_credential_comes_from_the_existing_secret() {
        let e = expected("chromadb: {auth: {existingSecret: mine}}", "0.5.0");
        let secrets = BTreeMap::from([(
            "mine".to_string(),
            BTreeMap::from([("token".to_string(), "t0k".to_string())]),
        )]);
        let c = credential(&e, &secrets).unwrap().unwrap();
        assert_eq!(
            (c.header.as_str(), c.value.as_str()),
            ("Authorization", "Bearer t0k")
        );
    }

    #[test]
    fn missing_secret_key_is_named() {
        let e = expected("chromadb: {auth: {type: basic}}", "0.5.0");
        let secrets = BTreeMap::from([(
            DEFAULT_AUTH_SECRET.to_string(),
            BTreeMap::from([("token".to_string(), "x".to_string())]),
        )]);
        let err = credential(&e, &secrets).unwrap_err().to_string();
        assert!(err.contains("no key `username`"), "{err}");
    }
}
