//! The pools' stats history (`pharox_stats_history`): what `pharox worker`
//! records after each sweep and `pharox stats --history` reads. One
//! statement, one round trip, per call.

use pharox_core::{Error, PoolId, PoolStatsSnapshot, Result, validate};
use tokio_postgres::types::Json;

use crate::PostgresStorage;

/// Appends the snapshot and drops the pool's oldest beyond `$3` (the new
/// one included); nothing when the pool does not exist (it was removed
/// after the snapshot was taken). The deletion sees the rows before the
/// insert, so it keeps `$3 - 1` of them.
const RECORD: &str = "WITH added AS (
    INSERT INTO pharox_stats_history (pool_id, snapshot)
    SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM pharox_pools WHERE id = $1)
    RETURNING seq
)
DELETE FROM pharox_stats_history
WHERE pool_id = $1
  AND EXISTS (SELECT 1 FROM added)
  AND seq <= (SELECT seq FROM pharox_stats_history WHERE pool_id = $1
              ORDER BY seq DESC OFFSET $3::bigint - 1 LIMIT 1)";

/// Whether the pool exists (first column, on every row), and its newest
/// `$2` snapshots, newest first (none: one row with a NULL snapshot).
const RECORDED: &str = "SELECT p.id IS NOT NULL AS found, h.snapshot
FROM (SELECT 1) AS one
LEFT JOIN pharox_pools AS p ON p.id = $1
LEFT JOIN LATERAL (
    SELECT snapshot, seq FROM pharox_stats_history
    WHERE pool_id = $1 ORDER BY seq DESC LIMIT $2::bigint
) AS h ON p.id IS NOT NULL
ORDER BY h.seq DESC";

impl PostgresStorage {
    /// Appends `snapshot` to its pool's stats history and keeps the newest
    /// `max_len` (at least 1); a pool that no longer exists records
    /// nothing. One statement.
    ///
    /// # Errors
    /// `InvalidInput` for a bad pool id or `max_len` 0; a retryable error
    /// if the database does not answer.
    pub async fn record_stats(&self, snapshot: &PoolStatsSnapshot, max_len: usize) -> Result<()> {
        validate::pool_id(&snapshot.pool)?;
        if max_len == 0 {
            return Err(Error::invalid("max_len", "must be at least 1"));
        }
        let keep = i64::try_from(max_len).unwrap_or(i64::MAX);
        self.query(
            "record_stats",
            RECORD,
            &[&snapshot.pool.as_str(), &Json(snapshot), &keep],
        )
        .await
        .map(drop)
    }
}

/// The newest `limit` snapshots of `pool`'s history, newest first.
pub(crate) async fn recorded(
    store: &PostgresStorage,
    pool: &PoolId,
    limit: usize,
) -> Result<Vec<PoolStatsSnapshot>> {
    validate::pool_id(pool)?;
    validate::history_limit(limit)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = store
        .query("stats_history", RECORDED, &[&pool.as_str(), &limit])
        .await?;
    let found = rows
        .first()
        .and_then(|r| r.try_get::<_, bool>("found").ok())
        .unwrap_or(false);
    if !found {
        return Err(Error::PoolNotFound(pool.clone()));
    }
    rows.iter()
        .filter_map(|r| {
            r.try_get::<_, Option<Json<PoolStatsSnapshot>>>("snapshot")
                .map(|j| j.map(|Json(s)| s))
                .transpose()
        })
        .map(|r| r.map_err(|e| Error::Corrupt(format!("a stats history entry: {e}").into())))
        .collect()
}
