//! One pool's state: proxies, indexes of those with free capacity, leases.
//!
//! Proxies are numbered by a sequence in the order they were added. What the
//! hot path reads and writes per proxy (lease count, cap, latency, status, the
//! shared connection data) sits in a dense vector indexed by that sequence;
//! the full `Proxy` is only read for filters and admin calls. Indexes of the
//! proxies with free capacity:
//!
//! - by sequence: a hierarchical bitset (first available, round robin);
//! - by (lease count, sequence): one bitset per small lease count, a B-tree
//!   above that (least used);
//! - by (latency, sequence): a min segment tree over sequences (lowest latency).
//!
//! Removing proxies leaves holes in the sequence space; when holes outnumber
//! live proxies the pool renumbers itself (amortised O(1) per removal).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::HashMap;
use super::bitset::HierBitset;
use super::mintree::MinTree;
use crate::clock::datetime_from_ms;
use crate::model::{
    ConsumerName, Lease, LeaseId, LeaseStatus, LeasedProxy, PoolStatsSnapshot, Proxy, ProxyCounts,
    ProxyId, ProxyPool, ProxyStatus,
};
use crate::{AcquireRequest, Error, LeaseRef, ProxyFilters, Result, Selector, validate};

/// What the hot path needs of one proxy.
#[derive(Debug, Clone, Default)]
struct Hot {
    /// Connection data shared by every lease; `None` marks a hole.
    conn: Option<Arc<LeasedProxy>>,
    load: u32,
    /// The cap; `MAX_CONCURRENCY` for a proxy without one, like Redis.
    max: u32,
    /// `u32::MAX` when never measured.
    latency: u32,
    active: bool,
}

impl Hot {
    fn of(proxy: &Proxy, load: u32) -> Self {
        Self {
            conn: Some(Arc::new(LeasedProxy::of(proxy))),
            load,
            max: proxy.capacity(),
            latency: proxy.latency_ms.unwrap_or(u32::MAX),
            active: proxy.status == ProxyStatus::Active,
        }
    }

    fn keys(&self) -> Option<IndexKeys> {
        self.conn.as_ref()?;
        Some(IndexKeys {
            active: self.active,
            free: self.active && self.load < self.max,
            leased: self.load > 0,
            load: self.load,
            latency: self.latency,
        })
    }
}

/// Orders `(rank, seq)` in one `u64`, unique per proxy. Sequences stay below
/// 2^32: compaction keeps them under twice the number of live proxies
/// (checked in `upsert`).
fn pack(rank: u32, seq: u64) -> u64 {
    debug_assert!(seq <= u64::from(u32::MAX));
    (u64::from(rank) << 32) | seq
}

fn unpack_seq(key: u64) -> u64 {
    key & u64::from(u32::MAX)
}

/// Which indexes and counters a proxy belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IndexKeys {
    active: bool,
    free: bool,
    leased: bool,
    load: u32,
    latency: u32,
}

/// Free proxies by (lease count, sequence).
#[derive(Debug)]
struct LoadIndex {
    /// `levels[n]`: free proxies holding exactly `n` leases.
    levels: Vec<HierBitset>,
    /// Free proxies holding `LOAD_LEVELS` leases or more.
    high: BTreeSet<u64>,
}

/// Lease counts with their own bitset; higher counts (unlimited proxies under
/// heavy use) share a B-tree.
const LOAD_LEVELS: u32 = 16;

impl LoadIndex {
    fn new() -> Self {
        Self {
            levels: (0..LOAD_LEVELS).map(|_| HierBitset::new()).collect(),
            high: BTreeSet::new(),
        }
    }

    fn insert(&mut self, load: u32, seq: u64) {
        match self.levels.get_mut(load as usize) {
            Some(level) => {
                level.insert(seq);
            }
            None => {
                self.high.insert(pack(load, seq));
            }
        }
    }

    fn remove(&mut self, load: u32, seq: u64) {
        match self.levels.get_mut(load as usize) {
            Some(level) => {
                level.remove(seq);
            }
            None => {
                self.high.remove(&pack(load, seq));
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.levels
            .iter()
            .flat_map(|level| level.iter_from(0))
            .chain(self.high.iter().map(|&key| unpack_seq(key)))
    }
}

/// What the store keeps of a live lease; the `Lease` handed out is rebuilt from it.
#[derive(Debug)]
pub(super) struct LeaseEntry {
    seq: u64,
    pub(super) token: u64,
    acquired_ms: i64,
    pub(super) expires_ms: i64,
    consumer: ConsumerName,
}

#[derive(Debug)]
pub(super) struct PoolState {
    pub(super) pool: ProxyPool,
    pub(super) removed: bool,
    /// The pool's [`PoolId::lease_tag`], put in every lease id it grants.
    lease_tag: u32,
    last_token: u64,
    /// Sequence of the last round-robin pick.
    cursor: Option<u64>,
    seq_of: HashMap<ProxyId, u64>,
    hot: Vec<Hot>,
    /// The full proxies; their `current_leases` is filled in from `hot` on read.
    cold: Vec<Option<Box<Proxy>>>,
    free_by_seq: HierBitset,
    free_by_load: LoadIndex,
    /// Position `seq` holds [`pack`]`(latency, seq)`.
    free_by_latency: MinTree,
    leases: HashMap<LeaseId, LeaseEntry>,
    by_expiry: BTreeSet<(i64, LeaseId)>,
    counts: ProxyCounts,
    total_leases: u64,
    released_leases: u64,
    expired_leases: u64,
}

impl PoolState {
    /// An empty pool whose first fencing token will be `last_token + 1`.
    pub(super) fn new(pool: ProxyPool, last_token: u64) -> Self {
        Self {
            lease_tag: pool.id.lease_tag(),
            pool,
            removed: false,
            last_token,
            cursor: None,
            seq_of: HashMap::default(),
            hot: Vec::new(),
            cold: Vec::new(),
            free_by_seq: HierBitset::new(),
            free_by_load: LoadIndex::new(),
            free_by_latency: MinTree::new(),
            leases: HashMap::default(),
            by_expiry: BTreeSet::new(),
            counts: ProxyCounts::default(),
            total_leases: 0,
            released_leases: 0,
            expired_leases: 0,
        }
    }

    /// The last fencing token issued (0: none yet).
    pub(super) fn last_token(&self) -> u64 {
        self.last_token
    }

    pub(super) fn ensure_live(&self) -> Result<()> {
        if self.removed {
            return Err(Error::PoolNotFound(self.pool.id.clone()));
        }
        Ok(())
    }

    /// Moves a proxy between indexes and counters (`None`: absent).
    fn reindex(&mut self, seq: u64, before: Option<IndexKeys>, after: Option<IndexKeys>) {
        if before == after {
            return;
        }
        if let Some(b) = before {
            if b.free {
                let a_free = after.is_some_and(|a| a.free);
                if !a_free {
                    self.free_by_seq.remove(seq);
                }
                if !a_free || after.is_some_and(|a| a.load != b.load) {
                    self.free_by_load.remove(b.load, seq);
                }
                if !a_free || after.is_some_and(|a| a.latency != b.latency) {
                    self.free_by_latency.set(seq, None);
                }
            }
            self.counts.total -= 1;
            self.counts.active -= u64::from(b.active);
            self.counts.available -= u64::from(b.free);
            self.counts.leased -= u64::from(b.leased);
        }
        if let Some(a) = after {
            if a.free {
                let b_free = before.is_some_and(|b| b.free);
                if !b_free {
                    self.free_by_seq.insert(seq);
                }
                if !b_free || before.is_some_and(|b| b.load != a.load) {
                    self.free_by_load.insert(a.load, seq);
                }
                if !b_free || before.is_some_and(|b| b.latency != a.latency) {
                    self.free_by_latency.set(seq, Some(pack(a.latency, seq)));
                }
            }
            self.counts.total += 1;
            self.counts.active += u64::from(a.active);
            self.counts.available += u64::from(a.free);
            self.counts.leased += u64::from(a.leased);
        }
    }

    /// Applies `f` to a proxy's hot data and keeps the indexes in step;
    /// returns whether the proxy gained free capacity.
    fn modify_hot(&mut self, seq: u64, f: impl FnOnce(&mut Hot)) -> bool {
        let hot = &mut self.hot[seq as usize];
        let before = hot.keys();
        f(hot);
        let after = hot.keys();
        self.reindex(seq, before, after);
        !before.is_some_and(|b| b.free) && after.is_some_and(|a| a.free)
    }

    fn cold(&self, seq: u64) -> &Proxy {
        self.cold[seq as usize]
            .as_deref()
            .expect("a live sequence has its proxy")
    }

    /// The proxy at `seq` as callers see it (with its current lease count).
    fn proxy_at(&self, seq: u64) -> Proxy {
        let mut proxy = self.cold(seq).clone();
        proxy.current_leases = self.hot[seq as usize].load;
        proxy
    }

    /// The sequence of a proxy by id.
    pub(super) fn seq_of(&self, id: &ProxyId) -> Option<u64> {
        self.seq_of.get(id).copied()
    }

    /// A proxy by id, as callers see it.
    pub(super) fn proxy(&self, id: &ProxyId) -> Option<Proxy> {
        self.seq_of(id).map(|seq| self.proxy_at(seq))
    }

    /// Adds or updates a proxy; returns it as stored and whether it gained free capacity.
    pub(super) fn upsert(&mut self, mut proxy: Proxy) -> Result<(Proxy, bool)> {
        if let Some(seq) = self.seq_of(&proxy.id) {
            let load = self.hot[seq as usize].load;
            if proxy.max_concurrency.is_some_and(|max| max < load) {
                return Err(Error::invalid(
                    "proxy.max_concurrency",
                    format!("is below the proxy's {load} active leases; release them first"),
                ));
            }
            proxy.current_leases = load;
            let mut hot = Hot::of(&proxy, load);
            // Keep the shared connection data when it did not change.
            let old = &self.hot[seq as usize].conn;
            if old.as_deref() == hot.conn.as_deref() {
                hot.conn = old.clone();
            }
            self.cold[seq as usize] = Some(Box::new(proxy.clone()));
            return Ok((proxy, self.replace_hot(seq, hot)));
        }
        validate::room_for_proxy(&self.pool.id, self.seq_of.len())?;
        proxy.current_leases = 0;
        let seq = self.hot.len() as u64;
        if seq > u64::from(u32::MAX) {
            return Err(Error::invalid(
                "proxy",
                "a pool of the in-memory store holds at most 2^32 proxies",
            ));
        }
        self.seq_of.insert(proxy.id.clone(), seq);
        self.hot.push(Hot::default());
        self.cold.push(Some(Box::new(proxy.clone())));
        let hot = Hot::of(&proxy, 0);
        Ok((proxy, self.replace_hot(seq, hot)))
    }

    fn replace_hot(&mut self, seq: u64, hot: Hot) -> bool {
        self.modify_hot(seq, |slot| *slot = hot)
    }

    /// Removes a proxy and ends its live leases (counted as released).
    pub(super) fn remove_proxy(&mut self, id: &ProxyId) -> bool {
        let Some(seq) = self.seq_of.remove(id) else {
            return false;
        };
        self.modify_hot(seq, |hot| *hot = Hot::default());
        self.cold[seq as usize] = None;
        // Removal is rare: a scan of the live leases beats a per-proxy lease
        // set that every acquire would have to maintain.
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
        if self.hot.len() > 1_024 && self.hot.len() > 2 * self.seq_of.len() {
            self.compact();
        }
        true
    }

    /// Renumbers live proxies densely, keeping their order.
    fn compact(&mut self) {
        let mut remap = vec![None; self.hot.len()];
        let mut hot = Vec::with_capacity(self.seq_of.len());
        let mut cold = Vec::with_capacity(self.seq_of.len());
        for (old, (h, c)) in self.hot.drain(..).zip(self.cold.drain(..)).enumerate() {
            if h.conn.is_some() {
                remap[old] = Some(hot.len() as u64);
                hot.push(h);
                cold.push(c);
            }
        }
        let new_seq = |old: u64| remap[old as usize].expect("live sequences are remapped");
        for seq in self.seq_of.values_mut() {
            *seq = new_seq(*seq);
        }
        for entry in self.leases.values_mut() {
            entry.seq = new_seq(entry.seq);
        }
        // The last pick may be gone: continue after the last live one before it.
        self.cursor = self
            .cursor
            .and_then(|c| remap[..=c as usize].iter().rev().find_map(|s| *s));
        self.free_by_seq = HierBitset::new();
        self.free_by_load = LoadIndex::new();
        self.free_by_latency = MinTree::new();
        self.hot = hot;
        self.cold = cold;
        for seq in 0..self.hot.len() as u64 {
            if let Some(k) = self.hot[seq as usize].keys().filter(|k| k.free) {
                self.free_by_seq.insert(seq);
                self.free_by_load.insert(k.load, seq);
                self.free_by_latency.set(seq, Some(pack(k.latency, seq)));
            }
        }
    }

    /// Applies a health result to a proxy; returns whether it gained free capacity.
    pub(super) fn apply_health(
        &mut self,
        seq: u64,
        status: ProxyStatus,
        checked_at: chrono::DateTime<chrono::Utc>,
        latency_ms: Option<u32>,
    ) -> bool {
        let cold = self.cold[seq as usize]
            .as_deref_mut()
            .expect("a live sequence has its proxy");
        cold.status = status;
        cold.checked_at = Some(checked_at);
        if latency_ms.is_some() {
            cold.latency_ms = latency_ms;
        }
        let (active, latency) = (status == ProxyStatus::Active, cold.latency_ms);
        self.modify_hot(seq, |hot| {
            hot.active = active;
            hot.latency = latency.unwrap_or(u32::MAX);
        })
    }

    /// The stored `checked_at` of a proxy.
    pub(super) fn checked_at(&self, seq: u64) -> Option<chrono::DateTime<chrono::Utc>> {
        self.cold(seq).checked_at
    }

    /// Ends a live lease, counting it as expired or released, and frees its slot.
    pub(super) fn end_lease(&mut self, lease_id: LeaseId, expired: bool) {
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
        self.modify_hot(entry.seq, |hot| hot.load -= 1);
    }

    /// Reclaims up to `limit` leases whose deadline is at or before `now_ms`.
    pub(super) fn reclaim_expired(&mut self, now_ms: i64, limit: usize) -> usize {
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

    /// The sequence of the proxy `selector` picks among free proxies matching `filters`.
    pub(super) fn pick(&self, filters: &ProxyFilters, selector: Selector) -> Option<u64> {
        let unfiltered = filters.is_empty();
        // A closure predicate may read `current_leases`: show it the live count.
        let exact = filters.has_predicate();
        let ok = |seq: &u64| {
            unfiltered
                || if exact {
                    filters.matches(&self.proxy_at(*seq))
                } else {
                    filters.matches(self.cold(*seq))
                }
        };
        match selector {
            Selector::FirstAvailable => self.free_by_seq.iter_from(0).find(ok),
            Selector::RoundRobin => {
                let start = self.cursor.map_or(0, |c| c + 1);
                self.free_by_seq
                    .iter_from(start)
                    .chain(self.free_by_seq.iter_from(0).take_while(|&s| s < start))
                    .find(ok)
            }
            Selector::LeastUsed => self.free_by_load.iter().find(ok),
            Selector::LowestLatency if unfiltered => self.free_by_latency.first().map(unpack_seq),
            Selector::LowestLatency => self.free_by_latency.iter().map(unpack_seq).find(ok),
        }
    }

    /// The proxy `selector` would pick, as callers see it.
    pub(super) fn peek(&self, filters: &ProxyFilters, selector: Selector) -> Option<Proxy> {
        self.pick(filters, selector).map(|seq| self.proxy_at(seq))
    }

    /// Leases the proxy at `seq`.
    pub(super) fn grant(&mut self, seq: u64, req: &AcquireRequest, now_ms: i64) -> Lease {
        self.last_token += 1;
        self.total_leases += 1;
        self.counts.active_leases += 1;
        if req.selector == Selector::RoundRobin {
            self.cursor = Some(seq);
        }
        self.modify_hot(seq, |hot| hot.load += 1);
        let id = LeaseId::in_pool(self.lease_tag);
        let entry = LeaseEntry {
            seq,
            token: self.last_token,
            acquired_ms: now_ms,
            expires_ms: now_ms.saturating_add(req.duration.num_milliseconds()),
            consumer: req.consumer.clone(),
        };
        let lease = self.lease_of(id, &entry);
        self.by_expiry.insert((entry.expires_ms, id));
        self.leases.insert(id, entry);
        lease
    }

    pub(super) fn lease_of(&self, id: LeaseId, entry: &LeaseEntry) -> Lease {
        Lease {
            id,
            token: entry.token,
            pool: self.pool.id.clone(),
            consumer: entry.consumer.clone(),
            proxy: Arc::clone(
                self.hot[entry.seq as usize]
                    .conn
                    .as_ref()
                    .expect("a leased proxy is live"),
            ),
            status: LeaseStatus::Active,
            acquired_at: datetime_from_ms(entry.acquired_ms),
            expires_at: datetime_from_ms(entry.expires_ms),
            released_at: None,
        }
    }

    /// The lease with this id, if it is held and its deadline is after `now_ms`.
    pub(super) fn live_lease(&self, id: LeaseId, now_ms: i64) -> Option<Lease> {
        self.leases
            .get(&id)
            .filter(|e| e.expires_ms > now_ms)
            .map(|e| self.lease_of(id, e))
    }

    /// The stored entry of `lease`, if it is the same live lease (id, and
    /// token when the reference has one).
    pub(super) fn live_entry(&self, lease: &LeaseRef) -> Option<&LeaseEntry> {
        self.leases
            .get(&lease.id)
            .filter(|e| lease.token.is_none_or(|t| t == e.token))
    }

    /// Moves a live lease's deadline; returns the lease as it is now.
    pub(super) fn extend(&mut self, lease_id: LeaseId, expires_ms: i64) -> Lease {
        let entry = self.leases.get_mut(&lease_id).expect("a live lease");
        self.by_expiry.remove(&(entry.expires_ms, lease_id));
        entry.expires_ms = expires_ms;
        self.by_expiry.insert((expires_ms, lease_id));
        self.lease_of(lease_id, &self.leases[&lease_id])
    }

    pub(super) fn stats(&self, now_ms: i64) -> PoolStatsSnapshot {
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

    /// Every proxy in the order they were added.
    pub(super) fn proxies_in_order(&self) -> Vec<Proxy> {
        (0..self.hot.len() as u64)
            .filter(|&seq| self.hot[seq as usize].conn.is_some())
            .map(|seq| self.proxy_at(seq))
            .collect()
    }

    /// Every live lease, by token.
    pub(super) fn leases_in_order(&self) -> Vec<Lease> {
        let mut leases: Vec<Lease> = self
            .leases
            .iter()
            .map(|(id, e)| self.lease_of(*id, e))
            .collect();
        leases.sort_by_key(|l| l.token);
        leases
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProxyProtocol;

    fn proxy(i: u32) -> Proxy {
        Proxy::new("p", "10.0.0.1", 8000 + i as u16, ProxyProtocol::Http)
            .with_id(format!("p{i}"))
            .with_max_concurrency(1 + i % 3)
            .with_latency_ms(i * 7 % 50)
    }

    #[test]
    fn compaction_keeps_order_cursor_and_leases() {
        let mut st = PoolState::new(ProxyPool::new("p"), 0);
        for i in 0..3_000 {
            st.upsert(proxy(i)).unwrap();
        }
        let rr = AcquireRequest::new("p").selector(Selector::RoundRobin);
        let seq = st.pick(&ProxyFilters::new(), Selector::RoundRobin).unwrap();
        let held = st.grant(seq, &rr, 0);
        // Advance the cursor to p2500, then drop most proxies, including p2500.
        st.cursor = st.seq_of(&ProxyId::from("p2500"));
        for i in (1..3_000).filter(|i| i % 10 != 0 || *i == 2_500) {
            assert!(st.remove_proxy(&ProxyId::from(format!("p{i}"))));
        }
        assert!(st.hot.len() < 3_000, "compacted");
        let order: Vec<String> = st
            .proxies_in_order()
            .into_iter()
            .map(|p| p.id.to_string())
            .collect();
        let expected: Vec<String> = (0..3_000)
            .filter(|i| i % 10 == 0 && *i != 2_500)
            .map(|i| format!("p{i}"))
            .collect();
        assert_eq!(order, expected);
        // Round robin resumes after the removed p2500, at p2510.
        let next = st.pick(&ProxyFilters::new(), Selector::RoundRobin).unwrap();
        assert_eq!(st.proxy_at(next).id, "p2510");
        // The lease held on p0 survived renumbering.
        assert_eq!(st.proxy(&ProxyId::from("p0")).unwrap().current_leases, 1);
        assert!(st.live_entry(&LeaseRef::from(&held)).is_some());
        st.end_lease(held.id, false);
        assert_eq!(st.proxy(&ProxyId::from("p0")).unwrap().current_leases, 0);
        assert_eq!(st.counts.total, expected.len() as u64);
        assert_eq!(st.counts.available, expected.len() as u64);
    }

    #[test]
    fn least_used_spans_bitset_levels_and_the_high_tree() {
        let mut st = PoolState::new(ProxyPool::new("p"), 0);
        let mut a = proxy(0);
        a.max_concurrency = None;
        let mut b = proxy(1);
        b.max_concurrency = None;
        st.upsert(a).unwrap();
        st.upsert(b).unwrap();
        let lu = AcquireRequest::new("p").selector(Selector::LeastUsed);
        // 40 leases alternate between the two proxies, through every level.
        for _ in 0..40 {
            let seq = st.pick(&ProxyFilters::new(), Selector::LeastUsed).unwrap();
            st.grant(seq, &lu, 0);
        }
        assert_eq!(st.hot[0].load, 20);
        assert_eq!(st.hot[1].load, 20);
        assert_eq!(st.free_by_load.high.len(), 2);
        assert_eq!(st.pick(&ProxyFilters::new(), Selector::LeastUsed), Some(0));
    }
}
