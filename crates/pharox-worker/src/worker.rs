//! The worker process: sweeps, stats and health checks on intervals, an
//! HTTP endpoint for `/metrics` and `/healthz`, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use pharox_core::validate::MAX_CLEANUP_BATCH;
use pharox_core::{Error, PoolId, Result};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::health::{HealthChecker, HealthConfig};
use crate::metrics::Metrics;
use crate::store::WorkerStore;
use crate::sweep::sweep_pool;

/// How a [`Worker`] runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Pools to look after; empty means every pool in the store, discovered
    /// again on each tick (new pools are picked up without a restart).
    pub pools: Vec<PoolId>,
    /// Time between sweeps (each followed by a stats snapshot per pool). The
    /// first tick comes one interval after start.
    pub sweep_interval: Duration,
    /// Expired leases reclaimed per `cleanup_expired` call, 1 to
    /// [`MAX_CLEANUP_BATCH`].
    pub sweep_batch: usize,
    /// Each interval is stretched or shrunk by a random fraction up to this
    /// (0.0 to 0.5), so a fleet of workers does not sweep in lockstep.
    pub jitter: f64,
    /// Snapshots kept per pool in the store's stats history.
    pub history_len: usize,
    /// Where to serve `/metrics` and `/healthz`; `None` serves nothing.
    pub metrics_addr: Option<SocketAddr>,
    /// Health checks to run; `None` runs none.
    pub health: Option<HealthConfig>,
    /// Time between health-check passes.
    pub health_interval: Duration,
    /// After cancellation, how long work in flight may take before it is
    /// abandoned (a batch or check in flight is never cut in the middle
    /// before that).
    pub shutdown_grace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            pools: Vec::new(),
            sweep_interval: Duration::from_secs(5),
            sweep_batch: 500,
            jitter: 0.1,
            history_len: 1_000,
            metrics_addr: None,
            health: None,
            health_interval: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(3),
        }
    }
}

impl WorkerConfig {
    fn validate(&self) -> Result<()> {
        if self.sweep_interval.is_zero() {
            return Err(Error::invalid("sweep_interval", "must be positive"));
        }
        if self.health_interval.is_zero() {
            return Err(Error::invalid("health_interval", "must be positive"));
        }
        if self.sweep_batch == 0 || self.sweep_batch > MAX_CLEANUP_BATCH {
            // Refused at start rather than by every cleanup call of every sweep.
            return Err(Error::invalid(
                "sweep_batch",
                format!(
                    "is {}, must be 1 to {MAX_CLEANUP_BATCH} (the most one cleanup call reclaims)",
                    self.sweep_batch
                ),
            ));
        }
        if !(0.0..=0.5).contains(&self.jitter) {
            return Err(Error::invalid("jitter", "must be within 0.0 ..= 0.5"));
        }
        if self.history_len == 0 {
            return Err(Error::invalid("history_len", "must be at least 1"));
        }
        for pool in &self.pools {
            pharox_core::validate::pool_id(pool)?;
        }
        Ok(())
    }
}

/// A worker over a store. See the crate docs.
pub struct Worker<S: WorkerStore> {
    store: S,
    config: WorkerConfig,
    metrics: Arc<Metrics>,
}

impl<S: WorkerStore> Worker<S> {
    /// A worker with fresh metrics.
    pub fn new(store: S, config: WorkerConfig) -> Self {
        Self {
            store,
            config,
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// The worker's metrics (shared with its HTTP endpoint).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Runs until `stop` is cancelled, then lets work in flight finish for
    /// at most [`WorkerConfig::shutdown_grace`] and returns. Fails at once
    /// on a bad configuration or when the metrics address cannot be bound.
    pub async fn run(self, stop: CancellationToken) -> Result<()> {
        self.config.validate()?;
        let checker = match &self.config.health {
            Some(h) => Some(Arc::new(
                HealthChecker::new(h.clone())?.with_metrics(self.metrics.clone()),
            )),
            None => None,
        };
        let mut tasks = JoinSet::new();
        if let Some(addr) = self.config.metrics_addr {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                Error::invalid("metrics_addr", format!("cannot listen on {addr}: {e}"))
            })?;
            let bound = listener.local_addr().unwrap_or(addr);
            tracing::info!(%bound, "serving /metrics and /healthz");
            let app = Router::new()
                .route("/metrics", get(metrics_page::<S>))
                .route("/healthz", get(healthz::<S>))
                .with_state(Endpoint {
                    store: self.store.clone(),
                    metrics: self.metrics.clone(),
                });
            let stop = stop.clone();
            tasks.spawn(async move {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "metrics endpoint failed");
                }
            });
        }
        let me = Arc::new(self);
        tasks.spawn(me.clone().sweep_loop(stop.clone()));
        if let Some(checker) = checker {
            tasks.spawn(me.clone().health_loop(checker, stop.clone()));
        }
        tracing::info!(
            interval = ?me.config.sweep_interval,
            pools = ?me.config.pools,
            "worker started"
        );
        stop.cancelled().await;
        tracing::info!(grace = ?me.config.shutdown_grace, "stopping");
        let drained = tokio::time::timeout(me.config.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("work still in flight after the grace period: abandoned");
            tasks.abort_all();
        }
        tracing::info!("worker stopped");
        Ok(())
    }

    /// The pools to look after now.
    async fn pools(&self) -> Result<Vec<PoolId>> {
        if !self.config.pools.is_empty() {
            return Ok(self.config.pools.clone());
        }
        Ok(self
            .store
            .list_pools()
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect())
    }

    /// Waits one jittered `interval`; false when stopped first.
    async fn wait(&self, interval: Duration, stop: &CancellationToken) -> bool {
        let j = self.config.jitter;
        let factor = 1.0 + j * (2.0 * fastrand::f64() - 1.0);
        tokio::select! {
            _ = stop.cancelled() => false,
            _ = tokio::time::sleep(interval.mul_f64(factor)) => true,
        }
    }

    async fn sweep_loop(self: Arc<Self>, stop: CancellationToken) {
        while self.wait(self.config.sweep_interval, &stop).await {
            if let Err(e) = self.tick(&stop).await {
                tracing::warn!(error = %e, retryable = e.is_retryable(), "sweep tick failed");
            }
        }
    }

    /// One sweep and stats snapshot of every pool.
    async fn tick(&self, stop: &CancellationToken) -> Result<()> {
        let pools = self.pools().await?;
        for pool in &pools {
            if stop.is_cancelled() {
                break;
            }
            match self.tend(pool, stop).await {
                Ok(()) => {}
                Err(Error::PoolNotFound(_)) => self.metrics.forget_pool(pool),
                Err(e) => tracing::warn!(%pool, error = %e, "pool sweep failed"),
            }
        }
        for gone in self.metrics.pools() {
            if !pools.contains(&gone) {
                self.metrics.forget_pool(&gone);
            }
        }
        Ok(())
    }

    async fn tend(&self, pool: &PoolId, stop: &CancellationToken) -> Result<()> {
        let report = sweep_pool(&self.store, pool, self.config.sweep_batch, stop).await?;
        self.metrics.observe_sweep(pool, &report);
        if report.reclaimed > 0 {
            tracing::info!(%pool, reclaimed = report.reclaimed, batches = report.batches,
                ms = report.duration.as_millis() as u64, "swept expired leases");
        } else {
            tracing::debug!(%pool, "nothing to sweep");
        }
        let stats = self.store.pool_stats(pool).await?;
        self.metrics.observe_stats(&stats);
        self.store
            .record_stats(&stats, self.config.history_len)
            .await
    }

    async fn health_loop(self: Arc<Self>, checker: Arc<HealthChecker>, stop: CancellationToken) {
        while self.wait(self.config.health_interval, &stop).await {
            let pools = match self.pools().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "health pass: listing pools failed");
                    continue;
                }
            };
            for pool in pools {
                if stop.is_cancelled() {
                    break;
                }
                match checker.run_pass(&self.store, &pool, &stop).await {
                    Ok(rows) => tracing::info!(%pool, checked = rows.len(), "health pass done"),
                    Err(e) => tracing::warn!(%pool, error = %e, "health pass failed"),
                }
            }
        }
    }
}

#[derive(Clone)]
struct Endpoint<S> {
    store: S,
    metrics: Arc<Metrics>,
}

async fn metrics_page<S: WorkerStore>(State(e): State<Endpoint<S>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        e.metrics.render(),
    )
}

async fn healthz<S: WorkerStore>(State(e): State<Endpoint<S>>) -> impl IntoResponse {
    match tokio::time::timeout(Duration::from_secs(2), e.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ok: store reachable\n".to_owned()),
        Ok(Err(err)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unreachable: {err}\n"),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "store unreachable: no answer within 2 s\n".to_owned(),
        ),
    }
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}
