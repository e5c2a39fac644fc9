//! Pool statistics.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Lease, PoolId, Proxy, ProxyStatus};

/// Exact counts for one pool at one instant.
///
/// Coming from the Python pharox: there, `total_leases` counts the leases held
/// *now*; here that is [`active_leases`](Self::active_leases), and
/// `total_leases` is the lifetime number of leases granted. Every lease ever
/// granted is active, released or expired, so
/// `total_leases == active_leases + released_leases + expired_leases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStatsSnapshot {
    /// The pool.
    pub pool: PoolId,
    /// Proxies in the pool.
    pub total: u64,
    /// Proxies whose status is `active`.
    pub active: u64,
    /// Active proxies with free capacity (could be leased now).
    pub available: u64,
    /// Proxies holding at least one lease.
    pub leased: u64,
    /// Leases held now.
    pub active_leases: u64,
    /// Leases granted since the pool was created.
    pub total_leases: u64,
    /// Leases ended by their holder (or by removing their proxy), lifetime.
    pub released_leases: u64,
    /// Leases reclaimed after expiring, lifetime.
    pub expired_leases: u64,
    /// When the snapshot was taken (store clock).
    pub collected_at: DateTime<Utc>,
}

/// The part of [`PoolStatsSnapshot`] that follows from the current proxies and
/// leases alone (the lifetime counters do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProxyCounts {
    /// Proxies in the pool.
    pub total: u64,
    /// Proxies whose status is `active`.
    pub active: u64,
    /// Active proxies with free capacity.
    pub available: u64,
    /// Proxies holding at least one lease.
    pub leased: u64,
    /// Leases held now.
    pub active_leases: u64,
}

impl ProxyCounts {
    /// Recomputes the counts from scratch, taking lease counts from `leases`
    /// (not from each proxy's `current_leases`), as invariant I3 asks.
    pub fn recompute(proxies: &[Proxy], leases: &[Lease]) -> Self {
        let mut held = std::collections::HashMap::<&str, u32>::new();
        for lease in leases {
            *held.entry(lease.proxy.id.as_str()).or_default() += 1;
        }
        let mut counts = Self {
            active_leases: leases.len() as u64,
            ..Self::default()
        };
        for proxy in proxies {
            let n = held.get(proxy.id.as_str()).copied().unwrap_or(0);
            counts.total += 1;
            let active = proxy.status == ProxyStatus::Active;
            counts.active += u64::from(active);
            counts.available += u64::from(active && n < proxy.capacity());
            counts.leased += u64::from(n > 0);
        }
        counts
    }
}

impl PoolStatsSnapshot {
    /// The counts that can be recomputed from proxies and leases.
    pub fn counts(&self) -> ProxyCounts {
        ProxyCounts {
            total: self.total,
            active: self.active,
            available: self.available,
            leased: self.leased,
            active_leases: self.active_leases,
        }
    }
}
