//! `pharox serve` as users run it: on the in-memory store, with keys from the
//! environment, stopped by SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

fn pharox() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("pharox"));
    for var in [
        "PHAROX_API_KEYS",
        "PHAROX_API_KEYS_FILE",
        "PHAROX_REDIS_URL",
        "PHAROX_LISTEN",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Starts `pharox serve args`; returns the child and its base URL, read from
/// the line it prints once listening (its stderr keeps being drained).
fn start(args: &[&str], keys: Option<&str>) -> (Child, String) {
    let mut cmd = pharox();
    cmd.arg("serve")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(k) = keys {
        cmd.env("PHAROX_API_KEYS", k);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("pharox serve exited before listening")
            .unwrap();
        if let Some(addr) = line.strip_prefix("pharox serve: listening on ") {
            break addr.to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (child, base)
}

fn wait_for_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "pharox serve did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serve_refuses_a_public_address_without_keys() {
    let out = pharox()
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without API keys"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_with_a_key_and_stops_on_sigterm() {
    let (mut child, base) = start(&["--listen", "127.0.0.1:0"], Some("cli-key"));
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{base}/v1/pools/"))
        .header("X-API-Key", "cli-key")
        .json(&json!({"name": "from-cli", "description": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let anonymous = http.get(format!("{base}/v1/pools/")).send().await.unwrap();
    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
    let listed: serde_json::Value = http
        .get(format!("{base}/v1/pools/"))
        .header("X-API-Key", "cli-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["name"], "from-cli");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || wait_for_exit(&mut child))
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}
