//! An in-process server on 127.0.0.1:0 and a client for it.
#![allow(dead_code)] // each test file uses part of it

pub mod store;

use pharox_core::{InMemoryStorage, Storage};
use pharox_server::{ApiKeys, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;

/// A running server; stops when dropped.
pub struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    key: Option<String>,
    _stop: oneshot::Sender<()>,
}

impl TestServer {
    /// A server over a fresh in-memory store, without keys.
    pub async fn start() -> Self {
        Self::with(
            InMemoryStorage::new(),
            ServerConfig::new(ApiKeys::none()),
            None,
        )
        .await
    }

    /// A server over `store` with `config`; requests send `key` if given.
    pub async fn with<S: Storage>(store: S, config: ServerConfig, key: Option<&str>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let app = pharox_server::router(store, config);
        tokio::spawn(pharox_server::serve(listener, app, async move {
            let _ = stopped.await;
        }));
        Self {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            key: key.map(str::to_owned),
            _stop: stop,
        }
    }

    /// A request to `path`, with the key.
    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(k) => r.header("X-API-Key", k),
            None => r,
        }
    }

    /// Sends `body` (JSON) or nothing; returns the status and the parsed body
    /// (`Value::Null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        read(r.send().await.unwrap()).await
    }

    /// Creates a pool through the API; returns its JSON.
    pub async fn pool(&self, name: &str) -> Value {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/pools/",
                Some(serde_json::json!({"name": name, "description": ""})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Adds a proxy to the pool with this UUID; returns its JSON.
    pub async fn proxy(&self, pool: &Value, body: Value) -> Value {
        let path = format!("/v1/pools/{}/proxies/", pool["id"].as_str().unwrap());
        let (status, body) = self.call(Method::POST, &path, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }
}

/// The status and JSON body of a response.
pub async fn read(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    (status, body)
}

/// Asserts an error answer: this status, this code, the documented shape.
pub fn assert_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    let e = &body["error"];
    assert_eq!(e["code"], code, "{body}");
    assert!(e["message"].is_string(), "{body}");
    assert_eq!(
        body["detail"], e["message"],
        "pharox-sdk reads detail: {body}"
    );
    assert!(
        e.get("field").is_some() && e.get("reason").is_some(),
        "{body}"
    );
}

/// Asserts a 422 `invalid_body` answer.
pub fn assert_invalid_body(status: StatusCode, body: &Value) {
    assert_error(
        status,
        body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
}

/// Whether `s` is a UUID in canonical form (what Python's `str(UUID(s))` gives back).
pub fn is_canonical_uuid(v: &Value) -> bool {
    v.as_str()
        .and_then(|s| {
            uuid::Uuid::try_parse(s)
                .ok()
                .map(|u| u.hyphenated().to_string() == s)
        })
        .unwrap_or(false)
}
