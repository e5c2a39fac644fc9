//! `/v1/consumers`: ensure by name (idempotent) and list.

use crate::common;

use common::{TestServer, assert_error, assert_invalid_body};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn a_consumer_is_registered_once_and_listed() {
    let s = TestServer::start().await;
    let (status, first) = s
        .call(
            Method::POST,
            "/v1/consumers",
            Some(json!({"name": "scraper:{1}"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["name"], "scraper:{1}");
    assert!(common::is_canonical_uuid(&first["id"]), "{first}");
    let (_, again) = s
        .call(
            Method::POST,
            "/v1/consumers",
            Some(json!({"name": "scraper:{1}"})),
        )
        .await;
    assert_eq!(again, first, "ensure is idempotent");
    let (_, other) = s
        .call(
            Method::POST,
            "/v1/consumers",
            Some(json!({"name": "other"})),
        )
        .await;
    let (status, list) = s.call(Method::GET, "/v1/consumers", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([other, first]), "sorted by name");
}

#[tokio::test]
async fn bad_consumer_names_and_bodies_are_refused() {
    let s = TestServer::start().await;
    for name in [String::new(), "tab\there".into(), "x".repeat(10_000)] {
        let (status, body) = s
            .call(Method::POST, "/v1/consumers", Some(json!({"name": name})))
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(body["error"]["field"], "consumer", "{body}");
    }
    for bad in [
        json!(["a"]),
        json!({}),
        json!({"name": 5}),
        json!({"name": "a", "id": "x"}),
    ] {
        let (status, body) = s.call(Method::POST, "/v1/consumers", Some(bad)).await;
        assert_invalid_body(status, &body);
    }
}
