//! The shared storage contract suite on RedisStorage, each case on its own
//! private redis-server.
use pharox_redis::testkit::RedisHarness;

pharox_core::storage_contract_tests!(RedisHarness::start().await);
