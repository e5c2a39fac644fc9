//! One call spec per script: the KEYS and ARGV it takes, built in one place,
//! and its reply decoded into a typed value. The store calls these; the
//! script tests reuse the key lists instead of writing their own.

use deadpool_redis::redis::{ScriptInvocation, Value};
use pharox_core::{PoolId, PoolStatsSnapshot, ReleaseOutcome, Result, datetime_from_ms};

use crate::keys::PoolKeys;
use crate::reply::{array, corrupt, int, text, u64_of};
use crate::scripts;

fn invocation<'a>(
    script: &'static deadpool_redis::redis::Script,
    keys: impl IntoIterator<Item = &'a str>,
) -> ScriptInvocation<'static> {
    let mut inv = script.prepare_invoke();
    for key in keys {
        inv.key(key);
    }
    inv
}

fn first(v: &[Value]) -> Result<i64> {
    int(v.first().ok_or_else(|| corrupt("empty reply"))?)
}

/// How an acquire finds the candidates of its filter (see `acquire.lua`).
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// No filter: the selector's own index.
    All,
    /// Every member of this `by_value` index matches: no verification.
    Exact(String),
    /// This `by_value` index holds every match: verify with the filter.
    Verify(String),
    /// Matches lie in these score ranges `[min, max)` of the located set,
    /// or near a pole: verify.
    Geo {
        /// At most nine ranges of Redis's GEO scores.
        ranges: Vec<(u64, u64)>,
    },
    /// Verify the proxies of the selector's own index.
    Scan,
}

impl Plan {
    /// The plan of a geo radius centred within Redis GEO's latitudes: the
    /// cells covering the circle, a little wider (Redis rounds positions to
    /// 52-bit geohashes); the script checks the exact haversine distance.
    pub fn geo(latitude: f64, longitude: f64, radius_km: f64) -> Self {
        Plan::Geo {
            ranges: crate::geo::covering(latitude, longitude, radius_km * 1.0003 + 0.01),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Plan::All => "",
            Plan::Exact(_) => "x",
            Plan::Verify(_) => "v",
            Plan::Geo { .. } => "g",
            Plan::Scan => "s",
        }
    }

    /// Whether the script evaluates the filter (and so needs its JSON).
    pub fn verifies(&self) -> bool {
        matches!(self, Plan::Verify(_) | Plan::Geo { .. } | Plan::Scan)
    }
}

/// The ARGV of one acquire call.
#[derive(Debug)]
pub struct AcquireArgs<'a> {
    /// `f`, `r`, `l` or `t`.
    pub selector: &'static str,
    /// Lease duration in ms.
    pub duration_ms: i64,
    /// Consumer name.
    pub consumer: &'a str,
    /// The client's nonce.
    pub nonce: u64,
    /// Expired leases to reclaim at most.
    pub reclaim_batch: usize,
    /// Only find, lease nothing.
    pub find: bool,
    /// The generation the client caches, if any.
    pub cached_generation: Option<i64>,
    /// The filter plan.
    pub plan: &'a Plan,
    /// The filter JSON (plans that verify).
    pub filter_json: &'a str,
    /// Where to resume ('' to start).
    pub position: &'a str,
}

/// The KEYS of an acquire with `plan`.
pub fn acquire_keys<'a>(k: &'a PoolKeys, plan: &'a Plan) -> Vec<&'a str> {
    let mut keys = k.lease_keys().to_vec();
    keys.push(&k.proxy_by_seq);
    match plan {
        Plan::Exact(key) | Plan::Verify(key) => keys.push(key),
        Plan::Geo { .. } => keys.extend([k.located.as_str(), k.polar_by_seq.as_str()]),
        Plan::All | Plan::Scan => {}
    }
    keys
}

/// One call of `acquire.lua`.
pub fn acquire(k: &PoolKeys, a: &AcquireArgs<'_>) -> ScriptInvocation<'static> {
    let mut inv = invocation(&scripts::ACQUIRE, acquire_keys(k, a.plan));
    inv.arg(a.selector)
        .arg(a.duration_ms)
        .arg(a.consumer)
        .arg(a.nonce)
        .arg(a.reclaim_batch)
        .arg(if a.find { "1" } else { "0" })
        .arg(
            a.cached_generation
                .map_or_else(String::new, |g| g.to_string()),
        );
    inv.arg(a.plan.code()).arg(a.filter_json).arg(a.position);
    if let Plan::Geo { ranges } = a.plan {
        inv.arg(ranges.len());
        for (lo, hi) in ranges {
            inv.arg(lo).arg(hi);
        }
    }
    inv
}

/// What one acquire call answered.
#[derive(Debug)]
pub enum AcquireReply {
    /// A lease was granted.
    Leased {
        /// The proxy's sequence.
        seq: u64,
        /// The fencing token.
        token: u64,
        /// The Redis clock at the grant, ms.
        now_ms: i64,
        /// The pool's proxy-data generation.
        generation: i64,
        /// The proxy's JSON, when the client's generation was not current.
        proxy: Option<Value>,
    },
    /// A proxy was found (find mode).
    Found {
        /// The proxy's JSON.
        proxy: Value,
        /// Its live leases.
        load: i64,
    },
    /// No proxy qualifies.
    NoProxy,
    /// The pool does not exist.
    NoPool,
    /// The call spent its budget: call again from this position.
    Continue(String),
}

impl AcquireReply {
    /// Decodes a reply of `acquire.lua`.
    pub fn decode(v: Value) -> Result<Self> {
        let mut r = array(v)?;
        Ok(match first(&r)? {
            -1 => Self::NoPool,
            0 => Self::NoProxy,
            -3 => Self::Continue(
                text(r.get(1).ok_or_else(|| corrupt("acquire position"))?)?.to_owned(),
            ),
            _ if r.len() == 6 => {
                let load = int(&r[5])?;
                Self::Found {
                    proxy: r.swap_remove(4),
                    load,
                }
            }
            _ if r.len() == 4 || r.len() == 5 => {
                let proxy = (r.len() == 5).then(|| r.swap_remove(4));
                Self::Leased {
                    seq: u64_of(int(&r[0])?, "sequence")?,
                    token: u64_of(int(&r[1])?, "token")?,
                    now_ms: int(&r[2])?,
                    generation: int(&r[3])?,
                    proxy,
                }
            }
            _ => return Err(corrupt("acquire reply")),
        })
    }
}

/// The ARGV naming a lease by the reference its id carries, as
/// `release.lua`, `renew.lua` and `get_lease.lua` take it.
pub fn lease_ref(token: u64, nonce: u64) -> String {
    format!("{token}:{nonce}")
}

/// The KEYS of `release.lua` and `renew.lua`.
pub fn lease_ref_keys(k: &PoolKeys) -> [&str; 8] {
    let l = k.lease_keys();
    [l[0], l[1], l[2], l[3], l[4], l[5], l[6], &k.proxy_by_seq]
}

/// One call of `release.lua`: `lease` is a member or a [`lease_ref`].
pub fn release(k: &PoolKeys, lease: &str) -> ScriptInvocation<'static> {
    let mut inv = invocation(&scripts::RELEASE, lease_ref_keys(k));
    inv.arg(lease);
    inv
}

/// One call of `release.lua` that also answers the lease ([`LeaseReply`]).
pub fn release_returning(k: &PoolKeys, lease: &str) -> ScriptInvocation<'static> {
    let mut inv = release(k, lease);
    inv.arg("1");
    inv
}

/// Decodes a reply of `release.lua`.
pub fn release_outcome(r: i64) -> ReleaseOutcome {
    match r {
        1 => ReleaseOutcome::Released,
        2 => ReleaseOutcome::Expired,
        _ => ReleaseOutcome::NotHeld,
    }
}

/// One call of `renew.lua`: `lease` is a member or a [`lease_ref`].
pub fn renew(k: &PoolKeys, lease: &str, duration_ms: i64) -> ScriptInvocation<'static> {
    let mut inv = invocation(&scripts::RENEW, lease_ref_keys(k));
    inv.arg(lease).arg(duration_ms);
    inv
}

/// One call of `renew.lua` that also answers the lease ([`LeaseReply`]).
pub fn renew_returning(k: &PoolKeys, lease: &str, duration_ms: i64) -> ScriptInvocation<'static> {
    let mut inv = renew(k, lease, duration_ms);
    inv.arg("1");
    inv
}

/// Decodes a reply of `renew.lua`: the new deadline, or `None` if not held.
pub fn renewed_until(v: Value) -> Result<Option<i64>> {
    match array(v)?.as_slice() {
        [_, deadline, ..] => Ok(Some(int(deadline)?)),
        _ => Ok(None),
    }
}

/// The KEYS of `get_lease.lua`.
pub fn get_lease_keys(k: &PoolKeys) -> [&str; 3] {
    [&k.leases_by_deadline, &k.lease_by_token, &k.proxy_by_seq]
}

/// One call of `get_lease.lua` with a [`lease_ref`].
pub fn get_lease(k: &PoolKeys, lease: &str) -> ScriptInvocation<'static> {
    let mut inv = invocation(&scripts::GET_LEASE, get_lease_keys(k));
    inv.arg(lease);
    inv
}

/// A lease as `release.lua`, `renew.lua` and `get_lease.lua` answer it
/// when asked to.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseReply {
    /// The first field: release's outcome code, or renew's and
    /// get_lease's Redis clock (ms).
    pub head: i64,
    /// The stored member (`layout::LeaseMember`).
    pub member: String,
    /// The deadline (ms) the lease had (release, get_lease) or has now (renew).
    pub deadline_ms: i64,
    /// The proxy's stored JSON.
    pub proxy: Value,
}

/// Decodes a reply that may carry a lease: `None` for `{0}`. `renew` says
/// whether it is renew's shape (`{now, deadline, member, proxy}`) rather
/// than release's and get_lease's (`{head, member, deadline, proxy}`).
pub fn lease_reply(v: Value, renew: bool) -> Result<Option<LeaseReply>> {
    let v = array(v)?;
    if v.len() == 1 && first(&v)? == 0 {
        return Ok(None);
    }
    let Ok([head, a, b, proxy]) = <[Value; 4]>::try_from(v) else {
        return Err(corrupt("lease reply"));
    };
    let (member, deadline) = if renew { (&b, &a) } else { (&a, &b) };
    Ok(Some(LeaseReply {
        head: int(&head)?,
        member: text(member)?.to_owned(),
        deadline_ms: score(deadline)?,
        proxy,
    }))
}

/// A sorted-set score as Redis answers it (`ZSCORE` gives a string; an
/// integer reply passes too).
fn score(v: &Value) -> Result<i64> {
    match v {
        Value::Int(n) => Ok(*n),
        _ => text(v)?
            .parse::<f64>()
            .ok()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
            .ok_or_else(|| corrupt("lease deadline")),
    }
}

/// One call of `cleanup.lua`.
pub fn cleanup(k: &PoolKeys, limit: usize) -> ScriptInvocation<'static> {
    let mut inv = invocation(&scripts::CLEANUP, k.lease_keys());
    inv.arg(limit);
    inv
}

/// What `cleanup.lua` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupReply {
    /// The pool does not exist.
    NoPool,
    /// This many expired leases were reclaimed.
    Reclaimed(usize),
}

impl CleanupReply {
    /// Decodes a reply of `cleanup.lua`.
    pub fn decode(r: i64) -> Result<Self> {
        if r < 0 {
            return Ok(Self::NoPool);
        }
        usize::try_from(r)
            .map(Self::Reclaimed)
            .map_err(|_| corrupt("cleanup count"))
    }
}

/// The KEYS of `stats.lua`.
pub fn stats_keys(k: &PoolKeys) -> [&str; 4] {
    [
        &k.counters,
        &k.leases_by_deadline,
        &k.free_by_seq,
        &k.seq_by_id,
    ]
}

/// One call of `stats.lua`.
pub fn stats(k: &PoolKeys) -> ScriptInvocation<'static> {
    invocation(&scripts::STATS, stats_keys(k))
}

/// What `stats.lua` answered.
#[derive(Debug, Clone, PartialEq)]
pub enum StatsReply {
    /// The pool does not exist.
    NoPool,
    /// The pool's counters.
    Stats(PoolStatsSnapshot),
}

impl StatsReply {
    /// Decodes a reply of `stats.lua` about `pool`.
    pub fn decode(pool: &PoolId, v: Value) -> Result<Self> {
        let v = array(v)?;
        if v.len() == 1 {
            return Ok(Self::NoPool);
        }
        if v.len() != 8 {
            return Err(corrupt("stats reply"));
        }
        let n = |i: usize, what| int(&v[i]).and_then(|x| u64_of(x, what));
        let (total_leases, active_leases, expired) =
            (n(6, "tokens")?, n(5, "leases")?, n(7, "expired")?);
        let released = total_leases
            .checked_sub(active_leases + expired)
            .ok_or_else(|| corrupt("lease counters"))?;
        Ok(Self::Stats(PoolStatsSnapshot {
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
        }))
    }
}

/// The KEYS of `get_proxy.lua`.
pub fn get_proxy_keys(k: &PoolKeys) -> [&str; 3] {
    [&k.counters, &k.seq_by_id, &k.proxy_by_seq]
}

/// One call of `get_proxy.lua`.
pub fn get_proxy(k: &PoolKeys, id: &str) -> ScriptInvocation<'static> {
    let mut inv = invocation(&scripts::GET_PROXY, get_proxy_keys(k));
    inv.arg(id);
    inv
}

/// Decodes a reply of `get_proxy.lua`: `(live leases, JSON)`, or `None`
/// when the proxy or its pool does not exist.
pub fn got_proxy(v: Value) -> Result<Option<(i64, Value)>> {
    let mut r = array(v)?;
    match first(&r)? {
        -1 | 0 => Ok(None),
        _ if r.len() == 3 => {
            let json = r.swap_remove(2);
            Ok(Some((int(&r[1])?, json)))
        }
        _ => Err(corrupt("get_proxy reply")),
    }
}

/// The KEYS of `list_proxies.lua`.
pub fn list_proxies_keys(k: &PoolKeys) -> [&str; 3] {
    [&k.counters, &k.all_by_seq, &k.proxy_by_seq]
}

/// One call of `list_proxies.lua`: the page after sequence `after`.
pub fn list_proxies(k: &PoolKeys, after: u64, size: usize) -> ScriptInvocation<'static> {
    let mut inv = invocation(&scripts::LIST_PROXIES, list_proxies_keys(k));
    inv.arg(after).arg(size);
    inv
}

/// A page of `list_proxies.lua`: `(next, [(live leases, JSON)])`, `next`
/// being the sequence to continue after (0 when done); `None` for no pool.
pub type ProxyPage = Option<(u64, Vec<(i64, Value)>)>;

/// Decodes a reply of `list_proxies.lua`.
pub fn proxy_page(v: Value) -> Result<ProxyPage> {
    let r = array(v)?;
    let last = first(&r)?;
    if last == -1 && r.len() == 1 {
        return Ok(None);
    }
    let mut items = Vec::with_capacity(r.len() / 3);
    let mut rest = r.into_iter().skip(1);
    while let Some(_seq) = rest.next() {
        let (Some(load), Some(json)) = (rest.next(), rest.next()) else {
            return Err(corrupt("proxy page"));
        };
        items.push((int(&load)?, json));
    }
    Ok(Some((u64_of(last, "page end")?, items)))
}

/// The ARGV of `upsert_proxy.lua` (KEYS: the admin keys, the stored
/// version's `by_value` keys, the new version's).
#[derive(Debug)]
pub struct UpsertArgs<'a> {
    /// The proxy id.
    pub id: &'a str,
    /// The stored JSON the client read ('' for none).
    pub expected: &'a str,
    /// The new JSON.
    pub json: &'a str,
    /// Whether the new status is active.
    pub active: bool,
    /// Capacity.
    pub capacity: u32,
    /// Latency key.
    pub latency_key: u32,
    /// `(longitude, latitude)` when located.
    pub location: Option<(f64, f64)>,
    /// The stored version's `by_value` keys.
    pub old_index: &'a [String],
    /// The new version's `by_value` keys.
    pub new_index: &'a [String],
    /// Due leases to reclaim first.
    pub reclaim_batch: usize,
}

/// One call of `upsert_proxy.lua`.
pub fn upsert_proxy(k: &PoolKeys, a: &UpsertArgs<'_>) -> ScriptInvocation<'static> {
    let mut inv = invocation(&scripts::UPSERT_PROXY, k.admin_keys());
    for key in a.old_index.iter().chain(a.new_index) {
        inv.key(key);
    }
    let (lon, lat) = a
        .location
        .map_or((String::new(), String::new()), |(lon, lat)| {
            (lon.to_string(), lat.to_string())
        });
    inv.arg(a.id)
        .arg(a.expected)
        .arg(a.json)
        .arg(if a.active { "1" } else { "0" })
        .arg(a.capacity)
        .arg(a.latency_key)
        .arg(lon)
        .arg(lat)
        .arg(a.old_index.len())
        .arg(a.reclaim_batch);
    inv
}

/// What `upsert_proxy.lua` answered.
#[derive(Debug, PartialEq, Eq)]
pub enum UpsertReply {
    /// Stored; the proxy's live leases.
    Stored(i64),
    /// No such pool.
    NoPool,
    /// The stored proxy changed since it was read.
    Changed,
    /// The capacity is below these live leases.
    BelowLoad(i64),
    /// The pool holds this many proxies, its limit.
    PoolFull(i64),
    /// The pool used every sequence up to this one.
    OutOfSequences(i64),
}

impl UpsertReply {
    /// Decodes a reply of `upsert_proxy.lua`.
    pub fn decode(v: Value) -> Result<Self> {
        let r = array(v)?;
        let second = || int(r.get(1).ok_or_else(|| corrupt("upsert reply"))?);
        Ok(match first(&r)? {
            -1 => Self::NoPool,
            -2 => Self::Changed,
            -3 => Self::BelowLoad(second()?),
            -4 => Self::PoolFull(second()?),
            -5 => Self::OutOfSequences(second()?),
            _ => Self::Stored(second()?),
        })
    }
}

/// One call of `remove_proxy.lua`.
pub fn remove_proxy(
    k: &PoolKeys,
    id: &str,
    expected: &str,
    index: &[String],
) -> ScriptInvocation<'static> {
    let mut inv = invocation(&scripts::REMOVE_PROXY, k.admin_keys());
    for key in index {
        inv.key(key);
    }
    inv.arg(id).arg(expected);
    inv
}

/// What `remove_proxy.lua` and `remove_pool.lua` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveReply {
    /// Removed.
    Removed,
    /// Nothing to remove: no such proxy or pool.
    Absent,
    /// What the client read changed since (re-read and retry).
    Changed,
}

impl RemoveReply {
    /// Decodes a reply of `remove_proxy.lua` or `remove_pool.lua`.
    pub fn decode(r: i64) -> Self {
        match r {
            1 => Self::Removed,
            -2 => Self::Changed,
            _ => Self::Absent,
        }
    }
}

/// The KEYS of `health.lua`.
pub fn health_keys(k: &PoolKeys) -> Vec<&str> {
    let mut keys = k.lease_keys()[..6].to_vec();
    keys.extend([k.seq_by_id.as_str(), k.proxy_by_seq.as_str()]);
    keys
}

/// One call of `health.lua`.
pub fn health(
    k: &PoolKeys,
    id: &str,
    expected: &str,
    json: &str,
    active: bool,
    capacity: u32,
    latency_key: u32,
) -> ScriptInvocation<'static> {
    let mut inv = invocation(&scripts::HEALTH, health_keys(k));
    inv.arg(id)
        .arg(expected)
        .arg(json)
        .arg(if active { "1" } else { "0" })
        .arg(capacity)
        .arg(latency_key);
    inv
}

/// What `health.lua` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthReply {
    /// Applied; the proxy has this many live leases.
    Applied {
        /// Its live leases.
        load: i64,
    },
    /// No such proxy or pool.
    NoProxy,
    /// The stored proxy changed since it was read (re-read and retry).
    Changed,
}

impl HealthReply {
    /// Decodes a reply of `health.lua`.
    pub fn decode(v: Value) -> Result<Self> {
        let r = array(v)?;
        Ok(match first(&r)? {
            -1 | 0 => Self::NoProxy,
            -2 => Self::Changed,
            _ => Self::Applied {
                load: int(r.get(1).ok_or_else(|| corrupt("health reply"))?)?,
            },
        })
    }
}

/// The KEYS of `create_pool.lua`.
pub fn create_pool_keys(k: &PoolKeys) -> [&str; 2] {
    [&k.counters, &k.retired_token]
}

/// One call of `create_pool.lua`.
pub fn create_pool(k: &PoolKeys, generation: u64) -> ScriptInvocation<'static> {
    let mut inv = invocation(&scripts::CREATE_POOL, create_pool_keys(k));
    inv.arg(generation);
    inv
}

/// The KEYS of `remove_pool.lua` before the `by_value` keys.
pub fn remove_pool_keys(k: &PoolKeys) -> Vec<String> {
    let mut keys: Vec<String> = [
        &k.counters,
        &k.retired_token,
        &k.value_index_keys,
        &k.leases_by_deadline,
        &k.free_by_seq,
        &k.free_by_load,
        &k.free_by_latency,
        &k.latency_by_seq,
        &k.seq_by_id,
        &k.proxy_by_seq,
        &k.located,
        &k.polar_by_seq,
        &k.all_by_seq,
    ]
    .into_iter()
    .cloned()
    .collect();
    keys.push(k.stats_history());
    keys.push(k.lease_by_token.clone());
    keys
}

/// One call of `remove_pool.lua` with the pool's `by_value` keys.
pub fn remove_pool(k: &PoolKeys, index: &[String]) -> ScriptInvocation<'static> {
    let keys = remove_pool_keys(k);
    let mut inv = invocation(
        &scripts::REMOVE_POOL,
        keys.iter().chain(index).map(String::as_str),
    );
    inv.arg(index.len());
    inv
}
