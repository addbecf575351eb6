"""Binding handler objects to a machine (docs/design/semantics.md §5.1)."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any

from ._types import StateNameError

__all__ = ["Binding", "handler_pairs", "scan_handlers"]

SUFFIXES = ("Enter", "Exit", "State", "End")
NEGOTIATION_SUFFIXES = ("Enter", "Exit")
ANY_ENTER = "AnyEnter"
ANY_STATE = "AnyState"


class Binding:
    """One bound handler object and the handler methods found on it."""

    __slots__ = ("async_names", "id", "methods", "number", "obj", "pairs")

    def __init__(
        self,
        number: int,
        binding_id: str,
        obj: object,
        methods: dict[str, Callable[..., Any]],
        async_names: frozenset[str],
    ) -> None:
        self.number = number
        self.id = binding_id
        self.obj = obj
        self.methods = methods
        self.async_names = async_names
        self.pairs: frozenset[tuple[str, str]] = frozenset()


def new_binding_id() -> str:
    """Return a fresh anonymous binding id."""
    return "anon-" + os.urandom(2).hex()


def _split_pair(name: str, index: Mapping[str, int]) -> list[tuple[str, str]]:
    return [
        (name[:i], name[i:])
        for i in range(1, len(name))
        if name[:i] in index and name[i:] in index
    ]


def handler_pairs(
    methods: Mapping[str, object], index: Mapping[str, int]
) -> frozenset[tuple[str, str]]:
    """Every (X, Y) of two different states whose `XY` names a method: the
    cross handlers a transition may call, so a handler plan looks up only
    these instead of every active x target pair."""
    return frozenset(
        pair
        for name in methods
        for pair in _split_pair(name, index)
        if pair[0] != pair[1]
    )


def scan_handlers(
    obj: object, index: Mapping[str, int], machine_id: str
) -> tuple[dict[str, Callable[..., Any]], frozenset[str]]:
    """Find the handler methods of `obj`; raise for names that cannot bind."""
    methods: dict[str, Callable[..., Any]] = {}
    async_names: set[str] = set()
    for name in dir(obj):
        if not name[:1].isupper():
            continue
        try:
            fn = getattr(obj, name)
        except AttributeError:
            continue
        if not callable(fn) or inspect.isclass(fn):
            continue
        is_negotiation = False
        if name in (ANY_ENTER, ANY_STATE):
            is_negotiation = name == ANY_ENTER
        else:
            suffix = next((s for s in SUFFIXES if name.endswith(s)), None)
            prefix = name[: -len(suffix)] if suffix else ""
            if suffix and prefix in index:
                is_negotiation = suffix in NEGOTIATION_SUFFIXES
            else:
                pairs = _split_pair(name, index)
                if not pairs:
                    if suffix:
                        raise StateNameError(prefix, machine_id)
                    continue
                if len(pairs) > 1:
                    raise ValueError(
                        f"handler {name!r} is ambiguous: it can mean "
                        + " or ".join(f"{a}+{b}" for a, b in pairs)
                    )
                is_negotiation = True
        is_async = inspect.iscoroutinefunction(fn)
        if is_async and is_negotiation:
            raise TypeError(
                f"negotiation handler {name!r} must be synchronous, not async def"
            )
        if is_async:
            async_names.add(name)
        methods[name] = fn
    return methods, frozenset(async_names)
