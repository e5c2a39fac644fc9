//! Live figures of a running churn, and what it must reach before it ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a run must have done before it may end: it runs past
/// [`ChurnConfig::duration`](super::ChurnConfig::duration) until every
/// figure is reached (or [`ChurnConfig::max_extension`](super::ChurnConfig::max_extension)
/// runs out, which the report lists as shortfalls). So each check has
/// something to check however slow the machine, instead of by luck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exercise {
    /// Leases granted to clients.
    pub leases: u64,
    /// Leases certainly live over an interval (the client-side I1 check).
    pub certain_intervals: u64,
    /// Leases abandoned by a "crashed" client.
    pub abandoned: u64,
    /// Second releases of a lease.
    pub double_releases: u64,
    /// Successful renewals.
    pub renewals: u64,
    /// Leases held past their TTL.
    pub held_past_ttl: u64,
    /// Health results applied by the flapper (ignored when none runs).
    pub flips: u64,
    /// I6 checks, while clients run, that held a lease already expired
    /// before the cleanup they checked.
    pub i6_effective: u64,
}

impl Exercise {
    /// Nothing required: the run ends at its duration.
    pub const NONE: Self = Self {
        leases: 0,
        certain_intervals: 0,
        abandoned: 0,
        double_releases: 0,
        renewals: 0,
        held_past_ttl: 0,
        flips: 0,
        i6_effective: 0,
    };
}

impl Default for Exercise {
    /// 500 leases and 500 certainly-live intervals, and at least one of
    /// everything else.
    fn default() -> Self {
        Self {
            leases: 500,
            certain_intervals: 500,
            abandoned: 1,
            double_releases: 1,
            renewals: 1,
            held_past_ttl: 1,
            flips: 1,
            i6_effective: 1,
        }
    }
}

/// Live figures of one churn run, shared with whoever drives faults beside
/// it (through [`ChurnConfig::progress`](super::ChurnConfig::progress)), so
/// a fault can wait for the churn to have felt the previous one instead of
/// guessing with a delay. Use a fresh one per run.
#[derive(Debug, Default)]
pub struct ChurnProgress {
    pub(super) leases: AtomicU64,
    pub(super) certain_intervals: AtomicU64,
    pub(super) abandoned: AtomicU64,
    pub(super) double_releases: AtomicU64,
    pub(super) renewals: AtomicU64,
    pub(super) held_past_ttl: AtomicU64,
    pub(super) flips: AtomicU64,
    pub(super) i6_effective: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) timeouts: AtomicU64,
    pub(super) interrupted: AtomicU64,
    pub(super) unavailable: AtomicU64,
    pub(super) pools_not_found: AtomicU64,
    pub(super) reseeds: AtomicU64,
    holds: AtomicU64,
    ended: AtomicBool,
}

/// Tolerated errors by kind (fault mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorKinds {
    /// `Timeout`: may have applied.
    pub timeouts: u64,
    /// `Interrupted`: may have applied.
    pub interrupted: u64,
    /// `Unavailable`: certainly not applied.
    pub unavailable: u64,
    /// `PoolNotFound` (data-loss mode).
    pub pools_not_found: u64,
}

/// Marks the run ended when dropped, also when it panics: an injector
/// waiting for progress then fails at once instead of at its deadline.
pub(super) struct Ended(pub(super) Arc<ChurnProgress>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.ended.store(true, Ordering::SeqCst);
    }
}

/// Keeps a churn's clients running past its duration while it lives (see
/// [`ChurnProgress::hold_open`]).
#[derive(Debug)]
#[must_use = "the churn may end as soon as this is dropped"]
pub struct HoldOpen(Arc<ChurnProgress>);

impl Drop for HoldOpen {
    fn drop(&mut self) {
        self.0.holds.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ChurnProgress {
    /// A fresh progress record, to put in a [`ChurnConfig`](super::ChurnConfig).
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Leases granted to clients so far.
    pub fn leases(&self) -> u64 {
        self.leases.load(Ordering::SeqCst)
    }

    /// Errors tolerated so far (fault mode).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::SeqCst)
    }

    /// Times the pool was found gone and seeded again (data-loss mode).
    pub fn reseeds(&self) -> u64 {
        self.reseeds.load(Ordering::SeqCst)
    }

    /// Effective I6 checks so far (see [`Exercise::i6_effective`]).
    pub fn i6_effective(&self) -> u64 {
        self.i6_effective.load(Ordering::SeqCst)
    }

    /// Clients keep running past the duration until the guard is dropped
    /// (and the run's [`Exercise`] is reached), for at most
    /// [`ChurnConfig::max_extension`](super::ChurnConfig::max_extension):
    /// take it before the run starts, drop it when the faults are done.
    pub fn hold_open(self: &Arc<Self>) -> HoldOpen {
        self.holds.fetch_add(1, Ordering::SeqCst);
        HoldOpen(Arc::clone(self))
    }

    pub(super) fn held_open(&self) -> bool {
        self.holds.load(Ordering::SeqCst) > 0
    }

    /// Tolerated errors so far, by kind.
    pub fn error_kinds(&self) -> ErrorKinds {
        ErrorKinds {
            timeouts: self.timeouts.load(Ordering::SeqCst),
            interrupted: self.interrupted.load(Ordering::SeqCst),
            unavailable: self.unavailable.load(Ordering::SeqCst),
            pools_not_found: self.pools_not_found.load(Ordering::SeqCst),
        }
    }

    /// Whether the run has ended (returned or panicked).
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    /// Waits until the run has granted `n` more leases than now (for at
    /// most [`PATIENCE`](crate::testkit::PATIENCE)): the next fault lands
    /// in a churn that is running, whatever the machine's speed.
    pub async fn wait_for_more_leases(&self, n: u64) {
        let from = self.leases();
        self.wait_until(&format!("{n} more leases"), crate::testkit::PATIENCE, |p| {
            p.leases() >= from + n
        })
        .await;
    }

    /// Waits until `reached` holds, checking every 5 ms; panics naming
    /// `what` if it still does not after `within`, or once the run ended
    /// without it.
    pub async fn wait_until(&self, what: &str, within: Duration, reached: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        while !reached(self) {
            assert!(
                !self.ended(),
                "the churn ended (or panicked) before it reached {what}: {} leases, {} errors, \
                 {} reseeds",
                self.leases(),
                self.errors(),
                self.reseeds()
            );
            assert!(
                start.elapsed() < within,
                "the churn did not reach {what} within {within:?}: {} leases, {} errors, {} reseeds",
                self.leases(),
                self.errors(),
                self.reseeds()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// What `target` asks that this run has not reached yet; flips only
    /// when a flapper runs.
    pub(super) fn shortfalls(&self, target: &Exercise, flapper: bool) -> Vec<String> {
        self.figures(target, flapper)
            .into_iter()
            .filter(|&(_, seen, want)| seen < want)
            .map(|(what, seen, want)| format!("{what}: {seen} of {want}"))
            .collect()
    }

    /// Whether `target` is reached (what [`ChurnProgress::shortfalls`] says,
    /// without building it).
    pub(super) fn reached(&self, target: &Exercise, flapper: bool) -> bool {
        self.figures(target, flapper)
            .iter()
            .all(|&(_, seen, want)| seen >= want)
    }

    /// `(what, seen, wanted)` for each figure of `target`.
    fn figures(&self, target: &Exercise, flapper: bool) -> [(&'static str, u64, u64); 8] {
        let figures = [
            ("leases", &self.leases, target.leases),
            (
                "certainly-live intervals",
                &self.certain_intervals,
                target.certain_intervals,
            ),
            ("abandoned leases", &self.abandoned, target.abandoned),
            (
                "double releases",
                &self.double_releases,
                target.double_releases,
            ),
            ("renewals", &self.renewals, target.renewals),
            (
                "leases held past the TTL",
                &self.held_past_ttl,
                target.held_past_ttl,
            ),
            (
                "health flips",
                &self.flips,
                if flapper { target.flips } else { 0 },
            ),
            (
                "I6 checks with an expired lease (while clients ran)",
                &self.i6_effective,
                target.i6_effective,
            ),
        ];
        figures.map(|(what, seen, want)| (what, seen.load(Ordering::SeqCst), want))
    }

    pub(super) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
