//! What a failover keeps, with writes made to be lost: replication to the
//! replica is cut (the replica stopped, its link closed by the primary),
//! leases are granted that only the primary has, and the primary is
//! killed, so the sentinels promote a replica without them.
//!
//! - Fencing tokens issued after such a failover are above every token
//!   issued before it (I5 across the loss): they follow the server clock.
//! - With acknowledged acquires (`RedisConfig::acknowledge`), every lease
//!   an acquire returned survives the failover (I1 across it), and an
//!   acquire the replicas cannot acknowledge fails retryably holding
//!   nothing; a renew likewise.

use std::time::Duration;

use pharox_core::testkit::{
    Harness, PATIENCE, add, new_pool, proxy, request, retry_while_retryable,
};
use pharox_core::{Error, Lease, PoolId, Storage};
use pharox_redis::redis;
use pharox_redis::testkit::{NO_PERSISTENCE, RedisHarness, RedisServer, SentinelTopology};
use pharox_redis::{RedisConfig, RedisStorage};

use crate::CALL_TIMEOUT;

/// Waits until every write made so far reached the replica: a write on
/// a connection of its own, then `WAIT` for it (WAIT counts this
/// connection's writes, which come after all earlier ones).
async fn replicated(primary: &RedisServer) {
    let mut con = primary.raw_connection().await;
    let _: () = redis::cmd("SET")
        .arg("pharox-test:marker")
        .arg("1")
        .query_async(&mut con)
        .await
        .expect("SET on the primary");
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(PATIENCE.as_millis() as u64)
        .query_async(&mut con)
        .await
        .expect("WAIT on the primary");
    assert_eq!(acked, 1, "the replica did not catch up");
}

/// Stops the replica and closes its link: from now on the primary's
/// writes reach no replica. Returns the replica's port.
async fn cut_replication(t: &SentinelTopology, primary: u16) -> u16 {
    let replica = t
        .nodes
        .iter()
        .find(|n| n.port() != primary)
        .expect("a replica");
    replica.pause();
    let mut con = t.node(primary).expect("primary").raw_connection().await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query_async(&mut con)
        .await
        .expect("CLIENT KILL TYPE replica");
    assert_eq!(killed, 1, "the primary had one replica link to close");
    replica.port()
}

/// Kills the primary, lets the (stale) replica run again, and waits until
/// the sentinels promote it; returns its port.
fn fail_over_to_stale_replica(t: &mut SentinelTopology, replica: u16) -> u16 {
    let old = t.kill_primary();
    t.node(replica).expect("replica").resume();
    let promoted = t.wait_for_new_primary(old);
    assert_eq!(promoted, replica);
    promoted
}

async fn acquire_n(store: &RedisStorage, pool: &PoolId, n: usize) -> Vec<Lease> {
    let mut out = Vec::with_capacity(n);
    let req = request(pool);
    for _ in 0..n {
        let (got, _) = retry_while_retryable(PATIENCE, || store.acquire(&req)).await;
        out.push(got.expect("acquire").expect("a free proxy"));
    }
    out
}

async fn held(store: &RedisStorage, pool: &PoolId, leases: &[Lease]) -> usize {
    let mut n = 0;
    for l in leases {
        let (got, _) = retry_while_retryable(PATIENCE, || store.get_lease(pool, &l.id)).await;
        n += usize::from(got.expect("get_lease").is_some());
    }
    n
}

async fn setup(
    t: &SentinelTopology,
    adjust: impl FnOnce(RedisConfig) -> RedisConfig,
) -> (RedisHarness, PoolId) {
    let h = RedisHarness::on_sentinel(t, |c| {
        adjust(
            c.response_timeout(CALL_TIMEOUT)
                .connect_timeout(Duration::from_secs(1)),
        )
    })
    .await;
    let pool = new_pool(&h, "durability").await;
    for i in 0..8 {
        add(
            &h,
            proxy(&pool, &format!("p{i}"), i).with_max_concurrency(100),
        )
        .await;
    }
    (h, pool)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_after_a_failover_that_lost_writes_are_above_every_earlier_token() {
    let mut t = tokio::task::block_in_place(|| SentinelTopology::start("pharox-lossy"));
    let (h, pool) = setup(&t, |c| c).await;
    let store = h.storage();
    let primary = t.primary_port().expect("a primary");

    let kept = acquire_n(store, &pool, 10).await;
    replicated(t.node(primary).expect("primary")).await;
    let replica = cut_replication(&t, primary).await;
    let lost = acquire_n(store, &pool, 10).await;
    tokio::task::block_in_place(|| fail_over_to_stale_replica(&mut t, replica));

    let after = acquire_n(store, &pool, 10).await;
    // The failover lost what it was made to lose, and kept the rest.
    assert_eq!(
        held(store, &pool, &lost).await,
        0,
        "the leases granted while replication was cut are lost"
    );
    assert_eq!(
        held(store, &pool, &kept).await,
        kept.len(),
        "the replicated leases are kept"
    );
    let before = kept
        .iter()
        .chain(&lost)
        .map(|l| l.token)
        .max()
        .expect("tokens");
    let repeated: Vec<u64> = after
        .iter()
        .map(|l| l.token)
        .filter(|t| *t <= before)
        .collect();
    assert!(
        repeated.is_empty(),
        "tokens issued after the failover at or below the last one before it ({before}): {repeated:?}"
    );
    // Within one side of the failover, tokens rise too.
    for side in [&kept, &lost, &after] {
        assert!(side.windows(2).all(|w| w[0].token < w[1].token), "{side:?}");
    }
    drop(h);
    drop(t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_leases_survive_a_failover() {
    let mut t = tokio::task::block_in_place(|| SentinelTopology::start("pharox-acked"));
    let (h, pool) = setup(&t, |c| c.acknowledge(1, Duration::from_millis(1_000))).await;
    let store = h.storage();
    let primary = t.primary_port().expect("a primary");

    // Every acquire returned is on the replica: kill the primary at once.
    let acked = acquire_n(store, &pool, 20).await;
    let old = tokio::task::block_in_place(|| t.kill_primary());
    assert_eq!(old, primary);
    tokio::task::block_in_place(|| t.wait_for_new_primary(old));
    assert_eq!(
        held(store, &pool, &acked).await,
        acked.len(),
        "an acknowledged lease was lost"
    );
    let (stats, _) = retry_while_retryable(PATIENCE, || store.pool_stats(&pool)).await;
    assert_eq!(stats.expect("stats").active_leases, 20);
    drop(h);
    drop(t);
}

/// A primary and a replica (no sentinels), for the acknowledgement's
/// failure paths: the replica stopped cannot acknowledge.
async fn primary_and_replica() -> (RedisServer, RedisServer) {
    let primary = RedisServer::start();
    let port = primary.port().to_string();
    let mut args = NO_PERSISTENCE.to_vec();
    args.extend(["--replicaof", "127.0.0.1", &port]);
    let replica = RedisServer::start_with(&args);
    replicated(&primary).await;
    (primary, replica)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_acquires_and_renews_fail_retryably_and_say_so() {
    let (primary, replica) = primary_and_replica().await;
    let wait = Duration::from_millis(200);
    let store = RedisStorage::connect(RedisConfig::new(primary.url()).acknowledge(1, wait))
        .await
        .expect("connect");
    let pool = PoolId::new("acks");
    store
        .upsert_pool(&pharox_core::ProxyPool::new(pool.clone()))
        .await
        .expect("pool");
    store
        .upsert_proxy(&proxy(&pool, "p0", 0))
        .await
        .expect("proxy");

    // Acknowledged: granted.
    let lease = store
        .acquire(&request(&pool))
        .await
        .expect("acquire")
        .expect("lease");

    // The replica stopped: the acquire waits its 200 ms, then fails
    // retryably, naming the shortfall, and holds nothing.
    replica.pause();
    let got = store.acquire(&request(&pool)).await;
    let Err(e @ Error::Interrupted { .. }) = &got else {
        panic!("an unacknowledged acquire: {got:?}");
    };
    let text = e.to_string();
    assert!(
        text.contains("acknowledged by 0 of the 1 replicas") && text.contains("released again"),
        "{text}"
    );
    assert!(e.is_retryable() && !e.request_not_sent(), "{e:?}");
    let stats = store.pool_stats(&pool).await.expect("stats");
    assert_eq!(
        stats.active_leases, 1,
        "only the acknowledged lease is held: {stats:?}"
    );

    // A renew: applied on the primary, reported as not acknowledged.
    let renewed = store.renew(&lease, chrono::TimeDelta::minutes(5)).await;
    let Err(e @ Error::Interrupted { .. }) = &renewed else {
        panic!("an unacknowledged renew: {renewed:?}");
    };
    assert!(e.to_string().contains("former deadline"), "{e}");

    // The replica back: acknowledged again.
    replica.resume();
    let again = store
        .acquire(&request(&pool))
        .await
        .expect("acquire")
        .expect("lease");
    store
        .renew(&again, chrono::TimeDelta::minutes(5))
        .await
        .expect("renew");
    store.release(&again).await.expect("release");
    store.release(&lease).await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledge_settings_are_checked_at_connect() {
    let server = RedisServer::start();
    for (cfg, field) in [
        (
            RedisConfig::new(server.url()).acknowledge(0, Duration::from_millis(10)),
            "acknowledge replicas",
        ),
        (
            RedisConfig::new(server.url()).acknowledge(1, Duration::ZERO),
            "acknowledge timeout",
        ),
        (
            RedisConfig::new(server.url())
                .response_timeout(Duration::from_secs(1))
                .acknowledge(1, Duration::from_secs(1)),
            "acknowledge timeout",
        ),
    ] {
        let e = RedisStorage::connect(cfg).await.expect_err("refused");
        assert!(
            matches!(&e, Error::InvalidInput { field: f, .. } if *f == field),
            "{e:?}"
        );
    }
}
