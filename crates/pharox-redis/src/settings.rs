//! Server settings checked once by [`RedisStorage::connect`](crate::RedisStorage::connect):
//! the Redis version and the `maxmemory-policy`.
//!
//! Eviction is the silent way to lose a pool: under an `allkeys-*` policy a
//! full Redis may drop any key, so a pool's counters, proxy words or lease
//! set vanish one by one. Leases are then forgotten, capacities wrap
//! and stats lie, and no call fails. The `volatile-*` policies evict only
//! keys with a TTL; pharox never sets one (no `EXPIRE`, `PEXPIRE`, `SETEX`,
//! `SET … EX|PX`, `GETEX`, `HEXPIRE` in `lua/` or in the Rust code: lease
//! expiry is a score in a sorted set, judged by the scripts), so under those
//! policies its keys are never evicted, and a full Redis refuses writes
//! (`OOM`) exactly as under `noeviction`. A test checks that a workload
//! touching every script leaves no key with a TTL.

use std::collections::HashMap;

use deadpool_redis::redis::{self, Value};
use pharox_core::{Error, Result};

use crate::config::RedisConfig;
use crate::conn::Conn;

/// `InvalidInput::field` of a connect refused for the server's version.
pub(crate) const VERSION_FIELD: &str = "redis version";
/// `InvalidInput::field` of a connect refused for the server's eviction policy.
pub(crate) const POLICY_FIELD: &str = "redis maxmemory-policy";

/// Oldest Redis (major, minor) pharox runs on.
const MIN_VERSION: (u32, u32) = (7, 0);

/// What a `maxmemory-policy` may do to pharox's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eviction {
    /// `noeviction`: a full Redis refuses writes; nothing is dropped.
    Never,
    /// `volatile-*`: only keys with a TTL, and pharox sets none.
    OnlyKeysWithTtl,
    /// `allkeys-*`: any key, pharox's included.
    AnyKey,
    /// A policy this version of pharox does not know.
    Unknown,
}

fn eviction(policy: &str) -> Eviction {
    let policy = policy.to_ascii_lowercase();
    if policy == "noeviction" {
        Eviction::Never
    } else if policy.starts_with("allkeys-") {
        Eviction::AnyKey
    } else if policy.starts_with("volatile-") {
        Eviction::OnlyKeysWithTtl
    } else {
        Eviction::Unknown
    }
}

/// `(major, minor)` of a version such as `7.2.4`.
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

/// The value of `field` in an `INFO` reply (`field:value` lines).
fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    })
}

/// Runs a read-only query; `None` when the server refuses it (an ACL, a
/// renamed or unknown command: `Error::Backend`). Connection errors and
/// timeouts are not refusals: they fail the connect.
async fn ask<T: redis::FromRedisValue>(
    conn: &Conn,
    cfg: &RedisConfig,
    cmd: &redis::Cmd,
    what: &str,
) -> Result<Option<T>> {
    match conn.query(cmd, "connect", cfg.response_timeout).await {
        Ok(v) => Ok(Some(v)),
        Err(e @ Error::Backend { .. }) => {
            tracing::debug!(url = %cfg.redacted_url(), error = %e, "redis refused {what}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Checks the server's version and eviction policy; see the module docs.
///
/// # Errors
///
/// `InvalidInput` (field [`VERSION_FIELD`]) for a server older than 7.0,
/// `InvalidInput` (field [`POLICY_FIELD`]) for an `allkeys-*` policy without
/// [`RedisConfig::allow_eviction`]; the errors of [`Conn::query`] if the
/// server does not answer.
pub(crate) async fn check(conn: &Conn, cfg: &RedisConfig) -> Result<()> {
    check_version(conn, cfg).await?;
    check_policy(conn, cfg).await
}

async fn check_version(conn: &Conn, cfg: &RedisConfig) -> Result<()> {
    let info: Option<String> =
        ask(conn, cfg, redis::cmd("INFO").arg("server"), "INFO server").await?;
    let mut version = info
        .as_deref()
        .and_then(|i| info_field(i, "redis_version"))
        .map(str::to_owned);
    if version.is_none() {
        // `INFO` is in ACL category @dangerous; `HELLO` (no arguments: the
        // protocol stays as it is) rarely is, and names the version too.
        let hello: Option<HashMap<String, Value>> =
            ask(conn, cfg, &redis::cmd("HELLO"), "HELLO").await?;
        version = hello
            .and_then(|h| h.get("version").cloned())
            .and_then(|v| redis::from_redis_value::<String>(v).ok());
    }
    match version {
        Some(version) => judge_version(&cfg.redacted_url(), &version),
        None => {
            tracing::warn!(
                url = %cfg.redacted_url(),
                "cannot read the Redis version (INFO and HELLO refused); pharox needs Redis 7.0 or newer"
            );
            Ok(())
        }
    }
}

/// Refuses a server older than [`MIN_VERSION`].
fn judge_version(url: &str, version: &str) -> Result<()> {
    match major_minor(version) {
        Some(v) if v >= MIN_VERSION => Ok(()),
        Some(_) => Err(Error::invalid(
            VERSION_FIELD,
            format!(
                "the server at {url} runs Redis {version}; pharox needs Redis 7.0 or newer: \
                 upgrade the server"
            ),
        )),
        None => {
            tracing::warn!(url = %url, version = %version, "unrecognised Redis version; pharox needs Redis 7.0 or newer");
            Ok(())
        }
    }
}

async fn check_policy(conn: &Conn, cfg: &RedisConfig) -> Result<()> {
    // `INFO memory` first: managed services that disable CONFIG allow it.
    let info: Option<String> =
        ask(conn, cfg, redis::cmd("INFO").arg("memory"), "INFO memory").await?;
    let mut policy = info
        .as_deref()
        .and_then(|i| info_field(i, "maxmemory_policy"))
        .map(str::to_owned);
    if policy.is_none() {
        let config: Option<HashMap<String, String>> = ask(
            conn,
            cfg,
            redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy"),
            "CONFIG GET maxmemory-policy",
        )
        .await?;
        policy = config.and_then(|mut c| c.remove("maxmemory-policy"));
    }
    let url = cfg.redacted_url();
    match policy {
        Some(policy) => judge_policy(&url, &policy, cfg.allow_eviction),
        None if cfg.allow_eviction => {
            tracing::debug!(url = %url, "cannot read maxmemory-policy; eviction allowed anyway");
            Ok(())
        }
        None => {
            tracing::warn!(
                url = %url,
                "cannot read maxmemory-policy (INFO and CONFIG refused): make sure it is \
                 noeviction, or volatile-*; under allkeys-* Redis may evict pharox's keys, \
                 losing leases, counters and fencing tokens silently"
            );
            Ok(())
        }
    }
}

/// Refuses (or, with `allow_eviction`, warns about) a policy that may evict
/// pharox's keys.
fn judge_policy(url: &str, policy: &str, allow_eviction: bool) -> Result<()> {
    match eviction(policy) {
        Eviction::Never => {
            tracing::debug!(url = %url, policy = %policy, "redis maxmemory-policy");
            Ok(())
        }
        Eviction::OnlyKeysWithTtl => {
            tracing::info!(
                url = %url,
                policy = %policy,
                "redis evicts only keys with a TTL under this maxmemory-policy; pharox sets no \
                 TTL on any key, so none of its keys is evicted (a full Redis refuses writes, \
                 as under noeviction)"
            );
            Ok(())
        }
        Eviction::AnyKey if allow_eviction => {
            tracing::warn!(
                url = %url,
                policy = %policy,
                "redis may evict pharox's keys under this maxmemory-policy (allowed by \
                 allow_eviction): leases, counters and fencing tokens of a pool can vanish \
                 silently when memory is full"
            );
            Ok(())
        }
        Eviction::AnyKey => Err(Error::invalid(
            POLICY_FIELD,
            format!(
                "the server at {url} runs with maxmemory-policy {policy}, which lets Redis \
                 evict any key when memory is full, pharox's included: a pool's leases, \
                 counters and proxy words would vanish silently (leases forgotten, \
                 capacities wrap). Run `CONFIG SET maxmemory-policy noeviction` (and set it \
                 in redis.conf, or `CONFIG REWRITE`, so it survives a restart), or accept \
                 the risk with RedisConfig::allow_eviction(true) (CLI: \
                 --redis-allow-eviction or PHAROX_REDIS_ALLOW_EVICTION=true)"
            ),
        )),
        Eviction::Unknown => {
            tracing::warn!(
                url = %url,
                policy = %policy,
                "unknown maxmemory-policy: pharox cannot tell whether Redis may evict its keys; \
                 noeviction is the safe choice"
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_classified() {
        for p in ["noeviction", "NoEviction"] {
            assert_eq!(eviction(p), Eviction::Never, "{p}");
        }
        for p in ["allkeys-lru", "allkeys-lfu", "allkeys-random"] {
            assert_eq!(eviction(p), Eviction::AnyKey, "{p}");
        }
        for p in [
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
        ] {
            assert_eq!(eviction(p), Eviction::OnlyKeysWithTtl, "{p}");
        }
        assert_eq!(eviction("evict-everything"), Eviction::Unknown);
    }

    #[test]
    fn versions_are_compared_by_major_and_minor() {
        assert_eq!(major_minor("7.0.15"), Some((7, 0)));
        assert_eq!(major_minor("7.2.4"), Some((7, 2)));
        assert_eq!(major_minor("8"), Some((8, 0)));
        assert_eq!(major_minor("255.255.255"), Some((255, 255)));
        assert!(major_minor("6.2.14").unwrap() < MIN_VERSION);
        assert!(major_minor("7.0.0").unwrap() >= MIN_VERSION);
        assert!(major_minor("10.0.0").unwrap() >= MIN_VERSION);
        assert_eq!(major_minor("unstable"), None);
        assert_eq!(major_minor(""), None);
    }

    #[test]
    fn servers_older_than_7_0_are_refused() {
        let e = judge_version("redis://h:1", "6.2.14").unwrap_err();
        assert!(!e.is_retryable());
        assert!(
            matches!(
                e,
                Error::InvalidInput {
                    field: VERSION_FIELD,
                    ..
                }
            ),
            "{e:?}"
        );
        let msg = e.to_string();
        for part in ["redis://h:1", "6.2.14", "7.0 or newer"] {
            assert!(msg.contains(part), "{part:?} missing from {msg}");
        }
        for ok in ["7.0.0", "7.0.15", "7.2.4", "8.0.2", "unstable"] {
            judge_version("redis://h:1", ok).unwrap();
        }
    }

    #[test]
    fn only_allkeys_policies_are_refused_unless_allowed() {
        for p in ["allkeys-lru", "allkeys-lfu", "allkeys-random"] {
            let e = judge_policy("redis://h:1", p, false).unwrap_err();
            assert!(!e.is_retryable());
            assert!(
                matches!(
                    e,
                    Error::InvalidInput {
                        field: POLICY_FIELD,
                        ..
                    }
                ),
                "{e:?}"
            );
            let msg = e.to_string();
            for part in [
                p,
                "CONFIG SET maxmemory-policy noeviction",
                "allow_eviction",
            ] {
                assert!(msg.contains(part), "{part:?} missing from {msg}");
            }
            judge_policy("redis://h:1", p, true).unwrap();
        }
        for p in [
            "noeviction",
            "volatile-lru",
            "volatile-ttl",
            "something-new",
        ] {
            judge_policy("redis://h:1", p, false).unwrap();
        }
    }

    #[test]
    fn info_fields_are_read_whole() {
        let info =
            "# Memory\r\nmaxmemory:0\r\nmaxmemory_human:0B\r\nmaxmemory_policy:allkeys-lru\r\n";
        assert_eq!(info_field(info, "maxmemory_policy"), Some("allkeys-lru"));
        assert_eq!(info_field(info, "maxmemory"), Some("0"));
        assert_eq!(info_field(info, "redis_version"), None);
    }
}
