//! The score ranges of Redis's GEO encoding that cover a circle, so a
//! script can count (`ZCOUNT`) and read (`ZRANGEBYSCORE`) the located
//! proxies near a point in bounded work, where `GEOSEARCH` would scan every
//! member of its boxes, in the circle or not, in one call.
//!
//! Redis stores a point as a 52-bit score: its latitude (within Web
//! Mercator's ±85.05112878°) and longitude, each scaled to 26 bits, with
//! the latitude bits in the even positions and the longitude bits in the
//! odd ones. A cell of `step` bits per coordinate is then one contiguous
//! range of scores. The circle is covered by the cell of its centre and
//! the eight around it, at the finest step whose cells are at least as
//! large as the circle's extent in both directions.

/// Redis GEO's latitude limits (Web Mercator).
pub(crate) const LAT_LIMIT: f64 = 85.051_128_78;
const BITS: u32 = 26;

/// Kilometres per degree of latitude, at least (at the equator).
const KM_PER_LAT_DEGREE: f64 = 110.574;
/// Kilometres per degree of longitude on the equator.
const KM_PER_LON_DEGREE: f64 = 111.320;

fn interleave(lat: u64, lon: u64, step: u32) -> u64 {
    let mut out = 0;
    for k in 0..step {
        out |= ((lat >> k) & 1) << (2 * k);
        out |= ((lon >> k) & 1) << (2 * k + 1);
    }
    out
}

/// The cell of a point at `step`, as (latitude index, longitude index).
fn cell(lat: f64, lon: f64, step: u32) -> (i64, i64) {
    let n = 1i64 << step;
    let scale = |offset: f64| ((offset * n as f64) as i64).clamp(0, n - 1);
    (
        scale((lat + LAT_LIMIT) / (2.0 * LAT_LIMIT)),
        scale((lon + 180.0) / 360.0),
    )
}

/// The finest step whose cells span at least the circle's extent.
fn step_for(lat: f64, radius_km: f64) -> u32 {
    let dlat = radius_km / KM_PER_LAT_DEGREE;
    let widest = (lat.abs() + dlat).min(90.0);
    let dlon = if widest >= 89.0 {
        360.0
    } else {
        radius_km / (KM_PER_LON_DEGREE * widest.to_radians().cos())
    };
    (0..=BITS)
        .rev()
        .find(|&s| {
            let cells = (1u64 << s) as f64;
            2.0 * LAT_LIMIT / cells >= dlat && 360.0 / cells >= dlon
        })
        .unwrap_or(0)
}

/// Score ranges `[min, max)` of Redis's GEO encoding that hold every point
/// within `radius_km` of (`lat`, `lon`) (|lat| ≤ [`LAT_LIMIT`]), sorted and
/// merged: at most nine.
pub(crate) fn covering(lat: f64, lon: f64, radius_km: f64) -> Vec<(u64, u64)> {
    let step = step_for(lat, radius_km);
    let n = 1i64 << step;
    let (ci, cj) = cell(lat, lon, step);
    let shift = 2 * (BITS - step);
    let mut ranges: Vec<(u64, u64)> = Vec::with_capacity(9);
    for di in -1..=1 {
        let i = ci + di;
        if !(0..n).contains(&i) {
            continue;
        }
        for dj in -1..=1 {
            let j = (cj + dj).rem_euclid(n);
            let bits = interleave(i as u64, j as u64, step);
            ranges.push((bits << shift, (bits + 1) << shift));
        }
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis's own encoding of a point at 26 bits (geohashEncode).
    fn score(lat: f64, lon: f64) -> u64 {
        let (i, j) = cell(lat, lon, BITS);
        interleave(i as u64, j as u64, BITS)
    }

    #[test]
    fn matches_a_known_redis_score() {
        // GEOADD k 13.361389 38.115556 Palermo; ZSCORE k Palermo.
        assert_eq!(score(38.115556, 13.361389), 3_479_099_956_230_698);
    }

    #[test]
    fn covers_every_point_of_the_circle() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..2_000 {
            let lat = rng.f64() * 170.0 - 85.0;
            let lon = rng.f64() * 360.0 - 180.0;
            let radius = [0.5, 20.0, 400.0, 3_000.0, 15_000.0][rng.usize(..5)];
            let ranges = covering(lat, lon, radius);
            assert!(ranges.len() <= 9);
            for _ in 0..50 {
                // A point inside the circle, by bearing and distance.
                let d = radius * rng.f64().sqrt() / 6371.0088;
                let b = rng.f64() * std::f64::consts::TAU;
                let (p1, l1) = (lat.to_radians(), lon.to_radians());
                let p2 = (p1.sin() * d.cos() + p1.cos() * d.sin() * b.cos()).asin();
                let l2 = l1 + (b.sin() * d.sin() * p1.cos()).atan2(d.cos() - p1.sin() * p2.sin());
                let (plat, plon) = (
                    p2.to_degrees(),
                    (l2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0,
                );
                if plat.abs() > LAT_LIMIT {
                    continue;
                }
                let s = score(plat, plon);
                assert!(
                    ranges.iter().any(|&(lo, hi)| (lo..hi).contains(&s)),
                    "({plat}, {plon}) within {radius} km of ({lat}, {lon}) is outside {ranges:?}"
                );
            }
        }
    }
}
