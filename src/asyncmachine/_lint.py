"""The schema linter: relations that are legal but do not do what they say.

Everything here reads the compiled schema only; `lint` never builds a
machine. The constructor's own checks (unknown names, a state that both
requires and removes the same state) stay in `_schema.py`: `lint` raises the
same `SchemaError` for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Final, final

import attrs

from ._schema import CompiledSchema, compile_schema
from ._types import EXCEPTION, State

__all__ = ["LINT_CODES", "LintIssue", "lint"]

LINT_CODES: Final[Mapping[str, str]] = {
    "never-active": "a state that no mutation can activate",
    "require-cycle": "states that require each other (require-sorting is off)",
    "add-cancels": "a state that adds a state which removes it back",
    "add-and-remove": "a state that both adds and removes the same state",
    "self-relation": "a state named in its own relation",
    "add-chain": "an `add` chain longer than the two hops `add` reaches",
    "auto-removes": "an Auto state that undoes another state right away",
    "auto-exclusive": "Auto states that remove each other",
    "auto-multi": "a state that is both Auto and Multi",
    "after-cycle": "`after` relations that form a cycle",
    "after-order": "an `after` relation the After pass may not honour",
    "exception-not-multi": "a user-defined Exception state without Multi",
}
"""Every issue code `lint` reports, with a one-line description."""


@final
@attrs.frozen
class LintIssue:
    """One finding of `lint`: a code, the states concerned and a message."""

    code: str
    """One of `LINT_CODES`, e.g. ``"never-active"``."""
    states: tuple[str, ...]
    """The states the issue is about, the main one first."""
    message: str
    """What is wrong and what it means at run time."""

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def lint(schema: Mapping[str, State], *, ignore: Iterable[str] = ()) -> list[LintIssue]:
    """Find relations that are valid but cannot work as written.

    Returns the issues (empty for a clean schema), grouped by code in the
    order of `LINT_CODES`, then in state order. Codes in `ignore` are left
    out. A schema the `Machine` constructor refuses raises the same
    `SchemaError` here.
    """
    if isinstance(ignore, str):
        raise TypeError(f"ignore takes a list of codes, not the string {ignore!r}")
    skip = set(ignore)
    unknown = sorted(skip - set(LINT_CODES))
    if unknown:
        raise ValueError(f"unknown lint code {unknown[0]!r}")
    return [i for i in _Linter(compile_schema(schema)).run() if i.code not in skip]


def _sccs(
    names: tuple[str, ...], edges: Mapping[str, Iterable[str]]
) -> list[list[str]]:
    """Strongly connected components with more than one state, state order.

    Tarjan's algorithm, iterative so that long relation chains don't hit
    the recursion limit.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    for root in names:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work: list[tuple[str, Iterator[str]]] = [(root, iter(edges[root]))]
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w == v:
                    continue
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(edges[w])))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
            if low[v] == index[v]:
                comp: list[str] = []
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(comp)
    order = {n: i for i, n in enumerate(names)}
    comps = [sorted(c, key=order.__getitem__) for c in out]
    return sorted(comps, key=lambda c: order[c[0]])


def _cycle_path(comp: list[str], edges: Mapping[str, Iterable[str]]) -> list[str]:
    """A cycle through the first state of `comp`, as a list ending where it began."""
    members = set(comp)
    start = comp[0]
    path = [start]
    seen = {start}
    work: list[Iterator[str]] = [iter(edges[start])]
    while work:
        w = next(work[-1], None)
        if w is None:
            work.pop()
            path.pop()
            continue
        if w == start and len(path) > 1:
            path.append(start)
            return path
        if w in members and w not in seen:
            seen.add(w)
            path.append(w)
            work.append(iter(edges[w]))
    return path


class _Linter:
    def __init__(self, cs: CompiledSchema) -> None:
        self.cs = cs
        self.names = cs.names
        self.order = cs.index
        self.issues: dict[str, list[LintIssue]] = {code: [] for code in LINT_CODES}
        self.add_targets = {a for s in cs.states.values() for a in s.add}

    def report(self, code: str, states: Iterable[str], message: str) -> None:
        self.issues[code].append(LintIssue(code, tuple(states), message))

    def run(self) -> list[LintIssue]:
        never = self.never_active()
        self.require_cycles()
        self.add_relations()
        self.raw_relations()
        self.auto(never)
        self.after(never)
        self.exception()
        return [issue for issues in self.issues.values() for issue in issues]

    # ------------------------------------------------------------ require

    def closure(self, name: str) -> list[str]:
        """`name` and everything it requires, transitively."""
        out = {name: None}
        todo = [name]
        while todo:
            for req in self.cs.require[todo.pop()]:
                if req not in out:
                    out[req] = None
                    todo.append(req)
        return list(out)

    def conflict(self, states: list[str]) -> tuple[str, str] | None:
        """A pair (a, b) of `states` where a removes b and a is never implied.

        docs/design/semantics.md §4.2 keeps such a pair from being active
        together: a state that no `add` relation names is in the target only
        if the blocking pass kept it, and then everything it removes is
        excluded (steps 2-4).
        """
        members = set(states)
        for a in states:
            if a in self.add_targets:
                continue
            for b in self.cs.remove[a]:
                if b in members:
                    return a, b
        return None

    def never_active(self) -> set[str]:
        roots: dict[str, tuple[str, str]] = {}
        closures = {n: self.closure(n) for n in self.names}
        for name in self.names:
            pair = self.conflict(closures[name])
            if pair is not None:
                roots[name] = pair
        never: set[str] = set()
        for name in self.names:
            if name not in roots:
                continue
            never.add(name)
            via = next((r for r in closures[name][1:] if r in roots), None)
            if via is not None:
                msg = f"{name} can never be active: it requires {via}, which can never be active"
                self.report("never-active", [name, via], msg)
                continue
            a, b = roots[name]
            if b == name:
                msg = (
                    f"{name} can never be active: it requires {a}, which removes {name}"
                )
                states = [name, a]
            elif a == name:
                msg = f"{name} can never be active: it requires {b}, and removes it"
                states = [name, b]
            else:
                msg = (
                    f"{name} can never be active: it requires {a} and {b}, "
                    f"and {a} removes {b}"
                )
                states = [name, a, b]
            self.report("never-active", states, msg)
        return never

    def require_cycles(self) -> None:
        edges = self.cs.require
        for comp in _sccs(self.names, edges):
            path = " -> ".join(_cycle_path(comp, edges))
            self.report(
                "require-cycle",
                comp,
                f"require cycle {path}: these states activate only when added "
                "together in one mutation, and require-sorting is off for the "
                "whole schema",
            )

    # ---------------------------------------------------------------- add

    def add_relations(self) -> None:
        cs = self.cs
        for name in self.names:
            for target in cs.adds[name]:
                if target != name and name in cs.remove[target]:
                    self.report(
                        "add-cancels",
                        [name, target],
                        f"adding {name} is canceled whenever {target} can "
                        f"activate with it: {name} adds {target}, which removes "
                        f"{name}",
                    )
        for name in self.names:
            far = self.beyond_two_hops(name)
            if far:
                hops = ", ".join(
                    f"{t} ({' -> '.join(path)})" for t, path in far.items()
                )
                self.report(
                    "add-chain",
                    [name, *far],
                    f"adding {name} does not activate {', '.join(far)}: `add` "
                    f"reaches two hops only (docs/design/semantics.md §4.2): {hops}",
                )

    def beyond_two_hops(self, name: str) -> dict[str, list[str]]:
        paths: dict[str, list[str]] = {name: [name]}
        frontier = [name]
        far: dict[str, list[str]] = {}
        depth = 0
        while frontier:
            depth += 1
            nxt: list[str] = []
            for v in frontier:
                for w in self.cs.adds[v]:
                    if w not in paths:
                        paths[w] = [*paths[v], w]
                        nxt.append(w)
                        if depth > 2:
                            far[w] = paths[w]
            frontier = nxt
        return far

    def raw_relations(self) -> None:
        """Relations that normalisation drops or that do nothing."""
        for name, st in self.cs.user_schema.items():
            add = set(st.add)
            both = [r for r in dict.fromkeys(st.remove) if r in add and r != name]
            if both:
                self.report(
                    "add-and-remove",
                    [name, *both],
                    f"{name} both adds and removes {', '.join(both)}; the "
                    "`remove` is ignored (docs/design/semantics.md §1.1)",
                )
            # `remove` may name the state itself: a group removing its members
            for rel in ("require", "add", "after"):
                if name in getattr(st, rel):
                    effect = "ignored" if rel == "after" else "it does nothing"
                    self.report(
                        "self-relation",
                        [name],
                        f"{name} names itself in `{rel}`; {effect}",
                    )

    # --------------------------------------------------------------- auto

    def auto(self, never: set[str]) -> None:
        cs = self.cs
        auto = set(cs.auto)
        for a in cs.auto:
            if a in never or cs.require[a]:
                continue
            for b in cs.remove[a]:
                if a in cs.remove[b]:
                    continue
                self.report(
                    "auto-removes",
                    [a, b],
                    f"{b} is undone right after it activates: the Auto state "
                    f"{a} has no requirements, so the next auto transition "
                    f"activates it and it removes {b} (unless a state that "
                    f"removes {a} is active)",
                )
        for a in cs.auto:
            for b in cs.remove[a]:
                if b in auto and a in cs.remove[b] and self.order[a] < self.order[b]:
                    self.report(
                        "auto-exclusive",
                        [a, b],
                        f"the Auto states {a} and {b} remove each other: when "
                        f"both are due, {a} (first in state order) wins, and "
                        f"{b} activates automatically only when {a} cannot",
                    )
        for name in cs.auto:
            if name in cs.multi:
                self.report(
                    "auto-multi",
                    [name],
                    f"{name} is Auto and Multi: Multi counts only for called "
                    "states, so an auto activation never re-activates it "
                    "(docs/design/semantics.md §6.2)",
                )

    # -------------------------------------------------------------- after

    def after(self, never: set[str]) -> None:
        cs = self.cs
        edges = {n: sorted(cs.after[n], key=self.order.__getitem__) for n in self.names}
        cyclic: set[str] = set()
        for comp in _sccs(self.names, edges):
            cyclic.update(comp)
            path = " -> ".join(_cycle_path(comp, edges))
            self.report(
                "after-cycle",
                comp,
                f"`after` relations form a cycle ({path}, read 'is after'): "
                "the After pass cannot order these states",
            )
        for x in self.names:
            if x in never or x in cyclic:
                continue
            for y in edges[x]:
                if y in never or y in cyclic or self.order[y] < self.order[x]:
                    continue
                between = [
                    z
                    for z in self.names[self.order[x] + 1 : self.order[y]]
                    if z not in never
                    and self.compatible(z, x)
                    and self.compatible(z, y)
                ]
                if between and self.compatible(x, y):
                    self.report(
                        "after-order",
                        [x, y, between[0]],
                        f"{x} is after {y} but comes first in state order: with "
                        f"a state between them in the target (e.g. {between[0]}) "
                        f"the After pass, which only swaps neighbours ("
                        f"docs/design/semantics.md §4.4), leaves {x} before {y}; put {x} after {y} in the schema",
                    )

    def compatible(self, a: str, b: str) -> bool:
        rm = self.cs.remove
        return b not in rm[a] and a not in rm[b]

    # ---------------------------------------------------------- Exception

    def exception(self) -> None:
        st = self.cs.user_schema.get(EXCEPTION)
        if st is not None and not st.multi:
            self.report(
                "exception-not-multi",
                [EXCEPTION],
                "Exception is defined without multi=True: while it is active, "
                "add_err does not re-activate it, so ExceptionState misses "
                "later errors",
            )
