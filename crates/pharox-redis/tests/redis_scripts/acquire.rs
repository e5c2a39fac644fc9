//! acquire.lua's plans and positions: each plan leases the selector's
//! exact choice among the proxies that qualify; a forged position never
//! leases one that does not; a search longer than one call's budget
//! answers `{-3, position}` until it reaches its lease, granting nothing
//! and writing nothing before (walking a lazily kept index, nothing but
//! its corrections); stale entries of the lazy indexes beyond one call's
//! budget are corrected across calls, filtered or not.

use std::collections::{BTreeSet, HashMap};

use pharox_core::{Proxy, ProxyFilters, ProxyProtocol, ProxyStatus, Selector, Storage};
use pharox_redis::keys::{IndexField, PoolKeys};
use pharox_redis::layout::Slot;
use pharox_redis::queries::{self, AcquireArgs, AcquireReply, Plan};
use pharox_redis::redis::{self, Value};

use crate::support::*;

const SELECTORS: [(&str, Selector); 4] = [
    ("f", Selector::FirstAvailable),
    ("r", Selector::RoundRobin),
    ("l", Selector::LeastUsed),
    ("t", Selector::LowestLatency),
];

/// What one acquire call answered, raw.
enum Step {
    Leased { seq: u64, token: u64, now: i64 },
    None,
    Continue(String),
}

async fn step(f: &mut Fixture, k: &PoolKeys, a: &AcquireArgs<'_>) -> Step {
    match AcquireReply::decode(invoke(&mut f.con, &queries::acquire(k, a)).await).unwrap() {
        AcquireReply::Leased {
            seq, token, now_ms, ..
        } => Step::Leased {
            seq,
            token,
            now: now_ms,
        },
        AcquireReply::NoProxy => Step::None,
        AcquireReply::Continue(p) => Step::Continue(p),
        other => panic!("unexpected {other:?}"),
    }
}

/// Leases through the script directly, following positions; returns the
/// sequence and the member, or None.
async fn lease_direct(
    f: &mut Fixture,
    k: &PoolKeys,
    sel: &'static str,
    plan: &Plan,
    json: &str,
) -> Option<(u64, String)> {
    let mut position = String::new();
    for _ in 0..1_000 {
        match step(f, k, &acquire_args(sel, plan, json, &position)).await {
            Step::Leased { seq, token, now } => return Some((seq, member(seq, token, now))),
            Step::None => return None,
            Step::Continue(next) => position = next,
        }
    }
    panic!("{sel} {plan:?}: no answer in 1000 calls")
}

async fn release(f: &mut Fixture, k: &PoolKeys, member: &str) {
    let r: i64 = queries::release(k, member)
        .invoke_async(&mut f.con)
        .await
        .unwrap();
    assert_eq!(r, 1, "release {member}");
}

async fn seq_of(f: &mut Fixture, k: &PoolKeys, id: &str) -> u64 {
    redis::cmd("HGET")
        .arg(&k.seq_by_id)
        .arg(id)
        .query_async(&mut f.con)
        .await
        .unwrap()
}

/// Round robin starts again from the pool's first proxy.
async fn reset_cursor(f: &mut Fixture, k: &PoolKeys) {
    let _: Vec<i64> = redis::cmd("BITFIELD")
        .arg(&k.counters)
        .arg("SET")
        .arg("i64")
        .arg(Slot::Cursor.offset())
        .arg(0)
        .query_async(&mut f.con)
        .await
        .unwrap();
}

/// The store's plan for a geo filter (see `store::plan`).
fn geo(lat: f64, lon: f64, radius_km: f64) -> Plan {
    Plan::geo(lat, lon, radius_km)
}

fn px(id: &str, lat: f64, lon: f64, latency: u32) -> Proxy {
    Proxy::new("plans", "10.0.0.1", 1000, ProxyProtocol::Http)
        .with_id(id)
        .with_location(lat, lon)
        .with_latency_ms(latency)
        .with_max_concurrency(5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_plan_leases_the_selectors_choice_among_matches() {
    let mut f = Fixture::start().await;
    let proxies = [
        px("a", 10.0, 10.0, 50).with_country("AR").with_city("X"),
        px("b", 10.01, 10.0, 10).with_country("AR").with_city("X"),
        px("c", 10.0, 10.01, 5).with_country("US").with_city("X"),
        px("d", 89.9, 0.0, 1).with_country("AR").with_city("Y"),
        px("e", 10.0, 10.0, 0)
            .with_country("AR")
            .with_city("X")
            .with_status(ProxyStatus::Inactive),
    ];
    let pool = f.pool("plans", &proxies).await;
    let k = keys("plans");
    let city_x = k.by_value(IndexField::City, "X");

    // (filter, the store's plan for it, the choice of f, r, l, t)
    let cases: Vec<(ProxyFilters, Plan, [&str; 4])> = vec![
        (ProxyFilters::new(), Plan::All, ["a", "a", "a", "d"]),
        (
            ProxyFilters::new().city("X"),
            Plan::Exact(city_x.clone()),
            ["a", "a", "a", "c"],
        ),
        (
            ProxyFilters::new().country("ar").city("X"),
            Plan::Verify(city_x.clone()),
            ["a", "a", "a", "b"],
        ),
        (
            ProxyFilters::new().within_km(10.0, 10.0, 5.0),
            geo(10.0, 10.0, 5.0),
            ["a", "a", "a", "c"],
        ),
        (
            ProxyFilters::new()
                .within_km(10.0, 10.0, 5.0)
                .none_of([ProxyFilters::new().country("US")]),
            geo(10.0, 10.0, 5.0),
            ["a", "a", "a", "b"],
        ),
        // Beyond GEO's latitudes: found through polar_by_seq.
        (
            ProxyFilters::new().within_km(84.0, 0.0, 1000.0),
            geo(84.0, 0.0, 1000.0),
            ["d", "d", "d", "d"],
        ),
        (
            ProxyFilters::new().any_of([
                ProxyFilters::new().city("Y"),
                ProxyFilters::new().country("US"),
            ]),
            Plan::Scan,
            ["c", "c", "c", "d"],
        ),
        (
            ProxyFilters::new().city("Z"),
            Plan::Exact(k.by_value(IndexField::City, "Z")),
            ["", "", "", ""],
        ),
        (
            ProxyFilters::new()
                .country("AR")
                .none_of([ProxyFilters::new().city("X"), ProxyFilters::new().city("Y")]),
            Plan::Verify(k.by_value(IndexField::Country, "AR")),
            ["", "", "", ""],
        ),
    ];
    let mut seqs = HashMap::new();
    for id in ["a", "b", "c", "d", "e"] {
        seqs.insert(seq_of(&mut f, &k, id).await, id);
    }
    for (filter, plan, want) in &cases {
        let json = if plan.verifies() {
            serde_json::to_string(filter).unwrap()
        } else {
            String::new()
        };
        for ((sel, selector), want) in SELECTORS.iter().zip(want) {
            reset_cursor(&mut f, &k).await;
            let got = lease_direct(&mut f, &k, sel, plan, &json).await;
            let got_id = got.as_ref().map_or("", |(seq, _)| seqs[seq]);
            assert_eq!(got_id, *want, "{filter:?} {sel} direct");
            if let Some((_, m)) = got {
                release(&mut f, &k, &m).await;
            }
            // The store picks the same plan and the same proxy.
            reset_cursor(&mut f, &k).await;
            let l = f
                .store
                .acquire(
                    &lease_req(&pool, "w")
                        .filters(filter.clone())
                        .selector(*selector),
                )
                .await
                .unwrap();
            assert_eq!(
                l.as_ref().map_or("", |l| l.proxy.id.as_str()),
                *want,
                "{filter:?} {selector:?} through the store"
            );
            if let Some(l) = l {
                f.store.release(&l).await.unwrap();
            }
        }
    }
    f.assert_sound(&pool, "after the plans").await;

    // Least used and round robin move on as leases are held: a, b, then a
    // again (a tie, the lower sequence) for l; a, b, a for r. Without a
    // filter least used reads free_by_load, whose entries lag behind the
    // leases granted and are corrected as they are met: still the exact
    // choice.
    for (plan, json, want) in [
        (
            Plan::Verify(city_x.clone()),
            r#"{"country":"AR","city":"X"}"#,
            // a and b qualify.
            &["a", "b", "a"][..],
        ),
        // a, b and d.
        (
            Plan::Exact(k.by_value(IndexField::Country, "AR")),
            "",
            &["a", "b", "d"][..],
        ),
        // Every active proxy: a, b, c and d.
        (Plan::All, "", &["a", "b", "c", "d", "a", "b"][..]),
    ] {
        for sel in ["l", "r"] {
            reset_cursor(&mut f, &k).await;
            let mut held = Vec::new();
            let mut got = Vec::new();
            for _ in 0..want.len() {
                let (seq, m) = lease_direct(&mut f, &k, sel, &plan, json).await.unwrap();
                got.push(seqs[&seq]);
                held.push(m);
            }
            assert_eq!(got, want, "{plan:?} {sel}");
            f.assert_sound(&pool, &format!("{plan:?} {sel} holding {got:?}"))
                .await;
            for m in held {
                release(&mut f, &k, &m).await;
            }
        }
    }
    f.assert_sound(&pool, "after l and r").await;
}

/// With more candidates than one call judges at once, the script walks
/// the selector's own index: its first match is still the selector's
/// exact choice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_through_the_selectors_index_finds_its_exact_choice() {
    let mut f = Fixture::start().await;
    // Distinct latencies (919 is prime to 1000); every tenth proxy is
    // inactive and every seventh is in another city.
    let many: Vec<Proxy> = (0..1_200u32)
        .map(|i| {
            let mut p = Proxy::new("walk", "10.0.0.1", 1000, ProxyProtocol::Http)
                .with_id(format!("p{i}"))
                .with_country("AR")
                .with_latency_ms((i * 919) % 1000 + 1)
                .with_max_concurrency(2);
            if i % 10 == 3 {
                p = p.with_status(ProxyStatus::Inactive);
            }
            if i % 7 == 0 {
                p = p.with_city("Elsewhere");
            }
            p
        })
        .collect();
    let pool = f.pool("walk", &[]).await;
    add_proxies(&f.store, &many).await;
    let k = keys("walk");
    let filter = ProxyFilters::new()
        .country("AR")
        .none_of([ProxyFilters::new().city("Elsewhere")]);
    let plan = Plan::Verify(k.by_value(IndexField::Country, "AR"));
    let json = serde_json::to_string(&filter).unwrap();
    let qualifies = |p: &Proxy| p.status == ProxyStatus::Active && filter.matches(p);
    let mut by_id = HashMap::new();
    for p in &many {
        by_id.insert(p.id.to_string(), seq_of(&mut f, &k, p.id.as_str()).await);
    }
    let fastest = many
        .iter()
        .filter(|p| qualifies(p))
        .min_by_key(|p| p.latency_ms)
        .unwrap();
    let mut qualifying: Vec<u64> = many
        .iter()
        .filter(|p| qualifies(p))
        .map(|p| by_id[p.id.as_str()])
        .collect();
    qualifying.sort_unstable();
    let (first, second) = (qualifying[0], qualifying[1]);
    let mut steps = 0;
    let mut position = String::new();
    let seq = loop {
        steps += 1;
        match step(&mut f, &k, &acquire_args("t", &plan, &json, &position)).await {
            Step::Leased { seq, token, now } => {
                release(&mut f, &k, &member(seq, token, now)).await;
                break seq;
            }
            Step::None => panic!("no lease"),
            Step::Continue(p) => position = p,
        }
    };
    assert_eq!(
        seq,
        by_id[fastest.id.as_str()],
        "lowest latency, in {steps} calls"
    );
    let (seq, m) = lease_direct(&mut f, &k, "l", &plan, &json).await.unwrap();
    assert_eq!(seq, first, "least used: all idle, so the lowest sequence");
    // The first is now used once (its free_by_load entry lags until met):
    // least used moves to the next idle one.
    let (next, m2) = lease_direct(&mut f, &k, "l", &plan, &json).await.unwrap();
    assert_eq!(next, second, "least used after {first}");
    release(&mut f, &k, &m).await;
    release(&mut f, &k, &m2).await;
    f.assert_sound(&pool, "after walking").await;
}

/// Positions of every shape the script reads, none of them handed out by
/// it: each answer is a refusal, {0}, a continuation, or a lease of a
/// proxy that qualifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_positions_never_lease_a_proxy_that_does_not_qualify() {
    let mut f = Fixture::start().await;
    let p = |id: &str| {
        Proxy::new("forge", "10.0.0.1", 1000, ProxyProtocol::Http)
            .with_id(id)
            .with_location(10.0, 10.0)
    };
    let proxies = [
        // Qualifies.
        p("ok").with_country("AR").with_city("A"),
        // Wrong country.
        p("us").with_country("US").with_city("A"),
        // Inactive.
        p("off")
            .with_country("AR")
            .with_city("A")
            .with_status(ProxyStatus::Inactive),
        // Full.
        p("full")
            .with_country("AR")
            .with_city("A")
            .with_isp("F")
            .with_max_concurrency(1),
        // Another city.
        p("b").with_country("AR").with_city("B"),
        // No fields, elsewhere.
        Proxy::new("forge", "10.0.0.2", 1000, ProxyProtocol::Http)
            .with_id("bare")
            .with_location(-40.0, 100.0),
    ];
    let pool = f.pool("forge", &proxies).await;
    let k = keys("forge");
    // Fill "full".
    let _held = f
        .store
        .acquire(&lease_req(&pool, "w").filters(ProxyFilters::new().isp("F")))
        .await
        .unwrap()
        .expect("lease the full one");
    let ok = seq_of(&mut f, &k, "ok").await;
    let city_a = k.by_value(IndexField::City, "A");

    let filter = ProxyFilters::new().country("AR").city("A");
    let geo_filter = ProxyFilters::new()
        .within_km(10.0, 10.0, 50.0)
        .country("AR")
        .none_of([ProxyFilters::new().city("B")]);
    // (plan, filter JSON, the sequences it may lease)
    let plans: Vec<(Plan, String, BTreeSet<u64>)> = vec![
        // No filter: every active proxy with room.
        (
            Plan::All,
            String::new(),
            BTreeSet::from([
                ok,
                seq_of(&mut f, &k, "us").await,
                seq_of(&mut f, &k, "b").await,
                seq_of(&mut f, &k, "bare").await,
            ]),
        ),
        // Plan x trusts its index: every free member qualifies.
        (
            Plan::Exact(city_a.clone()),
            String::new(),
            BTreeSet::from([ok, seq_of(&mut f, &k, "us").await]),
        ),
        (
            Plan::Verify(city_a.clone()),
            serde_json::to_string(&filter).unwrap(),
            BTreeSet::from([ok]),
        ),
        (
            geo(10.0, 10.0, 50.0),
            serde_json::to_string(&geo_filter).unwrap(),
            BTreeSet::from([ok]),
        ),
        (
            Plan::Scan,
            serde_json::to_string(&filter).unwrap(),
            BTreeSet::from([ok]),
        ),
    ];
    let huge = "9".repeat(40);
    let mut positions = Vec::new();
    for src in ["-", "i", "s", "l", "t"] {
        for phase in ["1", "2"] {
            for after in ["", "0", "17", "4294967312", &huge] {
                for cursor in ["", "0", "17", &huge] {
                    for pass in ["1", "2"] {
                        positions.push(format!("{src}:{phase}:{after}:{cursor}:{pass}"));
                    }
                }
            }
        }
    }
    let mut wrong = Vec::new();
    let mut leased = 0;
    for (plan, json, allowed) in &plans {
        for (sel, _) in SELECTORS {
            for position in &positions {
                let mut pos = position.clone();
                let mut calls = 0;
                loop {
                    calls += 1;
                    let a = acquire_args(sel, plan, json, &pos);
                    let r = queries::acquire(&k, &a)
                        .invoke_async::<Value>(&mut f.con)
                        .await;
                    let r = match error_text(r) {
                        Ok(msg) => {
                            if !msg.contains("PHAROX bad argument: position") {
                                wrong.push(format!("{plan:?} {sel} {position}: {msg}"));
                            }
                            break;
                        }
                        Err(v) => AcquireReply::decode(v).unwrap(),
                    };
                    match r {
                        AcquireReply::Leased {
                            seq, token, now_ms, ..
                        } => {
                            if !allowed.contains(&seq) {
                                wrong.push(format!(
                                    "{plan:?} {sel} {position}: leased sequence {seq}"
                                ));
                            }
                            leased += 1;
                            release(&mut f, &k, &member(seq, token, now_ms)).await;
                            break;
                        }
                        AcquireReply::NoProxy => break,
                        AcquireReply::Continue(next) if calls < 50 => pos = next,
                        other => {
                            wrong.push(format!("{plan:?} {sel} {position}: {other:?}"));
                            break;
                        }
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} forged positions went wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(
        leased > 100,
        "only {leased} leases: the positions were all refused?"
    );
    f.assert_sound(&pool, "after forged positions").await;
}

/// A big pool where one proxy in thousands matches: the store's loop
/// reaches it; called directly, every call before the lease answers
/// `{-3, position}`, grants no lease and writes nothing (or, walking a
/// lazily kept index, nothing but its corrections).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_search_continues_across_calls_to_its_only_match() {
    let mut f = Fixture::start().await;
    let n = 5_000;
    let pool = f.pool("big", &[]).await;
    let proxy = |i: usize| {
        Proxy::new(
            "big",
            format!("10.{}.{}.1", i / 250, i % 250),
            1000,
            ProxyProtocol::Http,
        )
        .with_id(format!("p{i}"))
    };
    // n proxies of AR from source s0, then the only one from s1; then n - 1
    // inactive ones of isp "i", then the only active one of isp "i".
    let ar: Vec<Proxy> = (0..n - 1)
        .map(|i| proxy(i).with_country("AR").with_source("s0"))
        .collect();
    add_proxies(&f.store, &ar).await;
    let last_ar = proxy(n).with_country("AR").with_source("s1");
    f.store.upsert_proxy(&last_ar).await.unwrap();
    let dead: Vec<Proxy> = (0..n - 1)
        .map(|i| {
            proxy(n + 1 + i)
                .with_isp("i")
                .with_status(ProxyStatus::Inactive)
        })
        .collect();
    add_proxies(&f.store, &dead).await;
    let last_isp = proxy(2 * n + 1).with_isp("i");
    f.store.upsert_proxy(&last_isp).await.unwrap();
    let k = keys("big");
    let mut watch = KeyWrites::start(&mut f).await;
    let ar_seq = seq_of(&mut f, &k, last_ar.id.as_str()).await;
    let isp_seq = seq_of(&mut f, &k, last_isp.id.as_str()).await;

    // (filter, its plan, the one match)
    let cases: Vec<(ProxyFilters, Plan, &Proxy, u64)> = vec![
        // Composite: verify every free proxy.
        (
            ProxyFilters::new().any_of([
                ProxyFilters::new().source("s1").country("AR"),
                ProxyFilters::new().city("Nowhere"),
            ]),
            Plan::Scan,
            &last_ar,
            ar_seq,
        ),
        // An index of n members, verified.
        (
            ProxyFilters::new()
                .country("AR")
                .none_of([ProxyFilters::new().source("s0")]),
            Plan::Verify(k.by_value(IndexField::Country, "AR")),
            &last_ar,
            ar_seq,
        ),
        // An index of n members, n - 1 of them inactive.
        (
            ProxyFilters::new().isp("i"),
            Plan::Exact(k.by_value(IndexField::Isp, "i")),
            &last_isp,
            isp_seq,
        ),
    ];
    for (filter, plan, want, want_seq) in &cases {
        for (sel, selector) in SELECTORS {
            // The store's own loop.
            let l = f
                .store
                .acquire(
                    &lease_req(&pool, "w")
                        .filters(filter.clone())
                        .selector(selector),
                )
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{filter:?} {selector:?}: no lease"));
            assert_eq!(l.proxy.id, want.id, "{filter:?} {selector:?}");
            f.store.release(&l).await.unwrap();
            let found = f
                .store
                .find_available_proxy(&pool, filter, selector)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(found.id, want.id, "find {filter:?} {selector:?}");

            // The script directly: -3 steps that grant no lease, then the lease.
            let json = if plan.verifies() {
                serde_json::to_string(filter).unwrap()
            } else {
                String::new()
            };
            // A walk of an exact index (the candidates, for f and r with
            // plans x and v; free_by_seq for f and r with plan s) writes
            // nothing before its lease: the server's write counter stays
            // put (and, for the first step, the keyspace's digests too). A
            // walk of a lazily kept index (free_by_load for l,
            // free_by_latency for t) may correct the entries it meets, and
            // write nothing else.
            let lazy = sel == "l" || sel == "t";
            let mut position = String::new();
            let mut continued = 0;
            let seq = loop {
                let digests = if continued == 0 && !lazy {
                    Some(f.fingerprint().await)
                } else {
                    None
                };
                let lazy_before = if lazy {
                    watch.since_last(&mut f.con).await;
                    Some(f.counters(&k).await)
                } else {
                    None
                };
                let written = writes(&mut f.con).await;
                match step(&mut f, &k, &acquire_args(sel, plan, &json, &position)).await {
                    Step::Continue(next) => {
                        let what = format!("{plan:?} {sel} answering -3 at {position:?}");
                        if let Some(before) = lazy_before {
                            let written = watch.since_last(&mut f.con).await;
                            let after = f.counters(&k).await;
                            assert_only_corrections(&k, &written, &before, &after, &what);
                        } else {
                            assert_eq!(writes(&mut f.con).await, written, "{what} wrote");
                        }
                        if let Some(before) = digests {
                            before.assert_same(&f.fingerprint().await, &what);
                        }
                        continued += 1;
                        assert!(continued < 1_000, "{plan:?} {sel}: never ends");
                        position = next;
                    }
                    Step::Leased { seq, token, now } => {
                        release(&mut f, &k, &member(seq, token, now)).await;
                        break seq;
                    }
                    Step::None => panic!("{plan:?} {sel}: {{0}} after {continued} steps"),
                }
            };
            assert_eq!(seq, *want_seq, "{plan:?} {sel}");
            assert!(
                continued >= 1,
                "{plan:?} {sel}: answered in one call, so this pool tests no continuation"
            );
        }
    }
    f.assert_sound(&pool, "after the searches").await;
}

/// A filtered search that finds nothing but reclaims an expired lease
/// answers `{-3, position}` for a second pass (the reclaim is its only
/// write), which leases the reclaimed proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_that_reclaims_continues_with_a_second_pass() {
    let mut f = Fixture::start_with(|c| c.reclaim_batch(0)).await;
    let pool = f
        .pool(
            "m",
            &[
                Proxy::new("m", "10.0.0.1", 1, ProxyProtocol::Http)
                    .with_id("x")
                    .with_city("X")
                    .with_max_concurrency(1),
                Proxy::new("m", "10.0.0.2", 2, ProxyProtocol::Http)
                    .with_id("y")
                    .with_city("Y"),
            ],
        )
        .await;
    let k = keys("m");
    let short = pharox_core::AcquireRequest::new(pool.clone())
        .duration(chrono::TimeDelta::milliseconds(1))
        .filters(ProxyFilters::new().city("X"));
    let l = f.store.acquire(&short).await.unwrap().unwrap();
    assert_eq!(l.proxy.id.as_str(), "x");
    f.wait_past(l.expires_at.timestamp_millis()).await;

    let x = k.by_value(IndexField::City, "X");
    let filter = r#"{"city":"X","isp":null}"#;
    for (sel, plan, json) in [
        ("f", Plan::Exact(x.clone()), ""),
        ("r", Plan::Verify(x.clone()), filter),
        ("l", Plan::Scan, filter),
        ("t", Plan::Scan, filter),
    ] {
        let stats = f.store.pool_stats(&pool).await.unwrap();
        assert_eq!(stats.active_leases, 1, "{sel}: the expired lease is held");
        let r = step(&mut f, &k, &acquire_args(sel, &plan, json, "")).await;
        let Step::Continue(position) = r else {
            panic!("{sel} {plan:?}: expected -3 after a reclaim");
        };
        let stats = f.store.pool_stats(&pool).await.unwrap();
        assert_eq!(
            (stats.active_leases, stats.available),
            (0, 2),
            "{sel}: the -3 step reclaimed"
        );
        f.assert_sound(&pool, "after the reclaiming step").await;
        let Step::Leased { seq, token, now } =
            step(&mut f, &k, &acquire_args(sel, &plan, json, &position)).await
        else {
            panic!("{sel} {plan:?}: the second pass leases nothing");
        };
        assert_eq!(seq, seq_of(&mut f, &k, "x").await);
        // Expire it again for the next selector (its member is gone after).
        let m = member(seq, token, now);
        release(&mut f, &k, &m).await;
        let l = f.store.acquire(&short).await.unwrap().unwrap();
        f.wait_past(l.expires_at.timestamp_millis()).await;
    }
}

/// Least used and lowest latency read lazily kept indexes: a proxy that
/// became full stays in `free_by_load` and `free_by_latency` until a search
/// meets it. With more such entries ahead of the only free proxy than one
/// call may correct, the unfiltered search answers `{-3, position}` (the
/// budget of `acquire.lua`'s header) and a filtered walk of the same index
/// corrects them as it goes: every such step grants no lease and writes
/// nothing but index corrections, each leaves the pool sound and the index
/// shorter, and the search ends leasing the free proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_lazy_entries_beyond_one_calls_budget_are_corrected_across_calls() {
    let mut f = Fixture::start().await;
    // Over twice the corrections one unfiltered call makes (STEP_UNITS / 4).
    let n = 1_100u32;
    let full: Vec<Proxy> = (0..n)
        .map(|i| {
            Proxy::new("lazy", "10.0.0.1", 1000, ProxyProtocol::Http)
                .with_id(format!("p{i}"))
                .with_latency_ms(i + 1)
                .with_max_concurrency(1)
        })
        .collect();
    let pool = f.pool("lazy", &[]).await;
    add_proxies(&f.store, &full).await;
    // The only one left free: the last sequence and the highest latency,
    // so every stale entry comes before it in both indexes.
    let free = Proxy::new("lazy", "10.0.0.2", 1000, ProxyProtocol::Http)
        .with_id("free")
        .with_city("F")
        .with_latency_ms(5_000)
        .with_max_concurrency(1);
    f.store.upsert_proxy(&free).await.unwrap();
    let k = keys("lazy");
    let free_seq = seq_of(&mut f, &k, "free").await;
    let city_f = serde_json::to_string(&ProxyFilters::new().city("F")).unwrap();
    let mut watch = KeyWrites::start(&mut f).await;

    let mut held = Vec::new();
    for (sel, plan, json) in [
        ("l", Plan::All, ""),
        ("t", Plan::All, ""),
        ("l", Plan::Scan, city_f.as_str()),
        ("t", Plan::Scan, city_f.as_str()),
    ] {
        // Fill every other proxy through first available (free_by_seq):
        // their entries in the lazy indexes stay, stale.
        for l in held.drain(..) {
            f.store.release(&l).await.unwrap();
        }
        let req = lease_req(&pool, "w").selector(Selector::FirstAvailable);
        for _ in 0..n / 50 {
            let got = futures_util::future::try_join_all((0..50).map(|_| f.store.acquire(&req)))
                .await
                .unwrap();
            held.extend(got.into_iter().map(|l| l.expect("a free proxy")));
        }
        assert!(held.iter().all(|l| l.proxy.id.as_str() != "free"));
        let index = if sel == "l" {
            &k.free_by_load
        } else {
            &k.free_by_latency
        };
        assert_eq!(
            zcard(&mut f.con, index).await,
            u64::from(n) + 1,
            "{sel}: stale"
        );
        f.assert_sound(&pool, &format!("{sel} {plan:?} with stale entries"))
            .await;

        let mut position = String::new();
        let mut continued = 0;
        let mut left = zcard(&mut f.con, index).await;
        let seq = loop {
            watch.since_last(&mut f.con).await;
            let before = f.counters(&k).await;
            match step(&mut f, &k, &acquire_args(sel, &plan, json, &position)).await {
                Step::Continue(next) => {
                    let what = format!("{sel} {plan:?} answering -3 at {position:?}");
                    let written = watch.since_last(&mut f.con).await;
                    let after = f.counters(&k).await;
                    assert_only_corrections(&k, &written, &before, &after, &what);
                    f.assert_sound(&pool, &what).await;
                    let now = zcard(&mut f.con, index).await;
                    assert!(now < left, "{what}: corrected nothing ({now} entries)");
                    left = now;
                    continued += 1;
                    assert!(continued < 100, "{sel} {plan:?}: never ends");
                    position = next;
                }
                Step::Leased { seq, token, now } => {
                    release(&mut f, &k, &member(seq, token, now)).await;
                    break seq;
                }
                Step::None => panic!("{sel} {plan:?}: {{0}} after {continued} steps"),
            }
        };
        assert_eq!(seq, free_seq, "{sel} {plan:?}");
        assert!(
            continued >= 1,
            "{sel} {plan:?}: {n} stale entries corrected in one call"
        );
        f.assert_sound(&pool, &format!("{sel} {plan:?} after the lease"))
            .await;
    }
}
