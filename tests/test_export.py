"""mach.export() / Machine.import_(): round trips and refused input."""

from __future__ import annotations

import json
from typing import Any

import pytest

import asyncmachine as am

SCHEMA: am.Schema = {
    "Start": am.State(),
    "Ready": am.State(require=["Start"]),
    "Multi": am.State(multi=True),
    "MachineRestored": am.State(),
}
PLAIN: am.Schema = {"A": am.State(), "B": am.State(remove=["A"])}


def busy_machine(**kwargs: Any) -> am.Machine:
    mach = am.Machine(SCHEMA, id="exported", **kwargs)
    mach.add(["Start", "Ready"])
    mach.add1("Multi")
    mach.add1("Multi")
    mach.remove1("Ready")
    return mach


def test_export_has_go_fields_and_is_json() -> None:
    parent = am.Machine(PLAIN, id="parent")
    mach = am.Machine(SCHEMA, id="child", parent=parent)
    mach.add1("Start")
    data = mach.export()
    assert isinstance(data, am.Serialized)
    doc = json.loads(json.dumps(data.to_json()))
    assert doc == {
        "id": "child",
        "parent_id": "parent",
        "state_names": ["Start", "Ready", "Multi", "MachineRestored", "Exception"],
        "time": [1, 0, 0, 0, 0],
        "queue_tick": mach.queue_tick,
        "machine_tick": 0,
    }
    assert am.Serialized.from_json(doc) == data


def test_round_trip_restores_clocks_queue_tick_and_marks_restored() -> None:
    src = busy_machine()
    data = json.loads(json.dumps(src.export().to_json()))
    seen: list[str] = []

    class Handlers:
        def MachineRestoredState(self, e: am.Event) -> None:
            seen.append("restored")

    mach = am.Machine.import_(data, SCHEMA, handlers=Handlers())
    assert isinstance(mach, am.Machine)
    assert mach.id == "exported"
    assert seen == ["restored"]
    # every clock as exported, plus the MachineRestored activation
    expected = src.clock()
    expected["MachineRestored"] = 1
    assert mach.clock() == expected
    assert mach.is_(["Start", "MachineRestored"])
    assert mach.not1("Ready")
    assert mach.machine_tick == 1
    # the restored marker is a transition: one more queue tick
    assert mach.queue_tick == src.queue_tick + 1
    # the machine keeps working from the restored clocks
    assert mach.add1("Ready") is am.Result.EXECUTED
    assert mach.tick("Ready") == src.tick("Ready") + 1
    # importing again counts the imports
    again = am.Machine.import_(mach.export(), SCHEMA)
    assert again.machine_tick == 2


def test_round_trip_without_a_marker_state() -> None:
    src = am.Machine(PLAIN, id="plain")
    src.add1("A")
    src.add1("B")
    mach = am.CoreMachine.import_(src.export(), PLAIN)
    assert type(mach) is am.CoreMachine
    assert mach.clock() == src.clock() == {"A": 2, "B": 1, "Exception": 0}
    assert mach.active_states == ["B"]
    assert mach.queue_tick == src.queue_tick
    assert mach.machine_tick == 1
    assert src.machine_tick == 0


def test_state_order_in_the_data_does_not_matter() -> None:
    data = {
        "id": "go",
        "state_names": ["Exception", "B", "A"],
        "time": [0, 1, 2],
        "queue_tick": 9,
        "machine_tick": 3,
    }
    mach = am.Machine.import_(data, PLAIN)
    assert mach.clock() == {"A": 2, "B": 1, "Exception": 0}
    assert mach.machine_tick == 4
    assert mach.queue_tick == 9
    assert mach.parent_id == ""


def test_schema_mismatch_names_the_states() -> None:
    data = busy_machine().export()
    bound: list[object] = []

    class Probe(am.Tracer):
        def machine_init(self, machine: am.Machine) -> None:
            bound.append(machine)

    with pytest.raises(
        am.SchemaError, match=r"not in the schema: Ready, Multi, MachineRestored"
    ):
        am.Machine.import_(data, {**PLAIN, "Start": am.State()}, tracers=[Probe()])
    with pytest.raises(am.SchemaError, match=r"missing from the data: A, B"):
        am.Machine.import_(data, {**SCHEMA, **PLAIN})
    # nothing was built on bad input
    assert bound == []


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"time": [1, 2]}, "time has 2 ticks for 5 state names"),
        ({"time": [1, -1, 0, 0, 0]}, "the tick of Ready must be a non-negative int"),
        ({"time": [1, True, 0, 0, 0]}, "the tick of Ready"),
        ({"queue_tick": "7"}, "queue_tick must be a non-negative int"),
        ({"id": ""}, "id must be a non-empty str"),
        ({"state_names": "Start"}, "state_names must be a list"),
        ({"state_names": ["A", "A", "B", "C", "D"]}, "state_names repeats A"),
        ({"extra": 1}, "unknown fields: extra"),
    ],
)
def test_bad_data_is_refused(change: dict[str, Any], match: str) -> None:
    doc = busy_machine().export().to_json()
    doc.update(change)
    with pytest.raises(ValueError, match=match):
        am.Machine.import_(doc, SCHEMA)


def test_missing_field_and_non_mapping() -> None:
    doc = busy_machine().export().to_json()
    del doc["time"]
    with pytest.raises(ValueError, match="missing field 'time'"):
        am.Serialized.from_json(doc)
    with pytest.raises(ValueError, match="expected a mapping"):
        am.Serialized.from_json([])  # type: ignore[arg-type]


def test_id_comes_from_the_data() -> None:
    data = busy_machine().export()
    with pytest.raises(TypeError, match="takes the id from the data"):
        am.Machine.import_(data, SCHEMA, id="other")


def test_import_into_checks_id_and_freshness_and_leaves_machine_unchanged() -> None:
    from asyncmachine._export import import_into

    data = busy_machine().export()
    other = am.Machine(SCHEMA, id="other")
    other.add1("Start")
    before = other.clock()
    with pytest.raises(ValueError, match="ids differ"):
        import_into(other, data)
    assert other.clock() == before
    assert other.machine_tick == 0

    gone = am.Machine(SCHEMA, id="exported")
    gone.dispose()
    with pytest.raises(RuntimeError, match="disposed"):
        import_into(gone, data)
    with pytest.raises(RuntimeError, match="disposed"):
        gone.export()


async def test_imported_machine_runs_on_the_runtime() -> None:
    import anyio

    mach = am.Machine.import_(busy_machine().export(), SCHEMA)
    async with mach:
        with anyio.fail_after(5):
            mach.add1("Ready")
            await mach.when1("Ready")
        assert mach.is1("Ready")
        assert mach.machine_tick == 1
