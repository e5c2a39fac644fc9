//! The one error type every storage backend and the manager return.

use std::borrow::Cow;
use std::time::Duration;

use crate::model::{LeaseId, PoolId, ProxyId};

/// A boxed error from a backend driver, kept as the `source` of [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Shorthand for `Result<T, pharox_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in pharox, with variants a caller can act on.
///
/// Messages never contain proxy credentials (invariant I8).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument was rejected before any state was touched.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The argument (or field of an argument) that was rejected.
        field: &'static str,
        /// Why it was rejected.
        reason: Cow<'static, str>,
    },
    /// The pool does not exist in this store.
    #[error("pool `{0}` not found")]
    PoolNotFound(PoolId),
    /// The proxy does not exist in the pool.
    #[error("proxy `{proxy}` not found in pool `{pool}`")]
    ProxyNotFound {
        /// The pool that was searched.
        pool: PoolId,
        /// The proxy that is missing.
        proxy: ProxyId,
    },
    /// The lease is no longer held: it expired, was released, or its proxy was
    /// removed. Stop using the proxy it named.
    #[error("lease {lease} is no longer held (expired, released or its proxy removed)")]
    LeaseLost {
        /// The lost lease.
        lease: LeaseId,
    },
    /// The store cannot evaluate this filter atomically (e.g. a closure
    /// predicate on a server-side store).
    #[error("filter not supported by this storage: {0}")]
    UnsupportedFilter(&'static str),
    /// The store certainly applied nothing (no connection, connection
    /// refused, pool exhausted before sending, a script that never ran);
    /// safe to retry any call. A store must not answer this once a request
    /// may have been applied.
    #[error("storage unavailable: {source}")]
    Unavailable {
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The connection to the store broke while the request was in flight:
    /// it may or may not have been applied. Retryable like a timeout.
    #[error("storage connection interrupted: {source}")]
    Interrupted {
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The store did not answer in time. The request may or may not have
    /// been applied: idempotent calls may be retried.
    #[error("storage operation `{operation}` timed out after {after:?}")]
    Timeout {
        /// The operation that timed out.
        operation: &'static str,
        /// How long it was given.
        after: Duration,
    },
    /// The store answered with an error that retrying will not fix.
    #[error("storage error: {source}")]
    Backend {
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// Data read from the store did not have the expected shape.
    #[error("corrupt data in storage: {0}")]
    Corrupt(Cow<'static, str>),
}

impl Error {
    /// Builds an [`Error::InvalidInput`].
    pub fn invalid(field: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        Self::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// Whether the same call may succeed if retried (connection loss, timeout).
    ///
    /// ```
    /// use pharox_core::Error;
    /// assert!(!Error::invalid("pool", "is empty").is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. } | Self::Interrupted { .. } | Self::Timeout { .. }
        )
    }

    /// Whether the store certainly applied nothing, so even a call that is
    /// not idempotent (an acquire) can be repeated safely.
    pub fn request_not_sent(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}
