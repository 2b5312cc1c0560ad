//! A small REST client for the two Chroma API generations, recording every exchange so a
//! failed check can show exactly what was sent and what came back (credentials redacted).

use std::time::Duration;

use render::ApiPrefix;
use reqwest::Method;
use serde::Serialize;

/// One request and its answer, as evidence.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    pub method: String,
    pub url: String,
    pub request_headers: Vec<(String, String)>,
    /// The body (shortened when long) and its full size.
    pub request_body: String,
    pub request_bytes: usize,
    /// 0 when no HTTP answer came (connection refused, timeout).
    pub status: u16,
    pub response_headers: Vec<(String, String)>,
    pub response_body: String,
}

impl Exchange {
    /// Human-readable for failure reports.
    pub fn render(&self) -> String {
        let mut s = format!("> {} {}\n", self.method, self.url);
        for (k, v) in &self.request_headers {
            s.push_str(&format!("> {k}: {v}\n"));
        }
        if self.request_bytes > 0 {
            s.push_str(&format!("> [{} bytes] {}\n", self.request_bytes, self.request_body));
        }
        s.push_str(&format!("< {}\n", if self.status == 0 { "no HTTP response".to_string() } else { self.status.to_string() }));
        for (k, v) in &self.response_headers {
            s.push_str(&format!("< {k}: {v}\n"));
        }
        s.push_str(&format!("< {}\n", self.response_body));
        s
    }

    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.response_headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// How a request authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub header: String,
    pub value: String,
    /// Shown instead of the value in evidence.
    pub label: String,
}

impl Credential {
    pub fn new(header: &str, value: String, label: impl Into<String>) -> Self {
        Credential { header: header.to_string(), value, label: label.into() }
    }
}

/// The API at one base URL, in one generation.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    pub base: String,
    pub prefix: ApiPrefix,
    /// Sent with every request unless a call says otherwise.
    pub credential: Option<Credential>,
}

/// What a call returned: the exchange for evidence plus the full body for comparisons.
#[derive(Debug, Clone)]
pub struct Answer {
    pub ex: Exchange,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
    pub fn status(&self) -> u16 {
        self.ex.status
    }
}

const SHOWN: usize = 400;

fn shorten(s: &str) -> String {
    if s.len() <= SHOWN {
        return s.to_string();
    }
    let mut end = SHOWN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

impl Api {
    pub fn new(base: &str, prefix: ApiPrefix, credential: Option<Credential>) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap_or_default();
        Api { http, base: base.trim_end_matches('/').to_string(), prefix, credential }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}{}", self.base, self.prefix.path(), path)
    }

    /// The collections endpoint of the default tenant/database.
    pub fn collections(&self) -> String {
        match self.prefix {
            ApiPrefix::V1 => self.url("/collections"),
            ApiPrefix::V2 => self.url("/tenants/default_tenant/databases/default_database/collections"),
        }
    }

    /// A request with the default credential.
    pub async fn call(&self, method: Method, url: &str, body: Option<String>) -> Answer {
        let cred = self.credential.clone();
        self.send(method, url, cred.as_ref(), &[], body).await
    }

    /// A request with an explicit credential (or none) and extra headers.
    pub async fn send(&self, method: Method, url: &str, cred: Option<&Credential>, extra: &[(&str, &str)], body: Option<String>) -> Answer {
        let mut req = self.http.request(method.clone(), url);
        let mut shown = Vec::new();
        if let Some(c) = cred {
            req = req.header(&c.header, &c.value);
            shown.push((c.header.clone(), c.label.clone()));
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
            shown.push((k.to_string(), v.to_string()));
        }
        let (request_body, request_bytes) = match &body {
            Some(b) => {
                req = req.header("content-type", "application/json").body(b.clone());
                shown.push(("content-type".into(), "application/json".into()));
                (shorten(b), b.len())
            }
            None => (String::new(), 0),
        };
        let mut ex = Exchange {
            method: method.to_string(),
            url: url.to_string(),
            request_headers: shown,
            request_body,
            request_bytes,
            status: 0,
            response_headers: Vec::new(),
            response_body: String::new(),
        };
        match req.send().await {
            Ok(resp) => {
                ex.status = resp.status().as_u16();
                ex.response_headers = resp
                    .headers()
                    .iter()
                    .filter(|(k, _)| {
                        let k = k.as_str();
                        k.starts_with("access-control-") || k == "content-type" || k == "www-authenticate" || k == "vary"
                    })
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_string()))
                    .collect();
                let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                ex.response_body = shorten(&String::from_utf8_lossy(&body));
                Answer { ex, body }
            }
            Err(e) => {
                ex.response_body = format!("transport error: {e}");
                Answer { ex, body: Vec::new() }
            }
        }
    }

    pub async fn heartbeat(&self) -> Answer {
        self.call(Method::GET, &self.url("/heartbeat"), None).await
    }

    pub async fn list_collections(&self) -> Answer {
        self.call(Method::GET, &self.collections(), None).await
    }

    pub async fn create_collection(&self, name: &str, metadata: serde_json::Value) -> Answer {
        let body = serde_json::json!({ "name": name, "metadata": metadata });
        self.call(Method::POST, &self.collections(), Some(body.to_string())).await
    }

    pub async fn get_collection(&self, name: &str) -> Answer {
        self.call(Method::GET, &format!("{}/{name}", self.collections()), None).await
    }

    pub async fn add(&self, id: &str, body: String) -> Answer {
        self.call(Method::POST, &format!("{}/{id}/add", self.collections()), Some(body)).await
    }

    pub async fn get_records(&self, id: &str) -> Answer {
        let body = serde_json::json!({ "include": ["embeddings", "metadatas", "documents"] });
        self.call(Method::POST, &format!("{}/{id}/get", self.collections()), Some(body.to_string())).await
    }

    pub async fn count(&self, id: &str) -> Answer {
        self.call(Method::GET, &format!("{}/{id}/count", self.collections()), None).await
    }

    pub async fn reset(&self) -> Answer {
        self.call(Method::POST, &self.url("/reset"), None).await
    }
}

/// The collection names a list answer contains.
pub fn names(list: &Answer) -> Vec<String> {
    list.json()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c.get("name").and_then(|n| n.as_str()).map(str::to_string))
        .collect()
}
