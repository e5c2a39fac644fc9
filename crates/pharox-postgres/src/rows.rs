//! Rows as pharox models. A row that does not decode is `Error::Corrupt`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use pharox_core::model::{
    ConsumerName, Credentials, Lease, LeaseId, LeaseStatus, LeasedProxy, PoolId, Proxy, ProxyId,
};
use pharox_core::{Error, Result};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Json};

/// The columns of `pharox_proxies` that [`proxy`] reads, in SQL.
pub(crate) const PROXY_COLUMNS: &str = "pool_id, id, host, port, protocol, username, password, \
    status, checked_at, latency_ms, source, country, city, latitude, longitude, isp, asn, \
    max_concurrency, current_leases, extra";

pub(crate) fn get<'a, T: FromSql<'a>>(row: &'a Row, column: &str) -> Result<T> {
    row.try_get(column)
        .map_err(|e| Error::Corrupt(format!("column {column}: {e}").into()))
}

fn unsigned<T: TryFrom<i64>>(column: &'static str, value: i64) -> Result<T> {
    T::try_from(value).map_err(|_| Error::Corrupt(format!("{column} out of range").into()))
}

fn credentials(row: &Row) -> Result<Option<Credentials>> {
    let username: Option<String> = get(row, "username")?;
    let password: Option<String> = get(row, "password")?;
    Ok(match (username, password) {
        (Some(u), Some(p)) => Some(Credentials::new(u, p)),
        _ => None,
    })
}

/// A `pharox_proxies` row (the [`PROXY_COLUMNS`]).
pub(crate) fn proxy(row: &Row) -> Result<Proxy> {
    let opt_u32 = |column: &'static str| -> Result<Option<u32>> {
        get::<Option<i64>>(row, column)?
            .map(|v| unsigned(column, v))
            .transpose()
    };
    let Json(extra): Json<BTreeMap<String, String>> = get(row, "extra")?;
    Ok(Proxy {
        id: ProxyId::from(get::<String>(row, "id")?),
        pool: PoolId::from(get::<String>(row, "pool_id")?),
        host: get(row, "host")?,
        port: unsigned("port", i64::from(get::<i32>(row, "port")?))?,
        protocol: get::<String>(row, "protocol")?
            .parse()
            .map_err(|_| Error::Corrupt("protocol".into()))?,
        credentials: credentials(row)?,
        status: get::<String>(row, "status")?
            .parse()
            .map_err(|_| Error::Corrupt("status".into()))?,
        checked_at: get(row, "checked_at")?,
        latency_ms: opt_u32("latency_ms")?,
        source: get(row, "source")?,
        country: get(row, "country")?,
        city: get(row, "city")?,
        latitude: get(row, "latitude")?,
        longitude: get(row, "longitude")?,
        isp: get(row, "isp")?,
        asn: opt_u32("asn")?,
        max_concurrency: get::<Option<i32>>(row, "max_concurrency")?
            .map(|v| unsigned("max_concurrency", i64::from(v)))
            .transpose()?,
        current_leases: unsigned(
            "current_leases",
            i64::from(get::<i32>(row, "current_leases")?),
        )?,
        extra,
    })
}

/// The connection data of a lease's proxy (`proxy_id, host, port,
/// protocol, username, password`).
pub(crate) fn leased_proxy(row: &Row) -> Result<LeasedProxy> {
    Ok(LeasedProxy {
        id: ProxyId::from(get::<String>(row, "proxy_id")?),
        host: get(row, "host")?,
        port: unsigned("port", i64::from(get::<i32>(row, "port")?))?,
        protocol: get::<String>(row, "protocol")?
            .parse()
            .map_err(|_| Error::Corrupt("protocol".into()))?,
        credentials: credentials(row)?,
    })
}

/// What identifies a lease besides its row.
pub(crate) struct LeaseKey<'a> {
    pub(crate) pool: &'a PoolId,
    pub(crate) id: LeaseId,
}

/// A lease row (`token, consumer, acquired_at, expires_at` and the
/// [`leased_proxy`] columns), with `status`.
pub(crate) fn lease(
    row: &Row,
    key: LeaseKey<'_>,
    consumer: Option<&ConsumerName>,
    status: LeaseStatus,
    released_at: Option<DateTime<Utc>>,
) -> Result<Lease> {
    let consumer = match consumer {
        Some(c) => c.clone(),
        None => ConsumerName::from(get::<String>(row, "consumer")?),
    };
    Ok(Lease {
        id: key.id,
        token: unsigned("token", get::<i64>(row, "token")?)?,
        pool: key.pool.clone(),
        consumer,
        proxy: Arc::new(leased_proxy(row)?),
        status,
        acquired_at: get(row, "acquired_at")?,
        expires_at: get(row, "expires_at")?,
        released_at,
    })
}
