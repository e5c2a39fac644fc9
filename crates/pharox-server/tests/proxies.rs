//! `/v1/pools/{id}/proxies/`: add (as the SDK sends it), list, change status, remove.

mod common;

use common::{TestServer, assert_error, is_canonical_uuid};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn added_proxy_is_listed_with_every_field_but_the_password() {
    let s = TestServer::start().await;
    let pool = s.pool("px").await;
    // Exactly what PharoxClient.add_proxy sends, plus the model's other fields.
    let added = s
        .proxy(
            &pool,
            json!({"host": "10.0.0.1", "port": 8080, "protocol": "socks5",
                   "username": "user", "password": "hunter2-secret",
                   "country": "AR", "city": "Buenos Aires", "latitude": -34.6, "longitude": -58.4,
                   "source": "feed", "isp": "isp", "asn": 7303, "max_concurrency": 2}),
        )
        .await;
    assert!(is_canonical_uuid(&added["id"]), "{added}");
    assert_eq!(added["pool_id"], pool["id"]);
    assert_eq!(added["status"], "active");
    assert_eq!(added["username"], "user");
    assert_eq!(
        (&added["protocol"], &added["asn"], &added["max_concurrency"]),
        (&json!("socks5"), &json!(7303), &json!(2))
    );
    let (status, list) = s
        .call(
            Method::GET,
            &format!("/v1/pools/{}/proxies/", pool["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([added]));
    for text in [added.to_string(), list.to_string()] {
        assert!(!text.contains("hunter2"), "password in a response: {text}");
    }
}

#[tokio::test]
async fn status_changes_and_removal() {
    let s = TestServer::start().await;
    let pool = s.pool("st").await;
    let p = s
        .proxy(
            &pool,
            json!({"host": "h.example", "port": 3128, "protocol": "http"}),
        )
        .await;
    let path = format!(
        "/v1/pools/{}/proxies/{}",
        pool["id"].as_str().unwrap(),
        p["id"].as_str().unwrap()
    );
    let (status, body) = s
        .call(Method::PATCH, &path, Some(json!({"status": "banned"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "banned");
    // A banned proxy is not leased.
    let (status, body) = s
        .call(
            Method::POST,
            "/v1/leases/",
            Some(json!({"pool_id": pool["id"], "consumer_id": "c", "ttl_seconds": 60})),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "no_proxy_available");
    let (status, _) = s.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = s.call(Method::DELETE, &path, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "proxy_not_found");
    let (status, body) = s
        .call(Method::PATCH, &path, Some(json!({"status": "active"})))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "proxy_not_found");
}

#[tokio::test]
async fn proxies_of_an_unknown_pool_are_not_found() {
    let s = TestServer::start().await;
    let (status, body) = s
        .call(
            Method::POST,
            "/v1/pools/ghost/proxies/",
            Some(json!({"host": "h", "port": 1})),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "pool_not_found");
    let (status, body) = s.call(Method::GET, "/v1/pools/ghost/proxies/", None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "pool_not_found");
    let (status, body) = s
        .call(Method::DELETE, "/v1/pools/ghost/proxies/x", None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "pool_not_found");
    let (status, body) = s
        .call(
            Method::PATCH,
            "/v1/pools/ghost/proxies/x",
            Some(json!({"status": "active"})),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "pool_not_found");
}

#[tokio::test]
async fn invalid_proxies_are_rejected_on_their_field() {
    let s = TestServer::start().await;
    let pool = s.pool("bad").await;
    let path = format!("/v1/pools/{}/proxies/", pool["id"].as_str().unwrap());
    for (body, field) in [
        (json!({"host": "h", "port": 0}), "port"),
        (json!({"host": "", "port": 80}), "host"),
        (json!({"host": "h/x", "port": 80}), "host"),
        (
            json!({"host": "h", "port": 80, "username": "u"}),
            "username",
        ),
        (
            json!({"host": "h", "port": 80, "password": "p"}),
            "username",
        ),
        (
            json!({"host": "h", "port": 80, "latitude": 1.0}),
            "location",
        ),
        (
            json!({"host": "h", "port": 80, "latitude": 91.0, "longitude": 0.0}),
            "location",
        ),
        (
            json!({"host": "h", "port": 80, "max_concurrency": 0}),
            "max_concurrency",
        ),
    ] {
        let (status, resp) = s.call(Method::POST, &path, Some(body.clone())).await;
        assert_error(status, &resp, StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(resp["error"]["field"], field, "{body} -> {resp}");
        assert!(resp["error"]["reason"].is_string(), "{resp}");
    }
    let (status, body) = s
        .call(
            Method::PATCH,
            &format!("{path}x"),
            Some(json!({"status": "broken"})),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
}
