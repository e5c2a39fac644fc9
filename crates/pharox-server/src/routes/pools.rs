//! `/v1/pools/`: create, list, read and delete pools.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use pharox_core::{PoolId, ProxyPool, Storage, validate};

use super::AppState;
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::wire::{CreatePool, PoolBody};

/// `POST /v1/pools/`: 201 with the pool; the name is its pharox id. 409 if
/// a pool with that id exists.
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
            "pool_exists",
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
pub(super) async fn get_one<S: Storage>(
    State(app): State<AppState<S>>,
    Path(named): Path<String>,
) -> Result<axum::Json<PoolBody>, ApiError> {
    let id = app.resolve_pool(&named).await?;
    match app.store.get_pool(&id).await? {
        Some(pool) => Ok(axum::Json(PoolBody::from(&pool))),
        None => Err(pool_not_found(&named)),
    }
}

/// `DELETE /v1/pools/{pool}`: 204, or 404 if it did not exist. Its proxies
/// and leases go with it.
pub(super) async fn remove<S: Storage>(
    State(app): State<AppState<S>>,
    Path(named): Path<String>,
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

/// 404 `pool_not_found`.
pub(super) fn pool_not_found(named: &str) -> ApiError {
    ApiError::not_found("pool_not_found", format!("pool `{named}` not found"))
}
