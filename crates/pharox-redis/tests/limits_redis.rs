//! The limits suite on RedisStorage, each case on its own private
//! redis-server, with the store's bookkeeping checked after every case
//! (`index_problems`). Calls may wait 60 s for an answer: a snapshot of a
//! pool of a million proxies is one long reply. The million-proxy case
//! (`a_pool_holds_max_proxies_per_pool`) seeds for a few minutes; it runs
//! with the rest, as every limit has its test at the limit.

use std::time::Duration;

use pharox_core::Error;
use pharox_core::validate::MAX_CLEANUP_BATCH;
use pharox_redis::testkit::{RedisHarness, RedisServer};
use pharox_redis::{RedisConfig, RedisStorage};

fn patient(config: RedisConfig) -> RedisConfig {
    config.response_timeout(Duration::from_secs(60))
}

pharox_core::storage_limit_tests!(
    RedisHarness::start_with(patient).await,
    full_reclaim_batch: RedisHarness::start_with(|c| patient(c).reclaim_batch(MAX_CLEANUP_BATCH)).await
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reclaim_batch_is_accepted_up_to_the_cleanup_limit() {
    let server = RedisServer::start();
    let at = RedisStorage::connect(RedisConfig::new(server.url()).reclaim_batch(MAX_CLEANUP_BATCH))
        .await
        .expect("a reclaim batch of 10,000");
    assert_eq!(at.config().reclaim_batch, MAX_CLEANUP_BATCH);
    match RedisStorage::connect(RedisConfig::new(server.url()).reclaim_batch(MAX_CLEANUP_BATCH + 1))
        .await
    {
        Err(Error::InvalidInput { field, reason }) => {
            assert_eq!(field, "reclaim_batch");
            assert!(reason.contains("10000"), "{reason}");
        }
        other => panic!("expected InvalidInput on reclaim_batch, got {other:?}"),
    }
}
