//! A churn driver that checks I1–I7 on any store while it runs.
//!
//! [`run_churn`] seeds a pool of varied proxies (countries, cities, sources,
//! protocols, locations, latencies, caps of 1, 2, 4 or none, some
//! permanently not active, some flapping), then runs for
//! [`ChurnConfig::duration`], and on until the run has done what
//! [`ChurnConfig::exercise`] asks (so every check has something to check,
//! by construction rather than by luck) and no [`HoldOpen`] guard is left:
//!
//! - `tasks` clients doing random acquires (every selector, random
//!   filters), holds (some past the TTL), renewals, releases, double
//!   releases and abandons (a crashed holder);
//! - a sweeper reclaiming expired leases in bounded batches;
//! - a flapper turning some proxies inactive and back through health results;
//! - an independent checker sampling consistent snapshots: I1–I3 on each,
//!   I7 for proxies that are never active, every live lease explained (no
//!   leaked lease), and every fifth sample I6 (a cleanup, then no lease that
//!   had expired before it may still hold capacity). Every other I6 check
//!   is a probe: with the clients, sweeper and flapper held between calls,
//!   it plants a lease of a few milliseconds, waits until the store's clock
//!   has passed its deadline, then cleans up and checks; that lease is
//!   certainly expired and not reclaimed, so the check certainly has
//!   something to check.
//!
//! At the end it checks that every live lease is explained, plants one more
//! expired lease, waits one TTL, reclaims what is left, and checks that every
//! abandoned lease came back, that the stats equal a recomputation and that
//! the lifetime counters equal what the clients observed (I3, I4). Fencing
//! tokens are checked for duplicates and against the real-time order of the
//! acquires (I5: an acquire that began after another one returned has a larger
//! token). Every leased proxy is checked against the request's filters with
//! the reference evaluator [`ProxyFilters::matches`](crate::ProxyFilters::matches), and flapping proxies
//! against the intervals in which they were certainly not active (I7).
//!
//! With [`ChurnConfig::faults`] the clients tolerate retryable errors (a
//! fault injector is running): outcomes of failed calls are unknown, so the
//! lifetime counters are checked against bounds instead of exact figures.

mod checks;
mod pool;
mod progress;
mod tasks;

pub use pool::churn_proxies;
pub use progress::{ChurnProgress, ErrorKinds, Exercise, HoldOpen};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use parking_lot::Mutex;
use tokio::sync::{Notify, RwLock};

use crate::invariants::{ReleaseLedger, TokenLedger, Violation, check_snapshot};
use crate::model::{ConsumerName, LeaseId, PoolId, PoolStatsSnapshot, Proxy, ProxyPool};
use crate::{Error, ProxyId, ProxyStatus, Storage};

use checks::{
    check_bounds, flapping_leased_while_down, leaked_leases, over_cap_while_certainly_live,
    tokens_follow_real_time,
};
use tasks::{checker, client, drain, flapper, plant_expiring_lease, sweeper};

/// How a churn run is shaped. `Debug` hides the password (I8).
#[derive(Clone)]
pub struct ChurnConfig {
    /// The pool to create and churn (it must not exist yet).
    pub pool: PoolId,
    /// Concurrent clients.
    pub tasks: usize,
    /// Least length of the run (see [`ChurnConfig::exercise`]).
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
    /// a loss run (snapshots, filters, I7 of never-active proxies, leaks, the
    /// end state).
    pub data_loss: bool,
    /// Whether fencing tokens must keep rising across a data loss too (the
    /// Redis store's follow the server clock): with `data_loss`, the token
    /// checks run all the same.
    pub tokens_survive_data_loss: bool,
    /// What the run must have done before it ends: clients go on past
    /// `duration` until it is reached.
    pub exercise: Exercise,
    /// How much longer than `duration` the run may go on to reach
    /// `exercise` (or while a [`HoldOpen`] guard lives); what it still
    /// lacks then is reported in [`ChurnReport::shortfalls`].
    pub max_extension: Duration,
    /// Live figures of the run, for a fault injector beside it.
    pub progress: Arc<ChurnProgress>,
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
            .field("tokens_survive_data_loss", &self.tokens_survive_data_loss)
            .field("exercise", &self.exercise)
            .field("max_extension", &self.max_extension)
            .finish_non_exhaustive()
    }
}

impl ChurnConfig {
    /// 64 tasks on 48 proxies for at least `duration` (and until the default
    /// [`Exercise`] is reached, for at most 60 s more), TTL 300 ms, a sweep
    /// every 100 ms, a sample every 100 ms and a health flip every 20 ms.
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
            tokens_survive_data_loss: false,
            exercise: Exercise::default(),
            max_extension: Duration::from_secs(60),
            progress: ChurnProgress::new(),
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
    /// Leases granted (to clients and to the I6 probe).
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
    /// Leases of a few milliseconds the I6 probe planted and let expire
    /// (counted in `acquired`).
    pub planted: u64,
    /// Leases held past their TTL before release.
    pub held_past_ttl: u64,
    /// Health results applied by the flapper.
    pub flips: u64,
    /// Snapshots checked while clients ran.
    pub samples: u64,
    /// Samples that also checked I6 after a cleanup.
    pub i6_checks: u64,
    /// Leases reclaimed by the sweeper, the checker and the final cleanup.
    pub swept: u64,
    /// Calls that failed with a tolerated error (fault mode).
    pub errors: u64,
    /// Tolerated errors by kind, setup and recovery included.
    pub error_kinds: ErrorKinds,
    /// Acquire futures dropped mid-flight (fault mode, 3% of acquires).
    pub cancelled: u64,
    /// Acquires whose outcome is unknown (timed out, interrupted or
    /// dropped): each may have granted a lease no client saw, which then
    /// expired or was released by the store's compensation. The width of
    /// the bounds I4 is checked against.
    pub unknown_acquires: u64,
    /// Releases whose outcome is unknown: an attempt that may have applied
    /// failed, and the retry found nothing held (`ReleasedOrGone`), so the
    /// lease was either released by that attempt or had expired.
    pub unknown_releases: u64,
    /// Leases certainly live over an interval the clients saw (granted,
    /// then released with `Released`), checked against the caps (I1).
    pub certain_intervals: u64,
    /// I6 checks that could have failed: checker samples, and the final
    /// check, that held a lease already expired before the cleanup they
    /// then checked. The probes make sure there are some.
    pub i6_effective: u64,
    /// Live leases checked to be explained (held, abandoned, or within what
    /// acquires of unknown outcome may have granted), samples and end together.
    pub leases_explained: u64,
    /// Times the pool was found gone and seeded again (data-loss mode).
    pub reseeds: u64,
    /// What [`ChurnConfig::exercise`] asked that the run did not reach
    /// within its extension. A correct store on any machine gives none.
    pub shortfalls: Vec<String>,
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
             {} health flips, {} samples ({} with I6, {} of them with expired leases; \
             {} leases planted to expire), \
             {} certainly-live intervals, {} live leases explained, \
             {} swept, {} tolerated errors ({} timeouts, {} interrupted, {} unavailable, \
             {} pool not found), {} cancelled acquires, \
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
            self.planted,
            self.certain_intervals,
            self.leases_explained,
            self.swept,
            self.errors,
            self.error_kinds.timeouts,
            self.error_kinds.interrupted,
            self.error_kinds.unavailable,
            self.error_kinds.pools_not_found,
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
        if !self.shortfalls.is_empty() {
            out += &format!("; not reached: {}", self.shortfalls.join(", "));
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

    /// Panics with the summary if the run did not do what its
    /// [`ChurnConfig::exercise`] asked (a store too slow or too broken to
    /// get there within [`ChurnConfig::max_extension`]).
    pub fn assert_exercised(&self) {
        assert!(
            self.shortfalls.is_empty(),
            "the run did not exercise every check: {}",
            self.summary()
        );
    }
    /// What every clean run of the default shape ([`ChurnConfig::new`],
    /// no faults) must show beyond "no violations": it exercised each path
    /// and each check had something to check. The harness runs until it
    /// has (see [`Exercise`]), so these hold by construction, not by luck.
    pub fn assert_thorough(&self) {
        self.assert_clean();
        self.assert_exercised();
        assert!(
            self.acquired >= 500,
            "too few leases to mean anything: {self:?}"
        );
        assert!(self.abandoned > 0 && self.double_releases > 0 && self.renewed > 0);
        assert!(self.held_past_ttl > 0 && self.flips > 0 && self.i6_checks > 0);
        assert!(
            self.i6_effective >= 2 && self.certain_intervals >= 500 && self.leases_explained > 0,
            "the I6, client-side I1 and leak checks had something to check: {}",
            self.summary()
        );
        let end = self.end.as_ref().expect("the end state");
        assert!(
            end.expired_leases >= self.abandoned,
            "abandoned leases came back"
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
    /// Leases the I6 probe planted (also counted as abandoned: they expire).
    planted: u64,
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
        self.planted += one.planted;
    }
}

/// Whether a tolerated error leaves the call's outcome unknown: it may have
/// been applied (`Timeout`, `Interrupted`). `Unavailable` certainly was not,
/// nor was `PoolNotFound`.
fn outcome_unknown(e: &Error) -> bool {
    e.is_retryable() && !e.request_not_sent()
}

/// Every lease id a client (or the probe) was granted: `true` once its
/// release was answered (it must not be live any more).
type Granted = HashMap<LeaseId, bool>;

struct Shared<S> {
    storage: S,
    cfg: ChurnConfig,
    proxies: Vec<Proxy>,
    never_active: HashSet<ProxyId>,
    progress: Arc<ChurnProgress>,
    stop: AtomicBool,
    reseed_lock: tokio::sync::Mutex<()>,
    /// Clients, sweeper and flapper hold it (read) around each store call;
    /// the I6 probe takes it (write) to plant a lease nobody reclaims early.
    quiet: RwLock<()>,
    granted: Mutex<Granted>,
    /// Per client (the probe last): odd while an acquire is in flight.
    acquiring: Vec<AtomicU64>,
    /// Notified when an acquire in flight ends.
    acquire_ended: Notify,
    /// Per client (the probe last): acquires of unknown outcome so far.
    unknown: Vec<AtomicU64>,
    /// The slot in `acquiring` and `unknown` of each consumer name.
    slots: HashMap<ConsumerName, usize>,
    /// Clients stop by then, whatever is still to reach.
    hard_deadline: Instant,
    /// After this, errors are no longer tolerated: a store that never
    /// recovers fails the run instead of hanging it.
    give_up_at: Mutex<Instant>,
}

/// Consumer name of client `task`.
fn consumer_of(task: usize) -> String {
    format!("churn-{task:02}")
}

/// Consumer name of the I6 probe.
const PROBE_CONSUMER: &str = "churn-probe";

impl<S> Shared<S> {
    /// The index of a churn proxy id (`p007` is 7).
    fn index(&self, id: &ProxyId) -> Option<u16> {
        id.as_str().strip_prefix('p')?.parse().ok()
    }
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

    /// Whether an error is expected under the configured faults (and then
    /// counts it in the progress). In data-loss mode a missing pool is
    /// seeded again (once, by whoever sees it first).
    async fn tolerate(&self, e: &Error) -> bool {
        let tolerated = self.tolerates(e).await;
        if tolerated {
            let p = &self.progress;
            ChurnProgress::add(&p.errors);
            ChurnProgress::add(match e {
                Error::Timeout { .. } => &p.timeouts,
                Error::Interrupted { .. } => &p.interrupted,
                Error::Unavailable { .. } => &p.unavailable,
                _ => &p.pools_not_found,
            });
        }
        tolerated
    }

    async fn tolerates(&self, e: &Error) -> bool {
        if Instant::now() > *self.give_up_at.lock() {
            return false;
        }
        if self.cfg.data_loss && matches!(e, Error::PoolNotFound(_)) {
            let _one = self.reseed_lock.lock().await;
            if matches!(self.storage.get_pool(&self.cfg.pool).await, Ok(None)) {
                // Seed completely, or the pool would stay short of proxies.
                while self.seed().await.is_err() {
                    if Instant::now() > *self.give_up_at.lock() {
                        return false;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                ChurnProgress::add(&self.progress.reseeds);
            }
            return true;
        }
        self.cfg.faults && e.is_retryable()
    }

    /// What the run still lacks of its exercise.
    fn shortfalls(&self) -> Vec<String> {
        self.progress
            .shortfalls(&self.cfg.exercise, self.cfg.flap_every.is_some())
    }

    /// Whether clients go on: before the duration, or while something is
    /// still to reach or held open, and never past the hard deadline.
    fn keep_running(&self, deadline: Instant) -> bool {
        let now = Instant::now();
        now < self.hard_deadline
            && (now < deadline
                || self.progress.held_open()
                || !self
                    .progress
                    .reached(&self.cfg.exercise, self.cfg.flap_every.is_some()))
    }
}

/// Runs a setup call, retrying retryable errors for a minute.
async fn retry_setup<T, Fut: std::future::Future<Output = crate::Result<T>>>(
    what: &str,
    mut call: impl FnMut() -> Fut,
) -> T {
    let (answer, took) = super::retry_while_retryable(Duration::from_secs(60), &mut call).await;
    answer.unwrap_or_else(|e| panic!("{what} failed after {took:?}: {e}"))
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
    let started = Instant::now();
    let hard_deadline = started + cfg.duration + cfg.max_extension;
    let slots = (0..cfg.tasks)
        .map(consumer_of)
        .chain([PROBE_CONSUMER.to_owned()])
        .enumerate()
        .map(|(slot, name)| (ConsumerName::from(name), slot))
        .collect();
    let shared = Arc::new(Shared {
        storage,
        proxies,
        never_active,
        progress: cfg.progress.clone(),
        stop: AtomicBool::new(false),
        reseed_lock: tokio::sync::Mutex::new(()),
        quiet: RwLock::new(()),
        granted: Mutex::default(),
        acquiring: (0..=cfg.tasks).map(|_| AtomicU64::new(0)).collect(),
        acquire_ended: Notify::new(),
        unknown: (0..=cfg.tasks).map(|_| AtomicU64::new(0)).collect(),
        slots,
        hard_deadline,
        give_up_at: Mutex::new(hard_deadline + Duration::from_secs(30)),
        cfg,
    });
    let _ended = progress::Ended(shared.progress.clone());
    // A busy machine may time out a setup call: retry those (for a minute).
    retry_setup("seeding the churn pool", || shared.seed()).await;
    let baseline = retry_setup("the baseline stats", || {
        shared.storage.pool_stats(&shared.cfg.pool)
    })
    .await;

    let deadline = started + shared.cfg.duration;
    let clients: Vec<_> = (0..shared.cfg.tasks)
        .map(|t| tokio::spawn(client(shared.clone(), t, deadline)))
        .collect();
    let sweeper = tokio::spawn(sweeper(shared.clone()));
    let checker = tokio::spawn(checker(shared.clone()));
    let flapper = tokio::spawn(flapper(shared.clone()));

    let mut log = ClientLog::default();
    for c in clients {
        log.merge(c.await.expect("a churn client panicked"));
    }
    let shortfalls = shared.shortfalls();
    shared.stop.store(true, Ordering::Relaxed);
    *shared.give_up_at.lock() = Instant::now() + Duration::from_secs(30);
    let (swept, sweep_ops, sweep_errors) = sweeper.await.expect("the sweeper panicked");
    let checked = checker.await.expect("the checker panicked");
    let (flips, down, flap_errors) = flapper.await.expect("the flapper panicked");
    log.merge(checked.probe);
    let mut violations = std::mem::take(&mut log.violations);
    violations.extend(checked.violations);
    let mut i6_effective = checked.i6_effective;
    let mut leases_explained = checked.leases_explained;

    let s = &shared.storage;
    let pool = &shared.cfg.pool;
    let snapshot_until_answered = |what: &'static str| {
        let shared = &shared;
        async move {
            loop {
                match shared.storage.pool_snapshot(&shared.cfg.pool).await {
                    Ok(snap) => break snap,
                    Err(e) if shared.tolerate(&e).await => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => panic!("{what} failed: {e}"),
                }
            }
        }
    };
    // No client runs any more: every live lease is held, abandoned, or
    // within what acquires of unknown outcome may have granted.
    let live = snapshot_until_answered("the snapshot for the leak check").await;
    let (leaked, explained) = leaked_leases(&shared, &live, true, &mut HashSet::new()).await;
    violations.extend(leaked);
    leases_explained += explained;

    // I6 where it surely has something to check: a lease planted now, with
    // nothing else running, is expired and still held one TTL later.
    let mut planted = ClientLog::default();
    plant_expiring_lease(&shared, &mut planted).await;
    log.merge(planted);
    let ttl = shared.cfg.ttl.to_std().expect("positive TTL");
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let before = snapshot_until_answered("the snapshot before the final cleanup").await;
    if before.leases.iter().any(|l| l.expires_at < before.taken_at) {
        i6_effective += 1;
    }
    let mut final_swept = 0;
    let snapshot = loop {
        match drain(s, pool).await {
            Ok(n) => final_swept += n,
            Err(e) if shared.tolerate(&e).await => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => panic!("final cleanup failed: {e}"),
        }
        break snapshot_until_answered("the final snapshot").await;
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
        // Counters restart with the data (tokens too, unless the store's
        // follow a clock), but a repeat release must never free capacity,
        // in any epoch.
        if log.ledger.freed_twice > 0 {
            violations.push(format!(
                "I4: {} repeat releases freed capacity",
                log.ledger.freed_twice
            ));
        }
    }
    if !shared.cfg.data_loss || shared.cfg.tokens_survive_data_loss {
        violations.extend(log.tokens.violations().iter().map(ToString::to_string));
        violations.extend(tokens_follow_real_time(&mut log.grants));
    }
    violations.extend(over_cap_while_certainly_live(&shared, &mut log.certain));
    violations.extend(flapping_leased_while_down(&shared, &log.grants, &down));

    ChurnReport {
        pool: pool.clone(),
        operations: log.ops + sweep_ops + checked.ops + flips,
        acquired: log.ledger.acquired,
        misses: log.misses,
        renewed: log.renewed,
        renew_lost: log.renew_lost,
        released: log.ledger.released
            + log.ledger.released_late
            + log.ledger.released_after_reclaim
            + log.ledger.released_or_gone,
        double_releases: log.double_releases,
        abandoned: log.ledger.abandoned - log.planted,
        planted: log.planted,
        held_past_ttl: log.held_past_ttl,
        flips,
        samples: checked.samples,
        i6_checks: checked.i6_checks,
        i6_effective,
        leases_explained,
        swept: swept + checked.swept + final_swept as u64,
        errors: log.errors + sweep_errors + checked.errors + flap_errors,
        error_kinds: shared.progress.error_kinds(),
        cancelled: log.cancelled,
        unknown_acquires: log.unknown_acquires,
        unknown_releases: log.ledger.released_or_gone,
        certain_intervals: log.certain.len() as u64,
        reseeds: shared.progress.reseeds(),
        shortfalls,
        took: started.elapsed(),
        end: Some(snapshot.stats),
        violations,
    }
}
