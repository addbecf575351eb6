"""What every store shares: record building, query matching, the between-queries."""

from __future__ import annotations

import abc
import json
import sys
from array import array
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from itertools import compress, repeat
from operator import and_ as _and
from operator import sub as _sub
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import attrs

from .._types import MutationType, SchemaError, State
from ._records import (
    Config,
    MachineRecord,
    Query,
    Record,
    TimeRecord,
    TransitionRecord,
    check_states,
    from_micros,
    to_micros,
)

if TYPE_CHECKING:
    from .._machine import CoreMachine

_ones = repeat(1)
_BIG_ENDIAN = sys.byteorder == "big"

__all__ = ["Builder", "Raw", "Store", "compile_query", "schema_to_json"]

# what the tracer captures on the hot path, turned into a record later by
# the store's writer: (builder, htime ns, the transition, ticks after) and,
# with store_transitions, (..., queue length, processed queue tick)
Raw = tuple[Any, ...]

# a times row: machine id, id, mutation type, htime µs, mtime sum, tracked
# sum, diff sum, tracked diff sum, record diff sum, tracked ticks (packed),
# tracked diffs (packed), machine tick, active mask, changed mask
TimeRow = tuple[
    str, int, int, int, int, int, int, int, int, bytes, bytes, int, int, int
]
# a transitions row: machine id, time id, transition id, auto, accepted,
# check, queue len, queued at, executed at, called (csv), args (json)
TxRow = tuple[str, int, str, bool, bool, bool, int, int, int, str, str]


def schema_to_json(schema: Mapping[str, State]) -> dict[str, Any]:
    """A schema as a JSON-able dict of state name -> non-default fields."""
    out: dict[str, Any] = {}
    for name, st in schema.items():
        fields: dict[str, Any] = {}
        for a in attrs.fields(State):
            v = getattr(st, a.name)
            if v != a.default:
                fields[a.name] = list(v) if isinstance(v, tuple) else v
        out[name] = fields
    return out


def schema_from_json(data: Mapping[str, Any]) -> dict[str, State]:
    """The inverse of `schema_to_json`."""
    return {name: State(**fields) for name, fields in data.items()}


class Builder:
    """Turns one machine's raw captures into records, in order.

    Owned by the store's single writer (the tracer's thread for
    `MemoryStore`, the writer thread for `SqlStore`); it also carries the
    machine record those records advance.
    """

    __slots__ = (
        "all_tracked",
        "args_mapper",
        "bits",
        "index",
        "last_sync_micros",
        "mach_tick_now",
        "first_tracking",
        "last_micros",
        "last_sum",
        "last_tracking",
        "mach_id",
        "mach_tick",
        "mtime",
        "mtime_sum",
        "names",
        "next_id",
        "parent_id",
        "queue_tick",
        "mach_ref",
        "monotonic",
        "schema",
        "store_tx",
        "tracked",
        "tracked_idx",
    )

    def __init__(
        self,
        rec: MachineRecord,
        last_sum: int | None,
        store_tx: bool,
    ) -> None:
        self.mach_id = rec.mach_id
        self.names = rec.state_names
        self.tracked = rec.tracked_states
        index = {n: i for i, n in enumerate(rec.state_names)}
        self.tracked_idx = tuple(index[n] for n in rec.tracked_states)
        self.index = index
        self.all_tracked = len(self.tracked_idx) == len(rec.state_names)
        self.bits = tuple(1 << i for i in range(len(self.tracked_idx)))
        self.first_tracking = rec.first_tracking
        self.last_tracking = rec.last_tracking
        self.last_sync_micros = to_micros(rec.last_sync)
        # set by the tracer: the machine's import count and args mapper
        self.mach_tick_now = rec.mach_tick
        self.args_mapper: Callable[[Mapping[str, Any]], dict[str, str]] | None = None
        self.mtime = rec.mtime
        self.mtime_sum = rec.mtime_sum
        self.mach_tick = rec.mach_tick
        self.queue_tick = rec.queue_tick
        # the machine, for its queue tick when the machine record is taken
        self.mach_ref: Callable[[], CoreMachine | None] = lambda: None
        self.next_id = rec.next_id
        self.parent_id = rec.parent_id
        self.schema = rec.schema
        self.last_sum = last_sum
        self.store_tx = store_tx
        self.monotonic = rec.mtime_monotonic
        # records keep their recording order in human time too
        self.last_micros = self.last_sync_micros

    def record(self) -> MachineRecord:
        """The machine record as of the last built record.

        The queue tick is the machine's own at this moment (when it is still
        alive): the tracer does not copy it at every transition.
        """
        mach = self.mach_ref()
        if mach is not None and not mach.disposed:
            self.queue_tick = mach.queue_tick
        return MachineRecord(
            mach_id=self.mach_id,
            state_names=self.names,
            tracked_states=self.tracked,
            first_tracking=self.first_tracking,
            last_tracking=self.last_tracking,
            last_sync=from_micros(self.last_sync_micros),
            mtime=self.mtime,
            mtime_sum=self.mtime_sum,
            mach_tick=self.mach_tick,
            queue_tick=self.queue_tick,
            next_id=self.next_id,
            parent_id=self.parent_id,
            schema=self.schema,
            mtime_monotonic=self.monotonic,
        )

    def skip(self, raw: Raw) -> None:
        """Advance past a capture whose record is dropped before it is built."""
        micros = raw[1] // 1000
        if micros > self.last_micros:
            self.last_micros = micros
        after = raw[3]
        self.next_id += 1
        total = sum(after)
        if self.last_sum is not None and total < self.last_sum:
            self.monotonic = False
        self.last_sum = self.mtime_sum = total
        self.mtime = after
        self.last_sync_micros = self.last_micros

    def row(self, raw: Raw) -> tuple[TimeRow, TxRow | None]:
        """The next record as table rows; advances the machine record."""
        micros = raw[1] // 1000
        tx = raw[2]
        after = raw[3]
        if micros < self.last_micros:
            micros = self.last_micros
        self.last_micros = micros
        before = tuple(tx.clock_before.values())
        idx = self.tracked_idx
        if self.all_tracked:
            tr_after = after
            tr_before = before
        else:
            tr_after = tuple([after[i] for i in idx])
            tr_before = tuple([before[i] for i in idx])
        tr_diff = tuple(map(_sub, tr_after, tr_before))
        bits = self.bits
        total = sum(after)
        rid = self.next_id
        last = self.last_sum
        if last is not None and total < last:
            self.monotonic = False
        mut = tx.mutation
        mach_tick = self.mach_tick_now
        time_row: TimeRow = (
            self.mach_id,
            rid,
            int(mut.type),
            micros,
            total,
            sum(tr_after),
            total - sum(before),
            sum(tr_diff),
            0 if last is None else total - last,
            _pack(tr_after),
            _pack(tr_diff),
            mach_tick,
            sum(compress(bits, map(_and, tr_after, _ones))),
            sum(compress(bits, tr_diff)),
        )
        tx_row: TxRow | None = None
        if self.store_tx:
            index = self.index
            mapper = self.args_mapper
            args = mut.args
            mapped = mapper(args) if mapper is not None and args else {}
            qt = mut.queue_tick
            qlen, processed = raw[4], raw[5]
            tx_row = (
                self.mach_id,
                rid,
                tx.id,
                mut.auto,
                tx.is_accepted,
                False,
                qlen,
                qt,
                processed if qt else 0,
                ",".join([str(index[n]) for n in mut.called]),
                json.dumps(mapped),
            )
        self.next_id = rid + 1
        self.last_sum = total
        self.mtime = after
        self.mtime_sum = total
        self.mach_tick = mach_tick
        self.last_sync_micros = micros
        return time_row, tx_row

    def build(self, raw: Raw) -> Record:
        """The next record, as objects; advances the machine record."""
        t, x = self.row(raw)
        time = TimeRecord(
            id=t[1],
            mut_type=MutationType(t[2]),
            mtime_sum=t[4],
            mtime_tracked_sum=t[5],
            mtime_diff_sum=t[6],
            mtime_tracked_diff_sum=t[7],
            mtime_record_diff_sum=t[8],
            htime=from_micros(t[3]),
            mtime_tracked=unpack(t[9]),
            mtime_tracked_diff=unpack(t[10]),
            mach_tick=t[11],
        )
        if x is None:
            return Record(time)
        return Record(time, tx_record(t[1], x))


def _pack(ticks: tuple[int, ...]) -> bytes:
    """Ticks as little-endian int64s (a BLOB: a fraction of the cost of text)."""
    arr = array("q", ticks)
    if _BIG_ENDIAN:
        arr.byteswap()
    return arr.tobytes()


def unpack(data: bytes) -> tuple[int, ...]:
    """The inverse of `_pack`."""
    arr = array("q")
    arr.frombytes(data)
    if _BIG_ENDIAN:
        arr.byteswap()
    return tuple(arr)


def ints(text: str) -> tuple[int, ...]:
    """`"1,2,3"` as `(1, 2, 3)`."""
    return tuple(map(int, text.split(","))) if text else ()


def tx_record(rid: int, x: Any) -> TransitionRecord:
    """A TransitionRecord from a transitions row (from the tx id on)."""
    return TransitionRecord(
        transition_id=x[2],
        time_record_id=rid,
        is_auto=bool(x[3]),
        is_accepted=bool(x[4]),
        is_check=bool(x[5]),
        queue_len=x[6],
        queued_at=x[7],
        executed_at=x[8],
        called=ints(x[9]),
        arguments=json.loads(x[10]),
    )


def compile_query(
    query: Query, tracked: Sequence[str]
) -> tuple[Callable[[TimeRecord], bool], int, int, int, int]:
    """A predicate on TimeRecords for `query`, plus its four state masks.

    The masks (bits by tracked index) are active, inactive, activated and
    deactivated; stores with indexes use them to narrow a scan, the
    predicate decides.
    """
    index = {n: i for i, n in enumerate(tracked)}
    active = [index[n] for n in query.active]
    inactive = [index[n] for n in query.inactive]
    activated = [index[n] for n in query.activated]
    deactivated = [index[n] for n in query.deactivated]
    s, e = query.start, query.end
    lo_idx = [index[n] for n in s.mtime_states]
    hi_idx = [index[n] for n in e.mtime_states]
    lo_h = None if s.htime is None else from_micros(to_micros(s.htime))
    hi_h = None if e.htime is None else from_micros(to_micros(e.htime))
    bounds: list[tuple[str, int | None, int | None]] = [
        (f, getattr(s, c), getattr(e, c))
        for f, c in (
            ("mtime_sum", "mtime_sum"),
            ("mtime_tracked_sum", "mtime_tracked_sum"),
            ("mtime_diff_sum", "mtime_diff"),
            ("mtime_tracked_diff_sum", "mtime_tracked_diff"),
            ("mtime_record_diff_sum", "mtime_record_diff"),
            ("mach_tick", "mach_tick"),
        )
        if getattr(s, c) is not None or getattr(e, c) is not None
    ]

    def match(t: TimeRecord) -> bool:
        ticks = t.mtime_tracked
        diff = t.mtime_tracked_diff
        for i in active:
            if not ticks[i] & 1:
                return False
        for i in inactive:
            if ticks[i] & 1:
                return False
        for i in activated:
            if not (ticks[i] & 1 and diff[i]):
                return False
        for i in deactivated:
            if ticks[i] & 1 or not diff[i]:
                return False
        if lo_h is not None and t.htime < lo_h:
            return False
        if hi_h is not None and t.htime > hi_h:
            return False
        for field, lo, hi in bounds:
            v = getattr(t, field)
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                return False
        for i, bound in zip(lo_idx, s.mtime, strict=True):
            if ticks[i] < bound:
                return False
        for i, bound in zip(hi_idx, e.mtime, strict=True):  # noqa: SIM110
            if ticks[i] > bound:
                return False
        return True

    def mask(ids: list[int]) -> int:
        m = 0
        for i in ids:
            m |= 1 << i
        return m

    return match, mask(active), mask(inactive), mask(activated), mask(deactivated)


class Store(abc.ABC):
    """A place records go to and are queried from; see `MemoryStore`, `SqlStore`.

    One store holds any number of machines, each under its id. Reads are
    awaitable on asyncio and trio; writes come from `track()`'s tracers and
    never block a transition.
    """

    # ------------------------------------------------------------ writing

    @abc.abstractmethod
    def _attach(
        self, mach: CoreMachine, config: Config, tracked: tuple[str, ...], now: int
    ) -> Builder:
        """Register (or resume) `mach`; its Builder. Raises on a mismatch."""

    _sink: Callable[[Raw], None]
    """Takes one capture (the hot path: must not block); set by each store."""

    # ------------------------------------------------------------ reading

    @abc.abstractmethod
    async def machine_record(self, mach_id: str) -> MachineRecord | None:
        """The record of machine `mach_id`, or None if the store lacks it."""

    @abc.abstractmethod
    async def machine_ids(self) -> list[str]:
        """Ids of every machine in the store."""

    @abc.abstractmethod
    async def count(self, mach_id: str) -> int:
        """How many records the store keeps for `mach_id`."""

    @abc.abstractmethod
    async def _find(
        self,
        rec: MachineRecord,
        query: Query,
        limit: int,
        with_tx: bool,
    ) -> list[Record]:
        """find_latest after validation."""

    @abc.abstractmethod
    async def _edge(
        self, rec: MachineRecord, micros: int, at_or_before: bool
    ) -> TimeRecord | None:
        """The latest record at/before `micros`, or the first one after it."""

    async def sync(self) -> None:  # noqa: B027
        """Wait until every record captured so far is queryable."""

    @abc.abstractmethod
    def close(self) -> None:
        """Write what is pending and release the store (idempotent)."""

    async def aclose(self) -> None:
        """`close()` from async code (off the event loop)."""
        import anyio.to_thread

        await anyio.to_thread.run_sync(self.close)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------ queries

    async def _record_of(self, mach_id: str) -> MachineRecord:
        rec = await self.machine_record(mach_id)
        if rec is None:
            raise KeyError(f"the store has no machine {mach_id!r}")
        return rec

    async def find_latest(
        self,
        mach_id: str,
        query: Query | None = None,
        *,
        limit: int = 0,
        with_tx: bool = False,
    ) -> list[Record]:
        """Records of `mach_id` matching `query`, newest first.

        `limit` 0 returns every match. Unlike Go's in-memory `FindLatest`,
        the state conditions are applied. Raises for a state the machine
        lacks or does not track, and KeyError for an unknown machine.
        """
        if query is None:
            query = Query()
        if not isinstance(query, Query):
            raise TypeError(f"query must be a history.Query, got {query!r}")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise ValueError(f"limit must be a non-negative int, got {limit!r}")
        rec = await self._record_of(mach_id)
        check_states(query.states(), rec.tracked_states, rec.state_names, mach_id)
        return await self._find(rec, query, limit, with_tx)

    async def _state_between(
        self, mach_id: str, state: str, start: datetime, end: datetime
    ) -> tuple[MachineRecord, int, int]:
        rec = await self._record_of(mach_id)
        check_states([state], rec.tracked_states, rec.state_names, mach_id)
        lo, hi = to_micros(start), to_micros(end)
        if lo > hi:
            raise ValueError(f"start {start} is after end {end}")
        return rec, lo, hi

    async def activated_between(
        self, mach_id: str, state: str, start: datetime, end: datetime
    ) -> bool:
        """True if a record between `start` and `end` activated `state`."""
        from ._records import ConditionTime

        await self._state_between(mach_id, state, start, end)
        q = Query(
            activated=[state],
            start=ConditionTime(htime=start),
            end=ConditionTime(htime=end),
        )
        return bool(await self.find_latest(mach_id, q, limit=1))

    async def deactivated_between(
        self, mach_id: str, state: str, start: datetime, end: datetime
    ) -> bool:
        """True if a record between `start` and `end` deactivated `state`."""
        from ._records import ConditionTime

        await self._state_between(mach_id, state, start, end)
        q = Query(
            deactivated=[state],
            start=ConditionTime(htime=start),
            end=ConditionTime(htime=end),
        )
        return bool(await self.find_latest(mach_id, q, limit=1))

    async def tick_at(self, mach_id: str, state: str, when: datetime) -> int:
        """The tick of `state` at `when`, as the records tell it.

        The tick after the latest record at or before `when`; without one,
        the tick before the first record after it; without any record, the
        tick the machine had when tracking started.
        """
        rec = await self._record_of(mach_id)
        check_states([state], rec.tracked_states, rec.state_names, mach_id)
        return await self._tick_at(
            rec, rec.tracked_states.index(state), to_micros(when)
        )

    async def _tick_at(self, rec: MachineRecord, i: int, micros: int) -> int:
        t = await self._edge(rec, micros, True)
        if t is not None:
            return t.mtime_tracked[i]
        t = await self._edge(rec, micros, False)
        if t is not None:
            return t.mtime_tracked[i] - t.mtime_tracked_diff[i]
        # no records: the ticks as tracking found them
        return rec.mtime[rec.state_names.index(rec.tracked_states[i])]

    async def _whole(
        self, mach_id: str, state: str, start: datetime, end: datetime, odd: int
    ) -> bool:
        rec, lo, hi = await self._state_between(mach_id, state, start, end)
        i = rec.tracked_states.index(state)
        first = await self._tick_at(rec, i, lo)
        if first & 1 != odd:
            return False
        # ticks only grow: the same tick at both ends means no change between
        return await self._tick_at(rec, i, hi) == first

    async def active_between(
        self, mach_id: str, state: str, start: datetime, end: datetime
    ) -> bool:
        """True if `state` was active the whole time from `start` to `end`.

        Go's in-memory `ActiveBetween` is true when any record in the window
        has the state active; this one needs it active at `start` and its
        tick unchanged up to `end` (see `tick_at`).
        """
        return await self._whole(mach_id, state, start, end, 1)

    async def inactive_between(
        self, mach_id: str, state: str, start: datetime, end: datetime
    ) -> bool:
        """True if `state` was inactive the whole time from `start` to `end`."""
        return await self._whole(mach_id, state, start, end, 0)


def new_machine_record(
    mach: CoreMachine, config: Config, tracked: tuple[str, ...], now: int
) -> MachineRecord:
    """A first record of `mach` (nothing stored yet)."""
    t = from_micros(now)
    return MachineRecord(
        mach_id=mach.id,
        state_names=tuple(mach.state_names),
        tracked_states=tracked,
        first_tracking=t,
        last_tracking=t,
        last_sync=t,
        mtime=tuple(mach.time()),
        mtime_sum=sum(mach.time()),
        mach_tick=mach.machine_tick,
        queue_tick=mach.queue_tick,
        next_id=1,
        parent_id=mach.parent_id,
        schema=dict(mach.schema) if config.store_schema else None,
    )


def resume_machine_record(
    old: MachineRecord,
    mach: CoreMachine,
    config: Config,
    tracked: tuple[str, ...],
    now: int,
) -> MachineRecord:
    """`old` updated for a new tracking of `mach`; SchemaError on a mismatch."""
    names = tuple(mach.state_names)
    if old.state_names != names:
        raise SchemaError(
            f"the store holds machine {mach.id} with the states "
            f"{', '.join(old.state_names)}; this machine has {', '.join(names)}"
        )
    if old.tracked_states != tracked:
        raise SchemaError(
            f"the store tracks {', '.join(old.tracked_states)} of machine "
            f"{mach.id}; this tracking asks for {', '.join(tracked)}"
        )
    t = from_micros(now)
    return attrs.evolve(
        old,
        last_tracking=t,
        last_sync=t,
        mtime=tuple(mach.time()),
        mtime_sum=sum(mach.time()),
        mach_tick=mach.machine_tick,
        queue_tick=mach.queue_tick,
        parent_id=mach.parent_id,
        schema=dict(mach.schema) if config.store_schema else old.schema,
    )


def utcnow_micros() -> int:
    """Now, in microseconds since the epoch."""
    return to_micros(datetime.now(UTC))
