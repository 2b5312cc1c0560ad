//! Renders the chromadb chart with the real helm binary into typed Kubernetes objects, and
//! models what the chart's spec promises for a set of values on a Chroma version.
//!
//! Two halves that must never feed each other: [`RenderRequest`] → [`Rendered`] is what the
//! chart *does*; [`spec::Expected`] is what the spec says it *should* do, derived from the
//! values and the version alone. Tests and live checks compare the two.

pub mod helm;
pub mod objects;
pub mod spec;
pub mod version;

pub use helm::{Helm, RenderError, RenderRequest};
pub use objects::{Object, Rendered};
pub use spec::{ApiPrefix, Auth, Expected, SpecError, TokenHeader};
pub use version::ChromaVersion;
