//! Test support (feature `testkit`): a private `redis-server` on a free
//! port, stopped on drop, and a contract-suite [`Harness`] for
//! [`RedisStorage`].
//!
//! Tests never share the 6379 instance. Set `PHAROX_TEST_REDIS_URL` to run
//! against an existing server instead (each harness then uses its own key
//! prefix). A missing `redis-server` binary is a test failure with a clear
//! message, never a silent skip.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pharox_core::testkit::Harness;

use crate::{RedisConfig, RedisStorage};

mod sentinel;
pub use sentinel::SentinelTopology;

/// Faults a [`RedisStorage`] injects between its acquire script and what
/// follows it ([`RedisStorage::after_grant_faults`]): the moment where a
/// lease is granted but not yet handed to the caller. Each counter says how
/// many of the next such steps fail with `Unavailable` (as if the server
/// had gone away), then counts down.
#[derive(Debug, Default)]
pub struct AfterGrantFaults {
    /// Reads of a leased proxy's data missing from the client's cache.
    pub follow_up_reads: std::sync::atomic::AtomicU32,
    /// Releases of a granted lease whose completion failed.
    pub give_backs: std::sync::atomic::AtomicU32,
}

impl AfterGrantFaults {
    fn take(counter: &std::sync::atomic::AtomicU32, what: &str) -> Option<pharox_core::Error> {
        use std::sync::atomic::Ordering;
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .ok()
            .map(|_| pharox_core::Error::Unavailable {
                source: format!("injected fault: {what}").into(),
            })
    }

    pub(crate) fn follow_up_read(&self) -> Option<pharox_core::Error> {
        Self::take(
            &self.follow_up_reads,
            "the follow-up read of a leased proxy",
        )
    }

    pub(crate) fn give_back(&self) -> Option<pharox_core::Error> {
        Self::take(&self.give_backs, "the release of a granted lease")
    }
}

/// `redis-server` arguments for a server that keeps nothing on disk.
pub const NO_PERSISTENCE: &[&str] = &["--save", "", "--appendonly", "no"];

/// [`NO_PERSISTENCE`] plus `DEBUG` enabled, for tests that stall the server
/// with `DEBUG SLEEP`.
pub const STALLABLE: &[&str] = &[
    "--save",
    "",
    "--appendonly",
    "no",
    "--enable-debug-command",
    "yes",
];

/// A `redis-server` child process on a free local port, without persistence
/// unless asked. Killed (and its directory removed) on drop.
///
/// The server logs to `redis.log` in its directory ([`log_path`](Self::log_path)).
/// When it is dropped because a test is failing (while panicking), the
/// log's last lines are printed to stderr and the directory is kept, so a
/// failure shows what the server saw.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    tls: Option<ServerTls>,
    /// A sentinel's configuration (`redis-server sentinel.conf --sentinel`).
    sentinel_conf: Option<String>,
}

/// The TLS files of a test server that listens for TLS only
/// ([`RedisServer::start_tls`]): PEM paths.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The server's certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The CA that verifies client certificates (`--tls-ca-cert-file`).
    pub ca: PathBuf,
    /// Refuse clients without a certificate signed by `ca`
    /// (`--tls-auth-clients yes`; else `no`).
    pub require_client_cert: bool,
}

/// Ports tried by [`RedisServer::start_with`] before it gives up.
const START_ATTEMPTS: usize = 5;

/// Lines of the server's log printed when a test fails.
const LOG_TAIL_LINES: usize = 40;

/// The last `lines` lines of the file at `path` (empty if unreadable).
fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Writes an aclfile to a directory of its own: `user default off`, then
/// `user NAME on >PASSWORD RULE` for each `(NAME, RULE)` of `users`;
/// returns its path (for `--aclfile`).
pub fn write_aclfile(users: &[(&str, &str)], password: &str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "pharox-acl-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).expect("create the aclfile's directory");
    let file = dir.join("users.acl");
    let mut text = String::from("user default off\n");
    for (name, rule) in users {
        text.push_str(&format!("user {name} on >{password} {rule}\n"));
    }
    std::fs::write(&file, text).expect("write the aclfile");
    file.to_str().expect("a UTF-8 temporary path").to_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok()
        && matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG")
            // A server with `requirepass` is up too.
            || buf[..n].starts_with(b"-NOAUTH"))
}

impl RedisServer {
    /// Starts a server with no persistence.
    pub fn start() -> Self {
        Self::start_with(NO_PERSISTENCE)
    }

    /// Starts a server with extra `redis-server` arguments (e.g. persistence).
    ///
    /// The free port is found by binding port 0 and letting it go, so
    /// another process (a parallel test) may take it before redis-server
    /// binds it: a server that exits before answering is started again on
    /// another port, a few times.
    pub fn start_with(args: &[&str]) -> Self {
        Self::start_on(args, None)
    }

    /// A server (no persistence) whose users come from an aclfile: `user
    /// default off`, then `user NAME on >PASSWORD RULE` for each `(NAME,
    /// RULE)` of `users` (redis-server reads the file at startup and on
    /// `ACL LOAD` only).
    pub fn start_with_users(users: &[(&str, &str)], password: &str) -> Self {
        let file = write_aclfile(users, password);
        Self::start_with(&["--save", "", "--appendonly", "no", "--aclfile", &file])
    }

    /// Starts a server that listens for TLS only (`--port 0 --tls-port`),
    /// with no persistence and extra `args`; [`url`](Self::url) is then
    /// `rediss://127.0.0.1:<port>`. Panics if this redis-server was built
    /// without TLS (the error then says so).
    pub fn start_tls(tls: ServerTls, args: &[&str]) -> Self {
        let mut all = NO_PERSISTENCE.to_vec();
        all.extend_from_slice(args);
        Self::start_on(&all, Some(tls))
    }

    fn start_on(args: &[&str], tls: Option<ServerTls>) -> Self {
        Self::start_as(args, tls, None)
    }

    /// Starts a Redis Sentinel (`redis-server sentinel.conf --sentinel`)
    /// with this configuration, on a free port. Its log and rewritten
    /// configuration stay in its directory like a server's.
    pub fn start_sentinel(conf: &str) -> Self {
        Self::start_as(&[], None, Some(conf.to_owned()))
    }

    /// A sentinel listening for TLS only (`--port 0 --tls-port`) that
    /// reaches the nodes and the other sentinels over TLS
    /// (`--tls-replication yes`), showing them its certificate.
    pub fn start_sentinel_tls(conf: &str, tls: ServerTls) -> Self {
        Self::start_as(
            &["--tls-replication", "yes"],
            Some(tls),
            Some(conf.to_owned()),
        )
    }

    fn start_as(args: &[&str], tls: Option<ServerTls>, sentinel_conf: Option<String>) -> Self {
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let dir =
                std::env::temp_dir().join(format!("pharox-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("create the server's directory");
            let mut server = Self {
                child: None,
                port,
                dir,
                extra: args.iter().map(|s| (*s).to_owned()).collect(),
                tls: tls.clone(),
                sentinel_conf: sentinel_conf.clone(),
            };
            if server.try_launch() {
                return server;
            }
            last_log = server.log_tail(LOG_TAIL_LINES);
            // Dropping it removes its directory.
        }
        panic!(
            "redis-server exited before answering PING {START_ATTEMPTS} times \
             (arguments {args:?}): is the port range exhausted, or an argument wrong? \
             The last attempt logged:\n{last_log}"
        );
    }

    /// Starts the server on its port and waits until it answers; panics if
    /// it does not (a restart must get the same port).
    fn launch(&mut self) {
        assert!(
            self.try_launch(),
            "redis-server exited before answering PING on port {} (taken by another process?)",
            self.port
        );
    }

    /// Starts the server and waits until it answers PING: `true`; `false`
    /// if it exited first (its port taken, say). Panics if it neither
    /// answers nor exits within 30 s.
    fn try_launch(&mut self) -> bool {
        let mut cmd = Command::new("redis-server");
        if let Some(conf) = &self.sentinel_conf {
            let path = self.dir.join("sentinel.conf");
            // A restarted sentinel keeps the configuration it rewrote.
            if !path.exists() {
                std::fs::write(&path, conf).expect("write sentinel.conf");
            }
            cmd.arg(&path).arg("--sentinel");
        }
        match &self.tls {
            None => cmd.arg("--port").arg(self.port.to_string()),
            Some(tls) => cmd
                .args(["--port", "0", "--tls-port"])
                .arg(self.port.to_string())
                .arg("--tls-cert-file")
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca)
                .arg("--tls-auth-clients")
                .arg(if tls.require_client_cert { "yes" } else { "no" }),
        };
        let child = cmd
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.log_path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `redis-server` ({e}). Install it (Debian: apt-get install -y \
                     redis-server) or run scripts/test.sh, which does."
                )
            });
        self.child = Some(child);
        // Generous: a busy CI machine can take seconds to start a process.
        let deadline = Instant::now() + Duration::from_secs(30);
        // A TLS port does not answer a plain PING: its log says when it is
        // up (a sentinel's, once it has its ID: it logs no "Ready").
        let up = |s: &Self| match s.tls {
            None => ping(s.port),
            Some(_) => {
                let log = s.log_tail(LOG_TAIL_LINES);
                log.contains("Ready to accept connections")
                    || (s.sentinel_conf.is_some() && log.contains("Sentinel ID is"))
            }
        };
        while !up(self) {
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited {
                self.child = None;
                if self.tls.is_some() && self.log_tail(LOG_TAIL_LINES).contains("tls") {
                    let log = self.log_tail(LOG_TAIL_LINES);
                    assert!(
                        !log.contains("not compiled") && !log.contains("Unrecognized"),
                        "this redis-server cannot serve TLS (built without it?); install one \
                         that can (Debian's redis-server can) or run scripts/test.sh, which \
                         checks. Its log:\n{log}"
                    );
                }
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer PING within 30 s; its log:\n{}",
                self.port,
                self.log_tail(LOG_TAIL_LINES)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Waits until this server, a replica, has finished its first sync
    /// with its primary (`master_link_status:up`): a primary delays a
    /// full sync by `repl-diskless-sync-delay` (5 s by default), so a
    /// replica just started has nothing yet. Panics after a minute.
    /// Blocks the calling thread.
    pub fn wait_until_synced(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let info = crate::redis::Client::open(self.url())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
                .and_then(|mut c| {
                    crate::redis::cmd("INFO")
                        .arg("replication")
                        .query::<String>(&mut c)
                });
            if info
                .as_deref()
                .is_ok_and(|i| i.contains("master_link_status:up"))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the replica on port {} did not sync within a minute ({info:?}); its log:\n{}",
                self.port,
                self.log_tail(LOG_TAIL_LINES)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's log file (kept, with its directory, when a test fails).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path(), lines)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`, or `rediss://…` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// A plain connection of its own, beside any store, that waits up to 10 s
    /// for an answer (for commands that stall the server, or for reading it
    /// directly).
    pub async fn raw_connection(&self) -> crate::redis::aio::MultiplexedConnection {
        let config = crate::redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(Duration::from_secs(10)));
        crate::redis::Client::open(self.url())
            .expect("client")
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .expect("raw connection to the private redis-server")
    }

    /// Stops the server process (`SIGSTOP`) and returns once the kernel
    /// reports it stopped: from then on it answers nothing (the kernel
    /// still accepts connections) until [`resume`](Self::resume). Unlike
    /// `DEBUG SLEEP`, the stall has begun when this returns and lasts until
    /// the test ends it. Linux (reads `/proc`); blocks the calling thread
    /// for a few milliseconds.
    pub fn pause(&self) {
        self.signal("STOP", true);
    }

    /// Lets a [`pause`](Self::pause)d server run again (`SIGCONT`).
    pub fn resume(&self) {
        self.signal("CONT", false);
    }

    /// Sends `SIGname` and waits until the process is (or is no longer) stopped.
    fn signal(&self, name: &str, stopped: bool) {
        let pid = self.child.as_ref().expect("the server is not running").id();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run `kill -{name}`: {e}"));
        assert!(status.success(), "`kill -{name} {pid}` failed: {status}");
        let state = || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/stat: {e}"));
            // `pid (comm) STATE ...`: the state follows the last ')'.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
                .unwrap_or('?')
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while (state() == 'T') != stopped {
            assert!(
                Instant::now() < deadline,
                "redis-server {pid} did not {} within 10 s after SIG{name}",
                if stopped { "stop" } else { "resume" }
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Kills the server (as a crash would) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            // A failing test: show what the server saw, and keep its log.
            eprintln!(
                "--- redis-server on port {} (log kept at {}), last {LOG_TAIL_LINES} lines:\n{}\n---",
                self.port,
                self.log_path().display(),
                self.log_tail(LOG_TAIL_LINES)
            );
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// [`RedisStorage`] on a private server (or `PHAROX_TEST_REDIS_URL`), for
/// the contract suite. Time passes for real: `advance` sleeps.
#[derive(Debug, Clone)]
pub struct RedisHarness {
    server: Option<Arc<RedisServer>>,
    storage: RedisStorage,
    /// Records the stats history, as `pharox worker` does (the store itself
    /// unless [`RedisHarness::recording_with`] named another).
    recorder: Option<RedisStorage>,
}

impl RedisHarness {
    /// A store on a fresh private server with a default configuration.
    pub async fn start() -> Self {
        Self::start_with(|c| c).await
    }

    /// A store on a fresh private server, with the configuration adjusted
    /// (starting from a 30 s response timeout).
    pub async fn start_with(adjust: impl FnOnce(RedisConfig) -> RedisConfig) -> Self {
        let (server, url, prefix) = match std::env::var("PHAROX_TEST_REDIS_URL") {
            Ok(url) if !url.is_empty() => {
                (None, url, format!("pharox-test-{:08x}", fastrand::u32(..)))
            }
            _ => {
                let server = RedisServer::start();
                let url = server.url();
                (Some(Arc::new(server)), url, "pharox".to_owned())
            }
        };
        // A 30 s budget: on a busy CI machine a call can outlive the 5 s
        // default, and a timeout is not what these tests test (those that
        // test one set their own budget in `adjust`).
        let base = RedisConfig::new(url)
            .prefix(prefix)
            .response_timeout(Duration::from_secs(30));
        let storage = RedisStorage::connect(adjust(base))
            .await
            .expect("connect to the test redis-server");
        Self {
            server,
            storage,
            recorder: None,
        }
    }

    /// A store on `server` (a TLS one, say), configured by `adjust` from
    /// its URL and a 30 s response timeout. The harness owns the server.
    pub async fn on_server(
        server: RedisServer,
        adjust: impl FnOnce(RedisConfig) -> RedisConfig,
    ) -> Self {
        let base = RedisConfig::new(server.url()).response_timeout(Duration::from_secs(30));
        let storage = RedisStorage::connect(adjust(base))
            .await
            .expect("connect to the test redis-server");
        Self {
            server: Some(Arc::new(server)),
            storage,
            recorder: None,
        }
    }

    /// Records stats snapshots through `recorder` instead of the store: a
    /// store connected as the worker's user, when the store's own user may
    /// not write the history (an ACL client user may not `XADD`).
    pub fn recording_with(self, recorder: RedisStorage) -> Self {
        Self {
            recorder: Some(recorder),
            ..self
        }
    }

    /// The private server, if this harness started one.
    pub fn server(&self) -> Option<&RedisServer> {
        self.server.as_deref()
    }
}

impl Harness for RedisHarness {
    type Storage = RedisStorage;

    fn storage(&self) -> &RedisStorage {
        &self.storage
    }

    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }

    fn supports_predicates(&self) -> bool {
        false
    }

    /// [`index_problems`]: the scripts' words, flags, indexes and counters.
    async fn store_problems(&self, pool: &pharox_core::PoolId) -> Vec<String> {
        index_problems(&self.storage, pool).await
    }

    async fn record_stats(&self, snapshot: &pharox_core::PoolStatsSnapshot) -> bool {
        self.recorder
            .as_ref()
            .unwrap_or(&self.storage)
            .record_stats(snapshot, 100)
            .await
            .expect("record a stats snapshot");
        true
    }
}

/// A store on a private server the test alone owns, so it may kill, restart,
/// stall or measure it (unlike [`RedisHarness`], it never uses
/// `PHAROX_TEST_REDIS_URL`). `kill` and `restart` block the calling thread:
/// call them from a multi-threaded runtime.
#[derive(Debug)]
pub struct OwnedRedis {
    /// The server.
    pub server: RedisServer,
    /// A store connected to it.
    pub storage: RedisStorage,
}

impl OwnedRedis {
    /// Starts a server with `args` (see [`RedisServer::start_with`]) and
    /// connects a store configured by `adjust`.
    pub async fn start(args: &[&str], adjust: impl FnOnce(RedisConfig) -> RedisConfig) -> Self {
        let server = RedisServer::start_with(args);
        let storage = RedisStorage::connect(adjust(RedisConfig::new(server.url())))
            .await
            .expect("connect to the private redis-server");
        Self { server, storage }
    }

    /// Kills the server as a crash would, and waits for it to exit.
    pub fn kill(&mut self) {
        tokio::task::block_in_place(|| self.server.kill());
    }

    /// Starts the server again on the same port and directory.
    pub fn restart(&mut self) {
        tokio::task::block_in_place(|| self.server.restart());
    }
}

impl Harness for OwnedRedis {
    type Storage = RedisStorage;

    fn storage(&self) -> &RedisStorage {
        &self.storage
    }

    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }

    fn supports_predicates(&self) -> bool {
        false
    }

    /// [`index_problems`]: the scripts' words, flags, indexes and counters.
    async fn store_problems(&self, pool: &pharox_core::PoolId) -> Vec<String> {
        index_problems(&self.storage, pool).await
    }

    async fn record_stats(&self, snapshot: &pharox_core::PoolStatsSnapshot) -> bool {
        self.storage
            .record_stats(snapshot, 100)
            .await
            .expect("record a stats snapshot");
        true
    }
}

/// Checks the Redis-internal bookkeeping of a pool that nobody is using at
/// the moment (it reads with several commands), against the layout of
/// `lua/layout.lua` through its Rust mirror [`crate::layout`]: every proxy
/// word unpacks; its active flag agrees with its stored status; room plus
/// load equal its cap; its load equals its live leases; it is in
/// `free_by_seq` exactly when active with room; an active proxy with room is
/// in `free_by_load` and `free_by_latency` (full ones may linger there, to
/// be dropped when met), its flags say so, and `free_by_load` scores it at
/// the indexed load the word records, never above its load; its latency
/// score matches its stored latency; it is in `all_by_seq` and in the
/// `by_value` index of each of its values, and no index names a missing
/// proxy or a proxy without that value; `value_index_keys` lists exactly
/// the `by_value` keys that exist; the active-proxy and leased-proxy
/// counters agree with the words; no sequence is above the last one handed
/// out; and the expiry hint is not after the earliest deadline. Returns what
/// disagrees (empty when sound).
///
/// The public invariant checks see these only once they surface as wrong
/// stats or selections; this sees them as soon as they happen.
pub async fn index_problems(storage: &RedisStorage, pool: &pharox_core::PoolId) -> Vec<String> {
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    use crate::layout::{self, Slot, Word};
    use crate::redis::cmd;

    let k = crate::keys::PoolKeys::new(&storage.config().prefix, pool);
    let ids: HashMap<String, u64> = q(storage, cmd("HGETALL").arg(&k.seq_by_id).clone()).await;
    let px: HashMap<u64, String> = q(storage, cmd("HGETALL").arg(&k.proxy_by_seq).clone()).await;
    let latency: HashMap<u64, u64> =
        q(storage, cmd("HGETALL").arg(&k.latency_by_seq).clone()).await;
    let free = zset(storage, &k.free_by_seq).await;
    let by_load = zset(storage, &k.free_by_load).await;
    let by_latency = zset(storage, &k.free_by_latency).await;
    let all = zset(storage, &k.all_by_seq).await;
    // Ordered by deadline: the first is the earliest.
    let leases: Vec<(String, f64)> = q(
        storage,
        cmd("ZRANGE")
            .arg(&k.leases_by_deadline)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .clone(),
    )
    .await;
    let by_token: HashMap<u64, String> =
        q(storage, cmd("HGETALL").arg(&k.lease_by_token).clone()).await;
    let mut held: HashMap<u64, u32> = HashMap::new();
    let mut out = Vec::new();
    for (m, _) in &leases {
        match layout::LeaseMember::parse(m) {
            Some(member) => {
                *held.entry(member.seq).or_default() += 1;
                if by_token.get(&member.token) != Some(m) {
                    out.push(format!(
                        "lease {m}: lease_by_token has {:?} for its token",
                        by_token.get(&member.token)
                    ));
                }
            }
            None => out.push("a lease member does not parse".to_owned()),
        }
    }
    // lease_by_token holds exactly the live members.
    if by_token.len() != leases.len() {
        out.push(format!(
            "lease_by_token has {} entries for {} live leases",
            by_token.len(),
            leases.len()
        ));
    }
    // One read of the counters and of every proxy's word, in `ids` order.
    let ids: Vec<(String, u64)> = ids.into_iter().collect();
    let counters = [Slot::Active, Slot::Leased, Slot::ExpiryHint, Slot::LastSeq];
    let mut get = cmd("BITFIELD_RO");
    get.arg(&k.counters);
    for offset in counters
        .iter()
        .map(|s| s.offset())
        .chain(ids.iter().map(|(_, seq)| layout::word_offset(*seq)))
    {
        get.arg("GET").arg("i64").arg(offset);
    }
    let words: Vec<i64> = q(storage, get).await;
    let (active_counter, leased_counter, hint, last_seq) = (words[0], words[1], words[2], words[3]);
    let words = &words[counters.len()..];
    let mut expected_ix: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let (mut active_count, mut leased_count) = (0, 0);
    for ((id, seq), &w) in ids.iter().zip(words) {
        let seq = *seq;
        let mut bad = |what: String| out.push(format!("proxy {id} (seq {seq}): {what}"));
        let Some(word) = Word::unpack(w) else {
            bad(format!("word {w:#x} has bits the layout never sets"));
            continue;
        };
        let Some(stored) = px
            .get(&seq)
            .and_then(|j| serde_json::from_str::<pharox_core::Proxy>(j).ok())
        else {
            bad("no parsable stored record".to_owned());
            continue;
        };
        let stored_active = stored.status == pharox_core::ProxyStatus::Active;
        let cap = stored.capacity();
        if word.active != stored_active {
            bad(format!(
                "active flag {}, stored status active {stored_active}",
                word.active
            ));
        }
        if word.room + word.load != cap {
            bad(format!(
                "room {} + load {} differ from the cap {cap}",
                word.room, word.load
            ));
        }
        if word.load != held.get(&seq).copied().unwrap_or(0) {
            bad(format!(
                "load {}, live leases {:?}",
                word.load,
                held.get(&seq)
            ));
        }
        if seq < layout::FIRST_SEQ || seq > u64::try_from(last_seq).unwrap_or(0) {
            bad(format!(
                "sequence outside {}..={last_seq}",
                layout::FIRST_SEQ
            ));
        }
        let key = stored
            .latency_ms
            .map_or(crate::MAX_SORTED_LATENCY_MS + 1, |l| {
                l.min(crate::MAX_SORTED_LATENCY_MS)
            });
        let want_latency = layout::latency_score(key, seq);
        if latency.get(&seq) != Some(&want_latency) {
            bad(format!(
                "latency score {:?}, want {want_latency}",
                latency.get(&seq)
            ));
        }
        match (word.is_free(), free.get(&seq)) {
            (true, Some(&s)) if s != seq => bad(format!("free_by_seq score {s}")),
            (true, None) => bad("active with room but missing from free_by_seq".to_owned()),
            (false, Some(_)) => bad(format!(
                "in free_by_seq while active {} with room {}",
                word.active, word.room
            )),
            _ => {}
        }
        if word.indexed_load > word.load {
            bad(format!(
                "indexed load {} above the load {}",
                word.indexed_load, word.load
            ));
        }
        let lazy = [
            (
                "free_by_load",
                word.in_load_index,
                by_load.get(&seq),
                layout::load_score(word.indexed_load, seq),
            ),
            (
                "free_by_latency",
                word.in_latency_index,
                by_latency.get(&seq),
                want_latency,
            ),
        ];
        for (name, flag, score, want) in lazy {
            if word.is_free() && !flag {
                bad(format!(
                    "active with room but not in {name}: its selector would skip it"
                ));
            }
            match (flag, score) {
                (true, Some(&s)) if s != want => bad(format!("{name} score {s}, want {want}")),
                (true, None) | (false, Some(_)) => {
                    bad(format!("{name} flag {flag} but entry {:?}", score))
                }
                _ => {}
            }
            if flag && !word.active {
                bad(format!("in {name} while inactive"));
            }
        }
        if all.get(&seq) != Some(&seq) {
            bad("missing from all_by_seq".to_owned());
        }
        for key in crate::store::index_keys(&k, &stored) {
            expected_ix.entry(key).or_default().insert(seq);
        }
        active_count += i64::from(word.active);
        leased_count += i64::from(word.load > 0);
    }
    let known: BTreeSet<u64> = ids.iter().map(|(_, seq)| *seq).collect();
    for (name, index) in [
        ("free_by_seq", &free),
        ("free_by_load", &by_load),
        ("free_by_latency", &by_latency),
        ("all_by_seq", &all),
    ] {
        for seq in index.keys().filter(|s| !known.contains(s)) {
            out.push(format!("{name} holds sequence {seq}, which is no proxy"));
        }
    }
    for seq in latency.keys().filter(|s| !known.contains(s)) {
        out.push(format!(
            "latency_by_seq holds sequence {seq}, which is no proxy"
        ));
    }
    for (seq, n) in &held {
        if !known.contains(seq) {
            out.push(format!(
                "{n} live lease(s) on sequence {seq}, which is no proxy"
            ));
        }
    }
    let listed: BTreeSet<String> =
        q(storage, cmd("SMEMBERS").arg(&k.value_index_keys).clone()).await;
    let wanted: BTreeSet<String> = expected_ix.keys().cloned().collect();
    if listed != wanted {
        out.push(format!(
            "value_index_keys lists {} keys, the proxies' values make {} (missing {:?}, extra {:?})",
            listed.len(),
            wanted.len(),
            wanted.difference(&listed).count(),
            listed.difference(&wanted).count()
        ));
    }
    for key in listed.union(&wanted) {
        let have: BTreeSet<u64> = zset(storage, key).await.into_keys().collect();
        let want = expected_ix.get(key).cloned().unwrap_or_default();
        if have != want {
            out.push(format!(
                "a by_value index has {} members, its value is held by {} proxies",
                have.len(),
                want.len()
            ));
        }
    }
    if let Some((_, deadline)) = leases.first()
        && hint > *deadline as i64
    {
        out.push(format!(
            "expiry hint {hint} is after the earliest deadline {deadline}: acquires would not reclaim"
        ));
    }
    if [active_counter, leased_counter] != [active_count, leased_count] {
        out.push(format!(
            "counters active {active_counter} leased {leased_counter}, words say {active_count} and {leased_count}"
        ));
    }
    out
}

/// A sorted set as member → score, for [`index_problems`].
async fn zset(storage: &RedisStorage, key: &str) -> std::collections::HashMap<u64, u64> {
    let pairs: Vec<(u64, f64)> = q(
        storage,
        crate::redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .clone(),
    )
    .await;
    pairs.into_iter().map(|(m, s)| (m, s as u64)).collect()
}

async fn q<T: crate::redis::FromRedisValue>(storage: &RedisStorage, c: crate::redis::Cmd) -> T {
    storage
        .raw_command::<T>(&c)
        .await
        .expect("read for index_problems")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port another process holds: redis-server exits, and the launch
    /// says so (instead of waiting 30 s on a port it never bound).
    #[test]
    fn a_launch_on_a_taken_port_reports_the_exit() {
        let holder = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = holder.local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("pharox-redis-taken-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = RedisServer {
            child: None,
            port,
            dir,
            extra: NO_PERSISTENCE.iter().map(|s| (*s).to_owned()).collect(),
            tls: None,
            sentinel_conf: None,
        };
        let started = Instant::now();
        assert!(!server.try_launch());
        assert!(started.elapsed() < Duration::from_secs(30));
        drop(holder);
        // And a fresh start finds a free port.
        let ok = RedisServer::start();
        assert!(ping(ok.port()));
    }
}
