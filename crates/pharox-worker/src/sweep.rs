//! Reclaiming expired leases in bounded batches.

use std::time::{Duration, Instant};

use pharox_core::{PoolId, Result, Storage};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// What one sweep of one pool did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SweepReport {
    /// Expired leases this sweep reclaimed (others may have been reclaimed
    /// by other workers or by acquires meanwhile; each lease is counted by
    /// exactly one of them).
    pub reclaimed: u64,
    /// `cleanup_expired` calls made.
    pub batches: u64,
    /// Wall time of the sweep.
    pub duration: Duration,
    /// Whether the sweep stopped early because it was cancelled.
    pub interrupted: bool,
}

/// Reclaims `pool`'s expired leases, `batch` at a time, until a batch comes
/// back short. Cancellation is checked between batches: the batch in flight
/// always finishes, so a cancelled sweep leaves nothing half done.
///
/// ```
/// # tokio_test_block_on(async {
/// use pharox_core::{InMemoryStorage, PoolId, ProxyPool, Storage};
/// use pharox_worker::{CancellationToken, sweep_pool};
///
/// let store = InMemoryStorage::new();
/// store.upsert_pool(&ProxyPool::new("p")).await.unwrap();
/// let report = sweep_pool(&store, &PoolId::from("p"), 100, &CancellationToken::new()).await.unwrap();
/// assert_eq!((report.reclaimed, report.batches), (0, 1));
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
pub async fn sweep_pool<S: Storage>(
    store: &S,
    pool: &PoolId,
    batch: usize,
    cancel: &CancellationToken,
) -> Result<SweepReport> {
    let span = tracing::info_span!(
        target: "pharox::sweep",
        "sweep",
        pool = %pool,
        reclaimed = tracing::field::Empty,
        batches = tracing::field::Empty,
        interrupted = tracing::field::Empty,
    );
    let report = sweep_batches(store, pool, batch, cancel)
        .instrument(span.clone())
        .await;
    if let Ok(r) = &report {
        span.record("reclaimed", r.reclaimed);
        span.record("batches", r.batches);
        span.record("interrupted", r.interrupted);
    }
    report
}

async fn sweep_batches<S: Storage>(
    store: &S,
    pool: &PoolId,
    batch: usize,
    cancel: &CancellationToken,
) -> Result<SweepReport> {
    let started = Instant::now();
    let mut report = SweepReport::default();
    loop {
        let n = store.cleanup_expired(pool, batch).await?;
        report.batches += 1;
        report.reclaimed += n as u64;
        if n < batch {
            break;
        }
        if cancel.is_cancelled() {
            report.interrupted = true;
            break;
        }
    }
    report.duration = started.elapsed();
    Ok(report)
}
