//! A small REST client for the two Chroma API generations, recording every exchange so a
//! failed check can show exactly what was sent and what came back (credentials redacted).

use std::time::Duration;

use crate::ApiPrefix;
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
            s.push_str(&format!(
                "> [{} bytes] {}\n",
                self.request_bytes, self.request_body
            ));
        }
        s.push_str(&format!(
            "< {}\n",
            if self.status == 0 {
                "no HTTP response".to_string()
            } else {
                self.status.to_string()
            }
        ));
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
        self.response_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
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
        Credential {
            header: header.to_string(),
            value,
            label: label.into(),
        }
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
        crate::ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        Self::with_http(http, base, prefix, credential)
    }

    /// The API through a client the caller configured (its own CA roots, name resolution).
    pub fn with_http(
        http: reqwest::Client,
        base: &str,
        prefix: ApiPrefix,
        credential: Option<Credential>,
    ) -> Self {
        Api {
            http,
            base: base.trim_end_matches('/').to_string(),
            prefix,
            credential,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}{}", self.base, self.prefix.path(), path)
    }

    /// The collections endpoint of the default tenant/database.
    pub fn collections(&self) -> String {
        match self.prefix {
            ApiPrefix::V1 => self.url("/collections"),
            ApiPrefix::V2 => {
                self.url("/tenants/default_tenant/databases/default_database/collections")
            }
        }
    }

    /// A request with the default credential.
    pub async fn call(&self, method: Method, url: &str, body: Option<String>) -> Answer {
        let cred = self.credential.clone();
        self.send(method, url, cred.as_ref(), &[], body).await
    }

    /// A request with an explicit credential (or none) and extra headers.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        cred: Option<&Credential>,
        extra: &[(&str, &str)],
        body: Option<String>,
    ) -> Answer {
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
                req = req
                    .header("content-type", "application/json")
                    .body(b.clone());
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
                        k.starts_with("access-control-")
                            || k == "content-type"
                            || k == "www-authenticate"
                            || k == "vary"
                    })
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_string()))
                    .collect();
                let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                ex.response_body = shorten(&String::from_utf8_lossy(&body));
                Answer { ex, body }
            }
            Err(e) => {
                ex.response_body = format!("transport error: {e}");
                Answer {
                    ex,
                    body: Vec::new(),
                }
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
        self.call(Method::POST, &self.collections(), Some(body.to_string()))
            .await
    }

    pub async fn get_collection(&self, name: &str) -> Answer {
        self.call(Method::GET, &format!("{}/{name}", self.collections()), None)
            .await
    }

    pub async fn add(&self, id: &str, body: String) -> Answer {
        self.call(
            Method::POST,
            &format!("{}/{id}/add", self.collections()),
            Some(body),
        )
        .await
    }

    pub async fn get_records(&self, id: &str) -> Answer {
        let body = serde_json::json!({ "include": ["embeddings", "metadatas", "documents"] });
        self.call(
            Method::POST,
            &format!("{}/{id}/get", self.collections()),
            Some(body.to_string()),
        )
        .await
    }

    pub async fn count(&self, id: &str) -> Answer {
        self.call(
            Method::GET,
            &format!("{}/{id}/count", self.collections()),
            None,
        )
        .await
    }

    /// The number of collections (`collections_count`), which only the /api/v2 generation
    /// has; `None` on /api/v1.
    pub async fn count_collections(&self) -> Option<Answer> {
        match self.prefix {
            ApiPrefix::V1 => None,
            ApiPrefix::V2 => Some(
                self.call(
                    Method::GET,
                    &self.url(
                        "/tenants/default_tenant/databases/default_database/collections_count",
                    ),
                    None,
                )
                .await,
            ),
        }
    }

    pub async fn delete_collection(&self, name: &str) -> Answer {
        self.call(
            Method::DELETE,
            &format!("{}/{name}", self.collections()),
            None,
        )
        .await
    }

    pub async fn reset(&self) -> Answer {
        self.call(Method::POST, &self.url("/reset"), None).await
    }
}

/// A 2xx answer whose body is not what the version's API answers there. Carries the
/// endpoint so a garbage answer is never mistaken for an empty one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{endpoint} ({request}) answered HTTP {status}, but {problem}; body: {body}")]
pub struct BadAnswer {
    /// What the endpoint is for ("listing collections", "counting records", …).
    pub endpoint: String,
    /// Method and URL.
    pub request: String,
    pub status: u16,
    pub problem: String,
    pub body: String,
}

impl Answer {
    /// An error for this answer at `endpoint`, saying what is wrong with it.
    pub fn bad(&self, endpoint: &str, problem: impl Into<String>) -> BadAnswer {
        BadAnswer {
            endpoint: endpoint.to_string(),
            request: format!("{} {}", self.ex.method, self.ex.url),
            status: self.status(),
            problem: problem.into(),
            body: self.ex.response_body.clone(),
        }
    }

    /// `Ok` for a 2xx answer, else an error naming `endpoint` (the body is not looked at).
    pub fn require_2xx(&self, endpoint: &str) -> Result<(), BadAnswer> {
        if self.ex.ok() {
            Ok(())
        } else {
            Err(self.bad(endpoint, "a 2xx answer was expected"))
        }
    }

    /// The body as JSON when the answer is a 2xx; a non-2xx or a body that is not JSON is an
    /// error naming `endpoint`.
    pub fn json_2xx(&self, endpoint: &str) -> Result<serde_json::Value, BadAnswer> {
        self.require_2xx(endpoint)?;
        serde_json::from_slice(&self.body)
            .map_err(|e| self.bad(endpoint, format!("the body is not JSON ({e})")))
    }
}

/// A collection as a listing or a get-by-name returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionInfo {
    pub id: String,
    pub name: String,
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

fn collection_info(v: &serde_json::Value) -> Result<CollectionInfo, String> {
    let s = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("a collection without a string `{k}`: {v}"))
    };
    let metadata = match v.get("metadata") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Object(m)) => Some(m.clone()),
        Some(other) => {
            return Err(format!(
                "collection metadata is neither an object nor null: {other}"
            ));
        }
    };
    Ok(CollectionInfo {
        id: s("id")?,
        name: s("name")?,
        metadata,
    })
}

/// A listing: a JSON array of collections, each with a string id and name.
pub fn collection_list(a: &Answer) -> Result<Vec<CollectionInfo>, BadAnswer> {
    const WHAT: &str = "listing collections";
    let v = a.json_2xx(WHAT)?;
    let items = v
        .as_array()
        .ok_or_else(|| a.bad(WHAT, "the body is not a JSON array of collections"))?;
    items
        .iter()
        .map(collection_info)
        .collect::<Result<_, _>>()
        .map_err(|p| a.bad(WHAT, p))
}

/// The collection names of a listing.
pub fn collection_names(a: &Answer) -> Result<Vec<String>, BadAnswer> {
    Ok(collection_list(a)?.into_iter().map(|c| c.name).collect())
}

/// One collection (create or get by name): an object with a string id and name.
pub fn collection(a: &Answer, endpoint: &str) -> Result<CollectionInfo, BadAnswer> {
    let v = a.json_2xx(endpoint)?;
    collection_info(&v).map_err(|p| a.bad(endpoint, p))
}

/// A count (records of a collection, or collections of a database): a non-negative integer.
pub fn count(a: &Answer, endpoint: &str) -> Result<u64, BadAnswer> {
    let v = a.json_2xx(endpoint)?;
    v.as_u64()
        .ok_or_else(|| a.bad(endpoint, "the body is not a non-negative integer"))
}

/// The heartbeat: an object with a numeric `nanosecond heartbeat`.
pub fn heartbeat(a: &Answer) -> Result<u64, BadAnswer> {
    const WHAT: &str = "heartbeat";
    let v = a.json_2xx(WHAT)?;
    v.get("nanosecond heartbeat")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| a.bad(WHAT, "there is no numeric `nanosecond heartbeat` field"))
}

/// Answers as a server would send them, for tests of the parsers and the checks' logic: used
/// by this crate's tests and its dependants' (e2e's checks), hence not `cfg(test)`.
#[doc(hidden)]
pub mod fake {
    use super::{Answer, Exchange};

    pub fn answer(method: &str, url: &str, status: u16, body: &str) -> Answer {
        Answer {
            ex: Exchange {
                method: method.into(),
                url: url.into(),
                request_headers: Vec::new(),
                request_body: String::new(),
                request_bytes: 0,
                status,
                response_headers: Vec::new(),
                response_body: body.into(),
            },
            body: body.as_bytes().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::answer;
    use super::*;

    const LIST: &str =
        "http://h/api/v2/tenants/default_tenant/databases/default_database/collections";

    #[test]
    fn a_listing_gives_the_names() {
        let a = answer(
            "GET",
            LIST,
            200,
            r#"[{"id":"1","name":"a","metadata":null},{"id":"2","name":"b","metadata":{"k":1}}]"#,
        );
        assert_eq!(collection_names(&a).unwrap(), ["a", "b"]);
    }

    #[test]
    fn an_empty_listing_is_empty() {
        assert_eq!(
            collection_names(&answer("GET", LIST, 200, "[]")).unwrap(),
            Vec::<String>::new()
        );
    }

    #[rstest::rstest]
    #[case::html_is_not_a_listing("<html>ok</html>", "not JSON")]
    #[case::an_object_is_not_a_listing(r#"{"collections":[]}"#, "not a JSON array")]
    #[case::a_collection_needs_a_name(r#"[{"id":"1"}]"#, "string `name`")]
    #[case::an_empty_body_is_not_a_listing("", "not JSON")]
    fn a_garbage_listing_is_an_error_naming_the_endpoint(
        #[case] body: &str,
        #[case] problem: &str,
    ) {
        let e = collection_names(&answer("GET", LIST, 200, body))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "listing collections (GET {LIST}) answered HTTP 200"
            )) && e.contains(problem),
            "{e}"
        );
    }

    #[test]
    fn a_non_2xx_listing_is_an_error() {
        let e = collection_names(&answer("GET", LIST, 500, "[]"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("HTTP 500") && e.contains("a 2xx answer was expected"),
            "{e}"
        );
    }

    #[rstest::rstest]
    #[case::a_string_is_not_a_count(r#""3""#)]
    #[case::a_negative_number_is_not_a_count("-1")]
    #[case::a_fraction_is_not_a_count("1.5")]
    #[case::an_object_is_not_a_count(r#"{"count":3}"#)]
    fn a_bad_count_names_the_endpoint(#[case] body: &str) {
        let e = count(
            &answer("GET", "http://h/c/count", 200, body),
            "counting records",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("counting records (GET http://h/c/count)"),
            "{e}"
        );
    }

    #[test]
    fn a_count_is_read() {
        assert_eq!(
            count(&answer("GET", "u", 200, "7"), "counting records").unwrap(),
            7
        );
    }

    #[test]
    fn a_heartbeat_without_the_field_is_an_error() {
        let e = heartbeat(&answer(
            "GET",
            "http://h/api/v2/heartbeat",
            200,
            r#"{"ok":true}"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("heartbeat (GET http://h/api/v2/heartbeat)")
                && e.contains("nanosecond heartbeat"),
            "{e}"
        );
        assert_eq!(
            heartbeat(&answer(
                "GET",
                "u",
                200,
                r#"{"nanosecond heartbeat": 1732}"#
            ))
            .unwrap(),
            1732
        );
    }

    #[test]
    fn a_collection_answer_without_an_id_is_an_error() {
        let e = collection(
            &answer("POST", "u", 200, r#"{"name":"x"}"#),
            "creating collection x",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("creating collection x (POST u)") && e.contains("string `id`"),
            "{e}"
        );
    }
}
