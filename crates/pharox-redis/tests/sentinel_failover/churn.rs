//! The churn harness (`pharox_core::testkit::churn`: 64 clients, every
//! selector, renewals, releases, abandons, a sweeper, a checker) through
//! the sentinels while the primary is killed mid-run.
//!
//! Replication is asynchronous, so the failover may lose the last writes
//! of the old primary; the run is checked as a data loss (`data_loss`):
//! the store's snapshots (I1–I3 on what it holds), I1 from the clients'
//! side over the leases the store confirmed at release, filters, leaks
//! and the end state, and, because tokens follow the server clock, I5
//! across the loss: every token is above every one granted before it in
//! real time. Errors in the gap must be retryable (`faults`).

use std::time::{Duration, Instant};

use pharox_core::testkit::churn::{ChurnConfig, run_churn, soak_duration};
use pharox_core::testkit::{Harness, PATIENCE};
use pharox_redis::testkit::{RedisHarness, SentinelTopology, index_problems};

use crate::CALL_TIMEOUT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_carries_on_across_a_killed_primary() {
    let mut topology =
        tokio::task::block_in_place(|| SentinelTopology::start("pharox-churn-failover"));
    let h = RedisHarness::on_sentinel(&topology, |c| c.response_timeout(CALL_TIMEOUT)).await;
    let mut cfg = ChurnConfig::new("failover-churn", soak_duration(Duration::from_secs(4)));
    cfg.faults = true;
    cfg.data_loss = true;
    cfg.tokens_survive_data_loss = true;
    // A health flip the failover loses would leave the flapper believing a
    // proxy is down that the new primary leases: no flapper (I7 of the
    // never-active proxies is still checked).
    cfg.flap_every = None;
    let progress = cfg.progress.clone();
    let open = progress.hold_open();
    let churn = tokio::spawn(run_churn(h.storage().clone(), cfg));

    // Under way before the kill, whatever the machine's speed.
    progress.wait_for_more_leases(200).await;
    let errors = progress.errors();
    let killed_at = Instant::now();
    let old = tokio::task::block_in_place(|| topology.kill_primary());
    progress
        .wait_until("the kill felt by a client", PATIENCE, |p| {
            p.errors() > errors
        })
        .await;
    let new = tokio::task::block_in_place(|| topology.wait_for_new_primary(old));
    let promoted_after = killed_at.elapsed();
    // Leases granted after the promotion come from the new primary: the
    // churn resumes there.
    progress.wait_for_more_leases(200).await;
    let resumed_after = killed_at.elapsed();
    drop(open);
    let report = churn.await.expect("the churn task");
    println!(
        "churn across a killed primary ({old} -> {new}): promoted after {promoted_after:?}, \
         200 more leases after {resumed_after:?}; {}",
        report.summary()
    );
    report.assert_clean();
    assert!(
        report.errors > 0,
        "the failover was felt: {}",
        report.summary()
    );
    let problems = index_problems(h.storage(), &report.pool).await;
    assert!(problems.is_empty(), "{problems:#?}");
}
