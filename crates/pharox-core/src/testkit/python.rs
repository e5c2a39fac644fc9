//! The Python the tests run: the venv scripts/test.sh keeps, with the pinned
//! packages of scripts/requirements-test.txt (prometheus-client, pharox-sdk).

use std::path::{Path, PathBuf};

/// The test Python: `$PHAROX_TEST_PYTHON`, else (outside CI only) the venv
/// scripts/test.sh keeps at `target/py-venv`. Never a skip: panics, naming
/// `needed_by`, when there is none, and always in CI (`CI=true`) when the
/// variable is unset.
pub fn test_python(needed_by: &str) -> PathBuf {
    if let Some(p) = std::env::var_os("PHAROX_TEST_PYTHON") {
        return p.into();
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "PHAROX_TEST_PYTHON is not set: in CI {needed_by} must run; \
         scripts/test.sh sets it up (a venv at target/py-venv)"
    );
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/py-venv/bin/python");
    assert!(
        venv.exists(),
        "PHAROX_TEST_PYTHON is not set and {} does not exist, so {needed_by} cannot run: \
         run scripts/test.sh once (it makes the venv with scripts/requirements-test.txt)",
        venv.display()
    );
    venv
}
