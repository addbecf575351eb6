"""Rules of docs/design/semantics.md §1 (machine init) and §2 (clocks, state contexts).

Synchronous core only: no event loop, no sleeps.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

import asyncmachine as am
from semantics_helpers import ABCD, recorder

HEX16 = re.compile(r"[0-9a-f]{16}")

# ---------------------------------------------------------------------------
# §1.1 schema normalisation


def test_1_1_1_remove_drops_the_state_itself() -> None:
    m = am.Machine({"A": am.State(remove=["A"]), "B": am.State()})
    # without normalisation A would block itself (§4.2 step 2)
    assert m.add1("A") == am.Result.EXECUTED
    assert m.active_states == ["A"]


def test_1_1_1_remove_drops_names_also_in_add() -> None:
    m = am.Machine({"A": am.State(add=["B"], remove=["B"]), "B": am.State()})
    assert m.add1("A") == am.Result.EXECUTED
    assert m.active_states == ["A", "B"]


def test_1_1_1_inspect_shows_normalised_remove() -> None:
    m = am.Machine(
        {
            "A": am.State(add=["B"], remove=["A", "B", "C"]),
            "B": am.State(),
            "C": am.State(),
        }
    )
    text = m.inspect(["A"])
    assert "|Remove   C\n" in text
    assert "|Add      B\n" in text


def test_1_1_2_after_drops_the_state_itself() -> None:
    m = am.Machine({"A": am.State(after=["A", "B"]), "B": am.State()})
    text = m.inspect(["A"])
    assert "|After    B\n" in text
    assert m.add1("A") == am.Result.EXECUTED


def test_1_1_normalisation_works_on_a_copy() -> None:
    a = am.State(add=["B"], remove=["A", "B"], after=["A"])
    schema = {"A": a, "B": am.State()}
    am.Machine(schema)
    assert schema["A"] is a
    assert list(a.remove) == ["A", "B"]
    assert list(a.after) == ["A"]
    assert list(schema) == ["A", "B"]  # no Exception added to the user's dict


@pytest.mark.parametrize("relation", ["require", "add", "remove", "after"])
def test_1_1_3_unknown_relation_target_raises_schema_error(relation: str) -> None:
    kwargs: dict[str, Any] = {relation: ["Ghost"]}
    schema = {"Alpha": am.State(**kwargs), "Beta": am.State()}
    with pytest.raises(am.SchemaError) as info:
        am.Machine(schema)
    assert isinstance(info.value, ValueError)
    msg = str(info.value)
    assert "Alpha" in msg
    assert "Ghost" in msg
    assert relation in msg.lower()


def test_1_1_4_require_remove_conflict_raises_schema_error() -> None:
    schema = {"Alpha": am.State(require=["Beta"], remove=["Beta"]), "Beta": am.State()}
    with pytest.raises(am.SchemaError) as info:
        am.Machine(schema)
    assert isinstance(info.value, ValueError)
    assert "Alpha" in str(info.value)
    assert "Beta" in str(info.value)


def test_1_1_4_conflict_is_checked_after_step_1() -> None:
    # B is dropped from remove because it is also in add: no conflict left
    schema = {"A": am.State(require=["B"], remove=["B"], add=["B"]), "B": am.State()}
    m = am.Machine(schema)
    assert m.add(["A", "B"]) == am.Result.EXECUTED
    assert m.active_states == ["A", "B"]


# ---------------------------------------------------------------------------
# §1.2 Exception, §1.3 state order


def test_1_2_exception_appended_last_and_multi() -> None:
    m = am.Machine({"B": am.State(), "A": am.State()})
    assert m.state_names == ["B", "A", "Exception"]
    assert am.EXCEPTION == "Exception"
    assert m.add1("Exception") == am.Result.EXECUTED
    assert m.tick("Exception") == 1
    assert m.add1("Exception") == am.Result.EXECUTED
    assert m.tick("Exception") == 3  # Multi: +2 (C3)


def test_1_2_user_defined_exception_kept_as_written() -> None:
    m = am.Machine({"Exception": am.State(), "A": am.State()})
    assert m.state_names == ["Exception", "A"]
    m.add1("Exception")
    m.add1("Exception")
    assert m.tick("Exception") == 1  # not Multi: no +2


def test_1_3_state_order_is_schema_key_order() -> None:
    m = am.Machine({"Zed": am.State(), "Alpha": am.State(), "Mid": am.State()})
    assert m.state_names == ["Zed", "Alpha", "Mid", "Exception"]
    m.add(["Mid", "Alpha"])
    m.add(["Zed"])
    assert m.active_states == ["Zed", "Alpha", "Mid"]
    assert str(m) == "(Zed:1 Alpha:1 Mid:1)"
    assert m.time() == (1, 1, 1, 0)
    assert list(m.clock()) == ["Zed", "Alpha", "Mid", "Exception"]
    assert m.string_all() == "(Zed:1 Alpha:1 Mid:1) [Exception:0]"


# ---------------------------------------------------------------------------
# §1.4 initial values, §1.5 ids, §1.7 handlers=


def test_1_4_initial_values() -> None:
    m = am.Machine(ABCD())
    assert m.time() == (0, 0, 0, 0, 0)
    assert m.active_states == []
    assert m.queue_len == 0
    assert m.queue_tick == 1  # P + N = 1 + 0
    assert m.queue_tick_processed == 1
    assert m.err is None
    assert not m.is_err()
    assert not m.disposed


def test_1_5_given_id_and_random_id() -> None:
    assert am.Machine(ABCD(), id="my-machine").id == "my-machine"
    a, b = am.Machine(ABCD()), am.Machine(ABCD())
    assert HEX16.fullmatch(a.id)
    assert HEX16.fullmatch(b.id)
    assert a.id != b.id


def test_1_5_parent_id() -> None:
    parent = am.Machine(ABCD(), id="parent")
    child = am.Machine(ABCD(), parent=parent)
    assert child.parent_id == "parent"
    orphan = am.Machine(ABCD())
    assert orphan.parent_id in ("", None)
    assert am.Machine(ABCD()).parent_id == orphan.parent_id  # stable choice


def test_1_5_tags_deduplicated() -> None:
    m = am.Machine(ABCD(), tags=["x", "y", "x", "z", "y"])
    assert list(m.tags) == ["x", "y", "z"]


def test_1_5_transition_id_is_16_hex() -> None:
    seen: list[str] = []
    rec = recorder("ABCD", actions={"AEnter": lambda e: seen.append(e.transition.id)})
    m = am.Machine(ABCD(), handlers=rec)
    m.add1("A")
    m.remove1("A")
    m.add1("A")
    assert len(seen) == 2
    assert all(HEX16.fullmatch(t) for t in seen)
    assert seen[0] != seen[1]


def test_1_5_binding_ids_are_anon() -> None:
    m = am.Machine(ABCD())
    b1 = m.bind_handlers(recorder("A", only=["AEnter"]))
    b2 = m.bind_handlers(recorder("A", only=["AEnter"]))
    assert b1.startswith("anon-")
    assert b2.startswith("anon-")
    assert b1 != b2


def test_1_7_handlers_kwarg_binds_like_bind_handlers() -> None:
    rec = recorder("ABCD")
    m = am.Machine(ABCD(), handlers=rec)
    m.add1("A")
    assert rec.calls == ["AEnter", "AnyEnter", "AState", "AnyState"]


def test_1_7_handlers_kwarg_takes_a_sequence_in_order() -> None:
    order: list[str] = []
    r1 = recorder("A", only=["AState"], actions={"AState": lambda e: order.append("1")})
    r2 = recorder("A", only=["AState"], actions={"AState": lambda e: order.append("2")})
    m = am.Machine(ABCD(), handlers=[r1, r2])
    m.add1("A")
    assert order == ["1", "2"]


def test_1_example_init_strings() -> None:
    m = am.Machine({"Foo": am.State(), "Bar": am.State(require=["Foo"])})
    assert m.state_names == ["Foo", "Bar", "Exception"]
    assert m.string_all() == "() [Foo:0 Bar:0 Exception:0]"
    assert str(m) == "()"


# ---------------------------------------------------------------------------
# §2.1 tick rules


def test_2_1_c1_inactive_to_active_plus_one() -> None:
    m = am.Machine(ABCD())
    m.add1("A")
    assert m.tick("A") == 1


def test_2_1_c2_active_to_inactive_plus_one() -> None:
    m = am.Machine(ABCD())
    m.add1("A")
    m.remove1("A")
    assert m.tick("A") == 2


def test_2_1_c3_called_active_multi_plus_two() -> None:
    m = am.Machine(ABCD(B=am.State(multi=True)))
    m.add1("B")
    m.add1("B")
    assert m.tick("B") == 3
    m.set(["B"])
    assert m.tick("B") == 5


def test_2_1_c4_kept_active_no_change() -> None:
    m = am.Machine(ABCD())
    m.add1("A")
    m.add1("A")  # non-multi active state called again
    m.add1("B")  # A kept active
    assert m.tick("A") == 1


def test_2_1_c4_implied_active_multi_no_change() -> None:
    m = am.Machine(ABCD(A=am.State(add=["B"]), B=am.State(multi=True)))
    m.add1("B")
    m.add1("A")  # B implied while active: not called -> no +2
    assert m.time(["A", "B"]) == (1, 1)


def test_2_1_c4_removing_inactive_no_change() -> None:
    m = am.Machine(ABCD())
    assert m.remove1("A") == am.Result.EXECUTED
    assert m.tick("A") == 0


def test_2_1_c5_canceled_changes_nothing() -> None:
    m = am.Machine(ABCD(C=am.State(require=["D"])))
    m.add1("A")
    before = m.time()
    assert m.add(["B", "C"]) == am.Result.CANCELED
    assert m.time() == before


def test_2_1_c5_dry_run_changes_nothing() -> None:
    m = am.Machine(ABCD(B=am.State(multi=True)))
    m.add1("B")
    before = m.time()
    assert m.can_add(["A", "B"]) == am.Result.EXECUTED
    assert m.can_remove(["B"]) == am.Result.EXECUTED
    assert m.time() == before


def test_2_1_negotiation_sees_before_final_sees_result() -> None:
    seen: dict[str, object] = {}

    def enter(e: am.Event) -> None:
        mach = e.machine
        seen["enter"] = (mach.tick("A"), mach.tick("B"), mach.is1("B"), mach.time())

    def any_enter(e: am.Event) -> None:
        seen["any_enter"] = e.machine.time()

    def a_state(e: am.Event) -> None:
        mach = e.machine
        # every target state is applied before the first final handler runs
        seen["a_state"] = (mach.tick("A"), mach.tick("B"), mach.is_(["A", "B"]))

    rec = recorder(
        "ABCD", actions={"BEnter": enter, "AnyEnter": any_enter, "AState": a_state}
    )
    m = am.Machine(ABCD(), handlers=rec)
    m.add1("C")
    m.add(["A", "B"])
    assert seen["enter"] == (0, 0, False, (0, 0, 1, 0, 0))
    assert seen["any_enter"] == (0, 0, 1, 0, 0)
    assert seen["a_state"] == (1, 1, True)


# ---------------------------------------------------------------------------
# §2.2 time and clock


def test_2_2_time_and_clock() -> None:
    m = am.Machine(ABCD())
    m.add(["A", "C"])
    m.remove1("C")
    assert m.time() == (1, 0, 2, 0, 0)
    assert m.time(["C", "A"]) == (2, 1)
    assert isinstance(m.time(), tuple)
    assert m.clock() == {"A": 1, "B": 0, "C": 2, "D": 0, "Exception": 0}
    assert m.clock(["C", "A"]) == {"C": 2, "A": 1}
    assert sum(m.time()) == 3


def test_2_2_tick_unknown_raises() -> None:
    m = am.Machine(ABCD())
    with pytest.raises(am.StateNameError, match="Nope"):
        m.tick("Nope")


def test_2_2_tick_after_dispose_is_zero() -> None:
    m = am.Machine(ABCD())
    m.add1("A")
    m.dispose()
    assert m.tick("A") == 0


def test_2_2_is_time() -> None:
    m = am.Machine(ABCD())
    m.add(["A", "B"])
    m.remove1("B")
    assert m.is_time((1, 2, 0, 0, 0))
    assert not m.is_time((1, 1, 0, 0, 0))
    assert m.is_time((2, 1), ["B", "A"])
    assert not m.is_time((1, 2), ["B", "A"])
    # only the indexes of t are compared
    assert m.is_time((1, 2))
    assert m.is_time((2,), ["B", "A"])


def test_2_2_is_clock() -> None:
    m = am.Machine(ABCD())
    m.add(["A", "B"])
    m.remove1("B")
    assert m.is_clock({"A": 1, "B": 2})
    assert m.is_clock({"B": 2})
    assert m.is_clock(m.clock())
    assert not m.is_clock({"A": 1, "B": 1})


def test_2_2_worked_example_tick_table() -> None:
    m = am.Machine(ABCD(B=am.State(multi=True)))
    rows = [
        (m.add, ["A", "B"], "(A:1 B:1)", (1, 1, 0, 0)),
        (m.add, ["A", "B"], "(A:1 B:3)", (1, 3, 0, 0)),
        (m.add, ["A", "B", "C"], "(A:1 B:5 C:1)", (1, 5, 1, 0)),
        (m.set, ["D"], "(D:1)", (2, 6, 2, 1)),
        (m.add, ["D", "C"], "(C:3 D:1)", (2, 6, 3, 1)),
        (m.remove, ["B", "C"], "(D:1)", (2, 6, 4, 1)),
        (m.add, ["A", "B"], "(A:3 B:7 D:1)", (3, 7, 4, 1)),
        (m.add, ["C"], "(A:3 B:7 C:5 D:1)", (3, 7, 5, 1)),
    ]
    for call, states, text, ticks in rows:
        assert call(states) == am.Result.EXECUTED
        assert str(m) == text, (call.__name__, states)
        assert m.time(["A", "B", "C", "D"]) == ticks, (call.__name__, states)
    assert sum(m.time()) == 16


# ---------------------------------------------------------------------------
# §2.3 state contexts (the synchronous `expired` flag)


def test_2_3_1_unknown_name_raises() -> None:
    m = am.Machine(ABCD())
    with pytest.raises(am.StateNameError, match="Nope"):
        m.new_state_ctx("Nope")


def test_2_3_1_disposed_machine_gives_expired_ctx() -> None:
    m = am.Machine(ABCD())
    m.dispose()
    assert m.new_state_ctx("A").expired


def test_2_3_2_one_live_ctx_per_state() -> None:
    m = am.Machine(ABCD())
    m.add1("A")
    c1 = m.new_state_ctx("A")
    assert m.new_state_ctx("A") is c1
    assert m.new_state_ctx("B") is not c1
    m.remove1("A")
    assert c1.expired
    c2 = m.new_state_ctx("A")
    assert c2 is not c1
    assert not c2.expired


def test_2_3_3_expires_on_activation_deactivation_and_multi_readd() -> None:
    m = am.Machine(ABCD(B=am.State(multi=True)))
    c = m.new_state_ctx("A")
    m.add1("A")
    assert c.expired
    c = m.new_state_ctx("A")
    m.remove1("A")
    assert c.expired
    m.add1("B")
    c = m.new_state_ctx("B")
    m.add1("B")  # C3: +2
    assert c.expired


def test_2_3_3_expires_before_first_final_handler() -> None:
    m = am.Machine(ABCD())
    m.add1("B")
    ctx_b = m.new_state_ctx("B")
    ctx_c = m.new_state_ctx("C")
    seen: list[tuple[bool, bool]] = []
    rec = recorder(
        "ABCD",
        actions={
            "AnyEnter": lambda e: seen.append((ctx_b.expired, ctx_c.expired)),
            "BEnd": lambda e: seen.append((ctx_b.expired, ctx_c.expired)),
        },
    )
    m.bind_handlers(rec)
    m.set(["C"])
    assert seen == [(False, False), (True, True)]


def test_2_3_3_expires_on_dispose() -> None:
    m = am.Machine(ABCD())
    c = m.new_state_ctx("A")
    m.dispose()
    assert c.expired


def test_2_3_4_not_expired_by_cancel_dry_run_or_staying_active() -> None:
    m = am.Machine(
        ABCD(A=am.State(add=["B"]), B=am.State(multi=True), C=am.State(require=["D"]))
    )
    m.add1("B")
    m.add1("D")
    ctx_b = m.new_state_ctx("B")
    ctx_d = m.new_state_ctx("D")
    assert m.add(["C", "D"]) == am.Result.EXECUTED  # D stays active
    assert m.remove1("C") == am.Result.EXECUTED
    m.add1("A")  # B implied while active: no tick change
    assert m.can_add(["B"]) == am.Result.EXECUTED  # dry run
    assert m.can_remove(["D"]) == am.Result.EXECUTED
    rec = recorder("ABCD", returns={"BExit": False})
    m.bind_handlers(rec)
    assert m.remove1("B") == am.Result.CANCELED
    assert m.tick("B") == 1
    assert not ctx_b.expired
    assert not ctx_d.expired


def test_2_3_5_inactive_state_ctx_not_expired_until_activation() -> None:
    m = am.Machine(ABCD())
    c = m.new_state_ctx("B")
    assert not c.expired
    m.add1("A")
    assert not c.expired
    m.add1("B")
    assert c.expired


def test_2_3_6_ctx_created_in_negotiation_expires_at_apply() -> None:
    ctxs: dict[str, object] = {}
    rec = recorder(
        "ABCD",
        actions={
            "AEnter": lambda e: ctxs.__setitem__("enter", e.machine.new_state_ctx("A")),
            "AState": lambda e: ctxs.__setitem__("state", e.machine.new_state_ctx("A")),
        },
    )
    m = am.Machine(ABCD(), handlers=rec)
    m.add1("A")
    enter_ctx, state_ctx = ctxs["enter"], ctxs["state"]
    assert enter_ctx.expired  # type: ignore[attr-defined]
    assert not state_ctx.expired  # type: ignore[attr-defined]
    m.add1("B")
    assert not state_ctx.expired  # type: ignore[attr-defined]
    m.remove1("A")
    assert state_ctx.expired  # type: ignore[attr-defined]


def test_2_3_7_multi_ctx_expires_on_every_called_readd() -> None:
    m = am.Machine(ABCD(B=am.State(multi=True)))
    m.add1("B")
    for _ in range(3):
        c = m.new_state_ctx("B")
        assert not c.expired
        m.add1("B")
        assert c.expired


def test_2_3_8_final_phase_recovery_expires_intermediate_ctx() -> None:
    ctxs: dict[str, object] = {}
    rec = recorder(
        "ABCD",
        actions={
            "AState": lambda e: ctxs.__setitem__("B", e.machine.new_state_ctx("B"))
        },
        raises={"BState": RuntimeError("BState panic")},
    )
    m = am.Machine(ABCD(), handlers=rec)
    assert m.add(["A", "B"]) == am.Result.CANCELED
    assert m.tick("B") == 2  # applied (1), then taken out again (2)
    assert ctxs["B"].expired  # type: ignore[attr-defined]


def test_2_3_example() -> None:
    m = am.Machine(ABCD())
    m.add1("A")
    ctx = m.new_state_ctx("A")
    assert not ctx.expired
    m.add1("A")
    assert not ctx.expired
    m.remove1("A")
    assert ctx.expired
    assert m.tick("A") == 2
    c2 = m.new_state_ctx("B")
    assert not c2.expired
    m.add1("B")
    assert c2.expired


def test_1_7_first_binding_readds_active_exception() -> None:
    got: list[Any] = []
    rec = recorder(
        ["Exception"],
        only=["ExceptionState"],
        actions={"ExceptionState": lambda e: got.append(e.args.get("err"))},
    )
    m = am.Machine(ABCD())
    err = ValueError("startup")
    m.add_err(err)
    assert m.tick("Exception") == 1
    m.bind_handlers(rec)
    assert got == [err]
    assert m.tick("Exception") == 3
    m.bind_handlers(recorder("A", only=["AState"]))  # not the first binding
    assert m.tick("Exception") == 3
    assert got == [err]
