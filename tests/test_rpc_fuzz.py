"""Fuzz a live aRPC server with random and malformed frames: it keeps
serving a well-behaved client, loses none of its pushes, and the source
machine only changes by the good client's hand."""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import anyio
import anyio.abc
import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asyncmachine as am
from asyncmachine import rpc
from asyncmachine.rpc import _wire as w
from rpc_doc_client import DocClient

SCHEMA: am.Schema = {
    "Alpha": am.State(),
    "Beta": am.State(require=["Alpha"]),
    "Tick": am.State(multi=True),
}
NAMES = am.Machine(SCHEMA).state_names

plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)
messages = st.one_of(
    st.lists(plain, max_size=5),
    st.tuples(st.integers(0, 12), plain, plain, plain, plain).map(list),
    st.tuples(
        st.just(w.MUTATE),
        plain,
        st.integers(-1, 6),
        st.lists(st.text(max_size=6).filter(lambda s: s not in NAMES), max_size=3),
        plain,
    ).map(list),
)


@st.composite
def junk(draw: st.DrawFn) -> tuple[bool, bytes]:
    """(do the handshake first?, bytes to send)"""
    after_hello = draw(st.booleans())
    kind = draw(st.integers(0, 3))
    if kind == 0:
        data = draw(st.binary(min_size=1, max_size=40))
    elif kind == 1:  # a header that lies about the body
        size = draw(st.integers(0, 2**32 - 1))
        data = struct.pack(">I", size) + draw(st.binary(max_size=20))
    else:  # a well-framed msgpack value that is not a valid message
        body = msgpack.packb(draw(messages), use_bin_type=True)
        data = struct.pack(">I", len(body)) + body
        if kind == 3:
            data = data[: draw(st.integers(0, len(data) - 1))]
    return after_hello, data


async def _hello(stream: anyio.abc.SocketStream) -> None:
    welcome = await DocClient(stream).handshake(NAMES, label="fuzz")
    assert welcome[0] == w.WELCOME


async def _throw(port: int, after_hello: bool, data: bytes) -> None:
    async with await anyio.connect_tcp("127.0.0.1", port) as peer:
        if after_hello:
            await _hello(peer)
        with contextlib.suppress(anyio.BrokenResourceError, OSError):
            await peer.send(data)
            await peer.send_eof()
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            while True:
                await peer.receive()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(attacks=st.lists(junk(), min_size=1, max_size=4))
async def test_fuzzed_frames_never_hurt_a_good_client(
    anyio_backend: Any, attacks: list[tuple[bool, bytes]]
) -> None:
    with anyio.fail_after(15):
        async with (
            am.Machine(SCHEMA, id="src") as src,
            rpc.Server(src, frame_timeout=2) as server,
            rpc.Client("127.0.0.1", server.port, SCHEMA, id="good") as good,
        ):
            net = good.net_mach
            await net.when_connected()
            for n, (after_hello, data) in enumerate(attacks):
                await _throw(server.port, after_hello, data)
                # pushes in between junk all arrive
                src.add1("Tick")
                await net.when_time1("Tick", 2 * n + 1)
            assert src.tick("Alpha") == 0 and src.tick("Beta") == 0
            assert await net.add(["Alpha", "Beta"]) is am.Result.EXECUTED
            assert net.time() == src.time()
            assert good.id in server.clients
            assert good.mach.not1(am.EXCEPTION) and src.not1(am.EXCEPTION)
