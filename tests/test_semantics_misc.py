"""Rules of docs/design/semantics.md §10 (dispose, dry runs, set/toggle, eval,
breakpoints), §11 (logging and string formats) and the contract's bad-input
rules (§12.12, §12.16)."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

import asyncmachine as am
from semantics_helpers import ABCD, MACH_ID, LogSink, logged_machine, recorder

EXECUTED, CANCELED, QUEUED = am.Result.EXECUTED, am.Result.CANCELED, am.Result.QUEUED
OPS, CHANGES = int(am.LogLevel.OPS), int(am.LogLevel.CHANGES)

# ---------------------------------------------------------------------------
# §10.1 dispose


def test_10_1_1_dispose_idempotent() -> None:
    calls: list[str] = []
    m = am.Machine(ABCD())
    m.on_dispose(lambda: calls.append("x"))
    assert not m.disposed
    m.dispose()
    assert m.disposed
    m.dispose()
    assert m.disposed
    assert calls == ["x"]


def test_on_dispose_unregister() -> None:
    calls: list[str] = []
    m = am.Machine(ABCD())
    unregister = m.on_dispose(lambda: calls.append("dropped"))
    m.on_dispose(lambda: calls.append("kept"))
    unregister()
    unregister()  # twice is harmless
    m.dispose()
    assert calls == ["kept"]
    # on a disposed machine: called at once, unregistering is a no-op
    m.on_dispose(lambda: calls.append("late"))()
    assert calls == ["kept", "late"]


def test_10_1_2_graceful_start_removal() -> None:
    schema = {"Start": am.State(), "A": am.State()}
    rec = recorder(["Start", "A"], only=["StartExit", "StartEnd"])
    m = am.Machine(schema, handlers=rec)
    m.add1("Start")
    m.dispose()
    assert rec.calls == ["StartExit", "StartEnd"]
    assert m.disposed


def test_10_1_3_mutations_canceled_and_no_handlers_after_dispose() -> None:
    rec = recorder("ABCD")
    m = am.Machine(ABCD(), handlers=rec)
    m.dispose()
    assert m.add1("A") == CANCELED
    assert m.remove1("A") == CANCELED
    assert m.set(["A"]) == CANCELED
    assert m.toggle1("A") == CANCELED
    assert m.can_add(["A"]) == CANCELED
    assert m.add_err(ValueError("x")) == CANCELED
    assert rec.calls == []


def test_10_1_4_dispose_from_negotiation_handler() -> None:
    def enter(e: am.Event) -> None:
        e.machine.add1("B")
        e.machine.dispose()

    rec = recorder("ABCD", actions={"AEnter": enter})
    m = am.Machine(ABCD(), handlers=rec)
    assert m.add1("A") == CANCELED
    assert m.disposed  # completed before the outermost call returned
    assert rec.calls == ["AEnter"]  # rest of the transition skipped, B never ran


def test_10_1_4_dispose_from_final_handler() -> None:
    rec = recorder("ABCD", actions={"AState": lambda e: e.machine.dispose()})
    m = am.Machine(ABCD(), handlers=rec)
    assert m.add(["A", "B"]) == CANCELED
    assert m.disposed
    assert "BState" not in rec.calls
    assert "AnyState" not in rec.calls


def test_10_1_5_completion_clears_queue_expires_ctxs_runs_callbacks() -> None:
    order: list[str] = []
    seen: dict[str, Any] = {}

    def fn(e: am.Event) -> None:
        mach = e.machine
        mach.add1("B")
        mach.add1("C")
        seen["ctx"] = mach.new_state_ctx("A")
        mach.dispose()
        seen["disposed_in_handler"] = mach.disposed

    m = am.Machine(
        ABCD(), handlers=recorder("A", only=["AState"], actions={"AState": fn})
    )
    m.on_dispose(lambda: order.append("first"))
    m.on_dispose(lambda: order.append("second"))
    m.add1("A")
    assert seen["disposed_in_handler"] is False  # completes in the queue loop
    assert m.disposed
    assert order == ["first", "second"]
    assert m.queue_len == 0
    assert seen["ctx"].expired


def test_10_1_6_neutral_values_after_dispose() -> None:
    m = am.Machine(ABCD(), id="gone")
    m.add(["A", "B"])
    m.dispose()
    assert m.is_(["A"]) is False
    assert m.is1("A") is False
    assert m.not_(["C"]) is False
    assert m.not1("C") is False
    assert m.any(["A"]) is False
    assert m.any1("A") is False
    assert m.has(["A"]) is False
    assert m.has1("A") is False
    assert m.tick("A") == 0
    assert m.time() == ()
    assert m.clock() == {}
    assert m.active_states == []
    assert str(m) == ""
    assert m.string_all() == ""
    assert m.inspect() == ""
    assert m.queue_len == 0
    assert m.new_state_ctx("A").expired
    assert m.eval(lambda: None, source="t") is False
    assert m.state_names == ["A", "B", "C", "D", "Exception"]
    assert m.id == "gone"
    # reads after dispose do not check names
    assert m.is1("Ghost") is False
    assert m.tick("Ghost") == 0


# ---------------------------------------------------------------------------
# §10.2 dry runs


def dry_run_machine() -> tuple[am.Machine, Any]:
    schema = {
        "A": am.State(),
        "B": am.State(require=["C"]),
        "C": am.State(),
        "D": am.State(multi=True),
    }
    rec = recorder("ABCD", returns={"CEnter": False})
    return am.Machine(schema, handlers=rec), rec


def test_10_2_example_can_add_b_rejected_no_handlers() -> None:
    m, rec = dry_run_machine()
    assert m.can_add(["B"]) == CANCELED
    assert rec.calls == []


def test_10_2_example_can_add_a_runs_negotiation_only() -> None:
    m, rec = dry_run_machine()
    before_tick = m.queue_tick
    assert m.can_add(["A"]) == EXECUTED
    assert rec.calls == ["AEnter", "AnyEnter"]
    assert not m.is1("A")
    assert m.time() == (0, 0, 0, 0, 0)
    assert m.queue_tick == before_tick


def test_10_2_example_can_add_c_canceled_by_handler() -> None:
    m, rec = dry_run_machine()
    assert m.can_add(["C"]) == CANCELED
    assert rec.calls == ["CEnter"]


def test_10_2_example_multi_quirk() -> None:
    m, rec = dry_run_machine()
    assert m.can_add(["B", "D"]) == EXECUTED
    assert "AnyEnter" in rec.calls
    assert m.time() == (0, 0, 0, 0, 0)
    # the real add is canceled: B is dropped
    assert m.add(["B", "D"]) == CANCELED


def test_10_2_handlers_see_is_check_and_can_remove() -> None:
    flags: list[tuple[bool, bool]] = []
    rec = recorder(
        "ABCD",
        actions={
            "AExit": lambda e: flags.append(
                (e.transition.is_check, e.transition.mutation.is_check)
            )
        },
    )
    m = am.Machine(ABCD(), handlers=rec)
    m.add1("A")
    rec.calls.clear()
    assert m.can_remove(["A"]) == EXECUTED
    assert m.is1("A")
    assert rec.calls == ["AExit", "AnyEnter"]
    assert m.remove1("A") == EXECUTED
    assert flags == [(True, True), (False, False)]


def test_10_2_raise_in_dry_run_adds_exception() -> None:
    rec = recorder("ABCD", raises={"AEnter": RuntimeError("dry")})
    m = am.Machine(ABCD(), handlers=rec)
    assert m.can_add(["A"]) == CANCELED
    assert m.is_err()
    assert not m.is1("A")


def test_10_2_dry_run_inside_queue_queued() -> None:
    seen: list[am.Result] = []
    rec = recorder(
        "A",
        only=["AState"],
        actions={"AState": lambda e: seen.append(e.machine.can_add(["B"]))},
    )
    m = am.Machine(ABCD(), handlers=rec)
    m.add1("A")
    assert seen == [QUEUED]
    assert not m.is1("B")


# ---------------------------------------------------------------------------
# §10.3 set and toggle


def test_10_3_set_has_no_exception_exemption() -> None:
    m = am.Machine(ABCD())
    m.add_err(ValueError("x"))
    assert m.set(["A"]) == EXECUTED
    assert m.active_states == ["A"]


def test_10_3_toggle_decided_from_state_before_queued_mutations() -> None:
    seen: list[am.Result] = []

    def fn(e: am.Event) -> None:
        mach = e.machine
        seen.append(mach.remove1("B"))  # queued: B is active
        seen.append(mach.toggle1("B"))  # B still active now -> a remove

    m = am.Machine(
        ABCD(), handlers=recorder("A", only=["AState"], actions={"AState": fn})
    )
    m.add1("B")
    m.add1("A")
    assert seen[0] == QUEUED
    assert m.active_states == ["A"]  # an add decided at run time would re-add B


# ---------------------------------------------------------------------------
# §10.4 eval


def test_10_4_eval_runs_at_once_without_clock_or_queue_tick() -> None:
    ran: list[int] = []
    m = am.Machine(ABCD())
    m.add1("A")
    time_before, qt = m.time(), m.queue_tick
    assert m.eval(lambda: ran.append(1), source="test") is True
    assert ran == [1]
    assert m.time() == time_before
    assert m.queue_tick == qt


def test_10_4_eval_mutation_is_queued_then_processed() -> None:
    seen: list[am.Result] = []
    m = am.Machine(ABCD())
    assert m.eval(lambda: seen.append(m.add1("A")), source="test") is True
    assert seen == [QUEUED]
    assert m.is1("A")


def test_10_4_eval_disposed_or_expired_ctx_returns_false() -> None:
    ran: list[int] = []
    m = am.Machine(ABCD())
    ctx = m.new_state_ctx("A")
    m.add1("A")
    assert ctx.expired
    assert m.eval(lambda: ran.append(1), source="t", ctx=ctx) is False
    m.dispose()
    assert m.eval(lambda: ran.append(2), source="t") is False
    assert ran == []


def test_10_4_eval_from_handler_adds_nested_eval_error() -> None:
    ran: list[int] = []
    seen: list[bool] = []
    rec = recorder(
        "A",
        only=["AState"],
        actions={
            "AState": lambda e: seen.append(
                e.machine.eval(lambda: ran.append(1), source="handler")
            )
        },
    )
    m = am.Machine(ABCD(), handlers=rec)
    m.add1("A")
    assert seen == [False]
    assert ran == []
    assert m.is_err()
    assert isinstance(m.err, am.NestedEvalError)
    assert isinstance(m.err, RuntimeError)
    assert "eval called directly in handler" in str(m.err)


def test_10_4_eval_inside_eval_returns_false_without_exception() -> None:
    ran: list[str] = []
    inner: list[bool] = []
    m = am.Machine(ABCD())

    def outer() -> None:
        ran.append("outer")
        inner.append(m.eval(lambda: ran.append("inner"), source="inner"))

    assert m.eval(outer, source="outer") is True
    assert ran == ["outer"]
    assert inner == [False]
    assert not m.is_err()


def test_10_4_eval_exception_propagates() -> None:
    m = am.Machine(ABCD())

    def boom() -> None:
        raise KeyError("eval boom")

    with pytest.raises(KeyError, match="eval boom"):
        m.eval(boom, source="t")
    assert not m.is_err()
    assert m.add1("A") == EXECUTED  # the machine keeps working


# ---------------------------------------------------------------------------
# §10.5 breakpoints


class BpMachine(am.Machine):
    hits: list[tuple[list[str], list[str]]]

    def breakpoint(self, added: list[str], removed: list[str]) -> None:
        self.hits.append((list(added), list(removed)))


def bp_machine(**kwargs: Any) -> BpMachine:
    m = BpMachine(ABCD(), **kwargs)
    m.hits = []
    return m


def test_10_5_breakpoint_on_add() -> None:
    m = bp_machine()
    m.add_breakpoint(["A", "B"], [])
    m.add(["B", "A"])  # other order: no match
    m.add(["A"])
    assert m.hits == []
    m.add(["A", "B"])
    assert m.hits == [(["A", "B"], [])]
    m.remove(["A", "B"])  # removed does not equal bp.removed ([])
    assert len(m.hits) == 1


def test_10_5_breakpoint_on_remove() -> None:
    m = bp_machine()
    m.add_breakpoint([], ["C"])
    m.add1("C")
    assert m.hits == []
    m.remove1("C")
    assert m.hits == [([], ["C"])]
    m.remove1("C")  # not strict: matches although C is inactive
    assert len(m.hits) == 2


def test_10_5_breakpoint_both_lists() -> None:
    m = bp_machine()
    m.add_breakpoint(["A"], ["B"])
    m.add1("A")
    m.remove1("B")
    assert m.hits == [(["A"], []), ([], ["B"])]


def test_10_5_strict_breakpoints() -> None:
    m = bp_machine()
    m.add_breakpoint(["A"], [], strict=True)
    m.add_breakpoint([], ["B"], strict=True)
    m.add1("A")
    m.add1("A")  # A already active: strict skips
    m.remove1("B")  # B already inactive: strict skips
    m.add1("B")
    m.remove1("B")
    assert m.hits == [(["A"], []), ([], ["B"])]


def test_10_5_breakpoint_not_for_set_and_checked_at_call_time() -> None:
    m = bp_machine()
    m.add_breakpoint(["B"], [])
    m.set(["B"])
    assert m.hits == []
    counts: list[int] = []

    def fn(e: am.Event) -> None:
        e.machine.add1("B")  # queued; the breakpoint is checked now
        counts.append(len(m.hits))

    m.bind_handlers(recorder("A", only=["AState"], actions={"AState": fn}))
    m.remove1("B")
    m.add1("A")
    assert counts == [1]
    assert len(m.hits) == 1


def test_10_5_breakpoint_log_line() -> None:
    sink = LogSink()
    m = BpMachine(ABCD(), id=MACH_ID, logger=sink, log_level=am.LogLevel.CHANGES)
    m.hits = []
    m.add_breakpoint(["A"], [])
    m.add1("A")
    assert "[breakpoint] Machine.breakpoint" in sink.lines
    assert sink.levels_of("[breakpoint]") == [CHANGES]


# ---------------------------------------------------------------------------
# §11.1 levels and sinks


def test_11_1_log_levels_enum() -> None:
    expected = [
        (0, "NOTHING", "nothing"),
        (1, "EXTERNAL", "external"),
        (2, "CHANGES", "changes"),
        (3, "OPS", "ops"),
        (4, "DECISIONS", "decisions"),
        (5, "EVERYTHING", "everything"),
    ]
    for value, name, text in expected:
        level = am.LogLevel(value)
        assert level.name == name
        assert str(level) == text


def test_11_1_level_filtering() -> None:
    for level, want_exter, want_state, want_add in [
        (am.LogLevel.NOTHING, False, False, False),
        (am.LogLevel.EXTERNAL, True, False, False),
        (am.LogLevel.CHANGES, True, True, False),
        (am.LogLevel.OPS, True, True, True),
    ]:
        m, log = logged_machine(ABCD(), level)
        m.log("hello")
        m.add1("A")
        assert ("[exter] hello" in log.lines) is want_exter, level
        assert ("[state] +A" in log.lines) is want_state, level
        assert ("[add] A" in log.lines) is want_add, level
        for lvl, _text in log.records:
            assert int(lvl) <= int(level)


def test_11_1_id_prefix_and_log_id_off() -> None:
    sink = LogSink()
    m = am.Machine(ABCD(), id="abcdefgh", logger=sink, log_level=am.LogLevel.EXTERNAL)
    m.log("x")
    assert sink.records[-1][1] == "[abcde] [exter] x"
    m.log_id = False
    m.log("y")
    assert sink.records[-1][1] == "[exter] y"


def test_11_1_mach_log_formats_and_flattens() -> None:
    m, log = logged_machine(ABCD(), am.LogLevel.EXTERNAL)
    m.log("a %s\nb %d", "x", 5)
    assert log.lines[-1] == "[exter] a x b 5"
    assert log.records[-1][0] == am.LogLevel.EXTERNAL


def test_11_1_default_sink_is_stdlib_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="asyncmachine")
    m = am.Machine(ABCD(), id="stdlib1", log_level=am.LogLevel.EXTERNAL)
    m.log("to stdlib")
    records = [r for r in caplog.records if "to stdlib" in r.getMessage()]
    assert len(records) == 1
    rec = records[0]
    assert rec.name == "asyncmachine"
    assert rec.levelno == logging.INFO
    assert rec.machine_id == "stdlib1"  # type: ignore[attr-defined]
    assert "[exter] to stdlib" in rec.getMessage()


def test_11_1_am_log_env_sets_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AM_LOG", "3")
    sink = LogSink()
    m = am.Machine(ABCD(), id=MACH_ID, logger=sink)
    assert m.log_level == am.LogLevel.OPS
    m.add1("A")
    assert "[add] A" in sink.lines


def test_11_1_env_changes_between_machines_are_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Machines read AM_LOG and AM_DEBUG as they are at their creation."""
    monkeypatch.setenv("AM_LOG", "3")
    assert am.Machine({"A": am.State()}).log_level == am.LogLevel.OPS
    monkeypatch.setenv("AM_LOG", "1")
    assert am.Machine({"A": am.State()}).log_level == am.LogLevel.EXTERNAL
    monkeypatch.setenv("AM_LOG", "9")  # not a level: ignored
    assert am.Machine({"A": am.State()}).log_level == am.LogLevel.NOTHING
    monkeypatch.delenv("AM_LOG")
    assert am.Machine({"A": am.State()}).log_level == am.LogLevel.NOTHING
    monkeypatch.setenv("AM_DEBUG", "1")
    assert not am.Machine({"A": am.State()}).panic_to_exception
    monkeypatch.setenv("AM_DEBUG", "0")
    assert am.Machine({"A": am.State()}).panic_to_exception
    monkeypatch.delenv("AM_DEBUG")
    assert am.Machine({"A": am.State()}).panic_to_exception


def test_1_schema_dict_changed_after_a_machine_compiles_anew() -> None:
    """One schema dict, changed between creations: each machine gets the
    schema as it is (compiled schemas are shared by content, not by dict)."""
    schema: am.Schema = {"A": am.State()}
    m1 = am.Machine(schema)
    schema["B"] = am.State(remove=["A"])
    m2 = am.Machine(schema)
    schema["A"] = am.State(require=["B"])
    m3 = am.Machine(schema)
    assert m1.state_names == ["A", am.EXCEPTION]
    assert m2.state_names == ["A", "B", am.EXCEPTION]
    assert m3.add1("A") == am.Result.CANCELED  # requires the inactive B
    assert m2.add1("A") == am.Result.EXECUTED
    del schema["B"]
    schema["A"] = am.State()
    assert am.Machine(schema).state_names == ["A", am.EXCEPTION]


# ---------------------------------------------------------------------------
# §11.2 line formats


def test_11_2_mutation_lines() -> None:
    m, log = logged_machine(ABCD())
    m.add(["A", "B"])
    m.remove1("A")
    m.set(["C"])
    assert log.with_prefix("[add]") == ["[add] A B"]
    assert log.with_prefix("[remove]") == ["[remove] A"]
    assert log.with_prefix("[set]") == ["[set] C"]
    assert set(
        log.levels_of("[add]") + log.levels_of("[remove]") + log.levels_of("[set]")
    ) == {OPS}


def test_11_2_implied_line() -> None:
    m, log = logged_machine(ABCD(A=am.State(add=["C", "D"])))
    m.add1("A")
    assert log.with_prefix("[implied]") == ["[implied] C D"]
    assert log.levels_of("[implied]") == [OPS]


def test_11_2_handler_line() -> None:
    m, log = logged_machine(ABCD(), handlers=recorder("A", only=["AState"]))
    m.add1("A")
    assert "[handler:0] AState" in log.lines
    assert log.levels_of("[handler:0]") == [OPS]


def test_11_2_state_line_order() -> None:
    m, log = logged_machine(ABCD(), am.LogLevel.CHANGES)
    m.add(["C", "D"])
    log.clear()
    m.set(["B", "A"])  # target [B, A]: + in target order, - in state order
    assert log.with_prefix("[state]") == ["[state] +B +A -C -D"]
    assert log.levels_of("[state]") == [CHANGES]


def test_11_2_state_line_multi_reactivation() -> None:
    m, log = logged_machine(ABCD(B=am.State(multi=True)), am.LogLevel.CHANGES)
    m.add1("B")
    m.add1("B")
    assert log.with_prefix("[state]") == ["[state] +B", "[state] +B"]


def test_11_2_state_line_unchanged_at_everything() -> None:
    m, log = logged_machine(ABCD(), am.LogLevel.EVERYTHING)
    m.add1("A")
    log.clear()
    m.add1("C")
    assert log.with_prefix("[state]") == ["[state] +C A"]
    m2, log2 = logged_machine(ABCD(), am.LogLevel.OPS)
    m2.add1("A")
    m2.add1("C")
    assert log2.with_prefix("[state]")[-1] == "[state] +C"


def test_11_2_everything_logs_attempted_handlers() -> None:
    m, log = logged_machine(
        ABCD(), am.LogLevel.EVERYTHING, handlers=recorder("A", only=["AState"])
    )
    m.add1("B")
    handle = [line for line in log.lines if line.startswith("[handle:")]
    assert any(line.endswith(" BEnter") for line in handle)
    assert any(line.endswith(" BState") for line in handle)


def test_11_2_prepend_line_for_exception() -> None:
    rec = recorder("ABCD", raises={"BEnter": RuntimeError("x")})
    m, log = logged_machine(ABCD(), handlers=rec)
    m.add1("B")
    assert any(line.startswith("[prepend:add] Exception") for line in log.lines)
    assert log.levels_of("[prepend:add]") == [OPS]


def test_11_2_ctx_and_handlers_lines() -> None:
    m, log = logged_machine(ABCD())
    m.new_state_ctx("A")
    assert "[ctx:new] A" in log.lines
    bid = m.bind_handlers(recorder("A", only=["AState"]))
    assert f"[handlers] bind 0:{bid}" in log.lines
    assert bid.startswith("anon-")
    m.detach_handlers(bid)
    assert any(line.startswith("[handlers] detach") for line in log.lines)


def test_11_2_default_args_mapper() -> None:
    m, log = logged_machine(ABCD())
    args = {"name": "x" * 30, "id": "i1", "other": "hidden", "url": "u"}
    m.add1("A", args)
    suffix = " (id=i1 name=" + "x" * 17 + "... url=u)"
    assert "[add] A" + suffix in log.lines
    assert "[state] +A" + suffix in log.lines


def test_11_2_args_on_queue_lines() -> None:
    rec = recorder(
        "A",
        only=["AState"],
        actions={"AState": lambda e: e.machine.add1("B", {"id": "q"})},
    )
    m, log = logged_machine(ABCD(), handlers=rec)
    m.add1("A")
    assert "[queue:add] B (id=q)" in log.lines


def test_11_2_custom_args_mapper() -> None:
    m, log = logged_machine(ABCD())
    m.log_args_mapper = am.new_log_args_mapper(5, ["arg"])
    m.add1("A", {"arg": "foofoofoo", "name": "not shown"})
    assert "[add] A (arg=fo...)" in log.lines
    m.log_args_mapper = am.new_log_args_mapper(3, ["arg"])
    m.add1("B", {"arg": "foofoofoo"})
    assert "[add] B (arg=foo)" in log.lines
    m.log_args_mapper = am.new_log_args_mapper(5, ["arg"])
    m.add1("C", {"arg": "short"})
    assert "[add] C (arg=short)" in log.lines
    m.log_args_mapper = None
    m.add1("D", {"name": "x"})
    assert "[add] D" in log.lines


# ---------------------------------------------------------------------------
# §11.3 string forms


def test_11_3_str_and_string_all() -> None:
    m = am.Machine(ABCD(B=am.State(multi=True)))
    assert str(m) == "()"
    assert m.string_all() == "() [A:0 B:0 C:0 D:0 Exception:0]"
    m.add(["A", "B"])
    m.add1("B")
    m.add1("D")
    m.remove1("D")
    assert str(m) == "(A:1 B:3)"
    assert m.string_all() == "(A:1 B:3) [C:0 D:2 Exception:0]"
    m.add(["C", "D", "Exception"])
    assert m.string_all() == "(A:1 B:3 C:1 D:3 Exception:1) []"


def test_11_3_inspect_example() -> None:
    schema = {
        "A": am.State(auto=True, require=["C"]),
        "B": am.State(multi=True, add=["C"]),
        "C": am.State(after=["D"]),
        "D": am.State(add=["C", "B"]),
    }
    m = am.Machine(schema)
    m.add(["C", "A"])
    assert m.active_states == ["A", "C"]
    expected = textwrap.dedent(
        """\
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
    )
    assert m.inspect() == expected


def test_11_3_inspect_subset_order_and_line_order() -> None:
    schema = ABCD(
        A=am.State(
            auto=True, multi=True, add=["B"], require=["C"], remove=["D"], after=["C"]
        )
    )
    m = am.Machine(schema)
    assert m.inspect(["C", "A"]) == (
        "0 C\n"
        "    |Tick     0\n"
        "0 A\n"
        "    |Tick     0\n"
        "    |Auto     true\n"
        "    |Multi    true\n"
        "    |Add      B\n"
        "    |Require  C\n"
        "    |Remove   D\n"
        "    |After    C\n"
    )


def test_11_3_enum_string_names() -> None:
    assert str(am.MutationType.ADD) == "add"
    assert str(am.MutationType.REMOVE) == "remove"
    assert str(am.MutationType.SET) == "set"
    assert str(am.Result.EXECUTED) == "executed"
    assert str(am.Result.CANCELED) == "canceled"
    assert str(am.Result.QUEUED) == "queued"
    assert (int(EXECUTED), int(CANCELED), int(QUEUED)) == (0, 1, 2)


# ---------------------------------------------------------------------------
# bad input (§12.12, §12.16)

NAME_CALLS: dict[str, Callable[[am.Machine], object]] = {
    "add": lambda m: m.add(["A", "Ghost"]),
    "add1": lambda m: m.add1("Ghost"),
    "remove": lambda m: m.remove(["A", "Ghost"]),
    "remove1": lambda m: m.remove1("Ghost"),
    "set": lambda m: m.set(["Ghost"]),
    "toggle": lambda m: m.toggle(["A", "Ghost"]),
    "toggle1": lambda m: m.toggle1("Ghost"),
    "can_add": lambda m: m.can_add(["Ghost"]),
    "can_remove": lambda m: m.can_remove(["Ghost"]),
    "add_err_state": lambda m: m.add_err_state("Ghost", ValueError("x")),
    "is_": lambda m: m.is_(["A", "Ghost"]),
    "is1": lambda m: m.is1("Ghost"),
    "not_": lambda m: m.not_(["Ghost"]),
    "not1": lambda m: m.not1("Ghost"),
    "any": lambda m: m.any(["A"], ["Ghost"]),
    "any1": lambda m: m.any1("A", "Ghost"),
    "tick": lambda m: m.tick("Ghost"),
    "time": lambda m: m.time(["Ghost"]),
    "clock": lambda m: m.clock(["Ghost"]),
    "is_time": lambda m: m.is_time((0,), ["Ghost"]),
    "new_state_ctx": lambda m: m.new_state_ctx("Ghost"),
    "add_breakpoint_added": lambda m: m.add_breakpoint(["Ghost"], []),
    "add_breakpoint_removed": lambda m: m.add_breakpoint([], ["Ghost"]),
}


@pytest.mark.parametrize("call", list(NAME_CALLS), ids=list(NAME_CALLS))
def test_bad_input_unknown_name_raises_and_changes_nothing(call: str) -> None:
    rec = recorder("ABCD")
    m, log = logged_machine(ABCD(), handlers=rec)
    m.add1("A")
    rec.calls.clear()
    log.clear()
    before = (m.time(), m.queue_len, m.queue_tick, m.err)
    with pytest.raises(am.StateNameError) as info:
        NAME_CALLS[call](m)
    assert isinstance(info.value, ValueError)
    assert "Ghost" in str(info.value)
    assert (m.time(), m.queue_len, m.queue_tick, m.err) == before
    assert rec.calls == []
    assert not any(
        line.startswith(("[add]", "[remove]", "[set]", "[queue", "[ctx"))
        for line in log.lines
    )


def test_bad_input_unknown_name_in_add_activates_nothing() -> None:
    m = am.Machine(ABCD())
    with pytest.raises(am.StateNameError):
        m.add(["A", "B", "Ghost"])
    assert m.active_states == []


def test_bad_input_has_returns_false_for_unknown() -> None:
    m = am.Machine(ABCD())
    assert m.has1("A") is True
    assert m.has(["A", "Exception"]) is True
    assert m.has1("Ghost") is False
    assert m.has(["A", "Ghost"]) is False


STR_CALLS: dict[str, Callable[[am.Machine], object]] = {
    "add": lambda m: m.add("AB"),
    "remove": lambda m: m.remove("AB"),
    "set": lambda m: m.set("AB"),
    "toggle": lambda m: m.toggle("AB"),
    "can_add": lambda m: m.can_add("AB"),
    "can_remove": lambda m: m.can_remove("AB"),
    "is_": lambda m: m.is_("AB"),
    "not_": lambda m: m.not_("CD"),
}


@pytest.mark.parametrize("call", list(STR_CALLS), ids=list(STR_CALLS))
def test_bad_input_bare_string_for_names_raises_type_error(call: str) -> None:
    m = am.Machine(ABCD())
    m.add1("A")
    before = m.time()
    with pytest.raises(TypeError):
        STR_CALLS[call](m)
    assert m.time() == before


ARGS_CALLS: dict[str, Callable[[am.Machine], object]] = {
    "add_list": lambda m: m.add(["B"], [("k", 1)]),  # type: ignore[arg-type]
    "add1_str": lambda m: m.add1("B", "k=1"),  # type: ignore[arg-type]
    "remove1": lambda m: m.remove1("A", 5),  # type: ignore[arg-type]
    "set": lambda m: m.set(["B"], ("k",)),  # type: ignore[arg-type]
    "toggle1": lambda m: m.toggle1("B", "x"),  # type: ignore[arg-type]
    "can_add": lambda m: m.can_add(["B"], "x"),  # type: ignore[arg-type]
    "add_err": lambda m: m.add_err(ValueError("x"), "x"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("call", list(ARGS_CALLS), ids=list(ARGS_CALLS))
def test_bad_input_args_not_dict_raises_type_error(call: str) -> None:
    m = am.Machine(ABCD())
    m.add1("A")
    before = m.time()
    with pytest.raises(TypeError):
        ARGS_CALLS[call](m)
    assert m.time() == before
    assert m.err is None


def test_bad_input_non_string_name_raises() -> None:
    m = am.Machine(ABCD())
    with pytest.raises((TypeError, am.StateNameError)):
        m.add([1])  # type: ignore[list-item]
    assert m.time() == (0, 0, 0, 0, 0)


def test_bad_input_bad_schemas_raise_schema_error() -> None:
    with pytest.raises(am.SchemaError):
        am.Machine({"A": am.State(add=["Nope"])})
    with pytest.raises(am.SchemaError):
        am.Machine({"A": am.State(require=["B"], remove=["B"]), "B": am.State()})
    assert issubclass(am.SchemaError, ValueError)
    assert issubclass(am.StateNameError, ValueError)


def test_11_2_ctx_match_line() -> None:
    m, log = logged_machine(ABCD())
    m.new_state_ctx("A")
    m.add1("A")
    assert "[ctx:match] A" in log.lines
    assert log.levels_of("[ctx:match]") == [OPS]


# ---------------------------------------------------------------------------
# tracers detaching inside hooks


def test_tracer_detaching_itself_in_a_hook_does_not_skip_the_next() -> None:
    seen: list[str] = []

    class Quitter(am.Tracer):
        def transition_end(self, transition: am.Transition) -> None:
            seen.append("quitter")
            transition.machine.detach_tracer(self)

    class Watcher(am.Tracer):
        def transition_end(self, transition: am.Transition) -> None:
            seen.append("watcher")

    m = am.Machine(ABCD())
    quitter, watcher = Quitter(), Watcher()
    m.bind_tracer(quitter)
    m.bind_tracer(watcher)
    m.add1("A")
    assert seen == ["quitter", "watcher"]
    assert m.tracers == (watcher,)
    m.add1("B")
    assert seen == ["quitter", "watcher", "watcher"]
    with pytest.raises(ValueError, match="not bound"):
        m.detach_tracer(quitter)


def test_log_lines_of_a_transition_see_that_transition() -> None:
    """A sink reading `mach.transition` gets the transition being logged,
    also for the second transition of one queue run."""
    seen: list[tuple[str, str | None]] = []

    class H:
        def AState(self, e: am.Event) -> None:
            e.machine.add1("B")  # queued: runs in the same queue run

        def BState(self, e: am.Event) -> None:
            pass

    machines: list[am.Machine] = []

    def sink(_level: am.LogLevel, text: str) -> None:
        tx = machines[0].transition if machines else None
        seen.append((text, tx.called_states[0] if tx is not None else None))

    m = am.Machine(ABCD(), handlers=H(), logger=sink, log_level=am.LogLevel.OPS)
    machines.append(m)
    m.add1("A")
    lines = {text.split("] ", 1)[1]: called for text, called in seen}
    assert lines["[add] A"] == "A"
    assert lines["[add] B"] == "B"


def test_tracers_of_queue_hooks_only_build_no_transitions() -> None:
    """A tracer that overrides only queue/mutation hooks still sees them,
    but doesn't make transitions build Transition objects."""
    seen: list[str] = []

    class QueueOnly(am.Tracer):
        def mutation_queued(self, machine: am.Machine, mutation: am.Mutation) -> None:
            seen.append("queued")

        def queue_end(self, machine: am.Machine) -> None:
            seen.append("end")

    class Ends(am.Tracer):
        def transition_end(self, transition: am.Transition) -> None:
            seen.append("tx")

    m = am.Machine(ABCD())
    q = QueueOnly()
    m.bind_tracer(q)
    assert m._tx_tracers == ()
    m.add1("A")
    assert seen == ["queued", "end"]
    # an instance attribute counts as an override too
    q2 = am.Tracer()
    q2.transition_end = lambda tx: seen.append("inst")  # type: ignore[method-assign]
    ends = Ends()
    m.bind_tracer(ends)
    m.bind_tracer(q2)
    assert m._tx_tracers == (ends, q2)
    m.add1("B")
    assert seen == ["queued", "end", "queued", "tx", "inst", "end"]
    m.detach_tracer(ends)
    m.detach_tracer(q2)
    assert m._tx_tracers == () and m.tracers == (q,)


def test_queue_hooks_only_where_overridden() -> None:
    """Only tracers overriding mutation_queued or queue_end make a mutation
    go through the queue's hooks; each of the two alone is still called."""
    seen: list[str] = []

    class EndOnly(am.Tracer):
        def queue_end(self, machine: am.Machine) -> None:
            seen.append("end")

    class Ends(am.Tracer):
        def transition_end(self, transition: am.Transition) -> None:
            seen.append(f"tx:{transition.mutation.queue_tick}")

    m = am.Machine(ABCD())
    ends = Ends()
    m.bind_tracer(ends)
    assert m._q_tracers == ()
    m.add1("A")
    assert seen == ["tx:2"]  # the queue tick, as a queued Mutation had it
    e = EndOnly()
    m.bind_tracer(e)
    assert m._q_tracers == (e,)
    m.add1("B")
    assert seen == ["tx:2", "tx:3", "end"]
