//! `POST /v1/pools/{pool}/import`: many proxies in one request, with a
//! report for each.

use axum::extract::State;
use pharox_core::{Error, Storage};
use pharox_wire::{
    CreateProxy, ImportInput, ImportReport, ImportResult, MAX_IMPORT_PROXIES, Object,
};

use super::AppState;
use super::params::PoolPath;
use super::pools::pool_not_found;
use super::proxies::body_field;
use crate::error::ApiError;
use crate::extract::{Json, Path, body_error};
use pharox_wire::ErrorBody;

/// `{"proxies": [proxy, …]}`, each item the body of `POST
/// /v1/pools/{pool}/proxies/`, at most [`MAX_IMPORT_PROXIES`] of them (and
/// the import's own body limit). Items are stored in order, one store call
/// each (`Storage::upsert_proxy`); an item the API, the proxy host policy
/// or the store refuses is reported (`invalid_body`, `invalid_input`) and
/// the others go on. 200 with one result per item.
///
/// A store failure (503, 500) or the pool's removal (404) ends the import
/// at that item and answers that error alone: upserts are idempotent, so
/// sending the whole import again is safe.
#[utoipa::path(
    post,
    path = "/v1/pools/{pool}/import",
    operation_id = "import_proxies",
    tag = "proxies",
    params(PoolPath),
    request_body = ImportInput<CreateProxy>,
    responses(
        (status = 200, description = "One result per item, in order", body = ImportReport),
        (status = 404, description = "No such pool (`pool_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn import<S: Storage>(
    State(app): State<AppState<S>>,
    Path(PoolPath { pool: named }): Path<PoolPath>,
    Json(body): Json<ImportInput<serde_json::Value>>,
) -> Result<axum::Json<ImportReport>, ApiError> {
    if body.proxies.len() > MAX_IMPORT_PROXIES {
        return Err(ApiError::invalid(
            "proxies",
            format!(
                "has {} items, the limit is {MAX_IMPORT_PROXIES}",
                body.proxies.len()
            ),
        ));
    }
    let pool = app.resolve_pool(&named).await?;
    if app.store.get_pool(&pool).await?.is_none() {
        return Err(pool_not_found(&named));
    }
    let mut results = Vec::with_capacity(body.proxies.len());
    for (index, item) in body.proxies.into_iter().enumerate() {
        let parsed: Result<Object<CreateProxy>, _> = serde_path_to_error::deserialize(item);
        let proxy = match parsed {
            Ok(Object(input)) => input
                .into_proxy(pool.clone())
                .map_err(ApiError::from)
                .and_then(|p| app.check_proxy_host(&p.host).map(|()| p)),
            Err(e) => {
                let path = e.path().to_string();
                let at = match path.as_str() {
                    "" | "." => format!("proxies[{index}]"),
                    p => format!("proxies[{index}].{p}"),
                };
                Err(body_error(e.into_inner(), at))
            }
        };
        let proxy = match proxy {
            Ok(p) => p,
            Err(e) => {
                results.push(ImportResult {
                    index,
                    id: None,
                    error: Some(e.detail()),
                });
                continue;
            }
        };
        let error = match app.store.upsert_proxy(&proxy).await {
            Ok(_) => None,
            Err(e @ (Error::InvalidInput { .. } | Error::UnsupportedFilter(_))) => {
                Some(ApiError::from(e).field_as(body_field).detail())
            }
            Err(Error::PoolNotFound(_)) => return Err(pool_not_found(&named)),
            Err(e) => return Err(e.into()),
        };
        results.push(ImportResult {
            index,
            id: Some(proxy.id.as_str().to_owned()),
            error,
        });
    }
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    Ok(axum::Json(ImportReport {
        imported: results.len() - failed,
        failed,
        results,
    }))
}
