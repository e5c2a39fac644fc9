//! `/v1/leases/`: acquire, read, release and renew leases by id alone.
//!
//! A lease id is a UUID whose first 32 bits are its pool's tag
//! ([`PoolId::lease_tag`](pharox_core::PoolId::lease_tag)): reading,
//! releasing or renewing by id alone finds the pool in the in-process
//! directory, then costs one store call, with no global lease index.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use pharox_core::{AcquireRequest, Error, Lease, LeaseRef, Storage};
use pharox_wire::{RenewByIdInput, ttl_seconds};

use super::AppState;
use super::params::LeasePath;
use super::pool_leases::{no_proxy_available, not_held, parse_id};
use crate::auth::{Caller, consumer_for, visible};
use crate::error::ApiError;
use crate::extract::{IgnoredBody, Json, OptionalJson, Path};
use crate::wire::{AcquireBody, LeaseBody};
use pharox_wire::ErrorBody;

/// `POST /v1/leases/`: 201 with the lease; 409 `no_proxy_available` when no
/// proxy qualifies; 404 for an unknown pool.
///
/// A key bound to a consumer (`lease:NAME`) leases as that consumer: a body
/// naming no consumer gets it, one naming another is 403.
#[utoipa::path(
    post,
    path = "/v1/leases/",
    operation_id = "acquire_lease",
    tag = "leases",
    request_body = AcquireBody,
    responses(
        (status = 201, description = "The lease", body = LeaseBody),
        (status = 404, description = "No such pool (`pool_not_found`)", body = ErrorBody),
        (status = 409, description = "No proxy qualifies now (`no_proxy_available`)", body = ErrorBody)
    )
)]
pub(super) async fn acquire<S: Storage>(
    State(app): State<AppState<S>>,
    caller: Option<Extension<Caller>>,
    Json(body): Json<AcquireBody>,
) -> Result<impl IntoResponse, ApiError> {
    let duration = body.duration()?;
    let selector = body.selector()?;
    let consumer = consumer_for(
        caller.as_deref(),
        body.consumer_id.as_deref(),
        "consumer_id",
    )?;
    let pool = app.resolve_pool(&body.pool_id).await?;
    let filters = match body.filters {
        Some(f) => f.into_filters()?,
        None => Default::default(),
    };
    let request = AcquireRequest::new(pool)
        .consumer(consumer.clone())
        .duration(duration)
        .selector(selector)
        .filters(filters);
    pharox_core::validate::acquire_request(&request).map_err(|e| {
        ApiError::from(e).field_as(|f| match f {
            "pool" => Some("pool_id".into()),
            "consumer" => Some("consumer_id".into()),
            "duration" => Some("ttl_seconds".into()),
            _ => None,
        })
    })?;
    // Before the acquire: a lease must not be granted and then lost to a
    // failed consumer lookup.
    let consumer_id = app.dir.consumer_id(&app.store, &consumer).await?;
    match app.acquire(&request).await? {
        Some(lease) => Ok((
            StatusCode::CREATED,
            axum::Json(LeaseBody::new(&lease, consumer_id, false)),
        )),
        None => Err(no_proxy_available()),
    }
}

/// `GET /v1/leases/{lease}`: 200 while the lease is live, 404 once it ended
/// (and for a key bound to another consumer).
#[utoipa::path(
    get,
    path = "/v1/leases/{lease}",
    operation_id = "get_lease",
    tag = "leases",
    params(LeasePath),
    responses(
        (status = 200, description = "The live lease", body = LeaseBody),
        (status = 404, description = "No live lease has this id (`lease_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn get_one<S: Storage>(
    State(app): State<AppState<S>>,
    caller: Option<Extension<Caller>>,
    Path(LeasePath { lease: id }): Path<LeasePath>,
) -> Result<axum::Json<LeaseBody>, ApiError> {
    let lease = find(&app, &id).await?;
    if !visible(caller.as_deref(), &lease) {
        return Err(not_held());
    }
    let consumer_id = app.dir.consumer_id(&app.store, &lease.consumer).await?;
    Ok(axum::Json(LeaseBody::new(&lease, consumer_id, false)))
}

/// `POST /v1/leases/{lease}/release`: 200 with the lease, `status:
/// released` (also for a lease past its deadline that this call reclaimed);
/// 404 if nothing is held (released before, reclaimed, never existed).
/// One store call ([`Storage::release_by_ref`]): the id finds the pool.
/// A key bound to a consumer first reads the lease (a second call) and
/// releases it only if it is that consumer's, by id and token.
/// The body (`{}` from the SDK) is read and ignored.
#[utoipa::path(
    post,
    path = "/v1/leases/{lease}/release",
    operation_id = "release_lease",
    tag = "leases",
    params(LeasePath),
    responses(
        (status = 200, description = "The lease, released", body = LeaseBody),
        (status = 404, description = "Nothing is held (`lease_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn release<S: Storage>(
    State(app): State<AppState<S>>,
    caller: Option<Extension<Caller>>,
    Path(LeasePath { lease: id }): Path<LeasePath>,
    _body: IgnoredBody,
) -> Result<axum::Json<LeaseBody>, ApiError> {
    if caller.as_ref().and_then(|c| c.bound_consumer()).is_some() {
        let held = find(&app, &id).await?;
        if !visible(caller.as_deref(), &held) {
            return Err(not_held());
        }
        if let Some((lease, _)) = app.release_by_ref(&LeaseRef::from(&held)).await? {
            let consumer_id = app.dir.consumer_id(&app.store, &lease.consumer).await?;
            return Ok(axum::Json(LeaseBody::new(&lease, consumer_id, true)));
        }
        return Err(not_held());
    }
    let id = parse_id(&id)?;
    for pool in app.dir.pools_by_tag(&app.store, id.pool_tag()).await? {
        // Any outcome leaves the lease not held; capacity is freed at most once.
        if let Some((lease, _)) = app.release_by_ref(&LeaseRef::new(pool, id)).await? {
            let consumer_id = app.dir.consumer_id(&app.store, &lease.consumer).await?;
            return Ok(axum::Json(LeaseBody::new(&lease, consumer_id, true)));
        }
    }
    Err(not_held())
}

/// `POST /v1/leases/{lease}/renew` `{ttl_seconds}` (optional, default
/// 300): moves the deadline to now + `ttl_seconds` (store clock); 200 with
/// the lease, 404 `lease_not_found` once it is lost. One store call
/// ([`Storage::renew_by_ref`]): the id finds the pool. A key bound to a
/// consumer reads the lease first and renews only that consumer's.
#[utoipa::path(
    post,
    path = "/v1/leases/{lease}/renew",
    operation_id = "renew_lease",
    tag = "leases",
    params(LeasePath),
    request_body(content = RenewByIdInput, description = "Optional"),
    responses(
        (status = 200, description = "The lease with its new deadline", body = LeaseBody),
        (status = 404, description = "The lease is lost (`lease_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn renew<S: Storage>(
    State(app): State<AppState<S>>,
    caller: Option<Extension<Caller>>,
    Path(LeasePath { lease: id }): Path<LeasePath>,
    OptionalJson(body): OptionalJson<RenewByIdInput>,
) -> Result<axum::Json<LeaseBody>, ApiError> {
    let duration = ttl_seconds(body.ttl_seconds)?;
    if caller.as_ref().and_then(|c| c.bound_consumer()).is_some() {
        // As for a release: only that consumer's lease, by id and token.
        let held = find(&app, &id).await?;
        if !visible(caller.as_deref(), &held) {
            return Err(not_held());
        }
        let lease = app
            .store
            .renew_by_ref(&LeaseRef::from(&held), duration)
            .await?;
        let consumer_id = app.dir.consumer_id(&app.store, &lease.consumer).await?;
        return Ok(axum::Json(LeaseBody::new(&lease, consumer_id, false)));
    }
    let id = parse_id(&id)?;
    for pool in app.dir.pools_by_tag(&app.store, id.pool_tag()).await? {
        match app
            .store
            .renew_by_ref(&LeaseRef::new(pool, id), duration)
            .await
        {
            Ok(lease) => {
                let consumer_id = app.dir.consumer_id(&app.store, &lease.consumer).await?;
                return Ok(axum::Json(LeaseBody::new(&lease, consumer_id, false)));
            }
            // Another pool with the same tag may hold it.
            Err(Error::LeaseLost { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(not_held())
}

async fn find<S: Storage>(app: &AppState<S>, id: &str) -> Result<Lease, ApiError> {
    let id = parse_id(id)?;
    for pool in app.dir.pools_by_tag(&app.store, id.pool_tag()).await? {
        if let Some(lease) = app.store.get_lease(&pool, &id).await? {
            return Ok(lease);
        }
    }
    Err(not_held())
}
