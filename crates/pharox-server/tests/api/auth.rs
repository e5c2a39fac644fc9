//! `X-API-Key`: 401 without a key, 403 with a wrong one, through with a right one.

use crate::common;

use common::{TestServer, assert_error, read};
use pharox_core::InMemoryStorage;
use pharox_server::{ApiKeys, ServerConfig};
use reqwest::{Method, StatusCode};

async fn server(key: Option<&str>) -> TestServer {
    let keys = ApiKeys::from_list("first-key,second-key").unwrap();
    TestServer::with(InMemoryStorage::new(), ServerConfig::new(keys), key).await
}

#[tokio::test]
async fn a_missing_key_is_unauthorized() {
    let s = server(None).await;
    for (method, path) in [
        (Method::GET, "/v1/pools/"),
        (Method::POST, "/v1/leases/"),
        (Method::GET, "/v1/leases/x"),
        (Method::GET, "/nowhere"),
    ] {
        let (status, body) = s.call(method, path, None).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

#[tokio::test]
async fn a_wrong_key_is_forbidden() {
    for wrong in ["first-ke", "first-keyy", "FIRST-KEY", "x"] {
        let s = server(Some(wrong)).await;
        let (status, body) = s.call(Method::GET, "/v1/pools/", None).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
        assert!(!body.to_string().contains("first-key"), "{body}");
    }
}

#[tokio::test]
async fn every_configured_key_is_accepted() {
    for key in ["first-key", "second-key"] {
        let s = server(Some(key)).await;
        let (status, body) = s.call(Method::GET, "/v1/pools/", None).await;
        assert_eq!((status, body), (StatusCode::OK, serde_json::json!([])));
    }
}

#[tokio::test]
async fn the_key_is_checked_before_the_body() {
    let s = server(Some("wrong")).await;
    let resp = s
        .req(Method::POST, "/v1/pools/")
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

/// Three servers' views of one store: an admin key, a `lease` key and a key
/// bound to consumer `w7`.
async fn scoped() -> (TestServer, TestServer, TestServer) {
    let keys = ApiKeys::from_list("root admin,scraper lease,seven lease:w7").unwrap();
    let store = InMemoryStorage::new();
    let with = |key: &'static str| {
        let (store, keys) = (store.clone(), keys.clone());
        async move { TestServer::with(store, ServerConfig::new(keys), Some(key)).await }
    };
    (
        with("root").await,
        with("scraper").await,
        with("seven").await,
    )
}

#[tokio::test]
async fn a_lease_key_reads_pools_and_leases_but_changes_nothing_else() {
    let (admin, lease, _) = scoped().await;
    let pool = admin.pool("scoped").await;
    let pool_path = format!("/v1/pools/{}", pool["id"].as_str().unwrap());
    let proxy = admin
        .proxy(&pool, serde_json::json!({"host": "10.3.0.1", "port": 80}))
        .await;
    for (method, path) in [
        (Method::GET, "/v1/pools/".to_owned()),
        (Method::GET, pool_path.clone()),
    ] {
        let (status, body) = lease.call(method, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (status, got) = lease
        .call(
            Method::POST,
            "/v1/leases/",
            Some(serde_json::json!({"pool_id": pool["id"], "consumer_id": "any"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{got}");
    let lease_path = format!("/v1/leases/{}", got["id"].as_str().unwrap());
    assert_eq!(
        lease.call(Method::GET, &lease_path, None).await.0,
        StatusCode::OK
    );
    let proxy_path = format!("{pool_path}/proxies/{}", proxy["id"].as_str().unwrap());
    for (method, path, body) in [
        (
            Method::POST,
            "/v1/pools/".to_owned(),
            Some(serde_json::json!({"name": "mine"})),
        ),
        (Method::DELETE, pool_path.clone(), None),
        (Method::GET, format!("{pool_path}/proxies/"), None),
        (
            Method::POST,
            format!("{pool_path}/proxies/"),
            Some(serde_json::json!({"host": "10.3.0.2", "port": 80})),
        ),
        (
            Method::PATCH,
            proxy_path.clone(),
            Some(serde_json::json!({"status": "banned"})),
        ),
        (Method::DELETE, proxy_path.clone(), None),
        (Method::GET, "/metrics".to_owned(), None),
    ] {
        let (status, answer) = lease.call(method, &path, body).await;
        assert_error(status, &answer, StatusCode::FORBIDDEN, "forbidden");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("scope lease")
        );
    }
    // Nothing changed: the pool and its one proxy are there.
    let (_, proxies) = admin
        .call(Method::GET, &format!("{pool_path}/proxies/"), None)
        .await;
    assert_eq!(proxies.as_array().unwrap().len(), 1);
    let (status, _) = lease
        .call(
            Method::POST,
            &format!("{lease_path}/release"),
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn acquire(
    s: &TestServer,
    pool: &serde_json::Value,
    consumer: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut body = serde_json::json!({"pool_id": pool["id"]});
    if let Some(c) = consumer {
        body["consumer_id"] = c.into();
    }
    s.call(Method::POST, "/v1/leases/", Some(body)).await
}

#[tokio::test]
async fn a_bound_key_leases_as_its_consumer_only() {
    let (admin, _, seven) = scoped().await;
    let pool = admin.pool("bound").await;
    admin
        .proxy(
            &pool,
            serde_json::json!({"host": "10.4.0.1", "port": 80, "max_concurrency": 5}),
        )
        .await;
    // Named as itself, or not named: leased as w7.
    for named in [Some("w7"), None] {
        let (status, got) = acquire(&seven, &pool, named).await;
        assert_eq!(status, StatusCode::CREATED, "{got}");
        assert_eq!(got["consumer"], "w7");
    }
    // Another consumer: 403 on consumer_id, nothing leased.
    let (status, body) = acquire(&seven, &pool, Some("default")).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(body["error"]["field"], "consumer_id");
    // Another consumer's lease is not found by the bound key, and stays held.
    let (_, other) = acquire(&admin, &pool, Some("other")).await;
    let path = format!("/v1/leases/{}", other["id"].as_str().unwrap());
    let (status, body) = seven.call(Method::GET, &path, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "lease_not_found");
    let (status, body) = seven
        .call(
            Method::POST,
            &format!("{path}/release"),
            Some(serde_json::json!({})),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "lease_not_found");
    assert_eq!(admin.call(Method::GET, &path, None).await.0, StatusCode::OK);
    // Its own lease it reads and releases.
    let (status, mine) = acquire(&admin, &pool, Some("w7")).await;
    assert_eq!(status, StatusCode::CREATED, "{mine}");
    let own = format!("/v1/leases/{}", mine["id"].as_str().unwrap());
    assert_eq!(seven.call(Method::GET, &own, None).await.0, StatusCode::OK);
    let (status, released) = seven
        .call(
            Method::POST,
            &format!("{own}/release"),
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(
        (status, &released["status"]),
        (StatusCode::OK, &serde_json::json!("released"))
    );
}
