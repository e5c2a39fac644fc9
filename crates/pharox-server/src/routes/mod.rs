//! The routes and the state they share.
//!
//! Two families under `/v1`, with the same conventions (ids, errors, times):
//! the routes pharox-sdk 0.2.0 calls, in its shapes, and the routes that
//! mirror the rest of the `Storage` trait, so a client (`RemoteStorage`)
//! can implement all of it. `{pool}` is a pool's UUID or its pharox id
//! everywhere.

mod consumers;
mod import;
mod leases;
mod pool_leases;
mod pools;
mod proxies;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use pharox_core::{PoolId, ProxyHostPolicy, Storage};
use uuid::Uuid;

use crate::directory::Directory;
use crate::error::ApiError;

/// What every handler sees: the store, the id directory and the proxy
/// host policy (checked by [`App::check_proxy_host`], in `proxies.rs`).
pub(crate) struct App<S> {
    pub store: S,
    pub dir: Directory,
    pub telemetry: Arc<crate::ops::Telemetry>,
    /// Longest capacity long poll: well inside the request time budget.
    pub max_wait: Duration,
    pub proxy_hosts: ProxyHostPolicy,
}

pub(crate) type AppState<S> = Arc<App<S>>;

impl<S: Storage> App<S> {
    /// The pool a path or body names: its UUID (as the SDK sends it) or its
    /// pharox id. A UUID no pool has is tried as an id, so the store decides.
    pub async fn resolve_pool(&self, named: &str) -> Result<PoolId, ApiError> {
        if let Ok(uuid) = Uuid::try_parse(named)
            && let Some(pool) = self.dir.pool_by_uuid(&self.store, uuid).await?
        {
            return Ok(pool);
        }
        Ok(PoolId::from(named))
    }
}

/// Every route. Collections the SDK uses answer with and without its
/// trailing slash; `import_body_limit` is the body limit of the bulk import.
pub(crate) fn all<S: Storage>(import_body_limit: usize) -> Router<AppState<S>> {
    use consumers as c;
    use import as i;
    use leases as l;
    use pool_leases as pl;
    use pools as p;
    use proxies as x;
    Router::new()
        // pharox-sdk: pools.
        .route("/v1/pools/", post(p::create::<S>).get(p::list::<S>))
        .route("/v1/pools", post(p::create::<S>).get(p::list::<S>))
        .route(
            "/v1/pools/{pool}",
            get(p::get_one::<S>)
                .delete(p::remove::<S>)
                .put(p::upsert::<S>),
        )
        // pharox-sdk: proxies (`GET …/proxies/?view=full` answers full records).
        .route(
            "/v1/pools/{pool}/proxies/",
            post(x::create::<S>).get(x::list::<S>),
        )
        .route(
            "/v1/pools/{pool}/proxies",
            post(x::create::<S>).get(x::list::<S>),
        )
        .route(
            "/v1/pools/{pool}/proxies/{proxy}",
            get(x::get_one::<S>)
                .put(x::upsert::<S>)
                .patch(x::update::<S>)
                .delete(x::remove::<S>),
        )
        // pharox-sdk: leases by id (the pool comes from the id's tag).
        .route("/v1/leases/", post(l::acquire::<S>))
        .route("/v1/leases", post(l::acquire::<S>))
        .route("/v1/leases/{lease}", get(l::get_one::<S>))
        .route("/v1/leases/{lease}/release", post(l::release::<S>))
        .route("/v1/leases/{lease}/renew", post(l::renew::<S>))
        // The Storage trait: consumers.
        .route("/v1/consumers", post(c::ensure::<S>).get(c::list::<S>))
        // The Storage trait: per pool.
        .route("/v1/pools/{pool}/stats", get(p::stats::<S>))
        .route("/v1/pools/{pool}/stats/history", get(p::stats_history::<S>))
        .route("/v1/pools/{pool}/snapshot", get(p::snapshot::<S>))
        .route("/v1/pools/{pool}/cleanup", post(p::cleanup::<S>))
        .route("/v1/pools/{pool}/wait", post(p::wait::<S>))
        .route("/v1/pools/{pool}/health", post(x::health::<S>))
        .route("/v1/pools/{pool}/find", post(pl::find::<S>))
        .route(
            "/v1/pools/{pool}/import",
            post(i::import::<S>).layer(DefaultBodyLimit::max(import_body_limit)),
        )
        .route(
            "/v1/pools/{pool}/leases",
            post(pl::acquire::<S>).get(pl::list::<S>),
        )
        .route("/v1/pools/{pool}/leases/{lease}", get(pl::get_one::<S>))
        .route(
            "/v1/pools/{pool}/leases/{lease}/release",
            post(pl::release::<S>),
        )
        .route(
            "/v1/pools/{pool}/leases/{lease}/renew",
            post(pl::renew::<S>),
        )
}
