//! Invariant I8 under a full run: credentials never appear in logs, `Debug`
//! or `Display` output, errors or metrics.
//!
//! One process-wide `tracing` subscriber takes every event and span of every
//! crate at TRACE (`log` records of reqwest included), as text and as JSON,
//! into memory, while the test drives:
//!
//! - the churn of [`pharox_core::testkit::churn`] with password-protected
//!   proxies on the in-memory store, and on a `redis-server` that requires a
//!   password, killed and restarted mid-run;
//! - [`ProxyManager`] on both stores: callbacks that log their events,
//!   renewals, scoped leases (success, failure, miss), retries while Redis
//!   is down, and typed errors (bad input, lost lease, unknown pool, wrong or
//!   missing Redis password, malformed URL, server down);
//! - the worker's health checker through local HTTP and SOCKS5 proxies, with
//!   the right password and a wrong one (407), plain and tunnelled
//!   (`CONNECT`), and a [`Worker`] serving `/metrics` and `/healthz` before
//!   and after Redis dies.
//!
//! A second test does the same over TLS (`rediss://` with a password, a CA
//! file and a client certificate): the client key file's content and the
//! password are tracked secrets, through good connections in both modes and
//! every refusal (wrong CA, missing or mismatched client certificate, a
//! corrupt key file, a wrong password).
//!
//! Every secret (plain, percent-encoded as in a proxy URL or fully, base64 as
//! in a Basic-auth header) is then looked for in the captured log, in the
//! `Debug` and `Display` text of every error and of leases, proxies,
//! snapshots, configs and stores, in the metrics text and in the HTTP
//! answers. The capture is checked to be substantial and to hold the
//! redacted forms (so the test cannot pass on an empty log), and a separate
//! test proves the scanner finds a secret that does get logged.
//!
//! Serialising a proxy or a lease (serde) writes the password on purpose:
//! stores must keep it (see [`pharox_core::Secret`]). Only serde output of
//! [`Proxy::redacted`] is held to I8 here.

#[path = "../crates/pharox-worker/tests/support/mod.rs"]
mod support;
#[path = "../crates/pharox-redis/tests/tls_pki/mod.rs"]
mod tls_pki;

use std::fmt::Debug;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use parking_lot::Mutex;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use pharox_core::testkit::churn::{ChurnConfig, run_churn};
use pharox_core::testkit::{PATIENCE, settle, wait_for};
use pharox_core::{
    AcquireRequest, Error, InMemoryStorage, PoolId, PoolSnapshot, Proxy, ProxyManager, ProxyPool,
    ProxyProtocol, ProxyStatus, RetryPolicy, Storage,
};
use pharox_redis::testkit::RedisServer;
use pharox_redis::{ConnectionMode, RedisConfig, RedisStorage};
use pharox_worker::{
    CancellationToken, HealthChecker, HealthConfig, Metrics, Worker, WorkerConfig,
};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The user the churn gives its proxies.
const PROXY_USER: &str = "churn";
/// Password of every proxy in the churn and manager pools. The `/` and `@`
/// make its percent-encoded form differ from the plain one.
const PROXY_PW: &str = "Pr0xy-S3cret/9f8e@q";
/// User and password the guarded health-check proxy accepts.
const HEALTH_USER: &str = "health";
const HEALTH_PW: &str = "H3alth-S3cret:5b4a";
/// A wrong proxy password (it gets a 407): a mistyped secret is still secret.
const WRONG_PW: &str = "Wr0ng-S3cret-3a2b";
/// The `requirepass` of the private Redis.
const REDIS_PW: &str = "R3dis-S3cret-7c6d";
/// A wrong Redis password.
const WRONG_REDIS_PW: &str = "Wr0ng-R3dis-1a0b";
/// Logged on purpose by the self-check, never used elsewhere.
const MARKER_PW: &str = "M4rker-S3cret/0x@z";

/// `(name, user, password)` of every secret the main test must never see.
const SECRETS: [(&str, &str, &str); 5] = [
    ("proxy password", PROXY_USER, PROXY_PW),
    ("health proxy password", HEALTH_USER, HEALTH_PW),
    ("wrong proxy password", HEALTH_USER, WRONG_PW),
    ("redis password", "", REDIS_PW),
    ("wrong redis password", "", WRONG_REDIS_PW),
];

/// Response timeout of the Redis stores: generous, so no call times out on
/// a busy machine while the server runs (500 ms did, failing a setup call).
/// A stopped server still fails calls fast: its connections are refused.
const TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------- capture

/// Everything the process logs, as text and JSON lines, in memory.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }
}

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// The one global subscriber of this test binary, installed on first use:
/// every target at TRACE, span opening and closing included, `log` records
/// bridged (`try_init` installs the `LogTracer`).
fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let c = Capture::default();
        tracing_subscriber::registry()
            .with(EnvFilter::new("trace"))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_span_events(FmtSpan::NEW | FmtSpan::CLOSE)
                    .with_writer(c.clone()),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(c.clone()),
            )
            .try_init()
            .expect("no other subscriber in this test binary");
        c
    })
}

// ---------------------------------------------------------------- scanner

/// Standard base64 with padding, as in `Proxy-Authorization: Basic …`.
fn base64(input: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The password as [`Proxy::url`] writes it (percent-encoded userinfo).
fn in_proxy_url(user: &str, password: &str) -> String {
    let url = Proxy::new("forms", "h", 1, ProxyProtocol::Http)
        .with_credentials(user, password)
        .url();
    url.split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, pw)| pw.to_owned())
        .expect("a URL with user:password")
}

/// The forms a password can leak in: plain, percent-encoded as pharox puts
/// it in a proxy URL, fully percent-encoded, and base64 of `user:password`
/// (Basic auth) and of the password alone.
fn forms(user: &str, password: &str) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("plain", password.to_owned()),
        (
            "percent-encoded (URL userinfo)",
            in_proxy_url(user, password),
        ),
        (
            "percent-encoded (every symbol)",
            utf8_percent_encode(password, NON_ALPHANUMERIC).to_string(),
        ),
        (
            "base64 of user:password",
            base64(&format!("{user}:{password}")),
        ),
        ("base64 of the password", base64(password)),
        // Part of a password, as a parser quoting up to a special character
        // would leak it (every test password is longer than 12 bytes).
        ("first 9 bytes", password[..9].to_owned()),
    ];
    let mut seen = std::collections::HashSet::new();
    out.retain(|(_, f)| seen.insert(f.clone()));
    out
}

/// Every place a secret was found: `surface: secret (form) …context…`.
fn find_leaks(surface: &str, text: &str, secrets: &[(&str, &str, &str)]) -> Vec<String> {
    let lower = text.to_ascii_lowercase();
    let mut leaks = Vec::new();
    for (name, user, password) in secrets {
        for (form, needle) in forms(user, password) {
            // Percent-encoding may use either hex case.
            let at = if needle.contains('%') {
                lower.find(&needle.to_ascii_lowercase())
            } else {
                text.find(&needle)
            };
            if let Some(at) = at {
                let mut start = at.saturating_sub(120);
                while !text.is_char_boundary(start) {
                    start -= 1;
                }
                let mut end = (at + needle.len() + 120).min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                leaks.push(format!(
                    "{surface}: {name} ({form}) at byte {at}: …{}…",
                    &text[start..end]
                ));
            }
        }
    }
    leaks
}

/// Texts the test produced (not the log): `Debug`/`Display` of values and
/// errors, metrics, HTTP answers. All are scanned at the end.
#[derive(Default)]
struct Seen {
    texts: Vec<(String, String)>,
    errors: usize,
}

impl Seen {
    fn text(&mut self, surface: impl Into<String>, text: impl Into<String>) {
        self.texts.push((surface.into(), text.into()));
    }

    fn debug(&mut self, surface: &str, value: &impl Debug) {
        self.text(format!("Debug of {surface}"), format!("{value:?}"));
        self.text(format!("pretty Debug of {surface}"), format!("{value:#?}"));
    }

    /// An error's `Debug`, its `Display` and the `Display` of each source.
    fn error(&mut self, surface: &str, e: &Error) {
        self.errors += 1;
        tracing::debug!(surface, error = %e, detail = ?e, "error collected");
        self.debug(&format!("error from {surface}"), e);
        let mut chain = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            chain += &format!(" <- {s} / {s:?}");
            source = s.source();
        }
        self.text(format!("Display of error from {surface}"), chain);
    }

    /// Keeps the error of a call that must fail.
    fn expect_err<T: Debug>(&mut self, surface: &str, r: pharox_core::Result<T>) -> Error {
        let e = r.expect_err(surface);
        self.error(surface, &e);
        e
    }

    /// A pool snapshot: `Debug` of it and of each proxy and lease, `Display`
    /// and redacted URL of each proxy, serde of redacted proxies and of the stats.
    fn snapshot(&mut self, surface: &str, s: &PoolSnapshot) {
        self.debug(surface, s);
        for p in &s.proxies {
            self.debug(&format!("{surface} proxy {}", p.id), p);
            self.text(
                format!("Display of {surface} proxy {}", p.id),
                p.to_string(),
            );
            self.text(
                format!("redacted URL of {surface} proxy {}", p.id),
                p.redacted_url(),
            );
            self.text(
                format!("serde of redacted {surface} proxy {}", p.id),
                serde_json::to_string(&p.redacted()).expect("serialise"),
            );
        }
        for l in &s.leases {
            self.debug(&format!("{surface} lease {}", l.id), l);
            self.text(
                format!("redacted URL of {surface} lease {}", l.id),
                l.proxy.redacted_url(),
            );
        }
        self.text(
            format!("serde of {surface} stats"),
            serde_json::to_string(&s.stats).expect("serialise"),
        );
    }
}

// ---------------------------------------------------------------- scenarios

/// A proxy of the manager pools, with the churn's credentials. Its host is
/// `0.0.0.0`, which the health checker's host policy refuses without
/// connecting: the worker below checks these pools too, and a private
/// address (the testkit's `10.0.x.x`) would send connection attempts off
/// the machine.
fn guarded_proxy(pool: &PoolId, id: &str, n: u16) -> Proxy {
    Proxy {
        host: "0.0.0.0".into(),
        ..pharox_core::testkit::proxy(pool, id, n)
    }
    .with_credentials(PROXY_USER, PROXY_PW)
}

/// Drives [`ProxyManager`] through every path that logs or returns
/// something: callbacks, renewals, scoped leases, misses, typed errors.
async fn exercise_manager<S: Storage + Clone>(storage: S, pool: &str, seen: &mut Seen) {
    let pool = PoolId::from(pool);
    storage
        .upsert_pool(&ProxyPool::new(pool.clone()))
        .await
        .unwrap();
    for i in 0..3 {
        storage
            .upsert_proxy(&guarded_proxy(&pool, &format!("m{i}"), i).with_max_concurrency(1))
            .await
            .unwrap();
    }
    let cap = storage
        .upsert_proxy(&guarded_proxy(&pool, "cap", 9).with_max_concurrency(2))
        .await
        .unwrap();
    let manager = ProxyManager::with_retry(
        storage.clone(),
        RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        },
    );
    // What an application would log from its callbacks.
    manager.on_acquire(|e| tracing::info!(event = ?e, "acquire callback"));
    manager.on_release(|e| tracing::info!(event = ?e, "release callback"));
    seen.debug("manager", &manager);

    let request = AcquireRequest::new(pool.clone())
        .consumer("i8")
        .duration(TimeDelta::seconds(30));
    let mut leases = Vec::new();
    while let Some(lease) = manager.acquire(&request).await.unwrap() {
        leases.push(lease);
    }
    assert_eq!(leases.len(), 5, "3 proxies of 1 and one of 2");
    assert!(
        leases[0]
            .proxy
            .url()
            .contains(&in_proxy_url(PROXY_USER, PROXY_PW)),
        "the lease really carries the secret"
    );
    let waited = manager
        .acquire_wait(&request, Duration::from_millis(50))
        .await
        .unwrap();
    assert!(waited.is_none(), "everything is held");
    // Lowering the cap of a proxy below its live leases is refused.
    seen.expect_err(
        "lowering max_concurrency below live leases",
        storage
            .upsert_proxy(&Proxy {
                max_concurrency: Some(1),
                ..cap.clone()
            })
            .await,
    );
    for lease in &leases {
        seen.debug("lease", lease);
        seen.debug("leased proxy", &*lease.proxy);
        tracing::trace!(?lease, "holding");
    }
    let renewed = manager
        .renew(&leases[0], TimeDelta::seconds(60))
        .await
        .unwrap();
    seen.debug("renewed lease", &renewed);
    for lease in &leases {
        manager.release(lease).await.unwrap();
    }
    seen.expect_err(
        "renew after release",
        manager.renew(&leases[0], TimeDelta::seconds(5)).await,
    );

    let port = manager
        .with_lease(&request, |lease| async move {
            tracing::debug!(proxy = ?lease.proxy, "working through a scoped lease");
            Ok::<_, Error>(lease.proxy.port)
        })
        .await
        .unwrap();
    assert!(port.is_some());
    let failed = manager
        .with_lease(&request, |_lease| async move {
            Err::<(), _>(Error::invalid("work", "failed on purpose"))
        })
        .await;
    seen.expect_err("failing scoped work", failed);

    seen.expect_err(
        "acquire from an unknown pool",
        manager
            .acquire(&AcquireRequest::new(format!("{pool}-missing")))
            .await,
    );
    let long = PROXY_PW.repeat(60);
    seen.expect_err(
        "a password over the size limit",
        storage
            .upsert_proxy(
                &pharox_core::testkit::proxy(&pool, "long", 20).with_credentials("u", long),
            )
            .await,
    );
    seen.expect_err(
        "a proxy without a port",
        storage
            .upsert_proxy(&Proxy {
                port: 0,
                ..guarded_proxy(&pool, "noport", 21)
            })
            .await,
    );
    let snapshot = manager.storage().pool_snapshot(&pool).await.unwrap();
    seen.snapshot(&format!("pool {pool}"), &snapshot);
}

/// Churn and manager on the in-memory store.
async fn memory_scenario(seen: &mut Seen) {
    let storage = InMemoryStorage::new();
    let mut cfg = ChurnConfig::new("i8-memory", Duration::from_secs(2));
    cfg.password = Some(PROXY_PW.into());
    seen.debug("churn config", &cfg);
    let report = run_churn(storage.clone(), cfg).await;
    println!("memory churn: {}", report.summary());
    report.assert_clean();
    assert!(report.acquired > 100, "the churn ran: {}", report.summary());
    seen.debug("memory churn report", &report);
    let snapshot = storage.pool_snapshot(&report.pool).await.unwrap();
    churn_pool_holds_the_secret(seen, "memory churn pool", &snapshot);
    seen.debug("memory store", &storage);
    exercise_manager(storage, "i8-manager-memory", seen).await;
}

/// The churned pool really stores the secret (so its absence elsewhere
/// means something), and its snapshot goes to the scan.
fn churn_pool_holds_the_secret(seen: &mut Seen, surface: &str, snapshot: &PoolSnapshot) {
    assert!(
        snapshot.proxies.iter().all(|p| p
            .credentials
            .as_ref()
            .is_some_and(|c| c.password.expose() == PROXY_PW)),
        "every churn proxy holds the secret"
    );
    seen.snapshot(surface, snapshot);
}

/// Connection errors, churn through a crash, and the manager on Redis.
/// Returns the server and a store on it (multiplexed).
async fn redis_scenario(seen: &mut Seen) -> (RedisServer, RedisStorage) {
    let mut server = tokio::task::block_in_place(|| {
        RedisServer::start_with(&[
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            REDIS_PW,
        ])
    });
    let port = server.port();
    let url = |pw: &str| format!("redis://:{pw}@127.0.0.1:{port}");

    // A wrong password is refused by both connection modes.
    for mode in [
        ConnectionMode::Multiplexed { connections: 1 },
        ConnectionMode::Pooled { size: 2 },
    ] {
        let cfg = RedisConfig::new(url(WRONG_REDIS_PW)).mode(mode);
        seen.debug("config with a wrong password", &cfg);
        seen.expect_err(
            &format!("connect with a wrong password ({mode:?})"),
            RedisStorage::connect(cfg).await,
        );
    }
    // No password: refused now or on the first call.
    match RedisStorage::connect(RedisConfig::new(format!("redis://127.0.0.1:{port}"))).await {
        Ok(s) => {
            seen.expect_err(
                "a call without a password",
                s.pool_stats(&PoolId::from("any")).await,
            );
        }
        Err(e) => seen.error("connect without a password", &e),
    }
    // Malformed URLs that carry the password.
    for bad in [
        format!("redis://:{REDIS_PW}@127.0.0.1:notaport"),
        format!("redis://user:{REDIS_PW}@[::1"),
        format!("nosuchscheme://:{REDIS_PW}@127.0.0.1:{port}"),
    ] {
        for mode in [
            ConnectionMode::Multiplexed { connections: 1 },
            ConnectionMode::Pooled { size: 1 },
        ] {
            let r = RedisStorage::connect(RedisConfig::new(bad.clone()).mode(mode)).await;
            seen.expect_err("connect with a malformed URL", r);
        }
    }

    let cfg = RedisConfig::new(url(REDIS_PW)).response_timeout(TIMEOUT);
    seen.debug("redis config", &cfg);
    seen.text("redacted redis URL", cfg.redacted_url());
    let store = RedisStorage::connect(cfg.clone()).await.expect("connect");
    let pooled = RedisStorage::connect(cfg.mode(ConnectionMode::Pooled { size: 4 }))
        .await
        .expect("connect pooled");
    seen.debug("redis store", &store);
    seen.debug("pooled redis store", &pooled);

    let mut churn_cfg = ChurnConfig::new("i8-redis", Duration::from_secs(3));
    churn_cfg.password = Some(PROXY_PW.into());
    churn_cfg.faults = true;
    churn_cfg.data_loss = true;
    // Health flips die with the data (see tests/churn_faults.rs).
    churn_cfg.flap_every = None;
    // The churn goes on until it has felt the crash and recovered from it.
    let progress = churn_cfg.progress.clone();
    let open = progress.hold_open();
    let started = Instant::now();
    let churn = tokio::spawn(run_churn(store.clone(), churn_cfg));

    exercise_manager(pooled.clone(), "i8-manager-redis", seen).await;

    // A lease held across the crash, released while the server is down.
    let outage = PoolId::from("i8-outage");
    pooled
        .upsert_pool(&ProxyPool::new(outage.clone()))
        .await
        .unwrap();
    pooled
        .upsert_proxy(&guarded_proxy(&outage, "o0", 1))
        .await
        .unwrap();
    let request = AcquireRequest::new(outage.clone()).duration(TimeDelta::seconds(30));
    let held = pooled.acquire(&request).await.unwrap().expect("a lease");

    tokio::time::sleep(Duration::from_millis(900).saturating_sub(started.elapsed())).await;
    // Killed mid-churn, however slow the machine.
    progress
        .wait_until("100 churn leases", PATIENCE, |p| p.leases() >= 100)
        .await;
    let errors_before = progress.errors();
    tokio::task::block_in_place(|| server.kill());
    let manager = ProxyManager::with_retry(
        store.clone(),
        RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
        },
    );
    manager.on_acquire(|e| tracing::info!(event = ?e, "acquire callback"));
    // Concurrently: each waits out its own retries and reconnection attempts.
    let pooled_cfg = RedisConfig::new(url(REDIS_PW)).mode(ConnectionMode::Pooled { size: 1 });
    let another = guarded_proxy(&outage, "o1", 2);
    let (acquired, released, stats, p_acquired, p_released, p_upserted, connected, p_connected) = tokio::join!(
        manager.acquire(&request),
        manager.release(&held),
        store.pool_stats(&outage),
        pooled.acquire(&request),
        pooled.release(&held),
        pooled.upsert_proxy(&another),
        RedisStorage::connect(RedisConfig::new(url(REDIS_PW))),
        RedisStorage::connect(pooled_cfg),
    );
    seen.expect_err("manager acquire, server down", acquired);
    seen.expect_err("manager release, server down", released);
    seen.expect_err("stats, server down", stats);
    seen.expect_err("pooled acquire, server down", p_acquired);
    seen.expect_err("pooled release, server down", p_released);
    seen.expect_err("pooled upsert, server down", p_upserted);
    seen.expect_err("connect, server down", connected);
    seen.expect_err("pooled connect, server down", p_connected);
    progress
        .wait_until("the churn feeling the crash", PATIENCE, |p| {
            p.errors() > errors_before
        })
        .await;
    tokio::task::block_in_place(|| server.restart());
    progress
        .wait_until("the churn registering its pool again", PATIENCE, |p| {
            p.reseeds() >= 1
        })
        .await;
    drop(open);

    let report = churn.await.expect("the churn panicked");
    println!("redis churn: {}", report.summary());
    report.assert_clean();
    assert!(
        report.errors > 0,
        "the crash was felt: {}",
        report.summary()
    );
    assert!(report.reseeds >= 1, "the data loss was seen");
    seen.debug("redis churn report", &report);
    let s = &store;
    let snapshot = settle(|| s.pool_snapshot(&report.pool)).await;
    churn_pool_holds_the_secret(seen, "redis churn pool", &snapshot);
    (server, store)
}

/// Health checks with the right and a wrong password, then a worker with
/// its HTTP endpoint before and after Redis dies.
async fn health_scenario(mut server: RedisServer, store: RedisStorage, seen: &mut Seen) {
    let target = support::target().await;
    let basic = format!("Basic {}", base64(&format!("{HEALTH_USER}:{HEALTH_PW}")));
    let guarded = support::HttpProxy {
        require: Some(basic),
        ..Default::default()
    }
    .start()
    .await;
    let socks = support::socks5().await;
    let refused = support::free_port();
    let pool = PoolId::from("i8-health");
    store
        .upsert_pool(&ProxyPool::new(pool.clone()))
        .await
        .unwrap();
    for (id, port, protocol, password) in [
        ("good", guarded.port(), ProxyProtocol::Http, HEALTH_PW),
        ("wrong", guarded.port(), ProxyProtocol::Http, WRONG_PW),
        ("socks", socks.port(), ProxyProtocol::Socks5, HEALTH_PW),
        ("tls", guarded.port(), ProxyProtocol::Https, HEALTH_PW),
        ("refused", refused, ProxyProtocol::Http, HEALTH_PW),
    ] {
        let p = Proxy::new(pool.clone(), "127.0.0.1", port, protocol)
            .with_id(id)
            .with_credentials(HEALTH_USER, password);
        store.upsert_proxy(&p).await.unwrap();
    }

    let metrics = Arc::new(Metrics::new());
    let cancel = CancellationToken::new();
    let mut rows = Vec::new();
    for target in [format!("http://{target}/"), format!("https://{target}/")] {
        let mut cfg = HealthConfig::new(target);
        // Long enough for a local answer on a loaded machine (and not
        // "slow" below it); the TLS cases wait it out.
        cfg.timeout = Duration::from_secs(3);
        cfg.slow_threshold = cfg.timeout;
        cfg.failures_to_inactive = 1;
        // The proxies above listen on loopback, refused unless allowed.
        cfg.proxy_hosts = "127.0.0.0/8".parse().unwrap();
        let checker = HealthChecker::new(cfg)
            .unwrap()
            .with_metrics(metrics.clone());
        rows.push(checker.run_pass(&store, &pool, &cancel).await.unwrap());
    }
    let row = |pass: usize, id: &str| {
        rows[pass]
            .iter()
            .find(|r| r.proxy.as_str() == id)
            .unwrap_or_else(|| panic!("a row for {id}"))
            .clone()
    };
    // The right password got through, so the secret really was sent.
    assert_eq!(
        (row(0, "good").after, row(0, "good").error),
        (ProxyStatus::Active, None)
    );
    let wrong = row(0, "wrong").error.expect("a wrong password fails");
    assert!(wrong.contains("407"), "{wrong}");
    assert!(row(0, "refused").error.is_some());
    // Tunnelled: CONNECT with the right password, then TLS to a plain server.
    assert!(row(1, "good").error.is_some());
    assert!(row(1, "wrong").error.is_some());
    for (pass, rows) in rows.iter().enumerate() {
        for r in rows {
            println!("health pass {pass}: {r:?}");
            seen.debug(&format!("health row {} (pass {pass})", r.proxy), r);
            if let Some(e) = &r.error {
                seen.text(format!("health error of {} (pass {pass})", r.proxy), e);
            }
        }
    }
    metrics.observe_stats(&store.pool_stats(&pool).await.unwrap());
    let rendered = metrics.render();
    assert!(rendered.contains("pharox_health_checks_total{pool=\"i8-health\""));
    assert!(rendered.contains("pharox_pool_proxies{pool=\"i8-health\",state=\"total\"} 5"));
    seen.text("health metrics", rendered);

    // A worker on every pool (the churn pool's unreachable proxies included),
    // serving its endpoint.
    let addr: SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .unwrap();
    let mut health = HealthConfig::new(format!("http://{target}/"));
    health.timeout = Duration::from_millis(300);
    health.proxy_hosts = "127.0.0.0/8".parse().unwrap();
    let config = WorkerConfig {
        sweep_interval: Duration::from_millis(150),
        metrics_addr: Some(addr),
        health: Some(health),
        health_interval: Duration::from_millis(200),
        shutdown_grace: Duration::from_secs(2),
        ..WorkerConfig::default()
    };
    seen.debug("worker config", &config);
    let worker = Worker::new(store.clone(), config);
    let worker_metrics = worker.metrics();
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    // `None` until the worker listens.
    let try_get = |path: &'static str| {
        let http = http.clone();
        async move {
            let answer = http.get(format!("http://{addr}{path}")).send().await.ok()?;
            let status = answer.status();
            Some((status, answer.text().await.ok()?))
        }
    };
    let get = |path: &'static str| async move { try_get(path).await.expect("the worker answers") };
    // A sweep tick, and a health pass over the churn pool, before Redis dies.
    let page = wait_for("a sweep tick in /metrics", || async {
        let (status, page) = try_get("/metrics").await?;
        (status.is_success() && page.contains("pharox_sweeps_total")).then_some(page)
    })
    .await;
    seen.text("/metrics", page);
    let page = wait_for("/healthz answering ok", || async {
        let (status, page) = try_get("/healthz").await?;
        status.is_success().then_some(page)
    })
    .await;
    seen.text("/healthz", page);
    wait_for("health checks of the churn pool", || async {
        worker_metrics
            .render()
            .contains("pharox_health_checks_total{pool=\"i8-redis")
            .then_some(())
    })
    .await;

    tokio::task::block_in_place(|| server.kill());
    let page = wait_for("/healthz answering 503", || async {
        let (status, page) = get("/healthz").await;
        (status.as_u16() == 503).then_some(page)
    })
    .await;
    seen.text("/healthz with redis down", page);
    wait_for("a failed sweep tick in the log", || async {
        capture().text().contains("sweep tick failed").then_some(())
    })
    .await;
    let (_, page) = get("/metrics").await;
    seen.text("/metrics with redis down", page);
    stop.cancel();
    running.await.unwrap().expect("the worker stops cleanly");
    let rendered = worker_metrics.render();
    assert!(rendered.contains("pharox_health_checks_total{pool=\"i8-redis"));
    seen.text("worker metrics", rendered);
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_appear_in_logs_debug_errors_or_metrics() {
    let capture = capture();
    let started = Instant::now();
    let mut seen = Seen::default();
    // Boxed: the scenarios' futures are too big for a test thread's stack.
    Box::pin(memory_scenario(&mut seen)).await;
    let (server, store) = Box::pin(redis_scenario(&mut seen)).await;
    Box::pin(health_scenario(server, store, &mut seen)).await;

    let log = capture.text();
    let lines: Vec<&str> = log.lines().collect();
    let json = lines.iter().filter(|l| l.starts_with('{')).count();
    let level_target = |levels: &[&str], prefix: &str| {
        lines
            .iter()
            .filter(|l| {
                levels
                    .iter()
                    .any(|lv| l.contains(&format!(" {lv} {prefix}")))
            })
            .count()
    };
    let pharox_debug = level_target(&["DEBUG", "TRACE"], "pharox_");
    let reqwest_debug = level_target(&["DEBUG", "TRACE"], "reqwest");
    let hyper = level_target(&["DEBUG", "TRACE"], "hyper");
    println!(
        "captured {} bytes in {} lines ({json} JSON), {pharox_debug} pharox and {reqwest_debug} \
         reqwest lines at DEBUG/TRACE, {hyper} hyper-util; {} texts and {} errors \
         checked; {:.1} s",
        log.len(),
        lines.len(),
        seen.texts.len(),
        seen.errors,
        started.elapsed().as_secs_f64()
    );

    // Not vacuous: a big log from pharox and the HTTP stack, with the
    // secret-bearing values in it, redacted.
    assert!(log.len() > 128 * 1024, "only {} bytes captured", log.len());
    assert!(json > 100, "JSON lines are captured too");
    serde_json::from_str::<serde_json::Value>(lines.iter().find(|l| l.starts_with('{')).unwrap())
        .expect("JSON lines are JSON");
    assert!(pharox_debug > 8, "pharox logs at DEBUG/TRACE");
    assert!(reqwest_debug > 5, "reqwest's `log` records are bridged");
    for redacted in [
        "redis://:***@127.0.0.1",
        "churn:***@0.0.0.0",
        "health check failed",
        "retrying storage call",
        "sweep tick failed",
        "acquire callback",
        "release callback",
    ] {
        assert!(log.contains(redacted), "the log holds {redacted:?}");
    }
    assert!(seen.errors >= 25, "{} errors collected", seen.errors);

    let mut leaks = find_leaks("captured log", &log, &SECRETS);
    for (surface, text) in &seen.texts {
        leaks.extend(find_leaks(surface, text, &SECRETS));
    }
    assert!(
        leaks.is_empty(),
        "{} leaks of credentials (I8):\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scanner_finds_a_secret_that_is_logged() {
    assert_eq!(base64("alice:s3cr3t-pw"), "YWxpY2U6czNjcjN0LXB3");
    assert_eq!(base64("ab"), "YWI=");
    assert_eq!(base64("a"), "YQ==");
    let capture = capture();
    let secret = [("marker", "marker", MARKER_PW)];
    let proxy = Proxy::new("i8-selfcheck", "127.0.0.1", 1, ProxyProtocol::Http)
        .with_credentials("marker", MARKER_PW);
    assert!(find_leaks("Debug", &format!("{proxy:?}"), &secret).is_empty());
    assert!(find_leaks("Display", &proxy.to_string(), &secret).is_empty());

    // Carelessly logged, in each form.
    tracing::trace!(target: "i8_selfcheck", url = %proxy.url(), "a careless proxy URL");
    tracing::debug!(target: "i8_selfcheck", "password {MARKER_PW}");
    let header = format!("Basic {}", base64(&format!("marker:{MARKER_PW}")));
    tracing::info!(target: "i8_selfcheck", %header, "a careless header");
    let encoded = utf8_percent_encode(MARKER_PW, NON_ALPHANUMERIC).to_string();
    tracing::warn!(target: "i8_selfcheck", %encoded, "a careless encoding");
    let alone = base64(MARKER_PW);
    tracing::warn!(target: "i8_selfcheck", %alone, "a careless token");
    let start = &MARKER_PW[..MARKER_PW.find('/').expect("a slash")];
    tracing::error!(target: "i8_selfcheck", "bad URL near {start}");

    let leaks = find_leaks("captured log", &capture.text(), &secret);
    for form in [
        "(plain)",
        "(percent-encoded (URL userinfo))",
        "(percent-encoded (every symbol))",
        "(base64 of user:password)",
        "(base64 of the password)",
        "(first 9 bytes)",
    ] {
        assert!(
            leaks.iter().any(|l| l.contains(form)),
            "the scanner misses the {form} form: {leaks:#?}"
        );
    }
}

/// A proxy record in Redis whose credentials are not in the shape pharox
/// writes (hand-edited, or written by another schema, here `"user:password"`)
/// makes every read of the pool fail with [`Error::Corrupt`]. That message
/// must not quote the password. It used to: `serde_json` quotes the
/// offending string, the store passed its message on, and the worker logged
/// it ("health pass failed"). Found by this test; the store now describes an
/// unparsable record by error kind and position only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_stored_credentials_are_not_quoted_in_errors() {
    // Its own secret, and nothing logged: the other tests share the capture.
    const CORRUPT_PW: &str = "C0rrupt-S3cret-8d7c";
    let secret = [("corrupt-record password", PROXY_USER, CORRUPT_PW)];
    let server = tokio::task::block_in_place(RedisServer::start);
    let store = RedisStorage::connect(RedisConfig::new(server.url()))
        .await
        .expect("connect");
    let pool = PoolId::from("i8-corrupt");
    store
        .upsert_pool(&ProxyPool::new(pool.clone()))
        .await
        .unwrap();
    let proxy =
        pharox_core::testkit::proxy(&pool, "c0", 1).with_credentials(PROXY_USER, CORRUPT_PW);
    store.upsert_proxy(&proxy).await.unwrap();
    let keys = pharox_redis::keys::PoolKeys::new(&store.config().prefix, &pool);
    let hset = |seq: &str, json: &str| {
        pharox_redis::redis::cmd("HSET")
            .arg(&keys.proxy_by_seq)
            .arg(seq)
            .arg(json)
            .clone()
    };
    let stored: Vec<(String, String)> = store
        .raw_command(pharox_redis::redis::cmd("HGETALL").arg(&keys.proxy_by_seq))
        .await
        .unwrap();
    let (seq, json) = &stored[0];
    let mut record: serde_json::Value = serde_json::from_str(json).unwrap();
    record["credentials"] = format!("{PROXY_USER}:{CORRUPT_PW}").into();
    let _: i64 = store
        .raw_command(&hset(seq, &record.to_string()))
        .await
        .unwrap();

    let mut leaks = Vec::new();
    let mut check = |surface: &str, e: Error| {
        leaks.extend(find_leaks(surface, &format!("{e} / {e:?}"), &secret));
    };
    check(
        "list_proxies",
        store.list_proxies(&pool).await.expect_err("corrupt"),
    );
    check(
        "pool_snapshot",
        store.pool_snapshot(&pool).await.expect_err("corrupt"),
    );
    check(
        "acquire",
        store
            .acquire(&AcquireRequest::new(pool.clone()))
            .await
            .expect_err("corrupt"),
    );
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
}

/// The password of the private TLS Redis (`rediss://:…@`).
const TLS_REDIS_PW: &str = "T1s-R3dis-S3cret-4e3f";

/// The secrets of the TLS scenario: the rediss:// password and every line
/// of the client key file's body (a leak of any part of it is a leak).
fn tls_secrets(key_pem: &str) -> Vec<(String, &'static str, String)> {
    let mut out = vec![("rediss password".to_owned(), "", TLS_REDIS_PW.to_owned())];
    for (i, line) in key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .enumerate()
    {
        out.push((format!("client key file, line {i}"), "", line.to_owned()));
    }
    assert!(out.len() >= 2, "the key file has a body");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_key_file_and_rediss_password_never_appear_in_logs_or_errors() {
    let capture = capture();
    let pki = tls_pki::Pki::new();
    let key_pem = std::fs::read_to_string(&pki.client_key).unwrap();
    let secrets = tls_secrets(&key_pem);
    // Mutual TLS and a password.
    let server = tokio::task::block_in_place(|| {
        RedisServer::start_tls(pki.server(true), &["--requirepass", TLS_REDIS_PW])
    });
    let url = format!("rediss://:{TLS_REDIS_PW}@127.0.0.1:{}", server.port());
    let good = || {
        RedisConfig::new(url.clone())
            .tls_ca_file(&pki.ca)
            .tls_client_cert(&pki.client_cert, &pki.client_key)
            .response_timeout(TIMEOUT)
    };
    let mut seen = Seen::default();
    for (i, mode) in [
        ConnectionMode::Multiplexed { connections: 2 },
        ConnectionMode::Pooled { size: 4 },
    ]
    .into_iter()
    .enumerate()
    {
        let cfg = good().mode(mode);
        tracing::info!(config = ?cfg, "connecting over TLS");
        seen.debug("TLS config", &cfg);
        let store = RedisStorage::connect(cfg).await.expect("connect over TLS");
        seen.debug("TLS store", &store);
        Box::pin(exercise_manager(store, &format!("i8-tls-{i}"), &mut seen)).await;
    }

    // Every refusal, each error collected (and logged by `Seen::error`).
    let corrupt_key = pki.path("corrupt.key");
    // The key's header and the first half of its body: a parser quoting
    // what it failed on would print the secret.
    std::fs::write(&corrupt_key, &key_pem[..key_pem.len() / 2]).unwrap();
    let cases = [
        ("wrong CA", good().tls_ca_file(&pki.other_ca)),
        ("no client certificate", {
            let mut c = good();
            c.tls.cert_file = None;
            c.tls.key_file = None;
            c
        }),
        (
            "key of another certificate",
            good().tls_client_cert(&pki.client_cert, &pki.expired_key),
        ),
        (
            "corrupt key file",
            good().tls_client_cert(&pki.client_cert, &corrupt_key),
        ),
        (
            "certificate given as the key",
            good().tls_client_cert(&pki.client_cert, &pki.client_cert),
        ),
        ("wrong password", {
            let mut c = good();
            c.url = format!("rediss://:not-{TLS_REDIS_PW}@127.0.0.1:{}", server.port());
            c
        }),
    ];
    for (case, cfg) in cases {
        for mode in [
            ConnectionMode::Multiplexed { connections: 1 },
            ConnectionMode::Pooled { size: 1 },
        ] {
            let cfg = cfg.clone().mode(mode).connect_timeout(TIMEOUT);
            let r = RedisStorage::connect(cfg).await.map(|_| ());
            let e = seen.expect_err(&format!("TLS connect, {case}, {mode:?}"), r);
            assert!(!e.is_retryable(), "{case}: {e}");
        }
    }

    let log = capture.text();
    assert!(
        log.contains("rediss://:***@127.0.0.1"),
        "the redacted URL is logged"
    );
    assert!(seen.errors >= 12, "{} errors collected", seen.errors);
    let secrets: Vec<(&str, &str, &str)> = secrets
        .iter()
        .map(|(n, u, p)| (n.as_str(), *u, p.as_str()))
        .collect();
    let mut leaks = find_leaks("captured log", &log, &secrets);
    for (surface, text) in &seen.texts {
        leaks.extend(find_leaks(surface, text, &secrets));
    }
    assert!(
        leaks.is_empty(),
        "{} leaks of TLS credentials (I8):\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}
