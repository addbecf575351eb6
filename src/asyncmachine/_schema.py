"""Schema normalisation, the require topology and sorting (docs/design/semantics.md §1, §4.4)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._types import EXCEPTION, SchemaError, State

__all__ = ["CompiledSchema", "MaskKey", "compile_schema", "s_add", "schema_merge"]


def schema_merge(*schemas: Mapping[str, State]) -> dict[str, State]:
    """Merge schemas into a new dict; a later definition of a name wins."""
    out: dict[str, State] = {}
    for schema in schemas:
        out.update(schema)
    return out


def s_add(*lists: Iterable[str]) -> list[str]:
    """Concatenate lists of state names, keeping the first of each name."""
    out: dict[str, None] = {}
    for names in lists:
        if isinstance(names, str):
            raise TypeError(f"s_add takes lists of names, not the string {names!r}")
        out.update(dict.fromkeys(names))
    return list(out)


_COMPILED: dict[tuple[tuple[str, State], ...], CompiledSchema] = {}
_COMPILED_MAX = 256
# by id of the schema object (kept alive here, so the id stays its own): its
# items when compiled, and the result. Comparing the items again is several
# times cheaper than hashing them (a State hashes in Python).
_BY_ID: dict[
    int, tuple[Mapping[str, State], tuple[tuple[str, State], ...], CompiledSchema]
] = {}


def compile_schema(schema: Mapping[str, State]) -> CompiledSchema:
    """Return the compiled form of `schema`, shared by equal schemas."""
    hit = _BY_ID.get(id(schema))
    if hit is not None and hit[0] is schema:
        key = tuple(schema.items())
        if key == hit[1]:
            return hit[2]
    if not isinstance(schema, Mapping):
        raise TypeError(
            f"schema must be a mapping of names to am.State, got {type(schema)!r}"
        )
    try:
        key = tuple(schema.items())
        cached = _COMPILED.get(key)
    except TypeError:
        return CompiledSchema(schema)
    if cached is None:
        cached = CompiledSchema(schema)
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.clear()
        _COMPILED[key] = cached
    if len(_BY_ID) >= _COMPILED_MAX:
        _BY_ID.clear()
    _BY_ID[id(schema)] = (schema, key, cached)
    return cached


_MASK_KEYS_MAX = 8192


class MaskKey:
    """An active set as a cache key: its mask (bit i set: state i active).

    One per distinct mask and compiled schema, so it hashes by identity in
    constant time, where the int itself hashes in time proportional to the
    number of states (a 20,000-state schema: microseconds per lookup).
    """

    __slots__ = ("mask",)

    def __init__(self, mask: int) -> None:
        self.mask: int = mask
        """Bit i set: the i-th state of the schema is active."""


class CompiledSchema:
    """A normalised, validated schema with the lookups resolution needs.

    Compiled schemas are shared by machines with equal schemas, and so are
    the caches of resolved plans they hold.
    """

    __slots__ = (
        "active_cache",
        "auto_cache",
        "plans",
        "plans_bytes",
        "adds",
        "after",
        "auto",
        "exception_added",
        "index",
        "mask_keys",
        "multi",
        "names",
        "relation_error",
        "remove",
        "remove_sets",
        "removed_by",
        "require",
        "required_by",
        "states",
        "topology",
        "user_schema",
    )

    def __init__(self, schema: Mapping[str, State]) -> None:
        if not isinstance(schema, Mapping):
            raise TypeError(
                f"schema must be a mapping of names to am.State, got {type(schema)!r}"
            )
        for name, state in schema.items():
            if not isinstance(name, str):
                raise TypeError(f"state names are strings, got {name!r}")
            if not isinstance(state, State):
                raise TypeError(
                    f"state {name!r} must be an am.State, got {type(state).__name__}"
                )
            if not name:
                raise SchemaError("a state name cannot be empty")
        self.user_schema = dict(schema)
        names = list(schema)
        self.exception_added = EXCEPTION not in schema
        if self.exception_added:
            names.append(EXCEPTION)
        self.names: tuple[str, ...] = tuple(names)
        self.index: dict[str, int] = {n: i for i, n in enumerate(names)}

        states: dict[str, State] = {}
        for name in names:
            st = schema.get(name)
            if st is None:
                st = State(multi=True)
            states[name] = self._normalise(name, st)
        self.states = states
        self.multi = frozenset(n for n, s in states.items() if s.multi)
        self.auto = tuple(n for n, s in states.items() if s.auto)
        self.require = {n: s.require for n, s in states.items()}
        self.adds = {n: s.add for n, s in states.items()}
        self.remove = {n: s.remove for n, s in states.items()}
        self.remove_sets = {n: frozenset(s.remove) for n, s in states.items()}
        self.after = {n: frozenset(s.after) for n, s in states.items()}
        # reverse indexes, so that resolution visits only related states
        required_by: dict[str, list[str]] = {n: [] for n in names}
        removed_by: dict[str, list[str]] = {n: [] for n in names}
        for n, st in states.items():
            for r in st.require:
                required_by.setdefault(r, []).append(n)
            for r in self.remove_sets[n]:
                removed_by.setdefault(r, []).append(n)
        self.required_by = required_by
        self.removed_by = removed_by
        self.relation_error = ""
        self.topology = self._topology()
        self.plans: dict[tuple[Any, ...], Any] = {}
        self.plans_bytes = 0  # estimated size of `plans` (_resolve.plan_bytes)
        self.auto_cache: dict[MaskKey, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self.mask_keys: dict[int, MaskKey] = {}
        self.active_cache: dict[int, tuple[str, ...]] = {0: ()}

    def mask_key(self, mask: int) -> MaskKey:
        """The key of the active set `mask` (bounded: past the bound a mask
        may get a second key, which only costs a cache miss)."""
        key = self.mask_keys.get(mask)
        if key is None:
            if len(self.mask_keys) >= _MASK_KEYS_MAX:
                self.mask_keys.clear()
            key = self.mask_keys[mask] = MaskKey(mask)
        return key

    def _normalise(self, name: str, st: State) -> State:
        for rel in ("require", "add", "remove", "after"):
            for other in getattr(st, rel):
                if other not in self.index:
                    raise SchemaError(
                        f"state {name!r} has {rel}={other!r}, "
                        "which is not a state of the schema"
                    )
        add = set(st.add)
        remove = tuple(
            dict.fromkeys(r for r in st.remove if r != name and r not in add)
        )
        after = tuple(dict.fromkeys(a for a in st.after if a != name))
        conflict = [r for r in st.require if r in remove]
        if conflict:
            raise SchemaError(
                f"state {name!r} both requires and removes {conflict[0]!r}"
            )
        if remove == st.remove and after == st.after:
            return st
        return State(
            auto=st.auto,
            multi=st.multi,
            require=st.require,
            add=st.add,
            remove=remove,
            after=after,
            tags=st.tags,
        )

    def _topology(self) -> dict[str, int]:
        # a depth-first post-order over `require`, iterative so that long
        # require chains don't hit the recursion limit
        order: list[str] = []
        done: set[str] = set()
        require = self.require
        for root in self.names:
            if root in done or not require[root]:
                continue
            path: list[str] = [root]
            on_path = {root}
            todo = [iter(require[root])]
            while todo:
                nxt = next(todo[-1], None)
                if nxt is None:
                    todo.pop()
                    name = path.pop()
                    on_path.discard(name)
                    done.add(name)
                    order.append(name)
                elif nxt in on_path:
                    cycle = [*path[path.index(nxt) :], nxt]
                    self.relation_error = "require cycle " + " -> ".join(cycle)
                    return {}
                elif nxt not in done:
                    path.append(nxt)
                    on_path.add(nxt)
                    todo.append(iter(require[nxt]))
        return {n: i for i, n in enumerate(order)}

    def sort(self, states: Sequence[str]) -> list[str]:
        """Sort states by the require topology, then by the After pass."""
        topo = self.topology
        out = sorted(states, key=lambda s: topo.get(s, -1)) if topo else list(states)
        after = self.after
        for i in range(1, len(out)):
            j = i
            while j > 0:
                x, y = out[j], out[j - 1]
                if x in after[y] and y not in after[x]:
                    out[j], out[j - 1] = y, x
                    j -= 1
                else:
                    break
        return out
