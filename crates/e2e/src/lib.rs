//! Live conformance harness: run what the chart renders on a backend, then probe the real
//! Chroma API and compare what it does with what the spec model says it must do.

pub mod backend;
pub mod checks;
pub mod cluster;
pub mod combinations;
pub mod dataset;
pub mod host;
pub mod latency_plot;
pub mod metrics_plot;
pub mod node;
pub mod otlp;
pub mod prepare;
pub mod process;
pub mod progress;
pub mod random;
pub mod releases;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod text;
pub mod tls;
pub mod upgrade;
pub mod vectors;
pub mod venv;
pub mod workload;

pub use backend::{Backend, BackendError, Deployed, HookRun, Release};
