//! helm's multi-document output as typed Kubernetes objects, with the accessors the tests
//! and the backends need.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("helm printed a document that is not YAML: {0}")]
    Yaml(#[source] serde_yaml::Error),
    #[error("{kind} `{name}` does not match the Kubernetes schema: {source}")]
    Typed {
        kind: String,
        name: String,
        #[source]
        source: serde_json::Error,
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

fn typed<T: serde::de::DeserializeOwned>(doc: &serde_json::Value) -> Result<T, ParseError> {
    T::deserialize(doc).map_err(|source| ParseError::Typed {
        kind: doc["kind"].as_str().unwrap_or_default().to_string(),
        name: doc["metadata"]["name"].as_str().unwrap_or_default().to_string(),
        source,
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
    ingresses => Ingress(Ingress);
    service_accounts => ServiceAccount(ServiceAccount);
    pods => Pod(Pod);
}

impl Rendered {
    pub fn parse(stream: &str) -> Result<Self, ParseError> {
        let mut docs = Vec::new();
        for de in serde_yaml::Deserializer::from_str(stream) {
            let value = serde_yaml::Value::deserialize(de).map_err(ParseError::Yaml)?;
            if value.is_null() {
                continue;
            }
            docs.push(serde_json::to_value(&value).map_err(|e| ParseError::NoKind(e.to_string()))?);
        }
        Self::from_documents(docs)
    }

    /// Builds the typed view of already-parsed documents (e.g. from a cache).
    pub fn from_documents(docs: Vec<serde_json::Value>) -> Result<Self, ParseError> {
        let mut out = Rendered::default();
        for doc in docs {
            let kind = doc["kind"]
                .as_str()
                .ok_or_else(|| ParseError::NoKind(doc.to_string()))?;
            let obj = match kind {
                "StatefulSet" => Object::StatefulSet(typed(&doc)?),
                "Service" => Object::Service(typed(&doc)?),
                "ConfigMap" => Object::ConfigMap(typed(&doc)?),
                "Secret" => Object::Secret(typed(&doc)?),
                "ServiceAccount" => Object::ServiceAccount(typed(&doc)?),
                "Ingress" => Object::Ingress(typed(&doc)?),
                "Job" => Object::Job(typed(&doc)?),
                "Pod" => Object::Pod(typed(&doc)?),
                _ => Object::Other(doc.clone()),
            };
            out.objects.push(obj);
            out.documents.push(doc);
        }
        Ok(out)
    }

    /// The chart renders exactly one StatefulSet; `None` means the chart is broken.
    pub fn statefulset(&self) -> Option<&StatefulSet> {
        self.statefulsets().next()
    }

    pub fn configmap(&self, name: &str) -> Option<&ConfigMap> {
        self.configmaps().find(|c| c.metadata.name.as_deref() == Some(name))
    }

    /// A rendered Secret's data, base64-decoded, with `stringData` folded in as the API
    /// server would.
    pub fn secret(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let s = self.secrets().find(|s| s.metadata.name.as_deref() == Some(name))?;
        Some(secret_data(s))
    }

    /// The Chroma server container of the StatefulSet (named `chromadb`, else the first).
    pub fn chroma_container(&self) -> Option<&Container> {
        let spec = self.statefulset()?.spec.as_ref()?.template.spec.as_ref()?;
        spec.containers
            .iter()
            .find(|c| c.name == "chromadb")
            .or_else(|| spec.containers.first())
    }
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
