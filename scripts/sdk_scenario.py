#!/usr/bin/env python3
"""Drives a running `pharox serve` with the real Python client, pharox-sdk.

    PHAROX_API_KEY=... python scripts/sdk_scenario.py --url http://127.0.0.1:8000

Everything goes through the SDK's public API: `PharoxSDK.remote(url, key)`
(pools, acquire, release, `with_lease`) and the `PharoxClient` the package
exports (`add_proxy`, `get_lease`, `list_proxies`, `delete_pool`: PharoxSDK has
no method for them). One exception, marked where it happens: `add_proxy`
cannot send `max_concurrency`, so the single-slot proxies of the concurrency
part are added with a plain HTTP POST (urllib) of the same route.

Checks pools, proxies with countries and coordinates, acquire with filters
(country, a radius) and with each strategy, `with_lease`, `None` when the
pool is exhausted, release, `get_lease` -> None after release, and 200 asyncio
tasks sharing 20 single-slot proxies without any proxy held twice at once.
Pool names carry a random suffix, so a long-lived server can run it again.

Exits 0 with a one-line summary; 1 with "sdk scenario: FAILED: ..." on any
failed check, error or time-out (--timeout, 120 s by default). The key is read
from $PHAROX_API_KEY (never an argument: it would show in `ps`) and never
printed.
"""

import argparse
import asyncio
import json
import math
import os
import random
import sys
import time
import traceback
import urllib.request
import uuid
from datetime import timedelta
from importlib.metadata import version

from pharox import PoolNotFoundError, ProxyFilters, SelectorStrategy
from pharox_sdk import PharoxClient, PharoxSDK, RemoteError

FIRST = SelectorStrategy.FIRST_AVAILABLE
LEAST = SelectorStrategy.LEAST_USED
ROUND = SelectorStrategy.ROUND_ROBIN

# name -> (country, city, latitude, longitude), added in this order.
PLACES = {
    "ar-bue": ("AR", "Buenos Aires", -34.6037, -58.3816),
    "ar-cor": ("AR", "Cordoba", -31.4201, -64.1888),  # ~650 km from Buenos Aires
    "br-sao": ("BR", "Sao Paulo", -23.5505, -46.6333),  # ~1,680 km
    "de-ber": ("DE", "Berlin", 52.5200, 13.4050),
}
BUENOS_AIRES = PLACES["ar-bue"][2:]

TASKS = 200
SLOTS = 20


class Failed(Exception):
    """A check of the scenario did not hold."""


def check(cond, what):
    if not cond:
        raise Failed(what)


def km(a, b):
    """Great-circle distance in km (the haversine formula pharox uses)."""
    (la1, lo1), (la2, lo2) = [(math.radians(x), math.radians(y)) for x, y in (a, b)]
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


class Scenario:
    def __init__(self, url, key):
        self.url = url.rstrip("/")
        self.key = key
        self.sdk = PharoxSDK.remote(self.url, api_key=key)
        self.client = PharoxClient(self.url, api_key=key)
        self.tag = uuid.uuid4().hex[:8]
        self.checks = 0
        self.pools = []

    def ok(self, cond, what):
        check(cond, what)
        self.checks += 1

    async def close(self):
        for pool in self.pools:
            try:
                await self.client.delete_pool(str(pool.id))
            except RemoteError:
                pass
        await self.sdk.aclose()
        await self.client.aclose()

    async def acquire(self, pool, **kw):
        return await self.sdk.acquire_proxy(pool.name, consumer_id="scenario", **kw)

    # -- pools and proxies ------------------------------------------------

    async def create_pool(self, base):
        name = f"{base}-{self.tag}"
        pool = await self.sdk.create_pool(name, description=f"sdk scenario {base}")
        self.pools.append(pool)
        self.ok(pool.name == name and isinstance(pool.id, uuid.UUID), f"create_pool answered {pool!r}")
        self.ok(pool.description == f"sdk scenario {base}", f"description lost: {pool!r}")
        return pool

    async def pools_and_proxies(self):
        pool = await self.create_pool("geo")
        listed = {p.name: p for p in await self.sdk.list_pools()}
        self.ok(listed.get(pool.name) == pool, f"list_pools does not show {pool.name}: {listed}")
        try:
            await self.sdk.create_pool(pool.name)
            raise Failed("a second pool with the same name was created")
        except RemoteError as e:
            self.ok(e.status_code == 409, f"duplicate pool: {e}")

        self.names = {}  # proxy UUID -> place name
        for i, (name, (country, city, lat, lon)) in enumerate(PLACES.items()):
            body = await self.client.add_proxy(
                str(pool.id), f"10.0.0.{i + 1}", 8080, country=country, city=city, latitude=lat, longitude=lon
            )
            self.ok(
                (body["country"], body["city"], body["latitude"], body["longitude"]) == (country, city, lat, lon)
                and body["status"] == "active"
                and body["pool_id"] == str(pool.id),
                f"add_proxy {name} answered {body}",
            )
            self.names[uuid.UUID(body["id"])] = name
        body = await self.client.add_proxy(str(pool.id), "10.0.0.9", 1080, username="u", password="p4ss", country="ZZ")
        self.ok(body["username"] == "u" and "password" not in body, f"credentials in {body}")
        await self.client.delete_proxy(str(pool.id), body["id"])
        listed = await self.client.list_proxies(str(pool.id))
        self.ok(
            sorted(uuid.UUID(p["id"]) for p in listed) == sorted(self.names),
            f"list_proxies: {[p['id'] for p in listed]}",
        )
        return pool

    def place(self, lease):
        check(lease is not None, "no lease where one was expected")
        return self.names.get(lease.proxy_id, f"unknown proxy {lease.proxy_id}")

    # -- filters and strategies ---------------------------------------------

    async def filters(self, pool):
        async def one(**filters):
            lease = await self.acquire(pool, filters=ProxyFilters(**filters))
            if lease is None:
                return None
            await self.sdk.release_proxy(lease)
            return self.place(lease)

        self.ok(await one(country="AR") == "ar-bue", "country=AR, first_available: not the first AR proxy")
        self.ok(await one(country="BR") == "br-sao", "country=BR")
        self.ok(await one(country="JP") is None, "country=JP matched a proxy")
        lat, lon = BUENOS_AIRES
        self.ok(await one(latitude=lat, longitude=lon, radius_km=50) == "ar-bue", "50 km around Buenos Aires")
        self.ok(await one(latitude=52.0, longitude=13.0, radius_km=100) == "de-ber", "100 km around Potsdam")
        self.ok(await one(latitude=0.0, longitude=0.0, radius_km=500) is None, "500 km around 0,0 matched")
        self.ok(
            await one(latitude=lat, longitude=lon, radius_km=2000, none_of=[ProxyFilters(country="AR")]) == "br-sao",
            "2,000 km around Buenos Aires, not AR",
        )
        self.ok(
            await one(any_of=[ProxyFilters(country="DE"), ProxyFilters(city="Cordoba")]) == "ar-cor",
            "DE or Cordoba, first_available",
        )

        # A radius with round robin cycles through the proxies inside it only.
        seen = []
        for _ in range(6):
            lease = await self.acquire(pool, selector=ROUND, filters=ProxyFilters(latitude=lat, longitude=lon, radius_km=800))
            seen.append(self.place(lease))
            await self.sdk.release_proxy(lease)
        inside = {n for n, p in PLACES.items() if km(BUENOS_AIRES, p[2:]) <= 800}
        self.ok(inside == {"ar-bue", "ar-cor"}, f"test data: {inside}")
        self.ok(
            set(seen) == inside and all(a != b for a, b in zip(seen, seen[1:])),
            f"round_robin within 800 km: {seen}",
        )

    async def strategies(self, pool):
        held = []
        try:
            # first_available: the first proxy added, while it has room.
            for _ in range(3):
                held.append(await self.acquire(pool, selector=FIRST))
            self.ok([self.place(x) for x in held] == ["ar-bue"] * 3, f"first_available: {[self.place(x) for x in held]}")
            # least_used: the fewest leases first, ties to the first added.
            least = [await self.acquire(pool, selector=LEAST) for _ in range(4)]
            held += least
            self.ok(
                [self.place(x) for x in least] == ["ar-cor", "br-sao", "de-ber", "ar-cor"],
                f"least_used with ar-bue holding 3: {[self.place(x) for x in least]}",
            )
        finally:
            for lease in held:
                await self.sdk.release_proxy(lease)
        # round_robin: every proxy once per turn, in the order added.
        order = list(PLACES)
        seen = []
        for _ in range(2 * len(order)):
            lease = await self.acquire(pool, selector=ROUND)
            seen.append(self.place(lease))
            await self.sdk.release_proxy(lease)
        start = order.index(seen[0])
        want = [order[(start + i) % len(order)] for i in range(len(seen))]
        self.ok(seen == want, f"round_robin: {seen}, want {want}")

    # -- leases -------------------------------------------------------------

    async def leases(self, pool):
        lease = await self.sdk.acquire_proxy(pool.name, consumer_id="reader", ttl_seconds=60)
        self.ok(lease is not None and lease.status.value == "active", f"acquire: {lease!r}")
        self.ok(lease.pool_id == pool.id, f"lease.pool_id {lease.pool_id} != pool {pool.id}")
        self.ok(lease.expires_at - lease.acquired_at == timedelta(seconds=60), f"ttl 60 s: {lease!r}")
        self.ok(lease.acquired_at.utcoffset() == timedelta(0), f"acquired_at not UTC: {lease.acquired_at!r}")
        again = await self.sdk.acquire_proxy(pool.name, consumer_id="reader", ttl_seconds=60)
        self.ok(again.consumer_id == lease.consumer_id and again.id != lease.id, "one consumer, one UUID")

        got = await self.client.get_lease(str(lease.id))
        self.ok(got == lease, f"get_lease: {got!r}, acquired {lease!r}")

        released = await self.client.release_lease(str(lease.id))
        self.ok(released.id == lease.id and released.status.value == "released", f"release_lease: {released!r}")
        self.ok(await self.client.get_lease(str(lease.id)) is None, "get_lease after release is not None")
        try:
            await self.sdk.release_proxy(lease)
            raise Failed("a second release of one lease succeeded")
        except RemoteError as e:
            self.ok(e.status_code == 404, f"second release: {e}")

        await self.sdk.release_proxy(again)
        self.ok(await self.client.get_lease(str(again.id)) is None, "get_lease after release_proxy is not None")

        async with self.sdk.with_lease(pool.name, consumer_id="ctx", filters=ProxyFilters(country="DE")) as inside:
            self.ok(self.place(inside) == "de-ber", f"with_lease country=DE: {inside!r}")
            self.ok(await self.client.get_lease(str(inside.id)) == inside, "with_lease's lease is not live inside")
        self.ok(await self.client.get_lease(str(inside.id)) is None, "with_lease did not release on exit")
        async with self.sdk.with_lease(pool.name, filters=ProxyFilters(country="JP")) as nothing:
            self.ok(nothing is None, f"with_lease country=JP: {nothing!r}")
        try:
            async with self.sdk.with_lease(pool.name, consumer_id="ctx") as failing:
                raise KeyError("inside")
        except KeyError:
            pass
        self.ok(await self.client.get_lease(str(failing.id)) is None, "with_lease did not release on an exception")

        try:
            await self.sdk.acquire_proxy(f"missing-{self.tag}")
            raise Failed("acquire on a missing pool did not raise")
        except PoolNotFoundError:
            self.checks += 1

    # -- exhaustion and concurrency ----------------------------------------

    def post(self, path, body):
        """POST with urllib, outside the SDK: for what add_proxy cannot send."""
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "X-API-Key": self.key},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            check(resp.status == 201, f"POST {path}: {resp.status}")
            return json.loads(resp.read())

    async def single_slot_pool(self):
        pool = await self.create_pool("slots")
        path = f"/v1/pools/{pool.id}/proxies/"
        bodies = await asyncio.gather(
            *(
                asyncio.to_thread(self.post, path, {"host": f"10.1.0.{i}", "port": 3128, "max_concurrency": 1})
                for i in range(SLOTS)
            )
        )
        self.ok(all(b["max_concurrency"] == 1 for b in bodies), "max_concurrency not kept")
        return pool, {uuid.UUID(b["id"]) for b in bodies}

    async def exhaustion(self, pool, slots):
        leases = [await self.acquire(pool, selector=ROUND) for _ in range(SLOTS)]
        try:
            self.ok(all(x is not None for x in leases), "a free slot was refused")
            self.ok({x.proxy_id for x in leases} == slots, "20 leases of 20 single-slot proxies are not on 20 proxies")
            for strategy in (FIRST, LEAST, ROUND):
                self.ok(await self.acquire(pool, selector=strategy) is None, f"{strategy.value}: exhausted pool answered")
            async with self.sdk.with_lease(pool.name) as none:
                self.ok(none is None, "with_lease on an exhausted pool")
            freed = leases.pop(7)
            await self.sdk.release_proxy(freed)
            refill = await self.acquire(pool)
            self.ok(refill is not None and refill.proxy_id == freed.proxy_id, "the freed slot is not the one leased")
            leases.append(refill)
        finally:
            for lease in leases:
                if lease is not None:
                    await self.sdk.release_proxy(lease)

    async def concurrency(self, pool, slots):
        holders = {}  # proxy UUID -> task number, while a task holds it
        stats = {"misses": 0, "leases": 0, "peak": 0}
        doubles = []
        foreign = []
        first_miss = asyncio.Event()

        async def task(n):
            while True:
                lease = await self.sdk.acquire_proxy(pool.name, consumer_id=f"task-{n}", ttl_seconds=120)
                if lease is None:
                    stats["misses"] += 1
                    first_miss.set()
                    await asyncio.sleep(random.uniform(0.001, 0.005))
                    continue
                break
            stats["leases"] += 1
            if lease.proxy_id not in slots:
                foreign.append(lease.proxy_id)
            other = holders.get(lease.proxy_id)
            if other is not None:
                doubles.append((lease.proxy_id, other, n))
            holders[lease.proxy_id] = n
            stats["peak"] = max(stats["peak"], len(holders))
            # The first holders wait for a refusal, so the pool is certainly
            # seen exhausted however the tasks are scheduled.
            await first_miss.wait()
            await asyncio.sleep(random.uniform(0, 0.003))
            if holders.get(lease.proxy_id) == n:
                del holders[lease.proxy_id]
            # Marked free before the release is sent: once sent, the slot
            # may go to another task.
            await self.sdk.release_proxy(lease)

        await asyncio.gather(*(task(n) for n in range(TASKS)))
        self.ok(not foreign, f"leases on proxies outside the pool: {foreign[:3]}")
        self.ok(not doubles, f"{len(doubles)} proxies held by two tasks at once, e.g. {doubles[:3]}")
        self.ok(stats["leases"] == TASKS, f"{stats['leases']} of {TASKS} tasks got a lease")
        self.ok(stats["misses"] > 0, "the pool was never seen exhausted")
        self.ok(stats["peak"] <= SLOTS, f"{stats['peak']} holders at once")
        left = [p["current_leases"] for p in await self.client.list_proxies(str(pool.id))]
        self.ok(left == [0] * SLOTS, f"leases left after every release: {left}")
        return stats

    async def deleted_pool(self, pool):
        await self.client.delete_pool(str(pool.id))
        self.pools.remove(pool)
        try:
            await self.sdk.acquire_proxy(pool.name)  # the SDK still has its UUID cached
            raise Failed("acquire on a deleted pool did not raise")
        except PoolNotFoundError:
            self.checks += 1

    async def run(self):
        geo = await self.pools_and_proxies()
        await self.filters(geo)
        await self.strategies(geo)
        await self.leases(geo)
        slots_pool, slots = await self.single_slot_pool()
        await self.exhaustion(slots_pool, slots)
        stats = await self.concurrency(slots_pool, slots)
        await self.deleted_pool(geo)
        return stats


async def main(args):
    key = os.environ.get("PHAROX_API_KEY")
    if not key:
        raise Failed("PHAROX_API_KEY is not set")
    started = time.monotonic()
    scenario = Scenario(args.url, key)
    try:
        stats = await scenario.run()
    finally:
        await scenario.close()
    print(
        f"sdk scenario: OK: pharox-sdk {version('pharox-sdk')}, pharox {version('pharox')}, "
        f"{scenario.checks} checks, {TASKS} tasks on {SLOTS} single-slot proxies: "
        f"{stats['leases']} leases, {stats['misses']} refusals retried, peak {stats['peak']} held, "
        f"no proxy held twice; {time.monotonic() - started:.1f} s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the server's base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds for the whole scenario")
    args = parser.parse_args()
    try:
        asyncio.run(asyncio.wait_for(main(args), args.timeout))
    except Failed as e:
        print(f"sdk scenario: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except asyncio.TimeoutError:
        print(f"sdk scenario: FAILED: not done within {args.timeout:g} s", file=sys.stderr)
        sys.exit(1)
    except Exception as e:
        traceback.print_exc()
        print(f"sdk scenario: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
