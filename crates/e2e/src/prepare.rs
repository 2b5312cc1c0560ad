//! One way to prepare a deployment, for a run of the matrix and for each side of an upgrade:
//! render → spec model → release, with what the checks it will run need prepared (their
//! [`Need`]s: the restore render; the OTLP receiver and the certificate its values and Secrets
//! ask for). Deploying it (install, upgrade in place, reinstall) is the caller's step.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use render::{Auth, ChromaVersion, Expected, Helm, RenderError, RenderRequest, Rendered, SpecError};
use serde_yaml::Value;

use crate::backend::Release;
use crate::checks::{self, CheckName, Need, Prepared, Workloads};
use crate::otlp::{OtlpError, Receiver};
use crate::scenario::RuntimeValue;

/// Secrets by name, each its data.
pub type Secrets = BTreeMap<String, BTreeMap<String, String>>;

/// What to deploy.
pub struct Source<'a> {
    pub chart: &'a Path,
    pub version: &'a ChromaVersion,
    pub values_files: &'a [PathBuf],
    /// The user's values: the files merged, plus `extra` (what the spec model reads).
    pub values: Value,
    /// Layered over the files in the render (already merged into `values`).
    pub extra: Option<Value>,
    /// Values only known when the run starts (`runtime:` in fixtures/live.yaml).
    pub runtime: &'a BTreeMap<String, RuntimeValue>,
    /// The Secrets the user creates before installing, `<tls-…>` placeholders not yet filled.
    /// The existing auth Secret the values name is added when missing.
    pub secrets: Secrets,
    /// The checks that will run on it (their needs are prepared).
    pub checks: &'a [CheckName],
    /// The release's identity on the backend.
    pub id: String,
}

/// A deployment ready to start.
pub struct Ready {
    pub release: Release,
    pub expected: Expected,
    /// The user's values as the spec model read them.
    pub values: Value,
    pub prepared: Prepared,
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("starting the OTLP receiver: {0}")]
    Receiver(#[source] OtlpError),
    #[error("render task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// The spec refuses the values on this version; `helm` is how helm took them (`None`:
    /// it rendered them).
    #[error("the spec refuses these values on {version} ({spec})")]
    SpecRefused { version: ChromaVersion, spec: SpecError, helm: Option<RenderError> },
    #[error("helm template of {chart} for {version} failed: {source}")]
    Render { chart: PathBuf, version: ChromaVersion, #[source] source: RenderError },
    #[error("helm template with restore.enabled=true failed: {0}")]
    RestoreRender(#[source] RenderError),
    #[error("making the deployment's certificate: {0}")]
    Certificate(#[source] crate::tls::TlsError),
}

impl PrepareError {
    /// Whether helm refused the values the spec refuses, naming the key: then there is
    /// nothing to deploy and nothing failed.
    pub fn refused_alike(&self) -> bool {
        matches!(self, PrepareError::SpecRefused { spec, helm: Some(e), .. } if e.helm_message().is_some_and(|m| m.contains(&spec.key)))
    }
}

/// The existing Secret the values' auth names, as a user would create it, when `given` lacks it.
pub fn auth_secret(e: &Expected, given: &mut Secrets) {
    let (name, data) = match &e.auth {
        Auth::Token { existing_secret: Some(n), .. } => (n, BTreeMap::from([("token".to_string(), crate::random::alnum(32))])),
        Auth::Basic { existing_secret: Some(n) } => (n, BTreeMap::from([("username".to_string(), "admin".to_string()), ("password".to_string(), crate::random::alnum(32))])),
        _ => return,
    };
    given.entry(name.clone()).or_insert(data);
}

async fn render(helm: &Helm, request: &RenderRequest) -> Result<Result<Rendered, RenderError>, PrepareError> {
    let (helm, request) = (helm.clone(), request.clone());
    tokio::task::spawn_blocking(move || request.render(&helm)).await.map_err(PrepareError::Task)
}

/// Render → spec → release, with the needs of the checks that apply prepared.
pub async fn prepare(helm: &Helm, src: Source<'_>) -> Result<Ready, PrepareError> {
    let mut request = RenderRequest::new(src.chart).version(src.version.clone());
    for f in src.values_files {
        request = request.values_file(f);
    }
    if let Some(doc) = &src.extra {
        request = request.values(doc.clone());
    }
    // The receiver first: its address goes into the render.
    let needs_receiver = src.runtime.values().any(|v| *v == RuntimeValue::OtlpReceiver);
    let otlp = if needs_receiver { Some(Receiver::start().await.map_err(PrepareError::Receiver)?) } else { None };
    let mut values = src.values;
    if !src.runtime.is_empty() {
        let doc = crate::scenario::runtime_values(src.runtime, |what| match what {
            RuntimeValue::OtlpReceiver => otlp.as_ref().map(Receiver::endpoint).unwrap_or_default(),
        });
        crate::scenario::merge(&mut values, doc.clone());
        request = request.values(doc);
    }
    let rendered = render(helm, &request).await?;
    let expected = match Expected::from_values(&values, src.version) {
        Ok(e) => e,
        Err(spec) => return Err(PrepareError::SpecRefused { version: src.version.clone(), spec, helm: rendered.err() }),
    };
    let rendered = rendered.map_err(|source| PrepareError::Render { chart: src.chart.to_path_buf(), version: src.version.clone(), source })?;

    let needs: BTreeSet<Need> = src.checks.iter().filter(|c| c.applies(&expected).is_ok()).flat_map(|c| c.needs().iter().copied()).collect();
    let restore = match needs.contains(&Need::RestoreRender).then(|| checks::backup::restore_request(&request, &values, &expected)).flatten() {
        Some(req) => Some(render(helm, &req).await?.map_err(PrepareError::RestoreRender)?),
        None => None,
    };
    let workloads = Workloads::from_renders(&rendered, restore.as_ref());

    let mut external_secrets = src.secrets;
    auth_secret(&expected, &mut external_secrets);
    if crate::tls::wants_pki(&external_secrets) {
        // The user's certificate, made here for the Services this render names.
        let names = crate::tls::service_dns_names(&rendered, &request.namespace);
        crate::tls::Pki::generate(&names).map_err(PrepareError::Certificate)?.fill(&mut external_secrets);
    }
    let release = Release { id: src.id, version: src.version.clone(), request, rendered, external_secrets };
    Ok(Ready { release, expected, values, prepared: Prepared { workloads, otlp } })
}
