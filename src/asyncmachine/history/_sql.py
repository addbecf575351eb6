"""SqlStore: records in SQLite (the embedded default) or PostgreSQL.

SQLAlchemy Core with a synchronous engine: one writer thread takes the
tracers' captures from a deque and writes them in batches; reads run in a
worker thread (`anyio.to_thread`), so they are awaitable on asyncio and
trio alike. See docs/history.md for the tables and their migrations.
"""

from __future__ import annotations

import atexit
import json
import logging
import sqlite3
import threading
import weakref
from collections import deque
from collections.abc import Callable
from itertools import chain
from typing import TYPE_CHECKING, Any, Final

import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ._base import (
    Builder,
    Raw,
    Store,
    TimeRow,
    TxRow,
    compile_query,
    ints,
    new_machine_record,
    resume_machine_record,
    schema_from_json,
    schema_to_json,
    tx_record,
    unpack,
)
from ._records import (
    Config,
    HistoryError,
    MachineRecord,
    Query,
    Record,
    TimeRecord,
    TransitionRecord,
    from_micros,
    to_micros,
)

if TYPE_CHECKING:
    from .._machine import CoreMachine

__all__ = ["SCHEMA_VERSION", "SqlStore"]

_log = logging.getLogger("asyncmachine.history")

_CHUNK: Final = 500
"""Rows per multi-row INSERT on SQLite (14 columns: 7,000 parameters)."""

# SQLite before 3.32 takes at most 999 parameters a statement
_SQLITE_MANY_VARS: Final = sqlite3.sqlite_version_info >= (3, 32, 0)

MAX_TRACKED: Final = 63
"""Tracked states per machine a SqlStore indexes (bits of a BIGINT)."""

_META = sa.MetaData()

meta = sa.Table(
    "am_history_meta",
    _META,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
machines = sa.Table(
    "am_history_machines",
    _META,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("parent_id", sa.String(255), nullable=False),
    sa.Column("state_names", sa.Text, nullable=False),
    sa.Column("tracked_states", sa.Text, nullable=False),
    sa.Column("schema", sa.Text, nullable=True),
    sa.Column("first_tracking", sa.BigInteger, nullable=False),
    sa.Column("last_tracking", sa.BigInteger, nullable=False),
    sa.Column("last_sync", sa.BigInteger, nullable=False),
    sa.Column("mtime", sa.Text, nullable=False),
    sa.Column("mtime_sum", sa.BigInteger, nullable=False),
    sa.Column("mach_tick", sa.BigInteger, nullable=False),
    sa.Column("queue_tick", sa.BigInteger, nullable=False),
    sa.Column("next_id", sa.BigInteger, nullable=False),
    sa.Column("max_records", sa.BigInteger, nullable=True),
    # machine time sums never went down: a machine-time window may then be
    # read in machine-time order (the same as the id order)
    sa.Column("mtime_monotonic", sa.Boolean, nullable=False),
)
times = sa.Table(
    "am_history_times",
    _META,
    sa.Column("machine_id", sa.String(255), primary_key=True),
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("mut_type", sa.SmallInteger, nullable=False),
    sa.Column("htime", sa.BigInteger, nullable=False),
    sa.Column("mtime_sum", sa.BigInteger, nullable=False),
    sa.Column("mtime_tracked_sum", sa.BigInteger, nullable=False),
    sa.Column("mtime_diff_sum", sa.BigInteger, nullable=False),
    sa.Column("mtime_tracked_diff_sum", sa.BigInteger, nullable=False),
    sa.Column("mtime_record_diff_sum", sa.BigInteger, nullable=False),
    # little-endian int64 arrays
    sa.Column("mtime_tracked", sa.LargeBinary, nullable=False),
    sa.Column("mtime_tracked_diff", sa.LargeBinary, nullable=False),
    sa.Column("mach_tick", sa.BigInteger, nullable=False),
    # bit i: tracked state i is active after the transition / its tick changed
    sa.Column("active_mask", sa.BigInteger, nullable=False),
    sa.Column("changed_mask", sa.BigInteger, nullable=False),
    # SQLite: the primary key is the table (no second b-tree to maintain)
    sqlite_with_rowid=False,
)
transitions = sa.Table(
    "am_history_transitions",
    _META,
    sa.Column("machine_id", sa.String(255), primary_key=True),
    sa.Column("time_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("transition_id", sa.String(64), nullable=False),
    sa.Column("is_auto", sa.Boolean, nullable=False),
    sa.Column("is_accepted", sa.Boolean, nullable=False),
    sa.Column("is_check", sa.Boolean, nullable=False),
    sa.Column("queue_len", sa.BigInteger, nullable=False),
    sa.Column("queued_at", sa.BigInteger, nullable=False),
    sa.Column("executed_at", sa.BigInteger, nullable=False),
    sa.Column("called", sa.Text, nullable=False),
    sa.Column("arguments", sa.Text, nullable=False),
)
# with the id last, an index serves "ORDER BY htime DESC, id DESC" whole
_INDEXES = (
    sa.Index("am_history_times_htime", times.c.machine_id, times.c.htime, times.c.id),
    sa.Index(
        "am_history_times_mtime_sum", times.c.machine_id, times.c.mtime_sum, times.c.id
    ),
)
_TABLES = (meta, machines, times, transitions)


def _migrate_1(conn: Connection) -> None:
    """Version 1: the four tables and the time indexes (created with them)."""
    for table in _TABLES:
        table.create(conn)


MIGRATIONS: Final[tuple[Callable[[Connection], None], ...]] = (_migrate_1,)
"""Migration i+1 brings a database from version i to i+1."""

SCHEMA_VERSION: Final = len(MIGRATIONS)
"""The database schema version this asyncmachine writes."""


def _insert_sql(table: sa.Table, mark: str) -> str:
    """A plain INSERT of every column, in column order, for executemany."""
    cols = ", ".join(c.name for c in table.columns)
    marks = ", ".join([mark] * len(table.columns))
    return f"INSERT INTO {table.name} ({cols}) VALUES ({marks})"


class _Flush:
    """A marker in the write queue: set once everything before it is written."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None


_OPEN: weakref.WeakSet[SqlStore] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for store in list(_OPEN):
        try:
            store.close()
        except Exception:
            _log.exception("closing history store %s at exit", store.url)


class SqlStore(Store):
    """Records in a SQL database: `sqlite:///path.db` or `postgresql+psycopg://...`.

    A plain file path (no `://`) means SQLite. SQLite runs in WAL mode.
    The database is migrated to `SCHEMA_VERSION` on open; a database of a
    newer version, history tables without a version, or a file that is no
    database raise `HistoryError` and are left as they are. Captures wait in
    a queue (at most `max_pending`, checked when the writer wakes; beyond it
    the oldest are dropped and counted in `dropped`) for the writer thread, which wakes every `flush_interval`
    seconds and writes them in one transaction. `create=False` opens only
    an existing history database.
    """

    def __init__(
        self,
        url: str = "sqlite:///am-history.db",
        *,
        flush_interval: float = 0.05,
        max_pending: int = 1_000_000,
        create: bool = True,
        echo: bool = False,
    ) -> None:
        if "://" not in url:
            url = f"sqlite:///{url}"
        self.url = url
        """The database URL."""
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self.dropped: int = 0
        """Captures dropped because the queue was full."""
        self.written: int = 0
        """Records written so far."""
        self.error: BaseException | None = None
        """The last write error (None once a later write succeeded)."""
        self._pending: deque[Raw | _Flush] = deque()
        # the tracers append straight to the queue; the writer enforces
        # max_pending each time it wakes
        self._sink = self._pending.append
        self._builders: dict[str, Builder] = {}
        self._max: dict[str, int | None] = {}
        self._wake = threading.Event()
        self._markers = 0  # flush markers in the queue
        self._mlock = threading.Lock()
        self._lock = threading.Lock()
        self._closed = False
        self._writer: threading.Thread | None = None
        try:
            if not create:
                self._check_exists(url)
            self._engine = self._create_engine(url, echo)
            dialect = self._engine.dialect
            mark = "?" if dialect.paramstyle == "qmark" else "%s"
            self._dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
            self._insert_times = _insert_sql(times, mark)
            self._insert_txs = _insert_sql(transitions, mark)
            self._multirow = dialect.name == "sqlite"
            self._multi_sql: dict[tuple[str, int], str] = {}
            with self._engine.begin() as conn:
                self._migrate(conn, create)
        except HistoryError:
            self._dispose_engine()
            raise
        except sa.exc.SQLAlchemyError as err:
            self._dispose_engine()
            raise HistoryError(
                f"cannot open history store {url}: {getattr(err, 'orig', None) or err}"
            ) from err
        _OPEN.add(self)

    # ------------------------------------------------------------ setup

    @staticmethod
    def _create_engine(url: str, echo: bool) -> Engine:
        sa_url = sa.engine.make_url(url)
        if sa_url.get_backend_name() == "sqlite":
            if sa_url.database in (None, "", ":memory:"):
                raise HistoryError(
                    "SqlStore needs a SQLite file (readers and the writer use "
                    "separate connections); use MemoryStore for memory"
                )
            engine = sa.create_engine(
                url, echo=echo, connect_args={"check_same_thread": False}
            )

            @sa.event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _: Any) -> None:
                cur = dbapi_conn.cursor()
                # fails on a file that is no database, before writing to it
                cur.execute("PRAGMA schema_version")
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA busy_timeout=10000")
                cur.close()

            return engine
        if (
            sa_url.get_backend_name() == "postgresql"
            and sa_url.drivername == "postgresql"
        ):
            # psycopg 3, not SQLAlchemy's default psycopg2
            sa_url = sa_url.set(drivername="postgresql+psycopg")
        return sa.create_engine(sa_url, echo=echo, pool_pre_ping=True)

    def _dispose_engine(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.dispose()

    @staticmethod
    def _check_exists(url: str) -> None:
        sa_url = sa.engine.make_url(url)
        if sa_url.get_backend_name() == "sqlite":
            import os

            path = sa_url.database or ""
            if not os.path.isfile(path):
                raise HistoryError(f"no history database at {path}")

    def _migrate(self, conn: Connection, create: bool = True) -> None:
        names = set(sa.inspect(conn).get_table_names())
        ours = {t.name for t in _TABLES}
        if meta.name in names:
            row = conn.execute(
                sa.select(meta.c.value).where(meta.c.key == "schema_version")
            ).first()
            if row is None:
                raise HistoryError(f"{self.url}: am_history_meta has no schema_version")
            version = int(row[0])
        elif names & ours:
            raise HistoryError(
                f"{self.url}: has history tables but no am_history_meta: not a "
                "database this version of asyncmachine wrote; left untouched"
            )
        else:
            version = 0
            if not create:
                raise HistoryError(f"{self.url}: no history tables in this database")
        if version > SCHEMA_VERSION:
            raise HistoryError(
                f"{self.url}: history schema version {version} is newer than "
                f"this asyncmachine's {SCHEMA_VERSION}; left untouched"
            )
        if version == SCHEMA_VERSION:
            return
        for step in MIGRATIONS[version:]:
            step(conn)
        if version == 0:
            conn.execute(
                meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION))
            )
        else:
            conn.execute(
                meta.update()
                .where(meta.c.key == "schema_version")
                .values(value=str(SCHEMA_VERSION))
            )

    def schema_version(self) -> int:
        """The database's schema version."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(meta.c.value).where(meta.c.key == "schema_version")
            ).one()
        return int(row[0])

    # ------------------------------------------------------------ machines

    @staticmethod
    def _row_to_machine(row: Any) -> MachineRecord:
        return MachineRecord(
            mach_id=row.id,
            state_names=tuple(json.loads(row.state_names)),
            tracked_states=tuple(json.loads(row.tracked_states)),
            first_tracking=from_micros(row.first_tracking),
            last_tracking=from_micros(row.last_tracking),
            last_sync=from_micros(row.last_sync),
            mtime=ints(row.mtime),
            mtime_sum=row.mtime_sum,
            mach_tick=row.mach_tick,
            queue_tick=row.queue_tick,
            next_id=row.next_id,
            parent_id=row.parent_id,
            mtime_monotonic=bool(row.mtime_monotonic),
            schema=None
            if row.schema is None
            else schema_from_json(json.loads(row.schema)),
        )

    @staticmethod
    def _machine_values(rec: MachineRecord) -> dict[str, Any]:
        return {
            "parent_id": rec.parent_id,
            "state_names": json.dumps(list(rec.state_names)),
            "tracked_states": json.dumps(list(rec.tracked_states)),
            "schema": None
            if rec.schema is None
            else json.dumps(schema_to_json(rec.schema)),
            "first_tracking": to_micros(rec.first_tracking),
            "last_tracking": to_micros(rec.last_tracking),
            "last_sync": to_micros(rec.last_sync),
            "mtime": ",".join(map(str, rec.mtime)),
            "mtime_sum": rec.mtime_sum,
            "mach_tick": rec.mach_tick,
            "queue_tick": rec.queue_tick,
            "next_id": rec.next_id,
            "mtime_monotonic": rec.mtime_monotonic,
        }

    def _attach(
        self, mach: CoreMachine, config: Config, tracked: tuple[str, ...], now: int
    ) -> Builder:
        if len(tracked) > MAX_TRACKED:
            raise ValueError(
                f"SqlStore indexes at most {MAX_TRACKED} tracked states; machine "
                f"{mach.id} tracks {len(tracked)}: pass tracked_states="
            )
        if self._closed:
            raise HistoryError(f"history store {self.url} is closed")
        # records of this machine still queued go first, with the old builder
        self._flush_sync()
        with self._lock, self._engine.begin() as conn:
            row = conn.execute(
                sa.select(machines).where(machines.c.id == mach.id)
            ).first()
            if row is None:
                rec = new_machine_record(mach, config, tracked, now)
                last_sum = None
                conn.execute(
                    machines.insert().values(
                        id=rec.mach_id,
                        max_records=config.max_records,
                        **self._machine_values(rec),
                    )
                )
            else:
                rec = resume_machine_record(
                    self._row_to_machine(row), mach, config, tracked, now
                )
                last = conn.execute(
                    sa.select(times.c.mtime_sum)
                    .where(times.c.machine_id == mach.id)
                    .order_by(times.c.id.desc())
                    .limit(1)
                ).first()
                last_sum = None if last is None else last[0]
                conn.execute(
                    machines.update()
                    .where(machines.c.id == mach.id)
                    .values(max_records=config.max_records, **self._machine_values(rec))
                )
            builder = Builder(rec, last_sum, config.store_transitions)
            self._builders[mach.id] = builder
            self._max[mach.id] = config.max_records
        self._start_writer()
        return builder

    # ------------------------------------------------------------ writing

    def _start_writer(self) -> None:
        if self._writer is None:
            self._writer = threading.Thread(
                target=self._write_loop,
                name=f"am-history-writer {self.url}",
                daemon=True,
            )
            self._writer.start()

    def _write_loop(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            closed = self._closed
            try:
                self._write_pending()
            except Exception as err:  # a bug: keep the writer alive, say so
                self.error = err
                _log.exception("history store %s: the writer failed", self.url)
            if closed:
                return

    def _trim(self) -> None:
        """Drop the oldest captures beyond `max_pending` (counted)."""
        pending = self._pending
        while len(pending) - self._markers > self.max_pending:
            item = pending.popleft()
            if isinstance(item, _Flush):
                with self._mlock:
                    self._markers -= 1
                item.done.set()
            else:
                item[0].skip(item)
                self.dropped += 1

    def _write_pending(self) -> None:
        """Write everything queued; set the flush markers met on the way."""
        pending = self._pending
        self._trim()
        while pending:
            batch: list[Raw] = []
            flushes: list[_Flush] = []
            while pending and len(batch) < 50_000:
                item = pending.popleft()
                if isinstance(item, _Flush):
                    with self._mlock:
                        self._markers -= 1
                    flushes.append(item)
                    break
                batch.append(item)
            error = self._write_batch(batch) if batch else None
            for f in flushes:
                f.error = error
                f.done.set()

    def _write_batch(self, batch: list[Raw]) -> BaseException | None:
        time_rows: list[TimeRow] = []
        tx_rows: list[TxRow] = []
        touched: dict[str, Builder] = {}
        add_time = time_rows.append
        for raw in batch:
            builder = raw[0]
            t, x = builder.row(raw)
            add_time(t)
            if x is not None:
                tx_rows.append(x)
            touched[builder.mach_id] = builder
        for attempt in range(3):
            try:
                with self._lock, self._engine.begin() as conn:
                    # the DB-API's executemany: SQLAlchemy's per-row parameter
                    # handling costs more than the insert itself
                    cur = conn.connection.cursor()
                    try:
                        self._insert(cur, times, time_rows)
                        if tx_rows:
                            self._insert(cur, transitions, tx_rows)
                    finally:
                        cur.close()
                    for mid, builder in touched.items():
                        mrec = builder.record()
                        conn.execute(
                            machines.update()
                            .where(machines.c.id == mid)
                            .values(**self._machine_values(mrec))
                        )
                        limit = self._max.get(mid)
                        if limit is not None and mrec.next_id - 1 > limit:
                            cut = mrec.next_id - 1 - limit
                            conn.execute(
                                times.delete().where(
                                    times.c.machine_id == mid, times.c.id <= cut
                                )
                            )
                            conn.execute(
                                transitions.delete().where(
                                    transitions.c.machine_id == mid,
                                    transitions.c.time_id <= cut,
                                )
                            )
                self.written += len(time_rows)
                self.error = None
                return None
            except (sa.exc.SQLAlchemyError, self._dbapi_error) as err:
                self.error = err
                _log.warning(
                    "history store %s: writing %d records failed (attempt %d): %s",
                    self.url,
                    len(time_rows),
                    attempt + 1,
                    err,
                )
        _log.error(
            "history store %s: dropped %d records after 3 failed writes",
            self.url,
            len(time_rows),
        )
        self.dropped += len(time_rows)
        return self.error

    def _insert(self, cur: Any, table: sa.Table, rows: list[Any]) -> None:
        """Insert `rows`: multi-row INSERTs on SQLite, executemany elsewhere.

        On SQLite a statement per row means the writer gives the GIL up and
        waits to get it back at every row (sqlite3 releases it around each
        step), which a busy machine thread makes slow; a statement of up to
        `_CHUNK` rows does that once per chunk.
        """
        if not self._multirow:
            cur.executemany(
                self._insert_times if table is times else self._insert_txs, rows
            )
            return
        width = len(table.columns)
        step = _CHUNK if _SQLITE_MANY_VARS else 999 // width
        for i in range(0, len(rows), step):
            chunk = rows[i : i + step]
            key = (table.name, len(chunk))
            sql: str | None = self._multi_sql.get(key)
            if sql is None:
                one = "(" + ", ".join(["?"] * width) + ")"
                cols = ", ".join(c.name for c in table.columns)
                sql = f"INSERT INTO {table.name} ({cols}) VALUES " + ", ".join(
                    [one] * len(chunk)
                )
                if len(self._multi_sql) > 64:
                    self._multi_sql.clear()
                self._multi_sql[key] = sql
            cur.execute(sql, tuple(chain.from_iterable(chunk)))

    def _flush_sync(self) -> None:
        if self._writer is None or not self._writer.is_alive():
            # no writer (yet, or any more): write in this thread
            self._write_pending()
            return
        marker = _Flush()
        with self._mlock:
            self._markers += 1
        self._pending.append(marker)
        self._wake.set()
        while not marker.done.wait(1.0):
            if not self._writer.is_alive():
                self._write_pending()
        if marker.error is not None:
            raise HistoryError(
                f"history store {self.url}: a write failed: {marker.error}"
            ) from marker.error

    async def sync(self) -> None:
        """Wait until every record captured so far is written."""
        await anyio.to_thread.run_sync(self._flush_sync)

    def close(self) -> None:
        """Write what is pending, stop the writer, release the connections."""
        if self._closed:
            return
        self._flush_sync()
        self._closed = True
        self._wake.set()
        if self._writer is not None:
            self._writer.join()
        self._write_pending()
        self._engine.dispose()
        _OPEN.discard(self)

    # ------------------------------------------------------------ reading

    def _read(self, fn: Callable[[Connection], Any]) -> Any:
        if self._closed:
            raise HistoryError(f"history store {self.url} is closed")
        self._flush_sync()
        try:
            with self._engine.connect() as conn:
                return fn(conn)
        except sa.exc.SQLAlchemyError as err:
            raise HistoryError(
                f"history store {self.url}: {getattr(err, 'orig', None) or err}"
            ) from err

    async def _aread(self, fn: Callable[[Connection], Any]) -> Any:
        return await anyio.to_thread.run_sync(self._read, fn)

    async def machine_record(self, mach_id: str) -> MachineRecord | None:
        """The record of machine `mach_id`, or None if the store lacks it."""

        def get(conn: Connection) -> MachineRecord | None:
            row = conn.execute(
                sa.select(machines).where(machines.c.id == mach_id)
            ).first()
            return None if row is None else self._row_to_machine(row)

        rec: MachineRecord | None = await self._aread(get)
        return rec

    async def machine_ids(self) -> list[str]:
        """Ids of every machine in the store."""

        def get(conn: Connection) -> list[str]:
            return [
                r[0]
                for r in conn.execute(sa.select(machines.c.id).order_by(machines.c.id))
            ]

        ids: list[str] = await self._aread(get)
        return ids

    async def count(self, mach_id: str) -> int:
        """How many records the store keeps for `mach_id`."""

        def get(conn: Connection) -> int:
            q = sa.select(sa.func.count()).where(times.c.machine_id == mach_id)
            return int(conn.execute(q).scalar_one())

        n: int = await self._aread(get)
        return n

    @staticmethod
    def _time(row: Any) -> TimeRecord:
        from .._types import MutationType

        return TimeRecord(
            id=row.id,
            mut_type=MutationType(row.mut_type),
            mtime_sum=row.mtime_sum,
            mtime_tracked_sum=row.mtime_tracked_sum,
            mtime_diff_sum=row.mtime_diff_sum,
            mtime_tracked_diff_sum=row.mtime_tracked_diff_sum,
            mtime_record_diff_sum=row.mtime_record_diff_sum,
            htime=from_micros(row.htime),
            mtime_tracked=unpack(row.mtime_tracked),
            mtime_tracked_diff=unpack(row.mtime_tracked_diff),
            mach_tick=row.mach_tick,
        )

    @staticmethod
    def _transition(row: Any) -> TransitionRecord | None:
        if row.transition_id is None:
            return None
        return tx_record(
            row.id,
            (
                None,
                None,
                row.transition_id,
                row.is_auto,
                row.is_accepted,
                row.is_check,
                row.queue_len,
                row.queued_at,
                row.executed_at,
                row.called,
                row.arguments,
            ),
        )

    async def _find(
        self, rec: MachineRecord, query: Query, limit: int, with_tx: bool
    ) -> list[Record]:
        match, active, inactive, activated, deactivated = compile_query(
            query, rec.tracked_states
        )
        c = times.c
        where: list[Any] = [c.machine_id == rec.mach_id]
        am = c.active_mask
        cm = c.changed_mask
        if active | activated:
            m = active | activated
            where.append(am.op("&")(m) == m)
        if inactive | deactivated:
            where.append(am.op("&")(inactive | deactivated) == 0)
        if activated | deactivated:
            m = activated | deactivated
            where.append(cm.op("&")(m) == m)
        s, e = query.start, query.end
        if s.htime is not None:
            where.append(c.htime >= to_micros(s.htime))
        if e.htime is not None:
            where.append(c.htime <= to_micros(e.htime))
        for col, field in (
            (c.mtime_sum, "mtime_sum"),
            (c.mtime_tracked_sum, "mtime_tracked_sum"),
            (c.mtime_diff_sum, "mtime_diff"),
            (c.mtime_tracked_diff_sum, "mtime_tracked_diff"),
            (c.mtime_record_diff_sum, "mtime_record_diff"),
            (c.mach_tick, "mach_tick"),
        ):
            lo, hi = getattr(s, field), getattr(e, field)
            if lo is not None:
                where.append(col >= lo)
            if hi is not None:
                where.append(col <= hi)
        # the per-state tick bounds are checked on the rows, not in SQL
        exact = not (s.mtime_states or e.mtime_states)
        if with_tx:
            j = times.outerjoin(
                transitions,
                sa.and_(
                    transitions.c.machine_id == c.machine_id,
                    transitions.c.time_id == c.id,
                ),
            )
            cols = [
                *times.c,
                *(
                    col
                    for col in transitions.c
                    if col.name not in ("machine_id", "time_id")
                ),
            ]
            stmt = sa.select(*cols).select_from(j)
        else:
            stmt = sa.select(times)
        if s.htime is not None or e.htime is not None:
            # human time grows with the id (the builder keeps it monotonic):
            # this order lets the htime index serve both range and order
            stmt = stmt.where(*where).order_by(c.htime.desc(), c.id.desc())
        elif rec.mtime_monotonic and (
            s.mtime_sum is not None or e.mtime_sum is not None
        ):
            # the same for machine time, while it only grew
            stmt = stmt.where(*where).order_by(c.mtime_sum.desc(), c.id.desc())
        else:
            stmt = stmt.where(*where).order_by(c.id.desc())
        if limit and exact:
            stmt = stmt.limit(limit)

        def get(conn: Connection) -> list[Record]:
            out: list[Record] = []
            result = conn.execution_options(yield_per=500).execute(stmt)
            for row in result:
                t = self._time(row)
                if not match(t):
                    continue
                out.append(Record(t, self._transition(row) if with_tx else None))
                if limit and len(out) >= limit:
                    break
            result.close()
            return out

        records: list[Record] = await self._aread(get)
        return records

    async def _edge(
        self, rec: MachineRecord, micros: int, at_or_before: bool
    ) -> TimeRecord | None:
        c = times.c
        stmt = sa.select(times).where(c.machine_id == rec.mach_id)
        if at_or_before:
            stmt = stmt.where(c.htime <= micros).order_by(c.htime.desc(), c.id.desc())
        else:
            stmt = stmt.where(c.htime > micros).order_by(c.htime, c.id)
        stmt = stmt.limit(1)

        def get(conn: Connection) -> TimeRecord | None:
            row = conn.execute(stmt).first()
            return None if row is None else self._time(row)

        t: TimeRecord | None = await self._aread(get)
        return t

    def __repr__(self) -> str:
        return f"<SqlStore {self.url}>"
