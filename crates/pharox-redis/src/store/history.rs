//! The capped per-pool stream of stats snapshots the worker records.

use deadpool_redis::redis;
use pharox_core::{Error, PoolId, PoolStatsSnapshot, Result, Storage, validate};

use super::RedisStorage;

impl RedisStorage {
    /// Appends `snapshot` to its pool's stats history, a stream capped at
    /// about `max_len` entries (`XADD ... MAXLEN ~`). The history goes
    /// with the pool when it is removed.
    pub async fn record_stats(&self, snapshot: &PoolStatsSnapshot, max_len: usize) -> Result<()> {
        validate::pool_id(&snapshot.pool)?;
        if max_len == 0 {
            return Err(Error::invalid("max_len", "must be at least 1"));
        }
        let json = serde_json::to_string(snapshot)
            .map_err(|e| Error::Corrupt(format!("encoding a stats snapshot: {e}").into()))?;
        let _: String = self
            .cmd(
                redis::cmd("XADD")
                    .arg(self.keys(&snapshot.pool).stats_history())
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(max_len)
                    .arg("*")
                    .arg("s")
                    .arg(json),
                "record_stats",
            )
            .await?;
        Ok(())
    }

    /// The newest `count` snapshots of the pool's stats history, newest first.
    pub async fn stats_history(
        &self,
        pool: &PoolId,
        count: usize,
    ) -> Result<Vec<PoolStatsSnapshot>> {
        validate::pool_id(pool)?;
        let entries: Vec<(String, Vec<(String, String)>)> = self
            .cmd(
                redis::cmd("XREVRANGE")
                    .arg(self.keys(pool).stats_history())
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(count),
                "stats_history",
            )
            .await?;
        entries
            .into_iter()
            .filter_map(|(_, fields)| fields.into_iter().find(|(f, _)| f == "s"))
            .map(|(_, json)| {
                serde_json::from_str(&json)
                    .map_err(|e| Error::Corrupt(format!("a stats history entry: {e}").into()))
            })
            .collect()
    }
}

/// `Storage::stats_history`: the stream, once the pool registry knows the
/// pool (the stream alone cannot tell an unknown pool from a quiet one).
pub(super) async fn recorded(
    store: &RedisStorage,
    pool: &PoolId,
    limit: usize,
) -> Result<Vec<PoolStatsSnapshot>> {
    validate::history_limit(limit)?;
    if store.get_pool(pool).await?.is_none() {
        return Err(Error::PoolNotFound(pool.clone()));
    }
    store.stats_history(pool, limit).await
}
