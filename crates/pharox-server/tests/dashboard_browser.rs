//! The dashboard in a real browser: headless Chromium, driven over the
//! DevTools protocol, opens `/` on a server with API keys over Redis (whose
//! stats history holds snapshots recorded as `pharox worker` records them),
//! takes the key in the page, shows the seeded pool's numbers and chart,
//! shows a lease taken through the API, and logs no console error, no
//! exception and no failed request on the way. A screenshot is saved to
//! `target/test-artifacts/dashboard.png`.
//!
//! A test binary of its own (the others are modules of `tests/api/`), so
//! CI can run or rerun it by name: `cargo test -p pharox-server --test
//! dashboard_browser`.
//!
//! The browser: `$PHAROX_TEST_CHROMIUM`, else `chromium` (Debian's package;
//! scripts/test.sh installs it). Missing, the test fails in CI (`CI=true`)
//! and is skipped with a message elsewhere.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::log::{EventEntryAdded, LogEntryLevel};
use chromiumoxide::cdp::browser_protocol::network::{
    EventLoadingFailed, EventRequestWillBeSent, EventResponseReceived,
};
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::cdp::js_protocol::runtime::{
    ConsoleApiCalledType, EventConsoleApiCalled, EventExceptionThrown,
};
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Handler, Page};
use common::TestServer;
use futures_util::StreamExt;
use pharox_core::testkit::Harness;
use pharox_core::{
    AcquireRequest, ConsumerName, PoolId, Proxy, ProxyId, ProxyPool, ProxyProtocol, ProxyStatus,
    Storage,
};
use pharox_redis::testkit::RedisHarness;
use pharox_server::{ApiKeys, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// The key the server accepts (admin scope: the dashboard reads snapshots).
const KEY: &str = "dashboard-test-key-not-a-secret";
/// How long the page may take to show something on a busy machine.
const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_live_pool_numbers_and_a_new_lease_without_errors() {
    let Some(chromium) = chromium() else {
        return;
    };
    let redis = RedisHarness::start().await;
    let store = redis.storage().clone();
    let pool = seed(&store).await;
    let server = TestServer::with(
        store.clone(),
        ServerConfig::new(ApiKeys::admin([KEY])),
        Some(KEY),
    )
    .await;

    let profile = TempDir::new("dashboard-chromium");
    let (mut browser, handler) = Browser::launch(
        BrowserConfig::builder()
            .chrome_executable(&chromium)
            .new_headless_mode()
            .no_sandbox()
            .user_data_dir(&profile.0)
            .window_size(1280, 1000)
            .viewport(None)
            .launch_timeout(DEADLINE)
            .request_timeout(DEADLINE)
            .build()
            .expect("a browser configuration"),
    )
    .await
    .unwrap_or_else(|e| panic!("launching {}: {e}", chromium.display()));
    let driver = tokio::spawn(drive(handler));

    let page = browser.new_page("about:blank").await.expect("a new tab");
    let seen = Seen::watch(&page).await;
    page.enable_log().await.expect("Log.enable");
    page.goto(format!("{}/", server.base))
        .await
        .expect("open the dashboard");

    // Keys are configured: the page asks for one before reading anything.
    wait_for(
        &page,
        "the key prompt",
        "!document.getElementById('auth').hidden",
    )
    .await;
    // A wrong key is refused (403) and asked for again.
    enter_key(&page, "not-the-key").await;
    wait_for(
        &page,
        "the key prompt again",
        "!document.getElementById('auth').hidden && \
         document.getElementById('auth-reason').textContent.includes('refused')",
    )
    .await;
    // The refusal is reported twice (the response, and the browser's log
    // line about it); wait for both so neither lands in the final check.
    let refused = seen
        .until("the refused request's reports", |log| {
            log.problems.iter().any(|p| p.ends_with("answered 403"))
                && log
                    .problems
                    .iter()
                    .any(|p| p.starts_with("log Error Network"))
        })
        .await;
    assert!(
        refused.problems.iter().all(|p| p.contains("403")),
        "only the refused key's 403s: {:?}",
        refused.problems
    );
    enter_key(&page, KEY).await;

    // The seeded numbers: 4 proxies, 3 active (one banned), 1 lease held.
    wait_for(
        &page,
        "the seeded pool's stats",
        &format!(
            "{} && stat('total') === '4' && stat('active') === '3' && stat('active_leases') === '1'",
            selected("dashboard-pool")
        ),
    )
    .await;
    wait_for(
        &page,
        "the proxies and the seeded lease",
        "document.querySelectorAll('#proxies tbody tr').length === 4 \
         && leaseConsumers().includes('seeder')",
    )
    .await;
    wait_for(
        &page,
        "the chart of the recorded history",
        "document.getElementById('chart').dataset.points === '5' \
         && document.querySelectorAll('#chart polyline').length === 2 \
         && document.getElementById('chart').getBoundingClientRect().height > 100",
    )
    .await;
    let banned: String = eval(
        &page,
        "document.querySelector('#proxies tr[data-proxy=\"px-4\"] .badge').textContent",
    )
    .await;
    assert_eq!(banned, "banned");

    // A lease through the API appears on its own (the page refreshes).
    let (status, lease) = server
        .call(
            Method::POST,
            &format!("/v1/pools/{}/leases", pool.as_str()),
            Some(json!({"consumer": "scraper-7", "duration_ms": 600_000})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    wait_for(
        &page,
        "the new lease",
        "stat('active_leases') === '2' && stat('total_leases') === '4' \
         && leaseConsumers().includes('scraper-7')",
    )
    .await;
    let left: String = eval(
        &page,
        &format!(
            "document.querySelector('#leases tr[data-lease=\"{}\"] [data-expires]').textContent",
            lease["id"].as_str().expect("a lease id")
        ),
    )
    .await;
    assert!(left.ends_with(" s"), "time left {left:?}");

    let shot = artifacts().join("dashboard.png");
    page.save_screenshot(
        ScreenshotParams::builder()
            .format(CaptureScreenshotFormat::Png)
            .full_page(true)
            .build(),
        &shot,
    )
    .await
    .expect("a screenshot");
    println!("dashboard screenshot: {}", shot.display());

    let seen = seen.take();
    assert!(
        seen.requests.iter().any(|u| u.contains("/stats/history")),
        "the page read the history: {:?}",
        seen.requests
    );
    assert!(
        seen.requests.iter().all(|u| !u.contains(KEY)),
        "the key went into a URL: {:?}",
        seen.requests
    );
    assert_eq!(seen.problems, Vec::<String>::new(), "the page had problems");

    browser.close().await.expect("close the browser");
    browser.wait().await.expect("the browser exits");
    driver.abort();
}

/// Types `key` into the page's key prompt and submits it.
async fn enter_key(page: &Page, key: &str) {
    let input = page.find_element("#api-key").await.expect("the key input");
    input.click().await.expect("focus the key input");
    input.type_str(key).await.expect("type the key");
    input.press_key("Enter").await.expect("submit the key");
}

/// A pool of 4 proxies (one banned), a lease held by `seeder`, and 5
/// snapshots of its stats recorded between leases, as the worker records
/// them.
async fn seed(store: &pharox_redis::RedisStorage) -> PoolId {
    let pool = PoolId::from("dashboard-pool");
    store
        .upsert_pool(&ProxyPool::new(pool.clone()))
        .await
        .expect("create the pool");
    for (i, latency) in [(1, 120), (2, 340), (3, 85), (4, 900)] {
        let mut proxy = Proxy::new(
            pool.clone(),
            format!("10.0.0.{i}"),
            8000 + i,
            ProxyProtocol::Http,
        );
        proxy.id = ProxyId::from(format!("px-{i}"));
        proxy.max_concurrency = Some(2);
        proxy.latency_ms = Some(latency);
        proxy.country = Some(["DE", "FR", "US", "US"][usize::from(i - 1)].to_owned());
        if i == 4 {
            proxy.status = ProxyStatus::Banned;
        }
        store.upsert_proxy(&proxy).await.expect("add a proxy");
    }
    store
        .ensure_consumer(&ConsumerName::from("seeder"))
        .await
        .expect("the consumer");
    let mut leases = Vec::new();
    for _ in 0..3 {
        let lease = store
            .acquire(&request(&pool, "seeder"))
            .await
            .expect("acquire")
            .expect("a free proxy");
        leases.push(lease);
        record(store, &pool).await;
    }
    for lease in leases.drain(1..) {
        store.release(&lease).await.expect("release");
        record(store, &pool).await;
    }
    pool
}

/// Records the pool's stats now in its history.
async fn record(store: &pharox_redis::RedisStorage, pool: &PoolId) {
    let stats = store.pool_stats(pool).await.expect("stats");
    store.record_stats(&stats, 1000).await.expect("record");
}

fn request(pool: &PoolId, consumer: &str) -> AcquireRequest {
    AcquireRequest::new(pool.clone())
        .consumer(consumer)
        .duration(chrono::TimeDelta::minutes(10))
}

/// JavaScript helpers the conditions use.
const HELPERS: &str = "const stat = (name) => { \
       const e = document.querySelector('#stats [data-stat=\"' + name + '\"]'); \
       return e ? e.textContent : null; }; \
     const leaseConsumers = () => Array.from( \
       document.querySelectorAll('#leases tbody tr'), (tr) => tr.cells[2].textContent);";

/// A condition: the pool `name` is shown.
fn selected(name: &str) -> String {
    format!(
        "!document.getElementById('main').hidden && \
         document.getElementById('pool-name').textContent === '{name}'"
    )
}

/// Polls `condition` (JavaScript) until it holds; panics with the page's
/// state after [`DEADLINE`].
async fn wait_for(page: &Page, what: &str, condition: &str) {
    let started = Instant::now();
    let expression = format!("(() => {{ {HELPERS} return Boolean({condition}); }})()");
    loop {
        if eval::<bool>(page, &expression).await {
            return;
        }
        if started.elapsed() > DEADLINE {
            let state: String = eval(
                page,
                "document.getElementById('status').textContent + ' | error: ' + \
                 document.getElementById('error').textContent + ' | ' + \
                 document.body.innerText.slice(0, 2000)",
            )
            .await;
            panic!("the page did not show {what} within {DEADLINE:?}: {state}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Evaluates `expression` in the page.
async fn eval<T: serde::de::DeserializeOwned>(page: &Page, expression: &str) -> T {
    page.evaluate(expression)
        .await
        .unwrap_or_else(|e| panic!("evaluating {expression}: {e}"))
        .into_value()
        .unwrap_or_else(|e| panic!("the value of {expression}: {e}"))
}

/// What the page did that the test checks afterwards.
#[derive(Debug, Default)]
struct Log {
    /// Console errors, exceptions, error log entries, failed requests.
    problems: Vec<String>,
    /// Every URL the page requested.
    requests: Vec<String>,
}

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Log>>);

impl Seen {
    /// Listens to `page`'s console, exceptions, log and network.
    async fn watch(page: &Page) -> Self {
        let seen = Self::default();
        let mut console = page
            .event_listener::<EventConsoleApiCalled>()
            .await
            .unwrap();
        let s = seen.clone();
        tokio::spawn(async move {
            while let Some(e) = console.next().await {
                if matches!(
                    e.r#type,
                    ConsoleApiCalledType::Error | ConsoleApiCalledType::Assert
                ) {
                    s.problem(format!("console.{:?}: {:?}", e.r#type, e.args));
                }
            }
        });
        let mut exceptions = page.event_listener::<EventExceptionThrown>().await.unwrap();
        let s = seen.clone();
        tokio::spawn(async move {
            while let Some(e) = exceptions.next().await {
                s.problem(format!("exception: {:?}", e.exception_details));
            }
        });
        let mut log = page.event_listener::<EventEntryAdded>().await.unwrap();
        let s = seen.clone();
        tokio::spawn(async move {
            while let Some(e) = log.next().await {
                if matches!(e.entry.level, LogEntryLevel::Error | LogEntryLevel::Warning) {
                    s.problem(format!(
                        "log {:?} {:?}: {} {}",
                        e.entry.level,
                        e.entry.source,
                        e.entry.text,
                        e.entry.url.as_deref().unwrap_or("")
                    ));
                }
            }
        });
        let mut failed = page.event_listener::<EventLoadingFailed>().await.unwrap();
        let s = seen.clone();
        tokio::spawn(async move {
            while let Some(e) = failed.next().await {
                s.problem(format!("request failed: {}", e.error_text));
            }
        });
        let mut responses = page
            .event_listener::<EventResponseReceived>()
            .await
            .unwrap();
        let s = seen.clone();
        tokio::spawn(async move {
            while let Some(e) = responses.next().await {
                if e.response.status >= 400 {
                    s.problem(format!("{} answered {}", e.response.url, e.response.status));
                }
            }
        });
        let mut requests = page
            .event_listener::<EventRequestWillBeSent>()
            .await
            .unwrap();
        let s = seen.clone();
        tokio::spawn(async move {
            while let Some(e) = requests.next().await {
                s.0.lock().unwrap().requests.push(e.request.url.clone());
            }
        });
        seen
    }

    fn problem(&self, what: String) {
        self.0.lock().unwrap().problems.push(what);
    }

    /// Waits until `done` holds of the log, then takes it.
    async fn until(&self, what: &str, done: impl Fn(&Log) -> bool) -> Log {
        let started = Instant::now();
        while !done(&self.0.lock().unwrap()) {
            assert!(
                started.elapsed() < DEADLINE,
                "no {what} within {DEADLINE:?}: {:?}",
                self.0.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.take()
    }

    fn take(&self) -> Log {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// Runs the DevTools connection until the browser goes away. An event this
/// crate version cannot decode is not the page's fault: it is skipped.
async fn drive(mut handler: Handler) {
    while let Some(event) = handler.next().await {
        if let Err(e) = event
            && matches!(e, chromiumoxide::error::CdpError::Ws(_))
        {
            break;
        }
    }
}

/// The browser to drive, or `None` (after saying so) outside CI when there
/// is none.
fn chromium() -> Option<PathBuf> {
    let named = std::env::var_os("PHAROX_TEST_CHROMIUM").map(PathBuf::from);
    let found = named.clone().or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("chromium"))
                .find(|p| p.is_file())
        })
    });
    match found {
        Some(path) if path.is_file() => Some(path),
        _ => {
            let what = named.map_or_else(
                || "chromium is not on PATH".to_owned(),
                |p| format!("PHAROX_TEST_CHROMIUM={} does not exist", p.display()),
            );
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{what}: in CI the dashboard's browser test must run \
                 (scripts/test.sh installs Debian's chromium package)"
            );
            eprintln!(
                "SKIPPED: {what}; install it (apt-get install -y chromium) to run the browser test"
            );
            None
        }
    }
}

/// `target/test-artifacts` (beside the tests' `target/tmp`).
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/test-artifacts");
    dir
}

/// A directory removed on drop (the browser's profile).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
