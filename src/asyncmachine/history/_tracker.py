"""track(): the tracer that records a machine's transitions into a store."""

from __future__ import annotations

import time as _time
import weakref
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from .._runtime import Machine
from .._tracer import Tracer
from .._types import State
from ._base import Builder, Store
from ._records import Config, MachineRecord, Query, Record

if TYPE_CHECKING:
    from .._machine import CoreMachine
    from .._transition import Transition

__all__ = ["History", "restore", "track"]

M = TypeVar("M", bound="CoreMachine")


class History(Tracer):
    """The tracer `track()` binds: records transitions, answers queries.

    The query methods are the store's, for this machine's id.
    """

    def __init__(
        self,
        mach: CoreMachine,
        store: Store,
        config: Config,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.machine_id: str = mach.id
        """Id of the tracked machine."""
        self.store = store
        """The store records go to."""
        self.config = config
        """The tracking config."""
        self._mach = mach
        self._clock = clock if clock is not None else _time.time_ns
        names = mach.state_names
        if config.tracked_states is None:
            tracked = list(names)
        else:
            tracked = list(config.tracked_states)
            if not config.called_exclude:
                tracked += config.called
            if not config.changed_exclude:
                tracked += config.changed
        for name in [*tracked, *config.called, *config.changed]:
            if name not in names:
                from .._types import StateNameError

                raise StateNameError(name, mach.id)
        if not tracked:
            raise ValueError("tracked_states is empty: no states to track")
        # state order, no duplicates
        wanted = set(tracked)
        self.tracked_states: tuple[str, ...] = tuple(n for n in names if n in wanted)
        """The states whose ticks the records keep, in state order."""
        self._filtered = bool(config.called or config.changed)
        self._store_tx = config.store_transitions
        self._rejected = config.track_rejected
        self._builder: Builder = store._attach(
            mach, config, self.tracked_states, self._clock() // 1000
        )
        # the args mapper as bound now (read by the store's writer)
        self._builder.args_mapper = mach.log_args_mapper
        self._builder.mach_ref = weakref.ref(mach)
        self._time = mach.time
        self._sink = store._sink
        self._detached = False

    # ------------------------------------------------------------ tracer

    def _passes(self, tx: Transition) -> bool:
        """Go's called/changed filter for one transition."""
        cfg = self.config
        called = tx.mutation.called
        match = (cfg.changed_exclude or not cfg.changed) and (
            cfg.called_exclude or not cfg.called
        )
        for name in cfg.called:
            if name in called:
                match = not cfg.called_exclude
                break
        if cfg.changed:
            before = tx.clock_before
            tick = self._mach.tick
            for name in cfg.changed:
                if before[name] != tick(name):
                    match = not cfg.changed_exclude
                    break
        return bool(match)

    def transition_end(self, transition: Transition) -> None:
        """Capture the transition; the store builds and writes the record."""
        if transition.mutation.is_check or not (
            transition.is_accepted or self._rejected
        ):
            return
        if self._filtered and not self._passes(transition):
            return
        mach = self._mach
        if self._store_tx:
            self._sink(
                (
                    self._builder,
                    self._clock(),
                    transition,
                    mach.time(),
                    mach.queue_len,
                    mach.queue_tick_processed,
                )
            )
        else:
            self._sink((self._builder, self._clock(), transition, self._time()))

    def machine_dispose(self, machine_id: str) -> None:
        """The machine is gone: stop recording (the records stay)."""
        self._detached = True

    # ------------------------------------------------------------ api

    def dispose(self) -> None:
        """Stop recording this machine (the store keeps its records)."""
        if not self._detached:
            self._detached = True
            if not self._mach.disposed:
                self._mach.detach_tracer(self)

    async def machine_record(self) -> MachineRecord:
        """The machine's record in the store."""
        rec = await self.store.machine_record(self.machine_id)
        assert rec is not None
        return rec

    async def find_latest(
        self, query: Query | None = None, *, limit: int = 0, with_tx: bool = False
    ) -> list[Record]:
        """`Store.find_latest` for this machine."""
        return await self.store.find_latest(
            self.machine_id, query, limit=limit, with_tx=with_tx
        )

    async def activated_between(
        self, state: str, start: datetime, end: datetime
    ) -> bool:
        """`Store.activated_between` for this machine."""
        return await self.store.activated_between(self.machine_id, state, start, end)

    async def deactivated_between(
        self, state: str, start: datetime, end: datetime
    ) -> bool:
        """`Store.deactivated_between` for this machine."""
        return await self.store.deactivated_between(self.machine_id, state, start, end)

    async def active_between(self, state: str, start: datetime, end: datetime) -> bool:
        """`Store.active_between` (the whole time) for this machine."""
        return await self.store.active_between(self.machine_id, state, start, end)

    async def inactive_between(
        self, state: str, start: datetime, end: datetime
    ) -> bool:
        """`Store.inactive_between` (the whole time) for this machine."""
        return await self.store.inactive_between(self.machine_id, state, start, end)

    async def sync(self) -> None:
        """Wait until every captured record is queryable."""
        await self.store.sync()


def track(
    mach: CoreMachine,
    store: Store,
    config: Config | None = None,
    *,
    clock: Callable[[], int] | None = None,
    **options: Any,
) -> History:
    """Record `mach`'s transitions into `store`; returns the bound tracer.

    Options are `Config`'s fields (`called`, `changed`, `track_rejected`,
    `tracked_states`, `store_transitions`, `store_schema`, `max_records`,
    ...), given as a `Config` or as keywords. `clock` returns nanoseconds
    since the epoch (default: `time.time_ns`; tests pass their own).
    A machine already in the store continues its records; one whose states
    differ raises `am.SchemaError`.
    """
    if config is None:
        config = Config(**options)
    elif options:
        raise TypeError("pass either a Config or keyword options, not both")
    hist = History(mach, store, config, clock)
    mach.bind_tracer(hist)
    return hist


async def restore(
    store: Store,
    mach_id: str,
    schema: Mapping[str, State],
    *,
    cls: type[M] = Machine,  # type: ignore[assignment]
    track_config: Config | None = None,
    **kwargs: Any,
) -> M:
    """Rebuild machine `mach_id` from the store's last record.

    Clocks, queue tick and machine tick come back through `cls.import_`
    (`MachineRestored` is added when the schema has it); `kwargs` go to the
    machine's constructor. With `track_config` the new machine is tracked
    again into the same store, its records continuing the old ones.
    Raises KeyError for a machine the store lacks, `am.SchemaError` for a
    schema that does not match.
    """
    rec = await store.machine_record(mach_id)
    if rec is None:
        raise KeyError(f"the store has no machine {mach_id!r}")
    tracers: Iterable[Any] = kwargs.pop("tracers", ())
    mach = cls.import_(rec.to_serialized(), schema, tracers=tracers, **kwargs)
    if track_config is not None:
        track(mach, store, track_config)
    return mach
