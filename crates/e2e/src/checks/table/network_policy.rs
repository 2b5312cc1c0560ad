//! `network-policy`: with `networkPolicy.enabled`, a pod of the release's namespace that no
//! peer admits cannot open a connection to the API, and a pod a peer admits can — both tried
//! from pods the cluster's own NetworkPolicy controller filters, with the Service name pods
//! use. Which pod is which comes from the spec model's reading of the policy's peers.

use std::collections::BTreeMap;

use render::Expected;
use render::spec::netpol::{Admission, ExpectedNetworkPolicy};

use crate::backend::{Backend, Deployed, HookRun};
use crate::checks::{About, Outcome, Run, Runner};

pub const ABOUT: About = About {
    name: "network-policy",
    opt_in: false,
    applies: |e| match e.network_policy {
        Some(_) => Ok(()),
        None => Err("networkPolicy.enabled is off: no policy filters the API port".into()),
    },
    needs: &[],
};

pub fn runner<B: Backend>() -> Runner<B> {
    Runner {
        exercised: |backend, _, _| backend.enforces_network_policy(),
        run: Run::Jobs(|backend, deployed, expected, _| Box::pin(run(backend, deployed, expected))),
    }
}

/// Tries of the refused client: each must be refused, so a policy that lets some through
/// is seen.
const REFUSED_TRIES: u32 = 5;
/// Tries of the admitted client: a controller puts a new pod into its rules some time after
/// the pod has its address (kube-router: at its next sync), so early refusals are allowed.
const ADMITTED_TRIES: u32 = 30;

/// Labels no chart selector and no sane peer uses.
fn outsider() -> BTreeMap<String, String> {
    [(
        "app.kubernetes.io/name".to_string(),
        "chromadb-e2e-outsider".to_string(),
    )]
    .into()
}

/// The client's script: `tries` connections to `$API` one second apart, each line saying
/// curl's exit code and the HTTP status; with `until_connected` it stops at the first
/// connection. It always exits 0: the verdict is read from its lines.
pub fn script(tries: u32, until_connected: bool) -> String {
    let stop = if until_connected {
        "[ \"$rc\" = 0 ] && exit 0; "
    } else {
        ""
    };
    format!(
        "i=0; while [ $i -lt {tries} ]; do i=$((i+1)); \
         code=$(curl -ks -o /dev/null -w '%{{http_code}}' --connect-timeout 3 --max-time 10 \"$API/\"); rc=$?; \
         echo \"try $i: curl exit $rc, HTTP $code\"; {stop}sleep 1; done; exit 0"
    )
}

/// One connection attempt: curl's exit code (0 connected; 7 refused, 28 timed out) and the
/// HTTP status it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Try {
    pub exit: i32,
    pub http: u16,
}

pub fn read_tries(log: &str) -> Vec<Try> {
    log.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("try ")?;
            let (_, rest) = rest.split_once(": curl exit ")?;
            let (exit, http) = rest.split_once(", HTTP ")?;
            Some(Try {
                exit: exit.trim().parse().ok()?,
                http: http.trim().parse().unwrap_or(0),
            })
        })
        .collect()
}

/// What curl's exit code says about the connection.
fn meaning(exit: i32) -> &'static str {
    match exit {
        0 => "connected",
        7 => "connection refused (a REJECT rule answers with ICMP port unreachable)",
        28 => "connection timed out (a DROP rule)",
        6 => "the Service name did not resolve",
        35 | 60 => "connected, then TLS failed",
        _ => "failed otherwise",
    }
}

/// The refused client's verdict: every try refused or timed out.
pub fn refused_verdict(tries: &[Try]) -> Result<String, String> {
    if tries.len() < REFUSED_TRIES as usize {
        return Err(format!(
            "the refused client's log shows {} of its {REFUSED_TRIES} tries",
            tries.len()
        ));
    }
    if let Some((i, t)) = tries
        .iter()
        .enumerate()
        .find(|(_, t)| t.exit == 0 || t.exit == 35 || t.exit == 60)
    {
        return Err(format!(
            "a pod no peer admits reached the API on try {} of {} (curl exit {}, HTTP {}): the NetworkPolicy does not keep it out",
            i + 1,
            tries.len(),
            t.exit,
            t.http
        ));
    }
    if let Some(t) = tries.iter().find(|t| t.exit != 7 && t.exit != 28) {
        return Err(format!(
            "the refused client failed for another cause than the policy: curl exit {} ({})",
            t.exit,
            meaning(t.exit)
        ));
    }
    let refused = tries.iter().filter(|t| t.exit == 7).count();
    Ok(format!(
        "a pod no peer admits was kept out on all {} tries ({refused} refused, {} timed out)",
        tries.len(),
        tries.len() - refused
    ))
}

/// The admitted client's verdict: a try connected, after at most the controller's lag.
pub fn admitted_verdict(tries: &[Try], why: &str) -> Result<String, String> {
    match tries.iter().position(|t| t.exit == 0) {
        Some(i) => Ok(format!(
            "a pod admitted by {why} reached the API (HTTP {}){}",
            tries[i].http,
            if i == 0 {
                String::new()
            } else {
                format!(
                    " after {i} refused tries while the controller took the new pod into its rules"
                )
            }
        )),
        None => {
            let last = tries.last().map_or("no try ran".to_string(), |t| {
                format!("curl exit {} ({})", t.exit, meaning(t.exit))
            });
            Err(format!(
                "a pod admitted by {why} never reached the API in {} tries; last: {last}",
                tries.len()
            ))
        }
    }
}

/// The two clients the model can place: labels refused (or why none), labels admitted with
/// the peer that admits them (or why none).
type Plan = (
    Result<BTreeMap<String, String>, String>,
    Result<(BTreeMap<String, String>, String), String>,
);

pub fn plan(policy: &ExpectedNetworkPolicy, namespace: &str) -> Plan {
    let ns: BTreeMap<String, String> = [(
        "kubernetes.io/metadata.name".to_string(),
        namespace.to_string(),
    )]
    .into();
    let refused = match policy.admission(&outsider(), &ns) {
        Admission::Refused => Ok(outsider()),
        Admission::Admitted(why) => Err(format!("the policy admits every pod of the namespace ({why})")),
        Admission::Unknown(why) => Err(why),
    };
    let admitted = policy.admitted_labels(&ns).ok_or_else(|| {
        "no peer admits a pod of the release's namespace by plain matchLabels (namespaceSelector peers pick other namespaces)".to_string()
    });
    (refused, admitted)
}

async fn client<B: Backend>(
    backend: &B,
    deployed: &Deployed,
    name: &str,
    labels: &BTreeMap<String, String>,
    tries: u32,
    until_connected: bool,
) -> Result<Vec<Try>, String> {
    match backend
        .run_client(deployed, name, labels, &script(tries, until_connected))
        .await
    {
        Ok(HookRun::Succeeded { log }) => Ok(read_tries(&log)),
        Ok(HookRun::Failed { reason, log }) => Err(format!(
            "client pod {name} did not run to its end: {reason}; log: {}",
            crate::text::tail(&log, 10)
        )),
        Ok(HookRun::Unsupported { reason }) => Err(format!("client pod {name}: {reason}")),
        Err(e) => Err(format!("client pod {name}: {}", crate::text::chain(&e))),
    }
}

async fn run<B: Backend>(backend: &B, deployed: &mut Deployed, expected: &Expected) -> Outcome {
    let fail = |reason: String| Outcome::Fail {
        reason,
        evidence: Vec::new(),
        log_tail: String::new(),
    };
    let Some(policy) = &expected.network_policy else {
        return Outcome::Skipped {
            reason: "networkPolicy.enabled is off".into(),
        };
    };
    let Some(namespace) = backend.namespace_for(&deployed.id) else {
        return Outcome::Skipped {
            reason: "the backend does not say which namespace the release runs in".into(),
        };
    };
    let (refused, admitted) = plan(policy, &namespace);
    if let (Err(r), Err(a)) = (&refused, &admitted) {
        return Outcome::Skipped {
            reason: format!("no client pod can show the policy: {r}; {a}"),
        };
    }
    let mut proven = Vec::new();
    // The refused client first; the admitted one then shows the same URL answering, so the
    // refusals were the policy's and not a server that was down.
    match &refused {
        Ok(labels) => {
            match client(backend, deployed, "e2e-netpol-refused", labels, REFUSED_TRIES, false)
                .await
                .and_then(|t| refused_verdict(&t))
            {
                Ok(d) => proven.push(d),
                Err(e) => return fail(e),
            }
        }
        Err(why) => proven.push(format!("no refused client ({why})")),
    }
    match &admitted {
        Ok((labels, why)) => {
            match client(backend, deployed, "e2e-netpol-admitted", labels, ADMITTED_TRIES, true)
                .await
                .and_then(|t| admitted_verdict(&t, why))
            {
                Ok(d) => proven.push(d),
                Err(e) => return fail(e),
            }
        }
        Err(why) => proven.push(format!("no admitted client ({why})")),
    }
    Outcome::Pass {
        detail: proven.join("; "),
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn tries(exits: &[i32]) -> Vec<Try> {
        exits
            .iter()
            .map(|&exit| Try {
                exit,
                http: if exit == 0 { 200 } else { 0 },
            })
            .collect()
    }

    #[test]
    fn the_scripts_lines_are_read_back() {
        let log = "try 1: curl exit 7, HTTP 000\ntry 2: curl exit 0, HTTP 200\nnoise\n";
        assert_eq!(
            read_tries(log),
            [Try { exit: 7, http: 0 }, Try { exit: 0, http: 200 }]
        );
        assert!(script(3, true).contains("exit 0; sleep 1"));
        assert!(!script(3, false).contains("[ \"$rc\" = 0 ] && exit 0"));
    }

    #[rstest]
    #[case::all_refused_is_the_policy(&[7, 7, 7, 7, 7], Ok("kept out on all 5 tries"))]
    #[case::timeouts_count_as_kept_out(&[28, 7, 28, 7, 7], Ok("2 timed out"))]
    #[case::one_connection_breaks_the_policy(&[7, 7, 0, 7, 7], Err("reached the API on try 3"))]
    #[case::dns_failure_is_another_cause(&[6, 6, 6, 6, 6], Err("another cause than the policy"))]
    #[case::too_few_tries_prove_nothing(&[7, 7], Err("2 of its 5 tries"))]
    fn refused_client(#[case] exits: &[i32], #[case] want: Result<&str, &str>) {
        let got = refused_verdict(&tries(exits));
        match (&got, want) {
            (Ok(d), Ok(w)) | (Err(d), Err(w)) => assert!(d.contains(w), "{d}"),
            _ => panic!("{exits:?}: {got:?}, wanted {want:?}"),
        }
    }

    #[rstest]
    #[case::first_try_connects(&[0], Ok("reached the API (HTTP 200)"))]
    #[case::the_controllers_lag_is_allowed(&[7, 7, 0], Ok("after 2 refused tries"))]
    #[case::never_connecting_fails(&[7, 7, 7], Err("never reached the API in 3 tries"))]
    #[case::no_try_fails(&[], Err("no try ran"))]
    fn admitted_client(#[case] exits: &[i32], #[case] want: Result<&str, &str>) {
        let got = admitted_verdict(&tries(exits), "peer podSelector role=client");
        match (&got, want) {
            (Ok(d), Ok(w)) | (Err(d), Err(w)) => assert!(d.contains(w), "{d}"),
            _ => panic!("{exits:?}: {got:?}, wanted {want:?}"),
        }
    }

    fn policy(yaml: &str) -> ExpectedNetworkPolicy {
        let values: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        Expected::from_values(&values, &"1.5.0".parse().unwrap())
            .unwrap()
            .network_policy
            .expect("enabled")
    }

    #[test]
    fn the_plan_places_both_clients_from_the_peers() {
        let p = policy(
            "networkPolicy: {enabled: true, allowedFrom: [{podSelector: {matchLabels: {chromadb-client: 'true'}}}]}",
        );
        let (refused, admitted) = plan(&p, "e2e-1");
        assert_eq!(refused.unwrap(), outsider());
        let (labels, why) = admitted.unwrap();
        assert_eq!(labels.get("chromadb-client").map(String::as_str), Some("true"));
        assert!(why.contains("chromadb-client=true"), "{why}");
    }

    #[test]
    fn a_peer_of_another_namespace_leaves_only_the_refused_client() {
        let p = policy(
            "networkPolicy: {enabled: true, allowedFrom: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: apps}}}]}",
        );
        let (refused, admitted) = plan(&p, "e2e-1");
        assert!(refused.is_ok());
        assert!(admitted.unwrap_err().contains("namespaceSelector"));
    }
}
