//! One release's results in a run over releases: how each check ended on each deployment.
//! Its own module because both the compatibility report (`compat`) and the per-release saves
//! (`saved`) hold it.

use render::ChromaVersion;
use serde::{Deserialize, Serialize};

use crate::checks::CheckName;

/// How one check ended on one deployment of one release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    /// Expected failure: the release's own fault, recorded in fixtures/versions.yaml.
    Xfail,
    /// The check does not apply here (the reason says which rule of the spec).
    Skip,
    /// The spec refuses the deployment's values on this release and helm refused them too:
    /// the chart's own gate at work, nothing deployed.
    Refused,
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Xfail => "XFAIL",
            Status::Skip => "SKIP",
            Status::Refused => "REFUSED",
            Status::Fail => "FAIL",
        }
    }

    /// Proves the behaviour the spec model expects here.
    pub fn proven(self) -> bool {
        matches!(self, Status::Pass | Status::Refused | Status::Xfail)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub deployment: String,
    #[serde(with = "check_name")]
    pub check: CheckName,
    pub status: Status,
    /// Why, for everything but PASS.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseResult {
    pub version: ChromaVersion,
    /// The day it was measured (UTC, YYYY-MM-DD); empty in reports made before releases were
    /// dated, where the report's date stands for all.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub date: String,
    /// Wall time of this release's deployments (its environment ready beforehand).
    pub seconds: f64,
    /// Time to make its environment or image ready (0 when another run had made it).
    pub prepare_seconds: f64,
    pub cells: Vec<Cell>,
}

/// Check names as the CLI spells them (`api-surface`); the checks module owns the type.
mod check_name {
    use super::CheckName;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(c: &CheckName, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(c)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<CheckName, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}
