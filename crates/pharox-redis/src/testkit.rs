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
        Self::start_with(&["--save", "", "--appendonly", "no"])
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
}
