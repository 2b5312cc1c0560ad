//! One way to prepare a deployment, for a run of the matrix and for each side of an upgrade:
//! render → spec model → release, with what the checks it will run need prepared (their
//! [`Need`]s: the restore render; the OTLP receiver its values ask for; the Secrets its values
//! name, with a certificate for the Services it renders). Deploying it (install, upgrade in place, reinstall) is the caller's step.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use render::spec::tls::{CertSource, Tls};
use render::{
    Auth, ChromaVersion, Expected, Helm, RenderError, RenderRequest, Rendered, SpecError,
};
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
    /// The Secrets the values name are added when missing ([`user_secrets`]).
    pub secrets: Secrets,
    /// The checks that will run on it (their needs are prepared).
    pub checks: &'a [CheckName],
    /// The release's identity on the backend.
    pub id: String,
    /// Where the servers reach the harness (its OTLP receiver listens there):
    /// [`crate::backend::Backend::harness_address`].
    pub harness_address: std::net::IpAddr,
    /// The namespace the release is installed into, when the backend knows it before install
    /// ([`crate::backend::Backend::namespace_for`]): the render then says what `helm install
    /// -n` renders there (Service DNS names, certificate names, Job URLs).
    pub namespace: Option<String>,
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
    SpecRefused {
        version: ChromaVersion,
        spec: SpecError,
        helm: Option<RenderError>,
    },
    #[error("helm template of {chart} for {version} failed: {source}")]
    Render {
        chart: PathBuf,
        version: ChromaVersion,
        #[source]
        source: RenderError,
    },
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

/// The Secrets the values name for the user to create (`chromadb.auth.existingSecret`,
/// `tls.existingSecret`), as a user would create them, where `given` lacks them: the auth
/// Secret with random credentials, the TLS Secret as placeholders the certificate fills.
pub fn user_secrets(e: &Expected, given: &mut Secrets) {
    let auth = match &e.auth {
        Auth::Token {
            existing_secret: Some(n),
            ..
        } => Some((
            n,
            BTreeMap::from([("token".to_string(), crate::random::alnum(32))]),
        )),
        Auth::Basic {
            existing_secret: Some(n),
        } => Some((
            n,
            BTreeMap::from([
                ("username".to_string(), "admin".to_string()),
                ("password".to_string(), crate::random::alnum(32)),
            ]),
        )),
        _ => None,
    };
    if let Some((name, data)) = auth {
        given.entry(name.clone()).or_insert(data);
    }
    if let Some(Tls {
        source: CertSource::ExistingSecret(name),
        ..
    }) = &e.tls
    {
        given.entry(name.clone()).or_insert_with(|| {
            [
                ("tls.crt", crate::tls::CERT_PLACEHOLDER),
                ("tls.key", crate::tls::KEY_PLACEHOLDER),
                ("ca.crt", crate::tls::CA_PLACEHOLDER),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into()
        });
    }
}

async fn render(
    helm: &Helm,
    request: &RenderRequest,
) -> Result<Result<Rendered, RenderError>, PrepareError> {
    let (helm, request) = (helm.clone(), request.clone());
    tokio::task::spawn_blocking(move || request.render(&helm))
        .await
        .map_err(PrepareError::Task)
}

/// Render → spec → release, with the needs of the checks that apply prepared.
pub async fn prepare(helm: &Helm, src: Source<'_>) -> Result<Ready, PrepareError> {
    let mut request = RenderRequest::new(src.chart).version(src.version.clone());
    if let Some(ns) = &src.namespace {
        request = request.namespace(ns.clone());
    }
    for f in src.values_files {
        request = request.values_file(f);
    }
    if let Some(doc) = &src.extra {
        request = request.values(doc.clone());
    }
    // The receiver first: its address goes into the render.
    let needs_receiver = src
        .runtime
        .values()
        .any(|v| *v == RuntimeValue::OtlpReceiver);
    let otlp = if needs_receiver {
        Some(
            Receiver::start_on(src.harness_address)
                .await
                .map_err(PrepareError::Receiver)?,
        )
    } else {
        None
    };
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
        Err(spec) => {
            return Err(PrepareError::SpecRefused {
                version: src.version.clone(),
                spec,
                helm: rendered.err(),
            });
        }
    };
    let rendered = rendered.map_err(|source| PrepareError::Render {
        chart: src.chart.to_path_buf(),
        version: src.version.clone(),
        source,
    })?;

    let needs: BTreeSet<Need> = src
        .checks
        .iter()
        .filter(|c| c.applies(&expected).is_ok())
        .flat_map(|c| c.needs().iter().copied())
        .collect();
    let restore = match needs
        .contains(&Need::RestoreRender)
        .then(|| checks::backup::restore_request(&request, &values, &expected))
        .flatten()
    {
        Some(req) => Some(
            render(helm, &req)
                .await?
                .map_err(PrepareError::RestoreRender)?,
        ),
        None => None,
    };
    let workloads = Workloads::from_renders(&rendered, restore.as_ref());

    let mut external_secrets = src.secrets;
    user_secrets(&expected, &mut external_secrets);
    if crate::tls::wants_pki(&external_secrets) {
        // The user's certificate, made here for the Services this render names.
        let names = crate::tls::service_dns_names(&rendered, &request.namespace);
        crate::tls::Pki::generate(&names)
            .map_err(PrepareError::Certificate)?
            .fill(&mut external_secrets);
    }
    let release = Release {
        id: src.id,
        version: src.version.clone(),
        request,
        rendered,
        external_secrets,
    };
    Ok(Ready {
        release,
        expected,
        values,
        prepared: Prepared { workloads, otlp },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(values: &str) -> Expected {
        Expected::from_values(
            &serde_yaml::from_str(values).unwrap(),
            &ChromaVersion::new(0, 5, 0),
        )
        .unwrap()
    }

    #[rstest::rstest]
    #[case::token_auth_gets_a_token("chromadb: {auth: {existingSecret: mine}}", "mine", "token")]
    #[case::basic_auth_gets_user_and_password(
        "chromadb: {auth: {type: basic, existingSecret: mine}}",
        "mine",
        "password"
    )]
    #[case::tls_gets_certificate_placeholders(
        "tls: {enabled: true, existingSecret: certs}",
        "certs",
        "tls.crt"
    )]
    fn a_secret_the_values_name_is_made_when_missing(
        #[case] values: &str,
        #[case] name: &str,
        #[case] key: &str,
    ) {
        let mut s = Secrets::new();
        user_secrets(&expected(values), &mut s);
        assert!(s.get(name).is_some_and(|d| d.contains_key(key)), "{s:?}");
    }

    #[test]
    fn a_secret_the_caller_gave_is_kept() {
        let mut s = Secrets::from([(
            "certs".to_string(),
            BTreeMap::from([("tls.crt".to_string(), "A's PEM".to_string())]),
        )]);
        user_secrets(
            &expected("tls: {enabled: true, existingSecret: certs}"),
            &mut s,
        );
        assert_eq!(
            s["certs"]["tls.crt"], "A's PEM",
            "B keeps the certificate A was installed with"
        );
        assert_eq!(s.len(), 1);
    }
}
