//! Renders the chromadb chart with the real helm binary into typed Kubernetes objects, and
//! models what the chart's spec promises for a set of values on a Chroma version.
//!
//! Two halves that must never feed each other: [`RenderRequest`] → [`Rendered`] is what the
//! chart *does*; [`spec::Expected`] is what the spec says it *should* do, derived from the
//! values and the version alone. Tests and live checks compare the two.

pub mod cache;
pub mod env;
pub mod helm;
pub mod hooks;
pub mod labels;
pub mod matrix;
pub mod objects;
pub mod pod;
pub mod quantity;
pub mod server_config;
pub mod spec;
// The version model lives in `chroma-api`, shared with the backup tool.
pub use chroma_api::version;
pub mod yaml11;

pub use cache::RenderCache;
pub use env::{EnvEntry, EnvFromEntry, EnvFromKind, EnvValue};
pub use helm::{Helm, RenderError, RenderRequest};
pub use labels::LabelSite;
pub use matrix::{ExpectedFailure, KnownFailure, MatrixEntry, MatrixError, VersionMatrix};
pub use objects::{CHROMA_CONTAINER, Object, Rendered, chroma_container_of};
pub use pod::ProbeKind;
pub use server_config::{ConfigError, ServerConfig};
pub use spec::{
    ApiPrefix, Auth, Expected, ExpectedMetrics, OpenBecause, OtelFilter, ServiceMonitorMode,
    SpecError, Telemetry, TokenHeader,
};
pub use version::ChromaVersion;
