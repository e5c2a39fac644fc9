//! ACL users (the README's "Redis ACL users"): `AUTH` with a username in
//! both connection modes, nothing refused under the documented rules (the
//! server's `ACL LOG` stays empty), the README showing exactly the rules
//! the code and tests use, and a user missing one permission getting a
//! clear, non-retryable error naming what is missing, never the password.

mod acl_support;

use acl_support::PASSWORD;
use chrono::TimeDelta;
use pharox_core::{AcquireRequest, Error, PoolId, ProxyPool, Storage};
use pharox_redis::redis::{self, Value};
use pharox_redis::testkit::RedisServer;
use pharox_redis::{ConnectionMode, RedisStorage, acl};

/// An inspector user for reading `ACL LOG`: the tests' own, not pharox's.
const ADMIN: (&str, &str) = ("admin", "~* &* +@all");

/// The client rule without `+command`.
fn client_rule_without(command: &str) -> String {
    let rule = acl::client_rule("pharox");
    let without = rule.replace(&format!(" +{command}"), "");
    assert_ne!(rule, without, "{command} is in the client rule");
    without
}

/// A pool with one proxy, leased and released once: scripts, registry
/// reads and writes, stats.
async fn workload(store: &RedisStorage) -> pharox_core::Result<()> {
    let pool = PoolId::from("acl");
    store.upsert_pool(&ProxyPool::new(pool.clone())).await?;
    store
        .upsert_proxy(&pharox_core::testkit::proxy(&pool, "p1", 1))
        .await?;
    let req = AcquireRequest::new(pool.clone()).duration(TimeDelta::seconds(30));
    let lease = store.acquire(&req).await?.expect("a free proxy");
    store.release(&lease).await?;
    store.cleanup_expired(&pool, 10).await?;
    let stats = store.pool_stats(&pool).await?;
    assert_eq!((stats.total, stats.active_leases), (1, 0));
    store.list_pools().await?;
    Ok(())
}

/// The entries of the server's `ACL LOG` (what it refused), as text.
async fn acl_log(server: &RedisServer) -> Vec<String> {
    let client = redis::Client::open(acl_support::url(server, ADMIN.0)).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let log: Vec<Value> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut con)
        .await
        .unwrap();
    log.into_iter().map(|e| format!("{e:?}")).collect()
}

/// `e` is an ACL refusal: not retryable, names `what`, points at the
/// README, and never shows the password.
fn assert_refusal(e: &Error, what: &str) {
    let text = format!("{e} / {e:?}");
    assert!(!e.is_retryable(), "a refusal is not retryable: {text}");
    assert!(text.contains(what), "names {what}: {text}");
    assert!(
        text.contains("Redis ACL users"),
        "points at the README: {text}"
    );
    assert!(text.contains("NOPERM"), "{text}");
    assert!(!text.contains(PASSWORD), "never the password: {text}");
    let source = std::error::Error::source(e).expect("a source");
    assert!(
        source.downcast_ref::<acl::AclRefusal>().is_some(),
        "an AclRefusal: {text}"
    );
}

#[tokio::test]
async fn a_user_with_the_client_rule_works_in_both_modes_and_is_never_refused() {
    let server = acl_support::server(&[("pharox", &acl::client_rule("pharox")), ADMIN]);
    for mode in [
        ConnectionMode::Multiplexed { connections: 2 },
        ConnectionMode::Pooled { size: 4 },
    ] {
        let store = RedisStorage::connect(acl_support::config(&server, "pharox").mode(mode))
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        workload(&store)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        // The worker's history is a read of the client's too.
        store.stats_history(&PoolId::from("acl"), 5).await.unwrap();
    }
    let log = acl_log(&server).await;
    // Redis 7.2+ receives CLIENT SETINFO on each connection (the driver
    // ignores its refusal); nothing else may be refused.
    let refused: Vec<_> = log.iter().filter(|e| !e.contains("setinfo")).collect();
    assert!(refused.is_empty(), "the server refused: {refused:?}");
}

#[tokio::test]
async fn the_acl_setuser_form_grants_the_same_rule() {
    // The README's `ACL SETUSER` lines, sent by an administrator.
    let server = RedisServer::start();
    let mut admin = server.raw_connection().await;
    for (user, rule) in [
        ("pharox", acl::client_rule("pharox")),
        ("pharox-worker", acl::worker_rule("pharox")),
    ] {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER")
            .arg(user)
            .arg("on")
            .arg(format!(">{PASSWORD}"));
        for word in rule.split(' ') {
            cmd.arg(word);
        }
        let () = cmd.query_async(&mut admin).await.unwrap();
    }
    let url = |user: &str| format!("redis://{user}:{PASSWORD}@127.0.0.1:{}", server.port());
    for user in ["pharox", "pharox-worker"] {
        let store = RedisStorage::connect(pharox_redis::RedisConfig::new(url(user)))
            .await
            .unwrap();
        workload(&store).await.unwrap();
    }
    let worker = RedisStorage::connect(pharox_redis::RedisConfig::new(url("pharox-worker")))
        .await
        .unwrap();
    let stats = worker.pool_stats(&PoolId::from("acl")).await.unwrap();
    worker.record_stats(&stats, 10).await.unwrap();
    // The client rule does not write the history.
    let client = RedisStorage::connect(pharox_redis::RedisConfig::new(url("pharox")))
        .await
        .unwrap();
    let e = client.record_stats(&stats, 10).await.unwrap_err();
    assert_refusal(&e, "`xadd`");
}

#[tokio::test]
async fn a_user_without_evalsha_is_told_so_in_both_modes() {
    let rule = client_rule_without("evalsha");
    let server = acl_support::server(&[("pharox", &rule)]);
    for mode in [
        ConnectionMode::Multiplexed { connections: 1 },
        ConnectionMode::Pooled { size: 2 },
    ] {
        // Connecting needs no script: the first call that runs one fails.
        let store = RedisStorage::connect(acl_support::config(&server, "pharox").mode(mode))
            .await
            .unwrap();
        let e = workload(&store).await.unwrap_err();
        assert_refusal(&e, "`evalsha`");
        // The README quotes this very message.
        let readme = include_str!("../../../README.md");
        assert!(readme.contains(&e.to_string()), "the README quotes: {e}");
    }
}

#[tokio::test]
async fn a_key_pattern_that_excludes_the_prefix_is_reported_as_a_key_refusal() {
    let rule = acl::client_rule("pharox").replace("~pharox:*", "~other:*");
    let server = acl_support::server(&[("pharox", &rule)]);
    let store = RedisStorage::connect(acl_support::config(&server, "pharox"))
        .await
        .unwrap();
    let e = workload(&store).await.unwrap_err();
    assert_refusal(&e, "key pattern `~<prefix>:*`");
    // The same user under the prefix its pattern allows works.
    let store = RedisStorage::connect(acl_support::config(&server, "pharox").prefix("other"))
        .await
        .unwrap();
    workload(&store).await.unwrap();
}

#[tokio::test]
async fn a_command_refused_inside_a_script_is_reported_as_a_refusal() {
    // ZADD is called only by the scripts (never sent by the adapter).
    let rule = client_rule_without("zadd");
    let server = acl_support::server(&[("pharox", &rule)]);
    let store = RedisStorage::connect(acl_support::config(&server, "pharox"))
        .await
        .unwrap();
    let e = workload(&store).await.unwrap_err();
    // Redis 7.0 does not name the command a script was refused; 7.2+ does.
    let text = e.to_string();
    let what = if text.contains("`zadd`") {
        "`zadd`"
    } else {
        "a command a pharox script calls"
    };
    assert_refusal(&e, what);
}

#[tokio::test]
async fn a_wrong_password_fails_the_connect_without_showing_it() {
    let server = acl_support::server(&[("pharox", &acl::client_rule("pharox"))]);
    for mode in [
        ConnectionMode::Multiplexed { connections: 1 },
        ConnectionMode::Pooled { size: 2 },
    ] {
        let url = format!("redis://pharox:not-{PASSWORD}@127.0.0.1:{}", server.port());
        let e = RedisStorage::connect(pharox_redis::RedisConfig::new(url).mode(mode))
            .await
            .unwrap_err();
        let text = format!("{e} / {e:?}");
        assert!(!e.is_retryable(), "{mode:?}: {text}");
        assert!(
            text.to_lowercase().contains("authentication failed"),
            "{mode:?}: {text}"
        );
        assert!(!text.contains(PASSWORD), "{mode:?}: {text}");
    }
}

#[test]
fn the_readme_shows_the_rules_the_tests_use() {
    let readme = include_str!("../../../README.md");
    for (user, rule) in [
        ("pharox", acl::client_rule("pharox")),
        ("pharox-worker", acl::worker_rule("pharox")),
    ] {
        let setuser = format!("ACL SETUSER {user} on >CHANGE-ME {rule}");
        let aclfile = format!("user {user} on >CHANGE-ME {rule}");
        assert!(readme.contains(&setuser), "the README lacks:\n{setuser}");
        assert!(readme.contains(&aclfile), "the README lacks:\n{aclfile}");
    }
}
