//! `ProxyManager`: the API workers use on top of any [`Storage`].

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use chrono::{TimeDelta, Utc};
use futures_util::FutureExt;
use tokio::sync::OnceCell;
use tracing::Instrument;

use crate::model::{ConsumerName, Lease, PoolId, PoolStatsSnapshot};
use crate::storage::{AcquireRequest, DEFAULT_CONSUMER, ReleaseOutcome, Storage};
use crate::{Error, ProxyFilters, Result, Selector, validate};

/// How often a retryable storage error is retried, with full-jitter
/// exponential backoff between attempts.
///
/// Release, renew and reads retry every retryable error (they are safe to
/// repeat). Acquire retries only errors after which the store certainly
/// applied nothing ([`Error::request_not_sent`], that is
/// [`Error::Unavailable`]): an acquire is not idempotent, and after a
/// `Timeout` or an `Interrupted` the store may have granted a lease whose
/// answer was lost. Retrying then would take a second lease while the first
/// stays held until its expiry, so those errors go to the caller. This relies
/// on the store: one that answers `Unavailable` for an acquire that did grant
/// a lease makes the manager leak that lease until its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// Upper bound of the first backoff; doubles per retry.
    pub base_delay: Duration,
    /// Cap on any single backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// No retries: every error goes straight to the caller.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The backoff before retry number `attempt` (0-based): uniform in
    /// `0..=min(max_delay, base_delay * 2^attempt)`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
            .min(self.max_delay);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

/// What an acquire callback receives.
#[derive(Debug)]
#[non_exhaustive]
pub struct AcquireEvent<'a> {
    /// The lease, or `None` when no proxy was available.
    pub lease: Option<&'a Lease>,
    /// The pool asked.
    pub pool: &'a PoolId,
    /// The consumer that asked.
    pub consumer: &'a ConsumerName,
    /// The filters used.
    pub filters: &'a ProxyFilters,
    /// The selector used.
    pub selector: Selector,
    /// How long the acquire took, retries and waiting included.
    pub duration: Duration,
    /// The pool's stats right after the acquire (`None` if they could not be read).
    pub pool_stats: Option<&'a PoolStatsSnapshot>,
}

/// What a release callback receives. Only releases that certainly freed
/// capacity (outcome `Released` or `Expired`) are reported: not `NotHeld`,
/// and not `ReleasedOrGone`, where the manager cannot know whether this call
/// freed capacity (its lost attempt may have, or the lease had already
/// ended). Such a release is logged at debug level instead.
#[derive(Debug)]
#[non_exhaustive]
pub struct ReleaseEvent<'a> {
    /// The released lease.
    pub lease: &'a Lease,
    /// What the release did.
    pub outcome: ReleaseOutcome,
    /// How long the lease was held (caller's clock, from `acquired_at`).
    pub lease_duration: Duration,
    /// How long the release call took.
    pub duration: Duration,
    /// The pool's stats right after the release (`None` if they could not be read).
    pub pool_stats: Option<&'a PoolStatsSnapshot>,
}

type AcquireCallback = Arc<dyn Fn(&AcquireEvent<'_>) + Send + Sync>;
type ReleaseCallback = Arc<dyn Fn(&ReleaseEvent<'_>) + Send + Sync>;

/// Leases proxies from a [`Storage`], with callbacks, retries and scoped leases.
///
/// The manager keeps no lease state of its own: every instance over the same
/// store sees the same leases. Clones share callbacks and configuration.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use pharox_core::{AcquireRequest, InMemoryStorage, Proxy, ProxyManager, ProxyPool, ProxyProtocol};
///
/// let storage = InMemoryStorage::new();
/// storage.add_pool(ProxyPool::new("latam"))?;
/// storage.add_proxy(Proxy::new("latam", "186.33.123.10", 8080, ProxyProtocol::Http))?;
/// let manager = ProxyManager::new(storage);
///
/// // The lease is released when the closure returns, errors or panics.
/// let status = manager
///     .with_lease(&AcquireRequest::new("latam"), |lease| async move {
///         // connect through lease.proxy.url() here
///         Ok::<_, pharox_core::Error>(lease.proxy.port)
///     })
///     .await?;
/// assert_eq!(status, Some(8080));
/// assert_eq!(manager.pool_stats(&"latam".into()).await?.active_leases, 0);
/// # Ok::<(), pharox_core::Error>(())
/// # }).unwrap();
/// ```
pub struct ProxyManager<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for ProxyManager<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> std::fmt::Debug for ProxyManager<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyManager")
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

/// Read on every call, written rarely: `ArcSwap` loads without touching a
/// shared lock word, so tasks on different cores do not contend.
struct Inner<S> {
    storage: S,
    retry: RetryPolicy,
    default_consumer: OnceCell<()>,
    ensured: ArcSwap<HashSet<ConsumerName>>,
    acquire_callbacks: ArcSwap<Vec<AcquireCallback>>,
    release_callbacks: ArcSwap<Vec<ReleaseCallback>>,
}

type HashSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

/// Longest single wait between attempts in [`ProxyManager::acquire_wait`];
/// bounds the cost of a wake-up that went to another waiter.
const MAX_CAPACITY_WAIT: Duration = Duration::from_millis(100);

/// Most consumer names a manager remembers as registered.
const MAX_CACHED_CONSUMERS: usize = 4_096;

/// Batch size of [`ProxyManager::cleanup_expired`]: on Redis a reclaim
/// holds the server about 10 µs a lease, so 500 keep each call near 5 ms
/// (as the worker's default sweep batch).
const CLEANUP_BATCH: usize = 500;

impl<S: Storage> ProxyManager<S> {
    /// The name of the consumer used when a request names none.
    pub const DEFAULT_CONSUMER_NAME: &'static str = DEFAULT_CONSUMER;

    /// A manager with the default [`RetryPolicy`].
    pub fn new(storage: S) -> Self {
        Self::with_retry(storage, RetryPolicy::default())
    }

    /// A manager with a custom retry policy.
    pub fn with_retry(storage: S, retry: RetryPolicy) -> Self {
        Self {
            inner: Arc::new(Inner {
                storage,
                retry,
                default_consumer: OnceCell::new(),
                ensured: ArcSwap::default(),
                acquire_callbacks: ArcSwap::default(),
                release_callbacks: ArcSwap::default(),
            }),
        }
    }

    /// The underlying store.
    pub fn storage(&self) -> &S {
        &self.inner.storage
    }

    /// Calls `f` after every acquire (hit or miss). Callbacks run on the
    /// caller's task after the storage call; a panicking callback is caught
    /// and logged, never losing the lease.
    pub fn on_acquire(&self, f: impl Fn(&AcquireEvent<'_>) + Send + Sync + 'static) {
        let f: AcquireCallback = Arc::new(f);
        self.inner.acquire_callbacks.rcu(|cbs| {
            let mut cbs = Vec::clone(cbs);
            cbs.push(f.clone());
            cbs
        });
    }

    /// Calls `f` after every release that certainly freed capacity
    /// (`Released` or `Expired`; see [`ReleaseEvent`]).
    pub fn on_release(&self, f: impl Fn(&ReleaseEvent<'_>) + Send + Sync + 'static) {
        let f: ReleaseCallback = Arc::new(f);
        self.inner.release_callbacks.rcu(|cbs| {
            let mut cbs = Vec::clone(cbs);
            cbs.push(f.clone());
            cbs
        });
    }

    /// Registers the request's consumer once per manager (the default consumer
    /// through a one-time cell, others through a small set).
    async fn ensure_consumer(&self, consumer: &ConsumerName) -> Result<()> {
        if consumer == DEFAULT_CONSUMER {
            self.inner
                .default_consumer
                .get_or_try_init(|| async {
                    self.retrying(|| self.inner.storage.ensure_consumer(consumer))
                        .await
                        .map(drop)
                })
                .await?;
            return Ok(());
        }
        let known = self.inner.ensured.load();
        if known.contains(consumer) {
            return Ok(());
        }
        validate::consumer_name(consumer)?;
        self.retrying(|| self.inner.storage.ensure_consumer(consumer))
            .await?;
        // Names generated per request must not grow the cache forever: past
        // the cap they are registered on every call instead.
        if known.len() < MAX_CACHED_CONSUMERS {
            self.inner.ensured.rcu(|known| {
                let mut known = HashSet::clone(known);
                known.insert(consumer.clone());
                known
            });
        }
        Ok(())
    }

    /// Runs `op`, retrying retryable errors per the policy.
    async fn retrying<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.retrying_if(Error::is_retryable, |_| {}, op).await
    }

    /// Runs `op`, retrying the errors `retry` accepts per the policy;
    /// `retried` sees each error that is retried.
    async fn retrying_if<T, F, Fut>(
        &self,
        retry: fn(&Error) -> bool,
        mut retried: impl FnMut(&Error),
        mut op: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Err(e) if retry(&e) && attempt < self.inner.retry.max_retries => {
                    retried(&e);
                    let delay = self.inner.retry.backoff(attempt);
                    tracing::debug!(error = %e, attempt, ?delay, "retrying storage call");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// One acquire attempt with retries. An acquire is not idempotent: after
    /// a timeout it may have leased a proxy whose answer was lost, so only
    /// errors after which the store certainly applied nothing are retried.
    async fn acquire_once(&self, request: &AcquireRequest) -> Result<Option<Lease>> {
        self.retrying_if(
            Error::request_not_sent,
            |_| {},
            || self.inner.storage.acquire(request),
        )
        .await
    }

    /// Leases a proxy, or `Ok(None)` when none is available now.
    ///
    /// Retries, per the [`RetryPolicy`], only errors after which the store
    /// certainly applied nothing ([`Error::request_not_sent`]). A `Timeout`
    /// or an `Interrupted` is returned, not retried: the store may have
    /// granted a lease whose answer was lost (it ends at its expiry), and a
    /// retry would hold a second one.
    pub async fn acquire(&self, request: &AcquireRequest) -> Result<Option<Lease>> {
        let span = crate::spans::acquire(request);
        let result = async {
            let started = self.clock_for_callbacks(&self.inner.acquire_callbacks);
            self.ensure_consumer(&request.consumer).await?;
            let lease = self.acquire_once(request).await?;
            self.notify_acquire(request, lease, started).await
        }
        .instrument(span.clone())
        .await;
        crate::spans::acquired(&span, &result);
        result
    }

    /// Like [`acquire`](Self::acquire), but when no proxy is available waits
    /// for capacity to come back (a release, an expiry, a recovered proxy) for
    /// up to `max_wait`. `Ok(None)` if the deadline passes first.
    pub async fn acquire_wait(
        &self,
        request: &AcquireRequest,
        max_wait: Duration,
    ) -> Result<Option<Lease>> {
        let span = crate::spans::acquire(request);
        let result = self
            .acquire_wait_inner(request, max_wait)
            .instrument(span.clone())
            .await;
        crate::spans::acquired(&span, &result);
        result
    }

    async fn acquire_wait_inner(
        &self,
        request: &AcquireRequest,
        max_wait: Duration,
    ) -> Result<Option<Lease>> {
        let started = self.clock_for_callbacks(&self.inner.acquire_callbacks);
        let deadline = Instant::now() + max_wait;
        self.ensure_consumer(&request.consumer).await?;
        let lease = loop {
            let attempt = self.acquire_once(request).await?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if attempt.is_some() || remaining.is_zero() {
                break attempt;
            }
            self.inner
                .storage
                .wait_for_capacity(&request.pool, remaining.min(MAX_CAPACITY_WAIT))
                .await;
        };
        self.notify_acquire(request, lease, started).await
    }

    /// Gives a lease back; idempotent (see [`ReleaseOutcome`]).
    ///
    /// Retries every retryable error. When an attempt failed in a way that
    /// may have applied it (`Timeout`, `Interrupted`) and a later attempt
    /// finds nothing held, the answer is [`ReleaseOutcome::ReleasedOrGone`],
    /// not `NotHeld`: the lost attempt may have been the release. Release
    /// callbacks run only for `Released` and `Expired`.
    pub async fn release(&self, lease: &Lease) -> Result<ReleaseOutcome> {
        let span = crate::spans::release(&lease.pool, lease.id);
        let result = self.release_inner(lease).instrument(span.clone()).await;
        crate::spans::released(&span, &result);
        result
    }

    async fn release_inner(&self, lease: &Lease) -> Result<ReleaseOutcome> {
        let started = self.clock_for_callbacks(&self.inner.release_callbacks);
        let mut maybe_applied = false;
        let outcome = self
            .retrying_if(
                Error::is_retryable,
                |e| maybe_applied |= !e.request_not_sent(),
                || self.inner.storage.release(lease),
            )
            .await?;
        let outcome = match outcome {
            ReleaseOutcome::NotHeld if maybe_applied => {
                tracing::debug!(
                    lease = %lease.id,
                    pool = %lease.pool,
                    "release retried after a lost reply found nothing held: released or gone"
                );
                ReleaseOutcome::ReleasedOrGone
            }
            other => other,
        };
        if let Some(started) = started
            && outcome.freed_capacity()
        {
            let stats = self.stats_for_event(&lease.pool).await;
            let held = (Utc::now() - lease.acquired_at)
                .to_std()
                .unwrap_or(Duration::ZERO);
            let event = ReleaseEvent {
                lease,
                outcome,
                lease_duration: held,
                duration: started.elapsed(),
                pool_stats: stats.as_ref(),
            };
            for cb in self.inner.release_callbacks.load().iter() {
                run_callback("release", || cb(&event));
            }
        }
        Ok(outcome)
    }

    /// Extends a live lease to `now + duration`; [`Error::LeaseLost`] if it is gone.
    pub async fn renew(&self, lease: &Lease, duration: TimeDelta) -> Result<Lease> {
        let span = crate::spans::renew(&lease.pool, lease.id);
        let result = self
            .retrying(|| self.inner.storage.renew(lease, duration))
            .instrument(span.clone())
            .await;
        crate::spans::renewed(&span, &result);
        result
    }

    /// Acquires a lease, runs `work` with it, and releases it on every exit
    /// path: success, error, panic (the panic resumes after the release) and
    /// cancellation (the release is spawned on the runtime when the future is
    /// dropped). `Ok(None)` without calling `work` when no proxy is available.
    ///
    /// If the release itself fails after `work` succeeded, the result is still
    /// returned and the failure is logged: the lease then ends at its expiry.
    pub async fn with_lease<F, Fut, T, E>(
        &self,
        request: &AcquireRequest,
        work: F,
    ) -> std::result::Result<Option<T>, E>
    where
        F: FnOnce(Lease) -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: From<Error>,
    {
        let Some(lease) = self.acquire(request).await? else {
            return Ok(None);
        };
        let mut guard = ReleaseOnDrop {
            manager: self.clone(),
            lease: Some(lease.clone()),
        };
        let result = AssertUnwindSafe(work(lease)).catch_unwind().await;
        // The guard stays armed until the release is done: dropping this
        // future mid-release still gives the lease back.
        let held = guard.lease.as_ref().expect("guard is armed until here");
        let released = self.release(held).await;
        let lease = guard.lease.take().expect("guard is armed until here");
        if let Err(e) = released {
            tracing::warn!(
                lease = %lease.id,
                pool = %lease.pool,
                expires_at = %lease.expires_at,
                error = %e,
                "releasing a scoped lease failed; it will end at its expiry"
            );
        }
        match result {
            Ok(outcome) => outcome.map(Some),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Reclaims expired leases in every pool, in batches; returns how many.
    /// Stores also reclaim on acquire, so this is for background sweeps.
    pub async fn cleanup_expired(&self) -> Result<usize> {
        let pools = self.retrying(|| self.inner.storage.list_pools()).await?;
        let mut total = 0;
        for pool in pools {
            match self.cleanup_expired_in(&pool.id).await {
                Ok(n) => total += n,
                // Removed between listing and sweeping: nothing to reclaim.
                Err(Error::PoolNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// Reclaims every expired lease of one pool, in batches; returns how many.
    pub async fn cleanup_expired_in(&self, pool: &PoolId) -> Result<usize> {
        let mut total = 0;
        loop {
            let n = self
                .retrying(|| self.inner.storage.cleanup_expired(pool, CLEANUP_BATCH))
                .await?;
            total += n;
            if n < CLEANUP_BATCH {
                return Ok(total);
            }
        }
    }

    /// The pool's counters.
    pub async fn pool_stats(&self, pool: &PoolId) -> Result<PoolStatsSnapshot> {
        self.retrying(|| self.inner.storage.pool_stats(pool)).await
    }

    async fn stats_for_event(&self, pool: &PoolId) -> Option<PoolStatsSnapshot> {
        match self.inner.storage.pool_stats(pool).await {
            Ok(stats) => Some(stats),
            Err(e) => {
                tracing::debug!(%pool, error = %e, "pool stats for a callback unavailable");
                None
            }
        }
    }

    /// A start time for the event payload, read only when someone listens:
    /// the clock read is measurable on the hot path.
    fn clock_for_callbacks<T>(&self, callbacks: &ArcSwap<Vec<T>>) -> Option<Instant> {
        (!callbacks.load().is_empty()).then(Instant::now)
    }

    /// Runs the acquire callbacks (when `started` says someone listens) and
    /// hands the lease back. While the callbacks' stats are fetched, a guard
    /// releases the lease if the caller drops this future.
    async fn notify_acquire(
        &self,
        request: &AcquireRequest,
        lease: Option<Lease>,
        started: Option<Instant>,
    ) -> Result<Option<Lease>> {
        let Some(started) = started else {
            return Ok(lease);
        };
        let duration = started.elapsed();
        let mut guard = ReleaseOnDrop {
            manager: self.clone(),
            lease,
        };
        let stats = self.stats_for_event(&request.pool).await;
        let lease = guard.lease.take();
        let event = AcquireEvent {
            lease: lease.as_ref(),
            pool: &request.pool,
            consumer: &request.consumer,
            filters: &request.filters,
            selector: request.selector,
            duration,
            pool_stats: stats.as_ref(),
        };
        for cb in self.inner.acquire_callbacks.load().iter() {
            run_callback("acquire", || cb(&event));
        }
        Ok(lease)
    }
}

fn run_callback(kind: &'static str, f: impl FnOnce()) {
    if std::panic::catch_unwind(AssertUnwindSafe(f)).is_err() {
        tracing::error!(
            kind,
            "a lifecycle callback panicked; the panic was contained"
        );
    }
}

/// Releases a scoped lease if `with_lease`'s future is dropped mid-flight.
struct ReleaseOnDrop<S: Storage> {
    manager: ProxyManager<S>,
    lease: Option<Lease>,
}

impl<S: Storage> Drop for ReleaseOnDrop<S> {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let manager = self.manager.clone();
                handle.spawn(async move {
                    if let Err(e) = manager.release(&lease).await {
                        tracing::warn!(lease = %lease.id, error = %e, "release after cancellation failed; the lease will expire");
                    }
                });
            }
            Err(_) => {
                tracing::warn!(lease = %lease.id, "scoped lease dropped outside a runtime; it will expire");
            }
        }
    }
}
