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

fn announce(cmd: &Command) {
    eprintln!("$ {}", display(cmd));
}

/// Runs with inherited stdio; fails with the command line if it exits non-zero.
pub fn run(cmd: &mut Command) -> Result<()> {
    announce(cmd);
    let status = cmd.status().with_context(|| format!("could not start `{}`", display(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(cmd));
    }
    Ok(())
}

/// Runs with inherited stdio and reports whether it succeeded (for steps counted as
/// passed/failed rather than aborting).
pub fn run_status(cmd: &mut Command) -> Result<bool> {
    announce(cmd);
    let status = cmd.status().with_context(|| format!("could not start `{}`", display(cmd)))?;
    Ok(status.success())
}

/// Captures output without announcing (for cheap probes such as `helm version`, which run on
/// every invocation and would only add noise).
pub fn probe(cmd: &mut Command) -> Option<String> {
    let out = cmd.stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_arguments_with_spaces() {
        let mut c = Command::new("helm");
        c.args(["template", "a b", "--set", "x=$y"]);
        assert_eq!(display(&c), "helm template 'a b' --set 'x=$y'");
    }
}
