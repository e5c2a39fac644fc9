//! Hostile input beyond the contract suite's typed-error cases:
//!
//! - property tests: on random pools and random (nested) filters, every
//!   acquire of the Redis adapter leases exactly the proxy a model picks
//!   with the core reference evaluator [`ProxyFilters::matches`] and the
//!   selector's rule (README: "What each selector guarantees under a
//!   filter"), until every matching proxy is full; the in-memory store is
//!   held to the same property (the model is in `filter_model/`, shared
//!   with the PostgreSQL store's tests);
//! - malformed data planted directly in Redis keys (bad JSON, wrong key
//!   types, broken lease members, absurd counters) gives errors, never a
//!   panic, on every call;
//! - text that cannot become a proxy (unknown protocol, port 65536 or 0)
//!   is refused when parsed.
//!
//! `PROPTEST_CASES` raises the number of random cases (default 48 per store).
//!
//! [`ProxyFilters::matches`]: pharox_core::ProxyFilters::matches

mod filter_model;

use chrono::TimeDelta;
use filter_model::{run_property, runtime};
use pharox_core::testkit::Harness;
use pharox_core::{
    AcquireRequest, Error, HealthCheckResult, InMemoryStorage, PoolId, Proxy, ProxyFilters,
    ProxyId, ProxyPool, ProxyProtocol, ProxyStatus, Selector, Storage,
};
use pharox_redis::RedisStorage;
use pharox_redis::keys::PoolKeys;
use pharox_redis::redis;
use pharox_redis::testkit::RedisHarness;

#[test]
fn redis_filtering_agrees_with_the_reference_evaluator() {
    let rt = runtime();
    let h = rt.block_on(RedisHarness::start());
    run_property("redis", &rt, h.storage().clone());
}

#[test]
fn memory_filtering_agrees_with_the_reference_evaluator() {
    run_property("memory", &runtime(), InMemoryStorage::new());
}

/// One call of every kind on `pool`; each must answer (Ok or Err), never
/// panic. Returns the errors, by call.
async fn every_call(s: &RedisStorage, pool: &PoolId) -> Vec<(&'static str, Error)> {
    let mut errors = Vec::new();
    let req = AcquireRequest::new(pool.clone());
    let id = ProxyId::from("p0");
    macro_rules! call {
        ($name:literal, $e:expr) => {{
            let s = s.clone();
            let pool = pool.clone();
            let (req, id) = (req.clone(), id.clone());
            let joined = tokio::spawn(async move {
                let _ = (&pool, &req, &id);
                $e(s, pool, req, id).await
            })
            .await;
            match joined {
                Ok(Err(e)) => errors.push(($name, e)),
                Ok(Ok(())) => {}
                Err(panic) => panic!("{} panicked on planted data: {panic:?}", $name),
            }
        }};
    }
    call!(
        "get_proxy",
        |s: RedisStorage, p: PoolId, _r, i: ProxyId| async move { s.get_proxy(&p, &i).await.map(drop) }
    );
    call!(
        "list_proxies",
        |s: RedisStorage, p: PoolId, _r, _i| async move { s.list_proxies(&p).await.map(drop) }
    );
    call!(
        "pool_stats",
        |s: RedisStorage, p: PoolId, _r, _i| async move { s.pool_stats(&p).await.map(drop) }
    );
    call!(
        "pool_snapshot",
        |s: RedisStorage, p: PoolId, _r, _i| async move { s.pool_snapshot(&p).await.map(drop) }
    );
    call!(
        "cleanup_expired",
        |s: RedisStorage, p: PoolId, _r, _i| async move { s.cleanup_expired(&p, 100).await.map(drop) }
    );
    call!(
        "acquire",
        |s: RedisStorage, _p, r: AcquireRequest, _i| async move {
            let l = s.acquire(&r).await?;
            if let Some(l) = l {
                s.renew(&l, TimeDelta::seconds(30)).await?;
                s.release(&l).await?;
            }
            Ok::<_, Error>(())
        }
    );
    call!(
        "find_available_proxy",
        |s: RedisStorage, p: PoolId, _r, _i| async move {
            s.find_available_proxy(&p, &ProxyFilters::new().country("US"), Selector::LeastUsed)
                .await
                .map(drop)
        }
    );
    call!(
        "acquire_lowest_latency",
        |s: RedisStorage, _p, r: AcquireRequest, _i| async move {
            s.acquire(&r.selector(Selector::LowestLatency))
                .await
                .map(drop)
        }
    );
    call!(
        "health",
        |s: RedisStorage, p: PoolId, _r, i: ProxyId| async move {
            let r = HealthCheckResult::new(p, i, ProxyStatus::Active, chrono::Utc::now());
            s.apply_health_check_result(&r).await.map(drop)
        }
    );
    call!(
        "upsert_proxy",
        |s: RedisStorage, p: PoolId, _r, _i| async move {
            let px = Proxy::new(p, "10.8.0.9", 9009, ProxyProtocol::Http).with_id("fresh");
            s.upsert_proxy(&px).await.map(drop)
        }
    );
    call!("list_pools", |s: RedisStorage, _p, _r, _i| async move {
        s.list_pools().await.map(drop)
    });
    call!("remove_proxy", |s: RedisStorage,
                           p: PoolId,
                           _r,
                           i: ProxyId| async move {
        s.remove_proxy(&p, &i).await.map(drop)
    });
    call!(
        "remove_pool",
        |s: RedisStorage, p: PoolId, _r, _i| async move { s.remove_pool(&p).await.map(drop) }
    );
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_data_planted_in_redis_gives_errors_not_panics() {
    let h = RedisHarness::start().await;
    let s = h.storage().clone();
    let prefix = s.config().prefix.clone();
    type Plant = fn(&PoolKeys) -> Vec<redis::Cmd>;
    let plants: Vec<(&str, Plant, &[&str])> = vec![
        (
            "proxy JSON that is not JSON",
            |k| {
                vec![
                    redis::cmd("HSET")
                        .arg(&k.proxy_by_seq)
                        .arg(16)
                        .arg("{not json")
                        .clone(),
                ]
            },
            &["get_proxy", "list_proxies", "pool_snapshot"],
        ),
        (
            "proxy JSON of the wrong shape",
            |k| {
                vec![
                    redis::cmd("HSET")
                        .arg(&k.proxy_by_seq)
                        .arg(16)
                        .arg("{\"id\":5,\"port\":\"x\"}")
                        .clone(),
                ]
            },
            &["get_proxy", "list_proxies"],
        ),
        (
            "a 1 MB proxy value",
            |k| {
                vec![
                    redis::cmd("HSET")
                        .arg(&k.proxy_by_seq)
                        .arg(16)
                        .arg("x".repeat(1 << 20))
                        .clone(),
                ]
            },
            &["get_proxy"],
        ),
        (
            "counters key of the wrong type",
            |k| {
                vec![
                    redis::cmd("DEL").arg(&k.counters).clone(),
                    redis::cmd("HSET")
                        .arg(&k.counters)
                        .arg("x")
                        .arg("y")
                        .clone(),
                ]
            },
            &["acquire", "pool_stats", "pool_snapshot"],
        ),
        (
            "lease index of the wrong type",
            |k| {
                vec![
                    redis::cmd("DEL").arg(&k.leases_by_deadline).clone(),
                    redis::cmd("SET")
                        .arg(&k.leases_by_deadline)
                        .arg("oops")
                        .clone(),
                ]
            },
            &["pool_snapshot", "cleanup_expired"],
        ),
        (
            "lease member without fields, long expired",
            |k| {
                vec![
                    redis::cmd("ZADD")
                        .arg(&k.leases_by_deadline)
                        .arg(1)
                        .arg("garbage")
                        .clone(),
                ]
            },
            &["pool_snapshot"],
        ),
        (
            "lease member with a non-numeric token",
            |k| {
                vec![
                    redis::cmd("ZADD")
                        .arg(&k.leases_by_deadline)
                        .arg("+inf")
                        .arg("16:abc:1:2:w")
                        .clone(),
                ]
            },
            &["pool_snapshot"],
        ),
        (
            "proxy id pointing at no proxy",
            |k| {
                vec![
                    redis::cmd("HSET")
                        .arg(&k.seq_by_id)
                        .arg("p0")
                        .arg(999)
                        .clone(),
                ]
            },
            &[],
        ),
        (
            "a proxy word with every bit set",
            |k| {
                vec![
                    redis::cmd("BITFIELD")
                        .arg(&k.counters)
                        .arg("SET")
                        .arg("i64")
                        .arg("#16")
                        .arg(-1)
                        .clone(),
                ]
            },
            &[],
        ),
    ];
    let mut report = Vec::new();
    for (i, (what, plant, must_fail)) in plants.into_iter().enumerate() {
        let pool = PoolId::from(format!("planted-{i}"));
        s.upsert_pool(&ProxyPool::new(pool.clone())).await.unwrap();
        for j in 0..2u16 {
            let p = Proxy::new(
                pool.clone(),
                format!("10.6.0.{}", j + 1),
                6000 + j,
                ProxyProtocol::Http,
            )
            .with_id(format!("p{j}"))
            .with_country("US");
            s.upsert_proxy(&p).await.unwrap();
        }
        let k = PoolKeys::new(&prefix, &pool);
        for c in plant(&k) {
            s.raw_command::<redis::Value>(&c).await.unwrap();
        }
        let errors = every_call(&s, &pool).await;
        for name in must_fail {
            assert!(
                errors.iter().any(|(n, _)| n == name),
                "{what}: {name} should fail, errors were {errors:?}"
            );
        }
        for (name, e) in &errors {
            assert!(
                matches!(
                    e,
                    Error::Corrupt(_)
                        | Error::Backend { .. }
                        | Error::PoolNotFound(_)
                        | Error::InvalidInput { .. }
                ),
                "{what}: {name} gave an unexpected kind of error: {e:?}"
            );
        }
        report.push(format!("{what}: {} calls failed", errors.len()));
    }
    println!("{}", report.join("\n"));
    // The other pools on the server are unharmed.
    let clean = PoolId::from("clean");
    s.upsert_pool(&ProxyPool::new(clean.clone())).await.unwrap();
    s.upsert_proxy(&Proxy::new(clean.clone(), "10.6.1.1", 6100, ProxyProtocol::Http).with_id("c"))
        .await
        .unwrap();
    assert!(
        s.acquire(&AcquireRequest::new(clean))
            .await
            .unwrap()
            .is_some()
    );
}

#[test]
fn text_that_cannot_be_a_proxy_is_refused_when_parsed() {
    for bad in ["ftp", "", "HTTP ", "socks6", "http\0"] {
        assert!(bad.parse::<ProxyProtocol>().is_err(), "{bad:?}");
    }
    for ok in ["http", "https", "socks4", "socks5"] {
        assert!(ok.parse::<ProxyProtocol>().is_ok(), "{ok:?}");
    }
    let json = |port: &str, protocol: &str| {
        format!(
            r#"{{"id":"p","pool":"x","host":"10.0.0.1","port":{port},"protocol":"{protocol}"}}"#
        )
    };
    assert!(serde_json::from_str::<Proxy>(&json("8080", "http")).is_ok());
    for (port, protocol) in [
        ("65536", "http"),
        ("-1", "http"),
        ("1e3", "http"),
        ("8080", "ftp"),
    ] {
        assert!(
            serde_json::from_str::<Proxy>(&json(port, protocol)).is_err(),
            "port {port}, protocol {protocol}"
        );
    }
    // Port 0 parses (it is a u16) but no store accepts it.
    let zero: Proxy = serde_json::from_str(&json("0", "http")).unwrap();
    assert!(matches!(
        pharox_core::validate::proxy(&zero),
        Err(Error::InvalidInput {
            field: "proxy.port",
            ..
        })
    ));
}
