//! Every Chroma release on PyPI: the list (`pypi`), the compatibility report and README table
//! of a run over them (`compat`), and the spec model's version gates held against it (`gates`).

pub mod compat;
pub mod gates;
pub mod pypi;
