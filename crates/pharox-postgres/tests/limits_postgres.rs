//! The limits suite on PostgresStorage (`pharox_core::testkit::limits`):
//! every limit of `pharox_core::validate` at its largest accepted value,
//! one more refused, each case in a database of its own, with the store's
//! bookkeeping checked after every case. Operations may take 60 s: a
//! snapshot of a large pool is one long answer.
//!
//! The cases that seed 100,000 or a million proxies, or take 65,535 leases
//! one by one, run only when asked (`cargo test -p pharox-postgres --test
//! limits_postgres -- --ignored`): each proxy write is a transaction that
//! takes the pool's row lock, so seeding runs at a few hundred proxies a
//! second here (10,000 in about 27 s) and those cases would take from
//! minutes to hours. The 10,000-lease batches and every bound on ids,
//! texts, filters, durations and caps run with the suite.

use std::time::Duration;

use pharox_core::validate::MAX_CLEANUP_BATCH;
use pharox_postgres::PostgresConfig;
use pharox_postgres::testkit::PostgresHarness;

fn patient(config: PostgresConfig) -> PostgresConfig {
    config.operation_timeout(Duration::from_secs(60))
}

pharox_core::storage_limit_tests!(
    PostgresHarness::start_with(patient).await,
    full_reclaim_batch: PostgresHarness::start_with(|c| {
        patient(c).reclaim_batch(MAX_CLEANUP_BATCH as u32)
    })
    .await,
    at_size: #[ignore = "seeds 100,000 to 1,000,000 proxies or takes 65,535 leases one by one: minutes to hours on PostgreSQL (see the file's docs)"]
);
