//! `pharox serve` as users run it: on the in-memory store, with keys from the
//! environment, stopped by SIGTERM.

mod server;

use serde_json::json;
use server::{Serve, pharox};

/// Runs `pharox serve args`, which must refuse to start (exit 2); its stderr.
fn serve_refuses(args: &[&str]) -> String {
    let out = pharox().arg("serve").args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    stderr
}

#[test]
fn serve_refuses_a_public_address_without_keys() {
    let stderr = serve_refuses(&["--listen", "0.0.0.0:0"]);
    assert!(stderr.contains("without API keys"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_with_a_key_and_stops_on_sigterm() {
    let mut serve = Serve::start(&[], Some("cli-key"));
    let base = serve.base().to_owned();
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
    let status = tokio::task::spawn_blocking(move || serve.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_loopback_proxy_hosts_unless_allowed() {
    let http = reqwest::Client::new();
    for (args, want) in [
        (&[][..], reqwest::StatusCode::BAD_REQUEST),
        (
            &["--allow-proxy-hosts", "127.0.0.0/8"][..],
            reqwest::StatusCode::CREATED,
        ),
    ] {
        let mut serve = Serve::start(args, None);
        let base = serve.base().to_owned();
        let pool = http
            .post(format!("{base}/v1/pools/"))
            .json(&json!({"name": "p", "description": ""}))
            .send()
            .await
            .unwrap();
        assert_eq!(pool.status(), reqwest::StatusCode::CREATED);
        // The pool's name works where its id goes.
        let added = http
            .post(format!("{base}/v1/pools/p/proxies/"))
            .json(&json!({"host": "127.0.0.1", "port": 3128}))
            .send()
            .await
            .unwrap();
        let status = added.status();
        let body: serde_json::Value = added.json().await.unwrap();
        assert_eq!(status, want, "{args:?}: {body}\n{}", serve.log_tail(20));
        if status == reqwest::StatusCode::BAD_REQUEST {
            assert_eq!(body["error"]["field"], "host", "{body}");
        }
        let stopped = tokio::task::spawn_blocking(move || serve.terminate())
            .await
            .unwrap();
        assert!(stopped.success());
    }
}

#[test]
fn serve_names_a_bad_allow_list_entry() {
    let stderr = serve_refuses(&["--allow-proxy-hosts", "localhost,::1/200"]);
    assert!(
        stderr.contains("`::1/200`: the prefix length is at most 128"),
        "{stderr}"
    );
}
