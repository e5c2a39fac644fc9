//! [`RedisStorage`]: the Storage contract on Redis.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use deadpool_redis::redis::{self, Script, ScriptInvocation, Value};
use pharox_core::model::{Consumer, LeaseStatus};
use pharox_core::{
    AcquireRequest, ConsumerName, Error, HealthCheckResult, Lease, LeasedProxy, PoolId,
    PoolSnapshot, PoolStatsSnapshot, Proxy, ProxyFilters, ProxyId, ProxyPool, ProxyStatus,
    ReleaseOutcome, Result, Selector, Storage, datetime_from_ms, validate,
};
use uuid::Uuid;

use crate::config::RedisConfig;
use crate::conn::Conn;
use crate::keys::{GlobalKeys, IndexField, PoolKeys};
use crate::lease_id::{LeaseParts, NONCE_LIMIT};
use crate::{MAX_CONCURRENCY, MAX_SORTED_LATENCY_MS, scripts};

/// Redis's GEO index stores latitudes only up to this (Web Mercator).
const GEO_MAX_LATITUDE: f64 = 85.051_128_78;
/// Latency key of proxies never measured: after every measured one.
const UNMEASURED_LATENCY_KEY: u32 = MAX_SORTED_LATENCY_MS + 1;
/// Optimistic admin updates retried this often before giving up.
const ADMIN_ATTEMPTS: usize = 32;

/// A pharox store on Redis. Cheap to clone (shares its connections).
///
/// Every operation is one Lua script (one round trip), except the admin
/// calls that first read what they change and retry if it changed meanwhile.
#[derive(Clone)]
pub struct RedisStorage {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Conn,
    config: RedisConfig,
    global: GlobalKeys,
    /// Connection data of leased proxies, per pool, valid for one
    /// proxy-data generation (bumped by every proxy change): an acquire
    /// whose generation matches skips sending the proxy's JSON.
    cache: parking_lot::Mutex<HashMap<String, PoolCache>>,
}

struct PoolCache {
    generation: i64,
    proxies: HashMap<u64, Arc<LeasedProxy>>,
}

/// Pools and proxies remembered at most, so the cache stays small.
const CACHE_POOLS: usize = 1_024;
const CACHE_PROXIES: usize = 200_000;

impl Inner {
    fn remember(&self, pool: &PoolId, generation: i64, seq: u64, proxy: &Arc<LeasedProxy>) {
        let mut cache = self.cache.lock();
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

    fn recall(&self, pool: &PoolId, generation: i64, seq: u64) -> Option<Arc<LeasedProxy>> {
        let cache = self.cache.lock();
        let entry = cache.get(pool.as_str())?;
        (entry.generation == generation)
            .then(|| entry.proxies.get(&seq).cloned())
            .flatten()
    }
}

impl std::fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStorage")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn corrupt(what: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::Corrupt(what.into())
}

/// An optimistic admin update that lost the race `ADMIN_ATTEMPTS` times.
fn gave_up(op: &str, what: &str) -> Error {
    Error::Backend {
        source: format!("{op}: the {what} kept changing; gave up").into(),
    }
}

/// A stored record that does not parse, described without quoting it: a
/// serde message may quote the offending value, and a proxy record holds
/// its credentials (I8). Only the kind of error and its position are kept.
fn unparsable(what: &str, e: &serde_json::Error) -> Error {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Data => "JSON of the wrong shape",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    corrupt(format!(
        "stored {what}: {kind} at line {} column {}",
        e.line(),
        e.column()
    ))
}

/// The kind of a reply, for errors: never its content, which may hold
/// stored proxy records and so credentials (I8).
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Int(_) => "an integer",
        Value::BulkString(_) | Value::SimpleString(_) => "a string",
        Value::Array(_) => "an array",
        Value::Okay => "OK",
        Value::ServerError(_) => "an error reply",
        _ => "another kind of reply",
    }
}

fn int(v: &Value) -> Result<i64> {
    match v {
        Value::Int(n) => Ok(*n),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| corrupt("expected an integer")),
        _ => Err(corrupt(format!("expected an integer, got {}", kind_of(v)))),
    }
}

fn text(v: &Value) -> Result<&str> {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b).map_err(|_| corrupt("invalid UTF-8")),
        Value::SimpleString(s) => Ok(s),
        _ => Err(corrupt("expected a string")),
    }
}

fn array(v: Value) -> Result<Vec<Value>> {
    match v {
        Value::Array(items) => Ok(items),
        other => Err(corrupt(format!(
            "expected an array, got {}",
            kind_of(&other)
        ))),
    }
}

fn parse_proxy(json: &Value, load: i64) -> Result<Proxy> {
    let mut proxy: Proxy =
        serde_json::from_str(text(json)?).map_err(|e| unparsable("proxy", &e))?;
    proxy.current_leases = u32::try_from(load).map_err(|_| corrupt("lease count"))?;
    Ok(proxy)
}

fn u64_of(n: i64, what: &'static str) -> Result<u64> {
    u64::try_from(n).map_err(|_| corrupt(what))
}

fn lease_member(parts: LeaseParts, acquired_ms: i64, consumer: &str) -> String {
    format!(
        "{}:{}:{}:{acquired_ms}:{consumer}",
        parts.seq, parts.token, parts.nonce
    )
}

fn index_values(p: &Proxy) -> Vec<(IndexField, String)> {
    let mut v = Vec::with_capacity(5);
    if let Some(x) = &p.country {
        v.push((IndexField::Country, x.clone()));
    }
    if let Some(x) = &p.source {
        v.push((IndexField::Source, x.clone()));
    }
    if let Some(x) = &p.city {
        v.push((IndexField::City, x.clone()));
    }
    if let Some(x) = &p.isp {
        v.push((IndexField::Isp, x.clone()));
    }
    if let Some(x) = p.asn {
        v.push((IndexField::Asn, x.to_string()));
    }
    v
}

fn latency_key(p: &Proxy) -> u32 {
    p.latency_ms
        .map_or(UNMEASURED_LATENCY_KEY, |l| l.min(MAX_SORTED_LATENCY_MS))
}

fn capacity(p: &Proxy) -> u32 {
    p.max_concurrency.unwrap_or(MAX_CONCURRENCY)
}

/// How an acquire finds candidates for a filter.
enum Plan {
    /// No filter: the selector's own index.
    All,
    /// Every member of an equality index matches: no verification.
    Exact(String),
    /// Candidates from an equality index, verified with the filter.
    Verify(String),
    /// Candidates from a GEO radius search, verified.
    Geo { lon: f64, lat: f64, radius_km: f64 },
    /// Every proxy with room, verified.
    Scan,
}

fn plan(keys: &PoolKeys, f: &ProxyFilters) -> Plan {
    if f.is_empty() {
        return Plan::All;
    }
    let eq: Option<(IndexField, String)> = f
        .asn
        .map(|a| (IndexField::Asn, a.to_string()))
        .or_else(|| f.city.clone().map(|v| (IndexField::City, v)))
        .or_else(|| f.isp.clone().map(|v| (IndexField::Isp, v)))
        .or_else(|| f.source.clone().map(|v| (IndexField::Source, v)))
        .or_else(|| f.country.clone().map(|v| (IndexField::Country, v)));
    if let Some((field, value)) = eq {
        let key = keys.index(field, &value);
        let only_that = [
            f.asn.is_some(),
            f.city.is_some(),
            f.isp.is_some(),
            f.source.is_some(),
            f.country.is_some(),
        ]
        .into_iter()
        .filter(|x| *x)
        .count()
            == 1
            && f.geo.is_none()
            && f.all_of.is_empty()
            && f.any_of.is_empty()
            && f.none_of.is_empty();
        return if only_that {
            Plan::Exact(key)
        } else {
            Plan::Verify(key)
        };
    }
    if let Some(g) = f.geo
        && g.latitude.abs() <= GEO_MAX_LATITUDE
    {
        return Plan::Geo {
            lon: g.longitude,
            lat: g.latitude,
            radius_km: g.radius_km,
        };
    }
    Plan::Scan
}

fn selector_code(s: Selector) -> &'static str {
    match s {
        Selector::FirstAvailable => "f",
        Selector::RoundRobin => "r",
        Selector::LeastUsed => "l",
        Selector::LowestLatency => "t",
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
        let conn = Conn::open(&config).await?;
        crate::settings::check(&conn, &config).await?;
        tracing::debug!(url = %config.redacted_url(), mode = ?config.mode, "connected to redis");
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
                global: GlobalKeys::new(&config.prefix),
                config,
                cache: parking_lot::Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The settings this store was opened with.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
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

    async fn cmd<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd, op: &'static str) -> Result<T> {
        self.inner.conn.query(cmd, op, self.timeout()).await
    }

    /// Sends a trivial `EVALSHA` (`return 1`) through the same connections:
    /// the ceiling any script call can reach, for benchmarks.
    pub async fn ping_script(&self) -> Result<()> {
        static TRIVIAL: std::sync::LazyLock<Script> =
            std::sync::LazyLock::new(|| Script::new("return 1"));
        let _: i64 = self.run(&TRIVIAL.prepare_invoke(), "ping").await?;
        Ok(())
    }

    /// Appends `snapshot` to its pool's stats history, a stream capped at
    /// about `max_len` entries (`XADD ... MAXLEN ~`). The history goes
    /// with the pool when it is removed.
    pub async fn record_stats(&self, snapshot: &PoolStatsSnapshot, max_len: usize) -> Result<()> {
        validate::pool_id(&snapshot.pool)?;
        if max_len == 0 {
            return Err(Error::invalid("max_len", "must be at least 1"));
        }
        let json = serde_json::to_string(snapshot)
            .map_err(|e| Error::Corrupt(format!("encoding a stats snapshot: {e}").into()))?;
        let _: String = self
            .cmd(
                redis::cmd("XADD")
                    .arg(self.keys(&snapshot.pool).history())
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(max_len)
                    .arg("*")
                    .arg("s")
                    .arg(json),
                "record_stats",
            )
            .await?;
        Ok(())
    }

    /// The newest `count` snapshots of the pool's stats history, newest first.
    pub async fn stats_history(
        &self,
        pool: &PoolId,
        count: usize,
    ) -> Result<Vec<PoolStatsSnapshot>> {
        validate::pool_id(pool)?;
        let entries: Vec<(String, Vec<(String, String)>)> = self
            .cmd(
                redis::cmd("XREVRANGE")
                    .arg(self.keys(pool).history())
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(count),
                "stats_history",
            )
            .await?;
        entries
            .into_iter()
            .filter_map(|(_, fields)| fields.into_iter().find(|(f, _)| f == "s"))
            .map(|(_, json)| {
                serde_json::from_str(&json)
                    .map_err(|e| Error::Corrupt(format!("a stats history entry: {e}").into()))
            })
            .collect()
    }

    /// Runs a raw command on the store's connections (admin and tests).
    pub async fn raw_command<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        self.cmd(cmd, "command").await
    }

    fn pool_keys_inv<'a>(script: &'a Script, k: &PoolKeys) -> ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        inv.key(&k.hot)
            .key(&k.exp)
            .key(&k.free)
            .key(&k.load)
            .key(&k.lat)
            .key(&k.lsc);
        inv
    }

    /// Reads a proxy: `Ok(None)` if it or its pool does not exist (a write
    /// that follows then learns which from its own script). Returns the raw
    /// stored JSON too, for optimistic updates.
    async fn read_proxy(&self, k: &PoolKeys, id: &ProxyId) -> Result<Option<(Proxy, String)>> {
        let mut inv = scripts::GET_PROXY.prepare_invoke();
        inv.key(&k.hot).key(&k.ids).key(&k.px).arg(id.as_str());
        let r = array(self.run(&inv, "get_proxy").await?)?;
        match int(r.first().ok_or_else(|| corrupt("empty reply"))?)? {
            -1 | 0 => Ok(None),
            _ => {
                let (load, json) = (int(&r[1])?, &r[2]);
                let raw = text(json)?.to_owned();
                Ok(Some((parse_proxy(json, load)?, raw)))
            }
        }
    }

    fn stats_from(pool: &PoolId, v: &[Value]) -> Result<PoolStatsSnapshot> {
        if v.len() != 8 {
            return Err(corrupt("stats reply"));
        }
        let n = |i: usize, what| int(&v[i]).and_then(|x| u64_of(x, what));
        let (total_leases, active_leases, expired) =
            (n(6, "tokens")?, n(5, "leases")?, n(7, "expired")?);
        let released = total_leases
            .checked_sub(active_leases + expired)
            .ok_or_else(|| corrupt("lease counters"))?;
        Ok(PoolStatsSnapshot {
            pool: pool.clone(),
            total: n(1, "total")?,
            active: n(2, "active")?,
            available: n(3, "available")?,
            leased: n(4, "leased")?,
            active_leases,
            total_leases,
            released_leases: released,
            expired_leases: expired,
            collected_at: datetime_from_ms(int(&v[0])?),
        })
    }

    fn build_lease(
        pool: &PoolId,
        consumer: &ConsumerName,
        parts: LeaseParts,
        now: i64,
        expires: i64,
        proxy: Arc<LeasedProxy>,
    ) -> Result<Lease> {
        Ok(Lease {
            id: parts
                .encode()
                .ok_or_else(|| corrupt("token or proxy sequence beyond the lease id's range"))?,
            token: parts.token,
            pool: pool.clone(),
            consumer: consumer.clone(),
            proxy,
            status: LeaseStatus::Active,
            acquired_at: datetime_from_ms(now),
            expires_at: datetime_from_ms(expires),
            released_at: None,
        })
    }

    /// Runs the acquire script; `find` only looks.
    async fn select(
        &self,
        request: &AcquireRequest,
        find: bool,
    ) -> Result<Option<(Vec<Value>, u64)>> {
        validate::acquire_request(request)?;
        if request.filters.has_predicate() {
            return Err(Error::UnsupportedFilter(
                "closure predicates cannot run inside Redis",
            ));
        }
        let k = self.keys(&request.pool);
        let plan = plan(&k, &request.filters);
        let nonce = fastrand::u64(..NONCE_LIMIT);
        let mut inv = Self::pool_keys_inv(&scripts::ACQUIRE, &k);
        inv.key(&k.px);
        // Whether the script evaluates the filter itself (it gets the JSON).
        let (mode, verified) = match &plan {
            Plan::All => ("", false),
            Plan::Exact(key) => {
                inv.key(key);
                ("x", false)
            }
            Plan::Verify(key) => {
                inv.key(key);
                ("v", true)
            }
            Plan::Geo { .. } => {
                inv.key(&k.geo).key(&k.polar);
                ("g", true)
            }
            Plan::Scan => ("s", true),
        };
        let filter_json = if verified {
            serde_json::to_string(&request.filters)
                .map_err(|e| Error::invalid("filters", e.to_string()))?
        } else {
            String::new()
        };
        let duration_ms = request.duration.num_milliseconds();
        let cached = if find {
            String::new()
        } else {
            self.inner
                .cache
                .lock()
                .get(request.pool.as_str())
                .map_or_else(String::new, |c| c.generation.to_string())
        };
        inv.arg(selector_code(request.selector))
            .arg(duration_ms)
            .arg(request.consumer.as_str())
            .arg(nonce)
            .arg(self.inner.config.reclaim_batch)
            .arg(if find { "1" } else { "0" })
            .arg(cached);
        if !mode.is_empty() {
            inv.arg(mode).arg(filter_json);
        }
        if let Plan::Geo {
            lon,
            lat,
            radius_km,
        } = plan
        {
            // Redis measures with a larger Earth radius (6372.797 km) and
            // rounds positions to 52-bit geohashes: search a little wider,
            // then the script checks the exact haversine distance.
            let search = radius_km * 1.0003 + 0.01;
            inv.arg(lon.to_string())
                .arg(lat.to_string())
                .arg(search.to_string());
        }
        let r = array(
            self.run(&inv, if find { "find" } else { "acquire" })
                .await?,
        )?;
        match int(r.first().ok_or_else(|| corrupt("empty reply"))?)? {
            -1 => Err(Error::PoolNotFound(request.pool.clone())),
            0 => Ok(None),
            _ => Ok(Some((r, nonce))),
        }
    }

    /// The connection data of proxy `seq` when the cache lacks it; `None`
    /// if the proxy is gone.
    async fn fetch_leased(
        &self,
        pool: &PoolId,
        generation: i64,
        seq: u64,
    ) -> Result<Option<Arc<LeasedProxy>>> {
        let k = self.keys(pool);
        let json: Option<String> = self
            .cmd(redis::cmd("HGET").arg(&k.px).arg(seq), "acquire")
            .await?;
        let Some(json) = json else {
            return Ok(None);
        };
        let proxy: Proxy = serde_json::from_str(&json).map_err(|e| unparsable("proxy", &e))?;
        let proxy = Arc::new(LeasedProxy::of(&proxy));
        self.inner.remember(pool, generation, seq, &proxy);
        Ok(Some(proxy))
    }

    async fn ix_members(&self, k: &PoolKeys) -> Result<Vec<String>> {
        self.cmd(redis::cmd("SMEMBERS").arg(&k.ixkeys), "remove_pool")
            .await
    }
}

impl Storage for RedisStorage {
    async fn ensure_consumer(&self, name: &ConsumerName) -> Result<Consumer> {
        validate::consumer_name(name)?;
        let key = &self.inner.global.consumers;
        let fresh = Consumer {
            id: Uuid::new_v4(),
            name: name.clone(),
        };
        let json = serde_json::to_string(&fresh).map_err(|e| corrupt(e.to_string()))?;
        let _: i64 = self
            .cmd(
                redis::cmd("HSETNX").arg(key).arg(name.as_str()).arg(json),
                "ensure_consumer",
            )
            .await?;
        let stored: String = self
            .cmd(
                redis::cmd("HGET").arg(key).arg(name.as_str()),
                "ensure_consumer",
            )
            .await?;
        serde_json::from_str(&stored).map_err(|e| unparsable("consumer", &e))
    }

    async fn list_consumers(&self) -> Result<Vec<Consumer>> {
        let all: Vec<String> = self
            .cmd(
                redis::cmd("HVALS").arg(&self.inner.global.consumers),
                "list_consumers",
            )
            .await?;
        all.iter()
            .map(|s| serde_json::from_str(s).map_err(|e| unparsable("consumer", &e)))
            .collect()
    }

    async fn upsert_pool(&self, pool: &ProxyPool) -> Result<ProxyPool> {
        validate::pool(pool)?;
        let k = self.keys(&pool.id);
        let mut inv = scripts::CREATE_POOL.prepare_invoke();
        // A random first generation: see create_pool.lua.
        inv.key(&k.hot)
            .key(&k.retired)
            .arg(fastrand::u64(..1 << 40));
        let _: i64 = self.run(&inv, "upsert_pool").await?;
        let json = serde_json::to_string(pool).map_err(|e| corrupt(e.to_string()))?;
        let _: i64 = self
            .cmd(
                redis::cmd("HSET")
                    .arg(&self.inner.global.pools)
                    .arg(pool.id.as_str())
                    .arg(json),
                "upsert_pool",
            )
            .await?;
        Ok(pool.clone())
    }

    async fn get_pool(&self, pool: &PoolId) -> Result<Option<ProxyPool>> {
        validate::pool_id(pool)?;
        let json: Option<String> = self
            .cmd(
                redis::cmd("HGET")
                    .arg(&self.inner.global.pools)
                    .arg(pool.as_str()),
                "get_pool",
            )
            .await?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| unparsable("pool", &e)))
            .transpose()
    }

    async fn list_pools(&self) -> Result<Vec<ProxyPool>> {
        let all: Vec<String> = self
            .cmd(
                redis::cmd("HVALS").arg(&self.inner.global.pools),
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

    async fn remove_pool(&self, pool: &PoolId) -> Result<bool> {
        validate::pool_id(pool)?;
        let k = self.keys(pool);
        for _ in 0..ADMIN_ATTEMPTS {
            let ix = self.ix_members(&k).await?;
            let mut inv = scripts::REMOVE_POOL.prepare_invoke();
            inv.key(&k.hot).key(&k.retired).key(&k.ixkeys);
            for key in [
                &k.exp, &k.free, &k.load, &k.lat, &k.lsc, &k.ids, &k.px, &k.geo, &k.polar,
            ] {
                inv.key(key);
            }
            inv.key(k.history());
            for key in &ix {
                inv.key(key);
            }
            inv.arg(ix.len());
            let r: i64 = self.run(&inv, "remove_pool").await?;
            if r == -2 {
                continue;
            }
            let _: i64 = self
                .cmd(
                    redis::cmd("HDEL")
                        .arg(&self.inner.global.pools)
                        .arg(pool.as_str()),
                    "remove_pool",
                )
                .await?;
            return Ok(r == 1);
        }
        Err(gave_up("remove_pool", "pool"))
    }

    async fn upsert_proxy(&self, proxy: &Proxy) -> Result<Proxy> {
        validate::proxy(proxy)?;
        if proxy.max_concurrency.is_some_and(|m| m > MAX_CONCURRENCY) {
            return Err(Error::invalid(
                "proxy.max_concurrency",
                format!("the Redis store allows at most {MAX_CONCURRENCY}"),
            ));
        }
        let k = self.keys(&proxy.pool);
        let mut stored_form = proxy.clone();
        stored_form.current_leases = 0;
        let json = serde_json::to_string(&stored_form).map_err(|e| corrupt(e.to_string()))?;
        for _ in 0..ADMIN_ATTEMPTS {
            let old = self.read_proxy(&k, &proxy.id).await?;
            let old_ix: Vec<String> = old
                .as_ref()
                .map(|(p, _)| {
                    index_values(p)
                        .into_iter()
                        .map(|(f, v)| k.index(f, &v))
                        .collect()
                })
                .unwrap_or_default();
            let mut inv = scripts::UPSERT_PROXY.prepare_invoke();
            for key in k.admin_keys() {
                inv.key(key);
            }
            for key in &old_ix {
                inv.key(key);
            }
            for (f, v) in index_values(proxy) {
                inv.key(k.index(f, &v));
            }
            let (lon, lat) = match (proxy.longitude, proxy.latitude) {
                (Some(lon), Some(lat)) => (lon.to_string(), lat.to_string()),
                _ => (String::new(), String::new()),
            };
            inv.arg(proxy.id.as_str())
                .arg(old.as_ref().map_or("", |(_, raw)| raw.as_str()))
                .arg(&json)
                .arg(if proxy.status == ProxyStatus::Active {
                    "1"
                } else {
                    "0"
                })
                .arg(capacity(proxy))
                .arg(latency_key(proxy))
                .arg(lon)
                .arg(lat)
                .arg(old_ix.len())
                .arg(validate::MAX_CLEANUP_BATCH);
            let r = array(self.run(&inv, "upsert_proxy").await?)?;
            match int(r.first().ok_or_else(|| corrupt("empty reply"))?)? {
                -1 => return Err(Error::PoolNotFound(proxy.pool.clone())),
                -2 => continue,
                -3 => {
                    return Err(Error::invalid(
                        "proxy.max_concurrency",
                        format!(
                            "is below the proxy's {} live leases; release them first",
                            int(&r[1])?
                        ),
                    ));
                }
                _ => {
                    let mut stored = proxy.clone();
                    stored.current_leases =
                        u32::try_from(int(&r[1])?).map_err(|_| corrupt("lease count"))?;
                    return Ok(stored);
                }
            }
        }
        Err(gave_up("upsert_proxy", "proxy"))
    }

    async fn get_proxy(&self, pool: &PoolId, proxy: &ProxyId) -> Result<Option<Proxy>> {
        validate::pool_id(pool)?;
        let k = self.keys(pool);
        Ok(self.read_proxy(&k, proxy).await?.map(|(p, _)| p))
    }

    async fn list_proxies(&self, pool: &PoolId) -> Result<Vec<Proxy>> {
        validate::pool_id(pool)?;
        let k = self.keys(pool);
        let mut inv = scripts::PROXIES.prepare_invoke();
        inv.key(&k.hot).key(&k.ids).key(&k.px);
        let r = array(self.run(&inv, "list_proxies").await?)?;
        if r.len() == 1 && int(&r[0])? == -1 {
            return Err(Error::PoolNotFound(pool.clone()));
        }
        r.chunks(3)
            .map(|c| match c {
                [_, load, json] => parse_proxy(json, int(load)?),
                _ => Err(corrupt("proxy list reply")),
            })
            .collect()
    }

    async fn remove_proxy(&self, pool: &PoolId, proxy: &ProxyId) -> Result<bool> {
        validate::pool_id(pool)?;
        let k = self.keys(pool);
        for _ in 0..ADMIN_ATTEMPTS {
            let Some((old, raw)) = self.read_proxy(&k, proxy).await? else {
                return Ok(false);
            };
            let mut inv = scripts::REMOVE_PROXY.prepare_invoke();
            for key in k.admin_keys() {
                inv.key(key);
            }
            for (f, v) in index_values(&old) {
                inv.key(k.index(f, &v));
            }
            inv.arg(proxy.as_str()).arg(raw);
            let r: i64 = self.run(&inv, "remove_proxy").await?;
            match r {
                -2 => continue,
                1 => return Ok(true),
                _ => return Ok(false),
            }
        }
        Err(gave_up("remove_proxy", "proxy"))
    }

    async fn find_available_proxy(
        &self,
        pool: &PoolId,
        filters: &ProxyFilters,
        selector: Selector,
    ) -> Result<Option<Proxy>> {
        let request = AcquireRequest::new(pool.clone())
            .filters(filters.clone())
            .selector(selector);
        match self.select(&request, true).await? {
            None => Ok(None),
            Some((r, _)) if r.len() == 6 => parse_proxy(&r[4], int(&r[5])?).map(Some),
            Some(_) => Err(corrupt("find reply")),
        }
    }

    async fn acquire(&self, request: &AcquireRequest) -> Result<Option<Lease>> {
        for _ in 0..2 {
            let Some((r, nonce)) = self.select(request, false).await? else {
                return Ok(None);
            };
            let (seq, token, now, generation) = match r.as_slice() {
                [seq, token, now, generation, ..] => (
                    u64_of(int(seq)?, "sequence")?,
                    u64_of(int(token)?, "token")?,
                    int(now)?,
                    int(generation)?,
                ),
                _ => return Err(corrupt("acquire reply")),
            };
            let parts = LeaseParts { token, seq, nonce };
            let proxy = match r.get(4) {
                Some(json) => {
                    let proxy = Arc::new(LeasedProxy::of(&parse_proxy(json, 0)?));
                    self.inner.remember(&request.pool, generation, seq, &proxy);
                    Some(proxy)
                }
                None => match self.inner.recall(&request.pool, generation, seq) {
                    Some(p) => Some(p),
                    None => self.fetch_leased(&request.pool, generation, seq).await?,
                },
            };
            let Some(proxy) = proxy else {
                // The proxy was removed between the lease and the lookup, so
                // the lease already ended; drop the cache and try again.
                self.inner.cache.lock().remove(request.pool.as_str());
                continue;
            };
            let expires = now + request.duration.num_milliseconds();
            return Self::build_lease(&request.pool, &request.consumer, parts, now, expires, proxy)
                .map(Some);
        }
        Err(Error::Backend {
            source: "acquire: leased proxies kept disappearing".into(),
        })
    }

    async fn release(&self, lease: &Lease) -> Result<ReleaseOutcome> {
        let Some(parts) = LeaseParts::decode(&lease.id).filter(|p| p.token == lease.token) else {
            return Ok(ReleaseOutcome::NotHeld);
        };
        if validate::pool_id(&lease.pool).is_err() || lease.consumer.as_str().is_empty() {
            return Ok(ReleaseOutcome::NotHeld);
        }
        let k = self.keys(&lease.pool);
        let mut inv = Self::pool_keys_inv(&scripts::RELEASE, &k);
        inv.arg(lease_member(
            parts,
            lease.acquired_at.timestamp_millis(),
            lease.consumer.as_str(),
        ));
        let r: i64 = self.run(&inv, "release").await?;
        Ok(match r {
            1 => ReleaseOutcome::Released,
            2 => ReleaseOutcome::Expired,
            _ => ReleaseOutcome::NotHeld,
        })
    }

    async fn renew(&self, lease: &Lease, duration: TimeDelta) -> Result<Lease> {
        validate::lease_duration(duration)?;
        let lost = || Error::LeaseLost { lease: lease.id };
        let Some(parts) = LeaseParts::decode(&lease.id).filter(|p| p.token == lease.token) else {
            return Err(lost());
        };
        if validate::pool_id(&lease.pool).is_err() || lease.consumer.as_str().is_empty() {
            return Err(lost());
        }
        let k = self.keys(&lease.pool);
        let mut inv = Self::pool_keys_inv(&scripts::RENEW, &k);
        inv.arg(lease_member(
            parts,
            lease.acquired_at.timestamp_millis(),
            lease.consumer.as_str(),
        ))
        .arg(duration.num_milliseconds());
        let r = array(self.run(&inv, "renew").await?)?;
        match r.as_slice() {
            [_, deadline] => Ok(Lease {
                expires_at: datetime_from_ms(int(deadline)?),
                status: LeaseStatus::Active,
                ..lease.clone()
            }),
            _ => Err(lost()),
        }
    }

    async fn cleanup_expired(&self, pool: &PoolId, limit: usize) -> Result<usize> {
        validate::pool_id(pool)?;
        validate::cleanup_limit(limit)?;
        let k = self.keys(pool);
        let mut inv = Self::pool_keys_inv(&scripts::CLEANUP, &k);
        inv.arg(limit);
        let r: i64 = self.run(&inv, "cleanup").await?;
        if r < 0 {
            return Err(Error::PoolNotFound(pool.clone()));
        }
        usize::try_from(r).map_err(|_| corrupt("cleanup count"))
    }

    async fn pool_stats(&self, pool: &PoolId) -> Result<PoolStatsSnapshot> {
        validate::pool_id(pool)?;
        let k = self.keys(pool);
        let mut inv = scripts::STATS.prepare_invoke();
        inv.key(&k.hot).key(&k.exp).key(&k.free).key(&k.ids);
        let r = array(self.run(&inv, "pool_stats").await?)?;
        if r.len() == 1 {
            return Err(Error::PoolNotFound(pool.clone()));
        }
        Self::stats_from(pool, &r)
    }

    async fn pool_snapshot(&self, pool: &PoolId) -> Result<PoolSnapshot> {
        validate::pool_id(pool)?;
        let k = self.keys(pool);
        let mut inv = scripts::SNAPSHOT.prepare_invoke();
        inv.key(&k.hot)
            .key(&k.exp)
            .key(&k.free)
            .key(&k.ids)
            .key(&k.px);
        let r = array(self.run(&inv, "pool_snapshot").await?)?;
        if r.len() == 1 {
            return Err(Error::PoolNotFound(pool.clone()));
        }
        let mut parts = r.into_iter();
        let (Some(stats), Some(proxies), Some(leases)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(corrupt("snapshot reply"));
        };
        let stats = Self::stats_from(pool, &array(stats)?)?;
        let proxies = array(proxies)?;
        let mut by_seq = std::collections::HashMap::new();
        let mut list = Vec::with_capacity(proxies.len() / 3);
        for c in proxies.chunks(3) {
            let [seq, load, json] = c else {
                return Err(corrupt("snapshot proxies"));
            };
            let p = parse_proxy(json, int(load)?)?;
            by_seq.insert(int(seq)?, Arc::new(LeasedProxy::of(&p)));
            list.push(p);
        }
        let mut out = Vec::new();
        for c in array(leases)?.chunks(2) {
            let [member, deadline] = c else {
                return Err(corrupt("snapshot leases"));
            };
            let member = text(member)?;
            let mut f = member.splitn(5, ':');
            let mut num = || -> Result<i64> {
                f.next()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| corrupt("lease member"))
            };
            let (seq, token, nonce, acquired) = (num()?, num()?, num()?, num()?);
            let consumer = f.next().ok_or_else(|| corrupt("lease member"))?;
            let deadline: f64 = text(deadline)?
                .parse()
                .map_err(|_| corrupt("lease deadline"))?;
            let proxy = by_seq
                .get(&seq)
                .cloned()
                .ok_or_else(|| corrupt("lease on an unknown proxy sequence"))?;
            let parts = LeaseParts {
                token: u64_of(token, "token")?,
                seq: u64_of(seq, "sequence")?,
                nonce: u64_of(nonce, "nonce")?,
            };
            out.push(Self::build_lease(
                pool,
                &ConsumerName::from(consumer),
                parts,
                acquired,
                deadline as i64,
                proxy,
            )?);
        }
        Ok(PoolSnapshot {
            pool: self
                .get_pool(pool)
                .await?
                .unwrap_or_else(|| ProxyPool::new(pool.clone())),
            taken_at: stats.collected_at,
            stats,
            proxies: list,
            leases: out,
        })
    }

    async fn apply_health_check_result(&self, result: &HealthCheckResult) -> Result<Option<Proxy>> {
        validate::pool_id(&result.pool)?;
        let k = self.keys(&result.pool);
        for _ in 0..ADMIN_ATTEMPTS {
            let Some((current, raw)) = self.read_proxy(&k, &result.proxy).await? else {
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
            let mut inv = Self::pool_keys_inv(&scripts::HEALTH, &k);
            inv.key(&k.ids).key(&k.px);
            inv.arg(result.proxy.as_str())
                .arg(raw)
                .arg(json)
                .arg(if updated.status == ProxyStatus::Active {
                    "1"
                } else {
                    "0"
                })
                .arg(capacity(&updated))
                .arg(latency_key(&updated));
            let r = array(self.run(&inv, "health").await?)?;
            match int(r.first().ok_or_else(|| corrupt("empty reply"))?)? {
                -1 | 0 => return Ok(None),
                -2 => continue,
                _ => {
                    updated.current_leases =
                        u32::try_from(int(&r[1])?).map_err(|_| corrupt("lease count"))?;
                    return Ok(Some(updated));
                }
            }
        }
        Err(gave_up("health", "proxy"))
    }
}

impl RedisStorage {
    /// Microseconds of CPU Redis has spent running scripts (`EVALSHA` and
    /// `EVAL` in `INFO commandstats`), server-wide. Benchmarks read it before
    /// and after a window to get Redis's own cost per operation.
    pub async fn script_cpu_usec(&self) -> Result<u64> {
        let info: String = self
            .cmd(redis::cmd("INFO").arg("commandstats"), "info")
            .await?;
        Ok(info
            .lines()
            .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
            .filter_map(|l| {
                l.split([':', ','])
                    .find_map(|f| f.strip_prefix("usec="))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .sum())
    }
}
