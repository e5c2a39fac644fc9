//! The README's "Day one with pharox" runs as written: its ```sh blocks in
//! order in one bash, in an empty directory, with the built `pharox` first
//! on PATH and `PHAROX_REDIS_URL` naming a private Redis; each block prints
//! the ```text block after it (ids and durations in seconds aside).

mod server;

use std::path::Path;
use std::time::Duration;

use pharox_redis::testkit::RedisServer;
use server::readme::{Names, check_output, examples, run_shell, section_blocks};

const HEADING: &str = "## Day one with pharox";
/// Far beyond what a few dozen local commands take.
const LIMIT: Duration = Duration::from_secs(300);

#[test]
fn readme_day_one_prints_what_the_readme_shows() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let shell = examples(&section_blocks(&readme, HEADING), "sh");
    assert!(shell.len() >= 5, "the section lost its examples");
    assert!(
        shell.iter().all(|e| e.expected.is_some()),
        "every block shows its output"
    );

    let redis = RedisServer::start();
    let url = format!("redis://127.0.0.1:{}", redis.port());
    let bin = assert_cmd::cargo::cargo_bin!("pharox");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "day-one-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let outputs = run_shell(
        &shell,
        &[],
        &[
            ("PATH", &path),
            ("PHAROX_REDIS_URL", &url),
            ("PHAROX_SERVER", ""),
            ("PHAROX_API_KEY", ""),
        ],
        Some(&dir),
        LIMIT,
    );
    let mut names = (Names::default(), Names::default());
    for (ex, got) in shell.iter().zip(outputs) {
        check_output(ex, &got, &mut names);
    }
}
