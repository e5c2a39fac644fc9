//! The error body every route answers with, and its stable codes.

use serde::{Deserialize, Serialize};

/// `{"detail", "error": {"code", "message", "field", "reason"}}`. `detail`
/// repeats the message at the top level, where FastAPI services put it and
/// where pharox-sdk's `RemoteError` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The message again (FastAPI's convention).
    pub detail: String,
    /// The error.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable machine-readable code: one of [`codes`].
    pub code: String,
    /// Human-readable message. Never contains credentials or API keys.
    pub message: String,
    /// The rejected field, for `invalid_input` and `invalid_body` (else `null`).
    #[serde(default)]
    pub field: Option<String>,
    /// Why the field was rejected (else `null`).
    #[serde(default)]
    pub reason: Option<String>,
    /// For `store_timeout` and `request_timeout`: how long the store or the
    /// request was given, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_ms: Option<u64>,
}

/// The stable error codes. The status of each is in `docs/http-api.md`.
pub mod codes {
    /// 400: a value the store or the API rejects; `field` names it.
    pub const INVALID_INPUT: &str = "invalid_input";
    /// 400: a filter the store cannot evaluate atomically.
    pub const UNSUPPORTED_FILTER: &str = "unsupported_filter";
    /// 400: the body is not JSON.
    pub const INVALID_JSON: &str = "invalid_json";
    /// 400: a path segment that does not decode.
    pub const INVALID_PATH: &str = "invalid_path";
    /// 401: no `X-API-Key` while keys are configured.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// 403: a key that is not accepted.
    pub const FORBIDDEN: &str = "forbidden";
    /// 404: no such pool.
    pub const POOL_NOT_FOUND: &str = "pool_not_found";
    /// 404: no such proxy in the pool.
    pub const PROXY_NOT_FOUND: &str = "proxy_not_found";
    /// 404: no live lease with this id (released, expired, never existed, or
    /// another token); on renew, the lease is lost.
    pub const LEASE_NOT_FOUND: &str = "lease_not_found";
    /// 404: no such route.
    pub const NOT_FOUND: &str = "not_found";
    /// 405: the route does not take this method.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// 409: no proxy of the pool qualifies now.
    pub const NO_PROXY_AVAILABLE: &str = "no_proxy_available";
    /// 409: `POST /v1/pools/` for a name that exists.
    pub const POOL_EXISTS: &str = "pool_exists";
    /// 413: the body is over the size limit.
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// 415: a body without `Content-Type: application/json`.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    /// 422: JSON of the wrong shape; `field` is its path.
    pub const INVALID_BODY: &str = "invalid_body";
    /// 500: a store error that retrying will not fix.
    pub const INTERNAL: &str = "internal";
    /// 500: the store holds data of an unexpected shape.
    pub const STORE_CORRUPT: &str = "store_corrupt";
    /// 503: the store certainly applied nothing; retry any call.
    pub const STORE_UNAVAILABLE: &str = "store_unavailable";
    /// 503: the connection to the store broke mid-request: it may have been
    /// applied; retry idempotent calls.
    pub const STORE_INTERRUPTED: &str = "store_interrupted";
    /// 503: the store did not answer in time: it may have been applied;
    /// retry idempotent calls.
    pub const STORE_TIMEOUT: &str = "store_timeout";
    /// 503: the request ran past the server's time budget: it may have been
    /// applied; retry idempotent calls.
    pub const REQUEST_TIMEOUT: &str = "request_timeout";
    /// 503: the server is at its concurrency limit: nothing was done; retry
    /// any call.
    pub const OVERLOADED: &str = "overloaded";
}
