//! Seeding and bulk helpers, shared by every case (and by other suites), and the checks run after each case.

use super::*;

/// Proxy number `i` of a large pool: id `p` and seven digits (`p0000042`),
/// a distinct host and port, active, no cap, located within
/// [`COVERING_KM`] of [`CENTRE`].
pub fn numbered_proxy(pool: &PoolId, i: usize) -> Proxy {
    let (lat, lon) = location(i);
    Proxy::new(
        pool.clone(),
        format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
        1024 + (i % 60_000) as u16,
        ProxyProtocol::Http,
    )
    .with_id(numbered_id(i))
    .with_location(lat, lon)
}

/// The id [`numbered_proxy`] gives proxy `i`.
pub fn numbered_id(i: usize) -> ProxyId {
    ProxyId::from(format!("p{i:07}"))
}

/// A point within about 150 km of [`CENTRE`], spread by `i`.
fn location(i: usize) -> (f64, f64) {
    (
        CENTRE.0 - 1.0 + (i % 1000) as f64 * 0.002,
        CENTRE.1 - 1.0 + (i / 1000 % 1000) as f64 * 0.002,
    )
}

/// Upserts every proxy, [`IN_FLIGHT`] at a time; panics on the first error.
pub async fn seed<H: Harness>(h: &H, proxies: impl IntoIterator<Item = Proxy>) {
    stream::iter(proxies)
        .map(|p| async move { (h.storage().upsert_proxy(&p).await, p.id) })
        .buffer_unordered(IN_FLIGHT)
        .for_each(|(r, id)| {
            if let Err(e) = r {
                panic!("seeding proxy {id}: {e:?}");
            }
            std::future::ready(())
        })
        .await;
}

/// A new pool of `n` proxies built by `make(pool, i)` for `i` in `0..n`.
pub async fn seeded_pool<H: Harness>(
    h: &H,
    base: &str,
    n: usize,
    make: impl Fn(&PoolId, usize) -> Proxy,
) -> PoolId {
    let pool = new_pool(h, base).await;
    let started = Instant::now();
    seed(h, (0..n).map(|i| make(&pool, i))).await;
    eprintln!(
        "  seeded {n} proxies in {:.1?} ({:.0}/s)",
        started.elapsed(),
        n as f64 / started.elapsed().as_secs_f64()
    );
    pool
}

/// Grants `n` leases of `req`, [`IN_FLIGHT`] at a time; panics unless all are granted.
pub async fn lease_many<H: Harness>(h: &H, req: &AcquireRequest, n: usize) -> Vec<Lease> {
    stream::iter(0..n)
        .map(|_| h.storage().acquire(req))
        .buffer_unordered(IN_FLIGHT)
        .map(|r| r.expect("acquire").expect("a free slot for every lease"))
        .collect()
        .await
}

/// Makes every lease due: renews each to [`SHORT_TTL`], then lets
/// [`PAST_SHORT_TTL`] pass. Renewing reclaims nothing else, so none is
/// reclaimed before the caller's reclaim, however long the renewals take.
pub async fn make_due<H: Harness>(h: &H, leases: &[Lease]) {
    stream::iter(leases)
        .map(|l| h.storage().renew(l, SHORT_TTL))
        .buffer_unordered(IN_FLIGHT)
        .for_each(|r| {
            r.expect("renew a live lease");
            std::future::ready(())
        })
        .await;
    h.advance(PAST_SHORT_TTL).await;
}

/// Releases every lease, [`IN_FLIGHT`] at a time; each must answer `expected`.
pub async fn release_all<H: Harness>(h: &H, leases: &[Lease], expected: ReleaseOutcome) {
    stream::iter(leases)
        .map(|l| h.storage().release(l))
        .buffer_unordered(IN_FLIGHT)
        .for_each(|r| {
            assert_eq!(r.expect("release"), expected);
            std::future::ready(())
        })
        .await;
}

/// Runs `call`, prints how long it took under `what`, returns its output.
pub async fn timed<T>(what: &str, call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = call.await;
    eprintln!("  {what}: {:.1?}", started.elapsed());
    out
}

/// The checks run after every case on every pool it used: `pool_stats`
/// equal a recomputation from `pool_snapshot` (with I1–I3 and the lifetime
/// counters), and [`Harness::store_problems`] is empty. A removed pool must
/// answer `PoolNotFound` and leave no bookkeeping problem. Returns the
/// snapshot of a pool that exists.
pub async fn check_pool<H: Harness>(h: &H, pool: &PoolId) -> Option<PoolSnapshot> {
    let s = h.storage();
    let snapshot = match s.pool_snapshot(pool).await {
        Ok(snapshot) => Some(snapshot),
        Err(Error::PoolNotFound(_)) => {
            assert!(
                matches!(s.pool_stats(pool).await, Err(Error::PoolNotFound(_))),
                "pool {pool} has no snapshot but has stats"
            );
            None
        }
        Err(e) => panic!("snapshot of {pool}: {e:?}"),
    };
    if let Some(snapshot) = &snapshot {
        let found = check_snapshot(snapshot, false);
        assert!(
            found.is_empty(),
            "invariants broken in pool {pool}:\n{}",
            head(found.iter().map(ToString::to_string))
        );
        let stats = s.pool_stats(pool).await.expect("pool stats");
        let recomputed = ProxyCounts::recompute(&snapshot.proxies, &snapshot.leases);
        assert_eq!(
            stats.counts(),
            recomputed,
            "pool_stats of {pool} differ from a recomputation from its snapshot"
        );
        assert_eq!(check_lifetime_counters(&stats), None);
    }
    let problems = h.store_problems(pool).await;
    assert!(
        problems.is_empty(),
        "{} bookkeeping problems in pool {pool}:\n{}",
        problems.len(),
        head(problems.iter().cloned())
    );
    snapshot
}

/// The first 20 lines, and how many more there were.
pub(super) fn head(lines: impl Iterator<Item = String>) -> String {
    let lines: Vec<String> = lines.collect();
    let mut out = lines
        .iter()
        .take(20)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    if lines.len() > 20 {
        out.push_str(&format!("\n… and {} more", lines.len() - 20));
    }
    out
}

/// Asserts the live part of the stats: `(total, available, leased, active_leases)`.
pub(super) async fn assert_live<H: Harness>(
    h: &H,
    pool: &PoolId,
    want: [u64; 4],
) -> PoolStatsSnapshot {
    let s = h.storage().pool_stats(pool).await.expect("pool stats");
    assert_eq!(
        [s.total, s.available, s.leased, s.active_leases],
        want,
        "(total, available, leased, active_leases) of {pool}: {s:?}"
    );
    s
}
