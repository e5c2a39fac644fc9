//! Migrations: an empty database reaches the newest schema, re-running is
//! a no-op, a database at an older version gets only what it lacks, and
//! concurrent runs apply each migration once.

use pharox_core::{AcquireRequest, Proxy, ProxyPool, ProxyProtocol, Storage};
use pharox_postgres::testkit::TestDatabase;
use pharox_postgres::{MIGRATIONS, PostgresStorage, SCHEMA_VERSION};

async fn works(s: &PostgresStorage) {
    s.upsert_pool(&ProxyPool::new("m")).await.unwrap();
    s.upsert_proxy(&Proxy::new("m", "10.0.0.1", 8080, ProxyProtocol::Http))
        .await
        .unwrap();
    let lease = s.acquire(&AcquireRequest::new("m")).await.unwrap();
    assert!(lease.is_some(), "a migrated store leases");
}

async fn versions(db: &TestDatabase) -> Vec<i32> {
    let (client, conn) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .query(
            "SELECT version FROM pharox_schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn an_empty_database_migrates_and_a_rerun_is_a_no_op() {
    let db = TestDatabase::create().await;
    let s = db.storage();
    assert_eq!(s.schema_version().await.unwrap(), 0);
    let all: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(s.migrate().await.unwrap(), all);
    assert_eq!(s.schema_version().await.unwrap(), SCHEMA_VERSION);
    assert_eq!(s.migrate().await.unwrap(), Vec::<i32>::new());
    assert_eq!(versions(&db).await, all);
    works(&s).await;
}

#[tokio::test]
async fn a_database_at_the_previous_version_gets_only_the_rest() {
    let db = TestDatabase::create().await;
    let s = db.storage();
    let previous = SCHEMA_VERSION - 1;
    assert_eq!(
        s.migrate_to(previous).await.unwrap(),
        (1..=previous).collect::<Vec<_>>()
    );
    assert_eq!(s.schema_version().await.unwrap(), previous);
    assert_eq!(s.migrate().await.unwrap(), vec![SCHEMA_VERSION]);
    assert_eq!(s.migrate().await.unwrap(), Vec::<i32>::new());
    works(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_apply_each_version_once() {
    let db = TestDatabase::create().await;
    let stores: Vec<PostgresStorage> = (0..4).map(|_| db.storage()).collect();
    let runs = futures_util::future::join_all(stores.iter().map(|s| s.migrate())).await;
    let mut applied: Vec<i32> = runs.into_iter().flat_map(Result::unwrap).collect();
    applied.sort_unstable();
    let all: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(applied, all, "every version applied exactly once");
    assert_eq!(versions(&db).await, all);
}

#[tokio::test]
async fn an_unmigrated_database_gives_a_typed_error_not_a_panic() {
    let db = TestDatabase::create().await;
    let s = db.storage();
    let err = s.acquire(&AcquireRequest::new("m")).await.unwrap_err();
    assert!(
        matches!(err, pharox_core::Error::Backend { .. }),
        "expected a backend error (missing function), got {err:?}"
    );
}
