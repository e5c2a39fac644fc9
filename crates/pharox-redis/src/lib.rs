//! Redis store for [pharox](https://docs.rs/pharox): [`RedisStorage`]
//! implements the [`Storage`](pharox_core::Storage) contract with one Lua
//! script per operation, so an acquire (reclaim expired leases, select,
//! check capacity, lease, count) is one atomic round trip.
//!
//! ```no_run
//! use pharox_core::{AcquireRequest, ProxyManager};
//! use pharox_redis::{RedisConfig, RedisStorage};
//!
//! # async fn run() -> pharox_core::Result<()> {
//! let storage = RedisStorage::connect(RedisConfig::new("redis://127.0.0.1:6379")).await?;
//! let manager = ProxyManager::new(storage);
//! if let Some(lease) = manager.acquire(&AcquireRequest::new("residential")).await? {
//!     // ... use lease.proxy.url() ...
//!     manager.release(&lease).await?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Layout, limits and the design of the scripts are described in `lua/lib.lua`
//! and in the README's "Running on Redis" section.
#![forbid(unsafe_code)]

pub mod acl;
mod config;
mod conn;
mod geo;
pub mod keys;
pub mod layout;
mod lease_id;
pub mod queries;
mod reply;
pub mod scripts;
mod sentinel;
mod settings;
mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
mod tls;

pub use config::{Acknowledge, ConnectionMode, RedisConfig};
/// The redis crate this adapter is built on (re-exported from deadpool-redis),
/// for raw commands in tests and tools.
pub use deadpool_redis::redis;
pub use store::RedisStorage;
pub use tls::RedisTls;

/// Highest `max_concurrency` a store accepts; a proxy without a limit takes
/// up to this many concurrent leases (`pharox_core::validate`).
pub use pharox_core::validate::MAX_CONCURRENCY;

/// Latencies at or above this many milliseconds sort together at the end of
/// the lowest-latency order (they are still stored exactly).
pub const MAX_SORTED_LATENCY_MS: u32 = 1_048_574;
