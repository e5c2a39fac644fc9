//! The commands on PostgreSQL (`--postgres-url`), each on a database of
//! its own: `pharox migrate` (its `--check`, a re-run that does nothing,
//! the password never printed), the demo and the bench (which migrate
//! first; the bench counts 2 round trips per cycle), and a worker whose
//! stats history `pharox stats --history` reads back. The admin commands
//! and `pharox serve` on PostgreSQL are in `admin_cli.rs`.

mod server;

use std::process::Stdio;
use std::time::{Duration, Instant};

use pharox_core::testkit::PATIENCE;
use pharox_postgres::SCHEMA_VERSION;
use pharox_postgres::testkit::TestDatabase;
use serde_json::Value;
use server::{exited_with, output_within, pharox};

/// Far beyond what one command takes, even on a loaded machine.
const LIMIT: Duration = Duration::from_secs(300);

/// Trust auth takes any password: the tests' URLs carry one to show it is
/// never printed.
const PASSWORD: &str = "pg-s3cret-pw";

struct Db {
    url: String,
    _db: TestDatabase,
}

fn database() -> Db {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDatabase::create());
    let url = db
        .url()
        .replacen("://postgres@", &format!("://postgres:{PASSWORD}@"), 1);
    assert!(url.contains(PASSWORD), "the test URL has a password: {url}");
    Db { url, _db: db }
}

/// Runs `pharox args… --postgres-url URL`; it must exit with `code`.
fn run(db: &Db, code: i32, args: &[&str]) -> (String, String) {
    let mut cmd = pharox();
    cmd.args(args).args(["--postgres-url", &db.url]);
    let out = output_within(&mut cmd, LIMIT, &format!("pharox {}", args.join(" ")));
    let (stdout, stderr) = exited_with(&out, code, args);
    assert!(
        !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
        "pharox {} printed the password:\n{stdout}{stderr}",
        args.join(" ")
    );
    (stdout, stderr)
}

#[test]
fn migrate_checks_applies_and_then_does_nothing() {
    let db = database();
    let (out, _) = run(&db, 1, &["migrate", "--check"]);
    assert!(
        out.contains(&format!(
            "schema version 0; this pharox needs {SCHEMA_VERSION}"
        )),
        "{out}"
    );
    assert!(
        out.contains("postgres:***@"),
        "the URL is shown redacted: {out}"
    );
    // Every command but migrate, the demo and the bench refuses an
    // unmigrated database, saying what to run.
    for args in [
        &["stats", "--pool", "p"][..],
        &["worker", "--metrics-addr", "off"],
        &["pool", "list"],
    ] {
        let (_, err) = run(&db, 2, args);
        assert!(err.contains("pharox migrate"), "{args:?}: {err}");
    }
    let (out, _) = run(&db, 0, &["migrate"]);
    assert!(
        out.contains(&format!("from 0 to pharox schema version {SCHEMA_VERSION}")),
        "{out}"
    );
    let (out, _) = run(&db, 0, &["migrate"]);
    assert!(out.contains("nothing to do"), "{out}");
    run(&db, 0, &["migrate", "--check"]);
    // A URL that is not one is refused without being echoed.
    let mut cmd = pharox();
    cmd.args(["migrate", "--postgres-url", "nonsense://x:pg-s3cret-pw@"]);
    let out = output_within(&mut cmd, LIMIT, "pharox migrate (bad URL)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
}

#[test]
fn demo_and_bench_run_on_postgres() {
    let db = database();
    let (out, _) = run(
        &db,
        0,
        &[
            "demo",
            "--seconds",
            "1",
            "--workers",
            "4",
            "--proxies",
            "50",
            "--json",
        ],
    );
    let demo: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(demo["invariants_ok"], true, "{demo}");
    assert_eq!(demo["backend"], "postgres", "{demo}");
    let (out, _) = run(
        &db,
        0,
        &[
            "bench",
            "--backend",
            "postgres",
            "--proxies",
            "50",
            "--seconds",
            "1",
            "--warmup-seconds",
            "0.5",
            "--json",
        ],
    );
    let bench: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(bench["backend"], "postgres", "{bench}");
    assert!(bench["cycles"].as_u64().unwrap() > 0, "{bench}");
    assert!(
        bench["ceiling_calls_per_sec"].as_f64().unwrap() > 0.0,
        "{bench}"
    );
    // One acquire and one release per cycle; one task, so a cycle in
    // flight at each end of the window is all that may blur it.
    let cycles = bench["cycles"].as_f64().unwrap();
    let per_cycle = bench["round_trips_per_cycle"].as_f64().unwrap();
    assert!(
        (per_cycle * cycles - 2.0 * cycles).abs() <= 2.0,
        "2 round trips per cycle: {bench}"
    );
}

#[test]
fn a_worker_records_history_that_stats_reads() {
    let db = database();
    run(&db, 0, &["migrate"]);
    run(&db, 0, &["pool", "create", "watched"]);
    let mut worker = pharox()
        .args([
            "worker",
            "--sweep-interval",
            "100ms",
            "--metrics-addr",
            "off",
            "--postgres-url",
            &db.url,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pharox worker");
    let deadline = Instant::now() + PATIENCE;
    let history = loop {
        let (out, _) = run(
            &db,
            0,
            &["stats", "--pool", "watched", "--history", "5", "--json"],
        );
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= 3 {
            break lines;
        }
        assert!(
            Instant::now() < deadline,
            "the worker recorded {} snapshots in {PATIENCE:?}",
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = worker.kill();
    let _ = worker.wait();
    assert!(
        history.iter().all(|s| s["pool"] == "watched"),
        "{history:?}"
    );
    let times: Vec<&str> = history
        .iter()
        .map(|s| s["collected_at"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let (out, _) = run(&db, 0, &["stats", "--pool", "watched", "--json"]);
    let live: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(live["total"], 0, "{live}");
}
