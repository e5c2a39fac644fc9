#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod bootstrap;
mod clock;
mod error;
pub mod exposition;
pub mod filter;
pub mod host_policy;
pub mod invariants;
mod manager;
mod memory;
pub mod model;
mod selector;
pub mod spans;
mod storage;
pub mod validate;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use clock::{Clock, ManualClock, SystemClock, datetime_from_ms};
pub use error::{BoxError, Error, Result};
pub use filter::{GeoRadius, Predicate, ProxyFilters};
pub use host_policy::{HostRefusal, ProxyHostPolicy};
pub use manager::{AcquireEvent, ProxyManager, ReleaseEvent, RetryPolicy};
pub use memory::InMemoryStorage;
pub use model::{
    Consumer, ConsumerName, Credentials, HealthCheckResult, Lease, LeaseId, LeaseStatus,
    LeasedProxy, PoolId, PoolStatsSnapshot, Proxy, ProxyCounts, ProxyId, ProxyPool, ProxyProtocol,
    ProxyStatus, Secret,
};
pub use selector::Selector;
pub use storage::{
    AcquireRequest, DEFAULT_CONSUMER, DEFAULT_LEASE_DURATION, LeaseRef, PoolSnapshot,
    ReleaseOutcome, Storage,
};
