//! API key scopes on the Storage routes: a `lease` key reaches what a
//! scraper's ProxyManager needs and nothing that shows every proxy, other
//! consumers' leases or changes a pool; a bound key acts only as its
//! consumer.

use crate::common;

use common::{TestServer, assert_error, read};
use pharox_core::{InMemoryStorage, Proxy, ProxyPool, ProxyProtocol};
use pharox_server::{ApiKeys, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ADMIN: &str = "admin-key";
const LEASE: &str = "lease-key";
const BOUND: &str = "bound-key";

async fn server() -> TestServer {
    let store = InMemoryStorage::new();
    store.add_pool(ProxyPool::new("p")).unwrap();
    store
        .add_proxy(Proxy::new("p", "10.0.0.1", 80, ProxyProtocol::Http).with_id("x"))
        .unwrap();
    let keys = ApiKeys::from_list(&format!("{ADMIN},{LEASE} lease,{BOUND} lease:w7")).unwrap();
    TestServer::with(store, ServerConfig::new(keys), None).await
}

async fn call(
    s: &TestServer,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut r = s
        .http
        .request(method, format!("{}{path}", s.base))
        .header("X-API-Key", key);
    if let Some(b) = body {
        r = r.json(&b);
    }
    read(r.send().await.unwrap()).await
}

async fn acquire_as(s: &TestServer, key: &str, consumer: Option<&str>) -> (StatusCode, Value) {
    let body = match consumer {
        Some(c) => json!({"consumer": c}),
        None => json!({}),
    };
    call(s, key, Method::POST, "/v1/pools/p/leases", Some(body)).await
}

#[tokio::test]
async fn a_lease_key_reaches_what_leasing_needs() {
    let s = server().await;
    let (status, _) = call(
        &s,
        LEASE,
        Method::POST,
        "/v1/consumers",
        Some(json!({"name": "c"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, lease) = acquire_as(&s, LEASE, Some("c")).await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    let at = format!("/v1/pools/p/leases/{}", lease["id"].as_str().unwrap());
    for (method, path, body) in [
        (Method::GET, at.clone(), None),
        (Method::POST, format!("{at}/renew"), Some(json!({}))),
        (Method::GET, "/v1/pools/p/stats".to_owned(), None),
        (
            Method::POST,
            "/v1/pools/p/wait".to_owned(),
            Some(json!({"max_wait_ms": 1})),
        ),
        (Method::POST, format!("{at}/release"), Some(json!({}))),
    ] {
        let (status, resp) = call(&s, LEASE, method.clone(), &path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {resp}");
    }
}

#[tokio::test]
async fn a_lease_key_is_refused_what_shows_or_changes_more() {
    let s = server().await;
    for (method, path, body) in [
        (Method::GET, "/v1/consumers", None),
        (Method::PUT, "/v1/pools/p", Some(json!({}))),
        (
            Method::PUT,
            "/v1/pools/p/proxies/y",
            Some(json!({"host": "h", "port": 1})),
        ),
        (Method::GET, "/v1/pools/p/proxies/x", None),
        (Method::GET, "/v1/pools/p/proxies/?view=full", None),
        (
            Method::POST,
            "/v1/pools/p/import",
            Some(json!({"proxies": []})),
        ),
        (
            Method::POST,
            "/v1/pools/p/health",
            Some(json!({"proxy": "x", "status": "banned", "checked_at": "2025-01-31T12:00:00Z"})),
        ),
        (Method::POST, "/v1/pools/p/find", Some(json!({}))),
        (Method::GET, "/v1/pools/p/leases", None),
        (
            Method::GET,
            "/v1/pools/p/snapshot?credentials=include",
            None,
        ),
        (Method::POST, "/v1/pools/p/cleanup", Some(json!({}))),
    ] {
        let (status, resp) = call(&s, LEASE, method.clone(), path, body.clone()).await;
        assert_error(status, &resp, StatusCode::FORBIDDEN, "forbidden");
        let (status, resp) = call(&s, ADMIN, method.clone(), path, body).await;
        assert!(
            status.is_success(),
            "admin {method} {path}: {status} {resp}"
        );
    }
}

#[tokio::test]
async fn a_bound_key_acts_only_as_its_consumer() {
    let s = server().await;
    let (status, body) = call(
        &s,
        BOUND,
        Method::POST,
        "/v1/consumers",
        Some(json!({"name": "other"})),
    )
    .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(body["error"]["field"], "name");
    let (status, mine) = call(
        &s,
        BOUND,
        Method::POST,
        "/v1/consumers",
        Some(json!({"name": "w7"})),
    )
    .await;
    assert_eq!((status, &mine["name"]), (StatusCode::OK, &json!("w7")));
    let (status, body) = acquire_as(&s, BOUND, Some("other")).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(body["error"]["field"], "consumer");
    let (status, own) = acquire_as(&s, BOUND, None).await;
    assert_eq!(
        (status, &own["consumer"]),
        (StatusCode::CREATED, &json!("w7"))
    );
    // Another consumer's lease does not exist for it.
    let (_, theirs) = acquire_as(&s, ADMIN, Some("someone")).await;
    let at = format!("/v1/pools/p/leases/{}", theirs["id"].as_str().unwrap());
    for (method, path) in [
        (Method::GET, at.clone()),
        (Method::POST, format!("{at}/renew")),
        (Method::POST, format!("{at}/release")),
    ] {
        let (status, body) = call(&s, BOUND, method, &path, Some(json!({}))).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "lease_not_found");
    }
    let (status, still) = call(&s, ADMIN, Method::GET, &at, None).await;
    assert_eq!(
        (status, &still["consumer"]),
        (StatusCode::OK, &json!("someone"))
    );
    // Its own, with its token or none: renewed and released.
    let own_at = format!("/v1/pools/p/leases/{}", own["id"].as_str().unwrap());
    let (status, body) = call(
        &s,
        BOUND,
        Method::POST,
        &format!("{own_at}/renew"),
        Some(json!({"token": 999_999})),
    )
    .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "lease_not_found");
    let (status, _) = call(
        &s,
        BOUND,
        Method::POST,
        &format!("{own_at}/renew"),
        Some(json!({"token": own["token"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, done) = call(&s, BOUND, Method::POST, &format!("{own_at}/release"), None).await;
    assert_eq!(
        (status, &done["outcome"]),
        (StatusCode::OK, &json!("released"))
    );
}

#[tokio::test]
async fn a_bound_key_renews_only_its_own_sdk_lease_by_id() {
    let s = server().await;
    let pool = pharox_core::PoolId::from("p").uuid();
    let (_, theirs) = call(
        &s,
        ADMIN,
        Method::POST,
        "/v1/leases/",
        Some(json!({"pool_id": pool, "consumer_id": "someone"})),
    )
    .await;
    let renew = format!("/v1/leases/{}/renew", theirs["id"].as_str().unwrap());
    let (status, body) = call(&s, BOUND, Method::POST, &renew, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "lease_not_found");
    let (_, own) = call(
        &s,
        BOUND,
        Method::POST,
        "/v1/leases/",
        Some(json!({"pool_id": pool})),
    )
    .await;
    let renew = format!("/v1/leases/{}/renew", own["id"].as_str().unwrap());
    let (status, renewed) = call(
        &s,
        BOUND,
        Method::POST,
        &renew,
        Some(json!({"ttl_seconds": 60})),
    )
    .await;
    assert_eq!((status, &renewed["id"]), (StatusCode::OK, &own["id"]));
}
