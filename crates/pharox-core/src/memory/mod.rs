//! The in-memory reference store.
//!
//! Each pool keeps indexes of its proxies with free capacity (by insertion
//! order, by lease count, by latency; see `pool.rs`) and its leases by expiry,
//! so an unfiltered acquire and a release cost O(log n) whatever the selector,
//! and reclaiming an expired lease costs O(log n).

mod bitset;
mod mintree;
mod pool;

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::clock::{Clock, SystemClock, datetime_from_ms};
use crate::model::{
    Consumer, ConsumerName, HealthCheckResult, Lease, LeaseId, PoolId, PoolStatsSnapshot, Proxy,
    ProxyId, ProxyPool,
};
use crate::storage::{AcquireRequest, LeaseRef, PoolSnapshot, ReleaseOutcome, Storage};
use crate::{Error, ProxyFilters, Result, Selector, validate};

use self::pool::PoolState;

/// Hash maps keyed by ids: foldhash is several times faster than SipHash
/// and still seeded per process.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A thread-safe store that keeps everything in process memory.
///
/// Cheap to clone (clones share state). Use it for tests, single-process
/// tools, and as the reference the contract suite compares other stores with.
///
/// ```
/// # tokio_test_block_on(async {
/// use pharox_core::{AcquireRequest, InMemoryStorage, Proxy, ProxyPool, ProxyProtocol, Storage};
///
/// let storage = InMemoryStorage::new();
/// storage.add_pool(ProxyPool::new("latam"))?;
/// storage.add_proxy(Proxy::new("latam", "186.33.123.10", 8080, ProxyProtocol::Http))?;
///
/// let lease = storage.acquire(&AcquireRequest::new("latam")).await?.expect("a free proxy");
/// assert_eq!(lease.proxy.port, 8080);
/// storage.release(&lease).await?;
/// # Ok::<(), pharox_core::Error>(())
/// # }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct InMemoryStorage {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Arc<dyn Clock>,
    pools: RwLock<HashMap<PoolId, Arc<PoolCell>>>,
    consumers: Mutex<HashMap<ConsumerName, Consumer>>,
    /// The highest fencing token any removed pool issued. A pool created
    /// (again) starts above it, so a re-created pool never repeats a token
    /// that a downstream system has already seen (I5).
    retired_tokens: Mutex<u64>,
}

struct PoolCell {
    state: Mutex<PoolState>,
    /// Woken once per freed slot, for `wait_for_capacity`.
    capacity: Notify,
}

impl Default for InMemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for InMemoryStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryStorage")
            .field("pools", &self.inner.pools.read().len())
            .finish_non_exhaustive()
    }
}

impl InMemoryStorage {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(SystemClock)
    }

    /// An empty store on the given clock (e.g. a [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(clock: impl Clock) -> Self {
        Self {
            inner: Arc::new(Inner {
                clock: Arc::new(clock),
                pools: RwLock::new(HashMap::default()),
                consumers: Mutex::new(HashMap::default()),
                retired_tokens: Mutex::new(0),
            }),
        }
    }

    /// Adds or updates a pool (synchronous helper for seeding).
    pub fn add_pool(&self, pool: ProxyPool) -> Result<ProxyPool> {
        validate::pool(&pool)?;
        let mut pools = self.inner.pools.write();
        if let Some(cell) = pools.get(&pool.id) {
            let mut state = cell.state.lock();
            state.pool = pool.clone();
            return Ok(pool);
        }
        pools.insert(
            pool.id.clone(),
            Arc::new(PoolCell {
                state: Mutex::new(PoolState::new(
                    pool.clone(),
                    *self.inner.retired_tokens.lock(),
                )),
                capacity: Notify::new(),
            }),
        );
        Ok(pool)
    }

    /// Adds or updates a proxy (synchronous helper for seeding).
    pub fn add_proxy(&self, proxy: Proxy) -> Result<Proxy> {
        validate::proxy(&proxy)?;
        let now = self.now_ms();
        self.with_pool(&proxy.pool.clone(), |st| {
            // Leases past their deadline must not count against a lowered cap.
            let reclaimed = st.reclaim_expired(now, usize::MAX);
            let (stored, freed) = st.upsert(proxy)?;
            Ok((stored, reclaimed + usize::from(freed)))
        })
    }

    /// Registers a consumer (synchronous helper for seeding).
    pub fn add_consumer(&self, name: impl Into<ConsumerName>) -> Result<Consumer> {
        let name = name.into();
        validate::consumer_name(&name)?;
        let mut consumers = self.inner.consumers.lock();
        let consumer = consumers.entry(name.clone()).or_insert_with(|| Consumer {
            id: Uuid::new_v4(),
            name,
        });
        Ok(consumer.clone())
    }

    fn find_cell(&self, pool: &PoolId) -> Option<Arc<PoolCell>> {
        self.inner.pools.read().get(pool).cloned()
    }

    fn cell(&self, pool: &PoolId) -> Result<Arc<PoolCell>> {
        validate::pool_id(pool)?;
        self.find_cell(pool)
            .ok_or_else(|| Error::PoolNotFound(pool.clone()))
    }

    fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Runs `f` on the locked state of an existing pool, then wakes one waiter
    /// per slot `f` reports freed.
    fn with_pool<T>(
        &self,
        pool: &PoolId,
        f: impl FnOnce(&mut PoolState) -> Result<(T, usize)>,
    ) -> Result<T> {
        let cell = self.cell(pool)?;
        let mut state = cell.state.lock();
        state.ensure_live()?;
        let (value, freed) = f(&mut state)?;
        drop(state);
        for _ in 0..freed {
            cell.capacity.notify_one();
        }
        Ok(value)
    }
}

impl Storage for InMemoryStorage {
    async fn ensure_consumer(&self, name: &ConsumerName) -> Result<Consumer> {
        self.add_consumer(name.clone())
    }

    async fn list_consumers(&self) -> Result<Vec<Consumer>> {
        let mut all: Vec<Consumer> = self.inner.consumers.lock().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    async fn upsert_pool(&self, pool: &ProxyPool) -> Result<ProxyPool> {
        self.add_pool(pool.clone())
    }

    async fn get_pool(&self, pool: &PoolId) -> Result<Option<ProxyPool>> {
        validate::pool_id(pool)?;
        Ok(self
            .find_cell(pool)
            .map(|cell| cell.state.lock().pool.clone()))
    }

    async fn list_pools(&self) -> Result<Vec<ProxyPool>> {
        let cells: Vec<Arc<PoolCell>> = self.inner.pools.read().values().cloned().collect();
        let mut pools: Vec<ProxyPool> = cells.iter().map(|c| c.state.lock().pool.clone()).collect();
        pools.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(pools)
    }

    async fn remove_pool(&self, pool: &PoolId) -> Result<bool> {
        validate::pool_id(pool)?;
        let mut pools = self.inner.pools.write();
        let Some(cell) = pools.remove(pool) else {
            return Ok(false);
        };
        let mut state = cell.state.lock();
        state.removed = true;
        let mut retired = self.inner.retired_tokens.lock();
        *retired = (*retired).max(state.last_token());
        Ok(true)
    }

    async fn upsert_proxy(&self, proxy: &Proxy) -> Result<Proxy> {
        self.add_proxy(proxy.clone())
    }

    async fn get_proxy(&self, pool: &PoolId, proxy: &ProxyId) -> Result<Option<Proxy>> {
        self.with_pool(pool, |st| Ok((st.proxy(proxy), 0)))
    }

    async fn list_proxies(&self, pool: &PoolId) -> Result<Vec<Proxy>> {
        self.with_pool(pool, |st| Ok((st.proxies_in_order(), 0)))
    }

    async fn remove_proxy(&self, pool: &PoolId, proxy: &ProxyId) -> Result<bool> {
        self.with_pool(pool, |st| Ok((st.remove_proxy(proxy), 0)))
    }

    async fn find_available_proxy(
        &self,
        pool: &PoolId,
        filters: &ProxyFilters,
        selector: Selector,
    ) -> Result<Option<Proxy>> {
        filters.validate()?;
        let now = self.now_ms();
        self.with_pool(pool, |st| {
            let freed = st.reclaim_expired(now, usize::MAX);
            Ok((st.peek(filters, selector), freed))
        })
    }

    async fn acquire(&self, request: &AcquireRequest) -> Result<Option<Lease>> {
        // Nothing here ever waits, so without this a loop of acquires would
        // never yield and could starve every other task on its runtime thread.
        tokio::task::consume_budget().await;
        validate::acquire_request(request)?;
        let now = self.now_ms();
        self.with_pool(&request.pool, |st| {
            // Reclaiming every expired lease of the pool is amortised O(log n)
            // per lease (each is reclaimed once) and keeps I6 exact.
            let freed = st.reclaim_expired(now, usize::MAX);
            let lease = st
                .pick(&request.filters, request.selector)
                .map(|seq| st.grant(seq, request, now));
            // A slot freed here and taken by this same acquire may wake a waiter
            // needlessly; that is harmless, waiters retry.
            Ok((lease, freed))
        })
    }

    async fn get_lease(&self, pool: &PoolId, lease: &LeaseId) -> Result<Option<Lease>> {
        validate::pool_id(pool)?;
        let Some(cell) = self.find_cell(pool) else {
            return Ok(None);
        };
        let now = self.now_ms();
        let st = cell.state.lock();
        if st.removed {
            return Ok(None);
        }
        Ok(st.live_lease(*lease, now))
    }

    async fn release(&self, lease: &Lease) -> Result<ReleaseOutcome> {
        Ok(match self.release_by_ref(&LeaseRef::from(lease)).await? {
            Some((_, outcome)) => outcome,
            None => ReleaseOutcome::NotHeld,
        })
    }

    async fn release_by_ref(&self, lease: &LeaseRef) -> Result<Option<(Lease, ReleaseOutcome)>> {
        tokio::task::consume_budget().await;
        let Some(cell) = self.find_cell(&lease.pool) else {
            return Ok(None);
        };
        let now = self.now_ms();
        let mut st = cell.state.lock();
        if st.removed {
            return Ok(None);
        }
        let Some(entry) = st.live_entry(lease) else {
            return Ok(None);
        };
        let expired = entry.expires_ms <= now;
        let ended = st.lease_of(lease.id, entry);
        st.end_lease(lease.id, expired);
        drop(st);
        cell.capacity.notify_one();
        let outcome = if expired {
            ReleaseOutcome::Expired
        } else {
            ReleaseOutcome::Released
        };
        Ok(Some((ended, outcome)))
    }

    async fn renew(&self, lease: &Lease, duration: TimeDelta) -> Result<Lease> {
        self.renew_by_ref(&LeaseRef::from(lease), duration).await
    }

    async fn renew_by_ref(&self, lease: &LeaseRef, duration: TimeDelta) -> Result<Lease> {
        validate::lease_duration(duration)?;
        let lost = || Error::LeaseLost { lease: lease.id };
        let Some(cell) = self.find_cell(&lease.pool) else {
            return Err(lost());
        };
        let now = self.now_ms();
        let mut st = cell.state.lock();
        if st.removed {
            return Err(lost());
        }
        let Some(entry) = st.live_entry(lease) else {
            return Err(lost());
        };
        if entry.expires_ms <= now {
            st.end_lease(lease.id, true);
            drop(st);
            cell.capacity.notify_one();
            return Err(lost());
        }
        Ok(st.extend(lease.id, now.saturating_add(duration.num_milliseconds())))
    }

    async fn cleanup_expired(&self, pool: &PoolId, limit: usize) -> Result<usize> {
        validate::cleanup_limit(limit)?;
        let now = self.now_ms();
        self.with_pool(pool, |st| {
            let n = st.reclaim_expired(now, limit);
            Ok((n, n))
        })
    }

    async fn pool_stats(&self, pool: &PoolId) -> Result<PoolStatsSnapshot> {
        let now = self.now_ms();
        self.with_pool(pool, |st| Ok((st.stats(now), 0)))
    }

    async fn pool_snapshot(&self, pool: &PoolId) -> Result<PoolSnapshot> {
        let now = self.now_ms();
        self.with_pool(pool, |st| {
            let snapshot = PoolSnapshot {
                pool: st.pool.clone(),
                proxies: st.proxies_in_order(),
                leases: st.leases_in_order(),
                stats: st.stats(now),
                taken_at: datetime_from_ms(now),
            };
            Ok((snapshot, 0))
        })
    }

    async fn apply_health_check_result(&self, result: &HealthCheckResult) -> Result<Option<Proxy>> {
        validate::pool_id(&result.pool)?;
        let Some(cell) = self.find_cell(&result.pool) else {
            return Ok(None);
        };
        let mut st = cell.state.lock();
        if st.removed {
            return Ok(None);
        }
        let Some(seq) = st.seq_of(&result.proxy) else {
            return Ok(None);
        };
        if st
            .checked_at(seq)
            .is_some_and(|last| result.checked_at < last)
        {
            // A newer check already landed; a late result must not undo it.
            return Ok(st.proxy(&result.proxy));
        }
        let freed = st.apply_health(seq, result.status, result.checked_at, result.latency_ms);
        let proxy = st.proxy(&result.proxy);
        drop(st);
        if freed {
            cell.capacity.notify_one();
        }
        Ok(proxy)
    }

    async fn wait_for_capacity(&self, pool: &PoolId, max_wait: Duration) {
        match self.find_cell(pool) {
            Some(cell) => {
                let _ = tokio::time::timeout(max_wait, cell.capacity.notified()).await;
            }
            None => tokio::time::sleep(max_wait).await,
        }
    }
}
