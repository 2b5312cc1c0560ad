//! A Chroma server of any era, through the shared era-aware client: detects the API generation
//! and version from the server itself, and speaks each era's paths and auth.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use chroma_api::client::{Answer, Api, Credential};
use chroma_api::{ApiPrefix, ChromaVersion};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::model::Record;

/// Attempts of one read before its failure is final (5xx or no answer).
const GET_TRIES: u32 = 5;

/// Which header carries a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TokenHeader {
    /// `Authorization: Bearer <token>`
    Authorization,
    /// `X-Chroma-Token: <token>`
    XChromaToken,
}

/// How to reach and authenticate to a server. Secrets come from the environment only.
#[derive(Clone)]
pub struct Connect {
    pub url: String,
    pub token: Option<String>,
    pub token_header: TokenHeader,
    pub basic: Option<(String, String)>,
    pub tenant: String,
    pub database: String,
    pub wait_ready: Duration,
    /// PEM bundle of the CA(s) an https server's certificate must chain to, trusted instead
    /// of the system's roots (as `curl --cacert` does); `None` uses the system's roots.
    pub cacert: Option<PathBuf>,
}

impl std::fmt::Debug for Connect {
    // Never print a secret, even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_header", &self.token_header)
            .field("basic_user", &self.basic.as_ref().map(|(u, _)| u))
            .field("tenant", &self.tenant)
            .field("database", &self.database)
            .field("cacert", &self.cacert)
            .finish()
    }
}

impl Connect {
    /// The HTTP client every call goes through: the CA bundle, when given, is read and checked
    /// here, before the server is contacted, so a missing or foreign file is named at once.
    fn http_client(&self) -> Result<reqwest::Client> {
        chroma_api::ensure_crypto_provider();
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(60));
        if let Some(path) = &self.cacert {
            let what = format!(
                "the CA bundle {} (--cacert / CHROMA_BACKUP_CACERT)",
                path.display()
            );
            let pem = std::fs::read(path).map_err(crate::error::io(format!("reading {what}")))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::Usage(format!("{what} is not a PEM certificate bundle: {e}"))
            })?;
            if certs.is_empty() {
                return Err(Error::Usage(format!(
                    "{what} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                )));
            }
            b = b.tls_certs_only(certs);
        }
        b.build()
            .map_err(|e| Error::Usage(format!("cannot set up the HTTP client: {e}")))
    }

    fn credential(&self) -> Option<Credential> {
        if let Some(t) = &self.token {
            return Some(match self.token_header {
                TokenHeader::Authorization => {
                    Credential::new("Authorization", format!("Bearer {t}"), "Bearer <token>")
                }
                TokenHeader::XChromaToken => {
                    Credential::new("X-Chroma-Token", t.clone(), "<token>")
                }
            });
        }
        self.basic.as_ref().map(|(u, p)| {
            let enc = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            Credential::new(
                "Authorization",
                format!("Basic {enc}"),
                format!("Basic <{u}:password>"),
            )
        })
    }
}

/// A server whose era is known.
#[derive(Debug, Clone)]
pub struct Server {
    pub api: Api,
    /// What the server reports; every 1.x answers "1.0.0" (docs/chroma-eras.md#api-surface).
    pub version: ChromaVersion,
    pub tenant: String,
    pub database: String,
}

/// One page of a collection's records, as the server answered it.
#[derive(Debug, Deserialize)]
struct GetResult {
    ids: Vec<String>,
    #[serde(default)]
    embeddings: Option<Vec<Option<Vec<f32>>>>,
    #[serde(default)]
    documents: Option<Vec<Option<String>>>,
    #[serde(default)]
    metadatas: Option<Vec<Option<Map<String, Value>>>>,
    #[serde(default)]
    uris: Option<Vec<Option<String>>>,
}

/// A collection as listed.
#[derive(Debug, Clone)]
pub struct Collection {
    pub id: String,
    pub name: String,
    pub metadata: Option<Map<String, Value>>,
    /// `configuration_json` where the era has one.
    pub configuration: Option<Value>,
    /// 1.x's index schema (1.3+), kept for reference.
    pub schema: Option<Value>,
}

fn collection_of(v: &Value) -> Option<Collection> {
    Some(Collection {
        id: v.get("id")?.as_str()?.to_string(),
        name: v.get("name")?.as_str()?.to_string(),
        metadata: v.get("metadata").and_then(Value::as_object).cloned(),
        configuration: v
            .get("configuration_json")
            .filter(|c| !c.is_null())
            .cloned(),
        schema: v.get("schema").filter(|c| !c.is_null()).cloned(),
    })
}

impl Server {
    /// Connects, waiting up to `wait_ready` for a heartbeat, and learns the era from the API.
    pub async fn connect(c: &Connect) -> Result<Server> {
        let base = c.url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Usage(format!(
                "--url `{}` is not an http:// or https:// URL (e.g. http://chromadb:8000)",
                c.url
            )));
        }
        let cred = c.credential();
        let http = c.http_client()?;
        let v2 = Api::with_http(http.clone(), &base, ApiPrefix::V2, cred.clone());
        let v1 = Api::with_http(http, &base, ApiPrefix::V1, cred);
        let deadline = Instant::now() + c.wait_ready;
        let mut delay = Duration::from_millis(200);
        let (api, version) = loop {
            // The version endpoint is open on every era, with or without auth.
            let a2 = v2.call(Method::GET, &v2.url("/version"), None).await;
            let found = if a2.ex.ok() {
                Some((v2.clone(), a2.clone()))
            } else if a2.status() != 0 {
                let a1 = v1.call(Method::GET, &v1.url("/version"), None).await;
                a1.ex.ok().then_some((v1.clone(), a1))
            } else {
                None
            };
            if let Some((api, a)) = found {
                let text = a.json().and_then(|v| v.as_str().map(str::to_string));
                let version = text
                    .as_deref()
                    .and_then(|t| t.parse::<ChromaVersion>().ok())
                    .ok_or_else(|| Error::NotChroma {
                        url: base.clone(),
                        detail: format!("{} answered {}", a.ex.url, a.ex.response_body),
                    })?;
                break (api, version);
            }
            if Instant::now() >= deadline {
                return Err(if a2.status() == 0 {
                    Error::Unreachable {
                        url: base.clone(),
                        detail: a2.ex.response_body.clone(),
                    }
                } else {
                    Error::NotChroma {
                        url: base.clone(),
                        detail: format!(
                            "GET {} answered HTTP {}: {}",
                            a2.ex.url,
                            a2.status(),
                            a2.ex.response_body
                        ),
                    }
                });
            }
            tracing::info!(url = %base, "waiting for the server to answer");
            tokio::time::sleep(delay.min(deadline.saturating_duration_since(Instant::now()))).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        };
        // 0.5.16–0.6.3 serve both; their v1 listing is broken on 0.6.3, so v2 wins when present.
        let api = if version >= chroma_api::version::API_V2_FLOOR {
            v2
        } else {
            api
        };
        tracing::info!(url = %base, %version, api = api.prefix.path(), "connected");
        Ok(Server {
            api,
            version,
            tenant: c.tenant.clone(),
            database: c.database.clone(),
        })
    }

    pub fn is_rust(&self) -> bool {
        self.version.is_rust_server()
    }

    pub fn url(&self) -> &str {
        &self.api.base
    }

    /// Shown in reports: the server reports "1.0.0" for every 1.x release.
    pub fn era(&self) -> String {
        if self.is_rust() {
            "1.x (reports 1.0.0)".to_string()
        } else {
            self.version.to_string()
        }
    }

    fn collections_url(&self) -> String {
        match self.api.prefix {
            ApiPrefix::V1 => self.api.url("/collections"),
            ApiPrefix::V2 => self.api.url(&format!(
                "/tenants/{}/databases/{}/collections",
                self.tenant, self.database
            )),
        }
    }

    /// Fails on a non-2xx, naming auth failures as such.
    fn check(&self, a: &Answer, what: &str) -> Result<()> {
        match a.status() {
            200..=299 => Ok(()),
            0 => Err(Error::Unreachable {
                url: self.api.base.clone(),
                detail: a.ex.response_body.clone(),
            }),
            401 | 403 => Err(Error::Unauthorised {
                url: self.api.base.clone(),
                status: a.status(),
                request: format!("{} {}", a.ex.method, a.ex.url),
            }),
            _ => Err(a.bad(what, "a 2xx answer was expected").into()),
        }
    }

    async fn json(
        &self,
        method: Method,
        url: &str,
        body: Option<String>,
        what: &str,
    ) -> Result<Value> {
        let a = self.api.call(method, url, body).await;
        self.check(&a, what)?;
        serde_json::from_slice(&a.body)
            .map_err(|e| a.bad(what, format!("the body is not JSON ({e})")).into())
    }

    pub async fn list_collections(&self) -> Result<Vec<Collection>> {
        const WHAT: &str = "listing collections";
        let v = self
            .json(Method::GET, &self.collections_url(), None, WHAT)
            .await?;
        let items = v.as_array().ok_or_else(|| Error::NotChroma {
            url: self.api.base.clone(),
            detail: format!("{WHAT} did not answer a JSON array: {v}"),
        })?;
        items
            .iter()
            .map(|c| {
                collection_of(c).ok_or_else(|| Error::NotChroma {
                    url: self.api.base.clone(),
                    detail: format!("{WHAT}: a collection without a string id and name: {c}"),
                })
            })
            .collect()
    }

    pub async fn count(&self, c: &Collection) -> Result<u64> {
        let what = format!("counting records of {}", c.name);
        let v = self
            .json(
                Method::GET,
                &format!("{}/{}/count", self.collections_url(), c.id),
                None,
                &what,
            )
            .await?;
        v.as_u64().ok_or_else(|| Error::NotChroma {
            url: self.api.base.clone(),
            detail: format!("{what}: not a count: {v}"),
        })
    }

    /// Whether the era has record uris (0.4.3 and 0.4.8 do not, 0.4.24 does). Learned from the
    /// API: a get on a collection that does not exist is validated before it is looked up, so
    /// an era without uris answers 422 naming `uris` in `include`.
    pub async fn has_uris(&self) -> Result<bool> {
        let body = json!({"limit": 1, "offset": 0, "include": ["uris"]}).to_string();
        let url = format!(
            "{}/00000000-0000-0000-0000-000000000000/get",
            self.collections_url()
        );
        let a = self.api.call(Method::POST, &url, Some(body)).await;
        match a.status() {
            0 | 401 | 403 => self.check(&a, "probing for uris").map(|()| true),
            422 => Ok(!String::from_utf8_lossy(&a.body).contains("uris")),
            _ => Ok(true),
        }
    }

    /// Records `offset..offset+limit` in the server's order, or the records with `ids`.
    pub async fn get(&self, c: &Collection, page: Page<'_>, uris: bool) -> Result<Vec<Record>> {
        let mut include = vec!["embeddings", "documents", "metadatas"];
        if uris {
            include.push("uris");
        }
        let body = match page {
            Page::Range { offset, limit } => {
                json!({"limit": limit, "offset": offset, "include": include})
            }
            Page::Ids(ids) => json!({"ids": ids, "include": include}),
            Page::IdsOnly { offset, limit } => {
                json!({"limit": limit, "offset": offset, "include": []})
            }
        };
        let what = format!("reading records of {}", c.name);
        let url = format!("{}/{}/get", self.collections_url(), c.id);
        let body = body.to_string();
        // A read is safe to repeat. 0.6.3 answers 500 to a get that races a delete
        // (docs/chroma-eras.md#backup-and-restore); a later try reads the collection as it is then.
        let mut delay = Duration::from_millis(50);
        let mut tries = 1;
        let a = loop {
            let a = self.api.call(Method::POST, &url, Some(body.clone())).await;
            if !(a.status() >= 500 || a.status() == 0) || tries == GET_TRIES {
                break a;
            }
            tracing::warn!(collection = %c.name, status = a.status(), body = %a.ex.response_body, try_ = tries, "a read failed; trying again");
            tokio::time::sleep(delay).await;
            delay *= 2;
            tries += 1;
        };
        self.check(&a, &what)?;
        let r: GetResult = serde_json::from_slice(&a.body)
            .map_err(|e| Error::from(a.bad(&what, format!("not a get result ({e})"))))?;
        let n = r.ids.len();
        let col = |len: Option<usize>, field: &str| -> Result<()> {
            match len {
                Some(l) if l != n => Err(a
                    .bad(&what, format!("{field} has {l} entries for {n} ids"))
                    .into()),
                _ => Ok(()),
            }
        };
        col(r.embeddings.as_ref().map(Vec::len), "embeddings")?;
        col(r.documents.as_ref().map(Vec::len), "documents")?;
        col(r.metadatas.as_ref().map(Vec::len), "metadatas")?;
        col(r.uris.as_ref().map(Vec::len), "uris")?;
        let mut emb = r.embeddings.map(Vec::into_iter);
        let mut docs = r.documents.map(Vec::into_iter);
        let mut metas = r.metadatas.map(Vec::into_iter);
        let mut uris = r.uris.map(Vec::into_iter);
        Ok(r.ids
            .into_iter()
            .map(|id| Record {
                id,
                embedding: emb.as_mut().and_then(Iterator::next).flatten(),
                document: docs.as_mut().and_then(Iterator::next).flatten(),
                metadata: metas.as_mut().and_then(Iterator::next).flatten(),
                uri: uris.as_mut().and_then(Iterator::next).flatten(),
            })
            .collect())
    }

    /// The largest number of records one add may carry, where the era says (pre-flight checks).
    pub async fn max_batch_size(&self) -> Option<usize> {
        let a = self
            .api
            .call(Method::GET, &self.api.url("/pre-flight-checks"), None)
            .await;
        a.ex.ok()
            .then(|| a.json())
            .flatten()
            .and_then(|v| v.get("max_batch_size").and_then(Value::as_u64))
            .map(|n| n as usize)
    }

    pub async fn create_collection(
        &self,
        name: &str,
        metadata: Option<&Map<String, Value>>,
        configuration: Option<&Value>,
        get_or_create: bool,
    ) -> Result<Collection> {
        let mut body = json!({"name": name, "get_or_create": get_or_create});
        if let Some(m) = metadata {
            body["metadata"] = Value::Object(m.clone());
        }
        if let Some(c) = configuration {
            body["configuration"] = c.clone();
        }
        let what = format!("creating collection {name}");
        let v = self
            .json(
                Method::POST,
                &self.collections_url(),
                Some(body.to_string()),
                &what,
            )
            .await?;
        collection_of(&v).ok_or_else(|| Error::NotChroma {
            url: self.api.base.clone(),
            detail: format!("{what}: answered {v}"),
        })
    }

    pub async fn delete_collection(&self, name: &str) -> Result<()> {
        let a = self
            .api
            .call(
                Method::DELETE,
                &format!("{}/{name}", self.collections_url()),
                None,
            )
            .await;
        self.check(&a, &format!("deleting collection {name}"))
    }

    /// Sends one add (or upsert) body; `Ok(false)` when the server says it is too large (413).
    pub async fn add(&self, c: &Collection, body: String, upsert: bool) -> Result<bool> {
        let verb = if upsert { "upsert" } else { "add" };
        let a = self
            .api
            .call(
                Method::POST,
                &format!("{}/{}/{verb}", self.collections_url(), c.id),
                Some(body),
            )
            .await;
        if a.status() == 413 {
            return Ok(false);
        }
        self.check(&a, &format!("writing records into {}", c.name))
            .map(|()| true)
    }
}

/// Which records a `get` asks for.
#[derive(Debug, Clone, Copy)]
pub enum Page<'a> {
    Range { offset: usize, limit: usize },
    Ids(&'a [String]),
    IdsOnly { offset: usize, limit: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(cacert: Option<PathBuf>) -> Connect {
        Connect {
            url: "https://chroma.example:8000".into(),
            token: None,
            token_header: TokenHeader::Authorization,
            basic: None,
            tenant: "t".into(),
            database: "d".into(),
            wait_ready: Duration::ZERO,
            cacert,
        }
    }

    #[test]
    fn a_missing_ca_bundle_is_named_before_any_call() {
        let err = connect(Some("/nonexistent/ca.crt".into()))
            .http_client()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/ca.crt") && err.contains("CHROMA_BACKUP_CACERT"),
            "{err}"
        );
    }

    #[test]
    fn a_file_without_a_certificate_is_refused_as_usage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.crt");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = connect(Some(path)).http_client().unwrap_err();
        assert!(
            matches!(err, Error::Usage(_)) && err.to_string().contains("no PEM certificate"),
            "{err}"
        );
    }

    #[test]
    fn no_ca_bundle_uses_the_system_roots() {
        connect(None)
            .http_client()
            .expect("a client with the system's roots");
    }
}
