//! The combination matrix (`cargo xtask e2e --combinations`): a pairwise covering array over
//! the chart's features, generated per Chroma version from the spec model.
//!
//! Each feature is a factor whose levels are values fragments from fixtures/values. Which
//! levels exist on a version is the model's word, not a table per version: a level applies
//! when [`Expected::from_values`] of its fragment shows its effect there (basic auth is a
//! level only where the model gives `Auth::Basic`, metrics only where the model accepts
//! `metrics.enabled`, …). A pair of settings is required when both apply and the model
//! accepts them together with both still in effect; a pair the model refuses is excluded with
//! the model's reason (the runner then demands that helm refuses it too, naming the key).
//! The generator is greedy (AETG-style, no randomness): seed each row with the first
//! uncovered pair, then give every other factor the level that covers most uncovered pairs
//! while the row stays valid.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use render::spec::{self, Auth, OpenBecause, Telemetry, TokenHeader};
use render::{ChromaVersion, Expected};
use serde_yaml::Value;

use crate::checks::CheckName;
use crate::scenario::{Deployment, LivePlan, RuntimeValue, merge};

#[derive(Debug, thiserror::Error)]
pub enum CombinationError {
    #[error("combination level {factor}={level}: values file {path}: {reason}")]
    Fragment {
        factor: &'static str,
        level: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "on Chroma {version} no valid deployment holds {a} together with {b}, though the model accepts the pair alone"
    )]
    Stuck {
        version: ChromaVersion,
        a: String,
        b: String,
    },
}

/// What a level needs besides its values files.
#[derive(Debug, Clone, Copy)]
enum Extra {
    None,
    /// The user's auth Secret `chromadb-auth-custom` (a generated token).
    AuthSecret,
    /// The user's `kubernetes.io/tls` Secret `chromadb-tls` (the harness's throwaway CA).
    TlsSecret,
    /// The harness's OTLP receiver as `chromadb.telemetry.endpoint`.
    OtlpReceiver,
}

/// One setting of a feature.
pub struct Level {
    pub name: &'static str,
    /// fixtures/values files, layered in order; empty for the chart's defaults.
    files: &'static [&'static str],
    extra: Extra,
    /// Whether the model shows this level in effect for these values on this version.
    in_effect: fn(&Expected, &Value) -> bool,
}

/// One feature and its settings; the first level is the chart's default.
pub struct Factor {
    pub name: &'static str,
    pub levels: &'static [Level],
}

fn auth_is(e: &Expected, want: fn(&Auth) -> bool) -> bool {
    want(&e.auth)
}

/// Why S3 and cert-manager are no levels here: see [`NOT_LEVELS`].
pub const FACTORS: &[Factor] = &[
    Factor {
        name: "auth",
        levels: &[
            Level {
                name: "none",
                files: &["auth-disabled.yaml"],
                extra: Extra::None,
                in_effect: |e, _| {
                    auth_is(e, |a| {
                        matches!(
                            a,
                            Auth::Open {
                                why: OpenBecause::Disabled
                            }
                        )
                    })
                },
            },
            Level {
                name: "token-authorization",
                files: &["token-authorization.yaml"],
                extra: Extra::None,
                in_effect: |e, _| {
                    auth_is(e, |a| {
                        matches!(
                            a,
                            Auth::Token {
                                header: TokenHeader::Authorization,
                                existing_secret: None
                            }
                        )
                    })
                },
            },
            Level {
                name: "token-x-chroma-token",
                files: &["token-x-chroma-token.yaml"],
                extra: Extra::None,
                in_effect: |e, _| {
                    auth_is(e, |a| {
                        matches!(
                            a,
                            Auth::Token {
                                header: TokenHeader::XChromaToken,
                                existing_secret: None
                            }
                        )
                    })
                },
            },
            Level {
                name: "basic",
                files: &["basic-auth.yaml"],
                extra: Extra::None,
                in_effect: |e, _| {
                    auth_is(e, |a| {
                        matches!(
                            a,
                            Auth::Basic {
                                existing_secret: None
                            }
                        )
                    })
                },
            },
            Level {
                name: "existing-secret",
                files: &["existing-secret-token.yaml"],
                extra: Extra::AuthSecret,
                in_effect: |e, _| {
                    auth_is(e, |a| {
                        matches!(
                            a,
                            Auth::Token {
                                existing_secret: Some(_),
                                ..
                            }
                        )
                    })
                },
            },
        ],
    },
    Factor {
        name: "tls",
        levels: &[
            Level {
                name: "off",
                files: &[],
                extra: Extra::None,
                in_effect: |e, _| e.tls.is_none(),
            },
            Level {
                name: "secret",
                files: &["tls-existing-secret.yaml"],
                extra: Extra::TlsSecret,
                in_effect: |e, _| e.tls.is_some(),
            },
        ],
    },
    Factor {
        name: "backup",
        levels: &[
            Level {
                name: "off",
                files: &[],
                extra: Extra::None,
                in_effect: |e, _| e.backup.is_none(),
            },
            Level {
                name: "pvc",
                files: &["backup-pvc.yaml"],
                extra: Extra::None,
                in_effect: |e, _| e.backup.is_some(),
            },
        ],
    },
    Factor {
        name: "network-policy",
        levels: &[
            Level {
                name: "off",
                files: &[],
                extra: Extra::None,
                in_effect: |_, v| spec::network_policy_peers(v).is_ok_and(|p| p.is_none()),
            },
            Level {
                name: "on",
                files: &["network-policy.yaml"],
                extra: Extra::None,
                in_effect: |_, v| spec::network_policy_peers(v).is_ok_and(|p| p.is_some()),
            },
        ],
    },
    Factor {
        name: "telemetry",
        levels: &[
            Level {
                name: "off",
                files: &[],
                extra: Extra::None,
                in_effect: |e, _| e.telemetry == Telemetry::Off,
            },
            Level {
                name: "otlp",
                files: &["telemetry.yaml"],
                extra: Extra::OtlpReceiver,
                in_effect: |e, _| {
                    e.metrics.is_none() && matches!(e.telemetry, Telemetry::Exported { .. })
                },
            },
            Level {
                name: "metrics",
                files: &["metrics.yaml"],
                extra: Extra::None,
                in_effect: |e, _| e.metrics.is_some(),
            },
        ],
    },
    Factor {
        name: "ingress",
        levels: &[
            Level {
                name: "off",
                files: &[],
                extra: Extra::None,
                in_effect: |_, v| !spec::parse_bool(v, "ingress.enabled", false).unwrap_or(true),
            },
            Level {
                name: "on",
                files: &["ingress.yaml"],
                extra: Extra::None,
                in_effect: |_, v| spec::parse_bool(v, "ingress.enabled", false).unwrap_or(false),
            },
        ],
    },
    Factor {
        name: "pdb",
        levels: &[
            Level {
                name: "off",
                files: &[],
                extra: Extra::None,
                in_effect: |_, v| spec::disruption_budget(v).is_ok_and(|b| b.is_none()),
            },
            Level {
                name: "on",
                files: &["pdb.yaml"],
                extra: Extra::None,
                in_effect: |_, v| spec::disruption_budget(v).is_ok_and(|b| b.is_some()),
            },
        ],
    },
    Factor {
        name: "port",
        levels: &[
            Level {
                name: "default",
                files: &[],
                extra: Extra::None,
                in_effect: |e, _| e.port == 8000,
            },
            Level {
                name: "custom",
                files: &["custom-port-dir.yaml"],
                extra: Extra::None,
                in_effect: |e, _| e.port != 8000,
            },
        ],
    },
    Factor {
        name: "persistence",
        levels: &[
            Level {
                name: "on",
                files: &[],
                extra: Extra::None,
                in_effect: |e, _| e.volume_mount.is_some(),
            },
            Level {
                name: "off",
                files: &["non-persistent.yaml"],
                extra: Extra::None,
                in_effect: |e, _| e.volume_mount.is_none(),
            },
        ],
    },
    Factor {
        name: "names",
        levels: &[
            Level {
                name: "short",
                files: &[],
                extra: Extra::None,
                in_effect: |_, v| long_names(v) == Some(false),
            },
            Level {
                name: "long",
                files: &["long-names.yaml"],
                extra: Extra::None,
                in_effect: |_, v| long_names(v) == Some(true),
            },
        ],
    },
];

/// Features of the issue that are no levels of the array, and why.
pub const NOT_LEVELS: &[(&str, &str)] = &[
    (
        "tls=cert-manager",
        "no cert-manager runs here: the process backend has no controllers, and the local cluster runs no pods yet",
    ),
    (
        "backup=s3",
        "no S3 server is reachable from a deployment: the process backend has no stand-in Service for one (the backup crate's moto runs beside its own tests only)",
    ),
];

/// Whether object names reach Kubernetes' limits (the chart must cut them): the fullname of
/// the longest release helm allows passes the StatefulSet's 52.
fn long_names(values: &Value) -> Option<bool> {
    spec::fullname(values, "r").ok().map(|n| n.len() > 52)
}

/// One factor's level: (factor index, level index) into [`FACTORS`].
pub type Setting = (usize, usize);

pub fn setting_name((f, l): Setting) -> String {
    format!("{}={}", FACTORS[f].name, FACTORS[f].levels[l].name)
}

/// A pair the model refuses on a version, with its reason.
#[derive(Debug, Clone)]
pub struct Excluded {
    pub pair: (Setting, Setting),
    pub reason: String,
}

/// The covering array for one version.
#[derive(Debug, Clone)]
pub struct Array {
    pub version: ChromaVersion,
    /// The factors that have two or more levels in effect on this version.
    pub active: Vec<usize>,
    /// For each factor (by index into FACTORS) the levels in effect on this version.
    pub levels: BTreeMap<usize, Vec<usize>>,
    /// Each row is one deployment: a level for every active factor, in `active` order.
    pub rows: Vec<Vec<Setting>>,
    pub excluded: Vec<Excluded>,
}

/// Values fragments loaded once.
pub struct Fragments {
    dir: PathBuf,
    docs: BTreeMap<&'static str, Value>,
}

impl Fragments {
    pub fn load(values_dir: &Path) -> Result<Fragments, CombinationError> {
        let mut docs = BTreeMap::new();
        for f in FACTORS {
            for l in f.levels {
                for file in l.files {
                    let path = values_dir.join(file);
                    let bad = |reason: String| CombinationError::Fragment {
                        factor: f.name,
                        level: l.name,
                        path: path.clone(),
                        reason,
                    };
                    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
                    let doc: Value = serde_yaml::from_str(&text).map_err(|e| bad(e.to_string()))?;
                    docs.insert(*file, doc);
                }
            }
        }
        Ok(Fragments {
            dir: values_dir.to_path_buf(),
            docs,
        })
    }

    /// The user values of these settings together.
    pub fn values(&self, settings: &[Setting]) -> Value {
        let mut v = Value::Mapping(Default::default());
        for &(f, l) in settings {
            for file in FACTORS[f].levels[l].files {
                if let Some(doc) = self.docs.get(file).filter(|d| !d.is_null()) {
                    merge(&mut v, doc.clone());
                }
            }
        }
        v
    }

    /// `Ok` when the model accepts these settings together on `version` and each is in effect;
    /// `Err` with why not.
    pub fn check(&self, settings: &[Setting], version: &ChromaVersion) -> Result<(), String> {
        let values = self.values(settings);
        let e = Expected::from_values(&values, version)
            .map_err(|e| format!("the model refuses it: {e}"))?;
        for &s in settings {
            if !(FACTORS[s.0].levels[s.1].in_effect)(&e, &values) {
                return Err(format!("{} is not in effect there", setting_name(s)));
            }
        }
        Ok(())
    }

    /// The pairwise array for `version`.
    pub fn array(&self, version: &ChromaVersion) -> Result<Array, CombinationError> {
        let mut levels = BTreeMap::new();
        for (fi, f) in FACTORS.iter().enumerate() {
            let on: Vec<usize> = (0..f.levels.len())
                .filter(|&li| self.check(&[(fi, li)], version).is_ok())
                .collect();
            levels.insert(fi, on);
        }
        // A factor with one level in effect is not varied (e.g. auth on the Rust server).
        let active: Vec<usize> = levels
            .iter()
            .filter(|(_, l)| l.len() > 1)
            .map(|(f, _)| *f)
            .collect();
        let mut uncovered: BTreeSet<(Setting, Setting)> = BTreeSet::new();
        let mut excluded = Vec::new();
        for (i, &fa) in active.iter().enumerate() {
            for &fb in &active[i + 1..] {
                for &la in &levels[&fa] {
                    for &lb in &levels[&fb] {
                        let pair = ((fa, la), (fb, lb));
                        match self.check(&[pair.0, pair.1], version) {
                            Ok(()) => {
                                uncovered.insert(pair);
                            }
                            Err(reason) => excluded.push(Excluded { pair, reason }),
                        }
                    }
                }
            }
        }
        let mut rows: Vec<Vec<Setting>> = Vec::new();
        while !uncovered.is_empty() {
            // Several seeds per row, the row covering most wins (ties: the earlier seed).
            let mut best: Option<(Vec<Setting>, usize)> = None;
            for &seed in uncovered.iter().take(SEEDS_PER_ROW) {
                let row = self.complete(seed, &active, &levels, &uncovered, version)?;
                let gain = covered_by(&row, &uncovered);
                if best.as_ref().is_none_or(|(_, g)| gain > *g) {
                    best = Some((row, gain));
                }
            }
            let Some((row, _)) = best else { break };
            for (i, &a) in row.iter().enumerate() {
                for &b in &row[i + 1..] {
                    uncovered.remove(&ordered(a, b));
                }
            }
            rows.push(row);
        }
        Ok(Array {
            version: version.clone(),
            active,
            levels,
            rows,
            excluded,
        })
    }

    /// A row holding `seed`: every other active factor, most levels first, gets the level that
    /// covers most uncovered pairs with what the row holds so far, keeping the row valid.
    fn complete(
        &self,
        seed: (Setting, Setting),
        active: &[usize],
        levels: &BTreeMap<usize, Vec<usize>>,
        uncovered: &BTreeSet<(Setting, Setting)>,
        version: &ChromaVersion,
    ) -> Result<Vec<Setting>, CombinationError> {
        let mut row: Vec<Setting> = vec![seed.0, seed.1];
        let mut order: Vec<usize> = active
            .iter()
            .copied()
            .filter(|&f| f != seed.0.0 && f != seed.1.0)
            .collect();
        order.sort_by_key(|f| std::cmp::Reverse(levels[f].len()));
        for f in order {
            let mut best: Option<(usize, usize)> = None;
            for &l in &levels[&f] {
                let mut candidate = row.clone();
                candidate.push((f, l));
                if self.check(&candidate, version).is_err() {
                    continue;
                }
                let gain = row
                    .iter()
                    .filter(|&&s| uncovered.contains(&ordered(s, (f, l))))
                    .count();
                if best.is_none_or(|(_, g)| gain > g) {
                    best = Some((l, gain));
                }
            }
            let Some((l, _)) = best else {
                return Err(CombinationError::Stuck {
                    version: version.clone(),
                    a: setting_name(seed.0),
                    b: setting_name(seed.1),
                });
            };
            row.push((f, l));
        }
        row.sort();
        Ok(row)
    }

    /// The array's rows as live deployments (`combo-01`, … by row). `limit` keeps that many
    /// rows, those that turn the most features away from the chart's defaults (each level's
    /// first), so a short run still sees the features meet.
    pub fn plan(&self, array: &Array, limit: Option<usize>) -> LivePlan {
        let mut picked: Vec<usize> = (0..array.rows.len()).collect();
        if let Some(n) = limit {
            let on = |i: &usize| array.rows[*i].iter().filter(|(_, l)| *l != 0).count();
            picked.sort_by_key(|i| (std::cmp::Reverse(on(i)), *i));
            picked.truncate(n);
            picked.sort_unstable();
        }
        let deployments = picked
            .into_iter()
            .map(|i| (i, &array.rows[i]))
            .map(|(i, row)| {
                let mut files = Vec::new();
                let mut secrets = BTreeMap::new();
                let mut runtime = BTreeMap::new();
                for &(f, l) in row {
                    let level = &FACTORS[f].levels[l];
                    files.extend(level.files.iter().map(|file| self.dir.join(file)));
                    match level.extra {
                        Extra::None => {}
                        Extra::AuthSecret => {
                            secrets.insert(
                                "chromadb-auth-custom".to_string(),
                                BTreeMap::from([("token".to_string(), "<random>".to_string())]),
                            );
                        }
                        Extra::TlsSecret => {
                            let data = [
                                ("tls.crt", "<tls-cert>"),
                                ("tls.key", "<tls-key>"),
                                ("ca.crt", "<tls-ca>"),
                            ];
                            secrets.insert(
                                "chromadb-tls".to_string(),
                                data.iter()
                                    .map(|(k, v)| (k.to_string(), v.to_string()))
                                    .collect(),
                            );
                        }
                        Extra::OtlpReceiver => {
                            runtime.insert(
                                "chromadb.telemetry.endpoint".to_string(),
                                RuntimeValue::OtlpReceiver,
                            );
                        }
                    }
                }
                let purpose = row
                    .iter()
                    .map(|&s| setting_name(s))
                    .collect::<Vec<_>>()
                    .join(" ");
                Deployment::from_parts(
                    format!("combo-{:02}", i + 1),
                    purpose,
                    files,
                    self.values(row),
                    CheckName::all().filter(|c| !c.opt_in()).collect(),
                    secrets,
                    runtime,
                )
            })
            .collect();
        LivePlan { deployments }
    }
}

/// How many seeds a row is tried from: more gives smaller arrays, each costs a row's checks.
const SEEDS_PER_ROW: usize = 4;

fn covered_by(row: &[Setting], uncovered: &BTreeSet<(Setting, Setting)>) -> usize {
    row.iter()
        .enumerate()
        .map(|(i, &a)| {
            row[i + 1..]
                .iter()
                .filter(|&&b| uncovered.contains(&ordered(a, b)))
                .count()
        })
        .sum()
}

fn ordered(a: Setting, b: Setting) -> (Setting, Setting) {
    if a < b { (a, b) } else { (b, a) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragments() -> Fragments {
        Fragments::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/values"))
            .expect("fixtures/values")
    }

    /// One version per era of the chart (the oldest release, then each era's floor).
    fn eras() -> Vec<ChromaVersion> {
        let mut v = vec![ChromaVersion::new(0, 4, 3)];
        v.extend(spec::ERA_FLOORS);
        v
    }

    /// Every pair of settings of different factors in effect on the version: covered by a row,
    /// or refused by the model together (and then listed as excluded).
    #[test]
    fn every_valid_pair_is_deployed_together_on_every_era() {
        let fr = fragments();
        let mut checked = 0;
        for version in eras() {
            let array = fr.array(&version).unwrap();
            for row in &array.rows {
                fr.check(row, &version)
                    .unwrap_or_else(|e| panic!("{version}: row {row:?} is not deployable: {e}"));
            }
            for (fa, factor_a) in FACTORS.iter().enumerate() {
                for (fb, factor_b) in FACTORS.iter().enumerate().skip(fa + 1) {
                    for la in 0..factor_a.levels.len() {
                        for lb in 0..factor_b.levels.len() {
                            let (a, b) = ((fa, la), (fb, lb));
                            // Enumerated from the model, independently of the generator's own lists.
                            if fr.check(&[a], &version).is_err()
                                || fr.check(&[b], &version).is_err()
                            {
                                continue;
                            }
                            let in_effect_alone = |f: usize| {
                                (0..FACTORS[f].levels.len())
                                    .filter(|&l| fr.check(&[(f, l)], &version).is_ok())
                                    .count()
                                    > 1
                            };
                            if !in_effect_alone(fa) || !in_effect_alone(fb) {
                                continue;
                            }
                            match fr.check(&[a, b], &version) {
                                Ok(()) => {
                                    assert!(
                                        array.rows.iter().any(|r| r.contains(&a) && r.contains(&b)),
                                        "{version}: {} with {} is in no row",
                                        setting_name(a),
                                        setting_name(b)
                                    );
                                    checked += 1;
                                }
                                Err(_) => assert!(
                                    array.excluded.iter().any(|x| x.pair == (a, b)),
                                    "{version}: refused pair {a:?},{b:?} not listed"
                                ),
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 500, "only {checked} pairs were checked");
    }

    /// The bound: at most 6 rows above the product of the two largest factors' level counts
    /// (the least any pairwise array can have), and never more than 16 deployments per version.
    #[test]
    fn the_array_is_small() {
        let fr = fragments();
        for version in eras() {
            let array = fr.array(&version).unwrap();
            let mut sizes: Vec<usize> =
                array.active.iter().map(|f| array.levels[f].len()).collect();
            sizes.sort_unstable_by(|a, b| b.cmp(a));
            let floor = sizes.first().copied().unwrap_or(1) * sizes.get(1).copied().unwrap_or(1);
            assert!(
                array.rows.len() >= floor,
                "{version}: fewer rows than pairs of the two largest factors"
            );
            assert!(
                array.rows.len() <= floor + 6 && array.rows.len() <= 16,
                "{version}: {} rows for a floor of {floor}",
                array.rows.len()
            );
        }
    }

    #[test]
    fn the_array_is_deterministic() {
        for version in eras() {
            let (a, b) = (
                fragments().array(&version).unwrap(),
                fragments().array(&version).unwrap(),
            );
            assert_eq!(a.rows, b.rows, "{version}");
        }
    }

    #[rstest::rstest]
    #[case::rust_server_has_no_auth_to_vary("1.5.0", "auth", 0)]
    #[case::basic_without_token_on_0_4_7("0.4.7", "auth", 2)]
    #[case::every_auth_on_0_4_8("0.4.8", "auth", 5)]
    #[case::otlp_and_metrics_on_the_rust_server("1.0.0", "telemetry", 3)]
    #[case::no_opentelemetry_before_0_4_15("0.4.8", "telemetry", 0)]
    fn levels_in_effect_come_from_the_model(
        #[case] version: &str,
        #[case] factor: &str,
        #[case] want: usize,
    ) {
        let array = fragments().array(&version.parse().unwrap()).unwrap();
        let f = FACTORS.iter().position(|f| f.name == factor).unwrap();
        let active = if array.active.contains(&f) {
            array.levels[&f].len()
        } else {
            0
        };
        assert_eq!(
            active, want,
            "{factor} on {version}: levels {:?}",
            array.levels[&f]
        );
    }

    #[test]
    fn deployments_carry_their_secrets_and_receiver() {
        let fr = fragments();
        let array = fr.array(&ChromaVersion::new(0, 4, 8)).unwrap();
        let plan = fr.plan(&array, None);
        assert_eq!(plan.deployments.len(), array.rows.len());
        let with = |s: &str| {
            plan.deployments
                .iter()
                .filter(|d| d.purpose.split(' ').any(|p| p == s))
                .collect::<Vec<_>>()
        };
        assert!(
            !with("tls=secret").is_empty()
                && with("tls=secret")
                    .iter()
                    .all(|d| d.secrets().contains_key("chromadb-tls"))
        );
        assert!(
            with("auth=existing-secret")
                .iter()
                .all(|d| d.secrets()["chromadb-auth-custom"]["token"].len() == 32)
        );
        assert!(
            with("telemetry=otlp")
                .iter()
                .all(|d| d.needs(RuntimeValue::OtlpReceiver))
        );
        // The opt-in checks (the faults family) run only where a deployment names them: a row
        // that ran them would fill its claim and kill its server for nothing.
        assert!(
            plan.deployments
                .iter()
                .all(|d| !d.checks.is_empty() && d.checks.iter().all(|c| !c.opt_in())),
            "{:?}",
            plan.deployments[0].checks
        );
        let short = fr.plan(&array, Some(2));
        assert_eq!(short.deployments.len(), 2);
        // The rows kept are those with the most features on, under their full-array names.
        let on = |d: &Deployment| {
            d.purpose
                .split(' ')
                .filter(|p| {
                    !FACTORS
                        .iter()
                        .any(|f| *p == format!("{}={}", f.name, f.levels[0].name))
                })
                .count()
        };
        let most = plan.deployments.iter().map(on).max().unwrap();
        assert_eq!(short.deployments.iter().map(on).max(), Some(most));
        for d in &short.deployments {
            assert!(
                plan.deployments
                    .iter()
                    .any(|p| p.name == d.name && p.purpose == d.purpose),
                "{}",
                d.name
            );
        }
    }
}
