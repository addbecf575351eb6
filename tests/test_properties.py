"""Property tests of relation semantics on the synchronous core.

What docs/design/semantics.md §4.2 guarantees, and what it does not:

- After every accepted transition (auto ones included) every active state's
  `require` list is active: step 5 ends with `drop_unmet`, a fixpoint.
- "No active state is in the `remove` list of another active state" holds
  only when the schema has no `add` relations. Steps 3-4 exclude the removes
  of the kept states (K) from the target, but states implied in step 4 are
  never checked for their own `remove` lists (see
  `test_4_2_second_hop_add_is_not_blocked` and
  `test_4_2_blocked_implied_state_returns_via_step_4`). Without `add`
  relations the target is a subset of K, and K is conflict-free. Pair by
  pair it holds whenever the remover is named by no `add` relation: such a
  state is in the target only as a member of K. `asyncmachine.testing`
  checks that form after every transition.

`SpecModel` below is a straight transcription of §3.1, §4.1-§4.4, §2.1 and
§6.3 (no handlers, so no negotiation drops), used as an oracle by the
stateful test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import asyncmachine as am
from asyncmachine.testing import MUTATION_KINDS, InvariantChecker, check_invariants
from asyncmachine.testing.strategies import (
    mutation_args,
    schema_and_mutations,
    schemas,
)

EXECUTED, CANCELED = am.Result.EXECUTED, am.Result.CANCELED
SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

Tx = tuple[str, bool, list[str], list[str]]


def uniq(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


class SpecModel:
    """The reference transcription of semantics.md (no handlers)."""

    def __init__(self, schema: Mapping[str, am.State]) -> None:
        self.names = list(schema) + ([] if "Exception" in schema else ["Exception"])
        full = dict(schema)
        full.setdefault("Exception", am.State(multi=True))
        self.auto = {n: full[n].auto for n in self.names}
        self.multi = {n: full[n].multi for n in self.names}
        self.require = {n: list(full[n].require) for n in self.names}
        self.add = {n: list(full[n].add) for n in self.names}
        self.remove = {
            n: [x for x in full[n].remove if x != n and x not in full[n].add]
            for n in self.names
        }
        self.after = {n: [x for x in full[n].after if x != n] for n in self.names}
        self.ticks = dict.fromkeys(self.names, 0)
        self.topology = self._topology()

    # -- clocks

    def active(self) -> list[str]:
        return [n for n in self.names if self.ticks[n] % 2]

    def clock(self) -> dict[str, int]:
        return dict(self.ticks)

    # -- §4.4 sorting

    def _topology(self) -> list[str]:
        order: list[str] = []
        mark: dict[str, int] = {}
        cycle = False

        def visit(s: str) -> None:
            nonlocal cycle
            state = mark.get(s, 0)
            if state == 1:
                cycle = True
                return
            if state == 2:
                return
            mark[s] = 1
            for r in self.require[s]:
                visit(r)
            mark[s] = 2
            order.append(s)

        for s in self.names:
            if self.require[s]:
                visit(s)
        return [] if cycle else order

    def sort(self, items: list[str]) -> list[str]:
        index = {s: i for i, s in enumerate(self.topology)}
        out = sorted(items, key=lambda s: index.get(s, -1))

        def goes_first(x: str, y: str) -> bool:
            return x in self.after[y] and y not in self.after[x]

        for i in range(1, len(out)):
            j = i
            while j > 0 and goes_first(out[j], out[j - 1]):
                out[j], out[j - 1] = out[j - 1], out[j]
                j -= 1
        return out

    # -- §4.1 / §4.2 target states

    def resolve(self, mtype: str, called: list[str], before: list[str]) -> list[str]:
        if mtype == "add":
            to_set = called + before
        elif mtype == "remove":
            to_set = [s for s in before if s not in called]
        else:
            to_set = list(called)
        is_remove = mtype == "remove"

        def expand_add(items: list[str]) -> list[str]:
            out = list(items)
            for n in uniq(items):
                if n in before and not self.multi[n]:
                    continue
                for a in self.add[n]:
                    if is_remove and a in called:
                        continue
                    out.append(a)
            return out

        def drop_unmet(items: list[str]) -> list[str]:
            items = list(items)
            while True:
                kept = [n for n in items if all(r in items for r in self.require[n])]
                if len(kept) == len(items):
                    return kept
                items = kept

        l1 = drop_unmet(uniq(expand_add(to_set)))
        blocked: set[str] = set()
        kept: list[str] = []
        for n in reversed(l1):
            blockers = [b for b in l1 if n in self.remove[b] and b not in blocked]
            if blockers:
                blocked.add(n)
            else:
                kept.append(n)
        removed = {x for k in kept for x in self.remove[k]}
        l2 = uniq(s for s in expand_add(kept) if s not in removed)
        return self.sort(drop_unmet(list(reversed(l2))))

    # -- §2.1 apply

    def apply(self, called: list[str], before: list[str], target: list[str]) -> bool:
        changed = False
        for s in self.names:
            was, now = s in before, s in target
            if was != now:
                self.ticks[s] += 1
                changed = True
            elif was and now and self.multi[s] and s in called:
                self.ticks[s] += 2
                changed = True
        return changed

    # -- §3.1 mutations, §4.3 acceptance, §6.3 auto

    def call(self, kind: str, states: list[str]) -> tuple[am.Result, list[Tx]]:
        called = uniq(states)
        mtype = kind
        if kind == "toggle":
            active = self.active()
            mtype = "remove" if all(s in active for s in called) else "add"
        before = self.active()
        target = self.resolve(mtype, called, before)
        if mtype != "remove" and not all(c in target for c in called):
            return CANCELED, []
        txs: list[Tx] = [(mtype, False, called, target)]
        if not self.apply(called, before, target):
            return EXECUTED, txs
        before = self.active()
        cands = [
            s
            for s in self.names
            if self.auto[s]
            and s not in before
            and not any(s in self.remove[a] for a in before)
        ]
        if not cands:
            return EXECUTED, txs
        target = self.resolve("add", cands, before)
        if not any(c in target for c in cands):
            return EXECUTED, txs
        kept = [c for c in cands if c in target]
        target = self.resolve("add", kept, before)
        self.apply(kept, before, target)
        txs.append(("add", True, cands, target))
        return EXECUTED, txs


class TxRecorder:
    """AnyState records every completed transition."""

    def __init__(self) -> None:
        self.txs: list[Tx] = []
        self.snapshots: list[dict[str, Any]] = []

    def AnyState(self, e: am.Event) -> None:
        t = e.transition
        self.txs.append(
            (
                str(t.mutation.type),
                bool(t.mutation.auto),
                list(t.called_states),
                list(t.target_states),
            )
        )
        self.snapshots.append(
            {
                "type": str(t.mutation.type),
                "auto": bool(t.mutation.auto),
                "called": list(t.called_states),
                "clock": e.machine.clock(),
                "active": list(e.machine.active_states),
            }
        )


def norm_remove(schema: Mapping[str, am.State]) -> dict[str, set[str]]:
    return {
        n: {x for x in s.remove if x != n and x not in s.add} for n, s in schema.items()
    }


def check_removes(schema: Mapping[str, am.State], active: list[str]) -> None:
    removes = norm_remove(schema)
    for x in active:
        for y in active:
            if x in removes and y in removes[x]:
                raise AssertionError(f"{x} and {y} active, {x} removes {y}")


# ---------------------------------------------------------------------------
# invariants after every executed mutation


def run_invariants(
    schema: dict[str, am.State],
    muts: list[tuple[str, list[str], dict[str, Any] | None]],
    *,
    removes: bool,
) -> None:
    checker = InvariantChecker()
    m = am.Machine(schema, tracers=[checker])
    prev = m.time()
    for kind, states, args in muts:
        result = getattr(m, kind)(states, args)
        now = m.time()
        assert result in (EXECUTED, CANCELED)
        assert all(b >= a for a, b in zip(prev, now, strict=True)), "a tick decreased"
        assert sum(now) >= sum(prev)
        if result == CANCELED:
            assert now == prev, "a CANCELED mutation changed ticks"
        check_invariants(m)
        checker.check()
        if removes:
            check_removes(schema, m.active_states)
        prev = now


@SETTINGS
@given(schema_and_mutations())
def test_prop_requires_ticks_and_strings(
    case: tuple[dict[str, am.State], list[Any]],
) -> None:
    schema, muts = case
    run_invariants(schema, muts, removes=False)


@SETTINGS
@given(schema_and_mutations(relations=("require", "remove", "after")))
def test_prop_no_active_state_removes_another_without_add_relations(
    case: tuple[dict[str, am.State], list[Any]],
) -> None:
    schema, muts = case
    run_invariants(schema, muts, removes=True)


# ---------------------------------------------------------------------------
# per transition (auto included), observed in AnyState


@SETTINGS
@given(schema_and_mutations())
def test_prop_every_transition_follows_tick_rules(
    case: tuple[dict[str, am.State], list[Any]],
) -> None:
    schema, muts = case
    rec = TxRecorder()
    m = am.Machine(schema, handlers=rec)
    bare = am.Machine(schema)
    no_adds = not any(s.add for s in schema.values())
    last = m.clock()
    for kind, states, args in muts:
        rec.snapshots.clear()
        called = list(dict.fromkeys(states))
        mtype = kind
        if kind == "toggle":
            mtype = "remove" if m.is_(called) else "add"
        result = getattr(m, kind)(states, args)
        assert getattr(bare, kind)(states, args) == result
        if result == CANCELED:
            assert rec.snapshots == []
        else:
            own = rec.snapshots[0]
            assert own["type"] == mtype
            assert own["auto"] is False
            assert own["called"] == called
            if mtype == "remove":
                assert not set(called) & set(own["active"])
            else:
                assert set(called) <= set(own["active"])
            assert len(rec.snapshots) <= 2
            if len(rec.snapshots) == 2:
                assert rec.snapshots[1]["auto"] is True
        for snap in rec.snapshots:
            clock = snap["clock"]
            for s in m.state_names:
                delta = clock[s] - last[s]
                flipped = (clock[s] % 2) != (last[s] % 2)
                assert delta in (0, 1, 2), (s, delta)
                assert (delta == 1) == flipped, (s, delta)
                if delta == 2:
                    assert s in snap["called"]
                    assert not snap["auto"]
                    multi = schema[s].multi if s in schema else True
                    assert multi
            if no_adds:
                check_removes(schema, snap["active"])
            last = clock
        assert m.clock() == last
        # accepting handlers change nothing
        assert bare.clock() == m.clock()


# ---------------------------------------------------------------------------
# stateful: the machine against the model of semantics.md


class MachineVsModel(RuleBasedStateMachine):
    """Two machines (no handlers / an AnyState recorder) against SpecModel."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    @initialize(schema=schemas())
    def init_machines(self, schema: dict[str, am.State]) -> None:
        self.schema = schema
        self.model = SpecModel(schema)
        self.names = list(self.model.names)
        self.bare = am.Machine(schema)
        self.rec = TxRecorder()
        self.checker = InvariantChecker()
        self.recorded = am.Machine(schema, handlers=self.rec, tracers=[self.checker])

    @rule(
        kind=st.sampled_from(MUTATION_KINDS),
        idx=st.lists(st.integers(0, 63), max_size=4),
        args=mutation_args,
    )
    def mutate(self, kind: str, idx: list[int], args: dict[str, Any] | None) -> None:
        states = [self.names[i % len(self.names)] for i in idx]
        expected, txs = self.model.call(kind, states)
        self.rec.txs.clear()
        assert getattr(self.bare, kind)(states, args) == expected
        assert getattr(self.recorded, kind)(states, args) == expected
        assert self.rec.txs == txs
        assert self.bare.clock() == self.model.clock()

    @rule(
        kind=st.sampled_from(["add", "remove"]),
        idx=st.lists(st.integers(0, 63), max_size=3),
    )
    def dry_run(self, kind: str, idx: list[int]) -> None:
        states = [self.names[i % len(self.names)] for i in idx]
        before = self.bare.time()
        call = self.bare.can_add if kind == "add" else self.bare.can_remove
        assert call(states) in (EXECUTED, CANCELED)
        assert self.bare.time() == before

    @invariant()
    def same_clocks(self) -> None:
        if not self.names:
            return
        assert self.bare.clock() == self.model.clock()
        assert self.recorded.clock() == self.model.clock()
        check_invariants(self.bare)
        self.checker.check()


MachineVsModel.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_stateful_machine_vs_model = MachineVsModel.TestCase
