//! `pharox serve`: a JSON HTTP lease service over any pharox [`Storage`].
//!
//! It serves the routes pharox-sdk 0.2.0 (PyPI) calls, with the shapes it
//! parses, so `PharoxSDK.remote(url, api_key)` works against it unchanged,
//! and routes for the rest of the `Storage` trait, which `pharox-client`'s
//! `RemoteStorage` implements the trait over. `docs/http-api.md` describes
//! every route, body, status and id; [`wire`] holds every body.
//!
//! - Ids: a pool's UUID is [`PoolId::uuid`](pharox_core::PoolId::uuid); a
//!   lease id carries its pool's tag, so reading or releasing by id alone
//!   finds the pool without a global index.
//! - Errors: `{"detail", "error": {"code", "message", "field", "reason"}}`;
//!   bad input is always a 4xx, a store outage a 503 with `Retry-After`,
//!   and each store error keeps its own code, so a client can tell "not
//!   applied" from "maybe applied".
//! - Credentials: answers carry a proxy's password only where a holder needs
//!   it (acquire and renew on the `Storage` routes) or with
//!   `?credentials=include`; never in the SDK's shapes, logs or errors.
//! - Auth: `X-API-Key`, checked against SHA-256 digests in constant time
//!   (401 missing, 403 wrong); no keys configured turns it off.
//! - OpenAPI: `/openapi.json` (no key) answers the OpenAPI 3.1 document
//!   of this server ([`openapi()`]), generated from the handlers and the
//!   [`wire`] types by the same route table that builds the router.
//! - Proxy hosts: writes of a host the [`ProxyHostPolicy`] refuses
//!   (loopback, link-local, …) answer 400 `invalid_input`, field `host`.
//!
//! ```no_run
//! use pharox_core::InMemoryStorage;
//! use pharox_server::{ApiKeys, ServerConfig};
//!
//! # async fn run() -> std::io::Result<()> {
//! let config = ServerConfig::new(ApiKeys::admin(["secret"]));
//! let app = pharox_server::router(InMemoryStorage::new(), config);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! pharox_server::serve(listener, app, std::future::pending()).await
//! # }
//! ```
#![forbid(unsafe_code)]

mod auth;
mod dashboard;
mod directory;
mod error;
mod extract;
mod openapi;
mod ops;
mod routes;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use pharox_core::{ProxyHostPolicy, Storage};
use tokio::net::TcpListener;
use tower::ServiceBuilder;

use crate::routes::Access;

pub use auth::{API_KEY_HEADER, ApiKeyError, ApiKeys, Scope};
pub use directory::{DEFAULT_POOL_REFRESH_INTERVAL, MAX_CACHED_CONSUMERS};
pub use error::{ApiError, RETRY_AFTER_SECS};
pub use openapi::openapi;
pub use ops::{DEFAULT_CONCURRENCY_LIMIT, DEFAULT_REQUEST_TIMEOUT, MAX_SCRAPED_POOLS};
/// The JSON bodies of every route (the `pharox-wire` crate).
pub use pharox_wire as wire;
pub use pharox_wire::proxy_uuid;

/// Largest request body accepted by default (64 KiB); larger ones get 413.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// Largest bulk import body accepted by default (4 MiB; about 10,000
/// proxies of 400 bytes, the import's item limit).
pub const DEFAULT_IMPORT_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Accepted API keys (none: authentication off).
    pub api_keys: ApiKeys,
    /// Largest request body in bytes (413 above it).
    pub body_limit: usize,
    /// Largest body of `POST /v1/pools/{pool}/import` in bytes.
    pub import_body_limit: usize,
    /// Least time between two `list_pools` calls that refresh the map from
    /// pool UUIDs and lease tags to pools: a pool created by another server
    /// is found at most this late, and unknown UUIDs cost the store at most
    /// one `list_pools` per interval.
    pub pool_refresh_interval: Duration,
    /// Time budget of one request: past it the answer is 503
    /// `request_timeout` (the store call may have been applied). A capacity
    /// long poll (`POST /v1/pools/{pool}/wait`) waits at most half of it.
    pub request_timeout: Duration,
    /// Requests handled at once; more are answered 503 `overloaded` at once
    /// (nothing done), instead of queueing without bound.
    pub concurrency_limit: usize,
    /// Serve `/metrics` without an API key (for scrapers that cannot send
    /// one). Off by default: it names every pool.
    pub public_metrics: bool,
    /// Proxy hosts refused on writes (default: loopback, link-local,
    /// unspecified, multicast, cloud metadata; private ranges accepted).
    pub proxy_hosts: ProxyHostPolicy,
}

impl ServerConfig {
    /// These keys and the defaults: [`DEFAULT_BODY_LIMIT`],
    /// [`DEFAULT_IMPORT_BODY_LIMIT`], [`DEFAULT_POOL_REFRESH_INTERVAL`],
    /// [`DEFAULT_REQUEST_TIMEOUT`], [`DEFAULT_CONCURRENCY_LIMIT`], `/metrics`
    /// behind the keys, the default proxy host policy.
    pub fn new(api_keys: ApiKeys) -> Self {
        Self {
            api_keys,
            body_limit: DEFAULT_BODY_LIMIT,
            import_body_limit: DEFAULT_IMPORT_BODY_LIMIT,
            pool_refresh_interval: DEFAULT_POOL_REFRESH_INTERVAL,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            concurrency_limit: DEFAULT_CONCURRENCY_LIMIT,
            public_metrics: false,
            proxy_hosts: ProxyHostPolicy::default(),
        }
    }
}

/// The service's routes over `store`.
///
/// Layers, outermost first: the access log and request metrics; the
/// concurrency limit (503 `overloaded` past it) and the request time budget
/// (503 `request_timeout`), for every route but `/healthz`; the body limit
/// (413); then, except for `/healthz`, `/readyz`, `/openapi.json`, the
/// dashboard's files (`/`, `/dashboard.js`, `/dashboard.css`) and `/metrics`
/// when [`ServerConfig::public_metrics`], the API key check.
///
/// The routes and the OpenAPI document at `/openapi.json` come from one
/// table, so every route is in the document; the document describes this
/// configuration (whether keys are asked for, whether `/metrics` is public).
pub fn router<S: Storage>(store: S, config: ServerConfig) -> Router {
    let telemetry = Arc::new(ops::Telemetry::new());
    let routes = routes::table::<S>(config.import_body_limit);
    let document = openapi::document(
        &routes,
        openapi::Documented {
            keys: !config.api_keys.is_empty(),
            public_metrics: config.public_metrics,
        },
    );
    let openapi = serde_json::to_vec(&document).expect("an OpenAPI document serializes");
    let state = Arc::new(routes::App {
        store,
        dir: directory::Directory::new(config.pool_refresh_interval),
        telemetry: telemetry.clone(),
        max_wait: config.request_timeout / 2,
        proxy_hosts: config.proxy_hosts,
        openapi: openapi.into(),
        dashboard: dashboard::page_for(!config.api_keys.is_empty()),
    });
    let (mut keyed, mut public, mut liveness) = (Router::new(), Router::new(), Router::new());
    for route in routes {
        let router = match route.access {
            Access::Key => &mut keyed,
            Access::Metrics if !config.public_metrics => &mut keyed,
            Access::Metrics | Access::Public => &mut public,
            Access::Liveness => &mut liveness,
        };
        *router = std::mem::take(router).route(&route.path, route.handler);
    }
    let budget = config.request_timeout;
    let protect = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(move |e| ops::layer_error(e, budget)))
        .load_shed()
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            config.concurrency_limit.max(1),
        ))
        .timeout(config.request_timeout);
    keyed
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::wrong_method)
        .layer(axum::middleware::from_fn_with_state(
            config.api_keys,
            auth::require_key,
        ))
        .merge(public)
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(protect)
        // Liveness is answered even at the concurrency limit: a busy server
        // must not be restarted for being busy (readiness says it is full).
        .merge(liveness)
        .layer(axum::middleware::from_fn_with_state(
            telemetry,
            ops::observe,
        ))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting connections and lets requests in flight finish.
///
/// # Errors
/// When accepting connections fails fatally.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
