//! The local cluster's upstream programs, built from their Go modules (`cargo xtask tools
//! --cluster`, and `cargo xtask cluster up` on first use).
//!
//! Each build is a small module under `xtask/go/<name>/` whose go.mod pins the upstream
//! release and whose go.sum is committed; its `tool` block names the commands. The binaries
//! land in `target/tools/<dir>-<version>/bin/`, stamped with a digest of go.mod, go.sum and
//! the build flags, so a second run reuses them and an edited pin rebuilds.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::cmd;

/// One `go build` of one module: every command of a module is built by a single invocation,
/// so the packages they share (client-go, apiserver, …) compile once.
#[derive(Debug, Clone, Copy)]
pub struct GoBuild {
    /// The module's folder under `xtask/go/`.
    pub module: &'static str,
    /// The required module whose version names the cache folder.
    pub pinned: &'static str,
    /// The cache folder's name before the version (`k8s` → `target/tools/k8s-v1.37.2`).
    pub prefix: &'static str,
    /// (installed name, Go package).
    pub commands: &'static [(&'static str, &'static str)],
    /// Where a release build writes its version with `-X`, as the project's own build does.
    pub stamp: Stamp,
    /// What a build with a cold Go cache took on a 2-core machine shared with other builds
    /// (docs/local-cluster.md), for the progress line.
    pub cold_estimate: &'static str,
}

/// How a project's release build writes its version into the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// The binary does not print its version, or reads it from its module's build info.
    None,
    /// Kubernetes' `hack/lib/version.sh`: `gitVersion`, `gitMajor`, `gitMinor` and
    /// `gitTreeState` of this package; without them the API server reports `v0.0.0-master`
    /// and helm refuses charts with a `kubeVersion`.
    Kubernetes(&'static str),
    /// One string variable (`package.Var`) set to the pinned version.
    Var(&'static str),
}

/// kube-apiserver, kube-controller-manager, kube-scheduler and kube-proxy at one release.
pub const KUBE: GoBuild = GoBuild {
    module: "kube",
    pinned: "k8s.io/kubernetes",
    prefix: "k8s",
    commands: &[
        ("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"),
        (
            "kube-controller-manager",
            "k8s.io/kubernetes/cmd/kube-controller-manager",
        ),
        ("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler"),
        ("kube-proxy", "k8s.io/kubernetes/cmd/kube-proxy"),
    ],
    stamp: Stamp::Kubernetes("k8s.io/component-base/version"),
    cold_estimate: "17 min",
};

/// etcd from its server module's own main package, with the dependency versions etcd's
/// release pins (built apart from Kubernetes, whose versions would otherwise win).
pub const ETCD: GoBuild = GoBuild {
    module: "etcd",
    pinned: "go.etcd.io/etcd/server/v3",
    prefix: "etcd",
    commands: &[("etcd", "go.etcd.io/etcd/server/v3")],
    stamp: Stamp::None,
    cold_estimate: "2.5 min",
};

/// CoreDNS for Service names: our small main (xtask/go/coredns/main.go) compiles in the
/// plugins a cluster's DNS uses, by CoreDNS's own extension point, and leaves out the cloud
/// providers' SDKs.
pub const COREDNS: GoBuild = GoBuild {
    module: "coredns",
    pinned: "github.com/coredns/coredns",
    prefix: "coredns",
    commands: &[("coredns", ".")],
    stamp: Stamp::None,
    cold_estimate: "7.5 min",
};

/// kube-router for its NetworkPolicy controller only (the router and the service proxy are
/// off): iptables and ipsets, the enforcement k3s embeds. kube-network-policies, which kind
/// uses, needs NFQUEUE, which these machines' kernel lacks (docs/local-cluster.md).
pub const KUBE_ROUTER: GoBuild = GoBuild {
    module: "kube-router",
    pinned: "github.com/cloudnativelabs/kube-router/v2",
    prefix: "kube-router",
    commands: &[(
        "kube-router",
        "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router",
    )],
    stamp: Stamp::Var("github.com/cloudnativelabs/kube-router/v2/pkg/version.Version"),
    cold_estimate: "2 min",
};

pub const ALL: [GoBuild; 4] = [KUBE, ETCD, COREDNS, KUBE_ROUTER];

/// helm/chart-testing's `ct`, for `ct lint` in the test command (not a cluster program).
pub const CT: GoBuild = GoBuild {
    module: "ct",
    pinned: "github.com/helm/chart-testing/v3",
    prefix: "ct",
    commands: &[("ct", "github.com/helm/chart-testing/v3/ct")],
    stamp: Stamp::None,
    cold_estimate: "1 min",
};

/// Prometheus for the `metrics` check (`cargo xtask tools --observability`): only its HTTP API
/// is used, so no web UI assets are embedded (no `builtinassets` tag), and `remove_all_sd`
/// leaves out the cloud service discoveries (the check scrapes static targets).
pub const PROMETHEUS: GoBuild = GoBuild {
    module: "prometheus",
    pinned: "github.com/prometheus/prometheus",
    prefix: "prometheus",
    commands: &[(
        "prometheus",
        "github.com/prometheus/prometheus/cmd/prometheus",
    )],
    stamp: Stamp::None,
    cold_estimate: "8 min",
};
/// Build tags of [`PROMETHEUS`].
pub const PROMETHEUS_TAGS: &[&str] = &["remove_all_sd"];

/// The OpenTelemetry Collector Builder that generates and compiles the collector
/// (xtask/src/obstools.rs).
pub const OCB: GoBuild = GoBuild {
    module: "ocb",
    pinned: "go.opentelemetry.io/collector/cmd/builder",
    prefix: "ocb",
    commands: &[("builder", "go.opentelemetry.io/collector/cmd/builder")],
    stamp: Stamp::None,
    cold_estimate: "1 min",
};

/// Flags every build uses: paths and symbol tables out, so binaries are small and the same
/// wherever the checkout lives; the version stamped where the build asks for it.
pub fn build_flags(build: &GoBuild, version: &str) -> Vec<String> {
    let mut ldflags = "-s -w".to_string();
    match build.stamp {
        Stamp::None => {}
        Stamp::Kubernetes(pkg) => {
            let mut parts = version.trim_start_matches('v').split('.');
            let (major, minor) = (parts.next().unwrap_or("0"), parts.next().unwrap_or("0"));
            for (var, value) in [
                ("gitVersion", version),
                ("gitMajor", major),
                ("gitMinor", minor),
                ("gitTreeState", "clean"),
            ] {
                ldflags.push_str(&format!(" -X {pkg}.{var}={value}"));
            }
        }
        Stamp::Var(var) => ldflags.push_str(&format!(" -X {var}={version}")),
    }
    vec!["-trimpath".into(), format!("-ldflags={ldflags}")]
}

/// The built binaries of one module.
#[derive(Debug, Clone)]
pub struct Built {
    pub version: String,
    pub bin: PathBuf,
}

impl Built {
    pub fn path(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }
}

fn module_dir(build: &GoBuild) -> PathBuf {
    crate::project_root()
        .join("xtask")
        .join("go")
        .join(build.module)
}

/// The version `go.mod` requires of `module` (`require k8s.io/kubernetes v1.37.2`, alone or
/// inside a `require (…)` block).
pub fn required_version(go_mod: &str, module: &str) -> Option<String> {
    let mut in_block = false;
    for line in go_mod.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        let fields: Vec<&str> = if in_block {
            if line == ")" {
                in_block = false;
                continue;
            }
            line.split_whitespace().collect()
        } else if line == "require (" {
            in_block = true;
            continue;
        } else if let Some(rest) = line.strip_prefix("require ") {
            rest.split_whitespace().collect()
        } else {
            continue;
        };
        if let [m, v, ..] = fields.as_slice()
            && *m == module
        {
            return Some(v.to_string());
        }
    }
    None
}

/// The `go` directive of a go.mod: the oldest Go that builds the module.
pub fn go_directive(go_mod: &str) -> Option<semver::Version> {
    go_mod
        .lines()
        .find_map(|l| l.trim().strip_prefix("go "))
        .and_then(|v| parse_go_version(v.trim()))
}

/// `go1.26.8`, `1.26.0`, `1.26` or `go1.27rc1` → a comparable version (a pre-release counts as
/// its release's `.0`).
pub fn parse_go_version(s: &str) -> Option<semver::Version> {
    let s = s.trim().trim_start_matches("go");
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let mut parts = s[..end].split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some(semver::Version::new(major, minor, patch))
}

/// The `go` to run: `$GO` when set, else `go` from PATH.
fn go_program() -> PathBuf {
    std::env::var_os("GO")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| "go".into())
}

/// A `go` command for `dir`. Without an explicit `$GOTOOLCHAIN`, go may not fetch another
/// toolchain on its own: a too old Go is reported by us, with the fix, instead.
fn go_command(go: &Path, dir: &Path) -> Command {
    let mut c = Command::new(go);
    c.current_dir(dir);
    if std::env::var_os("GOTOOLCHAIN").is_none() {
        c.env("GOTOOLCHAIN", "local");
    }
    c
}

/// Checks that `go` runs and is at least what `go_mod` asks; the error is one line naming
/// the problem and its fix.
pub fn check_go(go: &Path, dir: &Path, go_mod: &str, what: &str) -> Result<semver::Version> {
    let need = go_directive(go_mod)
        .with_context(|| format!("{}/go.mod has no `go` line", dir.display()))?;
    let out = go_command(go, dir).args(["env", "GOVERSION"]).output();
    let reported = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => bail!(
            "`{} env GOVERSION` failed ({}): {}; building {what} needs a working Go >= {need}",
            go.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(_) => bail!(
            "no Go found (`{}` does not run): building {what} needs Go >= {need}; install it and put `go` on PATH, or point $GO at it",
            go.display()
        ),
    };
    let have = parse_go_version(&reported).with_context(|| {
        format!(
            "`{} env GOVERSION` printed {reported:?}, which is not a Go version",
            go.display()
        )
    })?;
    if have < need {
        bail!(
            "{} is {reported}, too old: building {what} needs Go >= {need}; install a newer Go, or set GOTOOLCHAIN=go{need} to let go fetch it from the module proxy",
            go.display()
        );
    }
    Ok(have)
}

/// The module's own Go files (a small main, for CoreDNS), in name order: part of the stamp.
fn own_sources(dir: &Path) -> Result<String> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "go"))
        .collect();
    files.sort();
    let mut all = String::new();
    for f in files {
        all.push_str(&fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?);
    }
    Ok(all)
}

/// The digest that says a cache folder holds this module's build.
#[cfg(test)]
fn stamp(go_mod: &str, go_sum: &str, build: &GoBuild, version: &str) -> String {
    stamp_tagged(go_mod, go_sum, build, version, &[])
}

fn stamp_tagged(
    go_mod: &str,
    go_sum: &str,
    build: &GoBuild,
    version: &str,
    tags: &[&str],
) -> String {
    let mut h = Sha256::new();
    if !tags.is_empty() {
        h.update(format!("tags={}\0", tags.join(",")).as_bytes());
    }
    for part in [go_mod, go_sum, &build_flags(build, version).join(" ")] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for (name, pkg) in build.commands {
        h.update(format!("{name}={pkg}\0").as_bytes());
    }
    hex::encode(h.finalize())
}

/// The source of `module` at the version `xtask/go/<pin_dir>/go.mod` requires, from the module
/// cache (downloaded on first use, checked against that folder's go.sum by `go`).
pub fn module_source(pin_dir: &str, module: &str) -> Result<PathBuf> {
    let dir = crate::project_root().join("xtask/go").join(pin_dir);
    let go_mod = fs::read_to_string(dir.join("go.mod"))
        .with_context(|| format!("reading {}/go.mod", dir.display()))?;
    let go = go_program();
    check_go(&go, &dir, &go_mod, module)?;
    let mut c = go_command(&go, &dir);
    c.args(["mod", "download", "-json", module])
        .env("GOFLAGS", "-mod=readonly");
    eprintln!("$ (cd {}; {})", dir.display(), cmd::display(&c));
    let out = c
        .output()
        .with_context(|| format!("could not start `{}`", cmd::display(&c)))?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("`go mod download -json {module}` printed no JSON"))?;
    if let Some(e) = json.get("Error").and_then(|e| e.as_str()) {
        bail!(
            "downloading {module} pinned in {}/go.mod: {e}",
            dir.display()
        );
    }
    json.get("Dir")
        .and_then(|d| d.as_str())
        .map(PathBuf::from)
        .with_context(|| format!("`go mod download -json {module}` named no Dir: {json}"))
}

/// The binaries of `build`, built now unless the cache folder already holds them.
pub fn ensure(build: &GoBuild) -> Result<Built> {
    ensure_tagged(build, &[])
}

/// [`ensure`] with build tags (part of the stamp).
pub fn ensure_tagged(build: &GoBuild, tags: &[&str]) -> Result<Built> {
    let dir = module_dir(build);
    let go_mod = fs::read_to_string(dir.join("go.mod"))
        .with_context(|| format!("reading {}/go.mod", dir.display()))?;
    let go_sum = fs::read_to_string(dir.join("go.sum"))
        .with_context(|| format!("reading {}/go.sum", dir.display()))?;
    let version = required_version(&go_mod, build.pinned)
        .with_context(|| format!("{}/go.mod does not require {}", dir.display(), build.pinned))?;
    let root = crate::tools_dir().join(format!("{}-{version}", build.prefix));
    let bin = root.join("bin");
    let want = stamp_tagged(
        &format!("{go_mod}{}", own_sources(&dir)?),
        &go_sum,
        build,
        &version,
        tags,
    );
    let complete = || {
        fs::read_to_string(root.join(".complete")).is_ok_and(|s| s.trim() == want)
            && build
                .commands
                .iter()
                .all(|(name, _)| bin.join(name).is_file())
    };
    if complete() {
        return Ok(Built { version, bin });
    }

    fs::create_dir_all(crate::tools_dir())?;
    let lock = fs::File::create(crate::tools_dir().join(format!(".lock-{}", build.prefix)))
        .context("creating the Go build lock file")?;
    lock.lock().context("locking the Go build")?;
    if complete() {
        return Ok(Built { version, bin });
    }

    let names: Vec<&str> = build.commands.iter().map(|(n, _)| *n).collect();
    let what = format!("{} {version}", names.join(", "));
    let go = go_program();
    check_go(&go, &dir, &go_mod, &what)?;

    // A partial earlier build is removed first; the stamp is written last.
    if root.exists() {
        fs::remove_dir_all(&root)
            .with_context(|| format!("removing the incomplete {}", root.display()))?;
    }
    fs::create_dir_all(&bin)?;
    let mut c = go_command(&go, &dir);
    c.arg("build").args(build_flags(build, &version));
    if !tags.is_empty() {
        c.arg(format!("-tags={}", tags.join(",")));
    }
    if let [(name, pkg)] = build.commands {
        // One command: name the file (a `/v3` module path would otherwise name it `server`).
        c.arg("-o").arg(bin.join(name)).arg(pkg);
    } else {
        c.arg("-o").arg(format!("{}/", bin.display()));
        c.args(build.commands.iter().map(|(_, pkg)| *pkg));
    }
    let started = Instant::now();
    let progress = indicatif::ProgressBar::new_spinner().with_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .expect("a valid progress template"),
    );
    let message = format!(
        "building {what} from Go modules (with a cold Go cache about {} on 2 busy cores)",
        build.cold_estimate
    );
    eprintln!("$ (cd {}; {})", dir.display(), cmd::display(&c));
    if progress.is_hidden() {
        eprintln!("{message}");
    }
    progress.set_message(message);
    progress.enable_steady_tick(Duration::from_millis(500));
    let result = c.output();
    progress.finish_and_clear();
    let out = result.with_context(|| format!("could not start `{}`", cmd::display(&c)))?;
    if !out.status.success() {
        let log = root.join("build.log");
        let _ = fs::write(&log, [&out.stdout[..], &out.stderr[..]].concat());
        let tail: Vec<&str> = std::str::from_utf8(&out.stderr)
            .unwrap_or("")
            .lines()
            .rev()
            .take(15)
            .collect();
        bail!(
            "building {what} failed ({}); the full output is in {}:\n{}",
            out.status,
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    fs::write(root.join(".complete"), &want)?;
    eprintln!(
        "built {what} into {} in {:.0}s",
        bin.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(Built { version, bin })
}

/// Every module's build, in order.
pub fn ensure_all() -> Result<Vec<(GoBuild, Built)>> {
    ALL.iter()
        .map(|b| ensure(b).map(|built| (*b, built)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::single_line_require("module m\n\nrequire k8s.io/kubernetes v1.37.2\n", Some("v1.37.2"))]
    #[case::inside_a_block(
        "require (\n\tfoo v1.0.0\n\tk8s.io/kubernetes v1.37.2 // indirect\n)\n",
        Some("v1.37.2")
    )]
    #[case::a_replace_is_not_a_requirement(
        "replace k8s.io/kubernetes => k8s.io/kubernetes v9.9.9\n",
        None
    )]
    #[case::a_longer_module_name_does_not_match("require k8s.io/kubernetes-extra v1.0.0\n", None)]
    fn required_version_reads_the_require_lines(#[case] go_mod: &str, #[case] want: Option<&str>) {
        assert_eq!(
            required_version(go_mod, "k8s.io/kubernetes").as_deref(),
            want
        );
    }

    #[rstest]
    #[case::patch("go1.26.8", (1, 26, 8))]
    #[case::directive_without_prefix("1.26.0", (1, 26, 0))]
    #[case::minor_only("1.26", (1, 26, 0))]
    #[case::release_candidate("go1.27rc1", (1, 27, 0))]
    #[case::with_experiment_suffix("go1.26.8 X:nocoverageredesign", (1, 26, 8))]
    fn go_versions_parse(#[case] s: &str, #[case] want: (u64, u64, u64)) {
        assert_eq!(
            parse_go_version(s),
            Some(semver::Version::new(want.0, want.1, want.2))
        );
    }

    #[test]
    fn the_committed_modules_pin_what_the_cache_folders_are_named_for() {
        for b in ALL.into_iter().chain([CT, PROMETHEUS, OCB]) {
            let go_mod = fs::read_to_string(module_dir(&b).join("go.mod")).unwrap();
            let v = required_version(&go_mod, b.pinned)
                .unwrap_or_else(|| panic!("{} pins {}", b.module, b.pinned));
            assert!(v.starts_with('v'), "{v}");
            assert!(
                go_directive(&go_mod).is_some(),
                "{} has a go line",
                b.module
            );
            assert!(
                module_dir(&b).join("go.sum").is_file(),
                "{} has its go.sum committed",
                b.module
            );
            for (_, pkg) in b.commands {
                let ours = *pkg == "." && module_dir(&b).join("main.go").is_file();
                assert!(
                    ours || go_mod.contains(pkg),
                    "{} names {pkg} in its tool block",
                    b.module
                );
            }
        }
    }

    #[test]
    fn every_staging_module_of_kubernetes_is_replaced_by_a_release_of_the_same_minor() {
        let go_mod = fs::read_to_string(module_dir(&KUBE).join("go.mod")).unwrap();
        let kube = required_version(&go_mod, "k8s.io/kubernetes").unwrap();
        let minor = kube.trim_start_matches("v1.");
        let replaces: Vec<&str> = go_mod.lines().filter(|l| l.contains("=>")).collect();
        assert!(replaces.len() >= 25, "only {} replaces", replaces.len());
        for l in replaces {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(
                f[0], f[2],
                "{l}: a staging module is replaced by its own release"
            );
            assert_eq!(f[3], format!("v0.{minor}"), "{l}");
        }
    }

    fn fake_go(dir: &Path, version: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("go");
        fs::write(&p, format!("#!/bin/sh\necho {version}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn a_too_old_go_is_one_line_naming_the_need_and_the_fix() {
        let d = tempfile::tempdir().unwrap();
        let go = fake_go(d.path(), "go1.25.4");
        let err = check_go(
            &go,
            d.path(),
            "module m\ngo 1.26.0\n",
            "kube-apiserver v1.37.2",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            format!(
                "{} is go1.25.4, too old: building kube-apiserver v1.37.2 needs Go >= 1.26.0; install a newer Go, or set GOTOOLCHAIN=go1.26.0 to let go fetch it from the module proxy",
                go.display()
            )
        );
        assert!(!err.contains('\n'));
    }

    #[test]
    fn a_missing_go_is_one_line_naming_the_fix() {
        let d = tempfile::tempdir().unwrap();
        let err = check_go(
            &d.path().join("no-go"),
            d.path(),
            "go 1.26.0\n",
            "etcd v3.7.4",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("no Go found"), "{err}");
        assert!(
            err.contains("needs Go >= 1.26.0") && err.contains("$GO"),
            "{err}"
        );
    }

    #[test]
    fn a_new_enough_go_passes() {
        let d = tempfile::tempdir().unwrap();
        let go = fake_go(d.path(), "go1.26.8");
        assert_eq!(
            check_go(&go, d.path(), "go 1.26.0\n", "x").unwrap(),
            semver::Version::new(1, 26, 8)
        );
    }

    #[test]
    fn the_stamp_changes_with_the_pins() {
        assert_ne!(stamp("a", "b", &KUBE, "v1"), stamp("a", "c", &KUBE, "v1"));
        assert_ne!(stamp("a", "b", &KUBE, "v1"), stamp("a", "b", &ETCD, "v1"));
    }
}
