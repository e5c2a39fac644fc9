//! The data model shared by every store.

mod health;
mod ids;
mod lease;
mod pool;
mod proxy;
mod stats;

pub use health::HealthCheckResult;
pub use ids::{ConsumerName, LeaseId, PoolId, ProxyId};
pub use lease::{Lease, LeaseStatus, LeasedProxy};
pub use pool::{Consumer, ProxyPool};
pub use proxy::{Credentials, Proxy, ProxyProtocol, ProxyStatus, Secret};
pub use stats::{PoolStatsSnapshot, ProxyCounts};
