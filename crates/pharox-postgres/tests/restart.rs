//! PostgreSQL restarted under the store, on a private server of this test
//! (`initdb` and `pg_ctl` in a temporary directory, on a free port), so the
//! restarts never disturb the machine's server or the tests that share it:
//!
//! - mid-churn: the churn of [`pharox_core::testkit::churn`] with faults
//!   tolerated (`faults = true`) while the server is stopped, alternately
//!   with `-m fast` (backends told `57P01`) and `-m immediate` (connections
//!   cut), and started again, at least [`MIN_RESTARTS`] times. Each stop
//!   waits for the churn to have made progress since the last one, and the
//!   server stays down until the churn has felt it, so the restarts land in a
//!   running churn whatever the machine's speed. Every error the churn sees
//!   must be retryable (anything else is a violation or ends the run), the
//!   same `PostgresStorage` leases again afterwards without a reconnect by
//!   the test, the report is clean, and the store's counters equal a recount
//!   of its tables;
//! - one call cut mid-flight (blocked on the pool's row lock when the server
//!   goes down): `Interrupted`, retryable, maybe applied; calls while the
//!   server is down: `Unavailable`, retryable, certainly not sent.
//!
//! The binaries are found through `PHAROX_PG_BIN`, else the newest
//! `/usr/lib/postgresql/*/bin`, else `PATH`; as root the server runs as the
//! `postgres` user (`runuser`), since `initdb` refuses root. Without them
//! the tests skip with a note, except under `CI=true`, where they fail.
//! Run with `--nocapture` to see the figures.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pharox_core::testkit::churn::{
    ChurnConfig, ChurnProgress, ChurnReport, run_churn, soak_duration,
};
use pharox_core::testkit::{PATIENCE, settle};
use pharox_core::{
    AcquireRequest, Error, Proxy, ProxyPool, ProxyProtocol, ReleaseOutcome, Storage,
};
use pharox_postgres::tokio_postgres::{self, NoTls};
use pharox_postgres::{PostgresConfig, PostgresStorage};

/// The server is restarted at least this many times during the churn.
const MIN_RESTARTS: u32 = 2;

/// How the server is stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// `-m fast`: backends end their sessions with `57P01 admin_shutdown`.
    Fast,
    /// `-m immediate`: connections are cut without a word, as in a crash
    /// (the next start recovers from the WAL).
    Immediate,
}

/// A PostgreSQL server of this test in a temporary directory, removed with
/// it (the server stopped first).
struct PrivateServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// Run the binaries as `postgres` (we are root).
    as_postgres: bool,
}

/// Whether a skip must fail instead (CI must run every test).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`, if any.
fn pg_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PHAROX_PG_BIN").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A port nobody uses now, below the kernel's ephemeral range: while the
/// server is down, no outgoing connection (of this test or any other
/// process) can be given it as its local port and keep the server from
/// binding it again.
fn free_port() -> u16 {
    let first_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let below = first_ephemeral.clamp(20_000, 49_152);
    for _ in 0..1000 {
        let port = fastrand::u16(15_000..below);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 15000..{below}");
}

impl PrivateServer {
    /// Initialises and starts a server, or `None` (after a note) when this
    /// machine cannot run one and this is not CI.
    fn start_or_skip(test: &str) -> Option<Self> {
        let skip = |why: String| {
            assert!(
                !in_ci(),
                "{test}: cannot run a private PostgreSQL in CI: {why}"
            );
            eprintln!("{test}: skipped, {why}");
            None
        };
        let Some(bin) = pg_bin() else {
            return skip("no initdb/pg_ctl (set PHAROX_PG_BIN)".into());
        };
        let as_postgres = is_root();
        if as_postgres
            && Command::new("id")
                .arg("postgres")
                .output()
                .map_or(true, |o| !o.status.success())
        {
            return skip("running as root and there is no `postgres` user for initdb".into());
        }
        let dir = std::env::temp_dir().join(format!(
            "pharox-pg-restart-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).expect("the server's directory");
        let server = Self {
            bin,
            dir,
            port: free_port(),
            as_postgres,
        };
        if as_postgres {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&server.dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown {} to postgres", server.dir.display());
        }
        server.run(
            "initdb",
            &[
                "-D",
                &server.data(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        server.start();
        Some(server)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Runs one of the server's binaries (as `postgres` when root); panics
    /// with its output and the server log's tail if it fails.
    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
        if !out.status.success() {
            let log = std::fs::read_to_string(self.log()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!(
                "{tool} {args:?} failed ({}):\n{}{}\nserver log (last lines first):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                tail.join("\n")
            );
        }
    }

    /// Starts the server and waits until it accepts connections.
    fn start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c max_connections=60 -c max_prepared_transactions=4",
            self.port,
            self.dir.display()
        );
        let log = self.log().display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stops the server and waits until it is down.
    fn stop(&self, how: Stop) {
        let mode = match how {
            Stop::Fast => "fast",
            Stop::Immediate => "immediate",
        };
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", mode, "-w", "-t", "60", "stop"],
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A migrated store on the server.
    async fn storage(
        &self,
        adjust: impl FnOnce(PostgresConfig) -> PostgresConfig,
    ) -> PostgresStorage {
        let s = PostgresStorage::lazy(adjust(PostgresConfig::new(self.url()).pool_size(16)))
            .expect("config");
        settle(|| s.migrate()).await;
        s
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let pid = Path::new(&self.data()).join("postmaster.pid");
        if pid.exists() {
            let mut cmd = if self.as_postgres {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"])
                    .arg(self.bin.join("pg_ctl"));
                c
            } else {
                Command::new(self.bin.join("pg_ctl"))
            };
            let _ = cmd
                .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A session of the test's own on `server`.
async fn connect(server: &PrivateServer) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&server.url(), NoTls)
        .await
        .expect("a session of the test");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Runs a blocking server command on this multi-threaded runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Waits until the churn has had a call refused (`Unavailable`: no
/// connection to be had) since `refused` were counted: the stopped server
/// was felt, not only the calls it cut.
async fn felt(progress: &ChurnProgress, refused: u64) {
    progress
        .wait_until("a call refused by the stopped server", PATIENCE, |p| {
            p.error_kinds().unavailable > refused
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_mid_churn_give_retryable_errors_and_the_store_recovers() {
    let Some(server) = PrivateServer::start_or_skip("restarts mid-churn") else {
        return;
    };
    // Generous budgets: a stopped server fails calls at once (refused, or
    // the connection closed), so no error here stands for a slow machine.
    let s = server
        .storage(|c| {
            c.operation_timeout(Duration::from_secs(10))
                .wait_timeout(Duration::from_secs(10))
        })
        .await;
    let mut cfg = ChurnConfig::new("restarts", soak_duration(Duration::from_secs(5)));
    cfg.faults = true;
    let until = Instant::now() + cfg.duration;
    let progress: Arc<ChurnProgress> = cfg.progress.clone();
    let open = progress.hold_open();
    let churn = tokio::spawn(run_churn(s.clone(), cfg));
    let mut restarts = 0u32;
    let mut stops = Vec::new();
    while restarts < MIN_RESTARTS || Instant::now() + Duration::from_millis(1500) < until {
        progress.wait_for_more_leases(100).await;
        let how = if restarts.is_multiple_of(2) {
            Stop::Fast
        } else {
            Stop::Immediate
        };
        let refused = progress.error_kinds().unavailable;
        blocking(|| server.stop(how));
        // Down until the churn has noticed.
        felt(&progress, refused).await;
        blocking(|| server.start());
        restarts += 1;
        stops.push(how);
    }
    // The same store (no reconnect by the test) leases again after the last
    // restart, before the churn may end.
    progress.wait_for_more_leases(100).await;
    drop(open);
    let report: ChurnReport = churn.await.expect("the churn panicked");
    println!("restarts {stops:?}: {}", report.summary());
    report.assert_clean();
    report.assert_exercised();
    assert!(
        report.acquired >= 500 && report.certain_intervals >= 500,
        "too little got through the restarts to mean anything: {}",
        report.summary()
    );
    let kinds = report.error_kinds;
    assert!(
        restarts >= MIN_RESTARTS && report.errors >= u64::from(restarts),
        "every restart was felt: {restarts} restarts, {}",
        report.summary()
    );
    assert!(
        kinds.unavailable >= u64::from(restarts),
        "calls while the server was down were refused as Unavailable: {kinds:?}"
    );
    assert_eq!(
        kinds.pools_not_found, 0,
        "nothing acknowledged was lost in a restart: {kinds:?}"
    );
    let problems = support::bookkeeping_problems(&server.url(), report.pool.as_str()).await;
    assert!(problems.is_empty(), "{problems:#?}");
    // And the same store answers at once, without a retry.
    let lease = s
        .acquire(&AcquireRequest::new(report.pool.clone()))
        .await
        .expect("an acquire on the recovered store")
        .expect("a free proxy after the churn");
    assert_eq!(s.release(&lease).await.unwrap(), ReleaseOutcome::Released);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cut_mid_flight_is_interrupted_and_calls_while_down_are_unavailable() {
    let Some(server) = PrivateServer::start_or_skip("cut mid-flight") else {
        return;
    };
    let s = server.storage(|c| c.operation_timeout(PATIENCE)).await;
    let pool = ProxyPool::new("cut");
    s.upsert_pool(&pool).await.unwrap();
    s.upsert_proxy(
        &Proxy::new(pool.id.clone(), "10.9.0.1", 9000, ProxyProtocol::Http).with_id("p"),
    )
    .await
    .unwrap();
    for how in [Stop::Fast, Stop::Immediate] {
        // A prepared transaction holds the only proxy's row lock: the
        // acquire is sent, then waits inside the server, and no session's end (the
        // shutdown ends them in no set order) can let it through before
        // its own connection is cut.
        let locker = connect(&server).await;
        let gid = format!("pharox-cut-{how:?}");
        locker
            .batch_execute(&format!(
                "BEGIN; SELECT 1 FROM pharox_proxies WHERE pool_id = 'cut' FOR UPDATE; \
                 PREPARE TRANSACTION '{gid}'"
            ))
            .await
            .unwrap();
        let blocked = {
            let (s, req) = (s.clone(), AcquireRequest::new(pool.id.clone()));
            tokio::spawn(async move { s.acquire(&req).await })
        };
        let waiting = "SELECT count(*) FROM pg_stat_activity \
                       WHERE application_name = 'pharox' AND wait_event_type = 'Lock'";
        let started = Instant::now();
        loop {
            let n: i64 = locker.query_one(waiting, &[]).await.unwrap().get(0);
            if n > 0 {
                break;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the acquire never reached the lock"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        blocking(|| server.stop(how));
        let cut = blocked
            .await
            .unwrap()
            .expect_err(&format!("{how:?}: the server went away mid-call"));
        assert!(
            matches!(cut, Error::Interrupted { .. })
                && cut.is_retryable()
                && !cut.request_not_sent(),
            "{how:?}: a call cut mid-flight is Interrupted (retryable, maybe applied): {cut:?}"
        );
        // Down: refused before anything is sent.
        let down = s
            .acquire(&AcquireRequest::new(pool.id.clone()))
            .await
            .expect_err("the server is down");
        assert!(
            matches!(down, Error::Unavailable { .. }) && down.request_not_sent(),
            "{how:?}: a call while the server is down is Unavailable (not sent): {down:?}"
        );
        for e in [
            s.pool_stats(&pool.id).await.expect_err("down"),
            s.pool_snapshot(&pool.id).await.expect_err("down"),
            s.cleanup_expired(&pool.id, 10).await.expect_err("down"),
        ] {
            assert!(e.is_retryable(), "{how:?}: {e:?}");
        }
        blocking(|| server.start());
        // The lock survived the restart with the prepared transaction.
        connect(&server)
            .await
            .batch_execute(&format!("ROLLBACK PREPARED '{gid}'"))
            .await
            .unwrap();
        // The same store recovers: the cut acquire was rolled back with its
        // session, and the proxy is free.
        let req = AcquireRequest::new(pool.id.clone());
        let lease = settle(|| s.acquire(&req))
            .await
            .expect("the proxy is free again");
        assert_eq!(s.release(&lease).await.unwrap(), ReleaseOutcome::Released);
        let stats = s.pool_stats(&pool.id).await.unwrap();
        assert_eq!(stats.active_leases, 0, "{stats:?}");
    }
}
