//! Input limits and the checks every store runs before touching state, so all
//! backends reject the same bad input with the same typed error.

use chrono::TimeDelta;

use crate::filter::validate_coordinates;
use crate::model::{ConsumerName, PoolId, Proxy, ProxyPool};
use crate::{AcquireRequest, Error, Result};

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

/// Checks a proxy definition: ids, host, port, coordinates, capacity and text sizes.
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
    if proxy.max_concurrency == Some(0) {
        return Err(Error::invalid(
            "proxy.max_concurrency",
            "must be at least 1 (use status `inactive` to stop leasing a proxy)",
        ));
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
            format!("has more than {MAX_EXTRA_ENTRIES} entries"),
        ));
    }
    for (k, v) in &proxy.extra {
        check_text("proxy.extra", Some(k))?;
        check_text("proxy.extra", Some(v))?;
    }
    Ok(())
}
