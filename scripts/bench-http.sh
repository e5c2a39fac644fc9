#!/usr/bin/env bash
# Measures `pharox serve` against the HTTP issue's figures, side by side in one
# run, on the same machine:
#   1. `pharox bench --backend http` at 64 tasks and at 1 task: each runs the
#      cycles on Redis directly, then through a `pharox serve` child on the same
#      Redis and pool (pharox-client), and prints both with their ratios and the
#      CPU per cycle of the client, the server and Redis;
#   2. the Python client, pharox-sdk, at 64 and 1 asyncio tasks against a
#      `pharox serve` on the same Redis (scripts/sdk_bench.py).
# Each round runs all of them in that order; --repeat rounds.
#   scripts/bench-http.sh [--redis-url redis://127.0.0.1:6379] [--seconds 5] [--repeat 3]
# Needs the test venv (target/py-venv, made by scripts/test.sh) for part 2.
set -euo pipefail
cd "$(dirname "$0")/.."

url=redis://127.0.0.1:6379 seconds=5 repeat=3
while [ $# -gt 0 ]; do
    case "$1" in
        --redis-url) url=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --repeat) repeat=$2; shift 2 ;;
        *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
done
py=target/py-venv/bin/python
if ! "$py" -c 'import pharox_sdk' 2>/dev/null; then
    echo "error: $py with pharox-sdk is missing; run scripts/test.sh once (it makes the venv)" >&2
    exit 1
fi

cargo build -q --release -p pharox-cli
bin=target/release/pharox
export PHAROX_REDIS_URL=$url
key=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
log=$(mktemp)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -f "$log"; }
trap cleanup EXIT

for round in $(seq 1 "$repeat"); do
    echo "== round $round of $repeat ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"
    for tasks in 64 1; do
        "$bin" bench --backend http --tasks "$tasks" --seconds "$seconds" 2>/dev/null
        echo
    done
    PHAROX_API_KEYS=$key "$bin" serve --listen 127.0.0.1:0 --redis-prefix sdkbench 2>"$log" &
    server=$!
    for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
    base=$(sed -n 's/^pharox serve: listening on //p' "$log")
    [ -n "$base" ] || { echo "pharox serve did not start:" >&2; cat "$log" >&2; exit 1; }
    for tasks in 64 1; do
        PHAROX_API_KEY=$key "$py" scripts/sdk_bench.py --url "$base" --tasks "$tasks" --seconds "$seconds"
    done
    kill "$server"; wait "$server" 2>/dev/null || true; server=
    echo
done
