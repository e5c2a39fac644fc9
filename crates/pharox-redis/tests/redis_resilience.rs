//! Resilience of [`RedisStorage`] when Redis misbehaves, each test on its own
//! private `redis-server`:
//!
//! - `SCRIPT FLUSH` in the middle of a run (scripts reload after `NOSCRIPT`);
//! - the server killed and restarted under a running store, with and without
//!   persistence (retryable errors within a bounded time, then recovery on
//!   the same store value; with AOF, the pool and its leases survive);
//! - eight tasks racing for eight single-slot proxies with every selector
//!   (no miss, no over-lease, tokens unique and increasing);
//! - memory and key count staying flat under acquire/release churn
//!   (`PHAROX_CHURN_CYCLES`, default 50,000; run with `--nocapture` to see
//!   the figures);
//! - acquire futures dropped mid-flight leak nothing beyond the lease TTL
//!   (rounds of them until one was applied anyway);
//! - a stalled server (`CLIENT PAUSE`) gives timeouts, never wrong state.
//!
//! Nothing here depends on timing luck: a stall is known to be in effect
//! before the calls it should stall are sent, a concurrent event is waited
//! for rather than raced, and "fails within a bounded time" allows
//! [`SLACK`] beyond the budget for a loaded machine (a hang has no bound).
//!
//! Tests that kill, stall or measure the server start their own
//! [`RedisServer`] even when `PHAROX_TEST_REDIS_URL` is set; the others use
//! [`RedisHarness`] (a private server unless that variable is set).
//!
//! Three tests guard bugs found here and fixed: stale proxy data after a pool
//! is re-created or the data is lost (the proxy-data generation now starts at
//! a random value per pool incarnation), and a second NOSCRIPT within one
//! call (now retried, and reported as retryable if it persists).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use pharox_core::invariants::{TokenLedger, check_snapshot};
use pharox_core::testkit::{
    Harness, PATIENCE, add, assert_invariants, new_pool, proxy, request, retry_while_retryable,
};
use pharox_core::{
    AcquireRequest, Error, Lease, LeaseId, PoolId, ProxyPool, ReleaseOutcome, Selector, Storage,
};
use pharox_redis::keys::PoolKeys;
use pharox_redis::testkit::{NO_PERSISTENCE, OwnedRedis, RedisHarness};
use pharox_redis::{ConnectionMode, RedisStorage, redis, scripts};

/// A store on a server this test alone owns.
type Private = OwnedRedis;

/// Slack for scheduling on a loaded machine, on top of a call's own budget,
/// in "fails within a bounded time" checks: the point is "no hang".
const SLACK: Duration = Duration::from_secs(5);

/// Response budget of the calls that must succeed on a running server: one
/// a busy machine does not exceed (at a load of 12 on 2 vCPUs, the default
/// 5 s once was).
const GENEROUS: Duration = Duration::from_secs(30);

/// A second store on `p`'s server with a response budget of `timeout`, for
/// the calls meant to fail fast while the server is down (with `p`'s own,
/// generous budget for everything else).
async fn fast_failing(p: &Private, timeout: Duration) -> RedisStorage {
    RedisStorage::connect(p.storage.config().clone().response_timeout(timeout))
        .await
        .expect("connect")
}

/// A fresh pool with `n` proxies `p0..` of capacity `cap`, latencies varied
/// so the lowest-latency index has an order to keep.
async fn seed<H: Harness>(h: &H, base: &str, n: u16, cap: u32) -> PoolId {
    let pool = new_pool(h, base).await;
    for i in 0..n {
        add(
            h,
            proxy(&pool, &format!("p{i}"), i)
                .with_max_concurrency(cap)
                .with_latency_ms(10 + u32::from(i * 7 % 13)),
        )
        .await;
    }
    pool
}

/// Fails unless `r` is an error a caller may retry, returned within `bound`.
fn expect_retryable<T: std::fmt::Debug>(
    what: &str,
    r: pharox_core::Result<T>,
    took: Duration,
    bound: Duration,
) -> String {
    let e = match r {
        Ok(v) => panic!("{what} succeeded while the server was down: {v:?}"),
        Err(e) => e,
    };
    assert!(e.is_retryable(), "{what}: not retryable: {e:?}");
    assert!(
        took < bound,
        "{what} took {took:?} to fail (bound {bound:?})"
    );
    let kind = match &e {
        Error::Timeout { .. } => "Timeout",
        Error::Unavailable { .. } => "Unavailable",
        Error::Interrupted { .. } => "Interrupted",
        _ => "other",
    };
    format!("{what}: {kind} after {took:?}")
}

/// `used_memory` from `INFO memory`.
async fn used_memory(s: &RedisStorage) -> i64 {
    let info: String = s
        .raw_command(redis::cmd("INFO").arg("memory"))
        .await
        .expect("INFO memory");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO memory")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_flush_mid_run() {
    for mode in [
        ConnectionMode::Multiplexed { connections: 2 },
        ConnectionMode::Pooled { size: 4 },
    ] {
        let h = RedisHarness::start_with(|c| c.mode(mode).response_timeout(GENEROUS)).await;
        let s = h.storage().clone();
        let pool = seed(&h, "flush", 4, 1).await;
        let flush = || async {
            let () = s
                .raw_command(redis::cmd("SCRIPT").arg("FLUSH"))
                .await
                .expect("SCRIPT FLUSH");
        };
        let flushed = || async {
            let cached: Vec<bool> = s
                .raw_command(
                    redis::cmd("SCRIPT")
                        .arg("EXISTS")
                        .arg(scripts::ACQUIRE.get_hash())
                        .arg(scripts::RELEASE.get_hash()),
                )
                .await
                .expect("SCRIPT EXISTS");
            assert_eq!(cached, [false, false], "SCRIPT FLUSH left the scripts");
        };

        // One client: the acquire and release right after the flush work.
        let mut ledger = TokenLedger::new();
        for round in 0..200 {
            if round == 100 {
                flush().await;
                flushed().await;
            }
            let lease = s
                .acquire(&request(&pool))
                .await
                .unwrap_or_else(|e| panic!("{mode:?} round {round}: acquire failed: {e}"))
                .unwrap_or_else(|| panic!("{mode:?} round {round}: no lease"));
            ledger.record(lease.token);
            let out = s
                .release(&lease)
                .await
                .unwrap_or_else(|e| panic!("{mode:?} round {round}: release failed: {e}"));
            assert_eq!(out, ReleaseOutcome::Released, "{mode:?} round {round}");
        }

        // Four clients, the scripts flushed once while they run: each
        // EVALSHA that meets NOSCRIPT reloads its script and succeeds. Each
        // client goes on until it has done 150 cycles and 20 after the
        // flush, so the flush lands while they run, however they are
        // scheduled.
        let progress = Arc::new(AtomicU64::new(0));
        let flushed = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for t in 0..4 {
            let (s, pool, progress, flushed) =
                (s.clone(), pool.clone(), progress.clone(), flushed.clone());
            tasks.push(tokio::spawn(async move {
                let mut ledger = TokenLedger::new();
                let mut after_flush = 0;
                for r in 0.. {
                    if r >= 150 && after_flush >= 20 {
                        break;
                    }
                    if flushed.load(Ordering::SeqCst) {
                        after_flush += 1;
                    }
                    let req = request(&pool).selector(Selector::ALL[(t + r) % 4]);
                    let lease = s
                        .acquire(&req)
                        .await
                        .unwrap_or_else(|e| panic!("task {t} round {r}: acquire failed: {e}"))
                        .unwrap_or_else(|| panic!("task {t} round {r}: no lease"));
                    ledger.record(lease.token);
                    tokio::task::yield_now().await;
                    let out = s
                        .release(&lease)
                        .await
                        .unwrap_or_else(|e| panic!("task {t} round {r}: release failed: {e}"));
                    assert_eq!(out, ReleaseOutcome::Released);
                    progress.fetch_add(1, Ordering::SeqCst);
                }
                ledger
            }));
        }
        while progress.load(Ordering::SeqCst) < 200 {
            tokio::task::yield_now().await;
        }
        flush().await;
        flushed.store(true, Ordering::SeqCst);
        let flushed_at = progress.load(Ordering::SeqCst);
        for task in tasks {
            ledger.merge(task.await.expect("task"));
        }
        let cycles = progress.load(Ordering::SeqCst);
        let errors: String = s
            .raw_command(redis::cmd("INFO").arg("errorstats"))
            .await
            .expect("INFO errorstats");
        let noscript: u64 = errors
            .lines()
            .find_map(|l| l.strip_prefix("errorstat_NOSCRIPT:count="))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        println!(
            "{mode:?}: {noscript} NOSCRIPT replies, each followed by a reload \
             (concurrent flush after {flushed_at} of {cycles} cycles)"
        );
        // Two in the single-client phase (acquire, release), at least one
        // after the flush among the four clients (each ran 20 cycles after it).
        assert!(noscript >= 3, "the flushes were never noticed");
        assert_eq!(ledger.len() as u64, 200 + cycles);
        assert!(ledger.violations().is_empty(), "{:?}", ledger.violations());
        assert_invariants(&h, &pool, true).await;
        let stats = s.pool_stats(&pool).await.unwrap();
        assert_eq!(
            (
                stats.total_leases,
                stats.released_leases,
                stats.active_leases
            ),
            (200 + cycles, 200 + cycles, 0),
            "{mode:?}: {stats:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_under_a_running_store() {
    let timeout = Duration::from_millis(500);
    let bound = timeout + SLACK;
    let mut p = Private::start(NO_PERSISTENCE, |c| c.response_timeout(GENEROUS)).await;
    let s = fast_failing(&p, timeout).await;
    let pool = seed(&p, "restart", 4, 1).await;
    let req = request(&pool);
    let before = p.storage.acquire(&req).await.unwrap().expect("a lease");

    p.kill();
    let mut seen = Vec::new();
    for i in 0..4 {
        let t = Instant::now();
        let r = s.acquire(&req).await;
        seen.push(expect_retryable(
            &format!("acquire #{i}"),
            r,
            t.elapsed(),
            bound,
        ));
        let t = Instant::now();
        let r = s.pool_stats(&pool).await;
        seen.push(expect_retryable(
            &format!("pool_stats #{i}"),
            r,
            t.elapsed(),
            bound,
        ));
    }
    let t = Instant::now();
    let r = s.release(&before).await;
    seen.push(expect_retryable("release", r, t.elapsed(), bound));
    println!("server down:\n  {}", seen.join("\n  "));

    // No persistence: the restarted server is empty, but the same store
    // value reconnects on its own.
    p.restart();
    let (r, took) = retry_while_retryable(PATIENCE, || s.pool_stats(&pool)).await;
    println!("first answer {took:?} after the restart");
    assert!(
        matches!(r, Err(Error::PoolNotFound(_))),
        "the data should be gone: {r:?}"
    );
    // The rest with the generous budget: its store also lost its connection.
    let s = p.storage.clone();
    let fresh = ProxyPool::new(pool.clone());
    let (r, _) = retry_while_retryable(PATIENCE, || s.upsert_pool(&fresh)).await;
    r.expect("upsert_pool after the restart");
    for i in 0..4 {
        add(
            &p,
            proxy(&pool, &format!("p{i}"), i).with_max_concurrency(1),
        )
        .await;
    }
    let lease = s
        .acquire(&req)
        .await
        .expect("acquire after the restart")
        .expect("a lease on the re-seeded pool");
    assert_eq!(lease.proxy.id.as_str(), "p0");
    // The data is gone, the counters with it, but tokens follow the
    // server's clock: still above the one granted before the crash.
    assert!(
        lease.token > before.token,
        "token before the crash {}, after {}",
        before.token,
        lease.token
    );
    // The lease from before the crash died with the data.
    assert_eq!(s.release(&before).await.unwrap(), ReleaseOutcome::NotHeld);
    assert_eq!(s.release(&lease).await.unwrap(), ReleaseOutcome::Released);
    assert_invariants(&p, &pool, true).await;
    let stats = s.pool_stats(&pool).await.unwrap();
    assert_eq!((stats.total_leases, stats.active_leases), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_persistence_keeps_pool_and_leases() {
    let timeout = Duration::from_millis(500);
    let mut p = Private::start(
        &[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ],
        |c| c.response_timeout(GENEROUS),
    )
    .await;
    let fast = fast_failing(&p, timeout).await;
    let s = p.storage.clone();
    let pool = seed(&p, "durable", 4, 2).await;
    let mut ledger = TokenLedger::new();
    for _ in 0..10 {
        let l = s.acquire(&request(&pool)).await.unwrap().expect("a lease");
        ledger.record(l.token);
        assert_eq!(s.release(&l).await.unwrap(), ReleaseOutcome::Released);
    }
    let mut held = Vec::new();
    for selector in [
        Selector::LeastUsed,
        Selector::LeastUsed,
        Selector::RoundRobin,
    ] {
        let l = s
            .acquire(&request(&pool).selector(selector))
            .await
            .unwrap()
            .expect("a lease");
        ledger.record(l.token);
        held.push(l);
    }
    let stats_before = s.pool_stats(&pool).await.unwrap();
    let snap_before = s.pool_snapshot(&pool).await.unwrap();

    p.kill();
    let t = Instant::now();
    let r = fast.pool_stats(&pool).await;
    expect_retryable("pool_stats", r, t.elapsed(), timeout + SLACK);
    p.restart();

    let (r, took) = retry_while_retryable(PATIENCE, || s.pool_stats(&pool)).await;
    println!("persistent server answered {took:?} after the restart");
    let stats_after = r.expect("pool_stats after the restart");
    assert_eq!(
        stats_after,
        pharox_core::PoolStatsSnapshot {
            collected_at: stats_after.collected_at,
            ..stats_before.clone()
        },
        "stats changed across the restart"
    );
    let snap_after = s.pool_snapshot(&pool).await.unwrap();
    assert_eq!(snap_after.proxies, snap_before.proxies);
    let ids = |snap: &pharox_core::PoolSnapshot| {
        let mut v: Vec<(LeaseId, String)> = snap
            .leases
            .iter()
            .map(|l| (l.id, l.proxy.id.as_str().to_owned()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(&snap_after), ids(&snap_before));
    assert_eq!(snap_after.leases.len(), held.len());
    assert_invariants(&p, &pool, true).await;

    // The leases acquired before the crash are still held, once.
    for l in &held {
        assert_eq!(s.release(l).await.unwrap(), ReleaseOutcome::Released);
        assert_eq!(s.release(l).await.unwrap(), ReleaseOutcome::NotHeld);
    }
    // Fencing tokens carry on from before the crash.
    let l = s.acquire(&request(&pool)).await.unwrap().expect("a lease");
    ledger.record(l.token);
    assert!(ledger.violations().is_empty(), "{:?}", ledger.violations());
    assert_eq!(s.release(&l).await.unwrap(), ReleaseOutcome::Released);
    let end = s.pool_stats(&pool).await.unwrap();
    assert_eq!(end.total_leases, stats_before.total_leases + 1);
    assert_eq!(end.active_leases, 0);
    assert_invariants(&p, &pool, true).await;
}

/// The acceptance race: 8 tasks, 8 proxies of capacity 1, `ROUNDS` brief
/// leases per task. A task holds nothing when it asks, so a proxy is always
/// free: no miss is allowed, and no proxy may ever be held twice.
async fn race(selector: Selector) {
    const TASKS: usize = 8;
    const ROUNDS: usize = 1_200;
    let h = RedisHarness::start_with(|c| c.response_timeout(GENEROUS)).await;
    let pool = seed(&h, "race", 8, 1).await;
    let holders: Arc<HashMap<String, AtomicU32>> = Arc::new(
        (0..8)
            .map(|i| (format!("p{i}"), AtomicU32::new(0)))
            .collect(),
    );
    let over = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (s, pool) = (h.storage().clone(), pool.clone());
        let (holders, over, barrier) = (holders.clone(), over.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let req = request(&pool)
                .selector(selector)
                .consumer(format!("task-{t}"));
            let mut ledger = TokenLedger::new();
            let mut misses = 0u32;
            barrier.wait().await;
            for _ in 0..ROUNDS {
                let Some(lease) = s.acquire(&req).await.expect("acquire") else {
                    misses += 1;
                    continue;
                };
                ledger.record(lease.token);
                let count = &holders[lease.proxy.id.as_str()];
                if count.fetch_add(1, Ordering::SeqCst) != 0 {
                    over.fetch_add(1, Ordering::SeqCst);
                }
                match fastrand::u8(..4) {
                    0 => {}
                    1 | 2 => tokio::task::yield_now().await,
                    _ => {
                        // 0-200 µs without blocking the runtime (timers
                        // would round up to a millisecond).
                        let d = Duration::from_micros(fastrand::u64(..=200));
                        let t = Instant::now();
                        while t.elapsed() < d {
                            tokio::task::yield_now().await;
                        }
                    }
                }
                count.fetch_sub(1, Ordering::SeqCst);
                assert_eq!(
                    s.release(&lease).await.expect("release"),
                    ReleaseOutcome::Released
                );
            }
            (ledger, misses)
        }));
    }
    let mut all = TokenLedger::new();
    let mut misses = 0;
    for task in tasks {
        let (ledger, m) = task.await.expect("task");
        all.merge(ledger);
        misses += m;
    }
    let took = start.elapsed();
    println!(
        "race {selector}: {} acquire+release cycles in {took:?}",
        TASKS * ROUNDS
    );
    assert_eq!(
        misses, 0,
        "{selector}: acquire missed while a proxy was free"
    );
    assert_eq!(
        over.load(Ordering::SeqCst),
        0,
        "{selector}: a proxy was held twice"
    );
    assert_eq!(all.len(), TASKS * ROUNDS);
    assert!(all.violations().is_empty(), "{:?}", all.violations());
    assert_invariants(&h, &pool, true).await;
    let stats = h.storage().pool_stats(&pool).await.unwrap();
    assert_eq!(stats.total_leases, (TASKS * ROUNDS) as u64);
    assert_eq!(stats.released_leases, (TASKS * ROUNDS) as u64);
    assert_eq!((stats.active_leases, stats.available), (0, 8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_eight_tasks_eight_proxies_first_available() {
    race(Selector::FirstAvailable).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_eight_tasks_eight_proxies_least_used() {
    race(Selector::LeastUsed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_eight_tasks_eight_proxies_round_robin() {
    race(Selector::RoundRobin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_eight_tasks_eight_proxies_lowest_latency() {
    race(Selector::LowestLatency).await;
}

#[test]
fn race_covers_every_selector() {
    // One race test above per selector; a new selector needs one too.
    assert_eq!(Selector::ALL.len(), 4);
}

/// `cycles` acquire+release cycles spread over `tasks` tasks, the selector
/// rotating; every acquire must find a proxy.
async fn churn(s: &RedisStorage, pool: &PoolId, tasks: usize, cycles: usize) {
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (s, pool) = (s.clone(), pool.clone());
        let n = cycles / tasks + usize::from(t < cycles % tasks);
        handles.push(tokio::spawn(async move {
            for r in 0..n {
                let req = request(&pool).selector(Selector::ALL[(t + r) % 4]);
                let lease = s
                    .acquire(&req)
                    .await
                    .expect("acquire")
                    .expect("a free proxy");
                assert_eq!(
                    s.release(&lease).await.expect("release"),
                    ReleaseOutcome::Released
                );
            }
        }));
    }
    for h in handles {
        h.await.expect("churn task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_under_churn() {
    const TASKS: usize = 16;
    const WARM_UP: usize = 5_000;
    const BOUND: i64 = 256 * 1024;
    let cycles: usize = std::env::var("PHAROX_CHURN_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let p = Private::start(NO_PERSISTENCE, |c| c.response_timeout(GENEROUS)).await;
    let s = p.storage.clone();
    let pool = seed(&p, "churn", TASKS as u16, 1).await;
    let keys = PoolKeys::new(&s.config().prefix, &pool);

    churn(&s, &pool, TASKS, WARM_UP).await;
    let dbsize = || async {
        s.raw_command::<i64>(&redis::cmd("DBSIZE"))
            .await
            .expect("DBSIZE")
    };
    // Redis 7 allocates a latency histogram (about 24 KiB) for each command
    // the first time it runs: run the measuring commands once beforehand.
    let _ = (used_memory(&s).await, dbsize().await);
    let (mem_before, keys_before) = (used_memory(&s).await, dbsize().await);

    let start = Instant::now();
    churn(&s, &pool, TASKS, cycles).await;
    let took = start.elapsed();
    let (mem_after, keys_after) = (used_memory(&s).await, dbsize().await);
    let live: i64 = s
        .raw_command(redis::cmd("ZCARD").arg(&keys.leases_by_deadline))
        .await
        .expect("ZCARD");
    let growth = mem_after - mem_before;
    println!(
        "churn: {cycles} cycles over {TASKS} tasks in {took:?} ({:.0} cycles/s); \
         used_memory {mem_before} -> {mem_after} bytes ({growth:+} bytes); \
         DBSIZE {keys_before} -> {keys_after}",
        cycles as f64 / took.as_secs_f64()
    );
    assert_eq!(live, 0, "leases left in {}", keys.leases_by_deadline);
    assert_eq!(keys_after, keys_before, "the key count changed");
    assert!(
        growth < BOUND,
        "used_memory grew by {growth} bytes over {cycles} cycles (bound {BOUND})"
    );
    let stats = s.pool_stats(&pool).await.unwrap();
    assert_eq!(stats.total_leases, (WARM_UP + cycles) as u64);
    assert_eq!(stats.active_leases, 0);
    assert_invariants(&p, &pool, true).await;
}

/// One round of acquires dropped mid-flight in every way (`attempts` one at
/// a time, then `spawned` at once, all aborted): the leases that came back
/// anyway, and how many futures were dropped.
async fn drop_acquires(
    s: &RedisStorage,
    req: &AcquireRequest,
    attempts: usize,
    spawned: usize,
) -> (Vec<Lease>, usize) {
    let mut returned: Vec<Lease> = Vec::new();
    let mut dropped = 0usize;
    let mut keep = |r: pharox_core::Result<Option<Lease>>| {
        returned.push(r.expect("acquire").expect("a free slot"));
    };
    for i in 0..attempts {
        match i % 3 {
            // Polled once (the request goes out), then dropped.
            0 => match tokio::time::timeout(Duration::ZERO, s.acquire(req)).await {
                Ok(r) => keep(r),
                Err(_) => dropped += 1,
            },
            // Dropped after a few microseconds (or at the next timer tick).
            1 => {
                let d = Duration::from_micros(fastrand::u64(1..20));
                match tokio::time::timeout(d, s.acquire(req)).await {
                    Ok(r) => keep(r),
                    Err(_) => dropped += 1,
                }
            }
            // A task aborted wherever it happens to be.
            _ => {
                let (s, req) = (s.clone(), req.clone());
                let task = tokio::spawn(async move { s.acquire(&req).await });
                for _ in 0..fastrand::usize(..3) {
                    tokio::task::yield_now().await;
                }
                task.abort();
                match task.await {
                    Ok(r) => keep(r),
                    Err(e) if e.is_cancelled() => dropped += 1,
                    Err(e) => panic!("acquire task: {e}"),
                }
            }
        }
    }
    // Many in flight at once on the shared connection, all aborted.
    let tasks: Vec<_> = (0..spawned)
        .map(|_| {
            let (s, req) = (s.clone(), req.clone());
            tokio::spawn(async move { s.acquire(&req).await })
        })
        .collect();
    tokio::task::yield_now().await;
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        match task.await {
            Ok(r) => keep(r),
            Err(e) if e.is_cancelled() => dropped += 1,
            Err(e) => panic!("acquire task: {e}"),
        }
    }

    (returned, dropped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_acquire_future_leaks_nothing_beyond_ttl() {
    const TTL: TimeDelta = TimeDelta::milliseconds(300);
    const ATTEMPTS: usize = 300;
    const SPAWNED: usize = 64;
    let h = RedisHarness::start_with(|c| c.response_timeout(GENEROUS)).await;
    let s = h.storage().clone();
    // 512 slots, more than every attempt together: a leaked lease never
    // turns a later acquire into a miss.
    let pool = seed(&h, "dropped", 8, 64).await;
    let req = AcquireRequest::new(pool.clone()).duration(TTL);

    // Rounds until some dropped future's acquire was applied anyway: whether
    // one round has such a future depends on scheduling, whether some round
    // does is certain (the first poll sends the request).
    let started = Instant::now();
    let (mut returned, mut dropped, mut released, mut rounds) = (0usize, 0usize, 0u64, 0);
    let (mid, abandoned) = loop {
        rounds += 1;
        let (leases, d) = drop_acquires(&s, &req, ATTEMPTS, SPAWNED).await;
        dropped += d;
        returned += leases.len();
        // Release what came back, so only the dropped futures' leases remain.
        for l in &leases {
            let out = s.release(l).await.expect("release");
            released += u64::from(out == ReleaseOutcome::Released);
        }
        let mid = s.pool_stats(&pool).await.unwrap();
        let abandoned = mid.total_leases - returned as u64;
        if abandoned > 0 {
            break (mid, abandoned);
        }
        assert!(
            started.elapsed() < PATIENCE,
            "no dropped acquire was applied in {rounds} rounds: the test tests nothing"
        );
    };
    println!(
        "dropped futures: {rounds} rounds of {} attempts, {dropped} dropped, {returned} returned \
         a lease, {} leases granted: {abandoned} abandoned by dropped futures ({} still live)",
        ATTEMPTS + SPAWNED,
        mid.total_leases,
        mid.active_leases
    );
    assert!(
        dropped > 0,
        "no acquire was dropped: the test tested nothing"
    );
    assert!(abandoned as usize <= dropped, "{abandoned} > {dropped}");
    assert!(mid.active_leases <= abandoned, "{mid:?}");

    // The connection is still in step: each answer is the lease the store holds.
    for _ in 0..20 {
        let l = s.acquire(&request(&pool)).await.unwrap().expect("a lease");
        let snap = s.pool_snapshot(&pool).await.unwrap();
        let stored = snap.leases.iter().find(|x| x.id == l.id).expect("stored");
        assert_eq!(stored.proxy.id, l.proxy.id);
        assert_eq!(s.release(&l).await.unwrap(), ReleaseOutcome::Released);
        released += 1;
    }
    assert_invariants(&h, &pool, false).await;

    tokio::time::sleep(TTL.to_std().unwrap() + Duration::from_millis(100)).await;
    let reclaimed = s.cleanup_expired(&pool, 10_000).await.unwrap();
    let stats = s.pool_stats(&pool).await.unwrap();
    println!("cleanup reclaimed {reclaimed}; {stats:?}");
    assert_eq!(stats.active_leases, 0, "{stats:?}");
    assert_eq!((stats.available, stats.leased), (8, 0), "{stats:?}");
    assert_eq!(stats.released_leases, released, "{stats:?}");
    assert_eq!(
        stats.expired_leases,
        stats.total_leases - released,
        "{stats:?}"
    );
    for p in s.list_proxies(&pool).await.unwrap() {
        assert_eq!(p.current_leases, 0, "{} still holds leases", p.id);
    }
    assert_invariants(&h, &pool, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_redis_gives_timeouts_not_wrong_state() {
    let timeout = Duration::from_millis(200);
    let p = Private::start(NO_PERSISTENCE, |c| c.response_timeout(GENEROUS)).await;
    let s = p.storage.clone();
    // The calls sent to the stalled server, with the short budget.
    let fast = fast_failing(&p, timeout).await;
    let pool = seed(&p, "slow", 4, 2).await;
    let mut granted: Vec<Lease> = Vec::new();
    for _ in 0..2 {
        granted.push(s.acquire(&request(&pool)).await.unwrap().expect("a lease"));
    }

    // Stall the server from another connection. `CLIENT PAUSE` answers once
    // the pause is in effect (unlike `DEBUG SLEEP`, which answers when the
    // stall is over), so every call below is sent to a server that does not
    // answer: no race with the stall's start. The pause is far longer than
    // the calls need (about 0.4 s), for a loaded machine.
    const PAUSE: Duration = Duration::from_secs(4);
    let mut raw = p.server.raw_connection().await;
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(PAUSE.as_millis() as u64)
        .arg("ALL")
        .query_async(&mut raw)
        .await
        .expect("CLIENT PAUSE");

    let mut failed = 0u64;
    let mut calls = Vec::new();
    for i in 0..3 {
        let (s, pool) = (fast.clone(), pool.clone());
        calls.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = s.acquire(&request(&pool).consumer(format!("c{i}"))).await;
            (r, t.elapsed())
        }));
    }
    for call in calls {
        let (r, took) = call.await.expect("acquire task");
        match r {
            Err(Error::Timeout { .. }) => {}
            Err(ref e) if e.is_retryable() => {}
            other => panic!("acquire during the stall: expected a timeout, got {other:?}"),
        }
        assert!(took < timeout + SLACK, "acquire took {took:?} to time out");
        failed += 1;
    }
    let t = Instant::now();
    let r = fast.pool_stats(&pool).await;
    expect_retryable("pool_stats", r, t.elapsed(), timeout + SLACK);
    println!("server paused for {PAUSE:?}; {failed} acquires timed out after {timeout:?}");

    // Wait for the end of the stall with a read: a retried acquire would be
    // queued behind the pause and applied later, once per retry. The store
    // that timed out answers again.
    let (r, took) = retry_while_retryable(PAUSE + PATIENCE, || fast.pool_stats(&pool)).await;
    println!("first call after the stall answered in {took:?}");
    r.expect("pool_stats after the stall");
    // Afterwards every call works and every answer is the right one.
    for _ in 0..3 {
        granted.push(s.acquire(&request(&pool)).await.unwrap().expect("a lease"));
    }
    let snap = s.pool_snapshot(&pool).await.unwrap();
    assert!(check_snapshot(&snap, true).is_empty());
    let stored: HashMap<LeaseId, &str> = snap
        .leases
        .iter()
        .map(|l| (l.id, l.proxy.id.as_str()))
        .collect();
    for l in &granted {
        assert_eq!(
            stored.get(&l.id).copied(),
            Some(l.proxy.id.as_str()),
            "lease {} was granted but the store does not hold it on that proxy",
            l.id
        );
    }
    // The rest are timed-out acquires the server applied anyway.
    let unclaimed = snap.leases.len() as u64 - granted.len() as u64;
    assert!(unclaimed <= failed, "{unclaimed} unclaimed leases");
    assert_eq!(snap.stats.total_leases, granted.len() as u64 + unclaimed);
    let tokens: HashSet<u64> = snap.leases.iter().map(|l| l.token).collect();
    assert_eq!(tokens.len(), snap.leases.len(), "duplicate tokens");
    println!(
        "{} acquires granted, {unclaimed} timed-out acquires applied anyway",
        granted.len()
    );
    for l in &granted {
        assert_eq!(s.release(l).await.unwrap(), ReleaseOutcome::Released);
    }
    assert_invariants(&p, &pool, true).await;
    let stats = s.pool_stats(&pool).await.unwrap();
    assert_eq!(stats.active_leases, unclaimed);
}

/// After a pool is removed and created again, proxy-data generations start
/// over, so the store's cache of leased proxies' connection data (keyed by
/// pool, generation and sequence) must not hand out the old proxy's data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn recreated_pool_never_hands_out_stale_proxy_data() {
    let h = RedisHarness::start().await;
    let s = h.storage();
    let pool = new_pool(&h, "recreated").await;
    add(&h, proxy(&pool, "old", 1)).await;
    let l = s.acquire(&request(&pool)).await.unwrap().expect("a lease");
    s.release(&l).await.unwrap();
    assert!(s.remove_pool(&pool).await.unwrap());
    s.upsert_pool(&ProxyPool::new(pool.clone())).await.unwrap();
    let new = add(&h, proxy(&pool, "new", 77)).await;
    let l = s.acquire(&request(&pool)).await.unwrap().expect("a lease");
    assert_eq!(
        (l.proxy.id.as_str(), l.proxy.host.as_str(), l.proxy.port),
        (new.id.as_str(), new.host.as_str(), new.port),
        "the lease names the removed proxy's connection data"
    );
}

/// The same after a restart that lost the data: the pool is created again
/// with other proxies, and the cache still names the ones from before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn restarted_empty_server_never_hands_out_stale_proxy_data() {
    let mut p = Private::start(NO_PERSISTENCE, |c| c).await;
    let s = p.storage.clone();
    let pool = new_pool(&p, "lost").await;
    add(&p, proxy(&pool, "old", 1)).await;
    let l = s.acquire(&request(&pool)).await.unwrap().expect("a lease");
    s.release(&l).await.unwrap();
    p.restart();
    let fresh = ProxyPool::new(pool.clone());
    let (r, _) = retry_while_retryable(PATIENCE, || s.upsert_pool(&fresh)).await;
    r.expect("upsert_pool after the restart");
    let new = add(&p, proxy(&pool, "new", 77)).await;
    let l = s.acquire(&request(&pool)).await.unwrap().expect("a lease");
    assert_eq!(
        (l.proxy.id.as_str(), l.proxy.host.as_str(), l.proxy.port),
        (new.id.as_str(), new.host.as_str(), new.port),
        "the lease names the lost proxy's connection data"
    );
}

/// `invoke_async` reloads a script once: when another `SCRIPT FLUSH` lands
/// between that reload and the second `EVALSHA`, the call fails with
/// NOSCRIPT mapped to `Error::Backend`, which `is_retryable()` calls final
/// although nothing was applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn repeated_script_flushes_give_only_retryable_errors() {
    let h = RedisHarness::start().await;
    let s = h.storage().clone();
    let pool = seed(&h, "flushes", 4, 1).await;
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (s, pool, done) = (s.clone(), pool.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            for r in 0..300 {
                let req = request(&pool).selector(Selector::ALL[(t + r) % 4]);
                let lease = loop {
                    match s.acquire(&req).await {
                        Ok(l) => break l.expect("a free proxy"),
                        Err(e) if e.is_retryable() => continue,
                        Err(e) => errors.push(format!("acquire: {e}")),
                    }
                };
                loop {
                    match s.release(&lease).await {
                        Ok(out) => break assert!(out.freed_capacity()),
                        Err(e) if e.is_retryable() => continue,
                        Err(e) => errors.push(format!("release: {e}")),
                    }
                }
            }
            done.fetch_add(1, Ordering::SeqCst);
            errors
        }));
    }
    let mut flushes = 0;
    while done.load(Ordering::SeqCst) < 4 {
        let () = s
            .raw_command(redis::cmd("SCRIPT").arg("FLUSH"))
            .await
            .expect("SCRIPT FLUSH");
        flushes += 1;
        tokio::task::yield_now().await;
    }
    let mut errors = Vec::new();
    for task in tasks {
        errors.extend(task.await.expect("task"));
    }
    println!("{flushes} flushes, {} final errors", errors.len());
    assert!(
        errors.is_empty(),
        "{} final errors, the first: {:?}",
        errors.len(),
        &errors[..errors.len().min(3)]
    );
    assert_invariants(&h, &pool, true).await;
}
