//! Seeding helpers that work on any [`Storage`], mirroring pharox for Python's
//! `bootstrap_consumer`, `bootstrap_pool` and `bootstrap_proxy`.

use crate::model::{Consumer, ConsumerName, PoolId, Proxy, ProxyPool, ProxyProtocol};
use crate::{Result, Storage};

/// Registers a consumer (idempotent).
pub async fn bootstrap_consumer<S: Storage>(
    storage: &S,
    name: impl Into<ConsumerName>,
) -> Result<Consumer> {
    storage.ensure_consumer(&name.into()).await
}

/// Creates a pool whose name is its id, or returns it unchanged if it exists.
pub async fn bootstrap_pool<S: Storage>(storage: &S, id: impl Into<PoolId>) -> Result<ProxyPool> {
    let id = id.into();
    match storage.get_pool(&id).await? {
        Some(pool) => Ok(pool),
        None => storage.upsert_pool(&ProxyPool::new(id)).await,
    }
}

/// Adds an active proxy to a pool and returns it as stored.
pub async fn bootstrap_proxy<S: Storage>(
    storage: &S,
    pool: &ProxyPool,
    host: impl Into<String>,
    port: u16,
    protocol: ProxyProtocol,
) -> Result<Proxy> {
    storage
        .upsert_proxy(&Proxy::new(pool.id.clone(), host, port, protocol))
        .await
}

/// Adds or updates many proxies; returns them as stored.
pub async fn bootstrap_proxies<S: Storage>(
    storage: &S,
    proxies: impl IntoIterator<Item = Proxy>,
) -> Result<Vec<Proxy>> {
    let mut stored = Vec::new();
    for proxy in proxies {
        stored.push(storage.upsert_proxy(&proxy).await?);
    }
    Ok(stored)
}
