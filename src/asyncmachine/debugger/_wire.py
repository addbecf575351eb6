"""The debug stream's messages and frames (docs/debugger.md, "Wire format").

A connection is a sequence of frames: a 4-byte big-endian length, then a
msgpack map. The first frame is the hello `{"t": "h", "v": VERSION}`; then
machine records (`"m"`), transitions (`"x"`, one map each; `"X"`, a batch
of flat arrays, see `tx_from_raw`; `"Y"`, one machine's records in threes,
see `expand_short`), drop counts (`"c"`) and disposals (`"d"`), in any
order, a machine's record before its transitions.
"""

from __future__ import annotations

import os
import struct
from typing import Any

import msgpack  # type: ignore[import-untyped]

from ._model import LogEntry, MachineRecord, Step, StepType, TransitionRecord

__all__ = [
    "MAX_FRAME",
    "VERSION",
    "TxIds",
    "apply_deltas",
    "encode_frame",
    "expand_short",
    "machine_from_wire",
    "machine_to_wire",
    "packb",
    "tx_from_raw",
    "tx_from_wire",
    "tx_to_wire",
]

VERSION = 4
"""Version of the wire format (2 added `"X"` batches, 3 relative clock
deltas in them, 4 plan descriptions and short records); a collector reads
versions 1 to 4 and refuses others."""
VERSIONS = (1, 2, 3, 4)
"""The versions a collector reads."""
MAX_FRAME = 16 * 1024 * 1024
"""The largest frame a collector accepts, in bytes."""

_LEN = struct.Struct(">I")


def encode_frame(msg: dict[str, Any]) -> bytes:
    """One length-prefixed msgpack frame."""
    body: bytes = msgpack.packb(msg, use_bin_type=True)
    return _LEN.pack(len(body)) + body


def _logs_to_wire(logs: list[LogEntry]) -> list[list[Any]]:
    return [[e.level, e.text, e.time] for e in logs]


def _logs_from_wire(raw: list[list[Any]]) -> list[LogEntry]:
    return [LogEntry(int(lv), str(t), float(ts)) for lv, t, ts in raw]


def tx_to_wire(tx: TransitionRecord) -> dict[str, Any]:
    """A transition record as a msgpack-able map."""
    return {
        "id": tx.id,
        "c": tx.clocks,
        "cs": tx.called,
        "mt": tx.mutation,
        "ok": tx.accepted,
        "f": (tx.is_auto and 1) | (tx.is_check and 2) | (tx.is_queued and 4),
        "s": [[int(s.type), s.state, s.source, s.data] for s in tx.steps],
        "l": _logs_to_wire(tx.logs),
        "pl": _logs_to_wire(tx.pre_logs),
        "a": tx.args,
        "t0": tx.time,
        "t1": tx.time_end,
        "qt": tx.queue_tick,
        "mt2": tx.machine_tick,
    }


def tx_from_wire(raw: dict[str, Any]) -> TransitionRecord:
    """The inverse of `tx_to_wire` (ValueError/KeyError on a malformed map)."""
    flags = int(raw["f"])
    return TransitionRecord(
        id=str(raw["id"]),
        clocks=[int(c) for c in raw["c"]],
        called=[str(s) for s in raw["cs"]],
        mutation=str(raw["mt"]),
        accepted=bool(raw["ok"]),
        is_auto=bool(flags & 1),
        is_check=bool(flags & 2),
        is_queued=bool(flags & 4),
        steps=[
            Step(StepType(int(t)), str(s), str(src), str(d))
            for t, s, src, d in raw["s"]
        ],
        logs=_logs_from_wire(raw["l"]),
        pre_logs=_logs_from_wire(raw["pl"]),
        args={str(k): str(v) for k, v in raw["a"].items()},
        time=float(raw["t0"]),
        time_end=float(raw["t1"]),
        queue_tick=int(raw["qt"]),
        machine_tick=int(raw["mt2"]),
    )


_SUFFIXES = ("Enter", "Exit", "State", "End")


def _handler_state(handler: str, states: frozenset[str] | set[str]) -> str:
    for suf in _SUFFIXES:
        if handler.endswith(suf) and handler[: -len(suf)] in states:
            return handler[: -len(suf)]
    return ""


def packb(obj: Any) -> bytes:
    """`obj` as msgpack bytes (the packing every frame uses)."""
    out: bytes = msgpack.packb(obj, use_bin_type=True)
    return out


_STEP_TYPES = {int(t): t for t in StepType}
_BLOBS: dict[bytes, Any] = {}


def _steps(raw: Any) -> list[Step]:
    return [Step(_STEP_TYPES[int(t)], str(s), str(src), str(d)) for t, s, src, d in raw]


def _blob(b: bytes, plan: bool) -> Any:
    # plan blobs repeat: unpack each once, into shared Step objects (bounded)
    got = _BLOBS.get(b)
    if got is None:
        if len(_BLOBS) >= 4096:
            _BLOBS.clear()
        raw = msgpack.unpackb(b, raw=False)
        if plan:
            called, mtype, rel = raw
            got = ([str(s) for s in called], str(mtype), _steps(rel))
        else:
            got = _steps(raw)
        _BLOBS[b] = got
    return got


def tx_from_raw(
    raw: list[Any] | tuple[Any, ...],
    states: frozenset[str] | set[str],
    clocks: list[int] | None = None,
) -> TransitionRecord:
    """A transition from the flat array the tracer captures (`"X"` batches).

    Fields, in order: machine id, transition id, the plan blob, the change
    blob (or nil), flags (1 auto, 2 check, 4 queued), args (or nil), start
    and end time, queue tick, machine tick, accepted, clocks, handler names
    (or nil), log lines (or nil), pre-log lines (or nil). The plan blob is
    msgpack bytes of `[called states, mutation type, relation steps]`, the
    change blob of `[change steps]` (packed once per resolution plan). Steps
    are `[type, state, source, data]`, log lines `[level, text, time]`. A
    handler's state is derived from its name and `states`; a canceled
    transition's last handler gets a CANCEL step. The clocks field is an
    array of every tick, or a map `{state index: tick}` of the ticks that
    may have changed (machines of many states), or bytes: msgpack of
    `[[state index, delta], ...]` to add to the machine's last clock (a
    transition in which no handler ran: its plan's deltas). Pass the
    resolved `clocks` for the last two (`apply_message` keeps the last clock
    of each machine, `apply_deltas` resolves the bytes).
    """
    (
        _mid,
        tid,
        plan,
        changes,
        flags,
        args,
        t0,
        t1,
        qt,
        mt2,
        ok,
        raw_clocks,
        handlers,
        logs,
        pre_logs,
    ) = raw
    called, mtype, rel = _blob(plan, True)
    steps = list(rel)
    if handlers:
        hs = [(_handler_state(str(h), states), str(h)) for h in handlers]
        steps += [Step(StepType.HANDLER, st, "", h) for st, h in hs]
        if not ok:
            # canceled by the last handler called
            steps.append(Step(StepType.CANCEL, hs[-1][0], "", hs[-1][1]))
    if changes is not None:
        steps += _blob(changes, False)
    flags = int(flags)
    return TransitionRecord(
        id=str(tid),
        clocks=clocks if clocks is not None else [int(c) for c in raw_clocks],
        called=list(called),
        mutation=mtype,
        accepted=bool(ok),
        is_auto=bool(flags & 1),
        is_check=bool(flags & 2),
        is_queued=bool(flags & 4),
        steps=steps,
        logs=_logs_from_wire(logs or []),
        pre_logs=_logs_from_wire(pre_logs or []),
        args={str(k): str(v) for k, v in (args or {}).items()},
        time=float(t0),
        time_end=float(t1),
        queue_tick=int(qt),
        machine_tick=int(mt2),
    )


def expand_short(
    raw: list[Any] | tuple[Any, ...],
    plans: dict[int, tuple[bytes, bytes | None, bytes]] | None,
    machine_tick: int,
) -> tuple[Any, ...]:
    """A short record `[machine id, plan id, start time, queue tick]` as the
    flat array `tx_from_raw` reads (ValueError for an undescribed plan).

    A `"Y"` message `{"m": machine id, "r": items}` holds one machine's
    records in order, three items each: `plan id, start time, queue tick`
    (an accepted transition in which no handler ran, without args, recorded
    by the core itself), `nil, record, nil` with a flat array of
    `tx_from_raw` or a plan's description `[machine id, plan id, plan blob,
    change blob, clock deltas]`, which comes before the short records that
    name it (`plans` maps the machine's plan ids to the three blobs), or
    `code, text, time`, a log line of the next transition (code `-1 - 2 *
    level`) or logged before it (`-2 - 2 * level`). A short record's id is
    made here, its end time is its start time, its machine tick the
    machine's last one."""
    mid, rid, t0, qt = raw
    got = plans.get(int(rid)) if plans is not None else None
    if got is None:
        raise ValueError(f"a transition of {mid!r} names an undescribed plan {rid!r}")
    plan, changes, deltas = got
    return (
        mid,
        _IDS.take(),
        plan,
        changes,
        0,
        None,
        t0,
        t0,
        qt,
        machine_tick,
        True,
        deltas,
        None,
        None,
        None,
    )


class TxIds:
    """Transition ids, 16 hex characters each, cut from a batch of random
    bytes (cheaper than one `os.urandom` call per id). One per thread."""

    __slots__ = ("_buf", "_i")

    def __init__(self) -> None:
        self._buf = ""
        self._i = 0

    def take(self) -> str:
        """The next id."""
        i = self._i
        if i >= len(self._buf):
            self._buf = os.urandom(2048).hex()
            i = 0
        self._i = i + 16
        return self._buf[i : i + 16]


_IDS = TxIds()  # the collector's, for short records (one loop)


_DELTAS: dict[bytes, list[tuple[int, int]]] = {}


def apply_deltas(clocks: list[int], blob: bytes) -> None:
    """Add the packed relative clock deltas `blob` (see `tx_from_raw`) to
    `clocks`, in place."""
    deltas = _DELTAS.get(blob)
    if deltas is None:
        # per resolution plan: unpacked once (bounded)
        if len(_DELTAS) >= 4096:
            _DELTAS.clear()
        deltas = _DELTAS[blob] = [(int(i), int(d)) for i, d in msgpack.unpackb(blob)]
    for i, d in deltas:
        clocks[i] += d


def machine_to_wire(m: MachineRecord, transitions: bool = False) -> dict[str, Any]:
    """A machine record (its transitions too, if asked) as a map."""
    out: dict[str, Any] = {
        "id": m.id,
        "states": m.states,
        "schema": m.schema,
        "groups": m.groups,
        "parent": m.parent_id,
        "tags": m.tags,
    }
    if transitions:
        out["connected"] = m.connected
        out["dropped"] = m.dropped
        out["dropped_cap"] = m.dropped_cap
        out["txs"] = [tx_to_wire(t) for t in m.transitions]
        out["logs"] = _logs_to_wire(m.logs)
    return out


def machine_from_wire(raw: dict[str, Any]) -> MachineRecord:
    """The inverse of `machine_to_wire`."""
    return MachineRecord(
        id=str(raw["id"]),
        states=[str(s) for s in raw["states"]],
        schema={str(k): dict(v) for k, v in raw["schema"].items()},
        groups={str(k): [str(s) for s in v] for k, v in raw["groups"].items()},
        parent_id=str(raw["parent"]),
        tags=[str(t) for t in raw["tags"]],
        connected=bool(raw.get("connected", True)),
        dropped=int(raw.get("dropped", 0)),
        dropped_cap=int(raw.get("dropped_cap", 0)),
        transitions=[tx_from_wire(t) for t in raw.get("txs", ())],
        logs=_logs_from_wire(raw.get("logs", [])),
    )
