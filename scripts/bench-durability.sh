#!/usr/bin/env bash
# What each Redis durability mode costs pharox, side by side in one run:
# private redis-servers on free loopback ports, one per mode, and
# `pharox bench` against each in turn, every round running every
# configuration once; the table shows medians of --repeat rounds.
#   scripts/bench-durability.sh [--seconds 3] [--repeat 3]
# Modes (README "Durability and failover" says what each guarantees):
#   none          --save "" --appendonly no
#   aof-everysec  --appendonly yes --appendfsync everysec
#   aof-always    --appendonly yes --appendfsync always
#   replica       a primary (no persistence) and one replica; no WAIT
#   replica+wait  the same, with --redis-wait-replicas 1 (WAIT after each
#                 acquire and renew)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=3 repeat=3
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=$2; shift 2 ;;
        --repeat) repeat=$2; shift 2 ;;
        *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
done
command -v redis-server >/dev/null || { echo "bench-durability: redis-server is not installed" >&2; exit 1; }

cargo build -q --release -p pharox-cli
bin=target/release/pharox
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# start NAME ARGS...: a redis-server in its own directory; its port in $port.
# (Not in a $(…) subshell: the server must outlive it, and the trap is ours.)
start() {
    local name=$1; shift
    port=$(free_port)
    mkdir -p "$work/$name"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$work/$name" --logfile "$work/$name.log" "$@" \
        </dev/null >/dev/null 2>&1 &
    pids+=($!)
    for _ in $(seq 200); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && return
        sleep 0.05
    done
    echo "bench-durability: redis-server $name did not start (see $work/$name.log)" >&2
    exit 1
}

start none --save "" --appendonly no; none=$port
start aof-everysec --save "" --appendonly yes --appendfsync everysec; everysec=$port
start aof-always --save "" --appendonly yes --appendfsync always; always=$port
start primary --save "" --appendonly no; primary=$port
start replica --save "" --appendonly no --replicaof 127.0.0.1 "$primary"; replica=$port
for _ in $(seq 200); do
    redis-cli -p "$replica" info replication | grep -q master_link_status:up && break
    sleep 0.05
done

# name | port | extra bench flags
modes=(
  "none|$none|"
  "aof-everysec|$everysec|"
  "aof-always|$always|"
  "replica|$primary|"
  "replica+wait|$primary|--redis-wait-replicas 1"
)
# load name | bench flags
loads=(
  "t64|--tasks 64"
  "t64-pooled|--tasks 64 --redis-mode pooled"
  "t1|--tasks 1"
)
runs=$work/runs.jsonl
for round in $(seq "$repeat"); do
    for m in "${modes[@]}"; do
        IFS='|' read -r mode port extra <<<"$m"
        for l in "${loads[@]}"; do
            load=${l%%|*} flags=${l#*|}
            # shellcheck disable=SC2086
            "$bin" bench --backend redis --redis-url "redis://127.0.0.1:$port" --seconds "$seconds" \
                --proxies 1000 --pool bench-durability --reuse-pool $flags $extra --json \
                | python3 -c "import json,sys; r=json.load(sys.stdin); r['mode']='$mode'; r['load']='$load'; print(json.dumps(r))" >>"$runs"
        done
        echo "round $round: $mode done" >&2
    done
done

python3 - "$runs" "$repeat" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(mode, load, key):
    return statistics.median(r[key] for r in runs if r["mode"] == mode and r["load"] == load)
modes = list(dict.fromkeys(r["mode"] for r in runs))
print("| mode | 64 tasks cycles/s | vs none | 64 tasks pooled cycles/s | vs none | 1 task cycles/s | 1 task acquire p50 µs | p99 µs |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for m in modes:
    print(f"| {m} | {med(m,'t64','cycles_per_sec'):,.0f} | {med(m,'t64','cycles_per_sec') / med('none','t64','cycles_per_sec'):.2f} | "
          f"{med(m,'t64-pooled','cycles_per_sec'):,.0f} | {med(m,'t64-pooled','cycles_per_sec') / med('none','t64-pooled','cycles_per_sec'):.2f} | "
          f"{med(m,'t1','cycles_per_sec'):,.0f} | {med(m,'t1','acquire_p50_us'):.0f} | {med(m,'t1','acquire_p99_us'):.0f} |")
print(f"\nMedians of {sys.argv[2]} rounds; 1,000 proxies, first available, acquire+release cycles.")
PY
