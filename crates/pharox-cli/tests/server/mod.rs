//! `pharox serve` as a child process for the CLI tests: started on a port the
//! kernel picks, its log kept (and its tail printed when a test fails),
//! killed on drop.
#![allow(dead_code)] // each test file uses part of it

pub mod readme;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pharox_core::testkit::PATIENCE;

/// The `pharox` binary, without the serve settings of the environment
/// running the tests.
pub fn pharox() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("pharox"));
    for var in [
        "PHAROX_API_KEYS",
        "PHAROX_API_KEYS_FILE",
        "PHAROX_REDIS_URL",
        "PHAROX_POSTGRES_URL",
        "PHAROX_LISTEN",
        "PHAROX_ALLOW_PROXY_HOSTS",
        "PHAROX_SERVER",
        "PHAROX_API_KEY",
        "PHAROX_CONSUMER",
        "PHAROX_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// The stdout and stderr of `out`, a run of `pharox args…` that must have
/// exited with `code` (else a panic showing both).
pub fn exited_with(out: &Output, code: i32, args: &[&str]) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "pharox {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        args.join(" ")
    );
    (stdout, stderr)
}

/// Runs `cmd` to completion with its output captured; kills it and panics
/// naming `what` if it is still running after `limit`.
pub fn output_within(cmd: &mut Command, limit: Duration, what: &str) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap_or_else(|e| panic!("waiting for {what}: {e}")),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{what} did not finish within {limit:?}");
        }
    }
}

/// A running `pharox serve`.
pub struct Serve {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    /// Starts `pharox serve --listen 127.0.0.1:0 args` (`args` chooses the
    /// store: nothing for memory, `--redis-url URL` for Redis) with `keys` in
    /// `PHAROX_API_KEYS`; returns once it listens (it prints its address
    /// after binding), or panics with its log after [`PATIENCE`].
    pub fn start(args: &[&str], keys: Option<&str>) -> Self {
        let mut cmd = pharox();
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(k) = keys {
            cmd.env("PHAROX_API_KEYS", k);
        }
        let mut child = cmd.spawn().expect("starting pharox serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let kept = log.clone();
        // Drains stderr for the server's whole life, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("pharox serve: listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
                kept.lock().unwrap().push(line);
            }
        });
        let mut serve = Self {
            child,
            base: String::new(),
            log,
        };
        match rx.recv_timeout(PATIENCE) {
            Ok(base) => serve.base = base,
            Err(_) => panic!(
                "pharox serve did not listen within {PATIENCE:?}\n{}",
                serve.log_tail(40)
            ),
        }
        serve
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The last `n` lines the server wrote to stderr.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().unwrap();
        let from = log.len().saturating_sub(n);
        format!(
            "--- pharox serve log (last {} lines) ---\n{}",
            log.len() - from,
            log[from..].join("\n")
        )
    }

    /// Sends SIGTERM and waits (up to [`PATIENCE`]) for the server to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let kill = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "pharox serve did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail(40));
        }
    }
}
