"""Small helpers: activation counts, Multi checks, conditions, tags."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import final

import attrs

from .._machine import CoreMachine
from .._types import StateNameError

__all__ = ["Cond", "activations", "is_multi", "tag_value", "tag_value_int"]


def activations(tick: int) -> int:
    """How many times a state activated, from its tick (`(tick + 1) // 2`)."""
    if not isinstance(tick, int) or tick < 0:
        raise ValueError(f"a tick is an int >= 0, got {tick!r}")
    return (tick + 1) // 2


def is_multi(mach: CoreMachine, state: str) -> bool:
    """True if `state` is a Multi state of `mach`."""
    st = mach.schema.get(state)
    if st is None:
        raise StateNameError(state, mach.id)
    return st.multi


def _names(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError(f"expected a list of state names, not the string {value!r}")
    return tuple(value)


def _groups(value: Iterable[Iterable[str]]) -> tuple[tuple[str, ...], ...]:
    if isinstance(value, str):
        raise TypeError(f"expected a list of state lists, not the string {value!r}")
    return tuple(_names(group) for group in value)


def _clock(value: Mapping[str, int]) -> dict[str, int]:
    return dict(value)


@final
@attrs.frozen(kw_only=True)
class Cond:
    """A condition on a machine's states; `cond.check(mach)` when all parts
    hold (an empty part always holds)."""

    is_: tuple[str, ...] = attrs.field(default=(), converter=_names)
    """All of these states are active."""
    any_: tuple[tuple[str, ...], ...] = attrs.field(default=(), converter=_groups)
    """At least one of these groups is all active."""
    any1: tuple[str, ...] = attrs.field(default=(), converter=_names)
    """At least one of these states is active."""
    not_: tuple[str, ...] = attrs.field(default=(), converter=_names)
    """None of these states is active."""
    clock: dict[str, int] = attrs.field(factory=dict, converter=_clock)
    """Each state's tick is at least this value."""

    def check(self, mach: CoreMachine | None) -> bool:
        """True if `mach` meets every part of the condition (False for None,
        as in Go)."""
        if mach is None:
            return False
        if self.is_ and not mach.is_(self.is_):
            return False
        if self.not_ and mach.any1(*self.not_):
            return False
        if self.any1 and not mach.any1(*self.any1):
            return False
        if self.any_ and not mach.any(*self.any_):
            return False
        return all(mach.tick(s) >= t for s, t in self.clock.items())

    def is_empty(self) -> bool:
        """True when no part is set (then `check` is always True)."""
        return not (self.is_ or self.any_ or self.any1 or self.not_ or self.clock)


def tag_value(tags: Iterable[str], key: str) -> str:
    """The value of the first `key:value` tag, `key` itself for a bare
    `key` tag, or `""` if no tag has that key (as Go's `TagValue`)."""
    for tag in tags:
        name, sep, value = tag.partition(":")
        if name == key:
            return value if sep else key
    return ""


def tag_value_int(tags: Iterable[str], key: str) -> int:
    """`tag_value` as an int: -1 if no tag has `key` (Go: `TagValueInt`).

    Raises ValueError naming the tag when its value is not an int.
    """
    value = tag_value(tags, key)
    if not value:
        return -1
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"tag {key!r} has no int value: {value!r}") from None


Cond.__module__ = "asyncmachine.helpers"
