//! Connection settings.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::tls::RedisTls;

/// How [`RedisStorage`](crate::RedisStorage) talks to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionMode {
    /// A few multiplexed connections shared by every task: redis-rs pipelines
    /// concurrent requests on each, and reconnects on its own after a
    /// failure. The default (see BENCHMARKS.md for the comparison).
    Multiplexed {
        /// Connections to open; tasks are spread over them round-robin.
        connections: usize,
    },
    /// A deadpool-redis pool: each call takes a connection for itself
    /// (deadpool pings it on checkout), so concurrency is bounded by `size`.
    Pooled {
        /// Most connections the pool opens.
        size: usize,
    },
}

impl Default for ConnectionMode {
    fn default() -> Self {
        Self::Multiplexed { connections: 1 }
    }
}

/// Settings of a [`RedisStorage`](crate::RedisStorage).
///
/// `Debug` shows the URL with its password replaced by `***` (I8).
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://[[user]:password@]host:port[/db]`, or `rediss://…` for TLS
    /// (see [`tls`](Self#structfield.tls)).
    pub url: String,
    /// CA and client-certificate files of a `rediss://` URL (default:
    /// verify against the system's trust store, no client certificate).
    pub tls: RedisTls,
    /// Prefix of every key (default `pharox`): stores with different
    /// prefixes on one server never see each other.
    pub prefix: String,
    /// Connection strategy.
    pub mode: ConnectionMode,
    /// How long one call may wait for its answer (default 5 s), in every
    /// connection mode (pooled connections included: their driver would
    /// otherwise give up after 500 ms).
    pub response_timeout: Duration,
    /// How long opening a connection may take (default 2 s): each
    /// connection `connect` opens, and each one opened later (a pooled
    /// connection, a reconnection).
    pub connect_timeout: Duration,
    /// Expired leases an acquire reclaims before selecting (default 64; the
    /// rest is left to `cleanup_expired`, i.e. the worker's sweeper).
    pub reclaim_batch: usize,
    /// Connect even to a server whose `maxmemory-policy` may evict pharox's
    /// keys, with a warning instead of an error (default `false`).
    ///
    /// [`RedisStorage::connect`](crate::RedisStorage::connect) reads the
    /// policy once (`INFO memory`, else `CONFIG GET maxmemory-policy`).
    /// `noeviction` is what pharox needs. Under `allkeys-lru`, `allkeys-lfu`
    /// or `allkeys-random` a full Redis may drop any key, so a pool's
    /// counters, proxy words and leases vanish without any call failing:
    /// fencing tokens start over and capacities wrap. Such a server is
    /// refused (`InvalidInput`, field `redis maxmemory-policy`) unless this
    /// is `true`. The `volatile-*` policies evict only keys with a TTL, and
    /// pharox sets a TTL on none of its keys (lease expiry is a sorted-set
    /// score judged by the scripts), so they are accepted: to pharox they
    /// behave like `noeviction`. If neither command is allowed (an ACL, a
    /// renamed command) the check is skipped with a warning.
    pub allow_eviction: bool,
}

impl RedisConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            tls: RedisTls::default(),
            prefix: "pharox".into(),
            mode: ConnectionMode::default(),
            response_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            reclaim_batch: 64,
            allow_eviction: false,
        }
    }

    /// Verifies the server of a `rediss://` URL against the CA certificates
    /// of this PEM file instead of the system's trust store.
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls.ca_file = Some(path.into());
        self
    }

    /// Presents this client certificate (PEM, with its chain) and private
    /// key (PEM) to a `rediss://` server: mutual TLS.
    pub fn tls_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls.cert_file = Some(cert.into());
        self.tls.key_file = Some(key.into());
        self
    }

    /// Sets all TLS files at once.
    pub fn tls(mut self, tls: RedisTls) -> Self {
        self.tls = tls;
        self
    }

    /// Sets the key prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the connection strategy.
    pub fn mode(mut self, mode: ConnectionMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the response timeout.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Accepts (`true`) a server whose `maxmemory-policy` may evict pharox's
    /// keys, with a warning; see the [field](Self#structfield.allow_eviction).
    pub fn allow_eviction(mut self, allow: bool) -> Self {
        self.allow_eviction = allow;
        self
    }

    /// Sets the reclaim batch of acquires.
    pub fn reclaim_batch(mut self, batch: usize) -> Self {
        self.reclaim_batch = batch;
        self
    }

    /// The URL with any password replaced by `***`, safe to log.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

/// Replaces the password of a `scheme://user:password@host` URL with `***`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let user = userinfo.split(':').next().unwrap_or("");
    let shown = if userinfo.contains(':') {
        format!("{user}:***")
    } else {
        // `redis://password@host` form: the whole userinfo is the secret.
        "***".to_owned()
    };
    format!("{}{shown}{}", &url[..scheme_end + 3], &rest[at..])
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("tls", &self.tls)
            .field("prefix", &self.prefix)
            .field("mode", &self.mode)
            .field("response_timeout", &self.response_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("reclaim_batch", &self.reclaim_batch)
            .field("allow_eviction", &self.allow_eviction)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://:s3cret@h:1/0", "redis://:***@h:1/0"),
            ("redis://alice:s3cret@h:1", "redis://alice:***@h:1"),
            ("rediss://s3cret@h", "rediss://***@h"),
            ("redis://a:p@ss@h", "redis://a:***@h"),
        ] {
            assert_eq!(redact_url(url), shown);
        }
        let cfg = RedisConfig::new("redis://u:hunter2@localhost");
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}
