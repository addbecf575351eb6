"""History: restore across processes, bad input, migrations and the CLI."""

from __future__ import annotations

import functools
import io
import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
import sqlalchemy as sa

import asyncmachine as am
from asyncmachine import history as h
from asyncmachine.history._cli import main as cli
from pg_server import new_database

SCHEMA: am.Schema = {
    "A": am.State(),
    "B": am.State(remove=["A"]),
    "C": am.State(multi=True),
    "MachineRestored": am.State(),
}

WRITER = """
import json, sys
import asyncmachine as am
from asyncmachine import history as h

schema = {
    "A": am.State(),
    "B": am.State(remove=["A"]),
    "C": am.State(multi=True),
    "MachineRestored": am.State(),
}
store = h.SqlStore(sys.argv[1])
mach = am.Machine(schema, id="worker-1")
h.track(mach, store)
mach.add1("A")
for _ in range(5):
    mach.add1("C")
mach.add1("B")
mach.add1("A")  # rejected: not recorded
mach.toggle1("C")
print(json.dumps({"clock": mach.clock(), "queue_tick": mach.queue_tick}))
# no close(): the store writes what is pending at exit
"""

READER = """
import json, sys
import anyio
import asyncmachine as am
from asyncmachine import history as h

schema = {
    "A": am.State(),
    "B": am.State(remove=["A"]),
    "C": am.State(multi=True),
    "MachineRestored": am.State(),
}

async def main():
    async with h.SqlStore(sys.argv[1]) as store:
        mach = await h.restore(store, "worker-1", schema)
        n = await store.count("worker-1")
        print(json.dumps({
            "clock": mach.clock(),
            "queue_tick": mach.queue_tick,
            "machine_tick": mach.machine_tick,
            "records": n,
        }))

anyio.run(main, backend=sys.argv[2])
"""


def _run(tmp_path: Path, code: str, *args: str) -> dict[str, object]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, object] = json.loads(proc.stdout)
    return out


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_restore_after_a_process_restart(
    tmp_path: Path, db: str, backend: str, request: pytest.FixtureRequest
) -> None:
    if db == "sqlite":
        url = str(tmp_path / "h.db")
    else:
        url = new_database(request.getfixturevalue("pg_url"), f"restart_{backend}")
    wrote = _run(tmp_path, WRITER, url)
    read = _run(tmp_path, READER, url, backend)
    clock = dict(wrote["clock"])  # type: ignore[call-overload]
    clock["MachineRestored"] = 1
    assert read["clock"] == clock
    assert read["machine_tick"] == 1
    # MachineRestored was one more mutation
    assert read["queue_tick"] == wrote["queue_tick"] + 1  # type: ignore[operator]
    assert read["records"] == 8


# ---------------------------------------------------------------- bad input


async def test_unknown_and_untracked_states_in_queries(tmp_path: Path) -> None:
    for store in (h.MemoryStore(), h.SqlStore(str(tmp_path / "q.db"))):
        async with store:
            mach = am.Machine(SCHEMA, id="q")
            hist = h.track(mach, store, tracked_states=["A", "B"])
            mach.add1("A")
            with pytest.raises(am.StateNameError, match="unknown state 'Nope'"):
                await hist.find_latest(h.Query(active=["Nope"]))
            with pytest.raises(ValueError, match="'C' is not tracked in machine q"):
                await hist.find_latest(h.Query(activated=["C"]))
            with pytest.raises(ValueError, match="'C' is not tracked"):
                await hist.active_between("C", datetime.now(UTC), datetime.now(UTC))
            with pytest.raises(ValueError, match="is after end"):
                await hist.active_between(
                    "A", datetime(2030, 1, 1), datetime(2020, 1, 1)
                )
            with pytest.raises(ValueError, match="limit must be"):
                await hist.find_latest(limit=-1)
            with pytest.raises(KeyError, match="no machine 'other'"):
                await store.find_latest("other")
            with pytest.raises(ValueError, match="mtime has 1 ticks for 0"):
                h.ConditionTime(mtime=[1])
            with pytest.raises(am.StateNameError):
                h.track(am.Machine(SCHEMA), store, called=["Nope"])
            # the records are still there
            assert len(await hist.find_latest()) == 1


async def test_a_store_of_another_schema(tmp_path: Path) -> None:
    for store in (h.MemoryStore(), h.SqlStore(str(tmp_path / "s.db"))):
        async with store:
            mach = am.Machine(SCHEMA, id="s")
            h.track(mach, store)
            mach.add1("A")
            other = am.Machine({"A": am.State(), "X": am.State()}, id="s")
            with pytest.raises(am.SchemaError, match="holds machine s with the states"):
                h.track(other, store)
            with pytest.raises(am.SchemaError, match="tracks A, B, C"):
                h.track(am.Machine(SCHEMA, id="s"), store, tracked_states=["A"])
            with pytest.raises(am.SchemaError, match="states not in the schema: B, C"):
                await h.restore(
                    store, "s", {"A": am.State(), "MachineRestored": am.State()}
                )
            with pytest.raises(KeyError, match="no machine 'nope'"):
                await h.restore(store, "nope", SCHEMA)
            # nothing lost
            assert await store.count("s") == 1
            rec = await store.machine_record("s")
            assert rec is not None and rec.state_names == tuple(mach.state_names)


def test_a_broken_database_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    junk = b"this is not a database, but it is somebody's data\n" * 200
    path.write_bytes(junk)
    with pytest.raises(h.HistoryError, match="cannot open history store"):
        h.SqlStore(str(path))
    assert path.read_bytes() == junk
    assert not (tmp_path / "broken.db-wal").exists()


def test_other_tables_and_newer_versions_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    h.SqlStore(str(path)).close()
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE am_history_meta SET value = '99'"))
    with pytest.raises(h.HistoryError, match="version 99 is newer than"):
        h.SqlStore(str(path))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE am_history_meta"))
    with pytest.raises(h.HistoryError, match="no am_history_meta"):
        h.SqlStore(str(path))
    engine.dispose()
    # a database of another application is fine: our tables go beside its own
    app = tmp_path / "app.db"
    engine = sa.create_engine(f"sqlite:///{app}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO users VALUES (7)"))
    store = h.SqlStore(str(app))
    assert store.schema_version() == h.SCHEMA_VERSION
    store.close()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT id FROM users")).scalar_one() == 7
    engine.dispose()


def test_migrations_run_once_and_sqlite_uses_wal(tmp_path: Path) -> None:
    from asyncmachine.history import _sql

    path = tmp_path / "m.db"
    calls: list[int] = []
    original = _sql.MIGRATIONS

    def counting(conn: sa.Connection) -> None:
        calls.append(1)
        original[0](conn)

    _sql.MIGRATIONS = (counting,)
    try:
        h.SqlStore(str(path)).close()
        h.SqlStore(str(path)).close()
    finally:
        _sql.MIGRATIONS = original
    assert calls == [1]
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        mode = conn.execute(sa.text("PRAGMA journal_mode")).scalar_one()
        version = conn.execute(
            sa.text("SELECT value FROM am_history_meta WHERE key='schema_version'")
        ).scalar_one()
    engine.dispose()
    assert mode == "wal"
    assert version == str(h.SCHEMA_VERSION)


def test_store_limits() -> None:
    with pytest.raises(ValueError, match="MemoryStore is bounded"):
        h.track(am.Machine(SCHEMA), h.MemoryStore(), max_records=None)
    with pytest.raises(ValueError, match="max_records must be a positive int"):
        h.Config(max_records=0)
    with pytest.raises(TypeError, match="either a Config or keyword"):
        h.track(am.Machine(SCHEMA), h.MemoryStore(), h.Config(), max_records=3)
    with pytest.raises(h.HistoryError, match="needs a SQLite file"):
        h.SqlStore("sqlite://")


def test_too_many_tracked_states_for_sql(tmp_path: Path) -> None:
    big = {f"S{i}": am.State() for i in range(70)}
    with h.SqlStore(str(tmp_path / "big.db")) as store:
        with pytest.raises(ValueError, match="at most 63 tracked states"):
            h.track(am.Machine(big), store)
        hist = h.track(am.Machine(big), store, tracked_states=["S0", "S69"])
        assert hist.tracked_states == ("S0", "S69")


async def test_postgresql_store_of_a_newer_version(pg_url: str) -> None:
    url = new_database(pg_url, "newer")
    h.SqlStore(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE am_history_meta SET value = '42'"))
    engine.dispose()
    with pytest.raises(h.HistoryError, match="version 42 is newer"):
        h.SqlStore(url)


# ---------------------------------------------------------------- CLI


def test_cli_lists_and_queries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "cli.db")
    with h.SqlStore(path) as store:
        mach = am.Machine(SCHEMA, id="cli")
        h.track(mach, store, store_transitions=True)
        mach.add1("A")
        mach.add1("C")
        mach.add1("B")
    out = io.StringIO()
    assert cli(["machines", path], out) == 0
    assert out.getvalue().startswith("cli records=3 t4 ")
    out = io.StringIO()
    assert cli(["query", path, "cli", "--active", "C", "--tx"], out) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("#3 ")
    assert lines[0].endswith("[-A +B] (B C) called: B")
    out = io.StringIO()
    assert cli(["query", path, "cli", "--deactivated", "A", "--json"], out) == 0
    (doc,) = [json.loads(x) for x in out.getvalue().splitlines()]
    assert doc["id"] == 3
    assert doc["mtime_tracked"]["A"] == 2
    assert cli(["query", path, "cli", "--active", "Nope"], io.StringIO()) == 1
    assert "unknown state 'Nope'" in capsys.readouterr().err
    assert cli(["query", str(tmp_path / "none.db"), "cli"], io.StringIO()) == 1
    assert "no history database" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


def test_cli_console_script(tmp_path: Path) -> None:
    path = str(tmp_path / "cs.db")
    with h.SqlStore(path) as store:
        mach = am.Machine(SCHEMA, id="cs")
        h.track(mach, store)
        mach.add1("A")
    proc = subprocess.run(
        [sys.executable, "-m", "asyncmachine.history._cli", "query", path, "cs"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("#1 ")


async def test_reads_run_in_a_worker_thread(tmp_path: Path) -> None:
    """A query runs off the event loop's thread (anyio.to_thread)."""
    import threading

    seen: list[int] = []
    async with h.SqlStore(str(tmp_path / "r.db")) as store:
        mach = am.Machine(SCHEMA, id="r")
        h.track(mach, store)
        mach.toggle1("C")
        read = store._read

        def spy(fn: object) -> object:
            seen.append(threading.get_ident())
            return read(fn)  # type: ignore[arg-type]

        store._read = spy  # type: ignore[method-assign]
        with anyio.fail_after(10):
            assert len(await store.find_latest("r", h.Query(active=["C"]))) == 1
            assert await store.count("r") == 1
    # find_latest reads the machine record, then the records; count one
    assert len(seen) == 3
    assert threading.get_ident() not in seen


def test_max_pending_drops_the_oldest_and_counts(tmp_path: Path) -> None:
    with h.SqlStore(
        str(tmp_path / "p.db"), flush_interval=3600, max_pending=3
    ) as store:
        mach = am.Machine(SCHEMA, id="p")
        h.track(mach, store)
        for _ in range(5):
            mach.toggle1("C")
        store._flush_sync()
        assert store.dropped == 2
        assert store.written == 3
        recs = anyio.run(store.find_latest, "p")
    # the ids go on across the dropped captures
    assert [r.time.id for r in recs] == [5, 4, 3]


@pytest.mark.parametrize("many_vars", [True, False])
def test_sqlite_multi_row_inserts(
    tmp_path: Path, many_vars: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asyncmachine.history import _sql

    # older SQLite takes 999 parameters a statement: smaller chunks
    monkeypatch.setattr(_sql, "_SQLITE_MANY_VARS", many_vars)
    with h.SqlStore(str(tmp_path / "mr.db"), flush_interval=3600) as store:
        mach = am.Machine(SCHEMA, id="mr")
        h.track(mach, store, max_records=None, store_transitions=True)
        for _ in range(1234):
            mach.toggle1("C")
        store._flush_sync()
        assert store.written == 1234
        recs = anyio.run(functools.partial(store.find_latest, "mr", with_tx=True))
    assert [r.time.id for r in recs] == list(range(1234, 0, -1))
    assert [r.transition.time_record_id for r in recs if r.transition] == [
        r.time.id for r in recs
    ]
    assert recs[0].time.mtime_tracked[2] == 1234


def test_failed_writes_are_retried_then_dropped_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlite3

    from asyncmachine.history import _sql

    with h.SqlStore(str(tmp_path / "f.db"), flush_interval=3600) as store:
        mach = am.Machine(SCHEMA, id="f")
        h.track(mach, store)
        real = _sql.SqlStore._insert
        fails = [1]

        def flaky(
            self: h.SqlStore, cur: object, table: object, rows: list[object]
        ) -> None:
            if fails[0]:
                fails[0] -= 1
                raise sqlite3.OperationalError("disk I/O error")
            real(self, cur, table, rows)  # type: ignore[arg-type]

        monkeypatch.setattr(_sql.SqlStore, "_insert", flaky)
        mach.toggle1("C")
        store._flush_sync()  # one failure, then the retry writes
        assert store.written == 1 and store.dropped == 0 and store.error is None
        fails[0] = 3
        mach.toggle1("C")
        with pytest.raises(h.HistoryError, match="a write failed: disk I/O error"):
            store._flush_sync()
        assert store.dropped == 1
        assert "dropped 1 records after 3 failed writes" in caplog.text
        # the store keeps working
        mach.toggle1("C")
        store._flush_sync()
        assert store.written == 2
        recs = anyio.run(store.find_latest, "f")
    assert [r.time.id for r in recs] == [3, 1]
