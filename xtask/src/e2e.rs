//! `cargo xtask e2e`: placeholder until the live harness lands (issue 5).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Flags {}

pub fn run(_flags: Flags) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`cargo xtask e2e` is not wired yet")
}

/// The live smoke subset for `cargo xtask test`.
pub fn smoke(_tools: &crate::tools::Toolset) -> anyhow::Result<crate::test::Tally> {
    anyhow::bail!("the live smoke matrix is not wired yet")
}
