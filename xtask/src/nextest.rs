//! The pinned cargo-nextest, built from crates.io into `target/tools/` the first time the test
//! command needs it: it counts each workspace test and writes the JUnit file CI reads, which
//! plain `cargo test` does not.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::cmd;

const VERSION: &str = "0.9.151";

/// The path of the pinned cargo-nextest binary, installing it (`cargo install --locked`) when
/// it is not there yet.
pub fn ensure() -> Result<PathBuf> {
    let root = crate::tools::tools_dir().join(format!("cargo-nextest-{VERSION}"));
    let bin = root.join("bin/cargo-nextest");
    if runs(&bin) {
        return Ok(bin);
    }
    eprintln!("cargo-nextest {VERSION}: building it from crates.io into {} (once; a few minutes on 2 cores)", root.display());
    let started = Instant::now();
    let mut c = cmd::cargo();
    c.args(["install", "--locked", "--quiet", "--root"]).arg(&root).arg(format!("cargo-nextest@{VERSION}"));
    // Its own target dir, so the workspace's build is not invalidated by another profile.
    c.env("CARGO_TARGET_DIR", crate::tools::tools_dir().join("cargo-nextest-build"));
    cmd::run(&mut c).context("installing the pinned cargo-nextest")?;
    let _ = std::fs::remove_dir_all(crate::tools::tools_dir().join("cargo-nextest-build"));
    if !runs(&bin) {
        bail!("cargo install put no working cargo-nextest at {}", bin.display());
    }
    eprintln!("cargo-nextest {VERSION}: ready in {:.0}s", started.elapsed().as_secs_f64());
    Ok(bin)
}

fn runs(bin: &std::path::Path) -> bool {
    cmd::probe(std::process::Command::new(bin).args(["nextest", "--version"])).is_some_and(|v| v.contains(VERSION))
}
