//! `/v1/pools/{pool}/leases`: the lease calls of the `Storage` trait, each
//! naming the pool, so none needs the directory: acquire, list, read,
//! release and renew, and `find` (what an acquire would pick).
//!
//! Answers are [`LeaseRecord`]s. Acquire and renew answers always carry the
//! proxy's password: the holder needs it to connect through the proxy.
//! Every other answer carries it only with `?credentials=include`.
//!
//! A key bound to a consumer (`lease:NAME`) acquires only as that consumer
//! and sees, renews and releases only that consumer's leases (reading the
//! lease first: a second store call); others' are not found.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use pharox_core::{
    AcquireRequest, DEFAULT_LEASE_DURATION, LeaseId, LeaseRef, ProxyFilters, Storage,
};
use pharox_wire::{
    AcquireInput, FiltersBody, FindAnswer, FindInput, LeaseRecord, LeasesBody, ProxyRecord,
    ReadQuery, ReleaseAnswer, ReleaseInput, RenewInput, codes, duration_ms, leases, strategy,
};
use uuid::Uuid;

use super::AppState;
use super::params::{PoolLeasePath, PoolPath};
use crate::auth::{Caller, consumer_for, visible};
use crate::error::ApiError;
use crate::extract::{OptionalJson, Path, Query};
use pharox_wire::ErrorBody;

/// `POST /v1/pools/{pool}/leases` `{consumer, duration_ms, strategy,
/// filters}`: one atomic acquire; 201 with the lease (password included),
/// 409 `no_proxy_available` when no proxy qualifies.
#[utoipa::path(
    post,
    path = "/v1/pools/{pool}/leases",
    operation_id = "acquire_pool_lease",
    tag = "pool leases",
    params(PoolPath),
    request_body(content = AcquireInput, description = "Optional"),
    responses(
        (status = 201, description = "The lease (with the proxy's password)", body = LeaseRecord),
        (status = 404, description = "No such pool (`pool_not_found`)", body = ErrorBody),
        (status = 409, description = "No proxy qualifies now (`no_proxy_available`)", body = ErrorBody)
    )
)]
pub(super) async fn acquire<S: Storage>(
    State(app): State<AppState<S>>,
    caller: Option<Extension<Caller>>,
    Path(PoolPath { pool: named }): Path<PoolPath>,
    OptionalJson(body): OptionalJson<AcquireInput>,
) -> Result<impl IntoResponse, ApiError> {
    let duration = body.duration()?;
    let selector = strategy(body.strategy.as_deref())?;
    let filters = filters(body.filters)?;
    let consumer = consumer_for(caller.as_deref(), body.consumer.as_deref(), "consumer")?;
    let pool = app.resolve_pool(&named).await?;
    let request = AcquireRequest::new(pool)
        .consumer(consumer)
        .duration(duration)
        .selector(selector)
        .filters(filters);
    match app.acquire(&request).await? {
        Some(lease) => Ok((
            StatusCode::CREATED,
            axum::Json(LeaseRecord::new(&lease, true)),
        )),
        None => Err(no_proxy_available()),
    }
}

/// `POST /v1/pools/{pool}/find` `{strategy, filters}`: the proxy an acquire
/// would pick now, without leasing it or moving the round-robin cursor
/// (`{"proxy": null}` when none qualifies). Never half of an acquisition:
/// another client may take the proxy in between.
#[utoipa::path(
    post,
    path = "/v1/pools/{pool}/find",
    operation_id = "find_proxy",
    tag = "pool leases",
    params(PoolPath, ReadQuery),
    request_body(content = FindInput, description = "Optional"),
    responses(
        (status = 200, description = "The proxy an acquire would pick now, or null", body = FindAnswer),
        (status = 404, description = "No such pool (`pool_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn find<S: Storage>(
    State(app): State<AppState<S>>,
    Path(PoolPath { pool: named }): Path<PoolPath>,
    Query(query): Query<ReadQuery>,
    OptionalJson(body): OptionalJson<FindInput>,
) -> Result<axum::Json<FindAnswer>, ApiError> {
    let selector = strategy(body.strategy.as_deref())?;
    let filters = filters(body.filters)?;
    let pool = app.resolve_pool(&named).await?;
    let found = app
        .store
        .find_available_proxy(&pool, &filters, selector)
        .await?;
    Ok(axum::Json(FindAnswer {
        proxy: found.map(|p| ProxyRecord::new(&p, query.credentials())),
    }))
}

/// `GET /v1/pools/{pool}/leases[?credentials=include]`: every live lease of
/// the pool (including ones past their deadline that were not reclaimed
/// yet), read from a snapshot: O(pool size), not for the hot path.
#[utoipa::path(
    get,
    path = "/v1/pools/{pool}/leases",
    operation_id = "list_pool_leases",
    tag = "pool leases",
    params(PoolPath, ReadQuery),
    responses(
        (status = 200, description = "Every live lease of the pool", body = LeasesBody),
        (status = 404, description = "No such pool (`pool_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn list<S: Storage>(
    State(app): State<AppState<S>>,
    Path(PoolPath { pool: named }): Path<PoolPath>,
    Query(query): Query<ReadQuery>,
) -> Result<axum::Json<LeasesBody>, ApiError> {
    let pool = app.resolve_pool(&named).await?;
    let snap = app.store.pool_snapshot(&pool).await?;
    Ok(axum::Json(LeasesBody {
        leases: leases(&snap.leases, query.credentials()),
        taken_at: snap.taken_at,
    }))
}

/// `GET /v1/pools/{pool}/leases/{lease}[?credentials=include]`: 200 while
/// the lease is live at the store's clock, else 404 `lease_not_found`.
#[utoipa::path(
    get,
    path = "/v1/pools/{pool}/leases/{lease}",
    operation_id = "get_pool_lease",
    tag = "pool leases",
    params(PoolLeasePath, ReadQuery),
    responses(
        (status = 200, description = "The live lease", body = LeaseRecord),
        (status = 404, description = "No live lease has this id (`lease_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn get_one<S: Storage>(
    State(app): State<AppState<S>>,
    caller: Option<Extension<Caller>>,
    Path(PoolLeasePath {
        pool: named,
        lease: id,
    }): Path<PoolLeasePath>,
    Query(query): Query<ReadQuery>,
) -> Result<axum::Json<LeaseRecord>, ApiError> {
    let id = parse_id(&id)?;
    let pool = app.resolve_pool(&named).await?;
    match app.store.get_lease(&pool, &id).await? {
        Some(lease) if visible(caller.as_deref(), &lease) => {
            Ok(axum::Json(LeaseRecord::new(&lease, query.credentials())))
        }
        _ => Err(not_held()),
    }
}

/// `POST /v1/pools/{pool}/leases/{lease}/release` `{token}`: 200 with
/// `outcome` `released` or `expired` (its deadline had passed and this call
/// reclaimed it) and the lease as it was; 404 `lease_not_found` when
/// nothing was held (released before, reclaimed, another token, never
/// existed). Idempotent: capacity is freed at most once.
#[utoipa::path(
    post,
    path = "/v1/pools/{pool}/leases/{lease}/release",
    operation_id = "release_pool_lease",
    tag = "pool leases",
    params(PoolLeasePath, ReadQuery),
    request_body(content = ReleaseInput, description = "Optional"),
    responses(
        (status = 200, description = "How the lease ended, and the lease", body = ReleaseAnswer),
        (status = 404, description = "Nothing is held (`lease_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn release<S: Storage>(
    State(app): State<AppState<S>>,
    caller: Option<Extension<Caller>>,
    Path(PoolLeasePath {
        pool: named,
        lease: id,
    }): Path<PoolLeasePath>,
    Query(query): Query<ReadQuery>,
    OptionalJson(body): OptionalJson<ReleaseInput>,
) -> Result<axum::Json<ReleaseAnswer>, ApiError> {
    let lease = lease_ref(&app, caller.as_deref(), &named, &id, body.token).await?;
    match app.release_by_ref(&lease).await? {
        Some((lease, outcome)) => Ok(axum::Json(ReleaseAnswer {
            outcome,
            lease: LeaseRecord::new(&lease, query.credentials()),
        })),
        None => Err(not_held()),
    }
}

/// `POST /v1/pools/{pool}/leases/{lease}/renew` `{token, duration_ms}`:
/// moves the deadline to now + `duration_ms` (store clock); 200 with the
/// lease (password included), 404 `lease_not_found` when it is lost.
#[utoipa::path(
    post,
    path = "/v1/pools/{pool}/leases/{lease}/renew",
    operation_id = "renew_pool_lease",
    tag = "pool leases",
    params(PoolLeasePath),
    request_body(content = RenewInput, description = "Optional"),
    responses(
        (status = 200, description = "The lease with its new deadline (with the proxy's password)", body = LeaseRecord),
        (status = 404, description = "The lease is lost (`lease_not_found`)", body = ErrorBody)
    )
)]
pub(super) async fn renew<S: Storage>(
    State(app): State<AppState<S>>,
    caller: Option<Extension<Caller>>,
    Path(PoolLeasePath {
        pool: named,
        lease: id,
    }): Path<PoolLeasePath>,
    OptionalJson(body): OptionalJson<RenewInput>,
) -> Result<axum::Json<LeaseRecord>, ApiError> {
    let duration = duration_ms(body.duration_ms, DEFAULT_LEASE_DURATION)?;
    let lease = lease_ref(&app, caller.as_deref(), &named, &id, body.token).await?;
    let renewed = app.renew_by_ref(&lease, duration).await?;
    Ok(axum::Json(LeaseRecord::new(&renewed, true)))
}

/// The lease a call names, as the caller may act on it: by pool, id and
/// (if given) token; for a key bound to a consumer, only a live lease of
/// that consumer, read first (a second store call), else 404.
async fn lease_ref<S: Storage>(
    app: &AppState<S>,
    caller: Option<&Caller>,
    named: &str,
    id: &str,
    token: Option<u64>,
) -> Result<LeaseRef, ApiError> {
    let id = parse_id(id)?;
    let mut lease = LeaseRef::new(app.resolve_pool(named).await?, id);
    if let Some(t) = token {
        lease = lease.with_token(t);
    }
    if caller.and_then(Caller::bound_consumer).is_none() {
        return Ok(lease);
    }
    match app.store.get_lease(&lease.pool, &lease.id).await? {
        Some(held) if lease.matches(&held) && visible(caller, &held) => Ok(LeaseRef::from(&held)),
        _ => Err(not_held()),
    }
}

fn filters(body: Option<FiltersBody>) -> Result<ProxyFilters, ApiError> {
    Ok(match body {
        Some(f) => f.into_filters()?,
        None => ProxyFilters::default(),
    })
}

/// A lease id in a path, or 400 on `lease_id`.
pub(super) fn parse_id(id: &str) -> Result<LeaseId, ApiError> {
    Uuid::try_parse(id)
        .map(LeaseId)
        .map_err(|_| ApiError::invalid("lease_id", "must be a UUID"))
}

/// 404 `lease_not_found`: nothing live has this id.
pub(super) fn not_held() -> ApiError {
    ApiError::not_found(
        codes::LEASE_NOT_FOUND,
        "no live lease has this id (released, expired or unknown)",
    )
}

/// 409 `no_proxy_available`.
pub(super) fn no_proxy_available() -> ApiError {
    ApiError::conflict(
        codes::NO_PROXY_AVAILABLE,
        "no proxy of the pool is available for these filters",
    )
}
