//! Running `helm template` on the chart: the request builder and helm's errors.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::objects::{ParseError, Rendered};
use crate::version::ChromaVersion;

/// The helm binary that renders the chart. Always named explicitly (or through `$HELM`,
/// which `cargo xtask` sets to the binary it provisioned): a render must never depend on
/// whichever helm happens to be first on someone's PATH.
#[derive(Debug, Clone)]
pub struct Helm {
    bin: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(
        "no helm binary: $HELM is not set (run through `cargo xtask test`, or `export HELM=$(cargo xtask tools --print helm)`)"
    )]
    HelmNotConfigured,
    #[error(
        "helm binary {path} does not exist or is not executable; `cargo xtask tools` provisions one"
    )]
    HelmMissing { path: PathBuf },
    #[error("could not run {path}: {source}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// helm refused the values or the templates failed; `message` is helm's own stderr, which
    /// names the offending key (schema errors and the chart's `fail` messages both do).
    #[error("helm template failed: {message}")]
    Helm { message: String },
    #[error("could not write values for helm: {0}")]
    Values(#[source] std::io::Error),
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// `helm version --short` did not answer with a version.
    #[error("could not read the version of helm {path}: {message}")]
    Version { path: PathBuf, message: String },
    /// A render that failed for a reason other than helm refusing it, replayed from the cache.
    #[error("{message}")]
    Cached { message: String },
}

impl RenderError {
    /// helm's message when the render was refused, for asserting on the key it names.
    pub fn helm_message(&self) -> Option<&str> {
        match self {
            RenderError::Helm { message } => Some(message),
            _ => None,
        }
    }
}

impl Helm {
    pub fn new(bin: impl Into<PathBuf>) -> Result<Self, RenderError> {
        let bin = bin.into();
        if !bin.is_file() {
            return Err(RenderError::HelmMissing { path: bin });
        }
        Ok(Helm { bin })
    }

    /// The helm in `$HELM`; an error (not a PATH search) when it is unset.
    pub fn from_env() -> Result<Self, RenderError> {
        match std::env::var_os("HELM") {
            Some(p) if !p.is_empty() => Helm::new(PathBuf::from(p)),
            _ => Err(RenderError::HelmNotConfigured),
        }
    }

    pub fn path(&self) -> &Path {
        &self.bin
    }

    /// The version this helm reports (`v4.1.4`, build metadata dropped), so reports can say
    /// which helm rendered and installed the chart.
    pub fn version(&self) -> Result<String, RenderError> {
        let out = self
            .command()
            .args(["version", "--short"])
            .output()
            .map_err(|source| RenderError::Spawn {
                path: self.bin.clone(),
                source,
            })?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let version = stdout.trim().split('+').next().unwrap_or("").trim();
        if !out.status.success() || !version.starts_with('v') {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(RenderError::Version {
                path: self.bin.clone(),
                message: format!(
                    "`helm version --short` exited with {} and printed {:?} {:?}",
                    out.status,
                    stdout.trim(),
                    stderr.trim()
                ),
            });
        }
        Ok(version.to_string())
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        // Keep helm away from the user's repositories, plugins and caches: renders are
        // hermetic and two runs cannot disturb each other.
        cmd.env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("chromadb-chart-helm/config"),
        )
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("chromadb-chart-helm/cache"),
        )
        .env(
            "HELM_DATA_HOME",
            std::env::temp_dir().join("chromadb-chart-helm/data"),
        );
        cmd
    }
}

/// One `helm template` invocation: chart, release, namespace, Chroma version and values.
#[derive(Debug, Clone)]
pub struct RenderRequest {
    pub chart: PathBuf,
    pub release: String,
    pub namespace: String,
    pub version: Option<ChromaVersion>,
    /// `--set` pairs, applied after values files and inline values.
    pub sets: Vec<(String, String)>,
    /// `--set-string` pairs, applied last.
    pub set_strings: Vec<(String, String)>,
    pub values_files: Vec<PathBuf>,
    /// Inline values documents, applied in order after `values_files`.
    pub values: Vec<serde_yaml::Value>,
    /// `--api-versions` to advertise (e.g. for the Ingress API); empty = helm's defaults.
    pub api_versions: Vec<String>,
    pub kube_version: Option<String>,
    /// Render `helm test` hooks too (helm template includes them unless told otherwise).
    pub include_tests: bool,
}

impl RenderRequest {
    pub fn new(chart: impl Into<PathBuf>) -> Self {
        RenderRequest {
            chart: chart.into(),
            release: "chroma".into(),
            namespace: "default".into(),
            version: None,
            sets: Vec::new(),
            set_strings: Vec::new(),
            values_files: Vec::new(),
            values: Vec::new(),
            api_versions: Vec::new(),
            kube_version: None,
            include_tests: true,
        }
    }

    pub fn release(mut self, name: impl Into<String>) -> Self {
        self.release = name.into();
        self
    }

    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespace = ns.into();
        self
    }

    /// Sets `chromadb.apiVersion` (and so the default image tag).
    pub fn version(mut self, v: ChromaVersion) -> Self {
        self.version = Some(v);
        self
    }

    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.sets.push((key.into(), value.into()));
        self
    }

    pub fn set_string(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_strings.push((key.into(), value.into()));
        self
    }

    pub fn values_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.values_files.push(path.into());
        self
    }

    pub fn values(mut self, doc: serde_yaml::Value) -> Self {
        self.values.push(doc);
        self
    }

    pub fn api_version(mut self, gv: impl Into<String>) -> Self {
        self.api_versions.push(gv.into());
        self
    }

    pub fn kube_version(mut self, v: impl Into<String>) -> Self {
        self.kube_version = Some(v.into());
        self
    }

    /// The arguments after `helm`, with inline values already written to `dir`.
    pub fn args(&self, dir: &Path) -> Result<Vec<String>, RenderError> {
        let mut args = vec![
            "template".to_string(),
            self.release.clone(),
            self.chart.display().to_string(),
            "--namespace".into(),
            self.namespace.clone(),
        ];
        for f in &self.values_files {
            args.push("--values".into());
            args.push(f.display().to_string());
        }
        for (i, doc) in self.values.iter().enumerate() {
            let path = dir.join(format!("inline-{i}.yaml"));
            let text = serde_yaml::to_string(doc)
                .map_err(|e| RenderError::Values(std::io::Error::other(e)))?;
            std::fs::write(&path, text).map_err(RenderError::Values)?;
            args.push("--values".into());
            args.push(path.display().to_string());
        }
        if let Some(v) = &self.version {
            args.push("--set-string".into());
            args.push(format!("chromadb.apiVersion={v}"));
        }
        for (k, v) in &self.sets {
            args.push("--set".into());
            args.push(format!("{k}={v}"));
        }
        for (k, v) in &self.set_strings {
            args.push("--set-string".into());
            args.push(format!("{k}={v}"));
        }
        for gv in &self.api_versions {
            args.push("--api-versions".into());
            args.push(gv.clone());
        }
        if let Some(kv) = &self.kube_version {
            args.push("--kube-version".into());
            args.push(kv.clone());
        }
        if !self.include_tests {
            args.push("--skip-tests".into());
        }
        Ok(args)
    }

    /// Everything that decides what helm prints for this request, as text (values files by
    /// content, not path), for caching.
    pub fn identity(&self) -> std::io::Result<String> {
        let mut out = format!(
            "release={}\nnamespace={}\nversion={:?}\nsets={:?}\nset_strings={:?}\napi_versions={:?}\nkube={:?}\ntests={}\n",
            self.release,
            self.namespace,
            self.version.as_ref().map(ToString::to_string),
            self.sets,
            self.set_strings,
            self.api_versions,
            self.kube_version,
            self.include_tests
        );
        for f in &self.values_files {
            out.push_str("values-file\n");
            out.push_str(&std::fs::read_to_string(f)?);
            out.push('\n');
        }
        for doc in &self.values {
            out.push_str("values\n");
            out.push_str(&serde_yaml::to_string(doc).map_err(std::io::Error::other)?);
        }
        Ok(out)
    }

    /// Runs `helm template` and parses what it prints.
    pub fn render(&self, helm: &Helm) -> Result<Rendered, RenderError> {
        Ok(Rendered::parse(&self.render_raw(helm)?)?)
    }

    /// Runs `helm template` and returns what it prints, unparsed.
    pub fn render_raw(&self, helm: &Helm) -> Result<String, RenderError> {
        let dir = tempfile::Builder::new()
            .prefix("chromadb-render-")
            .tempdir()
            .map_err(RenderError::Values)?;
        let args = self.args(dir.path())?;
        tracing::debug!(helm = %helm.path().display(), ?args, "helm template");
        let out = helm
            .command()
            .args(&args)
            .output()
            .map_err(|source| RenderError::Spawn {
                path: helm.path().to_path_buf(),
                source,
            })?;
        if !out.status.success() {
            return Err(RenderError::Helm {
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_helm(dir: &Path, script: &str) -> Helm {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("helm");
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).expect("write fake helm");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Helm::new(path).expect("fake helm exists")
    }

    #[test]
    fn version_drops_build_metadata() {
        let dir = tempfile::tempdir().expect("temp dir");
        let helm = fake_helm(
            dir.path(),
            "[ \"$1 $2\" = 'version --short' ] && echo v4.1.4+g05fa379",
        );
        assert_eq!(helm.version().expect("version"), "v4.1.4");
    }

    #[test]
    fn helm_that_answers_no_version_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let helm = fake_helm(dir.path(), "echo 'Error: unknown command' >&2; exit 1");
        let err = helm.version().expect_err("no version");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "could not read the version of helm {}: ",
                helm.path().display()
            )),
            "{msg}"
        );
        assert!(msg.contains("unknown command"), "{msg}");
    }
}
