//! `pharox worker` as a Redis ACL user with exactly the documented worker
//! rule (`pharox_redis::acl::worker_rule`, the README's "Redis ACL users"),
//! the default user disabled: the sweep, the health checks and the stats
//! history all work, and the server refuses nothing (`ACL LOG` stays empty).

mod support;

use std::time::Duration;

use pharox_core::testkit::wait_for;
use pharox_core::{PoolId, Proxy, ProxyId, ProxyProtocol, Storage};
use pharox_redis::redis::{self, Value};
use pharox_redis::testkit::RedisServer;
use pharox_redis::{RedisConfig, RedisStorage, acl};
use pharox_worker::{CancellationToken, HealthConfig, Worker, WorkerConfig};
use support::HttpProxy;

const PASSWORD: &str = "worker-acl-s3cret";

/// A server whose aclfile defines `users` with [`PASSWORD`] and disables
/// the default user.
fn acl_server(users: &[(&str, String)]) -> RedisServer {
    let users: Vec<(&str, &str)> = users.iter().map(|(n, r)| (*n, r.as_str())).collect();
    RedisServer::start_with_users(&users, PASSWORD)
}

fn url(server: &RedisServer, user: &str) -> String {
    format!("redis://{user}:{PASSWORD}@127.0.0.1:{}", server.port())
}

async fn store(server: &RedisServer, user: &str) -> RedisStorage {
    RedisStorage::connect(
        RedisConfig::new(url(server, user)).response_timeout(Duration::from_secs(30)),
    )
    .await
    .unwrap_or_else(|e| panic!("connect as {user}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_rule_is_enough_to_sweep_check_and_record_history() {
    let server = acl_server(&[
        ("pharox", acl::client_rule("pharox")),
        ("pharox-worker", acl::worker_rule("pharox")),
        ("admin", "~* &* +@all".to_owned()),
    ]);
    let client = store(&server, "pharox").await;
    let pool = PoolId::from("acl");
    support::seed(&client, &pool, 3, 2).await;
    // One proxy the health checker can reach, through a local HTTP proxy.
    let target = support::target().await;
    let proxy = HttpProxy::default().start().await;
    client
        .upsert_proxy(
            &Proxy::new(pool.clone(), "127.0.0.1", proxy.port(), ProxyProtocol::Http)
                .with_id("checked")
                .with_max_concurrency(1),
        )
        .await
        .unwrap();
    // A crashed client's leases, for the sweeper.
    support::abandon_leases(&client, &pool, 4, Duration::from_millis(200), 2).await;

    let worker_store = store(&server, "pharox-worker").await;
    let worker = Worker::new(
        worker_store.clone(),
        WorkerConfig {
            sweep_interval: Duration::from_millis(100),
            jitter: 0.0,
            history_len: 50,
            health: Some(HealthConfig {
                target: format!("http://{target}/ping"),
                timeout: Duration::from_secs(10),
                slow_threshold: Duration::from_secs(5),
                failures_to_inactive: 1,
                concurrency: 2,
                proxy_hosts: "127.0.0.0/8".parse().unwrap(),
            }),
            health_interval: Duration::from_millis(200),
            ..WorkerConfig::default()
        },
    );
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));

    wait_for("the sweeper reclaiming the abandoned leases", || async {
        let s = client.pool_stats(&pool).await.unwrap();
        (s.active_leases == 0 && s.expired_leases == 4).then_some(())
    })
    .await;
    wait_for("a health check applied to the reachable proxy", || async {
        let p = client
            .get_proxy(&pool, &ProxyId::from("checked"))
            .await
            .unwrap()?;
        p.checked_at.map(|_| ())
    })
    .await;
    wait_for("the stats history recorded", || async {
        let history = worker_store.stats_history(&pool, 5).await.unwrap();
        (!history.is_empty()).then_some(())
    })
    .await;
    stop.cancel();
    running.await.unwrap().unwrap();

    let admin = redis::Client::open(url(&server, "admin")).unwrap();
    let mut con = admin.get_multiplexed_async_connection().await.unwrap();
    let log: Vec<Value> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut con)
        .await
        .unwrap();
    // Redis 7.2+ receives CLIENT SETINFO (the driver ignores a refusal).
    let refused: Vec<String> = log
        .iter()
        .map(|e| format!("{e:?}"))
        .filter(|e| !e.contains("setinfo"))
        .collect();
    assert!(refused.is_empty(), "the server refused: {refused:?}");
}
