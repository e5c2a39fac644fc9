//! `/v1/leases/`: acquire, read and release, as pharox-sdk calls them.

use crate::common;

use std::time::Duration;

use common::{TestServer, assert_error, is_canonical_uuid};
use pharox_core::{InMemoryStorage, ManualClock, PoolId, Proxy, ProxyPool, ProxyProtocol};
use pharox_server::{ApiKeys, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn acquire(s: &TestServer, body: Value) -> (StatusCode, Value) {
    s.call(Method::POST, "/v1/leases/", Some(body)).await
}

/// The payload PharoxClient.acquire_lease sends.
fn sdk_acquire(pool: &Value, strategy: &str) -> Value {
    json!({"pool_id": pool["id"], "consumer_id": "default", "ttl_seconds": 300, "strategy": strategy})
}

fn parse_time(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn acquired_lease_has_the_fields_the_sdk_parses() {
    let s = TestServer::start().await;
    let pool = s.pool("sdk").await;
    let proxy = s.proxy(&pool, json!({"host": "10.1.1.1", "port": 8080, "protocol": "http", "username": "u", "password": "pw-not-shown"})).await;
    let (status, lease) = acquire(&s, sdk_acquire(&pool, "first_available")).await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    for field in ["id", "proxy_id", "consumer_id", "pool_id"] {
        assert!(is_canonical_uuid(&lease[field]), "{field}: {lease}");
    }
    assert_eq!(lease["proxy_id"], proxy["id"]);
    assert_eq!(lease["pool_id"], pool["id"]);
    assert_eq!(lease["status"], "active");
    let (acquired, expires) = (
        parse_time(&lease["acquired_at"]),
        parse_time(&lease["expires_at"]),
    );
    assert_eq!(expires - acquired, chrono::TimeDelta::seconds(300));
    // Python 3.10's datetime.fromisoformat: six fraction digits, a numeric offset.
    let text = lease["acquired_at"].as_str().unwrap();
    assert!(text.ends_with("+00:00") && text.len() == 32, "{text}");
    assert_eq!(
        (&lease["consumer"], &lease["pool"], &lease["proxy"]["host"]),
        (&json!("default"), &json!("sdk"), &json!("10.1.1.1"))
    );
    assert!(!lease.to_string().contains("pw-not-shown"), "{lease}");
}

#[tokio::test]
async fn lease_is_read_while_live_and_not_found_after_release() {
    let s = TestServer::start().await;
    let pool = s.pool("rel").await;
    s.proxy(&pool, json!({"host": "h", "port": 1, "max_concurrency": 1}))
        .await;
    let (_, lease) = acquire(&s, sdk_acquire(&pool, "first_available")).await;
    let id = lease["id"].as_str().unwrap();
    let (status, got) = s.call(Method::GET, &format!("/v1/leases/{id}"), None).await;
    assert_eq!((status, &got), (StatusCode::OK, &lease));
    // The single slot is held: the next acquire is a 409 (the SDK's None).
    let (status, body) = acquire(&s, sdk_acquire(&pool, "first_available")).await;
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
    assert_eq!(
        (&released["id"], &released["proxy_id"]),
        (&lease["id"], &lease["proxy_id"])
    );
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
    // The slot came back.
    let (status, _) = acquire(&s, sdk_acquire(&pool, "first_available")).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn expired_lease_is_not_found() {
    let clock = ManualClock::starting_now();
    let store = InMemoryStorage::with_clock(clock.clone());
    let s = TestServer::with(store, ServerConfig::new(ApiKeys::none()), None).await;
    let pool = s.pool("exp").await;
    s.proxy(&pool, json!({"host": "h", "port": 1})).await;
    let (_, lease) = acquire(&s, json!({"pool_id": pool["id"], "ttl_seconds": 10})).await;
    let path = format!("/v1/leases/{}", lease["id"].as_str().unwrap());
    assert_eq!(s.call(Method::GET, &path, None).await.0, StatusCode::OK);
    clock.advance(Duration::from_secs(10));
    let (status, body) = s.call(Method::GET, &path, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "lease_not_found");
}

#[tokio::test]
async fn unknown_pool_and_unknown_lease_are_not_found() {
    let s = TestServer::start().await;
    for pool in ["0b6f4a52-1c2d-4e8f-9a0b-1c2d3e4f5a6b", "no-such-pool"] {
        let (status, body) = acquire(&s, json!({"pool_id": pool, "consumer_id": "c"})).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "pool_not_found");
    }
    let s2 = s.pool("p").await;
    s.proxy(&s2, json!({"host": "h", "port": 1})).await;
    let (_, lease) = acquire(&s, sdk_acquire(&s2, "first_available")).await;
    // Same pool tag, other random bits: not a lease.
    let mut forged = uuid::Uuid::parse_str(lease["id"].as_str().unwrap())
        .unwrap()
        .as_u128();
    forged ^= 1;
    let forged = uuid::Uuid::from_u128(forged);
    for id in [forged, uuid::Uuid::new_v4()] {
        let (status, body) = s.call(Method::GET, &format!("/v1/leases/{id}"), None).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "lease_not_found");
        let (status, body) = s
            .call(Method::POST, &format!("/v1/leases/{id}/release"), None)
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "lease_not_found");
    }
}

#[tokio::test]
async fn filters_and_strategies_pick_the_matching_proxy() {
    let s = TestServer::start().await;
    let pool = s.pool("geo").await;
    let ba = s.proxy(&pool, json!({"host": "ba", "port": 1, "country": "AR", "city": "Buenos Aires", "latitude": -34.60, "longitude": -58.38, "source": "a", "latency_ms": 90})).await;
    let sp = s.proxy(&pool, json!({"host": "sp", "port": 1, "country": "BR", "city": "Sao Paulo", "latitude": -23.55, "longitude": -46.63, "source": "b", "latency_ms": 20, "asn": 28573})).await;
    let pick = |filters: Value, strategy: &'static str| {
        let body = json!({"pool_id": pool["id"], "consumer_id": "f", "ttl_seconds": 5, "strategy": strategy, "filters": filters});
        let s = &s;
        async move {
            let (status, lease) = acquire(s, body).await;
            assert_eq!(status, StatusCode::CREATED, "{lease}");
            s.call(
                Method::POST,
                &format!("/v1/leases/{}/release", lease["id"].as_str().unwrap()),
                None,
            )
            .await;
            lease["proxy_id"].clone()
        }
    };
    assert_eq!(
        pick(json!({"country": "BR"}), "first_available").await,
        sp["id"]
    );
    assert_eq!(pick(json!({"asn": 28573}), "least_used").await, sp["id"]);
    // La Plata is ~55 km from Buenos Aires, ~1,700 km from Sao Paulo.
    assert_eq!(
        pick(
            json!({"latitude": -34.92, "longitude": -57.95, "radius_km": 60}),
            "round_robin"
        )
        .await,
        ba["id"]
    );
    assert_eq!(
        pick(
            json!({"latitude": -34.60, "longitude": -58.38}),
            "first_available"
        )
        .await,
        ba["id"]
    );
    assert_eq!(
        pick(json!({"none_of": [{"country": "AR"}]}), "first_available").await,
        sp["id"]
    );
    assert_eq!(
        pick(
            json!({"any_of": [{"source": "x"}, {"source": "a"}]}),
            "least_used"
        )
        .await,
        ba["id"]
    );
    assert_eq!(pick(json!({}), "lowest_latency").await, sp["id"]);
    assert_eq!(
        pick(
            json!({"all_of": [{"country": "AR"}, {"city": "Buenos Aires"}]}),
            "lowest_latency"
        )
        .await,
        ba["id"]
    );
    let (status, body) = acquire(
        &s,
        json!({"pool_id": pool["id"], "filters": {"country": "CL"}}),
    )
    .await;
    assert_error(status, &body, StatusCode::CONFLICT, "no_proxy_available");
}

#[tokio::test]
async fn round_robin_alternates_between_proxies() {
    let s = TestServer::start().await;
    let pool = s.pool("rr").await;
    let a = s.proxy(&pool, json!({"host": "a", "port": 1})).await;
    let b = s.proxy(&pool, json!({"host": "b", "port": 1})).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (_, lease) = acquire(&s, sdk_acquire(&pool, "round_robin")).await;
        seen.push(lease["proxy_id"].clone());
    }
    assert_eq!(
        seen,
        [
            a["id"].clone(),
            b["id"].clone(),
            a["id"].clone(),
            b["id"].clone()
        ]
    );
}

#[tokio::test]
async fn a_rust_made_pool_with_non_uuid_proxy_ids_answers_uuids() {
    let store = InMemoryStorage::new();
    store.add_pool(ProxyPool::new("latam-residential")).unwrap();
    store
        .add_proxy(Proxy::new("latam-residential", "h", 1, ProxyProtocol::Http).with_id("p-1"))
        .unwrap();
    let s = TestServer::with(store, ServerConfig::new(ApiKeys::none()), None).await;
    let pool_uuid = PoolId::from("latam-residential").uuid().to_string();
    let (status, lease) =
        acquire(&s, json!({"pool_id": pool_uuid, "consumer_id": "worker-7"})).await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    assert!(is_canonical_uuid(&lease["proxy_id"]), "{lease}");
    assert_eq!(
        lease["proxy_id"],
        pharox_server::proxy_uuid(&"latam-residential".into(), &"p-1".into()).to_string()
    );
    assert_eq!(lease["proxy"]["id"], "p-1");
    let (status, _) = s
        .call(
            Method::POST,
            &format!("/v1/leases/{}/release", lease["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn one_consumer_name_keeps_one_consumer_id() {
    let s = TestServer::start().await;
    let pool = s.pool("cons").await;
    s.proxy(&pool, json!({"host": "h", "port": 1})).await;
    let (_, a) = acquire(
        &s,
        json!({"pool_id": pool["id"], "consumer_id": "scraper-1"}),
    )
    .await;
    let (_, b) = acquire(
        &s,
        json!({"pool_id": pool["id"], "consumer_id": "scraper-1"}),
    )
    .await;
    let (_, c) = acquire(
        &s,
        json!({"pool_id": pool["id"], "consumer_id": "scraper-2"}),
    )
    .await;
    assert_eq!(a["consumer_id"], b["consumer_id"]);
    assert_ne!(a["consumer_id"], c["consumer_id"]);
    assert!(is_canonical_uuid(&c["consumer_id"]));
}

#[tokio::test]
async fn bad_acquire_fields_are_invalid_input() {
    let s = TestServer::start().await;
    let pool = s.pool("badacq").await;
    for (body, field) in [
        (
            json!({"pool_id": pool["id"], "ttl_seconds": 0}),
            "ttl_seconds",
        ),
        (
            json!({"pool_id": pool["id"], "ttl_seconds": 86_401}),
            "ttl_seconds",
        ),
        (
            json!({"pool_id": pool["id"], "strategy": "fastest"}),
            "strategy",
        ),
        (
            json!({"pool_id": pool["id"], "consumer_id": ""}),
            "consumer_id",
        ),
        (json!({"pool_id": ""}), "pool_id"),
        (
            json!({"pool_id": pool["id"], "filters": {"latitude": 1}}),
            "filters.latitude",
        ),
        (
            json!({"pool_id": pool["id"], "filters": {"radius_km": 3}}),
            "filters.radius_km",
        ),
        (
            json!({"pool_id": pool["id"], "filters": {"latitude": 1, "longitude": 1, "radius_km": -3}}),
            "filters.geo.radius_km",
        ),
    ] {
        let (status, resp) = acquire(&s, body.clone()).await;
        assert_error(status, &resp, StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(resp["error"]["field"], field, "{body} -> {resp}");
    }
}

/// Reads one HTTP/1.1 response (head and a Content-Length body) from `tcp`;
/// returns its status line and body.
async fn read_response(tcp: &mut tokio::net::TcpStream) -> (String, String) {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = tcp.read(&mut chunk).await.expect("reading a response");
        assert!(
            n > 0,
            "the server closed the connection: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = tcp.read(&mut chunk).await.expect("reading a body");
        assert!(n > 0, "the server closed the connection mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let status = head.lines().next().unwrap_or_default().to_owned();
    (
        status,
        String::from_utf8_lossy(&buf[head_end..]).into_owned(),
    )
}

#[tokio::test]
async fn release_reads_its_body_so_the_connection_stays_usable() {
    use tokio::io::AsyncWriteExt;
    let s = TestServer::start().await;
    let pool = s.pool("keepalive").await;
    s.proxy(&pool, json!({"host": "h", "port": 1})).await;
    let (_, lease) = acquire(&s, sdk_acquire(&pool, "first_available")).await;
    let id = lease["id"].as_str().unwrap();
    let mut tcp = tokio::net::TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .unwrap();
    // The head alone, as httpx writes it (the SDK's `{}` follows in a second
    // write). A server that answers now drops the connection when the body
    // arrives, and the client's next request on it fails.
    tcp.write_all(
        format!(
            "POST /v1/leases/{id}/release HTTP/1.1\r\nhost: x\r\n\
             content-type: application/json\r\ncontent-length: 2\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // A server that waits for the body cannot answer within any wait, so a
    // slow machine cannot make this fail.
    let early = tokio::time::timeout(Duration::from_millis(300), read_response(&mut tcp)).await;
    assert!(
        early.is_err(),
        "answered before the body arrived: {early:?}"
    );
    tcp.write_all(b"{}").await.unwrap();
    let (status, body) = read_response(&mut tcp).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}: {body}");
    tcp.write_all(format!("GET /v1/leases/{id} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (status, body) = read_response(&mut tcp).await;
    assert!(status.starts_with("HTTP/1.1 404"), "{status}: {body}");
}
