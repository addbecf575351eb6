"""Rules of docs/design/semantics.md §3 (mutations) and §4 (target states, relations).

Target order is observed through the order of Enter handlers (enters keep
target order, §4.5) and through `e.transition.target_states`.
"""

from __future__ import annotations

import pytest

import asyncmachine as am
from semantics_helpers import ABCD, logged_machine, recorder

EXECUTED, CANCELED, QUEUED = am.Result.EXECUTED, am.Result.CANCELED, am.Result.QUEUED
OPS, DECISIONS = int(am.LogLevel.OPS), int(am.LogLevel.DECISIONS)


def targets_of(m: am.Machine) -> list[list[str]]:
    """Bind a handler that records `transition.target_states` in AnyEnter."""
    seen: list[list[str]] = []
    m.bind_handlers(
        recorder(
            [],
            only=["AnyEnter"],
            actions={
                "AnyEnter": lambda e: seen.append(list(e.transition.target_states))
            },
        )
    )
    return seen


# ---------------------------------------------------------------------------
# §3.1 mutation types


def test_3_1_add_keeps_active_states() -> None:
    m = am.Machine(ABCD())
    m.add1("A")
    assert m.add(["B", "C"]) == EXECUTED
    assert m.active_states == ["A", "B", "C"]


def test_3_1_remove_takes_called_out() -> None:
    m = am.Machine(ABCD())
    m.add(["A", "B", "C"])
    assert m.remove(["A", "C"]) == EXECUTED
    assert m.active_states == ["B"]


def test_3_1_set_replaces_active_states() -> None:
    m = am.Machine(ABCD())
    m.add(["A", "B"])
    assert m.set(["C", "B"]) == EXECUTED
    assert m.active_states == ["B", "C"]
    assert m.time(["A", "B", "C"]) == (2, 1, 1)


def test_3_1_toggle_removes_if_all_active_else_adds() -> None:
    m = am.Machine(ABCD())
    m.add1("A")
    assert m.toggle(["A", "B"]) == EXECUTED  # not all active -> add
    assert m.active_states == ["A", "B"]
    assert m.toggle(["A", "B"]) == EXECUTED  # all active -> remove
    assert m.active_states == []
    assert m.toggle1("C") == EXECUTED
    assert m.active_states == ["C"]
    assert m.toggle1("C") == EXECUTED
    assert m.active_states == []
    assert m.tick("C") == 2


def test_3_1_toggle_decided_when_called() -> None:
    results: list[am.Result] = []

    def a_state(e: am.Event) -> None:
        mach = e.machine
        results.append(mach.add1("B"))  # queued add of B
        results.append(mach.toggle1("B"))  # B inactive now -> an add, queued

    m = am.Machine(
        ABCD(), handlers=recorder("A", only=["AState"], actions={"AState": a_state})
    )
    m.add1("A")
    assert results[0] == QUEUED
    # a toggle decided at run time would have removed B
    assert m.active_states == ["A", "B"]


def test_3_1_args_same_dict_for_every_handler() -> None:
    seen: list[tuple[str, object, object]] = []

    def grab(e: am.Event) -> None:
        seen.append((e.name, e.args, e.transition.mutation.args))

    names = ["AEnter", "AnyEnter", "AState", "AnyState"]
    rec = recorder("A", only=names, actions=dict.fromkeys(names, grab))
    m = am.Machine(ABCD(), handlers=rec)
    args = {"k": 1}
    m.add1("A", args)
    assert [s[0] for s in seen] == names
    first = seen[0][1]
    assert first == {"k": 1}
    for _name, e_args, mut_args in seen:
        assert e_args is first
        assert mut_args is first


def test_3_1_args_none_becomes_empty_dict() -> None:
    seen: list[object] = []
    rec = recorder(
        "A", only=["AState"], actions={"AState": lambda e: seen.append(e.args)}
    )
    m = am.Machine(ABCD(), handlers=rec)
    m.add1("A")
    assert seen == [{}]
    assert isinstance(seen[0], dict)


def test_3_1_unknown_name_raises_before_anything_happens() -> None:
    rec = recorder("ABCD")
    m, log = logged_machine(ABCD(), handlers=rec)
    m.add1("A")
    rec.calls.clear()
    log.clear()
    before = m.time()
    for call in (m.add, m.remove, m.set, m.toggle):
        with pytest.raises(am.StateNameError, match="Ghost"):
            call(["B", "Ghost"])
    assert m.time() == before
    assert rec.calls == []
    assert m.queue_len == 0
    assert not any(
        line.startswith(("[add]", "[remove]", "[set]", "[queue")) for line in log.lines
    )


def test_3_1_unknown_name_inside_handler_queues_nothing() -> None:
    errors: list[BaseException] = []
    lengths: list[int] = []

    def a_state(e: am.Event) -> None:
        try:
            e.machine.add(["B", "Ghost"])
        except am.StateNameError as err:
            errors.append(err)
        lengths.append(e.machine.queue_len)

    m = am.Machine(
        ABCD(), handlers=recorder("A", only=["AState"], actions={"AState": a_state})
    )
    m.add1("A")
    assert len(errors) == 1
    assert lengths == [0]
    assert m.active_states == ["A"]


def test_3_1_duplicates_removed_first_kept() -> None:
    seen: list[list[str]] = []
    rec = recorder(
        "B",
        only=["AnyEnter"],
        actions={"AnyEnter": lambda e: seen.append(list(e.transition.called_states))},
    )
    m = am.Machine(ABCD(B=am.State(multi=True)), handlers=rec)
    m.add(["B", "A", "B", "A"])
    assert seen == [["B", "A"]]
    m.add(["B", "B"])
    assert m.tick("B") == 3  # one +2, not two


def test_3_1_add_empty_runs_self_handlers_and_any() -> None:
    rec = recorder("ABCD")
    m = am.Machine(ABCD(), handlers=rec)
    m.add1("A")
    rec.calls.clear()
    before = m.time()
    assert m.add([]) == EXECUTED
    assert rec.calls == ["AA", "AnyEnter", "AnyState"]
    assert m.time() == before


def test_3_1_remove_empty_runs_any_handlers() -> None:
    rec = recorder("ABCD")
    m = am.Machine(ABCD(), handlers=rec)
    m.add1("A")
    rec.calls.clear()
    before = m.time()
    assert m.remove([]) == EXECUTED
    assert rec.calls == ["AnyEnter", "AnyState"]
    assert m.time() == before


def test_3_1_set_empty_deactivates_everything_including_exception() -> None:
    m = am.Machine(ABCD())
    m.add(["A", "B"])
    m.add_err(ValueError("x"))
    assert m.is_err()
    assert m.set([]) == EXECUTED
    assert m.active_states == []
    assert m.time() == (2, 2, 0, 0, 2)


def test_3_1_remove_inactive_is_executed_transition() -> None:
    rec = recorder("ABCD")
    m = am.Machine(ABCD(), handlers=rec)
    m.add1("A")
    rec.calls.clear()
    assert m.remove1("B") == EXECUTED
    assert m.time() == (1, 0, 0, 0, 0)
    assert rec.calls == ["AnyEnter", "AnyState"]


def test_3_1_add_active_non_multi_no_tick_no_add_relations() -> None:
    m = am.Machine(ABCD(A=am.State(add=["B"])))
    m.add1("A")
    assert m.active_states == ["A", "B"]
    m.remove1("B")
    assert m.add1("A") == EXECUTED
    assert m.active_states == ["A"]  # A's add not re-applied
    assert m.time(["A", "B"]) == (1, 2)


def test_3_1_set_keeps_active_called_without_handlers_and_drops_implied() -> None:
    rec = recorder("ABCD")
    m = am.Machine(ABCD(A=am.State(add=["B"])), handlers=rec)
    m.add1("A")
    assert m.active_states == ["A", "B"]
    rec.calls.clear()
    assert m.set(["A"]) == EXECUTED
    assert m.active_states == ["A"]
    assert m.time(["A", "B"]) == (1, 2)
    assert "AEnter" not in rec.calls
    assert "AState" not in rec.calls
    assert rec.calls[:1] == ["BExit"]


# ---------------------------------------------------------------------------
# §3.2 results


def test_3_2_disposed_machine_cancels() -> None:
    m = am.Machine(ABCD())
    m.dispose()
    for call in (m.add, m.remove, m.set, m.toggle):
        assert call(["A"]) == CANCELED


def test_3_2_queue_full_cancels() -> None:
    results: list[am.Result] = []

    def a_state(e: am.Event) -> None:
        results.append(e.machine.add1("B"))
        results.append(e.machine.add1("C"))

    m = am.Machine(
        ABCD(),
        queue_limit=1,
        handlers=recorder("A", only=["AState"], actions={"AState": a_state}),
    )
    m.add1("A")
    assert results == [QUEUED, CANCELED]
    assert m.active_states == ["A", "B"]


def test_3_2_inside_handler_queued() -> None:
    results: list[am.Result] = []
    m = am.Machine(
        ABCD(),
        handlers=recorder(
            "A",
            only=["AState"],
            actions={"AState": lambda e: results.append(e.machine.add1("B"))},
        ),
    )
    assert m.add1("A") == EXECUTED
    assert results == [QUEUED]
    assert m.active_states == ["A", "B"]


def test_3_2_inline_executed_or_canceled() -> None:
    m = am.Machine(ABCD(B=am.State(require=["C"])))
    assert m.add1("A") == EXECUTED
    assert m.add1("B") == CANCELED
    rec = recorder("ABCD", returns={"DEnter": False})
    m.bind_handlers(rec)
    assert m.add1("D") == CANCELED


def test_3_2_result_is_the_callers_own_transition() -> None:
    # A's State queues an add that gets canceled; an auto transition is
    # canceled too: the caller still gets EXECUTED
    schema = ABCD(B=am.State(require=["D"]), C=am.State(auto=True, require=["D"]))
    m = am.Machine(
        schema,
        handlers=recorder(
            "A", only=["AState"], actions={"AState": lambda e: e.machine.add1("B")}
        ),
    )
    assert m.add1("A") == EXECUTED
    assert m.active_states == ["A"]


def test_3_2_canceled_own_transition_while_queued_one_runs() -> None:
    rec = recorder(
        "ABCD",
        returns={"AEnter": False},
        actions={"AEnter": lambda e: e.machine.add1("B")},
    )
    m = am.Machine(ABCD(), handlers=rec)
    assert m.add1("A") == CANCELED
    assert m.active_states == ["B"]


def test_3_2_remove_executed_means_called_inactive() -> None:
    m = am.Machine(ABCD(A=am.State(multi=True, add=["B"])))
    m.add(["A", "C"])
    assert m.active_states == ["A", "B", "C"]
    assert m.remove(["B", "C"]) == EXECUTED
    assert m.not_(["B", "C"])


# ---------------------------------------------------------------------------
# §3.3 self-removal patterns


def test_3_3_action_state_removes_itself_after_auto() -> None:
    results: list[am.Result] = []
    rec = recorder(
        ["Click", "Auto"],
        actions={"ClickState": lambda e: results.append(e.machine.remove1("Click"))},
    )
    m = am.Machine({"Click": am.State(), "Auto": am.State(auto=True)}, handlers=rec)
    assert m.add1("Click") == EXECUTED
    assert results == [QUEUED]
    assert m.active_states == ["Auto"]
    # the queued remove runs after the auto transition prepended by add(Click)
    assert rec.calls.index("AutoState") < rec.calls.index("ClickExit")


def test_3_3_multi_removed_by_last_job() -> None:
    jobs: list[int] = []
    rec = recorder(
        ["Click"],
        only=["ClickState"],
        actions={"ClickState": lambda e: jobs.append(e.machine.tick("Click"))},
    )
    m = am.Machine({"Click": am.State(multi=True)}, handlers=rec)
    m.add1("Click")
    m.add1("Click")
    assert jobs == [1, 3]
    for t in jobs:  # the jobs finish in order; only the last one removes
        if m.tick("Click") == t:
            m.remove1("Click")
        assert m.is1("Click") == (t != jobs[-1])


# ---------------------------------------------------------------------------
# §4.1 helpers: drop_unmet logging


def test_4_1_reject_log_lists_missing_requirements() -> None:
    schema = {
        "A": am.State(),
        "B": am.State(require=["C", "D"]),
        "C": am.State(),
        "D": am.State(),
        "E": am.State(require=["F"]),
        "F": am.State(),
    }
    m, log = logged_machine(schema)
    assert m.add(["B", "E"]) == CANCELED
    assert log.with_prefix("[reject]") == ["[reject] B(-C -D) E(-F)"]
    assert log.levels_of("[reject]") == [OPS]


def test_4_1_reject_log_in_dropping_order() -> None:
    schema = ABCD(A=am.State(require=["B"]), B=am.State(require=["C"]))
    m, log = logged_machine(schema)
    assert m.add(["A", "B"]) == CANCELED
    assert log.with_prefix("[reject]") == ["[reject] B(-C) A(-B)"]
    assert log.with_prefix("[cancel:reject]") == ["[cancel:reject] A B"]


def test_4_1_expand_add_one_level_per_call() -> None:
    m = am.Machine(
        ABCD(A=am.State(add=["B"]), B=am.State(add=["C"]), C=am.State(add=["D"]))
    )
    assert m.add1("A") == EXECUTED
    assert m.active_states == ["A", "B", "C"]


# ---------------------------------------------------------------------------
# §4.2 consequences table


def test_4_2_add_reaches_two_hops() -> None:
    m = am.Machine(
        ABCD(A=am.State(add=["B"]), B=am.State(add=["C"]), C=am.State(add=["D"]))
    )
    targets = targets_of(m)
    m.add1("A")
    assert m.active_states == ["A", "B", "C"]
    assert m.tick("D") == 0
    assert targets == [["C", "A", "B"]]  # resulting order of §4.2 steps 4-5


def test_4_2_active_non_multi_in_to_set_add_not_followed() -> None:
    m = am.Machine(ABCD(A=am.State(add=["B"])))
    m.add1("A")
    m.remove1("B")
    m.add1("C")  # A is "before" and not Multi: its add is not followed
    assert m.active_states == ["A", "C"]


def test_4_2_active_multi_add_followed_every_time() -> None:
    m = am.Machine(ABCD(B=am.State(multi=True, add=["C"])))
    m.add1("B")
    assert m.active_states == ["B", "C"]
    m.remove1("C")
    assert m.active_states == ["B"]
    assert m.add1("A") == EXECUTED
    assert m.active_states == ["A", "B", "C"]
    assert m.tick("B") == 1  # implied, not called: no +2
    assert m.tick("C") == 3


def test_4_2_remove_does_not_reimply_removed_add_targets() -> None:
    m = am.Machine(ABCD(A=am.State(multi=True, add=["B"], require=["C"])))
    m.add(["C", "A"])
    assert m.active_states == ["A", "B", "C"]
    assert m.remove1("B") == EXECUTED
    assert m.active_states == ["A", "C"]


def test_4_2_called_state_missing_requirement_cancels() -> None:
    m = am.Machine(ABCD(A=am.State(require=["B"])))
    assert m.add1("A") == CANCELED
    assert m.active_states == []
    assert m.set(["A", "C"]) == CANCELED
    assert m.active_states == []


def test_4_2_implied_state_missing_requirement_silently_dropped() -> None:
    m = am.Machine(ABCD(A=am.State(add=["B"]), B=am.State(require=["C"])))
    assert m.add1("A") == EXECUTED
    assert m.active_states == ["A"]


def test_4_2_active_state_losing_requirement_deactivated_cascade() -> None:
    m = am.Machine(ABCD(A=am.State(require=["B"]), B=am.State(require=["C"])))
    assert m.add(["A", "B", "C"]) == EXECUTED
    assert m.active_states == ["A", "B", "C"]
    assert m.remove1("C") == EXECUTED
    assert m.active_states == []
    assert m.time(["A", "B", "C"]) == (2, 2, 2)


def test_4_2_called_blocked_by_active_remover_cancels() -> None:
    m, log = logged_machine({"Foo": am.State(), "Bar": am.State(remove=["Foo"])})
    m.add1("Bar")
    log.clear()
    assert m.add1("Foo") == CANCELED
    assert m.active_states == ["Bar"]
    assert log.with_prefix("[cancel:reject]") == ["[cancel:reject] Foo"]
    assert log.with_prefix("[rel:remove]") == []  # Foo inactive: DECISIONS


def test_4_2_called_removes_active_state() -> None:
    m = am.Machine(ABCD(A=am.State(remove=["B"])))
    m.add1("B")
    assert m.add1("A") == EXECUTED
    assert m.active_states == ["A"]


def test_4_2_called_wins_mutual_remove_exclusive_group() -> None:
    group = ["A", "B", "C"]
    m = am.Machine(ABCD(**{x: am.State(remove=group) for x in group}))
    assert m.add1("A") == EXECUTED
    assert m.active_states == ["A"]
    assert m.add1("B") == EXECUTED
    assert m.active_states == ["B"]
    assert m.add1("C") == EXECUTED
    assert m.active_states == ["C"]
    assert m.add1("D") == EXECUTED
    assert m.active_states == ["C", "D"]
    assert m.time(["A", "B", "C"]) == (2, 2, 1)


@pytest.mark.parametrize("called", [["A", "B"], ["B", "A"]])
def test_4_2_two_called_one_removes_other_cancels(called: list[str]) -> None:
    m = am.Machine(ABCD(A=am.State(remove=["B"])))
    assert m.add(called) == CANCELED
    assert m.set(called) == CANCELED
    assert m.active_states == []


def test_4_2_implied_state_removes_active_state() -> None:
    m = am.Machine(ABCD(A=am.State(add=["C"]), C=am.State(remove=["B"])))
    m.add1("B")
    assert m.add1("A") == EXECUTED
    assert m.active_states == ["A", "C"]


def test_4_2_active_state_blocks_implied_state() -> None:
    m = am.Machine(ABCD(A=am.State(add=["C"]), B=am.State(remove=["C"])))
    m.add1("B")
    assert m.add1("A") == EXECUTED
    assert m.active_states == ["A", "B"]


def test_4_2_implied_of_new_state_blocked_by_target_state() -> None:
    m = am.Machine(ABCD(A=am.State(remove=["D"]), C=am.State(add=["D"])))
    assert m.set(["A", "C"]) == EXECUTED
    assert m.active_states == ["A", "C"]


def test_4_2_add_cycle_terminates() -> None:
    m = am.Machine(ABCD(A=am.State(add=["B"]), B=am.State(add=["A"])))
    assert m.add1("A") == EXECUTED
    assert m.active_states == ["A", "B"]


def test_4_2_require_cycle_only_together() -> None:
    m = am.Machine(ABCD(A=am.State(require=["B"]), B=am.State(require=["A"])))
    assert m.add1("A") == CANCELED
    assert m.add1("B") == CANCELED
    assert m.add(["A", "B"]) == EXECUTED
    assert m.active_states == ["A", "B"]
    assert m.remove1("A") == EXECUTED
    assert m.active_states == []


def test_4_2_second_hop_add_is_not_blocked() -> None:
    # §4.2 steps 3-4 only exclude the removes of kept states (K); a state
    # implied two hops away is not checked for its own `remove`, so the
    # "no active state removes another" invariant does not hold here.
    m = am.Machine(
        ABCD(A=am.State(add=["B"]), B=am.State(add=["C"]), C=am.State(remove=["A"]))
    )
    assert m.add1("A") == EXECUTED
    assert m.active_states == ["A", "B", "C"]


def test_4_2_blocking_pass_walks_from_last() -> None:
    # L1 = [A, B, C]; walking C, B, A: C blocked by B; B is not blocked
    # (its only remover C is blocked already); A kept.
    m = am.Machine(ABCD(B=am.State(remove=["C"]), C=am.State(remove=["B"])))
    assert m.add(["A", "B"]) == EXECUTED
    m.remove1("B")
    # called C is last: walking C first -> blocked by B (B in L1, unblocked)
    assert m.add(["B", "C"]) == CANCELED
    assert m.add(["C", "B"]) == CANCELED
    assert m.active_states == ["A"]


def test_4_2_rel_remove_log_names_all_blockers() -> None:
    m, log = logged_machine(ABCD(B=am.State(remove=["D"]), C=am.State(remove=["D"])))
    m.add1("D")
    log.clear()
    assert m.add(["B", "C"]) == EXECUTED
    assert m.active_states == ["B", "C"]
    assert log.with_prefix("[rel:remove]") == ["[rel:remove] D by B C"]
    assert log.levels_of("[rel:remove]") == [OPS]


def test_4_2_rel_remove_of_inactive_logged_at_decisions() -> None:
    schema = ABCD(A=am.State(add=["D"]), B=am.State(remove=["D"]))
    m, log = logged_machine(schema, am.LogLevel.DECISIONS)
    m.add1("B")
    log.clear()
    assert m.add1("A") == EXECUTED
    assert log.with_prefix("[rel:remove]") == ["[rel:remove] D by B"]
    assert log.levels_of("[rel:remove]") == [DECISIONS]
    m2, log2 = logged_machine(schema, am.LogLevel.OPS)
    m2.add1("B")
    m2.add1("A")
    assert log2.with_prefix("[rel:remove]") == []


# ---------------------------------------------------------------------------
# §4.3 acceptance


def test_4_3_remove_always_accepted_by_relations() -> None:
    m = am.Machine(ABCD(A=am.State(require=["B"]), C=am.State(remove=["D"])))
    m.add(["A", "B", "C"])
    assert m.remove(["B", "D"]) == EXECUTED
    assert m.active_states == ["C"]


def test_4_3_rejected_add_calls_no_handler_and_logs() -> None:
    rec = recorder("ABCD")
    m, log = logged_machine(
        ABCD(C=am.State(require=["A"]), D=am.State(require=["A"])), handlers=rec
    )
    m.add1("B")
    rec.calls.clear()
    log.clear()
    assert m.add(["C", "D"]) == CANCELED
    assert rec.calls == []  # not even AnyEnter
    assert log.with_prefix("[cancel:reject]") == ["[cancel:reject] C D"]
    assert log.levels_of("[cancel:reject]") == [OPS]


def test_4_3_set_rejected_when_a_called_state_missing() -> None:
    m = am.Machine(ABCD(C=am.State(require=["D"])))
    m.add1("A")
    assert m.set(["B", "C"]) == CANCELED
    assert m.active_states == ["A"]


# ---------------------------------------------------------------------------
# §4.4 sorting


def test_4_4_topology_require_sort() -> None:
    schema = ABCD(A=am.State(require=["B", "C"]), B=am.State(require=["D"]))
    for called in (["A", "B", "C", "D"], ["C", "D", "A", "B"], ["D", "A", "C", "B"]):
        m = am.Machine(schema)
        targets = targets_of(m)
        rec = recorder("ABCD")
        m.bind_handlers(rec)
        assert m.add(called) == EXECUTED
        assert targets == [["D", "B", "C", "A"]], called
        assert [c for c in rec.calls if c.endswith("Enter") and c != "AnyEnter"] == [
            "DEnter",
            "BEnter",
            "CEnter",
            "AEnter",
        ]


def test_4_4_after_pass() -> None:
    m = am.Machine(ABCD(A=am.State(after=["B"]), C=am.State(after=["D"])))
    targets = targets_of(m)
    m.add(["A", "B", "C", "D"])
    assert targets == [["B", "A", "D", "C"]]


def test_4_4_require_then_after() -> None:
    m = am.Machine(ABCD(A=am.State(require=["B"]), C=am.State(after=["A"])))
    targets = targets_of(m)
    m.add(["C", "A", "D", "B"])
    assert targets == [["C", "D", "B", "A"]]


def test_4_4_after_pass_only_swaps_neighbours() -> None:
    m = am.Machine(ABCD(A=am.State(after=["C"])))
    targets = targets_of(m)
    m.add(["A", "B", "C"])
    assert targets == [["A", "B", "C"]]


def test_4_4_mutual_after_does_not_swap() -> None:
    m = am.Machine(ABCD(A=am.State(after=["B"]), B=am.State(after=["A"])))
    targets = targets_of(m)
    m.add(["A", "B"])
    assert targets == [["A", "B"]]


def test_4_4_require_cycle_disables_topology_and_logs() -> None:
    schema = ABCD(
        A=am.State(require=["B"]), B=am.State(require=["A"]), C=am.State(require=["D"])
    )
    m, log = logged_machine(schema, am.LogLevel.CHANGES)
    lines = log.with_prefix("[resolver] relation error: ")
    assert len(lines) == 1
    assert log.levels_of("[resolver]") == [int(am.LogLevel.CHANGES)]
    targets = targets_of(m)
    m.add(["C", "D"])
    assert targets == [["C", "D"]]  # no require sort: D would come first
    m2 = am.Machine(ABCD(C=am.State(require=["D"])))
    targets2 = targets_of(m2)
    m2.add(["C", "D"])
    assert targets2 == [["D", "C"]]


def test_4_4_long_require_chain_sorts_without_recursion() -> None:
    """The require topology of a chain longer than Python's recursion
    limit (a schema the linter and the constructor walk, too)."""
    n = 3000
    schema = {
        f"S{i}": am.State(require=[f"S{i + 1}"] if i < n - 1 else []) for i in range(n)
    }
    m = am.Machine(schema)
    targets = targets_of(m)
    m.add([f"S{i}" for i in range(n - 3, n)])
    assert targets == [[f"S{n - 1}", f"S{n - 2}", f"S{n - 3}"]]


def test_4_4_require_cycle_message_names_the_cycle() -> None:
    schema = ABCD(
        A=am.State(require=["B"]), B=am.State(require=["C"]), C=am.State(require=["A"])
    )
    _, log = logged_machine(schema, am.LogLevel.CHANGES)
    assert log.with_prefix("[resolver] relation error: ") == [
        "[resolver] relation error: require cycle A -> B -> C -> A"
    ]


# ---------------------------------------------------------------------------
# §4.5 exits and enters


def test_4_5_exits_sorted_enters_in_target_order() -> None:
    rec = recorder("ABCD")
    m = am.Machine(ABCD(A=am.State(after=["B"]), C=am.State(after=["D"])), handlers=rec)
    m.add(["A", "B"])
    rec.calls.clear()
    m.set(["C", "D"])
    assert rec.calls[:4] == ["BExit", "AExit", "DEnter", "CEnter"]


def test_4_5_only_exits_and_enters_get_exit_enter_handlers() -> None:
    rec = recorder("ABCD")
    m = am.Machine(ABCD(B=am.State(multi=True)), handlers=rec)
    m.add(["A", "B", "C"])
    rec.calls.clear()
    m.set(["A", "B", "D"])  # A kept (no handlers), B Multi called (Enter), C exits
    finals_and_entries = [
        c
        for c in rec.calls
        if c.endswith(("Enter", "Exit", "State", "End")) and "Any" not in c
    ]
    assert finals_and_entries == [
        "CExit",
        "BEnter",
        "DEnter",
        "CEnd",
        "BState",
        "DState",
    ]


def test_4_2_blocked_implied_state_returns_via_step_4() -> None:
    # A (implied by X) is blocked in step 2 by B, and B by C; only C's removes
    # form R, so step 4 re-implies A although A removes the kept K.
    schema = {
        "X": am.State(add=["A"]),
        "A": am.State(remove=["K"]),
        "K": am.State(),
        "B": am.State(remove=["A"]),
        "C": am.State(remove=["B"]),
    }
    m = am.Machine(schema)
    m.add1("B")
    assert m.add(["X", "C", "K"]) == EXECUTED
    assert m.active_states == ["X", "A", "K", "C"]
