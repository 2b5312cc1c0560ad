//! The checks themselves. Each returns `Ok(what was verified)` or `Err(what went wrong)`;
//! the exchanges it made are kept in the context as evidence.

use reqwest::Method;
use serde_json::{Value, json};

use render::{Auth, ChromaVersion};

use super::client::{Answer, Api, Credential, names};
use super::{Ctx, basic, era};
use crate::backend::Backend;

type Checked = Result<String, String>;

fn expect_status(a: &Answer, allowed: &[u16], what: &str) -> Result<(), String> {
    if allowed.contains(&a.status()) {
        Ok(())
    } else {
        Err(format!("{what}: expected HTTP {allowed:?}, got {} ({} {})", a.status(), a.ex.method, a.ex.url))
    }
}

fn expect_ok(a: &Answer, what: &str) -> Result<(), String> {
    if a.ex.ok() { Ok(()) } else { Err(format!("{what}: expected a 2xx answer, got {} ({} {})", a.status(), a.ex.method, a.ex.url)) }
}

/// Records with every field kind Chroma stores: ids, embeddings (exactly representable
/// floats, so nothing is lost to rounding), string/int/float metadata (no booleans: 0.4.3
/// stores them as 0/1), and non-ASCII documents.
fn records(seed: usize) -> Value {
    let n = 4;
    json!({
        "ids": (0..n).map(|i| format!("rec-{seed}-{i}")).collect::<Vec<_>>(),
        "embeddings": (0..n).map(|i| vec![seed as f64 + 0.25, i as f64 * 0.5, -1.5, 2.0]).collect::<Vec<_>>(),
        "metadatas": (0..n).map(|i| json!({"seed": seed, "index": i, "label": format!("m-{seed}-{i}"), "parity": if i % 2 == 0 { "even" } else { "odd" }, "ratio": 0.5})).collect::<Vec<_>>(),
        "documents": (0..n).map(|i| format!("document {i} of collection {seed} — ünïcödé ✓")).collect::<Vec<_>>(),
    })
}

/// Creates a collection filled with [`records`]; returns its id.
async fn seeded<B: Backend>(ctx: &mut Ctx<'_, B>, name: &str, seed: usize) -> Result<String, String> {
    let created = ctx.rec(ctx.api.create_collection(name, json!({"purpose": "e2e", "seed": seed})).await);
    expect_ok(&created, &format!("creating collection {name}"))?;
    let id = created.json().and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string)).ok_or_else(|| format!("creating collection {name}: the answer has no id"))?;
    let added = ctx.rec(ctx.api.add(&id, records(seed).to_string()).await);
    expect_ok(&added, &format!("adding records to {name}"))?;
    Ok(id)
}

/// The stored records must be exactly what was sent.
fn same_records(got: &Value, seed: usize) -> Result<(), String> {
    let want = records(seed);
    for field in ["ids", "embeddings", "metadatas", "documents"] {
        let g = got.get(field).cloned().unwrap_or(Value::Null);
        let w = &want[field];
        let equal = match field {
            // Numbers may come back as 2.0 vs 2: compare as f64.
            "embeddings" => {
                let f = |v: &Value| v.as_array().map(|rows| rows.iter().map(|r| r.as_array().map(|x| x.iter().map(|n| n.as_f64()).collect::<Vec<_>>())).collect::<Vec<_>>());
                f(&g) == f(w)
            }
            _ => g == *w,
        };
        if !equal {
            return Err(format!("stored {field} differ from what was added: sent {w}, got {g}"));
        }
    }
    Ok(())
}

pub async fn api_surface<B: Backend>(ctx: &mut Ctx<'_, B>) -> Checked {
    let hb = ctx.rec(ctx.api.heartbeat().await);
    expect_status(&hb, &[200], "heartbeat")?;
    if hb.json().and_then(|v| v.get("nanosecond heartbeat").cloned()).is_none() {
        return Err("heartbeat answered 200 without a `nanosecond heartbeat` field".into());
    }
    let list = ctx.rec(ctx.api.list_collections().await);
    expect_status(&list, &[200], &format!("listing collections under {}", ctx.expected.api.path()))?;
    if !list.json().is_some_and(|v| v.is_array()) {
        return Err("listing collections did not answer a JSON list".into());
    }
    let mut detail = format!("{} heartbeat and collections answer", ctx.expected.api.path());
    if ctx.expected.version.is_rust_server() {
        let url = format!("{}/api/v1/heartbeat", ctx.api.base);
        let old = ctx.rec(ctx.api.send(Method::GET, &url, None, &[], None).await);
        expect_status(&old, &[410], "the removed /api/v1 on the Rust server")?;
        detail.push_str("; /api/v1 answers 410 Gone");
    }
    Ok(detail)
}

pub async fn auth<B: Backend>(ctx: &mut Ctx<'_, B>) -> Checked {
    let url = ctx.api.collections();
    let version = ctx.expected.version.clone();
    let rejected = era::auth_rejected(&version);
    let auth = ctx.expected.auth.clone();
    match auth {
        Auth::Open { why } => {
            let a = ctx.rec(ctx.api.send(Method::GET, &url, None, &[], None).await);
            expect_status(&a, &[200], &format!("the spec says the API is open here ({why:?}); a request without credentials"))?;
            Ok(format!("open without credentials ({why:?})"))
        }
        Auth::Token { header, .. } => {
            let right = ctx.api.credential.clone().ok_or("token auth expected but no credential was derived")?;
            let token = right.value.strip_prefix("Bearer ").unwrap_or(&right.value).to_string();
            let wrong = Credential::new(header.header_name(), header.header_value("not-the-token"), "a wrong token");
            let other = header.other();
            let misplaced = Credential::new(other.header_name(), other.header_value(&token), format!("{}the right token (in the other header)", if other.header_name() == "Authorization" { "Bearer " } else { "" }));
            for (label, cred) in [("no credentials", None), ("a wrong token", Some(&wrong)), ("the right token in the other header type", Some(&misplaced))] {
                let a = ctx.rec(ctx.api.send(Method::GET, &url, cred, &[], None).await);
                expect_status(&a, rejected, &format!("token auth ({}) with {label} must be rejected", header.header_name()))?;
            }
            let a = ctx.rec(ctx.api.send(Method::GET, &url, Some(&right), &[], None).await);
            expect_status(&a, &[200], &format!("the right token in {}", header.header_name()))?;
            Ok(format!("token in {} accepted; none, wrong and other-header rejected with {rejected:?}", header.header_name()))
        }
        Auth::Basic { .. } => {
            let right = ctx.api.credential.clone().ok_or("basic auth expected but no credential was derived")?;
            let (user, pass) = decode_basic(&right).ok_or("could not read back the basic credential")?;
            let wrong = basic(&user, "not-the-password", "Basic <right user, wrong password>".into());
            let bearer = Credential::new("Authorization", format!("Bearer {pass}"), "Bearer <the right password as a token>");
            let x_token = Credential::new("X-Chroma-Token", pass.clone(), "<the right password as an X-Chroma-Token>");
            for (label, cred) in [("no credentials", None), ("a wrong password", Some(&wrong)), ("the password as a bearer token", Some(&bearer)), ("the password as X-Chroma-Token", Some(&x_token))] {
                let a = ctx.rec(ctx.api.send(Method::GET, &url, cred, &[], None).await);
                expect_status(&a, rejected, &format!("basic auth with {label} must be rejected"))?;
            }
            let a = ctx.rec(ctx.api.send(Method::GET, &url, Some(&right), &[], None).await);
            expect_status(&a, &[200], "the right basic credentials")?;
            Ok(format!("basic credentials accepted; none, wrong and token-style rejected with {rejected:?}"))
        }
    }
}

fn decode_basic(c: &Credential) -> Option<(String, String)> {
    use base64::Engine;
    let raw = c.value.strip_prefix("Basic ")?;
    let text = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(raw).ok()?).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

const UNLISTED: &str = "https://not-listed.example.net";

async fn cors_probe(api: &Api, origin: &str, preflight_cred: bool) -> (Answer, Answer) {
    let url = api.url("/heartbeat");
    let cred = if preflight_cred { api.credential.as_ref() } else { None };
    let pre = api.send(Method::OPTIONS, &url, cred, &[("Origin", origin), ("Access-Control-Request-Method", "GET")], None).await;
    let simple = api.send(Method::GET, &url, None, &[("Origin", origin)], None).await;
    (pre, simple)
}

fn grants(a: &Answer, origin: &str) -> bool {
    matches!(a.ex.header("access-control-allow-origin"), Some(v) if v == origin || v == "*")
}

pub async fn cors<B: Backend>(ctx: &mut Ctx<'_, B>) -> Checked {
    let origins = ctx.expected.cors_origins.clone();
    // Where Chroma's auth answers preflights before CORS does, send the credential with the
    // preflight so the check still sees the CORS configuration (a browser could not).
    let behind_auth = era::preflight_behind_auth(&ctx.expected.version) && ctx.api.credential.is_some();
    let note = if behind_auth { " (preflights sent with credentials: 0.4.x auth answers 401 to a bare preflight)" } else { "" };
    if ctx.expected.cors_wildcard() {
        let any = "https://any-origin.example.org";
        let (pre, simple) = cors_probe(&ctx.api, any, behind_auth).await;
        let (pre, simple) = (ctx.rec(pre), ctx.rec(simple));
        expect_ok(&pre, "wildcard CORS: preflight from an arbitrary origin")?;
        if !grants(&pre, any) || !grants(&simple, any) {
            return Err(format!("wildcard CORS: origin {any} not allowed (preflight allow-origin {:?}, simple {:?})", pre.ex.header("access-control-allow-origin"), simple.ex.header("access-control-allow-origin")));
        }
        return Ok(format!("wildcard: an arbitrary origin is allowed on preflight and simple requests{note}"));
    }
    for origin in &origins {
        let (pre, simple) = cors_probe(&ctx.api, origin, behind_auth).await;
        let (pre, simple) = (ctx.rec(pre), ctx.rec(simple));
        expect_ok(&pre, &format!("preflight from configured origin {origin}"))?;
        for (kind, a) in [("preflight", &pre), ("simple request", &simple)] {
            if a.ex.header("access-control-allow-origin") != Some(origin.as_str()) {
                return Err(format!("{kind} from configured origin {origin}: access-control-allow-origin is {:?}, expected the origin echoed", a.ex.header("access-control-allow-origin")));
            }
        }
    }
    let (pre, simple) = cors_probe(&ctx.api, UNLISTED, behind_auth).await;
    let (pre, simple) = (ctx.rec(pre), ctx.rec(simple));
    for (kind, a) in [("preflight", &pre), ("simple request", &simple)] {
        if grants(a, UNLISTED) {
            return Err(format!("{kind} from unlisted origin {UNLISTED} was allowed (access-control-allow-origin {:?}); configured: {origins:?}", a.ex.header("access-control-allow-origin")));
        }
    }
    Ok(if origins.is_empty() { format!("not configured: no origin is granted{note}") } else { format!("{origins:?} echoed on preflight and simple requests; an unlisted origin is not allowed{note}") })
}

/// An `add` body of exactly `size` bytes (the document is the padding).
fn body_of_size(id: &str, size: u64) -> Result<String, String> {
    let head = format!(r#"{{"ids":["{id}"],"embeddings":[[0.5,0.25]],"documents":[""#);
    let tail = r#""]}"#;
    let fixed = (head.len() + tail.len()) as u64;
    let pad = size.checked_sub(fixed).ok_or_else(|| format!("a payload limit of {size} bytes is smaller than the smallest add request ({fixed} bytes)"))?;
    Ok(format!("{head}{}{tail}", "x".repeat(pad as usize)))
}

async fn count<B: Backend>(ctx: &mut Ctx<'_, B>, id: &str) -> Result<u64, String> {
    let a = ctx.rec(ctx.api.count(id).await);
    expect_ok(&a, "counting records")?;
    a.json().and_then(|v| v.as_u64()).ok_or_else(|| format!("count answered {}", a.ex.response_body))
}

pub async fn payload<B: Backend>(ctx: &mut Ctx<'_, B>) -> Checked {
    let limit = ctx.expected.max_payload_bytes.ok_or("no payload limit expected")?;
    let created = ctx.rec(ctx.api.create_collection("e2e-payload", json!({"purpose": "e2e"})).await);
    expect_ok(&created, "creating collection e2e-payload")?;
    let id = created.json().and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string)).ok_or("creating e2e-payload: no id")?;

    let over = ctx.rec(ctx.api.add(&id, body_of_size("over", limit + 1)?).await);
    expect_status(&over, &[413], &format!("an add of {} bytes (limit {limit})", limit + 1))?;
    let n = count(ctx, &id).await?;
    if n != 0 {
        return Err(format!("the refused {}-byte add still wrote {n} record(s)", limit + 1));
    }
    let under = ctx.rec(ctx.api.add(&id, body_of_size("under", limit)?).await);
    expect_ok(&under, &format!("an add of exactly {limit} bytes (the limit)"))?;
    let n = count(ctx, &id).await?;
    if n != 1 {
        return Err(format!("after the accepted {limit}-byte add the collection holds {n} records, expected 1"));
    }
    Ok(format!("{} bytes → 413 and nothing written; {limit} bytes → accepted", limit + 1))
}

const PERSIST_NAMES: [&str; 3] = ["e2e-persist-alpha", "e2e-persist-beta", "e2e-persist-gamma"];

/// Collection (id, name, metadata) and the full `get` answer, per collection.
async fn snapshot<B: Backend>(ctx: &mut Ctx<'_, B>) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    for name in PERSIST_NAMES {
        let c = ctx.rec(ctx.api.get_collection(name).await);
        expect_ok(&c, &format!("reading collection {name}"))?;
        let meta = c.json().unwrap_or(Value::Null);
        let id = meta.get("id").and_then(Value::as_str).ok_or_else(|| format!("collection {name} has no id"))?.to_string();
        let header = json!({"id": id, "name": meta.get("name"), "metadata": meta.get("metadata")}).to_string();
        let recs = ctx.rec(ctx.api.get_records(&id).await);
        expect_ok(&recs, &format!("reading the records of {name}"))?;
        // 1.x returns metadata keys in hash order: compare the stored values exactly, in
        // canonical (sorted-key) form, not the incidental key order of one answer.
        let canonical = serde_json::from_slice::<Value>(&recs.body).map(|v| v.to_string().into_bytes()).unwrap_or(recs.body);
        out.push((header, canonical));
    }
    Ok(out)
}

pub async fn persistence<B: Backend>(ctx: &mut Ctx<'_, B>) -> Checked {
    for (seed, name) in PERSIST_NAMES.iter().enumerate() {
        let id = seeded(ctx, name, seed).await?;
        let got = ctx.rec(ctx.api.get_records(&id).await);
        expect_ok(&got, &format!("reading back {name}"))?;
        same_records(&got.json().unwrap_or(Value::Null), seed).map_err(|e| format!("{name}: {e}"))?;
    }
    let before = snapshot(ctx).await?;
    ctx.backend.restart(ctx.deployed).await.map_err(|e| format!("restarting the pod: {e}"))?;
    ctx.api.base = ctx.deployed.base_url.clone();
    if ctx.expected.survives_restart {
        let after = snapshot(ctx).await?;
        for (i, ((hb, rb), (ha, ra))) in before.iter().zip(&after).enumerate() {
            if hb != ha || rb != ra {
                return Err(format!(
                    "{} changed across the restart:\nbefore: {hb} {}\nafter:  {ha} {}",
                    PERSIST_NAMES[i],
                    String::from_utf8_lossy(rb),
                    String::from_utf8_lossy(ra)
                ));
            }
        }
        Ok(format!("{} collections × 4 records identical byte for byte after a pod restart", PERSIST_NAMES.len()))
    } else {
        let list = ctx.rec(ctx.api.list_collections().await);
        expect_ok(&list, "listing collections after the restart")?;
        let left: Vec<String> = names(&list).into_iter().filter(|n| PERSIST_NAMES.contains(&n.as_str())).collect();
        if !left.is_empty() {
            return Err(format!("isPersistent=false, yet {left:?} survived a pod restart (the spec says data is lost without a PVC)"));
        }
        Ok("isPersistent=false: the collections are gone after a pod restart, as the spec says".into())
    }
}

pub async fn reset<B: Backend>(ctx: &mut Ctx<'_, B>) -> Checked {
    let version: ChromaVersion = ctx.expected.version.clone();
    let id = seeded(ctx, "e2e-reset", 7).await?;
    let r = ctx.rec(ctx.api.reset().await);
    if ctx.expected.allow_reset {
        expect_ok(&r, "reset with allowReset=true")?;
        let list = ctx.rec(ctx.api.list_collections().await);
        expect_ok(&list, "listing collections after reset")?;
        if names(&list).iter().any(|n| n == "e2e-reset") {
            return Err("reset answered success but collection e2e-reset is still there".into());
        }
        Ok("allowReset=true: reset succeeded and the data is gone".into())
    } else {
        expect_status(&r, era::reset_refused(&version), "reset with allowReset=false must be refused")?;
        let got = ctx.rec(ctx.api.get_records(&id).await);
        expect_ok(&got, "reading e2e-reset after the refused reset")?;
        same_records(&got.json().unwrap_or(Value::Null), 7).map_err(|e| format!("after the refused reset: {e}"))?;
        Ok(format!("allowReset=false: reset refused with {} and every record still there", r.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_body_has_exactly_the_requested_size() {
        assert_eq!(body_of_size("x", 4096).unwrap().len(), 4096);
    }

    #[test]
    fn payload_body_is_valid_json() {
        let b = body_of_size("x", 200).unwrap();
        assert!(serde_json::from_str::<Value>(&b).is_ok(), "{b}");
    }

    #[test]
    fn records_compare_equal_to_themselves_with_integral_floats() {
        let mut got = records(1);
        got["embeddings"][0][3] = json!(2);
        same_records(&got, 1).unwrap();
    }

    #[test]
    fn a_changed_document_is_reported() {
        let mut got = records(1);
        got["documents"][2] = json!("other");
        assert!(same_records(&got, 1).unwrap_err().contains("documents"));
    }
}
