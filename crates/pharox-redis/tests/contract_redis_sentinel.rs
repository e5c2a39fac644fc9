//! The shared storage contract suite on RedisStorage through Redis Sentinel
//! (`redis+sentinel://`), in both connection modes: one topology (a
//! primary, a replica, 3 sentinels) per mode, started by its test and
//! stopped when it ends, each case under a key prefix of its own.

use pharox_redis::ConnectionMode;
use pharox_redis::testkit::{RedisHarness, SentinelTopology};

fn topology() -> SentinelTopology {
    tokio::task::block_in_place(|| SentinelTopology::start("pharox-contract"))
}

async fn multiplexed(t: &SentinelTopology) -> RedisHarness {
    RedisHarness::on_sentinel(t, |c| c).await
}

async fn pooled(t: &SentinelTopology) -> RedisHarness {
    RedisHarness::on_sentinel(t, |c| c.mode(ConnectionMode::Pooled { size: 8 })).await
}

pharox_core::storage_contract_tests!(sequential contract_through_sentinel_multiplexed, topology(), multiplexed);
pharox_core::storage_contract_tests!(sequential contract_through_sentinel_pooled, topology(), pooled);
