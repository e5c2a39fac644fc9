//! A store wrapper for server tests: fails every call with a chosen error,
//! counts `list_pools`, and can remove a proxy right after reading it (a
//! concurrent `DELETE` landing at that exact point).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::TimeDelta;
use parking_lot::Mutex;
use pharox_core::{
    AcquireRequest, Consumer, ConsumerName, Error, HealthCheckResult, Lease, LeaseId, LeaseRef,
    PoolId, PoolSnapshot, PoolStatsSnapshot, Proxy, ProxyFilters, ProxyId, ProxyPool,
    ReleaseOutcome, Result, Selector, Storage,
};

#[derive(Default)]
pub struct Hooks {
    /// Every call fails with this error while it is set.
    pub fail_with: Mutex<Option<fn() -> Error>>,
    /// `list_pools` calls seen.
    pub list_pools_calls: AtomicU32,
    /// The next `get_proxy` of this proxy removes it after reading it.
    pub remove_after_get: Mutex<Option<(PoolId, ProxyId)>>,
}

/// `inner` with [`Hooks`]; clones share them.
#[derive(Clone)]
pub struct Hooked<S> {
    pub inner: S,
    pub hooks: Arc<Hooks>,
}

impl<S> Hooked<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            hooks: Arc::default(),
        }
    }

    fn check(&self) -> Result<()> {
        match *self.hooks.fail_with.lock() {
            Some(make) => Err(make()),
            None => Ok(()),
        }
    }
}

impl<S: Storage + Clone> Storage for Hooked<S> {
    async fn ensure_consumer(&self, name: &ConsumerName) -> Result<Consumer> {
        self.check()?;
        self.inner.ensure_consumer(name).await
    }
    async fn list_consumers(&self) -> Result<Vec<Consumer>> {
        self.check()?;
        self.inner.list_consumers().await
    }
    async fn upsert_pool(&self, pool: &ProxyPool) -> Result<ProxyPool> {
        self.check()?;
        self.inner.upsert_pool(pool).await
    }
    async fn get_pool(&self, pool: &PoolId) -> Result<Option<ProxyPool>> {
        self.check()?;
        self.inner.get_pool(pool).await
    }
    async fn list_pools(&self) -> Result<Vec<ProxyPool>> {
        self.hooks.list_pools_calls.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.list_pools().await
    }
    async fn remove_pool(&self, pool: &PoolId) -> Result<bool> {
        self.check()?;
        self.inner.remove_pool(pool).await
    }
    async fn upsert_proxy(&self, proxy: &Proxy) -> Result<Proxy> {
        self.check()?;
        self.inner.upsert_proxy(proxy).await
    }
    async fn get_proxy(&self, pool: &PoolId, proxy: &ProxyId) -> Result<Option<Proxy>> {
        self.check()?;
        let found = self.inner.get_proxy(pool, proxy).await?;
        let armed = {
            let mut armed = self.hooks.remove_after_get.lock();
            if armed.as_ref() == Some(&(pool.clone(), proxy.clone())) {
                armed.take()
            } else {
                None
            }
        };
        if armed.is_some() {
            assert!(self.inner.remove_proxy(pool, proxy).await?);
        }
        Ok(found)
    }
    async fn list_proxies(&self, pool: &PoolId) -> Result<Vec<Proxy>> {
        self.check()?;
        self.inner.list_proxies(pool).await
    }
    async fn remove_proxy(&self, pool: &PoolId, proxy: &ProxyId) -> Result<bool> {
        self.check()?;
        self.inner.remove_proxy(pool, proxy).await
    }
    async fn find_available_proxy(
        &self,
        pool: &PoolId,
        filters: &ProxyFilters,
        selector: Selector,
    ) -> Result<Option<Proxy>> {
        self.check()?;
        self.inner
            .find_available_proxy(pool, filters, selector)
            .await
    }
    async fn acquire(&self, request: &AcquireRequest) -> Result<Option<Lease>> {
        self.check()?;
        self.inner.acquire(request).await
    }
    async fn get_lease(&self, pool: &PoolId, lease: &LeaseId) -> Result<Option<Lease>> {
        self.check()?;
        self.inner.get_lease(pool, lease).await
    }
    async fn release(&self, lease: &Lease) -> Result<ReleaseOutcome> {
        self.check()?;
        self.inner.release(lease).await
    }
    async fn release_by_ref(&self, lease: &LeaseRef) -> Result<Option<(Lease, ReleaseOutcome)>> {
        self.check()?;
        self.inner.release_by_ref(lease).await
    }
    async fn renew_by_ref(&self, lease: &LeaseRef, duration: TimeDelta) -> Result<Lease> {
        self.check()?;
        self.inner.renew_by_ref(lease, duration).await
    }
    async fn renew(&self, lease: &Lease, duration: TimeDelta) -> Result<Lease> {
        self.check()?;
        self.inner.renew(lease, duration).await
    }
    async fn cleanup_expired(&self, pool: &PoolId, limit: usize) -> Result<usize> {
        self.check()?;
        self.inner.cleanup_expired(pool, limit).await
    }
    async fn pool_stats(&self, pool: &PoolId) -> Result<PoolStatsSnapshot> {
        self.check()?;
        self.inner.pool_stats(pool).await
    }
    async fn pool_snapshot(&self, pool: &PoolId) -> Result<PoolSnapshot> {
        self.check()?;
        self.inner.pool_snapshot(pool).await
    }
    async fn stats_history(&self, pool: &PoolId, limit: usize) -> Result<Vec<PoolStatsSnapshot>> {
        self.check()?;
        self.inner.stats_history(pool, limit).await
    }
    async fn apply_health_check_result(&self, result: &HealthCheckResult) -> Result<Option<Proxy>> {
        self.check()?;
        self.inner.apply_health_check_result(result).await
    }
    async fn wait_for_capacity(&self, pool: &PoolId, max_wait: Duration) {
        self.inner.wait_for_capacity(pool, max_wait).await;
    }
}
