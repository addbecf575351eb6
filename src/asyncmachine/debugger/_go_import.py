"""Import sessions recorded by Go's am-dbg (`.gob.br` export files).

Go's am-dbg exports a session as brotli over one gob value: a list of
exported clients, each a machine's schema message (id, state index, schema,
groups, parent, tags) and its transition messages (id, clocks after, called
states, mutation type, result, flags, steps, log lines, args, time). The gob
stream describes its own types, so `decode_gob` reads it without Go's
structs; this module maps the decoded values onto the debugger's model.

What is mapped and what is not: docs/debugger.md, "Go sessions".
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

from ._gob import GobDecodeError, GobInterface, decode_gob, go_time
from ._model import LogEntry, MachineRecord, Session, Step, StepType, TransitionRecord

__all__ = ["GoImportError", "read_go_session"]


class GoImportError(ValueError):
    """Input that is not a Go am-dbg export; the message says what and where."""


# Go's am.StepType is a bit flag per kind
_GO_RELATION, _GO_HANDLER, _GO_SET, _GO_REMOVE = 1, 2, 4, 8
_GO_REMOVE_PASSIVE, _GO_REQUESTED, _GO_CANCEL = 16, 32, 64
# Go's am.Relation: After, Add, Require, Remove
_GO_RELATIONS = {
    0: StepType.AFTER,
    1: StepType.IMPLIED,
    2: StepType.BLOCKED,
    3: StepType.REMOVED,
}
# Go's am.MutationType (3 is Go's internal eval)
_GO_MUTATIONS = {0: "add", 1: "remove", 2: "set", 3: "eval"}
_SCHEMA_LISTS = (("Require", "require"), ("Add", "add"), ("Remove", "remove"))
_SCHEMA_LISTS2 = (("After", "after"), ("Tags", "tags"))

MAX_SIZE = 1 << 30
"""The most bytes a compressed export may decompress to (gob's own limit for
one message; Go's am-dbg writes an export as one message)."""
PASSIVE = "passive"
"""`Step.data` of a REMOVE step for a state that was already inactive (Go's
StepRemoveNotActive: the state is dropped from the transition)."""


def read_go_session(
    source: str | os.PathLike[str] | bytes, max_memory: int = 0, name: str = ""
) -> Session:
    """Read a session exported by Go's am-dbg.

    Args:
        source: a path to a `.gob.br` file, or its bytes. Brotli-compressed
            and plain gob streams are both read.
        max_memory: the new session's memory cap (`Session.max_memory`).
        name: what error messages call the input (defaults to the path).

    Returns:
        A session with one disconnected machine per exported client.

    Raises:
        GoImportError: for a file that is not brotli over gob, a gob stream
            that is truncated or corrupt, or values that are not am-dbg's
            export structs (the message names the machine and transition).
        OSError: when the file cannot be read.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        where, raw = name or "Go session", bytes(source)
    else:
        where, raw = name or str(source), Path(source).read_bytes()
    data = _decompress(raw, where)
    try:
        values = decode_gob(data)
    except GobDecodeError as exc:
        raise GoImportError(f"{where}: damaged gob stream: {exc}") from exc
    if not values:
        raise GoImportError(f"{where}: empty (no exported machines)")
    session = Session(max_memory=max_memory)
    for value in values:
        if not isinstance(value, list):
            raise GoImportError(
                f"{where}: expected a list of exported machines, "
                f"got {type(value).__name__}"
            )
        for i, exp in enumerate(value):
            try:
                _import_client(session, exp)
            except GoImportError as exc:
                raise GoImportError(f"{where}: client {i}: {exc}") from exc
            except (TypeError, ValueError, AttributeError, KeyError) as exc:
                raise GoImportError(
                    f"{where}: client {i}: not an am-dbg export: {exc!r}"
                ) from exc
    return session


def _decompress(raw: bytes, where: str) -> bytes:
    """Brotli-decompress `raw`, or return it when it is a plain gob stream."""
    try:
        import brotli  # type: ignore[import-untyped]
    except ImportError as exc:
        if _looks_like_gob(raw):
            return raw
        raise GoImportError(
            f"{where}: reading brotli-compressed Go am-dbg exports needs the "
            "brotli package (pip install 'asyncmachine[debugger]')"
        ) from exc
    try:
        return _brotli_bounded(brotli, raw, where)
    except brotli.error as exc:
        if _looks_like_gob(raw):
            return raw
        raise GoImportError(
            f"{where}: not a Go am-dbg export (neither brotli nor gob): {exc}"
        ) from exc


def _brotli_bounded(brotli: Any, raw: bytes, where: str) -> bytes:
    """Decompress, refusing more than MAX_SIZE bytes of output."""
    dec = brotli.Decompressor()
    step = 1 << 24
    parts = [dec.process(raw, output_buffer_limit=step)]
    size = len(parts[0])
    while not dec.can_accept_more_data():
        if size > MAX_SIZE:
            raise GoImportError(f"{where}: decompresses to more than {MAX_SIZE} bytes")
        parts.append(dec.process(b"", output_buffer_limit=step))
        size += len(parts[-1])
    if size > MAX_SIZE:
        raise GoImportError(f"{where}: decompresses to more than {MAX_SIZE} bytes")
    if not dec.is_finished():
        raise brotli.error("truncated brotli stream")
    return b"".join(parts)


def _looks_like_gob(raw: bytes) -> bool:
    # a gob stream opens with a message defining type 65 or later: its length,
    # then the negative type id (a signed int, so 0xff then an odd byte >= 0x81)
    i = 1 if raw[:1] and raw[0] < 0x80 else 1 + (256 - raw[0] if raw else 0)
    return len(raw) > i + 1 and raw[i] == 0xFF and raw[i + 1] >= 0x81


def _struct(v: Any, what: str) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise GoImportError(f"{what}: expected a struct, got {type(v).__name__}")
    return v


def _strs(v: Any, what: str) -> list[str]:
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise GoImportError(f"{what}: expected a list of strings")
    return list(v)


def _ints(v: Any, what: str) -> list[int]:
    if v is None:
        return []
    if not isinstance(v, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) for n in v
    ):
        raise GoImportError(f"{what}: expected a list of integers")
    return list(v)


def _int(v: Any, what: str) -> int:
    if v is None:
        return 0
    if isinstance(v, GobInterface):
        v = v.value
    if not isinstance(v, int) or isinstance(v, bool):
        raise GoImportError(f"{what}: expected an integer, got {type(v).__name__}")
    return v


def _bool(v: Any, what: str) -> bool:
    if v is None:
        return False
    if not isinstance(v, bool):
        raise GoImportError(f"{what}: expected a bool, got {type(v).__name__}")
    return v


def _str(v: Any, what: str) -> str:
    if v is None:
        return ""
    if isinstance(v, GobInterface):
        v = v.value
    if not isinstance(v, str):
        raise GoImportError(f"{what}: expected a string, got {type(v).__name__}")
    return v


def _time(v: Any, what: str) -> float:
    if v is None:
        return 0.0
    if isinstance(v, bytes):
        try:
            v = go_time(v)
        except GobDecodeError as exc:
            raise GoImportError(f"{what}: {exc}") from exc
    if not isinstance(v, _dt.datetime):
        raise GoImportError(f"{what}: expected a time, got {type(v).__name__}")
    if v.year <= 1:
        return 0.0  # Go's zero time
    return v.timestamp()


def _schema(raw: Any, mid: str) -> dict[str, dict[str, Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise GoImportError(f"machine {mid}: States is not a map")
    out: dict[str, dict[str, Any]] = {}
    for name, st in raw.items():
        what = f"machine {mid}: state {name!r}"
        st = _struct(st, what)
        rel: dict[str, Any] = {}
        for go, ours in (*_SCHEMA_LISTS, *_SCHEMA_LISTS2):
            vals = _strs(st.get(go), f"{what}: {go}")
            if vals:
                rel[ours] = vals
        if _bool(st.get("Auto"), f"{what}: Auto"):
            rel["auto"] = True
        if _bool(st.get("Multi"), f"{what}: Multi"):
            rel["multi"] = True
        out[str(name)] = rel
    return out


def _groups(ms: dict[str, Any], states: list[str], mid: str) -> dict[str, list[str]]:
    raw = ms.get("Groups")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise GoImportError(f"machine {mid}: Groups is not a map")
    order = _strs(ms.get("GroupsOrder"), f"machine {mid}: GroupsOrder")
    names = [g for g in order if g in raw] + sorted(
        str(g) for g in raw if g not in order
    )
    out: dict[str, list[str]] = {}
    for g in names:
        idxs = _ints(raw[g], f"machine {mid}: group {g!r}")
        bad = [i for i in idxs if not 0 <= i < len(states)]
        if bad:
            raise GoImportError(
                f"machine {mid}: group {g!r}: state index {bad[0]} out of range "
                f"({len(states)} states)"
            )
        out[g] = [states[i] for i in idxs]
    return out


def _logs(raw: Any, what: str) -> list[LogEntry]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise GoImportError(f"{what}: expected a list of log entries")
    out = []
    for e in raw:
        e = _struct(e, what)
        out.append(LogEntry(_int(e.get("Level"), what), _str(e.get("Text"), what)))
    return out


def _state_ref(st: dict[str, Any], key: str, states: list[str], what: str) -> str:
    name = _str(st.get(key), f"{what}: {key}")
    if name:
        return name
    # newer Go versions may send only an index; an absent one is unknown (a
    # zero index is indistinguishable from an absent field in gob)
    idx = st.get(key + "Idx")
    if isinstance(idx, int) and 0 < idx < len(states):
        return states[idx]
    return ""


def _handler_name(st: dict[str, Any], frm: str, to: str, what: str) -> str:
    data = st.get("Data")
    if data is not None:
        return _str(data, f"{what}: Data")
    # newer Go versions leave the name to the flags
    state = to or frm
    if st.get("IsSelf"):
        return state + state
    if st.get("IsFinal"):
        return state + ("State" if st.get("IsEnter") else "End")
    if frm and to and frm != to:
        return frm + to
    return state + ("Enter" if st.get("IsEnter") else "Exit")


def _step(st: dict[str, Any], states: list[str], what: str) -> Step:
    kind = _int(st.get("Type"), what)
    frm = _state_ref(st, "FromState", states, what)
    to = _state_ref(st, "ToState", states, what)
    if kind == _GO_RELATION:
        rel_raw = st.get("RelType")
        if rel_raw is None:
            rel_raw = st.get("Data")  # older versions: the relation in Data
        rel = _int(rel_raw, what)
        stype = _GO_RELATIONS.get(rel)
        if stype is None:
            raise GoImportError(f"{what}: unknown relation {rel}")
        if stype in (StepType.IMPLIED, StepType.REMOVED, StepType.AFTER):
            # FROM adds / removes TO; TO goes after FROM
            return Step(stype, to, frm)
        return Step(stype, frm, to)  # FROM requires TO
    if kind == _GO_HANDLER:
        name = _handler_name(st, frm, to, what)
        state = frm if frm and name.startswith(frm) else (to or frm)
        return Step(StepType.HANDLER, state, "", name)
    state = to or frm
    if kind == _GO_SET:
        return Step(StepType.SET, state)
    if kind == _GO_REMOVE:
        return Step(StepType.REMOVE, state)
    if kind == _GO_REMOVE_PASSIVE:
        return Step(StepType.REMOVE, state, "", PASSIVE)
    if kind == _GO_REQUESTED:
        return Step(StepType.REQUESTED, state)
    if kind == _GO_CANCEL:
        return Step(StepType.CANCEL, state)
    raise GoImportError(f"{what}: unknown step type {kind}")


def _args(raw: Any, what: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise GoImportError(f"{what}: Args is not a map")
    return {str(k): str(v) for k, v in raw.items()}


def _tx(raw: Any, states: list[str], mid: str, n: int) -> TransitionRecord:
    tx = _struct(raw, f"machine {mid}: transition {n}")
    tid = _str(tx.get("ID"), f"machine {mid}: transition {n}: ID")
    what = f"machine {mid}: transition {n} ({tid})"
    clocks = _ints(tx.get("Clocks"), f"{what}: Clocks")
    if "CalledStates" in tx:
        called = _strs(tx["CalledStates"], f"{what}: CalledStates")
    else:
        idxs = _ints(tx.get("CalledStatesIdxs"), f"{what}: CalledStatesIdxs")
        bad = [i for i in idxs if not 0 <= i < len(states)]
        if bad:
            raise GoImportError(f"{what}: called state index {bad[0]} out of range")
        called = [states[i] for i in idxs]
    mtype = _int(tx.get("Type"), f"{what}: Type")
    mutation = _GO_MUTATIONS.get(mtype)
    if mutation is None:
        raise GoImportError(f"{what}: unknown mutation type {mtype}")
    steps_raw = tx.get("Steps") or []
    if not isinstance(steps_raw, list):
        raise GoImportError(f"{what}: Steps is not a list")
    steps = [
        _step(_struct(s, f"{what}: step {i}"), states, f"{what}: step {i}")
        for i, s in enumerate(steps_raw)
    ]
    return TransitionRecord(
        id=tid,
        clocks=clocks,
        called=called,
        mutation=mutation,
        accepted=_bool(tx.get("Accepted"), f"{what}: Accepted"),
        is_auto=_bool(tx.get("IsAuto"), f"{what}: IsAuto"),
        is_check=_bool(tx.get("IsCheck"), f"{what}: IsCheck"),
        is_queued=_bool(tx.get("IsQueued"), f"{what}: IsQueued"),
        steps=steps,
        logs=_logs(tx.get("LogEntries"), f"{what}: LogEntries"),
        pre_logs=_logs(tx.get("PreLogEntries"), f"{what}: PreLogEntries"),
        args=_args(tx.get("Args"), what),
        time=_time(tx.get("Time"), f"{what}: Time"),
        queue_tick=_int(tx.get("QueueTick"), f"{what}: QueueTick"),
    )


def _import_client(session: Session, exp: Any) -> None:
    exp = _struct(exp, "client")
    if "MsgStruct" not in exp:
        raise GoImportError("no MsgStruct (the machine's schema message)")
    ms = _struct(exp["MsgStruct"], "MsgStruct")
    mid = _str(ms.get("ID"), "MsgStruct.ID")
    if not mid:
        raise GoImportError("MsgStruct without a machine ID")
    states = _strs(ms.get("StatesIndex"), f"machine {mid}: StatesIndex")
    txs_raw = exp.get("MsgTxs") or []
    if not isinstance(txs_raw, list):
        raise GoImportError(f"machine {mid}: MsgTxs is not a list")
    rec = MachineRecord(
        id=mid,
        states=states,
        schema=_schema(ms.get("States"), mid),
        groups=_groups(ms, states, mid),
        parent_id=_str(ms.get("Parent"), f"machine {mid}: Parent"),
        tags=_strs(ms.get("Tags"), f"machine {mid}: Tags"),
        connected=False,
    )
    txs = [_tx(t, states, mid, n) for n, t in enumerate(txs_raw)]
    old = session.machines.get(mid)
    if old is None:
        rec.transitions = txs
        session.add_machine(rec)
    else:
        # the same machine exported twice (e.g. relay rotations): keep both
        session.add_machine(rec)
        old.connected = False
        for tx in txs:
            session.add_transition(mid, tx)
