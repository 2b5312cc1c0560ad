//! Where the chart of each side of an upgrade comes from: a directory, or a git ref of this
//! repository extracted (`git archive REF charts/chromadb | tar -x`) into a temp dir that is
//! removed on drop and on Ctrl-C (it is registered with the process backend's cleanup).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A chart ready to render; the temp checkout (if any) lives as long as this value.
#[derive(Debug)]
pub struct ChartCheckout {
    pub path: PathBuf,
    /// How the report names it: the path, or `git:REF (abc1234)`.
    pub label: String,
    temp: Option<PathBuf>,
}

impl ChartCheckout {
    pub fn dir(path: impl Into<PathBuf>, label: impl Into<String>) -> ChartCheckout {
        ChartCheckout {
            path: path.into(),
            label: label.into(),
            temp: None,
        }
    }
    /// The temp dir holding an extracted ref (for leak tests).
    pub fn temp_dir(&self) -> Option<&Path> {
        self.temp.as_deref()
    }
}

impl Drop for ChartCheckout {
    fn drop(&mut self) {
        if let Some(t) = self.temp.take() {
            let _ = std::fs::remove_dir_all(&t);
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{flag} {spec}: {reason}")]
pub struct ChartError {
    pub flag: String,
    pub spec: String,
    pub reason: String,
    /// The failure of a program or file operation, when one caused it.
    #[source]
    pub source: Option<std::io::Error>,
}

/// Path of the chart inside the repository (what `git archive` extracts).
pub const CHART_IN_REPO: &str = "charts/chromadb";

/// `spec` is a chart directory (has Chart.yaml), a checkout root holding charts/chromadb, or
/// a git ref of `repo`. `flag` names the option in errors.
pub fn resolve(spec: &str, repo: &Path, flag: &str) -> Result<ChartCheckout, ChartError> {
    let err = |reason: String| ChartError {
        flag: flag.to_string(),
        spec: spec.to_string(),
        reason,
        source: None,
    };
    let io = |what: &'static str| {
        move |e: std::io::Error| ChartError {
            flag: flag.to_string(),
            spec: spec.to_string(),
            reason: what.to_string(),
            source: Some(e),
        }
    };
    let p = Path::new(spec);
    if p.join("Chart.yaml").is_file() {
        return Ok(ChartCheckout::dir(p, spec));
    }
    if p.join(CHART_IN_REPO).join("Chart.yaml").is_file() {
        return Ok(ChartCheckout::dir(p.join(CHART_IN_REPO), spec));
    }
    if p.is_dir() {
        return Err(err(format!(
            "a directory without Chart.yaml (nor {CHART_IN_REPO}/Chart.yaml); give a chart directory or a git ref"
        )));
    }
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{spec}^{{commit}}"),
        ])
        .output()
        .map_err(io("running git to resolve it as a ref"))?;
    if !out.status.success() {
        return Err(err(format!(
            "neither a chart directory nor a git ref of {} (e.g. a commit, tag or HEAD~3)",
            repo.display()
        )));
    }
    let sha = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let temp = tempfile::Builder::new()
        .prefix("chromadb-upgrade-chart-")
        .tempdir()
        .map_err(io("creating a temp dir"))?
        .keep();
    // From here on the checkout owns the dir: an early return removes it.
    let checkout = ChartCheckout {
        path: temp.join(CHART_IN_REPO),
        label: format!("git:{spec} ({})", &sha[..sha.len().min(10)]),
        temp: Some(temp.clone()),
    };
    let mut archive = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["archive", "--format=tar", &sha, CHART_IN_REPO])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("running git archive"))?;
    let stdout = archive
        .stdout
        .take()
        .ok_or_else(|| err("git archive gave no stdout".into()))?;
    let untar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&temp)
        .stdin(stdout)
        .output()
        .map_err(io("running tar"))?;
    let archived = archive
        .wait_with_output()
        .map_err(io("waiting for git archive"))?;
    if !archived.status.success() {
        return Err(err(format!(
            "git archive {sha} {CHART_IN_REPO} failed: {}",
            String::from_utf8_lossy(&archived.stderr).trim()
        )));
    }
    if !untar.status.success() {
        return Err(err(format!(
            "extracting the archive failed: {}",
            String::from_utf8_lossy(&untar.stderr).trim()
        )));
    }
    if !checkout.path.join("Chart.yaml").is_file() {
        return Err(err(format!("the ref has no {CHART_IN_REPO}/Chart.yaml")));
    }
    Ok(checkout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .unwrap()
    }

    #[test]
    fn a_git_ref_is_extracted_and_removed_on_drop() {
        let c = resolve("HEAD", &repo(), "--from-chart").unwrap();
        let temp = c.temp_dir().unwrap().to_path_buf();
        assert!(c.path.join("Chart.yaml").is_file());
        drop(c);
        assert!(!temp.exists(), "{} leaked", temp.display());
    }

    #[test]
    fn an_unknown_ref_names_the_flag_and_the_input() {
        let e = resolve("no-such-ref-xyz", &repo(), "--from-chart")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--from-chart no-such-ref-xyz:") && e.contains("git ref"),
            "{e}"
        );
    }

    #[test]
    fn a_directory_without_chart_yaml_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let e = resolve(d.path().to_str().unwrap(), &repo(), "--from-chart")
            .unwrap_err()
            .to_string();
        assert!(e.contains("without Chart.yaml"), "{e}");
    }
}
