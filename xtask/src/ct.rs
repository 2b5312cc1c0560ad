//! `ct lint` (helm/chart-testing), the chart maintainers' own linter, as a step of the test
//! command: ct from its Go module (xtask/go/ct, built like the cluster programs), the
//! yamllint and yamale it shells out to from PyPI in a uv venv, and our own yamllint rules
//! and Chart.yaml schema in `.ct/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::cmd;
use crate::gotools::{self, CT};
use crate::tools_dir;

/// What ct runs besides helm, pinned.
pub const PYTHON_REQUIREMENTS: [&str; 2] = ["yamllint==1.38.0", "yamale==6.1.0"];

/// ct and the directory holding its yamllint and yamale.
#[derive(Debug, Clone)]
pub struct ChartTesting {
    pub version: String,
    pub ct: PathBuf,
    pub python_bin: PathBuf,
}

/// Builds ct (once per pin) and makes the venv (once per requirement list).
pub fn ensure(uv: &Path) -> Result<ChartTesting> {
    let built = gotools::ensure(&CT)?;
    let venv = tools_dir().join(format!(
        "ct-python-{}",
        &digest(&PYTHON_REQUIREMENTS.join("\n"))[..12]
    ));
    let done = venv.join(".complete");
    if !done.is_file() {
        if venv.exists() {
            fs::remove_dir_all(&venv)
                .with_context(|| format!("removing the incomplete {}", venv.display()))?;
        }
        let mut c = Command::new(uv);
        c.args(["venv", "--quiet", "--python", "3.11"]).arg(&venv);
        anyhow::ensure!(
            cmd::run_status(&mut c)?,
            "uv could not make the venv {} for ct's yamllint and yamale",
            venv.display()
        );
        let mut c = Command::new(uv);
        c.args(["pip", "install", "--quiet", "--python"])
            .arg(venv.join("bin/python"))
            .args(PYTHON_REQUIREMENTS);
        anyhow::ensure!(
            cmd::run_status(&mut c)?,
            "uv could not install {} into {}",
            PYTHON_REQUIREMENTS.join(" "),
            venv.display()
        );
        fs::write(&done, PYTHON_REQUIREMENTS.join("\n"))?;
    }
    Ok(ChartTesting {
        ct: built.path("ct"),
        version: built.version.clone(),
        python_bin: venv.join("bin"),
    })
}

fn digest(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// `ct lint` of charts/chromadb. The flags make it work in any clone, with or without a
/// remote: `--charts` names the chart instead of diffing against a target branch,
/// `--check-version-increment=false` (that check compares with the target branch's
/// Chart.yaml, so it needs `origin`), `--validate-maintainers=false` (that one asks the
/// GitHub API whether each maintainer name is an account; ours is a team name with a URL).
pub fn lint_command(root: &Path, helm: &Path, ct: &ChartTesting) -> Command {
    let mut c = Command::new(&ct.ct);
    c.current_dir(root);
    let helm_dir = helm.parent().map(Path::to_path_buf).unwrap_or_default();
    let path = std::env::join_paths([ct.python_bin.clone(), helm_dir].into_iter().chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap_or_default();
    c.env("PATH", path);
    c.args([
        "lint",
        "--charts",
        "charts/chromadb",
        "--validate-maintainers=false",
        "--check-version-increment=false",
    ]);
    c.arg("--lint-conf").arg(root.join(".ct/lintconf.yaml"));
    c.arg("--chart-yaml-schema")
        .arg(root.join(".ct/chart_schema.yaml"));
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lint_finds_its_python_tools_and_helm_first_and_our_own_rules() {
        let ct = ChartTesting {
            version: "v3.14.0".into(),
            ct: "/t/ct".into(),
            python_bin: "/t/py/bin".into(),
        };
        let c = lint_command(Path::new("/repo"), Path::new("/opt/helm/bin/helm"), &ct);
        let path = c
            .get_envs()
            .find(|(k, _)| *k == "PATH")
            .and_then(|(_, v)| v)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(path.starts_with("/t/py/bin:/opt/helm/bin:"), "{path}");
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        for want in [
            "--charts",
            "charts/chromadb",
            "--check-version-increment=false",
            "--validate-maintainers=false",
            "/repo/.ct/lintconf.yaml",
            "/repo/.ct/chart_schema.yaml",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} not in {args:?}");
        }
    }

    #[test]
    fn the_rules_ct_is_pointed_at_are_in_the_repository() {
        for f in [".ct/lintconf.yaml", ".ct/chart_schema.yaml"] {
            assert!(crate::project_root().join(f).is_file(), "{f}");
        }
    }
}
