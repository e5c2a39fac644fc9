//! The churn pool: its proxies, and the filters clients ask with.

use crate::model::{PoolId, Proxy, ProxyProtocol};
use crate::{ProxyFilters, ProxyStatus};

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
pub(super) fn flapping(n: u16) -> std::ops::Range<u16> {
    let never = n / 10;
    n - 2 * never..n - never
}

/// A random filter over the churn pool's attributes.
pub(super) fn random_filters(rng: &mut fastrand::Rng) -> ProxyFilters {
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

/// A filter that matches exactly the proxies without a cap (`isp-3` is given
/// to every fourth proxy, the uncapped ones): the I6 probe's lease never
/// misses for want of capacity.
pub(super) fn uncapped() -> ProxyFilters {
    ProxyFilters::new().isp("isp-3")
}
