"""Rules of docs/design/semantics.md §7 (queue) and §8 (errors)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import asyncmachine as am
from semantics_helpers import ABCD, logged_machine, recorder

EXECUTED, CANCELED, QUEUED = am.Result.EXECUTED, am.Result.CANCELED, am.Result.QUEUED
ADD, REMOVE, SET = am.MutationType.ADD, am.MutationType.REMOVE, am.MutationType.SET


def in_state(state: str, fn: Any, **kwargs: Any) -> am.Machine:
    """A machine (A B C D) whose `<state>State` handler runs `fn(mach)`."""
    rec = recorder(
        "ABCD",
        only=[f"{state}State"],
        actions={f"{state}State": lambda e: fn(e.machine)},
    )
    return am.Machine(kwargs.pop("schema", ABCD()), handlers=rec, **kwargs)


# ---------------------------------------------------------------------------
# §7.1 processing


def test_7_1_example_queue_tick_in_handler() -> None:
    seen: list[Any] = []

    class H:
        def BEnter(self, e: am.Event) -> bool:
            seen.append(e.machine.add1("C"))
            seen.append(e.machine.queue_tick)
            return True

    m = am.Machine(ABCD())
    m.set(["A"])
    m.bind_handlers(H())
    assert m.set(["B"]) == EXECUTED
    assert seen == [QUEUED, 4]  # 2 = set(A), 3 = set(B), 4 = add(C)
    assert m.active_states == ["B", "C"]
    assert m.queue_tick == 4
    assert m.queue_len == 0


def test_7_1_2_inline_call_processes_queue_fifo() -> None:
    rec = recorder(
        "ABCD", actions={"AState": lambda e: (e.machine.add1("C"), e.machine.add1("B"))}
    )
    m = am.Machine(ABCD(), handlers=rec)
    assert m.add1("A") == EXECUTED
    assert m.active_states == ["A", "B", "C"]
    enters = [c for c in rec.calls if c in ("AEnter", "BEnter", "CEnter")]
    assert enters == ["AEnter", "CEnter", "BEnter"]
    assert m.queue_len == 0


def test_7_1_3_queued_call_logs_queue_and_postpone() -> None:
    def fn(mach: am.Machine) -> None:
        mach.add(["B", "C"])
        mach.remove1("A")
        mach.set(["D"])

    rec = recorder("ABCD", only=["AState"], actions={"AState": lambda e: fn(e.machine)})
    m, log = logged_machine(ABCD(), handlers=rec)
    m.add1("A")
    assert "[queue:add] B C" in log.lines
    assert "[queue:remove] A" in log.lines
    assert "[queue:set] D" in log.lines
    postpone = log.with_prefix("[postpone]")
    assert postpone == [
        "[postpone] queue running (1 item)",
        "[postpone] queue running (2 items)",
        "[postpone] queue running (3 items)",
    ]
    assert set(log.levels_of("[postpone]")) == {int(am.LogLevel.OPS)}
    assert m.active_states == ["D"]


def test_7_1_4_queue_ticks_p_plus_n() -> None:
    seen: dict[str, Any] = {}

    def fn(mach: am.Machine) -> None:
        seen["p"] = mach.queue_tick_processed
        seen["t0"] = mach.queue_tick
        mach.add1("B")
        seen["t1"] = mach.queue_tick
        mach.add1("C")
        seen["t2"] = mach.queue_tick
        seen["ticks"] = [mut.queue_tick for mut in mach.queue]
        seen["p_after"] = mach.queue_tick_processed

    m = in_state("A", fn)
    m.add1("D")  # P: 1 -> 2
    m.add1("A")  # P: 2 -> 3
    assert seen["p"] == 3
    assert seen["t0"] == 3
    assert seen["t1"] == 4
    assert seen["t2"] == 5
    assert seen["ticks"] == [4, 5]
    assert seen["p_after"] == 3
    assert m.queue_tick == 5
    assert m.queue_tick_processed == 5


def test_7_1_5_mutations_queued_by_canceled_transition_run() -> None:
    rec = recorder(
        "ABCD",
        returns={"AExit": False},
        actions={"AExit": lambda e: e.machine.add(["B", "C"])},
    )
    m = am.Machine(ABCD(), handlers=rec)
    m.add1("A")
    assert m.remove1("A") == CANCELED
    assert m.active_states == ["A", "B", "C"]


# ---------------------------------------------------------------------------
# §7.2 order


def test_7_2_exception_prepended_before_queued_mutations() -> None:
    rec = recorder(
        ["A", "B", "C", "Exception"],
        only=["BState", "CEnter", "ExceptionState"],
        actions={"BState": lambda e: e.machine.add1("C")},
        raises={"BState": RuntimeError("boom")},
    )
    m = am.Machine(ABCD(), handlers=rec)
    assert m.add1("B") == CANCELED
    assert rec.calls == ["BState", "ExceptionState", "CEnter"]
    assert m.active_states == ["C", "Exception"]


def test_7_2_auto_before_queued_then_their_own_autos() -> None:
    rec = recorder("ABCD", actions={"AState": lambda e: e.machine.add1("C")})
    schema = ABCD(
        B=am.State(auto=True, require=["A"]), D=am.State(auto=True, require=["C"])
    )
    m = am.Machine(schema, handlers=rec)
    m.add1("A")
    states = [c for c in rec.calls if c.endswith("State") and c != "AnyState"]
    assert states == ["AState", "BState", "CState", "DState"]


# ---------------------------------------------------------------------------
# §7.3 de-duplication


def test_7_3_example_dedup_from_b_inside_a_state() -> None:
    seen: list[Any] = []

    def fn(mach: am.Machine) -> None:
        for _ in range(3):
            seen.append((mach.add1("B"), mach.queue_len))
        seen.append((mach.remove1("B"), mach.queue_len))
        seen.append((mach.remove1("B"), mach.queue_len))

    m = in_state("A", fn)
    m.add1("B")
    m.add1("A")
    assert seen == [
        (QUEUED, 1),
        (EXECUTED, 1),
        (EXECUTED, 1),
        (QUEUED, 2),
        (EXECUTED, 2),
    ]
    assert m.active_states == ["A"]


def test_7_3_skipped_log_line() -> None:
    def fn(mach: am.Machine) -> None:
        mach.add1("B")
        mach.add1("B")
        mach.set(["C", "D"])
        mach.set(["D", "C"])
        mach.remove1("B")
        mach.remove1("B")

    rec = recorder("ABCD", only=["AState"], actions={"AState": lambda e: fn(e.machine)})
    m, log = logged_machine(ABCD(), handlers=rec)
    m.add1("A")
    assert log.with_prefix("[queue:skipped]") == [
        "[queue:skipped] Duplicate detected for [add] B",
        "[queue:skipped] Duplicate detected for [set] D C",
        "[queue:skipped] Duplicate detected for [remove] B",
    ] or log.with_prefix("[queue:skipped]") == [
        "[queue:skipped] Duplicate detected for [add] B",
        "[queue:skipped] Duplicate detected for [set] C D",
        "[queue:skipped] Duplicate detected for [remove] B",
    ]
    assert set(log.levels_of("[queue:skipped]")) == {int(am.LogLevel.OPS)}


def test_7_3_same_set_any_order_is_duplicate() -> None:
    seen: list[Any] = []

    def fn(mach: am.Machine) -> None:
        seen.append(mach.add(["C", "D"]))
        seen.append(mach.add(["D", "C"]))
        seen.append(mach.set(["B", "C"]))
        seen.append(mach.set(["C", "B"]))
        seen.append(mach.queue_len)

    in_state("A", fn).add1("A")
    assert seen == [QUEUED, EXECUTED, QUEUED, EXECUTED, 2]


def test_7_3_not_duplicates() -> None:
    seen: list[Any] = []

    def fn(mach: am.Machine) -> None:
        seen.append(mach.add1("C", {"x": 1}))  # args
        seen.append(mach.add1("C", {"x": 1}))  # args: never de-duplicated
        seen.append(mach.add1("C"))
        seen.append(mach.add(["C", "D"]))  # other set
        seen.append(mach.set(["C"]))  # other type
        seen.append(mach.add1("B"))  # Multi
        seen.append(mach.add1("B"))  # Multi: never de-duplicated
        seen.append(mach.queue_len)

    in_state("A", fn, schema=ABCD(B=am.State(multi=True))).add1("A")
    assert seen == [QUEUED] * 7 + [7]


def test_7_3_empty_args_dict_counts_as_no_args() -> None:
    seen: list[Any] = []

    def fn(mach: am.Machine) -> None:
        seen.append(mach.add1("C", {}))
        seen.append(mach.add1("C"))
        seen.append(mach.add1("C", {}))
        seen.append(mach.queue_len)

    in_state("A", fn).add1("A")
    assert seen == [QUEUED, EXECUTED, EXECUTED, 1]


def test_7_3_quirk_add_after_remove_is_skipped() -> None:
    seen: list[Any] = []

    def fn(mach: am.Machine) -> None:
        seen.append(mach.add1("B"))
        seen.append(mach.remove1("B"))
        seen.append(mach.add1("B"))  # the queued add B matches: skipped

    m = in_state("A", fn)
    m.add1("A")
    assert seen == [QUEUED, QUEUED, EXECUTED]
    assert m.active_states == ["A"]  # B ends inactive
    assert m.tick("B") == 2


# ---------------------------------------------------------------------------
# §7.4 remove shortcut


def test_7_4_remove_of_inactive_with_empty_queue_executes() -> None:
    seen: list[Any] = []

    def fn(mach: am.Machine) -> None:
        seen.append((mach.remove(["C", "D"]), mach.queue_len))
        seen.append((mach.remove1("A"), mach.queue_len))  # A is active: queued

    in_state("A", fn).add1("A")
    assert seen == [(EXECUTED, 0), (QUEUED, 1)]


def test_7_4_no_shortcut_with_nonempty_queue_or_active_state() -> None:
    seen: list[Any] = []

    def fn(mach: am.Machine) -> None:
        seen.append(mach.remove(["B", "C"]))  # B active
        seen.append(mach.remove1("D"))  # D inactive, but the queue is not empty

    m = in_state("A", fn)
    m.add1("B")
    m.add1("A")
    assert seen == [QUEUED, QUEUED]
    assert m.active_states == ["A"]


# ---------------------------------------------------------------------------
# §7.5 queue checks


def test_7_5_queue_is_a_copy_and_is_queued() -> None:
    seen: dict[str, Any] = {}

    def fn(mach: am.Machine) -> None:
        mach.add1("B")
        mach.remove1("D")  # queue not empty -> queued
        mach.add(["C", "D"], {"x": 1})
        q = mach.queue
        seen["types"] = [mut.type for mut in q]
        seen["called"] = [list(mut.called) for mut in q]
        seen["args"] = [mut.args for mut in q]
        q.clear()
        seen["len"] = mach.queue_len
        t = mach.queue_tick
        seen["add_b"] = mach.is_queued(ADD, ["B"])
        seen["add_c"] = mach.is_queued(ADD, ["C"])
        seen["t"] = t
        seen["add_c_strict"] = mach.is_queued(ADD, ["C"], strict=True)[0]
        seen["add_dc_strict"] = mach.is_queued(ADD, ["D", "C"], strict=True)[0]
        seen["add_c_no_args"] = mach.is_queued(ADD, ["C"], without_args_only=True)[0]
        seen["add_c_min_tick"] = mach.is_queued(ADD, ["C"], min_tick=t + 1)[0]
        seen["add_c_min_tick_ok"] = mach.is_queued(ADD, ["C"], min_tick=t)[0]
        seen["add_c_first"] = mach.is_queued(ADD, ["C"], position=am.Position.FIRST)[0]
        seen["add_c_last"] = mach.is_queued(ADD, ["C"], position=am.Position.LAST)[0]
        seen["add_c_check"] = mach.is_queued(ADD, ["C"], is_check=True)[0]
        seen["remove_d"] = mach.is_queued(REMOVE, ["D"])
        seen["set_c"] = mach.is_queued(SET, ["C"])[0]
        seen["is1_b"] = mach.is1("B")
        seen["will_be1_b"] = mach.will_be1("B")
        seen["will_be_cd"] = mach.will_be(["D", "C"])
        seen["will_be_bc"] = mach.will_be(["B", "C"])
        seen["will_be_removed1_d"] = mach.will_be_removed1("D")
        seen["will_be_removed_b"] = mach.will_be_removed(["B"])

    in_state("A", fn).add1("A")
    assert seen["types"] == [ADD, REMOVE, ADD]
    assert seen["called"] == [["B"], ["D"], ["C", "D"]]
    assert seen["args"] == [{}, {}, {"x": 1}]
    assert seen["len"] == 3
    t = seen["t"]
    assert seen["add_b"] == (True, 0, t - 2)
    assert seen["add_c"] == (True, 2, t)
    assert seen["remove_d"] == (True, 1, t - 1)
    assert seen["add_c_strict"] is False
    assert seen["add_dc_strict"] is True
    assert seen["add_c_no_args"] is False
    assert seen["add_c_min_tick"] is False
    assert seen["add_c_min_tick_ok"] is True
    assert seen["add_c_first"] is False
    assert seen["add_c_last"] is True
    assert seen["add_c_check"] is False
    assert seen["set_c"] is False
    assert seen["is1_b"] is False
    assert seen["will_be1_b"] is True
    assert seen["will_be_cd"] is True
    assert seen["will_be_bc"] is False
    assert seen["will_be_removed1_d"] is True
    assert seen["will_be_removed_b"] is False


# ---------------------------------------------------------------------------
# §7.6 limits


def test_7_6_queue_limit_cancels_and_exemptions() -> None:
    seen: list[Any] = []

    def fn(mach: am.Machine) -> None:
        seen.append(mach.add1("B"))
        seen.append(mach.add1("C"))  # queue holds 2 = limit from here
        seen.append(mach.add1("D"))
        seen.append(mach.remove1("B"))
        seen.append(mach.set(["D"]))
        seen.append(mach.add_err(ValueError("full")))  # no exemption
        seen.append(mach.err)
        seen.append(mach.add(["D", "Exception"]))  # exempt: Exception inactive
        seen.append(mach.queue_len)

    m = in_state("A", fn, queue_limit=2)
    m.add1("A")
    assert seen == [
        QUEUED,
        QUEUED,
        CANCELED,
        CANCELED,
        CANCELED,
        CANCELED,
        None,
        QUEUED,
        3,
    ]
    assert m.active_states == ["A", "B", "C", "D", "Exception"]


def test_7_6_queue_limit_remove_exception_exempt_while_active() -> None:
    seen: list[Any] = []

    def fn(mach: am.Machine) -> None:
        seen.append(mach.add1("B"))
        seen.append(mach.add(["C", "Exception"]))  # Exception active: no exemption
        seen.append(mach.remove(["Exception"]))  # exempt: Exception active

    m = in_state("A", fn, queue_limit=1)
    m.add_err(ValueError("x"))
    assert m.is_err()
    m.add1("A")
    assert seen == [QUEUED, CANCELED, QUEUED]
    assert m.active_states == ["A", "B"]


def test_7_6_queue_limit_is_settable() -> None:
    seen: list[Any] = []
    m = in_state("A", lambda mach: seen.append((mach.add1("B"), mach.add1("C"))))
    m.queue_limit = 1
    m.add1("A")
    assert seen == [(QUEUED, CANCELED)]


# ---------------------------------------------------------------------------
# §8.1 the Exception state


def test_8_1_exception_is_multi_and_reentered_by_add_err() -> None:
    rec = recorder(["Exception"], only=["ExceptionEnter", "ExceptionState"])
    m = am.Machine(ABCD(), handlers=rec)
    e1, e2 = ValueError("one"), KeyError("two")
    assert m.add_err(e1) == EXECUTED
    assert m.tick("Exception") == 1
    assert m.add_err(e2) == EXECUTED
    assert m.tick("Exception") == 3
    assert rec.calls == ["ExceptionEnter", "ExceptionState"] * 2
    assert m.is_err()
    assert m.err is e2


def test_8_1_removing_exception_clears_condition_keeps_err() -> None:
    m = am.Machine(ABCD())
    e1 = ValueError("one")
    m.add_err(e1)
    m.remove1("Exception")
    assert not m.is_err()
    assert m.err is e1
    m.add_err(e1)
    m.set(["A"])
    assert not m.is_err()
    assert m.err is e1


# ---------------------------------------------------------------------------
# §8.2 add_err / add_err_state


def test_8_2_1_add_err_canceled_cases_do_nothing() -> None:
    hooked: list[Any] = []
    m = am.Machine(ABCD())
    m.on_error = lambda mach, exc: hooked.append(exc)
    assert m.add_err(None) == CANCELED  # type: ignore[arg-type]
    assert m.add_err(asyncio.CancelledError()) == CANCELED
    assert m.add_err_state("A", asyncio.CancelledError()) == CANCELED
    assert m.err is None
    assert hooked == []
    assert m.time() == (0, 0, 0, 0, 0)
    m.dispose()
    assert m.add_err(ValueError("late")) == CANCELED
    assert m.err is None
    assert hooked == []


def test_8_2_1_trio_cancellation_is_not_an_error() -> None:
    trio = pytest.importorskip("trio")
    create = getattr(trio.Cancelled, "_create", None)
    if create is None:
        pytest.skip("cannot build trio.Cancelled")
    m = am.Machine(ABCD())
    assert m.add_err(create()) == CANCELED
    assert m.err is None


def test_8_2_2_err_set_immediately_even_when_queued_and_hook_called() -> None:
    seen: list[Any] = []
    hooked: list[Any] = []
    exc = ValueError("queued")

    def fn(mach: am.Machine) -> None:
        seen.append(mach.add_err(exc))
        seen.append(mach.err)
        seen.append(mach.is_err())

    m = in_state("A", fn)
    m.on_error = lambda mach, err: hooked.append((mach, err))
    m.add1("A")
    assert seen == [QUEUED, exc, False]
    assert hooked == [(m, exc)]
    assert m.is_err()


def test_8_2_4_add_err_args_and_no_dedup_no_prepend() -> None:
    events: list[Any] = []
    rec = recorder(
        ["Exception"],
        only=["ExceptionState"],
        actions={"ExceptionState": lambda e: events.append(dict(e.args))},
    )
    e1, e2 = ValueError("e1"), ValueError("e2")
    lens: list[Any] = []

    def fn(mach: am.Machine) -> None:
        mach.add1("B")
        mach.add_err(e1, {"user": 1})
        mach.add_err(e2)
        lens.append(mach.queue_len)
        lens.append([list(mut.called) for mut in mach.queue])

    m = in_state("A", fn)
    m.bind_handlers(rec)
    m.add1("A")
    assert lens[0] == 3
    assert lens[1] == [["B"], ["Exception"], ["Exception"]]
    assert len(events) == 2
    assert events[0]["err"] is e1
    assert events[0]["user"] == 1
    assert isinstance(events[0]["err_trace"], str)
    assert events[1]["err"] is e2
    assert m.tick("Exception") == 3


def test_8_2_add_err_state_detailed_error_state() -> None:
    schema = ABCD()
    schema["ErrNetwork"] = am.State(require=["Exception"])
    m = am.Machine(schema)
    exc = ConnectionError("down")
    assert m.add_err_state("ErrNetwork", exc) == EXECUTED
    assert m.active_states == ["ErrNetwork", "Exception"]
    assert m.err is exc
    m.remove1("Exception")
    assert m.active_states == []


# ---------------------------------------------------------------------------
# §8.3 a handler raises


def test_8_3_row1_negotiation_raise_cancels() -> None:
    m, log = logged_machine(ABCD())
    m.add1("A")
    rec = recorder("ABCD", raises={"BEnter": RuntimeError("BEnter panic")})
    m.bind_handlers(rec)
    m.bind_handlers(am.ExceptionHandler())
    assert m.add1("B") == CANCELED
    assert str(m) == "(A:1 Exception:1)"
    assert "[cancel] (B A) by recover" in log.lines
    assert rec.calls[0] == "BEnter"
    assert "BState" not in rec.calls
    assert isinstance(m.err, RuntimeError)


def test_8_3_row2_state_raise_partial_rollback() -> None:
    rec = recorder("ABCD", raises={"BState": RuntimeError("BState panic")})
    m, log = logged_machine(ABCD(), handlers=[rec, am.ExceptionHandler()])
    assert m.add(["A", "B", "C"]) == CANCELED
    assert m.string_all() == "(A:1 Exception:1) [B:2 C:2 D:0]"
    assert "CState" not in rec.calls
    assert rec.calls.count("AnyState") == 1  # only the Exception transition's
    assert rec.calls.index("BState") < rec.calls.index("AnyState")
    assert any(
        line.startswith("[recover] partial final states as (") for line in log.lines
    )


def test_8_3_row3_end_raise_no_correction() -> None:
    rec = recorder("ABCD", raises={"AEnd": RuntimeError("AEnd panic")})
    m = am.Machine(ABCD())
    m.add(["A", "B"])
    m.bind_handlers(rec)
    m.bind_handlers(am.ExceptionHandler())
    assert m.set(["C", "D"]) == CANCELED
    assert m.string_all() == "(C:1 D:1 Exception:1) [A:2 B:2]"
    for name in ("BEnd", "CState", "DState"):
        assert name not in rec.calls


def test_8_3_row4_exception_state_raise_no_nesting() -> None:
    class H(am.ExceptionHandler):
        def ExceptionState(self, e: am.Event) -> None:
            raise RuntimeError("ExceptionState panic")

    m = am.Machine(ABCD(), handlers=H())
    e1 = ValueError("E1")
    assert m.add_err(e1) == CANCELED
    assert m.string_all() == "() [A:0 B:0 C:0 D:0 Exception:2]"
    assert m.err is e1
    assert m.queue_len == 0


def test_8_3_any_state_raise_no_correction() -> None:
    rec = recorder("ABCD", raises={"AnyState": RuntimeError("x")})
    m = am.Machine(ABCD())
    m.bind_handlers(rec)
    assert m.add(["A", "B"]) == CANCELED
    assert m.active_states == ["A", "B", "Exception"]


def test_8_3_5_no_auto_after_failed_transition() -> None:
    # AnyState raises: C stays applied (rule 4), the transition is CANCELED
    # and must not schedule an auto transition; A could only activate then,
    # because the prepended Exception (remove=[A]) makes A no candidate.
    class H:
        def AnyState(self, e: am.Event) -> None:
            if "C" in e.transition.called_states:
                raise RuntimeError("x")

    schema = ABCD(A=am.State(auto=True, require=["C"]))
    schema["Exception"] = am.State(multi=True, remove=["A"])
    m = am.Machine(schema, handlers=H())
    assert m.add1("C") == CANCELED
    assert m.is1("C")
    assert m.is_err()
    assert m.tick("A") == 0


def test_8_3_6_exception_args_of_a_handler_raise() -> None:
    got: list[dict[str, Any]] = []
    rec = recorder(
        ["Exception"],
        only=["ExceptionState"],
        actions={"ExceptionState": lambda e: got.append(dict(e.args))},
    )
    boom = RuntimeError("boom")
    m = am.Machine(ABCD(), handlers=[recorder("ABCD", raises={"CEnter": boom}), rec])
    m.add1("A")
    assert m.add(["C", "B"]) == CANCELED
    (args,) = got
    assert args["err"] is boom
    assert isinstance(args["err_trace"], str)
    panic = args["panic"]
    assert list(panic["called_states"]) == ["C", "B"]
    assert list(panic["states_before"]) == ["A"]
    assert isinstance(panic["transition"], am.Transition)
    assert m.err is boom


def test_8_3_7_other_objects_not_called_after_raise() -> None:
    r1 = recorder(
        "ABCD",
        only=["BEnter", "CState"],
        raises={"BEnter": RuntimeError("b"), "CState": RuntimeError("c")},
    )
    r2 = recorder("ABCD", only=["BEnter", "CState"])
    m = am.Machine(ABCD(), handlers=[r1, r2])
    assert m.add1("B") == CANCELED
    assert r2.calls == []
    m.remove1("Exception")
    assert m.add1("C") == CANCELED
    assert r2.calls == []


def test_8_3_panic_to_exception_false_propagates() -> None:
    rec = recorder(
        "ABCD",
        actions={"AState": lambda e: e.machine.add1("C")},
        raises={"BState": ValueError("raw")},
    )
    m = am.Machine(ABCD(), handlers=rec, panic_to_exception=False)
    with pytest.raises(ValueError, match="raw"):
        m.add(["A", "B"])
    assert m.queue_len == 0
    assert not m.is_err()
    assert not m.is1("C")
    assert "CEnter" not in rec.calls
    # the machine is not stuck in "processing"
    assert m.add1("D") == EXECUTED
    assert m.is1("D")


# ---------------------------------------------------------------------------
# §8.4 handler timeout


def busy(e: am.Event) -> None:
    sum(range(20_000))


def test_8_4_negotiation_timeout_cancels_and_reports() -> None:
    rec = recorder("ABCD", only=["BEnter"], actions={"BEnter": busy})
    m = am.Machine(ABCD(), handlers=rec, handler_timeout=1e-9)
    m.add1("A")
    assert m.add1("B") == CANCELED
    assert m.active_states == ["A", "Exception"]
    assert isinstance(m.err, am.HandlerTimeoutError)
    assert isinstance(m.err, TimeoutError)


def test_8_4_state_timeout_partial_rollback() -> None:
    rec = recorder("ABCD", only=["BState"], actions={"BState": busy})
    m = am.Machine(ABCD(), handlers=rec, handler_timeout=1e-9)
    assert m.add(["A", "B", "C"]) == CANCELED
    assert m.string_all() == "(A:1 Exception:1) [B:2 C:2 D:0]"
    assert isinstance(m.err, am.HandlerTimeoutError)


def test_8_4_no_timeout_by_default() -> None:
    rec = recorder("ABCD", only=["BEnter"], actions={"BEnter": busy})
    m = am.Machine(ABCD(), handlers=rec)
    assert m.handler_timeout is None
    assert m.add1("B") == EXECUTED


# ---------------------------------------------------------------------------
# §8.5 default Exception handler


def test_8_5_error_line_for_add_err() -> None:
    m, log = logged_machine(ABCD(), am.LogLevel.CHANGES, handlers=am.ExceptionHandler())
    m.add_err(ValueError("boom"))
    assert "[error] boom" in log.lines
    assert log.levels_of("[error]") == [int(am.LogLevel.CHANGES)]


class RaisingHandlers:
    def BState(self, e: am.Event) -> None:
        raise ValueError("BState panic")


def test_8_5_error_line_for_handler_raise_with_traceback() -> None:
    m, log = logged_machine(
        ABCD(), am.LogLevel.CHANGES, handlers=[RaisingHandlers(), am.ExceptionHandler()]
    )
    assert m.add(["A", "B", "C"]) == CANCELED
    assert "[error:add] A B C (BState panic)" in log.lines
    text = log.text
    after = text[text.index("[error:add] A B C (BState panic)") :]
    assert "\n" in after
    assert "RaisingHandlers.BState" in after
    assert "Traceback" in after or "ValueError" in after


def test_8_5_no_traceback_when_log_stack_trace_off() -> None:
    m, log = logged_machine(
        ABCD(),
        am.LogLevel.CHANGES,
        log_stack_trace=False,
        handlers=[RaisingHandlers(), am.ExceptionHandler()],
    )
    m.add(["A", "B", "C"])
    assert "[error:add] A B C (BState panic)" in log.lines
    assert "RaisingHandlers.BState" not in log.text


@pytest.mark.parametrize(
    ("start", "call", "states", "raising", "line"),
    [
        ([], "add", ["A", "B", "C"], "BState", "[cancel] (A B C) by recover"),
        (["A", "B"], "set", ["C", "D"], "AEnd", "[cancel] (C D) by recover"),
    ],
)
def test_8_3_final_raise_logs_cancel_by_recover(
    start: list[str], call: str, states: list[str], raising: str, line: str
) -> None:
    # §8.3 rule 5 makes a final-phase raise a CANCELED transition; §11.2 lists
    # `[cancel] (…) by recover` for §8.3. The spec spells the line out only
    # for rule 2; Go (machine.go, handlePanic) logs it after
    # recoverFinalPhase too, with the target, and TestPartialFinalPanic
    # asserts `[cancel] (A B C) by recover`.
    m, log = logged_machine(ABCD())
    if start:
        m.add(start)
    m.bind_handlers(recorder("ABCD", raises={raising: RuntimeError("x")}))
    assert getattr(m, call)(states) == CANCELED
    assert any(
        x.startswith("[recover] partial final states as (") for x in log.lines
    ) or raising.endswith("End")
    assert line in log.lines


def test_8_3_1_err_is_set_before_tracers_see_the_transition_end() -> None:
    seen: list[object] = []

    class T(am.Tracer):
        def transition_end(self, transition: am.Transition) -> None:
            if not transition.is_accepted:
                seen.append(transition.machine.err)

    boom = ValueError("boom")

    class H:
        def AState(self, e: am.Event) -> None:
            raise boom

    m = am.Machine({"A": am.State()}, handlers=H(), tracers=[T()])
    m.add1("A")
    assert seen and seen[0] is boom
    assert m.err is boom
