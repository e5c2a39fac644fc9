//! Failover through Redis Sentinel, each test on its own topology (a
//! primary, a replica, 3 sentinels on loopback):
//!
//! - the primary killed (SIGKILL) under acquire/release load from several
//!   clients, in both connection modes: every client carries on against the
//!   new primary within a bounded time, no call outlives its timeout (plus
//!   scheduling slack), and every error in the gap is retryable;
//! - the same over TLS (`rediss+sentinel://`, every node and sentinel on
//!   TLS only, mutual TLS), and as an ACL user with the documented client
//!   rule on data nodes whose default user is off;
//! - a graceful failover (`SENTINEL FAILOVER`): the old primary stays up as
//!   a replica and answers writes with `READONLY`, which must lead the
//!   clients to the new primary rather than wedge them;
//! - a write on a replica is `Unavailable` (nothing applied), not a
//!   non-retryable backend error;
//! - `connect` through sentinels that cannot name a primary (an unknown
//!   service, no sentinel listening) fails retryably, in bounded time,
//!   without quoting a password.
//!
//! Replication is asynchronous, so a failover may lose the last acquires
//! (what was seen is printed; run with `--nocapture`); after a primary is
//! killed, every token the new primary grants is above every token granted
//! before. `durability` makes the loss certain and checks tokens and
//! acknowledged acquires across it.

mod churn;
mod durability;
#[path = "../tls_pki/mod.rs"]
mod tls_pki;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pharox_core::testkit::{
    Harness, PATIENCE, add, new_pool, proxy, request, retry_while_retryable,
};
use pharox_core::{Error, PoolId, ReleaseOutcome, Storage};
use pharox_redis::testkit::{RedisHarness, RedisServer, SentinelTopology};
use pharox_redis::{ConnectionMode, RedisConfig, RedisStorage};
use tokio::sync::Mutex;

/// Each client call's budget: the bound "no call hangs" is checked against.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Scheduling slack on a loaded machine, on top of a call's budget.
const SLACK: Duration = Duration::from_secs(3);

/// The stores' default background check.
const EVERY_SECOND: Option<Duration> = Some(Duration::from_secs(1));

/// Clients, each with its own store (its own connections).
const CLIENTS: usize = 4;

/// What one client saw.
#[derive(Debug, Default)]
struct Seen {
    /// (when, token, on a primary found after a failover) of each granted
    /// lease: the store had switched primaries before the call began.
    grants: Vec<(Instant, u64, bool)>,
    /// (when, retryable, message) of each failed call.
    errors: Vec<(Instant, bool, String)>,
    /// The longest call.
    longest: Duration,
    /// Releases of a granted lease that did not find it (lost in the failover).
    lost_releases: usize,
    /// Acquires that found no free proxy.
    empty: usize,
}

fn config(url: String, mode: ConnectionMode, check: Option<Duration>) -> RedisConfig {
    RedisConfig::new(url)
        .mode(mode)
        .sentinel_check_interval(check)
        .response_timeout(CALL_TIMEOUT)
        .connect_timeout(Duration::from_secs(1))
}

/// Acquire/release cycles until `stop`, recording into `seen`.
async fn client(store: RedisStorage, pool: PoolId, stop: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>) {
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let switched = store.sentinel_switches() > 0;
        let got = store.acquire(&request(&pool)).await;
        let took = started.elapsed();
        let mut s = seen.lock().await;
        s.longest = s.longest.max(took);
        match got {
            Ok(Some(lease)) => {
                s.grants.push((Instant::now(), lease.token, switched));
                drop(s);
                let started = Instant::now();
                let released = store.release(&lease).await;
                let mut s = seen.lock().await;
                s.longest = s.longest.max(started.elapsed());
                match released {
                    Ok(ReleaseOutcome::Released) => {}
                    Ok(_) => s.lost_releases += 1,
                    Err(e) => s
                        .errors
                        .push((Instant::now(), e.is_retryable(), e.to_string())),
                }
            }
            Ok(None) => s.empty += 1,
            Err(e) => {
                s.errors
                    .push((Instant::now(), e.is_retryable(), e.to_string()));
                drop(s);
                // A caller's backoff (ProxyManager retries with one).
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Load from [`CLIENTS`] clients across `fail` (which starts the
/// failover and returns the old primary's port); checks they all resume on
/// the new primary in bounded time, no call hangs, and the gap's errors are
/// retryable. Prints what was measured.
/// The kind of topology a failover test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Plain,
    /// Every node and sentinel on TLS only, mutual TLS.
    Tls,
    /// The data nodes with ACL users only; clients with the documented
    /// client rule.
    Acl,
}

async fn clients_carry_on_across(
    flavor: Flavor,
    mode: ConnectionMode,
    check: Option<Duration>,
    what: &str,
    fail: impl FnOnce(&mut SentinelTopology) -> u16,
) {
    let pki = (flavor == Flavor::Tls).then(tls_pki::Pki::new);
    let client_rule = pharox_redis::acl::client_rule("pharox-sentinel-*");
    let mut topology = tokio::task::block_in_place(|| match (&pki, flavor) {
        (Some(pki), _) => SentinelTopology::start_tls("pharox-failover", pki.node()),
        (None, Flavor::Acl) => SentinelTopology::start_with_users(
            "pharox-failover",
            &[("pharox", &client_rule)],
            "failover-acl-s3cret",
            "pharox",
        ),
        (None, _) => SentinelTopology::start("pharox-failover"),
    });
    let admin = RedisHarness::on_sentinel(&topology, |c| c.mode(mode)).await;
    let pool = new_pool(&admin, "failover").await;
    for i in 0..32 {
        add(
            &admin,
            proxy(&pool, &format!("p{i}"), i).with_max_concurrency(2),
        )
        .await;
    }
    let prefix = admin.storage().config().prefix.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let mut stores = Vec::new();
    let mut tasks = Vec::new();
    let mut seen = Vec::new();
    for _ in 0..CLIENTS {
        let mut cfg = config(topology.client_url(), mode, check).prefix(prefix.clone());
        if let Some(tls) = topology.tls() {
            cfg = cfg
                .tls_ca_file(&tls.ca)
                .tls_client_cert(&tls.cert, &tls.key);
        }
        let store = RedisStorage::connect(cfg)
            .await
            .expect("connect a client through the sentinels");
        let s = Arc::new(Mutex::new(Seen::default()));
        stores.push(store.clone());
        seen.push(Arc::clone(&s));
        tasks.push(tokio::spawn(client(
            store,
            pool.clone(),
            Arc::clone(&stop),
            s,
        )));
    }
    // Under way before the failover.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut all = true;
        for s in &seen {
            all &= s.lock().await.grants.len() >= 20;
        }
        if all {
            break;
        }
        assert!(Instant::now() < deadline, "the clients did not get going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let failed_at = Instant::now();
    let old = tokio::task::block_in_place(|| fail(&mut topology));
    let promoted = tokio::task::block_in_place(|| topology.wait_for_new_primary(old));
    let promoted_after = failed_at.elapsed();

    // Every client resumes: a lease granted after the failure began, on
    // the new primary (the store says where its calls go).
    let new_addr = format!("127.0.0.1:{promoted}");
    let mut resumed = Vec::new();
    for (i, s) in seen.iter().enumerate() {
        loop {
            let first = s.lock().await.grants.iter().find(|g| g.2).map(|g| g.0);
            let on_new = stores[i].sentinel_primary().as_deref() == Some(new_addr.as_str());
            if let (Some(at), true) = (first, on_new) {
                resumed.push(at.duration_since(failed_at));
                break;
            }
            if failed_at.elapsed() >= PATIENCE {
                let s = s.lock().await;
                let last: Vec<_> = s.errors.iter().rev().take(5).map(|e| &e.2).collect();
                panic!(
                    "client {i} did not resume on the new primary {new_addr} within {PATIENCE:?} \
                     (it sends to {:?}; {} grants, {} errors, {} empty acquires, the last \
                     errors: {last:?})",
                    stores[i].sentinel_primary(),
                    s.grants.len(),
                    s.errors.len(),
                    s.empty,
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // A little more load on the new primary, then stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("client task");
    }

    let mut errors = 0;
    let mut not_retryable = Vec::new();
    let mut longest = Duration::ZERO;
    let mut grants_after = Vec::new();
    let mut before_tokens = 0;
    let mut lost_releases = 0;
    let mut acknowledged = 0u64;
    let mut readonly = 0;
    for s in &seen {
        let s = s.lock().await;
        longest = longest.max(s.longest);
        lost_releases += s.lost_releases;
        acknowledged += s.grants.len() as u64;
        grants_after.extend(s.grants.iter().filter(|g| g.2).map(|g| g.1));
        before_tokens = s
            .grants
            .iter()
            .filter(|g| !g.2)
            .map(|g| g.1)
            .fold(before_tokens, u64::max);
        for (at, retryable, msg) in &s.errors {
            if *at > failed_at {
                errors += 1;
                readonly += usize::from(msg.to_lowercase().contains("read only"));
            }
            if !retryable {
                not_retryable.push(msg.clone());
            }
        }
    }
    // The admin store has been idle: its first call finds the old primary
    // gone (retryable) and asks the sentinels again.
    let (stats, _) = retry_while_retryable(PATIENCE, || admin.storage().pool_stats(&pool)).await;
    let stats = stats.expect("stats on the new primary");
    let regressions = grants_after.iter().filter(|t| **t <= before_tokens).count();
    let resumed_max = resumed.iter().max().copied().unwrap_or_default();
    let resumed_min = resumed.iter().min().copied().unwrap_or_default();
    let flavored = match flavor {
        Flavor::Plain => "",
        Flavor::Tls => ", over TLS",
        Flavor::Acl => ", as an ACL user",
    };
    eprintln!(
        "sentinel failover ({what}{flavored}, {mode:?}, background check {check:?}): sentinels promoted 127.0.0.1:{promoted} \
         {promoted_after:?} after the failure began; clients resumed on it after \
         {resumed_min:?}..{resumed_max:?}; {errors} errors in the gap ({readonly} READONLY), \
         all retryable: {}; longest call {longest:?} (budget {CALL_TIMEOUT:?}); \
         {acknowledged} leases granted, the new primary counts {} (lost: {}); \
         {} of {} tokens granted by the new primary were at or below the old one's last \
         ({before_tokens}); {lost_releases} releases found their lease gone",
        not_retryable.is_empty(),
        stats.total_leases,
        acknowledged.saturating_sub(stats.total_leases),
        regressions,
        grants_after.len(),
    );
    assert!(
        not_retryable.is_empty(),
        "errors across the failover must be retryable: {not_retryable:?}"
    );
    assert!(
        longest <= CALL_TIMEOUT + SLACK,
        "a call took {longest:?}, beyond its {CALL_TIMEOUT:?} budget"
    );
    // A killed primary grants nothing after it dies, and the new one's
    // clock has moved on: its tokens are above every earlier one. (A
    // graceful failover has a moment with two primaries, when clients
    // still on the old one are granted tokens interleaved with the new
    // one's; acknowledged acquires close it: see `durability`.)
    if what == "SIGKILL" {
        assert_eq!(
            regressions, 0,
            "tokens granted by the new primary at or below the old one's last ({before_tokens})"
        );
    }
    for s in &stores {
        assert!(
            s.sentinel_switches() >= 1,
            "a client never switched primaries"
        );
    }
    // The topology stops on drop; keep the admin store until then.
    drop(admin);
    drop(topology);
}

fn kill(t: &mut SentinelTopology) -> u16 {
    t.kill_primary()
}

fn demote(t: &mut SentinelTopology) -> u16 {
    let old = t.primary_port().expect("a primary");
    t.force_failover();
    old
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multiplexed_clients_follow_a_killed_primary_to_the_new_one() {
    clients_carry_on_across(
        Flavor::Plain,
        ConnectionMode::Multiplexed { connections: 1 },
        EVERY_SECOND,
        "SIGKILL",
        kill,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pooled_clients_follow_a_killed_primary_to_the_new_one() {
    clients_carry_on_across(
        Flavor::Plain,
        ConnectionMode::Pooled { size: 4 },
        EVERY_SECOND,
        "SIGKILL",
        kill,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multiplexed_clients_leave_a_demoted_primary_for_the_new_one() {
    clients_carry_on_across(
        Flavor::Plain,
        ConnectionMode::Multiplexed { connections: 1 },
        EVERY_SECOND,
        "SENTINEL FAILOVER",
        demote,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pooled_clients_leave_a_demoted_primary_for_the_new_one() {
    clients_carry_on_across(
        Flavor::Plain,
        ConnectionMode::Pooled { size: 4 },
        EVERY_SECOND,
        "SENTINEL FAILOVER",
        demote,
    )
    .await;
}

/// The same over TLS (`rediss+sentinel://`, mutual TLS to the sentinels
/// and the nodes): the clients find and verify the new primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pooled_clients_follow_a_killed_primary_over_tls() {
    clients_carry_on_across(
        Flavor::Tls,
        ConnectionMode::Pooled { size: 4 },
        EVERY_SECOND,
        "SIGKILL",
        kill,
    )
    .await;
}

/// The same with the data nodes' users from an aclfile (default user
/// off): the clients log in with the documented client rule, which lets
/// them check the primary's role (`ROLE`) after the failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multiplexed_clients_follow_a_killed_primary_as_an_acl_user() {
    clients_carry_on_across(
        Flavor::Acl,
        ConnectionMode::Multiplexed { connections: 1 },
        EVERY_SECOND,
        "SIGKILL",
        kill,
    )
    .await;
}

/// READONLY (a replica refusing a write) is `Unavailable`: retryable, and
/// nothing was applied; for a script (an acquire) and a command alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_a_replica_is_unavailable() {
    let primary = RedisServer::start();
    let port = primary.port().to_string();
    let mut args = pharox_redis::testkit::NO_PERSISTENCE.to_vec();
    args.extend(["--replicaof", "127.0.0.1", &port]);
    let replica = RedisServer::start_with(&args);
    let on_primary = RedisStorage::connect(RedisConfig::new(primary.url()))
        .await
        .expect("connect");
    let pool = PoolId::new("replica-writes");
    on_primary
        .upsert_pool(&pharox_core::ProxyPool::new(pool.clone()))
        .await
        .expect("pool");
    on_primary
        .upsert_proxy(&proxy(&pool, "p0", 0))
        .await
        .expect("proxy");
    let on_replica = RedisStorage::connect(RedisConfig::new(replica.url()))
        .await
        .expect("connect to the replica");
    // Wait until the pool has replicated, so the acquire gets as far as a write.
    let deadline = Instant::now() + PATIENCE;
    while on_replica.get_pool(&pool).await.ok().flatten().is_none() {
        assert!(Instant::now() < deadline, "the pool never replicated");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let acquire = on_replica.acquire(&request(&pool)).await;
    assert!(
        matches!(&acquire, Err(e @ Error::Unavailable { .. })
            if e.to_string().to_lowercase().contains("read only")),
        "{acquire:?}"
    );
    let upsert = on_replica
        .upsert_pool(&pharox_core::ProxyPool::new(PoolId::new("another")))
        .await;
    assert!(
        matches!(&upsert, Err(e) if e.request_not_sent()),
        "{upsert:?}"
    );
}

/// `connect` through sentinels that cannot help fails clearly, in bounded
/// time, retryably (a failover may be under way), and never quotes a
/// password: a service they do not monitor, and no sentinel listening.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_fails_clearly_when_the_sentinels_cannot_name_a_primary() {
    let topology = tokio::task::block_in_place(|| SentinelTopology::start("pharox-known"));
    let unknown = topology.url().replace("/pharox-known", "/no-such-service");
    let unknown = unknown.replace("redis+sentinel://", "redis+sentinel://u:hunter2@");
    let nobody = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = free.local_addr().expect("addr").port();
        drop(free);
        format!("redis+sentinel://u:hunter2@127.0.0.1:{port}/svc?sentinel_password=hunter2")
    };
    for (url, says) in [(unknown, "no-such-service"), (nobody, "")] {
        let started = Instant::now();
        let got = RedisStorage::connect(
            RedisConfig::new(url.clone()).connect_timeout(Duration::from_secs(1)),
        )
        .await;
        let took = started.elapsed();
        let e = got.expect_err("no primary to connect to");
        let text = format!("{e} {e:?}");
        assert!(e.is_retryable(), "{url}: {text}");
        assert!(text.contains(says), "{url}: {text}");
        assert!(!text.contains("hunter2"), "{url}: {text}");
        assert!(
            took < Duration::from_secs(1) + SLACK,
            "{url}: took {took:?}"
        );
    }
}

/// Without the background check, only a failure sends a store to the
/// sentinels: once they demote the old primary (it drops its clients and
/// answers `READONLY`), the clients must find the new one, not wedge.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multiplexed_clients_without_the_check_leave_a_demoted_primary_on_failure() {
    clients_carry_on_across(
        Flavor::Plain,
        ConnectionMode::Multiplexed { connections: 1 },
        None,
        "SENTINEL FAILOVER",
        demote,
    )
    .await;
}

/// As above, pooled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pooled_clients_without_the_check_leave_a_demoted_primary_on_failure() {
    clients_carry_on_across(
        Flavor::Plain,
        ConnectionMode::Pooled { size: 4 },
        None,
        "SENTINEL FAILOVER",
        demote,
    )
    .await;
}
