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

/// Acknowledged writes: how many replicas must confirm a lease write
/// (Redis `WAIT`) before the store reports it, and how long to wait for
/// them. See [`RedisConfig::acknowledge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acknowledge {
    /// Replicas that must have the write (1 or more).
    pub replicas: u32,
    /// The longest wait for them (at least 1 ms; below the response
    /// timeout, which bounds the script and the wait together).
    pub timeout: Duration,
}

/// Settings of a [`RedisStorage`](crate::RedisStorage).
///
/// `Debug` shows the URL with its password replaced by `***` (I8).
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://[[user]:password@]host:port[/db]`, or `rediss://…` for TLS
    /// (see [`tls`](Self#structfield.tls)); or, through Redis Sentinel,
    /// `redis+sentinel://[[user]:password@]HOST[:PORT][,HOST[:PORT]…]/SERVICE[/DB]`
    /// `[?sentinel_username=U&sentinel_password=P]` (`rediss+sentinel://`
    /// for TLS to the sentinels and the data nodes): the store connects to
    /// the primary the sentinels name, and asks them again after a failure
    /// (see the README's "Redis Sentinel"). The user and password are the
    /// data nodes'; the sentinels' own go in the query; a port left out is
    /// 26379.
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
    /// leases are forgotten and capacities wrap. Such a server is
    /// refused (`InvalidInput`, field `redis maxmemory-policy`) unless this
    /// is `true`. The `volatile-*` policies evict only keys with a TTL, and
    /// pharox sets a TTL on none of its keys (lease expiry is a sorted-set
    /// score judged by the scripts), so they are accepted: to pharox they
    /// behave like `noeviction`. If neither command is allowed (an ACL, a
    /// renamed command) the check is skipped with a warning.
    pub allow_eviction: bool,
    /// How often a `redis+sentinel://` store asks the sentinels for the
    /// primary even when no call failed (default 1 s; `None`: only after a
    /// failure). Without it, a graceful failover (`SENTINEL FAILOVER`)
    /// is followed only once the sentinels demote the old primary (up to
    /// ~10 s later) and it answers `READONLY`; it takes writes until then,
    /// and they are lost.
    pub sentinel_check_interval: Option<Duration>,
    /// Wait for replicas after each lease write (default `None`: report a
    /// write once the primary applied it).
    ///
    /// With `Some`, an acquire and a renew are each followed, in the same
    /// round trip and on the same connection, by `WAIT replicas timeout`.
    /// An acquire is returned only once that many replicas have the lease,
    /// so a failover to one of them keeps it (I1 holds across the
    /// failover). When fewer acknowledge in time, the acquire releases the
    /// lease again and fails with a retryable [`Interrupted`] error (a
    /// failover at that moment may still keep the lease until it expires:
    /// capacity held, never a slot leased twice); a renew fails the same
    /// way, its new deadline applied on the primary but perhaps not on a
    /// replica (after a failover the lease may end at its former
    /// deadline). Releases are not waited for: one lost in a failover
    /// holds capacity until the lease expires, which is safe. This also
    /// keeps a demoted primary from granting leases during a failover (it
    /// has no replica left to acknowledge them). See the README's
    /// "Durability and failover" for what each setting costs.
    ///
    /// [`Interrupted`]: pharox_core::Error::Interrupted
    pub acknowledge: Option<Acknowledge>,
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
            sentinel_check_interval: Some(Duration::from_secs(1)),
            acknowledge: None,
        }
    }

    /// Waits for `replicas` replicas (up to `timeout`) after each acquire
    /// and renew; see the [field](Self#structfield.acknowledge).
    pub fn acknowledge(mut self, replicas: u32, timeout: Duration) -> Self {
        self.acknowledge = Some(Acknowledge { replicas, timeout });
        self
    }

    /// Sets how often a `redis+sentinel://` store asks the sentinels for
    /// the primary when nothing failed (`None`: only after a failure); see
    /// the [field](Self#structfield.sentinel_check_interval).
    pub fn sentinel_check_interval(mut self, every: Option<Duration>) -> Self {
        self.sentinel_check_interval = every;
        self
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

/// Replaces the password of a `scheme://user:password@host` URL with `***`,
/// and the value of a `sentinel_password=` query option.
pub(crate) fn redact_url(url: &str) -> String {
    let shown = redact_userinfo(url);
    let Some((base, query)) = shown.split_once('?') else {
        return shown;
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("sentinel_password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

fn redact_userinfo(url: &str) -> String {
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
            .field("sentinel_check_interval", &self.sentinel_check_interval)
            .field("acknowledge", &self.acknowledge)
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
            (
                "redis+sentinel://u:s3cret@h:1,h:2/svc?sentinel_password=s3cret",
                "redis+sentinel://u:***@h:1,h:2/svc?sentinel_password=***",
            ),
            (
                "rediss+sentinel://h/svc?sentinel_username=x&sentinel_password=s3cret",
                "rediss+sentinel://h/svc?sentinel_username=x&sentinel_password=***",
            ),
        ] {
            assert_eq!(redact_url(url), shown);
        }
        let cfg = RedisConfig::new("redis://u:hunter2@localhost");
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}
