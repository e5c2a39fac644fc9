//! `/v1/pools/{pool}/proxies/`: add, list, read, store, change the status
//! of and remove proxies; apply health check results.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use pharox_core::{HealthCheckResult, PoolId, ProxyId, Storage};
use pharox_wire::{HealthInput, ProxyRecord, ReadQuery, View, codes};

use super::params::{PoolPath, ProxyPath};
use super::pools::pool_not_found;
use super::{App, AppState};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::wire::{CreateProxy, ProxyBody, UpdateProxy};
use pharox_wire::ErrorBody;

/// `POST /v1/pools/{pool}/proxies/`: 201 with the proxy (no password).
#[utoipa::path(
    post,
    path = "/v1/pools/{pool}/proxies/",
    operation_id = "create_proxy",
    tag = "proxies",
    params(PoolPath),
    request_body = CreateProxy,
    responses(
        (status = 201, description = "The proxy, stored (no password)", body = ProxyBody),
        (status = 404, description = "No such pool (`pool_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn create<S: Storage>(
    State(app): State<AppState<S>>,
    Path(PoolPath { pool: named }): Path<PoolPath>,
    Json(body): Json<CreateProxy>,
) -> Result<impl IntoResponse, ApiError> {
    let pool = app.resolve_pool(&named).await?;
    let proxy = body.into_proxy(pool)?;
    app.check_proxy_host(&proxy.host)?;
    let stored = app
        .store
        .upsert_proxy(&proxy)
        .await
        .map_err(|e| ApiError::from(e).field_as(body_field))?;
    Ok((StatusCode::CREATED, axum::Json(ProxyBody::from(&stored))))
}

/// `GET /v1/pools/{pool}/proxies/`: every proxy, in the order they were
/// added; `?view=full` answers [`ProxyRecord`]s (with `credentials=include`,
/// their passwords).
#[utoipa::path(
    get,
    path = "/v1/pools/{pool}/proxies/",
    operation_id = "list_proxies",
    tag = "proxies",
    params(PoolPath, ReadQuery),
    responses(
        (status = 200, description = "Every proxy of the pool; `ProxyRecord`s with `view=full`", body = Vec<ProxyBody>),
        (status = 404, description = "No such pool (`pool_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn list<S: Storage>(
    State(app): State<AppState<S>>,
    Path(PoolPath { pool: named }): Path<PoolPath>,
    Query(query): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    let pool = app.resolve_pool(&named).await?;
    let proxies = app.store.list_proxies(&pool).await?;
    Ok(match query.view {
        View::Sdk => {
            axum::Json(proxies.iter().map(ProxyBody::from).collect::<Vec<_>>()).into_response()
        }
        View::Full => axum::Json(
            proxies
                .iter()
                .map(|p| ProxyRecord::new(p, query.credentials()))
                .collect::<Vec<_>>(),
        )
        .into_response(),
    })
}

/// `GET /v1/pools/{pool}/proxies/{proxy}[?credentials=include]`: the full
/// record; 404 `proxy_not_found` or `pool_not_found`.
#[utoipa::path(
    get,
    path = "/v1/pools/{pool}/proxies/{proxy}",
    operation_id = "get_proxy",
    tag = "proxies",
    params(ProxyPath, ReadQuery),
    responses(
        (status = 200, description = "The proxy's full record", body = ProxyRecord),
        (status = 404, description = "No such pool or proxy (`pool_not_found`, `proxy_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn get_one<S: Storage>(
    State(app): State<AppState<S>>,
    Path(ProxyPath {
        pool: named,
        proxy: proxy_id,
    }): Path<ProxyPath>,
    Query(query): Query<ReadQuery>,
) -> Result<axum::Json<ProxyRecord>, ApiError> {
    let pool = app.resolve_pool(&named).await?;
    let id = ProxyId::from(proxy_id);
    match app.store.get_proxy(&pool, &id).await? {
        Some(proxy) => Ok(axum::Json(ProxyRecord::new(&proxy, query.credentials()))),
        None => Err(proxy_not_found(&id)),
    }
}

/// `PUT /v1/pools/{pool}/proxies/{proxy}`: adds the proxy or updates it in
/// place (every field, as `Storage::upsert_proxy`); 200 with the stored
/// record (its password with `?credentials=include`).
#[utoipa::path(
    put,
    path = "/v1/pools/{pool}/proxies/{proxy}",
    operation_id = "put_proxy",
    tag = "proxies",
    params(ProxyPath, ReadQuery),
    request_body = CreateProxy,
    responses(
        (status = 200, description = "The proxy as stored", body = ProxyRecord),
        (status = 404, description = "No such pool (`pool_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn upsert<S: Storage>(
    State(app): State<AppState<S>>,
    Path(ProxyPath {
        pool: named,
        proxy: proxy_id,
    }): Path<ProxyPath>,
    Query(query): Query<ReadQuery>,
    Json(mut body): Json<CreateProxy>,
) -> Result<axum::Json<ProxyRecord>, ApiError> {
    match &body.id {
        Some(id) if *id != proxy_id => {
            return Err(ApiError::invalid("id", "must be the proxy id of the path"));
        }
        _ => body.id = Some(proxy_id),
    }
    let pool = app.resolve_pool(&named).await?;
    let proxy = body.into_proxy(pool)?;
    // Named as the store names its fields, like every error of this route.
    app.check_proxy_host(&proxy.host)
        .map_err(|e| e.field_as(|_| Some("proxy.host".into())))?;
    let stored = app.store.upsert_proxy(&proxy).await?;
    Ok(axum::Json(ProxyRecord::new(&stored, query.credentials())))
}

/// `PATCH /v1/pools/{pool}/proxies/{proxy}` `{status}`: 200 with the proxy.
/// A proxy that is not `active` is not leased from then on.
///
/// The status is applied as a health result checked now (or at the proxy's
/// last check, if that is later): one store call that changes only status
/// and `checked_at` and never creates a proxy, so a concurrent `DELETE`
/// cannot be undone by it (a read-then-upsert could resurrect the proxy)
/// and a concurrent health check's latency is kept. A result the store
/// finds older than a check that landed in between loses to it; the answer
/// shows what is stored.
#[utoipa::path(
    patch,
    path = "/v1/pools/{pool}/proxies/{proxy}",
    operation_id = "set_proxy_status",
    tag = "proxies",
    params(ProxyPath),
    request_body = UpdateProxy,
    responses(
        (status = 200, description = "The proxy as stored", body = ProxyBody),
        (status = 404, description = "No such pool or proxy (`pool_not_found`, `proxy_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn update<S: Storage>(
    State(app): State<AppState<S>>,
    Path(ProxyPath {
        pool: named,
        proxy: proxy_id,
    }): Path<ProxyPath>,
    Json(body): Json<UpdateProxy>,
) -> Result<axum::Json<ProxyBody>, ApiError> {
    let pool = app.resolve_pool(&named).await?;
    if app.store.get_pool(&pool).await?.is_none() {
        return Err(pool_not_found(&named));
    }
    let id = ProxyId::from(proxy_id);
    let Some(current) = app.store.get_proxy(&pool, &id).await? else {
        return Err(proxy_not_found(&id));
    };
    let now = Utc::now();
    let result = HealthCheckResult::new(
        pool,
        id.clone(),
        body.status,
        current.checked_at.map_or(now, |last| last.max(now)),
    );
    match app.store.apply_health_check_result(&result).await? {
        Some(stored) => Ok(axum::Json(ProxyBody::from(&stored))),
        None => Err(proxy_not_found(&id)),
    }
}

/// `DELETE /v1/pools/{pool}/proxies/{proxy}`: 204, or 404. Its live leases end.
#[utoipa::path(
    delete,
    path = "/v1/pools/{pool}/proxies/{proxy}",
    operation_id = "delete_proxy",
    tag = "proxies",
    params(ProxyPath),
    responses(
        (status = 204, description = "Removed; its live leases ended"),
        (status = 404, description = "No such pool or proxy (`pool_not_found`, `proxy_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn remove<S: Storage>(
    State(app): State<AppState<S>>,
    Path(ProxyPath {
        pool: named,
        proxy: proxy_id,
    }): Path<ProxyPath>,
) -> Result<StatusCode, ApiError> {
    let pool = app.resolve_pool(&named).await?;
    let id = ProxyId::from(proxy_id);
    if app.store.remove_proxy(&pool, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else if app.store.get_pool(&pool).await?.is_none() {
        Err(pool_not_found(&named))
    } else {
        Err(proxy_not_found(&id))
    }
}

/// `POST /v1/pools/{pool}/health` `{proxy, status, latency_ms, checked_at,
/// error}`: records a health check (`Storage::apply_health_check_result`);
/// 200 with the proxy as stored, 404 `proxy_not_found` when the pool or the
/// proxy does not exist.
#[utoipa::path(
    post,
    path = "/v1/pools/{pool}/health",
    operation_id = "apply_health_result",
    tag = "proxies",
    params(PoolPath, ReadQuery),
    request_body = HealthInput,
    responses(
        (status = 200, description = "The proxy as stored", body = ProxyRecord),
        (status = 404, description = "No such pool or proxy (`proxy_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn health<S: Storage>(
    State(app): State<AppState<S>>,
    Path(PoolPath { pool: named }): Path<PoolPath>,
    Query(query): Query<ReadQuery>,
    Json(body): Json<HealthInput>,
) -> Result<axum::Json<ProxyRecord>, ApiError> {
    let pool: PoolId = app.resolve_pool(&named).await?;
    let result = body.into_result(pool);
    match app.store.apply_health_check_result(&result).await? {
        Some(proxy) => Ok(axum::Json(ProxyRecord::new(&proxy, query.credentials()))),
        None => Err(proxy_not_found(&result.proxy)),
    }
}

impl<S> App<S> {
    /// 400 `invalid_input`, field `host`, when the deployment's proxy host
    /// policy refuses `host` (a loopback, link-local, … address in any
    /// spelling, or a loopback name); the reason says why and how to allow
    /// it. Every route that writes a proxy's host calls this before the store.
    pub(crate) fn check_proxy_host(&self, host: &str) -> Result<(), ApiError> {
        self.proxy_hosts
            .check_host(host)
            .map(drop)
            .map_err(|refused| ApiError::invalid("host", refused.to_string()))
    }
}

/// The body's name for a field the store names `proxy.<field>`.
pub(super) fn body_field(store_field: &str) -> Option<String> {
    match store_field {
        "proxy.credentials.username" => Some("username".into()),
        "proxy.credentials.password" => Some("password".into()),
        f => f.strip_prefix("proxy.").map(str::to_owned),
    }
}

fn proxy_not_found(id: &ProxyId) -> ApiError {
    ApiError::not_found(codes::PROXY_NOT_FOUND, format!("proxy `{id}` not found"))
}
