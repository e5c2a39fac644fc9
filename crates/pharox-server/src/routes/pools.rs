//! `/v1/pools/`: create, list, read, update and delete pools; their stats,
//! snapshot, cleanup and the wait for capacity.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use pharox_core::{PoolId, ProxyPool, Storage, validate};
use pharox_wire::{
    CleanupAnswer, CleanupInput, DEFAULT_CLEANUP_LIMIT, DEFAULT_HISTORY_LIMIT, HistoryQuery,
    MAX_WAIT_MS, ReadQuery, SnapshotBody, StatsBody, StatsHistoryBody, UpsertPool, WaitInput,
};

use super::AppState;
use super::params::PoolPath;
use crate::error::ApiError;
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::wire::{CreatePool, PoolBody};
use pharox_wire::ErrorBody;

/// `POST /v1/pools/`: 201 with the pool; the name is its pharox id. 409 if
/// a pool with that id exists.
#[utoipa::path(
    post,
    path = "/v1/pools/",
    operation_id = "create_pool",
    tag = "pools",
    request_body = CreatePool,
    responses(
        (status = 201, description = "The pool, created", body = PoolBody),
        (status = 409, description = "A pool with this name exists (`pool_exists`)", body = ErrorBody)
    )
)]
pub(super) async fn create<S: Storage>(
    State(app): State<AppState<S>>,
    Json(body): Json<CreatePool>,
) -> Result<impl IntoResponse, ApiError> {
    let id = PoolId::from(body.name.as_str());
    validate::pool_id(&id).map_err(|e| match e {
        pharox_core::Error::InvalidInput { reason, .. } => ApiError::invalid("name", reason),
        other => other.into(),
    })?;
    if app.store.get_pool(&id).await?.is_some() {
        return Err(ApiError::conflict(
            pharox_wire::codes::POOL_EXISTS,
            format!("a pool named `{id}` exists"),
        ));
    }
    let pool = ProxyPool {
        id: id.clone(),
        name: body.name,
        description: body.description,
    };
    let stored = app.store.upsert_pool(&pool).await?;
    app.dir.add_pool(&stored.id);
    Ok((StatusCode::CREATED, axum::Json(PoolBody::from(&stored))))
}

/// `GET /v1/pools/`: every pool.
#[utoipa::path(
    get,
    path = "/v1/pools/",
    operation_id = "list_pools",
    tag = "pools",
    responses(
        (status = 200, description = "Every pool", body = Vec<PoolBody>)
    )
)]
pub(super) async fn list<S: Storage>(
    State(app): State<AppState<S>>,
) -> Result<axum::Json<Vec<PoolBody>>, ApiError> {
    let pools = app.store.list_pools().await?;
    for p in &pools {
        app.dir.add_pool(&p.id);
    }
    Ok(axum::Json(pools.iter().map(PoolBody::from).collect()))
}

/// `GET /v1/pools/{pool}`: 404 if it does not exist.
#[utoipa::path(
    get,
    path = "/v1/pools/{pool}",
    operation_id = "get_pool",
    tag = "pools",
    params(PoolPath),
    responses(
        (status = 200, description = "The pool", body = PoolBody),
        (status = 404, description = "No such pool (`pool_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn get_one<S: Storage>(
    State(app): State<AppState<S>>,
    Path(PoolPath { pool: named }): Path<PoolPath>,
) -> Result<axum::Json<PoolBody>, ApiError> {
    let id = app.resolve_pool(&named).await?;
    match app.store.get_pool(&id).await? {
        Some(pool) => Ok(axum::Json(PoolBody::from(&pool))),
        None => Err(pool_not_found(&named)),
    }
}

/// `DELETE /v1/pools/{pool}`: 204, or 404 if it did not exist. Its proxies
/// and leases go with it.
#[utoipa::path(
    delete,
    path = "/v1/pools/{pool}",
    operation_id = "delete_pool",
    tag = "pools",
    params(PoolPath),
    responses(
        (status = 204, description = "Removed, with its proxies and leases"),
        (status = 404, description = "No such pool (`pool_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn remove<S: Storage>(
    State(app): State<AppState<S>>,
    Path(PoolPath { pool: named }): Path<PoolPath>,
) -> Result<StatusCode, ApiError> {
    let id = app.resolve_pool(&named).await?;
    let existed = app.store.remove_pool(&id).await?;
    app.dir.remove_pool(&id);
    if existed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(pool_not_found(&named))
    }
}

/// `PUT /v1/pools/{pool}` `{name, description}`: creates the pool whose id
/// is `{pool}` (or the pool with that UUID) or updates it; 200 with it.
#[utoipa::path(
    put,
    path = "/v1/pools/{pool}",
    operation_id = "put_pool",
    tag = "pools",
    params(PoolPath),
    request_body = UpsertPool,
    responses(
        (status = 200, description = "The pool as stored", body = PoolBody)
    )
)]
pub(super) async fn upsert<S: Storage>(
    State(app): State<AppState<S>>,
    Path(PoolPath { pool: named }): Path<PoolPath>,
    Json(body): Json<UpsertPool>,
) -> Result<axum::Json<PoolBody>, ApiError> {
    let id = app.resolve_pool(&named).await?;
    let pool = ProxyPool {
        name: body.name.unwrap_or_else(|| id.as_str().to_owned()),
        description: body.description,
        id,
    };
    let stored = app.store.upsert_pool(&pool).await?;
    app.dir.add_pool(&stored.id);
    Ok(axum::Json(PoolBody::from(&stored)))
}

/// `GET /v1/pools/{pool}/stats`: the pool's counters, O(1).
#[utoipa::path(
    get,
    path = "/v1/pools/{pool}/stats",
    operation_id = "pool_stats",
    tag = "pools",
    params(PoolPath),
    responses(
        (status = 200, description = "The pool's counters", body = StatsBody),
        (status = 404, description = "No such pool (`pool_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn stats<S: Storage>(
    State(app): State<AppState<S>>,
    Path(PoolPath { pool: named }): Path<PoolPath>,
) -> Result<axum::Json<StatsBody>, ApiError> {
    let pool = app.resolve_pool(&named).await?;
    let stats = app.store.pool_stats(&pool).await?;
    Ok(axum::Json(StatsBody::from(&stats)))
}

/// `GET /v1/pools/{pool}/stats/history[?limit=N]`: the newest `limit`
/// snapshots a worker recorded, newest first; empty on a store that keeps
/// no history. 404 if the pool does not exist.
#[utoipa::path(
    get,
    path = "/v1/pools/{pool}/stats/history",
    operation_id = "pool_stats_history",
    tag = "pools",
    params(PoolPath, HistoryQuery),
    responses(
        (status = 200, description = "The recorded counters, newest first", body = StatsHistoryBody),
        (status = 404, description = "No such pool (`pool_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn stats_history<S: Storage>(
    State(app): State<AppState<S>>,
    Path(PoolPath { pool: named }): Path<PoolPath>,
    Query(query): Query<HistoryQuery>,
) -> Result<axum::Json<StatsHistoryBody>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
    let pool = app.resolve_pool(&named).await?;
    let snapshots = app.store.stats_history(&pool, limit).await?;
    Ok(axum::Json(StatsHistoryBody::new(&pool, &snapshots)))
}

/// `GET /v1/pools/{pool}/snapshot[?credentials=include]`: the whole pool at
/// one instant, O(pool size).
#[utoipa::path(
    get,
    path = "/v1/pools/{pool}/snapshot",
    operation_id = "pool_snapshot",
    tag = "pools",
    params(PoolPath, ReadQuery),
    responses(
        (status = 200, description = "The whole pool at one instant", body = SnapshotBody),
        (status = 404, description = "No such pool (`pool_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn snapshot<S: Storage>(
    State(app): State<AppState<S>>,
    Path(PoolPath { pool: named }): Path<PoolPath>,
    Query(query): Query<ReadQuery>,
) -> Result<axum::Json<SnapshotBody>, ApiError> {
    let pool = app.resolve_pool(&named).await?;
    let snap = app.store.pool_snapshot(&pool).await?;
    Ok(axum::Json(SnapshotBody::new(&snap, query.credentials())))
}

/// `POST /v1/pools/{pool}/cleanup` `{limit}`: reclaims up to `limit`
/// expired leases; 200 with how many.
#[utoipa::path(
    post,
    path = "/v1/pools/{pool}/cleanup",
    operation_id = "cleanup_pool",
    tag = "pools",
    params(PoolPath),
    request_body(content = CleanupInput, description = "Optional"),
    responses(
        (status = 200, description = "How many expired leases were reclaimed", body = CleanupAnswer),
        (status = 404, description = "No such pool (`pool_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn cleanup<S: Storage>(
    State(app): State<AppState<S>>,
    Path(PoolPath { pool: named }): Path<PoolPath>,
    OptionalJson(body): OptionalJson<CleanupInput>,
) -> Result<axum::Json<CleanupAnswer>, ApiError> {
    let pool = app.resolve_pool(&named).await?;
    let limit = body.limit.unwrap_or(DEFAULT_CLEANUP_LIMIT);
    let reclaimed = app.store.cleanup_expired(&pool, limit).await?;
    Ok(axum::Json(CleanupAnswer { reclaimed }))
}

/// `POST /v1/pools/{pool}/wait` `{max_wait_ms}`: answers 204 once capacity
/// may have been freed in the pool, or when `max_wait_ms` passes (a long
/// poll for `Storage::wait_for_capacity`; the answer does not say which).
/// The wait is cut to half the request time budget, so the poll answers
/// before the budget ends it with a 503.
#[utoipa::path(
    post,
    path = "/v1/pools/{pool}/wait",
    operation_id = "wait_for_capacity",
    tag = "pools",
    params(PoolPath),
    request_body = WaitInput,
    responses(
        (status = 204, description = "Capacity may have been freed, or the wait ended")
    )
)]
pub(super) async fn wait<S: Storage>(
    State(app): State<AppState<S>>,
    Path(PoolPath { pool: named }): Path<PoolPath>,
    Json(body): Json<WaitInput>,
) -> Result<StatusCode, ApiError> {
    if body.max_wait_ms > MAX_WAIT_MS {
        return Err(ApiError::invalid(
            "max_wait_ms",
            format!("must be at most {MAX_WAIT_MS}"),
        ));
    }
    let pool = app.resolve_pool(&named).await?;
    validate::pool_id(&pool)?;
    app.store
        .wait_for_capacity(
            &pool,
            Duration::from_millis(body.max_wait_ms).min(app.max_wait),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// 404 `pool_not_found`.
pub(super) fn pool_not_found(named: &str) -> ApiError {
    ApiError::not_found(
        pharox_wire::codes::POOL_NOT_FOUND,
        format!("pool `{named}` not found"),
    )
}
