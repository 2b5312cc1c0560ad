//! Shared by the render conformance suite: the chart under test, the version matrix, the
//! named scenarios, and cached, parallel renders.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use render::spec::lookup;
use render::{
    ChromaVersion, Expected, Helm, RenderCache, RenderError, RenderRequest, Rendered, SpecError,
    VersionMatrix,
};
use serde_yaml::Value;

/// The matrix as rstest `#[values]` lists spell it; `matrix::literal_version_lists_match_the_fixture`
/// keeps this equal to fixtures/versions.yaml.
pub const VERSIONS: [&str; 22] = [
    "0.4.3", "0.4.6", "0.4.7", "0.4.8", "0.4.14", "0.4.15", "0.4.24", "0.5.0", "0.5.15", "0.5.16",
    "0.5.23", "0.6.3", "1.0.0", "1.0.10", "1.0.11", "1.0.21", "1.1.1", "1.2.2", "1.3.7", "1.4.1",
    "1.5.0", "1.5.9",
];

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub struct Suite {
    pub cache: RenderCache,
    pub chart: PathBuf,
    pub matrix: VersionMatrix,
    pub scenarios: BTreeMap<String, Value>,
}

/// The suite for this process. Fails loudly (not a skip) without helm.
pub fn suite() -> &'static Suite {
    static SUITE: OnceLock<Suite> = OnceLock::new();
    SUITE.get_or_init(|| {
        let helm = match Helm::from_env() {
            Ok(h) => h,
            Err(e) => panic!(
                "the render suite needs helm: {e}\n  run it through `cargo xtask test`, or export HELM=/path/to/helm (e.g. HELM=/tmp/tools/helm/helm)"
            ),
        };
        let chart = std::env::var_os("CHART_DIR")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("charts/chromadb"));
        assert!(chart.join("Chart.yaml").is_file(), "CHART_DIR={} has no Chart.yaml", chart.display());
        let matrix_path = repo_root().join("fixtures/versions.yaml");
        let matrix = VersionMatrix::load(&matrix_path).unwrap_or_else(|e| panic!("{e}"));
        let mut scenarios = BTreeMap::new();
        let dir = repo_root().join("fixtures/values");
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let value: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let name = path.file_stem().expect("file name").to_string_lossy().into_owned();
                scenarios.insert(name, value);
            }
        }
        let cache_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("render-cache");
        Suite { cache: RenderCache::new(helm, Some(cache_dir)), chart, matrix, scenarios }
    })
}

pub fn v(s: &str) -> ChromaVersion {
    s.parse().unwrap_or_else(|e| panic!("{e}"))
}

pub fn yaml(s: &str) -> Value {
    serde_yaml::from_str(s).unwrap_or_else(|e| panic!("test values {s:?}: {e}"))
}

/// One scenario on one version: what the model says and what helm did.
pub struct Case {
    pub version: ChromaVersion,
    pub scenario: String,
    pub values: Value,
    pub expected: Result<Expected, SpecError>,
    pub render: Result<Arc<Rendered>, RenderError>,
}

impl Case {
    /// The model's expectation and the render, when the model accepts the values. When the
    /// model refuses them, asserts that helm refused them too, naming the same key.
    pub fn accepted(&self) -> Option<(&Expected, &Rendered)> {
        match (&self.expected, &self.render) {
            (Ok(e), Ok(r)) => Some((e, r)),
            (Ok(_), Err(err)) => {
                panic!("{self}: the spec accepts these values but helm refused them:\n{err}")
            }
            (Err(spec), Ok(_)) => {
                panic!("{self}: the spec refuses these values ({spec}) but helm rendered them")
            }
            (Err(spec), Err(err)) => {
                assert_names_key(&err.to_string(), &spec.key, &self.to_string());
                None
            }
        }
    }
}

impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "scenario `{}` on Chroma {}", self.scenario, self.version)
    }
}

/// helm names a key either dotted (the chart's `fail` messages) or as a JSON pointer (schema
/// errors); both count.
pub fn names_key(message: &str, key: &str) -> bool {
    let pointer = format!("/{}", key.replace('.', "/"));
    message.contains(key) || message.contains(&pointer)
}

pub fn assert_names_key(message: &str, key: &str, what: &str) {
    assert!(
        names_key(message, key),
        "{what}: helm's refusal does not name `{key}`:\n{message}"
    );
}

impl Suite {
    pub fn request(&self, version: Option<&ChromaVersion>, values: &Value) -> RenderRequest {
        let mut req = RenderRequest::new(&self.chart).values(values.clone());
        if let Some(v) = version {
            req = req.version(v.clone());
        }
        req
    }

    pub fn render(
        &self,
        version: &ChromaVersion,
        values: &Value,
    ) -> Result<Arc<Rendered>, RenderError> {
        self.cache.render(&self.request(Some(version), values))
    }

    pub fn scenario(&self, name: &str) -> &Value {
        self.scenarios.get(name).unwrap_or_else(|| {
            panic!(
                "no fixtures/values/{name}.yaml (have: {:?})",
                self.scenarios.keys()
            )
        })
    }

    pub fn case_values(&self, version: &str, scenario: &str, values: Value) -> Case {
        let version = v(version);
        Case {
            expected: Expected::from_values(&values, &version),
            render: self.render(&version, &values),
            version,
            scenario: scenario.to_string(),
            values,
        }
    }

    pub fn case(&self, version: &str, scenario: &str) -> Case {
        self.case_values(version, scenario, self.scenario(scenario).clone())
    }

    /// Every named scenario on `version`, rendered in parallel.
    pub fn cases(&self, version: &str, scenarios: &[&str]) -> Vec<Case> {
        parallel(scenarios, |s| self.case(version, s))
    }

    /// The accepted cases of `scenarios` on `version` (refusals are checked, then skipped).
    /// Never empty: a table test that checked no render proved nothing, so it fails.
    #[track_caller]
    pub fn accepted(&self, version: &str, scenarios: &[&str]) -> Vec<Case> {
        let cases: Vec<Case> = self
            .cases(version, scenarios)
            .into_iter()
            .filter(|c| c.accepted().is_some())
            .collect();
        assert_ran(
            cases.len(),
            &format!("Chroma {version}, scenarios {scenarios:?} (every one refused or none named)"),
        );
        cases
    }

    /// Every scenario of fixtures/values; never empty.
    pub fn all_scenarios(&self) -> Vec<&str> {
        let all: Vec<&str> = self.scenarios.keys().map(String::as_str).collect();
        assert_ran(all.len(), "fixtures/values/*.yaml");
        all
    }
}

/// The test running on this thread (libtest names each test's thread after it).
pub fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string()
}

/// Fails the current test when its table ran no case: `n` is how many it ran, `what`
/// says over what.
#[track_caller]
pub fn assert_ran(n: usize, what: &str) {
    assert!(
        n > 0,
        "{}: ran 0 cases over {what}; a table test must check at least one",
        current_test()
    );
}

/// Maps `f` over `items` on a few threads (helm is CPU-bound; renders are independent).
pub fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8)
        .min(items.len().max(1));
    let next = AtomicUsize::new(0);
    let mut out: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    let slots: Vec<std::sync::Mutex<&mut Option<R>>> =
        out.iter_mut().map(std::sync::Mutex::new).collect();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() {
                        break;
                    }
                    let r = f(&items[i]);
                    **slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                }
            });
        }
    });
    drop(slots);
    out.into_iter()
        .map(|r| r.expect("every item computed"))
        .collect()
}

/// The value of a resolved env var, or a panic naming what is missing.
pub fn env_value(r: &Rendered, name: &str) -> Option<String> {
    r.env_var(name).map(|e| match e.resolved() {
        Some(s) => s.to_string(),
        None => format!("<unresolved {e:?}>"),
    })
}

/// Semantic comparison of YAML scalars: `8000` and `"8000"` are different, `true` is `true`.
pub fn at<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    lookup(doc, path)
}

/// Chroma 0.4.23–0.6.3 images read host, port and log config from env in their entrypoint;
/// older ones hard-code them in the uvicorn command (docs/chroma-eras.md#images-and-entrypoints).
pub fn entrypoint_reads_env(version: &ChromaVersion) -> bool {
    *version >= render::version::ENTRYPOINT_ENV_FLOOR && !version.is_rust_server()
}

/// How the server wants the token header named in its transport-header setting: the enum
/// member name before 0.5.1, the HTTP header name from then on (docs/chroma-eras.md#auth).
pub fn token_header_setting(header: render::TokenHeader, version: &ChromaVersion) -> &'static str {
    match (header, *version >= render::version::TOKEN_HEADER_NAME_FLOOR) {
        (render::TokenHeader::Authorization, false) => "AUTHORIZATION",
        (render::TokenHeader::XChromaToken, false) => "X_CHROMA_TOKEN",
        (h, true) => h.header_name(),
    }
}

/// The value following `flag` in the chroma container's command + args.
pub fn cli_flag(r: &Rendered, flag: &str) -> Option<String> {
    let c = r.chroma_container()?;
    let all: Vec<&String> = c
        .command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .collect();
    all.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone())
}

/// What the Python server listens on / logs with: command-line flags win (they are what
/// uvicorn reads); the 0.4.23+ entrypoint falls back to its env variables; older images
/// fall back to the values they hard-code.
pub fn python_setting(
    r: &Rendered,
    version: &ChromaVersion,
    flag: &str,
    env: &str,
    image_default: &str,
) -> String {
    if let Some(v) = cli_flag(r, flag) {
        return v;
    }
    if entrypoint_reads_env(version)
        && let Some(v) = env_value(r, env)
    {
        return v;
    }
    image_default.to_string()
}

/// Random Secret values and config checksums replaced, so two renders can be compared and
/// snapshots stay stable.
pub fn redacted(r: &Rendered) -> Vec<serde_json::Value> {
    r.documents
        .iter()
        .map(|d| {
            let mut d = d.clone();
            if d["kind"] == "Secret" {
                for field in ["data", "stringData"] {
                    if let Some(m) = d[field].as_object_mut() {
                        for v in m.values_mut() {
                            *v = serde_json::Value::String("<redacted>".into());
                        }
                    }
                }
            }
            for meta in [
                "/metadata/annotations",
                "/spec/template/metadata/annotations",
            ] {
                if let Some(m) = d.pointer_mut(meta).and_then(|a| a.as_object_mut()) {
                    for (k, v) in m.iter_mut() {
                        if k.starts_with("checksum/") {
                            *v = serde_json::Value::String("<checksum>".into());
                        }
                    }
                }
            }
            d
        })
        .collect()
}

/// A test run once per version of the matrix (rstest cases named after the version).
#[macro_export]
macro_rules! each_version {
    ($(#[$attr:meta])* fn $name:ident($version:ident) $body:block) => {
        $(#[$attr])*
        #[rstest::rstest]
        fn $name(
            #[values(
                "0.4.3", "0.4.6", "0.4.7", "0.4.8", "0.4.14", "0.4.15", "0.4.24", "0.5.0", "0.5.15", "0.5.16", "0.5.23", "0.6.3",
                "1.0.0", "1.0.10", "1.0.11", "1.0.21", "1.1.1", "1.2.2", "1.3.7", "1.4.1", "1.5.0", "1.5.9"
            )]
            $version: &str,
        ) $body
    };
}
