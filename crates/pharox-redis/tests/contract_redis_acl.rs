//! The shared storage contract suite on RedisStorage as an ACL user with
//! exactly pharox's documented client rule (`pharox_redis::acl::client_rule`,
//! the README's "Redis ACL users"), the default user disabled, each case on
//! its own private redis-server. The stats history is recorded as the
//! worker's user (`acl::worker_rule`), as `pharox worker` would.

mod acl_support;

use pharox_redis::testkit::RedisHarness;
use pharox_redis::{RedisConfig, RedisStorage, acl};

async fn acl_harness() -> RedisHarness {
    let server = acl_support::server(&[
        ("pharox", &acl::client_rule("pharox")),
        ("worker", &acl::worker_rule("pharox")),
    ]);
    let url = acl_support::url(&server, "pharox");
    let worker = RedisStorage::connect(acl_support::config(&server, "worker"))
        .await
        .expect("connect as the worker's user");
    RedisHarness::on_server(server, |c| RedisConfig { url, ..c })
        .await
        .recording_with(worker)
}

pharox_core::storage_contract_tests!(acl_harness().await);
