//! The chart's TLS proxy sidecar (1.x with `tls.enabled`) on the process backend: Debian's
//! nginx stands in for the nginx image, run with the container's rendered command and args
//! in the pod's network namespace, its volumes mounted at their rendered container paths
//! (bubblewrap), so the rendered nginx.conf is read exactly as written — nothing in it is
//! rewritten.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::image::{Launch, LaunchError};
use super::security::{BWRAP, RunAs};

/// Where Debian's nginx package puts the program.
pub const NGINX: &str = "/usr/sbin/nginx";

/// What the backend knows of an nginx image: ENTRYPOINT `/docker-entrypoint.sh` (runs the
/// `/docker-entrypoint.d` scripts, which only edit the default site, then execs its
/// arguments), CMD `nginx -g "daemon off;"`, and its user (`nginx` 101:101 in both the
/// official and the unprivileged build).
pub fn is_nginx_image(image: &str) -> bool {
    let repo = image.split('@').next().unwrap_or(image);
    let repo = match repo.rfind(':') {
        Some(i) if !repo[i..].contains('/') => &repo[..i],
        _ => repo,
    };
    let path = repo
        .trim_start_matches("docker.io/")
        .trim_start_matches("index.docker.io/");
    ["nginx", "library/nginx", "nginxinc/nginx-unprivileged"]
        .iter()
        .any(|n| path == *n || path.ends_with(&format!("/{n}")))
}

pub const IMAGE_USER: (u32, u32) = (101, 101);

/// The argv the container runs, by the Kubernetes rules over the image's ENTRYPOINT/CMD.
pub fn argv(c: &Container) -> Result<Vec<String>, LaunchError> {
    let entrypoint = vec!["/docker-entrypoint.sh".to_string()];
    let cmd = vec![
        "nginx".to_string(),
        "-g".to_string(),
        "daemon off;".to_string(),
    ];
    let command = c.command.clone().filter(|v| !v.is_empty());
    let mut argv: Vec<String> = match (command, c.args.clone()) {
        (Some(cmd), a) => cmd.into_iter().chain(a.unwrap_or_default()).collect(),
        (None, Some(a)) => entrypoint.into_iter().chain(a).collect(),
        (None, None) => entrypoint.into_iter().chain(cmd).collect(),
    };
    if argv.first().map(String::as_str) == Some("/docker-entrypoint.sh") {
        argv.remove(0);
    }
    match argv.first().map(String::as_str) {
        Some("nginx" | "/usr/sbin/nginx") => Ok(argv),
        Some(p) => Err(LaunchError::Unsupported(format!(
            "container `{}` runs `{p}`; the nginx stand-in runs only `nginx`",
            c.name
        ))),
        None => Err(LaunchError::Invalid(format!(
            "container `{}` has no command",
            c.name
        ))),
    }
}

/// The deepest ancestor of `path` that exists on this host (where a tmpfs can be laid so the
/// missing rest can be made as a mount point).
fn existing_ancestor(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    while !p.exists() {
        if !p.pop() {
            return PathBuf::from("/");
        }
    }
    p
}

/// The bubblewrap argv that gives nginx the container's view: the host read-only (the image's
/// programs and libraries), each volume at its mount path (read-only unless it is a writable
/// emptyDir), then the pod's user.
pub fn launch(
    c: &Container,
    pod: &PodSpec,
    volume_dirs: &BTreeMap<String, PathBuf>,
    user: &RunAs,
    netns: &str,
) -> Result<Launch, LaunchError> {
    let argv = argv(c)?;
    let mut adjustments = vec![format!(
        "container `{}`: Debian's {NGINX} stands in for image {}",
        c.name,
        c.image.as_deref().unwrap_or("?")
    )];
    let (bw, more) =
        container_root_argv(c, pod, volume_dirs, user, NGINX, argv.into_iter().skip(1))?;
    adjustments.extend(more);
    Ok(Launch {
        program: PathBuf::from(BWRAP),
        args: bw,
        env: vec![(
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        )],
        cwd: PathBuf::from("/"),
        container_port: 0,
        adjustments,
        netns: Some(netns.to_string()),
    })
}

/// The bubblewrap argv (and what it changed) that runs `program args` as container `c` of
/// `pod` would see it: the host read-only as the image, each volume at its mount path, then
/// the container's user. Shared by every host program that stands in for an image.
pub fn container_root_argv(
    c: &Container,
    pod: &PodSpec,
    volume_dirs: &BTreeMap<String, PathBuf>,
    user: &RunAs,
    program: &str,
    args: impl IntoIterator<Item = String>,
) -> Result<(Vec<String>, Vec<String>), LaunchError> {
    let mut bw: Vec<String> = [
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
    let mut adjustments = Vec::new();
    let mounts: Vec<_> = c.volume_mounts.iter().flatten().collect();
    // A mount point the host lacks cannot be made on the read-only root: its deepest existing
    // parent becomes a tmpfs holding the host's entries again (bound back read-only), where
    // the mount point can then be made.
    let mut rebuilt: Vec<PathBuf> = Vec::new();
    for m in &mounts {
        let at = Path::new(&m.mount_path);
        if at.exists() {
            continue;
        }
        let base = existing_ancestor(at);
        if base == Path::new("/") {
            return Err(LaunchError::Unsupported(format!(
                "container `{}`: mount path {} is a new top-level directory, which the stand-in cannot make",
                c.name, m.mount_path
            )));
        }
        if !rebuilt.contains(&base) {
            rebuilt.push(base);
        }
    }
    // Parents first; a rebuilt directory inside another is made empty there, then rebuilt.
    rebuilt.sort_by_key(|b| b.components().count());
    for base in &rebuilt {
        bw.extend(["--tmpfs".to_string(), base.display().to_string()]);
        let entries = std::fs::read_dir(base).map_err(|source| LaunchError::Io {
            context: format!("reading {}", base.display()),
            source,
        })?;
        for e in entries.flatten() {
            let host = e.path();
            if rebuilt.contains(&host) {
                bw.extend(["--dir".to_string(), host.display().to_string()]);
                continue;
            }
            match std::fs::read_link(&host) {
                Ok(target) => bw.extend([
                    "--symlink".to_string(),
                    target.display().to_string(),
                    host.display().to_string(),
                ]),
                Err(_) => bw.extend([
                    "--ro-bind".to_string(),
                    host.display().to_string(),
                    host.display().to_string(),
                ]),
            }
        }
        adjustments.push(format!("container `{}`: {} rebuilt as a tmpfs with the host's entries, to hold mount points the host lacks", c.name, base.display()));
    }
    // Missing parents explicitly, as a runtime makes them (0755): bubblewrap would make them 0700.
    let mut made: Vec<PathBuf> = Vec::new();
    for m in &mounts {
        let missing: Vec<&Path> = Path::new(&m.mount_path)
            .ancestors()
            .skip(1)
            .filter(|a| !a.exists())
            .collect();
        for a in missing.into_iter().rev() {
            if !made.iter().any(|d| d == a) {
                made.push(a.to_path_buf());
                bw.extend(["--dir".to_string(), a.display().to_string()]);
            }
        }
    }
    for m in &mounts {
        let dir = volume_dirs.get(&m.name).ok_or_else(|| {
            LaunchError::Invalid(format!(
                "container `{}`: volumeMount `{}` has no volume",
                c.name, m.name
            ))
        })?;
        let src = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => dir.join(sub),
            None => dir.clone(),
        };
        let writable = m.read_only != Some(true)
            && pod
                .volumes
                .iter()
                .flatten()
                .any(|v| v.name == m.name && v.empty_dir.is_some());
        bw.extend([
            if writable { "--bind" } else { "--ro-bind" }.to_string(),
            src.display().to_string(),
            m.mount_path.clone(),
        ]);
    }
    bw.push("--".into());
    if !user.is_root() {
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
        bw.extend([
            "/usr/bin/setpriv".to_string(),
            format!("--reuid={}", user.uid),
            format!("--regid={}", user.gid),
            groups,
            "--".into(),
        ]);
    }
    bw.push(program.to_string());
    bw.extend(args);
    Ok((bw, adjustments))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    #[rstest]
    #[case::unprivileged("docker.io/nginxinc/nginx-unprivileged:1.27-alpine", true)]
    #[case::official_on_a_mirror("mirror.local/library/nginx@sha256:00", true)]
    #[case::envoy("envoyproxy/envoy:v1.31", false)]
    fn nginx_images_are_recognised(#[case] image: &str, #[case] want: bool) {
        assert_eq!(is_nginx_image(image), want);
    }

    #[test]
    fn command_and_args_run_as_rendered_without_the_entrypoint_scripts() {
        let c: Container = serde_json::from_value(json!({"name": "p", "command": ["nginx"], "args": ["-c", "/etc/x.conf", "-g", "daemon off;"]})).unwrap();
        assert_eq!(
            argv(&c).unwrap(),
            ["nginx", "-c", "/etc/x.conf", "-g", "daemon off;"]
        );
    }

    #[test]
    fn another_program_is_not_modelled() {
        let c: Container =
            serde_json::from_value(json!({"name": "p", "command": ["sh", "-c", "nginx"]})).unwrap();
        assert!(matches!(argv(&c), Err(LaunchError::Unsupported(m)) if m.contains("`sh`")));
    }
}
