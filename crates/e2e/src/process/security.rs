//! The pod's and container's securityContext as the kubelet and the container runtime apply
//! it to the server: the user and groups it runs as, `runAsNonRoot` refused for a root user,
//! and volume ownership (`fsGroup`): volumes handed to the group, group-writable, with the
//! setgid bit on directories so new files stay in the group.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, PodSpec};

/// Who the server process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: `fsGroup` first, then `supplementalGroups`.
    pub groups: Vec<u32>,
    pub fs_group: Option<u32>,
    /// `readOnlyRootFilesystem`: only the pod's volumes may be written.
    pub read_only_root: bool,
}

impl RunAs {
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// What the kubelet refuses in a securityContext (its CreateContainerConfigError).
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("{field} {value} is not a valid id")]
    BadId { field: &'static str, value: i64 },
    #[error(
        "container `{container}` has runAsNonRoot and would run as root (uid 0): the kubelet refuses to start it"
    )]
    RootRefused { container: String },
}

fn id(value: i64, field: &'static str) -> Result<u32, SecurityError> {
    u32::try_from(value).map_err(|_| SecurityError::BadId { field, value })
}

/// The identity Kubernetes gives `c`: container securityContext over the pod's, over the
/// image's own user `image_user` (uid, gid). `runAsNonRoot: true` with a root uid is the
/// kubelet's CreateContainerConfigError, returned as the error.
pub fn run_as(
    c: &Container,
    pod: &PodSpec,
    image_user: (u32, u32),
) -> Result<RunAs, SecurityError> {
    let sc = c.security_context.as_ref();
    let psc = pod.security_context.as_ref();
    let uid = match sc
        .and_then(|s| s.run_as_user)
        .or_else(|| psc.and_then(|s| s.run_as_user))
    {
        Some(u) => id(u, "runAsUser")?,
        None => image_user.0,
    };
    let gid = match sc
        .and_then(|s| s.run_as_group)
        .or_else(|| psc.and_then(|s| s.run_as_group))
    {
        Some(g) => id(g, "runAsGroup")?,
        None => image_user.1,
    };
    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or_else(|| psc.and_then(|s| s.run_as_non_root))
        .unwrap_or(false);
    if non_root && uid == 0 {
        return Err(SecurityError::RootRefused {
            container: c.name.clone(),
        });
    }
    let fs_group = psc
        .and_then(|s| s.fs_group)
        .map(|g| id(g, "fsGroup"))
        .transpose()?;
    let mut groups: Vec<u32> = fs_group.into_iter().collect();
    for g in psc
        .and_then(|s| s.supplemental_groups.clone())
        .unwrap_or_default()
    {
        groups.push(id(g, "supplementalGroups")?);
    }
    let read_only_root = sc
        .and_then(|s| s.read_only_root_filesystem)
        .unwrap_or(false);
    Ok(RunAs {
        uid,
        gid,
        groups,
        fs_group,
        read_only_root,
    })
}

/// Where bubblewrap lives: it stands in for the runtime's read-only root mount.
pub const BWRAP: &str = "/usr/bin/bwrap";
const SETPRIV: &str = "/usr/bin/setpriv";

/// The argv that runs `program args` with a read-only root: bubblewrap (as root) mounts the
/// whole host read-only but for the pod's volumes, then setpriv drops to the pod's user —
/// what a runtime does for `readOnlyRootFilesystem` before it execs the entrypoint.
///
/// `writable` pairs each volume's directory with where the container mounts it. The volume is
/// writable at its own path (which the re-rooted paths of the server's config point into)
/// and also at the mount path itself where this host has that directory: a library that
/// finds its temp dir by the fixed name `/tmp`, as SQLite does, then gets the volume there.
pub fn read_only_argv(
    run_as: &RunAs,
    writable: &[(&Path, &str)],
    harness_root: &Path,
    program: &Path,
    args: &[String],
) -> Vec<String> {
    let mut argv: Vec<String> = [
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--die-with-parent",
    ]
    .map(String::from)
    .to_vec();
    let bind = |argv: &mut Vec<String>, how: &str, from: &Path, to: &str| {
        argv.extend([how.to_string(), from.display().to_string(), to.to_string()])
    };
    for (dir, mount_path) in writable {
        if Path::new(mount_path).is_dir() {
            bind(&mut argv, "--bind", dir, mount_path);
        }
    }
    // A volume bound over /tmp hides the harness's own files there: put them back, read-only,
    // then each volume writable at its own path.
    bind(
        &mut argv,
        "--ro-bind",
        harness_root,
        &harness_root.display().to_string(),
    );
    for (dir, _) in writable {
        bind(&mut argv, "--bind", dir, &dir.display().to_string());
    }
    argv.push("--".into());
    if !run_as.is_root() {
        let groups = if run_as.groups.is_empty() {
            "--clear-groups".to_string()
        } else {
            format!(
                "--groups={}",
                run_as
                    .groups
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        argv.extend([
            SETPRIV.to_string(),
            format!("--reuid={}", run_as.uid),
            format!("--regid={}", run_as.gid),
            groups,
            "--".into(),
        ]);
    }
    argv.push(program.display().to_string());
    argv.extend(args.iter().cloned());
    argv
}

/// What the kubelet does to a volume for `fsGroup`: group ownership, group read/write (and
/// execute where the owner has it), setgid on directories.
pub fn apply_fs_group(dir: &Path, gid: u32) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    std::os::unix::fs::lchown(dir, None, Some(gid))?;
    let mode = meta.permissions().mode();
    let owner_x = mode & 0o100 != 0;
    let mut new = mode | 0o060 | if owner_x { 0o010 } else { 0 };
    if meta.is_dir() {
        new |= 0o2000;
        for e in std::fs::read_dir(dir)? {
            apply_fs_group(&e?.path(), gid)?;
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(new))
}

/// Lets a non-root server reach its files: the harness's own directories on the way to the
/// container's filesystem become traversable (as `/` and the image's directories are in a
/// container), nothing more.
pub fn open_path(dir: &Path) -> std::io::Result<()> {
    let mode = std::fs::metadata(dir)?.permissions().mode();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o055))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(sc: serde_json::Value) -> PodSpec {
        serde_json::from_value(json!({"containers": [], "securityContext": sc})).unwrap()
    }

    fn container(sc: serde_json::Value) -> Container {
        serde_json::from_value(json!({"name": "chromadb", "securityContext": sc})).unwrap()
    }

    #[test]
    fn the_container_user_wins_over_the_pods() {
        let r = run_as(
            &container(json!({"runAsUser": 1001})),
            &pod(json!({"runAsUser": 1000, "runAsGroup": 3000})),
            (0, 0),
        )
        .unwrap();
        assert_eq!((r.uid, r.gid), (1001, 3000));
    }

    #[test]
    fn without_a_security_context_the_image_user_runs() {
        let r = run_as(&container(json!({})), &pod(json!({})), (0, 0)).unwrap();
        assert!(r.is_root() && r.groups.is_empty());
    }

    #[test]
    fn an_image_with_its_own_user_runs_as_that_user() {
        let r = run_as(
            &container(json!({})),
            &pod(json!({"runAsNonRoot": true})),
            (100, 101),
        )
        .unwrap();
        assert_eq!((r.uid, r.gid), (100, 101));
    }

    #[test]
    fn run_as_non_root_with_a_root_user_is_refused() {
        let err = run_as(
            &container(json!({"runAsNonRoot": true})),
            &pod(json!({})),
            (0, 0),
        )
        .unwrap_err();
        assert!(err.to_string().contains("runAsNonRoot"), "{err}");
    }

    #[test]
    fn fs_group_and_supplemental_groups_become_the_processes_groups() {
        let r = run_as(
            &container(json!({})),
            &pod(json!({"runAsUser": 1000, "fsGroup": 2000, "supplementalGroups": [4000]})),
            (0, 0),
        )
        .unwrap();
        assert_eq!(
            (r.groups.clone(), r.fs_group),
            (vec![2000, 4000], Some(2000))
        );
    }

    #[test]
    fn read_only_root_binds_only_the_volumes_writable_and_drops_to_the_user() {
        let r = run_as(
            &container(json!({"readOnlyRootFilesystem": true})),
            &pod(json!({"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000})),
            (0, 0),
        )
        .unwrap();
        assert!(r.read_only_root);
        let argv = read_only_argv(
            &r,
            &[
                (Path::new("/v/data"), "/no-such-dir-here"),
                (Path::new("/v/tmp"), "/tmp"),
            ],
            Path::new("/v"),
            Path::new("/venv/bin/chroma"),
            &["run".into()],
        );
        let s = argv.join(" ");
        assert!(
            s.starts_with("--ro-bind / / --dev /dev --proc /proc --die-with-parent --bind /v/tmp /tmp --ro-bind /v /v --bind /v/data /v/data --bind /v/tmp /v/tmp -- /usr/bin/setpriv --reuid=1000 --regid=1000 --groups=2000 -- /venv/bin/chroma run"),
            "{s}"
        );
    }

    #[test]
    fn fs_group_makes_a_volume_group_writable_with_setgid_directories() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/f"), "x").unwrap();
        std::fs::set_permissions(d.path().join("sub"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::set_permissions(
            d.path().join("sub/f"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        apply_fs_group(d.path(), 4242).unwrap();
        use std::os::unix::fs::MetadataExt;
        let sub = std::fs::metadata(d.path().join("sub")).unwrap();
        let f = std::fs::metadata(d.path().join("sub/f")).unwrap();
        assert_eq!(
            (sub.gid(), sub.mode() & 0o7777, f.gid(), f.mode() & 0o777),
            (4242, 0o2775, 4242, 0o664)
        );
    }
}
