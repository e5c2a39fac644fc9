//! Health-check results that feed leasing decisions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{PoolId, ProxyId, ProxyStatus};

/// The outcome of checking one proxy, applied with
/// [`Storage::apply_health_check_result`](crate::Storage::apply_health_check_result).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheckResult {
    /// The proxy's pool.
    pub pool: PoolId,
    /// The checked proxy.
    pub proxy: ProxyId,
    /// The status to record; anything but `active` takes the proxy out of rotation at once.
    pub status: ProxyStatus,
    /// Measured round trip, if the check got an answer. `None` keeps the last value.
    #[serde(default)]
    pub latency_ms: Option<u32>,
    /// When the check ran. A result older than the proxy's `checked_at` is ignored.
    pub checked_at: DateTime<Utc>,
    /// Why the check failed, for logs (never contains credentials).
    #[serde(default)]
    pub error: Option<String>,
}

impl HealthCheckResult {
    /// A result for `proxy` in `pool` with the given status, checked at `checked_at`.
    pub fn new(
        pool: impl Into<PoolId>,
        proxy: impl Into<ProxyId>,
        status: ProxyStatus,
        checked_at: DateTime<Utc>,
    ) -> Self {
        Self {
            pool: pool.into(),
            proxy: proxy.into(),
            status,
            latency_ms: None,
            checked_at,
            error: None,
        }
    }

    /// Sets the measured latency.
    pub fn with_latency_ms(mut self, latency_ms: u32) -> Self {
        self.latency_ms = Some(latency_ms);
        self
    }
}
