//! The SDK's lease routes over the Redis store: a lease id alone reads and
//! releases its lease (the id carries the pool's tag, the token and the
//! nonce), and an id with another nonce names nothing.

use crate::common;

use common::{TestServer, assert_error};
use pharox_redis::testkit::RedisHarness;
use pharox_server::{ApiKeys, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

async fn server() -> (RedisHarness, TestServer) {
    let h = RedisHarness::start().await;
    let s = TestServer::with(
        pharox_core::testkit::Harness::storage(&h).clone(),
        ServerConfig::new(ApiKeys::none()),
        None,
    )
    .await;
    (h, s)
}

async fn acquire(s: &TestServer, pool: &Value) -> (StatusCode, Value) {
    let body = json!({"pool_id": pool["id"], "consumer_id": "default", "ttl_seconds": 300, "strategy": "first_available"});
    s.call(Method::POST, "/v1/leases/", Some(body)).await
}

/// The same id with the nonce's last bit flipped (still a UUIDv8 of the pool).
fn other_nonce(id: &str) -> String {
    let u = Uuid::parse_str(id).unwrap().as_u128() ^ 1;
    Uuid::from_u128(u).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_lease_is_read_and_released_by_its_id_alone() {
    let (_h, s) = server().await;
    let pool = s.pool("sdk-on-redis").await;
    s.proxy(
        &pool,
        json!({"host": "10.2.0.1", "port": 3128, "max_concurrency": 1}),
    )
    .await;
    let (status, lease) = acquire(&s, &pool).await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    let id = lease["id"].as_str().unwrap().to_owned();
    let (status, got) = s.call(Method::GET, &format!("/v1/leases/{id}"), None).await;
    assert_eq!((status, &got), (StatusCode::OK, &lease));

    // Another nonce: not this lease, and it stays held.
    let forged = other_nonce(&id);
    for (method, path) in [
        (Method::GET, format!("/v1/leases/{forged}")),
        (Method::POST, format!("/v1/leases/{forged}/release")),
    ] {
        let (status, body) = s.call(method, &path, Some(json!({}))).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "lease_not_found");
    }
    let (status, body) = acquire(&s, &pool).await;
    assert_error(status, &body, StatusCode::CONFLICT, "no_proxy_available");

    let (status, released) = s
        .call(
            Method::POST,
            &format!("/v1/leases/{id}/release"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{released}");
    assert_eq!(released["status"], "released");
    for field in [
        "id",
        "proxy_id",
        "consumer_id",
        "pool_id",
        "acquired_at",
        "token",
    ] {
        assert_eq!(released[field], lease[field], "{field}");
    }
    let (status, body) = s.call(Method::GET, &format!("/v1/leases/{id}"), None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "lease_not_found");
    let (status, body) = s
        .call(
            Method::POST,
            &format!("/v1/leases/{id}/release"),
            Some(json!({})),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "lease_not_found");
    // The slot is free again, exactly once.
    let (status, again) = acquire(&s, &pool).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    let (status, body) = acquire(&s, &pool).await;
    assert_error(status, &body, StatusCode::CONFLICT, "no_proxy_available");
}
