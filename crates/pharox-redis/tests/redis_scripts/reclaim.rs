//! Ending leases: several leases of one proxy reclaimed by one call (a
//! batch of expired leases, `reclaiming()` in lib.lua) restore it once;
//! members pharox cannot have written are dropped without harm, by a
//! reclaim and by release and renew (one lease ended by `end_lease`).

use chrono::TimeDelta;
use pharox_core::{AcquireRequest, PoolId, Proxy, ProxyPool, ProxyProtocol, Selector, Storage};
use pharox_redis::redis::{self, Value};
use pharox_redis::{layout, queries};

use crate::support::*;

/// Several leases of one proxy reclaimed by the same script call (a batch of
/// expired leases, as after a stall or a restart) restore its indexes once.
/// Found by the fault churn: the proxy, full and lazily dropped from the
/// least-used and latency indexes, got its "back in the index" flags added
/// once per lease, which corrupted its word and the `available` counter. Acquires here never reclaim, so the leases stay
/// held until `cleanup_expired` takes them all in one call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_of_one_proxy_reclaimed_in_one_batch_restore_it_once() {
    let mut f = Fixture::start_with(|c| c.reclaim_batch(0)).await;
    for selector in Selector::ALL {
        let pool = PoolId::from(format!("batch-{selector:?}"));
        f.store
            .upsert_pool(&ProxyPool::new(pool.clone()))
            .await
            .unwrap();
        for (i, cap) in [(0u16, 3u32), (1, 1)] {
            let p = Proxy::new(
                pool.clone(),
                format!("10.1.0.{i}"),
                8000 + i,
                ProxyProtocol::Http,
            )
            .with_id(format!("p{i}"))
            .with_latency_ms(10 + u32::from(i))
            .with_max_concurrency(cap);
            f.store.upsert_proxy(&p).await.unwrap();
        }
        let short = AcquireRequest::new(pool.clone())
            .duration(TimeDelta::milliseconds(300))
            .selector(selector);
        // Fill both proxies, then ask once more: both are full.
        let mut last = 0;
        for _ in 0..4 {
            let l = f.store.acquire(&short).await.unwrap().expect("a lease");
            last = last.max(l.expires_at.timestamp_millis());
        }
        assert!(f.store.acquire(&short).await.unwrap().is_none());
        f.wait_past(last).await;
        assert_eq!(f.store.cleanup_expired(&pool, 100).await.unwrap(), 4);
        f.assert_sound(&pool, &format!("{selector:?} after the batch"))
            .await;
        let snap = f.store.pool_snapshot(&pool).await.unwrap();
        let found = pharox_core::invariants::check_snapshot(&snap, true);
        assert!(found.is_empty(), "{selector:?}: {found:?}");
        // Every slot is usable again, exactly once, through every selector.
        let long = AcquireRequest::new(pool.clone()).selector(selector);
        let mut got = Vec::new();
        while let Some(l) = f.store.acquire(&long).await.unwrap() {
            got.push(l.proxy.id.to_string());
            assert!(got.len() <= 4, "{selector:?} over-leased: {got:?}");
        }
        got.sort();
        assert_eq!(got, ["p0", "p0", "p0", "p1"], "{selector:?}");
        let snap = f.store.pool_snapshot(&pool).await.unwrap();
        let found = pharox_core::invariants::check_snapshot(&snap, true);
        assert!(found.is_empty(), "{selector:?}: {found:?}");
        f.assert_sound(&pool, &format!("{selector:?} full again"))
            .await;
    }
}

/// A lease member pharox cannot have written, found among expired leases,
/// is dropped without failing the reclaim of the real ones beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_lease_members_are_dropped_by_reclaim_without_harm() {
    let mut f = Fixture::start().await;
    let pool = f
        .pool(
            "malformed-members",
            &[
                Proxy::new("malformed-members", "10.1.0.1", 8000, ProxyProtocol::Http)
                    .with_id("p")
                    .with_max_concurrency(2),
            ],
        )
        .await;
    let short = AcquireRequest::new(pool.clone()).duration(TimeDelta::milliseconds(100));
    let l = f.store.acquire(&short).await.unwrap().expect("a lease");
    let k = keys("malformed-members");
    for junk in [
        "garbage",
        "16:x:1:2:w",
        "3:1:1:1:w",
        ":::::",
        // Well formed, but not leases of this pool: a sequence far beyond
        // its proxies, one just beyond, and more leases of its one proxy
        // than it holds (one spelled with a leading zero).
        "99999999999:1:1:1:w",
        "17:1:1:1:w",
        "016:5:5:5:w",
        "16:6:6:6:w",
    ] {
        let () = redis::cmd("ZADD")
            .arg(&k.leases_by_deadline)
            .arg(1)
            .arg(junk)
            .query_async(&mut f.con)
            .await
            .unwrap();
    }
    f.wait_past(l.expires_at.timestamp_millis()).await;
    assert_eq!(
        f.store.cleanup_expired(&pool, 100).await.unwrap(),
        1,
        "only the real lease counts"
    );
    let left: Vec<String> = redis::cmd("ZRANGE")
        .arg(&k.leases_by_deadline)
        .arg(0)
        .arg(-1)
        .query_async(&mut f.con)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    let stats = f.store.pool_stats(&pool).await.unwrap();
    assert_eq!(
        (stats.active_leases, stats.expired_leases, stats.available),
        (0, 1, 1)
    );
    f.assert_sound(&pool, "after the reclaim").await;
    // Its capacity is exactly its cap again: two leases, not more.
    let long = AcquireRequest::new(pool.clone());
    assert!(f.store.acquire(&long).await.unwrap().is_some());
    assert!(f.store.acquire(&long).await.unwrap().is_some());
    assert!(f.store.acquire(&long).await.unwrap().is_none());
}

/// release and renew end one lease with one decrement of the word's low
/// 32 bits (`end_lease` in lib.lua), which refuses a proxy without live
/// leases: a member naming such a proxy (one pharox cannot have written,
/// planted here) answers "not held" and is dropped, every slot of the
/// counters string reading as it did (no word changed, no lease counted as
/// released or expired) and every other key as it was. That covers an idle proxy, an idle proxy of capacity 65535
/// (whose decrement is not refused but lands on room 0 and is put back), a
/// sequence past the last proxy and one far beyond; planted live (release)
/// and past their deadline (release, and renew, which reclaims what it
/// finds expired). The real lease beside them is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_proxies_without_leases_are_dropped_by_release_and_renew() {
    let mut f = Fixture::start().await;
    let proxy = |id: &str, i: u16, cap: u32| {
        Proxy::new("idle", format!("10.1.0.{i}"), 8000 + i, ProxyProtocol::Http)
            .with_id(id)
            .with_max_concurrency(cap)
    };
    let pool = f
        .pool(
            "idle",
            &[
                proxy("busy", 1, 2),
                proxy("idle", 2, 3),
                proxy("wide", 3, pharox_redis::MAX_CONCURRENCY),
            ],
        )
        .await;
    let real = f
        .store
        .acquire(&lease_req(&pool, "w"))
        .await
        .unwrap()
        .expect("a lease");
    assert_eq!(real.proxy.id.as_str(), "busy");
    let k = keys("idle");
    let before_counters: Vec<u8> = redis::cmd("GET")
        .arg(&k.counters)
        .query_async(&mut f.con)
        .await
        .unwrap();
    let before_stats = f.store.pool_stats(&pool).await.unwrap();
    let leases_before = f.fingerprint().await;

    let now = redis_now_ms(&mut f.con).await;
    let live = now + 3_600_000;
    // (member, deadline): on "idle" (17), on "wide" (18), past the last
    // proxy (19), far beyond; live and expired.
    let planted: Vec<(String, i64)> = [17u64, 18, 19, 5_000]
        .into_iter()
        .enumerate()
        .flat_map(|(i, seq)| {
            [
                (format!("{seq}:{}:1:1:w", 900 + 2 * i), live),
                (format!("{seq}:{}:1:1:w", 901 + 2 * i), 1),
            ]
        })
        .collect();
    for (m, deadline) in &planted {
        let () = redis::cmd("ZADD")
            .arg(&k.leases_by_deadline)
            .arg(deadline)
            .arg(m)
            .query_async(&mut f.con)
            .await
            .unwrap();
    }
    for (i, (m, deadline)) in planted.iter().enumerate() {
        // The expired ones alternately through release and renew.
        if *deadline == live || i % 4 == 1 {
            let r: i64 = queries::release(&k, m)
                .invoke_async(&mut f.con)
                .await
                .unwrap();
            assert_eq!(r, 0, "release {m} (deadline {deadline})");
        } else {
            let r = invoke(&mut f.con, &queries::renew(&k, m, 60_000)).await;
            assert_eq!(r, Value::Array(vec![Value::Int(0)]), "renew {m}");
        }
        let left: Option<f64> = redis::cmd("ZSCORE")
            .arg(&k.leases_by_deadline)
            .arg(m)
            .query_async(&mut f.con)
            .await
            .unwrap();
        assert_eq!(left, None, "{m} is dropped");
    }
    let after_counters: Vec<u8> = redis::cmd("GET")
        .arg(&k.counters)
        .query_async(&mut f.con)
        .await
        .unwrap();
    // Every slot reads as it did (the string's length is the next test's).
    let slots = before_counters.len().max(after_counters.len()).div_ceil(8) as u64;
    for slot in 0..slots {
        assert_eq!(
            layout::read_slot(&before_counters, slot),
            layout::read_slot(&after_counters, slot),
            "slot {slot}"
        );
    }
    // Nothing else changed either: the keyspace is as before the planting.
    leases_before.without(&k.counters).assert_same(
        &f.fingerprint().await.without(&k.counters),
        "dropping planted members",
    );
    let after_stats = f.store.pool_stats(&pool).await.unwrap();
    assert_eq!(
        (
            after_stats.active_leases,
            after_stats.total_leases,
            after_stats.released_leases,
            after_stats.expired_leases,
            after_stats.available
        ),
        (
            before_stats.active_leases,
            before_stats.total_leases,
            before_stats.released_leases,
            before_stats.expired_leases,
            before_stats.available
        )
    );
    f.assert_sound(&pool, "after dropping the members").await;
    assert_eq!(
        f.store.release(&real).await.unwrap(),
        pharox_core::ReleaseOutcome::Released
    );
    f.assert_sound(&pool, "after the real release").await;
}

/// Dropping a member whose sequence lies past the pool's last proxy (data
/// pharox never writes: planting it takes write access to the pool's keys)
/// changes no state. The reclaim path (`cleanup`) reads the last sequence
/// first and never touches such a word, so the `counters` string keeps its
/// length; release and renew (`end_lease` in lib.lua) send their
/// `BITFIELD ... OVERFLOW FAIL INCRBY u32` at once, to keep a release one
/// BITFIELD, and Redis grows the string to hold that offset before it
/// refuses the increment (zero bytes, read as "no proxy"): accepted, and
/// bounded by the offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_member_past_the_last_proxy_changes_no_state() {
    let mut f = Fixture::start().await;
    let pool = f
        .pool(
            "past",
            &[Proxy::new("past", "10.1.0.1", 8000, ProxyProtocol::Http).with_id("p")],
        )
        .await;
    let k = keys("past");
    let strlen = |con: &mut redis::aio::MultiplexedConnection| {
        let key = k.counters.clone();
        let mut con = con.clone();
        async move {
            redis::cmd("STRLEN")
                .arg(key)
                .query_async::<usize>(&mut con)
                .await
                .unwrap()
        }
    };
    let live = redis_now_ms(&mut f.con).await + 3_600_000;
    let mut wrong = Vec::new();
    // Each further out than the one before, so each shows its own growth.
    for (how, member, deadline) in [
        ("cleanup", "9000:1:1:1:w", 1),
        ("release", "5000:2:1:1:w", live),
        ("renew", "7000:3:1:1:w", 1),
    ] {
        let len = strlen(&mut f.con).await;
        let () = redis::cmd("ZADD")
            .arg(&k.leases_by_deadline)
            .arg(deadline)
            .arg(member)
            .query_async(&mut f.con)
            .await
            .unwrap();
        let answer = match how {
            "cleanup" => invoke(&mut f.con, &queries::cleanup(&k, 10)).await,
            "release" => invoke(&mut f.con, &queries::release(&k, member)).await,
            _ => invoke(&mut f.con, &queries::renew(&k, member, 1_000)).await,
        };
        let not_held = match how {
            "renew" => Value::Array(vec![Value::Int(0)]),
            _ => Value::Int(0),
        };
        assert_eq!(answer, not_held, "{how} {member}");
        let now = strlen(&mut f.con).await;
        let seq: usize = member.split(':').next().unwrap().parse().unwrap();
        let grew_as_allowed = now == len || (how != "cleanup" && now <= 8 * (seq + 1));
        if !grew_as_allowed {
            wrong.push(format!(
                "{how} of {member} grew the counters string from {len} to {now} bytes"
            ));
        }
        let word: Vec<i64> = redis::cmd("BITFIELD_RO")
            .arg(&k.counters)
            .arg("GET")
            .arg("i64")
            .arg(format!("#{seq}"))
            .query_async(&mut f.con)
            .await
            .unwrap();
        if word != [0] {
            wrong.push(format!(
                "{how} of {member} left word {word:?} at its sequence"
            ));
        }
    }
    f.assert_sound(&pool, "after the drops").await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
