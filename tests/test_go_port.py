"""Port of asyncmachine-go `pkg/machine/machine_test.go` (synchronous core).

Each test keeps the Go test's name in snake_case and names it in its
docstring. Semantics follow docs/design/semantics.md; where it departs from
Go, the docstring says so. Schema edits that Go makes after init
(`m.schema["C"] = State{...}`) are defined up front (docs/design/semantics.md §12.11).
Handler call order is recorded by `History`, the port of the Go test helper
of the same name (mach_utils_test.go).

Go tests that are only `t.Skip("TODO")` stubs in Go are written here from
semantics.md (their docstrings say so): TestAutoStatesHeartbeat,
TestDoubleHandlers, TestQueueLimit, TestSubmachines, TestAnyEnterHandler.

Go tests NOT ported here, and why:

- TestGetStateRelations, TestGetRelationsBetweenStates, TestGetRelationsBetween:
  Go's resolver introspection API (`RelationsOf`, `RelationsBetween`) has no
  Python counterpart.
- TestSwitch: Go-only helper `Machine.Switch` (not in the Python API).
- TestDisposeForce: Go-only `DisposeForce`; Python's `dispose()` outside a
  handler already completes at once (covered by test_dispose).
- TestEvMutations: Go-only `EvAdd1`/`EvRemove1` and `Mutation.Source`.
- TestHandlerStateInfo's `Transition.String()` / `TimeIndexDiff` formats are
  Go-only; the rest of that test is ported.
- TestWhen, TestWhen2, TestWhenActive, TestWhenDups, TestWhenNot, TestWhenNot2,
  TestWhenNotActive, TestWhenCtx, TestWhenArgs, TestWhenTime, TestChanReuse,
  TestWhenQueueEnds, TestWhenQueue, TestWhenQuery: when-methods (waiting),
  ported with the anyio runtime.
- TestStateCtx, TestStateCtxBasic: state contexts, ported with the anyio
  runtime.
- TestEvalNestedHandlers, forked half: `Machine.Fork` + eval from another
  goroutine, ported with the anyio runtime (the direct half is ported here).
- TestExportImport: Go-only `Export`/`Import`.
- TestVerifyStates: Go-only `VerifyStates` (Python state order is the schema
  order, docs/design/semantics.md §1.3).
- TestHandlerDeadline: a Go TODO about Go's handler deadline and restarting
  its goroutine event loop; no Python counterpart.
- TestNewCommonLessCommon's last assertion: Go's separate state-names list
  argument of `NewCommon` does not exist in Python.
- TestOpts's `SetTags` and `Resolver` option: not in the Python API.
- TestAddErr's `PanicToErr`/`PanicToErrState` halves: Go `defer`/`recover`
  helpers run in goroutines.
- TestGroups's `NewStateGroups`/`SetGroups`/`Groups()`: Python has no state
  groups; the typed-names inheritance part of that test is ported.
- TestListHandlers: only a handlers struct exists in Go, no test function.
"""

from __future__ import annotations

import logging
import textwrap
import time as _time
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest

import asyncmachine as am

R = am.Result

# --------------------------------------------------------------------------
# helpers (ports of machine_test.go / mach_utils_test.go helpers)


def new_no_rels(initial: list[str] | None = None, **overrides: am.State) -> am.Machine:
    """NewNoRels: states A B C D without relations; `overrides` replace
    definitions up front (Go edits `m.schema` after init instead)."""
    schema = {"A": am.State(), "B": am.State(), "C": am.State(), "D": am.State()}
    schema.update(overrides)
    m = am.Machine(schema)
    if initial is not None:
        m.set(initial)
    return m


def new_rels(initial: list[str] | None = None) -> am.Machine:
    """NewRels: basic relations between A B C D."""
    m = am.Machine(
        {
            "A": am.State(auto=True, require=["C"]),
            "B": am.State(multi=True, add=["C"]),
            "C": am.State(after=["D"]),
            "D": am.State(add=["C", "B"]),
        }
    )
    if initial is not None:
        m.set(initial)
    return m


class Log:
    """A logger sink collecting lines (captureLog)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.levels: list[am.LogLevel] = []

    def __call__(self, level: am.LogLevel, text: str) -> None:
        self.levels.append(level)
        self.lines.append(text)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def has_line(self, text: str) -> bool:
        """A whole line (after the `[abcde] ` id prefix) equals `text`."""
        return any(line == text or line.endswith("] " + text) for line in self.lines)


def capture_log(m: am.Machine) -> Log:
    """captureLog: log everything into a `Log`."""
    log = Log()
    m.logger = log
    m.log_level = am.LogLevel.EVERYTHING
    return log


class History:
    """Records handler calls in order (the Go `History` helper)."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.counter: Counter[str] = Counter()

    def _event(self, name: str) -> None:
        self.order.append(name)
        self.counter[name] += 1

    def AnyEnter(self, e: am.Event) -> None:
        self._event("AnyEnter")

    def AnyState(self, e: am.Event) -> None:
        self._event("AnyState")

    def AD(self, e: am.Event) -> None:
        self._event("AD")

    def AC(self, e: am.Event) -> None:
        self._event("AC")

    def AExit(self, e: am.Event) -> None:
        self._event("AExit")

    def AEnd(self, e: am.Event) -> None:
        self._event("AEnd")

    def AA(self, e: am.Event) -> None:
        self._event("AA")

    def AState(self, e: am.Event) -> None:
        self._event("AState")

    def AB(self, e: am.Event) -> None:
        self._event("AB")

    def BEnter(self, e: am.Event) -> None:
        self._event("BEnter")

    def BEnd(self, e: am.Event) -> None:
        self._event("BEnd")

    def BState(self, e: am.Event) -> None:
        self._event("BState")

    def BB(self, e: am.Event) -> None:
        self._event("BB")

    def BExit(self, e: am.Event) -> None:
        self._event("BExit")

    def BD(self, e: am.Event) -> None:
        self._event("BD")

    def BAny(self, e: am.Event) -> None:
        # not a handler name in Python (docs/design/semantics.md §5.1): never called
        self._event("BAny")

    def BC(self, e: am.Event) -> None:
        self._event("BC")

    def CEnter(self, e: am.Event) -> None:
        self._event("CEnter")

    def CState(self, e: am.Event) -> None:
        self._event("CState")

    def DEnter(self, e: am.Event) -> None:
        self._event("DEnter")

    def DState(self, e: am.Event) -> None:
        self._event("DState")


def track_transitions(m: am.Machine) -> History:
    """trackTransitions: bind a fresh History."""
    history = History()
    m.bind_handlers(history)
    return history


def assert_states(m: am.Machine, expected: list[str]) -> None:
    """assertStates: the same active states (compared in state order)."""
    assert set(expected) <= set(m.state_names)
    assert m.active_states == [s for s in m.state_names if s in set(expected)]


def assert_time(m: am.Machine, states: list[str], times: tuple[int, ...]) -> None:
    assert m.time(states) == times


def assert_order(history: History, handlers: list[str]) -> None:
    """assertOrder: the handlers' first calls come in this order."""
    idx = [history.order.index(name) for name in handlers]
    assert idx == sorted(idx), (handlers, history.order)


def assert_event_counts(history: History, expected: int) -> None:
    for name, count in history.counter.items():
        assert count == expected, name


def dedent(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


# --------------------------------------------------------------------------
# basics


def test_single_state_active() -> None:
    """TestSingleStateActive."""
    m = new_no_rels(["A"])
    assert_states(m, ["A"])


def test_multiple_states_active() -> None:
    """TestMultipleStatesActive."""
    m = new_no_rels(["A"])
    m.add(["B"])
    assert_states(m, ["A", "B"])


def test_expose_all_state_names() -> None:
    """TestExposeAllStateNames (Python: exact schema order, Exception last, §1.3)."""
    m = new_no_rels(["A"])
    assert m.state_names == ["A", "B", "C", "D", "Exception"]


def test_state_set() -> None:
    """TestStateSet."""
    m = new_no_rels(["A"])
    assert m.set(["B"]) == R.EXECUTED
    assert_states(m, ["B"])


def test_state_add() -> None:
    """TestStateAdd."""
    m = new_no_rels(["A"])
    assert m.add(["B"]) == R.EXECUTED
    assert_states(m, ["A", "B"])


def test_state_remove() -> None:
    """TestStateRemove."""
    m = new_no_rels(["B", "C"])
    assert m.remove(["C"]) == R.EXECUTED
    assert_states(m, ["B"])


def test_panic_when_state_is_unknown() -> None:
    """TestPanicWhenStateIsUnknown (Go panics; Python raises StateNameError from
    every call taking names, reads included, §12 Resolution; has/has1 say False)."""
    m = new_no_rels(["A"])
    before = m.time()
    with pytest.raises(am.StateNameError):
        m.set(["E"])
    with pytest.raises(am.StateNameError):
        m.add(["B", "E"])
    with pytest.raises(am.StateNameError):
        m.add1("E")
    with pytest.raises(am.StateNameError):
        m.remove1("E")
    with pytest.raises(am.StateNameError):
        m.is1("E")
    with pytest.raises(am.StateNameError):
        m.is_(["A", "E"])
    with pytest.raises(am.StateNameError):
        m.not1("E")
    with pytest.raises(am.StateNameError):
        m.any1("E")
    with pytest.raises(am.StateNameError):
        m.tick("E")
    with pytest.raises(am.StateNameError):
        m.time(["E"])
    with pytest.raises(am.StateNameError):
        m.clock(["E"])
    assert not m.has1("E")
    assert not m.has(["A", "E"])
    # nothing changed, B was not added by the failed add(["B", "E"])
    assert m.time() == before
    assert_states(m, ["A"])


# --------------------------------------------------------------------------
# handler order


def test_single_to_single_state_transition() -> None:
    """TestSingleToSingleStateTransition (exact order of §5.4)."""
    m = new_no_rels(["A", "B"])
    history = track_transitions(m)
    m.set(["C"])
    assert_states(m, ["C"])
    assert_order(history, ["AExit", "BExit", "CEnter", "AC", "BC", "CState"])
    assert_event_counts(history, 1)
    assert history.order == [
        "AExit", "BExit", "CEnter", "AC", "BC", "AnyEnter",
        "AEnd", "BEnd", "CState", "AnyState",
    ]  # fmt: skip
    assert m.string_all() == "(C:1) [A:2 B:2 D:0 Exception:0]"


def test_single_to_multi_state_transition() -> None:
    """TestSingleToMultiStateTransition."""
    m = new_no_rels(["A"])
    history = track_transitions(m)
    m.set(["B", "C"])
    assert_states(m, ["B", "C"])
    assert_order(history, ["AExit", "BEnter", "CEnter", "AB", "AC", "BState", "CState"])
    assert_event_counts(history, 1)
    assert history.order == [
        "AExit", "BEnter", "CEnter", "AB", "AC", "AnyEnter",
        "AEnd", "BState", "CState", "AnyState",
    ]  # fmt: skip


def test_multi_to_multi_state_transition() -> None:
    """TestMultiToMultiStateTransition."""
    m = new_no_rels(["A", "B"])
    history = track_transitions(m)
    m.set(["D", "C"])
    assert_states(m, ["C", "D"])
    assert_order(
        history,
        ["AExit", "BExit", "DEnter", "CEnter", "AD", "AC", "BD", "BC", "CState"],
    )
    assert_event_counts(history, 1)
    assert history.order == [
        "AExit", "BExit", "DEnter", "CEnter", "AD", "AC", "BD", "BC",
        "AnyEnter", "AEnd", "BEnd", "DState", "CState", "AnyState",
    ]  # fmt: skip


def test_multi_to_single_state_transition() -> None:
    """TestMultiToSingleStateTransition (AnyEnter is the last negotiation
    handler, §12.1)."""
    m = new_no_rels(["A", "B"])
    history = track_transitions(m)
    m.set(["C"])
    assert_states(m, ["C"])
    events = [
        "AExit", "BExit", "CEnter", "AC", "BC", "AnyEnter",
        "AEnd", "BEnd", "CState", "AnyState",
    ]  # fmt: skip
    assert_order(history, events)
    assert_event_counts(history, 1)
    assert history.order == events


def test_transition_to_active_state() -> None:
    """TestTransitionToActiveState."""
    m = new_no_rels(["A", "B"])
    history = track_transitions(m)
    m.set(["A"])
    assert_states(m, ["A"])
    assert history.counter["AExit"] == 0
    assert history.counter["AnyA"] == 0
    # A kept without re-entering (§3.1): only its self handler runs
    assert history.order == ["BExit", "AA", "AnyEnter", "BEnd", "AnyState"]
    assert m.tick("A") == 1


def test_after_relation_when_entering() -> None:
    """TestAfterRelationWhenEntering (relations defined up front, §12.11)."""
    m = new_no_rels(["A", "B"], A=am.State(after=["B"]), C=am.State(after=["D"]))
    history = track_transitions(m)
    m.set(["C", "D"])
    assert_states(m, ["C", "D"])
    assert_order(history, ["DEnter", "CEnter", "AD", "AC"])
    assert_event_counts(history, 1)


def test_after_relation_when_exiting() -> None:
    """TestAfterRelationWhenExiting (relations defined up front, §12.10-11)."""
    m = new_no_rels(["A", "B"], A=am.State(after=["B"]), C=am.State(after=["D"]))
    history = track_transitions(m)
    m.set(["C", "D"])
    assert_states(m, ["C", "D"])
    assert_order(history, ["BExit", "AExit", "AD", "AC", "BD", "BC"])
    assert_event_counts(history, 1)
    assert history.order == [
        "BExit", "AExit", "DEnter", "CEnter", "AD", "AC", "BD", "BC",
        "AnyEnter", "BEnd", "AEnd", "DState", "CState", "AnyState",
    ]  # fmt: skip


def test_require_order() -> None:
    """TestRequireOrder (the direct `SortStates` checks go through
    `transition.target_states`, as Python has no public resolver)."""
    m = am.Machine(
        {
            "A": am.State(auto=True, require=["B", "C"]),
            "B": am.State(auto=True, require=["D"]),
            "C": am.State(auto=True),
            "D": am.State(auto=True),
            "Start": am.State(),
        }
    )
    history = track_transitions(m)
    m.add1("Start")
    assert_order(history, ["DState", "BState", "AState"])
    assert_order(history, ["CState", "AState"])
    assert_states(m, ["A", "B", "C", "D", "Start"])
    for name, count in history.counter.items():
        # global handlers run for the auto transition too
        assert count == (2 if name.startswith("Any") else 1), name
    assert history.order == [
        "AnyEnter", "AnyState",
        "DEnter", "BEnter", "CEnter", "AnyEnter",
        "DState", "BState", "CState", "AState", "AnyState",
    ]  # fmt: skip

    # sorting: topology [D, B, C, A] (§4.4)
    for order in (["A", "B", "C", "D"], ["C", "D", "A", "B"], ["D", "A", "C", "B"]):
        targets: list[list[str]] = []
        m2 = am.Machine(
            {
                "A": am.State(require=["B", "C"]),
                "B": am.State(require=["D"]),
                "C": am.State(),
                "D": am.State(),
            },
            handlers=SimpleNamespace(
                AnyState=lambda e, t=targets: t.append(list(e.transition.target_states))
            ),
        )
        assert m2.add(order) == R.EXECUTED
        assert targets == [["D", "B", "C", "A"]], order


# --------------------------------------------------------------------------
# relations


def test_remove_relation() -> None:
    """TestRemoveRelation (relation defined up front)."""
    m = new_no_rels(["D"], C=am.State(remove=["D"]))
    m.add(["C"])
    assert_states(m, ["C"])


def test_remove_relation_simultaneous() -> None:
    """TestRemoveRelationSimultaneous (relation defined up front)."""
    m = new_no_rels(["D"], C=am.State(remove=["D"]))
    log = capture_log(m)
    r = m.set(["C", "D"])
    assert r == R.CANCELED
    assert "[rel:remove] D by C" in log.text
    assert_states(m, ["D"])


@pytest.mark.parametrize(
    "case",
    [
        "using set should de-activate the old one",
        "using set should work both ways",
        "using add should de-activate the old one",
        "using add should work both ways",
    ],
)
def test_remove_relation_cross_blocking(case: str) -> None:
    """TestRemoveRelationCrossBlocking (C and D remove each other, defined up
    front)."""
    m = new_no_rels(["D"], C=am.State(remove=["D"]), D=am.State(remove=["C"]))
    mutate = m.set if case.startswith("using set") else m.add
    # (D:1)[A:0 B:0 C:0]
    assert mutate(["C"]) == R.EXECUTED
    assert_states(m, ["C"])
    if case.endswith("both ways"):
        assert mutate(["D"]) == R.EXECUTED
        assert_states(m, ["D"])


def test_add_relation() -> None:
    """TestAddRelation (relations defined up front)."""
    m = new_no_rels(None, A=am.State(remove=["D"]), C=am.State(add=["D"]))
    log = capture_log(m)
    m.set(["C"])
    assert log.has_line("[implied] D")
    assert_states(m, ["C", "D"])  # state should be activated
    m.set(["A", "C"])
    # D is skipped when blocked at the same time
    assert_states(m, ["A", "C"])


def test_require_relation() -> None:
    """TestRequireRelation (relation defined up front)."""
    m = new_no_rels(["A"], C=am.State(require=["D"]))
    m.set(["C", "D"])
    assert_states(m, ["C", "D"])


def test_require_relation_when_required_isnt_active() -> None:
    """TestRequireRelationWhenRequiredIsntActive (relation defined up front)."""
    m = new_no_rels(["A"], C=am.State(require=["D"]))
    log = capture_log(m)
    assert m.set(["C", "A"]) == R.CANCELED
    assert_states(m, ["A"])  # target state shouldn't be activated
    assert "[reject] C(-D)" in log.text


def test_remove_multi_implied() -> None:
    """TestRemoveMultiImplied (relations defined up front)."""
    m = new_no_rels(
        ["A", "B", "C"],
        A=am.State(multi=True, add=["B"], require=["C"]),
        B=am.State(require=["C"]),
    )
    assert_states(m, ["A", "B", "C"])
    m.remove1("B")
    assert_states(m, ["A", "C"])


def test_regression_remove_cross_blocked_by_implied() -> None:
    """TestRegressionRemoveCrossBlockedByImplied."""
    m = am.Machine(
        {
            "A": am.State(remove=["B"]),
            "B": am.State(remove=["A"]),
            "Z": am.State(add=["B"]),
        }
    )
    m.set(["Z"])
    assert_states(m, ["Z", "B"])


def test_regression_implied_block_by_being_removed() -> None:
    """TestRegressionImpliedBlockByBeingRemoved."""
    m = am.Machine(
        {
            "Wet": am.State(require=["Water"]),
            "Dry": am.State(remove=["Wet"]),
            "Water": am.State(add=["Wet"], remove=["Dry"]),
        }
    )
    m.set(["Dry"])
    m.set(["Water"])
    assert_states(m, ["Water", "Wet"])


def test_set_states() -> None:
    """TestSetStates (Go's `SetSchema` after init becomes the schema up front;
    the schema-version check is Go-only)."""
    m = am.Machine(
        {
            "A": am.State(multi=True),
            "B": am.State(remove=["C"]),
            "C": am.State(),
            "D": am.State(add=["E"]),
            "E": am.State(),
        }
    )
    m.set(["A", "C"])
    m.set(["A", "B", "D"])
    assert_states(m, ["A", "B", "D", "E"])


# --------------------------------------------------------------------------
# queue


def test_queue() -> None:
    """TestQueue (Go's nested Add returns queue tick 4; Python returns QUEUED
    and `queue_tick == 4`, §12.4)."""
    seen: dict[str, Any] = {}

    class QueueHandlers:
        def BEnter(self, e: am.Event) -> bool:
            seen["res"] = e.machine.add(["C"])
            seen["queue_tick"] = e.machine.queue_tick
            return True

    m = new_no_rels(["A"])
    history = track_transitions(m)
    m.bind_handlers(QueueHandlers())
    log = capture_log(m)
    # triggers add(C) from BEnter
    assert m.set(["B"], {"t": 1}) == R.EXECUTED
    # line formats of §11.2 (EVERYTHING lists unchanged active states)
    for line in (
        "[queue:set] B",
        "[set] B",
        "[queue:add] C",
        "[postpone] queue running (1 item)",
        "[state] +B -A",
        "[add] C",
        "[state] +C B",
    ):
        assert log.has_line(line), line
    assert seen == {"res": R.QUEUED, "queue_tick": 4}
    for name, count in history.counter.items():
        # global handlers run for both transitions
        assert count == (2 if name.startswith("Any") else 1), name
    assert_states(m, ["C", "B"])
    assert m.queue_tick == 4
    assert m.queue_len == 0


def test_queue_checkable() -> None:
    """TestQueueCheckable."""
    seen: dict[str, Any] = {}

    class QueueCheckableHandlers(am.ExceptionHandler):
        def AState(self, e: am.Event) -> None:
            m = e.machine
            m.add(["B"])
            m.add(["C"])
            m.add(["D"])
            seen["queue_len"] = m.queue_len
            seen["queue"] = [list(mut.called) for mut in m.queue]
            seen["c"] = m.is_queued(am.MutationType.ADD, ["C"])
            seen["will_be_c"] = m.will_be1("C")
            seen["a"] = m.is_queued(am.MutationType.ADD, ["A"])
            seen["will_be_a"] = m.will_be1("A")
            seen["will_be_removed_a"] = m.will_be_removed1("A")

    m = new_no_rels()
    m.bind_handlers(QueueCheckableHandlers())
    m.add(["A"], {"t": 1})
    assert seen["queue_len"] == 3  # 3 mutations scheduled
    assert seen["queue"] == [["B"], ["C"], ["D"]]
    found, idx, _tick = seen["c"]
    assert found and idx == 1  # C should be queued
    assert seen["will_be_c"]
    assert seen["a"][0] is False  # A should NOT be queued
    assert not seen["will_be_a"]
    assert not seen["will_be_removed_a"]
    assert not m.is_err()
    assert_states(m, ["A", "B", "C", "D"])


def test_nested_mutation() -> None:
    """TestNestedMutation (queue de-duplication, §7.3)."""
    seen: list[tuple[R, int]] = []

    class NestedMutationHandlers(am.ExceptionHandler):
        def AState(self, e: am.Event) -> None:
            m = e.machine
            for _ in range(3):
                seen.append((m.add1("B"), m.queue_len))
            seen.append((m.remove1("B"), m.queue_len))
            seen.append((m.remove1("B"), m.queue_len))

    m = new_no_rels(["B"])
    m.bind_handlers(NestedMutationHandlers())
    log = capture_log(m)
    m.add1("A", {"t": 1})
    assert log.has_line("[queue:skipped] Duplicate detected for [add] B")
    assert log.has_line("[queue:skipped] Duplicate detected for [remove] B")
    assert [n for _, n in seen] == [1, 1, 1, 2, 2]
    # de-duplicated mutations return EXECUTED (§7.3, §12.5)
    assert [r for r, _ in seen] == [R.QUEUED, R.EXECUTED, R.EXECUTED, R.QUEUED,
                                    R.EXECUTED]  # fmt: skip
    assert_states(m, ["A"])


def test_queue_limit() -> None:
    """TestQueueLimit (a Go TODO, ported from docs/design/semantics.md §7.6 and §8.2.1)."""
    seen: list[Any] = []

    class QueueLimitHandlers:
        def AState(self, e: am.Event) -> None:
            m = e.machine
            seen.append(m.add1("B"))
            seen.append(m.add1("C"))
            # the queue holds 2 >= queue_limit
            seen.append(m.add1("D"))
            seen.append(m.remove1("B"))
            seen.append(m.add_err(ValueError("full")))
            seen.append(m.err)
            # exempt: an add of an inactive Exception
            seen.append(m.add1("Exception"))
            seen.append(m.queue_len)

    m = new_no_rels(None)
    m.queue_limit = 2
    m.bind_handlers(QueueLimitHandlers())
    assert m.add1("A") == R.EXECUTED
    assert seen == [R.QUEUED, R.QUEUED, R.CANCELED, R.CANCELED, R.CANCELED, None,
                    R.QUEUED, 3]  # fmt: skip
    assert_states(m, ["A", "B", "C", "Exception"])
    assert m.err is None


# --------------------------------------------------------------------------
# negotiation, auto states


@pytest.mark.parametrize(
    ("case", "expected_log"),
    [
        ("using set", "[cancel] (D) by DEnter"),
        ("using add", "[cancel] (D A) by DEnter"),
    ],
)
def test_negotiation_cancel(case: str, expected_log: str) -> None:
    """TestNegotiationCancel (DEnter cancels; subtests "using set", "using add")."""

    class NegotiationCancelHandlers:
        def DEnter(self, e: am.Event) -> bool:
            return False

    m = new_no_rels(["A"])
    m.bind_handlers(NegotiationCancelHandlers())
    log = capture_log(m)
    result = m.set(["D"]) if case == "using set" else m.add(["D"])
    assert result == R.CANCELED  # transition should be canceled
    assert_states(m, ["A"])  # state shouldn't be changed
    assert expected_log in log.text
    assert m.tick("D") == 0


def test_negotiation_remove() -> None:
    """TestNegotiationRemove."""

    class NegotiationRemoveHandlers:
        def AExit(self, e: am.Event) -> bool:
            return False

    m = new_no_rels(["A"])
    m.bind_handlers(NegotiationRemoveHandlers())
    log = capture_log(m)
    assert m.remove(["A"]) == R.CANCELED
    assert_states(m, ["A"])
    assert "[cancel] () by AExit" in log.text


def test_auto_states() -> None:
    """TestAutoStates (relation defined up front)."""
    m = new_no_rels(None, B=am.State(auto=True, require=["A"]))
    log = capture_log(m)
    assert m.add(["A"]) == R.EXECUTED
    assert_states(m, ["A", "B"])  # dependant auto state should be set
    assert "[auto] B" in log.text


def test_auto_states_heartbeat() -> None:
    """TestAutoStatesHeartbeat (a Go TODO, ported from docs/design/semantics.md §6.3.1: a
    health ping schedules no auto transition)."""
    m = am.Machine(
        {
            "A": am.State(auto=True),
            "B": am.State(),
            "Heartbeat": am.State(multi=True),
            "Healthcheck": am.State(multi=True),
        }
    )
    assert m.add1("Heartbeat") == R.EXECUTED
    assert m.add1("Healthcheck") == R.EXECUTED
    assert m.add1("Heartbeat") == R.EXECUTED
    assert_states(m, ["Heartbeat", "Healthcheck"])
    assert m.tick("A") == 0
    # any other tick change triggers it
    m.add1("B")
    assert_states(m, ["A", "B", "Heartbeat", "Healthcheck"])


def test_partial_auto_states() -> None:
    """TestPartialAutoStates (relations defined up front)."""
    m = new_no_rels(
        None,
        A=am.State(auto=True),
        B=am.State(auto=True, after=["A"], require=["C"]),
    )
    log = capture_log(m)
    assert m.add(["D"]) == R.EXECUTED
    assert_states(m, ["A", "D"])
    assert "[auto_] +A" in log.text


def test_partial_auto_states_by_state_state() -> None:
    """TestPartialAutoStatesByStateState (the cross handler CB drops the Auto
    state B, §6.1)."""
    calls: list[str] = []
    m = am.Machine(
        {"A": am.State(auto=True), "B": am.State(auto=True), "C": am.State()}
    )
    m.bind_handlers(
        SimpleNamespace(
            CB=lambda e: False,
            BState=lambda e: calls.append("BState"),
        )
    )
    assert m.add1("C") == R.EXECUTED
    assert_states(m, ["C", "A"])  # only C and the A auto state
    assert calls == []  # BState should not be called


def test_partial_auto_states_by_enter() -> None:
    """TestPartialAutoStatesByEnter (BEnter drops B and what only B implied)."""
    calls: list[str] = []
    m = am.Machine(
        {
            "A": am.State(auto=True),
            "B": am.State(auto=True, add=["D"]),
            "C": am.State(),
            "D": am.State(),
        }
    )
    m.bind_handlers(
        SimpleNamespace(
            BEnter=lambda e: False,
            BState=lambda e: calls.append("BState"),
        )
    )
    assert m.add1("C") == R.EXECUTED
    assert_states(m, ["C", "A"])  # only the A auto state
    assert calls == []


def test_partial_auto_states_by_self_handler() -> None:
    """TestPartialAutoStatesBySelfHandler (C is not Auto: the whole auto
    transition is canceled, §6.1)."""
    calls: list[str] = []
    m = am.Machine(
        {"A": am.State(auto=True), "B": am.State(auto=True), "C": am.State()}
    )
    m.bind_handlers(
        SimpleNamespace(
            # C rejects the 2nd (auto) transition
            CC=lambda e: False,
            BState=lambda e: calls.append("BState"),
        )
    )
    assert m.add1("C") == R.EXECUTED
    assert_states(m, ["C"])  # only C, auto canceled by CC
    assert calls == []


def test_partial_auto() -> None:
    """TestPartialAuto (relations defined up front)."""
    m = new_no_rels(
        None,
        C=am.State(auto=True, require=["B"]),
        D=am.State(auto=True, require=["B"]),
    )
    log = capture_log(m)
    assert m.add(["A"]) == R.EXECUTED
    assert_states(m, ["A"])
    assert "[cancel:reject] C D" in log.text


def test_any_enter_handler() -> None:
    """TestAnyEnterHandler (a Go TODO, ported from docs/design/semantics.md §5.2/§6.1: AnyEnter
    runs last among negotiation handlers and can cancel)."""
    order: list[str] = []

    class AnyEnterHandlers:
        def AEnter(self, e: am.Event) -> None:
            order.append("AEnter")

        def AnyEnter(self, e: am.Event) -> bool:
            order.append("AnyEnter")
            return False

        def AState(self, e: am.Event) -> None:
            order.append("AState")

        def AnyState(self, e: am.Event) -> None:
            order.append("AnyState")

    m = new_no_rels(None)
    m.bind_handlers(AnyEnterHandlers())
    assert m.add1("A") == R.CANCELED
    assert order == ["AEnter", "AnyEnter"]
    assert m.tick("A") == 0
    # also for a remove of an inactive state (a transition without change)
    order.clear()
    assert m.remove1("B") == R.CANCELED
    assert order == ["AnyEnter"]


# --------------------------------------------------------------------------
# handlers


def test_handler_state_info() -> None:
    """TestHandlerStateInfo (a debug-only Go test; Go's `tx.String()` and
    `TimeIndexDiff` have no Python counterpart, the rest is ported)."""
    seen: dict[str, Any] = {}

    class HandlerStateInfoHandlers:
        def DEnter(self, e: am.Event) -> bool:
            tx = e.transition
            seen["active"] = e.machine.active_states
            seen["target"] = list(tx.target_states)
            seen["called"] = list(tx.called_states)
            seen["before"] = list(tx.states_before)
            seen["type"] = tx.mutation.type
            return True

        def DState(self, e: am.Event) -> None:
            tx = e.transition
            b, a = tx.clock_before, tx.clock_after
            names = e.machine.state_names
            seen["added"] = [s for s in names if b[s] % 2 == 0 and a[s] % 2 == 1]
            seen["removed"] = [s for s in names if b[s] % 2 == 1 and a[s] % 2 == 0]
            seen["called_final"] = list(tx.called_states)

    m = new_no_rels(["A"])
    history = track_transitions(m)
    m.bind_handlers(HandlerStateInfoHandlers())
    m.set(["D"])
    assert_order(history, ["DEnter"])
    assert history.counter["DEnter"] == 1
    assert seen == {
        "active": ["A"],  # the previous states of the transition
        "target": ["D"],
        "called": ["D"],
        "before": ["A"],
        "type": am.MutationType.SET,
        "added": ["D"],
        "removed": ["A"],
        "called_final": ["D"],
    }


def test_handler_args() -> None:
    """TestHandlerArgs."""
    seen: list[tuple[str, Any]] = []

    class HandlerArgsHandlers:
        def BEnter(self, e: am.Event) -> None:
            seen.append(("BEnter", e.args["foo"]))

        def AExit(self, e: am.Event) -> None:
            seen.append(("AExit", e.args["foo"]))

        def CState(self, e: am.Event) -> None:
            seen.append(("CState", e.args["foo"]))

    m = new_no_rels(["A"])
    history = track_transitions(m)
    m.bind_handlers(HandlerArgsHandlers())
    m.add(["B"], {"foo": "bar"})
    m.remove(["A"], {"foo": "bar"})
    m.set(["C"], {"foo": "bar"})
    assert seen == [("BEnter", "bar"), ("AExit", "bar"), ("CState", "bar")]
    assert history.counter and min(history.counter.values()) >= 1


def test_handler_state_state() -> None:
    """TestHandlerStateState."""
    calls = {"AB": False, "BA": False}

    def ab(e: am.Event) -> bool:
        calls["AB"] = True
        return True

    def ba(e: am.Event) -> bool:
        calls["BA"] = True
        return True

    m = new_no_rels(["A"])
    m.bind_handlers(SimpleNamespace(AB=ab, BA=ba))
    m.add1("B")
    assert calls == {"AB": True, "BA": False}


def test_handler_negotiation_state_state() -> None:
    """TestHandlerNegotiationStateState."""
    m = new_no_rels(["A"])
    m.bind_handlers(SimpleNamespace(AB=lambda e: False, BA=lambda e: True))
    assert m.add1("B") == R.CANCELED
    assert_states(m, ["A"])


def test_anon_handlers() -> None:
    """TestAnonHandlers (an object whose attributes are plain functions)."""
    ok: list[bool] = []
    m = new_no_rels(["A"])
    m.bind_handlers(
        SimpleNamespace(AExit=lambda e: True, AEnd=lambda e: ok.append(True))
    )
    m.remove(["A"])
    assert m.not1("A")
    assert ok == [True]


def test_self_handlers_cancellable() -> None:
    """TestSelfHandlersCancellable."""

    class SelfHandlersCancellableHandlers:
        def AA(self, e: am.Event) -> bool:
            e.args["AACounter"][0] += 1
            return False

    m = new_no_rels(["A"])
    history = track_transitions(m)
    m.bind_handlers(SelfHandlersCancellableHandlers())
    counter = [0]
    assert m.set(["A", "B"], {"AACounter": counter}) == R.CANCELED
    assert counter == [1]  # AA call count
    assert history.counter["AA"] == 1  # History handler called
    assert history.counter["AnyB"] == 0
    assert history.counter["AnyEnter"] == 0
    assert_states(m, ["A"])


def test_self_handlers_order() -> None:
    """TestSelfHandlersOrder."""
    m = new_no_rels(["A"])
    events = ["BEnter", "AA", "AB", "AnyEnter", "BState", "AnyState"]
    history = track_transitions(m)
    m.set(["A", "B"])
    assert_order(history, events)
    assert history.order == events


def test_double_handlers() -> None:
    """TestDoubleHandlers (a Go TODO "bind 2 handlers and check for dups",
    ported from docs/design/semantics.md §5.1)."""
    m = new_no_rels(["A"])
    h1 = track_transitions(m)
    h2 = track_transitions(m)
    m.add1("B")
    expected = ["BEnter", "AA", "AB", "AnyEnter", "BState", "AnyState"]
    assert h1.order == expected
    assert h2.order == expected


def test_self_handlers_for_all_no_change_states() -> None:
    """TestSelfHandlersForAllNoChangeStates."""
    m = new_no_rels(["A"])
    history = track_transitions(m)
    m.add(["B"])
    m.add(["A"])
    assert history.counter["AA"] == 2
    assert history.counter["BB"] == 1


def test_unbind_handlers() -> None:
    """TestUnbindHandlers (Go checks the internal handler list; Python checks
    that a detached object is no longer called, and that an unknown id raises,
    §5.1)."""
    calls: list[str] = []

    class UnbindHandlersHandlers(am.ExceptionHandler):
        def AState(self, e: am.Event) -> None:
            calls.append("AState")

    m = new_no_rels(None)
    bind_id = m.bind_handlers(UnbindHandlersHandlers())
    m.detach_handlers(bind_id)
    m.add1("A")
    assert calls == []
    with pytest.raises(ValueError):
        m.detach_handlers(bind_id)


# --------------------------------------------------------------------------
# errors, panics, timeouts


def test_partial_negotiation_panic() -> None:
    """TestPartialNegotiationPanic."""

    class PartialNegotiationPanicHandlers(am.ExceptionHandler):
        def BEnter(self, e: am.Event) -> None:
            raise RuntimeError("BEnter panic")

    m = new_no_rels(["A"])
    log = capture_log(m)
    m.bind_handlers(PartialNegotiationPanicHandlers())
    assert m.add(["B"]) == R.CANCELED
    assert_states(m, ["A", "Exception"])
    assert "[cancel] (B A) by recover" in log.text
    assert isinstance(m.err, RuntimeError)
    assert str(m.err) == "BEnter panic"
    assert m.tick("B") == 0


def test_partial_final_panic() -> None:
    """TestPartialFinalPanic (the traceback names the handler's qualified
    name, §8.5)."""

    class PartialFinalPanicHandlers(am.ExceptionHandler):
        def BState(self, e: am.Event) -> None:
            raise RuntimeError("BState panic")

    m = new_no_rels(None)
    log = capture_log(m)
    m.bind_handlers(PartialFinalPanicHandlers())
    assert m.add(["A", "B", "C"]) == R.CANCELED
    assert_states(m, ["A", "Exception"])
    assert m.string_all() == "(A:1 Exception:1) [B:2 C:2 D:0]"
    assert "[error:add] A B C (BState panic)" in log.text
    # the stack trace
    assert "PartialFinalPanicHandlers.BState" in log.text
    assert "[cancel] (A B C) by recover" in log.text


def test_add_err() -> None:
    """TestAddErr (the PanicToErr* halves are Go-only)."""
    m = new_no_rels(None)
    err = ValueError("test")
    m.add_err_state("B", err)
    m.add_err(err)
    assert m.is1("B")
    assert m.is_err()
    assert m.err is err
    # Exception is Multi: activated, then re-activated (§8.1)
    assert m.tick("Exception") == 3


@pytest.mark.parametrize("handler", ["AState", "AEnter"])
def test_handler_timeout(handler: str) -> None:
    """TestHandlerTimeout (Go only checks CANCELED; by contract the timeout is
    reported through Exception, §8.4, §12.8). AEnter is a negotiation-phase
    variant (nothing changes); AState rolls A back (§8.3.3). Go's handlers embed
    ExceptionHandler; it is left out so that only the slow handler can time
    out."""

    def slow(e: am.Event) -> None:
        # wait longer than the timeout
        _time.sleep(0.03)

    m = new_no_rels(None)
    m.handler_timeout = 0.005
    m.bind_handlers(SimpleNamespace(**{handler: slow}))
    assert m.add1("A") == R.CANCELED  # expecting Canceled
    assert m.not1("A")
    assert m.tick("A") == (2 if handler == "AState" else 0)
    assert m.is_err()
    assert isinstance(m.err, am.HandlerTimeoutError)
    assert isinstance(m.err, TimeoutError)


# --------------------------------------------------------------------------
# clocks, time, checks


def test_time() -> None:
    """TestTime (B Multi defined up front; Go's `Time.After` becomes a
    tick-by-tick comparison)."""
    m = new_no_rels(None, B=am.State(multi=True))
    abcd = ["A", "B", "C", "D"]

    m.add(["A", "B"])
    assert_states(m, ["A", "B"])
    assert_time(m, abcd, (1, 1, 0, 0))

    m.add(["A", "B"])
    assert_states(m, ["A", "B"])
    assert_time(m, abcd, (1, 3, 0, 0))

    m.add(["A", "B", "C"])
    assert_states(m, ["A", "B", "C"])
    assert_time(m, abcd, (1, 5, 1, 0))

    m.set(["D"])
    assert_states(m, ["D"])
    assert_time(m, abcd, (2, 6, 2, 1))

    m.add(["D", "C"])
    assert_states(m, ["D", "C"])
    assert_time(m, abcd, (2, 6, 3, 1))

    m.remove(["B", "C"])
    assert_states(m, ["D"])
    assert_time(m, abcd, (2, 6, 4, 1))

    m.add(["A", "B"])
    assert_states(m, ["D", "A", "B"])
    assert_time(m, abcd, (3, 7, 4, 1))

    # test 2
    before = m.time(abcd)
    m.add(["C"])
    now = m.time(abcd)
    assert_states(m, ["A", "B", "D", "C"])
    assert_time(m, abcd, (3, 7, 5, 1))
    assert all(n >= b for n, b in zip(now, before, strict=True)) and now != before
    assert sum(m.time()) == 16


def test_clock() -> None:
    """TestClock (B Multi defined up front)."""
    m = new_no_rels(None, B=am.State(multi=True))
    abcd = ["A", "B", "C", "D"]
    m.add(["A", "B"])
    assert_time(m, abcd, (1, 1, 0, 0))
    m.add(["A", "B"])
    assert_time(m, abcd, (1, 3, 0, 0))
    m.add(["A", "B", "C"])
    assert_time(m, abcd, (1, 5, 1, 0))
    m.set(["D"])
    assert_time(m, abcd, (2, 6, 2, 1))
    m.add(["D", "C"])
    assert_time(m, abcd, (2, 6, 3, 1))
    m.remove(["B", "C"])
    assert_time(m, abcd, (2, 6, 4, 1))
    m.add(["A", "B"])
    assert_states(m, ["D", "A", "B"])
    assert_time(m, abcd, (3, 7, 4, 1))

    assert m.clock() == {"A": 3, "B": 7, "C": 4, "D": 1, "Exception": 0}
    assert m.clock(["A", "B"]) == {"A": 3, "B": 7}
    assert m.tick("A") == 3


def test_is_clock() -> None:
    """TestIsClock."""
    m = new_no_rels(None)
    c_a = m.clock(["A"])
    c_all = m.clock()
    m.add(["A", "B"])
    assert not m.is_clock(c_all)
    assert not m.is_clock(c_a)
    c_a["A"] += 1
    assert m.is_clock(c_a)


def test_is_time() -> None:
    """TestIsTime."""
    m = new_no_rels(None)
    t_a = m.time(["A"])
    t_all = m.time()
    m.add(["A", "B"])
    assert not m.is_time(t_a, ["A"])
    assert not m.is_time(t_all)
    assert m.is_time(m.time())
    assert m.is_time((1,), ["A"])


def test_is() -> None:
    """TestIs."""
    m = new_no_rels(["A", "B"])
    assert m.is_(["A", "B"])  # A B should be active
    assert not m.is_(["A", "B", "C"])  # A B C shouldn't be active
    assert "A" in m
    assert "C" not in m


def test_not() -> None:
    """TestNot."""
    m = new_no_rels(["A", "B"])
    assert not m.not_(["A", "B"])  # A B are active
    assert not m.not_(["A", "B", "C"])  # A B C is partially active
    assert m.not1("D")  # D is inactive


def test_any() -> None:
    """TestAny."""
    m = new_no_rels(["A", "B"])
    assert m.any(["A", "B"], ["C"])
    assert m.any(["A", "B", "C"], ["A"])
    assert m.any1("A", "B")
    assert not m.any(["C"])
    assert not m.any1("C")


def test_has() -> None:
    """TestHas."""
    m = new_no_rels(None)
    assert not m.has(["A", "Err"])
    assert m.has(["A", "A", "B"])
    assert m.has(m.state_names)
    assert m.has(["A", "B"])


def test_count_active() -> None:
    """TestCountActive (Go's `ActiveStates(filter)`; Python's `active_states`
    is a property without a filter)."""
    m = new_no_rels(None)
    m.add1("A")
    assert len([s for s in m.active_states if s in ("A", "B")]) == 1


def test_toggle() -> None:
    """TestToggle."""
    m = new_no_rels(None)
    m.toggle1("A")
    assert m.is1("A")
    m.toggle1("A")
    assert not m.is1("A")

    m = new_no_rels(None)
    m.toggle(["A"])
    assert m.is1("A")
    m.toggle(["A"])
    assert not m.is1("A")


def test_can_add() -> None:
    """TestCanAdd (a strict breakpoint is set as in Go; dry runs change
    nothing, §10.2)."""
    m = new_rels(None)
    m.add_breakpoint(["C"], [], strict=True)
    assert m.can_add(["A"]) == R.CANCELED  # can't add A
    assert m.can_add(["C"]) == R.EXECUTED  # can add C
    assert str(m) == "()"
    assert sum(m.time()) == 0
    assert m.queue_tick == 1

    # Go's "TODO test handler negotiation", filled from the §10.2 example
    calls: list[tuple[str, bool]] = []

    class CanAddHandlers:
        def AEnter(self, e: am.Event) -> None:
            calls.append(("AEnter", e.transition.is_check))

        def CEnter(self, e: am.Event) -> bool:
            calls.append(("CEnter", e.transition.is_check))
            return False

        def AnyEnter(self, e: am.Event) -> None:
            calls.append(("AnyEnter", e.transition.is_check))

        def AState(self, e: am.Event) -> None:
            calls.append(("AState", e.transition.is_check))

    m2 = am.Machine(
        {
            "A": am.State(),
            "B": am.State(require=["C"]),
            "C": am.State(),
            "D": am.State(multi=True),
        },
        handlers=CanAddHandlers(),
    )
    assert m2.can_add(["B"]) == R.CANCELED
    assert calls == []  # rejected by relations: no handlers
    assert m2.can_add(["A"]) == R.EXECUTED
    assert calls == [("AEnter", True), ("AnyEnter", True)]
    assert m2.not1("A")
    assert m2.can_add(["C"]) == R.CANCELED  # by CEnter
    assert m2.can_add(["B", "D"]) == R.EXECUTED  # Multi quirk
    m2.add1("A")
    calls.clear()
    assert m2.can_remove(["A"]) == R.EXECUTED
    assert m2.is1("A")
    assert ("AState", True) not in calls
    assert m2.time() == (1, 0, 0, 0, 0)


# --------------------------------------------------------------------------
# strings, logs


def test_string() -> None:
    """TestString."""
    m = new_no_rels(["A", "B"])
    assert str(m) == "(A:1 B:1)"
    assert m.string_all() == "(A:1 B:1) [C:0 D:0 Exception:0]"


def test_inspect() -> None:
    """TestInspect (Go's `VerifyStates` reordering becomes `inspect(states)`)."""
    m = new_rels(["A", "C"])
    # (A:1 C:1)[B:0 D:0 Exception:0]
    expected = """
        1 A
            |Tick     1
            |Auto     true
            |Require  C
        0 B
            |Tick     0
            |Multi    true
            |Add      C
        1 C
            |Tick     1
            |After    D
        0 D
            |Tick     0
            |Add      C B
        0 Exception
            |Tick     0
            |Multi    true
    """
    assert m.inspect(["A", "B", "C", "D", "Exception"]).strip("\n") == dedent(expected)
    assert m.inspect().strip("\n") == dedent(expected)
    assert m.inspect().endswith("\n")

    m.remove(["C"])
    # ()[A:2 B:0 C:2 D:0 Exception:0]
    m.add(["B"])
    # (A:3 B:1 C:3)[D:0 Exception:0]
    m.add(["D"])
    # (A:3 B:1 C:3 D:1)[Exception:0]
    expected = """
        0 Exception
            |Tick     0
            |Multi    true
        1 A
            |Tick     3
            |Auto     true
            |Require  C
        1 B
            |Tick     1
            |Multi    true
            |Add      C
        1 C
            |Tick     3
            |After    D
        1 D
            |Tick     1
            |Add      C B
    """
    assert m.inspect(["Exception", "A", "B", "C", "D"]).strip("\n") == dedent(expected)


def test_log_args() -> None:
    """TestLogArgs."""
    m = new_no_rels(["A"])
    m.log_args_mapper = am.new_log_args_mapper(5, ["arg", "arg2"])
    log = capture_log(m)
    m.add1("D", {"arg": "foofoofoo"})
    assert "(arg=fo...)" in log.text
    assert any(line.endswith("[add] D (arg=fo...)") for line in log.lines)


def test_getters() -> None:
    """TestGetters."""
    m = new_no_rels(["A"])
    m.log_args_mapper = am.new_log_args_mapper(5, ["arg", "arg2"])
    m.log_level = am.LogLevel.EVERYTHING
    assert m.log_level == am.LogLevel.EVERYTHING
    assert m.queue_len == 0
    assert m.queue == []


def test_logger(caplog: pytest.LogCaptureFixture) -> None:
    """TestLogger (Go's coverage test, with the §11 formats asserted)."""
    m = am.Machine({"A": am.State(), "B": am.State()}, id="mach1")
    log = Log()
    m.logger = log
    m.log_level = am.LogLevel.EVERYTHING
    assert m.logger is log
    m.add1("A")
    assert log.lines
    assert all(line.startswith("[mach1] ") for line in log.lines)
    assert "[mach1] [state] +A" in log.lines

    # back to the default sink: the stdlib logger "asyncmachine"
    m.logger = None
    n = len(log.lines)
    with caplog.at_level(logging.INFO, logger="asyncmachine"):
        m.add1("B")
    assert len(log.lines) == n
    assert any("[state] +B" in r.getMessage() for r in caplog.records)

    m.logger = log
    m.log_id = False
    m.log("foo")
    assert log.lines[-1] == "[exter] foo"
    assert log.levels[-1] == am.LogLevel.EXTERNAL
    m.log("a %s\nb", "x")
    assert log.lines[-1] == "[exter] a x b"
    # EXTERNAL shows only external lines
    m.log_level = am.LogLevel.EXTERNAL
    n = len(log.lines)
    m.remove1("A")
    assert len(log.lines) == n
    m.log_level = am.LogLevel.NOTHING
    m.log("bar")
    assert len(log.lines) == n


def test_breakpoints() -> None:
    """TestBreakpoints (the hook is `Machine.breakpoint`, api-decisions)."""
    hits: list[tuple[list[str], list[str]]] = []

    class BpMachine(am.Machine):
        def breakpoint(self, added: list[str], removed: list[str]) -> None:
            hits.append((list(added), list(removed)))

    m = BpMachine({"A": am.State(), "B": am.State(), "C": am.State(), "D": am.State()})
    log = capture_log(m)
    m.log_stack_trace = True
    m.add_breakpoint(["A"], ["B"], False)
    m.add1("C")
    assert hits == []
    m.add1("A")
    assert hits == [(["A"], [])]
    assert "[breakpoint] Machine.breakpoint" in log.text


# --------------------------------------------------------------------------
# eval


def test_eval() -> None:
    """TestEval."""
    m = new_no_rels(None)
    a = []
    assert m.eval(lambda: a.append(1), source="TestEval") is True
    assert a == [1]


def test_eval_nested() -> None:
    """TestEvalNested."""
    m = new_no_rels(None)
    a = [0]
    nested: list[bool] = []

    def outer() -> None:
        a[0] += 1

        def inner() -> None:
            a[0] += 1

        nested.append(m.eval(inner, source="TestEvalNestedNested"))

    ok = m.eval(outer, source="TestEvalNested")
    assert ok is True  # outer eval should be true
    assert nested == [False]  # nested eval should be false
    assert a == [1]
    assert not m.is_err()


def test_eval_nested_handlers() -> None:
    """TestEvalNestedHandlers, the direct half (the forked half comes with the
    anyio runtime)."""
    a = [0]
    direct: list[bool] = []
    m = new_no_rels(None)

    def a_state(e: am.Event) -> None:
        direct.append(m.eval(lambda: a.__setitem__(0, a[0] + 1), source="x"))

    m.bind_handlers(SimpleNamespace(AState=a_state))
    m.add1("A")
    assert direct == [False]  # direct eval should be false
    assert a == [0]
    assert m.is_err()
    assert isinstance(m.err, am.NestedEvalError)
    assert_states(m, ["A", "Exception"])


# --------------------------------------------------------------------------
# dispose


def test_dispose() -> None:
    """TestDispose."""
    m = new_no_rels(["A"])
    ran: list[bool] = []
    m.on_dispose(lambda: ran.append(True))
    m.dispose()
    assert m.disposed
    assert ran == [True]
    m.dispose()  # idempotent
    assert ran == [True]


def test_disposed_no_op() -> None:
    """TestDisposedNoOp (sync parts; when-methods come with the runtime)."""
    m = new_no_rels(None)
    m.dispose()
    s = ["A"]

    # mutations
    assert m.set(s) == R.CANCELED
    assert m.add1("A") == R.CANCELED
    assert m.remove1("A") == R.CANCELED
    assert m.toggle1("A") == R.CANCELED
    assert m.toggle(s) == R.CANCELED
    assert m.add_err_state("A", ValueError("e")) == R.CANCELED
    assert m.add_err(ValueError("e")) == R.CANCELED

    # states
    assert m.queue_len == 0
    assert m.queue == []
    assert m.active_states == []
    assert m.clock() == {}

    # others
    found, _, _ = m.is_queued(am.MutationType.ADD, s)
    assert not found
    assert not m.has1("A")
    assert not m.is1("A")
    assert not m.is_(s)
    assert not m.not_(s)
    assert not m.any1("A")
    assert not m.is_clock({})
    assert not m.is_time((), s)
    assert str(m) == ""
    assert m.time() == ()
    assert sum(m.time()) == 0
    assert m.tick("A") == 0
    assert m.string_all() == ""
    assert m.inspect() == ""
    assert m.eval(lambda: None, source="test") is False
    assert m.new_state_ctx("A").expired
    assert m.state_names == ["A", "B", "C", "D", "Exception"]
    m.log("")


# --------------------------------------------------------------------------
# construction, options, ids, tracers


def test_nil_ctx() -> None:
    """TestNilCtx (Go's nil context is Go-only; its assertion, a generated id,
    is checked against §1.5: 16 random lowercase hex chars)."""
    m = am.Machine({"A": am.State()})
    assert len(m.id) == 16
    assert all(c in "0123456789abcdef" for c in m.id)
    assert am.Machine({"A": am.State()}).id != m.id


def test_new_common() -> None:
    """TestNewCommon (Go's `NewCommon(id, schema, names, handlers)` is the
    constructor with `id=` and `handlers=`; a user-defined Exception is kept
    as written, not Multi, §1.2)."""
    calls: list[str] = []

    class NewCommonHandlers(am.ExceptionHandler):
        def AState(self, e: am.Event) -> None:
            calls.append("AState")

    s = {"A": am.State(), "Exception": am.State()}
    m = am.Machine(s, id="foo", handlers=NewCommonHandlers())
    assert m.id == "foo"
    assert m.state_names == ["A", "Exception"]
    m.add1("A")
    assert calls == ["AState"]
    assert m.schema["Exception"].multi is False
    m.add_err(ValueError("1"))
    m.add_err(ValueError("2"))
    assert m.tick("Exception") == 1  # not Multi: no +2


def test_new_common_less_common() -> None:
    """TestNewCommonLessCommon (a parent and options; Go's handler-timeout
    env check and state-names-list error are Go-only)."""
    calls: list[str] = []

    class NewCommonHandlers(am.ExceptionHandler):
        def AState(self, e: am.Event) -> None:
            calls.append("AState")

    m = new_no_rels(["A", "C"])
    s = {"A": am.State(), "Exception": am.State()}
    m2 = am.Machine(
        s, id="foo", handlers=NewCommonHandlers(), parent=m,
        log_level=am.LogLevel.CHANGES,
    )  # fmt: skip
    assert m2.parent_id == m.id
    assert m2.log_level == am.LogLevel.CHANGES
    m2.add1("A")
    assert calls == ["AState"]


class RecordingTracer(am.Tracer):
    """A tracer recording its hook calls."""

    def __init__(self, inheritable: bool = False) -> None:
        self._inheritable = inheritable
        self.calls: list[tuple[str, Any]] = []

    def inheritable(self) -> bool:
        return self._inheritable

    def machine_init(self, machine: am.Machine) -> None:
        self.calls.append(("machine_init", machine.id))

    def new_submachine(self, parent: am.Machine, machine: am.Machine) -> None:
        self.calls.append(("new_submachine", (parent.id, machine.id)))

    def transition_init(self, transition: am.Transition) -> None:
        self.calls.append(("transition_init", list(transition.called_states)))

    def transition_start(self, transition: am.Transition) -> None:
        self.calls.append(("transition_start", list(transition.called_states)))

    def transition_end(self, transition: am.Transition) -> None:
        self.calls.append(("transition_end", list(transition.called_states)))

    def machine_dispose(self, machine_id: str) -> None:
        self.calls.append(("machine_dispose", machine_id))


def test_tracers() -> None:
    """TestTracers."""
    t_noop = RecordingTracer()
    m = new_no_rels(None)
    m2 = am.Machine({"A": am.State()}, id="m2", tracers=[t_noop], parent=m)

    class TracersHandlers(am.ExceptionHandler):
        def AState(self, e: am.Event) -> None:
            pass

    m2.bind_handlers(TracersHandlers())
    assert len(m2.tracers) == 1
    assert m2.tracers[0].inheritable() is False
    m2.add1("A")
    assert len(m2.tracers) == 1
    names = [name for name, _ in t_noop.calls]
    assert names[0] == "machine_init"
    assert t_noop.calls[0] == ("machine_init", "m2")
    assert ("transition_init", ["A"]) in t_noop.calls
    assert ("transition_start", ["A"]) in t_noop.calls
    assert ("transition_end", ["A"]) in t_noop.calls
    m2.dispose()
    assert t_noop.calls[-1] == ("machine_dispose", "m2")


def test_bind_tracer() -> None:
    """TestBindTracer (Go refuses a non-pointer tracer; Python refuses to
    detach a tracer that is not bound)."""
    m = new_no_rels(None)
    trace = RecordingTracer()
    m.bind_tracer(trace)
    assert m.tracers == (trace,)
    assert trace.calls[0] == ("machine_init", m.id)
    m.detach_tracer(trace)
    assert len(m.tracers) == 0
    with pytest.raises(ValueError):
        m.detach_tracer(trace)
    # a detached tracer sees nothing
    n = len(trace.calls)
    m.add1("A")
    assert len(trace.calls) == n


def test_submachines() -> None:
    """TestSubmachines (a Go TODO, ported from docs/dev/api-decisions.md: parent id,
    inheritable tracers copied, `new_submachine` hook)."""
    inherit = RecordingTracer(inheritable=True)
    local = RecordingTracer()
    parent = am.Machine({"P": am.State()}, id="parent", tracers=[inherit, local])
    child = am.Machine({"C": am.State()}, id="child", parent=parent)
    assert child.parent_id == "parent"
    assert parent.parent_id in ("", None)
    assert child.tracers == (inherit,)
    assert ("new_submachine", ("parent", "child")) in inherit.calls
    assert ("new_submachine", ("parent", "child")) in local.calls
    child.add1("C")
    assert ("transition_end", ["C"]) in inherit.calls
    assert ("transition_end", ["C"]) not in local.calls


def test_opts() -> None:
    """TestOpts (Go `Opts` are constructor keywords and attributes; `SetTags`
    and `Resolver` are Go-only)."""
    m = new_no_rels(None)
    tags = ["a", "b"]
    m2 = am.Machine(
        {},
        parent=m,
        log_stack_trace=False,
        log_level=am.LogLevel.CHANGES,
        queue_limit=10,
        tags=tags,
    )
    m2.log_id = False
    assert m2.parent_id == m.id
    assert m2.log_stack_trace is False
    assert m2.tags == tags
    assert m2.queue_limit == 10
    assert m2.log_level == am.LogLevel.CHANGES
    assert m2.state_names == ["Exception"]
    # duplicated tags are removed (§1.5)
    assert am.Machine({}, tags=["a", "b", "a"]).tags == ["a", "b"]


def test_groups() -> None:
    """TestGroups, the typed-names part (Python has no state groups: Go's
    `NewStateGroups`/`SetGroups`/`Groups()` are not ported). Three inherited
    name classes give a merged schema in parent-first order."""

    class Groups0(am.StatesBase):
        State00 = am.state()
        State01 = am.state()

    class Groups1(Groups0):
        State10 = am.state()
        State11 = am.state()

    class Groups2(Groups1):
        State20 = am.state()
        State21 = am.state()

    s = Groups2
    schema0 = {s.State00: am.State(), s.State01: am.State()}
    schema1 = am.schema_merge(schema0, {s.State10: am.State(), s.State11: am.State()})
    schema2 = am.schema_merge(schema1, {s.State20: am.State(), s.State21: am.State()})
    m = am.Machine(schema2)
    assert m.state_names == Groups2.names()
    assert Groups2.names() == [
        "State00", "State01", "State10", "State11", "State20", "State21",
        "Exception",
    ]  # fmt: skip
    assert Groups1.names() == ["State00", "State01", "State10", "State11", "Exception"]
