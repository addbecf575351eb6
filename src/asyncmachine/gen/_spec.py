"""What a states file declares, parsed from am-gen's command-line syntax.

The syntax follows asyncmachine-go's ``am-gen states-file``:

- states: ``Foo,Bar:auto,Baz:multi:require(Foo;Bar):remove(_Work)`` --
  flags ``auto`` and ``multi``, relations ``require``, ``add``, ``remove``
  and ``after`` with their states in parentheses (separated by ``;``, or by
  ``,`` inside the parentheses); ``_Name`` names a group;
- groups: ``Work(Foo;Bar),Idle`` (a group without a list is empty);
- inherit: ``basic,connected`` (from `asyncmachine.states`) or
  ``package.module:FooStates`` (a `StatesBase` subclass whose module also
  has ``FOO_SCHEMA`` and, optionally, ``FooGroups``).
"""

from __future__ import annotations

import importlib
import keyword
import re
from collections.abc import Iterable, Mapping
from typing import Any, final

import attrs

from .._schema import compile_schema, s_add, schema_merge
from .._states import StatesBase
from .._types import EXCEPTION, SchemaError, State

__all__ = [
    "GenError",
    "Group",
    "Parent",
    "Ref",
    "StateDef",
    "StatesFile",
    "build",
    "parse_groups",
    "parse_states",
    "resolve_parent",
    "snake",
]

RELATIONS = ("require", "add", "remove", "after")
MAX_NAME = 32
"""Longest name accepted; the generated layout is checked up to this length."""
BUILTIN_MODULE = "asyncmachine.states"
_RESERVED = {"names", "state", "am", "Final", "annotations"}


@final
class GenError(ValueError):
    """Bad input to the generator; the message names the part at fault."""


def snake(name: str) -> str:
    """``MyMach`` -> ``my_mach``."""
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _cap(name: str) -> str:
    return name[:1].upper() + name[1:]


def _ident(name: str, what: str) -> str:
    name = _cap(name.strip())
    if (
        not name.isidentifier()
        or keyword.iskeyword(name)
        or name.startswith("_")
        or name in _RESERVED
        or not name.isascii()
    ):
        raise GenError(f"{what} {name!r} is not a valid name (an ASCII identifier)")
    if len(name) > MAX_NAME:
        raise GenError(f"{what} {name!r} is longer than {MAX_NAME} characters")
    return name


def split_top(text: str) -> list[str]:
    """Split on commas outside parentheses; drop empty items."""
    out: list[str] = []
    depth = 0
    cur = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise GenError(f"unbalanced ')' in {text!r}")
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if depth:
        raise GenError(f"unbalanced '(' in {text!r}")
    out.append(cur)
    return [item.strip() for item in out if item.strip()]


def _targets(text: str, where: str) -> list[str]:
    items = [t.strip() for t in re.split(r"[;,]", text)]
    if not all(items):
        raise GenError(f"empty name in {where}")
    return items


@final
@attrs.frozen
class Ref:
    """A state, or a group (``_Name``), named in a relation."""

    name: str
    group: bool = False


@final
@attrs.frozen
class StateDef:
    """One state declared by the file."""

    name: str
    auto: bool = False
    multi: bool = False
    relations: tuple[tuple[str, tuple[Ref, ...]], ...] = ()


@final
@attrs.frozen
class Group:
    """A named tuple of states declared by the file."""

    name: str
    states: tuple[str, ...] = ()


@final
@attrs.frozen(eq=False)
class Parent:
    """An inherited states module, resolved by importing it."""

    module: str
    states_class: str
    schema_name: str
    groups_class: str | None
    cls: type[StatesBase]
    schema: Mapping[str, State]
    groups: Mapping[str, tuple[str, ...]]
    groups_cls: type | None


def parse_states(items: Iterable[str]) -> list[StateDef]:
    """Parse state items (``Foo:auto:require(Bar)``), each may hold several."""
    out: dict[str, StateDef] = {}
    for chunk in items:
        for item in split_top(chunk):
            head, *props = [p.strip() for p in re.split(r":(?![^(]*\))", item)]
            name = _ident(head, "state")
            if name == EXCEPTION:
                raise GenError("Exception is in every machine; do not declare it")
            if name in out:
                raise GenError(f"state {name!r} is declared twice")
            flags = {"auto": False, "multi": False}
            rels: dict[str, list[Ref]] = {}
            for prop in props:
                low = prop.lower()
                if low in flags:
                    flags[low] = True
                    continue
                m = re.fullmatch(r"(\w+)\((.*)\)", prop)
                if m is None or m.group(1).lower() not in RELATIONS:
                    raise GenError(
                        f"state {name!r}: unknown property {prop!r} (use auto, "
                        "multi, or require(...), add(...), remove(...), after(...))"
                    )
                rel = m.group(1).lower()
                for target in _targets(m.group(2), f"{name}:{prop}"):
                    ref = (
                        Ref(_ident(target[1:], "group"), group=True)
                        if target.startswith("_")
                        else Ref(_ident(target, "state"))
                    )
                    rels.setdefault(rel, []).append(ref)
            relations = tuple(
                (rel, tuple(dict.fromkeys(rels[rel])))
                for rel in RELATIONS
                if rel in rels
            )
            out[name] = StateDef(name, flags["auto"], flags["multi"], relations)
    return list(out.values())


def parse_groups(items: Iterable[str]) -> list[Group]:
    """Parse group items (``Work(Foo;Bar)`` or ``Idle``)."""
    out: dict[str, Group] = {}
    for chunk in items:
        for item in split_top(chunk):
            m = re.fullmatch(r"([^()]+)(?:\((.*)\))?", item)
            if m is None:
                raise GenError(f"bad group {item!r} (use Name or Name(State1;State2))")
            name = _ident(m.group(1), "group")
            if name in out:
                raise GenError(f"group {name!r} is declared twice")
            members = (
                [_ident(s, "state") for s in _targets(m.group(2), item)]
                if m.group(2) is not None and m.group(2).strip()
                else []
            )
            out[name] = Group(name, tuple(dict.fromkeys(members)))
    return list(out.values())


def _builtin_choices() -> list[str]:
    try:
        mod = importlib.import_module(BUILTIN_MODULE)
    except ImportError:
        return []
    return sorted(
        snake(n[: -len("States")])
        for n, v in vars(mod).items()
        if n.endswith("States")
        and isinstance(v, type)
        and issubclass(v, StatesBase)
        and v is not StatesBase
    )


def resolve_parent(spec: str) -> Parent:
    """Import an inherited states module: ``basic`` or ``pkg.mod:FooStates``."""
    spec = spec.strip()
    if ":" in spec:
        module, _, cls_name = spec.partition(":")
    else:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", spec):
            raise GenError(
                f"inherit {spec!r}: use a name of {BUILTIN_MODULE} (like basic) "
                "or module:FooStates"
            )
        module = BUILTIN_MODULE
        cls_name = "".join(_cap(p) for p in spec.split("_")) + "States"
    if not cls_name.endswith("States") or cls_name == "States":
        raise GenError(f"inherit {spec!r}: the class name must end with 'States'")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise GenError(f"inherit {spec!r}: cannot import {module}: {exc}") from exc
    cls = getattr(mod, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, StatesBase)):
        hint = ""
        if module == BUILTIN_MODULE:
            hint = f" (available: {', '.join(_builtin_choices()) or 'none'})"
        raise GenError(
            f"inherit {spec!r}: {module} has no StatesBase subclass {cls_name}{hint}"
        )
    prefix = cls_name[: -len("States")]
    schema_name = snake(prefix).upper() + "_SCHEMA"
    schema = getattr(mod, schema_name, None)
    if not isinstance(schema, Mapping):
        raise GenError(f"inherit {spec!r}: {module} has no schema {schema_name}")
    groups_name = prefix + "Groups"
    groups_cls = getattr(mod, groups_name, None)
    groups: dict[str, tuple[str, ...]] = {}
    if isinstance(groups_cls, type):
        for klass in reversed(groups_cls.__mro__):
            for attr, value in vars(klass).items():
                if not attr.startswith("_") and _is_names(value):
                    groups[attr] = tuple(value)
    else:
        groups_cls = None
    return Parent(
        module=module,
        states_class=cls_name,
        schema_name=schema_name,
        groups_class=groups_name if groups_cls is not None else None,
        cls=cls,
        schema=schema,
        groups=groups,
        groups_cls=groups_cls,
    )


def _is_names(value: Any) -> bool:
    return isinstance(value, tuple | list) and all(isinstance(v, str) for v in value)


@final
@attrs.frozen(eq=False)
class StatesFile:
    """Everything one generated states file declares, checked for consistency."""

    name: str
    states: tuple[StateDef, ...]
    groups: tuple[Group, ...] = ()
    parents: tuple[Parent, ...] = ()
    description: str = ""
    command: str = ""

    @property
    def states_class(self) -> str:
        """``FooStates``."""
        return self.name + "States"

    @property
    def groups_class(self) -> str:
        """``FooGroups``."""
        return self.name + "Groups"

    @property
    def schema_name(self) -> str:
        """``FOO_SCHEMA``."""
        return snake(self.name).upper() + "_SCHEMA"

    @property
    def has_groups(self) -> bool:
        """Whether the file declares a groups class."""
        return bool(self.groups) or any(p.groups_cls for p in self.parents)

    def merge_order(self) -> list[Parent]:
        """Parents in the order `FooStates.names()` lists their states.

        That is the order of the bases (raises `TypeError` if Python cannot
        combine them).
        """
        type("_Probe", tuple(p.cls for p in self.parents), {})
        return list(self.parents)

    def schema(self) -> dict[str, State]:
        """The schema the generated module will define."""
        groups = self.group_values()
        local: dict[str, State] = {}
        for st in self.states:
            rels: dict[str, list[str]] = {}
            for rel, refs in st.relations:
                rels[rel] = s_add(
                    *([r.name] if not r.group else groups[r.name] for r in refs)
                )
            local[st.name] = State(auto=st.auto, multi=st.multi, **rels)
        return schema_merge(*(p.schema for p in self.merge_order()), local)

    def group_values(self) -> dict[str, tuple[str, ...]]:
        """Every group visible as ``FooGroups.X``: inherited, then local."""
        out: dict[str, tuple[str, ...]] = {}
        for p in self.parents:
            out.update(p.groups)
        out.update({g.name: g.states for g in self.groups})
        return out

    def validate(self) -> None:
        """Raise `GenError` for names that the file would use but not have."""
        if not self.states:
            raise GenError("declare at least one state (--states)")
        if not self.description.isprintable() or any(
            c in self.description for c in '\\"'
        ):
            raise GenError("the description must be one line without quotes or \\")
        local = {s.name for s in self.states}
        inherited: set[str] = set()
        for p in self.parents:
            inherited.update(p.cls.names())
        known = local | inherited | {EXCEPTION}
        groups = self.group_values()
        clash = local & set(groups) | {g.name for g in self.groups} & inherited
        if clash:
            raise GenError(f"{sorted(clash)[0]!r} is both a state and a group")
        for g in self.groups:
            for s in g.states:
                if s not in known:
                    raise GenError(f"group {g.name!r} names the unknown state {s!r}")
        for st in self.states:
            for rel, refs in st.relations:
                for ref in refs:
                    if ref.group and ref.name not in groups:
                        raise GenError(
                            f"state {st.name!r}: {rel}(_{ref.name}) names an unknown group"
                        )
                    if not ref.group and ref.name not in known:
                        raise GenError(
                            f"state {st.name!r}: {rel}({ref.name}) names an unknown state"
                        )
        try:
            self.merge_order()
        except TypeError as exc:
            raise GenError(f"the inherited classes cannot be combined: {exc}") from exc
        try:
            compile_schema(self.schema())
        except SchemaError as exc:
            raise GenError(f"the schema is invalid: {exc}") from exc


def build(
    name: str,
    states: Iterable[str],
    *,
    groups: Iterable[str] = (),
    inherit: Iterable[str] = (),
    description: str = "",
    command: str = "",
) -> StatesFile:
    """Parse, resolve and check everything a states file declares."""
    for arg, value in (("states", states), ("groups", groups), ("inherit", inherit)):
        if isinstance(value, str):
            raise TypeError(f"{arg} takes a list of strings, not the string {value!r}")
    parents: list[Parent] = []
    for chunk in inherit:
        for item in split_top(chunk):
            parent = resolve_parent(item)
            if all(parent.cls is not q.cls for q in parents):
                parents.append(parent)
    # a parent that another parent already inherits adds nothing
    parents = [
        p
        for p in parents
        if not any(q.cls is not p.cls and issubclass(q.cls, p.cls) for q in parents)
    ]
    spec = StatesFile(
        name=_ident(name, "name"),
        states=tuple(parse_states(states)),
        groups=tuple(parse_groups(groups)),
        parents=tuple(parents),
        description=description.strip().rstrip("."),
        command=command,
    )
    spec.validate()
    return spec
