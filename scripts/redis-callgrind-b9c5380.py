#!/usr/bin/env python3
"""
The baseline of BENCHMARKS.md's "Redis store after the limits work": this
measurement for commit b9c5380's key layout and scripts (keys hot, exp,
free, ..., the ix:<field>:<value> filter index). Copy it into a worktree of
that commit and run it there after its own `cargo build --release -p
pharox-cli`:

    git worktree add ../pharox-b9c5380 b9c5380
    cp scripts/redis-callgrind-b9c5380.py ../pharox-b9c5380/scripts/
    cd ../pharox-b9c5380 && cargo build --release -p pharox-cli
    python3 scripts/redis-callgrind-b9c5380.py [--selectors]

Instructions Redis spends per acquire+release cycle, by script variant.

Starts `redis-server` under `valgrind --tool=callgrind` on a free port, seeds
a 1,000-proxy pool with `pharox bench --reuse-pool`, then for each variant
zeroes the counters, sends 1,000 acquire+release pairs (first available) in
pipelined batches of 100, dumps, and prints the total divided by 1,000.
Instruction counts do not depend on the machine's load, unlike `INFO
commandstats` times. Needs valgrind, redis-server and redis-py
(`pip install redis`); run from the repository root after
`cargo build --release -p pharox-cli`:

    python3 scripts/redis-callgrind.py
"""
import glob, os, socket, subprocess, sys, tempfile, time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
lua = lambda *f: "\n".join(open(os.path.join(ROOT, "lua", x)).read() for x in f) + "\n"

BARE_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
local r = redis.call('BITFIELD', KEYS[1], 'INCRBY', 'i64', '#' .. seq, '65535', 'INCRBY', 'i64', '#0', '1', 'GET', 'i64', '#9', 'GET', 'i64', '#8')
if r[1] % 65536 == 0 then redis.call('ZREM', KEYS[3], seq) end
redis.call('ZADD', KEYS[2], now + 30000, seq .. ':' .. r[2] .. ':' .. ARGV[4] .. ':' .. now .. ':' .. ARGV[3])
return {tonumber(seq), r[2], now, r[4]}
"""
BARE_RELEASE = """
local m = ARGV[1]
local seq = string.match(m, '^(%d+):')
if redis.call('ZREM', KEYS[2], m) == 0 then return 0 end
local w = redis.call('BITFIELD', KEYS[1], 'INCRBY', 'i64', '#' .. seq, '-65535')[1]
if w % 65536 == 1 then redis.call('ZADD', KEYS[3], seq, seq) end
return 1
"""
LIB, LIBF = lua("lib.lua"), lua("lib.lua", "filter.lua")
FULL_ACQUIRE, FULL_RELEASE = lua("lib.lua", "filter.lua", "acquire.lua"), lua("lib.lua", "release.lua")
VARIANTS = [
    ("empty: return {16,1,1,1} / return 1", "return {16, 1, 1, 1}", "return 1"),
    ("bare commands", BARE_ACQUIRE, BARE_RELEASE),
    ("bare commands with lib.lua prepended", LIBF + BARE_ACQUIRE, LIB + BARE_RELEASE),
    ("pharox acquire.lua / bare release", FULL_ACQUIRE, BARE_RELEASE),
    ("bare acquire / pharox release.lua", BARE_ACQUIRE, FULL_RELEASE),
    ("pharox acquire.lua / release.lua", FULL_ACQUIRE, FULL_RELEASE),
]

def main():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tempfile.mkdtemp(prefix="pharox-cg-")
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.out",
         "redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = redis.Redis(port=port)
    try:
        for _ in range(120):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.5)
        subprocess.run([os.path.join(ROOT, "target/release/pharox"), "bench", "--backend", "redis",
                        "--redis-url", f"redis://127.0.0.1:{port}", "--seconds", "0.5",
                        "--warmup-seconds", "0", "--pool", "bench", "--reuse-pool", "--json"],
                       check=True, stdout=subprocess.DEVNULL)
        keys = [f"pharox:{{bench}}:{k}" for k in ["hot", "exp", "free", "load", "lat", "lsc", "px"]]

        def instructions():
            for f in glob.glob(f"{out}/cg.out*"):
                os.remove(f)
            subprocess.run(["callgrind_control", "-d", str(server.pid)], capture_output=True)
            total = 0
            for f in glob.glob(f"{out}/cg.out*"):
                for line in open(f):
                    if line.startswith(("summary:", "totals:")):
                        total = max(total, int(line.split()[1]))
            return total

        country = "pharox:{bench}:ix:country:NZ"

        def pairs(acq, rel, n, batch=100, sel="f", filtered=False):
            # The old layout's exact-index mode: KEYS[8] the ix zset, ARGV[8] 'x'.
            extra = ([country], ["x", ""]) if filtered else ([], [""])
            for _ in range(n // batch):
                p = r.pipeline(transaction=False)
                for i in range(batch):
                    p.evalsha(acq, 7 + len(extra[0]), *keys, *extra[0], sel, "30000", "w", str(i),
                              "64", "0", "", *extra[1])
                got = p.execute()
                p = r.pipeline(transaction=False)
                for i, x in enumerate(got):
                    if len(x) >= 3:  # not a miss
                        p.evalsha(rel, 6, *keys[:6], f"{x[0]}:{x[1]}:{i}:{x[2]}:w")
                p.execute()

        if "--selectors" in sys.argv:
            acq, rel = r.script_load(FULL_ACQUIRE), r.script_load(FULL_RELEASE)
            print("| selector | filter | instructions per cycle |")
            print("|---|---|---:|")
            for sel in ["f", "r", "l", "t"]:
                for filtered in [False, True]:
                    batch = 10 if filtered else 100
                    pairs(acq, rel, 100, batch, sel, filtered)
                    subprocess.run(["callgrind_control", "-z", str(server.pid)], capture_output=True)
                    pairs(acq, rel, 1000, batch, sel, filtered)
                    print(f"| {sel} | {'country NZ' if filtered else 'none'} | "
                          f"{instructions() / 1000:,.0f} |", flush=True)
            return 0

        print("| acquire script / release script | instructions per cycle |")
        print("|---|---:|")
        for name, a, b in VARIANTS:
            acq, rel = r.script_load(a), r.script_load(b)
            pairs(acq, rel, 100)  # warm up
            subprocess.run(["callgrind_control", "-z", str(server.pid)], capture_output=True)
            pairs(acq, rel, 1000)
            print(f"| {name} | {instructions() / 1000:,.0f} |", flush=True)
    finally:
        try:
            r.shutdown(nosave=True)
        except redis.ConnectionError:
            pass
        server.wait(timeout=60)

if __name__ == "__main__":
    sys.exit(main())
