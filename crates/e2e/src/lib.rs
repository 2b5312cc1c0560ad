//! Live conformance harness.
