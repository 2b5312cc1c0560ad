//! Where a Python-era Chroma server spends its time while chromadb-backup dumps it: py-spy's
//! collapsed stacks of the server, sorted into a few named parts, printed as a table and drawn
//! as one bar per era (`cargo xtask bench backup --profile DIR`).
//!
//! The parts are what decides whether a client could read faster: time in the server's answer
//! encoding is spent whatever the client asks, time in reading the collection is the part the
//! in-process ceiling also pays.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// One named part of the server's time, matched by a frame of the stack.
struct Part {
    name: &'static str,
    /// A stack belongs to the first part one of whose (function, file fragment) pairs names one
    /// of its frames; an empty function or file fragment matches any.
    frames: &'static [(&'static str, &'static str)],
}

/// The part that no client can avoid: FastAPI walking the answer before orjson sees it.
pub const ENCODER: &str = "FastAPI jsonable_encoder (the answer, one Python object at a time)";
const REST: &str = "the rest (HTTP, routing, telemetry, threads)";

/// In priority order: a stack inside `jsonable_encoder` is encoding even when it was called
/// from somewhere else listed below.
const PARTS: &[Part] = &[
    Part {
        name: ENCODER,
        frames: &[("jsonable_encoder", "fastapi/encoders.py")],
    },
    Part {
        name: "rendering the answer as JSON text (json.dumps on 0.4, orjson on 0.5+)",
        frames: &[("render", "responses.py"), ("dumps", "orjson")],
    },
    Part {
        name: "reading the collection (SQLite, HNSW)",
        frames: &[
            ("_get", "chromadb/api/segment.py"),
            ("", "chromadb/segment/"),
            ("", "sqlite3"),
            ("", "hnswlib"),
        ],
    },
    Part {
        name: "request parsing and validation",
        frames: &[
            ("validate_model", ""),
            ("loads", "orjson"),
            ("body", "starlette/requests.py"),
        ],
    },
];

/// Samples per part, in PARTS order then the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct Shares {
    pub samples: Vec<(String, u64)>,
    pub total: u64,
}

impl Shares {
    pub fn fraction(&self, part: &str) -> f64 {
        let n = self
            .samples
            .iter()
            .find(|(p, _)| p == part)
            .map_or(0, |(_, n)| *n);
        n as f64 / self.total.max(1) as f64
    }
}

fn frame_matches(frame: &str, (func, file): (&str, &str)) -> bool {
    // A frame reads `function (path/to/file.py:line)`, a method's name qualified by its class
    // (`JSONResponse.render`).
    let (f, loc) = frame.split_once(" (").unwrap_or((frame, ""));
    let name = f.rsplit('.').next().unwrap_or(f);
    (func.is_empty() || name == func) && (file.is_empty() || loc.contains(file))
}

/// Sorts py-spy's `--format raw` output (one `frame;frame;… count` line per distinct stack,
/// outermost frame first) into the parts.
pub fn classify(raw: &str) -> Result<Shares> {
    let mut counts = vec![0u64; PARTS.len() + 1];
    for (i, line) in raw
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let (stack, n) = line.rsplit_once(' ').with_context(|| {
            format!(
                "py-spy stacks, line {}: `{line}` has no sample count after the stack",
                i + 1
            )
        })?;
        let n: u64 = n.parse().with_context(|| {
            format!(
                "py-spy stacks, line {}: the line ends in `{n}`, not a sample count",
                i + 1
            )
        })?;
        let frames: Vec<&str> = stack.split(';').collect();
        let part = PARTS
            .iter()
            .position(|p| {
                p.frames
                    .iter()
                    .any(|&m| frames.iter().any(|f| frame_matches(f, m)))
            })
            .unwrap_or(PARTS.len());
        counts[part] += n;
    }
    let total = counts.iter().sum();
    if total == 0 {
        bail!("py-spy recorded no samples of the server (was it busy while the dump ran?)");
    }
    let names = PARTS.iter().map(|p| p.name).chain([REST]);
    Ok(Shares {
        samples: names.map(String::from).zip(counts).collect(),
        total,
    })
}

/// What py-spy sampled, saved beside its stacks so a later report can redraw the chart.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Sampled {
    pub version: String,
    pub records: usize,
    /// Wall seconds of the profiled dump.
    pub secs: f64,
    /// Samples per second asked of py-spy.
    pub rate: u32,
}

pub fn stacks_name(version: &str, records: usize) -> String {
    format!("server-{version}-{records}.stacks")
}

impl Sampled {
    fn path(dir: &Path, version: &str, records: usize) -> PathBuf {
        dir.join(format!("server-{version}-{records}.json"))
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let p = Self::path(dir, &self.version, self.records);
        std::fs::write(&p, serde_json::to_string(self)? + "\n")
            .with_context(|| format!("writing {}", p.display()))
    }

    /// Its stacks, sorted into the parts.
    pub fn load(&self, dir: &Path) -> Result<Profile> {
        let stacks = dir.join(stacks_name(&self.version, self.records));
        let raw = std::fs::read_to_string(&stacks)
            .with_context(|| format!("reading py-spy's stacks {}", stacks.display()))?;
        let shares = classify(&raw).with_context(|| format!("{}", stacks.display()))?;
        let busy_threads = shares.total as f64 / (self.secs * f64::from(self.rate));
        Ok(Profile {
            version: self.version.clone(),
            records: self.records,
            shares,
            busy_threads,
        })
    }
}

/// Every profile saved in `dir`, by version then size.
pub fn load_all(dir: &Path) -> Result<Vec<Profile>> {
    let mut out = Vec::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("reading --profile {}", dir.display()))?;
    for e in entries {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "json")
            && p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("server-"))
        {
            let text =
                std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            let s: Sampled = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}: not a saved profile (version, records, secs, rate)",
                    p.display()
                )
            })?;
            out.push(s.load(dir)?);
        }
    }
    out.sort_by_key(|a| (a.version.parse::<semver::Version>().ok(), a.records));
    Ok(out)
}

/// What a profile of one era at one size adds to the report.
pub struct Profile {
    pub version: String,
    pub records: usize,
    pub shares: Shares,
    /// Samples over (seconds × rate): how many threads were running Python on average.
    pub busy_threads: f64,
}

pub fn table(profiles: &[Profile]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "where the server's time goes during a chromadb-backup dump (py-spy, share of the samples of every busy thread)"
    );
    let _ = writeln!(
        t,
        "| version | records | samples | busy threads | {} | {REST} |",
        PARTS.iter().map(|p| p.name).collect::<Vec<_>>().join(" | ")
    );
    let _ = writeln!(
        t,
        "|---|---:|---:|---:|{}---:|",
        "---:|".repeat(PARTS.len())
    );
    for p in profiles {
        let cells: Vec<String> = p
            .shares
            .samples
            .iter()
            .map(|(_, n)| format!("{:.0} %", *n as f64 / p.shares.total as f64 * 100.0))
            .collect();
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.2} | {} |",
            p.version,
            p.records,
            p.shares.total,
            p.busy_threads,
            cells.join(" | ")
        );
    }
    t
}

const COLOURS: [&str; 5] = ["#d62728", "#ff7f0e", "#1f77b4", "#2ca02c", "#bbbbbb"];

/// One stacked horizontal bar per profile, 100 % wide, a part per colour.
pub fn svg(profiles: &[Profile]) -> String {
    const W: f64 = 760.0;
    const L: f64 = 130.0;
    const R: f64 = 20.0;
    const BAR: f64 = 26.0;
    const GAP: f64 = 14.0;
    let top = 44.0;
    let legend = top + profiles.len() as f64 * (BAR + GAP) + 10.0;
    let h = legend + (PARTS.len() + 1) as f64 * 18.0 + 10.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="14" text-anchor="middle">Where a Python-era server's time goes while chromadb-backup dumps it (py-spy)</text>"#,
        W / 2.0
    );
    for (i, p) in profiles.iter().enumerate() {
        let y = top + i as f64 * (BAR + GAP);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{} × {}</text>"#,
            L - 8.0,
            y + BAR / 2.0 + 4.0,
            esc(&p.version),
            thousands(p.records)
        );
        let mut x = L;
        for (k, (_, n)) in p.shares.samples.iter().enumerate() {
            let share = *n as f64 / p.shares.total as f64;
            let w = share * (W - L - R);
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{BAR}" fill="{}"/>"#,
                COLOURS[k % COLOURS.len()]
            );
            if w > 34.0 {
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="white">{:.0} %</text>"#,
                    x + w / 2.0,
                    y + BAR / 2.0 + 4.0,
                    share * 100.0
                );
            }
            x += w;
        }
    }
    let names = PARTS.iter().map(|p| p.name).chain([REST]);
    for (k, name) in names.enumerate() {
        let y = legend + k as f64 * 18.0;
        let _ = writeln!(
            s,
            r#"<rect x="{L}" y="{y:.1}" width="12" height="12" fill="{}"/><text x="{}" y="{:.1}">{}</text>"#,
            COLOURS[k % COLOURS.len()],
            L + 18.0,
            y + 10.0,
            esc(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn thousands(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n.is_multiple_of(1_000_000) => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n.is_multiple_of(1_000) => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const READ: &str = "reading the collection (SQLite, HNSW)";
    const RENDER: &str = "rendering the answer as JSON text (json.dumps on 0.4, orjson on 0.5+)";

    #[rstest]
    #[case::encoding_under_the_route_handler(
        "run (uvicorn/server.py:1);app (fastapi/routing.py:2);serialize_response (fastapi/routing.py:3);jsonable_encoder (fastapi/encoders.py:4);jsonable_encoder (fastapi/encoders.py:5) 7",
        ENCODER
    )]
    #[case::encoding_wins_over_a_read_frame_below_it(
        "_get (chromadb/api/segment.py:9);jsonable_encoder (fastapi/encoders.py:4) 7",
        ENCODER
    )]
    #[case::a_segment_read(
        "run (anyio/_backends/_asyncio.py:1);process_get (chromadb/server/fastapi/__init__.py:2);_get (chromadb/api/segment.py:3);get_metadata (chromadb/segment/impl/metadata/sqlite.py:4) 7",
        READ
    )]
    #[case::a_method_qualified_by_its_class(
        "get_request_handler.<locals>.app (fastapi/routing.py:804);JSONResponse.__init__ (starlette/responses.py:197);JSONResponse.render (starlette/responses.py:200);dumps (json/__init__.py:238) 7",
        RENDER
    )]
    #[case::a_segment_read_by_a_method(
        "SegmentAPI._get (chromadb/api/segment.py:600);PersistentLocalHnswSegment.get_vectors (chromadb/segment/impl/vector/local_persistent_hnsw.py:1) 7",
        READ
    )]
    #[case::a_function_named_like_a_part_in_another_file_is_the_rest(
        "jsonable_encoder (myapp/encoders.py:1) 7",
        REST
    )]
    #[case::an_unknown_stack_is_the_rest("select (selectors.py:1) 7", REST)]
    fn a_stack_is_counted_in_its_part(#[case] raw: &str, #[case] part: &str) {
        let s = classify(raw).unwrap();
        assert_eq!(s.total, 7);
        assert_eq!(s.fraction(part), 1.0, "{:?}", s.samples);
    }

    #[test]
    fn shares_add_up_over_several_stacks() {
        let raw = "a (fastapi/encoders.py:1);jsonable_encoder (fastapi/encoders.py:2) 30\n_get (chromadb/api/segment.py:1) 10\n\nselect (selectors.py:1) 60\n";
        let s = classify(raw).unwrap();
        assert_eq!(s.total, 100);
        assert_eq!(
            (s.fraction(ENCODER), s.fraction(READ), s.fraction(REST)),
            (0.3, 0.1, 0.6)
        );
    }

    #[rstest]
    #[case::no_count("a (b.py:1)", "ends in `(b.py:1)`, not a sample count")]
    #[case::count_not_a_number("a (b.py:1) many", "ends in `many`, not a sample count")]
    #[case::no_space_at_all("stack", "has no sample count")]
    #[case::nothing_sampled("", "no samples")]
    fn bad_stacks_are_named_errors(#[case] raw: &str, #[case] says: &str) {
        let e = format!("{:#}", classify(raw).unwrap_err());
        assert!(e.contains(says), "{e}");
    }

    #[test]
    fn a_saved_profile_is_read_back_with_its_busy_threads() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(stacks_name("0.6.3", 10_000)),
            "jsonable_encoder (fastapi/encoders.py:1) 150\nselect (selectors.py:1) 50\n",
        )
        .unwrap();
        Sampled {
            version: "0.6.3".into(),
            records: 10_000,
            secs: 4.0,
            rate: 100,
        }
        .save(dir.path())
        .unwrap();
        Sampled {
            version: "0.4.24".into(),
            records: 10_000,
            secs: 2.0,
            rate: 100,
        }
        .save(dir.path())
        .unwrap();
        std::fs::write(
            dir.path().join(stacks_name("0.4.24", 10_000)),
            "jsonable_encoder (fastapi/encoders.py:1) 100\n",
        )
        .unwrap();
        let all = load_all(dir.path()).unwrap();
        let got: Vec<(&str, f64, f64)> = all
            .iter()
            .map(|p| {
                (
                    p.version.as_str(),
                    p.busy_threads,
                    p.shares.fraction(ENCODER),
                )
            })
            .collect();
        // 200 samples in 4 s at 100 a second: half a thread busy on average.
        assert_eq!(
            got,
            [("0.4.24", 0.5, 1.0), ("0.6.3", 0.5, 0.75)],
            "sorted by version"
        );
    }

    #[test]
    fn a_saved_profile_without_its_stacks_names_the_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        Sampled {
            version: "0.6.3".into(),
            records: 10,
            secs: 1.0,
            rate: 100,
        }
        .save(dir.path())
        .unwrap();
        let e = format!("{:#}", load_all(dir.path()).err().expect("no stacks"));
        assert!(e.contains("server-0.6.3-10.stacks"), "{e}");
    }

    #[test]
    fn the_chart_has_a_bar_per_profile_and_a_legend_entry_per_part() {
        let shares =
            classify("jsonable_encoder (fastapi/encoders.py:1) 9\nselect (selectors.py:1) 1")
                .unwrap();
        let p = |v: &str| Profile {
            version: v.into(),
            records: 10_000,
            shares: shares.clone(),
            busy_threads: 1.0,
        };
        let svg = svg(&[p("0.4.24"), p("0.6.3")]);
        assert!(
            svg.contains("0.4.24 × 10k") && svg.contains("0.6.3 × 10k"),
            "{svg}"
        );
        assert_eq!(
            svg.matches("90 %").count(),
            2,
            "the encoder's share is labelled on each bar"
        );
        assert!(svg.contains(&esc(ENCODER)) && svg.contains(&esc(REST)));
    }
}
