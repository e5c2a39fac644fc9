//! `pharox bench`: acquire+release cycles against a store, as fast as it goes.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::TimeDelta;
use hdrhistogram::Histogram;
use pharox_core::{
    AcquireRequest, PoolId, ProxyFilters, ProxyManager, ProxyPool, Selector, Storage,
};
use serde::Serialize;
use tokio::sync::Barrier;

use futures_util::StreamExt;

use crate::synthetic::{self, Shape};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Proxies in the synthetic pool.
    pub proxies: u64,
    /// Concurrent tasks, each running acquire+release in a loop.
    pub tasks: usize,
    /// Length of the measured window.
    pub seconds: f64,
    /// Unmeasured run before the window (warms caches and connections).
    pub warmup_seconds: f64,
    /// Selection strategy.
    pub selector: Selector,
    /// Only lease proxies of this country (see [`synthetic::COUNTRIES`]).
    pub country: Option<String>,
}

/// The figures of one run, printed as one JSON object with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Store name (`memory`, …).
    pub backend: String,
    /// Proxies in the pool.
    pub proxies: u64,
    /// Concurrent tasks.
    pub tasks: usize,
    /// Selector used.
    pub selector: String,
    /// Country filter, if any.
    pub country: Option<String>,
    /// Completed acquire+release cycles in the window.
    pub cycles: u64,
    /// Measured window in seconds.
    pub seconds: f64,
    /// `cycles / seconds`.
    pub cycles_per_sec: f64,
    /// Median acquire latency in microseconds (hits and misses).
    pub acquire_p50_us: f64,
    /// 99th percentile acquire latency in microseconds.
    pub acquire_p99_us: f64,
    /// Acquires that found no free proxy.
    pub misses: u64,
    /// Redis: trivial `EVALSHA` calls per second through the same client
    /// configuration and task count, measured in the same run (PostgreSQL:
    /// `SELECT 1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling_calls_per_sec: Option<f64>,
    /// Redis and PostgreSQL: median latency of that trivial call, in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling_p50_us: Option<f64>,
    /// Redis only: Redis's own CPU time per cycle, from `INFO commandstats`
    /// (EVALSHA `usec` delta over the window divided by cycles).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_usec_per_cycle: Option<f64>,
    /// Redis only: CPU of the whole Redis process per cycle (`INFO cpu`,
    /// user + system, network I/O included), in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_cpu_us_per_cycle: Option<f64>,
    /// HTTP only: CPU of the `pharox serve` process per cycle, in
    /// microseconds (Linux: its threads' `schedstat`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_us_per_cycle: Option<f64>,
    /// CPU of this process (the clients) per cycle, in microseconds
    /// (Linux: its threads' `schedstat`; absent elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cpu_us_per_cycle: Option<f64>,
    /// PostgreSQL only: requests the store sent and waited for per cycle,
    /// over the window (its own count, `PostgresStorage::round_trips`;
    /// the acquires that found nothing free are included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round_trips_per_cycle: Option<f64>,
    /// HTTP only: the same cycles against Redis directly, measured first in
    /// the same run, and the ratios of this run to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub versus_direct: Option<Comparison>,
}

/// A run beside the direct-store run it is compared to.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The direct run.
    pub direct: Box<BenchReport>,
    /// This run's cycles/s over the direct run's.
    pub cycles_ratio: f64,
    /// This run's acquire p50 over the direct run's.
    pub acquire_p50_ratio: f64,
}

impl Comparison {
    /// `run` compared to `direct`.
    pub fn of(run: &BenchReport, direct: BenchReport) -> Self {
        Self {
            cycles_ratio: run.cycles_per_sec / direct.cycles_per_sec,
            acquire_p50_ratio: run.acquire_p50_us / direct.acquire_p50_us,
            direct: Box::new(direct),
        }
    }
}

/// Reads server-side running totals at the start and end of the measured
/// window; the report gets their deltas per cycle.
pub type WindowProbe =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<ProbeSample>> + Send>> + Send + Sync>;

/// What a [`WindowProbe`] reads; each field a running total, absent when
/// the store or platform does not tell it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProbeSample {
    /// Redis: microseconds of script CPU (`INFO commandstats`).
    pub script_usec: Option<u64>,
    /// Redis: microseconds of process CPU (`INFO cpu`).
    pub redis_cpu_usec: Option<u64>,
    /// Nanoseconds of CPU of a server process ([`process_cpu_ns`]).
    pub server_cpu_ns: Option<u64>,
    /// PostgreSQL: requests sent and answered (`PostgresStorage::round_trips`).
    pub round_trips: Option<u64>,
}

impl ProbeSample {
    fn since(self, start: Self) -> Self {
        let d = |a: Option<u64>, b: Option<u64>| Some(a?.saturating_sub(b?));
        Self {
            script_usec: d(self.script_usec, start.script_usec),
            redis_cpu_usec: d(self.redis_cpu_usec, start.redis_cpu_usec),
            server_cpu_ns: d(self.server_cpu_ns, start.server_cpu_ns),
            round_trips: d(self.round_trips, start.round_trips),
        }
    }
}

/// Nanoseconds of CPU the threads of process `pid` (`"self"` for this
/// one) have run, summed from `/proc/PID/task/*/schedstat`; `None` where
/// that is not readable (not Linux, or no schedstats). Threads that have
/// exited are not counted, so read it while the threads that matter run.
pub fn process_cpu_ns(pid: &str) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    for task in tasks {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Creates `pool` and fills it with the first `n` synthetic proxies.
pub async fn seed_pool<S: Storage>(storage: &S, pool: &PoolId, n: u64, shape: Shape) -> Result<()> {
    storage
        .upsert_pool(&ProxyPool::new(pool.clone()).with_description("synthetic pool"))
        .await
        .context("creating the pool")?;
    // Many upserts in flight: a remote store is bound by round trips.
    let mut added = futures_util::stream::iter(synthetic::proxies(pool, n, shape))
        .map(|proxy| async move { storage.upsert_proxy(&proxy).await })
        .buffer_unordered(64);
    while let Some(r) = added.next().await {
        r.context("adding a proxy")?;
    }
    Ok(())
}

/// A latency histogram in nanoseconds, 1 ns to 60 s at 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Nanoseconds to microseconds for reports.
pub fn ns_to_us(ns: u64) -> f64 {
    ns as f64 / 1_000.0
}

struct TaskResult {
    cycles: u64,
    misses: u64,
    latencies: Histogram<u64>,
}

/// Runs the benchmark on an already seeded pool.
pub async fn run<S: Storage + Clone>(
    backend: &str,
    storage: S,
    pool: &PoolId,
    opts: &BenchOptions,
) -> Result<BenchReport> {
    run_probed(backend, storage, pool, opts, None).await
}

/// [`run`], also reading `probe` as the window opens and after it closes,
/// and filling the report's per-cycle server figures from it.
pub async fn run_probed<S: Storage + Clone>(
    backend: &str,
    storage: S,
    pool: &PoolId,
    opts: &BenchOptions,
    probe: Option<WindowProbe>,
) -> Result<BenchReport> {
    anyhow::ensure!(opts.tasks > 0, "--tasks must be at least 1");
    anyhow::ensure!(
        opts.seconds.is_finite() && opts.seconds > 0.0,
        "--seconds must be above 0"
    );
    let manager = ProxyManager::new(storage);
    let mut filters = ProxyFilters::new();
    if let Some(cc) = &opts.country {
        filters = filters.country(cc.clone());
    }
    let request = Arc::new(
        AcquireRequest::new(pool.clone())
            .consumer("bench")
            .duration(TimeDelta::minutes(1))
            .selector(opts.selector)
            .filters(filters),
    );
    let warmup = Duration::from_secs_f64(opts.warmup_seconds.max(0.0));
    let window = Duration::from_secs_f64(opts.seconds);
    let barrier = Arc::new(Barrier::new(opts.tasks + 1));
    // One deadline for all tasks, set by whichever passes the barrier first.
    let warm_until = Arc::new(OnceLock::new());
    let window_end = Arc::new(OnceLock::new());
    let mut handles = Vec::with_capacity(opts.tasks);
    for _ in 0..opts.tasks {
        let (manager, request, barrier) = (manager.clone(), request.clone(), barrier.clone());
        let (warm_until, window_end) = (warm_until.clone(), window_end.clone());
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let warm_until = *warm_until.get_or_init(|| Instant::now() + warmup);
            cycle_until(&manager, &request, warm_until, None).await?;
            barrier.wait().await;
            let window_end = *window_end.get_or_init(|| Instant::now() + window);
            let mut latencies = latency_histogram();
            let (cycles, misses) =
                cycle_until(&manager, &request, window_end, Some(&mut latencies)).await?;
            anyhow::Ok(TaskResult {
                cycles,
                misses,
                latencies,
            })
        }));
    }
    barrier.wait().await; // all tasks ready: warm-up starts
    barrier.wait().await; // warm-up over: the window starts
    let started = Instant::now();
    let client_start = process_cpu_ns("self");
    let probe_start = match &probe {
        Some(p) => Some(p().await?),
        None => None,
    };
    let mut cycles = 0;
    let mut misses = 0;
    let mut latencies = latency_histogram();
    for handle in handles {
        let r = handle.await.context("bench task panicked")??;
        cycles += r.cycles;
        misses += r.misses;
        latencies.add(&r.latencies).expect("same histogram bounds");
    }
    let seconds = started.elapsed().as_secs_f64();
    let client_ns =
        client_start.and_then(|start| Some(process_cpu_ns("self")?.saturating_sub(start)));
    let probed = match (&probe, probe_start) {
        (Some(p), Some(start)) => p().await?.since(start),
        _ => ProbeSample::default(),
    };
    let per_cycle = |total_us: Option<f64>| total_us.map(|us| us / cycles.max(1) as f64);
    let report = BenchReport {
        backend: backend.to_owned(),
        proxies: opts.proxies,
        tasks: opts.tasks,
        selector: opts.selector.to_string(),
        country: opts.country.clone(),
        cycles,
        seconds,
        cycles_per_sec: cycles as f64 / seconds,
        acquire_p50_us: ns_to_us(latencies.value_at_quantile(0.50)),
        acquire_p99_us: ns_to_us(latencies.value_at_quantile(0.99)),
        misses,
        ceiling_calls_per_sec: None,
        ceiling_p50_us: None,
        redis_usec_per_cycle: per_cycle(probed.script_usec.map(|u| u as f64)),
        redis_cpu_us_per_cycle: per_cycle(probed.redis_cpu_usec.map(|u| u as f64)),
        server_cpu_us_per_cycle: per_cycle(probed.server_cpu_ns.map(|n| n as f64 / 1e3)),
        client_cpu_us_per_cycle: per_cycle(client_ns.map(|n| n as f64 / 1e3)),
        round_trips_per_cycle: per_cycle(probed.round_trips.map(|n| n as f64)),
        versus_direct: None,
    };
    Ok(report)
}

/// The ceiling of a client: `tasks` tasks calling `call` in a loop for
/// `seconds`; returns (calls per second, median latency in µs).
pub async fn ceiling<F, Fut>(tasks: usize, seconds: f64, call: F) -> Result<(f64, f64)>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = pharox_core::Result<()>> + Send,
{
    let window = Duration::from_secs_f64(seconds);
    let barrier = Arc::new(Barrier::new(tasks + 1));
    let end = Arc::new(OnceLock::new());
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let (call, barrier, end) = (call.clone(), barrier.clone(), end.clone());
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let end: Instant = *end.get_or_init(|| Instant::now() + window);
            let mut h = latency_histogram();
            let mut calls = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    return anyhow::Ok((calls, h));
                }
                call().await?;
                h.saturating_record(t0.elapsed().as_nanos() as u64);
                calls += 1;
            }
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let (mut calls, mut h) = (0, latency_histogram());
    for handle in handles {
        let (c, th) = handle.await.context("ceiling task panicked")??;
        calls += c;
        h.add(&th).expect("same histogram bounds");
    }
    let secs = started.elapsed().as_secs_f64();
    Ok((calls as f64 / secs, ns_to_us(h.value_at_quantile(0.5))))
}

/// Acquire+release until `deadline`; returns (cycles, misses).
async fn cycle_until<S: Storage>(
    manager: &ProxyManager<S>,
    request: &AcquireRequest,
    deadline: Instant,
    mut latencies: Option<&mut Histogram<u64>>,
) -> Result<(u64, u64)> {
    let (mut cycles, mut misses) = (0, 0);
    loop {
        let t0 = Instant::now();
        if t0 >= deadline {
            return Ok((cycles, misses));
        }
        let lease = manager.acquire(request).await?;
        if let Some(h) = latencies.as_deref_mut() {
            h.saturating_record(t0.elapsed().as_nanos() as u64);
        }
        match lease {
            Some(lease) => {
                manager.release(&lease).await?;
                cycles += 1;
            }
            None => {
                misses += 1;
                tokio::task::yield_now().await;
            }
        }
    }
}

impl BenchReport {
    /// Measures the [`ceiling`] of `call` with this run's task count for
    /// `seconds`, and records it in the report.
    ///
    /// # Errors
    /// As [`ceiling`].
    pub async fn measure_ceiling<F, Fut>(&mut self, seconds: f64, call: F) -> Result<()>
    where
        F: Fn() -> Fut + Clone + Send + 'static,
        Fut: Future<Output = pharox_core::Result<()>> + Send,
    {
        let (calls, p50) = ceiling(self.tasks, seconds, call).await?;
        self.ceiling_calls_per_sec = Some(calls);
        self.ceiling_p50_us = Some(p50);
        Ok(())
    }

    /// A short human-readable summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(c) = &self.versus_direct {
            out = c.direct.render() + "\n\n";
        }
        out += &format!(
            "backend {}  proxies {}  tasks {}  selector {}{}\n\
             cycles {} in {:.2} s = {:.0} cycles/s\n\
             acquire p50 {:.2} µs  p99 {:.2} µs  misses {}",
            self.backend,
            self.proxies,
            self.tasks,
            self.selector,
            self.country
                .as_deref()
                .map(|c| format!("  country {c}"))
                .unwrap_or_default(),
            self.cycles,
            self.seconds,
            self.cycles_per_sec,
            self.acquire_p50_us,
            self.acquire_p99_us,
            self.misses
        );
        out += &match (
            self.ceiling_calls_per_sec,
            self.ceiling_p50_us,
            self.redis_usec_per_cycle,
        ) {
            (Some(c), Some(p), Some(u)) => format!(
                "\nceiling (trivial EVALSHA) {c:.0} calls/s  p50 {p:.2} µs  \
                 redis CPU {u:.2} µs/cycle"
            ),
            (None, None, Some(u)) => format!("\nredis CPU {u:.2} µs/cycle"),
            (Some(c), Some(p), None) => {
                format!("\nceiling (SELECT 1) {c:.0} calls/s  p50 {p:.2} µs")
            }
            _ => String::new(),
        };
        if let Some(rt) = self.round_trips_per_cycle {
            out += &format!("\nround trips {rt:.2} per cycle");
        }
        let cpu: Vec<String> = [
            ("client", self.client_cpu_us_per_cycle),
            ("server", self.server_cpu_us_per_cycle),
            ("redis process", self.redis_cpu_us_per_cycle),
        ]
        .into_iter()
        .filter_map(|(who, us)| Some(format!("{who} {:.1}", us?)))
        .collect();
        if !cpu.is_empty() {
            out += &format!("\nCPU µs/cycle: {}", cpu.join("  "));
        }
        if let Some(c) = &self.versus_direct {
            out += &format!(
                "\n{} / {}: cycles/s {:.2}x  acquire p50 {:.2}x",
                self.backend, c.direct.backend, c.cycles_ratio, c.acquire_p50_ratio
            );
        }
        out
    }
}
