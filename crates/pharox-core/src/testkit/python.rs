//! The Python programs the tests run, from the venvs scripts/test.sh keeps:
//! the test Python (target/py-venv, with the pinned packages of
//! scripts/requirements-test.txt: prometheus-client, pharox-sdk) and
//! schemathesis (target/schemathesis-venv, from
//! scripts/requirements-schemathesis.txt).

use std::path::{Path, PathBuf};

/// The test Python: `$PHAROX_TEST_PYTHON`, else (outside CI only) the venv
/// scripts/test.sh keeps at `target/py-venv`. Never a skip: panics, naming
/// `needed_by`, when there is none, and always in CI (`CI=true`) when the
/// variable is unset.
pub fn test_python(needed_by: &str) -> PathBuf {
    venv_program(
        "PHAROX_TEST_PYTHON",
        "target/py-venv/bin/python",
        "scripts/requirements-test.txt",
        needed_by,
    )
}

/// schemathesis's `st` command: `$PHAROX_SCHEMATHESIS`, else (outside CI
/// only) the venv scripts/test.sh keeps at `target/schemathesis-venv`.
/// Never a skip, as [`test_python`].
pub fn schemathesis(needed_by: &str) -> PathBuf {
    venv_program(
        "PHAROX_SCHEMATHESIS",
        "target/schemathesis-venv/bin/st",
        "scripts/requirements-schemathesis.txt",
        needed_by,
    )
}

/// `$var`, else (outside CI only) `program` (relative to the workspace root)
/// when it exists; panics, naming `needed_by` and how scripts/test.sh makes
/// the venv from `requirements`, otherwise.
fn venv_program(var: &str, program: &str, requirements: &str, needed_by: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return p.into();
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{var} is not set: in CI {needed_by} must run; scripts/test.sh sets it up \
         (a venv made with {requirements})"
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(program);
    assert!(
        path.exists(),
        "{var} is not set and {} does not exist, so {needed_by} cannot run: \
         run scripts/test.sh once (it makes the venv with {requirements})",
        path.display()
    );
    path
}
