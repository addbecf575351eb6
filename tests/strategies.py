"""Reusable hypothesis strategies: random valid schemas and mutations.

A schema has 3-8 states named A, B, C, ... with random `require`, `add`,
`remove` and `after` relations among them and random `auto` / `multi` flags.
Every relation names a state of the schema, and no state both requires and
removes the same state (semantics §1.1.4), so `am.Machine(schema)` never
raises `SchemaError`. `remove` and `after` may name the state itself, which
normalisation drops (§1.1 steps 1-2).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

import asyncmachine as am

LETTERS = "ABCDEFGH"
MUTATION_KINDS = ("add", "remove", "set", "toggle")

#: args a mutation may carry: None, {} or a small dict
mutation_args: st.SearchStrategy[dict[str, Any] | None] = st.one_of(
    st.none(),
    st.just({}),
    st.dictionaries(
        st.sampled_from(["k", "id", "name"]), st.integers(0, 3), max_size=2
    ),
)


@st.composite
def schemas(
    draw: st.DrawFn,
    /,
    *,
    min_states: int = 3,
    max_states: int = 8,
    relations: tuple[str, ...] = ("require", "add", "remove", "after"),
    auto: bool = True,
    multi: bool = True,
    max_relation: int = 2,
) -> dict[str, am.State]:
    """A random valid schema (see the module docstring)."""
    n = draw(st.integers(min_states, max_states))
    names = list(LETTERS[:n])
    schema: dict[str, am.State] = {}
    for name in names:
        others = [x for x in names if x != name]
        rel: dict[str, Any] = {}
        require = (
            draw(st.lists(st.sampled_from(others), unique=True, max_size=max_relation))
            if "require" in relations
            else []
        )
        if "add" in relations:
            rel["add"] = draw(
                st.lists(st.sampled_from(others), unique=True, max_size=max_relation)
            )
        if "remove" in relations:
            choices = [x for x in names if x not in require]
            rel["remove"] = draw(
                st.lists(st.sampled_from(choices), unique=True, max_size=max_relation)
            )
        if "after" in relations:
            rel["after"] = draw(
                st.lists(st.sampled_from(names), unique=True, max_size=max_relation)
            )
        schema[name] = am.State(
            auto=draw(st.booleans()) if auto else False,
            multi=draw(st.booleans()) if multi else False,
            require=require,
            **rel,
        )
    return schema


def mutations(
    names: list[str], *, max_states: int = 4
) -> st.SearchStrategy[tuple[str, list[str], dict[str, Any] | None]]:
    """`(kind, states, args)`: kind in add/remove/set/toggle, states a random
    list of `names` (duplicates allowed, may be empty), args maybe None."""
    return st.tuples(
        st.sampled_from(MUTATION_KINDS),
        st.lists(st.sampled_from(names), max_size=max_states),
        mutation_args,
    )


@st.composite
def schema_and_mutations(
    draw: st.DrawFn, /, *, max_mutations: int = 15, **schema_kwargs: Any
) -> tuple[dict[str, am.State], list[tuple[str, list[str], dict[str, Any] | None]]]:
    """A schema and a list of mutations of its states (Exception included)."""
    schema = draw(schemas(**schema_kwargs))
    names = [*schema, "Exception"]
    muts = draw(st.lists(mutations(names), min_size=1, max_size=max_mutations))
    return schema, muts
