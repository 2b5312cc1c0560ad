//! Scenarios: named values files from fixtures/values, grouped into a few deployments per version.
