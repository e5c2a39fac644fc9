//! Proxies, their protocol, status and credentials.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use super::{PoolId, ProxyId};
use crate::Error;

/// How a client talks to a proxy.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    /// Plain HTTP proxy (`CONNECT` for TLS targets).
    Http,
    /// HTTP proxy reached over TLS.
    Https,
    /// SOCKS version 4.
    Socks4,
    /// SOCKS version 5.
    Socks5,
}

impl ProxyProtocol {
    /// The URL scheme of the protocol.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
            Self::Socks4 => "socks4",
            Self::Socks5 => "socks5",
        }
    }
}

impl fmt::Display for ProxyProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme())
    }
}

impl FromStr for ProxyProtocol {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "http" => Ok(Self::Http),
            "https" => Ok(Self::Https),
            "socks4" => Ok(Self::Socks4),
            "socks5" => Ok(Self::Socks5),
            _ => Err(Error::invalid(
                "protocol",
                "expected one of http, https, socks4, socks5",
            )),
        }
    }
}

/// Health status of a proxy. Only [`ProxyStatus::Active`] proxies are leased (I7).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyStatus {
    /// Healthy and leasable.
    #[default]
    Active,
    /// Taken out of rotation (e.g. repeated health-check failures).
    Inactive,
    /// Working but slower than the configured threshold; not leased.
    Slow,
    /// Blocked by targets or the provider; not leased.
    Banned,
}

impl ProxyStatus {
    /// The lowercase name used in storage and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Slow => "slow",
            Self::Banned => "banned",
        }
    }
}

impl fmt::Display for ProxyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProxyStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "active" => Ok(Self::Active),
            "inactive" => Ok(Self::Inactive),
            "slow" => Ok(Self::Slow),
            "banned" => Ok(Self::Banned),
            _ => Err(Error::invalid(
                "status",
                "expected one of active, inactive, slow, banned",
            )),
        }
    }
}

/// A password that never shows itself in `Debug` or `Display` (I8).
///
/// Serde writes the real value, because stores must keep it; use
/// [`Proxy::redacted`] before serialising a proxy for logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Username and password for a proxy.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The user name (not secret).
    pub username: String,
    /// The password (redacted in `Debug`/`Display`).
    pub password: Secret,
}

impl Credentials {
    /// Builds credentials from a user name and a password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: Secret::new(password),
        }
    }

    fn redacted(&self) -> Self {
        Self {
            username: self.username.clone(),
            password: Secret::new("***"),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

/// Characters escaped in the userinfo part of a proxy URL (RFC 3986).
const USERINFO: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b':')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Formats `scheme://[user:pass@]host:port`; with `redact` the password reads `***`.
pub(crate) fn format_proxy_url(
    protocol: ProxyProtocol,
    host: &str,
    port: u16,
    credentials: Option<&Credentials>,
    redact: bool,
) -> String {
    let mut url = format!("{}://", protocol.scheme());
    if let Some(c) = credentials {
        url.extend(utf8_percent_encode(&c.username, USERINFO));
        url.push(':');
        if redact {
            url.push_str("***");
        } else {
            url.extend(utf8_percent_encode(c.password.expose(), USERINFO));
        }
        url.push('@');
    }
    if host.contains(':') && !host.starts_with('[') {
        url.push('[');
        url.push_str(host);
        url.push(']');
    } else {
        url.push_str(host);
    }
    url.push(':');
    url.push_str(&port.to_string());
    url
}

/// A proxy in a pool, with its health, location and capacity.
///
/// `current_leases` is owned by the store: it is ignored on upsert and always
/// equals the number of the proxy's active leases (I2).
///
/// ```
/// use pharox_core::{Proxy, ProxyProtocol};
///
/// let proxy = Proxy::new("latam", "186.33.123.10", 8080, ProxyProtocol::Http)
///     .with_credentials("user", "p@ss word")
///     .with_country("AR")
///     .with_max_concurrency(2);
/// assert_eq!(proxy.url(), "http://user:p%40ss%20word@186.33.123.10:8080");
/// assert!(!format!("{proxy:?}").contains("p@ss"));
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Proxy {
    /// Unique within the pool.
    pub id: ProxyId,
    /// The pool the proxy belongs to.
    pub pool: PoolId,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port, never 0.
    pub port: u16,
    /// How to talk to the proxy.
    pub protocol: ProxyProtocol,
    /// Optional authentication.
    #[serde(default)]
    pub credentials: Option<Credentials>,
    /// Health status; only `active` proxies are leased.
    #[serde(default)]
    pub status: ProxyStatus,
    /// When the last health check ran.
    #[serde(default)]
    pub checked_at: Option<DateTime<Utc>>,
    /// Round-trip time of the last successful health check.
    #[serde(default)]
    pub latency_ms: Option<u32>,
    /// Provider or feed the proxy came from.
    #[serde(default)]
    pub source: Option<String>,
    /// Country code (matched case-insensitively, stored as given).
    #[serde(default)]
    pub country: Option<String>,
    /// City name.
    #[serde(default)]
    pub city: Option<String>,
    /// Latitude in degrees, -90..=90 (set together with `longitude`).
    #[serde(default)]
    pub latitude: Option<f64>,
    /// Longitude in degrees, -180..=180 (set together with `latitude`).
    #[serde(default)]
    pub longitude: Option<f64>,
    /// Internet service provider.
    #[serde(default)]
    pub isp: Option<String>,
    /// Autonomous system number.
    #[serde(default)]
    pub asn: Option<u32>,
    /// Most leases held at once, 1 to [`MAX_CONCURRENCY`](crate::validate::MAX_CONCURRENCY).
    /// `None` means no limit of its own: the proxy then takes up to
    /// [`MAX_CONCURRENCY`](crate::validate::MAX_CONCURRENCY) (65,535) leases,
    /// on every store (see [`Proxy::capacity`]).
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// Active leases right now (kept by the store).
    #[serde(default)]
    pub current_leases: u32,
    /// Free-form metadata that round-trips through every store.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

impl Proxy {
    /// An active proxy with a random id and no metadata.
    pub fn new(
        pool: impl Into<PoolId>,
        host: impl Into<String>,
        port: u16,
        protocol: ProxyProtocol,
    ) -> Self {
        Self {
            id: ProxyId::random(),
            pool: pool.into(),
            host: host.into(),
            port,
            protocol,
            credentials: None,
            status: ProxyStatus::Active,
            checked_at: None,
            latency_ms: None,
            source: None,
            country: None,
            city: None,
            latitude: None,
            longitude: None,
            isp: None,
            asn: None,
            max_concurrency: None,
            current_leases: 0,
            extra: BTreeMap::new(),
        }
    }

    /// Sets the id.
    pub fn with_id(mut self, id: impl Into<ProxyId>) -> Self {
        self.id = id.into();
        self
    }

    /// Sets user name and password.
    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.credentials = Some(Credentials::new(username, password));
        self
    }

    /// Sets the status.
    pub fn with_status(mut self, status: ProxyStatus) -> Self {
        self.status = status;
        self
    }

    /// Sets the measured latency.
    pub fn with_latency_ms(mut self, latency_ms: u32) -> Self {
        self.latency_ms = Some(latency_ms);
        self
    }

    /// Sets the source (provider).
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Sets the country code.
    pub fn with_country(mut self, country: impl Into<String>) -> Self {
        self.country = Some(country.into());
        self
    }

    /// Sets the city.
    pub fn with_city(mut self, city: impl Into<String>) -> Self {
        self.city = Some(city.into());
        self
    }

    /// Sets latitude and longitude in degrees.
    pub fn with_location(mut self, latitude: f64, longitude: f64) -> Self {
        self.latitude = Some(latitude);
        self.longitude = Some(longitude);
        self
    }

    /// Sets the internet service provider.
    pub fn with_isp(mut self, isp: impl Into<String>) -> Self {
        self.isp = Some(isp.into());
        self
    }

    /// Sets the autonomous system number.
    pub fn with_asn(mut self, asn: u32) -> Self {
        self.asn = Some(asn);
        self
    }

    /// Caps the number of leases held at once.
    pub fn with_max_concurrency(mut self, max: u32) -> Self {
        self.max_concurrency = Some(max);
        self
    }

    /// Adds a metadata entry.
    pub fn with_extra(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// The URL a client connects through, with percent-encoded credentials.
    /// It contains the password: never log it (use [`Proxy::redacted_url`]).
    pub fn url(&self) -> String {
        format_proxy_url(
            self.protocol,
            &self.host,
            self.port,
            self.credentials.as_ref(),
            false,
        )
    }

    /// The URL with the password replaced by `***`, safe to log.
    pub fn redacted_url(&self) -> String {
        format_proxy_url(
            self.protocol,
            &self.host,
            self.port,
            self.credentials.as_ref(),
            true,
        )
    }

    /// A copy whose password reads `***`, safe to serialise into logs.
    pub fn redacted(&self) -> Self {
        Self {
            credentials: self.credentials.as_ref().map(Credentials::redacted),
            ..self.clone()
        }
    }

    /// Most leases the proxy takes at once: its `max_concurrency`, or
    /// [`MAX_CONCURRENCY`](crate::validate::MAX_CONCURRENCY) when it sets none.
    pub fn capacity(&self) -> u32 {
        self.max_concurrency
            .unwrap_or(crate::validate::MAX_CONCURRENCY)
    }

    /// Whether the proxy can take one more lease right now (active, below its cap).
    pub fn has_free_capacity(&self) -> bool {
        self.status == ProxyStatus::Active && self.current_leases < self.capacity()
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("id", &self.id)
            .field("pool", &self.pool)
            .field("url", &self.redacted_url())
            .field("status", &self.status)
            .field("checked_at", &self.checked_at)
            .field("latency_ms", &self.latency_ms)
            .field("source", &self.source)
            .field("country", &self.country)
            .field("city", &self.city)
            .field("latitude", &self.latitude)
            .field("longitude", &self.longitude)
            .field("isp", &self.isp)
            .field("asn", &self.asn)
            .field("max_concurrency", &self.max_concurrency)
            .field("current_leases", &self.current_leases)
            .field("extra", &self.extra)
            .finish()
    }
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.redacted_url(), self.id)
    }
}
