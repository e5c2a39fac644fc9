//! The storage contract suite, written once and run against every store.
//!
//! A store is done when every case passes on it. Implement [`Harness`] for a
//! fresh store and expand [`storage_contract_tests!`](crate::storage_contract_tests)
//! in an integration test; each case becomes its own `#[tokio::test]`, so the
//! test crate needs `tokio` (features `macros`, `rt-multi-thread`) as a dev-dependency.
//!
//! ```ignore
//! // tests/contract_memory.rs: one test per contract case.
//! use pharox_core::testkit::MemoryHarness;
//! pharox_core::storage_contract_tests!(MemoryHarness::new());
//! ```

pub mod churn;
pub mod contract;
mod faulty;
pub mod limits;
mod python;

pub use faulty::{Faults, FaultyStorage, Gate};
pub use python::{schemathesis, test_python};

use std::future::Future;
use std::time::Duration;

use chrono::TimeDelta;

use crate::invariants::{Violation, check_snapshot};
use crate::model::{Lease, PoolId, PoolStatsSnapshot, Proxy, ProxyPool, ProxyProtocol};
use crate::{AcquireRequest, Error, InMemoryStorage, ManualClock, Storage};

/// A fresh store under test, with control over the passage of its time.
pub trait Harness: Send + Sync + 'static {
    /// The store type.
    type Storage: Storage + Clone;

    /// The store. Each harness value is used by one test case.
    fn storage(&self) -> &Self::Storage;

    /// Lets `by` pass on the store's clock: advance a manual clock, or sleep
    /// for a store on real time.
    fn advance(&self, by: Duration) -> impl Future<Output = ()> + Send;

    /// Whether the store evaluates closure predicates (in-process stores only).
    fn supports_predicates(&self) -> bool;

    /// A pool id no other test touches, even on a shared server.
    fn unique_pool(&self, base: &str) -> PoolId {
        PoolId::from(format!("{base}-{:08x}", fastrand::u32(..)))
    }

    /// Disagreements in the store's own bookkeeping of `pool` (indexes,
    /// counters) that the public invariant checks would only see later, if
    /// ever; empty when sound. Called on a pool nobody is using at the moment.
    /// The default knows of no such bookkeeping.
    fn store_problems(&self, pool: &PoolId) -> impl Future<Output = Vec<String>> + Send {
        let _ = pool;
        std::future::ready(Vec::new())
    }

    /// Appends `snapshot` to its pool's stats history as `pharox worker`
    /// does, and answers `true`; `false` (the default) for a store that
    /// keeps no history.
    fn record_stats(&self, snapshot: &PoolStatsSnapshot) -> impl Future<Output = bool> + Send {
        let _ = snapshot;
        std::future::ready(false)
    }
}

/// [`InMemoryStorage`] on a [`ManualClock`], so expiry needs no sleeping.
#[derive(Debug, Clone)]
pub struct MemoryHarness {
    storage: InMemoryStorage,
    clock: ManualClock,
}

impl MemoryHarness {
    /// A fresh store whose clock starts at the current system time.
    pub fn new() -> Self {
        let clock = ManualClock::starting_now();
        Self {
            storage: InMemoryStorage::with_clock(clock.clone()),
            clock,
        }
    }

    /// The manual clock driving the store.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }
}

impl Default for MemoryHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness for MemoryHarness {
    type Storage = InMemoryStorage;

    fn storage(&self) -> &InMemoryStorage {
        &self.storage
    }

    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    fn supports_predicates(&self) -> bool {
        true
    }
}

/// The lease duration expiry cases use: short enough for stores on real time.
pub const SHORT_TTL: TimeDelta = TimeDelta::milliseconds(200);
/// How far expiry cases move time to pass [`SHORT_TTL`].
pub const PAST_SHORT_TTL: Duration = Duration::from_millis(260);
/// The lease duration of cases that must not see an expiry.
pub const LONG_TTL: TimeDelta = TimeDelta::minutes(10);

/// Creates a uniquely named pool and returns its id.
pub async fn new_pool<H: Harness>(h: &H, base: &str) -> PoolId {
    let id = h.unique_pool(base);
    h.storage()
        .upsert_pool(&ProxyPool::new(id.clone()))
        .await
        .expect("create pool");
    id
}

/// An active HTTP proxy with a readable id; the host and port derive from `n`.
pub fn proxy(pool: &PoolId, id: &str, n: u16) -> Proxy {
    Proxy::new(
        pool.clone(),
        format!("10.0.{}.{}", n / 250, n % 250 + 1),
        8000 + n,
        ProxyProtocol::Http,
    )
    .with_id(id)
}

/// Stores a proxy and returns it as stored.
pub async fn add<H: Harness>(h: &H, proxy: Proxy) -> Proxy {
    h.storage()
        .upsert_proxy(&proxy)
        .await
        .expect("upsert proxy")
}

/// A request on `pool` with a long TTL, first available.
pub fn request(pool: &PoolId) -> AcquireRequest {
    AcquireRequest::new(pool.clone()).duration(LONG_TTL)
}

/// Acquires `req`, panicking unless a lease is granted.
pub async fn lease<H: Harness>(h: &H, req: &AcquireRequest) -> Lease {
    h.storage()
        .acquire(req)
        .await
        .expect("acquire")
        .unwrap_or_else(|| panic!("expected a lease for {req:?}"))
}

/// Acquires `req`, panicking if a lease is granted.
pub async fn miss<H: Harness>(h: &H, req: &AcquireRequest) {
    let got = h.storage().acquire(req).await.expect("acquire");
    assert!(got.is_none(), "expected no lease for {req:?}, got {got:?}");
}

/// The id of the proxy `req` leases.
pub async fn picked<H: Harness>(h: &H, req: &AcquireRequest) -> String {
    lease(h, req).await.proxy.id.as_str().to_owned()
}

/// Panics unless `result` is an `InvalidInput` on a field starting with `field`.
pub fn assert_invalid<T: std::fmt::Debug>(result: crate::Result<T>, field: &str) {
    assert_refused(result, field, "");
}

/// Panics unless `result` is an `InvalidInput` on a field starting with
/// `field` whose reason contains `reason`; returns the reason.
pub fn assert_refused<T: std::fmt::Debug>(
    result: crate::Result<T>,
    field: &str,
    reason: &str,
) -> String {
    match result {
        Err(Error::InvalidInput {
            field: f,
            reason: r,
        }) => {
            assert!(
                f.starts_with(field),
                "expected InvalidInput on {field}, got InvalidInput on {f} ({r})"
            );
            assert!(
                r.contains(reason),
                "expected the reason for {f} to say {reason:?}, it says {r:?}"
            );
            r.into_owned()
        }
        other => panic!("expected InvalidInput on {field}, got {other:?}"),
    }
}

/// How long a test waits for something it made happen (a background task's
/// effect, a server coming back) before it fails: far beyond what a loaded
/// machine needs, so a slow machine makes a test slower, never red.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Retries `probe` every 10 ms until it answers `Some`, and returns that;
/// panics naming `what` after [`PATIENCE`].
pub async fn wait_for<T, Fut>(what: &str, mut probe: impl FnMut() -> Fut) -> T
where
    Fut: Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(start.elapsed() < PATIENCE, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// [`retry_while_retryable`] for up to [`PATIENCE`], unwrapped: the call's
/// answer once the store answers again; panics on any other error.
pub async fn settle<T, Fut>(call: impl FnMut() -> Fut) -> T
where
    Fut: Future<Output = crate::Result<T>>,
{
    let (answer, took) = retry_while_retryable(PATIENCE, call).await;
    answer.unwrap_or_else(|e| panic!("no answer after {took:?}: {e}"))
}

/// Repeats `call` while it fails with a retryable error (a store coming
/// back after a restart or a stall), pausing 50 ms between tries. Returns the
/// first other outcome and how long it took; panics if the call is still
/// failing retryably after `within`.
pub async fn retry_while_retryable<T, Fut>(
    within: std::time::Duration,
    mut call: impl FnMut() -> Fut,
) -> (crate::Result<T>, std::time::Duration)
where
    Fut: Future<Output = crate::Result<T>>,
{
    let start = std::time::Instant::now();
    loop {
        match call().await {
            Err(e) if e.is_retryable() => {
                assert!(
                    start.elapsed() < within,
                    "still failing after {within:?}: {e:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            other => return (other, start.elapsed()),
        }
    }
}

/// Violations of I1–I3 (and I6 with `after_cleanup`) in a fresh snapshot.
pub async fn violations<H: Harness>(h: &H, pool: &PoolId, after_cleanup: bool) -> Vec<Violation> {
    let snapshot = h.storage().pool_snapshot(pool).await.expect("snapshot");
    check_snapshot(&snapshot, after_cleanup)
}

/// Panics with the violations if the pool breaks I1–I3 (and I6 with `after_cleanup`).
pub async fn assert_invariants<H: Harness>(h: &H, pool: &PoolId, after_cleanup: bool) {
    let found = violations(h, pool, after_cleanup).await;
    assert!(
        found.is_empty(),
        "invariants broken in pool {pool}:\n{}",
        found
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Expands to one `#[tokio::test]` per contract case, each on a fresh harness
/// built by the given expression (it may `.await`).
///
/// `storage_contract_tests!(sequential NAME, SETUP, HARNESS)` expands
/// instead to one test `NAME` that evaluates `SETUP` once (it may `.await`;
/// dropped when the test ends) and runs every case in turn, each on a fresh
/// harness `HARNESS(&setup).await`: for a backend too costly to start once
/// per case (a Sentinel topology the cases share under prefixes of their
/// own, say).
#[macro_export]
macro_rules! storage_contract_tests {
    (sequential $name:ident, $setup:expr, $harness:expr) => {
        $crate::storage_contract_tests!(@list (@sequence $name, $setup, $harness;));
    };
    ($harness:expr) => {
        $crate::storage_contract_tests!(@list (@cases $harness;));
    };
    (@list ($($head:tt)*)) => {
        $crate::storage_contract_tests!($($head)*
            consumer_round_trip,
            pool_round_trip,
            proxy_round_trip,
            finds_an_active_proxy,
            find_available_proxy_does_not_lease,
            filters_by_each_single_field,
            composite_filters_follow_boolean_logic,
            geo_radius_includes_its_boundary,
            predicate_filters_run_or_are_rejected,
            concurrency_limit_is_enforced,
            unlimited_concurrency_never_blocks,
            first_available_prefers_the_oldest_proxy,
            least_used_picks_the_proxy_with_fewest_leases,
            round_robin_cycles_through_proxies,
            round_robin_cycles_through_filtered_proxies,
            lowest_latency_prefers_the_fastest_proxy,
            lease_and_release,
            get_lease_finds_live_leases_only,
            leases_by_ref_need_only_the_id,
            expired_leases_are_cleaned_up,
            acquire_reclaims_expired_leases_first,
            release_twice_frees_capacity_once,
            release_after_expiry_is_not_an_error,
            renew_extends_the_lease,
            renew_after_expiry_fails_with_lease_lost,
            renew_after_release_fails_with_lease_lost,
            fencing_tokens_strictly_increase,
            non_active_proxies_are_never_leased,
            health_result_updates_status_and_latency,
            health_result_for_unknown_proxy_gives_none,
            removed_proxy_is_never_leased_and_its_leases_release_cleanly,
            lowering_max_concurrency_below_active_leases_is_rejected,
            removed_pool_takes_its_leases_with_it,
            credentials_round_trip_and_stay_redacted,
            pool_stats_match_recomputation_after_random_operations,
            parallel_acquires_never_over_lease_and_never_miss,
            bad_input_gets_typed_errors,
            hostile_ids_work_or_get_typed_errors_and_never_collide,
            unknown_pool_gets_pool_not_found,
            stats_history_answers_recorded_snapshots_newest_first,
        );
    };
    (@sequence $name:ident, $setup:expr, $harness:expr; $($case:ident),* $(,)?) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let setup = $setup;
            $(
                {
                    let harness = $harness(&setup).await;
                    eprintln!("contract case {}", stringify!($case));
                    $crate::testkit::contract::$case(&harness).await;
                }
            )*
        }
    };
    (@cases $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = $harness;
                $crate::testkit::contract::$case(&harness).await;
            }
        )*
    };
}
