//! The schema's migrations: plain SQL files in `migrations/`, embedded in
//! the binary, applied in order inside one transaction.

use pharox_core::Result;

use crate::PostgresStorage;
use crate::error::{pool_error, query_error};

/// One schema version: the SQL that moves a database from the version
/// before it to this one.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The version it brings the schema to (1, 2, …).
    pub version: i32,
    /// A short name (the file name without number and extension).
    pub name: &'static str,
    /// The statements.
    pub sql: &'static str,
}

/// Every migration, oldest first. The last one's version is the schema
/// version this crate needs.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "functions",
        sql: include_str!("../migrations/0002_functions.sql"),
    },
    Migration {
        version: 3,
        name: "stats_history",
        sql: include_str!("../migrations/0003_stats_history.sql"),
    },
    Migration {
        version: 4,
        name: "concurrency",
        sql: include_str!("../migrations/0004_concurrency.sql"),
    },
    Migration {
        version: 5,
        name: "cleanup_waits",
        sql: include_str!("../migrations/0005_cleanup_waits.sql"),
    },
];

/// The schema version this crate needs.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// Key of the transaction-scoped advisory lock that keeps two processes
/// from migrating the same database at once ("pharox" in ASCII).
const MIGRATION_LOCK: i64 = 0x7068_6172_6f78;

const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS pharox_schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

impl PostgresStorage {
    /// Brings the schema to the newest version ([`SCHEMA_VERSION`]) and
    /// returns the versions it applied; re-running it is a no-op (returns
    /// none). Safe to run from several processes at once.
    ///
    /// # Errors
    /// A retryable error if the database is unreachable; `Error::Backend`
    /// if a migration fails (nothing of it is applied).
    pub async fn migrate(&self) -> Result<Vec<i32>> {
        self.migrate_to(SCHEMA_VERSION).await
    }

    /// Applies the migrations up to version `target` (for tests and
    /// tools that need an older schema); returns the versions it applied.
    ///
    /// # Errors
    /// As [`PostgresStorage::migrate`].
    pub async fn migrate_to(&self, target: i32) -> Result<Vec<i32>> {
        let mut client = self.inner.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(query_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(query_error)?;
        tx.batch_execute(VERSION_TABLE).await.map_err(query_error)?;
        let current: i32 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM pharox_schema_migrations",
                &[],
            )
            .await
            .map_err(query_error)?
            .get(0);
        let mut applied = Vec::new();
        for m in MIGRATIONS
            .iter()
            .filter(|m| m.version > current && m.version <= target)
        {
            tx.batch_execute(m.sql).await.map_err(query_error)?;
            tx.execute(
                "INSERT INTO pharox_schema_migrations (version, name) VALUES ($1, $2)",
                &[&m.version, &m.name],
            )
            .await
            .map_err(query_error)?;
            applied.push(m.version);
        }
        tx.commit().await.map_err(query_error)?;
        if !applied.is_empty() {
            tracing::info!(?applied, "pharox schema migrated");
        }
        Ok(applied)
    }

    /// The schema version of the database (0 when never migrated).
    ///
    /// # Errors
    /// A retryable error if the database is unreachable.
    pub async fn schema_version(&self) -> Result<i32> {
        let client = self.inner.pool.get().await.map_err(pool_error)?;
        let exists: bool = client
            .query_one(
                "SELECT to_regclass('pharox_schema_migrations') IS NOT NULL",
                &[],
            )
            .await
            .map_err(query_error)?
            .get(0);
        if !exists {
            return Ok(0);
        }
        let row = client
            .query_one(
                "SELECT coalesce(max(version), 0) FROM pharox_schema_migrations",
                &[],
            )
            .await
            .map_err(query_error)?;
        Ok(row.get(0))
    }
}
