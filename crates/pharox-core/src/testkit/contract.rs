//! The contract cases. Each takes a fresh [`Harness`] and panics on failure.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Barrier;

use super::{
    Harness, LONG_TTL, PAST_SHORT_TTL, SHORT_TTL, add, assert_invalid, assert_invariants, lease,
    miss, new_pool, picked, proxy, request,
};
use crate::filter::haversine_km;
use crate::invariants::{TokenLedger, check_lifetime_counters};
use crate::model::{
    ConsumerName, HealthCheckResult, Lease, LeaseId, LeaseStatus, PoolId, Proxy, ProxyId,
    ProxyPool, ProxyProtocol, ProxyStatus,
};
use crate::validate::{MAX_HISTORY_LIMIT, MAX_LEASE_DURATION, MAX_POOL_ID_LEN};
use crate::{AcquireRequest, Error, LeaseRef, ProxyFilters, ReleaseOutcome, Selector, Storage};

/// Whether the store's clock is still before `t` (a fresh snapshot's time).
async fn still_before<H: Harness>(h: &H, pool: &PoolId, t: DateTime<Utc>) -> bool {
    h.storage()
        .pool_snapshot(pool)
        .await
        .expect("snapshot")
        .taken_at
        < t
}

/// Retries of a case whose steps must fall within [`SHORT_TTL`] of each
/// other: on a store on real time a loaded machine can stall a step past it
/// once, so the case checks with the store's clock that its steps were in
/// time and, when not, runs again on a fresh pool, for at most a minute.
struct InTime {
    case: &'static str,
    started: Instant,
    attempts: u32,
}

impl InTime {
    fn new(case: &'static str) -> Self {
        Self {
            case,
            started: Instant::now(),
            attempts: 0,
        }
    }

    /// Another attempt; panics once a minute of attempts were all too slow.
    fn again(&mut self) {
        self.attempts += 1;
        assert!(
            self.started.elapsed() < Duration::from_secs(60),
            "{}: {} attempts were all too slow for a {SHORT_TTL} lease",
            self.case,
            self.attempts
        );
    }
}

/// `ensure_consumer` registers once and returns the same consumer after.
pub async fn consumer_round_trip<H: Harness>(h: &H) {
    let s = h.storage();
    let name = ConsumerName::from(format!("worker-{}", fastrand::u32(..)));
    let first = s.ensure_consumer(&name).await.unwrap();
    let again = s.ensure_consumer(&name).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(first.name, name);
    assert!(s.list_consumers().await.unwrap().contains(&first));
    assert_invalid(s.ensure_consumer(&ConsumerName::from("")).await, "consumer");
}

/// Pools can be created, read, listed, updated and removed.
pub async fn pool_round_trip<H: Harness>(h: &H) {
    let s = h.storage();
    let id = h.unique_pool("round-trip");
    assert_eq!(s.get_pool(&id).await.unwrap(), None);
    let pool = ProxyPool::new(id.clone()).with_description("residential, LATAM");
    assert_eq!(s.upsert_pool(&pool).await.unwrap(), pool);
    assert_eq!(s.get_pool(&id).await.unwrap(), Some(pool.clone()));
    assert!(s.list_pools().await.unwrap().contains(&pool));
    let renamed = ProxyPool {
        name: "LATAM residential".into(),
        ..pool
    };
    s.upsert_pool(&renamed).await.unwrap();
    assert_eq!(s.get_pool(&id).await.unwrap(), Some(renamed));
    assert!(s.remove_pool(&id).await.unwrap());
    assert!(!s.remove_pool(&id).await.unwrap());
    assert_eq!(s.get_pool(&id).await.unwrap(), None);
}

/// Every proxy field round-trips; updates keep the position in the pool.
pub async fn proxy_round_trip<H: Harness>(h: &H) {
    let s = h.storage();
    let pool = new_pool(h, "proxies").await;
    let full = proxy(&pool, "full", 1)
        .with_credentials("user", "s3cret:@/")
        .with_status(ProxyStatus::Slow)
        .with_latency_ms(42)
        .with_source("feed")
        .with_country("AR")
        .with_city("Córdoba")
        .with_location(-31.42, -64.18)
        .with_isp("Telecom")
        .with_asn(7303)
        .with_max_concurrency(3)
        .with_extra("tier", "gold")
        .with_extra("ünïcode", "✓");
    let mut full = full;
    full.protocol = ProxyProtocol::Socks5;
    full.checked_at = Some(crate::datetime_from_ms(Utc::now().timestamp_millis()));
    let second = proxy(&pool, "second", 2);
    assert_eq!(add(h, full.clone()).await, full);
    add(h, second.clone()).await;
    assert_eq!(
        s.get_proxy(&pool, &full.id).await.unwrap(),
        Some(full.clone())
    );
    assert_eq!(
        s.get_proxy(&pool, &ProxyId::from("nope")).await.unwrap(),
        None
    );

    let updated = Proxy {
        host: "10.9.9.9".into(),
        country: None,
        ..full.clone()
    };
    add(h, updated.clone()).await;
    let listed = s.list_proxies(&pool).await.unwrap();
    assert_eq!(
        listed,
        vec![updated, second],
        "update keeps insertion order"
    );
}

/// An acquire leases an active proxy and hands over its connection data.
pub async fn finds_an_active_proxy<H: Harness>(h: &H) {
    let pool = new_pool(h, "finds").await;
    let p = add(h, proxy(&pool, "only", 1).with_credentials("u", "p")).await;
    let req = request(&pool).consumer("worker-1");
    let l = lease(h, &req).await;
    assert_eq!(l.proxy.id, p.id);
    assert_eq!(l.proxy.host, p.host);
    assert_eq!(l.proxy.port, p.port);
    assert_eq!(l.proxy.protocol, p.protocol);
    assert_eq!(l.proxy.credentials, p.credentials);
    assert_eq!(l.pool, pool);
    assert_eq!(l.consumer, "worker-1");
    assert_eq!(l.status, LeaseStatus::Active);
    assert!(l.expires_at > l.acquired_at);
    let ttl = l.expires_at - l.acquired_at;
    assert_eq!(ttl, LONG_TTL, "expiry is acquired_at + duration");
    assert_invariants(h, &pool, true).await;
}

/// `find_available_proxy` answers without leasing or moving the cursor.
pub async fn find_available_proxy_does_not_lease<H: Harness>(h: &H) {
    let s = h.storage();
    let pool = new_pool(h, "find").await;
    add(h, proxy(&pool, "a", 1).with_max_concurrency(1)).await;
    add(h, proxy(&pool, "b", 2).with_max_concurrency(1)).await;
    let none = ProxyFilters::new();
    for _ in 0..3 {
        let found = s
            .find_available_proxy(&pool, &none, Selector::RoundRobin)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, "a");
    }
    assert_eq!(s.pool_stats(&pool).await.unwrap().active_leases, 0);
    let rr = request(&pool).selector(Selector::RoundRobin);
    assert_eq!(picked(h, &rr).await, "a");
    let found = s
        .find_available_proxy(&pool, &none, Selector::FirstAvailable)
        .await
        .unwrap();
    assert_eq!(found.map(|p| p.id), Some(ProxyId::from("b")));
}

/// Each single-field filter selects only matching proxies.
pub async fn filters_by_each_single_field<H: Harness>(h: &H) {
    let pool = new_pool(h, "filters").await;
    add(
        h,
        proxy(&pool, "plain", 1)
            .with_country("US")
            .with_source("s1")
            .with_city("Austin")
            .with_isp("isp-1")
            .with_asn(100),
    )
    .await;
    add(
        h,
        proxy(&pool, "target", 2)
            .with_country("AR")
            .with_source("s2")
            .with_city("Rosario")
            .with_isp("isp-2")
            .with_asn(200),
    )
    .await;
    let cases = [
        ProxyFilters::new().country("AR"),
        ProxyFilters::new().country("ar"),
        ProxyFilters::new().source("s2"),
        ProxyFilters::new().city("Rosario"),
        ProxyFilters::new().isp("isp-2"),
        ProxyFilters::new().asn(200),
    ];
    for filters in cases {
        let req = request(&pool).filters(filters.clone());
        let l = lease(h, &req).await;
        assert_eq!(l.proxy.id, "target", "filter {filters:?}");
        assert_eq!(
            h.storage().release(&l).await.unwrap(),
            ReleaseOutcome::Released
        );
    }
    for filters in [
        ProxyFilters::new().country("BR"),
        ProxyFilters::new().source("s3"),
        ProxyFilters::new().city("rosario"),
        ProxyFilters::new().isp("isp-3"),
        ProxyFilters::new().asn(300),
        ProxyFilters::new().country("AR").asn(100),
    ] {
        miss(h, &request(&pool).filters(filters)).await;
    }
}

/// `all_of`, `any_of` and `none_of` compose as AND, OR and NOT.
pub async fn composite_filters_follow_boolean_logic<H: Harness>(h: &H) {
    let pool = new_pool(h, "composite").await;
    add(
        h,
        proxy(&pool, "us-a", 1).with_country("US").with_source("a"),
    )
    .await;
    add(
        h,
        proxy(&pool, "de-b", 2).with_country("DE").with_source("b"),
    )
    .await;
    add(
        h,
        proxy(&pool, "ar-a", 3).with_country("AR").with_source("a"),
    )
    .await;
    let c = |cc: &str| ProxyFilters::new().country(cc);
    let src = |s: &str| ProxyFilters::new().source(s);
    let cases: Vec<(ProxyFilters, Option<&str>)> = vec![
        (
            ProxyFilters::new().all_of([src("a"), c("AR")]),
            Some("ar-a"),
        ),
        (ProxyFilters::new().all_of([src("b"), c("AR")]), None),
        (ProxyFilters::new().any_of([c("DE"), c("AR")]), Some("de-b")),
        (ProxyFilters::new().any_of([c("FR"), c("BR")]), None),
        (ProxyFilters::new().none_of([c("US")]), Some("de-b")),
        (ProxyFilters::new().none_of([src("a"), src("b")]), None),
        (
            src("a").none_of([c("US")]).any_of([c("AR"), c("DE")]),
            Some("ar-a"),
        ),
        (
            ProxyFilters::new().any_of([ProxyFilters::new().all_of([src("b"), c("DE")])]),
            Some("de-b"),
        ),
    ];
    for (filters, expected) in cases {
        let got = h
            .storage()
            .acquire(&request(&pool).filters(filters.clone()))
            .await
            .unwrap();
        assert_eq!(
            got.as_ref().map(|l| l.proxy.id.as_str()),
            expected,
            "filter {filters:?}"
        );
        if let Some(l) = got {
            h.storage().release(&l).await.unwrap();
        }
    }
}

/// A geo radius includes a proxy exactly at its boundary (distance equal to
/// the radius, as the reference evaluator computes it) and excludes it one
/// step inside; a proxy without a location never matches.
pub async fn geo_radius_includes_its_boundary<H: Harness>(h: &H) {
    let pool = new_pool(h, "geo").await;
    let (lat, lon) = (-34.6037, -58.3816); // Buenos Aires
    let (plat, plon) = (-34.9214, -57.9545); // La Plata
    add(
        h,
        proxy(&pool, "la-plata", 1)
            .with_location(plat, plon)
            .with_max_concurrency(1),
    )
    .await;
    add(h, proxy(&pool, "nowhere", 2)).await;
    let d = haversine_km(lat, lon, plat, plon);
    assert!((50.0..60.0).contains(&d), "{d}");
    let within = |r: f64| request(&pool).filters(ProxyFilters::new().within_km(lat, lon, r));
    miss(h, &within(d.next_down())).await;
    let l = lease(h, &within(d)).await;
    assert_eq!(l.proxy.id, "la-plata", "the boundary is included");
    // La Plata is now full; only the proxy without a location is left, and
    // even a globe-sized radius does not match it.
    miss(h, &within(crate::filter::MAX_RADIUS_KM)).await;
    assert_eq!(picked(h, &request(&pool)).await, "nowhere");
}

/// Closure predicates run in-process, or are refused with `UnsupportedFilter`.
pub async fn predicate_filters_run_or_are_rejected<H: Harness>(h: &H) {
    let pool = new_pool(h, "predicate").await;
    add(h, proxy(&pool, "even", 2)).await;
    add(h, proxy(&pool, "odd", 3)).await;
    let req = request(&pool).filters(ProxyFilters::new().predicate(|p| p.port % 2 == 1));
    let result = h.storage().acquire(&req).await;
    if h.supports_predicates() {
        assert_eq!(result.unwrap().unwrap().proxy.id, "odd");
    } else {
        assert!(
            matches!(result, Err(Error::UnsupportedFilter(_))),
            "{result:?}"
        );
        assert_eq!(
            h.storage().pool_stats(&pool).await.unwrap().active_leases,
            0
        );
    }
}

/// A proxy never holds more leases than its `max_concurrency` (I1).
pub async fn concurrency_limit_is_enforced<H: Harness>(h: &H) {
    let pool = new_pool(h, "limit").await;
    add(h, proxy(&pool, "two", 1).with_max_concurrency(2)).await;
    let req = request(&pool);
    let first = lease(h, &req).await;
    let _second = lease(h, &req).await;
    miss(h, &req).await;
    assert_invariants(h, &pool, true).await;
    let stored = h
        .storage()
        .get_proxy(&pool, &ProxyId::from("two"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.current_leases, 2);
    h.storage().release(&first).await.unwrap();
    lease(h, &req).await;
    miss(h, &req).await;
    assert_invariants(h, &pool, true).await;
}

/// A proxy without `max_concurrency` takes any number of leases.
pub async fn unlimited_concurrency_never_blocks<H: Harness>(h: &H) {
    let pool = new_pool(h, "unlimited").await;
    add(h, proxy(&pool, "wide", 1)).await;
    for _ in 0..50 {
        lease(h, &request(&pool)).await;
    }
    let stats = h.storage().pool_stats(&pool).await.unwrap();
    assert_eq!(
        (stats.active_leases, stats.available, stats.leased),
        (50, 1, 1)
    );
    assert_invariants(h, &pool, true).await;
}

/// First-available takes proxies in the order they were added.
pub async fn first_available_prefers_the_oldest_proxy<H: Harness>(h: &H) {
    let pool = new_pool(h, "first").await;
    for (i, id) in ["c", "a", "b"].into_iter().enumerate() {
        add(h, proxy(&pool, id, i as u16).with_max_concurrency(1)).await;
    }
    let req = request(&pool);
    let mut order = Vec::new();
    for _ in 0..3 {
        order.push(picked(h, &req).await);
    }
    assert_eq!(order, ["c", "a", "b"]);
    miss(h, &req).await;
}

/// Least-used spreads leases and returns to the least loaded proxy.
pub async fn least_used_picks_the_proxy_with_fewest_leases<H: Harness>(h: &H) {
    let pool = new_pool(h, "least").await;
    for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
        add(h, proxy(&pool, id, i as u16).with_max_concurrency(10)).await;
    }
    let req = request(&pool).selector(Selector::LeastUsed);
    let mut leases = Vec::new();
    for _ in 0..6 {
        leases.push(lease(h, &req).await);
    }
    let mut per_proxy = BTreeMap::<String, u32>::new();
    for l in &leases {
        *per_proxy.entry(l.proxy.id.to_string()).or_default() += 1;
    }
    assert_eq!(per_proxy.values().copied().collect::<Vec<_>>(), [2, 2, 2]);
    // Free both of b's leases: b is now the least used.
    for l in leases.iter().filter(|l| l.proxy.id == "b") {
        h.storage().release(l).await.unwrap();
    }
    assert_eq!(picked(h, &req).await, "b");
    assert_eq!(picked(h, &req).await, "b");
    // All tied at 2 again: ties go to the oldest proxy.
    assert_eq!(picked(h, &req).await, "a");
}

/// Round robin cycles through every eligible proxy in order.
pub async fn round_robin_cycles_through_proxies<H: Harness>(h: &H) {
    let pool = new_pool(h, "rr").await;
    for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
        add(h, proxy(&pool, id, i as u16).with_city(id)).await;
    }
    let req = request(&pool).selector(Selector::RoundRobin);
    let mut order = Vec::new();
    for _ in 0..7 {
        let l = lease(h, &req).await;
        order.push(l.proxy.id.to_string());
        h.storage().release(&l).await.unwrap();
    }
    assert_eq!(order, ["a", "b", "c", "a", "b", "c", "a"]);
    // A full proxy is skipped without breaking the cycle; other selectors
    // do not move the cursor.
    add(
        h,
        proxy(&pool, "c", 2).with_city("c").with_max_concurrency(1),
    )
    .await;
    lease(h, &request(&pool).filters(ProxyFilters::new().city("c"))).await;
    let mut next = Vec::new();
    for _ in 0..3 {
        next.push(picked(h, &req).await);
    }
    assert_eq!(next, ["b", "a", "b"]);
}

/// Round robin under a filter cycles through the matching proxies only.
pub async fn round_robin_cycles_through_filtered_proxies<H: Harness>(h: &H) {
    let pool = new_pool(h, "rr-filter").await;
    for (i, (id, cc)) in [
        ("us-1", "US"),
        ("ar-1", "AR"),
        ("us-2", "US"),
        ("ar-2", "AR"),
    ]
    .into_iter()
    .enumerate()
    {
        add(h, proxy(&pool, id, i as u16).with_country(cc)).await;
    }
    let ar = request(&pool)
        .selector(Selector::RoundRobin)
        .filters(ProxyFilters::new().country("AR"));
    let mut order = Vec::new();
    for _ in 0..5 {
        order.push(picked(h, &ar).await);
    }
    assert_eq!(order, ["ar-1", "ar-2", "ar-1", "ar-2", "ar-1"]);
}

/// Lowest latency picks the fastest eligible proxy; unmeasured ones come last.
pub async fn lowest_latency_prefers_the_fastest_proxy<H: Harness>(h: &H) {
    let pool = new_pool(h, "latency").await;
    add(
        h,
        proxy(&pool, "slow", 1)
            .with_latency_ms(300)
            .with_max_concurrency(1),
    )
    .await;
    add(
        h,
        proxy(&pool, "fast", 2)
            .with_latency_ms(50)
            .with_max_concurrency(1),
    )
    .await;
    add(h, proxy(&pool, "unmeasured", 3).with_max_concurrency(1)).await;
    add(
        h,
        proxy(&pool, "mid", 4)
            .with_latency_ms(120)
            .with_max_concurrency(1),
    )
    .await;
    let req = request(&pool).selector(Selector::LowestLatency);
    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(picked(h, &req).await);
    }
    assert_eq!(order, ["fast", "mid", "slow", "unmeasured"]);
    miss(h, &req).await;
}

/// A lease counts against its proxy until released.
pub async fn lease_and_release<H: Harness>(h: &H) {
    let s = h.storage();
    let pool = new_pool(h, "lease").await;
    add(h, proxy(&pool, "p", 1).with_max_concurrency(1)).await;
    let l = lease(h, &request(&pool)).await;
    let stats = s.pool_stats(&pool).await.unwrap();
    assert_eq!(
        (
            stats.active_leases,
            stats.leased,
            stats.available,
            stats.total_leases
        ),
        (1, 1, 0, 1)
    );
    assert_eq!(s.release(&l).await.unwrap(), ReleaseOutcome::Released);
    let stats = s.pool_stats(&pool).await.unwrap();
    assert_eq!(
        (
            stats.active_leases,
            stats.leased,
            stats.available,
            stats.released_leases
        ),
        (0, 0, 1, 1)
    );
    assert_invariants(h, &pool, true).await;
}

/// `get_lease` finds a live lease by pool and id, and nothing once it ended,
/// in another pool, or in a pool that does not exist.
pub async fn get_lease_finds_live_leases_only<H: Harness>(h: &H) {
    let s = h.storage();
    let pool = new_pool(h, "get-lease").await;
    let other = new_pool(h, "get-lease-other").await;
    add(h, proxy(&pool, "p", 1).with_max_concurrency(2)).await;
    let l = lease(h, &request(&pool).consumer("reader")).await;
    let found = s
        .get_lease(&pool, &l.id)
        .await
        .unwrap()
        .expect("live lease");
    assert_eq!(
        (
            found.id,
            found.token,
            found.status,
            &found.consumer,
            &found.proxy.id
        ),
        (l.id, l.token, LeaseStatus::Active, &l.consumer, &l.proxy.id)
    );
    assert_eq!(
        (found.acquired_at, found.expires_at),
        (l.acquired_at, l.expires_at)
    );
    assert_eq!(s.get_lease(&other, &l.id).await.unwrap(), None);
    assert_eq!(
        s.get_lease(&h.unique_pool("get-lease-none"), &l.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.get_lease(&pool, &LeaseId::random()).await.unwrap(), None);
    s.release(&l).await.unwrap();
    assert_eq!(s.get_lease(&pool, &l.id).await.unwrap(), None);
    let short = lease(h, &request(&pool).duration(SHORT_TTL)).await;
    h.advance(PAST_SHORT_TTL).await;
    assert_eq!(s.get_lease(&pool, &short.id).await.unwrap(), None);
}

/// `release_by_ref` and `renew_by_ref` act on a lease named by pool and id
/// alone (what an HTTP client keeps), refuse a reference with another token
/// or pool, and free capacity once (I4).
pub async fn leases_by_ref_need_only_the_id<H: Harness>(h: &H) {
    let s = h.storage();
    let pool = new_pool(h, "by-ref").await;
    let other = new_pool(h, "by-ref-other").await;
    add(h, proxy(&pool, "p", 1).with_max_concurrency(1)).await;
    let l = lease(h, &request(&pool).consumer("remote")).await;
    let by_id = LeaseRef::new(pool.clone(), l.id);
    let forged = by_id.clone().with_token(l.token + 1);
    assert_eq!(s.release_by_ref(&forged).await.unwrap(), None);
    assert_eq!(
        s.release_by_ref(&LeaseRef::new(other.clone(), l.id))
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        s.renew_by_ref(&forged, TimeDelta::seconds(60)).await,
        Err(Error::LeaseLost { .. })
    ));
    let renewed = s
        .renew_by_ref(&by_id, TimeDelta::seconds(120))
        .await
        .expect("renew by id");
    assert_eq!(
        (
            renewed.id,
            renewed.token,
            &renewed.consumer,
            &renewed.proxy.id
        ),
        (l.id, l.token, &l.consumer, &l.proxy.id)
    );
    assert_eq!(renewed.acquired_at, l.acquired_at);
    assert!(renewed.expires_at > l.acquired_at + TimeDelta::seconds(60));
    let (ended, outcome) = s
        .release_by_ref(&by_id)
        .await
        .unwrap()
        .expect("a live lease is released by id");
    assert_eq!(outcome, ReleaseOutcome::Released);
    assert_eq!(
        (ended.id, ended.token, &ended.consumer, &ended.proxy.id),
        (l.id, l.token, &l.consumer, &l.proxy.id)
    );
    assert_eq!(ended.acquired_at, l.acquired_at);
    assert_eq!(ended.proxy.host, l.proxy.host);
    assert_eq!(s.release_by_ref(&by_id).await.unwrap(), None);
    assert_eq!(s.release(&l).await.unwrap(), ReleaseOutcome::NotHeld);
    assert!(matches!(
        s.renew_by_ref(&by_id, TimeDelta::seconds(60)).await,
        Err(Error::LeaseLost { .. })
    ));
    let stats = s.pool_stats(&pool).await.unwrap();
    assert_eq!((stats.active_leases, stats.released_leases), (0, 1));
    // A full lease released by reference with its token.
    let again = lease(h, &request(&pool)).await;
    let (_, outcome) = s
        .release_by_ref(&LeaseRef::from(&again))
        .await
        .unwrap()
        .expect("released with its token");
    assert_eq!(outcome, ReleaseOutcome::Released);
    // Past its deadline: reclaimed (counted as expired) or already gone.
    let short = lease(h, &request(&pool).duration(SHORT_TTL)).await;
    h.advance(PAST_SHORT_TTL).await;
    let late = s
        .release_by_ref(&LeaseRef::new(pool.clone(), short.id))
        .await
        .unwrap();
    assert!(
        matches!(late, None | Some((_, ReleaseOutcome::Expired))),
        "{late:?}"
    );
    let _next = lease(h, &request(&pool)).await;
    assert_invariants(h, &pool, true).await;
}

/// `cleanup_expired` reclaims expired leases in bounded batches and counts them.
pub async fn expired_leases_are_cleaned_up<H: Harness>(h: &H) {
    let s = h.storage();
    let mut in_time = InTime::new("expired_leases_are_cleaned_up");
    let (pool, kept) = loop {
        let pool = new_pool(h, "cleanup").await;
        add(h, proxy(&pool, "p", 1)).await;
        let short = request(&pool).duration(SHORT_TTL);
        let first = lease(h, &short).await;
        for _ in 1..5 {
            lease(h, &short).await;
        }
        let kept = lease(h, &request(&pool)).await;
        let reclaimed = s.cleanup_expired(&pool, 100).await.unwrap();
        // Before the first short lease's deadline: nothing to reclaim yet.
        if still_before(h, &pool, first.expires_at).await {
            assert_eq!(reclaimed, 0, "live leases were reclaimed");
            break (pool, kept);
        }
        in_time.again();
    };
    h.advance(PAST_SHORT_TTL).await;
    assert_eq!(
        s.cleanup_expired(&pool, 2).await.unwrap(),
        2,
        "bounded batch"
    );
    assert_eq!(s.cleanup_expired(&pool, 100).await.unwrap(), 3);
    assert_eq!(s.cleanup_expired(&pool, 100).await.unwrap(), 0);
    let stats = s.pool_stats(&pool).await.unwrap();
    assert_eq!((stats.active_leases, stats.expired_leases), (1, 5));
    assert_invariants(h, &pool, true).await;
    assert_eq!(s.release(&kept).await.unwrap(), ReleaseOutcome::Released);
}

/// An acquire reclaims every expired lease of its pool before choosing, not
/// only the one it needs: afterwards no expired lease holds capacity (I6).
pub async fn acquire_reclaims_expired_leases_first<H: Harness>(h: &H) {
    let s = h.storage();
    let mut in_time = InTime::new("acquire_reclaims_expired_leases_first");
    let (pool, old) = loop {
        let pool = new_pool(h, "reclaim").await;
        for i in 0..3u16 {
            add(h, proxy(&pool, &format!("p{i}"), i).with_max_concurrency(2)).await;
        }
        let mut old = Vec::new();
        for _ in 0..6 {
            old.push(lease(h, &request(&pool).duration(SHORT_TTL)).await);
        }
        let got = s.acquire(&request(&pool)).await.unwrap();
        // The pool was full while the short leases were live.
        if still_before(h, &pool, old[0].expires_at).await {
            assert!(got.is_none(), "expected no lease, got {got:?}");
            break (pool, old);
        }
        in_time.again();
    };
    h.advance(PAST_SHORT_TTL).await;
    let new = lease(h, &request(&pool)).await;
    assert_eq!(new.proxy.id, "p0");
    assert_invariants(h, &pool, true).await;
    let stats = s.pool_stats(&pool).await.unwrap();
    assert_eq!((stats.active_leases, stats.expired_leases), (1, 6));
    for l in &old {
        assert_eq!(s.release(l).await.unwrap(), ReleaseOutcome::NotHeld);
    }
}

/// Releasing twice frees capacity once (I4).
pub async fn release_twice_frees_capacity_once<H: Harness>(h: &H) {
    let s = h.storage();
    let pool = new_pool(h, "twice").await;
    add(h, proxy(&pool, "p", 1).with_max_concurrency(2)).await;
    let a = lease(h, &request(&pool)).await;
    let _b = lease(h, &request(&pool)).await;
    // A forged copy with another token is not the same lease.
    let forged = Lease {
        token: a.token + 1_000,
        ..a.clone()
    };
    assert_eq!(s.release(&forged).await.unwrap(), ReleaseOutcome::NotHeld);
    assert_eq!(s.release(&a).await.unwrap(), ReleaseOutcome::Released);
    assert_eq!(s.release(&a).await.unwrap(), ReleaseOutcome::NotHeld);
    let stats = s.pool_stats(&pool).await.unwrap();
    assert_eq!((stats.active_leases, stats.released_leases), (1, 1));
    let _c = lease(h, &request(&pool)).await;
    miss(h, &request(&pool)).await;
    assert_invariants(h, &pool, true).await;
}

/// Releasing after expiry is not an error and frees capacity at most once.
pub async fn release_after_expiry_is_not_an_error<H: Harness>(h: &H) {
    let s = h.storage();
    let pool = new_pool(h, "late").await;
    add(h, proxy(&pool, "p", 1).with_max_concurrency(1)).await;
    let l = lease(h, &request(&pool).duration(SHORT_TTL)).await;
    h.advance(PAST_SHORT_TTL).await;
    let first = s.release(&l).await.unwrap();
    assert!(
        matches!(first, ReleaseOutcome::Expired | ReleaseOutcome::NotHeld),
        "{first:?}"
    );
    assert_eq!(s.release(&l).await.unwrap(), ReleaseOutcome::NotHeld);
    let stats = s.pool_stats(&pool).await.unwrap();
    assert_eq!(
        (
            stats.active_leases,
            stats.expired_leases,
            stats.released_leases
        ),
        (0, 1, 0)
    );
    assert_invariants(h, &pool, true).await;
}

/// Renewing moves the deadline to now + duration (not old deadline +
/// duration), keeps the lease alive past its old deadline, and the renewed
/// lease still expires at its new one.
pub async fn renew_extends_the_lease<H: Harness>(h: &H) {
    let s = h.storage();
    let extension = TimeDelta::milliseconds(600);
    let mut in_time = InTime::new("renew_extends_the_lease");
    let (pool, l, renewed) = loop {
        let pool = new_pool(h, "renew").await;
        add(h, proxy(&pool, "p", 1).with_max_concurrency(1)).await;
        let l = lease(h, &request(&pool).duration(SHORT_TTL)).await;
        let renewed = match s.renew(&l, extension).await {
            Ok(renewed) => renewed,
            // Renewed after the short deadline: too slow this time.
            Err(Error::LeaseLost { .. }) => {
                in_time.again();
                continue;
            }
            Err(e) => panic!("renew: {e}"),
        };
        assert_eq!((renewed.id, renewed.token), (l.id, l.token));
        // Now + duration: renewed after the grant and before this snapshot.
        // Taken before the old deadline (always on a manual clock), that
        // rules out old deadline + duration.
        let after = s.pool_snapshot(&pool).await.unwrap().taken_at;
        assert!(
            renewed.expires_at >= l.acquired_at + extension
                && renewed.expires_at <= after + extension,
            "renewed to {}, expected now + {extension} (granted {}, old deadline {}, now {after})",
            renewed.expires_at,
            l.acquired_at,
            l.expires_at
        );
        h.advance(PAST_SHORT_TTL).await;
        let reclaimed = s.cleanup_expired(&pool, 10).await.unwrap();
        let got = s.acquire(&request(&pool)).await.unwrap();
        // Past the old deadline (by the advance) and before the new one.
        if still_before(h, &pool, renewed.expires_at).await {
            assert_eq!(reclaimed, 0, "alive past the old deadline");
            assert!(
                got.is_none(),
                "the renewed lease still holds the proxy: {got:?}"
            );
            break (pool, l, renewed);
        }
        in_time.again();
    };
    // Just past the new deadline, by the store's clock.
    let now = s.pool_snapshot(&pool).await.unwrap().taken_at;
    let to_deadline = (renewed.expires_at - now).to_std().unwrap_or_default();
    h.advance(to_deadline + Duration::from_millis(20)).await;
    assert_eq!(
        s.cleanup_expired(&pool, 10).await.unwrap(),
        1,
        "expired at the new deadline"
    );
    assert_eq!(s.release(&l).await.unwrap(), ReleaseOutcome::NotHeld);
    assert_eq!(s.pool_stats(&pool).await.unwrap().expired_leases, 1);
}

/// Renewing an expired lease fails with `LeaseLost` and frees nothing twice.
pub async fn renew_after_expiry_fails_with_lease_lost<H: Harness>(h: &H) {
    let s = h.storage();
    let pool = new_pool(h, "renew-late").await;
    add(h, proxy(&pool, "p", 1).with_max_concurrency(1)).await;
    let l = lease(h, &request(&pool).duration(SHORT_TTL)).await;
    h.advance(PAST_SHORT_TTL).await;
    match s.renew(&l, TimeDelta::seconds(30)).await {
        Err(Error::LeaseLost { lease }) => assert_eq!(lease, l.id),
        other => panic!("expected LeaseLost, got {other:?}"),
    }
    assert_eq!(s.release(&l).await.unwrap(), ReleaseOutcome::NotHeld);
    let stats = s.pool_stats(&pool).await.unwrap();
    assert_eq!((stats.active_leases, stats.expired_leases), (0, 1));
    lease(h, &request(&pool)).await;
}

/// Renewing a released lease fails with `LeaseLost`.
pub async fn renew_after_release_fails_with_lease_lost<H: Harness>(h: &H) {
    let s = h.storage();
    let pool = new_pool(h, "renew-released").await;
    add(h, proxy(&pool, "p", 1)).await;
    let l = lease(h, &request(&pool)).await;
    s.release(&l).await.unwrap();
    assert!(matches!(
        s.renew(&l, TimeDelta::seconds(5)).await,
        Err(Error::LeaseLost { .. })
    ));
    let unknown = Lease {
        id: LeaseId::random(),
        ..l
    };
    assert!(matches!(
        s.renew(&unknown, TimeDelta::seconds(5)).await,
        Err(Error::LeaseLost { .. })
    ));
}

/// Fencing tokens of a pool strictly increase across leases (I5).
pub async fn fencing_tokens_strictly_increase<H: Harness>(h: &H) {
    let s = h.storage();
    let pool = new_pool(h, "tokens").await;
    add(h, proxy(&pool, "a", 1).with_max_concurrency(1)).await;
    add(h, proxy(&pool, "b", 2)).await;
    let mut ledger = TokenLedger::new();
    for i in 0..20 {
        let selector = Selector::ALL[i % 4];
        let l = lease(h, &request(&pool).selector(selector)).await;
        ledger.record(l.token);
        if i % 3 != 0 {
            s.release(&l).await.unwrap();
        }
    }
    let renewed_from = lease(h, &request(&pool)).await;
    let renewed = s
        .renew(&renewed_from, TimeDelta::seconds(60))
        .await
        .unwrap();
    assert_eq!(renewed.token, renewed_from.token, "renew keeps the token");
    ledger.record(renewed_from.token);
    assert!(ledger.violations().is_empty(), "{:?}", ledger.violations());
}

/// Proxies that are inactive, slow or banned are never leased (I7).
pub async fn non_active_proxies_are_never_leased<H: Harness>(h: &H) {
    let s = h.storage();
    let pool = new_pool(h, "inactive").await;
    for (i, status) in [
        ProxyStatus::Inactive,
        ProxyStatus::Slow,
        ProxyStatus::Banned,
    ]
    .into_iter()
    .enumerate()
    {
        add(
            h,
            proxy(&pool, status.as_str(), i as u16).with_status(status),
        )
        .await;
    }
    for selector in Selector::ALL {
        miss(h, &request(&pool).selector(selector)).await;
        let found = s
            .find_available_proxy(&pool, &ProxyFilters::new(), selector)
            .await
            .unwrap();
        assert_eq!(found, None);
    }
    let stats = s.pool_stats(&pool).await.unwrap();
    assert_eq!((stats.total, stats.active, stats.available), (3, 0, 0));
    add(h, proxy(&pool, "slow", 1)).await;
    assert_eq!(picked(h, &request(&pool)).await, "slow");
}

/// A health result sets status, `checked_at` and latency; non-active proxies
/// leave rotation at once; a result older than the last one is ignored.
pub async fn health_result_updates_status_and_latency<H: Harness>(h: &H) {
    let s = h.storage();
    let pool = new_pool(h, "health").await;
    add(h, proxy(&pool, "p", 1).with_latency_ms(500)).await;
    let t0 = crate::datetime_from_ms(Utc::now().timestamp_millis());
    let held = lease(h, &request(&pool)).await;

    let slow =
        HealthCheckResult::new(pool.clone(), "p", ProxyStatus::Slow, t0).with_latency_ms(2_500);
    let updated = s.apply_health_check_result(&slow).await.unwrap().unwrap();
    assert_eq!(
        (
            updated.status,
            updated.checked_at,
            updated.latency_ms,
            updated.current_leases
        ),
        (ProxyStatus::Slow, Some(t0), Some(2_500), 1)
    );
    miss(h, &request(&pool)).await;
    let stats = s.pool_stats(&pool).await.unwrap();
    assert_eq!((stats.active, stats.available, stats.leased), (0, 0, 1));
    assert_invariants(h, &pool, true).await;

    let t1 = t0 + TimeDelta::seconds(10);
    let ok = HealthCheckResult::new(pool.clone(), "p", ProxyStatus::Active, t1).with_latency_ms(80);
    s.apply_health_check_result(&ok).await.unwrap().unwrap();
    let stale = HealthCheckResult::new(pool.clone(), "p", ProxyStatus::Banned, t0);
    let after_stale = s.apply_health_check_result(&stale).await.unwrap().unwrap();
    assert_eq!(
        after_stale.status,
        ProxyStatus::Active,
        "stale result ignored"
    );
    assert_eq!(after_stale.checked_at, Some(t1));
    // A failed check without latency keeps the last measured latency.
    let t2 = t1 + TimeDelta::seconds(10);
    let no_latency = HealthCheckResult::new(pool.clone(), "p", ProxyStatus::Active, t2);
    let kept = s
        .apply_health_check_result(&no_latency)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.latency_ms, Some(80));
    let l = lease(h, &request(&pool).selector(Selector::LowestLatency)).await;
    assert_eq!(l.proxy.id, "p");
    s.release(&held).await.unwrap();
    assert_invariants(h, &pool, true).await;
}

/// A health result for an unknown proxy or pool gives `None`.
pub async fn health_result_for_unknown_proxy_gives_none<H: Harness>(h: &H) {
    let s = h.storage();
    let pool = new_pool(h, "health-unknown").await;
    let now = Utc::now();
    let r = HealthCheckResult::new(pool.clone(), "ghost", ProxyStatus::Inactive, now);
    assert_eq!(s.apply_health_check_result(&r).await.unwrap(), None);
    let r = HealthCheckResult::new(
        h.unique_pool("no-such-pool"),
        "ghost",
        ProxyStatus::Active,
        now,
    );
    assert_eq!(s.apply_health_check_result(&r).await.unwrap(), None);
}

/// A removed proxy is never leased again and its leases release cleanly.
pub async fn removed_proxy_is_never_leased_and_its_leases_release_cleanly<H: Harness>(h: &H) {
    let s = h.storage();
    let pool = new_pool(h, "remove").await;
    add(h, proxy(&pool, "gone", 1)).await;
    add(h, proxy(&pool, "stays", 2).with_max_concurrency(1)).await;
    let l1 = lease(h, &request(&pool)).await;
    let l2 = lease(h, &request(&pool)).await;
    assert_eq!(
        (l1.proxy.id.as_str(), l2.proxy.id.as_str()),
        ("gone", "gone")
    );
    assert!(s.remove_proxy(&pool, &ProxyId::from("gone")).await.unwrap());
    assert!(!s.remove_proxy(&pool, &ProxyId::from("gone")).await.unwrap());
    assert_invariants(h, &pool, true).await;
    assert_eq!(s.release(&l1).await.unwrap(), ReleaseOutcome::NotHeld);
    assert!(matches!(
        s.renew(&l2, TimeDelta::seconds(5)).await,
        Err(Error::LeaseLost { .. })
    ));
    assert_eq!(picked(h, &request(&pool)).await, "stays");
    miss(h, &request(&pool)).await;
    let stats = s.pool_stats(&pool).await.unwrap();
    assert_eq!(
        (
            stats.total,
            stats.active_leases,
            stats.released_leases,
            stats.total_leases
        ),
        (1, 1, 2, 3)
    );
    assert_invariants(h, &pool, true).await;
}

/// `max_concurrency` cannot drop below the leases a proxy holds now.
pub async fn lowering_max_concurrency_below_active_leases_is_rejected<H: Harness>(h: &H) {
    let s = h.storage();
    let pool = new_pool(h, "lower").await;
    let p = add(h, proxy(&pool, "p", 1).with_max_concurrency(3)).await;
    lease(h, &request(&pool)).await;
    lease(h, &request(&pool)).await;
    assert_invalid(
        s.upsert_proxy(&p.clone().with_max_concurrency(1)).await,
        "proxy.max_concurrency",
    );
    let lowered = s.upsert_proxy(&p.with_max_concurrency(2)).await.unwrap();
    assert_eq!(
        lowered.current_leases, 2,
        "upsert keeps the store's lease count"
    );
    miss(h, &request(&pool)).await;
    assert_invariants(h, &pool, true).await;

    // Leases past their deadline do not count against a lowered cap.
    let q = add(
        h,
        proxy(&pool, "q", 2).with_city("q").with_max_concurrency(2),
    )
    .await;
    let on_q = request(&pool)
        .filters(ProxyFilters::new().city("q"))
        .duration(SHORT_TTL);
    lease(h, &on_q).await;
    lease(h, &on_q).await;
    h.advance(PAST_SHORT_TTL).await;
    let lowered = s.upsert_proxy(&q.with_max_concurrency(1)).await.unwrap();
    assert_eq!(lowered.current_leases, 0);
    assert_invariants(h, &pool, true).await;
}

/// Removing a pool removes its proxies and leases; its leases release as
/// `NotHeld`; a pool re-created with the same id starts empty but its fencing
/// tokens keep increasing (I5 across incarnations).
pub async fn removed_pool_takes_its_leases_with_it<H: Harness>(h: &H) {
    let s = h.storage();
    let pool = new_pool(h, "doomed").await;
    add(h, proxy(&pool, "p", 1)).await;
    let l = lease(h, &request(&pool)).await;
    assert!(s.remove_pool(&pool).await.unwrap());
    assert_eq!(s.release(&l).await.unwrap(), ReleaseOutcome::NotHeld);
    assert!(matches!(
        s.pool_stats(&pool).await,
        Err(Error::PoolNotFound(_))
    ));
    s.upsert_pool(&ProxyPool::new(pool.clone())).await.unwrap();
    let stats = s.pool_stats(&pool).await.unwrap();
    assert_eq!((stats.total, stats.total_leases), (0, 0));
    assert!(s.list_proxies(&pool).await.unwrap().is_empty());
    add(h, proxy(&pool, "p", 1)).await;
    let again = lease(h, &request(&pool)).await;
    assert!(
        again.token > l.token,
        "token {} after re-creation, {} before",
        again.token,
        l.token
    );
}

/// Credentials survive storage and leasing but never show in `Debug` (I8).
pub async fn credentials_round_trip_and_stay_redacted<H: Harness>(h: &H) {
    let s = h.storage();
    let pool = new_pool(h, "secret").await;
    let password = "hunter2:@/ é";
    add(h, proxy(&pool, "p", 1).with_credentials("alice", password)).await;
    let l = lease(h, &request(&pool)).await;
    assert_eq!(
        l.proxy.url(),
        "http://alice:hunter2%3A%40%2F%20%C3%A9@10.0.0.2:8001"
    );
    let stored = s
        .get_proxy(&pool, &ProxyId::from("p"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.credentials.as_ref().map(|c| c.password.expose()),
        Some(password)
    );
    for text in [
        format!("{l:?}"),
        format!("{stored:?}"),
        format!("{stored}"),
        format!("{:?}", s.pool_snapshot(&pool).await.unwrap()),
        l.proxy.redacted_url(),
    ] {
        assert!(!text.contains("hunter2"), "password leaked: {text}");
    }
}

/// After a random sequence of every operation (acquire with every selector
/// and filters, release, repeat release, renew, health results, proxy
/// upserts and removals, cleanup, time passing), the counters equal a
/// recomputation and I1–I4, I6 and I7 hold; every lease the store picked
/// matches its request's filters by the reference evaluator.
pub async fn pool_stats_match_recomputation_after_random_operations<H: Harness>(h: &H) {
    const PROXIES: u16 = 12;
    let s = h.storage();
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    let pool = new_pool(h, "random").await;
    let countries = ["AR", "US", "DE"];
    let make = |i: u16, rng: &mut fastrand::Rng| {
        let mut p = proxy(&pool, &format!("p{i}"), i).with_country(countries[i as usize % 3]);
        if rng.u8(0..4) != 0 {
            p = p.with_max_concurrency(rng.u32(1..4));
        }
        if rng.u8(0..5) != 0 {
            p = p.with_latency_ms(rng.u32(1..400));
        }
        p
    };
    for i in 0..PROXIES {
        add(h, make(i, &mut rng)).await;
    }
    let mut held: Vec<Lease> = Vec::new();
    let mut ended: Vec<Lease> = Vec::new();
    let mut advances = 0;
    let baseline = s.pool_stats(&pool).await.unwrap();
    let mut ledger = crate::invariants::ReleaseLedger::default();
    for step in 0..400 {
        let ctx = format!("seed {seed}, step {step}");
        match rng.u32(0..100) {
            0..=37 => {
                let mut req = request(&pool).selector(Selector::ALL[rng.usize(0..4)]);
                if rng.bool() {
                    req = req.filters(ProxyFilters::new().country(countries[rng.usize(0..3)]));
                }
                if rng.u32(0..4) == 0 {
                    req = req.duration(SHORT_TTL);
                }
                if let Some(l) = s.acquire(&req).await.unwrap() {
                    ledger.acquired += 1;
                    let p = s.get_proxy(&pool, &l.proxy.id).await.unwrap().unwrap();
                    assert_eq!(p.status, ProxyStatus::Active, "{ctx}: I7");
                    assert!(
                        req.filters.matches(&p),
                        "{ctx}: {p:?} does not match {req:?}"
                    );
                    held.push(l);
                }
            }
            38..=60 if !held.is_empty() => {
                let l = held.swap_remove(rng.usize(0..held.len()));
                ledger.first_release(s.release(&l).await.unwrap());
                ended.push(l);
            }
            61..=64 if !ended.is_empty() => {
                let l = &ended[rng.usize(0..ended.len())];
                ledger.repeat_release(s.release(l).await.unwrap());
            }
            65..=70 if !held.is_empty() => {
                let i = rng.usize(0..held.len());
                match s.renew(&held[i], TimeDelta::seconds(60)).await {
                    Ok(renewed) => held[i] = renewed,
                    Err(Error::LeaseLost { .. }) => {}
                    Err(e) => panic!("{ctx}: renew: {e}"),
                }
            }
            71..=76 => {
                let status = [
                    ProxyStatus::Active,
                    ProxyStatus::Slow,
                    ProxyStatus::Inactive,
                ][rng.usize(0..3)];
                let at = crate::datetime_from_ms(Utc::now().timestamp_millis())
                    + TimeDelta::milliseconds(step);
                let id = format!("p{}", rng.u16(0..PROXIES));
                let r = HealthCheckResult::new(pool.clone(), id, status, at)
                    .with_latency_ms(rng.u32(1..900));
                s.apply_health_check_result(&r).await.unwrap();
            }
            77..=81 => {
                // Change cap, latency and status in place (or re-add a removed proxy).
                let i = rng.u16(0..PROXIES);
                let mut p = make(i, &mut rng);
                p.status = [ProxyStatus::Active, ProxyStatus::Banned][rng.usize(0..2)];
                let live = s
                    .get_proxy(&pool, &p.id)
                    .await
                    .unwrap()
                    .map_or(0, |p| p.current_leases);
                match s.upsert_proxy(&p).await {
                    // Upsert may first reclaim leases past their deadline.
                    Ok(stored) => assert!(stored.current_leases <= live, "{ctx}"),
                    Err(Error::InvalidInput {
                        field: "proxy.max_concurrency",
                        ..
                    }) => {
                        assert!(p.max_concurrency.is_some_and(|m| m < live), "{ctx}");
                    }
                    Err(e) => panic!("{ctx}: upsert: {e}"),
                }
            }
            82..=83 => {
                let id = ProxyId::from(format!("p{}", rng.u16(0..PROXIES)));
                // Removal ends the leases the store still holds (counted as
                // released); ones it already reclaimed stay counted as expired.
                let live: HashSet<LeaseId> = s
                    .pool_snapshot(&pool)
                    .await
                    .unwrap()
                    .leases
                    .iter()
                    .filter(|l| l.proxy.id == id)
                    .map(|l| l.id)
                    .collect();
                if s.remove_proxy(&pool, &id).await.unwrap() {
                    let (gone, kept): (Vec<Lease>, Vec<Lease>) =
                        held.drain(..).partition(|l| l.proxy.id == id);
                    held = kept;
                    for l in gone {
                        let outcome = s.release(&l).await.unwrap();
                        assert_eq!(outcome, ReleaseOutcome::NotHeld, "{ctx}");
                        if live.contains(&l.id) {
                            ledger.revoked += 1;
                        } else {
                            ledger.first_release(outcome);
                        }
                        ended.push(l);
                    }
                }
            }
            84..=87 => {
                s.cleanup_expired(&pool, 1 + rng.usize(0..4)).await.unwrap();
            }
            88..=89 if advances < 8 => {
                advances += 1;
                h.advance(Duration::from_millis(60)).await;
            }
            _ => {
                s.find_available_proxy(&pool, &ProxyFilters::new(), Selector::LeastUsed)
                    .await
                    .unwrap();
            }
        }
        let snapshot = s.pool_snapshot(&pool).await.unwrap();
        let found = crate::invariants::check_snapshot(&snapshot, false);
        assert!(found.is_empty(), "{ctx}: {found:?}");
    }
    // End every lease: release what is held, let the short ones expire.
    for l in held.drain(..) {
        ledger.first_release(s.release(&l).await.unwrap());
    }
    h.advance(PAST_SHORT_TTL).await;
    while s.cleanup_expired(&pool, 100).await.unwrap() > 0 {}
    assert_invariants(h, &pool, true).await;
    let end = s.pool_stats(&pool).await.unwrap();
    assert_eq!(check_lifetime_counters(&end), None);
    let accounting = ledger.check(&baseline, &end);
    assert!(accounting.is_empty(), "seed {seed}: {accounting:?}");
}

/// 64 tasks acquiring at once never over-lease (I1) and never miss while
/// capacity exists.
pub async fn parallel_acquires_never_over_lease_and_never_miss<H: Harness>(h: &H) {
    const TASKS: usize = 64;
    const ROUNDS: usize = 25;
    let pool = new_pool(h, "parallel").await;
    for i in 0..32u16 {
        add(h, proxy(&pool, &format!("p{i}"), i).with_max_concurrency(2)).await;
    }
    // Exactly as many slots as tasks: everyone gets one, nobody gets two.
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (s, pool, barrier) = (h.storage().clone(), pool.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let req = request(&pool).selector(Selector::ALL[t % 4]);
            barrier.wait().await;
            s.acquire(&req).await
        }));
    }
    let mut held = Vec::new();
    for task in tasks {
        held.push(
            task.await
                .unwrap()
                .unwrap()
                .expect("a slot was free for every task"),
        );
    }
    let ids: HashSet<LeaseId> = held.iter().map(|l| l.id).collect();
    assert_eq!(ids.len(), TASKS);
    assert_invariants(h, &pool, true).await;
    miss(h, &request(&pool)).await;
    for l in &held {
        assert_eq!(
            h.storage().release(l).await.unwrap(),
            ReleaseOutcome::Released
        );
    }

    // Churn: each task releases before asking again, so a slot is always free.
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (s, pool, barrier) = (h.storage().clone(), pool.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut ledger = TokenLedger::new();
            let mut misses = 0;
            barrier.wait().await;
            for r in 0..ROUNDS {
                let req = request(&pool).selector(Selector::ALL[(t + r) % 4]);
                match s.acquire(&req).await.unwrap() {
                    Some(l) => {
                        ledger.record(l.token);
                        tokio::task::yield_now().await;
                        assert_eq!(s.release(&l).await.unwrap(), ReleaseOutcome::Released);
                    }
                    None => misses += 1,
                }
            }
            (ledger, misses)
        }));
    }
    let mut all = TokenLedger::new();
    let mut misses = 0;
    for task in tasks {
        let (ledger, m) = task.await.unwrap();
        all.merge(ledger);
        misses += m;
    }
    assert_eq!(misses, 0, "acquire missed while capacity existed");
    assert_eq!(all.len(), TASKS * ROUNDS);
    assert!(all.violations().is_empty(), "{:?}", all.violations());
    assert_invariants(h, &pool, true).await;
    let stats = h.storage().pool_stats(&pool).await.unwrap();
    assert_eq!(stats.total_leases, (TASKS + TASKS * ROUNDS) as u64);
    assert_eq!(stats.active_leases, 0);
}

/// Bad input is refused with `InvalidInput` before any state changes.
pub async fn bad_input_gets_typed_errors<H: Harness>(h: &H) {
    let s = h.storage();
    let pool = new_pool(h, "bad").await;
    add(h, proxy(&pool, "p", 1)).await;
    let long_pool = PoolId::from("x".repeat(MAX_POOL_ID_LEN + 1));
    assert_invalid(s.acquire(&AcquireRequest::new("")).await, "pool");
    assert_invalid(
        s.acquire(&AcquireRequest::new(long_pool.clone())).await,
        "pool",
    );
    assert_invalid(s.upsert_pool(&ProxyPool::new("")).await, "pool");
    assert_invalid(s.upsert_pool(&ProxyPool::new(long_pool)).await, "pool");
    assert_invalid(s.upsert_pool(&ProxyPool::new("tab\there")).await, "pool");
    for bad in [
        TimeDelta::zero(),
        TimeDelta::seconds(-5),
        TimeDelta::microseconds(10),
        MAX_LEASE_DURATION + TimeDelta::milliseconds(1),
    ] {
        assert_invalid(s.acquire(&request(&pool).duration(bad)).await, "duration");
    }
    assert_invalid(s.acquire(&request(&pool).consumer("")).await, "consumer");
    assert_invalid(
        s.acquire(&request(&pool).filters(ProxyFilters::new().within_km(95.0, 0.0, 10.0)))
            .await,
        "filters",
    );
    let held = lease(h, &request(&pool)).await;
    assert_invalid(s.renew(&held, TimeDelta::zero()).await, "duration");
    assert_invalid(s.renew(&held, MAX_LEASE_DURATION * 2).await, "duration");
    assert_invalid(s.cleanup_expired(&pool, 0).await, "limit");

    let mut port_zero = proxy(&pool, "zero", 2);
    port_zero.port = 0;
    assert_invalid(s.upsert_proxy(&port_zero).await, "proxy.port");
    let half_located = Proxy {
        latitude: Some(1.0),
        ..proxy(&pool, "half", 3)
    };
    assert_invalid(s.upsert_proxy(&half_located).await, "proxy.location");
    assert_invalid(
        s.upsert_proxy(&proxy(&pool, "nan", 4).with_location(f64::NAN, 0.0))
            .await,
        "proxy.location",
    );
    assert_invalid(
        s.upsert_proxy(&proxy(&pool, "cap", 5).with_max_concurrency(0))
            .await,
        "proxy.max_concurrency",
    );
    assert_invalid(s.upsert_proxy(&proxy(&pool, "", 6)).await, "proxy.id");
    let mut no_host = proxy(&pool, "nohost", 7);
    no_host.host = String::new();
    assert_invalid(s.upsert_proxy(&no_host).await, "proxy.host");
    let mut bad_host = proxy(&pool, "badhost", 8);
    bad_host.host = "user@evil/path".into();
    assert_invalid(s.upsert_proxy(&bad_host).await, "proxy.host");

    let stats = s.pool_stats(&pool).await.unwrap();
    assert_eq!((stats.total, stats.total_leases), (1, 1), "nothing changed");
}

/// Naming a pool that does not exist gets `PoolNotFound` (release: `NotHeld`).
pub async fn unknown_pool_gets_pool_not_found<H: Harness>(h: &H) {
    let s = h.storage();
    let ghost = h.unique_pool("ghost");
    let not_found = |r: crate::Result<()>| {
        assert!(
            matches!(r, Err(Error::PoolNotFound(ref p)) if *p == ghost),
            "{r:?}"
        );
    };
    not_found(s.acquire(&request(&ghost)).await.map(drop));
    not_found(s.pool_stats(&ghost).await.map(drop));
    not_found(s.pool_snapshot(&ghost).await.map(drop));
    not_found(s.stats_history(&ghost, 10).await.map(drop));
    not_found(s.cleanup_expired(&ghost, 10).await.map(drop));
    not_found(s.list_proxies(&ghost).await.map(drop));
    not_found(s.upsert_proxy(&proxy(&ghost, "p", 1)).await.map(drop));
    not_found(
        s.find_available_proxy(&ghost, &ProxyFilters::new(), Selector::FirstAvailable)
            .await
            .map(drop),
    );
    // A lease naming a vanished pool is simply not held.
    let real = new_pool(h, "real").await;
    add(h, proxy(&real, "p", 1)).await;
    let l = lease(h, &request(&real)).await;
    let orphan = Lease {
        pool: ghost.clone(),
        ..l
    };
    assert_eq!(s.release(&orphan).await.unwrap(), ReleaseOutcome::NotHeld);
}

/// `stats_history` answers a new pool's history empty, refuses a length
/// outside 1 to [`MAX_HISTORY_LIMIT`], and on a store that keeps a history
/// answers the newest recorded snapshots first, at most `limit` of them.
pub async fn stats_history_answers_recorded_snapshots_newest_first<H: Harness>(h: &H) {
    let s = h.storage();
    let pool = new_pool(h, "history").await;
    add(h, proxy(&pool, "p", 3)).await;
    assert_eq!(s.stats_history(&pool, 10).await.unwrap(), Vec::new());
    assert_eq!(s.stats_history(&pool, 1).await.unwrap(), Vec::new());
    assert_eq!(
        s.stats_history(&pool, MAX_HISTORY_LIMIT).await.unwrap(),
        Vec::new()
    );
    assert_invalid(s.stats_history(&pool, 0).await, "limit");
    assert_invalid(s.stats_history(&pool, MAX_HISTORY_LIMIT + 1).await, "limit");

    let mut recorded = Vec::new();
    for i in 0..3_i64 {
        lease(h, &request(&pool)).await;
        let mut snapshot = s.pool_stats(&pool).await.expect("stats");
        // Distinct times even on a coarse clock.
        snapshot.collected_at += TimeDelta::seconds(i);
        if !h.record_stats(&snapshot).await {
            return; // this store keeps no history
        }
        recorded.push(snapshot);
    }
    let summary = |snapshots: &[crate::PoolStatsSnapshot]| {
        snapshots
            .iter()
            .map(|x| {
                (
                    x.pool.clone(),
                    x.active_leases,
                    x.total_leases,
                    x.collected_at.timestamp(),
                )
            })
            .collect::<Vec<_>>()
    };
    let newest_first: Vec<_> = recorded.iter().rev().cloned().collect();
    let all = s.stats_history(&pool, 10).await.unwrap();
    assert_eq!(summary(&all), summary(&newest_first));
    let most = s.stats_history(&pool, MAX_HISTORY_LIMIT).await.unwrap();
    assert_eq!(summary(&most), summary(&newest_first));
    let two = s.stats_history(&pool, 2).await.unwrap();
    assert_eq!(summary(&two), summary(&newest_first[..2]));
}

/// Ids every store must accept and keep apart (braces, colons, spaces,
/// `%`-escapes, quotes, backslashes, unicode, lease-member look-alikes); the
/// worker's metrics tests name pools by them too.
pub const HOSTILE_IDS: [&str; 21] = [
    "{a}",
    "a}",
    "a{",
    "}{",
    "a:b",
    "a:b:c",
    "a b",
    " a",
    "a%7D",
    "a%7d",
    "ü",
    "世界",
    "🙂",
    "1:2:3:4:x",
    "a\\b",
    "*",
    "?",
    "[a]",
    "-",
    "a'b\"c",
    "pharox:{x}:hot",
];

/// Hostile ids: braces, colons, spaces, `%`-escapes, unicode, lease-member
/// look-alikes, and 10 KB strings. Each either works or gets a typed
/// `InvalidInput`, and pools never see each other's proxies or leases;
/// out-of-range numbers (coordinates, radii) get `InvalidInput` and change
/// nothing.
pub async fn hostile_ids_work_or_get_typed_errors_and_never_collide<H: Harness>(h: &H) {
    let s = h.storage();
    // A per-run tag keeps the pools apart from other runs on a shared server.
    let tag = h.unique_pool("");
    let names = HOSTILE_IDS;
    let ten_kb = "k".repeat(10 * 1024);
    let pools: Vec<PoolId> = names
        .iter()
        .map(|n| PoolId::from(format!("{n}{tag}")))
        .collect();
    for (i, pool) in pools.iter().enumerate() {
        s.upsert_pool(&ProxyPool::new(pool.clone()))
            .await
            .unwrap_or_else(|e| panic!("pool {pool:?}: {e}"));
        // Every pool gets one proxy per hostile name, plus its own marker.
        for (j, name) in names.iter().enumerate() {
            let p = proxy(pool, name, (i * names.len() + j) as u16).with_max_concurrency(1);
            add(h, p).await;
        }
        add(h, proxy(pool, &format!("own-{i}"), 5000 + i as u16)).await;
    }
    for (bad, field) in [
        (ten_kb.as_str(), "pool"),
        ("", "pool"),
        ("a\nb", "pool"),
        ("a\0b", "pool"),
    ] {
        assert_invalid(s.upsert_pool(&ProxyPool::new(bad)).await, field);
        assert_invalid(s.acquire(&AcquireRequest::new(bad)).await, field);
        assert_invalid(s.pool_stats(&PoolId::from(bad)).await, field);
    }
    let first = &pools[0];
    for bad in [ten_kb.as_str(), "", "a\tb"] {
        assert_invalid(s.upsert_proxy(&proxy(first, bad, 9999)).await, "proxy.id");
        assert_invalid(s.acquire(&request(first).consumer(bad)).await, "consumer");
    }

    // No collisions: each pool lists exactly its own proxies and leases only those.
    for (i, pool) in pools.iter().enumerate() {
        let listed: HashSet<String> = s
            .list_proxies(pool)
            .await
            .unwrap()
            .iter()
            .map(|p| p.id.to_string())
            .collect();
        let mut expected: HashSet<String> = names.iter().map(|n| n.to_string()).collect();
        expected.insert(format!("own-{i}"));
        assert_eq!(listed, expected, "pool {pool:?}");
        for name in names {
            let got = s
                .get_proxy(pool, &ProxyId::from(name))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{name:?} in {pool:?}"));
            assert_eq!((got.pool.as_str(), got.id.as_str()), (pool.as_str(), name));
        }
    }
    let consumer = "w:{x} ü:1:2";
    let mut held = Vec::new();
    for (i, pool) in pools.iter().enumerate() {
        let req = request(pool).consumer(consumer);
        let mut got = HashSet::new();
        for _ in 0..names.len() {
            let l = lease(h, &req).await;
            assert_eq!(l.pool, *pool);
            assert_eq!(l.consumer.as_str(), consumer);
            assert!(
                got.insert(l.proxy.id.to_string()),
                "leased twice in {pool:?}"
            );
            held.push(l);
        }
        // The marker (unlimited) is the only one left, and it is this pool's own.
        let own = lease(h, &req).await;
        assert_eq!(own.proxy.id.as_str(), format!("own-{i}"));
        held.push(own);
        let stats = s.pool_stats(pool).await.unwrap();
        assert_eq!(
            (stats.total, stats.active_leases),
            (names.len() as u64 + 1, names.len() as u64 + 1),
            "pool {pool:?}"
        );
    }
    for l in &held {
        assert_eq!(s.release(l).await.unwrap(), ReleaseOutcome::Released);
    }
    for pool in &pools {
        assert_invariants(h, pool, true).await;
        assert_eq!(s.pool_stats(pool).await.unwrap().active_leases, 0);
    }

    // Out-of-range numbers are typed errors and change nothing.
    for (lat, lon) in [
        (90.5, 0.0),
        (-91.0, 0.0),
        (0.0, 180.5),
        (0.0, -181.0),
        (f64::NAN, 0.0),
        (0.0, f64::INFINITY),
        (f64::NEG_INFINITY, 0.0),
    ] {
        assert_invalid(
            s.upsert_proxy(&proxy(first, "far", 9000).with_location(lat, lon))
                .await,
            "proxy.location",
        );
        assert_invalid(
            s.acquire(&request(first).filters(ProxyFilters::new().within_km(lat, lon, 10.0)))
                .await,
            "filters",
        );
    }
    for radius in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e12] {
        assert_invalid(
            s.acquire(&request(first).filters(ProxyFilters::new().within_km(0.0, 0.0, radius)))
                .await,
            "filters",
        );
    }
    // Poles and the antimeridian are in range and work.
    add(h, proxy(first, "pole", 9001).with_location(90.0, 180.0)).await;
    let near_pole = request(first).filters(ProxyFilters::new().within_km(89.99, -179.9, 5.0));
    assert_eq!(lease(h, &near_pole).await.proxy.id.as_str(), "pole");
    assert!(
        s.get_proxy(first, &ProxyId::from("far"))
            .await
            .unwrap()
            .is_none()
    );
}
