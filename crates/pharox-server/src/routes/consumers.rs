//! `/v1/consumers`: register consumers by name and list them.

use axum::Extension;
use axum::extract::State;
use pharox_core::Storage;
use pharox_wire::{ConsumerBody, EnsureConsumer};

use super::AppState;
use crate::auth::{Caller, consumer_for};
use crate::error::ApiError;
use crate::extract::Json;

/// `POST /v1/consumers` `{name}`: registers the consumer, or finds it; 200
/// with its id and name either way (idempotent). A key bound to a consumer
/// registers only that one (403 for another).
#[utoipa::path(
    post,
    path = "/v1/consumers",
    operation_id = "ensure_consumer",
    tag = "consumers",
    request_body = EnsureConsumer,
    responses(
        (status = 200, description = "The consumer (registered now or before)", body = ConsumerBody)
    )
)]
pub(super) async fn ensure<S: Storage>(
    State(app): State<AppState<S>>,
    caller: Option<Extension<Caller>>,
    Json(body): Json<EnsureConsumer>,
) -> Result<axum::Json<ConsumerBody>, ApiError> {
    let name = consumer_for(caller.as_deref(), Some(&body.name), "name")?;
    let consumer = app.store.ensure_consumer(&name).await?;
    Ok(axum::Json(ConsumerBody::from(&consumer)))
}

/// `GET /v1/consumers`: every registered consumer.
#[utoipa::path(
    get,
    path = "/v1/consumers",
    operation_id = "list_consumers",
    tag = "consumers",
    responses(
        (status = 200, description = "Every registered consumer", body = Vec<ConsumerBody>)
    )
)]
pub(super) async fn list<S: Storage>(
    State(app): State<AppState<S>>,
) -> Result<axum::Json<Vec<ConsumerBody>>, ApiError> {
    let all = app.store.list_consumers().await?;
    Ok(axum::Json(all.iter().map(ConsumerBody::from).collect()))
}
