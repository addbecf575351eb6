"""The aRPC client and its network machine."""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, NoReturn, final

import anyio
import anyio.abc

import asyncmachine as am
from asyncmachine.helpers import args_to_wire

from . import _wire as w
from ._states import CLIENT_SCHEMA, ClientStates, ConsumerStates
from ._wire import (
    AuthError,
    DeniedError,
    NotConnectedError,
    Payload,
    ProtocolError,
    RemoteError,
    RpcError,
    SchemaMismatchError,
    TLSError,
)

__all__ = ["Client", "NetMachine"]

_CS = ClientStates
_CLOSED = (
    anyio.EndOfStream,
    anyio.IncompleteRead,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)
_PERMANENT = {
    "schema": SchemaMismatchError,
    "auth": AuthError,
    "version": w.VersionError,
    "tls": TLSError,
}


class _Call(am.WhenEvent):
    """A remote call in flight: set once its result (or error) is in."""

    __slots__ = ("call_id", "deadline", "result", "sent", "states")

    def __init__(
        self, call_id: int, deadline: float, states: tuple[str, ...] = ()
    ) -> None:
        super().__init__()
        self.call_id = call_id
        self.states = states
        self.deadline = deadline
        self.sent = False
        self.result: am.Result | BaseException | None = None

    def resolve(self, result: am.Result | BaseException) -> None:
        if self.result is None:
            self.result = result
            self.set()


@final
class NetMachine:
    """A remote source machine, used as if it were local.

    Mutations (`await net.add1("Foo")`) travel to the server and return
    the source's real `Result`. Checks, clocks, when-methods and state
    contexts run locally on the clock the server pushes after every
    transition, so they cost no round trip. Before the first handshake and
    while disconnected, `connected` is False and mutations raise
    `NotConnectedError`; the last known clock stays readable.
    """

    __slots__ = (
        "_client",
        "_mirror",
        "_observers",
        "_queue_tick",
        "_queue_waiters",
        "source_id",
    )

    def __init__(self, client: Client, schema: am.Schema, id: str) -> None:
        self._client = client
        self._mirror = am.Machine(schema, id=id)
        self._queue_tick = 0
        self._queue_waiters: list[tuple[int, am.WhenEvent]] = []
        # called with the changed (state, tick) pairs and the queue tick of
        # each clock push (the debugger, docs/debugger.md)
        self._observers: list[Callable[[tuple[tuple[str, int], ...], int], None]] = []
        self.source_id: str = ""
        """Id of the remote source machine (known after the handshake)."""

    # ------------------------------------------------------------ info

    @property
    def id(self) -> str:
        """The network machine's id."""
        return self._mirror.id

    @property
    def connected(self) -> bool:
        """True while the clock is live (handshake done, connection up)."""
        return self._client.mach.is1(_CS.HandshakeDone)

    @property
    def state_names(self) -> list[str]:
        """All state names in state order."""
        return self._mirror.state_names

    @property
    def schema(self) -> Mapping[str, am.State]:
        """The schema the client was given (read-only)."""
        return self._mirror.schema

    @property
    def queue_tick(self) -> int:
        """The source's processed queue tick at the last push."""
        return self._queue_tick

    @property
    def disposed(self) -> bool:
        """True once the client stopped for good."""
        return self._mirror.disposed

    @property
    def active_states(self) -> list[str]:
        """Active states in state order."""
        return self._mirror.active_states

    # --------------------------------------------------------- mutations

    async def add(
        self, states: Iterable[str], args: dict[str, Any] | None = None
    ) -> am.Result:
        """Activate `states` on the source machine."""
        return await self._client._call(w.OP_ADD, self._parse(states), args)

    async def add1(self, state: str, args: dict[str, Any] | None = None) -> am.Result:
        """Activate one state on the source machine."""
        return await self.add(self._one(state), args)

    async def remove(
        self, states: Iterable[str], args: dict[str, Any] | None = None
    ) -> am.Result:
        """Deactivate `states` on the source machine."""
        return await self._client._call(w.OP_REMOVE, self._parse(states), args)

    async def remove1(
        self, state: str, args: dict[str, Any] | None = None
    ) -> am.Result:
        """Deactivate one state on the source machine."""
        return await self.remove(self._one(state), args)

    async def set(
        self, states: Iterable[str], args: dict[str, Any] | None = None
    ) -> am.Result:
        """Make `states` the active states of the source machine."""
        return await self._client._call(w.OP_SET, self._parse(states), args)

    async def toggle(
        self, states: Iterable[str], args: dict[str, Any] | None = None
    ) -> am.Result:
        """Remove `states` if all are active (by the local clock), else add."""
        called = self._parse(states)
        if self._mirror.is_(called):
            return await self._client._call(w.OP_REMOVE, called, args)
        return await self._client._call(w.OP_ADD, called, args)

    async def toggle1(
        self, state: str, args: dict[str, Any] | None = None
    ) -> am.Result:
        """Remove one state if active, else add it."""
        return await self.toggle(self._one(state), args)

    async def can_add(
        self, states: Iterable[str], args: dict[str, Any] | None = None
    ) -> am.Result:
        """Dry-run an add on the source machine."""
        return await self._client._call(w.OP_CAN_ADD, self._parse(states), args)

    async def can_remove(
        self, states: Iterable[str], args: dict[str, Any] | None = None
    ) -> am.Result:
        """Dry-run a remove on the source machine."""
        return await self._client._call(w.OP_CAN_REMOVE, self._parse(states), args)

    def _parse(self, states: Iterable[str]) -> tuple[str, ...]:
        return self._mirror._parse(states)

    def _one(self, state: str) -> tuple[str, ...]:
        if not isinstance(state, str):
            raise TypeError(f"expected one state name, got {state!r}")
        return (state,)

    # ------------------------------------------------ local: checks, clocks

    def is_(self, states: Iterable[str]) -> bool:
        """True if all `states` are active."""
        return self._mirror.is_(states)

    def is1(self, state: str) -> bool:
        """True if `state` is active."""
        return self._mirror.is1(state)

    def __contains__(self, state: str) -> bool:
        return self._mirror.is1(state)

    def is_err(self) -> bool:
        """True if the source's Exception state is active."""
        return self._mirror.is_err()

    def not_(self, states: Iterable[str]) -> bool:
        """True if none of `states` is active."""
        return self._mirror.not_(states)

    def not1(self, state: str) -> bool:
        """True if `state` is inactive."""
        return self._mirror.not1(state)

    def any(self, *state_lists: Iterable[str]) -> bool:
        """True if all states of one of the lists are active."""
        return self._mirror.any(*state_lists)

    def any1(self, *states: str) -> bool:
        """True if one of `states` is active."""
        return self._mirror.any1(*states)

    def switch(self, *groups: Iterable[str]) -> str:
        """The first active state of `groups`, in order; `""` if none is."""
        return self._mirror.switch(*groups)

    def has(self, states: Iterable[str]) -> bool:
        """True if the schema has all `states`."""
        return self._mirror.has(states)

    def has1(self, state: str) -> bool:
        """True if the schema has `state`."""
        return self._mirror.has1(state)

    def tick(self, state: str) -> int:
        """The tick of `state`."""
        return self._mirror.tick(state)

    def time(self, states: Iterable[str] | None = None) -> am.Time:
        """Ticks of `states` (default: all)."""
        return self._mirror.time(states)

    def clock(self, states: Iterable[str] | None = None) -> am.Clock:
        """Ticks of `states` (default: all) as a dict."""
        return self._mirror.clock(states)

    def is_time(self, time: Sequence[int], states: Iterable[str] | None = None) -> bool:
        """True if the ticks of `states` equal `time`."""
        return self._mirror.is_time(time, states)

    def is_clock(self, clock: Mapping[str, int]) -> bool:
        """True if every tick in `clock` equals the current one."""
        return self._mirror.is_clock(clock)

    def __str__(self) -> str:
        return str(self._mirror)

    def __repr__(self) -> str:
        return f"<NetMachine {self.id} {self._mirror}>"

    def string_all(self) -> str:
        """All states with ticks."""
        return self._mirror.string_all()

    def inspect(self, states: Iterable[str] | None = None) -> str:
        """A multi-line description of states, ticks and relations."""
        return self._mirror.inspect(states)

    # ----------------------------------------------- local: waiting, contexts

    def when(
        self, states: Iterable[str], ctx: am.StateCtx | None = None
    ) -> am.WhenEvent:
        """Set once all `states` are active."""
        return self._mirror.when(states, ctx)

    def when1(self, state: str, ctx: am.StateCtx | None = None) -> am.WhenEvent:
        """Set once `state` is active."""
        return self._mirror.when1(state, ctx)

    def when_not(
        self, states: Iterable[str], ctx: am.StateCtx | None = None
    ) -> am.WhenEvent:
        """Set once none of `states` is active."""
        return self._mirror.when_not(states, ctx)

    def when_not1(self, state: str, ctx: am.StateCtx | None = None) -> am.WhenEvent:
        """Set once `state` is inactive."""
        return self._mirror.when_not1(state, ctx)

    def when_err(self, ctx: am.StateCtx | None = None) -> am.WhenEvent:
        """Set once the source's Exception state is active."""
        return self._mirror.when_err(ctx)

    def when_time(
        self,
        states: Iterable[str],
        times: Sequence[int],
        ctx: am.StateCtx | None = None,
    ) -> am.WhenEvent:
        """Set once each state's tick reaches the matching time."""
        return self._mirror.when_time(states, times, ctx)

    def when_time1(
        self, state: str, tick: int, ctx: am.StateCtx | None = None
    ) -> am.WhenEvent:
        """Set once `state`'s tick is at least `tick`."""
        return self._mirror.when_time1(state, tick, ctx)

    def when_ticks(
        self, state: str, n: int, ctx: am.StateCtx | None = None
    ) -> am.WhenEvent:
        """Set once `state` ticked `n` more times from now."""
        return self._mirror.when_ticks(state, n, ctx)

    def when_query(
        self, fn: Callable[[am.Clock], object], ctx: am.StateCtx | None = None
    ) -> am.WhenEvent:
        """Set when `fn(clock)` is truthy after a later clock push."""
        return self._mirror.when_query(fn, ctx)

    def when_queue(self, tick: int) -> am.WhenEvent:
        """Set once the source's processed queue tick (as pushed) reaches
        `tick`, e.g. a `queue_tick` seen earlier; also set on disposal."""
        if isinstance(tick, bool) or not isinstance(tick, int):
            raise TypeError(f"tick must be an int, got {tick!r}")
        event = am.WhenEvent()
        if self._queue_tick >= tick or self._mirror.disposed:
            event.set()
        else:
            self._queue_waiters.append((tick, event))
        return event

    def when_disposed(self) -> am.WhenEvent:
        """Set once the client stopped for good."""
        return self._mirror.when_disposed()

    def when_connected(self) -> am.WhenEvent:
        """Set once the clock is live (the client's `Ready`)."""
        return self._client.mach.when1(_CS.Ready)

    def when_disconnected(self) -> am.WhenEvent:
        """Set once the connection is gone (the client's `Disconnected`)."""
        return self._client.mach.when1(_CS.Disconnected)

    def new_state_ctx(self, state: str) -> am.StateCtx:
        """A context bound to `state`'s current (pushed) tick."""
        return self._mirror.new_state_ctx(state)

    # --------------------------------------------------- clock updates

    def _apply(self, pairs: Iterable[tuple[int, int]], queue_tick: int) -> None:
        self._queue_tick = queue_tick
        changes = self._mirror._apply_remote_ticks(pairs)
        if changes and self._observers:
            for fn in self._observers:
                fn(changes, queue_tick)
        if self._queue_waiters:
            self._wake_queue(queue_tick)

    def _wake_queue(self, queue_tick: float) -> None:
        ready = [e for t, e in self._queue_waiters if t <= queue_tick]
        self._queue_waiters = [(t, e) for t, e in self._queue_waiters if t > queue_tick]
        for event in ready:
            event.set()

    def _dispose(self) -> None:
        self._mirror.dispose()
        self._wake_queue(math.inf)

    def _checksum(self) -> int:
        return w.checksum(self._mirror.time())


@final
class Client:
    """Connects to an aRPC server and offers its source as `net_mach`.

    `async with rpc.Client(host, port, schema) as client:` connects in the
    background and reconnects with exponential backoff when the connection
    drops; wait for `client.mach.when1(ClientStates.Ready)` (or
    `client.net_mach.when_connected()`). `schema` must have the source
    machine's state names in the same order; the server refuses others.
    """

    def __init__(
        self,
        host: str,
        port: int,
        schema: am.Schema,
        *,
        id: str | None = None,
        consumer: am.Machine | None = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        secret: bytes | str | None = None,
        tls_retries: int = 2,
        reconnect: bool = True,
        max_retries: int | None = None,
        backoff: float = 0.05,
        max_backoff: float = 2.0,
        connect_timeout: float = 5.0,
        call_timeout: float | None = 10.0,
        heartbeat: float | None = 5.0,
        max_frame: int = w.DEFAULT_MAX_FRAME,
        log_level: am.LogLevel | int = am.LogLevel.NOTHING,
    ) -> None:
        self.id: str = id or os.urandom(4).hex()
        """The client's name, sent to the server as a label (the server
        tells sessions apart by `session_id`)."""
        if not isinstance(self.id, str) or len(self.id) > w.MAX_LABEL:
            raise ValueError(f"id must be a str of at most {w.MAX_LABEL} characters")
        if max_frame < 64:
            raise ValueError(f"max_frame must be at least 64 bytes, got {max_frame}")
        if tls_retries < 0:
            raise ValueError(f"tls_retries must be at least 0, got {tls_retries}")
        if consumer is not None and not consumer.has1(ConsumerStates.ServerPayload):
            raise am.StateNameError(ConsumerStates.ServerPayload, consumer.id)
        self.host = host
        """The server's address."""
        self.port = port
        """The server's port."""
        self.consumer = consumer
        """A machine that receives payloads as `ServerPayload`."""
        self.ssl_context = ssl_context
        """Connect with TLS using this (client-side) context."""
        self.server_hostname = server_hostname
        """The host name to check the server's certificate against."""
        self._secret = w.check_secret(secret)
        self.tls_retries = tls_retries
        """Attempts after a TLS failure (a certificate that does not verify,
        a server that does not speak TLS) before giving up; a server asking
        for TLS from a plain client is not retried."""
        self.session_id: str = ""
        """The id the server gave this connection (after the handshake);
        payload destinations address it."""
        self.reconnect = reconnect
        """Reconnect after a dropped connection or a failed attempt."""
        self.max_retries = max_retries
        """Failed attempts in a row before giving up (None: never)."""
        self.backoff = backoff
        """The first delay between attempts; doubles up to `max_backoff`."""
        self.max_backoff = max_backoff
        """The longest delay between attempts."""
        self.connect_timeout = connect_timeout
        """Seconds for TCP, TLS and the handshake."""
        self.call_timeout = call_timeout
        """Seconds a remote mutation may take (None: no limit). A call that
        cannot even be sent in that time also drops the connection."""
        self.heartbeat = heartbeat
        """Seconds between pings; a server silent for 3 of them in a row is
        dropped (None: no pings, no silence check)."""
        self.max_frame = max_frame
        """The largest frame accepted, in bytes; the server learns it and
        does not send larger payloads."""
        self._server_max_frame = max_frame
        self.mach: am.Machine = am.Machine(
            CLIENT_SCHEMA, id=f"rc-{self.id}", log_level=log_level
        )
        """The client's own machine (`ClientStates`)."""
        self.net_mach: NetMachine = NetMachine(self, schema, f"nm-{self.id}")
        """The remote machine."""
        self._hash = w.schema_hash(self.net_mach.state_names)
        self._stream: anyio.abc.ByteStream | None = None
        self._lock = anyio.Lock(fast_acquire=True)
        self._calls: dict[int, _Call] = {}
        self._after_sync: list[tuple[_Call, am.Result]] = []
        self._syncing = False
        self._ids = itertools.count(1)
        self._issued = 0
        self._rx = 0
        self._session_error: BaseException | None = None
        self._timer_at = math.inf
        self._timer_wake: am.WhenEvent | None = None
        self._tg: anyio.abc.TaskGroup | None = None

    # ------------------------------------------------------------ running

    async def __aenter__(self) -> Client:
        # entered in steps; a failing step leaves nothing entered
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self.mach)
            tg = await stack.enter_async_context(anyio.create_task_group())
            self.mach.add1(_CS.Start)
            tg.start_soon(self._run)
            stack.pop_all()
        self._tg = tg
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
        tg.cancel_scope.cancel()
        try:
            await tg.__aexit__(None, None, None)
        finally:
            self.net_mach._dispose()
            await self.mach.__aexit__(exc_type, exc, tb)

    async def _run(self) -> None:
        mach = self.mach
        failures = 0
        tls_failures = 0
        while True:
            mach.add1(_CS.Connecting)
            try:
                stream = await self._connect()
                async with stream:
                    await self._session(stream)
            except TLSError as exc:
                self._disconnected(exc)
                tls_failures += 1
                final = tls_failures > self.tls_retries or not self._tls_retryable(exc)
                mach.add_err_state(_CS.ErrRpc if final else _CS.ErrNetwork, exc)
                if final:
                    mach.add1(_CS.ConnRetryFailed)
                    return
            except RpcError as exc:
                permanent = isinstance(exc, tuple(_PERMANENT.values()))
                self._disconnected(exc)
                mach.add_err_state(_CS.ErrRpc if permanent else _CS.ErrNetwork, exc)
                if permanent:
                    mach.add1(_CS.ConnRetryFailed)
                    return
            except Exception as exc:
                self._disconnected(exc)
                mach.add_err_state(_CS.ErrNetwork, exc)
            failures = 0 if self._was_ready else failures + 1
            self._was_ready = False
            if not self.reconnect or (
                self.max_retries is not None and failures > self.max_retries
            ):
                mach.add1(_CS.ConnRetryFailed)
                return
            mach.add1(_CS.RetryingConn)
            delay = min(self.max_backoff, self.backoff * 2 ** max(failures - 1, 0))
            await anyio.sleep(delay)

    _was_ready = False

    @staticmethod
    def _tls_retryable(exc: TLSError) -> bool:
        # the server's own "tls" error is an answer, not a failure to retry
        return not isinstance(exc.__cause__, RemoteError)

    async def _connect(self) -> anyio.abc.ByteStream:
        with anyio.fail_after(self.connect_timeout):
            if self.ssl_context is None:
                return await anyio.connect_tcp(self.host, self.port)
            try:
                return await anyio.connect_tcp(
                    self.host,
                    self.port,
                    ssl_context=self.ssl_context,
                    tls_hostname=self.server_hostname or self.host,
                    tls_standard_compatible=False,
                )
            except ssl.SSLCertVerificationError as exc:
                raise TLSError(
                    f"the certificate of {self.host}:{self.port} did not verify: "
                    f"{exc.verify_message or exc}",
                    verify=True,
                ) from exc
            except ssl.SSLError as exc:
                raise TLSError(
                    f"TLS with {self.host}:{self.port} failed (does the server "
                    f"speak TLS?): {exc}"
                ) from exc

    def _disconnected(self, exc: BaseException) -> None:
        self._stream = None
        self.session_id = ""
        self._syncing = False
        err = NotConnectedError(f"connection to {self.host}:{self.port} lost")
        err.__cause__ = exc
        calls = [*self._calls.values(), *(c for c, _ in self._after_sync)]
        self._calls.clear()
        self._after_sync.clear()
        for call in calls:
            call.resolve(err)
        self.mach.add1(_CS.Disconnected)

    async def _session(self, stream: anyio.abc.ByteStream) -> NoReturn:
        mach = self.mach
        mach.add1(_CS.Connected)
        mach.add1(_CS.Handshaking)
        reader = w.FrameReader(stream, self.max_frame)
        net = self.net_mach
        n = len(net.state_names)
        with anyio.fail_after(self.connect_timeout):
            msg = await self._handshake(stream, reader)
            time = w.check_time(msg[4], n)
        self.session_id = msg[1]
        self._server_max_frame = msg[3]
        net.source_id = msg[2]
        net._apply(enumerate(time), msg[6])
        self._stream = stream
        self._was_ready = True
        mach.add1(_CS.HandshakeDone)
        # the helper tasks end the session by cancelling `scope` with a reason
        # in `_session_error`; the read loop's own errors leave the task group
        # unwrapped
        scope = anyio.CancelScope()
        self._session_error = None
        async with anyio.create_task_group() as tg:
            if self.heartbeat:
                tg.start_soon(self._pinger, self.heartbeat, scope)
            tg.start_soon(self._call_timer, scope)
            try:
                with scope:
                    while True:
                        msg = await reader.read(None, self.connect_timeout)
                        self._rx += 1
                        self._dispatch(msg, n)
            except Exception as exc:
                self._session_error = exc
            finally:
                self._timer_at = math.inf
                self._timer_wake = None
                tg.cancel_scope.cancel()
        assert self._session_error is not None
        raise self._session_error

    async def _handshake(
        self, stream: anyio.abc.ByteStream, reader: w.FrameReader
    ) -> list[Any]:
        """The client's side of the handshake (docs/rpc.md, "Handshake");
        the WELCOME message. A server that cannot prove the secret gets
        nothing but the hello."""
        reader.max_frame = w.PRE_AUTH_MAX_FRAME
        client_nonce = os.urandom(w.NONCE_SIZE)
        label, hash_, max_frame = self.id, self._hash, self.max_frame
        await stream.send(
            w.encode(
                (w.C_HELLO, w.PROTOCOL_VERSION, client_nonce, label, hash_, max_frame)
            )
        )
        msg = self._check_error(await reader.read(None, None))
        if msg[0] == w.S_HELLO and len(msg) > 1 and msg[1] != w.PROTOCOL_VERSION:
            raise w.VersionError(
                f"the server speaks protocol version {msg[1]!r}, "
                f"the client {w.PROTOCOL_VERSION}"
            )
        w.expect(msg, w.S_HELLO, (int, bytes, (bytes, type(None))))
        server_nonce, server_proof = msg[2], msg[3]
        if len(server_nonce) != w.NONCE_SIZE:
            raise ProtocolError(f"a nonce must have {w.NONCE_SIZE} bytes")
        secret = self._secret
        if secret is None:
            if server_proof is not None:
                raise AuthError("the server requires a shared secret")
            proof = None
        else:
            if server_proof is None:
                raise AuthError("the server does not prove the shared secret: refused")
            transcript = w.transcript(
                w.PROTOCOL_VERSION, client_nonce, server_nonce, label, hash_, max_frame
            )
            if not w.proof_ok(secret, b"server", transcript, server_proof):
                raise AuthError(
                    "the server's proof of the shared secret is wrong: refused"
                )
            proof = w.proof(secret, b"client", transcript)
        await stream.send(w.encode((w.AUTH, proof)))
        reader.max_frame = self.max_frame
        msg = self._check_error(await reader.read(None, None))
        w.expect(msg, w.WELCOME, (str, str, int, list, int, int))
        if msg[3] < 64:
            raise ProtocolError(f"bad max_frame {msg[3]}")
        return msg

    def _check_error(self, msg: list[Any]) -> list[Any]:
        if msg[0] == w.ERROR:
            w.expect(msg, w.ERROR, (str, str))
            cls = _PERMANENT.get(msg[1])
            if cls is not None:
                raise cls(f"the server refused: {msg[2]}") from RemoteError(
                    msg[1], msg[2]
                )
            raise RemoteError(msg[1], msg[2])
        return msg

    def _dispatch(self, msg: list[Any], n: int) -> None:
        kind = self._check_error(msg)[0]
        net = self.net_mach
        if kind == w.UPDATE:
            w.expect(msg, w.UPDATE, (list, int, int))
            net._apply(w.check_pairs(msg[1], n), msg[3])
            if msg[2] != net._checksum():
                self._request_sync()
        elif kind == w.RESULT:
            w.expect(msg, w.RESULT, (int, int, list, int, int))
            # the clock changes come first: read your own writes
            net._apply(w.check_pairs(msg[3], n), msg[5])
            try:
                result = am.Result(msg[2])
            except ValueError:
                raise ProtocolError(f"unknown result {msg[2]}") from None
            call = self._calls.pop(msg[1], None)
            if call is None:
                if not 0 < msg[1] <= self._issued:
                    raise ProtocolError(f"a result for an unknown call {msg[1]}")
                # a call that timed out or was cancelled: its clock still counts
                call = _Call(msg[1], math.inf)
            if msg[4] == net._checksum():
                call.resolve(result)
            else:
                self._after_sync.append((call, result))
                self._request_sync()
        elif kind == w.FULL:
            w.expect(msg, w.FULL, (list, int, int))
            net._apply(enumerate(w.check_time(msg[1], n)), msg[3])
            self._syncing = False
            done, self._after_sync = self._after_sync, []
            for call, result in done:
                call.resolve(result)
        elif kind == w.REFUSED:
            w.expect(msg, w.REFUSED, (int, str))
            call = self._calls.pop(msg[1], None)
            if call is not None:
                call.resolve(DeniedError(msg[2], call.states))
            elif not 0 < msg[1] <= self._issued:
                raise ProtocolError(f"a refusal of an unknown call {msg[1]}")
        elif kind == w.PONG:
            w.expect(msg, w.PONG, (int,))
            self.mach.add1(_CS.Heartbeat)
        elif kind == w.PAYLOAD:
            w.expect(msg, w.PAYLOAD, (str, str, object, str))
            payload = Payload(msg[1], msg[3], msg[2], self.session_id, msg[4])
            self.mach.add1(_CS.ServerPayload, {"payload": payload})
            if self.consumer is not None:
                self.consumer.add1(ConsumerStates.ServerPayload, {"payload": payload})
        else:
            raise ProtocolError(f"unexpected message kind {kind}")

    def _request_sync(self) -> None:
        if self._syncing:
            return
        self._syncing = True
        self.mach.add1(_CS.MetricSync)
        tg = self._tg
        if tg is not None:
            tg.start_soon(self._send, w.encode((w.SYNC,)))

    async def _pinger(self, every: float, session: anyio.CancelScope) -> None:
        # a server silent for three heartbeats in a row is gone: checking at
        # each heartbeat keeps the read loop free of timers
        silent = 0
        seen = self._rx
        for n in itertools.count():
            await anyio.sleep(every)
            if self._rx != seen:
                seen = self._rx
                silent = 0
            else:
                silent += 1
                if silent >= 3:
                    self._session_error = TimeoutError(
                        f"the server was silent for {every * 3}s"
                    )
                    session.cancel()
                    return
            try:
                with anyio.move_on_after(every):
                    await self._send(w.encode((w.PING, n)))
            except NotConnectedError as exc:
                self._session_error = exc
                session.cancel()
                return

    async def _call_timer(self, session: anyio.CancelScope) -> None:
        """Time out calls: one timer for all of them instead of a cancel scope
        per call. It sleeps until the earliest deadline; calls made meanwhile
        end later (same timeout), else `_call` wakes it."""
        while True:
            now = anyio.current_time()
            next_at = math.inf
            calls = [*self._calls.values(), *(c for c, _ in self._after_sync)]
            for call in calls:
                if call.deadline <= now:
                    self._expire(call, session)
                elif call.deadline < next_at:
                    next_at = call.deadline
            timeout = self.call_timeout
            if next_at == math.inf and timeout is not None:
                next_at = now + timeout
            self._timer_at = next_at
            wake = self._timer_wake = am.WhenEvent()
            with anyio.CancelScope(deadline=next_at):
                await wake

    def _expire(self, call: _Call, session: anyio.CancelScope) -> None:
        self._calls.pop(call.call_id, None)
        self._after_sync = [(c, r) for c, r in self._after_sync if c is not call]
        call.resolve(
            TimeoutError(
                f"the remote call {call.call_id} took over {self.call_timeout}s"
            )
        )
        if not call.sent:
            # the write itself stalls: this connection is of no use any more
            self._session_error = TimeoutError(
                f"sending to {self.host}:{self.port} stalled for {self.call_timeout}s"
            )
            session.cancel()

    async def _send(self, frame: bytes) -> None:
        stream = self._stream
        if stream is None:
            raise NotConnectedError(f"not connected to {self.host}:{self.port}")
        try:
            async with self._lock:
                await stream.send(frame)
        except _CLOSED as exc:
            raise NotConnectedError(
                f"sending to {self.host}:{self.port} failed"
            ) from exc

    async def _call(
        self, op: int, called: tuple[str, ...], args: dict[str, Any] | None
    ) -> am.Result:
        if args is not None and not isinstance(args, dict):
            raise TypeError(f"args must be a dict or None, got {type(args).__name__}")
        wire_args = args_to_wire(args or {})
        call_id = next(self._ids)
        frame = w.encode((w.MUTATE, call_id, op, list(called), wire_args))
        limit = min(self.max_frame, self._server_max_frame)
        if len(frame) - 4 > limit:
            raise ValueError(
                f"the mutation is {len(frame) - 4} bytes, over max_frame {limit}"
            )
        if self._stream is None:
            raise NotConnectedError(f"not connected to {self.host}:{self.port}")
        timeout = self.call_timeout
        deadline = math.inf if timeout is None else anyio.current_time() + timeout
        call = _Call(call_id, deadline, called)
        self._calls[call_id] = call
        self._issued = call_id
        if deadline < self._timer_at:
            wake = self._timer_wake
            if wake is not None:
                self._timer_wake = None
                wake.set()
        try:
            try:
                await self._send(frame)
            except NotConnectedError:
                if isinstance(call.result, BaseException):
                    raise call.result from None
                raise
            call.sent = True
            await call.wait()
        finally:
            self._calls.pop(call_id, None)
        result = call.result
        if isinstance(result, BaseException):
            raise result
        assert result is not None
        return result
