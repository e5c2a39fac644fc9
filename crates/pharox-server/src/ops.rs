//! What operators need from the service: `/healthz` (the process answers),
//! `/readyz` (the store answers), `/metrics` (requests by route, method and
//! status, latency histograms, requests in flight, and the pools' gauges),
//! one structured log line per request, and the answers of the protective
//! layers (a request over its time budget, a server at its concurrency
//! limit).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `pharox_http_requests_total` | counter | `route` (the route's template), `method`, `status` |
//! | `pharox_http_request_duration_seconds` | histogram | `route`, `method` |
//! | `pharox_http_requests_in_flight` | gauge | |
//! | `pharox_pool_proxies` | gauge, read from the store at each scrape | `pool`, `state` = total, active, available, leased |
//! | `pharox_pool_active_leases` | gauge, likewise | `pool` |
//!
//! Labels never carry a path's ids (the route is its template, such as
//! `/v1/leases/{lease}`), a query, a header or a key. A request no route
//! matched is labelled `unmatched`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pharox_core::{PoolId, PoolStatsSnapshot, Storage};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::ApiError;
use crate::routes::AppState;
use pharox_wire::codes;

/// Pools whose gauges one scrape reads at most (one `pool_stats` each);
/// past it, `pharox_pool_scrape_truncated` is 1.
pub const MAX_SCRAPED_POOLS: usize = 1_000;

/// The pool id `/readyz` looks up: a read that touches the store and finds
/// nothing.
const READY_PROBE_POOL: &str = "pharox-readyz-probe";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: Cow<'static, str>,
    method: Cow<'static, str>,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: Cow<'static, str>,
    method: Cow<'static, str>,
}

/// A pool id as a label value, escaped for the text format.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct PoolValue(PoolId);

impl EncodeLabelValue for PoolValue {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        pharox_core::exposition::write_label_value(encoder, self.0.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolState {
    pool: PoolValue,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabel {
    pool: PoolValue,
}

/// The service's own metrics.
pub(crate) struct Telemetry {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    in_flight: Gauge,
}

impl Telemetry {
    pub fn new() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 0.1 ms .. about 3.3 s.
            Histogram::new(exponential_buckets(0.0001, 2.0, 16))
        });
        let in_flight = Gauge::default();
        let mut registry = Registry::with_prefix("pharox_http");
        registry.register("requests", "HTTP requests answered", requests.clone());
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its answer",
            durations.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Requests being handled now",
            in_flight.clone(),
        );
        Self {
            registry,
            requests,
            durations,
            in_flight,
        }
    }
}

fn method_label(m: &axum::http::Method) -> Cow<'static, str> {
    match m.as_str() {
        "GET" => "GET".into(),
        "POST" => "POST".into(),
        "PATCH" => "PATCH".into(),
        "PUT" => "PUT".into(),
        "DELETE" => "DELETE".into(),
        "HEAD" => "HEAD".into(),
        "OPTIONS" => "OPTIONS".into(),
        // Any other method is one label, not one per spelling.
        _ => "other".into(),
    }
}

/// Middleware: counts and times every request and logs one line for it
/// (method, route template, status, duration). Outermost, so it sees the
/// answers of authentication, limits and timeouts too.
pub(crate) async fn observe(State(t): State<Arc<Telemetry>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route: Cow<'static, str> = match req.extensions().get::<MatchedPath>() {
        Some(p) => Cow::Owned(p.as_str().to_owned()),
        None => "unmatched".into(),
    };
    let method = method_label(req.method());
    t.in_flight.inc();
    let res = next.run(req).await;
    t.in_flight.dec();
    let elapsed = started.elapsed();
    let status = res.status().as_u16();
    t.requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            method: method.clone(),
            status,
        })
        .inc();
    t.durations
        .get_or_create(&RouteLabels {
            route: route.clone(),
            method: method.clone(),
        })
        .observe(elapsed.as_secs_f64());
    let ms = elapsed.as_secs_f64() * 1e3;
    if res.status().is_server_error() {
        tracing::warn!(target: "pharox_server::access", %method, %route, status, duration_ms = ms, "request");
    } else {
        tracing::info!(target: "pharox_server::access", %method, %route, status, duration_ms = ms, "request");
    }
    res
}

/// The answer of `/healthz` and `/readyz`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ProbeBody {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    status: &'static str,
}

/// `GET /healthz`: 200 while the process serves requests.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    responses((status = 200, description = "The process serves requests", body = ProbeBody))
)]
pub(crate) async fn healthz() -> axum::Json<ProbeBody> {
    axum::Json(ProbeBody { status: "ok" })
}

/// `GET /readyz`: 200 when the store answers a read, else the store's error
/// (503 with `Retry-After` while it is unavailable).
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    responses((status = 200, description = "The store answers", body = ProbeBody))
)]
pub(crate) async fn readyz<S: Storage>(
    State(app): State<AppState<S>>,
) -> Result<axum::Json<ProbeBody>, ApiError> {
    app.store.get_pool(&PoolId::from(READY_PROBE_POOL)).await?;
    Ok(axum::Json(ProbeBody { status: "ready" }))
}

/// `GET /openapi.json`: the OpenAPI 3.1 document of this server (its
/// routes, bodies, errors and whether it asks for an API key).
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
pub(crate) async fn openapi_json<S: Storage>(State(app): State<AppState<S>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        app.openapi.clone(),
    )
        .into_response()
}

/// The media type of `/metrics`.
pub(crate) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`: the OpenMetrics text of the service's metrics and the
/// gauges of up to [`MAX_SCRAPED_POOLS`] pools, read from the store now.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses((
        status = 200,
        description = "OpenMetrics text",
        content_type = "application/openmetrics-text",
        body = String
    ))
)]
pub(crate) async fn metrics<S: Storage>(
    State(app): State<AppState<S>>,
) -> Result<Response, ApiError> {
    let mut pools = app.store.list_pools().await?;
    let truncated = pools.len() > MAX_SCRAPED_POOLS;
    pools.truncate(MAX_SCRAPED_POOLS);
    let mut stats = Vec::with_capacity(pools.len());
    for p in &pools {
        match app.store.pool_stats(&p.id).await {
            Ok(s) => stats.push(s),
            // Removed since it was listed.
            Err(pharox_core::Error::PoolNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut text = String::new();
    encode(&mut text, &app.telemetry.registry).expect("writing to a String cannot fail");
    // One exposition: the pool families go before the service's `# EOF`.
    let body_end = text.strip_suffix("# EOF\n").map_or(text.len(), str::len);
    text.truncate(body_end);
    encode(&mut text, &pool_registry(&stats, truncated)).expect("writing to a String cannot fail");
    let mut res = text.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
    Ok(res)
}

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn pool_registry(stats: &[PoolStatsSnapshot], truncated: bool) -> Registry {
    let proxies = Family::<PoolState, Gauge>::default();
    let leases = Family::<PoolLabel, Gauge>::default();
    for s in stats {
        let pool = PoolValue(s.pool.clone());
        for (state, v) in [
            ("total", s.total),
            ("active", s.active),
            ("available", s.available),
            ("leased", s.leased),
        ] {
            proxies
                .get_or_create(&PoolState {
                    pool: pool.clone(),
                    state,
                })
                .set(gauge(v));
        }
        leases
            .get_or_create(&PoolLabel { pool })
            .set(gauge(s.active_leases));
    }
    let cut = Gauge::<i64>::default();
    cut.set(i64::from(truncated));
    let mut r = Registry::with_prefix("pharox");
    r.register("pool_proxies", "Proxies of the pool by state", proxies);
    r.register("pool_active_leases", "Leases held now", leases);
    r.register(
        "pool_scrape_truncated",
        "1 when the store has more pools than one scrape reads",
        cut,
    );
    r
}

/// The answer of a request the protective layers stopped: over its time
/// `budget` (503 `request_timeout`: the store call may have been applied)
/// or refused at the concurrency limit (503 `overloaded`: nothing was done).
pub(crate) async fn layer_error(e: tower::BoxError, budget: Duration) -> Response {
    if e.is::<tower::timeout::error::Elapsed>() {
        ApiError {
            after_ms: Some(u32::try_from(budget.as_millis()).unwrap_or(u32::MAX)),
            ..ApiError::unavailable(
                codes::REQUEST_TIMEOUT,
                "the request took longer than the server's time budget; it may have been applied",
            )
        }
    } else if e.is::<tower::load_shed::error::Overloaded>() {
        ApiError::unavailable(
            codes::OVERLOADED,
            "the server is handling as many requests as it allows; nothing was done",
        )
    } else {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the request failed inside the server",
        )
    }
    .into_response()
}

/// The default time budget of one request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The default number of requests handled at once (more get 503 `overloaded`).
pub const DEFAULT_CONCURRENCY_LIMIT: usize = 1_024;
