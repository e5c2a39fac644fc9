//! `X-API-Key`: 401 without a key, 403 with a wrong one, through with a right one.

mod common;

use common::{TestServer, assert_error, read};
use pharox_core::InMemoryStorage;
use pharox_server::{ApiKeys, ServerConfig};
use reqwest::{Method, StatusCode};

async fn server(key: Option<&str>) -> TestServer {
    let keys = ApiKeys::from_list("first-key,second-key");
    TestServer::with(InMemoryStorage::new(), ServerConfig::new(keys), key).await
}

#[tokio::test]
async fn a_missing_key_is_unauthorized() {
    let s = server(None).await;
    for (method, path) in [
        (Method::GET, "/v1/pools/"),
        (Method::POST, "/v1/leases/"),
        (Method::GET, "/v1/leases/x"),
        (Method::GET, "/nowhere"),
    ] {
        let (status, body) = s.call(method, path, None).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

#[tokio::test]
async fn a_wrong_key_is_forbidden() {
    for wrong in ["first-ke", "first-keyy", "FIRST-KEY", "x"] {
        let s = server(Some(wrong)).await;
        let (status, body) = s.call(Method::GET, "/v1/pools/", None).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
        assert!(!body.to_string().contains("first-key"), "{body}");
    }
}

#[tokio::test]
async fn every_configured_key_is_accepted() {
    for key in ["first-key", "second-key"] {
        let s = server(Some(key)).await;
        let (status, body) = s.call(Method::GET, "/v1/pools/", None).await;
        assert_eq!((status, body), (StatusCode::OK, serde_json::json!([])));
    }
}

#[tokio::test]
async fn the_key_is_checked_before_the_body() {
    let s = server(Some("wrong")).await;
    let resp = s
        .req(Method::POST, "/v1/pools/")
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
}
