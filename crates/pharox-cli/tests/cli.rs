//! The `pharox` binary as users run it.
//!
//! Short runs may happen to do too little on a loaded machine (no crash in
//! a second of demo, no cycle in 0.3 s of bench): such a run is repeated
//! (with another seed) until it shows what the test looks for, for at most
//! a minute. Every run must pass its checks.

use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

fn pharox() -> Command {
    Command::cargo_bin("pharox").expect("the pharox binary is built")
}

fn json(args: &[&str]) -> Value {
    let out = pharox()
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).expect("stdout is one JSON object")
}

/// Runs `pharox args(seed)` with seeds 1, 2, … until `exercised` holds for
/// its JSON report, checking every report with `check`; panics after a
/// minute of runs that all fell short. Returns the report that did not.
fn json_until(
    args: impl Fn(&str) -> Vec<String>,
    check: impl Fn(&Value),
    exercised: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    for seed in 1u64.. {
        let args = args(&seed.to_string());
        let report = json(&args.iter().map(String::as_str).collect::<Vec<_>>());
        check(&report);
        if exercised(&report) {
            return report;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} runs never exercised what the test needs; the last: {report}",
            seed
        );
    }
    unreachable!()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

#[test]
fn demo_json_reports_the_documented_fields_and_passes_its_checks() {
    let report = json_until(
        |seed| {
            strings(&[
                "demo",
                "--seconds",
                "1",
                "--workers",
                "16",
                "--proxies",
                "200",
                "--lease-ttl-ms",
                "200",
                "--crash-rate",
                "0.01",
                "--seed",
                seed,
                "--json",
            ])
        },
        |report| {
            for key in [
                "acquired",
                "released",
                "misses",
                "expired_reclaimed",
                "cycles_per_sec",
                "invariants_ok",
            ] {
                assert!(report.get(key).is_some(), "missing {key} in {report}");
            }
            assert_eq!(report["invariants_ok"], true, "{report}");
            // Every crash abandoned a lease, which came back by expiry.
            assert!(
                report["expired_reclaimed"].as_u64() >= report["crashes"].as_u64(),
                "{report}"
            );
        },
        // Some worker crashed, so the recovery had something to reclaim.
        |report| {
            report["acquired"].as_u64().unwrap() > 0
                && report["expired_reclaimed"].as_u64().unwrap() > 0
        },
    );
    assert!(report["crashes"].as_u64().unwrap() > 0, "{report}");
}

#[test]
fn demo_table_ends_with_the_invariant_verdict() {
    let out = pharox()
        .args([
            "demo",
            "--seconds",
            "0.5",
            "--workers",
            "4",
            "--proxies",
            "50",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("leases acquired"), "{stdout}");
    assert!(
        stdout
            .trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("invariants: OK")
    );
    // Without a terminal, progress goes to stderr as plain lines.
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("acquired"), "{stderr}");
    // Synthetic proxies carry credentials; none may be printed.
    assert!(!stdout.contains("pw-") && !stderr.contains("pw-"));
}

#[test]
fn bench_json_reports_the_documented_fields() {
    let report = json_until(
        |_| {
            strings(&[
                "bench",
                "--backend",
                "memory",
                "--proxies",
                "100",
                "--tasks",
                "2",
                "--seconds",
                "0.3",
                "--warmup-seconds",
                "0",
                "--selector",
                "round-robin",
                "--country",
                "US",
                "--json",
            ])
        },
        |_| {},
        |report| report["cycles"].as_u64().unwrap_or(0) > 0,
    );
    for key in [
        "backend",
        "proxies",
        "tasks",
        "selector",
        "cycles",
        "seconds",
        "cycles_per_sec",
        "acquire_p50_us",
        "acquire_p99_us",
        "misses",
    ] {
        assert!(report.get(key).is_some(), "missing {key} in {report}");
    }
    assert_eq!(report["backend"], "memory");
    assert_eq!(report["selector"], "round-robin");
    assert_eq!(report["country"], "US");
    assert!(report["cycles"].as_u64().unwrap() > 0);
}

/// Runs `pharox` expecting failure; returns its stderr.
fn failure_stderr(args: &[&str]) -> String {
    let out = pharox().args(args).assert().failure().get_output().clone();
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn bad_arguments_get_a_clear_error() {
    let stderr = failure_stderr(&["bench", "--selector", "fastest"]);
    assert!(stderr.contains("first-available"), "{stderr}");
    let stderr = failure_stderr(&["demo", "--lease-ttl-ms", "0"]);
    assert!(stderr.contains("duration"), "{stderr}");
    let stderr = failure_stderr(&["demo", "--crash-rate", "2"]);
    assert!(stderr.contains("--crash-rate"), "{stderr}");
}

#[test]
fn redis_bench_reports_the_ceiling_and_redis_cpu() {
    let server = pharox_redis::testkit::RedisServer::start();
    let url = server.url();
    let positive = |report: &Value, key: &str| report[key].as_f64().is_some_and(|v| v > 0.0);
    let report = json_until(
        |_| {
            strings(&[
                "bench",
                "--backend",
                "redis",
                "--redis-url",
                &url,
                "--proxies",
                "50",
                "--tasks",
                "4",
                "--seconds",
                "0.3",
                "--warmup-seconds",
                "0",
                "--json",
            ])
        },
        |report| {
            assert_eq!(report["backend"], "redis");
            assert_eq!(report["misses"], 0, "{report}");
        },
        // A 0.3 s window may pass without a cycle on a loaded machine.
        |report| {
            report["cycles"].as_u64().unwrap_or(0) > 0
                && [
                    "ceiling_calls_per_sec",
                    "ceiling_p50_us",
                    "redis_usec_per_cycle",
                ]
                .iter()
                .all(|key| positive(report, key))
        },
    );
    for key in [
        "ceiling_calls_per_sec",
        "ceiling_p50_us",
        "redis_usec_per_cycle",
    ] {
        let v = report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} in {report}"));
        assert!(v > 0.0, "{key} = {v}");
    }
}

/// `bench` (like every command with `--redis-url`) through Redis Sentinel.
#[test]
fn redis_bench_runs_through_sentinel() {
    let topology = pharox_redis::testkit::SentinelTopology::start("pharox-bench");
    let url = topology.url();
    for mode in ["multiplexed", "pooled"] {
        json_until(
            |_| {
                strings(&[
                    "bench",
                    "--backend",
                    "redis",
                    "--redis-url",
                    &url,
                    "--redis-mode",
                    mode,
                    "--proxies",
                    "50",
                    "--tasks",
                    "4",
                    "--seconds",
                    "0.3",
                    "--warmup-seconds",
                    "0",
                    "--json",
                ])
            },
            |report| {
                assert_eq!(report["backend"], "redis");
                assert_eq!(report["misses"], 0, "{report}");
            },
            // A 0.3 s window may pass without a cycle on a loaded machine.
            |report| report["cycles"].as_u64().unwrap_or(0) > 0,
        );
    }
}

#[test]
fn http_bench_runs_a_serve_child_beside_direct_redis() {
    let server = pharox_redis::testkit::RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--requirepass",
        "hunter2-secret",
    ]);
    let url = format!("redis://:hunter2-secret@127.0.0.1:{}", server.port());
    let started = Instant::now();
    for _ in 1u64.. {
        let out = pharox()
            .args([
                "bench",
                "--backend",
                "http",
                "--redis-url",
                &url,
                "--proxies",
                "20",
                "--tasks",
                "4",
                "--seconds",
                "0.3",
                "--warmup-seconds",
                "0",
                "--json",
            ])
            .assert()
            .success()
            .get_output()
            .clone();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains("hunter2-secret"), "password printed: {all}");
        let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        let direct = &report["versus_direct"]["direct"];
        assert_eq!(report["backend"], "http", "{report}");
        assert_eq!(direct["backend"], "redis", "{report}");
        for r in [&report, direct] {
            assert_eq!(r["misses"], 0, "{report}");
            assert_eq!(r["proxies"], 20, "{report}");
            assert_eq!(r["tasks"], 4, "{report}");
        }
        // The pool is removed afterwards (but for the token it retired: a
        // pool made again under that name goes on from it).
        let mut con = pharox_redis::redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection())
            .expect("a connection to the private redis-server");
        let keys: Vec<String> = pharox_redis::redis::cmd("KEYS")
            .arg("pharox:{bench}:*")
            .query(&mut con)
            .unwrap();
        assert_eq!(keys, ["pharox:{bench}:retired_token"], "bench keys left");
        let (h, d) = (report["cycles"].as_u64(), direct["cycles"].as_u64());
        if h.unwrap_or(0) > 0 && d.unwrap_or(0) > 0 {
            let ratio = report["versus_direct"]["cycles_ratio"].as_f64().unwrap();
            let want = report["cycles_per_sec"].as_f64().unwrap()
                / direct["cycles_per_sec"].as_f64().unwrap();
            assert!((ratio - want).abs() < 1e-9, "{report}");
            assert!(
                report["server_cpu_us_per_cycle"].as_f64().is_some(),
                "{report}"
            );
            assert!(
                report["redis_cpu_us_per_cycle"].as_f64().is_some(),
                "{report}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no cycle in a minute of runs: {report}"
        );
    }
}

#[test]
fn redis_demo_passes_its_checks_and_never_prints_the_password() {
    let server = pharox_redis::testkit::RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--requirepass",
        "hunter2-secret",
    ]);
    let url = format!("redis://:hunter2-secret@127.0.0.1:{}", server.port());
    // Again (another seed) if a loaded machine let the second pass without
    // a lease; every run passes its checks and prints no password.
    let started = Instant::now();
    for seed in 1u64.. {
        let out = pharox()
            .args([
                "demo",
                "--redis-url",
                &url,
                "--workers",
                "8",
                "--proxies",
                "50",
                "--seconds",
                "1",
                "--lease-ttl-ms",
                "200",
                "--seed",
                &seed.to_string(),
                "--json",
            ])
            .assert()
            .success()
            .get_output()
            .clone();
        let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        assert_eq!(report["invariants_ok"], true, "{report}");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains("hunter2-secret"), "password printed: {all}");
        if report["acquired"].as_u64().unwrap() > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no lease in {seed} runs: {report}"
        );
    }

    // A wrong password fails with the URL redacted.
    let bad = format!("redis://:wrong-pass@127.0.0.1:{}", server.port());
    let err = failure_stderr(&["demo", "--redis-url", &bad, "--seconds", "1"]);
    assert!(!err.contains("wrong-pass"), "password printed: {err}");
    assert!(err.contains("***"), "{err}");
}

#[test]
fn an_evicting_redis_is_refused_unless_allowed() {
    let server = pharox_redis::testkit::RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxmemory-policy",
        "allkeys-lru",
    ]);
    let url = server.url();
    let stats = ["stats", "--pool", "absent", "--redis-url", &url];
    let out = pharox()
        .env_remove("PHAROX_REDIS_ALLOW_EVICTION")
        .args(stats)
        .assert()
        .failure()
        .get_output()
        .clone();
    let err = String::from_utf8(out.stderr).unwrap();
    for part in [
        "maxmemory-policy allkeys-lru",
        "noeviction",
        "--redis-allow-eviction",
    ] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    // Allowed, the command gets past connecting (to the missing pool).
    let err = failure_stderr(&[&stats[..], &["--redis-allow-eviction"]].concat());
    assert!(err.contains("pool `absent` not found"), "{err}");
    pharox()
        .env("PHAROX_REDIS_ALLOW_EVICTION", "true")
        .args([
            "demo",
            "--redis-url",
            &url,
            "--seconds",
            "0.3",
            "--workers",
            "2",
        ])
        .args(["--proxies", "20", "--json"])
        .assert()
        .success();
}
