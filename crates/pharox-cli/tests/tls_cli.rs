//! `pharox` commands against a TLS-only redis-server (`rediss://`, a
//! password, mutual TLS) with `--redis-ca`, `--redis-cert` and `--redis-key`
//! (and their `PHAROX_REDIS_*` variables): admin commands and `pharox
//! stats` work; a wrong CA fails with the clear message and exit status 2,
//! never printing the password or the key.

#[path = "../../pharox-redis/tests/tls_pki/mod.rs"]
mod tls_pki;

mod server;

use std::process::Output;
use std::time::Duration;

use pharox_redis::testkit::RedisServer;
use serde_json::Value;
use server::{output_within, pharox};

/// Far beyond what one command takes, even on a loaded machine.
const LIMIT: Duration = Duration::from_secs(300);

/// The server's `requirepass`: never printed.
const PASSWORD: &str = "tls-cli-s3cret-9d8c";

struct Tls {
    pki: tls_pki::Pki,
    server: RedisServer,
}

impl Tls {
    fn start() -> Self {
        let pki = tls_pki::Pki::new();
        let server = RedisServer::start_tls(pki.server(true), &["--requirepass", PASSWORD]);
        Self { pki, server }
    }

    fn url(&self) -> String {
        format!("rediss://:{PASSWORD}@127.0.0.1:{}", self.server.port())
    }

    /// `pharox ARGS --redis-url URL --redis-ca CA --redis-cert … --redis-key …`.
    fn run(&self, args: &[&str], ca: &std::path::Path) -> Output {
        let mut cmd = pharox();
        cmd.args(args)
            .arg("--redis-url")
            .arg(self.url())
            .arg("--redis-ca")
            .arg(ca)
            .arg("--redis-cert")
            .arg(&self.pki.client_cert)
            .arg("--redis-key")
            .arg(&self.pki.client_key);
        output_within(&mut cmd, LIMIT, &format!("pharox {}", args.join(" ")))
    }
}

/// stdout and stderr of `out`, after checking its exit status is `code`
/// and that neither shows the password or the client key.
fn expect(out: &Output, code: i32, what: &str, key_pem: &str) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );
    let key_line = key_pem
        .lines()
        .find(|l| !l.starts_with("-----"))
        .expect("a key body");
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains(PASSWORD),
            "{what} printed the password:\n{text}"
        );
        assert!(!text.contains(key_line), "{what} printed the key:\n{text}");
    }
    (stdout, stderr)
}

#[test]
fn admin_commands_and_stats_run_over_mutual_tls() {
    let tls = Tls::start();
    let key = std::fs::read_to_string(&tls.pki.client_key).unwrap();
    let ca = tls.pki.ca.clone();
    let (out, _) = expect(
        &tls.run(&["pool", "create", "tls-pool"], &ca),
        0,
        "pool create",
        &key,
    );
    assert!(out.contains("pool tls-pool ready"), "{out}");
    let file = tls.pki.path("proxies.txt");
    std::fs::write(&file, "203.0.113.10:8080\n203.0.113.11:3128\n").unwrap();
    let file = file.to_str().unwrap();
    expect(
        &tls.run(&["proxy", "import", file, "--pool", "tls-pool"], &ca),
        0,
        "proxy import",
        &key,
    );
    let (out, _) = expect(
        &tls.run(&["stats", "--pool", "tls-pool", "--json"], &ca),
        0,
        "stats",
        &key,
    );
    let stats: Value = serde_json::from_str(out.lines().next().unwrap_or("")).unwrap();
    assert_eq!(stats["total"], 2, "{out}");

    // The same through the environment.
    let mut cmd = pharox();
    cmd.args(["pool", "list"])
        .env("PHAROX_REDIS_URL", tls.url())
        .env("PHAROX_REDIS_CA", &ca)
        .env("PHAROX_REDIS_CERT", &tls.pki.client_cert)
        .env("PHAROX_REDIS_KEY", &tls.pki.client_key);
    let (out, _) = expect(
        &output_within(&mut cmd, LIMIT, "pharox pool list"),
        0,
        "pool list (environment)",
        &key,
    );
    assert!(out.contains("tls-pool"), "{out}");
}

#[test]
fn a_wrong_ca_fails_clearly_with_exit_status_2() {
    let tls = Tls::start();
    let key = std::fs::read_to_string(&tls.pki.client_key).unwrap();
    for args in [&["pool", "list"][..], &["stats", "--pool", "any"][..]] {
        let out = tls.run(args, &tls.pki.other_ca);
        let (_, stderr) = expect(&out, 2, &format!("{args:?} with a wrong CA"), &key);
        assert!(stderr.contains("not trusted"), "{stderr}");
        assert!(stderr.contains("--redis-ca"), "{stderr}");
        assert!(
            stderr.contains("rediss://:***@127.0.0.1") || !stderr.contains("rediss://"),
            "{stderr}"
        );
    }
}
