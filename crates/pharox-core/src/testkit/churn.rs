//! A churn driver that checks I1–I7 on any store while it runs.
//!
//! [`run_churn`] seeds a pool of varied proxies (countries, cities, sources,
//! protocols, locations, latencies, caps of 1, 2, 4 or none, some
//! permanently not active, some flapping), then runs for
//! [`ChurnConfig::duration`]:
//!
//! - `tasks` clients doing random acquires (every selector, random
//!   filters), holds (some past the TTL), renewals, releases, double
//!   releases and abandons (a crashed holder);
//! - a sweeper reclaiming expired leases in bounded batches;
//! - a flapper turning some proxies inactive and back through health results;
//! - an independent checker sampling consistent snapshots: I1–I3 on each,
//!   I7 for proxies that are never active, and every fifth sample I6 (a
//!   cleanup, then no lease that had expired before it may still hold
//!   capacity).
//!
//! At the end it waits one TTL, reclaims what is left, and checks that every
//! abandoned lease came back, that the stats equal a recomputation and that
//! the lifetime counters equal what the clients observed (I3, I4). Fencing
//! tokens are checked for duplicates and against the real-time order of the
//! acquires (I5: an acquire that began after another one returned has a larger
//! token). Every leased proxy is checked against the request's filters with
//! the reference evaluator [`ProxyFilters::matches`], and flapping proxies
//! against the intervals in which they were certainly not active (I7).
//!
//! With [`ChurnConfig::faults`] the clients tolerate retryable errors (a
//! fault injector is running): outcomes of failed calls are unknown, so the
//! lifetime counters are checked against bounds instead of exact figures.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};

use crate::invariants::{ReleaseLedger, TokenLedger, Violation, check_snapshot};
use crate::model::{HealthCheckResult, PoolId, PoolStatsSnapshot, Proxy, ProxyPool, ProxyProtocol};
use crate::{
    AcquireRequest, Error, ProxyFilters, ProxyId, ProxyStatus, ReleaseOutcome, Selector, Storage,
};

/// `(country, city, latitude, longitude)` of the churn pool's proxies.
const PLACES: [(&str, &str, f64, f64); 6] = [
    ("US", "Chicago", 41.88, -87.63),
    ("US", "Denver", 39.74, -104.99),
    ("DE", "Berlin", 52.52, 13.40),
    ("NZ", "Auckland", -36.85, 174.76),
    ("AR", "Rosario", -32.95, -60.65),
    ("JP", "Osaka", 34.69, 135.50),
];
const SOURCES: [&str; 3] = ["datacenter", "residential", "mobile"];

/// How a churn run is shaped. `Debug` hides the password (I8).
#[derive(Clone)]
pub struct ChurnConfig {
    /// The pool to create and churn (it must not exist yet).
    pub pool: PoolId,
    /// Concurrent clients.
    pub tasks: usize,
    /// Length of the run.
    pub duration: Duration,
    /// Proxies in the pool (at least 10).
    pub proxies: u16,
    /// Lease time-to-live.
    pub ttl: TimeDelta,
    /// Pause between sweeps.
    pub sweep_every: Duration,
    /// Pause between checker samples.
    pub sample_every: Duration,
    /// Pause between health flips; `None` runs no flapper.
    pub flap_every: Option<Duration>,
    /// Seed of every random choice.
    pub seed: u64,
    /// Password given to every proxy (with user `churn`), if any.
    pub password: Option<String>,
    /// Whether a fault injector runs: retryable errors are tolerated and
    /// counted, and the lifetime counters are checked against bounds.
    pub faults: bool,
    /// Whether the store may lose its data (a restart without persistence):
    /// the pool is re-seeded on `PoolNotFound`, and only checks that survive
    /// a loss run (snapshots, filters, I7 of never-active proxies, the end state).
    pub data_loss: bool,
}

impl std::fmt::Debug for ChurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChurnConfig")
            .field("pool", &self.pool)
            .field("tasks", &self.tasks)
            .field("duration", &self.duration)
            .field("proxies", &self.proxies)
            .field("ttl", &self.ttl)
            .field("sweep_every", &self.sweep_every)
            .field("sample_every", &self.sample_every)
            .field("flap_every", &self.flap_every)
            .field("seed", &self.seed)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("faults", &self.faults)
            .field("data_loss", &self.data_loss)
            .finish()
    }
}

impl ChurnConfig {
    /// 64 tasks on 48 proxies for `duration`, TTL 300 ms, a sweep every
    /// 100 ms, a sample every 100 ms and a health flip every 20 ms.
    pub fn new(pool: impl Into<PoolId>, duration: Duration) -> Self {
        Self {
            pool: pool.into(),
            tasks: 64,
            duration,
            proxies: 48,
            ttl: TimeDelta::milliseconds(300),
            sweep_every: Duration::from_millis(100),
            sample_every: Duration::from_millis(100),
            flap_every: Some(Duration::from_millis(20)),
            seed: 1,
            password: None,
            faults: false,
            data_loss: false,
        }
    }
}

/// What a churn run did and found.
#[derive(Debug, Clone)]
pub struct ChurnReport {
    /// The pool that was churned.
    pub pool: PoolId,
    /// Store calls made by clients, sweeper, flapper and checker.
    pub operations: u64,
    /// Leases granted.
    pub acquired: u64,
    /// Acquires that found nothing eligible.
    pub misses: u64,
    /// Successful renewals.
    pub renewed: u64,
    /// Renewals refused with `LeaseLost` (the lease had expired).
    pub renew_lost: u64,
    /// First releases.
    pub released: u64,
    /// Second releases of the same lease.
    pub double_releases: u64,
    /// Leases abandoned by a "crashed" client.
    pub abandoned: u64,
    /// Leases held past their TTL before release.
    pub held_past_ttl: u64,
    /// Health results applied by the flapper.
    pub flips: u64,
    /// Snapshots checked while clients ran.
    pub samples: u64,
    /// Samples that also checked I6 after a cleanup.
    pub i6_checks: u64,
    /// Leases reclaimed by the sweeper and the final cleanup.
    pub swept: u64,
    /// Calls that failed with a tolerated error (fault mode).
    pub errors: u64,
    /// Acquire futures dropped mid-flight (fault mode, 3% of acquires).
    pub cancelled: u64,
    /// Acquires whose outcome is unknown (timed out, interrupted or
    /// dropped): the width of the bounds I4 is checked against.
    pub unknown_acquires: u64,
    /// Releases whose outcome is unknown (a failed attempt that may have
    /// applied, then retried).
    pub unknown_releases: u64,
    /// Leases certainly live over an interval the clients saw (granted,
    /// then released with `Released`), checked against the caps (I1).
    pub certain_intervals: u64,
    /// I6 checks that could have failed: checker samples, and the final
    /// check, that held a lease already expired before the cleanup they
    /// then checked. Acquires reclaim expired leases as soon as they are
    /// due, so mid-run samples rarely catch one; the final check (after a
    /// TTL with no client running) nearly always does.
    pub i6_effective: u64,
    /// Times the pool was found gone and seeded again (data-loss mode).
    pub reseeds: u64,
    /// How long the run took, recovery included.
    pub took: Duration,
    /// The pool's stats at the end.
    pub end: Option<PoolStatsSnapshot>,
    /// Everything that broke. A correct store gives none.
    pub violations: Vec<String>,
}

impl ChurnReport {
    /// One paragraph with every figure, for test output and RELIABILITY.md.
    pub fn summary(&self) -> String {
        let secs = self.took.as_secs_f64();
        let mut out = format!(
            "{secs:.1} s, {} store calls ({:.0}/s), {} leases, {} misses, {} renewals \
             ({} lost), {} releases, {} double releases, {} abandoned, {} held past TTL, \
             {} health flips, {} samples ({} with I6, {} of them with expired leases), \
             {} swept, {} tolerated errors, {} cancelled acquires, \
             {} acquires and {} releases of unknown outcome, {} reseeds",
            self.operations,
            self.operations as f64 / secs.max(1e-9),
            self.acquired,
            self.misses,
            self.renewed,
            self.renew_lost,
            self.released,
            self.double_releases,
            self.abandoned,
            self.held_past_ttl,
            self.flips,
            self.samples,
            self.i6_checks,
            self.i6_effective,
            self.swept,
            self.errors,
            self.cancelled,
            self.unknown_acquires,
            self.unknown_releases,
            self.reseeds,
        );
        if let Some(end) = &self.end {
            out += &format!(
                "; end: total_leases {} released {} expired {} active {}",
                end.total_leases, end.released_leases, end.expired_leases, end.active_leases
            );
        }
        out + &format!("; violations {}", self.violations.len())
    }

    /// Panics listing the violations, if any.
    pub fn assert_clean(&self) {
        assert!(
            self.violations.is_empty(),
            "{} violations, first ones:\n{}",
            self.violations.len(),
            self.violations
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// `PHAROX_SOAK_SECONDS` as a duration (fractions allowed), else `default`.
/// Panics on a value that is not a positive number.
pub fn soak_duration(default: Duration) -> Duration {
    match std::env::var("PHAROX_SOAK_SECONDS") {
        Ok(s) if !s.trim().is_empty() => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or_else(|| panic!("PHAROX_SOAK_SECONDS must be a positive number, got {s:?}")),
        _ => default,
    }
}

/// The proxies of a churn pool; the same for the same `(pool, n, password)`.
/// Ids `p000`…; the last tenth are never active, the tenth before them flap.
pub fn churn_proxies(pool: &PoolId, n: u16, password: Option<&str>) -> Vec<Proxy> {
    let mut rng = fastrand::Rng::with_seed(u64::from(n));
    let never = n / 10;
    (0..n)
        .map(|i| {
            let (country, city, lat, lon) = PLACES[usize::from(i) % PLACES.len()];
            let protocol = [
                ProxyProtocol::Http,
                ProxyProtocol::Https,
                ProxyProtocol::Socks5,
            ][usize::from(i) % 3];
            let mut p = Proxy::new(
                pool.clone(),
                format!("10.9.{}.{}", i / 250, i % 250 + 1),
                9000 + i,
                protocol,
            )
            .with_id(format!("p{i:03}"))
            .with_country(country)
            .with_city(city)
            .with_source(SOURCES[usize::from(i) % SOURCES.len()])
            .with_isp(format!("isp-{}", i % 4))
            .with_asn(64_500 + u32::from(i % 5))
            .with_latency_ms(rng.u32(5..500));
            if i % 7 != 6 {
                p = p.with_location(lat + rng.f64() * 2.0 - 1.0, lon + rng.f64() * 2.0 - 1.0);
            }
            match i % 4 {
                0 => p = p.with_max_concurrency(1),
                1 => p = p.with_max_concurrency(2),
                2 => p = p.with_max_concurrency(4),
                _ => {}
            }
            if let Some(pw) = password {
                p = p.with_credentials("churn", pw);
            }
            if i >= n - never {
                p = p.with_status(
                    [
                        ProxyStatus::Inactive,
                        ProxyStatus::Slow,
                        ProxyStatus::Banned,
                    ][usize::from(i) % 3],
                );
            }
            p
        })
        .collect()
}

/// Ids of the proxies that flap in a churn pool of `n`.
fn flapping(n: u16) -> std::ops::Range<u16> {
    let never = n / 10;
    n - 2 * never..n - never
}

/// A random filter over the churn pool's attributes.
fn random_filters(rng: &mut fastrand::Rng) -> ProxyFilters {
    let place = |rng: &mut fastrand::Rng| PLACES[rng.usize(..PLACES.len())];
    let leaf = |rng: &mut fastrand::Rng| match rng.u8(0..6) {
        0 => ProxyFilters::new().country(place(rng).0),
        1 => ProxyFilters::new().city(place(rng).1),
        2 => ProxyFilters::new().source(SOURCES[rng.usize(..SOURCES.len())]),
        3 => ProxyFilters::new().isp(format!("isp-{}", rng.u8(0..5))),
        4 => ProxyFilters::new().asn(64_500 + rng.u32(0..6)),
        _ => {
            let (_, _, lat, lon) = place(rng);
            ProxyFilters::new().within_km(lat, lon, [50.0, 300.0, 2_000.0][rng.usize(..3)])
        }
    };
    match rng.u8(0..10) {
        0..=3 => ProxyFilters::new(),
        4..=6 => leaf(rng),
        7 => ProxyFilters::new().any_of([leaf(rng), leaf(rng)]),
        8 => ProxyFilters::new().all_of([leaf(rng), leaf(rng)]),
        _ => ProxyFilters::new().none_of([leaf(rng)]),
    }
}

/// One acquire as a client saw it: when it started, when it returned, what it got.
#[derive(Clone, Copy)]
struct Grant {
    start: Instant,
    end: Instant,
    token: u64,
    proxy: u16,
}

#[derive(Default)]
struct ClientLog {
    ledger: ReleaseLedger,
    tokens: TokenLedger,
    grants: Vec<Grant>,
    violations: Vec<String>,
    ops: u64,
    misses: u64,
    renewed: u64,
    renew_lost: u64,
    double_releases: u64,
    held_past_ttl: u64,
    errors: u64,
    cancelled: u64,
    /// Acquires that failed in a way that may have granted a lease.
    unknown_acquires: u64,
    /// Releases whose first attempt failed (retried until answered).
    unknown_releases: u64,
    /// `(proxy, from, to)`: the lease was certainly live in between (I1).
    certain: Vec<(u16, Instant, Instant)>,
}

impl ClientLog {
    /// Adds another client's log.
    fn merge(&mut self, one: ClientLog) {
        self.ledger.merge(&one.ledger);
        self.tokens.merge(one.tokens);
        self.grants.extend(one.grants);
        self.violations.extend(one.violations);
        self.certain.extend(one.certain);
        self.ops += one.ops;
        self.misses += one.misses;
        self.renewed += one.renewed;
        self.renew_lost += one.renew_lost;
        self.double_releases += one.double_releases;
        self.held_past_ttl += one.held_past_ttl;
        self.errors += one.errors;
        self.cancelled += one.cancelled;
        self.unknown_acquires += one.unknown_acquires;
        self.unknown_releases += one.unknown_releases;
    }
}

struct Shared<S> {
    storage: S,
    cfg: ChurnConfig,
    proxies: Vec<Proxy>,
    never_active: HashSet<ProxyId>,
    stop: AtomicBool,
    reseeds: AtomicU64,
    reseed_lock: tokio::sync::Mutex<()>,
    /// After this, errors are no longer tolerated: a store that never
    /// recovers fails the run instead of hanging it.
    give_up_at: Instant,
}

impl<S: Storage> Shared<S> {
    /// Creates the pool and its proxies (again, after a data loss).
    async fn seed(&self) -> crate::Result<()> {
        self.storage
            .upsert_pool(&ProxyPool::new(self.cfg.pool.clone()))
            .await?;
        for p in &self.proxies {
            self.storage.upsert_proxy(p).await?;
        }
        Ok(())
    }

    /// Whether an error is expected under the configured faults. In
    /// data-loss mode a missing pool is seeded again (once, by whoever sees
    /// it first).
    async fn tolerate(&self, e: &Error) -> bool {
        if Instant::now() > self.give_up_at {
            return false;
        }
        if self.cfg.data_loss && matches!(e, Error::PoolNotFound(_)) {
            let _one = self.reseed_lock.lock().await;
            if matches!(self.storage.get_pool(&self.cfg.pool).await, Ok(None)) {
                // Seed completely, or the pool would stay short of proxies.
                while self.seed().await.is_err() {
                    if Instant::now() > self.give_up_at {
                        return false;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                self.reseeds.fetch_add(1, Ordering::Relaxed);
            }
            return true;
        }
        self.cfg.faults && e.is_retryable()
    }

    fn index(&self, id: &ProxyId) -> Option<u16> {
        id.as_str().strip_prefix('p')?.parse().ok()
    }
}

/// Runs the churn described by `cfg` on `storage` and checks everything
/// listed in the [module docs](self). Errors from the store end the run
/// unless `cfg.faults` tolerates them.
pub async fn run_churn<S: Storage + Clone>(storage: S, cfg: ChurnConfig) -> ChurnReport {
    assert!(
        cfg.proxies >= 10 && cfg.tasks > 0,
        "a churn needs proxies and tasks"
    );
    let proxies = churn_proxies(&cfg.pool, cfg.proxies, cfg.password.as_deref());
    let never_active = proxies
        .iter()
        .filter(|p| p.status != ProxyStatus::Active)
        .map(|p| p.id.clone())
        .collect();
    let cfg_duration = cfg.duration;
    let shared = Arc::new(Shared {
        storage,
        cfg,
        proxies,
        never_active,
        stop: AtomicBool::new(false),
        reseeds: AtomicU64::new(0),
        reseed_lock: tokio::sync::Mutex::new(()),
        give_up_at: Instant::now() + cfg_duration + Duration::from_secs(30),
    });
    shared.seed().await.expect("seed the churn pool");
    let baseline = shared
        .storage
        .pool_stats(&shared.cfg.pool)
        .await
        .expect("baseline stats");

    let started = Instant::now();
    let deadline = started + shared.cfg.duration;
    let clients: Vec<_> = (0..shared.cfg.tasks)
        .map(|t| tokio::spawn(client(shared.clone(), t as u64, deadline)))
        .collect();
    let sweeper = tokio::spawn(sweeper(shared.clone()));
    let checker = tokio::spawn(checker(shared.clone()));
    let flapper = tokio::spawn(flapper(shared.clone()));

    let mut log = ClientLog::default();
    for c in clients {
        log.merge(c.await.expect("a churn client panicked"));
    }
    shared.stop.store(true, Ordering::Relaxed);
    let (swept, sweep_ops, sweep_errors) = sweeper.await.expect("the sweeper panicked");
    let (samples, i6_checks, mut i6_effective, check_ops, check_errors, sampled) =
        checker.await.expect("the checker panicked");
    let (flips, down, flap_errors) = flapper.await.expect("the flapper panicked");
    let mut violations = std::mem::take(&mut log.violations);
    violations.extend(sampled);

    // Recovery: every abandoned lease expires and comes back.
    let ttl = shared.cfg.ttl.to_std().expect("positive TTL");
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let s = &shared.storage;
    let pool = &shared.cfg.pool;
    let mut final_swept = 0;
    // I6 where it surely has something to check: no client or sweeper has
    // run for a TTL, so the leases abandoned last are expired and still held.
    let before = loop {
        match s.pool_snapshot(pool).await {
            Ok(snap) => break snap,
            Err(e) if shared.tolerate(&e).await => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("snapshot before the final cleanup failed: {e}"),
        }
    };
    if before.leases.iter().any(|l| l.expires_at < before.taken_at) {
        i6_effective += 1;
    }
    let snapshot = loop {
        match drain(s, pool).await {
            Ok(n) => final_swept += n,
            Err(e) if shared.tolerate(&e).await => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => panic!("final cleanup failed: {e}"),
        }
        match s.pool_snapshot(pool).await {
            Ok(snap) => break snap,
            Err(e) if shared.tolerate(&e).await => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("final snapshot failed: {e}"),
        }
    };
    violations.extend(
        check_snapshot(&snapshot, true)
            .iter()
            .map(ToString::to_string),
    );
    for lease in snapshot
        .leases
        .iter()
        .filter(|l| l.expires_at < before.taken_at)
    {
        violations.push(
            Violation::ExpiredLeaseHeld {
                lease: lease.id,
                expires_at: lease.expires_at,
            }
            .to_string(),
        );
    }
    if !snapshot.leases.is_empty() || snapshot.stats.active_leases != 0 {
        violations.push(format!(
            "end: {} leases still live after every client stopped and one TTL passed",
            snapshot
                .leases
                .len()
                .max(snapshot.stats.active_leases as usize)
        ));
    }
    let end = &snapshot.stats;
    if shared.cfg.data_loss {
        // Counters and tokens restart with the data: nothing to compare.
    } else if shared.cfg.faults {
        violations.extend(check_bounds(&log, &baseline, end));
    } else {
        violations.extend(
            log.ledger
                .check(&baseline, end)
                .iter()
                .map(ToString::to_string),
        );
    }
    if shared.cfg.data_loss {
        // Counters and tokens restart with the data, but a repeat release
        // must never free capacity, in any epoch.
        if log.ledger.freed_twice > 0 {
            violations.push(format!(
                "I4: {} repeat releases freed capacity",
                log.ledger.freed_twice
            ));
        }
    } else {
        violations.extend(log.tokens.violations().iter().map(ToString::to_string));
        violations.extend(tokens_follow_real_time(&mut log.grants));
    }
    violations.extend(over_cap_while_certainly_live(&shared, &mut log.certain));
    violations.extend(flapping_leased_while_down(&shared, &log.grants, &down));

    ChurnReport {
        pool: pool.clone(),
        operations: log.ops + sweep_ops + check_ops + flips,
        acquired: log.ledger.acquired,
        misses: log.misses,
        renewed: log.renewed,
        renew_lost: log.renew_lost,
        released: log.ledger.released
            + log.ledger.released_late
            + log.ledger.released_after_reclaim,
        double_releases: log.double_releases,
        abandoned: log.ledger.abandoned,
        held_past_ttl: log.held_past_ttl,
        flips,
        samples,
        i6_checks,
        i6_effective,
        swept: swept + final_swept as u64,
        errors: log.errors + sweep_errors + check_errors + flap_errors,
        cancelled: log.cancelled,
        unknown_acquires: log.unknown_acquires,
        unknown_releases: log.unknown_releases,
        certain_intervals: log.certain.len() as u64,
        reseeds: shared.reseeds.load(Ordering::Relaxed),
        took: started.elapsed(),
        end: Some(snapshot.stats),
        violations,
    }
}

/// Reclaims every expired lease of the pool, in batches of 500.
async fn drain<S: Storage>(s: &S, pool: &PoolId) -> crate::Result<usize> {
    let mut total = 0;
    loop {
        let n = s.cleanup_expired(pool, 500).await?;
        total += n;
        if n < 500 {
            return Ok(total);
        }
    }
}

async fn client<S: Storage + Clone>(sh: Arc<Shared<S>>, task: u64, deadline: Instant) -> ClientLog {
    let cfg = &sh.cfg;
    let s = &sh.storage;
    let mut rng = fastrand::Rng::with_seed(cfg.seed.wrapping_mul(1_000_003).wrapping_add(task));
    let mut log = ClientLog::default();
    let ttl_ms = cfg.ttl.num_milliseconds().max(1) as u64;
    let consumer = format!("churn-{task:02}");
    while Instant::now() < deadline {
        let filters = random_filters(&mut rng);
        let request = AcquireRequest::new(cfg.pool.clone())
            .consumer(consumer.as_str())
            .duration(cfg.ttl)
            .selector(Selector::ALL[rng.usize(..Selector::ALL.len())])
            .filters(filters.clone());
        let start = Instant::now();
        log.ops += 1;
        let answer = if cfg.faults && rng.u8(0..100) < 3 {
            // The caller gives up mid-flight: the future is dropped.
            let patience = Duration::from_micros(rng.u64(0..800));
            match tokio::time::timeout(patience, s.acquire(&request)).await {
                Ok(answer) => answer,
                Err(_) => {
                    log.cancelled += 1;
                    log.unknown_acquires += 1;
                    continue;
                }
            }
        } else {
            s.acquire(&request).await
        };
        let lease = match answer {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                log.misses += 1;
                tokio::time::sleep(Duration::from_millis(rng.u64(1..4))).await;
                continue;
            }
            Err(e) if sh.tolerate(&e).await => {
                log.errors += 1;
                if !e.request_not_sent() {
                    log.unknown_acquires += 1;
                }
                tokio::time::sleep(Duration::from_millis(rng.u64(5..20))).await;
                continue;
            }
            Err(e) => {
                log.violations.push(format!("acquire failed: {e}"));
                return log;
            }
        };
        let end = Instant::now();
        log.ledger.acquired += 1;
        log.tokens.record(lease.token);
        let Some(idx) = sh.index(&lease.proxy.id) else {
            log.violations
                .push(format!("leased unknown proxy {}", lease.proxy.id));
            continue;
        };
        log.grants.push(Grant {
            start,
            end,
            token: lease.token,
            proxy: idx,
        });
        let seeded = &sh.proxies[usize::from(idx)];
        if !filters.matches(seeded) {
            log.violations.push(format!(
                "filter: proxy {} does not match {filters:?}",
                seeded.id
            ));
        }
        if sh.never_active.contains(&seeded.id) {
            log.violations.push(
                Violation::InactiveProxyLeased {
                    proxy: seeded.id.clone(),
                    status: seeded.status,
                }
                .to_string(),
            );
        }
        if lease.proxy.credentials != seeded.credentials {
            log.violations
                .push(format!("lease of {} carries other credentials", seeded.id));
        }

        let roll = rng.u8(0..100);
        if roll < 6 {
            // The client crashes holding the lease.
            log.ledger.abandoned += 1;
            continue;
        }
        let hold = if roll < 10 {
            log.held_past_ttl += 1;
            ttl_ms + rng.u64(20..80)
        } else {
            rng.u64(0..=ttl_ms / 10)
        };
        if hold == 0 {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(Duration::from_millis(hold)).await;
        }
        let mut lease = lease;
        if rng.u8(0..100) < 15 {
            log.ops += 1;
            match s.renew(&lease, cfg.ttl).await {
                Ok(renewed) => {
                    if renewed.id != lease.id || renewed.expires_at < lease.expires_at {
                        log.violations
                            .push(format!("renew of {} moved it backwards", lease.id));
                    }
                    log.renewed += 1;
                    lease = renewed;
                }
                Err(Error::LeaseLost { .. }) => log.renew_lost += 1,
                Err(e) if sh.tolerate(&e).await => log.errors += 1,
                Err(e) => {
                    log.violations.push(format!("renew failed: {e}"));
                    return log;
                }
            }
        }
        // Once an attempt may have applied, the answer of a retry says
        // nothing certain about this lease: count it unknown, once.
        let mut maybe_applied = false;
        let outcome = loop {
            log.ops += 1;
            let attempt = Instant::now();
            match s.release(&lease).await {
                Ok(outcome) => {
                    if outcome == ReleaseOutcome::Released {
                        log.certain.push((idx, end, attempt));
                    }
                    break outcome;
                }
                Err(e) if sh.tolerate(&e).await => {
                    log.errors += 1;
                    if !maybe_applied && !e.request_not_sent() {
                        log.unknown_releases += 1;
                        maybe_applied = true;
                    }
                    tokio::time::sleep(Duration::from_millis(rng.u64(5..20))).await;
                }
                Err(e) => {
                    log.violations.push(format!("release failed: {e}"));
                    return log;
                }
            }
        };
        log.ledger.first_release(outcome);
        if rng.u8(0..100) < 5 {
            log.ops += 1;
            log.double_releases += 1;
            match s.release(&lease).await {
                Ok(again) => log.ledger.repeat_release(again),
                Err(e) if sh.tolerate(&e).await => log.errors += 1,
                Err(e) => log.violations.push(format!("second release failed: {e}")),
            }
        }
    }
    log
}

/// Reclaims expired leases every `sweep_every`: `(reclaimed, calls, errors)`.
async fn sweeper<S: Storage>(sh: Arc<Shared<S>>) -> (u64, u64, u64) {
    let (mut swept, mut ops, mut errors) = (0, 0, 0);
    while !sh.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(sh.cfg.sweep_every).await;
        ops += 1;
        match drain(&sh.storage, &sh.cfg.pool).await {
            Ok(n) => swept += n as u64,
            Err(e) if sh.tolerate(&e).await => errors += 1,
            Err(e) => panic!("sweep failed: {e}"),
        }
    }
    (swept, ops, errors)
}

/// Samples snapshots while clients run:
/// `(samples, I6 checks, I6 checks with expired leases, calls, errors, violations)`.
async fn checker<S: Storage>(sh: Arc<Shared<S>>) -> (u64, u64, u64, u64, u64, Vec<String>) {
    let (mut samples, mut i6, mut i6_effective, mut ops, mut errors) = (0, 0, 0, 0, 0);
    let mut found = Vec::new();
    let s = &sh.storage;
    let pool = &sh.cfg.pool;
    while !sh.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(sh.cfg.sample_every).await;
        ops += 1;
        let snap = match s.pool_snapshot(pool).await {
            Ok(snap) => snap,
            Err(e) if sh.tolerate(&e).await => {
                errors += 1;
                continue;
            }
            Err(e) => panic!("snapshot failed: {e}"),
        };
        samples += 1;
        found.extend(check_snapshot(&snap, false).iter().map(ToString::to_string));
        for lease in &snap.leases {
            if sh.never_active.contains(&lease.proxy.id) {
                found.push(format!(
                    "I7: snapshot holds lease {} on never-active proxy {}",
                    lease.id, lease.proxy.id
                ));
            }
        }
        if samples % 5 != 0 {
            continue;
        }
        // I6: after a cleanup, nothing that expired before it holds capacity.
        let before = snap.taken_at;
        ops += 2;
        let after = match drain(s, pool).await {
            Ok(_) => s.pool_snapshot(pool).await,
            Err(e) => Err(e),
        };
        match after {
            Ok(after) => {
                i6 += 1;
                if snap.leases.iter().any(|l| l.expires_at < before) {
                    i6_effective += 1;
                }
                for lease in after.leases.iter().filter(|l| l.expires_at < before) {
                    found.push(
                        Violation::ExpiredLeaseHeld {
                            lease: lease.id,
                            expires_at: lease.expires_at,
                        }
                        .to_string(),
                    );
                }
            }
            Err(e) if sh.tolerate(&e).await => errors += 1,
            Err(e) => panic!("I6 check failed: {e}"),
        }
    }
    (samples, i6, i6_effective, ops, errors, found)
}

/// Intervals `[down, up)` in which a flapping proxy was certainly not active.
type DownIntervals = HashMap<u16, Vec<(Instant, Instant)>>;

/// Flips flapping proxies between active and inactive:
/// `(results applied, down intervals, errors)`.
async fn flapper<S: Storage>(sh: Arc<Shared<S>>) -> (u64, DownIntervals, u64) {
    let Some(every) = sh.cfg.flap_every else {
        return (0, HashMap::new(), 0);
    };
    let ids = flapping(sh.cfg.proxies);
    let mut rng = fastrand::Rng::with_seed(sh.cfg.seed ^ 0xf1a9);
    let mut down_since: HashMap<u16, Instant> = HashMap::new();
    let mut intervals: DownIntervals = HashMap::new();
    let (mut flips, mut errors) = (0, 0);
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    while !sh.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(every).await;
        let idx = rng.u16(ids.clone());
        let going_down = !down_since.contains_key(&idx);
        let status = if going_down {
            ProxyStatus::Inactive
        } else {
            ProxyStatus::Active
        };
        let result = HealthCheckResult::new(
            sh.cfg.pool.clone(),
            sh.proxies[usize::from(idx)].id.clone(),
            status,
            Utc::now(),
        )
        .with_latency_ms(rng.u32(5..500));
        let up_start = Instant::now();
        match sh.storage.apply_health_check_result(&result).await {
            Ok(Some(p)) if p.status == status => {
                flips += 1;
                if going_down {
                    down_since.insert(idx, Instant::now());
                } else if let Some(down) = down_since.remove(&idx) {
                    intervals.entry(idx).or_default().push((down, up_start));
                }
            }
            // Not applied as asked (unknown proxy, a newer result), or
            // unknown whether it applied: the proxy's state is unknown from
            // now on, so it leaves the I7 bookkeeping.
            Ok(_) => {
                if let Some(down) = down_since.remove(&idx) {
                    intervals.entry(idx).or_default().push((down, up_start));
                }
                down_since.insert(idx, far);
            }
            Err(e) if sh.tolerate(&e).await => {
                errors += 1;
                if let Some(down) = down_since.remove(&idx) {
                    intervals.entry(idx).or_default().push((down, up_start));
                }
                down_since.insert(idx, far);
            }
            Err(e) => panic!("health result failed: {e}"),
        }
    }
    // Still down at the end: down until the end of time.
    for (idx, down) in down_since {
        intervals.entry(idx).or_default().push((down, far));
    }
    (flips, intervals, errors)
}

/// I7 for flapping proxies: no acquire that ran wholly inside an interval in
/// which the proxy was not active returned it.
fn flapping_leased_while_down<S>(
    sh: &Shared<S>,
    grants: &[Grant],
    down: &DownIntervals,
) -> Vec<String> {
    let mut out = Vec::new();
    for g in grants {
        let Some(spans) = down.get(&g.proxy) else {
            continue;
        };
        if spans.iter().any(|&(d, u)| d <= g.start && g.end <= u) {
            out.push(
                Violation::InactiveProxyLeased {
                    proxy: sh.proxies[usize::from(g.proxy)].id.clone(),
                    status: ProxyStatus::Inactive,
                }
                .to_string(),
            );
        }
    }
    out
}

/// I1 from the clients' side, between samples: at no instant may more
/// leases of a proxy be certainly live (granted, and later released with
/// `Released`) than its cap.
fn over_cap_while_certainly_live<S>(
    sh: &Shared<S>,
    certain: &mut [(u16, Instant, Instant)],
) -> Vec<String> {
    certain.sort_unstable_by_key(|&(proxy, from, _)| (proxy, from));
    let mut out = Vec::new();
    for run in certain.chunk_by(|a, b| a.0 == b.0) {
        let proxy = &sh.proxies[usize::from(run[0].0)];
        let Some(cap) = proxy.max_concurrency else {
            continue;
        };
        // Ends sort before starts at the same instant: touching is not overlapping.
        let mut events: Vec<(Instant, i32)> = run
            .iter()
            .filter(|&&(_, from, to)| from < to)
            .flat_map(|&(_, from, to)| [(from, 1), (to, -1)])
            .collect();
        events.sort_unstable();
        let (mut live, mut worst) = (0i32, 0i32);
        for (_, delta) in events {
            live += delta;
            worst = worst.max(live);
        }
        if worst > cap as i32 {
            out.push(
                Violation::OverLeased {
                    proxy: proxy.id.clone(),
                    leases: worst as u32,
                    max_concurrency: cap,
                }
                .to_string(),
            );
        }
    }
    out
}

/// I5 in real time: an acquire that began after another returned got a
/// larger token.
fn tokens_follow_real_time(grants: &mut [Grant]) -> Vec<String> {
    let mut by_end: Vec<(Instant, u64)> = grants.iter().map(|g| (g.end, g.token)).collect();
    by_end.sort_unstable_by_key(|&(end, _)| end);
    grants.sort_unstable_by_key(|g| g.start);
    let mut out = Vec::new();
    let (mut next, mut max_done) = (0, None::<u64>);
    for g in grants.iter() {
        while next < by_end.len() && by_end[next].0 < g.start {
            max_done = max_done.max(Some(by_end[next].1));
            next += 1;
        }
        if let Some(prev) = max_done
            && prev >= g.token
        {
            out.push(format!(
                "I5 (real time): an acquire got token {} after another had already returned {prev}",
                g.token
            ));
        }
    }
    out
}

/// I3/I4 under faults: failed calls may or may not have applied, so the
/// store's counters must fall between what was certainly done and that plus
/// every call whose outcome is unknown.
fn check_bounds(log: &ClientLog, base: &PoolStatsSnapshot, end: &PoolStatsSnapshot) -> Vec<String> {
    let l = &log.ledger;
    let mut out = Vec::new();
    let mut within = |what: &str, store: u64, low: u64, high: u64| {
        if store < low || store > high {
            out.push(format!(
                "I4 (under faults): the store counts {store} {what}, expected {low}..={high}"
            ));
        }
    };
    let granted = end.total_leases.saturating_sub(base.total_leases);
    let released = end.released_leases.saturating_sub(base.released_leases);
    let expired = end.expired_leases.saturating_sub(base.expired_leases);
    let sure_released = l.released + l.revoked;
    let sure_expired = l.abandoned + l.released_late + l.released_after_reclaim;
    within(
        "leases granted",
        granted,
        l.acquired,
        l.acquired + log.unknown_acquires,
    );
    within(
        "released leases",
        released,
        sure_released,
        sure_released + log.unknown_releases,
    );
    within(
        "expired leases",
        expired,
        sure_expired.saturating_sub(log.unknown_releases),
        sure_expired + log.unknown_acquires,
    );
    if l.freed_twice > 0 {
        out.push(format!(
            "I4: {} repeat releases freed capacity",
            l.freed_twice
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(start: u64, end: u64, token: u64) -> Grant {
        let t0 = Instant::now();
        Grant {
            start: t0 + Duration::from_millis(start),
            end: t0 + Duration::from_millis(end),
            token,
            proxy: 0,
        }
    }

    #[test]
    fn overlapping_acquires_may_take_tokens_in_any_order() {
        let mut g = vec![grant(0, 10, 2), grant(5, 15, 1), grant(20, 30, 3)];
        assert!(tokens_follow_real_time(&mut g).is_empty());
    }

    #[test]
    fn a_later_acquire_with_a_smaller_token_is_caught() {
        let mut g = vec![grant(0, 10, 5), grant(11, 20, 4)];
        let found = tokens_follow_real_time(&mut g);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("I5"), "{found:?}");
    }

    #[test]
    fn churn_pools_mix_every_kind_of_proxy() {
        let pool = PoolId::from("mix");
        let p = churn_proxies(&pool, 50, Some("pw"));
        assert_eq!(p.len(), 50);
        assert_eq!(
            p.iter().filter(|p| p.status != ProxyStatus::Active).count(),
            5
        );
        assert!(p.iter().any(|p| p.max_concurrency.is_none()));
        assert!(p.iter().any(|p| p.latitude.is_none()));
        for p in &p {
            crate::validate::proxy(p).unwrap();
        }
        assert!(flapping(50).all(|i| p[usize::from(i)].status == ProxyStatus::Active));
    }
}
