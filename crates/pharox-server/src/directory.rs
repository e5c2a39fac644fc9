//! How the API's UUIDs find pools, proxies and consumers without extra
//! store round trips on the hot path.
//!
//! - A pool's UUID is [`PoolId::uuid`] (deterministic). The directory maps
//!   UUIDs, and the 32-bit tags that lease ids carry
//!   ([`LeaseId::pool_tag`](pharox_core::LeaseId::pool_tag)), back to pool
//!   ids. It holds one entry per pool (it does not grow with leases) and is
//!   refreshed from [`Storage::list_pools`] when a UUID or tag is unknown, so
//!   pools created by another server or by Rust code are found too.
//! - Refreshes are coalesced and rate-limited: a miss waits for a listing
//!   that starts after it (one listing serves every miss waiting for it),
//!   and listings start at least [`ServerConfig::pool_refresh_interval`]
//!   apart. A client asking for random UUIDs therefore costs the store at
//!   most one `list_pools` per interval, and a pool created elsewhere is
//!   found by the first request that asks for it, at most one interval late.
//! - Consumers: the SDK names a consumer (`consumer_id: "default"`) and
//!   parses the answer's `consumer_id` as a UUID: the consumer's id from
//!   [`Storage::ensure_consumer`], cached here (bounded).
//!
//! [`ServerConfig::pool_refresh_interval`]: crate::ServerConfig::pool_refresh_interval

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use pharox_core::{ConsumerName, Error, PoolId, Result, Storage};
use tokio::time::Instant;
use uuid::Uuid;

/// Most consumer names whose ids are cached; past it, new names cost an
/// `ensure_consumer` call each time.
pub const MAX_CACHED_CONSUMERS: usize = 10_000;

/// Least time between two `list_pools` refreshes of the directory, by default.
pub const DEFAULT_POOL_REFRESH_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Default)]
struct Maps {
    by_uuid: HashMap<Uuid, PoolId>,
    by_tag: HashMap<u32, Vec<PoolId>>,
}

impl Maps {
    fn insert(&mut self, pool: &PoolId) {
        let uuid = pool.uuid();
        // A pool whose id is the canonical text of another pool's UUID keeps
        // that UUID: the id names it exactly, the other only by hash.
        let taken_by_its_own_id = self
            .by_uuid
            .get(&uuid)
            .is_some_and(|p| p != pool && p.as_str() == uuid.hyphenated().to_string());
        if !taken_by_its_own_id {
            self.by_uuid.insert(uuid, pool.clone());
        }
        let same_tag = self.by_tag.entry(pool.lease_tag()).or_default();
        if !same_tag.contains(pool) {
            same_tag.push(pool.clone());
        }
    }
}

/// When listings ran, for coalescing and rate-limiting them.
#[derive(Default)]
struct Refreshes {
    /// When the last listing started (successful or not).
    last_start: Option<Instant>,
    /// When the last successful listing started.
    last_success: Option<Instant>,
    /// When the last failed listing started, and whether its error was retryable.
    last_failure: Option<(Instant, bool)>,
}

/// Pool UUIDs and lease tags to pool ids, and consumer names to ids.
pub(crate) struct Directory {
    pools: RwLock<Maps>,
    consumers: Mutex<HashMap<ConsumerName, Uuid>>,
    /// Held while a listing is planned or runs: one at a time.
    refreshes: tokio::sync::Mutex<Refreshes>,
    min_interval: Duration,
}

impl Directory {
    /// An empty directory whose listings start at least `min_interval` apart.
    pub fn new(min_interval: Duration) -> Self {
        Self {
            pools: RwLock::default(),
            consumers: Mutex::default(),
            refreshes: tokio::sync::Mutex::default(),
            min_interval,
        }
    }

    /// Records a pool (created or seen).
    pub fn add_pool(&self, pool: &PoolId) {
        self.pools.write().insert(pool);
    }

    /// Forgets a removed pool.
    pub fn remove_pool(&self, pool: &PoolId) {
        let mut maps = self.pools.write();
        if maps.by_uuid.get(&pool.uuid()) == Some(pool) {
            maps.by_uuid.remove(&pool.uuid());
        }
        if let Some(same_tag) = maps.by_tag.get_mut(&pool.lease_tag()) {
            same_tag.retain(|p| p != pool);
            if same_tag.is_empty() {
                maps.by_tag.remove(&pool.lease_tag());
            }
        }
    }

    /// Brings the maps up to date with a listing that started after
    /// `missed_at`: one that already did, or a new one, started no sooner
    /// than `min_interval` after the last. Errors mean the caller's request
    /// was not applied (it waits for this before touching the store), so a
    /// retryable one is `Unavailable`, whatever the listing itself got.
    async fn refresh<S: Storage>(&self, store: &S, missed_at: Instant) -> Result<()> {
        let mut state = self.refreshes.lock().await;
        if state.last_success.is_some_and(|t| t > missed_at) {
            return Ok(());
        }
        if let Some((t, retryable)) = state.last_failure
            && t > missed_at
        {
            return Err(listing_failed(retryable));
        }
        if let Some(last) = state.last_start {
            tokio::time::sleep_until(last + self.min_interval).await;
        }
        let started = Instant::now();
        state.last_start = Some(started);
        match store.list_pools().await {
            Ok(pools) => {
                let mut maps = Maps::default();
                for pool in &pools {
                    maps.insert(&pool.id);
                }
                *self.pools.write() = maps;
                state.last_success = Some(started);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "listing pools for the directory failed");
                state.last_failure = Some((started, e.is_retryable()));
                Err(listing_failed(e.is_retryable()))
            }
        }
    }

    /// The pool with this UUID, if any (refreshing on a miss).
    pub async fn pool_by_uuid<S: Storage>(&self, store: &S, uuid: Uuid) -> Result<Option<PoolId>> {
        if let Some(p) = self.pools.read().by_uuid.get(&uuid) {
            return Ok(Some(p.clone()));
        }
        self.refresh(store, Instant::now()).await?;
        Ok(self.pools.read().by_uuid.get(&uuid).cloned())
    }

    /// The pools whose lease tag is `tag` (almost always one or none;
    /// refreshing on a miss).
    pub async fn pools_by_tag<S: Storage>(&self, store: &S, tag: u32) -> Result<Vec<PoolId>> {
        if let Some(p) = self.pools.read().by_tag.get(&tag) {
            return Ok(p.clone());
        }
        self.refresh(store, Instant::now()).await?;
        Ok(self
            .pools
            .read()
            .by_tag
            .get(&tag)
            .cloned()
            .unwrap_or_default())
    }

    /// The consumer's id, registering it on first use.
    pub async fn consumer_id<S: Storage>(&self, store: &S, name: &ConsumerName) -> Result<Uuid> {
        if let Some(id) = self.consumers.lock().get(name) {
            return Ok(*id);
        }
        let consumer = store.ensure_consumer(name).await?;
        let mut cache = self.consumers.lock();
        if cache.len() < MAX_CACHED_CONSUMERS {
            cache.insert(consumer.name, consumer.id);
        }
        Ok(consumer.id)
    }
}

fn listing_failed(retryable: bool) -> Error {
    let source = "listing pools to find the pool a UUID or lease id names failed".into();
    if retryable {
        Error::Unavailable { source }
    } else {
        Error::Backend { source }
    }
}
