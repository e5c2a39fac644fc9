//! Deterministic synthetic pools for the demo, benchmarks and tests.
//!
//! Proxy `i` of a pool gets its attributes from a hash of `i`, so the same
//! size always yields the same pool. Countries follow [`COUNTRIES`]: each
//! proxy falls in one of 100 buckets, and a country owns a fixed number of
//! buckets, so `NZ` (1 bucket) is 1% of any large pool and `US` is 25%.

use pharox_core::{PoolId, Proxy, ProxyProtocol, ProxyStatus};

/// `(country code, share of the pool in percent, latitude, longitude)` of
/// the synthetic pools. Shares add up to 100.
pub const COUNTRIES: [(&str, u32, f64, f64); 15] = [
    ("US", 25, 39.83, -98.58),
    ("DE", 15, 51.17, 10.45),
    ("GB", 10, 54.00, -2.00),
    ("FR", 8, 46.23, 2.21),
    ("BR", 8, -14.24, -51.93),
    ("IN", 7, 20.59, 78.96),
    ("JP", 6, 36.20, 138.25),
    ("CA", 5, 56.13, -106.35),
    ("AR", 4, -38.42, -63.62),
    ("MX", 3, 23.63, -102.55),
    ("ES", 3, 40.46, -3.75),
    ("IT", 2, 41.87, 12.57),
    ("NL", 2, 52.13, 5.29),
    ("AU", 1, -25.27, 133.78),
    ("NZ", 1, -40.90, 174.89),
];

/// SplitMix64: a fast, well-mixed hash of the proxy index.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The country entry for a bucket in `0..100`.
fn country_of(bucket: u32) -> &'static (&'static str, u32, f64, f64) {
    let mut upper = 0;
    for entry in &COUNTRIES {
        upper += entry.1;
        if bucket < upper {
            return entry;
        }
    }
    &COUNTRIES[0]
}

/// Options for [`proxy`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Shape {
    /// Give every third proxy credentials (to show they stay redacted).
    pub credentials: bool,
    /// Put about 2% of proxies in a non-active status (inactive, slow, banned).
    pub unhealthy: bool,
}

/// Proxy number `i` of a synthetic pool: mixed countries with coordinates
/// near the country's centre, `max_concurrency` 1–4, latency 20–499 ms,
/// HTTP or SOCKS5.
pub fn proxy(pool: &PoolId, i: u64, shape: Shape) -> Proxy {
    let h = mix(i);
    let (cc, _, lat, lon) = *country_of((h % 100) as u32);
    let jitter = |bits: u64| ((bits % 2_000) as f64 / 1_000.0) - 1.0; // -1..1 degrees
    let protocol = if h >> 40 & 1 == 0 {
        ProxyProtocol::Http
    } else {
        ProxyProtocol::Socks5
    };
    let mut p = Proxy::new(
        pool.clone(),
        format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff),
        8_000 + (i % 1_000) as u16,
        protocol,
    )
    .with_id(format!("px-{i:06}"))
    .with_country(cc)
    .with_source(["feed-a", "feed-b", "feed-c"][(h >> 8) as usize % 3])
    .with_isp(format!("isp-{}", (h >> 12) % 20))
    .with_asn(64_512 + ((h >> 20) % 100) as u32)
    .with_location(lat + jitter(h >> 24), lon + jitter(h >> 36))
    .with_latency_ms(20 + ((h >> 48) % 480) as u32)
    .with_max_concurrency(1 + ((h >> 44) % 4) as u32);
    if shape.credentials && i.is_multiple_of(3) {
        p = p.with_credentials(format!("user-{i}"), format!("pw-{:016x}", mix(h)));
    }
    if shape.unhealthy && (h >> 56).is_multiple_of(50) {
        p = p.with_status(
            [
                ProxyStatus::Inactive,
                ProxyStatus::Slow,
                ProxyStatus::Banned,
            ][(h >> 4) as usize % 3],
        );
    }
    p
}

/// The first `n` proxies of a synthetic pool.
pub fn proxies(pool: &PoolId, n: u64, shape: Shape) -> impl Iterator<Item = Proxy> + '_ {
    (0..n).map(move |i| proxy(pool, i, shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_the_pool_is_deterministic() {
        assert_eq!(COUNTRIES.iter().map(|c| c.1).sum::<u32>(), 100);
        let pool = PoolId::from("p");
        let a: Vec<Proxy> = proxies(&pool, 50, Shape::default()).collect();
        let b: Vec<Proxy> = proxies(&pool, 50, Shape::default()).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn a_one_percent_country_is_about_one_percent() {
        let pool = PoolId::from("p");
        let n = 100_000;
        let nz = proxies(&pool, n, Shape::default())
            .filter(|p| p.country.as_deref() == Some("NZ"))
            .count();
        assert!((900..1_100).contains(&nz), "{nz}");
        let us = proxies(&pool, n, Shape::default())
            .filter(|p| p.country.as_deref() == Some("US"))
            .count();
        assert!((24_000..26_000).contains(&us), "{us}");
    }

    #[test]
    fn every_proxy_is_valid() {
        let pool = PoolId::from("p");
        let shape = Shape {
            credentials: true,
            unhealthy: true,
        };
        for p in proxies(&pool, 2_000, shape) {
            pharox_core::validate::proxy(&p).unwrap();
            assert!((1..=4).contains(&p.max_concurrency.unwrap()));
        }
        let unhealthy = proxies(&pool, 10_000, shape)
            .filter(|p| p.status != ProxyStatus::Active)
            .count();
        assert!((100..300).contains(&unhealthy), "{unhealthy}");
    }
}
