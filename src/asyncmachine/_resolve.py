"""Relation resolution (docs/design/semantics.md §4): from a mutation to a cached plan.

Resolution depends only on the schema, the mutation's type and called
states, and the active set, so each distinct combination is resolved once
and its `Plan` reused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._schema import CompiledSchema
from ._types import LogLevel, MutationType

__all__ = ["Plan", "resolve", "target_states"]

_ADD = MutationType.ADD
_REMOVE = MutationType.REMOVE
_SET = MutationType.SET
_OPS = LogLevel.OPS
_DECISIONS = LogLevel.DECISIONS


class Plan:
    """The outcome of relation resolution for one transition shape."""

    __slots__ = (
        "accepted",
        "after_mask",
        "apply",
        "auto_candidates",
        "before",
        "before_set",
        "called",
        "changes",
        "enters",
        "exits",
        "handlers",
        "handlers_gen",
        "is_auto",
        "logs",
        "mtype",
        "target",
        "to_set",
    )

    accepted: bool
    after_mask: int
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
        self.handlers_gen: int = -1
        self.handlers: Any = None
        self.auto_candidates: Any = None


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
    plan.after_mask = mask


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
