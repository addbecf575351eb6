"""Direct handler calls (docs/design/architecture.md, "Direct handler
calls"): without tracers, log lines or a timeout, the machine builds a
transition's `Transition` only when someone asks, and reuses one `Event`
for every handler that did not keep it. None of that may show: an Event a
handler keeps, and a Transition read at any point, look exactly as if each
had been made up front."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

import asyncmachine as am
from asyncmachine.testing import MutationStep
from asyncmachine.testing.strategies import schema_and_mutations

SCHEMA: am.Schema = {
    "A": am.State(remove=["B"]),
    "B": am.State(remove=["A"]),
    "M": am.State(multi=True),
}


class Keeper:
    """Keeps every Event it gets, with what the machine said at the time."""

    def __init__(self) -> None:
        self.kept: list[tuple[am.Event, dict[str, Any]]] = []

    def _keep(self, e: am.Event) -> None:
        mach = e.machine
        self.kept.append((e, {"name": e.name, "clock": mach.clock()}))

    def AEnter(self, e: am.Event) -> None:
        self._keep(e)

    def AState(self, e: am.Event) -> None:
        self._keep(e)

    def BEnter(self, e: am.Event) -> None:
        self._keep(e)

    def BState(self, e: am.Event) -> None:
        self._keep(e)


def test_kept_events_keep_their_own_name_args_and_transition() -> None:
    k = Keeper()
    mach = am.Machine(SCHEMA, handlers=k)
    assert mach.add1("A", {"n": 1}) == am.Result.EXECUTED
    assert mach.add1("B", {"n": 2}) == am.Result.EXECUTED
    assert mach.add1("A", {"n": 3}) == am.Result.EXECUTED
    names = [e.name for e, _ in k.kept]
    assert names == ["AEnter", "AState", "BEnter", "BState", "AEnter", "AState"]
    assert [snap["name"] for _, snap in k.kept] == names
    assert [e.args["n"] for e, _ in k.kept] == [1, 1, 2, 2, 3, 3]
    events = [e for e, _ in k.kept]
    assert len({id(e) for e in events}) == 6  # kept events are never reused
    txs = [e.transition for e in events]
    # one Transition per transition, shared by its handlers' events
    assert txs[0] is txs[1] and txs[2] is txs[3] and txs[4] is txs[5]
    assert len({id(t) for t in txs}) == 3
    first, second, third = txs[0], txs[2], txs[4]
    assert first.called_states == ["A"] and second.called_states == ["B"]
    assert third.args == {"n": 3}
    # read long after the transitions ended, the clocks are the ones then
    assert first.clock_before == {"A": 0, "B": 0, "M": 0, "Exception": 0}
    assert first.clock_after == {"A": 1, "B": 0, "M": 0, "Exception": 0}
    assert second.clock_before == first.clock_after
    assert second.clock_after == {"A": 2, "B": 1, "M": 0, "Exception": 0}
    assert third.clock_after == mach.clock()
    # the negotiation handler saw the clock before, the final one after
    assert k.kept[2][1]["clock"] == second.clock_before
    assert k.kept[3][1]["clock"] == second.clock_after
    assert all(t.is_completed and t.is_accepted for t in txs)
    assert not any(e.is_valid() for e in events)
    assert mach.transition is None


def test_an_event_not_kept_still_reads_its_own_values() -> None:
    seen: list[tuple[str, int, bool, str | None]] = []

    class H:
        def _see(self, e: am.Event) -> None:
            ctx = e.ctx
            tick = e.machine.tick(e.name[:1])
            seen.append((e.name, tick, e.is_valid(), None if ctx is None else "ctx"))

        AEnter = AState = BEnter = BState = AEnd = BEnd = _see

    mach = am.Machine(SCHEMA, handlers=H())
    mach.add1("A")
    mach.add1("B")
    assert seen == [
        ("AEnter", 0, True, None),
        ("AState", 1, True, "ctx"),
        ("BEnter", 0, True, None),
        ("AEnd", 2, True, "ctx"),
        ("BState", 1, True, "ctx"),
    ]


def test_final_handler_ctx_belongs_to_its_own_state() -> None:
    ctxs: dict[str, Any] = {}

    class H:
        def AEnd(self, e: am.Event) -> None:
            assert e.ctx is not None
            ctxs["AEnd"] = e.ctx.expired  # read now, the ctx itself not kept

        def BState(self, e: am.Event) -> None:
            assert e.ctx is not None
            ctxs["BState"] = e.ctx.expired

    mach = am.Machine(SCHEMA, handlers=H())
    mach.add1("A")
    mach.add1("B")
    # AEnd's ctx is A's new (inactive) tick, BState's is B's active tick:
    # neither has expired while its handler runs
    assert ctxs == {"AEnd": False, "BState": False}


@pytest.mark.parametrize("where", ["AEnter", "AState"])
def test_transition_read_in_a_handler_has_the_clocks_of_its_transition(
    where: str,
) -> None:
    got: dict[str, Any] = {}

    def read(e: am.Event) -> None:
        t = e.machine.transition
        assert t is e.transition
        got.update(before=dict(t.clock_before), after=dict(t.clock_after))

    h = type("H", (), {where: lambda self, e: read(e)})()
    mach = am.Machine(SCHEMA, handlers=h)
    mach.add1("M")
    mach.add(["A", "M"])
    assert got["before"] == {"A": 0, "B": 0, "M": 1, "Exception": 0}
    assert got["after"] == {"A": 1, "B": 0, "M": 3, "Exception": 0}


def test_a_canceled_transition_read_in_negotiation_is_marked() -> None:
    kept: list[am.Transition] = []

    class H:
        def AEnter(self, e: am.Event) -> bool:
            kept.append(e.transition)
            return False

    mach = am.Machine(SCHEMA, handlers=H())
    assert mach.add1("A") == am.Result.CANCELED
    (tx,) = kept
    assert not tx.is_accepted and tx.is_completed
    assert tx.clock_after == tx.clock_before == mach.clock()


def test_a_panicking_final_handler_gets_its_transition_built() -> None:
    kept: list[am.Event] = []

    class H:
        def AState(self, e: am.Event) -> None:
            kept.append(e)
            raise ValueError("AState failed")

        def ExceptionState(self, e: am.Event) -> None:
            pass

    mach = am.Machine(SCHEMA, handlers=H())
    assert mach.add1("A") == am.Result.CANCELED
    assert isinstance(mach.err, ValueError)
    assert mach.is1("Exception") and not mach.is1("A")
    (e,) = kept
    tx = e.transition
    assert tx.called_states == ["A"] and not tx.is_accepted and tx.is_completed
    assert tx.clock_before["A"] == 0
    assert mach.transition is None
    # the machine goes on, with the spare event intact
    mach.remove1("Exception")
    assert mach.add1("B") == am.Result.EXECUTED


def test_an_escaping_base_exception_leaves_no_transition_behind() -> None:
    class H:
        def AState(self, e: am.Event) -> None:
            raise KeyboardInterrupt

    mach = am.Machine(SCHEMA, handlers=H())
    with pytest.raises(KeyboardInterrupt):
        mach.add1("A")
    assert mach.transition is None
    assert mach.add1("B") == am.Result.EXECUTED


def test_a_handler_reading_the_transition_without_keeping_it() -> None:
    ids: list[str] = []

    class H:
        def AState(self, e: am.Event) -> None:
            ids.append(e.transition.id)

        def BState(self, e: am.Event) -> None:
            ids.append(e.transition.id)

    mach = am.Machine(SCHEMA, handlers=H())
    mach.add1("A")
    mach.add1("B")
    mach.add1("A")
    assert len(set(ids)) == 3  # a reused Event never shows an old transition


@pytest.mark.anyio
async def test_events_kept_by_a_running_machine_and_read_in_another_task() -> None:
    k = Keeper()
    async with am.Machine(SCHEMA, handlers=k) as mach:
        for i in range(50):
            assert mach.add1("A" if i % 2 else "B", {"i": i}) == am.Result.EXECUTED
        clock = mach.clock()
    assert len(k.kept) == 100
    for n, (e, snap) in enumerate(k.kept):
        assert e.name == snap["name"]
        assert e.args == {"i": n // 2}
        t = e.transition
        if e.name.endswith("State"):
            assert t.clock_after == snap["clock"]
        else:
            assert t.clock_before == snap["clock"]
    assert k.kept[-1][0].transition.clock_after == clock


# ---------------------------------------------------------------------------
# the direct executor against the general one, on random schemas


class Recorder:
    """Enter/Exit/State/End handlers for every state, plus AnyEnter and
    AnyState: records what each call saw, refuses some negotiations and
    reads the transition on some calls only (the lazy path must look the
    same whether or not anybody asks)."""

    def __init__(self, names: list[str]) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.calls = 0
        for name in names:
            for suffix in ("Enter", "Exit"):
                setattr(self, name + suffix, self._negotiation)
            for suffix in ("State", "End"):
                setattr(self, name + suffix, self._final)

    def _seen(self, e: am.Event) -> tuple[Any, ...]:
        self.calls += 1
        seen: tuple[Any, ...] = (e.name, dict(e.args), e.machine.clock())
        if self.calls % 3 == 0:
            t = e.transition
            seen += (
                t.called_states,
                t.clock_before,
                t.clock_after,
                t.target_states,
                t.is_accepted,
                t.mutation.type,
                t.mutation.queue_tick,
            )
        return seen

    def _negotiation(self, e: am.Event) -> bool:
        self.log.append(self._seen(e))
        return self.calls % 7 != 0

    def _final(self, e: am.Event) -> None:
        ctx = e.ctx
        self.log.append((*self._seen(e), ctx.tick if ctx is not None else None))

    def AnyEnter(self, e: am.Event) -> bool:
        return self._negotiation(e)

    def AnyState(self, e: am.Event) -> None:
        self._final(e)


@settings(max_examples=150, deadline=None)
@given(schema_and_mutations())
def test_direct_and_general_executors_agree(
    case: tuple[dict[str, am.State], list[MutationStep]],
) -> None:
    schema, muts = case
    machines = []
    for timeout in (None, 3600.0):  # a handler_timeout takes the general path
        rec = Recorder(list(schema))
        mach = am.Machine(schema, handlers=rec, handler_timeout=timeout)
        machines.append((mach, rec))
    (direct, d_rec), (general, g_rec) = machines
    for kind, states, args in muts:
        got = []
        for mach, _ in machines:
            if kind in ("add", "remove"):
                check = getattr(mach, "can_" + kind)(states, args)
            else:
                check = None
            got.append((check, getattr(mach, kind)(states, args), mach.clock()))
        assert got[0] == got[1], (kind, states)
        assert d_rec.log == g_rec.log
    assert d_rec.calls == g_rec.calls
    assert direct.machine_tick == general.machine_tick
