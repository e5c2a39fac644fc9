//! The lease calls of the routes, each in its span of
//! [`pharox_core::spans`] (the names and fields `ProxyManager` uses too).

use chrono::TimeDelta;
use pharox_core::{AcquireRequest, Lease, LeaseRef, ReleaseOutcome, Result, Storage, spans};
use tracing::Instrument;

use super::App;

impl<S: Storage> App<S> {
    /// `Storage::acquire` in an `acquire` span.
    pub async fn acquire(&self, request: &AcquireRequest) -> Result<Option<Lease>> {
        let span = spans::acquire(request);
        let result = self.store.acquire(request).instrument(span.clone()).await;
        spans::acquired(&span, &result);
        result
    }

    /// `Storage::release_by_ref` in a `release` span.
    pub async fn release_by_ref(
        &self,
        lease: &LeaseRef,
    ) -> Result<Option<(Lease, ReleaseOutcome)>> {
        let span = spans::release(&lease.pool, lease.id);
        let result = self
            .store
            .release_by_ref(lease)
            .instrument(span.clone())
            .await;
        spans::released_by_ref(&span, &result);
        result
    }

    /// `Storage::renew_by_ref` in a `renew` span.
    pub async fn renew_by_ref(&self, lease: &LeaseRef, duration: TimeDelta) -> Result<Lease> {
        let span = spans::renew(&lease.pool, lease.id);
        let result = self
            .store
            .renew_by_ref(lease, duration)
            .instrument(span.clone())
            .await;
        spans::renewed(&span, &result);
        result
    }
}
