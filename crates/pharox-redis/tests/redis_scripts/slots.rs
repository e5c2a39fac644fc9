//! Cluster slots and hostile pool ids: every script call the store makes
//! (seen through `MONITOR`) names keys of one slot, all of its pool; pools
//! whose ids look alike neither collide nor leak into each other.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use pharox_core::{
    ConsumerName, Error, HealthCheckResult, LeaseRef, PoolId, Proxy, ProxyFilters, ProxyId,
    ProxyPool, ProxyProtocol, ProxyStatus, ReleaseOutcome, Selector, Storage,
};
use pharox_redis::keys::{PoolKeys, cluster_slot};
use pharox_redis::redis;
use pharox_redis::scripts;

use crate::support::*;

const SENTINEL: &str = "pharox-monitor-sentinel";

/// Undoes the quoting of one MONITOR argument (sdscatrepr): `\\`, `\"`,
/// `\n`, `\r`, `\t`, `\a`, `\b` and `\xNN`.
fn monitor_args(line: &str) -> Vec<Vec<u8>> {
    let body = match line.find("] ") {
        Some(i) => &line[i + 2..],
        None => return Vec::new(),
    };
    let bytes = body.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        i += 1;
        let mut arg = Vec::new();
        while i < bytes.len() && bytes[i] != b'"' {
            if bytes[i] == b'\\' && i + 1 < bytes.len() {
                let c = bytes[i + 1];
                i += 2;
                match c {
                    b'n' => arg.push(b'\n'),
                    b'r' => arg.push(b'\r'),
                    b't' => arg.push(b'\t'),
                    b'a' => arg.push(7),
                    b'b' => arg.push(8),
                    b'x' => {
                        let hex = std::str::from_utf8(&bytes[i..i + 2]).expect("hex escape");
                        arg.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                        i += 2;
                    }
                    other => arg.push(other),
                }
            } else {
                arg.push(bytes[i]);
                i += 1;
            }
        }
        i += 1;
        out.push(arg);
    }
    out
}

/// Starts MONITOR on its own connection and collects its lines on a thread
/// until the sentinel `ECHO` shows up.
fn monitor(port: u16) -> std::thread::JoinHandle<Vec<String>> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect for MONITOR");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"MONITOR\r\n").unwrap();
    let mut reader = BufReader::new(s);
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert_eq!(first, "+OK\r\n");
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        loop {
            let mut buf = Vec::new();
            let n = reader
                .read_until(b'\n', &mut buf)
                .expect("MONITOR line (did the sentinel never come?)");
            assert!(n > 0, "MONITOR connection closed");
            let line = String::from_utf8(buf).expect("MONITOR output is ASCII");
            let done = line.contains(SENTINEL);
            lines.push(line.trim_end().to_owned());
            if done {
                return lines;
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_script_call_names_keys_of_one_slot() {
    // The MONITOR parser itself first: quotes, backslashes, \xNN, \n.
    let sample = r#"1.000001 [0 127.0.0.1:5] "EVALSHA" "ab" "1" "k:{a\"b\\c}:\xc3\xbc\n""#;
    let parsed = monitor_args(sample);
    assert_eq!(parsed.len(), 4);
    assert_eq!(parsed[3], "k:{a\"b\\c}:ü\n".as_bytes());

    let mut f = Fixture::start().await;
    let store = f.store.clone();
    let watcher = monitor(f.server.port());

    let id = "a{b}:c ü";
    let pool = PoolId::from(id);
    let consumer = ConsumerName::from("wörker:1");

    // Consumers and pools.
    let c = store.ensure_consumer(&consumer).await.unwrap();
    assert_eq!(store.ensure_consumer(&consumer).await.unwrap().id, c.id);
    assert_eq!(store.list_consumers().await.unwrap().len(), 1);
    store
        .upsert_pool(&ProxyPool::new(pool.clone()).with_description("hostile"))
        .await
        .unwrap();
    assert_eq!(
        store
            .get_pool(&pool)
            .await
            .unwrap()
            .unwrap()
            .description
            .as_deref(),
        Some("hostile")
    );
    assert_eq!(store.list_pools().await.unwrap().len(), 1);

    // Proxies: indexed fields, GEO, a polar one, a bare one.
    let ba = Proxy::new(pool.clone(), "10.0.0.1", 8001, ProxyProtocol::Http)
        .with_id("ba")
        .with_country("AR")
        .with_city("Buenos Aires")
        .with_source("s1")
        .with_isp("isp{1}")
        .with_asn(100)
        .with_location(-34.60, -58.38)
        .with_latency_ms(20)
        .with_max_concurrency(10);
    let ny = Proxy::new(pool.clone(), "10.0.0.2", 8002, ProxyProtocol::Socks5)
        .with_id("ny")
        .with_country("US")
        .with_city("New York")
        .with_source("s2")
        .with_location(40.71, -74.0)
        .with_latency_ms(50);
    let polar = Proxy::new(pool.clone(), "10.0.0.3", 8003, ProxyProtocol::Https)
        .with_id("polar")
        .with_country("AR")
        .with_city("Córdoba")
        .with_location(89.5, 10.0);
    let bare = Proxy::new(pool.clone(), "10.0.0.4", 8004, ProxyProtocol::Http).with_id("bare");
    for p in [&ba, &ny, &polar, &bare] {
        store.upsert_proxy(p).await.unwrap();
    }
    // An update moves "ba" between ix keys (old keys passed too).
    let ba = ba.with_city("La Plata");
    store.upsert_proxy(&ba).await.unwrap();
    let got = store
        .get_proxy(&pool, &ProxyId::from("ba"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.city.as_deref(), Some("La Plata"));
    assert_eq!(store.list_proxies(&pool).await.unwrap().len(), 4);

    // find_available_proxy with every selector.
    for sel in Selector::ALL {
        let p = store
            .find_available_proxy(&pool, &ProxyFilters::new().country("us"), sel)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{sel:?} finds ny"));
        assert_eq!(p.id.as_str(), "ny");
    }

    // Unfiltered acquires with every selector.
    let mut leases = Vec::new();
    for sel in Selector::ALL {
        let l = store
            .acquire(&lease_req(&pool, consumer.as_str()).selector(sel))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{sel:?} leases"));
        leases.push(l);
    }
    // Lowest latency is "ba" (20 ms); first available is "ba" (added first).
    assert_eq!(leases[0].proxy.id.as_str(), "ba");
    assert_eq!(leases[3].proxy.id.as_str(), "ba");

    // Filtered acquires, one per candidate plan, with what each must return.
    let filtered: Vec<(ProxyFilters, &[&str])> = vec![
        // exact: one indexed field
        (ProxyFilters::new().country("ar"), &["ba", "polar"]),
        (ProxyFilters::new().asn(100), &["ba"]),
        (ProxyFilters::new().isp("isp{1}"), &["ba"]),
        // verify: an index plus more
        (
            ProxyFilters::new().country("AR").city("Córdoba"),
            &["polar"],
        ),
        // geo radius (GEO set)
        (ProxyFilters::new().within_km(-34.92, -57.95, 60.0), &["ba"]),
        // geo beyond GEO's latitudes: scanned
        (ProxyFilters::new().within_km(89.0, 0.0, 200.0), &["polar"]),
        // composite: scanned
        (
            ProxyFilters::new().any_of([
                ProxyFilters::new().country("US"),
                ProxyFilters::new().city("Córdoba"),
            ]),
            &["ny", "polar"],
        ),
        (
            ProxyFilters::new().none_of([
                ProxyFilters::new().source("s1"),
                ProxyFilters::new().country("AR"),
            ]),
            &["ny", "bare"],
        ),
    ];
    for (f, allowed) in &filtered {
        for sel in Selector::ALL {
            let l = store
                .acquire(
                    &lease_req(&pool, consumer.as_str())
                        .selector(sel)
                        .filters(f.clone()),
                )
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{f:?} {sel:?} leases"));
            assert!(
                allowed.contains(&l.proxy.id.as_str()),
                "{f:?} {sel:?} leased {}",
                l.proxy.id
            );
            store.release(&l).await.unwrap();
        }
    }
    // Nothing matches: None.
    assert!(
        store
            .acquire(&lease_req(&pool, consumer.as_str()).filters(ProxyFilters::new().city("Lima")))
            .await
            .unwrap()
            .is_none()
    );

    // get_lease, renew and release by reference, renew, release.
    let by_id = LeaseRef::new(pool.clone(), leases[2].id);
    assert!(
        store
            .get_lease(&pool, &leases[2].id)
            .await
            .unwrap()
            .is_some()
    );
    store
        .renew_by_ref(&by_id, TimeDelta::hours(1))
        .await
        .unwrap();
    let (_, outcome) = store.release_by_ref(&by_id).await.unwrap().unwrap();
    assert_eq!(outcome, ReleaseOutcome::Released);
    let renewed = store.renew(&leases[1], TimeDelta::hours(2)).await.unwrap();
    assert!(renewed.expires_at > leases[1].expires_at);
    assert_eq!(
        store.release(&leases[1]).await.unwrap(),
        ReleaseOutcome::Released
    );
    assert_eq!(
        store.release(&leases[1]).await.unwrap(),
        ReleaseOutcome::NotHeld
    );

    // An expired lease, reclaimed by cleanup_expired.
    let short = store
        .acquire(&lease_req(&pool, consumer.as_str()).duration(TimeDelta::milliseconds(1)))
        .await
        .unwrap()
        .unwrap();
    f.wait_past(short.expires_at.timestamp_millis()).await;
    assert_eq!(store.cleanup_expired(&pool, 100).await.unwrap(), 1);
    assert_eq!(
        store.release(&short).await.unwrap(),
        ReleaseOutcome::NotHeld
    );

    let stats = store.pool_stats(&pool).await.unwrap();
    assert_eq!((stats.total, stats.active_leases), (4, 2));
    let snap = store.pool_snapshot(&pool).await.unwrap();
    assert_eq!((snap.proxies.len(), snap.leases.len()), (4, 2));
    assert_eq!(snap.pool.id, pool);

    // Health: "bare" goes inactive and is no longer leased.
    let h = store
        .apply_health_check_result(
            &HealthCheckResult::new(pool.clone(), "bare", ProxyStatus::Inactive, Utc::now())
                .with_latency_ms(900),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((h.status, h.latency_ms), (ProxyStatus::Inactive, Some(900)));
    assert!(
        store
            .acquire(
                &lease_req(&pool, consumer.as_str()).filters(ProxyFilters::new().none_of([
                    ProxyFilters::new().source("s1"),
                    ProxyFilters::new().country("AR"),
                    ProxyFilters::new().country("US"),
                ]))
            )
            .await
            .unwrap()
            .is_none(),
        "an inactive proxy was leased"
    );

    store
        .wait_for_capacity(&pool, Duration::from_millis(1))
        .await;
    assert!(
        store
            .remove_proxy(&pool, &ProxyId::from("ny"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_proxy(&pool, &ProxyId::from("ny"))
            .await
            .unwrap()
    );
    f.assert_sound(&pool, "after every kind of call").await;
    assert!(store.remove_pool(&pool).await.unwrap());
    assert!(!store.remove_pool(&pool).await.unwrap());
    assert!(matches!(
        store.pool_stats(&pool).await,
        Err(Error::PoolNotFound(_))
    ));

    let _: String = store
        .raw_command(redis::cmd("ECHO").arg(SENTINEL))
        .await
        .unwrap();
    let lines = watcher.join().expect("MONITOR thread");

    let keys = PoolKeys::new(PREFIX, &pool);
    let slot = cluster_slot(keys.counters.as_bytes());
    let tag_start = format!("{PREFIX}:{{a%7Bb%7D:c ü}}:");
    let mut shas = HashSet::new();
    let mut calls = 0;
    let mut saw_counters = false;
    for line in &lines {
        let args = monitor_args(line);
        let Some(cmd) = args.first() else { continue };
        let is_evalsha = cmd.eq_ignore_ascii_case(b"EVALSHA");
        if !(is_evalsha || cmd.eq_ignore_ascii_case(b"EVAL")) {
            continue;
        }
        // Only calls from the store's own connection (not nested script calls).
        assert!(!line.contains("[0 lua]"), "{line}");
        calls += 1;
        if is_evalsha {
            shas.insert(String::from_utf8(args[1].clone()).unwrap());
        }
        let n: usize = std::str::from_utf8(&args[2]).unwrap().parse().unwrap();
        assert!(n >= 1 && args.len() >= 3 + n, "{line}");
        let call_keys = &args[3..3 + n];
        let first = cluster_slot(&call_keys[0]);
        for key in call_keys {
            assert_eq!(
                cluster_slot(key),
                first,
                "keys of one call in two slots: {line}"
            );
            assert_eq!(
                cluster_slot(key),
                slot,
                "a key outside the pool's slot: {line}"
            );
            assert!(
                key.starts_with(tag_start.as_bytes()),
                "a key outside the pool: {}",
                String::from_utf8_lossy(key)
            );
            saw_counters |= key.as_slice() == keys.counters.as_bytes();
        }
    }
    assert!(
        saw_counters,
        "the decoded keys never matched the pool's counters key"
    );
    assert!(calls >= 50, "only {calls} script calls seen");
    assert!(
        shas.len() >= 10,
        "only {} distinct scripts seen",
        shas.len()
    );
    let expected: HashSet<String> = scripts::all()
        .iter()
        .map(|(_, s)| s.get_hash().to_owned())
        .collect();
    for (name, s) in scripts::all() {
        assert!(
            shas.contains(s.get_hash()),
            "{name} was never called by EVALSHA"
        );
    }
    assert!(
        shas.is_subset(&expected),
        "unknown scripts called: {:?}",
        shas.difference(&expected).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_pool_ids_stay_apart() {
    let f = Fixture::start().await;
    let store = &f.store;
    let long = "x".repeat(128);
    let ids: Vec<&str> = vec!["a}", "a%7D", "{a}", "a:counters", "a}:counters", "ü", &long];
    for (i, id) in ids.iter().enumerate() {
        store.upsert_pool(&ProxyPool::new(*id)).await.unwrap();
        let host = format!("10.1.0.{}", i + 1);
        store
            .upsert_proxy(
                &Proxy::new(*id, host, 9000 + i as u16, ProxyProtocol::Http)
                    .with_id(format!("proxy-{i}"))
                    .with_max_concurrency(1),
            )
            .await
            .unwrap();
    }
    for (i, id) in ids.iter().enumerate() {
        let pool = PoolId::from(*id);
        let stats = store.pool_stats(&pool).await.unwrap();
        assert_eq!(
            (
                stats.total,
                stats.active,
                stats.available,
                stats.active_leases
            ),
            (1, 1, 1, 0),
            "{id:?}"
        );
        let proxies = store.list_proxies(&pool).await.unwrap();
        assert_eq!(proxies.len(), 1, "{id:?}");
        assert_eq!(proxies[0].id.as_str(), format!("proxy-{i}"));
    }
    for (i, id) in ids.iter().enumerate() {
        let pool = PoolId::from(*id);
        let lease = store
            .acquire(&lease_req(&pool, "w"))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id:?} leases its own proxy"));
        assert_eq!(lease.pool, pool);
        assert_eq!(lease.proxy.id.as_str(), format!("proxy-{i}"), "{id:?}");
        assert_eq!(lease.proxy.host, format!("10.1.0.{}", i + 1), "{id:?}");
        // Its only proxy is taken: nothing of another pool may be leased.
        assert!(
            store
                .acquire(&lease_req(&pool, "w"))
                .await
                .unwrap()
                .is_none(),
            "{id:?} leased a second proxy"
        );
    }
    for id in &ids {
        let stats = store.pool_stats(&PoolId::from(*id)).await.unwrap();
        assert_eq!(
            (
                stats.total,
                stats.active,
                stats.available,
                stats.leased,
                stats.active_leases,
                stats.total_leases
            ),
            (1, 1, 0, 1, 1, 1),
            "{id:?}"
        );
    }
    // Removing "a}" leaves its look-alike "a%7D" (and the rest) untouched.
    assert!(store.remove_pool(&PoolId::from("a}")).await.unwrap());
    for id in &ids[1..] {
        let pool = PoolId::from(*id);
        let stats = store.pool_stats(&pool).await.unwrap();
        assert_eq!((stats.total, stats.active_leases), (1, 1), "{id:?}");
        f.assert_sound(&pool, "beside a removed look-alike").await;
    }

    let too_long = "y".repeat(129);
    for bad in [too_long.as_str(), ""] {
        let pool = PoolId::from(bad);
        let invalid = |r: Result<(), Error>| {
            assert!(
                matches!(r, Err(Error::InvalidInput { field: "pool", .. })),
                "{} bytes: {r:?}",
                bad.len()
            );
        };
        invalid(store.upsert_pool(&ProxyPool::new(bad)).await.map(|_| ()));
        invalid(
            store
                .upsert_proxy(&Proxy::new(bad, "10.2.0.1", 1, ProxyProtocol::Http))
                .await
                .map(|_| ()),
        );
        invalid(store.acquire(&lease_req(&pool, "w")).await.map(|_| ()));
        invalid(store.pool_stats(&pool).await.map(|_| ()));
        invalid(store.pool_snapshot(&pool).await.map(|_| ()));
        invalid(store.cleanup_expired(&pool, 10).await.map(|_| ()));
        invalid(store.list_proxies(&pool).await.map(|_| ()));
        invalid(store.remove_pool(&pool).await.map(|_| ()));
    }
    // Nothing was created for them.
    let pools = store.list_pools().await.unwrap();
    assert_eq!(pools.len(), ids.len() - 1);
}
