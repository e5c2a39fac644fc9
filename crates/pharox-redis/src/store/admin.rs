//! Admin calls: consumers, pools, proxies and health results (optimistic
//! updates that read what they change and retry if it changed meanwhile).

use deadpool_redis::redis;
use pharox_core::model::Consumer;
use pharox_core::{
    ConsumerName, Error, HealthCheckResult, PoolId, Proxy, ProxyId, ProxyPool, ProxyStatus, Result,
    validate,
};
use uuid::Uuid;

use super::RedisStorage;
use super::plan::{index_keys, latency_key};
use crate::keys::PoolKeys;
use crate::layout;
use crate::queries::{self, HealthReply, RemoveReply, UpsertArgs, UpsertReply};
use crate::reply::{corrupt, parse_proxy, text, unparsable};

/// Optimistic admin updates retried this often before giving up.
pub(super) const ADMIN_ATTEMPTS: usize = 32;
/// Proxies per `list_proxies.lua` call: a few milliseconds of Redis each.
pub(super) const LIST_PAGE: usize = 250;

/// An optimistic admin update that lost the race `ADMIN_ATTEMPTS` times.
pub(super) fn gave_up(op: &str, what: &str) -> Error {
    Error::Backend {
        source: format!("{op}: the {what} kept changing; gave up").into(),
    }
}

impl RedisStorage {
    /// Reads a proxy: `Ok(None)` if it or its pool does not exist (a write
    /// that follows then learns which from its own script). Returns the raw
    /// stored JSON too, for optimistic updates.
    pub(super) async fn read_proxy(
        &self,
        k: &PoolKeys,
        id: &ProxyId,
    ) -> Result<Option<(Proxy, String)>> {
        let got = queries::got_proxy(
            self.run(&queries::get_proxy(k, id.as_str()), "get_proxy")
                .await?,
        )?;
        match got {
            None => Ok(None),
            Some((load, json)) => {
                let raw = text(&json)?.to_owned();
                Ok(Some((parse_proxy(&json, load)?, raw)))
            }
        }
    }

    pub(super) async fn ix_members(&self, k: &PoolKeys) -> Result<Vec<String>> {
        self.cmd(
            redis::cmd("SMEMBERS").arg(&k.value_index_keys),
            "remove_pool",
        )
        .await
    }
}

pub(super) async fn ensure_consumer(store: &RedisStorage, name: &ConsumerName) -> Result<Consumer> {
    validate::consumer_name(name)?;
    let key = &store.inner.global.consumers;
    let fresh = Consumer {
        id: Uuid::new_v4(),
        name: name.clone(),
    };
    let json = serde_json::to_string(&fresh).map_err(|e| corrupt(e.to_string()))?;
    let _: i64 = store
        .cmd(
            redis::cmd("HSETNX").arg(key).arg(name.as_str()).arg(json),
            "ensure_consumer",
        )
        .await?;
    let stored: String = store
        .cmd(
            redis::cmd("HGET").arg(key).arg(name.as_str()),
            "ensure_consumer",
        )
        .await?;
    serde_json::from_str(&stored).map_err(|e| unparsable("consumer", &e))
}

pub(super) async fn list_consumers(store: &RedisStorage) -> Result<Vec<Consumer>> {
    let all: Vec<String> = store
        .cmd(
            redis::cmd("HVALS").arg(&store.inner.global.consumers),
            "list_consumers",
        )
        .await?;
    all.iter()
        .map(|s| serde_json::from_str(s).map_err(|e| unparsable("consumer", &e)))
        .collect()
}

pub(super) async fn upsert_pool(store: &RedisStorage, pool: &ProxyPool) -> Result<ProxyPool> {
    validate::pool(pool)?;
    let k = store.keys(&pool.id);
    // A random first generation: see create_pool.lua.
    let inv = queries::create_pool(&k, fastrand::u64(..layout::GENERATION_END));
    let _: i64 = store.run(&inv, "upsert_pool").await?;
    let json = serde_json::to_string(pool).map_err(|e| corrupt(e.to_string()))?;
    let _: i64 = store
        .cmd(
            redis::cmd("HSET")
                .arg(&store.inner.global.pools)
                .arg(pool.id.as_str())
                .arg(json),
            "upsert_pool",
        )
        .await?;
    Ok(pool.clone())
}

pub(super) async fn get_pool(store: &RedisStorage, pool: &PoolId) -> Result<Option<ProxyPool>> {
    validate::pool_id(pool)?;
    let json: Option<String> = store
        .cmd(
            redis::cmd("HGET")
                .arg(&store.inner.global.pools)
                .arg(pool.as_str()),
            "get_pool",
        )
        .await?;
    json.map(|j| serde_json::from_str(&j).map_err(|e| unparsable("pool", &e)))
        .transpose()
}

pub(super) async fn list_pools(store: &RedisStorage) -> Result<Vec<ProxyPool>> {
    let all: Vec<String> = store
        .cmd(
            redis::cmd("HVALS").arg(&store.inner.global.pools),
            "list_pools",
        )
        .await?;
    let mut pools = all
        .iter()
        .map(|j| serde_json::from_str(j).map_err(|e| unparsable("pool", &e)))
        .collect::<Result<Vec<ProxyPool>>>()?;
    pools.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    Ok(pools)
}

pub(super) async fn remove_pool(store: &RedisStorage, pool: &PoolId) -> Result<bool> {
    validate::pool_id(pool)?;
    let k = store.keys(pool);
    for _ in 0..ADMIN_ATTEMPTS {
        let ix = store.ix_members(&k).await?;
        let r: i64 = store
            .run(&queries::remove_pool(&k, &ix), "remove_pool")
            .await?;
        let reply = RemoveReply::decode(r);
        if reply == RemoveReply::Changed {
            continue;
        }
        let _: i64 = store
            .cmd(
                redis::cmd("HDEL")
                    .arg(&store.inner.global.pools)
                    .arg(pool.as_str()),
                "remove_pool",
            )
            .await?;
        return Ok(reply == RemoveReply::Removed);
    }
    Err(gave_up("remove_pool", "pool"))
}

pub(super) async fn upsert_proxy(store: &RedisStorage, proxy: &Proxy) -> Result<Proxy> {
    validate::proxy(proxy)?;
    let k = store.keys(&proxy.pool);
    let mut stored_form = proxy.clone();
    stored_form.current_leases = 0;
    let json = serde_json::to_string(&stored_form).map_err(|e| corrupt(e.to_string()))?;
    let new_index = index_keys(&k, proxy);
    for _ in 0..ADMIN_ATTEMPTS {
        let old = store.read_proxy(&k, &proxy.id).await?;
        let old_index = old
            .as_ref()
            .map(|(p, _)| index_keys(&k, p))
            .unwrap_or_default();
        let inv = queries::upsert_proxy(
            &k,
            &UpsertArgs {
                id: proxy.id.as_str(),
                expected: old.as_ref().map_or("", |(_, raw)| raw.as_str()),
                json: &json,
                active: proxy.status == ProxyStatus::Active,
                capacity: proxy.capacity(),
                latency_key: latency_key(proxy),
                location: proxy.longitude.zip(proxy.latitude),
                old_index: &old_index,
                new_index: &new_index,
                reclaim_batch: validate::MAX_CLEANUP_BATCH,
            },
        );
        match UpsertReply::decode(store.run(&inv, "upsert_proxy").await?)? {
            UpsertReply::NoPool => return Err(Error::PoolNotFound(proxy.pool.clone())),
            UpsertReply::Changed => continue,
            UpsertReply::BelowLoad(load) => {
                return Err(Error::invalid(
                    "proxy.max_concurrency",
                    format!("is below the proxy's {load} live leases; release them first"),
                ));
            }
            UpsertReply::PoolFull(held) => {
                validate::room_for_proxy(&proxy.pool, usize::try_from(held).unwrap_or(0))?;
                return Err(corrupt("upsert reply: pool full below its limit"));
            }
            UpsertReply::OutOfSequences(last) => {
                return Err(Error::invalid(
                    "pool",
                    format!(
                        "`{}` has used all {} proxy sequences it may hand out (up to {last}); \
                         remove the pool and create it again to start over",
                        proxy.pool,
                        last + 1 - layout::FIRST_SEQ as i64
                    ),
                ));
            }
            UpsertReply::Stored(load) => {
                let mut stored = proxy.clone();
                stored.current_leases = u32::try_from(load).map_err(|_| corrupt("lease count"))?;
                return Ok(stored);
            }
        }
    }
    Err(gave_up("upsert_proxy", "proxy"))
}

pub(super) async fn get_proxy(
    store: &RedisStorage,
    pool: &PoolId,
    proxy: &ProxyId,
) -> Result<Option<Proxy>> {
    validate::pool_id(pool)?;
    let k = store.keys(pool);
    Ok(store.read_proxy(&k, proxy).await?.map(|(p, _)| p))
}

pub(super) async fn list_proxies(store: &RedisStorage, pool: &PoolId) -> Result<Vec<Proxy>> {
    validate::pool_id(pool)?;
    let k = store.keys(pool);
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let inv = queries::list_proxies(&k, after, LIST_PAGE);
        let Some((next, items)) = queries::proxy_page(store.run(&inv, "list_proxies").await?)?
        else {
            return Err(Error::PoolNotFound(pool.clone()));
        };
        for (load, json) in &items {
            out.push(parse_proxy(json, *load)?);
        }
        if next == 0 {
            return Ok(out);
        }
        after = next;
    }
}

pub(super) async fn remove_proxy(
    store: &RedisStorage,
    pool: &PoolId,
    proxy: &ProxyId,
) -> Result<bool> {
    validate::pool_id(pool)?;
    let k = store.keys(pool);
    for _ in 0..ADMIN_ATTEMPTS {
        let Some((old, raw)) = store.read_proxy(&k, proxy).await? else {
            return Ok(false);
        };
        let inv = queries::remove_proxy(&k, proxy.as_str(), &raw, &index_keys(&k, &old));
        let r: i64 = store.run(&inv, "remove_proxy").await?;
        match RemoveReply::decode(r) {
            RemoveReply::Changed => continue,
            RemoveReply::Removed => return Ok(true),
            RemoveReply::Absent => return Ok(false),
        }
    }
    Err(gave_up("remove_proxy", "proxy"))
}

pub(super) async fn apply_health_check_result(
    store: &RedisStorage,
    result: &HealthCheckResult,
) -> Result<Option<Proxy>> {
    validate::pool_id(&result.pool)?;
    let k = store.keys(&result.pool);
    for _ in 0..ADMIN_ATTEMPTS {
        let Some((current, raw)) = store.read_proxy(&k, &result.proxy).await? else {
            return Ok(None);
        };
        if current
            .checked_at
            .is_some_and(|last| result.checked_at < last)
        {
            return Ok(Some(current));
        }
        let mut updated = current.clone();
        updated.status = result.status;
        updated.checked_at = Some(result.checked_at);
        if let Some(l) = result.latency_ms {
            updated.latency_ms = Some(l);
        }
        let mut stored_form = updated.clone();
        stored_form.current_leases = 0;
        let json = serde_json::to_string(&stored_form).map_err(|e| corrupt(e.to_string()))?;
        let inv = queries::health(
            &k,
            result.proxy.as_str(),
            &raw,
            &json,
            updated.status == ProxyStatus::Active,
            updated.capacity(),
            latency_key(&updated),
        );
        match HealthReply::decode(store.run(&inv, "health").await?)? {
            HealthReply::NoProxy => return Ok(None),
            HealthReply::Changed => continue,
            HealthReply::Applied { load } => {
                updated.current_leases = u32::try_from(load).map_err(|_| corrupt("lease count"))?;
                return Ok(Some(updated));
            }
        }
    }
    Err(gave_up("health", "proxy"))
}
