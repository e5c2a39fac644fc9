//! `/v1/pools/{id}/proxies/`: add (as the SDK sends it), list, change status, remove.

use crate::common;

use common::{TestServer, assert_error, is_canonical_uuid};
use pharox_core::InMemoryStorage;
use pharox_server::{ApiKeys, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

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

#[tokio::test]
async fn refused_proxy_hosts_are_invalid_input_and_nothing_is_stored() {
    let s = TestServer::start().await;
    let pool = s.pool("ssrf").await;
    let path = format!("/v1/pools/{}/proxies/", pool["id"].as_str().unwrap());
    s.proxy(&pool, json!({"id": "kept", "host": "10.0.0.1", "port": 80}))
        .await;
    for (host, why) in [
        ("127.0.0.1", "loopback addresses are refused"),
        ("2130706433", "reads as 127.0.0.1"),
        ("::ffff:127.0.0.1", "IPv4-mapped"),
        ("[::1]", "loopback addresses are refused"),
        ("localhost", "loopback names are refused"),
        ("api.LOCALHOST.", "loopback names are refused"),
        ("169.254.169.254", "link-local addresses are refused"),
        ("fe80::1", "link-local addresses are refused"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast addresses are refused"),
    ] {
        // A new proxy, and an update of a stored one to that host.
        for body in [
            json!({"host": host, "port": 8080}),
            json!({"id": "kept", "host": host, "port": 8080}),
        ] {
            let (status, resp) = s.call(Method::POST, &path, Some(body.clone())).await;
            assert_error(status, &resp, StatusCode::BAD_REQUEST, "invalid_input");
            assert_eq!(resp["error"]["field"], "host", "{body} -> {resp}");
            let reason = resp["error"]["reason"].as_str().unwrap();
            assert!(reason.contains(why), "{host}: {reason}");
            assert!(reason.contains("--allow-proxy-hosts"), "{host}: {reason}");
        }
    }
    let (_, list) = s.call(Method::GET, &path, None).await;
    let hosts: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["host"])
        .collect();
    assert_eq!(hosts, [&json!("10.0.0.1")], "{list}");
}

#[tokio::test]
async fn the_allow_list_admits_the_hosts_it_names_only() {
    let config = ServerConfig {
        proxy_hosts: "127.0.0.0/8,localhost".parse().unwrap(),
        ..ServerConfig::new(ApiKeys::none())
    };
    let s = TestServer::with(InMemoryStorage::new(), config, None).await;
    let pool = s.pool("lab").await;
    for host in [
        "127.0.0.1",
        "127.1",
        "localhost",
        "10.1.2.3",
        "192.168.0.9",
        "fd00::1",
    ] {
        s.proxy(&pool, json!({"host": host, "port": 3128})).await;
    }
    let path = format!("/v1/pools/{}/proxies/", pool["id"].as_str().unwrap());
    for host in ["169.254.169.254", "::1", "x.localhost"] {
        let (status, resp) = s
            .call(Method::POST, &path, Some(json!({"host": host, "port": 1})))
            .await;
        assert_error(status, &resp, StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(resp["error"]["field"], "host", "{host}: {resp}");
    }
}
