//! The dashboard's files (public, under a strict content security policy)
//! and the route its chart reads, `GET /v1/pools/{pool}/stats/history`.
//! The page itself runs in a browser in `tests/dashboard_browser.rs`.

use crate::common;

use common::{TestServer, assert_error};
use pharox_core::testkit::Harness;
use pharox_core::{InMemoryStorage, PoolId, ProxyPool, Storage};
use pharox_redis::testkit::RedisHarness;
use pharox_server::{ApiKeys, ServerConfig};
use reqwest::{Method, StatusCode};

const KEY: &str = "dashboard-key-not-a-secret";

async fn keyed() -> TestServer {
    TestServer::with(
        InMemoryStorage::new(),
        ServerConfig::new(ApiKeys::admin([KEY])),
        Some(KEY),
    )
    .await
}

/// A GET of `path` without any key.
async fn get_without_key(s: &TestServer, path: &str) -> reqwest::Response {
    s.http
        .get(format!("{}{path}", s.base))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn dashboard_files_need_no_key_and_carry_a_strict_policy() {
    let s = keyed().await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/dashboard.js", "text/javascript"),
        ("/dashboard.css", "text/css"),
    ] {
        let r = get_without_key(&s, path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let h = r.headers();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
    }
    // The data stays behind the key.
    let r = get_without_key(&s, "/v1/pools/").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_page_says_whether_the_server_asks_for_a_key() {
    let page = get_without_key(&keyed().await, "/")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"data-auth="required""#), "{page}");
    let open = TestServer::start().await;
    let page = get_without_key(&open, "/").await.text().await.unwrap();
    assert!(page.contains(r#"data-auth="off""#), "{page}");
    assert!(!page.contains("{{"), "every placeholder is filled: {page}");
}

#[tokio::test]
async fn dashboard_routes_are_in_the_openapi_document_without_a_key() {
    let s = keyed().await;
    let (status, doc) = s.call(Method::GET, "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/", "/dashboard.js", "/dashboard.css"] {
        let op = &doc["paths"][path]["get"];
        assert!(op.is_object(), "{path} is documented");
        assert!(op.get("security").is_none(), "{path} needs no key: {op}");
    }
    let history = &doc["paths"]["/v1/pools/{pool}/stats/history"]["get"];
    assert!(history["security"].is_array(), "{history}");
}

#[tokio::test]
async fn history_of_a_store_without_one_is_empty_and_its_limit_is_checked() {
    let s = keyed().await;
    let pool = s.pool("quiet").await;
    let path = format!("/v1/pools/{}/stats/history", pool["id"].as_str().unwrap());
    let (status, body) = s.call(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["pool"], "quiet");
    assert_eq!(body["pool_id"], pool["id"]);
    assert_eq!(body["snapshots"], serde_json::json!([]));
    for bad in ["0", "1001", "x"] {
        let (status, body) = s
            .call(Method::GET, &format!("{path}?limit={bad}"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "limit={bad}: {body}");
    }
    let (status, body) = s
        .call(Method::GET, "/v1/pools/nowhere/stats/history", None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "pool_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_on_redis_answers_recorded_snapshots_newest_first() {
    let h = RedisHarness::start().await;
    let store = h.storage().clone();
    let pool = PoolId::from("recorded");
    store
        .upsert_pool(&ProxyPool::new(pool.clone()))
        .await
        .unwrap();
    for i in 0..3 {
        let mut stats = store.pool_stats(&pool).await.unwrap();
        stats.total_leases = i; // tells the snapshots apart
        store.record_stats(&stats, 100).await.unwrap();
    }
    let s = TestServer::with(store, ServerConfig::new(ApiKeys::admin([KEY])), Some(KEY)).await;
    let (status, body) = s
        .call(
            Method::GET,
            "/v1/pools/recorded/stats/history?limit=2",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let granted: Vec<_> = body["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["total_leases"].as_u64().unwrap())
        .collect();
    assert_eq!(granted, [2, 1]);
}
