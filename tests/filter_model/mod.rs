//! The filtering property of the hostile-input tests, shared by every
//! store's test binary (the workspace's `tests/hostile_input.rs` for memory
//! and Redis, `crates/pharox-postgres/tests/hostile_input.rs` through
//! `#[path]`): on random pools and random (nested) filters, every acquire
//! leases exactly the proxy a model picks with the core reference evaluator
//! [`ProxyFilters::matches`] and the selector's rule (README: "What each
//! selector guarantees under a filter"), until every matching proxy is full.
//!
//! `PROPTEST_CASES` raises the number of random cases (default 48 per store).

use std::collections::BTreeSet;

use chrono::TimeDelta;
use pharox_core::{
    AcquireRequest, PoolId, Proxy, ProxyFilters, ProxyPool, ProxyProtocol, ProxyStatus, Selector,
    Storage,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const COUNTRIES: [&str; 4] = ["US", "DE", "NZ", "AR"];
const CITIES: [&str; 3] = ["Rosario", "São Paulo", "Köln"];
const SOURCES: [&str; 2] = ["dc", "res"];

/// A proxy description: attributes drawn from small domains so filters hit.
#[derive(Debug, Clone)]
struct Spec {
    country: Option<usize>,
    city: Option<usize>,
    source: Option<usize>,
    asn: Option<u32>,
    location: Option<(f64, f64)>,
    active: bool,
    cap: u32,
    latency_ms: Option<u32>,
}

fn coordinate() -> impl Strategy<Value = (f64, f64)> {
    prop_oneof![
        (-89.0..89.0f64, -180.0..=180.0f64),
        // Near the poles and the antimeridian, where geo code goes wrong.
        (
            prop_oneof![85.0..=90.0f64, -90.0..=-85.0f64],
            -180.0..=180.0f64
        ),
        (
            -60.0..60.0f64,
            prop_oneof![179.0..=180.0f64, -180.0..=-179.0f64]
        ),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        proptest::option::of(0..COUNTRIES.len()),
        proptest::option::of(0..CITIES.len()),
        proptest::option::of(0..SOURCES.len()),
        proptest::option::of(64_500..64_503u32),
        proptest::option::of(coordinate()),
        prop::bool::weighted(0.85),
        1..4u32,
        proptest::option::weighted(0.8, 10..60u32),
    )
        .prop_map(
            |(country, city, source, asn, location, active, cap, latency_ms)| Spec {
                country,
                city,
                source,
                asn,
                location,
                active,
                cap,
                latency_ms,
            },
        )
}

fn leaf() -> impl Strategy<Value = ProxyFilters> {
    prop_oneof![
        (0..COUNTRIES.len()).prop_map(|i| ProxyFilters::new().country(COUNTRIES[i])),
        // Country codes match case-insensitively.
        (0..COUNTRIES.len()).prop_map(|i| ProxyFilters::new().country(COUNTRIES[i].to_lowercase())),
        (0..CITIES.len()).prop_map(|i| ProxyFilters::new().city(CITIES[i])),
        (0..SOURCES.len()).prop_map(|i| ProxyFilters::new().source(SOURCES[i])),
        (64_500..64_504u32).prop_map(|a| ProxyFilters::new().asn(a)),
        (
            coordinate(),
            prop_oneof![1.0..50.0f64, 50.0..3_000.0f64, 3_000.0..20_000.0f64]
        )
            .prop_map(|((lat, lon), r)| ProxyFilters::new().within_km(lat, lon, r)),
    ]
}

fn filters() -> impl Strategy<Value = ProxyFilters> {
    let composite = |inner: BoxedStrategy<ProxyFilters>| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| ProxyFilters::new().any_of(v)),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| ProxyFilters::new().all_of(v)),
            prop::collection::vec(inner, 1..2).prop_map(|v| ProxyFilters::new().none_of(v)),
        ]
    };
    let one = leaf().boxed();
    prop_oneof![
        2 => Just(ProxyFilters::new()),
        4 => one.clone(),
        // A leaf combined with the fields of a second one (AND of fields).
        2 => (leaf(), leaf()).prop_map(|(a, b)| ProxyFilters::new().all_of([a, b])),
        3 => composite(one.clone()),
        2 => composite(composite(one).boxed()),
    ]
}

fn build(pool: &PoolId, specs: &[Spec]) -> Vec<Proxy> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut p = Proxy::new(
                pool.clone(),
                format!("10.7.{}.{}", i / 250, i % 250 + 1),
                7000 + i as u16,
                ProxyProtocol::Http,
            )
            .with_id(format!("p{i:02}"))
            .with_max_concurrency(s.cap);
            if let Some(l) = s.latency_ms {
                p = p.with_latency_ms(l);
            }
            if let Some(c) = s.country {
                p = p.with_country(COUNTRIES[c]);
            }
            if let Some(c) = s.city {
                p = p.with_city(CITIES[c]);
            }
            if let Some(c) = s.source {
                p = p.with_source(SOURCES[c]);
            }
            if let Some(a) = s.asn {
                p = p.with_asn(a);
            }
            if let Some((lat, lon)) = s.location {
                p = p.with_location(lat, lon);
            }
            if !s.active {
                p = p.with_status(ProxyStatus::Inactive);
            }
            p
        })
        .collect()
}

/// The proxy (its index in `proxies`) `selector` must lease next: among the
/// active proxies `f` matches with room, the first added (first available),
/// the first after the last one leased, wrapping (round robin), the fewest
/// leases (least used) or the lowest latency, unmeasured last (lowest
/// latency); ties go to the first added.
fn model_pick(
    proxies: &[Proxy],
    loads: &[u32],
    f: &ProxyFilters,
    selector: Selector,
    cursor: Option<usize>,
) -> Option<usize> {
    let free = (0..proxies.len()).filter(|&i| {
        let p = &proxies[i];
        p.status == ProxyStatus::Active
            && loads[i] < p.max_concurrency.unwrap_or(u32::MAX)
            && f.matches(p)
    });
    match selector {
        Selector::FirstAvailable => free.min(),
        Selector::RoundRobin => {
            let after = cursor.map_or(0, |c| c + 1);
            let all: Vec<usize> = free.collect();
            all.iter()
                .copied()
                .find(|&i| i >= after)
                .or(all.first().copied())
        }
        Selector::LeastUsed => free.min_by_key(|&i| (loads[i], i)),
        Selector::LowestLatency => {
            free.min_by_key(|&i| (proxies[i].latency_ms.unwrap_or(u32::MAX), i))
        }
    }
}

/// Seeds a fresh pool, then leases until nothing qualifies: every acquire
/// must lease the proxy the model picks, and at the end every active
/// matching proxy is full.
async fn agrees<S: Storage>(
    s: &S,
    pool: PoolId,
    specs: &[Spec],
    f: &ProxyFilters,
    selector: Selector,
) -> Result<(), TestCaseError> {
    s.upsert_pool(&ProxyPool::new(pool.clone())).await.unwrap();
    let proxies = build(&pool, specs);
    for p in &proxies {
        s.upsert_proxy(p).await.unwrap();
    }
    let expected: BTreeSet<String> = proxies
        .iter()
        .filter(|p| p.status == ProxyStatus::Active && f.matches(p))
        .map(|p| p.id.to_string())
        .collect();
    let found = s.find_available_proxy(&pool, f, selector).await.unwrap();
    prop_assert_eq!(
        found.is_some(),
        !expected.is_empty(),
        "find_available_proxy"
    );
    let req = AcquireRequest::new(pool.clone())
        .filters(f.clone())
        .selector(selector)
        .duration(TimeDelta::minutes(5));
    let mut loads = vec![0u32; proxies.len()];
    let mut cursor = None;
    let mut leased = BTreeSet::new();
    loop {
        let want = model_pick(&proxies, &loads, f, selector, cursor);
        let got = s.acquire(&req).await.unwrap();
        let got = got.map(|l| {
            let i = proxies.iter().position(|p| p.id == l.proxy.id).unwrap();
            (i, l.proxy.id.to_string())
        });
        prop_assert_eq!(
            got.as_ref().map(|(i, _)| *i),
            want,
            "{:?} leased {:?}, the model picks {:?} (loads {:?})",
            selector,
            got.as_ref().map(|(_, id)| id),
            want.map(|i| proxies[i].id.to_string()),
            loads
        );
        let Some((i, id)) = got else { break };
        loads[i] += 1;
        cursor = Some(i);
        leased.insert(id);
        prop_assert!(
            loads.iter().sum::<u32>() <= 3 * proxies.len() as u32,
            "over-leased"
        );
    }
    prop_assert_eq!(leased, expected);
    s.remove_pool(&pool).await.unwrap();
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs the property on `s`, whose connections live on `rt`.
pub fn run_property<S: Storage + Clone>(name: &str, rt: &tokio::runtime::Runtime, s: S) {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        prop::collection::vec(spec(), 1..24),
        filters(),
        0..Selector::ALL.len(),
    );
    let n = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&strategy, |(specs, f, sel)| {
            let case = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let pool = PoolId::from(format!("prop-{case}"));
            rt.block_on(agrees(&s, pool, &specs, &f, Selector::ALL[sel]))
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
}
