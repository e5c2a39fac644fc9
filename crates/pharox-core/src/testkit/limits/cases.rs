//! The cases, one function each, grouped by limit.

use super::*;

// ---------------------------------------------------------------------------
// 1. Reclaiming a full batch of expired leases.

/// A pool of [`MAX_CLEANUP_BATCH`] single-slot proxies, each holding one lease that is now due.
async fn due_leases_pool<H: Harness>(h: &H, base: &str) -> PoolId {
    let n = MAX_CLEANUP_BATCH;
    let pool = seeded_pool(h, base, n, |pool, i| {
        numbered_proxy(pool, i).with_max_concurrency(1)
    })
    .await;
    let leases = timed(
        "leasing every proxy",
        lease_many(h, &AcquireRequest::new(pool.clone()).duration(HOLD), n),
    )
    .await;
    let proxies: HashSet<&ProxyId> = leases.iter().map(|l| &l.proxy.id).collect();
    assert_eq!(proxies.len(), n, "one lease on each proxy");
    timed("making the leases due", make_due(h, &leases)).await;
    pool
}

/// After a reclaim of every lease of a [`due_leases_pool`]: every proxy is
/// free, each lease counted once as expired, and I6 holds.
async fn assert_all_reclaimed<H: Harness>(h: &H, pool: &PoolId, still_leased: u64) {
    let n = MAX_CLEANUP_BATCH as u64;
    let stats = assert_live(h, pool, [n, n - still_leased, still_leased, still_leased]).await;
    assert_eq!(stats.expired_leases, n, "each lease reclaimed once");
    let proxies = h.storage().list_proxies(pool).await.expect("list");
    let held: u32 = proxies.iter().map(|p| p.current_leases).sum();
    assert_eq!(u64::from(held), still_leased);
    crate::testkit::assert_invariants(h, pool, true).await;
}

/// `cleanup_expired(pool, MAX_CLEANUP_BATCH)` reclaims 10,000 leases over
/// 10,000 proxies in one call.
pub async fn cleanup_reclaims_a_full_batch_in_one_call<H: Harness>(h: &H) -> Vec<PoolId> {
    let pool = due_leases_pool(h, "reclaim-cleanup").await;
    let n = timed(
        "cleanup of 10,000",
        h.storage().cleanup_expired(&pool, MAX_CLEANUP_BATCH),
    )
    .await
    .expect("cleanup");
    assert_eq!(n, MAX_CLEANUP_BATCH);
    assert_eq!(h.storage().cleanup_expired(&pool, 1).await.unwrap(), 0);
    assert_all_reclaimed(h, &pool, 0).await;
    vec![pool]
}

/// One acquire reclaims 10,000 due leases over 10,000 proxies (the store's
/// whole reclaim batch: on Redis the harness must be configured with
/// `reclaim_batch(10_000)`), then leases the first proxy.
pub async fn acquire_reclaims_a_full_batch<H: Harness>(h: &H) -> Vec<PoolId> {
    let pool = due_leases_pool(h, "reclaim-acquire").await;
    let first = h.storage().list_proxies(&pool).await.expect("list")[0]
        .id
        .clone();
    let req = AcquireRequest::new(pool.clone()).duration(HOLD);
    let got = timed("acquire reclaiming 10,000", lease(h, &req)).await;
    assert_eq!(
        got.proxy.id, first,
        "everything is free again: the first proxy"
    );
    assert_all_reclaimed(h, &pool, 1).await;
    assert_eq!(
        h.storage().release(&got).await.unwrap(),
        ReleaseOutcome::Released
    );
    assert_all_reclaimed(h, &pool, 0).await;
    vec![pool]
}

/// An upsert reclaims 10,000 due leases over 10,000 proxies first.
pub async fn upsert_reclaims_a_full_batch<H: Harness>(h: &H) -> Vec<PoolId> {
    let pool = due_leases_pool(h, "reclaim-upsert").await;
    let update = numbered_proxy(&pool, 0)
        .with_max_concurrency(1)
        .with_latency_ms(5);
    let stored = timed(
        "upsert reclaiming 10,000",
        h.storage().upsert_proxy(&update),
    )
    .await
    .expect("upsert");
    assert_eq!(
        stored.current_leases, 0,
        "its own lease was reclaimed first"
    );
    assert_all_reclaimed(h, &pool, 0).await;
    vec![pool]
}

// ---------------------------------------------------------------------------
// 2. The most live leases one proxy holds.

/// A pool of one unlimited proxy holding [`MAX_CONCURRENCY`] leases; the
/// next acquire answers `None`.
async fn fullest_proxy<H: Harness>(h: &H, base: &str) -> (PoolId, Vec<Lease>) {
    let pool = seeded_pool(h, base, 1, numbered_proxy).await;
    let req = AcquireRequest::new(pool.clone()).duration(HOLD);
    let n = MAX_CONCURRENCY as usize;
    let leases = timed("65,535 leases on one proxy", lease_many(h, &req, n)).await;
    miss(h, &req).await;
    let full = h
        .storage()
        .get_proxy(&pool, &numbered_id(0))
        .await
        .unwrap()
        .expect("the proxy");
    assert_eq!(full.current_leases, MAX_CONCURRENCY);
    assert_eq!(
        full.max_concurrency, None,
        "unlimited, capped at MAX_CONCURRENCY"
    );
    let tokens: HashSet<u64> = leases.iter().map(|l| l.token).collect();
    assert_eq!(tokens.len(), n, "every lease has its own token");
    assert_live(h, &pool, [1, 0, 1, n as u64]).await;
    (pool, leases)
}

/// An unlimited proxy takes 65,535 leases, no more; they all expire and are
/// reclaimed by cleanups of [`MAX_CLEANUP_BATCH`].
pub async fn an_unlimited_proxy_takes_65_535_leases_that_all_expire<H: Harness>(
    h: &H,
) -> Vec<PoolId> {
    let (pool, leases) = fullest_proxy(h, "fullest-expire").await;
    timed("making 65,535 leases due", make_due(h, &leases)).await;
    let started = Instant::now();
    let (mut reclaimed, mut calls) = (0, 0);
    loop {
        let n = h
            .storage()
            .cleanup_expired(&pool, MAX_CLEANUP_BATCH)
            .await
            .expect("cleanup");
        calls += 1;
        reclaimed += n;
        if n < MAX_CLEANUP_BATCH {
            break;
        }
    }
    eprintln!("  {calls} cleanups of 65,535: {:.1?}", started.elapsed());
    assert_eq!((reclaimed, calls), (leases.len(), 7));
    let stats = assert_live(h, &pool, [1, 1, 0, 0]).await;
    assert_eq!(stats.expired_leases, leases.len() as u64);
    crate::testkit::assert_invariants(h, &pool, true).await;
    let again = lease(h, &AcquireRequest::new(pool.clone()).duration(HOLD)).await;
    h.storage().release(&again).await.unwrap();
    vec![pool]
}

/// An unlimited proxy takes 65,535 leases; releasing them all frees it.
pub async fn an_unlimited_proxy_takes_65_535_leases_that_all_release<H: Harness>(
    h: &H,
) -> Vec<PoolId> {
    let (pool, leases) = fullest_proxy(h, "fullest-release").await;
    timed(
        "releasing 65,535",
        release_all(h, &leases, ReleaseOutcome::Released),
    )
    .await;
    let stats = assert_live(h, &pool, [1, 1, 0, 0]).await;
    assert_eq!(stats.released_leases, leases.len() as u64);
    release_all(h, &leases[..100], ReleaseOutcome::NotHeld).await;
    vec![pool]
}

/// Removing a proxy that holds 65,535 live leases ends them all.
pub async fn removing_a_proxy_ends_its_65_535_leases<H: Harness>(h: &H) -> Vec<PoolId> {
    let (pool, leases) = fullest_proxy(h, "fullest-remove").await;
    let removed = timed(
        "remove_proxy with 65,535 leases",
        h.storage().remove_proxy(&pool, &numbered_id(0)),
    )
    .await
    .expect("remove");
    assert!(removed);
    let stats = assert_live(h, &pool, [0, 0, 0, 0]).await;
    assert_eq!(stats.released_leases, leases.len() as u64);
    release_all(h, &leases[..100], ReleaseOutcome::NotHeld).await;
    assert!(matches!(
        h.storage().renew(&leases[0], HOLD).await,
        Err(Error::LeaseLost { .. })
    ));
    vec![pool]
}

// ---------------------------------------------------------------------------
// 3. and 4. Selection in a large pool.

/// A single free proxy behind 100,000 full ones is found by every selector,
/// unfiltered, under an equality filter all proxies match and under a geo
/// radius covering them all.
pub async fn a_free_proxy_behind_100_000_full_ones_is_found<H: Harness>(h: &H) -> Vec<PoolId> {
    let n = LARGE_POOL + 1;
    let make = |pool: &PoolId, i: usize| {
        numbered_proxy(pool, i)
            .with_max_concurrency(1)
            .with_country("AR")
            .with_latency_ms(i as u32 + 1)
    };
    let pool = seeded_pool(h, "behind-full", n, make).await;
    let reference = Reference::of_pool(h, &pool, (0..n).map(|i| make(&pool, i)).collect()).await;
    let full = timed(
        "leasing 100,000",
        lease_many(
            h,
            &AcquireRequest::new(pool.clone()).duration(HOLD),
            LARGE_POOL,
        ),
    )
    .await;
    let taken: HashSet<&ProxyId> = full.iter().map(|l| &l.proxy.id).collect();
    let in_order = reference.proxies();
    assert!(
        in_order[..LARGE_POOL].iter().all(|p| taken.contains(&p.id)),
        "first available leased the first 100,000 in sequence order"
    );
    let last = in_order[LARGE_POOL].id.clone();
    // The free one is made the slowest: lowest latency must pass them all.
    let slowest = Proxy {
        latency_ms: Some(n as u32 + 1),
        ..in_order[LARGE_POOL].clone()
    };
    h.storage().upsert_proxy(&slowest).await.expect("update");
    for filters in [
        ProxyFilters::new(),
        ProxyFilters::new().country("AR"),
        ProxyFilters::new().within_km(CENTRE.0, CENTRE.1, COVERING_KM),
    ] {
        for selector in Selector::ALL {
            let req = AcquireRequest::new(pool.clone())
                .duration(HOLD)
                .filters(filters.clone())
                .selector(selector);
            let started = Instant::now();
            let got = lease(h, &req).await;
            eprintln!(
                "  {selector:?} under {}: {:.1?}",
                serde_json::to_string(&filters).unwrap_or_default(),
                started.elapsed()
            );
            assert_eq!(got.proxy.id, last, "{selector:?} under {filters:?}");
            miss(h, &req).await;
            assert_eq!(
                h.storage().release(&got).await.unwrap(),
                ReleaseOutcome::Released
            );
            let found = h
                .storage()
                .find_available_proxy(&pool, &filters, selector)
                .await
                .expect("find");
            assert_eq!(found.map(|p| p.id), Some(last.clone()));
        }
    }
    assert_live(
        h,
        &pool,
        [n as u64, 1, LARGE_POOL as u64, LARGE_POOL as u64],
    )
    .await;
    vec![pool]
}

/// Under a geo radius covering a whole 100,000-proxy pool, every selector
/// leases what the reference allows (varied caps, latencies and statuses).
pub async fn a_radius_over_100_000_proxies_follows_the_reference<H: Harness>(h: &H) -> Vec<PoolId> {
    let make = |pool: &PoolId, i: usize| {
        let mut p = numbered_proxy(pool, i).with_max_concurrency(1 + (i % 3) as u32);
        if !i.is_multiple_of(13) {
            p = p.with_latency_ms(((i * 7919) % 100_000) as u32);
        }
        if i % 97 == 1 {
            p = p.with_status(ProxyStatus::Inactive);
        }
        p
    };
    let pool = seeded_pool(h, "radius-all", LARGE_POOL, make).await;
    let mut reference =
        Reference::of_pool(h, &pool, (0..LARGE_POOL).map(|i| make(&pool, i)).collect()).await;
    let radius = ProxyFilters::new().within_km(CENTRE.0, CENTRE.1, COVERING_KM);
    assert!(
        reference.matching(&radius).iter().all(|m| *m),
        "the radius covers the whole pool"
    );
    acquire_like_the_reference(
        h,
        &mut reference,
        &pool,
        &radius,
        ACQUIRES_PER_SELECTOR,
        "radius over 100,000",
    )
    .await;
    vec![pool]
}

// ---------------------------------------------------------------------------
// 5. Admin calls on large pools.

/// Snapshot, list, insert, update and remove on a 100,000-proxy pool with leases.
pub async fn admin_calls_work_on_a_100_000_proxy_pool<H: Harness>(h: &H) -> Vec<PoolId> {
    let s = h.storage();
    let pool = seeded_pool(h, "admin-large", LARGE_POOL, |pool, i| {
        numbered_proxy(pool, i).with_max_concurrency(2)
    })
    .await;
    let leases = lease_many(h, &AcquireRequest::new(pool.clone()).duration(HOLD), 1_000).await;
    let snapshot = timed("pool_snapshot of 100,000", s.pool_snapshot(&pool))
        .await
        .expect("snapshot");
    assert_eq!(
        (snapshot.proxies.len(), snapshot.leases.len()),
        (LARGE_POOL, 1_000)
    );
    let ids: HashSet<&ProxyId> = snapshot.proxies.iter().map(|p| &p.id).collect();
    assert!(
        (0..LARGE_POOL).all(|i| ids.contains(&numbered_id(i))),
        "the snapshot holds every proxy once"
    );
    assert!(check_snapshot(&snapshot, false).is_empty());
    let listed = timed("list_proxies of 100,000", s.list_proxies(&pool))
        .await
        .expect("list");
    assert_eq!(
        listed, snapshot.proxies,
        "list and snapshot agree, in order"
    );
    let place = listed
        .iter()
        .position(|p| p.id == numbered_id(LARGE_POOL / 2))
        .expect("listed");

    let added = numbered_proxy(&pool, LARGE_POOL);
    timed("insert into 100,000", s.upsert_proxy(&added))
        .await
        .expect("insert");
    let mut moved = numbered_proxy(&pool, LARGE_POOL / 2).with_max_concurrency(2);
    moved.host = "10.255.255.254".into();
    timed("update in 100,000", s.upsert_proxy(&moved))
        .await
        .expect("update");
    let listed = s.list_proxies(&pool).await.expect("list");
    assert_eq!(listed.len(), LARGE_POOL + 1);
    assert_eq!(listed[LARGE_POOL].id, added.id, "a new proxy comes last");
    assert_eq!(listed[place].host, moved.host, "an update keeps its place");
    assert_eq!(
        s.pool_stats(&pool).await.unwrap().total,
        LARGE_POOL as u64 + 1
    );
    check_pool(h, &pool).await;

    let removed = timed("remove_pool of 100,001", s.remove_pool(&pool))
        .await
        .expect("remove pool");
    assert!(removed);
    assert_eq!(s.get_pool(&pool).await.unwrap(), None);
    assert_eq!(
        s.release(&leases[0]).await.unwrap(),
        ReleaseOutcome::NotHeld
    );
    vec![pool]
}

/// A pool takes exactly [`MAX_PROXIES_PER_POOL`] proxies: the 1,000,000th is
/// accepted, the next refused, an update still works, and snapshot, list
/// and remove work at that size.
pub async fn a_pool_holds_max_proxies_per_pool<H: Harness>(h: &H) -> Vec<PoolId> {
    let s = h.storage();
    let started = Instant::now();
    let pool = seeded_pool(h, "million", MAX_PROXIES_PER_POOL - 1, numbered_proxy).await;
    let last = numbered_proxy(&pool, MAX_PROXIES_PER_POOL - 1);
    s.upsert_proxy(&last).await.expect("the 1,000,000th proxy");
    let mut updated = numbered_proxy(&pool, MAX_PROXIES_PER_POOL / 2);
    updated.host = "10.255.255.253".into();
    s.upsert_proxy(&updated)
        .await
        .expect("update in a full pool");
    let held = lease(h, &AcquireRequest::new(pool.clone()).duration(HOLD)).await;
    let max = MAX_PROXIES_PER_POOL as u64;
    assert_live(h, &pool, [max, max, 1, 1]).await;
    let listed = timed("list_proxies of 1,000,000", s.list_proxies(&pool))
        .await
        .expect("list");
    assert_eq!(listed.len(), MAX_PROXIES_PER_POOL);
    assert_eq!(
        held.proxy.id, listed[0].id,
        "first available: the first proxy"
    );
    assert!(listed.iter().any(|p| p.host == updated.host));
    drop(listed);
    let snapshot = timed("checks with a snapshot of 1,000,000", check_pool(h, &pool))
        .await
        .expect("the pool exists");
    assert_eq!(snapshot.proxies.len(), MAX_PROXIES_PER_POOL);
    drop(snapshot);
    // Refusals last, so a store that does not refuse yet still has every
    // call above measured before it fails here.
    let refused = s
        .upsert_proxy(&numbered_proxy(&pool, MAX_PROXIES_PER_POOL))
        .await;
    let total_after = s.pool_stats(&pool).await.expect("stats").total;
    let removed = timed("remove_pool of 1,000,000", s.remove_pool(&pool))
        .await
        .expect("remove pool");
    assert!(removed);
    eprintln!("  the whole 1,000,000 case: {:.1?}", started.elapsed());
    match &refused {
        Err(Error::InvalidInput { field, reason })
            if (*field == "pool" || field.starts_with("proxy"))
                && (reason.contains("1000000") || reason.contains("1,000,000")) => {}
        other => {
            panic!("the 1,000,001st proxy: expected InvalidInput naming the limit, got {other:?}")
        }
    }
    assert_eq!(total_after, max, "a refused proxy is not stored");
    vec![pool]
}

// ---------------------------------------------------------------------------
// 6. The largest filter.

/// The largest filter accepted, on 100,000 proxies: every selector leases
/// what the reference allows, and a variant matching nothing (so the store
/// examines every proxy) answers `None`.
pub async fn the_largest_filter_follows_the_reference<H: Harness>(h: &H) -> Vec<PoolId> {
    let pool = seeded_pool(h, "largest-filter", LARGE_POOL, varied_proxy).await;
    let built = (0..LARGE_POOL).map(|i| varied_proxy(&pool, i)).collect();
    let mut reference = Reference::of_pool(h, &pool, built).await;
    let matching = largest_filter(ProxyFilters::new().within_km(CENTRE.0, CENTRE.1, COVERING_KM));
    let matches = reference.matching(&matching).iter().filter(|m| **m).count();
    assert!(
        (1_000..5_000).contains(&matches),
        "the largest filter matches {matches} proxies"
    );
    acquire_like_the_reference(
        h,
        &mut reference,
        &pool,
        &matching,
        ACQUIRES_PER_SELECTOR,
        "largest filter",
    )
    .await;
    let nothing = largest_filter(ProxyFilters::new().country("ZZ"));
    acquire_like_the_reference(
        h,
        &mut reference,
        &pool,
        &nothing,
        1,
        "largest filter, no match",
    )
    .await;
    for selector in Selector::ALL {
        let found = h
            .storage()
            .find_available_proxy(&pool, &nothing, selector)
            .await
            .expect("find");
        assert!(found.is_none(), "{selector:?} found {found:?}");
    }
    vec![pool]
}

/// One node, one byte, one level or one value byte past the filter limits
/// is refused with `InvalidInput`, by acquire and by find.
pub async fn filters_past_their_limits_are_refused<H: Harness>(h: &H) -> Vec<PoolId> {
    let pool = seeded_pool(h, "filter-limits", 10, varied_proxy).await;
    let at_limit = largest_filter(ProxyFilters::new().country("AR"));
    let mut one_node_more = at_limit.clone();
    one_node_more.any_of.push(ProxyFilters::new().asn(1));
    // 257 nodes in a few kilobytes: the node count alone refuses it.
    let many_small = ProxyFilters::new()
        .any_of((0..MAX_FILTER_NODES as u32).map(|a| ProxyFilters::new().asn(a)));
    assert!(many_small.json_len() < MAX_FILTER_BYTES);
    let mut one_byte_more = at_limit.clone();
    one_byte_more
        .any_of
        .iter_mut()
        .filter_map(|n| n.source.as_mut())
        .find(|s| s.starts_with("filler-") && s.len() < MAX_FILTER_VALUE_LEN)
        .expect("a filler with room")
        .push('f');
    assert_eq!(one_byte_more.node_count(), MAX_FILTER_NODES);
    assert_eq!(one_byte_more.json_len(), MAX_FILTER_BYTES + 1);
    let mut too_deep = ProxyFilters::new().asn(1);
    for _ in 0..=MAX_FILTER_DEPTH {
        too_deep = ProxyFilters::new().all_of([too_deep]);
    }
    let too_long = ProxyFilters::new().source("s".repeat(MAX_FILTER_VALUE_LEN + 1));
    let too_wide = ProxyFilters::new().within_km(0.0, 0.0, MAX_RADIUS_KM * 1.001);
    for (filters, field, reason) in [
        (&one_node_more, "filters", "has 257 nodes"),
        (&many_small, "filters", "has 257 nodes"),
        (&one_byte_more, "filters", "is 16385 bytes"),
        (&too_deep, "filters", "deeper than 8"),
        (
            &too_long,
            "filters.source",
            "is 257 bytes, the limit is 256",
        ),
        (&too_wide, "filters.geo.radius_km", "at most"),
    ] {
        for selector in Selector::ALL {
            let req = AcquireRequest::new(pool.clone())
                .filters(filters.clone())
                .selector(selector);
            assert_refused(h.storage().acquire(&req).await, field, reason);
            assert_refused(
                h.storage()
                    .find_available_proxy(&pool, filters, selector)
                    .await,
                field,
                reason,
            );
        }
    }
    // At the limits, the same filters are accepted.
    h.storage()
        .acquire(&AcquireRequest::new(pool.clone()).filters(at_limit))
        .await
        .expect("the largest filter is accepted");
    let global = ProxyFilters::new().within_km(CENTRE.0, CENTRE.1, MAX_RADIUS_KM);
    lease(h, &AcquireRequest::new(pool.clone()).filters(global)).await;
    assert_eq!(h.storage().pool_stats(&pool).await.unwrap().total, 10);
    vec![pool]
}

// ---------------------------------------------------------------------------
// 7. The other limits.

/// `len` bytes, starting with `tag` so values stay distinct.
fn sized(tag: &str, len: usize) -> String {
    let mut v = tag.to_owned();
    v.push_str(&"z".repeat(len - tag.len()));
    v
}

/// Pool ids of 128 bytes, proxy ids of 256, consumers of 128, hosts of 253,
/// text fields of 1,024 and 64 extra entries round-trip and lease; one byte
/// (or entry) more is refused.
pub async fn ids_and_texts_work_at_their_limits<H: Harness>(h: &H) -> Vec<PoolId> {
    let s = h.storage();
    let base = h.unique_pool("ids");
    let pool = PoolId::from(sized(base.as_str(), MAX_POOL_ID_LEN));
    assert_eq!(pool.as_str().len(), MAX_POOL_ID_LEN);
    s.upsert_pool(&ProxyPool::new(pool.clone()).with_description(sized("d", MAX_TEXT_LEN)))
        .await
        .expect("the longest pool id");
    let longer = PoolId::from(format!("{pool}p"));
    assert_refused(
        s.upsert_pool(&ProxyPool::new(longer.clone())).await,
        "pool",
        "129 bytes",
    );
    assert_invalid(s.acquire(&AcquireRequest::new(longer)).await, "pool");

    let text = |tag: &str| sized(tag, MAX_TEXT_LEN);
    let mut p = Proxy::new(
        pool.clone(),
        format!("{}.example", "h".repeat(MAX_HOST_LEN - 8)),
        65_535,
        ProxyProtocol::Socks5,
    )
    .with_id(sized("id", MAX_PROXY_ID_LEN))
    .with_credentials(text("user"), text("pass"))
    .with_source(text("source"))
    .with_country(text("country"))
    .with_city(text("city"))
    .with_isp(text("isp"))
    .with_asn(u32::MAX)
    .with_latency_ms(u32::MAX - 1)
    .with_location(-90.0, 180.0)
    .with_max_concurrency(MAX_CONCURRENCY);
    assert_eq!(p.host.len(), MAX_HOST_LEN);
    for i in 0..MAX_EXTRA_ENTRIES {
        p = p.with_extra(sized(&format!("k{i:02}"), MAX_TEXT_LEN), text("v"));
    }
    let stored = s.upsert_proxy(&p).await.expect("every field at its limit");
    assert_eq!(stored, p);
    assert_eq!(s.get_proxy(&pool, &p.id).await.unwrap(), Some(p.clone()));
    let consumer = ConsumerName::from(sized("consumer", MAX_CONSUMER_NAME_LEN));
    s.ensure_consumer(&consumer)
        .await
        .expect("the longest consumer");
    let by_country = ProxyFilters::new().country(p.country.clone().unwrap_or_default());
    assert_refused(
        s.acquire(&AcquireRequest::new(pool.clone()).filters(by_country))
            .await,
        "filters.country",
        "1024 bytes",
    );
    let held = lease(
        h,
        &AcquireRequest::new(pool.clone())
            .consumer(consumer.clone())
            .duration(HOLD),
    )
    .await;
    assert_eq!(
        (held.consumer.clone(), held.proxy.id.clone()),
        (consumer, p.id.clone())
    );
    assert_eq!(held.proxy.credentials, p.credentials);
    assert_eq!(s.release(&held).await.unwrap(), ReleaseOutcome::Released);

    let over = |f: &dyn Fn(&mut Proxy)| {
        let mut q = p.clone();
        f(&mut q);
        q
    };
    for (bad, field) in [
        (
            over(&|q| q.id = ProxyId::from(sized("id", MAX_PROXY_ID_LEN + 1))),
            "proxy.id",
        ),
        (over(&|q| q.host.insert(0, 'h')), "proxy.host"),
        (
            over(&|q| q.source = Some(text("source") + "s")),
            "proxy.source",
        ),
        (
            over(&|q| q.country = Some(text("country") + "c")),
            "proxy.country",
        ),
        (over(&|q| q.city = Some(text("city") + "c")), "proxy.city"),
        (over(&|q| q.isp = Some(text("isp") + "i")), "proxy.isp"),
        (
            over(&|q| {
                if let Some(c) = q.credentials.as_mut() {
                    c.username.push('u');
                }
            }),
            "proxy.credentials.username",
        ),
        (
            over(&|q| {
                q.extra.insert("one-more".into(), "v".into());
            }),
            "proxy.extra",
        ),
        (
            over(&|q| {
                if let Some(v) = q.extra.values_mut().next() {
                    v.push('v');
                }
            }),
            "proxy.extra",
        ),
    ] {
        assert_invalid(s.upsert_proxy(&bad).await, field);
    }
    assert_refused(
        s.ensure_consumer(&ConsumerName::from(sized(
            "consumer",
            MAX_CONSUMER_NAME_LEN + 1,
        )))
        .await,
        "consumer",
        "129 bytes",
    );
    assert_eq!(s.list_proxies(&pool).await.unwrap(), vec![p]);
    vec![pool]
}

/// Leases of exactly 24 h and of 1 ms are granted (and renewed); a
/// millisecond more than a day, or zero, is refused. A 1 ms lease expires.
pub async fn lease_durations_work_at_their_limits<H: Harness>(h: &H) -> Vec<PoolId> {
    let s = h.storage();
    let pool = seeded_pool(h, "durations", 2, |pool, i| {
        numbered_proxy(pool, i).with_max_concurrency(1)
    })
    .await;
    let req = AcquireRequest::new(pool.clone());
    let day = lease(h, &req.clone().duration(MAX_LEASE_DURATION)).await;
    assert_eq!(day.expires_at - day.acquired_at, MAX_LEASE_DURATION);
    let renewed = s
        .renew(&day, MAX_LEASE_DURATION)
        .await
        .expect("renew for 24 h");
    assert!(renewed.expires_at >= day.expires_at);
    let just_over = MAX_LEASE_DURATION + MIN_LEASE_DURATION;
    assert_invalid(
        s.acquire(&req.clone().duration(just_over)).await,
        "duration",
    );
    assert_invalid(s.renew(&day, just_over).await, "duration");
    assert_invalid(
        s.acquire(&req.clone().duration(chrono::TimeDelta::zero()))
            .await,
        "duration",
    );

    let blink = lease(h, &req.clone().duration(MIN_LEASE_DURATION)).await;
    assert_eq!(blink.expires_at - blink.acquired_at, MIN_LEASE_DURATION);
    h.advance(PAST_SHORT_TTL).await;
    assert_eq!(
        s.cleanup_expired(&pool, MAX_CLEANUP_BATCH).await.unwrap(),
        1
    );
    assert_eq!(s.release(&blink).await.unwrap(), ReleaseOutcome::NotHeld);
    assert_invalid(
        s.cleanup_expired(&pool, MAX_CLEANUP_BATCH + 1).await,
        "limit",
    );
    assert_invalid(s.cleanup_expired(&pool, 0).await, "limit");
    assert_eq!(s.release(&renewed).await.unwrap(), ReleaseOutcome::Released);
    vec![pool]
}

/// `max_concurrency` of 65,535 is accepted and leased; 65,536 is refused,
/// for a new proxy and for an update.
pub async fn max_concurrency_works_at_its_limit<H: Harness>(h: &H) -> Vec<PoolId> {
    let s = h.storage();
    let pool = new_pool(h, "max-concurrency").await;
    let capped = numbered_proxy(&pool, 0).with_max_concurrency(MAX_CONCURRENCY);
    assert_eq!(s.upsert_proxy(&capped).await.expect("65,535"), capped);
    assert_refused(
        s.upsert_proxy(&numbered_proxy(&pool, 1).with_max_concurrency(MAX_CONCURRENCY + 1))
            .await,
        "proxy.max_concurrency",
        "65535",
    );
    let mut raised = capped.clone();
    raised.max_concurrency = Some(MAX_CONCURRENCY + 1);
    assert_invalid(s.upsert_proxy(&raised).await, "proxy.max_concurrency");
    let leases = lease_many(h, &AcquireRequest::new(pool.clone()).duration(HOLD), 1_000).await;
    assert_eq!(
        s.get_proxy(&pool, &capped.id)
            .await
            .unwrap()
            .unwrap()
            .current_leases,
        1_000
    );
    assert_eq!(s.list_proxies(&pool).await.unwrap().len(), 1);
    release_all(h, &leases, ReleaseOutcome::Released).await;
    vec![pool]
}
