"""Mermaid and Graphviz renderings of a machine or a schema."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Final, Literal, TypeAlias

from .._machine import CoreMachine
from .._types import EXCEPTION, State

__all__ = ["RELATIONS", "Diagram", "Relation", "diagram", "dot", "mermaid"]

Relation: TypeAlias = Literal["require", "add", "remove", "after"]
"""A relation drawn as an edge."""

RELATIONS: Final[tuple[Relation, ...]] = ("require", "add", "remove", "after")
"""Every relation, in the order edges are drawn."""

# Graphviz edge styles, one per relation
_DOT_STYLE: Final[dict[str, str]] = {
    "require": 'color="#1f4e79"',
    "add": 'color="#2e7d32"',
    "remove": 'color="#c62828", style=dashed',
    "after": 'color="#757575", style=dotted',
}
_ACTIVE_FILL: Final = "#b9e4b9"
_ACTIVE_STROKE: Final = "#2e7d32"
_ERROR_FILL: Final = "#f4b6b6"
_ERROR_STROKE: Final = "#c62828"
# words with a meaning in Mermaid's state-diagram syntax
_MERMAID_RESERVED: Final = frozenset(
    {"state", "end", "note", "direction", "class", "classdef", "click", "style"}
)


class Diagram:
    """What a diagram shows: states, their flags, relations and activity.

    Build it with `diagram()`; `mermaid()` and `dot()` render it.
    """

    __slots__ = ("active", "edges", "name", "schema", "states")

    def __init__(
        self,
        name: str,
        schema: Mapping[str, State],
        states: list[str],
        edges: list[tuple[str, str, Relation]],
        active: frozenset[str],
    ) -> None:
        self.name: str = name
        """A title: the machine's id, or empty for a schema."""
        self.schema: Mapping[str, State] = schema
        """The normalised schema the diagram was drawn from."""
        self.states: list[str] = states
        """The states drawn, in state order."""
        self.edges: list[tuple[str, str, Relation]] = edges
        """(from, to, relation) for every relation between drawn states."""
        self.active: frozenset[str] = active
        """The drawn states to highlight as active."""

    def flags(self, state: str) -> list[str]:
        """The flags of `state` worth a label: ``auto``, ``multi``."""
        st = self.schema[state]
        return [f for f, on in (("auto", st.auto), ("multi", st.multi)) if on]


def _check_names(kind: str, names: Iterable[str], known: Collection[str]) -> None:
    for name in names:
        if name not in known:
            raise ValueError(f"{kind}: unknown state {name!r}")


def diagram(
    source: CoreMachine | Mapping[str, State],
    *,
    states: Iterable[str] | None = None,
    relations: Iterable[Relation] = RELATIONS,
    active: Iterable[str] | None = None,
) -> Diagram:
    """Collect what a diagram of `source` (a machine or a schema) shows.

    - `states`: draw only these (default: all, with `Exception` only when a
      relation names it, the schema defines it or it is active);
    - `relations`: the relations to draw as edges;
    - `active`: states to highlight; default: a machine's active states,
      none for a schema.

    A schema is validated and normalised as a machine would do it
    (`am.SchemaError` for unknown names in relations); an unknown name in
    `states` or `active`, or an unknown relation, raises `ValueError`.
    """
    rels = tuple(relations)
    for rel in rels:
        if rel not in RELATIONS:
            raise ValueError(
                f"unknown relation {rel!r} (relations: {', '.join(RELATIONS)})"
            )
    if isinstance(source, CoreMachine):
        mach = source
        name = source.id
        declared = False  # every machine has Exception: show it when it matters
        default_active = frozenset(mach.active_states)
    else:
        declared = EXCEPTION in source
        mach = CoreMachine(source, id="am-vis")
        name = ""
        default_active = frozenset()
    schema = mach.schema
    names = list(mach.state_names)
    if states is None:
        named = {n for st in schema.values() for rel in rels for n in getattr(st, rel)}
        related = any(getattr(schema[EXCEPTION], rel) for rel in rels)
        show_exception = (
            declared or related or EXCEPTION in named or EXCEPTION in default_active
        )
        drawn = [n for n in names if n != EXCEPTION or show_exception]
    else:
        wanted = list(dict.fromkeys(states))
        _check_names("states", wanted, names)
        drawn = [n for n in names if n in wanted]
    if active is None:
        hot = default_active & set(drawn)
    else:
        hot_list = list(active)
        _check_names("active", hot_list, names)
        hot = frozenset(hot_list) & set(drawn)
    keep = set(drawn)
    edges: list[tuple[str, str, Relation]] = [
        (src, dst, rel)
        for src in drawn
        for rel in rels
        for dst in getattr(schema[src], rel)
        if dst in keep
    ]
    return Diagram(name, schema, drawn, edges, frozenset(hot))


def _mermaid_id(name: str, taken: dict[str, str]) -> str:
    if name in taken:
        return taken[name]
    plain = re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) is not None
    ident = name if plain and name.lower() not in _MERMAID_RESERVED else ""
    if not ident:
        ident = "s_" + re.sub(r"\W", "_", name)
        while ident in taken.values():
            ident += "_"
    taken[name] = ident
    return ident


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def mermaid(
    source: CoreMachine | Mapping[str, State] | Diagram,
    *,
    states: Iterable[str] | None = None,
    relations: Iterable[Relation] = RELATIONS,
    active: Iterable[str] | None = None,
    direction: Literal["LR", "TB", "RL", "BT"] = "LR",
) -> str:
    """A Mermaid state diagram of a machine or a schema.

    Relations are labelled edges (``A --> B: require``), Auto and Multi
    states say so in their description, active states have the ``active``
    class (and an active `Exception` the ``error`` class). The options are
    those of `diagram()`; `direction` is Mermaid's layout direction.
    """
    d = source if isinstance(source, Diagram) else None
    if d is None:
        assert not isinstance(source, Diagram)
        d = diagram(source, states=states, relations=relations, active=active)
    ids: dict[str, str] = {}
    lines = ["stateDiagram-v2", f"    direction {direction}"]
    for name in d.states:
        ident = _mermaid_id(name, ids)
        if ident != name:
            lines.append(f'    state "{_mermaid_text(name)}" as {ident}')
        else:
            lines.append(f"    {ident}")
        flags = d.flags(name)
        if flags:
            lines.append(f"    {ident}: {' '.join(flags)}")
    for src, dst, rel in d.edges:
        lines.append(f"    {ids[src]} --> {ids[dst]}: {rel}")
    hot = [n for n in d.states if n in d.active]
    normal = [ids[n] for n in hot if n != EXCEPTION]
    errors = [ids[n] for n in hot if n == EXCEPTION]
    if normal:
        lines.append(
            f"    classDef active fill:{_ACTIVE_FILL},stroke:{_ACTIVE_STROKE},"
            "stroke-width:2px"
        )
        lines.append(f"    class {','.join(normal)} active")
    if errors:
        lines.append(
            f"    classDef error fill:{_ERROR_FILL},stroke:{_ERROR_STROKE},"
            "stroke-width:2px"
        )
        lines.append(f"    class {','.join(errors)} error")
    return "\n".join(lines) + "\n"


def _dot_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot(
    source: CoreMachine | Mapping[str, State] | Diagram,
    *,
    states: Iterable[str] | None = None,
    relations: Iterable[Relation] = RELATIONS,
    active: Iterable[str] | None = None,
    direction: Literal["LR", "TB", "RL", "BT"] = "LR",
) -> str:
    """A Graphviz (DOT) digraph of a machine or a schema.

    Each relation has its own edge colour and style (``remove`` dashed,
    ``after`` dotted) and a label; active states are filled. The options
    are those of `mermaid()`.
    """
    d = source if isinstance(source, Diagram) else None
    if d is None:
        assert not isinstance(source, Diagram)
        d = diagram(source, states=states, relations=relations, active=active)
    lines = [
        f"digraph {_dot_str(d.name or 'schema')} {{",
        f"    rankdir={direction};",
        '    node [shape=box, style=rounded, fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
    ]
    for name in d.states:
        label = "\\n".join(
            [name.replace("\\", "\\\\").replace('"', '\\"'), *d.flags(name)]
        )
        attrs = [f'label="{label}"']
        if name in d.active:
            fill, stroke = (
                (_ERROR_FILL, _ERROR_STROKE)
                if name == EXCEPTION
                else (_ACTIVE_FILL, _ACTIVE_STROKE)
            )
            attrs += [
                'style="rounded,filled"',
                f'fillcolor="{fill}"',
                f'color="{stroke}"',
                "penwidth=2",
            ]
        lines.append(f"    {_dot_str(name)} [{', '.join(attrs)}];")
    for src, dst, rel in d.edges:
        lines.append(
            f"    {_dot_str(src)} -> {_dot_str(dst)} "
            f'[label="{rel}", {_DOT_STYLE[rel]}];'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"
