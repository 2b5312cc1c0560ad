//! The checks themselves. Each returns `Ok(what was verified)` or `Err(what went wrong)`;
//! the exchanges it made are kept in the context as evidence.

use reqwest::Method;
use serde_json::json;

use render::{Auth, ChromaVersion};

use super::{Ctx, basic, era};
use crate::backend::Backend;
use crate::dataset::{self, Dataset, Scope};
use chroma_api::client::{self, Answer, Api, Credential};

type Checked = Result<String, String>;

fn expect_status(a: &Answer, allowed: &[u16], what: &str) -> Result<(), String> {
    if allowed.contains(&a.status()) {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected HTTP {allowed:?}, got {} ({} {})",
            a.status(),
            a.ex.method,
            a.ex.url
        ))
    }
}

fn expect_ok(a: &Answer, what: &str) -> Result<(), String> {
    if a.ex.ok() {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected a 2xx answer, got {} ({} {})",
            a.status(),
            a.ex.method,
            a.ex.url
        ))
    }
}

pub async fn api_surface<B: Backend>(ctx: &mut Ctx<'_, B>) -> Checked {
    let hb = ctx.rec(ctx.api.heartbeat().await);
    expect_status(&hb, &[200], "heartbeat")?;
    client::heartbeat(&hb).map_err(|e| e.to_string())?;
    let list = ctx.rec(ctx.api.list_collections().await);
    expect_status(
        &list,
        &[200],
        &format!("listing collections under {}", ctx.expected.api.path()),
    )?;
    client::collection_list(&list).map_err(|e| e.to_string())?;
    let mut detail = format!(
        "{} heartbeat and collections answer",
        ctx.expected.api.path()
    );
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
            expect_status(
                &a,
                &[200],
                &format!(
                    "the spec says the API is open here ({why:?}); a request without credentials"
                ),
            )?;
            Ok(format!("open without credentials ({why:?})"))
        }
        Auth::Token { header, .. } => {
            let right = ctx
                .api
                .credential
                .clone()
                .ok_or("token auth expected but no credential was derived")?;
            let token = right
                .value
                .strip_prefix("Bearer ")
                .unwrap_or(&right.value)
                .to_string();
            let wrong = Credential::new(
                header.header_name(),
                header.header_value("not-the-token"),
                "a wrong token",
            );
            let other = header.other();
            let misplaced = Credential::new(
                other.header_name(),
                other.header_value(&token),
                format!(
                    "{}the right token (in the other header)",
                    if other.header_name() == "Authorization" {
                        "Bearer "
                    } else {
                        ""
                    }
                ),
            );
            for (label, cred) in [
                ("no credentials", None),
                ("a wrong token", Some(&wrong)),
                ("the right token in the other header type", Some(&misplaced)),
            ] {
                let a = ctx.rec(ctx.api.send(Method::GET, &url, cred, &[], None).await);
                expect_status(
                    &a,
                    rejected,
                    &format!(
                        "token auth ({}) with {label} must be rejected",
                        header.header_name()
                    ),
                )?;
            }
            let a = ctx.rec(
                ctx.api
                    .send(Method::GET, &url, Some(&right), &[], None)
                    .await,
            );
            expect_status(
                &a,
                &[200],
                &format!("the right token in {}", header.header_name()),
            )?;
            Ok(format!(
                "token in {} accepted; none, wrong and other-header rejected with {rejected:?}",
                header.header_name()
            ))
        }
        Auth::Basic { .. } => {
            let right = ctx
                .api
                .credential
                .clone()
                .ok_or("basic auth expected but no credential was derived")?;
            let (user, pass) =
                decode_basic(&right).ok_or("could not read back the basic credential")?;
            let wrong = basic(
                &user,
                "not-the-password",
                "Basic <right user, wrong password>".into(),
            );
            let bearer = Credential::new(
                "Authorization",
                format!("Bearer {pass}"),
                "Bearer <the right password as a token>",
            );
            let x_token = Credential::new(
                "X-Chroma-Token",
                pass.clone(),
                "<the right password as an X-Chroma-Token>",
            );
            for (label, cred) in [
                ("no credentials", None),
                ("a wrong password", Some(&wrong)),
                ("the password as a bearer token", Some(&bearer)),
                ("the password as X-Chroma-Token", Some(&x_token)),
            ] {
                let a = ctx.rec(ctx.api.send(Method::GET, &url, cred, &[], None).await);
                expect_status(
                    &a,
                    rejected,
                    &format!("basic auth with {label} must be rejected"),
                )?;
            }
            let a = ctx.rec(
                ctx.api
                    .send(Method::GET, &url, Some(&right), &[], None)
                    .await,
            );
            expect_status(&a, &[200], "the right basic credentials")?;
            Ok(format!(
                "basic credentials accepted; none, wrong and token-style rejected with {rejected:?}"
            ))
        }
    }
}

fn decode_basic(c: &Credential) -> Option<(String, String)> {
    use base64::Engine;
    let raw = c.value.strip_prefix("Basic ")?;
    let text =
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(raw).ok()?).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

const UNLISTED: &str = "https://not-listed.example.net";

async fn cors_probe(api: &Api, origin: &str, preflight_cred: bool) -> (Answer, Answer) {
    let url = api.url("/heartbeat");
    let cred = if preflight_cred {
        api.credential.as_ref()
    } else {
        None
    };
    let pre = api
        .send(
            Method::OPTIONS,
            &url,
            cred,
            &[("Origin", origin), ("Access-Control-Request-Method", "GET")],
            None,
        )
        .await;
    let simple = api
        .send(Method::GET, &url, None, &[("Origin", origin)], None)
        .await;
    (pre, simple)
}

fn grants(a: &Answer, origin: &str) -> bool {
    matches!(a.ex.header("access-control-allow-origin"), Some(v) if v == origin || v == "*")
}

pub async fn cors<B: Backend>(ctx: &mut Ctx<'_, B>) -> Checked {
    let origins = ctx.expected.cors_origins.clone();
    // Where Chroma's auth answers preflights before CORS does, send the credential with the
    // preflight so the check still sees the CORS configuration (a browser could not).
    let behind_auth =
        era::preflight_behind_auth(&ctx.expected.version) && ctx.api.credential.is_some();
    let note = if behind_auth {
        " (preflights sent with credentials: 0.4.x auth answers 401 to a bare preflight)"
    } else {
        ""
    };
    if ctx.expected.cors_wildcard() {
        let any = "https://any-origin.example.org";
        let (pre, simple) = cors_probe(&ctx.api, any, behind_auth).await;
        let (pre, simple) = (ctx.rec(pre), ctx.rec(simple));
        expect_ok(&pre, "wildcard CORS: preflight from an arbitrary origin")?;
        if !grants(&pre, any) || !grants(&simple, any) {
            return Err(format!(
                "wildcard CORS: origin {any} not allowed (preflight allow-origin {:?}, simple {:?})",
                pre.ex.header("access-control-allow-origin"),
                simple.ex.header("access-control-allow-origin")
            ));
        }
        return Ok(format!(
            "wildcard: an arbitrary origin is allowed on preflight and simple requests{note}"
        ));
    }
    for origin in &origins {
        let (pre, simple) = cors_probe(&ctx.api, origin, behind_auth).await;
        let (pre, simple) = (ctx.rec(pre), ctx.rec(simple));
        expect_ok(&pre, &format!("preflight from configured origin {origin}"))?;
        for (kind, a) in [("preflight", &pre), ("simple request", &simple)] {
            if a.ex.header("access-control-allow-origin") != Some(origin.as_str()) {
                return Err(format!(
                    "{kind} from configured origin {origin}: access-control-allow-origin is {:?}, expected the origin echoed",
                    a.ex.header("access-control-allow-origin")
                ));
            }
        }
    }
    let (pre, simple) = cors_probe(&ctx.api, UNLISTED, behind_auth).await;
    let (pre, simple) = (ctx.rec(pre), ctx.rec(simple));
    for (kind, a) in [("preflight", &pre), ("simple request", &simple)] {
        if grants(a, UNLISTED) {
            return Err(format!(
                "{kind} from unlisted origin {UNLISTED} was allowed (access-control-allow-origin {:?}); configured: {origins:?}",
                a.ex.header("access-control-allow-origin")
            ));
        }
    }
    Ok(if origins.is_empty() {
        format!("not configured: no origin is granted{note}")
    } else {
        format!(
            "{origins:?} echoed on preflight and simple requests; an unlisted origin is not allowed{note}"
        )
    })
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
    client::count(&a, "counting records").map_err(|e| e.to_string())
}

pub async fn payload<B: Backend>(ctx: &mut Ctx<'_, B>) -> Checked {
    let limit = ctx
        .expected
        .max_payload_bytes
        .ok_or("no payload limit expected")?;
    let created = ctx.rec(
        ctx.api
            .create_collection("e2e-payload", json!({"purpose": "e2e"}))
            .await,
    );
    let id = client::collection(&created, "creating collection e2e-payload")
        .map_err(|e| e.to_string())?
        .id;

    let over = ctx.rec(ctx.api.add(&id, body_of_size("over", limit + 1)?).await);
    expect_status(
        &over,
        &[413],
        &format!("an add of {} bytes (limit {limit})", limit + 1),
    )?;
    let n = count(ctx, &id).await?;
    if n != 0 {
        return Err(format!(
            "the refused {}-byte add still wrote {n} record(s)",
            limit + 1
        ));
    }
    let under = ctx.rec(ctx.api.add(&id, body_of_size("under", limit)?).await);
    expect_ok(
        &under,
        &format!("an add of exactly {limit} bytes (the limit)"),
    )?;
    let n = count(ctx, &id).await?;
    if n != 1 {
        return Err(format!(
            "after the accepted {limit}-byte add the collection holds {n} records, expected 1"
        ));
    }
    Ok(format!(
        "{} bytes → 413 and nothing written; {limit} bytes → accepted",
        limit + 1
    ))
}

/// The persistence check's share of the dataset: 3 collections × 4 records.
fn persistence_data() -> Dataset {
    Dataset::small("e2e-persist", 3, 4)
}

/// The reset check's share of the dataset: 2 collections × 4 records.
fn reset_data() -> Dataset {
    Dataset::small("e2e-reset", 2, 4)
}

/// Reads `ds` back and diffs it; `Err` lists every difference, prefixed with `when`.
async fn read_back<B: Backend>(
    ctx: &mut Ctx<'_, B>,
    ds: &Dataset,
    when: &str,
) -> Result<dataset::Snapshot, String> {
    let snap = dataset::read(&ctx.api, ds, &mut ctx.evidence).await;
    let d = dataset::diff(ds, &snap, Scope::Shared);
    if d.intact() {
        Ok(snap)
    } else {
        Err(format!(
            "{when}, the records differ from what was written:\n{}",
            d.problems().join("\n")
        ))
    }
}

/// After a restart without persistence: the listing parses and names none of `ds`.
fn none_left(list: &Answer, ds: &Dataset, restart: &str) -> Result<(), String> {
    let listed = client::collection_names(list).map_err(|e| e.to_string())?;
    let left: Vec<&String> = listed
        .iter()
        .filter(|n| ds.names().contains(&n.as_str()))
        .collect();
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "isPersistent=false, yet {left:?} survived {restart} (the spec says data is lost without a PVC)"
        ))
    }
}

/// After the backend moved the server: a new client for its address, so no pooled
/// connection from before the restart is reused.
fn reconnect<B: Backend>(ctx: &mut Ctx<'_, B>) {
    ctx.api = crate::tls::api(
        &ctx.deployed.base_url,
        ctx.api.prefix,
        ctx.api.credential.clone(),
        ctx.deployed.tls.as_ref(),
    );
}

pub async fn persistence<B: Backend>(ctx: &mut Ctx<'_, B>) -> Checked {
    let ds = persistence_data();
    dataset::write(&ctx.api, &ds, &mut ctx.evidence)
        .await
        .map_err(|e| e.to_string())?;
    let before = read_back(ctx, &ds, "before the restart").await?;
    ctx.backend
        .restart(ctx.deployed)
        .await
        .map_err(|e| format!("restarting the pod: {e}"))?;
    reconnect(ctx);
    let pod = if ctx.expected.survives_restart {
        let after = read_back(ctx, &ds, "after a pod restart").await?;
        for name in ds.names() {
            if before.id_of(name) != after.id_of(name) {
                return Err(format!(
                    "collection {name} had id {:?} before the restart and {:?} after",
                    before.id_of(name),
                    after.id_of(name)
                ));
            }
        }
        format!(
            "{} collections × {} records identical after a pod restart, record by record: ids, documents, metadata (values exact, key order aside), embeddings (exact), collection ids and metadata",
            ds.collections.len(),
            ds.collections[0].records.len()
        )
    } else {
        let list = ctx.rec(ctx.api.list_collections().await);
        none_left(&list, &ds, "a pod restart")?;
        // Written again for the container restart below.
        dataset::write(&ctx.api, &ds, &mut ctx.evidence)
            .await
            .map_err(|e| e.to_string())?;
        "isPersistent=false: the collections are gone after a pod restart, as the spec says"
            .to_string()
    };
    let container = container_restart(ctx, &ds).await?;
    Ok(format!("{pod}; {container}"))
}

/// The server's container restarts inside the same pod: its volumes (an emptyDir included)
/// stay, so only a server that really keeps data in memory loses it.
async fn container_restart<B: Backend>(ctx: &mut Ctx<'_, B>, ds: &Dataset) -> Checked {
    match ctx.backend.restart_container(ctx.deployed).await {
        Ok(()) => {}
        Err(crate::BackendError::Unavailable { reason, .. }) => {
            return Ok(format!(
                "a container restart alone was not exercised here ({reason})"
            ));
        }
        Err(e) => return Err(format!("restarting the server's container: {e}")),
    }
    reconnect(ctx);
    if ctx.expected.survives_container_restart {
        read_back(ctx, ds, "after a container restart in the same pod").await?;
        Ok("every record read back exactly after a container restart in the same pod".into())
    } else {
        let list = ctx.rec(ctx.api.list_collections().await);
        none_left(
            &list,
            ds,
            "a container restart in the same pod (the server should hold data in memory only)",
        )?;
        Ok("in-memory server: the collections are gone after a container restart, although the pod's volumes were kept".into())
    }
}

/// After an allowed reset: the listing parses and is empty, and where the API counts
/// collections the count is 0.
fn emptied(list: &Answer, count: Option<&Answer>) -> Checked {
    let left = client::collection_names(list).map_err(|e| e.to_string())?;
    if !left.is_empty() {
        return Err(format!(
            "reset answered success but the listing still shows {} collection(s): {}",
            left.len(),
            left.join(", ")
        ));
    }
    match count {
        None => Ok("the listing is empty (/api/v1 has no collection count)".into()),
        Some(c) => match client::count(c, "counting collections").map_err(|e| e.to_string())? {
            0 => Ok("the listing is empty and collections_count is 0".into()),
            n => Err(format!(
                "reset answered success and the listing is empty, but collections_count says {n}"
            )),
        },
    }
}

pub async fn reset<B: Backend>(ctx: &mut Ctx<'_, B>) -> Checked {
    let version: ChromaVersion = ctx.expected.version.clone();
    let ds = reset_data();
    dataset::write(&ctx.api, &ds, &mut ctx.evidence)
        .await
        .map_err(|e| e.to_string())?;
    let r = ctx.rec(ctx.api.reset().await);
    if ctx.expected.allow_reset {
        expect_ok(&r, "reset with allowReset=true")?;
        let list = ctx.rec(ctx.api.list_collections().await);
        let count = ctx.api.count_collections().await.map(|c| ctx.rec(c));
        let detail = emptied(&list, count.as_ref())?;
        Ok(format!(
            "allowReset=true: reset answered {}; every collection is gone: {detail}",
            r.status()
        ))
    } else {
        expect_status(
            &r,
            era::reset_refused(&version),
            "reset with allowReset=false must be refused",
        )?;
        read_back(ctx, &ds, "after the refused reset").await?;
        Ok(format!(
            "allowReset=false: reset refused with {}; all {} records of {} collections read back exactly",
            r.status(),
            ds.record_count(),
            ds.collections.len()
        ))
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
        assert!(serde_json::from_str::<serde_json::Value>(&b).is_ok(), "{b}");
    }

    use chroma_api::client::fake::answer;

    const LIST: &str =
        "http://h/api/v2/tenants/default_tenant/databases/default_database/collections";

    #[rstest::rstest]
    #[case::an_html_page_is_not_an_empty_listing("<html>maintenance</html>")]
    #[case::an_empty_body_is_not_an_empty_listing("")]
    #[case::an_object_is_not_an_empty_listing(r#"{"collections":[]}"#)]
    fn a_garbage_listing_after_reset_fails_naming_the_endpoint(#[case] body: &str) {
        let e = emptied(&answer("GET", LIST, 200, body), None).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "listing collections (GET {LIST}) answered HTTP 200"
            )),
            "{e}"
        );
    }

    #[test]
    fn a_collection_left_after_reset_is_named() {
        let e = emptied(
            &answer("GET", LIST, 200, r#"[{"id":"1","name":"e2e-payload"}]"#),
            None,
        )
        .unwrap_err();
        assert!(e.contains("e2e-payload"), "{e}");
    }

    #[test]
    fn an_empty_listing_and_a_zero_count_pass() {
        let ok = emptied(
            &answer("GET", LIST, 200, "[]"),
            Some(&answer("GET", "c", 200, "0")),
        )
        .unwrap();
        assert!(ok.contains("collections_count is 0"), "{ok}");
    }

    #[rstest::rstest]
    #[case::a_nonzero_count_fails("2", "collections_count says 2")]
    #[case::a_garbage_count_fails_naming_the_endpoint(
        "null",
        "counting collections (GET c) answered HTTP 200"
    )]
    fn the_collection_count_must_be_zero(#[case] body: &str, #[case] want: &str) {
        let e = emptied(
            &answer("GET", LIST, 200, "[]"),
            Some(&answer("GET", "c", 200, body)),
        )
        .unwrap_err();
        assert!(e.contains(want), "{e}");
    }

    #[test]
    fn a_garbage_listing_is_not_proof_that_data_is_gone() {
        let e = none_left(
            &answer("GET", LIST, 200, "not json"),
            &persistence_data(),
            "a pod restart",
        )
        .unwrap_err();
        assert!(e.starts_with("listing collections"), "{e}");
    }

    #[test]
    fn a_surviving_collection_without_persistence_is_named() {
        let e = none_left(
            &answer("GET", LIST, 200, r#"[{"id":"1","name":"e2e-persist-1"}]"#),
            &persistence_data(),
            "a pod restart",
        )
        .unwrap_err();
        assert!(e.contains("e2e-persist-1"), "{e}");
        none_left(
            &answer("GET", LIST, 200, r#"[{"id":"1","name":"other"}]"#),
            &persistence_data(),
            "a pod restart",
        )
        .unwrap();
    }
}
