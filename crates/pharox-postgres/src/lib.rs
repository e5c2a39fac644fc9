//! PostgreSQL store for [pharox](https://docs.rs/pharox): [`PostgresStorage`]
//! implements the [`Storage`](pharox_core::Storage) contract with one
//! statement (one round trip) per acquire, release, renew and cleanup.
//!
//! ```no_run
//! use pharox_core::{AcquireRequest, ProxyManager};
//! use pharox_postgres::{PostgresConfig, PostgresStorage};
//!
//! # async fn run() -> pharox_core::Result<()> {
//! let storage =
//!     PostgresStorage::connect(PostgresConfig::new("postgres://pharox@127.0.0.1/pharox")).await?;
//! storage.migrate().await?; // once per database; re-running is a no-op
//! let manager = ProxyManager::new(storage);
//! if let Some(lease) = manager.acquire(&AcquireRequest::new("residential")).await? {
//!     // ... use lease.proxy.url() ...
//!     manager.release(&lease).await?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Design
//!
//! - **Driver**: tokio-postgres with deadpool-postgres. tokio-postgres
//!   speaks the extended protocol with pipelining, so a prepared statement
//!   (`prepare_cached`, once per connection) costs one round trip per call;
//!   deadpool-postgres is the pool family the Redis adapter already uses
//!   (deadpool 0.13, one runtime abstraction, the same timeouts), and it is
//!   a thin layer over the driver. sqlx would add its own pool, runtime
//!   glue and compile-time query machinery for statements this crate keeps
//!   in SQL files anyway.
//! - **One statement per operation**: every write is a call of a PL/pgSQL
//!   function (`migrations/0002_functions.sql`, the lease operations
//!   replaced by `0004_concurrency.sql`; `SELECT * FROM
//!   pharox_acquire(...)`), so each statement inside reads a fresh
//!   snapshot taken after the locks before it (which a single
//!   data-modifying CTE, whose snapshot predates its lock waits, cannot
//!   do). Time is the server's `clock_timestamp()`.
//! - **Concurrency**: lease operations never lock the pool's row (up to
//!   schema 3 they all did, and 64 tasks were slower than one). An acquire
//!   locks the proxy it picks with `FOR UPDATE SKIP LOCKED`, so concurrent
//!   acquires take different proxies; when no unlocked proxy is free it
//!   waits for the one a plain read names and takes it if it is still free
//!   (never a miss while a proxy is free). Release, renew and reclaims
//!   lock the proxy, then its leases. Admin operations (proxies, health)
//!   and round robin (its cursor) still hold the pool's row. Lock order:
//!   pool row, proxy rows, their leases, one counter shard last.
//! - **Counters**: `pool_stats` reads the view `pharox_pool_stats`: the
//!   pool's row (kept by admin operations) plus the sum of its 32 counter
//!   shards (`pharox_pool_counters`, kept by lease operations, each on the
//!   shard of its backend), in one snapshot, so exact; released leases are
//!   deleted, so the tables hold live state only.
//! - **Fencing**: tokens come from one sequence for every pool
//!   (`pharox_tokens`), taken after the proxy's lock: unique, never reused,
//!   increasing per pool, higher for an acquire that began after another
//!   returned and for every later lease of the same proxy, and a pool
//!   created again under the same id continues above its old tokens (I5).
//! - **Errors**: a statement the server refused or rolled back
//!   (serialization failure, deadlock, too many connections) is
//!   `Unavailable` (nothing applied, retryable); a connection lost
//!   mid-call is `Interrupted` (maybe applied, retryable); so is a server
//!   shutting down (`57P01`, `57P02`). While the server is down, calls fail
//!   `Unavailable` (no connection to be had), and the same store recovers
//!   once it is back: the pool drops closed connections and opens new ones.
//! - **Text**: a PostgreSQL `text` value cannot hold a NUL byte, so any
//!   text with one (pool and proxy fields, credentials, `extra` entries,
//!   proxy ids in look-ups and health results, filter values at any depth)
//!   is refused as `InvalidInput` naming the field, before anything is
//!   sent; ids and consumer names are already refused by the core's checks
//!   (no control characters).
#![forbid(unsafe_code)]

mod config;
mod error;
mod filter_sql;
mod history;
mod migrate;
mod rows;
mod sql;
mod store;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use config::PostgresConfig;
pub use migrate::{MIGRATIONS, Migration, SCHEMA_VERSION};
pub use store::PostgresStorage;
/// The driver this adapter is built on, for raw statements in tests and tools.
pub use tokio_postgres;
