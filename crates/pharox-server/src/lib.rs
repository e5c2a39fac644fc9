//! `pharox serve`: a JSON HTTP lease service over any pharox [`Storage`].
//!
//! It serves the routes pharox-sdk 0.2.0 (PyPI) calls, with the shapes it
//! parses, so `PharoxSDK.remote(url, api_key)` works against it unchanged.
//! `docs/http-api.md` describes every route, body, status and id.
//!
//! - Ids: a pool's UUID is [`PoolId::uuid`](pharox_core::PoolId::uuid); a
//!   lease id carries its pool's tag, so reading or releasing by id alone
//!   finds the pool without a global index.
//! - Errors: `{"error": {"code", "message", "field", "reason"}}`; bad input
//!   is always a 4xx, a store outage a 503 with `Retry-After`.
//! - Auth: `X-API-Key`, checked against SHA-256 digests in constant time
//!   (401 missing, 403 wrong); no keys configured turns it off.
//! - Proxy hosts: writes of a host the [`ProxyHostPolicy`] refuses
//!   (loopback, link-local, …) answer 400 `invalid_input`, field `host`.
//!
//! ```no_run
//! use pharox_core::InMemoryStorage;
//! use pharox_server::{ApiKeys, ServerConfig};
//!
//! # async fn run() -> std::io::Result<()> {
//! let config = ServerConfig::new(ApiKeys::from_list("secret"));
//! let app = pharox_server::router(InMemoryStorage::new(), config);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! pharox_server::serve(listener, app, std::future::pending()).await
//! # }
//! ```
#![forbid(unsafe_code)]

mod auth;
mod directory;
mod error;
mod extract;
mod routes;
pub mod wire;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use pharox_core::{ProxyHostPolicy, Storage};
use tokio::net::TcpListener;

pub use auth::{API_KEY_HEADER, ApiKeys};
pub use directory::{MAX_CACHED_CONSUMERS, proxy_uuid};
pub use error::{ApiError, RETRY_AFTER_SECS};

/// Largest request body accepted by default (64 KiB); larger ones get 413.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Accepted API keys (none: authentication off).
    pub api_keys: ApiKeys,
    /// Largest request body in bytes.
    pub body_limit: usize,
    /// Proxy hosts refused on writes (default: loopback, link-local,
    /// unspecified, multicast, cloud metadata; private ranges accepted).
    pub proxy_hosts: ProxyHostPolicy,
}

impl ServerConfig {
    /// These keys, the default body limit and the default proxy host policy.
    pub fn new(api_keys: ApiKeys) -> Self {
        Self {
            api_keys,
            body_limit: DEFAULT_BODY_LIMIT,
            proxy_hosts: ProxyHostPolicy::default(),
        }
    }
}

/// The service's routes over `store`.
pub fn router<S: Storage>(store: S, config: ServerConfig) -> Router {
    let state = Arc::new(routes::App {
        store,
        dir: directory::Directory::default(),
        proxy_hosts: config.proxy_hosts,
    });
    routes::sdk_routes::<S>()
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::wrong_method)
        .layer(axum::middleware::from_fn_with_state(
            config.api_keys,
            auth::require_key,
        ))
        .layer(DefaultBodyLimit::max(config.body_limit))
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
