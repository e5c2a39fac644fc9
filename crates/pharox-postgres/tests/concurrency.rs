//! What schema 4 changed: lease operations never wait for the pool's row
//! (a transaction holding it stalls none of them), and a pool removed under
//! 16 tasks' traffic is removed without a deadlock or any other error.

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
