//! Where and how to connect, with the URL's password kept out of logs.

use std::fmt;
use std::time::Duration;

/// How [`PostgresStorage`](crate::PostgresStorage) connects and behaves.
///
/// ```
/// use std::time::Duration;
/// use pharox_postgres::PostgresConfig;
///
/// let cfg = PostgresConfig::new("postgres://pharox:s3cret@127.0.0.1:5432/pharox")
///     .pool_size(32)
///     .operation_timeout(Duration::from_secs(2));
/// assert!(!format!("{cfg:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct PostgresConfig {
    /// A libpq-style URL (`postgres://user:password@host:port/db?...`) or
    /// key-value string (`host=... user=... dbname=...`). Never logged as is:
    /// see [`PostgresConfig::redacted_url`].
    pub url: String,
    /// Most connections the store keeps open.
    pub pool_size: usize,
    /// How long opening one connection may take.
    pub connect_timeout: Duration,
    /// How long a call may wait for a free connection of the pool.
    pub wait_timeout: Duration,
    /// How long one operation may take, from asking for a connection to the
    /// answer; past it the call fails with `Error::Timeout`.
    pub operation_timeout: Duration,
    /// Most expired leases of its pool one acquire reclaims before it
    /// selects (the worker's sweeper reclaims the rest).
    pub reclaim_batch: u32,
}

impl PostgresConfig {
    /// A config for `url` with the defaults: 16 connections, 5 s to connect
    /// or wait for a connection, 10 s per operation, reclaim batches of 64.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(10),
            reclaim_batch: 64,
        }
    }

    /// Sets the most connections kept open.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// Sets how long opening a connection may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets how long a call may wait for a free connection.
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// Sets how long one operation may take.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Sets the most expired leases one acquire reclaims.
    pub fn reclaim_batch(mut self, batch: u32) -> Self {
        self.reclaim_batch = batch;
        self
    }

    /// The URL with any password replaced by `***`, safe to log.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &self.redacted_url())
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("wait_timeout", &self.wait_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("reclaim_batch", &self.reclaim_batch)
            .finish()
    }
}

/// Hides the password of a URL (`user:password@`, a `password=` query
/// option) or of a key-value string (`password=...`).
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return redact_key_values(url);
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let mut shown = match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => userinfo.to_owned(),
            };
            format!("{}{user}{}", &url[..scheme_end + 3], &rest[at..])
        }
        None => url.to_owned(),
    };
    if let Some((base, query)) = shown.split_once('?') {
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        shown = format!("{base}?{}", query.join("&"));
    }
    shown
}

fn redact_key_values(conninfo: &str) -> String {
    let Some(start) = conninfo.to_ascii_lowercase().find("password") else {
        return conninfo.to_owned();
    };
    // Everything after the keyword may be the secret (quoted values may hold
    // spaces): keep what precedes it only.
    format!("{}password=***", &conninfo[..start])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        for (url, shown) in [
            (
                "postgres://127.0.0.1:5432/test",
                "postgres://127.0.0.1:5432/test",
            ),
            (
                "postgres://postgres@127.0.0.1/test",
                "postgres://postgres@127.0.0.1/test",
            ),
            ("postgres://u:s3cret@h:1/db", "postgres://u:***@h:1/db"),
            ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
            (
                "postgres://h/db?user=u&password=s3cret",
                "postgres://h/db?user=u&password=***",
            ),
            (
                "host=h user=u password='s3 cret' dbname=d",
                "host=h user=u password=***",
            ),
        ] {
            assert_eq!(redact_url(url), shown);
        }
        let cfg = PostgresConfig::new("postgres://u:hunter2@localhost/db");
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}
