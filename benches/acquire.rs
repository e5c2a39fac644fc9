//! Acquire+release throughput of the stores, by pool size, selector and filter.
//!
//! | parameter | values                                                      |
//! |-----------|-------------------------------------------------------------|
//! | store     | memory                                                      |
//! | proxies   | 100, 10,000, 100,000 (synthetic pool, see `pharox_cli::synthetic`) |
//! | selector  | first-available, least-used, round-robin, lowest-latency    |
//! | filter    | none; `country = NZ` (1% of the pool; skipped at 100 proxies) |
//!
//! One task, one acquire and one release per iteration, through `ProxyManager`.
//! Run with `cargo bench --bench acquire`; filter with e.g.
//! `cargo bench --bench acquire -- 'memory/round-robin'`.

use std::time::Duration;

use chrono::TimeDelta;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pharox::{AcquireRequest, InMemoryStorage, PoolId, ProxyFilters, ProxyManager, Selector};
use pharox_cli::bench::seed_pool;
use pharox_cli::synthetic::Shape;

const SIZES: [u64; 3] = [100, 10_000, 100_000];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
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
        let manager = ProxyManager::new(storage);
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
                    b.to_async(&rt).iter(|| async {
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
    group.finish();
}

criterion_group!(benches, memory);
criterion_main!(benches);
