//! The store's futures stay small. The driver's futures for both
//! connection modes made every call's future about 15 KB, which each
//! caller holds and copies as it is created and moved (an HTTP handler
//! moves it several times per request); the connection layer now boxes
//! them. Sizes are fixed at compile time: this cannot be flaky.

use std::future::Future;

use chrono::TimeDelta;
use pharox_core::{AcquireRequest, LeaseId, LeaseRef, PoolId, Storage};
use pharox_redis::testkit::RedisServer;
use pharox_redis::{ConnectionMode, RedisConfig, RedisStorage};

/// Far above what the store's own state needs, far below the 15 KB the
/// unboxed driver futures gave.
const MAX_FUTURE_BYTES: usize = 4 * 1024;

fn size<F: Future>(_: &F) -> usize {
    std::mem::size_of::<F>()
}

#[tokio::test]
async fn store_call_futures_stay_under_4_kib_in_both_connection_modes() {
    let server = RedisServer::start();
    for mode in [
        ConnectionMode::Multiplexed { connections: 1 },
        ConnectionMode::Pooled { size: 2 },
    ] {
        let store = RedisStorage::connect(RedisConfig::new(server.url()).mode(mode))
            .await
            .expect("a store on the private redis-server");
        let pool = PoolId::from("sizes");
        let request = AcquireRequest::new(pool.clone());
        let lease_ref = LeaseRef::new(pool.clone(), LeaseId(uuid::Uuid::nil()));
        let sizes = [
            ("acquire", size(&store.acquire(&request))),
            ("release_by_ref", size(&store.release_by_ref(&lease_ref))),
            (
                "renew_by_ref",
                size(&store.renew_by_ref(&lease_ref, TimeDelta::seconds(1))),
            ),
            ("pool_stats", size(&store.pool_stats(&pool))),
            ("get_lease", size(&store.get_lease(&pool, &lease_ref.id))),
        ];
        for (call, bytes) in sizes {
            assert!(
                bytes <= MAX_FUTURE_BYTES,
                "{mode:?}: the {call} future is {bytes} bytes (at most {MAX_FUTURE_BYTES})"
            );
        }
    }
}
