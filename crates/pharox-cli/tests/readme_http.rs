//! The README's "Using pharox from any language" examples run as written: its
//! ```sh blocks in order in one bash (curl, jq), then its ```python block
//! with pharox-sdk, against a fresh `pharox serve`, with the address and the
//! key put in. The ```json or ```text block after each is what it must print
//! (JSON compared as values, text line by line); UUIDs may differ but
//! consistently (the same id in two places stays the same), and times and
//! the `date` header are not compared.

mod server;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pharox_core::testkit::test_python;
use server::readme::{Names, check_output, examples, normalize, run_shell, section_blocks};
use server::{Serve, output_within};

const HEADING: &str = "## Using pharox from any language";
/// What the README's examples call the server.
const README_ADDR: &str = "127.0.0.1:8000";
/// Far beyond what a handful of local requests take.
const LIMIT: Duration = Duration::from_secs(120);

fn require(tool: &str) {
    let found = Command::new("bash")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} is required by the README's HTTP examples; \
         scripts/test.sh installs it (apt-get install -y {tool})"
    );
}

#[test]
fn readme_http_examples_print_what_the_readme_shows() {
    require("curl");
    require("jq");
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let blocks = section_blocks(&readme, HEADING);
    let shell = examples(&blocks, "sh");
    let python = examples(&blocks, "python");
    assert!(
        shell.len() >= 5 && python.len() == 1,
        "the section lost its examples: {} sh, {} python",
        shell.len(),
        python.len()
    );

    let key = format!("readme-{:016x}", fastrand::u64(..));
    let serve = Serve::start(&[], Some(&key));
    let addr = serve.base().trim_start_matches("http://").to_owned();
    let mut names = (Names::default(), Names::default());
    for (ex, got) in shell.iter().zip(run_shell(
        &shell,
        &[(README_ADDR, &addr)],
        &[("PHAROX_API_KEY", &key)],
        None,
        LIMIT,
    )) {
        check_output(ex, &got, &mut names);
    }

    let py = &python[0];
    let out = output_within(
        Command::new(test_python("the README's Python example"))
            .args(["-c", &py.code.code.replace(README_ADDR, &addr)])
            .env("PHAROX_API_KEY", &key),
        LIMIT,
        "the README's Python example",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "README.md:{}: the Python example failed ({}):\n{stdout}\n{}",
        py.code.line,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    check_output(py, &stdout, &mut names);
}

#[test]
fn normalizing_keeps_everything_but_ids_and_times() {
    let mut names = Names::default();
    let text = "a 12dd0a25-7677-55bc-a155-e57b45175f1a b 2025-01-31T12:00:00.123000+00:00 \
                12dd0a25-7677-55bc-a155-e57b45175f1a 7c50a97e-0d7a-4e9e-afa8-60afb3f58c7d \
                2025-01-31 12:01:00+00:00\nDate: Fri, 31 Jan 2025 12:00:01 GMT\n";
    assert_eq!(
        normalize(text, &mut names),
        "a <uuid 0> b <time> <uuid 0> <uuid 1> <time>\ndate: <date>\n"
    );
    // Durations in seconds, as the admin commands print them; not versions.
    assert_eq!(
        normalize("in 0.01 s, 29.5 s left; v1.2 sec 3.4s", &mut names),
        "in <seconds> s, <seconds> s left; v1.2 sec 3.4s\n"
    );
    // Not ids: too short, or glued to other characters.
    let kept = "12dd0a25-7677-55bc-a155-e57b45175f1 x12dd0a25-7677-55bc-a155-e57b45175f1a";
    assert_eq!(normalize(kept, &mut names).trim_end(), kept);
}
