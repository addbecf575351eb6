"""`asyncmachine.testing.strategies`: valid schemas, mutations of their states."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asyncmachine as am
from asyncmachine.testing import MutationStep, run_mutations
from asyncmachine.testing.strategies import (
    mutation_sequences,
    mutations,
    schema_and_mutations,
    schemas,
)

FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@FAST
@given(schemas())
def test_schemas_are_valid(schema: dict[str, am.State]) -> None:
    assert 3 <= len(schema) <= 8
    assert list(schema) == list("ABCDEFGH"[: len(schema)])
    am.Machine(schema)


@FAST
@given(
    schemas(
        min_states=1,
        max_states=3,
        relations=("require",),
        auto=False,
        multi=False,
        max_relation=1,
        names=["Foo", "Bar", "Baz"],
    )
)
def test_schema_options(schema: dict[str, am.State]) -> None:
    assert set(schema) <= {"Foo", "Bar", "Baz"}
    for st_ in schema.values():
        assert not (st_.auto or st_.multi or st_.add or st_.remove or st_.after)
        assert len(st_.require) <= 1


def test_schema_option_errors() -> None:
    with pytest.raises(ValueError, match="'friend'"):
        schemas(relations=("friend",))
    with pytest.raises(ValueError, match="max_states"):
        schemas(max_states=30)
    with pytest.raises(ValueError, match="'pop'"):
        mutations(["A"], kinds=["pop"])


SCHEMA = {"Ready": am.State(), "Busy": am.State(require=["Ready"])}


@FAST
@given(mutation_sequences(SCHEMA, min_size=2, max_size=5, kinds=["add", "remove"]))
def test_mutation_sequences_of_a_schema(steps: list[MutationStep]) -> None:
    assert 2 <= len(steps) <= 5
    for step in steps:
        assert isinstance(step, MutationStep)
        assert step.kind in ("add", "remove")
        assert set(step.states) <= {"Ready", "Busy", "Exception"}
    run_mutations(SCHEMA, steps)


@FAST
@given(mutation_sequences(["A", "Exception"], max_size=3))
def test_mutation_sequences_of_names(steps: list[MutationStep]) -> None:
    assert all(set(s.states) <= {"A", "Exception"} for s in steps)


@FAST
@given(schema_and_mutations(max_mutations=10, max_states=5))
def test_the_invariants_hold_for_random_schemas(
    case: tuple[dict[str, am.State], list[MutationStep]],
) -> None:
    schema, steps = case
    results = run_mutations(schema, steps)
    assert len(results) == len(steps)
    assert set(results) <= {am.Result.EXECUTED, am.Result.CANCELED}


@FAST
@given(st.data())
def test_mutations_draws_from_names(data: st.DataObject) -> None:
    step = data.draw(mutations(["X", "Y"], max_states=2))
    assert step.kind in ("add", "remove", "set", "toggle")
    assert len(step.states) <= 2


def test_a_clear_error_without_hypothesis() -> None:
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "try:\n"
        "    import asyncmachine.testing.strategies\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "pip install 'asyncmachine[testing]'" in res.stdout, res.stderr


def test_the_package_does_not_import_hypothesis_or_pytest() -> None:
    code = (
        "import sys, asyncmachine.testing, _asyncmachine_pytestplugin\n"
        "print(sorted(m for m in ('hypothesis', 'asyncmachine.testing.strategies')"
        " if m in sys.modules))\n"
        "print('pytest' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.stdout == "[]\nTrue\n", res.stderr
    code = "import sys, asyncmachine.testing; print('pytest' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.stdout == "False\n", res.stderr
