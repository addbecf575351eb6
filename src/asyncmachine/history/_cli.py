"""am-history: list machines and query records of a history database."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

import anyio

from .._types import StateNameError
from ._records import ConditionTime, HistoryError, MachineRecord, Query, Record

__all__ = ["main"]


def _states(text: str) -> list[str]:
    return [s for s in (p.strip() for p in text.split(",")) if s]


def _when(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {text!r} (e.g. 2025-01-31T10:00:00)"
        ) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="am-history",
        description="Query an asyncmachine history database (SqlStore).",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("machines", help="list the machines in the database")
    m.add_argument("url", help="database URL or SQLite file path")
    m.add_argument("--json", action="store_true", help="one JSON object a line")
    q = sub.add_parser("query", help="the latest records of a machine")
    q.add_argument("url", help="database URL or SQLite file path")
    q.add_argument("machine", help="machine id")
    for name in ("active", "activated", "inactive", "deactivated"):
        q.add_argument(
            f"--{name}",
            type=_states,
            default=[],
            metavar="S1,S2",
            help=f"{name} states",
        )
    q.add_argument("--since", type=_when, help="human time lower bound (UTC if naive)")
    q.add_argument("--until", type=_when, help="human time upper bound (UTC if naive)")
    q.add_argument("--min-mtime", type=int, help="machine time sum lower bound")
    q.add_argument("--max-mtime", type=int, help="machine time sum upper bound")
    q.add_argument("--limit", type=int, default=20, help="records (0: all; default 20)")
    q.add_argument("--tx", action="store_true", help="include transition records")
    q.add_argument("--json", action="store_true", help="one JSON object a line")
    return p


def _machine_json(rec: MachineRecord) -> dict[str, Any]:
    return {
        "id": rec.mach_id,
        "parent_id": rec.parent_id,
        "state_names": list(rec.state_names),
        "tracked_states": list(rec.tracked_states),
        "first_tracking": rec.first_tracking.isoformat(),
        "last_tracking": rec.last_tracking.isoformat(),
        "last_sync": rec.last_sync.isoformat(),
        "mtime": list(rec.mtime),
        "mtime_sum": rec.mtime_sum,
        "mach_tick": rec.mach_tick,
        "queue_tick": rec.queue_tick,
        "next_id": rec.next_id,
    }


def _record_json(rec: Record, mrec: MachineRecord) -> dict[str, Any]:
    t = rec.time
    out: dict[str, Any] = {
        "id": t.id,
        "mut_type": str(t.mut_type),
        "htime": t.htime.isoformat(),
        "mtime_sum": t.mtime_sum,
        "mtime_tracked": dict(zip(mrec.tracked_states, t.mtime_tracked, strict=True)),
        "mach_tick": t.mach_tick,
    }
    tx = rec.transition
    if tx is not None:
        out["transition"] = {
            "id": tx.transition_id,
            "called": [mrec.state_names[i] for i in tx.called],
            "accepted": tx.is_accepted,
            "auto": tx.is_auto,
            "queue_len": tx.queue_len,
            "queued_at": tx.queued_at,
            "executed_at": tx.executed_at,
            "args": dict(tx.arguments),
        }
    return out


def _record_line(rec: Record, mrec: MachineRecord) -> str:
    t = rec.time
    active = [
        n
        for n, tick in zip(mrec.tracked_states, t.mtime_tracked, strict=True)
        if tick & 1
    ]
    changed = [
        ("+" if tick & 1 else "-") + n
        for n, tick, d in zip(
            mrec.tracked_states, t.mtime_tracked, t.mtime_tracked_diff, strict=True
        )
        if d
    ]
    line = (
        f"#{t.id} {t.htime.isoformat()} {t.mut_type} t{t.mtime_sum} "
        f"[{' '.join(changed)}] ({' '.join(active)})"
    )
    tx = rec.transition
    if tx is not None:
        called = " ".join(mrec.state_names[i] for i in tx.called)
        flags = "" if tx.is_accepted else " rejected"
        flags += " auto" if tx.is_auto else ""
        args = " ".join(f"{k}={v}" for k, v in sorted(tx.arguments.items()))
        line += f" called: {called}{flags}" + (f" ({args})" if args else "")
    return line


async def _run(ns: argparse.Namespace, out: TextIO) -> None:
    from . import SqlStore

    store = SqlStore(ns.url, create=False)
    try:
        if ns.cmd == "machines":
            for mid in await store.machine_ids():
                rec = await store.machine_record(mid)
                assert rec is not None
                if ns.json:
                    out.write(json.dumps(_machine_json(rec)) + "\n")
                else:
                    n = await store.count(mid)
                    active = [
                        s
                        for s, tick in zip(rec.state_names, rec.mtime, strict=True)
                        if tick & 1
                    ]
                    out.write(
                        f"{mid} records={n} t{rec.mtime_sum} "
                        f"last={rec.last_sync.isoformat()} ({' '.join(active)})\n"
                    )
            return
        mrec = await store.machine_record(ns.machine)
        if mrec is None:
            raise KeyError(f"the store has no machine {ns.machine!r}")
        query = Query(
            active=ns.active,
            activated=ns.activated,
            inactive=ns.inactive,
            deactivated=ns.deactivated,
            start=ConditionTime(htime=ns.since, mtime_sum=ns.min_mtime),
            end=ConditionTime(htime=ns.until, mtime_sum=ns.max_mtime),
        )
        records = await store.find_latest(
            ns.machine, query, limit=ns.limit, with_tx=ns.tx
        )
        for record in records:
            if ns.json:
                out.write(json.dumps(_record_json(record, mrec)) + "\n")
            else:
                out.write(_record_line(record, mrec) + "\n")
    finally:
        await store.aclose()


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """The `am-history` console script; returns the exit status."""
    ns = _parser().parse_args(argv)
    try:
        anyio.run(_run, ns, out or sys.stdout)
    except (HistoryError, KeyError, StateNameError, ValueError, ImportError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        sys.stderr.write(f"am-history: error: {msg}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
