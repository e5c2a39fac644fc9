#!/usr/bin/env bash
# The one test command (README quick start, .ci/run): formatting, lints, docs,
# then every test of the workspace. Fails on the first problem.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# apt-get installs PACKAGE when COMMAND is missing (as root), else a clear
# error: the tests that need it never skip in CI (CI=true).
ensure_command() {
    local cmd=$1 package=$2 why=$3
    if command -v "$cmd" >/dev/null 2>&1; then
        return
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        step "$cmd is missing: installing it (apt-get install -y $package)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y "$package" >/dev/null ||
            { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "$package" >/dev/null; }
        command -v "$cmd" >/dev/null 2>&1 && return
    fi
    echo "error: $cmd is required by $why but is not installed." >&2
    echo "       Install it (Debian/Ubuntu: sudo apt-get install -y $package) and re-run." >&2
    exit 1
}

# python3 with venv support, installed with apt-get (as root) when missing.
ensure_python_venv() {
    if python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        return
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        step "python3 with venv support is missing: installing it (apt-get install -y python3-venv)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv >/dev/null ||
            { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv >/dev/null; }
    fi
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        echo "error: python3 with venv support is required by the Python tests but is not installed." >&2
        echo "       Install it (Debian/Ubuntu: sudo apt-get install -y python3-venv) and re-run." >&2
        exit 1
    fi
}

# make_venv VENV REQUIREMENTS MODULE...: a venv at VENV with the pinned
# (hashed) REQUIREMENTS, made again only when that file changes (its hash is
# kept in the venv) or one of the MODULEs does not import.
make_venv() {
    local venv=$1 req=$2
    shift 2
    local modules want
    modules=$(IFS=,; echo "$*")
    want=$(sha256sum "$req" | cut -d' ' -f1)
    if [ "$(cat "$venv/requirements.sha256" 2>/dev/null)" != "$want" ] ||
        ! "$venv/bin/python" -c "import $modules" >/dev/null 2>&1; then
        ensure_python_venv
        step "Python venv: $venv from $req"
        python3 -m venv --clear "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r "$req"
        echo "$want" >"$venv/requirements.sha256"
    fi
}

# The Python the tests run: the metrics tests parse /metrics with the Python
# reference client's parsers, and the SDK scenario drives `pharox serve` with
# pharox-sdk (target/py-venv); schemathesis checks `pharox serve` against its
# /openapi.json (crates/pharox-cli/tests/schemathesis.rs, in its own venv:
# its dependencies are not the SDK's).
ensure_test_python() {
    make_venv target/py-venv scripts/requirements-test.txt prometheus_client pharox_sdk
    export PHAROX_TEST_PYTHON="$PWD/target/py-venv/bin/python"
    make_venv target/schemathesis-venv scripts/requirements-schemathesis.txt schemathesis
    export PHAROX_SCHEMATHESIS="$PWD/target/schemathesis-venv/bin/st"
}

started=$SECONDS
# Tests that need Redis start their own redis-server on a free port.
ensure_command redis-server redis-server "the Redis tests"
# The TLS tests (crates/pharox-redis/tests/tls.rs, contract_redis_tls.rs)
# start redis-server with --tls-port: it must be built with TLS (Debian's
# is). A build without it says "TLS not supported" even before it looks
# for a certificate; one with it asks for the certificate.
if timeout 10 redis-server --port 0 --tls-port 1 --save "" 2>&1 | grep -qi "not supported\|not compiled"; then
    echo "error: this redis-server was built without TLS, which the TLS tests need." >&2
    echo "       Install one built with it (Debian/Ubuntu: sudo apt-get install -y redis-server) and re-run." >&2
    exit 1
fi
# The PostgreSQL tests (crates/pharox-postgres) create and drop their own
# databases on the server PHAROX_PG_URL names (default
# postgres://postgres@127.0.0.1:5432/test): it must answer. Started with
# pg_ctlcluster when it is installed but stopped.
pg_url=${PHAROX_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
pg_answers() { command -v psql >/dev/null && timeout 10 psql "$pg_url" -qAtc 'select 1' >/dev/null 2>&1; }
if ! pg_answers && command -v pg_ctlcluster >/dev/null && [ "$(id -u)" = 0 ]; then
    for v in $(ls /etc/postgresql 2>/dev/null); do
        pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
    done
    sleep 2
fi
if ! pg_answers; then
    echo "error: PostgreSQL does not answer at PHAROX_PG_URL (or the default postgres://postgres@127.0.0.1:5432/test), which the PostgreSQL tests need." >&2
    echo "       Start it (pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start) or set PHAROX_PG_URL, then re-run." >&2
    exit 1
fi
# The README's HTTP examples run as written (crates/pharox-cli/tests/readme_http.rs).
ensure_command curl curl "the README's HTTP examples"
ensure_command jq jq "the README's HTTP examples"
# The dashboard runs in headless Chromium (crates/pharox-server/tests/dashboard_browser.rs).
ensure_command chromium chromium "the dashboard's browser test"
ensure_test_python

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, warnings are errors)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --all-features

step "docker-compose.yml"
if docker compose version >/dev/null 2>&1; then
    docker compose config --quiet
elif python3 -c 'import yaml' >/dev/null 2>&1; then
    # No compose plugin here (only the docker client): check the file's
    # shape and that every command it runs is one the binary has.
    python3 - <<'PY'
import yaml
doc = yaml.safe_load(open("docker-compose.yml"))
services = doc["services"]
assert set(services) == {"redis", "worker", "serve", "demo", "prometheus", "grafana",
                         "postgres", "pg-migrate", "pg-worker"}, services
# The PostgreSQL services only with `--profile postgres`; the URL names the
# compose database, migrate runs before the worker, no port for the database.
pg_url = "postgres://pharox:${PHAROX_PG_PASSWORD:-pharox-local}@postgres:5432/pharox"
for name in ("postgres", "pg-migrate", "pg-worker"):
    assert services[name]["profiles"] == ["postgres"], services[name]
assert "ports" not in services["postgres"], services["postgres"]
assert services["pg-migrate"]["command"] == ["migrate"], services["pg-migrate"]
for name in ("pg-migrate", "pg-worker"):
    assert services[name]["environment"]["PHAROX_POSTGRES_URL"] == pg_url, services[name]
assert services["pg-worker"]["depends_on"]["pg-migrate"]["condition"] == "service_completed_successfully"
assert services["pg-worker"]["command"][0] == "worker", services["pg-worker"]
for name in ("worker", "demo"):
    s = services[name]
    assert s["image"] == "pharox:local" and s["command"][0] in ("worker", "demo"), s
    assert s["environment"]["PHAROX_REDIS_URL"] == "redis://redis:6379", s
    assert "redis" in s["depends_on"], s
s = services["serve"]
assert s["image"] == "pharox:local", s
assert s["command"] == ["serve", "--listen", "0.0.0.0:8000", "--redis-url", "redis://redis:6379"], s
assert s["ports"] == ["127.0.0.1:8000:8000"], s
assert s["depends_on"]["redis"]["condition"] == "service_healthy", s
# The keys come from the shell running compose: no secret in the file.
assert s["environment"] == {"PHAROX_API_KEYS": None, "PHAROX_PUBLIC_METRICS": "true"}, s
# Prometheus scrapes what the worker and serve listen on; Grafana mounts the
# provisioning and the dashboard that exist in the repo.
import os
prom = yaml.safe_load(open("deploy/prometheus/prometheus.yml"))
targets = {j["job_name"]: j["static_configs"][0]["targets"] for j in prom["scrape_configs"]}
assert targets == {"pharox-worker": ["worker:9464"], "pharox-serve": ["serve:8000"]}, targets
assert "0.0.0.0:9464" in services["worker"]["command"], services["worker"]
for name in ("prometheus", "grafana"):
    for v in services[name]["volumes"]:
        src = v.split(":")[0]
        assert os.path.exists(src), f"{name} mounts {src}, which is missing"
ds = yaml.safe_load(open("deploy/grafana/provisioning/datasources/prometheus.yml"))
assert ds["datasources"][0]["uid"] == "prometheus", ds
print("docker-compose.yml: shape checked (docker compose is not installed)")
PY
else
    echo "docker-compose.yml: not checked (neither docker compose nor PyYAML is installed)"
fi

# cargo-nextest runs the test binaries side by side (cargo test runs them
# one after another, each waiting on its slowest test), every test in its
# own process; it does not run doc tests, so those run next with cargo test.
# Without nextest the suite runs with cargo test, slower but the same tests.
if cargo nextest --version >/dev/null 2>&1; then
    step "cargo nextest run --workspace (every test binary; profile in .config/nextest.toml)"
    cargo nextest run --workspace --all-features --profile ci
    step "cargo test --doc --workspace"
    cargo test --workspace --all-features --doc
else
    step "cargo test --workspace (cargo-nextest is not installed: \`cargo install cargo-nextest --locked\` runs the suite faster)"
    cargo test --workspace --all-features
fi

# Written by crates/pharox-cli/tests/admin_cli.rs (the 100,000-line import).
if [ -f target/tmp/import-100k.txt ]; then
    step "proxy import at size"
    cat target/tmp/import-100k.txt
fi

printf '\nAll checks passed in %ds.\n' "$((SECONDS - started))"
