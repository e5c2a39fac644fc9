//! Churn on both backends with invariants I1–I7 checked throughout (see
//! [`pharox_core::testkit::churn`]): 64 tasks doing random acquires with
//! every selector and random filters, renewals, releases, double releases
//! and abandons, TTLs of 300 ms, a sweeper, a health flapper and an
//! independent checker.
//!
//! Each run lasts 4 s, or `PHAROX_SOAK_SECONDS` (e.g. 600 for the soak of
//! RELIABILITY.md), and on until it has exercised every check (see
//! [`pharox_core::testkit::churn::Exercise`]). Run with `--nocapture` to see
//! the figures.
//!
//! The Redis churns also run over mutual TLS, as an ACL user with exactly
//! the documented client rule, and through Redis Sentinel.
//!
//! The self-tests run a broken store until the harness reports it, for at
//! most a minute: whether one short run happens to expose a bug is luck,
//! whether the harness ever does is not.

#[path = "../crates/pharox-redis/tests/acl_support/mod.rs"]
mod acl_support;
#[path = "../crates/pharox-redis/tests/tls_pki/mod.rs"]
mod tls_pki;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pharox_core::InMemoryStorage;
use pharox_core::testkit::churn::{ChurnConfig, ChurnReport, Exercise, run_churn, soak_duration};
use pharox_core::testkit::{FaultyStorage, Harness};
use pharox_redis::testkit::{RedisHarness, RedisServer, SentinelTopology, index_problems};
use pharox_redis::{ConnectionMode, RedisConfig, RedisStorage};

fn seconds() -> Duration {
    soak_duration(Duration::from_secs(4))
}

/// Redis response budget of the clean churns, where any error is a
/// violation: one a busy machine does not exceed.
const BUDGET: Duration = Duration::from_secs(30);

async fn churn<S: pharox_core::Storage + Clone>(name: &str, s: S, pool: &str) -> ChurnReport {
    let r = run_churn(s, ChurnConfig::new(pool, seconds())).await;
    println!("{name}: {}", r.summary());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_memory() {
    let r = churn("memory", InMemoryStorage::new(), "churn-memory").await;
    r.assert_thorough();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_redis_multiplexed() {
    let h = RedisHarness::start_with(|c| c.response_timeout(BUDGET)).await;
    let r = churn("redis (multiplexed)", h.storage().clone(), "churn-redis").await;
    r.assert_thorough();
    let problems = index_problems(h.storage(), &r.pool).await;
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_redis_pooled() {
    let h = RedisHarness::start_with(|c| {
        c.mode(ConnectionMode::Pooled { size: 8 })
            .response_timeout(BUDGET)
    })
    .await;
    let s: RedisStorage = h.storage().clone();
    let r = churn("redis (pooled, 8)", s.clone(), "churn-pooled").await;
    r.assert_thorough();
    let problems = index_problems(&s, &r.pool).await;
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The churn over mutual TLS (`rediss://` with a password, the server
/// verified against a CA file, a client certificate), in each connection
/// mode, at the default length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_redis_tls() {
    for (name, mode) in [
        (
            "multiplexed",
            ConnectionMode::Multiplexed { connections: 1 },
        ),
        ("pooled, 8", ConnectionMode::Pooled { size: 8 }),
    ] {
        let pki = tls_pki::Pki::new();
        let server = tokio::task::block_in_place(|| {
            RedisServer::start_tls(pki.server(true), &["--requirepass", "churn-tls-pw"])
        });
        let url = format!("rediss://:churn-tls-pw@127.0.0.1:{}", server.port());
        let h = RedisHarness::on_server(server, |c| RedisConfig {
            url,
            ..c.tls_ca_file(&pki.ca)
                .tls_client_cert(&pki.client_cert, &pki.client_key)
                .mode(mode)
                .response_timeout(BUDGET)
        })
        .await;
        let r = churn(
            &format!("redis over TLS ({name})"),
            h.storage().clone(),
            "churn-tls",
        )
        .await;
        r.assert_thorough();
        let problems = index_problems(h.storage(), &r.pool).await;
        assert!(problems.is_empty(), "{problems:#?}");
    }
}

/// The churn through Redis Sentinel (`redis+sentinel://`, a primary, a
/// replica, 3 sentinels), in each connection mode, at the default length.
/// The failover mid-churn is in
/// `crates/pharox-redis/tests/sentinel_failover/churn.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_redis_sentinel() {
    let topology = tokio::task::block_in_place(|| SentinelTopology::start("pharox-churn"));
    for (name, mode) in [
        (
            "multiplexed",
            ConnectionMode::Multiplexed { connections: 1 },
        ),
        ("pooled, 8", ConnectionMode::Pooled { size: 8 }),
    ] {
        let h =
            RedisHarness::on_sentinel(&topology, |c| c.mode(mode).response_timeout(BUDGET)).await;
        let r = churn(
            &format!("redis through Sentinel ({name})"),
            h.storage().clone(),
            "churn-sentinel",
        )
        .await;
        r.assert_thorough();
        let problems = index_problems(h.storage(), &r.pool).await;
        assert!(problems.is_empty(), "{problems:#?}");
    }
}

/// The churn as an ACL user with exactly the documented client rule
/// (`pharox_redis::acl::client_rule`), the default user disabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_redis_acl_user() {
    let server = tokio::task::block_in_place(|| {
        acl_support::server(&[("pharox", &pharox_redis::acl::client_rule("pharox"))])
    });
    let url = acl_support::url(&server, "pharox");
    let h = RedisHarness::on_server(server, |c| RedisConfig {
        url,
        ..c.response_timeout(BUDGET)
    })
    .await;
    let r = churn("redis as an ACL user", h.storage().clone(), "churn-acl").await;
    r.assert_thorough();
    let problems = index_problems(h.storage(), &r.pool).await;
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Runs a churn of `tasks` clients on a fresh `FaultyStorage` set up by
/// `arm`, again and again, until its report has a violation starting with
/// `prefix`; panics after a minute without one. Returns that report.
async fn churn_until_caught(
    name: &str,
    tasks: usize,
    faults: bool,
    prefix: &str,
    arm: impl Fn(&pharox_core::testkit::Faults),
) -> ChurnReport {
    let started = Instant::now();
    for attempt in 1.. {
        let s = FaultyStorage::new(InMemoryStorage::new());
        arm(s.faults());
        let mut cfg = ChurnConfig::new(
            format!("{}-{attempt}", name.replace(' ', "-")),
            Duration::from_millis(1200),
        );
        cfg.tasks = tasks;
        cfg.faults = faults;
        // A broken store may never get there (one whose tokens are wrong
        // cannot release): stop at the duration and try again instead.
        cfg.exercise = Exercise::NONE;
        let r = run_churn(s, cfg).await;
        if r.violations.iter().any(|v| v.starts_with(prefix)) {
            println!("{name}: caught on attempt {attempt}: {}", r.summary());
            return r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{name}: no {prefix} violation in {attempt} runs; the last found {:?}",
            r.violations.iter().take(5).collect::<Vec<_>>()
        );
    }
    unreachable!()
}

/// The harness can fail: a store whose stats lie is caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_catches_a_store_that_misreports_stats() {
    let s = FaultyStorage::new(InMemoryStorage::new());
    s.faults().skew_available.store(1, Ordering::SeqCst);
    let mut cfg = ChurnConfig::new("liar", Duration::from_millis(800));
    cfg.tasks = 8;
    let r = run_churn(s, cfg).await;
    assert!(!r.violations.is_empty());
    assert!(
        r.violations.iter().all(|v| v.starts_with("I3:")),
        "{:?}",
        r.violations
    );
}

/// The harness can fail: lost replies under `faults: false` are reported,
/// and with `faults: true` they are tolerated and bounded. The churn is held
/// open until every armed fault has been met by a client, so all 40 are
/// seen whatever the machine's speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_bounds_outcomes_of_failed_calls() {
    let s = FaultyStorage::new(InMemoryStorage::new());
    let handle = s.clone();
    let mut cfg = ChurnConfig::new("lossy", Duration::from_millis(1500));
    cfg.tasks = 8;
    cfg.faults = true;
    let hold = cfg.progress.hold_open();
    let injector = tokio::spawn(async move {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let faults = handle.faults();
            faults.lose_next_reply.fetch_add(1, Ordering::SeqCst);
            faults.fail_next.fetch_add(1, Ordering::SeqCst);
        }
        let faults = handle.faults();
        let deadline = Instant::now() + Duration::from_secs(60);
        while faults.lose_next_reply.load(Ordering::SeqCst) > 0
            || faults.fail_next.load(Ordering::SeqCst) > 0
        {
            assert!(Instant::now() < deadline, "the armed faults were never met");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(hold);
    });
    let r = run_churn(s, cfg).await;
    injector.await.unwrap();
    println!("lossy: {}", r.summary());
    r.assert_clean();
    r.assert_exercised();
    // Each armed fault is met by one acquire or release of a client, which
    // sees the error.
    assert!(r.errors >= 40, "injected errors were seen: {}", r.errors);
    assert!(
        r.unknown_acquires + r.unknown_releases > 0,
        "lost replies widened the bounds: {}",
        r.summary()
    );
}

/// The harness can fail: a store that grants a lease but answers
/// `Unavailable` (which claims nothing was applied) leaks that lease; the
/// leak check names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_catches_a_store_that_leaks_leases_behind_unavailable() {
    let r = churn_until_caught("leaky", 16, true, "leaked lease", |f| {
        f.leak_acquires.store(40, Ordering::SeqCst);
    })
    .await;
    assert!(r.errors > 0, "{}", r.summary());
}

/// The harness can fail: a store that breaks I1, I5, I7 or filtering is
/// caught, each by its own check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_catches_broken_caps_tokens_health_and_filters() {
    type Knob = fn(&pharox_core::testkit::Faults) -> &std::sync::atomic::AtomicBool;
    let cases: [(&str, Knob, &str); 5] = [
        ("reversed tokens", |f| &f.reverse_tokens, "I5:"),
        (
            "tokens out of real-time order",
            |f| &f.spread_tokens,
            "I5 (real time):",
        ),
        ("ignored health results", |f| &f.ignore_health, "I7:"),
        ("ignored filters", |f| &f.ignore_filters, "filter:"),
        (
            "caps raised behind the client's back",
            |f| &f.raise_caps,
            "I1:",
        ),
    ];
    for (name, knob, prefix) in cases {
        churn_until_caught(name, 16, false, prefix, |f| {
            knob(f).store(true, Ordering::SeqCst)
        })
        .await;
    }
}
