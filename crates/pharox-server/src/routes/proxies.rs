//! `/v1/pools/{pool}/proxies/`: add, list, change the status of and remove proxies.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use pharox_core::{ProxyId, Storage};

use super::pools::pool_not_found;
use super::{App, AppState};
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::wire::{CreateProxy, ProxyBody, UpdateProxy};

/// `POST /v1/pools/{pool}/proxies/`: 201 with the proxy (no password).
pub(super) async fn create<S: Storage>(
    State(app): State<AppState<S>>,
    Path(named): Path<String>,
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

/// `GET /v1/pools/{pool}/proxies/`: every proxy, in the order they were added.
pub(super) async fn list<S: Storage>(
    State(app): State<AppState<S>>,
    Path(named): Path<String>,
) -> Result<axum::Json<Vec<ProxyBody>>, ApiError> {
    let pool = app.resolve_pool(&named).await?;
    let proxies = app.store.list_proxies(&pool).await?;
    Ok(axum::Json(proxies.iter().map(ProxyBody::from).collect()))
}

/// `PATCH /v1/pools/{pool}/proxies/{proxy}` `{status}`: 200 with the proxy.
/// A proxy that is not `active` is not leased from then on.
pub(super) async fn update<S: Storage>(
    State(app): State<AppState<S>>,
    Path((named, proxy_id)): Path<(String, String)>,
    Json(body): Json<UpdateProxy>,
) -> Result<axum::Json<ProxyBody>, ApiError> {
    let pool = app.resolve_pool(&named).await?;
    if app.store.get_pool(&pool).await?.is_none() {
        return Err(pool_not_found(&named));
    }
    let id = ProxyId::from(proxy_id);
    let Some(mut proxy) = app.store.get_proxy(&pool, &id).await? else {
        return Err(proxy_not_found(&id));
    };
    proxy.status = body.status;
    let stored = app.store.upsert_proxy(&proxy).await?;
    Ok(axum::Json(ProxyBody::from(&stored)))
}

/// `DELETE /v1/pools/{pool}/proxies/{proxy}`: 204, or 404. Its live leases end.
pub(super) async fn remove<S: Storage>(
    State(app): State<AppState<S>>,
    Path((named, proxy_id)): Path<(String, String)>,
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
fn body_field(store_field: &str) -> Option<String> {
    match store_field {
        "proxy.credentials.username" => Some("username".into()),
        "proxy.credentials.password" => Some("password".into()),
        f => f.strip_prefix("proxy.").map(str::to_owned),
    }
}

fn proxy_not_found(id: &ProxyId) -> ApiError {
    ApiError::not_found("proxy_not_found", format!("proxy `{id}` not found"))
}
