"""Typed state names: classes whose attributes are state names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ._types import EXCEPTION, SchemaError, State

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
        # bases in declaration order, each with all its own inherited names:
        # class C(A, B) lists A's names, then B's new ones, then C's own
        for base in cls.__bases__:
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

    @classmethod
    def check_schema(cls, schema: Mapping[str, State]) -> None:
        """Check that `schema` defines exactly the states of this class.

        Raises `SchemaError` naming the first state the schema lacks, the
        first state it has that this class does not declare, or a relation
        that names an undeclared state. `Exception` may be left out of the
        schema (every machine adds it).
        """
        declared = dict.fromkeys(cls.names())
        for name in declared:
            if name not in schema and name != EXCEPTION:
                raise SchemaError(
                    f"the schema lacks the state {name!r} of {cls.__name__}"
                )
        for name, st in schema.items():
            if name not in declared:
                raise SchemaError(
                    f"the schema has the state {name!r}, "
                    f"which {cls.__name__} does not declare"
                )
            for rel in ("require", "add", "remove", "after"):
                for other in getattr(st, rel):
                    if other not in declared:
                        raise SchemaError(
                            f"state {name!r} has {rel}={other!r}, "
                            f"which {cls.__name__} does not declare"
                        )

    @classmethod
    def check_groups(cls, groups: type) -> None:
        """Check that each group of a `FooGroups` class names states of this class.

        A group is a public class attribute holding a tuple (or list) of
        state names, by convention mutually exclusive states. Raises
        `SchemaError` naming the group and the state at fault.
        """
        declared = set(cls.names())
        for owner in reversed(groups.__mro__[:-1]):  # all but `object`
            for attr, value in vars(owner).items():
                if attr.startswith("_"):
                    continue
                if not isinstance(value, tuple | list):
                    raise SchemaError(
                        f"{groups.__name__}.{attr} is not a group: "
                        "a group is a tuple of state names"
                    )
                for name in value:
                    if name not in declared:
                        raise SchemaError(
                            f"group {groups.__name__}.{attr} names {name!r}, "
                            f"which {cls.__name__} does not declare"
                        )

    def __init__(self) -> None:
        raise TypeError(f"{type(self).__name__} holds names; use the class itself")
