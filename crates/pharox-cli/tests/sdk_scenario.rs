//! The real Python client, pharox-sdk 0.2.0, against `pharox serve`:
//! scripts/sdk_scenario.py (pools, proxies, filters, every strategy,
//! `with_lease`, exhaustion, release, and 200 concurrent tasks on 20
//! single-slot proxies) runs on the memory store and on Redis, with the test
//! Python (`$PHAROX_TEST_PYTHON`, the venv scripts/test.sh makes from
//! scripts/requirements-test.txt).

mod server;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pharox_core::testkit::test_python;
use server::{Serve, output_within};

/// The scenario's own limit (`--timeout`): far beyond the few seconds it takes.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs scripts/sdk_scenario.py against a fresh `pharox serve serve_args`
/// (`&[]`: the memory store; `&["--redis-url", url]`: Redis) with a random
/// API key; panics with the script's output and the server's log tail unless
/// it reports success.
fn run_scenario(serve_args: &[&str]) {
    let python = test_python("the pharox-sdk scenario");
    let key = format!("sdk-test-{:016x}", fastrand::u64(..));
    let serve = Serve::start(serve_args, Some(&key));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/sdk_scenario.py");
    // The script stops itself at SCENARIO_TIMEOUT; the extra minute guards
    // against a Python stuck where its own timer cannot fire.
    let out = output_within(
        Command::new(&python)
            .arg(&script)
            .args(["--url", serve.base()])
            .args(["--timeout", &SCENARIO_TIMEOUT.as_secs().to_string()])
            .env("PHAROX_API_KEY", &key),
        SCENARIO_TIMEOUT + Duration::from_secs(60),
        "sdk_scenario.py",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        out.status.success() && summary.starts_with("sdk scenario: OK:"),
        "sdk_scenario.py failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        out.status
    );
    println!("{summary}");
}

#[test]
fn pharox_sdk_scenario_passes_on_the_memory_store() {
    run_scenario(&[]);
}

/// The same on Redis (a private redis-server on a free port).
#[test]
fn pharox_sdk_scenario_passes_on_redis() {
    let redis = pharox_redis::testkit::RedisServer::start();
    run_scenario(&["--redis-url", &redis.url()]);
}
