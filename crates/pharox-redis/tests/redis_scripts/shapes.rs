//! Replies: each script's happy path answers the shape its header
//! documents, and leaves the pool's indexes sound.

use std::collections::HashMap;

use pharox_core::{Proxy, ProxyProtocol, Storage};
use pharox_redis::keys::IndexField;
use pharox_redis::layout;
use pharox_redis::queries::{self, Plan};
use pharox_redis::redis::{self, Value};
use pharox_redis::scripts;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_return_the_documented_shapes() {
    let mut f = Fixture::start().await;
    let pool = f
        .pool(
            "p",
            &[Proxy::new("p", "10.0.0.1", 8080, ProxyProtocol::Http)
                .with_id("px-a")
                .with_max_concurrency(2)
                .with_country("AR")
                .with_latency_ms(30)],
        )
        .await;
    let k = keys("p");
    let con = &mut f.con;
    let acquire = &*scripts::ACQUIRE;
    let acq = queries::acquire_keys(&k, &Plan::All);
    let lease = k.lease_keys();
    let lookup = queries::get_proxy_keys(&k);

    // get_proxy: {seq, live leases, JSON}; the first proxy of a pool is seq 16.
    let got = array(
        eval(con, &scripts::GET_PROXY, lookup, &["px-a"])
            .await
            .unwrap(),
    );
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!((int(&got[0]), int(&got[1])), (layout::FIRST_SEQ as i64, 0));
    assert!(text(&got[2]).contains(r#""id":"px-a""#), "{got:?}");
    assert_eq!(
        ints(
            eval(con, &scripts::GET_PROXY, lookup, &["nope"])
                .await
                .unwrap()
        ),
        vec![0]
    );

    // A lease without a cached generation: {seq, token, now, generation, JSON}.
    let before = redis_now_ms(con).await;
    let a1 = array(
        eval(
            con,
            acquire,
            acq.clone(),
            &["f", "3600000", "c1", "111", "64", "0", "", "", "", ""],
        )
        .await
        .unwrap(),
    );
    let after = redis_now_ms(con).await;
    assert_eq!(a1.len(), 5, "{a1:?}");
    let (seq, token, now1, generation) = (int(&a1[0]), int(&a1[1]), int(&a1[2]), int(&a1[3]));
    // The pool's first token: its counter (1) raised to the clock's floor.
    assert_eq!(seq, 16);
    assert_eq!(token as u64, layout::token_floor(now1).max(1));
    assert!(
        (before..=after).contains(&now1),
        "{before} <= {now1} <= {after}"
    );
    let json = text(&a1[4]);
    assert!(
        json.contains(r#""id":"px-a""#) && json.contains("10.0.0.1"),
        "{json}"
    );

    // Finding: {seq, 0, now, generation, JSON, live leases}; leases nothing.
    let found = array(
        eval(
            con,
            acquire,
            acq.clone(),
            &["t", "3600000", "c1", "1", "64", "1", "", "", "", ""],
        )
        .await
        .unwrap(),
    );
    assert_eq!(found.len(), 6, "{found:?}");
    assert_eq!((int(&found[0]), int(&found[1]), int(&found[5])), (16, 0, 1));
    assert_eq!(int(&found[3]), generation);
    // The same with a filter (plan v): the same shape.
    let country = k.by_value(IndexField::Country, "AR");
    let verify = Plan::Verify(country.clone());
    let found = array(
        eval(
            con,
            acquire,
            queries::acquire_keys(&k, &verify),
            &[
                "l",
                "3600000",
                "c1",
                "1",
                "64",
                "1",
                "",
                "v",
                r#"{"country":"ar","isp":null}"#,
                "",
            ],
        )
        .await
        .unwrap(),
    );
    assert_eq!(found.len(), 6, "{found:?}");
    assert_eq!((int(&found[0]), int(&found[1]), int(&found[5])), (16, 0, 1));

    // With the generation cached the JSON is left out.
    let gen_s = generation.to_string();
    let a2 = ints(
        eval(
            con,
            acquire,
            acq.clone(),
            &["l", "3600000", "c2", "222", "64", "0", &gen_s, "", "", ""],
        )
        .await
        .unwrap(),
    );
    assert_eq!(a2.len(), 4, "{a2:?}");
    let now2 = a2[2];
    assert_eq!((a2[0], a2[3]), (16, generation));
    assert_eq!(
        a2[1] as u64,
        (token as u64 + 1).max(layout::token_floor(now2)),
        "the last token plus one, or the clock's floor"
    );

    // Full (capacity 2): {0} for acquire and for find, filtered or not.
    for find in ["0", "1"] {
        let r = ints(
            eval(
                con,
                acquire,
                acq.clone(),
                &["r", "3600000", "c3", "3", "64", find, "", "", "", ""],
            )
            .await
            .unwrap(),
        );
        assert_eq!(r, vec![0], "find={find}");
        let r = ints(
            eval(
                con,
                acquire,
                queries::acquire_keys(&k, &Plan::Exact(country.clone())),
                &["f", "3600000", "c3", "3", "64", find, "", "x", "", ""],
            )
            .await
            .unwrap(),
        );
        assert_eq!(r, vec![0], "plan x, find={find}");
    }

    // The live leases are members "seq:token:nonce:acquired_ms:consumer".
    let token2 = a2[1];
    let m1 = format!("16:{token}:111:{now1}:c1");
    let m2 = format!("16:{token2}:222:{now2}:c2");
    let mut members: Vec<String> = redis::cmd("ZRANGE")
        .arg(&k.leases_by_deadline)
        .arg(0)
        .arg(-1)
        .query_async(con)
        .await
        .unwrap();
    members.sort();
    let mut want = vec![m1.clone(), m2.clone()];
    want.sort();
    assert_eq!(members, want);

    // stats: {now, total, active, available, leased, active leases, issued, expired}.
    let stats = queries::stats_keys(&k);
    let s = ints(eval(con, &scripts::STATS, stats, &[]).await.unwrap());
    assert_eq!(&s[1..], &[1, 1, 0, 1, 2, 2, 0], "{s:?}");

    // A member with the right seq and token but another nonce holds nothing.
    let forged = format!("16:{token2}:999:{now2}:c2");
    assert_eq!(
        eval(con, &scripts::RELEASE, lease, &[&forged])
            .await
            .unwrap(),
        Value::Int(0)
    );

    // release: 1 the first time, 0 after.
    assert_eq!(
        eval(con, &scripts::RELEASE, lease, &[&m1]).await.unwrap(),
        Value::Int(1)
    );
    assert_eq!(
        eval(con, &scripts::RELEASE, lease, &[&m1]).await.unwrap(),
        Value::Int(0)
    );

    // renew: {now, deadline} with deadline = now + duration; {0} when not held.
    let r = ints(
        eval(con, &scripts::RENEW, lease, &[&m2, "600000"])
            .await
            .unwrap(),
    );
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[1] - r[0], 600_000);
    let score: f64 = redis::cmd("ZSCORE")
        .arg(&k.leases_by_deadline)
        .arg(&m2)
        .query_async(con)
        .await
        .unwrap();
    assert_eq!(score as i64, r[1]);
    assert_eq!(
        ints(
            eval(con, &scripts::RENEW, lease, &[&m1, "600000"])
                .await
                .unwrap()
        ),
        vec![0]
    );

    // Short leases (acquires that reclaim nothing): one released late (2),
    // one reclaimed by cleanup, one found expired by renew ({0}, counted
    // as expired).
    let mut short = Vec::new();
    for (consumer, nonce) in [("c4", "444"), ("c5", "555"), ("c6", "666")] {
        let r = ints(
            eval(
                con,
                acquire,
                acq.clone(),
                &["f", "1", consumer, nonce, "0", "0", &gen_s, "", "", ""],
            )
            .await
            .unwrap(),
        );
        assert_eq!(r.len(), 4, "{r:?}");
        short.push(format!("{}:{}:{nonce}:{}:{consumer}", r[0], r[1], r[2]));
        wait_past(con, r[2] + 1).await;
        // Release each before taking the next: capacity is 2 and m2 holds one.
        if consumer == "c4" {
            assert_eq!(
                eval(con, &scripts::RELEASE, lease, &[&short[0]])
                    .await
                    .unwrap(),
                Value::Int(2),
                "a release after the deadline"
            );
        } else if consumer == "c5" {
            assert_eq!(
                eval(con, &scripts::CLEANUP, lease, &["10"]).await.unwrap(),
                Value::Int(1)
            );
            assert_eq!(
                eval(con, &scripts::CLEANUP, lease, &["10"]).await.unwrap(),
                Value::Int(0)
            );
            assert_eq!(
                eval(con, &scripts::RELEASE, lease, &[&short[1]])
                    .await
                    .unwrap(),
                Value::Int(0),
                "a reclaimed lease is not held"
            );
        }
    }
    assert_eq!(
        ints(
            eval(con, &scripts::RENEW, lease, &[&short[2], "1000"])
                .await
                .unwrap()
        ),
        vec![0]
    );

    // 5 issued = 1 live (m2) + 1 released (m1) + 3 expired.
    let s = ints(eval(con, &scripts::STATS, stats, &[]).await.unwrap());
    assert_eq!(&s[1..], &[1, 1, 1, 1, 1, 5, 3], "{s:?}");
    let ps = f.store.pool_stats(&pool).await.unwrap();
    assert_eq!(
        (
            ps.active_leases,
            ps.total_leases,
            ps.released_leases,
            ps.expired_leases
        ),
        (1, 5, 1, 3)
    );

    // pool_snapshot: one MULTI/EXEC of plain commands, decoded by the store
    // with the layout's Rust mirror: the same counters as stats.lua, the
    // proxies in sequence order with their loads, the leases by deadline.
    let snap = f.store.pool_snapshot(&pool).await.unwrap();
    assert_eq!(
        [
            snap.stats.total,
            snap.stats.active,
            snap.stats.available,
            snap.stats.leased,
            snap.stats.active_leases,
            snap.stats.total_leases,
            snap.stats.expired_leases,
        ],
        [s[1], s[2], s[3], s[4], s[5], s[6], s[7]].map(|v| u64::try_from(v).unwrap())
    );
    assert_eq!(snap.proxies.len(), 1);
    assert_eq!(
        (snap.proxies[0].id.as_str(), snap.proxies[0].current_leases),
        ("px-a", 1)
    );
    assert_eq!(snap.leases.len(), 1, "m2 only");
    assert_eq!(
        snap.leases[0].token.to_string(),
        m2.split(':').nth(1).unwrap()
    );
    assert_eq!(snap.leases[0].expires_at.timestamp_millis(), r[1]);
    let con = &mut f.con;

    // list_proxies: {next, seq, live leases, JSON, ...}, next 0 at the end.
    let list = array(
        eval(
            con,
            &scripts::LIST_PROXIES,
            queries::list_proxies_keys(&k),
            &["0", "1000"],
        )
        .await
        .unwrap(),
    );
    assert_eq!(list.len(), 4, "{list:?}");
    assert_eq!((int(&list[0]), int(&list[1]), int(&list[2])), (0, 16, 1));
    assert!(text(&list[3]).contains(r#""id":"px-a""#));

    // health: {seq, live leases}; {-2} when the stored JSON changed;
    // {0} for an unknown proxy.
    let stored = text(&list[3]);
    let health = queries::health_keys(&k);
    let inactive = stored.replace(r#""status":"active""#, r#""status":"inactive""#);
    assert_ne!(inactive, stored);
    for (id, want) in [("px-a", vec![16, 1]), ("px-a", vec![-2]), ("nope", vec![0])] {
        let r = eval(
            con,
            &scripts::HEALTH,
            health.clone(),
            &[id, &stored, &inactive, "0", "2", "30"],
        )
        .await
        .unwrap();
        assert_eq!(ints(r), want, "{id}");
    }
    f.assert_sound(&pool, "after the direct calls").await;
}

/// upsert_proxy's replies: {seq, live leases} stored, {-2} the stored proxy
/// is not the one read, {-3, live leases} a capacity below them; and
/// remove_proxy's: 1, 0, -2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_and_remove_proxy_answer_their_documented_values() {
    let mut f = Fixture::start().await;
    let pool = f.pool("p", &[]).await;
    let k = keys("p");
    let city = k.by_value(IndexField::City, "X");
    let stored = |cap: u32| {
        let p = Proxy::new("p", "10.0.0.1", 1, ProxyProtocol::Http)
            .with_id("a")
            .with_city("X")
            .with_latency_ms(5)
            .with_max_concurrency(cap);
        serde_json::to_string(&p).unwrap()
    };
    let (two, one, three) = (stored(2), stored(1), stored(3));
    // KEYS: the admin keys, the stored version's by_value keys, the new one's.
    let mut keys_new = own(k.admin_keys());
    keys_new.push(city.clone());
    let mut keys_old = own(k.admin_keys());
    keys_old.extend([city.clone(), city.clone()]);
    let args = |expected: &str, json: &str, cap: &str, n_old: &str| {
        strings(&["a", expected, json, "1", cap, "5", "", "", n_old, "0"])
    };

    let r = eval(
        &mut f.con,
        &scripts::UPSERT_PROXY,
        refs(&keys_new),
        &refs(&args("", &two, "2", "0")),
    )
    .await
    .unwrap();
    assert_eq!(ints(r), vec![16, 0]);
    // Read as new again, though the proxy is there: -2, nothing written.
    let before = f.fingerprint().await;
    let r = eval(
        &mut f.con,
        &scripts::UPSERT_PROXY,
        refs(&keys_new),
        &refs(&args("", &two, "2", "0")),
    )
    .await
    .unwrap();
    assert_eq!(ints(r), vec![-2]);
    f.fingerprint()
        .await
        .assert_same(&before, "upsert answering -2");
    // Lease it twice, then a capacity of 1 is below its 2 live leases.
    for _ in 0..2 {
        let plan = Plan::All;
        let r = array(
            invoke(
                &mut f.con,
                &queries::acquire(&k, &acquire_args("f", &plan, "", "")),
            )
            .await,
        );
        assert_eq!(int(&r[0]), 16, "{r:?}");
    }
    let before = f.fingerprint().await;
    let r = eval(
        &mut f.con,
        &scripts::UPSERT_PROXY,
        refs(&keys_old),
        &refs(&args(&two, &one, "1", "1")),
    )
    .await
    .unwrap();
    assert_eq!(ints(r), vec![-3, 2]);
    let r = eval(
        &mut f.con,
        &scripts::HEALTH,
        queries::health_keys(&k),
        &["a", &two, &one, "1", "1", "5"],
    )
    .await;
    let msg = error_text(r).unwrap_or_else(|v| panic!("health under the load: {v:?}"));
    assert!(
        msg.contains("PHAROX bad argument: capacity below live leases"),
        "{msg}"
    );
    f.fingerprint()
        .await
        .assert_same(&before, "upsert and health under the live leases");
    // A capacity of 3 is fine: {seq, live leases}.
    let r = eval(
        &mut f.con,
        &scripts::UPSERT_PROXY,
        refs(&keys_old),
        &refs(&args(&two, &three, "3", "1")),
    )
    .await
    .unwrap();
    assert_eq!(ints(r), vec![16, 2]);
    f.assert_sound(&pool, "after upserts").await;

    // remove_proxy: -2 when the stored JSON is not the one read, 1, then 0.
    for (expected, want) in [(&two, -2), (&three, 1), (&three, 0)] {
        let r = eval(
            &mut f.con,
            &scripts::REMOVE_PROXY,
            refs(&keys_new),
            &["a", expected],
        )
        .await
        .unwrap();
        assert_eq!(r, Value::Int(want), "{expected}");
    }
    f.assert_sound(&pool, "after remove_proxy").await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&city)
        .query_async(&mut f.con)
        .await
        .unwrap();
    assert_eq!(exists, 0, "the emptied by_value key is gone");
    let stats = f.store.pool_stats(&pool).await.unwrap();
    assert_eq!(
        (stats.total, stats.active_leases, stats.released_leases),
        (0, 0, 2)
    );
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// list_proxies pages through a pool in sequence order; a page's first
/// value is its last sequence, or 0 when no proxy follows it (header of
/// `list_proxies.lua`), whatever the page size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_proxies_pages_in_sequence_order_and_ends_with_zero() {
    let mut f = Fixture::start().await;
    let many: Vec<Proxy> = (0..2_000u32)
        .map(|i| {
            Proxy::new(
                "p",
                format!("10.1.{}.{}", i / 250, i % 250),
                1000,
                ProxyProtocol::Http,
            )
            .with_id(format!("p{i}"))
            .with_max_concurrency(1)
        })
        .collect();
    let pool = f.pool("p", &[]).await;
    add_proxies(&f.store, &many).await;
    let k = keys("p");
    let by_seq: HashMap<u64, String> = redis::cmd("HGETALL")
        .arg(&k.seq_by_id)
        .query_async::<HashMap<String, u64>>(&mut f.con)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, seq)| (seq, id))
        .collect();
    let mut all: Vec<u64> = by_seq.keys().copied().collect();
    all.sort_unstable();
    // A proxy leased, so pages carry live leases too.
    let lease = f
        .store
        .acquire(&lease_req(&pool, "w"))
        .await
        .unwrap()
        .unwrap();

    let mut wrong = Vec::new();
    for size in [layout::CHUNK, 1, 7, 999] {
        let mut seen = Vec::new();
        let mut after = 0u64;
        let mut calls = 0;
        loop {
            calls += 1;
            let page = array(invoke(&mut f.con, &queries::list_proxies(&k, after, size)).await);
            let next = u64::try_from(int(&page[0])).unwrap();
            let items = &page[1..];
            assert_eq!(items.len() % 3, 0);
            assert!(items.len() / 3 <= size, "a page over its size");
            for item in items.chunks(3) {
                let seq = u64::try_from(int(&item[0])).unwrap();
                let p: Proxy = serde_json::from_str(&text(&item[2])).unwrap();
                assert_eq!(Some(&p.id.to_string()), by_seq.get(&seq), "seq {seq}");
                let load = int(&item[1]);
                assert_eq!(load, i64::from(p.id == lease.proxy.id), "{}", p.id);
                seen.push(seq);
            }
            let last = seen.last().copied().unwrap_or(0);
            let follows = all.iter().any(|&s| s > last);
            if (next == 0) == follows || (next != 0 && next != last) {
                wrong.push(format!(
                    "size {size}: page after {after} ends at {last} and answers next {next}, \
                     though {} proxy follows",
                    if follows { "a" } else { "no" }
                ));
            }
            if next == 0 {
                break;
            }
            after = next;
            assert!(calls <= all.len() + 1, "size {size}: the pages never end");
        }
        assert_eq!(
            seen, all,
            "size {size}: every proxy once, in sequence order"
        );
    }
    // The store's own listing: every proxy, in sequence order.
    let listed = f.store.list_proxies(&pool).await.unwrap();
    let ids: Vec<String> = listed.iter().map(|p| p.id.to_string()).collect();
    let want: Vec<String> = all.iter().map(|s| by_seq[s].clone()).collect();
    assert_eq!(ids, want);
    f.assert_sound(&pool, "after paging").await;
    assert!(
        wrong.is_empty(),
        "list_proxies.lua's first value disagrees with its header:\n{}",
        wrong.join("\n")
    );
}

/// pool_snapshot reads pools of more proxies and leases than one chunk of
/// a script call, in sequence and deadline order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_reads_more_than_a_chunk_of_proxies_and_leases() {
    let f = Fixture::start().await;
    let n = 2 * layout::CHUNK + 500;
    let many: Vec<Proxy> = (0..n)
        .map(|i| {
            Proxy::new(
                "p",
                format!("10.2.{}.{}", i / 250, i % 250),
                1000,
                ProxyProtocol::Http,
            )
            .with_id(format!("p{i}"))
        })
        .collect();
    let pool = f.pool("p", &[]).await;
    add_proxies(&f.store, &many).await;
    let req = lease_req(&pool, "w");
    let leases = futures_util::future::try_join_all((0..n).map(|_| f.store.acquire(&req)))
        .await
        .unwrap();
    assert!(leases.iter().all(Option::is_some));
    let snap = f.store.pool_snapshot(&pool).await.unwrap();
    assert_eq!((snap.proxies.len(), snap.leases.len()), (n, n));
    let listed: Vec<String> = f
        .store
        .list_proxies(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id.to_string())
        .collect();
    let snapped: Vec<String> = snap.proxies.iter().map(|p| p.id.to_string()).collect();
    assert_eq!(snapped, listed, "in sequence order, as list_proxies");
    let total_load: u32 = snap.proxies.iter().map(|p| p.current_leases).sum();
    assert_eq!(total_load as usize, n);
    assert!(
        snap.leases
            .windows(2)
            .all(|w| w[0].expires_at <= w[1].expires_at),
        "in deadline order"
    );
    let found = pharox_core::invariants::check_snapshot(&snap, true);
    assert!(found.is_empty(), "{found:?}");
    f.assert_sound(&pool, "with a lease on every proxy").await;
}

/// A lease named by the reference its id carries ("token:nonce"): release,
/// renew and get_lease find its member in lease_by_token, answer the lease
/// when asked, and refuse another nonce; the entry leaves with the lease,
/// with its proxy and with its pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_references_find_their_member_and_nothing_else() {
    let mut f = Fixture::start().await;
    let proxies: Vec<Proxy> = (0..2)
        .map(|i| {
            Proxy::new("refs", format!("10.0.0.{i}"), 8080, ProxyProtocol::Http)
                .with_id(format!("px-{i}"))
                .with_max_concurrency(3)
        })
        .collect();
    let pool = f.pool("refs", &proxies).await;
    let k = keys("refs");
    let lease_keys = queries::lease_ref_keys(&k);
    let get_keys = queries::get_lease_keys(&k);
    let a = f
        .store
        .acquire(&lease_req(&pool, "c1"))
        .await
        .unwrap()
        .unwrap();
    let b = f
        .store
        .acquire(&lease_req(&pool, "c2"))
        .await
        .unwrap()
        .unwrap();
    let con = &mut f.con;
    let stored = |token: u64| redis::cmd("HGET").arg(&k.lease_by_token).arg(token).clone();
    let member_a: String = stored(a.token).query_async(con).await.unwrap();
    let parsed = layout::LeaseMember::parse(&member_a).unwrap();
    assert_eq!((parsed.token, parsed.consumer), (a.token, "c1"));
    let ref_a = queries::lease_ref(a.token, parsed.nonce);
    let wrong_nonce = queries::lease_ref(a.token, (parsed.nonce + 1) % layout::NONCE_END);
    let unknown = queries::lease_ref(b.token + 100, parsed.nonce);

    // get_lease: {now, member, deadline, proxy JSON}; {0} for another nonce
    // or an unknown token.
    let got = array(
        eval(con, &scripts::GET_LEASE, get_keys, &[&ref_a])
            .await
            .unwrap(),
    );
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(text(&got[1]), member_a);
    assert_eq!(
        text(&got[2]).parse::<i64>().unwrap(),
        a.expires_at.timestamp_millis()
    );
    let json: serde_json::Value = serde_json::from_str(&text(&got[3])).unwrap();
    assert_eq!(json["id"], "px-0");
    for r in [&wrong_nonce, &unknown] {
        assert_eq!(
            ints(
                eval(con, &scripts::GET_LEASE, get_keys, &[r])
                    .await
                    .unwrap()
            ),
            vec![0],
            "{r}"
        );
    }

    // release and renew by another nonce: not held, nothing written.
    let before = fingerprint(con).await;
    for r in [&wrong_nonce, &unknown] {
        assert_eq!(
            eval(con, &scripts::RELEASE, lease_keys, &[r])
                .await
                .unwrap(),
            Value::Int(0)
        );
        assert_eq!(
            ints(
                eval(con, &scripts::RENEW, lease_keys, &[r, "1000", "1"])
                    .await
                    .unwrap()
            ),
            vec![0]
        );
    }
    fingerprint(con)
        .await
        .assert_same(&before, "references with another nonce");

    // renew answering the lease: {now, deadline, member, proxy JSON}.
    let r = array(
        eval(con, &scripts::RENEW, lease_keys, &[&ref_a, "600000", "1"])
            .await
            .unwrap(),
    );
    assert_eq!(r.len(), 4, "{r:?}");
    let (now, deadline) = (int(&r[0]), int(&r[1]));
    assert_eq!(deadline - now, 600_000);
    assert_eq!(text(&r[2]), member_a);

    // release answering the lease: {1, member, deadline, proxy JSON}, then {0};
    // the entry is gone with the lease.
    let r = array(
        eval(con, &scripts::RELEASE, lease_keys, &[&ref_a, "1"])
            .await
            .unwrap(),
    );
    assert_eq!(r.len(), 4, "{r:?}");
    assert_eq!(int(&r[0]), 1);
    assert_eq!(text(&r[1]), member_a);
    assert_eq!(text(&r[2]).parse::<i64>().unwrap(), deadline);
    assert_eq!(
        ints(
            eval(con, &scripts::RELEASE, lease_keys, &[&ref_a, "1"])
                .await
                .unwrap()
        ),
        vec![0]
    );
    let gone: Option<String> = stored(a.token).query_async(con).await.unwrap();
    assert_eq!(gone, None);
    f.assert_sound(&pool, "after releases by reference").await;

    // The largest nonce the scripts accept names its lease.
    let top = (layout::NONCE_END - 1).to_string();
    let acq = queries::acquire_keys(&k, &Plan::All);
    let argv = crate::arguments::acquire_argv(&[], |v| v[3] = top.clone());
    let got = array(
        eval(&mut f.con, &scripts::ACQUIRE, acq, &refs(&argv))
            .await
            .unwrap(),
    );
    let at_limit = queries::lease_ref(u64::try_from(int(&got[1])).unwrap(), layout::NONCE_END - 1);
    assert_eq!(
        eval(&mut f.con, &scripts::RELEASE, lease_keys, &[&at_limit])
            .await
            .unwrap(),
        Value::Int(1)
    );
    // Removing b's proxy removes b's entry; removing the pool removes the hash.
    assert!(f.store.remove_proxy(&pool, &b.proxy.id).await.unwrap());
    let left: i64 = redis::cmd("HLEN")
        .arg(&k.lease_by_token)
        .query_async(&mut f.con)
        .await
        .unwrap();
    assert_eq!(left, 0);
    f.store
        .acquire(&lease_req(&pool, "c3"))
        .await
        .unwrap()
        .unwrap();
    f.assert_sound(&pool, "after removing a leased proxy").await;
    assert!(f.store.remove_pool(&pool).await.unwrap());
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&k.lease_by_token)
        .query_async(&mut f.con)
        .await
        .unwrap();
    assert_eq!(exists, 0, "remove_pool leaves lease_by_token behind");
}
