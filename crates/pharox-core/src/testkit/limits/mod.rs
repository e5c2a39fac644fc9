//! The limits suite: every limit of [`validate`](crate::validate) (and the
//! filter limits beside it), run at its largest accepted value on a store,
//! with one more refused.
//!
//! Expand [`storage_limit_tests!`](crate::storage_limit_tests) in an
//! integration test; each case becomes its own `#[tokio::test]`. Every case
//! returns the pools it used, and the macro then checks each one: its
//! `pool_stats` equal a recomputation from `pool_snapshot` (I1–I3 and the
//! lifetime counters) and [`Harness::store_problems`] finds nothing.
//!
//! Leases are held for [`HOLD`] (24 h). Those that must expire are renewed to
//! [`SHORT_TTL`] and the clock moved past it, so how long granting them took
//! never decides which have expired.
//!
//! ```ignore
//! // tests/limits_memory.rs
//! use pharox_core::testkit::MemoryHarness;
//! pharox_core::storage_limit_tests!(MemoryHarness::new());
//! ```

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::stream;

use super::{
    Harness, PAST_SHORT_TTL, SHORT_TTL, assert_invalid, assert_refused, lease, miss, new_pool,
};
use crate::invariants::{check_lifetime_counters, check_snapshot};
use crate::model::{
    ConsumerName, Lease, PoolId, PoolStatsSnapshot, Proxy, ProxyCounts, ProxyId, ProxyPool,
    ProxyProtocol, ProxyStatus,
};
use crate::validate::{
    MAX_CLEANUP_BATCH, MAX_CONCURRENCY, MAX_CONSUMER_NAME_LEN, MAX_EXTRA_ENTRIES, MAX_FILTER_BYTES,
    MAX_FILTER_DEPTH, MAX_FILTER_NODES, MAX_FILTER_VALUE_LEN, MAX_HOST_LEN, MAX_LEASE_DURATION,
    MAX_POOL_ID_LEN, MAX_PROXIES_PER_POOL, MAX_PROXY_ID_LEN, MAX_RADIUS_KM, MAX_TEXT_LEN,
    MIN_LEASE_DURATION,
};
use crate::{AcquireRequest, Error, PoolSnapshot, ProxyFilters, ReleaseOutcome, Selector, Storage};

/// Proxies in the "large pool" cases.
pub const LARGE_POOL: usize = 100_000;
/// Calls a seeding helper keeps in flight at once.
pub const IN_FLIGHT: usize = 64;
/// Acquires per selector in the cases that compare with the reference.
pub const ACQUIRES_PER_SELECTOR: usize = 4;
/// The lease duration of leases a case holds: the longest accepted, so none
/// expires during a case however slow the store (a case's reference does
/// not model expiry).
pub const HOLD: chrono::TimeDelta = MAX_LEASE_DURATION;
/// Centre of the area every located test proxy lies in (Buenos Aires).
pub const CENTRE: (f64, f64) = (-34.0, -58.0);
/// A radius around [`CENTRE`] that covers every located test proxy.
pub const COVERING_KM: f64 = 250.0;

mod cases;
mod filters;
mod reference;
mod seed;

pub use cases::*;
pub use filters::{largest_filter, longest_value, varied_proxy};
pub use reference::Reference;
use reference::acquire_like_the_reference;
pub use seed::*;

/// Expands to one `#[tokio::test]` per limit case, each on a fresh harness
/// built by the first expression (it may `.await`). The case
/// `acquire_reclaims_a_full_batch` uses the `full_reclaim_batch` expression
/// when given: a harness whose acquires reclaim [`MAX_CLEANUP_BATCH`] leases
/// (Redis: `reclaim_batch(10_000)`). Attributes after `at_size:` go on the
/// cases that seed 100,000 or [`MAX_PROXIES_PER_POOL`] proxies or take
/// [`MAX_CONCURRENCY`] leases one by one (e.g. `#[ignore = "why"]` for a
/// store where that takes far longer than a test suite may). After each
/// case, every pool it used is checked with [`check_pool`], and the case's
/// time is printed.
#[macro_export]
macro_rules! storage_limit_tests {
    ($harness:expr) => {
        $crate::storage_limit_tests!($harness, full_reclaim_batch: $harness);
    };
    ($harness:expr, full_reclaim_batch: $full_batch:expr $(, at_size: $(#[$at_size:meta])*)?) => {
        $crate::storage_limit_tests!(@cases $full_batch; [] acquire_reclaims_a_full_batch);
        $crate::storage_limit_tests!(@cases $harness; [$($(#[$at_size])*)?]
            a_pool_holds_max_proxies_per_pool,
            an_unlimited_proxy_takes_65_535_leases_that_all_expire,
            an_unlimited_proxy_takes_65_535_leases_that_all_release,
            removing_a_proxy_ends_its_65_535_leases,
            a_free_proxy_behind_100_000_full_ones_is_found,
            a_radius_over_100_000_proxies_follows_the_reference,
            admin_calls_work_on_a_100_000_proxy_pool,
            the_largest_filter_follows_the_reference,
        );
        $crate::storage_limit_tests!(@cases $harness; []
            cleanup_reclaims_a_full_batch_in_one_call,
            upsert_reclaims_a_full_batch,
            filters_past_their_limits_are_refused,
            ids_and_texts_work_at_their_limits,
            lease_durations_work_at_their_limits,
            max_concurrency_works_at_its_limit,
        );
    };
    (@cases $harness:expr; $attrs:tt $($case:ident),* $(,)?) => {
        $($crate::storage_limit_tests!(@case $harness; $attrs $case);)*
    };
    (@case $harness:expr; [$(#[$attr:meta])*] $case:ident) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])*
        async fn $case() {
            let harness = $harness;
            let started = ::std::time::Instant::now();
            let pools = $crate::testkit::limits::$case(&harness).await;
            let ran = started.elapsed();
            for pool in &pools {
                $crate::testkit::limits::check_pool(&harness, pool).await;
            }
            eprintln!(
                "{}: {:.1?} (+ {:.1?} of checks)",
                stringify!($case),
                ran,
                started.elapsed() - ran
            );
        }
    };
}
