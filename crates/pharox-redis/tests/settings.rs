//! The server settings `RedisStorage::connect` checks: an `allkeys-*`
//! `maxmemory-policy` is refused (or, with `allow_eviction`, warned about),
//! `noeviction` and `volatile-*` are accepted, and a server that will not
//! say (renamed commands, ACL users without `INFO` or `CONFIG`) gets a
//! warning. Each test owns its `redis-server`; logs are captured per test
//! (a thread-local subscriber on a current-thread runtime).
//!
//! Older servers (below 7.0) are refused too; no such server is installed
//! here, so that decision is unit-tested in `src/settings.rs`.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pharox_core::testkit::churn::{ChurnConfig, run_churn};
use pharox_core::{Error, PoolStatsSnapshot, Storage};
use pharox_redis::testkit::{NO_PERSISTENCE, RedisServer};
use pharox_redis::{ConnectionMode, RedisConfig, RedisStorage, redis};
use tracing::subscriber::DefaultGuard;

const MODES: [ConnectionMode; 2] = [
    ConnectionMode::Multiplexed { connections: 1 },
    ConnectionMode::Pooled { size: 2 },
];

/// Password of the ACL users: it must never reach the log.
const ACL_PW: &str = "Acl-S3cret-4e5f";

/// What this test's thread logs, as text.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Captures every event of this thread at DEBUG and above until the
    /// guard drops.
    fn capture() -> (Self, DefaultGuard) {
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The lines at `level` (e.g. " WARN ").
    fn at(&self, level: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(level))
            .map(str::to_owned)
            .collect()
    }
}

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A server with `extra` arguments besides "no persistence".
fn server(extra: &[&str]) -> RedisServer {
    let args: Vec<&str> = NO_PERSISTENCE.iter().chain(extra).copied().collect();
    RedisServer::start_with(&args)
}

async fn set_policy(server: &RedisServer, policy: &str) {
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg(policy)
        .query_async(&mut server.raw_connection().await)
        .await
        .expect("CONFIG SET maxmemory-policy");
}

async fn connect(config: RedisConfig) -> pharox_core::Result<RedisStorage> {
    RedisStorage::connect(config.response_timeout(Duration::from_secs(5))).await
}

/// Fails unless `r` is the refusal of `policy`, with the reason and the fix.
fn assert_refused(r: pharox_core::Result<RedisStorage>, policy: &str, url: &str) {
    let e = match r {
        Ok(_) => panic!("connected to a server with maxmemory-policy {policy}"),
        Err(e) => e,
    };
    assert!(
        matches!(
            e,
            Error::InvalidInput {
                field: "redis maxmemory-policy",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.is_retryable(), "{e:?}");
    let msg = e.to_string();
    for part in [
        policy,
        url,
        "evict any key",
        "leases forgotten",
        "CONFIG SET maxmemory-policy noeviction",
        "allow_eviction(true)",
        "--redis-allow-eviction",
    ] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
}

#[tokio::test]
async fn allkeys_policies_are_refused_with_the_reason_and_the_fix() {
    let server = server(&["--maxmemory-policy", "allkeys-lru"]);
    for policy in ["allkeys-lru", "allkeys-lfu", "allkeys-random"] {
        set_policy(&server, policy).await;
        for mode in MODES {
            let r = connect(RedisConfig::new(server.url()).mode(mode)).await;
            assert_refused(r, policy, &server.url());
        }
    }
}

#[tokio::test]
async fn noeviction_and_volatile_policies_are_accepted() {
    let (logs, _guard) = Logs::capture();
    let server = server(&[]);
    for policy in [
        "noeviction",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    ] {
        set_policy(&server, policy).await;
        for mode in MODES {
            connect(RedisConfig::new(server.url()).mode(mode))
                .await
                .unwrap_or_else(|e| panic!("{policy}, {mode:?}: {e}"));
        }
    }
    let infos = logs.at(" INFO ");
    for policy in ["volatile-lru", "volatile-ttl"] {
        assert!(
            infos
                .iter()
                .any(|l| l.contains(policy) && l.contains("pharox sets no TTL")),
            "no info line explains why {policy} is accepted: {infos:#?}"
        );
    }
    assert_eq!(logs.at(" WARN "), Vec::<String>::new());
}

#[tokio::test]
async fn allow_eviction_turns_the_refusal_into_a_warning() {
    let (logs, _guard) = Logs::capture();
    let server = server(&["--maxmemory-policy", "allkeys-lfu"]);
    for mode in MODES {
        connect(
            RedisConfig::new(server.url())
                .mode(mode)
                .allow_eviction(true),
        )
        .await
        .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
    }
    let warnings = logs.at(" WARN ");
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    for w in &warnings {
        for part in ["allkeys-lfu", "allow_eviction", &server.url()] {
            assert!(w.contains(part), "{part:?} missing from: {w}");
        }
    }
}

#[tokio::test]
async fn renamed_info_and_config_give_a_warning_not_an_error() {
    let (logs, _guard) = Logs::capture();
    // The policy cannot be seen, so even allkeys-lru gets through.
    let server = server(&[
        "--maxmemory-policy",
        "allkeys-lru",
        "--rename-command",
        "INFO",
        "",
        "--rename-command",
        "CONFIG",
        "",
    ]);
    connect(RedisConfig::new(server.url()))
        .await
        .expect("connect without INFO and CONFIG");
    let warnings = logs.at(" WARN ");
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("cannot read maxmemory-policy"),
        "{warnings:#?}"
    );
    // The version came from HELLO, so there is no warning about it.
    assert!(!logs.text().contains("cannot read the Redis version"));
}

#[tokio::test]
async fn renamed_info_falls_back_to_config_get() {
    let server = server(&[
        "--maxmemory-policy",
        "allkeys-random",
        "--rename-command",
        "INFO",
        "",
    ]);
    let r = connect(RedisConfig::new(server.url())).await;
    assert_refused(r, "allkeys-random", &server.url());
}

#[tokio::test]
async fn acl_users_are_checked_with_what_they_may_run() {
    let (logs, _guard) = Logs::capture();
    let pw = format!(">{ACL_PW}");
    let user = |name: &'static str, rules: &'static [&'static str]| {
        let mut args = vec!["--user", name, "on", pw.as_str(), "~*", "&*"];
        args.extend_from_slice(rules);
        args
    };
    let args: Vec<&str> = [
        vec!["--maxmemory-policy", "allkeys-lru"],
        user("noinfo", &["+@all", "-info"]),
        user("nocheck", &["+@all", "-info", "-config"]),
        // A common restriction: INFO and CONFIG are both @dangerous.
        user("safe", &["+@all", "-@dangerous"]),
    ]
    .concat();
    let server = server(&args);
    let url = |user: &str| format!("redis://{user}:{ACL_PW}@127.0.0.1:{}", server.port());
    let redacted = |user: &str| format!("redis://{user}:***@127.0.0.1:{}", server.port());

    // CONFIG GET still tells.
    let r = connect(RedisConfig::new(url("noinfo"))).await;
    assert_refused(r, "allkeys-lru", &redacted("noinfo"));

    for user in ["nocheck", "safe"] {
        for mode in MODES {
            connect(RedisConfig::new(url(user)).mode(mode))
                .await
                .unwrap_or_else(|e| panic!("{user}, {mode:?}: {e}"));
        }
        let warned = logs
            .at(" WARN ")
            .iter()
            .filter(|l| l.contains("cannot read maxmemory-policy") && l.contains(&redacted(user)))
            .count();
        assert_eq!(warned, 2, "{user}: {:#?}", logs.at(" WARN "));
    }
    let text = logs.text();
    assert!(!text.contains(ACL_PW), "the password was logged (I8)");
    assert!(!text.contains("cannot read the Redis version"), "{text}");
}

/// The reason `volatile-*` policies are accepted: after a churn that runs
/// every lease operation (acquire with every selector, renew, release,
/// expiry, cleanup, health results) and the admin calls around it, no key
/// has a TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_pharox_writes_has_a_ttl() {
    let server = server(&[]);
    let storage = RedisStorage::connect(RedisConfig::new(server.url()))
        .await
        .expect("connect");
    let mut cfg = ChurnConfig::new("ttl", Duration::from_secs(1));
    cfg.tasks = 8;
    cfg.proxies = 16;
    let report = run_churn(storage.clone(), cfg).await;
    report.assert_clean();
    let pool = report.pool.clone();
    let snapshot: PoolStatsSnapshot = storage.pool_stats(&pool).await.unwrap();
    storage.record_stats(&snapshot, 10).await.unwrap();
    let proxies = storage.list_proxies(&pool).await.unwrap();
    assert!(storage.remove_proxy(&pool, &proxies[0].id).await.unwrap());

    let mut raw = server.raw_connection().await;
    let keys_with_ttl = |mut raw: redis::aio::MultiplexedConnection| async move {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut raw)
            .await
            .expect("KEYS");
        let mut with_ttl = Vec::new();
        for key in &keys {
            let ttl: i64 = redis::cmd("PTTL")
                .arg(key)
                .query_async(&mut raw)
                .await
                .expect("PTTL");
            if ttl != -1 {
                with_ttl.push(format!("{key}: PTTL {ttl}"));
            }
        }
        (keys.len(), with_ttl)
    };
    let (keys, with_ttl) = keys_with_ttl(raw.clone()).await;
    assert!(keys > 5, "only {keys} keys after a churn");
    assert_eq!(with_ttl, Vec::<String>::new());

    assert!(storage.remove_pool(&pool).await.unwrap());
    let (_, with_ttl) = keys_with_ttl(raw.clone()).await;
    assert_eq!(with_ttl, Vec::<String>::new());
    let info: String = redis::cmd("INFO")
        .arg("keyspace")
        .query_async(&mut raw)
        .await
        .expect("INFO keyspace");
    assert!(
        info.lines()
            .filter(|l| l.starts_with("db"))
            .all(|l| l.contains("expires=0,")),
        "{info}"
    );
}
