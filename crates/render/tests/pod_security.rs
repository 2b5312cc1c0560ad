//! Restricted Pod Security by default (issue 11): every pod the chart renders — the server
//! with its init container, and the `helm test` Job — meets the `restricted` Pod Security
//! Standard with the chart's defaults, and every part of it can be overridden.
//!
//! The rules below are the Standard's (kubernetes.io "Pod Security Standards", restricted
//! profile), written down once here; they are not read from the chart's values.

#[macro_use]
mod support;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use render::Rendered;
use serde_yaml::Value;
use support::*;

/// The pods of a render: the StatefulSet's template and each Job's.
fn pods(r: &Rendered) -> Vec<(String, PodSpec)> {
    let mut out = Vec::new();
    for s in r.statefulsets() {
        let spec = s
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.clone())
            .expect("StatefulSet pod spec");
        out.push((
            format!(
                "StatefulSet/{}",
                s.metadata.name.clone().unwrap_or_default()
            ),
            spec,
        ));
    }
    for j in r.jobs() {
        let spec = j
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.clone())
            .expect("Job pod spec");
        out.push((
            format!("Job/{}", j.metadata.name.clone().unwrap_or_default()),
            spec,
        ));
    }
    for c in r.cronjobs() {
        let spec = c
            .spec
            .as_ref()
            .and_then(|s| s.job_template.spec.as_ref())
            .and_then(|j| j.template.spec.clone())
            .expect("CronJob pod spec");
        out.push((
            format!("CronJob/{}", c.metadata.name.clone().unwrap_or_default()),
            spec,
        ));
    }
    out
}

/// Every way `c` in `pod` breaks the restricted profile.
fn restricted_violations(pod: &PodSpec, c: &Container) -> Vec<String> {
    let psc = pod.security_context.clone().unwrap_or_default();
    let sc = c.security_context.clone().unwrap_or_default();
    let mut v = Vec::new();
    if sc.run_as_non_root.or(psc.run_as_non_root) != Some(true) {
        v.push("runAsNonRoot is not true".to_string());
    }
    if sc.run_as_user.or(psc.run_as_user) == Some(0) {
        v.push("runAsUser is 0".to_string());
    }
    if sc.allow_privilege_escalation != Some(false) {
        v.push("allowPrivilegeEscalation is not false".to_string());
    }
    if sc.privileged == Some(true) {
        v.push("privileged".to_string());
    }
    let caps = sc.capabilities.clone().unwrap_or_default();
    if !caps.drop.unwrap_or_default().iter().any(|d| d == "ALL") {
        v.push("capabilities.drop lacks ALL".to_string());
    }
    if caps
        .add
        .unwrap_or_default()
        .iter()
        .any(|a| a != "NET_BIND_SERVICE")
    {
        v.push("capabilities.add beyond NET_BIND_SERVICE".to_string());
    }
    let seccomp = sc.seccomp_profile.or(psc.seccomp_profile).map(|p| p.type_);
    if !matches!(
        seccomp.as_deref(),
        Some("RuntimeDefault") | Some("Localhost")
    ) {
        v.push(format!(
            "seccompProfile is {seccomp:?}, not RuntimeDefault or Localhost"
        ));
    }
    v
}

each_version! {
    /// Defaults and basic auth (which adds the htpasswd init container): every container of
    /// every pod meets the restricted profile, and no pod mounts a hostPath.
    fn every_pod_meets_the_restricted_profile_by_default(version) {
        let mut checked = 0;
        for case in suite().accepted(version, &["defaults", "basic-auth", "backup-pvc", "restore-s3"]) {
            let (_, r) = case.accepted().expect("accepted");
            for (name, pod) in pods(r) {
                assert!(pod.volumes.iter().flatten().all(|v| v.host_path.is_none()), "{case}: {name} mounts a hostPath");
                for c in pod.init_containers.iter().flatten().chain(&pod.containers) {
                    let broken = restricted_violations(&pod, c);
                    assert!(broken.is_empty(), "{case}: {name} container `{}`: {}", c.name, broken.join("; "));
                    checked += 1;
                }
            }
        }
        assert_ran(checked, "containers checked against the restricted profile");
    }
}

each_version! {
    /// The user's own security contexts replace the defaults key by key: the server runs as
    /// the uid, group and fsGroup the values give, and a key set to null is gone.
    fn security_contexts_follow_the_values(version) {
        let values = yaml("podSecurityContext: {runAsUser: 2000, runAsGroup: 3000, fsGroup: 4000, seccompProfile: null}\nsecurityContext: {readOnlyRootFilesystem: true}");
        let case = suite().case_values(version, "custom-ids", values.clone());
        let (_, r) = case.accepted().expect("accepted");
        let pod = r.pod_spec().expect("pod spec");
        let psc = pod.security_context.clone().expect("pod securityContext");
        let want = |k: &str| at(&values, &format!("podSecurityContext.{k}")).and_then(Value::as_i64);
        assert_eq!((psc.run_as_user, psc.run_as_group, psc.fs_group), (want("runAsUser"), want("runAsGroup"), want("fsGroup")), "{case}");
        assert!(psc.seccomp_profile.is_none(), "{case}: seccompProfile set to null is still rendered");
        let server = r.chroma_container().expect("chroma container");
        let sc = server.security_context.clone().expect("container securityContext");
        assert_eq!(sc.read_only_root_filesystem, at(&values, "securityContext.readOnlyRootFilesystem").and_then(Value::as_bool), "{case}");
    }
}
