//! Checks run on what a churn saw: leaks, caps between samples, tokens in
//! real time, I7 for flapping proxies, and the I4 bounds under faults.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::tasks::DownIntervals;
use super::{ClientLog, Grant, Shared};
use crate::ProxyStatus;
use crate::invariants::Violation;
use crate::model::{Lease, LeaseId, PoolStatsSnapshot};
use crate::storage::PoolSnapshot;

/// Waits until every acquire that was in flight when called has ended (so
/// the lease it got, or its unknown outcome, is recorded); `false` if that
/// takes more than 60 s.
async fn acquires_in_flight_ended<S>(sh: &Shared<S>) -> bool {
    let seen: Vec<u64> = sh
        .acquiring
        .iter()
        .map(|a| a.load(Ordering::SeqCst))
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ended = sh.acquire_ended.notified();
        tokio::pin!(ended);
        // Registered before the check: an acquire ending in between still wakes us.
        ended.as_mut().enable();
        let all_ended = seen
            .iter()
            .zip(&sh.acquiring)
            .all(|(&then, now)| then % 2 == 0 || now.load(Ordering::SeqCst) != then);
        if all_ended {
            return true;
        }
        if tokio::time::timeout_at(deadline, ended).await.is_err() {
            return false;
        }
    }
}

/// Leaked leases: live leases of `snap` that nothing explains. A live lease
/// is explained if a client (or the probe) received it, and, at the end
/// (`at_end`, no client running), only if its release was not answered yet.
/// Leases no client received are explained while their consumer has no
/// more of them than acquires of unknown outcome (timed out, interrupted,
/// dropped), each of which may have granted one. Anything else (an acquire
/// answered `Unavailable` that did grant a lease, a release that did not
/// apply) is reported once per lease, as "leaked lease".
///
/// `snap` must have been taken just before: acquires in flight now are
/// waited for first. Returns the violations and how many leases were
/// explained.
pub(super) async fn leaked_leases<S>(
    sh: &Shared<S>,
    snap: &PoolSnapshot,
    at_end: bool,
    reported: &mut HashSet<LeaseId>,
) -> (Vec<String>, u64) {
    if !acquires_in_flight_ended(sh).await {
        // Cannot tell what the stuck acquire got: no verdict this time.
        return (Vec::new(), 0);
    }
    let mut out = Vec::new();
    let mut explained = 0u64;
    let mut unclaimed: HashMap<usize, Vec<&Lease>> = HashMap::new();
    {
        let granted = sh.granted.lock();
        for lease in &snap.leases {
            match granted.get(&lease.id) {
                Some(false) => explained += 1,
                // While clients run, the release may have applied after the
                // snapshot was taken.
                Some(true) if !at_end => explained += 1,
                Some(true) => {
                    if reported.insert(lease.id) {
                        out.push(format!(
                            "leaked lease {} (proxy {}, token {}): its release was answered, \
                             yet the store still holds it after every client stopped",
                            lease.id, lease.proxy.id, lease.token
                        ));
                    }
                }
                None => match sh.slots.get(&lease.consumer) {
                    Some(&slot) => unclaimed.entry(slot).or_default().push(lease),
                    None => {
                        if reported.insert(lease.id) {
                            out.push(format!(
                                "leaked lease {} (proxy {}, token {}) of consumer {}, \
                                 which no client of this churn uses",
                                lease.id, lease.proxy.id, lease.token, lease.consumer
                            ));
                        }
                    }
                },
            }
        }
    }
    for (slot, leases) in unclaimed {
        let unknown = sh.unknown[slot].load(Ordering::SeqCst);
        let count = leases.len() as u64;
        explained += count.min(unknown);
        if count <= unknown {
            continue;
        }
        let fresh: Vec<String> = leases
            .iter()
            .filter(|l| reported.insert(l.id))
            .map(|l| format!("{} (proxy {}, token {})", l.id, l.proxy.id, l.token))
            .collect();
        if !fresh.is_empty() {
            out.push(format!(
                "leaked lease: consumer {} holds {count} live leases no client received, \
                 but only {unknown} of its acquires had an unknown outcome: {}",
                leases[0].consumer,
                fresh.join(", ")
            ));
        }
    }
    (out, explained)
}

/// I7 for flapping proxies: no acquire that ran wholly inside an interval in
/// which the proxy was not active returned it.
pub(super) fn flapping_leased_while_down<S>(
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
pub(super) fn over_cap_while_certainly_live<S>(
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
pub(super) fn tokens_follow_real_time(grants: &mut [Grant]) -> Vec<String> {
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
/// every call whose outcome is unknown. Each acquire of unknown outcome may
/// have granted one lease no client saw, which then ended once: expired, or
/// released by the store's own compensation. Each `ReleasedOrGone` was
/// either released by its lost attempt or had expired.
pub(super) fn check_bounds(
    log: &ClientLog,
    base: &PoolStatsSnapshot,
    end: &PoolStatsSnapshot,
) -> Vec<String> {
    let l = &log.ledger;
    let unknown = log.unknown_acquires;
    let mut out = Vec::new();
    let mut within = |what: &'static str, store: u64, low: u64, high: u64| {
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
    within("leases granted", granted, l.acquired, l.acquired + unknown);
    within(
        "released leases",
        released,
        sure_released,
        sure_released + l.released_or_gone + unknown,
    );
    within(
        "expired leases",
        expired,
        sure_expired,
        sure_expired + l.released_or_gone + unknown,
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
        let pool = crate::model::PoolId::from("mix");
        let p = super::super::churn_proxies(&pool, 50, Some("pw"));
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
        assert!(
            super::super::pool::flapping(50)
                .all(|i| p[usize::from(i)].status == ProxyStatus::Active)
        );
    }

    #[test]
    fn the_probe_filter_matches_exactly_the_uncapped_proxies() {
        let pool = crate::model::PoolId::from("probe");
        for n in [10, 48, 200] {
            for p in super::super::churn_proxies(&pool, n, None) {
                assert_eq!(
                    super::super::pool::uncapped().matches(&p),
                    p.max_concurrency.is_none(),
                    "{}",
                    p.id
                );
            }
        }
    }
}
