"""aRPC over real TCP on 127.0.0.1: mutations, pushes, handshake, security,
reconnects and misbehaving peers."""

from __future__ import annotations

import contextlib
import ssl
import struct
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
import msgpack
import pytest
import trustme

import asyncmachine as am
from asyncmachine import rpc
from asyncmachine.helpers import args_class, parse_args, pass_args
from asyncmachine.rpc import ClientStates as CS
from asyncmachine.rpc import ServerStates as SS
from asyncmachine.rpc import _wire as w

SCHEMA: am.Schema = am.schema_merge(
    rpc.SOURCE_SCHEMA,
    {
        "Alpha": am.State(),
        "Beta": am.State(require=["Alpha"]),
        "Gamma": am.State(remove=["Alpha"]),
        "Tick": am.State(multi=True),
    },
)


@args_class(key="tests.rpc.Job")
class Job:
    name: str
    size: int = 0


class Recorder:
    def __init__(self) -> None:
        self.jobs: list[Job | None] = []

    def AlphaState(self, e: am.Event) -> None:
        self.jobs.append(parse_args(Job, e.args))


@contextlib.asynccontextmanager
async def serve(
    src: am.Machine | None = None, **kwargs: Any
) -> AsyncIterator[rpc.Server]:
    async with contextlib.AsyncExitStack() as stack:
        if src is None:
            src = await stack.enter_async_context(am.Machine(SCHEMA, id="src"))
        server = await stack.enter_async_context(rpc.Server(src, **kwargs))
        yield server


@contextlib.asynccontextmanager
async def connect(
    server: rpc.Server, schema: am.Schema = SCHEMA, **kwargs: Any
) -> AsyncIterator[rpc.Client]:
    kwargs.setdefault("backoff", 0.01)
    kwargs.setdefault("max_backoff", 0.05)
    async with rpc.Client("127.0.0.1", server.port, schema, **kwargs) as client:
        if kwargs.get("max_retries") is None:
            await client.net_mach.when_connected()
        yield client


# ------------------------------------------------------------------ basics


async def test_mutations_return_real_results_and_clock_follows() -> None:
    rec = Recorder()
    async with serve() as server, connect(server, id="c1") as client:
        src = server.source
        src.bind_handlers(rec)
        net = client.net_mach
        assert net.connected and net.source_id == "src"
        assert server.clients == ["c1"]
        assert net.state_names == src.state_names
        assert await net.add1("Beta") is am.Result.CANCELED
        job = Job("build", 3)
        assert await net.add1("Alpha", pass_args(job)) is am.Result.EXECUTED
        assert rec.jobs == [job]
        # read your own writes: the clock arrived before the result
        assert net.is1("Alpha") and net.tick("Alpha") == 1
        assert await net.add(["Beta", "Tick"]) is am.Result.EXECUTED
        assert net.time() == src.time() and net.clock() == src.clock()
        assert str(net) == str(src) and net.string_all() == src.string_all()
        assert await net.can_add(["Gamma"]) is am.Result.EXECUTED
        assert await net.can_remove(["Alpha"]) is am.Result.EXECUTED
        assert net.is1("Alpha")
        assert await net.toggle1("Tick") is am.Result.EXECUTED
        assert not net.is1("Tick")
        assert await net.toggle(["Tick"]) is am.Result.EXECUTED
        assert await net.set(["Gamma"]) is am.Result.EXECUTED
        assert net.active_states == ["Gamma"] == src.active_states
        assert await net.remove1("Gamma") is am.Result.EXECUTED
        assert await net.remove(["Alpha"]) is am.Result.EXECUTED
        assert net.not_(["Alpha", "Gamma"]) and net.not1("Gamma")
        assert 0 < net.queue_tick <= src.queue_tick_processed
        assert net.is_time(src.time()) and net.is_clock(src.clock())
        assert net.has1("Alpha") and net.has(["Beta"]) and not net.has1("Nope")
        assert not net.any1("Alpha") and not net.any(["Alpha"])
        assert net.switch(["Alpha", "Gamma"]) == ""
        assert "Alpha" not in net
        assert net.inspect(["Alpha"]).startswith("0 Alpha")
        assert net.schema.keys() == src.schema.keys()
        assert repr(net).startswith("<NetMachine nm-c1")


async def test_bad_calls_raise_locally_and_nothing_is_sent() -> None:
    async with serve() as server, connect(server) as client:
        net = client.net_mach
        with pytest.raises(am.StateNameError, match="Nope"):
            await net.add1("Nope")
        with pytest.raises(TypeError):
            await net.add1(["Alpha"])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="args must be a dict"):
            await net.add1("Alpha", [1])  # type: ignore[arg-type]
        with pytest.raises(am.helpers.ArgsError):
            await net.add1("Alpha", {"x": object()})
        with pytest.raises(ValueError, match="max_frame"):
            await net.add1("Alpha", {"blob": b"x" * (2 << 20)})
        assert server.source.time() == net.time() == (0,) * 6


async def test_when_methods_and_state_contexts_run_on_pushed_clock() -> None:
    async with serve() as server, connect(server) as client:
        src, net = server.source, client.net_mach
        ctx = net.new_state_ctx("Alpha")
        alpha = net.when1("Alpha")
        not_alpha = net.when_not1("Alpha")
        ticks = net.when_ticks("Tick", 4)
        query = net.when_query(lambda c: c["Tick"] >= 3)
        both = net.when(["Alpha", "Beta"])
        assert not_alpha.is_set() and not alpha.is_set()
        src.add1("Alpha")
        await alpha
        assert ctx.expired
        ctx2 = net.new_state_ctx("Alpha")
        cancelled = anyio.Event()

        async def bound() -> None:
            with ctx2:
                await anyio.sleep_forever()
            cancelled.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(bound)
            await anyio.wait_all_tasks_blocked()
            src.add(["Tick"])
            src.add(["Tick"])
            await query
            src.add1("Beta")
            await both
            src.remove1("Alpha")
            await cancelled.wait()
        src.remove1("Tick")
        await net.when_not1("Alpha")
        await net.when_not(["Beta"])
        await ticks
        await net.when_time1("Tick", 4)
        await net.when_time(["Alpha", "Tick"], [2, 4])
        src.add_err(ValueError("boom"))
        await net.when_err()
        assert net.tick("Exception") == 1


async def test_pushes_reach_every_client() -> None:
    async with serve() as server, contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(connect(server, id=f"c{i}"))
            for i in range(4)
        ]
        await server.mach.when1(SS.HasClients)
        assert sorted(server.clients) == ["c0", "c1", "c2", "c3"]
        src = server.source
        for _ in range(10):
            src.add1("Tick")
        src.add(["Alpha", "Beta"])
        for c in clients:
            await c.net_mach.when_time1("Tick", 19)
            await c.net_mach.when1("Beta")
            assert c.net_mach.time() == src.time()
        # a mutation by one client reaches the others
        assert await clients[0].net_mach.add1("Gamma") is am.Result.EXECUTED
        for c in clients[1:]:
            await c.net_mach.when1("Gamma")
            assert c.net_mach.not1("Alpha")


async def test_server_and_client_states() -> None:
    async with serve() as server:
        assert server.mach.is_([SS.Start, SS.RpcReady, SS.Ready])
        assert server.mach.not1(SS.HasClients)
        async with connect(server, id="one") as client:
            assert client.mach.is_([CS.Start, CS.Connected, CS.HandshakeDone, CS.Ready])
            await server.mach.when1(SS.HasClients)
        # the client left
        await server.mach.when_not1(SS.HasClients)
        assert server.mach.tick(SS.ClientDisconnected) == 1
        assert client.mach.disposed and client.net_mach.disposed
    assert server.mach.disposed


async def test_listen_error_is_an_error_state() -> None:
    async with serve() as server:
        src = server.source
        other = rpc.Server(src, port=server.port)
        with pytest.raises(OSError):
            await other.__aenter__()
        assert other.mach.disposed


def test_bad_server_and_client_options() -> None:
    with pytest.raises(TypeError, match=r"am\.Machine"):
        rpc.Server(object())  # type: ignore[arg-type]
    src = am.Machine(SCHEMA)
    with pytest.raises(ValueError, match="max_frame"):
        rpc.Server(src, max_frame=10)
    with pytest.raises(am.StateNameError, match="ServerPayload"):
        rpc.Client("127.0.0.1", 1, SCHEMA, consumer=am.Machine({"X": am.State()}))


# ---------------------------------------------------------------- handshake


async def test_schema_mismatch_is_refused() -> None:
    other = {"Beta": am.State(), "Alpha": am.State()}
    async with serve() as server, connect(server, other, max_retries=5) as client:
        await client.mach.when1(CS.ConnRetryFailed)
        assert isinstance(client.mach.err, rpc.SchemaMismatchError)
        assert "schema mismatch" in str(client.mach.err)
        assert client.mach.is1(CS.ErrRpc) and client.mach.not1(CS.Ready)
        assert not client.net_mach.connected
        with pytest.raises(rpc.NotConnectedError):
            await client.net_mach.add1("Alpha")
        await server.mach.when1(SS.ClientRejected)
        assert server.mach.not1(am.EXCEPTION)


async def test_shared_secret() -> None:
    async with serve(secret="s3cret") as server:
        async with connect(server, secret=b"s3cret") as client:
            assert await client.net_mach.add1("Alpha") is am.Result.EXECUTED
        for secret in ("wrong", None):
            async with connect(server, secret=secret, max_retries=3) as bad:
                await bad.mach.when1(CS.ConnRetryFailed)
                assert isinstance(bad.mach.err, rpc.AuthError)
        assert server.source.tick("Alpha") == 1


async def test_tls() -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with serve(ssl_context=server_ctx, handshake_timeout=0.5) as server:
        async with connect(server, ssl_context=client_ctx) as client:
            assert await client.net_mach.add1("Alpha") is am.Result.EXECUTED
            server.source.add1("Tick")
            await client.net_mach.when1("Tick")
        # a plain client of a TLS server is told so, as a TLS error, at once
        async with connect(server, max_retries=5, connect_timeout=5) as plain:
            await plain.mach.when1(CS.ConnRetryFailed)
            assert isinstance(plain.mach.err, rpc.TLSError)
            assert "requires TLS" in str(plain.mach.err)
            assert (
                plain.mach.is1(CS.ErrRpc) and plain.mach.tick(CS.Connecting) == 2
            )  # one attempt
        await server.mach.when1(SS.ClientRejected)
        # a certificate that does not verify: a TLS error, retried tls_retries
        # times, then the client stops
        untrusted = ssl.create_default_context()
        trustme.CA().configure_trust(untrusted)
        async with connect(
            server, ssl_context=untrusted, tls_retries=1, max_retries=5
        ) as bad:
            await bad.mach.when1(CS.ConnRetryFailed)
            assert isinstance(bad.mach.err, rpc.TLSError) and bad.mach.err.verify
            assert "did not verify" in str(bad.mach.err)
            assert bad.mach.tick(CS.Connecting) == 4  # two attempts
            assert bad.mach.tick(CS.ErrNetwork) == 1 and bad.mach.is1(CS.ErrRpc)
        # a broken TLS handshake is a TLS error on the server too
        log = Rejections()
        server.mach.bind_handlers(log)
        rejected = server.mach.when_ticks(SS.ClientRejected, 1)
        async with await raw_peer(server.port) as peer:
            await peer.send(b"\x16\x03\x01\x00\x05junk!" * 4)
            assert await read_all(peer) == b""
        await rejected
        assert isinstance(log.errors[0], rpc.TLSError)
    # a TLS client of a plain server: a TLS error too
    async with (
        serve() as plain_server,
        connect(
            plain_server, ssl_context=client_ctx, tls_retries=0, max_retries=5
        ) as c,
    ):
        await c.mach.when1(CS.ConnRetryFailed)
        assert isinstance(c.mach.err, rpc.TLSError) and not c.mach.err.verify


# --------------------------------------------------------------- reconnect


async def run_server(
    src: am.Machine,
    port: int,
    stop: anyio.Event,
    *,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    async with rpc.Server(src, port=port) as server:
        task_status.started(server.port)
        await stop.wait()


async def test_reconnect_after_server_restart() -> None:
    async with am.Machine(SCHEMA, id="src") as src, anyio.create_task_group() as tg:
        stop = anyio.Event()
        port = await tg.start(run_server, src, 0, stop)
        async with rpc.Client(
            "127.0.0.1", port, SCHEMA, id="re", backoff=0.01, max_backoff=0.05
        ) as client:
            net = client.net_mach
            await net.when_connected()
            await net.add1("Alpha")
            lost = net.when_disconnected()
            stop.set()
            await lost
            assert not net.connected and net.is1("Alpha")
            with pytest.raises(rpc.NotConnectedError):
                await net.add1("Beta")
            src.add(["Beta", "Tick"])
            await client.mach.when1(CS.RetryingConn)
            stop = anyio.Event()
            await tg.start(run_server, src, port, stop)
            await net.when_connected()
            assert net.connected and net.time() == src.time()
            assert await net.add1("Gamma") is am.Result.EXECUTED
            assert net.active_states == ["Gamma", "Tick"]
            stop.set()


async def test_no_reconnect_gives_up() -> None:
    async with serve() as server:
        port = server.port
    async with rpc.Client(
        "127.0.0.1", port, SCHEMA, reconnect=False, connect_timeout=2
    ) as client:
        await client.mach.when1(CS.ConnRetryFailed)
        assert client.mach.is1(CS.ErrNetwork) and client.mach.not1(CS.Start)


# ----------------------------------------------------------------- payloads


async def test_payloads_go_to_the_consumer() -> None:
    async with (
        serve() as server,
        am.Machine(rpc.CONSUMER_SCHEMA) as consumer,
        connect(server, id="a", consumer=consumer) as a,
        connect(server, id="b") as b,
    ):
        got = consumer.when_ticks(rpc.ConsumerStates.ServerPayload, 1)
        got_b = b.mach.when_ticks(CS.ServerPayload, 1)
        src = server.source
        src.add1(rpc.SourceStates.SendPayload, {"payload": rpc.Payload("hi", [1, 2])})
        await got
        await got_b
        payload = b.mach.transition  # noqa: F841  (nothing running)
        seen: list[rpc.Payload] = []

        class H:
            def ServerPayloadState(self, e: am.Event) -> None:
                seen.append(e.args["payload"])

        consumer.bind_handlers(H())
        only_b = b.mach.when_ticks(CS.ServerPayload, 2)
        src.add1(
            rpc.SourceStates.SendPayload,
            {"payload": rpc.Payload("direct", {"k": b"v"}, destination=b.session_id)},
        )
        await only_b
        # "a" gets the next broadcast, not the direct one
        src.add1(rpc.SourceStates.SendPayload, {"payload": rpc.Payload("all")})
        await a.mach.when_ticks(CS.ServerPayload, 2)
        assert [p.name for p in seen] == ["all"]
        assert seen[0].source == "src" and seen[0].token
        assert seen[0].destination == a.session_id != b.session_id
        # a bad payload is the server's error, not the source's
        src.add1(rpc.SourceStates.SendPayload, {"payload": "nope"})
        src.add1(rpc.SourceStates.SendPayload, {"payload": rpc.Payload("x", object())})
        assert server.mach.tick(SS.ErrRpc) == 3
        assert src.not1(am.EXCEPTION)


# --------------------------------------------------- misbehaving peers


async def raw_peer(port: int) -> anyio.abc.SocketStream:
    return await anyio.connect_tcp("127.0.0.1", port)


async def read_all(stream: anyio.abc.SocketStream) -> bytes:
    out = b""
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
        while True:
            out += await stream.receive()
    return out


def frames(data: bytes) -> list[Any]:
    out = []
    while len(data) >= 4:
        (n,) = struct.unpack(">I", data[:4])
        out.append(msgpack.unpackb(data[4 : 4 + n]))
        data = data[4 + n :]
    return out


async def handshake(
    stream: anyio.abc.SocketStream, secret: bytes | None = None
) -> None:
    # imported here: the REPL test imports this module as tests.test_rpc
    from rpc_doc_client import DocClient

    welcome = await DocClient(stream).handshake(SCHEMA_NAMES, secret, "raw")
    assert welcome[0] == w.WELCOME


SCHEMA_NAMES = am.Machine(SCHEMA).state_names


def mutate(*items: Any) -> bytes:
    return w.encode((w.MUTATE, *items))


class Rejections:
    """Collects the `error` args of the server's ClientRejected."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    def ClientRejectedState(self, e: am.Event) -> None:
        self.errors.append(e.args["error"])


BAD_AFTER_HANDSHAKE = [
    (b"\x00\x00\x00\x03abc", "protocol", "undecodable"),
    (b"\xff\xff\xff\xff", "protocol", "over the limit"),
    (w.encode(("x",)), "protocol", "array starting with its kind"),
    (w.encode((99,)), "protocol", "unexpected message kind 99"),
    (mutate(1, 0, ["Nope"], {}), "protocol", "unknown state 'Nope'"),
    (mutate(1, 9, ["Alpha"], {}), "protocol", "unknown mutation op 9"),
    (mutate(1, 0, "Alpha", {}), "protocol", "wrong type"),
    (mutate(1, 0, ["Alpha"]), "protocol", "has 5 items"),
    (
        mutate(1, 0, ["Alpha"], {"j": {"__am_args__": "tests.rpc.Job", "fields": {}}}),
        "args",
        "Job",
    ),
    (
        mutate(1, 0, ["Alpha"], {"j": {"__am_args__": "nope", "fields": {}}}),
        "args",
        "unknown args class",
    ),
    (w.encode((w.PING, "x")), "protocol", "wrong type"),
    (w.encode((w.SYNC, 1)), "protocol", "has 1 items"),
]


@pytest.mark.parametrize(("frame", "code", "detail"), BAD_AFTER_HANDSHAKE)
async def test_bad_frames_close_only_that_peer(
    frame: bytes, code: str, detail: str
) -> None:
    async with serve() as server, connect(server, id="good") as good:
        src = server.source
        before = src.time()
        log = Rejections()
        server.mach.bind_handlers(log)
        rejected = server.mach.when_ticks(SS.ClientRejected, 1)
        async with await raw_peer(server.port) as peer:
            await handshake(peer)
            await peer.send(frame)
            reply = frames(await read_all(peer))
        # the peer gets a code and its fixed text; the details stay here
        assert reply[-1] == [w.ERROR, code, w.ERROR_MESSAGES[code]]
        await rejected
        assert detail in str(log.errors[0])
        assert src.time() == before
        assert await good.net_mach.add1("Alpha") is am.Result.EXECUTED
        assert good.net_mach.is1("Alpha")


NONCE = b"n" * 32
BAD_HELLOS = [
    (w.encode((w.C_HELLO, 99, NONCE, "x", "h", 1024)), "version", "version 99"),
    (w.encode((w.C_HELLO, w.PROTOCOL_VERSION, "x")), "protocol", "has 6 items"),
    (w.encode((w.PING, 1)), "protocol", "expected message kind 1"),
    (b"\x00\x00\x00\x01\xc1", "protocol", "undecodable"),
    (b"\x00\x00\x04\x01", "protocol", "over the limit of 1024"),
    (w.encode((w.C_HELLO, 3, b"short", "x", "h", 1024)), "protocol", "32 bytes"),
    (w.encode((w.C_HELLO, 3, NONCE, "x" * 129, "h", 1024)), "protocol", "label"),
    (w.encode((w.C_HELLO, 3, NONCE, "x", "h", 10)), "protocol", "max_frame"),
]


@pytest.mark.parametrize(("frame", "code", "detail"), BAD_HELLOS)
async def test_bad_hellos(frame: bytes, code: str, detail: str) -> None:
    async with serve() as server, await raw_peer(server.port) as peer:
        log = Rejections()
        server.mach.bind_handlers(log)
        rejected = server.mach.when_ticks(SS.ClientRejected, 1)
        await peer.send(frame)
        reply = frames(await read_all(peer))
        # nothing but the error: no server id, no schema
        assert reply == [[w.ERROR, code, w.ERROR_MESSAGES[code]]]
        await rejected
        assert detail in str(log.errors[0])


async def test_truncated_frame_and_stalled_peers() -> None:
    # the raw peer's handshake must fit in handshake_timeout even on a busy
    # machine; the stalls below wait out the timeouts
    async with serve(handshake_timeout=0.5, idle_timeout=0.3, frame_timeout=0.3) as s:
        # truncated: the peer closes mid-frame
        async with await raw_peer(s.port) as peer:
            await handshake(peer)
            await peer.send(b"\x00\x00\x00\x10abc")
            await peer.send_eof()
            assert frames(await read_all(peer)) == []
        # stalls in the handshake
        async with await raw_peer(s.port) as peer:
            reply = frames(await read_all(peer))
            assert reply[-1][:2] == [w.ERROR, "timeout"]
        # stalls mid-frame after the handshake
        async with await raw_peer(s.port) as peer:
            await handshake(peer)
            await peer.send(b"\x00\x00\x00\x10abc")
            reply = frames(await read_all(peer))
            assert reply[-1][:2] == [w.ERROR, "timeout"]
        # stays silent after the handshake (no heartbeat)
        async with await raw_peer(s.port) as peer:
            await handshake(peer)
            reply = frames(await read_all(peer))
            assert reply[-1][:2] == [w.ERROR, "timeout"]
        assert s.mach.tick(SS.ClientRejected) == 5  # three rejections
        assert s.source.time() == (0,) * 6


async def test_heartbeat_keeps_a_quiet_client_connected() -> None:
    # margins for a busy machine: the server drops the client after 0.5s
    # without a ping, the client the server after 0.3s (3 heartbeats)
    # without a pong
    async with (
        serve(idle_timeout=0.5) as server,
        connect(server, heartbeat=0.1) as client,
    ):
        # seven pongs (a multi state ticks by two when re-added) take longer
        # than an idle timeout of the server
        await client.mach.when_time1(CS.Heartbeat, 2 * 7 - 1)
        assert client.net_mach.connected and client.id in server.clients
        assert server.mach.not1(SS.ClientRejected)
        # one connection all along: neither side dropped the other
        assert client.mach.tick(CS.Connected) == 1
        assert server.mach.tick(SS.ClientConnected) == 1


# --------------------------------------------------------------------- repl


async def test_repl_commands() -> None:
    from asyncmachine.rpc._repl import HELP, run_commands

    out: list[str] = []
    async with serve() as server, connect(server) as client:
        pushed = anyio.Event()

        def write(text: str) -> None:
            out.append(text)
            if text.startswith("[push]"):
                pushed.set()

        async def lines() -> AsyncIterator[str]:
            for line in ["", "help", "ls", "add Alpha job=1", "add Nope", "time"]:
                yield line
            yield "watch"
            await anyio.wait_all_tasks_blocked()
            server.source.add1("Tick")
            await pushed.wait()
            for line in ["watch", "set Gamma", "remove Gamma", "toggle Tick"]:
                yield line
            yield "bogus"
            yield "'unclosed"
            yield "quit"
            yield "ls"  # never read

        await run_commands(client, lines(), write)
        assert out[0] == HELP
        assert out[1].startswith("() [SendPayload:0")
        assert out[2] == "executed (Alpha:1)"
        assert out[3].startswith("error: unknown state 'Nope'")
        assert out[4].startswith("SendPayload:0 Alpha:1 Beta:0")
        assert out[5] == "watching"
        assert out[6].startswith("[push] +Tick:1")
        assert out[7:11] == [
            "not watching",
            "executed (Gamma:1)",
            "executed ()",
            "executed (Tick:3)",
        ]
        assert out[11].startswith("unknown command 'bogus'")
        assert out[12].startswith("error: No closing quotation")
        assert len(out) == 13


async def test_repl_console_script() -> None:
    import sys

    async with serve() as server:
        proc = await anyio.run_process(
            [
                sys.executable,
                "-m",
                "asyncmachine.rpc._repl",
                f"127.0.0.1:{server.port}",
                "--schema",
                "tests.test_rpc:SCHEMA",
            ],
            input=b"add Alpha\nls\nquit\n",
            check=False,
        )
        text = proc.stdout.decode()
        assert proc.returncode == 0, proc.stderr.decode()
        assert "connected to src" in text and "executed (Alpha:1)" in text
        assert server.source.is1("Alpha")
        proc = await anyio.run_process(
            [
                sys.executable,
                "-m",
                "asyncmachine.rpc._repl",
                f"127.0.0.1:{server.port}",
                "--states",
                "X,Y",
                "--retries",
                "0",
            ],
            check=False,
        )
        assert proc.returncode == 1
        assert "schema mismatch" in proc.stdout.decode()


def test_repl_needs_a_schema() -> None:
    from asyncmachine.rpc._repl import _schema, main

    with pytest.raises(SystemExit):
        main(["127.0.0.1:1"])
    assert list(_schema(None, "A,B")) == ["A", "B"]
    schema = _schema("asyncmachine.rpc:CLIENT_SCHEMA", None)
    assert list(schema) == list(rpc.CLIENT_SCHEMA)


# ------------------------------------------------- the core's remote clock


def test_apply_remote_ticks() -> None:
    logs: list[str] = []
    m = am.Machine(
        {"A": am.State(), "B": am.State()},
        log_level=am.LogLevel.CHANGES,
        logger=lambda level, text: logs.append(text),
    )
    ctx = m.new_state_ctx("A")
    when_b = m.when1("B")
    assert m._apply_remote_ticks([(0, 1), (1, 0)]) == (("A", 1),)
    assert m.active_states == ["A"] and m.is1("A") and ctx.expired
    assert not when_b.is_set()
    assert m._apply_remote_ticks([(0, 1)]) == ()
    assert m._apply_remote_ticks([(0, 2), (1, 3)]) == (("A", 2), ("B", 3))
    assert m.active_states == ["B"] and when_b.is_set() and str(m) == "(B:3)"
    assert logs[-1].endswith("[remote] -A +B")

    class H:
        def AState(self, e: am.Event) -> None:
            m._apply_remote_ticks([(1, 5)])

    m.bind_handlers(H())
    m.add1("A")
    assert isinstance(m.err, RuntimeError) and m.tick("B") == 3
    m.dispose()
    assert m._apply_remote_ticks([(0, 9)]) == ()


async def test_client_enter_failing_midway_leaves_nothing_entered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A step of `Client.__aenter__` that fails after the client's machine
    was entered exits the machine again."""
    client = rpc.Client("127.0.0.1", 1, SCHEMA)
    real = anyio.create_task_group
    calls = [0]

    def failing_second() -> anyio.abc.TaskGroup:
        calls[0] += 1
        if calls[0] == 2:  # the machine's own is the first
            raise RuntimeError("no task group today")
        return real()

    monkeypatch.setattr(anyio, "create_task_group", failing_second)
    with pytest.raises(RuntimeError, match="no task group today"):
        await client.__aenter__()
    monkeypatch.undo()
    assert not client.mach.running
    assert client.mach.disposed
