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
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
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
    pub fn start_with(args: &[&str]) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("pharox-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the server's directory");
        let mut server = Self {
            child: None,
            port,
            dir,
            extra: args.iter().map(|s| (*s).to_owned()).collect(),
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir)
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
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ping(self.port) {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer PING within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
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
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// [`RedisStorage`] on a private server (or `PHAROX_TEST_REDIS_URL`), for
/// the contract suite. Time passes for real: `advance` sleeps.
#[derive(Debug, Clone)]
pub struct RedisHarness {
    server: Option<Arc<RedisServer>>,
    storage: RedisStorage,
}

impl RedisHarness {
    /// A store on a fresh private server with a default configuration.
    pub async fn start() -> Self {
        Self::start_with(|c| c).await
    }

    /// A store on a fresh private server, with the configuration adjusted.
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
        let storage = RedisStorage::connect(adjust(RedisConfig::new(url).prefix(prefix)))
            .await
            .expect("connect to the test redis-server");
        Self { server, storage }
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
}

/// Checks the Redis-internal bookkeeping of a pool that nobody is using at
/// the moment (it reads with several commands): every proxy word has only
/// known flag bits; its `active` flag agrees with its stored status; room
/// plus load equal its cap; it is in `free` exactly when active with room,
/// and then also in the least-used and latency indexes; its "in load" and
/// "in lat" flags agree with membership of those indexes (with the load
/// score it records, never above its load); its load equals its live leases;
/// the indexes name no missing proxy; the active-proxy and leased-proxy
/// counters agree with the words; and the expiry hint is not after the
/// earliest deadline. Returns what disagrees (empty when sound).
///
/// The public invariant checks see these only once they surface as wrong
/// stats or selections; this sees them as soon as they happen.
pub async fn index_problems(storage: &RedisStorage, pool: &pharox_core::PoolId) -> Vec<String> {
    use std::collections::HashMap;

    use crate::redis::cmd;

    const P32: i64 = 1 << 32;
    let k = crate::keys::PoolKeys::new(&storage.config().prefix, pool);
    let ids: HashMap<String, i64> = q(storage, cmd("HGETALL").arg(&k.ids).clone()).await;
    let px: HashMap<i64, String> = q(storage, cmd("HGETALL").arg(&k.px).clone()).await;
    let free = zset(storage, &k.free).await;
    let load_ix = zset(storage, &k.load).await;
    let lat_ix = zset(storage, &k.lat).await;
    // Ordered by deadline: the first is the earliest.
    let leases: Vec<(String, f64)> = q(
        storage,
        cmd("ZRANGE")
            .arg(&k.exp)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .clone(),
    )
    .await;
    let mut held: HashMap<i64, i64> = HashMap::new();
    for (m, _) in &leases {
        let seq = m
            .split(':')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1);
        *held.entry(seq).or_default() += 1;
    }
    // One read of the counters (#4 active, #5 leased, #9 expiry hint) and
    // of every proxy's word, in `ids` order.
    let ids: Vec<(String, i64)> = ids.into_iter().collect();
    let mut get = cmd("BITFIELD");
    get.arg(&k.hot);
    for slot in [4, 5, 9].into_iter().chain(ids.iter().map(|(_, seq)| *seq)) {
        get.arg("GET").arg("i64").arg(format!("#{slot}"));
    }
    let hot: Vec<i64> = q(storage, get).await;
    let (counters, hint, words) = ([hot[0], hot[1]], hot[2], &hot[3..]);
    let mut out = Vec::new();
    let (mut active_count, mut leased_count) = (0, 0);
    for ((id, seq), &w) in ids.iter().zip(words) {
        let (room, load, ixload, flags) =
            (w & 0xffff, (w >> 16) & 0xffff, (w >> 32) & 0xffff, w >> 48);
        let (active, inload, inlat) = (flags & 1 == 1, flags & 2 == 2, flags & 4 == 4);
        let stored = px
            .get(seq)
            .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
            .unwrap_or_default();
        let stored_active = stored["status"] == "active";
        let cap = stored["max_concurrency"]
            .as_i64()
            .unwrap_or(i64::from(crate::MAX_CONCURRENCY));
        let mut bad = |what: String| out.push(format!("proxy {id} (seq {seq}): {what}"));
        if flags >= 8 {
            bad(format!("unknown flag bits in {flags:#b}"));
        }
        if active != stored_active {
            bad(format!(
                "active flag {active}, stored status active {stored_active}"
            ));
        }
        if room + load != cap {
            bad(format!(
                "room {room} + load {load} differ from the cap {cap}"
            ));
        }
        if inload && ixload > load {
            bad(format!("index load {ixload} above the load {load}"));
        }
        if active && room > 0 && !(inload && inlat) {
            bad(format!(
                "active with room but in-load {inload}, in-lat {inlat}: \
                 least-used or lowest-latency would skip it"
            ));
        }
        if free.contains_key(seq) != (active && room > 0) {
            bad(format!(
                "in free {} with active {active}, room {room}",
                free.contains_key(seq)
            ));
        }
        match (inload, load_ix.get(seq)) {
            (true, Some(score)) if *score as i64 != ixload * P32 + seq => bad(format!(
                "load score {score} but recorded index load {ixload}"
            )),
            (true, None) | (false, Some(_)) => bad(format!(
                "in-load flag {inload}, in load index {}",
                load_ix.contains_key(seq)
            )),
            _ => {}
        }
        if inlat != lat_ix.contains_key(seq) {
            bad(format!(
                "in-lat flag {inlat}, in lat index {}",
                lat_ix.contains_key(seq)
            ));
        }
        if load != held.get(seq).copied().unwrap_or(0) {
            bad(format!("load {load}, live leases {:?}", held.get(seq)));
        }
        active_count += i64::from(active);
        leased_count += i64::from(load > 0);
    }
    let known: std::collections::HashSet<i64> = ids.iter().map(|(_, seq)| *seq).collect();
    for (name, index) in [("free", &free), ("load", &load_ix), ("lat", &lat_ix)] {
        for seq in index.keys().filter(|s| !known.contains(s)) {
            out.push(format!("{name} holds sequence {seq}, which is no proxy"));
        }
    }
    if let Some((_, deadline)) = leases.first()
        && hint > *deadline as i64
    {
        out.push(format!(
            "expiry hint {hint} is after the earliest deadline {deadline}: acquires would not reclaim"
        ));
    }
    if counters != [active_count, leased_count] {
        out.push(format!(
            "counters active {} leased {}, words say {active_count} and {leased_count}",
            counters[0], counters[1]
        ));
    }
    out
}

/// A sorted set as member → score, for [`index_problems`].
async fn zset(storage: &RedisStorage, key: &str) -> std::collections::HashMap<i64, f64> {
    let pairs: Vec<(i64, f64)> = q(
        storage,
        crate::redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .clone(),
    )
    .await;
    pairs.into_iter().collect()
}

async fn q<T: crate::redis::FromRedisValue>(storage: &RedisStorage, c: crate::redis::Cmd) -> T {
    storage
        .raw_command::<T>(&c)
        .await
        .expect("read for index_problems")
}
