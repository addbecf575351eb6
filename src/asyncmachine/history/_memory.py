"""MemoryStore: records in this process, bounded per machine."""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING

from ._base import Builder, Raw, Store, compile_query, new_machine_record
from ._base import resume_machine_record as _resume
from ._records import Config, MachineRecord, Query, Record, TimeRecord, from_micros

if TYPE_CHECKING:
    from .._machine import CoreMachine

__all__ = ["MemoryStore"]


class _Entry:
    __slots__ = ("builder", "maxlen", "pending", "records")

    def __init__(self, builder: Builder, maxlen: int) -> None:
        self.builder = builder
        self.maxlen = maxlen
        self.records: deque[Record] = deque(maxlen=maxlen)
        # captures not built yet: records are built when read, and a capture
        # rotated out before any read is never built
        self.pending: deque[Raw] = deque()


class MemoryStore(Store):
    """Records kept in memory, at most `max_records` per machine (the config's).

    A transition only stores its capture; records are built when first read
    (a capture rotated out before any read costs nothing more). Nothing
    survives the process.
    """

    def __init__(self) -> None:
        self._machines: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._sink = self._take

    def _attach(
        self, mach: CoreMachine, config: Config, tracked: tuple[str, ...], now: int
    ) -> Builder:
        if config.max_records is None:
            raise ValueError("MemoryStore is bounded: max_records cannot be None")
        with self._lock:
            old = self._machines.get(mach.id)
            if old is not None:
                pending = old.pending
                while pending:
                    old.records.append(old.builder.build(pending.popleft()))
            if old is None:
                rec = new_machine_record(mach, config, tracked, now)
                last_sum = None
                records: deque[Record] = deque()
            else:
                rec = _resume(old.builder.record(), mach, config, tracked, now)
                last_sum = old.builder.last_sum
                records = old.records
            entry = _Entry(
                Builder(rec, last_sum, config.store_transitions), config.max_records
            )
            entry.records.extend(records)
            self._machines[mach.id] = entry
            return entry.builder

    def _take(self, raw: Raw) -> None:
        entry = self._machines.get(raw[0].mach_id)
        if entry is None or entry.builder is not raw[0]:
            return
        pending = entry.pending
        if len(pending) >= entry.maxlen:
            with self._lock:
                if len(pending) >= entry.maxlen:
                    entry.builder.skip(pending.popleft())
        pending.append(raw)

    def _materialize(self, entry: _Entry) -> None:
        with self._lock:
            pending = entry.pending
            build = entry.builder.build
            add = entry.records.append
            while pending:
                add(build(pending.popleft()))

    def _snapshot(self, mach_id: str) -> list[Record]:
        entry = self._machines.get(mach_id)
        if entry is None:
            return []
        self._materialize(entry)
        with self._lock:
            return list(entry.records)

    async def machine_record(self, mach_id: str) -> MachineRecord | None:
        """The record of machine `mach_id`, or None if the store lacks it."""
        entry = self._machines.get(mach_id)
        if entry is None:
            return None
        self._materialize(entry)
        return entry.builder.record()

    async def machine_ids(self) -> list[str]:
        """Ids of every machine in the store."""
        return list(self._machines)

    async def count(self, mach_id: str) -> int:
        """How many records the store keeps for `mach_id`."""
        return len(self._snapshot(mach_id))

    async def _find(
        self, rec: MachineRecord, query: Query, limit: int, with_tx: bool
    ) -> list[Record]:
        match = compile_query(query, rec.tracked_states)[0]
        out: list[Record] = []
        for r in reversed(self._snapshot(rec.mach_id)):
            if match(r.time):
                out.append(r if with_tx else Record(r.time))
                if limit and len(out) >= limit:
                    break
        return out

    async def _edge(
        self, rec: MachineRecord, micros: int, at_or_before: bool
    ) -> TimeRecord | None:
        when = from_micros(micros)
        records = self._snapshot(rec.mach_id)
        if at_or_before:
            for r in reversed(records):
                if r.time.htime <= when:
                    return r.time
            return None
        for r in records:
            if r.time.htime > when:
                return r.time
        return None

    def close(self) -> None:
        """Nothing to release; records stay readable."""
