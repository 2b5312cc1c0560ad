//! Chroma versions and the feature floors the chart's spec gates on.

use std::fmt;
use std::str::FromStr;

use semver::Version;

/// A Chroma server release, e.g. `0.4.8` or `1.5.0`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct ChromaVersion(pub Version);

impl TryFrom<String> for ChromaVersion {
    type Error = VersionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ChromaVersion> for String {
    fn from(v: ChromaVersion) -> String {
        v.to_string()
    }
}

/// The spec supports 0.4.3 and later; anything older is refused up front.
pub const OLDEST_SUPPORTED: ChromaVersion = ChromaVersion::new(0, 4, 3);
/// Basic auth (htpasswd) exists from this release.
pub const BASIC_AUTH_FLOOR: ChromaVersion = ChromaVersion::new(0, 4, 7);
/// Token auth exists from this release (0.4.7 crashes on the token provider).
pub const TOKEN_AUTH_FLOOR: ChromaVersion = ChromaVersion::new(0, 4, 8);
/// The `/api/v2` surface appears here; earlier releases serve `/api/v1` only.
pub const API_V2_FLOOR: ChromaVersion = ChromaVersion::new(0, 5, 16);
/// The Rust server: config file instead of env, no built-in auth, payload limits.
pub const RUST_SERVER_FLOOR: ChromaVersion = ChromaVersion::new(1, 0, 0);
/// `CHROMA_SERVER_AUTH_*` settings become `CHROMA_SERVER_AUTHN_*` here.
pub const AUTHN_SETTINGS_FLOOR: ChromaVersion = ChromaVersion::new(0, 5, 0);
/// From here the official image's entrypoint takes host, port and log config from env
/// (`CHROMA_HOST_ADDR`, `CHROMA_HOST_PORT`, `CHROMA_LOG_CONFIG`); older images hard-code them
/// (docs/chroma-eras.md#images-and-entrypoints).
pub const ENTRYPOINT_ENV_FLOOR: ChromaVersion = ChromaVersion::new(0, 4, 23);
/// The token transport-header setting takes the header's name (`Authorization`,
/// `X-Chroma-Token`) from here; before, the enum member name (`AUTHORIZATION`,
/// `X_CHROMA_TOKEN`) (docs/chroma-eras.md#auth).
pub const TOKEN_HEADER_NAME_FLOOR: ChromaVersion = ChromaVersion::new(0, 5, 1);
/// The Python server's collection (segment) cache settings exist from here
/// (docs/chroma-eras.md#settings-per-era).
pub const SEGMENT_CACHE_FLOOR: ChromaVersion = ChromaVersion::new(0, 4, 23);

/// The Python server reads `CHROMA_OTEL_*` and exports traces over OTLP/gRPC from here; before,
/// it has no OpenTelemetry at all (docs/chroma-eras.md#telemetry).
pub const OTEL_SETTINGS_FLOOR: ChromaVersion = ChromaVersion::new(0, 4, 15);
/// The Rust server reads `open_telemetry.filters` from here; 1.0.0–1.0.15 ignore the key
/// (docs/chroma-eras.md#telemetry).
pub const OTEL_FILTERS_FLOOR: ChromaVersion = ChromaVersion::new(1, 0, 16);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{input}` is not a Chroma version: {reason} (expected MAJOR.MINOR.PATCH, 0.4.3 or later, e.g. 0.4.24 or 1.5.0)"
)]
pub struct VersionError {
    pub input: String,
    pub reason: String,
}

impl ChromaVersion {
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        ChromaVersion(Version::new(major, minor, patch))
    }

    /// `>= 1.0.0`: the Rust server.
    pub fn is_rust_server(&self) -> bool {
        *self >= RUST_SERVER_FLOOR
    }

    pub fn has_basic_auth(&self) -> bool {
        *self >= BASIC_AUTH_FLOOR && !self.is_rust_server()
    }

    pub fn has_token_auth(&self) -> bool {
        *self >= TOKEN_AUTH_FLOOR && !self.is_rust_server()
    }

    /// Reads OpenTelemetry settings: `CHROMA_OTEL_*` from 0.4.15, `open_telemetry` on 1.x.
    pub fn has_otel(&self) -> bool {
        *self >= OTEL_SETTINGS_FLOOR
    }

    /// 0.5.0 replaced the `CHROMA_SERVER_AUTH_*` settings with `CHROMA_SERVER_AUTHN_*`.
    pub fn has_authn_settings(&self) -> bool {
        *self >= AUTHN_SETTINGS_FLOOR
    }
}

impl FromStr for ChromaVersion {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim().trim_start_matches('v');
        let v = Version::parse(trimmed).map_err(|e| VersionError {
            input: s.to_string(),
            reason: e.to_string(),
        })?;
        let v = ChromaVersion(v);
        if v < OLDEST_SUPPORTED {
            return Err(VersionError {
                input: s.to_string(),
                reason: "older than the oldest supported release 0.4.3".into(),
            });
        }
        Ok(v)
    }
}

impl fmt::Display for ChromaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_versions_below_the_supported_floor() {
        let err = "0.4.2".parse::<ChromaVersion>().unwrap_err();
        assert!(err.to_string().contains("0.4.3"), "{err}");
    }

    #[test]
    fn rejects_non_semver_input_naming_it() {
        let err = "latest".parse::<ChromaVersion>().unwrap_err();
        assert!(err.to_string().contains("`latest`"), "{err}");
    }
}
