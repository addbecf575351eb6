"""The collector: accepts debug streams and keeps them in a `Session`.

Runs in any anyio app (asyncio or trio): `async with Collector(addr) as c:`
listens in the background; `await c.serve()` listens until canceled. See
docs/debugger.md.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import msgpack  # type: ignore[import-untyped]

from ._model import LogEntry, Session
from ._tracer import parse_addr
from ._wire import (
    MAX_FRAME,
    VERSION,
    VERSIONS,
    apply_deltas,
    expand_short,
    machine_from_wire,
    tx_from_raw,
    tx_from_wire,
)

__all__ = ["Collector", "apply_message"]

_LEN = struct.Struct(">I")
_MAX_PLANS = 8192
"""Plan descriptions kept per machine (a tracer describes its plans again
after each batch it sends)."""


def apply_message(
    session: Session, msg: dict[str, Any], seen: set[str] | None = None
) -> None:
    """Apply one wire message to `session` (ValueError on a bad one).

    `seen` collects the machine ids the message names (the collector marks
    them disconnected when their connection closes).
    """
    t = msg.get("t")
    if t == "m":
        rec = machine_from_wire(msg)
        session.add_machine(rec)
        if seen is not None:
            seen.add(rec.id)
    elif t == "x":
        mid = str(msg["m"])
        if mid not in session.machines:
            raise ValueError(f"transition of unknown machine {mid!r}")
        tx = tx_from_wire(msg["x"])
        session._clocks[mid] = tx.clocks
        session.add_transition(mid, tx)
    elif t == "X":
        states: dict[str, frozenset[str]] = {}
        for raw in msg["xs"]:
            mid = str(raw[0])
            st = states.get(mid)
            if st is None:
                st = states[mid] = _states(session, mid)
            _apply_raw(session, mid, st, raw)
    elif t == "Y":
        mid = str(msg["m"])
        st = _states(session, mid)
        items = msg["r"]
        if len(items) % 3:
            raise ValueError(f"records of {mid!r} not in threes")
        for i in range(0, len(items), 3):
            rid = items[i]
            if rid is None:
                _apply_raw(session, mid, st, items[i + 1])
            elif rid < 0:  # a log line: -1 - 2 * level - (1: of no transition)
                code = -1 - int(rid)
                lines = session._lines.get(mid)
                if lines is None:
                    lines = session._lines[mid] = ([], [])
                lines[code & 1].append(
                    LogEntry(code >> 1, str(items[i + 1]), float(items[i + 2]))
                )
            else:
                raw = expand_short(
                    (mid, rid, items[i + 1], items[i + 2]),
                    session._plans.get(mid),
                    session._mt2.get(mid, 0),
                )
                _apply_raw(session, mid, st, raw)
    elif t == "c":
        mach = session.machines.get(str(msg["m"]))
        if mach is not None:
            mach.dropped = int(msg["n"])
            session.version += 1
    elif t == "l":
        session.add_log(
            str(msg["m"]), LogEntry(int(msg["l"]), str(msg["x"]), float(msg["ts"]))
        )
    elif t == "d":
        mach = session.machines.get(str(msg["m"]))
        if mach is not None:
            mach.connected = False
            session.version += 1
    elif t == "h":
        if msg.get("v") not in VERSIONS:
            raise ValueError(
                f"debug stream version {msg.get('v')!r}, this collector reads "
                f"versions {VERSIONS[0]} to {VERSION}"
            )
    else:
        raise ValueError(f"unknown debug message type {t!r}")


def _states(session: Session, mid: str) -> frozenset[str]:
    mach = session.machines.get(mid)
    if mach is None:
        raise ValueError(f"transition of unknown machine {mid!r}")
    return frozenset(mach.states)


def _apply_raw(
    session: Session, mid: str, st: frozenset[str], raw: list[Any] | tuple[Any, ...]
) -> None:
    # one flat record (see tx_from_raw), or a resolution plan's description
    # `[machine id, plan id, plan blob, change blob, clock deltas]`
    if len(raw) == 5:
        tab = session._plans.get(mid)
        if tab is None:
            tab = session._plans[mid] = {}
        elif len(tab) >= _MAX_PLANS:
            tab.clear()
        tab[int(raw[1])] = (raw[2], raw[3], raw[4])
        return
    session._mt2[mid] = int(raw[9])
    delta = raw[11]
    if isinstance(delta, (dict, bytes)):
        # a clock delta: on top of the machine's last clock
        base = session._clocks.get(mid)
        if base is None:
            raise ValueError(f"a clock delta of {mid!r} without its clock")
        clocks = list(base)
        if isinstance(delta, bytes):
            apply_deltas(clocks, delta)
        else:
            for i, tick in delta.items():
                clocks[int(i)] = int(tick)
    else:
        clocks = [int(c) for c in delta]
    session._clocks[mid] = clocks
    tx = tx_from_raw(raw, st, clocks)
    lines = session._lines.pop(mid, None)
    if lines is not None:
        tx.logs[:0] = lines[0]
        tx.pre_logs[:0] = lines[1]
    session.add_transition(mid, tx)


class Collector:
    """Accepts any number of machines' debug streams into `session`.

    `addr` is `host:port` (port 0 picks a free one: read `port` once
    listening). `max_memory` caps the session (bytes, 0 = none).
    `on_change` is called after each batch of messages. `errors` counts the
    connections closed for a malformed stream.
    """

    def __init__(
        self,
        addr: str = "localhost:6831",
        *,
        session: Session | None = None,
        max_memory: int = 0,
        on_change: Callable[[Session], None] | None = None,
    ) -> None:
        self.host, self.port = parse_addr(addr)
        self.session: Session = session if session is not None else Session()
        """The store every stream lands in."""
        if max_memory:
            self.session.max_memory = max_memory
        self.on_change: Callable[[Session], None] | None = on_change
        """Called after each batch of applied messages."""
        self.clients: int = 0
        """Connected clients now."""
        self.errors: int = 0
        """Connections closed for a malformed stream."""
        self.listening: anyio.Event = anyio.Event()
        self._tg: anyio.abc.TaskGroup | None = None

    port: int
    """The port listened on (the real one once `listening` is set)."""
    host: str
    """The host listened on."""

    async def serve(self) -> None:
        """Listen and collect until canceled."""
        listener = await anyio.create_tcp_listener(
            local_host=self.host, local_port=self.port, reuse_port=False
        )
        sock = listener.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
        self.port = int(sock)
        self.listening.set()
        async with listener:
            await listener.serve(self._handle)

    async def __aenter__(self) -> Collector:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self.serve)
        await self.listening.wait()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        return await self._tg.__aexit__(exc_type, exc, tb)

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        self.clients += 1
        seen: set[str] = set()
        buf = bytearray()
        session = self.session
        try:
            async with stream:
                while True:
                    try:
                        data = await stream.receive(65536)
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        return
                    buf += data
                    changed = False
                    while len(buf) >= 4:
                        (n,) = _LEN.unpack_from(buf)
                        if n > MAX_FRAME:
                            raise ValueError(f"debug frame of {n} bytes")
                        if len(buf) < 4 + n:
                            break
                        # int map keys: clock deltas ({state index: tick})
                        msg = msgpack.unpackb(
                            bytes(buf[4 : 4 + n]), raw=False, strict_map_key=False
                        )
                        del buf[: 4 + n]
                        if not isinstance(msg, dict):
                            raise ValueError("debug frame is not a map")
                        apply_message(session, msg, seen)
                        changed = True
                    if changed and self.on_change is not None:
                        self.on_change(session)
        except (ValueError, KeyError, IndexError, TypeError, msgpack.UnpackException):
            self.errors += 1
        finally:
            self.clients -= 1
            for mid in seen:
                mach = session.machines.get(mid)
                if mach is not None:
                    mach.connected = False
            session.version += 1
