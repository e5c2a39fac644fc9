#!/usr/bin/env bash
# Runs `pharox bench` for every selector at two pool sizes, side by side in one
# run, and prints a Markdown table with the large/small ratio per selector.
#   scripts/bench-matrix.sh [--backend memory] [--tasks 1] [--seconds 3] [--small 1000] [--large 100000]
set -euo pipefail
cd "$(dirname "$0")/.."

backend=memory tasks=1 seconds=3 small=1000 large=100000
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --backend) backend=$2; shift 2 ;;
        --tasks) tasks=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --small) small=$2; shift 2 ;;
        --large) large=$2; shift 2 ;;
        *) extra+=("$1"); shift ;;
    esac
done

cargo build -q --release -p pharox-cli
bin=target/release/pharox

echo "| selector | proxies $small: cycles/s | p50 µs | p99 µs | proxies $large: cycles/s | p50 µs | p99 µs | ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for selector in first-available least-used round-robin lowest-latency; do
    row=()
    for n in "$small" "$large"; do
        row+=("$("$bin" bench --backend "$backend" --proxies "$n" --tasks "$tasks" \
            --seconds "$seconds" --selector "$selector" --json ${extra[@]+"${extra[@]}"})")
    done
    python3 - "$selector" "${row[@]}" <<'PY'
import json, sys
sel, a, b = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
f = lambda d: f"{d['cycles_per_sec']:,.0f} | {d['acquire_p50_us']:.2f} | {d['acquire_p99_us']:.2f}"
print(f"| {sel} | {f(a)} | {f(b)} | {b['cycles_per_sec'] / a['cycles_per_sec']:.2f} |")
PY
done
