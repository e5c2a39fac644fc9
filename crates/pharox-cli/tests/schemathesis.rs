//! schemathesis against a real `pharox serve` on the memory store: valid and
//! invalid input for every operation of its `/openapi.json`, with the checks
//! of scripts/schemathesis.toml (no 5xx; every answer's status, content type
//! and body as the document says). schemathesis comes from the venv
//! scripts/test.sh makes with scripts/requirements-schemathesis.txt
//! (`$PHAROX_SCHEMATHESIS`).

mod server;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pharox_core::testkit::schemathesis;
use server::{Serve, output_within};

/// Far beyond the minute or so the run takes on two cores.
const RUN_LIMIT: Duration = Duration::from_secs(600);

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let st = schemathesis("the schemathesis run");
    let key = format!("schemathesis-{:016x}", fastrand::u64(..));
    // A short request budget bounds the capacity long poll (half of it),
    // which schemathesis calls with waits of up to 10 s.
    let serve = Serve::start(&["--request-timeout", "2s"], Some(&key));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = output_within(
        Command::new(&st)
            .current_dir(&root)
            .args(["--config-file", "scripts/schemathesis.toml", "run"])
            .arg(format!("{}/openapi.json", serve.base()))
            .env("PHAROX_SCHEMATHESIS_KEY", &key)
            .env("NO_COLOR", "1")
            .env_remove("SCHEMATHESIS_HOOKS"),
        RUN_LIMIT,
        "schemathesis",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n{}",
        out.status,
        serve.log_tail(40)
    );
    println!(
        "{}",
        stdout.lines().rev().take(3).collect::<Vec<_>>().join("\n")
    );
}
