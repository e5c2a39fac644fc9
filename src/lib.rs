#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub use pharox_core::*;

/// The Redis store: [`RedisStorage`](pharox_redis::RedisStorage) and its settings.
pub mod redis {
    pub use pharox_redis::*;
}

/// The PostgreSQL store: [`PostgresStorage`](pharox_postgres::PostgresStorage),
/// its settings and its migrations.
pub mod postgres {
    pub use pharox_postgres::*;
}

/// The worker: sweeper, stats metrics and history, health checker.
pub mod worker {
    pub use pharox_worker::*;
}
