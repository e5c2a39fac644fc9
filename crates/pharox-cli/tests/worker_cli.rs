//! `pharox worker`, `pharox health-check` and `pharox stats` as users run them,
//! on a private redis-server.

#[path = "../../pharox-worker/tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pharox_core::invariants::check_snapshot;
use pharox_core::{PoolId, Proxy, ProxyProtocol, Storage};
use pharox_redis::testkit::RedisServer;
use pharox_redis::{RedisConfig, RedisStorage};

/// The `pharox` binary, without the allow-list of the environment running
/// the tests.
fn pharox() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("pharox"));
    cmd.env_remove("PHAROX_ALLOW_PROXY_HOSTS");
    cmd
}

/// Runs `pharox args` with `PHAROX_ALLOW_PROXY_HOSTS=allow`, like [`run`].
async fn run_allowing(allow: &'static str, args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        pharox()
            .env("PHAROX_ALLOW_PROXY_HOSTS", allow)
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// Runs `pharox args` to completion off the async runtime (the test's own
/// proxies keep serving meanwhile).
async fn run(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || pharox().args(&args).output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_exits_cleanly_on_sigterm_in_the_middle_of_a_sweep() {
    let server = RedisServer::start();
    let store = RedisStorage::connect(RedisConfig::new(server.url()))
        .await
        .unwrap();
    let pool = PoolId::from("sigterm");
    support::seed(&store, &pool, 100, 100).await;
    let ttl = Duration::from_millis(3000);
    support::abandon_leases(&store, &pool, 10_000, ttl, 32).await;
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    // On a slow machine acquires may already have reclaimed a few.
    let before = store.pool_stats(&pool).await.unwrap().expired_leases;

    // One lease per batch, so the first sweep takes a while.
    let mut child = pharox()
        .args([
            "worker",
            "--redis-url",
            &server.url(),
            "--sweep-interval",
            "100ms",
        ])
        .args([
            "--jitter",
            "0",
            "--sweep-batch",
            "1",
            "--metrics-addr",
            "off",
        ])
        .args(["--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let swept_when_signalled = loop {
        let n = store.pool_stats(&pool).await.unwrap().expired_leases;
        if n > before {
            break n;
        }
        assert!(Instant::now() < deadline, "the sweep never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(swept_when_signalled < 10_000, "the sweep was already over");
    let signalled = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        // Prompt in practice; the bound only tells a hang from a busy machine.
        assert!(
            signalled.elapsed() < Duration::from_secs(30),
            "still running 30 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(
        log.contains("SIGTERM received") && log.contains("worker stopped"),
        "{log}"
    );

    // Stopped mid-sweep, with nothing half done.
    let stats = store.pool_stats(&pool).await.unwrap();
    assert!(stats.expired_leases < 10_000, "{stats:?}");
    assert_eq!(stats.active_leases + stats.expired_leases, 10_000);
    let violations = check_snapshot(&store.pool_snapshot(&pool).await.unwrap(), false);
    assert!(violations.is_empty(), "{violations:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_prints_a_table_and_stats_reads_the_history() {
    let server = RedisServer::start();
    let url = server.url();
    let store = RedisStorage::connect(RedisConfig::new(url.clone()))
        .await
        .unwrap();
    let pool = PoolId::from("hc");
    support::seed(&store, &pool, 0, 1).await;
    let target = support::target().await;
    let guarded = support::HttpProxy {
        require: Some("Basic YWxpY2U6czNjcjN0LXB3".into()),
        ..Default::default()
    }
    .start()
    .await;
    let refused = support::free_port();
    for (id, port) in [("good", guarded.port()), ("gone", refused)] {
        let p = Proxy::new(pool.clone(), "127.0.0.1", port, ProxyProtocol::Http)
            .with_id(id)
            .with_credentials("alice", "s3cr3t-pw");
        store.upsert_proxy(&p).await.unwrap();
    }

    let health_check: Vec<String> = vec![
        "health-check".into(),
        "--redis-url".into(),
        url.clone(),
        "--pool".into(),
        "hc".into(),
        "--health-target".into(),
        format!("http://{target}/"),
        // A local answer is fast (and not "slow") even on a loaded machine.
        "--health-timeout".into(),
        "10s".into(),
        "--slow-threshold".into(),
        "10s".into(),
    ];
    // The test's proxies are on loopback, refused unless allowed.
    let out = run_allowing("127.0.0.0/8", health_check.clone()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = |id: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no row for {id}:\n{stdout}"))
            .to_owned()
    };
    assert!(line("good").contains("active -> active"), "{stdout}");
    assert!(line("gone").contains("active -> inactive"), "{stdout}");
    assert!(
        stdout.contains("2 checked: 1 active, 0 slow, 1 inactive"),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cr3t") && !stderr.contains("s3cr3t"));

    // `stats` live, then the history a worker would have written.
    let live = run(vec![
        "stats".into(),
        "--redis-url".into(),
        url.clone(),
        "--pool".into(),
        "hc".into(),
    ])
    .await;
    let live = String::from_utf8_lossy(&live.stdout).into_owned();
    assert!(
        live.contains("pool hc: proxies 2 (active 1, available 1, leased 0)"),
        "{live}"
    );
    for _ in 0..3 {
        let s = store.pool_stats(&pool).await.unwrap();
        store.record_stats(&s, 100).await.unwrap();
    }
    let hist = run(vec![
        "stats".into(),
        "--redis-url".into(),
        url.clone(),
        "--pool".into(),
        "hc".into(),
        "--history".into(),
        "2".into(),
        "--json".into(),
    ])
    .await;
    assert!(hist.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&hist.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["pool"], "hc");
    assert_eq!(lines[0]["total"], 2);

    // A missing pool is a clear error, not a panic.
    let missing = run(vec![
        "stats".into(),
        "--redis-url".into(),
        url,
        "--pool".into(),
        "nope".into(),
    ])
    .await;
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope"));

    // Without the allow-list, loopback proxies fail their check unconnected.
    let out = run(health_check).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let good = stdout.lines().find(|l| l.starts_with("good")).unwrap();
    assert!(good.contains("active -> inactive"), "{stdout}");
    assert!(
        good.contains("`127.0.0.1` is a loopback address (127.0.0.0/8)")
            && good.contains("allow them with --allow-proxy-hosts"),
        "{stdout}"
    );
}

#[test]
fn worker_flags_are_checked_before_connecting() {
    for (args, needle) in [
        (vec!["--sweep-interval", "soon"], "sweep-interval"),
        (vec!["--metrics-addr", "nowhere"], "--metrics-addr"),
        (vec!["--log-format", "xml"], "log-format"),
        (
            vec!["--allow-proxy-hosts", "127.0.0.1/8"],
            "did you mean 127.0.0.0/8?",
        ),
        (vec!["--allow-proxy-hosts", "proxy.corp"], "list those"),
    ] {
        let out = pharox()
            .arg("worker")
            .args(["--redis-url", "redis://127.0.0.1:1"])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
