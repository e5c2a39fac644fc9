//! [`RedisStorage`]: the Storage contract on Redis. This file holds the
//! store, its connections and the [`Storage`] entry points; each concern
//! lives in its own module: `acquire` (the acquire script's calls and
//! completing a grant), `lease` (release, renew, cleanup), `admin`
//! (consumers, pools, proxies, health results), `stats` (counters and
//! snapshots), `history` (the stats stream), `plan` (filter planning and a
//! proxy's index data), `cache` (leased proxies' connection data), `bench`
//! (benchmark helpers).

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use deadpool_redis::redis::{self, ScriptInvocation};
use pharox_core::model::Consumer;
use pharox_core::{
    AcquireRequest, ConsumerName, Error, HealthCheckResult, Lease, LeaseId, LeaseRef, PoolId,
    PoolSnapshot, PoolStatsSnapshot, Proxy, ProxyFilters, ProxyId, ProxyPool, ReleaseOutcome,
    Result, Selector, Storage, validate,
};

use self::cache::ProxyCache;
use crate::config::RedisConfig;
use crate::conn::Conn;
use crate::keys::{GlobalKeys, PoolKeys};

mod acquire;
mod admin;
mod bench;
mod cache;
mod history;
mod lease;
mod plan;
mod stats;

#[cfg(feature = "testkit")]
pub(crate) use plan::index_keys;

/// A pharox store on Redis. Cheap to clone (shares its connections).
///
/// Every operation is one Lua script (one round trip), except the admin
/// calls that first read what they change and retry if it changed meanwhile,
/// and filtered acquires whose search spans several calls (see
/// `lua/acquire.lua`).
#[derive(Clone)]
pub struct RedisStorage {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Conn,
    config: RedisConfig,
    global: GlobalKeys,
    cache: ProxyCache,
    #[cfg(feature = "testkit")]
    faults: crate::testkit::AfterGrantFaults,
}

impl std::fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStorage")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl RedisStorage {
    /// Connects (opening the configured connections now, so a wrong URL or a
    /// server that is down fails here), checks the server's settings once
    /// (Redis 7.0 or newer; a `maxmemory-policy` that cannot evict pharox's
    /// keys: see [`RedisConfig::allow_eviction`](RedisConfig#structfield.allow_eviction))
    /// and returns the store.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a bad configuration, a server older than 7.0
    /// (field `redis version`) or an `allkeys-*` eviction policy (field
    /// `redis maxmemory-policy`); a retryable error if the server cannot be
    /// reached within the connect timeout.
    pub async fn connect(config: RedisConfig) -> Result<Self> {
        if config.prefix.is_empty() || config.prefix.contains(['{', '}']) {
            return Err(Error::invalid(
                "prefix",
                "must be non-empty and contain no '{' or '}'",
            ));
        }
        if config.reclaim_batch > validate::MAX_CLEANUP_BATCH {
            return Err(Error::invalid(
                "reclaim_batch",
                format!("must be at most {}", validate::MAX_CLEANUP_BATCH),
            ));
        }
        if let Some(ack) = config.acknowledge {
            if ack.replicas == 0 {
                return Err(Error::invalid("acknowledge replicas", "must be at least 1"));
            }
            // WAIT's timeout is in ms, and 0 would wait for ever.
            if ack.timeout < Duration::from_millis(1) || ack.timeout >= config.response_timeout {
                return Err(Error::invalid(
                    "acknowledge timeout",
                    format!(
                        "must be at least 1 ms and below the response timeout ({:?})",
                        config.response_timeout
                    ),
                ));
            }
        }
        let conn = Conn::open(&config).await?;
        crate::settings::check(&conn, &config).await?;
        tracing::debug!(url = %config.redacted_url(), mode = ?config.mode, "connected to redis");
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
                global: GlobalKeys::new(&config.prefix),
                config,
                cache: ProxyCache::default(),
                #[cfg(feature = "testkit")]
                faults: Default::default(),
            }),
        })
    }

    /// The settings this store was opened with.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// Faults to inject after an acquire script granted a lease (tests).
    #[cfg(feature = "testkit")]
    pub fn after_grant_faults(&self) -> &crate::testkit::AfterGrantFaults {
        &self.inner.faults
    }

    fn keys(&self, pool: &PoolId) -> PoolKeys {
        PoolKeys::new(&self.inner.config.prefix, pool)
    }

    fn timeout(&self) -> Duration {
        self.inner.config.response_timeout
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        inv: &ScriptInvocation<'_>,
        op: &'static str,
    ) -> Result<T> {
        self.inner.conn.invoke(inv, op, self.timeout()).await
    }

    /// Runs a script that writes a lease (an acquire, a renew): with
    /// [`RedisConfig::acknowledge`] set, followed by `WAIT` in the same
    /// round trip, and `Err` naming the shortfall when fewer replicas
    /// acknowledged than wanted (as `Ok(Err(acknowledged))`: the script's
    /// answer is returned too, for the caller to undo or report).
    async fn run_acked<T: redis::FromRedisValue>(
        &self,
        inv: &ScriptInvocation<'_>,
        op: &'static str,
    ) -> Result<(T, std::result::Result<(), u32>)> {
        let Some(ack) = self.inner.config.acknowledge else {
            return Ok((self.run(inv, op).await?, Ok(())));
        };
        let (v, acked) = self
            .inner
            .conn
            .invoke_acked(inv, op, self.timeout(), ack)
            .await?;
        Ok((
            v,
            if acked >= ack.replicas {
                Ok(())
            } else {
                Err(acked)
            },
        ))
    }

    /// The error of a lease write that `acknowledged` replicas confirmed,
    /// fewer than the configuration wants: retryable, and saying that the
    /// write may or may not survive a failover (`what` says what became of it).
    fn not_acknowledged(&self, op: &'static str, acknowledged: u32, what: &str) -> Error {
        let ack = self
            .inner
            .config
            .acknowledge
            .expect("acknowledged writes are configured");
        Error::Interrupted {
            source: format!(
                "{op}: acknowledged by {acknowledged} of the {} replicas wanted within {:?} \
                 (WAIT); {what}",
                ack.replicas, ack.timeout
            )
            .into(),
        }
    }

    async fn cmd<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd, op: &'static str) -> Result<T> {
        self.inner.conn.query(cmd, op, self.timeout()).await
    }

    /// `host:port` of the primary a `redis+sentinel://` store sends its
    /// calls to now (`None` for a store on one server's URL).
    pub fn sentinel_primary(&self) -> Option<String> {
        self.inner.conn.sentinel_primary()
    }

    /// How many times a `redis+sentinel://` store has followed a failover
    /// to another primary since it connected (0 for one server's URL).
    pub fn sentinel_switches(&self) -> u64 {
        self.inner.conn.sentinel_switches()
    }

    /// Runs a raw command on the store's connections (admin and tests).
    pub async fn raw_command<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        self.cmd(cmd, "command").await
    }
}

impl Storage for RedisStorage {
    async fn ensure_consumer(&self, name: &ConsumerName) -> Result<Consumer> {
        admin::ensure_consumer(self, name).await
    }

    async fn list_consumers(&self) -> Result<Vec<Consumer>> {
        admin::list_consumers(self).await
    }

    async fn upsert_pool(&self, pool: &ProxyPool) -> Result<ProxyPool> {
        admin::upsert_pool(self, pool).await
    }

    async fn get_pool(&self, pool: &PoolId) -> Result<Option<ProxyPool>> {
        admin::get_pool(self, pool).await
    }

    async fn list_pools(&self) -> Result<Vec<ProxyPool>> {
        admin::list_pools(self).await
    }

    async fn remove_pool(&self, pool: &PoolId) -> Result<bool> {
        admin::remove_pool(self, pool).await
    }

    async fn upsert_proxy(&self, proxy: &Proxy) -> Result<Proxy> {
        admin::upsert_proxy(self, proxy).await
    }

    async fn get_proxy(&self, pool: &PoolId, proxy: &ProxyId) -> Result<Option<Proxy>> {
        admin::get_proxy(self, pool, proxy).await
    }

    async fn list_proxies(&self, pool: &PoolId) -> Result<Vec<Proxy>> {
        admin::list_proxies(self, pool).await
    }

    async fn remove_proxy(&self, pool: &PoolId, proxy: &ProxyId) -> Result<bool> {
        admin::remove_proxy(self, pool, proxy).await
    }

    async fn find_available_proxy(
        &self,
        pool: &PoolId,
        filters: &ProxyFilters,
        selector: Selector,
    ) -> Result<Option<Proxy>> {
        acquire::find_available_proxy(self, pool, filters, selector).await
    }

    async fn acquire(&self, request: &AcquireRequest) -> Result<Option<Lease>> {
        acquire::acquire(self, request).await
    }

    async fn get_lease(&self, pool: &PoolId, lease: &LeaseId) -> Result<Option<Lease>> {
        lease::get_lease(self, pool, lease).await
    }

    async fn release(&self, lease: &Lease) -> Result<ReleaseOutcome> {
        lease::release(self, lease).await
    }

    async fn release_by_ref(&self, lease: &LeaseRef) -> Result<Option<(Lease, ReleaseOutcome)>> {
        lease::release_by_ref(self, lease).await
    }

    async fn renew(&self, lease: &Lease, duration: TimeDelta) -> Result<Lease> {
        lease::renew(self, lease, duration).await
    }

    async fn renew_by_ref(&self, lease: &LeaseRef, duration: TimeDelta) -> Result<Lease> {
        lease::renew_by_ref(self, lease, duration).await
    }

    async fn cleanup_expired(&self, pool: &PoolId, limit: usize) -> Result<usize> {
        lease::cleanup_expired(self, pool, limit).await
    }

    async fn pool_stats(&self, pool: &PoolId) -> Result<PoolStatsSnapshot> {
        stats::pool_stats(self, pool).await
    }

    async fn pool_snapshot(&self, pool: &PoolId) -> Result<PoolSnapshot> {
        stats::pool_snapshot(self, pool).await
    }

    async fn stats_history(&self, pool: &PoolId, limit: usize) -> Result<Vec<PoolStatsSnapshot>> {
        history::recorded(self, pool, limit).await
    }

    async fn apply_health_check_result(&self, result: &HealthCheckResult) -> Result<Option<Proxy>> {
        admin::apply_health_check_result(self, result).await
    }
}
