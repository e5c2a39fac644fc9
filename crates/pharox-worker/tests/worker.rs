//! The sweeper, the stats export and the worker loop on a private redis-server.

mod support;

use std::time::{Duration, Instant};

use pharox_core::invariants::check_lifetime_counters;
use pharox_core::testkit::Harness;
use pharox_core::{PoolId, PoolStatsSnapshot, Storage};
use pharox_redis::testkit::RedisHarness;
use pharox_redis::{RedisConfig, RedisStorage};
use pharox_worker::{CancellationToken, Worker, WorkerConfig, sweep_pool};

/// The part of the stats that must come back after abandoned leases return.
fn live(s: &PoolStatsSnapshot) -> (u64, u64, u64, u64, u64) {
    (s.total, s.active, s.available, s.leased, s.active_leases)
}

/// I1–I3 and I6 (the testkit's check), plus the lifetime counters adding up.
async fn assert_invariants(h: &RedisHarness, pool: &PoolId) {
    pharox_core::testkit::assert_invariants(h, pool, true).await;
    let stats = h.storage().pool_stats(pool).await.unwrap();
    assert_eq!(check_lifetime_counters(&stats), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeper_reclaims_abandoned_leases_within_two_intervals() {
    let h = RedisHarness::start().await;
    let store = h.storage().clone();
    let pool = PoolId::from("crash");
    support::seed(&store, &pool, 20, 3).await;
    let before = store.pool_stats(&pool).await.unwrap();

    let interval = Duration::from_millis(500);
    let worker = Worker::new(
        store.clone(),
        WorkerConfig {
            sweep_interval: interval,
            jitter: 0.0,
            sweep_batch: 7,
            ..WorkerConfig::default()
        },
    );
    let metrics = worker.metrics();
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));

    // A client takes 50 leases and crashes: nobody releases them.
    let ttl = Duration::from_millis(300);
    support::abandon_leases(&store, &pool, 50, ttl, 8).await;
    let expired_at = Instant::now() + ttl;
    assert_eq!(store.pool_stats(&pool).await.unwrap().active_leases, 50);

    // Nothing else touches the pool: only the sweeper can bring them back.
    let deadline = expired_at + 2 * interval + Duration::from_millis(250);
    let after = loop {
        let s = store.pool_stats(&pool).await.unwrap();
        if s.active_leases == 0 || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        live(&after),
        live(&before),
        "stats back to where they started"
    );
    assert_eq!(after.expired_leases, 50);
    assert_eq!(after.total_leases, 50);
    assert!(
        metrics
            .render()
            .contains("pharox_swept_leases_total{pool=\"crash\"} 50"),
        "{}",
        metrics.render()
    );
    assert_invariants(&h, &pool).await;
    stop.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sweepers_reclaim_each_expired_lease_exactly_once() {
    let h = RedisHarness::start().await;
    let url = h.server().expect("a private server").url();
    let store = h.storage().clone();
    let pool = PoolId::from("race");
    support::seed(&store, &pool, 100, 100).await;
    let ttl = Duration::from_millis(3000);
    let started = Instant::now();
    support::abandon_leases(&store, &pool, 10_000, ttl, 32).await;
    assert!(
        started.elapsed() < ttl,
        "leasing took {:?}, longer than the TTL: raise it",
        started.elapsed()
    );
    // The last lease was granted just now: all are due one TTL later.
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;

    // Two workers with their own connections, racing over the same pool.
    let other = RedisStorage::connect(RedisConfig::new(url)).await.unwrap();
    let never = CancellationToken::new();
    let (a, b) = tokio::join!(
        sweep_pool(&store, &pool, 97, &never),
        sweep_pool(&other, &pool, 89, &never)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.reclaimed + b.reclaimed, 10_000, "{a:?} {b:?}");
    assert!(
        a.reclaimed > 0 && b.reclaimed > 0,
        "both swept: {a:?} {b:?}"
    );
    let stats = store.pool_stats(&pool).await.unwrap();
    assert_eq!(
        (stats.active_leases, stats.expired_leases, stats.leased),
        (0, 10_000, 0)
    );
    assert_eq!(stats.available, 100);
    assert_invariants(&h, &pool).await;
    // Nothing left for a third sweep.
    let again = sweep_pool(&store, &pool, 100, &never).await.unwrap();
    assert_eq!(again.reclaimed, 0);
}

/// One sample value of the exposition, by exact series text.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_over_http_match_pool_stats() {
    let h = RedisHarness::start().await;
    let store = h.storage().clone();
    let pool = PoolId::from("metered");
    support::seed(&store, &pool, 10, 2).await;
    // 7 held, 3 released, 2 expired (reclaimed by the sweeper).
    support::abandon_leases(&store, &pool, 2, Duration::from_millis(100), 1).await;
    let req = pharox_core::AcquireRequest::new(pool.clone()).consumer("m");
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(store.acquire(&req).await.unwrap().unwrap());
    }
    for l in held.drain(..3) {
        store.release(&l).await.unwrap();
    }

    let port = support::free_port();
    let worker = Worker::new(
        store.clone(),
        WorkerConfig {
            sweep_interval: Duration::from_millis(200),
            jitter: 0.0,
            metrics_addr: Some(format!("127.0.0.1:{port}").parse().unwrap()),
            ..WorkerConfig::default()
        },
    );
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));

    let http = reqwest::Client::new();
    let page = |path: &'static str| {
        let http = http.clone();
        async move {
            let r = http
                .get(format!("http://127.0.0.1:{port}{path}"))
                .send()
                .await?;
            Ok::<_, reqwest::Error>((r.status().as_u16(), r.text().await?))
        }
    };
    // Wait for a tick that has seen the expired leases swept.
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        if let Ok((200, text)) = page("/metrics").await
            && sample(&text, "pharox_pool_expired_leases_total{pool=\"metered\"}") == Some(2)
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no tick reached /metrics in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stats = store.pool_stats(&pool).await.unwrap();
    let m =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series} missing:\n{text}"));
    let p = |state: &str| {
        m(&format!(
            "pharox_pool_proxies{{pool=\"metered\",state=\"{state}\"}}"
        ))
    };
    assert_eq!(p("total"), stats.total);
    assert_eq!(p("active"), stats.active);
    assert_eq!(p("available"), stats.available);
    assert_eq!(p("leased"), stats.leased);
    assert_eq!(
        m("pharox_pool_active_leases{pool=\"metered\"}"),
        stats.active_leases
    );
    assert_eq!(
        m("pharox_pool_leases_total{pool=\"metered\"}"),
        stats.total_leases
    );
    assert_eq!(
        m("pharox_pool_released_leases_total{pool=\"metered\"}"),
        stats.released_leases
    );
    assert_eq!(
        m("pharox_pool_expired_leases_total{pool=\"metered\"}"),
        stats.expired_leases
    );
    assert_eq!(
        (
            stats.active_leases,
            stats.released_leases,
            stats.expired_leases
        ),
        (7, 3, 2)
    );
    assert!(m("pharox_sweeps_total{pool=\"metered\"}") >= 1);
    assert!(text.contains("pharox_sweep_duration_seconds_count{pool=\"metered\"}"));

    let (code, body) = page("/healthz").await.unwrap();
    assert_eq!((code, body.starts_with("ok")), (200, true), "{body}");

    // The history in Redis has the same snapshots.
    let history = store.stats_history(&pool, 5).await.unwrap();
    assert!(!history.is_empty());
    assert_eq!(live(&history[0]), live(&stats));

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_pools_are_picked_up_and_removed_ones_forgotten() {
    let h = RedisHarness::start().await;
    let store = h.storage().clone();
    let worker = Worker::new(
        store.clone(),
        WorkerConfig {
            sweep_interval: Duration::from_millis(100),
            jitter: 0.5,
            history_len: 3,
            ..WorkerConfig::default()
        },
    );
    let metrics = worker.metrics();
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));
    let pool = PoolId::from("late");
    support::seed(&store, &pool, 3, 1).await;
    let wait_for = |want: bool| {
        let metrics = metrics.clone();
        let pool = pool.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            while metrics.pools().contains(&pool) != want {
                assert!(
                    Instant::now() < deadline,
                    "pool seen: {want} never happened"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(true).await;
    // The history is capped (MAXLEN ~ rounds to whole stream nodes, so
    // allow some slack, but it must not grow with every tick).
    tokio::time::sleep(Duration::from_millis(800)).await;
    let n = store.stats_history(&pool, 10_000).await.unwrap().len();
    assert!((1..=120).contains(&n), "{n} entries");
    store.remove_pool(&pool).await.unwrap();
    wait_for(false).await;
    assert!(!metrics.render().contains("pool=\"late\""));
    stop.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn bad_worker_configurations_are_refused() {
    let h = RedisHarness::start().await;
    for (config, field) in [
        (
            WorkerConfig {
                sweep_batch: 0,
                ..WorkerConfig::default()
            },
            "sweep_batch",
        ),
        (
            WorkerConfig {
                sweep_batch: pharox_core::validate::MAX_CLEANUP_BATCH + 1,
                ..WorkerConfig::default()
            },
            "sweep_batch",
        ),
        (
            WorkerConfig {
                jitter: 0.9,
                ..WorkerConfig::default()
            },
            "jitter",
        ),
        (
            WorkerConfig {
                sweep_interval: Duration::ZERO,
                ..WorkerConfig::default()
            },
            "sweep_interval",
        ),
        (
            WorkerConfig {
                history_len: 0,
                ..WorkerConfig::default()
            },
            "history_len",
        ),
    ] {
        let r = Worker::new(h.storage().clone(), config)
            .run(CancellationToken::new())
            .await;
        match r {
            Err(pharox_core::Error::InvalidInput { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
}
