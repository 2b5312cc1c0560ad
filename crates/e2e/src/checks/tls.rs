//! The TLS checks. `tls`: the API answers HTTPS with a certificate for the Service's name from
//! the deployment's CA, and nothing else gets an answer — not plain HTTP, not a client that
//! trusts another CA, not a client that asked for another name. `tls-proxy` (1.x): nothing
//! reaches the server around its TLS proxy. `tls-rotation`: a renewed Secret is served from
//! the next connection on, with no restart.

use std::net::SocketAddr;
use std::time::Duration;

use super::Ctx;
use crate::backend::Backend;
use crate::tls::{Pki, TlsEndpoint, client_builder};

type Checked = Result<String, String>;

/// What a GET got: `Ok(status)` or `Err(the whole error chain)`.
async fn get(tls: Option<&TlsEndpoint>, url: &str) -> Result<u16, String> {
    let client = client_builder(tls)
        .map_err(|e| crate::text::chain(&e))?
        .timeout(Duration::from_secs(10))
        // A fresh connection per call: the handshake is what is being checked.
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| crate::text::chain(&e))?;
    match client.get(url).send().await {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) => {
            let mut chain = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                chain.push_str(&format!(": {s}"));
                src = s.source();
            }
            Err(chain)
        }
    }
}

fn with_host(url: &str, host: &str, addr: SocketAddr) -> String {
    let path = url.splitn(4, '/').nth(3).unwrap_or_default();
    format!("https://{host}:{}/{path}", addr.port())
}

/// A refusal must come from the TLS layer for the reason named, not from anything else.
fn refused_for(
    result: Result<u16, String>,
    what: &str,
    reason_words: &[&str],
) -> Result<String, String> {
    match result {
        Ok(status) => Err(format!(
            "{what}: the server answered HTTP {status}; it must be refused"
        )),
        Err(chain) if reason_words.iter().any(|w| chain.contains(w)) => Ok(chain),
        Err(chain) => Err(format!(
            "{what}: refused, but not for the certificate ({chain})"
        )),
    }
}

pub async fn tls<B: Backend>(ctx: &mut Ctx<'_, B>) -> Checked {
    ctx.expected
        .tls
        .as_ref()
        .ok_or("the spec promises no TLS here")?;
    let Some(t) = ctx.deployed.tls.clone() else {
        return Err(format!(
            "the spec says tls.enabled, but the deployment is reached over {} (no Service port with appProtocol https)",
            ctx.deployed.base_url
        ));
    };
    let mut done = Vec::new();

    let plain = format!("http://{}{}/heartbeat", t.addr, ctx.expected.api.path());
    match get(None, &plain).await {
        Ok(s) if (200..300).contains(&s) => {
            return Err(format!(
                "plain HTTP {plain} answered {s}: the API is reachable without TLS"
            ));
        }
        Ok(s) => done.push(format!("plain HTTP refused ({s})")),
        Err(_) => done.push("plain HTTP refused (no HTTP answer)".into()),
    }

    let hb = ctx.rec(ctx.api.heartbeat().await);
    if hb.status() != 200 {
        // The handshake's own reason (wrong name, unknown issuer, no TLS at all) is in the
        // error chain, which the exchange does not keep.
        let why = match get(Some(&t), &ctx.api.url("/heartbeat")).await {
            Ok(s) => format!("HTTP {s}"),
            Err(chain) => chain,
        };
        return Err(format!(
            "HTTPS heartbeat for {} trusting the deployment's CA: expected 200, got {} ({why})",
            t.server_name,
            hb.status()
        ));
    }
    chroma_api::client::heartbeat(&hb).map_err(|e| crate::text::chain(&e))?;
    done.push(format!(
        "HTTPS for {} with the deployment's CA answers",
        t.server_name
    ));

    let stranger =
        Pki::generate(std::slice::from_ref(&t.server_name)).map_err(|e| crate::text::chain(&e))?;
    let other_ca = TlsEndpoint {
        ca_pem: stranger.ca_pem,
        ..t.clone()
    };
    refused_for(
        get(Some(&other_ca), &ctx.api.url("/heartbeat")).await,
        "a client trusting another CA",
        &["UnknownIssuer", "unknown issuer", "certificate"],
    )?;
    done.push("a client trusting another CA refused".into());

    let wrong = "not-this-service.invalid";
    let wrong_name = TlsEndpoint {
        server_name: wrong.into(),
        ..t.clone()
    };
    refused_for(
        get(
            Some(&wrong_name),
            &with_host(&ctx.api.url("/heartbeat"), wrong, t.addr),
        )
        .await,
        "a client asking for another name",
        &["NotValidForName", "not valid for name", "certificate"],
    )?;
    done.push("a client asking for another name refused".into());

    Ok(done.join("; "))
}

/// `tls-proxy`: the server's own port, which the proxy forwards to on the pod's loopback,
/// takes no connection from outside the pod.
pub async fn proxy_only<B: Backend>(ctx: &mut Ctx<'_, B>) -> Checked {
    let spec = ctx
        .expected
        .tls
        .clone()
        .ok_or("the spec promises no TLS here")?;
    let server_port = spec
        .proxied_server_port
        .ok_or("the spec puts no proxy in front of this version's server")?;
    let t = ctx.deployed.tls.clone().ok_or_else(|| {
        format!(
            "the spec says tls.enabled, but the deployment is reached over {}",
            ctx.deployed.base_url
        )
    })?;
    let ip = match t.pod_ip {
        Some(ip) => ip,
        None => ctx
            .backend
            .server_pod_ip(ctx.deployed)
            .await
            .map_err(|e| format!("the server pod's address: {}", crate::text::chain(&e)))?,
    };
    let around = SocketAddr::from((ip, server_port));
    match tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(around),
    )
    .await
    {
        Ok(Ok(_)) => Err(format!(
            "the server's own port {around} accepts connections from outside the pod: it is reachable around the TLS proxy"
        )),
        Ok(Err(e)) => Ok(format!(
            "the server's port {server_port} refuses connections from outside the pod ({e}); the proxy's port {} answers HTTPS",
            t.addr.port()
        )),
        Err(_) => Ok(format!(
            "the server's port {server_port} takes no connection from outside the pod (no answer in 5s)"
        )),
    }
}

/// Why `tls-proxy` cannot be exercised here, if it cannot: the deployment gives no pod address
/// and the backend cannot reach the server's pod at its own.
pub fn proxy_only_unexercised<B: Backend>(
    backend: &B,
    deployed: &crate::backend::Deployed,
) -> Option<String> {
    match &deployed.tls {
        Some(t) if t.pod_ip.is_none() => backend
            .reaches_server_pod()
            .err()
            .map(|why| format!("{why}, so the server's port cannot be tried from outside the pod")),
        _ => None,
    }
}

/// Why `tls-rotation` cannot be exercised here, if it cannot: the backend cannot update a
/// Secret in place, or the certificate's Secret is not one the harness made (so there is no
/// CA of its own to renew from).
pub fn rotation_unexercised<B: Backend>(
    backend: &B,
    deployed: &crate::backend::Deployed,
) -> Option<String> {
    if let Err(reason) = backend.updates_secrets() {
        return Some(format!(
            "the {} backend cannot renew a Secret in place: {reason}",
            backend.name()
        ));
    }
    let t = deployed.tls.as_ref()?;
    if harness_secret(deployed, t).is_none() {
        return Some("the certificate's Secret is not one the harness made, so there is no CA to renew it from".into());
    }
    None
}

/// The pod's Secret holding the CA the harness made for this deployment, by name.
fn harness_secret<'d>(
    deployed: &'d crate::backend::Deployed,
    t: &TlsEndpoint,
) -> Option<(&'d String, &'d std::collections::BTreeMap<String, String>)> {
    deployed
        .secrets
        .iter()
        .find(|(_, d)| d.get("ca.crt") == Some(&t.ca_pem))
}

/// Replaces the certificate in the Secret's files with one from a new CA, asserts the new one
/// is served on the next connection (and the old CA no longer trusted), then puts the
/// original back and asserts that is served again.
pub async fn rotation<B: Backend>(ctx: &mut Ctx<'_, B>) -> Checked {
    let t = ctx.deployed.tls.clone().ok_or_else(|| {
        format!(
            "the spec says tls.enabled, but the deployment is reached over {}",
            ctx.deployed.base_url
        )
    })?;
    let t = &t;
    let (name, original) = harness_secret(ctx.deployed, t)
        .map(|(n, d)| (n.clone(), d.clone()))
        .ok_or("the certificate's Secret is not among the pod's Secrets")?;
    let renewed =
        Pki::generate(std::slice::from_ref(&t.server_name)).map_err(|e| crate::text::chain(&e))?;
    let mut data = original.clone();
    data.insert("tls.crt".into(), renewed.cert_pem.clone());
    data.insert("tls.key".into(), renewed.key_pem.clone());
    ctx.backend
        .update_secret(ctx.deployed, &name, &data)
        .await
        .map_err(|e| format!("updating Secret {name}: {}", crate::text::chain(&e)))?;
    let url = ctx.api.url("/heartbeat");
    let new_ca = TlsEndpoint {
        ca_pem: renewed.ca_pem.clone(),
        ..t.clone()
    };
    let wait = ctx.backend.secret_sync_time();
    let served = served_within(&new_ca, &url, wait).await;
    let old_refused = get(Some(t), &url).await.is_err();
    // Put the original back whatever happened: the deployment's other checks trust its CA.
    let restored = ctx
        .backend
        .update_secret(ctx.deployed, &name, &original)
        .await;
    let back = match &restored {
        Ok(()) => served_within(t, &url, wait).await,
        Err(_) => Ok(Duration::ZERO),
    };
    let took = served.map_err(|e| format!("after Secret {name} was renewed, the new certificate was not served within {wait:?} with no restart: {e}"))?;
    if !old_refused {
        return Err(format!(
            "after Secret {name} was renewed, the old certificate was still served"
        ));
    }
    restored.map_err(|e| format!("restoring Secret {name}: {}", crate::text::chain(&e)))?;
    let back = back.map_err(|e| format!("after Secret {name} was restored, its certificate was not served again within {wait:?}: {e}"))?;
    Ok(format!(
        "a renewed Secret {name} was served {:.1}s after the update, with no restart, and the original {:.1}s after it was put back",
        took.as_secs_f64(),
        back.as_secs_f64()
    ))
}

/// Polls until a client trusting `ca` gets a 200: how long it took, or the last failure.
async fn served_within(ca: &TlsEndpoint, url: &str, wait: Duration) -> Result<Duration, String> {
    let started = std::time::Instant::now();
    loop {
        match get(Some(ca), url).await {
            Ok(200) => return Ok(started.elapsed()),
            other if started.elapsed() > wait => return Err(format!("{other:?}")),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::backend::Deployed;

    fn deployed(pod_ip: Option<[u8; 4]>, ca_in_secret: bool) -> Deployed {
        let t = TlsEndpoint {
            server_name: "chroma-chromadb".into(),
            addr: ([127, 0, 0, 1], 8000).into(),
            ca_pem: "CA".into(),
            pod_ip: pod_ip.map(|ip| ip.into()),
        };
        let ca = if ca_in_secret {
            "CA"
        } else {
            "someone else's CA"
        };
        let secrets = BTreeMap::from([(
            "chromadb-tls".to_string(),
            BTreeMap::from([("ca.crt".to_string(), ca.to_string())]),
        )]);
        Deployed {
            id: "d".into(),
            base_url: "https://chroma-chromadb:8000".into(),
            adjustments: Vec::new(),
            secrets,
            tls: Some(t),
        }
    }

    /// A process backend that is only asked what it can do: it starts nothing.
    fn idle_process_backend() -> (tempfile::NamedTempFile, crate::process::ProcessBackend) {
        let uv = tempfile::NamedTempFile::new().unwrap();
        let venvs =
            crate::venv::VenvCache::new(uv.path(), uv.path().with_extension("venvs")).unwrap();
        let backend =
            crate::process::ProcessBackend::new(venvs, BTreeMap::new(), Default::default());
        (uv, backend)
    }

    #[test]
    fn the_proxy_bypass_is_unexercised_without_a_pod_address_the_backend_cannot_reach() {
        let (_uv, backend) = idle_process_backend();
        let why = proxy_only_unexercised(&backend, &deployed(None, true))
            .expect("no pod address, nothing to dial");
        assert!(why.contains("only through its Service"), "{why}");
        assert_eq!(
            proxy_only_unexercised(&backend, &deployed(Some([10, 0, 0, 2]), true)),
            None
        );
    }

    #[test]
    fn rotation_is_unexercised_when_the_ca_is_not_the_harnesss() {
        let (_uv, backend) = idle_process_backend();
        let why = rotation_unexercised(&backend, &deployed(None, false))
            .expect("a user's own CA cannot be renewed from");
        assert!(why.contains("not one the harness made"), "{why}");
        assert_eq!(rotation_unexercised(&backend, &deployed(None, true)), None);
    }
}
