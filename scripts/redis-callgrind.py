#!/usr/bin/env python3
"""Instructions Redis spends per acquire+release cycle, by script variant.

Starts `redis-server` under `valgrind --tool=callgrind` on a free port, seeds
a 1,000-proxy pool with `pharox bench --reuse-pool`, then for each variant
zeroes the counters, sends 1,000 acquire+release pairs (first available) in
pipelined batches of 100, dumps, and prints the total divided by 1,000.
Instruction counts do not depend on the machine's load, unlike `INFO
commandstats` times. Needs valgrind, redis-server and redis-py
(`pip install redis`); run from the repository root after
`cargo build --release -p pharox-cli`:

    python3 scripts/redis-callgrind.py [--selectors]

With `--selectors` it measures pharox's own scripts only, for every
selector, unfiltered and with a 1% country filter.
"""
import glob, os, re, socket, subprocess, sys, tempfile, time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_lua = lambda *f: "\n".join(open(os.path.join(ROOT, "lua", x)).read() for x in f) + "\n"
# layout.lua's constants, inlined as scripts.rs's prepare() does (Redis gets
# literals, not upvalues).
CONSTANTS = dict(re.findall(r"^local ([A-Z][A-Z0-9_]*) = ('[^']*'|-?\d+)", _lua("layout.lua"), re.M))

def prepare(text):
    out = []
    for line in text.split("\n"):
        m = re.match(r"local ([A-Z][A-Z0-9_]*) = ", line)
        if m and m.group(1) in CONSTANTS:
            out.append("-- " + line)
            continue
        code, sep, comment = line.partition("--")
        parts = re.split(r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")", code)
        code = "".join(p if i % 2 else re.sub(r"\b[A-Z][A-Z0-9_]*\b", lambda t: CONSTANTS.get(t.group(0), t.group(0)), p)
                       for i, p in enumerate(parts))
        out.append(code + sep + comment)
    return "\n".join(out)

lua = lambda *f: prepare(_lua(*f))

# The bare variants name KEYS by position: 1 counters, 2 leases_by_deadline,
# 3 free_by_seq (see lua/layout.lua); they keep no lease_by_token.
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
# As scripts.rs sends them: a shebang, layout.lua, lib.lua, then the rest.
WRITES = "#!lua\n"
LIB, LIBF = WRITES + lua("layout.lua", "lib.lua"), WRITES + lua("layout.lua", "lib.lua", "filter.lua")
FULL_ACQUIRE, FULL_RELEASE = LIBF + lua("acquire.lua"), LIB + lua("lease_ref.lua", "release.lua")
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
        keys = [f"pharox:{{bench}}:{k}" for k in [
            "counters", "leases_by_deadline", "free_by_seq", "free_by_load", "free_by_latency",
            "latency_by_seq", "lease_by_token", "proxy_by_seq"]]
        country = "pharox:{bench}:by_value:country:NZ"

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

        # pharox's release.lua takes the reference a lease id carries
        # ("token:nonce"); the bare variants take the member.
        def pairs(acq, rel, n, batch=100, sel="f", filtered=False, by_ref=True):
            extra = ([country], ["x", "", ""]) if filtered else ([], ["", "", ""])
            for _ in range(n // batch):
                p = r.pipeline(transaction=False)
                for i in range(batch):
                    p.evalsha(acq, 8 + len(extra[0]), *keys, *extra[0], sel, "30000", "w", str(i),
                              "64", "0", "", *extra[1])
                got = p.execute()
                p = r.pipeline(transaction=False)
                for i, x in enumerate(got):
                    if len(x) >= 3:  # not a miss
                        lease = f"{x[1]}:{i}" if by_ref else f"{x[0]}:{x[1]}:{i}:{x[2]}:w"
                        p.evalsha(rel, 8, *keys, lease)
                p.execute()

        if "--selectors" in sys.argv:
            acq, rel = r.script_load(FULL_ACQUIRE), r.script_load(FULL_RELEASE)
            print("| selector | filter | instructions per cycle |")
            print("|---|---|---:|")
            for sel in ["f", "r", "l", "t"]:
                for filtered in [False, True]:
                    # A 1% country has about 25 slots: batches of 10 never miss.
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
            by_ref = b is FULL_RELEASE
            pairs(acq, rel, 100, by_ref=by_ref)  # warm up
            subprocess.run(["callgrind_control", "-z", str(server.pid)], capture_output=True)
            pairs(acq, rel, 1000, by_ref=by_ref)
            print(f"| {name} | {instructions() / 1000:,.0f} |", flush=True)
    finally:
        try:
            r.shutdown(nosave=True)
        except redis.ConnectionError:
            pass
        server.wait(timeout=60)

if __name__ == "__main__":
    sys.exit(main())
