"""The history conformance suite: memory, SQLite and PostgreSQL stores alike.

Every test here runs against each store (`store` fixture) on both anyio
backends. The property test drives random schemas and mutations and checks
every query against a brute-force model built from the transitions a plain
tracer saw.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asyncmachine as am
from asyncmachine import history as h
from asyncmachine.history._records import from_micros
from asyncmachine.testing.strategies import mutation_sequences, schemas

STORES = ("memory", "sqlite", "postgresql")
_ids = itertools.count()


def new_id(prefix: str = "m") -> str:
    """A machine id no other test (or example) uses: stores are shared."""
    return f"{prefix}{next(_ids)}-{datetime.now(UTC).timestamp():.6f}"


@pytest.fixture(params=STORES)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[h.Store]:
    """Each store kind, fresh (PostgreSQL: one server for the session)."""
    kind = request.param
    s: h.Store
    if kind == "memory":
        s = h.MemoryStore()
    elif kind == "sqlite":
        s = h.SqlStore(str(tmp_path / "history.db"))
    else:
        url = request.getfixturevalue("pg_url")
        s = h.SqlStore(url)
    try:
        yield s
    finally:
        await s.aclose()


class FakeClock:
    """Time the test sets (µs); the tracer and the model read the same."""

    def __init__(self) -> None:
        self.now = 1_700_000_000_000_000

    def __call__(self) -> int:
        return self.now * 1000  # the tracer's clock is in nanoseconds

    def at(self, delta_ms: float) -> datetime:
        return from_micros(int(1_700_000_000_000_000 + delta_ms * 1000))


SCHEMA: am.Schema = {
    "A": am.State(),
    "B": am.State(remove=["A"]),
    "C": am.State(multi=True),
    "D": am.State(require=["A"]),
}


# ---------------------------------------------------------------- records


async def test_records_have_go_shapes(store: h.Store) -> None:
    clock = FakeClock()
    mach = am.Machine(SCHEMA, id=new_id())
    hist = h.track(mach, store, store_transitions=True, clock=clock)
    mach.add1("A")
    clock.now += 1000
    mach.add(["C", "D"], {"x": 1})
    clock.now += 1000
    mach.add1("B")
    with anyio.fail_after(10):
        recs = await hist.find_latest(with_tx=True)
    assert [r.time.id for r in recs] == [3, 2, 1]
    last, mid, first = recs
    assert first.time.mut_type is am.MutationType.ADD
    assert first.time.mtime_tracked == (1, 0, 0, 0, 0)
    assert first.time.mtime_tracked_diff == (1, 0, 0, 0, 0)
    assert first.time.mtime_record_diff_sum == 0
    assert mid.time.mtime_tracked == (1, 0, 1, 1, 0)
    assert mid.time.mtime_sum == 3
    assert mid.time.mtime_diff_sum == 2
    assert mid.time.mtime_record_diff_sum == 2
    # B removes A, and D needs A: both go
    assert last.time.mtime_tracked == (2, 1, 1, 2, 0)
    assert last.time.mtime_tracked_diff == (1, 1, 0, 1, 0)
    assert last.time.htime == clock.at(2)
    assert last.time.htime.tzinfo is UTC
    tx = mid.transition
    assert tx is not None
    assert tx.time_record_id == 2
    assert [mach.state_names[i] for i in tx.called] == ["C", "D"]
    assert tx.is_accepted and not tx.is_auto and not tx.is_check
    assert len(tx.transition_id) == 16
    assert tx.queued_at == 3 and tx.executed_at == 3
    rec = await store.machine_record(mach.id)
    assert rec is not None
    assert rec.mtime == tuple(mach.time())
    assert rec.next_id == 4
    assert rec.queue_tick == mach.queue_tick
    assert rec.tracked_states == tuple(mach.state_names)
    assert await store.count(mach.id) == 3
    assert mach.id in await store.machine_ids()


async def test_args_with_log_tags(store: h.Store) -> None:
    @am.args_class
    class Args:
        url: str = am.arg(log="url")
        secret: str = am.arg(default="")

    mach = am.Machine(SCHEMA, id=new_id())
    hist = h.track(mach, store, store_transitions=True)
    mach.add1("A", am.pass_args(Args(url="http://x", secret="s")))
    with anyio.fail_after(10):
        (rec,) = await hist.find_latest(limit=1, with_tx=True)
    assert rec.transition is not None
    assert rec.transition.arguments == {"url": "http://x"}


async def test_filters_as_go(store: h.Store) -> None:
    mach = am.Machine(SCHEMA, id=new_id())
    hist = h.track(mach, store, called=["A", "C"], tracked_states=["B"])
    assert hist.tracked_states == ("A", "B", "C")
    mach.add1("A")  # called A: recorded
    mach.add1("D")  # not on the list
    mach.add1("C")  # recorded
    mach.add1("B")  # not on the list
    mach.can_add(["A"])  # a check: never
    excl = am.Machine(SCHEMA, id=new_id())
    hist2 = h.track(
        excl, store, changed=["A"], changed_exclude=True, track_rejected=True
    )
    excl.add1("A")  # A changed: excluded
    excl.add1("C")  # recorded
    excl.add1("D")  # recorded
    excl.add1("B")  # A changed: excluded
    excl.add1("D")  # rejected (needs A): recorded with track_rejected
    with anyio.fail_after(10):
        got = [r.time.mtime_tracked for r in await hist.find_latest()]
        got2 = await hist2.find_latest(with_tx=True)
    assert got == [(1, 0, 1), (1, 0, 0)]
    assert [r.time.id for r in got2] == [3, 2, 1]
    assert got2[0].transition is None  # store_transitions is off
    rejected = await h.Store.find_latest(store, excl.id, limit=1)
    assert rejected[0].time.mtime_diff_sum == 0


async def test_max_records_rotates(store: h.Store) -> None:
    mach = am.Machine(SCHEMA, id=new_id())
    hist = h.track(mach, store, max_records=5)
    for _ in range(12):
        mach.toggle1("C")
    with anyio.fail_after(10):
        recs = await hist.find_latest()
    assert [r.time.id for r in recs] == [12, 11, 10, 9, 8]
    assert await store.count(mach.id) == 5


async def test_tracking_resumes_and_restores(store: h.Store) -> None:
    mid = new_id()
    mach = am.Machine({**SCHEMA, "MachineRestored": am.State()}, id=mid)
    h.track(mach, store)
    mach.add(["A", "C"])
    mach.add1("C")
    with anyio.fail_after(10):
        restored = await h.restore(
            store,
            mid,
            {**SCHEMA, "MachineRestored": am.State()},
            track_config=h.Config(),
        )
    assert restored.id == mid
    assert restored.is_(["A", "C", "MachineRestored"])
    assert restored.tick("C") == mach.tick("C")
    assert restored.machine_tick == 1
    assert restored.queue_tick == mach.queue_tick + 1
    restored.add1("D")
    with anyio.fail_after(10):
        recs = await store.find_latest(mid, limit=2)
        rec = await store.machine_record(mid)
    # the records continue where the first tracking stopped
    assert [r.time.id for r in recs] == [3, 2]
    assert recs[0].time.mach_tick == 1
    assert rec is not None and rec.mach_tick == 1
    assert rec.mtime == tuple(restored.time())


async def test_store_schema(store: h.Store) -> None:
    mach = am.Machine(SCHEMA, id=new_id())
    h.track(mach, store, store_schema=True)
    plain = am.Machine(SCHEMA, id=new_id())
    h.track(plain, store)
    with anyio.fail_after(10):
        rec = await store.machine_record(mach.id)
        rec2 = await store.machine_record(plain.id)
    assert rec is not None and rec2 is not None
    assert rec.schema == dict(mach.schema)
    assert rec2.schema is None


async def test_machine_time_windows_after_a_reset(store: h.Store) -> None:
    """A machine tracked again without a restore starts its time from 0."""
    mid = new_id()
    first = am.Machine(SCHEMA, id=mid)
    hist = h.track(first, store)
    for _ in range(4):
        first.toggle1("C")
    hist.dispose()
    again = am.Machine(SCHEMA, id=mid)
    h.track(again, store)
    for _ in range(3):
        again.toggle1("C")
    window = h.Query(
        start=h.ConditionTime(mtime_sum=1), end=h.ConditionTime(mtime_sum=3)
    )
    with anyio.fail_after(10):
        recs = await store.find_latest(mid, window)
        rec = await store.machine_record(mid)
    assert [r.time.id for r in recs] == [7, 6, 5, 3, 2, 1]
    assert rec is not None and not rec.mtime_monotonic


# ---------------------------------------------------------------- model


class Truth(am.Tracer):
    """Every transition as it happened: (µs, accepted, before, after)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.txs: list[tuple[int, dict[str, int], dict[str, int]]] = []

    def transition_end(self, transition: am.Transition) -> None:
        if transition.is_check or not transition.is_accepted:
            return
        after = transition.machine.clock()
        self.txs.append((self.clock.now, dict(transition.clock_before), after))


def model_latest(
    truth: Truth, q: h.Query, limit: int, to_us: Callable[[datetime], int]
) -> list[int]:
    out = []
    for i in range(len(truth.txs) - 1, -1, -1):
        t, before, after = truth.txs[i]
        ok = all(after[s] % 2 for s in q.active)
        ok = ok and all(after[s] % 2 == 0 for s in q.inactive)
        ok = ok and all(after[s] % 2 and after[s] != before[s] for s in q.activated)
        ok = ok and all(
            after[s] % 2 == 0 and after[s] != before[s] for s in q.deactivated
        )
        if q.start.htime is not None:
            ok = ok and t >= to_us(q.start.htime)
        if q.end.htime is not None:
            ok = ok and t <= to_us(q.end.htime)
        total = sum(after.values())
        if q.start.mtime_sum is not None:
            ok = ok and total >= q.start.mtime_sum
        if q.end.mtime_sum is not None:
            ok = ok and total <= q.end.mtime_sum
        for s, bound in zip(q.start.mtime_states, q.start.mtime, strict=True):
            ok = ok and after[s] >= bound
        for s, bound in zip(q.end.mtime_states, q.end.mtime, strict=True):
            ok = ok and after[s] <= bound
        if ok:
            out.append(i + 1)
            if limit and len(out) >= limit:
                break
    return out


def model_tick(truth: Truth, state: str, t: int) -> int:
    tick = 0  # a fresh machine
    for when, _, after in truth.txs:
        if when <= t:
            tick = after[state]
    return tick


def model_whole(truth: Truth, state: str, lo: int, hi: int, odd: int) -> bool:
    if model_tick(truth, state, lo) % 2 != odd:
        return False
    return not any(
        lo < when <= hi and after[state] != before[state]
        for when, before, after in truth.txs
    )


def model_changed(truth: Truth, state: str, lo: int, hi: int, odd: int) -> bool:
    return any(
        lo <= when <= hi and after[state] != before[state] and after[state] % 2 == odd
        for when, before, after in truth.txs
    )


@st.composite
def queries(draw: st.DrawFn, names: list[str], span_ms: int) -> tuple[h.Query, int]:
    def some() -> list[str]:
        return draw(st.lists(st.sampled_from(names), max_size=2, unique=True))

    def when() -> datetime | None:
        ms = draw(st.none() | st.integers(-2, span_ms + 2))
        return None if ms is None else FakeClock().at(ms)

    lo_sum = draw(st.none() | st.integers(0, 20))
    hi_sum = draw(st.none() | st.integers(0, 30))
    bounded = draw(st.lists(st.sampled_from(names), max_size=2, unique=True))
    lo_ticks = draw(
        st.lists(st.integers(0, 4), min_size=len(bounded), max_size=len(bounded))
    )
    q = h.Query(
        active=some(),
        inactive=some(),
        activated=some(),
        deactivated=some(),
        start=h.ConditionTime(htime=when(), mtime_sum=lo_sum),
        end=h.ConditionTime(
            htime=when(), mtime_sum=hi_sum, mtime_states=bounded, mtime=lo_ticks
        ),
    )
    return q, draw(st.integers(0, 4))


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    schema=schemas(max_states=5),
    data=st.data(),
)
async def test_queries_match_a_brute_force_model(
    anyio_backend: Any, store: h.Store, schema: dict[str, am.State], data: st.DataObject
) -> None:
    from asyncmachine.history._records import to_micros

    clock = FakeClock()
    truth = Truth(clock)
    mach = am.Machine(schema, id=new_id("p"), tracers=[truth])
    hist = h.track(
        mach,
        store,
        clock=clock,
        max_records=None if not isinstance(store, h.MemoryStore) else 10_000,
    )
    names = list(mach.state_names)
    steps = data.draw(mutation_sequences(schema, max_size=20, args=st.none()))
    for step in steps:
        clock.now += data.draw(st.integers(0, 3)) * 1000
        step.apply(mach)
    span_ms = (clock.now - 1_700_000_000_000_000) // 1000
    with anyio.fail_after(20):
        assert await store.count(mach.id) == len(truth.txs)
        for _ in range(6):
            q, limit = data.draw(queries(names, span_ms))
            got = [r.time.id for r in await hist.find_latest(q, limit=limit)]
            assert got == model_latest(truth, q, limit, to_micros), q
            state = data.draw(st.sampled_from(names))
            a = data.draw(st.integers(-2, span_ms + 2))
            b = data.draw(st.integers(a, span_ms + 3))
            lo, hi = clock.at(a), clock.at(b)
            ulo, uhi = to_micros(lo), to_micros(hi)
            assert await store.tick_at(mach.id, state, lo) == model_tick(
                truth, state, ulo
            )
            assert await hist.active_between(state, lo, hi) == model_whole(
                truth, state, ulo, uhi, 1
            )
            assert await hist.inactive_between(state, lo, hi) == model_whole(
                truth, state, ulo, uhi, 0
            )
            assert await hist.activated_between(state, lo, hi) == model_changed(
                truth, state, ulo, uhi, 1
            )
            assert await hist.deactivated_between(state, lo, hi) == model_changed(
                truth, state, ulo, uhi, 0
            )
    hist.dispose()


async def test_go_memory_bugs_are_not_ours(store: h.Store) -> None:
    """Go's FindLatest ignores state conditions; ActiveBetween is not 'whole'."""
    clock = FakeClock()
    mach = am.Machine(SCHEMA, id=new_id())
    hist = h.track(mach, store, clock=clock)
    mach.add1("A")  # t=0
    clock.now += 10_000
    mach.remove1("A")  # t=10ms
    clock.now += 10_000
    mach.add1("C")  # t=20ms: A stays inactive
    with anyio.fail_after(10):
        only_active = await hist.find_latest(h.Query(active=["A"]))
        assert [r.time.id for r in only_active] == [1]
        # A was active at 5ms but not during all of 5..15ms
        assert not await hist.active_between("A", clock.at(5), clock.at(15))
        assert await hist.active_between("A", clock.at(1), clock.at(9))
        assert await hist.inactive_between("A", clock.at(10), clock.at(30))
        assert await hist.deactivated_between("A", clock.at(5), clock.at(15))
        assert not await hist.activated_between("A", clock.at(5), clock.at(15))
    assert clock.at(10) - clock.at(0) == timedelta(milliseconds=10)
