//! An SVG chart of server-side request latency per endpoint, drawn from the request spans
//! the OTLP receiver got in one e2e run (`cargo xtask e2e --check telemetry --latency-plot F`).
//!
//! Plain SVG text: a handful of rects and labels needs no plotting library.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::otlp::ReceivedSpan;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlotError {
    #[error(
        "no request spans to plot (spans with `http.method` and `http.route` attributes); was the telemetry check run and did it pass?"
    )]
    NoRequestSpans,
}

/// One bar: an endpoint on one server.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub endpoint: String,
    pub series: String,
    pub count: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

/// `METHOD route` with the tenant/database prefix cut, for the spans that are HTTP requests.
pub fn endpoint_of(s: &ReceivedSpan) -> Option<String> {
    let method = s.attributes.get("http.method")?;
    let route = s.attributes.get("http.route")?;
    let short = [
        "/tenants/{tenant}/databases/{database_name}",
        "/tenants/{tenant}/databases/{database}",
    ]
    .iter()
    .find_map(|p| {
        route
            .split_once(p)
            .map(|(api, rest)| format!("{api}/…{rest}"))
    })
    .unwrap_or_else(|| route.clone());
    Some(format!("{method} {short}"))
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Bars per endpoint (in endpoint order) and series (in the order given).
pub fn bars(series: &[(String, Vec<ReceivedSpan>)]) -> Vec<Bar> {
    let mut grouped: BTreeMap<String, Vec<(usize, Vec<f64>)>> = BTreeMap::new();
    for (i, (_, spans)) in series.iter().enumerate() {
        for s in spans {
            if let Some(ep) = endpoint_of(s) {
                let rows = grouped.entry(ep).or_default();
                let ms = s.duration().as_secs_f64() * 1000.0;
                match rows.iter_mut().find(|(j, _)| *j == i) {
                    Some((_, v)) => v.push(ms),
                    None => rows.push((i, vec![ms])),
                }
            }
        }
    }
    grouped
        .into_iter()
        .flat_map(|(endpoint, mut rows)| {
            rows.sort_by_key(|(i, _)| *i);
            rows.into_iter().map(move |(i, mut ms)| {
                ms.sort_by(f64::total_cmp);
                Bar {
                    endpoint: endpoint.clone(),
                    series: series[i].0.clone(),
                    count: ms.len(),
                    p50_ms: percentile(&ms, 50.0),
                    p95_ms: percentile(&ms, 95.0),
                }
            })
        })
        .collect()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// 0.x (Python server) and 1.x (Rust server) bars differ in colour; each row names its series.
fn color(series: &str) -> &'static str {
    if series.starts_with("0.") {
        "#f28e2b"
    } else {
        "#4e79a7"
    }
}

/// The chart: per endpoint a header row, then one row per series (bar = p50, tick = p95).
pub fn svg(title: &str, series: &[(String, Vec<ReceivedSpan>)]) -> Result<String, PlotError> {
    let bars = bars(series);
    if bars.is_empty() {
        return Err(PlotError::NoRequestSpans);
    }
    let (label_w, plot_w, row_h, top) = (70.0, 520.0, 15.0, 62.0);
    let max = bars
        .iter()
        .map(|b| b.p95_ms)
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let endpoints = bars
        .iter()
        .map(|b| &b.endpoint)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let rows = bars.len() + endpoints;
    let height = top + row_h * rows as f64 + 30.0;
    let width = label_w + plot_w + 190.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="10">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="10" y="18" font-size="13" font-weight="bold">{}</text>"#,
        esc(title)
    );
    let _ = writeln!(
        out,
        r#"<text x="10" y="34">bar: p50 server-side latency of the request spans (ms, linear); tick: p95; n = spans. Rows: Chroma version.</text>"#
    );
    let _ = writeln!(
        out,
        r##"<rect x="10" y="42" width="10" height="10" fill="#f28e2b"/><text x="24" y="51">Python server (0.x)</text><rect x="140" y="42" width="10" height="10" fill="#4e79a7"/><text x="154" y="51">Rust server (1.x)</text>"##
    );
    let mut y = top;
    let mut last_endpoint = "";
    for b in &bars {
        if b.endpoint != last_endpoint {
            let _ = writeln!(
                out,
                r##"<line x1="10" x2="{}" y1="{y}" y2="{y}" stroke="#ccc"/>"##,
                label_w + plot_w + 180.0
            );
            let _ = writeln!(
                out,
                r#"<text x="10" y="{}" font-weight="bold">{}</text>"#,
                y + 11.0,
                esc(&b.endpoint)
            );
            y += row_h;
            last_endpoint = &b.endpoint;
        }
        let w = (b.p50_ms / max * plot_w).max(1.0);
        let tick = label_w + b.p95_ms / max * plot_w;
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            label_w - 6.0,
            y + 11.0,
            esc(&b.series)
        );
        let _ = writeln!(
            out,
            r#"<rect x="{label_w}" y="{}" width="{w:.1}" height="{}" fill="{}"/>"#,
            y + 3.0,
            row_h - 5.0,
            color(&b.series)
        );
        let _ = writeln!(
            out,
            r#"<line x1="{tick:.1}" x2="{tick:.1}" y1="{}" y2="{}" stroke="black"/>"#,
            y + 2.0,
            y + row_h - 1.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}">{:.2} / {:.2} ms (n={})</text>"#,
            tick + 4.0,
            y + 11.0,
            b.p50_ms,
            b.p95_ms,
            b.count
        );
        y += row_h;
    }
    let _ = writeln!(
        out,
        r#"<text x="{label_w}" y="{}">0</text><text x="{}" y="{}" text-anchor="end">{max:.2} ms</text>"#,
        y + 14.0,
        label_w + plot_w,
        y + 14.0
    );
    out.push_str("</svg>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, route: &str, ms: u64) -> ReceivedSpan {
        ReceivedSpan {
            name: format!("{method} {route}"),
            service_name: Some("s".into()),
            scope: String::new(),
            attributes: BTreeMap::from([
                ("http.method".into(), method.into()),
                ("http.route".into(), route.into()),
            ]),
            start_unix_nanos: 1_000_000,
            end_unix_nanos: 1_000_000 + ms * 1_000_000,
        }
    }

    #[test]
    fn bars_group_by_endpoint_and_series_with_nearest_rank_percentiles() {
        let add = "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/add";
        let spans: Vec<_> = (1..=20)
            .map(|ms| req("POST", add, ms))
            .chain([req("GET", "/api/v2/heartbeat", 3)])
            .collect();
        let internal = ReceivedSpan {
            attributes: BTreeMap::new(),
            ..req("x", "y", 1)
        };
        let b = bars(&[
            ("1.5.0".into(), spans),
            (
                "0.6.3".into(),
                vec![internal, req("GET", "/api/v2/heartbeat", 5)],
            ),
        ]);
        assert_eq!(b.len(), 3, "{b:?}");
        // Within an endpoint, rows keep the order the series were given in (1.5.0 first).
        assert_eq!(
            (b[0].series.as_str(), b[1].series.as_str(), b[1].p50_ms),
            ("1.5.0", "0.6.3", 5.0)
        );
        assert_eq!(
            b[2].endpoint,
            "POST /api/v2/…/collections/{collection_id}/add"
        );
        assert_eq!((b[2].count, b[2].p50_ms, b[2].p95_ms), (20, 10.0, 19.0));
        assert_eq!(
            (b[0].endpoint.as_str(), b[0].p50_ms),
            ("GET /api/v2/heartbeat", 3.0)
        );
    }

    #[test]
    fn svg_names_every_endpoint_and_series_and_escapes() {
        let s = svg(
            "t<1>",
            &[(
                "0.6.3".into(),
                vec![req(
                    "GET",
                    "/api/v2/tenants/{tenant}/databases/{database_name}/collections",
                    2,
                )],
            )],
        )
        .unwrap();
        assert!(
            s.starts_with("<svg")
                && s.contains("GET /api/v2/…/collections")
                && s.contains(">0.6.3<")
                && s.contains("t&lt;1&gt;"),
            "{s}"
        );
    }

    #[test]
    fn no_request_spans_is_an_error_not_an_empty_picture() {
        assert_eq!(
            svg("t", &[("1.5.0".into(), vec![])]),
            Err(PlotError::NoRequestSpans)
        );
    }
}
