//! Every row of every era's combination array renders with the real helm under the longest
//! release name helm allows, and every pair the model refuses is refused by helm naming both
//! settings' keys. Needs helm: `HELM=$(cargo xtask tools --print helm) cargo test -p e2e --test combinations_render`
//! (the test command sets it).

use std::path::Path;

use e2e::combinations::{Fragments, setting_name};
use render::{ChromaVersion, Expected, Helm, RenderRequest};

/// helm's longest release name (54 characters and more are refused).
const LONGEST_RELEASE: &str = "a-release-name-of-fifty-three-characters-helm-allows1";

#[test]
fn every_row_renders_on_every_era_and_refused_pairs_name_both_keys() {
    let helm = Helm::from_env().unwrap_or_else(|e| {
        panic!("this test needs helm: {e}; export HELM=$(cargo xtask tools --print helm)")
    });
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let fragments = Fragments::load(&root.join("fixtures/values")).unwrap();
    let mut eras = vec![ChromaVersion::new(0, 4, 3)];
    eras.extend(render::spec::ERA_FLOORS);
    let mut rendered = 0;
    for version in eras {
        let array = fragments.array(&version).unwrap();
        for d in fragments.plan(&array, None).deployments {
            Expected::from_values(&d.values, &version).unwrap_or_else(|e| {
                panic!("{version} {}: the model refuses a row: {e}", d.purpose)
            });
            let mut req = RenderRequest::new(root.join("charts/chromadb"))
                .version(version.clone())
                .release(LONGEST_RELEASE);
            for f in &d.values_files {
                req = req.values_file(f);
            }
            req.render(&helm).unwrap_or_else(|e| {
                panic!(
                    "{version} {} ({}): helm refused a row the model accepts: {e}",
                    d.name, d.purpose
                )
            });
            rendered += 1;
        }
        // A pair the model refuses (none among today's levels) must be refused by helm in one
        // message that names a key of each setting.
        for x in &array.excluded {
            let values = fragments.values(&[x.pair.0, x.pair.1]);
            let req = RenderRequest::new(root.join("charts/chromadb"))
                .version(version.clone())
                .values(values);
            let Err(err) = req.render(&helm) else {
                panic!(
                    "{version}: helm rendered {} with {}, which the model refuses: {}",
                    setting_name(x.pair.0),
                    setting_name(x.pair.1),
                    x.reason
                )
            };
            let msg = err.to_string();
            for s in [x.pair.0, x.pair.1] {
                let keys = dotted_keys(&fragments.values(&[s]), "");
                assert!(
                    keys.iter().any(|k| msg.contains(k.as_str())),
                    "{version}: helm's refusal names none of {keys:?} ({}): {msg}",
                    setting_name(s)
                );
            }
        }
    }
    assert!(rendered >= 100, "only {rendered} rows rendered");
}

/// The dotted keys a values document sets (`a.b.c`), leaves and their parents.
fn dotted_keys(v: &serde_yaml::Value, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let serde_yaml::Value::Mapping(m) = v {
        for (k, child) in m {
            let key = format!("{prefix}{}", k.as_str().unwrap_or_default());
            out.extend(dotted_keys(child, &format!("{key}.")));
            out.push(key);
        }
    }
    out
}
