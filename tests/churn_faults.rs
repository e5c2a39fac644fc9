//! Faults injected into a private `redis-server` while the churn of
//! [`pharox_core::testkit::churn`] runs (64 clients, 3% of acquires dropped
//! mid-flight), with invariants I1–I7 checked throughout and at the end:
//!
//! - the server killed and restarted with AOF (`appendfsync always`): nothing
//!   acknowledged is lost, counters stay within what clients saw, fencing
//!   tokens keep increasing across the restart;
//! - the server killed and restarted without persistence: clients get
//!   retryable errors, then `PoolNotFound`; they register the pool again and
//!   carry on (the operational story in RELIABILITY.md);
//! - `SCRIPT FLUSH` every 100 ms;
//! - the server stalled by `DEBUG SLEEP` on a small connection pool: callers
//!   get timeouts (also while waiting for a pooled connection), never wrong state;
//! - an exhausted connection pool: a clear timeout error, no hang.
//!
//! Each churn lasts 5 s, or `PHAROX_SOAK_SECONDS`; faults repeat through the
//! run, at least [`MIN_FAULTS`] times each, and the churn is held open until
//! they are done. Each fault waits for the churn to have made progress since
//! the last one, and a crash is held until the churn has felt it, so "faults
//! were felt" holds by construction rather than by timing. Run with
//! `--nocapture` to see the figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use pharox_core::testkit::churn::{
    ChurnConfig, ChurnProgress, ChurnReport, run_churn, soak_duration,
};
use pharox_core::testkit::{PATIENCE, add, new_pool, proxy, settle};
use pharox_core::{AcquireRequest, Error, Lease, Storage};
use pharox_redis::testkit::{NO_PERSISTENCE, OwnedRedis, STALLABLE, index_problems};
use pharox_redis::{ConnectionMode, RedisConfig, RedisStorage, redis};

/// Response budget of the restart cases: generous, so no setup call times
/// out on a busy machine; a killed server still fails calls fast (refused).
const TIMEOUT: Duration = Duration::from_secs(5);

/// Each fault is injected at least this many times, however slow the machine.
const MIN_FAULTS: u32 = 3;

fn config(pool: &str) -> ChurnConfig {
    let mut cfg = ChurnConfig::new(pool, soak_duration(Duration::from_secs(5)));
    cfg.faults = true;
    cfg
}

/// Starts the churn in the background; returns it, when its duration ends,
/// and its live progress. It runs on until the `HoldOpen` guard the caller
/// takes from the progress is dropped.
fn start(
    r: &OwnedRedis,
    cfg: ChurnConfig,
) -> (
    tokio::task::JoinHandle<ChurnReport>,
    Instant,
    Arc<ChurnProgress>,
) {
    let until = Instant::now() + cfg.duration;
    let progress = cfg.progress.clone();
    (
        tokio::spawn(run_churn(r.storage.clone(), cfg)),
        until,
        progress,
    )
}

/// Waits until the churn has tolerated an error since `errors` were counted:
/// the fault was felt.
async fn felt(progress: &ChurnProgress, errors: u64) {
    progress
        .wait_until("an error from the fault", PATIENCE, |p| p.errors() > errors)
        .await;
}

/// Waits for the churn, prints its figures under `label`, and checks it:
/// no violation, progress despite the faults, and sound Redis-internal
/// bookkeeping of the churned pool at the end.
async fn finish(
    r: &OwnedRedis,
    churn: tokio::task::JoinHandle<ChurnReport>,
    label: String,
) -> ChurnReport {
    let report = churn.await.expect("the churn panicked");
    println!("{label}: {}", report.summary());
    report.assert_clean();
    // The churn runs until it has (see `Exercise`): by construction.
    report.assert_exercised();
    assert!(
        report.acquired >= 500 && report.certain_intervals >= 500,
        "too little got through the faults to mean anything: {}",
        report.summary()
    );
    let pool = &report.pool;
    let problems = index_problems(&r.storage, pool).await;
    assert!(problems.is_empty(), "{pool}: {problems:#?}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_aof_mid_churn_loses_nothing_acknowledged() {
    let mut r = OwnedRedis::start(
        &[
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ],
        |c| c.response_timeout(TIMEOUT),
    )
    .await;
    // Leases acknowledged before each crash, on a pool beside the churn.
    let held_pool = new_pool(&r, "held").await;
    for i in 0..8 {
        add(&r, proxy(&held_pool, &format!("h{i}"), i)).await;
    }
    let cfg = config("aof");
    // Held for the whole run and the checks after it, however long the soak.
    let hold = TimeDelta::from_std(cfg.duration).unwrap() + TimeDelta::minutes(10);
    let held_request = AcquireRequest::new(held_pool.clone()).duration(hold);
    let (churn, until, progress) = start(&r, cfg);
    let open = progress.hold_open();
    let mut held: Vec<Lease> = Vec::new();
    let mut restarts = 0;
    while restarts < MIN_FAULTS || Instant::now() + Duration::from_millis(1800) < until {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        progress.wait_for_more_leases(100).await;
        let s = r.storage.clone();
        held.push(
            settle(|| s.acquire(&held_request))
                .await
                .expect("a held lease"),
        );
        let errors = progress.errors();
        r.kill();
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Down until the churn has noticed.
        felt(&progress, errors).await;
        r.restart();
        restarts += 1;
    }
    drop(open);
    let report = finish(&r, churn, format!("AOF restarts x{restarts}")).await;
    assert!(
        restarts >= MIN_FAULTS && report.errors > 0,
        "faults were felt"
    );

    // Every lease acknowledged before a crash is still there, with its token.
    let s: &RedisStorage = &r.storage;
    let snapshot = settle(|| s.pool_snapshot(&held_pool)).await;
    for lease in &held {
        let kept = snapshot
            .leases
            .iter()
            .find(|l| l.id == lease.id)
            .unwrap_or_else(|| panic!("lease {} lost in a restart", lease.id));
        assert_eq!(
            (kept.token, kept.expires_at),
            (lease.token, lease.expires_at)
        );
        s.renew(lease, TimeDelta::minutes(1)).await.expect("renew");
    }
    assert!(held.windows(2).all(|w| w[0].token < w[1].token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_without_persistence_mid_churn_recovers_after_reregistration() {
    let mut r = OwnedRedis::start(NO_PERSISTENCE, |c| c.response_timeout(TIMEOUT)).await;
    let mut cfg = config("volatile");
    cfg.data_loss = true;
    // The pool's tokens follow Redis's clock: they keep rising even though
    // every restart starts the pool over.
    cfg.tokens_survive_data_loss = true;
    // Health flips die with the data; the never-active proxies are re-seeded
    // as they were, so I7 for them still holds.
    cfg.flap_every = None;
    let (churn, until, progress) = start(&r, cfg);
    let open = progress.hold_open();
    let mut restarts = 0;
    while restarts < MIN_FAULTS || Instant::now() + Duration::from_millis(1800) < until {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        progress.wait_for_more_leases(100).await;
        let (errors, reseeds) = (progress.errors(), progress.reseeds());
        r.kill();
        tokio::time::sleep(Duration::from_millis(300)).await;
        felt(&progress, errors).await;
        r.restart();
        restarts += 1;
        // Every data loss is noticed and the pool registered again before
        // the next one.
        progress
            .wait_until("the pool registered again", PATIENCE, |p| {
                p.reseeds() > reseeds
            })
            .await;
    }
    drop(open);
    let report = finish(&r, churn, format!("volatile restarts x{restarts}")).await;
    assert!(report.errors > 0);
    assert!(
        report.reseeds >= u64::from(restarts),
        "every data loss was noticed and the pool registered again: {} reseeds, {restarts} restarts",
        report.reseeds
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_flush_mid_churn() {
    // Nothing here is slow but a busy machine: with a generous budget, any
    // error at all would come from the flushes.
    let r = OwnedRedis::start(NO_PERSISTENCE, |c| c.response_timeout(PATIENCE / 2)).await;
    let mut con = r.server.raw_connection().await;
    let (churn, until, progress) = start(&r, config("flush"));
    let open = progress.hold_open();
    let mut flushes = 0;
    while flushes < 30 || Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Calls between flushes, so each flush makes some call reload.
        progress.wait_for_more_leases(10).await;
        let () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut con)
            .await
            .expect("SCRIPT FLUSH");
        flushes += 1;
    }
    drop(open);
    let report = finish(&r, churn, format!("SCRIPT FLUSH x{flushes}")).await;
    assert_eq!(
        report.errors,
        0,
        "a flush costs a reload, never an error: {}",
        report.summary()
    );
    assert!(flushes >= 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_server_on_a_small_pool_gives_timeouts_not_wrong_state() {
    let timeout = Duration::from_millis(300);
    let r = OwnedRedis::start(STALLABLE, |c| {
        c.response_timeout(timeout)
            .mode(ConnectionMode::Pooled { size: 4 })
    })
    .await;
    let mut con = r.server.raw_connection().await;
    let (churn, until, progress) = start(&r, config("stall"));
    let open = progress.hold_open();
    let started = Instant::now();
    let mut stalls = 0;
    // Go on until a stall was felt, too: one in which no call happened to be
    // in flight would show nothing.
    while stalls < MIN_FAULTS
        || Instant::now() + Duration::from_millis(1500) < until
        || progress.errors() == 0
    {
        assert!(started.elapsed() < PATIENCE, "no stall was ever felt");
        tokio::time::sleep(Duration::from_millis(700)).await;
        progress.wait_for_more_leases(100).await;
        let () = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(0.6)
            .query_async(&mut con)
            .await
            .expect("DEBUG SLEEP");
        stalls += 1;
    }
    drop(open);
    let report = finish(&r, churn, format!("DEBUG SLEEP 0.6 s x{stalls}")).await;
    assert!(
        stalls >= MIN_FAULTS && report.errors > 0,
        "the stalls were felt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_connection_pool_gives_a_clear_error_not_a_hang() {
    // A budget far above the 150 ms the first caller needs, even on a busy
    // machine; the pool's wait is 80% of it (1.6 s).
    let timeout = Duration::from_secs(2);
    let r = OwnedRedis::start(NO_PERSISTENCE, |c: RedisConfig| {
        c.response_timeout(timeout)
            .mode(ConnectionMode::Pooled { size: 1 })
    })
    .await;
    let pool = new_pool(&r, "exhausted").await;
    add(&r, proxy(&pool, "p", 1)).await;
    // Sixteen callers each hold the only connection for at least 150 ms (a
    // blocking pop on an empty list, timed by the server): together they
    // need 2.4 s, beyond the 1.6 s the pool waits, so at least five never
    // get the connection, however the callers are scheduled.
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let s = r.storage.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                let mut pop = redis::cmd("BLPOP");
                pop.arg("nothing-here").arg(0.15);
                let out = s.raw_command::<Option<(String, String)>>(&pop).await;
                (out, t.elapsed())
            })
        })
        .collect();
    let (mut answered, mut exhausted, mut timed_out) = (0, 0, 0);
    for call in calls {
        let (out, took) = call.await.unwrap();
        // Generous slack for a loaded machine: the point is "no hang".
        assert!(
            took < timeout * 3,
            "a call waited {took:?}, far beyond its {timeout:?} budget"
        );
        match out {
            Ok(None) => answered += 1,
            Err(e @ Error::Unavailable { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains(
                        "connection pool exhausted: none of its 1 connections came free within 1.6s"
                    ),
                    "{text}"
                );
                assert!(e.request_not_sent(), "nothing was sent: safe to retry");
                exhausted += 1;
            }
            // Got the connection late, then ran out of budget mid-call.
            Err(Error::Timeout { .. }) => timed_out += 1,
            other => panic!("expected an answer or a pool error, got {other:?}"),
        }
    }
    println!(
        "pool of 1, 16 callers: {answered} answered, {exhausted} found the pool exhausted, \
         {timed_out} timed out"
    );
    assert!(answered >= 1, "the first callers were served");
    assert!(
        exhausted >= 1,
        "the last callers heard the pool was exhausted"
    );
    // The pool recovers: a lease now works, and nothing was half-applied.
    let s = &r.storage;
    let req = AcquireRequest::new(pool.clone());
    let lease = settle(|| s.acquire(&req)).await.expect("a lease");
    s.release(&lease).await.unwrap();
    pharox_core::testkit::assert_invariants(&r, &pool, true).await;
}
