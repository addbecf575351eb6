"""aRPC as an operator exposes it: mutual auth over the whole transcript,
sessions, permissions, connection and memory limits, accept errors, TLS
errors. Real sockets on 127.0.0.1; a client written from the docs alone
(tests/rpc_doc_client.py) plays third-party clients and attackers."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

import asyncmachine as am
from asyncmachine import rpc
from asyncmachine.rpc import ClientStates as CS
from asyncmachine.rpc import ServerStates as SS
from rpc_doc_client import (
    AUTH,
    ERROR,
    HELLO_C,
    HELLO_S,
    MUTATE,
    REFUSED,
    RESULT,
    WELCOME,
    DocClient,
    prove,
    schema_hash,
    transcript,
)

SCHEMA: am.Schema = am.schema_merge(
    rpc.SOURCE_SCHEMA,
    {"A": am.State(), "B": am.State(multi=True), "Admin": am.State()},
)
NAMES = am.Machine(SCHEMA).state_names
SECRET = b"correct horse"
CHILDREN = Path(__file__).with_name("rpc_children.py")


@contextlib.asynccontextmanager
async def serve(**kwargs: Any) -> AsyncIterator[rpc.Server]:
    async with (
        am.Machine(SCHEMA, id="src") as src,
        rpc.Server(src, **kwargs) as server,
    ):
        yield server


@contextlib.asynccontextmanager
async def connect(
    server: rpc.Server, *, wait: bool = True, **kwargs: Any
) -> AsyncIterator[rpc.Client]:
    kwargs.setdefault("backoff", 0.01)
    async with rpc.Client("127.0.0.1", server.port, SCHEMA, **kwargs) as client:
        if wait:
            await client.net_mach.when_connected()
        yield client


@contextlib.asynccontextmanager
async def doc_peer(port: int) -> AsyncIterator[DocClient]:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        yield DocClient(stream)


async def read_rest(doc: DocClient) -> list[list[Any]]:
    """Every message until the peer closes."""
    out = []
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
        while True:
            out.append(await doc.read())
    return out


# ------------------------------------------------------------ the doc client


async def test_a_client_written_from_the_docs_works() -> None:
    for secret in (SECRET, None):
        async with serve(secret=secret) as server, doc_peer(server.port) as doc:
            welcome = await doc.handshake(NAMES, secret, label="third-party")
            assert welcome[0] == WELCOME
            assert doc.session_id in server.sessions and doc.source_id == "src"
            session = server.sessions[doc.session_id]
            assert session.label == "third-party" and session.address == "127.0.0.1"
            assert doc.time == list(server.source.time())
            await doc.send(MUTATE, 1, 0, ["A"], {})
            result = await doc.read()
            assert result[:3] == [RESULT, 1, int(am.Result.EXECUTED)]
            assert server.source.is1("A")


def test_empty_secrets_are_refused() -> None:
    src = am.Machine(SCHEMA)
    for empty in ("", b""):
        with pytest.raises(ValueError, match="secret must not be empty"):
            rpc.Server(src, secret=empty)
        with pytest.raises(ValueError, match="secret must not be empty"):
            rpc.Client("127.0.0.1", 1, SCHEMA, secret=empty)


async def test_secrets_must_match_on_both_sides() -> None:
    async with serve(secret=SECRET) as server:
        for secret in (b"wrong", None):
            async with connect(server, wait=False, secret=secret) as bad:
                await bad.mach.when1(CS.ConnRetryFailed)
                assert isinstance(bad.mach.err, rpc.AuthError)
    # a client with a secret refuses a server without one
    async with serve() as server, connect(server, wait=False, secret=SECRET) as c:
        await c.mach.when1(CS.ConnRetryFailed)
        assert isinstance(c.mach.err, rpc.AuthError)
        assert "does not prove" in str(c.mach.err)
        assert server.clients == []


# ------------------------------------------------------------- fake servers


@contextlib.asynccontextmanager
async def fake_server(proof: Any) -> AsyncIterator[tuple[int, list[list[Any]]]]:
    """A server without the secret: it answers any hello with `proof` (a
    callable of the client's hello, or bytes, or None) and records every
    message it gets."""
    got: list[list[Any]] = []

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            doc = DocClient(stream)
            hello = await doc.read()
            got.append(hello)
            mac = proof(hello) if callable(proof) else proof
            await doc.send(HELLO_S, 3, os.urandom(32), mac)
            got.extend(await read_rest(doc))

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield listener.extra(anyio.abc.SocketAttribute.local_port), got
        tg.cancel_scope.cancel()


async def test_a_fake_server_gets_nothing_but_the_hello() -> None:
    async with am.Machine(SCHEMA, id="real") as src, rpc.Server(src, secret=SECRET):
        for proof in (None, os.urandom(32)):
            async with (
                fake_server(proof) as (port, got),
                rpc.Client(
                    "127.0.0.1", port, SCHEMA, secret=SECRET, id="victim"
                ) as client,
            ):
                await client.mach.when1(CS.ConnRetryFailed)
                assert isinstance(client.mach.err, rpc.AuthError)
                with pytest.raises(rpc.NotConnectedError):
                    await client.net_mach.add1("A", {"secret_arg": 1})
                await client.mach.when1(CS.Disconnected)
            # one hello, no proof, no mutation, no args
            assert [m[0] for m in got] == [HELLO_C]


async def test_a_replayed_server_proof_is_refused() -> None:
    # a fake server replays the real server's proof from another connection
    async with serve(secret=SECRET) as server, doc_peer(server.port) as spy:
        await spy.hello(NAMES, label="victim")
        recorded = (await spy.read())[3]
        async with (
            fake_server(recorded) as (port, got),
            rpc.Client("127.0.0.1", port, SCHEMA, secret=SECRET, id="victim") as c,
        ):
            await c.mach.when1(CS.ConnRetryFailed)
            assert isinstance(c.mach.err, rpc.AuthError)
            assert "proof of the shared secret is wrong" in str(c.mach.err)
        assert [m[0] for m in got] == [HELLO_C]


async def test_replayed_and_spliced_client_proofs_are_refused() -> None:
    async with serve(secret=SECRET) as server:
        rejected = server.mach.when_ticks(SS.ClientRejected, 3)
        # a legitimate handshake, recorded
        async with doc_peer(server.port) as doc:
            nonce, hash_, max_frame = await doc.hello(NAMES, label="alice")
            server_nonce = (await doc.read())[2]
            data = transcript(nonce, server_nonce, "alice", hash_, max_frame)
            recorded = prove(SECRET, b"client", data)
            await doc.send(AUTH, recorded)
            assert (await doc.read())[0] == WELCOME
        # replayed: the same hello and proof on a new connection (new nonce)
        async with doc_peer(server.port) as doc:
            await doc.hello(NAMES, label="alice", nonce=nonce)
            await doc.read()
            await doc.send(AUTH, recorded)
            assert await read_rest(doc) == [[ERROR, "auth", "authentication failed"]]
        # spliced: a proof made for another label (or schema, or max frame)
        for label, names, limit in (
            ("mallory", NAMES, 1 << 20),
            ("alice", [*NAMES, "Extra"], 1 << 20),
        ):
            async with doc_peer(server.port) as doc:
                nonce, _, _ = await doc.hello(NAMES, label="alice", max_frame=limit)
                server_nonce = (await doc.read())[2]
                data = transcript(nonce, server_nonce, label, schema_hash(names), limit)
                await doc.send(AUTH, prove(SECRET, b"client", data))
                assert (await read_rest(doc))[0][:2] == [ERROR, "auth"]
        # a server proof passed back as the client's (reflection)
        async with doc_peer(server.port) as doc:
            await doc.hello(NAMES, label="eve")
            reflected = (await doc.read())[3]
            await doc.send(AUTH, reflected)
            assert (await read_rest(doc))[0][:2] == [ERROR, "auth"]
        await rejected
        assert server.source.time() == (0,) * len(NAMES)


async def test_nothing_about_the_source_before_auth() -> None:
    # a wrong schema and no secret: only "auth", no schema, no source id
    async with serve(secret=SECRET) as server, doc_peer(server.port) as doc:
        await doc.hello(["X", "Y"], label="probe")
        hello = await doc.read()
        assert hello[0] == HELLO_S and len(hello) == 4  # version, nonce, proof
        await doc.send(AUTH, None)
        assert await read_rest(doc) == [[ERROR, "auth", "authentication failed"]]
    async with serve() as server, doc_peer(server.port) as doc:
        # no secret at all: a mismatch names no state and no hash
        reply = await doc.handshake(["X", "Y"], label="probe")
        assert reply == [ERROR, "schema", rpc._wire.ERROR_MESSAGES["schema"]]
        assert "src" not in str(reply) and "A" not in reply[2].split()


# ------------------------------------------------------------------ sessions


async def test_an_imposter_with_the_victims_name_gets_nothing_of_the_victims() -> None:
    async with (
        serve() as server,
        connect(server, id="victim") as victim,
        connect(server, id="victim") as imposter,
    ):
        assert victim.session_id != imposter.session_id
        assert set(server.sessions) == {victim.session_id, imposter.session_id}
        assert server.clients == ["victim", "victim"]
        src = server.source
        to_victim = victim.mach.when_ticks(CS.ServerPayload, 1)
        payload = rpc.Payload("private", b"s3cret", destination=victim.session_id)
        assert src.add1("SendPayload", {"payload": payload}) is am.Result.EXECUTED
        await to_victim
        # a broadcast after it reaches the imposter: it got nothing before
        seen: list[rpc.Payload] = []

        class Spy:
            def ServerPayloadState(self, e: am.Event) -> None:
                seen.append(e.args["payload"])

        imposter.mach.bind_handlers(Spy())
        got = imposter.mach.when_ticks(CS.ServerPayload, 1)
        src.add1("SendPayload", {"payload": rpc.Payload("all")})
        await got
        assert [p.name for p in seen] == ["all"]
        assert seen[0].destination == imposter.session_id


# --------------------------------------------------------------- permissions


class Refusals:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, tuple[str, ...]]] = []

    def MutationRefusedState(self, e: am.Event) -> None:
        self.seen.append((e.args["session_id"], e.args["code"], e.args["states"]))


async def test_denied_states_are_refused_with_a_code() -> None:
    async with serve() as server, connect(server) as client:
        src, net = server.source, client.net_mach
        log = Refusals()
        server.mach.bind_handlers(log)
        src.add_err(ValueError("boom"))
        await net.when_err()
        before = src.time()
        for call in (
            net.add1(am.EXCEPTION),
            net.remove1(am.EXCEPTION),
            net.add1("SendPayload", {"payload": "junk"}),
            net.set(["A"]),  # would remove the active Exception
            net.can_add([am.EXCEPTION]),
        ):
            with pytest.raises(rpc.DeniedError) as info:
                await call
            assert info.value.code == "denied"
        assert src.time() == before and server.mach.not1(SS.ErrRpc)
        assert [c for _, c, _ in log.seen] == ["denied"] * 5
        assert log.seen[0] == (client.session_id, "denied", (am.EXCEPTION,))
        # the connection stays
        assert await net.add1("A") is am.Result.EXECUTED and net.connected
        # a doc client sees the REFUSED frame
        async with doc_peer(server.port) as doc:
            await doc.handshake(NAMES)
            await doc.send(MUTATE, 7, 0, [am.EXCEPTION], {})
            assert await doc.read() == [REFUSED, 7, "denied"]


async def test_allow_lists_read_only_and_the_authorize_hook() -> None:
    asked: list[tuple[str, str, tuple[str, ...], dict[str, Any]]] = []

    def authorize(
        session: rpc.Session, op: str, states: tuple[str, ...], args: dict[str, Any]
    ) -> bool:
        asked.append((session.label, op, states, args))
        return args.get("ok") is True

    def per_client(session: rpc.Session) -> rpc.Permissions:
        if session.label == "reader":
            return rpc.Permissions(read_only=True)
        if session.label == "hooked":
            return rpc.Permissions(authorize=authorize)
        return rpc.Permissions(allow=["A", "B"])

    async with (
        serve(permissions=per_client) as server,
        connect(server, id="reader") as reader,
        connect(server, id="hooked") as hooked,
        connect(server, id="limited") as limited,
    ):
        src = server.source
        with pytest.raises(rpc.DeniedError, match="read_only"):
            await reader.net_mach.add1("A")
        with pytest.raises(rpc.DeniedError, match="read_only"):
            await reader.net_mach.can_add(["A"])
        with pytest.raises(rpc.DeniedError, match="denied"):
            await limited.net_mach.add1("Admin")
        assert await limited.net_mach.add1("B") is am.Result.EXECUTED
        with pytest.raises(rpc.DeniedError, match="denied"):
            await hooked.net_mach.add1("Admin", {"ok": False})
        assert await hooked.net_mach.add1("Admin", {"ok": True}) is am.Result.EXECUTED
        assert asked == [
            ("hooked", "add", ("Admin",), {"ok": False}),
            ("hooked", "add", ("Admin",), {"ok": True}),
        ]
        assert src.active_states == ["B", "Admin"]
        await reader.net_mach.when1("Admin")  # it still follows the clock


def test_bad_permissions() -> None:
    src = am.Machine(SCHEMA)
    with pytest.raises(am.StateNameError, match="Nope"):
        rpc.Server(src, permissions=rpc.Permissions(allow=["Nope"]))
    with pytest.raises(TypeError, match="not a string"):
        rpc.Permissions(deny="A")
    with pytest.raises(ValueError, match="rate"):
        rpc.Permissions(rate=0)
    with pytest.raises(TypeError, match="Permissions"):
        rpc.Server(src, permissions=42)  # type: ignore[arg-type]


async def test_a_mutation_rate_limit() -> None:
    perms = rpc.Permissions(rate=0.001, burst=3)
    async with serve(permissions=perms) as server, connect(server) as client:
        for _ in range(3):
            assert await client.net_mach.add1("B") is am.Result.EXECUTED
        with pytest.raises(rpc.DeniedError) as info:
            await client.net_mach.add1("B")
        assert info.value.code == "rate" and info.value.states == ("B",)
        assert server.source.tick("B") == 5 and client.net_mach.connected  # 3 adds


async def test_an_authorize_hook_that_raises_denies() -> None:
    def broken(*_: Any) -> bool:
        raise RuntimeError("hook bug")

    perms = rpc.Permissions(authorize=broken)
    async with serve(permissions=perms) as server, connect(server) as client:
        with pytest.raises(rpc.DeniedError, match="denied"):
            await client.net_mach.add1("A")
        assert isinstance(server.mach.err, RuntimeError)
        assert server.source.not1("A") and client.net_mach.connected


# -------------------------------------------------------------------- limits


async def test_an_oversize_payload_disconnects_nobody() -> None:
    async with (
        serve() as server,
        connect(server, id="small", max_frame=1024) as small,
        connect(server, id="big") as big,
    ):
        src = server.source
        large = rpc.Payload("large", b"x" * 4096)
        # too large for "small": refused to the sender, sent to nobody
        assert src.add1("SendPayload", {"payload": large}) is am.Result.CANCELED
        assert "over the max_frame 1024" in str(server.mach.err)
        direct = attrs_evolve(large, destination=big.session_id)
        got = big.mach.when_ticks(CS.ServerPayload, 1)
        assert src.add1("SendPayload", {"payload": direct}) is am.Result.EXECUTED
        await got
        assert small.mach.tick(CS.ServerPayload) == 0
        # both still connected and served
        assert await small.net_mach.add1("A") is am.Result.EXECUTED
        await big.net_mach.when1("A")
        assert server.mach.tick(SS.ClientRejected) == 0
        assert small.mach.tick(CS.Connected) == big.mach.tick(CS.Connected) == 1


def attrs_evolve(payload: rpc.Payload, **changes: Any) -> rpc.Payload:
    import attrs

    return attrs.evolve(payload, **changes)


async def test_an_oversize_mutation_drops_only_its_sender() -> None:
    async with serve(max_frame=4096) as server, connect(server, id="ok") as ok:
        async with connect(server, id="big", max_frame=1 << 20) as big:
            # the client checks against the server's limit before sending
            with pytest.raises(ValueError, match="max_frame 4096"):
                await big.net_mach.add1("A", {"blob": b"x" * 8192})
        async with doc_peer(server.port) as doc:
            await doc.handshake(NAMES)
            await doc.send(MUTATE, 1, 0, ["A"], {"blob": b"x" * 8192})
            assert (await read_rest(doc))[-1][:2] == [ERROR, "protocol"]
        assert await ok.net_mach.add1("A") is am.Result.EXECUTED
        assert ok.mach.tick(CS.Connected) == 1


async def test_connection_caps_total_and_per_address() -> None:
    async with serve(max_connections_per_address=2, max_connections=3) as server:
        rejected = server.mach.when_ticks(SS.ClientRejected, 1)
        async with doc_peer(server.port) as one, doc_peer(server.port) as two:
            await one.hello(NAMES)
            await two.hello(NAMES)
            assert (await one.read())[0] == (await two.read())[0] == HELLO_S
            # a third from the same address is closed at once
            async with doc_peer(server.port) as three:
                assert await read_rest(three) == []
            await rejected
            assert server.connections == 2
        # the slots free up when peers leave
        async with connect(server) as client:
            assert await client.net_mach.add1("A") is am.Result.EXECUTED
    with pytest.raises(ValueError, match="max_connections"):
        rpc.Server(am.Machine(SCHEMA), max_connections=0)


async def test_the_outbox_is_bounded_in_bytes() -> None:
    from asyncmachine.rpc._server import _Peer, _SlowPeerError

    peer = _Peer(limit=100, limit_bytes=1000, address="x")
    peer.push(b"x" * 5000)  # an empty outbox takes one frame of any size
    assert peer.size == 5000 and not peer.missed
    peer.push(b"y")
    assert peer.missed and len(peer.outbox) == 1
    with pytest.raises(_SlowPeerError):
        peer.reply(b"z")


async def run_child(*args: str) -> str:
    proc = await anyio.run_process([sys.executable, str(CHILDREN), *args], check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


async def test_a_thousand_pre_auth_peers_hold_little_memory(
    anyio_backend_name: str,
) -> None:
    with anyio.fail_after(120):
        out = await run_child("memory", anyio_backend_name)
    lines = dict(line.split() for line in out.splitlines())
    if "no-fds" in lines:  # pragma: no cover - depends on the machine
        pytest.skip(f"RLIMIT_NOFILE cannot reach 2,064 (only {lines['no-fds']})")
    assert int(lines["connections"]) == 1000
    # both ends of 1,000 connections, each holding a started hello
    assert int(lines["bytes"]) < 64 << 20, out


async def test_out_of_file_descriptors_the_server_keeps_serving(
    anyio_backend_name: str,
) -> None:
    async with await anyio.open_process(
        [sys.executable, str(CHILDREN), "emfile", anyio_backend_name]
    ) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        buf = b""

        async def line() -> str:
            nonlocal buf
            while b"\n" not in buf:
                buf += await proc.stdout.receive()  # type: ignore[union-attr]
            text, buf = buf.split(b"\n", 1)
            return text.decode()

        with anyio.fail_after(60):
            port = int((await line()).split()[1])
            flood = []
            for _ in range(80):  # more than the child's 48 descriptors
                flood.append(await anyio.connect_tcp("127.0.0.1", port))
            assert (await line()).startswith("serving")
            for stream in flood:
                await stream.aclose()
            await proc.stdin.send(b"closed\n")
            done = await line()
            assert done.startswith("recovered"), done
            assert int(done.split()[1]) >= 1
            assert await proc.wait() == 0


# ------------------------------------------------------------------- exposure


def test_a_non_loopback_bind_without_tls_or_secret_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = am.Machine(SCHEMA)
    with caplog.at_level(logging.WARNING, logger="asyncmachine.rpc"):
        rpc.Server(src, host="192.0.2.1")._warn_exposed()
        rpc.Server(src, host="192.0.2.1", secret="s")._warn_exposed()
        rpc.Server(src, host="127.0.0.1")._warn_exposed()
        rpc.Server(src, host="localhost")._warn_exposed()
        rpc.Server(src, host="::1")._warn_exposed()
    texts = [r.getMessage() for r in caplog.records]
    assert len(texts) == 2
    assert "without TLS and a shared secret" in texts[0]
    assert texts[1].endswith("without TLS: see the security checklist in the aRPC docs")


async def test_a_failing_start_leaves_nothing_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from asyncmachine.rpc import _server

    class Broken:
        def __init__(self, server: rpc.Server) -> None:
            pass

        def NopeState(self, e: am.Event) -> None:
            pass

    # the last step of the start fails: after the listener, the task group
    # and the tracer
    monkeypatch.setattr(_server, "_SourceHandlers", Broken)
    async with am.Machine(SCHEMA, id="src") as src:
        server = rpc.Server(src)
        with pytest.raises(am.StateNameError, match="Nope"):
            await server.__aenter__()
        # the machine left, the port is free, nothing is bound
        assert server.mach.disposed and src.tracers == ()
        assert src.binding_ids == []
        listener = await anyio.create_tcp_listener(
            local_host="127.0.0.1", local_port=server.port
        )
        await listener.aclose()
