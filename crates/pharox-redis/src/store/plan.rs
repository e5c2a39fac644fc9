//! Filter planning and the index data of a proxy: which index an acquire
//! searches, which `by_value` keys and latency score a proxy is stored under.

use pharox_core::{Proxy, ProxyFilters, Selector};

use crate::MAX_SORTED_LATENCY_MS;
use crate::keys::{IndexField, PoolKeys};
use crate::queries::Plan;

/// Latency key of proxies never measured: after every measured one.
pub(super) const UNMEASURED_LATENCY_KEY: u32 = MAX_SORTED_LATENCY_MS + 1;

pub(super) fn index_values(p: &Proxy) -> Vec<(IndexField, String)> {
    let mut v = Vec::with_capacity(5);
    if let Some(x) = &p.country {
        v.push((IndexField::Country, x.clone()));
    }
    if let Some(x) = &p.source {
        v.push((IndexField::Source, x.clone()));
    }
    if let Some(x) = &p.city {
        v.push((IndexField::City, x.clone()));
    }
    if let Some(x) = &p.isp {
        v.push((IndexField::Isp, x.clone()));
    }
    if let Some(x) = p.asn {
        v.push((IndexField::Asn, x.to_string()));
    }
    v
}

/// The `by_value` keys a proxy belongs to.
pub(crate) fn index_keys(k: &PoolKeys, p: &Proxy) -> Vec<String> {
    index_values(p)
        .into_iter()
        .map(|(f, v)| k.by_value(f, &v))
        .collect()
}

pub(super) fn latency_key(p: &Proxy) -> u32 {
    p.latency_ms
        .map_or(UNMEASURED_LATENCY_KEY, |l| l.min(MAX_SORTED_LATENCY_MS))
}

/// How an acquire finds the candidates of filter `f`.
pub(super) fn plan(keys: &PoolKeys, f: &ProxyFilters) -> Plan {
    if f.is_empty() {
        return Plan::All;
    }
    // The equality index of the rarest kind of value: its members hold
    // every match.
    let eq: Option<(IndexField, String)> = f
        .asn
        .map(|a| (IndexField::Asn, a.to_string()))
        .or_else(|| f.city.clone().map(|v| (IndexField::City, v)))
        .or_else(|| f.isp.clone().map(|v| (IndexField::Isp, v)))
        .or_else(|| f.source.clone().map(|v| (IndexField::Source, v)))
        .or_else(|| f.country.clone().map(|v| (IndexField::Country, v)));
    if let Some((field, value)) = eq {
        let key = keys.by_value(field, &value);
        let only_that = [
            f.asn.is_some(),
            f.city.is_some(),
            f.isp.is_some(),
            f.source.is_some(),
            f.country.is_some(),
        ]
        .into_iter()
        .filter(|x| *x)
        .count()
            == 1
            && f.geo.is_none()
            && f.all_of.is_empty()
            && f.any_of.is_empty()
            && f.none_of.is_empty();
        return if only_that {
            Plan::Exact(key)
        } else {
            Plan::Verify(key)
        };
    }
    if let Some(g) = f.geo
        && g.latitude.abs() <= crate::geo::LAT_LIMIT
    {
        return Plan::geo(g.latitude, g.longitude, g.radius_km);
    }
    Plan::Scan
}

pub(super) fn selector_code(s: Selector) -> &'static str {
    match s {
        Selector::FirstAvailable => "f",
        Selector::RoundRobin => "r",
        Selector::LeastUsed => "l",
        Selector::LowestLatency => "t",
    }
}
