//! The Grafana dashboard (deploy/grafana/dashboards/pharox.json) queries
//! only metrics and labels the binaries really export: a `pharox worker`
//! (with health checks) and a `pharox serve` run on a private redis-server,
//! leases are taken and refused through the server, both `/metrics` pages
//! are scraped once every family has a sample, and every metric name and
//! label name in the dashboard's queries must be in those scrapes.

#[path = "../../pharox-worker/tests/support/mod.rs"]
mod support;

mod server;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use pharox_core::testkit::PATIENCE;
use pharox_core::{PoolId, Proxy, ProxyProtocol, Storage};
use pharox_redis::testkit::RedisServer;
use pharox_redis::{RedisConfig, RedisStorage};
use serde_json::{Value, json};
use server::{Serve, pharox};

const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/grafana/dashboards/pharox.json"
);

/// Metric name -> label names seen, from a text-format scrape. Histogram
/// series keep their `_bucket` / `_sum` / `_count` names.
fn parse_scrape(page: &str, into: &mut BTreeMap<String, BTreeSet<String>>) {
    for line in page
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = into.entry(line[..name_end].to_owned()).or_default();
        if line[name_end..].starts_with('{') {
            let body = &line[name_end + 1..line.rfind('}').expect("closing brace")];
            labels.extend(label_names(body));
        }
    }
}

/// The label names of a `{…}` body (a scrape's labels or a PromQL
/// selector): what precedes each `=`, `!=`, `=~` or `!~` outside quotes.
fn label_names(body: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let (mut in_quotes, mut escaped) = (false, false);
    let mut name = String::new();
    for c in body.chars() {
        match (in_quotes, c) {
            (true, '\\') if !escaped => escaped = true,
            (true, '"') if !escaped => in_quotes = false,
            (true, _) => escaped = false,
            (false, '"') => in_quotes = true,
            (false, '=' | '!' | '~') => {
                if !name.is_empty() {
                    names.insert(std::mem::take(&mut name));
                }
            }
            (false, ',') => name.clear(),
            (false, c) if c.is_whitespace() => {}
            (false, c) => name.push(c),
        }
    }
    names
}

/// Every query (`expr`) of the dashboard's panels and variables.
fn dashboard_queries() -> Vec<String> {
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap();
    let mut queries = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    for var in dash["templating"]["list"].as_array().unwrap() {
        queries.push(var["query"]["query"].as_str().unwrap().to_owned());
    }
    queries
}

/// The `pharox_*` metric names a PromQL query reads, each with the label
/// names its selector and `by (…)` clauses use.
fn referenced(query: &str) -> Vec<(String, BTreeSet<String>)> {
    let mut out = Vec::new();
    let bytes = query.as_bytes();
    let mut i = 0;
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    while let Some(at) = query[i..].find("pharox_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && ident(bytes[end]) {
            end += 1;
        }
        let mut labels = BTreeSet::new();
        if query[end..].starts_with('{') {
            let close = end + query[end..].find('}').unwrap();
            labels = label_names(&query[end + 1..close]);
        }
        out.push((query[start..end].to_owned(), labels));
        i = end;
    }
    // `by (a, b)` groups on labels of the metrics inside.
    let mut rest = query;
    while let Some(at) = rest.find("by (") {
        let close = at + rest[at..].find(')').unwrap();
        for label in rest[at + 4..close].split(',').map(str::trim) {
            if label != "le" {
                for (_, labels) in &mut out {
                    labels.insert(label.to_owned());
                }
            }
        }
        rest = &rest[close..];
    }
    out
}

#[test]
fn the_reference_parser_reads_names_labels_and_by_clauses() {
    let q = r#"histogram_quantile(0.99, sum by (le, pool) (rate(pharox_x_bucket{pool=~"$pool", state!="a,b"}[1m])))"#;
    let got = referenced(q);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "pharox_x_bucket");
    assert_eq!(
        got[0].1,
        ["pool", "state"].map(String::from).into_iter().collect()
    );
    let mut seen = BTreeMap::new();
    parse_scrape(
        "# HELP x\npharox_a{pool=\"p,=\\\"q\",state=\"total\"} 1\npharox_b 2\n",
        &mut seen,
    );
    assert_eq!(
        seen["pharox_a"],
        ["pool", "state"].map(String::from).into_iter().collect()
    );
    assert!(seen["pharox_b"].is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_queries_only_exported_metrics_and_labels() {
    let redis = RedisServer::start();
    let url = redis.url();
    let store = RedisStorage::connect(RedisConfig::new(url.clone()))
        .await
        .unwrap();
    let pool = PoolId::from("dash");
    support::seed(&store, &pool, 0, 1).await;
    // One proxy a local HTTP proxy serves, so health checks pass.
    let target = support::target().await;
    let proxy = support::HttpProxy::default().start().await;
    store
        .upsert_proxy(
            &Proxy::new(pool.clone(), "127.0.0.1", proxy.port(), ProxyProtocol::Http)
                .with_id("local")
                .with_max_concurrency(1),
        )
        .await
        .unwrap();

    let metrics_port = support::free_port();
    let mut worker = pharox()
        .args(["worker", "--redis-url", &url, "--metrics-addr"])
        .arg(format!("127.0.0.1:{metrics_port}"))
        .args(["--sweep-interval", "100ms", "--health-interval", "200ms"])
        .arg("--health-target")
        .arg(format!("http://{target}/"))
        .env("PHAROX_ALLOW_PROXY_HOSTS", "127.0.0.0/8")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut serve = Serve::start(
        &["--redis-url", &url, "--allow-proxy-hosts", "127.0.0.0/8"],
        Some("dash-key"),
    );
    let base = serve.base().to_owned();
    let http = reqwest::Client::new();
    let post = |path: String, body: Value| {
        http.post(format!("{base}{path}"))
            .header("X-API-Key", "dash-key")
            .json(&body)
            .send()
    };
    // A lease, then a refusal (the one slot is held): a 201 and a 409.
    let lease = post(
        "/v1/pools/dash/leases".into(),
        json!({"consumer": "dash", "duration_ms": 60_000}),
    )
    .await
    .unwrap();
    assert_eq!(lease.status(), reqwest::StatusCode::CREATED);
    let refused = post("/v1/pools/dash/leases".into(), json!({"consumer": "dash"}))
        .await
        .unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::CONFLICT);

    // Scrape both until every family the worker exports has a sample
    // (health checks and sweeps come with their first passes).
    let scrape = |url: String| {
        let http = http.clone();
        async move {
            let answer = http
                .get(url)
                .header("X-API-Key", "dash-key")
                .send()
                .await
                .ok()?;
            answer.status().is_success().then_some(())?;
            answer.text().await.ok()
        }
    };
    let started = Instant::now();
    let seen = loop {
        let mut seen = BTreeMap::new();
        if let (Some(w), Some(s)) = (
            scrape(format!("http://127.0.0.1:{metrics_port}/metrics")).await,
            scrape(format!("{base}/metrics")).await,
        ) {
            parse_scrape(&w, &mut seen);
            parse_scrape(&s, &mut seen);
            if [
                "pharox_health_checks_total",
                "pharox_sweep_duration_seconds_bucket",
                "pharox_http_requests_total",
            ]
            .iter()
            .all(|m| seen.contains_key(*m))
            {
                break seen;
            }
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the worker and the server never exported every family; seen: {:?}\n{}",
            seen.keys().collect::<Vec<_>>(),
            serve.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = worker.kill();
    let _ = worker.wait();
    serve.terminate();

    let mut problems = Vec::new();
    let queries = dashboard_queries();
    assert!(queries.len() >= 10, "{queries:?}");
    for query in &queries {
        let refs = referenced(query);
        if refs.is_empty() {
            problems.push(format!("{query}: reads no pharox metric"));
        }
        for (metric, labels) in refs {
            match seen.get(&metric) {
                None => problems.push(format!("{query}: {metric} is not exported")),
                Some(have) => {
                    for label in labels.difference(have) {
                        problems.push(format!("{query}: {metric} has no label {label}"));
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the dashboard queries what the binaries do not export:\n{}",
        problems.join("\n")
    );
}
