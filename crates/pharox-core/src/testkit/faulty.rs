//! A store wrapper that injects faults and counts calls, for testing what
//! sits on top of a store (the manager, the demo, the worker).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::time::Duration;

use chrono::TimeDelta;
use tokio::sync::Notify;

use crate::model::{
    Consumer, ConsumerName, HealthCheckResult, Lease, PoolId, PoolStatsSnapshot, Proxy, ProxyId,
    ProxyPool,
};
use crate::storage::{AcquireRequest, PoolSnapshot, ReleaseOutcome, Storage};
use crate::{Error, ProxyFilters, Result, Selector};

/// The knobs and counters of a [`FaultyStorage`]; shared by its clones.
#[derive(Debug, Default)]
pub struct Faults {
    /// The next N `acquire`/`release` calls fail with a retryable
    /// [`Error::Unavailable`], as after a dropped connection.
    pub fail_next: AtomicU32,
    /// The next N `acquire`/`release` calls are applied but answer
    /// [`Error::Timeout`], as when a reply is lost.
    pub lose_next_reply: AtomicU32,
    /// The next N `acquire`/`release` calls are not applied but answer
    /// [`Error::Interrupted`], as when a connection breaks before the
    /// request got through: the caller cannot tell it from a lost reply.
    pub interrupt_next: AtomicU32,
    /// When N > 0, every Nth `acquire` call (by [`Faults::acquire_calls`]) is
    /// applied on the inner store but answers a retryable
    /// [`Error::Unavailable`], which claims that nothing was applied: the
    /// lease it granted leaks until its expiry (a store bug the churn
    /// reports as "leaked lease").
    pub leak_acquires: AtomicU32,
    /// Every `release` fails with a non-retryable [`Error::Backend`].
    pub fail_releases: AtomicBool,
    /// While closed, `release` waits (after counting itself in
    /// [`Faults::release_calls`]) until it opens, then applies.
    pub release_gate: Gate,
    /// While closed, `pool_stats` waits (after counting itself in
    /// [`Faults::stats_calls`]) until it opens, then answers.
    pub stats_gate: Gate,
    /// Added to `available` in every snapshot's stats: a store that lies.
    pub skew_available: AtomicI64,
    /// Health results answer as applied but change nothing: proxies turned
    /// inactive stay leasable (a store that breaks I7).
    pub ignore_health: AtomicBool,
    /// Acquires drop the request's filters (a store that mis-filters).
    pub ignore_filters: AtomicBool,
    /// Granted leases carry `u64::MAX - token` (a store that breaks I5).
    pub reverse_tokens: AtomicBool,
    /// Granted leases carry their token plus an offset fixed per consumer:
    /// each client still sees unique, increasing tokens, but their order
    /// across clients no longer follows real time (a store that breaks I5).
    pub spread_tokens: AtomicBool,
    /// Proxies are stored with twice the `max_concurrency` asked for (a
    /// store that breaks I1 while its own snapshots look consistent).
    pub raise_caps: AtomicBool,
    /// `ensure_consumer` calls seen.
    pub ensure_calls: AtomicU32,
    /// `acquire` calls seen (failed ones included).
    pub acquire_calls: AtomicU32,
    /// `release` calls seen (failed ones included).
    pub release_calls: AtomicU32,
    /// `pool_stats` calls seen.
    pub stats_calls: AtomicU32,
}

/// A gate calls wait at while it is closed: lets a test hold a call at a
/// known point (it has started, it has not applied) instead of guessing with
/// a delay. Open by default.
#[derive(Debug, Default)]
pub struct Gate {
    closed: AtomicBool,
    opened: Notify,
}

impl Gate {
    /// Calls arriving from now on wait until [`Gate::open`].
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Lets every waiting and later call through.
    pub fn open(&self) {
        self.closed.store(false, Ordering::SeqCst);
        self.opened.notify_waiters();
    }

    /// Waits while the gate is closed.
    async fn pass(&self) {
        loop {
            let opened = self.opened.notified();
            tokio::pin!(opened);
            // Registered before the check: an `open` in between still wakes us.
            opened.as_mut().enable();
            if !self.closed.load(Ordering::SeqCst) {
                return;
            }
            opened.await;
        }
    }
}

fn take_one(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl Faults {
    fn injected(&self) -> Option<Error> {
        if take_one(&self.fail_next) {
            return Some(Error::Unavailable {
                source: "connection refused (injected)".into(),
            });
        }
        take_one(&self.interrupt_next).then(|| Error::Interrupted {
            source: "connection reset before the request got through (injected)".into(),
        })
    }

    /// Applies `result` but answers a timeout if a lost reply is armed.
    fn maybe_lose<T>(&self, operation: &'static str, result: Result<T>) -> Result<T> {
        if result.is_ok() && take_one(&self.lose_next_reply) {
            return Err(Error::Timeout {
                operation,
                after: Duration::from_millis(1),
            });
        }
        result
    }
}

/// Wraps a store, delegating every call, with the faults in [`Faults`].
#[derive(Debug, Clone, Default)]
pub struct FaultyStorage<S> {
    inner: S,
    faults: Arc<Faults>,
}

impl<S> FaultyStorage<S> {
    /// Wraps `inner` with no faults armed.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            faults: Arc::default(),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The fault knobs and call counters.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }
}

impl<S: Storage> Storage for FaultyStorage<S> {
    async fn ensure_consumer(&self, name: &ConsumerName) -> Result<Consumer> {
        self.faults.ensure_calls.fetch_add(1, Ordering::SeqCst);
        self.inner.ensure_consumer(name).await
    }

    async fn list_consumers(&self) -> Result<Vec<Consumer>> {
        self.inner.list_consumers().await
    }

    async fn upsert_pool(&self, pool: &ProxyPool) -> Result<ProxyPool> {
        self.inner.upsert_pool(pool).await
    }

    async fn get_pool(&self, pool: &PoolId) -> Result<Option<ProxyPool>> {
        self.inner.get_pool(pool).await
    }

    async fn list_pools(&self) -> Result<Vec<ProxyPool>> {
        self.inner.list_pools().await
    }

    async fn remove_pool(&self, pool: &PoolId) -> Result<bool> {
        self.inner.remove_pool(pool).await
    }

    async fn upsert_proxy(&self, proxy: &Proxy) -> Result<Proxy> {
        if self.faults.raise_caps.load(Ordering::SeqCst) {
            let mut raised = proxy.clone();
            raised.max_concurrency = proxy.max_concurrency.map(|m| m * 2);
            return self.inner.upsert_proxy(&raised).await;
        }
        self.inner.upsert_proxy(proxy).await
    }

    async fn get_proxy(&self, pool: &PoolId, proxy: &ProxyId) -> Result<Option<Proxy>> {
        self.inner.get_proxy(pool, proxy).await
    }

    async fn list_proxies(&self, pool: &PoolId) -> Result<Vec<Proxy>> {
        self.inner.list_proxies(pool).await
    }

    async fn remove_proxy(&self, pool: &PoolId, proxy: &ProxyId) -> Result<bool> {
        self.inner.remove_proxy(pool, proxy).await
    }

    async fn find_available_proxy(
        &self,
        pool: &PoolId,
        filters: &ProxyFilters,
        selector: Selector,
    ) -> Result<Option<Proxy>> {
        self.inner
            .find_available_proxy(pool, filters, selector)
            .await
    }

    async fn acquire(&self, request: &AcquireRequest) -> Result<Option<Lease>> {
        let call = self.faults.acquire_calls.fetch_add(1, Ordering::SeqCst) + 1;
        let leak_every = self.faults.leak_acquires.load(Ordering::SeqCst);
        if leak_every > 0 && call.is_multiple_of(leak_every) {
            // Applied, then reported as never sent.
            self.inner.acquire(request).await?;
            return Err(Error::Unavailable {
                source: "connection refused (injected after the acquire applied)".into(),
            });
        }
        if let Some(e) = self.faults.injected() {
            return Err(e);
        }
        let result = if self.faults.ignore_filters.load(Ordering::SeqCst) {
            let mut unfiltered = request.clone();
            unfiltered.filters = ProxyFilters::default();
            self.inner.acquire(&unfiltered).await
        } else {
            self.inner.acquire(request).await
        };
        let result = result.map(|lease| {
            lease.map(|mut l| {
                if self.faults.reverse_tokens.load(Ordering::SeqCst) {
                    l.token = u64::MAX - l.token;
                }
                if self.faults.spread_tokens.load(Ordering::SeqCst) {
                    let spread = l
                        .consumer
                        .as_str()
                        .bytes()
                        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
                    l.token += (spread % 64) * 1_000_000_000;
                }
                l
            })
        });
        self.faults.maybe_lose("acquire", result)
    }

    async fn release(&self, lease: &Lease) -> Result<ReleaseOutcome> {
        self.faults.release_calls.fetch_add(1, Ordering::SeqCst);
        self.faults.release_gate.pass().await;
        if self.faults.fail_releases.load(Ordering::SeqCst) {
            return Err(Error::Backend {
                source: "release refused (injected)".into(),
            });
        }
        if let Some(e) = self.faults.injected() {
            return Err(e);
        }
        let result = self.inner.release(lease).await;
        self.faults.maybe_lose("release", result)
    }

    async fn renew(&self, lease: &Lease, duration: TimeDelta) -> Result<Lease> {
        self.inner.renew(lease, duration).await
    }

    async fn cleanup_expired(&self, pool: &PoolId, limit: usize) -> Result<usize> {
        self.inner.cleanup_expired(pool, limit).await
    }

    async fn pool_stats(&self, pool: &PoolId) -> Result<PoolStatsSnapshot> {
        self.faults.stats_calls.fetch_add(1, Ordering::SeqCst);
        self.faults.stats_gate.pass().await;
        self.inner.pool_stats(pool).await
    }

    async fn pool_snapshot(&self, pool: &PoolId) -> Result<PoolSnapshot> {
        let mut snapshot = self.inner.pool_snapshot(pool).await?;
        let skew = self.faults.skew_available.load(Ordering::SeqCst);
        snapshot.stats.available = snapshot.stats.available.saturating_add_signed(skew);
        Ok(snapshot)
    }

    async fn stats_history(&self, pool: &PoolId, limit: usize) -> Result<Vec<PoolStatsSnapshot>> {
        self.inner.stats_history(pool, limit).await
    }

    async fn apply_health_check_result(&self, result: &HealthCheckResult) -> Result<Option<Proxy>> {
        if self.faults.ignore_health.load(Ordering::SeqCst) {
            // Answer as if applied, change nothing.
            let stored = self.inner.get_proxy(&result.pool, &result.proxy).await?;
            return Ok(stored.map(|mut p| {
                p.status = result.status;
                p
            }));
        }
        self.inner.apply_health_check_result(result).await
    }

    async fn wait_for_capacity(&self, pool: &PoolId, max_wait: Duration) {
        self.inner.wait_for_capacity(pool, max_wait).await
    }
}
