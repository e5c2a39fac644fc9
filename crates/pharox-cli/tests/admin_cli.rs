//! `pharox pool|proxy|lease` as a shell script runs them: on a private
//! Redis, through Sentinel, on PostgreSQL, and through a `pharox serve`
//! (`--server`, key from the environment), the same scenario; the CSV import's all-or-nothing rule;
//! a 100,000-line import (its time written to
//! `target/tmp/import-100k.txt`, which `scripts/test.sh` prints).

mod server;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use pharox_redis::testkit::RedisServer;
use serde_json::Value;
use server::{Serve, exited_with, output_within, pharox};

/// Far beyond what one admin command takes, even on a loaded machine.
const LIMIT: Duration = Duration::from_secs(300);

/// Passwords of the scenario's proxies: never printed without --show-credentials.
const SECRETS: [&str; 2] = ["s3cret-alice-pw", "bob-pw-2"];

/// Where the admin commands go: `--redis-url …` or `--server …` with the key.
struct Target {
    args: Vec<String>,
    env: Vec<(String, String)>,
    dir: PathBuf,
}

impl Target {
    fn redis(redis: &RedisServer, name: &str) -> Self {
        Self::url(format!("redis://127.0.0.1:{}", redis.port()), name)
    }

    fn url(url: String, name: &str) -> Self {
        Self {
            args: vec!["--redis-url".into(), url],
            env: vec![],
            dir: scratch(name),
        }
    }

    fn server(serve: &Serve, key: &str, name: &str) -> Self {
        Self {
            args: vec!["--server".into(), serve.base().to_owned()],
            env: vec![("PHAROX_API_KEY".into(), key.to_owned())],
            dir: scratch(name),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = pharox();
        cmd.args(args).args(&self.args).current_dir(&self.dir);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        output_within(&mut cmd, LIMIT, &format!("pharox {}", args.join(" ")))
    }

    /// Runs `args`, which must exit with `code`; returns stdout and stderr.
    fn expect(&self, code: i32, args: &[&str]) -> (String, String) {
        exited_with(&self.run(args), code, args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (stdout, stderr) = self.expect(0, args);
        for s in SECRETS {
            assert!(
                !stdout.contains(s) && !stderr.contains(s),
                "pharox {} printed a password:\n{stdout}{stderr}",
                args.join(" ")
            );
        }
        stdout
    }

    fn json_lines(&self, args: &[&str]) -> Vec<Value> {
        self.ok(args)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    fn write(&self, name: &str, text: &str) -> String {
        std::fs::write(self.dir.join(name), text).unwrap();
        name.to_owned()
    }
}

/// An empty directory of its own under target/tmp.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "admin-{name}-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Create, import, list, lease to exhaustion (exit 3), re-import while
/// leases are held (updated in place, leases kept), renew, release, set a
/// status, show, remove: every admin command once, with `--json`.
fn scenario(t: &Target) {
    assert!(
        t.ok(&["pool", "create", "day-one", "--description", "provider A"])
            .contains("pool day-one ready")
    );
    let file = t.write(
        "proxies.txt",
        "# provider A, exported today\n\
         http://alice:s3cret-alice-pw@203.0.113.10:8080\n\
         socks5://bob:bob-pw-2@[2001:db8::5]:1080\n\
         \n\
         203.0.113.11:3128\n",
    );
    let import = |args: &[&str]| -> Value {
        let mut all = vec!["proxy", "import", &file, "--pool", "day-one", "--json"];
        all.extend_from_slice(args);
        let lines = t.json_lines(&all);
        assert_eq!(lines.len(), 1, "{lines:?}");
        lines[0].clone()
    };
    let first = import(&["--country", "DE", "--max-concurrency", "1"]);
    assert_eq!(
        (&first["imported"], &first["new"], &first["updated"]),
        (&Value::from(3), &Value::from(3), &Value::from(0)),
        "{first}"
    );

    let proxies = t.json_lines(&["proxy", "list", "--pool", "day-one", "--json"]);
    // Written concurrently: the pool's order need not be the file's.
    let mut ids: Vec<&str> = proxies.iter().map(|p| p["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "http://203.0.113.11:3128",
            "http://alice@203.0.113.10:8080",
            "socks5://bob@[2001:db8::5]:1080",
        ]
    );
    assert!(proxies.iter().all(|p| p["country"] == "DE"), "{proxies:?}");
    assert!(
        proxies
            .iter()
            .any(|p| p["url"] == "http://alice:***@203.0.113.10:8080"),
        "{proxies:?}"
    );
    let table = t.ok(&["proxy", "list", "--pool", "day-one"]);
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table.contains("http://alice:***@203.0.113.10:8080"),
        "{table}"
    );

    // Lease every proxy (in the pool's order, which need not be the
    // file's); the URL is printed whole only when asked.
    let redacted = [
        "http://alice:***@203.0.113.10:8080",
        "socks5://bob:***@[2001:db8::5]:1080",
        "http://203.0.113.11:3128",
    ];
    let first_lease = t.json_lines(&[
        "lease", "acquire", "--pool", "day-one", "--json", "--ttl", "60s",
    ])[0]
        .clone();
    assert_eq!(first_lease["consumer"], "pharox-cli");
    let (whole, _) = t.expect(
        0,
        &[
            "lease",
            "acquire",
            "--pool",
            "day-one",
            "--show-credentials",
            "--consumer",
            "job-2",
        ],
    );
    let whole = whole.trim();
    assert!(!whole.contains("***"), "{whole}");
    let hidden = whole.replace(SECRETS[0], "***").replace(SECRETS[1], "***");
    let third = t.json_lines(&["lease", "acquire", "--pool", "day-one", "--json"])[0].clone();
    let mut printed = vec![
        first_lease["proxy_url"].as_str().unwrap(),
        &hidden,
        third["proxy_url"].as_str().unwrap(),
    ];
    printed.sort_unstable();
    let mut want = redacted.to_vec();
    want.sort_unstable();
    assert_eq!(printed, want);
    let (stdout, stderr) = t.expect(3, &["lease", "acquire", "--pool", "day-one"]);
    assert!(
        stdout.is_empty() && stderr.contains("no proxy available"),
        "{stderr}"
    );
    // A wait that finds nothing ends with 3 too; a missing pool is an error (2).
    t.expect(
        3,
        &["lease", "acquire", "--pool", "day-one", "--wait", "200ms"],
    );
    let (_, stderr) = t.expect(2, &["lease", "acquire", "--pool", "no-such-pool"]);
    assert!(
        stderr.contains("pool no-such-pool does not exist"),
        "{stderr}"
    );

    // Importing again while all three are leased: updated in place, leases kept.
    let again = import(&["--country", "FR", "--max-concurrency", "1"]);
    assert_eq!(
        (&again["new"], &again["updated"]),
        (&Value::from(0), &Value::from(3)),
        "{again}"
    );
    let proxies = t.json_lines(&["proxy", "list", "--pool", "day-one", "--json"]);
    assert!(
        proxies
            .iter()
            .all(|p| p["country"] == "FR" && p["current_leases"] == 1),
        "{proxies:?}"
    );
    let leases = t.json_lines(&["lease", "list", "--pool", "day-one", "--json"]);
    assert_eq!(leases.len(), 3, "{leases:?}");

    // Renew, release (twice: the second is an error), and the pool has room again.
    let id = first_lease["id"].as_str().unwrap();
    let renewed = &t.json_lines(&[
        "lease", "renew", "--pool", "day-one", id, "--ttl", "90s", "--json",
    ])[0];
    assert_eq!(renewed["id"], id);
    assert!(
        renewed["expires_in_ms"].as_i64().unwrap() > 60_000,
        "{renewed}"
    );
    assert!(
        t.ok(&["lease", "release", "--pool", "day-one", id])
            .contains("released")
    );
    let (_, stderr) = t.expect(2, &["lease", "release", "--pool", "day-one", id]);
    assert!(stderr.contains("is not held"), "{stderr}");
    let (_, stderr) = t.expect(2, &["lease", "release", "--pool", "day-one", "not-a-lease"]);
    assert!(stderr.contains("is not a lease id"), "{stderr}");

    // Take a proxy out of rotation; only active ones are leased.
    let first_proxy = first_lease["proxy_id"].as_str().unwrap();
    t.ok(&[
        "proxy",
        "set-status",
        "--pool",
        "day-one",
        "inactive",
        first_proxy,
    ]);
    t.expect(3, &["lease", "acquire", "--pool", "day-one"]);
    let inactive = t.json_lines(&[
        "proxy", "list", "--pool", "day-one", "--status", "inactive", "--json",
    ]);
    assert_eq!(inactive.len(), 1, "{inactive:?}");
    // A provider's list says what exists, not what works: importing it
    // again keeps the status a health check or an operator set.
    import(&["--country", "FR", "--max-concurrency", "1"]);
    let inactive = t.json_lines(&[
        "proxy", "list", "--pool", "day-one", "--status", "inactive", "--json",
    ]);
    assert_eq!(
        inactive.len(),
        1,
        "re-import reactivated a proxy: {inactive:?}"
    );
    let (_, stderr) = t.expect(
        2,
        &["proxy", "set-status", "--pool", "day-one", "active", "nope"],
    );
    assert!(
        stderr.contains("no such proxy in pool day-one: nope"),
        "{stderr}"
    );

    let show = &t.json_lines(&["pool", "show", "--pool", "day-one", "--json"])[0];
    assert_eq!(show["stats"]["total"], 3, "{show}");
    assert_eq!(show["stats"]["active_leases"], 2, "{show}");
    assert_eq!(show["proxies_by_status"]["active"], 2, "{show}");
    assert_eq!(show["proxies_by_status"]["inactive"], 1, "{show}");
    assert_eq!(show["leases"].as_array().unwrap().len(), 2, "{show}");
    let text = t.ok(&["pool", "show", "--pool", "day-one"]);
    assert!(text.contains("by status: active 2, inactive 1"), "{text}");
    assert!(text.contains("job-2"), "{text}");
    let pools = t.ok(&["pool", "list"]);
    assert!(
        pools.contains("day-one") && pools.contains("provider A"),
        "{pools}"
    );

    t.ok(&[
        "proxy",
        "remove",
        "--pool",
        "day-one",
        third["proxy_id"].as_str().unwrap(),
    ]);
    assert_eq!(
        t.json_lines(&["lease", "list", "--pool", "day-one", "--json"])
            .len(),
        1
    );
    t.ok(&["pool", "remove", "--pool", "day-one"]);
    let (_, stderr) = t.expect(2, &["pool", "show", "--pool", "day-one"]);
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn admin_commands_on_redis() {
    let redis = RedisServer::start();
    scenario(&Target::redis(&redis, "redis"));
}

/// The same commands through Redis Sentinel (`redis+sentinel://`).
#[test]
fn admin_commands_through_sentinel() {
    let topology = pharox_redis::testkit::SentinelTopology::start("pharox-admin");
    scenario(&Target::url(topology.url(), "sentinel"));
}

/// The same commands on PostgreSQL (`--postgres-url`), after `pharox
/// migrate`; before it, they refuse with the command to run.
#[test]
fn admin_commands_on_postgres() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(pharox_postgres::testkit::TestDatabase::create());
    let t = Target {
        args: vec!["--postgres-url".into(), db.url().to_owned()],
        env: vec![],
        dir: scratch("postgres"),
    };
    let (_, err) = t.expect(2, &["pool", "list"]);
    assert!(
        err.contains("schema version 0") && err.contains("pharox migrate"),
        "{err}"
    );
    let migrated = t.ok(&["migrate"]);
    let want = format!(
        "to pharox schema version {}",
        pharox_postgres::SCHEMA_VERSION
    );
    assert!(
        migrated.contains("applied versions [1, ") && migrated.contains(&want),
        "{migrated}"
    );
    scenario(&t);
    // And through a `pharox serve` on that database.
    let key = format!("admin-{:016x}", fastrand::u64(..));
    let serve = Serve::start(&["--postgres-url", db.url()], Some(&key));
    let remote = Target::server(&serve, &key, "server-postgres");
    scenario(&remote);
    drop(serve);
    drop(db);
}

#[test]
fn admin_commands_through_a_server() {
    let key = format!("admin-{:016x}", fastrand::u64(..));
    let serve = Serve::start(&[], Some(&key));
    let t = Target::server(&serve, &key, "server");
    scenario(&t);
    // A wrong key is an error naming the cause, and never printed.
    let mut bad = Target::server(&serve, "wrong-key-123", "server-bad");
    bad.env[0].1 = "wrong-key-123".into();
    let (_, stderr) = bad.expect(2, &["pool", "list"]);
    assert!(!stderr.contains("wrong-key-123"), "{stderr}");
    assert!(stderr.to_lowercase().contains("key"), "{stderr}");
}

#[test]
fn a_csv_with_bad_lines_loads_nothing_unless_told_to_skip_them() {
    let redis = RedisServer::start();
    let t = Target::redis(&redis, "csv");
    t.ok(&["pool", "create", "csv"]);
    let file = t.write(
        "proxies.csv",
        "host,port,protocol,username,password,country,max_concurrency\n\
         203.0.113.1,8080,http,u1,s3cret-alice-pw,DE,2\n\
         203.0.113.2,99999,http,,,DE,\n\
         203.0.113.3,8080,gopher,,,US,\n\
         203.0.113.4,8080,socks5,,,US,\n\
         203.0.113.5,8080\n\
         127.0.0.1,8080,http,,,US,\n\
         203.0.113.1,8080,http,u1,other-pw-9,DE,2\n",
    );
    let (stdout, stderr) = t.expect(2, &["proxy", "import", &file, "--pool", "csv"]);
    assert!(stdout.is_empty(), "{stdout}");
    for line in [
        "line 3: port",
        "line 4: protocol",
        "line 6: 2 fields",
        "line 7: host",
        "line 8: the same proxy as line 2",
    ] {
        assert!(stderr.contains(line), "no {line:?} in:\n{stderr}");
    }
    assert!(
        stderr.contains("nothing imported: 5 of 7 proxy lines rejected"),
        "{stderr}"
    );
    for s in SECRETS.iter().chain(&["other-pw-9"]) {
        assert!(!stderr.contains(s), "a password in the report:\n{stderr}");
    }
    assert_eq!(t.ok(&["proxy", "list", "--pool", "csv", "--json"]), "");

    // --dry-run checks and writes nothing; --skip-invalid loads the rest.
    t.expect(2, &["proxy", "import", &file, "--pool", "csv", "--dry-run"]);
    let skipped = &t.json_lines(&[
        "proxy",
        "import",
        &file,
        "--pool",
        "csv",
        "--skip-invalid",
        "--json",
    ]);
    assert_eq!(skipped.last().unwrap()["imported"], 2, "{skipped:?}");
    let proxies = t.json_lines(&["proxy", "list", "--pool", "csv", "--json"]);
    assert_eq!(proxies.len(), 2);
    let u1 = proxies
        .iter()
        .find(|p| p["id"] == "http://u1@203.0.113.1:8080")
        .expect("line 2's proxy");
    assert_eq!(u1["max_concurrency"], 2, "{u1}");
    // Into a pool that does not exist: an error saying how to create it.
    let (_, stderr) = t.expect(2, &["proxy", "import", &file, "--pool", "nope"]);
    assert!(stderr.contains("pharox pool create nope"), "{stderr}");
}

#[test]
fn a_100_000_line_provider_file_imports_and_reimports_in_place() {
    const LINES: usize = 100_000;
    let redis = RedisServer::start();
    let t = Target::redis(&redis, "100k");
    t.ok(&["pool", "create", "big"]);
    let mut text = String::with_capacity(LINES * 48);
    for i in 0..LINES {
        let (a, b, c) = (i >> 16, (i >> 8) & 255, i & 255);
        text.push_str(&format!("http://user{i}:pw{i}@10.{a}.{b}.{c}:8080\n"));
    }
    let file = t.write("provider.txt", &text);
    let started = Instant::now();
    let first = &t.json_lines(&["proxy", "import", &file, "--pool", "big", "--json"])[0];
    let first_secs = started.elapsed().as_secs_f64();
    assert_eq!(
        (&first["imported"], &first["new"]),
        (&Value::from(LINES), &Value::from(LINES)),
        "{first}"
    );
    let started = Instant::now();
    let again = &t.json_lines(&["proxy", "import", &file, "--pool", "big", "--json"])[0];
    let again_secs = started.elapsed().as_secs_f64();
    assert_eq!(
        (&again["new"], &again["updated"]),
        (&Value::from(0), &Value::from(LINES)),
        "{again}"
    );
    let show = &t.json_lines(&["pool", "show", "--pool", "big", "--json"])[0];
    assert_eq!(show["stats"]["total"], LINES, "{show}");
    assert_eq!(show["stats"]["available"], LINES, "{show}");
    let report = format!(
        "pharox proxy import (debug build) of {LINES} URL lines into a private Redis: \
         {first_secs:.1} s new, {again_secs:.1} s again (updated in place)\n"
    );
    std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("import-100k.txt"),
        &report,
    )
    .unwrap();
    eprint!("{report}");
}

/// `--redis-wait-replicas`: with a replica, a lease is granted once it has
/// it; on a server without one, the acquire fails (exit 2) saying that no
/// replica acknowledged it and that it was released, and holds nothing.
#[test]
fn acknowledged_acquires_wait_for_a_replica_and_say_when_none_confirms() {
    let primary = RedisServer::start();
    let port = primary.port().to_string();
    let mut args = pharox_redis::testkit::NO_PERSISTENCE.to_vec();
    args.extend(["--replicaof", "127.0.0.1", &port]);
    let replica = RedisServer::start_with(&args);
    let t = Target::redis(&primary, "acked");
    t.ok(&["pool", "create", "acked"]);
    let file = t.write("p.txt", "http://203.0.113.20:8080\n");
    t.ok(&["proxy", "import", &file, "--pool", "acked"]);
    let wait = ["--redis-wait-replicas", "1", "--redis-wait-timeout", "3s"];
    // A replica just started syncs after the primary's
    // repl-diskless-sync-delay (5 s): only then can it acknowledge.
    replica.wait_until_synced();
    let lease = t.json_lines(
        &[
            &["lease", "acquire", "--pool", "acked", "--json"][..],
            &wait,
        ]
        .concat(),
    )[0]
    .clone();
    t.ok(&[
        "lease",
        "release",
        "--pool",
        "acked",
        lease["id"].as_str().unwrap(),
    ]);

    replica.pause();
    let quick = [
        "--redis-wait-replicas",
        "1",
        "--redis-wait-timeout",
        "100ms",
    ];
    let (_, stderr) = t.expect(
        2,
        &[&["lease", "acquire", "--pool", "acked"][..], &quick].concat(),
    );
    assert!(
        stderr.contains("acknowledged by 0 of the 1 replicas") && stderr.contains("released again"),
        "{stderr}"
    );
    let show = &t.json_lines(&["pool", "show", "--pool", "acked", "--json"])[0];
    assert_eq!(show["stats"]["active_leases"], 0, "{show}");
    replica.resume();
}
