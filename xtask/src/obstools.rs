//! The observability programs the `metrics` check runs (`cargo xtask tools --observability`,
//! and `cargo xtask e2e` when a deployment runs that check): the OpenTelemetry Collector that
//! stands in for the chart's contrib image, and Prometheus.
//!
//! The collector is built the way its distributions are: the OpenTelemetry Collector Builder
//! (pinned in `xtask/go/ocb`, built like every other Go module here) generates a main package
//! from `xtask/go/otelcol/builder-config.yaml` and compiles it. The generated module's go.sum is
//! committed beside the manifest and seeded into the build, and a build whose `go mod tidy`
//! resolved anything else is refused, so the committed pins are the ones compiled. Both
//! programs are cached in `target/tools/<name>-<version>/bin/`, stamped like the Go modules.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::cmd;
use crate::gotools::{self, Built};

/// Where the check finds the programs (read by crates/e2e).
pub const OTELCOL_ENV: &str = "CHROMADB_OTELCOL_BIN";
pub const PROMETHEUS_ENV: &str = "CHROMADB_PROMETHEUS_BIN";

/// The name `dist.name` gives the collector binary.
const COLLECTOR: &str = "otelcol-chromadb";

fn manifest_dir() -> PathBuf {
    crate::project_root().join("xtask/go/otelcol")
}

/// `dist.version` of the manifest: the component release the collector is built at.
pub fn manifest_version(manifest: &str) -> Result<String> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(manifest).context("builder-config.yaml is not YAML")?;
    let v = doc["dist"]["version"]
        .as_str()
        .context("builder-config.yaml has no dist.version")?;
    Ok(format!("v{}", v.trim_start_matches('v')))
}

/// Every `gomod` line of the manifest (`module version`).
#[cfg(test)]
fn manifest_modules(manifest: &str) -> Result<Vec<String>> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(manifest).context("builder-config.yaml is not YAML")?;
    let mut out = Vec::new();
    for section in [
        "receivers",
        "processors",
        "connectors",
        "exporters",
        "extensions",
        "providers",
    ] {
        for entry in doc[section].as_sequence().into_iter().flatten() {
            out.push(
                entry["gomod"]
                    .as_str()
                    .with_context(|| {
                        format!("builder-config.yaml: an entry of {section} has no gomod")
                    })?
                    .to_string(),
            );
        }
    }
    Ok(out)
}

/// Prometheus, built from its module (pinned in xtask/go/prometheus).
pub fn prometheus() -> Result<Built> {
    gotools::ensure_tagged(&gotools::PROMETHEUS, gotools::PROMETHEUS_TAGS)
}

/// The collector, generated and compiled by the pinned builder unless the cache holds it.
pub fn collector() -> Result<Built> {
    let dir = manifest_dir();
    let manifest_path = dir.join("builder-config.yaml");
    let manifest = fs::read_to_string(&manifest_path)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    let go_sum = fs::read_to_string(dir.join("go.sum"))
        .with_context(|| format!("reading {}/go.sum", dir.display()))?;
    let version = manifest_version(&manifest)?;
    let builder = gotools::ensure(&gotools::OCB)?;
    let root = crate::tools_dir().join(format!("otelcol-{version}"));
    let bin = root.join("bin");
    let want = {
        let mut h = Sha256::new();
        for part in [manifest.as_str(), go_sum.as_str(), builder.version.as_str()] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        hex::encode(h.finalize())
    };
    let complete = || {
        fs::read_to_string(root.join(".complete")).is_ok_and(|s| s.trim() == want)
            && bin.join(COLLECTOR).is_file()
    };
    if complete() {
        return Ok(Built { version, bin });
    }
    fs::create_dir_all(crate::tools_dir())?;
    let lock = fs::File::create(crate::tools_dir().join(".lock-otelcol"))
        .context("creating the collector build lock file")?;
    lock.lock().context("locking the collector build")?;
    if complete() {
        return Ok(Built { version, bin });
    }
    if root.exists() {
        fs::remove_dir_all(&root)
            .with_context(|| format!("removing the incomplete {}", root.display()))?;
    }
    let src = root.join("src");
    fs::create_dir_all(&src)?;
    fs::create_dir_all(&bin)?;
    // The builder's `go mod tidy` keeps what go.sum already holds: seeded with the committed one.
    fs::copy(dir.join("go.sum"), src.join("go.sum")).context("seeding the collector's go.sum")?;
    // The builder leaves an empty `otelcol-distribution*` folder in $TMPDIR even when given an
    // output path: it gets one of its own here, removed after the build.
    let scratch = root.join("tmp");
    fs::create_dir_all(&scratch)?;
    let mut c = Command::new(builder.path("builder"));
    c.current_dir(&dir)
        .env("TMPDIR", &scratch)
        .arg(format!("--config={}", manifest_path.display()))
        .arg(format!("--output-path={}", src.display()));
    if std::env::var_os("GOTOOLCHAIN").is_none() {
        c.env("GOTOOLCHAIN", "local");
    }
    let what = format!("the OpenTelemetry Collector {version} ({COLLECTOR})");
    let out = with_progress(
        c,
        &format!(
            "building {what} with the OpenTelemetry Collector Builder (with a cold Go cache about 6 min on 2 busy cores)"
        ),
    );
    let _ = fs::remove_dir_all(&scratch);
    let out = out?;
    if !out.status.success() {
        let log = root.join("build.log");
        let _ = fs::write(&log, [&out.stdout[..], &out.stderr[..]].concat());
        bail!(
            "building {what} failed ({}); the full output is in {}:\n{}",
            out.status,
            log.display(),
            tail(&out.stderr, 15)
        );
    }
    let resolved = fs::read_to_string(src.join("go.sum")).unwrap_or_default();
    if resolved != go_sum {
        bail!(
            "the builder's `go mod tidy` resolved other modules than xtask/go/otelcol/go.sum pins (a component was added or its version changed in builder-config.yaml?); if that is intended, copy {} over xtask/go/otelcol/go.sum and commit it",
            src.join("go.sum").display()
        );
    }
    fs::rename(src.join(COLLECTOR), bin.join(COLLECTOR))
        .context("moving the built collector into bin/")?;
    fs::write(root.join(".complete"), &want)?;
    Ok(Built { version, bin })
}

fn tail(stderr: &[u8], n: usize) -> String {
    let lines: Vec<&str> = std::str::from_utf8(stderr).unwrap_or("").lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn with_progress(mut c: Command, message: &str) -> Result<std::process::Output> {
    let started = Instant::now();
    eprintln!("$ {}", cmd::display(&c));
    let progress = indicatif::ProgressBar::new_spinner().with_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .expect("a valid progress template"),
    );
    if progress.is_hidden() {
        eprintln!("{message}");
    }
    progress.set_message(message.to_string());
    progress.enable_steady_tick(Duration::from_millis(500));
    let out = c.output();
    progress.finish_and_clear();
    let out = out.with_context(|| format!("could not start `{}`", cmd::display(&c)))?;
    eprintln!("{message}: done in {:.0}s", started.elapsed().as_secs_f64());
    Ok(out)
}

/// Both programs, with the variables that hand them to the `metrics` check.
pub fn ensure_and_export() -> Result<Vec<(&'static str, String, PathBuf)>> {
    let otelcol = collector()?;
    let prometheus = prometheus()?;
    let found = vec![
        (COLLECTOR, otelcol.version.clone(), otelcol.path(COLLECTOR)),
        (
            "prometheus",
            prometheus.version.clone(),
            prometheus.path("prometheus"),
        ),
    ];
    // SAFETY: called before the runtime and its threads start.
    unsafe {
        std::env::set_var(OTELCOL_ENV, &found[0].2);
        std::env::set_var(PROMETHEUS_ENV, &found[1].2);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_pins_one_release_and_its_go_sum_is_committed() {
        let manifest = fs::read_to_string(manifest_dir().join("builder-config.yaml")).unwrap();
        let version = manifest_version(&manifest).unwrap();
        assert_eq!(version, "v0.115.0");
        let modules = manifest_modules(&manifest).unwrap();
        assert_eq!(modules.len(), 9, "{modules:?}");
        for m in &modules {
            let v = m.split_whitespace().nth(1).unwrap();
            // Components at the release, providers at the stable (v1) line released with it.
            assert!(v == version || v == "v1.21.0", "{m}");
        }
        assert!(manifest_dir().join("go.sum").is_file());
    }

    #[test]
    fn the_builder_is_pinned_at_the_collector_release() {
        let manifest = fs::read_to_string(manifest_dir().join("builder-config.yaml")).unwrap();
        let ocb = fs::read_to_string(crate::project_root().join("xtask/go/ocb/go.mod")).unwrap();
        assert_eq!(
            gotools::required_version(&ocb, gotools::OCB.pinned),
            Some(manifest_version(&manifest).unwrap())
        );
    }
}
