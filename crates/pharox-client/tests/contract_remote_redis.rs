//! The storage contract suite through RemoteStorage, against a server on
//! RedisStorage, each case on its own private redis-server.

mod common;

use common::RemoteHarness;
use pharox_redis::testkit::RedisHarness;

pharox_core::storage_contract_tests!(RemoteHarness::over(RedisHarness::start().await).await);
