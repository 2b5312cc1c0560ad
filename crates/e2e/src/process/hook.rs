//! The chart's `helm test` hooks and its other Jobs (the backup CronJob's job, the restore
//! hook) on the process backend, run the way the kubelet runs a Job's pod: the container's rendered command, args and env unchanged, its image's
//! entrypoint semantics, the Job's retry budget and deadline — in a pod network of its own
//! ([`super::podnet`]) so the Service names it calls resolve and route as in a cluster.
//!
//! An image is run only when this backend has a stand-in for it: the host programs the image
//! provides, on a PATH holding nothing else, so a hook that needs a tool its image lacks fails
//! here as it would in the cluster.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use render::Rendered;

/// Why a Job's pod cannot run here: what the render lacks, an image without a stand-in, a
/// command its image does not provide, or a host program the stand-in needs.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// `object` is `Job <name>` or `Pod <name>`.
    #[error("{object} has no spec")]
    NoSpec { object: String },
    #[error("Job {job} has no pod template spec")]
    NoPodTemplate { job: String },
    #[error("CHROMADB_BACKUP_BIN={} is not a file", .0.display())]
    BackupBinNotAFile(PathBuf),
    #[error(
        "no build of chromadb-backup stands in for its image (build it with `cargo build -p backup --bin chromadb-backup`, or set CHROMADB_BACKUP_BIN); looked in {}/{{debug,release}}",
        .target.display()
    )]
    NoBackupBuild { target: PathBuf },
    #[error("image `{image}`: {source}")]
    Image {
        image: String,
        #[source]
        source: Box<HookError>,
    },
    #[error(
        "the process backend has no stand-in for image `{image}` (it models: curlimages/curl, chromadb-backup)"
    )]
    UnknownImage { image: String },
    #[error("container `{container}` has no command and its image no entrypoint")]
    NoCommand { container: String },
    #[error(
        "container `{container}` runs `{program}`, which its image does not provide (it has: {has})"
    )]
    NotInImage {
        container: String,
        program: String,
        has: String,
    },
    #[error(
        "the stand-in for the image needs `{program}` on this machine (apt-get install {package})"
    )]
    HostProgram {
        program: String,
        package: &'static str,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// One Job's (or bare Pod's) pod as the chart rendered it: a test hook or any other Job.
#[derive(Debug, Clone)]
pub struct TestHook {
    /// `Job/<name>` or `Pod/<name>`.
    pub object: String,
    pub name: String,
    pub spec: PodSpec,
    /// Pod attempts before the Job counts as failed (`backoffLimit` + 1; 1 for a bare Pod).
    pub attempts: u32,
    pub deadline: Duration,
}

/// A Job's pod with the Job's retry budget and deadline (capped at `cap`).
pub fn job_pod(
    job: &k8s_openapi::api::batch::v1::Job,
    cap: Duration,
) -> Result<TestHook, HookError> {
    let name = job.metadata.name.clone().unwrap_or_default();
    let spec = job.spec.as_ref().ok_or_else(|| HookError::NoSpec {
        object: format!("Job {name}"),
    })?;
    let pod = spec
        .template
        .spec
        .clone()
        .ok_or_else(|| HookError::NoPodTemplate { job: name.clone() })?;
    let (attempts, deadline) = crate::backend::jobs::budget(job, cap);
    Ok(TestHook {
        object: format!("Job/{name}"),
        name,
        spec: pod,
        attempts,
        deadline,
    })
}

/// Every `helm test` hook of the render, in helm's order.
pub fn test_hooks(rendered: &Rendered) -> Result<Vec<TestHook>, HookError> {
    let mut out = Vec::new();
    for j in rendered
        .jobs()
        .filter(|j| render::hooks::is_test(&j.metadata))
    {
        let name = j.metadata.name.clone().unwrap_or_default();
        let spec = j.spec.as_ref().ok_or_else(|| HookError::NoSpec {
            object: format!("Job {name}"),
        })?;
        let pod = spec
            .template
            .spec
            .clone()
            .ok_or_else(|| HookError::NoPodTemplate { job: name.clone() })?;
        // Kubernetes' defaults: 6 retries, no deadline (helm's own --timeout of 5m bounds it).
        let attempts = u32::try_from(spec.backoff_limit.unwrap_or(6)).unwrap_or(0) + 1;
        let deadline = Duration::from_secs(
            spec.active_deadline_seconds
                .map_or(300, |s| s.clamp(1, 300) as u64),
        );
        out.push(TestHook {
            object: format!("Job/{name}"),
            name,
            spec: pod,
            attempts,
            deadline,
        });
    }
    for p in rendered
        .pods()
        .filter(|p| render::hooks::is_test(&p.metadata))
    {
        let name = p.metadata.name.clone().unwrap_or_default();
        let spec = p.spec.clone().ok_or_else(|| HookError::NoSpec {
            object: format!("Pod {name}"),
        })?;
        out.push(TestHook {
            object: format!("Pod/{name}"),
            name,
            spec,
            attempts: 1,
            deadline: Duration::from_secs(300),
        });
    }
    Ok(out)
}

/// What the backend knows of an image it can stand in for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageModel {
    /// ENTRYPOINT and CMD of the image.
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// The image's default user (uid, gid) and home.
    pub user: (u32, u32),
    pub home: &'static str,
    /// Host programs standing in for the image's own, by the name the image has them under.
    pub programs: Vec<&'static str>,
    /// An image that is one binary (its ENTRYPOINT): the host build standing in for it. Its
    /// pod runs in a root of its own (see [`image_root_argv`]).
    pub tool: Option<PathBuf>,
}

/// Where the backup image has its binary (its ENTRYPOINT).
pub const BACKUP_TOOL_PATH: &str = "/chromadb-backup";
/// The backup image's non-root user (distroless `nonroot`).
pub const BACKUP_TOOL_USER: (u32, u32) = (65532, 65532);

/// The host build of `chromadb-backup` that stands in for its image: `$CHROMADB_BACKUP_BIN`,
/// else the newest of the workspace's `target/{debug,release}/chromadb-backup`.
pub fn backup_tool_binary() -> Result<PathBuf, HookError> {
    if let Some(p) = std::env::var_os("CHROMADB_BACKUP_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(HookError::BackupBinNotAFile(p))
        };
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    ["debug", "release"]
        .iter()
        .map(|p| target.join(p).join("chromadb-backup"))
        .filter(|p| p.is_file())
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .ok_or(HookError::NoBackupBuild { target })
}

/// What an Alpine-based image's busybox provides that a shell script commonly calls.
const BUSYBOX_BASICS: &[&str] = &[
    "sh", "cat", "echo", "printf", "test", "[", "sleep", "grep", "sed", "head", "tail", "tr",
    "cut", "wc", "env", "true", "false", "date", "id",
];

/// The image → model table. `…/chromadb-backup` (any registry and owner) is the backup
/// tool's image: one static binary as ENTRYPOINT, user 65532. `curlimages/curl` is the chart's default test image: Alpine with
/// curl, ENTRYPOINT `/entrypoint.sh` (which runs `curl "$@"` unless its first argument is a
/// program), CMD `curl`, user `curl_user` (100:101).
pub fn image_model(image: &str) -> Result<ImageModel, HookError> {
    let repo = image.split('@').next().unwrap_or(image);
    let repo = match repo.rfind(':') {
        Some(i) if !repo[i..].contains('/') => &repo[..i],
        _ => repo,
    };
    let path = repo
        .trim_start_matches("docker.io/")
        .trim_start_matches("index.docker.io/");
    // A registry prefix (a mirror) keeps the image what it is.
    let known = |name: &str| path == name || path.ends_with(&format!("/{name}"));
    if path == "chromadb-backup" || path.ends_with("/chromadb-backup") {
        let bin = backup_tool_binary().map_err(|e| HookError::Image {
            image: image.to_string(),
            source: Box::new(e),
        })?;
        return Ok(ImageModel {
            entrypoint: vec![BACKUP_TOOL_PATH.into()],
            cmd: Vec::new(),
            user: BACKUP_TOOL_USER,
            home: "/",
            programs: Vec::new(),
            tool: Some(bin),
        });
    }
    if known("curlimages/curl") {
        let mut programs: Vec<&'static str> = BUSYBOX_BASICS.to_vec();
        programs.push("curl");
        return Ok(ImageModel {
            entrypoint: vec!["/entrypoint.sh".into()],
            cmd: vec!["curl".into()],
            user: (100, 101),
            home: "/home/curl_user",
            programs,
            tool: None,
        });
    }
    Err(HookError::UnknownImage {
        image: image.to_string(),
    })
}

/// The argv a container runs: `command` replaces the ENTRYPOINT, `args` the CMD (the
/// Kubernetes rules), with the curl image's entrypoint script resolved to what it execs.
pub fn argv(c: &Container, model: &ImageModel) -> Result<Vec<String>, HookError> {
    let command = c.command.clone().unwrap_or_default();
    let args = c.args.clone();
    let argv: Vec<String> = match (command.is_empty(), args) {
        (false, Some(a)) => command.into_iter().chain(a).collect(),
        (false, None) => command,
        (true, Some(a)) => model.entrypoint.iter().cloned().chain(a).collect(),
        (true, None) => model
            .entrypoint
            .iter()
            .cloned()
            .chain(model.cmd.iter().cloned())
            .collect(),
    };
    if argv.first().map(String::as_str) == Some("/entrypoint.sh") {
        // The script: `curl "$@"` when the first argument is an option or not a program.
        let rest: Vec<String> = argv[1..].to_vec();
        let first_is_program = rest
            .first()
            .is_some_and(|a| !a.starts_with('-') && model.programs.contains(&a.as_str()));
        return Ok(if first_is_program {
            rest
        } else {
            std::iter::once("curl".to_string()).chain(rest).collect()
        });
    }
    match argv.first() {
        None => Err(HookError::NoCommand {
            container: c.name.clone(),
        }),
        Some(p) if model.tool.is_some() && model.entrypoint.first() == Some(p) => Ok(argv),
        Some(p)
            if !model.programs.contains(
                &p.trim_start_matches("/bin/")
                    .trim_start_matches("/usr/bin/"),
            ) =>
        {
            Err(HookError::NotInImage {
                container: c.name.clone(),
                program: p.clone(),
                has: model.programs.join(", "),
            })
        }
        Some(_) => Ok(argv),
    }
}

/// A directory holding only the image's programs (symlinks to the host's), to be the whole
/// PATH of the hook container.
pub fn image_bin(dir: &Path, model: &ImageModel) -> Result<PathBuf, HookError> {
    let io = |context: String| move |source| HookError::Io { context, source };
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).map_err(io(format!("creating {}", bin.display())))?;
    for prog in &model.programs {
        let host = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
            .iter()
            .map(|d| Path::new(d).join(prog))
            .find(|p| p.is_file());
        let Some(host) = host else {
            return Err(HookError::HostProgram {
                program: prog.to_string(),
                package: if *prog == "curl" { "curl" } else { "coreutils" },
            });
        };
        let link = bin.join(prog);
        if !link.exists() {
            std::os::unix::fs::symlink(&host, &link)
                .map_err(io(format!("linking {}", link.display())))?;
        }
    }
    Ok(bin)
}

/// A volume as a Job's container sees it: the host directory and the container path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub host: PathBuf,
    pub at: String,
    pub read_only: bool,
}

/// Host directories that stand in for an image's system files (libc, `/etc` for name
/// resolution through the pod's hosts file); on a merged-/usr host the top-level ones are
/// symlinks into /usr and stay symlinks.
const SYSTEM_DIRS: &[&str] = &["/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32"];

/// The bubblewrap argv that runs `argv` in a root of the pod's own: an empty root holding the
/// host's system directories read-only, the pod's volumes at their mount paths, the image's
/// binary (`tool`) at its path, the container's home; read-only as a whole when the container
/// asks for `readOnlyRootFilesystem` (volumes stay writable); then setpriv drops to the pod's
/// user — what a runtime does for an image that is one binary. Run inside the pod's network
/// namespace, so `/etc/hosts` is the pod's.
pub fn image_root_argv(
    mounts: &[Mount],
    tool: Option<(&Path, &str)>,
    home: &Path,
    user: &super::security::RunAs,
    argv: &[String],
) -> Vec<String> {
    let mut out: Vec<String> = ["--tmpfs", "/"].map(String::from).to_vec();
    for dir in SYSTEM_DIRS {
        let p = Path::new(dir);
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(p) {
                    out.extend([
                        "--symlink".into(),
                        target.display().to_string(),
                        dir.to_string(),
                    ]);
                }
            }
            Ok(_) => out.extend(["--ro-bind".into(), dir.to_string(), dir.to_string()]),
            Err(_) => {}
        }
    }
    out.extend(["--dev", "/dev", "--proc", "/proc", "--die-with-parent"].map(String::from));
    // A runtime creates the missing parents of a mount point traversable by everyone; bwrap
    // would make them 0700, shutting a non-root user out of e.g. /var/run/<volume>.
    let mut parents: Vec<PathBuf> = Vec::new();
    for m in mounts {
        let mut chain: Vec<PathBuf> = Path::new(&m.at)
            .ancestors()
            .skip(1)
            .filter(|a| *a != Path::new("/"))
            .map(Path::to_path_buf)
            .collect();
        chain.reverse();
        for a in chain
            .into_iter()
            .take_while(|a| !SYSTEM_DIRS.iter().any(|d| a.starts_with(d)))
        {
            if !parents.contains(&a) {
                out.extend([
                    "--perms".into(),
                    "0755".into(),
                    "--dir".into(),
                    a.display().to_string(),
                ]);
                parents.push(a);
            }
        }
    }
    for m in mounts {
        out.extend([
            if m.read_only { "--ro-bind" } else { "--bind" }.to_string(),
            m.host.display().to_string(),
            m.at.clone(),
        ]);
    }
    out.extend([
        "--bind".into(),
        home.display().to_string(),
        home.display().to_string(),
    ]);
    if let Some((host, at)) = tool {
        out.extend([
            "--ro-bind".into(),
            host.display().to_string(),
            at.to_string(),
        ]);
    }
    if user.read_only_root {
        out.extend(["--remount-ro".into(), "/".into()]);
        // The remount is not recursive: the volumes and home bound above stay writable.
    }
    out.extend(["--chdir".into(), home.display().to_string(), "--".into()]);
    let groups = if user.groups.is_empty() {
        "--clear-groups".to_string()
    } else {
        format!(
            "--groups={}",
            user.groups
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    out.extend([
        "/usr/bin/setpriv".into(),
        format!("--reuid={}", user.uid),
        format!("--regid={}", user.gid),
        groups,
        "--".into(),
    ]);
    out.extend(argv.iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    #[rstest]
    #[case::default_registry("docker.io/curlimages/curl:8.11.1")]
    #[case::bare_name("curlimages/curl")]
    #[case::mirror_with_digest("registry.local:5000/curlimages/curl@sha256:0123")]
    fn the_curl_image_is_modelled_wherever_it_is_pulled_from(#[case] image: &str) {
        assert_eq!(image_model(image).unwrap().user, (100, 101));
    }

    #[test]
    fn the_backup_tool_image_runs_its_binary_with_the_rendered_args() {
        let bin = tempfile::NamedTempFile::new().unwrap();
        // SAFETY: tests in this module do not read CHROMADB_BACKUP_BIN concurrently except this one.
        unsafe { std::env::set_var("CHROMADB_BACKUP_BIN", bin.path()) };
        let m = image_model("ghcr.io/amikos-tech/chromadb-backup:1.1.0").unwrap();
        unsafe { std::env::remove_var("CHROMADB_BACKUP_BIN") };
        assert_eq!(
            (m.user, m.tool.as_deref()),
            (BACKUP_TOOL_USER, Some(bin.path()))
        );
        let c = container(
            json!({"name": "backup", "args": ["dump", "--to", "/backups/", "--keep", "2"]}),
        );
        assert_eq!(
            argv(&c, &m).unwrap(),
            [BACKUP_TOOL_PATH, "dump", "--to", "/backups/", "--keep", "2"]
        );
        // A command that is not the image's binary is something the image does not have.
        let c = container(json!({"name": "backup", "command": ["sh", "-c", "x"]}));
        assert!(argv(&c, &m).unwrap_err().to_string().contains("`sh`"));
    }

    #[test]
    fn nested_mount_points_get_parents_everyone_can_traverse() {
        let user = super::super::security::RunAs {
            uid: 65532,
            gid: 65532,
            groups: vec![],
            fs_group: None,
            read_only_root: true,
        };
        let mounts = [
            Mount {
                host: "/v/ca".into(),
                at: "/var/run/chroma-ca".into(),
                read_only: true,
            },
            Mount {
                host: "/v/b".into(),
                at: "/backups".into(),
                read_only: false,
            },
        ];
        let s = image_root_argv(&mounts, None, Path::new("/h"), &user, &["x".into()]).join(" ");
        assert!(s.contains("--perms 0755 --dir /var --perms 0755 --dir /var/run --ro-bind /v/ca /var/run/chroma-ca --bind /v/b /backups"), "{s}");
    }

    #[test]
    fn the_image_root_mounts_volumes_and_the_tool_then_drops_to_the_pods_user() {
        let user = crate::process::security::RunAs {
            uid: 65532,
            gid: 65532,
            groups: vec![65532],
            fs_group: Some(65532),
            read_only_root: true,
        };
        let mounts = [
            Mount {
                host: "/v/claim".into(),
                at: "/backups".into(),
                read_only: false,
            },
            Mount {
                host: "/v/tmp".into(),
                at: "/tmp".into(),
                read_only: false,
            },
        ];
        let a = image_root_argv(
            &mounts,
            Some((Path::new("/t/chromadb-backup"), BACKUP_TOOL_PATH)),
            Path::new("/h"),
            &user,
            &[BACKUP_TOOL_PATH.into(), "dump".into()],
        );
        let s = a.join(" ");
        assert!(s.starts_with("--tmpfs / "), "{s}");
        assert!(s.contains("--bind /v/claim /backups --bind /v/tmp /tmp --bind /h /h --ro-bind /t/chromadb-backup /chromadb-backup --remount-ro / --chdir /h -- /usr/bin/setpriv --reuid=65532 --regid=65532 --groups=65532 -- /chromadb-backup dump"), "{s}");
        assert!(
            s.contains("/etc /etc"),
            "name resolution needs the pod's /etc: {s}"
        );
    }

    #[test]
    fn an_unknown_image_is_named() {
        let err = image_model("busybox:1").unwrap_err();
        assert!(err.to_string().contains("`busybox:1`"), "{err}");
    }

    #[test]
    fn command_replaces_the_entrypoint() {
        let m = image_model("curlimages/curl").unwrap();
        let c = container(json!({"name": "t", "command": ["sh", "-c", "echo hi"]}));
        assert_eq!(argv(&c, &m).unwrap(), ["sh", "-c", "echo hi"]);
    }

    #[test]
    fn args_alone_go_to_curl_through_the_entrypoint() {
        let m = image_model("curlimages/curl").unwrap();
        let c = container(json!({"name": "t", "args": ["-fsS", "http://x"]}));
        assert_eq!(argv(&c, &m).unwrap(), ["curl", "-fsS", "http://x"]);
    }

    #[test]
    fn a_program_the_image_lacks_is_refused() {
        let m = image_model("curlimages/curl").unwrap();
        let c = container(json!({"name": "t", "command": ["python3", "-c", "1"]}));
        assert!(argv(&c, &m).unwrap_err().to_string().contains("`python3`"));
    }

    #[test]
    fn test_hooks_are_found_with_their_retry_budget() {
        let r = Rendered::from_documents(vec![json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "r-test", "annotations": {"helm.sh/hook": "test"}},
            "spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "curlimages/curl"}]}}}
        }), json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "r-migrate", "annotations": {"helm.sh/hook": "pre-upgrade"}},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}
        })])
        .unwrap();
        let hooks = test_hooks(&r).unwrap();
        assert_eq!(
            hooks
                .iter()
                .map(|h| (h.object.as_str(), h.attempts))
                .collect::<Vec<_>>(),
            [("Job/r-test", 3)]
        );
    }
}
