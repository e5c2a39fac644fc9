//! The one error type of the HTTP API and its JSON shape.
//!
//! Every error answer is `{"detail", "error": {"code", "message", "field",
//! "reason"}}` with a stable machine-readable `code`. `detail` repeats the
//! message at the top level, where FastAPI services put it and where
//! pharox-sdk's `RemoteError` reads it. Bad input is always a 4xx: store
//! errors that mean "bad input" map to 400/404/409, bad bodies to
//! 400/413/415/422, and only a store failure gives a 5xx.

use std::borrow::Cow;

use axum::extract::rejection::PathRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Seconds a client should wait before retrying a 503, sent as `Retry-After`.
pub const RETRY_AFTER_SECS: u64 = 1;

/// An error answer: status, stable code, message and, for invalid input,
/// the field and the reason.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `invalid_input`, `pool_not_found`.
    pub code: &'static str,
    /// Human-readable message. Never contains credentials or API keys.
    pub message: Cow<'static, str>,
    /// The rejected field, for `invalid_input`.
    pub field: Option<Cow<'static, str>>,
    /// Why the field was rejected, for `invalid_input`.
    pub reason: Option<Cow<'static, str>>,
    /// `Retry-After` seconds, sent with 503.
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    detail: &'a str,
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
    field: Option<&'a str>,
    reason: Option<&'a str>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            reason: None,
            retry_after: None,
        }
    }

    /// 400 `invalid_input` for `field`, because of `reason`.
    pub fn invalid(
        field: impl Into<Cow<'static, str>>,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        let (field, reason) = (field.into(), reason.into());
        Self {
            message: format!("invalid {field}: {reason}").into(),
            field: Some(field),
            reason: Some(reason),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_input", "")
        }
    }

    /// Renames the field of an `invalid_input` error to the name the request
    /// body gives it (the store names its own fields, e.g. `proxy.port`).
    pub(crate) fn field_as(mut self, rename: impl Fn(&str) -> Option<String>) -> Self {
        if let (Some(field), Some(reason)) = (&self.field, &self.reason)
            && let Some(new) = rename(field)
        {
            self.message = format!("invalid {new}: {reason}").into();
            self.field = Some(new.into());
        }
        self
    }

    /// 404 with a code such as `pool_not_found`.
    pub fn not_found(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 409 with a code such as `no_proxy_available`.
    pub fn conflict(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 503 with `Retry-After`: the store cannot be reached now.
    pub(crate) fn unavailable(code: &'static str, message: &'static str) -> Self {
        Self {
            retry_after: Some(RETRY_AFTER_SECS),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// Maps a path that did not parse (400).
    pub(crate) fn from_path(rejection: PathRejection) -> Self {
        let status = if rejection.status().is_client_error() {
            rejection.status()
        } else {
            StatusCode::BAD_REQUEST
        };
        Self::new(status, "invalid_path", rejection.body_text())
    }
}

impl From<pharox_core::Error> for ApiError {
    fn from(e: pharox_core::Error) -> Self {
        use pharox_core::Error as E;
        match e {
            E::InvalidInput { field, reason } => Self::invalid(field, reason),
            E::PoolNotFound(pool) => {
                Self::not_found("pool_not_found", format!("pool `{pool}` not found"))
            }
            E::ProxyNotFound { pool, proxy } => Self::not_found(
                "proxy_not_found",
                format!("proxy `{proxy}` not found in pool `{pool}`"),
            ),
            E::LeaseLost { .. } => {
                Self::not_found("lease_not_found", "the lease is no longer held")
            }
            E::UnsupportedFilter(what) => Self {
                code: "unsupported_filter",
                ..Self::invalid("filters", what)
            },
            E::Unavailable { source } => {
                tracing::warn!(error = %source, "store unavailable");
                Self::unavailable(
                    "store_unavailable",
                    "the store is unavailable; nothing was applied",
                )
            }
            E::Interrupted { source } => {
                tracing::warn!(error = %source, "store connection interrupted");
                Self::unavailable(
                    "store_interrupted",
                    "the connection to the store broke; the request may or may not have been applied",
                )
            }
            E::Timeout { operation, after } => {
                tracing::warn!(operation, ?after, "store timed out");
                Self::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "store_timeout",
                    "the store did not answer in time; the request may or may not have been applied",
                )
            }
            other => {
                tracing::error!(error = %other, "store error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal store error",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            detail: &self.message,
            error: Detail {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
                reason: self.reason.as_deref(),
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The answer to a route that does not exist (JSON 404).
pub(crate) async fn no_route() -> ApiError {
    ApiError::not_found("not_found", "no such route")
}

/// The answer to a method a route does not take (JSON 405).
pub(crate) async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}
