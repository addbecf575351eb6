"""Rules of docs/design/semantics.md §5 (handlers and their order) and §6
(negotiation, cancellation, Auto states)."""

from __future__ import annotations

from typing import Any

import pytest

import asyncmachine as am
from semantics_helpers import ABCD, logged_machine, recorder

EXECUTED, CANCELED, QUEUED = am.Result.EXECUTED, am.Result.CANCELED, am.Result.QUEUED


def split(text: str) -> list[str]:
    return text.split()


# ---------------------------------------------------------------------------
# §5.1 binding


def test_5_1_every_bound_object_called_in_binding_order() -> None:
    order: list[str] = []
    r1 = recorder(
        "A",
        only=["AEnter", "AState"],
        actions={
            "AEnter": lambda e: order.append("1e"),
            "AState": lambda e: order.append("1s"),
        },
    )
    r2 = recorder(
        "A",
        only=["AEnter", "AState"],
        actions={
            "AEnter": lambda e: order.append("2e"),
            "AState": lambda e: order.append("2s"),
        },
    )
    m = am.Machine(ABCD())
    m.bind_handlers(r1)
    m.bind_handlers(r2)
    m.add1("A")
    assert order == ["1e", "2e", "1s", "2s"]


def test_5_1_false_stops_remaining_objects() -> None:
    r1 = recorder("A", only=["AEnter"], returns={"AEnter": False})
    r2 = recorder("A", only=["AEnter"])
    m = am.Machine(ABCD(), handlers=[r1, r2])
    assert m.add1("A") == CANCELED
    assert r1.calls == ["AEnter"]
    assert r2.calls == []


@pytest.mark.parametrize("value", [None, True, 0, "", [], 1])
def test_5_1_only_exactly_false_cancels(value: Any) -> None:
    m = am.Machine(
        ABCD(), handlers=recorder("A", only=["AEnter"], returns={"AEnter": value})
    )
    assert m.add1("A") == EXECUTED
    assert m.is1("A")


def test_5_1_non_handlers_ignored() -> None:
    class H:
        calls: list[str] = []

        def AnyB(self, e: am.Event) -> None:
            self.calls.append("AnyB")

        def BAny(self, e: am.Event) -> None:
            self.calls.append("BAny")

        def Helper(self, e: am.Event) -> None:
            self.calls.append("Helper")

        def helper(self, e: am.Event) -> None:
            self.calls.append("helper")

        AState = "not callable"

    h = H()
    m = am.Machine(ABCD())
    m.bind_handlers(h)
    m.add(["A", "B"])
    m.remove1("A")
    assert h.calls == []
    assert m.active_states == ["B"]


def test_5_1_suffix_form_takes_precedence() -> None:
    # "AState" fits A+State (suffix form, final) and A+"State" (cross handler
    # of a state named State, negotiation). Suffix form first: it is a final
    # handler, so an async one binds (a negotiation one would raise TypeError).
    async def a_state(self: Any, e: Any) -> None:
        return None

    m = am.Machine({"A": am.State(), "State": am.State()})
    assert isinstance(m.bind_handlers(type("H", (), {"AState": a_state})()), str)
    # and a sync "AEnter" with a state named Enter runs when A enters
    rec = recorder(["A", "Enter"], only=["AEnter"])
    m2 = am.Machine({"A": am.State(), "Enter": am.State()}, handlers=rec)
    m2.add1("Enter")
    assert rec.calls == []
    m2.add1("A")
    assert rec.calls == ["AEnter"]


@pytest.mark.parametrize("name", ["GhostEnter", "GhostExit", "GhostState", "GhostEnd"])
def test_5_1_suffix_handler_for_unknown_state_raises_at_bind(name: str) -> None:
    m = am.Machine(ABCD())
    with pytest.raises(am.StateNameError, match="Ghost"):
        m.bind_handlers(recorder(["Ghost"], only=[name]))


@pytest.mark.parametrize("name", ["AEnter", "AExit", "AA", "AB", "AnyEnter"])
def test_5_1_async_negotiation_handler_raises_type_error(name: str) -> None:
    async def handler(self: Any, e: Any) -> None:
        return None

    cls = type("H", (), {name: handler})
    m = am.Machine(ABCD())
    with pytest.raises(TypeError):
        m.bind_handlers(cls())


@pytest.mark.parametrize("name", ["AState", "AEnd", "AnyState"])
def test_5_1_async_final_handler_binds(name: str) -> None:
    async def handler(self: Any, e: Any) -> None:
        return None

    cls = type("H", (), {name: handler})
    m = am.Machine(ABCD())
    assert isinstance(m.bind_handlers(cls()), str)


def test_5_1_detach_handlers() -> None:
    r1, r2 = recorder("ABCD"), recorder("ABCD")
    m, log = logged_machine(ABCD())
    b1 = m.bind_handlers(r1)
    b2 = m.bind_handlers(r2)
    m.detach_handlers(b1)
    m.add1("A")
    assert r1.calls == []
    assert r2.calls == ["AEnter", "AnyEnter", "AState", "AnyState"]
    # binding numbers are never reused
    assert "[handler:1] AState" in log.lines
    assert "[handler:0] AState" not in log.lines
    b3 = m.bind_handlers(recorder("ABCD"))
    assert any(line.startswith("[handlers] bind 2:") for line in log.lines)
    assert b3 not in (b1, b2)
    with pytest.raises(ValueError):
        m.detach_handlers(b1)
    with pytest.raises(ValueError):
        m.detach_handlers("no-such-binding")


# ---------------------------------------------------------------------------
# §5.2 / §5.4 handler order: the worked examples


def run_example(
    start: list[str],
    call: str,
    states: list[str],
    schema: dict[str, am.State] | None = None,
) -> tuple[am.Machine, list[str]]:
    rec = recorder("ABCD")
    m = am.Machine(schema or ABCD())
    assert m.add(start) == EXECUTED
    assert m.active_states == sorted(start)
    m.bind_handlers(rec)
    getattr(m, call)(states)
    return m, rec.calls


def test_5_4_row1_set_c_from_ab() -> None:
    m, calls = run_example(["A", "B"], "set", ["C"])
    assert calls == split("AExit BExit CEnter AC BC AnyEnter AEnd BEnd CState AnyState")
    assert m.string_all() == "(C:1) [A:2 B:2 D:0 Exception:0]"


def test_5_4_row2_set_d_c_from_ab() -> None:
    m, calls = run_example(["A", "B"], "set", ["D", "C"])
    assert calls == split(
        "AExit BExit DEnter CEnter AD AC BD BC AnyEnter AEnd BEnd DState CState AnyState"
    )
    assert m.active_states == ["C", "D"]


def test_5_4_row3_set_a_b_from_a() -> None:
    m, calls = run_example(["A"], "set", ["A", "B"])
    assert calls == split("BEnter AA AB AnyEnter BState AnyState")
    assert str(m) == "(A:1 B:1)"


def test_5_4_row4_add_c_from_ab() -> None:
    m, calls = run_example(["A", "B"], "add", ["C"])
    assert calls == split("CEnter AA BB AC AB BC BA AnyEnter CState AnyState")
    assert m.active_states == ["A", "B", "C"]


def test_5_4_row5_add_a_from_ab_no_change() -> None:
    m, calls = run_example(["A", "B"], "add", ["A"])
    assert calls == split("AA BB AB BA AnyEnter AnyState")
    assert str(m) == "(A:1 B:1)"


def test_5_4_row6_remove_a_from_ab() -> None:
    m, calls = run_example(["A", "B"], "remove", ["A"])
    assert calls == split("AExit AB AnyEnter AEnd AnyState")
    assert str(m) == "(B:1)"


def test_5_4_row7_remove_inactive_c_from_ab() -> None:
    m, calls = run_example(["A", "B"], "remove", ["C"])
    assert calls == split("AB BA AnyEnter AnyState")
    assert str(m) == "(A:1 B:1)"


def test_5_4_row8_add_multi_b_from_ab() -> None:
    m, calls = run_example(["A", "B"], "add", ["B"], ABCD(B=am.State(multi=True)))
    assert calls == split("BEnter BB AA AB BA AnyEnter BState AnyState")
    assert str(m) == "(A:1 B:3)"


def test_5_4_row9_set_multi_b_from_ab() -> None:
    m, calls = run_example(["A", "B"], "set", ["B"], ABCD(B=am.State(multi=True)))
    assert calls == split("AExit BEnter BB AB AnyEnter AEnd BState AnyState")
    assert str(m) == "(B:3)"


def test_5_4_row10_after_relations_order_exits_and_enters() -> None:
    schema = ABCD(A=am.State(after=["B"]), C=am.State(after=["D"]))
    m, calls = run_example(["A", "B"], "set", ["C", "D"], schema)
    assert calls == split(
        "BExit AExit DEnter CEnter AD AC BD BC AnyEnter BEnd AEnd DState CState AnyState"
    )
    assert m.active_states == ["C", "D"]


def test_5_4_row11_auto_chain_after_start() -> None:
    names = ["A", "B", "C", "D", "Start"]
    schema = {
        "A": am.State(auto=True, require=["B", "C"]),
        "B": am.State(auto=True, require=["D"]),
        "C": am.State(auto=True),
        "D": am.State(auto=True),
        "Start": am.State(),
    }
    rec = recorder(names)
    m = am.Machine(schema, handlers=rec)
    assert m.add1("Start") == EXECUTED
    assert rec.calls == split(
        "StartEnter AnyEnter StartState AnyState "
        "DEnter BEnter CEnter AEnter StartStart StartD StartB StartC StartA AnyEnter "
        "DState BState CState AState AnyState"
    )
    assert m.active_states == names
    assert rec.calls.count("AnyEnter") == 2
    assert rec.calls.count("AnyState") == 2


def test_5_2_self_handlers_never_for_remove() -> None:
    rec = recorder("ABCD")
    m = am.Machine(ABCD(), handlers=rec)
    m.add(["A", "B", "C"])
    rec.calls.clear()
    m.remove1("C")
    assert "AA" not in rec.calls
    assert "BB" not in rec.calls


def test_5_2_negotiation_stops_at_first_cancel() -> None:
    rec = recorder("ABCD", returns={"AC": False})
    m = am.Machine(ABCD(), handlers=rec)
    m.add(["A", "B"])
    rec.calls.clear()
    assert m.add1("C") == CANCELED
    assert rec.calls == split("CEnter AA BB AC")
    assert m.active_states == ["A", "B"]


def test_5_2_final_handlers_cannot_cancel() -> None:
    class H:
        def AState(self, e: am.Event) -> bool:
            return False

        def AnyState(self, e: am.Event) -> bool:
            return False

    m = am.Machine(ABCD(), handlers=H())
    assert m.add1("A") == EXECUTED
    assert m.is1("A")


# ---------------------------------------------------------------------------
# §5.3 who gets which handler


def test_5_3_cross_handler_for_kept_and_already_active_pairs() -> None:
    rec = recorder("ABCD")
    m = am.Machine(ABCD(), handlers=rec)
    m.add(["A", "B"])
    rec.calls.clear()
    m.add1("C")
    # B stays and was already active, A does not leave: both AB and BA run
    assert "AB" in rec.calls
    assert "BA" in rec.calls


def test_5_3_any_enter_on_no_op_and_dry_run_any_state_only_on_completion() -> None:
    rec = recorder("ABCD")
    m = am.Machine(ABCD(), handlers=rec)
    m.remove1("A")  # no-op mutation
    assert rec.calls == ["AnyEnter", "AnyState"]
    rec.calls.clear()
    m.can_add(["A"])  # dry run: AnyEnter only
    assert rec.calls == ["AEnter", "AnyEnter"]


# ---------------------------------------------------------------------------
# §5.5 event and transition data


def test_5_5_event_fields() -> None:
    events: list[am.Event] = []
    rec = recorder("ABCD", actions={"BEnter": events.append, "BState": events.append})
    m = am.Machine(ABCD(), id="ev", handlers=rec)
    args = {"x": 1}
    m.add1("B", args)
    enter, state = events
    assert enter.name == "BEnter"
    assert state.name == "BState"
    assert enter.machine is m
    assert enter.machine_id == "ev"
    assert enter.args == {"x": 1}
    assert enter.transition is state.transition


def test_5_5_transition_fields_during_negotiation_and_after_apply() -> None:
    snaps: dict[str, dict[str, Any]] = {}

    def snap(key: str) -> Any:
        def inner(e: am.Event) -> None:
            t = e.transition
            snaps[key] = {
                "called": list(t.called_states),
                "before": list(t.states_before),
                "target": list(t.target_states),
                "clock_before": dict(t.clock_before),
                "clock_after": dict(t.clock_after),
                "accepted": t.is_accepted,
                "type": t.mutation.type,
                "mcalled": list(t.mutation.called),
                "auto": t.mutation.auto,
                "is_check": t.is_check,
                "mut_is_check": t.mutation.is_check,
                "valid": e.is_valid(),
                "clock_now": e.machine.clock(),
            }

        return inner

    rec = recorder("ABCD", actions={"BEnter": snap("neg"), "BState": snap("final")})
    m = am.Machine(ABCD(D=am.State(multi=True)), handlers=rec)
    m.add(["D", "C"])  # state order: before is (C D)
    m.add(["B", "D"])
    neg, final = snaps["neg"], snaps["final"]
    assert neg["called"] == ["B", "D"]
    assert neg["mcalled"] == ["B", "D"]
    assert neg["before"] == ["C", "D"]
    assert set(neg["target"]) == {"B", "C", "D"}
    assert neg["type"] == am.MutationType.ADD
    assert neg["auto"] is False
    assert neg["is_check"] is False
    assert neg["mut_is_check"] is False
    assert neg["valid"] is True
    assert neg["accepted"] is True
    before = {"A": 0, "B": 0, "C": 1, "D": 1, "Exception": 0}
    assert neg["clock_before"] == before
    assert neg["clock_now"] == before
    predicted = {"A": 0, "B": 1, "C": 1, "D": 3, "Exception": 0}  # C1 and C3
    assert neg["clock_after"] == predicted
    assert final["clock_before"] == before
    assert final["clock_after"] == predicted
    assert final["clock_now"] == predicted


def test_5_5_canceled_transition_fields() -> None:
    txs: list[Any] = []
    events: list[am.Event] = []

    def grab(e: am.Event) -> None:
        txs.append(e.transition)
        events.append(e)

    rec = recorder("ABCD", actions={"BEnter": grab}, returns={"BEnter": False})
    m = am.Machine(ABCD(), handlers=rec)
    m.add1("A")
    assert m.add1("B") == CANCELED
    (tx,) = txs
    assert tx.is_accepted is False
    assert dict(tx.clock_after) == dict(tx.clock_before)
    assert events[0].is_valid() is False


# ---------------------------------------------------------------------------
# §6.1 cancellation by negotiation handlers


@pytest.mark.parametrize(
    ("handler", "call", "states"),
    [
        ("AExit", "remove", ["A"]),
        ("CEnter", "add", ["C"]),
        ("AA", "add", ["A"]),
        ("AC", "add", ["C"]),
        ("AnyEnter", "add", ["C"]),
        ("AnyEnter", "remove", ["A"]),
    ],
)
def test_6_1_false_cancels_normal_transition(
    handler: str, call: str, states: list[str]
) -> None:
    rec = recorder("ABCD", returns={handler: False})
    m = am.Machine(ABCD())
    m.add1("A")
    m.bind_handlers(rec)
    before = m.time()
    assert getattr(m, call)(states) == CANCELED
    assert m.time() == before
    assert rec.calls[-1] == handler  # nothing after the canceling handler
    assert rec.calls.count(handler) == 1
    assert "AnyState" not in rec.calls


def test_6_1_raise_in_negotiation_cancels() -> None:
    rec = recorder("ABCD", raises={"CEnter": ValueError("no")})
    m = am.Machine(ABCD(), handlers=rec)
    m.add1("A")
    assert m.add1("C") == CANCELED
    assert m.active_states == ["A", "Exception"]
    assert isinstance(m.err, ValueError)


def test_6_1_cancel_runs_no_auto_and_no_finals() -> None:
    rec = recorder("ABCD", returns={"BEnter": False})
    m = am.Machine(ABCD(D=am.State(auto=True, require=["B"])), handlers=rec)
    m.add1("A")
    rec.calls.clear()
    assert m.add(["B", "C"]) == CANCELED
    # target [C, A, B] after the require sort (D needs B): enters C, B
    assert rec.calls == ["CEnter", "BEnter"]
    assert m.active_states == ["A"]


def test_6_1_cancel_log_lines() -> None:
    rec = recorder("ABCD", returns={"DEnter": False, "AExit": False, "AA": False})
    m, log = logged_machine(ABCD(), handlers=rec)
    m.add1("A")
    log.clear()
    m.add1("D")
    m.remove1("A")
    m.add1("A")
    assert log.with_prefix("[cancel") == [
        "[cancel] (D A) by DEnter",
        "[cancel] () by AExit",
        "[cancel:self] (A) by AA",
    ]
    assert log.levels_of("[cancel") == [int(am.LogLevel.OPS)] * 3


def test_6_1_auto_exit_false_cancels_whole_auto() -> None:
    rec = recorder("ABCD", returns={"BExit": False})
    schema = ABCD(A=am.State(auto=True, remove=["B"]), B=am.State(auto=True))
    m = am.Machine(schema, handlers=rec)
    m.add1("B")  # auto: A removes active B -> BExit cancels the whole auto tx
    assert m.active_states == ["B"]
    assert m.tick("A") == 0


def test_6_1_auto_enter_false_of_auto_state_drops_it() -> None:
    rec = recorder("ABCD", returns={"AEnter": False})
    m = am.Machine(ABCD(A=am.State(auto=True), B=am.State(auto=True)), handlers=rec)
    m.add1("C")
    assert m.active_states == ["B", "C"]


def test_6_1_auto_enter_false_of_non_auto_state_cancels() -> None:
    rec = recorder("ABCD", returns={"DEnter": False})
    schema = ABCD(A=am.State(auto=True, add=["D"]), B=am.State(auto=True))
    m = am.Machine(schema, handlers=rec)
    m.add1("C")
    assert m.active_states == ["C"]


def test_6_1_auto_cross_false_drops_auto_target() -> None:
    rec = recorder("ABCD", returns={"CB": False})
    m = am.Machine(ABCD(A=am.State(auto=True), B=am.State(auto=True)), handlers=rec)
    m.add1("C")
    assert m.active_states == ["A", "C"]


def test_6_1_auto_self_false_of_non_auto_cancels() -> None:
    rec = recorder("ABCD", returns={"CC": False})
    m = am.Machine(ABCD(A=am.State(auto=True), B=am.State(auto=True)), handlers=rec)
    m.add1("C")
    assert m.active_states == ["C"]


def test_6_1_auto_any_enter_false_cancels() -> None:
    autos: list[bool] = []

    class H:
        def AnyEnter(self, e: am.Event) -> bool:
            autos.append(e.transition.mutation.auto)
            return not e.transition.mutation.auto

    m = am.Machine(ABCD(A=am.State(auto=True), B=am.State(auto=True)), handlers=H())
    assert m.add1("C") == EXECUTED
    assert autos == [False, True]
    assert m.active_states == ["C"]


def test_6_1_dropping_keeps_iterating_the_snapshot() -> None:
    # CA drops A; the cross loop still calls the later pair DA
    schema = ABCD(A=am.State(auto=True), B=am.State(auto=True))
    schema["X"] = am.State(remove=["A", "B"])
    m = am.Machine(schema)
    m.add(["X", "C", "D"])  # A and B are no candidates while X is active
    assert m.active_states == ["C", "D", "X"]
    rec = recorder("ABCD", returns={"CA": False})
    m.bind_handlers(rec)
    m.remove1("X")  # tick change -> auto (A B) with (C D) active
    cross = [c for c in rec.calls if c in ("CA", "CB", "DA", "DB")]
    assert cross == ["CA", "CB", "DA", "DB"]
    assert m.active_states == ["B", "C", "D"]


def test_6_1_dropping_in_enter_loop_keeps_later_enters() -> None:
    rec = recorder("ABCD", returns={"AEnter": False})
    m = am.Machine(ABCD(A=am.State(auto=True), B=am.State(auto=True)), handlers=rec)
    m.add1("C")
    auto = rec.calls[rec.calls.index("AnyState") + 1 :]
    assert auto[:2] == ["AEnter", "BEnter"]
    assert "AState" not in auto
    assert "BState" in auto
    assert m.active_states == ["B", "C"]


# ---------------------------------------------------------------------------
# §6.2 Multi


def test_6_2_implied_active_multi_no_enter_but_self_handler() -> None:
    rec = recorder("ABCD")
    m = am.Machine(ABCD(A=am.State(add=["B"]), B=am.State(multi=True)), handlers=rec)
    m.add1("B")
    rec.calls.clear()
    m.add1("A")
    assert m.tick("B") == 1
    assert "BEnter" not in rec.calls
    assert "BState" not in rec.calls
    assert "BB" in rec.calls


def test_6_2_auto_multi_not_readded_while_active() -> None:
    rec = recorder("ABCD")
    m = am.Machine(ABCD(A=am.State(auto=True, multi=True)), handlers=rec)
    m.add1("B")
    assert m.tick("A") == 1
    m.add1("C")
    assert m.tick("A") == 1
    assert rec.calls.count("AEnter") == 1


# ---------------------------------------------------------------------------
# §6.3 Auto states


def test_6_3_1_auto_after_tick_change_only() -> None:
    m = am.Machine(ABCD(A=am.State(auto=True), C=am.State(require=["D"])))
    assert m.remove1("B") == EXECUTED  # no tick change
    assert m.tick("A") == 0
    assert m.add([]) == EXECUTED
    assert m.tick("A") == 0
    assert m.add1("C") == CANCELED
    assert m.tick("A") == 0
    assert m.add1("B") == EXECUTED
    assert m.tick("A") == 1


def test_6_3_1_auto_readds_after_remove() -> None:
    m = am.Machine(ABCD(A=am.State(auto=True)))
    m.add1("B")
    assert m.tick("A") == 1
    assert m.remove1("A") == EXECUTED
    assert m.tick("A") == 3  # removed (2), then re-added by auto (3)


def test_6_3_1_multi_plus_two_triggers_auto() -> None:
    allow = {"A": False}

    class H:
        def AEnter(self, e: am.Event) -> bool:
            return allow["A"]

    m = am.Machine(ABCD(A=am.State(auto=True), B=am.State(multi=True)), handlers=H())
    m.add1("B")
    assert m.tick("A") == 0
    allow["A"] = True
    m.add1("B")  # B +2 is a tick change -> auto
    assert m.tick("B") == 3
    assert m.tick("A") == 1


@pytest.mark.parametrize("ping", ["Healthcheck", "Heartbeat"])
def test_6_3_1_health_ping_skips_auto(ping: str) -> None:
    schema = {"A": am.State(auto=True), ping: am.State(multi=True), "B": am.State()}
    m = am.Machine(schema)
    assert m.add1(ping) == EXECUTED
    assert m.tick(ping) == 1
    assert m.tick("A") == 0
    m.add1(ping)
    assert m.tick(ping) == 3
    assert m.tick("A") == 0
    m.add([ping, "B"])  # not exactly one state
    assert m.tick("A") == 1


def test_6_3_2_candidates_skip_states_removed_by_active() -> None:
    m, log = logged_machine(
        ABCD(A=am.State(auto=True), D=am.State(remove=["A"])), am.LogLevel.EVERYTHING
    )
    m.add1("D")
    assert m.active_states == ["D"]
    assert "[auto:rel:remove] A by D" in log.lines
    assert log.levels_of("[auto:rel:remove]") == [int(am.LogLevel.EVERYTHING)]


def test_6_3_3_auto_prepended_no_queue_tick_and_logged() -> None:
    rec = recorder("ABCD", actions={"CState": lambda e: e.machine.add1("D")})
    m, log = logged_machine(
        ABCD(A=am.State(auto=True), B=am.State(auto=True)), handlers=rec
    )
    assert m.queue_tick == 1
    m.add1("C")
    assert m.queue_tick == 3  # add(C) and the queued add(D); auto has no tick
    assert m.queue_tick_processed == 3
    # the auto transition runs before the mutation queued by CState
    assert rec.calls.index("AState") < rec.calls.index("DEnter")
    assert "[auto] A B" in log.lines
    assert log.levels_of("[auto] ") == [int(am.LogLevel.OPS)]
    assert m.active_states == ["A", "B", "C", "D"]


def test_6_3_4_chain_resolves_in_one_auto_transition() -> None:
    rec = recorder("ABCD")
    schema = ABCD(
        B=am.State(auto=True, require=["A"]), C=am.State(auto=True, require=["B"])
    )
    m, log = logged_machine(schema, am.LogLevel.CHANGES, handlers=rec)
    assert m.add1("A") == EXECUTED
    assert m.active_states == ["A", "B", "C"]
    assert rec.calls.count("AnyState") == 2
    assert log.with_prefix("[auto_]") == ["[auto_] +B +C"]


def test_6_3_6_reresolution_drops_states_only_rejected_implied() -> None:
    rec = recorder("ABCD", returns={"BEnter": False})
    schema = ABCD(A=am.State(auto=True), B=am.State(auto=True, add=["D"]))
    m = am.Machine(schema, handlers=rec)
    m.add1("C")
    assert m.active_states == ["A", "C"]
    assert m.tick("D") == 0
    assert "DState" not in rec.calls


def test_6_3_7_auto_state_line() -> None:
    m, log = logged_machine(ABCD(A=am.State(auto=True)), am.LogLevel.CHANGES)
    m.add1("B")
    assert log.with_prefix("[state]") == ["[state] +B"]
    assert log.with_prefix("[auto_]") == ["[auto_] +A"]
    assert log.levels_of("[auto_]") == [int(am.LogLevel.CHANGES)]


def test_6_3_8_auto_never_schedules_another_auto() -> None:
    schema = {
        "A": am.State(auto=True, remove=["X"]),
        "B": am.State(auto=True),
        "X": am.State(remove=["B"]),
        "Y": am.State(),
        "Z": am.State(),
    }
    m = am.Machine(schema)
    m.add1("X")
    # the auto after add(X) activated A, which removed X; B was no candidate
    # while X was active, and the auto transition schedules no further auto
    assert m.active_states == ["A"]
    assert m.tick("B") == 0
    m.add1("Y")
    assert m.active_states == ["A", "B", "Y"]


def test_6_3_9_caller_result_unaffected_by_auto() -> None:
    schema = {
        "A": am.State(),
        "B": am.State(),
        "C": am.State(auto=True, require=["B"]),
        "D": am.State(auto=True, require=["B"]),
    }
    m, log = logged_machine(schema)
    assert m.add1("A") == EXECUTED
    assert m.active_states == ["A"]
    assert "[cancel:reject] C D" in log.lines


def test_6_3_example_auto_requires_called() -> None:
    m, log = logged_machine({"A": am.State(), "B": am.State(auto=True, require=["A"])})
    assert m.add1("A") == EXECUTED
    assert m.active_states == ["A", "B"]
    assert "[auto] B" in log.lines


def test_6_3_example_unmet_auto_dropped_silently() -> None:
    schema = ABCD(
        A=am.State(auto=True), B=am.State(auto=True, after=["A"], require=["C"])
    )
    m, log = logged_machine(schema, am.LogLevel.DECISIONS)
    assert m.add1("D") == EXECUTED
    assert m.active_states == ["A", "D"]
    assert "[auto_] +A" in log.lines
    assert "[reject:auto] B(-C)" in log.lines
    assert log.levels_of("[reject:auto]") == [int(am.LogLevel.DECISIONS)]
    assert log.levels_of("[add:auto]") == [int(am.LogLevel.DECISIONS)]
    assert log.with_prefix("[add:auto]") == ["[add:auto] A B"]


# ---------------------------------------------------------------------------
# §5.6 async final handlers need the runtime


def test_5_6_async_final_handler_outside_async_with_is_a_handler_error() -> None:
    class H:
        async def BState(self, e: am.Event) -> None:
            return None

    m = am.Machine(ABCD(), handlers=H())
    # B's State fails to start: §8.3 rule 3 takes B (and C after it) out again
    assert m.add(["A", "B", "C"]) == CANCELED
    assert m.string_all() == "(A:1 Exception:1) [B:2 C:2 D:0]"
    assert isinstance(m.err, RuntimeError)
