"""Typed state names: classes whose attributes are state names."""

from __future__ import annotations

from typing import Any, ClassVar

from ._types import EXCEPTION

__all__ = ["StatesBase", "state"]


class _Unnamed(str):
    """Placeholder returned by `state()` until the class names it."""

    __slots__ = ()


def state() -> str:
    """Declare a state name; the attribute it is assigned to names it.

    >>> class MyStates(StatesBase):
    ...     Ready = state()
    >>> MyStates.Ready
    'Ready'
    """
    return _Unnamed("")


class StatesBase:
    """Base of typed state-name classes.

    Subclass it and declare names with `Name = am.state()` (or
    `Name = "Name"`). Subclasses inherit their parents' names, so state
    sets merge by inheritance; `names()` lists them in declaration order,
    parents first, with `Exception` last.
    """

    Exception: ClassVar[str] = EXCEPTION
    _names: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names: dict[str, None] = {}
        for base in reversed(cls.__mro__[1:]):
            if issubclass(base, StatesBase):
                names.update(dict.fromkeys(base._names))
        for attr, value in list(vars(cls).items()):
            if attr.startswith("_") or not isinstance(value, str):
                continue
            if isinstance(value, _Unnamed):
                value = attr
                setattr(cls, attr, attr)
            elif value != attr:
                raise ValueError(
                    f"{cls.__name__}.{attr} names the state {value!r}; "
                    "a state attribute must equal its own name"
                )
            if attr != EXCEPTION:
                names[attr] = None
        names.pop(EXCEPTION, None)
        cls._names = tuple(names)

    @classmethod
    def names(cls) -> list[str]:
        """All state names, parents' first, `Exception` last."""
        return [*cls._names, EXCEPTION]

    def __init__(self) -> None:
        raise TypeError(f"{type(self).__name__} holds names; use the class itself")
