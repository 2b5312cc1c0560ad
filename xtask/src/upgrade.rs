//! `cargo xtask upgrade`: placeholder until upgrade reproduction lands (issue 7).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Flags {}

pub fn run(_flags: Flags) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`cargo xtask upgrade` is not wired yet")
}
