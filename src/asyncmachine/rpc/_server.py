"""The aRPC server: exposes a local source machine on a TCP address."""

from __future__ import annotations

import os
import ssl
from types import TracebackType
from typing import Any, Final, final

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

import asyncmachine as am
from asyncmachine.helpers import ArgsError, args_from_wire

from . import _wire as w
from ._states import SERVER_SCHEMA, ServerStates, SourceStates
from ._wire import AuthError, Payload, ProtocolError, RpcError, SchemaMismatchError

__all__ = ["Server"]

_SS = ServerStates
_OPS: Final = {
    w.OP_ADD: am.CoreMachine.add,
    w.OP_REMOVE: am.CoreMachine.remove,
    w.OP_SET: am.CoreMachine.set,
    w.OP_CAN_ADD: am.CoreMachine.can_add,
    w.OP_CAN_REMOVE: am.CoreMachine.can_remove,
}
_CLOSED: Final = (
    anyio.EndOfStream,
    anyio.IncompleteRead,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    ssl.SSLError,
    OSError,
)


class _SlowPeerError(RpcError):
    code = "slow"


class _Peer:
    """One connected client: its outbox, writer state and bookkeeping.

    Frames wait in `outbox` for the connection's writer task. A reply to a
    mutation skips the outbox when nothing waits and nothing is being
    written: the reader task sends it itself (one task switch less).
    """

    __slots__ = (
        "client_id",
        "closing",
        "limit",
        "missed",
        "outbox",
        "registered",
        "rx",
        "rx_mark",
        "rx_since",
        "scope",
        "sending",
        "serve_scope",
        "silent",
        "tx",
        "tx_mark",
        "tx_since",
        "wake",
    )

    def __init__(self, limit: int, scope: anyio.CancelScope) -> None:
        self.outbox: list[bytes] = []
        self.limit = limit
        self.scope = scope
        """The connection's task group: cancelled to drop it quietly."""
        self.serve_scope = anyio.CancelScope()
        """The reader loop's scope: cancelled to drop a silent client."""
        self.silent: TimeoutError | None = None
        self.client_id = ""
        self.registered = False
        self.missed = False
        self.closing = False
        self.sending = False
        """A task is writing to the stream (the writer or the reader)."""
        self.wake: am.WhenEvent | None = None
        """The parked writer task, if it waits for frames."""
        # counters the sweeper watches: frames read, writes started
        self.rx = self.rx_mark = 0
        self.rx_since = 0.0
        self.tx = 0
        self.tx_mark = -1
        self.tx_since = 0.0

    def push(self, frame: bytes) -> None:
        """A clock push or payload: dropped (and resynced) when full."""
        if len(self.outbox) >= self.limit:
            self.missed = True
            return
        self.outbox.append(frame)
        self.kick()

    def reply(self, frame: bytes) -> None:
        """A reply the client waits for: a full outbox drops the client."""
        if len(self.outbox) >= self.limit:
            raise _SlowPeerError("the client reads too slowly")
        self.outbox.append(frame)
        self.kick()

    def close(self) -> None:
        """Let the writer send what waits, then end."""
        self.closing = True
        self.kick()

    def kick(self) -> None:
        """Wake the writer if it is parked and may write."""
        wake = self.wake
        if wake is not None and not self.sending:
            self.wake = None
            wake.set()


class _SourceTracer(am.Tracer):
    """Pushes changes made by others (the source itself, other clients).

    It overrides a queue hook only, so the source builds no Transition
    objects for it. While the server runs a client's mutation it is paused:
    that change goes back in the RESULT frame and to the others from there.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.paused = False

    def queue_end(self, machine: am.Machine) -> None:
        if not self.paused:
            self.server._push()


class _SourceHandlers:
    """Handlers the server binds to a source that can send payloads."""

    __slots__ = ("server",)

    def __init__(self, server: Server) -> None:
        self.server = server

    def SendPayloadState(self, e: am.Event) -> None:
        self.server._send_payload(e.args)


@final
class Server:
    """Serves a source machine to aRPC clients over TCP.

    `async with rpc.Server(source) as server:` listens (on 127.0.0.1 and a
    free port unless told otherwise) until the block ends; `server.port`
    is the bound port. Run it in the source machine's event loop. The
    server's own states are in `server.mach` (see `ServerStates`).
    """

    def __init__(
        self,
        source: am.Machine,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        id: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        secret: bytes | str | None = None,
        max_frame: int = w.DEFAULT_MAX_FRAME,
        handshake_timeout: float = 10.0,
        idle_timeout: float | None = 30.0,
        frame_timeout: float = 10.0,
        send_timeout: float = 10.0,
        outbox_size: int = 256,
        log_level: am.LogLevel | int = am.LogLevel.NOTHING,
    ) -> None:
        if not isinstance(source, am.Machine):
            raise TypeError(f"source must be an am.Machine, got {type(source)}")
        if max_frame < 64:
            raise ValueError(f"max_frame must be at least 64 bytes, got {max_frame}")
        if not send_timeout > 0:
            raise ValueError(f"send_timeout must be positive, got {send_timeout}")
        if idle_timeout is not None and not idle_timeout > 0:
            raise ValueError(
                f"idle_timeout must be positive or None, got {idle_timeout}"
            )
        self.source = source
        """The machine the clients use."""
        self.host = host
        """The address to listen on (loopback by default)."""
        self.port: int = port
        """The port; the bound one once `RpcReady` is active."""
        self.ssl_context = ssl_context
        """Wrap connections in TLS with this (server-side) context."""
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self.max_frame = max_frame
        """The largest frame accepted, in bytes."""
        self.handshake_timeout = handshake_timeout
        """Seconds a client has for TLS and hellos."""
        self.idle_timeout = idle_timeout
        """Seconds of silence after which a client is dropped (clients ping
        more often than that); None waits forever. Checked every eighth of
        the shorter of `idle_timeout` and `send_timeout`."""
        self.frame_timeout = frame_timeout
        """Seconds a started frame may take to arrive completely."""
        self.send_timeout = send_timeout
        """Seconds a write to a client may stall before the client is
        dropped (checked like `idle_timeout`)."""
        self.outbox_size = outbox_size
        """Frames waiting per client; clock pushes over it are coalesced."""
        self.mach: am.Machine = am.Machine(
            SERVER_SCHEMA, id=id or f"rs-{source.id}", log_level=log_level
        )
        """The server's own machine (`ServerStates`)."""
        self._names = source.state_names
        self._hash = w.schema_hash(self._names)
        self._peers: list[_Peer] = []
        self._conns: set[_Peer] = set()
        self._last: am.Time = ()
        self._tracer = _SourceTracer(self)
        self._binding: str | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._listener: anyio.abc.Listener[anyio.abc.SocketStream] | None = None

    @property
    def clients(self) -> list[str]:
        """Ids of the connected clients."""
        return [p.client_id for p in self._peers]

    # ------------------------------------------------------------ running

    async def __aenter__(self) -> Server:
        mach = self.mach
        await mach.__aenter__()
        try:
            mach.add1(_SS.Start)
            mach.add1(_SS.RpcStarting)
            try:
                listener = await anyio.create_tcp_listener(
                    local_host=self.host, local_port=self.port
                )
            except OSError as exc:
                mach.add_err_state(_SS.ErrNetwork, exc)
                raise
            self._listener = listener
            self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
            source = self.source
            self._last = source.time()
            source.bind_tracer(self._tracer)
            if source.has1(SourceStates.SendPayload):
                self._binding = source.bind_handlers(
                    _SourceHandlers(self),
                    id=f"rpc-{self.mach.id}-{os.urandom(3).hex()}",
                )
            tg = anyio.create_task_group()
            await tg.__aenter__()
            self._tg = tg
            tg.start_soon(listener.serve, self._handle)
            tg.start_soon(self._sweeper)
        except BaseException as exc:
            await mach.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        mach.add1(_SS.RpcReady)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tg = self._tg
        assert tg is not None
        self._tg = None
        source = self.source
        if self._tracer in source.tracers:
            source.detach_tracer(self._tracer)
        if self._binding is not None and self._binding in source.binding_ids:
            source.detach_handlers(self._binding)
        self._binding = None
        tg.cancel_scope.cancel()
        try:
            await tg.__aexit__(None, None, None)
        finally:
            if self._listener is not None:
                with anyio.CancelScope(shield=True):
                    await self._listener.aclose()
            self.mach.remove1(_SS.Start)
            await self.mach.__aexit__(exc_type, exc, tb)

    # ------------------------------------------------------- pushes

    def _diff(self, time: am.Time) -> list[int]:
        """Flat `[index, tick, ...]` of what changed since the last push."""
        last = self._last
        self._last = time
        flat: list[int] = []
        for i, (t, old) in enumerate(zip(time, last, strict=True)):
            if t != old:
                flat += (i, t)
        return flat

    def _push(self) -> None:
        time = self.source.time()
        if time == self._last or not time:
            return
        flat = self._diff(time)
        if not self._peers:
            return
        frame = w.encode(
            (w.UPDATE, flat, w.checksum(time), self.source.queue_tick_processed)
        )
        for peer in self._peers:
            peer.push(frame)

    def _result(self, caller: _Peer, call_id: int, result: am.Result) -> bytes:
        """The RESULT frame of a mutation `caller` made, with the clock changes
        since the last push; the other clients get those as an UPDATE."""
        source = self.source
        time = source.time()
        sum_ = w.checksum(time)
        queue_tick = source.queue_tick_processed
        flat: list[int] = []
        if time != self._last and time:
            flat = self._diff(time)
            if len(self._peers) > 1:
                frame = w.encode((w.UPDATE, flat, sum_, queue_tick))
                for peer in self._peers:
                    if peer is not caller:
                        peer.push(frame)
        return w.encode((w.RESULT, call_id, int(result), flat, sum_, queue_tick))

    def _full(self, kind: int) -> bytes:
        time = self.source.time()
        return w.encode(
            (kind, list(time), w.checksum(time), self.source.queue_tick_processed)
        )

    def _send_payload(self, args: dict[str, Any]) -> None:
        payload = args.get("payload")
        if not isinstance(payload, Payload):
            exc = TypeError(
                f"SendPayload needs args['payload'] to be an rpc.Payload, "
                f"got {type(payload).__name__}"
            )
            self.mach.add_err_state(_SS.ErrRpc, exc)
            return
        try:
            frame = w.encode(
                (
                    w.PAYLOAD,
                    payload.name,
                    payload.source or self.source.id,
                    payload.data,
                    payload.token or os.urandom(8).hex(),
                )
            )
        except (TypeError, ValueError, OverflowError) as exc:
            self.mach.add_err_state(_SS.ErrRpc, exc)
            return
        dest = payload.destination
        for peer in self._peers:
            if not dest or peer.client_id == dest:
                peer.push(frame)

    # ----------------------------------------------------- connections

    async def _handle(self, stream: anyio.abc.ByteStream) -> None:
        error: BaseException | None = None
        peer: _Peer | None = None
        try:
            async with anyio.create_task_group() as tg:
                peer = _Peer(self.outbox_size, tg.cancel_scope)
                self._conns.add(peer)
                try:
                    with anyio.fail_after(self.handshake_timeout):
                        stream = await self._wrap(stream)
                        reader = w.FrameReader(stream, self.max_frame)
                        tg.start_soon(self._writer, stream, peer)
                        await self._handshake(reader, peer)
                    self._register(peer)
                    await self._serve(reader, stream, peer)
                except Exception as exc:
                    if isinstance(exc, _CLOSED) and not isinstance(exc, TimeoutError):
                        return
                    error = exc
                    code = getattr(exc, "code", "internal")
                    if isinstance(exc, TimeoutError):
                        code = "timeout"
                    elif isinstance(exc, ArgsError):
                        code = "args"
                    peer.outbox.append(w.encode((w.ERROR, code, str(exc))))
                finally:
                    peer.close()
        finally:
            if peer is not None:
                self._conns.discard(peer)
            self._unregister(peer, error)
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                await stream.aclose()

    async def _wrap(self, stream: anyio.abc.ByteStream) -> anyio.abc.ByteStream:
        if self.ssl_context is None:
            return stream
        return await TLSStream.wrap(
            stream,
            server_side=True,
            ssl_context=self.ssl_context,
            standard_compatible=False,
        )

    async def _write(
        self, stream: anyio.abc.ByteStream, peer: _Peer, data: bytes
    ) -> None:
        """Write to a client; the sweeper drops it if this takes too long."""
        peer.sending = True
        peer.tx += 1
        try:
            await stream.send(data)
        finally:
            peer.sending = False
        if peer.outbox or peer.closing:
            peer.kick()

    async def _writer(self, stream: anyio.abc.ByteStream, peer: _Peer) -> None:
        try:
            while True:
                outbox = peer.outbox
                if not outbox or peer.sending:
                    if peer.closing and not outbox:
                        return
                    wake = peer.wake = am.WhenEvent()
                    await wake
                    continue
                peer.outbox = []
                data = outbox[0] if len(outbox) == 1 else b"".join(outbox)
                await self._write(stream, peer, data)
                if peer.missed and not peer.outbox:
                    peer.missed = False
                    self.mach.add1(_SS.MetricSync)
                    await self._write(stream, peer, self._full(w.FULL))
        except _CLOSED:
            peer.scope.cancel()

    async def _sweeper(self) -> None:
        """Drop clients silent for `idle_timeout` (with an error) and those
        whose writes stall for `send_timeout` (quietly, as a closed one).

        Checking every eighth of the shorter timeout, instead of a timeout
        per read and write, keeps the round trip free of timers; a client
        goes at most that eighth later than its timeout.
        """
        while True:
            idle = self.idle_timeout
            send = self.send_timeout
            await anyio.sleep((send if idle is None else min(idle, send)) / 8)
            now = anyio.current_time()
            for peer in list(self._conns):
                if peer.rx != peer.rx_mark:
                    peer.rx_mark = peer.rx
                    peer.rx_since = now
                elif (
                    idle is not None
                    and peer.registered
                    and now - peer.rx_since >= idle
                    and peer.silent is None
                ):
                    peer.silent = TimeoutError(f"the client was silent for {idle}s")
                    peer.serve_scope.cancel()
                if not peer.sending:
                    peer.tx_mark = -1
                elif peer.tx != peer.tx_mark:
                    peer.tx_mark = peer.tx
                    peer.tx_since = now
                elif now - peer.tx_since >= send:
                    peer.scope.cancel()

    async def _handshake(self, reader: w.FrameReader, peer: _Peer) -> None:
        nonce = os.urandom(16)
        peer.reply(w.encode((w.S_HELLO, w.PROTOCOL_VERSION, nonce, self.mach.id)))
        msg = await reader.read(None, None)
        if msg[0] == w.C_HELLO and len(msg) > 1 and msg[1] != w.PROTOCOL_VERSION:
            raise w.VersionError(
                f"protocol version {msg[1]!r} is not supported, "
                f"the server speaks {w.PROTOCOL_VERSION}"
            )
        w.expect(msg, w.C_HELLO, (int, str, str, (bytes, type(None))))
        _, _, client_id, hash_, mac = msg
        peer.client_id = client_id[:128]
        if self._secret is not None and not w.auth_ok(self._secret, nonce, mac):
            raise AuthError(
                "the shared secret does not match"
                if mac is not None
                else "the server requires a shared secret"
            )
        if hash_ != self._hash:
            raise SchemaMismatchError(
                f"schema mismatch: the client's schema hash is {hash_}, the "
                f"source machine {self.source.id} has {self._hash} for the "
                f"states {' '.join(self._names)}"
            )

    def _register(self, peer: _Peer) -> None:
        # flush pending changes to the others, then start this one at "now"
        self._push()
        time = self.source.time()
        self._last = time
        peer.reply(
            w.encode(
                (
                    w.WELCOME,
                    self.source.id,
                    list(time),
                    w.checksum(time),
                    self.source.queue_tick_processed,
                )
            )
        )
        self._peers.append(peer)
        peer.registered = True
        peer.rx_since = anyio.current_time()
        self.mach.add1(_SS.ClientConnected, {"client_id": peer.client_id})
        self.mach.add1(_SS.HasClients)

    def _unregister(self, peer: _Peer | None, error: BaseException | None) -> None:
        if peer is None:
            return
        if peer in self._peers:
            self._peers.remove(peer)
            self.mach.add1(_SS.ClientDisconnected, {"client_id": peer.client_id})
            if not self._peers:
                self.mach.remove1(_SS.HasClients)
        if error is not None:
            self.mach.log("client %s dropped: %s", peer.client_id or "?", error)
            self.mach.add1(
                _SS.ClientRejected, {"client_id": peer.client_id, "error": error}
            )

    async def _serve(
        self, reader: w.FrameReader, stream: anyio.abc.ByteStream, peer: _Peer
    ) -> None:
        with peer.serve_scope:
            await self._serve_loop(reader, stream, peer)
        if peer.silent is not None:
            raise peer.silent

    async def _serve_loop(
        self, reader: w.FrameReader, stream: anyio.abc.ByteStream, peer: _Peer
    ) -> None:
        source = self.source
        schema = source.schema
        tracer = self._tracer
        frame_timeout = self.frame_timeout
        while True:
            msg = await reader.read(None, frame_timeout)
            peer.rx += 1
            kind = msg[0]
            if kind == w.MUTATE:
                w.expect(msg, w.MUTATE, (int, int, list, dict))
                _, call_id, op, called, raw_args = msg
                fn = _OPS.get(op)
                if fn is None:
                    raise ProtocolError(f"unknown mutation op {op}")
                for s in called:
                    if not isinstance(s, str) or s not in schema:
                        raise ProtocolError(f"unknown state {s!r}")
                try:
                    args = args_from_wire(raw_args) if raw_args else {}
                except ArgsError:
                    raise
                except Exception as exc:
                    raise ProtocolError(f"bad args: {exc}") from None
                # the RESULT frame carries this change: no push for it
                tracer.paused = True
                try:
                    result = fn(source, called, args)
                finally:
                    tracer.paused = False
                frame = self._result(peer, call_id, result)
            elif kind == w.PING:
                w.expect(msg, w.PING, (int,))
                frame = w.encode((w.PONG, msg[1]))
            elif kind == w.SYNC:
                w.expect(msg, w.SYNC, ())
                self.mach.add1(_SS.MetricSync)
                frame = self._full(w.FULL)
            else:
                raise ProtocolError(f"unexpected message kind {kind}")
            if peer.sending or peer.outbox:
                peer.reply(frame)
            else:
                # nothing waits: write the reply from here, no writer task hop
                await self._write(stream, peer, frame)
