//! The backup tool's build: on the process backend it stands in for the `chromadb-backup`
//! image (its ENTRYPOINT is the binary), so the chart's backup and restore Jobs run the tool
//! built from this very workspace.

use std::path::Path;

use anyhow::Context;

use crate::cmd;

/// Builds `chromadb-backup` into target/debug, unless `CHROMADB_BACKUP_BIN` names a build to
/// use instead or the workspace has no backup crate (then the Jobs are SKIP, naming why).
pub fn ensure(root: &Path) -> anyhow::Result<()> {
    if std::env::var_os("CHROMADB_BACKUP_BIN").is_some_and(|p| !p.is_empty()) {
        return Ok(());
    }
    if !root.join("crates/backup/Cargo.toml").is_file() {
        return Ok(());
    }
    cmd::run(cmd::cargo().current_dir(root).args([
        "build",
        "--quiet",
        "--workspace",
        "--bin",
        "chromadb-backup",
    ]))
    .context("building chromadb-backup, the stand-in for the backup image on the process backend and the local cluster's node")
}
