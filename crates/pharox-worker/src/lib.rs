//! The pharox worker: a long-running process that keeps a fleet's pools
//! healthy while scraping workers lease from them.
//!
//! - [`sweep`]: reclaims expired leases of every pool in bounded batches
//!   (several workers may sweep at once: the store frees a lease once, I4);
//! - [`metrics`]: per-pool stats snapshots exported as Prometheus metrics,
//!   with sweep counts and durations and health-check outcomes;
//! - [`health`]: checks each proxy by a request through it and applies the
//!   result with [`Storage::apply_health_check_result`], connecting only to
//!   addresses the proxy host policy accepts (no loopback, link-local, …);
//! - [`Worker`]: runs all of it on intervals with jitter, serves `/metrics`
//!   and `/healthz`, and stops gracefully when cancelled.
//!
//! The worker works on any [`WorkerStore`]: [`RedisStorage`] (with a capped
//! stats history in Redis) and [`InMemoryStorage`] (no history).
//!
//! ```no_run
//! use std::time::Duration;
//! use pharox_redis::{RedisConfig, RedisStorage};
//! use pharox_worker::{Worker, WorkerConfig};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStorage::connect(RedisConfig::new("redis://127.0.0.1:6379")).await?;
//! let config = WorkerConfig {
//!     sweep_interval: Duration::from_secs(5),
//!     metrics_addr: Some("127.0.0.1:9464".parse()?),
//!     ..WorkerConfig::default()
//! };
//! let stop = CancellationToken::new();
//! Worker::new(store, config).run(stop).await?;
//! # Ok(()) }
//! ```
//!
//! [`Storage::apply_health_check_result`]: pharox_core::Storage::apply_health_check_result
#![forbid(unsafe_code)]

pub mod health;
pub mod metrics;
mod store;
pub mod sweep;
mod worker;

pub use health::{CheckRow, HealthChecker, HealthConfig, ResolveHost, SystemResolver};
pub use metrics::Metrics;
pub use store::WorkerStore;
pub use sweep::{SweepReport, sweep_pool};
pub use worker::{Worker, WorkerConfig, shutdown_signal};

pub use pharox_core::InMemoryStorage;
pub use pharox_redis::RedisStorage;
pub use tokio_util::sync::CancellationToken;
