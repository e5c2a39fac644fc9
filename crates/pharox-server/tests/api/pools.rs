//! `/v1/pools/`: the shapes pharox-sdk parses and each error status.

use crate::common;

use common::{TestServer, assert_error, is_canonical_uuid};
use pharox_core::{InMemoryStorage, PoolId, ProxyPool};
use pharox_server::{ApiKeys, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn created_pool_has_a_uuid_name_and_description() {
    let s = TestServer::start().await;
    let (status, body) = s
        .call(
            Method::POST,
            "/v1/pools/",
            Some(json!({"name": "latam", "description": "AR+BR"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(is_canonical_uuid(&body["id"]), "{body}");
    assert_eq!(body["id"], PoolId::from("latam").uuid().to_string());
    assert_eq!(
        (&body["name"], &body["description"], &body["key"]),
        (&json!("latam"), &json!("AR+BR"), &json!("latam"))
    );
}

#[tokio::test]
async fn pools_are_listed_and_read_by_uuid_or_key() {
    let s = TestServer::start().await;
    let a = s.pool("alpha").await;
    let b = s.pool("beta").await;
    let (status, list) = s.call(Method::GET, "/v1/pools/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([a, b]));
    let (_, no_slash) = s.call(Method::GET, "/v1/pools", None).await;
    assert_eq!(no_slash, list);
    for path in [
        format!("/v1/pools/{}", a["id"].as_str().unwrap()),
        "/v1/pools/alpha".to_owned(),
    ] {
        let (status, got) = s.call(Method::GET, &path, None).await;
        assert_eq!((status, &got), (StatusCode::OK, &a), "{path}");
    }
}

#[tokio::test]
async fn pools_made_outside_the_api_are_found_by_their_uuid() {
    let store = InMemoryStorage::new();
    store
        .add_pool(ProxyPool::new("rust-made").with_description("seeded"))
        .unwrap();
    let s = TestServer::with(store, ServerConfig::new(ApiKeys::none()), None).await;
    let uuid = PoolId::from("rust-made").uuid();
    let (status, got) = s
        .call(Method::GET, &format!("/v1/pools/{uuid}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["name"], "rust-made");
}

#[tokio::test]
async fn a_second_pool_with_the_same_name_is_a_conflict() {
    let s = TestServer::start().await;
    s.pool("dup").await;
    let (status, body) = s
        .call(Method::POST, "/v1/pools/", Some(json!({"name": "dup"})))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "pool_exists");
}

#[tokio::test]
async fn a_bad_pool_name_is_invalid_input_on_its_field() {
    let s = TestServer::start().await;
    for name in [String::new(), "x".repeat(129), "tab\there".to_owned()] {
        let (status, body) = s
            .call(Method::POST, "/v1/pools/", Some(json!({"name": name})))
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(body["error"]["field"], "name");
    }
}

#[tokio::test]
async fn deleted_pool_is_gone_and_deleting_again_is_not_found() {
    let s = TestServer::start().await;
    let p = s.pool("short-lived").await;
    let path = format!("/v1/pools/{}", p["id"].as_str().unwrap());
    let (status, body) = s.call(Method::DELETE, &path, None).await;
    assert_eq!(
        (status, body),
        (StatusCode::NO_CONTENT, serde_json::Value::Null)
    );
    let (status, body) = s.call(Method::GET, &path, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "pool_not_found");
    let (status, body) = s.call(Method::DELETE, &path, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "pool_not_found");
    let (_, list) = s.call(Method::GET, "/v1/pools/", None).await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn unknown_pool_is_not_found() {
    let s = TestServer::start().await;
    for path in [
        "/v1/pools/nope",
        "/v1/pools/0b6f4a52-1c2d-4e8f-9a0b-1c2d3e4f5a6b",
    ] {
        let (status, body) = s.call(Method::GET, path, None).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "pool_not_found");
    }
}
