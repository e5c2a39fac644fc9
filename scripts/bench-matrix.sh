#!/usr/bin/env bash
# Runs `pharox bench` for every selector at two pool sizes, side by side in one
# run, and prints a Markdown table with the large/small ratio per selector.
# The sizes alternate (small, large, small, large, ...) for --repeat rounds and
# the table shows each cell's median, so a burst of noise on a shared machine
# hits both sizes alike and moves no median by itself.
#   scripts/bench-matrix.sh [--backend memory] [--tasks 1] [--seconds 2]
#                           [--small 1000] [--large 100000] [--repeat 5] [extra bench flags]
set -euo pipefail
cd "$(dirname "$0")/.."

backend=memory tasks=1 seconds=2 small=1000 large=100000 repeat=5
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --backend) backend=$2; shift 2 ;;
        --tasks) tasks=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --small) small=$2; shift 2 ;;
        --large) large=$2; shift 2 ;;
        --repeat) repeat=$2; shift 2 ;;
        *) extra+=("$1"); shift ;;
    esac
done

cargo build -q --release -p pharox-cli
bin=target/release/pharox
runs=$(mktemp)
trap 'rm -f "$runs"' EXIT

for selector in first-available least-used round-robin lowest-latency; do
    for _ in $(seq "$repeat"); do
        for n in "$small" "$large"; do
            "$bin" bench --backend "$backend" --proxies "$n" --tasks "$tasks" \
                --seconds "$seconds" --selector "$selector" --json ${extra[@]+"${extra[@]}"} >>"$runs"
            echo >>"$runs"
        done
    done
done

python3 - "$runs" "$small" "$large" "$repeat" <<'PY'
import json, statistics, sys
path, small, large, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
runs = [json.loads(l) for l in open(path) if l.strip()]
def med(sel, n, key):
    return statistics.median(r[key] for r in runs if r["selector"] == sel and r["proxies"] == n)
print(f"| selector | proxies {small:,}: cycles/s | p50 µs | p99 µs | proxies {large:,}: cycles/s | p50 µs | p99 µs | ratio |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for sel in ["first-available", "least-used", "round-robin", "lowest-latency"]:
    cells = []
    for n in (small, large):
        cells.append(f"{med(sel, n, 'cycles_per_sec'):,.0f} | {med(sel, n, 'acquire_p50_us'):.2f} | {med(sel, n, 'acquire_p99_us'):.2f}")
    ratio = med(sel, large, "cycles_per_sec") / med(sel, small, "cycles_per_sec")
    print(f"| {sel} | {cells[0]} | {cells[1]} | {ratio:.2f} |")
print(f"\nMedians of {repeat} alternating runs per cell. Every run, in order:")
for r in runs:
    print(f"  {r['selector']:<16} {r['proxies']:>7} {r['cycles_per_sec']:>12,.0f} cycles/s  p50 {r['acquire_p50_us']:.2f} µs")
PY
