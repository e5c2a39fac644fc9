//! Limits: a pool's size and sequences (upsert answers -4 and -5 and
//! writes nothing), and calls that handle more items than one chunk
//! (`LIMIT_CHUNK`): removing a pool of thousands of by_value keys, a proxy
//! of thousands of leases. Location arguments either refused or stored
//! whole.

use chrono::TimeDelta;
use pharox_core::{
    AcquireRequest, Error, Proxy, ProxyFilters, ProxyPool, ProxyProtocol, ReleaseOutcome, Storage,
};
use pharox_redis::layout::{self, Slot};
use pharox_redis::queries::{self, UpsertArgs, UpsertReply};
use pharox_redis::redis::{self, Value};
use pharox_redis::scripts;

use crate::support::*;

fn proxy(pool: &str, i: usize) -> Proxy {
    Proxy::new(
        pool,
        format!("10.{}.{}.1", i / 250, i % 250),
        1000,
        ProxyProtocol::Http,
    )
    .with_id(format!("p{i}"))
}

/// The ARGV of adding proxy `id` (a new one), reclaiming up to 100 due
/// leases first.
fn new_proxy<'a>(id: &'a str, json: &'a str) -> UpsertArgs<'a> {
    UpsertArgs {
        id,
        expected: "",
        json,
        active: true,
        capacity: 1,
        latency_key: 5,
        location: None,
        old_index: &[],
        new_index: &[],
        reclaim_batch: 100,
    }
}

/// Leaves one lease of `pool` due (a refused upsert must not reclaim it).
async fn one_due_lease(f: &mut Fixture, pool: &pharox_core::PoolId) {
    let short = AcquireRequest::new(pool.clone()).duration(TimeDelta::milliseconds(1));
    let l = f.store.acquire(&short).await.unwrap().unwrap();
    f.wait_past(l.expires_at.timestamp_millis()).await;
}

fn pool_error(r: pharox_core::Result<Proxy>) {
    assert!(
        matches!(r, Err(Error::InvalidInput { field: "pool", .. })),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_refuses_a_new_proxy_once_the_sequences_are_used_up() {
    let mut f = Fixture::start_with(|c| c.reclaim_batch(0)).await;
    let pool = f
        .pool("seq", &[proxy("seq", 0).with_max_concurrency(2)])
        .await;
    one_due_lease(&mut f, &pool).await;
    let k = keys("seq");
    let _: Vec<i64> = redis::cmd("BITFIELD")
        .arg(&k.counters)
        .arg("SET")
        .arg("i64")
        .arg(Slot::LastSeq.offset())
        .arg(layout::MAX_SEQ)
        .query_async(&mut f.con)
        .await
        .unwrap();

    let before = f.fingerprint().await;
    let json = serde_json::to_string(&proxy("seq", 1)).unwrap();
    let r = invoke(
        &mut f.con,
        &queries::upsert_proxy(&k, &new_proxy("p1", &json)),
    )
    .await;
    assert_eq!(
        UpsertReply::decode(r).unwrap(),
        UpsertReply::OutOfSequences(layout::MAX_SEQ as i64)
    );
    pool_error(f.store.upsert_proxy(&proxy("seq", 1)).await);
    f.fingerprint()
        .await
        .assert_same(&before, "upsert answering -5");

    // The proxies it has can still change.
    let changed = proxy("seq", 0).with_max_concurrency(3).with_city("C");
    assert_eq!(
        f.store.upsert_proxy(&changed).await.unwrap().current_leases,
        0
    );
    f.assert_sound(&pool, "after updating a proxy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_refuses_a_new_proxy_in_a_full_pool() {
    let mut f = Fixture::start_with(|c| c.reclaim_batch(0)).await;
    let pool = f
        .pool("full", &[proxy("full", 0).with_max_concurrency(2)])
        .await;
    one_due_lease(&mut f, &pool).await;
    let k = keys("full");
    // seq_by_id planted up to LIMIT_MAX_PROXIES entries, in a few calls.
    let plant = redis::Script::new(
        r#"
        for i = tonumber(ARGV[1]), tonumber(ARGV[2]), 1000 do
          local args = {}
          for j = i, math.min(i + 999, tonumber(ARGV[2])) do
            args[#args + 1] = 'planted:' .. j; args[#args + 1] = '1'
          end
          redis.call('HSET', KEYS[1], unpack(args))
        end
        "#,
    );
    let planted = layout::MAX_PROXIES - 1;
    for start in (0..planted).step_by(100_000) {
        let end = (start + 100_000).min(planted) - 1;
        let _: Value = plant
            .key(&k.seq_by_id)
            .arg(start)
            .arg(end)
            .invoke_async(&mut f.con)
            .await
            .unwrap();
    }
    let n: usize = redis::cmd("HLEN")
        .arg(&k.seq_by_id)
        .query_async(&mut f.con)
        .await
        .unwrap();
    assert_eq!(n, layout::MAX_PROXIES);

    // seq_by_id is too big to digest in time: the script could only have
    // added the new id to it, so its size and that id tell.
    let before = fingerprint_except(&mut f.con, &[&k.seq_by_id]).await;
    let json = serde_json::to_string(&proxy("full", 1)).unwrap();
    let r = invoke(
        &mut f.con,
        &queries::upsert_proxy(&k, &new_proxy("p1", &json)),
    )
    .await;
    assert_eq!(
        UpsertReply::decode(r).unwrap(),
        UpsertReply::PoolFull(layout::MAX_PROXIES as i64)
    );
    pool_error(f.store.upsert_proxy(&proxy("full", 1)).await);
    fingerprint_except(&mut f.con, &[&k.seq_by_id])
        .await
        .assert_same(&before, "upsert answering -4");
    let (n, added): (usize, bool) = redis::pipe()
        .cmd("HLEN")
        .arg(&k.seq_by_id)
        .cmd("HEXISTS")
        .arg(&k.seq_by_id)
        .arg("p1")
        .query_async(&mut f.con)
        .await
        .unwrap();
    assert_eq!(
        (n, added),
        (layout::MAX_PROXIES, false),
        "upsert answering -4"
    );

    // The proxies it has can still change; one fewer, and a new one fits.
    let changed = proxy("full", 0).with_max_concurrency(3);
    f.store.upsert_proxy(&changed).await.unwrap();
    let _: i64 = redis::cmd("HDEL")
        .arg(&k.seq_by_id)
        .arg("planted:0")
        .query_async(&mut f.con)
        .await
        .unwrap();
    f.store.upsert_proxy(&proxy("full", 1)).await.unwrap();
    pool_error(f.store.upsert_proxy(&proxy("full", 2)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_pool_removes_more_by_value_keys_than_a_chunk() {
    let mut f = Fixture::start().await;
    f.pool("other", &[proxy("other", 0).with_city("Lima")])
        .await;
    let before = f.fingerprint().await;

    let n = 2 * layout::CHUNK + 500;
    let pool = f.pool("big", &[]).await;
    let many: Vec<Proxy> = (0..n)
        .map(|i| {
            proxy("big", i)
                .with_city(format!("city {i}"))
                .with_country("AR")
                .with_location(-34.0 + i as f64 / 1e4, -58.0)
        })
        .collect();
    add_proxies(&f.store, &many).await;
    let mut last_token = 0;
    for _ in 0..10 {
        let l = f
            .store
            .acquire(&lease_req(&pool, "w"))
            .await
            .unwrap()
            .unwrap();
        last_token = last_token.max(l.token);
    }
    let stats = f.store.pool_stats(&pool).await.unwrap();
    f.store.record_stats(&stats, 10).await.unwrap();
    f.assert_sound(&pool, "before removal").await;
    let k = keys("big");
    let mut ix: Vec<String> = redis::cmd("SMEMBERS")
        .arg(&k.value_index_keys)
        .query_async(&mut f.con)
        .await
        .unwrap();
    assert_eq!(ix.len(), n + 1, "a city each and their country");

    // One by_value key short: -2, nothing removed.
    let full = f.fingerprint().await;
    let missing = ix.pop().unwrap();
    let r: i64 = queries::remove_pool(&k, &ix)
        .invoke_async(&mut f.con)
        .await
        .unwrap();
    assert_eq!(r, -2);
    f.fingerprint()
        .await
        .assert_same(&full, "remove_pool answering -2");
    ix.push(missing);

    // Directly, then through the store (which finds nothing left).
    let r: i64 = queries::remove_pool(&k, &ix)
        .invoke_async(&mut f.con)
        .await
        .unwrap();
    assert_eq!(r, 1);
    assert!(
        !f.store.remove_pool(&pool).await.unwrap(),
        "removed already (the store drops its pool record)"
    );
    // Every key of the pool is gone but its retired token.
    let after = f.fingerprint().await;
    assert!(
        after.keys().contains(&k.retired_token),
        "the retired token stays"
    );
    before.assert_same(&after.without(&k.retired_token), "remove_pool");
    let retired: u64 = redis::cmd("GET")
        .arg(&k.retired_token)
        .query_async(&mut f.con)
        .await
        .unwrap();
    assert_eq!(
        retired, last_token,
        "the retired token is the last one issued"
    );

    // Created again, the pool continues its fencing tokens.
    f.store.upsert_pool(&ProxyPool::new("big")).await.unwrap();
    f.store.upsert_proxy(&proxy("big", 0)).await.unwrap();
    let l = f
        .store
        .acquire(&lease_req(&pool, "w"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        l.token > last_token,
        "tokens go on after the removed pool's: {} after {last_token}",
        l.token
    );
    f.assert_sound(&pool, "created again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_proxy_ends_more_leases_than_a_chunk() {
    let mut f = Fixture::start().await;
    let pool = f
        .pool(
            "r",
            &[
                proxy("r", 0).with_city("B"),
                proxy("r", 1).with_city("S").with_max_concurrency(10),
            ],
        )
        .await;
    let on = |city: &str| lease_req(&pool, "w").filters(ProxyFilters::new().city(city));
    let mut big = Vec::new();
    let mut small = Vec::new();
    for (city, count) in [("B", 1_000), ("S", 2), ("B", 1_500), ("S", 1)] {
        let req = on(city);
        for chunk in (0..count).collect::<Vec<_>>().chunks(32) {
            let got =
                futures_util::future::try_join_all(chunk.iter().map(|_| f.store.acquire(&req)))
                    .await
                    .unwrap();
            let got = got.into_iter().map(Option::unwrap);
            if city == "B" {
                big.extend(got);
            } else {
                small.extend(got);
            }
        }
    }
    assert!(big.iter().all(|l| l.proxy.id.as_str() == "p0"));
    let snap = f.store.pool_snapshot(&pool).await.unwrap();
    assert_eq!(snap.leases.len(), 2_503);
    f.assert_sound(&pool, "with the leases").await;

    let removed = f
        .store
        .remove_proxy(&pool, &pharox_core::ProxyId::from("p0"))
        .await
        .unwrap();
    assert!(removed);
    let k = keys("r");
    let left: usize = redis::cmd("ZCARD")
        .arg(&k.leases_by_deadline)
        .query_async(&mut f.con)
        .await
        .unwrap();
    assert_eq!(left, 3, "only the other proxy's leases are left");
    let stats = f.store.pool_stats(&pool).await.unwrap();
    assert_eq!(
        (
            stats.total,
            stats.leased,
            stats.active_leases,
            stats.released_leases
        ),
        (1, 1, 3, 2_500)
    );
    f.assert_sound(&pool, "after removing the proxy").await;
    for l in &big[..5] {
        assert_eq!(f.store.release(l).await.unwrap(), ReleaseOutcome::NotHeld);
    }
    for l in &small {
        assert_eq!(f.store.release(l).await.unwrap(), ReleaseOutcome::Released);
    }
    f.assert_sound(&pool, "after the releases").await;
}

/// Coordinates Lua's `tonumber` reads but Redis's GEO commands refuse
/// (white space, an exponent that underflows): upsert either refuses them
/// before writing or stores the proxy whole, in its geo set; a geo acquire
/// either refuses them or answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinates_either_are_refused_or_stored_whole() {
    let mut f = Fixture::start().await;
    let pool = f
        .pool("geo", &[proxy("geo", 0).with_location(10.0, 10.0)])
        .await;
    let k = keys("geo");
    let mut wrong = Vec::new();
    for (i, (lon, want)) in [
        (" 10", 10.0),
        ("10 ", 10.0),
        ("\t10", 10.0),
        ("1e-400", 0.0),
        ("0x0A", 10.0),
        ("10.000000000000000000000001", 10.0),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("w{i}");
        // As stored by the store for capacity 1 and latency key 5.
        let p = proxy("geo", 100 + i)
            .with_id(id.clone())
            .with_max_concurrency(1)
            .with_latency_ms(5);
        let json = serde_json::to_string(&p).unwrap();
        let before = f.fingerprint().await;
        let r = eval(
            &mut f.con,
            &scripts::UPSERT_PROXY,
            k.admin_keys(),
            &[&id, "", &json, "1", "1", "5", lon, "10", "0", "0"],
        )
        .await;
        match error_text(r) {
            Ok(msg) if msg.contains("PHAROX bad argument: location") => f
                .fingerprint()
                .await
                .assert_same(&before, &format!("upsert refusing {lon:?}")),
            Ok(msg) => {
                let stored: Option<u64> = redis::cmd("HGET")
                    .arg(&k.seq_by_id)
                    .arg(&id)
                    .query_async(&mut f.con)
                    .await
                    .unwrap();
                wrong.push(format!(
                    "upsert with longitude {lon:?} failed with {msg:?} {}",
                    if stored.is_some() {
                        "after storing the proxy"
                    } else {
                        "(nothing stored)"
                    }
                ));
            }
            Err(v) => {
                let seq = ints(v)[0];
                let pos: Vec<Option<(f64, f64)>> = redis::cmd("GEOPOS")
                    .arg(&k.located)
                    .arg(seq)
                    .query_async(&mut f.con)
                    .await
                    .unwrap();
                match pos[0] {
                    Some((x, y)) if (x - want).abs() < 1e-4 && (y - 10.0).abs() < 1e-4 => {}
                    other => wrong.push(format!(
                        "upsert with longitude {lon:?}: stored at {other:?}, not ({want}, 10)"
                    )),
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    f.assert_sound(&pool, "after the upserts").await;
}
