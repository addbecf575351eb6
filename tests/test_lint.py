"""`am.lint`: every code on a minimal schema, each claim checked on a machine.

Section numbers (§) refer to docs/design/semantics.md.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

import asyncmachine as am
from asyncmachine.testing.strategies import schema_and_mutations

S = am.State
EXECUTED, CANCELED = am.Result.EXECUTED, am.Result.CANCELED


def codes(schema: dict[str, am.State]) -> list[tuple[str, tuple[str, ...]]]:
    return [(i.code, i.states) for i in am.lint(schema)]


def test_clean_schemas_have_no_issues() -> None:
    assert am.lint({}) == []
    exclusive = ["Idle", "Busy", "Done"]
    schema = {
        "Start": S(),
        "Idle": S(auto=True, remove=exclusive),
        "Busy": S(require=["Start"], remove=exclusive),
        "Done": S(remove=exclusive, add=["Report"]),
        "Report": S(multi=True, after=["Done"]),
    }
    assert am.lint(schema) == []


def test_issue_fields_and_str() -> None:
    (issue,) = am.lint({"A": S(require=["B"]), "B": S(remove=["A"])})
    assert issue.code == "never-active"
    assert issue.states == ("A", "B")
    assert issue.message == "A can never be active: it requires B, which removes A"
    assert str(issue) == "never-active: " + issue.message
    assert isinstance(issue, am.LintIssue)
    with pytest.raises(AttributeError):
        issue.code = "x"  # type: ignore[misc]


def test_schema_errors_raise_like_the_constructor() -> None:
    with pytest.raises(am.SchemaError, match="'B'"):
        am.lint({"A": S(require=["B"])})
    with pytest.raises(am.SchemaError, match="both requires and removes"):
        am.lint({"A": S(require=["B"], remove=["B"]), "B": S()})


def test_ignore() -> None:
    schema = {"A": S(auto=True, multi=True, add=["A"])}
    assert [i.code for i in am.lint(schema)] == ["self-relation", "auto-multi"]
    assert [i.code for i in am.lint(schema, ignore=["auto-multi"])] == ["self-relation"]
    with pytest.raises(ValueError, match="'nope'"):
        am.lint(schema, ignore=["nope"])
    with pytest.raises(TypeError, match="string"):
        am.lint(schema, ignore="auto-multi")


# ---------------------------------------------------------------------------
# never-active


def test_never_active_requires_its_remover() -> None:
    schema = {"A": S(require=["B"]), "B": S(remove=["A"]), "C": S(require=["A"])}
    assert codes(schema) == [("never-active", ("A", "B")), ("never-active", ("C", "A"))]
    assert "C can never be active: it requires A, which can never be" in str(
        am.lint(schema)[1]
    )
    m = am.Machine(schema)
    assert m.add(["A", "B"]) == CANCELED
    assert m.add(["A", "B", "C"]) == CANCELED
    m.add1("B")
    assert m.add1("A") == CANCELED


def test_never_active_removes_a_transitive_requirement() -> None:
    schema = {"A": S(require=["B"], remove=["C"]), "B": S(require=["C"]), "C": S()}
    (issue,) = am.lint(schema)
    assert issue.states == ("A", "C")
    assert "A can never be active: it requires C, and removes it" in issue.message
    m = am.Machine(schema)
    assert m.add(["C", "B", "A"]) == CANCELED
    assert m.active_states == []


def test_never_active_two_requirements_exclude_each_other() -> None:
    schema = {"A": S(require=["B", "C"]), "B": S(remove=["C"]), "C": S()}
    (issue,) = am.lint(schema)
    assert issue.states == ("A", "B", "C")
    assert "it requires B and C, and B removes C" in issue.message
    assert am.Machine(schema).add(["A", "B", "C"]) == CANCELED


def test_an_implied_remover_is_not_claimed() -> None:
    # with B named by an `add`, §4.2 does not guard the pair: no claim
    schema = {"A": S(require=["B"]), "B": S(remove=["A"]), "D": S(add=["B"])}
    assert [i.code for i in am.lint(schema)] == []


def _never_active(schema: dict[str, am.State]) -> set[str]:
    return {i.states[0] for i in am.lint(schema) if i.code == "never-active"}


class ActiveRecorder:
    def __init__(self) -> None:
        self.seen: set[str] = set()

    def AnyState(self, e: am.Event) -> None:
        self.seen.update(e.machine.active_states)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema_and_mutations(relations=("require", "add", "remove"), max_mutations=20))
def test_prop_never_active_states_never_activate(
    case: tuple[dict[str, am.State], list[Any]],
) -> None:
    schema, steps = case
    never = _never_active(schema)
    rec = ActiveRecorder()
    m = am.Machine(schema, handlers=rec)
    # the direct way first: everything at once, each state with its requires
    for name in never:
        m.add([*schema[name].require, name])
    for step in steps:
        step.apply(m)
        assert not never & set(m.active_states)
    assert not never & rec.seen


# ---------------------------------------------------------------------------
# require-cycle, add-cancels, add-chain, add-and-remove, self-relation


def test_require_cycle() -> None:
    schema = {"A": S(require=["B"]), "B": S(require=["C"]), "C": S(require=["A"])}
    (issue,) = am.lint(schema)
    assert (issue.code, issue.states) == ("require-cycle", ("A", "B", "C"))
    assert "A -> B -> C -> A" in issue.message
    m = am.Machine(schema)
    assert m.add1("A") == CANCELED
    assert m.add(["A", "B", "C"]) == EXECUTED


def test_add_cancels() -> None:
    schema = {"A": S(add=["B"]), "B": S(remove=["A"]), "C": S(remove=["B"])}
    assert codes(schema) == [("add-cancels", ("A", "B"))]
    m = am.Machine(schema)
    assert m.add1("A") == CANCELED
    # "whenever B can activate with it": C keeps B out, and A activates
    assert m.add(["A", "C"]) == EXECUTED
    assert m.active_states == ["A", "C"]


def test_add_chain() -> None:
    schema = {
        "A": S(add=["B"]),
        "B": S(add=["C"]),
        "C": S(add=["D"]),
        "D": S(add=["E"]),
        "E": S(),
    }
    issues = am.lint(schema)
    assert [(i.code, i.states) for i in issues] == [
        ("add-chain", ("A", "D", "E")),
        ("add-chain", ("B", "E")),
    ]
    assert "D (A -> B -> C -> D)" in issues[0].message
    m = am.Machine(schema)
    m.add1("A")
    assert m.active_states == ["A", "B", "C"]
    # a shorter path elsewhere is no issue
    short = {**schema, "A": S(add=["B", "D"])}
    assert [i.states for i in am.lint(short)] == [("B", "E")]
    m = am.Machine(short)
    m.add1("A")
    assert m.active_states == ["A", "B", "C", "D", "E"]


def test_add_and_remove_and_self_relations() -> None:
    schema = {
        "A": S(add=["B", "A"], remove=["B", "A"], require=["A"], after=["A"]),
        "B": S(),
    }
    assert codes(schema) == [
        ("add-and-remove", ("A", "B")),
        ("self-relation", ("A",)),
        ("self-relation", ("A",)),
        ("self-relation", ("A",)),
    ]
    messages = [i.message for i in am.lint(schema)]
    assert "the `remove` is ignored" in messages[0]
    assert [m.split("`")[1] for m in messages[1:]] == ["require", "add", "after"]
    m = am.Machine(schema)
    m.add1("A")
    assert m.active_states == ["A", "B"]
    # a group removing its own members is the usual idiom, not an issue
    group = ["A", "B"]
    assert am.lint({"A": S(remove=group), "B": S(remove=group)}) == []


# ---------------------------------------------------------------------------
# auto


def test_auto_removes() -> None:
    schema = {"A": S(auto=True, remove=["B"]), "B": S(), "C": S()}
    assert codes(schema) == [("auto-removes", ("A", "B"))]
    m = am.Machine(schema)
    assert m.add1("B") == EXECUTED
    assert m.active_states == ["A"]  # B was undone by the auto transition
    assert m.add1("B") == CANCELED  # and A, now active, keeps it out
    # not claimed: A has requirements, or B removes A back
    assert am.lint({**schema, "A": S(auto=True, remove=["B"], require=["C"])}) == []
    assert am.lint({**schema, "B": S(remove=["A"])}) == []


def test_auto_exclusive() -> None:
    schema = {
        "A": S(auto=True, remove=["B"]),
        "B": S(auto=True, remove=["A"]),
        "C": S(),
    }
    assert codes(schema) == [("auto-exclusive", ("A", "B"))]
    m = am.Machine(schema)
    m.add1("C")
    assert m.active_states == ["A", "C"]
    m.add1("B")
    assert m.active_states == ["B", "C"]


def test_auto_multi() -> None:
    schema = {"A": S(auto=True, multi=True), "B": S()}
    assert codes(schema) == [("auto-multi", ("A",))]
    m = am.Machine(schema)
    m.add1("B")
    assert m.tick("A") == 1
    m.remove1("B")
    assert m.tick("A") == 1  # an auto re-add of an active Multi: no new tick


# ---------------------------------------------------------------------------
# after, Exception


def test_after_cycle() -> None:
    schema = {"A": S(after=["B"]), "B": S(after=["C"]), "C": S(after=["A"])}
    (issue,) = am.lint(schema)
    assert (issue.code, issue.states) == ("after-cycle", ("A", "B", "C"))
    assert "A -> B -> C -> A" in issue.message


def test_after_order() -> None:
    schema = {"A": S(after=["C"]), "B": S(), "C": S()}
    (issue,) = am.lint(schema)
    assert (issue.code, issue.states) == ("after-order", ("A", "C", "B"))
    order: list[list[str]] = []

    class H:
        def AnyState(self, e: am.Event) -> None:
            order.append(e.transition.target_states)

    m = am.Machine(schema, handlers=H())
    m.add(["A", "B", "C"])
    assert order == [["A", "B", "C"]]  # A is not after C
    # fine: declared in order, or nothing can sit between them
    assert am.lint({"C": S(), "B": S(), "A": S(after=["C"])}) == []
    assert am.lint({"A": S(after=["C"]), "B": S(remove=["A"]), "C": S()}) == []
    assert am.lint({"A": S(after=["B"]), "B": S()}) == []


def test_exception_not_multi() -> None:
    schema = {"A": S(), "Exception": S()}
    assert codes(schema) == [("exception-not-multi", ("Exception",))]
    m = am.Machine(schema)
    m.add_err(ValueError("one"))
    m.add_err(ValueError("two"))
    assert m.tick("Exception") == 1
    assert am.lint({"A": S(), "Exception": S(multi=True)}) == []


def test_every_code_is_described() -> None:
    from asyncmachine._lint import LINT_CODES

    assert list(LINT_CODES) == [
        "never-active",
        "require-cycle",
        "add-cancels",
        "add-and-remove",
        "self-relation",
        "add-chain",
        "auto-removes",
        "auto-exclusive",
        "auto-multi",
        "after-cycle",
        "after-order",
        "exception-not-multi",
    ]
    assert all(LINT_CODES.values())


def test_long_relation_chains_and_cycles() -> None:
    """Chains longer than Python's recursion limit lint without recursion."""
    n = 1500
    chain = {
        f"S{i}": am.State(require=[f"S{i + 1}"] if i < n - 1 else []) for i in range(n)
    }
    assert am.lint(chain) == []
    ring = {f"S{i}": am.State(require=[f"S{(i + 1) % n}"]) for i in range(n)}
    issues = am.lint(ring)
    assert [i.code for i in issues] == ["require-cycle"]
    assert len(issues[0].states) == n
