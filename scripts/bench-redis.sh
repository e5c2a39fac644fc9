#!/usr/bin/env bash
# Measures the Redis store against the acceptance figures of the Redis issue,
# side by side in one run: each round runs every configuration once, in
# order, and the table shows the median of --repeat rounds per configuration.
#   scripts/bench-redis.sh [--redis-url redis://127.0.0.1:6379] [--seconds 3] [--repeat 3]
#                          [--baseline PATH_TO_ANOTHER_PHAROX_BINARY]
# Pools are seeded once (100,000 proxies take ~20 s) and reused (--reuse-pool);
# they are removed at the end. With --baseline, each configuration runs with
# this build and the baseline in turn (keys under the prefixes pharox and
# base), and the table adds the baseline's figures and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."

url=redis://127.0.0.1:6379 seconds=3 repeat=3 baseline=
while [ $# -gt 0 ]; do
    case "$1" in
        --redis-url) url=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --repeat) repeat=$2; shift 2 ;;
        --baseline) baseline=$2; shift 2 ;;
        *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
done

cargo build -q --release -p pharox-cli
bin=target/release/pharox
runs=$(mktemp)
trap 'rm -f "$runs"' EXIT

# name | bench flags
configs=(
  "t64-1k|--tasks 64 --proxies 1000 --pool bench-1k"
  "t1-1k|--tasks 1 --proxies 1000 --pool bench-1k"
  "t64-100k|--tasks 64 --proxies 100000 --pool bench-100k"
  "t64-1k-NZ|--tasks 64 --proxies 1000 --pool bench-1k --country NZ"
  "t64-100k-NZ|--tasks 64 --proxies 100000 --pool bench-100k --country NZ"
  "t64-1k-pooled|--tasks 64 --proxies 1000 --pool bench-1k --redis-mode pooled"
  "t64-1k-2conn|--tasks 64 --proxies 1000 --pool bench-1k --redis-connections 2"
)
builds=("this|$bin|pharox")
[ -n "$baseline" ] && builds+=("baseline|$baseline|base")
for round in $(seq "$repeat"); do
    for c in "${configs[@]}"; do
        name=${c%%|*} flags=${c#*|}
        for b in "${builds[@]}"; do
            IFS='|' read -r build path prefix <<<"$b"
            # shellcheck disable=SC2086
            "$path" bench --backend redis --redis-url "$url" --redis-prefix "$prefix" --seconds "$seconds" \
                --reuse-pool $flags --json \
                | python3 -c "import json,sys; r=json.load(sys.stdin); r['config']='$name'; r['build']='$build'; print(json.dumps(r))" >>"$runs"
        done
        echo "round $round: $name done" >&2
    done
done
for prefix in pharox base; do
    redis-cli -u "$url" --scan --pattern "$prefix:{bench-*" | xargs -r redis-cli -u "$url" del >/dev/null
    redis-cli -u "$url" hdel "$prefix:pools" bench-1k bench-100k >/dev/null
done

python3 - "$runs" "$repeat" <<'PY'
import json, statistics, sys
every = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
runs = [r for r in every if r["build"] == "this"]
base_runs = [r for r in every if r["build"] == "baseline"]
def med(cfg, key, rs=None):
    return statistics.median(r[key] for r in (runs if rs is None else rs) if r["config"] == cfg)
cfgs = list(dict.fromkeys(r["config"] for r in runs))
print("| config | cycles/s | acquire p50 µs | p99 µs | misses | ceiling calls/s | ceiling p50 µs | Redis µs/cycle |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for c in cfgs:
    print(f"| {c} | {med(c,'cycles_per_sec'):,.0f} | {med(c,'acquire_p50_us'):.1f} | {med(c,'acquire_p99_us'):.1f} | "
          f"{med(c,'misses'):,.0f} | {med(c,'ceiling_calls_per_sec'):,.0f} | {med(c,'ceiling_p50_us'):.1f} | {med(c,'redis_usec_per_cycle'):.1f} |")
base = med("t64-1k", "cycles_per_sec")
print()
print(f"- tasks 64: {base:,.0f} cycles/s (target >= 25,000); Redis {med('t64-1k','redis_usec_per_cycle'):.1f} µs/cycle (target <= 15)")
print(f"- tasks 1: acquire p50 / ceiling p50 = {med('t1-1k','acquire_p50_us') / med('t1-1k','ceiling_p50_us'):.2f} (target <= 1.5)")
print(f"- 100,000 / 1,000 proxies = {med('t64-100k','cycles_per_sec') / base:.2f} (target >= 0.8)")
print(f"- --country NZ (1%) / unfiltered: 1,000 proxies {med('t64-1k-NZ','cycles_per_sec') / base:.2f}, "
      f"100,000 proxies {med('t64-100k-NZ','cycles_per_sec') / med('t64-100k','cycles_per_sec'):.2f} (target >= 0.5)")
print(f"- pooled (deadpool, one connection per task) / multiplexed = {med('t64-1k-pooled','cycles_per_sec') / base:.2f}; "
      f"2 multiplexed connections / 1 = {med('t64-1k-2conn','cycles_per_sec') / base:.2f}")
if base_runs:
    print()
    print("| config | cycles/s | baseline cycles/s | ratio | Redis µs/cycle | baseline | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for c in cfgs:
        a, b = med(c, "cycles_per_sec"), med(c, "cycles_per_sec", base_runs)
        ra, rb = med(c, "redis_usec_per_cycle"), med(c, "redis_usec_per_cycle", base_runs)
        print(f"| {c} | {a:,.0f} | {b:,.0f} | {a / b:.2f} | {ra:.1f} | {rb:.1f} | {ra / rb:.2f} |")
print(f"\nMedians of {sys.argv[2]} rounds.")
PY
