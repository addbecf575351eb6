"""aRPC in one process: a worker machine served over loopback TCP and a
client that drives it remotely, waits on its pushed clock and receives a
payload. Exits 0 when everything happened as expected.

Run it with ``python examples/rpc_remote_worker.py [--backend asyncio|trio|all]``.
"""

from __future__ import annotations

import argparse

import anyio
import anyio.lowlevel

import asyncmachine as am
from asyncmachine import rpc

SCHEMA: am.Schema = am.schema_merge(
    rpc.SOURCE_SCHEMA,
    {
        "Idle": am.State(remove=["Working"]),
        "Working": am.State(remove=["Idle"]),
        "Done": am.State(multi=True),
    },
)


class Worker:
    """The source side: squares the number it is given, then reports back."""

    def WorkingState(self, e: am.Event) -> None:
        n = e.args["n"]
        mach = e.machine
        mach.fork(mach.new_state_ctx("Working"), self.work, mach, n)

    async def work(self, mach: am.Machine, n: int) -> None:
        await anyio.lowlevel.checkpoint()  # pretend to work
        payload = rpc.Payload("result", {"n": n, "square": n * n})
        mach.add1("SendPayload", {"payload": payload})
        mach.add(["Idle", "Done"])


class Consumer:
    """The client side: receives the worker's payloads."""

    def __init__(self) -> None:
        self.results: list[dict[str, int]] = []

    def ServerPayloadState(self, e: am.Event) -> None:
        self.results.append(e.args["payload"].data)


async def main(backend: str) -> None:
    """Serve a worker, drive it from a client, check the payloads."""
    results = Consumer()
    async with am.Machine(SCHEMA, id="worker", handlers=Worker()) as worker:
        worker.add1("Idle")
        async with (
            rpc.Server(worker, secret="demo") as server,
            am.Machine(rpc.CONSUMER_SCHEMA, handlers=results) as consumer,
            rpc.Client(
                "127.0.0.1", server.port, SCHEMA, consumer=consumer, secret="demo"
            ) as client,
        ):
            net = client.net_mach
            await net.when_connected()
            print(f"[{backend}] connected:", net)
            for n in (3, 4):
                got = consumer.when_ticks(rpc.ConsumerStates.ServerPayload, 1)
                done = net.when_ticks("Done", 1 if n == 3 else 2)
                result = await net.add1("Working", {"n": n})
                print(f"add1(Working, n={n}) -> {result}")
                await got
                await done
                print("payload:", results.results[-1])
                print("remote clock:", net, "| source:", worker)
            assert net.time() == worker.time()
            assert results.results == [{"n": 3, "square": 9}, {"n": 4, "square": 16}]


def backends() -> list[str]:
    """The backends chosen with --backend (both by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio", "all"], default="all")
    chosen = parser.parse_args().backend
    return ["asyncio", "trio"] if chosen == "all" else [chosen]


if __name__ == "__main__":
    for backend in backends():
        anyio.run(main, backend, backend=backend)
