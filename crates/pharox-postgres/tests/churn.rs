//! The churn of [`pharox_core::testkit::churn`] on PostgresStorage, with
//! invariants I1–I7 checked throughout: 64 tasks doing random acquires with
//! every selector and random filters, renewals, releases, double releases
//! and abandons, TTLs of 300 ms, a sweeper, a health flapper and an
//! independent checker, on a fresh database.
//!
//! The run lasts 4 s, or `PHAROX_SOAK_SECONDS`, and on until it has
//! exercised every check (see [`pharox_core::testkit::churn::Exercise`]);
//! the report must be clean and show every path taken (the assertions of
//! the Redis churns in the workspace's `tests/churn.rs`), and afterwards
//! the store's own counters must equal a recount of its tables (a recount
//! shown to catch counters set wrong behind the store's back). Run with
//! `--nocapture` to see the figures.

mod support;

use std::time::Duration;

use pharox_core::testkit::Harness;
use pharox_core::testkit::churn::{ChurnConfig, run_churn, soak_duration};
use pharox_postgres::testkit::PostgresHarness;
use pharox_postgres::tokio_postgres::{self, NoTls};

/// Budget of each call and of the wait for a pooled connection in this
/// clean churn, where any error is a violation: one a busy machine does not
/// exceed.
const BUDGET: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_postgres() {
    let h = PostgresHarness::start_with(|c| c.operation_timeout(BUDGET).wait_timeout(BUDGET)).await;
    let cfg = ChurnConfig::new("churn-postgres", soak_duration(Duration::from_secs(4)));
    let r = run_churn(h.storage().clone(), cfg).await;
    println!("postgres: {}", r.summary());
    r.assert_thorough();
    let url = h.database().url();
    let pool = r.pool.as_str();
    let problems = support::bookkeeping_problems(url, pool).await;
    assert!(problems.is_empty(), "{problems:#?}");

    // The recount can fail: a proxy's lease count and a pool counter set
    // wrong behind the store's back are both named.
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .execute(
            "UPDATE pharox_proxies SET current_leases = current_leases + 1 \
             WHERE pool_id = $1 AND seq = (SELECT min(seq) FROM pharox_proxies \
             WHERE pool_id = $1 AND current_leases < capacity)",
            &[&pool],
        )
        .await
        .unwrap();
    client
        .execute(
            "UPDATE pharox_pools SET proxies_available = proxies_available + 1 WHERE id = $1",
            &[&pool],
        )
        .await
        .unwrap();
    let problems = support::bookkeeping_problems(url, pool).await;
    assert!(
        problems
            .iter()
            .any(|p| p.contains("current_leases 1, 0 lease rows"))
            && problems.iter().any(|p| p.starts_with("proxies_available")),
        "{problems:#?}"
    );
}
