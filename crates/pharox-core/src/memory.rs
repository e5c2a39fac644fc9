//! The in-memory reference store.
//!
//! Each pool keeps its proxies in ordered indexes of the ones with free
//! capacity (by insertion order, by lease count, by latency) and its leases in
//! an index by expiry, so an unfiltered acquire and a release cost O(log n)
//! whatever the selector, and reclaiming expired leases costs O(log n) each.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::clock::{Clock, SystemClock, datetime_from_ms};
use crate::model::{
    Consumer, ConsumerName, HealthCheckResult, Lease, LeaseId, LeaseStatus, LeasedProxy, PoolId,
    PoolStatsSnapshot, Proxy, ProxyCounts, ProxyId, ProxyPool, ProxyStatus,
};
use crate::storage::{AcquireRequest, PoolSnapshot, ReleaseOutcome, Storage};
use crate::{Error, ProxyFilters, Result, Selector, validate};

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
                pools: RwLock::new(HashMap::new()),
                consumers: Mutex::new(HashMap::new()),
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
                state: Mutex::new(PoolState::new(pool.clone())),
                capacity: Notify::new(),
            }),
        );
        Ok(pool)
    }

    /// Adds or updates a proxy (synchronous helper for seeding).
    pub fn add_proxy(&self, proxy: Proxy) -> Result<Proxy> {
        validate::proxy(&proxy)?;
        let cell = self.cell(&proxy.pool)?;
        let mut state = cell.state.lock();
        state.ensure_live()?;
        let (stored, freed) = state.upsert(proxy)?;
        drop(state);
        if freed {
            cell.capacity.notify_one();
        }
        Ok(stored)
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

/// Which indexes and counters a proxy belongs to; recomputed around every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IndexKeys {
    active: bool,
    free: bool,
    leased: bool,
    load: u32,
    latency: u32,
}

impl IndexKeys {
    fn of(proxy: &Proxy) -> Self {
        Self {
            active: proxy.status == ProxyStatus::Active,
            free: proxy.has_free_capacity(),
            leased: proxy.current_leases > 0,
            load: proxy.current_leases,
            latency: proxy.latency_ms.unwrap_or(u32::MAX),
        }
    }
}

struct Slot {
    proxy: Proxy,
    /// Shared by every lease of this proxy; replaced when connection data changes.
    conn: Arc<LeasedProxy>,
}

struct LeaseEntry {
    seq: u64,
    expires_ms: i64,
    lease: Lease,
}

struct PoolState {
    pool: ProxyPool,
    removed: bool,
    next_seq: u64,
    next_token: u64,
    /// Sequence number of the last round-robin pick (0: none yet).
    cursor: u64,
    seq_of: HashMap<ProxyId, u64>,
    slots: HashMap<u64, Slot>,
    free_by_seq: BTreeSet<u64>,
    free_by_load: BTreeSet<(u32, u64)>,
    free_by_latency: BTreeSet<(u32, u64)>,
    leases: HashMap<LeaseId, LeaseEntry>,
    by_expiry: BTreeSet<(i64, LeaseId)>,
    counts: ProxyCounts,
    total_leases: u64,
    released_leases: u64,
    expired_leases: u64,
}

impl PoolState {
    fn new(pool: ProxyPool) -> Self {
        Self {
            pool,
            removed: false,
            next_seq: 0,
            next_token: 0,
            cursor: 0,
            seq_of: HashMap::new(),
            slots: HashMap::new(),
            free_by_seq: BTreeSet::new(),
            free_by_load: BTreeSet::new(),
            free_by_latency: BTreeSet::new(),
            leases: HashMap::new(),
            by_expiry: BTreeSet::new(),
            counts: ProxyCounts::default(),
            total_leases: 0,
            released_leases: 0,
            expired_leases: 0,
        }
    }

    fn ensure_live(&self) -> Result<()> {
        if self.removed {
            return Err(Error::PoolNotFound(self.pool.id.clone()));
        }
        Ok(())
    }

    fn slot(&self, seq: u64) -> &Slot {
        &self.slots[&seq]
    }

    /// Adds (`before == None`) or moves a proxy between indexes and counters.
    fn reindex(&mut self, seq: u64, before: Option<IndexKeys>, after: Option<IndexKeys>) {
        if before == after {
            return;
        }
        if let Some(b) = before {
            if b.free {
                self.free_by_seq.remove(&seq);
                self.free_by_load.remove(&(b.load, seq));
                self.free_by_latency.remove(&(b.latency, seq));
            }
            self.counts.total -= 1;
            self.counts.active -= u64::from(b.active);
            self.counts.available -= u64::from(b.free);
            self.counts.leased -= u64::from(b.leased);
        }
        if let Some(a) = after {
            if a.free {
                self.free_by_seq.insert(seq);
                self.free_by_load.insert((a.load, seq));
                self.free_by_latency.insert((a.latency, seq));
            }
            self.counts.total += 1;
            self.counts.active += u64::from(a.active);
            self.counts.available += u64::from(a.free);
            self.counts.leased += u64::from(a.leased);
        }
    }

    /// Applies `f` to a proxy and keeps the indexes in step; returns whether
    /// the proxy gained free capacity.
    fn modify(&mut self, seq: u64, f: impl FnOnce(&mut Proxy)) -> bool {
        let slot = self.slots.get_mut(&seq).expect("indexed proxy has a slot");
        let before = IndexKeys::of(&slot.proxy);
        f(&mut slot.proxy);
        let after = IndexKeys::of(&slot.proxy);
        self.reindex(seq, Some(before), Some(after));
        !before.free && after.free
    }

    fn upsert(&mut self, mut proxy: Proxy) -> Result<(Proxy, bool)> {
        if let Some(&seq) = self.seq_of.get(&proxy.id) {
            let current = self.slot(seq).proxy.current_leases;
            if proxy.max_concurrency.is_some_and(|max| max < current) {
                return Err(Error::invalid(
                    "proxy.max_concurrency",
                    format!("is below the proxy's {current} active leases; release them first"),
                ));
            }
            proxy.current_leases = current;
            let slot = self.slots.get_mut(&seq).expect("indexed proxy has a slot");
            let conn = LeasedProxy::of(&proxy);
            if *slot.conn != conn {
                slot.conn = Arc::new(conn);
            }
            let freed = self.modify(seq, |stored| *stored = proxy);
            return Ok((self.slot(seq).proxy.clone(), freed));
        }
        proxy.current_leases = 0;
        self.next_seq += 1;
        let seq = self.next_seq;
        let keys = IndexKeys::of(&proxy);
        self.seq_of.insert(proxy.id.clone(), seq);
        self.slots.insert(
            seq,
            Slot {
                conn: Arc::new(LeasedProxy::of(&proxy)),
                proxy: proxy.clone(),
            },
        );
        self.reindex(seq, None, Some(keys));
        Ok((proxy, keys.free))
    }

    fn remove_proxy(&mut self, id: &ProxyId) -> bool {
        let Some(seq) = self.seq_of.remove(id) else {
            return false;
        };
        let keys = IndexKeys::of(&self.slot(seq).proxy);
        self.reindex(seq, Some(keys), None);
        self.slots.remove(&seq);
        // Removal is rare: a scan of the live leases beats a per-proxy lease set
        // that every acquire would have to maintain.
        let ended: Vec<(i64, LeaseId)> = self
            .leases
            .iter()
            .filter(|(_, e)| e.seq == seq)
            .map(|(id, e)| (e.expires_ms, *id))
            .collect();
        for (expires_ms, lease_id) in ended {
            self.leases.remove(&lease_id);
            self.by_expiry.remove(&(expires_ms, lease_id));
            self.counts.active_leases -= 1;
            self.released_leases += 1;
        }
        true
    }

    /// Ends a live lease, counting it as expired or released, and frees its slot.
    fn end_lease(&mut self, lease_id: LeaseId, expired: bool) {
        let Some(entry) = self.leases.remove(&lease_id) else {
            return;
        };
        self.by_expiry.remove(&(entry.expires_ms, lease_id));
        self.counts.active_leases -= 1;
        if expired {
            self.expired_leases += 1;
        } else {
            self.released_leases += 1;
        }
        self.modify(entry.seq, |p| p.current_leases -= 1);
    }

    /// Reclaims up to `limit` leases whose deadline is at or before `now_ms`.
    fn reclaim_expired(&mut self, now_ms: i64, limit: usize) -> usize {
        let mut reclaimed = 0;
        while reclaimed < limit {
            match self.by_expiry.first() {
                Some(&(expires_ms, lease_id)) if expires_ms <= now_ms => {
                    self.end_lease(lease_id, true);
                    reclaimed += 1;
                }
                _ => break,
            }
        }
        reclaimed
    }

    fn pick(&self, filters: &ProxyFilters, selector: Selector) -> Option<u64> {
        let unfiltered = filters.is_empty();
        let ok = |seq: &u64| unfiltered || filters.matches(&self.slot(*seq).proxy);
        match selector {
            Selector::FirstAvailable => self.free_by_seq.iter().copied().find(ok),
            Selector::RoundRobin => self
                .free_by_seq
                .range(self.cursor + 1..)
                .chain(self.free_by_seq.range(..=self.cursor))
                .copied()
                .find(ok),
            Selector::LeastUsed => self.free_by_load.iter().map(|&(_, s)| s).find(ok),
            Selector::LowestLatency => self.free_by_latency.iter().map(|&(_, s)| s).find(ok),
        }
    }

    fn grant(&mut self, seq: u64, req: &AcquireRequest, now_ms: i64) -> Lease {
        self.next_token += 1;
        self.total_leases += 1;
        self.counts.active_leases += 1;
        if req.selector == Selector::RoundRobin {
            self.cursor = seq;
        }
        self.modify(seq, |p| p.current_leases += 1);
        let expires_ms = now_ms.saturating_add(req.duration.num_milliseconds());
        let lease = Lease {
            id: LeaseId::random(),
            token: self.next_token,
            pool: self.pool.id.clone(),
            consumer: req.consumer.clone(),
            proxy: Arc::clone(&self.slot(seq).conn),
            status: LeaseStatus::Active,
            acquired_at: datetime_from_ms(now_ms),
            expires_at: datetime_from_ms(expires_ms),
            released_at: None,
        };
        self.by_expiry.insert((expires_ms, lease.id));
        self.leases.insert(
            lease.id,
            LeaseEntry {
                seq,
                expires_ms,
                lease: lease.clone(),
            },
        );
        lease
    }

    /// The stored entry of `lease`, if it is the same live lease (id and token).
    fn live_entry(&self, lease: &Lease) -> Option<&LeaseEntry> {
        self.leases
            .get(&lease.id)
            .filter(|e| e.lease.token == lease.token)
    }

    fn stats(&self, now_ms: i64) -> PoolStatsSnapshot {
        PoolStatsSnapshot {
            pool: self.pool.id.clone(),
            total: self.counts.total,
            active: self.counts.active,
            available: self.counts.available,
            leased: self.counts.leased,
            active_leases: self.counts.active_leases,
            total_leases: self.total_leases,
            released_leases: self.released_leases,
            expired_leases: self.expired_leases,
            collected_at: datetime_from_ms(now_ms),
        }
    }

    fn proxies_in_order(&self) -> Vec<Proxy> {
        let mut slots: Vec<(&u64, &Slot)> = self.slots.iter().collect();
        slots.sort_unstable_by_key(|(seq, _)| **seq);
        slots.into_iter().map(|(_, s)| s.proxy.clone()).collect()
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
        let Some(cell) = self.inner.pools.write().remove(pool) else {
            return Ok(false);
        };
        cell.state.lock().removed = true;
        Ok(true)
    }

    async fn upsert_proxy(&self, proxy: &Proxy) -> Result<Proxy> {
        self.add_proxy(proxy.clone())
    }

    async fn get_proxy(&self, pool: &PoolId, proxy: &ProxyId) -> Result<Option<Proxy>> {
        self.with_pool(pool, |st| {
            let found = st.seq_of.get(proxy).map(|&seq| st.slot(seq).proxy.clone());
            Ok((found, 0))
        })
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
            let found = st
                .pick(filters, selector)
                .map(|seq| st.slot(seq).proxy.clone());
            Ok((found, freed))
        })
    }

    async fn acquire(&self, request: &AcquireRequest) -> Result<Option<Lease>> {
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

    async fn release(&self, lease: &Lease) -> Result<ReleaseOutcome> {
        let Some(cell) = self.find_cell(&lease.pool) else {
            return Ok(ReleaseOutcome::NotHeld);
        };
        let now = self.now_ms();
        let mut st = cell.state.lock();
        if st.removed {
            return Ok(ReleaseOutcome::NotHeld);
        }
        let Some(entry) = st.live_entry(lease) else {
            return Ok(ReleaseOutcome::NotHeld);
        };
        let expired = entry.expires_ms <= now;
        st.end_lease(lease.id, expired);
        drop(st);
        cell.capacity.notify_one();
        Ok(if expired {
            ReleaseOutcome::Expired
        } else {
            ReleaseOutcome::Released
        })
    }

    async fn renew(&self, lease: &Lease, duration: TimeDelta) -> Result<Lease> {
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
        let old_expiry = entry.expires_ms;
        if old_expiry <= now {
            st.end_lease(lease.id, true);
            drop(st);
            cell.capacity.notify_one();
            return Err(lost());
        }
        let expires_ms = now.saturating_add(duration.num_milliseconds());
        st.by_expiry.remove(&(old_expiry, lease.id));
        st.by_expiry.insert((expires_ms, lease.id));
        let entry = st.leases.get_mut(&lease.id).expect("entry checked above");
        entry.expires_ms = expires_ms;
        entry.lease.expires_at = datetime_from_ms(expires_ms);
        Ok(entry.lease.clone())
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
            let mut leases: Vec<Lease> = st.leases.values().map(|e| e.lease.clone()).collect();
            leases.sort_by_key(|l| l.token);
            let snapshot = PoolSnapshot {
                pool: st.pool.clone(),
                proxies: st.proxies_in_order(),
                leases,
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
        let Some(&seq) = st.seq_of.get(&result.proxy) else {
            return Ok(None);
        };
        if st
            .slot(seq)
            .proxy
            .checked_at
            .is_some_and(|last| result.checked_at < last)
        {
            // A newer check already landed; a late result must not undo it.
            return Ok(Some(st.slot(seq).proxy.clone()));
        }
        let freed = st.modify(seq, |p| {
            p.status = result.status;
            p.checked_at = Some(result.checked_at);
            if let Some(latency) = result.latency_ms {
                p.latency_ms = Some(latency);
            }
        });
        let proxy = st.slot(seq).proxy.clone();
        drop(st);
        if freed {
            cell.capacity.notify_one();
        }
        Ok(Some(proxy))
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
