//! A `pharox serve` child process on Redis, for `pharox bench --backend
//! http`: the real binary, started on a free loopback port, stopped when
//! dropped.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The line `pharox serve` always writes to standard error once it listens.
pub const LISTENING_PREFIX: &str = "pharox serve: listening on ";

/// How long the child may take to print [`LISTENING_PREFIX`].
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the child serves Redis from.
#[derive(Clone)]
pub struct ServeTarget<'a> {
    /// Redis URL; given through `PHAROX_REDIS_URL`, never as an argument
    /// (arguments show in `ps`).
    pub redis_url: &'a str,
    /// Key prefix in Redis.
    pub redis_prefix: &'a str,
    /// Pass `--redis-allow-eviction`.
    pub allow_eviction: bool,
    /// The TLS files of a `rediss://` URL (passed as PHAROX_REDIS_CA,
    /// PHAROX_REDIS_CERT, PHAROX_REDIS_KEY).
    pub tls: &'a pharox_redis::RedisTls,
    /// The one API key the child accepts (through `PHAROX_API_KEYS`).
    pub api_key: &'a str,
}

impl std::fmt::Debug for ServeTarget<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeTarget")
            .field("redis_prefix", &self.redis_prefix)
            .field("allow_eviction", &self.allow_eviction)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// A running `pharox serve`; killed when dropped.
#[derive(Debug)]
pub struct ServeChild {
    child: Child,
    url: String,
}

impl ServeChild {
    /// Starts `exe serve --listen 127.0.0.1:0` on `target` and waits until
    /// it listens. Its log lines (standard error) are read and dropped, so
    /// the server runs with its default logging, access log included.
    ///
    /// # Errors
    /// When the child cannot be started, exits, or does not listen within
    /// [`START_TIMEOUT`]; the error carries its last lines of output.
    pub async fn start(exe: &Path, target: &ServeTarget<'_>) -> Result<Self> {
        let mut cmd = Command::new(exe);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--redis-prefix"])
            .arg(target.redis_prefix)
            .env("PHAROX_REDIS_URL", target.redis_url)
            .env("PHAROX_API_KEYS", target.api_key)
            .env_remove("PHAROX_API_KEYS_FILE")
            .env_remove("PHAROX_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (var, path) in [
            ("PHAROX_REDIS_CA", &target.tls.ca_file),
            ("PHAROX_REDIS_CERT", &target.tls.cert_file),
            ("PHAROX_REDIS_KEY", &target.tls.key_file),
        ] {
            match path {
                Some(p) => cmd.env(var, p),
                None => cmd.env_remove(var),
            };
        }
        if target.allow_eviction {
            cmd.arg("--redis-allow-eviction");
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {} serve", exe.display()))?;
        let stderr = child.stderr.take().context("the child's standard error")?;
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        let url = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix(LISTENING_PREFIX) {
                    return Ok(Some(url.trim().to_owned()));
                }
                seen.push(line);
            }
            std::io::Result::Ok(None)
        })
        .await;
        let last = || {
            seen.iter()
                .rev()
                .take(10)
                .rev()
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        };
        let url = match url {
            Ok(Ok(Some(url))) => url,
            Ok(Ok(None)) => bail!("pharox serve exited before listening:\n{}", last()),
            Ok(Err(e)) => return Err(e).context("reading pharox serve's output"),
            Err(_) => bail!(
                "pharox serve did not listen within {} s:\n{}",
                START_TIMEOUT.as_secs(),
                last()
            ),
        };
        // Keep reading, so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, url })
    }

    /// The base URL it serves (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its process id (`None` once it has been reaped).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops the child and waits for it.
    ///
    /// # Errors
    /// When it cannot be signalled or waited for.
    pub async fn stop(mut self) -> Result<()> {
        self.child.start_kill().context("stopping pharox serve")?;
        self.child
            .wait()
            .await
            .context("waiting for pharox serve")?;
        Ok(())
    }
}

/// A random API key of 32 hex digits, for a child only this process talks to.
pub fn random_key() -> String {
    (0..4)
        .map(|_| format!("{:08x}", fastrand::u32(..)))
        .collect()
}
