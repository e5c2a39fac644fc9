//! The `pharox` binary as users run it.

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

#[test]
fn demo_json_reports_the_documented_fields_and_passes_its_checks() {
    let report = json(&[
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
        "--json",
    ]);
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
    assert!(report["acquired"].as_u64().unwrap() > 0);
    assert!(report["expired_reclaimed"].as_u64().unwrap() > 0);
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
    let report = json(&[
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
    ]);
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
