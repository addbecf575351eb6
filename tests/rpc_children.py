"""Child processes of the aRPC limit tests (tests/test_rpc_security.py):
each runs with its own file descriptor limit and prints what it saw.

    python tests/rpc_children.py memory BACKEND
    python tests/rpc_children.py emfile BACKEND
"""

from __future__ import annotations

import resource
import struct
import sys
import tracemalloc

import anyio

import asyncmachine as am
from asyncmachine import rpc
from asyncmachine.rpc import ServerStates as SS

SCHEMA: am.Schema = {"A": am.State(), "B": am.State(multi=True)}
PEERS = 1000


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


async def memory() -> None:
    """1,000 peers each start a hello just under the pre-auth limit and
    stall: print the bytes Python allocated for them (both ends)."""
    async with (
        am.Machine(SCHEMA) as src,
        rpc.Server(
            src,
            max_connections=2 * PEERS,
            max_connections_per_address=2 * PEERS,
            handshake_timeout=60,
        ) as server,
    ):
        body = b"\x96" + b"x" * (rpc.PRE_AUTH_MAX_FRAME - 20)
        started = struct.pack(">I", rpc.PRE_AUTH_MAX_FRAME) + body
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        peers = []
        for _ in range(PEERS):
            peer = await anyio.connect_tcp("127.0.0.1", server.port)
            await peer.send(started)
            peers.append(peer)
        with anyio.fail_after(60):
            while server.connections < PEERS:
                await anyio.wait_all_tasks_blocked()
            await anyio.wait_all_tasks_blocked()
        used = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        say(f"connections {server.connections}")
        say(f"bytes {used}")
        for peer in peers:
            await peer.aclose()


async def emfile() -> None:
    """Run out of descriptors while a client is connected: the server keeps
    serving it and accepts again once the flood (from the parent) closes."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (48, hard))
    async with (
        am.Machine(SCHEMA, id="src") as src,
        rpc.Server(src, max_connections=1000, handshake_timeout=60) as server,
        rpc.Client("127.0.0.1", server.port, SCHEMA, id="old") as old,
    ):
        with anyio.fail_after(30):
            await old.net_mach.when_connected()
            failed = server.mach.when1(SS.AcceptFailed)
            say(f"port {server.port}")
            await failed
            # the connected client is still served
            assert await old.net_mach.add1("B") is am.Result.EXECUTED
            src.add1("A")
            await old.net_mach.when1("A")
            say(f"serving {server.connections}")
            line = await anyio.to_thread.run_sync(sys.stdin.readline)
            assert line.strip() == "closed", line
            async with rpc.Client(
                "127.0.0.1", server.port, SCHEMA, id="new", backoff=0.01
            ) as new:
                await new.net_mach.when_connected()
                assert await new.net_mach.add1("B") is am.Result.EXECUTED
            assert old.net_mach.connected
            say(f"recovered {server.mach.tick(SS.AcceptFailed)}")


if __name__ == "__main__":
    what, backend = sys.argv[1], sys.argv[2]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if what == "memory" and soft < 4 * PEERS:
        want = 4 * PEERS
        try:  # root (CI) may raise the hard limit too
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want), hard))
        if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2 * PEERS + 64:
            say(f"no-fds {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}")
            sys.exit(0)
    anyio.run({"memory": memory, "emfile": emfile}[what], backend=backend)
