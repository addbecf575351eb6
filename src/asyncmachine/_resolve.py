"""Relation resolution (docs/design/semantics.md §4): from a mutation to a cached plan.

Resolution depends only on the schema, the mutation's type and called
states, and the active set, so each distinct combination is resolved once
and its `Plan` reused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._schema import CompiledSchema, MaskKey
from ._types import LogLevel, MutationType, StepType

__all__ = [
    "PLAN_CACHE_BYTES",
    "Plan",
    "RawStep",
    "change_steps",
    "plan_bytes",
    "relation_steps",
    "resolve",
    "target_states",
]

RawStep = tuple[StepType, str, str, str]
"""A step as the core records it: (type, state, source, data)."""

_ADD = MutationType.ADD
_REMOVE = MutationType.REMOVE
_SET = MutationType.SET
_OPS = LogLevel.OPS
_DECISIONS = LogLevel.DECISIONS


class Plan:
    """The outcome of relation resolution for one transition shape."""

    __slots__ = (
        "accepted",
        "after_key",
        "apply",
        "auto_candidates",
        "before",
        "before_set",
        "called",
        "changes",
        "enters",
        "exits",
        "is_auto",
        "logs",
        "mtype",
        "steps",
        "target",
        "to_set",
    )

    accepted: bool
    after_key: MaskKey
    apply: tuple[tuple[str, int, bool], ...]
    before: tuple[str, ...]
    before_set: frozenset[str]
    called: tuple[str, ...]
    changes: tuple[tuple[str, int], ...]
    enters: tuple[str, ...]
    exits: tuple[str, ...]
    is_auto: bool
    logs: tuple[tuple[int, str], ...]
    mtype: MutationType
    target: tuple[str, ...]
    to_set: tuple[str, ...]

    def __init__(self) -> None:
        self.auto_candidates: Any = None
        # relation steps, built on the first request (relation_steps)
        self.steps: tuple[RawStep, ...] | None = None


PLAN_CACHE_BYTES = 64 * 1024 * 1024
"""The bound of one compiled schema's plan cache, in estimated bytes."""


def plan_bytes(plan: Plan) -> int:
    """Estimate the memory a cached `plan` holds, from its entries: a tuple
    slot is 8 bytes, a frozenset entry about 40, a `changes` pair or an
    `apply` triple about 70 with its slot (state names are shared)."""
    slots = (
        len(plan.before)
        + len(plan.to_set)
        + len(plan.target)
        + len(plan.exits)
        + len(plan.enters)
    )
    return (
        600
        + 8 * slots
        + 40 * len(plan.before_set)
        + 70 * (len(plan.changes) + len(plan.apply))
        + sum(60 + len(text) for _, text in plan.logs)
    )


def _expand_add(
    cs: CompiledSchema,
    names: Sequence[str],
    before: frozenset[str],
    remove_called: frozenset[str] | None,
) -> list[str]:
    out = list(names)
    adds = cs.adds
    multi = cs.multi
    for n in dict.fromkeys(names):
        if n in before and n not in multi:
            continue
        for a in adds[n]:
            if remove_called is not None and a in remove_called:
                continue
            out.append(a)
    return out


def _drop_unmet(
    cs: CompiledSchema,
    names: list[str],
    logs: list[tuple[int, str]],
    is_auto: bool,
) -> list[str]:
    # Rounds: each drops the names missing a requirement among the names
    # left by the previous round. After the first, only the names that
    # require a just-dropped one can change, so a round checks only those.
    require = cs.require
    required_by = cs.required_by
    present = set(names)
    dropped: list[str] = []
    check: list[str] = names
    pos: dict[str, int] | None = None
    while check:
        gone: list[str] = []
        for n in check:
            missing = [r for r in require[n] if r not in present]
            if missing:
                dropped.append(n + "(-" + " -".join(missing) + ")")
                gone.append(n)
        if not gone:
            break
        present.difference_update(gone)
        nxt = {m for g in gone for m in required_by[g] if m in present}
        if len(nxt) > 1:
            if pos is None:
                pos = {n: i for i, n in enumerate(names)}
            check = sorted(nxt, key=pos.__getitem__)
        else:
            check = list(nxt)
    if dropped:
        names = [n for n in names if n in present]
        if is_auto:
            logs.append((_DECISIONS, "[reject:auto] " + " ".join(dropped)))
        else:
            logs.append((_OPS, "[reject] " + " ".join(dropped)))
    return names


def target_states(
    cs: CompiledSchema,
    mtype: MutationType,
    called: Sequence[str],
    to_set: Sequence[str],
    before_set: frozenset[str],
    is_auto: bool,
    logs: list[tuple[int, str]],
) -> list[str]:
    """Resolve `to_set` into the sorted target states (docs/design/semantics.md §4.2)."""
    remove_called = frozenset(called) if mtype is _REMOVE else None
    l1 = _drop_unmet(
        cs,
        list(dict.fromkeys(_expand_add(cs, to_set, before_set, remove_called))),
        logs,
        is_auto,
    )
    removed_by = cs.removed_by
    pos = {n: i for i, n in enumerate(l1)}
    blocked: set[str] = set()
    kept: list[str] = []
    for n in reversed(l1):
        blockers = [b for b in removed_by[n] if b in pos and b not in blocked]
        if blockers:
            if len(blockers) > 1:
                blockers.sort(key=pos.__getitem__)
            blocked.add(n)
            level = _OPS if n in before_set else _DECISIONS
            logs.append((level, f"[rel:remove] {n} by {' '.join(blockers)}"))
        else:
            kept.append(n)
    removed: set[str] = set()
    for k in kept:
        removed.update(cs.remove[k])
    l2 = list(
        dict.fromkeys(
            s
            for s in _expand_add(cs, kept, before_set, remove_called)
            if s not in removed
        )
    )
    l2.reverse()
    return cs.sort(_drop_unmet(cs, l2, logs, is_auto))


def resolve(
    cs: CompiledSchema,
    mtype: MutationType,
    called: tuple[str, ...],
    before: tuple[str, ...],
    is_auto: bool,
    is_check: bool,
) -> Plan:
    """Build the plan of a transition (docs/design/semantics.md §3.1, §4, §4.3, §4.5)."""
    before_set = frozenset(before)
    if mtype is _ADD:
        to_set = [*called, *before]
    elif mtype is _REMOVE:
        called_set = frozenset(called)
        to_set = [s for s in before if s not in called_set]
    else:
        to_set = list(called)
    logs: list[tuple[int, str]] = []
    target = target_states(cs, mtype, called, to_set, before_set, is_auto, logs)
    target_set = frozenset(target)
    to_set_keys = set(to_set)
    implied = [s for s in target if s not in to_set_keys]
    if implied:
        logs.append((_OPS, "[implied] " + " ".join(implied)))

    accepted = True
    if mtype is not _REMOVE:
        missing = [s for s in called if s not in target_set]
        if missing:
            if is_auto:
                accepted = len(missing) < len(called)
            elif is_check and any(s in cs.multi for s in called):
                accepted = True
            else:
                accepted = False
            if not accepted:
                logs.append((_OPS, "[cancel:reject] " + " ".join(missing)))

    plan = Plan()
    plan.mtype = mtype
    plan.called = called
    plan.is_auto = is_auto
    plan.before = before
    plan.before_set = before_set
    plan.to_set = tuple(to_set)
    plan.target = tuple(target)
    plan.accepted = accepted
    plan.logs = tuple(logs)
    _exits_enters(cs, plan)
    return plan


def _exits_enters(cs: CompiledSchema, plan: Plan) -> None:
    before_set = plan.before_set
    target = plan.target
    target_set = set(target)
    called = plan.called
    multi = cs.multi
    plan.exits = tuple(cs.sort([s for s in plan.before if s not in target_set]))
    enters = []
    changes = []
    for s in target:
        if s not in before_set:
            enters.append(s)
            changes.append((s, 1))
        elif s in multi and s in called:
            enters.append(s)
            changes.append((s, 2))
    plan.enters = tuple(enters)
    plan.changes = tuple([(s, 1) for s in plan.exits] + changes)
    exits = set(plan.exits)
    plan.apply = tuple((s, d, s not in exits) for s, d in plan.changes)
    index = cs.index
    mask = 0
    for s in target:
        mask |= 1 << index[s]
    plan.after_key = cs.mask_key(mask)


def re_resolve(cs: CompiledSchema, plan: Plan, target: Sequence[str]) -> Plan:
    """Re-resolve an auto transition after negotiation dropped states
    (docs/design/semantics.md §6.3.6)."""
    target_set = set(target)
    clean = tuple(s for s in plan.called if s in target_set)
    logs: list[tuple[int, str]] = []
    to_set = [*clean, *plan.before]
    new_target = target_states(cs, _ADD, clean, to_set, plan.before_set, True, logs)
    out = Plan()
    out.mtype = _ADD
    out.called = plan.called
    out.is_auto = True
    out.before = plan.before
    out.before_set = plan.before_set
    out.to_set = tuple(to_set)
    out.target = tuple(new_target)
    out.accepted = plan.accepted
    out.logs = tuple(logs)
    _exits_enters(cs, out)
    return out


def relation_steps(cs: CompiledSchema, plan: Plan) -> tuple[RawStep, ...]:
    """The steps of relation resolution for `plan`, cached on it.

    Derived from the plan's inputs and outcome, only when a tracer asks
    (docs/debugger.md): requested states, states implied by Add, dropped by
    Remove or by an unmet Require, the After ordering of the target, and a
    rejection of the called states.
    """
    if plan.steps is not None:
        return plan.steps
    steps: list[RawStep] = [(StepType.REQUESTED, s, "", "") for s in plan.called]
    to_set = plan.to_set
    to_set_set = frozenset(to_set)
    target = plan.target
    target_set = frozenset(target)
    remove_called = frozenset(plan.called) if plan.mtype is _REMOVE else frozenset()
    # the states the Add relations of to_set reach, as resolution expands them
    rc = remove_called if plan.mtype is _REMOVE else None
    first = _expand_add(cs, to_set, plan.before_set, rc)
    cands = list(dict.fromkeys([*first, *_expand_add(cs, first, plan.before_set, rc)]))
    for s in cands:
        if s in target_set:
            if s not in to_set_set:
                src = next((t for t in cands if s in cs.adds[t]), "")
                steps.append((StepType.IMPLIED, s, src, ""))
            continue
        missing = [r for r in cs.require[s] if r not in target_set]
        if missing:
            steps.append((StepType.BLOCKED, s, missing[0], ""))
            continue
        src = next((b for b in target if s in cs.remove_sets[b]), "")
        if not src:
            src = next((b for b in cands if s in cs.remove_sets[b]), "")
        steps.append((StepType.REMOVED, s, src, ""))
    steps.extend(
        (StepType.AFTER, s, a, "")
        for s in target
        for a in cs.names
        if a in cs.after[s] and a in target_set
    )
    if not plan.accepted:
        steps.extend(
            (StepType.CANCEL, s, "", "rejected")
            for s in plan.called
            if s not in target_set
        )
    out = tuple(steps)
    plan.steps = out
    return out


def change_steps(plan: Plan) -> tuple[RawStep, ...]:
    """The SET and REMOVE steps of an applied `plan` (exits first)."""
    return tuple(
        [(StepType.REMOVE, s, "", "") for s in plan.exits]
        + [(StepType.SET, s, "", "") for s in plan.enters]
    )
