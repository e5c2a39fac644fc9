//! Acquire+release throughput of the stores, by pool size, selector and filter.
//!
//! | parameter | values                                                      |
//! |-----------|-------------------------------------------------------------|
//! | store     | memory; redis (a private `redis-server` on a free port, started by the bench) |
//! | proxies   | 100, 10,000, 100,000 (synthetic pool, see `pharox_cli::synthetic`) |
//! | selector  | first-available, least-used, round-robin, lowest-latency    |
//! | filter    | none; `country = NZ` (1% of the pool; skipped at 100 proxies) |
//!
//! One task, one acquire and one release per iteration, through `ProxyManager`.
//! Run with `cargo bench --bench acquire`; filter with e.g.
//! `cargo bench --bench acquire -- 'memory/round-robin'` or `-- redis`.
//! The Redis group needs the `redis-server` binary (scripts/test.sh installs
//! it); its server keeps nothing on disk and is stopped when the bench ends.

use std::time::Duration;

use chrono::TimeDelta;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pharox::{
    AcquireRequest, InMemoryStorage, PoolId, ProxyFilters, ProxyManager, Selector, Storage,
};
use pharox_cli::bench::seed_pool;
use pharox_cli::synthetic::Shape;
use pharox_redis::testkit::RedisServer;
use pharox_redis::{RedisConfig, RedisStorage};

const SIZES: [u64; 3] = [100, 10_000, 100_000];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The selector × filter cases of one store and pool size.
fn cases<S: Storage>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    manager: &ProxyManager<S>,
    pool: &PoolId,
    size: u64,
) {
    for selector in Selector::ALL {
        for (label, filters) in [
            ("any", ProxyFilters::new()),
            ("country-1pct", ProxyFilters::new().country("NZ")),
        ] {
            if size < 10_000 && label != "any" {
                continue; // a 1% country of 100 proxies is one proxy or none
            }
            let request = AcquireRequest::new(pool.clone())
                .consumer("bench")
                .duration(TimeDelta::minutes(1))
                .selector(selector)
                .filters(filters);
            let id = BenchmarkId::new(format!("{selector}/{label}"), size);
            group.bench_with_input(id, &request, |b, request| {
                b.to_async(rt).iter(|| async {
                    let lease = manager
                        .acquire(request)
                        .await
                        .expect("acquire")
                        .expect("a free proxy");
                    manager.release(&lease).await.expect("release");
                });
            });
        }
    }
}

fn memory(c: &mut Criterion) {
    let rt = runtime();
    let pool = PoolId::from("bench");
    let mut group = c.benchmark_group("acquire_release/memory");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    for size in SIZES {
        let storage = InMemoryStorage::new();
        rt.block_on(seed_pool(&storage, &pool, size, Shape::default()))
            .expect("seed the pool");
        cases(&mut group, &rt, &ProxyManager::new(storage), &pool, size);
    }
    group.finish();
}

fn redis(c: &mut Criterion) {
    let rt = runtime();
    let server = RedisServer::start();
    let storage = rt
        .block_on(RedisStorage::connect(RedisConfig::new(server.url())))
        .expect("connect to the bench redis-server");
    let mut group = c.benchmark_group("acquire_release/redis");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    for size in SIZES {
        let pool = PoolId::from(format!("bench-{size}"));
        rt.block_on(seed_pool(&storage, &pool, size, Shape::default()))
            .expect("seed the pool");
        cases(
            &mut group,
            &rt,
            &ProxyManager::new(storage.clone()),
            &pool,
            size,
        );
        rt.block_on(storage.remove_pool(&pool))
            .expect("remove the pool");
    }
    group.finish();
    drop(server);
}

criterion_group!(benches, memory, redis);
criterion_main!(benches);
