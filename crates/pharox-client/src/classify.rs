//! HTTP failures back to the [`Error`] variants the server's store produced,
//! so callers (and `ProxyManager`'s retry policy) act as they would on the
//! store itself.
//!
//! | What happened | Error | Applied? |
//! |---|---|---|
//! | no connection (refused, DNS, TLS, connect timeout) | `Unavailable` | no |
//! | 503 `store_unavailable` or `overloaded`, 429 | `Unavailable` | no |
//! | the connection broke after the request went out | `Interrupted` | maybe |
//! | 503 `store_interrupted`; a 502/503/504 not from pharox | `Interrupted` | maybe |
//! | no answer within the timeout; 503 `store_timeout` or `request_timeout` | `Timeout` | maybe |
//! | 400 `invalid_input` and other refused input | `InvalidInput` | no |
//! | 404 `pool_not_found` / `proxy_not_found` / `lease_not_found` | `PoolNotFound` / `ProxyNotFound` / `LeaseLost` | no |
//! | 500 `store_corrupt`; an answer that does not decode | `Corrupt` | yes |
//! | 401, 403, 500 `internal`, anything else | `Backend` | — |
//!
//! A lost reply to an acquire is therefore a `Timeout` or `Interrupted`,
//! as on Redis: the manager does not repeat it (the lease, if granted,
//! ends at its expiry).

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::Duration;

use parking_lot::Mutex;
use pharox_core::{Error, LeaseId, PoolId, ProxyId};
use pharox_wire::{ErrorBody, codes};
use reqwest::StatusCode;

/// What a call was about, to name it in `PoolNotFound`, `ProxyNotFound`
/// and `LeaseLost`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Subject<'a> {
    pub(crate) pool: Option<&'a PoolId>,
    pub(crate) proxy: Option<&'a ProxyId>,
    pub(crate) lease: Option<LeaseId>,
}

/// A transport failure of `op`, given `timeout`.
pub(crate) fn transport(op: &'static str, timeout: Duration, e: reqwest::Error) -> Error {
    // Connecting failed (a connect timeout included): nothing was sent.
    if e.is_connect() {
        return Error::Unavailable {
            source: Box::new(e),
        };
    }
    if e.is_timeout() {
        return Error::Timeout {
            operation: op,
            after: timeout,
        };
    }
    if e.is_builder() || e.is_redirect() {
        return Error::Backend {
            source: Box::new(e),
        };
    }
    // Sent, or partly sent, and the connection broke before the answer.
    Error::Interrupted {
        source: Box::new(e),
    }
}

/// An answer that does not decode: the call was applied (the server
/// answered) but its result is unreadable. Never quotes the body, which
/// may hold a password.
pub(crate) fn undecodable(op: &'static str, status: StatusCode, e: &serde_json::Error) -> Error {
    Error::Corrupt(
        format!(
            "the {status} answer to `{op}` did not decode ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        )
        .into(),
    )
}

/// The error an answer other than 2xx stands for.
pub(crate) fn answer(
    op: &'static str,
    status: StatusCode,
    body: &[u8],
    about: Subject<'_>,
) -> Error {
    let Ok(body) = serde_json::from_slice::<ErrorBody>(body) else {
        return not_from_pharox(op, status);
    };
    let e = body.error;
    let message = e.message;
    let source = || format!("{op}: {status} {}: {message}", e.code).into();
    match e.code.as_str() {
        codes::INVALID_INPUT
        | codes::INVALID_BODY
        | codes::INVALID_JSON
        | codes::INVALID_PATH
        | codes::PAYLOAD_TOO_LARGE
        | codes::UNSUPPORTED_MEDIA_TYPE => Error::InvalidInput {
            field: intern(e.field.as_deref().unwrap_or("body")),
            reason: Cow::Owned(e.reason.unwrap_or_else(|| message.clone())),
        },
        codes::UNSUPPORTED_FILTER => {
            Error::UnsupportedFilter(intern(e.reason.as_deref().unwrap_or("filters")))
        }
        codes::POOL_NOT_FOUND => match about.pool {
            Some(pool) => Error::PoolNotFound(pool.clone()),
            None => Error::Backend { source: source() },
        },
        codes::PROXY_NOT_FOUND => match (about.pool, about.proxy) {
            (Some(pool), Some(proxy)) => Error::ProxyNotFound {
                pool: pool.clone(),
                proxy: proxy.clone(),
            },
            _ => Error::Backend { source: source() },
        },
        codes::LEASE_NOT_FOUND => match about.lease {
            Some(lease) => Error::LeaseLost { lease },
            None => Error::Backend { source: source() },
        },
        codes::STORE_UNAVAILABLE | codes::OVERLOADED => Error::Unavailable { source: source() },
        codes::STORE_INTERRUPTED => Error::Interrupted { source: source() },
        codes::STORE_TIMEOUT | codes::REQUEST_TIMEOUT => Error::Timeout {
            operation: op,
            after: Duration::from_millis(e.after_ms.unwrap_or(0)),
        },
        codes::STORE_CORRUPT => Error::Corrupt(message.into()),
        _ if status.is_server_error() && is_gateway(status) => {
            Error::Interrupted { source: source() }
        }
        // 401, 403, 500 `internal`, routes this server does not have, and
        // codes this client does not know: retrying will not fix them.
        _ => Error::Backend { source: source() },
    }
}

fn is_gateway(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

/// An answer without pharox's error body: from a proxy or load balancer in
/// between, or not a pharox server at all.
fn not_from_pharox(op: &'static str, status: StatusCode) -> Error {
    let source = format!("{op}: {status} without a pharox error body").into();
    if status == StatusCode::TOO_MANY_REQUESTS {
        // Refused before it was handled.
        Error::Unavailable { source }
    } else if is_gateway(status) {
        // A gateway's 5xx: the server may have applied the request.
        Error::Interrupted { source }
    } else {
        Error::Backend { source }
    }
}

/// Most distinct strings [`intern`] keeps; later ones read `(unknown)`.
const MAX_INTERNED: usize = 512;
/// Longest string [`intern`] keeps.
const MAX_INTERNED_LEN: usize = 128;

static INTERNED: LazyLock<Mutex<HashSet<&'static str>>> =
    LazyLock::new(|| Mutex::new(HashSet::new()));

/// A `'static` copy of a field name or reason from an answer, for the
/// variants of [`Error`] that hold `&'static str`. The store's field names
/// are a small fixed set, so this leaks a bounded amount once: at most
/// [`MAX_INTERNED`] strings of [`MAX_INTERNED_LEN`] bytes.
pub(crate) fn intern(s: &str) -> &'static str {
    if s.len() > MAX_INTERNED_LEN {
        return "(unknown)";
    }
    let mut set = INTERNED.lock();
    if let Some(known) = set.get(s) {
        return known;
    }
    if set.len() >= MAX_INTERNED {
        return "(unknown)";
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    set.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: &str, field: Option<&str>) -> Vec<u8> {
        serde_json::to_vec(&ErrorBody {
            detail: "m".into(),
            error: pharox_wire::ErrorDetail {
                code: code.into(),
                message: "m".into(),
                field: field.map(Into::into),
                reason: Some("r".into()),
                after_ms: Some(1500),
            },
        })
        .unwrap()
    }

    #[test]
    fn store_errors_keep_their_retry_class() {
        let none = Subject::default();
        let e503 = StatusCode::SERVICE_UNAVAILABLE;
        for code in [codes::STORE_UNAVAILABLE, codes::OVERLOADED] {
            let e = answer("acquire", e503, &body(code, None), none);
            assert!(e.is_retryable() && e.request_not_sent(), "{code}: {e:?}");
        }
        for code in [
            codes::STORE_INTERRUPTED,
            codes::STORE_TIMEOUT,
            codes::REQUEST_TIMEOUT,
        ] {
            let e = answer("acquire", e503, &body(code, None), none);
            assert!(e.is_retryable() && !e.request_not_sent(), "{code}: {e:?}");
        }
        assert!(matches!(
            answer("acquire", e503, &body(codes::STORE_TIMEOUT, None), none),
            Error::Timeout { after, .. } if after == Duration::from_millis(1500)
        ));
        let internal = StatusCode::INTERNAL_SERVER_ERROR;
        assert!(matches!(
            answer("x", internal, &body(codes::STORE_CORRUPT, None), none),
            Error::Corrupt(_)
        ));
        assert!(!answer("x", internal, &body(codes::INTERNAL, None), none).is_retryable());
    }

    #[test]
    fn answers_without_a_pharox_body_are_classified_by_status() {
        let none = Subject::default();
        for (status, retryable, not_sent) in [
            (StatusCode::BAD_GATEWAY, true, false),
            (StatusCode::SERVICE_UNAVAILABLE, true, false),
            (StatusCode::GATEWAY_TIMEOUT, true, false),
            (StatusCode::TOO_MANY_REQUESTS, true, true),
            (StatusCode::INTERNAL_SERVER_ERROR, false, false),
            (StatusCode::NOT_FOUND, false, false),
        ] {
            let e = answer("x", status, b"<html>busy</html>", none);
            assert_eq!(
                (e.is_retryable(), e.request_not_sent()),
                (retryable, not_sent),
                "{status}: {e:?}"
            );
        }
    }

    #[test]
    fn not_found_codes_name_what_the_call_was_about() {
        let pool = PoolId::from("p");
        let proxy = ProxyId::from("x");
        let lease = LeaseId::random();
        let about = Subject {
            pool: Some(&pool),
            proxy: Some(&proxy),
            lease: Some(lease),
        };
        let nf = StatusCode::NOT_FOUND;
        assert!(matches!(
            answer("x", nf, &body(codes::POOL_NOT_FOUND, None), about),
            Error::PoolNotFound(p) if p == pool
        ));
        assert!(matches!(
            answer("x", nf, &body(codes::PROXY_NOT_FOUND, None), about),
            Error::ProxyNotFound { proxy: p, .. } if p == proxy
        ));
        assert!(matches!(
            answer("x", nf, &body(codes::LEASE_NOT_FOUND, None), about),
            Error::LeaseLost { lease: l } if l == lease
        ));
        // A 404 for a route the server does not have is not "not found".
        assert!(matches!(
            answer("x", nf, &body(codes::NOT_FOUND, None), about),
            Error::Backend { .. }
        ));
    }

    #[test]
    fn invalid_input_keeps_the_servers_field() {
        let e = answer(
            "x",
            StatusCode::BAD_REQUEST,
            &body(codes::INVALID_INPUT, Some("proxy.max_concurrency")),
            Subject::default(),
        );
        assert!(matches!(
            e,
            Error::InvalidInput { field: "proxy.max_concurrency", ref reason } if reason == "r"
        ));
    }

    #[test]
    fn interning_is_bounded_and_deduplicated() {
        assert!(std::ptr::eq(intern("pool.name"), intern("pool.name")));
        assert_eq!(intern(&"x".repeat(MAX_INTERNED_LEN + 1)), "(unknown)");
    }
}
