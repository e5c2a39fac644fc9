//! The checker never connects to a proxy host the policy refuses (as
//! written, or as resolved), and connects to the address it checked, not to
//! the name again.
//!
//! "Nothing connected" is read from listeners that count every connection
//! they accept (and close it at once): a check that connected has done so
//! before `run_pass` returns, so the count is final then.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use pharox_core::{InMemoryStorage, PoolId, Proxy, ProxyPool, ProxyProtocol, ProxyStatus, Storage};
use pharox_worker::{CancellationToken, CheckRow, HealthChecker, HealthConfig, ResolveHost};
use tokio::net::TcpListener;

/// Counts the connections made to it.
struct Recorder {
    port: u16,
    seen: Arc<AtomicUsize>,
}

impl Recorder {
    fn on(listener: TcpListener) -> Self {
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Self { port, seen }
    }

    fn connections(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }
}

/// Listeners on 127.0.0.2 and 127.0.0.1 with the same port: a name that
/// resolves to one of them for the checker and to the other for anyone else.
async fn twins() -> (TcpListener, TcpListener) {
    for _ in 0..50 {
        let a = TcpListener::bind("127.0.0.2:0").await.unwrap();
        let port = a.local_addr().unwrap().port();
        if let Ok(b) = TcpListener::bind(("127.0.0.1", port)).await {
            return (a, b);
        }
    }
    panic!("no port free on both 127.0.0.2 and 127.0.0.1");
}

/// Answers from a fixed table (no entry: not found) and counts the questions.
#[derive(Clone, Default)]
struct Fixed {
    answers: HashMap<&'static str, Vec<SocketAddr>>,
    asked: Arc<AtomicUsize>,
}

impl Fixed {
    fn with(mut self, name: &'static str, addrs: &[&str]) -> Self {
        let addrs = addrs.iter().map(|a| a.parse().unwrap()).collect();
        self.answers.insert(name, addrs);
        self
    }
}

impl ResolveHost for Fixed {
    fn resolve<'a>(
        &'a self,
        name: &'a str,
        _port: u16,
    ) -> BoxFuture<'a, std::io::Result<Vec<SocketAddr>>> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let answer =
            self.answers.get(name).cloned().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such name here")
            });
        Box::pin(std::future::ready(answer))
    }
}

/// Stores `proxies` in a fresh pool and checks them once with `allow` as
/// the allow-list.
async fn check(
    allow: &str,
    resolver: Option<Fixed>,
    proxies: &[(&str, &str, u16, ProxyProtocol)],
) -> Vec<CheckRow> {
    let store = InMemoryStorage::new();
    let pool = PoolId::from("hosts");
    store
        .upsert_pool(&ProxyPool::new(pool.clone()))
        .await
        .unwrap();
    for (id, host, port, protocol) in proxies {
        let p = Proxy::new(pool.clone(), *host, *port, *protocol).with_id(*id);
        store.upsert_proxy(&p).await.unwrap();
    }
    let target = support::target().await;
    let mut checker = HealthChecker::new(HealthConfig {
        failures_to_inactive: 1,
        timeout: Duration::from_secs(10),
        slow_threshold: Duration::from_secs(10),
        proxy_hosts: allow.parse().unwrap(),
        ..HealthConfig::new(format!("http://{target}/"))
    })
    .unwrap();
    if let Some(r) = resolver {
        checker = checker.with_resolver(r);
    }
    let rows = checker
        .run_pass(&store, &pool, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(rows.len(), proxies.len());
    rows
}

fn error(rows: &[CheckRow], id: &str) -> String {
    let row = rows.iter().find(|r| r.proxy.as_str() == id).unwrap();
    row.error
        .clone()
        .unwrap_or_else(|| panic!("{id} passed: {row:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_proxies_are_refused_unless_allowed_and_nothing_connects() {
    let recorder = Recorder::on(TcpListener::bind("127.0.0.1:0").await.unwrap());
    // Every proxy names the recorder, in some spelling, over every protocol.
    let port = recorder.port;
    let proxies = [
        ("v4", "127.0.0.1", port, ProxyProtocol::Http),
        ("decimal", "2130706433", port, ProxyProtocol::Socks5),
        ("short", "127.1", port, ProxyProtocol::Https),
        ("octal", "0177.0.0.1", port, ProxyProtocol::Socks4),
        ("mapped", "::ffff:127.0.0.1", port, ProxyProtocol::Http),
        ("name", "localhost", port, ProxyProtocol::Http),
    ];
    let rows = check("", None, &proxies).await;
    for r in &rows {
        let e = r.error.as_deref().unwrap_or_default();
        assert!(
            e.contains("are refused as proxy hosts; allow them with --allow-proxy-hosts"),
            "{r:?}"
        );
        assert_eq!(
            (r.after, r.latency_ms, r.applied),
            (ProxyStatus::Inactive, None, true)
        );
    }
    assert!(error(&rows, "decimal").contains("reads as 127.0.0.1"));
    assert!(error(&rows, "name").contains("loopback name"));
    assert_eq!(
        recorder.connections(),
        0,
        "a refused proxy was connected to"
    );

    // Allowed, the same proxies are connected to (the recorder closes them,
    // so the checks still fail, on the connection).
    let rows = check("127.0.0.0/8,localhost", None, &proxies).await;
    for r in &rows {
        let e = r.error.as_deref().unwrap_or_default();
        assert!(!e.contains("refused as proxy hosts"), "{r:?}");
    }
    // The IPv4 spellings surely reach it; `localhost` and the mapped form
    // may go over IPv6 on other machines.
    assert!(
        recorder.connections() >= 4,
        "{} connections",
        recorder.connections()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_resolving_to_a_refused_address_is_refused_before_connecting() {
    // The system resolver: `localhost` may be written (its name is
    // allowed), but it resolves to loopback, which is not.
    let recorder = Recorder::on(TcpListener::bind("127.0.0.1:0").await.unwrap());
    let rows = check(
        "localhost",
        None,
        &[("name", "localhost", recorder.port, ProxyProtocol::Http)],
    )
    .await;
    let e = error(&rows, "name");
    assert!(e.starts_with("`localhost` resolves to "), "{e}");
    assert!(e.contains("loopback addresses are refused"), "{e}");
    assert_eq!(recorder.connections(), 0);

    // One refused address among accepted ones refuses the proxy: the
    // accepted one is not tried either.
    let (allowed, refused) = twins().await;
    let (allowed, refused) = (Recorder::on(allowed), Recorder::on(refused));
    let port = allowed.port;
    let resolver = Fixed::default()
        .with("mixed.example", &["127.0.0.2:1", "127.0.0.1:1"])
        .with("metadata.example", &["169.254.169.254:80"])
        .with("empty.example", &[]);
    let asked = resolver.asked.clone();
    let rows = check(
        "127.0.0.2",
        Some(resolver),
        &[
            ("mixed", "mixed.example", port, ProxyProtocol::Http),
            ("https", "mixed.example", port, ProxyProtocol::Https),
            ("metadata", "metadata.example", port, ProxyProtocol::Socks5),
            ("empty", "empty.example", port, ProxyProtocol::Http),
            ("unknown", "unknown.example", port, ProxyProtocol::Http),
        ],
    )
    .await;
    for id in ["mixed", "https"] {
        let e = error(&rows, id);
        assert!(
            e.starts_with("`mixed.example` resolves to 127.0.0.1, a loopback"),
            "{e}"
        );
    }
    let e = error(&rows, "metadata");
    assert!(
        e.contains("resolves to 169.254.169.254, a link-local address"),
        "{e}"
    );
    assert_eq!(
        error(&rows, "empty"),
        "`empty.example` resolves to no address"
    );
    let e = error(&rows, "unknown");
    assert!(e.starts_with("cannot resolve `unknown.example`"), "{e}");
    assert_eq!(asked.load(Ordering::SeqCst), 5);
    assert_eq!((allowed.connections(), refused.connections()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_connect_to_the_checked_address_not_to_the_name_again() {
    // For the checker `localhost` is 127.0.0.2, where the proxies listen;
    // for the system resolver it is 127.0.0.1, where recorders listen on
    // the same ports. A check that let the client resolve the name again
    // would reach a recorder.
    let (http_here, http_elsewhere) = twins().await;
    let (socks_here, socks_elsewhere) = twins().await;
    let (tls_here, tls_elsewhere) = twins().await;
    let http = support::HttpProxy::default().serve_on(http_here);
    let socks = support::socks5_on(socks_here);
    let tls = Recorder::on(tls_here);
    let elsewhere = [
        Recorder::on(http_elsewhere),
        Recorder::on(socks_elsewhere),
        Recorder::on(tls_elsewhere),
    ];
    let resolver = Fixed::default().with("localhost", &["127.0.0.2:0"]);
    let asked = resolver.asked.clone();
    let rows = check(
        "localhost,127.0.0.0/8",
        Some(resolver),
        &[
            ("http", "localhost", http.port(), ProxyProtocol::Http),
            ("socks5", "localhost", socks.port(), ProxyProtocol::Socks5),
            ("https", "localhost", tls.port, ProxyProtocol::Https),
        ],
    )
    .await;
    let got: Vec<_> = rows.iter().map(|r| (r.proxy.as_str(), r.after)).collect();
    assert_eq!(
        got,
        [
            ("http", ProxyStatus::Active),
            ("socks5", ProxyStatus::Active),
            ("https", ProxyStatus::Inactive),
        ],
        "{rows:#?}"
    );
    // The https proxy keeps its name for TLS, and is still reached at the
    // checked address (the recorder there ends the handshake).
    assert_eq!(tls.connections(), 1, "{rows:#?}");
    let seen: Vec<usize> = elsewhere.iter().map(Recorder::connections).collect();
    assert_eq!(seen, [0, 0, 0], "the name was resolved again: {rows:#?}");
    assert_eq!(asked.load(Ordering::SeqCst), 3, "one resolution per check");
}
