//! The routes and the state they share.

mod leases;
mod pools;
mod proxies;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, patch, post};
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

/// The pharox-sdk routes (collections with and without the trailing slash
/// the SDK uses).
pub(crate) fn sdk_routes<S: Storage>() -> Router<AppState<S>> {
    Router::new()
        .route("/v1/pools/", post(pools::create::<S>).get(pools::list::<S>))
        .route("/v1/pools", post(pools::create::<S>).get(pools::list::<S>))
        .route(
            "/v1/pools/{pool}",
            get(pools::get_one::<S>).delete(pools::remove::<S>),
        )
        .route(
            "/v1/pools/{pool}/proxies/",
            post(proxies::create::<S>).get(proxies::list::<S>),
        )
        .route(
            "/v1/pools/{pool}/proxies",
            post(proxies::create::<S>).get(proxies::list::<S>),
        )
        .route(
            "/v1/pools/{pool}/proxies/{proxy}",
            patch(proxies::update::<S>).delete(proxies::remove::<S>),
        )
        .route("/v1/leases/", post(leases::acquire::<S>))
        .route("/v1/leases", post(leases::acquire::<S>))
        .route("/v1/leases/{lease}", get(leases::get_one::<S>))
        .route("/v1/leases/{lease}/release", post(leases::release::<S>))
}
