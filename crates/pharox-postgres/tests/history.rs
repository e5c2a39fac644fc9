//! The stats history on PostgreSQL: what `pharox worker` records and
//! `pharox stats --history` reads (newest first, capped per pool, gone
//! with its pool), with the errors `Storage::stats_history` promises.

use pharox_core::testkit::{Harness, new_pool};
use pharox_core::validate::MAX_HISTORY_LIMIT;
use pharox_core::{Error, PoolId, ProxyPool, Storage};
use pharox_postgres::testkit::PostgresHarness;

#[tokio::test]
async fn history_keeps_the_newest_per_pool_newest_first() {
    let h = PostgresHarness::start().await;
    let s = h.storage();
    let a = new_pool(&h, "hist-a").await;
    let b = new_pool(&h, "hist-b").await;
    assert!(s.stats_history(&a, 10).await.unwrap().is_empty());
    let mut recorded = Vec::new();
    for i in 0..7u64 {
        let mut snap = s.pool_stats(&a).await.unwrap();
        // Tell the snapshots apart whatever the clock's resolution.
        snap.total_leases = i;
        s.record_stats(&snap, 3).await.unwrap();
        recorded.push(snap);
        let other = s.pool_stats(&b).await.unwrap();
        s.record_stats(&other, 100).await.unwrap();
    }
    let got = s.stats_history(&a, 10).await.unwrap();
    let want: Vec<_> = recorded.iter().rev().take(3).cloned().collect();
    assert_eq!(got, want, "the 3 newest of pool a, newest first");
    assert_eq!(s.stats_history(&a, 1).await.unwrap(), want[..1]);
    // The other pool's cap is its own.
    assert_eq!(s.stats_history(&b, 100).await.unwrap().len(), 7);
    // A cap of 1 keeps only the new one.
    let last = s.pool_stats(&a).await.unwrap();
    s.record_stats(&last, 1).await.unwrap();
    assert_eq!(s.stats_history(&a, 10).await.unwrap(), vec![last]);
}

#[tokio::test]
async fn history_errors_and_removed_pools() {
    let h = PostgresHarness::start().await;
    let s = h.storage();
    let pool = new_pool(&h, "hist-gone").await;
    let snap = s.pool_stats(&pool).await.unwrap();
    s.record_stats(&snap, 10).await.unwrap();
    assert!(matches!(
        s.record_stats(&snap, 0).await,
        Err(Error::InvalidInput {
            field: "max_len",
            ..
        })
    ));
    for limit in [0, MAX_HISTORY_LIMIT + 1] {
        assert!(
            matches!(
                s.stats_history(&pool, limit).await,
                Err(Error::InvalidInput { .. })
            ),
            "limit {limit}"
        );
    }
    assert_eq!(
        s.stats_history(&pool, MAX_HISTORY_LIMIT)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(s.remove_pool(&pool).await.unwrap());
    assert!(matches!(
        s.stats_history(&pool, 10).await,
        Err(Error::PoolNotFound(p)) if p == pool
    ));
    // A snapshot of a pool removed since is dropped, not an error, and
    // leaves nothing behind for a pool of the same name created later.
    s.record_stats(&snap, 10).await.unwrap();
    s.upsert_pool(&ProxyPool::new(pool.clone())).await.unwrap();
    assert!(s.stats_history(&pool, 10).await.unwrap().is_empty());
    assert!(matches!(
        s.stats_history(&PoolId::new("never"), 10).await,
        Err(Error::PoolNotFound(_))
    ));
}
