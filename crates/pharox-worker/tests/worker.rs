//! The sweeper, the stats export and the worker loop on a private redis-server.
//!
//! No check depends on scheduling: "soon" is counted in sweep ticks, not
//! milliseconds, and what happens in the background is waited for (up to a
//! minute) rather than given a fixed delay.

mod support;

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use pharox_core::invariants::check_lifetime_counters;
use pharox_core::testkit::{Harness, PATIENCE, wait_for};
use pharox_core::{AcquireRequest, PoolId, PoolStatsSnapshot, Storage};
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

/// Sweeps of `pool` the worker has finished, from its metrics.
fn sweeps(metrics: &pharox_worker::Metrics, pool: &str) -> u64 {
    sample(
        &metrics.render(),
        &format!("pharox_sweeps_total{{pool=\"{pool}\"}}"),
    )
    .unwrap_or(0)
}

/// A sweep that starts after leases expired reclaims them all, so at most
/// one sweep (the one running at the expiry) ends after it without having
/// done so: "within two sweep intervals", counted in ticks, not in time.
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

    // A client takes 50 leases and crashes: nobody releases them. Taken
    // for long, then renewed short (a renewal touches only its own lease),
    // so no acquire can reclaim an early one however long the leasing
    // takes: only the sweeper can bring them back.
    let ttl = TimeDelta::milliseconds(300);
    let req = AcquireRequest::new(pool.clone())
        .consumer("crashed")
        .duration(TimeDelta::minutes(10));
    let mut held = Vec::new();
    for _ in 0..50 {
        held.push(store.acquire(&req).await.unwrap().expect("a free slot"));
    }
    for lease in &held {
        store.renew(lease, ttl).await.unwrap();
    }
    // Past every deadline, with a margin for the millisecond clock.
    let expired_at = Instant::now() + ttl.to_std().unwrap() + Duration::from_millis(10);
    assert_eq!(store.pool_stats(&pool).await.unwrap().active_leases, 50);

    tokio::time::sleep_until(expired_at.into()).await;
    let at_expiry = sweeps(&metrics, "crash");
    // Each round reads the sweeps first: every sweep counted had finished
    // before the leases were found still live.
    let mut unfinished = at_expiry;
    let started = Instant::now();
    let after = loop {
        let done = sweeps(&metrics, "crash");
        let s = store.pool_stats(&pool).await.unwrap();
        if s.active_leases == 0 {
            break s;
        }
        unfinished = done;
        assert!(
            started.elapsed() < PATIENCE,
            "the abandoned leases never came back: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        unfinished <= at_expiry + 1,
        "{} sweeps ended after the leases expired without reclaiming them",
        unfinished - at_expiry
    );
    assert_eq!(
        live(&after),
        live(&before),
        "stats back to where they started"
    );
    assert_eq!(after.expired_leases, 50);
    assert_eq!(after.total_leases, 50);
    // The sweep that reclaimed them records itself once it is done.
    wait_for("the swept leases in the metrics", || async {
        metrics
            .render()
            .contains("pharox_swept_leases_total{pool=\"crash\"} 50")
            .then_some(())
    })
    .await;
    assert_invariants(&h, &pool).await;
    stop.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sweepers_reclaim_each_expired_lease_exactly_once() {
    let h = RedisHarness::start().await;
    let url = h.server().expect("a private server").url();
    let store = h.storage().clone();
    // A second worker's own connection.
    let other = RedisStorage::connect(RedisConfig::new(url)).await.unwrap();
    let never = CancellationToken::new();
    let started = Instant::now();
    // Exactly once, every round; the rounds go on until the two sweeps
    // really overlapped (both reclaimed some), which one round shows only
    // if neither finished before the other's first batch ran.
    for round in 1.. {
        let pool = PoolId::from(format!("race-{round}"));
        support::seed(&store, &pool, 100, 100).await;
        let ttl = Duration::from_millis(3000);
        support::abandon_leases(&store, &pool, 10_000, ttl, 32).await;
        // The last lease was granted just now: all are due one TTL later.
        tokio::time::sleep(ttl + Duration::from_millis(50)).await;
        // If leasing outlasted the TTL, later acquires reclaimed early
        // leases: the sweepers get the rest, all due.
        let due = store.pool_stats(&pool).await.unwrap().active_leases;

        let (a, b) = tokio::join!(
            sweep_pool(&store, &pool, 97, &never),
            sweep_pool(&other, &pool, 89, &never)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.reclaimed + b.reclaimed, due, "{a:?} {b:?}");
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
        if a.reclaimed > 0 && b.reclaimed > 0 {
            println!(
                "round {round}: {due} due leases, swept {} + {}",
                a.reclaimed, b.reclaimed
            );
            return;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the two sweeps never overlapped in {round} rounds: {a:?} {b:?}"
        );
    }
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
    let deadline = Instant::now() + PATIENCE;
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
    tokio::time::timeout(PATIENCE, running)
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
            sweep_interval: Duration::from_millis(10),
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
    let seen = |want: bool| {
        let metrics = metrics.clone();
        let pool = pool.clone();
        async move {
            wait_for(&format!("pool seen: {want}"), || async {
                (metrics.pools().contains(&pool) == want).then_some(())
            })
            .await
        }
    };
    seen(true).await;
    // The history is capped (MAXLEN ~ rounds to whole stream nodes, so
    // allow some slack, but it must not grow with every tick): counted
    // after 250 ticks, each of which recorded an entry before the next
    // began, so a history that grew with every tick would hold 249 or more.
    wait_for("250 sweeps of the pool", || async {
        (sweeps(&metrics, "late") >= 250).then_some(())
    })
    .await;
    let n = store.stats_history(&pool, 10_000).await.unwrap().len();
    println!("history after 250 ticks: {n} entries (history_len 3)");
    assert!((1..=120).contains(&n), "{n} entries");
    store.remove_pool(&pool).await.unwrap();
    seen(false).await;
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
