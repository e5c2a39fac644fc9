//! The `tracing` spans of the lease operations, one per call, shared by
//! [`ProxyManager`](crate::ProxyManager) and `pharox serve`, so a trace
//! shows the same names and fields whichever way a lease was taken.
//!
//! Spans are at `INFO` with target [`TARGET`] (`pharox::lease`); a
//! subscriber that exports spans (OpenTelemetry through
//! `tracing-opentelemetry`, as `pharox serve --otlp-endpoint` installs)
//! sees them, a plain log subscriber prints nothing for them (spans only
//! give context to log lines), and with no subscriber they cost next to
//! nothing. Fields never carry credentials (I8): ids, names and outcomes.
//!
//! | span | fields set when it opens | fields recorded at the end |
//! |---|---|---|
//! | `acquire` | `pool`, `consumer`, `selector`, `filtered` | `outcome` (`leased`, `no_proxy`, `error`), `proxy`, `lease`, `token` |
//! | `release` | `pool`, `lease` | `outcome` (`released`, `expired`, `not_held`, `error`…) |
//! | `renew` | `pool`, `lease` | `outcome` (`renewed`, `error`) |
//!
//! ```
//! use pharox_core::{AcquireRequest, spans};
//! use tracing::Instrument;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let request = AcquireRequest::new("eu");
//! let span = spans::acquire(&request);
//! let result: pharox_core::Result<Option<pharox_core::Lease>> =
//!     async { Ok(None) }.instrument(span.clone()).await;
//! spans::acquired(&span, &result);
//! # });
//! ```

use tracing::Span;
use tracing::field::Empty;

use crate::{AcquireRequest, Lease, LeaseId, PoolId, ReleaseOutcome, Result};

/// The target of every lease span.
pub const TARGET: &str = "pharox::lease";

/// The span of one acquire (before its result: see [`acquired`]).
pub fn acquire(request: &AcquireRequest) -> Span {
    tracing::info_span!(
        target: "pharox::lease",
        "acquire",
        pool = %request.pool,
        consumer = %request.consumer,
        selector = %request.selector,
        filtered = !request.filters.is_empty(),
        outcome = Empty,
        proxy = Empty,
        lease = Empty,
        token = Empty,
        error = Empty,
    )
}

/// Records an acquire's result on its span.
pub fn acquired(span: &Span, result: &Result<Option<Lease>>) {
    match result {
        Ok(Some(lease)) => {
            span.record("outcome", "leased");
            span.record("proxy", lease.proxy.id.as_str());
            span.record("lease", tracing::field::display(lease.id));
            span.record("token", lease.token);
        }
        Ok(None) => {
            span.record("outcome", "no_proxy");
        }
        Err(e) => failed(span, e),
    }
}

/// The span of one release (see [`released`]).
pub fn release(pool: &PoolId, lease: LeaseId) -> Span {
    tracing::info_span!(
        target: "pharox::lease",
        "release",
        pool = %pool,
        lease = %lease,
        outcome = Empty,
        error = Empty,
    )
}

/// Records a release's outcome on its span.
pub fn released(span: &Span, result: &Result<ReleaseOutcome>) {
    match result {
        Ok(outcome) => finish(span, release_outcome(*outcome)),
        Err(e) => failed(span, e),
    }
}

/// Records the outcome of a release by reference (`None`: nothing held).
pub fn released_by_ref(span: &Span, result: &Result<Option<(Lease, ReleaseOutcome)>>) {
    match result {
        Ok(Some((_, outcome))) => finish(span, release_outcome(*outcome)),
        Ok(None) => finish(span, release_outcome(ReleaseOutcome::NotHeld)),
        Err(e) => failed(span, e),
    }
}

/// The span of one renew (see [`renewed`]).
pub fn renew(pool: &PoolId, lease: LeaseId) -> Span {
    tracing::info_span!(
        target: "pharox::lease",
        "renew",
        pool = %pool,
        lease = %lease,
        outcome = Empty,
        error = Empty,
    )
}

/// Records a renew's result on its span.
pub fn renewed(span: &Span, result: &Result<Lease>) {
    match result {
        Ok(_) => finish(span, "renewed"),
        Err(e) => failed(span, e),
    }
}

fn finish(span: &Span, outcome: &'static str) {
    span.record("outcome", outcome);
}

/// An error's display never holds a password (I8: errors describe records
/// by kind and position).
fn failed(span: &Span, e: &crate::Error) {
    span.record("outcome", "error");
    span.record("error", tracing::field::display(e));
}

/// A release outcome's name in spans.
pub fn release_outcome(outcome: ReleaseOutcome) -> &'static str {
    match outcome {
        ReleaseOutcome::Released => "released",
        ReleaseOutcome::Expired => "expired",
        ReleaseOutcome::NotHeld => "not_held",
        ReleaseOutcome::ReleasedOrGone => "released_or_gone",
    }
}
