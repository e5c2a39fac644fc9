//! Proxy filters and the reference evaluator every store must agree with.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::Proxy;
use crate::{Error, Result};

/// Mean Earth radius (IUGG) used by [`haversine_km`].
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Largest accepted radius: half the Earth's circumference, which covers the globe.
pub const MAX_RADIUS_KM: f64 = 20_037.6;

/// Great-circle distance in kilometres between two points given in degrees.
pub fn haversine_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

/// Proxies within `radius_km` of a point (boundary included).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoRadius {
    /// Centre latitude in degrees, -90..=90.
    pub latitude: f64,
    /// Centre longitude in degrees, -180..=180.
    pub longitude: f64,
    /// Radius in kilometres, greater than 0 and at most [`MAX_RADIUS_KM`].
    pub radius_km: f64,
}

impl GeoRadius {
    /// Whether a point lies inside the circle (distance ≤ radius).
    pub fn contains(&self, latitude: f64, longitude: f64) -> bool {
        haversine_km(self.latitude, self.longitude, latitude, longitude) <= self.radius_km
    }

    fn validate(&self) -> Result<()> {
        validate_coordinates(self.latitude, self.longitude, "filters.geo")?;
        if !(self.radius_km.is_finite() && self.radius_km > 0.0 && self.radius_km <= MAX_RADIUS_KM)
        {
            return Err(Error::invalid(
                "filters.geo.radius_km",
                format!("must be finite, above 0 and at most {MAX_RADIUS_KM} km"),
            ));
        }
        Ok(())
    }
}

/// Checks a latitude/longitude pair is finite and in range.
pub(crate) fn validate_coordinates(lat: f64, lon: f64, field: &'static str) -> Result<()> {
    if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
        return Err(Error::invalid(
            field,
            "latitude must be finite and within -90..=90",
        ));
    }
    if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
        return Err(Error::invalid(
            field,
            "longitude must be finite and within -180..=180",
        ));
    }
    Ok(())
}

/// A closure filter. Only stores that evaluate filters in-process accept it;
/// server-side stores answer [`Error::UnsupportedFilter`] rather than checking
/// it outside their atomic acquire.
///
/// The store runs it while holding the pool's lock: keep it fast, and never
/// call the store from inside it. It is not serialised (a deserialised filter
/// has no predicate).
#[derive(Clone)]
pub struct Predicate(Arc<dyn Fn(&Proxy) -> bool + Send + Sync>);

impl Predicate {
    /// Wraps a closure.
    pub fn new(f: impl Fn(&Proxy) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Evaluates the closure.
    pub fn test(&self, proxy: &Proxy) -> bool {
        (self.0)(proxy)
    }
}

impl fmt::Debug for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Predicate(..)")
    }
}

/// Which proxies an acquire may pick. Every set field must match; an empty
/// filter matches every proxy.
///
/// String fields match exactly, except `country`, which ignores ASCII case.
/// A proxy missing a field never matches a filter on that field.
///
/// ```
/// use pharox_core::{Proxy, ProxyFilters, ProxyProtocol};
///
/// let ar = Proxy::new("p", "10.0.0.1", 8080, ProxyProtocol::Http)
///     .with_country("AR")
///     .with_source("oxylabs")
///     .with_location(-34.60, -58.38);
/// let filters = ProxyFilters::new()
///     .country("ar")
///     .any_of([ProxyFilters::new().source("oxylabs"), ProxyFilters::new().source("brightdata")])
///     .within_km(-34.92, -57.95, 60.0); // La Plata, ~55 km from Buenos Aires
/// assert!(filters.matches(&ar));
/// assert!(!ProxyFilters::new().none_of([ProxyFilters::new().country("AR")]).matches(&ar));
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProxyFilters {
    /// Country code, compared ignoring ASCII case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Source (provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Internet service provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isp: Option<String>,
    /// Autonomous system number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// Within a radius of a point (haversine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<GeoRadius>,
    /// Every one of these must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub all_of: Vec<ProxyFilters>,
    /// At least one of these must match (ignored when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub any_of: Vec<ProxyFilters>,
    /// None of these may match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub none_of: Vec<ProxyFilters>,
    /// An arbitrary closure (in-process stores only; skipped by serde, see [`Predicate`]).
    #[serde(skip)]
    pub predicate: Option<Predicate>,
}

/// Longest accepted string in a filter field, in bytes.
pub const MAX_FILTER_VALUE_LEN: usize = 256;
/// Deepest accepted nesting of `all_of` / `any_of` / `none_of`.
pub const MAX_FILTER_DEPTH: usize = 8;
/// Most [`ProxyFilters`] objects in one filter tree: the top one plus every
/// `all_of` / `any_of` / `none_of` entry, at any depth.
pub const MAX_FILTER_NODES: usize = 256;
/// Longest accepted filter, in bytes of its JSON encoding (`serde_json`, as
/// a server-side store receives it).
pub const MAX_FILTER_BYTES: usize = 16_384;

impl ProxyFilters {
    /// A filter that matches every proxy.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires a country (ASCII case ignored).
    pub fn country(mut self, country: impl Into<String>) -> Self {
        self.country = Some(country.into());
        self
    }

    /// Requires a source.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Requires a city.
    pub fn city(mut self, city: impl Into<String>) -> Self {
        self.city = Some(city.into());
        self
    }

    /// Requires an internet service provider.
    pub fn isp(mut self, isp: impl Into<String>) -> Self {
        self.isp = Some(isp.into());
        self
    }

    /// Requires an autonomous system number.
    pub fn asn(mut self, asn: u32) -> Self {
        self.asn = Some(asn);
        self
    }

    /// Requires a location within `radius_km` of a point.
    pub fn within_km(mut self, latitude: f64, longitude: f64, radius_km: f64) -> Self {
        self.geo = Some(GeoRadius {
            latitude,
            longitude,
            radius_km,
        });
        self
    }

    /// Adds filters that must all match.
    pub fn all_of(mut self, filters: impl IntoIterator<Item = ProxyFilters>) -> Self {
        self.all_of.extend(filters);
        self
    }

    /// Adds alternatives of which at least one must match.
    pub fn any_of(mut self, filters: impl IntoIterator<Item = ProxyFilters>) -> Self {
        self.any_of.extend(filters);
        self
    }

    /// Adds filters of which none may match.
    pub fn none_of(mut self, filters: impl IntoIterator<Item = ProxyFilters>) -> Self {
        self.none_of.extend(filters);
        self
    }

    /// Adds a closure that must return `true` (in-process stores only).
    pub fn predicate(mut self, f: impl Fn(&Proxy) -> bool + Send + Sync + 'static) -> Self {
        self.predicate = Some(Predicate::new(f));
        self
    }

    /// Whether this filter constrains nothing.
    pub fn is_empty(&self) -> bool {
        self.country.is_none()
            && self.source.is_none()
            && self.city.is_none()
            && self.isp.is_none()
            && self.asn.is_none()
            && self.geo.is_none()
            && self.all_of.is_empty()
            && self.any_of.is_empty()
            && self.none_of.is_empty()
            && self.predicate.is_none()
    }

    /// Whether a closure predicate appears anywhere in the filter tree.
    pub fn has_predicate(&self) -> bool {
        self.predicate.is_some()
            || self
                .all_of
                .iter()
                .chain(&self.any_of)
                .chain(&self.none_of)
                .any(Self::has_predicate)
    }

    /// The reference evaluator: whether `proxy` satisfies this filter.
    /// Status and capacity are not part of a filter.
    pub fn matches(&self, proxy: &Proxy) -> bool {
        fn eq(want: &Option<String>, have: &Option<String>) -> bool {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        }
        self.country.as_ref().is_none_or(|want| {
            proxy
                .country
                .as_ref()
                .is_some_and(|have| have.eq_ignore_ascii_case(want))
        }) && eq(&self.source, &proxy.source)
            && eq(&self.city, &proxy.city)
            && eq(&self.isp, &proxy.isp)
            && self.asn.is_none_or(|asn| proxy.asn == Some(asn))
            && self
                .geo
                .is_none_or(|geo| match (proxy.latitude, proxy.longitude) {
                    (Some(lat), Some(lon)) => geo.contains(lat, lon),
                    _ => false,
                })
            && self.all_of.iter().all(|f| f.matches(proxy))
            && (self.any_of.is_empty() || self.any_of.iter().any(|f| f.matches(proxy)))
            && !self.none_of.iter().any(|f| f.matches(proxy))
            && self.predicate.as_ref().is_none_or(|p| p.test(proxy))
    }

    /// The number of [`ProxyFilters`] objects in the tree: this one plus
    /// every `all_of` / `any_of` / `none_of` entry, at any depth.
    pub fn node_count(&self) -> usize {
        1 + self
            .all_of
            .iter()
            .chain(&self.any_of)
            .chain(&self.none_of)
            .map(Self::node_count)
            .sum::<usize>()
    }

    /// The length in bytes of the filter's JSON encoding (`serde_json`),
    /// counted without building the string.
    pub fn json_len(&self) -> usize {
        struct Counter(usize);
        impl std::io::Write for Counter {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0 += buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut counter = Counter(0);
        // Encoding this type cannot fail (non-finite floats become `null`);
        // if it ever did, the filter counts as too long rather than as short.
        match serde_json::to_writer(&mut counter, self) {
            Ok(()) => counter.0,
            Err(_) => usize::MAX,
        }
    }

    /// Rejects values no proxy could be stored with (bad coordinates, radius,
    /// strings over [`MAX_FILTER_VALUE_LEN`]) and trees nested deeper than
    /// [`MAX_FILTER_DEPTH`], with more than [`MAX_FILTER_NODES`] nodes or
    /// longer than [`MAX_FILTER_BYTES`] as JSON.
    ///
    /// An empty filter costs nothing. The node count comes first, so a huge
    /// tree is refused without being encoded; the JSON is only counted when
    /// a bound taken on the way (every string escaped at worst) is over the
    /// limit, so small filters are never encoded at all.
    pub fn validate(&self) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let mut walk = Walk::default();
        self.validate_at(0, &mut walk)?;
        let nodes = walk.nodes;
        if nodes > MAX_FILTER_NODES {
            return Err(Error::invalid(
                "filters",
                format!(
                    "has {nodes} nodes (the filter and every all_of/any_of/none_of entry), \
                     the limit is {MAX_FILTER_NODES}"
                ),
            ));
        }
        if walk.bytes_bound > MAX_FILTER_BYTES {
            let bytes = self.json_len();
            if bytes > MAX_FILTER_BYTES {
                return Err(Error::invalid(
                    "filters",
                    format!("is {bytes} bytes as JSON, the limit is {MAX_FILTER_BYTES}"),
                ));
            }
        }
        Ok(())
    }

    /// Checks this node and its children; counts the nodes it visits and
    /// adds up a bound on their JSON length.
    fn validate_at(&self, depth: usize, walk: &mut Walk) -> Result<()> {
        if depth > MAX_FILTER_DEPTH {
            return Err(Error::invalid(
                "filters",
                format!("nested deeper than {MAX_FILTER_DEPTH} levels"),
            ));
        }
        walk.nodes += 1;
        walk.bytes_bound += Walk::NODE;
        for (field, value) in [
            ("filters.country", &self.country),
            ("filters.source", &self.source),
            ("filters.city", &self.city),
            ("filters.isp", &self.isp),
        ] {
            if let Some(v) = value {
                if v.len() > MAX_FILTER_VALUE_LEN {
                    return Err(Error::invalid(
                        field,
                        format!("is {} bytes, the limit is {MAX_FILTER_VALUE_LEN}", v.len()),
                    ));
                }
                walk.bytes_bound += Walk::ESCAPED * v.len();
            }
        }
        if let Some(geo) = &self.geo {
            geo.validate()?;
        }
        self.all_of
            .iter()
            .chain(&self.any_of)
            .chain(&self.none_of)
            .try_for_each(|f| f.validate_at(depth + 1, walk))
    }
}

/// What [`ProxyFilters::validate`] gathers on its way through a tree.
#[derive(Default)]
struct Walk {
    nodes: usize,
    /// At least the JSON length of the nodes seen (see [`Walk::NODE`]).
    bytes_bound: usize,
}

impl Walk {
    /// Most bytes one node's JSON takes besides its string values: braces,
    /// every key with its quotes, colon and comma, the quotes of the four
    /// strings, an ASN of 10 digits, a geo object of three floats (serde_json
    /// writes at most 24 characters per f64), the three list brackets, and
    /// the comma that separates the node from its next sibling: 219 bytes
    /// with every field set, rounded up.
    const NODE: usize = 256;
    /// Most bytes serde_json writes per byte of a string (`\u001f`).
    const ESCAPED: usize = 6;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProxyProtocol;

    fn proxy() -> Proxy {
        Proxy::new("p", "10.0.0.1", 1080, ProxyProtocol::Socks5)
            .with_country("DE")
            .with_city("Berlin")
            .with_isp("Hetzner")
            .with_asn(24940)
            .with_source("feed-a")
            .with_location(52.52, 13.405)
    }

    #[test]
    fn haversine_matches_known_distance() {
        // Berlin to Paris is about 878 km.
        let d = haversine_km(52.52, 13.405, 48.8566, 2.3522);
        assert!((d - 877.5).abs() < 2.0, "{d}");
        assert_eq!(haversine_km(10.0, 20.0, 10.0, 20.0), 0.0);
    }

    #[test]
    fn every_field_must_match() {
        let p = proxy();
        assert!(ProxyFilters::new().matches(&p));
        assert!(
            ProxyFilters::new()
                .country("de")
                .city("Berlin")
                .asn(24940)
                .matches(&p)
        );
        assert!(!ProxyFilters::new().country("DE").city("Munich").matches(&p));
        assert!(
            !ProxyFilters::new().isp("hetzner").matches(&p),
            "isp is case-sensitive"
        );
        assert!(!ProxyFilters::new().asn(1).matches(&p));
        assert!(!ProxyFilters::new().source("feed-b").matches(&p));
    }

    #[test]
    fn missing_fields_never_match() {
        let bare = Proxy::new("p", "10.0.0.1", 1080, ProxyProtocol::Socks5);
        assert!(!ProxyFilters::new().country("DE").matches(&bare));
        assert!(
            !ProxyFilters::new()
                .within_km(0.0, 0.0, MAX_RADIUS_KM)
                .matches(&bare)
        );
    }

    #[test]
    fn composition_follows_boolean_logic() {
        let p = proxy();
        let de = ProxyFilters::new().country("DE");
        let fr = ProxyFilters::new().country("FR");
        assert!(
            ProxyFilters::new()
                .any_of([fr.clone(), de.clone()])
                .matches(&p)
        );
        assert!(!ProxyFilters::new().any_of([fr.clone()]).matches(&p));
        assert!(
            !ProxyFilters::new()
                .all_of([de.clone(), fr.clone()])
                .matches(&p)
        );
        assert!(ProxyFilters::new().none_of([fr]).matches(&p));
        assert!(!ProxyFilters::new().none_of([de]).matches(&p));
        assert!(
            ProxyFilters::new()
                .predicate(|p| p.port == 1080)
                .matches(&p)
        );
        assert!(
            ProxyFilters::new()
                .all_of([ProxyFilters::new().predicate(|_| true)])
                .has_predicate()
        );
    }

    #[test]
    fn validation_rejects_impossible_values() {
        for bad in [
            ProxyFilters::new().within_km(f64::NAN, 0.0, 1.0),
            ProxyFilters::new().within_km(91.0, 0.0, 1.0),
            ProxyFilters::new().within_km(0.0, 180.5, 1.0),
            ProxyFilters::new().within_km(0.0, 0.0, 0.0),
            ProxyFilters::new().within_km(0.0, 0.0, f64::INFINITY),
            ProxyFilters::new().country("x".repeat(MAX_FILTER_VALUE_LEN + 1)),
        ] {
            assert!(
                matches!(bad.validate(), Err(Error::InvalidInput { .. })),
                "{bad:?}"
            );
        }
        let mut deep = ProxyFilters::new();
        for _ in 0..=MAX_FILTER_DEPTH {
            deep = ProxyFilters::new().all_of([deep]);
        }
        assert!(deep.validate().is_err());
    }

    /// The field and reason of an `InvalidInput`, or a panic.
    fn refused(f: &ProxyFilters) -> (&'static str, String) {
        match f.validate() {
            Err(Error::InvalidInput { field, reason }) => (field, reason.into_owned()),
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    /// A filter of exactly `n` nodes: the top one and `n - 1` ASN alternatives.
    fn with_nodes(n: usize) -> ProxyFilters {
        ProxyFilters::new().any_of((1..n as u32).map(|asn| ProxyFilters::new().asn(asn)))
    }

    #[test]
    fn node_count_is_accepted_up_to_the_limit() {
        let at = with_nodes(MAX_FILTER_NODES);
        assert_eq!(at.node_count(), MAX_FILTER_NODES);
        at.validate().unwrap();
        let (field, reason) = refused(&with_nodes(MAX_FILTER_NODES + 1));
        assert_eq!(field, "filters");
        assert!(
            reason.contains("has 257 nodes") && reason.contains("the limit is 256"),
            "{reason}"
        );
        // Nested nodes count as much as top-level ones.
        let nested = ProxyFilters::new().all_of([with_nodes(MAX_FILTER_NODES - 1)]);
        assert_eq!(nested.node_count(), MAX_FILTER_NODES);
        nested.validate().unwrap();
        let over = ProxyFilters::new().none_of([with_nodes(MAX_FILTER_NODES)]);
        assert!(refused(&over).1.contains("has 257 nodes"));
    }

    #[test]
    fn a_huge_tree_is_refused_by_its_node_count() {
        // Far too many nodes, and far too long: the node count answers first.
        let huge = with_nodes(100_000);
        let (field, reason) = refused(&huge);
        assert_eq!(field, "filters");
        assert!(reason.contains("has 100000 nodes"), "{reason}");
    }

    #[test]
    fn json_length_is_accepted_up_to_the_limit() {
        // Cities of the longest accepted value, the last one trimmed so the
        // whole filter is exactly MAX_FILTER_BYTES long.
        let long = "c".repeat(MAX_FILTER_VALUE_LEN);
        let mut f = ProxyFilters::new();
        while f.json_len() <= MAX_FILTER_BYTES {
            f.any_of.push(ProxyFilters::new().city(long.clone()));
        }
        let mut over = f.json_len() - MAX_FILTER_BYTES;
        for city in f.any_of.iter_mut().rev().filter_map(|n| n.city.as_mut()) {
            let cut = over.min(city.len());
            city.truncate(city.len() - cut);
            over -= cut;
        }
        assert_eq!(f.json_len(), MAX_FILTER_BYTES);
        assert_eq!(serde_json::to_string(&f).unwrap().len(), f.json_len());
        f.validate().unwrap();
        f.any_of
            .last_mut()
            .unwrap()
            .city
            .as_mut()
            .unwrap()
            .push('c');
        let (field, reason) = refused(&f);
        assert_eq!(field, "filters");
        assert_eq!(reason, "is 16385 bytes as JSON, the limit is 16384");
    }

    #[test]
    fn json_length_counts_escapes_like_serde_json() {
        let f = ProxyFilters::new()
            .city("quote\" back\\slash \u{1} control ü")
            .within_km(-33.45, -70.666_666, 1234.5)
            .none_of([ProxyFilters::new().asn(u32::MAX)]);
        assert_eq!(f.json_len(), serde_json::to_string(&f).unwrap().len());
        assert_eq!(ProxyFilters::new().json_len(), 2);
    }

    #[test]
    fn the_length_bound_is_never_below_the_json_length() {
        // Every field set, floats of the longest form, strings that serde
        // escapes to six bytes a character or to two.
        let node = |text: &str| ProxyFilters {
            country: Some(text.into()),
            source: Some(text.into()),
            city: Some(text.into()),
            isp: Some(text.into()),
            asn: Some(u32::MAX),
            geo: Some(GeoRadius {
                latitude: -0.000_000_123_456_789_012_345_67,
                longitude: -179.123_456_789_012_34,
                radius_km: 1.234_567_890_123_456_7e-5,
            }),
            ..ProxyFilters::default()
        };
        let leaf = node("\u{1}\u{1f}\u{7}");
        let mut tree = node("\"\\\n");
        tree.all_of = vec![leaf.clone()];
        tree.any_of = vec![leaf.clone(), leaf.clone()];
        tree.none_of = vec![leaf.clone()];
        for f in [ProxyFilters::new().asn(0), leaf, node(""), tree] {
            let mut walk = Walk::default();
            f.validate_at(0, &mut walk).unwrap();
            assert!(
                walk.bytes_bound >= f.json_len(),
                "bound {} below the JSON length {}",
                walk.bytes_bound,
                f.json_len()
            );
        }
        // A node with every field set, at the longest floats, and its comma
        // stay within NODE.
        assert!(node("").json_len() < Walk::NODE, "{}", node("").json_len());
    }

    #[test]
    fn values_and_depth_are_accepted_up_to_the_limit() {
        let at = "v".repeat(MAX_FILTER_VALUE_LEN);
        for f in [
            ProxyFilters::new().country(at.clone()),
            ProxyFilters::new().source(at.clone()),
            ProxyFilters::new().city(at.clone()),
            ProxyFilters::new().isp(at.clone()),
        ] {
            f.validate().unwrap();
        }
        let (field, reason) = refused(&ProxyFilters::new().isp(at + "v"));
        assert_eq!(field, "filters.isp");
        assert_eq!(reason, "is 257 bytes, the limit is 256");
        let mut deep = ProxyFilters::new().asn(1);
        for _ in 0..MAX_FILTER_DEPTH {
            deep = ProxyFilters::new().all_of([deep]);
        }
        deep.validate().unwrap();
        let (field, reason) = refused(&ProxyFilters::new().any_of([deep]));
        assert_eq!(field, "filters");
        assert!(reason.contains("deeper than 8"), "{reason}");
    }

    #[test]
    fn serde_round_trip_keeps_the_tree() {
        let f = ProxyFilters::new()
            .country("AR")
            .within_km(1.0, 2.0, 3.0)
            .any_of([ProxyFilters::new().asn(7)]);
        let json = serde_json::to_string(&f).unwrap();
        let back: ProxyFilters = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }
}
