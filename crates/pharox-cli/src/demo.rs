//! `pharox demo`: scraping workers sharing a pool, some of them crashing, with
//! every invariant checked against the store at the end.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::TimeDelta;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use pharox_core::invariants::{ReleaseLedger, TokenLedger, Violation, check_snapshot};
use pharox_core::{
    AcquireRequest, Error, PoolId, PoolStatsSnapshot, ProxyFilters, ProxyId, ProxyManager,
    ProxyStatus, Selector, Storage,
};
use serde::Serialize;

use crate::bench::{latency_histogram, ns_to_us, seed_pool};
use crate::synthetic::{self, COUNTRIES, Shape};

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Concurrent workers.
    pub workers: usize,
    /// Proxies in the pool.
    pub proxies: u64,
    /// Length of the run.
    pub seconds: f64,
    /// Lease time-to-live.
    pub lease_ttl: Duration,
    /// Chance per cycle that a worker crashes holding its lease.
    pub crash_rate: f64,
    /// Longest a worker holds a lease (uniform in 0..=hold); 0 only yields.
    pub hold: Duration,
    /// Seed of the workers' random choices.
    pub seed: u64,
    /// Draw a progress bar (else print a line per second to stderr).
    pub progress: bool,
}

/// The outcome of a demo run (`--json` prints it as one object).
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    /// Store name.
    pub backend: String,
    /// Workers that ran.
    pub workers: usize,
    /// Proxies in the pool.
    pub proxies: u64,
    /// Length of the run in seconds.
    pub seconds: f64,
    /// Leases granted.
    pub acquired: u64,
    /// Leases released in time.
    pub released: u64,
    /// Leases released after their deadline (already expired or reclaimed).
    pub released_late: u64,
    /// Second releases of the same lease (every one must free nothing).
    pub double_releases: u64,
    /// Acquires that found no free proxy matching the request.
    pub misses: u64,
    /// Worker crashes; each abandoned the lease it held.
    pub crashes: u64,
    /// Leases reclaimed by expiry during and after the run.
    pub expired_reclaimed: u64,
    /// Successful renewals.
    pub renewals: u64,
    /// Leases granted per second.
    pub cycles_per_sec: f64,
    /// Median acquire latency in microseconds.
    pub acquire_p50_us: f64,
    /// 99th percentile acquire latency in microseconds.
    pub acquire_p99_us: f64,
    /// Consistent snapshots checked for I1–I3 while the workers ran.
    pub snapshots_checked: u64,
    /// The pool's stats after recovery.
    pub pool_stats: PoolStatsSnapshot,
    /// Whether every invariant held.
    pub invariants_ok: bool,
    /// What broke, if anything.
    pub violations: Vec<String>,
}

/// Live counters shared by workers and the progress display.
#[derive(Default)]
struct Live {
    acquired: AtomicU64,
    misses: AtomicU64,
    crashes: AtomicU64,
}

struct WorkerResult {
    ledger: ReleaseLedger,
    tokens: TokenLedger,
    latencies: Histogram<u64>,
    renewals: u64,
    double_releases: u64,
    unhealthy_leased: Vec<Violation>,
}

/// Seeds a synthetic pool and runs the demo on it.
pub async fn run<S: Storage + Clone>(
    backend: &str,
    storage: S,
    pool: &PoolId,
    opts: &DemoOptions,
) -> Result<DemoReport> {
    anyhow::ensure!(opts.workers > 0, "--workers must be at least 1");
    anyhow::ensure!(opts.proxies > 0, "--proxies must be at least 1");
    anyhow::ensure!(
        opts.seconds.is_finite() && opts.seconds > 0.0,
        "--seconds must be above 0"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&opts.crash_rate),
        "--crash-rate must be within 0..=1"
    );
    let ttl = TimeDelta::from_std(opts.lease_ttl).context("--lease-ttl-ms is too large")?;
    pharox_core::validate::lease_duration(ttl)?;

    let shape = Shape {
        credentials: true,
        unhealthy: true,
    };
    seed_pool(&storage, pool, opts.proxies, shape).await?;
    let unhealthy: Arc<HashSet<ProxyId>> = Arc::new(
        synthetic::proxies(pool, opts.proxies, shape)
            .filter(|p| p.status != ProxyStatus::Active)
            .map(|p| p.id)
            .collect(),
    );
    let manager = ProxyManager::new(storage.clone());
    let baseline = manager.pool_stats(pool).await?;

    let live = Arc::new(Live::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(opts.seconds);

    let mut workers = Vec::with_capacity(opts.workers);
    for w in 0..opts.workers {
        let ctx = WorkerCtx {
            manager: manager.clone(),
            pool: pool.clone(),
            ttl,
            hold: opts.hold,
            crash_rate: opts.crash_rate,
            unhealthy: unhealthy.clone(),
            live: live.clone(),
            rng: fastrand::Rng::with_seed(opts.seed.wrapping_add(w as u64)),
            consumer: format!("worker-{w:03}"),
        };
        workers.push(tokio::spawn(ctx.run(deadline)));
    }

    // The sweeper a `pharox worker` would run, and a checker sampling the store.
    let sweeper = tokio::spawn(sweep(manager.clone(), stop.clone()));
    let sampler = tokio::spawn(sample(storage.clone(), pool.clone(), stop.clone()));
    show_progress(&live, started, deadline, opts.progress).await;

    let mut ledger = ReleaseLedger::default();
    let mut tokens = TokenLedger::new();
    let mut latencies = latency_histogram();
    let mut violations = Vec::new();
    let (mut renewals, mut double_releases) = (0, 0);
    for worker in workers {
        let r = worker.await.context("a demo worker panicked")??;
        ledger.merge(&r.ledger);
        tokens.merge(r.tokens);
        latencies.add(&r.latencies).expect("same histogram bounds");
        renewals += r.renewals;
        double_releases += r.double_releases;
        violations.extend(r.unhealthy_leased);
    }
    let run_seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    sweeper.await.context("the sweeper panicked")??;
    let (snapshots_checked, sampled) = sampler.await.context("the checker panicked")??;
    violations.extend(sampled);

    // Recovery: every abandoned lease must expire and come back.
    eprintln!(
        "workers stopped; waiting {} ms for abandoned leases to expire, then checking the store",
        opts.lease_ttl.as_millis() + 50
    );
    tokio::time::sleep(opts.lease_ttl + Duration::from_millis(50)).await;
    manager.cleanup_expired_in(pool).await?;
    let snapshot = storage.pool_snapshot(pool).await?;
    violations.extend(check_snapshot(&snapshot, true));
    violations.extend(tokens.violations());
    violations.extend(ledger.check(&baseline, &snapshot.stats));

    let end = snapshot.stats;
    Ok(DemoReport {
        backend: backend.to_owned(),
        workers: opts.workers,
        proxies: opts.proxies,
        seconds: run_seconds,
        acquired: ledger.acquired,
        released: ledger.released,
        released_late: ledger.released_late + ledger.released_after_reclaim,
        double_releases,
        misses: live.misses.load(Ordering::Relaxed),
        crashes: live.crashes.load(Ordering::Relaxed),
        expired_reclaimed: end.expired_leases - baseline.expired_leases,
        renewals,
        cycles_per_sec: ledger.acquired as f64 / run_seconds,
        acquire_p50_us: ns_to_us(latencies.value_at_quantile(0.50)),
        acquire_p99_us: ns_to_us(latencies.value_at_quantile(0.99)),
        snapshots_checked,
        pool_stats: end,
        invariants_ok: violations.is_empty(),
        violations: violations.iter().map(ToString::to_string).collect(),
    })
}

struct WorkerCtx<S> {
    manager: ProxyManager<S>,
    pool: PoolId,
    ttl: TimeDelta,
    hold: Duration,
    crash_rate: f64,
    unhealthy: Arc<HashSet<ProxyId>>,
    live: Arc<Live>,
    rng: fastrand::Rng,
    consumer: String,
}

impl<S: Storage> WorkerCtx<S> {
    /// A request the way a scraper would ask: mostly any proxy, sometimes a
    /// country, sometimes a radius around a country's centre.
    fn next_request(&mut self) -> AcquireRequest {
        let selector = Selector::ALL[self.rng.usize(0..Selector::ALL.len())];
        let roll = self.rng.u32(0..100);
        let filters = if roll < 20 {
            ProxyFilters::new().country(self.weighted_country().0)
        } else if roll < 30 {
            let (_, _, lat, lon) = self.weighted_country();
            ProxyFilters::new().within_km(lat, lon, 500.0)
        } else {
            ProxyFilters::new()
        };
        AcquireRequest::new(self.pool.clone())
            .consumer(self.consumer.as_str())
            .duration(self.ttl)
            .selector(selector)
            .filters(filters)
    }

    fn weighted_country(&mut self) -> (&'static str, u32, f64, f64) {
        let mut bucket = self.rng.u32(0..100);
        for entry in COUNTRIES {
            if bucket < entry.1 {
                return entry;
            }
            bucket -= entry.1;
        }
        COUNTRIES[0]
    }

    async fn run(mut self, deadline: Instant) -> Result<WorkerResult> {
        let mut out = WorkerResult {
            ledger: ReleaseLedger::default(),
            tokens: TokenLedger::new(),
            latencies: latency_histogram(),
            renewals: 0,
            double_releases: 0,
            unhealthy_leased: Vec::new(),
        };
        while Instant::now() < deadline {
            let request = self.next_request();
            let t0 = Instant::now();
            let lease = self.manager.acquire(&request).await?;
            out.latencies
                .saturating_record(t0.elapsed().as_nanos() as u64);
            let Some(lease) = lease else {
                self.live.misses.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            };
            self.live.acquired.fetch_add(1, Ordering::Relaxed);
            out.ledger.acquired += 1;
            out.tokens.record(lease.token);
            if self.unhealthy.contains(&lease.proxy.id) {
                let status = self
                    .manager
                    .storage()
                    .get_proxy(&lease.pool, &lease.proxy.id)
                    .await?
                    .map_or(ProxyStatus::Inactive, |p| p.status);
                out.unhealthy_leased.push(Violation::InactiveProxyLeased {
                    proxy: lease.proxy.id.clone(),
                    status,
                });
            }

            // Scrape through the proxy.
            if self.hold.is_zero() {
                tokio::task::yield_now().await;
            } else {
                let ms = self.rng.u64(0..=self.hold.as_millis() as u64);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }

            if self.rng.f64() < self.crash_rate {
                // The worker dies holding the lease; a supervisor restarts it.
                self.live.crashes.fetch_add(1, Ordering::Relaxed);
                out.ledger.abandoned += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let mut lease = lease;
            if self.rng.u32(0..100) < 5 {
                match self.manager.renew(&lease, self.ttl).await {
                    Ok(renewed) => {
                        out.renewals += 1;
                        lease = renewed;
                    }
                    Err(Error::LeaseLost { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            out.ledger
                .first_release(self.manager.release(&lease).await?);
            if self.rng.u32(0..100) < 2 {
                out.double_releases += 1;
                out.ledger
                    .repeat_release(self.manager.release(&lease).await?);
            }
        }
        Ok(out)
    }
}

async fn sweep<S: Storage>(manager: ProxyManager<S>, stop: Arc<AtomicBool>) -> Result<()> {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        manager.cleanup_expired().await?;
    }
    Ok(())
}

/// Checks I1–I3 on a consistent snapshot twice a second while workers run.
async fn sample<S: Storage>(
    storage: S,
    pool: PoolId,
    stop: Arc<AtomicBool>,
) -> Result<(u64, Vec<Violation>)> {
    let mut checked = 0;
    let mut violations = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let snapshot = storage.pool_snapshot(&pool).await?;
        violations.extend(check_snapshot(&snapshot, false));
        checked += 1;
    }
    Ok((checked, violations))
}

async fn show_progress(live: &Live, started: Instant, deadline: Instant, bar: bool) {
    let total = deadline.duration_since(started);
    let message = || {
        format!(
            "acquired {}  misses {}  crashes {}",
            fmt_count(live.acquired.load(Ordering::Relaxed)),
            fmt_count(live.misses.load(Ordering::Relaxed)),
            fmt_count(live.crashes.load(Ordering::Relaxed)),
        )
    };
    if bar {
        let pb = ProgressBar::new(total.as_millis() as u64);
        pb.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
                .expect("valid progress template"),
        );
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            pb.set_position(started.elapsed().as_millis().min(total.as_millis()) as u64);
            pb.set_message(message());
        }
        pb.finish_and_clear();
    } else {
        let mut next = started + Duration::from_secs(1);
        while Instant::now() < deadline {
            tokio::time::sleep_until(next.min(deadline).into()).await;
            next += Duration::from_secs(1);
            eprintln!(
                "[{:>5.1}s/{:.0}s] {}",
                started.elapsed().as_secs_f64(),
                total.as_secs_f64(),
                message()
            );
        }
    }
}

/// `1234567` as `1,234,567`.
pub fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl DemoReport {
    /// The summary table.
    pub fn render(&self) -> String {
        let s = &self.pool_stats;
        let row = |label: &str, value: String| format!("  {label:<22}{value:>14}\n");
        let mut out = format!(
            "pharox demo: {} workers, {} proxies, {} store, {:.1} s\n",
            self.workers, self.proxies, self.backend, self.seconds
        );
        out += &row("leases acquired", fmt_count(self.acquired));
        out += &row("leases released", fmt_count(self.released));
        out += &row("released late", fmt_count(self.released_late));
        out += &row("double releases", fmt_count(self.double_releases));
        out += &row("renewals", fmt_count(self.renewals));
        out += &row("misses", fmt_count(self.misses));
        out += &row("worker crashes", fmt_count(self.crashes));
        out += &row("expired reclaimed", fmt_count(self.expired_reclaimed));
        out += &row("cycles/s", fmt_count(self.cycles_per_sec as u64));
        out += &row("acquire p50", format!("{:.1} µs", self.acquire_p50_us));
        out += &row("acquire p99", format!("{:.1} µs", self.acquire_p99_us));
        out += &format!(
            "pool stats ({}):\n  total {}  active {}  available {}  leased {}  active_leases {}\n  \
             total_leases {}  released_leases {}  expired_leases {}\n",
            s.pool,
            s.total,
            s.active,
            s.available,
            s.leased,
            s.active_leases,
            fmt_count(s.total_leases),
            fmt_count(s.released_leases),
            fmt_count(s.expired_leases)
        );
        if self.invariants_ok {
            out += &format!(
                "invariants: OK (I1-I7; I1-I3 also on {} snapshots taken while workers ran)\n",
                self.snapshots_checked
            );
        } else {
            out += &format!("invariants: {} VIOLATED\n", self.violations.len());
            for v in self.violations.iter().take(20) {
                out += &format!("  {v}\n");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use pharox_core::testkit::FaultyStorage;
    use pharox_core::{InMemoryStorage, PoolId};

    use super::{DemoOptions, fmt_count, run};

    fn quick() -> DemoOptions {
        DemoOptions {
            workers: 8,
            proxies: 100,
            seconds: 0.6,
            lease_ttl: Duration::from_millis(100),
            crash_rate: 0.01,
            hold: Duration::ZERO,
            seed: 1,
            progress: false,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_lease_is_accounted_for_and_abandoned_ones_come_back() {
        let pool = PoolId::from("demo");
        // Another seed while a run happened to have no crash (a loaded
        // machine may give it few cycles), for at most a minute; every run
        // is checked in full.
        let started = std::time::Instant::now();
        let mut opts = quick();
        let report = loop {
            let report = run("memory", InMemoryStorage::new(), &pool, &opts)
                .await
                .unwrap();
            assert!(report.invariants_ok, "{:?}", report.violations);
            if report.crashes > 0 {
                break report;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no crash in any run up to seed {}",
                opts.seed
            );
            opts.seed += 1;
        };
        assert_eq!(
            report.acquired,
            report.released + report.released_late + report.crashes,
            "every lease ended exactly one way"
        );
        assert_eq!(
            report.expired_reclaimed,
            report.crashes + report.released_late
        );
        assert_eq!(report.pool_stats.active_leases, 0);
        assert!(report.snapshots_checked > 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_that_misreports_its_stats_fails_the_check() {
        let storage = FaultyStorage::new(InMemoryStorage::new());
        storage.faults().skew_available.store(1, Ordering::SeqCst);
        let report = run("faulty", storage, &PoolId::from("demo"), &quick())
            .await
            .unwrap();
        assert!(!report.invariants_ok);
        assert!(
            report.violations.iter().all(|v| v.starts_with("I3:")),
            "{:?}",
            report.violations
        );
        assert!(report.render().contains("VIOLATED"));
    }

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_count(1_000), "1,000");
        assert_eq!(fmt_count(1_234_567), "1,234,567");
    }
}
