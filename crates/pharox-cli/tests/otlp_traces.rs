//! `--otlp-endpoint`: `pharox serve` and `pharox worker` export their spans
//! over OTLP/HTTP (protobuf) to a collector. The collector here is an
//! in-process HTTP server that keeps every `POST /v1/traces` body; a span's
//! name, its string attributes and the service name are UTF-8 strings in
//! the protobuf encoding, so the test finds them in the bodies. Without an
//! endpoint nothing is sent.

mod server;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pharox_core::testkit::PATIENCE;
use pharox_redis::testkit::RedisServer;
use server::{Serve, output_within, pharox};

/// One request the collector received: path, content type, body.
type Received = (String, String, Vec<u8>);

/// Bodies received, with the path and content type of each request.
#[derive(Default, Clone)]
struct Collector {
    requests: Arc<Mutex<Vec<Received>>>,
    base: String,
}

impl Collector {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let collector = Self {
            base: format!("http://{}", listener.local_addr().unwrap()),
            ..Self::default()
        };
        let kept = collector.requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let kept = kept.clone();
                std::thread::spawn(move || serve_connection(stream, &kept));
            }
        });
        collector
    }

    /// Every body sent to /v1/traces, as one byte string.
    fn traces(&self) -> Vec<u8> {
        let requests = self.requests.lock().unwrap();
        let mut all = Vec::new();
        for (path, content_type, body) in requests.iter() {
            assert_eq!(path, "/v1/traces");
            assert_eq!(content_type, "application/x-protobuf");
            all.extend_from_slice(body);
        }
        all
    }

    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

/// HTTP/1.1 with keep-alive: reads requests with a Content-Length body and
/// answers each `200` with an empty protobuf body (an empty
/// ExportTraceServiceResponse).
fn serve_connection(stream: std::net::TcpStream, kept: &Mutex<Vec<Received>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let (mut length, mut content_type) = (0usize, String::new());
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "content-type" => content_type = value.trim().to_owned(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        kept.lock().unwrap().push((path, content_type, body));
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Runs an admin command against `serve`, which must succeed; returns stdout.
fn admin(serve: &Serve, key: &str, args: &[&str]) -> String {
    let mut cmd = pharox();
    cmd.args(args)
        .args(["--server", serve.base()])
        .env("PHAROX_API_KEY", key);
    let out = output_within(&mut cmd, PATIENCE, &format!("pharox {}", args.join(" ")));
    assert!(
        out.status.success(),
        "pharox {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn serve_exports_the_lease_spans() {
    let collector = Collector::start();
    let key = format!("otlp-{:016x}", fastrand::u64(..));
    let mut serve = Serve::start(&["--otlp-endpoint", &collector.base], Some(&key));
    admin(&serve, &key, &["pool", "create", "traced-pool"]);
    let dir = std::env::temp_dir().join(format!(
        "otlp-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("p.txt");
    std::fs::write(&file, "http://u:otlp-secret-pw@203.0.113.5:8080\n").unwrap();
    admin(
        &serve,
        &key,
        &[
            "proxy",
            "import",
            file.to_str().unwrap(),
            "--pool",
            "traced-pool",
        ],
    );
    let lease: serde_json::Value = serde_json::from_str(&admin(
        &serve,
        &key,
        &[
            "lease",
            "acquire",
            "--pool",
            "traced-pool",
            "--json",
            "--consumer",
            "otlp-consumer",
        ],
    ))
    .unwrap();
    let id = lease["id"].as_str().unwrap();
    admin(
        &serve,
        &key,
        &["lease", "renew", "--pool", "traced-pool", id],
    );
    admin(
        &serve,
        &key,
        &["lease", "release", "--pool", "traced-pool", id],
    );
    // Stopping flushes what the batch has not sent yet.
    assert!(serve.terminate().success(), "{}", serve.log_tail(20));

    let traces = collector.traces();
    for s in [
        "acquire",
        "release",
        "renew",
        "traced-pool",
        "otlp-consumer",
        "leased",
        "released",
        "renewed",
        "pharox-serve",
        id,
    ] {
        assert!(contains(&traces, s), "no {s:?} in the exported spans");
    }
    assert!(!contains(&traces, "otlp-secret-pw"), "a password in a span");
    assert!(!contains(&traces, &key), "the API key in a span");
}

/// A `pharox worker` child, killed on drop.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_worker_exports_sweep_and_health_check_spans() {
    let collector = Collector::start();
    let redis = RedisServer::start();
    let url = format!("redis://127.0.0.1:{}", redis.port());
    let mut create = pharox();
    create.args(["pool", "create", "swept-pool", "--redis-url", &url]);
    assert!(
        output_within(&mut create, PATIENCE, "pool create")
            .status
            .success()
    );
    // A proxy on a closed loopback port: each check fails at once.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = std::env::temp_dir().join(format!(
        "otlp-w-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("p.txt");
    std::fs::write(&file, format!("http://{closed}\n")).unwrap();
    let mut import = pharox();
    import.args([
        "proxy",
        "import",
        file.to_str().unwrap(),
        "--pool",
        "swept-pool",
        "--redis-url",
        &url,
        "--allow-proxy-hosts",
        "127.0.0.1",
    ]);
    let out = output_within(&mut import, PATIENCE, "proxy import");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let child = pharox()
        .args([
            "worker",
            "--redis-url",
            &url,
            "--sweep-interval",
            "100ms",
            "--metrics-addr",
            "off",
            "--health-target",
            "http://example.invalid/",
            "--health-interval",
            "200ms",
            "--health-timeout",
            "2s",
            "--allow-proxy-hosts",
            "127.0.0.1",
            "--otlp-endpoint",
            &collector.base,
        ])
        // Export each batch within 100 ms instead of the default 5 s.
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut worker = Worker(child);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let traces = collector.traces();
        if ["sweep", "health_check", "swept-pool", "pharox-worker"]
            .iter()
            .all(|s| contains(&traces, s))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no sweep and health_check spans within {PATIENCE:?} ({} requests)",
            collector.count()
        );
        assert!(worker.0.try_wait().unwrap().is_none(), "the worker exited");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn without_an_endpoint_nothing_is_exported() {
    let collector = Collector::start();
    let key = format!("otlp-{:016x}", fastrand::u64(..));
    // The collector exists, but nothing names it.
    let mut serve = Serve::start(&[], Some(&key));
    admin(&serve, &key, &["pool", "create", "quiet-pool"]);
    assert!(serve.terminate().success());
    assert_eq!(collector.count(), 0);
}
