"""Typed state names: inheritance (single and multiple), names(), groups,
and the check that a schema and a states class agree."""

from __future__ import annotations

from typing import Final

import pytest

import asyncmachine as am


class RpcStates(am.StatesBase):
    Start = am.state()
    Connected = am.state()
    HandshakeDone = am.state()


class DiskStates(am.StatesBase):
    Start = am.state()
    Mounted = am.state()


class WorkerStates(RpcStates, DiskStates):
    Working = am.state()
    Idle = am.state()


class WorkerGroups:
    Work: Final = (WorkerStates.Working, WorkerStates.Idle)
    Link: Final = [WorkerStates.Connected, WorkerStates.HandshakeDone]


WORKER_SCHEMA: Final[am.Schema] = {
    WorkerStates.Start: am.State(),
    WorkerStates.Connected: am.State(require=[WorkerStates.Start]),
    WorkerStates.HandshakeDone: am.State(require=[WorkerStates.Connected]),
    WorkerStates.Mounted: am.State(),
    WorkerStates.Working: am.State(remove=WorkerGroups.Work),
    WorkerStates.Idle: am.State(remove=WorkerGroups.Work),
}


def test_multiple_inheritance_merges_names_in_base_order() -> None:
    assert WorkerStates.names() == [
        "Start",
        "Connected",
        "HandshakeDone",
        "Mounted",
        "Working",
        "Idle",
        "Exception",
    ]
    assert WorkerStates.Connected == "Connected"
    assert WorkerStates.Mounted == "Mounted"
    assert WorkerStates.Exception == am.EXCEPTION


def test_diamond_inheritance_lists_each_name_once() -> None:
    class Left(RpcStates):
        Left = am.state()

    class Right(RpcStates):
        Right = am.state()

    class Both(Left, Right):
        pass

    assert Both.names() == [
        "Start",
        "Connected",
        "HandshakeDone",
        "Left",
        "Right",
        "Exception",
    ]


def test_a_plain_mixin_base_adds_no_names() -> None:
    class Mixin:
        Helper = "Helper"

    class Mixed(Mixin, RpcStates):
        Own = am.state()

    assert Mixed.names() == ["Start", "Connected", "HandshakeDone", "Own", "Exception"]
    assert Mixed.Helper == "Helper"


def test_redeclared_name_keeps_its_place() -> None:
    class Again(RpcStates):
        Connected = am.state()
        Extra = "Extra"
        Exception = "Exception"
        _private = "not a state"
        count = 3

    assert Again.names() == [
        "Start",
        "Connected",
        "HandshakeDone",
        "Extra",
        "Exception",
    ]


def test_a_machine_from_the_schema_has_the_class_names() -> None:
    mach = am.Machine(WORKER_SCHEMA)
    assert mach.state_names == WorkerStates.names()
    mach.add1(WorkerStates.Working)
    mach.add1(WorkerStates.Idle)
    assert mach.active_states == [WorkerStates.Idle]


def test_check_schema_accepts_an_agreeing_schema() -> None:
    WorkerStates.check_schema(WORKER_SCHEMA)
    with_exc = {**WORKER_SCHEMA, am.EXCEPTION: am.State(multi=True)}
    WorkerStates.check_schema(with_exc)


def test_check_schema_names_a_missing_state() -> None:
    schema = dict(WORKER_SCHEMA)
    del schema[WorkerStates.Mounted]
    with pytest.raises(am.SchemaError, match="lacks the state 'Mounted' of Worker"):
        WorkerStates.check_schema(schema)


def test_check_schema_names_an_extra_state() -> None:
    schema = {**WORKER_SCHEMA, "Sleeping": am.State()}
    with pytest.raises(
        am.SchemaError, match="'Sleeping', which WorkerStates does not declare"
    ):
        WorkerStates.check_schema(schema)


def test_check_schema_names_a_relation_to_an_undeclared_state() -> None:
    schema = {**WORKER_SCHEMA, WorkerStates.Idle: am.State(after=["Sleeping"])}
    with pytest.raises(
        am.SchemaError,
        match="'Idle' has after='Sleeping', which WorkerStates does not declare",
    ):
        WorkerStates.check_schema(schema)


def test_check_groups() -> None:
    WorkerStates.check_groups(WorkerGroups)

    class MoreGroups(WorkerGroups):
        Disk: Final = (WorkerStates.Mounted,)

    WorkerStates.check_groups(MoreGroups)

    class BadGroups(WorkerGroups):
        Wrong: Final = ("Mounted", "Sleeping")

    with pytest.raises(
        am.SchemaError,
        match=r"BadGroups.Wrong names 'Sleeping', which WorkerStates does not",
    ):
        WorkerStates.check_groups(BadGroups)

    class NotAGroup:
        Work = "Working"

    with pytest.raises(am.SchemaError, match=r"NotAGroup.Work is not a group"):
        WorkerStates.check_groups(NotAGroup)

    with pytest.raises(am.SchemaError, match=r"MoreGroups.Work names 'Working'"):
        RpcStates.check_groups(MoreGroups)
