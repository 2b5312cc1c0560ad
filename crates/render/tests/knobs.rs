//! The production knobs: names, probes, pod extras, scheduling, Services, the optional
//! PodDisruptionBudget and NetworkPolicy, and an existing claim. Expectations come from the
//! spec model (`render::spec::*`) or straight from the values.

#[macro_use]
mod support;

use render::spec::{self, DataVolume};
use render::{ProbeKind, Rendered};
use rstest::rstest;
use serde_yaml::Value;
use support::*;

const RELEASE: &str = "chroma";

fn json(v: &Value) -> serde_json::Value {
    serde_json::to_value(v).expect("values are JSON")
}

fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("serialisable")
}

fn doc<'a>(r: &'a Rendered, kind: &str) -> Option<&'a serde_json::Value> {
    r.documents.iter().find(|d| d["kind"] == kind)
}

fn probe_name(kind: ProbeKind) -> &'static str {
    match kind {
        ProbeKind::Startup => "startupProbe",
        ProbeKind::Readiness => "readinessProbe",
        ProbeKind::Liveness => "livenessProbe",
    }
}

each_version! {
    /// Probe kinds and timings follow the model (documented defaults, the knobs' overrides).
    fn probes_follow_the_model(version) {
        for case in suite().accepted(version, &["defaults", "knobs"]) {
            let (_, r) = case.accepted().expect("accepted");
            let want = spec::probes(&case.values).expect("valid");
            assert!(!want.is_empty(), "{case}: the model expects probes");
            let c = r.chroma_container().expect("chromadb container");
            let got = r.probes(c);
            let mut kinds: Vec<&str> = got.iter().map(|(k, _)| probe_name(*k)).collect();
            let mut want_kinds: Vec<&str> = want.iter().map(|p| p.kind).collect();
            kinds.sort_unstable();
            want_kinds.sort_unstable();
            assert_eq!(kinds, want_kinds, "{case}: probe kinds");
            for p in &want {
                let (_, probe) = got.iter().find(|(k, _)| probe_name(*k) == p.kind).expect("kind present");
                assert!(probe.http_get.is_some(), "{case}: {} is not httpGet", p.kind);
                assert_eq!(probe.initial_delay_seconds.map(i64::from).unwrap_or(0), p.initial_delay_seconds, "{case}: {}", p.kind);
                assert_eq!(probe.period_seconds.map(i64::from).unwrap_or(10), p.period_seconds, "{case}: {}", p.kind);
                assert_eq!(probe.timeout_seconds.map(i64::from).unwrap_or(1), p.timeout_seconds, "{case}: {}", p.kind);
                assert_eq!(probe.failure_threshold.map(i64::from).unwrap_or(3), p.failure_threshold, "{case}: {}", p.kind);
            }
        }
    }
}

each_version! {
    /// nameOverride / fullnameOverride: every object and the name label.
    fn names_follow_the_overrides(version) {
        for case in suite().accepted(version, &["defaults", "knobs"]) {
            let (_, r) = case.accepted().expect("accepted");
            let full = spec::fullname(&case.values, RELEASE).expect("valid");
            let name = spec::name(&case.values).expect("valid");
            let sts = r.statefulset().expect("statefulset");
            assert_eq!(sts.metadata.name.as_deref(), Some(full.as_str()), "{case}: StatefulSet name");
            assert!(r.services().any(|s| s.metadata.name.as_deref() == Some(full.as_str())), "{case}: no Service {full}");
            assert_eq!(r.selector().get("app.kubernetes.io/name"), Some(&name), "{case}: name label");
        }
    }
}

each_version! {
    /// The client Service carries the model's type and external settings; a headless Service
    /// is the StatefulSet's serviceName.
    fn services_follow_the_model(version) {
        for case in suite().accepted(version, &["defaults", "knobs"]) {
            let (e, r) = case.accepted().expect("accepted");
            let want = spec::service(&case.values).expect("valid");
            let full = spec::fullname(&case.values, RELEASE).expect("valid");
            let svc = r.services().find(|s| s.metadata.name.as_deref() == Some(full.as_str())).expect("client Service");
            let s = svc.spec.as_ref().expect("spec");
            assert_eq!(s.type_.as_deref(), Some(want.type_.as_str()), "{case}: type");
            let port = &s.ports.as_ref().expect("ports")[0];
            assert_eq!(port.node_port.map(i64::from), want.node_port, "{case}: nodePort");
            assert_eq!(s.load_balancer_ip, want.load_balancer_ip, "{case}: loadBalancerIP");
            assert_eq!(s.load_balancer_source_ranges.clone().unwrap_or_default(), want.load_balancer_source_ranges, "{case}");
            assert_eq!(s.external_traffic_policy, want.external_traffic_policy, "{case}: externalTrafficPolicy");
            let headless_name = spec::headless_service(&case.values, RELEASE).expect("valid");
            let headless = r.services().find(|s| s.metadata.name.as_deref() == Some(headless_name.as_str()))
                .unwrap_or_else(|| panic!("{case}: no headless Service {headless_name}"));
            let hs = headless.spec.as_ref().expect("spec");
            assert_eq!(hs.cluster_ip.as_deref(), Some("None"), "{case}: headless");
            assert_eq!(hs.ports.as_ref().expect("ports")[0].port, i32::from(e.port), "{case}: headless port");
            assert_eq!(hs.selector.clone().unwrap_or_default(), r.selector(), "{case}: headless selector");
            let sts = r.statefulset().and_then(|s| s.spec.as_ref()).expect("statefulset spec");
            assert_eq!(sts.service_name.as_deref(), Some(headless_name.as_str()), "{case}: serviceName");
        }
    }
}

each_version! {
    /// extraEnv/extraEnvFrom/extraVolumes/extraVolumeMounts/initContainers/sidecars are passed
    /// through as given, after the chart's own entries.
    fn pod_extras_are_passed_through_after_the_charts_own(version) {
        let case = suite().case(version, "knobs");
        let (_, r) = case.accepted().expect("accepted");
        let vals = &case.values;
        let list = |k: &str| spec::lookup(vals, k).and_then(Value::as_sequence).cloned().unwrap_or_default();
        let pod = r.pod_spec().expect("pod spec");
        let c = r.chroma_container().expect("chromadb container");

        let env = to_json(&c.env.clone().unwrap_or_default());
        let env = env.as_array().expect("env list");
        let extra_env = list("extraEnv");
        assert!(!extra_env.is_empty(), "{case}: the scenario sets extraEnv");
        assert_eq!(&env[env.len() - extra_env.len()..], json(&Value::Sequence(extra_env)).as_array().expect("list").as_slice(), "{case}: extraEnv last");
        assert_eq!(to_json(&c.env_from.clone().unwrap_or_default()), json(&Value::Sequence(list("extraEnvFrom"))), "{case}: envFrom");

        let mounts = to_json(&c.volume_mounts.clone().unwrap_or_default());
        let extra_mounts = json(&Value::Sequence(list("extraVolumeMounts")));
        let mounts = mounts.as_array().expect("mounts");
        assert_eq!(&mounts[mounts.len() - 1..], extra_mounts.as_array().expect("list").as_slice(), "{case}: extraVolumeMounts");
        let volumes = to_json(&pod.volumes.clone().unwrap_or_default());
        let volumes = volumes.as_array().expect("volumes");
        assert_eq!(&volumes[volumes.len() - 1..], json(&Value::Sequence(list("extraVolumes"))).as_array().expect("list").as_slice(), "{case}: extraVolumes");

        let inits = to_json(&pod.init_containers.clone().unwrap_or_default());
        let inits = inits.as_array().expect("init containers");
        assert_eq!(inits.last(), json(&Value::Sequence(list("initContainers"))).as_array().expect("list").last(), "{case}: initContainers last");
        assert_eq!(pod.containers.first().map(|c| c.name.as_str()), Some("chromadb"), "{case}: chromadb stays the first container");
        let containers = to_json(&pod.containers);
        assert_eq!(&containers.as_array().expect("containers")[1..], json(&Value::Sequence(list("sidecars"))).as_array().expect("list").as_slice(), "{case}: sidecars");
    }
}

each_version! {
    /// Scheduling and lifecycle knobs land on the pod and the StatefulSet as given.
    fn scheduling_knobs_follow_the_values(version) {
        for case in suite().accepted(version, &["defaults", "knobs"]) {
            let (_, r) = case.accepted().expect("accepted");
            let vals = &case.values;
            let pod = r.pod_spec().expect("pod spec");
            let grace = spec::parse_int(vals, "terminationGracePeriodSeconds").expect("valid").unwrap_or(30);
            assert_eq!(pod.termination_grace_period_seconds, Some(grace), "{case}: terminationGracePeriodSeconds");
            let prio = spec::parse_str(vals, "priorityClassName", "").expect("valid");
            assert_eq!(pod.priority_class_name.as_deref().unwrap_or(""), prio, "{case}: priorityClassName");
            let spread = spec::lookup(vals, "topologySpreadConstraints").map(json).unwrap_or(serde_json::json!([]));
            assert_eq!(to_json(&pod.topology_spread_constraints.clone().unwrap_or_default()), spread, "{case}: topologySpreadConstraints");
            let sts = r.statefulset().and_then(|s| s.spec.as_ref()).expect("statefulset spec");
            let strategy = spec::lookup(vals, "updateStrategy").map(json);
            assert_eq!(sts.update_strategy.as_ref().map(to_json), strategy, "{case}: updateStrategy");
        }
    }
}

each_version! {
    /// The PodDisruptionBudget and NetworkPolicy exist exactly when the model says.
    fn budget_and_network_policy_follow_the_model(version) {
        for case in suite().accepted(version, &["defaults", "knobs"]) {
            let (e, r) = case.accepted().expect("accepted");
            let pdb = doc(r, "PodDisruptionBudget");
            match spec::disruption_budget(&case.values).expect("valid") {
                None => assert!(pdb.is_none(), "{case}: unexpected PodDisruptionBudget"),
                Some(spec::Budget { min_available: min, max_unavailable: max }) => {
                    let pdb = pdb.unwrap_or_else(|| panic!("{case}: no PodDisruptionBudget"));
                    assert_eq!(pdb["spec"].get("minAvailable").cloned(), min.as_ref().map(json), "{case}: minAvailable");
                    assert_eq!(pdb["spec"].get("maxUnavailable").cloned(), max.as_ref().map(json), "{case}: maxUnavailable");
                    assert_eq!(pdb["spec"]["selector"]["matchLabels"], to_json(&r.selector()), "{case}: budget selector");
                }
            }
            let np = doc(r, "NetworkPolicy");
            match spec::network_policy_peers(&case.values).expect("valid") {
                None => assert!(np.is_none(), "{case}: unexpected NetworkPolicy"),
                Some(peers) => {
                    let np = np.unwrap_or_else(|| panic!("{case}: no NetworkPolicy"));
                    assert_eq!(np["spec"]["podSelector"]["matchLabels"], to_json(&r.selector()), "{case}: policy selects the pod");
                    let rule = &np["spec"]["ingress"][0];
                    let from = rule["from"].as_array().expect("from");
                    let users = json(&Value::Sequence(peers));
                    let users = users.as_array().expect("peers");
                    assert_eq!(&from[..users.len()], users.as_slice(), "{case}: allowed peers");
                    let ours: Vec<serde_json::Value> = spec::network_policy_chart_peers(&case.values, RELEASE).expect("valid").iter().map(|sel| serde_json::json!({"podSelector": {"matchLabels": sel}})).collect();
                    assert_eq!(&from[users.len()..], ours.as_slice(), "{case}: the chart's own API clients (helm test, backup, restore) by their own labels");
                    let port = &rule["ports"][0]["port"];
                    let container_port = r.chroma_container().and_then(|c| c.ports.as_ref()).and_then(|p| p.iter().find(|p| p.container_port == i32::from(e.port))).and_then(|p| p.name.clone());
                    assert_eq!(port.as_str(), container_port.as_deref(), "{case}: the policy opens the API port");
                }
            }
        }
    }
}

each_version! {
    /// chromadb.data.existingClaim: the pod mounts the user's claim; no claim template.
    fn existing_claim_replaces_the_claim_template(version) {
        let case = suite().case(version, "existing-claim");
        let (e, r) = case.accepted().expect("accepted");
        let DataVolume::ExistingClaim { name } = &e.data_volume else { panic!("{case}: the model has no existing claim") };
        assert!(r.pvc_templates().is_empty(), "{case}: a claim template was rendered too");
        let vol = r.volume("data").unwrap_or_else(|| panic!("{case}: no data volume"));
        let claim = vol.persistent_volume_claim.as_ref().unwrap_or_else(|| panic!("{case}: data is not a claim"));
        assert_eq!(&claim.claim_name, name, "{case}");
        assert!(e.survives_restart, "{case}: the model says the data survives");
    }
}

#[rustfmt::skip]
#[rstest]
#[case::budget_with_both_limits("podDisruptionBudget: {enabled: true, minAvailable: 1, maxUnavailable: 1}", "podDisruptionBudget.minAvailable")]
#[case::budget_with_no_limit("podDisruptionBudget: {enabled: true, maxUnavailable: null}", "podDisruptionBudget.minAvailable")]
#[case::network_policy_without_peers("networkPolicy: {enabled: true}", "networkPolicy.allowedFrom")]
#[case::node_port_on_cluster_ip("service: {nodePort: 30080}", "service.nodePort")]
#[case::node_port_out_of_range("service: {type: NodePort, nodePort: 70000}", "service.nodePort")]
#[case::unknown_traffic_policy("service: {type: NodePort, externalTrafficPolicy: Nearest}", "service.externalTrafficPolicy")]
#[case::probe_period_zero("livenessProbe: {periodSeconds: 0}", "livenessProbe.periodSeconds")]
#[case::probe_enabled_not_a_bool("readinessProbe: {enabled: perhaps}", "readinessProbe.enabled")]
#[case::negative_grace_period("terminationGracePeriodSeconds: -1", "terminationGracePeriodSeconds")]
#[case::extra_env_not_a_list("extraEnv: {A: b}", "extraEnv")]
fn bad_knob_values_fail_naming_the_key(#[case] values: &str, #[case] key: &str) {
    let values = yaml(values);
    let cases = parallel(&["0.4.3", "0.6.3", "1.5.0"], |ver| suite().case_values(ver, "bad knob", values.clone()));
    for case in cases {
        let spec_err = case.expected.as_ref().err().unwrap_or_else(|| panic!("{case}: the model accepts {values:?}"));
        assert_eq!(spec_err.key, key, "{case}: the model blames another key");
        let err = case.render.as_ref().err().unwrap_or_else(|| panic!("{case}: helm rendered {values:?}"));
        assert_names_key(&err.to_string(), key, &case.to_string());
    }
}
