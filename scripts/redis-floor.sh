#!/usr/bin/env bash
# What a lease cycle can cost on this Redis at the very least, measured side
# by side with pharox's own scripts in one run.
#   scripts/redis-floor.sh [--redis-url redis://127.0.0.1:6379] [--repeat 3]
#
# Each round measures, from `INFO commandstats` (Redis's own CPU time):
#   empty  EVALSHA of `return 1`, sent by redis-benchmark (pipelined)
#   floor  one EVALSHA holding the fewest commands an acquire plus a release
#          need (TIME, ZRANGE, BITFIELD, ZADD; ZSCORE, ZREM, TIME, BITFIELD),
#          without validation, free-set transitions, stats counters,
#          reclaiming or proxy data: a lower bound, not a usable design
#   pharox `pharox bench --backend redis --tasks 64`: redis_usec_per_cycle
# and prints the median of each over --repeat rounds. Uses keys under
# `pharox-floor:` and the pool `bench-floor`, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

url=redis://127.0.0.1:6379 repeat=3
while [ $# -gt 0 ]; do
    case "$1" in
        --redis-url) url=$2; shift 2 ;;
        --repeat) repeat=$2; shift 2 ;;
        *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
done
command -v redis-benchmark >/dev/null || { echo "redis-benchmark is needed (package redis-tools)" >&2; exit 1; }

cargo build -q --release -p pharox-cli
bin=target/release/pharox
cli=(redis-cli -u "$url")
host_port=$(python3 -c "import sys,urllib.parse as u; p=u.urlparse(sys.argv[1]); print(p.hostname or '127.0.0.1', p.port or 6379)" "$url")
read -r host port <<<"$host_port"
auth=$(python3 -c "import sys,urllib.parse as u; print(u.urlparse(sys.argv[1]).password or '')" "$url")
bench_args=(-h "$host" -p "$port" -n 200000 -c 8 -P 16 -q)
[ -n "$auth" ] && bench_args+=(-a "$auth")

floor_lua=$(cat <<'LUA'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
local r = redis.call('BITFIELD', KEYS[1], 'INCRBY', 'i64', '#' .. seq, '65535',
  'INCRBY', 'i64', '#0', '1', 'GET', 'i64', '#9')
local lease = seq .. ':' .. r[2] .. ':' .. ARGV[1] .. ':' .. now .. ':w'
redis.call('ZADD', KEYS[2], now + 30000, lease)
local deadline = redis.call('ZSCORE', KEYS[2], lease)
redis.call('ZREM', KEYS[2], lease)
local t2 = redis.call('TIME')
local expired = tonumber(deadline) <= tonumber(t2[1]) * 1000
redis.call('BITFIELD', KEYS[1], 'INCRBY', 'i64', '#' .. seq, '-65535')
return expired and 2 or 1
LUA
)

setup() {
    "${cli[@]}" del 'pharox-floor:{f}:hot' 'pharox-floor:{f}:exp' 'pharox-floor:{f}:free' >/dev/null
    "${cli[@]}" zadd 'pharox-floor:{f}:free' 16 16 >/dev/null
    "${cli[@]}" bitfield 'pharox-floor:{f}:hot' set i64 '#16' 3 set i64 '#9' 9007199254740991 >/dev/null
}
# Redis µs per EVALSHA of $1 with KEYS $2.. (redis-benchmark, pipelined).
usec_per_evalsha() {
    local sha=$1; shift
    "${cli[@]}" config resetstat >/dev/null
    redis-benchmark "${bench_args[@]}" evalsha "$sha" "$@" >/dev/null
    "${cli[@]}" info commandstats | tr -d '\r' \
        | sed -n 's/^cmdstat_evalsha:.*usec_per_call=\([0-9.]*\).*/\1/p'
}

empty_sha=$("${cli[@]}" script load 'return 1')
floor_sha=$("${cli[@]}" script load "$floor_lua")
runs=$(mktemp)
trap 'rm -f "$runs"' EXIT
for round in $(seq "$repeat"); do
    setup
    empty=$(usec_per_evalsha "$empty_sha" 0)
    floor=$(usec_per_evalsha "$floor_sha" 3 'pharox-floor:{f}:hot' 'pharox-floor:{f}:exp' 'pharox-floor:{f}:free' __rand_int__)
    pharox=$("$bin" bench --backend redis --redis-url "$url" --tasks 64 --seconds 3 --pool bench-floor --reuse-pool --json \
        | python3 -c "import json,sys; print(json.load(sys.stdin)['redis_usec_per_cycle'])")
    echo "$empty $floor $pharox" >>"$runs"
    echo "round $round: empty $empty  floor $floor  pharox $pharox (µs)" >&2
done
"${cli[@]}" del 'pharox-floor:{f}:hot' 'pharox-floor:{f}:exp' 'pharox-floor:{f}:free' >/dev/null
"${cli[@]}" --scan --pattern 'pharox:{bench-floor}*' | xargs -r "${cli[@]}" del >/dev/null
"${cli[@]}" hdel pharox:pools bench-floor >/dev/null

python3 - "$runs" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
empty, floor, pharox = (statistics.median(c) for c in zip(*rows))
print("| measure | Redis µs | × empty EVALSHA |")
print("|---|---:|---:|")
print(f"| empty EVALSHA (`return 1`) | {empty:.2f} | 1.0 |")
print(f"| floor: minimal acquire+release commands, one EVALSHA | {floor:.2f} | {floor/empty:.1f} |")
print(f"| pharox acquire+release, 64 tasks (redis_usec_per_cycle) | {pharox:.2f} | {pharox/empty:.1f} |")
print(f"\npharox / floor = {pharox/floor:.2f}  (medians of {len(rows)} rounds)")
PY
