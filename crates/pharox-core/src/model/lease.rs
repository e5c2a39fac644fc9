//! Leases: the right to use a proxy until a deadline.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::proxy::format_proxy_url;
use super::{ConsumerName, Credentials, LeaseId, PoolId, Proxy, ProxyId, ProxyProtocol};

/// Lifecycle of a lease.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseStatus {
    /// Held; counts against the proxy's capacity until released or expired.
    Active,
    /// Given back by its holder.
    Released,
    /// Reclaimed after its deadline passed.
    Expired,
}

/// What a worker needs to connect through a leased proxy.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeasedProxy {
    /// The proxy's id in its pool.
    pub id: ProxyId,
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Protocol.
    pub protocol: ProxyProtocol,
    /// Authentication, if any (redacted in `Debug`).
    #[serde(default)]
    pub credentials: Option<Credentials>,
}

impl LeasedProxy {
    /// The connection data of a proxy.
    pub fn of(proxy: &Proxy) -> Self {
        Self {
            id: proxy.id.clone(),
            host: proxy.host.clone(),
            port: proxy.port,
            protocol: proxy.protocol,
            credentials: proxy.credentials.clone(),
        }
    }

    /// The URL to connect through, with percent-encoded credentials. Never log it.
    pub fn url(&self) -> String {
        format_proxy_url(
            self.protocol,
            &self.host,
            self.port,
            self.credentials.as_ref(),
            false,
        )
    }

    /// The URL with the password replaced by `***`, safe to log.
    pub fn redacted_url(&self) -> String {
        format_proxy_url(
            self.protocol,
            &self.host,
            self.port,
            self.credentials.as_ref(),
            true,
        )
    }
}

impl fmt::Debug for LeasedProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeasedProxy")
            .field("id", &self.id)
            .field("url", &self.redacted_url())
            .finish()
    }
}

/// A time-limited right to use one proxy, counted against its `max_concurrency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Unique id.
    pub id: LeaseId,
    /// Fencing token: strictly increasing per pool (I5). Pass it to downstream
    /// systems so they can reject work from a holder whose lease was lost.
    pub token: u64,
    /// The pool the proxy was leased from.
    pub pool: PoolId,
    /// Who holds the lease.
    pub consumer: ConsumerName,
    /// The leased proxy's connection data (shared, cheap to clone).
    pub proxy: Arc<LeasedProxy>,
    /// Status when this copy was produced.
    pub status: LeaseStatus,
    /// When the store granted the lease (store clock).
    pub acquired_at: DateTime<Utc>,
    /// When the lease expires unless renewed (store clock).
    pub expires_at: DateTime<Utc>,
    /// When the lease was released, if it was.
    #[serde(default)]
    pub released_at: Option<DateTime<Utc>>,
}

impl Lease {
    /// Whether the deadline has passed at `now` (a lease expires at its deadline).
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }
}
