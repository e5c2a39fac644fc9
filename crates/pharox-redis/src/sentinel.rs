//! `redis+sentinel://`: the URL, the sentinels' client, and the connection
//! that follows the primary across failovers.
//!
//! The URL names the sentinels and the service they monitor:
//! `redis+sentinel://[user:password@]HOST[:PORT][,HOST[:PORT]…]/SERVICE[/DB]`
//! `[?sentinel_username=U&sentinel_password=P]` (`rediss+sentinel://` for TLS
//! to the sentinels and the data nodes alike, with the files of
//! [`RedisTls`](crate::RedisTls)). The user and password are the data
//! nodes'; the sentinels' own credentials, if they have any, go in the query.
//! A port left out is Sentinel's default, 26379.
//!
//! The store asks the sentinels for the primary at connect, every second
//! in the background (`RedisConfig::sentinel_check_interval`), and after any retryable failure
//! (a refused or broken connection, a timeout, a `READONLY` reply from a
//! demoted primary): the failing call waits for that lookup (within its own
//! timeout) and returns its retryable error; if the sentinels name another
//! primary, every later call goes there.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_redis::redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use deadpool_redis::redis::{self, ConnectionAddr, ErrorKind, RedisError, TlsMode};
use parking_lot::RwLock;
use percent_encoding::percent_decode_str;
use pharox_core::{Error, Result};

use crate::config::RedisConfig;
use crate::conn::{Direct, map_err};

/// Sentinel's default port.
const DEFAULT_PORT: u16 = 26379;

/// What a `redis+sentinel://` URL says.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SentinelUrl {
    /// The sentinels, in the order they are asked.
    pub sentinels: Vec<(String, u16)>,
    /// The monitored service (the master name of `sentinel monitor`).
    pub service: String,
    /// The data nodes' ACL user.
    pub username: Option<String>,
    /// The data nodes' password.
    pub password: Option<String>,
    /// The data nodes' database.
    pub db: i64,
    /// The sentinels' ACL user.
    pub sentinel_username: Option<String>,
    /// The sentinels' password.
    pub sentinel_password: Option<String>,
    /// `rediss+sentinel://`: TLS to the sentinels and the data nodes.
    pub tls: bool,
}

impl std::fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "***");
        f.debug_struct("SentinelUrl")
            .field("sentinels", &self.sentinels)
            .field("service", &self.service)
            .field("username", &self.username)
            .field("password", &secret(&self.password))
            .field("db", &self.db)
            .field("sentinel_username", &self.sentinel_username)
            .field("sentinel_password", &secret(&self.sentinel_password))
            .field("tls", &self.tls)
            .finish()
    }
}

/// The scheme of a Sentinel URL, or `None` for another URL.
fn sentinel_scheme(url: &str) -> Option<bool> {
    let (scheme, _) = url.split_once("://")?;
    if scheme.eq_ignore_ascii_case("redis+sentinel") {
        Some(false)
    } else if scheme.eq_ignore_ascii_case("rediss+sentinel") {
        Some(true)
    } else {
        None
    }
}

/// Whether `url` is a `redis+sentinel://` or `rediss+sentinel://` URL.
pub(crate) fn is_sentinel_url(url: &str) -> bool {
    sentinel_scheme(url).is_some()
}

/// A percent-decoded URL part; `what` names it in the error (never its value).
fn decode(what: &str, part: &str, shown: &str) -> Result<String> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            bad(
                shown,
                format!("its {what} is not valid percent-encoded UTF-8"),
            )
        })
}

fn bad(shown: &str, reason: impl std::fmt::Display) -> Error {
    Error::invalid("redis url", format!("{shown}: {reason}"))
}

/// One `HOST[:PORT]` of the sentinel list (`[v6]:PORT` too).
fn host_port(item: &str, shown: &str) -> Result<(String, u16)> {
    let (host, port) = if let Some(rest) = item.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| bad(shown, format!("sentinel `{item}` has no closing `]`")))?;
        match after {
            "" => (host, None),
            p => (
                host,
                Some(p.strip_prefix(':').ok_or_else(|| {
                    bad(
                        shown,
                        format!("sentinel `{item}`: expected `:PORT` after `]`"),
                    )
                })?),
            ),
        }
    } else {
        match item.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (item, None),
        }
    };
    if host.is_empty() {
        return Err(bad(
            shown,
            format!("sentinel `{item}` has no host (HOST:PORT, comma-separated)"),
        ));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
            bad(
                shown,
                format!("sentinel `{item}` has no valid port (1-65535)"),
            )
        })?,
    };
    Ok((host.to_owned(), port))
}

/// Parses a Sentinel URL. Errors name the URL redacted and the part at
/// fault, never a password.
pub(crate) fn parse(url: &str) -> Result<SentinelUrl> {
    let shown = crate::config::redact_url(url);
    let shown = shown.as_str();
    let tls = sentinel_scheme(url)
        .ok_or_else(|| bad(shown, "not a redis+sentinel:// or rediss+sentinel:// URL"))?;
    let rest = &url[url.find("://").map_or(0, |i| i + 3)..];
    if rest.contains('#') {
        return Err(bad(shown, "a fragment (`#…`) has no meaning here"));
    }
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, p),
        None => (rest, ""),
    };
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => {
            let (user, pass) = match u.split_once(':') {
                Some((user, pass)) => (user, Some(pass)),
                None => (u, None),
            };
            let user = Some(decode("user name", user, shown)?).filter(|s| !s.is_empty());
            let pass = pass
                .map(|p| decode("password", p, shown))
                .transpose()?
                .filter(|s| !s.is_empty());
            (user, pass)
        }
    };
    if hosts.is_empty() {
        return Err(bad(
            shown,
            "names no sentinel (redis+sentinel://HOST:PORT[,HOST:PORT…]/SERVICE)",
        ));
    }
    let sentinels = hosts
        .split(',')
        .map(|item| host_port(item, shown))
        .collect::<Result<Vec<_>>>()?;
    let mut segments = path.split('/');
    let service = decode("service name", segments.next().unwrap_or(""), shown)?;
    if service.is_empty() {
        return Err(bad(
            shown,
            "names no service: the path is the master name the sentinels monitor (…/SERVICE)",
        ));
    }
    let db = match segments.next() {
        None | Some("") => 0,
        Some(d) => d.parse::<i64>().ok().filter(|d| *d >= 0).ok_or_else(|| {
            bad(
                shown,
                format!("database `{d}` is not a number (…/SERVICE/DB)"),
            )
        })?,
    };
    if segments.next().is_some() {
        return Err(bad(
            shown,
            "too many path segments (expected /SERVICE or /SERVICE/DB)",
        ));
    }
    let mut parsed = SentinelUrl {
        sentinels,
        service,
        username,
        password,
        db,
        sentinel_username: None,
        sentinel_password: None,
        tls,
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sentinel_username" => {
                parsed.sentinel_username =
                    Some(decode("sentinel_username", value, shown)?).filter(|s| !s.is_empty());
            }
            "sentinel_password" => {
                parsed.sentinel_password =
                    Some(decode("sentinel_password", value, shown)?).filter(|s| !s.is_empty());
            }
            other => {
                return Err(bad(
                    shown,
                    format!(
                        "unknown option `{other}` (known: sentinel_username, sentinel_password)"
                    ),
                ));
            }
        }
    }
    Ok(parsed)
}

/// The sentinels' client for `url`, with the TLS files and credentials of
/// `cfg` for the sentinels and the data nodes.
fn sentinel_client(cfg: &RedisConfig, url: &SentinelUrl) -> Result<SentinelClient> {
    if !url.tls && cfg.tls.is_set() {
        return Err(Error::invalid(
            "redis tls",
            format!(
                "a CA, certificate or key file needs a rediss+sentinel:// URL, not {}",
                cfg.redacted_url()
            ),
        ));
    }
    let certs = if url.tls {
        crate::tls::certificates_of(&cfg.tls)?
    } else {
        None
    };
    let addrs = url.sentinels.iter().map(|(host, port)| {
        if url.tls {
            ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host.clone(), *port)
        }
    });
    let invalid = |e: RedisError| {
        if e.kind() == ErrorKind::InvalidClientConfig && certs.is_some() {
            Error::invalid(
                "redis tls",
                "the client certificate and key do not make a usable identity \
                 (is the key the certificate's?)",
            )
        } else {
            Error::invalid(
                "redis url",
                format!("cannot use {}: {}", cfg.redacted_url(), e.category()),
            )
        }
    };
    let mut b = SentinelClientBuilder::new(addrs, &url.service, SentinelServerType::Master)
        .map_err(invalid)?
        .set_client_to_redis_db(url.db);
    if let Some(u) = &url.username {
        b = b.set_client_to_redis_username(u);
    }
    if let Some(p) = &url.password {
        b = b.set_client_to_redis_password(p);
    }
    if let Some(u) = &url.sentinel_username {
        b = b.set_client_to_sentinel_username(u);
    }
    if let Some(p) = &url.sentinel_password {
        b = b.set_client_to_sentinel_password(p);
    }
    if url.tls {
        b = b
            .set_client_to_redis_tls_mode(TlsMode::Secure)
            .set_client_to_sentinel_tls_mode(TlsMode::Secure);
        if let Some(certs) = certs.clone() {
            b = b
                .set_client_to_redis_certificates(certs.clone())
                .set_client_to_sentinel_certificates(certs);
        }
    }
    b.build().map_err(invalid)
}

/// Asks the sentinels for the primary (they check it answers `ROLE` as a
/// master), within `after`.
async fn lookup(
    client: &mut SentinelClient,
    service: &str,
    after: Duration,
) -> Result<redis::Client> {
    match tokio::time::timeout(after, client.async_get_client()).await {
        Err(_) => Err(Error::Timeout {
            operation: "sentinel lookup",
            after,
        }),
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e))
            if matches!(
                e.kind(),
                ErrorKind::MasterNameNotFoundBySentinel | ErrorKind::NoValidReplicasFoundBySentinel
            ) =>
        {
            // During a failover: no sentinel names a primary that answers yet.
            Err(Error::Unavailable {
                source: format!(
                    "no sentinel knows a reachable primary of service `{service}` (a failover \
                     in progress, or a service name the sentinels do not monitor)"
                )
                .into(),
            })
        }
        Ok(Err(e)) if e.kind() == ErrorKind::InvalidClientConfig => Err(Error::invalid(
            "redis url",
            format!("cannot use the sentinels: {e}"),
        )),
        Ok(Err(e)) => Err(map_err("sentinel lookup", after, e)),
    }
}

/// The primary the store currently sends its calls to.
pub(crate) struct Target {
    /// Its connections.
    pub(crate) conn: Direct,
    /// `host:port`, for logs and to tell a new primary from the same one.
    addr: String,
}

/// Connections to the primary of a Sentinel service, replaced when the
/// sentinels name another one.
pub(crate) struct SentinelConn {
    cfg: RedisConfig,
    service: String,
    /// Held for a whole lookup: lookups run one at a time.
    sentinels: tokio::sync::Mutex<SentinelClient>,
    current: RwLock<Arc<Target>>,
    /// Lookups begun so far: a failed call needs one begun after it failed.
    lookups: AtomicU64,
    /// Primaries switched to since connect.
    switches: AtomicU64,
}

impl SentinelConn {
    /// Asks the sentinels for the primary and opens the configured
    /// connections to it.
    pub(crate) async fn open(cfg: &RedisConfig) -> Result<Arc<Self>> {
        let url = parse(&cfg.url)?;
        let mut client = sentinel_client(cfg, &url)?;
        let primary = lookup(&mut client, &url.service, cfg.connect_timeout).await?;
        let addr = primary.get_connection_info().addr().to_string();
        let conn = Direct::open(cfg, primary).await?;
        tracing::debug!(service = %url.service, primary = %addr, "redis sentinel: connected to the primary");
        let conn = Arc::new(Self {
            cfg: cfg.clone(),
            service: url.service,
            sentinels: tokio::sync::Mutex::new(client),
            current: RwLock::new(Arc::new(Target { conn, addr })),
            lookups: AtomicU64::new(0),
            switches: AtomicU64::new(0),
        });
        // Checks in the background until the store is dropped.
        if let Some(every) = cfg.sentinel_check_interval {
            let weak = Arc::downgrade(&conn);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let Some(conn) = weak.upgrade() else { return };
                    let seen = conn.lookups.load(Ordering::Acquire);
                    conn.rediscover(seen).await;
                }
            });
        }
        Ok(conn)
    }

    /// The connections to the current primary.
    pub(crate) fn target(&self) -> Arc<Target> {
        self.current.read().clone()
    }

    /// `host:port` of the primary calls go to now.
    pub(crate) fn primary(&self) -> String {
        self.current.read().addr.clone()
    }

    /// How many times the store followed a failover to another primary.
    pub(crate) fn switches(&self) -> u64 {
        self.switches.load(Ordering::Relaxed)
    }

    /// After a call failed with `e`: if retrying may help, ask the sentinels
    /// again (one lookup begun after this failure) and wait for it. The
    /// lookup runs in its own task, so a caller giving up (its timeout)
    /// does not cut it short.
    pub(crate) async fn after_failure(self: &Arc<Self>, e: &Error) {
        if !e.is_retryable() {
            return;
        }
        let seen = self.lookups.load(Ordering::Acquire);
        let me = Arc::clone(self);
        let _ = tokio::spawn(async move { me.rediscover(seen).await }).await;
    }

    async fn rediscover(&self, seen: u64) {
        let mut client = self.sentinels.lock().await;
        if self.lookups.load(Ordering::Acquire) != seen {
            // A lookup begun after the failure has finished meanwhile.
            return;
        }
        self.lookups.fetch_add(1, Ordering::AcqRel);
        let budget = self.cfg.connect_timeout + self.cfg.response_timeout;
        let primary = match lookup(&mut client, &self.service, budget).await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(service = %self.service, error = %e, "redis sentinel: lookup failed");
                return;
            }
        };
        let addr = primary.get_connection_info().addr().to_string();
        let old = self.primary();
        if addr == old {
            // The same primary: its connections reconnect by themselves.
            return;
        }
        let open = Direct::open(&self.cfg, primary);
        match tokio::time::timeout(self.cfg.connect_timeout * 2, open).await {
            Ok(Ok(conn)) => {
                *self.current.write() = Arc::new(Target {
                    conn,
                    addr: addr.clone(),
                });
                self.switches.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(service = %self.service, from = %old, to = %addr,
                    "redis sentinel: the primary changed; calls now go to the new one");
            }
            Ok(Err(e)) => {
                tracing::debug!(service = %self.service, primary = %addr, error = %e,
                    "redis sentinel: cannot connect to the primary named");
            }
            Err(_) => {
                tracing::debug!(service = %self.service, primary = %addr,
                    "redis sentinel: connecting to the primary named timed out");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(url: &str) -> String {
        parse(url).expect_err(url).to_string()
    }

    #[test]
    fn a_full_sentinel_url_parses() {
        let u = parse(
            "rediss+sentinel://alice:s%40cret@10.0.0.1:26380,[::1]:26381,sentinel-c/mymaster/2\
             ?sentinel_username=sen&sentinel_password=pw",
        )
        .unwrap();
        assert_eq!(
            u.sentinels,
            vec![
                ("10.0.0.1".to_owned(), 26380),
                ("::1".to_owned(), 26381),
                ("sentinel-c".to_owned(), DEFAULT_PORT)
            ]
        );
        assert_eq!(u.service, "mymaster");
        assert_eq!(u.db, 2);
        assert_eq!(u.username.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("s@cret"));
        assert_eq!(u.sentinel_username.as_deref(), Some("sen"));
        assert_eq!(u.sentinel_password.as_deref(), Some("pw"));
        assert!(u.tls);
        let shown = format!("{u:?}");
        assert!(
            !shown.contains("s@cret") && !shown.contains("\"pw\""),
            "{shown}"
        );
    }

    #[test]
    fn a_minimal_sentinel_url_parses() {
        let u = parse("redis+sentinel://127.0.0.1:5000/svc").unwrap();
        assert_eq!(u.sentinels, vec![("127.0.0.1".to_owned(), 5000)]);
        assert_eq!((u.service.as_str(), u.db, u.tls), ("svc", 0, false));
        assert_eq!((u.username, u.password), (None, None));
        let u = parse("REDIS+SENTINEL://:pw@h/svc/").unwrap();
        assert_eq!((u.username, u.password.as_deref()), (None, Some("pw")));
    }

    #[test]
    fn malformed_sentinel_urls_are_refused_without_their_password() {
        for (url, says) in [
            ("redis+sentinel://u:hunter2@/svc", "names no sentinel"),
            ("redis+sentinel://u:hunter2@h:1", "names no service"),
            ("redis+sentinel://u:hunter2@h:1/", "names no service"),
            ("redis+sentinel://u:hunter2@h:0/svc", "no valid port"),
            ("redis+sentinel://u:hunter2@h:x/svc", "no valid port"),
            ("redis+sentinel://u:hunter2@h:1,,h:2/svc", "has no host"),
            ("redis+sentinel://u:hunter2@[::1/svc", "no closing"),
            ("redis+sentinel://u:hunter2@h:1/svc/x", "not a number"),
            (
                "redis+sentinel://u:hunter2@h:1/svc/1/2",
                "too many path segments",
            ),
            (
                "redis+sentinel://u:hunter2@h:1/svc?db=1",
                "unknown option `db`",
            ),
            ("redis+sentinel://u:hunter2@h:1/svc#x", "fragment"),
            (
                "redis+sentinel://u:hunter2%FF@h:1/svc",
                "password is not valid",
            ),
            (
                "redis+sentinel://h:1/svc?sentinel_password=hunter2&x=1",
                "unknown option `x`",
            ),
        ] {
            let e = err(url);
            assert!(e.contains(says), "{url}: {e}");
            assert!(!e.contains("hunter2"), "{url}: {e}");
        }
    }

    #[test]
    fn only_sentinel_schemes_are_sentinel_urls() {
        assert!(is_sentinel_url("redis+sentinel://h/s"));
        assert!(is_sentinel_url("rediss+sentinel://h/s"));
        assert!(!is_sentinel_url("redis://h"));
        assert!(!is_sentinel_url("rediss://h"));
        assert!(!is_sentinel_url("redis+cluster://h"));
    }
}
