"""Importing sessions exported by Go's am-dbg (`.gob.br`).

`data/go/am-dbg-sim.gob.br` is a session recorded by Go's am-dbg, taken from
the Go project's test data under its MIT license (data/go/NOTICE.md). The
checks below hold the import against facts that do not come from our
decoder's reading of the same field: the transition ids found by a plain
byte search, the log lines Go wrote next to the clocks, the schema the
relation steps must follow, and the date the file was recorded. A second,
hand-built export covers the fields of newer Go versions the sim file lacks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import shutil
from pathlib import Path
from typing import Any

import brotli  # type: ignore[import-untyped]
import pytest

from asyncmachine.debugger import (
    GoImportError,
    MachineRecord,
    Step,
    StepType,
    _cli,
    mermaid,
    read_go_session,
    read_session,
    tx_string,
    write_session,
)
from test_gob import (
    encoder_def,
    go_time_bytes,
    i,
    map_def,
    msg,
    s,
    slice_def,
    struct_def,
    u,
)

T = StepType
SIM = Path(__file__).parent / "data" / "go" / "am-dbg-sim.gob.br"


@pytest.fixture(scope="module")
def sim() -> Any:
    return read_go_session(SIM)


def test_sim_machines_and_transitions(sim: Any) -> None:
    assert len(sim.machines) == 107
    first = next(iter(sim.machines.values()))
    assert first.id == "sim-p11"
    assert len(first.states) == 18
    assert len(first.transitions) == 9
    assert all(not m.connected for m in sim.machines.values())
    txs = [tx for m in sim.machines.values() for tx in m.transitions]
    assert len(txs) == 7605
    # every transition struct starts MachineID, then ID: field delta 1, a
    # 32-byte string of hex; found by a byte search, not by the decoder
    raw = brotli.decompress(SIM.read_bytes())
    ids = [m.decode() for m in re.findall(rb"\x01\x20([0-9a-f]{32})", raw)]
    assert ids == [tx.id for tx in txs]


def test_sim_first_transitions(sim: Any) -> None:
    m = sim.machines["sim-p11"]
    assert m.states[:5] == ["Start", "IsDHT", "Ready", "IdentityReady", "GenIdentity"]
    assert m.schema["GenIdentity"] == {"remove": ["IdentityReady"], "auto": True}
    assert m.schema["EventHostConnected"] == {
        "require": ["Start"],
        "add": ["Connected"],
        "multi": True,
    }
    tx0, tx1, tx2 = m.transitions[:3]
    assert tx0.id == "10e277d2878c5b5bab29c10c8b139fce"
    assert (tx0.mutation, tx0.called, tx0.accepted, tx0.is_auto) == (
        "add",
        ["Start"],
        True,
        False,
    )
    assert tx0.clocks == [1] + [0] * 17
    assert tx0.steps == [Step(T.REQUESTED, "Start"), Step(T.SET, "Start")]
    assert [e.text for e in tx0.logs] == [
        "[add] Start",
        "[state] +Start",
        "[auto] GenIdentity Ready Connecting",
    ]
    # the auto transition Go announced in tx0's last log line
    assert tx1.is_auto
    assert tx1.called == ["GenIdentity", "Ready", "Connecting"]
    assert m.clock(1)["GenIdentity"] == 1
    assert tx1.active(m.states) == ["Start", "GenIdentity"]
    assert Step(T.BLOCKED, "Ready", "Connected") in tx1.steps
    assert Step(T.REMOVE, "Ready", "", "passive") in tx1.steps
    assert Step(T.CANCEL, "Connected") in tx1.steps
    assert tx1.steps[-1] == Step(T.HANDLER, "GenIdentity", "", "GenIdentityState")
    assert tx_string(m.id, tx2) == (
        "mach://sim-p11/b28100433115228154b6c6120b9cee57\n"
        "2024-07-22T13:29:29.732471Z\n\n"
        "[add] IdentityReady\n"
        "- called **IdentityReady**\n"
        "- activate **IdentityReady**\n"
        "- **IdentityReady** remove **GenIdentity**\n"
        "- deactivate **GenIdentity**\n"
        "- **GenIdentity** remove **IdentityReady**\n"
    )
    chart = mermaid(m, tx1)
    assert "Ready (deactivate-passive)" in chart
    assert "-->|require|" in chart


def test_sim_clocks_agree_with_the_logged_changes(sim: Any) -> None:
    """Go logs `[state] +A -B` per transition: A ticked to active, B to inactive."""
    checked = 0
    for m in sim.machines.values():
        prev = [0] * len(m.states)
        for tx in m.transitions:
            assert len(tx.clocks) == len(m.states)
            assert all(a >= b for a, b in zip(tx.clocks, prev, strict=True))
            for e in tx.logs:
                hit = re.match(r"\[state(?::auto)?\] (.*)", e.text)
                if hit is None:
                    continue
                for tok in hit.group(1).split():
                    if tok[:1] not in ("+", "-") or tok[1:] not in m.states:
                        continue  # args like (Topic.id=...)
                    k = m.states.index(tok[1:])
                    assert tx.clocks[k] > prev[k]
                    assert tx.clocks[k] % 2 == (1 if tok[0] == "+" else 0)
                    checked += 1
            prev = tx.clocks
    assert checked == 7323


def test_sim_steps_follow_the_schema_and_logs(sim: Any) -> None:
    seen: dict[StepType, int] = {}
    for m in sim.machines.values():
        for tx in m.transitions:
            assert [st.state for st in tx.steps if st.type is T.REQUESTED] == tx.called
            handlers = {
                e.text.split()[1] for e in tx.logs if e.text.startswith("[handler] ")
            }
            for st in tx.steps:
                seen[st.type] = seen.get(st.type, 0) + 1
                rel = {
                    T.IMPLIED: (st.source, "add", st.state),
                    T.REMOVED: (st.source, "remove", st.state),
                    T.BLOCKED: (st.state, "require", st.source),
                    T.AFTER: (st.state, "after", st.source),
                }.get(st.type)
                if rel is not None:
                    owner, kind, other = rel
                    assert other in m.schema[owner].get(kind, []), (m.id, tx.id, st)
                if st.type is T.HANDLER and handlers:
                    assert st.data in handlers
                    assert st.data.startswith(st.state)
    assert seen == {
        T.REQUESTED: 7686,
        T.BLOCKED: 5666,
        T.HANDLER: 4553,
        T.SET: 3563,
        T.REMOVE: 3247,
        T.IMPLIED: 230,
        T.REMOVED: 123,
        T.CANCEL: 51,
    }


def test_sim_times(sim: Any) -> None:
    # recorded on 2024-07-22 (the file entered the Go repo on 2024-07-28)
    lo = dt.datetime(2024, 7, 22, 13, 29, tzinfo=dt.UTC).timestamp()
    hi = dt.datetime(2024, 7, 22, 13, 30, tzinfo=dt.UTC).timestamp()
    for m in sim.machines.values():
        times = [tx.time for tx in m.transitions]
        assert times == sorted(times)
        assert all(lo <= t < hi for t in times)


def test_read_session_and_cli_read_go_exports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sim: Any
) -> None:
    assert read_session(SIM).machines == sim.machines
    # without the extension: no AMDBG magic, so the Go importer is tried
    plain = tmp_path / "session.bin"
    shutil.copy(SIM, plain)
    assert len(read_session(plain).machines) == 107
    assert _cli.main(["clients", str(SIM)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        "sim-p11 states=18 transitions=9 dropped=0 dropped_cap=0 disconnected"
    )
    assert len(out.splitlines()) == 107
    assert _cli.main(["tx", str(SIM), "sim-p11", "--index", "2"]) == 0
    assert capsys.readouterr().out.startswith(
        "mach://sim-p11/b28100433115228154b6c6120b9cee57\n"
    )


def test_go_import_round_trips_through_a_session_file(tmp_path: Path, sim: Any) -> None:
    path = tmp_path / "sim.amdbg"
    write_session(path, sim)
    assert read_session(path).machines == sim.machines


def test_memory_cap_applies_to_imports() -> None:
    capped = read_go_session(SIM, max_memory=200_000)
    assert 0 < capped.memory <= 200_000
    kept = sum(len(m.transitions) for m in capped.machines.values())
    assert kept + capped.dropped == 7605


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "neither brotli nor gob"),
        (b"hello world, not a session", "neither brotli nor gob"),
        (brotli.compress(b"\x05\x04\x00"), "damaged gob stream"),
        (brotli.compress(b""), "empty"),
        # a gob int, not a list of exports
        (brotli.compress(msg(i(2) + u(0) + i(7))), "expected a list"),
    ],
)
def test_bad_input_is_refused(data: bytes, match: str) -> None:
    with pytest.raises(GoImportError, match=match):
        read_go_session(data)


def test_truncated_export_names_the_file(tmp_path: Path) -> None:
    raw = brotli.decompress(SIM.read_bytes())
    cut = tmp_path / "cut.gob.br"
    cut.write_bytes(brotli.compress(raw[: len(raw) // 2], quality=1))
    with pytest.raises(GoImportError, match=r"cut\.gob\.br: damaged gob stream"):
        read_session(cut)
    cut.write_bytes(SIM.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"cut\.gob\.br"):
        read_session(cut)
    assert isinstance(GoImportError("x"), ValueError)


# ------------------------------------------------- a hand-built newer export

BOOL, INT, UINT, STRING, INTERFACE = 1, 2, 3, 6, 8
# the export structs of newer Go versions, as gob type definitions
TYPES: dict[int, tuple[Any, ...]] = {
    65: (
        "struct",
        "Exportable",
        [("MsgStruct", 66), ("MsgTxs", 80), ("Version", STRING)],
    ),
    66: (
        "struct",
        "DbgMsgStruct",
        [
            ("ID", STRING),
            ("StatesIndex", 67),
            ("States", 69),
            ("Groups", 70),
            ("GroupsOrder", 67),
            ("Parent", STRING),
            ("Tags", 67),
        ],
    ),
    67: ("slice", STRING),
    68: (
        "struct",
        "State",
        [
            ("Auto", BOOL),
            ("Multi", BOOL),
            ("Require", 67),
            ("Add", 67),
            ("Remove", 67),
            ("After", 67),
            ("Tags", 67),
        ],
    ),
    69: ("map", STRING, 68),
    70: ("map", STRING, 71),
    71: ("slice", INT),
    72: (
        "struct",
        "DbgMsgTx",
        [
            ("MachineID", STRING),
            ("ID", STRING),
            ("Clocks", 73),
            ("QueueTick", UINT),
            ("Type", INT),
            ("CalledStatesIdxs", 71),
            ("Steps", 75),
            ("LogEntries", 77),
            ("PreLogEntries", 77),
            ("Time", 78),
            ("IsAuto", BOOL),
            ("Accepted", BOOL),
            ("IsCheck", BOOL),
            ("IsQueued", BOOL),
            ("Args", 79),
            ("StackTrace", STRING),
        ],
    ),
    73: ("slice", UINT),
    74: (
        "struct",
        "Step",
        [
            ("Type", INT),
            ("RelType", INT),
            ("IsFinal", BOOL),
            ("IsSelf", BOOL),
            ("IsEnter", BOOL),
            ("FromState", STRING),
            ("FromStateIdx", INT),
            ("ToState", STRING),
            ("ToStateIdx", INT),
            ("Data", INTERFACE),
        ],
    ),
    75: ("slice", 74),
    76: ("struct", "LogEntry", [("Level", INT), ("Text", STRING)]),
    77: ("slice", 76),
    78: ("encoder", ""),
    79: ("map", STRING, STRING),
    80: ("slice", 72),
    81: ("slice", 65),
}


def _define(tid: int) -> bytes:
    t = TYPES[tid]
    if t[0] == "struct":
        return struct_def(tid, t[1], t[2])
    if t[0] == "slice":
        return slice_def(tid, t[1])
    if t[0] == "map":
        return map_def(tid, t[1], t[2])
    return encoder_def(tid, t[1])


def _enc(v: Any, tid: int) -> bytes:
    if tid == BOOL:
        return u(int(v))
    if tid == INT:
        return i(v)
    if tid == UINT:
        return u(v)
    if tid == STRING:
        return s(v)
    t = TYPES[tid]
    if t[0] == "struct":
        out, last = b"", -1
        for k, (name, ftid) in enumerate(t[2]):
            if name in v:
                out += u(k - last) + _enc(v[name], ftid)
                last = k
        return out + u(0)
    if t[0] == "slice":
        return u(len(v)) + b"".join(_enc(x, t[1]) for x in v)
    if t[0] == "map":
        return u(len(v)) + b"".join(_enc(k, t[1]) + _enc(x, t[2]) for k, x in v.items())
    return u(len(v)) + bytes(v)


def _export(clients: list[dict[str, Any]]) -> bytes:
    return b"".join(_define(t) for t in TYPES) + msg(i(81) + u(0) + _enc(clients, 81))


WHEN = dt.datetime(2025, 3, 1, 12, 0, 0, 250000, tzinfo=dt.UTC)
NEWER: dict[str, Any] = {
    "MsgStruct": {
        "ID": "worker-1",
        "StatesIndex": ["Start", "Ready", "Working", "Exception"],
        "States": {
            "Start": {"Add": ["Ready"]},
            "Ready": {"Require": ["Start"], "Tags": ["ui"]},
            "Working": {"Require": ["Ready"], "After": ["Ready"], "Multi": True},
            "Exception": {"Multi": True},
        },
        "Groups": {"Main": [0, 1], "Work": [2]},
        "GroupsOrder": ["Work", "Main"],
        "Parent": "supervisor",
        "Tags": ["kind:worker", "v2"],
    },
    "MsgTxs": [
        {
            "MachineID": "worker-1",
            "ID": "tx-1",
            "Clocks": [1, 1, 2, 0],
            "QueueTick": 5,
            "CalledStatesIdxs": [0],
            "Steps": [
                {"Type": 32, "ToState": "Start", "FromStateIdx": -1},
                {"Type": 1, "RelType": 1, "FromState": "Start", "ToState": "Ready"},
                # RelType absent: 0, Go's RelationAfter
                {"Type": 1, "FromState": "Ready", "ToState": "Working"},
                {"Type": 1, "RelType": 3, "FromStateIdx": 1, "ToStateIdx": 2},
                {"Type": 8, "ToState": "Working"},
                {"Type": 2, "ToState": "Start", "IsEnter": True},
                {"Type": 2, "FromState": "Working", "FromStateIdx": 2},
                {"Type": 2, "FromState": "Start", "ToState": "Ready"},
                {"Type": 2, "ToState": "Ready", "IsSelf": True},
                {"Type": 2, "ToState": "Start", "IsFinal": True, "IsEnter": True},
                {"Type": 2, "ToState": "Working", "IsFinal": True},
            ],
            "LogEntries": [{"Level": 2, "Text": "[add] Start"}],
            "PreLogEntries": [{"Level": 1, "Text": "before"}],
            "Time": go_time_bytes(WHEN),
            "Accepted": True,
            "IsQueued": True,
            "Args": {"id": "7", "name": "job"},
            "StackTrace": "not mapped",
        },
        {
            "MachineID": "worker-1",
            "ID": "tx-2",
            "Clocks": [1, 1, 2, 0],
            "Type": 1,
            "CalledStatesIdxs": [1, 2],
            "IsCheck": True,
        },
    ],
    "Version": "v0.18.0",
}


def test_newer_export_fields() -> None:
    data = _export([NEWER])
    for sess in (read_go_session(data), read_go_session(brotli.compress(data))):
        m: MachineRecord = sess.machines["worker-1"]
        assert m.parent_id == "supervisor"
        assert m.tags == ["kind:worker", "v2"]
        assert list(m.groups.items()) == [
            ("Work", ["Working"]),
            ("Main", ["Start", "Ready"]),
        ]
        assert m.schema["Ready"] == {"require": ["Start"], "tags": ["ui"]}
        assert m.schema["Working"] == {
            "require": ["Ready"],
            "after": ["Ready"],
            "multi": True,
        }
        tx, check = m.transitions
        assert (tx.called, tx.queue_tick, tx.is_queued, tx.is_check) == (
            ["Start"],
            5,
            True,
            False,
        )
        assert tx.time == WHEN.timestamp()
        assert tx.args == {"id": "7", "name": "job"}
        assert [e.text for e in tx.pre_logs] == ["before"]
        assert tx.steps == [
            Step(T.REQUESTED, "Start"),
            Step(T.IMPLIED, "Ready", "Start"),
            Step(T.AFTER, "Working", "Ready"),
            Step(T.REMOVED, "Working", "Ready"),
            Step(T.REMOVE, "Working"),
            Step(T.HANDLER, "Start", "", "StartEnter"),
            Step(T.HANDLER, "Working", "", "WorkingExit"),
            Step(T.HANDLER, "Start", "", "StartReady"),
            Step(T.HANDLER, "Ready", "", "ReadyReady"),
            Step(T.HANDLER, "Start", "", "StartState"),
            Step(T.HANDLER, "Working", "", "WorkingEnd"),
        ]
        assert (check.mutation, check.called, check.is_check) == (
            "remove",
            ["Ready", "Working"],
            True,
        )
        assert check.time == 0.0


def test_the_same_machine_twice_keeps_both_parts() -> None:
    second = {**NEWER, "MsgTxs": [{**NEWER["MsgTxs"][1], "ID": "tx-3"}]}
    sess = read_go_session(_export([NEWER, second]))
    assert [tx.id for tx in sess.machines["worker-1"].transitions] == [
        "tx-1",
        "tx-2",
        "tx-3",
    ]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"MsgStruct": {"StatesIndex": ["A"]}}, "without a machine ID"),
        ({"MsgStruct": {**NEWER["MsgStruct"], "Groups": {"G": [9]}}}, "index 9"),
        (
            {"MsgTxs": [{"ID": "t", "CalledStatesIdxs": [4]}]},
            r"worker-1: transition 0 \(t\): called state index 4",
        ),
        ({"MsgTxs": [{"ID": "t", "Type": 9}]}, "unknown mutation type 9"),
        ({"MsgTxs": [{"ID": "t", "Steps": [{"Type": 128}]}]}, "step 0: unknown step"),
        (
            {"MsgTxs": [{"ID": "t", "Steps": [{"Type": 1, "RelType": 7}]}]},
            "unknown relation 7",
        ),
        ({"MsgTxs": [{"ID": "t", "Time": b"\x09"}]}, "Time: gob: unsupported"),
    ],
)
def test_bad_export_values_name_the_machine(change: dict[str, Any], match: str) -> None:
    with pytest.raises(GoImportError, match=match):
        read_go_session(_export([{**NEWER, **change}]))


def test_no_msg_struct() -> None:
    with pytest.raises(GoImportError, match="client 0: no MsgStruct"):
        read_go_session(_export([{"Version": "x"}]))


def test_every_truncation_and_byte_flip_is_refused_cleanly() -> None:
    """Damaged exports raise GoImportError (or import), never anything else."""
    data = _export([NEWER])
    for n in range(len(data)):
        with pytest.raises(GoImportError):
            read_go_session(data[:n])
    for pos in range(len(data)):
        bad = bytearray(data)
        bad[pos] ^= (0x01, 0x80, 0xFF)[pos % 3]
        with contextlib.suppress(GoImportError):
            read_go_session(bytes(bad))


def test_files_without_magic_and_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # no extension and no AMDBG magic: the Go importer is tried
    plain = tmp_path / "session.bin"
    plain.write_bytes(brotli.compress(_export([NEWER])))
    assert [tx.id for tx in read_session(plain).machines["worker-1"].transitions] == [
        "tx-1",
        "tx-2",
    ]
    assert _cli.main(["tx", str(plain), "worker-1", "--index", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mach://worker-1/tx-1\n2025-03-01T12:00:00.250000Z\n")
    assert "- **Start** add **Ready**\n" in out
    assert _cli.main(["mermaid", str(plain), "worker-1", "--index", "-1"]) == 0
    assert capsys.readouterr().out.startswith("flowchart LR\n")
    (tmp_path / "junk.bin").write_bytes(b"junk" * 10)
    assert _cli.main(["clients", str(tmp_path / "junk.bin")]) == 1
    assert "nor a Go am-dbg export" in capsys.readouterr().err


def test_decompressed_size_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from asyncmachine.debugger import _go_import

    monkeypatch.setattr(_go_import, "MAX_SIZE", 100_000)
    bomb = brotli.compress(b"\0" * 10_000_000, quality=1)
    assert len(bomb) < 100_000
    with pytest.raises(GoImportError, match="more than 100000 bytes"):
        read_go_session(bomb)
    data = _export([NEWER])
    assert read_go_session(brotli.compress(data)).machines.keys() == {"worker-1"}
