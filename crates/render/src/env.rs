//! A container's environment as the kubelet would build it, resolved against the Secrets and
//! ConfigMaps of the same render.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar};

use crate::objects::{Rendered, secret_data};

/// Where one environment variable's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    /// `value:` (an absent value is the empty string, as in Kubernetes).
    Literal(String),
    /// `valueFrom.secretKeyRef`; `value` is `None` when the Secret is not part of the render
    /// (an existingSecret, or a broken reference) or lacks the key.
    FromSecret {
        name: String,
        key: String,
        value: Option<String>,
    },
    FromConfigMap {
        name: String,
        key: String,
        value: Option<String>,
    },
    /// `fieldRef` / `resourceFieldRef`: only the kubelet knows; `what` names the source.
    Unresolved { what: String },
}

impl EnvValue {
    /// The value the process would see, when the render alone determines it.
    pub fn resolved(&self) -> Option<&str> {
        match self {
            EnvValue::Literal(s) => Some(s),
            EnvValue::FromSecret { value, .. } | EnvValue::FromConfigMap { value, .. } => {
                value.as_deref()
            }
            EnvValue::Unresolved { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvEntry {
    pub name: String,
    pub value: EnvValue,
}

/// One `envFrom` source with its data when the object is part of the render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFromEntry {
    pub prefix: String,
    pub source: EnvFromKind,
    pub name: String,
    pub data: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvFromKind {
    Secret,
    ConfigMap,
}

impl Rendered {
    /// `container`'s `env`, in order, each value resolved where the render allows.
    pub fn env_of(&self, container: &Container) -> Vec<EnvEntry> {
        container
            .env
            .iter()
            .flatten()
            .map(|e| self.resolve_var(e))
            .collect()
    }

    /// The Chroma container's `env` in order (empty when there is no Chroma container).
    pub fn env(&self) -> Vec<EnvEntry> {
        self.chroma_container()
            .map(|c| self.env_of(c))
            .unwrap_or_default()
    }

    /// The Chroma container's `envFrom` sources, resolved where the render allows.
    pub fn env_from(&self) -> Vec<EnvFromEntry> {
        let Some(c) = self.chroma_container() else {
            return Vec::new();
        };
        self.env_from_of(c)
    }

    pub fn env_from_of(&self, container: &Container) -> Vec<EnvFromEntry> {
        container
            .env_from
            .iter()
            .flatten()
            .filter_map(|src| {
                let prefix = src.prefix.clone().unwrap_or_default();
                if let Some(s) = &src.secret_ref {
                    let name = s.name.clone();
                    let data = self
                        .secrets()
                        .find(|x| x.metadata.name.as_deref() == Some(&name))
                        .map(secret_data);
                    Some(EnvFromEntry {
                        prefix,
                        source: EnvFromKind::Secret,
                        name,
                        data,
                    })
                } else if let Some(c) = &src.config_map_ref {
                    let name = c.name.clone();
                    let data = self
                        .configmap(&name)
                        .map(|c| c.data.clone().unwrap_or_default());
                    Some(EnvFromEntry {
                        prefix,
                        source: EnvFromKind::ConfigMap,
                        name,
                        data,
                    })
                } else {
                    None
                }
            })
            .collect()
    }

    /// The variable `name` as the Chroma process would see it: `env` beats `envFrom`, later
    /// entries beat earlier ones. `None` when it is not set at all.
    pub fn env_var(&self, name: &str) -> Option<EnvValue> {
        let c = self.chroma_container()?;
        self.env_var_of(c, name)
    }

    pub fn env_var_of(&self, container: &Container, name: &str) -> Option<EnvValue> {
        if let Some(e) = self
            .env_of(container)
            .into_iter()
            .rev()
            .find(|e| e.name == name)
        {
            return Some(e.value);
        }
        self.env_from_of(container)
            .into_iter()
            .rev()
            .find_map(|src| {
                let key = name.strip_prefix(&src.prefix)?;
                let value = src.data.as_ref()?.get(key)?.clone();
                Some(match src.source {
                    EnvFromKind::Secret => EnvValue::FromSecret {
                        name: src.name,
                        key: key.to_string(),
                        value: Some(value),
                    },
                    EnvFromKind::ConfigMap => EnvValue::FromConfigMap {
                        name: src.name,
                        key: key.to_string(),
                        value: Some(value),
                    },
                })
            })
    }

    fn resolve_var(&self, e: &EnvVar) -> EnvEntry {
        let value = match &e.value_from {
            None => EnvValue::Literal(e.value.clone().unwrap_or_default()),
            Some(from) => {
                if let Some(r) = &from.secret_key_ref {
                    let value = self.secret(&r.name).and_then(|d| d.get(&r.key).cloned());
                    EnvValue::FromSecret {
                        name: r.name.clone(),
                        key: r.key.clone(),
                        value,
                    }
                } else if let Some(r) = &from.config_map_key_ref {
                    let value = self
                        .configmap(&r.name)
                        .and_then(|c| c.data.as_ref())
                        .and_then(|d| d.get(&r.key).cloned());
                    EnvValue::FromConfigMap {
                        name: r.name.clone(),
                        key: r.key.clone(),
                        value,
                    }
                } else if let Some(f) = &from.field_ref {
                    EnvValue::Unresolved {
                        what: format!("fieldRef {}", f.field_path),
                    }
                } else if let Some(r) = &from.resource_field_ref {
                    EnvValue::Unresolved {
                        what: format!("resourceFieldRef {}", r.resource),
                    }
                } else {
                    EnvValue::Unresolved {
                        what: "empty valueFrom".into(),
                    }
                }
            }
        };
        EnvEntry {
            name: e.name.clone(),
            value,
        }
    }
}
