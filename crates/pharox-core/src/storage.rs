//! The contract every backend implements.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{
    Consumer, ConsumerName, HealthCheckResult, Lease, LeaseId, PoolId, PoolStatsSnapshot, Proxy,
    ProxyId, ProxyPool,
};
use crate::{Error, ProxyFilters, Result, Selector};

/// The consumer used when a request names none.
pub const DEFAULT_CONSUMER: &str = "default";

/// Lease duration used when a request sets none (five minutes, as in pharox for Python).
pub const DEFAULT_LEASE_DURATION: TimeDelta = TimeDelta::minutes(5);

/// What an acquire asks for.
///
/// ```
/// use chrono::TimeDelta;
/// use pharox_core::{AcquireRequest, ProxyFilters, Selector};
///
/// let req = AcquireRequest::new("latam-residential")
///     .consumer("worker-1")
///     .duration(TimeDelta::seconds(30))
///     .filters(ProxyFilters::new().country("AR"))
///     .selector(Selector::LeastUsed);
/// assert_eq!(req.consumer, "worker-1");
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AcquireRequest {
    /// The pool to lease from.
    pub pool: PoolId,
    /// Who will hold the lease.
    pub consumer: ConsumerName,
    /// How long the lease lasts unless renewed or released.
    pub duration: TimeDelta,
    /// Which proxies qualify.
    pub filters: ProxyFilters,
    /// How to choose among qualifying proxies.
    pub selector: Selector,
}

impl AcquireRequest {
    /// A request for any proxy of `pool`, for the default consumer, lasting
    /// [`DEFAULT_LEASE_DURATION`], first available.
    pub fn new(pool: impl Into<PoolId>) -> Self {
        Self {
            pool: pool.into(),
            consumer: ConsumerName::from(DEFAULT_CONSUMER),
            duration: DEFAULT_LEASE_DURATION,
            filters: ProxyFilters::default(),
            selector: Selector::default(),
        }
    }

    /// Sets the consumer.
    pub fn consumer(mut self, consumer: impl Into<ConsumerName>) -> Self {
        self.consumer = consumer.into();
        self
    }

    /// Sets the lease duration.
    pub fn duration(mut self, duration: TimeDelta) -> Self {
        self.duration = duration;
        self
    }

    /// Sets the filters.
    pub fn filters(mut self, filters: ProxyFilters) -> Self {
        self.filters = filters;
        self
    }

    /// Sets the selector.
    pub fn selector(mut self, selector: Selector) -> Self {
        self.selector = selector;
        self
    }
}

/// What a release did. Releasing is idempotent: only the first release of a
/// live lease frees capacity (I4), and no outcome is an error. After any
/// outcome the lease is no longer held: stop using its proxy.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseOutcome {
    /// The lease was live; its capacity is free again.
    Released,
    /// The lease had passed its deadline but was not yet reclaimed; this call
    /// reclaimed it (counted as expired).
    Expired,
    /// Nothing was held: released before, reclaimed after expiry, or its proxy
    /// or pool was removed.
    NotHeld,
    /// An earlier attempt of this call may have released the lease and its
    /// reply was lost (a `Timeout` or `Interrupted` error, retried); the
    /// retry found nothing held: either that attempt released it, or the
    /// lease had already ended (released before, expired, or its proxy or
    /// pool removed). Capacity was freed at most once, and the lease is not
    /// held any more.
    ///
    /// A store never answers this for one call; [`ProxyManager::release`]
    /// does, instead of the `NotHeld` of its retry, which would deny a
    /// release this caller may have made.
    ///
    /// [`ProxyManager::release`]: crate::ProxyManager::release
    ReleasedOrGone,
}

impl ReleaseOutcome {
    /// Whether this call certainly returned capacity to the pool (`Released`
    /// or `Expired`). `false` for `NotHeld`, and for `ReleasedOrGone`, where
    /// it is unknown whether this call or an earlier end freed it.
    pub fn freed_capacity(self) -> bool {
        matches!(self, Self::Released | Self::Expired)
    }
}

/// A lease as a remote client names it: its pool, its id and, when the caller
/// kept it, its fencing token. [`Storage::release_by_ref`] and
/// [`Storage::renew_by_ref`] act on it; an HTTP client (pharox-sdk) keeps
/// nothing but the id, which finds the pool ([`LeaseId::pool_tag`]).
///
/// ```
/// use pharox_core::{LeaseId, LeaseRef, PoolId};
///
/// let pool = PoolId::from("latam");
/// let by_id = LeaseRef::new(pool.clone(), LeaseId::in_pool(pool.lease_tag()));
/// assert_eq!(by_id.token, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseRef {
    /// The pool the lease is of.
    pub pool: PoolId,
    /// The lease's id.
    pub id: LeaseId,
    /// The fencing token, if known: a lease with another token is not this
    /// one (a forged or stale copy), and is not held.
    pub token: Option<u64>,
}

impl LeaseRef {
    /// A reference by pool and id alone.
    pub fn new(pool: PoolId, id: LeaseId) -> Self {
        Self {
            pool,
            id,
            token: None,
        }
    }

    /// Also requires the lease to carry `token`.
    pub fn with_token(mut self, token: u64) -> Self {
        self.token = Some(token);
        self
    }

    /// Whether `lease` is the lease this names (same pool, id, and token if set).
    pub fn matches(&self, lease: &Lease) -> bool {
        lease.id == self.id
            && lease.pool == self.pool
            && self.token.is_none_or(|t| t == lease.token)
    }
}

impl From<&Lease> for LeaseRef {
    fn from(lease: &Lease) -> Self {
        Self::new(lease.pool.clone(), lease.id).with_token(lease.token)
    }
}

/// A consistent point-in-time view of one pool, for checks and admin tools.
/// It costs O(pool size): not for the hot path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolSnapshot {
    /// The pool.
    pub pool: ProxyPool,
    /// Every proxy, in the order they were added.
    pub proxies: Vec<Proxy>,
    /// Every live lease (status active, possibly past its deadline but not yet reclaimed).
    pub leases: Vec<Lease>,
    /// The counters at the same instant.
    pub stats: PoolStatsSnapshot,
    /// The store's clock at that instant.
    pub taken_at: DateTime<Utc>,
}

/// A lease store. `acquire` is one atomic operation: selection, the capacity
/// check and the lease's creation cannot interleave with another acquire.
///
/// All times (expiry, `acquired_at`, stats) come from the store's clock, never
/// the caller's. Run [`testkit`](crate::testkit) (feature `testkit`) against an
/// implementation: a backend is done when the whole contract suite passes.
pub trait Storage: Send + Sync + 'static {
    /// Registers a consumer by name, or returns the existing one.
    fn ensure_consumer(&self, name: &ConsumerName)
    -> impl Future<Output = Result<Consumer>> + Send;

    /// Every registered consumer.
    fn list_consumers(&self) -> impl Future<Output = Result<Vec<Consumer>>> + Send;

    /// Creates or updates a pool's name and description.
    fn upsert_pool(&self, pool: &ProxyPool) -> impl Future<Output = Result<ProxyPool>> + Send;

    /// A pool by id.
    fn get_pool(&self, pool: &PoolId) -> impl Future<Output = Result<Option<ProxyPool>>> + Send;

    /// Every pool.
    fn list_pools(&self) -> impl Future<Output = Result<Vec<ProxyPool>>> + Send;

    /// Deletes a pool with its proxies, leases and counters. Returns whether it existed.
    fn remove_pool(&self, pool: &PoolId) -> impl Future<Output = Result<bool>> + Send;

    /// Adds a proxy or updates it in place (keeping its leases and position).
    /// Fails with `InvalidInput` if a new `max_concurrency` is below its active
    /// leases, or if the proxy is new and the pool already holds
    /// [`MAX_PROXIES_PER_POOL`](crate::validate::MAX_PROXIES_PER_POOL).
    fn upsert_proxy(&self, proxy: &Proxy) -> impl Future<Output = Result<Proxy>> + Send;

    /// A proxy by pool and id.
    fn get_proxy(
        &self,
        pool: &PoolId,
        proxy: &ProxyId,
    ) -> impl Future<Output = Result<Option<Proxy>>> + Send;

    /// Every proxy of a pool, in the order they were added.
    fn list_proxies(&self, pool: &PoolId) -> impl Future<Output = Result<Vec<Proxy>>> + Send;

    /// Removes a proxy. It is never leased again; its live leases end at once
    /// (counted as released) and releasing them later answers `NotHeld`.
    fn remove_proxy(
        &self,
        pool: &PoolId,
        proxy: &ProxyId,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// The proxy an acquire would pick now, without leasing it or moving the
    /// round-robin cursor. Never use it as half of an acquisition: another
    /// worker may take the proxy in between. Like every call, it may first
    /// reclaim the pool's expired leases (a store may do that at any time).
    fn find_available_proxy(
        &self,
        pool: &PoolId,
        filters: &ProxyFilters,
        selector: Selector,
    ) -> impl Future<Output = Result<Option<Proxy>>> + Send;

    /// Atomically reclaims expired leases of the pool, selects an eligible
    /// proxy, and leases it. `Ok(None)` when no proxy qualifies.
    fn acquire(
        &self,
        request: &AcquireRequest,
    ) -> impl Future<Output = Result<Option<Lease>>> + Send;

    /// A lease of `pool` by id, if it is live at the store's clock (held and
    /// before its deadline); `None` if it never existed, ended (released,
    /// expired, its proxy removed) or the pool does not exist.
    ///
    /// The default reads the whole pool ([`Storage::pool_snapshot`], O(pool
    /// size)); stores that index leases by id override it with one lookup.
    fn get_lease(
        &self,
        pool: &PoolId,
        lease: &LeaseId,
    ) -> impl Future<Output = Result<Option<Lease>>> + Send {
        async move {
            match self.pool_snapshot(pool).await {
                Ok(snap) => Ok(snap
                    .leases
                    .into_iter()
                    .find(|l| l.id == *lease && l.expires_at > snap.taken_at)),
                Err(Error::PoolNotFound(_)) => Ok(None),
                Err(e) => Err(e),
            }
        }
    }

    /// Gives a lease back. Idempotent; never an error for a lease that is gone.
    fn release(&self, lease: &Lease) -> impl Future<Output = Result<ReleaseOutcome>> + Send;

    /// Releases the lease `lease` names, for callers that kept only its id.
    /// Returns the lease as it was when this call ended it, with `Released`
    /// or `Expired` (its deadline had passed but it was not yet reclaimed;
    /// counted as expired); `None` when nothing was held (as
    /// [`ReleaseOutcome::NotHeld`]). Idempotent like [`Storage::release`].
    ///
    /// The default finds the lease with [`Storage::get_lease`], then
    /// releases it: two calls, and a lease past its deadline answers `None`
    /// (a later call reclaims it). Stores override it with one operation.
    fn release_by_ref(
        &self,
        lease: &LeaseRef,
    ) -> impl Future<Output = Result<Option<(Lease, ReleaseOutcome)>>> + Send {
        async move {
            let Some(found) = self.get_lease(&lease.pool, &lease.id).await? else {
                return Ok(None);
            };
            if !lease.matches(&found) {
                return Ok(None);
            }
            let outcome = self.release(&found).await?;
            Ok(outcome.freed_capacity().then_some((found, outcome)))
        }
    }

    /// Extends the live lease `lease` names to `now + duration` (store
    /// clock), for callers that kept only its id; returns it as it is now.
    /// Fails like [`Storage::renew`]. The default finds it with
    /// [`Storage::get_lease`] first; stores override it with one operation.
    fn renew_by_ref(
        &self,
        lease: &LeaseRef,
        duration: TimeDelta,
    ) -> impl Future<Output = Result<Lease>> + Send {
        async move {
            match self.get_lease(&lease.pool, &lease.id).await? {
                Some(found) if lease.matches(&found) => self.renew(&found, duration).await,
                _ => Err(Error::LeaseLost { lease: lease.id }),
            }
        }
    }

    /// Extends a live lease to `now + duration` (store clock). Fails with
    /// [`Error::LeaseLost`](crate::Error::LeaseLost) if it expired or was released.
    fn renew(
        &self,
        lease: &Lease,
        duration: TimeDelta,
    ) -> impl Future<Output = Result<Lease>> + Send;

    /// Reclaims up to `limit` expired leases of a pool; returns how many.
    fn cleanup_expired(
        &self,
        pool: &PoolId,
        limit: usize,
    ) -> impl Future<Output = Result<usize>> + Send;

    /// The pool's counters, in O(1).
    fn pool_stats(&self, pool: &PoolId) -> impl Future<Output = Result<PoolStatsSnapshot>> + Send;

    /// A consistent view of the whole pool (for invariant checks and admin).
    fn pool_snapshot(&self, pool: &PoolId) -> impl Future<Output = Result<PoolSnapshot>> + Send;

    /// The newest `limit` snapshots (1 to
    /// [`MAX_HISTORY_LIMIT`](crate::validate::MAX_HISTORY_LIMIT)) of the
    /// pool's stats history, newest first, as `pharox worker` records them;
    /// `PoolNotFound` for an unknown pool, as [`Storage::pool_stats`]. The
    /// default, for a store that keeps no history (like
    /// [`InMemoryStorage`](crate::InMemoryStorage)), answers an empty list.
    fn stats_history(
        &self,
        pool: &PoolId,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<PoolStatsSnapshot>>> + Send {
        async move {
            crate::validate::history_limit(limit)?;
            match self.get_pool(pool).await? {
                Some(_) => Ok(Vec::new()),
                None => Err(Error::PoolNotFound(pool.clone())),
            }
        }
    }

    /// Records a health check: status, `checked_at` and latency together. A
    /// proxy that is not `active` stops being leased at once. Unknown proxy:
    /// `Ok(None)`.
    fn apply_health_check_result(
        &self,
        result: &HealthCheckResult,
    ) -> impl Future<Output = Result<Option<Proxy>>> + Send;

    /// Waits until capacity may have been freed in `pool`, or `max_wait`
    /// passes. Stores that can signal frees wake waiters early; the default
    /// just sleeps. Used by [`ProxyManager::acquire_wait`](crate::ProxyManager::acquire_wait).
    fn wait_for_capacity(
        &self,
        pool: &PoolId,
        max_wait: Duration,
    ) -> impl Future<Output = ()> + Send {
        let _ = pool;
        tokio::time::sleep(max_wait)
    }
}
