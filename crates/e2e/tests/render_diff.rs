//! The chart's render, byte for byte, against the chart of a git ref: every version of
//! fixtures/versions.yaml × every values scenario (fixtures/values/*.yaml), every live
//! deployment (fixtures/live.yaml) and every row of the version's combination array. For
//! changes that must not change what is rendered, such as the helpers split of issue 26.
//!
//! It lives in e2e, not render, because the live deployments and the combination rows are
//! e2e's (render cannot depend on e2e). Both sides are written under
//! `$CARGO_TARGET_TMPDIR/render-diff/{base,head}`, so a failure is read with `diff -r`.
//!
//! Run: `RENDER_DIFF_BASE=main HELM=$(cargo xtask tools --print helm) cargo test -p e2e --test render_diff -- --ignored --nocapture`

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use e2e::combinations::Fragments;
use e2e::scenario::LivePlan;
use render::{ChromaVersion, Helm, RenderError, RenderRequest, VersionMatrix};

/// helm's longest release name (54 characters and more are refused): the combination rows
/// render under it, as `combinations_render` does, so name truncation is compared too.
const LONGEST_RELEASE: &str = "a-release-name-of-fifty-three-characters-helm-allows1";
/// What the harness's OTLP receiver address becomes in a render (fixed, so both sides match).
const OTLP_RECEIVER: &str = "http://127.0.0.1:4317";
/// The CRD the chart's ServiceMonitor gate asks the cluster for.
const SERVICE_MONITOR_API: &str = "monitoring.coreos.com/v1/ServiceMonitor";

/// One render, made twice: once from the base chart, once from the working tree's.
struct Case {
    /// Relative output path: `<version>/<kind>-<name>.yaml`.
    label: String,
    version: ChromaVersion,
    release: &'static str,
    files: Vec<PathBuf>,
    /// Run-time values (the OTLP receiver), layered over `files`.
    runtime: Option<serde_yaml::Value>,
    api_versions: Vec<&'static str>,
}

impl Case {
    fn request(&self, chart: &Path) -> RenderRequest {
        let mut req = RenderRequest::new(chart)
            .version(self.version.clone())
            .release(self.release);
        for f in &self.files {
            req = req.values_file(f);
        }
        if let Some(doc) = &self.runtime {
            req = req.values(doc.clone());
        }
        for gv in &self.api_versions {
            req = req.api_version(*gv);
        }
        req
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `charts/chromadb` as it is at `git_ref`, extracted under `into`.
fn chart_at(git_ref: &str, into: &Path) -> PathBuf {
    let mut archive = Command::new("git")
        .arg("-C")
        .arg(repo_root())
        .args(["archive", "--format=tar", git_ref, "charts/chromadb"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("git archive: {e}"));
    let stdout = archive
        .stdout
        .take()
        .expect("git archive's stdout is piped");
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(into)
        .stdin(stdout)
        .status()
        .unwrap_or_else(|e| panic!("tar: {e}"));
    let git = archive
        .wait()
        .unwrap_or_else(|e| panic!("git archive: {e}"));
    assert!(
        git.success() && tar.success(),
        "RENDER_DIFF_BASE={git_ref}: `git archive {git_ref} charts/chromadb | tar -x` failed (git {git}, tar {tar}); name a commit, branch or tag of this repository"
    );
    let chart = into.join("charts/chromadb");
    assert!(
        chart.join("Chart.yaml").is_file(),
        "{git_ref} has no charts/chromadb/Chart.yaml"
    );
    chart
}

/// What a render printed, comparable across runs: helm's output with the values a fresh
/// install generates at random (the auth Secret's token and password) replaced, or helm's
/// refusal without the template location (`at (chromadb/templates/x.tpl:3:4)`), which moves
/// with the helpers by design while the message may not.
fn comparable(result: Result<String, RenderError>) -> String {
    match result {
        Ok(out) => {
            let mut kind = "";
            let mut lines = Vec::new();
            for line in out.lines() {
                if line == "---" {
                    kind = "";
                } else if let Some(k) = line.strip_prefix("kind: ") {
                    kind = k;
                }
                let random = kind == "Secret"
                    && (line.starts_with("  token: \"") || line.starts_with("  password: \""));
                lines.push(if random {
                    line.split_once(": ")
                        .map_or(line.to_string(), |(k, _)| format!("{k}: <random>"))
                } else {
                    line.to_string()
                });
            }
            let mut text = lines.join("\n");
            if out.ends_with('\n') {
                text.push('\n');
            }
            text
        }
        Err(RenderError::Helm { message }) => format!("REFUSED\n{}\n", without_locations(&message)),
        Err(other) => panic!("helm could not be run: {other}"),
    }
}

fn without_locations(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(i) = rest.find("(chromadb/templates/") {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let end = after.find(')').map_or(after.len(), |e| e + 1);
        out.push_str("(<template>)");
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn cases(matrix: &VersionMatrix) -> Vec<Case> {
    let root = repo_root();
    let values_dir = root.join("fixtures/values");
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(&values_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", values_dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    scenarios.sort();
    let live = LivePlan::load(&root.join("fixtures/live.yaml"), &values_dir)
        .unwrap_or_else(|e| panic!("{e}"));
    let fragments = Fragments::load(&values_dir).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    for version in matrix.all() {
        let case = |label: String, release, files: Vec<PathBuf>| Case {
            label,
            version: version.clone(),
            release,
            files,
            runtime: None,
            api_versions: Vec::new(),
        };
        for path in &scenarios {
            let name = path
                .file_stem()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            out.push(case(
                format!("{version}/scenario-{name}.yaml"),
                "chroma",
                vec![path.clone()],
            ));
            // The ServiceMonitor renders only where the cluster serves its CRD.
            let text =
                std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if text.lines().any(|l| l.starts_with("metrics:")) {
                let mut c = case(
                    format!("{version}/scenario-{name}+servicemonitor-crd.yaml"),
                    "chroma",
                    vec![path.clone()],
                );
                c.api_versions.push(SERVICE_MONITOR_API);
                out.push(c);
            }
        }
        for d in &live.deployments {
            let mut c = case(
                format!("{version}/live-{}.yaml", d.name),
                "chroma",
                d.values_files.clone(),
            );
            if !d.runtime.is_empty() {
                c.runtime = Some(d.runtime_values(|_| OTLP_RECEIVER.to_string()));
            }
            out.push(c);
        }
        let array = fragments
            .array(version)
            .unwrap_or_else(|e| panic!("{version}: {e}"));
        for d in fragments.plan(&array, None).deployments {
            let mut c = case(
                format!("{version}/{}.yaml", d.name),
                LONGEST_RELEASE,
                d.values_files.clone(),
            );
            if !d.runtime.is_empty() {
                c.runtime = Some(d.runtime_values(|_| OTLP_RECEIVER.to_string()));
            }
            out.push(c);
        }
    }
    out
}

#[test]
#[ignore = "compares with the chart of the git ref RENDER_DIFF_BASE names; run: RENDER_DIFF_BASE=main HELM=$(cargo xtask tools --print helm) cargo test -p e2e --test render_diff -- --ignored --nocapture"]
fn every_render_is_byte_identical_to_the_base_ref() {
    let base_ref = std::env::var("RENDER_DIFF_BASE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| panic!("RENDER_DIFF_BASE is not set: name the git ref whose chart the working tree's must render like, e.g. RENDER_DIFF_BASE=main"));
    let helm = Helm::from_env().unwrap_or_else(|e| {
        panic!("this test needs helm: {e}; export HELM=$(cargo xtask tools --print helm)")
    });
    let root = repo_root();
    let matrix =
        VersionMatrix::load(root.join("fixtures/versions.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let extracted = tempfile::tempdir().expect("temp dir");
    let base_chart = chart_at(&base_ref, extracted.path());
    let head_chart = root.join("charts/chromadb");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("render-diff");
    if out.exists() {
        std::fs::remove_dir_all(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    }

    let cases = cases(&matrix);
    let next = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    let differ = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while let Some(c) = cases.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let base = comparable(c.request(&base_chart).render_raw(&helm));
                    let head = comparable(c.request(&head_chart).render_raw(&helm));
                    if base.starts_with("REFUSED\n") {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    for (side, text) in [("base", &base), ("head", &head)] {
                        let path = out.join(side).join(&c.label);
                        std::fs::create_dir_all(path.parent().expect("a version directory"))
                            .expect("create the output directory");
                        std::fs::write(&path, text)
                            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    }
                    if base != head {
                        differ
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(c.label.clone());
                    }
                }
            });
        }
    });

    let mut differ = differ.into_inner().unwrap_or_else(|p| p.into_inner());
    differ.sort();
    let refused = refused.into_inner();
    println!(
        "{} renders compared ({} versions; {} of them refused on the base, compared by message) against {base_ref}; both sides under {}",
        cases.len(),
        matrix.all().count(),
        refused,
        out.display()
    );
    assert!(
        cases.len() > refused,
        "every render was refused: nothing rendered was compared"
    );
    assert!(
        differ.is_empty(),
        "{} of {} renders differ from {base_ref}'s (see `diff -r {dir}/base {dir}/head`):\n  {}",
        differ.len(),
        cases.len(),
        differ.join("\n  "),
        dir = out.display()
    );
}
