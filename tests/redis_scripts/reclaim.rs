//! Reclaiming batches of expired leases: several leases of one proxy
//! reclaimed by one call restore it once; members pharox cannot have
//! written are dropped without harm.

use chrono::TimeDelta;
use pharox_core::{AcquireRequest, PoolId, Proxy, ProxyPool, ProxyProtocol, Selector, Storage};
use pharox_redis::redis;

use crate::support::*;

/// Several leases of one proxy reclaimed by the same script call (a batch of
/// expired leases, as after a stall or a restart) restore its indexes once.
/// Found by the fault churn: the proxy, full and (in the old layout) lazily
/// dropped from the least-used and latency indexes, got its "back in the
/// index" flags added once per lease, which corrupted its word and the
/// `available` counter. Acquires here never reclaim, so the leases stay
/// held until `cleanup_expired` takes them all in one call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_of_one_proxy_reclaimed_in_one_batch_restore_it_once() {
    let mut f = Fixture::start_with(|c| c.reclaim_batch(0)).await;
    for selector in Selector::ALL {
        let pool = PoolId::from(format!("batch-{selector:?}"));
        f.store
            .upsert_pool(&ProxyPool::new(pool.clone()))
            .await
            .unwrap();
        for (i, cap) in [(0u16, 3u32), (1, 1)] {
            let p = Proxy::new(
                pool.clone(),
                format!("10.1.0.{i}"),
                8000 + i,
                ProxyProtocol::Http,
            )
            .with_id(format!("p{i}"))
            .with_latency_ms(10 + u32::from(i))
            .with_max_concurrency(cap);
            f.store.upsert_proxy(&p).await.unwrap();
        }
        let short = AcquireRequest::new(pool.clone())
            .duration(TimeDelta::milliseconds(300))
            .selector(selector);
        // Fill both proxies, then ask once more: both are full.
        let mut last = 0;
        for _ in 0..4 {
            let l = f.store.acquire(&short).await.unwrap().expect("a lease");
            last = last.max(l.expires_at.timestamp_millis());
        }
        assert!(f.store.acquire(&short).await.unwrap().is_none());
        f.wait_past(last).await;
        assert_eq!(f.store.cleanup_expired(&pool, 100).await.unwrap(), 4);
        f.assert_sound(&pool, &format!("{selector:?} after the batch"))
            .await;
        let snap = f.store.pool_snapshot(&pool).await.unwrap();
        let found = pharox_core::invariants::check_snapshot(&snap, true);
        assert!(found.is_empty(), "{selector:?}: {found:?}");
        // Every slot is usable again, exactly once, through every selector.
        let long = AcquireRequest::new(pool.clone()).selector(selector);
        let mut got = Vec::new();
        while let Some(l) = f.store.acquire(&long).await.unwrap() {
            got.push(l.proxy.id.to_string());
            assert!(got.len() <= 4, "{selector:?} over-leased: {got:?}");
        }
        got.sort();
        assert_eq!(got, ["p0", "p0", "p0", "p1"], "{selector:?}");
        let snap = f.store.pool_snapshot(&pool).await.unwrap();
        let found = pharox_core::invariants::check_snapshot(&snap, true);
        assert!(found.is_empty(), "{selector:?}: {found:?}");
        f.assert_sound(&pool, &format!("{selector:?} full again"))
            .await;
    }
}

/// A lease member pharox cannot have written, found among expired leases,
/// is dropped without failing the reclaim of the real ones beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_lease_members_are_dropped_by_reclaim_without_harm() {
    let mut f = Fixture::start().await;
    let pool = f
        .pool(
            "malformed-members",
            &[
                Proxy::new("malformed-members", "10.1.0.1", 8000, ProxyProtocol::Http)
                    .with_id("p")
                    .with_max_concurrency(2),
            ],
        )
        .await;
    let short = AcquireRequest::new(pool.clone()).duration(TimeDelta::milliseconds(100));
    let l = f.store.acquire(&short).await.unwrap().expect("a lease");
    let k = keys("malformed-members");
    for junk in [
        "garbage",
        "16:x:1:2:w",
        "3:1:1:1:w",
        ":::::",
        // Well formed, but not leases of this pool: a sequence far beyond
        // its proxies, one just beyond, and more leases of its one proxy
        // than it holds (one spelled with a leading zero).
        "99999999999:1:1:1:w",
        "17:1:1:1:w",
        "016:5:5:5:w",
        "16:6:6:6:w",
    ] {
        let () = redis::cmd("ZADD")
            .arg(&k.leases_by_deadline)
            .arg(1)
            .arg(junk)
            .query_async(&mut f.con)
            .await
            .unwrap();
    }
    f.wait_past(l.expires_at.timestamp_millis()).await;
    assert_eq!(
        f.store.cleanup_expired(&pool, 100).await.unwrap(),
        1,
        "only the real lease counts"
    );
    let left: Vec<String> = redis::cmd("ZRANGE")
        .arg(&k.leases_by_deadline)
        .arg(0)
        .arg(-1)
        .query_async(&mut f.con)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    let stats = f.store.pool_stats(&pool).await.unwrap();
    assert_eq!(
        (stats.active_leases, stats.expired_leases, stats.available),
        (0, 1, 1)
    );
    f.assert_sound(&pool, "after the reclaim").await;
    // Its capacity is exactly its cap again: two leases, not more.
    let long = AcquireRequest::new(pool.clone());
    assert!(f.store.acquire(&long).await.unwrap().is_some());
    assert!(f.store.acquire(&long).await.unwrap().is_some());
    assert!(f.store.acquire(&long).await.unwrap().is_none());
}
