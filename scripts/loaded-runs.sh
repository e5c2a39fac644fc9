#!/usr/bin/env bash
# Runs scripts/test.sh N times back to back (default 5) while stress-ng
# keeps every core busy, and prints one line per run: its exit status and
# how long it took. A test whose outcome depends on scheduling luck shows up
# here as a red run. RELIABILITY.md records the result.
#
#   scripts/loaded-runs.sh [N]        # needs stress-ng (installed with apt-get when run as root)
set -uo pipefail
cd "$(dirname "$0")/.."

runs=${1:-5}
cores=$(nproc)
if ! command -v stress-ng >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing stress-ng (apt-get)" >&2
    apt-get install -y -q stress-ng >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q stress-ng >/dev/null 2>&1; }
fi
command -v stress-ng >/dev/null 2>&1 || {
    echo "error: stress-ng is required (Debian/Ubuntu: sudo apt-get install -y stress-ng)" >&2
    exit 1
}
stress-ng --cpu "$cores" --timeout 0 --quiet &
load=$!
trap 'kill $load 2>/dev/null; wait $load 2>/dev/null' EXIT

logs=target/loaded-runs
mkdir -p "$logs"
failed=0
for i in $(seq 1 "$runs"); do
    started=$SECONDS
    if scripts/test.sh >"$logs/run-$i.log" 2>&1; then
        status=green
    else
        status=red
        failed=$((failed + 1))
    fi
    printf 'run %d/%d: %s in %ds, load average %s (log: %s)\n' "$i" "$runs" "$status" \
        "$((SECONDS - started))" "$(cut -d' ' -f1-3 /proc/loadavg)" "$logs/run-$i.log"
done
printf '%d of %d runs green, with stress-ng --cpu %d running throughout\n' \
    "$((runs - failed))" "$runs" "$cores"
[ "$failed" = 0 ]
