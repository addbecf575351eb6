"""Value types of the core: states, results, enums, errors and aliases."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeAlias

import attrs

__all__ = [
    "EXCEPTION",
    "Clock",
    "HandlerTimeoutError",
    "LogLevel",
    "MachineDisposedError",
    "MutationType",
    "NestedEvalError",
    "Position",
    "Result",
    "S",
    "Schema",
    "SchemaError",
    "State",
    "StateNameError",
    "StepType",
    "Time",
]

EXCEPTION = "Exception"
"""Name of the error state every machine has."""

S: TypeAlias = Sequence[str]
"""A sequence of state names."""

Time: TypeAlias = tuple[int, ...]
"""Ticks of several states, in the order they were asked for."""

Clock: TypeAlias = dict[str, int]
"""Ticks of several states, by name."""


def _names(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError(
            f"a relation takes a list of state names, not the string {value!r}"
        )
    out = tuple(value)
    for name in out:
        if not isinstance(name, str):
            raise TypeError(f"state names are strings, got {name!r}")
    return out


@attrs.frozen(slots=True, cache_hash=True)
class State:
    """One state of a schema: its flags and its relations to other states."""

    auto: bool = attrs.field(default=False, kw_only=True)
    multi: bool = attrs.field(default=False, kw_only=True)
    require: tuple[str, ...] = attrs.field(default=(), converter=_names, kw_only=True)
    add: tuple[str, ...] = attrs.field(default=(), converter=_names, kw_only=True)
    remove: tuple[str, ...] = attrs.field(default=(), converter=_names, kw_only=True)
    after: tuple[str, ...] = attrs.field(default=(), converter=_names, kw_only=True)
    tags: tuple[str, ...] = attrs.field(default=(), converter=_names, kw_only=True)


Schema: TypeAlias = Mapping[str, State]
"""A mapping of state names to their definitions, in state order."""


class Result(enum.IntEnum):
    """What a mutation did: ran, was refused, or waits in the queue."""

    EXECUTED = 0
    CANCELED = 1
    QUEUED = 2

    def __str__(self) -> str:
        return self.name.lower()


class MutationType(enum.IntEnum):
    """The kind of a mutation."""

    ADD = 0
    REMOVE = 1
    SET = 2

    def __str__(self) -> str:
        return self.name.lower()


class LogLevel(enum.IntEnum):
    """How much a machine logs; each level includes the ones below it."""

    NOTHING = 0
    EXTERNAL = 1
    CHANGES = 2
    OPS = 3
    DECISIONS = 4
    EVERYTHING = 5

    def __str__(self) -> str:
        return self.name.lower()


class StepType(enum.IntEnum):
    """What one step of a transition did (Go's `am.StepType`, our names).

    Steps are recorded only for tracers that ask (docs/debugger.md).
    """

    REQUESTED = 1
    """A called state."""
    IMPLIED = 2
    """Added by another state's Add relation (`source` adds `state`)."""
    REMOVED = 3
    """Dropped by another state's Remove relation (`source` removes it)."""
    BLOCKED = 4
    """Dropped because its Require relation is unmet (`source` is missing)."""
    AFTER = 5
    """Ordered after another state (`state` After `source`)."""
    HANDLER = 6
    """A handler was called (`data` is its name)."""
    CANCEL = 7
    """The transition was canceled (`data`: the handler, or "rejected")."""
    SET = 8
    """The state became active (or a multi state was re-activated)."""
    REMOVE = 9
    """The state became inactive."""


class Position(enum.IntEnum):
    """Where `Machine.is_queued` looks in the queue."""

    ANY = 0
    FIRST = 1
    LAST = 2


class StateNameError(ValueError):
    """A state name that the machine's schema does not have."""

    def __init__(self, state: object, machine_id: str = "") -> None:
        self.state = state
        self.machine_id = machine_id
        where = f" in machine {machine_id}" if machine_id else ""
        super().__init__(f"unknown state {state!r}{where}")


class SchemaError(ValueError):
    """A schema that cannot make a machine."""


class MachineDisposedError(RuntimeError):
    """A call that has no neutral answer was made on a disposed machine."""


class HandlerTimeoutError(TimeoutError):
    """A handler ran longer than the machine's `handler_timeout`."""


class NestedEvalError(RuntimeError):
    """`Machine.eval` was called from inside a handler."""
