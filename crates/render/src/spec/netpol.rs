//! What `networkPolicy.*` promises about who reaches the API port, with Kubernetes'
//! NetworkPolicy semantics: a peer with only `podSelector` picks pods of the release's own
//! namespace, one with only `namespaceSelector` every pod of the namespaces it picks, one with
//! both the pods it picks in those namespaces; an `ipBlock` picks addresses, not labels. A
//! rule of `extraIngress` that covers the API port (no `ports`, or the port by number or
//! name) admits its peers too, and everyone when it has no `from`.

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::values::lookup;
use super::{SpecError, knobs};

/// `networkPolicy.enabled`: which pods the policy lets reach the API port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExpectedNetworkPolicy {
    /// Every peer admitted on the API port: `allowedFrom`, then those of `extraIngress`
    /// rules that cover the port (the chart's own test, backup and restore pods are admitted
    /// besides, by their component labels; the checks that run them show it).
    pub peers: Vec<Peer>,
    /// An `extraIngress` rule with no `from` covers the API port: every source is admitted.
    pub open_to_all: bool,
}

/// One `NetworkPolicyPeer`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Peer {
    pub pods: Option<Selector>,
    pub namespaces: Option<Selector>,
    /// `ipBlock.cidr`: addresses, which no label predicts.
    pub ip_block: Option<String>,
}

/// A `LabelSelector`: `matchLabels` and `matchExpressions`, all of which must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Selector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Requirement {
    pub key: String,
    pub operator: String,
    pub values: Vec<String>,
}

/// What the policy does to one pod, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Admitted, by the peer described.
    Admitted(String),
    Refused,
    /// No label decides it (an `ipBlock` peer may hold the pod's address).
    Unknown(String),
}

type Labels = BTreeMap<String, String>;

impl Selector {
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let have = labels.get(&r.key);
                match r.operator.as_str() {
                    "In" => have.is_some_and(|v| r.values.contains(v)),
                    "NotIn" => !have.is_some_and(|v| r.values.contains(v)),
                    "Exists" => have.is_some(),
                    "DoesNotExist" => have.is_none(),
                    _ => false,
                }
            })
    }

    fn parse(v: &Value, key: &str) -> Result<Selector, SpecError> {
        let bad = |why: &str| SpecError {
            key: key.to_string(),
            reason: format!("{why} (a LabelSelector: matchLabels and matchExpressions)"),
        };
        let mut s = Selector::default();
        if let Some(m) = v.get("matchLabels") {
            let m = m
                .as_mapping()
                .ok_or_else(|| bad("matchLabels is not a map"))?;
            for (k, val) in m {
                let k = k
                    .as_str()
                    .ok_or_else(|| bad("a label key is not a string"))?;
                let val = match val {
                    Value::String(s) => s.clone(),
                    Value::Bool(b) => b.to_string(),
                    Value::Number(n) => n.to_string(),
                    _ => return Err(bad(&format!("the value of label {k} is not a string"))),
                };
                s.match_labels.insert(k.to_string(), val);
            }
        }
        if let Some(list) = v.get("matchExpressions") {
            let list = list
                .as_sequence()
                .ok_or_else(|| bad("matchExpressions is not a list"))?;
            for e in list {
                let field = |f: &str| e.get(f).and_then(Value::as_str).map(str::to_string);
                let (Some(key), Some(operator)) = (field("key"), field("operator")) else {
                    return Err(bad("a matchExpressions entry lacks key or operator"));
                };
                if !["In", "NotIn", "Exists", "DoesNotExist"].contains(&operator.as_str()) {
                    return Err(bad(&format!(
                        "operator {operator:?} is not one of In, NotIn, Exists, DoesNotExist"
                    )));
                }
                let values = e
                    .get("values")
                    .and_then(Value::as_sequence)
                    .map(|vs| {
                        vs.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                s.match_expressions.push(Requirement {
                    key,
                    operator,
                    values,
                });
            }
        }
        Ok(s)
    }
}

impl Peer {
    fn parse(v: &Value, key: &str) -> Result<Peer, SpecError> {
        Ok(Peer {
            pods: v
                .get("podSelector")
                .map(|s| Selector::parse(s, key))
                .transpose()?,
            namespaces: v
                .get("namespaceSelector")
                .map(|s| Selector::parse(s, key))
                .transpose()?,
            ip_block: v
                .get("ipBlock")
                .and_then(|b| b.get("cidr"))
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }

    /// Whether this peer picks a pod with `labels` in a namespace with `namespace_labels`,
    /// `same_namespace` saying whether that is the release's own.
    fn picks(&self, labels: &Labels, namespace_labels: &Labels, same_namespace: bool) -> bool {
        let pods = self.pods.as_ref().is_none_or(|s| s.matches(labels));
        let namespace = match &self.namespaces {
            Some(s) => s.matches(namespace_labels),
            None => same_namespace,
        };
        (self.pods.is_some() || self.namespaces.is_some()) && pods && namespace
    }

    fn describe(&self) -> String {
        let sel = |s: &Selector| {
            let mut parts: Vec<String> = s
                .match_labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            parts.extend(
                s.match_expressions
                    .iter()
                    .map(|r| format!("{} {} {:?}", r.key, r.operator, r.values)),
            );
            if parts.is_empty() {
                "{} (all)".to_string()
            } else {
                parts.join(",")
            }
        };
        let mut d = Vec::new();
        if let Some(p) = &self.pods {
            d.push(format!("podSelector {}", sel(p)));
        }
        if let Some(n) = &self.namespaces {
            d.push(format!("namespaceSelector {}", sel(n)));
        }
        if let Some(c) = &self.ip_block {
            d.push(format!("ipBlock {c}"));
        }
        d.join(" and ")
    }
}

impl ExpectedNetworkPolicy {
    /// What the policy does to a pod with `labels` in the release's own namespace, whose
    /// labels are `namespace_labels`.
    pub fn admission(&self, labels: &Labels, namespace_labels: &Labels) -> Admission {
        if self.open_to_all {
            return Admission::Admitted("an extraIngress rule without `from`".into());
        }
        if let Some(p) = self
            .peers
            .iter()
            .find(|p| p.picks(labels, namespace_labels, true))
        {
            return Admission::Admitted(format!("peer {}", p.describe()));
        }
        match self.peers.iter().find(|p| p.ip_block.is_some()) {
            Some(p) => Admission::Unknown(format!(
                "peer {} admits by address, which no label decides",
                p.describe()
            )),
            None => Admission::Refused,
        }
    }

    /// Labels for a pod of the release's namespace that a peer admits by its labels: the
    /// first peer whose pod selector is plain `matchLabels` (and whose namespace selector, if
    /// any, picks `namespace_labels`), checked against [`Self::admission`].
    pub fn admitted_labels(&self, namespace_labels: &Labels) -> Option<(Labels, String)> {
        self.peers.iter().find_map(|p| {
            let labels = p.pods.as_ref()?;
            if !labels.match_expressions.is_empty() {
                return None;
            }
            match self.admission(&labels.match_labels, namespace_labels) {
                Admission::Admitted(why) => Some((labels.match_labels.clone(), why)),
                _ => None,
            }
        })
    }
}

/// `Some` when `networkPolicy.enabled`; `port` and `port_name` are the API port's.
pub fn expected(
    values: &Value,
    port: u16,
    port_name: &str,
) -> Result<Option<ExpectedNetworkPolicy>, SpecError> {
    let Some(allowed) = knobs::network_policy_peers(values)? else {
        return Ok(None);
    };
    let mut peers = allowed
        .iter()
        .map(|p| Peer::parse(p, "networkPolicy.allowedFrom"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut open_to_all = false;
    let key = "networkPolicy.extraIngress";
    for rule in lookup(values, key)
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let covers = match rule.get("ports").and_then(Value::as_sequence) {
            None => true,
            Some(ports) if ports.is_empty() => true,
            Some(ports) => ports.iter().any(|p| match p.get("port") {
                None => true,
                Some(Value::Number(n)) => n.as_u64() == Some(u64::from(port)),
                Some(Value::String(s)) => s == port_name || s == &port.to_string(),
                _ => false,
            }),
        };
        if !covers {
            continue;
        }
        match rule.get("from").and_then(Value::as_sequence) {
            None => open_to_all = true,
            Some(from) if from.is_empty() => open_to_all = true,
            Some(from) => {
                for p in from {
                    peers.push(Peer::parse(p, key)?);
                }
            }
        }
    }
    Ok(Some(ExpectedNetworkPolicy { peers, open_to_all }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn policy(yaml: &str) -> ExpectedNetworkPolicy {
        let values: Value = serde_yaml::from_str(yaml).unwrap();
        expected(&values, 8000, "http").unwrap().expect("enabled")
    }

    const NS: &[(&str, &str)] = &[("kubernetes.io/metadata.name", "e2e-1")];

    #[rstest]
    #[case::pod_selector_admits_a_matching_pod_of_the_namespace(
        "networkPolicy: {enabled: true, allowedFrom: [{podSelector: {matchLabels: {role: client}}}]}",
        &[("role", "client")], true)]
    #[case::pod_selector_refuses_another_pod(
        "networkPolicy: {enabled: true, allowedFrom: [{podSelector: {matchLabels: {role: client}}}]}",
        &[("role", "other")], false)]
    #[case::namespace_selector_of_another_namespace_refuses_the_releases_pods(
        "networkPolicy: {enabled: true, allowedFrom: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: apps}}}]}",
        &[("role", "client")], false)]
    #[case::namespace_selector_of_this_namespace_admits_every_pod_there(
        "networkPolicy: {enabled: true, allowedFrom: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: e2e-1}}}]}",
        &[("anything", "x")], true)]
    #[case::both_selectors_must_hold(
        "networkPolicy: {enabled: true, allowedFrom: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: e2e-1}}, podSelector: {matchLabels: {role: client}}}]}",
        &[("role", "other")], false)]
    #[case::match_expressions_in(
        "networkPolicy: {enabled: true, allowedFrom: [{podSelector: {matchExpressions: [{key: tier, operator: In, values: [web, api]}]}}]}",
        &[("tier", "api")], true)]
    #[case::match_expressions_does_not_exist(
        "networkPolicy: {enabled: true, allowedFrom: [{podSelector: {matchExpressions: [{key: blocked, operator: DoesNotExist}]}}]}",
        &[("blocked", "yes")], false)]
    #[case::an_extra_ingress_rule_on_the_api_port_admits_its_peers(
        "networkPolicy: {enabled: true, allowedFrom: [{podSelector: {matchLabels: {role: client}}}], extraIngress: [{ports: [{port: 8000}], from: [{podSelector: {matchLabels: {role: ops}}}]}]}",
        &[("role", "ops")], true)]
    #[case::an_extra_ingress_rule_on_another_port_does_not(
        "networkPolicy: {enabled: true, allowedFrom: [{podSelector: {matchLabels: {role: client}}}], extraIngress: [{ports: [{port: 9090}], from: [{podSelector: {matchLabels: {role: ops}}}]}]}",
        &[("role", "ops")], false)]
    #[case::an_extra_ingress_rule_without_from_admits_everyone(
        "networkPolicy: {enabled: true, allowedFrom: [{podSelector: {matchLabels: {role: client}}}], extraIngress: [{ports: [{port: http}]}]}",
        &[("role", "anyone")], true)]
    fn admission_follows_kubernetes_peer_semantics(
        #[case] yaml: &str,
        #[case] pod: &[(&str, &str)],
        #[case] admitted: bool,
    ) {
        let got = policy(yaml).admission(&labels(pod), &labels(NS));
        assert_eq!(
            matches!(got, Admission::Admitted(_)),
            admitted,
            "{yaml} on {pod:?}: {got:?}"
        );
        assert!(!matches!(got, Admission::Unknown(_)), "{got:?}");
    }

    #[test]
    fn an_ip_block_leaves_an_unpicked_pod_undecided() {
        let p =
            policy("networkPolicy: {enabled: true, allowedFrom: [{ipBlock: {cidr: 10.0.0.0/8}}]}");
        assert!(matches!(
            p.admission(&labels(&[("a", "b")]), &labels(NS)),
            Admission::Unknown(_)
        ));
        assert_eq!(p.admitted_labels(&labels(NS)), None);
    }

    #[test]
    fn admitted_labels_come_from_the_first_plain_pod_selector_that_admits() {
        let p = policy(
            "networkPolicy: {enabled: true, allowedFrom: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: apps}}, podSelector: {matchLabels: {x: y}}}, {podSelector: {matchLabels: {chromadb-client: 'true'}}}]}",
        );
        let (got, why) = p
            .admitted_labels(&labels(NS))
            .expect("the second peer admits");
        assert_eq!(got, labels(&[("chromadb-client", "true")]));
        assert!(why.contains("chromadb-client=true"), "{why}");
    }

    #[test]
    fn disabled_means_no_policy_and_a_bad_operator_names_the_key() {
        let off: Value = serde_yaml::from_str("networkPolicy: {enabled: false}").unwrap();
        assert_eq!(expected(&off, 8000, "http").unwrap(), None);
        let bad: Value = serde_yaml::from_str(
            "networkPolicy: {enabled: true, allowedFrom: [{podSelector: {matchExpressions: [{key: a, operator: Near}]}}]}",
        )
        .unwrap();
        let e = expected(&bad, 8000, "http").unwrap_err();
        assert_eq!(e.key, "networkPolicy.allowedFrom");
        assert!(e.reason.contains("Near"), "{e}");
    }
}
