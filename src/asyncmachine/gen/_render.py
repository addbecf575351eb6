"""Render a `StatesFile` as Python source, already in ruff's format.

Generated code must pass ``ruff format --check`` without ruff being
installed, so it is laid out here the way ruff lays it out: an expression
stays on one line when it fits in 88 columns, otherwise its brackets open
and every item gets a line of its own with a trailing comma (which ruff
keeps, as a magic trailing comma). Imports are grouped and sorted the way
ruff's isort rules sort them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs

from ._spec import Ref, StatesFile

__all__ = ["render"]

WIDTH = 88
INDENT = "    "


@attrs.frozen
class _Seq:
    """A bracketed, comma-separated expression: a call, list or tuple."""

    open: str
    items: tuple[_Node, ...]
    close: str
    literal: bool = False
    """A list or tuple display: split into one item per line (as ruff does)."""
    one_tuple: bool = False


_Node = str | _Seq


def _flat(node: _Node) -> str:
    if isinstance(node, str):
        return node
    body = ", ".join(_flat(i) for i in node.items)
    if node.one_tuple and len(node.items) == 1:
        body += ","
    return node.open + body + node.close


def _lines(
    node: _Node, width: int, indent: str, prefix: str = "", suffix: str = ""
) -> list[str]:
    """`node` after `prefix`, at `indent`, split the way ruff would split it.

    Too long for one line, a call keeps its arguments on one line of their
    own if they fit there; a display with several items, or arguments that
    do not fit, get one item per line and a trailing comma.
    """
    flat = indent + prefix + _flat(node) + suffix
    if isinstance(node, str) or len(flat) <= width or not node.items:
        return [flat]
    head = indent + prefix + node.open
    tail = indent + node.close + suffix
    inner = indent + INDENT
    if len(node.items) == 1 and not node.one_tuple:
        return [head, *_lines(node.items[0], width, inner), tail]
    if not node.literal:
        body = inner + ", ".join(_flat(i) for i in node.items)
        if len(body) <= width:
            return [head, body, tail]
    out = [head]
    for item in node.items:
        out += _lines(item, width, inner, "", ",")
    out.append(tail)
    return out


def _natural(name: str) -> list[int | str]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name.lower())]


def _member_key(name: str) -> tuple[int, list[int | str]]:
    # ruff's isort, order-by-type: CONSTANTS before Classes (the generator
    # imports nothing else)
    return (0 if len(name) > 1 and name.isupper() else 1), _natural(name)


def _from_import(module: str, names: Sequence[str], width: int) -> list[str]:
    members = sorted(dict.fromkeys(names), key=_member_key)
    line = f"from {module} import {', '.join(members)}"
    if len(line) <= width:
        return [line]
    return [
        f"from {module} import (",
        *(f"{INDENT}{name}," for name in members),
        ")",
    ]


def _imports(f: StatesFile, width: int) -> list[str]:
    by_module: dict[str, list[str]] = {}
    for p in f.parents:
        names = by_module.setdefault(p.module, [])
        names += [p.schema_name, p.states_class]
        if p.groups_class is not None:
            names.append(p.groups_class)
    out = ["from __future__ import annotations", "", "from typing import Final", ""]
    out.append("import asyncmachine as am")
    own = sorted(
        (m for m in by_module if m == "asyncmachine" or m.startswith("asyncmachine.")),
        key=_natural,
    )
    for module in own:
        out += _from_import(module, by_module[module], width)
    others = sorted((m for m in by_module if m not in own), key=_natural)
    if others:
        out.append("")
        for module in others:
            out += _from_import(module, by_module[module], width)
    return out


def _class_head(name: str, bases: Sequence[str], width: int) -> list[str]:
    if not bases:
        return [f"class {name}:"]
    return _lines(_Seq("(", tuple(bases), ")"), width, "", f"class {name}", ":")


def _refs(f: StatesFile, refs: Sequence[Ref]) -> _Node:
    parts: list[_Node] = []
    run: list[str] = []
    for ref in refs:
        if ref.group:
            if run:
                parts.append(_Seq("[", tuple(run), "]", literal=True))
                run = []
            parts.append(f"{f.groups_class}.{ref.name}")
        else:
            run.append(f"{f.states_class}.{ref.name}")
    if run:
        parts.append(_Seq("[", tuple(run), "]", literal=True))
    if len(parts) == 1:
        return parts[0]
    return _Seq("am.s_add(", tuple(parts), ")")


def render(f: StatesFile, *, width: int = WIDTH) -> str:
    """The source of the states module for `f` (see `generate`).

    `width` is the line length (tests render with a huge one and let ruff
    format the result, which must give the default rendering back).
    """
    return _render(f, width)


def _render(f: StatesFile, width: int) -> str:
    out: list[str] = []
    if f.command:
        out.append(f"# generated by: {f.command}")
    doc = f"{f.name} states: {f.description}." if f.description else f"{f.name} states."
    out += [f'"""{doc}"""', ""]
    out += _imports(f, width)
    out += ["", ""]

    # the state names
    bases = [p.states_class for p in f.parents] or ["am.StatesBase"]
    out += _class_head(f.states_class, bases, width)
    out += [f'{INDENT}"""State names of {f.name}."""', ""]
    out += [f"{INDENT}{st.name} = am.state()" for st in f.states]
    out += ["", ""]

    # the groups
    if f.has_groups:
        group_bases = [p.groups_class for p in f.parents if p.groups_class is not None]
        out += _class_head(f.groups_class, group_bases, width)
        out.append(f'{INDENT}"""Groups of mutually exclusive states of {f.name}."""')
        if f.groups:
            out.append("")
        for g in f.groups:
            names = tuple(f"{f.states_class}.{s}" for s in g.states)
            out += _lines(
                _Seq("(", names, ")", literal=True, one_tuple=True),
                width,
                INDENT,
                f"{g.name}: Final = ",
            )
        out += ["", ""]

    # the schema
    entries: list[str] = []
    for st in f.states:
        args: list[_Node] = []
        if st.auto:
            args.append("auto=True")
        if st.multi:
            args.append("multi=True")
        for rel, refs in st.relations:
            value = _refs(f, refs)
            args.append(
                attrs.evolve(value, open=f"{rel}=" + value.open)
                if isinstance(value, _Seq)
                else f"{rel}={value}"
            )
        entries += _lines(
            _Seq("am.State(", tuple(args), ")"),
            width,
            INDENT * 2,
            f"{f.states_class}.{st.name}: ",
            ",",
        )
    out.append(f"{f.schema_name}: Final[am.Schema] = am.schema_merge(")
    out += [f"{INDENT}{p.schema_name}," for p in f.merge_order()]
    out += [f"{INDENT}{{", *entries, f"{INDENT}}},", ")"]
    return "\n".join(out) + "\n"
