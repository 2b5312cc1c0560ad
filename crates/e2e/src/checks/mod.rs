//! Conformance checks: each probes the live API and compares with the spec model.
