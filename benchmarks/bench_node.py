"""Benchmark asyncmachine.node: worker pools of real processes, on asyncio
and on trio.

1. Time to a warm worker: a supervisor with ``min=1`` from ``async with``
   to ``Ready`` (a process started, its imports, the registration, the
   supervisor's connection), and then a client's ``request_worker()`` from
   a warm pool (the payload with the address, the connection to the
   worker).
2. Throughput: CPU-bound requests (SHA-256 over 1 MiB, ``ROUNDS`` times)
   through a pool of 4 worker processes driven by 4 clients, against the
   same work done directly, one request after another, in this process.
   The ratio is the scaling factor (2 cores: at most 2).
3. Per-request overhead: a no-op request through the pool, one client,
   one request after another: the round trip of a job (``WorkRequested``
   over aRPC, the worker's task, the result payload back), against a bare
   aRPC ``add1`` round trip to the same worker (the peer).

This file is also the worker module: the supervisor starts it as
``python -m bench_node --boot HOST:PORT``.

Usage::

    python benchmarks/bench_node.py            # full run
    python benchmarks/bench_node.py --quick    # smoke run (CI), figures meaningless
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from asyncmachine import node
from asyncmachine.states import SupervisorStates

HERE = Path(__file__).resolve().parent
BLOCK = os.urandom(1 << 20)
ROUNDS = 4


def cpu_work(rounds: int) -> str:
    """The CPU-bound job: SHA-256 of 1 MiB, `rounds` times."""
    digest = b""
    for _ in range(rounds):
        digest = hashlib.sha256(BLOCK + digest).digest()
    return digest.hex()


async def work(data: Any) -> Any:
    """The worker's work: `cpu` runs `cpu_work`, `noop` returns at once."""
    if data["op"] == "cpu":
        return cpu_work(data["rounds"])
    return None


def _supervisor(size: int) -> node.Supervisor:
    return node.Supervisor(
        "bench_node",
        secret=os.urandom(16).hex(),
        min=size,
        max=size,
        warm=0,
        env={"PYTHONPATH": str(HERE)},
    )


async def _warm(repeats: int) -> tuple[float, float]:
    """Seconds to a ready pool of 1, and of a client's request_worker."""
    starts, requests = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        async with _supervisor(1) as sup:
            await sup.mach.when1(SupervisorStates.Ready)
            starts.append(time.perf_counter() - t0)
            async with node.Client("127.0.0.1", sup.port, secret=sup.secret) as c:
                await c.super.net_mach.when_connected()
                t0 = time.perf_counter()
                await c.request_worker()
                requests.append(time.perf_counter() - t0)
    return min(starts), min(requests)


async def _pool(size: int, jobs: int, rounds: int) -> tuple[float, float, float]:
    """Requests per second through a pool of `size` with `size` clients,
    the seconds per no-op request of one client and per aRPC round trip."""
    async with _supervisor(size) as sup:
        await sup.mach.when1(SupervisorStates.Ready)
        clients = [
            node.Client("127.0.0.1", sup.port, secret=sup.secret) for _ in range(size)
        ]
        for c in clients:
            await c.__aenter__()
        try:
            for c in clients:
                await c.request_worker()
                await c.work({"op": "cpu", "rounds": 1})  # warm up

            async def share(c: node.Client, n: int) -> None:
                for _ in range(n):
                    await c.work({"op": "cpu", "rounds": rounds})

            t0 = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for c in clients:
                    tg.start_soon(share, c, jobs // size)
            rps = (jobs // size * size) / (time.perf_counter() - t0)
            c = clients[0]
            for _ in range(20):
                await c.work({"op": "noop"})
            n = max(50, jobs)
            t0 = time.perf_counter()
            for _ in range(n):
                await c.work({"op": "noop"})
            per_request = (time.perf_counter() - t0) / n
            # the peer: a bare aRPC add1 round trip to the same worker
            assert c.worker is not None
            net = c.worker.net_mach
            t0 = time.perf_counter()
            for _ in range(n):
                await net.add1("Healthcheck")
            round_trip = (time.perf_counter() - t0) / n
        finally:
            for c in reversed(clients):
                await c.__aexit__(None, None, None)
    return rps, per_request, round_trip


def _direct(jobs: int, rounds: int) -> float:
    cpu_work(1)
    t0 = time.perf_counter()
    for _ in range(jobs):
        cpu_work(rounds)
    return jobs / (time.perf_counter() - t0)


async def _run(quick: bool) -> dict[str, float]:
    jobs = 16 if quick else 400
    rounds = 1 if quick else ROUNDS
    start, request = await _warm(1 if quick else 3)
    rps, per_request, round_trip = await _pool(4, jobs, rounds)
    direct = _direct(jobs, rounds)
    return {
        "start": start,
        "request": request,
        "rps": rps,
        "direct": direct,
        "per_request": per_request,
        "round_trip": round_trip,
    }


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (CI)")
    parser.add_argument("--backend", choices=["asyncio", "trio", "all"], default="all")
    opts = parser.parse_args()
    chosen = ["asyncio", "trio"] if opts.backend == "all" else [opts.backend]
    print(f"{os.cpu_count()} CPUs; job: SHA-256 of 1 MiB x {ROUNDS}")
    print(
        "| backend | pool of 1 ready ms | request_worker ms | pool of 4 req/s "
        "| direct req/s | scaling | no-op request µs | aRPC add1 µs | ratio |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for backend in chosen:
        r = anyio.run(_run, opts.quick, backend=backend)
        print(
            f"| {backend} | {r['start'] * 1e3:.0f} | {r['request'] * 1e3:.1f} "
            f"| {r['rps']:.0f} | {r['direct']:.0f} | {r['rps'] / r['direct']:.2f} "
            f"| {r['per_request'] * 1e6:.0f} | {r['round_trip'] * 1e6:.0f} "
            f"| {r['per_request'] / r['round_trip']:.1f} |"
        )


if __name__ == "__main__":
    if "--boot" in sys.argv:  # started by the supervisor: be a worker
        node.run_worker(work)
    else:
        main()
