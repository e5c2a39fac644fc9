#!/usr/bin/env python3
"""Acquire+release cycles through the real Python client, pharox-sdk, against
a running `pharox serve`: what a Python fleet gets from one process.

    PHAROX_API_KEY=... python scripts/sdk_bench.py --url http://127.0.0.1:8000 \\
        --tasks 64 --proxies 1000 --seconds 5

Creates a pool (random name) of --proxies proxies, runs --tasks asyncio tasks
that each loop `acquire_proxy` + `release_proxy` (the SDK's public API) for
--warmup-seconds unmeasured, then --seconds measured, and prints one JSON
object: cycles, cycles/s, acquire p50/p99 in µs, misses, and this process's
CPU per cycle (the Python client's own cost). The pool is deleted afterwards.
The key is read from $PHAROX_API_KEY (never an argument) and never printed.
Exits 1 with a message on any error.
"""

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from importlib.metadata import version

from pharox import SelectorStrategy
from pharox_sdk import PharoxClient, PharoxSDK

STRATEGIES = {s.value: s for s in SelectorStrategy}


def quantile(sorted_values, q):
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[i]


async def seed(client, pool_id, n):
    """Adds n proxies, 32 requests in flight (hosts 10.x.y.z: never dialled)."""
    sem = asyncio.Semaphore(32)

    async def one(i):
        async with sem:
            await client.add_proxy(pool_id, f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 8080)

    await asyncio.gather(*(one(i) for i in range(n)))


async def run(args, key):
    sdk = PharoxSDK.remote(args.url, api_key=key)
    client = PharoxClient(args.url, api_key=key)
    name = f"sdk-bench-{uuid.uuid4().hex[:8]}"
    pool = await sdk.create_pool(name, description="sdk_bench.py")
    try:
        await seed(client, str(pool.id), args.proxies)
        strategy = STRATEGIES[args.strategy]
        phase = {"measuring": False, "stop": False}
        cycles, misses, latencies = [0], [0], []

        async def task(n):
            while not phase["stop"]:
                t0 = time.perf_counter()
                lease = await sdk.acquire_proxy(name, consumer_id=f"bench-{n}", ttl_seconds=60, selector=strategy)
                if phase["measuring"]:
                    latencies.append(time.perf_counter() - t0)
                if lease is None:
                    if phase["measuring"]:
                        misses[0] += 1
                    await asyncio.sleep(0)
                    continue
                await sdk.release_proxy(lease)
                if phase["measuring"]:
                    cycles[0] += 1

        tasks = [asyncio.create_task(task(n)) for n in range(args.tasks)]
        await asyncio.sleep(args.warmup_seconds)
        cpu0, t0 = time.process_time(), time.perf_counter()
        phase["measuring"] = True
        await asyncio.sleep(args.seconds)
        phase["measuring"] = False
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        phase["stop"] = True
        await asyncio.gather(*tasks)
    finally:
        await client.delete_pool(str(pool.id))
        await sdk.aclose()
        await client.aclose()
    latencies.sort()
    return {
        "client": f"pharox-sdk {version('pharox-sdk')}",
        "proxies": args.proxies,
        "tasks": args.tasks,
        "selector": args.strategy,
        "cycles": cycles[0],
        "seconds": round(elapsed, 3),
        "cycles_per_sec": round(cycles[0] / elapsed, 1),
        "acquire_p50_us": round(quantile(latencies, 0.50) * 1e6, 1),
        "acquire_p99_us": round(quantile(latencies, 0.99) * 1e6, 1),
        "misses": misses[0],
        "client_cpu_us_per_cycle": round(cpu * 1e6 / max(cycles[0], 1), 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the server's base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--tasks", type=int, default=64, help="asyncio tasks leasing at once")
    parser.add_argument("--proxies", type=int, default=1000, help="proxies in the bench pool")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds")
    parser.add_argument("--warmup-seconds", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--strategy", default="first_available", choices=sorted(STRATEGIES), help="selector")
    args = parser.parse_args()
    if args.tasks < 1 or args.proxies < 1 or args.seconds <= 0 or args.warmup_seconds < 0:
        parser.error("--tasks and --proxies must be at least 1, --seconds above 0, --warmup-seconds not negative")
    key = os.environ.get("PHAROX_API_KEY")
    if not key:
        print("sdk bench: PHAROX_API_KEY is not set", file=sys.stderr)
        sys.exit(1)
    try:
        report = asyncio.run(run(args, key))
    except Exception as e:  # noqa: BLE001 - one clear line for any failure
        print(f"sdk bench: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
