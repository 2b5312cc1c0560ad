//! The version gates of the spec model, held against an all-releases run.
//!
//! A gate is a floor the model (and the chart) switch behaviour at. Which cells of the run
//! show that behaviour, and what each side of the floor must show there, is declared here;
//! the floors themselves are the model's constants, and the outcomes are the run's. A gate
//! holds when every release of the run on its range shows what its side must show, and the
//! releases right below and at the floor were both run. Any release that shows something
//! else is a mismatch naming the gate and the release, and fails the run.

use render::ChromaVersion;
use render::spec::CORS_WILDCARD_FIXED;

use crate::checks::CheckName;
use crate::releases::compat::{CompatReport, Status};

/// One floor and how a run shows it.
#[derive(Debug, Clone)]
pub struct Gate {
    pub name: &'static str,
    /// The first release of the new behaviour (a spec-model constant).
    pub floor: ChromaVersion,
    /// The gate concerns releases from here (inclusive)…
    pub from: Option<ChromaVersion>,
    /// …and below here (exclusive): e.g. auth gates end with the Python server.
    pub until: Option<ChromaVersion>,
    /// (deployment of fixtures/live.yaml, check) pairs that show the behaviour.
    pub cells: &'static [(&'static str, CheckName)],
    /// What those cells may show below the floor / from the floor on.
    pub below: &'static [Status],
    pub at: &'static [Status],
    /// Where the project keeps its account of it.
    pub cite: &'static str,
}

const PASS: &[Status] = &[Status::Pass];
const SKIP: &[Status] = &[Status::Skip];
const REFUSED: &[Status] = &[Status::Refused];

/// The gates of the spec model (crates/chroma-api/src/version.rs, crates/render/src/spec).
pub fn gates() -> Vec<Gate> {
    use chroma_api::version::*;
    let rust = Some(RUST_SERVER_FLOOR);
    vec![
        Gate {
            name: "basic auth (htpasswd)",
            floor: BASIC_AUTH_FLOOR,
            from: None,
            until: rust.clone(),
            cells: &[("basic-custom-port", crate::releases::check::AUTH)],
            below: PASS,
            at: PASS,
            cite: "docs/chroma-eras.md#auth",
        },
        Gate {
            name: "token auth",
            floor: TOKEN_AUTH_FLOOR,
            from: None,
            until: rust.clone(),
            cells: &[
                ("reset-cors-token", crate::releases::check::AUTH),
                ("locked-xtoken-ephemeral", crate::releases::check::AUTH),
                ("custom-ids", crate::releases::check::AUTH),
            ],
            below: PASS,
            at: PASS,
            cite: "docs/chroma-eras.md#auth",
        },
        Gate {
            name: "OpenTelemetry (CHROMA_OTEL_*)",
            floor: OTEL_SETTINGS_FLOOR,
            from: None,
            until: None,
            cells: &[("telemetry", crate::releases::check::TELEMETRY)],
            below: SKIP,
            at: PASS,
            cite: "docs/chroma-eras.md#telemetry",
        },
        Gate {
            name: "entrypoint reads CHROMA_HOST_PORT / CHROMA_LOG_CONFIG",
            floor: ENTRYPOINT_ENV_FLOOR,
            from: None,
            until: rust.clone(),
            cells: &[
                ("basic-custom-port", crate::releases::check::API_SURFACE),
                ("basic-custom-port", crate::releases::check::PERSISTENCE),
            ],
            below: PASS,
            at: PASS,
            cite: "docs/chroma-eras.md#images-and-entrypoints",
        },
        Gate {
            name: "CHROMA_SERVER_AUTH_* renamed CHROMA_SERVER_AUTHN_*",
            floor: AUTHN_SETTINGS_FLOOR,
            from: Some(TOKEN_AUTH_FLOOR),
            until: rust.clone(),
            cells: &[
                ("reset-cors-token", crate::releases::check::AUTH),
                ("basic-custom-port", crate::releases::check::AUTH),
            ],
            below: PASS,
            at: PASS,
            cite: "docs/chroma-eras.md#auth",
        },
        Gate {
            name: "token header given by name, not enum member",
            floor: TOKEN_HEADER_NAME_FLOOR,
            from: Some(TOKEN_AUTH_FLOOR),
            until: rust.clone(),
            cells: &[
                ("locked-xtoken-ephemeral", crate::releases::check::AUTH),
                ("reset-cors-token", crate::releases::check::AUTH),
            ],
            below: PASS,
            at: PASS,
            cite: "docs/chroma-eras.md#auth",
        },
        Gate {
            name: "API prefix /api/v2",
            floor: API_V2_FLOOR,
            from: None,
            until: None,
            cells: &[
                ("reset-cors-token", crate::releases::check::API_SURFACE),
                (
                    "locked-xtoken-ephemeral",
                    crate::releases::check::API_SURFACE,
                ),
            ],
            below: PASS,
            at: PASS,
            cite: "docs/chroma-eras.md#api-surface",
        },
        Gate {
            name: "Rust server: config file keys instead of env",
            floor: RUST_SERVER_FLOOR,
            from: None,
            until: None,
            cells: &[
                ("reset-cors-token", crate::releases::check::RESET),
                ("locked-xtoken-ephemeral", crate::releases::check::RESET),
                ("reset-cors-token", crate::releases::check::CORS),
                ("basic-custom-port", crate::releases::check::API_SURFACE),
            ],
            below: PASS,
            at: PASS,
            cite: "docs/chroma-eras.md#settings-per-era",
        },
        Gate {
            name: "payload limit (max_payload_size_bytes)",
            floor: RUST_SERVER_FLOOR,
            from: None,
            until: None,
            cells: &[("reset-cors-token", crate::releases::check::PAYLOAD)],
            below: SKIP,
            at: PASS,
            cite: "docs/chroma-eras.md#settings-per-era",
        },
        Gate {
            name: "CORS wildcard panics the server (the chart refuses it)",
            floor: CORS_WILDCARD_FIXED,
            from: rust.clone(),
            until: None,
            cells: &[
                ("cors-wildcard", crate::releases::check::CORS),
                ("cors-wildcard", crate::releases::check::API_SURFACE),
            ],
            below: REFUSED,
            at: PASS,
            cite: "docs/chroma-eras.md#measured-behaviour",
        },
        Gate {
            name: "open_telemetry.filters",
            floor: OTEL_FILTERS_FLOOR,
            from: rust,
            until: None,
            cells: &[("telemetry-filtered", crate::releases::check::TELEMETRY)],
            below: SKIP,
            at: PASS,
            cite: "docs/chroma-eras.md#telemetry",
        },
    ]
}

/// Floors of `ERA_FLOORS` that no live check can tell apart, and why.
pub const UNOBSERVED_FLOORS: &[(ChromaVersion, &str)] = &[(
    ChromaVersion::new(0, 4, 16),
    "the image script adds `--timeout-keep-alive 30`: idle keep-alive timing, which no check measures",
)];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Both sides shown by live outcomes (PASS, or the chart's refusal).
    Holds,
    /// The floor and above shown; right below it the cells SKIP (nothing to observe there),
    /// for the reason given by the release right below.
    HoldsAbove { below_reason: String },
    /// The run did not include both sides (a cut run, or a deployment filter).
    NotCovered(String),
    /// Releases that show something else than their side of the gate must.
    Mismatch(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct GateResult {
    pub gate: Gate,
    /// The last release below the floor and the floor release, as run.
    pub below: Option<ChromaVersion>,
    pub at: Option<ChromaVersion>,
    pub verdict: Verdict,
}

/// Holds every gate against `report`. A floor that is not among the runnable releases on
/// PyPI the report lists is a mismatch (the model names a release nobody can run).
pub fn check(report: &CompatReport) -> Vec<GateResult> {
    gates()
        .into_iter()
        .map(|g| check_one(g, report, &report.on_pypi))
        .collect()
}

fn in_range(g: &Gate, v: &ChromaVersion) -> bool {
    g.from.as_ref().is_none_or(|f| v >= f) && g.until.as_ref().is_none_or(|u| v < u)
}

fn check_one(gate: Gate, report: &CompatReport, all: &[ChromaVersion]) -> GateResult {
    let mut problems = Vec::new();
    if !all.contains(&gate.floor) {
        problems.push(format!(
            "gate `{}`: its floor {} is not a runnable release on PyPI",
            gate.name, gate.floor
        ));
    }
    // The releases on each side next to the floor, by PyPI's list (not by the run's).
    let below_pypi = all
        .iter()
        .filter(|v| **v < gate.floor && in_range(&gate, v))
        .max()
        .cloned();
    let mut below_reason = None;
    let mut seen = (false, false);
    for r in report
        .releases
        .iter()
        .filter(|r| in_range(&gate, &r.version))
    {
        let above = r.version >= gate.floor;
        let allowed = if above { gate.at } else { gate.below };
        for (dep, check) in gate.cells {
            let Some(c) = r
                .cells
                .iter()
                .find(|c| c.deployment == *dep && c.check == *check)
            else {
                continue;
            };
            if Some(&r.version) == below_pypi.as_ref() {
                seen.0 = true;
            }
            if r.version == gate.floor {
                seen.1 = true;
            }
            if !allowed.contains(&c.status) {
                let side = if above {
                    format!("at or above its floor {}", gate.floor)
                } else {
                    format!("below its floor {}", gate.floor)
                };
                let want: Vec<&str> = allowed.iter().map(|s| s.label()).collect();
                let why = if c.reason.is_empty() {
                    String::new()
                } else {
                    format!(": {}", c.reason.lines().next().unwrap_or_default())
                };
                problems.push(format!("gate `{}` does not match release {}: {check} on {dep} is {} {side}, where it must be {}{why}", gate.name, r.version, c.status.label(), want.join(" or ")));
            } else if Some(&r.version) == below_pypi.as_ref()
                && c.status == Status::Skip
                && below_reason.is_none()
            {
                below_reason = Some(c.reason.clone());
            }
        }
    }
    let verdict = if !problems.is_empty() {
        Verdict::Mismatch(problems)
    } else if !(seen.0 && seen.1) {
        let want = [
            below_pypi.as_ref().map(|v| v.to_string()),
            Some(gate.floor.to_string()),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" and ");
        Verdict::NotCovered(format!(
            "needs {want} in the run with {}",
            gate.cells
                .iter()
                .map(|(d, c)| format!("{c} on {d}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    } else {
        match below_reason {
            Some(r) => Verdict::HoldsAbove { below_reason: r },
            None => Verdict::Holds,
        }
    };
    GateResult {
        below: below_pypi,
        at: Some(gate.floor.clone()),
        gate,
        verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::releases::compat::{Cell, CompatReport, ReleaseResult};
    use render::spec::ERA_FLOORS;

    fn v(s: &str) -> ChromaVersion {
        s.parse().unwrap()
    }

    /// A release and its (deployment, check, status) cells.
    type Row<'a> = (&'a str, Vec<(&'a str, CheckName, Status)>);

    fn report(releases: Vec<Row>) -> CompatReport {
        CompatReport {
            date: "2026-12-04".into(),
            chart_version: "1.1.0".into(),
            key: None,
            backend: "process".into(),
            helm_version: "v4".into(),
            on_pypi: Vec::new(),
            left_out: vec![],
            jobs: 2,
            wall_seconds: 1.0,
            parts: 1,
            releases: releases
                .into_iter()
                .map(|(ver, cells)| ReleaseResult {
                    version: v(ver),
                    date: String::new(),
                    seconds: 1.0,
                    prepare_seconds: 0.0,
                    cells: cells
                        .into_iter()
                        .map(|(d, check, status)| Cell {
                            deployment: d.into(),
                            check,
                            status,
                            reason: "why".into(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    fn verdict(name: &str, r: &CompatReport, all: &[&str]) -> Verdict {
        let mut r = r.clone();
        r.on_pypi = all.iter().map(|s| v(s)).collect();
        check(&r)
            .into_iter()
            .find(|g| g.gate.name == name)
            .unwrap()
            .verdict
    }

    #[test]
    fn a_gate_holds_when_both_neighbours_show_their_side() {
        let r = report(vec![
            (
                "1.0.10",
                vec![(
                    "cors-wildcard",
                    crate::releases::check::CORS,
                    Status::Refused,
                )],
            ),
            (
                "1.0.11",
                vec![("cors-wildcard", crate::releases::check::CORS, Status::Pass)],
            ),
        ]);
        assert_eq!(
            verdict(
                "CORS wildcard panics the server (the chart refuses it)",
                &r,
                &["1.0.10", "1.0.11"]
            ),
            Verdict::Holds
        );
    }

    #[test]
    fn a_release_showing_the_other_side_is_a_mismatch_naming_gate_and_release() {
        // 1.0.9 accepted the wildcard: the chart's refusal would be too strict there.
        let r = report(vec![
            (
                "1.0.9",
                vec![("cors-wildcard", crate::releases::check::CORS, Status::Pass)],
            ),
            (
                "1.0.10",
                vec![(
                    "cors-wildcard",
                    crate::releases::check::CORS,
                    Status::Refused,
                )],
            ),
            (
                "1.0.11",
                vec![("cors-wildcard", crate::releases::check::CORS, Status::Pass)],
            ),
        ]);
        let Verdict::Mismatch(p) = verdict(
            "CORS wildcard panics the server (the chart refuses it)",
            &r,
            &["1.0.9", "1.0.10", "1.0.11"],
        ) else {
            panic!()
        };
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("`CORS wildcard panics the server (the chart refuses it)` does not match release 1.0.9") && p[0].contains("PASS below its floor 1.0.11"), "{p:?}");
    }

    #[test]
    fn a_failure_at_the_floor_is_a_mismatch_and_a_skip_below_is_reported_not_proven() {
        let r = report(vec![
            (
                "0.4.14",
                vec![("telemetry", crate::releases::check::TELEMETRY, Status::Skip)],
            ),
            (
                "0.4.15",
                vec![("telemetry", crate::releases::check::TELEMETRY, Status::Fail)],
            ),
        ]);
        let Verdict::Mismatch(p) =
            verdict("OpenTelemetry (CHROMA_OTEL_*)", &r, &["0.4.14", "0.4.15"])
        else {
            panic!()
        };
        assert!(
            p[0].contains("release 0.4.15")
                && p[0].contains("FAIL at or above its floor 0.4.15, where it must be PASS: why"),
            "{p:?}"
        );
        let r = report(vec![
            (
                "0.4.14",
                vec![("telemetry", crate::releases::check::TELEMETRY, Status::Skip)],
            ),
            (
                "0.4.15",
                vec![("telemetry", crate::releases::check::TELEMETRY, Status::Pass)],
            ),
        ]);
        assert_eq!(
            verdict("OpenTelemetry (CHROMA_OTEL_*)", &r, &["0.4.14", "0.4.15"]),
            Verdict::HoldsAbove {
                below_reason: "why".into()
            }
        );
    }

    #[test]
    fn a_cut_without_both_neighbours_is_not_covered_and_a_floor_pypi_lacks_is_a_mismatch() {
        let r = report(vec![(
            "0.5.16",
            vec![(
                "reset-cors-token",
                crate::releases::check::API_SURFACE,
                Status::Pass,
            )],
        )]);
        assert!(
            matches!(verdict("API prefix /api/v2", &r, &["0.5.15", "0.5.16"]), Verdict::NotCovered(w) if w.contains("0.5.15 and 0.5.16"))
        );
        let Verdict::Mismatch(p) = verdict("API prefix /api/v2", &r, &["0.5.15", "0.5.17"]) else {
            panic!()
        };
        assert!(
            p[0].contains("floor 0.5.16 is not a runnable release"),
            "{p:?}"
        );
    }

    #[test]
    fn every_era_floor_of_the_model_has_a_gate_or_says_why_not() {
        let floors: Vec<ChromaVersion> = gates().into_iter().map(|g| g.floor).collect();
        for f in ERA_FLOORS {
            assert!(
                floors.contains(&f) || UNOBSERVED_FLOORS.iter().any(|(u, _)| *u == f),
                "era floor {f} has no gate and no reason"
            );
        }
    }
}
