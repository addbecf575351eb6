"""Reusable schemas of `asyncmachine.states` (Go's pkg/states): each compiles,
agrees with its states class, merges into a user's schema, and its
relations behave like the Go ones."""

from __future__ import annotations

from typing import Final

import pytest

import asyncmachine as am
from asyncmachine import states as ss
from asyncmachine.states import (
    BASIC_SCHEMA,
    CONN_POOL_SCHEMA,
    CONNECTED_SCHEMA,
    DISPOSED_SCHEMA,
    BasicStates,
    ConnectedGroups,
    ConnectedStates,
    ConnPoolGroups,
    ConnPoolStates,
    DisposedStates,
)

ALL = [
    (BasicStates, BASIC_SCHEMA, None),
    (ConnectedStates, CONNECTED_SCHEMA, ConnectedGroups),
    (ConnPoolStates, CONN_POOL_SCHEMA, ConnPoolGroups),
    (DisposedStates, DISPOSED_SCHEMA, None),
]

BASIC_NAMES = [
    "ErrNetwork",
    "ErrHandlerTimeout",
    "Start",
    "Ready",
    "Healthcheck",
    "Heartbeat",
]


@pytest.mark.parametrize(("states", "schema", "groups"), ALL)
def test_schema_compiles_and_agrees_with_its_class(
    states: type[am.StatesBase], schema: am.Schema, groups: type | None
) -> None:
    states.check_schema(schema)
    if groups is not None:
        states.check_groups(groups)
    mach = am.Machine(schema)
    assert mach.state_names == states.names()
    assert states.names()[: len(BASIC_NAMES)] == BASIC_NAMES


def test_exports() -> None:
    for name in ss.__all__:
        assert getattr(ss, name) is not None
    assert set(ss.__all__) >= {"BASIC_SCHEMA", "BasicStates", "ConnectedGroups"}


# --------------------------------------------------------------------- basic


def test_basic_relations() -> None:
    s = BasicStates
    mach = am.Machine(BASIC_SCHEMA)
    assert mach.add1(s.Ready) == am.Result.CANCELED  # requires Start
    mach.add([s.Start, s.Ready])
    assert mach.is_([s.Start, s.Ready])
    mach.remove1(s.Start)
    assert mach.active_states == []
    # Healthcheck is Multi: every add is a new activation
    mach.add1(s.Healthcheck)
    tick = mach.tick(s.Healthcheck)
    mach.add1(s.Healthcheck)
    assert mach.tick(s.Healthcheck) == tick + 2
    # Heartbeat is not
    mach.add1(s.Heartbeat)
    tick = mach.tick(s.Heartbeat)
    mach.add1(s.Heartbeat)
    assert mach.tick(s.Heartbeat) == tick


@pytest.mark.parametrize("err", [BasicStates.ErrNetwork, BasicStates.ErrHandlerTimeout])
def test_basic_error_states_add_and_require_exception(err: str) -> None:
    mach = am.Machine(BASIC_SCHEMA)
    mach.add_err_state(err, OSError("down"))
    assert mach.is_([err, am.EXCEPTION])
    assert isinstance(mach.err, OSError)
    # they are Multi too
    tick = mach.tick(err)
    mach.add1(err)
    assert mach.tick(err) == tick + 2
    # without Exception they cannot stay
    mach.remove1(am.EXCEPTION)
    assert mach.not_([err, am.EXCEPTION])
    # and a plain add brings Exception along
    mach.add1(err)
    assert mach.is_([err, am.EXCEPTION])


# ----------------------------------------------------------------- connected


def test_connected_states_are_mutually_exclusive() -> None:
    s = ConnectedStates
    mach = am.Machine(CONNECTED_SCHEMA)
    assert mach.add1(s.Connecting) == am.Result.CANCELED  # requires Start
    assert mach.add1(s.Connected) == am.Result.CANCELED
    mach.add1(s.Start)
    assert mach.active_states == [s.Start, s.Disconnected]  # Disconnected is auto
    mach.add1(s.Connecting)
    assert mach.active_states == [s.Start, s.Connecting]
    mach.add1(s.Connected)
    assert mach.active_states == [s.Start, s.Connected]  # removes Connecting
    mach.add1(s.Disconnecting)
    assert mach.active_states == [s.Start, s.Disconnecting]
    mach.remove1(s.Disconnecting)
    assert mach.active_states == [s.Start, s.Disconnected]
    # losing Start ends Connecting and Connected (they require it)
    mach.add1(s.Connected)
    mach.remove1(s.Start)
    assert mach.active_states == [s.Disconnected]
    for name in ConnectedGroups.Connected:
        others = [o for o in ConnectedGroups.Connected if o != name]
        assert set(CONNECTED_SCHEMA[name].remove) >= set(others)


def test_connected_error_requires_exception() -> None:
    s = ConnectedStates
    mach = am.Machine(CONNECTED_SCHEMA)
    assert mach.add1(s.ErrConnecting) == am.Result.CANCELED
    mach.add_err_state(s.ErrConnecting, ConnectionRefusedError())
    assert mach.is_([s.ErrConnecting, s.Exception])
    mach.remove1(s.Exception)
    assert mach.not1(s.ErrConnecting)
    assert not CONNECTED_SCHEMA[s.ErrConnecting].multi


def test_conn_pool_relations() -> None:
    s = ConnPoolStates
    mach = am.Machine(CONN_POOL_SCHEMA)
    mach.add1(s.Start)
    assert mach.active_states == [s.Start]  # nothing is auto here
    assert mach.add1(s.ConnectedFully) == am.Result.CANCELED  # needs Connected
    mach.add([s.Connecting, s.Connected])
    mach.add1(s.ConnectedFully)
    assert mach.active_states == [s.Start, s.Connecting, s.Connected, s.ConnectedFully]
    mach.add1(s.Disconnecting)
    assert mach.active_states == [s.Start, s.Disconnecting]
    mach.add1(s.Disconnected)
    assert mach.active_states == [s.Start, s.Disconnected]
    mach.add1(s.Connected)
    assert mach.active_states == [s.Start, s.Connected]
    assert ConnPoolGroups.Connected == (s.Connected, s.Disconnected)


# ------------------------------------------------------------------ disposed


def test_disposed_relations() -> None:
    s = DisposedStates
    mach = am.Machine(DISPOSED_SCHEMA)
    mach.add1(s.Start)
    mach.add_err(RuntimeError("x"))
    tick = mach.tick(s.RegisterDisposal)
    mach.add1(s.RegisterDisposal)
    mach.add1(s.RegisterDisposal)
    assert mach.tick(s.RegisterDisposal) == tick + 3  # Multi
    mach.add1(s.Disposing)
    assert mach.active_states == [s.RegisterDisposal, s.Disposing]
    mach.add1(s.Disposed)
    assert mach.active_states == [s.RegisterDisposal, s.Disposed]


# ---------------------------------------------------------------- inheriting


class WorkerStates(ConnectedStates, DisposedStates):
    """A worker inheriting two reusable state sets."""

    Working = am.state()
    Idle = am.state()


class WorkerGroups:
    Work: Final = (WorkerStates.Working, WorkerStates.Idle)


WORKER_SCHEMA: Final[am.Schema] = am.schema_merge(
    CONNECTED_SCHEMA,
    DISPOSED_SCHEMA,
    {
        WorkerStates.Working: am.State(
            require=[WorkerStates.Connected], remove=WorkerGroups.Work
        ),
        WorkerStates.Idle: am.State(remove=WorkerGroups.Work),
        # extend an inherited state: Ready now also needs a connection
        WorkerStates.Ready: am.State(
            require=[WorkerStates.Start, WorkerStates.Connected]
        ),
    },
)


def test_inheriting_merges_names_and_schemas() -> None:
    assert WorkerStates.names() == [
        *BASIC_NAMES,
        "ErrConnecting",
        "Connecting",
        "Connected",
        "Disconnecting",
        "Disconnected",
        "RegisterDisposal",
        "Disposing",
        "Disposed",
        "Working",
        "Idle",
        "Exception",
    ]
    WorkerStates.check_schema(WORKER_SCHEMA)
    WorkerStates.check_groups(ConnectedGroups)
    WorkerStates.check_groups(WorkerGroups)
    with pytest.raises(am.SchemaError, match="lacks the state 'Working'"):
        WorkerStates.check_schema(am.schema_merge(CONNECTED_SCHEMA, DISPOSED_SCHEMA))
    with pytest.raises(
        am.SchemaError, match="'RegisterDisposal', which ConnectedStates"
    ):
        ConnectedStates.check_schema(WORKER_SCHEMA)

    s = WorkerStates
    mach = am.Machine(WORKER_SCHEMA)
    assert mach.state_names == s.names()
    mach.add1(s.Start)
    assert mach.add1(s.Ready) == am.Result.CANCELED
    assert mach.add1(s.Working) == am.Result.CANCELED
    mach.add([s.Connected, s.Ready, s.Working])
    assert mach.active_states == [s.Start, s.Ready, s.Connected, s.Working]
    # Disposing removes Start, which ends what requires it; Disconnected is auto
    mach.add1(s.Disposing)
    assert mach.active_states == [s.Disconnected, s.Disposing]
