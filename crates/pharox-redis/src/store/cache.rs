//! The connection data of leased proxies, cached per pool for one
//! proxy-data generation (bumped by every proxy change): an acquire whose
//! generation matches the client's skips sending the proxy's JSON.

use std::collections::HashMap;
use std::sync::Arc;

use pharox_core::{LeasedProxy, PoolId};

/// Pools and proxies remembered at most, so the cache stays small.
const CACHE_POOLS: usize = 1_024;
const CACHE_PROXIES: usize = 200_000;

#[derive(Default)]
pub(crate) struct ProxyCache {
    pools: parking_lot::Mutex<HashMap<String, PoolCache>>,
}

struct PoolCache {
    generation: i64,
    proxies: HashMap<u64, Arc<LeasedProxy>>,
}

impl ProxyCache {
    /// The generation cached for `pool`, if any.
    pub fn generation(&self, pool: &PoolId) -> Option<i64> {
        self.pools.lock().get(pool.as_str()).map(|c| c.generation)
    }

    pub fn remember(&self, pool: &PoolId, generation: i64, seq: u64, proxy: &Arc<LeasedProxy>) {
        let mut cache = self.pools.lock();
        if cache.len() >= CACHE_POOLS && !cache.contains_key(pool.as_str()) {
            cache.clear();
        }
        let entry = cache
            .entry(pool.as_str().to_owned())
            .or_insert_with(|| PoolCache {
                generation,
                proxies: HashMap::new(),
            });
        if entry.generation != generation || entry.proxies.len() >= CACHE_PROXIES {
            entry.generation = generation;
            entry.proxies.clear();
        }
        entry.proxies.insert(seq, proxy.clone());
    }

    pub fn recall(&self, pool: &PoolId, generation: i64, seq: u64) -> Option<Arc<LeasedProxy>> {
        let cache = self.pools.lock();
        let entry = cache.get(pool.as_str())?;
        (entry.generation == generation)
            .then(|| entry.proxies.get(&seq).cloned())
            .flatten()
    }

    pub fn forget(&self, pool: &PoolId) {
        self.pools.lock().remove(pool.as_str());
    }
}
