//! `POST /v1/pools/{pool}/import`: many proxies at once, one result each,
//! bounded in items and bytes.

use crate::common;

use common::{TestServer, assert_error, assert_invalid_body};
use pharox_core::InMemoryStorage;
use pharox_server::{ApiKeys, ServerConfig};
use pharox_wire::MAX_IMPORT_PROXIES;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn good_items_are_stored_in_order_and_bad_ones_reported() {
    let s = TestServer::start().await;
    s.pool("bulk").await;
    let body = json!({"proxies": [
        {"id": "first", "host": "10.0.0.1", "port": 80, "password": "pw-1", "username": "u"},
        {"host": "10.0.0.2", "port": 0},
        ["not", "an", "object"],
        {"id": "third", "host": "10.0.0.3", "port": "80"},
        {"host": "10.0.0.4", "port": 81, "country": "AR"},
        {"id": "first", "host": "10.0.0.5", "port": 82},
    ]});
    let (status, report) = s
        .call(Method::POST, "/v1/pools/bulk/import", Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        (&report["imported"], &report["failed"]),
        (&json!(3), &json!(3))
    );
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    let error = |i: usize| &results[i]["error"];
    assert_eq!(
        (&results[0]["id"], error(0)),
        (&json!("first"), &Value::Null)
    );
    assert_eq!(
        (&error(1)["code"], &error(1)["field"]),
        (&json!("invalid_input"), &json!("port"))
    );
    assert!(results[1]["id"].is_string(), "the id it was given");
    assert_eq!(
        (&error(2)["code"], &error(2)["field"]),
        (&json!("invalid_body"), &json!("proxies[2]"))
    );
    assert_eq!(results[2]["id"], Value::Null);
    assert_eq!(error(3)["field"], "proxies[3].port");
    assert_eq!(error(4), &Value::Null);
    assert_eq!(
        (&results[5]["id"], error(5)),
        (&json!("first"), &Value::Null)
    );
    assert!(!report.to_string().contains("pw-1"), "{report}");
    let (_, list) = s.call(Method::GET, "/v1/pools/bulk/proxies/", None).await;
    let hosts: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["host"])
        .collect();
    // `first` was updated in place (it keeps its position).
    assert_eq!(hosts, [&json!("10.0.0.5"), &json!("10.0.0.4")]);
}

#[tokio::test]
async fn an_import_is_bounded_in_items_and_bytes() {
    let config = ServerConfig {
        import_body_limit: 200 * 1024,
        ..ServerConfig::new(ApiKeys::none())
    };
    let s = TestServer::with(InMemoryStorage::new(), config, None).await;
    s.pool("big").await;
    // Over the ordinary body limit (64 KiB), within the import's.
    let many: Vec<Value> = (0..1500)
        .map(|i| json!({"id": format!("p{i}"), "host": "10.0.0.1", "port": 1 + i, "city": "c".repeat(30)}))
        .collect();
    let body = json!({"proxies": many});
    assert!(body.to_string().len() > pharox_server::DEFAULT_BODY_LIMIT);
    let (status, report) = s
        .call(Method::POST, "/v1/pools/big/import", Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["imported"], 1500);
    // Over the import's byte limit: 413.
    let huge: Vec<Value> = (0..3000)
        .map(|i| json!({"id": format!("q{i}"), "host": "10.0.0.1", "port": 1, "city": "x".repeat(60)}))
        .collect();
    let (status, resp) = s
        .call(
            Method::POST,
            "/v1/pools/big/import",
            Some(json!({"proxies": huge})),
        )
        .await;
    assert_error(
        status,
        &resp,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    // Over the item limit: 400 on `proxies`, nothing stored.
    let config = ServerConfig {
        import_body_limit: 64 * 1024 * 1024,
        ..ServerConfig::new(ApiKeys::none())
    };
    let s = TestServer::with(InMemoryStorage::new(), config, None).await;
    s.pool("big").await;
    let too_many: Vec<Value> = (0..=MAX_IMPORT_PROXIES).map(|_| json!({})).collect();
    let (status, resp) = s
        .call(
            Method::POST,
            "/v1/pools/big/import",
            Some(json!({"proxies": too_many})),
        )
        .await;
    assert_error(status, &resp, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(resp["error"]["field"], "proxies");
    let (_, list) = s.call(Method::GET, "/v1/pools/big/proxies/", None).await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn an_import_into_a_missing_pool_or_of_a_bad_shape_is_refused_whole() {
    let s = TestServer::start().await;
    let (status, resp) = s
        .call(
            Method::POST,
            "/v1/pools/ghost/import",
            Some(json!({"proxies": [{"host": "h", "port": 1}]})),
        )
        .await;
    assert_error(status, &resp, StatusCode::NOT_FOUND, "pool_not_found");
    s.pool("shape").await;
    for bad in [
        json!([{"host": "h", "port": 1}]),
        json!({"proxies": {"host": "h"}}),
        json!({}),
    ] {
        let (status, resp) = s
            .call(Method::POST, "/v1/pools/shape/import", Some(bad))
            .await;
        assert_invalid_body(status, &resp);
    }
}
