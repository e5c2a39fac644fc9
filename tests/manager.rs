//! ProxyManager behaviour: scoped leases, callbacks, retries, waiting for capacity.
//!
//! No test here depends on timing: a call that must be caught in the middle
//! is held there by a `FaultyStorage` gate, and anything that happens in the
//! background is waited for (up to a minute) instead of given a fixed delay.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use parking_lot::Mutex;
use pharox::testkit::{FaultyStorage, PATIENCE};
use pharox::{
    AcquireRequest, Error, InMemoryStorage, ManualClock, PoolId, Proxy, ProxyFilters, ProxyManager,
    ProxyPool, ProxyProtocol, ReleaseOutcome, RetryPolicy, Selector, Storage,
};

type Flaky = FaultyStorage<InMemoryStorage>;

fn seeded(max_concurrency: u32) -> Flaky {
    let flaky = Flaky::default();
    flaky.inner().add_pool(ProxyPool::new("pool")).unwrap();
    flaky
        .inner()
        .add_proxy(
            Proxy::new("pool", "10.0.0.1", 8080, ProxyProtocol::Http)
                .with_id("p")
                .with_max_concurrency(max_concurrency),
        )
        .unwrap();
    flaky
}

fn pool() -> PoolId {
    PoolId::from("pool")
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

/// Acquires from the test pool, expecting a lease.
async fn take<S: Storage>(m: &ProxyManager<S>) -> pharox::Lease {
    m.acquire(&AcquireRequest::new("pool"))
        .await
        .unwrap()
        .expect("a free proxy")
}

async fn active_leases<S: Storage>(m: &ProxyManager<S>) -> u64 {
    m.pool_stats(&pool()).await.unwrap().active_leases
}

/// Waits until `reached` holds; panics naming `what` after
/// [`PATIENCE`](pharox::testkit::PATIENCE).
async fn wait_for(what: &str, reached: impl Fn() -> bool) {
    pharox::testkit::wait_for(what, || std::future::ready(reached().then_some(()))).await
}

#[tokio::test]
async fn default_consumer_is_ensured_once_not_per_call() {
    let storage = seeded(10);
    let m = ProxyManager::new(storage.clone());
    for _ in 0..5 {
        let l = take(&m).await;
        m.release(&l).await.unwrap();
    }
    assert_eq!(storage.faults().ensure_calls.load(Ordering::SeqCst), 1);
    for _ in 0..3 {
        m.acquire(&AcquireRequest::new("pool").consumer("worker-7"))
            .await
            .unwrap();
    }
    assert_eq!(storage.faults().ensure_calls.load(Ordering::SeqCst), 2);
    let names: Vec<String> = storage
        .list_consumers()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name.to_string())
        .collect();
    assert_eq!(names, ["default", "worker-7"]);
}

#[tokio::test]
async fn with_lease_releases_after_success() {
    let m = ProxyManager::new(seeded(1));
    let port = m
        .with_lease(&AcquireRequest::new("pool"), |lease| async move {
            Ok::<_, Error>(lease.proxy.port)
        })
        .await
        .unwrap();
    assert_eq!(port, Some(8080));
    assert_eq!(active_leases(&m).await, 0);
}

#[derive(Debug, PartialEq)]
enum JobError {
    Scrape(&'static str),
    Pharox(String),
}

impl From<Error> for JobError {
    fn from(e: Error) -> Self {
        Self::Pharox(e.to_string())
    }
}

#[tokio::test]
async fn with_lease_releases_after_an_error_and_returns_it() {
    let m = ProxyManager::new(seeded(1));
    let result: Result<Option<()>, JobError> = m
        .with_lease(&AcquireRequest::new("pool"), |_lease| async {
            Err(JobError::Scrape("target answered 429"))
        })
        .await;
    assert_eq!(result, Err(JobError::Scrape("target answered 429")));
    assert_eq!(active_leases(&m).await, 0);
}

#[tokio::test]
async fn with_lease_releases_after_a_panic_and_resumes_it() {
    let m = ProxyManager::new(seeded(1));
    let m2 = m.clone();
    let joined = tokio::spawn(async move {
        m2.with_lease(&AcquireRequest::new("pool"), |_lease| async {
            if true {
                panic!("scraper bug");
            }
            Ok::<(), Error>(())
        })
        .await
    })
    .await;
    assert!(joined.unwrap_err().is_panic(), "the panic propagates");
    assert_eq!(active_leases(&m).await, 0);
}

#[tokio::test]
async fn with_lease_releases_when_cancelled() {
    let m = ProxyManager::new(seeded(1));
    let started = Arc::new(tokio::sync::Notify::new());
    let (m2, started2) = (m.clone(), started.clone());
    let task = tokio::spawn(async move {
        m2.with_lease(&AcquireRequest::new("pool"), |_lease| async move {
            started2.notify_one();
            std::future::pending::<Result<(), Error>>().await
        })
        .await
    });
    started.notified().await;
    assert_eq!(active_leases(&m).await, 1);
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    wait_for_no_active_leases(&m).await;
}

/// Cancellation hands the release to a spawned task: wait for it.
async fn wait_for_no_active_leases<S: Storage>(m: &ProxyManager<S>) {
    pharox::testkit::wait_for("the lease given back", || async {
        (active_leases(m).await == 0).then_some(())
    })
    .await
}

#[tokio::test]
async fn with_lease_releases_when_cancelled_during_the_release() {
    let storage = seeded(1);
    let m = ProxyManager::new(storage.clone());
    // The scoped release is held at the gate: cancelled while releasing, for certain.
    storage.faults().release_gate.close();
    let m2 = m.clone();
    let scoped = tokio::spawn(async move {
        m2.with_lease(&AcquireRequest::new("pool"), |_| async {
            Ok::<_, Error>(())
        })
        .await
    });
    let faults = storage.faults();
    wait_for("the scoped release", || {
        faults.release_calls.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(
        storage
            .inner()
            .pool_stats(&pool())
            .await
            .unwrap()
            .active_leases,
        1
    );
    scoped.abort();
    assert!(
        scoped.await.unwrap_err().is_cancelled(),
        "cancelled while releasing"
    );
    storage.faults().release_gate.open();
    wait_for_no_active_leases(&m).await;
    assert_eq!(
        storage.faults().release_calls.load(Ordering::SeqCst),
        2,
        "the dropped release, then the one the guard spawned"
    );
}

#[tokio::test]
async fn acquire_cancelled_while_callbacks_run_releases_the_lease() {
    let storage = seeded(1);
    let m = ProxyManager::new(storage.clone());
    m.on_acquire(|_| {});
    // The callback's stats read is held at the gate, after the lease was granted.
    storage.faults().stats_gate.close();
    let m2 = m.clone();
    let acquiring = tokio::spawn(async move { m2.acquire(&AcquireRequest::new("pool")).await });
    let faults = storage.faults();
    wait_for("the callback's stats read", || {
        faults.stats_calls.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(
        storage
            .inner()
            .pool_stats(&pool())
            .await
            .unwrap()
            .active_leases,
        1
    );
    acquiring.abort();
    assert!(
        acquiring.await.unwrap_err().is_cancelled(),
        "cancelled while the callback's stats were read"
    );
    storage.faults().stats_gate.open();
    wait_for_no_active_leases(&m).await;
}

#[tokio::test]
async fn with_lease_returns_none_without_calling_work_when_no_proxy_is_free() {
    let m = ProxyManager::new(seeded(1));
    let _held = take(&m).await;
    let called = AtomicU32::new(0);
    let result = m
        .with_lease(&AcquireRequest::new("pool"), |_| async {
            called.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    assert_eq!(result, None);
    assert_eq!(called.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn with_lease_keeps_the_result_when_release_fails() {
    let storage = seeded(1);
    let m = ProxyManager::with_retry(storage.clone(), RetryPolicy::none());
    storage.faults().fail_releases.store(true, Ordering::SeqCst);
    let result = m
        .with_lease(&AcquireRequest::new("pool"), |_| async {
            Ok::<_, Error>(42)
        })
        .await
        .unwrap();
    assert_eq!(result, Some(42));
}

#[tokio::test]
async fn retryable_errors_are_retried_with_backoff() {
    let storage = seeded(1);
    let m = ProxyManager::with_retry(storage.clone(), fast_retry());
    storage.faults().fail_next.store(2, Ordering::SeqCst);
    let lease = m.acquire(&AcquireRequest::new("pool")).await.unwrap();
    assert!(lease.is_some());
    assert_eq!(storage.faults().acquire_calls.load(Ordering::SeqCst), 3);

    storage.faults().fail_next.store(10, Ordering::SeqCst);
    let err = m.acquire(&AcquireRequest::new("pool")).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(storage.faults().acquire_calls.load(Ordering::SeqCst), 3 + 4);
}

#[tokio::test]
async fn acquire_is_not_retried_after_a_timeout_but_release_is() {
    let storage = seeded(10);
    let m = ProxyManager::with_retry(storage.clone(), fast_retry());
    // The store grants a lease but the reply is lost: retrying would hold a
    // second lease, so the timeout goes to the caller.
    storage.faults().lose_next_reply.store(1, Ordering::SeqCst);
    let err = m.acquire(&AcquireRequest::new("pool")).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(storage.faults().acquire_calls.load(Ordering::SeqCst), 1);
    assert_eq!(active_leases(&m).await, 1, "the orphan ends at its expiry");

    // A release is safe to repeat: its lost reply is retried, and the retry
    // finds nothing held, which this release may have done.
    let lease = take(&m).await;
    storage.faults().lose_next_reply.store(1, Ordering::SeqCst);
    assert_eq!(
        m.release(&lease).await.unwrap(),
        ReleaseOutcome::ReleasedOrGone
    );
    assert_eq!(active_leases(&m).await, 1);
}

/// Counts the release callbacks and keeps their outcomes.
fn released_events<S: Storage>(m: &ProxyManager<S>) -> Arc<Mutex<Vec<ReleaseOutcome>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    m.on_release(move |e| s.lock().push(e.outcome));
    seen
}

#[tokio::test]
async fn a_release_retried_after_a_lost_reply_reports_released_or_gone() {
    let storage = seeded(1);
    let m = ProxyManager::with_retry(storage.clone(), fast_retry());
    let events = released_events(&m);
    let lease = take(&m).await;
    // Applied, then the reply is lost: the retry finds nothing held.
    storage.faults().lose_next_reply.store(1, Ordering::SeqCst);
    let outcome = m.release(&lease).await.unwrap();
    assert_eq!(outcome, ReleaseOutcome::ReleasedOrGone);
    assert!(
        !outcome.freed_capacity(),
        "not known to have freed capacity"
    );
    assert_eq!(storage.faults().release_calls.load(Ordering::SeqCst), 2);
    // Capacity was freed once, by the lost attempt.
    let stats = m.pool_stats(&pool()).await.unwrap();
    assert_eq!(
        (
            stats.active_leases,
            stats.released_leases,
            stats.expired_leases
        ),
        (0, 1, 0)
    );
    assert!(
        events.lock().is_empty(),
        "no callback claims a release the manager cannot know happened"
    );
    // Releasing again, with no fault, is a plain NotHeld.
    assert_eq!(m.release(&lease).await.unwrap(), ReleaseOutcome::NotHeld);
}

#[tokio::test]
async fn a_first_release_of_a_lease_already_gone_is_still_not_held() {
    let storage = seeded(1);
    let m = ProxyManager::with_retry(storage.clone(), fast_retry());
    let lease = take(&m).await;
    assert_eq!(
        storage.release(&lease).await.unwrap(),
        ReleaseOutcome::Released
    );
    // No fault: the first attempt answers, nothing is uncertain.
    assert_eq!(m.release(&lease).await.unwrap(), ReleaseOutcome::NotHeld);
    // A refused connection applied nothing: its retry's NotHeld is certain too.
    storage.faults().fail_next.store(1, Ordering::SeqCst);
    assert_eq!(m.release(&lease).await.unwrap(), ReleaseOutcome::NotHeld);
    assert_eq!(storage.faults().release_calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_release_retried_after_an_interruption_that_did_not_apply_is_released() {
    let storage = seeded(1);
    let m = ProxyManager::with_retry(storage.clone(), fast_retry());
    let events = released_events(&m);
    let lease = take(&m).await;
    // Maybe applied, but not: the retry finds the lease held and releases it.
    storage.faults().interrupt_next.store(1, Ordering::SeqCst);
    assert_eq!(m.release(&lease).await.unwrap(), ReleaseOutcome::Released);
    assert_eq!(storage.faults().release_calls.load(Ordering::SeqCst), 2);
    assert_eq!(*events.lock(), [ReleaseOutcome::Released]);
    // Lost, then refused, then nothing held: still uncertain.
    let lease = take(&m).await;
    storage.faults().lose_next_reply.store(1, Ordering::SeqCst);
    storage.faults().fail_next.store(1, Ordering::SeqCst);
    // `fail_next` is met first: refused (not applied), then lost (applied),
    // then the retry finds nothing held.
    assert_eq!(
        m.release(&lease).await.unwrap(),
        ReleaseOutcome::ReleasedOrGone
    );
    assert_eq!(active_leases(&m).await, 0);
}

#[test]
fn released_or_gone_is_serialised_in_kebab_case() {
    assert_eq!(
        serde_json::to_string(&ReleaseOutcome::ReleasedOrGone).unwrap(),
        "\"released-or-gone\""
    );
}

#[tokio::test]
async fn non_retryable_errors_are_not_retried() {
    let storage = seeded(1);
    let m = ProxyManager::with_retry(storage.clone(), fast_retry());
    let err = m
        .acquire(&AcquireRequest::new("pool").duration(TimeDelta::zero()))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidInput {
            field: "duration",
            ..
        }
    ));
    assert_eq!(storage.faults().acquire_calls.load(Ordering::SeqCst), 1);
}

#[test]
fn backoff_is_jittered_and_capped() {
    let policy = RetryPolicy {
        max_retries: 10,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
    };
    let samples: Vec<Duration> = (0..200).map(|_| policy.backoff(1)).collect();
    assert!(samples.iter().all(|d| *d <= Duration::from_millis(20)));
    let distinct: std::collections::HashSet<_> = samples.iter().collect();
    assert!(distinct.len() > 50, "backoff is jittered");
    assert!((0..200).all(|_| policy.backoff(30) <= Duration::from_millis(100)));
}

#[tokio::test]
async fn callbacks_receive_the_documented_payload() {
    let m = ProxyManager::new(seeded(1));
    let acquired = Arc::new(Mutex::new(Vec::new()));
    let released = Arc::new(Mutex::new(Vec::new()));
    let a = acquired.clone();
    m.on_acquire(move |e| {
        a.lock().push((
            e.lease.map(|l| l.proxy.id.to_string()),
            e.pool.to_string(),
            e.consumer.to_string(),
            e.filters.country.clone(),
            e.selector,
            e.pool_stats.map(|s| s.active_leases),
        ));
    });
    let r = released.clone();
    m.on_release(move |e| {
        r.lock().push((
            e.lease.proxy.id.to_string(),
            e.outcome,
            e.pool_stats.map(|s| s.active_leases),
        ));
    });
    let req = AcquireRequest::new("pool")
        .consumer("w1")
        .selector(Selector::LeastUsed)
        .filters(ProxyFilters::new());
    let lease = m.acquire(&req).await.unwrap().unwrap();
    assert!(m.acquire(&req).await.unwrap().is_none());
    m.release(&lease).await.unwrap();
    m.release(&lease).await.unwrap();

    let acquired = acquired.lock().clone();
    assert_eq!(
        acquired,
        [
            (
                Some("p".into()),
                "pool".into(),
                "w1".into(),
                None,
                Selector::LeastUsed,
                Some(1)
            ),
            (
                None,
                "pool".into(),
                "w1".into(),
                None,
                Selector::LeastUsed,
                Some(1)
            ),
        ]
    );
    assert_eq!(
        released.lock().clone(),
        [("p".to_string(), ReleaseOutcome::Released, Some(0))],
        "only the release that freed capacity is reported"
    );
}

#[tokio::test]
async fn without_callbacks_the_manager_reads_no_stats() {
    let storage = seeded(1);
    let m = ProxyManager::new(storage.clone());
    let lease = take(&m).await;
    m.release(&lease).await.unwrap();
    let waited = m
        .acquire_wait(&AcquireRequest::new("pool"), Duration::from_millis(10))
        .await
        .unwrap()
        .expect("the slot is free");
    m.release(&waited).await.unwrap();
    assert_eq!(storage.faults().stats_calls.load(Ordering::SeqCst), 0);
    m.on_acquire(|_| {});
    take(&m).await;
    assert_eq!(storage.faults().stats_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_panicking_callback_does_not_lose_the_lease() {
    let m = ProxyManager::new(seeded(1));
    m.on_acquire(|_| panic!("metrics exporter bug"));
    let lease = m.acquire(&AcquireRequest::new("pool")).await.unwrap();
    assert!(lease.is_some(), "the caller still gets its lease");
}

#[tokio::test]
async fn acquire_wait_wakes_when_capacity_returns() {
    let m = ProxyManager::new(seeded(1));
    let held = take(&m).await;
    let m2 = m.clone();
    let waiter = tokio::spawn(async move {
        let started = Instant::now();
        let lease = m2
            .acquire_wait(&AcquireRequest::new("pool"), Duration::from_secs(600))
            .await
            .unwrap();
        (lease, started.elapsed())
    });
    // The waiter has found nothing and waits (its first attempt missed).
    let faults = m.storage().faults();
    wait_for("the waiter's first attempt", || {
        faults.acquire_calls.load(Ordering::SeqCst) >= 2
    })
    .await;
    m.release(&held).await.unwrap();
    let (lease, waited) = waiter.await.unwrap();
    assert!(lease.is_some());
    assert!(
        waited < PATIENCE,
        "woke on release, not at the deadline: {waited:?}"
    );
}

#[tokio::test]
async fn acquire_wait_gives_up_at_the_deadline() {
    let m = ProxyManager::new(seeded(1));
    let _held = take(&m).await;
    let started = Instant::now();
    let lease = m
        .acquire_wait(&AcquireRequest::new("pool"), Duration::from_millis(150))
        .await
        .unwrap();
    assert!(lease.is_none());
    assert!(started.elapsed() >= Duration::from_millis(150));
    // Gives up near the deadline; the slack is for a loaded machine.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn acquire_wait_sees_expired_leases_come_back() {
    let clock = ManualClock::starting_now();
    let storage = FaultyStorage::new(InMemoryStorage::with_clock(clock.clone()));
    storage.inner().add_pool(ProxyPool::new("pool")).unwrap();
    storage
        .inner()
        .add_proxy(
            Proxy::new("pool", "10.0.0.1", 8080, ProxyProtocol::Http).with_max_concurrency(1),
        )
        .unwrap();
    let m = ProxyManager::new(storage.clone());
    let short = AcquireRequest::new("pool").duration(TimeDelta::seconds(1));
    m.acquire(&short).await.unwrap().unwrap();
    let m2 = m.clone();
    let waiter = tokio::spawn(async move {
        m2.acquire_wait(&AcquireRequest::new("pool"), Duration::from_secs(600))
            .await
    });
    // The waiter has missed once and waits: only the expiry can serve it.
    let faults = storage.faults();
    wait_for("the waiter's first attempt", || {
        faults.acquire_calls.load(Ordering::SeqCst) >= 2
    })
    .await;
    clock.advance(Duration::from_secs(2));
    let lease = waiter.await.unwrap().unwrap();
    assert!(
        lease.is_some(),
        "the expired lease was reclaimed for the waiter"
    );
}

#[tokio::test]
async fn cleanup_expired_sweeps_every_pool() {
    let clock = ManualClock::starting_now();
    let storage = InMemoryStorage::with_clock(clock.clone());
    for pool in ["a", "b"] {
        storage.add_pool(ProxyPool::new(pool)).unwrap();
        storage
            .add_proxy(Proxy::new(pool, "10.0.0.1", 8080, ProxyProtocol::Http))
            .unwrap();
    }
    let m = ProxyManager::new(storage);
    for pool in ["a", "b"] {
        for _ in 0..1_500 {
            let req = AcquireRequest::new(pool).duration(TimeDelta::seconds(1));
            m.acquire(&req).await.unwrap().unwrap();
        }
    }
    clock.advance(Duration::from_secs(2));
    assert_eq!(m.cleanup_expired().await.unwrap(), 3_000);
    assert_eq!(m.cleanup_expired().await.unwrap(), 0);
}

#[tokio::test]
async fn renew_goes_through_the_manager() {
    let m = ProxyManager::new(seeded(1));
    let lease = take(&m).await;
    let renewed = m.renew(&lease, TimeDelta::hours(1)).await.unwrap();
    assert!(renewed.expires_at > lease.expires_at);
    m.release(&renewed).await.unwrap();
    assert!(matches!(
        m.renew(&lease, TimeDelta::hours(1)).await,
        Err(Error::LeaseLost { .. })
    ));
}
