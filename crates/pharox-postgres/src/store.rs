//! [`PostgresStorage`]: the `Storage` contract on PostgreSQL.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, QueueMode, RecyclingMethod, Runtime};
use pharox_core::model::{
    Consumer, ConsumerName, HealthCheckResult, Lease, LeaseId, LeaseStatus, PoolId,
    PoolStatsSnapshot, Proxy, ProxyId, ProxyPool,
};
use pharox_core::validate::{self, MAX_CONCURRENCY, MAX_PROXIES_PER_POOL};
use pharox_core::{
    AcquireRequest, Error, LeaseRef, PoolSnapshot, ProxyFilters, ReleaseOutcome, Result, Selector,
    Storage,
};
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use crate::config::PostgresConfig;
use crate::error::{pool_error, query_error};
use crate::filter_sql::FilterSql;
use crate::rows::{self, LeaseKey, PROXY_COLUMNS, get};
use crate::sql;

/// A pharox store on PostgreSQL. Cheap to clone (one shared connection pool).
///
/// Run [`PostgresStorage::migrate`] once on a new database (or `pharox
/// migrate`) before using it.
#[derive(Clone)]
pub struct PostgresStorage {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: Pool,
    config: PostgresConfig,
    /// Requests this store sent and waited for: statement executions, and
    /// preparations on connections that had not prepared the statement.
    round_trips: AtomicU64,
}

impl fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

type Params<'a> = [&'a (dyn ToSql + Sync)];

fn selector_code(selector: Selector) -> i32 {
    match selector {
        Selector::FirstAvailable => 0,
        Selector::LeastUsed => 1,
        Selector::RoundRobin => 2,
        Selector::LowestLatency => 3,
    }
}

fn no_predicate(filters: &ProxyFilters) -> Result<()> {
    if filters.has_predicate() {
        return Err(Error::UnsupportedFilter(
            "closure predicates cannot run inside PostgreSQL",
        ));
    }
    Ok(())
}

/// Text PostgreSQL cannot store or compare (a NUL byte: a `text` value
/// never holds one, and the server refuses it as a parameter with an
/// encoding error) is refused as bad input naming the field, before
/// anything is sent.
fn storable(field: &'static str, value: Option<&str>) -> Result<()> {
    if value.is_some_and(|v| v.contains('\0')) {
        return Err(Error::invalid(field, "must not contain NUL characters"));
    }
    Ok(())
}

/// A proxy id to look up: the core checks ids only where proxies are
/// stored, so a look-up, removal or health result could carry a NUL.
fn storable_proxy_id(proxy: &ProxyId) -> Result<()> {
    storable("proxy.id", Some(proxy.as_str()))
}

/// Every string value of a filter tree (already validated, so its depth is
/// bounded), as [`storable`].
fn storable_filters(filters: &ProxyFilters) -> Result<()> {
    for (field, value) in [
        ("filters.country", &filters.country),
        ("filters.source", &filters.source),
        ("filters.city", &filters.city),
        ("filters.isp", &filters.isp),
    ] {
        storable(field, value.as_deref())?;
    }
    filters
        .all_of
        .iter()
        .chain(&filters.any_of)
        .chain(&filters.none_of)
        .try_for_each(storable_filters)
}

impl PostgresStorage {
    /// Connects to the database `config.url` names and checks it answers.
    /// It does not migrate: see [`PostgresStorage::migrate`].
    ///
    /// # Errors
    /// `InvalidInput` for a URL that does not parse (the error never shows
    /// the URL); `Unavailable` if the database does not answer.
    pub async fn connect(config: PostgresConfig) -> Result<Self> {
        let storage = Self::lazy(config)?;
        storage.ping().await?;
        Ok(storage)
    }

    /// A store for `config` that opens connections on first use.
    ///
    /// # Errors
    /// `InvalidInput` for a URL that does not parse, a zero pool size or a
    /// reclaim batch above `MAX_CLEANUP_BATCH`.
    pub fn lazy(config: PostgresConfig) -> Result<Self> {
        let mut pg: tokio_postgres::Config = config.url.parse().map_err(|_| {
            Error::invalid(
                "postgres_url",
                "is not a PostgreSQL URL or key-value connection string",
            )
        })?;
        if config.reclaim_batch as usize > validate::MAX_CLEANUP_BATCH {
            return Err(Error::invalid(
                "reclaim_batch",
                format!("must be at most {}", validate::MAX_CLEANUP_BATCH),
            ));
        }
        if config.pool_size == 0 {
            return Err(Error::invalid("pool_size", "must be at least 1"));
        }
        pg.connect_timeout(config.connect_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("pharox");
        }
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            // The most recently used connection first: its backend process
            // is warm, and an idle store keeps using one (FIFO rotated
            // through every connection and halved 1-task throughput).
            .queue_mode(QueueMode::Lifo)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.wait_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| Error::invalid("postgres_url", e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                config,
                round_trips: AtomicU64::new(0),
            }),
        })
    }

    /// The configuration this store was built with.
    pub fn config(&self) -> &PostgresConfig {
        &self.inner.config
    }

    /// How many requests this store has sent and waited for the answer of
    /// (from every clone): statement executions, plus a preparation each
    /// time a connection meets a statement for the first time. Reading it
    /// before and after a call measures the call's round trips (admin
    /// snapshots and migrations, which use transactions, are not counted).
    pub fn round_trips(&self) -> u64 {
        self.inner.round_trips.load(Ordering::Relaxed)
    }

    /// Checks the database answers (`SELECT 1`).
    ///
    /// # Errors
    /// A retryable error if it does not.
    pub async fn ping(&self) -> Result<()> {
        self.query("ping", "SELECT 1", &[]).await.map(drop)
    }

    /// Runs one prepared statement: one round trip once the connection has
    /// prepared it. Bounded by the operation timeout.
    pub(crate) async fn query(
        &self,
        operation: &'static str,
        statement: &str,
        params: &Params<'_>,
    ) -> Result<Vec<Row>> {
        let after = self.inner.config.operation_timeout;
        let call = async {
            let client = self.inner.pool.get().await.map_err(pool_error)?;
            let cached = client.statement_cache.size();
            let prepared = client.prepare_cached(statement).await;
            if client.statement_cache.size() != cached {
                self.inner.round_trips.fetch_add(1, Ordering::Relaxed);
            }
            let prepared = prepared.map_err(query_error)?;
            self.inner.round_trips.fetch_add(1, Ordering::Relaxed);
            client.query(&prepared, params).await.map_err(query_error)
        };
        match tokio::time::timeout(after, call).await {
            Ok(answer) => answer,
            Err(_) => Err(Error::Timeout { operation, after }),
        }
    }

    async fn query_one(
        &self,
        operation: &'static str,
        statement: &str,
        params: &Params<'_>,
    ) -> Result<Row> {
        self.query(operation, statement, params)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Corrupt(format!("{operation}: no row").into()))
    }

    async fn pool_exists(&self, pool: &PoolId) -> Result<bool> {
        Ok(!self
            .query("pool_exists", sql::POOL_EXISTS, &[&pool.as_str()])
            .await?
            .is_empty())
    }

    /// The pick (`find`) or the acquire's row for `request`.
    async fn select(&self, request: &AcquireRequest) -> Result<Option<Lease>> {
        validate::acquire_request(request)?;
        no_predicate(&request.filters)?;
        storable_filters(&request.filters)?;
        let filter = FilterSql::of(&request.filters);
        let id = LeaseId::in_pool(request.pool.lease_tag());
        let reclaim = i32::try_from(self.inner.config.reclaim_batch).unwrap_or(i32::MAX);
        let row = self
            .query_one(
                "acquire",
                sql::ACQUIRE,
                &[
                    &request.pool.as_str(),
                    &id.0,
                    &request.consumer.as_str(),
                    &request.duration.num_milliseconds(),
                    &selector_code(request.selector),
                    &filter.condition,
                    &filter.texts,
                    &filter.nums,
                    &reclaim,
                ],
            )
            .await?;
        match get::<i32>(&row, "outcome")? {
            sql::LEASED => rows::lease(
                &row,
                LeaseKey {
                    pool: &request.pool,
                    id,
                },
                Some(&request.consumer),
                LeaseStatus::Active,
                None,
            )
            .map(Some),
            sql::NO_PROXY => Ok(None),
            sql::NO_POOL => Err(Error::PoolNotFound(request.pool.clone())),
            other => Err(Error::Corrupt(format!("acquire: outcome {other}").into())),
        }
    }
}

fn pool_of(row: &Row) -> Result<ProxyPool> {
    Ok(ProxyPool {
        id: PoolId::from(get::<String>(row, "id")?),
        name: get(row, "name")?,
        description: get(row, "description")?,
    })
}

fn count(row: &Row, column: &str) -> Result<u64> {
    u64::try_from(get::<i64>(row, column)?)
        .map_err(|_| Error::Corrupt(format!("{column} is negative").into()))
}

fn stats_of(pool: &PoolId, row: &Row) -> Result<PoolStatsSnapshot> {
    Ok(PoolStatsSnapshot {
        pool: pool.clone(),
        total: count(row, "proxies_total")?,
        active: count(row, "proxies_active")?,
        available: count(row, "proxies_available")?,
        leased: count(row, "proxies_leased")?,
        active_leases: count(row, "active_leases")?,
        total_leases: count(row, "total_leases")?,
        released_leases: count(row, "released_leases")?,
        expired_leases: count(row, "expired_leases")?,
        collected_at: get(row, "collected_at")?,
    })
}

fn opt_i64(v: Option<u32>) -> Option<i64> {
    v.map(i64::from)
}

impl Storage for PostgresStorage {
    async fn ensure_consumer(&self, name: &ConsumerName) -> Result<Consumer> {
        validate::consumer_name(name)?;
        let row = self
            .query_one(
                "ensure_consumer",
                sql::ENSURE_CONSUMER,
                &[&name.as_str(), &Uuid::new_v4()],
            )
            .await?;
        Ok(Consumer {
            id: get(&row, "id")?,
            name: name.clone(),
        })
    }

    async fn list_consumers(&self) -> Result<Vec<Consumer>> {
        self.query("list_consumers", sql::LIST_CONSUMERS, &[])
            .await?
            .iter()
            .map(|row| {
                Ok(Consumer {
                    id: get(row, "id")?,
                    name: ConsumerName::from(get::<String>(row, "name")?),
                })
            })
            .collect()
    }

    async fn upsert_pool(&self, pool: &ProxyPool) -> Result<ProxyPool> {
        validate::pool(pool)?;
        storable("pool.name", Some(&pool.name))?;
        storable("pool.description", pool.description.as_deref())?;
        self.query(
            "upsert_pool",
            sql::UPSERT_POOL,
            &[&pool.id.as_str(), &pool.name, &pool.description],
        )
        .await?;
        Ok(pool.clone())
    }

    async fn get_pool(&self, pool: &PoolId) -> Result<Option<ProxyPool>> {
        validate::pool_id(pool)?;
        self.query("get_pool", sql::GET_POOL, &[&pool.as_str()])
            .await?
            .first()
            .map(pool_of)
            .transpose()
    }

    async fn list_pools(&self) -> Result<Vec<ProxyPool>> {
        self.query("list_pools", sql::LIST_POOLS, &[])
            .await?
            .iter()
            .map(pool_of)
            .collect()
    }

    async fn remove_pool(&self, pool: &PoolId) -> Result<bool> {
        validate::pool_id(pool)?;
        let row = self
            .query_one("remove_pool", sql::REMOVE_POOL, &[&pool.as_str()])
            .await?;
        row.try_get::<_, bool>(0)
            .map_err(|e| Error::Corrupt(e.to_string().into()))
    }

    async fn upsert_proxy(&self, proxy: &Proxy) -> Result<Proxy> {
        validate::proxy(proxy)?;
        for (field, value) in [
            ("proxy.host", Some(proxy.host.as_str())),
            ("proxy.source", proxy.source.as_deref()),
            ("proxy.country", proxy.country.as_deref()),
            ("proxy.city", proxy.city.as_deref()),
            ("proxy.isp", proxy.isp.as_deref()),
            (
                "proxy.credentials.username",
                proxy.credentials.as_ref().map(|c| c.username.as_str()),
            ),
            (
                // The message names the field only, never the value (I8).
                "proxy.credentials.password",
                proxy.credentials.as_ref().map(|c| c.password.expose()),
            ),
        ] {
            storable(field, value)?;
        }
        if proxy
            .extra
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(Error::invalid(
                "proxy.extra",
                "must not contain NUL characters",
            ));
        }
        let capacity = i32::try_from(proxy.capacity()).unwrap_or(MAX_CONCURRENCY as i32);
        let max = proxy.max_concurrency.map(|m| m as i32);
        let max_proxies = MAX_PROXIES_PER_POOL as i64;
        let country_key = proxy.country.as_ref().map(|c| c.to_ascii_lowercase());
        let port = i32::from(proxy.port);
        let row = self
            .query_one(
                "upsert_proxy",
                sql::UPSERT_PROXY,
                &[
                    &proxy.pool.as_str(),
                    &proxy.id.as_str(),
                    &proxy.host,
                    &port,
                    &proxy.protocol.scheme(),
                    &proxy.credentials.as_ref().map(|c| c.username.as_str()),
                    &proxy.credentials.as_ref().map(|c| c.password.expose()),
                    &proxy.status.as_str(),
                    &proxy.checked_at,
                    &opt_i64(proxy.latency_ms),
                    &proxy.source,
                    &proxy.country,
                    &country_key,
                    &proxy.city,
                    &proxy.latitude,
                    &proxy.longitude,
                    &proxy.isp,
                    &opt_i64(proxy.asn),
                    &max,
                    &capacity,
                    &Json(&proxy.extra),
                    &max_proxies,
                ],
            )
            .await?;
        let n = get::<i64>(&row, "n")?;
        match get::<i32>(&row, "outcome")? {
            sql::STORED => Ok(Proxy {
                current_leases: u32::try_from(n)
                    .map_err(|_| Error::Corrupt("current_leases".into()))?,
                ..proxy.clone()
            }),
            sql::CAP_BELOW_LEASES => Err(Error::invalid(
                "proxy.max_concurrency",
                format!("is below the proxy's {n} active leases; release them first"),
            )),
            sql::POOL_FULL => {
                validate::room_for_proxy(&proxy.pool, usize::try_from(n).unwrap_or(usize::MAX))?;
                Err(Error::Corrupt(
                    "upsert_proxy: pool full below the limit".into(),
                ))
            }
            sql::NO_POOL => Err(Error::PoolNotFound(proxy.pool.clone())),
            other => Err(Error::Corrupt(
                format!("upsert_proxy: outcome {other}").into(),
            )),
        }
    }

    async fn get_proxy(&self, pool: &PoolId, proxy: &ProxyId) -> Result<Option<Proxy>> {
        validate::pool_id(pool)?;
        storable_proxy_id(proxy)?;
        let statement =
            format!("SELECT {PROXY_COLUMNS} FROM pharox_proxies WHERE pool_id = $1 AND id = $2");
        let found = self
            .query("get_proxy", &statement, &[&pool.as_str(), &proxy.as_str()])
            .await?;
        match found.first() {
            Some(row) => rows::proxy(row).map(Some),
            None if self.pool_exists(pool).await? => Ok(None),
            None => Err(Error::PoolNotFound(pool.clone())),
        }
    }

    async fn list_proxies(&self, pool: &PoolId) -> Result<Vec<Proxy>> {
        validate::pool_id(pool)?;
        let statement =
            format!("SELECT {PROXY_COLUMNS} FROM pharox_proxies WHERE pool_id = $1 ORDER BY seq");
        let found = self
            .query("list_proxies", &statement, &[&pool.as_str()])
            .await?;
        if found.is_empty() && !self.pool_exists(pool).await? {
            return Err(Error::PoolNotFound(pool.clone()));
        }
        found.iter().map(rows::proxy).collect()
    }

    async fn remove_proxy(&self, pool: &PoolId, proxy: &ProxyId) -> Result<bool> {
        validate::pool_id(pool)?;
        storable_proxy_id(proxy)?;
        let row = self
            .query_one(
                "remove_proxy",
                sql::REMOVE_PROXY,
                &[&pool.as_str(), &proxy.as_str()],
            )
            .await?;
        match row
            .try_get::<_, i32>(0)
            .map_err(|e| Error::Corrupt(e.to_string().into()))?
        {
            0 => Ok(false),
            1 => Ok(true),
            sql::NO_POOL => Err(Error::PoolNotFound(pool.clone())),
            other => Err(Error::Corrupt(
                format!("remove_proxy: outcome {other}").into(),
            )),
        }
    }

    async fn find_available_proxy(
        &self,
        pool: &PoolId,
        filters: &ProxyFilters,
        selector: Selector,
    ) -> Result<Option<Proxy>> {
        validate::pool_id(pool)?;
        filters.validate()?;
        no_predicate(filters)?;
        storable_filters(filters)?;
        let filter = FilterSql::of(filters);
        let reclaim = i32::try_from(self.inner.config.reclaim_batch).unwrap_or(i32::MAX);
        let found = self
            .query(
                "find_available_proxy",
                sql::FIND,
                &[
                    &pool.as_str(),
                    &selector_code(selector),
                    &filter.condition,
                    &filter.texts,
                    &filter.nums,
                    &reclaim,
                ],
            )
            .await?;
        let Some(row) = found.first() else {
            return Ok(None);
        };
        if get::<i32>(row, "outcome")? == sql::NO_POOL {
            return Err(Error::PoolNotFound(pool.clone()));
        }
        let id = ProxyId::from(get::<String>(row, "proxy_id")?);
        self.get_proxy(pool, &id).await
    }

    async fn acquire(&self, request: &AcquireRequest) -> Result<Option<Lease>> {
        self.select(request).await
    }

    async fn get_lease(&self, pool: &PoolId, lease: &LeaseId) -> Result<Option<Lease>> {
        validate::pool_id(pool)?;
        let found = self
            .query("get_lease", sql::GET_LEASE, &[&pool.as_str(), &lease.0])
            .await?;
        found
            .first()
            .map(|row| {
                rows::lease(
                    row,
                    LeaseKey { pool, id: *lease },
                    None,
                    LeaseStatus::Active,
                    None,
                )
            })
            .transpose()
    }

    async fn release(&self, lease: &Lease) -> Result<ReleaseOutcome> {
        Ok(match self.release_by_ref(&LeaseRef::from(lease)).await? {
            Some((_, outcome)) => outcome,
            None => ReleaseOutcome::NotHeld,
        })
    }

    async fn release_by_ref(&self, lease: &LeaseRef) -> Result<Option<(Lease, ReleaseOutcome)>> {
        if validate::pool_id(&lease.pool).is_err() {
            return Ok(None);
        }
        let token = lease.token.map(|t| i64::try_from(t).unwrap_or(i64::MAX));
        let found = self
            .query(
                "release",
                sql::RELEASE,
                &[&lease.pool.as_str(), &lease.id.0, &token],
            )
            .await?;
        let Some(row) = found.first() else {
            return Ok(None);
        };
        let outcome = match get::<i32>(row, "outcome")? {
            sql::RELEASED => ReleaseOutcome::Released,
            sql::RELEASED_EXPIRED => ReleaseOutcome::Expired,
            other => {
                return Err(Error::Corrupt(format!("release: outcome {other}").into()));
            }
        };
        let ended = rows::lease(
            row,
            LeaseKey {
                pool: &lease.pool,
                id: lease.id,
            },
            None,
            LeaseStatus::Active,
            None,
        )?;
        Ok(Some((ended, outcome)))
    }

    async fn renew(&self, lease: &Lease, duration: TimeDelta) -> Result<Lease> {
        self.renew_by_ref(&LeaseRef::from(lease), duration).await
    }

    async fn renew_by_ref(&self, lease: &LeaseRef, duration: TimeDelta) -> Result<Lease> {
        validate::lease_duration(duration)?;
        let lost = || Error::LeaseLost { lease: lease.id };
        if validate::pool_id(&lease.pool).is_err() {
            return Err(lost());
        }
        let token = lease.token.map(|t| i64::try_from(t).unwrap_or(i64::MAX));
        let found = self
            .query(
                "renew",
                sql::RENEW,
                &[
                    &lease.pool.as_str(),
                    &lease.id.0,
                    &token,
                    &duration.num_milliseconds(),
                ],
            )
            .await?;
        let row = found.first().ok_or_else(lost)?;
        rows::lease(
            row,
            LeaseKey {
                pool: &lease.pool,
                id: lease.id,
            },
            None,
            LeaseStatus::Active,
            None,
        )
    }

    async fn cleanup_expired(&self, pool: &PoolId, limit: usize) -> Result<usize> {
        validate::pool_id(pool)?;
        validate::cleanup_limit(limit)?;
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let row = self
            .query_one("cleanup_expired", sql::CLEANUP, &[&pool.as_str(), &limit])
            .await?;
        match row
            .try_get::<_, Option<i32>>(0)
            .map_err(|e| Error::Corrupt(e.to_string().into()))?
        {
            Some(n) => Ok(usize::try_from(n).unwrap_or(0)),
            None => Err(Error::PoolNotFound(pool.clone())),
        }
    }

    async fn pool_stats(&self, pool: &PoolId) -> Result<PoolStatsSnapshot> {
        validate::pool_id(pool)?;
        let found = self
            .query("pool_stats", sql::STATS, &[&pool.as_str()])
            .await?;
        match found.first() {
            Some(row) => stats_of(pool, row),
            None => Err(Error::PoolNotFound(pool.clone())),
        }
    }

    async fn stats_history(&self, pool: &PoolId, limit: usize) -> Result<Vec<PoolStatsSnapshot>> {
        crate::history::recorded(self, pool, limit).await
    }

    async fn pool_snapshot(&self, pool: &PoolId) -> Result<PoolSnapshot> {
        validate::pool_id(pool)?;
        let after = self.inner.config.operation_timeout;
        let read = async {
            let mut client = self.inner.pool.get().await.map_err(pool_error)?;
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(query_error)?;
            let head = tx
                .query(
                    "SELECT id, name, description, proxies_total, proxies_active, \
                     proxies_available, proxies_leased, active_leases, total_leases, \
                     released_leases, expired_leases, clock_timestamp() AS collected_at \
                     FROM pharox_pool_stats WHERE id = $1",
                    &[&pool.as_str()],
                )
                .await
                .map_err(query_error)?;
            let Some(head) = head.first() else {
                return Err(Error::PoolNotFound(pool.clone()));
            };
            let proxies = tx
                .query(
                    &format!(
                        "SELECT {PROXY_COLUMNS} FROM pharox_proxies WHERE pool_id = $1 \
                         ORDER BY seq"
                    ),
                    &[&pool.as_str()],
                )
                .await
                .map_err(query_error)?;
            let leases = tx
                .query(sql::SNAPSHOT_LEASES, &[&pool.as_str()])
                .await
                .map_err(query_error)?;
            tx.commit().await.map_err(query_error)?;
            let stats = stats_of(pool, head)?;
            let taken_at: DateTime<Utc> = stats.collected_at;
            Ok(PoolSnapshot {
                pool: pool_of(head)?,
                proxies: proxies.iter().map(rows::proxy).collect::<Result<_>>()?,
                leases: leases
                    .iter()
                    .map(|row| {
                        let id = LeaseId(get(row, "id")?);
                        rows::lease(row, LeaseKey { pool, id }, None, LeaseStatus::Active, None)
                    })
                    .collect::<Result<_>>()?,
                stats,
                taken_at,
            })
        };
        match tokio::time::timeout(after, read).await {
            Ok(answer) => answer,
            Err(_) => Err(Error::Timeout {
                operation: "pool_snapshot",
                after,
            }),
        }
    }

    async fn apply_health_check_result(&self, result: &HealthCheckResult) -> Result<Option<Proxy>> {
        validate::pool_id(&result.pool)?;
        storable_proxy_id(&result.proxy)?;
        let found = self
            .query(
                "apply_health_check_result",
                sql::HEALTH,
                &[
                    &result.pool.as_str(),
                    &result.proxy.as_str(),
                    &result.status.as_str(),
                    &result.checked_at,
                    &opt_i64(result.latency_ms),
                ],
            )
            .await?;
        found.first().map(rows::proxy).transpose()
    }
}
