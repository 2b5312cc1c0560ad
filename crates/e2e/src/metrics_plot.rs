//! The README's observability picture: what Prometheus held during `metrics` check runs —
//! request rate and p95 latency per endpoint over the run, one row of two charts per Chroma
//! version (the query_range results the check saved, see checks/metrics.rs).

use std::fmt::Write as _;

use serde_json::Value;

const PALETTE: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/add` → `…/collections/{collection_id}/add`.
pub fn short_route(route: &str) -> String {
    match route.find("/collections") {
        Some(i) if i > 0 => format!("…{}", &route[i..]),
        _ => route.to_string(),
    }
}

/// (route, points (seconds since start, value)) of one query_range result, finite points only.
fn series(result: &Value, start: f64) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut out: Vec<(String, Vec<(f64, f64)>)> = result
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let route = s["metric"]["http_route"]
                .as_str()
                .unwrap_or("(no route)")
                .to_string();
            let pts = s["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((p[0].as_f64()? - start, p[1].as_str()?.parse::<f64>().ok()?)))
                .filter(|(_, v)| v.is_finite())
                .collect();
            (route, pts)
        })
        .filter(|(_, pts): &(String, Vec<(f64, f64)>)| pts.iter().any(|(_, v)| *v > 0.0))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Where a chart goes: left, top, width, height.
struct Frame(f64, f64, f64, f64);

fn chart(
    out: &mut String,
    Frame(x0, y0, w, h): Frame,
    title: &str,
    unit: &str,
    data: &[(String, Vec<(f64, f64)>)],
    colors: &dyn Fn(&str) -> &'static str,
) {
    let tmax = data
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(t, _)| *t))
        .fold(1.0_f64, f64::max);
    let vmax = data
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, v)| *v))
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let _ = writeln!(
        out,
        r##"<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#999"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{x0}" y="{}" font-weight="bold">{}</text>"#,
        y0 - 4.0,
        esc(title)
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="end">{vmax:.2} {unit}</text>"#,
        x0 - 3.0,
        y0 + 9.0
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="end">0</text>"#,
        x0 - 3.0,
        y0 + h
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="end">{tmax:.0} s</text>"#,
        x0 + w,
        y0 + h + 12.0
    );
    for (route, pts) in data {
        let path: Vec<String> = pts
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x0 + t / tmax * w, y0 + h - v / vmax * h))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
            colors(route),
            path.join(" ")
        );
    }
}

/// The picture of every saved run (`runs`: the check's JSON data file).
pub fn svg(runs: &[Value]) -> String {
    let mut routes: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for r in runs {
        let start = r["start"].as_f64().unwrap_or(0.0);
        let rate = series(&r["rate"], start);
        let p95 = series(&r["p95"], start);
        // One colour per endpoint across eras (0.x and 1.x spell the path parameters apart).
        for (route, _) in rate.iter().chain(&p95) {
            let short = short_route(route);
            if !routes.contains(&short) {
                routes.push(short);
            }
        }
        rows.push((r["version"].as_str().unwrap_or("?").to_string(), rate, p95));
    }
    routes.sort();
    let color = |route: &str| {
        PALETTE[routes
            .iter()
            .position(|r| *r == short_route(route))
            .unwrap_or(0)
            % PALETTE.len()]
    };
    let (cw, ch, left, top, gap) = (330.0, 120.0, 70.0, 50.0, 45.0);
    let legend_h = 14.0 * routes.len() as f64 + 10.0;
    let height = top + rows.len() as f64 * (ch + gap) + legend_h;
    let width = left + 2.0 * cw + 80.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="10">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="10" y="18" font-size="13" font-weight="bold">Chroma → chart's OpenTelemetry Collector → Prometheus (metrics check, live)</text>"#
    );
    let _ = writeln!(
        out,
        r#"<text x="10" y="32">Per endpoint (http_route of the request spans), as the dashboard queries them with a 1 m rate window; x: seconds since the check started.</text>"#
    );
    for (i, (version, rate, p95)) in rows.iter().enumerate() {
        let y = top + 12.0 + i as f64 * (ch + gap);
        chart(
            &mut out,
            Frame(left, y, cw, ch),
            &format!("Chroma {version}: requests per second"),
            "req/s",
            rate,
            &color,
        );
        chart(
            &mut out,
            Frame(left + cw + 60.0, y, cw, ch),
            &format!("Chroma {version}: p95 latency"),
            "ms",
            p95,
            &color,
        );
    }
    let mut y = top + rows.len() as f64 * (ch + gap) + 4.0;
    for route in &routes {
        let _ = writeln!(
            out,
            r#"<rect x="10" y="{}" width="10" height="10" fill="{}"/><text x="24" y="{}">{}</text>"#,
            y,
            color(route),
            y + 9.0,
            esc(route)
        );
        y += 14.0;
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn routes_with_traffic_are_drawn_and_named_in_the_legend() {
        let add = "/api/v1/collections/{collection_id}/add";
        let runs = [json!({"version": "0.6.3", "start": 100.0,
            "rate": [{"metric": {"http_route": add}, "values": [[100.0, "0"], [105.0, "0.5"]]}, {"metric": {"http_route": "/idle"}, "values": [[100.0, "0"]]}],
            "p95": [{"metric": {"http_route": add}, "values": [[105.0, "NaN"], [110.0, "12.5"]]}]})];
        let s = svg(&runs);
        assert!(
            s.starts_with("<svg")
                && s.contains("…/collections/{collection_id}/add")
                && s.contains("Chroma 0.6.3: p95 latency"),
            "{s}"
        );
        assert!(!s.contains("/idle"), "a route without traffic is left out");
        assert_eq!(s.matches("<polyline").count(), 2);
    }

    #[test]
    fn one_endpoint_keeps_one_colour_and_legend_entry_across_eras() {
        let run = |v: &str, route: &str| json!({"version": v, "start": 0.0, "rate": [{"metric": {"http_route": route}, "values": [[1.0, "1"]]}], "p95": []});
        let s = svg(&[
            run(
                "0.6.3",
                "/api/v2/tenants/{tenant}/databases/{database_name}/collections/{collection_id}/add",
            ),
            run(
                "1.5.0",
                "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/add",
            ),
        ]);
        assert_eq!(
            s.matches("…/collections/{collection_id}/add").count(),
            1,
            "{s}"
        );
        assert_eq!(s.matches(r##"stroke="#4e79a7""##).count(), 2, "{s}");
    }
}
