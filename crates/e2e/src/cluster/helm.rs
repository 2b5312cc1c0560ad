//! helm against a live cluster: `upgrade --install`, `upgrade`, `test`. The arguments come from
//! the same [`RenderRequest`] the render suite and the process backend use, so what is
//! installed is exactly what was rendered and checked.

use std::path::{Path, PathBuf};
use std::time::Duration;

use render::{Helm, RenderRequest};

use crate::backend::BackendError;

/// Which cluster helm talks to; the same one the kube client uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelmTarget {
    /// `--kubeconfig` (k3s: the rewritten copy); `None` = helm reads `$KUBECONFIG` itself.
    pub kubeconfig: Option<PathBuf>,
    /// `--kube-context`, pinned at start so a context switch mid-run cannot redirect helm.
    pub context: Option<String>,
}

impl HelmTarget {
    fn push(&self, args: &mut Vec<String>) {
        if let Some(k) = &self.kubeconfig {
            args.extend(["--kubeconfig".into(), k.display().to_string()]);
        }
        if let Some(c) = &self.context {
            args.extend(["--kube-context".into(), c.clone()]);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Install {
    /// `helm upgrade --install --create-namespace`: the first deploy.
    Fresh,
    /// `helm upgrade`: the release must exist (upgrade scenarios).
    Upgrade,
}

/// `--timeout` in the form helm parses (`300s`).
pub fn helm_duration(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

/// The arguments after `helm` for installing/upgrading `req` into `namespace`. Inline values
/// documents are written to `dir` (one file each, in order) and passed after the values
/// files, as `helm template` gets them. Template-only knobs of the request (`api_versions`,
/// `kube_version`, `include_tests`) have no meaning against a live API server and are left out.
pub fn upgrade_args(
    req: &RenderRequest,
    namespace: &str,
    mode: Install,
    timeout: Duration,
    target: &HelmTarget,
    dir: &Path,
) -> Result<Vec<String>, BackendError> {
    let mut args = vec!["upgrade".to_string()];
    if mode == Install::Fresh {
        args.push("--install".into());
    }
    args.extend([req.release.clone(), req.chart.display().to_string()]);
    args.extend(["--namespace".into(), namespace.to_string()]);
    if mode == Install::Fresh {
        args.push("--create-namespace".into());
    }
    // Bare `--wait` means "watch until ready" on helm 3 and 4 alike (4 spells it --wait=watcher).
    args.extend(["--wait".into(), "--timeout".into(), helm_duration(timeout)]);
    target.push(&mut args);
    for f in &req.values_files {
        args.extend(["--values".into(), f.display().to_string()]);
    }
    for (i, doc) in req.values.iter().enumerate() {
        let path = dir.join(format!("inline-{i}.yaml"));
        let text = serde_yaml::to_string(doc).map_err(|e| BackendError::Failed {
            what: format!("writing inline values #{i} for helm"),
            detail: e.to_string(),
        })?;
        std::fs::write(&path, text).map_err(|source| BackendError::Io {
            context: format!("write {}", path.display()),
            source,
        })?;
        args.extend(["--values".into(), path.display().to_string()]);
    }
    if let Some(v) = &req.version {
        args.extend(["--set-string".into(), format!("chromadb.apiVersion={v}")]);
    }
    for (k, v) in &req.sets {
        args.extend(["--set".into(), format!("{k}={v}")]);
    }
    for (k, v) in &req.set_strings {
        args.extend(["--set-string".into(), format!("{k}={v}")]);
    }
    Ok(args)
}

/// `helm uninstall <release> --wait`: the release's objects are gone when it returns.
pub fn uninstall_args(
    release: &str,
    namespace: &str,
    timeout: Duration,
    target: &HelmTarget,
) -> Vec<String> {
    let mut args = vec![
        "uninstall".to_string(),
        release.to_string(),
        "--namespace".into(),
        namespace.to_string(),
        "--wait".into(),
        "--timeout".into(),
        helm_duration(timeout),
    ];
    target.push(&mut args);
    args
}

/// `helm test <release>`, deliberately without `--logs`: helm reads logs from a pod named
/// exactly like the hook, but the chart's hook is a Job whose pod is `<job>-xxxxx`, so
/// `--logs` turns every run into "pods not found" (helm/helm#11236, #9264). The hook pods'
/// logs are read by the `job-name` label instead ([`super::hooks`]).
pub fn test_args(
    release: &str,
    namespace: &str,
    timeout: Duration,
    target: &HelmTarget,
) -> Vec<String> {
    let mut args = vec![
        "test".to_string(),
        release.to_string(),
        "--namespace".into(),
        namespace.to_string(),
        "--timeout".into(),
        helm_duration(timeout),
    ];
    target.push(&mut args);
    args
}

/// Runs helm to completion; `Err(output)` carries stdout and stderr when it exits non-zero.
pub async fn run(helm: &Helm, args: &[String]) -> Result<String, String> {
    tracing::debug!(helm = %helm.path().display(), ?args, "helm");
    let mut cmd = tokio::process::Command::from(helm.command());
    cmd.args(args)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    let out = cmd
        .output()
        .await
        .map_err(|e| format!("could not run {}: {e}", helm.path().display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(match (stdout.is_empty(), stderr.is_empty()) {
            (_, true) => format!("helm exited with {}: {stdout}", out.status),
            (true, false) => stderr,
            (false, false) => format!("{stderr}\n{stdout}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use render::ChromaVersion;

    use super::*;

    fn request() -> RenderRequest {
        RenderRequest::new("/repo/charts/chromadb")
            .version("0.5.20".parse::<ChromaVersion>().expect("version"))
            .values_file("/repo/fixtures/values/token-auth.yaml")
            .values(serde_yaml::from_str("chromadb:\n  allowReset: true\n").expect("yaml"))
            .set("chromadb.maxPayloadBytes", "1048576")
            .set_string("chromadb.auth.token.headerType", "X_CHROMA_TOKEN")
            .api_version("networking.k8s.io/v1/Ingress")
            .kube_version("1.33.0")
    }

    fn k3s_target() -> HelmTarget {
        HelmTarget {
            kubeconfig: Some("/tmp/run-x/kubeconfig".into()),
            context: None,
        }
    }

    #[test]
    fn fresh_install_is_upgrade_install_with_wait_and_everything_from_the_request() {
        let dir = tempfile::tempdir().expect("temp dir");
        let args = upgrade_args(
            &request(),
            "chroma-e2e-a-xyz",
            Install::Fresh,
            Duration::from_secs(300),
            &k3s_target(),
            dir.path(),
        )
        .expect("args");
        let inline = dir.path().join("inline-0.yaml").display().to_string();
        assert_eq!(
            args,
            [
                "upgrade",
                "--install",
                "chroma",
                "/repo/charts/chromadb",
                "--namespace",
                "chroma-e2e-a-xyz",
                "--create-namespace",
                "--wait",
                "--timeout",
                "300s",
                "--kubeconfig",
                "/tmp/run-x/kubeconfig",
                "--values",
                "/repo/fixtures/values/token-auth.yaml",
                "--values",
                &inline,
                "--set-string",
                "chromadb.apiVersion=0.5.20",
                "--set",
                "chromadb.maxPayloadBytes=1048576",
                "--set-string",
                "chromadb.auth.token.headerType=X_CHROMA_TOKEN",
            ]
        );
    }

    #[test]
    fn inline_values_are_written_where_the_arguments_point() {
        let dir = tempfile::tempdir().expect("temp dir");
        upgrade_args(
            &request(),
            "ns",
            Install::Fresh,
            Duration::from_secs(60),
            &k3s_target(),
            dir.path(),
        )
        .expect("args");
        let written =
            std::fs::read_to_string(dir.path().join("inline-0.yaml")).expect("inline values file");
        let doc: serde_yaml::Value = serde_yaml::from_str(&written).expect("yaml");
        assert_eq!(doc["chromadb"]["allowReset"], serde_yaml::Value::Bool(true));
    }

    #[test]
    fn upgrade_neither_installs_nor_creates_the_namespace() {
        let dir = tempfile::tempdir().expect("temp dir");
        let args = upgrade_args(
            &request(),
            "ns",
            Install::Upgrade,
            Duration::from_secs(60),
            &k3s_target(),
            dir.path(),
        )
        .expect("args");
        assert_eq!(&args[..3], ["upgrade", "chroma", "/repo/charts/chromadb"]);
        assert!(
            !args
                .iter()
                .any(|a| a == "--install" || a == "--create-namespace"),
            "{args:?}"
        );
    }

    #[test]
    fn template_only_flags_are_not_passed_to_a_live_install() {
        let dir = tempfile::tempdir().expect("temp dir");
        let args = upgrade_args(
            &request(),
            "ns",
            Install::Fresh,
            Duration::from_secs(60),
            &k3s_target(),
            dir.path(),
        )
        .expect("args");
        assert!(
            !args
                .iter()
                .any(|a| a == "--api-versions" || a == "--kube-version" || a == "--skip-tests"),
            "{args:?}"
        );
    }

    #[test]
    fn kubeconfig_backend_pins_the_context_instead_of_a_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let target = HelmTarget {
            kubeconfig: None,
            context: Some("kind-kind".into()),
        };
        let args = upgrade_args(
            &request(),
            "ns",
            Install::Fresh,
            Duration::from_secs(60),
            &target,
            dir.path(),
        )
        .expect("args");
        let at = args
            .iter()
            .position(|a| a == "--kube-context")
            .expect("--kube-context present");
        assert_eq!(args[at + 1], "kind-kind");
        assert!(!args.iter().any(|a| a == "--kubeconfig"), "{args:?}");
    }

    #[test]
    fn unversioned_request_sets_no_api_version() {
        let dir = tempfile::tempdir().expect("temp dir");
        let req = RenderRequest::new("/c");
        let args = upgrade_args(
            &req,
            "ns",
            Install::Fresh,
            Duration::from_secs(60),
            &HelmTarget::default(),
            dir.path(),
        )
        .expect("args");
        assert!(
            !args.iter().any(|a| a.starts_with("chromadb.apiVersion")),
            "{args:?}"
        );
    }

    #[test]
    fn helm_test_runs_without_logs_flag_which_fails_for_job_hooks() {
        let args = test_args("chroma", "ns", Duration::from_secs(300), &k3s_target());
        assert_eq!(
            args,
            [
                "test",
                "chroma",
                "--namespace",
                "ns",
                "--timeout",
                "300s",
                "--kubeconfig",
                "/tmp/run-x/kubeconfig"
            ]
        );
    }

    #[test]
    fn sub_second_timeouts_round_up_to_one_second() {
        assert_eq!(helm_duration(Duration::from_millis(10)), "1s");
    }
}
