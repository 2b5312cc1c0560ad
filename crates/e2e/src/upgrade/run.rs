//! One transition: deploy A, write the dataset, upgrade in place to B, diff, check B, and
//! judge the outcome against what the matrix expects (verdict and failure signature).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::CronJob;
use render::{Expected, Helm, RenderRequest};
use serde_yaml::Value;

use super::fault::{self, Fault};
use super::log;
use super::plan::{self, Transition, Via};
use super::report::{Step, StepStatus, UpgradeReport};
use super::secrets::{self, SecretFate, Secrets};
use super::signature;
use super::verdict::Verdict;
use super::{ChartCheckout, UpgradeOptions};
use crate::backend::{Backend, Deployed};
use crate::checks::{self, CheckName, Outcome};
use crate::dataset::{self, Dataset, Scope};
use crate::prepare::{Ready, Source, prepare};
use crate::runner::CheckResult;
use chroma_api::client::Api;

pub(super) fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}

/// Enough lines for a whole server log: B's part is what the log gained after the upgrade.
const WHOLE_LOG: usize = 1_000_000;

struct Run<'a, B: Backend> {
    backend: &'a B,
    report: UpgradeReport,
    started: Instant,
    /// Everything B said (its log, the upgrade error, failing answers), searched for the
    /// expected failure's signature.
    observed: Vec<String>,
}

impl<B: Backend> Run<'_, B> {
    fn step(
        &mut self,
        name: impl Into<String>,
        t: Instant,
        result: Result<String, String>,
    ) -> bool {
        let ok = result.is_ok();
        let status = if ok {
            StepStatus::Pass
        } else {
            StepStatus::Fail
        };
        let detail = result.unwrap_or_else(|e| e);
        self.report.steps.push(Step {
            name: name.into(),
            status,
            detail,
            seconds: secs(t.elapsed()),
        });
        ok
    }

    fn skip(&mut self, name: impl Into<String>, t: Instant, reason: String) {
        self.report.steps.push(Step {
            name: name.into(),
            status: StepStatus::Skip,
            detail: reason,
            seconds: secs(t.elapsed()),
        });
    }

    fn set(&mut self, verdict: Verdict, summary: impl Into<String>) {
        self.report.verdict = verdict;
        self.report.summary = summary.into();
    }

    /// Stamps the time and judges the run against the expectation.
    fn finish(mut self) -> UpgradeReport {
        let r = &mut self.report;
        r.seconds = secs(self.started.elapsed());
        let failed: BTreeSet<CheckName> = r
            .checks
            .iter()
            .filter(|c| c.outcome.failed())
            .map(|c| c.check)
            .collect();
        r.mismatch = signature::mismatch(
            r.expect,
            r.signature.as_ref(),
            r.verdict,
            &r.summary,
            &failed,
            &self.observed,
        );
        if r.mismatch.is_none() {
            r.signature_seen = r
                .signature
                .as_ref()
                .and_then(|s| s.matches(&failed, &self.observed).ok());
        }
        self.report
    }
}

fn api_for(deployed: &Deployed, e: &Expected) -> Result<Api, checks::CredentialError> {
    let cred = checks::credential(e, &deployed.secrets)?;
    Ok(crate::tls::api(
        &deployed.base_url,
        e.api,
        cred,
        deployed.tls.as_ref(),
    ))
}

/// Runs one transition. Returns B still running when `opts.keep` and it got that far.
pub async fn run_one<B: Backend>(
    backend: &B,
    helm: &Helm,
    t: &Transition,
    from_chart: &ChartCheckout,
    to_chart: &ChartCheckout,
    opts: &UpgradeOptions,
) -> (UpgradeReport, Option<Deployed>) {
    let ds = Dataset::upgrade();
    let mut run = Run {
        backend,
        started: Instant::now(),
        observed: Vec::new(),
        report: UpgradeReport {
            dataset_collections: ds.collections.len(),
            dataset_records: ds.record_count(),
            ..UpgradeReport::not_run(
                backend.name(),
                t,
                from_chart.label.clone(),
                to_chart.label.clone(),
            )
        },
    };

    // Expectations and renders for both sides, before anything runs.
    let tt = Instant::now();
    let values_a = plan::merged_values(&t.values_files, "values");
    let values_b = plan::merged_values(
        &[t.values_files.clone(), t.to_values_files.clone()].concat(),
        "to_values",
    );
    let (values_a, values_b) = match (values_a, values_b) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            run.step("read values", tt, Err(e.to_string()));
            run.set(Verdict::SetupFailed, "the values could not be read");
            return (run.finish(), None);
        }
    };
    // Via backup, A backs up to its own claim and B restores from that claim as a new release.
    let (extra_a, extra_b) = match t.via {
        Via::InPlace => (None, None),
        Via::Backup => {
            let claim = render::spec::fullname(&values_a, RenderRequest::new(".").release.as_str())
                .map(|f| render::spec::own_claim(&f))
                .unwrap_or_default();
            let a: Value = serde_yaml::from_str("backup: {enabled: true}").expect("static YAML");
            let mut b: Value =
                serde_yaml::from_str("restore: {enabled: true}").expect("static YAML");
            let storage: Value = serde_yaml::from_str(&format!(
                "backup: {{storage: {{pvc: {{existingClaim: {claim:?}}}}}}}"
            ))
            .expect("a claim name is YAML");
            render::spec::deep_merge(&mut b, &storage);
            (Some(a), Some(b))
        }
    };
    let (mut values_a, mut values_b) = (values_a, values_b);
    if let Some(a) = &extra_a {
        render::spec::deep_merge(&mut values_a, a);
    }
    if let Some(b) = &extra_b {
        render::spec::deep_merge(&mut values_b, b);
    }
    let expected_a = Expected::from_values(&values_a, &t.from)
        .map_err(|e| format!("the spec refuses these values on {}: {e}", t.from));
    let expected_b = Expected::from_values(&values_b, &t.to)
        .map_err(|e| format!("the spec refuses these values on {}: {e}", t.to));
    // Both sides' values are judged before anything runs; each side's expectations come
    // from its own preparation.
    match (expected_a, expected_b) {
        (Ok(_), Ok(_)) => {}
        (Err(e), _) | (_, Err(e)) => {
            run.step("spec model", tt, Err(e));
            run.set(
                Verdict::SetupFailed,
                "the values are not valid for one side",
            );
            return (run.finish(), None);
        }
    }

    let tp = Instant::now();
    let mut prep = Ok(format!("chromadb {} and {} ready", t.from, t.to));
    for v in [&t.from, &t.to] {
        if let Err(e) = backend.prepare(v).await {
            prep = Err(format!("preparing chromadb {v}: {e}"));
            break;
        }
    }
    if !run.step("prepare", tp, prep) {
        run.set(Verdict::SetupFailed, "a version could not be prepared");
        return (run.finish(), None);
    }

    let tr = Instant::now();
    // A runs no checks: it only has to hold the dataset.
    let src_a = Source {
        chart: &from_chart.path,
        version: &t.from,
        values_files: &t.values_files,
        values: values_a.clone(),
        extra: extra_a.clone(),
        runtime: &BTreeMap::new(),
        secrets: Secrets::new(),
        checks: &[],
        id: t.id(),
        harness_address: backend.harness_address(),
        namespace: backend.namespace_for(&t.id()),
    };
    let a = match prepare(helm, src_a).await {
        Ok(r) => r,
        Err(e) => {
            run.step(format!("render A ({})", t.from), tr, Err(e.to_string()));
            run.set(Verdict::SetupFailed, "A could not be rendered");
            return (run.finish(), None);
        }
    };
    run.step(
        format!("render A ({}, chart {})", t.from, from_chart.label),
        tr,
        Ok(format!("{} objects", a.release.rendered.objects.len())),
    );
    let a_cronjob = a.prepared.workloads.backup.clone();
    let external = a.release.external_secrets.clone();
    let release_a = a.release;

    let td = Instant::now();
    let mut deployed = match backend.deploy(&release_a).await {
        Ok(d) => d,
        Err(e) => {
            run.step(format!("deploy A ({})", t.from), td, Err(e.to_string()));
            run.set(
                Verdict::SetupFailed,
                format!("A ({}) did not start", t.from),
            );
            return (run.finish(), None);
        }
    };
    run.step(
        format!("deploy A ({})", t.from),
        td,
        Ok(deployed.base_url.clone()),
    );

    let sides = Sides {
        a: &a.expected,
        values_b: &values_b,
        external: &external,
        a_cronjob: a_cronjob.as_ref(),
        extra_b: extra_b.as_ref(),
    };
    let worth_keeping =
        upgrade_deployed(&mut run, helm, t, to_chart, opts, &ds, &mut deployed, sides).await;
    if opts.keep && worth_keeping {
        run.report.kept_url = Some(deployed.base_url.clone());
        (run.finish(), Some(deployed))
    } else {
        if let Err(e) = backend.teardown(deployed).await {
            run.report.notes.push(format!("teardown failed: {e}"));
        }
        (run.finish(), None)
    }
}

/// What the spec expects of each side, and the Secrets the user created beforehand.
#[derive(Clone, Copy)]
struct Sides<'a> {
    a: &'a Expected,
    /// B's values as the spec model reads them (B's own expectations come from its render).
    values_b: &'a Value,
    external: &'a Secrets,
    /// Via backup: A's backup CronJob, and the values B's fresh release adds.
    a_cronjob: Option<&'a CronJob>,
    extra_b: Option<&'a Value>,
}

/// Everything after A is up. Sets the verdict; returns whether B is worth keeping.
#[allow(clippy::too_many_arguments)]
async fn upgrade_deployed<B: Backend>(
    run: &mut Run<'_, B>,
    helm: &Helm,
    t: &Transition,
    to_chart: &ChartCheckout,
    opts: &UpgradeOptions,
    ds: &Dataset,
    deployed: &mut Deployed,
    sides: Sides<'_>,
) -> bool {
    let backend = run.backend;
    // Exchanges are evidence for checks; here the steps and the diff say what happened.
    let mut ev = Vec::new();

    let tw = Instant::now();
    let written = match api_for(deployed, sides.a) {
        Ok(api) => dataset::write(&api, ds, &mut ev)
            .await
            .map(|_| {
                format!(
                    "{} collections, {} records",
                    ds.collections.len(),
                    ds.record_count()
                )
            })
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if !run.step("write dataset on A", tw, written) {
        run.report.logs.a_tail = log::clean(&backend.logs(deployed, opts.log_lines).await);
        run.set(
            Verdict::SetupFailed,
            "the dataset could not be written on A",
        );
        return false;
    }

    let tv = Instant::now();
    let api_a = api_for(deployed, sides.a).unwrap_or_else(|_| {
        crate::tls::api(&deployed.base_url, sides.a.api, None, deployed.tls.as_ref())
    });
    let on_a = dataset::diff(
        ds,
        &dataset::read(&api_a, ds, &mut ev).await,
        Scope::Exclusive,
    );
    let baseline = if on_a.intact() {
        Ok(format!(
            "{} records read back exactly",
            on_a.survived_records()
        ))
    } else {
        Err(format!(
            "A itself does not return the dataset as written: {}",
            on_a.problems().join("; ")
        ))
    };
    if !run.step("verify on A", tv, baseline) {
        run.report.diff = Some(on_a);
        run.set(
            Verdict::SetupFailed,
            "A did not store the dataset faithfully, so there is no baseline",
        );
        return false;
    }

    // B's render: same release, the target chart and version, the values plus B's layers.
    let tr = Instant::now();
    let files_b = [t.values_files.clone(), t.to_values_files.clone()].concat();
    // The opt-in faults family fills and kills servers: not part of judging an upgrade.
    let checks_b: Vec<CheckName> = CheckName::all()
        .filter(|c| opts.checks && !c.opt_in())
        .collect();
    let src_b = Source {
        chart: &to_chart.path,
        version: &t.to,
        values_files: &files_b,
        values: sides.values_b.clone(),
        extra: sides.extra_b.cloned(),
        runtime: &BTreeMap::new(),
        // The Secrets the user made for A stay for B.
        secrets: sides.external.clone(),
        checks: &checks_b,
        id: t.id(),
        harness_address: backend.harness_address(),
        namespace: backend.namespace_for(&t.id()),
    };
    let b = match prepare(helm, src_b).await {
        Ok(r) => r,
        Err(e) => {
            run.step(format!("render B ({})", t.to), tr, Err(e.to_string()));
            run.set(Verdict::SetupFailed, "B could not be rendered");
            return false;
        }
    };
    run.step(
        format!("render B ({}, chart {})", t.to, to_chart.label),
        tr,
        Ok(format!("{} objects", b.release.rendered.objects.len())),
    );
    let Ready {
        release: mut release_b,
        expected: expected_b,
        prepared: checks_have,
        ..
    } = b;
    let before: Secrets = deployed
        .secrets
        .iter()
        .filter(|(n, _)| !sides.external.contains_key(*n))
        .map(|(n, d)| (n.clone(), d.clone()))
        .collect();
    let lookup = backend.runs_lookup();
    let carried = match &lookup {
        Ok(()) => Vec::new(),
        // A fresh release generates its own credentials; nothing is carried over.
        Err(_) if t.via == Via::Backup => Vec::new(),
        Err(why) => {
            let carried = secrets::carry_over(&mut release_b, &before);
            if !carried.is_empty() {
                run.report.adjustments.push(format!(
                    "Secret(s) {} copied from A into B's render so that B starts with A's credentials ({why}); whether the chart's `lookup` keeps them is not proven here",
                    carried.join(", ")
                ));
            }
            carried
        }
    };
    if opts.fault == Some(Fault::InvalidPodB) {
        let tf = Instant::now();
        let r = fault::invalidate_pod(&mut release_b);
        run.step(
            "inject fault invalid-pod-b",
            tf,
            r.map(|w| format!("{w} (test hook: an expected failure must not accept this cause)")),
        );
    }

    let a_log = backend.logs(deployed, WHOLE_LOG).await;
    run.report.logs.a_tail = log::clean(
        &a_log
            .lines()
            .rev()
            .take(opts.log_lines)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n"),
    );
    if t.orphan_statefulset {
        let to = Instant::now();
        match backend.orphan_statefulset(deployed).await {
            Ok(()) => {
                run.step(
                    "delete A's StatefulSet (--cascade=orphan)",
                    to,
                    Ok("its pod and claims stay for B's StatefulSet to adopt".to_string()),
                );
            }
            Err(e) => {
                run.step(
                    "delete A's StatefulSet (--cascade=orphan)",
                    to,
                    Err(e.to_string()),
                );
                run.set(
                    Verdict::SetupFailed,
                    "A's StatefulSet could not be orphaned",
                );
                return false;
            }
        }
    }
    if t.via == Via::Backup {
        let tk = Instant::now();
        let Some(cronjob) = sides.a_cronjob else {
            run.step(
                "dump A with its backup CronJob's job",
                tk,
                Err("A's render has no backup CronJob although backup.enabled=true".into()),
            );
            run.set(
                Verdict::SetupFailed,
                "the chart rendered no backup CronJob for A",
            );
            return false;
        };
        let dumped = match backend.run_cronjob_once(deployed, cronjob).await {
            Ok(crate::backend::HookRun::Succeeded { log }) => {
                Ok(crate::checks::backup::archive_line(&log))
            }
            Ok(crate::backend::HookRun::Failed { reason, log }) => {
                Err(format!("{reason}\n{}", crate::text::tail(&log, 15)))
            }
            Ok(crate::backend::HookRun::Unsupported { reason }) => {
                run.skip("dump A with its backup CronJob's job", tk, reason.clone());
                run.set(
                    Verdict::SetupFailed,
                    format!(
                        "the {} backend cannot run the backup Job here: {reason}",
                        backend.name()
                    ),
                );
                return false;
            }
            Err(e) => Err(e.to_string()),
        };
        let ok = dumped.is_ok();
        if let Err(e) = &dumped {
            run.observed.push(e.clone());
        }
        run.step(
            "dump A with its backup CronJob's job",
            tk,
            dumped.map(|archive| format!("archive {archive}")),
        );
        if !ok {
            run.set(
                Verdict::Incompatible,
                format!("the backup of {} failed", t.from),
            );
            return true;
        }
    }
    let tu = Instant::now();
    let upgraded = match t.via {
        Via::InPlace => backend.upgrade(deployed, &release_b).await,
        Via::Backup => backend.reinstall(deployed, &release_b).await,
    };
    let step_b = match t.via {
        Via::InPlace => format!("upgrade in place to B ({})", t.to),
        Via::Backup => format!(
            "uninstall A, install B ({}) as a fresh release restoring the archive",
            t.to
        ),
    };
    run.report.upgrade_seconds = Some(secs(tu.elapsed()));
    let b_log = log::since(&a_log, &backend.logs(deployed, WHOLE_LOG).await).to_string();
    run.report.logs.b_head = log::head(&b_log, opts.log_lines);
    run.observed.push(b_log);
    run.report
        .adjustments
        .extend(deployed.adjustments.iter().cloned());
    if let Err(e) = upgraded {
        let error = log::clean(&e.to_string());
        run.observed.push(error.clone());
        run.step(step_b, tu, Err(error.clone()));
        let said = run.report.logs.b_head.lines().find(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("panic")
                || l.contains("exception")
                || l.contains("error:")
                || l.contains(" error ")
        });
        let said = said.map_or_else(String::new, |l| format!("; its log said: {}", l.trim()));
        let what = match t.via {
            Via::InPlace => format!("{} did not start on the data {} left", t.to, t.from),
            Via::Backup => format!(
                "{} could not be installed restoring {}'s backup",
                t.to, t.from
            ),
        };
        run.set(
            Verdict::Incompatible,
            format!("{what}: {}{said}", error.lines().next().unwrap_or_default()),
        );
        return true;
    }
    run.step(
        step_b,
        tu,
        Ok(format!("{} ready at {}", t.to, deployed.base_url)),
    );

    let secrets_ok = match t.via {
        Via::InPlace => secret_step(
            run,
            &before,
            deployed,
            lookup.err().map(|why| (carried, why)),
        ),
        Via::Backup => {
            run.skip("auth Secret kept", Instant::now(), "B is a fresh release: it generates its own credentials, and its restore Job used them".into());
            true
        }
    };

    let api_b = match api_for(deployed, &expected_b) {
        Ok(a) => a,
        Err(e) => {
            run.step("verify on B", Instant::now(), Err(e.to_string()));
            run.set(
                Verdict::DataLost,
                "B's credentials could not be derived, so nothing could be read",
            );
            return true;
        }
    };
    if let Some(f) = opts.fault.filter(|f| *f != Fault::InvalidPodB) {
        let tf = Instant::now();
        let r = fault::tamper(&api_b, ds, f).await;
        run.step(
            format!("inject fault {}", f.as_str()),
            tf,
            r.map(|w| format!("{w} (test hook: the diff below must catch it)")),
        );
    }
    let tb = Instant::now();
    let diff = dataset::diff(
        ds,
        &dataset::read(&api_b, ds, &mut ev).await,
        Scope::Exclusive,
    );
    let intact = diff.intact();
    let line = format!(
        "{}/{} collections, {}/{} records intact",
        diff.survived_collections(),
        ds.collections.len(),
        diff.survived_records(),
        diff.expected_records()
    );
    run.step(
        "verify dataset on B",
        tb,
        if intact {
            Ok(line.clone())
        } else {
            Err(format!("{line}: {}", diff.problems().join("; ")))
        },
    );
    run.observed.extend(diff.problems());
    run.observed.extend(
        ev.iter()
            .filter(|e| !e.ok())
            .map(|e| e.response_body.clone()),
    );
    run.report.diff = Some(diff);

    let mut failed_checks = Vec::new();
    if !opts.checks {
        run.report.notes.push(
            "the conformance checks on B were not run (UpgradeOptions::checks is off)".into(),
        );
    }
    for &check in &checks_b {
        let tc = Instant::now();
        let outcome = checks::run(check, backend, deployed, &expected_b, &checks_have).await;
        if let Outcome::Fail {
            reason, evidence, ..
        } = &outcome
        {
            failed_checks.push(check.as_str());
            run.observed.push(reason.clone());
            run.observed
                .extend(evidence.iter().map(|e| e.response_body.clone()));
        }
        run.report.checks.push(CheckResult {
            check,
            outcome,
            seconds: secs(tc.elapsed()),
        });
    }
    // B's whole log so far, checks included (not the checks' log tails: those can reach back
    // into A's lines).
    run.observed
        .push(log::since(&a_log, &backend.logs(deployed, WHOLE_LOG).await).to_string());

    let unreadable = run
        .report
        .diff
        .as_ref()
        .and_then(|d| d.unreadable_everywhere());
    if let Some(said) = unreadable {
        run.set(
            Verdict::Incompatible,
            format!(
                "{} started but cannot read the data {} left: {said}",
                t.to, t.from
            ),
        );
    } else if !intact {
        run.set(
            Verdict::DataLost,
            format!("{line} after {} → {}", t.from, t.to),
        );
    } else if !failed_checks.is_empty() || !secrets_ok {
        let mut why = Vec::new();
        if !secrets_ok {
            why.push("generated credentials changed".to_string());
        }
        if !failed_checks.is_empty() {
            why.push(format!(
                "check(s) failed on B: {}",
                failed_checks.join(", ")
            ));
        }
        // What the server said the first time a check failed.
        if let Some(e) = run.report.checks.iter().find_map(|c| match &c.outcome {
            Outcome::Fail { evidence, .. } => evidence.last().filter(|e| !e.ok()).cloned(),
            _ => None,
        }) {
            why.push(format!(
                "the server answered {} {} → {} {}",
                e.method, e.url, e.status, e.response_body
            ));
        }
        run.set(
            Verdict::ChecksFailed,
            format!("{line}, but {}", why.join("; ")),
        );
    } else {
        let checked = if opts.checks {
            "B passes its checks"
        } else {
            "the checks on B were not run"
        };
        run.set(Verdict::Survived, format!("{line}; {checked}"));
    }
    true
}

/// The generated Secrets across the upgrade: PASS when the chart kept them, FAIL when they
/// changed, SKIP when the backend could only carry them over by emulation. Returns false
/// when credentials changed.
fn secret_step<B: Backend>(
    run: &mut Run<'_, B>,
    before: &Secrets,
    deployed: &Deployed,
    emulated: Option<(Vec<String>, String)>,
) -> bool {
    let ts = Instant::now();
    let fates = secrets::continuity(
        before,
        &deployed.secrets,
        emulated
            .as_ref()
            .map(|(names, why)| (names.as_slice(), why.as_str())),
    );
    run.report.secrets = fates.clone();
    if fates.is_empty() {
        return true;
    }
    let rotated: Vec<&str> = fates
        .iter()
        .filter(|s| matches!(s.fate, SecretFate::Changed { .. }))
        .map(|s| s.name.as_str())
        .collect();
    if !rotated.is_empty() {
        run.step(
            "auth Secret kept",
            ts,
            Err(format!(
                "the upgrade changed generated credentials: {}",
                rotated.join(", ")
            )),
        );
        return false;
    }
    let unproven: Vec<&str> = fates
        .iter()
        .filter(|s| matches!(s.fate, SecretFate::NotProven { .. }))
        .map(|s| s.name.as_str())
        .collect();
    if let Some((_, why)) = emulated.filter(|_| !unproven.is_empty()) {
        let backend = run.backend.name();
        run.skip("auth Secret kept", ts, format!("{} not proven on the {backend} backend: {why}; run on a cluster backend to prove it", unproven.join(", ")));
        return true;
    }
    let detail = fates
        .iter()
        .map(|s| {
            format!(
                "{}: {}",
                s.name,
                if s.fate == SecretFate::Kept {
                    "kept"
                } else {
                    "not used by B"
                }
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    if fates.iter().any(|s| s.fate == SecretFate::Kept) {
        run.step("auth Secret kept", ts, Ok(detail));
    } else {
        // Nothing B uses was there to keep: no evidence either way.
        run.skip("auth Secret kept", ts, format!("nothing to keep: {detail}"));
    }
    true
}
