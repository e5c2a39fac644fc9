//! `/healthz`, `/readyz`, `/metrics`, and the protective layers: the
//! request time budget and the concurrency limit.

use crate::common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{TestServer, assert_error};
use pharox_core::InMemoryStorage;
use pharox_core::testkit::FaultyStorage;
use pharox_redis::testkit::RedisServer;
use pharox_redis::{RedisConfig, RedisStorage};
use pharox_server::{ApiKeys, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::json;

const KEY: &str = "ops-key";

fn keyed() -> ServerConfig {
    ServerConfig::new(ApiKeys::admin([KEY]))
}

/// A request without the key.
async fn anonymous(s: &TestServer, path: &str) -> (StatusCode, String) {
    let r = s
        .http
        .get(format!("{}{path}", s.base))
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn metrics_text(s: &TestServer) -> String {
    let r = s.req(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    r.text().await.unwrap()
}

#[tokio::test]
async fn health_and_readiness_need_no_key_and_metrics_does() {
    let s = TestServer::with(InMemoryStorage::new(), keyed(), Some(KEY)).await;
    for path in ["/healthz", "/readyz"] {
        let (status, body) = anonymous(&s, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (status, body) = anonymous(&s, "/metrics").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    metrics_text(&s).await;

    let open = TestServer::with(
        InMemoryStorage::new(),
        ServerConfig {
            public_metrics: true,
            ..keyed()
        },
        None,
    )
    .await;
    let (status, body) = anonymous(&open, "/metrics").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Only /metrics became public.
    let (status, _) = anonymous(&open, "/v1/pools/").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_show_pool_gauges() {
    let s = TestServer::with(InMemoryStorage::new(), keyed(), Some(KEY)).await;
    let pool = s.pool("metered \"pool\"").await;
    s.proxy(
        &pool,
        json!({"host": "10.9.0.1", "port": 8080, "max_concurrency": 2}),
    )
    .await;
    let (status, lease) = s
        .call(
            Method::POST,
            "/v1/leases/",
            Some(json!({"pool_id": pool["id"], "ttl_seconds": 60})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    let id = lease["id"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        s.call(Method::GET, &format!("/v1/leases/{id}"), None).await;
    }
    s.call(Method::GET, "/no/such/route", None).await;
    let (status, _) = anonymous(&s, "/v1/pools/").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let text = metrics_text(&s).await;
    for want in [
        r#"pharox_http_requests_total{route="/v1/pools/",method="POST",status="201"} 1"#,
        r#"pharox_http_requests_total{route="/v1/leases/{lease}",method="GET",status="200"} 3"#,
        r#"pharox_http_requests_total{route="/v1/pools/",method="GET",status="401"} 1"#,
        r#"pharox_http_requests_total{route="unmatched",method="GET",status="404"} 1"#,
        r#"pharox_http_request_duration_seconds_count{route="/v1/leases/{lease}",method="GET"} 3"#,
        r#"pharox_pool_proxies{pool="metered \"pool\"",state="total"} 1"#,
        r#"pharox_pool_proxies{pool="metered \"pool\"",state="available"} 1"#,
        r#"pharox_pool_active_leases{pool="metered \"pool\""} 1"#,
        "pharox_pool_scrape_truncated 0",
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }
    // One exposition: one # EOF, at the end; no lease id in any label.
    assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    assert!(text.ends_with("# EOF\n"));
    assert!(!text.contains(&id), "{text}");
    assert!(!text.contains(KEY));
}

#[tokio::test]
async fn readiness_follows_the_store() {
    let mut redis = RedisServer::start();
    let store = RedisStorage::connect(
        RedisConfig::new(redis.url()).response_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    let s = TestServer::with(store, keyed(), Some(KEY)).await;
    let (status, body) = anonymous(&s, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    redis.kill();
    let r = s
        .http
        .get(format!("{}/readyz", s.base))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let retry = r.headers().get("retry-after").cloned();
    let body: serde_json::Value = r.json().await.unwrap();
    // The first call after the kill may see the connection break under it
    // (interrupted) or find it gone (unavailable): both are 503, not ready.
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        code == "store_unavailable" || code == "store_interrupted",
        "{body}"
    );
    assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, &code);
    assert_eq!(retry.unwrap(), "1");
    // /healthz says the process is up, whatever the store.
    assert_eq!(anonymous(&s, "/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_request_over_its_budget_is_answered_503_request_timeout() {
    let store = FaultyStorage::new(InMemoryStorage::new());
    let s = TestServer::with(
        store.clone(),
        ServerConfig {
            request_timeout: Duration::from_millis(200),
            ..keyed()
        },
        Some(KEY),
    )
    .await;
    s.pool("slow").await;
    // pool_stats (read by /metrics for each pool) waits at the closed gate
    // for as long as the test keeps it closed.
    store.faults().stats_gate.close();
    let r = s.req(Method::GET, "/metrics").send().await.unwrap();
    let status = r.status();
    let retry = r.headers().get("retry-after").cloned();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "request_timeout",
    );
    assert_eq!(retry.unwrap(), "1");
    store.faults().stats_gate.open();
    metrics_text(&s).await;
}

#[tokio::test]
async fn past_the_concurrency_limit_requests_are_refused_at_once() {
    let store = FaultyStorage::new(InMemoryStorage::new());
    let s = TestServer::with(
        store.clone(),
        ServerConfig {
            concurrency_limit: 1,
            ..keyed()
        },
        Some(KEY),
    )
    .await;
    s.pool("busy").await;
    store.faults().stats_gate.close();
    let held = tokio::spawn({
        let r = s.req(Method::GET, "/metrics");
        async move { r.send().await.unwrap().status() }
    });
    // Wait (bounded) until that request is inside the store.
    pharox_core::testkit::wait_for("the held request reaches pool_stats", || async {
        (store.faults().stats_calls.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    let (status, body) = s.call(Method::GET, "/v1/pools/", None).await;
    assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    // A full server is alive, and not ready for more.
    assert_eq!(anonymous(&s, "/healthz").await.0, StatusCode::OK);
    let (status, body) = anonymous(&s, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("overloaded"), "{body}");
    store.faults().stats_gate.open();
    assert_eq!(held.await.unwrap(), StatusCode::OK);
    let (status, _) = s.call(Method::GET, "/v1/pools/", None).await;
    assert_eq!(status, StatusCode::OK);
}
