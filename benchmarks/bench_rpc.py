"""Benchmark aRPC over loopback TCP, on asyncio and on trio.

1. Round trip: ``await net.add1(S)`` from a client's network machine with
   the default options (call timeout, heartbeat); S alternates between A
   and B, which remove each other, so every call is a real transition whose
   clock change travels back with the result. That is one frame each way:
   MUTATE out, RESULT (result + clock delta) back.
   The floor, measured in the same process and run: a bare request/response
   over an anyio TCP stream on the same event loop, also one length-prefixed
   frame each way and of the same sizes as aRPC's (the echo server reads the
   request whole, then writes the reply in one send), over one persistent
   connection, 50 warm-up round trips first, best of the repeats for both.
   Goal: at most 2x the floor.
2. Fan-out: one source, N clients (10 and 100); the source toggles A/B as
   fast as the pushes reach every client; reported as pushes per second
   delivered (mutations per second x clients).
3. Accept rate: connections a server with a shared secret takes through
   the whole handshake (TCP connect, hello, proofs both ways, welcome) per
   second, from 16 raw peers connecting in a loop, each closing after its
   welcome.

Usage::

    python benchmarks/bench_rpc.py            # full run
    python benchmarks/bench_rpc.py --quick    # smoke run (CI), figures meaningless
"""

from __future__ import annotations

import argparse
import os
import struct
import time
from typing import Any

import anyio
import anyio.abc

import asyncmachine as am
from asyncmachine import rpc
from asyncmachine.rpc import _wire as w

SCHEMA: am.Schema = {
    "A": am.State(remove=["B"]),
    "B": am.State(remove=["A"]),
}
_HEADER = struct.Struct(">I")


async def _rpc_round_trip(n: int) -> float:
    async with (
        am.Machine(SCHEMA) as src,
        rpc.Server(src) as server,
        rpc.Client("127.0.0.1", server.port, SCHEMA) as client,
    ):
        net = client.net_mach
        await net.when_connected()
        states = ("A", "B")
        for i in range(50):
            await net.add1(states[i & 1])
        t0 = time.perf_counter()
        for i in range(n):
            await net.add1(states[i & 1])
        return (time.perf_counter() - t0) / n


def _frame_sizes() -> tuple[int, int]:
    """Sizes of one call's frames: MUTATE out, RESULT with a two-tick delta
    back (typical values: ticks, call id and sums in the tens of thousands)."""
    out = len(w.encode((w.MUTATE, 12345, w.OP_ADD, ["A"], {})))
    back = len(w.encode((w.RESULT, 12345, 0, [0, 12345, 1, 12346], 24691, 12345)))
    return out, back


async def _bare_round_trip(n: int) -> float:
    out_size, back_size = _frame_sizes()
    request = _HEADER.pack(out_size - 4) + b"x" * (out_size - 4)
    reply = _HEADER.pack(back_size - 4) + b"y" * (back_size - 4)

    async def echo(stream: anyio.abc.SocketStream) -> None:
        from anyio.streams.buffered import BufferedByteReceiveStream

        buf = BufferedByteReceiveStream(stream)
        async with stream:
            try:
                while True:
                    (size,) = _HEADER.unpack(await buf.receive_exactly(4))
                    await buf.receive_exactly(size)
                    await stream.send(reply)
            except (anyio.EndOfStream, anyio.IncompleteRead):
                return

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, echo)
        from anyio.streams.buffered import BufferedByteReceiveStream

        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            buf = BufferedByteReceiveStream(stream)

            async def one() -> None:
                await stream.send(request)
                (size,) = _HEADER.unpack(await buf.receive_exactly(4))
                await buf.receive_exactly(size)

            for _ in range(50):
                await one()
            t0 = time.perf_counter()
            for _ in range(n):
                await one()
            elapsed = (time.perf_counter() - t0) / n
        tg.cancel_scope.cancel()
    await listener.aclose()
    return elapsed


async def _accept_rate(total: int, workers: int = 16) -> float:
    secret = b"bench-secret-0123456789abcdef"
    names = am.Machine(SCHEMA).state_names
    hash_ = w.schema_hash(names)
    async with (
        am.Machine(SCHEMA) as src,
        rpc.Server(src, secret=secret, max_connections_per_address=workers * 2) as srv,
    ):
        port = srv.port

        async def one() -> None:
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                reader = w.FrameReader(stream, 1 << 20)
                nonce = os.urandom(w.NONCE_SIZE)
                hello = (w.C_HELLO, w.PROTOCOL_VERSION, nonce, "b", hash_, 1 << 20)
                await stream.send(w.encode(hello))
                msg = await reader.read(None, None)
                data = w.transcript(
                    w.PROTOCOL_VERSION, nonce, msg[2], "b", hash_, 1 << 20
                )
                assert w.proof_ok(secret, b"server", data, msg[3])
                await stream.send(w.encode((w.AUTH, w.proof(secret, b"client", data))))
                assert (await reader.read(None, None))[0] == w.WELCOME

        async def worker(n: int) -> None:
            for _ in range(n):
                await one()

        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(workers):
                tg.start_soon(worker, total // workers)
        return (total // workers * workers) / (time.perf_counter() - t0)


async def _fan_out(clients: int, n: int) -> float:
    async with (
        am.Machine(SCHEMA) as src,
        rpc.Server(src, outbox_size=n * 2 + 16) as server,
        _Stack() as stack,
    ):
        nets = []
        for i in range(clients):
            client = await stack.enter(
                rpc.Client("127.0.0.1", server.port, SCHEMA, id=f"c{i}", heartbeat=None)
            )
            await client.net_mach.when_connected()
            nets.append(client.net_mach)
        t0 = time.perf_counter()
        for i in range(n):
            src.add1("A" if i & 1 else "B")
        target = src.tick("A")
        for net in nets:
            await net.when_time1("A", target)
        elapsed = time.perf_counter() - t0
    return n * clients / elapsed


class _Stack:
    """A tiny async exit stack (enter many clients, leave in reverse)."""

    def __init__(self) -> None:
        self._items: list[Any] = []

    async def enter(self, cm: Any) -> Any:
        value = await cm.__aenter__()
        self._items.append(cm)
        return value

    async def __aenter__(self) -> _Stack:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for cm in reversed(self._items):
            await cm.__aexit__(None, None, None)


async def _run(quick: bool) -> dict[str, float]:
    n = 200 if quick else 5000
    repeats = 1 if quick else 5
    rpc_best = bare_best = float("inf")
    for _ in range(repeats):
        rpc_best = min(rpc_best, await _rpc_round_trip(n))
        bare_best = min(bare_best, await _bare_round_trip(n))
    pushes = 20 if quick else 500
    return {
        "rpc": rpc_best,
        "bare": bare_best,
        "fan_small": await _fan_out(10, pushes),
        "fan_big": await _fan_out(_BIG_FAN[quick], pushes),
        "accept": await _accept_rate(160 if quick else 3200),
    }


_BIG_FAN = {False: 100, True: 20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run")
    ns = parser.parse_args()
    out, back = _frame_sizes()
    print(f"frames per round trip: 1 out ({out} B), 1 back ({back} B)")
    print(
        "backend  | add1 round trip µs | bare floor µs | ratio | pushes/s 10 | "
        f"pushes/s {_BIG_FAN[ns.quick]} | handshakes/s"
    )
    for backend in ("asyncio", "trio"):
        r = anyio.run(_run, ns.quick, backend=backend)
        ratio = r["rpc"] / r["bare"]
        print(
            f"{backend:8} | {r['rpc'] * 1e6:18.1f} | {r['bare'] * 1e6:13.1f} | "
            f"{ratio:5.2f} | {r['fan_small']:11,.0f} | {r['fan_big']:12,.0f} | "
            f"{r['accept']:12,.0f}"
        )


if __name__ == "__main__":
    main()
