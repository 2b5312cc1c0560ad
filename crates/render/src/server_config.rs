//! The Rust server's (>= 1.0.0) config file, found the way the container finds it: the path
//! in its args, the mount that holds that path, the ConfigMap behind the mount.

use serde::Deserialize;
use serde_yaml::Value;

use crate::objects::Rendered;

/// The 1.x image's default command is `chroma run /config.yaml`.
pub const IMAGE_DEFAULT_CONFIG_PATH: &str = "/config.yaml";

/// The config keys the chart manages, typed; anything else stays in `rest`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ServerConfig {
    pub port: Option<u16>,
    pub listen_address: Option<String>,
    pub max_payload_size_bytes: Option<u64>,
    pub persist_path: Option<String>,
    pub allow_reset: Option<bool>,
    pub cors_allow_origins: Option<Vec<String>>,
    pub sqlite_filename: Option<String>,
    pub sqlitedb: Option<SqliteDb>,
    pub circuit_breaker: Option<CircuitBreaker>,
    pub open_telemetry: Option<OpenTelemetry>,
    pub segment_manager: Option<SegmentManager>,
    /// Keys the chart does not manage (e.g. from `extraConfig`).
    #[serde(flatten)]
    pub rest: Value,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SqliteDb {
    pub hash_type: Option<String>,
    pub migration_mode: Option<String>,
    #[serde(flatten)]
    pub rest: Value,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CircuitBreaker {
    pub requests: Option<u64>,
    #[serde(flatten)]
    pub rest: Value,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OpenTelemetry {
    pub endpoint: Option<String>,
    pub service_name: Option<String>,
    pub filters: Option<Vec<Value>>,
    #[serde(flatten)]
    pub rest: Value,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SegmentManager {
    pub hnsw_index_pool_cache_config: Option<Value>,
    #[serde(flatten)]
    pub rest: Value,
}

/// Why the config file could not be located or read in a render.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the render has no StatefulSet with a chromadb container")]
    NoContainer,
    #[error("the chromadb container runs {command:?} {args:?}, which names no config file")]
    NoConfigPath {
        command: Vec<String>,
        args: Vec<String>,
    },
    #[error("no volumeMount of the chromadb container holds {path}")]
    NotMounted { path: String },
    #[error("the volume `{volume}` mounted for {path} is not a ConfigMap volume in the pod")]
    NotAConfigMap { volume: String, path: String },
    #[error("ConfigMap `{name}` (mounted for {path}) is not part of the render")]
    MissingConfigMap { name: String, path: String },
    #[error("ConfigMap `{name}` has no key `{key}` for {path}")]
    MissingKey {
        name: String,
        key: String,
        path: String,
    },
    #[error("the config file {path} in ConfigMap `{name}` is not valid YAML: {source}")]
    Yaml {
        path: String,
        name: String,
        #[source]
        source: serde_yaml::Error,
    },
}

/// Where a config file lives in a render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSource {
    pub path: String,
    pub configmap: String,
    pub key: String,
}

impl Rendered {
    /// The config file path the chromadb container starts with: the argument after `run`
    /// (`chroma run <path>`), or the image default when neither command nor args are set.
    /// (A Python-era container has no such file: this is an error there, or points at a path
    /// nothing mounts.)
    pub fn server_config_path(&self) -> Result<String, ConfigError> {
        let c = self.chroma_container().ok_or(ConfigError::NoContainer)?;
        let command = c.command.clone().unwrap_or_default();
        let args = c.args.clone().unwrap_or_default();
        if command.is_empty() && args.is_empty() {
            return Ok(IMAGE_DEFAULT_CONFIG_PATH.to_string());
        }
        let all: Vec<&String> = command.iter().chain(args.iter()).collect();
        all.windows(2)
            .find(|w| w[0] == "run")
            .map(|w| w[1].clone())
            .ok_or(ConfigError::NoConfigPath { command, args })
    }

    /// The ConfigMap and key that the container's config path resolves to.
    pub fn server_config_source(&self) -> Result<ConfigSource, ConfigError> {
        let path = self.server_config_path()?;
        let c = self.chroma_container().ok_or(ConfigError::NoContainer)?;
        let mount = self
            .mount_for(c, &path)
            .ok_or_else(|| ConfigError::NotMounted { path: path.clone() })?;
        let not_cm = || ConfigError::NotAConfigMap {
            volume: mount.name.clone(),
            path: path.clone(),
        };
        let volume = self.volume(&mount.name).ok_or_else(not_cm)?;
        let cm = volume.config_map.as_ref().ok_or_else(not_cm)?;
        // With subPath the mount is the file itself; without, the file is `<rest>` inside the dir.
        let rel = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => sub.to_string(),
            None => path
                .strip_prefix(mount.mount_path.trim_end_matches('/'))
                .unwrap_or(&path)
                .trim_start_matches('/')
                .to_string(),
        };
        // `items` maps keys to paths inside the volume; without items each key is a file.
        let key = cm
            .items
            .iter()
            .flatten()
            .find(|i| i.path == rel)
            .map(|i| i.key.clone())
            .unwrap_or(rel);
        Ok(ConfigSource {
            path,
            configmap: cm.name.clone(),
            key,
        })
    }

    /// The config file's text as the server would read it.
    pub fn server_config_text(&self) -> Result<String, ConfigError> {
        let src = self.server_config_source()?;
        let cm = self
            .configmap(&src.configmap)
            .ok_or_else(|| ConfigError::MissingConfigMap {
                name: src.configmap.clone(),
                path: src.path.clone(),
            })?;
        cm.data
            .as_ref()
            .and_then(|d| d.get(&src.key))
            .cloned()
            .ok_or(ConfigError::MissingKey {
                name: src.configmap,
                key: src.key,
                path: src.path,
            })
    }

    /// The whole config document, untyped.
    pub fn server_config_doc(&self) -> Result<Value, ConfigError> {
        let src = self.server_config_source()?;
        let text = self.server_config_text()?;
        serde_yaml::from_str(&text).map_err(|source| ConfigError::Yaml {
            path: src.path,
            name: src.configmap,
            source,
        })
    }

    /// The config document with the chart-managed keys typed.
    pub fn server_config(&self) -> Result<ServerConfig, ConfigError> {
        let src = self.server_config_source()?;
        let text = self.server_config_text()?;
        serde_yaml::from_str(&text).map_err(|source| ConfigError::Yaml {
            path: src.path,
            name: src.configmap,
            source,
        })
    }
}
