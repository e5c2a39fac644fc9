//! A failure after the acquire script granted a lease never makes a retried
//! acquire hold two leases. The fault is injected exactly there
//! ([`AfterGrantFaults`]): the read of the leased proxy's data that the
//! client's cache lacks, and the release that gives such a lease back.
//!
//! The follow-up read happens when the client already caches the pool's
//! proxy-data generation but not the leased proxy: the script then omits
//! the proxy's JSON. Each test leases proxy A first (the cache learns the
//! generation and A), then asks for another lease, which can only be B.
//!
//! [`AfterGrantFaults`]: pharox_redis::testkit::AfterGrantFaults

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::TimeDelta;
use pharox_core::testkit::{Harness, new_pool, proxy};
use pharox_core::{AcquireRequest, Error, PoolId, ProxyManager, Storage};
use pharox_redis::RedisStorage;
use pharox_redis::testkit::{RedisHarness, index_problems};

/// A pool of two single-slot proxies with A leased through `s`, so that
/// `s` caches the pool's generation and A only.
async fn pool_with_a_leased(h: &RedisHarness) -> (PoolId, AcquireRequest) {
    let s = h.storage();
    let pool = new_pool(h, "after-grant").await;
    for (id, n) in [("a", 1), ("b", 2)] {
        s.upsert_proxy(&proxy(&pool, id, n).with_max_concurrency(1))
            .await
            .unwrap();
    }
    let request = AcquireRequest::new(pool.clone()).duration(TimeDelta::seconds(2));
    let a = s.acquire(&request).await.unwrap().expect("proxy a is free");
    assert_eq!(a.proxy.id.as_str(), "a");
    (pool, request)
}

async fn live_leases(s: &RedisStorage, pool: &PoolId) -> Vec<String> {
    let snap = s.pool_snapshot(pool).await.unwrap();
    let found = pharox_core::invariants::check_snapshot(&snap, true);
    assert!(found.is_empty(), "{found:?}");
    snap.leases
        .iter()
        .map(|l| l.proxy.id.as_str().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_follow_up_read_gives_the_lease_back_and_is_never_retried_as_unsent() {
    let h = RedisHarness::start().await;
    let s = h.storage();
    let (pool, request) = pool_with_a_leased(&h).await;
    // The read and its one retry both fail.
    s.after_grant_faults()
        .follow_up_reads
        .store(2, Ordering::SeqCst);
    let manager = ProxyManager::new(s.clone());
    let err = manager
        .acquire(&request)
        .await
        .expect_err("the proxy data could not be read");
    assert!(matches!(err, Error::Interrupted { .. }), "{err:?}");
    assert!(
        !err.request_not_sent(),
        "a granted lease must never read as not sent: {err}"
    );
    assert!(
        err.to_string().contains("released again"),
        "the error says what happened: {err}"
    );
    assert_eq!(
        s.after_grant_faults()
            .follow_up_reads
            .load(Ordering::SeqCst),
        0,
        "both injected faults were met"
    );
    // Only A is held: B was granted once, then given back.
    assert_eq!(live_leases(s, &pool).await, ["a"]);
    let stats = s.pool_stats(&pool).await.unwrap();
    assert_eq!(
        (
            stats.total_leases,
            stats.active_leases,
            stats.released_leases
        ),
        (2, 1, 1),
        "{stats:?}"
    );
    assert_eq!(index_problems(s, &pool).await, Vec::<String>::new());
    // B is free again.
    let b = s.acquire(&request).await.unwrap().expect("proxy b is free");
    assert_eq!(b.proxy.id.as_str(), "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lost_follow_up_read_is_read_again_within_the_call() {
    let h = RedisHarness::start().await;
    let s = h.storage();
    let (pool, request) = pool_with_a_leased(&h).await;
    s.after_grant_faults()
        .follow_up_reads
        .store(1, Ordering::SeqCst);
    let b = s
        .acquire(&request)
        .await
        .expect("the second read succeeds")
        .expect("proxy b is free");
    assert_eq!(b.proxy.id.as_str(), "b");
    let mut held = live_leases(s, &pool).await;
    held.sort();
    assert_eq!(held, ["a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_give_back_fails_too_the_lease_is_reported_held_until_it_expires() {
    let h = RedisHarness::start().await;
    let s = h.storage();
    let (pool, request) = pool_with_a_leased(&h).await;
    let faults = s.after_grant_faults();
    faults.follow_up_reads.store(2, Ordering::SeqCst);
    faults.give_backs.store(1, Ordering::SeqCst);
    let manager = ProxyManager::new(s.clone());
    let err = manager
        .acquire(&request)
        .await
        .expect_err("nothing completes");
    assert!(
        matches!(err, Error::Interrupted { .. }) && !err.request_not_sent(),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("held until it expires"),
        "the error says the lease stays: {err}"
    );
    // The manager did not acquire again: one lease of B leaked, no more.
    let mut held = live_leases(s, &pool).await;
    held.sort();
    assert_eq!(held, ["a", "b"]);
    assert_eq!(s.pool_stats(&pool).await.unwrap().total_leases, 2);
    // It ends at its deadline like any abandoned lease.
    h.advance(Duration::from_millis(2_300)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while s.pool_stats(&pool).await.unwrap().active_leases > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the leases never expired"
        );
        s.cleanup_expired(&pool, 10).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(index_problems(s, &pool).await, Vec::<String>::new());
}
