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
//!   function from `migrations/0002_functions.sql` (`SELECT * FROM
//!   pharox_acquire(...)`). The function takes the pool's row lock first,
//!   so each statement after it reads a snapshot in which every earlier
//!   write to the pool has committed: an acquire reclaims a bounded batch
//!   of expired leases, picks, leases and counts without ever picking from
//!   a stale view (which a single data-modifying CTE, whose snapshot
//!   predates its lock wait, cannot avoid). Time is the server's
//!   `clock_timestamp()`.
//! - **Counters**: `pool_stats` reads one row of counters kept by the same
//!   functions; released leases are deleted, so the tables hold live state
//!   only.
//! - **Fencing**: tokens come from the pool's row; removing a pool keeps
//!   its last token in `pharox_retired_tokens`, and a pool created again
//!   under the same id continues above it (I5).
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
