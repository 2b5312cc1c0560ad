//! The image references the spec's `image.*`, `initImage.*` and `global.*` rules produce.

use serde_yaml::Value;

use super::SpecError;
use super::values::{lookup, parse_str};
use crate::version::ChromaVersion;

/// The spec's documented image defaults.
pub const DEFAULT_REPOSITORY: &str = "ghcr.io/chroma-core/chroma";
pub const DEFAULT_INIT_REPOSITORY: &str = "docker.io/httpd";
pub const DEFAULT_INIT_TAG: &str = "2";
pub const DEFAULT_PULL_POLICY: &str = "IfNotPresent";

/// A container image as the spec resolves it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExpectedImage {
    /// `registry/repository:tag` or `registry/repository@digest`.
    pub reference: String,
    pub pull_policy: String,
}

/// `prefix.registry` beats `global.imageRegistry`; a digest beats the tag.
fn resolve(
    values: &Value,
    prefix: &str,
    repository: &str,
    tag: &str,
) -> Result<ExpectedImage, SpecError> {
    let own = parse_str(values, &format!("{prefix}.registry"), "")?;
    let registry = if own.is_empty() {
        parse_str(values, "global.imageRegistry", "")?
    } else {
        own
    };
    let repository = parse_str(values, &format!("{prefix}.repository"), repository)?;
    let digest = parse_str(values, &format!("{prefix}.digest"), "")?;
    let tag = match parse_str(values, &format!("{prefix}.tag"), "")? {
        "" => tag,
        t => t,
    };
    let name = if registry.is_empty() {
        repository.to_string()
    } else {
        format!("{registry}/{}", without_registry(repository))
    };
    let reference = if digest.is_empty() {
        format!("{name}:{tag}")
    } else {
        format!("{name}@{digest}")
    };
    let pull_policy =
        parse_str(values, &format!("{prefix}.pullPolicy"), DEFAULT_PULL_POLICY)?.to_string();
    Ok(ExpectedImage {
        reference,
        pull_policy,
    })
}

/// The repository path without its registry host. A registry *override* replaces the host
/// the repository names (`ghcr.io` in `ghcr.io/chroma-core/chroma`); the first segment is a
/// host when it has a `.` or `:` or is `localhost`, as in Docker's reference grammar.
pub fn without_registry(repository: &str) -> &str {
    match repository.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            rest
        }
        _ => repository,
    }
}

/// The Chroma server image: the tag defaults to the Chroma version being deployed
/// (`chromadb.apiVersion`), so the image and the version gates always agree.
pub fn chroma_image(values: &Value, version: &ChromaVersion) -> Result<ExpectedImage, SpecError> {
    resolve(values, "image", DEFAULT_REPOSITORY, &version.to_string())
}

/// The basic-auth init container image (httpd, for `htpasswd`).
pub fn init_image(values: &Value) -> Result<ExpectedImage, SpecError> {
    resolve(
        values,
        "initImage",
        DEFAULT_INIT_REPOSITORY,
        DEFAULT_INIT_TAG,
    )
}

/// The pod's pull secrets: chart list then global list, by name.
pub fn pull_secrets(values: &Value) -> Vec<String> {
    ["imagePullSecrets", "global.imagePullSecrets"]
        .iter()
        .filter_map(|k| lookup(values, k).and_then(Value::as_sequence))
        .flatten()
        .filter_map(|s| match s {
            Value::String(n) => Some(n.clone()),
            other => lookup(other, "name")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
        .collect()
}
