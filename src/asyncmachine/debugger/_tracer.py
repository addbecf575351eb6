"""The debug tracer and its sender: every transition to a collector.

`bind_dbg(mach, addr)` binds a `DebugTracer` whose records go to a
`Sender`: a daemon thread with a bounded queue, so the machine never blocks
or awaits, under asyncio, trio or no loop at all. See docs/debugger.md.
"""

from __future__ import annotations

import collections
import functools
import math
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

from .._args import args_log_fields
from .._export import _TICKS
from .._resolve import change_steps, relation_steps
from .._tracer import Tracer
from .._types import MutationType, StepType
from ._model import MachineRecord
from ._wire import (
    VERSION,
    TxIds,
    encode_frame,
    machine_to_wire,
    packb,
    tx_from_raw,
    tx_to_wire,
)

if TYPE_CHECKING:
    from .._runtime import Machine
    from .._transition import Mutation, Transition

__all__ = [
    "DEFAULT_ADDR",
    "DebugTracer",
    "NetworkMachine",
    "Sender",
    "bind_dbg",
    "close_senders",
    "machine_record",
    "parse_addr",
    "sender_for",
]

DEFAULT_ADDR = "localhost:6831"
"""Where `AM_DBG_ADDR=1` points (Go's default am-dbg port)."""

Emit = Callable[[dict[str, Any]], None]


def parse_addr(addr: str) -> tuple[str, int]:
    """`host:port` (or `1` for the default) as a (host, port) pair."""
    if addr == "1":
        addr = DEFAULT_ADDR
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"debugger address must be host:port, got {addr!r}")
    return host or "localhost", int(port)


def machine_record(mach: Machine) -> MachineRecord:
    """A machine's schema, groups, parent and tags, as the debugger keeps them."""
    schema: dict[str, dict[str, Any]] = {}
    for name, st in mach.schema.items():
        rel: dict[str, Any] = {}
        for key in ("require", "add", "remove", "after", "tags"):
            val = getattr(st, key)
            if val:
                rel[key] = list(val)
        if st.auto:
            rel["auto"] = True
        if st.multi:
            rel["multi"] = True
        schema[name] = rel
    groups = getattr(mach, "groups", None)
    return MachineRecord(
        id=mach.id,
        states=list(mach.state_names),
        schema=schema,
        groups={str(k): list(v) for k, v in groups.items()}
        if isinstance(groups, dict)
        else {},
        parent_id=mach.parent_id,
        tags=list(mach.tags),
    )


class _MachState:
    __slots__ = (
        "big",
        "buf",
        "cur",
        "full",
        "gen",
        "handlers",
        "ids",
        "live",
        "logs",
        "mid",
        "mt2",
        "plan0",
        "pre_logs",
        "rid",
        "rids",
        "states",
        "t0",
    )

    def __init__(self, mid: str, states: frozenset[str]) -> None:
        self.mid = mid
        self.states = states
        self.cur: Transition | None = None
        self.plan0: Any = None
        self.t0 = 0.0
        self.handlers: list[str] | None = None
        self.logs: list[tuple[int, str, float]] = []
        self.pre_logs: list[tuple[int, str, float]] = []
        # transition ids, from a batch of random bytes (per machine: one
        # thread)
        self.ids = TxIds()
        # clock deltas (docs/debugger.md, "Cost"), bound to a Sender: the
        # plan's deltas without a Transition; with one, the ticks of the
        # plan's states for machines of more than _DELTA_MIN states (`big`);
        # `full` asks for a whole clock
        self.big = False
        self.full = True
        self.mt2 = 0
        # the sender's batch generation of the last whole clock (Sender._gen)
        self.gen = -1
        # the core's fast path (Machine._rec_fast, docs/debugger.md, "Cost"):
        # ids of the resolution plans described to the collector (`rids`,
        # from the counter `rid`), and those usable until the sender takes
        # its next batch (`live`, cleared then, after a drop or a log line)
        self.rids: dict[Any, int] = {}
        self.rid = 0
        self.live: dict[Any, int] = {}
        # bound to a Sender: this machine's records, in order, 3 items each:
        # (plan id, start time, queue tick) from the core's fast path, or
        # (None, a record or a plan's description, None) from the tracer; the
        # sender takes them from the front (docs/debugger.md, "Cost")
        self.buf: list[Any] = []


_MAX_CACHE = 4096
_now = time.time
_DELTA_MIN = 32
"""Machines with more states send clock deltas (bound to a Sender)."""
_REMOVE = int(StepType.REMOVE)
_SET = int(StepType.SET)
# the machine ticks' own dict: empty (no machine ever imported) is the fast
# case, without WeakKeyDictionary's Python-level lookup
_TICKS_DATA: dict[Any, int] = _TICKS.data  # type: ignore[attr-defined]
_MTYPES = {t: str(t) for t in MutationType}
# clock deltas of a transition that changed no tick (packed `[]`)
_SAME = packb([])
# (machine id, start time, transition id) of the last transition recorded
# without a Transition (DebugTracer._record)
_LAST_ID: list[tuple[str, float, str]] = [("", 0.0, "")]


class DebugTracer(Tracer):
    """Captures each transition with its steps and log lines.

    Records go to `emit` as wire messages (`_wire`): a machine record when a
    machine binds, then one message per transition. Inheritable: child
    machines report too. `steps` / `logs` switch steps and log lines off.
    `groups` names groups of states for the machine record: a mapping, or a
    `FooGroups` class of `asyncmachine.states` (groups naming a state the
    machine lacks are left out).

    Bound to a `Sender` (`emit` is its `send`, as with `bind_dbg`), a
    transition costs one flat tuple of plain values on the sender's queue,
    its steps and clock deltas pre-packed once per resolution plan; the
    sender's thread packs the tuples in batches. A transition in which no
    handler runs builds no `Transition`: the core calls `_record` instead
    (docs/debugger.md, "Cost").
    """

    def __init__(
        self,
        emit: Emit,
        *,
        steps: bool = True,
        logs: bool = True,
        groups: Any = None,
    ) -> None:
        self.emit: Emit = emit
        """Where the messages go (a `Sender.send`, or `apply_message`)."""
        self.steps: bool = steps
        """Record transition steps."""
        self.logs: bool = logs
        """Record log lines."""
        self.groups: dict[str, list[str]] = _groups(groups)
        """Named groups of states, sent with each machine's record."""
        self.sender: Sender | None = None
        """The sender `bind_dbg` created or shared, if any."""
        self._m: dict[str, _MachState] = {}
        # the machine's state while only one machine is bound (the common
        # case): no lookup by id
        self._one: _MachState | None = None
        # per resolution plan: (called, type and relation steps), the change
        # steps and the clock deltas, each msgpack-packed once
        self._cache: dict[Any, tuple[bytes, bytes | None, bytes]] = {}
        owner = getattr(emit, "__self__", None)
        if isinstance(owner, Sender) and getattr(emit, "__func__", None) is (
            Sender.send
        ):
            self.sender = owner
        # records without a Sender: `emit`, one "x" message each
        self._push: Callable[[tuple[Any, ...]], None] = self._emit_raw
        self._snd: Sender | None = self.sender

    def inheritable(self) -> bool:
        """Child machines report to the same place."""
        return True

    def machine_init(self, machine: Machine) -> None:
        """Send the machine's record and start capturing its log lines."""
        rec = machine_record(machine)
        if self.groups:
            have = set(rec.states)
            rec.groups = {
                k: v for k, v in self.groups.items() if all(s in have for s in v)
            }
        self._m[machine.id] = ms = _MachState(machine.id, frozenset(rec.states))
        self._one = ms if len(self._m) == 1 else None
        ms.big = self._snd is not None and len(rec.states) > _DELTA_MIN
        if self._snd is not None:
            with self._snd._lock:
                self._snd._ms[id(ms)] = ms
        msg = machine_to_wire(rec)
        msg["t"] = "m"
        self.emit(msg)
        if self.logs:
            old = machine.logger
            now = time.time

            snd = self._snd
            if snd is not None:
                buf = ms.buf

                def to_buf(level: Any, text: str) -> None:
                    # in order with the records: (-1 - 2 * level - 0 for a
                    # line of the transition that runs or 1 for one of none,
                    # text, time); see `expand_short`
                    if len(buf) < snd._cap:
                        code = -1 - 2 * level
                        if ms.cur is None and not machine._rec_t0:
                            code -= _line_kind(machine)
                        buf.extend((code, text, now()))
                    else:
                        snd.dropped_logs += 1
                    old(level, text)

                machine.logger = to_buf
                return

            def sink(level: Any, text: str) -> None:
                if ms.cur is not None or machine._rec_t0:
                    # this transition's line (maybe logged before its init;
                    # _rec_t0: one without a Transition runs)
                    ms.logs.append((level, text, now()))
                else:
                    tx = machine.transition
                    if tx is not None and not tx.is_completed:
                        ms.logs.append((level, text, now()))
                    else:
                        ms.pre_logs.append((level, text, now()))
                old(level, text)

            machine.logger = sink

    def _plan_blobs(
        self, machine: Machine, plan: Any
    ) -> tuple[bytes, bytes | None, bytes]:
        if len(self._cache) >= _MAX_CACHE:
            self._cache.clear()
        if self.steps:
            rel: Any = [
                (int(t), st, src, d)
                for t, st, src, d in relation_steps(machine._cs, plan)
            ]
            ch: bytes | None = packb(
                [(int(t), st, src, d) for t, st, src, d in change_steps(plan)]
            )
        else:
            rel, ch = (), None
        index = machine._index
        got = self._cache[plan] = (
            packb((plan.called, _MTYPES[plan.mtype], rel)),
            ch,
            packb([(index[n], d) for n, d in plan.changes]),
        )
        return got

    def transition_init(self, transition: Transition) -> None:
        """Note the start (relation steps come from the plan, cached)."""
        ms = self._one or self._m.get(transition.machine.id)
        if ms is not None:
            ms.cur = transition
            ms.plan0 = transition._plan
            ms.handlers = None
            ms.t0 = _now()

    def handler_start(
        self, transition: Transition, binding_id: str, handler: str
    ) -> None:
        """A HANDLER step (its state is derived by the reader)."""
        if self.steps:
            ms = self._one or self._m.get(transition.machine.id)
            if ms is not None and ms.cur is transition:
                h = ms.handlers
                if h is None:
                    ms.handlers = [handler]
                else:
                    h.append(handler)

    def transition_end(self, transition: Transition) -> None:
        """Finish the record (see `_record`)."""
        mach = transition.machine
        ms = self._one or self._m.get(mach.id)
        if ms is None or ms.cur is not transition:
            return
        ms.cur = None
        tid = transition._id
        if not tid:
            tid = transition._id = ms.ids.take()
        hs = ms.handlers
        if hs is not None:
            ms.handlers = None
        self._record(
            mach,
            ms.plan0,
            transition._plan,
            transition._args,
            transition.mutation,
            transition.is_accepted,
            ms.t0,
            tid,
            hs,
        )

    def _record(
        self,
        mach: Machine,
        plan0: Any,
        plan: Any,
        args: dict[str, Any],
        mut: Mutation | None,
        ok: bool,
        t0: float,
        tid: str | None = None,
        hs: list[str] | None = None,
    ) -> None:
        """One flat tuple to the sender; the core calls it directly at the end
        of a transition that built no `Transition` (`Tracer._record`), and
        `transition_end` for one that did."""
        ms = self._one or self._m.get(mach.id)
        if ms is None:
            return
        got = self._cache.get(plan0) or self._plan_blobs(mach, plan0)
        if mut is None:
            flags = 0
            qt = mach._p
            check = False
        else:
            check = mut.is_check
            # never 4 (queued): as in Go, that flag marks a record of a
            # mutation put in the queue, not a transition that ran
            # (docs/debugger.md)
            flags = (mut.auto and 1) | (check and 2)
            qt = mut.queue_tick
        if not ok or check:
            ch = None
            fin = None
        elif plan is plan0:
            fin = got
            ch = got[1]
        else:  # negotiation or Auto states changed the plan
            fin = self._cache.get(plan) or self._plan_blobs(mach, plan)
            ch = fin[1]
        lg: list[tuple[int, str, float]] | None = ms.logs
        if lg:
            ms.logs = []
        else:
            lg = None
        pl: list[tuple[int, str, float]] | None = ms.pre_logs
        if pl:
            ms.pre_logs = []
        else:
            pl = None
        bare = tid is None  # no Transition: no handler ran
        if bare:
            # no Transition holds the id: every recorder of this transition
            # gets the same `t0` object, and the last id given out (holding
            # that object, whose identity stays unique) is shared
            last = _LAST_ID[0]
            if last[1] is t0 and last[0] == ms.mid:
                tid = last[2]
            else:
                tid = ms.ids.take()
                _LAST_ID[0] = (ms.mid, t0, tid)
        mt2 = _TICKS.get(mach, 0) if _TICKS_DATA else 0
        snd = self._snd
        if snd is None:
            clocks: Any = tuple(mach._ticks.values())
        elif (
            ms.full
            or ms.gen != snd._gen
            or mt2 != ms.mt2
            or (snd._skip and ms.mid in snd._skip)
        ):
            clocks = tuple(mach._ticks.values())
            ms.full = False
            ms.mt2 = mt2
            ms.gen = snd._gen
        elif bare:
            # no handler ran: the plan's deltas moved the ticks, and nothing
            # else (docs/debugger.md, "Cost")
            clocks = _SAME if fin is None else fin[2]
        elif not ms.big:
            clocks = tuple(mach._ticks.values())
        elif check:
            clocks = {}
        else:
            # every tick a transition changes is one of its plan's (applied,
            # or undone by a panic); unapplied ones repeat the current tick
            ticks = mach._ticks
            index = mach._index
            clocks = {index[n]: ticks[n] for n, _, _ in plan.apply}
        rec = (
            ms.mid,
            tid,
            got[0],
            ch,
            flags,
            args_log_fields(args) if args else None,
            t0,
            _now(),
            qt,
            mt2,
            ok,
            clocks,
            hs,
            lg,
            pl,
        )
        if not self._put(ms, rec) or snd is None:
            return
        if fin is got and not check and len(mach._recs) == 1:
            # the collector knows this machine's clock: let the core record
            # the next transitions of this plan itself, once described
            # (docs/debugger.md, "Cost")
            live = ms.live
            if plan0 not in live:
                rid = ms.rids.get(plan0)
                if rid is None:
                    if len(ms.rids) >= _MAX_CACHE:
                        ms.rids.clear()
                    rid = ms.rids[plan0] = ms.rid
                    ms.rid += 1
                ms.buf += (None, (ms.mid, rid, got[0], got[1], got[2]), None)
                live[plan0] = rid
            if mach._rec_fast is None:
                buf = ms.buf
                mach._rec_fast = (live.get, buf.extend, buf, snd._cap)

    def _remote(
        self, mirror: Machine, changes: tuple[tuple[str, int], ...], qt: int
    ) -> None:
        # a network machine's clock push, as a SET of the states active after
        ms = self._m.get(mirror.id)
        if ms is None:
            return
        now = time.time()
        steps = [(_REMOVE, s, "", "") for s, t in changes if not t & 1]
        steps += [(_SET, s, "", "") for s, t in changes if t & 1]
        pl = ms.pre_logs or None
        ms.pre_logs = []
        self._put(
            ms,
            (
                ms.mid,
                ms.ids.take(),
                packb((list(mirror.active_states), "set", [])),
                packb(steps if self.steps else []),
                0,  # not a queued-mutation record (see transition_end)
                None,
                now,
                now,
                qt,
                0,
                True,
                tuple(mirror._ticks.values()),
                None,
                None,
                pl,
            ),
        )

    def _put(self, ms: _MachState, rec: tuple[Any, ...]) -> bool:
        # a record from the tracer: to the machine's buffer (bound to a
        # Sender; False if full: dropped) or to `emit`
        snd = self._snd
        if snd is None:
            self._push(rec)
            return True
        if len(ms.buf) >= snd._cap:
            snd._drop(ms.mid)
            ms.full = True  # the collector missed a delta
            ms.live.clear()
            return False
        ms.buf += (None, rec, None)
        if snd._idle:
            snd._idle = False
            snd._wake.set()
        return True

    def _emit_raw(self, raw: tuple[Any, ...]) -> None:
        # not bound to a Sender: hand `emit` a plain "x" message
        ms = self._m.get(raw[0])
        states = ms.states if ms is not None else frozenset()
        self.emit({"t": "x", "m": raw[0], "x": tx_to_wire(tx_from_raw(raw, states))})

    def machine_dispose(self, machine_id: str) -> None:
        """Tell the collector the machine is gone."""
        ms = self._m.pop(machine_id, None)
        if ms is not None:
            if self._snd is not None:
                self._snd._release(ms)
            self._one = next(iter(self._m.values())) if len(self._m) == 1 else None
            self.emit({"t": "d", "m": machine_id})


def _line_kind(machine: Machine) -> int:
    # 0: a line of the transition that runs (a Transition's, maybe logged
    # before its init), 1: of none (the cases of DebugTracer's `sink`)
    tx = machine.transition
    return 0 if tx is not None and not tx.is_completed else 1


def _groups(groups: Any) -> dict[str, list[str]]:
    """A mapping or a `FooGroups` class as `{name: [state, ...]}`."""
    if groups is None:
        return {}
    if isinstance(groups, Mapping):
        items = list(groups.items())
    elif isinstance(groups, type):
        items = [
            (k, v)
            for k, v in vars(groups).items()
            if not k.startswith("_") and isinstance(v, (list, tuple))
        ]
    else:
        raise TypeError(
            f"groups must be a mapping or a Groups class, got {type(groups).__name__}"
        )
    out: dict[str, list[str]] = {}
    for k, v in items:
        if isinstance(v, str) or not all(isinstance(s, str) for s in v):
            raise TypeError(f"group {k!r} must be a list of state names")
        out[str(k)] = list(v)
    return out


_BATCH = 512


def _closed(sock: socket.socket) -> bool:
    # the collector never writes: a readable socket is a closed one
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and not sock.recv(1, socket.MSG_PEEK)
    except OSError:  # reset
        return True


def _backoff(value: float) -> float:
    # a zero, negative or NaN backoff would make the reconnect loop spin
    if not 0 < value < math.inf:
        raise ValueError(f"max_backoff must be a positive number, got {value!r}")
    return float(value)


class Sender:
    """Sends messages to a collector from a daemon thread; never blocks.

    `send` puts a message on a bounded queue (`max_queue`), and each bound
    machine's transitions and log lines wait in a buffer of twice that; a
    full one drops transitions and counts them in `dropped` (per machine in
    `dropped_by`), log lines in `dropped_logs`. The
    thread connects, sends, and on any error reconnects with exponential
    backoff (to `max_backoff` seconds), resending the machine records first
    and then the drop counts. It never gives up; `close()` stops it. See
    docs/debugger.md, "When the collector dies".
    `max_queue` must be at least 1, `max_backoff` positive (ValueError).
    """

    def __init__(
        self, addr: str, *, max_queue: int = 10_000, max_backoff: float = 2.0
    ) -> None:
        self._cap = 0
        self.max_queue = max_queue  # validated first
        self.addr: tuple[str, int] = parse_addr(addr)
        """The collector's (host, port)."""
        self.dropped: int = 0
        """Messages dropped: the queue was full (collector away or slow)."""
        self.dropped_by: dict[str, int] = {}
        """Dropped transitions per machine id."""
        self.connected: threading.Event = threading.Event()
        """Set while connected."""
        self.disconnected: threading.Event = threading.Event()
        """Set while not connected."""
        self.disconnected.set()
        self.connects: int = 0
        """How many times it connected."""
        self.attempts: int = 0
        """Connection attempts, failed ones included (`max_backoff` paces them)."""
        self.sent: int = 0
        """Messages and buffer entries (transitions, log lines, plan
        descriptions) sent."""
        self.dropped_logs: int = 0
        """Log lines dropped: their machine's buffer was full."""
        self._max_backoff = _backoff(max_backoff)
        # messages (maps) and the records of disposed machines, (machine id,
        # buffer items): a deque, appends are atomic and cheap; the thread
        # sleeps on _wake only when idle (docs/debugger.md, "Cost")
        self._q: collections.deque[Any] = collections.deque()
        self._idle = False
        self._busy = False
        # machines whose transitions were lost in a failed send: their
        # clock deltas are dropped (and counted) until a whole clock passes
        self._skip: set[str] = set()
        # batches taken: a machine's first record after each sends a whole
        # clock (DebugTracer._record)
        self._gen = 0
        # the bound machines (DebugTracer's state of each, under _lock):
        # their buffers are taken with each batch, and the plans their core
        # may record itself (`live`) cleared, so that each machine's next
        # record is a whole clock
        self._ms: dict[int, _MachState] = {}
        self._wake = threading.Event()
        self._machines: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reported: dict[str, int] = {}
        self._thread = threading.Thread(
            target=self._loop, name=f"am-dbg-sender-{self.addr[1]}", daemon=True
        )
        self._thread.start()

    @property
    def max_queue(self) -> int:
        """The bound of the message queue; each machine's buffer holds twice
        as many entries (transitions, log lines, plan descriptions). Settable
        (at least 1: ValueError)."""
        return self._max_queue

    @max_queue.setter
    def max_queue(self, value: int) -> None:
        if value < 1:
            raise ValueError(f"max_queue must be at least 1, got {value!r}")
        self._max_queue = value
        # a machine's buffer bound, in items: entries of 3 items each
        self._cap = 6 * value

    @property
    def max_backoff(self) -> float:
        """The longest wait between reconnects, in seconds; settable (positive,
        finite: ValueError); later waits use it."""
        return self._max_backoff

    @max_backoff.setter
    def max_backoff(self, value: float) -> None:
        self._max_backoff = _backoff(value)

    def _drop(self, mid: str) -> None:
        with self._lock:
            self.dropped += 1
            self.dropped_by[mid] = self.dropped_by.get(mid, 0) + 1

    def _release(self, ms: _MachState) -> None:
        # a machine is gone: its records wait in the queue, before its "d"
        with self._lock:
            self._ms.pop(id(ms), None)
            buf = ms.buf
            n = len(buf)
            if n:
                self._q.append((ms.mid, buf[:n]))
                del buf[:n]

    def send(self, msg: dict[str, Any]) -> None:
        """Queue `msg` without blocking (machine records are also kept)."""
        t = msg.get("t")
        if t == "m":
            with self._lock:
                self._machines[msg["id"]] = msg
        elif t == "d":
            with self._lock:
                self._machines.pop(msg["m"], None)
        if len(self._q) >= self.max_queue:
            self._drop(str(msg.get("m", msg.get("id", ""))))
            return
        self._q.append(msg)
        if self._idle:
            self._idle = False
            self._wake.set()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the queue and every machine's buffer are empty and sent
        (True) or `timeout` passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._q and not self._busy and not self._pending():
                return True
            self._stop.wait(0.005)
        return False

    def close(self) -> None:
        """Stop the thread (queued messages are sent if connected)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(5)

    def _hello(self, sock: socket.socket) -> None:
        with self._lock:
            records = list(self._machines.values())
            counts = dict(self.dropped_by)
        # a new connection may be a new collector, without the clocks that
        # deltas build on: every machine (each may send deltas, see
        # DebugTracer._record) starts with a whole clock
        self._skip.update(m["id"] for m in records)
        for ms in list(self._ms.values()):
            ms.live.clear()
        data = [encode_frame({"t": "h", "v": VERSION, "pid": os.getpid()})]
        data += [encode_frame(m) for m in records]
        data += [
            encode_frame({"t": "c", "m": mid, "n": n})
            for mid, n in counts.items()
            if mid in self._machines
        ]
        sock.sendall(b"".join(data))
        self._reported = counts

    def _loop(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            self.attempts += 1
            try:
                sock = socket.create_connection(self.addr, timeout=5)
            except OSError:
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            sent = self.sent
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._hello(sock)
                self.connects += 1
                self.disconnected.clear()
                self.connected.set()
                self._pump(sock)
            except OSError:
                pass
            finally:
                self.connected.clear()
                self.disconnected.set()
                sock.close()
            if self.sent != sent:
                backoff = 0.05
            else:
                # closed before a batch went through (a collector refusing
                # the stream, say): no reconnecting at once, in a loop
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    def _pending(self) -> bool:
        # whether a bound machine has records waiting
        return any(ms.buf for ms in list(self._ms.values()))

    def _take(self, sock: socket.socket) -> list[Any]:
        """Wait for messages (or a stop) and take a batch: the queue's maps
        and the records of disposed machines, then the buffered records of
        every machine, as (machine id, buffer items). While idle, a closed
        connection raises (to reconnect before the next message)."""
        q = self._q
        while not q and not self._pending():
            if self._stop.is_set():
                return []
            self._idle = True
            if q or self._pending():
                self._idle = False
                break
            woken = self._wake.wait(0.5)
            self._wake.clear()
            self._idle = False
            if not woken and _closed(sock):
                raise ConnectionResetError("the collector closed the connection")
        # let a batch gather: fewer wake-ups, less GIL contention
        self._stop.wait(0.005)
        self._busy = True
        pop = q.popleft
        # each batch starts with a whole clock of each machine, so a batch
        # kept over a reconnect has a base for its deltas (docs/debugger.md,
        # "When the collector dies"). Under the lock, no machine is disposed
        # meanwhile: the queue holds each machine's record before its
        # buffered transitions, and a disposed one's last ones before its "d"
        with self._lock:
            self._gen += 1
            bufs = []
            for ms in self._ms.values():
                ms.live.clear()
                buf = ms.buf
                n = len(buf)  # whole records: the core adds 3 items at once
                if n:
                    bufs.append((ms.mid, buf[:n]))
                    del buf[:n]
            batch = [pop() for _ in range(len(q))]
        batch += bufs
        return batch

    def _keep(self, mid: str, items: list[Any]) -> list[Any]:
        # a machine whose transitions were lost: its records up to its next
        # whole clock are deltas without a base, dropped (and counted)
        skip = self._skip
        out: list[Any] = []
        for i in range(0, len(items), 3):
            first, rec = items[i], items[i + 1]
            # short records and records with clock deltas wait for a whole
            # clock; lines and plan descriptions pass
            if mid in skip and _is_record(first, rec):
                if first is not None or type(rec[11]) is not tuple:
                    self._drop(mid)
                    continue
                skip.discard(mid)
            out += items[i : i + 3]
        return out

    def _pump(self, sock: socket.socket) -> None:
        while True:
            batch = self._take(sock)
            if not batch:
                self._busy = False
                return  # stopped
            if _closed(sock):
                # nothing of this batch was sent: it goes first once
                # reconnected (messages and disposed machines' records in
                # the queue; the others' before what they buffered since)
                self._requeue(batch)
                self._busy = False
                raise ConnectionResetError("the collector closed the connection")
            with self._lock:
                counts = {
                    k: v
                    for k, v in self.dropped_by.items()
                    if self._reported.get(k) != v
                }
                self._reported.update(counts)
            frames = [
                encode_frame({"t": "c", "m": k, "n": v}) for k, v in counts.items()
            ]
            skip = self._skip
            out: list[Any] = []
            for m in batch:
                if type(m) is not tuple:
                    frames.append(encode_frame(m))
                    out.append(m)
                    continue
                mid, items = m
                if skip and mid in skip:
                    items = self._keep(mid, items)
                frames += [
                    encode_frame({"t": "Y", "m": mid, "r": items[i : i + 3 * _BATCH]})
                    for i in range(0, len(items), 3 * _BATCH)
                ]
                out.append((mid, items))
            try:
                sock.sendall(b"".join(frames))
            except OSError:
                # the batch is lost: count its transitions as dropped
                with self._lock:
                    for m in out:
                        if type(m) is not tuple:
                            if m.get("t") == "x":
                                mid = str(m.get("m"))
                                self.dropped += 1
                                self.dropped_by[mid] = self.dropped_by.get(mid, 0) + 1
                            continue
                        mid, items = m
                        n = _transitions(items)
                        if n:
                            self.dropped += n
                            self.dropped_by[mid] = self.dropped_by.get(mid, 0) + n
                            skip.add(mid)
                self._busy = False
                raise
            self.sent += sum(len(m[1]) // 3 if type(m) is tuple else 1 for m in out)
            self._busy = False
            if self._stop.is_set() and not self._q and not self._pending():
                return

    def _requeue(self, batch: list[Any]) -> None:
        # an unsent batch, back in front of what came since: the queue's
        # part to the queue, each machine's records before its buffer
        with self._lock:
            back = []
            for m in batch:
                if type(m) is tuple:
                    ms = next((x for x in self._ms.values() if x.mid == m[0]), None)
                    if ms is not None:
                        ms.buf[:0] = m[1]
                        continue
                back.append(m)
            self._q.extendleft(reversed(back))


def _is_record(first: Any, second: Any) -> bool:
    # whether a buffer entry is a transition: a short record (a plan id
    # first) or a flat record (None first), not a log line (a negative code
    # first) or a plan's description (None, then 5 fields)
    if first is None:
        return len(second) == 15
    return bool(first >= 0)


def _transitions(items: list[Any]) -> int:
    # transitions in buffer items
    return sum(1 for i in range(0, len(items), 3) if _is_record(items[i], items[i + 1]))


def _key(addr: str) -> str:
    host, port = parse_addr(addr)
    return f"{host}:{port}"


_SENDERS: dict[str, Sender] = {}
_SENDERS_LOCK = threading.Lock()


class NetworkMachine(Protocol):
    """An aRPC client's network machine (`asyncmachine.rpc.NetMachine`), as
    `bind_dbg` sees it."""

    _mirror: Machine
    _observers: list[Callable[[tuple[tuple[str, int], ...], int], None]]

    @property
    def id(self) -> str:
        """The network machine's id."""


def bind_dbg(
    mach: Machine | NetworkMachine,
    addr: str | None = None,
    *,
    steps: bool = True,
    logs: bool = True,
    groups: Any = None,
) -> DebugTracer | None:
    """Report `mach` (and its children) to the am-dbg collector at `addr`.

    `addr` defaults to the `AM_DBG_ADDR` environment variable (`1` means
    localhost:6831); with neither, nothing is bound and None is returned.
    One `Sender` thread is shared per address. `groups` names groups of
    states (a mapping or a `FooGroups` class). An aRPC client's network
    machine (`client.net_mach`) reports each clock push it receives as a
    transition. See docs/debugger.md.
    """
    if addr is None:
        addr = os.environ.get("AM_DBG_ADDR", "")
        if not addr:
            return None
    key = _key(addr)
    with _SENDERS_LOCK:
        sender = _SENDERS.get(key)
        if sender is None:
            sender = _SENDERS[key] = Sender(key)
    tracer = DebugTracer(sender.send, steps=steps, logs=logs, groups=groups)
    mirror = getattr(mach, "_mirror", None)
    observers = getattr(mach, "_observers", None)
    if mirror is not None and isinstance(observers, list):
        mirror.bind_tracer(tracer)
        observers.append(functools.partial(tracer._remote, mirror))
    else:
        cast("Machine", mach).bind_tracer(tracer)
    return tracer


def sender_for(addr: str) -> Sender | None:
    """The shared sender of `addr`, if `bind_dbg` started one."""
    return _SENDERS.get(_key(addr))


def close_senders() -> None:
    """Stop every shared sender (tests, and programs shutting down)."""
    with _SENDERS_LOCK:
        senders = list(_SENDERS.values())
        _SENDERS.clear()
    for s in senders:
        s.close()
