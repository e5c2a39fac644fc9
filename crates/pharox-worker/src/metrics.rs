//! Prometheus metrics of the pools a worker watches.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `pharox_pool_proxies` | gauge | `pool`, `state` = total, active, available, leased |
//! | `pharox_pool_active_leases` | gauge | `pool` |
//! | `pharox_pool_leases_total` | counter: leases granted since the pool was created | `pool` |
//! | `pharox_pool_released_leases_total` | counter | `pool` |
//! | `pharox_pool_expired_leases_total` | counter | `pool` |
//! | `pharox_sweeps_total` | counter: sweeps run by this worker | `pool` |
//! | `pharox_swept_leases_total` | counter: expired leases this worker reclaimed | `pool` |
//! | `pharox_sweep_duration_seconds` | histogram | `pool` |
//! | `pharox_health_checks_total` | counter | `pool`, `status` = the status applied |
//!
//! The pool figures are the last [`PoolStatsSnapshot`] the worker took; the
//! lifetime counters follow the store's own counters (a pool removed and
//! created again shows as a counter reset). Proxy credentials never appear
//! in any label (I8): labels are pool ids and fixed words.
//!
//! A pool id may hold any printable character, quotes and backslashes too:
//! the `pool` label escapes it as the text format requires, so every id
//! round-trips through a Prometheus or OpenMetrics parser.

use std::collections::HashMap;

use parking_lot::Mutex;
use pharox_core::{PoolId, PoolStatsSnapshot, ProxyStatus};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::sweep::SweepReport;

/// A pool id as a label value. prometheus-client writes label values as
/// they are, so this escapes `\`, `"` and newline itself (the OpenMetrics
/// and Prometheus text formats agree on these three). Only the text encoder
/// is used: the protobuf one would need the raw value.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct PoolValue(PoolId);

impl EncodeLabelValue for PoolValue {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        pharox_core::exposition::write_label_value(encoder, self.0.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabel {
    pool: PoolValue,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolState {
    pool: PoolValue,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolStatus {
    pool: PoolValue,
    status: &'static str,
}

type HistogramFamily = Family<PoolLabel, Histogram, fn() -> Histogram>;

/// The lifetime counters last seen per pool (to export deltas).
#[derive(Clone, Copy, Default)]
struct Seen {
    total: u64,
    released: u64,
    expired: u64,
}

/// A worker's metrics registry. Cheap to share behind an `Arc`.
pub struct Metrics {
    registry: Registry,
    proxies: Family<PoolState, Gauge>,
    active_leases: Family<PoolLabel, Gauge>,
    leases: Family<PoolLabel, Counter>,
    released: Family<PoolLabel, Counter>,
    expired: Family<PoolLabel, Counter>,
    sweeps: Family<PoolLabel, Counter>,
    swept: Family<PoolLabel, Counter>,
    sweep_seconds: HistogramFamily,
    health: Family<PoolStatus, Counter>,
    seen: Mutex<HashMap<PoolId, Seen>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// An empty registry with every pharox metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pharox");
        let m = Self {
            proxies: Family::default(),
            active_leases: Family::default(),
            leases: Family::default(),
            released: Family::default(),
            expired: Family::default(),
            sweeps: Family::default(),
            swept: Family::default(),
            sweep_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
            health: Family::default(),
            seen: Mutex::new(HashMap::new()),
            registry: Registry::default(),
        };
        registry.register(
            "pool_proxies",
            "Proxies of the pool by state",
            m.proxies.clone(),
        );
        registry.register(
            "pool_active_leases",
            "Leases held now",
            m.active_leases.clone(),
        );
        registry.register(
            "pool_leases",
            "Leases granted since the pool was created",
            m.leases.clone(),
        );
        registry.register(
            "pool_released_leases",
            "Leases ended by their holder since the pool was created",
            m.released.clone(),
        );
        registry.register(
            "pool_expired_leases",
            "Leases reclaimed after expiring since the pool was created",
            m.expired.clone(),
        );
        registry.register(
            "sweeps",
            "Sweeps of the pool run by this worker",
            m.sweeps.clone(),
        );
        registry.register(
            "swept_leases",
            "Expired leases this worker reclaimed",
            m.swept.clone(),
        );
        registry.register(
            "sweep_duration_seconds",
            "Wall time of one sweep of one pool",
            m.sweep_seconds.clone(),
        );
        registry.register(
            "health_checks",
            "Health checks applied, by the status recorded",
            m.health.clone(),
        );
        Self { registry, ..m }
    }

    /// Records a pool's stats snapshot.
    pub fn observe_stats(&self, s: &PoolStatsSnapshot) {
        let pool = PoolValue(s.pool.clone());
        for (state, v) in [
            ("total", s.total),
            ("active", s.active),
            ("available", s.available),
            ("leased", s.leased),
        ] {
            self.proxies
                .get_or_create(&PoolState {
                    pool: pool.clone(),
                    state,
                })
                .set(gauge(v));
        }
        let label = PoolLabel { pool };
        self.active_leases
            .get_or_create(&label)
            .set(gauge(s.active_leases));
        let mut seen = self.seen.lock();
        let last = seen.entry(s.pool.clone()).or_default();
        follow(&self.leases, &label, &mut last.total, s.total_leases);
        follow(
            &self.released,
            &label,
            &mut last.released,
            s.released_leases,
        );
        follow(&self.expired, &label, &mut last.expired, s.expired_leases);
    }

    /// Records one sweep of `pool`.
    pub fn observe_sweep(&self, pool: &PoolId, report: &SweepReport) {
        let label = PoolLabel {
            pool: PoolValue(pool.clone()),
        };
        self.sweeps.get_or_create(&label).inc();
        self.swept.get_or_create(&label).inc_by(report.reclaimed);
        self.sweep_seconds
            .get_or_create(&label)
            .observe(report.duration.as_secs_f64());
    }

    /// Records one health check result applied to a proxy of `pool`.
    pub fn observe_health(&self, pool: &PoolId, status: ProxyStatus) {
        self.health
            .get_or_create(&PoolStatus {
                pool: PoolValue(pool.clone()),
                status: status.as_str(),
            })
            .inc();
    }

    /// Drops every series of a pool that no longer exists.
    pub fn forget_pool(&self, pool: &PoolId) {
        let p = PoolValue(pool.clone());
        for state in ["total", "active", "available", "leased"] {
            self.proxies.remove(&PoolState {
                pool: p.clone(),
                state,
            });
        }
        let label = PoolLabel { pool: p.clone() };
        for f in [
            &self.leases,
            &self.released,
            &self.expired,
            &self.sweeps,
            &self.swept,
        ] {
            f.remove(&label);
        }
        self.active_leases.remove(&label);
        self.sweep_seconds.remove(&label);
        for status in [
            ProxyStatus::Active,
            ProxyStatus::Inactive,
            ProxyStatus::Slow,
            ProxyStatus::Banned,
        ] {
            self.health.remove(&PoolStatus {
                pool: p.clone(),
                status: status.as_str(),
            });
        }
        self.seen.lock().remove(pool);
    }

    /// The pools this registry has stats for.
    pub fn pools(&self) -> Vec<PoolId> {
        self.seen.lock().keys().cloned().collect()
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Moves an exported counter to the store's lifetime value `now`. A value
/// below the last one means the pool was re-created: the series restarts.
fn follow(family: &Family<PoolLabel, Counter>, label: &PoolLabel, last: &mut u64, now: u64) {
    if now < *last {
        family.remove(label);
        *last = 0;
    }
    family.get_or_create(label).inc_by(now - *last);
    *last = now;
}
