//! The sweeper at its limit: one sweep with the largest batch
//! (`MAX_CLEANUP_BATCH`, the most `--sweep-batch` takes) reclaims 10,000
//! expired leases over 10,000 proxies, on memory and on Redis, and leaves
//! the stats and the store's bookkeeping clean.

use std::time::{Duration, Instant};

use pharox_core::testkit::limits::{check_pool, lease_many, make_due, numbered_proxy, seeded_pool};
use pharox_core::testkit::{Harness, LONG_TTL, MemoryHarness};
use pharox_core::validate::MAX_CLEANUP_BATCH;
use pharox_core::{AcquireRequest, PoolId, Storage};
use pharox_redis::testkit::RedisHarness;
use pharox_worker::{CancellationToken, Worker, WorkerConfig, WorkerStore, sweep_pool};

/// A pool of 10,000 single-slot proxies, each holding one lease that is now due.
async fn due_pool<H: Harness>(h: &H, base: &str) -> PoolId {
    let n = MAX_CLEANUP_BATCH;
    let pool = seeded_pool(h, base, n, |pool, i| {
        numbered_proxy(pool, i).with_max_concurrency(1)
    })
    .await;
    let leases = lease_many(h, &AcquireRequest::new(pool.clone()).duration(LONG_TTL), n).await;
    make_due(h, &leases).await;
    pool
}

/// Every proxy free, every lease counted once as expired, and the pool checked.
async fn assert_swept<H: Harness>(h: &H, pool: &PoolId) {
    let s = h.storage().pool_stats(pool).await.unwrap();
    let n = MAX_CLEANUP_BATCH as u64;
    assert_eq!(
        (
            s.total,
            s.available,
            s.leased,
            s.active_leases,
            s.expired_leases
        ),
        (n, n, 0, 0, n),
        "{s:?}"
    );
    check_pool(h, pool).await;
}

async fn one_sweep_reclaims_a_full_batch<H: Harness>(h: &H) {
    let pool = due_pool(h, "sweep-one-pass").await;
    let report = sweep_pool(
        h.storage(),
        &pool,
        MAX_CLEANUP_BATCH,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    eprintln!("one sweep of 10,000: {report:?}");
    assert_eq!(report.reclaimed, MAX_CLEANUP_BATCH as u64);
    // One full batch, then one that comes back empty and ends the sweep.
    assert_eq!(report.batches, 2);
    assert!(!report.interrupted);
    assert_swept(h, &pool).await;
}

/// A worker configured with the largest batch sweeps the pool clean.
async fn worker_with_the_largest_batch_sweeps_the_pool<H>(h: &H)
where
    H: Harness,
    H::Storage: WorkerStore,
{
    let pool = due_pool(h, "sweep-worker").await;
    let worker = Worker::new(
        h.storage().clone(),
        WorkerConfig {
            pools: vec![pool.clone()],
            sweep_interval: Duration::from_millis(200),
            sweep_batch: MAX_CLEANUP_BATCH,
            jitter: 0.0,
            ..WorkerConfig::default()
        },
    );
    let metrics = worker.metrics();
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));
    let swept = format!("pharox_swept_leases_total{{pool=\"{pool}\"}} {MAX_CLEANUP_BATCH}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !metrics.render().contains(&swept) {
        assert!(
            Instant::now() < deadline,
            "the worker did not sweep 10,000 leases within 60 s:\n{}",
            metrics.render()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    running.await.unwrap().unwrap();
    assert_swept(h, &pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_one_sweep_reclaims_10_000_leases_over_10_000_proxies() {
    one_sweep_reclaims_a_full_batch(&MemoryHarness::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_one_sweep_reclaims_10_000_leases_over_10_000_proxies() {
    one_sweep_reclaims_a_full_batch(&RedisHarness::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_worker_with_the_largest_sweep_batch_sweeps_10_000_leases() {
    worker_with_the_largest_batch_sweeps_the_pool(&MemoryHarness::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_worker_with_the_largest_sweep_batch_sweeps_10_000_leases() {
    worker_with_the_largest_batch_sweeps_the_pool(&RedisHarness::start().await).await;
}
