//! How long the largest requests pharox accepts hold Redis: each case runs
//! on a private `redis-server` with every command logged (`SLOWLOG`, no
//! threshold), and the table gives, per case, the script calls and
//! transactions it took (Redis runs each as one), the longest one and
//! their sum, in Redis's own milliseconds; plain commands outside them take
//! microseconds.
//! These are the figures of RELIABILITY.md's "Limits" section.
//!
//! ```sh
//! cargo run --release --example redis_worst_case            # 100,000 proxies
//! cargo run --release --example redis_worst_case -- 1000000 # the pool limit
//! ```

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use futures_util::{StreamExt, stream};
use pharox::redis::{RedisConfig, RedisStorage, redis};
use pharox_core::filter::{MAX_FILTER_DEPTH, MAX_FILTER_VALUE_LEN};

/// The most filter objects `pharox_core::validate` accepts.
const MAX_FILTER_NODES: usize = pharox_redis::layout::FILTER_NODES;
use pharox_core::{
    AcquireRequest, Lease, PoolId, Proxy, ProxyFilters, ProxyPool, ProxyProtocol, Selector, Storage,
};
use pharox_redis::testkit::RedisServer;

const SELECTORS: [Selector; 4] = [
    Selector::FirstAvailable,
    Selector::RoundRobin,
    Selector::LeastUsed,
    Selector::LowestLatency,
];

/// Redis's own time for the script calls and transactions since the last
/// [`reset`].
struct Calls {
    count: usize,
    median_us: u64,
    max_us: u64,
    total_us: u64,
}

async fn reset(s: &RedisStorage) {
    let _: String = s
        .raw_command(redis::cmd("SLOWLOG").arg("RESET"))
        .await
        .unwrap();
}

/// The script calls (and transactions) since the last [`reset`]; with
/// `every`, every command instead (for cases that send no script, whose
/// commands Redis runs one by one).
async fn calls(s: &RedisStorage, every: bool) -> Calls {
    let log: Vec<redis::Value> = s
        .raw_command(redis::cmd("SLOWLOG").arg("GET").arg(-1))
        .await
        .unwrap();
    let mut each = Vec::new();
    for entry in log {
        let redis::Value::Array(fields) = entry else {
            continue;
        };
        let (Some(redis::Value::Int(us)), Some(redis::Value::Array(args))) =
            (fields.get(2), fields.get(3))
        else {
            continue;
        };
        // Script calls and transactions: Redis runs each as one, and also
        // logs the commands inside them, which are part of their time.
        let counted = match args.first() {
            Some(redis::Value::BulkString(b)) if every => !b.eq_ignore_ascii_case(b"slowlog"),
            Some(redis::Value::BulkString(b)) => [&b"evalsha"[..], b"evalsha_ro", b"exec"]
                .iter()
                .any(|c| b.eq_ignore_ascii_case(c)),
            _ => false,
        };
        if counted {
            each.push(u64::try_from(*us).unwrap_or(0));
        }
    }
    each.sort_unstable();
    Calls {
        count: each.len(),
        median_us: each.get(each.len() / 2).copied().unwrap_or(0),
        max_us: each.last().copied().unwrap_or(0),
        total_us: each.iter().sum(),
    }
}

async fn measure<F: std::future::Future<Output = String>>(s: &RedisStorage, name: &str, f: F) {
    measure_with(s, name, false, f).await
}

async fn measure_with<F: std::future::Future<Output = String>>(
    s: &RedisStorage,
    name: &str,
    every: bool,
    f: F,
) {
    reset(s).await;
    let started = Instant::now();
    let outcome = f.await;
    let wall = started.elapsed();
    let c = calls(s, every).await;
    println!(
        "| {name} | {outcome} | {} | {:.2} | {:.2} | {:.2} | {:.0} |",
        c.count,
        c.median_us as f64 / 1000.0,
        c.max_us as f64 / 1000.0,
        c.total_us as f64 / 1000.0,
        wall.as_secs_f64() * 1000.0
    );
}

fn located(pool: &PoolId, i: usize) -> Proxy {
    // A 1° × 1° grid around (40, -74): every proxy within 120 km of it.
    let (row, col) = ((i / 1000) as f64, (i % 1000) as f64);
    Proxy::new(
        pool.clone(),
        format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
        8000 + (i % 1000) as u16,
        ProxyProtocol::Http,
    )
    .with_id(format!("p{i:07}"))
    .with_country("US")
    .with_source(format!("s{}", i % 3))
    .with_location(39.5 + row / 1000.0 * 1.0, -74.5 + col / 1000.0)
    .with_latency_ms(20 + (i % 480) as u32)
    .with_max_concurrency(1)
}

async fn seed(s: &RedisStorage, pool: &PoolId, n: usize, make: fn(&PoolId, usize) -> Proxy) {
    s.upsert_pool(&ProxyPool::new(pool.clone())).await.unwrap();
    let t = Instant::now();
    stream::iter(0..n)
        .map(|i| {
            let p = make(pool, i);
            async move { s.upsert_proxy(&p).await.unwrap() }
        })
        .buffer_unordered(64)
        .for_each(|_| async {})
        .await;
    eprintln!("seeded {n} proxies in {:.1} s", t.elapsed().as_secs_f64());
}

async fn lease_all_but_last(s: &RedisStorage, pool: &PoolId, n: usize) -> Vec<Lease> {
    let t = Instant::now();
    let req = AcquireRequest::new(pool.clone()).duration(TimeDelta::hours(1));
    let leases: Vec<Lease> = stream::iter(0..n - 1)
        .map(|_| {
            let req = req.clone();
            async move { s.acquire(&req).await.unwrap().expect("a free proxy") }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    eprintln!(
        "leased {} proxies in {:.1} s",
        leases.len(),
        t.elapsed().as_secs_f64()
    );
    leases
}

/// A filter at the size limits whose every branch asks for a source no
/// proxy has, except one `any_of` leaf naming `last`'s source and city.
fn largest_filter(last: Option<&str>) -> ProxyFilters {
    let v = |i: usize| format!("{i:0>w$}", w = MAX_FILTER_VALUE_LEN);
    let mut deep = ProxyFilters::new().source(v(0));
    for d in 1..MAX_FILTER_DEPTH {
        deep = ProxyFilters::new().any_of([deep, ProxyFilters::new().isp(v(d))]);
    }
    let mut leaves: Vec<ProxyFilters> = vec![deep];
    if let Some(last) = last {
        leaves.push(ProxyFilters::new().city(last.to_owned()));
    }
    let mut i = 100;
    loop {
        let f = ProxyFilters::new()
            .any_of(leaves.clone())
            .none_of([ProxyFilters::new().isp("none")]);
        if nodes(&f) >= MAX_FILTER_NODES {
            return f;
        }
        // Before the match, so every leaf is evaluated first.
        leaves.insert(
            0,
            ProxyFilters::new()
                .city(format!("nowhere-{i}"))
                .asn(i as u32),
        );
        i += 1;
    }
}

fn nodes(f: &ProxyFilters) -> usize {
    1 + f
        .all_of
        .iter()
        .chain(&f.any_of)
        .chain(&f.none_of)
        .map(nodes)
        .sum::<usize>()
}

fn describe(f: &ProxyFilters) -> String {
    format!(
        "{} objects, {} bytes",
        nodes(f),
        serde_json::to_string(f).unwrap().len()
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(100_000, |a| a.parse().expect("a pool size"));
    let server = RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--slowlog-log-slower-than",
        "0",
        "--slowlog-max-len",
        "2000000",
    ]);
    let s = RedisStorage::connect(
        RedisConfig::new(server.url())
            .reclaim_batch(10_000)
            .response_timeout(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    let s = &s;
    let pool = PoolId::from("worst");
    seed(s, &pool, n, located).await;
    println!(
        "| case ({n} proxies) | outcome | calls | median ms | longest ms | sum ms | wall ms |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    let leases = lease_all_but_last(s, &pool, n).await;
    // The one left free (the last added) gets a city of its own, for the
    // largest filter.
    let mut last = s
        .find_available_proxy(&pool, &ProxyFilters::new(), Selector::FirstAvailable)
        .await
        .unwrap()
        .expect("one proxy is free");
    last.city = Some("last".into());
    s.upsert_proxy(&last).await.unwrap();
    let filters = [
        ("no filter", ProxyFilters::new()),
        ("country (all match)", ProxyFilters::new().country("US")),
        (
            "geo radius over the whole pool",
            ProxyFilters::new().within_km(40.0, -74.0, 200.0),
        ),
        (
            "largest filter (matching the last)",
            largest_filter(Some("last")),
        ),
    ];
    for (fname, f) in &filters {
        for sel in SELECTORS {
            let req = AcquireRequest::new(pool.clone())
                .filters(f.clone())
                .selector(sel);
            measure(
                s,
                &format!("free proxy behind {} full ones, {fname}, {sel:?}", n - 1),
                async {
                    let lease = s.acquire(&req).await.unwrap().expect("the free proxy");
                    assert_eq!(lease.proxy.id, last.id);
                    s.release(&lease).await.unwrap();
                    "found".into()
                },
            )
            .await;
        }
    }
    let t = Instant::now();
    stream::iter(leases)
        .map(|l| async move { s.release(&l).await.unwrap() })
        .buffer_unordered(64)
        .for_each(|_| async {})
        .await;
    eprintln!("released in {:.1} s", t.elapsed().as_secs_f64());

    for sel in SELECTORS {
        let req = AcquireRequest::new(pool.clone())
            .filters(largest_filter(None))
            .selector(sel);
        let size = describe(&req.filters);
        measure(
            s,
            &format!("largest filter ({size}), no match, {sel:?}"),
            async {
                assert!(s.acquire(&req).await.unwrap().is_none());
                "none".into()
            },
        )
        .await;
    }
    for sel in SELECTORS {
        let req = AcquireRequest::new(pool.clone())
            .filters(ProxyFilters::new().within_km(40.0, -74.0, 200.0))
            .selector(sel);
        measure(
            s,
            &format!("geo radius over the whole pool, {sel:?}"),
            async {
                let lease = s.acquire(&req).await.unwrap().expect("a proxy");
                s.release(&lease).await.unwrap();
                "found".into()
            },
        )
        .await;
    }

    // 10,000 leases over 10,000 proxies expire, then one cleanup call. The
    // leases are taken through a store that reclaims nothing on acquire.
    let quiet = RedisStorage::connect(RedisConfig::new(server.url()).reclaim_batch(0))
        .await
        .unwrap();
    let quiet = &quiet;
    let short = AcquireRequest::new(pool.clone()).duration(TimeDelta::milliseconds(1));
    stream::iter(0..10_000)
        .map(|_| {
            let r = short.clone();
            async move { quiet.acquire(&r).await.unwrap().expect("free") }
        })
        .buffer_unordered(64)
        .for_each(|_| async {})
        .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    measure(s, "cleanup_expired of 10,000 leases", async {
        format!(
            "{} reclaimed",
            s.cleanup_expired(&pool, 10_000).await.unwrap()
        )
    })
    .await;

    measure_with(
        s,
        "pool_snapshot (its commands, one transaction)",
        true,
        async {
            format!(
                "{} proxies",
                s.pool_snapshot(&pool).await.unwrap().proxies.len()
            )
        },
    )
    .await;
    measure(s, "list_proxies", async {
        format!("{} proxies", s.list_proxies(&pool).await.unwrap().len())
    })
    .await;
    measure(s, "upsert_proxy (update)", async {
        s.upsert_proxy(&located(&pool, 7)).await.unwrap();
        "stored".into()
    })
    .await;
    measure(s, "remove_pool", async {
        format!("removed {}", s.remove_pool(&pool).await.unwrap())
    })
    .await;

    // Every proxy at one point, and a small radius just beside it: GEO's
    // search boxes hold them all, and none lies inside the circle.
    let crowd = PoolId::from("crowd");
    seed(s, &crowd, n, |pool, i| {
        located(pool, i).with_location(40.0, -74.0)
    })
    .await;
    for sel in SELECTORS {
        let req = AcquireRequest::new(crowd.clone())
            .filters(ProxyFilters::new().within_km(40.0, -73.985, 1.0))
            .selector(sel);
        measure(
            s,
            &format!("1 km radius beside {n} co-located proxies, {sel:?}"),
            async {
                assert!(s.acquire(&req).await.unwrap().is_none());
                "none".into()
            },
        )
        .await;
    }
}
