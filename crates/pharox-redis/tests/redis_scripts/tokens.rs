//! Fencing tokens follow the pool's counter and the server's clock: a
//! pool's token is the larger of the last token plus one and
//! `token_floor(now)` (layout.lua). A counter set back, as on a primary
//! that lost its last writes, still gives tokens above the clock's floor;
//! a counter ahead of the clock goes on by one; and the stats' count of
//! leases granted is the counter's, not the tokens skipped.

use pharox_core::testkit::proxy;
use pharox_core::{PoolId, Storage};
use pharox_redis::layout::{self, Slot};
use pharox_redis::redis;

use crate::support::*;

/// Sets counter slots of `pool` directly.
async fn set_slots(f: &mut Fixture, pool: &str, slots: &[(Slot, u64)]) {
    let mut cmd = redis::cmd("BITFIELD");
    cmd.arg(&keys(pool).counters);
    for (slot, v) in slots {
        cmd.arg("SET").arg("i64").arg(slot.offset()).arg(*v);
    }
    let _: Vec<i64> = cmd.query_async(&mut f.con).await.unwrap();
}

async fn slot(f: &mut Fixture, pool: &str, slot: Slot) -> u64 {
    let v: Vec<i64> = redis::cmd("BITFIELD_RO")
        .arg(&keys(pool).counters)
        .arg("GET")
        .arg("i64")
        .arg(slot.offset())
        .query_async(&mut f.con)
        .await
        .unwrap();
    v[0] as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_follow_the_counter_and_the_clock() {
    let mut f = Fixture::start().await;
    let p = proxy(&PoolId::from("t"), "p", 0).with_max_concurrency(100);
    let pool = f.pool("t", &[p]).await;

    // A fresh pool: the first token is the clock's floor at its grant.
    let before = redis_now_ms(&mut f.con).await;
    let a = f
        .store
        .acquire(&lease_req(&pool, "w"))
        .await
        .unwrap()
        .unwrap();
    let after = redis_now_ms(&mut f.con).await;
    assert!(
        (layout::token_floor(before)..=layout::token_floor(after)).contains(&a.token),
        "{} in the floor of [{before}, {after}]",
        a.token
    );
    assert_eq!(slot(&mut f, "t", Slot::Token).await, 1, "one lease granted");

    // The counter ahead of the clock (a burst, or a retired token from a
    // faster clock): the next token is the last plus one.
    let ahead = layout::token_floor(after) + 1_000_000_000;
    set_slots(
        &mut f,
        "t",
        &[(Slot::Token, 1), (Slot::TokenSkip, ahead - 1)],
    )
    .await;
    let b = f
        .store
        .acquire(&lease_req(&pool, "w"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.token, ahead + 1);
    let c = f
        .store
        .acquire(&lease_req(&pool, "w"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.token, ahead + 2);

    // The skip set back, as on a primary promoted without the last writes
    // (its counter is behind the tokens issued): the token is the clock's
    // floor again, above every token issued before the clock's present.
    set_slots(&mut f, "t", &[(Slot::TokenSkip, 0)]).await;
    f.wait_past(after + 2).await;
    let d = f
        .store
        .acquire(&lease_req(&pool, "w"))
        .await
        .unwrap()
        .unwrap();
    let now = redis_now_ms(&mut f.con).await;
    assert!(
        d.token > a.token
            && d.token >= layout::token_floor(after + 2)
            && d.token <= layout::token_floor(now),
        "{} after {}",
        d.token,
        a.token
    );

    // Stats count leases, not tokens skipped: 4 granted, 4 live.
    assert_eq!(slot(&mut f, "t", Slot::Token).await, 4);
    let stats = f.store.pool_stats(&pool).await.unwrap();
    assert_eq!(
        (
            stats.total_leases,
            stats.active_leases,
            stats.released_leases
        ),
        (4, 4, 0),
        "{stats:?}"
    );
    f.assert_sound(&pool, "after the tokens").await;
}
