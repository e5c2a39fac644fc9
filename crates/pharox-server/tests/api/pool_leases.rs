//! `/v1/pools/{pool}/leases`: acquire, find, list, read, release (with its
//! outcome) and renew; and the SDK-style renew by id.

use crate::common;

use std::time::Duration;

use common::{TestServer, assert_error, assert_invalid_body, is_canonical_uuid};
use pharox_core::{InMemoryStorage, ManualClock, Proxy, ProxyPool, ProxyProtocol};
use pharox_server::{ApiKeys, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A server on a manual clock with pool `p`: proxies `a` (AR, capacity 1,
/// with credentials) and `b` (BR, 20 ms).
async fn seeded() -> (TestServer, ManualClock) {
    let clock = ManualClock::starting_now();
    let store = InMemoryStorage::with_clock(clock.clone());
    store.add_pool(ProxyPool::new("p")).unwrap();
    store
        .add_proxy(
            Proxy::new("p", "10.0.0.1", 8080, ProxyProtocol::Http)
                .with_id("a")
                .with_country("AR")
                .with_credentials("user", "pw-in-leases")
                .with_max_concurrency(1),
        )
        .unwrap();
    store
        .add_proxy(
            Proxy::new("p", "10.0.0.2", 8080, ProxyProtocol::Socks5)
                .with_id("b")
                .with_country("BR")
                .with_latency_ms(20),
        )
        .unwrap();
    (
        TestServer::with(store, ServerConfig::new(ApiKeys::none()), None).await,
        clock,
    )
}

async fn acquire(s: &TestServer, body: Value) -> (StatusCode, Value) {
    s.call(Method::POST, "/v1/pools/p/leases", Some(body)).await
}

fn lease_path(lease: &Value, action: &str) -> String {
    format!(
        "/v1/pools/p/leases/{}{action}",
        lease["id"].as_str().unwrap()
    )
}

#[tokio::test]
async fn an_acquire_answers_the_whole_lease_with_the_password() {
    let (s, _) = seeded().await;
    let (status, lease) = acquire(
        &s,
        json!({"consumer": "w:{1}", "duration_ms": 1500, "strategy": "first-available",
               "filters": {"country": "ar"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    assert!(is_canonical_uuid(&lease["id"]));
    assert_eq!(
        (
            &lease["pool"],
            &lease["consumer"],
            &lease["status"],
            &lease["proxy"]["id"]
        ),
        (&json!("p"), &json!("w:{1}"), &json!("active"), &json!("a"))
    );
    assert_eq!(lease["proxy"]["password"], "pw-in-leases");
    assert_eq!(lease["proxy"]["username"], "user");
    assert!(lease["token"].as_u64().unwrap() >= 1);
    let acquired =
        chrono::DateTime::parse_from_rfc3339(lease["acquired_at"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(lease["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires - acquired, chrono::TimeDelta::milliseconds(1500));
    // `a` is full: only `b` qualifies without a filter, nothing with AR.
    let (status, body) = acquire(&s, json!({"filters": {"country": "AR"}})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "no_proxy_available");
    let (status, other) = s.call(Method::POST, "/v1/pools/p/leases", None).await;
    assert_eq!(status, StatusCode::CREATED, "no body: the defaults");
    assert_eq!(
        (&other["proxy"]["id"], &other["consumer"]),
        (&json!("b"), &json!("default"))
    );
}

#[tokio::test]
async fn bad_acquires_are_refused_on_the_stores_fields() {
    let (s, _) = seeded().await;
    for (body, field) in [
        (json!({"duration_ms": 0}), "duration"),
        (json!({"duration_ms": 86_400_001}), "duration"),
        (json!({"duration_ms": u64::MAX}), "duration"),
        (json!({"consumer": ""}), "consumer"),
        (json!({"strategy": "fastest"}), "strategy"),
        (json!({"filters": {"latitude": 1}}), "filters.latitude"),
        (
            json!({"filters": {"latitude": 1, "longitude": 1, "radius_km": 0}}),
            "filters.geo.radius_km",
        ),
    ] {
        let (status, resp) = acquire(&s, body.clone()).await;
        assert_error(status, &resp, StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(resp["error"]["field"], field, "{body} -> {resp}");
    }
    let (status, resp) = s
        .call(Method::POST, "/v1/pools/ghost/leases", Some(json!({})))
        .await;
    assert_error(status, &resp, StatusCode::NOT_FOUND, "pool_not_found");
}

#[tokio::test]
async fn find_picks_without_leasing() {
    let (s, _) = seeded().await;
    for (body, want) in [
        (json!({}), json!("a")),
        (json!({"strategy": "lowest_latency"}), json!("b")),
        (json!({"filters": {"country": "BR"}}), json!("b")),
        (json!({"filters": {"country": "CL"}}), Value::Null),
    ] {
        let (status, found) = s
            .call(Method::POST, "/v1/pools/p/find", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::OK, "{found}");
        assert_eq!(found["proxy"]["id"].clone(), want, "{body}");
    }
    let (_, found) = s.call(Method::POST, "/v1/pools/p/find", None).await;
    assert!(found["proxy"].get("password").is_none(), "{found}");
    let (_, found) = s
        .call(Method::POST, "/v1/pools/p/find?credentials=include", None)
        .await;
    assert_eq!(found["proxy"]["password"], "pw-in-leases");
    let (_, stats) = s.call(Method::GET, "/v1/pools/p/stats", None).await;
    assert_eq!(stats["active_leases"], 0);
    let (status, resp) = s.call(Method::POST, "/v1/pools/ghost/find", None).await;
    assert_error(status, &resp, StatusCode::NOT_FOUND, "pool_not_found");
}

#[tokio::test]
async fn leases_are_listed_and_read_while_live() {
    let (s, clock) = seeded().await;
    let (_, short) = acquire(&s, json!({"duration_ms": 100})).await;
    let (_, long) = acquire(&s, json!({"duration_ms": 60_000})).await;
    let (status, list) = s.call(Method::GET, "/v1/pools/p/leases", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let ids: Vec<&Value> = list["leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["id"])
        .collect();
    assert_eq!(ids, [&short["id"], &long["id"]]);
    assert!(!list.to_string().contains("pw-in-leases"), "{list}");
    let (status, got) = s.call(Method::GET, &lease_path(&long, ""), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((&got["id"], &got["token"]), (&long["id"], &long["token"]));
    clock.advance(Duration::from_millis(150));
    let (status, body) = s.call(Method::GET, &lease_path(&short, ""), None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "lease_not_found");
    for path in [
        "/v1/pools/p/leases/not-a-uuid",
        "/v1/pools/p/leases/not-a-uuid/release",
    ] {
        let method = if path.ends_with("release") {
            Method::POST
        } else {
            Method::GET
        };
        let (status, body) = s.call(method, path, None).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(body["error"]["field"], "lease_id");
    }
    let (status, body) = s.call(Method::GET, "/v1/pools/ghost/leases", None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "pool_not_found");
}

#[tokio::test]
async fn release_tells_released_expired_and_not_held_apart() {
    let (s, clock) = seeded().await;
    let (_, lease) = acquire(&s, json!({"duration_ms": 60_000})).await;
    // Another token is not this lease.
    let forged = json!({"token": lease["token"].as_u64().unwrap() + 1});
    let (status, body) = s
        .call(Method::POST, &lease_path(&lease, "/release"), Some(forged))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "lease_not_found");
    let (status, done) = s
        .call(
            Method::POST,
            &lease_path(&lease, "/release"),
            Some(json!({"token": lease["token"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(
        (&done["outcome"], &done["lease"]["id"]),
        (&json!("released"), &lease["id"])
    );
    assert!(done["lease"]["proxy"].get("password").is_none(), "{done}");
    let (status, body) = s
        .call(Method::POST, &lease_path(&lease, "/release"), None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "lease_not_found");
    // Past its deadline, not yet reclaimed: this release reclaims it.
    let (_, late) = acquire(&s, json!({"duration_ms": 100})).await;
    clock.advance(Duration::from_millis(150));
    let (status, done) = s
        .call(Method::POST, &lease_path(&late, "/release"), None)
        .await;
    assert_eq!(
        (status, &done["outcome"]),
        (StatusCode::OK, &json!("expired")),
        "{done}"
    );
    let (_, stats) = s.call(Method::GET, "/v1/pools/p/stats", None).await;
    assert_eq!(
        (
            &stats["active_leases"],
            &stats["released_leases"],
            &stats["expired_leases"]
        ),
        (&json!(0), &json!(1), &json!(1))
    );
    let (status, body) = s
        .call(
            Method::POST,
            &lease_path(&late, "/release"),
            Some(json!({"token": "x"})),
        )
        .await;
    assert_invalid_body(status, &body);
}

#[tokio::test]
async fn renew_moves_the_deadline_until_the_lease_is_lost() {
    let (s, clock) = seeded().await;
    let (_, lease) = acquire(&s, json!({"duration_ms": 100})).await;
    let (status, renewed) = s
        .call(
            Method::POST,
            &lease_path(&lease, "/renew"),
            Some(json!({"duration_ms": 60_000, "token": lease["token"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_eq!(
        (&renewed["id"], &renewed["token"]),
        (&lease["id"], &lease["token"])
    );
    assert_eq!(renewed["proxy"]["password"], "pw-in-leases");
    clock.advance(Duration::from_millis(150));
    let (status, _) = s.call(Method::GET, &lease_path(&lease, ""), None).await;
    assert_eq!(status, StatusCode::OK, "alive past its first deadline");
    for (body, want, code) in [
        (
            json!({"duration_ms": 0}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"token": 999_999}),
            StatusCode::NOT_FOUND,
            "lease_not_found",
        ),
        (
            json!({"ttl_seconds": 5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ] {
        let (status, resp) = s
            .call(Method::POST, &lease_path(&lease, "/renew"), Some(body))
            .await;
        assert_error(status, &resp, want, code);
    }
    s.call(Method::POST, &lease_path(&lease, "/release"), None)
        .await;
    let (status, body) = s
        .call(Method::POST, &lease_path(&lease, "/renew"), None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "lease_not_found");
}

#[tokio::test]
async fn an_sdk_lease_is_renewed_by_its_id_alone() {
    let (s, clock) = seeded().await;
    let pool_uuid = pharox_core::PoolId::from("p").uuid();
    let (status, lease) = s
        .call(
            Method::POST,
            "/v1/leases/",
            Some(json!({"pool_id": pool_uuid, "consumer_id": "sdk", "ttl_seconds": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    let renew = format!("/v1/leases/{}/renew", lease["id"].as_str().unwrap());
    let (status, renewed) = s
        .call(Method::POST, &renew, Some(json!({"ttl_seconds": 600})))
        .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    // The SDK's shape, unchanged: no password, its consumer's UUID.
    assert_eq!(
        (&renewed["id"], &renewed["consumer_id"]),
        (&lease["id"], &lease["consumer_id"])
    );
    assert_eq!(renewed["status"], "active");
    assert!(!renewed.to_string().contains("pw-in-leases"));
    clock.advance(Duration::from_secs(2));
    let (status, _) = s
        .call(
            Method::GET,
            &format!("/v1/leases/{}", lease["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "alive past its first deadline");
    let (status, body) = s
        .call(Method::POST, &renew, Some(json!({"ttl_seconds": 0})))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(body["error"]["field"], "ttl_seconds");
    s.call(
        Method::POST,
        &format!("/v1/leases/{}/release", lease["id"].as_str().unwrap()),
        None,
    )
    .await;
    let (status, body) = s.call(Method::POST, &renew, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "lease_not_found");
    let (status, body) = s.call(Method::POST, "/v1/leases/nope/renew", None).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
}
