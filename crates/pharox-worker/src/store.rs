//! What the worker needs from a store beyond [`Storage`].

use std::future::Future;

use pharox_core::{InMemoryStorage, PoolStatsSnapshot, Result, Storage};
use pharox_redis::RedisStorage;

/// A [`Storage`] the worker can run on: cloneable, with a reachability probe
/// for `/healthz` and an optional capped stats history.
pub trait WorkerStore: Storage + Clone {
    /// Whether the store answers (`/healthz`).
    fn ping(&self) -> impl Future<Output = Result<()>> + Send;

    /// Appends a snapshot to the pool's history, capped at about `max_len`
    /// entries. Stores without a history do nothing.
    fn record_stats(
        &self,
        snapshot: &PoolStatsSnapshot,
        max_len: usize,
    ) -> impl Future<Output = Result<()>> + Send;
}

impl WorkerStore for RedisStorage {
    async fn ping(&self) -> Result<()> {
        let _: String = self.raw_command(&pharox_redis::redis::cmd("PING")).await?;
        Ok(())
    }

    async fn record_stats(&self, snapshot: &PoolStatsSnapshot, max_len: usize) -> Result<()> {
        RedisStorage::record_stats(self, snapshot, max_len).await
    }
}

impl WorkerStore for pharox_postgres::PostgresStorage {
    async fn ping(&self) -> Result<()> {
        pharox_postgres::PostgresStorage::ping(self).await
    }

    async fn record_stats(&self, snapshot: &PoolStatsSnapshot, max_len: usize) -> Result<()> {
        pharox_postgres::PostgresStorage::record_stats(self, snapshot, max_len).await
    }
}

impl WorkerStore for InMemoryStorage {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    /// The in-memory store keeps no history: the worker's metrics are all
    /// there is.
    async fn record_stats(&self, _snapshot: &PoolStatsSnapshot, _max_len: usize) -> Result<()> {
        Ok(())
    }
}
