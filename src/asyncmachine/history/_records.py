"""History records, queries and the tracking config (Go's pkg/history shapes)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from .._types import MutationType, State

__all__ = [
    "ConditionTime",
    "Config",
    "HistoryError",
    "MachineRecord",
    "Query",
    "Record",
    "TimeRecord",
    "TransitionRecord",
    "from_micros",
    "to_micros",
]


class HistoryError(Exception):
    """A history store cannot be opened, read or written."""


def _names(value: Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        raise TypeError(f"expected a list of state names, got the string {value!r}")
    out = tuple(value)
    for name in out:
        if not isinstance(name, str):
            raise TypeError(f"state names are strings, got {name!r}")
    return out


def _opt_names(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else _names(value)


def to_micros(when: datetime) -> int:
    """Microseconds since the epoch of `when` (a naive datetime is UTC)."""
    if not isinstance(when, datetime):
        raise TypeError(f"expected a datetime, got {type(when).__name__}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    """The UTC datetime `micros` microseconds after the epoch."""
    return datetime.fromtimestamp(micros // 1_000_000, UTC).replace(
        microsecond=micros % 1_000_000
    )


@attrs.frozen
class Config:
    """What `track()` records (Go's `history.BaseConfig`).

    A transition is recorded when it passes the `called` and `changed`
    filters, exactly as Go decides it: with neither list set every
    transition passes; a called (or changed) state on an allow-list makes
    it pass, one on a block-list (`*_exclude=True`) stops it, the `changed`
    list deciding last. Rejected transitions only with `track_rejected`;
    checks (`can_add`) never.
    """

    called: tuple[str, ...] = attrs.field(default=(), converter=_names)
    """Called states that make a transition recorded (or not, see exclude)."""
    called_exclude: bool = False
    """Turn `called` into a block-list."""
    changed: tuple[str, ...] = attrs.field(default=(), converter=_names)
    """States whose tick changed that make a transition recorded (or not)."""
    changed_exclude: bool = False
    """Turn `changed` into a block-list."""
    track_rejected: bool = False
    """Record canceled transitions too."""
    tracked_states: tuple[str, ...] | None = attrs.field(
        default=None, converter=_opt_names
    )
    """States whose ticks each record keeps; None: every state. The allow-
    listed `called` and `changed` states are always added (as in Go)."""
    store_transitions: bool = False
    """Keep a `TransitionRecord` with every `TimeRecord`."""
    store_schema: bool = False
    """Keep the machine's schema in its `MachineRecord`."""
    max_records: int | None = 1000
    """Records kept per machine, oldest dropped first; None: no limit
    (refused by `MemoryStore`, which is always bounded)."""

    def __attrs_post_init__(self) -> None:
        mr = self.max_records
        if mr is not None and (
            not isinstance(mr, int) or isinstance(mr, bool) or mr < 1
        ):
            raise ValueError(f"max_records must be a positive int or None, got {mr!r}")


@attrs.frozen
class MachineRecord:
    """What a store knows of one tracked machine (Go's `MachineRecord`).

    `tracked_states`, `queue_tick` and `parent_id` are extra to Go's record:
    queries need the first, restoring the other two. `state_names` is always
    kept (restoring needs it); `schema` only with `store_schema`.
    """

    mach_id: str
    state_names: tuple[str, ...]
    tracked_states: tuple[str, ...]
    first_tracking: datetime
    last_tracking: datetime
    last_sync: datetime
    mtime: tuple[int, ...]
    mtime_sum: int
    mach_tick: int
    queue_tick: int
    next_id: int
    parent_id: str = ""
    schema: Mapping[str, State] | None = None
    mtime_monotonic: bool = True
    """False once a record's machine time sum was below the previous one's
    (a machine tracked again without being restored)."""

    def to_serialized(self) -> Any:
        """The record as `am.Serialized`, for `Machine.import_`."""
        from .._export import Serialized

        return Serialized(
            id=self.mach_id,
            parent_id=self.parent_id,
            state_names=self.state_names,
            time=self.mtime,
            queue_tick=self.queue_tick,
            machine_tick=self.mach_tick,
        )


@attrs.frozen
class TimeRecord:
    """One recorded transition's times (Go's `TimeRecord`)."""

    id: int
    """Per machine, from 1, in recording order."""
    mut_type: MutationType
    mtime_sum: int
    """Sum of all ticks after the transition (machine time)."""
    mtime_tracked_sum: int
    """Sum of the tracked states' ticks after the transition."""
    mtime_diff_sum: int
    """How much the machine time grew in this transition."""
    mtime_tracked_diff_sum: int
    """How much the tracked states' ticks grew in this transition."""
    mtime_record_diff_sum: int
    """Machine time since the previous record (0 for the first)."""
    htime: datetime
    """When the transition ended, UTC, to the microsecond."""
    mtime_tracked: tuple[int, ...]
    """Ticks of the tracked states after the transition."""
    mtime_tracked_diff: tuple[int, ...]
    """How much each tracked state's tick grew in this transition."""
    mach_tick: int
    """The machine's `machine_tick` (imports) at the time."""


@attrs.frozen
class TransitionRecord:
    """A recorded transition's details (Go's `TransitionRecord`).

    `called` holds indexes into the machine record's `state_names`;
    `arguments` the args as the machine's `log_args_mapper` shows them (log
    tags of typed args). Go's source transition and machine are absent: a
    mutation here does not carry its source.
    """

    transition_id: str
    time_record_id: int
    is_auto: bool
    is_accepted: bool
    is_check: bool
    queue_len: int
    queued_at: int
    """Queue tick of the mutation; 0 for prepended (auto, nested) ones."""
    executed_at: int
    """The machine's processed queue tick when it ran; 0 when not queued."""
    called: tuple[int, ...]
    arguments: Mapping[str, str]


@attrs.frozen
class Record:
    """A `TimeRecord` and, with `store_transitions`, its `TransitionRecord`."""

    time: TimeRecord
    transition: TransitionRecord | None = None


@attrs.frozen
class ConditionTime:
    """One end of a time window (Go's `ConditionTime`).

    Every field left None is no bound. `Query.start` holds the lower bounds,
    `Query.end` the upper ones, each inclusive and each applied on its own
    (Go applies a field only when both ends set it).
    """

    htime: datetime | None = None
    mtime_sum: int | None = None
    mtime_tracked_sum: int | None = None
    mtime_diff: int | None = None
    mtime_tracked_diff: int | None = None
    mtime_record_diff: int | None = None
    mach_tick: int | None = None
    mtime_states: tuple[str, ...] = attrs.field(default=(), converter=_names)
    """Tracked states bounded by `mtime`, tick by tick."""
    mtime: tuple[int, ...] = attrs.field(default=(), converter=tuple)

    def __attrs_post_init__(self) -> None:
        if len(self.mtime_states) != len(self.mtime):
            raise ValueError(
                f"mtime has {len(self.mtime)} ticks for "
                f"{len(self.mtime_states)} mtime_states"
            )
        if self.htime is not None and not isinstance(self.htime, datetime):
            raise TypeError(f"htime must be a datetime, got {self.htime!r}")
        for name in (
            "mtime_sum",
            "mtime_tracked_sum",
            "mtime_diff",
            "mtime_tracked_diff",
            "mtime_record_diff",
            "mach_tick",
        ):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                raise TypeError(f"{name} must be an int, got {v!r}")


_NO_TIME = ConditionTime()


@attrs.frozen
class Query:
    """Conditions on one record (Go's `Query`); all must hold.

    `active` / `inactive`: the states are active / inactive after the
    transition. `activated` / `deactivated`: the transition changed the
    state's tick and left it active / inactive. Every state named must be
    tracked.
    """

    active: tuple[str, ...] = attrs.field(default=(), converter=_names)
    activated: tuple[str, ...] = attrs.field(default=(), converter=_names)
    inactive: tuple[str, ...] = attrs.field(default=(), converter=_names)
    deactivated: tuple[str, ...] = attrs.field(default=(), converter=_names)
    start: ConditionTime = _NO_TIME
    end: ConditionTime = _NO_TIME

    def states(self) -> list[str]:
        """Every state the query names."""
        return [
            *self.active,
            *self.activated,
            *self.inactive,
            *self.deactivated,
            *self.start.mtime_states,
            *self.end.mtime_states,
        ]


def check_states(
    names: Sequence[str],
    tracked: Sequence[str],
    state_names: Sequence[str],
    mach_id: str,
) -> None:
    """Raise for the first of `names` the machine lacks or does not track.

    An unknown state raises `am.StateNameError`; a known but untracked one
    a ValueError naming it and the tracked states.
    """
    from .._types import StateNameError

    for name in names:
        if name not in state_names:
            raise StateNameError(name, mach_id)
        if name not in tracked:
            raise ValueError(
                f"state {name!r} is not tracked in machine {mach_id} "
                f"(tracked: {', '.join(tracked)})"
            )
