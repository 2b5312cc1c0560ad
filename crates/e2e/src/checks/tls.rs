//! Check `tls`: the API answers HTTPS with a certificate for the Service's name from the
//! deployment's CA, and nothing else gets an answer — not plain HTTP, not a client that
//! trusts another CA, not a client that asked for another name, and (1.x) not a client that
//! goes around the proxy to the server's own port. Where the proxy reads the certificate per
//! handshake, a renewed Secret is served with no restart.

use std::net::SocketAddr;
use std::time::Duration;

use super::Ctx;
use crate::backend::{Backend, BackendError};
use crate::tls::{Pki, TlsEndpoint, client_builder};

type Checked = Result<String, String>;

/// What a GET got: `Ok(status)` or `Err(the whole error chain)`.
async fn get(tls: Option<&TlsEndpoint>, url: &str) -> Result<u16, String> {
    let client = client_builder(tls)
        .map_err(|e| e.to_string())?
        .timeout(Duration::from_secs(10))
        // A fresh connection per call: the handshake is what is being checked.
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| e.to_string())?;
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
fn refused_for(result: Result<u16, String>, what: &str, reason_words: &[&str]) -> Result<String, String> {
    match result {
        Ok(status) => Err(format!("{what}: the server answered HTTP {status}; it must be refused")),
        Err(chain) if reason_words.iter().any(|w| chain.contains(w)) => Ok(chain),
        Err(chain) => Err(format!("{what}: refused, but not for the certificate ({chain})")),
    }
}

pub async fn tls<B: Backend>(ctx: &mut Ctx<'_, B>) -> Checked {
    let spec = ctx.expected.tls.clone().ok_or("the spec promises no TLS here")?;
    let Some(t) = ctx.deployed.tls.clone() else {
        return Err(format!("the spec says tls.enabled, but the deployment is reached over {} (no Service port with appProtocol https)", ctx.deployed.base_url));
    };
    let mut done = Vec::new();

    let plain = format!("http://{}{}/heartbeat", t.addr, ctx.expected.api.path());
    match get(None, &plain).await {
        Ok(s) if (200..300).contains(&s) => return Err(format!("plain HTTP {plain} answered {s}: the API is reachable without TLS")),
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
        return Err(format!("HTTPS heartbeat for {} trusting the deployment's CA: expected 200, got {} ({why})", t.server_name, hb.status()));
    }
    super::client::heartbeat(&hb).map_err(|e| e.to_string())?;
    done.push(format!("HTTPS for {} with the deployment's CA answers", t.server_name));

    let stranger = Pki::generate(std::slice::from_ref(&t.server_name)).map_err(|e| e.to_string())?;
    let other_ca = TlsEndpoint { ca_pem: stranger.ca_pem, ..t.clone() };
    refused_for(get(Some(&other_ca), &ctx.api.url("/heartbeat")).await, "a client trusting another CA", &["UnknownIssuer", "unknown issuer", "certificate"])?;
    done.push("a client trusting another CA refused".into());

    let wrong = "not-this-service.invalid";
    let wrong_name = TlsEndpoint { server_name: wrong.into(), ..t.clone() };
    refused_for(get(Some(&wrong_name), &with_host(&ctx.api.url("/heartbeat"), wrong, t.addr)).await, "a client asking for another name", &["NotValidForName", "not valid for name", "certificate"])?;
    done.push("a client asking for another name refused".into());

    if let Some(server_port) = spec.proxied_server_port {
        match t.pod_ip {
            Some(ip) => {
                let around = SocketAddr::from((ip, server_port));
                match tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(around)).await {
                    Ok(Ok(_)) => return Err(format!("the server's own port {around} accepts connections from outside the pod: it is reachable around the TLS proxy")),
                    _ => done.push(format!("the server's port {server_port} is closed outside the pod")),
                }
            }
            None => done.push(format!("the server's port {server_port} not probed: the backend gives no pod address")),
        }
        done.push(rotation(ctx, &t).await?);
    }
    Ok(done.join("; "))
}

/// Replaces the certificate in the Secret's files with one from a new CA, asserts the new one
/// is served on the next connection (and the old CA no longer trusted), then puts the
/// original back and asserts that is served again.
async fn rotation<B: Backend>(ctx: &mut Ctx<'_, B>, t: &TlsEndpoint) -> Result<String, String> {
    let secret = ctx.deployed.secrets.iter().find(|(_, d)| d.get("ca.crt") == Some(&t.ca_pem)).map(|(n, d)| (n.clone(), d.clone()));
    let Some((name, original)) = secret else {
        return Ok("rotation not exercised: the CA's Secret is not one the harness made".into());
    };
    let renewed = Pki::generate(std::slice::from_ref(&t.server_name)).map_err(|e| e.to_string())?;
    let mut data = original.clone();
    data.insert("tls.crt".into(), renewed.cert_pem.clone());
    data.insert("tls.key".into(), renewed.key_pem.clone());
    match ctx.backend.update_secret(ctx.deployed, &name, &data).await {
        Ok(()) => {}
        Err(BackendError::Unsupported { reason, .. }) => return Ok(format!("rotation not exercised: {reason}")),
        Err(e) => return Err(format!("updating Secret {name}: {e}")),
    }
    let url = ctx.api.url("/heartbeat");
    let new_ca = TlsEndpoint { ca_pem: renewed.ca_pem.clone(), ..t.clone() };
    let deadline = std::time::Instant::now() + ctx.backend.secret_sync_time();
    let served = loop {
        match get(Some(&new_ca), &url).await {
            Ok(200) => break Ok(()),
            other if std::time::Instant::now() > deadline => break Err(format!("{other:?}")),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    let old_refused = get(Some(t), &url).await.is_err();
    let restored = ctx.backend.update_secret(ctx.deployed, &name, &original).await;
    served.map_err(|e| format!("after Secret {name} was renewed, the new certificate was not served without a restart: {e}"))?;
    if !old_refused {
        return Err(format!("after Secret {name} was renewed, the old certificate was still served"));
    }
    restored.map_err(|e| format!("restoring Secret {name}: {e}"))?;
    let back = get(Some(t), &url).await;
    if back != Ok(200) {
        return Err(format!("after Secret {name} was restored, its certificate was not served again: {back:?}"));
    }
    Ok(format!("a renewed Secret {name} was served from the next connection on, with no restart"))
}
