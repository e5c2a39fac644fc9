//! /metrics parses with the Python reference client's parsers (OpenMetrics,
//! the format served, and the classic text format) for pools named by
//! hostile ids, and every id comes back exactly as its `pool` label.
//!
//! The parser runs as `$PHAROX_TEST_PYTHON tests/parse_metrics.py`;
//! scripts/test.sh sets that up (a venv at target/py-venv).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pharox_core::testkit::contract::HOSTILE_IDS;
use pharox_core::testkit::{Harness, test_python};
use pharox_core::{PoolId, PoolStatsSnapshot, ProxyStatus, Storage};
use pharox_redis::testkit::RedisHarness;
use pharox_worker::{CancellationToken, Metrics, SweepReport, Worker, WorkerConfig};
use serde::Deserialize;

/// Series per pool without health checks: 4 proxy states, active leases,
/// 5 counters, and the sweep histogram (16 buckets, +Inf, sum, count).
const SERIES_PER_POOL: usize = 4 + 1 + 5 + 19;
/// One `pharox_health_checks_total` series per status.
const HEALTH_SERIES_PER_POOL: usize = 4;

/// Every family the worker exports, with its OpenMetrics type (health
/// checks last: a family without series is not written).
const FAMILIES: [(&str, &str); 9] = [
    ("pharox_pool_proxies", "gauge"),
    ("pharox_pool_active_leases", "gauge"),
    ("pharox_pool_leases", "counter"),
    ("pharox_pool_released_leases", "counter"),
    ("pharox_pool_expired_leases", "counter"),
    ("pharox_sweeps", "counter"),
    ("pharox_swept_leases", "counter"),
    ("pharox_sweep_duration_seconds", "histogram"),
    ("pharox_health_checks", "counter"),
];

/// The contract's hostile ids, plus every character the text format
/// escapes or uses as syntax, label-injection attempts and a longest id
/// that doubles when escaped. Stores accept all of them.
fn pool_ids() -> Vec<String> {
    let more = [
        "\"",
        "\\",
        "\\\\\"",
        "\\n",
        "\\\"}",
        "}",
        "{",
        "=",
        ",",
        "a ",
        "a=\"b\",c=\"d",
        "x\"} 99",
        "# EOF",
        "Ωμέγα ✓ ﬁ",
        "a\u{2028}b",
        "\u{feff}bom",
    ];
    let longest = "\"\\".repeat(pharox_core::validate::MAX_POOL_ID_LEN / 2);
    let ids: Vec<String> = HOSTILE_IDS
        .iter()
        .chain(&more)
        .map(|s| s.to_string())
        .chain([longest])
        .collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "ids are distinct"
    );
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_over_http_parse_for_hostile_pool_ids() {
    let h = RedisHarness::start().await;
    let store = h.storage().clone();
    let ids = pool_ids();
    // Pool i has i + 1 proxies of one slot each and i leases held.
    for (i, id) in ids.iter().enumerate() {
        let pool = PoolId::from(id.as_str());
        support::seed(&store, &pool, i + 1, 1).await;
        for _ in 0..i {
            let req = pharox_core::testkit::request(&pool);
            store.acquire(&req).await.unwrap().expect("a free slot");
        }
    }

    let port = support::free_port();
    let worker = Worker::new(
        store.clone(),
        WorkerConfig {
            sweep_interval: Duration::from_millis(100),
            jitter: 0.0,
            metrics_addr: Some(format!("127.0.0.1:{port}").parse().unwrap()),
            ..WorkerConfig::default()
        },
    );
    let metrics = worker.metrics();
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));
    // The pools come back from the store's listing: one full tick saw them all.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metrics.pools().len() < ids.len() {
        assert!(Instant::now() < deadline, "no tick saw every pool in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let page = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let content_type = page.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    let text = page.text().await.unwrap();
    stop.cancel();
    running.await.unwrap().unwrap();

    let samples = parse_both(&text, &FAMILIES[..8]);
    assert_eq!(samples.len(), ids.len() * SERIES_PER_POOL, "{text}");
    assert_eq!(pools_seen(&samples), ids.iter().collect(), "{text}");
    for (i, id) in ids.iter().enumerate() {
        let stats = store.pool_stats(&PoolId::from(id.as_str())).await.unwrap();
        assert_eq!(
            (stats.total, stats.active_leases),
            (i as u64 + 1, i as u64),
            "{id:?}"
        );
        assert_stats(&samples, &stats);
        let sweeps = value(&samples, "pharox_sweeps_total", id, &[]);
        assert!(sweeps >= 1.0, "{id:?}: {sweeps} sweeps");
        assert_eq!(value(&samples, "pharox_swept_leases_total", id, &[]), 0.0);
        let timed = value(&samples, "pharox_sweep_duration_seconds_count", id, &[]);
        assert!(timed >= 1.0, "{id:?}: {timed} sweeps timed");
    }
}

/// The registry on its own: every label kind (health statuses too) and ids
/// a store refuses (control characters) but the encoder must still escape.
#[test]
fn rendered_metrics_parse_for_every_label_and_refused_ids() {
    let metrics = Metrics::new();
    let mut ids = pool_ids();
    ids.extend(["a\nb", "\n", "\\\n\""].map(String::from));
    for (i, id) in ids.iter().enumerate() {
        let pool = PoolId::from(id.as_str());
        let n = i as u64;
        metrics.observe_stats(&PoolStatsSnapshot {
            pool: pool.clone(),
            total: n + 4,
            active: n + 3,
            available: n + 2,
            leased: n + 1,
            active_leases: n,
            total_leases: 3 * n + 10,
            released_leases: 2 * n + 6,
            expired_leases: 4,
            collected_at: chrono::Utc::now(),
        });
        let report = SweepReport {
            reclaimed: n,
            batches: 1,
            duration: Duration::from_millis(3),
            interrupted: false,
        };
        metrics.observe_sweep(&pool, &report);
        for status in [
            ProxyStatus::Active,
            ProxyStatus::Inactive,
            ProxyStatus::Slow,
            ProxyStatus::Banned,
        ] {
            metrics.observe_health(&pool, status);
        }
        metrics.observe_health(&pool, ProxyStatus::Banned);
    }
    let text = metrics.render();

    let samples = parse_both(&text, &FAMILIES);
    assert_eq!(
        samples.len(),
        ids.len() * (SERIES_PER_POOL + HEALTH_SERIES_PER_POOL),
        "{text}"
    );
    assert_eq!(pools_seen(&samples), ids.iter().collect(), "{text}");
    for (i, id) in ids.iter().enumerate() {
        let n = i as f64;
        let v = |name: &str, extra: &[(&str, &str)]| value(&samples, name, id, extra);
        assert_eq!(v("pharox_pool_proxies", &[("state", "total")]), n + 4.0);
        assert_eq!(v("pharox_pool_leases_total", &[]), 3.0 * n + 10.0);
        assert_eq!(v("pharox_swept_leases_total", &[]), n);
        assert_eq!(v("pharox_sweep_duration_seconds_count", &[]), 1.0);
        assert_eq!(
            v("pharox_sweep_duration_seconds_bucket", &[("le", "+Inf")]),
            1.0
        );
        for (status, count) in [
            ("active", 1.0),
            ("inactive", 1.0),
            ("slow", 1.0),
            ("banned", 2.0),
        ] {
            let got = v("pharox_health_checks_total", &[("status", status)]);
            assert_eq!(got, count, "{id:?} {status}");
        }
    }
}

/// One sample as the parser read it: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

#[derive(Debug, Deserialize)]
struct Family {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    help: String,
    samples: Vec<Sample>,
}

/// The samples of `text` by the OpenMetrics parser, after checking it read
/// `expected` families and that the classic text-format parser reads the
/// same samples.
fn parse_both(text: &str, expected: &[(&str, &str)]) -> Vec<Sample> {
    let families = parse("openmetrics", text);
    let kinds: Vec<(&str, &str)> = families
        .iter()
        .map(|f| (f.name.as_str(), f.kind.as_str()))
        .collect();
    assert_eq!(kinds, expected);
    for f in &families {
        // prometheus-client writes HELP as it is: it must need no escaping.
        assert!(
            !f.help.is_empty() && !f.help.contains(['\\', '"', '\n']),
            "{}: {:?}",
            f.name,
            f.help
        );
    }
    let sorted = |families: Vec<Family>| {
        let mut all: Vec<Sample> = families.into_iter().flat_map(|f| f.samples).collect();
        all.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        all
    };
    // The classic parser types `_total` samples as untyped families of their
    // own (OpenMetrics counter naming), but reads the same samples.
    let classic = sorted(parse("prometheus", text));
    let samples = sorted(families);
    assert!(samples == classic, "the two parsers disagree on:\n{text}");
    samples
}

/// Every `pool` label value in `samples`.
fn pools_seen(samples: &[Sample]) -> BTreeSet<&String> {
    samples.iter().map(|s| &s.1["pool"]).collect()
}

/// The value of the one sample `name{pool=pool, extra…}`.
fn value(samples: &[Sample], name: &str, pool: &str, extra: &[(&str, &str)]) -> f64 {
    let mut labels: BTreeMap<String, String> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.insert("pool".into(), pool.into());
    let found: Vec<f64> = samples
        .iter()
        .filter(|s| s.0 == name && s.1 == labels)
        .map(|s| s.2)
        .collect();
    match found[..] {
        [v] => v,
        _ => panic!("{name}{labels:?}: {} samples", found.len()),
    }
}

/// The pool figures of `stats` as exported.
fn assert_stats(samples: &[Sample], stats: &PoolStatsSnapshot) {
    let id = stats.pool.as_str();
    let v = |name: &str, extra: &[(&str, &str)]| value(samples, name, id, extra) as u64;
    let proxies = |state| v("pharox_pool_proxies", &[("state", state)]);
    assert_eq!(
        [
            proxies("total"),
            proxies("active"),
            proxies("available"),
            proxies("leased")
        ],
        [stats.total, stats.active, stats.available, stats.leased],
        "{id:?}"
    );
    assert_eq!(
        [
            v("pharox_pool_active_leases", &[]),
            v("pharox_pool_leases_total", &[]),
            v("pharox_pool_released_leases_total", &[]),
            v("pharox_pool_expired_leases_total", &[]),
        ],
        [
            stats.active_leases,
            stats.total_leases,
            stats.released_leases,
            stats.expired_leases
        ],
        "{id:?}"
    );
}

/// Runs tests/parse_metrics.py on `text` with the parser `format`.
fn parse(format: &str, text: &str) -> Vec<Family> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parse_metrics.py");
    let mut child = Command::new(test_python("the metrics parse tests"))
        .arg(&script)
        .arg(format)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the test Python");
    // A writer thread: the script's output could fill the pipe before it has read all input.
    let mut stdin = child.stdin.take().unwrap();
    let input = text.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "the {format} parser refused /metrics: {}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parse_metrics.py prints JSON")
}
