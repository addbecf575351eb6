"""A nats-py connection usable from asyncio and from trio.

nats-py runs on asyncio only. Under asyncio `NatsConn` drives it in the
caller's own event loop ("direct"). Under trio (or when asked to) it runs
nats-py in an asyncio event loop in another thread, started through an
anyio blocking portal and shared by all threaded connections ("threaded"):
calls cross to that loop with
`asyncio.run_coroutine_threadsafe`, results and incoming messages cross
back with the caller loop's non-blocking thread-safe callback (asyncio's
`call_soon_threadsafe`, trio's `TrioToken.run_sync_soon`, reached through
`anyio.lowlevel.current_token()`), so neither loop ever blocks on the other.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import concurrent.futures
import contextlib
import math
import threading
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Final, TypeVar, final

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

import asyncmachine as am

try:
    import nats
    import nats.errors
    from nats.aio.client import Client as _Client
    from nats.aio.msg import Msg as _NatsMsg
    from nats.aio.subscription import Subscription as _NatsSub
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "asyncmachine.integrations.nats needs nats-py: pip install 'asyncmachine[nats]'"
    ) from exc

T = TypeVar("T")

#: nats-py's client class.
NatsClient = _Client

#: A message handler: `(subject, reply, data)`, awaited in the subscriber's loop.
Handler = Callable[[str, str, bytes], Awaitable[None]]

DEFAULT_SERVERS: Final = "nats://127.0.0.1:4222"


class NatsError(Exception):
    """Base class of the NATS integration's errors."""


class NatsTimeoutError(NatsError, TimeoutError):
    """A request got no reply in time."""


class NoRespondersError(NatsError):
    """Nobody listens on the subject of a request."""


class ConnStates(am.StatesBase):
    """State names of a connection's own machine (`NatsConn.mach`)."""

    Connected: str = am.state()
    """Connected to a server (its tick counts the connections made)."""
    Disconnected: str = am.state()
    """The connection dropped; nats-py reconnects by itself."""
    Closed: str = am.state()
    """The connection is closed for good."""


CONN_SCHEMA: Final[am.Schema] = {
    ConnStates.Connected: am.State(remove=[ConnStates.Disconnected, ConnStates.Closed]),
    ConnStates.Disconnected: am.State(remove=[ConnStates.Connected]),
    ConnStates.Closed: am.State(remove=[ConnStates.Connected, ConnStates.Disconnected]),
    am.EXCEPTION: am.State(multi=True),
}


class _NatsThread:
    """One asyncio loop in a thread, shared by every threaded `NatsConn`.

    Started through an anyio blocking portal by the first connection that
    needs it and stopped when the last one closes: one thread, one loop,
    however many connections (threads of their own would fight over the
    GIL).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._cm: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def acquire(self) -> asyncio.AbstractEventLoop:
        """The shared loop, started if needed (blocking: call in a thread)."""
        with self._lock:
            if self._loop is None:
                cm = anyio.from_thread.start_blocking_portal(
                    "asyncio", name="asyncmachine-nats"
                )
                portal = cm.__enter__()
                self._cm = cm
                self._loop = portal.call(asyncio.get_running_loop)
                # a connection never closed must not hang interpreter exit
                # (the portal's cleanup would wait for a loop already gone)
                atexit.register(self._stop)
            self._users += 1
            return self._loop

    def release(self) -> None:
        """Stop the loop once its last user is gone (blocking)."""
        with self._lock:
            self._users -= 1
            if self._users or self._cm is None:
                return
        self._stop(force=False)

    def _stop(self, force: bool = True) -> None:
        """Stop the loop: when unused, or at interpreter exit (`force`)."""
        with self._lock:
            if self._cm is None or (self._users and not force):
                return
            cm, self._cm, self._loop = self._cm, None, None
            self._users = 0
            atexit.unregister(self._stop)
            cm.__exit__(None, None, None)


_THREAD: Final = _NatsThread()


def _soon_caller(token: anyio.lowlevel.EventLoopToken) -> Callable[..., object]:
    """The non-blocking, thread-safe "call soon" of the loop of `token`."""
    native = token.native_token
    if isinstance(native, asyncio.AbstractEventLoop):
        return native.call_soon_threadsafe
    # trio: a TrioToken
    run_sync_soon: Callable[..., object] = native.run_sync_soon  # type: ignore[attr-defined]
    return run_sync_soon


def _is_asyncio() -> bool:
    return isinstance(
        anyio.lowlevel.current_token().native_token, asyncio.AbstractEventLoop
    )


@final
class Subscription:
    """A subscription made by `NatsConn.subscribe`; `await unsubscribe()`."""

    __slots__ = ("_closed", "_conn", "_send", "_sub", "subject")

    def __init__(
        self,
        conn: NatsConn,
        subject: str,
        sub: _NatsSub,
        send: MemoryObjectSendStream[tuple[str, str, bytes]] | None,
    ) -> None:
        self._conn = conn
        self.subject: str = subject
        self._sub = sub
        self._send = send
        self._closed = False

    async def unsubscribe(self) -> None:
        """Stop receiving messages (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._send is not None:
            self._send.close()
        if self._conn._nc is None:
            return  # the connection is closed: nothing to undo
        with contextlib.suppress(nats.errors.Error):
            await self._conn._run(self._sub.unsubscribe)


@final
class NatsConn:
    """A nats-py connection for asyncio and trio alike.

    ```py
    async with NatsConn("nats://127.0.0.1:4222") as conn:
        await conn.publish("greetings", b"hello")
    ```

    `threaded=None` (the default) picks direct mode under asyncio and
    threaded mode under trio; `True` forces the thread on asyncio too.
    `options` go to `nats.connect` (callbacks there run in nats-py's loop).
    Use a connection from the event loop that opened it. `conn.mach` tracks
    it: `Connected`, `Disconnected`, `Closed` (`ConnStates`), and nats-py's
    reported errors as the `Exception` state.
    """

    def __init__(
        self,
        servers: str | list[str] = DEFAULT_SERVERS,
        *,
        threaded: bool | None = None,
        **options: Any,
    ) -> None:
        self.servers = servers
        self._want_thread = threaded
        self._options = options
        self.mach: am.Machine = am.Machine(CONN_SCHEMA, id=f"nats-conn-{id(self):x}")
        self._nc: NatsClient | None = None
        self._owned = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._acquired = False
        self._tg: anyio.abc.TaskGroup | None = None
        self._soon: Callable[..., object] | None = None
        self._outbox: collections.deque[tuple[str, bytes]] = collections.deque()
        self._draining = False
        self._drain_task: asyncio.Future[None] | None = None

    @classmethod
    def from_client(cls, nc: NatsClient) -> NatsConn:
        """Wrap a connected nats-py client of the running asyncio loop.

        The wrapper does not close `nc`; `conn.mach` stays empty (nats-py
        takes its callbacks at connect time).
        """
        if not _is_asyncio():
            raise TypeError(
                "a nats-py client runs on asyncio only: under trio, open a "
                "NatsConn, which runs nats-py in an asyncio thread"
            )
        conn = cls(threaded=False)
        conn._nc = nc
        conn._owned = False
        return conn

    # ------------------------------------------------------------ lifecycle

    @property
    def threaded(self) -> bool:
        """True when nats-py runs in an asyncio loop of its own thread."""
        return self._loop is not None

    @property
    def client(self) -> NatsClient:
        """The nats-py client (it lives in `loop` when threaded)."""
        if self._nc is None:
            raise NatsError("the connection is not open")
        return self._nc

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The asyncio loop of nats-py's thread, None in direct mode."""
        return self._loop

    async def __aenter__(self) -> NatsConn:
        if self._nc is not None:
            raise NatsError("the connection is already open")
        self._soon = _soon_caller(anyio.lowlevel.current_token())
        threaded = self._want_thread
        if threaded is None:
            threaded = not _is_asyncio()
        elif not threaded and not _is_asyncio():
            raise TypeError("nats-py runs on asyncio only: use threaded=True")
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        try:
            if threaded:
                self._loop = await anyio.to_thread.run_sync(_THREAD.acquire)
                self._acquired = True
            options = dict(self._options)
            for name, state in (
                ("disconnected_cb", ConnStates.Disconnected),
                ("reconnected_cb", ConnStates.Connected),
                ("closed_cb", ConnStates.Closed),
            ):
                options[name] = self._state_cb(state, options.get(name))
            options["error_cb"] = self._error_cb(options.get("error_cb"))
            self._nc = await self._run(nats.connect, self.servers, **options)
            self.mach.add1(ConnStates.Connected)
        except BaseException:
            await self._shutdown()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._shutdown()

    async def _shutdown(self) -> None:
        nc = self._nc
        if nc is not None and self._owned:
            with anyio.CancelScope(shield=True), contextlib.suppress(nats.errors.Error):
                await self._run(nc.close)
        self._nc = None
        # the task group was entered outside any scope opened here
        tg, self._tg = self._tg, None
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
        if self._acquired:
            self._acquired = False
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_THREAD.release)
        self._loop = None
        self.mach.add1(ConnStates.Closed)
        self.mach.dispose()

    def _state_cb(
        self, state: str, user_cb: Callable[[], Awaitable[None]] | None
    ) -> Callable[[], Coroutine[Any, Any, None]]:
        async def cb() -> None:
            self._call_soon(self.mach.add1, state)
            if user_cb is not None:
                await user_cb()

        return cb

    def _error_cb(
        self, user_cb: Callable[[Exception], Awaitable[None]] | None
    ) -> Callable[[Exception], Coroutine[Any, Any, None]]:
        async def cb(err: Exception) -> None:
            self._call_soon(self.mach.add_err, err)
            if user_cb is not None:
                await user_cb(err)

        return cb

    def _call_soon(self, fn: Callable[..., object], *args: Any) -> None:
        """Run `fn(*args)` in the connection's (caller's) loop, never blocking."""
        soon = self._soon
        if soon is None:
            return
        if self._loop is None:
            fn(*args)
            return
        # the caller's loop may have ended meanwhile (trio: RunFinishedError)
        with contextlib.suppress(Exception):
            soon(fn, *args)

    async def _run(
        self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kwargs: Any
    ) -> T:
        """Await `fn(*args)` in nats-py's loop (directly or across threads)."""
        loop = self._loop
        if loop is None:
            return await fn(*args, **kwargs)
        cfut = asyncio.run_coroutine_threadsafe(fn(*args, **kwargs), loop)
        return await self._await_cfuture(cfut)

    async def _await_cfuture(self, cfut: concurrent.futures.Future[T]) -> T:
        done = anyio.Event()
        soon = _soon_caller(anyio.lowlevel.current_token())

        def wake(_: object) -> None:
            with contextlib.suppress(Exception):
                soon(done.set)

        cfut.add_done_callback(wake)
        try:
            await done.wait()
        except BaseException:
            cfut.cancel()
            raise
        return cfut.result()

    # ---------------------------------------------------------------- calls

    async def publish(self, subject: str, data: bytes, reply: str = "") -> None:
        """Publish `data` on `subject` (with an optional reply subject)."""
        await self._run(self.client.publish, subject, data, reply)

    async def publish_soon(self, subject: str, data: bytes) -> None:
        """Publish `data`, not waiting for nats-py's thread when threaded.

        Threaded, messages queue up for one drain task in nats-py's loop,
        which publishes them in order; a failure there becomes the
        `Exception` state of `conn.mach`. Direct, this is `publish`.
        """
        loop = self._loop
        if loop is None:
            await self.client.publish(subject, data)
            return
        self._outbox.append((subject, data))
        if not self._draining:
            self._draining = True
            loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        # in nats-py's loop
        self._drain_task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        # in nats-py's loop; cleared first, so that a message queued from
        # now on schedules another drain rather than being missed
        self._draining = False
        outbox, nc = self._outbox, self._nc
        while outbox:
            subject, data = outbox.popleft()
            if nc is None:
                continue
            try:
                await nc.publish(subject, data)
            except Exception as e:
                self._call_soon(self.mach.add_err, e)

    async def request(self, subject: str, data: bytes) -> bytes:
        """Send a request and return the reply's payload.

        The caller's cancel scope bounds the wait (`anyio.fail_after`);
        raises `NoRespondersError` when nobody listens on `subject`.
        """
        return await self._request(subject, data, math.inf)

    async def _request(self, subject: str, data: bytes, limit: float) -> bytes:
        # nats-py needs a timeout; a sooner deadline of the caller's scope
        # cancels the request anyway (reading it here would cost more than
        # the rest of this call on asyncio)
        try:
            msg: _NatsMsg = await self._run(
                self.client.request, subject, data, timeout=limit
            )
        except nats.errors.NoRespondersError:
            raise NoRespondersError(f"no responders on {subject!r}") from None
        except nats.errors.TimeoutError:
            raise NatsTimeoutError(f"no reply on {subject!r} within {limit}s") from None
        return msg.data

    async def flush(self) -> None:
        """Wait until the server has processed everything sent so far."""
        await self._run(_flush, self.client)

    async def subscribe(
        self, subject: str, handler: Handler, *, queue: str = ""
    ) -> Subscription:
        """Call `handler(subject, reply, data)` for each message, in order.

        The handler runs in the caller's event loop, one message at a time:
        start a task from it for anything that may wait.
        """
        if self._loop is None:

            async def cb(msg: _NatsMsg) -> None:
                await handler(msg.subject, msg.reply, msg.data)

            sub = await self.client.subscribe(subject, queue=queue, cb=cb)
            return Subscription(self, subject, sub, None)

        # threaded: nats-py's callback hands each message to the caller's
        # loop without blocking; a pump task there awaits the handler
        send, recv = anyio.create_memory_object_stream[tuple[str, str, bytes]](math.inf)
        soon = _soon_caller(anyio.lowlevel.current_token())
        put = send.send_nowait

        async def tcb(msg: _NatsMsg) -> None:
            with contextlib.suppress(Exception):
                soon(_put_quietly, put, (msg.subject, msg.reply, msg.data))

        assert self._tg is not None
        self._tg.start_soon(_pump, recv, handler)
        try:
            sub = await self._run(self.client.subscribe, subject, queue=queue, cb=tcb)
        except BaseException:
            send.close()
            raise
        return Subscription(self, subject, sub, send)


async def _flush(nc: NatsClient) -> None:
    # nats-py writes its PING straight to the socket, ahead of commands
    # (SUB, PUB) still queued for its flusher task, so one PONG does not
    # prove the server has them. The flusher runs before the PONG can be
    # read, so a second PING goes out after them.
    await nc.flush()
    await nc.flush()


def _put_quietly(
    put: Callable[[tuple[str, str, bytes]], None], item: tuple[str, str, bytes]
) -> None:
    with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
        put(item)


async def _pump(
    recv: MemoryObjectReceiveStream[tuple[str, str, bytes]], handler: Handler
) -> None:
    with recv:
        async for subject, reply, data in recv:
            await handler(subject, reply, data)


def as_conn(conn: NatsConn | NatsClient) -> NatsConn:
    """`conn` itself, or a raw nats-py client wrapped by `NatsConn.from_client`."""
    if isinstance(conn, NatsConn):
        return conn
    if isinstance(conn, NatsClient):
        return NatsConn.from_client(conn)
    raise TypeError(
        f"expected a NatsConn or a nats-py Client, got {type(conn).__name__}"
    )
