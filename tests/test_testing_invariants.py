"""`asyncmachine.testing`: the invariant checker, `run_mutations`, `LogCapture`."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

import asyncmachine as am
from asyncmachine.testing import (
    InvariantChecker,
    InvariantError,
    LogCapture,
    MutationStep,
    check_invariants,
    run_mutations,
)

S = am.State
SCHEMA = {
    "A": S(remove=["B"]),
    "B": S(require=["C"]),
    "C": S(multi=True),
    "D": S(auto=True, require=["A"]),
}


def test_public_names() -> None:
    assert InvariantChecker.__module__ == "asyncmachine.testing"
    assert issubclass(InvariantError, AssertionError)


def test_a_sound_machine_passes() -> None:
    checker = InvariantChecker()
    m = am.Machine(SCHEMA, tracers=[checker])
    m.add(["B", "C"])
    m.add1("A")  # removes B, then D activates (auto)
    m.add1("C")  # Multi: +2
    assert m.active_states == ["A", "C", "D"]
    assert m.can_add(["C"]) == am.Result.EXECUTED  # a dry run: not counted
    m.remove1("C")
    check_invariants(m)
    checker.check()
    assert checker.transitions == 5
    assert checker.violations == []
    m.dispose()
    check_invariants(m)  # a disposed machine passes


def test_check_invariants_finds_broken_state() -> None:
    m = am.Machine(SCHEMA, id="broken")
    m._ticks["B"] = 1  # poke the core: B active without C
    with pytest.raises(InvariantError) as exc:
        check_invariants(m)
    msg = str(exc.value)
    assert msg.startswith("machine broken: ")
    assert "B is active without its requirement(s) ['C']" in msg
    m._ticks["A"] = 1
    m._ticks["C"] = 1
    with pytest.raises(
        InvariantError, match="A and B are both active, but A removes B"
    ):
        check_invariants(m)


def test_check_invariants_finds_inconsistent_views(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m = am.Machine(SCHEMA)
    m.add1("C")
    monkeypatch.setattr(am.Machine, "active_states", property(lambda self: []))
    monkeypatch.setattr(am.Machine, "is1", lambda self, s: False)
    monkeypatch.setattr(am.Machine, "__str__", lambda self: "()")
    with pytest.raises(InvariantError) as exc:
        check_invariants(m)
    msg = str(exc.value)
    assert "active_states [] do not match the odd ticks ['C']" in msg
    assert "is1('C') disagrees with tick 1" in msg
    assert "str(machine) is '()', expected '(C:1)'" in msg


def fake_tx(m: am.Machine, before: dict[str, int], **kw: Any) -> Any:
    fields = {
        "is_accepted": True,
        "is_check": False,
        "is_auto": False,
        "called_states": [],
        "machine": m,
        "clock_before": before,
    }
    fields.update(kw)
    return SimpleNamespace(**fields)


def test_checker_reports_tick_rule_violations() -> None:
    m = am.Machine({"A": S(), "M": S(multi=True)}, id="m1")
    checker = InvariantChecker()
    m.add1("A")
    zero = {"A": 0, "M": 0, "Exception": 0}
    checker.transition_end(fake_tx(m, zero, is_accepted=False))
    checker.transition_end(fake_tx(m, zero, is_check=True))
    assert checker.transitions == 0
    checker.transition_end(fake_tx(m, {**zero, "A": 3}))  # A went down
    checker.transition_end(fake_tx(m, {**zero, "A": -1}))  # +2, not Multi
    m.add1("M")
    m.add1("M")
    after_m = {"A": 1, "M": 1, "Exception": 0}
    checker.transition_end(fake_tx(m, after_m, called_states=["M"]))  # fine
    checker.transition_end(fake_tx(m, after_m, called_states=["M"], is_auto=True))
    assert checker.transitions == 4
    assert [v.rsplit(": ", 1)[1] for v in checker.violations] == [
        "A went from tick 3 to 1",
        "A ticked +2 but is not a called Multi state of a non-auto transition",
        "M ticked +2 but is not a called Multi state of a non-auto transition",
    ]
    assert checker.violations[0].startswith("machine m1, ")
    with pytest.raises(InvariantError, match="A went from tick 3 to 1"):
        checker.check()
    m.dispose()
    checker.transition_end(fake_tx(m, zero))
    assert checker.transitions == 4


def test_run_mutations() -> None:
    steps = [
        MutationStep("add", ["B", "C"]),
        ("add", ["A"], None),
        ("toggle", ["C"], {"id": 1}),
        MutationStep("set", []),
    ]
    assert run_mutations(SCHEMA, steps) == [am.Result.EXECUTED] * 4
    m = am.Machine(SCHEMA)
    assert run_mutations(m, [("add", ["B"], None)]) == [am.Result.CANCELED]
    assert m._tracers == ()  # the checker is detached afterwards
    with pytest.raises(ValueError, match="'pop'"):
        run_mutations(SCHEMA, [("pop", ["A"], None)])
    with pytest.raises(am.StateNameError):
        run_mutations(SCHEMA, [("add", ["Nope"], None)])


class Lowering:
    """A handler that turns back a tick (only the core's internals can)."""

    def AState(self, e: am.Event) -> None:
        e.machine._ticks["C"] -= 2


def test_run_mutations_reports_the_first_problem() -> None:
    m = am.Machine(SCHEMA, handlers=Lowering())
    m.add1("C")
    m.add1("C")
    with pytest.raises(InvariantError, match="C went from tick 3 to 1"):
        run_mutations(m, [("add", ["A"], None)])


def test_log_capture() -> None:
    log = LogCapture()
    m = am.Machine({"A": S()}, id="mach1", log_level=am.LogLevel.CHANGES, logger=log)
    m.add1("A")
    m.log("hi [x]")
    assert log.lines == ["[state] +A", "[exter] hi [x]"]
    assert log.with_prefix("[state]") == ["[state] +A"]
    assert log.levels_of("[exter]") == [int(am.LogLevel.EXTERNAL)]
    assert log.text == "[mach1] [state] +A\n[mach1] [exter] hi [x]"
    log.clear()
    assert log.records == []
    own = LogCapture("mach1")
    own(am.LogLevel.CHANGES, "[mach1] [state] +B\nmore")
    own(am.LogLevel.CHANGES, "[other] [state] +C")
    assert own.lines == ["[state] +B", "[other] [state] +C"]
