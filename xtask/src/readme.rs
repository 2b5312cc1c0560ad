//! Keeps every command in README.md true: each `cargo xtask …` line must parse with today's
//! flags, and each `helm install` line must install the local chart (client-side dry run —
//! the published repository is this chart). Commands that need the network or a cluster are
//! listed with where they do run.

use std::process::Command;

use clap::Parser;

use crate::{Cli, project_root};

/// Lines of ```bash blocks, with comments and blank lines dropped.
fn readme_commands() -> Vec<String> {
    let readme =
        std::fs::read_to_string(project_root().join("README.md")).expect("README.md exists");
    let mut out = Vec::new();
    let mut in_bash = false;
    for line in readme.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            in_bash = !in_bash && (t == "```bash" || t == "```sh");
            continue;
        }
        if in_bash && !t.is_empty() && !t.starts_with('#') {
            out.push(t.to_string());
        } else if !in_bash {
            // Inline `cargo xtask …` spans in prose and tables are commands too; ones with a
            // `<placeholder>` are templates, not commands.
            for (i, span) in line.split('`').enumerate() {
                if i % 2 == 1 && span.starts_with("cargo xtask ") && !span.contains('<') {
                    out.push(span.to_string());
                }
            }
        }
    }
    out
}

/// Commands the tests cannot run here, and what runs them instead.
const RUN_ELSEWHERE: &[(&str, &str)] = &[
    (
        "helm repo add",
        "needs the published repository: the release workflow runs it after publishing",
    ),
    (
        "helm repo update",
        "needs the published repository: the release workflow runs it after publishing",
    ),
    (
        "kubectl create secret tls",
        "needs a cluster: the e2e harness makes the same Secret (tls.crt, tls.key, ca.crt from a throwaway CA) for the tls-token deployment on every backend",
    ),
    (
        "chromadb-backup ",
        "needs a live server: crates/backup/tests (round_trip.rs, bad_input.rs, s3.rs) run the binary with these subcommands and flags",
    ),
    (
        "kubectl delete statefulset",
        "needs a cluster: e2e.yml's migrate-from-amikos job makes the same orphaning delete (kube-rs, Orphan propagation) before upgrading",
    ),
];

#[test]
fn every_readme_command_is_known() {
    let cmds = readme_commands();
    assert!(
        cmds.len() >= 4,
        "expected the README's commands, found {cmds:?}"
    );
    for c in &cmds {
        let known = c.starts_with("cargo xtask ")
            || c.starts_with("helm install ")
            || RUN_ELSEWHERE.iter().any(|(p, _)| c.starts_with(p));
        assert!(
            known,
            "README command `{c}` is neither run by a test nor listed in RUN_ELSEWHERE"
        );
    }
}

#[test]
fn readme_xtask_commands_parse_with_current_flags() {
    for c in readme_commands()
        .iter()
        .filter(|c| c.starts_with("cargo xtask "))
    {
        let words = shlex::split(c).unwrap_or_else(|| panic!("cannot split `{c}`"));
        let argv = std::iter::once("cargo xtask".to_string()).chain(words.into_iter().skip(2));
        if let Err(e) = Cli::try_parse_from(argv)
            && !matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            )
        {
            panic!("README command `{c}` does not parse:\n{e}");
        }
    }
}

#[test]
fn readme_helm_install_commands_install_the_local_chart() {
    let helm = std::env::var("HELM").expect("HELM must point at helm (run `cargo xtask test`)");
    let chart = project_root().join("charts/chromadb");
    for c in readme_commands()
        .iter()
        .filter(|c| c.starts_with("helm install "))
    {
        let words: Vec<String> = shlex::split(c)
            .unwrap_or_else(|| panic!("cannot split `{c}`"))
            .into_iter()
            .skip(1)
            .map(|w| {
                if w == "chroma/chromadb" || w == "charts/chromadb" {
                    chart.display().to_string()
                } else {
                    w
                }
            })
            .collect();
        let out = Command::new(&helm)
            .args(&words)
            .args(["--dry-run=client", "--namespace", "default"])
            .output()
            .expect("helm runs");
        assert!(
            out.status.success(),
            "README command `{c}` fails on the local chart:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
