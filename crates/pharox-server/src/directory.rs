//! How the API's UUIDs find pools, proxies and consumers without extra
//! store round trips on the hot path.
//!
//! - A pool's UUID is [`PoolId::uuid`] (deterministic). The directory maps
//!   UUIDs, and the 32-bit tags that lease ids carry
//!   ([`LeaseId::pool_tag`](pharox_core::LeaseId::pool_tag)), back to pool
//!   ids. It holds one entry per pool (it does not grow with leases) and is
//!   refreshed from [`Storage::list_pools`] when a UUID or tag is unknown, so
//!   pools created by another server or by Rust code are found too.
//! - Consumers: the SDK names a consumer (`consumer_id: "default"`) and
//!   parses the answer's `consumer_id` as a UUID: the consumer's id from
//!   [`Storage::ensure_consumer`], cached here (bounded).

use parking_lot::{Mutex, RwLock};
use pharox_core::{ConsumerName, PoolId, ProxyId, Result, Storage};
use std::collections::HashMap;
use uuid::Uuid;

/// Most consumer names whose ids are cached; past it, new names cost an
/// `ensure_consumer` call each time.
pub const MAX_CACHED_CONSUMERS: usize = 10_000;

#[derive(Default)]
struct Maps {
    by_uuid: HashMap<Uuid, PoolId>,
    by_tag: HashMap<u32, Vec<PoolId>>,
}

impl Maps {
    fn insert(&mut self, pool: &PoolId) {
        self.by_uuid.insert(pool.uuid(), pool.clone());
        let same_tag = self.by_tag.entry(pool.lease_tag()).or_default();
        if !same_tag.contains(pool) {
            same_tag.push(pool.clone());
        }
    }
}

/// Pool UUIDs and lease tags to pool ids, and consumer names to ids.
#[derive(Default)]
pub(crate) struct Directory {
    pools: RwLock<Maps>,
    consumers: Mutex<HashMap<ConsumerName, Uuid>>,
}

impl Directory {
    /// Records a pool (created or seen).
    pub fn add_pool(&self, pool: &PoolId) {
        self.pools.write().insert(pool);
    }

    /// Forgets a removed pool.
    pub fn remove_pool(&self, pool: &PoolId) {
        let mut maps = self.pools.write();
        maps.by_uuid.remove(&pool.uuid());
        if let Some(same_tag) = maps.by_tag.get_mut(&pool.lease_tag()) {
            same_tag.retain(|p| p != pool);
            if same_tag.is_empty() {
                maps.by_tag.remove(&pool.lease_tag());
            }
        }
    }

    async fn refresh<S: Storage>(&self, store: &S) -> Result<()> {
        let mut maps = Maps::default();
        for pool in store.list_pools().await? {
            maps.insert(&pool.id);
        }
        *self.pools.write() = maps;
        Ok(())
    }

    /// The pool with this UUID, if any (refreshing once on a miss).
    pub async fn pool_by_uuid<S: Storage>(&self, store: &S, uuid: Uuid) -> Result<Option<PoolId>> {
        if let Some(p) = self.pools.read().by_uuid.get(&uuid) {
            return Ok(Some(p.clone()));
        }
        self.refresh(store).await?;
        Ok(self.pools.read().by_uuid.get(&uuid).cloned())
    }

    /// The pools whose lease tag is `tag` (almost always one or none;
    /// refreshing once on a miss).
    pub async fn pools_by_tag<S: Storage>(&self, store: &S, tag: u32) -> Result<Vec<PoolId>> {
        if let Some(p) = self.pools.read().by_tag.get(&tag) {
            return Ok(p.clone());
        }
        self.refresh(store).await?;
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

/// The UUID a proxy is named by in lease answers (`proxy_id`, which the SDK
/// parses as a UUID): its id when that is a canonical UUID (every proxy
/// created through the API), otherwise the UUIDv5 of its id in the pool's
/// UUID namespace.
pub fn proxy_uuid(pool: &PoolId, proxy: &ProxyId) -> Uuid {
    match Uuid::try_parse(proxy.as_str()) {
        Ok(u) if u.hyphenated().to_string() == proxy.as_str() => u,
        _ => Uuid::new_v5(&pool.uuid(), proxy.as_str().as_bytes()),
    }
}
