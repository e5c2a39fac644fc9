//! [`RedisStorage`]: the Storage contract on Redis.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use deadpool_redis::redis::{self, Script, ScriptInvocation, Value};
use pharox_core::model::{Consumer, LeaseStatus};
use pharox_core::{
    AcquireRequest, ConsumerName, Error, HealthCheckResult, Lease, LeaseId, LeaseRef, LeasedProxy,
    PoolId, PoolSnapshot, PoolStatsSnapshot, Proxy, ProxyFilters, ProxyId, ProxyPool, ProxyStatus,
    ReleaseOutcome, Result, Selector, Storage, datetime_from_ms, validate,
};
use uuid::Uuid;

use crate::MAX_SORTED_LATENCY_MS;
use crate::cache::ProxyCache;
use crate::config::RedisConfig;
use crate::conn::Conn;
use crate::keys::{GlobalKeys, IndexField, PoolKeys};
use crate::layout::{self, LeaseMember};
use crate::lease_id::{LeaseParts, NONCE_LIMIT};
use crate::queries::{self, AcquireArgs, AcquireReply, Plan, UpsertArgs, UpsertReply};
use crate::reply::{array, corrupt, int, parse_proxy, text, u64_of, unparsable};

/// Latency key of proxies never measured: after every measured one.
const UNMEASURED_LATENCY_KEY: u32 = MAX_SORTED_LATENCY_MS + 1;
/// Optimistic admin updates retried this often before giving up.
const ADMIN_ATTEMPTS: usize = 32;
/// Proxies per `list_proxies.lua` call: a few milliseconds of Redis each.
const LIST_PAGE: usize = 250;
/// Calls one filtered acquire may take: each examines at least 15
/// candidates of an index of at most `layout::MAX_PROXIES`, in at most two
/// round-robin phases and two passes. A safety net against a search that
/// never ends, not a limit any search reaches.
const MAX_ACQUIRE_CALLS: usize = 4 * (layout::MAX_PROXIES / 15 + 2);

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

/// An optimistic admin update that lost the race `ADMIN_ATTEMPTS` times.
fn gave_up(op: &str, what: &str) -> Error {
    Error::Backend {
        source: format!("{op}: the {what} kept changing; gave up").into(),
    }
}

fn lease_member(seq: u64, parts: LeaseParts, acquired_ms: i64, consumer: &str) -> String {
    LeaseMember {
        seq,
        token: parts.token,
        nonce: parts.nonce,
        acquired_ms,
        consumer,
    }
    .build()
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

/// The `by_value` keys a proxy belongs to.
pub(crate) fn index_keys(k: &PoolKeys, p: &Proxy) -> Vec<String> {
    index_values(p)
        .into_iter()
        .map(|(f, v)| k.by_value(f, &v))
        .collect()
}

fn latency_key(p: &Proxy) -> u32 {
    p.latency_ms
        .map_or(UNMEASURED_LATENCY_KEY, |l| l.min(MAX_SORTED_LATENCY_MS))
}

/// How an acquire finds the candidates of filter `f`.
fn plan(keys: &PoolKeys, f: &ProxyFilters) -> Plan {
    if f.is_empty() {
        return Plan::All;
    }
    // The equality index of the rarest kind of value: its members hold
    // every match.
    let eq: Option<(IndexField, String)> = f
        .asn
        .map(|a| (IndexField::Asn, a.to_string()))
        .or_else(|| f.city.clone().map(|v| (IndexField::City, v)))
        .or_else(|| f.isp.clone().map(|v| (IndexField::Isp, v)))
        .or_else(|| f.source.clone().map(|v| (IndexField::Source, v)))
        .or_else(|| f.country.clone().map(|v| (IndexField::Country, v)));
    if let Some((field, value)) = eq {
        let key = keys.by_value(field, &value);
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
        && g.latitude.abs() <= crate::geo::LAT_LIMIT
    {
        return Plan::geo(g.latitude, g.longitude, g.radius_km);
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

/// A lease the acquire script granted, before its proxy data is known.
struct Granted {
    seq: u64,
    parts: LeaseParts,
    now_ms: i64,
    generation: i64,
    proxy: Option<Value>,
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
                    .arg(self.keys(&snapshot.pool).stats_history())
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
                    .arg(self.keys(pool).stats_history())
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
    /// Reads a proxy: `Ok(None)` if it or its pool does not exist (a write
    /// that follows then learns which from its own script). Returns the raw
    /// stored JSON too, for optimistic updates.
    async fn read_proxy(&self, k: &PoolKeys, id: &ProxyId) -> Result<Option<(Proxy, String)>> {
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

    /// The script argument naming `lease` (`token:nonce`), or `None` when
    /// no lease of this store can match it: an id of another layout or of
    /// another pool's tag, a token other than the id's, an invalid pool id.
    fn ref_arg(lease: &LeaseRef) -> Option<String> {
        let parts = LeaseParts::decode(&lease.id)?;
        let matches = parts.tag == lease.pool.lease_tag()
            && lease.token.is_none_or(|t| t == parts.token)
            && parts.token > 0
            && validate::pool_id(&lease.pool).is_ok();
        matches.then(|| queries::lease_ref(parts.token, parts.nonce))
    }

    /// The lease a script answered (its stored member, deadline and proxy).
    fn lease_from_reply(pool: &PoolId, r: &queries::LeaseReply) -> Result<Lease> {
        let m = LeaseMember::parse(&r.member).ok_or_else(|| corrupt("lease member"))?;
        let proxy = Arc::new(LeasedProxy::of(&parse_proxy(&r.proxy, 0)?));
        let parts = LeaseParts {
            tag: pool.lease_tag(),
            token: m.token,
            nonce: m.nonce,
        };
        Self::build_lease(
            pool,
            &ConsumerName::from(m.consumer),
            parts,
            m.acquired_ms,
            r.deadline_ms,
            proxy,
        )
    }

    /// Runs the acquire script until it answers (a filtered search may take
    /// several calls; none but the last grants anything); `find` only looks.
    /// Returns the answer and the nonce the lease was granted with.
    async fn select(
        &self,
        request: &AcquireRequest,
        find: bool,
    ) -> Result<Option<(AcquireReply, u64)>> {
        validate::acquire_request(request)?;
        if request.filters.has_predicate() {
            return Err(Error::UnsupportedFilter(
                "closure predicates cannot run inside Redis",
            ));
        }
        let k = self.keys(&request.pool);
        let plan = plan(&k, &request.filters);
        let filter_json = if plan.verifies() {
            serde_json::to_string(&request.filters)
                .map_err(|e| Error::invalid("filters", e.to_string()))?
        } else {
            String::new()
        };
        let nonce = fastrand::u64(..NONCE_LIMIT);
        let cached_generation = if find {
            None
        } else {
            self.inner.cache.generation(&request.pool)
        };
        let op = if find { "find" } else { "acquire" };
        let mut position = String::new();
        for _ in 0..MAX_ACQUIRE_CALLS {
            let inv = queries::acquire(
                &k,
                &AcquireArgs {
                    selector: selector_code(request.selector),
                    duration_ms: request.duration.num_milliseconds(),
                    consumer: request.consumer.as_str(),
                    nonce,
                    reclaim_batch: self.inner.config.reclaim_batch,
                    find,
                    cached_generation,
                    plan: &plan,
                    filter_json: &filter_json,
                    position: &position,
                },
            );
            match AcquireReply::decode(self.run(&inv, op).await?)? {
                AcquireReply::Continue(next) => position = next,
                AcquireReply::NoPool => return Err(Error::PoolNotFound(request.pool.clone())),
                AcquireReply::NoProxy => return Ok(None),
                answer => return Ok(Some((answer, nonce))),
            }
        }
        Err(Error::Backend {
            source: format!(
                "{op}: the filtered search did not finish in {MAX_ACQUIRE_CALLS} calls"
            )
            .into(),
        })
    }

    /// The connection data of proxy `seq` when the cache lacks it; `None`
    /// if the proxy is gone. A retryable failure is tried once more: the
    /// lease is already granted and this read is safe to repeat.
    async fn fetch_leased(
        &self,
        pool: &PoolId,
        generation: i64,
        seq: u64,
    ) -> Result<Option<Arc<LeasedProxy>>> {
        let k = self.keys(pool);
        let hget = redis::cmd("HGET").arg(&k.proxy_by_seq).arg(seq).clone();
        let read = || async {
            #[cfg(feature = "testkit")]
            if let Some(e) = self.inner.faults.follow_up_read() {
                return Err(e);
            }
            self.cmd::<Option<String>>(&hget, "acquire").await
        };
        let json = match read().await {
            Err(e) if e.is_retryable() => read().await?,
            other => other?,
        };
        let Some(json) = json else {
            return Ok(None);
        };
        let proxy: Proxy = serde_json::from_str(&json).map_err(|e| unparsable("proxy", &e))?;
        let proxy = Arc::new(LeasedProxy::of(&proxy));
        self.inner.cache.remember(pool, generation, seq, &proxy);
        Ok(Some(proxy))
    }

    /// Completes a granted lease: its proxy's connection data, from the
    /// reply, the cache or one read. `Ok(None)` if the proxy was removed
    /// since (the lease ended with it).
    async fn complete(&self, request: &AcquireRequest, g: &Granted) -> Result<Option<Lease>> {
        let proxy = match &g.proxy {
            Some(json) => {
                let proxy = Arc::new(LeasedProxy::of(&parse_proxy(json, 0)?));
                self.inner
                    .cache
                    .remember(&request.pool, g.generation, g.seq, &proxy);
                proxy
            }
            None => match self.inner.cache.recall(&request.pool, g.generation, g.seq) {
                Some(p) => p,
                None => match self
                    .fetch_leased(&request.pool, g.generation, g.seq)
                    .await?
                {
                    Some(p) => p,
                    None => return Ok(None),
                },
            },
        };
        let expires = g.now_ms + request.duration.num_milliseconds();
        Self::build_lease(
            &request.pool,
            &request.consumer,
            g.parts,
            g.now_ms,
            expires,
            proxy,
        )
        .map(Some)
    }

    /// Completing a granted lease failed with `e`: releases the lease so it
    /// does not leak, and returns the error to report. A lease was granted,
    /// so the error never says "not sent": a retryable one becomes
    /// `Interrupted` (the manager does not repeat an acquire after it).
    async fn give_back(&self, request: &AcquireRequest, g: &Granted, e: Error) -> Error {
        let k = self.keys(&request.pool);
        let member = lease_member(g.seq, g.parts, g.now_ms, request.consumer.as_str());
        let release = || async {
            #[cfg(feature = "testkit")]
            if let Some(e) = self.inner.faults.give_back() {
                return Err(e);
            }
            self.run::<i64>(&queries::release(&k, &member), "release")
                .await
        };
        let released = release().await;
        let until = datetime_from_ms(g.now_ms + request.duration.num_milliseconds());
        let what = match &released {
            Ok(_) => "it was released again, so nothing is held".to_owned(),
            Err(r) => {
                format!("releasing it failed too ({r}): it is held until it expires at {until}")
            }
        };
        tracing::warn!(pool = %request.pool, token = g.parts.token, error = %e, "acquire: completing a granted lease failed; {what}");
        if e.is_retryable() {
            Error::Interrupted {
                source: format!(
                    "acquire: a lease was granted but completing it failed ({e}); {what}"
                )
                .into(),
            }
        } else {
            e
        }
    }

    /// A [`PoolSnapshot`] from what one transaction read: the counters
    /// string (up to the highest live sequence), every proxy record by
    /// sequence, the live leases with their deadlines, the proxy count, the
    /// free count and the Redis clock.
    #[allow(clippy::too_many_arguments)]
    async fn snapshot_from(
        &self,
        pool: &PoolId,
        counters: &[u8],
        mut records: Vec<(u64, String)>,
        leases: Vec<(String, f64)>,
        total: u64,
        available: u64,
        now_ms: i64,
    ) -> Result<PoolSnapshot> {
        let slot = |s: layout::Slot| layout::read_slot(counters, s as u64);
        if slot(layout::Slot::Exists) != 1 {
            return Err(Error::PoolNotFound(pool.clone()));
        }
        let n = |v: i64, what| u64_of(v, what);
        let total_leases = n(
            slot(layout::Slot::Token) - slot(layout::Slot::TokenBase),
            "tokens",
        )?;
        let expired = n(slot(layout::Slot::Expired), "expired")?;
        let active_leases = leases.len() as u64;
        let stats = PoolStatsSnapshot {
            pool: pool.clone(),
            total,
            active: n(slot(layout::Slot::Active), "active")?,
            available,
            leased: n(slot(layout::Slot::Leased), "leased")?,
            active_leases,
            total_leases,
            released_leases: total_leases
                .checked_sub(active_leases + expired)
                .ok_or_else(|| corrupt("lease counters"))?,
            expired_leases: expired,
            collected_at: datetime_from_ms(now_ms),
        };
        records.sort_unstable_by_key(|(seq, _)| *seq);
        let mut by_seq = std::collections::HashMap::with_capacity(records.len());
        let mut list = Vec::with_capacity(records.len());
        for (seq, json) in &records {
            let word = layout::Word::unpack(layout::read_slot(counters, *seq))
                .ok_or_else(|| corrupt("proxy word"))?;
            let mut p: Proxy = serde_json::from_str(json).map_err(|e| unparsable("proxy", &e))?;
            p.current_leases = word.load;
            by_seq.insert(*seq, Arc::new(LeasedProxy::of(&p)));
            list.push(p);
        }
        let mut out = Vec::with_capacity(leases.len());
        for (member, deadline) in &leases {
            let m = LeaseMember::parse(member).ok_or_else(|| corrupt("lease member"))?;
            let proxy = by_seq
                .get(&m.seq)
                .cloned()
                .ok_or_else(|| corrupt("lease on an unknown proxy sequence"))?;
            let parts = LeaseParts {
                tag: pool.lease_tag(),
                token: m.token,
                nonce: m.nonce,
            };
            out.push(Self::build_lease(
                pool,
                &ConsumerName::from(m.consumer),
                parts,
                m.acquired_ms,
                *deadline as i64,
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

    async fn ix_members(&self, k: &PoolKeys) -> Result<Vec<String>> {
        self.cmd(
            redis::cmd("SMEMBERS").arg(&k.value_index_keys),
            "remove_pool",
        )
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
        // A random first generation: see create_pool.lua.
        let inv = queries::create_pool(&k, fastrand::u64(..layout::GENERATION_END));
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
            let r: i64 = self
                .run(&queries::remove_pool(&k, &ix), "remove_pool")
                .await?;
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
        let k = self.keys(&proxy.pool);
        let mut stored_form = proxy.clone();
        stored_form.current_leases = 0;
        let json = serde_json::to_string(&stored_form).map_err(|e| corrupt(e.to_string()))?;
        let new_index = index_keys(&k, proxy);
        for _ in 0..ADMIN_ATTEMPTS {
            let old = self.read_proxy(&k, &proxy.id).await?;
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
            match UpsertReply::decode(self.run(&inv, "upsert_proxy").await?)? {
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
                    stored.current_leases =
                        u32::try_from(load).map_err(|_| corrupt("lease count"))?;
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
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let inv = queries::list_proxies(&k, after, LIST_PAGE);
            let Some((next, items)) = queries::proxy_page(self.run(&inv, "list_proxies").await?)?
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

    async fn remove_proxy(&self, pool: &PoolId, proxy: &ProxyId) -> Result<bool> {
        validate::pool_id(pool)?;
        let k = self.keys(pool);
        for _ in 0..ADMIN_ATTEMPTS {
            let Some((old, raw)) = self.read_proxy(&k, proxy).await? else {
                return Ok(false);
            };
            let inv = queries::remove_proxy(&k, proxy.as_str(), &raw, &index_keys(&k, &old));
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
            Some((AcquireReply::Found { proxy, load }, _)) => parse_proxy(&proxy, load).map(Some),
            Some(_) => Err(corrupt("find reply")),
        }
    }

    async fn acquire(&self, request: &AcquireRequest) -> Result<Option<Lease>> {
        for _ in 0..2 {
            let Some((answer, nonce)) = self.select(request, false).await? else {
                return Ok(None);
            };
            let AcquireReply::Leased {
                seq,
                token,
                now_ms,
                generation,
                proxy,
            } = answer
            else {
                return Err(corrupt("acquire reply"));
            };
            let granted = Granted {
                seq,
                parts: LeaseParts {
                    tag: request.pool.lease_tag(),
                    token,
                    nonce,
                },
                now_ms,
                generation,
                proxy,
            };
            match self.complete(request, &granted).await {
                Ok(Some(lease)) => return Ok(Some(lease)),
                // The proxy was removed between the lease and the lookup, so
                // the lease already ended; drop the cache and try again.
                Ok(None) => self.inner.cache.forget(&request.pool),
                Err(e) => return Err(self.give_back(request, &granted, e).await),
            }
        }
        Err(Error::Backend {
            source: "acquire: leased proxies kept disappearing".into(),
        })
    }

    async fn get_lease(&self, pool: &PoolId, lease: &LeaseId) -> Result<Option<Lease>> {
        validate::pool_id(pool)?;
        let Some(arg) = Self::ref_arg(&LeaseRef::new(pool.clone(), *lease)) else {
            return Ok(None);
        };
        let k = self.keys(pool);
        let reply = self.run(&queries::get_lease(&k, &arg), "get_lease").await?;
        match queries::lease_reply(reply, false)? {
            Some(r) => Self::lease_from_reply(pool, &r).map(Some),
            None => Ok(None),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<ReleaseOutcome> {
        let Some(arg) = Self::ref_arg(&LeaseRef::from(lease)) else {
            return Ok(ReleaseOutcome::NotHeld);
        };
        let k = self.keys(&lease.pool);
        let r: i64 = self.run(&queries::release(&k, &arg), "release").await?;
        Ok(queries::release_outcome(r))
    }

    async fn release_by_ref(&self, lease: &LeaseRef) -> Result<Option<(Lease, ReleaseOutcome)>> {
        let Some(arg) = Self::ref_arg(lease) else {
            return Ok(None);
        };
        let k = self.keys(&lease.pool);
        let reply = self
            .run(&queries::release_returning(&k, &arg), "release")
            .await?;
        match queries::lease_reply(reply, false)? {
            Some(r) => {
                let ended = Self::lease_from_reply(&lease.pool, &r)?;
                Ok(Some((ended, queries::release_outcome(r.head))))
            }
            None => Ok(None),
        }
    }

    async fn renew(&self, lease: &Lease, duration: TimeDelta) -> Result<Lease> {
        validate::lease_duration(duration)?;
        let lost = || Error::LeaseLost { lease: lease.id };
        let arg = Self::ref_arg(&LeaseRef::from(lease)).ok_or_else(lost)?;
        let k = self.keys(&lease.pool);
        let inv = queries::renew(&k, &arg, duration.num_milliseconds());
        match queries::renewed_until(self.run(&inv, "renew").await?)? {
            Some(deadline) => Ok(Lease {
                expires_at: datetime_from_ms(deadline),
                status: LeaseStatus::Active,
                ..lease.clone()
            }),
            None => Err(lost()),
        }
    }

    async fn renew_by_ref(&self, lease: &LeaseRef, duration: TimeDelta) -> Result<Lease> {
        validate::lease_duration(duration)?;
        let lost = || Error::LeaseLost { lease: lease.id };
        let arg = Self::ref_arg(lease).ok_or_else(lost)?;
        let k = self.keys(&lease.pool);
        let inv = queries::renew_returning(&k, &arg, duration.num_milliseconds());
        match queries::lease_reply(self.run(&inv, "renew").await?, true)? {
            Some(r) => Self::lease_from_reply(&lease.pool, &r),
            None => Err(lost()),
        }
    }

    async fn cleanup_expired(&self, pool: &PoolId, limit: usize) -> Result<usize> {
        validate::pool_id(pool)?;
        validate::cleanup_limit(limit)?;
        let k = self.keys(pool);
        let r: i64 = self.run(&queries::cleanup(&k, limit), "cleanup").await?;
        if r < 0 {
            return Err(Error::PoolNotFound(pool.clone()));
        }
        usize::try_from(r).map_err(|_| corrupt("cleanup count"))
    }

    async fn pool_stats(&self, pool: &PoolId) -> Result<PoolStatsSnapshot> {
        validate::pool_id(pool)?;
        let k = self.keys(pool);
        let r = array(self.run(&queries::stats(&k), "pool_stats").await?)?;
        if r.len() == 1 {
            return Err(Error::PoolNotFound(pool.clone()));
        }
        Self::stats_from(pool, &r)
    }

    /// The capped stream `record_stats` appends to (see the inherent
    /// [`RedisStorage::stats_history`]), once the pool registry knows the
    /// pool (the stream alone cannot tell an unknown pool from a quiet one).
    async fn stats_history(&self, pool: &PoolId, limit: usize) -> Result<Vec<PoolStatsSnapshot>> {
        validate::history_limit(limit)?;
        if self.get_pool(pool).await?.is_none() {
            return Err(Error::PoolNotFound(pool.clone()));
        }
        RedisStorage::stats_history(self, pool, limit).await
    }

    async fn pool_snapshot(&self, pool: &PoolId) -> Result<PoolSnapshot> {
        validate::pool_id(pool)?;
        let k = self.keys(pool);
        for _ in 0..ADMIN_ATTEMPTS {
            // The highest live sequence bounds the part of the counters
            // string to read; the same read inside the transaction tells
            // whether a proxy was added since.
            let top = redis::cmd("ZRANGE")
                .arg(&k.all_by_seq)
                .arg(-1)
                .arg(-1)
                .clone();
            let highest = |v: Vec<u64>| v.first().copied().unwrap_or(layout::FIRST_SEQ - 1);
            let before = highest(self.cmd(&top, "pool_snapshot").await?);
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("GETRANGE")
                .arg(&k.counters)
                .arg(0)
                .arg(8 * (before + 1) - 1)
                .cmd("HGETALL")
                .arg(&k.proxy_by_seq)
                .cmd("ZRANGE")
                .arg(&k.leases_by_deadline)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .cmd("HLEN")
                .arg(&k.seq_by_id)
                .cmd("ZCARD")
                .arg(&k.free_by_seq)
                .cmd("TIME")
                .add_command(top.clone());
            type Reply = (
                Vec<u8>,
                Vec<(u64, String)>,
                Vec<(String, f64)>,
                u64,
                u64,
                (i64, i64),
                Vec<u64>,
            );
            let (counters, records, leases, total, available, (secs, micros), after): Reply = self
                .inner
                .conn
                .query(&pipe, "pool_snapshot", self.timeout())
                .await?;
            if highest(after) > before {
                continue;
            }
            return self
                .snapshot_from(
                    pool,
                    &counters,
                    records,
                    leases,
                    total,
                    available,
                    secs * 1000 + micros / 1000,
                )
                .await;
        }
        Err(gave_up("pool_snapshot", "pool"))
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
            let inv = queries::health(
                &k,
                result.proxy.as_str(),
                &raw,
                &json,
                updated.status == ProxyStatus::Active,
                updated.capacity(),
                latency_key(&updated),
            );
            match queries::health_applied(self.run(&inv, "health").await?)? {
                Ok(None) => return Ok(None),
                Err(()) => continue,
                Ok(Some(load)) => {
                    updated.current_leases =
                        u32::try_from(load).map_err(|_| corrupt("lease count"))?;
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

    /// Microseconds of CPU the Redis process has used (`used_cpu_user` +
    /// `used_cpu_sys` of `INFO cpu`: all its work, network I/O included,
    /// not only scripts), server-wide.
    pub async fn process_cpu_usec(&self) -> Result<u64> {
        let info: String = self.cmd(redis::cmd("INFO").arg("cpu"), "info").await?;
        let secs = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        match (secs("used_cpu_user"), secs("used_cpu_sys")) {
            (Some(user), Some(sys)) => Ok(((user + sys) * 1e6).round() as u64),
            _ => Err(Error::Corrupt(
                "INFO cpu has no used_cpu_user / used_cpu_sys".into(),
            )),
        }
    }
}
