//! The tasks of a churn run: clients, the sweeper, the checker (with the I6
//! probe) and the health flapper.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use tokio::sync::Notify;

use super::checks::leaked_leases;
use super::pool::{flapping, random_filters, uncapped};
use super::progress::ChurnProgress;
use super::{ClientLog, Grant, PROBE_CONSUMER, Shared, consumer_of, outcome_unknown};
use crate::invariants::{Violation, check_snapshot};
use crate::model::{HealthCheckResult, Lease, PoolId};
use crate::storage::PoolSnapshot;
use crate::{AcquireRequest, Error, ProxyStatus, ReleaseOutcome, Selector, Storage};

/// Lifetime of the leases the I6 probe plants: long enough to be granted,
/// short enough to wait out between two checker samples.
const PROBE_TTL: TimeDelta = TimeDelta::milliseconds(5);

/// Marks an acquire of one client as in flight (its count odd) until
/// dropped, so the leak check can wait for every acquire that may have
/// granted a lease it sees before it asks who holds it.
struct InFlight<'a> {
    count: &'a AtomicU64,
    ended: &'a Notify,
}

impl<'a> InFlight<'a> {
    fn start(count: &'a AtomicU64, ended: &'a Notify) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self { count, ended }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.ended.notify_waiters();
    }
}

/// Reclaims every expired lease of the pool, in batches of 500.
pub(super) async fn drain<S: Storage>(s: &S, pool: &PoolId) -> crate::Result<usize> {
    let mut total = 0;
    loop {
        let n = s.cleanup_expired(pool, 500).await?;
        total += n;
        if n < 500 {
            return Ok(total);
        }
    }
}

/// Checks a lease just granted for `request` (its consumer and pool, the
/// filters, I7 for never-active proxies, credentials) and records it; the
/// proxy's index, or `None` if the lease names a proxy the pool never had.
fn record_grant<S>(
    sh: &Shared<S>,
    log: &mut ClientLog,
    lease: &Lease,
    request: &AcquireRequest,
    (start, end): (Instant, Instant),
) -> Option<u16> {
    log.ledger.acquired += 1;
    log.tokens.record(lease.token);
    if lease.consumer != request.consumer || lease.pool != request.pool {
        // Another caller's answer (a connection out of step, say).
        log.violations.push(format!(
            "lease {} names consumer {} of pool {}, but {} asked in pool {}",
            lease.id, lease.consumer, lease.pool, request.consumer, request.pool
        ));
    }
    let filters = &request.filters;
    let Some((idx, seeded)) = sh
        .index(&lease.proxy.id)
        .and_then(|i| Some((i, sh.proxies.get(usize::from(i))?)))
    else {
        log.violations
            .push(format!("leased unknown proxy {}", lease.proxy.id));
        return None;
    };
    log.grants.push(Grant {
        start,
        end,
        token: lease.token,
        proxy: idx,
    });
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
    Some(idx)
}

pub(super) async fn client<S: Storage + Clone>(
    sh: Arc<Shared<S>>,
    task: usize,
    deadline: Instant,
) -> ClientLog {
    let cfg = &sh.cfg;
    let s = &sh.storage;
    let progress = &sh.progress;
    let mut rng =
        fastrand::Rng::with_seed(cfg.seed.wrapping_mul(1_000_003).wrapping_add(task as u64));
    let mut log = ClientLog::default();
    let ttl_ms = cfg.ttl.num_milliseconds().max(1) as u64;
    let consumer = consumer_of(task);
    while sh.keep_running(deadline) {
        let filters = random_filters(&mut rng);
        let request = AcquireRequest::new(cfg.pool.clone())
            .consumer(consumer.as_str())
            .duration(cfg.ttl)
            .selector(Selector::ALL[rng.usize(..Selector::ALL.len())])
            .filters(filters.clone());
        let start = Instant::now();
        log.ops += 1;
        // The caller gives up mid-flight (fault mode, 3%): the future is dropped.
        let patience =
            (cfg.faults && rng.u8(0..100) < 3).then(|| Duration::from_micros(rng.u64(0..800)));
        let answer = {
            let _flight = InFlight::start(&sh.acquiring[task], &sh.acquire_ended);
            let answer = {
                let _quiet = sh.quiet.read().await;
                match patience {
                    Some(patience) => tokio::time::timeout(patience, s.acquire(&request))
                        .await
                        .ok(),
                    None => Some(s.acquire(&request).await),
                }
            };
            // Recorded before the in-flight mark clears (see `leaked_leases`).
            match &answer {
                Some(Ok(Some(lease))) => {
                    sh.granted.lock().insert(lease.id, false);
                }
                Some(Err(e)) if outcome_unknown(e) => {
                    sh.unknown[task].fetch_add(1, Ordering::SeqCst);
                }
                None => {
                    sh.unknown[task].fetch_add(1, Ordering::SeqCst);
                }
                Some(_) => {}
            }
            answer
        };
        let Some(answer) = answer else {
            log.cancelled += 1;
            log.unknown_acquires += 1;
            continue;
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
                if outcome_unknown(&e) {
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
        ChurnProgress::add(&progress.leases);
        let Some(idx) = record_grant(&sh, &mut log, &lease, &request, (start, end)) else {
            continue;
        };

        let roll = rng.u8(0..100);
        if roll < 6 {
            // The client crashes holding the lease.
            log.ledger.abandoned += 1;
            ChurnProgress::add(&progress.abandoned);
            continue;
        }
        let hold = if roll < 10 {
            log.held_past_ttl += 1;
            ChurnProgress::add(&progress.held_past_ttl);
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
            let renewed = {
                let _quiet = sh.quiet.read().await;
                s.renew(&lease, cfg.ttl).await
            };
            match renewed {
                Ok(renewed) => {
                    if renewed.id != lease.id || renewed.expires_at < lease.expires_at {
                        log.violations
                            .push(format!("renew of {} moved it backwards", lease.id));
                    }
                    log.renewed += 1;
                    ChurnProgress::add(&progress.renewals);
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
        // Once an attempt may have applied, a retry that finds nothing held
        // cannot tell whether that attempt released the lease: it answers
        // `ReleasedOrGone`, as `ProxyManager::release` does. A retry that
        // finds the lease still held answers for certain.
        let mut maybe_applied = false;
        let (outcome, answered_attempt) = loop {
            log.ops += 1;
            let attempt = Instant::now();
            let answer = {
                let _quiet = sh.quiet.read().await;
                s.release(&lease).await
            };
            match answer {
                Ok(ReleaseOutcome::NotHeld) if maybe_applied => {
                    break (ReleaseOutcome::ReleasedOrGone, attempt);
                }
                Ok(outcome) => break (outcome, attempt),
                Err(e) if sh.tolerate(&e).await => {
                    log.errors += 1;
                    maybe_applied |= outcome_unknown(&e);
                    tokio::time::sleep(Duration::from_millis(rng.u64(5..20))).await;
                }
                Err(e) => {
                    log.violations.push(format!("release failed: {e}"));
                    return log;
                }
            }
        };
        // Whatever the answer, the store must not hold the lease any more.
        sh.granted.lock().insert(lease.id, true);
        if outcome == ReleaseOutcome::Released {
            log.certain.push((idx, end, answered_attempt));
            ChurnProgress::add(&progress.certain_intervals);
        }
        log.ledger.first_release(outcome);
        if rng.u8(0..100) < 5 {
            log.ops += 1;
            log.double_releases += 1;
            ChurnProgress::add(&progress.double_releases);
            let again = {
                let _quiet = sh.quiet.read().await;
                s.release(&lease).await
            };
            match again {
                Ok(again) => log.ledger.repeat_release(again),
                Err(e) if sh.tolerate(&e).await => log.errors += 1,
                Err(e) => log.violations.push(format!("second release failed: {e}")),
            }
        }
    }
    log
}

/// Reclaims expired leases every `sweep_every`: `(reclaimed, calls, errors)`.
pub(super) async fn sweeper<S: Storage>(sh: Arc<Shared<S>>) -> (u64, u64, u64) {
    let (mut swept, mut ops, mut errors) = (0, 0, 0);
    while !sh.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(sh.cfg.sweep_every).await;
        ops += 1;
        let reclaimed = {
            let _quiet = sh.quiet.read().await;
            drain(&sh.storage, &sh.cfg.pool).await
        };
        match reclaimed {
            Ok(n) => swept += n as u64,
            Err(e) if sh.tolerate(&e).await => errors += 1,
            Err(e) => panic!("sweep failed: {e}"),
        }
    }
    (swept, ops, errors)
}

/// What the checker did and found.
#[derive(Default)]
pub(super) struct Checked {
    pub(super) samples: u64,
    pub(super) i6_checks: u64,
    pub(super) i6_effective: u64,
    pub(super) leases_explained: u64,
    pub(super) swept: u64,
    pub(super) ops: u64,
    pub(super) errors: u64,
    pub(super) violations: Vec<String>,
    /// The leases the I6 probe planted, recorded like a client's.
    pub(super) probe: ClientLog,
}

/// Samples snapshots while clients run: I1–I3, I7 of never-active proxies
/// and leaks on each, I6 on every fifth (every other one, and each until one
/// was effective, a probe).
pub(super) async fn checker<S: Storage>(sh: Arc<Shared<S>>) -> Checked {
    let mut c = Checked::default();
    let mut reported = HashSet::new();
    let s = &sh.storage;
    let pool = &sh.cfg.pool;
    while !sh.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(sh.cfg.sample_every).await;
        c.ops += 1;
        let snap = match s.pool_snapshot(pool).await {
            Ok(snap) => snap,
            Err(e) if sh.tolerate(&e).await => {
                c.errors += 1;
                continue;
            }
            Err(e) => panic!("snapshot failed: {e}"),
        };
        c.samples += 1;
        c.violations
            .extend(check_snapshot(&snap, false).iter().map(ToString::to_string));
        for lease in &snap.leases {
            if sh.never_active.contains(&lease.proxy.id) {
                c.violations.push(format!(
                    "I7: snapshot holds lease {} on never-active proxy {}",
                    lease.id, lease.proxy.id
                ));
            }
        }
        let (leaked, explained) = leaked_leases(&sh, &snap, false, &mut reported).await;
        c.violations.extend(leaked);
        c.leases_explained += explained;
        if c.samples % 5 != 0 {
            continue;
        }
        let checked = if c.i6_checks % 2 == 0 || c.i6_effective == 0 {
            probe_i6(&sh, &mut c).await
        } else {
            i6_after_cleanup(&sh, &snap, &mut c).await
        };
        match checked {
            Ok(()) => {}
            Err(e) if sh.tolerate(&e).await => c.errors += 1,
            Err(e) => panic!("I6 check failed: {e}"),
        }
    }
    c
}

/// I6: cleans up, then no lease that had expired before `snap` was taken
/// may still be live. Effective if `snap` held such a lease.
async fn i6_after_cleanup<S: Storage>(
    sh: &Shared<S>,
    snap: &PoolSnapshot,
    c: &mut Checked,
) -> crate::Result<()> {
    let (s, pool) = (&sh.storage, &sh.cfg.pool);
    let before = snap.taken_at;
    c.ops += 2;
    c.swept += drain(s, pool).await? as u64;
    let after = s.pool_snapshot(pool).await?;
    c.i6_checks += 1;
    if snap.leases.iter().any(|l| l.expires_at < before) {
        c.i6_effective += 1;
        ChurnProgress::add(&sh.progress.i6_effective);
    }
    for lease in after.leases.iter().filter(|l| l.expires_at < before) {
        c.violations.push(
            Violation::ExpiredLeaseHeld {
                lease: lease.id,
                expires_at: lease.expires_at,
            }
            .to_string(),
        );
    }
    Ok(())
}

/// I6 with something certainly to check. With the clients, sweeper and
/// flapper held between their calls (so nothing reclaims early), plants a
/// lease of [`PROBE_TTL`], waits until a snapshot shows the store's clock
/// past its deadline with the lease still held, then checks
/// [`i6_after_cleanup`] from that snapshot.
async fn probe_i6<S: Storage>(sh: &Shared<S>, c: &mut Checked) -> crate::Result<()> {
    let _quiet = sh.quiet.write().await;
    let Some(planted) = acquire_probe(sh, &mut c.probe).await? else {
        return Ok(());
    };
    let waiting = Instant::now();
    let snap = loop {
        tokio::time::sleep(PROBE_TTL.to_std().expect("positive") + Duration::from_millis(1)).await;
        c.ops += 1;
        let snap = sh.storage.pool_snapshot(&sh.cfg.pool).await?;
        let held = snap.leases.iter().any(|l| l.id == planted.id);
        // Gone (a store that lost its data, a late acquire that reclaimed
        // it): this check is not effective, a later one will be.
        if !held || planted.expires_at < snap.taken_at || waiting.elapsed() > Duration::from_secs(5)
        {
            break snap;
        }
    };
    i6_after_cleanup(sh, &snap, c).await
}

/// Acquires a lease of [`PROBE_TTL`] for the probe and records it like a
/// client's; it is left to expire (counted as abandoned).
async fn acquire_probe<S: Storage>(
    sh: &Shared<S>,
    log: &mut ClientLog,
) -> crate::Result<Option<Lease>> {
    let slot = sh.cfg.tasks;
    let filters = uncapped();
    let request = AcquireRequest::new(sh.cfg.pool.clone())
        .consumer(PROBE_CONSUMER)
        .duration(PROBE_TTL)
        .selector(Selector::FirstAvailable)
        .filters(filters.clone());
    let start = Instant::now();
    log.ops += 1;
    let answer = {
        let _flight = InFlight::start(&sh.acquiring[slot], &sh.acquire_ended);
        let answer = sh.storage.acquire(&request).await;
        match &answer {
            Ok(Some(lease)) => {
                sh.granted.lock().insert(lease.id, false);
            }
            Err(e) if outcome_unknown(e) => {
                sh.unknown[slot].fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
        answer
    };
    match answer {
        Ok(Some(lease)) => {
            record_grant(sh, log, &lease, &request, (start, Instant::now()));
            log.ledger.abandoned += 1;
            log.planted += 1;
            Ok(Some(lease))
        }
        // Only while a lost pool is seeded again: nothing planted this time.
        Ok(None) => {
            log.misses += 1;
            Ok(None)
        }
        Err(e) => {
            if outcome_unknown(&e) {
                log.unknown_acquires += 1;
            }
            Err(e)
        }
    }
}

/// Plants one lease of [`PROBE_TTL`] after the clients stopped, for the
/// final I6 check; retries tolerated errors.
pub(super) async fn plant_expiring_lease<S: Storage>(sh: &Shared<S>, log: &mut ClientLog) {
    loop {
        match acquire_probe(sh, log).await {
            Ok(_) => return,
            Err(e) if sh.tolerate(&e).await => {
                log.errors += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("planting an expiring lease failed: {e}"),
        }
    }
}

/// Intervals `[down, up)` in which a flapping proxy was certainly not active.
pub(super) type DownIntervals = HashMap<u16, Vec<(Instant, Instant)>>;

/// Flips flapping proxies between active and inactive:
/// `(results applied, down intervals, errors)`.
pub(super) async fn flapper<S: Storage>(sh: Arc<Shared<S>>) -> (u64, DownIntervals, u64) {
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
        let applied = {
            let _quiet = sh.quiet.read().await;
            sh.storage.apply_health_check_result(&result).await
        };
        match applied {
            Ok(Some(p)) if p.status == status => {
                flips += 1;
                ChurnProgress::add(&sh.progress.flips);
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
