//! The node's image catalog: for each image a chart pod may name, what the image declares
//! (ENTRYPOINT, CMD, ENV, user, WORKDIR, the files it carries) and which program on this host
//! stands in for each of its executables. No image can be pulled here, so this table is the
//! node's "image store"; an image outside it is the kubelet's `ErrImagePull`, with the list of
//! what the node has.
//!
//! The per-image facts come from the process backend's models (process/image.rs for Chroma's
//! eras, process/hook.rs for curl and the backup tool, process/proxy.rs for nginx); this file
//! only joins them into one shape the sandbox runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Container;
use render::ChromaVersion;

use crate::process::image::{Era, Image, LEGACY_LOG_CONFIG};
use crate::process::pod::expand_k8s;
use crate::process::{hook, proxy};
use crate::venv::Venv;

/// What an image carries at a container path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageFile {
    Content(String),
    /// A host file or directory bound read-only.
    Host(PathBuf),
}

/// The script an image's ENTRYPOINT runs before it execs the real program, whose effect on
/// the argv and env the node applies (the script itself is not on this host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Script {
    None,
    /// Chroma's `/docker_entrypoint.sh` of the 0.x images.
    Chroma(ChromaVersion),
    /// curlimages/curl's `/entrypoint.sh`.
    Curl,
    /// nginx's `/docker-entrypoint.sh`.
    Nginx,
}

#[derive(Debug, Clone)]
pub struct NodeImage {
    pub reference: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<(String, String)>,
    pub user: (u32, u32),
    pub workdir: String,
    /// The image's executables, by every name and path the image has them under → the host
    /// program standing in.
    pub programs: BTreeMap<String, PathBuf>,
    pub files: Vec<(String, ImageFile)>,
    pub script: Script,
    /// What stands in for the image, said once in the pod's events.
    pub stand_in: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ImageError {
    /// The kubelet's ErrImagePull: no such image here.
    #[error(
        "image {image} is not on this node: {reason} (the node has: ghcr.io/chroma-core/chroma:<0.4.3 and up>, curlimages/curl, httpd, nginx / nginx-unprivileged, chromadb-backup)"
    )]
    Unknown { image: String, reason: String },
    /// The kubelet's StartError: the command is not an executable of the image.
    #[error("container {container}: executable `{program}` is not in image {image}")]
    NoExecutable {
        container: String,
        program: String,
        image: String,
    },
    #[error("container {container} has no command and image {image} no ENTRYPOINT or CMD")]
    NoCommand { container: String, image: String },
}

/// `registry/owner/name:tag@digest` → (`owner/name` without a docker.io prefix, tag).
pub fn repository_and_tag(image: &str) -> (String, Option<String>) {
    let no_digest = image.split('@').next().unwrap_or(image);
    let (repo, tag) = match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => {
            (&no_digest[..i], Some(no_digest[i + 1..].to_string()))
        }
        _ => (no_digest, None),
    };
    let repo = repo
        .trim_start_matches("docker.io/")
        .trim_start_matches("index.docker.io/")
        .trim_start_matches("library/");
    (repo.to_string(), tag)
}

fn named(repo: &str, name: &str) -> bool {
    repo == name || repo.ends_with(&format!("/{name}"))
}

/// Which Chroma release a Chroma image runs, from its tag (`1.5.0`, `v1.5.0`, `0.6.3`).
pub fn chroma_release(image: &str) -> Option<Result<ChromaVersion, ImageError>> {
    let (repo, tag) = repository_and_tag(image);
    if !named(&repo, "chroma-core/chroma") && !named(&repo, "chromadb/chroma") {
        return None;
    }
    let unknown = |reason: String| ImageError::Unknown {
        image: image.to_string(),
        reason,
    };
    Some(match tag {
        None => Err(unknown(
            "a Chroma image without a tag names no release".into(),
        )),
        Some(t) => t
            .trim_start_matches('v')
            .parse::<ChromaVersion>()
            .map_err(|e| unknown(format!("tag {t} is not a Chroma release: {e}"))),
    })
}

fn host_program(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
}

const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A Chroma image of `version`, served from its Python environment.
pub fn chroma(image: &str, version: &ChromaVersion, venv: &Venv) -> Result<NodeImage, ImageError> {
    let img = Image::of(version);
    let mut programs = BTreeMap::new();
    let names: &[&str] = if img.era == Era::Rust {
        &["chroma"]
    } else {
        &["uvicorn", "chroma", "python", "python3", "python3.11"]
    };
    for n in names {
        let host = venv.bin_dir().join(n);
        for alias in [
            n.to_string(),
            format!("/usr/local/bin/{n}"),
            format!("/usr/bin/{n}"),
            format!("/bin/{n}"),
        ] {
            programs.insert(alias, host.clone());
        }
    }
    let mut files = Vec::new();
    let script = if img.era == Era::Rust {
        // The image's default config (what `chroma run /config.yaml` reads when nothing is
        // mounted there).
        files.push((
            "/config.yaml".into(),
            ImageFile::Content(
                "port: 8000\nlisten_address: \"0.0.0.0\"\npersist_path: \"/data\"\n".into(),
            ),
        ));
        Script::None
    } else {
        let pkg = venv.chromadb_package().ok_or_else(|| ImageError::Unknown {
            image: image.to_string(),
            reason: format!(
                "the Python environment {} has no chromadb package",
                venv.dir.display()
            ),
        })?;
        files.push(("/chroma/chromadb".into(), ImageFile::Host(pkg)));
        files.push((
            "/chroma/log_config.yml".into(),
            ImageFile::Content(LEGACY_LOG_CONFIG.into()),
        ));
        programs.insert(
            crate::process::image::ENTRYPOINT_SCRIPT.into(),
            PathBuf::from("/bin/sh"),
        );
        Script::Chroma(version.clone())
    };
    let mut env = img.env.clone();
    env.push((
        "PATH".into(),
        format!("{}:{SYSTEM_PATH}", venv.bin_dir().display()),
    ));
    env.push(("LANG".into(), "C.UTF-8".into()));
    if img.era != Era::Rust {
        env.push(("PYTHONUNBUFFERED".into(), "1".into()));
    }
    Ok(NodeImage {
        reference: image.into(),
        entrypoint: img.entrypoint,
        cmd: img.cmd,
        env,
        user: (0, 0),
        workdir: img.workdir.into(),
        programs,
        files,
        script,
        stand_in: format!("chromadb {version} from {}", venv.dir.display()),
    })
}

/// The OpenTelemetry Collector contrib image, served by the collector built from its Go
/// modules at the image's release with the components the chart's config uses.
pub fn collector(image: &str, built: &Path) -> Result<NodeImage, ImageError> {
    use crate::process::collector::{IMAGE_ENTRYPOINT, IMAGE_USER};
    if !built.is_file() {
        return Err(ImageError::Unknown {
            image: image.to_string(),
            reason: format!(
                "the collector standing in for it is not built at {} (run `cargo xtask tools --observability`)",
                built.display()
            ),
        });
    }
    let mut programs = BTreeMap::new();
    for alias in [IMAGE_ENTRYPOINT, IMAGE_ENTRYPOINT.trim_start_matches('/')] {
        programs.insert(alias.to_string(), built.to_path_buf());
    }
    Ok(NodeImage {
        reference: image.into(),
        entrypoint: vec![IMAGE_ENTRYPOINT.into()],
        // The contrib image's CMD.
        cmd: vec!["--config".into(), "/etc/otelcol-contrib/config.yaml".into()],
        env: vec![("PATH".into(), SYSTEM_PATH.into())],
        user: IMAGE_USER,
        workdir: "/".into(),
        programs,
        files: Vec::new(),
        script: Script::None,
        stand_in: format!("the collector built from Go modules at {}", built.display()),
    })
}

/// Every other image the chart names.
pub fn other(image: &str) -> Result<NodeImage, ImageError> {
    let (repo, _) = repository_and_tag(image);
    let unknown = |reason: String| ImageError::Unknown {
        image: image.to_string(),
        reason,
    };
    let env_path = vec![("PATH".to_string(), SYSTEM_PATH.to_string())];
    if proxy::is_nginx_image(image) {
        let mut programs = BTreeMap::new();
        for alias in ["nginx", "/usr/sbin/nginx"] {
            programs.insert(alias.to_string(), PathBuf::from(proxy::NGINX));
        }
        programs.insert("/docker-entrypoint.sh".into(), PathBuf::from(proxy::NGINX));
        return Ok(NodeImage {
            reference: image.into(),
            entrypoint: vec!["/docker-entrypoint.sh".into()],
            cmd: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
            env: env_path,
            user: proxy::IMAGE_USER,
            workdir: "/".into(),
            programs,
            files: Vec::new(),
            script: Script::Nginx,
            stand_in: format!("Debian's {}", proxy::NGINX),
        });
    }
    if named(&repo, "httpd") {
        // Debian-based like Debian's own apache2-utils: the same `sh` (dash) and htpasswd.
        let mut programs = BTreeMap::new();
        for n in ["sh", "htpasswd"] {
            if let Some(h) = host_program(n) {
                programs.insert(n.to_string(), h.clone());
                programs.insert(format!("/bin/{n}"), h.clone());
                programs.insert(format!("/usr/local/apache2/bin/{n}"), h);
            }
        }
        return Ok(NodeImage {
            reference: image.into(),
            entrypoint: Vec::new(),
            cmd: vec!["httpd-foreground".into()],
            env: vec![(
                "PATH".into(),
                format!("/usr/local/apache2/bin:{SYSTEM_PATH}"),
            )],
            user: (0, 0),
            workdir: "/usr/local/apache2".into(),
            programs,
            files: Vec::new(),
            script: Script::None,
            stand_in: "Debian's /bin/sh and /usr/bin/htpasswd (apache2-utils)".into(),
        });
    }
    let model = hook::image_model(image).map_err(|e| unknown(crate::text::chain(&e)))?;
    let mut programs = BTreeMap::new();
    let script = if let Some(tool) = &model.tool {
        programs.insert(hook::BACKUP_TOOL_PATH.to_string(), tool.clone());
        Script::None
    } else {
        for p in &model.programs {
            if let Some(h) = host_program(p) {
                programs.insert(p.to_string(), h.clone());
                programs.insert(format!("/bin/{p}"), h.clone());
                programs.insert(format!("/usr/bin/{p}"), h);
            }
        }
        programs.insert("/entrypoint.sh".into(), PathBuf::from("/bin/sh"));
        Script::Curl
    };
    Ok(NodeImage {
        reference: image.into(),
        entrypoint: model.entrypoint.clone(),
        cmd: model.cmd.clone(),
        env: vec![
            ("PATH".into(), SYSTEM_PATH.into()),
            ("HOME".into(), model.home.into()),
        ],
        user: model.user,
        workdir: "/".into(),
        programs,
        files: Vec::new(),
        script,
        stand_in: match &model.tool {
            Some(t) => format!("the workspace's {}", t.display()),
            None => "Debian's curl and coreutils".into(),
        },
    })
}

/// What a container execs: the host program, argv[0] as the container names it, the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    pub program: PathBuf,
    pub argv0: String,
    pub args: Vec<String>,
}

/// The Kubernetes rules (`command` replaces ENTRYPOINT and drops CMD, `args` replaces CMD,
/// `$(VAR)` expanded against the container's env), then the effect of the image's entrypoint
/// script, then the executable looked up in the image. `env` may gain what the script exports.
pub fn exec(
    img: &NodeImage,
    c: &Container,
    env: &mut Vec<(String, String)>,
) -> Result<Exec, ImageError> {
    let command = c.command.clone().filter(|v| !v.is_empty());
    let mut argv: Vec<String> = match (command, c.args.clone()) {
        (Some(cmd), a) => cmd.into_iter().chain(a.unwrap_or_default()).collect(),
        (None, Some(a)) => img.entrypoint.iter().cloned().chain(a).collect(),
        (None, None) => img
            .entrypoint
            .iter()
            .cloned()
            .chain(img.cmd.iter().cloned())
            .collect(),
    };
    argv = argv.iter().map(|a| expand_k8s(a, env)).collect();
    let no_command = || ImageError::NoCommand {
        container: c.name.clone(),
        image: img.reference.clone(),
    };
    match (&img.script, argv.first().map(String::as_str)) {
        (Script::Chroma(v), Some(crate::process::image::ENTRYPOINT_SCRIPT)) => {
            let image = Image::of(v);
            argv = crate::process::image::run_entrypoint_script(v, &image, &argv[1..], env);
        }
        (Script::Curl, Some("/entrypoint.sh")) => {
            let rest: Vec<String> = argv[1..].to_vec();
            let first_is_program = rest
                .first()
                .is_some_and(|a| !a.starts_with('-') && img.programs.contains_key(a.as_str()));
            argv = if first_is_program {
                rest
            } else {
                std::iter::once("curl".to_string()).chain(rest).collect()
            };
        }
        (Script::Nginx, Some("/docker-entrypoint.sh")) => {
            argv.remove(0);
        }
        _ => {}
    }
    if argv.first().map(String::as_str) == Some("dumb-init")
        && argv.get(1).map(String::as_str) == Some("--")
    {
        argv.drain(..2);
    }
    let argv0 = argv.first().cloned().ok_or_else(no_command)?;
    let program = img
        .programs
        .get(&argv0)
        .cloned()
        .ok_or_else(|| ImageError::NoExecutable {
            container: c.name.clone(),
            program: argv0.clone(),
            image: img.reference.clone(),
        })?;
    Ok(Exec {
        program,
        argv0,
        args: argv[1..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    fn venv() -> Venv {
        Venv {
            version: "1.5.0".parse().unwrap(),
            dir: "/venvs/x".into(),
        }
    }

    /// An environment with a chromadb package, as the 0.x image needs under /chroma.
    fn venv_with_package() -> (tempfile::TempDir, Venv) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("lib/python3.11/site-packages/chromadb")).unwrap();
        let v = Venv {
            version: "0.6.3".parse().unwrap(),
            dir: d.path().into(),
        };
        (d, v)
    }

    #[rstest]
    #[case::ghcr(
        "ghcr.io/chroma-core/chroma:1.5.0",
        "ghcr.io/chroma-core/chroma",
        Some("1.5.0")
    )]
    #[case::docker_hub_library("docker.io/library/nginx:1.27", "nginx", Some("1.27"))]
    #[case::registry_port_no_tag("reg.local:5000/httpd", "reg.local:5000/httpd", None)]
    #[case::digest("curlimages/curl:8.11.1@sha256:00", "curlimages/curl", Some("8.11.1"))]
    fn references_split_into_repository_and_tag(
        #[case] image: &str,
        #[case] repo: &str,
        #[case] tag: Option<&str>,
    ) {
        assert_eq!(
            repository_and_tag(image),
            (repo.to_string(), tag.map(String::from))
        );
    }

    #[rstest]
    #[case::plain("ghcr.io/chroma-core/chroma:0.6.3", Some("0.6.3"))]
    #[case::v_prefixed("chromadb/chroma:v1.5.0", Some("1.5.0"))]
    #[case::not_chroma("docker.io/httpd:2", None)]
    fn a_chroma_image_names_its_release_by_tag(#[case] image: &str, #[case] want: Option<&str>) {
        assert_eq!(
            chroma_release(image).map(|r| r.unwrap().to_string()),
            want.map(String::from)
        );
    }

    #[test]
    fn a_chroma_image_without_a_release_tag_is_not_pullable_with_the_reason() {
        let e = chroma_release("ghcr.io/chroma-core/chroma:latest")
            .unwrap()
            .unwrap_err();
        assert!(
            e.to_string().contains("tag latest is not a Chroma release"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_image_is_refused_listing_what_the_node_has() {
        let e = other("quay.io/someone/redis:7").unwrap_err();
        assert!(
            e.to_string().contains("quay.io/someone/redis:7")
                && e.to_string().contains("curlimages/curl"),
            "{e}"
        );
    }

    #[test]
    fn the_rust_server_runs_chroma_run_with_the_rendered_config_and_the_image_carries_a_default_one()
     {
        let v: ChromaVersion = "1.5.0".parse().unwrap();
        let img = chroma("ghcr.io/chroma-core/chroma:1.5.0", &v, &venv()).unwrap();
        let mut env = img.env.clone();
        let e = exec(
            &img,
            &container(json!({"name": "chromadb", "args": ["run", "/etc/chroma/config.yaml"]})),
            &mut env,
        )
        .unwrap();
        assert_eq!(
            (e.program, e.argv0.as_str(), e.args),
            (
                PathBuf::from("/venvs/x/bin/chroma"),
                "chroma",
                vec!["run".to_string(), "/etc/chroma/config.yaml".into()]
            )
        );
        assert!(img.files.iter().any(|(p, _)| p == "/config.yaml"));
    }

    #[test]
    fn the_0x_entrypoint_script_starts_uvicorn_with_its_expanded_arguments_and_exports_is_persistent()
     {
        let v: ChromaVersion = "0.6.3".parse().unwrap();
        let (_d, venv) = venv_with_package();
        let img = chroma("ghcr.io/chroma-core/chroma:0.6.3", &v, &venv).unwrap();
        let mut env = img.env.clone();
        let e = exec(&img, &container(json!({"name": "chromadb"})), &mut env).unwrap();
        assert_eq!(e.program, venv.dir.join("bin/uvicorn"));
        assert_eq!(
            e.args[..3],
            [
                "chromadb.app:app".to_string(),
                "--workers".into(),
                "1".into()
            ]
        );
        assert!(
            env.iter().any(|(k, v)| k == "IS_PERSISTENT" && v == "1"),
            "{env:?}"
        );
    }

    #[test]
    fn k8s_variables_in_args_expand_from_the_container_env() {
        let img = other("docker.io/curlimages/curl:8.11.1").unwrap();
        let mut env = vec![("URL".to_string(), "http://x:8000".to_string())];
        let e = exec(
            &img,
            &container(json!({"name": "t", "args": ["-sf", "$(URL)/api"]})),
            &mut env,
        )
        .unwrap();
        assert_eq!(
            (e.argv0.as_str(), e.args),
            ("curl", vec!["-sf".to_string(), "http://x:8000/api".into()])
        );
    }

    #[test]
    fn a_command_the_image_lacks_is_a_start_error_naming_it() {
        let img = other("docker.io/httpd:2").unwrap();
        let e = exec(
            &img,
            &container(json!({"name": "htpasswd", "command": ["bash", "-c", "x"]})),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(
            e,
            ImageError::NoExecutable {
                container: "htpasswd".into(),
                program: "bash".into(),
                image: "docker.io/httpd:2".into()
            }
        );
    }

    #[test]
    fn nginx_runs_its_cmd_without_the_entrypoint_script() {
        let img = other("docker.io/nginxinc/nginx-unprivileged:1.27-alpine").unwrap();
        let e = exec(
            &img,
            &container(json!({"name": "tls-proxy"})),
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(
            (e.argv0.as_str(), e.args),
            ("nginx", vec!["-g".to_string(), "daemon off;".into()])
        );
    }
}
