//! The one way xtask shells out: print the command, run it, turn failure into an error that
//! names the command.

use std::ffi::OsStr;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// How a command line reads in logs: program and arguments, quoted where needed.
pub fn display(cmd: &Command) -> String {
    let quote = |s: &OsStr| {
        let s = s.to_string_lossy();
        if s.is_empty() || s.contains([' ', '"', '\'', '$']) {
            format!("'{}'", s.replace('\'', "'\\''"))
        } else {
            s.into_owned()
        }
    };
    std::iter::once(quote(cmd.get_program()))
        .chain(cmd.get_args().map(quote))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A nested `cargo` that builds exactly as the `cargo xtask` that started it did. `cargo run`
/// hands xtask its package's variables (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, …), and build
/// scripts such as ring's rerun when those change: passed on, they would make the nested
/// build recompile ring and everything above it (kube, reqwest, rustls) a second time.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    drop_cargo_run_vars(&mut c);
    c
}

/// Removes from `c`'s environment the package variables `cargo run` handed xtask, for any
/// program that runs cargo itself (cargo-nextest).
pub fn drop_cargo_run_vars(c: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(is_cargo_run_package_var) {
            c.env_remove(&key);
        }
    }
}

fn is_cargo_run_package_var(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || key.starts_with("CARGO_MANIFEST_")
        || matches!(
            key,
            "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_RUSTC_CURRENT_DIR"
        )
}

fn announce(cmd: &Command) {
    eprintln!("$ {}", display(cmd));
}

/// Runs with inherited stdio; fails with the command line if it exits non-zero.
pub fn run(cmd: &mut Command) -> Result<()> {
    announce(cmd);
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{}`", display(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(cmd));
    }
    Ok(())
}

/// Runs with inherited stdio and reports whether it succeeded (for steps counted as
/// passed/failed rather than aborting).
pub fn run_status(cmd: &mut Command) -> Result<bool> {
    announce(cmd);
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{}`", display(cmd)))?;
    Ok(status.success())
}

/// Captures output without announcing (for cheap probes such as `helm version`, which run on
/// every invocation and would only add noise).
pub fn probe(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_cargo_drops_the_package_variables_of_cargo_run_and_keeps_the_rest() {
        assert!(is_cargo_run_package_var("CARGO_PKG_NAME"));
        assert!(is_cargo_run_package_var("CARGO_MANIFEST_DIR"));
        assert!(!is_cargo_run_package_var("CARGO_HOME"));
        assert!(!is_cargo_run_package_var("CARGO_TARGET_DIR"));
        assert!(!is_cargo_run_package_var("CARGO"));
    }

    #[test]
    fn display_quotes_arguments_with_spaces() {
        let mut c = Command::new("helm");
        c.args(["template", "a b", "--set", "x=$y"]);
        assert_eq!(display(&c), "helm template 'a b' --set 'x=$y'");
    }
}
