//! Input limits and the checks every store runs before touching state, so all
//! backends reject the same bad input with the same typed error
//! ([`Error::InvalidInput`], whose reason names the limit and the size seen).
//!
//! Every limit of pharox is here (the filter limits are defined beside the
//! filter and re-exported). The `pharox_core::testkit::limits` suite (feature
//! `testkit`) proves each store works at every one of them.

use chrono::TimeDelta;

use crate::filter::validate_coordinates;
use crate::model::{ConsumerName, PoolId, Proxy, ProxyPool};
use crate::{AcquireRequest, Error, Result};

pub use crate::filter::{
    MAX_FILTER_BYTES, MAX_FILTER_DEPTH, MAX_FILTER_NODES, MAX_FILTER_VALUE_LEN, MAX_RADIUS_KM,
};

/// Longest pool id, in bytes.
pub const MAX_POOL_ID_LEN: usize = 128;
/// Longest proxy id, in bytes.
pub const MAX_PROXY_ID_LEN: usize = 256;
/// Longest consumer name, in bytes.
pub const MAX_CONSUMER_NAME_LEN: usize = 128;
/// Longest host name, in bytes (DNS allows 253).
pub const MAX_HOST_LEN: usize = 253;
/// Longest metadata string (source, city, credentials, extra values…), in bytes.
pub const MAX_TEXT_LEN: usize = 1024;
/// Most `extra` metadata entries on one proxy.
pub const MAX_EXTRA_ENTRIES: usize = 64;
/// Shortest lease: stores keep time in milliseconds.
pub const MIN_LEASE_DURATION: TimeDelta = TimeDelta::milliseconds(1);
/// Longest lease: one day. Renew to hold a proxy longer.
pub const MAX_LEASE_DURATION: TimeDelta = TimeDelta::days(1);
/// Most expired leases one cleanup call reclaims.
pub const MAX_CLEANUP_BATCH: usize = 10_000;
/// Most snapshots one `Storage::stats_history` call answers.
pub const MAX_HISTORY_LIMIT: usize = 1_000;
/// Highest `max_concurrency` a proxy may set; a proxy without a limit
/// (`max_concurrency: None`) takes at most this many concurrent leases, on
/// every store.
pub const MAX_CONCURRENCY: u32 = 65_535;
/// Most proxies one pool holds. Adding one more to a full pool is refused;
/// updating a proxy already in it is not.
pub const MAX_PROXIES_PER_POOL: usize = 1_000_000;

fn check_id(field: &'static str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(Error::invalid(
            field,
            format!("is {} bytes, the limit is {max}", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

fn check_text(field: &'static str, value: Option<&str>) -> Result<()> {
    match value {
        Some(v) if v.len() > MAX_TEXT_LEN => Err(Error::invalid(
            field,
            format!("is {} bytes, the limit is {MAX_TEXT_LEN}", v.len()),
        )),
        _ => Ok(()),
    }
}

/// Checks a pool id: 1 to [`MAX_POOL_ID_LEN`] bytes, no control characters.
pub fn pool_id(id: &PoolId) -> Result<()> {
    check_id("pool", id.as_str(), MAX_POOL_ID_LEN)
}

/// Checks a consumer name: 1 to [`MAX_CONSUMER_NAME_LEN`] bytes, no control characters.
pub fn consumer_name(name: &ConsumerName) -> Result<()> {
    check_id("consumer", name.as_str(), MAX_CONSUMER_NAME_LEN)
}

/// Checks a lease duration lies within [`MIN_LEASE_DURATION`]..=[`MAX_LEASE_DURATION`].
pub fn lease_duration(duration: TimeDelta) -> Result<()> {
    if duration < MIN_LEASE_DURATION {
        return Err(Error::invalid(
            "duration",
            "must be at least 1 ms (zero and negative durations are rejected)",
        ));
    }
    if duration > MAX_LEASE_DURATION {
        return Err(Error::invalid(
            "duration",
            "must be at most 24 h (renew the lease to hold a proxy longer)",
        ));
    }
    Ok(())
}

/// Checks a cleanup batch size: 1 to [`MAX_CLEANUP_BATCH`].
pub fn cleanup_limit(limit: usize) -> Result<()> {
    if limit == 0 || limit > MAX_CLEANUP_BATCH {
        return Err(Error::invalid(
            "limit",
            format!("must be between 1 and {MAX_CLEANUP_BATCH}"),
        ));
    }
    Ok(())
}

/// Checks a stats history length: 1 to [`MAX_HISTORY_LIMIT`].
pub fn history_limit(limit: usize) -> Result<()> {
    if limit == 0 || limit > MAX_HISTORY_LIMIT {
        return Err(Error::invalid(
            "limit",
            format!("must be between 1 and {MAX_HISTORY_LIMIT}"),
        ));
    }
    Ok(())
}

/// Checks that a pool holding `proxies` proxies can take a new one (at most
/// [`MAX_PROXIES_PER_POOL`]). Updates of proxies already in the pool need no check.
pub fn room_for_proxy(pool: &PoolId, proxies: usize) -> Result<()> {
    if proxies >= MAX_PROXIES_PER_POOL {
        return Err(Error::invalid(
            "pool",
            format!("pool `{pool}` holds {proxies} proxies, the limit is {MAX_PROXIES_PER_POOL}"),
        ));
    }
    Ok(())
}

/// Checks everything in an acquire request.
pub fn acquire_request(req: &AcquireRequest) -> Result<()> {
    pool_id(&req.pool)?;
    consumer_name(&req.consumer)?;
    lease_duration(req.duration)?;
    req.filters.validate()
}

/// Checks a pool definition.
pub fn pool(pool: &ProxyPool) -> Result<()> {
    pool_id(&pool.id)?;
    check_text("pool.name", Some(&pool.name))?;
    check_text("pool.description", pool.description.as_deref())
}

/// Checks a proxy definition: ids, host, port, coordinates, capacity (1 to
/// [`MAX_CONCURRENCY`] when set) and text sizes.
pub fn proxy(proxy: &Proxy) -> Result<()> {
    pool_id(&proxy.pool)?;
    check_id("proxy.id", proxy.id.as_str(), MAX_PROXY_ID_LEN)?;
    if proxy.host.is_empty() || proxy.host.len() > MAX_HOST_LEN {
        return Err(Error::invalid(
            "proxy.host",
            format!("must be 1 to {MAX_HOST_LEN} bytes"),
        ));
    }
    if proxy
        .host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '@' | '?' | '#'))
    {
        return Err(Error::invalid(
            "proxy.host",
            "must be a host name or IP address (no whitespace, '/', '@', '?', '#')",
        ));
    }
    if proxy.port == 0 {
        return Err(Error::invalid("proxy.port", "must be between 1 and 65535"));
    }
    match (proxy.latitude, proxy.longitude) {
        (Some(lat), Some(lon)) => validate_coordinates(lat, lon, "proxy.location")?,
        (None, None) => {}
        _ => {
            return Err(Error::invalid(
                "proxy.location",
                "latitude and longitude must be set together",
            ));
        }
    }
    match proxy.max_concurrency {
        Some(0) => {
            return Err(Error::invalid(
                "proxy.max_concurrency",
                "must be at least 1 (use status `inactive` to stop leasing a proxy)",
            ));
        }
        Some(max) if max > MAX_CONCURRENCY => {
            return Err(Error::invalid(
                "proxy.max_concurrency",
                format!(
                    "is {max}, the limit is {MAX_CONCURRENCY} (unset, a proxy takes up to \
                     {MAX_CONCURRENCY} leases)"
                ),
            ));
        }
        _ => {}
    }
    check_text("proxy.source", proxy.source.as_deref())?;
    check_text("proxy.country", proxy.country.as_deref())?;
    check_text("proxy.city", proxy.city.as_deref())?;
    check_text("proxy.isp", proxy.isp.as_deref())?;
    if let Some(c) = &proxy.credentials {
        check_text("proxy.credentials.username", Some(&c.username))?;
        // The message names the field only; it never echoes the value (I8).
        check_text("proxy.credentials.password", Some(c.password.expose()))?;
    }
    if proxy.extra.len() > MAX_EXTRA_ENTRIES {
        return Err(Error::invalid(
            "proxy.extra",
            format!(
                "has {} entries, the limit is {MAX_EXTRA_ENTRIES}",
                proxy.extra.len()
            ),
        ));
    }
    for (k, v) in &proxy.extra {
        check_text("proxy.extra", Some(k))?;
        check_text("proxy.extra", Some(v))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProxyProtocol;

    /// The field and reason of an `InvalidInput`, or a panic.
    fn refused<T: std::fmt::Debug>(r: Result<T>) -> (&'static str, String) {
        match r {
            Err(Error::InvalidInput { field, reason }) => (field, reason.into_owned()),
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    fn base() -> Proxy {
        Proxy::new("pool", "10.0.0.1", 8080, ProxyProtocol::Http)
    }

    #[test]
    fn max_concurrency_is_accepted_up_to_the_limit() {
        proxy(&base().with_max_concurrency(MAX_CONCURRENCY)).unwrap();
        proxy(&base()).unwrap();
        let (field, reason) = refused(proxy(&base().with_max_concurrency(MAX_CONCURRENCY + 1)));
        assert_eq!(field, "proxy.max_concurrency");
        assert!(reason.contains("is 65536, the limit is 65535"), "{reason}");
        let (field, _) = refused(proxy(&base().with_max_concurrency(0)));
        assert_eq!(field, "proxy.max_concurrency");
    }

    #[test]
    fn an_unlimited_proxy_takes_max_concurrency_leases() {
        assert_eq!(base().capacity(), MAX_CONCURRENCY);
        assert_eq!(base().with_max_concurrency(3).capacity(), 3);
        let mut full = base();
        full.current_leases = MAX_CONCURRENCY - 1;
        assert!(full.has_free_capacity());
        full.current_leases = MAX_CONCURRENCY;
        assert!(!full.has_free_capacity());
    }

    #[test]
    fn a_pool_takes_new_proxies_up_to_the_limit() {
        let pool = PoolId::from("big");
        room_for_proxy(&pool, 0).unwrap();
        room_for_proxy(&pool, MAX_PROXIES_PER_POOL - 1).unwrap();
        let (field, reason) = refused(room_for_proxy(&pool, MAX_PROXIES_PER_POOL));
        assert_eq!(field, "pool");
        assert_eq!(
            reason,
            "pool `big` holds 1000000 proxies, the limit is 1000000"
        );
    }

    #[test]
    fn extra_entries_are_accepted_up_to_the_limit() {
        let mut p = base();
        for i in 0..MAX_EXTRA_ENTRIES {
            p = p.with_extra(format!("k{i}"), "v");
        }
        proxy(&p).unwrap();
        let (field, reason) = refused(proxy(&p.with_extra("one-more", "v")));
        assert_eq!(field, "proxy.extra");
        assert_eq!(reason, "has 65 entries, the limit is 64");
    }

    #[test]
    fn acquire_requests_check_their_filters() {
        let mut wide = crate::ProxyFilters::new();
        for i in 0..MAX_FILTER_NODES as u32 {
            wide = wide.any_of([crate::ProxyFilters::new().asn(i)]);
        }
        let (field, reason) = refused(acquire_request(&AcquireRequest::new("pool").filters(wide)));
        assert_eq!(field, "filters");
        assert!(reason.contains("has 257 nodes"), "{reason}");
    }
}
