"""The debug tracer and its sender: every transition to a collector.

`bind_dbg(mach, addr)` binds a `DebugTracer` whose records go to a
`Sender`: a daemon thread with a bounded queue, so the machine never blocks
or awaits, under asyncio, trio or no loop at all. See docs/debugger.md.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._args import args_log_fields
from .._resolve import change_steps
from .._tracer import Tracer
from ._model import MachineRecord, StepType
from ._wire import VERSION, encode_frame, machine_to_wire

if TYPE_CHECKING:
    from .._runtime import Machine
    from .._transition import Mutation, Transition

__all__ = [
    "DEFAULT_ADDR",
    "DebugTracer",
    "Sender",
    "bind_dbg",
    "close_senders",
    "machine_record",
    "parse_addr",
    "sender_for",
]

DEFAULT_ADDR = "localhost:6831"
"""Where `AM_DBG_ADDR=1` points (Go's default am-dbg port)."""

_SUFFIXES = ("Enter", "Exit", "State", "End")
_HANDLER = int(StepType.HANDLER)
_CANCEL = int(StepType.CANCEL)

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
    __slots__ = ("cur", "logs", "pre_logs", "rec", "steps")

    def __init__(self) -> None:
        self.cur: Transition | None = None
        self.rec: dict[str, Any] | None = None
        self.steps: list[Any] = []
        self.logs: list[list[Any]] = []
        self.pre_logs: list[list[Any]] = []


_MAX_CACHE = 4096


class DebugTracer(Tracer):
    """Captures each transition with its steps and log lines.

    Records go to `emit` as wire messages (`_wire`): a machine record when a
    machine binds, then one message per transition. Inheritable: child
    machines report too. `steps` / `logs` switch steps and log lines off.
    """

    def __init__(self, emit: Emit, *, steps: bool = True, logs: bool = True) -> None:
        self.emit: Emit = emit
        """Where the messages go (a `Sender.send`, or `Session.apply`)."""
        self.steps: bool = steps
        """Record transition steps."""
        self.logs: bool = logs
        """Record log lines."""
        self.sender: Sender | None = None
        """The sender `bind_dbg` created or shared, if any."""
        self._m: dict[str, _MachState] = {}
        self._cache: dict[Any, tuple[Any, Any]] = {}
        self._handler_states: dict[str, str] = {}

    def inheritable(self) -> bool:
        """Child machines report to the same place."""
        return True

    def machine_init(self, machine: Machine) -> None:
        """Send the machine's record and start capturing its log lines."""
        self._m[machine.id] = ms = _MachState()
        msg = machine_to_wire(machine_record(machine))
        msg["t"] = "m"
        self.emit(msg)
        if self.logs:
            old = machine.logger

            def sink(level: Any, text: str) -> None:
                entry = [int(level), text, time.time()]
                tx = machine.transition
                if tx is not None and not tx.is_completed:
                    # this transition's line (maybe logged before its init)
                    ms.logs.append(entry)
                else:
                    ms.pre_logs.append(entry)
                old(level, text)

            machine.logger = sink

    def _plan_steps(self, transition: Transition) -> tuple[Any, Any]:
        # (relation steps, change steps) in wire form, cached per plan
        plan = transition._plan
        got = self._cache.get(plan)
        if got is None:
            if len(self._cache) >= _MAX_CACHE:
                self._cache.clear()
            rel = tuple(
                (int(t), st, src, d) for t, st, src, d in transition.relation_steps()
            )
            ch = tuple(
                (int(t), st, src, d)
                for t, st, src, d in change_steps(plan)  # the applied plan
            )
            got = self._cache[plan] = (rel, ch)
        return got

    def transition_init(self, transition: Transition) -> None:
        """Start a record (relation steps are cached with the plan)."""
        ms = self._m.get(transition.machine.id)
        if ms is None:
            return
        ms.cur = transition
        mut = transition.mutation
        qt = mut.queue_tick
        ms.rec = {
            "id": transition.id,
            "cs": mut.called,
            "mt": str(mut.type),
            "f": (mut.auto and 1) | (mut.is_check and 2) | (qt > 0 and 4),
            "a": args_log_fields(mut.args) if mut.args else {},
            "t0": time.time(),
            "qt": qt,
        }
        ms.steps = list(self._plan_steps(transition)[0]) if self.steps else []

    def handler_start(
        self, transition: Transition, binding_id: str, handler: str
    ) -> None:
        """A HANDLER step."""
        ms = self._m.get(transition.machine.id)
        if ms is None or not self.steps:
            return
        state = self._handler_states.get(handler)
        if state is None:
            state = ""
            for suf in _SUFFIXES:
                if (
                    handler.endswith(suf)
                    and handler[: -len(suf)] in transition.machine.schema
                ):
                    state = handler[: -len(suf)]
                    break
            if len(self._handler_states) >= _MAX_CACHE:
                self._handler_states.clear()
            self._handler_states[handler] = state
        ms.steps.append((_HANDLER, state, "", handler))

    def transition_end(self, transition: Transition) -> None:
        """Finish the record and emit it."""
        mach = transition.machine
        ms = self._m.get(mach.id)
        rec = ms.rec if ms is not None else None
        if ms is None or rec is None or ms.cur is not transition:
            return
        ok = transition.is_accepted
        rec["ok"] = ok
        steps = ms.steps
        if self.steps:
            if not ok and steps and steps[-1][0] == _HANDLER:
                # canceled by the last handler called
                last = steps[-1]
                steps.append((_CANCEL, last[1], "", last[3]))
            if ok and not transition.mutation.is_check:
                steps.extend(self._plan_steps(transition)[1])
        rec["s"] = steps
        rec["c"] = list(mach.time())
        rec["l"] = ms.logs
        rec["pl"] = ms.pre_logs
        rec["t1"] = time.time()
        rec["mt2"] = mach.machine_tick
        ms.logs, ms.pre_logs, ms.steps = [], [], []
        ms.cur = ms.rec = None
        self.emit({"t": "x", "m": mach.id, "x": rec})

    def mutation_queued(self, machine: Machine, mutation: Mutation) -> None:
        """Not recorded (a queued mutation shows as its transition)."""

    def machine_dispose(self, machine_id: str) -> None:
        """Tell the collector the machine is gone."""
        if self._m.pop(machine_id, None) is not None:
            self.emit({"t": "d", "m": machine_id})


class Sender:
    """Sends messages to a collector from a daemon thread; never blocks.

    `send` puts a message on a bounded queue (`max_queue`); a full queue
    drops it and counts it in `dropped` (per machine in `dropped_by`). The
    thread connects, sends, and on any error reconnects with exponential
    backoff (to `max_backoff` seconds), resending the machine records first
    and then the drop counts. It never gives up; `close()` stops it.
    """

    def __init__(
        self, addr: str, *, max_queue: int = 10_000, max_backoff: float = 2.0
    ) -> None:
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
        self.sent: int = 0
        """Messages sent."""
        self.max_backoff: float = max_backoff
        """The longest wait between reconnects, in seconds."""
        self._q: queue.Queue[dict[str, Any] | None] = queue.Queue(max_queue)
        self._machines: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reported: dict[str, int] = {}
        self._thread = threading.Thread(
            target=self._loop, name=f"am-dbg-sender-{self.addr[1]}", daemon=True
        )
        self._thread.start()

    def send(self, msg: dict[str, Any]) -> None:
        """Queue `msg` without blocking (machine records are also kept)."""
        t = msg.get("t")
        if t == "m":
            with self._lock:
                self._machines[msg["id"]] = msg
        elif t == "d":
            with self._lock:
                self._machines.pop(msg["m"], None)
        try:
            self._q.put_nowait(msg)
        except queue.Full:
            mid = str(msg.get("m", msg.get("id", "")))
            with self._lock:
                self.dropped += 1
                self.dropped_by[mid] = self.dropped_by.get(mid, 0) + 1

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the queue is empty (True) or `timeout` passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._q.unfinished_tasks == 0:
                return True
            self._stop.wait(0.005)
        return False

    def close(self) -> None:
        """Stop the thread (queued messages are sent if connected)."""
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._q.put_nowait(None)
        self._thread.join(5)

    def _hello(self, sock: socket.socket) -> None:
        with self._lock:
            records = list(self._machines.values())
            counts = dict(self.dropped_by)
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
            try:
                sock = socket.create_connection(self.addr, timeout=5)
            except OSError:
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._hello(sock)
                self.connects += 1
                self.disconnected.clear()
                self.connected.set()
                backoff = 0.05
                self._pump(sock)
            except OSError:
                pass
            finally:
                self.connected.clear()
                self.disconnected.set()
                sock.close()

    def _pump(self, sock: socket.socket) -> None:
        q = self._q
        while True:
            msg = q.get()
            # let a batch gather: fewer wake-ups, less GIL contention
            self._stop.wait(0.002)
            batch = [msg]
            while len(batch) < 4096:
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
            stop = any(m is None for m in batch)
            msgs = [m for m in batch if m is not None]
            with self._lock:
                counts = {
                    k: v
                    for k, v in self.dropped_by.items()
                    if self._reported.get(k) != v
                }
                self._reported.update(counts)
            # the collector never writes: a readable socket is a closed one
            readable, _, _ = select.select([sock], [], [], 0)
            closed = bool(readable) and not sock.recv(1, socket.MSG_PEEK)
            frames = [
                encode_frame({"t": "c", "m": k, "n": v}) for k, v in counts.items()
            ]
            frames += [encode_frame(m) for m in msgs]
            try:
                if closed:
                    raise ConnectionResetError("the collector closed the connection")
                sock.sendall(b"".join(frames))
            except OSError:
                # the batch is lost: count its transitions as dropped
                with self._lock:
                    for m in msgs:
                        if m.get("t") == "x":
                            mid = str(m["m"])
                            self.dropped += 1
                            self.dropped_by[mid] = self.dropped_by.get(mid, 0) + 1
                for _ in batch:
                    q.task_done()
                raise
            self.sent += len(msgs)
            for _ in batch:
                q.task_done()
            if stop or self._stop.is_set():
                return


def _key(addr: str) -> str:
    host, port = parse_addr(addr)
    return f"{host}:{port}"


_SENDERS: dict[str, Sender] = {}
_SENDERS_LOCK = threading.Lock()


def bind_dbg(
    mach: Machine,
    addr: str | None = None,
    *,
    steps: bool = True,
    logs: bool = True,
) -> DebugTracer | None:
    """Report `mach` (and its children) to the am-dbg collector at `addr`.

    `addr` defaults to the `AM_DBG_ADDR` environment variable (`1` means
    localhost:6831); with neither, nothing is bound and None is returned.
    One `Sender` thread is shared per address. See docs/debugger.md.
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
    tracer = DebugTracer(sender.send, steps=steps, logs=logs)
    tracer.sender = sender
    mach.bind_tracer(tracer)
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
