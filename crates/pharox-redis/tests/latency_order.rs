//! Lowest latency at the Redis store's latency limit: latencies up to
//! `MAX_SORTED_LATENCY_MS` sort exactly, those at or above it sort together
//! (by the order proxies were added) after every faster one, and
//! unmeasured proxies come last; every latency is stored exactly.

use chrono::TimeDelta;
use pharox_core::testkit::{Harness, new_pool, proxy};
use pharox_core::{AcquireRequest, Selector, Storage};
use pharox_redis::MAX_SORTED_LATENCY_MS;
use pharox_redis::testkit::{RedisHarness, index_problems};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latencies_at_the_limit_sort_together_after_faster_ones() {
    let h = RedisHarness::start().await;
    let s = h.storage();
    let pool = new_pool(&h, "latency").await;
    let limit = MAX_SORTED_LATENCY_MS;
    // Added in this order; expected lease order in the comment.
    let proxies = [
        ("unmeasured", None),              // 5th
        ("far-above", Some(u32::MAX - 1)), // 3rd: with "at", by addition
        ("at", Some(limit)),               // 4th
        ("just-below", Some(limit - 1)),   // 2nd
        ("fast", Some(5)),                 // 1st
    ];
    for (i, (id, latency)) in proxies.iter().enumerate() {
        let mut p = proxy(&pool, id, i as u16).with_max_concurrency(1);
        p.latency_ms = *latency;
        s.upsert_proxy(&p).await.unwrap();
    }
    let req = AcquireRequest::new(pool.clone())
        .selector(Selector::LowestLatency)
        .duration(TimeDelta::hours(1));
    let mut order = Vec::new();
    while let Some(lease) = s.acquire(&req).await.unwrap() {
        order.push(lease.proxy.id.to_string());
    }
    assert_eq!(
        order,
        ["fast", "just-below", "far-above", "at", "unmeasured"]
    );
    for (id, latency) in proxies {
        let stored = s.get_proxy(&pool, &id.into()).await.unwrap().unwrap();
        assert_eq!(stored.latency_ms, latency, "{id} is stored exactly");
    }
    assert_eq!(index_problems(s, &pool).await, Vec::<String>::new());
}
