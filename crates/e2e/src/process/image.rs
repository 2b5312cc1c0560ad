//! The official Chroma image of each era, as far as starting the server goes: its ENTRYPOINT,
//! CMD, WORKDIR, ENV and entrypoint script (docs/chroma-eras.md#images-and-entrypoints), and how a container's
//! `command`/`args` override them. The result is the exact argv/env the container would run,
//! with only the listen address and port changed and absolute paths re-rooted.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Container;
use render::ChromaVersion;

use super::pod::{Layout, expand_k8s};
use crate::venv::Venv;

/// The three ways the official image has started the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// 0.4.0–0.4.22: CMD runs a script with hard-coded `uvicorn … --port 8000`.
    Legacy,
    /// 0.4.23–0.6.x: ENTRYPOINT script expands `${CHROMA_HOST_PORT}` etc. from CMD/args.
    Entrypoint,
    /// >= 1.0.0: ENTRYPOINT `chroma`, CMD `run /config.yaml`, no shell.
    Rust,
}

impl Era {
    pub fn of(v: &ChromaVersion) -> Era {
        if v.is_rust_server() {
            Era::Rust
        } else if *v >= ChromaVersion::new(0, 4, 23) {
            Era::Entrypoint
        } else {
            Era::Legacy
        }
    }
}

pub const ENTRYPOINT_SCRIPT: &str = "/docker_entrypoint.sh";
const WORKDIR: &str = "/chroma";

/// What the image declares.
#[derive(Debug, Clone)]
pub struct Image {
    pub era: Era,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: &'static str,
}

impl Image {
    pub fn of(v: &ChromaVersion) -> Image {
        let era = Era::of(v);
        let s = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match era {
            Era::Legacy => Image {
                era,
                entrypoint: vec![],
                cmd: s(&[ENTRYPOINT_SCRIPT]),
                env: vec![],
                workdir: WORKDIR,
            },
            Era::Entrypoint => Image {
                era,
                entrypoint: s(&[ENTRYPOINT_SCRIPT]),
                cmd: s(&[
                    "--workers ${CHROMA_WORKERS} --host ${CHROMA_HOST_ADDR} --port ${CHROMA_HOST_PORT} --proxy-headers --log-config ${CHROMA_LOG_CONFIG} --timeout-keep-alive ${CHROMA_TIMEOUT_KEEP_ALIVE}",
                ]),
                env: [
                    ("CHROMA_WORKERS", "1"),
                    ("CHROMA_HOST_ADDR", "0.0.0.0"),
                    ("CHROMA_HOST_PORT", "8000"),
                    ("CHROMA_LOG_CONFIG", "chromadb/log_config.yml"),
                    ("CHROMA_TIMEOUT_KEEP_ALIVE", "30"),
                ]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
                workdir: WORKDIR,
            },
            Era::Rust => Image {
                era,
                entrypoint: s(&["chroma"]),
                cmd: s(&["run", "/config.yaml"]),
                env: vec![],
                workdir: WORKDIR,
            },
        }
    }

    /// Programs the image has on its PATH that the process backend can run from the venv.
    fn has_program(&self, name: &str) -> bool {
        match self.era {
            Era::Rust => name == "chroma",
            _ => matches!(
                name,
                "uvicorn" | "chroma" | "python" | "python3" | "python3.11"
            ),
        }
    }
}

/// Why the image's own files could not be laid out in the container's filesystem.
#[derive(Debug, thiserror::Error)]
pub enum ImageFsError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the environment {} has no chromadb package", .0.display())]
    NoPackage(PathBuf),
}

/// The files the image itself carries that a start can depend on.
pub fn populate_image_fs(
    layout: &Layout,
    version: &ChromaVersion,
    venv: &Venv,
) -> Result<(), ImageFsError> {
    let io = |context: String| move |source| ImageFsError::Io { context, source };
    let fs = layout.fs();
    let workdir = layout.host_path(WORKDIR);
    std::fs::create_dir_all(&workdir).map_err(io(format!("creating {}", workdir.display())))?;
    for d in ["tmp", "root"] {
        std::fs::create_dir_all(fs.join(d)).map_err(io(format!("creating {d}")))?;
    }
    match Era::of(version) {
        Era::Rust => {
            // The image's default server config (what `chroma run /config.yaml` reads when no
            // ConfigMap is mounted there): listen on all interfaces, port 8000, data in /data.
            std::fs::write(
                fs.join("config.yaml"),
                "port: 8000\nlisten_address: \"0.0.0.0\"\npersist_path: \"/data\"\n",
            )
            .map_err(io("writing /config.yaml".into()))?;
        }
        _ => {
            // /chroma holds the source tree in the image: the `chromadb` package (so
            // `chromadb/log_config.yml` resolves from the WORKDIR) and, in old releases, a
            // `log_config.yml` at the top.
            let pkg = venv
                .chromadb_package()
                .ok_or_else(|| ImageFsError::NoPackage(venv.dir.clone()))?;
            std::os::unix::fs::symlink(&pkg, workdir.join("chromadb"))
                .map_err(io("linking the chromadb package into /chroma".into()))?;
            std::fs::write(workdir.join("log_config.yml"), LEGACY_LOG_CONFIG)
                .map_err(io("writing /chroma/log_config.yml".into()))?;
        }
    }
    Ok(())
}

/// The uvicorn logging config the 0.4.x source tree shipped at its top level.
pub(crate) const LEGACY_LOG_CONFIG: &str = r#"version: 1
disable_existing_loggers: False
formatters:
  default:
    "()": uvicorn.logging.DefaultFormatter
    format: '%(levelprefix)s [%(asctime)s] %(message)s'
handlers:
  console:
    class: logging.StreamHandler
    formatter: default
    stream: ext://sys.stderr
root:
  level: INFO
  handlers: [console]
"#;

/// How one start runs: host program, argv, env, cwd, and what was changed.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// The port the server would have listened on in the container.
    pub container_port: u16,
    pub adjustments: Vec<String>,
    /// The pod's network namespace (`ip netns` name), when the pod has one.
    pub netns: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// What the container would fail with too (missing executable, bad config).
    #[error("{0}")]
    Invalid(String),
    /// A start the process backend cannot model faithfully.
    #[error("{0}")]
    Unsupported(String),
    /// The server's config file, which the container would fail on too.
    #[error("`chroma run` config {} cannot be read in the container: {source}", path.display())]
    ConfigUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`chroma run` config {} is not YAML: {source}", path.display())]
    ConfigNotYaml {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    /// This host failed the harness (writing the adjusted config, reading a directory).
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn set(env: &mut Vec<(String, String)>, k: &str, v: impl Into<String>) {
    env.retain(|(n, _)| n != k);
    env.push((k.to_string(), v.into()));
}

fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
}

/// An absolute container path re-rooted under the deployment's filesystem.
fn reroot(layout: &Layout, value: &str) -> Option<String> {
    let root = layout.root.to_string_lossy();
    if !value.starts_with('/')
        || value.starts_with("//")
        || value.contains(char::is_whitespace)
        || value.starts_with(root.as_ref())
    {
        return None;
    }
    Some(layout.host_path(value).to_string_lossy().into_owned())
}

/// Shell-style `$VAR` / `${VAR}` expansion as the entrypoint's `eval echo` does it.
pub fn expand_shell(input: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '$' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let (name, next) = if chars.get(i + 1) == Some(&'{') {
            match chars[i + 2..].iter().position(|c| *c == '}') {
                Some(end) => (
                    chars[i + 2..i + 2 + end].iter().collect::<String>(),
                    i + 3 + end,
                ),
                None => (String::new(), i + 1),
            }
        } else {
            let len = chars[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                .count();
            (chars[i + 1..i + 1 + len].iter().collect(), i + 1 + len)
        };
        if name.is_empty() {
            out.push('$');
            i += 1;
        } else {
            out.push_str(get(env, &name).unwrap_or(""));
            i = next;
        }
    }
    out
}

/// Builds the start: image defaults, the container's env/command/args over them, the
/// entrypoint script's effect, then the loopback/port change and path re-rooting.
/// `host_port`: `Some(port)` moves the server to 127.0.0.1:`port` on this host; `None` keeps
/// the rendered address and port (the pod has a network namespace of its own).
pub fn launch(
    version: &ChromaVersion,
    venv: &Venv,
    layout: &Layout,
    c: &Container,
    pod_env: Vec<(String, String)>,
    host_port: Option<u16>,
) -> Result<Launch, LaunchError> {
    let image = Image::of(version);
    let mut adjustments = Vec::new();

    let mut env = image.env.clone();
    for (k, v) in pod_env {
        set(&mut env, &k, v);
    }

    // Kubernetes: `command` replaces ENTRYPOINT (and drops CMD); `args` replaces CMD; both
    // are `$(VAR)`-expanded against the container's env.
    let command = c.command.clone().filter(|v| !v.is_empty());
    let args = c.args.clone();
    let mut argv: Vec<String> = match (command, args) {
        (Some(cmd), a) => cmd.into_iter().chain(a.unwrap_or_default()).collect(),
        (None, Some(a)) => image.entrypoint.iter().cloned().chain(a).collect(),
        (None, None) => image
            .entrypoint
            .iter()
            .cloned()
            .chain(image.cmd.iter().cloned())
            .collect(),
    };
    argv = argv.iter().map(|a| expand_k8s(a, &env)).collect();
    if argv.is_empty() {
        return Err(LaunchError::Invalid(
            "the container has no command to run".into(),
        ));
    }

    // Paths in env values point into the container filesystem: re-root them (after the
    // k8s expansion above, which must see the values as the pod spec wrote them).
    for (k, v) in env.iter_mut() {
        if let Some(new) = reroot(layout, v) {
            adjustments.push(format!("env {k}={v} read from {new}"));
            *v = new;
        }
    }

    if argv[0] == ENTRYPOINT_SCRIPT {
        argv = run_entrypoint_script(version, &image, &argv[1..], &mut env);
    }
    if argv[0] == "dumb-init" && argv.get(1).map(String::as_str) == Some("--") {
        argv.drain(..2);
    }

    let name = argv[0].rsplit('/').next().unwrap_or_default().to_string();
    let on_path = !argv[0].contains('/')
        || ["/usr/local/bin/", "/usr/bin/", "/bin/"]
            .iter()
            .any(|d| argv[0].strip_prefix(d) == Some(name.as_str()));
    if !on_path || !image.has_program(&name) {
        return Err(LaunchError::Invalid(format!(
            "executable `{}` does not exist in the chroma {version} image (the container would fail with StartError)",
            argv[0]
        )));
    }
    let program = venv.bin_dir().join(&name);
    let mut rest: Vec<String> = argv[1..].to_vec();
    for a in rest.iter_mut() {
        let (flag, value) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (Some(f.to_string()), v.to_string()),
            _ => (None, a.clone()),
        };
        if let Some(new) = reroot(layout, &value) {
            adjustments.push(format!("argument {a} read from {new}"));
            *a = match flag {
                Some(f) => format!("{f}={new}"),
                None => new,
            };
        }
    }

    let container_port = match (name.as_str(), image.era) {
        ("chroma", Era::Rust) => {
            rust_listen(layout, &mut rest, &mut env, host_port, &mut adjustments)?
        }
        ("uvicorn", _) => {
            flag_listen(&mut rest, &env, "UVICORN_PORT", host_port, &mut adjustments)?
        }
        ("chroma", _) if rest.first().map(String::as_str) == Some("run") => {
            flag_listen(&mut rest, &[], "", host_port, &mut adjustments)?
        }
        // `python -m uvicorn …`, or a script handed uvicorn's command line (the chart's
        // uvicorn-tls.py with TLS on 0.x): both take uvicorn's --host/--port.
        ("python" | "python3" | "python3.11", _) if uvicorn_style(&rest) => {
            flag_listen(&mut rest, &env, "UVICORN_PORT", host_port, &mut adjustments)?
        }
        _ => {
            return Err(LaunchError::Unsupported(format!(
                "cannot tell which port `{}` listens on",
                argv.join(" ")
            )));
        }
    };

    set(
        &mut env,
        "PATH",
        format!("{}:/usr/local/bin:/usr/bin:/bin", venv.bin_dir().display()),
    );
    set(
        &mut env,
        "HOME",
        layout.host_path("/root").to_string_lossy(),
    );
    set(
        &mut env,
        "TMPDIR",
        layout.host_path("/tmp").to_string_lossy(),
    );
    set(&mut env, "LANG", "C.UTF-8");
    if image.era != Era::Rust && get(&env, "PYTHONUNBUFFERED").is_none() {
        // Python block-buffers stdout into a file; the log tail in failure reports must be
        // current. Output only, no behaviour change.
        set(&mut env, "PYTHONUNBUFFERED", "1");
        adjustments.push("PYTHONUNBUFFERED=1 so the server log is written as it happens".into());
    }
    Ok(Launch {
        program,
        args: rest,
        env,
        cwd: layout.host_path(image.workdir),
        container_port,
        adjustments,
        netns: None,
    })
}

/// Arguments after `python` that end in uvicorn's own command line.
fn uvicorn_style(rest: &[String]) -> bool {
    match rest {
        [m, module, ..] if m == "-m" && module == "uvicorn" => true,
        [script, app, ..] => script.ends_with(".py") && app.contains(':') && !app.starts_with('-'),
        _ => false,
    }
}

/// The image's `/docker_entrypoint.sh`: exports `IS_PERSISTENT=1` (over the pod's value) and
/// starts uvicorn with the fixed (0.4.0–0.4.22) or `eval`-expanded (0.4.23+) arguments.
pub(crate) fn run_entrypoint_script(
    version: &ChromaVersion,
    image: &Image,
    args: &[String],
    env: &mut Vec<(String, String)>,
) -> Vec<String> {
    set(env, "IS_PERSISTENT", "1");
    match image.era {
        Era::Legacy => {
            let log_config = if *version >= ChromaVersion::new(0, 4, 12) {
                "chromadb/log_config.yml"
            } else {
                "log_config.yml"
            };
            let mut argv: Vec<String> = [
                "uvicorn",
                "chromadb.app:app",
                "--workers",
                "1",
                "--host",
                "0.0.0.0",
                "--port",
                "8000",
                "--proxy-headers",
                "--log-config",
                log_config,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if *version >= ChromaVersion::new(0, 4, 16) {
                argv.extend(["--timeout-keep-alive".to_string(), "30".to_string()]);
            }
            argv
        }
        _ => {
            set(env, "CHROMA_SERVER_NOFILE", "65535");
            let joined = expand_shell(&args.join(" "), env);
            let words: Vec<String> = joined.split_whitespace().map(str::to_string).collect();
            if words.first().is_some_and(|w| w.starts_with("uvicorn")) {
                words
            } else {
                ["uvicorn".to_string(), "chromadb.app:app".to_string()]
                    .into_iter()
                    .chain(words)
                    .collect()
            }
        }
    }
}

/// Finds (or adds) `--host`/`--port` on a uvicorn-style command line and points them at
/// loopback and `host_port`.
fn flag_listen(
    rest: &mut Vec<String>,
    env: &[(String, String)],
    port_env: &str,
    host_port: Option<u16>,
    adj: &mut Vec<String>,
) -> Result<u16, LaunchError> {
    let mut port: Option<String> = None;
    let mut host: Option<String> = None;
    let mut i = 0;
    while i < rest.len() {
        for (flag, slot, new) in [
            ("--port", &mut port, host_port.map(|p| p.to_string())),
            (
                "--host",
                &mut host,
                host_port.map(|_| "127.0.0.1".to_string()),
            ),
        ] {
            if rest[i] == flag && i + 1 < rest.len() {
                *slot = Some(rest[i + 1].clone());
                if let Some(new) = new {
                    rest[i + 1] = new;
                }
            } else if let Some(v) = rest[i].strip_prefix(&format!("{flag}=")) {
                *slot = Some(v.to_string());
                if let Some(new) = new {
                    rest[i] = format!("{flag}={new}");
                }
            }
        }
        i += 1;
    }
    let raw = port.clone().or_else(|| {
        (!port_env.is_empty())
            .then(|| get(env, port_env).map(str::to_string))
            .flatten()
    });
    let container_port = match raw {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| LaunchError::Invalid(format!("--port {p:?} is not a port number")))?,
        None => 8000,
    };
    let Some(host_port) = host_port else {
        return Ok(container_port);
    };
    if host.is_none() {
        rest.extend(["--host".to_string(), "127.0.0.1".to_string()]);
    }
    if port.is_none() {
        rest.extend(["--port".to_string(), host_port.to_string()]);
    }
    adj.push(format!(
        "listen on 127.0.0.1:{host_port} instead of {}:{container_port}",
        host.as_deref().unwrap_or("127.0.0.1")
    ));
    Ok(container_port)
}

/// `chroma run CONFIG` on the Rust server: the port comes from the YAML, with `CHROMA_*`
/// environment merged over it. Writes an adjusted copy of the config (loopback, free port,
/// re-rooted paths) and points the command at it.
fn rust_listen(
    layout: &Layout,
    rest: &mut [String],
    env: &mut Vec<(String, String)>,
    host_port: Option<u16>,
    adj: &mut Vec<String>,
) -> Result<u16, LaunchError> {
    if rest.first().map(String::as_str) != Some("run") {
        return Err(LaunchError::Unsupported(format!(
            "`chroma {}` is not a server start the process backend models",
            rest.join(" ")
        )));
    }
    let Some(idx) = rest
        .iter()
        .skip(1)
        .position(|a| !a.starts_with('-'))
        .map(|p| p + 1)
    else {
        return Err(LaunchError::Unsupported(
            "`chroma run` without a config file is not modelled".into(),
        ));
    };
    if rest.len() > 2 {
        return Err(LaunchError::Unsupported(format!(
            "`chroma {}`: flags next to a config file are not modelled",
            rest.join(" ")
        )));
    }
    let path = PathBuf::from(&rest[idx]);
    let text = std::fs::read_to_string(&path).map_err(|source| LaunchError::ConfigUnreadable {
        path: path.clone(),
        source,
    })?;
    let mut cfg: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|source| LaunchError::ConfigNotYaml {
            path: path.clone(),
            source,
        })?;
    let map = cfg.as_mapping_mut().ok_or_else(|| {
        LaunchError::Invalid(format!(
            "`chroma run` config {} is not a mapping",
            path.display()
        ))
    })?;
    let from_file = match map.get("port") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| {
                    LaunchError::Invalid(format!(
                        "config `port: {}` is not a port number",
                        serde_yaml::to_string(v).unwrap_or_default().trim()
                    ))
                })?,
        ),
    };
    let from_env =
        match get(env, "CHROMA_PORT") {
            None => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| {
                LaunchError::Invalid(format!("CHROMA_PORT={p} is not a port number"))
            })?),
        };
    let container_port = from_env.or(from_file).unwrap_or(8000);
    let old_host = get(env, "CHROMA_LISTEN_ADDRESS")
        .map(str::to_string)
        .or_else(|| {
            map.get("listen_address")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "0.0.0.0".into());
    if let Some(host_port) = host_port {
        map.insert("port".into(), host_port.into());
        map.insert("listen_address".into(), "127.0.0.1".into());
        for k in ["CHROMA_PORT", "CHROMA_LISTEN_ADDRESS"] {
            if get(env, k).is_some() {
                set(
                    env,
                    k,
                    if k == "CHROMA_PORT" {
                        host_port.to_string()
                    } else {
                        "127.0.0.1".into()
                    },
                );
            }
        }
    }
    reroot_yaml(layout, &mut cfg, "", adj);
    let adjusted = layout
        .root
        .join("adjusted")
        .join(path.file_name().unwrap_or_default());
    let dir = adjusted.parent().unwrap_or(&layout.root);
    std::fs::create_dir_all(dir).map_err(|source| LaunchError::Io {
        context: format!("creating {}", dir.display()),
        source,
    })?;
    std::fs::write(&adjusted, serde_yaml::to_string(&cfg).unwrap_or_default()).map_err(
        |source| LaunchError::Io {
            context: format!("writing {}", adjusted.display()),
            source,
        },
    )?;
    match host_port {
        Some(host_port) => {
            adj.push(format!("listen on 127.0.0.1:{host_port} instead of {old_host}:{container_port}"));
            adj.push(format!("server config {} copied to {} with only port, listen_address and paths changed", rest[idx], adjusted.display()));
        }
        None => adj.push(format!("server config {} copied to {} with only paths changed (listening on {old_host}:{container_port} in the pod's network)", rest[idx], adjusted.display())),
    }
    rest[idx] = adjusted.to_string_lossy().into_owned();
    Ok(container_port)
}

fn reroot_yaml(layout: &Layout, v: &mut serde_yaml::Value, at: &str, adj: &mut Vec<String>) {
    match v {
        serde_yaml::Value::String(s) => {
            if let Some(new) = reroot(layout, s) {
                adj.push(format!("config {at}: {s} read from {new}"));
                *s = new;
            }
        }
        serde_yaml::Value::Mapping(m) => {
            for (k, val) in m.iter_mut() {
                let key = k.as_str().unwrap_or("?");
                reroot_yaml(
                    layout,
                    val,
                    &if at.is_empty() {
                        key.to_string()
                    } else {
                        format!("{at}.{key}")
                    },
                    adj,
                );
            }
        }
        serde_yaml::Value::Sequence(items) => items
            .iter_mut()
            .for_each(|i| reroot_yaml(layout, i, at, adj)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn layout() -> Layout {
        Layout {
            root: PathBuf::from("/tmp/dep"),
        }
    }

    fn venv(v: &ChromaVersion) -> Venv {
        Venv {
            version: v.clone(),
            dir: PathBuf::from("/venv"),
        }
    }

    fn container(yaml: &str) -> Container {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn v(s: &str) -> ChromaVersion {
        s.parse().unwrap()
    }

    #[rstest]
    #[case::entrypoint_reads_chroma_host_port("0.5.0", "name: c", &[("CHROMA_HOST_PORT", "8123")], 8123)]
    #[case::legacy_image_hard_codes_8000("0.4.8", "name: c", &[("CHROMA_HOST_PORT", "8123")], 8000)]
    #[case::args_port_wins_on_legacy("0.4.8", "name: c\ncommand: [uvicorn, chromadb.app:app, --port, '8123']", &[], 8123)]
    #[case::args_are_expanded_by_the_entrypoint("0.6.3", "name: c\nargs: ['--port ${CHROMA_HOST_PORT}']", &[("CHROMA_HOST_PORT", "9000")], 9000)]
    fn python_listen_port(
        #[case] version: &str,
        #[case] c: &str,
        #[case] env: &[(&str, &str)],
        #[case] want: u16,
    ) {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let l = launch(
            &v(version),
            &venv(&v(version)),
            &layout(),
            &container(c),
            env,
            Some(40000),
        )
        .unwrap();
        assert_eq!(l.container_port, want);
    }

    #[test]
    fn entrypoint_forces_is_persistent() {
        let env = vec![("IS_PERSISTENT".to_string(), "false".to_string())];
        let l = launch(
            &v("0.5.0"),
            &venv(&v("0.5.0")),
            &layout(),
            &container("name: c"),
            env,
            Some(40000),
        )
        .unwrap();
        assert_eq!(get(&l.env, "IS_PERSISTENT"), Some("1"));
    }

    #[test]
    fn command_bypasses_the_entrypoint_script() {
        let env = vec![("IS_PERSISTENT".to_string(), "false".to_string())];
        let l = launch(
            &v("0.5.0"),
            &venv(&v("0.5.0")),
            &layout(),
            &container("name: c\ncommand: [uvicorn, chromadb.app:app]"),
            env,
            Some(40000),
        )
        .unwrap();
        assert_eq!(get(&l.env, "IS_PERSISTENT"), Some("false"));
    }

    #[test]
    fn only_loopback_and_port_change_on_the_command_line() {
        let l = launch(&v("0.4.8"), &venv(&v("0.4.8")), &layout(), &container("name: c\ncommand: [uvicorn, chromadb.app:app, --host, 0.0.0.0, --port, '8000', --proxy-headers]"), vec![], Some(40000)).unwrap();
        assert_eq!(
            l.args,
            [
                "chromadb.app:app",
                "--host",
                "127.0.0.1",
                "--port",
                "40000",
                "--proxy-headers"
            ]
        );
    }

    #[test]
    fn in_a_pod_network_the_rendered_address_and_port_stay() {
        let l = launch(
            &v("0.6.3"),
            &venv(&v("0.6.3")),
            &layout(),
            &container(
                "name: c\ncommand: [uvicorn, chromadb.app:app, --host, 0.0.0.0, --port, '8000']",
            ),
            vec![],
            None,
        )
        .unwrap();
        assert_eq!(
            l.args,
            ["chromadb.app:app", "--host", "0.0.0.0", "--port", "8000"]
        );
        assert_eq!(l.container_port, 8000);
    }

    #[test]
    fn tls_files_on_the_command_line_are_read_from_the_mounted_secret() {
        let l = launch(&v("0.6.3"), &venv(&v("0.6.3")), &layout(), &container("name: c\ncommand: [uvicorn, chromadb.app:app, --ssl-certfile, /etc/chroma-tls/s/tls.crt]"), vec![], Some(40000)).unwrap();
        assert!(
            l.args
                .contains(&"/tmp/dep/fs/etc/chroma-tls/s/tls.crt".to_string()),
            "{:?}",
            l.args
        );
    }

    #[test]
    fn a_python_script_given_uvicorns_command_line_listens_where_its_port_flag_says() {
        let c = "name: c\ncommand: [python, /etc/chroma-uvicorn-tls/uvicorn-tls.py, chromadb.app:app, --port, '8123', --ssl-certfile, /etc/chroma-tls/s/tls.crt]";
        let l = launch(
            &v("0.6.3"),
            &venv(&v("0.6.3")),
            &layout(),
            &container(c),
            vec![],
            Some(40000),
        )
        .unwrap();
        assert_eq!(l.container_port, 8123);
        assert_eq!(
            l.args[0],
            "/tmp/dep/fs/etc/chroma-uvicorn-tls/uvicorn-tls.py"
        );
        assert!(
            l.args.windows(2).any(|w| w == ["--port", "40000"]),
            "{:?}",
            l.args
        );
    }

    #[test]
    fn a_python_script_without_an_app_is_not_taken_for_uvicorn() {
        let err = launch(
            &v("0.6.3"),
            &venv(&v("0.6.3")),
            &layout(),
            &container("name: c\ncommand: [python, /x.py, --port, '1']"),
            vec![],
            Some(40000),
        )
        .unwrap_err();
        assert!(
            matches!(err, LaunchError::Unsupported(ref m) if m.contains("cannot tell which port")),
            "{err}"
        );
    }

    #[test]
    fn absolute_paths_in_env_are_rerooted() {
        let env = vec![("PERSIST_DIRECTORY".to_string(), "/data".to_string())];
        let l = launch(
            &v("0.5.0"),
            &venv(&v("0.5.0")),
            &layout(),
            &container("name: c"),
            env,
            Some(40000),
        )
        .unwrap();
        assert_eq!(get(&l.env, "PERSIST_DIRECTORY"), Some("/tmp/dep/fs/data"));
    }

    #[test]
    fn unknown_executable_is_invalid() {
        let err = launch(
            &v("1.5.0"),
            &venv(&v("1.5.0")),
            &layout(),
            &container("name: c\ncommand: [uvicorn]"),
            vec![],
            Some(40000),
        )
        .unwrap_err();
        assert!(
            matches!(err, LaunchError::Invalid(ref m) if m.contains("`uvicorn` does not exist")),
            "{err}"
        );
    }

    #[rstest]
    #[case::braces("${A}-x", "1-x")]
    #[case::bare("$A x", "1 x")]
    #[case::unset_is_empty("${B}", "")]
    fn shell_expansion(#[case] input: &str, #[case] want: &str) {
        assert_eq!(expand_shell(input, &[("A".into(), "1".into())]), want);
    }
}
