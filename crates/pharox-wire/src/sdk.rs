//! The JSON bodies of the pharox-sdk routes, exactly as pharox-sdk 0.2.0
//! sends and parses them (see `docs/http-api.md`), and their conversions.
//! The routes that mirror the `Storage` trait reuse the pool, proxy input
//! and filter shapes.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use pharox_core::validate::MAX_LEASE_DURATION;
use pharox_core::{
    Credentials, Error, Lease, LeaseStatus, LeasedProxy, PoolId, Proxy, ProxyFilters, ProxyId,
    ProxyPool, ProxyProtocol, ProxyStatus, Selector,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::proxy_uuid;
use crate::object::{option_object, option_vec_object};
use crate::time::iso_opt;

/// Radius used for a filter's `latitude`/`longitude` without `radius_km`:
/// pharox (Python) then matches the exact point (1e-6 degrees, about 0.1 m);
/// the geo filter here needs a radius, so it takes one metre.
pub const POINT_RADIUS_KM: f64 = 0.001;

/// Lease duration when `ttl_seconds` is missing (the SDK's default).
pub const DEFAULT_TTL_SECONDS: u64 = 300;

/// `POST /v1/pools/`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreatePool {
    /// The pool's name; also its id in pharox (Rust API, CLI, metrics).
    pub name: String,
    /// Free text (the SDK sends `""` by default).
    #[serde(default)]
    pub description: Option<String>,
}

/// A pool as the SDK parses it (`id` a UUID, `name`, `description`), plus `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PoolBody {
    /// [`PoolId::uuid`].
    pub id: Uuid,
    /// The pool's id in pharox.
    pub key: String,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
}

impl PoolBody {
    /// The pool this describes.
    pub fn into_pool(self) -> ProxyPool {
        ProxyPool {
            id: PoolId::from(self.key),
            name: self.name,
            description: self.description,
        }
    }
}

impl From<&ProxyPool> for PoolBody {
    fn from(p: &ProxyPool) -> Self {
        Self {
            id: p.id.uuid(),
            key: p.id.as_str().to_owned(),
            name: p.name.clone(),
            description: p.description.clone(),
        }
    }
}

/// `POST /v1/pools/{id}/proxies/`: what the SDK's `add_proxy` sends, and the
/// pharox `Proxy` model's other settable fields. Also the body of `PUT
/// /v1/pools/{pool}/proxies/{proxy}` and each item of a bulk import.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateProxy {
    /// Optional id; a new UUID when missing. An existing id updates that proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Host name or IP address.
    pub host: String,
    /// TCP port, 1 to 65535.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 65535))]
    #[serde(deserialize_with = "crate::int::whole")]
    pub port: u16,
    /// `http` (default), `https`, `socks4` or `socks5`.
    #[serde(default = "default_protocol")]
    pub protocol: ProxyProtocol,
    /// User name; given together with `password`.
    #[serde(default)]
    pub username: Option<String>,
    /// Password; stored, never returned.
    #[serde(default)]
    pub password: Option<String>,
    /// `active` (default, so an SDK user can lease a proxy just added),
    /// `inactive`, `slow` or `banned`.
    #[serde(default)]
    pub status: Option<ProxyStatus>,
    /// Country code.
    #[serde(default)]
    pub country: Option<String>,
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// Latitude in degrees (with `longitude`).
    #[cfg_attr(feature = "openapi", schema(minimum = -90, maximum = 90))]
    #[serde(default)]
    pub latitude: Option<f64>,
    /// Longitude in degrees (with `latitude`).
    #[cfg_attr(feature = "openapi", schema(minimum = -180, maximum = 180))]
    #[serde(default)]
    pub longitude: Option<f64>,
    /// Provider or feed.
    #[serde(default)]
    pub source: Option<String>,
    /// Internet service provider.
    #[serde(default)]
    pub isp: Option<String>,
    /// Autonomous system number.
    #[cfg_attr(feature = "openapi", schema(format = Int64, minimum = 0, maximum = 4_294_967_295_u64))]
    #[serde(default, deserialize_with = "crate::int::whole_opt")]
    pub asn: Option<u32>,
    /// Most leases at once; none means no limit of its own.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 65535))]
    #[serde(default, deserialize_with = "crate::int::whole_opt")]
    pub max_concurrency: Option<u32>,
    /// Last measured latency.
    #[cfg_attr(feature = "openapi", schema(format = Int64, minimum = 0, maximum = 4_294_967_295_u64))]
    #[serde(default, deserialize_with = "crate::int::whole_opt")]
    pub latency_ms: Option<u32>,
    /// When the last health check ran (ISO-8601).
    #[serde(default, with = "iso_opt", skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<DateTime<Utc>>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

fn default_protocol() -> ProxyProtocol {
    ProxyProtocol::Http
}

impl CreateProxy {
    /// The body that stores `proxy` as it is (every field; the id is sent
    /// only when `with_id`, as an import item needs it and a `PUT` path has it).
    pub fn from_proxy(proxy: &Proxy, with_id: bool) -> Self {
        let (username, password) = match &proxy.credentials {
            Some(c) => (
                Some(c.username.clone()),
                Some(c.password.expose().to_owned()),
            ),
            None => (None, None),
        };
        Self {
            id: with_id.then(|| proxy.id.as_str().to_owned()),
            host: proxy.host.clone(),
            port: proxy.port,
            protocol: proxy.protocol,
            username,
            password,
            status: Some(proxy.status),
            country: proxy.country.clone(),
            city: proxy.city.clone(),
            latitude: proxy.latitude,
            longitude: proxy.longitude,
            source: proxy.source.clone(),
            isp: proxy.isp.clone(),
            asn: proxy.asn,
            max_concurrency: proxy.max_concurrency,
            latency_ms: proxy.latency_ms,
            checked_at: proxy.checked_at,
            extra: proxy.extra.clone(),
        }
    }

    /// The proxy to store in `pool`, or `InvalidInput` (on the body's field
    /// names: `username`, `location`).
    pub fn into_proxy(self, pool: PoolId) -> Result<Proxy, Error> {
        let mut proxy = Proxy::new(pool, self.host, self.port, self.protocol);
        if let Some(id) = self.id {
            proxy.id = ProxyId::from(id);
        }
        proxy.credentials = match (self.username, self.password) {
            (None, None) => None,
            (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => Some(Credentials::new(u, p)),
            _ => {
                return Err(Error::invalid(
                    "username",
                    "username and password must be given together, both non-empty",
                ));
            }
        };
        proxy.status = self.status.unwrap_or(ProxyStatus::Active);
        match (self.latitude, self.longitude) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(Error::invalid(
                    "location",
                    "latitude and longitude must be given together",
                ));
            }
            (lat, lon) => (proxy.latitude, proxy.longitude) = (lat, lon),
        }
        proxy.country = self.country;
        proxy.city = self.city;
        proxy.source = self.source;
        proxy.isp = self.isp;
        proxy.asn = self.asn;
        proxy.max_concurrency = self.max_concurrency;
        proxy.latency_ms = self.latency_ms;
        proxy.checked_at = self.checked_at;
        proxy.extra = self.extra;
        Ok(proxy)
    }
}

/// `PATCH /v1/pools/{id}/proxies/{proxy_id}`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateProxy {
    /// The new status.
    pub status: ProxyStatus,
}

/// A proxy in answers: every field but the password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProxyBody {
    /// Its id in the pool (a UUID for proxies created through the API).
    pub id: String,
    /// The pool's UUID.
    pub pool_id: Uuid,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Protocol.
    pub protocol: ProxyProtocol,
    /// User name, if the proxy has credentials (never the password).
    pub username: Option<String>,
    /// Status.
    pub status: ProxyStatus,
    /// Last health check.
    #[serde(with = "iso_opt")]
    pub checked_at: Option<DateTime<Utc>>,
    /// Last measured latency.
    #[cfg_attr(feature = "openapi", schema(format = Int64))]
    pub latency_ms: Option<u32>,
    /// Provider or feed.
    pub source: Option<String>,
    /// Country code.
    pub country: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
    /// Internet service provider.
    pub isp: Option<String>,
    /// Autonomous system number.
    #[cfg_attr(feature = "openapi", schema(format = Int64))]
    pub asn: Option<u32>,
    /// Most leases at once (none: no limit of its own).
    pub max_concurrency: Option<u32>,
    /// Active leases now.
    pub current_leases: u32,
}

impl From<&Proxy> for ProxyBody {
    fn from(p: &Proxy) -> Self {
        Self {
            id: p.id.as_str().to_owned(),
            pool_id: p.pool.uuid(),
            host: p.host.clone(),
            port: p.port,
            protocol: p.protocol,
            username: p.credentials.as_ref().map(|c| c.username.clone()),
            status: p.status,
            checked_at: p.checked_at,
            latency_ms: p.latency_ms,
            source: p.source.clone(),
            country: p.country.clone(),
            city: p.city.clone(),
            latitude: p.latitude,
            longitude: p.longitude,
            isp: p.isp.clone(),
            asn: p.asn,
            max_concurrency: p.max_concurrency,
            current_leases: p.current_leases,
        }
    }
}

/// pharox's `ProxyFilters` as the SDK sends it (`model_dump(exclude_none=True)`).
#[derive(Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FiltersBody {
    /// Source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Country (ASCII case ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Internet service provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isp: Option<String>,
    /// Autonomous system number.
    #[cfg_attr(feature = "openapi", schema(format = Int64, minimum = 0, maximum = 4_294_967_295_u64))]
    #[serde(
        default,
        deserialize_with = "crate::int::whole_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub asn: Option<u32>,
    /// Centre latitude (with `longitude`).
    #[cfg_attr(feature = "openapi", schema(minimum = -90, maximum = 90))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    /// Centre longitude (with `latitude`).
    #[cfg_attr(feature = "openapi", schema(minimum = -180, maximum = 180))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    /// Radius in km (needs `latitude` and `longitude`); without it the point
    /// is matched within [`POINT_RADIUS_KM`].
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 20037.6))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radius_km: Option<f64>,
    /// All must match.
    #[serde(
        default,
        deserialize_with = "option_vec_object",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(no_recursion))]
    pub all_of: Option<Vec<FiltersBody>>,
    /// At least one must match (ignored when empty).
    #[serde(
        default,
        deserialize_with = "option_vec_object",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(no_recursion))]
    pub any_of: Option<Vec<FiltersBody>>,
    /// None may match.
    #[serde(
        default,
        deserialize_with = "option_vec_object",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(no_recursion))]
    pub none_of: Option<Vec<FiltersBody>>,
}

impl FiltersBody {
    /// The body for `filters`, or `UnsupportedFilter` for a closure
    /// predicate, which cannot cross HTTP.
    pub fn from_filters(filters: &ProxyFilters) -> Result<Self, Error> {
        if filters.predicate.is_some() {
            return Err(Error::UnsupportedFilter(
                "closure predicates cannot be sent to a pharox server",
            ));
        }
        let children = |list: &[ProxyFilters]| -> Result<Option<Vec<FiltersBody>>, Error> {
            if list.is_empty() {
                return Ok(None);
            }
            list.iter()
                .map(Self::from_filters)
                .collect::<Result<_, _>>()
                .map(Some)
        };
        Ok(Self {
            source: filters.source.clone(),
            country: filters.country.clone(),
            city: filters.city.clone(),
            isp: filters.isp.clone(),
            asn: filters.asn,
            latitude: filters.geo.map(|g| g.latitude),
            longitude: filters.geo.map(|g| g.longitude),
            radius_km: filters.geo.map(|g| g.radius_km),
            all_of: children(&filters.all_of)?,
            any_of: children(&filters.any_of)?,
            none_of: children(&filters.none_of)?,
        })
    }

    /// The filter, or `InvalidInput` for a location without its other half.
    /// Limits (depth, size, ranges) are checked by the store.
    pub fn into_filters(self) -> Result<ProxyFilters, Error> {
        let mut f = ProxyFilters {
            source: self.source,
            country: self.country,
            city: self.city,
            isp: self.isp,
            asn: self.asn,
            ..ProxyFilters::default()
        };
        match (self.latitude, self.longitude, self.radius_km) {
            (None, None, None) => {}
            (Some(lat), Some(lon), radius) => {
                f = f.within_km(lat, lon, radius.unwrap_or(POINT_RADIUS_KM));
            }
            (_, _, Some(_)) => {
                return Err(Error::invalid(
                    "filters.radius_km",
                    "needs latitude and longitude",
                ));
            }
            _ => {
                return Err(Error::invalid(
                    "filters.latitude",
                    "latitude and longitude must be given together",
                ));
            }
        }
        let children = |list: Option<Vec<FiltersBody>>| -> Result<Vec<ProxyFilters>, Error> {
            list.unwrap_or_default()
                .into_iter()
                .map(FiltersBody::into_filters)
                .collect()
        };
        f.all_of = children(self.all_of)?;
        f.any_of = children(self.any_of)?;
        f.none_of = children(self.none_of)?;
        Ok(f)
    }
}

/// `POST /v1/leases/`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AcquireBody {
    /// The pool's UUID (as the SDK sends it) or its pharox id.
    pub pool_id: String,
    /// The consumer's *name* (the SDK sends `"default"` unless told otherwise).
    #[serde(default)]
    pub consumer_id: Option<String>,
    /// Lease duration in seconds, 1 to 86400 (default 300).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 86400))]
    #[serde(default, deserialize_with = "crate::int::whole_opt")]
    pub ttl_seconds: Option<u64>,
    /// `first_available` (default), `least_used`, `round_robin` or `lowest_latency`.
    #[serde(default)]
    pub strategy: Option<String>,
    /// Which proxies qualify.
    #[serde(default, deserialize_with = "option_object")]
    pub filters: Option<FiltersBody>,
}

impl AcquireBody {
    /// The lease duration, or `InvalidInput` on `ttl_seconds`.
    pub fn duration(&self) -> Result<TimeDelta, Error> {
        ttl_seconds(self.ttl_seconds)
    }

    /// The selector, or `InvalidInput` on `strategy`.
    pub fn selector(&self) -> Result<Selector, Error> {
        strategy(self.strategy.as_deref())
    }
}

/// A duration given in whole seconds (`ttl_seconds`, default
/// [`DEFAULT_TTL_SECONDS`]), or `InvalidInput` on `ttl_seconds`.
pub fn ttl_seconds(ttl: Option<u64>) -> Result<TimeDelta, Error> {
    let secs = ttl.unwrap_or(DEFAULT_TTL_SECONDS);
    let max = MAX_LEASE_DURATION.num_seconds() as u64;
    if secs == 0 || secs > max {
        return Err(Error::invalid(
            "ttl_seconds",
            format!("must be between 1 and {max}"),
        ));
    }
    Ok(TimeDelta::seconds(secs as i64))
}

/// A selector by its SDK name (`first_available`, the default) or ours
/// (`first-available`), or `InvalidInput` on `strategy`.
pub fn strategy(name: Option<&str>) -> Result<Selector, Error> {
    match name {
        None => Ok(Selector::FirstAvailable),
        Some(s) => s.parse().map_err(|_| {
            Error::invalid(
                "strategy",
                "expected first_available, least_used, round_robin or lowest_latency",
            )
        }),
    }
}

/// The connection data of a leased proxy (never the password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeasedProxyBody {
    /// Its id in the pool.
    pub id: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Protocol.
    pub protocol: ProxyProtocol,
    /// User name, if any.
    pub username: Option<String>,
}

impl From<&LeasedProxy> for LeasedProxyBody {
    fn from(p: &LeasedProxy) -> Self {
        Self {
            id: p.id.as_str().to_owned(),
            host: p.host.clone(),
            port: p.port,
            protocol: p.protocol,
            username: p.credentials.as_ref().map(|c| c.username.clone()),
        }
    }
}

/// A lease's status as pharox-sdk parses it: pharox 0.8's `LeaseStatus`
/// has only these two (a lease reclaimed after expiry is no longer found).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SdkLeaseStatus {
    /// Held.
    Active,
    /// Given back.
    Released,
}

/// A lease as the SDK parses it (`id`, `proxy_id`, `consumer_id`, `pool_id`
/// UUIDs; `status` `active` or `released`; ISO-8601 times), plus pharox's
/// fencing `token`, the pool's and consumer's names and the proxy.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseBody {
    /// The lease id (a UUID that carries the pool's tag).
    pub id: Uuid,
    /// The proxy's UUID ([`proxy_uuid`]).
    pub proxy_id: Uuid,
    /// The consumer's id.
    pub consumer_id: Uuid,
    /// The pool's UUID.
    pub pool_id: Uuid,
    /// `active` or `released` (the only values pharox 0.8's `LeaseStatus` has).
    pub status: SdkLeaseStatus,
    /// When the store granted it.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub acquired_at: String,
    /// When it expires unless renewed or released.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub expires_at: String,
    /// Fencing token, strictly increasing per pool.
    pub token: u64,
    /// The pool's pharox id.
    pub pool: String,
    /// The consumer's name.
    pub consumer: String,
    /// The leased proxy.
    pub proxy: LeasedProxyBody,
}

impl LeaseBody {
    /// The answer for `lease`, held by the consumer with id `consumer_id`;
    /// `released` marks it given back.
    pub fn new(lease: &Lease, consumer_id: Uuid, released: bool) -> Self {
        let status = match (released, lease.status) {
            (false, LeaseStatus::Active) => SdkLeaseStatus::Active,
            _ => SdkLeaseStatus::Released,
        };
        Self {
            id: lease.id.0,
            proxy_id: proxy_uuid(&lease.pool, &lease.proxy.id),
            consumer_id,
            pool_id: lease.pool.uuid(),
            status,
            acquired_at: crate::iso(lease.acquired_at),
            expires_at: crate::iso(lease.expires_at),
            token: lease.token,
            pool: lease.pool.as_str().to_owned(),
            consumer: lease.consumer.as_str().to_owned(),
            proxy: LeasedProxyBody::from(&*lease.proxy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_filters_convert_with_their_nesting() {
        let body: FiltersBody = serde_json::from_str(
            r#"{"country":"AR","latitude":-34.6,"longitude":-58.4,"radius_km":50,
                "any_of":[{"source":"a"},{"source":"b"}],"none_of":[{"asn":7}]}"#,
        )
        .unwrap();
        let f = body.into_filters().unwrap();
        assert_eq!(f.country.as_deref(), Some("AR"));
        assert_eq!(f.geo.unwrap().radius_km, 50.0);
        assert_eq!(f.any_of.len(), 2);
        assert_eq!(f.none_of[0].asn, Some(7));
        let point: FiltersBody = serde_json::from_str(r#"{"latitude":1,"longitude":2}"#).unwrap();
        assert_eq!(
            point.into_filters().unwrap().geo.unwrap().radius_km,
            POINT_RADIUS_KM
        );
    }

    #[test]
    fn half_a_location_is_invalid_input() {
        for json in [
            r#"{"latitude":1}"#,
            r#"{"longitude":1}"#,
            r#"{"radius_km":5}"#,
            r#"{"all_of":[{"radius_km":5,"latitude":1}]}"#,
        ] {
            let body: FiltersBody = serde_json::from_str(json).unwrap();
            let e = body.into_filters().unwrap_err();
            assert!(matches!(e, Error::InvalidInput { .. }), "{json}");
        }
    }

    #[test]
    fn strategies_take_the_sdk_names_and_ours() {
        for (name, sel) in [
            ("first_available", Selector::FirstAvailable),
            ("least_used", Selector::LeastUsed),
            ("round_robin", Selector::RoundRobin),
            ("lowest_latency", Selector::LowestLatency),
        ] {
            let body: AcquireBody =
                serde_json::from_value(serde_json::json!({"pool_id": "p", "strategy": name}))
                    .unwrap();
            assert_eq!(body.selector().unwrap(), sel);
        }
        let bad: AcquireBody =
            serde_json::from_value(serde_json::json!({"pool_id": "p", "strategy": "fastest"}))
                .unwrap();
        assert!(matches!(
            bad.selector().unwrap_err(),
            Error::InvalidInput {
                field: "strategy",
                ..
            }
        ));
    }
}
