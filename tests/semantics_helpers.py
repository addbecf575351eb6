"""Shared helpers for the semantics tests (`tests/test_semantics_*.py`).

- `recorder(...)` builds a handler object that records every handler call
  (by method name, in call order) and can be told to return `False`, raise,
  or run an action for chosen handler names.
- `LogSink()` captures log lines through the machine's `logger=` sink (an
  `asyncmachine.testing.LogCapture` that strips the `[mach1] ` prefix).
- `ABCD()` is the plain schema of states A B C D used by many examples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import asyncmachine as am
from asyncmachine.testing import LogCapture

MACH_ID = "mach1"
PREFIX = f"[{MACH_ID[:5]}] "

HANDLER_SUFFIXES = ("Enter", "Exit", "State", "End")
NEGOTIATION_SUFFIXES = ("Enter", "Exit")


def ABCD(**overrides: am.State) -> dict[str, am.State]:
    """States A B C D without relations, with some replaced by `overrides`."""
    schema = {name: am.State() for name in "ABCD"}
    schema.update(overrides)
    return schema


def handler_names(states: Iterable[str], *, pairs: bool = True) -> list[str]:
    """Every handler name of `states`: suffix forms, X+Y pairs, Any*."""
    states = list(states)
    names = ["AnyEnter", "AnyState"]
    for x in states:
        names += [x + suffix for suffix in HANDLER_SUFFIXES]
    if pairs:
        for x in states:
            for y in states:
                names.append(x + y)
    return names


def _is_negotiation(name: str, states: list[str]) -> bool:
    if name == "AnyEnter":
        return True
    if name == "AnyState":
        return False
    for x in states:
        for suffix in HANDLER_SUFFIXES:
            if name == x + suffix:
                return suffix in NEGOTIATION_SUFFIXES
    return True  # self and cross handlers


def recorder(
    states: Iterable[str],
    *,
    returns: Mapping[str, Any] | None = None,
    raises: Mapping[str, BaseException] | None = None,
    actions: Mapping[str, Callable[[Any], Any]] | None = None,
    only: Iterable[str] | None = None,
    base: type = object,
) -> Any:
    """Return a handler object recording its calls in `obj.calls`.

    `returns[name]`: value a negotiation handler returns (default None,
    which accepts). `raises[name]`: exception the handler raises (after
    recording and after its action). `actions[name](e)`: called first.
    `only`: restrict the defined handlers to these names.
    `obj.events` keeps `(name, e)` pairs.
    """
    states = list(states)
    returns = dict(returns or {})
    raises = dict(raises or {})
    actions = dict(actions or {})
    names = list(only) if only is not None else handler_names(states)

    def make(hname: str, negotiation: bool) -> Callable[[Any, Any], Any]:
        def handler(self: Any, e: Any) -> Any:
            self.calls.append(hname)
            self.events.append((hname, e))
            if hname in actions:
                actions[hname](e)
            if hname in raises:
                raise raises[hname]
            if negotiation:
                return returns.get(hname)
            return None

        handler.__name__ = hname
        handler.__qualname__ = f"Recorder.{hname}"
        return handler

    ns: dict[str, Any] = {
        name: make(name, _is_negotiation(name, states)) for name in names
    }
    cls = type("Recorder", (base,), ns)
    obj = cls()
    obj.calls = []
    obj.events = []
    return obj


def LogSink() -> LogCapture:
    """A `logger=` sink keeping `(level, text)` pairs; `lines` drop `[mach1] `."""
    return LogCapture(MACH_ID)


def logged_machine(
    schema: Mapping[str, am.State],
    level: am.LogLevel = am.LogLevel.OPS,
    **kwargs: Any,
) -> tuple[am.Machine, LogCapture]:
    sink = LogSink()
    mach = am.Machine(schema, id=MACH_ID, log_level=level, logger=sink, **kwargs)
    return mach, sink
