//! `impl Storage for RemoteStorage`: one request per call, on the routes
//! `docs/http-api.md` describes.

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use pharox_core::{
    AcquireRequest, Consumer, ConsumerName, Error, HealthCheckResult, Lease, LeaseId, LeaseRef,
    PoolId, PoolSnapshot, PoolStatsSnapshot, Proxy, ProxyFilters, ProxyId, ProxyPool,
    ReleaseOutcome, Result, Selector, Storage, validate,
};
use pharox_wire::{
    AcquireInput, CleanupAnswer, CleanupInput, ConsumerBody, CreateProxy, EnsureConsumer,
    FiltersBody, FindAnswer, FindInput, HealthInput, LeaseRecord, MAX_WAIT_MS, PoolBody,
    ProxyRecord, ReleaseAnswer, ReleaseInput, RenewInput, SnapshotBody, StatsBody,
    StatsHistoryBody, UpsertPool, WaitInput, codes,
};
use reqwest::{Method, StatusCode};

use crate::RemoteStorage;
use crate::classify::Subject;
use crate::transport::{WITH_CREDENTIALS, segment};

/// No body.
const EMPTY: Option<&()> = None;

/// `/v1/pools/{pool}` for a valid pool id.
fn pool_path(pool: &PoolId) -> Result<String> {
    validate::pool_id(pool)?;
    Ok(format!("/v1/pools/{}", segment("pool", pool.as_str())?))
}

/// `/v1/pools/{pool}/proxies/{proxy}`.
fn proxy_path(pool: &PoolId, proxy: &ProxyId) -> Result<String> {
    Ok(format!(
        "{}/proxies/{}",
        pool_path(pool)?,
        segment("proxy.id", proxy.as_str())?
    ))
}

/// `/v1/pools/{pool}/leases/{lease}/{action}`.
fn lease_path(lease: &LeaseRef, action: &str) -> Result<String> {
    Ok(format!(
        "{}/leases/{}{action}",
        pool_path(&lease.pool)?,
        lease.id
    ))
}

fn filters_body(filters: &ProxyFilters) -> Result<Option<FiltersBody>> {
    if filters.is_empty() {
        return Ok(None);
    }
    FiltersBody::from_filters(filters).map(Some)
}

fn about_pool(pool: &PoolId) -> Subject<'_> {
    Subject {
        pool: Some(pool),
        ..Subject::default()
    }
}

impl RemoteStorage {
    async fn call<B: serde::Serialize + ?Sized>(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<crate::transport::Answer> {
        self.inner.send(op, method, path, body, None).await
    }
}

impl Storage for RemoteStorage {
    async fn ensure_consumer(&self, name: &ConsumerName) -> Result<Consumer> {
        validate::consumer_name(name)?;
        let body = EnsureConsumer {
            name: name.as_str().to_owned(),
        };
        let answer = self
            .call(
                "ensure_consumer",
                Method::POST,
                "/v1/consumers",
                Some(&body),
            )
            .await?;
        Ok(answer.decode::<ConsumerBody>(Subject::default())?.into())
    }

    async fn list_consumers(&self) -> Result<Vec<Consumer>> {
        let answer = self
            .call("list_consumers", Method::GET, "/v1/consumers", EMPTY)
            .await?;
        let all: Vec<ConsumerBody> = answer.decode(Subject::default())?;
        Ok(all.into_iter().map(Consumer::from).collect())
    }

    async fn upsert_pool(&self, pool: &ProxyPool) -> Result<ProxyPool> {
        validate::pool(pool)?;
        let body = UpsertPool {
            name: Some(pool.name.clone()),
            description: pool.description.clone(),
        };
        let answer = self
            .call(
                "upsert_pool",
                Method::PUT,
                &pool_path(&pool.id)?,
                Some(&body),
            )
            .await?;
        Ok(answer.decode::<PoolBody>(about_pool(&pool.id))?.into_pool())
    }

    async fn get_pool(&self, pool: &PoolId) -> Result<Option<ProxyPool>> {
        let answer = self
            .call("get_pool", Method::GET, &pool_path(pool)?, EMPTY)
            .await?;
        let found: Option<PoolBody> = answer.decode_unless(
            StatusCode::NOT_FOUND,
            codes::POOL_NOT_FOUND,
            about_pool(pool),
        )?;
        Ok(found.map(PoolBody::into_pool))
    }

    async fn list_pools(&self) -> Result<Vec<ProxyPool>> {
        let answer = self
            .call("list_pools", Method::GET, "/v1/pools", EMPTY)
            .await?;
        let all: Vec<PoolBody> = answer.decode(Subject::default())?;
        Ok(all.into_iter().map(PoolBody::into_pool).collect())
    }

    async fn remove_pool(&self, pool: &PoolId) -> Result<bool> {
        let answer = self
            .call("remove_pool", Method::DELETE, &pool_path(pool)?, EMPTY)
            .await?;
        answer.done_unless_not_found(codes::POOL_NOT_FOUND, about_pool(pool))
    }

    async fn upsert_proxy(&self, proxy: &Proxy) -> Result<Proxy> {
        validate::proxy(proxy)?;
        let path = format!("{}{WITH_CREDENTIALS}", proxy_path(&proxy.pool, &proxy.id)?);
        let body = CreateProxy::from_proxy(proxy, false);
        let answer = self
            .call("upsert_proxy", Method::PUT, &path, Some(&body))
            .await?;
        answer
            .decode::<ProxyRecord>(about_pool(&proxy.pool))?
            .into_proxy()
    }

    async fn get_proxy(&self, pool: &PoolId, proxy: &ProxyId) -> Result<Option<Proxy>> {
        let path = format!("{}{WITH_CREDENTIALS}", proxy_path(pool, proxy)?);
        let answer = self.call("get_proxy", Method::GET, &path, EMPTY).await?;
        let found: Option<ProxyRecord> = answer.decode_unless(
            StatusCode::NOT_FOUND,
            codes::PROXY_NOT_FOUND,
            about_pool(pool),
        )?;
        found.map(ProxyRecord::into_proxy).transpose()
    }

    async fn list_proxies(&self, pool: &PoolId) -> Result<Vec<Proxy>> {
        let path = format!("{}/proxies/{WITH_CREDENTIALS}&view=full", pool_path(pool)?);
        let answer = self.call("list_proxies", Method::GET, &path, EMPTY).await?;
        let all: Vec<ProxyRecord> = answer.decode(about_pool(pool))?;
        all.into_iter().map(ProxyRecord::into_proxy).collect()
    }

    async fn remove_proxy(&self, pool: &PoolId, proxy: &ProxyId) -> Result<bool> {
        let path = proxy_path(pool, proxy)?;
        let answer = self
            .call("remove_proxy", Method::DELETE, &path, EMPTY)
            .await?;
        answer.done_unless_not_found(codes::PROXY_NOT_FOUND, about_pool(pool))
    }

    async fn find_available_proxy(
        &self,
        pool: &PoolId,
        filters: &ProxyFilters,
        selector: Selector,
    ) -> Result<Option<Proxy>> {
        filters.validate()?;
        let body = FindInput {
            strategy: Some(selector.as_str().to_owned()),
            filters: filters_body(filters)?,
        };
        let path = format!("{}/find{WITH_CREDENTIALS}", pool_path(pool)?);
        let answer = self
            .call("find_available_proxy", Method::POST, &path, Some(&body))
            .await?;
        let found: FindAnswer = answer.decode(about_pool(pool))?;
        found.proxy.map(ProxyRecord::into_proxy).transpose()
    }

    async fn acquire(&self, request: &AcquireRequest) -> Result<Option<Lease>> {
        validate::acquire_request(request)?;
        let body = AcquireInput {
            consumer: Some(request.consumer.as_str().to_owned()),
            duration_ms: u64::try_from(request.duration.num_milliseconds()).ok(),
            strategy: Some(request.selector.as_str().to_owned()),
            filters: filters_body(&request.filters)?,
        };
        let path = format!("{}/leases", pool_path(&request.pool)?);
        let answer = self
            .call("acquire", Method::POST, &path, Some(&body))
            .await?;
        let granted: Option<LeaseRecord> = answer.decode_unless(
            StatusCode::CONFLICT,
            codes::NO_PROXY_AVAILABLE,
            about_pool(&request.pool),
        )?;
        granted.map(LeaseRecord::into_lease).transpose()
    }

    async fn get_lease(&self, pool: &PoolId, lease: &LeaseId) -> Result<Option<Lease>> {
        let path = format!("{}/leases/{lease}{WITH_CREDENTIALS}", pool_path(pool)?);
        let answer = self.call("get_lease", Method::GET, &path, EMPTY).await?;
        let found: Option<LeaseRecord> = answer.decode_unless(
            StatusCode::NOT_FOUND,
            codes::LEASE_NOT_FOUND,
            about_pool(pool),
        )?;
        found.map(LeaseRecord::into_lease).transpose()
    }

    async fn release(&self, lease: &Lease) -> Result<ReleaseOutcome> {
        Ok(match self.release_by_ref(&LeaseRef::from(lease)).await? {
            Some((_, outcome)) => outcome,
            None => ReleaseOutcome::NotHeld,
        })
    }

    async fn release_by_ref(&self, lease: &LeaseRef) -> Result<Option<(Lease, ReleaseOutcome)>> {
        let path = format!("{}{WITH_CREDENTIALS}", lease_path(lease, "/release")?);
        let body = ReleaseInput { token: lease.token };
        let answer = self
            .call("release", Method::POST, &path, Some(&body))
            .await?;
        let Some(released) = answer.decode_unless::<ReleaseAnswer>(
            StatusCode::NOT_FOUND,
            codes::LEASE_NOT_FOUND,
            about_pool(&lease.pool),
        )?
        else {
            return Ok(None);
        };
        match released.outcome {
            outcome @ (ReleaseOutcome::Released | ReleaseOutcome::Expired) => {
                Ok(Some((released.lease.into_lease()?, outcome)))
            }
            other => Err(Error::Corrupt(
                format!("a release answered 200 with outcome {other:?}").into(),
            )),
        }
    }

    async fn renew(&self, lease: &Lease, duration: TimeDelta) -> Result<Lease> {
        self.renew_by_ref(&LeaseRef::from(lease), duration).await
    }

    async fn renew_by_ref(&self, lease: &LeaseRef, duration: TimeDelta) -> Result<Lease> {
        validate::lease_duration(duration)?;
        let body = RenewInput {
            token: lease.token,
            duration_ms: u64::try_from(duration.num_milliseconds()).ok(),
        };
        let answer = self
            .call(
                "renew",
                Method::POST,
                &lease_path(lease, "/renew")?,
                Some(&body),
            )
            .await?;
        let about = Subject {
            pool: Some(&lease.pool),
            lease: Some(lease.id),
            ..Subject::default()
        };
        answer.decode::<LeaseRecord>(about)?.into_lease()
    }

    async fn cleanup_expired(&self, pool: &PoolId, limit: usize) -> Result<usize> {
        validate::cleanup_limit(limit)?;
        let path = format!("{}/cleanup", pool_path(pool)?);
        let body = CleanupInput { limit: Some(limit) };
        let answer = self
            .call("cleanup_expired", Method::POST, &path, Some(&body))
            .await?;
        Ok(answer.decode::<CleanupAnswer>(about_pool(pool))?.reclaimed)
    }

    async fn pool_stats(&self, pool: &PoolId) -> Result<PoolStatsSnapshot> {
        let path = format!("{}/stats", pool_path(pool)?);
        let answer = self.call("pool_stats", Method::GET, &path, EMPTY).await?;
        Ok(answer.decode::<StatsBody>(about_pool(pool))?.into())
    }

    async fn stats_history(&self, pool: &PoolId, limit: usize) -> Result<Vec<PoolStatsSnapshot>> {
        validate::history_limit(limit)?;
        let path = format!("{}/stats/history?limit={limit}", pool_path(pool)?);
        let answer = self
            .call("stats_history", Method::GET, &path, EMPTY)
            .await?;
        let body = answer.decode::<StatsHistoryBody>(about_pool(pool))?;
        Ok(body.snapshots.into_iter().map(Into::into).collect())
    }

    async fn pool_snapshot(&self, pool: &PoolId) -> Result<PoolSnapshot> {
        let path = format!("{}/snapshot{WITH_CREDENTIALS}", pool_path(pool)?);
        let answer = self
            .call("pool_snapshot", Method::GET, &path, EMPTY)
            .await?;
        answer
            .decode::<SnapshotBody>(about_pool(pool))?
            .into_snapshot()
    }

    async fn apply_health_check_result(&self, result: &HealthCheckResult) -> Result<Option<Proxy>> {
        let path = format!("{}/health{WITH_CREDENTIALS}", pool_path(&result.pool)?);
        let body = HealthInput::from_result(result);
        let answer = self
            .call(
                "apply_health_check_result",
                Method::POST,
                &path,
                Some(&body),
            )
            .await?;
        let updated: Option<ProxyRecord> = answer.decode_unless(
            StatusCode::NOT_FOUND,
            codes::PROXY_NOT_FOUND,
            about_pool(&result.pool),
        )?;
        updated.map(ProxyRecord::into_proxy).transpose()
    }

    /// A long poll (`POST /v1/pools/{pool}/wait`): the server answers when
    /// its store may have freed capacity, or after `max_wait`. If the poll
    /// fails (server unreachable, an older server without the route), this
    /// sleeps out the rest of `max_wait` instead, as the default does.
    async fn wait_for_capacity(&self, pool: &PoolId, max_wait: Duration) {
        let started = Instant::now();
        let max_wait = max_wait.min(Duration::from_millis(MAX_WAIT_MS));
        let polled = async {
            let path = format!("{}/wait", pool_path(pool)?);
            let body = WaitInput {
                max_wait_ms: u64::try_from(max_wait.as_millis()).unwrap_or(MAX_WAIT_MS),
            };
            let budget = Some(max_wait + self.inner.timeout);
            let answer = self
                .inner
                .send(
                    "wait_for_capacity",
                    Method::POST,
                    &path,
                    Some(&body),
                    budget,
                )
                .await?;
            answer.done(about_pool(pool))
        };
        if let Err(e) = polled.await {
            tracing::debug!(%pool, error = %e, "waiting for capacity on the server failed; sleeping instead");
            tokio::time::sleep(max_wait.saturating_sub(started.elapsed())).await;
        }
    }
}
