//! `cargo xtask`: the one entry point for provisioning tools, testing the chart and running
//! the live conformance matrix. One module per subcommand, each with its own flags struct.

mod backends;
mod backup_tool;
mod bench;
mod cluster;
mod cmd;
mod ct;
mod docs;
mod e2e;
mod gotools;
mod host;
mod interrupt;
mod nextest;
mod obstools;
#[cfg(test)]
mod readme;
mod tally;
mod test;
mod tools;
mod upgrade;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build, test and prove the chromadb Helm chart",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Provision pinned helm, kubectl, uv, actionlint and Kubernetes schemas into target/tools
    Tools(tools::Flags),
    /// The test command: lint, render suite, workspace tests, workflow lint, live smoke matrix
    Test(test::Flags),
    /// Deploy the chart for Chroma versions on a backend and check the live API against the spec
    E2e(e2e::Flags),
    /// Reproduce an upgrade: deploy A, write data, upgrade in place to B, diff what survived
    Upgrade(upgrade::Flags),
    /// Benchmark chromadb-backup against cdp and the Python client (`cargo xtask bench backup`)
    Bench(bench::Flags),
    /// A local Kubernetes built from upstream Go modules, with the process node: up, down, status
    Cluster(cluster::Flags),
    /// Regenerate the README values table from charts/chromadb/values.yaml (or --check it)
    Docs(docs::Flags),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("XTASK_LOG")
                .unwrap_or_else(|_| "warn,e2e::progress=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Tools(f) => tools::run(f),
        Command::Test(f) => test::run(f),
        Command::E2e(f) => e2e::run(f),
        Command::Upgrade(f) => upgrade::run(f),
        Command::Docs(f) => docs::run(f),
        Command::Bench(f) => bench::run(f),
        Command::Cluster(f) => cluster::run(f),
    };
    match result {
        Ok(code) => code,
        Err(e) if e.is::<backends::Interrupted>() => {
            eprintln!("{e}");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root (xtask lives one level below it).
/// Where `cargo xtask tools` provisions and builds tools (every command that needs one reads it
/// here, below the commands, so that no tool module reaches back up into `tools`).
pub fn tools_dir() -> std::path::PathBuf {
    project_root().join("target").join("tools")
}

pub fn project_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}
