//! What schemas 4 and 5 changed: lease operations never wait for the
//! pool's row (a transaction holding it stalls none of them), a cleanup
//! reclaims the due leases of proxies another call holds (it waits for
//! them), and a pool removed under 16 tasks' traffic and sweeps is removed
//! without a deadlock or any other error.

use std::time::Duration;

use chrono::TimeDelta;
use pharox_core::testkit::{Harness, add, assert_invariants, new_pool, proxy, request};
use pharox_core::{Error, ReleaseOutcome, Selector, Storage};
use pharox_postgres::testkit::PostgresHarness;
use pharox_postgres::tokio_postgres::{self, NoTls};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_operations_do_not_wait_for_the_pool_row() {
    let h = PostgresHarness::start().await;
    let pool = new_pool(&h, "row").await;
    for i in 0..4 {
        add(&h, proxy(&pool, &format!("p{i}"), i)).await;
    }
    let (locker, connection) = tokio_postgres::connect(h.database().url(), NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    locker
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM pharox_pools WHERE id = '{}' FOR UPDATE",
            pool.as_str()
        ))
        .await
        .unwrap();
    let s = h.storage();
    let calls = async {
        let mut held = Vec::new();
        for selector in [
            Selector::FirstAvailable,
            Selector::LeastUsed,
            Selector::LowestLatency,
        ] {
            let l = s
                .acquire(&request(&pool).selector(selector))
                .await
                .unwrap()
                .expect("a free proxy");
            held.push(s.renew(&l, TimeDelta::seconds(30)).await.unwrap());
        }
        for l in &held {
            assert_eq!(s.release(l).await.unwrap(), ReleaseOutcome::Released);
        }
        s.cleanup_expired(&pool, 10).await.unwrap();
        s.pool_stats(&pool).await.unwrap()
    };
    let stats = tokio::time::timeout(Duration::from_secs(20), calls)
        .await
        .expect("a lease operation waited for the pool's row");
    locker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!((stats.total_leases, stats.released_leases), (3, 3));
    assert_eq!((stats.active_leases, stats.available), (0, 4));
    assert_invariants(&h, &pool, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_removed_under_traffic_is_removed_cleanly() {
    let h = PostgresHarness::start().await;
    let pool = new_pool(&h, "doomed").await;
    for i in 0..8 {
        add(&h, proxy(&pool, &format!("p{i}"), i)).await;
    }
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (s, pool) = (h.storage().clone(), pool.clone());
        tasks.push(tokio::spawn(async move {
            let mut last = 0;
            for r in 0..200 {
                let req = request(&pool)
                    .selector(Selector::ALL[(t + r) % 4])
                    .duration(TimeDelta::milliseconds(50 + (r % 3) as i64 * 500));
                match s.acquire(&req).await {
                    Ok(Some(l)) => {
                        assert!(l.token > last, "tokens of one task increase");
                        last = l.token;
                        if r % 3 != 0 {
                            s.release(&l).await.expect("release");
                        }
                    }
                    Ok(None) => {}
                    Err(Error::PoolNotFound(_)) => return,
                    Err(e) => panic!("acquire: {e:?}"),
                }
            }
        }));
    }
    // Two sweepers too: a cleanup waits for the proxies it reclaims, in the
    // order the removal takes them.
    for _ in 0..2 {
        let (s, pool) = (h.storage().clone(), pool.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                match s.cleanup_expired(&pool, 100).await {
                    Ok(_) => tokio::time::sleep(Duration::from_millis(2)).await,
                    Err(Error::PoolNotFound(_)) => return,
                    Err(e) => panic!("cleanup: {e:?}"),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(h.storage().remove_pool(&pool).await.expect("remove_pool"));
    for task in tasks {
        task.await.expect("no task saw an error");
    }
    // No lease, proxy or counter of the pool is left behind.
    let (client, connection) = tokio_postgres::connect(h.database().url(), NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    for table in ["pharox_leases", "pharox_proxies", "pharox_pool_counters"] {
        let n: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE pool_id = $1"),
                &[&pool.as_str()],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table} rows of the removed pool");
    }
}

/// A cleanup that meets a proxy another transaction holds waits for it and
/// then reclaims its due lease: after the cleanup, no lease that had
/// expired before it holds capacity (I6). Schema 4 skipped the proxy, and
/// the lease outlived the cleanup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleanup_reclaims_due_leases_of_a_proxy_another_call_holds() {
    let h = PostgresHarness::start().await;
    let pool = new_pool(&h, "held").await;
    add(&h, proxy(&pool, "p0", 0)).await;
    let s = h.storage();
    let lease = s
        .acquire(&request(&pool).duration(TimeDelta::milliseconds(5)))
        .await
        .unwrap()
        .expect("a free proxy");
    // Until the store's own clock is past the deadline.
    while s.pool_snapshot(&pool).await.unwrap().taken_at <= lease.expires_at {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (locker, connection) = tokio_postgres::connect(h.database().url(), NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    locker
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM pharox_proxies WHERE pool_id = '{}' FOR UPDATE",
            pool.as_str()
        ))
        .await
        .unwrap();
    let cleanup = tokio::spawn({
        let (s, pool) = (s.clone(), pool.clone());
        async move { s.cleanup_expired(&pool, 10).await }
    });
    // Until the cleanup either returned (schema 4) or waits for the lock.
    loop {
        let waiting: i64 = locker
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' \
                 AND query LIKE '%pharox_cleanup%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 || cleanup.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    locker.batch_execute("COMMIT").await.unwrap();
    let reclaimed = tokio::time::timeout(Duration::from_secs(20), cleanup)
        .await
        .expect("the cleanup returns once the proxy is let go")
        .unwrap()
        .unwrap();
    assert_eq!(reclaimed, 1, "the held proxy's due lease is reclaimed");
    let snap = s.pool_snapshot(&pool).await.unwrap();
    assert!(snap.leases.is_empty(), "left: {:?}", snap.leases);
    let stats = s.pool_stats(&pool).await.unwrap();
    assert_eq!((stats.active_leases, stats.expired_leases), (0, 1));
    assert_invariants(&h, &pool, true).await;
}
