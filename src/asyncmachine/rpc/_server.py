"""The aRPC server: exposes a local source machine on a TCP address."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import ssl
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Final, TypeAlias, final

import anyio
import anyio.abc
import attrs
from anyio.streams.tls import TLSStream

import asyncmachine as am
from asyncmachine.helpers import ArgsError, args_from_wire

from . import _wire as w
from ._states import SERVER_SCHEMA, ServerStates, SourceStates
from ._wire import AuthError, Payload, ProtocolError, RpcError, SchemaMismatchError

__all__ = ["DEFAULT_DENY", "Authorizer", "Permissions", "Server", "Session"]

logger = logging.getLogger("asyncmachine.rpc")

_SS = ServerStates
_OPS: Final = {
    w.OP_ADD: am.CoreMachine.add,
    w.OP_REMOVE: am.CoreMachine.remove,
    w.OP_SET: am.CoreMachine.set,
    w.OP_CAN_ADD: am.CoreMachine.can_add,
    w.OP_CAN_REMOVE: am.CoreMachine.can_remove,
}
_OP_NAMES: Final = {
    w.OP_ADD: "add",
    w.OP_REMOVE: "remove",
    w.OP_SET: "set",
    w.OP_CAN_ADD: "can_add",
    w.OP_CAN_REMOVE: "can_remove",
}
_CLOSED: Final = (
    anyio.EndOfStream,
    anyio.IncompleteRead,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    ssl.SSLError,
    OSError,
)
# accept errors that mean "out of a resource": wait before the next accept
_EXHAUSTED: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_TLS_RECORD_HANDSHAKE: Final = 0x16

DEFAULT_DENY: Final = frozenset({am.EXCEPTION, SourceStates.SendPayload})
"""States no client may mutate unless its `Permissions.deny` says
otherwise: the source's `Exception` and the RPC layer's own states."""


@attrs.frozen
class Session:
    """One authenticated client connection, as the server knows it."""

    id: str
    """The session id the server assigned (random, unique)."""
    label: str
    """The name the client gave itself (not checked, not unique)."""
    address: str
    """The peer's IP address."""


Authorizer: TypeAlias = Callable[[Session, str, tuple[str, ...], dict[str, Any]], bool]
"""`(session, op, states, args) -> allowed`, asked for every mutation that
passed the lists; `op` is add, remove, set, can_add or can_remove."""


def _names(value: Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError("give a list of state names, not a string")
    return frozenset(value)


def _deny(value: Iterable[str]) -> frozenset[str]:
    names = _names(value)
    assert names is not None
    return names


@attrs.frozen
class Permissions:
    """What a client may do with the source machine.

    A mutation is refused (with a code, the source untouched) when the
    client is `read_only`, when one of its states (for `set`, also the
    active states it would remove) is in `deny` or, if `allow` is given,
    not in `allow`, when it is over its `rate`, or when `authorize`
    returns False.
    """

    allow: frozenset[str] | None = attrs.field(default=None, converter=_names)
    """The only states the client may mutate (None: all not denied)."""
    deny: frozenset[str] = attrs.field(default=DEFAULT_DENY, converter=_deny)
    """States the client may not mutate."""
    read_only: bool = False
    """Refuse every mutation and dry run: the client only reads the clock."""
    authorize: Authorizer | None = None
    """A hook deciding each call that passed the lists."""
    rate: float | None = None
    """Mutations per second (None: no limit), with bursts of `burst`."""
    burst: int = 16
    """Mutations allowed at once before `rate` applies."""

    def __attrs_post_init__(self) -> None:
        if self.rate is not None and not self.rate > 0:
            raise ValueError(f"rate must be positive or None, got {self.rate}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, got {self.burst}")

    def check_names(self, machine: am.Machine) -> None:
        """Raise `am.StateNameError` for a listed state `machine` lacks."""
        for name in sorted((self.allow or frozenset()) | (self.deny - DEFAULT_DENY)):
            if not machine.has1(name):
                raise am.StateNameError(name, machine.id)


PermissionsFor: TypeAlias = Callable[[Session], Permissions]


class _SlowPeerError(RpcError):
    code = "slow"


class _BusyError(RpcError):
    code = "busy"


class _TLSRequiredError(RpcError):
    code = "tls"


class _Replay(anyio.abc.ByteStream):
    """A byte stream that first returns bytes already read from another."""

    def __init__(self, stream: anyio.abc.ByteStream, head: bytes) -> None:
        self._stream = stream
        self._head = head

    async def receive(self, max_bytes: int = 65536) -> bytes:
        head = self._head
        if head:
            self._head = head[max_bytes:]
            return head[:max_bytes]
        return await self._stream.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        await self._stream.send(item)

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._stream.extra_attributes


class _Peer:
    """One connected client: its outbox, writer state and bookkeeping.

    Frames wait in `outbox` for the connection's writer task. A reply to a
    mutation skips the outbox when nothing waits and nothing is being
    written: the reader task sends it itself (one task switch less).
    """

    __slots__ = (
        "address",
        "client_id",
        "closing",
        "last",
        "limit",
        "limit_bytes",
        "max_frame",
        "missed",
        "outbox",
        "perms",
        "registered",
        "rx",
        "rx_mark",
        "rx_since",
        "scope",
        "sending",
        "serve_scope",
        "session",
        "session_id",
        "silent",
        "size",
        "tokens",
        "tx",
        "tx_mark",
        "tx_since",
        "wake",
    )

    def __init__(self, limit: int, limit_bytes: int, address: str) -> None:
        self.outbox: list[bytes] = []
        self.size = 0
        """Bytes waiting in the outbox."""
        self.limit = limit
        self.limit_bytes = limit_bytes
        self.address = address
        self.scope = anyio.CancelScope()
        """The connection's task group: cancelled to drop it quietly."""
        self.serve_scope = anyio.CancelScope()
        """The reader loop's scope: cancelled to drop a silent client."""
        self.silent: TimeoutError | None = None
        self.client_id = ""
        self.session_id = ""
        self.session: Session | None = None
        self.perms = Permissions()
        self.max_frame = w.PRE_AUTH_MAX_FRAME
        """The largest frame the client accepts."""
        self.tokens = 0.0
        self.last = 0.0
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

    def _full(self, frame: bytes) -> bool:
        # an empty outbox takes any frame: one frame is bounded by max_frame
        return bool(self.outbox) and (
            len(self.outbox) >= self.limit or self.size + len(frame) > self.limit_bytes
        )

    def push(self, frame: bytes) -> None:
        """A clock push or payload: dropped (and resynced) when full."""
        if self._full(frame):
            self.missed = True
            return
        self.outbox.append(frame)
        self.size += len(frame)
        self.kick()

    def reply(self, frame: bytes) -> None:
        """A reply the client waits for: a full outbox drops the client."""
        if self._full(frame):
            raise _SlowPeerError("the client reads too slowly")
        self.outbox.append(frame)
        self.size += len(frame)
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
    """Handlers the server binds to a source that can send payloads: the
    negotiation refuses a payload that is malformed or too large for one of
    its receivers (the sender's mutation is canceled), the state handler
    sends it."""

    __slots__ = ("frame", "server")

    def __init__(self, server: Server) -> None:
        self.server = server
        self.frame: tuple[bytes, list[_Peer]] | None = None

    def SendPayloadEnter(self, e: am.Event) -> bool:
        self.frame = self.server._payload_frame(e.args)
        return self.frame is not None

    def SendPayloadState(self, e: am.Event) -> None:
        frame, self.frame = self.frame, None
        if frame is not None:
            data, peers = frame
            for peer in peers:
                peer.push(data)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@final
class Server:
    """Serves a source machine to aRPC clients over TCP.

    `async with rpc.Server(source) as server:` listens (on 127.0.0.1 and a
    free port unless told otherwise) until the block ends; `server.port`
    is the bound port. Run it in the source machine's event loop. The
    server's own states are in `server.mach` (see `ServerStates`). See
    docs/security.md before listening on another address.
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
        permissions: Permissions | PermissionsFor | None = None,
        max_frame: int = w.DEFAULT_MAX_FRAME,
        max_connections: int = 512,
        max_connections_per_address: int = 128,
        handshake_timeout: float = 5.0,
        idle_timeout: float | None = 30.0,
        frame_timeout: float = 10.0,
        send_timeout: float = 10.0,
        outbox_size: int = 256,
        outbox_bytes: int = 4 << 20,
        log_level: am.LogLevel | int = am.LogLevel.NOTHING,
    ) -> None:
        if not isinstance(source, am.Machine):
            raise TypeError(f"source must be an am.Machine, got {type(source)}")
        if max_frame < 64:
            raise ValueError(f"max_frame must be at least 64 bytes, got {max_frame}")
        if not send_timeout > 0:
            raise ValueError(f"send_timeout must be positive, got {send_timeout}")
        if not handshake_timeout > 0:
            raise ValueError(
                f"handshake_timeout must be positive, got {handshake_timeout}"
            )
        if idle_timeout is not None and not idle_timeout > 0:
            raise ValueError(
                f"idle_timeout must be positive or None, got {idle_timeout}"
            )
        for name, value in (
            ("max_connections", max_connections),
            ("max_connections_per_address", max_connections_per_address),
            ("outbox_size", outbox_size),
            ("outbox_bytes", outbox_bytes),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if permissions is None:
            permissions = Permissions()
        if isinstance(permissions, Permissions):
            permissions.check_names(source)
        elif not callable(permissions):
            raise TypeError(
                "permissions must be rpc.Permissions or a callable returning them"
            )
        self.source = source
        """The machine the clients use."""
        self.host = host
        """The address to listen on (loopback by default)."""
        self.port: int = port
        """The port; the bound one once `RpcReady` is active."""
        self.ssl_context = ssl_context
        """Wrap connections in TLS with this (server-side) context."""
        self._secret = w.check_secret(secret)
        self.permissions = permissions
        """The clients' permissions, or a callable giving each session its
        own (called once per session, after the handshake)."""
        self.max_frame = max_frame
        """The largest frame accepted after the handshake, in bytes (before
        it, `rpc.PRE_AUTH_MAX_FRAME`)."""
        self.max_connections = max_connections
        """Connections at once, handshakes included; more are closed at
        once."""
        self.max_connections_per_address = max_connections_per_address
        """Connections at once from one IP address."""
        self.handshake_timeout = handshake_timeout
        """Seconds a client has for TLS and the handshake."""
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
        self.outbox_bytes = outbox_bytes
        """Bytes waiting per client (one frame always fits an empty
        outbox); pushes over it are coalesced like over `outbox_size`."""
        self.mach: am.Machine = am.Machine(
            SERVER_SCHEMA, id=id or f"rs-{source.id}", log_level=log_level
        )
        """The server's own machine (`ServerStates`)."""
        self._names = source.state_names
        self._hash = w.schema_hash(self._names)
        self._peers: list[_Peer] = []
        self._conns: set[_Peer] = set()
        self._count = 0
        self._per_address: dict[str, int] = {}
        self._last: am.Time = ()
        self._tracer = _SourceTracer(self)
        self._tg: anyio.abc.TaskGroup | None = None
        self._exit: contextlib.AsyncExitStack | None = None

    @property
    def clients(self) -> list[str]:
        """Labels of the connected clients (names they gave themselves)."""
        return [p.client_id for p in self._peers]

    @property
    def sessions(self) -> dict[str, Session]:
        """The connected clients by session id."""
        return {p.session_id: p.session for p in self._peers if p.session}

    @property
    def connections(self) -> int:
        """Open connections, handshakes included."""
        return self._count

    # ------------------------------------------------------------ running

    async def __aenter__(self) -> Server:
        if self._exit is not None:
            raise RuntimeError(f"the server {self.mach.id} is already running")
        mach = self.mach
        # every step registers its undoing right after it succeeded: a
        # failing step leaves nothing entered, bound or open
        async with contextlib.AsyncExitStack() as stack:
            await mach.__aenter__()
            stack.push_async_exit(mach.__aexit__)
            mach.add1(_SS.Start)
            stack.callback(mach.remove1, _SS.Start)
            mach.add1(_SS.RpcStarting)
            try:
                listener = await anyio.create_tcp_listener(
                    local_host=self.host, local_port=self.port
                )
            except OSError as exc:
                mach.add_err_state(_SS.ErrNetwork, exc)
                raise
            stack.push_async_callback(self._close, listener)
            self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
            tg = anyio.create_task_group()
            await tg.__aenter__()
            stack.push_async_exit(self._stop_tasks)
            self._tg = tg
            source = self.source
            self._last = source.time()
            source.bind_tracer(self._tracer)
            stack.callback(self._detach_tracer)
            if source.has1(SourceStates.SendPayload):
                binding = source.bind_handlers(
                    _SourceHandlers(self),
                    id=f"rpc-{self.mach.id}-{os.urandom(3).hex()}",
                )
                stack.callback(self._detach_handlers, binding)
            for sub in getattr(listener, "listeners", [listener]):
                tg.start_soon(self._accept, sub, tg)
            tg.start_soon(self._sweeper)
            self._warn_exposed()
            self._exit = stack.pop_all()
        mach.add1(_SS.RpcReady)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack = self._exit
        if stack is None:
            raise RuntimeError(f"the server {self.mach.id} is not running")
        self._exit = None
        await stack.__aexit__(exc_type, exc, tb)

    async def _stop_tasks(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tg = self._tg
        assert tg is not None
        self._tg = None
        tg.cancel_scope.cancel()
        await tg.__aexit__(None, None, None)

    async def _close(self, listener: anyio.abc.Listener[Any]) -> None:
        with anyio.CancelScope(shield=True):
            await listener.aclose()

    def _detach_tracer(self) -> None:
        if self._tracer in self.source.tracers:
            self.source.detach_tracer(self._tracer)

    def _detach_handlers(self, binding: str) -> None:
        if binding in self.source.binding_ids:
            self.source.detach_handlers(binding)

    def _warn_exposed(self) -> None:
        if _is_loopback(self.host):
            return
        missing = [
            what
            for what, have in (
                ("TLS", self.ssl_context is not None),
                ("a shared secret", self._secret is not None),
            )
            if not have
        ]
        if missing:
            logger.warning(
                "aRPC server %s listens on %s:%s without %s: see the security "
                "checklist in the aRPC docs",
                self.mach.id,
                self.host,
                self.port,
                " and ".join(missing),
            )

    async def _accept(
        self, listener: anyio.abc.Listener[Any], tg: anyio.abc.TaskGroup
    ) -> None:
        """Accept connections for ever; an accept error never ends the
        server: out of descriptors or memory, it waits (10 ms, doubling up
        to 1 s) for connections to close, then accepts again."""
        delay = 0.0
        accept = listener.accept  # type: ignore[attr-defined]
        while True:
            try:
                stream: anyio.abc.SocketStream = await accept()
            except anyio.ClosedResourceError:
                return
            except (OSError, anyio.BrokenResourceError) as exc:
                # trio's listener wraps the OSError in a BrokenResourceError
                cause = exc if isinstance(exc, OSError) else exc.__cause__
                if isinstance(cause, OSError) and cause.errno in _EXHAUSTED:
                    delay = min(1.0, delay * 2 or 0.01)
                else:
                    delay = 0.0
                logger.warning(
                    "aRPC server %s: accept failed (%s), next try in %.2fs",
                    self.mach.id,
                    cause or exc,
                    delay,
                )
                self.mach.add1(_SS.AcceptFailed, {"error": cause or exc})
                await anyio.sleep(delay)
                continue
            delay = 0.0
            try:
                address = str(stream.extra(anyio.abc.SocketAttribute.remote_address)[0])
            except (OSError, anyio.TypedAttributeLookupError, IndexError):
                address = "?"
            per = self._per_address.get(address, 0)
            if (
                self._count >= self.max_connections
                or per >= self.max_connections_per_address
            ):
                self._reject(
                    "",
                    "",
                    _BusyError(
                        f"connection from {address} over the limit "
                        f"({self._count} open, {per} from that address)"
                    ),
                )
                with anyio.CancelScope(shield=True):
                    await stream.aclose()
                continue
            self._count += 1
            self._per_address[address] = per + 1
            tg.start_soon(self._handle, stream, address)

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

    def _payload_frame(
        self, args: Mapping[str, Any]
    ) -> tuple[bytes, list[_Peer]] | None:
        """The PAYLOAD frame and its receivers, or None (and `ErrRpc`) for a
        malformed payload or one larger than a receiver's `max_frame`."""
        payload = args.get("payload")
        if not isinstance(payload, Payload):
            self.mach.add_err_state(
                _SS.ErrRpc,
                TypeError(
                    f"SendPayload needs args['payload'] to be an rpc.Payload, "
                    f"got {type(payload).__name__}"
                ),
            )
            return None
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
            return None
        dest = payload.destination
        peers = [p for p in self._peers if not dest or p.session_id == dest]
        size = len(frame) - 4
        for peer in peers:
            if size > peer.max_frame:
                too_big = ValueError(
                    f"payload {payload.name!r} is {size} bytes, over the "
                    f"max_frame {peer.max_frame} of client {peer.client_id} "
                    f"(session {peer.session_id}): not sent to anyone"
                )
                self.mach.add_err_state(_SS.ErrRpc, too_big)
                return None
        return frame, peers

    # ----------------------------------------------------- connections

    async def _handle(self, stream: anyio.abc.ByteStream, address: str) -> None:
        peer = _Peer(self.outbox_size, self.outbox_bytes, address)
        error: BaseException | None = None
        try:
            try:
                with anyio.fail_after(self.handshake_timeout):
                    stream = await self._wrap(stream)
                    reader = w.FrameReader(stream, w.PRE_AUTH_MAX_FRAME)
                    reader.chunk = w.PRE_AUTH_MAX_FRAME + 4
                    await self._handshake(reader, stream, peer)
            except Exception as exc:
                if isinstance(exc, ssl.SSLError):
                    # a failed TLS handshake: nothing to tell in clear text
                    error = w.TLSError(f"TLS with a client failed: {exc}")
                    error.__cause__ = exc
                    return
                if isinstance(exc, _CLOSED) and not isinstance(exc, TimeoutError):
                    return
                error = exc
                if not isinstance(exc, _TLSRequiredError):  # it said so itself
                    with anyio.move_on_after(1), contextlib.suppress(*_CLOSED):
                        await stream.send(self._error_frame(exc))
                return
            reader.max_frame = self.max_frame
            reader.chunk = 65536
            async with anyio.create_task_group() as tg:
                peer.scope = tg.cancel_scope
                tg.start_soon(self._writer, stream, peer)
                try:
                    self._register(peer)
                    await self._serve(reader, stream, peer)
                except Exception as exc:
                    if isinstance(exc, _CLOSED) and not isinstance(exc, TimeoutError):
                        return
                    error = exc
                    peer.outbox.append(self._error_frame(exc))
                finally:
                    peer.close()
        finally:
            self._count -= 1
            left = self._per_address[address] - 1
            if left:
                self._per_address[address] = left
            else:
                del self._per_address[address]
            self._unregister(peer, error)
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                await stream.aclose()

    @staticmethod
    def _error_frame(exc: BaseException) -> bytes:
        """An ERROR frame: a code and its fixed text, never the details."""
        if isinstance(exc, TimeoutError):
            code = "timeout"
        elif isinstance(exc, ArgsError):
            code = "args"
        else:
            code = getattr(exc, "code", "internal")
            if code not in w.ERROR_MESSAGES:
                code = "internal"
        return w.encode((w.ERROR, code, w.ERROR_MESSAGES[code]))

    async def _wrap(self, stream: anyio.abc.ByteStream) -> anyio.abc.ByteStream:
        if self.ssl_context is None:
            return stream
        head = await stream.receive(1)
        if head[0] != _TLS_RECORD_HANDSHAKE:
            # a plain client: tell it in plain text instead of a TLS failure
            frame = w.encode((w.ERROR, "tls", w.ERROR_MESSAGES["tls"]))
            with contextlib.suppress(*_CLOSED):
                await stream.send(frame)
            raise _TLSRequiredError("a client without TLS")
        return await TLSStream.wrap(
            _Replay(stream, head),
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
                peer.size = 0
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

    async def _handshake(
        self, reader: w.FrameReader, stream: anyio.abc.ByteStream, peer: _Peer
    ) -> None:
        """The server's side of the handshake (docs/rpc.md, "Handshake"):
        nothing about the source leaves before the client proved the
        secret."""
        msg = await reader.read(None, None)
        if msg[0] == w.C_HELLO and len(msg) > 1 and msg[1] != w.PROTOCOL_VERSION:
            raise w.VersionError(
                f"protocol version {msg[1]!r} is not supported, "
                f"the server speaks {w.PROTOCOL_VERSION}"
            )
        w.expect(msg, w.C_HELLO, (int, bytes, str, str, int))
        _, _, client_nonce, label, hash_, max_frame = msg
        if len(client_nonce) != w.NONCE_SIZE:
            raise ProtocolError(f"a nonce must have {w.NONCE_SIZE} bytes")
        if len(label) > w.MAX_LABEL:
            raise ProtocolError(f"a label must be at most {w.MAX_LABEL} characters")
        if not 64 <= max_frame < 1 << 63:
            raise ProtocolError(f"bad max_frame {max_frame}")
        peer.client_id = label
        server_nonce = os.urandom(w.NONCE_SIZE)
        secret = self._secret
        transcript = w.transcript(
            w.PROTOCOL_VERSION, client_nonce, server_nonce, label, hash_, max_frame
        )
        proof = None if secret is None else w.proof(secret, b"server", transcript)
        await stream.send(
            w.encode((w.S_HELLO, w.PROTOCOL_VERSION, server_nonce, proof))
        )
        msg = await reader.read(None, None)
        w.expect(msg, w.AUTH, ((bytes, type(None)),))
        if secret is not None and not w.proof_ok(secret, b"client", transcript, msg[1]):
            raise AuthError(
                "the client's proof of the shared secret is wrong"
                if msg[1] is not None
                else "the client has no shared secret"
            )
        if hash_ != self._hash:
            raise SchemaMismatchError(
                f"schema mismatch: the client's schema hash is {hash_}, the "
                f"source machine {self.source.id} has {self._hash}"
            )
        peer.max_frame = max_frame

    def _register(self, peer: _Peer) -> None:
        session_id = os.urandom(8).hex()
        session = Session(session_id, peer.client_id, peer.address)
        perms = self.permissions
        if not isinstance(perms, Permissions):
            perms = perms(session)
            if not isinstance(perms, Permissions):
                raise TypeError(
                    f"permissions gave {type(perms).__name__}, not rpc.Permissions"
                )
        peer.perms = perms
        peer.tokens = float(perms.burst)
        peer.last = anyio.current_time()
        peer.session_id = session_id
        peer.session = session
        # flush pending changes to the others, then start this one at "now"
        self._push()
        source = self.source
        time = source.time()
        self._last = time
        peer.reply(
            w.encode(
                (
                    w.WELCOME,
                    session_id,
                    source.id,
                    self.max_frame,
                    list(time),
                    w.checksum(time),
                    source.queue_tick_processed,
                )
            )
        )
        self._peers.append(peer)
        self._conns.add(peer)
        peer.registered = True
        peer.rx_since = anyio.current_time()
        self.mach.add1(
            _SS.ClientConnected,
            {"client_id": peer.client_id, "session_id": session_id},
        )
        self.mach.add1(_SS.HasClients)

    def _reject(self, client_id: str, session_id: str, error: BaseException) -> None:
        self.mach.log("client %s dropped: %s", client_id or "?", error)
        logger.info("aRPC server %s: dropped a client: %s", self.mach.id, error)
        self.mach.add1(
            _SS.ClientRejected,
            {"client_id": client_id, "session_id": session_id, "error": error},
        )

    def _unregister(self, peer: _Peer, error: BaseException | None) -> None:
        self._conns.discard(peer)
        if peer in self._peers:
            self._peers.remove(peer)
            self.mach.add1(
                _SS.ClientDisconnected,
                {"client_id": peer.client_id, "session_id": peer.session_id},
            )
            if not self._peers:
                self.mach.remove1(_SS.HasClients)
        if error is not None:
            self._reject(peer.client_id, peer.session_id, error)

    async def _serve(
        self, reader: w.FrameReader, stream: anyio.abc.ByteStream, peer: _Peer
    ) -> None:
        with peer.serve_scope:
            await self._serve_loop(reader, stream, peer)
        if peer.silent is not None:
            raise peer.silent

    def _refusal(
        self, peer: _Peer, op: int, called: list[str], args: dict[str, Any]
    ) -> str | None:
        """Why `peer` may not make this call (a REFUSED code), or None."""
        perms = peer.perms
        if perms.rate is not None:
            now = anyio.current_time()
            tokens = min(
                float(perms.burst), peer.tokens + (now - peer.last) * perms.rate
            )
            peer.last = now
            if tokens < 1:
                peer.tokens = tokens
                return "rate"
            peer.tokens = tokens - 1
        if perms.read_only:
            return "read_only"
        touched: Iterable[str] = called
        if op == w.OP_SET:
            touched = {*called, *self.source.active_states}
        allow, deny = perms.allow, perms.deny
        for s in touched:
            if s in deny or (allow is not None and s not in allow):
                return "denied"
        if perms.authorize is not None:
            assert peer.session is not None
            try:
                ok = perms.authorize(peer.session, _OP_NAMES[op], tuple(called), args)
            except Exception as exc:
                logger.exception("aRPC server %s: authorize failed", self.mach.id)
                self.mach.add_err_state(_SS.ErrRpc, exc)
                return "denied"
            if not ok:
                return "denied"
        return None

    async def _serve_loop(
        self, reader: w.FrameReader, stream: anyio.abc.ByteStream, peer: _Peer
    ) -> None:
        source = self.source
        schema = source.schema
        tracer = self._tracer
        frame_timeout = self.frame_timeout
        perms = peer.perms
        # the defaults need no check beyond the deny list
        plain = (
            perms.rate is None
            and not perms.read_only
            and perms.allow is None
            and perms.authorize is None
        )
        deny = perms.deny
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
                if plain and op != w.OP_SET and deny.isdisjoint(called):
                    code = None
                else:
                    code = self._refusal(peer, op, called, args)
                if code is not None:
                    self.mach.log(
                        "client %s refused (%s): %s %s",
                        peer.client_id,
                        code,
                        _OP_NAMES[op],
                        " ".join(called),
                    )
                    self.mach.add1(
                        _SS.MutationRefused,
                        {
                            "session_id": peer.session_id,
                            "code": code,
                            "states": tuple(called),
                        },
                    )
                    frame = w.encode((w.REFUSED, call_id, code))
                else:
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
