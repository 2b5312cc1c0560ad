//! The host-programs step as xtask shows it: `e2e::host::ensure` (the one function every
//! command and deploying test goes through) with a line saying what it did.

use anyhow::{Context, Result};

/// Ensures the process backend's host programs, printing what is installed.
pub fn ensure() -> Result<()> {
    let missing = e2e::host::missing();
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = missing
        .iter()
        .map(|p| format!("{} ({}: {})", p.name, p.package, p.role))
        .collect();
    eprintln!("host programs: installing {}", list.join(", "));
    let done = e2e::host::ensure().context("the process backend's host programs")?;
    if !done.installed.is_empty() {
        eprintln!("host programs: installed {}", done.installed.join(" "));
    }
    Ok(())
}
