//! `own-pods`: the chart's Services and PodDisruptionBudget count the server's pods and no
//! other — not the backup, restore or `helm test` pods that run in the same namespace. What
//! they count is read from their controllers (EndpointSlices, `status.expectedPods`), after
//! the checks that run those pods have run.

use render::Expected;
use render::spec::SERVER_PODS;

use crate::backend::{Backend, Selections};
use crate::checks::{About, Outcome, Run, Runner, always};

pub const ABOUT: About = About { name: "own-pods", opt_in: false, applies: always, needs: &[] };

pub fn runner<B: Backend>() -> Runner<B> {
    Runner {
        exercised: |backend, _, _| backend.reports_selections(),
        run: Run::Jobs(|backend, deployed, expected, _| {
            Box::pin(async move {
                match backend.selections(deployed).await {
                    Err(e) => Outcome::Fail {
                        reason: format!("reading what the Services and budgets select: {}", crate::text::chain(&e)),
                        evidence: Vec::new(),
                        log_tail: String::new(),
                    },
                    Ok(s) => match verdict(&s, expected) {
                        Ok(detail) => Outcome::Pass { detail },
                        Err(Finding::NothingElse(reason)) => Outcome::Skipped { reason },
                        Err(Finding::Wrong(reason)) => Outcome::Fail { reason, evidence: Vec::new(), log_tail: String::new() },
                    },
                }
            })
        }),
    }
}

/// Why the check could not prove anything, or what it found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Nothing besides the server ran in the namespace: no selector could have picked it.
    NothingElse(String),
    Wrong(String),
}

/// Compares what the controllers count with the model: every Service that lists a server pod
/// lists only server pods, and with `podDisruptionBudget.enabled` a budget over the server
/// expects exactly [`SERVER_PODS`].
pub fn verdict(s: &Selections, e: &Expected) -> Result<String, Finding> {
    let is_server = |owner: &str| owner.starts_with("StatefulSet/");
    let server: Vec<&str> = s
        .pods
        .iter()
        .filter(|(_, o)| is_server(o))
        .map(|(n, _)| n.as_str())
        .collect();
    let others: Vec<String> = s
        .pods
        .iter()
        .filter(|(_, o)| !is_server(o))
        .map(|(n, o)| format!("{n} ({o})"))
        .collect();
    if server.len() != SERVER_PODS as usize {
        return Err(Finding::Wrong(format!(
            "{} pods belong to a StatefulSet ({server:?}); the chart runs {SERVER_PODS}",
            server.len()
        )));
    }
    if others.is_empty() {
        return Err(Finding::NothingElse("no pod besides the server's ran in the namespace (chart-test or backup-restore run them), so no selector could have picked one".into()));
    }
    let owner = |pod: &str| {
        s.pods
            .iter()
            .find(|(n, _)| n == pod)
            .map_or("gone".to_string(), |(_, o)| o.clone())
    };
    let mut problems = Vec::new();
    let mut chroma_services = Vec::new();
    for (svc, picked) in &s.services {
        if !picked.iter().any(|p| server.contains(&p.as_str())) {
            continue;
        }
        chroma_services.push(svc.as_str());
        for p in picked.iter().filter(|p| !server.contains(&p.as_str())) {
            problems.push(format!(
                "Service {svc}'s EndpointSlices list pod {p} ({}) beside the server's",
                owner(p)
            ));
        }
    }
    if chroma_services.is_empty() {
        problems.push(format!(
            "no Service lists the server's pod {server:?} in its EndpointSlices"
        ));
    }
    let budgets: Vec<&(String, i32, Vec<String>)> = s
        .budgets
        .iter()
        .filter(|(_, _, picked)| picked.iter().any(|p| server.contains(&p.as_str())))
        .collect();
    match (e.disruption_budget, budgets.is_empty()) {
        (true, true) => problems.push("podDisruptionBudget.enabled is on, but no PodDisruptionBudget selects the server's pod".into()),
        (false, false) => problems.push(format!("podDisruptionBudget.enabled is off, but {:?} select the server's pod", budgets.iter().map(|b| &b.0).collect::<Vec<_>>())),
        _ => {}
    }
    for (name, expected, picked) in &budgets {
        if *expected != SERVER_PODS as i32 {
            let extra: Vec<String> = picked
                .iter()
                .filter(|p| !server.contains(&p.as_str()))
                .map(|p| format!("{p} ({})", owner(p)))
                .collect();
            problems.push(format!(
                "PodDisruptionBudget {name} counts {expected} pods (status.expectedPods, from the disruption controller), the model expects {SERVER_PODS}, the server's; its selector also picks {}",
                if extra.is_empty() { "nothing else".to_string() } else { extra.join(", ") }
            ));
        }
    }
    if !problems.is_empty() {
        return Err(Finding::Wrong(problems.join("; ")));
    }
    Ok(format!(
        "Services {} list only {}{}; not picked: {}",
        chroma_services.join(", "),
        server.join(", "),
        budgets
            .iter()
            .map(|(n, x, _)| format!("; PodDisruptionBudget {n} expects {x}"))
            .collect::<String>(),
        others.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn sel(
        pods: &[(&str, &str)],
        services: &[(&str, &[&str])],
        budgets: &[(&str, i32, &[&str])],
    ) -> Selections {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Selections {
            pods: pods
                .iter()
                .map(|(n, o)| (n.to_string(), o.to_string()))
                .collect(),
            services: services
                .iter()
                .map(|(n, p)| (n.to_string(), v(p)))
                .collect(),
            budgets: budgets
                .iter()
                .map(|(n, x, p)| (n.to_string(), *x, v(p)))
                .collect(),
        }
    }

    /// The model's own answer for the values (a budget needs one of its two bounds).
    fn expected(budget: bool) -> Expected {
        let values = if budget {
            "podDisruptionBudget: {enabled: true, minAvailable: 1, maxUnavailable: null}"
        } else {
            "{}"
        };
        let e = Expected::from_values(
            &serde_yaml::from_str(values).expect("yaml"),
            &"1.5.0".parse().expect("version"),
        )
        .expect("valid values");
        assert_eq!(
            e.disruption_budget, budget,
            "the model reads podDisruptionBudget.enabled"
        );
        e
    }

    const PODS: &[(&str, &str)] = &[
        ("c-0", "StatefulSet/c"),
        ("c-backup-1-x", "Job/c-backup-1"),
        ("c-test", "none"),
    ];

    #[rstest]
    #[case::only_the_server_everywhere(true, sel(PODS, &[("c", &["c-0"]), ("c-headless", &["c-0"])], &[("c", 1, &["c-0"])]), None)]
    #[case::a_job_pod_in_the_budget(true, sel(PODS, &[("c", &["c-0"])], &[("c", 2, &["c-0", "c-backup-1-x"])]), Some("counts 2 pods"))]
    #[case::a_job_pod_in_the_endpoints(false, sel(PODS, &[("c", &["c-0", "c-backup-1-x"])], &[]), Some("list pod c-backup-1-x (Job/c-backup-1)"))]
    #[case::a_budget_asked_for_but_missing(true, sel(PODS, &[("c", &["c-0"])], &[]), Some("no PodDisruptionBudget selects"))]
    #[case::a_budget_not_asked_for(false, sel(PODS, &[("c", &["c-0"])], &[("c", 1, &["c-0"])]), Some("is off"))]
    #[case::no_service_reaches_the_server(false, sel(PODS, &[("c", &[])], &[]), Some("no Service lists"))]
    fn the_verdict_follows_the_controllers_counts(
        #[case] budget: bool,
        #[case] s: Selections,
        #[case] fails: Option<&str>,
    ) {
        match (verdict(&s, &expected(budget)), fails) {
            (Ok(detail), None) => {
                assert!(detail.contains("c-backup-1-x (Job/c-backup-1)"), "{detail}")
            }
            (Err(Finding::Wrong(why)), Some(says)) => assert!(why.contains(says), "{why}"),
            (got, want) => panic!("got {got:?}, wanted a failure saying {want:?}"),
        }
    }

    #[test]
    fn nothing_but_the_server_proves_nothing() {
        let s = sel(&[("c-0", "StatefulSet/c")], &[("c", &["c-0"])], &[]);
        assert!(matches!(
            verdict(&s, &expected(false)),
            Err(Finding::NothingElse(_))
        ));
    }
}
