//! Health checks through real local proxies on a private redis-server.
//!
//! The thresholds leave room for a loaded machine: a local answer counts as
//! fast below 1.5 s, and the slow proxy is slow by construction (it waits
//! 2 s before forwarding, so its latency cannot be below that).

mod support;

use std::collections::HashSet;
use std::time::Duration;

use pharox_core::testkit::Harness;
use pharox_core::{AcquireRequest, PoolId, Proxy, ProxyPool, ProxyProtocol, ProxyStatus, Storage};
use pharox_redis::testkit::RedisHarness;
use pharox_worker::{CancellationToken, HealthChecker, HealthConfig};
use support::HttpProxy;

const PASSWORD: &str = "s3cr3t-pw";
/// The allow-list for proxies on this machine (refused by default).
const LOOPBACK: &str = "127.0.0.0/8";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_mark_proxies_and_inactive_ones_are_never_leased() {
    let h = RedisHarness::start().await;
    let store = h.storage().clone();
    let pool = PoolId::from("health");
    store
        .upsert_pool(&ProxyPool::new(pool.clone()))
        .await
        .unwrap();

    let target = support::target().await;
    let working = HttpProxy::default().start().await;
    let slow = HttpProxy {
        delay: Duration::from_secs(2),
        ..HttpProxy::default()
    }
    .start()
    .await;
    let refusing = support::free_port();
    let socks = support::socks5().await;
    // Basic base64("alice:s3cr3t-pw").
    let guarded = HttpProxy {
        require: Some("Basic YWxpY2U6czNjcjN0LXB3".into()),
        ..HttpProxy::default()
    }
    .start()
    .await;

    let add = |id: &str, port: u16, protocol: ProxyProtocol| {
        Proxy::new(pool.clone(), "127.0.0.1", port, protocol)
            .with_id(id)
            .with_max_concurrency(1)
    };
    let proxies = [
        add("working", working.port(), ProxyProtocol::Http),
        add("slow", slow.port(), ProxyProtocol::Http),
        add("refusing", refusing, ProxyProtocol::Http),
        add("socks5", socks.port(), ProxyProtocol::Socks5),
        add("credentials", guarded.port(), ProxyProtocol::Http).with_credentials("alice", PASSWORD),
        add("wrong-password", guarded.port(), ProxyProtocol::Http)
            .with_credentials("alice", "not-the-password"),
    ];
    for p in &proxies {
        store.upsert_proxy(p).await.unwrap();
    }

    let checker = HealthChecker::new(HealthConfig {
        target: format!("http://{target}/ping"),
        timeout: Duration::from_secs(10),
        slow_threshold: Duration::from_millis(1500),
        failures_to_inactive: 1,
        concurrency: 4,
        // The test's proxies listen on loopback: allowed here only.
        proxy_hosts: LOOPBACK.parse().unwrap(),
    })
    .unwrap();
    let rows = checker
        .run_pass(&store, &pool, &CancellationToken::new())
        .await
        .unwrap();
    let got: Vec<(&str, ProxyStatus)> = rows.iter().map(|r| (r.proxy.as_str(), r.after)).collect();
    assert_eq!(
        got,
        vec![
            ("working", ProxyStatus::Active),
            ("slow", ProxyStatus::Slow),
            ("refusing", ProxyStatus::Inactive),
            ("socks5", ProxyStatus::Active),
            ("credentials", ProxyStatus::Active),
            ("wrong-password", ProxyStatus::Inactive),
        ],
        "rows: {rows:#?}"
    );
    for r in &rows {
        assert!(r.applied);
        let stored = store.get_proxy(&pool, &r.proxy).await.unwrap().unwrap();
        assert_eq!(stored.status, r.after, "{} in the store", r.proxy);
        assert!(stored.checked_at.is_some());
        if r.after == ProxyStatus::Slow {
            assert!(r.latency_ms.unwrap() >= 1500, "{r:?}");
        }
        // I8: the password never reaches a result, wherever the check failed.
        let text = format!("{r:?} {}", r.error.clone().unwrap_or_default());
        assert!(!text.contains(PASSWORD), "password leaked: {text}");
    }
    let wrong = rows
        .iter()
        .find(|r| r.proxy.as_str() == "wrong-password")
        .unwrap();
    assert!(wrong.error.as_deref().unwrap().contains("407"), "{wrong:?}");

    // Only active proxies are leased from now on: take every free slot.
    let mut leased = HashSet::new();
    let req = AcquireRequest::new(pool.clone()).consumer("t");
    while let Some(lease) = store.acquire(&req).await.unwrap() {
        leased.insert(lease.proxy.id.as_str().to_owned());
    }
    let want: HashSet<String> = ["working", "socks5", "credentials"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(leased, want);

    // A second failing pass keeps counting; a recovered proxy comes back.
    let failing = Proxy {
        port: refusing,
        ..store
            .get_proxy(&pool, &"refusing".into())
            .await
            .unwrap()
            .unwrap()
    };
    let _fixed = HttpProxy::default().start().await;
    let moved = Proxy {
        port: _fixed.port(),
        ..failing
    };
    store.upsert_proxy(&moved).await.unwrap();
    let rows = checker
        .run_pass(&store, &pool, &CancellationToken::new())
        .await
        .unwrap();
    let back = rows
        .iter()
        .find(|r| r.proxy.as_str() == "refusing")
        .unwrap();
    assert_eq!(
        (back.before, back.after, back.failures),
        (ProxyStatus::Inactive, ProxyStatus::Active, 0)
    );
}

#[tokio::test]
async fn failures_below_the_streak_keep_the_status() {
    let h = RedisHarness::start().await;
    let store = h.storage().clone();
    let pool = PoolId::from("streak");
    store
        .upsert_pool(&ProxyPool::new(pool.clone()))
        .await
        .unwrap();
    let dead = support::free_port();
    store
        .upsert_proxy(
            &Proxy::new(pool.clone(), "127.0.0.1", dead, ProxyProtocol::Socks5).with_id("dead"),
        )
        .await
        .unwrap();
    let target = support::target().await;
    let checker = HealthChecker::new(HealthConfig {
        failures_to_inactive: 3,
        timeout: Duration::from_secs(10),
        proxy_hosts: LOOPBACK.parse().unwrap(),
        ..HealthConfig::new(format!("http://{target}/"))
    })
    .unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let rows = checker
            .run_pass(&store, &pool, &CancellationToken::new())
            .await
            .unwrap();
        seen.push((rows[0].after, rows[0].failures));
    }
    assert_eq!(
        seen,
        vec![
            (ProxyStatus::Active, 1),
            (ProxyStatus::Active, 2),
            (ProxyStatus::Inactive, 3)
        ]
    );
}

#[test]
fn bad_configurations_are_refused() {
    for (config, field) in [
        (HealthConfig::new("not a url"), "health.target"),
        (HealthConfig::new("ftp://x/"), "health.target"),
        (
            HealthConfig {
                failures_to_inactive: 0,
                ..HealthConfig::new("http://x/")
            },
            "health.failures_to_inactive",
        ),
        (
            HealthConfig {
                concurrency: 0,
                ..HealthConfig::new("http://x/")
            },
            "health.concurrency",
        ),
        (
            HealthConfig {
                timeout: Duration::ZERO,
                ..HealthConfig::new("http://x/")
            },
            "health.timeout",
        ),
    ] {
        match HealthChecker::new(config) {
            Err(pharox_core::Error::InvalidInput { field: f, .. }) => assert_eq!(f, field),
            Err(e) => panic!("{field}: unexpected {e}"),
            Ok(_) => panic!("{field}: accepted"),
        }
    }
}
