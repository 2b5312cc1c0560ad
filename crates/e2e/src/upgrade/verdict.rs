//! How a transition ended: what the plan expects and what a signature is judged against, in a
//! file of its own so that the plan and the signature both read it and neither reads the other.

use serde::{Deserialize, Serialize};

/// How a transition ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every record is there, unchanged, and B passes its checks.
    Survived,
    /// B runs but records or collections are missing, changed or unreadable.
    DataLost,
    /// B refused to start on A's data, or started but answers every read of it with a
    /// server error (its log and answers say why).
    Incompatible,
    /// The data survived but a conformance check failed on B.
    ChecksFailed,
    /// A could not be deployed or written to: the transition was not exercised.
    SetupFailed,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Survived => "survived",
            Verdict::DataLost => "data-lost",
            Verdict::Incompatible => "incompatible",
            Verdict::ChecksFailed => "checks-failed",
            Verdict::SetupFailed => "setup-failed",
        }
    }
}
