"""What type checkers see of typed state names (checked by mypy and pyright)."""

from __future__ import annotations

from typing import Final, assert_type

import asyncmachine as am
from asyncmachine.states import (
    BASIC_SCHEMA,
    CONNECTED_SCHEMA,
    BasicStates,
    ConnectedGroups,
    ConnectedStates,
    DisposedStates,
)


class WorkerStates(ConnectedStates, DisposedStates):
    """A worker inheriting two reusable state sets."""

    Working = am.state()
    Idle = am.state()


class WorkerGroups:
    """Groups of mutually exclusive states."""

    Work: Final = (WorkerStates.Working, WorkerStates.Idle)


WORKER_SCHEMA: Final[am.Schema] = am.schema_merge(
    CONNECTED_SCHEMA,
    {
        WorkerStates.Working: am.State(
            require=[WorkerStates.Start], remove=WorkerGroups.Work
        ),
        WorkerStates.Idle: am.State(remove=WorkerGroups.Work),
    },
)


def names() -> None:
    """Names are plain strings, inherited ones included."""
    assert_type(WorkerStates.Working, str)
    assert_type(WorkerStates.Connected, str)
    assert_type(WorkerStates.Disposing, str)
    assert_type(WorkerStates.Start, str)
    assert_type(WorkerStates.Exception, str)
    assert_type(WorkerStates.names(), list[str])
    assert_type(WorkerGroups.Work, tuple[str, str])
    assert_type(ConnectedGroups.Connected, tuple[str, str, str, str])
    assert_type(BASIC_SCHEMA, am.Schema)
    WorkerStates.check_schema(WORKER_SCHEMA)
    WorkerStates.check_groups(WorkerGroups)


def mistakes(mach: am.Machine) -> None:
    """A typo'd name is an error; the ignore would be unused (an error) if not."""
    mach.add1(WorkerStates.Wroking)  # type: ignore[attr-defined]
    mach.add1(BasicStates.Connected)  # type: ignore[attr-defined]
    mach.add1(WorkerGroups.Work)  # type: ignore[arg-type]
