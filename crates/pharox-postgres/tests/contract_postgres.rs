//! The shared storage contract suite on PostgresStorage, each case in its
//! own fresh database.
use pharox_postgres::testkit::PostgresHarness;

pharox_core::storage_contract_tests!(PostgresHarness::start().await);
