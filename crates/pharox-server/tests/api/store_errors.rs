//! Every store error keeps its meaning on the wire: its status, its code,
//! `Retry-After` on 503, and nothing a client could mistake for bad input.

use crate::common;

use std::time::Duration;

use common::store::Hooked;
use common::{TestServer, assert_error};
use pharox_core::{Error, InMemoryStorage, LeaseId, ProxyPool};
use pharox_server::{ApiKeys, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Builds the error a failing store answers with.
type MakeError = fn() -> Error;

fn unavailable() -> Error {
    Error::Unavailable {
        source: "connection refused".into(),
    }
}
fn interrupted() -> Error {
    Error::Interrupted {
        source: "connection reset".into(),
    }
}
fn timeout() -> Error {
    Error::Timeout {
        operation: "acquire",
        after: Duration::from_millis(2500),
    }
}
fn backend() -> Error {
    Error::Backend {
        source: "ERR wrong number of arguments".into(),
    }
}
fn corrupt() -> Error {
    Error::Corrupt("a lease hash without its proxy".into())
}
fn unsupported() -> Error {
    Error::UnsupportedFilter("closure predicates cannot run inside Redis")
}
fn invalid() -> Error {
    Error::invalid("proxy.max_concurrency", "is below the 2 leases it holds")
}
fn pool_not_found() -> Error {
    Error::PoolNotFound("p".into())
}
fn proxy_not_found() -> Error {
    Error::ProxyNotFound {
        pool: "p".into(),
        proxy: "x".into(),
    }
}
fn lease_lost() -> Error {
    Error::LeaseLost {
        lease: LeaseId::random(),
    }
}

#[tokio::test]
async fn each_store_error_has_its_status_and_code() {
    let memory = InMemoryStorage::new();
    memory.add_pool(ProxyPool::new("p")).unwrap();
    let store = Hooked::new(memory);
    let s = TestServer::with(store.clone(), ServerConfig::new(ApiKeys::none()), None).await;
    let cases: [(MakeError, StatusCode, &str); 10] = [
        (
            unavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
        ),
        (
            interrupted,
            StatusCode::SERVICE_UNAVAILABLE,
            "store_interrupted",
        ),
        (timeout, StatusCode::SERVICE_UNAVAILABLE, "store_timeout"),
        (backend, StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        (corrupt, StatusCode::INTERNAL_SERVER_ERROR, "store_corrupt"),
        (unsupported, StatusCode::BAD_REQUEST, "unsupported_filter"),
        (invalid, StatusCode::BAD_REQUEST, "invalid_input"),
        (pool_not_found, StatusCode::NOT_FOUND, "pool_not_found"),
        (proxy_not_found, StatusCode::NOT_FOUND, "proxy_not_found"),
        (lease_lost, StatusCode::NOT_FOUND, "lease_not_found"),
    ];
    let calls = [
        (Method::POST, "/v1/pools/p/leases", Some(json!({}))),
        (Method::GET, "/v1/pools/p/stats", None),
        (Method::POST, "/v1/consumers", Some(json!({"name": "c"}))),
    ];
    for (make, want, code) in cases {
        *store.hooks.fail_with.lock() = Some(make);
        for (method, path, body) in calls.clone() {
            let resp = s.req(method, path);
            let resp = match &body {
                Some(b) => resp.json(b),
                None => resp,
            };
            let resp = resp.send().await.unwrap();
            let retry_after = resp.headers().get("retry-after").cloned();
            let (status, body) = common::read(resp).await;
            assert_error(status, &body, want, code);
            assert_eq!(
                retry_after.is_some(),
                want == StatusCode::SERVICE_UNAVAILABLE,
                "{code}: Retry-After {retry_after:?}"
            );
            let text = body.to_string();
            // Driver messages stay in the server's log.
            assert!(
                !text.contains("refused") && !text.contains("ERR wrong"),
                "{text}"
            );
            if code == "store_timeout" {
                assert_eq!(body["error"]["after_ms"], 2500, "{body}");
            } else {
                assert!(body["error"].get("after_ms").is_none(), "{body}");
            }
            if code == "invalid_input" {
                assert_eq!(body["error"]["field"], "proxy.max_concurrency");
            }
        }
    }
    *store.hooks.fail_with.lock() = None;
    let (status, _) = s.call(Method::GET, "/v1/pools/p/stats", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_failed_directory_refresh_is_a_503_that_applied_nothing() {
    let store = Hooked::new(InMemoryStorage::new());
    let s = TestServer::with(store.clone(), ServerConfig::new(ApiKeys::none()), None).await;
    // Even when listing pools timed out, the acquire it was for never ran.
    *store.hooks.fail_with.lock() = Some(timeout);
    let (status, body) = s
        .call(
            Method::POST,
            "/v1/leases/",
            Some(json!({"pool_id": uuid::Uuid::new_v4()})),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
    );
    *store.hooks.fail_with.lock() = Some(backend);
    let (status, body) = s
        .call(
            Method::GET,
            &format!("/v1/leases/{}", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::INTERNAL_SERVER_ERROR, "internal");
}
