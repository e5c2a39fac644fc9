//! Full proxy records: read, store (`PUT`), list in full, health results,
//! and a status change that cannot resurrect a deleted proxy.

use crate::common;

use common::store::Hooked;
use common::{TestServer, assert_error, assert_invalid_body};
use pharox_core::{InMemoryStorage, ProxyPool, Storage};
use pharox_server::{ApiKeys, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn full_input() -> Value {
    json!({"host": "10.0.0.9", "port": 1080, "protocol": "socks5",
           "username": "alice", "password": "hunter2-pw", "status": "slow",
           "country": "AR", "city": "Córdoba", "latitude": -31.42, "longitude": -64.18,
           "source": "feed", "isp": "Telecom", "asn": 7303, "max_concurrency": 3,
           "latency_ms": 42, "checked_at": "2025-01-31T12:00:00.123000+00:00",
           "extra": {"tier": "gold"}})
}

#[tokio::test]
async fn put_stores_every_field_and_get_reads_it_back() {
    let s = TestServer::start().await;
    s.pool("recs").await;
    let path = "/v1/pools/recs/proxies/p%3A1";
    let (status, put) = s.call(Method::PUT, path, Some(full_input())).await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert!(!put.to_string().contains("hunter2"), "{put}");
    let (status, got) = s.call(Method::GET, path, None).await;
    assert_eq!((status, &got), (StatusCode::OK, &put));
    assert_eq!(
        (
            &got["id"],
            &got["pool"],
            &got["status"],
            &got["extra"]["tier"]
        ),
        (
            &json!("p:1"),
            &json!("recs"),
            &json!("slow"),
            &json!("gold")
        )
    );
    assert_eq!(got["checked_at"], "2025-01-31T12:00:00.123000+00:00");
    assert_eq!(got["username"], "alice");
    assert!(got.get("password").is_none(), "{got}");
    let (_, with) = s
        .call(Method::GET, &format!("{path}?credentials=include"), None)
        .await;
    assert_eq!(with["password"], "hunter2-pw");
    // An update keeps the position and replaces every field.
    let (status, updated) = s
        .call(
            Method::PUT,
            path,
            Some(json!({"host": "10.0.0.10", "port": 80})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (&updated["country"], &updated["status"]),
        (&Value::Null, &json!("active"))
    );
}

#[tokio::test]
async fn the_full_list_is_the_sdk_list_plus_pool_extra_and_asked_passwords() {
    let s = TestServer::start().await;
    let pool = s.pool("lists").await;
    s.call(Method::PUT, "/v1/pools/lists/proxies/a", Some(full_input()))
        .await;
    let base = format!("/v1/pools/{}/proxies/", pool["id"].as_str().unwrap());
    let (_, sdk) = s.call(Method::GET, &base, None).await;
    let (status, full) = s
        .call(Method::GET, &format!("{base}?view=full"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{full}");
    let mut trimmed = full[0].as_object().unwrap().clone();
    assert!(trimmed.remove("pool").is_some() && trimmed.remove("extra").is_some());
    assert_eq!(Value::Object(trimmed), sdk[0]);
    assert!(!full.to_string().contains("hunter2"), "{full}");
    let (_, with) = s
        .call(
            Method::GET,
            &format!("{base}?view=full&credentials=include"),
            None,
        )
        .await;
    assert_eq!(with[0]["password"], "hunter2-pw");
    // The SDK's list never carries a password, whatever is asked.
    let (_, sdk_asked) = s
        .call(Method::GET, &format!("{base}?credentials=include"), None)
        .await;
    assert_eq!(sdk_asked, sdk);
    let (status, body) = s
        .call(Method::GET, &format!("{base}?view=huge"), None)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test]
async fn put_and_get_errors() {
    let s = TestServer::start().await;
    s.pool("errs").await;
    let (status, body) = s
        .call(Method::GET, "/v1/pools/errs/proxies/none", None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "proxy_not_found");
    for (method, body) in [
        (Method::GET, None),
        (Method::PUT, Some(json!({"host": "h", "port": 1}))),
    ] {
        let (status, resp) = s.call(method, "/v1/pools/ghost/proxies/x", body).await;
        assert_error(status, &resp, StatusCode::NOT_FOUND, "pool_not_found");
    }
    for (body, code, field) in [
        (
            json!({"host": "h", "port": 0}),
            "invalid_input",
            "proxy.port",
        ),
        (
            json!({"host": "h/x", "port": 1}),
            "invalid_input",
            "proxy.host",
        ),
        (
            json!({"host": "h", "port": 1, "id": "other"}),
            "invalid_input",
            "id",
        ),
        (
            json!({"host": "h", "port": 1, "max_concurrency": 0}),
            "invalid_input",
            "proxy.max_concurrency",
        ),
        (
            json!({"host": "h", "port": 1, "checked_at": "yesterday"}),
            "invalid_body",
            "checked_at",
        ),
        (
            json!({"host": "h", "port": 1, "extra": {"k": 1}}),
            "invalid_body",
            "extra.k",
        ),
    ] {
        let (status, resp) = s
            .call(Method::PUT, "/v1/pools/errs/proxies/x", Some(body.clone()))
            .await;
        let want = if code == "invalid_body" {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_error(status, &resp, want, code);
        assert_eq!(resp["error"]["field"], field, "{body} -> {resp}");
    }
}

#[tokio::test]
async fn health_results_update_status_and_latency() {
    let s = TestServer::start().await;
    s.pool("health").await;
    s.call(
        Method::PUT,
        "/v1/pools/health/proxies/p",
        Some(json!({"host": "h", "port": 1})),
    )
    .await;
    let check = |status: &str, at: &str| json!({"proxy": "p", "status": status, "latency_ms": 120, "checked_at": at, "error": null});
    let (status, p) = s
        .call(
            Method::POST,
            "/v1/pools/health/health",
            Some(check("banned", "2025-01-31T12:00:00+00:00")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(
        (&p["status"], &p["latency_ms"]),
        (&json!("banned"), &json!(120))
    );
    assert_eq!(p["checked_at"], "2025-01-31T12:00:00.000000+00:00");
    // An older result is ignored.
    let (_, p) = s
        .call(
            Method::POST,
            "/v1/pools/health/health",
            Some(check("active", "2025-01-31T11:00:00Z")),
        )
        .await;
    assert_eq!(p["status"], "banned");
    for pool in ["health", "ghost"] {
        let body =
            json!({"proxy": "nope", "status": "active", "checked_at": "2025-01-31T12:00:00Z"});
        let (status, resp) = s
            .call(
                Method::POST,
                &format!("/v1/pools/{pool}/health"),
                Some(body),
            )
            .await;
        assert_error(status, &resp, StatusCode::NOT_FOUND, "proxy_not_found");
    }
    for bad in [
        json!({"proxy": "p", "status": "broken", "checked_at": "2025-01-31T12:00:00Z"}),
        json!({"proxy": "p", "status": "active"}),
        json!({"proxy": "p", "status": "active", "checked_at": "2025-01-31T12:00:00Z", "latency_ms": -4}),
    ] {
        let (status, resp) = s
            .call(Method::POST, "/v1/pools/health/health", Some(bad))
            .await;
        assert_invalid_body(status, &resp);
    }
}

#[tokio::test]
async fn a_status_change_never_resurrects_a_proxy_deleted_meanwhile() {
    let memory = InMemoryStorage::new();
    memory.add_pool(ProxyPool::new("race")).unwrap();
    let store = Hooked::new(memory.clone());
    let s = TestServer::with(store.clone(), ServerConfig::new(ApiKeys::none()), None).await;
    let (status, _) = s
        .call(
            Method::PUT,
            "/v1/pools/race/proxies/victim",
            Some(json!({"host": "h", "port": 1, "latency_ms": 7})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // A DELETE lands right after the PATCH read the proxy.
    *store.hooks.remove_after_get.lock() = Some(("race".into(), "victim".into()));
    let (status, body) = s
        .call(
            Method::PATCH,
            "/v1/pools/race/proxies/victim",
            Some(json!({"status": "inactive"})),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "proxy_not_found");
    assert!(
        store.hooks.remove_after_get.lock().is_none(),
        "the hook ran"
    );
    assert_eq!(
        memory
            .get_proxy(&"race".into(), &"victim".into())
            .await
            .unwrap(),
        None
    );
    assert!(
        memory
            .list_proxies(&"race".into())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_status_change_keeps_latency_and_marks_the_check() {
    let s = TestServer::start().await;
    s.pool("patch").await;
    s.call(
        Method::PUT,
        "/v1/pools/patch/proxies/p",
        Some(
            json!({"host": "h", "port": 1, "latency_ms": 7, "checked_at": "2999-01-01T00:00:00Z"}),
        ),
    )
    .await;
    let (status, p) = s
        .call(
            Method::PATCH,
            "/v1/pools/patch/proxies/p",
            Some(json!({"status": "slow"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    // Applied although the last check is in the future (its time is kept).
    assert_eq!(
        (&p["status"], &p["latency_ms"]),
        (&json!("slow"), &json!(7))
    );
    assert_eq!(p["checked_at"], "2999-01-01T00:00:00.000000+00:00");
}

#[tokio::test]
async fn put_and_import_refuse_hosts_the_policy_refuses() {
    let s = TestServer::start().await;
    s.pool("hosts").await;
    for host in [
        "127.0.0.1",
        "localhost",
        "169.254.169.254",
        "::ffff:127.0.0.1",
    ] {
        let (status, body) = s
            .call(
                Method::PUT,
                "/v1/pools/hosts/proxies/p",
                Some(json!({"host": host, "port": 80})),
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(body["error"]["field"], "proxy.host", "{host}: {body}");
    }
    let (status, report) = s
        .call(
            Method::POST,
            "/v1/pools/hosts/import",
            Some(json!({"proxies": [
                {"id": "ok", "host": "10.1.2.3", "port": 80},
                {"id": "meta", "host": "169.254.169.254", "port": 80},
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        (&report["imported"], &report["failed"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(report["results"][1]["error"]["field"], "host");
    let (_, list) = s.call(Method::GET, "/v1/pools/hosts/proxies/", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}
