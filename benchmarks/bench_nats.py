"""Benchmark machines over NATS (a local nats-server), on asyncio and trio.

1. Round trip: ``await nm.add1(S)`` from a `NatsMachine` on one connection
   to a machine exposed on another (S alternates between A and B, which
   remove each other, so every call is a real transition). That is one
   request and one reply through the server.
   The floor, measured in the same run: a bare nats-py request/reply
   between two connections of the same server, on asyncio (nats-py runs
   nowhere else), with payloads of the same sizes as the JSON request and
   reply, a responder that answers from its subscription callback, 50
   warm-up round trips first, best of the repeats for both.
   Goal: at most 1.5x the floor on asyncio. Under trio nats-py runs in an
   asyncio thread (`NatsConn` bridges it), so the trio ratio, against the
   same asyncio floor, is the price of the bridge.
2. Throughput: 10 requesters (10 connections, one `NatsMachine` each) send
   ``add1`` round trips to one machine concurrently; requests per second.
   The bare nats-py peer: 10 requesters against one responder.

Usage::

    python benchmarks/bench_nats.py            # full run
    python benchmarks/bench_nats.py --quick    # smoke run (CI), figures meaningless
"""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import Any

import anyio
import nats

import asyncmachine as am
from asyncmachine.integrations import nats as amn
from asyncmachine.integrations._json import MutationReq, dumps

SCHEMA: am.Schema = {
    "A": am.State(remove=["B"]),
    "B": am.State(remove=["A"]),
}
REQUESTERS = 10


def _sizes() -> tuple[int, int]:
    """Bytes of a round trip's request and reply."""
    req = dumps(MutationReq(add=("A",)).to_json())
    resp = dumps({"kind": "am_resp_mutation", "mach_id": "bench", "result": 0})
    return len(req), len(resp)


async def _am_round_trip(url: str, n: int) -> float:
    async with (
        amn.NatsConn(url) as c1,
        amn.NatsConn(url) as c2,
        am.Machine(SCHEMA, id="bench") as mach,
        amn.expose(mach, c1, "bench"),
    ):
        nm = amn.NatsMachine(c2, "bench", "bench")
        states = ("A", "B")
        for i in range(50):
            await nm.add1(states[i & 1])
        t0 = time.perf_counter()
        for i in range(n):
            await nm.add1(states[i & 1])
        return (time.perf_counter() - t0) / n


async def _am_throughput(url: str, n: int) -> float:
    async with contextlib.AsyncExitStack() as stack:
        c1 = await stack.enter_async_context(amn.NatsConn(url))
        mach = await stack.enter_async_context(am.Machine(SCHEMA, id="bench"))
        await stack.enter_async_context(amn.expose(mach, c1, "bench"))
        clients = [
            amn.NatsMachine(
                await stack.enter_async_context(amn.NatsConn(url)), "bench", "bench"
            )
            for _ in range(REQUESTERS)
        ]

        async def requester(nm: amn.NatsMachine) -> None:
            for i in range(n):
                await nm.add1("A" if i & 1 else "B")

        for nm in clients:
            await nm.add1("A")
        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for nm in clients:
                tg.start_soon(requester, nm)
        return n * REQUESTERS / (time.perf_counter() - t0)


async def _bare_connections(url: str, k: int) -> tuple[Any, list[Any]]:
    _, resp_size = _sizes()
    reply = b"y" * resp_size
    responder = await nats.connect(url)

    async def cb(msg: Any) -> None:
        await msg.respond(reply)

    await responder.subscribe("bare", cb=cb)
    await responder.flush()
    await responder.flush()
    return responder, [await nats.connect(url) for _ in range(k)]


async def _bare_round_trip(url: str, n: int) -> float:
    req_size, _ = _sizes()
    request = b"x" * req_size
    responder, (nc,) = await _bare_connections(url, 1)
    try:
        for _ in range(50):
            await nc.request("bare", request, timeout=5)
        t0 = time.perf_counter()
        for _ in range(n):
            await nc.request("bare", request, timeout=5)
        return (time.perf_counter() - t0) / n
    finally:
        await nc.close()
        await responder.close()


async def _bare_throughput(url: str, n: int) -> float:
    req_size, _ = _sizes()
    request = b"x" * req_size
    responder, ncs = await _bare_connections(url, REQUESTERS)

    async def requester(nc: Any) -> None:
        for _ in range(n):
            await nc.request("bare", request, timeout=5)

    try:
        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for nc in ncs:
                tg.start_soon(requester, nc)
        return n * REQUESTERS / (time.perf_counter() - t0)
    finally:
        for nc in ncs:
            await nc.close()
        await responder.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run")
    ns = parser.parse_args()
    n = 100 if ns.quick else 3000
    per_requester = 20 if ns.quick else 500
    repeats = 1 if ns.quick else 5
    req_size, resp_size = _sizes()
    print(f"one request ({req_size} B) and one reply ({resp_size} B) per round trip")
    with amn.LocalServer(jetstream=False) as server:
        url = server.url
        best: dict[str, float] = {}
        for _ in range(repeats):
            # interleaved, so that load on the machine hits all alike
            for key, fn, backend in (
                ("bare", _bare_round_trip, "asyncio"),
                ("asyncio", _am_round_trip, "asyncio"),
                ("trio", _am_round_trip, "trio"),
            ):
                t = anyio.run(fn, url, n, backend=backend)
                best[key] = min(best.get(key, float("inf")), t)
            for key, fn, backend in (
                ("bare_rps", _bare_throughput, "asyncio"),
                ("asyncio_rps", _am_throughput, "asyncio"),
                ("trio_rps", _am_throughput, "trio"),
            ):
                r = anyio.run(fn, url, per_requester, backend=backend)
                best[key] = max(best.get(key, 0.0), r)
    print(
        "backend  | add1 round trip µs | bare nats-py µs | ratio | "
        f"req/s, {REQUESTERS} requesters | bare req/s | ratio"
    )
    for backend in ("asyncio", "trio"):
        rt, rps = best[backend], best[f"{backend}_rps"]
        print(
            f"{backend:8} | {rt * 1e6:18.1f} | {best['bare'] * 1e6:15.1f} | "
            f"{rt / best['bare']:5.2f} | {rps:23,.0f} | {best['bare_rps']:10,.0f} | "
            f"{best['bare_rps'] / rps:5.2f}"
        )


if __name__ == "__main__":
    main()
