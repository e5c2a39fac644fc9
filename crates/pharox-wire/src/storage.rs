//! The bodies of the routes that mirror the `Storage` trait (everything the
//! SDK routes do not cover), so `RemoteStorage` implements all of it.
//!
//! Records are the SDK's shapes plus what the Rust model has beyond them
//! (pool key, `extra`, and the password when asked for): a proxy is a
//! [`ProxyBody`] with more fields, a lease a [`LeaseRecord`]. Durations are
//! whole milliseconds (`duration_ms`); names are pharox's own (`consumer`,
//! not the SDK's `consumer_id`).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use pharox_core::{
    Consumer, ConsumerName, Credentials, DEFAULT_LEASE_DURATION, Error, HealthCheckResult, Lease,
    LeaseId, LeaseStatus, LeasedProxy, PoolId, PoolSnapshot, PoolStatsSnapshot, Proxy, ProxyId,
    ProxyStatus, ReleaseOutcome,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ErrorDetail;
use crate::object::option_object;
use crate::sdk::{FiltersBody, LeasedProxyBody, PoolBody, ProxyBody};
use crate::time::{iso_opt, iso_time};

/// Batch size of `POST /v1/pools/{pool}/cleanup` without a `limit`.
pub const DEFAULT_CLEANUP_LIMIT: usize = 500;

/// Most proxies in one bulk import (`POST /v1/pools/{pool}/import`).
pub const MAX_IMPORT_PROXIES: usize = 10_000;

/// Snapshots `GET /v1/pools/{pool}/stats/history` answers without a `limit`.
pub const DEFAULT_HISTORY_LIMIT: usize = 100;

/// Most snapshots one `GET /v1/pools/{pool}/stats/history` answers (the
/// worker keeps 1,000 a pool by default).
pub const MAX_HISTORY_LIMIT: usize = pharox_core::validate::MAX_HISTORY_LIMIT;

/// Longest `max_wait_ms` of `POST /v1/pools/{pool}/wait` (a server also
/// cuts the wait to half its request time budget).
pub const MAX_WAIT_MS: u64 = 10_000;

/// Whether an answer carries proxy passwords (`?credentials=include`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum CredentialsMode {
    /// No password (the default).
    #[default]
    Omit,
    /// The password of every proxy and lease in the answer.
    Include,
}

/// Which shape `GET /v1/pools/{pool}/proxies/` answers in (`?view=full`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum View {
    /// [`ProxyBody`], as pharox-sdk expects (the default).
    #[default]
    Sdk,
    /// [`ProxyRecord`].
    Full,
}

/// The query of the routes that answer proxies or leases.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ReadQuery {
    /// `include` adds passwords.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", param(inline))]
    pub credentials: CredentialsMode,
    /// `full` for the full records on the SDK's proxy list.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", param(inline))]
    pub view: View,
}

impl ReadQuery {
    /// Whether passwords are asked for.
    pub fn credentials(&self) -> bool {
        self.credentials == CredentialsMode::Include
    }
}

/// A consumer: `POST /v1/consumers` answers it, `GET /v1/consumers` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsumerBody {
    /// Its id, assigned when first ensured.
    pub id: Uuid,
    /// Its name.
    pub name: String,
}

impl From<&Consumer> for ConsumerBody {
    fn from(c: &Consumer) -> Self {
        Self {
            id: c.id,
            name: c.name.as_str().to_owned(),
        }
    }
}

impl From<ConsumerBody> for Consumer {
    fn from(c: ConsumerBody) -> Self {
        Self {
            id: c.id,
            name: ConsumerName::from(c.name),
        }
    }
}

/// `POST /v1/consumers`: registers a consumer, or finds it.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnsureConsumer {
    /// The consumer's name.
    pub name: String,
}

/// `PUT /v1/pools/{pool}`: creates or updates the pool whose id is `{pool}`.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpsertPool {
    /// Display name; the id when missing.
    #[serde(default)]
    pub name: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// A proxy with everything the Rust model holds: the SDK's [`ProxyBody`],
/// its pool's id, its metadata and, with `?credentials=include` (and in
/// the answer to a `PUT`), its password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProxyRecord {
    /// Every field of the SDK's shape.
    #[serde(flatten)]
    pub base: ProxyBody,
    /// The pool's pharox id.
    pub pool: String,
    /// The password, when the proxy has credentials and it was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Free-form metadata.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

impl ProxyRecord {
    /// The record of `proxy`, with its password if `credentials`.
    pub fn new(proxy: &Proxy, credentials: bool) -> Self {
        Self {
            base: ProxyBody::from(proxy),
            pool: proxy.pool.as_str().to_owned(),
            password: password(proxy.credentials.as_ref(), credentials),
            extra: proxy.extra.clone(),
        }
    }

    /// The proxy this describes; `Corrupt` for a user name without its
    /// password (read without `?credentials=include`).
    pub fn into_proxy(self) -> Result<Proxy, Error> {
        let b = self.base;
        Ok(Proxy {
            id: ProxyId::from(b.id),
            pool: PoolId::from(self.pool),
            host: b.host,
            port: b.port,
            protocol: b.protocol,
            credentials: credentials(b.username, self.password)?,
            status: b.status,
            checked_at: b.checked_at,
            latency_ms: b.latency_ms,
            source: b.source,
            country: b.country,
            city: b.city,
            latitude: b.latitude,
            longitude: b.longitude,
            isp: b.isp,
            asn: b.asn,
            max_concurrency: b.max_concurrency,
            current_leases: b.current_leases,
            extra: self.extra,
        })
    }
}

fn password(credentials: Option<&Credentials>, include: bool) -> Option<String> {
    credentials
        .filter(|_| include)
        .map(|c| c.password.expose().to_owned())
}

fn credentials(
    username: Option<String>,
    password: Option<String>,
) -> Result<Option<Credentials>, Error> {
    match (username, password) {
        (None, _) => Ok(None),
        (Some(u), Some(p)) => Ok(Some(Credentials::new(u, p))),
        (Some(_), None) => Err(Error::Corrupt(
            "the answer has a user name without its password".into(),
        )),
    }
}

/// The connection data of a leased proxy: the SDK's shape plus the password
/// (a holder needs it to connect through the proxy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeasedProxyRecord {
    /// Every field of the SDK's shape.
    #[serde(flatten)]
    pub base: LeasedProxyBody,
    /// The password, when the proxy has credentials and the answer carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// A lease with everything the Rust model holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseRecord {
    /// The lease id (a UUID; on the in-memory store it carries the pool's tag).
    pub id: Uuid,
    /// Fencing token, strictly increasing per pool.
    pub token: u64,
    /// The pool's pharox id.
    pub pool: String,
    /// The pool's UUID.
    pub pool_id: Uuid,
    /// The consumer's name.
    pub consumer: String,
    /// `active`, `released` or `expired`, when this copy was made.
    pub status: LeaseStatus,
    /// When the store granted it.
    #[serde(with = "iso_time")]
    pub acquired_at: DateTime<Utc>,
    /// When it expires unless renewed or released.
    #[serde(with = "iso_time")]
    pub expires_at: DateTime<Utc>,
    /// When it was released, if it was.
    #[serde(default, with = "iso_opt")]
    pub released_at: Option<DateTime<Utc>>,
    /// The leased proxy.
    pub proxy: LeasedProxyRecord,
}

impl LeaseRecord {
    /// The record of `lease`, with the proxy's password if `credentials`.
    pub fn new(lease: &Lease, credentials: bool) -> Self {
        Self {
            id: lease.id.0,
            token: lease.token,
            pool: lease.pool.as_str().to_owned(),
            pool_id: lease.pool.uuid(),
            consumer: lease.consumer.as_str().to_owned(),
            status: lease.status,
            acquired_at: lease.acquired_at,
            expires_at: lease.expires_at,
            released_at: lease.released_at,
            proxy: LeasedProxyRecord {
                base: LeasedProxyBody::from(&*lease.proxy),
                password: password(lease.proxy.credentials.as_ref(), credentials),
            },
        }
    }

    /// The lease this describes; `Corrupt` for a user name without its password.
    pub fn into_lease(self) -> Result<Lease, Error> {
        let p = self.proxy.base;
        Ok(Lease {
            id: LeaseId(self.id),
            token: self.token,
            pool: PoolId::from(self.pool),
            consumer: ConsumerName::from(self.consumer),
            proxy: Arc::new(LeasedProxy {
                id: ProxyId::from(p.id),
                host: p.host,
                port: p.port,
                protocol: p.protocol,
                credentials: credentials(p.username, self.proxy.password)?,
            }),
            status: self.status,
            acquired_at: self.acquired_at,
            expires_at: self.expires_at,
            released_at: self.released_at,
        })
    }
}

/// `POST /v1/pools/{pool}/leases`: an atomic acquire.
#[derive(Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AcquireInput {
    /// The consumer's name (`default` when missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    /// Lease duration in milliseconds, 1 to 86,400,000 (default 300,000).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 86400000))]
    #[serde(
        default,
        deserialize_with = "crate::int::whole_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration_ms: Option<u64>,
    /// The selector, as in `POST /v1/leases/` (default `first_available`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Which proxies qualify, as in `POST /v1/leases/`.
    #[serde(
        default,
        deserialize_with = "option_object",
        skip_serializing_if = "Option::is_none"
    )]
    pub filters: Option<FiltersBody>,
}

/// `POST /v1/pools/{pool}/find`: the proxy an acquire would pick now.
#[derive(Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FindInput {
    /// The selector, as in `POST /v1/leases/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Which proxies qualify.
    #[serde(
        default,
        deserialize_with = "option_object",
        skip_serializing_if = "Option::is_none"
    )]
    pub filters: Option<FiltersBody>,
}

/// The answer of `POST /v1/pools/{pool}/find`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FindAnswer {
    /// The proxy, or `null` when none qualifies.
    pub proxy: Option<ProxyRecord>,
}

/// A duration in whole milliseconds (`duration_ms`), `default` when missing;
/// `InvalidInput` on `duration` when it does not fit. The store checks its range.
pub fn duration_ms(ms: Option<u64>, default: TimeDelta) -> Result<TimeDelta, Error> {
    match ms {
        None => Ok(default),
        Some(ms) => i64::try_from(ms)
            .ok()
            .and_then(TimeDelta::try_milliseconds)
            .ok_or_else(|| Error::invalid("duration", "must be at most 86400000 (24 h)")),
    }
}

impl AcquireInput {
    /// The lease duration ([`DEFAULT_LEASE_DURATION`] when missing).
    pub fn duration(&self) -> Result<TimeDelta, Error> {
        duration_ms(self.duration_ms, DEFAULT_LEASE_DURATION)
    }
}

/// `POST /v1/pools/{pool}/leases/{lease}/release`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReleaseInput {
    /// The fencing token, if the caller kept it: a lease with another token
    /// is not the one named, and nothing is released.
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 0, maximum = 9_223_372_036_854_775_807_u64)
    )]
    #[serde(
        default,
        deserialize_with = "crate::int::whole_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub token: Option<u64>,
}

/// The answer of a release that ended a lease (nothing held is a 404).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseAnswer {
    /// `released`, or `expired` when its deadline had passed and this call
    /// reclaimed it (counted as expired).
    pub outcome: ReleaseOutcome,
    /// The lease as it was when this call ended it.
    pub lease: LeaseRecord,
}

/// `POST /v1/pools/{pool}/leases/{lease}/renew`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RenewInput {
    /// The fencing token, if the caller kept it.
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 0, maximum = 9_223_372_036_854_775_807_u64)
    )]
    #[serde(
        default,
        deserialize_with = "crate::int::whole_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub token: Option<u64>,
    /// The new deadline is now + this, in milliseconds (default 300,000).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 86400000))]
    #[serde(
        default,
        deserialize_with = "crate::int::whole_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration_ms: Option<u64>,
}

/// `POST /v1/leases/{lease}/renew` (by id alone, like the SDK's release).
#[derive(Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RenewByIdInput {
    /// The new deadline is now + this, in seconds, 1 to 86400 (default 300).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 86400))]
    #[serde(
        default,
        deserialize_with = "crate::int::whole_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl_seconds: Option<u64>,
}

/// `POST /v1/pools/{pool}/cleanup`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CleanupInput {
    /// Most expired leases to reclaim (default [`DEFAULT_CLEANUP_LIMIT`]).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10000))]
    #[serde(
        default,
        deserialize_with = "crate::int::whole_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub limit: Option<usize>,
}

/// The answer of `POST /v1/pools/{pool}/cleanup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CleanupAnswer {
    /// How many expired leases were reclaimed.
    pub reclaimed: usize,
}

/// `POST /v1/pools/{pool}/health`: one health check's result.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HealthInput {
    /// The checked proxy's id.
    pub proxy: String,
    /// The status to record.
    pub status: ProxyStatus,
    /// Measured round trip; missing keeps the last value.
    #[cfg_attr(feature = "openapi", schema(format = Int64, minimum = 0, maximum = 4_294_967_295_u64))]
    #[serde(default, deserialize_with = "crate::int::whole_opt")]
    pub latency_ms: Option<u32>,
    /// When the check ran; a result older than the proxy's is ignored.
    #[serde(with = "iso_time")]
    pub checked_at: DateTime<Utc>,
    /// Why the check failed, for logs.
    #[serde(default)]
    pub error: Option<String>,
}

impl HealthInput {
    /// The body for `result`.
    pub fn from_result(result: &HealthCheckResult) -> Self {
        Self {
            proxy: result.proxy.as_str().to_owned(),
            status: result.status,
            latency_ms: result.latency_ms,
            checked_at: result.checked_at,
            error: result.error.clone(),
        }
    }

    /// The result for a proxy of `pool`.
    pub fn into_result(self, pool: PoolId) -> HealthCheckResult {
        HealthCheckResult {
            pool,
            proxy: ProxyId::from(self.proxy),
            status: self.status,
            latency_ms: self.latency_ms,
            checked_at: self.checked_at,
            error: self.error,
        }
    }
}

/// `POST /v1/pools/{pool}/import`: proxies to add or update, in order (at
/// most [`MAX_IMPORT_PROXIES`]); each item is a [`CreateProxy`](crate::CreateProxy).
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImportInput<T> {
    /// The proxies.
    pub proxies: Vec<T>,
}

/// The answer of a bulk import: one result per item, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportReport {
    /// Items stored.
    pub imported: usize,
    /// Items refused.
    pub failed: usize,
    /// Every item's result.
    pub results: Vec<ImportResult>,
}

/// One item of a bulk import.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportResult {
    /// Its position in `proxies`.
    pub index: usize,
    /// The proxy's id (given or assigned), `null` if the item was refused
    /// before it had one.
    pub id: Option<String>,
    /// Why it was refused, or `null` when it was stored.
    pub error: Option<ErrorDetail>,
}

/// `POST /v1/pools/{pool}/wait`: a long poll for freed capacity.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WaitInput {
    /// Longest wait in milliseconds, at most [`MAX_WAIT_MS`].
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 10_000))]
    #[serde(deserialize_with = "crate::int::whole")]
    pub max_wait_ms: u64,
}

/// A pool's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatsBody {
    /// The pool's pharox id.
    pub pool: String,
    /// The pool's UUID.
    pub pool_id: Uuid,
    /// Proxies in the pool.
    pub total: u64,
    /// Proxies whose status is `active`.
    pub active: u64,
    /// Active proxies with free capacity.
    pub available: u64,
    /// Proxies holding at least one lease.
    pub leased: u64,
    /// Leases held now.
    pub active_leases: u64,
    /// Leases granted since the pool was created (not the leases held now,
    /// as in pharox for Python: that is `active_leases`).
    pub total_leases: u64,
    /// Leases released (or ended by removing their proxy), lifetime.
    pub released_leases: u64,
    /// Leases reclaimed after expiring, lifetime.
    pub expired_leases: u64,
    /// When the counters were read (store clock).
    #[serde(with = "iso_time")]
    pub collected_at: DateTime<Utc>,
}

impl From<&PoolStatsSnapshot> for StatsBody {
    fn from(s: &PoolStatsSnapshot) -> Self {
        Self {
            pool: s.pool.as_str().to_owned(),
            pool_id: s.pool.uuid(),
            total: s.total,
            active: s.active,
            available: s.available,
            leased: s.leased,
            active_leases: s.active_leases,
            total_leases: s.total_leases,
            released_leases: s.released_leases,
            expired_leases: s.expired_leases,
            collected_at: s.collected_at,
        }
    }
}

impl From<StatsBody> for PoolStatsSnapshot {
    fn from(s: StatsBody) -> Self {
        Self {
            pool: PoolId::from(s.pool),
            total: s.total,
            active: s.active,
            available: s.available,
            leased: s.leased,
            active_leases: s.active_leases,
            total_leases: s.total_leases,
            released_leases: s.released_leases,
            expired_leases: s.expired_leases,
            collected_at: s.collected_at,
        }
    }
}

/// The query of `GET /v1/pools/{pool}/stats/history`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct HistoryQuery {
    /// Most snapshots to answer, 1 to 1000 (default 100).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// `GET /v1/pools/{pool}/stats/history`: the pool's recorded counters,
/// newest first (empty on a store that keeps no history, or before a
/// worker recorded any).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatsHistoryBody {
    /// The pool's pharox id.
    pub pool: String,
    /// The pool's UUID.
    pub pool_id: Uuid,
    /// The snapshots, newest first.
    pub snapshots: Vec<StatsBody>,
}

impl StatsHistoryBody {
    /// The body of `pool`'s `snapshots`.
    pub fn new(pool: &PoolId, snapshots: &[PoolStatsSnapshot]) -> Self {
        Self {
            pool: pool.as_str().to_owned(),
            pool_id: pool.uuid(),
            snapshots: snapshots.iter().map(StatsBody::from).collect(),
        }
    }
}

/// `GET /v1/pools/{pool}/snapshot`: one consistent view of the pool.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnapshotBody {
    /// The pool.
    pub pool: PoolBody,
    /// Every proxy, in the order they were added.
    pub proxies: Vec<ProxyRecord>,
    /// Every live lease (possibly past its deadline, not yet reclaimed).
    pub leases: Vec<LeaseRecord>,
    /// The counters at the same instant.
    pub stats: StatsBody,
    /// The store's clock at that instant.
    #[serde(with = "iso_time")]
    pub taken_at: DateTime<Utc>,
}

impl SnapshotBody {
    /// The body of `snap`, with passwords if `credentials`.
    pub fn new(snap: &PoolSnapshot, credentials: bool) -> Self {
        Self {
            pool: PoolBody::from(&snap.pool),
            proxies: snap
                .proxies
                .iter()
                .map(|p| ProxyRecord::new(p, credentials))
                .collect(),
            leases: leases(&snap.leases, credentials),
            stats: StatsBody::from(&snap.stats),
            taken_at: snap.taken_at,
        }
    }

    /// The snapshot this describes.
    pub fn into_snapshot(self) -> Result<PoolSnapshot, Error> {
        Ok(PoolSnapshot {
            pool: self.pool.into_pool(),
            proxies: self
                .proxies
                .into_iter()
                .map(ProxyRecord::into_proxy)
                .collect::<Result<_, _>>()?,
            leases: self
                .leases
                .into_iter()
                .map(LeaseRecord::into_lease)
                .collect::<Result<_, _>>()?,
            stats: self.stats.into(),
            taken_at: self.taken_at,
        })
    }
}

/// `GET /v1/pools/{pool}/leases`: the pool's live leases (read from a
/// snapshot: O(pool size)).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeasesBody {
    /// Every live lease, oldest first.
    pub leases: Vec<LeaseRecord>,
    /// The store's clock when they were read.
    #[serde(with = "iso_time")]
    pub taken_at: DateTime<Utc>,
}

/// The records of `leases`.
pub fn leases(leases: &[Lease], credentials: bool) -> Vec<LeaseRecord> {
    leases
        .iter()
        .map(|l| LeaseRecord::new(l, credentials))
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use pharox_core::{ProxyProtocol, ProxyStatus};

    use super::*;

    fn full_proxy() -> Proxy {
        let mut p = Proxy::new("pool {x}", "2001:db8::1", 1080, ProxyProtocol::Socks5)
            .with_id("p-1")
            .with_credentials("user@corp", "p:ss/w@rd %")
            .with_status(ProxyStatus::Slow)
            .with_latency_ms(120)
            .with_source("feed")
            .with_country("DE")
            .with_city("Berlin")
            .with_location(52.52, 13.405)
            .with_isp("isp")
            .with_asn(3320)
            .with_max_concurrency(4)
            .with_extra("k", "v");
        p.checked_at = Some(Utc.timestamp_millis_opt(1_700_000_000_123).unwrap());
        p.current_leases = 2;
        p
    }

    fn through_json<T: Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
        serde_json::from_str(&serde_json::to_string(value).unwrap()).unwrap()
    }

    #[test]
    fn a_proxy_record_round_trips_with_its_password_only_when_asked() {
        let p = full_proxy();
        let with = through_json(&ProxyRecord::new(&p, true));
        assert_eq!(with.into_proxy().unwrap(), p);
        let without = ProxyRecord::new(&p, false);
        let text = serde_json::to_string(&without).unwrap();
        assert!(!text.contains("p:ss"), "{text}");
        assert!(text.contains("\"username\":\"user@corp\""), "{text}");
        assert!(matches!(
            through_json(&without).into_proxy(),
            Err(Error::Corrupt(_))
        ));
        // Without credentials, no password is needed.
        let plain = Proxy {
            credentials: None,
            ..p
        };
        assert_eq!(
            through_json(&ProxyRecord::new(&plain, false))
                .into_proxy()
                .unwrap(),
            plain
        );
    }

    #[test]
    fn a_proxy_record_is_the_sdk_shape_plus_pool_password_and_extra() {
        let p = full_proxy();
        let sdk = serde_json::to_value(ProxyBody::from(&p)).unwrap();
        let full = serde_json::to_value(ProxyRecord::new(&p, true)).unwrap();
        let (sdk, mut full) = (
            sdk.as_object().unwrap().clone(),
            full.as_object().unwrap().clone(),
        );
        for extra in ["pool", "password", "extra"] {
            assert!(full.remove(extra).is_some(), "{extra}");
        }
        assert_eq!(full, sdk);
    }

    #[test]
    fn a_lease_record_round_trips() {
        let p = full_proxy();
        let t = Utc.timestamp_millis_opt(1_700_000_000_000).unwrap();
        let lease = Lease {
            id: LeaseId::in_pool(p.pool.lease_tag()),
            token: 42,
            pool: p.pool.clone(),
            consumer: "w:{1}".into(),
            proxy: Arc::new(LeasedProxy::of(&p)),
            status: LeaseStatus::Expired,
            acquired_at: t,
            expires_at: t + TimeDelta::milliseconds(200),
            released_at: Some(t + TimeDelta::milliseconds(150)),
        };
        let back = through_json(&LeaseRecord::new(&lease, true));
        assert_eq!(back.pool_id, lease.pool.uuid());
        assert_eq!(back.into_lease().unwrap(), lease);
        let text = serde_json::to_string(&LeaseRecord::new(&lease, false)).unwrap();
        assert!(!text.contains("p:ss"), "{text}");
    }

    #[test]
    fn durations_in_milliseconds_that_do_not_fit_are_invalid() {
        let d = TimeDelta::seconds(9);
        assert_eq!(duration_ms(None, d).unwrap(), d);
        assert_eq!(
            duration_ms(Some(250), d).unwrap(),
            TimeDelta::milliseconds(250)
        );
        assert!(matches!(
            duration_ms(Some(u64::MAX), d),
            Err(Error::InvalidInput {
                field: "duration",
                ..
            })
        ));
        // In range for a TimeDelta: the store checks the 24 h limit.
        assert!(duration_ms(Some(i64::MAX as u64), d).is_ok());
    }
}
