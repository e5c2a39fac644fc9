//! Hostile input: every answer is a 4xx with a JSON error, never a 5xx.

use crate::common;

use common::{TestServer, assert_error, read};
use pharox_core::InMemoryStorage;
use pharox_server::{ApiKeys, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn raw(
    s: &TestServer,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, serde_json::Value) {
    let mut r = s.req(method, path).body(body);
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    read(r.send().await.unwrap()).await
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    let s = TestServer::start().await;
    for body in [
        "{",
        "{\"name\": }",
        "nul",
        "{\"name\": \"a\"} trailing",
        "\u{0}",
    ] {
        let (status, resp) = raw(
            &s,
            Method::POST,
            "/v1/pools/",
            Some("application/json"),
            body,
        )
        .await;
        assert_error(status, &resp, StatusCode::BAD_REQUEST, "invalid_json");
    }
}

#[tokio::test]
async fn wrong_types_missing_and_unknown_fields_are_a_422() {
    let s = TestServer::start().await;
    let pool = s.pool("types").await;
    let proxies = format!("/v1/pools/{}/proxies/", pool["id"].as_str().unwrap());
    for (path, body) in [
        ("/v1/pools/", json!({"name": 5})),
        ("/v1/pools/", json!({})),
        ("/v1/pools/", json!([])),
        ("/v1/pools/", json!({"name": "a", "owner": "me"})),
        (proxies.as_str(), json!({"host": "h", "port": 70_000})),
        (proxies.as_str(), json!({"host": "h", "port": -1})),
        (proxies.as_str(), json!({"host": "h", "port": "80"})),
        (
            proxies.as_str(),
            json!({"host": "h", "port": 80, "protocol": "ftp"}),
        ),
        (
            proxies.as_str(),
            json!({"host": "h", "port": 80, "asn": 1e30}),
        ),
        (
            proxies.as_str(),
            json!({"host": "h", "port": 80, "max_concurrency": 99_999_999_999u64}),
        ),
        (
            proxies.as_str(),
            json!({"host": "h", "port": 80, "password": 12345}),
        ),
        (
            "/v1/leases/",
            json!({"pool_id": pool["id"], "ttl_seconds": 1e300}),
        ),
        (
            "/v1/leases/",
            json!({"pool_id": pool["id"], "ttl_seconds": 18_446_744_073_709_551_615u64 as f64 * 2.0}),
        ),
        (
            "/v1/leases/",
            json!({"pool_id": pool["id"], "ttl_seconds": -5}),
        ),
        (
            "/v1/leases/",
            json!({"pool_id": pool["id"], "filters": {"contry": "AR"}}),
        ),
        (
            "/v1/leases/",
            json!({"pool_id": pool["id"], "filters": {"predicate": "lambda p: True"}}),
        ),
        ("/v1/leases/", json!({"pool_id": 42})),
    ] {
        let (status, resp) = s.call(Method::POST, path, Some(body.clone())).await;
        assert_error(
            status,
            &resp,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        );
        assert!(
            !resp.to_string().contains("12345") || path != proxies,
            "{resp}"
        );
    }
}

#[tokio::test]
async fn a_422_names_the_field_by_its_path() {
    let s = TestServer::start().await;
    let pool = s.pool("paths").await;
    let proxies = format!("/v1/pools/{}/proxies/", pool["id"].as_str().unwrap());
    for (path, body, field) in [
        (
            proxies.as_str(),
            json!({"host": "h", "port": 70_000}),
            "port",
        ),
        (
            proxies.as_str(),
            json!({"host": "h", "port": 1, "password": ["secret-in-a-list"]}),
            "password",
        ),
        (
            "/v1/leases/",
            json!({"pool_id": "p", "filters": {"any_of": [{"asn": "x"}]}}),
            "filters.any_of[0].asn",
        ),
    ] {
        let (status, resp) = s.call(Method::POST, path, Some(body)).await;
        assert_error(
            status,
            &resp,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        );
        assert_eq!(resp["error"]["field"], field, "{resp}");
        assert!(!resp.to_string().contains("secret-in-a-list"), "{resp}");
    }
}

#[tokio::test]
async fn numbers_beyond_f64_are_rejected_not_crashed_on() {
    let s = TestServer::start().await;
    let pool = s.pool("huge").await;
    let body = format!(
        r#"{{"pool_id": "{}", "filters": {{"latitude": 1e400, "longitude": 0}}}}"#,
        pool["id"].as_str().unwrap()
    );
    let (status, resp) = raw(
        &s,
        Method::POST,
        "/v1/leases/",
        Some("application/json"),
        body,
    )
    .await;
    assert!(status.is_client_error(), "{status} {resp}");
    assert!(resp["error"]["code"].is_string(), "{resp}");
}

#[tokio::test]
async fn deep_or_wide_filters_are_refused_with_a_4xx() {
    let s = TestServer::start().await;
    let pool = s.pool("deep").await;
    s.proxy(&pool, json!({"host": "h", "port": 1})).await;
    // Deeper than pharox's 8 levels: the store's limit, 400 on `filters`.
    let mut f = json!({"country": "AR"});
    for _ in 0..20 {
        f = json!({"all_of": [f]});
    }
    let (status, resp) = s
        .call(
            Method::POST,
            "/v1/leases/",
            Some(json!({"pool_id": pool["id"], "filters": f})),
        )
        .await;
    assert_error(status, &resp, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(resp["error"]["field"], "filters");
    // Deeper than serde_json's recursion limit: a 4xx, not a stack overflow.
    let deep = format!(
        r#"{{"pool_id": "deep", "filters": {}{}}}"#,
        r#"{"all_of": ["#.repeat(5_000),
        "]}".repeat(5_000)
    );
    let (status, resp) = raw(
        &s,
        Method::POST,
        "/v1/leases/",
        Some("application/json"),
        deep,
    )
    .await;
    assert!(status.is_client_error(), "{status}");
    assert!(resp["error"]["code"].is_string(), "{resp}");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_415() {
    let s = TestServer::start().await;
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let (status, resp) = raw(&s, Method::POST, "/v1/pools/", ct, r#"{"name":"a"}"#).await;
        assert_error(
            status,
            &resp,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
    }
}

#[tokio::test]
async fn an_oversized_body_is_a_413() {
    let config = ServerConfig {
        body_limit: 1024,
        ..ServerConfig::new(ApiKeys::none())
    };
    let s = TestServer::with(InMemoryStorage::new(), config, None).await;
    let body = json!({"name": "a", "description": "x".repeat(2048)}).to_string();
    let (status, resp) = raw(
        &s,
        Method::POST,
        "/v1/pools/",
        Some("application/json"),
        body,
    )
    .await;
    assert_error(
        status,
        &resp,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    // A body without Content-Length (chunked) is cut at the limit too.
    let chunks: Vec<Result<String, std::io::Error>> = vec![
        Ok("{\"name\": \"a\", \"description\": \"".into()),
        Ok("y".repeat(4096)),
        Ok("\"}".into()),
    ];
    let stream = reqwest::Body::wrap_stream(futures_stream(chunks));
    let (status, resp) = raw(
        &s,
        Method::POST,
        "/v1/pools/",
        Some("application/json"),
        stream,
    )
    .await;
    assert_error(
        status,
        &resp,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    // Just under the limit is fine.
    let (status, _) = s
        .call(
            Method::POST,
            "/v1/pools/",
            Some(json!({"name": "b", "description": "z".repeat(900)})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

fn futures_stream(
    chunks: Vec<Result<String, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> {
    futures_util::stream::iter(chunks)
}

#[tokio::test]
async fn bad_ids_unknown_routes_and_methods_answer_json() {
    let s = TestServer::start().await;
    let (status, resp) = s.call(Method::GET, "/v1/leases/not-a-uuid", None).await;
    assert_error(status, &resp, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(resp["error"]["field"], "lease_id");
    let (status, resp) = s.call(Method::GET, "/v1/pools/%FF%FE", None).await;
    assert!(status.is_client_error(), "{status}");
    assert!(resp["error"]["code"].is_string(), "{resp}");
    let (status, resp) = s.call(Method::GET, "/v2/nothing", None).await;
    assert_error(status, &resp, StatusCode::NOT_FOUND, "not_found");
    let (status, resp) = s.call(Method::PUT, "/v1/pools/", None).await;
    assert_error(
        status,
        &resp,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    let long = "a".repeat(10_000);
    let (status, resp) = s
        .call(Method::GET, &format!("/v1/pools/{long}"), None)
        .await;
    assert_error(status, &resp, StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test]
async fn arrays_and_other_values_where_objects_are_expected_are_a_422() {
    let s = TestServer::start().await;
    let pool = s.pool("shapes").await;
    let id = pool["id"].as_str().unwrap().to_owned();
    let routes = [
        (Method::POST, "/v1/pools/".to_owned()),
        (Method::PUT, "/v1/pools/shapes".to_owned()),
        (Method::POST, format!("/v1/pools/{id}/proxies/")),
        (Method::PUT, "/v1/pools/shapes/proxies/p".to_owned()),
        (Method::PATCH, "/v1/pools/shapes/proxies/p".to_owned()),
        (Method::POST, "/v1/leases/".to_owned()),
        (Method::POST, "/v1/consumers".to_owned()),
        (Method::POST, "/v1/pools/shapes/leases".to_owned()),
        (Method::POST, "/v1/pools/shapes/find".to_owned()),
        (Method::POST, "/v1/pools/shapes/cleanup".to_owned()),
        (Method::POST, "/v1/pools/shapes/health".to_owned()),
        (Method::POST, "/v1/pools/shapes/import".to_owned()),
        (Method::POST, "/v1/pools/shapes/wait".to_owned()),
    ];
    // Serde's derive takes a sequence for a struct (fields by position):
    // `["shapes-2", ""]` would have created a pool.
    for (method, path) in &routes {
        for body in [
            json!(["shapes-2", ""]),
            json!([]),
            json!("x"),
            json!(5),
            json!(null),
        ] {
            let (status, resp) = s.call(method.clone(), path, Some(body.clone())).await;
            common::assert_invalid_body(status, &resp);
        }
    }
    // Nested objects too: filters and their children.
    for filters in [
        json!(["AR"]),
        json!({"any_of": [["AR"]]}),
        json!({"all_of": {"country": "AR"}}),
    ] {
        for path in [
            "/v1/leases/",
            "/v1/pools/shapes/leases",
            "/v1/pools/shapes/find",
        ] {
            let body = json!({"pool_id": id, "filters": filters});
            let body = if path == "/v1/leases/" {
                body
            } else {
                json!({"filters": filters})
            };
            let (status, resp) = s.call(Method::POST, path, Some(body)).await;
            common::assert_invalid_body(status, &resp);
            assert!(
                resp["error"]["field"]
                    .as_str()
                    .unwrap()
                    .starts_with("filters"),
                "{resp}"
            );
        }
    }
    let (_, pools) = s.call(Method::GET, "/v1/pools/", None).await;
    assert_eq!(pools.as_array().unwrap().len(), 1, "{pools}");
}

#[tokio::test]
async fn the_storage_routes_answer_hostile_input_with_a_4xx() {
    let s = TestServer::start().await;
    s.pool("h").await;
    let long = "a".repeat(10_000);
    let pools = [
        "h",
        "ghost",
        "%7B%7D",
        "%00",
        "%0A",
        "%FF",
        long.as_str(),
        "0b6f4a52-1c2d-4e8f-9a0b-1c2d3e4f5a6b",
    ];
    let leases = ["nope", "00000000-0000-0000-0000-000000000000", "%FF"];
    let bodies = [
        None,
        Some(json!({})),
        Some(json!({"duration_ms": -1, "limit": "x", "token": 1.5})),
        Some(json!({"duration_ms": 1e300})),
        Some(
            json!({"strategy": 5, "filters": {"latitude": 1e308, "longitude": -1e308, "radius_km": 1e308}}),
        ),
        Some(json!({"proxy": long, "status": "active", "checked_at": "2025-01-31T12:00:00Z"})),
        Some(json!({"proxies": [{"host": long, "port": 1}]})),
    ];
    let mut paths = Vec::new();
    for pool in pools {
        for (method, suffix) in [
            (Method::GET, ""),
            (Method::PUT, ""),
            (Method::GET, "/stats"),
            (Method::GET, "/snapshot?credentials=include"),
            (Method::POST, "/cleanup"),
            (Method::POST, "/find"),
            (Method::POST, "/health"),
            (Method::POST, "/import"),
            (Method::POST, "/wait"),
            (Method::GET, "/leases"),
            (Method::POST, "/leases"),
            (Method::GET, "/proxies/%FF"),
            (Method::PUT, "/proxies/x"),
        ] {
            paths.push((method, format!("/v1/pools/{pool}{suffix}")));
        }
        for lease in leases {
            paths.push((Method::GET, format!("/v1/pools/{pool}/leases/{lease}")));
            paths.push((
                Method::POST,
                format!("/v1/pools/{pool}/leases/{lease}/release"),
            ));
            paths.push((
                Method::POST,
                format!("/v1/pools/{pool}/leases/{lease}/renew"),
            ));
        }
    }
    for lease in leases {
        paths.push((Method::POST, format!("/v1/leases/{lease}/renew")));
    }
    for (method, path) in paths {
        for body in &bodies {
            let (status, resp) = s.call(method.clone(), &path, body.clone()).await;
            assert!(
                status.is_success() || status.is_client_error(),
                "{method} {path} {body:?}: {status} {resp}"
            );
            if !status.is_success() {
                assert!(resp["error"]["code"].is_string(), "{method} {path}: {resp}");
            }
        }
    }
}
