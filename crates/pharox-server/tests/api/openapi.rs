//! The OpenAPI document: served at `/openapi.json` without a key, lists
//! every route the server answers (and the docs list), and real answers,
//! errors included, validate against the schemas it gives for them.

use crate::common;

use std::collections::BTreeSet;

use common::TestServer;
use pharox_core::InMemoryStorage;
use pharox_server::{ApiKeys, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const KEY: &str = "openapi-test-key";

async fn keyed_server() -> TestServer {
    TestServer::with(
        InMemoryStorage::new(),
        ServerConfig::new(ApiKeys::admin([KEY])),
        Some(KEY),
    )
    .await
}

/// The document, and a validator of answers against it.
struct Doc(Value);

impl Doc {
    async fn fetch(srv: &TestServer) -> Self {
        // No key: the document is public.
        let resp = srv
            .http
            .get(format!("{}/openapi.json", srv.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("application/json"), "{ct}");
        Self(resp.json().await.unwrap())
    }

    fn operations(&self) -> Vec<(String, String)> {
        let mut all = Vec::new();
        for (path, item) in self.0["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                all.push((method.to_uppercase(), path.clone()));
            }
        }
        all
    }

    fn operation(&self, method: &Method, template: &str) -> &Value {
        let op = &self.0["paths"][template][method.as_str().to_lowercase()];
        assert!(op.is_object(), "{method} {template} is not in the document");
        op
    }

    /// Asserts the answer's status is documented for the operation, and its
    /// body (if the document gives a schema for it) validates.
    fn check(&self, method: &Method, template: &str, status: StatusCode, body: &Value) {
        let op = self.operation(method, template);
        let documented = &op["responses"][status.as_str()];
        assert!(
            documented.is_object(),
            "{method} {template} answered {status}, which the document does not list: {body}"
        );
        let schema = &documented["content"]["application/json"]["schema"];
        if body.is_string() && !schema.is_null() {
            panic!("{method} {template} {status}: not JSON: {body}");
        }
        if schema.is_null() {
            assert!(
                body.is_null() || documented["content"].is_object(),
                "{method} {template} {status}: a body the document does not describe: {body}"
            );
            return;
        }
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.0["components"],
            "allOf": [schema],
        });
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("{method} {template} {status}: bad schema: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {template} {status}: the answer violates its schema: {errors:?}\n{body}"
        );
    }
}

/// The status and body of an answer: its JSON, or its text as a string.
async fn read(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let body = match text.as_str() {
        "" => Value::Null,
        t => serde_json::from_str(t).unwrap_or(Value::String(text)),
    };
    (status, body)
}

/// Sends a request, checks its answer against the document, returns it.
async fn call(
    srv: &TestServer,
    doc: &Doc,
    method: Method,
    template: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut r = srv.req(method.clone(), path);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let (status, answer) = read(r.send().await.unwrap()).await;
    doc.check(&method, template, status, &answer);
    (status, answer)
}

fn collect_refs(v: &Value, into: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                into.push(r.clone());
            }
            map.values().for_each(|v| collect_refs(v, into));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, into)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_the_api_key_scheme() {
    let doc = pharox_server::openapi();
    let v = serde_json::to_value(&doc).unwrap();
    assert_eq!(v["openapi"], "3.1.0");
    let scheme = &v["components"]["securitySchemes"]["api_key"];
    assert_eq!(scheme["type"], "apiKey", "{scheme}");
    assert_eq!(scheme["in"], "header");
    assert_eq!(scheme["name"], "X-API-Key");
    // Keyed routes ask for it and document 401/403; the probes do not.
    let pools = &v["paths"]["/v1/pools/"]["get"];
    assert_eq!(pools["security"], json!([{"api_key": []}]), "{pools}");
    assert!(pools["responses"]["401"].is_object());
    assert!(v["paths"]["/healthz"]["get"]["security"].is_null());
    assert!(v["paths"]["/openapi.json"]["get"]["security"].is_null());
    // Enums are components, referenced where used.
    for name in [
        "ProxyStatus",
        "ProxyProtocol",
        "LeaseStatus",
        "SdkLeaseStatus",
    ] {
        assert!(
            v["components"]["schemas"][name]["enum"].is_array(),
            "{name}"
        );
    }
    let text = v.to_string();
    assert!(text.contains(r##""$ref":"#/components/schemas/ProxyStatus""##));
    // Every reference resolves (parameters included, which no answer checks).
    let mut refs = Vec::new();
    collect_refs(&v, &mut refs);
    assert!(refs.len() > 50, "{}", refs.len());
    for r in refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(v.pointer(pointer).is_some(), "unresolvable $ref {r}");
    }
    // Integer ranges are what the server accepts.
    let port = &v["components"]["schemas"]["CreateProxy"]["properties"]["port"];
    assert_eq!(
        (port["minimum"].as_u64(), port["maximum"].as_u64()),
        (Some(1), Some(65535))
    );
}

#[tokio::test]
async fn the_served_document_is_public_and_describes_the_configuration() {
    let srv = keyed_server().await;
    let doc = Doc::fetch(&srv).await;
    assert_eq!(
        doc.0,
        serde_json::to_value(pharox_server::openapi()).unwrap()
    );
    // Without keys, nothing asks for one.
    let open = TestServer::start().await;
    let doc = Doc::fetch(&open).await;
    assert!(doc.0["components"]["securitySchemes"].is_null());
    assert!(!doc.0.to_string().contains("\"security\""));
}

#[tokio::test]
async fn every_documented_operation_is_served_and_every_doc_route_documented() {
    let srv = keyed_server().await;
    let doc = Doc::fetch(&srv).await;
    let ops = doc.operations();
    for (method, template) in &ops {
        let path = template
            .replace("{pool}", "no-such-pool")
            .replace("{proxy}", "no-such-proxy")
            .replace("{lease}", "00000000-0000-4000-8000-000000000000");
        let resp = srv
            .req(Method::from_bytes(method.as_bytes()).unwrap(), &path)
            .send()
            .await
            .unwrap();
        let (status, body) = read(resp).await;
        // The router's fallbacks answer these codes for what it does not serve.
        assert!(
            !matches!(
                body["error"]["code"].as_str(),
                Some("not_found" | "method_not_allowed")
            ),
            "{method} {template}: {status} {body}"
        );
    }
    // Every route docs/http-api.md lists is documented, and the reverse
    // (but for the operations routes and the collections without their slash).
    let listed: BTreeSet<(String, String)> = include_str!("../../../../docs/http-api.md")
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(r, _)| r.to_owned()))
        .filter_map(|r| r.split_once(' ').map(|(m, p)| (m.to_owned(), p.to_owned())))
        .collect();
    let documented: BTreeSet<(String, String)> = ops
        .into_iter()
        .filter(|(_, p)| p.starts_with("/v1/"))
        .filter(|(m, p)| {
            // `/v1/pools` beside `/v1/pools/`.
            !listed.contains(&(m.clone(), format!("{p}/")))
        })
        .collect();
    assert_eq!(listed, documented);
}

#[tokio::test]
async fn answers_and_errors_validate_against_the_document() {
    let srv = keyed_server().await;
    let doc = Doc::fetch(&srv).await;
    let g = Method::GET;
    let p = Method::POST;
    let (s, pool) = call(
        &srv,
        &doc,
        p.clone(),
        "/v1/pools/",
        "/v1/pools/",
        Some(json!({"name": "oa", "description": null})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = pool["id"].as_str().unwrap().to_owned();
    call(&srv, &doc, g.clone(), "/v1/pools/", "/v1/pools/", None).await;
    call(&srv, &doc, g.clone(), "/v1/pools", "/v1/pools", None).await;
    call(
        &srv,
        &doc,
        g.clone(),
        "/v1/pools/{pool}",
        &format!("/v1/pools/{id}"),
        None,
    )
    .await;
    let (s, _) = call(
        &srv,
        &doc,
        p.clone(),
        "/v1/pools/",
        "/v1/pools/",
        Some(json!({"name": "oa"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let proxies = "/v1/pools/{pool}/proxies/";
    let at = format!("/v1/pools/{id}/proxies/");
    // Whole-number floats are integers, as JSON Schema says.
    let (s, proxy) = call(
        &srv,
        &doc,
        p.clone(),
        proxies,
        &at,
        Some(json!({"host": "10.1.2.3", "port": 8080.0, "country": "DE",
                    "username": "u", "password": "pw", "max_concurrency": 2.0,
                    "latitude": 52.5, "longitude": 13.4, "asn": null})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{proxy}");
    assert_eq!(proxy["port"], 8080);
    let proxy_id = proxy["id"].as_str().unwrap().to_owned();
    for (body, want) in [
        (
            json!({"host": "10.1.2.3", "port": 80.5}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"host": "10.1.2.3", "port": 70000}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"host": "10.1.2.3", "port": 0}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"host": "127.0.0.1", "port": 80}),
            StatusCode::BAD_REQUEST,
        ),
        (json!([1, 2]), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (s, _) = call(&srv, &doc, p.clone(), proxies, &at, Some(body)).await;
        assert_eq!(s, want);
    }
    call(&srv, &doc, g.clone(), proxies, &at, None).await;
    call(
        &srv,
        &doc,
        g.clone(),
        proxies,
        &format!("{at}?view=full"),
        None,
    )
    .await;
    let one = "/v1/pools/{pool}/proxies/{proxy}";
    let one_at = format!("/v1/pools/{id}/proxies/{proxy_id}");
    call(
        &srv,
        &doc,
        g.clone(),
        one,
        &format!("{one_at}?credentials=include"),
        None,
    )
    .await;
    call(
        &srv,
        &doc,
        Method::PATCH,
        one,
        &one_at,
        Some(json!({"status": "active"})),
    )
    .await;
    call(
        &srv,
        &doc,
        Method::PUT,
        one,
        &one_at,
        Some(
            json!({"host": "10.1.2.3", "port": 8080, "username": "u", "password": "pw",
                    "country": "DE", "max_concurrency": 2}),
        ),
    )
    .await;
    call(
        &srv,
        &doc,
        p.clone(),
        "/v1/pools/{pool}/import",
        &format!("/v1/pools/{id}/import"),
        Some(json!({"proxies": [{"host": "10.1.2.4", "port": 81}, {"host": "x", "port": -1}]})),
    )
    .await;
    call(
        &srv,
        &doc,
        p.clone(),
        "/v1/pools/{pool}/health",
        &format!("/v1/pools/{id}/health"),
        Some(
            json!({"proxy": proxy_id, "status": "active", "latency_ms": 12.0,
                    "checked_at": "2030-01-01T00:00:00Z"}),
        ),
    )
    .await;
    // Leases, the SDK's way and the Storage way.
    let (s, lease) = call(
        &srv,
        &doc,
        p.clone(),
        "/v1/leases/",
        "/v1/leases/",
        Some(
            json!({"pool_id": id, "ttl_seconds": 60.0, "strategy": "least_used",
                    "filters": {"country": "DE", "any_of": [{"asn": null}]}}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{lease}");
    let lease_id = lease["id"].as_str().unwrap().to_owned();
    call(
        &srv,
        &doc,
        g.clone(),
        "/v1/leases/{lease}",
        &format!("/v1/leases/{lease_id}"),
        None,
    )
    .await;
    call(
        &srv,
        &doc,
        p.clone(),
        "/v1/leases/{lease}/renew",
        &format!("/v1/leases/{lease_id}/renew"),
        None,
    )
    .await;
    call(
        &srv,
        &doc,
        p.clone(),
        "/v1/leases/{lease}/release",
        &format!("/v1/leases/{lease_id}/release"),
        Some(json!({})),
    )
    .await;
    let (s, _) = call(
        &srv,
        &doc,
        g.clone(),
        "/v1/leases/{lease}",
        &format!("/v1/leases/{lease_id}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(
        &srv,
        &doc,
        g.clone(),
        "/v1/leases/{lease}",
        "/v1/leases/not-a-uuid",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let pl = format!("/v1/pools/{id}/leases");
    let (s, rec) = call(
        &srv,
        &doc,
        p.clone(),
        "/v1/pools/{pool}/leases",
        &pl,
        Some(json!({"consumer": "w1", "duration_ms": 5000.0})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{rec}");
    let rec_id = rec["id"].as_str().unwrap();
    let token = rec["token"].clone();
    call(&srv, &doc, g.clone(), "/v1/pools/{pool}/leases", &pl, None).await;
    let one_lease = "/v1/pools/{pool}/leases/{lease}";
    call(
        &srv,
        &doc,
        g.clone(),
        one_lease,
        &format!("{pl}/{rec_id}"),
        None,
    )
    .await;
    call(
        &srv,
        &doc,
        p.clone(),
        "/v1/pools/{pool}/leases/{lease}/renew",
        &format!("{pl}/{rec_id}/renew"),
        Some(json!({"token": token, "duration_ms": null})),
    )
    .await;
    // Both slots of the one German proxy taken: 409.
    let german = json!({"filters": {"country": "de"}});
    for want in [StatusCode::CREATED, StatusCode::CONFLICT] {
        let (s, _) = call(
            &srv,
            &doc,
            p.clone(),
            "/v1/pools/{pool}/leases",
            &pl,
            Some(german.clone()),
        )
        .await;
        assert_eq!(s, want);
    }
    call(
        &srv,
        &doc,
        p.clone(),
        "/v1/pools/{pool}/find",
        &format!("/v1/pools/{id}/find"),
        Some(json!({"strategy": "round_robin", "filters": null})),
    )
    .await;
    call(
        &srv,
        &doc,
        p.clone(),
        "/v1/pools/{pool}/leases/{lease}/release",
        &format!("{pl}/{rec_id}/release"),
        Some(json!({"token": token})),
    )
    .await;
    call(
        &srv,
        &doc,
        g.clone(),
        "/v1/pools/{pool}/stats",
        &format!("/v1/pools/{id}/stats"),
        None,
    )
    .await;
    call(
        &srv,
        &doc,
        g.clone(),
        "/v1/pools/{pool}/snapshot",
        &format!("/v1/pools/{id}/snapshot?credentials=include"),
        None,
    )
    .await;
    call(
        &srv,
        &doc,
        p.clone(),
        "/v1/pools/{pool}/cleanup",
        &format!("/v1/pools/{id}/cleanup"),
        Some(json!({"limit": 10.0})),
    )
    .await;
    call(
        &srv,
        &doc,
        p.clone(),
        "/v1/pools/{pool}/wait",
        &format!("/v1/pools/{id}/wait"),
        Some(json!({"max_wait_ms": 0})),
    )
    .await;
    call(
        &srv,
        &doc,
        p.clone(),
        "/v1/consumers",
        "/v1/consumers",
        Some(json!({"name": "w2"})),
    )
    .await;
    call(
        &srv,
        &doc,
        g.clone(),
        "/v1/consumers",
        "/v1/consumers",
        None,
    )
    .await;
    call(&srv, &doc, g.clone(), "/healthz", "/healthz", None).await;
    call(&srv, &doc, g.clone(), "/readyz", "/readyz", None).await;
    call(&srv, &doc, Method::DELETE, one, &one_at, None).await;
    call(
        &srv,
        &doc,
        Method::DELETE,
        "/v1/pools/{pool}",
        &format!("/v1/pools/{id}"),
        None,
    )
    .await;
    let (s, _) = call(
        &srv,
        &doc,
        Method::DELETE,
        "/v1/pools/{pool}",
        &format!("/v1/pools/{id}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The key check's answers.
    for (key, want) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("wrong"), StatusCode::FORBIDDEN),
    ] {
        let mut r = srv.http.get(format!("{}/v1/pools/", srv.base));
        if let Some(k) = key {
            r = r.header("X-API-Key", k);
        }
        let (s, body) = read(r.send().await.unwrap()).await;
        assert_eq!(s, want);
        doc.check(&g, "/v1/pools/", s, &body);
    }
}

/// Bad input of every kind, to every operation that takes a body or a
/// parameter: a documented 4xx with a JSON error, never a 5xx.
#[tokio::test]
async fn bad_input_to_every_operation_is_a_documented_4xx() {
    let srv = keyed_server().await;
    let doc = Doc::fetch(&srv).await;
    srv.pool("bad").await;
    let bodies: [(&str, &[u8]); 9] = [
        ("application/json", b"not json"),
        ("application/json", b"[1, 2]"),
        ("application/json", b"null"),
        ("application/json", b"\"text\""),
        ("application/json", b"{\"no_such_field\": 1}"),
        ("application/json", b"{} {}"),
        ("application/json", b"{\"port\": 1e400}"),
        ("text/plain", b"{}"),
        ("application/json", &[0xff, 0xfe, b'{']),
    ];
    for (method, template) in doc.operations() {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let op = doc.operation(&method, &template).clone();
        let paths = [
            template
                .replace("{pool}", "bad")
                .replace("{proxy}", "p")
                .replace("{lease}", "not-a-uuid"),
            template
                .replace("{pool}", &"x".repeat(300))
                .replace("{proxy}", "%00")
                .replace("{lease}", "00000000-0000-4000-8000-000000000000"),
        ];
        for path in &paths {
            let query = format!("{path}?credentials=maybe&view=42");
            let mut sends: Vec<reqwest::RequestBuilder> = vec![srv.req(method.clone(), &query)];
            if op["requestBody"].is_object() {
                for (ct, body) in &bodies {
                    sends.push(
                        srv.req(method.clone(), path)
                            .header("content-type", *ct)
                            .body(body.to_vec()),
                    );
                }
            }
            for send in sends {
                let (status, body) = read(send.send().await.unwrap()).await;
                if template == "/openapi.json" || template == "/healthz" {
                    continue;
                }
                assert!(
                    status.is_client_error() || status.is_success(),
                    "{method} {path}: {status} {body}"
                );
                doc.check(&method, &template, status, &body);
            }
        }
    }
}

#[tokio::test]
async fn the_validator_rejects_answers_of_the_wrong_shape() {
    let srv = keyed_server().await;
    let doc = Doc::fetch(&srv).await;
    if let Ok(path) = std::env::var("PHAROX_DUMP_OPENAPI") {
        std::fs::write(path, serde_json::to_string_pretty(&doc.0).unwrap()).unwrap();
    }
    let pool = json!({"id": "0b7c9c5e-0000-4000-8000-000000000000", "key": "k",
                      "name": "n", "description": null});
    doc.check(&Method::GET, "/v1/pools/{pool}", StatusCode::OK, &pool);
    for wrong in [
        json!({"id": "not-a-uuid-at-all", "key": "k", "name": "n", "description": null}),
        json!({"key": "k", "name": "n", "description": null}),
        json!({"id": pool["id"], "key": 5, "name": "n", "description": null}),
        json!([pool]),
    ] {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            doc.check(&Method::GET, "/v1/pools/{pool}", StatusCode::OK, &wrong)
        }));
        assert!(caught.is_err(), "{wrong} passed");
    }
    // A status the operation does not document fails too.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        doc.check(
            &Method::GET,
            "/v1/pools/",
            StatusCode::IM_A_TEAPOT,
            &Value::Null,
        )
    }));
    assert!(caught.is_err());
}
