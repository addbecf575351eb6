"""aRPC timeouts without per-call timers, the single RESULT frame, clock
resyncs and stalled peers: a scripted fake server or a raw peer plays the
other side."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import pytest

import asyncmachine as am
from asyncmachine import rpc
from asyncmachine.rpc import ClientStates as CS
from asyncmachine.rpc import ServerStates as SS
from asyncmachine.rpc import _wire as w

SCHEMA: am.Schema = {"A": am.State(), "B": am.State(multi=True)}  # + Exception
SOURCE_SCHEMA: am.Schema = am.schema_merge(rpc.SOURCE_SCHEMA, SCHEMA)

Handler = Callable[[anyio.abc.SocketStream, w.FrameReader], Awaitable[None]]


@contextlib.asynccontextmanager
async def fake_server(handler: Handler) -> AsyncIterator[int]:
    """A server that does the handshake, then runs `handler`."""

    async def serve(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            reader = w.FrameReader(stream, 1 << 20)
            await reader.read(None, None)  # hello
            nonce = b"n" * 32
            await stream.send(w.encode((w.S_HELLO, w.PROTOCOL_VERSION, nonce, None)))
            await reader.read(None, None)  # auth
            welcome = (w.WELCOME, "sess", "fake", 64 << 20, [0, 0, 0], 0, 0)
            await stream.send(w.encode(welcome))
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                await handler(stream, reader)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        yield listener.extra(anyio.abc.SocketAttribute.local_port)
        tg.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def client(port: int, **kwargs: Any) -> AsyncIterator[rpc.Client]:
    kwargs.setdefault("heartbeat", None)
    kwargs.setdefault("reconnect", False)
    async with rpc.Client("127.0.0.1", port, SCHEMA, **kwargs) as c:
        await c.net_mach.when_connected()
        yield c


async def test_a_call_times_out_and_its_late_result_still_counts() -> None:
    release = anyio.Event()

    async def handler(stream: anyio.abc.SocketStream, reader: w.FrameReader) -> None:
        first = await reader.read(None, None)
        await release.wait()
        # the late result carries the clock change of the timed-out call
        await stream.send(w.encode((w.RESULT, first[1], 0, [0, 1], 1, 2)))
        second = await reader.read(None, None)
        assert second[:4] == [w.MUTATE, first[1] + 1, w.OP_ADD, ["B"]]
        await stream.send(w.encode((w.RESULT, second[1], 0, [1, 1], 2, 3)))
        await stream.send(w.encode((w.RESULT, 99, 0, [], 2, 3)))
        await anyio.sleep_forever()

    async with fake_server(handler) as port, client(port) as c:
        net = c.net_mach
        # a shorter timeout than the one the timer sleeps for wakes it
        await anyio.wait_all_tasks_blocked()
        c.call_timeout = 0.05
        with pytest.raises(TimeoutError, match=r"took over 0\.05s"):
            await net.add1("A")
        c.call_timeout = 30  # the next call must not time out on a busy machine
        release.set()
        await net.when1("A")
        assert await net.add1("B") is am.Result.EXECUTED
        assert net.time() == (1, 1, 0) and net.queue_tick == 3
        # a result for a call never made is a protocol error
        await c.mach.when1(CS.Disconnected)
        assert isinstance(c.mach.err, rpc.ProtocolError)
        assert "unknown call 99" in str(c.mach.err)


async def test_a_result_with_a_wrong_checksum_waits_for_the_full_clock() -> None:
    async def handler(stream: anyio.abc.SocketStream, reader: w.FrameReader) -> None:
        call = await reader.read(None, None)
        # the client missed B's tick: the checksum does not match its clock
        await stream.send(w.encode((w.RESULT, call[1], 0, [0, 1], 3, 2)))
        assert await reader.read(None, None) == [w.SYNC]
        await stream.send(w.encode((w.FULL, [1, 2, 0], 3, 2)))
        # again, and this time the full clock never comes
        call = await reader.read(None, None)
        await stream.send(w.encode((w.RESULT, call[1], 0, [], 9, 2)))
        await anyio.sleep_forever()

    async with fake_server(handler) as port, client(port, call_timeout=30) as c:
        net = c.net_mach
        assert await net.add1("A") is am.Result.EXECUTED
        assert net.time() == (1, 2, 0)
        assert c.mach.tick(CS.MetricSync) == 1
        c.call_timeout = 0.05  # a shorter deadline wakes the call timer
        with pytest.raises(TimeoutError, match="took over"):
            await net.add1("B")
        assert c._after_sync == []


async def test_a_silent_server_is_dropped_after_three_heartbeats() -> None:
    async def handler(stream: anyio.abc.SocketStream, reader: w.FrameReader) -> None:
        while True:  # pings stay unanswered
            assert (await reader.read(None, None))[0] == w.PING

    async with fake_server(handler) as port, client(port, heartbeat=0.02) as c:
        await c.mach.when1(CS.ConnRetryFailed)
        assert isinstance(c.mach.err, TimeoutError)
        assert "silent for 0.06s" in str(c.mach.err)


async def test_a_stalled_send_drops_the_connection() -> None:
    async def handler(stream: anyio.abc.SocketStream, reader: w.FrameReader) -> None:
        await anyio.sleep_forever()  # reads nothing: the client's send stalls

    big = b"x" * (48 << 20)
    async with (
        fake_server(handler) as port,
        client(port, call_timeout=0.2, max_frame=64 << 20) as c,
    ):
        with pytest.raises(TimeoutError, match=r"took over 0\.2s"):
            await c.net_mach.add1("A", {"blob": big})
        await c.mach.when1(CS.ConnRetryFailed)
        assert isinstance(c.mach.err, TimeoutError)
        assert "stalled" in str(c.mach.err)


async def test_a_client_that_does_not_read_is_dropped_quietly() -> None:
    async with (
        am.Machine(SOURCE_SCHEMA, id="src") as src,
        rpc.Server(src, send_timeout=0.2, outbox_size=2) as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as peer,
    ):
        from rpc_doc_client import WELCOME, DocClient

        doc = DocClient(peer)
        welcome = await doc.handshake(src.state_names, label="deaf", max_frame=64 << 20)
        assert welcome[0] == WELCOME  # then it stops reading
        gone = server.mach.when_ticks(SS.ClientDisconnected, 1)
        big = rpc.Payload("big", b"x" * (16 << 20))
        for _ in range(4):
            src.add1(rpc.SourceStates.SendPayload, {"payload": big})
        await gone
        assert server.clients == [] and server.mach.tick(SS.ClientRejected) == 0


async def test_missed_pushes_end_with_a_full_clock() -> None:
    async with (
        am.Machine(SCHEMA, id="src") as src,
        rpc.Server(src, outbox_size=2) as server,
        client(server.port) as c,
    ):
        net = c.net_mach
        for _ in range(50):  # no await: the outbox overflows
            src.add1("B")
        await net.when_time1("B", src.tick("B"))
        assert net.time() == src.time()
        assert server.mach.tick(SS.MetricSync) == 1
        # the caller's own result brings its clock change, the others' too
        src.add1("B")
        assert await net.add1("A") is am.Result.EXECUTED
        assert net.time() == src.time() == (1, 101, 0)


def test_bad_timeouts() -> None:
    src = am.Machine(SCHEMA)
    with pytest.raises(ValueError, match="send_timeout"):
        rpc.Server(src, send_timeout=0)
    with pytest.raises(ValueError, match="idle_timeout"):
        rpc.Server(src, idle_timeout=-1.0)


async def test_a_call_sends_its_change_once_to_each_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The caller learns of its own change from the RESULT frame alone, the
    others from one UPDATE; the server's tracer builds no Transitions."""
    from asyncmachine.rpc._client import NetMachine

    applied: dict[int, int] = {}
    apply = NetMachine._apply

    def counting(self: NetMachine, pairs: Any, queue_tick: int) -> None:
        applied[id(self)] = applied.get(id(self), 0) + 1
        apply(self, pairs, queue_tick)

    monkeypatch.setattr(NetMachine, "_apply", counting)
    async with (
        am.Machine(SCHEMA, id="src") as src,
        rpc.Server(src) as server,
        client(server.port, id="caller") as caller,
        client(server.port, id="other") as other,
    ):
        (tracer,) = src.tracers
        assert src._tx_tracers == ()  # a queue hook only
        net, net2 = caller.net_mach, other.net_mach
        applied.clear()
        assert await net.add1("A") is am.Result.EXECUTED
        await net2.when1("A")
        assert applied == {id(net): 1, id(net2): 1}
        # a change the source makes itself reaches both as one push
        src.add1("B")
        await net.when1("B")
        await net2.when1("B")
        assert applied == {id(net): 2, id(net2): 2}
        assert src.tracers == (tracer,)
