//! Features turned on together (issue 22): what broke where two of them meet. Each group was
//! red on the chart before its fix; what must happen comes from the spec model
//! (`render::spec::*`) or the values, never from a render.

#[macro_use]
mod support;

use std::collections::{BTreeMap, BTreeSet};

use render::Rendered;
use render::spec::{self, tls::CaSource};
use rstest::rstest;
use serde_json::Value as Json;
use support::*;

const RELEASE: &str = "chroma";
/// helm's longest release name (it refuses 54 characters and more).
const LONGEST_RELEASE: &str = "a-release-name-of-fifty-three-characters-helm-allows1";

fn pod_templates(r: &Rendered) -> Vec<(String, String, &Json)> {
    let mut out = Vec::new();
    for d in &r.documents {
        let kind = d["kind"].as_str().unwrap_or_default().to_string();
        let name = d["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let tpl = match kind.as_str() {
            "CronJob" => &d["spec"]["jobTemplate"]["spec"]["template"],
            "Job" | "StatefulSet" | "Deployment" => &d["spec"]["template"],
            _ => continue,
        };
        out.push((kind, name, tpl));
    }
    out
}

fn labels_of(meta: &Json) -> BTreeMap<String, String> {
    meta["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn selects(selector: &Json, labels: &BTreeMap<String, String>) -> bool {
    let Some(sel) = selector.as_object().filter(|s| !s.is_empty()) else {
        return false;
    };
    sel.iter()
        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
}

/// The pod template of the chart's component pod: `backup` (the CronJob's), `restore`
/// (the post-install hook), `test` (the helm test hook).
fn component_pod<'a>(r: &'a Rendered, component: &str) -> Option<&'a Json> {
    r.documents.iter().find_map(|d| {
        let hook = d["metadata"]["annotations"]["helm.sh/hook"]
            .as_str()
            .unwrap_or_default();
        match (component, d["kind"].as_str()?, hook) {
            ("backup", "CronJob", _) => Some(&d["spec"]["jobTemplate"]["spec"]["template"]),
            ("restore", "Job", "post-install") | ("test", "Job", "test") => {
                Some(&d["spec"]["template"])
            }
            _ => None,
        }
    })
}

/// `ALL_JOBS` with `extra` deep-merged over it.
fn all_jobs(extra: &str) -> serde_yaml::Value {
    let mut values = yaml(ALL_JOBS);
    if !extra.is_empty() {
        spec::deep_merge(&mut values, &yaml(extra));
    }
    values
}

/// Backup, restore and the test hook next to a budget and a NetworkPolicy.
const ALL_JOBS: &str = r#"
backup: {enabled: true, storage: {pvc: {existingClaim: archives}}}
restore: {enabled: true}
podDisruptionBudget: {enabled: true}
networkPolicy: {enabled: true, allowedFrom: [{podSelector: {matchLabels: {role: client}}}]}
"#;

// 1. TLS x backup/restore ---------------------------------------------------------------

/// The CA volume of a backup or restore pod must serve the file the model names.
fn assert_ca_volume(what: &str, pod: &Json, ca: &CaSource, tls_secret: &str) {
    let dir = spec::BACKUP_CA_FILE.rsplit_once('/').expect("a path").0;
    let mount = pod["spec"]["containers"][0]["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["mountPath"] == dir)
        .unwrap_or_else(|| panic!("{what}: no CA mounted at {dir}"));
    assert_eq!(mount["readOnly"], true, "{what}: CA mount");
    let vol_name = mount["name"].as_str().expect("mount name");
    let vol = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == vol_name)
        .expect("the CA volume");
    let (field, name_key, name, key) = match ca {
        CaSource::Bundle { kind, name, key } if kind == "ConfigMap" => {
            ("configMap", "name", name.as_str(), key.as_str())
        }
        CaSource::Bundle { name, key, .. } => ("secret", "secretName", name.as_str(), key.as_str()),
        CaSource::CertificateSecret => ("secret", "secretName", tls_secret, "ca.crt"),
    };
    assert_eq!(
        vol[field][name_key], name,
        "{what}: CA from {field} {name}: {vol}"
    );
    assert_eq!(
        vol[field]["items"],
        serde_json::json!([{"key": key, "path": "ca.crt"}]),
        "{what}: CA key"
    );
}

fn env_of(pod: &Json, name: &str) -> Option<String> {
    pod["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str().map(str::to_string))
}

#[rustfmt::skip]
#[rstest]
#[case::backup_with_the_users_secret_on_0_6_3("0.6.3", "backup: {enabled: true}\ntls: {enabled: true, existingSecret: chroma-tls}", "backup")]
#[case::backup_with_cert_manager_on_1_5_0("1.5.0", "backup: {enabled: true}\ntls: {enabled: true, certManager: {enabled: true, issuerRef: {name: ca}}}", "backup")]
#[case::restore_with_a_ca_configmap_on_1_5_0("1.5.0", "restore: {enabled: true}\nbackup: {storage: {pvc: {existingClaim: b}}}\ntls: {enabled: true, existingSecret: s, caBundle: {name: corp-ca, key: root.pem}}", "restore")]
#[case::restore_with_a_ca_secret_on_0_4_24("0.4.24", "restore: {enabled: true}\nbackup: {storage: {pvc: {existingClaim: b}}}\ntls: {enabled: true, existingSecret: s, caBundle: {name: ca-secret, kind: Secret}}", "restore")]
#[case::plain_http_without_tls_on_1_5_0("1.5.0", "backup: {enabled: true}", "backup")]
fn backup_and_restore_call_the_service_with_the_deployments_scheme_and_ca(#[case] version: &str, #[case] values: &str, #[case] component: &str) {
    let case = suite().case_values(version, "tls x backup", yaml(values));
    let (e, r) = case.accepted().expect("accepted");
    let ca = if component == "backup" { e.backup.as_ref().expect("backup").ca.clone() } else { e.restore.as_ref().expect("restore").ca.clone() };
    let pod = component_pod(r, component).unwrap_or_else(|| panic!("{case}: no {component} pod"));
    let fullname = spec::fullname(&case.values, RELEASE).expect("valid");
    let scheme = if ca.is_some() { "https" } else { "http" };
    assert_eq!(env_of(pod, "CHROMA_BACKUP_URL"), Some(format!("{scheme}://{fullname}.default.svc:{}", e.port)), "{case}: the Service's scheme");
    match &ca {
        None => assert_eq!(env_of(pod, "CHROMA_BACKUP_CACERT"), None, "{case}: a CA without TLS"),
        Some(ca) => {
            assert_eq!(env_of(pod, "CHROMA_BACKUP_CACERT").as_deref(), Some(spec::BACKUP_CA_FILE), "{case}: the tool is told the CA");
            let tls_secret = match &e.tls.as_ref().expect("tls").source {
                spec::tls::CertSource::ExistingSecret(s) => s.clone(),
                spec::tls::CertSource::CertManager { .. } => spec::suffixed_name(&case.values, RELEASE, "tls").expect("valid"),
            };
            assert_ca_volume(&case.to_string(), pod, ca, &tls_secret);
        }
    }
}

// 2. Basic auth x read-only root --------------------------------------------------------

#[rstest]
#[case::first_basic_release("0.4.7")]
#[case::entrypoint_era("0.4.24")]
#[case::last_python_release("0.6.3")]
fn htpasswd_has_a_writable_temp_dir_under_the_read_only_root(#[case] version: &str) {
    let case = suite().case(version, "basic-auth");
    let (e, r) = case.accepted().expect("accepted");
    assert!(
        matches!(e.auth, render::Auth::Basic { .. }),
        "{case}: the model expects basic auth"
    );
    let init = r
        .init_container("htpasswd")
        .unwrap_or_else(|| panic!("{case}: no htpasswd init container"));
    let read_only = init
        .security_context
        .as_ref()
        .and_then(|s| s.read_only_root_filesystem)
        == Some(true);
    assert!(
        read_only,
        "{case}: the scenario keeps the chart's read-only root"
    );
    // htpasswd (apr) looks in $TMPDIR, then /tmp; with neither writable it exits 1.
    let tmpdir = init
        .env
        .iter()
        .flatten()
        .find(|v| v.name == "TMPDIR")
        .and_then(|v| v.value.clone())
        .unwrap_or_else(|| "/tmp".into());
    let mount = r.mount_for(init, &tmpdir).unwrap_or_else(|| {
        panic!("{case}: nothing writable at {tmpdir} in the htpasswd container")
    });
    assert_ne!(mount.read_only, Some(true), "{case}: {tmpdir} is read-only");
    let vol = r
        .volume(&mount.name)
        .unwrap_or_else(|| panic!("{case}: mount {} has no volume", mount.name));
    assert!(
        vol.empty_dir.is_some(),
        "{case}: the temp dir is not an emptyDir: {vol:?}"
    );
}

// 3. and 4. Job pods: their own labels; the NetworkPolicy admits them -------------------

#[rstest]
#[case::on_0_6_3("0.6.3", "")]
#[case::on_1_5_0_with_tls("1.5.0", "tls: {enabled: true, existingSecret: s}")]
#[case::common_component_label(
    "0.6.3",
    "commonLabels: {app.kubernetes.io/component: database, team: search}"
)]
fn chromas_selectors_pick_only_chromas_pod(#[case] version: &str, #[case] extra: &str) {
    let case = suite().case_values(version, "all jobs", all_jobs(extra));
    let (_, r) = case.accepted().expect("accepted");
    let mut selectors: Vec<(String, Json)> = Vec::new();
    for d in &r.documents {
        let name = format!(
            "{} {}",
            d["kind"].as_str().unwrap_or_default(),
            d["metadata"]["name"].as_str().unwrap_or_default()
        );
        match d["kind"].as_str() {
            Some("Service") if d["spec"]["selector"]["app.kubernetes.io/name"] == "chromadb" => {
                selectors.push((name, d["spec"]["selector"].clone()))
            }
            Some("PodDisruptionBudget") => {
                selectors.push((name, d["spec"]["selector"]["matchLabels"].clone()))
            }
            Some("NetworkPolicy") => {
                selectors.push((name, d["spec"]["podSelector"]["matchLabels"].clone()))
            }
            _ => {}
        }
    }
    assert_eq!(
        selectors.len(),
        4,
        "{case}: two Services, the budget and the policy: {selectors:?}"
    );
    let pods = pod_templates(r);
    assert!(
        pods.len() >= 4,
        "{case}: the StatefulSet, the CronJob, the restore and test Jobs: {}",
        pods.len()
    );
    for (kind, name, tpl) in &pods {
        let labels = labels_of(&tpl["metadata"]);
        for (sel_name, sel) in &selectors {
            assert_eq!(
                selects(sel, &labels),
                kind == "StatefulSet",
                "{case}: {sel_name} and the pod of {kind} {name} ({labels:?})"
            );
        }
    }
}

#[rstest]
#[case::on_0_6_3("0.6.3", "")]
#[case::common_component_label_on_1_5_0(
    "1.5.0",
    "commonLabels: {app.kubernetes.io/component: database}"
)]
#[case::pod_labels_of_the_jobs(
    "0.5.23",
    "backup: {podLabels: {app.kubernetes.io/component: x, team: t}}\ntests: {podLabels: {app.kubernetes.io/component: y}}"
)]
fn the_network_policy_admits_the_charts_own_api_clients(
    #[case] version: &str,
    #[case] extra: &str,
) {
    let case = suite().case_values(version, "all jobs", all_jobs(extra));
    let (_, r) = case.accepted().expect("accepted");
    let np = r
        .documents
        .iter()
        .find(|d| d["kind"] == "NetworkPolicy")
        .expect("NetworkPolicy");
    let from = np["spec"]["ingress"][0]["from"].as_array().expect("from");
    let want = spec::network_policy_chart_peers(&case.values, RELEASE).expect("valid");
    assert_eq!(
        want.len(),
        3,
        "{case}: the model admits test, backup and restore"
    );
    for component in ["backup", "restore", "test"] {
        let pod =
            component_pod(r, component).unwrap_or_else(|| panic!("{case}: no {component} pod"));
        let labels = labels_of(&pod["metadata"]);
        let admitted = from.iter().any(|peer| {
            peer.get("namespaceSelector").is_none()
                && peer.get("ipBlock").is_none()
                && selects(&peer["podSelector"]["matchLabels"], &labels)
        });
        assert!(
            admitted,
            "{case}: the {component} pod ({labels:?}) is shut out by {from:?}"
        );
        let selector = spec::component_selector(&case.values, RELEASE, component).expect("valid");
        for (k, v) in &selector {
            assert_eq!(labels.get(k), Some(v), "{case}: the {component} pod's {k}");
        }
    }
}

// 5. commonLabels stay out of the claim template ----------------------------------------

#[rstest]
#[case::common_labels("0.6.3", "commonLabels: {team: search, cost-center: '42'}")]
#[case::common_labels_on_the_rust_server(
    "1.5.0",
    "commonLabels: {team: search}\npodLabels: {pods: only}"
)]
fn common_labels_never_reach_the_claim_template(#[case] version: &str, #[case] values: &str) {
    let case = suite().case_values(version, "labels", yaml(values));
    let (_, r) = case.accepted().expect("accepted");
    let tpl = r
        .pvc_templates()
        .first()
        .unwrap_or_else(|| panic!("{case}: no claim template"));
    let labels = tpl.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels,
        spec::claim_template_labels(&case.values, RELEASE).expect("valid"),
        "{case}: the claim template's labels"
    );
    // They still reach every other object.
    let sts = r.statefulset().expect("statefulset");
    assert_eq!(
        sts.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("team"))
            .map(String::as_str),
        Some("search"),
        "{case}: the StatefulSet"
    );
}

// 6. Long names ---------------------------------------------------------------------------

const EVERYTHING_NAMED: &str = r#"
metrics: {enabled: true, serviceMonitor: {mode: force}}
tls: {enabled: true, certManager: {enabled: true, issuerRef: {name: ca}}}
backup: {enabled: true, storage: {type: s3, s3: {bucket: b, existingSecret: s}}}
restore: {enabled: true}
podDisruptionBudget: {enabled: true}
networkPolicy: {enabled: true, allowedFrom: [{podSelector: {}}]}
ingress: {enabled: true}
"#;

#[rstest]
#[case::python_server_with_basic_auth("0.6.3", "chromadb: {auth: {type: basic}}")]
#[case::python_server_with_token_auth_and_log_config("0.5.23", "")]
#[case::rust_server_behind_the_tls_proxy("1.5.0", "")]
#[case::name_override_of_63_characters(
    "1.5.0",
    "nameOverride: chromadb-with-a-name-override-of-sixty-three-characters-long"
)]
fn the_longest_release_name_gives_every_object_its_own_valid_name(
    #[case] version: &str,
    #[case] extra: &str,
) {
    assert_eq!(LONGEST_RELEASE.len(), 53);
    let s = suite();
    let values = yaml(&format!("{EVERYTHING_NAMED}{extra}"));
    let req = s
        .request(Some(&v(version)), &values)
        .release(LONGEST_RELEASE);
    let r = s
        .cache
        .render(&req)
        .unwrap_or_else(|e| panic!("{version}: {e}"));
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for d in &r.documents {
        let kind = d["kind"].as_str().unwrap_or_default().to_string();
        let name = d["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            seen.insert((kind.clone(), name.clone())),
            "{version}: two {kind}s named {name}"
        );
    }
    for (kind, name) in &seen {
        // Every name of the chart is a DNS label (Services must be; the rest follow suit).
        assert!(
            name.len() <= 63 && !name.ends_with('-'),
            "{version}: {kind} {name} ({} characters)",
            name.len()
        );
        // The controllers put `<name>-<hash>` into a 63-character label: 52 at most.
        if kind == "StatefulSet" || kind == "CronJob" {
            assert!(
                name.len() <= 52,
                "{version}: {kind} {name} has {} characters; its pods' revision label would not fit",
                name.len()
            );
        }
    }
    assert!(
        seen.iter().filter(|(k, _)| k == "Service").count() >= 3,
        "{version}: Chroma's two Services and the collector's: {seen:?}"
    );
    assert!(
        seen.iter().filter(|(k, _)| k == "ConfigMap").count() >= 3,
        "{version}: config, dashboard, collector: {seen:?}"
    );
    let sts = spec::statefulset_name(&values, LONGEST_RELEASE).expect("valid");
    assert!(
        seen.contains(&("StatefulSet".to_string(), sts.clone())),
        "{version}: the model names the StatefulSet {sts}: {seen:?}"
    );
}

// 7. One key once --------------------------------------------------------------------------

#[rstest]
#[case::release_label_in_common_and_monitor_labels(
    "commonLabels: {release: k}\nmetrics: {enabled: true, serviceMonitor: {mode: force, labels: {release: k}}, dashboard: {labels: {release: k}}}"
)]
#[case::monitor_label_repeating_a_chart_label(
    "metrics: {enabled: true, serviceMonitor: {mode: force, labels: {helm.sh/chart: mine}}, dashboard: {labels: {helm.sh/chart: mine}}}"
)]
#[case::pod_annotation_repeating_the_checksum(
    "podAnnotations: {checksum/config: mine, team: search}"
)]
fn a_label_or_annotation_given_twice_is_written_once(#[case] values: &str) {
    let case = suite().case_values("1.5.0", "labels given twice", yaml(values));
    // A duplicate key makes the render unreadable (the API server refuses it): accepted is the proof.
    let (_, r) = case.accepted().expect("accepted");
    for d in &r.documents {
        let labels = labels_of(&d["metadata"]);
        if let Some(v) = labels.get("release") {
            assert_eq!(v, "k", "{case}: {}", d["metadata"]["name"]);
        }
    }
    if let Some(pod) = r
        .statefulset()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.template.metadata.as_ref())
    {
        let ann = pod.annotations.clone().unwrap_or_default();
        assert_ne!(
            ann.get("checksum/config").map(String::as_str),
            Some("mine"),
            "{case}: the chart's checksum must stay the one that rolls the pod"
        );
    }
}

// 8. Refused at render, naming the key ------------------------------------------------------

#[rustfmt::skip]
#[rstest]
#[case::backup_access_mode_abbreviated("backup: {storage: {pvc: {accessModes: RWO}}}", "backup.storage.pvc.accessModes")]
#[case::data_access_mode_unknown("chromadb: {data: {accessModes: [ReadWriteOnce, Shared]}}", "chromadb.data.accessModes")]
#[case::volume_size_not_a_quantity("chromadb: {data: {volumeSize: abc}}", "chromadb.data.volumeSize")]
#[case::backup_size_not_a_quantity("backup: {storage: {pvc: {size: 5 gigabytes}}}", "backup.storage.pvc.size")]
#[case::time_zone_not_iana("backup: {enabled: true, timeZone: Mars/Base}", "backup.timeZone")]
#[case::monitor_interval_not_a_duration("metrics: {serviceMonitor: {interval: abc}}", "metrics.serviceMonitor.interval")]
#[case::monitor_timeout_not_a_duration("metrics: {serviceMonitor: {scrapeTimeout: 10 seconds}}", "metrics.serviceMonitor.scrapeTimeout")]
#[case::cert_manager_without_tls("tls: {certManager: {enabled: true, issuerRef: {name: ca}}}", "tls.certManager.enabled")]
#[case::load_balancer_ip_on_cluster_ip("service: {loadBalancerIP: 10.0.0.5}", "service.loadBalancerIP")]
#[case::source_ranges_on_node_port("service: {type: NodePort, loadBalancerSourceRanges: [10.0.0.0/8]}", "service.loadBalancerSourceRanges")]
#[case::annotations_without_a_service_account("serviceAccount: {create: false, annotations: {eks.amazonaws.com/role-arn: x}}", "serviceAccount.annotations")]
#[case::backup_account_annotations_without_create("backup: {serviceAccount: {annotations: {eks.amazonaws.com/role-arn: x}}}", "backup.serviceAccount.annotations")]
#[case::suspend_not_a_bool("backup: {suspend: later}", "backup.suspend")]
#[case::monitor_label_taking_a_selector_key("metrics: {enabled: true, serviceMonitor: {mode: force, labels: {app.kubernetes.io/instance: other}}}", "metrics.serviceMonitor.labels.app.kubernetes.io/instance")]
#[case::job_pod_label_taking_a_selector_key("backup: {enabled: true, podLabels: {app.kubernetes.io/name: chromadb}}", "backup.podLabels.app.kubernetes.io/name")]
fn values_that_would_reach_the_api_server_or_do_nothing_are_refused(#[case] values: &str, #[case] key: &str) {
    let values = yaml(values);
    let cases = parallel(&["0.4.3", "0.6.3", "1.5.0"], |ver| suite().case_values(ver, "refused", values.clone()));
    assert_ran(cases.len(), "three eras");
    for case in cases {
        let spec_err = case.expected.as_ref().err().unwrap_or_else(|| panic!("{case}: the model accepts {values:?}"));
        assert_eq!(spec_err.key, key, "{case}: the model blames another key ({spec_err})");
        let err = case.render.as_ref().err().unwrap_or_else(|| panic!("{case}: helm rendered {values:?}"));
        assert_names_key(&err.to_string(), key, &case.to_string());
    }
}

#[rstest]
#[case::iana_city("backup: {enabled: true, timeZone: America/Argentina/Buenos_Aires}")]
#[case::utc("backup: {enabled: true, timeZone: UTC}")]
#[case::access_mode_list(
    "chromadb: {data: {accessModes: [ReadWriteOncePod]}}\nbackup: {storage: {pvc: {accessModes: ReadWriteMany, size: 1.5Gi}}}"
)]
#[case::durations("metrics: {serviceMonitor: {interval: 1m30s, scrapeTimeout: 500ms}}")]
#[case::load_balancer_settings_on_a_load_balancer(
    "service: {type: LoadBalancer, loadBalancerIP: 10.0.0.5, loadBalancerSourceRanges: [10.0.0.0/8]}"
)]
fn their_valid_forms_are_accepted(#[case] values: &str) {
    let case = suite().case_values("1.5.0", "accepted forms", yaml(values));
    case.accepted().expect("accepted");
}

#[rstest]
#[case::ingress_body_size_zero(
    "ingress",
    "ingress: {enabled: true, annotations: {nginx.ingress.kubernetes.io/proxy-body-size: 0}}",
    "nginx.ingress.kubernetes.io/proxy-body-size",
    "0"
)]
#[case::service_boolean(
    "service",
    "service: {annotations: {service.beta.kubernetes.io/aws-load-balancer-internal: true}}",
    "service.beta.kubernetes.io/aws-load-balancer-internal",
    "true"
)]
#[case::pod_number(
    "pod",
    "podAnnotations: {prometheus.io/port: 8000}",
    "prometheus.io/port",
    "8000"
)]
#[case::service_account_number(
    "serviceaccount",
    "serviceAccount: {annotations: {x.example.com/n: 1}}",
    "x.example.com/n",
    "1"
)]
fn annotation_values_are_written_as_strings(
    #[case] site: &str,
    #[case] values: &str,
    #[case] key: &str,
    #[case] want: &str,
) {
    let case = suite().case_values("1.5.0", "annotation values", yaml(values));
    // An unquoted number or boolean is refused by the API server (and by the typed parse).
    let (_, r) = case.accepted().expect("accepted");
    let ann = match site {
        "ingress" => r
            .ingresses()
            .next()
            .and_then(|i| i.metadata.annotations.clone()),
        "service" => r
            .services()
            .next()
            .and_then(|s| s.metadata.annotations.clone()),
        "pod" => r
            .statefulset()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.clone()),
        _ => r
            .service_accounts()
            .next()
            .and_then(|s| s.metadata.annotations.clone()),
    }
    .unwrap_or_default();
    assert_eq!(
        ann.get(key).map(String::as_str),
        Some(want),
        "{case}: {site} annotations {ann:?}"
    );
}

// 9. Two releases --------------------------------------------------------------------------

fn dashboard_uid(release: &str, namespace: &str) -> (String, String) {
    let s = suite();
    let req = s
        .request(Some(&v("1.5.0")), &yaml("metrics: {enabled: true}"))
        .release(release)
        .namespace(namespace);
    let r = s
        .cache
        .render(&req)
        .unwrap_or_else(|e| panic!("{release}/{namespace}: {e}"));
    let cm = r
        .configmaps()
        .find(|c| {
            c.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.ends_with("-dashboard"))
        })
        .expect("dashboard ConfigMap");
    let json: Json = serde_json::from_str(&cm.data.as_ref().expect("data")["chroma.json"])
        .expect("dashboard JSON");
    (
        json["uid"].as_str().expect("uid").to_string(),
        json["title"].as_str().expect("title").to_string(),
    )
}

#[rstest]
#[case::two_releases_in_one_namespace(("search", "default"), ("recs", "default"))]
#[case::one_release_name_in_two_namespaces(("chroma", "team-a"), ("chroma", "team-b"))]
fn two_releases_get_two_dashboards(#[case] a: (&str, &str), #[case] b: (&str, &str)) {
    let (uid_a, title_a) = dashboard_uid(a.0, a.1);
    let (uid_b, title_b) = dashboard_uid(b.0, b.1);
    assert_ne!(uid_a, uid_b, "{a:?} and {b:?} share a dashboard uid");
    assert_ne!(
        title_a, title_b,
        "{a:?} and {b:?} share a dashboard title (Grafana keeps one per folder)"
    );
    assert!(
        uid_a.len() <= 40 && uid_b.len() <= 40,
        "Grafana refuses a uid over 40 characters: {uid_a}, {uid_b}"
    );
    assert_eq!(
        dashboard_uid(a.0, a.1).0,
        uid_a,
        "the uid must be stable across upgrades"
    );
}

#[rstest]
#[case::rust_server_with_the_collector_only("1.5.0")]
#[case::first_filtering_release("1.0.16")]
fn telemetry_filters_work_with_the_built_in_collector_alone(#[case] version: &str) {
    let values = yaml(
        "metrics: {enabled: true}\nchromadb: {telemetry: {filters: [{crate_name: chroma_frontend, filter_level: error}]}}",
    );
    let case = suite().case_values(version, "filters with the collector", values.clone());
    let (e, r) = case.accepted().expect("accepted");
    let render::Telemetry::Exported {
        filters, endpoint, ..
    } = &e.telemetry
    else {
        panic!("{case}: the model exports nothing: {:?}", e.telemetry)
    };
    assert_eq!(filters.len(), 1, "{case}: the model reads the filter");
    assert_eq!(
        endpoint,
        spec::CHART_COLLECTOR,
        "{case}: to the chart's collector"
    );
    let doc = r.server_config_doc().expect("1.x config");
    assert_eq!(
        at(&doc, "open_telemetry.filters"),
        spec::lookup(&values, "chromadb.telemetry.filters"),
        "{case}"
    );
}

// Names the model and the chart share ------------------------------------------------------

#[test]
fn the_model_and_the_chart_agree_on_the_statefulset_name_of_an_ordinary_release() {
    let case = suite().case("1.5.0", "defaults");
    let (_, r) = case.accepted().expect("accepted");
    let want = spec::statefulset_name(&case.values, RELEASE).expect("valid");
    assert_eq!(
        r.statefulset().and_then(|s| s.metadata.name.clone()),
        Some(want)
    );
}

// The knobs of every pod the chart makes --------------------------------------------------

/// Scheduling, metadata and resources for one pod, under the values key `prefix`.
fn pod_knobs(prefix: &str) -> serde_yaml::Value {
    let knobs = yaml(
        r#"
nodeSelector: {disk: ssd}
tolerations: [{key: dedicated, operator: Equal, value: batch, effect: NoSchedule}]
affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: In, values: [a]}]}]}}}
priorityClassName: batch-low
podAnnotations: {example.com/port: 9000, example.com/note: hi}
podLabels: {team: search}
resources: {limits: {cpu: 200m, memory: 64Mi}}
"#,
    );
    let mut root = serde_yaml::Mapping::new();
    let mut at = &mut root;
    let parts: Vec<&str> = prefix.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            at.insert((*p).into(), knobs.clone());
        } else {
            at = at
                .entry((*p).into())
                .or_insert(serde_yaml::Value::Mapping(Default::default()))
                .as_mapping_mut()
                .expect("map");
        }
    }
    serde_yaml::Value::Mapping(root)
}

#[rustfmt::skip]
#[rstest]
#[case::backup_cronjob("backup", "backup", "backup: {enabled: true}")]
#[case::restore_hook("backup", "restore", "restore: {enabled: true}\nbackup: {storage: {pvc: {existingClaim: b}}}")]
#[case::helm_test_pod("tests", "test", "")]
#[case::metrics_collector("metrics.collector", "collector", "metrics: {enabled: true}")]
fn every_pod_of_the_chart_takes_the_scheduling_and_metadata_knobs(#[case] prefix: &str, #[case] pod: &str, #[case] base: &str) {
    let mut values = if base.is_empty() { yaml("{}") } else { yaml(base) };
    spec::deep_merge(&mut values, &pod_knobs(prefix));
    let case = suite().case_values("1.5.0", &format!("{prefix} knobs"), values.clone());
    let (_, r) = case.accepted().expect("accepted");
    let tpl = match pod {
        "collector" => r.documents.iter().find(|d| d["kind"] == "Deployment").map(|d| &d["spec"]["template"]),
        other => component_pod(r, other),
    }
    .unwrap_or_else(|| panic!("{case}: no {pod} pod"));
    let want = |k: &str| serde_json::to_value(spec::lookup(&values, &format!("{prefix}.{k}")).expect("set")).expect("json");
    let spec_ = &tpl["spec"];
    for field in ["nodeSelector", "tolerations", "affinity", "priorityClassName"] {
        assert_eq!(spec_[field], want(field), "{case}: {pod} pod {field}");
    }
    assert_eq!(spec_["containers"][0]["resources"], want("resources"), "{case}: {pod} container resources");
    assert_eq!(spec_["automountServiceAccountToken"], false, "{case}: the {pod} pod never calls the Kubernetes API");
    let ann = &tpl["metadata"]["annotations"];
    assert_eq!((ann["example.com/port"].as_str(), ann["example.com/note"].as_str()), (Some("9000"), Some("hi")), "{case}: {pod} pod annotations, as strings");
    assert_eq!(tpl["metadata"]["labels"]["team"], "search", "{case}: {pod} pod labels");
    assert_ne!(tpl["metadata"]["labels"]["app.kubernetes.io/name"], "chromadb", "{case}: the {pod} pod must not carry Chroma's name label");
}

#[rustfmt::skip]
#[rstest]
#[case::created_and_annotated_for_irsa("backup: {enabled: true, serviceAccount: {create: true, annotations: {eks.amazonaws.com/role-arn: 'arn:aws:iam::123456789012:role/b'}}}\nrestore: {enabled: true}\nbackup_claim: x", true)]
#[case::an_existing_account_named("backup: {enabled: true, serviceAccount: {name: backup-runner}}\nrestore: {enabled: true}\nbackup_claim: x", false)]
#[case::created_with_its_own_name("backup: {enabled: true, serviceAccount: {create: true, name: chroma-backup-sa}}\nrestore: {enabled: true}\nbackup_claim: x", true)]
fn backup_pods_run_as_their_own_service_account(#[case] values: &str, #[case] created: bool) {
    let mut values = yaml(&values.replace("\nbackup_claim: x", ""));
    spec::deep_merge(&mut values, &yaml("backup: {storage: {pvc: {existingClaim: b}}}"));
    let case = suite().case_values("0.6.3", "backup service account", values);
    let (e, r) = case.accepted().expect("accepted");
    let want = e.backup.as_ref().expect("backup").service_account.clone().unwrap_or_else(|| panic!("{case}: the model expects an account"));
    let name = match &want {
        spec::BackupServiceAccount::Chart { name: Some(n) } | spec::BackupServiceAccount::Existing(n) => n.clone(),
        spec::BackupServiceAccount::Chart { name: None } => spec::suffixed_name(&case.values, RELEASE, "backup").expect("valid"),
    };
    assert_eq!(matches!(want, spec::BackupServiceAccount::Chart { .. }), created, "{case}: the model");
    for component in ["backup", "restore"] {
        let pod = component_pod(r, component).unwrap_or_else(|| panic!("{case}: no {component} pod"));
        assert_eq!(pod["spec"]["serviceAccountName"], name.as_str(), "{case}: the {component} pod's account");
    }
    let sa = r.service_accounts().find(|s| s.metadata.name.as_deref() == Some(name.as_str()));
    assert_eq!(sa.is_some(), created, "{case}: ServiceAccount {name} rendered");
    if let Some(sa) = sa {
        assert_eq!(sa.automount_service_account_token, Some(false), "{case}: no token for a tool that never calls the API");
        let want_ann = spec::lookup(&case.values, "backup.serviceAccount.annotations").and_then(|a| a.as_mapping()).map(|m| m.len()).unwrap_or(0);
        assert_eq!(sa.metadata.annotations.as_ref().map_or(0, |a| a.len()), want_ann, "{case}: annotations");
    }
}

#[rstest]
#[case::suspended("true", Some(true))]
#[case::suspended_as_a_string("\"True\"", Some(true))]
#[case::running_by_default("null", Some(false))]
fn backup_suspend_reaches_the_cronjob(#[case] suspend: &str, #[case] want: Option<bool>) {
    let case = suite().case_values(
        "1.5.0",
        "suspend",
        yaml(&format!("backup: {{enabled: true, suspend: {suspend}}}")),
    );
    let (_, r) = case.accepted().expect("accepted");
    let cj = r.cronjobs().next().expect("CronJob");
    assert_eq!(cj.spec.as_ref().and_then(|s| s.suspend), want, "{case}");
}

#[test]
fn claims_take_their_annotations() {
    let values = yaml(
        "chromadb: {data: {annotations: {backup.velero.io/backup-volumes: data, example.com/copies: 1}}}\nbackup: {enabled: true, storage: {pvc: {annotations: {snapshot.example.com/class: daily}}}}",
    );
    let case = suite().case_values("0.6.3", "claim annotations", values);
    let (_, r) = case.accepted().expect("accepted");
    let tpl = r
        .pvc_templates()
        .first()
        .expect("claim template")
        .metadata
        .annotations
        .clone()
        .unwrap_or_default();
    assert_eq!(
        (
            tpl.get("backup.velero.io/backup-volumes")
                .map(String::as_str),
            tpl.get("example.com/copies").map(String::as_str)
        ),
        (Some("data"), Some("1")),
        "data claim template"
    );
    let backup = r
        .claims()
        .next()
        .expect("backup claim")
        .metadata
        .annotations
        .clone()
        .unwrap_or_default();
    assert_eq!(
        backup.get("snapshot.example.com/class").map(String::as_str),
        Some("daily"),
        "backup claim"
    );
    assert_eq!(
        backup.get("helm.sh/resource-policy").map(String::as_str),
        Some("keep"),
        "backups still outlive the release"
    );
}

#[test]
fn the_service_monitor_takes_timeout_and_relabelings() {
    let values = yaml(
        "metrics: {enabled: true, serviceMonitor: {mode: force, interval: 1m, scrapeTimeout: 20s, relabelings: [{targetLabel: cluster, replacement: eu-1}], metricRelabelings: [{sourceLabels: [__name__], regex: 'go_.*', action: drop}]}}",
    );
    let case = suite().case_values("1.5.0", "monitor knobs", values.clone());
    let (_, r) = case.accepted().expect("accepted");
    let sm = r
        .documents
        .iter()
        .find(|d| d["kind"] == "ServiceMonitor")
        .expect("ServiceMonitor");
    let ep = &sm["spec"]["endpoints"][0];
    let want = |k: &str| {
        serde_json::to_value(
            spec::lookup(&values, &format!("metrics.serviceMonitor.{k}")).expect("set"),
        )
        .expect("json")
    };
    for k in [
        "interval",
        "scrapeTimeout",
        "relabelings",
        "metricRelabelings",
    ] {
        assert_eq!(ep[k], want(k), "endpoint {k}");
    }
}

#[rstest]
#[case::ingress_only(
    "networkPolicy: {extraIngress: [{ports: [{port: 9090}], from: [{namespaceSelector: {}}]}]}",
    false
)]
#[case::with_egress(
    "networkPolicy: {extraEgress: [{to: [{namespaceSelector: {}}], ports: [{port: 53, protocol: UDP}]}]}",
    true
)]
fn the_network_policy_takes_extra_rules(#[case] extra: &str, #[case] egress: bool) {
    let mut values = yaml(
        "networkPolicy: {enabled: true, allowedFrom: [{podSelector: {matchLabels: {role: client}}}]}",
    );
    spec::deep_merge(&mut values, &yaml(extra));
    let case = suite().case_values("0.6.3", "policy rules", values.clone());
    let (_, r) = case.accepted().expect("accepted");
    let np = r
        .documents
        .iter()
        .find(|d| d["kind"] == "NetworkPolicy")
        .expect("NetworkPolicy");
    let types: Vec<&str> = np["spec"]["policyTypes"]
        .as_array()
        .expect("types")
        .iter()
        .filter_map(Json::as_str)
        .collect();
    assert_eq!(
        types.contains(&"Egress"),
        egress,
        "{case}: policyTypes {types:?}"
    );
    let ingress = np["spec"]["ingress"].as_array().expect("ingress");
    let extra_in = spec::lookup(&values, "networkPolicy.extraIngress")
        .map(|v| serde_json::to_value(v).expect("json"));
    match extra_in {
        Some(Json::Array(rules)) => assert_eq!(
            &ingress[1..],
            rules.as_slice(),
            "{case}: extra ingress after the API rule"
        ),
        _ => assert_eq!(ingress.len(), 1, "{case}: only the API rule"),
    }
    let extra_out = spec::lookup(&values, "networkPolicy.extraEgress")
        .map(|v| serde_json::to_value(v).expect("json"));
    assert_eq!(
        np["spec"].get("egress").cloned(),
        extra_out,
        "{case}: egress rules"
    );
}
