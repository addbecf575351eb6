"""Machine export and import: the data of a serialized machine, as JSON.

`mach.export()` returns a `Serialized` (Go's serialized machine: id, state
names, clocks, queue tick, machine tick, plus the parent id);
`Machine.import_(data, schema, ...)` builds a fresh machine from it, with the
clocks and queue tick restored and the import counted in `machine_tick`. See
the manual's "Export and import" section.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs

from ._schema import compile_schema
from ._types import LogLevel, SchemaError

if TYPE_CHECKING:
    from ._machine import CoreMachine
    from ._types import State

__all__ = ["RESTORED", "Serialized", "export", "import_into", "machine_tick"]

RESTORED: Final = "MachineRestored"
"""The state an import adds when the schema has it (Go's MachineRestored)."""

M = TypeVar("M", bound="CoreMachine")

# machine -> how many times it (or the machine it was exported from) was
# imported; kept beside the core machine so that the core's slots stay as
# they are
_TICKS: weakref.WeakKeyDictionary[CoreMachine, int] = weakref.WeakKeyDictionary()

_FIELDS = ("id", "parent_id", "state_names", "time", "queue_tick", "machine_tick")


def _uint(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{what} must be a non-negative int, got {value!r}")
    return value


@attrs.frozen
class Serialized:
    """A machine's state, serializable: Go's `Serialized` with its JSON names.

    `time` holds the tick of each of `state_names`, index by index (an odd
    tick is an active state). `machine_tick` counts the imports the machine
    went through. `parent_id` is extra to Go's struct and informational:
    an import does not look up the parent.
    """

    id: str
    state_names: tuple[str, ...]
    time: tuple[int, ...]
    queue_tick: int
    machine_tick: int = 0
    parent_id: str = ""

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"id must be a non-empty str, got {self.id!r}")
        if not isinstance(self.parent_id, str):
            raise ValueError(f"parent_id must be a str, got {self.parent_id!r}")
        names = self.state_names
        if not isinstance(names, tuple) or not all(
            isinstance(n, str) and n for n in names
        ):
            raise ValueError(
                f"state_names must be a list of non-empty strings, got {names!r}"
            )
        if len(set(names)) != len(names):
            dups = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"state_names repeats {', '.join(dups)}")
        if not isinstance(self.time, tuple):
            raise ValueError(f"time must be a list of ints, got {self.time!r}")
        if len(self.time) != len(names):
            raise ValueError(
                f"time has {len(self.time)} ticks for {len(names)} state names"
            )
        for name, tick in zip(names, self.time, strict=True):
            _uint(tick, f"the tick of {name}")
        _uint(self.queue_tick, "queue_tick")
        _uint(self.machine_tick, "machine_tick")

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict with Go's field names (`json.dumps` takes it)."""
        return {
            "id": self.id,
            "parent_id": self.parent_id,
            "state_names": list(self.state_names),
            "time": list(self.time),
            "queue_tick": self.queue_tick,
            "machine_tick": self.machine_tick,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Serialized:
        """Parse a dict made by `to_json` (or by Go's `json.Marshal`).

        Raises ValueError naming the field at fault. `parent_id` and
        `machine_tick` may be missing (Go's struct has no parent id).
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(map(str, unknown))}")
        for key in ("id", "state_names", "time", "queue_tick"):
            if key not in data:
                raise ValueError(f"missing field {key!r}")
        names = data["state_names"]
        time = data["time"]
        # Go marshals a nil slice as null
        if names is None:
            names = []
        if time is None:
            time = []
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise ValueError(f"state_names must be a list, got {names!r}")
        if isinstance(time, str) or not isinstance(time, Sequence):
            raise ValueError(f"time must be a list, got {time!r}")
        return cls(
            id=data["id"],
            state_names=tuple(names),
            time=tuple(time),
            queue_tick=data["queue_tick"],
            machine_tick=data.get("machine_tick", 0),
            parent_id=data.get("parent_id") or "",
        )


def machine_tick(mach: CoreMachine) -> int:
    """How many imports `mach`'s state went through (0: never restored)."""
    return _TICKS.get(mach, 0)


def export(mach: CoreMachine) -> Serialized:
    """Snapshot `mach`: id, parent id, state names, clocks and ticks."""
    if mach.disposed:
        raise RuntimeError(f"machine {mach.id} is disposed: nothing to export")
    return Serialized(
        id=mach.id,
        parent_id=mach.parent_id,
        state_names=tuple(mach.state_names),
        time=tuple(mach.time()),
        queue_tick=mach.queue_tick,
        machine_tick=machine_tick(mach),
    )


def coerce(data: Serialized | Mapping[str, Any]) -> Serialized:
    """`data` as a Serialized (a dict is parsed with `Serialized.from_json`)."""
    if isinstance(data, Serialized):
        return data
    return Serialized.from_json(data)


def check_schema(data: Serialized, names: Sequence[str]) -> None:
    """Raise SchemaError unless `data` holds exactly the states in `names`."""
    missing = [n for n in names if n not in data.state_names]
    unknown = [n for n in data.state_names if n not in names]
    if missing or unknown:
        parts = []
        if unknown:
            parts.append(f"states not in the schema: {', '.join(unknown)}")
        if missing:
            parts.append(f"schema states missing from the data: {', '.join(missing)}")
        raise SchemaError(
            f"cannot import machine {data.id}: the schema does not match "
            f"({'; '.join(parts)})"
        )


def check_fresh(mach: CoreMachine) -> None:
    """Raise RuntimeError unless `mach` is fresh enough to be imported into."""
    if mach.disposed:
        raise RuntimeError(f"cannot import into machine {mach.id}: it is disposed")
    if mach._processing or mach.queue_len:
        raise RuntimeError(
            f"cannot import into machine {mach.id}: it is processing its queue"
        )


def import_into(mach: CoreMachine, data: Serialized | Mapping[str, Any]) -> None:
    """Restore `data`'s clocks and queue tick into `mach`, a fresh machine.

    Validates everything before touching the machine: on error `mach` is
    unchanged. Afterwards `machine_tick(mach)` is `data.machine_tick + 1` and,
    when the schema has `MachineRestored`, that state is added (a transition
    handlers and tracers see). The id must match, as in Go.
    """
    data = coerce(data)
    if data.id != mach.id:
        raise ValueError(
            f"cannot import machine {data.id} into machine {mach.id}: ids differ"
        )
    names = mach._cs.names
    check_schema(data, names)
    check_fresh(mach)

    ticks = dict(zip(data.state_names, data.time, strict=True))
    on = mach._on
    mask = 0
    for i, name in enumerate(names):
        tick = ticks[name]
        mach._ticks[name] = tick
        on[name] = active = bool(tick & 1)
        if active:
            mask |= 1 << i
    mach._mkey = mach._cs.mask_key(mask)
    mach._p = data.queue_tick
    mach._n = 0
    _TICKS[mach] = data.machine_tick + 1
    # the clocks moved outside a transition: a recorder's next record must
    # go through its _record (docs/design/architecture.md, "Recorders")
    mach._rec_fast = None
    if mach._log_level >= LogLevel.CHANGES:
        mach._log(
            LogLevel.CHANGES,
            f"[import] imported {data.machine_tick + 1} times, "
            f"now at {sum(data.time)} ticks",
        )
    if RESTORED in mach._index:
        mach.add1(RESTORED)


def import_new(
    cls: type[M],
    data: Serialized | Mapping[str, Any],
    schema: Mapping[str, State],
    kwargs: dict[str, Any],
) -> M:
    """Build a `cls` machine with `data`'s id and import `data` into it."""
    data = coerce(data)
    if "id" in kwargs:
        raise TypeError("import_() takes the id from the data, not from id=")
    # validate before constructing: tracers see no machine on bad input
    check_schema(data, compile_schema(schema).names)
    mach = cls(schema, id=data.id, **kwargs)
    import_into(mach, data)
    return mach
