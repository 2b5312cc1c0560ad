//! Every Chroma release on PyPI: the list (`pypi`), the compatibility report and README table
//! of a run over them (`compat`), each release's results saved as it finishes so a run resumes
//! (`saved`), and the spec model's version gates held against them (`gates`).

pub mod compat;
pub mod gates;
pub mod pypi;
pub mod result;
pub mod saved;

/// The checks the gates and the table name, by their names in the checks table.
pub mod check {
    use crate::checks::CheckName;

    pub const API_SURFACE: CheckName = CheckName::named("api-surface");
    pub const AUTH: CheckName = CheckName::named("auth");
    pub const CORS: CheckName = CheckName::named("cors");
    pub const FAULTS_FULL_VOLUME: CheckName = CheckName::named("faults-full-volume");
    pub const PAYLOAD: CheckName = CheckName::named("payload");
    pub const PERSISTENCE: CheckName = CheckName::named("persistence");
    pub const RESET: CheckName = CheckName::named("reset");
    pub const TELEMETRY: CheckName = CheckName::named("telemetry");
}
