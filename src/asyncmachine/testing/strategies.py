"""Hypothesis strategies: random valid schemas and mutation sequences.

Needs hypothesis (``pip install 'asyncmachine[testing]'``). A drawn schema
has states named ``A``, ``B``, ``C``, ... with random `require`, `add`,
`remove` and `after` relations among them and random `auto` / `multi`
flags. Every relation names a state of the schema and no state both
requires and removes the same state (docs/design/semantics.md §1.1), so `am.Machine(schema)`
never raises `SchemaError`. `remove` and `after` may name the state itself,
which normalisation drops.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

try:
    from hypothesis import strategies as st
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "asyncmachine.testing.strategies needs hypothesis: "
        "pip install 'asyncmachine[testing]'"
    ) from _exc

from .._types import EXCEPTION, State
from ._check import MUTATION_KINDS, MutationStep

__all__ = [
    "LETTERS",
    "mutation_args",
    "mutation_sequences",
    "mutations",
    "schema_and_mutations",
    "schemas",
]

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
"""Default state names of drawn schemas, in order."""

RELATIONS = ("require", "add", "remove", "after")

mutation_args: st.SearchStrategy[dict[str, Any] | None] = st.one_of(
    st.none(),
    st.just({}),
    st.dictionaries(
        st.sampled_from(["k", "id", "name"]), st.integers(0, 3), max_size=2
    ),
)
"""Args a mutation may carry: None, ``{}`` or a small dict."""


def schemas(
    *,
    min_states: int = 3,
    max_states: int = 8,
    relations: Sequence[str] = RELATIONS,
    auto: bool = True,
    multi: bool = True,
    max_relation: int = 2,
    names: Sequence[str] = LETTERS,
) -> st.SearchStrategy[dict[str, State]]:
    """Random valid schemas of `min_states`..`max_states` states.

    `relations` picks which relations may appear, `auto` and `multi` whether
    those flags may be set, `max_relation` the longest relation list, and
    `names` the state names to use (in order).
    """
    unknown = set(relations) - set(RELATIONS)
    if unknown:
        raise ValueError(f"unknown relation {sorted(unknown)[0]!r}")
    if not 1 <= min_states <= max_states <= len(names):
        raise ValueError(
            f"need 1 <= min_states <= max_states <= {len(names)} (len(names))"
        )
    return _schemas(
        min_states, max_states, tuple(relations), auto, multi, max_relation, names
    )


@st.composite
def _schemas(
    draw: st.DrawFn,
    min_states: int,
    max_states: int,
    relations: tuple[str, ...],
    auto: bool,
    multi: bool,
    max_relation: int,
    names: Sequence[str],
) -> dict[str, State]:
    n = draw(st.integers(min_states, max_states))
    chosen = list(names[:n])
    schema: dict[str, State] = {}
    for name in chosen:
        others = [x for x in chosen if x != name]

        def some(pool: list[str]) -> list[str]:
            if not pool:
                return []
            return draw(
                st.lists(st.sampled_from(pool), unique=True, max_size=max_relation)
            )

        require = some(others) if "require" in relations else []
        schema[name] = State(
            auto=draw(st.booleans()) if auto else False,
            multi=draw(st.booleans()) if multi else False,
            require=require,
            add=some(others) if "add" in relations else [],
            remove=(
                some([x for x in chosen if x not in require])
                if "remove" in relations
                else []
            ),
            after=some(chosen) if "after" in relations else [],
        )
    return schema


def mutations(
    names: Sequence[str],
    *,
    max_states: int = 4,
    kinds: Sequence[str] = MUTATION_KINDS,
    args: st.SearchStrategy[dict[str, Any] | None] = mutation_args,
) -> st.SearchStrategy[MutationStep]:
    """One `MutationStep`: a kind of `kinds`, up to `max_states` of `names`
    (duplicates allowed, may be empty) and args drawn from `args`."""
    bad = set(kinds) - set(MUTATION_KINDS)
    if bad:
        raise ValueError(f"unknown mutation kind {sorted(bad)[0]!r}")
    return st.builds(
        MutationStep,
        st.sampled_from(list(kinds)),
        st.lists(st.sampled_from(list(names)), max_size=max_states),
        args,
    )


def mutation_sequences(
    schema: Mapping[str, State] | Sequence[str],
    *,
    min_size: int = 1,
    max_size: int = 15,
    **kwargs: Any,
) -> st.SearchStrategy[list[MutationStep]]:
    """Lists of mutations of the states of `schema` (a schema or its names;
    `Exception` is included). `kwargs` go to `mutations`."""
    names = list(schema)
    if EXCEPTION not in names:
        names.append(EXCEPTION)
    return st.lists(mutations(names, **kwargs), min_size=min_size, max_size=max_size)


@st.composite
def schema_and_mutations(
    draw: st.DrawFn, /, *, max_mutations: int = 15, **schema_kwargs: Any
) -> tuple[dict[str, State], list[MutationStep]]:
    """A random schema (`schemas(**schema_kwargs)`) and mutations of its states."""
    schema = draw(schemas(**schema_kwargs))
    return schema, draw(mutation_sequences(schema, max_size=max_mutations))
