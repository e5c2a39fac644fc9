//! Test support: a fresh database per test on a local PostgreSQL, dropped
//! afterwards (also when the test panics), and the contract-suite harness.
//!
//! The server is the one `PHAROX_PG_URL` names (an admin URL: a role that
//! may `CREATE DATABASE`), else [`DEFAULT_ADMIN_URL`]. A missing server
//! fails the test with the reason; it never skips.
//!
//! ```ignore
//! // tests/contract_postgres.rs: one test per contract case.
//! use pharox_postgres::testkit::PostgresHarness;
//! pharox_core::storage_contract_tests!(PostgresHarness::start().await);
//! ```

use std::sync::Arc;
use std::time::Duration;

use pharox_core::testkit::Harness;
use tokio_postgres::NoTls;

use crate::config::redact_url;
use crate::{PostgresConfig, PostgresStorage};

/// The environment variable naming the admin URL of the test server.
pub const ADMIN_URL_ENV: &str = "PHAROX_PG_URL";

/// The machine's and CI's PostgreSQL (trust auth, database `test`).
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The admin URL tests use: `PHAROX_PG_URL`, else [`DEFAULT_ADMIN_URL`].
pub fn admin_url() -> String {
    std::env::var(ADMIN_URL_ENV)
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned())
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return format!("{url} dbname={database}");
    };
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_end = base[scheme_end + 3..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + 3 + i);
    let mut out = format!("{}/{database}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

async fn admin_client(admin: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(admin, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {} does not answer ({e}); start it (pg_ctlcluster 15 main \
                 start) or set {ADMIN_URL_ENV}",
                redact_url(admin)
            )
        });
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A database created for one test and dropped (`WITH (FORCE)`, closing
/// any connection left) when this value is dropped, even on panic.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    admin: String,
    url: String,
}

impl TestDatabase {
    /// Creates `pharox_t_<random>` on the test server, empty (not
    /// migrated), with `synchronous_commit = off`: a commit does not wait
    /// for its WAL to reach the disk. What the tests check (atomicity,
    /// isolation, the invariants, errors) does not depend on it, and a
    /// test that seeds 10,000 proxies runs several times faster; the
    /// tests of a server crash start a private server with the default.
    ///
    /// # Panics
    /// If the server does not answer or refuses to create it.
    pub async fn create() -> Self {
        Self::create_with(false).await
    }

    /// As [`create`](Self::create), `synchronous_commit` on or off (the
    /// benchmarks measure both).
    ///
    /// # Panics
    /// As [`create`](Self::create).
    pub async fn create_with(synchronous_commit: bool) -> Self {
        let admin = admin_url();
        let name = format!("pharox_t_{:016x}", fastrand::u64(..));
        let client = admin_client(&admin).await;
        let sync = if synchronous_commit { "on" } else { "off" };
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        client
            .batch_execute(&format!(
                "ALTER DATABASE {name} SET synchronous_commit = {sync}"
            ))
            .await
            .unwrap_or_else(|e| panic!("ALTER DATABASE {name}: {e}"));
        let url = with_database(&admin, &name);
        Self { name, admin, url }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL of the database (with the admin URL's role).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A store on the database, not migrated.
    pub fn storage(&self) -> PostgresStorage {
        self.storage_with(|c| c)
    }

    /// A store on the database with the config `adjust` makes of the
    /// default test config (16 connections), not migrated.
    pub fn storage_with(
        &self,
        adjust: impl FnOnce(PostgresConfig) -> PostgresConfig,
    ) -> PostgresStorage {
        PostgresStorage::lazy(adjust(PostgresConfig::new(self.url.clone()).pool_size(16)))
            .expect("test database config")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop may run inside or outside a runtime: use a thread of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let client = admin_client(&admin).await;
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// A migrated [`PostgresStorage`] on its own [`TestDatabase`], for the
/// contract suite. Time passes for real: `advance` sleeps.
#[derive(Debug, Clone)]
pub struct PostgresHarness {
    storage: PostgresStorage,
    database: Arc<TestDatabase>,
}

impl PostgresHarness {
    /// A fresh database, migrated.
    ///
    /// # Panics
    /// If the server does not answer or the migration fails.
    pub async fn start() -> Self {
        Self::start_with(|c| c).await
    }

    /// A fresh database, migrated, with the store's config adjusted.
    ///
    /// # Panics
    /// As [`PostgresHarness::start`].
    pub async fn start_with(adjust: impl FnOnce(PostgresConfig) -> PostgresConfig) -> Self {
        let database = TestDatabase::create().await;
        let storage = database.storage_with(adjust);
        storage.migrate().await.expect("migrate the test database");
        Self {
            storage,
            database: Arc::new(database),
        }
    }

    /// The test database.
    pub fn database(&self) -> &TestDatabase {
        &self.database
    }
}

impl Harness for PostgresHarness {
    type Storage = PostgresStorage;

    fn storage(&self) -> &PostgresStorage {
        &self.storage
    }

    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }

    fn supports_predicates(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_swapped_in_the_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(
            with_database("postgres://h/test?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("host=h user=u", "x"),
            "host=h user=u dbname=x"
        );
    }
}
