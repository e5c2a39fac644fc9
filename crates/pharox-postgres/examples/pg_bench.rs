//! Acquire+release cycles on PostgresStorage: cycles/s, acquire p50 and
//! round trips per cycle, at several task counts, on a fresh database of
//! the test server (`PHAROX_PG_URL`, else the default admin URL).
//!
//! ```text
//! cargo run --release -p pharox-postgres --example pg_bench -- \
//!     [--proxies 1000] [--tasks 1,64] [--seconds 5] [--sync-commit on|off] [--connections 16]
//! ```
//!
//! The pool is filled with one `INSERT ... SELECT generate_series` (a
//! 100,000-proxy pool through `upsert_proxy` would take minutes), then
//! checked against the invariants (its counters recomputed) before any
//! cycle runs.

use std::time::{Duration, Instant};

use pharox_core::invariants::check_snapshot;
use pharox_core::{AcquireRequest, ReleaseOutcome, Storage};
use pharox_postgres::testkit::TestDatabase;
use pharox_postgres::{PostgresConfig, PostgresStorage};

struct Args {
    proxies: i64,
    tasks: Vec<usize>,
    seconds: u64,
    sync_commit: bool,
    connections: usize,
}

fn args() -> Args {
    let mut a = Args {
        proxies: 1000,
        tasks: vec![1, 64],
        seconds: 5,
        sync_commit: true,
        connections: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--proxies" => a.proxies = value.parse().expect("--proxies N"),
            "--tasks" => {
                a.tasks = value
                    .split(',')
                    .map(|t| t.parse().expect("--tasks 1,64"))
                    .collect()
            }
            "--seconds" => a.seconds = value.parse().expect("--seconds S"),
            "--sync-commit" => a.sync_commit = value == "on",
            "--connections" => a.connections = value.parse().expect("--connections N"),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

async fn fill(db: &TestDatabase, proxies: i64) {
    let (client, conn) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .execute(
            "INSERT INTO pharox_proxies (pool_id, id, seq, host, port, protocol, status, \
             country, country_key, capacity, latency_ms)
             SELECT 'bench', 'p' || g, g, '10.' || (g / 65536) || '.' || (g / 256 % 256) \
             || '.' || (g % 256), 8080, 'http', 'active', \
             CASE WHEN g % 100 = 0 THEN 'AR' ELSE 'US' END, \
             CASE WHEN g % 100 = 0 THEN 'ar' ELSE 'us' END, 1, g % 500
             FROM generate_series(0::bigint, $1::bigint - 1) AS g",
            &[&proxies],
        )
        .await
        .expect("fill");
    client
        .execute(
            "UPDATE pharox_pools SET next_seq = $1, proxies_total = $1, proxies_active = $1, \
             proxies_available = $1 WHERE id = 'bench'",
            &[&proxies],
        )
        .await
        .expect("counters");
    client.batch_execute("ANALYZE").await.expect("analyze");
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let a = args();
    let db = TestDatabase::create_with(a.sync_commit).await;
    let s = PostgresStorage::lazy(PostgresConfig::new(db.url()).pool_size(a.connections))
        .expect("config");
    s.migrate().await.expect("migrate");
    s.upsert_pool(&pharox_core::ProxyPool::new("bench"))
        .await
        .expect("pool");
    fill(&db, a.proxies).await;
    let snapshot = s.pool_snapshot(&"bench".into()).await.expect("snapshot");
    let problems = check_snapshot(&snapshot, true);
    assert!(problems.is_empty(), "bad fill: {problems:?}");
    println!(
        "proxies={} synchronous_commit={} connections={}",
        a.proxies,
        if a.sync_commit { "on" } else { "off" },
        a.connections
    );
    let t = Instant::now();
    for _ in 0..2000 {
        s.ping().await.expect("ping");
    }
    println!(
        "one SELECT 1 through the store: {:.3} ms",
        t.elapsed().as_secs_f64() / 2000.0 * 1e3
    );
    println!("tasks  cycles/s  acquire_p50_ms  round_trips/cycle  misses");
    for &tasks in &a.tasks {
        // Warm every connection's prepared statements, outside the count.
        let warm: Vec<_> = (0..a.connections.max(tasks))
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move {
                    if let Some(l) = s.acquire(&AcquireRequest::new("bench")).await.unwrap() {
                        s.release(&l).await.unwrap();
                    }
                })
            })
            .collect();
        for w in warm {
            w.await.unwrap();
        }
        let rt_before = s.round_trips();
        let deadline = Instant::now() + Duration::from_secs(a.seconds);
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move {
                    let req = AcquireRequest::new("bench");
                    let (mut cycles, mut misses, mut lat) = (0u64, 0u64, Vec::new());
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let lease = s.acquire(&req).await.expect("acquire");
                        lat.push(t.elapsed());
                        match lease {
                            Some(l) => {
                                let out = s.release(&l).await.expect("release");
                                assert_eq!(out, ReleaseOutcome::Released);
                                cycles += 1;
                            }
                            None => misses += 1,
                        }
                    }
                    (cycles, misses, lat)
                })
            })
            .collect();
        let (mut cycles, mut misses, mut lat) = (0, 0, Vec::new());
        for h in handles {
            let (c, m, l) = h.await.unwrap();
            cycles += c;
            misses += m;
            lat.extend(l);
        }
        let elapsed = start.elapsed().as_secs_f64();
        let rts = s.round_trips() - rt_before;
        lat.sort_unstable();
        let p50 = lat.get(lat.len() / 2).copied().unwrap_or_default();
        println!(
            "{tasks:>5}  {:>8.0}  {:>14.3}  {:>17.2}  {misses}",
            cycles as f64 / elapsed,
            p50.as_secs_f64() * 1e3,
            rts as f64 / (cycles + misses).max(1) as f64,
        );
    }
    let stats = s.pool_stats(&"bench".into()).await.expect("stats");
    assert_eq!(stats.active_leases, 0);
}
