//! helm's multi-document output as typed Kubernetes objects, with the accessors the tests
//! and the backends need.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::Ingress;

use crate::yaml11::{self, Reading, Yaml11Error};

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("helm printed YAML the Kubernetes API server would not read: {0}")]
    Yaml(#[source] Yaml11Error),
    #[error("{kind} `{name}` does not match the Kubernetes schema at `{path}`: {source}{why}")]
    Typed {
        kind: String,
        name: String,
        /// The offending field, e.g. `spec.template.spec.containers[0].env[1].value`.
        path: String,
        #[source]
        source: serde_json::Error,
        /// Why the value there is not what its text suggests (a YAML 1.1 reading), or empty.
        why: String,
    },
    #[error("a rendered document has no kind: {0}")]
    NoKind(String),
}

/// One rendered object. Kinds the harness reasons about are typed; the rest stay JSON.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Object {
    StatefulSet(StatefulSet),
    Service(Service),
    ConfigMap(ConfigMap),
    Secret(Secret),
    ServiceAccount(ServiceAccount),
    Ingress(Ingress),
    Job(Job),
    CronJob(CronJob),
    PersistentVolumeClaim(PersistentVolumeClaim),
    Pod(Pod),
    Other(serde_json::Value),
}

/// Everything one `helm template` printed, in order, plus each document as JSON (for schema
/// validation and structural checks that should see exactly what helm wrote).
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub objects: Vec<Object>,
    pub documents: Vec<serde_json::Value>,
}

fn typed<T: serde::de::DeserializeOwned>(
    doc: &serde_json::Value,
    readings: &[Reading],
) -> Result<T, ParseError> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        let why = readings
            .iter()
            .find(|r| r.path == path)
            .map(|r| {
                format!(
                    " (the unquoted `{}` there is {} to the API server, which reads YAML 1.1; quote it to keep the text)",
                    r.text, r.became
                )
            })
            .unwrap_or_default();
        ParseError::Typed {
            kind: doc["kind"].as_str().unwrap_or_default().to_string(),
            name: doc["metadata"]["name"].as_str().unwrap_or_default().to_string(),
            path,
            source: e.into_inner(),
            why,
        }
    })
}

/// One accessor per typed kind: every rendered object of that kind, in helm's order.
macro_rules! kind_accessors {
    ($($fn_name:ident => $variant:ident($ty:ty);)*) => {
        impl Rendered {
            $(
                pub fn $fn_name(&self) -> impl Iterator<Item = &$ty> {
                    self.objects.iter().filter_map(|o| match o {
                        Object::$variant(x) => Some(x),
                        _ => None,
                    })
                }
            )*
        }
    };
}

kind_accessors! {
    statefulsets => StatefulSet(StatefulSet);
    services => Service(Service);
    configmaps => ConfigMap(ConfigMap);
    secrets => Secret(Secret);
    jobs => Job(Job);
    cronjobs => CronJob(CronJob);
    claims => PersistentVolumeClaim(PersistentVolumeClaim);
    ingresses => Ingress(Ingress);
    service_accounts => ServiceAccount(ServiceAccount);
    pods => Pod(Pod);
}

impl Rendered {
    /// Reads helm's output as the API server would (see [`crate::yaml11`]): YAML 1.1
    /// scalars, then the typed objects, refusing what the API server would refuse.
    pub fn parse(stream: &str) -> Result<Self, ParseError> {
        let docs = yaml11::documents(stream).map_err(ParseError::Yaml)?;
        let mut out = Rendered::default();
        for doc in docs.into_iter().filter(|d| !d.value.is_null()) {
            out.push(doc.value, &doc.readings)?;
        }
        Ok(out)
    }

    /// Builds the typed view of already-parsed documents (e.g. from a cache).
    pub fn from_documents(docs: Vec<serde_json::Value>) -> Result<Self, ParseError> {
        let mut out = Rendered::default();
        for doc in docs {
            out.push(doc, &[])?;
        }
        Ok(out)
    }

    fn push(&mut self, doc: serde_json::Value, readings: &[Reading]) -> Result<(), ParseError> {
        let kind = doc["kind"]
            .as_str()
            .ok_or_else(|| ParseError::NoKind(doc.to_string()))?;
        let obj = match kind {
            "StatefulSet" => Object::StatefulSet(typed(&doc, readings)?),
            "Service" => Object::Service(typed(&doc, readings)?),
            "ConfigMap" => Object::ConfigMap(typed(&doc, readings)?),
            "Secret" => Object::Secret(typed(&doc, readings)?),
            "ServiceAccount" => Object::ServiceAccount(typed(&doc, readings)?),
            "Ingress" => Object::Ingress(typed(&doc, readings)?),
            "Job" => Object::Job(typed(&doc, readings)?),
            "CronJob" => Object::CronJob(typed(&doc, readings)?),
            "PersistentVolumeClaim" => Object::PersistentVolumeClaim(typed(&doc, readings)?),
            "Pod" => Object::Pod(typed(&doc, readings)?),
            _ => Object::Other(doc.clone()),
        };
        self.objects.push(obj);
        self.documents.push(doc);
        Ok(())
    }

    /// The chart renders exactly one StatefulSet; `None` means the chart is broken.
    pub fn statefulset(&self) -> Option<&StatefulSet> {
        self.statefulsets().next()
    }

    pub fn configmap(&self, name: &str) -> Option<&ConfigMap> {
        self.configmaps()
            .find(|c| c.metadata.name.as_deref() == Some(name))
    }

    /// A rendered Secret's data, base64-decoded, with `stringData` folded in as the API
    /// server would.
    pub fn secret(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let s = self
            .secrets()
            .find(|s| s.metadata.name.as_deref() == Some(name))?;
        Some(secret_data(s))
    }

    /// The Chroma server container of the StatefulSet (named [`CHROMA_CONTAINER`], else the first).
    pub fn chroma_container(&self) -> Option<&Container> {
        chroma_container_of(
            &self
                .statefulset()?
                .spec
                .as_ref()?
                .template
                .spec
                .as_ref()?
                .containers,
        )
    }
}

/// The name the chart gives the Chroma server's container.
pub const CHROMA_CONTAINER: &str = "chromadb";

/// The Chroma server among a pod's containers (named [`CHROMA_CONTAINER`], else the first):
/// for code that holds a pod spec rather than a whole render.
pub fn chroma_container_of(containers: &[Container]) -> Option<&Container> {
    containers
        .iter()
        .find(|c| c.name == CHROMA_CONTAINER)
        .or_else(|| containers.first())
}

/// A Secret's contents as the API server would store them: `data` decoded, `stringData` on top.
pub fn secret_data(s: &Secret) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in s.data.iter().flatten() {
        out.insert(k.clone(), String::from_utf8_lossy(&v.0).into_owned());
    }
    for (k, v) in s.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// Base64 as Secrets carry it, for callers that build Secrets (e.g. an existingSecret).
pub fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}
