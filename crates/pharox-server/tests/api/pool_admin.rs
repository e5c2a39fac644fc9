//! Pool upsert, stats, snapshot, cleanup and the capacity long poll.

use crate::common;

use std::time::{Duration, Instant};

use common::{TestServer, assert_error, assert_invalid_body};
use pharox_core::{InMemoryStorage, ManualClock, PoolId, Proxy, ProxyPool, ProxyProtocol};
use pharox_server::{ApiKeys, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A server on a manual clock with pool `p` and one proxy of capacity 2.
async fn seeded() -> (TestServer, ManualClock) {
    let clock = ManualClock::starting_now();
    let store = InMemoryStorage::with_clock(clock.clone());
    store.add_pool(ProxyPool::new("p")).unwrap();
    store
        .add_proxy(
            Proxy::new("p", "10.0.0.1", 8080, ProxyProtocol::Http)
                .with_id("px")
                .with_credentials("u", "secret-pw")
                .with_max_concurrency(2),
        )
        .unwrap();
    let s = TestServer::with(store, ServerConfig::new(ApiKeys::none()), None).await;
    (s, clock)
}

async fn lease(s: &TestServer, duration_ms: u64) -> Value {
    let (status, lease) = s
        .call(
            Method::POST,
            "/v1/pools/p/leases",
            Some(json!({"duration_ms": duration_ms})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    lease
}

#[tokio::test]
async fn put_creates_then_updates_a_pool_by_its_id() {
    let s = TestServer::start().await;
    let (status, created) = s
        .call(
            Method::PUT,
            "/v1/pools/latam%20%7Bres%7D",
            Some(json!({"name": "LATAM", "description": "AR+BR"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(
        (&created["key"], &created["name"], &created["description"]),
        (&json!("latam {res}"), &json!("LATAM"), &json!("AR+BR"))
    );
    assert_eq!(
        created["id"],
        PoolId::from("latam {res}").uuid().to_string()
    );
    // By its UUID too, and the name defaults to the id.
    let path = format!("/v1/pools/{}", created["id"].as_str().unwrap());
    let (status, updated) = s.call(Method::PUT, &path, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (&updated["name"], &updated["description"]),
        (&json!("latam {res}"), &Value::Null)
    );
    let (_, list) = s.call(Method::GET, "/v1/pools/", None).await;
    assert_eq!(list, json!([updated]));
}

#[tokio::test]
async fn put_refuses_bad_pools() {
    let s = TestServer::start().await;
    let long = "x".repeat(129);
    let (status, body) = s
        .call(Method::PUT, &format!("/v1/pools/{long}"), Some(json!({})))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(body["error"]["field"], "pool");
    let (status, body) = s
        .call(
            Method::PUT,
            "/v1/pools/ok",
            Some(json!({"description": "d".repeat(5000)})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(body["error"]["field"], "pool.description");
    let (status, body) = s
        .call(Method::PUT, "/v1/pools/ok", Some(json!({"owner": "me"})))
        .await;
    assert_invalid_body(status, &body);
}

#[tokio::test]
async fn stats_count_leases_and_unknown_pools_are_not_found() {
    let (s, _) = seeded().await;
    lease(&s, 60_000).await;
    let (status, stats) = s.call(Method::GET, "/v1/pools/p/stats", None).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(
        (
            &stats["pool"],
            &stats["total"],
            &stats["active_leases"],
            &stats["total_leases"]
        ),
        (&json!("p"), &json!(1), &json!(1), &json!(1))
    );
    assert_eq!(stats["pool_id"], PoolId::from("p").uuid().to_string());
    let text = stats["collected_at"].as_str().unwrap();
    assert!(text.ends_with("+00:00") && text.len() == 32, "{text}");
    for path in ["/v1/pools/ghost/stats", "/v1/pools/ghost/snapshot"] {
        let (status, body) = s.call(Method::GET, path, None).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "pool_not_found");
    }
}

#[tokio::test]
async fn a_snapshot_has_everything_and_passwords_only_when_asked() {
    let (s, _) = seeded().await;
    let held = lease(&s, 60_000).await;
    let (status, snap) = s.call(Method::GET, "/v1/pools/p/snapshot", None).await;
    assert_eq!(status, StatusCode::OK, "{snap}");
    assert_eq!(snap["pool"]["key"], "p");
    assert_eq!(snap["proxies"][0]["id"], "px");
    assert_eq!(snap["proxies"][0]["current_leases"], 1);
    assert_eq!(snap["leases"][0]["id"], held["id"]);
    assert_eq!(snap["stats"]["active_leases"], 1);
    assert!(snap["taken_at"].is_string());
    assert!(!snap.to_string().contains("secret-pw"), "{snap}");
    let (_, with) = s
        .call(
            Method::GET,
            "/v1/pools/p/snapshot?credentials=include",
            None,
        )
        .await;
    assert_eq!(with["proxies"][0]["password"], "secret-pw");
    assert_eq!(with["leases"][0]["proxy"]["password"], "secret-pw");
    let (status, body) = s
        .call(Method::GET, "/v1/pools/p/snapshot?credentials=all", None)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(body["error"]["field"], "query");
}

#[tokio::test]
async fn cleanup_reclaims_expired_leases_in_bounded_batches() {
    let (s, clock) = seeded().await;
    lease(&s, 100).await;
    lease(&s, 100).await;
    clock.advance(Duration::from_millis(150));
    let (status, one) = s
        .call(
            Method::POST,
            "/v1/pools/p/cleanup",
            Some(json!({"limit": 1})),
        )
        .await;
    assert_eq!((status, one), (StatusCode::OK, json!({"reclaimed": 1})));
    // No body: the default batch.
    let (status, rest) = s.call(Method::POST, "/v1/pools/p/cleanup", None).await;
    assert_eq!((status, rest), (StatusCode::OK, json!({"reclaimed": 1})));
    let (_, stats) = s.call(Method::GET, "/v1/pools/p/stats", None).await;
    assert_eq!(stats["expired_leases"], 2);
    for (body, field) in [
        (json!({"limit": 0}), "limit"),
        (json!({"limit": 10_001}), "limit"),
    ] {
        let (status, resp) = s
            .call(Method::POST, "/v1/pools/p/cleanup", Some(body))
            .await;
        assert_error(status, &resp, StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(resp["error"]["field"], field);
    }
    let (status, resp) = s
        .call(Method::POST, "/v1/pools/ghost/cleanup", Some(json!({})))
        .await;
    assert_error(status, &resp, StatusCode::NOT_FOUND, "pool_not_found");
}

#[tokio::test]
async fn wait_answers_when_capacity_is_freed() {
    let (s, _) = seeded().await;
    let a = lease(&s, 60_000).await;
    lease(&s, 60_000).await;
    let waiting = {
        let req = s
            .req(Method::POST, "/v1/pools/p/wait")
            .json(&json!({"max_wait_ms": 10_000}));
        tokio::spawn(async move {
            let started = Instant::now();
            let status = req.send().await.unwrap().status();
            (status, started.elapsed())
        })
    };
    let release = format!("/v1/pools/p/leases/{}/release", a["id"].as_str().unwrap());
    let (status, _) = s.call(Method::POST, &release, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, waited) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Woken by the release, not by the end of its 10 s.
    assert!(waited < Duration::from_secs(10), "{waited:?}");
}

#[tokio::test]
async fn wait_refuses_bad_waits() {
    let (s, _) = seeded().await;
    for (body, want, code) in [
        (
            json!({"max_wait_ms": 10_001}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"max_wait_ms": -1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (json!([5]), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
    ] {
        let (status, resp) = s.call(Method::POST, "/v1/pools/p/wait", Some(body)).await;
        assert_error(status, &resp, want, code);
    }
    let (status, _) = s
        .call(
            Method::POST,
            "/v1/pools/p/wait",
            Some(json!({"max_wait_ms": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}
